/* tape.c -- the Wengert list: recording nodes (with hash-consing), leaves, the reverse
 * sweep that records gradients as nodes, and replay. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla_int.h"

/* Leaves have no kernel and no rule: their values are set by the user. */
const struct nb_op nb__op_constant = { .name = "constant", .arity = 0 };
const struct nb_op nb__op_variable = { .name = "variable", .arity = 0 };

nb_tape *nb_tape_new_alloc(nb_alloc_fn alloc, void *ud)
{
	nb_tape *t;

	if (!alloc)
		return NULL;
	t = alloc(ud, NULL, 0, sizeof *t);
	if (!t)
		return NULL;
	memset(t, 0, sizeof *t);
	t->alloc = alloc;
	t->ud = ud;
	return t;
}

nb_tape *nb_tape_new(void)
{
	return nb_tape_new_alloc(nb__default_alloc, NULL);
}

static size_t node_bytes(const nb_tensor *x)
{
	return sizeof(nb_tensor) + (x->borrowed ? 0 : x->size * sizeof(double));
}

void nb_tape_free(nb_tape *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		nb__free(t, t->node[i], node_bytes(t->node[i]));
	nb__free(t, t->node, t->cap * sizeof *t->node);
	nb__free(t, t->scratch, t->scratch_n * sizeof *t->scratch);
	nb__hashcons_free(t);
	t->alloc(t->ud, t, sizeof *t, 0);
}

size_t nb_tape_size(const nb_tape *t)
{
	return t ? t->n : 0;
}

/* Make room for one more node pointer, doubling the list. */
static bool reserve_one(nb_tape *t)
{
	size_t cap = t->cap ? 2 * t->cap : 64;
	nb_tensor **node;

	if (t->n < t->cap)
		return true;
	node = nb__alloc(t, cap * sizeof *node);
	if (!node)
		return false;
	if (t->n)
		memcpy(node, t->node, t->n * sizeof *node);
	nb__free(t, t->node, t->cap * sizeof *t->node);
	t->node = node;
	t->cap = cap;
	return true;
}

/* A new node of the given shape appended to the tape, its value buffer allocated with it
 * (uninitialised) unless the value is borrowed, and every other field zero. */
static nb_tensor *append_node(nb_tape *t, const struct nb_op *op, int rank, const size_t *dim,
                              double *borrowed)
{
	size_t size = nb__shape_size(rank, dim);
	nb_tensor *x;

	if (!reserve_one(t))
		return NULL;
	x = nb__alloc(t, sizeof *x + (borrowed ? 0 : size * sizeof(double)));
	if (!x)
		return NULL;
	memset(x, 0, sizeof *x);
	x->op = op;
	x->tape = t;
	x->id = t->n;
	x->rank = rank;
	if (rank)
		memcpy(x->dim, dim, (size_t)rank * sizeof *dim);
	x->size = size;
	x->borrowed = borrowed != NULL;
	x->value = borrowed ? borrowed : (double *)(x + 1);
	x->in_gradient = t->in_backward;
	t->node[t->n++] = x;
	return x;
}

void nb_tape_check_finite(nb_tape *t, int on)
{
	if (t)
		t->check_finite = on != 0;
}

/* Evaluate x and stamp it; with checking on, an error for its first non-finite value. */
static bool compute(nb_tape *t, nb_tensor *x)
{
	char s[NB_MSG_MAX];

	x->op->forward(x);
	x->time = ++t->clock;
	if (!t->check_finite)
		return true;
	for (size_t i = 0; i < x->size; i++) {
		if (isfinite(x->value[i]))
			continue;
		nb__fail(t, NB_ENONFINITE, "%s: produced %s at element %zu of node %zu, shape %s, in "
		         "the %s pass", x->op->name, isnan(x->value[i]) ? "NaN" : "an infinity", i,
		         x->id, nb__shape_str(x->rank, x->dim, s),
		         x->in_gradient ? "backward" : "forward");
		return false;
	}
	return true;
}

