/* op_slice.c -- ranges along one axis: y = slice(x, axis, start, end) keeps
 * [start, end) of the axis; y = pad(x, axis, before, after) puts zeros around it;
 * y = concat(a, b, axis) puts b after a. Each one's backward rule is made of the others:
 * a slice's gradient is its gradient padded back, a pad's is a slice, a concat's two
 * slices. Every kernel copies blocks, x seen as (outer, d, inner) around the axis. */
#include <string.h>

#include "nabla_int.h"

/* Copy n lines of len * inner values from src (stride ds * inner) to dst (stride
 * dd * inner), each starting at the offsets os and od along the axis. */
static void copy_blocks(double *dst, size_t dd, size_t od, const double *src, size_t ds,
                        size_t os, size_t len, size_t outer, size_t inner)
{
	for (size_t o = 0; o < outer; o++)
		memcpy(dst + (o * dd + od) * inner, src + (o * ds + os) * inner,
		       len * inner * sizeof *dst);
}

static void slice_forward(nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	struct nb__around a = nb__around_axis(x, y->attr.axis);
	size_t len = y->dim[y->attr.axis];

	copy_blocks(y->value, len, 0, x->value, a.d, y->attr.start, len, a.outer, a.inner);
}

static void pad_forward(nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	struct nb__around a = nb__around_axis(x, y->attr.axis);

	memset(y->value, 0, y->size * sizeof *y->value);
	copy_blocks(y->value, y->dim[y->attr.axis], y->attr.start, x->value, a.d, 0, a.d,
	            a.outer, a.inner);
}

static void concat_forward(nb_tensor *y)
{
	const nb_tensor *p = y->in[0], *q = y->in[1];
	int axis = y->attr.axis;
	struct nb__around a = nb__around_axis(y, axis);

	copy_blocks(y->value, a.d, 0, p->value, p->dim[axis], 0, p->dim[axis], a.outer, a.inner);
	copy_blocks(y->value, a.d, p->dim[axis], q->value, q->dim[axis], 0, q->dim[axis],
	            a.outer, a.inner);
}

/* dx = pad(dy) back to x's extent along the axis. */
static void slice_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *x = y->in[0];
	int axis = y->attr.axis;
	size_t start = y->attr.start, len = y->dim[axis];

	nb__grad_add(t, x, nb_pad(t, dy, axis, start, x->dim[axis] - start - len));
}

/* dx = the range of dy where x was placed. */
static void pad_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *x = y->in[0];
	int axis = y->attr.axis;
	size_t start = y->attr.start;

	nb__grad_add(t, x, nb_slice(t, dy, axis, start, start + x->dim[axis]));
}

static void concat_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *p = y->in[0], *q = y->in[1];
	int axis = y->attr.axis;
	size_t n = p->dim[axis];

	if (nb__wants_grad(p))
		nb__grad_add(t, p, nb_slice(t, dy, axis, 0, n));
	if (nb__wants_grad(q))
		nb__grad_add(t, q, nb_slice(t, dy, axis, n, n + q->dim[axis]));
}

const struct nb_op nb__op_slice = {
	.name = "slice", .arity = 1, .forward = slice_forward, .backward = slice_backward,
};
const struct nb_op nb__op_pad = {
	.name = "pad", .arity = 1, .forward = pad_forward, .backward = pad_backward,
};
const struct nb_op nb__op_concat = {
	.name = "concat", .arity = 2, .forward = concat_forward, .backward = concat_backward,
};

/* The axis is one of x's; an error naming op otherwise. */
static bool axis_ok(nb_tape *t, const char *op, const nb_tensor *x, int axis)
{
	char s[NB_MSG_MAX];

	if (axis >= 0 && axis < x->rank)
		return true;
	nb__fail(t, NB_EINVAL, "%s: axis %d is out of range for shape %s", op, axis,
	         nb__shape_str(x->rank, x->dim, s));
	return false;
}

