/* op_relu.c -- y = max(x, 0), and its derivative y = step(x) = [x > 0]. Both give NaN
 * for NaN, as every other op does: a comparison that is false for NaN would turn it into
 * a number and hide it. */
#include "nabla_int.h"

static void relu_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = x[i] <= 0.0 ? 0.0 : x[i];
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
		y->value[i] = x[i] > 0.0 ? 1.0 : x[i] <= 0.0 ? 0.0 : x[i];
}

/* Both are piecewise with their kink at x = 0. */
static uint64_t sign_branch(const nb_tensor *y)
{
	return nb__branch_fold(0, y->in[0]->value, y->size, 0.0);
}

/* step is flat wherever it has a derivative: no rule, so no gradient flows through it. */
const struct nb_op nb__op_step = {
	.name = "step", .arity = 1, .forward = step_forward, .branch = sign_branch,
};
const struct nb_op nb__op_relu = {
	.name = "relu", .arity = 1, .forward = relu_forward, .backward = relu_backward,
	.branch = sign_branch,
};

nb_tensor *nb_relu(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_relu, x);
}

nb_tensor *nb_step(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_step, x);
}