nb_tensor *nb__record(nb_tape *t, const struct nb_op *op, nb_tensor *const *in,
                      const struct nb_attr *attr, int rank, const size_t *dim)
{
	static const struct nb_attr none;
	uint64_t h;
	nb_tensor *x;

	if (!attr)
		attr = &none;
	h = nb__node_hash(op, in, attr, rank, dim);
	x = nb__hashcons_find(&t->hc, h, op, in, attr, rank, dim);
	if (x)
		return x;
	x = append_node(t, op, rank, dim, NULL);
	if (!x)
		return NULL;
	x->attr = *attr;
	for (int i = 0; i < op->arity; i++) {
		x->in[i] = in[i];
		x->needs_grad |= in[i]->needs_grad;
	}
	/* On failure the node stays on the list (the tape owns it) but is never found again. */
	if (!compute(t, x))
		return NULL;
	return nb__hashcons_insert(t, x, h) ? x : NULL;
}

bool nb__reserve_scratch(nb_tape *t, size_t n)
{
	double *s;

	if (n <= t->scratch_n)
		return true;
	s = nb__alloc(t, n * sizeof *s);
	if (!s)
		return false;
	nb__free(t, t->scratch, t->scratch_n * sizeof *t->scratch);
	t->scratch = s;
	t->scratch_n = n;
	return true;
}

nb_tensor *nb__record_unary(nb_tape *t, const struct nb_op *op, nb_tensor *x)
{
	if (!nb__args_ok(t, op->name, &x, 1))
		return NULL;
	return nb__record(t, op, &x, NULL, x->rank, x->dim);
}

/* A leaf that owns its values (copied from data, zeros for NULL) or, with borrow, uses
 * the memory at data in place. */
static nb_tensor *leaf(nb_tape *t, const struct nb_op *op, int rank, const size_t *dim,
                       const double *data, double *borrow)
{
	nb_tensor *x;

	if (!nb__args_ok(t, op->name, NULL, 0) || !nb__shape_ok(t, op->name, rank, dim))
		return NULL;
	x = append_node(t, op, rank, dim, borrow);
	if (!x)
		return NULL;
	if (!borrow && data)
		memcpy(x->value, data, x->size * sizeof *data);
	else if (!borrow)
		memset(x->value, 0, x->size * sizeof *x->value);
	x->needs_grad = op == &nb__op_variable;
	x->time = ++t->clock;
	return x;
}

nb_tensor *nb__leaf_view(nb_tape *t, bool variable, int rank, const size_t *dim, double *data)
{
	return leaf(t, variable ? &nb__op_variable : &nb__op_constant, rank, dim, NULL, data);
}

nb_tensor *nb_constant(nb_tape *t, int rank, const size_t *dim, const double *data)
{
	return leaf(t, &nb__op_constant, rank, dim, data, NULL);
}

nb_tensor *nb_variable(nb_tape *t, int rank, const size_t *dim, const double *data)
{
	return leaf(t, &nb__op_variable, rank, dim, data, NULL);
}

int nb_set(nb_tensor *x, const double *data, size_t n)
{
	nb_tape *t = x ? x->tape : NULL;
	char s[NB_MSG_MAX];

	if (!x)
		return NB_ENULL;
	if (!nb__args_ok(t, "set", &x, 1))
		return t->status;
	if (x->op != &nb__op_constant && x->op != &nb__op_variable)
		nb__fail(t, NB_EINVAL, "set: tensor is a %s node, not a constant or variable leaf",
		         x->op->name);
	else if (!data)
		nb__fail(t, NB_ENULL, "set: data is NULL");
	else if (n != x->size)
		nb__fail(t, NB_ESHAPE, "set: %zu values for a tensor of shape %s (%zu elements)",
		         n, nb__shape_str(x->rank, x->dim, s), x->size);
	else {
		memcpy(x->value, data, n * sizeof *data);
		x->time = ++t->clock;
	}
	return t->status;
}

