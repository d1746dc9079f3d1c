/* fuzz_tape.c -- libFuzzer target for the tape itself: leaves, ops, values on demand,
 * backward sweeps, replay, marks and optimizer steps (lib/tape.c, eval.c, leaf.c,
 * backward.c, optim.c and the op_*.c files).
 *
 * An input is a program of API calls on one tape (fuzz_tape.h gives the byte format),
 * whose allocator counts blocks and bytes, refuses blocks over ALLOC_MAX bytes and more
 * than ALLOC_TOTAL in all (so that no input allocates much, and larger shapes fail as
 * out of memory), and fails the allocation the input names. Leaves get fuzzed shapes of
 * rank 0..4 with dims that are sometimes huge; a shape whose size overflows must be
 * refused. Views point into a buffer of the target's. After every call:
 *   - an op returns NULL exactly when the tape's status is not NB_OK afterwards;
 *   - a call that fails (the status goes from NB_OK to an error) records no node;
 *   - the status is a documented one, never NB_EINTERNAL, and the message is "" with
 *     NB_OK, otherwise non-empty and NUL-terminated within NB_MSG_MAX bytes;
 *   - nb_tape_mark() is nb_tape_size(), and nb_tape_bytes() is what the allocator lent;
 * and for the calls that document it, the status each bad argument gives. A small oracle
 * recomputes add, sub, mul, div and exp of leaves of one shape in the target, and compares
 * them bit for bit (or both NaN) with nb_value() whenever nothing failed, whatever was set,
 * touched, stepped or replayed since. After nb_tape_free() the allocator holds nothing.
 *
 * Run: ./build.sh fuzz (each target FUZZ_SECONDS, default 60, on a copy of
 * fuzz/corpus/tape/, then once over every file in fuzz/regressions/tape/). By hand, after
 * it:
 *   build-fuzz/fuzz/fuzz_tape -max_total_time=600 build-fuzz/work/tape
 * A crash leaves build-fuzz/artifacts/tape/crash-*: fix the bug, then copy that file into
 * fuzz/regressions/tape/ under a name saying what it caught, so every run replays it.
 * With FUZZ_TAPE_TRACE set in the environment, each call is printed with the status and
 * size of the tape after it. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nabla.h>

#include "fuzz.h"
#include "fuzz_tape.h"

/* The allocator's limits: a larger block, or one past the total, is refused. */
#define ALLOC_MAX ((size_t)64 << 10)
#define ALLOC_TOTAL ((size_t)512 << 10)
/* Elements of the largest tensor that can be allocated at all. */
#define FIT_MAX (ALLOC_MAX / sizeof(double))
#define VIEW_MAX 2048           /* doubles of the buffer views live in */
#define MAX_HANDLES 32
#define MAX_VIEWS 16
#define MAX_ORACLES 16
#define MAX_PARAMS 4            /* parameters of one optimizer step */

/* ---- The state of one input --------------------------------------------------------- */

struct reader {
	const uint8_t *p;
	size_t n, at;
};

/* A handle and an upper bound on its node's position: a rewind to mark m drops every
 * handle whose bound is m or more, and so every handle of a dropped node. */
struct entry {
	nb_tensor *x;
	size_t pos;
};

struct view {
	nb_tensor *x;
	size_t pos, off, n;     /* its array is view_buf[off .. off + n) */
};

/* c = op(a, b) (op(a) for exp) for leaves a and b of c's shape. */
struct oracle {
	nb_tensor *c, *a, *b;
	int op;                 /* FT_ADD, FT_SUB, FT_MUL, FT_DIV, or -1: exp */
	size_t pos;
};

struct shape {
	int rank;
	size_t dim[NB_MAX_RANK];
	bool null_dims;
};

/* An op command, decoded, so that FT_AGAIN can make the same call. */
struct call {
	int cmd, sub;
	nb_tensor *a, *b;
	double v;
	int k;                  /* axis or flags */
	struct shape s;
};

struct fuzz {
	nb_tape *t;
	struct fuzz_alloc mem;
	struct reader in;
	struct entry h[MAX_HANDLES];
	size_t nh, added;
	struct view v[MAX_VIEWS];
	size_t nv;
	struct oracle o[MAX_ORACLES];
	size_t no;
	size_t mark[FT_MARKS];
	size_t nmarks;
	struct call last;       /* the last op command, while last_ok */
	nb_tensor *last_result;
	bool last_ok;
	size_t zeroed[3][MAX_PARAMS];  /* doubles of each optimizer state array zeroed */
};

static double view_buf[VIEW_MAX];
static double src[FIT_MAX + 1];                      /* values handed to the library */
static double state[3][MAX_PARAMS][FIT_MAX];         /* velocity, or Adam's m and v */
static double snap[MAX_PARAMS][FIT_MAX];             /* parameters before a step */
static FILE *devnull;
static bool trace;                                   /* FUZZ_TAPE_TRACE is set */

static const char *const cmd_name[FT_COUNT] = {
	"constant", "variable", "constant_view", "variable_view", "fill", "scalar", "unary",
	"binary", "matmul_t", "scale", "axis", "shape", "again", "set", "touch", "write_view",
	"value", "backward", "grad", "gradients", "replay", "mark", "rewind", "reset",
	"clear_error", "check_finite", "sgd", "adam", "fail_alloc", "dot",
};

static uint8_t next(struct fuzz *f)
{
	return f->in.at < f->in.n ? f->in.p[f->in.at++] : 0;
}

/* ---- Operands ----------------------------------------------------------------------- */