nb_tensor *nb_slice(nb_tape *t, nb_tensor *x, int axis, size_t start, size_t end)
{
	struct nb_attr attr = { .axis = axis, .start = start };
	size_t dim[NB_MAX_RANK];
	char s[NB_MSG_MAX];

	if (!nb__args_ok(t, "slice", &x, 1) || !axis_ok(t, "slice", x, axis))
		return NULL;
	if (start >= end || end > x->dim[axis])
		return nb__fail(t, NB_EINVAL, "slice: range [%zu, %zu) of axis %d is %s for shape %s",
		                start, end, axis, start >= end ? "empty" : "out of bounds",
		                nb__shape_str(x->rank, x->dim, s));
	if (end - start == x->dim[axis])
		return x;
	memcpy(dim, x->dim, sizeof dim);
	dim[axis] = end - start;
	return nb__record(t, &nb__op_slice, &x, &attr, x->rank, dim);
}

nb_tensor *nb_pad(nb_tape *t, nb_tensor *x, int axis, size_t before, size_t after)
{
	struct nb_attr attr = { .axis = axis, .start = before };
	size_t dim[NB_MAX_RANK];
	char s[NB_MSG_MAX];

	if (!nb__args_ok(t, "pad", &x, 1) || !axis_ok(t, "pad", x, axis))
		return NULL;
	memcpy(dim, x->dim, sizeof dim);
	if (!nb__add_size(dim[axis], before, &dim[axis]) ||
	    !nb__add_size(dim[axis], after, &dim[axis]))
		return nb__fail(t, NB_ESHAPE, "pad: %zu + %zu + %zu overflows axis %d of shape %s",
		                before, x->dim[axis], after, axis, nb__shape_str(x->rank, x->dim, s));
	if (before == 0 && after == 0)
		return x;
	if (nb__is_zero(x))  /* structural: nabla.h, "Ops" */
		return nb__zeros(t, x->rank, dim);
	return nb__record(t, &nb__op_pad, &x, &attr, x->rank, dim);
}

/* xs[i] may be joined to xs[0] along axis: a tensor of the tape, of one rank, with the
 * same dims elsewhere. */
static bool joinable(nb_tape *t, nb_tensor *const *xs, size_t i, int axis)
{
	char s0[NB_MSG_MAX], si[NB_MSG_MAX];
	const nb_tensor *a = xs[0], *b = xs[i];
	bool same;

	if (!b || b->tape != t) {
		nb__fail(t, b ? NB_ETAPE : NB_ENULL, "concat: xs[%zu] %s", i,
		         b ? "belongs to another tape" : "is NULL");
		return false;
	}
	same = a->rank == b->rank;
	for (int k = 0; same && k < a->rank; k++)
		same = k == axis || a->dim[k] == b->dim[k];
	if (!same)
		nb__fail(t, NB_ESHAPE, "concat: xs[%zu] %s and xs[0] %s differ outside axis %d", i,
		         nb__shape_str(b->rank, b->dim, si), nb__shape_str(a->rank, a->dim, s0), axis);
	return same;
}

/* ((x0, x1), x2), ...: one node per join; a failure at any join records nothing. */
nb_tensor *nb_concat(nb_tape *t, nb_tensor *const *xs, size_t n, int axis)
{
	struct nb_attr attr = { .axis = axis };
	size_t mark = t ? t->n : 0, dim[NB_MAX_RANK];
	nb_tensor *y;

	if (!t || t->err.status != NB_OK)
		return NULL;
	if (!xs || n == 0)
		return nb__fail(t, xs ? NB_EINVAL : NB_ENULL, "concat: %s",
		                xs ? "no tensors (n is 0)" : "xs is NULL");
	if (!joinable(t, xs, 0, axis) || !axis_ok(t, "concat", xs[0], axis))
		return NULL;
	for (size_t i = 1; i < n; i++)
		if (!joinable(t, xs, i, axis))
			return NULL;
	y = xs[0];
	memcpy(dim, y->dim, sizeof dim);
	for (size_t i = 1; y && i < n; i++) {
		nb_tensor *in[2] = { y, xs[i] };

		if (!nb__add_size(dim[axis], xs[i]->dim[axis], &dim[axis]))
			return nb__undo(t, mark, nb__fail(t, NB_ESHAPE, "concat: the joined axis %d "
			                                  "overflows", axis));
		y = nb__record(t, &nb__op_concat, in, &attr, y->rank, dim);
	}
	return nb__undo(t, mark, y);
}