void nb_set_name(nb_tensor *x, const char *name)
{
	if (!x)
		return;
	snprintf(x->name, sizeof x->name, "%s", name ? name : "");
}

const char *nb_name(const nb_tensor *x)
{
	return x ? x->name : "";
}

void nb__grad_add(nb_tape *t, nb_tensor *x, nb_tensor *g)
{
	if (!g || !x->needs_grad)
		return;
	x->grad = x->grad ? nb_add(t, x->grad, g) : g;
}

nb_tensor *nb_grad(const nb_tensor *x)
{
	return x ? x->grad : NULL;
}

/* The seed dL/dy: the user's, or 1 for a y with one element. */
static nb_tensor *backward_seed(nb_tape *t, nb_tensor *y, nb_tensor *seed)
{
	char sy[NB_MSG_MAX], ss[NB_MSG_MAX];

	if (seed && !nb__same_shape(seed, y))
		return nb__fail(t, NB_ESHAPE, "backward: seed of shape %s for an output of shape %s",
		                nb__shape_str(seed->rank, seed->dim, ss),
		                nb__shape_str(y->rank, y->dim, sy));
	if (!seed && y->size != 1)
		return nb__fail(t, NB_EINVAL,
		                "backward: output of shape %s is not a scalar and no seed was given",
		                nb__shape_str(y->rank, y->dim, sy));
	return seed ? seed : nb_fill(t, y->rank, y->dim, 1.0);
}

/* Refuse to differentiate through a value computed before one of its inputs changed
 * (with nb_set): mark what y depends on, walking back, then compare each such node's time
 * with its inputs'. */
static bool fresh(nb_tape *t, nb_tensor *y)
{
	char sn[NB_MSG_MAX];

	for (size_t i = 0; i < y->id; i++)
		t->node[i]->reached = false;
	y->reached = true;
	for (size_t i = y->id + 1; i-- > 0;) {
		nb_tensor *x = t->node[i];

		for (int k = 0; x->reached && k < x->op->arity; k++) {
			nb_tensor *in = x->in[k];

			in->reached = true;
			if (in->time > x->time) {
				nb__fail(t, NB_ESTALE, "backward: node %zu (%s %s) was computed before its "
				         "input, node %zu (%s%s%s), changed; call nb_tape_replay() first",
				         x->id, x->op->name, nb__shape_str(x->rank, x->dim, sn), in->id,
				         in->op->name, in->name[0] ? " " : "", in->name);
				return false;
			}
		}
	}
	return true;
}

/* The reverse sweep. Nodes are visited from y down to the first leaf; each node that
 * received a gradient and depends on a variable passes it to its inputs through its
 * op's rule. Rules append new nodes after y, which this sweep does not visit. */
int nb_backward(nb_tape *t, nb_tensor *y, nb_tensor *seed)
{
	nb_tensor *in[2] = { y, seed };

	if (!t)
		return NB_ENULL;
	if (!nb__args_ok(t, "backward", in, seed ? 2 : 1) || !fresh(t, y))
		return t->status;
	for (size_t i = 0; i < t->n; i++)
		t->node[i]->grad = NULL;
	t->in_backward = true;
	seed = backward_seed(t, y, seed);
	if (seed)
		y->grad = seed;
	for (size_t i = y->id + 1; seed && i-- > 0 && t->status == NB_OK;) {
		nb_tensor *x = t->node[i];

		if (x->grad && x->needs_grad && x->op->backward)
			x->op->backward(t, x, x->grad);
	}
	t->in_backward = false;
	return t->status;
}

int nb_tape_replay(nb_tape *t)
{
	if (!t)
		return NB_ENULL;
	if (t->status != NB_OK)
		return t->status;
	for (size_t i = 0; i < t->n; i++) {
		nb_tensor *x = t->node[i];

		if (x->op->forward && !compute(t, x))
			return t->status;
	}
	return NB_OK;
}
