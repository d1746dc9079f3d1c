/* derive.c -- forward mode, Jacobians and Hessians, built from reverse mode alone.
 *
 * J u is the VJP of a VJP: g(w) = J^T w is linear in the cotangent w, so J u is the
 * gradient of <g(w), u> with respect to w. No op needs a forward rule, and since every
 * backward rule is linear in the gradient it receives, the graph of J u does not contain
 * w: its values do not depend on w's. Hessians differentiate a gradient again: H v is the
 * gradient of <g, v> for g the gradient of y. A dense Jacobian is one VJP graph with a seed
 * leaf w for the cotangent, whose values are read once per row with w = e_i; a dense
 * Hessian is the HVP graph with seed leaves v_i, one per xs[i], read with v = e_k.
 *
 * Reuse, without a memo: a seed leaf is a constant entered in the hash-consing table under
 * the key (y, slot) (nb_attr.of and .slot). Recording the same graph again finds the same
 * seed, and then, every other node being hash-consed, the same nodes: a second call with
 * the same y and xs records and allocates nothing, and reading the values recomputes only
 * what the leaves changed. Nothing outlives a call but nodes on the tape, so a rewind
 * cannot leave anything dangling: a seed is recorded after its y, so it is dropped with y
 * or before it, and the next call records it again. The calls on one y share its seeds
 * (nb_jvp and nb_jacobian the cotangent), which are zero between calls: nb_jacobian and
 * nb_hessian set one element at a time to 1 and back to 0. Handles of gradients live on the stack, CHUNK of xs at a time, so that a call allocates
 * nothing but the nodes it records. */
#include <stdio.h>
#include <string.h>

#include "nabla_int.h"

/* Gradients are asked for this many xs at a time. */
#define CHUNK 16

/* The seed slots of an output y: its cotangent (nb_jvp, nb_jacobian), then one direction
 * per xs[i] at slot i + 1 (nb_hessian). */
#define COTANGENT 0

/* No index: the argument is a single tensor. */
#define SINGLE ((size_t)-1)

/* ---- Arguments ---------------------------------------------------------------------- */

/* x is a tensor of t. name (with index i unless SINGLE) says which in the message. */
static bool tensor_ok(nb_tape *t, const char *fn, const char *name, size_t i,
                      const nb_tensor *x)
{
	char what[32];

	if (i == SINGLE)
		snprintf(what, sizeof what, "%s", name);
	else
		snprintf(what, sizeof what, "%s[%zu]", name, i);
	if (!x)
		nb__fail(t, NB_ENULL, "%s: %s is NULL", fn, what);
	else if (x->tape != t)
		nb__fail(t, NB_ETAPE, "%s: %s belongs to another tape", fn, what);
	return x && x->tape == t;
}