static nb_tensor *pick(struct fuzz *f)
{
	uint8_t b = next(f);

	return b == 0xff || !f->nh ? NULL : f->h[b % f->nh].x;
}

static double value_of(uint8_t b)
{
	static const double special[16] = {
		0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 3.0, -7.5, 1e300, -1e300, INFINITY, -INFINITY,
		NAN, DBL_MIN, DBL_TRUE_MIN, 710.0,
	};

	return b < 16 ? special[b] : ((int)b - 136) / 8.0;
}

/* Read V and write its first n values into out. */
static void read_values(struct fuzz *f, double *out, size_t n)
{
	uint8_t start = next(f), stride = next(f);

	for (size_t i = 0; i < n; i++)
		out[i] = value_of((uint8_t)(start + i * stride));
}

static size_t dim_of(uint8_t b)
{
	static const size_t special[16] = {
		0, SIZE_MAX, SIZE_MAX / 8, SIZE_MAX / 8 + 1, SIZE_MAX / 16, (size_t)1 << 40,
		(size_t)1 << 32, (size_t)1 << 20, SIZE_MAX / 2 + 1, (size_t)1 << 62,
		(size_t)1 << 61, 65536, 8193, 1024, 257, 100,
	};

	if (b < 0xc0)
		return 1 + b % 8;
	if (b < FT_DIM_SPECIAL)
		return 9 + 4 * (size_t)(b - 0xc0);
	return special[b - FT_DIM_SPECIAL];
}

/* A shape made from the shape of a tensor of the table (a NULL one counts as a scalar). */
static void derive_shape(struct fuzz *f, struct shape *s, int how)
{
	nb_tensor *x = pick(f);
	size_t n = x ? nb_size(x) : 1, d;
	int r = x ? nb_rank(x) : 0, k;

	s->rank = r;
	for (int i = 0; i < r; i++)
		s->dim[i] = nb_dim(x, i);
	switch (how) {
	case FT_SAME:
		break;
	case FT_FLAT:
		s->rank = 1;
		s->dim[0] = n;
		break;
	case FT_PREPEND:
		d = dim_of(next(f));
		if (r < NB_MAX_RANK) {
			memmove(s->dim + 1, s->dim, (size_t)r * sizeof *s->dim);
			s->dim[0] = d;
			s->rank = r + 1;
		}
		break;
	case FT_ONE_AT:
		k = next(f);
		if (r)
			s->dim[k % r] = 1;
		break;
	case FT_DROP_FIRST:
		if (r) {
			memmove(s->dim, s->dim + 1, (size_t)(r - 1) * sizeof *s->dim);
			s->rank = r - 1;
		}
		break;
	case FT_SET_AT:
		k = next(f);
		d = dim_of(next(f));
		if (r)
			s->dim[k % r] = d;
		break;
	case FT_REVERSED:
		for (int i = 0; i < r / 2; i++) {
			d = s->dim[i];
			s->dim[i] = s->dim[r - 1 - i];
			s->dim[r - 1 - i] = d;
		}
		break;
	default:  /* FT_ROW */
		s->rank = 2;
		s->dim[0] = 1;
		s->dim[1] = n;
		break;
	}
}

static void read_shape(struct fuzz *f, struct shape *s)
{
	static const int ranks[8] = FT_RANKS;
	uint8_t b = next(f);

	memset(s, 0, sizeof *s);
	if (b >= FT_SHAPE_NULL_DIMS) {
		s->rank = 1 + (b & 3);
		s->null_dims = true;
		return;
	}
	if (b >= FT_SHAPE_DERIVED) {
		derive_shape(f, s, b & 7);
		return;
	}
	s->rank = ranks[b % 8];
	for (int i = 0; s->rank <= NB_MAX_RANK && i < s->rank; i++)
		s->dim[i] = dim_of(next(f));
}

static const size_t *dims_of(const struct shape *s)
{
	return s->null_dims ? NULL : s->dim;
}

/* What a shape is to the library: one a tensor may have and this allocator can give
 * memory for, one too big for it, one whose size or bytes overflow size_t, or no shape. */
enum fit { FITS, TOO_BIG, OVERFLOWS, INVALID };

static enum fit shape_fit(const struct shape *s, size_t *size)
{
	bool overflow = false;
	size_t n = 1;

	*size = 0;
	if (s->rank < 0 || s->rank > NB_MAX_RANK || (s->rank && s->null_dims))
		return INVALID;
	for (int i = 0; i < s->rank; i++) {
		if (s->dim[i] == 0)
			return INVALID;
		if (n > SIZE_MAX / s->dim[i])
			overflow = true;
		else
			n *= s->dim[i];
	}
	if (overflow || n > SIZE_MAX / sizeof(double))
		return OVERFLOWS;
	*size = n;
	return n > FIT_MAX ? TOO_BIG : FITS;
}

/* ---- Checks ------------------------------------------------------------------------- */

static bool same_double(double x, double y)
{
	return (isnan(x) && isnan(y)) || memcmp(&x, &y, sizeof x) == 0;
}

static bool same_shape(const nb_tensor *x, int rank, const size_t *dim)
{
	if (nb_rank(x) != rank)
		return false;
	for (int i = 0; i < rank; i++)
		if (nb_dim(x, i) != dim[i])
			return false;
	return true;
}

static bool same_shape_as(const nb_tensor *x, const nb_tensor *y)
{
	size_t dim[NB_MAX_RANK];

	for (int i = 0; i < nb_rank(y); i++)
		dim[i] = nb_dim(y, i);
	return same_shape(x, nb_rank(y), dim);
}

static bool is_op(const nb_tensor *x, const char *name)
{
	return x && strcmp(nb_op_name(x), name) == 0;
}

