/* op_softplus.c -- y = log(1 + x) and y = softplus(x) = log(1 + exp(x)), elementwise, each
 * computed so that it keeps its precision where the naive formula loses it. */
#include <math.h>

#include "nabla_int.h"

static void log1p_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = log1p(x[i]);
}

/* dx = dy / (1 + x). */
static void log1p_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_div(t, dy, nb_add(t, nb_scalar(t, 1.0), y->in[0])));
}

/* max(x, 0) + log1p(exp(-|x|)): no overflow for large x, no loss for very negative x. */
static void softplus_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = (x[i] > 0.0 ? x[i] : 0.0) + log1p(exp(-fabs(x[i])));
}

/* dx = dy ⊙ sigmoid(x). */
static void softplus_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_mul(t, dy, nb_sigmoid(t, y->in[0])));
}

const struct nb_op nb__op_log1p = {
	.name = "log1p", .arity = 1, .forward = log1p_forward, .backward = log1p_backward,
};
const struct nb_op nb__op_softplus = {
	.name = "softplus", .arity = 1, .forward = softplus_forward, .backward = softplus_backward,
};

nb_tensor *nb_log1p(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_log1p, x);
}

nb_tensor *nb_softplus(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_softplus, x);
}
