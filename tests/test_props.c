/* test_props.c -- values are never stale, as a property. Random sequences of calls on one
 * tape (ops recorded, leaves changed by nb_set(), nb_touch() or an optimizer step, values
 * read, replays, reverse sweeps, ops on gradients and sweeps through them) are checked at
 * every read against a fresh tape on which the same calls are made from the current leaf
 * values: the two values must agree bit for bit. Then three scenarios of the rule. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define N_SEEDS 200      /* runs, one seed each */
#define N_STEPS 60       /* actions per run */
#define MAX_NODES 1024   /* a step adds a few nodes, an optimizer step one per variable */
#define MAX_EVENTS 1024
#define MAX_LEAVES 16
#define MAX_SIZE 9       /* the largest shapes: (3x3), (9) */
#define MAX_XS 3         /* tensors one nb_gradients() call differentiates for */
#define LOG_MAX (1 << 17)

/* exp is recorded only on values bounded by this, so that it stays in [e^-4, e^4] and
 * can be divided by or taken the log of. */
#define EXP_ARG_MAX 4.0

/* An SGD step computes w - eta g in the library's kernel, which may fuse the product and
 * the difference: the two roundings differ by at most an ulp of |w| + |eta g|. */
#define TOL_SGD (2 * DBL_EPSILON)
#define SGD_ETA 0.125

struct shape {
	int rank;
	size_t dim[2];
};

enum node_kind { P_LEAF, P_OP, P_GRAD };

enum prop_op {
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_EXP, OP_LOG, OP_TANH, OP_SIGMOID, OP_RELU, OP_STEP,
	OP_NEG, OP_SCALE, OP_SUM, OP_SUM_AXIS, OP_MATMUL, OP_TRANSPOSE, OP_RESHAPE,
	OP_BROADCAST_TO, OP_REDUCE_TO, OP_SOFTMAX, OP_FILL, OP_QUADRATIC_COST,
	OP_SIGMOID_XENT, OP_SOFTMAX_XENT, N_OPS
};

static const char *const op_fn[N_OPS] = {
	"nb_add", "nb_sub", "nb_mul", "nb_div", "nb_exp", "nb_log", "nb_tanh", "nb_sigmoid",
	"nb_relu", "nb_step", "nb_neg", "nb_scale", "nb_sum", "nb_sum_axis", "nb_matmul_t",
	"nb_transpose", "nb_reshape", "nb_broadcast_to", "nb_reduce_to", "nb_softmax", "nb_fill",
	"nb_quadratic_cost", "nb_sigmoid_cross_entropy", "nb_softmax_cross_entropy",
};

/* What a node is, enough to record it again on another tape. */
struct pnode {
	int kind;
	int op;              /* P_OP: enum prop_op */
	int a, b;            /* P_OP: operand nodes (-1: none); P_GRAD: the node differentiated */
	int leaf;            /* P_LEAF: index in prop.leaf */
	int axis, keepdim, flags;
	double c;            /* scale factor, fill value */
	struct shape shape;  /* of the result */
	double bound;        /* |value| <= bound for leaf values in [-1, 1] (INFINITY: unknown) */
	bool positive;       /* value in [e^-4, e^4] for leaf values in [-1, 1] */
	nb_tensor *h;        /* the node on the tape under test */
};

/* A leaf and its current values; a view leaf's values live in mem, the caller's array. */
struct pleaf {
	bool variable, view;
	struct shape shape;
	double val[MAX_SIZE];
	double mem[MAX_SIZE];
	int node;
};

/* One call that records nodes, in the order made: the history a fresh tape repeats. */
enum event_kind { EV_NODE, EV_BACKWARD, EV_GRADIENTS };

struct event {
	int kind;
	int node;            /* EV_NODE: the node; EV_BACKWARD, EV_GRADIENTS: the output y */
	int first, n;        /* EV_GRADIENTS: its gradients are nodes first .. first + n - 1 */
};

struct prop {
	test_rng r;
	unsigned seed;
	int at;              /* the step being taken, for messages */
	nb_tape *t;          /* the tape under test */
	struct pnode node[MAX_NODES];
	int n_nodes;
	struct pleaf leaf[MAX_LEAVES];
	int n_leaves;
	struct event ev[MAX_EVENTS];
	int n_ev;
	/* The fresh tape: the history up to ref_ev recorded from the leaf values current at
	 * that time; ref_dirty when a leaf changed since, so that it must be recorded anew. */
	nb_tape *ref;
	nb_tensor *ref_h[MAX_NODES];
	int ref_ev;
	bool ref_dirty;
	char log[LOG_MAX];   /* the calls made so far, as C, printed on a failure */
	size_t log_len;
};

/* ---- Bookkeeping ------------------------------------------------------------------- */