static bool is_leaf(const nb_tensor *x)
{
	return is_op(x, "constant") || is_op(x, "variable");
}

/* A tensor a call handed out has a shape: rank 0..4, dims >= 1 whose product is its
 * size, and a size whose bytes fit in size_t. */
static void check_tensor(const nb_tensor *x, const char *what)
{
	int r = nb_rank(x);
	size_t n = 1;

	FUZZ_CHECK(r >= 0 && r <= NB_MAX_RANK, "%s: rank %d", what, r);
	FUZZ_CHECK(nb_op_name(x) != NULL, "%s: no op name", what);
	for (int i = 0; i < r; i++) {
		size_t d = nb_dim(x, i);

		FUZZ_CHECK(d >= 1 && n <= SIZE_MAX / d, "%s: dim %d is %zu after %zu elements",
		           what, i, d, n);
		n *= d;
	}
	FUZZ_CHECK(n == nb_size(x) && n <= SIZE_MAX / sizeof(double),
	           "%s: size %zu for %zu elements (%s)", what, nb_size(x), n, nb_op_name(x));
	FUZZ_CHECK(nb_dim(x, r) == 0 && nb_dim(x, -1) == 0, "%s: dim out of range", what);
}

/* What holds after every call. before and size are the status and size before it. */
static void check_tape(const struct fuzz *f, const char *what, int before, size_t size)
{
	int status = nb_tape_status(f->t);
	const char *msg = nb_tape_message(f->t);

	FUZZ_CHECK(status >= NB_OK && status < NB_EINTERNAL, "%s: status %d (%s): %s", what,
	           status, nb_status_name(status), msg);
	FUZZ_CHECK(msg != NULL && memchr(msg, '\0', NB_MSG_MAX) != NULL, "%s: message not "
	           "terminated within NB_MSG_MAX bytes", what);
	FUZZ_CHECK((status == NB_OK) == (msg[0] == '\0'), "%s: status %s with message \"%s\"",
	           what, nb_status_name(status), msg);
	FUZZ_CHECK(before != NB_OK || status == NB_OK || nb_tape_size(f->t) == size,
	           "%s failed (%s) but the tape grew from %zu to %zu nodes", what, msg, size,
	           nb_tape_size(f->t));
	FUZZ_CHECK(nb_tape_mark(f->t) == nb_tape_size(f->t), "%s: mark %zu, size %zu", what,
	           nb_tape_mark(f->t), nb_tape_size(f->t));
	FUZZ_CHECK(nb_tape_bytes(f->t) == f->mem.in_use, "%s: tape says %zu bytes, allocator "
	           "lent %zu", what, nb_tape_bytes(f->t), f->mem.in_use);
}

/* An op's result: NULL exactly when the tape holds an error, always after an earlier one. */
static void check_result(const struct fuzz *f, const nb_tensor *x, const char *what,
                         int before)
{
	int status = nb_tape_status(f->t);

	FUZZ_CHECK((x == NULL) == (status != NB_OK), "%s returned %s with status %s: %s", what,
	           x ? "a tensor" : "NULL", nb_status_name(status), nb_tape_message(f->t));
	FUZZ_CHECK(before == NB_OK || x == NULL, "%s succeeded on a tape in error", what);
	if (x)
		check_tensor(x, what);
}

static double oracle_value(int op, double a, double b)
{
	switch (op) {
	case FT_ADD:
		return a + b;
	case FT_SUB:
		return a - b;
	case FT_MUL:
		return a * b;
	case FT_DIV:
		return a / b;
	default:
		return exp(a);
	}
}

/* Views read the target's arrays in place, and each oracle node is its op applied to the
 * current values of its leaves: checked only while nothing failed. */
static void check_values(struct fuzz *f)
{
	if (nb_tape_status(f->t) != NB_OK)
		return;
	for (size_t i = 0; i < f->nv; i++)
		FUZZ_CHECK(nb_value(f->v[i].x) == view_buf + f->v[i].off,
		           "view %zu does not read its array", i);
	for (size_t i = 0; i < f->no; i++) {
		const struct oracle *o = &f->o[i];
		const double *a = nb_value(o->a), *b = nb_value(o->b), *c = nb_value(o->c);

		if (nb_tape_status(f->t) != NB_OK)
			return;  /* a non-finite value under nb_tape_check_finite */
		for (size_t k = 0; k < nb_size(o->c); k++) {
			double want = oracle_value(o->op, a[k], b[k]);

			FUZZ_CHECK(same_double(c[k], want), "%s node: element %zu is %a, not %a "
			           "from %a and %a", nb_op_name(o->c), k, c[k], want, a[k], b[k]);
		}
	}
}

/* ---- The table of handles ----------------------------------------------------------- */

/* The best bound known for x's position: an entry's, or the last node's. */
static size_t pos_of(const struct fuzz *f, const nb_tensor *x)
{
	size_t pos = nb_tape_size(f->t) - 1;

	for (size_t i = 0; i < f->nh; i++)
		if (f->h[i].x == x && f->h[i].pos < pos)
			pos = f->h[i].pos;
	return pos;
}

static void add_handle(struct fuzz *f, nb_tensor *x)
{
	struct entry e;

	if (!x)
		return;
	e = (struct entry){ x, pos_of(f, x) };
	for (size_t i = 0; i < f->nh; i++)
		if (f->h[i].x == x) {
			f->h[i] = e;
			return;
		}
	if (f->nh < MAX_HANDLES)
		f->h[f->nh++] = e;
	else
		f->h[f->added % MAX_HANDLES] = e;
	f->added++;
}

