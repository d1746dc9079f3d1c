/* op_relu.c -- y = max(x, 0), and its derivative y = step(x) = [x > 0]. */
#include "nabla_int.h"

static void relu_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = x[i] > 0.0 ? x[i] : 0.0;
}

/* dx = dy ⊙ step(x). */
static void relu_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_mul(t, dy, nb_step(t, y->in[0])));
}

static void step_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = x[i] > 0.0 ? 1.0 : 0.0;
}

/* step is flat wherever it has a derivative: no rule, so no gradient flows through it. */
const struct nb_op nb__op_step = { .name = "step", .arity = 1, .forward = step_forward };
const struct nb_op nb__op_relu = {
	.name = "relu", .arity = 1, .forward = relu_forward, .backward = relu_backward,
};

nb_tensor *nb_relu(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_relu, x);
}

nb_tensor *nb_step(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_step, x);
}