static void plog(struct prop *p, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (p->log_len >= LOG_MAX - 1)
		return;
	va_start(ap, fmt);
	k = vsnprintf(p->log + p->log_len, LOG_MAX - p->log_len, fmt, ap);
	va_end(ap);
	if (k > 0)
		p->log_len += (size_t)k < LOG_MAX - p->log_len ? (size_t)k : LOG_MAX - 1 - p->log_len;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void prop_fail(struct prop *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "test_props: seed %u, step %d: %s\nthe calls, from the start:\n%s\n",
	        p->seed, p->at, msg, p->log);
	ck_abort_msg("seed %u, step %d: %s", p->seed, p->at, msg);
}

static int rnd(struct prop *p, int n)
{
	return (int)rng_uniform(&p->r, 0.0, (double)n);
}

static bool coin(struct prop *p, double prob)
{
	return rng_uniform(&p->r, 0.0, 1.0) < prob;
}

static size_t shape_size(const struct shape *s)
{
	size_t n = 1;

	for (int i = 0; i < s->rank; i++)
		n *= s->dim[i];
	return n;
}

static bool shape_eq(const struct shape *a, const struct shape *b)
{
	return a->rank == b->rank && (a->rank < 1 || a->dim[0] == b->dim[0]) &&
	       (a->rank < 2 || a->dim[1] == b->dim[1]);
}

/* numpy's rule: align on the right, each pair of dims equal or one of them 1. */
static bool broadcast(const struct shape *a, const struct shape *b, struct shape *out)
{
	struct shape o = { a->rank > b->rank ? a->rank : b->rank, { 0, 0 } };

	for (int i = 1; i <= o.rank; i++) {
		size_t da = i <= a->rank ? a->dim[a->rank - i] : 1;
		size_t db = i <= b->rank ? b->dim[b->rank - i] : 1;

		if (da != db && da != 1 && db != 1)
			return false;
		o.dim[o.rank - i] = da > db ? da : db;
	}
	if (out)
		*out = o;
	return true;
}

static bool broadcasts_to(const struct shape *from, const struct shape *to)
{
	struct shape o;

	return broadcast(from, to, &o) && shape_eq(&o, to);
}

static void shape_c(char *buf, size_t len, const struct shape *s)
{
	if (s->rank == 0)
		snprintf(buf, len, "0, NULL");
	else if (s->rank == 1)
		snprintf(buf, len, "1, (size_t[]){ %zu }", s->dim[0]);
	else
		snprintf(buf, len, "2, (size_t[]){ %zu, %zu }", s->dim[0], s->dim[1]);
}

static void log_values(struct prop *p, const double *v, size_t n)
{
	plog(p, "(double[]){");
	for (size_t i = 0; i < n; i++)
		plog(p, " %.17g%s", v[i], i + 1 < n ? "," : "");
	plog(p, " }");
}

static int add_node(struct prop *p, const struct pnode *n)
{
	if (p->n_nodes == MAX_NODES)
		prop_fail(p, "more than %d nodes: raise MAX_NODES", MAX_NODES);
	p->node[p->n_nodes] = *n;
	return p->n_nodes++;
}

static void add_event(struct prop *p, int kind, int node, int first, int n)
{
	if (p->n_ev == MAX_EVENTS)
		prop_fail(p, "more than %d events: raise MAX_EVENTS", MAX_EVENTS);
	p->ev[p->n_ev++] = (struct event){ kind, node, first, n };
}

/* ---- Recording a node on either tape ------------------------------------------------ */

static nb_tensor *build_op(nb_tape *t, const struct pnode *n, nb_tensor *const *h)
{
	nb_tensor *a = n->a >= 0 ? h[n->a] : NULL, *b = n->b >= 0 ? h[n->b] : NULL;
	const struct shape *s = &n->shape;

	switch (n->op) {
	case OP_ADD: return nb_add(t, a, b);
	case OP_SUB: return nb_sub(t, a, b);
	case OP_MUL: return nb_mul(t, a, b);
	case OP_DIV: return nb_div(t, a, b);
	case OP_EXP: return nb_exp(t, a);
	case OP_LOG: return nb_log(t, a);
	case OP_TANH: return nb_tanh(t, a);
	case OP_SIGMOID: return nb_sigmoid(t, a);
	case OP_RELU: return nb_relu(t, a);
	case OP_STEP: return nb_step(t, a);
	case OP_NEG: return nb_neg(t, a);
	case OP_SCALE: return nb_scale(t, a, n->c);
	case OP_SUM: return nb_sum(t, a);
	case OP_SUM_AXIS: return nb_sum_axis(t, a, n->axis, n->keepdim);
	case OP_MATMUL: return n->flags ? nb_matmul_t(t, a, b, n->flags) : nb_matmul(t, a, b);
	case OP_TRANSPOSE: return nb_transpose(t, a);
	case OP_RESHAPE: return nb_reshape(t, a, s->rank, s->dim);
	case OP_BROADCAST_TO: return nb_broadcast_to(t, a, s->rank, s->dim);
	case OP_REDUCE_TO: return nb_reduce_to(t, a, s->rank, s->dim);
	case OP_SOFTMAX: return nb_softmax(t, a, n->axis);
	case OP_FILL: return nb_fill(t, s->rank, s->dim, n->c);
	case OP_QUADRATIC_COST: return nb_quadratic_cost(t, a, b);
	case OP_SIGMOID_XENT: return nb_sigmoid_cross_entropy(t, a, b);
	case OP_SOFTMAX_XENT: return nb_softmax_cross_entropy(t, a, b);
	}
	return NULL;
}

