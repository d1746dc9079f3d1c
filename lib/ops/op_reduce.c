/* op_reduce.c -- broadcasting and its adjoint: y = broadcast_to(x, shape) copies x along
 * the axes where it has size 1; y = reduce_to(x, shape) sums x down to a shape that
 * broadcasts to x's. Each is the other's backward rule. Sums over all elements or one
 * axis are reductions to a shape, so they are built from reduce_to and reshape. */
#include <string.h>

#include "nabla_int.h"

/* Visit the elements of the larger tensor big (four padded axes d) in order, together
 * with the offset of the matching element of the smaller one (strides s, 0 where it is
 * broadcast); gather copies small into big, scatter adds big into small. */
static void walk(double *big, double *small, const size_t d[NB_MAX_RANK],
                 const size_t s[NB_MAX_RANK], bool gather)
{
	for (size_t i0 = 0; i0 < d[0]; i0++)
		for (size_t i1 = 0; i1 < d[1]; i1++)
			for (size_t i2 = 0; i2 < d[2]; i2++) {
				double *row = small + i0 * s[0] + i1 * s[1] + i2 * s[2];

				if (gather) {
					for (size_t i3 = 0; i3 < d[3]; i3++)
						big[i3] = row[i3 * s[3]];
				} else if (s[3] == 0) {
					/* a row summed into one element: in a register, in the
					 * same order, not through memory at every step */
					double sum = row[0];

					for (size_t i3 = 0; i3 < d[3]; i3++)
						sum += big[i3];
					row[0] = sum;
				} else {
					for (size_t i3 = 0; i3 < d[3]; i3++)
						row[i3 * s[3]] += big[i3];
				}
				big += d[3];
			}
}

static void broadcast_to_forward(nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	size_t d[NB_MAX_RANK], s[NB_MAX_RANK];

	nb__pad_dims(y->rank, y->dim, d);
	nb__broadcast_strides(x->rank, x->dim, y->rank, y->dim, s);
	walk(y->value, x->value, d, s, true);
}

static void reduce_to_forward(nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	size_t d[NB_MAX_RANK], s[NB_MAX_RANK];

	memset(y->value, 0, y->size * sizeof *y->value);
	nb__pad_dims(x->rank, x->dim, d);
	nb__broadcast_strides(y->rank, y->dim, x->rank, x->dim, s);
	walk(x->value, y->value, d, s, false);
}

/* dx = reduce_to(dy, shape of x). */
static void broadcast_to_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb__unbroadcast(t, dy, y->in[0]));
}

/* dx = broadcast_to(dy, shape of x). */
static void reduce_to_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *x = y->in[0];

	nb__grad_add(t, x, nb_broadcast_to(t, dy, x->rank, x->dim));
}

const struct nb_op nb__op_broadcast_to = {
	.name = "broadcast_to", .arity = 1,
	.forward = broadcast_to_forward, .backward = broadcast_to_backward,
};
const struct nb_op nb__op_reduce_to = {
	.name = "reduce_to", .arity = 1,
	.forward = reduce_to_forward, .backward = reduce_to_backward,
};

/* Whether shape (rs, ds) broadcasts to (rb, db): numpy's rule, with the result (rb, db). */
static bool broadcasts_to(int rs, const size_t *ds, int rb, const size_t *db)
{
	size_t dim[NB_MAX_RANK];
	int rank;

	return rs <= rb && nb__broadcast_shape(rs, ds, rb, db, &rank, dim) && rank == rb &&
	       (rb == 0 || !memcmp(dim, db, (size_t)rb * sizeof *db));
}

/* Record op (broadcast_to or reduce_to) from x to the shape (rank, dim), after checking
 * that the smaller of the two broadcasts to the larger. The same shape is x itself. */
