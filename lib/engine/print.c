/* print.c -- nb_print(): a tensor for humans, laid out as numpy prints an array (nested
 * brackets, aligned columns, the middle of large tensors elided). It uses only the public
 * API and allocates nothing. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla.h"

#define DIGITS 6        /* significant digits of each value, as %.6g */
#define THRESHOLD 1000  /* more elements than this: elide, as numpy's threshold */
#define EDGE 3          /* then show the first and last EDGE items of each longer axis */
#define LINE_WIDTH 75   /* rows wrap before this column, as numpy's linewidth */
#define ELLIPSIS "..."
#define VALUE_MAX 32    /* one formatted value, NUL included */

/* The elements shown: along each axis all positions, or when elided the first and last
 * EDGE. v is borrowed from the tensor. */
struct layout {
	const double *v;
	int rank;
	size_t dim[NB_MAX_RANK];
	size_t stride[NB_MAX_RANK];
	size_t shown[NB_MAX_RANK];
	int elided[NB_MAX_RANK];
};

/* One format for every value of a tensor. */
struct number_format {
	int exp;    /* exponential notation */
	int prec;   /* digits after the point */
	int width;  /* every value is right-aligned to this width */
};

/* Which elements of x to show, from its shape; the one read of nb_value(x) in a print. */
static void layout_init(struct layout *l, const nb_tensor *x)
{
	int summarize = nb_size(x) > THRESHOLD;
	size_t stride = 1;

	l->v = nb_value(x);
	l->rank = nb_rank(x);
	for (int a = l->rank - 1; a >= 0; a--) {
		l->dim[a] = nb_dim(x, a);
		l->stride[a] = stride;
		stride *= l->dim[a];
		l->elided[a] = summarize && l->dim[a] > 2 * EDGE;
		l->shown[a] = l->elided[a] ? 2 * EDGE : l->dim[a];
	}
}

/* The value at shown positions k[0..rank-1]: position k of an elided axis is index k for
 * the first EDGE, and counts from the end after them. */
static double value_at(const struct layout *l, const size_t *k)
{
	size_t off = 0;

	for (int a = 0; a < l->rank; a++) {
		size_t i = l->elided[a] && k[a] >= EDGE ? l->dim[a] - 2 * EDGE + k[a] : k[a];

		off += i * l->stride[a];
	}
	return l->v[off];
}

/* Step the shown positions of the first n axes to the next ones, last axis fastest.
 * Returns the outermost axis that moved (the inner ones went back to 0), or -1 after the
 * last position (then all are 0 again). */
static int next_position(const struct layout *l, size_t *k, int n)
{
	for (int a = n - 1; a >= 0; a--) {
		if (++k[a] < l->shown[a])
			return a;
		k[a] = 0;
	}
	return -1;
}

/* Digits after the point of a formatted number: those before the exponent, without
 * trailing zeros. */
static int fraction_digits(const char *s)
{
	const char *dot = strchr(s, '.');
	int n;

	if (!dot)
		return 0;
	n = (int)strcspn(dot + 1, "e");
	while (n > 0 && dot[n] == '0')
		n--;
	return n;
}

/* Choose fixed or exponential notation and the digits after the point from the finite
 * values shown, as numpy does with 6 significant digits: exponential when %.6g writes
 * one of them so (an absolute value below 1e-4 or from 1e6 on, after rounding), or when
 * the largest nonzero absolute value exceeds 1000 times the smallest. */
static void choose_notation(const struct layout *l, struct number_format *f)
{
	size_t k[NB_MAX_RANK] = { 0 };
	int fixed_prec = 0, exp_prec = 0, exp = 0;
	double min = INFINITY, max = 0;
	char s[VALUE_MAX];

	do {
		double v = value_at(l, k);

		if (!isfinite(v))
			continue;
		snprintf(s, sizeof s, "%.*g", DIGITS, v);
		if (strchr(s, 'e'))
			exp = 1;
		else if (fraction_digits(s) > fixed_prec)
			fixed_prec = fraction_digits(s);
		snprintf(s, sizeof s, "%.*e", DIGITS - 1, v);
		if (fraction_digits(s) > exp_prec)
			exp_prec = fraction_digits(s);
		if (v != 0) {
			min = fmin(min, fabs(v));
			max = fmax(max, fabs(v));
		}
	} while (next_position(l, k, l->rank) >= 0);
	f->exp = exp || (max > 0 && max / min > 1e3);
	f->prec = f->exp ? exp_prec : fixed_prec;
}