/* After a rewind to m: forget everything recorded from m on. Views were made in order,
 * so their arrays are given back from the end. */
static void drop_from(struct fuzz *f, size_t m)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nh; i++)
		if (f->h[i].pos < m)
			f->h[n++] = f->h[i];
	f->nh = n;
	for (n = 0; n < f->nv && f->v[n].pos < m; n++)
		;
	f->nv = n;
	n = 0;
	for (size_t i = 0; i < f->no; i++)
		if (f->o[i].pos < m)
			f->o[n++] = f->o[i];
	f->no = n;
	f->last_ok = false;
}

static size_t view_end(const struct fuzz *f)
{
	return f->nv ? f->v[f->nv - 1].off + f->v[f->nv - 1].n : 0;
}

/* ---- Leaves ------------------------------------------------------------------------- */

/* A leaf of a fuzzed shape. Owned leaves copy V (zeros when the shape is too big to hand
 * values for); views get a fresh part of view_buf holding V, or, when none is left, NULL
 * data, which must be refused, as must a shape that overflows whatever the data. */
static void cmd_leaf(struct fuzz *f, int cmd, int before)
{
	bool variable = cmd == FT_VARIABLE || cmd == FT_VARIABLE_VIEW;
	bool view = cmd == FT_CONSTANT_VIEW || cmd == FT_VARIABLE_VIEW;
	const char *what = cmd_name[cmd];
	size_t n, off = view_end(f), values = 0;
	double *data = NULL;
	struct shape s;
	enum fit fit;
	nb_tensor *x;

	read_shape(f, &s);
	fit = shape_fit(&s, &n);
	if (fit == FITS && (!view || (n <= VIEW_MAX - off && f->nv < MAX_VIEWS))) {
		data = view ? view_buf + off : src;
		values = n;
	} else if (view && (fit == OVERFLOWS || fit == INVALID)) {
		data = view_buf;
	}
	read_values(f, data ? data : src, values);
	if (view && variable)
		x = nb_variable_view(f->t, s.rank, dims_of(&s), data);
	else if (view)
		x = nb_constant_view(f->t, s.rank, dims_of(&s), data);
	else
		x = (variable ? nb_variable : nb_constant)(f->t, s.rank, dims_of(&s), data);
	check_result(f, x, what, before);
	FUZZ_CHECK(!x || fit == FITS, "%s: a shape of rank %d that %s was accepted", what,
	           s.rank, fit == OVERFLOWS ? "overflows" : fit == INVALID ? "is invalid" :
	           "cannot be allocated");
	FUZZ_CHECK(!x || !view || data, "%s: NULL data accepted", what);
	if (!x)
		return;
	FUZZ_CHECK(same_shape(x, s.rank, s.dim), "%s: not the shape asked for", what);
	if (view) {
		FUZZ_CHECK(nb_value(x) == data, "%s: does not read the caller's array", what);
		f->v[f->nv++] = (struct view){ x, nb_tape_size(f->t) - 1, off, n };
	} else {
		const double *v = nb_value(x);

		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(same_double(v[i], data ? data[i] : 0.0), "%s: element %zu is "
			           "%a", what, i, v[i]);
	}
	add_handle(f, x);
}

/* ---- Ops ---------------------------------------------------------------------------- */

static nb_tensor *apply_unary(nb_tape *t, int sub, nb_tensor *a)
{
	switch (sub) {
	case FT_SIGMOID:
		return nb_sigmoid(t, a);
	case FT_TANH:
		return nb_tanh(t, a);
	case FT_EXP:
		return nb_exp(t, a);
	case FT_LOG:
		return nb_log(t, a);
	case FT_RELU:
		return nb_relu(t, a);
	case FT_STEP:
		return nb_step(t, a);
	case FT_NEG:
		return nb_neg(t, a);
	case FT_TRANSPOSE:
		return nb_transpose(t, a);
	default:
		return nb_sum(t, a);
	}
}

static nb_tensor *apply_binary(nb_tape *t, int sub, nb_tensor *a, nb_tensor *b)
{
	switch (sub) {
	case FT_ADD:
		return nb_add(t, a, b);
	case FT_SUB:
		return nb_sub(t, a, b);
	case FT_MUL:
		return nb_mul(t, a, b);
	case FT_DIV:
		return nb_div(t, a, b);
	case FT_MATMUL:
		return nb_matmul(t, a, b);
	case FT_QUADRATIC_COST:
		return nb_quadratic_cost(t, a, b);
	case FT_SIGMOID_XENT:
		return nb_sigmoid_cross_entropy(t, a, b);
	default:
		return nb_softmax_cross_entropy(t, a, b);
	}
}

static nb_tensor *apply(struct fuzz *f, const struct call *c)
{
	nb_tape *t = f->t;
	const size_t *dims = dims_of(&c->s);

	switch (c->cmd) {
	case FT_FILL:
		return nb_fill(t, c->s.rank, dims, c->v);
	case FT_SCALAR:
		return nb_scalar(t, c->v);
	case FT_UNARY:
		return apply_unary(t, c->sub, c->a);
	case FT_BINARY:
		return apply_binary(t, c->sub, c->a, c->b);
	case FT_MATMUL_T:
		return nb_matmul_t(t, c->a, c->b, c->k);
	case FT_SCALE:
		return nb_scale(t, c->a, c->v);
	case FT_AXIS:
		if (c->sub == FT_SOFTMAX)
			return nb_softmax(t, c->a, c->k);
		return nb_sum_axis(t, c->a, c->k, c->sub == FT_SUM_AXIS_KEEPDIM);
	default:  /* FT_SHAPE */
		if (c->sub == FT_RESHAPE)
			return nb_reshape(t, c->a, c->s.rank, dims);
		if (c->sub == FT_BROADCAST_TO)
			return nb_broadcast_to(t, c->a, c->s.rank, dims);
		return nb_reduce_to(t, c->a, c->s.rank, dims);
	}
}

