/* op_scale.c -- y = c x for a constant c; negation is scaling by -1. */
#include "nabla_int.h"

static void scale_forward(nb_tensor *y)
{
	const double *x = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = y->attr.c * x[i];
}

/* dx = c dy. */
static void scale_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_scale(t, dy, y->attr.c));
}

const struct nb_op nb__op_scale = {
	.name = "scale", .arity = 1, .forward = scale_forward, .backward = scale_backward,
};

nb_tensor *nb_scale(nb_tape *t, nb_tensor *x, double c)
{
	struct nb_attr attr = { .c = c };

	if (!nb__args_ok(t, "scale", &x, 1))
		return NULL;
	if (c == 1.0 || nb__is_zero(x))  /* structural: nabla.h, "Ops" */
		return x;
	if (c == 0.0)
		return nb__zeros(t, x->rank, x->dim);
	return nb__record(t, &nb__op_scale, &x, &attr, x->rank, x->dim);
}

nb_tensor *nb_neg(nb_tape *t, nb_tensor *x)
{
	if (!nb__args_ok(t, "neg", &x, 1))
		return NULL;
	return nb_scale(t, x, -1.0);
}
