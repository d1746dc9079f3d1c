/* op_pow.c -- powers, elementwise: y = x^p for a constant p, y = x^2, y = sqrt(x). Each
 * rule is written with the family's own ops, so derivatives of any order stay powers. */
#include <math.h>

#include "nabla_int.h"

static void pow_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = pow(x[i], y->attr.c);
}

/* dx = dy ⊙ p x^(p-1). */
static void pow_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	double p = y->attr.c;

	nb__grad_add(t, y->in[0], nb_mul(t, dy, nb_scale(t, nb_pow(t, y->in[0], p - 1.0), p)));
}

static void square_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = x[i] * x[i];
}

/* dx = dy ⊙ 2x. */
static void square_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_mul(t, dy, nb_scale(t, y->in[0], 2.0)));
}

static void sqrt_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = sqrt(x[i]);
}

/* dx = dy / (2y): y itself, not sqrt(x) again. */
static void sqrt_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_div(t, dy, nb_scale(t, y, 2.0)));
}

const struct nb_op nb__op_pow = {
	.name = "pow", .arity = 1, .forward = pow_forward, .backward = pow_backward,
};
const struct nb_op nb__op_square = {
	.name = "square", .arity = 1, .forward = square_forward, .backward = square_backward,
};
const struct nb_op nb__op_sqrt = {
	.name = "sqrt", .arity = 1, .forward = sqrt_forward, .backward = sqrt_backward,
};

/* x^0 is 1 and x^1 is x, structurally (even where x is 0, inf or NaN: as pow() has it for
 * p = 0, and as a + 0 is a); x^2 is square. A p that is not finite is refused. */
nb_tensor *nb_pow(nb_tape *t, nb_tensor *x, double p)
{
	struct nb_attr attr = { .c = p };

	if (!nb__args_ok(t, "pow", &x, 1))
		return NULL;
	if (!isfinite(p))
		return nb__fail(t, NB_EINVAL, "pow: exponent %g is not finite", p);
	if (p == 0.0)
		return nb_fill(t, x->rank, x->dim, 1.0);
	if (p == 1.0)
		return x;
	if (p == 2.0)
		return nb_square(t, x);
	return nb__record(t, &nb__op_pow, &x, &attr, x->rank, x->dim);
}

nb_tensor *nb_square(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_square, x);
}

nb_tensor *nb_sqrt(nb_tape *t, nb_tensor *x)
{
	return nb__record_unary(t, &nb__op_sqrt, x);
}
