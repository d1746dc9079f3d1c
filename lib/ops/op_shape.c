/* op_shape.c -- ops that move values without arithmetic: y = x^T (rank 2) and reshape. */
#include <string.h>

#include "nabla_int.h"

static void transpose_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;
	size_t m = y->dim[1], n = y->dim[0];  /* x is m x n */

	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++)
			y->value[j * m + i] = x[i * n + j];
}

/* dx = dy^T. */
static void transpose_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_transpose(t, dy));
}

const struct nb_op nb__op_transpose = {
	.name = "transpose", .arity = 1,
	.forward = transpose_forward, .backward = transpose_backward,
};

nb_tensor *nb_transpose(nb_tape *t, nb_tensor *x)
{
	size_t dim[2];
	char s[NB_MSG_MAX];

	if (!nb__args_ok(t, "transpose", &x, 1))
		return NULL;
	if (x->rank != 2)
		return nb__fail(t, NB_ERANK, "transpose: operand must have rank 2: %s",
		                nb__shape_str(x->rank, x->dim, s));
	dim[0] = x->dim[1];
	dim[1] = x->dim[0];
	if (nb__is_zero(x))
		return nb__zeros(t, 2, dim);
	return nb__record(t, &nb__op_transpose, &x, NULL, 2, dim);
}

static void reshape_forward(nb_tensor *y)
{
	memcpy(y->value, y->in[0]->value, y->size * sizeof *y->value);
}

/* dx = dy in x's shape. */
static void reshape_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *x = y->in[0];

	nb__grad_add(t, x, nb_reshape(t, dy, x->rank, x->dim));
}

const struct nb_op nb__op_reshape = {
	.name = "reshape", .arity = 1, .forward = reshape_forward, .backward = reshape_backward,
};

/* Reshaping to x's own shape is x itself: no node. */
nb_tensor *nb_reshape(nb_tape *t, nb_tensor *x, int rank, const size_t *dim)
{
	char sx[NB_MSG_MAX], sd[NB_MSG_MAX];

	if (!nb__args_ok(t, "reshape", &x, 1) || !nb__shape_ok(t, "reshape", rank, dim))
		return NULL;
	if (nb__shape_size(rank, dim) != x->size)
		return nb__fail(t, NB_ESHAPE, "reshape: %s has %zu elements, %s has %zu",
		                nb__shape_str(x->rank, x->dim, sx), x->size,
		                nb__shape_str(rank, dim, sd), nb__shape_size(rank, dim));
	if (rank == x->rank && (rank == 0 || !memcmp(dim, x->dim, (size_t)rank * sizeof *dim)))
		return x;
	if (nb__is_zero(x))
		return nb__zeros(t, rank, dim);
	return nb__record(t, &nb__op_reshape, &x, NULL, rank, dim);
}
