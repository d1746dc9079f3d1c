/* backward.c -- the reverse sweep. From the output down to the first node, each node that
 * received a gradient passes it to its inputs through its op's rule, which records the
 * vector-Jacobian product with nabla's own ops: gradients are nodes, so they can be
 * replayed and differentiated again. A sweep that fails records nothing. */
#include <string.h>

#include "nabla_int.h"

bool nb__wants_grad(const nb_tensor *x)
{
	return x->tape->want_all ? x->needs_grad : x->want_sweep == x->tape->sweep;
}

nb_tensor *nb__zeros(nb_tape *t, int rank, const size_t *dim)
{
	return nb_fill(t, rank, dim, 0.0);
}

/* The one place gradients are accumulated, so the one place their shapes are checked: a
 * rule that hands a gradient of another shape is a bug in nabla, never broadcast away. */
void nb__grad_add(nb_tape *t, nb_tensor *x, nb_tensor *g)
{
	char sg[NB_MSG_MAX], sx[NB_MSG_MAX];
	nb_tensor *sum;

	if (!g || !nb__wants_grad(x))
		return;  /* a NULL g: the error is on the tape already */
	if (!nb__same_shape(g, x)) {
		/* a bug in nabla, unless the rule is a program's own */
		nb__fail(t, t->rule && t->rule->def ? NB_EINVAL : NB_EINTERNAL,
		         "%s: backward rule handed a gradient of shape %s for node "
		         "%zu (%s %s)", t->rule ? t->rule->name : "backward",
		         nb__shape_str(g->rank, g->dim, sg), x->id, x->op->name,
		         nb__shape_str(x->rank, x->dim, sx));
		return;
	}
	if (nb__is_zero(g))
		return;
	if (x->grad_sweep != t->sweep) {
		x->grad = g;
		x->grad_sweep = t->sweep;
		return;
	}
	sum = nb_add(t, x->grad, g);
	if (sum)
		x->grad = sum;
}

/* The seed dL/dy: the user's, or 1 for a y with one element. */
static nb_tensor *backward_seed(nb_tape *t, const char *fn, nb_tensor *y, nb_tensor *seed)
{
	char sy[NB_MSG_MAX], ss[NB_MSG_MAX];

	if (seed && !nb__same_shape(seed, y))
		return nb__fail(t, NB_ESHAPE, "%s: seed of shape %s for an output of shape %s", fn,
		                nb__shape_str(seed->rank, seed->dim, ss),
		                nb__shape_str(y->rank, y->dim, sy));
	if (!seed && y->size != 1)
		return nb__fail(t, NB_EINVAL,
		                "%s: output of shape %s is not a scalar and no seed was given", fn,
		                nb__shape_str(y->rank, y->dim, sy));
	return seed ? seed : nb_fill(t, y->rank, y->dim, 1.0);
}

/* Sweep from y with t->sweep and the wanted set already chosen. Rules append new nodes
 * after y, which the sweep does not visit. On failure the tape is rewound to where it was. */
static int sweep(nb_tape *t, const char *fn, nb_tensor *y, nb_tensor *seed)
{
	size_t start = t->n;

	t->grads_valid = false;
	t->in_backward = true;
	seed = backward_seed(t, fn, y, seed);
	if (seed && !nb__is_zero(seed)) {  /* dy/dy: the seed, whether or not y is wanted */
		y->grad = seed;
		y->grad_sweep = t->sweep;
	}
	for (size_t i = y->id + 1; i-- > 0 && t->err.status == NB_OK;) {
		nb_tensor *x = t->node[i];

		if (x->grad_sweep != t->sweep || !x->op->backward || !nb__wants_grad(x))
			continue;
		t->rule = x->op;
		x->op->backward(t, x, x->grad);
	}
	t->rule = NULL;
	t->in_backward = false;
	if (t->err.status != NB_OK) {
		nb_tape_rewind(t, start);
		return t->err.status;
	}
	t->grads_valid = true;
	t->sweep_end = t->n;
	return NB_OK;
}

/* Check y and seed, and bring their values up to date: rules read forward values. */
static bool sweep_args(nb_tape *t, const char *fn, nb_tensor *y, nb_tensor *seed)
{
	nb_tensor *in[2] = { y, seed };

	if (!nb__args_ok(t, fn, in, seed ? 2 : 1))
		return false;
	nb__refresh(y);
	if (seed)
		nb__refresh(seed);
	return t->err.status == NB_OK;
}

int nb_backward(nb_tape *t, nb_tensor *y, nb_tensor *seed)
{
	if (!t)
		return NB_ENULL;
	if (!nb__writable(t, "backward"))
		return t->err.status;
	if (!sweep_args(t, "backward", y, seed))
		return t->err.status;
	t->sweep++;
	t->want_all = true;
	return sweep(t, "backward", y, seed);
}

nb_tensor *nb_grad(const nb_tensor *x)
{
	nb_tape *t = x ? x->tape : NULL;

	if (!x || !t->grads_valid)
		return NULL;
	if (x->grad_sweep == t->sweep)
		return x->grad;
	return nb__zeros(t, x->rank, x->dim);
}

/* Mark what lies on a path from some xs[i] to y: only those nodes' rules run, and only
 * towards such nodes, so no gradient nobody asked for is built. */
static void want_paths(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, size_t n)
{
	size_t lo = y->id;

	for (size_t i = 0; i < n; i++) {
		xs[i]->want_sweep = t->sweep;
		lo = xs[i]->id < lo ? xs[i]->id : lo;
	}
	for (size_t i = lo + 1; i <= y->id; i++) {
		nb_tensor *v = t->node[i];

		for (int k = 0; k < v->op->arity; k++)
			if (v->in[k]->want_sweep == t->sweep)
				v->want_sweep = t->sweep;
	}
}

static bool xs_ok(nb_tape *t, nb_tensor *const *xs, size_t n, nb_tensor **out)
{
	if (!xs || !out) {
		nb__fail(t, NB_ENULL, "gradients: %s is NULL", xs ? "out" : "xs");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!xs[i]) {
			nb__fail(t, NB_ENULL, "gradients: xs[%zu] is NULL", i);
			return false;
		}
		if (xs[i]->tape != t) {
			nb__fail(t, NB_ETAPE, "gradients: xs[%zu] belongs to another tape", i);
			return false;
		}
	}
	return true;
}

int nb_gradients(nb_tape *t, nb_tensor *y, nb_tensor *seed, nb_tensor *const *xs, size_t n,
                 nb_tensor **out)
{
	size_t start = t ? t->n : 0;

	if (!t)
		return NB_ENULL;
	if (out)
		memset(out, 0, n * sizeof *out);
	if (!nb__writable(t, "gradients"))
		return t->err.status;
	if (!sweep_args(t, "gradients", y, seed) || !xs_ok(t, xs, n, out))
		return t->err.status;
	t->sweep++;
	t->want_all = false;
	want_paths(t, y, xs, n);
	if (sweep(t, "gradients", y, seed) != NB_OK)
		return t->err.status;
	for (size_t i = 0; i < n; i++)
		out[i] = nb_grad(xs[i]);
	if (t->err.status == NB_OK)
		return NB_OK;
	memset(out, 0, n * sizeof *out);
	nb_tape_rewind(t, start);
	return t->err.status;
}
