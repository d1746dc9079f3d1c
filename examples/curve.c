/* curve.c -- record a learning curve and write it as CSV or as an SVG picture.
 *
 * The picture has two panels sharing the epoch axis: test accuracy in % above, training
 * and test cost below. It is plain SVG 1.1 with a generic font family, so any browser or
 * converter shows it as is.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "curve.h"

int curve_add(struct curve *c, const struct curve_point *p)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		struct curve_point *grown = realloc(c->point, cap * sizeof *grown);

		if (!grown)
			return ENOMEM;
		c->point = grown;
		c->cap = cap;
	}
	c->point[c->n++] = *p;
	return 0;
}

const struct curve_point *curve_best(const struct curve *c)
{
	const struct curve_point *best = NULL;

	for (size_t i = 0; i < c->n; i++)
		if (!best || c->point[i].correct > best->correct)
			best = &c->point[i];
	return best;
}

void curve_free(struct curve *c)
{
	free(c->point);
	*c = (struct curve){ 0 };
}

/* The fraction of test examples classified right, NAN when there were none. */
static double accuracy(const struct curve_point *p)
{
	return p->total ? (double)p->correct / (double)p->total : NAN;
}

/* Open path for writing; errno is cleared so that close_file() can tell which error
 * a failed fprintf() left there. */
static FILE *open_file(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f)
		errno = 0;
	return f;
}

/* Close f and return 0, or the errno value of the first write or close error (EIO when
 * the C library did not say). */
static int close_file(FILE *f)
{
	int err = ferror(f) ? (errno ? errno : EIO) : 0;

	if (fclose(f) != 0 && err == 0)
		err = errno ? errno : EIO;
	return err;
}

/* ---- CSV ----------------------------------------------------------------------------- */

/* A cost field: the value, or nothing when it is unknown. */
static void csv_cost(FILE *f, double v, char sep)
{
	if (isnan(v))
		fprintf(f, "%c", sep);
	else
		fprintf(f, "%.6g%c", v, sep);
}

int curve_write_csv(const struct curve *c, const char *path)
{
	FILE *f = open_file(path);

	if (!f)
		return errno;
	fprintf(f, "epoch,correct,total,accuracy,train_cost,test_cost\n");
	for (size_t i = 0; i < c->n; i++) {
		const struct curve_point *p = &c->point[i];

		fprintf(f, "%zu,%zu,%zu,%.4f,", p->epoch, p->correct, p->total, accuracy(p));
		csv_cost(f, p->train_cost, ',');
		csv_cost(f, p->test_cost, '\n');
	}
	return close_file(f);
}

/* ---- SVG ----------------------------------------------------------------------------- */

/* Picture size and margins, in SVG user units (pixels). */
enum { WIDTH = 760, HEIGHT = 545, LEFT = 80, RIGHT = 30, PANEL_HEIGHT = 180 };
/* Draw a dot on every point when there are this few of them. */
enum { MAX_DOTS = 60 };

static const char *const ACCURACY_COLOR = "#1f77b4";
static const char *const TRAIN_COLOR = "#d62728";
static const char *const TEST_COLOR = "#ff7f0e";

/* An axis: the range shown and the distance between ticks, with the number of decimals
 * a tick label needs. */
struct axis {
	double lo, hi, step;
	int decimals;
};

/* A panel: its place in the picture and the ranges of its two axes. */
struct panel {
	double left, top, width, height;
	struct axis x, y;
};

/* The value a series takes from a point (NAN when it has none there). */
typedef double (*series_fn)(const struct curve_point *p);

static double epoch_of(const struct curve_point *p) { return (double)p->epoch; }
static double percent_of(const struct curve_point *p) { return 100.0 * accuracy(p); }
static double train_cost_of(const struct curve_point *p) { return p->train_cost; }
static double test_cost_of(const struct curve_point *p) { return p->test_cost; }

/* 1, 2 or 5 times a power of ten: the round step nearest above raw. */
static double round_step(double raw)
{
	double magnitude = pow(10.0, floor(log10(raw)));
	double f = raw / magnitude;

	return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * magnitude;
}

/* An axis with round ticks (about five) that shows lo..hi, kept inside min..max; a step
 * of at least min_step (1 for epochs, which are whole numbers). */
static struct axis make_axis(double lo, double hi, double min, double max, double min_step)
{
	struct axis a;