/* A leaf with its current values: on the tape under test a view of mem where the leaf is
 * a view, on the fresh tape always a copy. */
static nb_tensor *build_leaf(nb_tape *t, struct pleaf *l, bool fresh)
{
	const struct shape *s = &l->shape;

	if (fresh || !l->view)
		return (l->variable ? nb_variable : nb_constant)(t, s->rank, s->dim, l->val);
	memcpy(l->mem, l->val, shape_size(s) * sizeof *l->val);
	return (l->variable ? nb_variable_view : nb_constant_view)(t, s->rank, s->dim, l->mem);
}

/* Make the call of event e on t, whose nodes are h. */
static void apply_event(struct prop *p, nb_tape *t, nb_tensor **h, const struct event *e,
                        bool fresh)
{
	const struct pnode *n = &p->node[e->node];
	nb_tensor *xs[MAX_XS], *out[MAX_XS];

	switch (e->kind) {
	case EV_NODE:
		if (n->kind == P_LEAF)
			h[e->node] = build_leaf(t, &p->leaf[n->leaf], fresh);
		else if (n->kind == P_OP)
			h[e->node] = build_op(t, n, h);
		else
			h[e->node] = nb_grad(h[n->a]);
		if (!h[e->node])
			prop_fail(p, "%s tape: n%d is NULL: %s", fresh ? "fresh" : "tested", e->node,
			          nb_tape_message(t));
		break;
	case EV_BACKWARD:
		nb_backward(t, h[e->node], NULL);
		break;
	case EV_GRADIENTS:
		for (int i = 0; i < e->n; i++)
			xs[i] = h[p->node[e->first + i].a];
		nb_gradients(t, h[e->node], NULL, xs, (size_t)e->n, out);
		for (int i = 0; i < e->n; i++)
			h[e->first + i] = out[i];
		break;
	}
	if (nb_tape_status(t) != NB_OK)
		prop_fail(p, "%s tape: %s", fresh ? "fresh" : "tested", nb_tape_message(t));
}

/* Make the last event's call on the tape under test. */
static void apply_last(struct prop *p)
{
	nb_tensor *h[MAX_NODES];

	for (int i = 0; i < p->n_nodes; i++)
		h[i] = p->node[i].h;
	apply_event(p, p->t, h, &p->ev[p->n_ev - 1], false);
	for (int i = 0; i < p->n_nodes; i++)
		p->node[i].h = h[i];
}

/* Bring the fresh tape up to the history: all of it anew, from the current leaf values,
 * when some leaf changed since it was recorded. It then has exactly the nodes of the tape
 * under test, in the same order: hash-consing and the order in which a sweep adds up
 * gradients depend on that, so equal values can be asked bit for bit. */
static void ref_sync(struct prop *p)
{
	if (p->ref_dirty || !p->ref) {
		nb_tape_free(p->ref);
		p->ref = nb_tape_new();
		ck_assert_ptr_nonnull(p->ref);
		p->ref_ev = 0;
		p->ref_dirty = false;
	}
	for (; p->ref_ev < p->n_ev; p->ref_ev++)
		apply_event(p, p->ref, p->ref_h, &p->ev[p->ref_ev], true);
	if (nb_tape_size(p->ref) != nb_tape_size(p->t))
		prop_fail(p, "the tape has %zu nodes, the same calls on a fresh tape %zu",
		          nb_tape_size(p->t), nb_tape_size(p->ref));
}

static bool same_bits(double a, double b)
{
	return (isnan(a) && isnan(b)) || !memcmp(&a, &b, sizeof a);
}

/* Read node i on the tape under test and compare with the fresh tape. */
static void check_node(struct prop *p, int i)
{
	const struct pnode *n = &p->node[i];
	const double *got, *want;
	size_t size = nb_size(n->h);

	plog(p, "/* read */ nb_value(n%d);\n", i);
	got = nb_value(n->h);
	ref_sync(p);
	want = nb_value(p->ref_h[i]);
	if (size != nb_size(p->ref_h[i]))
		prop_fail(p, "n%d has %zu elements, on a fresh tape %zu", i, size,
		          nb_size(p->ref_h[i]));
	for (size_t k = 0; k < size; k++)
		if (!same_bits(got[k], want[k]))
			prop_fail(p, "n%d (%s) element %zu is %.17g, on a fresh tape %.17g", i,
			          nb_op_name(n->h), k, got[k], want[k]);
	if (nb_tape_status(p->t) != NB_OK)
		prop_fail(p, "%s", nb_tape_message(p->t));
}

