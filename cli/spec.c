/* spec.c -- inputs of the nabla command: NAME=VALUE read into a shape and values.
 *
 *   value     = number | list | generator | "@" path | "file:" path
 *   list      = "[" item { "," item } "]"      item = number | list (one depth for all)
 *   generator = ( "zeros" | "ones" | "rand" | "randn" ) "(" [ dim { "," dim } ] ")"
 *
 * A file holds an optional shape "(2x3)" ("()" a scalar), then the numbers, row-major,
 * separated by white space; "#" starts a comment to the end of the line. Without a
 * shape the numbers are a vector. Messages give the column in the argument, or the line
 * and column in the file. The program never calls setlocale(), so strtod() reads "2.5"
 * in the C locale.
 */
#include "spec.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAX ((size_t)256 << 20)  /* bytes of an input file */
#define QUOTE_MAX 24                  /* characters of the text quoted in a message */
#define ARG_MAX 80                    /* characters of the argument quoted in a message */

/* A scan of the argument (file NULL) or of a file's contents, collecting values. */
struct reader {
	const char *arg;   /* the whole argument, for messages */
	const char *text;  /* what is scanned: arg, or the file's contents */
	size_t pos;
	const char *file;  /* the file's path, or NULL */
	char *msg;
	bool failed;
	double *v;         /* the values read so far */
	size_t n, cap;
};

/* ---- Messages ---------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static bool fail(struct reader *r, size_t pos, const char *fmt, ...)
{
	char what[256], where[48];
	int len = (int)strlen(r->arg) > ARG_MAX ? ARG_MAX : (int)strlen(r->arg);
	size_t line = 1, col = 1;
	va_list ap;

	if (r->failed)
		return false;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < pos; i++) {
		col = r->text[i] == '\n' ? 1 : col + 1;
		line += r->text[i] == '\n';
	}
	snprintf(where, sizeof where, "%zu:%zu", line, col);
	if (r->file)
		snprintf(r->msg, SPEC_MSG_MAX, "%.*s%s: %.*s:%s: %s", len, r->arg,
		         len < (int)strlen(r->arg) ? "..." : "", ARG_MAX, r->file, where, what);
	else
		snprintf(r->msg, SPEC_MSG_MAX, "%.*s%s: %s: %s", len, r->arg,
		         len < (int)strlen(r->arg) ? "..." : "", where, what);
	r->failed = true;
	return false;
}

/* What is at pos, for "expected ..., found WHAT". */
static const char *found(const struct reader *r, size_t pos, char buf[64])
{
	const char *s = r->text + pos;
	size_t n = 1;

	if (!*s)
		return "end of input";
	while (n < QUOTE_MAX && s[n] && !strchr(" \t\r\n,[]()", s[n]) &&
	       !strchr(" \t\r\n,[]()", s[0]))
		n++;
	snprintf(buf, 64, "'%.*s'", (int)n, s);
	return buf;
}

/* ---- Scanning ------------------------------------------------------------------------ */

static void skip_space(struct reader *r)
{
	for (;;) {
		char c = r->text[r->pos];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			r->pos++;
		else if (c == '#' && r->file)
			while (r->text[r->pos] && r->text[r->pos] != '\n')
				r->pos++;
		else
			return;
	}
}

/* The character at the current position is c: consume it (and the space after). */
static bool accept(struct reader *r, char c)
{
	if (r->text[r->pos] != c)
		return false;
	r->pos++;
	skip_space(r);
	return true;
}

static bool expect(struct reader *r, char c, const char *what)
{
	char buf[64];

	return accept(r, c) ||
	       fail(r, r->pos, "expected %s, found %s", what, found(r, r->pos, buf));
}

static bool push(struct reader *r, double v)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		double *p;

		if (r->n >= SPEC_MAX_ELEMENTS)
			return fail(r, r->pos, "more than %zu elements", SPEC_MAX_ELEMENTS);
		if (!(p = realloc(r->v, cap * sizeof *p)))
			return fail(r, r->pos, "out of memory");
		r->v = p;
		r->cap = cap;
	}
	r->v[r->n++] = v;
	return true;
}