static void read_call(struct fuzz *f, int cmd, struct call *c)
{
	static const int flags[6] = { 0, NB_TRANS_A, NB_TRANS_B, NB_TRANS_A | NB_TRANS_B, 4, -1 };

	memset(c, 0, sizeof *c);
	c->cmd = cmd;
	switch (cmd) {
	case FT_FILL:
		read_shape(f, &c->s);
		c->v = value_of(next(f));
		break;
	case FT_SCALAR:
		c->v = value_of(next(f));
		break;
	case FT_UNARY:
		c->sub = next(f) % FT_UNARY_COUNT;
		c->a = pick(f);
		break;
	case FT_BINARY:
		c->sub = next(f) % FT_BINARY_COUNT;
		c->a = pick(f);
		c->b = pick(f);
		break;
	case FT_MATMUL_T:
		c->a = pick(f);
		c->b = pick(f);
		c->k = flags[next(f) % 6];
		break;
	case FT_SCALE:
		c->a = pick(f);
		c->v = value_of(next(f));
		break;
	case FT_AXIS:
		c->sub = next(f) % FT_AXIS_COUNT;
		c->a = pick(f);
		c->k = next(f) % 7 - 1;
		break;
	default:  /* FT_SHAPE */
		c->sub = next(f) % FT_SHAPE_OP_COUNT;
		c->a = pick(f);
		read_shape(f, &c->s);
		break;
	}
}

/* Remember a node the oracle can check: an arithmetic op of two leaves of one shape, or
 * exp of a leaf. */
static void add_oracle(struct fuzz *f, const struct call *c, nb_tensor *x)
{
	int op = -1;

	if (f->no == MAX_ORACLES || !is_leaf(c->a))
		return;
	if (c->cmd == FT_BINARY) {
		if (c->sub > FT_DIV || !is_leaf(c->b) || !same_shape_as(c->a, c->b))
			return;
		op = c->sub;
	} else if (c->cmd != FT_UNARY || c->sub != FT_EXP) {
		return;
	}
	f->o[f->no++] = (struct oracle){ x, c->a, op == -1 ? c->a : c->b, op, pos_of(f, x) };
}

/* Checks that depend on the op: a literal holds its value, a shape op gives the shape
 * asked for, and a shape nothing can hold is refused. */
static void check_op(const struct call *c, const nb_tensor *x)
{
	const char *what = cmd_name[c->cmd];
	size_t n;
	enum fit fit = shape_fit(&c->s, &n);

	if (c->cmd == FT_FILL || c->cmd == FT_SHAPE)
		FUZZ_CHECK(!x || fit == FITS, "%s %d: a shape of rank %d that %s was accepted",
		           what, c->sub, c->s.rank, fit == OVERFLOWS ? "overflows" :
		           fit == INVALID ? "is invalid" : "cannot be allocated");
	if (!x)
		return;
	if (c->cmd == FT_FILL || c->cmd == FT_SHAPE)
		FUZZ_CHECK(same_shape(x, c->s.rank, c->s.dim), "%s %d: not the shape asked for",
		           what, c->sub);
	if (c->cmd == FT_FILL || c->cmd == FT_SCALAR) {
		const double *v = nb_value(x);

		for (size_t i = 0; i < nb_size(x); i++)
			FUZZ_CHECK(same_double(v[i], c->v), "%s: element %zu is %a, not %a", what,
			           i, v[i], c->v);
	}
}

static void cmd_op(struct fuzz *f, int cmd, int before)
{
	struct call c;
	nb_tensor *x;

	read_call(f, cmd, &c);
	x = apply(f, &c);
	check_result(f, x, cmd_name[cmd], before);
	check_op(&c, x);
	add_handle(f, x);
	if (x)
		add_oracle(f, &c, x);
	f->last = c;
	f->last_result = x;
	f->last_ok = true;
}

/* The same op again: with no error in between, the node already there and no new one
 * (hash-consing), whatever changed since. */
static void cmd_again(struct fuzz *f, int before)
{
	size_t size = nb_tape_size(f->t);
	nb_tensor *x;

	if (!f->last_ok)
		return;
	x = apply(f, &f->last);
	check_result(f, x, "again", before);
	check_op(&f->last, x);
	if (x && f->last_result)
		FUZZ_CHECK(x == f->last_result && nb_tape_size(f->t) == size, "%s %d again: "
		           "another node (%zu nodes before, %zu after)", cmd_name[f->last.cmd],
		           f->last.sub, size, nb_tape_size(f->t));
	add_handle(f, x);
	f->last_result = x;
}

/* ---- Leaf values -------------------------------------------------------------------- */