static nb_tensor *reshape_by_broadcast(nb_tape *t, const struct nb_op *op, nb_tensor *x,
                                       int rank, const size_t *dim)
{
	bool expand = op == &nb__op_broadcast_to;
	char sx[NB_MSG_MAX], sd[NB_MSG_MAX];
	bool ok;

	if (!nb__args_ok(t, op->name, &x, 1) || !nb__shape_ok(t, op->name, rank, dim))
		return NULL;
	ok = expand ? broadcasts_to(x->rank, x->dim, rank, dim)
	            : broadcasts_to(rank, dim, x->rank, x->dim);
	if (!ok)
		return nb__fail(t, NB_ESHAPE, "%s: %s does not broadcast to %s", op->name,
		                nb__shape_str(expand ? x->rank : rank, expand ? x->dim : dim, sx),
		                nb__shape_str(expand ? rank : x->rank, expand ? dim : x->dim, sd));
	if (rank == x->rank && (rank == 0 || !memcmp(dim, x->dim, (size_t)rank * sizeof *dim)))
		return x;
	if (nb__is_zero(x) || (expand && x->op == &nb__op_fill))  /* a literal stays one */
		return nb_fill(t, rank, dim, x->attr.c);
	return nb__record(t, op, &x, NULL, rank, dim);
}

nb_tensor *nb_broadcast_to(nb_tape *t, nb_tensor *x, int rank, const size_t *dim)
{
	return reshape_by_broadcast(t, &nb__op_broadcast_to, x, rank, dim);
}

nb_tensor *nb_reduce_to(nb_tape *t, nb_tensor *x, int rank, const size_t *dim)
{
	return reshape_by_broadcast(t, &nb__op_reduce_to, x, rank, dim);
}

nb_tensor *nb__unbroadcast(nb_tape *t, nb_tensor *g, const nb_tensor *x)
{
	return nb_reduce_to(t, g, x->rank, x->dim);
}

nb_tensor *nb_sum(nb_tape *t, nb_tensor *x)
{
	if (!nb__args_ok(t, "sum", &x, 1))
		return NULL;
	return nb_reduce_to(t, x, 0, NULL);
}

/* A reduction to x's shape with the axis set to 1, then, unless keepdim, a reshape that
 * drops that axis. */
nb_tensor *nb_sum_axis(nb_tape *t, nb_tensor *x, int axis, int keepdim)
{
	size_t dim[NB_MAX_RANK], mark;
	char s[NB_MSG_MAX];
	nb_tensor *y;

	if (!nb__args_ok(t, "sum_axis", &x, 1))
		return NULL;
	if (axis < 0 || axis >= x->rank)
		return nb__fail(t, NB_EINVAL, "sum_axis: axis %d is out of range for shape %s",
		                axis, nb__shape_str(x->rank, x->dim, s));
	memcpy(dim, x->dim, sizeof dim);
	dim[axis] = 1;
	mark = t->n;
	y = nb_reduce_to(t, x, x->rank, dim);
	if (keepdim || !y)
		return y;
	memmove(dim + axis, dim + axis + 1, (size_t)(x->rank - axis - 1) * sizeof *dim);
	return nb__undo(t, mark, nb_reshape(t, y, x->rank - 1, dim));
}

/* sum / n: the mean needs no kernel of its own. */
nb_tensor *nb_mean(nb_tape *t, nb_tensor *x)
{
	size_t mark = t ? t->n : 0;

	if (!nb__args_ok(t, "mean", &x, 1))
		return NULL;
	return nb__undo(t, mark, nb_scale(t, nb_sum(t, x), 1.0 / (double)x->size));
}

nb_tensor *nb_mean_axis(nb_tape *t, nb_tensor *x, int axis, int keepdim)
{
	size_t mark = t ? t->n : 0;
	char s[NB_MSG_MAX];

	if (!nb__args_ok(t, "mean_axis", &x, 1))
		return NULL;
	if (axis < 0 || axis >= x->rank)
		return nb__fail(t, NB_EINVAL, "mean_axis: axis %d is out of range for shape %s",
		                axis, nb__shape_str(x->rank, x->dim, s));
	return nb__undo(t, mark, nb_scale(t, nb_sum_axis(t, x, axis, keepdim),
	                                  1.0 / (double)x->dim[axis]));
}