/* A decimal number: [+-] digits [. digits] [e [+-] digits], or with the digits after
 * the point only. Only that much is handed to strtod(), which would also take
 * hexadecimal, inf and nan. */
static bool read_number(struct reader *r, double *v)
{
	const char *s = r->text + r->pos;
	size_t i = (s[0] == '+' || s[0] == '-'), digits = 0;
	char buf[64];

	for (; s[i] >= '0' && s[i] <= '9'; i++)
		digits++;
	if (s[i] == '.')
		for (i++; s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
	if (!digits)
		return fail(r, r->pos, "expected a number, found %s", found(r, r->pos, buf));
	if (s[i] == 'e' || s[i] == 'E') {
		i += 1 + (s[i + 1] == '+' || s[i + 1] == '-');
		if (s[i] < '0' || s[i] > '9')
			return fail(r, r->pos, "malformed number %s", found(r, r->pos, buf));
		while (s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i >= sizeof buf)
		return fail(r, r->pos, "number longer than %zu characters", sizeof buf - 1);
	memcpy(buf, s, i);
	buf[i] = '\0';
	errno = 0;
	*v = strtod(buf, NULL);
	if (errno == ERANGE && isinf(*v))
		return fail(r, r->pos, "number %s is too large for a double",
		            found(r, r->pos, buf));
	r->pos += i;
	skip_space(r);
	return true;
}

/* A dimension: a positive integer (no sign), small enough to hold. */
static bool read_dim(struct reader *r, size_t *d)
{
	const char *s = r->text + r->pos;
	char buf[64];
	size_t i = 0;

	*d = 0;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		*d = *d * 10 + (size_t)(s[i] - '0');
		if (*d > SPEC_MAX_ELEMENTS)
			return fail(r, r->pos, "dimension larger than %zu", SPEC_MAX_ELEMENTS);
	}
	if (i == 0 || *d == 0)
		return fail(r, r->pos, "expected a dimension (a positive integer), found %s",
		            found(r, r->pos, buf));
	r->pos += i;
	skip_space(r);
	return true;
}

/* The number of elements of a shape, refused past SPEC_MAX_ELEMENTS. */
static bool shape_size(struct reader *r, size_t at, const struct spec *s, size_t *size)
{
	*size = 1;
	for (int i = 0; i < s->rank; i++) {
		*size *= s->dim[i];  /* each dim <= SPEC_MAX_ELEMENTS, so this cannot wrap */
		if (*size > SPEC_MAX_ELEMENTS)
			return fail(r, at, "more than %zu elements", SPEC_MAX_ELEMENTS);
	}
	return true;
}

/* ---- Lists ---------------------------------------------------------------------------- */

/* What the lists read so far say about the shape: the depth of the numbers (-1 before
 * the first) and the length of the lists at each depth (0 before the first). */
struct nest {
	int leaf;
	size_t len[NB_MAX_RANK];
};

static bool read_list(struct reader *r, struct nest *nest, int depth);

static bool read_item(struct reader *r, struct nest *nest, int depth)
{
	char buf[64];
	double v;

	if (r->text[r->pos] == '[') {
		if (nest->leaf >= 0 && depth >= nest->leaf)
			return fail(r, r->pos, "expected a number, found '['");
		return read_list(r, nest, depth);
	}
	if (nest->leaf >= 0 && depth != nest->leaf)
		return fail(r, r->pos, "expected '[', found %s", found(r, r->pos, buf));
	nest->leaf = depth;
	return read_number(r, &v) && push(r, v);
}

/* [ item {, item} ] at depth (0 for the outermost list), its items at depth + 1. */
static bool read_list(struct reader *r, struct nest *nest, int depth)
{
	size_t open = r->pos, count = 0;
	char buf[64];

	if (depth == NB_MAX_RANK)
		return fail(r, r->pos, "lists nested deeper than %d levels", NB_MAX_RANK);
	accept(r, '[');
	if (r->text[r->pos] == ']')
		return fail(r, r->pos, "empty list");
	do {
		if (!read_item(r, nest, depth + 1))
			return false;
		count++;
	} while (accept(r, ','));
	if (!accept(r, ']'))
		return fail(r, r->pos, "expected ',' or ']', found %s", found(r, r->pos, buf));
	if (nest->len[depth] && nest->len[depth] != count)
		return fail(r, open, "ragged list: %zu item%s here, %zu in the first list at this "
		            "depth", count, count == 1 ? "" : "s", nest->len[depth]);
	nest->len[depth] = count;
	return true;
}

static bool read_nested(struct reader *r, struct spec *s)
{
	struct nest nest = { -1, { 0 } };

	if (!read_list(r, &nest, 0))
		return false;
	s->rank = nest.leaf;
	for (int i = 0; i < s->rank; i++)
		s->dim[i] = nest.len[i];
	return true;
}

/* ---- Generators ---------------------------------------------------------------------- */

/* splitmix64: small, and good enough to make test inputs. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double uniform(uint64_t *state)
{
	return (double)(next_random(state) >> 11) * 0x1p-53;
}

/* Standard normal, by Box and Muller (1 - u is in (0, 1], so its log is finite). */
static double normal(uint64_t *state)
{
	double u = 1.0 - uniform(state), w = uniform(state);

	return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w);
}