/* ---- Choosing operands ---------------------------------------------------------------- */

typedef bool (*node_pred)(const struct pnode *x, const struct pnode *ctx);

static bool any(const struct pnode *x, const struct pnode *ctx)
{
	(void)x, (void)ctx;
	return true;
}

static bool bounded(const struct pnode *x, const struct pnode *ctx)
{
	(void)ctx;
	return x->bound <= EXP_ARG_MAX;
}

static bool positive(const struct pnode *x, const struct pnode *ctx)
{
	(void)ctx;
	return x->positive;
}

static bool ranked(const struct pnode *x, const struct pnode *ctx)
{
	(void)ctx;
	return x->shape.rank >= 1;
}

static bool matrix(const struct pnode *x, const struct pnode *ctx)
{
	(void)ctx;
	return x->shape.rank == 2;
}

static bool size_one(const struct pnode *x, const struct pnode *ctx)
{
	(void)ctx;
	return shape_size(&x->shape) == 1;
}

/* ctx->shape holds the left operand's shape. */
static bool broadcasts_with(const struct pnode *x, const struct pnode *ctx)
{
	return broadcast(&x->shape, &ctx->shape, NULL);
}

static bool positive_broadcasts_with(const struct pnode *x, const struct pnode *ctx)
{
	return x->positive && broadcasts_with(x, ctx);
}

static bool same_shape(const struct pnode *x, const struct pnode *ctx)
{
	return shape_eq(&x->shape, &ctx->shape);
}

/* ctx->shape is op(a) and ctx->flags says whether b is transposed. */
static bool matmul_right(const struct pnode *x, const struct pnode *ctx)
{
	size_t k = ctx->shape.dim[1];

	return x->shape.rank == 2 && x->shape.dim[ctx->flags & NB_TRANS_B ? 1 : 0] == k;
}

/* A node that satisfies ok, -1 when none does: half the time one of the last few, so that
 * expressions grow deep as well as wide. */
static int pick(struct prop *p, node_pred ok, const struct pnode *ctx)
{
	static int cand[MAX_NODES];
	int n = 0;

	for (int i = 0; i < p->n_nodes; i++)
		if (ok(&p->node[i], ctx))
			cand[n++] = i;
	if (n == 0)
		return -1;
	if (n > 6 && coin(p, 0.5))
		return cand[n - 6 + rnd(p, 6)];
	return cand[rnd(p, n)];
}

/* The shapes of rank 0 to 2 with dims 1 to 3: targets of broadcast_to and reduce_to. */
static int small_shapes(struct shape *out)
{
	int n = 0;

	out[n++] = (struct shape){ 0, { 0, 0 } };
	for (size_t i = 1; i <= 3; i++)
		out[n++] = (struct shape){ 1, { i, 0 } };
	for (size_t i = 1; i <= 3; i++)
		for (size_t j = 1; j <= 3; j++)
			out[n++] = (struct shape){ 2, { i, j } };
	return n;
}

/* A random shape among those that fit rel(x, shape) (or rel(shape, x) with flip), or
 * false when there is none. */
static bool pick_shape(struct prop *p, const struct shape *x, bool to, struct shape *out)
{
	struct shape all[13], fit[13];
	int n = small_shapes(all), m = 0;

	for (int i = 0; i < n; i++)
		if (to ? broadcasts_to(x, &all[i]) : broadcasts_to(&all[i], x))
			fit[m++] = all[i];
	if (m == 0)
		return false;
	*out = fit[rnd(p, m)];
	return true;
}

/* Another shape with as many elements: rank 1 up to (9), rank 2 up to (3x3). */
static bool reshape_target(struct prop *p, const struct shape *x, struct shape *out)
{
	struct shape fit[8];
	size_t size = shape_size(x);
	int m = 0;

	if (size == 1)
		fit[m++] = (struct shape){ 0, { 0, 0 } };
	if (size <= MAX_SIZE)
		fit[m++] = (struct shape){ 1, { size, 0 } };
	for (size_t i = 1; i <= 3; i++)
		if (size % i == 0 && size / i <= 3)
			fit[m++] = (struct shape){ 2, { i, size / i } };
	if (m == 0)
		return false;
	*out = fit[rnd(p, m)];
	return true;
}

/* Fill n with op on operands of the tape that fit it, its shape and bound; false when
 * there are none yet. */