static void cmd_set(struct fuzz *f, int before)
{
	nb_tensor *x = pick(f);
	int mode = next(f) % 8, status;
	size_t size = nb_size(x), n = size;
	const double *data = src;

	if (size > FIT_MAX) {  /* a tensor the target could not hand values for */
		read_values(f, src, 0);
		return;
	}
	if (mode == FT_SET_LESS)
		n = size - 1;
	else if (mode == FT_SET_MORE)
		n = size + 1;
	else if (mode == FT_SET_ZERO)
		n = 0;
	else if (mode == FT_SET_SIZE_MAX)
		n = SIZE_MAX;
	else if (mode == FT_SET_DATA_NULL)
		data = NULL;
	else if (mode == FT_SET_X_NULL)
		x = NULL;
	read_values(f, src, size + 1);
	status = nb_set(x, data, n);
	if (!x) {
		FUZZ_CHECK(status == NB_ENULL && nb_tape_status(f->t) == before, "set(NULL): %s",
		           nb_status_name(status));
		return;
	}
	FUZZ_CHECK(status == nb_tape_status(f->t), "set returned %s, the tape holds %s",
	           nb_status_name(status), nb_status_name(nb_tape_status(f->t)));
	if (before != NB_OK)
		return;
	if (!is_leaf(x))
		FUZZ_CHECK(status == NB_EINVAL || (!data && status == NB_ENULL), "set on a %s "
		           "node: %s", nb_op_name(x), nb_status_name(status));
	else if (!data)
		FUZZ_CHECK(status == NB_ENULL, "set(data NULL): %s", nb_status_name(status));
	else if (n != size)
		FUZZ_CHECK(status == NB_ESHAPE, "set of %zu values for %zu: %s", n, size,
		           nb_status_name(status));
	else
		FUZZ_CHECK(status == NB_OK && memcmp(nb_value(x), src, n * sizeof *src) == 0,
		           "set: %s, or the values differ", nb_status_name(status));
}

static void cmd_touch(struct fuzz *f, int before)
{
	nb_tensor *x = pick(f);
	int status = nb_touch(x);

	if (!x) {
		FUZZ_CHECK(status == NB_ENULL, "touch(NULL): %s", nb_status_name(status));
		return;
	}
	FUZZ_CHECK(status == nb_tape_status(f->t), "touch returned %s, the tape holds %s",
	           nb_status_name(status), nb_status_name(nb_tape_status(f->t)));
	if (before == NB_OK)
		FUZZ_CHECK(status == (is_leaf(x) ? NB_OK : NB_EINVAL), "touch on a %s node: %s",
		           nb_op_name(x), nb_status_name(status));
}

/* Write into a view's array as a caller may, then say so. Only while the tape is usable:
 * on a tape in error nb_touch() is refused, as every call is. */
static void cmd_write_view(struct fuzz *f)
{
	uint8_t k = next(f);
	struct view *v = f->nv ? &f->v[k % f->nv] : NULL;

	if (!v || nb_tape_status(f->t) != NB_OK) {
		read_values(f, src, 0);
		return;
	}
	read_values(f, view_buf + v->off, v->n);
	FUZZ_CHECK(nb_touch(v->x) == NB_OK, "touch of a view: %s", nb_tape_message(f->t));
}

static void cmd_value(struct fuzz *f)
{
	nb_tensor *x = pick(f);

	FUZZ_CHECK((nb_value(x) == NULL) == (x == NULL), "value of %s", x ? "a tensor" : "NULL");
	check_values(f);
}

/* ---- Gradients ---------------------------------------------------------------------- */

static void cmd_backward(struct fuzz *f, int before)
{
	nb_tensor *y = pick(f), *seed = pick(f);
	int status = nb_backward(f->t, y, seed);

	FUZZ_CHECK(status == nb_tape_status(f->t), "backward returned %s, the tape holds %s",
	           nb_status_name(status), nb_status_name(nb_tape_status(f->t)));
	if (before != NB_OK || status == NB_ENOMEM || status == NB_ENONFINITE)
		return;
	if (!y)
		FUZZ_CHECK(status == NB_ENULL, "backward from NULL: %s", nb_status_name(status));
	else if (seed && !same_shape_as(seed, y))
		FUZZ_CHECK(status == NB_ESHAPE, "backward with a seed of another shape: %s",
		           nb_status_name(status));
	else if (!seed && nb_size(y) != 1)
		FUZZ_CHECK(status == NB_EINVAL, "backward from %zu elements without a seed: %s",
		           nb_size(y), nb_status_name(status));
	else
		FUZZ_CHECK(status == NB_OK, "backward: %s", nb_tape_message(f->t));
}

static void cmd_grad(struct fuzz *f)
{
	nb_tensor *x = pick(f), *g = nb_grad(x);

	if (!g)
		return;
	FUZZ_CHECK(x && same_shape_as(g, x), "grad of another shape than its tensor");
	check_tensor(g, "grad");
	add_handle(f, g);
}

static void cmd_gradients(struct fuzz *f, int before)
{
	static char sentinel;
	nb_tensor *y = pick(f), *seed = pick(f), *xs[4], *out[4];
	uint8_t b = next(f);
	size_t n = b % 5;
	int status;

	for (size_t i = 0; i < n; i++) {
		xs[i] = pick(f);
		out[i] = (nb_tensor *)(void *)&sentinel;
	}
	status = nb_gradients(f->t, y, seed, b & 8 ? NULL : xs, n, b & 16 ? NULL : out);
	FUZZ_CHECK(status == nb_tape_status(f->t), "gradients returned %s, the tape holds %s",
	           nb_status_name(status), nb_status_name(nb_tape_status(f->t)));
	if (b & 16)
		return;
	for (size_t i = 0; i < n && status == NB_OK; i++) {
		FUZZ_CHECK(out[i] && same_shape_as(out[i], xs[i]), "gradient %zu: %s", i,
		           out[i] ? "another shape" : "NULL");
		check_tensor(out[i], "gradients");
		add_handle(f, out[i]);
	}
	for (size_t i = 0; i < n && status != NB_OK && before == NB_OK; i++)
		FUZZ_CHECK(out[i] == NULL, "gradients failed (%s) but out[%zu] is set",
		           nb_status_name(status), i);
}

