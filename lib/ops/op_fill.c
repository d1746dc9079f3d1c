/* op_fill.c -- y = v everywhere: a literal, recorded with no inputs and hash-consed by
 * value and shape, so that the 1 of sigma'(z) = sigma(z) (1 - sigma(z)) is one node. */
#include "nabla_int.h"

static void fill_forward(nb_tensor *y)
{
	for (size_t i = 0; i < y->size; i++)
		y->value[i] = y->attr.c;
}

/* A literal depends on nothing: it has no backward rule. */
const struct nb_op nb__op_fill = { .name = "fill", .arity = 0, .forward = fill_forward };

nb_tensor *nb_fill(nb_tape *t, int rank, const size_t *dim, double v)
{
	struct nb_attr attr = { .c = v };

	if (!nb__args_ok(t, "fill", NULL, 0) || !nb__shape_ok(t, "fill", rank, dim))
		return NULL;
	return nb__record(t, &nb__op_fill, NULL, &attr, rank, dim);
}

nb_tensor *nb_scalar(nb_tape *t, double v)
{
	return nb_fill(t, 0, NULL, v);
}