static bool choose_op(struct prop *p, int op, struct pnode *n)
{
	static const double scales[] = { 0.5, -2.0, 3.0, 0.0, 1.0, -1.0 };
	static const double fills[] = { 0.0, 1.0, 2.0, -0.5 };
	const struct pnode *a, *b;
	struct shape all[13];

	*n = (struct pnode){ .kind = P_OP, .op = op, .a = -1, .b = -1 };
	switch (op) {
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
		if ((n->a = pick(p, any, NULL)) < 0)
			return false;
		a = &p->node[n->a];
		n->b = pick(p, op == OP_DIV ? positive_broadcasts_with : broadcasts_with, a);
		if (n->b < 0)
			return false;
		b = &p->node[n->b];
		broadcast(&a->shape, &b->shape, &n->shape);
		n->bound = op == OP_MUL ? a->bound * b->bound :
		           op == OP_DIV ? a->bound * exp(EXP_ARG_MAX) : a->bound + b->bound;
		return true;
	case OP_EXP:
		if ((n->a = pick(p, bounded, NULL)) < 0)
			return false;
		n->shape = p->node[n->a].shape;
		n->bound = exp(EXP_ARG_MAX);
		n->positive = true;
		return true;
	case OP_LOG:
		if ((n->a = pick(p, positive, NULL)) < 0)
			return false;
		n->shape = p->node[n->a].shape;
		n->bound = EXP_ARG_MAX;
		return true;
	case OP_TANH: case OP_SIGMOID: case OP_RELU: case OP_STEP: case OP_NEG: case OP_SCALE:
	case OP_SUM:
		n->a = pick(p, any, NULL);
		a = &p->node[n->a];
		n->shape = op == OP_SUM ? (struct shape){ 0, { 0, 0 } } : a->shape;
		n->c = scales[rnd(p, 6)];
		n->bound = op == OP_TANH || op == OP_SIGMOID || op == OP_STEP ? 1.0 :
		           op == OP_SCALE ? fabs(n->c) * a->bound :
		           op == OP_SUM ? (double)shape_size(&a->shape) * a->bound : a->bound;
		if (op != OP_SCALE)
			n->c = 0.0;
		return true;
	case OP_SUM_AXIS: case OP_SOFTMAX:
		if ((n->a = pick(p, ranked, NULL)) < 0)
			return false;
		a = &p->node[n->a];
		n->axis = rnd(p, a->shape.rank);
		n->shape = a->shape;
		if (op == OP_SOFTMAX) {
			n->bound = 1.0;
			return true;
		}
		n->keepdim = rnd(p, 2);
		n->shape.dim[n->axis] = 1;
		if (!n->keepdim) {
			if (n->axis == 0)
				n->shape.dim[0] = n->shape.dim[1];
			n->shape.rank--;
		}
		n->bound = (double)a->shape.dim[n->axis] * a->bound;
		return true;
	case OP_MATMUL: {
		struct pnode ctx = { .flags = rnd(p, 4) };

		if ((n->a = pick(p, matrix, NULL)) < 0)
			return false;
		a = &p->node[n->a];
		ctx.shape = a->shape;
		if (ctx.flags & NB_TRANS_A)
			ctx.shape.dim[0] = a->shape.dim[1], ctx.shape.dim[1] = a->shape.dim[0];
		if ((n->b = pick(p, matmul_right, &ctx)) < 0)
			return false;
		b = &p->node[n->b];
		n->flags = ctx.flags;
		n->shape = (struct shape){ 2, { ctx.shape.dim[0],
		                                b->shape.dim[ctx.flags & NB_TRANS_B ? 0 : 1] } };
		n->bound = (double)ctx.shape.dim[1] * a->bound * b->bound;
		return true;
	}
	case OP_TRANSPOSE:
		if ((n->a = pick(p, matrix, NULL)) < 0)
			return false;
		a = &p->node[n->a];
		n->shape = (struct shape){ 2, { a->shape.dim[1], a->shape.dim[0] } };
		n->bound = a->bound;
		return true;
	case OP_RESHAPE:
		n->a = pick(p, any, NULL);
		a = &p->node[n->a];
		n->bound = a->bound;
		return reshape_target(p, &a->shape, &n->shape);
	case OP_BROADCAST_TO: case OP_REDUCE_TO:
		n->a = pick(p, any, NULL);
		a = &p->node[n->a];
		if (!pick_shape(p, &a->shape, op == OP_BROADCAST_TO, &n->shape))
			return false;
		n->bound = op == OP_BROADCAST_TO ? a->bound : a->bound *
		           (double)shape_size(&a->shape) / (double)shape_size(&n->shape);
		return true;
	case OP_FILL:
		n->shape = all[rnd(p, small_shapes(all))];
		n->c = fills[rnd(p, 4)];
		n->bound = fabs(n->c);
		return true;
	case OP_QUADRATIC_COST: case OP_SIGMOID_XENT: case OP_SOFTMAX_XENT:
		if ((n->a = pick(p, op == OP_SOFTMAX_XENT ? ranked : any, NULL)) < 0)
			return false;
		n->b = pick(p, same_shape, &p->node[n->a]);
		n->shape = (struct shape){ 0, { 0, 0 } };
		n->bound = INFINITY;
		return true;
	}
	return false;
}

/* ---- Actions ---------------------------------------------------------------------------- */