/* ---- Replay and marks --------------------------------------------------------------- */

static void cmd_replay(struct fuzz *f, int before)
{
	int status = nb_tape_replay(f->t);

	FUZZ_CHECK(status == nb_tape_status(f->t) && (before == NB_OK || status == before),
	           "replay returned %s, the tape holds %s", nb_status_name(status),
	           nb_status_name(nb_tape_status(f->t)));
	check_values(f);
}

static void cmd_mark(struct fuzz *f)
{
	if (f->nmarks == FT_MARKS) {
		memmove(f->mark, f->mark + 1, (FT_MARKS - 1) * sizeof *f->mark);
		f->nmarks--;
	}
	f->mark[f->nmarks++] = nb_tape_mark(f->t);
}

/* Rewind to m: past the end is NB_EINVAL and changes nothing else; otherwise the tape
 * ends at m and keeps its error. */
static void rewind_to(struct fuzz *f, size_t m, int status, int before, size_t size)
{
	if (m > size) {
		FUZZ_CHECK(status == NB_EINVAL && nb_tape_size(f->t) == size &&
		           nb_tape_status(f->t) == (before == NB_OK ? NB_EINVAL : before),
		           "rewind to %zu past %zu: %s", m, size, nb_status_name(status));
		return;
	}
	FUZZ_CHECK(status == NB_OK && nb_tape_size(f->t) == m && nb_tape_mark(f->t) == m &&
	           nb_tape_status(f->t) == before, "rewind to %zu of %zu: %s, size %zu, mark "
	           "%zu, status %s", m, size, nb_status_name(status), nb_tape_size(f->t),
	           nb_tape_mark(f->t), nb_status_name(nb_tape_status(f->t)));
	drop_from(f, m);
}

static void cmd_rewind(struct fuzz *f, int before)
{
	size_t size = nb_tape_size(f->t), m;
	uint8_t b = next(f);
	size_t k = b % (f->nmarks + 2);

	if (b == 0xff)
		m = SIZE_MAX;
	else if (k < f->nmarks)
		m = f->mark[f->nmarks - 1 - k];
	else
		m = k == f->nmarks ? size + 1 : size;
	rewind_to(f, m, nb_tape_rewind(f->t, m), before, size);
}

/* ---- Optimizers --------------------------------------------------------------------- */

/* The parameters of a step, their gradients and state, read from the input. */
struct step {
	uint8_t flags;
	size_t n;
	nb_tensor *params[MAX_PARAMS], *grads[MAX_PARAMS];
	double *s[3][MAX_PARAMS];
	double decay[MAX_PARAMS];
};

/* Read the parameters; false when one is too large for the state arrays (the step is
 * then not taken). Each state array is zeroed once per input, as far as it is used. */
static bool read_step(struct fuzz *f, struct step *st)
{
	bool ok = true;

	st->flags = next(f);
	st->n = 1 + (st->flags & 3);
	for (size_t i = 0; i < st->n; i++)
		st->params[i] = pick(f);
	for (size_t i = 0; i < st->n && (st->flags & FT_OPT_GRADS); i++)
		st->grads[i] = pick(f);
	for (size_t i = 0; i < st->n; i++) {
		size_t size = nb_size(st->params[i]);

		if (size > FIT_MAX) {
			ok = false;
			continue;
		}
		for (int k = 0; k < 3; k++) {
			if (size > f->zeroed[k][i]) {
				memset(state[k][i], 0, size * sizeof(double));
				f->zeroed[k][i] = size;
			}
			st->s[k][i] = state[k][i];
		}
		if (is_leaf(st->params[i]))
			memcpy(snap[i], nb_value(st->params[i]), size * sizeof(double));
	}
	return ok;
}

/* The step's result: the status it documents, and no parameter changed when it failed. */
static void check_step(struct fuzz *f, const struct step *st, int status, const char *what)
{
	if ((st->flags & FT_OPT_PARAMS_NULL) || !st->params[0]) {
		FUZZ_CHECK(status == NB_ENULL, "%s without params: %s", what,
		           nb_status_name(status));
		return;
	}
	FUZZ_CHECK(status == nb_tape_status(f->t), "%s returned %s, the tape holds %s", what,
	           nb_status_name(status), nb_status_name(nb_tape_status(f->t)));
	for (size_t i = 0; i < st->n && status != NB_OK; i++)
		if (is_leaf(st->params[i]))
			FUZZ_CHECK(memcmp(snap[i], nb_value(st->params[i]),
			                  nb_size(st->params[i]) * sizeof(double)) == 0,
			           "%s failed (%s) but params[%zu] changed", what,
			           nb_tape_message(f->t), i);
}

static const double etas[8] = { 0.1, 0.01, 1.0, 0.0, -1.0, NAN, INFINITY, 1e-3 };
static const double fractions[8] = { 0.0, 0.5, 0.9, 0.999, 1.0, -0.1, NAN, 0.0 };
static const double decays[8] = { 0.0, 0.01, 0.5, -1.0, INFINITY, NAN, 0.0, 0.0 };
static const double epss[4] = { 1e-8, 0.0, 1e-3, NAN };

static void cmd_sgd(struct fuzz *f)
{
	struct step st = { 0 };
	nb_sgd_opts o;
	bool ok = read_step(f, &st);
	int status;

	o.eta = etas[next(f) % 8];
	o.momentum = fractions[next(f) % 8];
	o.weight_decay = decays[next(f) % 8];
	for (size_t i = 0; i < st.n; i++)
		st.decay[i] = o.weight_decay;
	o.decay = st.flags & FT_OPT_DECAY ? st.decay : NULL;
	if (!ok)
		return;
	status = nb_sgd_update(st.flags & FT_OPT_PARAMS_NULL ? NULL : st.params,
	                       st.flags & FT_OPT_GRADS ? st.grads : NULL,
	                       st.flags & FT_OPT_STATE_NULL ? NULL : st.s[0], st.n, &o);
	check_step(f, &st, status, "sgd_update");
}