/* v in format f, not yet right-aligned: fixed notation keeps the point ("2.") and pads
 * the fraction with spaces to prec digits, so that points line up; exponential gives
 * prec digits after the point. Returns s, or a static string for a non-finite v. */
static const char *format_value(const struct number_format *f, double v, char *s)
{
	int len, frac;

	if (isnan(v))
		return "nan";
	if (isinf(v))
		return v < 0 ? "-inf" : "inf";
	if (f->exp) {
		snprintf(s, VALUE_MAX, "%#.*e", f->prec, v);
		return s;
	}
	len = snprintf(s, VALUE_MAX, "%.*g", DIGITS, v);
	frac = fraction_digits(s);
	if (!strchr(s, '.'))
		s[len++] = '.';
	while (frac++ < f->prec && len < VALUE_MAX - 1)  /* at most 12 + 1 + 9 bytes */
		s[len++] = ' ';
	s[len] = '\0';
	return s;
}

/* The width of the widest value shown, non-finite ones included. */
static int value_width(const struct layout *l, const struct number_format *f)
{
	size_t k[NB_MAX_RANK] = { 0 };
	char s[VALUE_MAX];
	int width = 0;

	do {
		int w = (int)strlen(format_value(f, value_at(l, k), s));

		if (w > width)
			width = w;
	} while (next_position(l, k, l->rank) >= 0);
	return width;
}

/* Write one item of a row at column col and return the new column. Items after the
 * first are separated by a space, or wrap to a new line indented by rank spaces when
 * they would pass the limit (numpy keeps a column free for each closing bracket). */
static int put_item(FILE *out, const char *s, int width, int first, int col, int rank)
{
	if (!first && col + 1 + width > LINE_WIDTH - rank) {
		fprintf(out, "\n%*s", rank, "");
		col = rank;
	} else if (!first) {
		fputc(' ', out);
		col++;
	}
	fprintf(out, "%*s", width, s);
	return col + width;
}

/* The values of the row at shown positions k[0..rank-2], without brackets; the row
 * starts at column rank, after its opening brackets or their indent. */
static void print_row(FILE *out, const struct layout *l, const struct number_format *f,
                      size_t *k)
{
	int a = l->rank - 1, col = l->rank;
	char s[VALUE_MAX];

	for (k[a] = 0; k[a] < l->shown[a]; k[a]++) {
		if (l->elided[a] && k[a] == EDGE)
			col = put_item(out, ELLIPSIS, (int)strlen(ELLIPSIS), 0, col, l->rank);
		col = put_item(out, format_value(f, value_at(l, k), s), f->width, k[a] == 0, col,
		               l->rank);
	}
	k[a] = 0;
}

/* c written n times (n may be 0 or less: nothing). */
static void put_chars(FILE *out, int c, int n)
{
	for (int i = 0; i < n; i++)
		fputc(c, out);
}

/* Rows of a tensor of rank >= 1, in numpy's nesting: between two sub-tensors along axis
 * j, as many newlines as axes follow j (a blank line between matrices), the next one
 * indented to its depth, and "..." on a line of its own where axis j is elided. */
static void print_rows(FILE *out, const struct layout *l, const struct number_format *f)
{
	size_t k[NB_MAX_RANK] = { 0 };
	int r = l->rank, j = -1;  /* j: the outermost axis that moved to reach this row */

	do {
		if (j >= 0) {
			put_chars(out, ']', r - 1 - j);
			put_chars(out, '\n', r - 1 - j);
			if (l->elided[j] && k[j] == EDGE) {
				fprintf(out, "%*s%s", j + 1, "", ELLIPSIS);
				put_chars(out, '\n', r - 1 - j);
			}
		}
		put_chars(out, ' ', j + 1);
		put_chars(out, '[', r - 1 - j);
		print_row(out, l, f, k);
	} while ((j = next_position(l, k, r - 1)) >= 0);
	put_chars(out, ']', r);
}

int nb_print(FILE *out, const nb_tensor *x)
{
	struct layout l;
	struct number_format f;
	char shape[NB_MSG_MAX], s[VALUE_MAX];
	const char *name;

	if (!out || !x)
		return NB_ENULL;
	layout_init(&l, x);
	choose_notation(&l, &f);
	f.width = value_width(&l, &f);
	name = nb_name(x);
	fprintf(out, "%s%s%s %s\n", nb_op_name(x), *name ? " " : "", name, nb_shape_str(x, shape));
	if (l.rank == 0)
		fputs(format_value(&f, l.v[0], s), out);
	else
		print_rows(out, &l, &f);
	fputc('\n', out);
	return fflush(out) != 0 || ferror(out) ? NB_EIO : NB_OK;
}