/* The array a of n tensors of t. */
static bool list_ok(nb_tape *t, const char *fn, const char *name, nb_tensor *const *a,
                    size_t n)
{
	if (!a) {
		nb__fail(t, NB_ENULL, "%s: %s is NULL", fn, name);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (!tensor_ok(t, fn, name, i, a[i]))
			return false;
	return true;
}

/* What every call takes: a usable tape, y, and n >= 1 tensors xs. */
static bool args_ok(nb_tape *t, const char *fn, const nb_tensor *y, nb_tensor *const *xs,
                    size_t n)
{
	if (!t || t->err.status != NB_OK || !tensor_ok(t, fn, "y", SINGLE, y))
		return false;
	if (xs && n == 0) {
		nb__fail(t, NB_EINVAL, "%s: n is 0: no tensors to differentiate with respect to", fn);
		return false;
	}
	return list_ok(t, fn, "xs", xs, n);
}

/* The directions us (named name) are tensors of t of the shapes of xs. */
static bool directions_ok(nb_tape *t, const char *fn, const char *name, nb_tensor *const *xs,
                          nb_tensor *const *us, size_t n)
{
	char su[NB_MSG_MAX], sx[NB_MSG_MAX];

	if (!list_ok(t, fn, name, us, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (nb__same_shape(us[i], xs[i]))
			continue;
		nb__fail(t, NB_ESHAPE, "%s: %s[%zu] has shape %s, xs[%zu] has %s", fn, name, i,
		         nb__shape_str(us[i]->rank, us[i]->dim, su), i,
		         nb__shape_str(xs[i]->rank, xs[i]->dim, sx));
		return false;
	}
	return true;
}

/* A Hessian is that of an output of one element. */
static bool scalar_ok(nb_tape *t, const char *fn, const nb_tensor *y)
{
	char s[NB_MSG_MAX];

	if (y->size == 1)
		return true;
	nb__fail(t, NB_EINVAL, "%s: y has shape %s: a Hessian needs an output of one element",
	         fn, nb__shape_str(y->rank, y->dim, s));
	return false;
}

static bool out_ok(nb_tape *t, const char *fn, const char *name, const void *out)
{
	if (!out)
		nb__fail(t, NB_ENULL, "%s: %s is NULL", fn, name);
	return out != NULL;
}

/* ---- Calls: what they record is dropped on error ---------------------------------- */

struct call {
	nb_tape *t;
	size_t mark;     /* the tape before the call */
	uint64_t sweep;  /* the sweep counter before it */
};

static struct call call_begin(nb_tape *t)
{
	return (struct call){ .t = t, .mark = t->n, .sweep = t->sweep };
}

/* On error drop what the call recorded, so that a failed call records nothing. Once it
 * swept, nb_grad() gives NULL until the next sweep: the last sweep's gradients are those
 * of a seed or of an inner product, which an optimizer must not take for the caller's. */
static int call_end(struct call c)
{
	nb_tape *t = c.t;

	if (t->err.status != NB_OK && t->n > c.mark)
		nb_tape_rewind(t, c.mark);
	if (t->sweep != c.sweep)
		t->grads_valid = false;
	return t->err.status;
}

/* ---- Seeds -------------------------------------------------------------------------- */

/* The seed leaf of y at slot, of the shape (rank, dim): the one in the hash-consing table,
 * or a new one of zeros. A constant, so that values and sweeps treat it as a leaf. */
static nb_tensor *seed_leaf(nb_tape *t, const nb_tensor *y, size_t slot, int rank,
                            const size_t *dim)
{
	struct nb_attr key = { .of = y, .slot = slot };
	uint64_t h = nb__node_hash(&nb__op_constant, NULL, &key, rank, dim);
	nb_tensor *w = nb__hashcons_find(&t->hc, h, &nb__op_constant, NULL, &key, rank, dim);

	if (w || !nb__hashcons_reserve(t))
		return w;
	w = nb__append_leaf(t, &nb__op_constant, rank, dim, NULL);
	if (!w)
		return NULL;
	memset(w->value, 0, w->size * sizeof *w->value);
	w->attr = key;
	w->hash = h;
	nb__hashcons_insert(t, w);
	return w;
}

/* The Hessian's direction for xs[i]. */
static nb_tensor *direction(nb_tape *t, const nb_tensor *y, nb_tensor *const *xs, size_t i)
{
	return seed_leaf(t, y, i + 1, xs[i]->rank, xs[i]->dim);
}

/* Seeds change as leaves do, so that what is computed from them is recomputed. Between
 * calls every seed is zero: it is recorded so, and read_rows() puts back each 1 it sets. */
static void seed_put(nb_tensor *w, size_t k, double v)
{
	w->value[k] = v;
	nb__leaf_changed(w);
}

/* ---- Graphs ------------------------------------------------------------------------- */

/* s + the sum over i < n of sum(g[i] ⊙ u[i]); s NULL is 0. NULL on error. */
static nb_tensor *add_inner(nb_tape *t, nb_tensor *s, nb_tensor *const *g,
                            nb_tensor *const *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		nb_tensor *term = nb_sum(t, nb_mul(t, g[i], u[i]));

		s = s ? nb_add(t, s, term) : term;
		if (!s)
			return NULL;
	}
	return s;
}

/* <g, u>, for g the gradients of y with respect to xs (seed as for nb_gradients), with u
 * the directions us, or when us is NULL the Hessian's seed leaves. NULL on error. */
static nb_tensor *grad_dot(nb_tape *t, nb_tensor *y, nb_tensor *seed, nb_tensor *const *xs,
                           nb_tensor *const *us, size_t n)
{
	nb_tensor *g[CHUNK], *u[CHUNK], *s = NULL;

	for (size_t b = 0; b < n; b += CHUNK) {
		size_t c = n - b < CHUNK ? n - b : CHUNK;

		if (nb_gradients(t, y, seed, xs + b, c, g) != NB_OK)
			return NULL;
		for (size_t i = 0; i < c; i++)
			u[i] = us ? us[b + i] : direction(t, y, xs, b + i);
		s = add_inner(t, s, g, u, c);
		if (!s)
			return NULL;
	}
	return s;
}

/* Elements of all n tensors. The caller's matrix holds a multiple of it, so it fits. */
static size_t total_size(nb_tensor *const *xs, size_t n)
{
	size_t N = 0;

	for (size_t i = 0; i < n; i++)
		N += xs[i]->size;
	return N;
}

/* Row k of out (stride doubles apart) for each element k of the seed w: the values of the
 * c nodes g side by side, with w = e_k. Stops at an error (a non-finite value, when the
 * tape checks them). */
static void read_rows(nb_tape *t, nb_tensor *w, nb_tensor *const *g, size_t c, double *out,
                      size_t stride)
{
	for (size_t k = 0; k < w->size && t->err.status == NB_OK; k++) {
		double *col = out + k * stride;

		seed_put(w, k, 1.0);
		for (size_t i = 0; i < c; i++) {
			memcpy(col, nb_value(g[i]), g[i]->size * sizeof *col);
			col += g[i]->size;
		}
		seed_put(w, k, 0.0);
	}
}

/* ---- The calls ---------------------------------------------------------------------- */

nb_tensor *nb_jvp(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, nb_tensor *const *us,
                  size_t n)
{
	nb_tensor *w, *s, *out = NULL;
	struct call c;

	if (!args_ok(t, "jvp", y, xs, n) || !directions_ok(t, "jvp", "us", xs, us, n))
		return NULL;
	c = call_begin(t);
	w = seed_leaf(t, y, COTANGENT, y->rank, y->dim);
	s = w ? grad_dot(t, y, w, xs, us, n) : NULL;
	if (s)
		nb_gradients(t, s, NULL, &w, 1, &out);
	return call_end(c) == NB_OK ? out : NULL;
}

int nb_hvp(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, nb_tensor *const *vs, size_t n,
           nb_tensor **out)
{
	nb_tensor *s;
	struct call c;

	if (!t)
		return NB_ENULL;
	if (args_ok(t, "hvp", y, xs, n) && directions_ok(t, "hvp", "vs", xs, vs, n) &&
	    scalar_ok(t, "hvp", y) && out_ok(t, "hvp", "out", out)) {
		c = call_begin(t);
		s = grad_dot(t, y, NULL, xs, vs, n);
		if (s)
			nb_gradients(t, s, NULL, xs, n, out);
		call_end(c);
	}
	if (t->err.status != NB_OK && out)
		memset(out, 0, n * sizeof *out);
	return t->err.status;
}

int nb_jacobian(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, size_t n, double *J)
{
	nb_tensor *w, *g[CHUNK];
	size_t N, col = 0;
	struct call c;

	if (!t)
		return NB_ENULL;
	if (!args_ok(t, "jacobian", y, xs, n) || !out_ok(t, "jacobian", "J", J))
		return t->err.status;
	c = call_begin(t);
	N = total_size(xs, n);
	w = seed_leaf(t, y, COTANGENT, y->rank, y->dim);
	for (size_t b = 0; w && b < n; b += CHUNK) {  /* after an error, nb_gradients fails */
		size_t k = n - b < CHUNK ? n - b : CHUNK;

		if (nb_gradients(t, y, w, xs + b, k, g) != NB_OK)
			break;
		read_rows(t, w, g, k, J + col, N);
		col += total_size(xs + b, k);
	}
	return call_end(c);
}

/* The Hessian's seed leaves, recorded unless they are on the tape already. */
static bool directions_record(nb_tape *t, const nb_tensor *y, nb_tensor *const *xs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!direction(t, y, xs, i))
			return false;
	return true;
}