static void cmd_adam(struct fuzz *f)
{
	struct step st = { 0 };
	nb_adam_opts o;
	bool ok = read_step(f, &st);
	size_t step;
	int status;

	o.eta = etas[next(f) % 8];
	o.beta1 = fractions[next(f) % 8];
	o.beta2 = fractions[next(f) % 8];
	o.eps = epss[next(f) % 4];
	o.weight_decay = decays[next(f) % 8];
	for (size_t i = 0; i < st.n; i++)
		st.decay[i] = o.weight_decay;
	o.decay = st.flags & FT_OPT_DECAY ? st.decay : NULL;
	step = next(f);
	if (!ok)
		return;
	status = nb_adam_update(st.flags & FT_OPT_PARAMS_NULL ? NULL : st.params,
	                        st.flags & FT_OPT_GRADS ? st.grads : NULL,
	                        st.flags & FT_OPT_STATE_NULL ? NULL : st.s[1],
	                        st.flags & FT_OPT_STATE_NULL ? NULL : st.s[2], st.n, &o, step);
	check_step(f, &st, status, "adam_update");
}

/* ---- The program -------------------------------------------------------------------- */

static void run_command(struct fuzz *f)
{
	int cmd = next(f) % FT_COUNT, before = nb_tape_status(f->t), status;
	size_t size = nb_tape_size(f->t);
	uint8_t b;

	switch (cmd) {
	case FT_CONSTANT:
	case FT_VARIABLE:
	case FT_CONSTANT_VIEW:
	case FT_VARIABLE_VIEW:
		cmd_leaf(f, cmd, before);
		break;
	case FT_FILL:
	case FT_SCALAR:
	case FT_UNARY:
	case FT_BINARY:
	case FT_MATMUL_T:
	case FT_SCALE:
	case FT_AXIS:
	case FT_SHAPE:
		cmd_op(f, cmd, before);
		break;
	case FT_AGAIN:
		cmd_again(f, before);
		break;
	case FT_SET:
		cmd_set(f, before);
		break;
	case FT_TOUCH:
		cmd_touch(f, before);
		break;
	case FT_WRITE_VIEW:
		cmd_write_view(f);
		break;
	case FT_VALUE:
		cmd_value(f);
		break;
	case FT_BACKWARD:
		cmd_backward(f, before);
		break;
	case FT_GRAD:
		cmd_grad(f);
		break;
	case FT_GRADIENTS:
		cmd_gradients(f, before);
		break;
	case FT_REPLAY:
		cmd_replay(f, before);
		break;
	case FT_MARK:
		cmd_mark(f);
		break;
	case FT_REWIND:
		cmd_rewind(f, before);
		break;
	case FT_RESET:
		rewind_to(f, 0, nb_tape_reset(f->t), before, size);
		break;
	case FT_CLEAR_ERROR:
		nb_tape_clear_error(f->t);
		FUZZ_CHECK(nb_tape_status(f->t) == NB_OK, "status %d after clear_error",
		           nb_tape_status(f->t));
		break;
	case FT_CHECK_FINITE:
		nb_tape_check_finite(f->t, next(f) & 1);
		break;
	case FT_SGD:
		cmd_sgd(f);
		break;
	case FT_ADAM:
		cmd_adam(f);
		break;
	case FT_FAIL_ALLOC:
		b = next(f);
		f->mem.fail_at = b ? f->mem.count + b : 0;
		break;
	default:  /* FT_DOT */
		status = nb_tape_write_dot(f->t, devnull);
		FUZZ_CHECK(status == NB_OK, "write_dot: %s", nb_status_name(status));
		break;
	}
	if (trace)
		fprintf(stderr, "fuzz_tape: %-13s -> %s, %zu nodes, %zu handles%s%s\n",
		        cmd_name[cmd], nb_status_name(nb_tape_status(f->t)), nb_tape_size(f->t),
		        f->nh, nb_tape_status(f->t) ? ": " : "", nb_tape_message(f->t));
	check_tape(f, cmd_name[cmd], before, size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	trace = getenv("FUZZ_TAPE_TRACE") != NULL;
	devnull = fopen("/dev/null", "w");
	FUZZ_CHECK(devnull != NULL, "cannot open /dev/null");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz f;

	memset(&f, 0, sizeof f);
	f.in = (struct reader){ data, size, 0 };
	f.mem.max_block = ALLOC_MAX;
	f.mem.max_total = ALLOC_TOTAL;
	f.mem.fail_at = next(&f);
	f.t = nb_tape_new_alloc(fuzz_alloc_fn, &f.mem);
	FUZZ_CHECK((f.t == NULL) == (f.mem.fail_at == 1), "tape %s with allocation %zu failing",
	           f.t ? "made" : "not made", f.mem.fail_at);
	for (int calls = 0; f.t && calls < FT_MAX_CALLS && f.in.at < f.in.n; calls++)
		run_command(&f);
	if (f.t)
		check_values(&f);
	nb_tape_free(f.t);
	FUZZ_CHECK(f.mem.in_use == 0 && f.mem.blocks == 0, "%zu bytes in %zu blocks left after "
	           "nb_tape_free", f.mem.in_use, f.mem.blocks);
	return 0;
}
