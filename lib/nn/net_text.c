/* net_text.c -- a network's configuration as text, the description a version-2 model
 * file carries beside the parameters (docs/model-format.md, "Networks in version 2"):
 *
 *   nabla network
 *   input 1 28 28
 *   cost cross-entropy
 *   seed 1
 *   conv2d units=20 k=5 stride=1 pad=0 activation=relu init=he
 *   max_pool k=2 stride=2
 *   dropout p=0.5
 *   dense units=10 activation=softmax init=zero
 *
 * or, for a network of sizes, "sizes 784 30 10", "hidden relu", "output softmax" and
 * "init scaled" in place of the input and layer lines. Numbers are decimal; p is printed
 * with 17 significant digits, so it reads back bit for bit. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "net_text.h"

static const char *const cost_names[] = { "quadratic", "cross-entropy" };

/* ---- Writing -------------------------------------------------------------------------- */

/* Append to the text in buf (cap bytes), counting what would be written when it is full. */
struct text {
	char *buf;
	size_t cap, len;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->len < t->cap ? t->buf + t->len : NULL,
	              t->len < t->cap ? t->cap - t->len : 0, fmt, ap);
	va_end(ap);
	t->len += n > 0 ? (size_t)n : 0;
}

static void put_layer(struct text *t, const nb_layer *l)
{
	put(t, "%s", nn__kind_name(l->kind));
	if (l->kind == NB_LAYER_DENSE || l->kind == NB_LAYER_CONV2D)
		put(t, " units=%zu", l->units);
	if (l->kind == NB_LAYER_CONV2D || l->kind == NB_LAYER_MAX_POOL ||
	    l->kind == NB_LAYER_AVG_POOL)
		put(t, " k=%zu stride=%zu", l->k, l->stride);
	if (l->kind == NB_LAYER_CONV2D)
		put(t, " pad=%zu", l->pad);
	if (l->kind == NB_LAYER_DROPOUT)
		put(t, " p=%.17g", l->p);
	if (l->kind == NB_LAYER_DENSE || l->kind == NB_LAYER_CONV2D ||
	    l->kind == NB_LAYER_ACTIVATION)
		put(t, " activation=%s", nn__activation_name(l->activation));
	if (l->kind == NB_LAYER_DENSE || l->kind == NB_LAYER_CONV2D)
		put(t, " init=%s", nn__init_name(l->init));
	put(t, "\n");
}

size_t nn__net_describe(const nb_net_config *cfg, char *buf, size_t cap)
{
	struct text t = { buf, cap, 0 };

	put(&t, "nabla network\n");
	if (cfg->layers)
		put(&t, "input %zu %zu %zu\n", cfg->input[0], cfg->input[1], cfg->input[2]);
	put(&t, "cost %s\nseed %llu\n", cost_names[cfg->cost], cfg->seed);
	if (cfg->layers) {
		for (size_t i = 0; i < cfg->layer_count; i++)
			put_layer(&t, &cfg->layers[i]);
		return t.len;
	}
	put(&t, "sizes");
	for (size_t i = 0; i < cfg->n_layers; i++)
		put(&t, " %zu", cfg->sizes[i]);
	put(&t, "\nhidden %s\noutput %s\ninit %s\n", nn__activation_name(cfg->hidden),
	    nn__activation_name(cfg->output), nn__init_name(cfg->init));
	return t.len;
}

/* ---- Reading -------------------------------------------------------------------------- */