static void log_op(struct prop *p, int i)
{
	const struct pnode *n = &p->node[i];
	char s[64];

	shape_c(s, sizeof s, &n->shape);
	plog(p, "nb_tensor *n%d = %s(t", i, op_fn[n->op]);
	if (n->a >= 0)
		plog(p, ", n%d", n->a);
	if (n->b >= 0)
		plog(p, ", n%d", n->b);
	switch (n->op) {
	case OP_SCALE: plog(p, ", %.17g", n->c); break;
	case OP_SUM_AXIS: plog(p, ", %d, %d", n->axis, n->keepdim); break;
	case OP_MATMUL: plog(p, ", %d", n->flags); break;
	case OP_SOFTMAX: plog(p, ", %d", n->axis); break;
	case OP_RESHAPE: case OP_BROADCAST_TO: case OP_REDUCE_TO: plog(p, ", %s", s); break;
	case OP_FILL: plog(p, ", %s, %.17g", s, n->c); break;
	}
	plog(p, ");\n");
}

/* Record the op node n on the tape under test; half the time read it at once, which is
 * the value recording computed (or the node hash-consing handed back). */
static int add_op(struct prop *p, const struct pnode *n)
{
	int i = add_node(p, n);

	add_event(p, EV_NODE, i, 0, 0);
	log_op(p, i);
	apply_last(p);
	return i;
}

static int add_leaf(struct prop *p, bool variable)
{
	static const struct shape shapes[4] = {
		{ 0, { 0, 0 } }, { 1, { 3, 0 } }, { 2, { 2, 3 } }, { 2, { 3, 2 } },
	};
	struct pleaf *l;
	char s[64];
	int i;

	if (p->n_leaves == MAX_LEAVES)
		return -1;
	l = &p->leaf[p->n_leaves];
	*l = (struct pleaf){ .variable = variable, .view = coin(p, 0.3),
	                     .shape = shapes[rnd(p, 4)] };
	rng_fill(&p->r, l->val, shape_size(&l->shape), -1.0, 1.0);
	i = add_node(p, &(struct pnode){ .kind = P_LEAF, .a = -1, .b = -1, .leaf = p->n_leaves,
	                                 .shape = l->shape, .bound = 1.0 });
	l->node = i;
	p->n_leaves++;
	add_event(p, EV_NODE, i, 0, 0);
	shape_c(s, sizeof s, &l->shape);
	plog(p, "nb_tensor *n%d = nb_%s%s(t, %s, ", i, variable ? "variable" : "constant",
	     l->view ? "_view" : "", s);
	log_values(p, l->val, shape_size(&l->shape));
	plog(p, ");\n");
	apply_last(p);
	return i;
}

static void act_op(struct prop *p)
{
	struct pnode n;
	int i;

	for (int tries = 0; !choose_op(p, rnd(p, N_OPS), &n); tries++)
		if (tries == 20)
			return;
	i = add_op(p, &n);
	if (coin(p, 0.5))
		check_node(p, i);
}

/* Record an op already on the tape once more: hash-consing hands back the node, which
 * must be brought up to date first. */
static void act_again(struct prop *p)
{
	int cand[MAX_NODES], m = 0;

	for (int i = 0; i < p->n_nodes; i++)
		if (p->node[i].kind == P_OP)
			cand[m++] = i;
	if (m)
		check_node(p, add_op(p, &p->node[cand[rnd(p, m)]]));
}

/* New values for a leaf: nb_set(), or for a view its array written and nb_touch(). */
static void act_set(struct prop *p)
{
	struct pleaf *l = &p->leaf[rnd(p, p->n_leaves)];
	size_t size = shape_size(&l->shape);

	rng_fill(&p->r, l->val, size, -1.0, 1.0);
	if (l->view && coin(p, 0.5)) {
		memcpy(l->mem, l->val, size * sizeof *l->val);
		plog(p, "memcpy(mem%d, ", l->node);
		log_values(p, l->val, size);
		plog(p, ", %zu * sizeof(double)); nb_touch(n%d);\n", size, l->node);
		ck_assert_int_eq(nb_touch(p->node[l->node].h), NB_OK);
	} else {
		plog(p, "nb_set(n%d, ", l->node);
		log_values(p, l->val, size);
		plog(p, ", %zu);\n", size);
		ck_assert_int_eq(nb_set(p->node[l->node].h, l->val, size), NB_OK);
	}
	p->ref_dirty = true;
}

static void act_read(struct prop *p)
{
	for (int k = 1 + rnd(p, 3); k > 0; k--)
		check_node(p, rnd(p, p->n_nodes));
}

static void act_replay(struct prop *p)
{
	plog(p, "nb_tape_replay(t);\n");
	if (nb_tape_replay(p->t) != NB_OK)
		prop_fail(p, "replay: %s", nb_tape_message(p->t));
}

/* A node with one element to sweep from: an existing one, or the sum of some node. */
static int sweep_output(struct prop *p)
{
	int y = pick(p, size_one, NULL);
	struct pnode n;

	if (y >= 0 && coin(p, 0.5))
		return y;
	choose_op(p, OP_SUM, &n);
	return add_op(p, &n);
}

