/* op_abs.c -- y = |x|, elementwise. */
#include <math.h>

#include "nabla_int.h"

static void abs_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = fabs(x[i]);
}

/* dx = dy ⊙ sign(x), sign(x) = step(x) - step(-x): 0 at the kink, NaN for NaN. */
static void abs_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *x = y->in[0];
	nb_tensor *sign = nb_sub(t, nb_step(t, x), nb_step(t, nb_neg(t, x)));

	nb__grad_add(t, x, nb_mul(t, dy, sign));
}

/* The kink is at 0: the sign of each element is its branch. */
static uint64_t abs_branch(const nb_tensor *y)
{
	return nb__branch_fold(0, y->in[0]->value, y->size, 0.0);
}

const struct nb_op nb__op_abs = {
	.name = "abs", .arity = 1, .forward = abs_forward, .backward = abs_backward,
	.branch = abs_branch,
};

nb_tensor *nb_abs(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_abs, x);
}