/* The generator of an input: the seed mixed with its name (FNV-1a). */
static uint64_t seed_for(unsigned long seed, const char *name)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3u;
	return h ^ ((uint64_t)seed * 0x9e3779b97f4a7c15u);
}

static bool read_generator(struct reader *r, struct spec *s, unsigned long seed)
{
	static const char *const names[] = { "zeros", "ones", "rand", "randn" };
	size_t start = r->pos, len = 0, size;
	uint64_t state = seed_for(seed, s->name);
	int g = -1;

	while (r->text[r->pos + len] >= 'a' && r->text[r->pos + len] <= 'z')
		len++;
	for (int i = 0; i < 4; i++)
		if (strlen(names[i]) == len && !strncmp(names[i], r->text + r->pos, len))
			g = i;
	if (g < 0)
		return fail(r, start, "unknown generator '%.*s' (zeros, ones, rand, randn)",
		            len > QUOTE_MAX ? QUOTE_MAX : (int)len, r->text + r->pos);
	r->pos += len;
	skip_space(r);
	if (!expect(r, '(', "'('"))
		return false;
	while (r->text[r->pos] != ')' && s->rank < NB_MAX_RANK) {
		if (!read_dim(r, &s->dim[s->rank++]) ||
		    (r->text[r->pos] != ')' && !expect(r, ',', "',' or ')'")))
			return false;
	}
	if (!expect(r, ')', s->rank == NB_MAX_RANK ? "')' (at most 4 dimensions)" : "')'") ||
	    !shape_size(r, start, s, &size))
		return false;
	for (size_t i = 0; i < size; i++)
		if (!push(r, g == 0 ? 0.0 : g == 1 ? 1.0 : g == 2 ? uniform(&state) : normal(&state)))
			return false;
	return true;
}

/* ---- Files --------------------------------------------------------------------------- */