	if (!(hi > lo)) {  /* a single value: make room around it */
		double room = lo != 0.0 ? 0.05 * fabs(lo) : 1.0;

		lo -= room;
		hi += room;
	}
	a.step = fmax(round_step((hi - lo) / 5.0), min_step);
	a.lo = fmax(floor(lo / a.step) * a.step, min);
	a.hi = fmin(ceil(hi / a.step) * a.step, max);
	a.decimals = a.step >= 1.0 ? 0 : (int)ceil(-log10(a.step) - 1e-9);
	return a;
}

/* The range of the finite values of up to two series (get2 may be NULL); 0..1 when
 * there is none. */
static void series_range(const struct curve *c, series_fn get1, series_fn get2, double *lo,
                         double *hi)
{
	*lo = INFINITY;
	*hi = -INFINITY;
	for (size_t i = 0; i < c->n; i++) {
		double v[2] = { get1(&c->point[i]), get2 ? get2(&c->point[i]) : NAN };

		for (int k = 0; k < 2; k++) {
			if (isfinite(v[k])) {
				*lo = fmin(*lo, v[k]);
				*hi = fmax(*hi, v[k]);
			}
		}
	}
	if (*lo > *hi) {
		*lo = 0.0;
		*hi = 1.0;
	}
}

/* Picture coordinates of a data value: x grows to the right, y upwards. */
static double px(const struct panel *p, double x)
{
	return p->left + p->width * (x - p->x.lo) / (p->x.hi - p->x.lo);
}

static double py(const struct panel *p, double y)
{
	return p->top + p->height * (1.0 - (y - p->y.lo) / (p->y.hi - p->y.lo));
}

/* Text with the five characters XML reserves written as entities. */
static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&apos;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* Number of ticks of an axis, both ends included. */
static int tick_count(const struct axis *a)
{
	return (int)lround((a->hi - a->lo) / a->step) + 1;
}

/* Grid lines and tick labels of both axes, then the frame and the y axis's title. */
static void draw_frame(FILE *f, const struct panel *p, const char *y_title)
{
	double bottom = p->top + p->height, right = p->left + p->width;

	fprintf(f, "<g stroke=\"#e4e4e4\">\n");
	for (int i = 0; i < tick_count(&p->y); i++) {
		double y = py(p, p->y.lo + i * p->y.step);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
		        p->left, y, right, y);
	}
	for (int i = 0; i < tick_count(&p->x); i++) {
		double x = px(p, p->x.lo + i * p->x.step);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
		        x, p->top, x, bottom);
	}
	fprintf(f, "</g>\n<g fill=\"#333\" text-anchor=\"end\">\n");
	for (int i = 0; i < tick_count(&p->y); i++) {
		double v = p->y.lo + i * p->y.step;

		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%.*f</text>\n", p->left - 8,
		        py(p, v) + 4, p->y.decimals, v);
	}
	fprintf(f, "</g>\n<g fill=\"#333\" text-anchor=\"middle\">\n");
	for (int i = 0; i < tick_count(&p->x); i++) {
		double v = p->x.lo + i * p->x.step;

		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%.*f</text>\n", px(p, v), bottom + 18,
		        p->x.decimals, v);
	}
	fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
	        "fill=\"none\" stroke=\"#555\"/>\n", p->left, p->top, p->width, p->height);
	fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(-90)\" "
	        "text-anchor=\"middle\">%s</text>\n", p->left - 52, p->top + p->height / 2,
	        y_title);
}

/* A series as a line through its points (broken where a value is missing), with a dot
 * on each point when there are few; dashed draws the line dashed. */
static void draw_series(FILE *f, const struct panel *p, const struct curve *c, series_fn get,
                        const char *color, int dashed)
{
	int pen_down = 0;

	fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"", color,
	        dashed ? " stroke-dasharray=\"6 4\"" : "");
	for (size_t i = 0; i < c->n; i++) {
		double v = get(&c->point[i]);

		if (!isfinite(v)) {
			pen_down = 0;
			continue;
		}
		fprintf(f, "%s%.1f %.1f ", pen_down ? "L" : "M", px(p, epoch_of(&c->point[i])),
		        py(p, v));
		pen_down = 1;
	}
	fprintf(f, "\"/>\n");
	if (c->n > MAX_DOTS)
		return;
	fprintf(f, "<g fill=\"%s\">\n", color);
	for (size_t i = 0; i < c->n; i++) {
		double v = get(&c->point[i]);

		if (isfinite(v))
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>\n",
			        px(p, epoch_of(&c->point[i])), py(p, v));
	}
	fprintf(f, "</g>\n");
}

