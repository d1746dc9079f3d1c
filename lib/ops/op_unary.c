/* op_unary.c -- elementwise functions y = tanh(x), exp(x), log(x). Each rule reuses y
 * where the derivative is a function of it. */
#include <math.h>

#include "nabla_int.h"

static void tanh_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = tanh(x[i]);
}

/* dx = dy ⊙ (1 - y ⊙ y). */
static void tanh_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *one = nb_scalar(t, 1.0);

	nb__grad_add(t, y->in[0], nb_mul(t, dy, nb_sub(t, one, nb_mul(t, y, y))));
}

static void exp_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = exp(x[i]);
}

/* dx = dy ⊙ y. */
static void exp_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_mul(t, dy, y));
}

static void log_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = log(x[i]);
}

/* dx = dy / x. */
static void log_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_div(t, dy, y->in[0]));
}

const struct nb_op nb__op_tanh = {
	.name = "tanh", .arity = 1, .forward = tanh_forward, .backward = tanh_backward,
};
const struct nb_op nb__op_exp = {
	.name = "exp", .arity = 1, .forward = exp_forward, .backward = exp_backward,
};
const struct nb_op nb__op_log = {
	.name = "log", .arity = 1, .forward = log_forward, .backward = log_backward,
};

nb_tensor *nb_tanh(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_tanh, x);
}

nb_tensor *nb_exp(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_exp, x);
}

nb_tensor *nb_log(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_log, x);
}