/* The whole file, NUL-terminated, or NULL (and a message). */
static char *slurp(struct reader *r, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *p;
	size_t n = 0, cap = 0, got;

	if (!f) {
		fail(r, r->pos, "cannot open %.*s: %s", ARG_MAX, path, strerror(errno));
		return NULL;
	}
	do {
		if (n + 1 >= cap) {
			cap = cap ? 2 * cap : 4096;
			if (cap > FILE_MAX + 1 || !(p = realloc(buf, cap))) {
				fail(r, r->pos, cap > FILE_MAX + 1 ? "%.*s is larger than 256 MiB"
				                                   : "%.*s: out of memory", ARG_MAX, path);
				break;
			}
			buf = p;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	if (!r->failed && ferror(f))
		fail(r, r->pos, "cannot read %.*s: %s", ARG_MAX, path, strerror(errno));
	fclose(f);
	if (!r->failed && memchr(buf, '\0', n))
		fail(r, r->pos, "%.*s holds a NUL byte: not a text file", ARG_MAX, path);
	if (r->failed) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* An optional "(2x3)", then numbers to the end. */
static bool read_file_values(struct reader *r, struct spec *s)
{
	size_t start, shape_end = 0, size = 0;
	bool shaped;
	double v;

	skip_space(r);
	start = r->pos;
	if ((shaped = accept(r, '('))) {
		while (r->text[r->pos] != ')' && s->rank < NB_MAX_RANK)
			if (!read_dim(r, &s->dim[s->rank++]) ||
			    (r->text[r->pos] != ')' && !expect(r, 'x', "'x' or ')'")))
				return false;
		shape_end = r->pos + 1;
		if (!expect(r, ')', "')' (at most 4 dimensions)") || !shape_size(r, start, s, &size))
			return false;
	}
	while (r->text[r->pos])
		if (!read_number(r, &v) || !push(r, v))
			return false;
	if (!shaped) {
		s->rank = 1;
		s->dim[0] = size = r->n;
	}
	if (r->n == 0 && !shaped)
		return fail(r, start, "no numbers");
	if (r->n != size)
		return fail(r, start, "the shape %.*s holds %zu numbers, the file %zu",
		            (int)(shape_end - start), r->text + start, size, r->n);
	return true;
}

static bool read_file(struct reader *r, struct spec *s, const char *path)
{
	struct reader f = { r->arg, NULL, 0, path, r->msg, false, NULL, 0, 0 };
	char *text;
	bool ok;

	if (!*path)
		return fail(r, r->pos, "expected a file name, found end of input");
	if (!(text = slurp(r, path)))
		return false;
	f.text = text;
	ok = read_file_values(&f, s);
	r->failed = f.failed;
	r->v = f.v;
	r->n = f.n;
	free(text);
	return ok;
}

/* ---- Inputs -------------------------------------------------------------------------- */

static bool is_name(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';

		if (!letter && (i == 0 || c < '0' || c > '9'))
			return false;
	}
	return n > 0;
}

static bool read_value(struct reader *r, struct spec *s, unsigned long seed)
{
	const char *t = r->text + r->pos;
	char buf[64];

	if (*t == '@')
		return read_file(r, s, t + 1);
	if (!strncmp(t, "file:", 5))
		return read_file(r, s, t + 5);
	if (*t == '[') {
		if (!read_nested(r, s))
			return false;
	} else if (*t >= 'a' && *t <= 'z') {
		if (!read_generator(r, s, seed))
			return false;
	} else {
		double v;

		if (!read_number(r, &v) || !push(r, v))
			return false;
	}
	return !r->text[r->pos] ||
	       fail(r, r->pos, "unexpected %s after the value", found(r, r->pos, buf));
}

int spec_read(struct spec *s, const char *arg, unsigned long seed, char msg[SPEC_MSG_MAX])
{
	struct reader r = { arg, arg, 0, NULL, msg, false, NULL, 0, 0 };
	const char *eq = strchr(arg, '=');
	size_t n;

	memset(s, 0, sizeof *s);
	if (!eq || !is_name(arg, (size_t)(eq - arg))) {
		snprintf(msg, SPEC_MSG_MAX, "%.*s: an input is NAME=VALUE, NAME letters, digits and "
		         "_ (not first)", ARG_MAX, arg);
		return -1;
	}
	n = (size_t)(eq - arg);
	if (!(s->name = malloc(n + 1))) {
		snprintf(msg, SPEC_MSG_MAX, "out of memory");
		return -1;
	}
	memcpy(s->name, arg, n);
	s->name[n] = '\0';
	r.pos = n + 1;
	skip_space(&r);
	if (read_value(&r, s, seed)) {
		s->data = r.v;
		s->size = r.n;
		return 0;
	}
	free(r.v);
	spec_free(s);
	return -1;
}

void spec_free(struct spec *s)
{
	free(s->name);
	free(s->data);
	memset(s, 0, sizeof *s);
}