/* Column block xs[b..b+k) of every row of H, from h, the gradients of <g, v> with respect
 * to those xs: the rows of xs[i] are read with v_i = e_k. Every v_i is found, since
 * directions_record() recorded it and nothing was rewound since. */
static void hessian_columns(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, size_t n,
                            nb_tensor *const *h, size_t k, double *H, size_t N)
{
	size_t row = 0;

	for (size_t i = 0; i < n; i++) {
		read_rows(t, direction(t, y, xs, i), h, k, H + row * N, N);
		row += xs[i]->size;
	}
}

int nb_hessian(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, size_t n, double *H)
{
	nb_tensor *s = NULL, *h[CHUNK];
	size_t N, col = 0;
	struct call c;

	if (!t)
		return NB_ENULL;
	if (!args_ok(t, "hessian", y, xs, n) || !scalar_ok(t, "hessian", y) ||
	    !out_ok(t, "hessian", "H", H))
		return t->err.status;
	c = call_begin(t);
	N = total_size(xs, n);
	if (directions_record(t, y, xs, n))
		s = grad_dot(t, y, NULL, xs, NULL, n);
	for (size_t b = 0; s && b < n; b += CHUNK) {  /* after an error, nb_gradients fails */
		size_t k = n - b < CHUNK ? n - b : CHUNK;

		if (nb_gradients(t, s, NULL, xs + b, k, h) != NB_OK)
			break;
		hessian_columns(t, y, xs, n, h, k, H + col, N);
		col += total_size(xs + b, k);
	}
	return call_end(c);
}
