/* op_max.c -- y = max(x) along one axis, and where it is: the first index of the maximum
 * of each line (a NaN counts as the maximum, as numpy's argmax has it). The gradient goes
 * to that one element, through argmax_mask, a 0/1 tensor of x's shape that is flat
 * wherever it has a derivative. */
#include <math.h>

#include "nabla_int.h"

/* The first index of the largest of n values at stride s; the first NaN wins. Written
 * without a branch on the values, which on data such as a pooling window's would be
 * mispredicted half the time. */
static size_t argmax_line(const double *x, size_t n, size_t s)
{
	size_t best = 0;
	double top = n ? x[0] : 0.0;
	bool nan = isnan(top);

	for (size_t k = 1; k < n; k++) {
		double v = x[k * s];
		bool take = (!nan) & ((v > top) | isnan(v));

		best = take ? k : best;
		top = take ? v : top;
		nan |= isnan(v);
	}
	return best;
}

static void max_axis_forward(nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	struct nb__around a = nb__around_axis(x, y->attr.axis);

	for (size_t o = 0; o < a.outer; o++)
		for (size_t i = 0; i < a.inner; i++) {
			const double *line = x->value + o * a.d * a.inner + i;

			y->value[o * a.inner + i] = line[argmax_line(line, a.d, a.inner) * a.inner];
		}
}

static void argmax_mask_forward(nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	struct nb__around a = nb__around_axis(x, y->attr.axis);

	for (size_t o = 0; o < a.outer; o++)
		for (size_t i = 0; i < a.inner; i++) {
			size_t off = o * a.d * a.inner + i;
			size_t best = argmax_line(x->value + off, a.d, a.inner);
			double one = isnan(x->value[off + best * a.inner]) ? NAN : 1.0;

			for (size_t k = 0; k < a.d; k++)
				y->value[off + k * a.inner] = k == best ? one : one * 0.0;
		}
}

/* dx = dy ⊙ argmax_mask(x), dy broadcast back along the axis. */
static void max_axis_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *x = y->in[0];
	struct nb_attr attr = { .axis = y->attr.axis };
	nb_tensor *mask = nb__record(t, &nb__op_argmax_mask, &x, &attr, x->rank, x->dim);

	nb__grad_add(t, x, nb_mul(t, nb__along_axis(t, dy, x, y->attr.axis), mask));
}

/* The index each line's maximum is at: a change is a kink (a tie broken the other way). */
static uint64_t argmax_branch(const nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	struct nb__around a = nb__around_axis(x, y->attr.axis);
	uint64_t h = 0;

	for (size_t o = 0; o < a.outer; o++)
		for (size_t i = 0; i < a.inner; i++)
			h = h * 0x100000001b3ULL ^
			    argmax_line(x->value + o * a.d * a.inner + i, a.d, a.inner);
	return h;
}

const struct nb_op nb__op_max_axis = {
	.name = "max_axis", .arity = 1, .forward = max_axis_forward,
	.backward = max_axis_backward, .branch = argmax_branch,
};
const struct nb_op nb__op_argmax_mask = {
	.name = "argmax_mask", .arity = 1, .forward = argmax_mask_forward,
	.branch = argmax_branch,
};

nb_tensor *nb_max_axis(nb_tape *t, nb_tensor *x, int axis, int keepdim)
{
	struct nb_attr attr = { .axis = axis, .keepdim = keepdim != 0 };
	size_t dim[NB_MAX_RANK];
	int rank;

	if (!nb__args_ok(t, "max_axis", &x, 1) ||
	    !nb__reduced_shape(t, "max_axis", x, axis, keepdim, &rank, dim))
		return NULL;
	return nb__record(t, &nb__op_max_axis, &x, &attr, rank, dim);
}

int nb_argmax(const nb_tensor *x, int axis, size_t *idx, size_t n)
{
	nb_tape *t = x ? x->tape : NULL;
	size_t dim[NB_MAX_RANK];
	struct nb__around a;
	int rank;

	if (!x)
		return NB_ENULL;
	if (t->err.status != NB_OK)
		return t->err.status;
	if (!idx) {
		nb__fail(t, NB_ENULL, "argmax: idx is NULL");
		return NB_ENULL;
	}
	if (!nb__reduced_shape(t, "argmax", x, axis, 0, &rank, dim))
		return NB_EINVAL;
	a = nb__around_axis(x, axis);
	if (n != a.outer * a.inner) {
		nb__fail(t, NB_ESHAPE, "argmax: %zu indices asked for, the shape has %zu lines "
		         "along axis %d", n, a.outer * a.inner, axis);
		return NB_ESHAPE;
	}
	nb__refresh((nb_tensor *)x);
	for (size_t o = 0; o < a.outer; o++)
		for (size_t i = 0; i < a.inner; i++)
			idx[o * a.inner + i] = argmax_line(x->value + o * a.d * a.inner + i, a.d, a.inner);
	return t->err.status;
}