/* nb_backward() from y, then nb_grad() of some leaves (or other nodes) of the tape. */
static void sweep_backward(struct prop *p, int y, int n_grads, const int *of)
{
	add_event(p, EV_BACKWARD, y, 0, 0);
	plog(p, "nb_backward(t, n%d, NULL);\n", y);
	apply_last(p);
	for (int k = 0; k < n_grads; k++) {
		const struct pnode *x = &p->node[of[k]];
		int i = add_node(p, &(struct pnode){ .kind = P_GRAD, .a = of[k], .b = -1,
		                                     .shape = x->shape, .bound = INFINITY });

		add_event(p, EV_NODE, i, 0, 0);
		plog(p, "nb_tensor *n%d = nb_grad(n%d);\n", i, of[k]);
		apply_last(p);
	}
}

/* A reverse sweep (nb_backward() or nb_gradients()) from some scalar, reading some of the
 * gradients it records; they join the tape's nodes, so later ops and sweeps use them. */
static void act_backward(struct prop *p)
{
	int y = sweep_output(p), n = 1 + rnd(p, MAX_XS), of[MAX_XS], first;

	for (int k = 0; k < n; k++)
		of[k] = coin(p, 0.75) ? p->leaf[rnd(p, p->n_leaves)].node : rnd(p, p->n_nodes);
	if (coin(p, 0.7)) {
		sweep_backward(p, y, n, of);
		first = p->n_nodes - n;
	} else {
		first = p->n_nodes;
		plog(p, "nb_gradients(t, n%d, NULL, (nb_tensor *[]){", y);
		for (int k = 0; k < n; k++) {
			add_node(p, &(struct pnode){ .kind = P_GRAD, .a = of[k], .b = -1,
			                             .shape = p->node[of[k]].shape, .bound = INFINITY });
			plog(p, " n%d%s", of[k], k + 1 < n ? "," : "");
		}
		plog(p, " }, %d, out); /* n%d .. n%d = out[0 ..] */\n", n, first, first + n - 1);
		add_event(p, EV_GRADIENTS, y, first, n);
		apply_last(p);
	}
	for (int k = 0; k < n; k++)
		if (coin(p, 0.6))
			check_node(p, first + k);
}

/* One SGD step on every variable with the gradients of a new sweep, often after a leaf
 * changed since: the update must use the current gradients, and what it writes is the
 * variables' new current values (kept in [-1, 1] by an nb_set() where it took them out). */
static void act_sgd(struct prop *p)
{
	nb_tensor *params[MAX_LEAVES], *grads[MAX_LEAVES];
	int of[MAX_LEAVES] = { 0 }, nv = 0, y = sweep_output(p), first;
	double want[MAX_LEAVES][MAX_SIZE];
	nb_sgd_opts opts = { .eta = SGD_ETA };

	for (int j = 0; j < p->n_leaves; j++)
		if (p->leaf[j].variable)
			of[nv++] = p->leaf[j].node;
	sweep_backward(p, y, nv, of);
	first = p->n_nodes - nv;
	if (coin(p, 0.6))  /* the gradients are then to be recomputed at the new point */
		act_set(p);
	for (int k = 0; k < nv; k++) {
		const struct pleaf *l = &p->leaf[p->node[of[k]].leaf];
		const double *g;

		if (coin(p, 0.5))  /* otherwise the update is the first to read it */
			check_node(p, first + k);
		ref_sync(p);
		g = nb_value(p->ref_h[first + k]);
		for (size_t i = 0; i < shape_size(&l->shape); i++)
			want[k][i] = l->val[i] - SGD_ETA * g[i];
		params[k] = p->node[of[k]].h;
		grads[k] = p->node[first + k].h;
	}
	plog(p, "nb_sgd_update(params, grads, NULL, %d, &(nb_sgd_opts){ .eta = %g });\n", nv,
	     SGD_ETA);
	if (nb_sgd_update(params, grads, NULL, (size_t)nv, &opts) != NB_OK)
		prop_fail(p, "sgd_update: %s", nb_tape_message(p->t));
	p->ref_dirty = true;
	for (int k = 0; k < nv; k++) {
		struct pleaf *l = &p->leaf[p->node[of[k]].leaf];
		size_t size = shape_size(&l->shape);
		const double *w = nb_value(params[k]);
		bool out = false;

		for (size_t i = 0; i < size; i++) {
			double tol = TOL_SGD * (fabs(l->val[i]) + fabs(want[k][i] - l->val[i]));

			if (!(fabs(w[i] - want[k][i]) <= tol))
				prop_fail(p, "sgd_update: n%d element %zu is %.17g, expected %.17g",
				          of[k], i, w[i], want[k][i]);
			l->val[i] = fmax(-1.0, fmin(1.0, w[i]));
			out |= l->val[i] != w[i];
		}
		if (!out)
			continue;
		plog(p, "nb_set(n%d, ", of[k]);
		log_values(p, l->val, size);
		plog(p, ", %zu);\n", size);
		ck_assert_int_eq(nb_set(params[k], l->val, size), NB_OK);
	}
}