struct reader {
	const char *line;       /* the current line (not NUL-terminated) */
	size_t len, number;     /* its length and 1-based number */
	size_t at;              /* the next character of it to read */
	char *why;              /* NB_MSG_MAX bytes */
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int bad(struct reader *r, const char *fmt, ...)
{
	char reason[NB_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	return nn__msg_fail(r->why, NB_EFORMAT, "network description, line %zu: %s", r->number,
	                    reason);
}

/* The next word of the line (up to a space, '=' ending it too when key is set) into w. */
static int word(struct reader *r, char w[32], bool key)
{
	size_t n = 0;

	while (r->at < r->len && r->line[r->at] == ' ')
		r->at++;
	while (r->at < r->len && r->line[r->at] != ' ' && !(key && r->line[r->at] == '=')) {
		if (n == 31)
			return bad(r, "a word longer than 31 characters");
		w[n++] = r->line[r->at++];
	}
	w[n] = '\0';
	return n ? NB_OK : bad(r, "a word is missing");
}

static int number(struct reader *r, const char *w, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = w[0] >= '0' && w[0] <= '9' ? strtoull(w, &end, 10) : 0;
	if (!(w[0] >= '0' && w[0] <= '9') || *end || errno || v > NN_MAX_ELEMENTS)
		return bad(r, "\"%s\" is not a whole number from 0 to %zu", w, NN_MAX_ELEMENTS);
	*out = (size_t)v;
	return NB_OK;
}

static int choice(struct reader *r, const char *w, const char *(*name)(int), int *out)
{
	for (int i = 0; name(i); i++)
		if (!strcmp(w, name(i))) {
			*out = i;
			return NB_OK;
		}
	return bad(r, "unknown name \"%s\"", w);
}

static const char *cost_name(int c)
{
	return c >= 0 && c < 2 ? cost_names[c] : NULL;
}

static bool at_end(const struct reader *r)
{
	size_t at = r->at;

	while (at < r->len && r->line[at] == ' ')
		at++;
	return at == r->len;
}

/* "key=value" pairs of a layer line. */
static int layer_fields(struct reader *r, nb_layer *l)
{
	char key[32], value[32];
	size_t v;

	while (!at_end(r)) {
		int s = word(r, key, true);

		if (s == NB_OK && (r->at >= r->len || r->line[r->at++] != '='))
			return bad(r, "\"%s\" has no value (key=value)", key);
		if (s == NB_OK)
			s = word(r, value, false);
		if (s != NB_OK)
			return s;
		if (!strcmp(key, "activation"))
			s = choice(r, value, nn__activation_name, &l->activation);
		else if (!strcmp(key, "init"))
			s = choice(r, value, nn__init_name, &l->init);
		else if (!strcmp(key, "p")) {
			char *end;

			l->p = strtod(value, &end);
			s = *end ? bad(r, "p=%s is not a number", value) : NB_OK;
		} else if ((s = number(r, value, &v)) == NB_OK) {
			if (!strcmp(key, "units"))
				l->units = v;
			else if (!strcmp(key, "k"))
				l->k = v;
			else if (!strcmp(key, "stride"))
				l->stride = v;
			else if (!strcmp(key, "pad"))
				l->pad = v;
			else
				s = bad(r, "unknown field \"%s\"", key);
		}
		if (s != NB_OK)
			return s;
	}
	return NB_OK;
}

/* The numbers after a keyword, into out (at most max; *n gets how many). */
static int numbers(struct reader *r, size_t *out, size_t max, size_t *n)
{
	char w[32];

	for (*n = 0; !at_end(r); (*n)++) {
		int s = *n == max ? bad(r, "more than %zu numbers", max) : word(r, w, false);

		if (s == NB_OK)
			s = number(r, w, &out[*n]);
		if (s != NB_OK)
			return s;
	}
	return NB_OK;
}

/* One line: a keyword and what follows it. */
static int read_line(struct reader *r, struct nn_net_text *d)
{
	char w[32];
	size_t n;
	int kind, s = word(r, w, false);

	if (s != NB_OK)
		return s;
	if (!strcmp(w, "input")) {
		s = numbers(r, d->cfg.input, 3, &n);
		return s ? s : n == 3 ? NB_OK : bad(r, "input needs 3 numbers, not %zu", n);
	}
	if (!strcmp(w, "sizes")) {
		s = numbers(r, d->sizes, NB_NET_MAX_LAYERS + 1, &d->cfg.n_layers);
		d->cfg.sizes = d->sizes;
		return s;
	}
	if (!strcmp(w, "seed")) {
		char *end;

		if ((s = word(r, w, false)) != NB_OK)
			return s;
		errno = 0;
		d->cfg.seed = strtoull(w, &end, 10);
		return *end || errno || w[0] < '0' || w[0] > '9'
		       ? bad(r, "seed \"%s\" is not a whole number", w) : NB_OK;
	}
	if (!strcmp(w, "cost") || !strcmp(w, "hidden") || !strcmp(w, "output") ||
	    !strcmp(w, "init")) {
		int *field = w[0] == 'c' ? &d->cfg.cost : w[0] == 'h' ? &d->cfg.hidden
		           : w[0] == 'o' ? &d->cfg.output : &d->cfg.init;
		const char *(*name)(int) = w[0] == 'c' ? cost_name : w[0] == 'i' ? nn__init_name
		                         : nn__activation_name;

		s = word(r, w, false);
		return s ? s : choice(r, w, name, field);
	}
	for (kind = 1; nn__kind_name(kind); kind++)
		if (!strcmp(w, nn__kind_name(kind)))
			break;
	if (!nn__kind_name(kind))
		return bad(r, "unknown keyword \"%s\"", w);
	if (d->cfg.layer_count == NB_NET_MAX_LAYERS)
		return bad(r, "more than %d layers", NB_NET_MAX_LAYERS);
	d->layers[d->cfg.layer_count] = (nb_layer){ .kind = kind };
	d->cfg.layers = d->layers;
	return layer_fields(r, &d->layers[d->cfg.layer_count++]);
}

int nn__net_parse(const char *text, struct nn_net_text *d, char *why)
{
	struct reader r = { .why = why };
	const char *p = text;

	memset(d, 0, sizeof *d);
	while (*p) {
		const char *end = strchr(p, '\n');
		int s;

		r.line = p;
		r.len = end ? (size_t)(end - p) : strlen(p);
		r.number++;
		r.at = 0;
		p += r.len + (end != NULL);
		if (r.number == 1) {
			if (r.len != 13 || memcmp(r.line, "nabla network", 13))
				return bad(&r, "not \"nabla network\"");
			continue;
		}
		if (at_end(&r))
			continue;
		s = read_line(&r, d);
		if (s == NB_OK && !at_end(&r))
			s = bad(&r, "more after the value");
		if (s != NB_OK)
			return s;
	}
	if (r.number == 0)
		return nn__msg_fail(why, NB_EFORMAT, "network description: empty");
	if (d->cfg.layers && d->cfg.sizes)
		return nn__msg_fail(why, NB_EFORMAT, "network description: both sizes and layers");
	return NB_OK;
}
