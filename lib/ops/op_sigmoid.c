/* op_sigmoid.c -- y = 1 / (1 + exp(-x)), elementwise. */
#include <math.h>

#include "nabla_int.h"

static void sigmoid_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = 1.0 / (1.0 + exp(-x[i]));
}

/* dx = dy ⊙ (y ⊙ (1 - y)): the sigma'(z) factor of BP1 and BP2, built from y itself, so
 * that the forward pass's node is reused rather than sigma(z) recomputed. */
static void sigmoid_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *one = nb_scalar(t, 1.0);

	nb__grad_add(t, y->in[0], nb_mul(t, dy, nb_mul(t, y, nb_sub(t, one, y))));
}

const struct nb_op nb__op_sigmoid = {
	.name = "sigmoid", .arity = 1, .forward = sigmoid_forward, .backward = sigmoid_backward,
};

nb_tensor *nb_sigmoid(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_sigmoid, x);
}
