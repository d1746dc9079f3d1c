/* op_cost.c -- the quadratic cost C = 1/(2n) sum_x ||y(x) - a(x)||^2, a scalar. The last
 * axis indexes the n examples (the columns of Nielsen's matrix form); a tensor of rank 0
 * or 1 is a single example. */
#include "nabla_int.h"

size_t nb__examples(const nb_tensor *a)
{
	return a->rank >= 2 ? a->dim[a->rank - 1] : 1;
}

static void quadratic_cost_forward(nb_tensor *c)
{
	const double *a = c->in[0]->value, *y = c->in[1]->value;
	double s = 0.0;

	for (size_t i = 0; i < c->in[0]->size; i++)
		s += (a[i] - y[i]) * (a[i] - y[i]);
	c->value[0] = s / (2.0 * (double)nb__examples(c->in[0]));
}

/* da = dC (a - y) / n: the nabla_a C of BP1, which sigmoid's rule then multiplies by
 * sigma'(z^L) to give delta^L. dy = -da. */
static void quadratic_cost_backward(nb_tape *t, nb_tensor *c, nb_tensor *dc)
{
	nb_tensor *a = c->in[0], *y = c->in[1];
	double inv_n = 1.0 / (double)nb__examples(a);
	nb_tensor *da = nb_scale(t, nb_mul(t, dc, nb_sub(t, a, y)), inv_n);

	if (nb__wants_grad(a))
		nb__grad_add(t, a, da);
	if (nb__wants_grad(y))
		nb__grad_add(t, y, nb_neg(t, da));
}

const struct nb_op nb__op_quadratic_cost = {
	.name = "quadratic_cost", .arity = 2,
	.forward = quadratic_cost_forward, .backward = quadratic_cost_backward,
};

bool nb__cost_args(nb_tape *t, const char *op, nb_tensor *a, nb_tensor *y)
{
	nb_tensor *in[2] = { a, y };
	char sa[NB_MSG_MAX], sy[NB_MSG_MAX];

	if (!nb__args_ok(t, op, in, 2))
		return false;
	if (!nb__same_shape(a, y)) {
		nb__fail(t, NB_ESHAPE, "%s: output %s and target %s differ", op,
		         nb__shape_str(a->rank, a->dim, sa), nb__shape_str(y->rank, y->dim, sy));
		return false;
	}
	return true;
}

nb_tensor *nb_quadratic_cost(nb_tape *t, nb_tensor *a, nb_tensor *y)
{
	nb_tensor *in[2] = { a, y };

	if (!nb__cost_args(t, "quadratic_cost", a, y))
		return NULL;
	return nb__record(t, &nb__op_quadratic_cost, in, NULL, 0, NULL);
}