/* One legend entry: a short line in the series's style and its label, at (x, y). */
static void draw_key(FILE *f, double x, double y, const char *color, int dashed,
                     const char *label)
{
	fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
	        "stroke-width=\"2\"%s/>\n", x, y, x + 26, y, color,
	        dashed ? " stroke-dasharray=\"6 4\"" : "");
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 34, y + 4, label);
}

/* A white box for n legend entries in the panel's corner: bottom right when at_bottom,
 * else top right. Returns the place of the first entry through *x and *y. */
static void draw_legend_box(FILE *f, const struct panel *p, int n, int at_bottom, double *x,
                            double *y)
{
	double w = 140, h = 10 + 20 * n;
	double left = p->left + p->width - w - 10;
	double top = at_bottom ? p->top + p->height - h - 10 : p->top + 10;

	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" "
	        "fill-opacity=\"0.9\" stroke=\"#aaa\"/>\n", left, top, w, h);
	*x = left + 10;
	*y = top + 15;
}

/* The top panel: test accuracy, which rises, so the legend goes bottom right. */
static void draw_accuracy(FILE *f, struct panel *p, const struct curve *c)
{
	double lo, hi, x, y;

	series_range(c, percent_of, NULL, &lo, &hi);
	p->y = make_axis(lo, hi, 0.0, 100.0, 0.0);
	draw_frame(f, p, "test accuracy (%)");
	draw_series(f, p, c, percent_of, ACCURACY_COLOR, 0);
	draw_legend_box(f, p, 1, 1, &x, &y);
	draw_key(f, x, y, ACCURACY_COLOR, 0, "test accuracy");
}

/* The bottom panel: training and test cost, which fall, so the legend goes top right. */
static void draw_cost(FILE *f, struct panel *p, const struct curve *c)
{
	double lo, hi, x, y;

	series_range(c, train_cost_of, test_cost_of, &lo, &hi);
	p->y = make_axis(lo, hi, 0.0, INFINITY, 0.0);
	draw_frame(f, p, "mean cost");
	draw_series(f, p, c, train_cost_of, TRAIN_COLOR, 0);
	draw_series(f, p, c, test_cost_of, TEST_COLOR, 1);
	draw_legend_box(f, p, 2, 0, &x, &y);
	draw_key(f, x, y, TRAIN_COLOR, 0, "training cost");
	draw_key(f, x, y + 20, TEST_COLOR, 1, "test cost");
}

/* The title, the subtitle and the shared x axis's title. */
static void draw_titles(FILE *f, const char *title, const char *subtitle)
{
	fprintf(f, "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
	        "font-weight=\"bold\">", WIDTH / 2);
	xml_text(f, title ? title : "Learning curve");
	fprintf(f, "</text>\n");
	if (subtitle) {
		fprintf(f, "<text x=\"%d\" y=\"48\" text-anchor=\"middle\" fill=\"#555\">",
		        WIDTH / 2);
		xml_text(f, subtitle);
		fprintf(f, "</text>\n");
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n",
	        LEFT + (WIDTH - LEFT - RIGHT) / 2, HEIGHT - 12);
}

int curve_write_svg(const struct curve *c, const char *path, const char *title,
                    const char *subtitle)
{
	double lo, hi;
	struct panel top = {
		.left = LEFT, .top = 70, .width = WIDTH - LEFT - RIGHT, .height = PANEL_HEIGHT,
	};
	struct panel bottom = top;
	FILE *f = open_file(path);

	if (!f)
		return errno;
	/* Both panels show every epoch from 0, so that they line up. */
	series_range(c, epoch_of, NULL, &lo, &hi);
	top.x = bottom.x = make_axis(0.0, fmax(hi, 1.0), 0.0, INFINITY, 1.0);
	bottom.top = top.top + PANEL_HEIGHT + 60;

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
	        "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
	        "font-size=\"12\">\n<title>", WIDTH, HEIGHT, WIDTH, HEIGHT);
	xml_text(f, title ? title : "Learning curve");
	fprintf(f, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	draw_titles(f, title, subtitle);
	draw_accuracy(f, &top, c);
	draw_cost(f, &bottom, c);
	fprintf(f, "</svg>\n");
	return close_file(f);
}