/* ---- The property ------------------------------------------------------------------- */

static void prop_run(struct prop *p)
{
	static int order[MAX_NODES];
	int n_leaves = 3 + rnd(p, 3);

	p->t = nb_tape_new();
	ck_assert_ptr_nonnull(p->t);
	for (int j = 0; j < n_leaves; j++)
		add_leaf(p, j == 0 || coin(p, 0.65));
	for (p->at = 0; p->at < N_STEPS; p->at++) {
		double u = rng_uniform(&p->r, 0.0, 1.0);

		plog(p, "/* step %d */\n", p->at);
		if (u < 0.38)
			act_op(p);
		else if (u < 0.44)
			act_again(p);
		else if (u < 0.58)
			act_set(p);
		else if (u < 0.73)
			act_read(p);
		else if (u < 0.78)
			act_replay(p);
		else if (u < 0.91)
			act_backward(p);
		else if (u < 0.96)
			act_sgd(p);
		else
			add_leaf(p, coin(p, 0.5));
	}
	/* a leaf changes, then every node is read in a random order: each read refreshes
	 * what the reads before it left stale */
	plog(p, "/* all nodes */\n");
	act_set(p);
	for (int i = 0; i < p->n_nodes; i++)
		order[i] = i;
	for (int i = p->n_nodes; i > 1; i--) {
		int k = rnd(p, i), tmp = order[k];

		order[k] = order[i - 1];
		order[i - 1] = tmp;
	}
	for (int i = 0; i < p->n_nodes; i++)
		check_node(p, order[i]);
	nb_tape_free(p->ref);
	nb_tape_free(p->t);
}

START_TEST(test_values_match_a_fresh_tape)
{
	struct prop *p = calloc(1, sizeof *p);

	ck_assert_ptr_nonnull(p);
	p->seed = (unsigned)_i;
	rng_seed(&p->r, 0x5eed0000u + p->seed);
	prop_run(p);
	free(p);
}
END_TEST

/* ---- A training loop that forgets to replay ----------------------------------------
 * (hash-consing onto, and sweeping through, a node after nb_set: tests/test_lifetime.c) */

/* sum(sigmoid(w x)) and its gradient, recorded once on t or afresh on u. */
static nb_tensor *small_layer(nb_tape *t, const double *w, const double *x, nb_tensor **gw,
                              nb_tensor **leaves)
{
	nb_tensor *W = nb_variable(t, 2, (size_t[]){ 2, 3 }, w);
	nb_tensor *X = nb_constant(t, 2, (size_t[]){ 3, 2 }, x);
	nb_tensor *c = nb_sum(t, nb_sigmoid(t, nb_matmul(t, W, X)));

	ck_assert_int_eq(nb_backward(t, c, NULL), NB_OK);
	*gw = nb_grad(W);
	leaves[0] = W;
	leaves[1] = X;
	return c;
}

/* A training loop that sets new inputs and parameters each step and never replays reads
 * the values of the new point, bit for bit those of a graph recorded there afresh. */
START_TEST(test_loop_without_replay_reads_current_values)
{
	test_rng r;
	double w[6], x[6];
	nb_tensor *gw, *leaves[2];
	nb_tape *t = nb_tape_new();
	nb_tensor *c;

	rng_seed(&r, 11);
	rng_fill(&r, w, 6, -1, 1);
	rng_fill(&r, x, 6, -1, 1);
	c = small_layer(t, w, x, &gw, leaves);
	for (int it = 0; it < 5; it++) {
		nb_tensor *fgw, *fleaves[2];
		nb_tape *u = nb_tape_new();
		nb_tensor *fc;

		rng_fill(&r, x, 6, -1, 1);
		ck_assert_int_eq(nb_set(leaves[1], x, 6), NB_OK);
		fc = small_layer(u, w, x, &fgw, fleaves);
		ck_assert_mem_eq(nb_value(c), nb_value(fc), sizeof(double));
		ck_assert_mem_eq(nb_value(gw), nb_value(fgw), 6 * sizeof(double));
		for (int i = 0; i < 6; i++)
			w[i] -= 0.5 * nb_value(gw)[i];
		ck_assert_int_eq(nb_set(leaves[0], w, 6), NB_OK);
		nb_tape_free(u);
	}
	nb_tape_free(t);
}
END_TEST

static Suite *props_suite(void)
{
	Suite *s = suite_create("props");
	TCase *tc = tcase_create("props");

	tcase_add_loop_test(tc, test_values_match_a_fresh_tape, 0, N_SEEDS);
	tcase_add_test(tc, test_loop_without_replay_reads_current_values);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(props_suite());
}
