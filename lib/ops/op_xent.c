/* op_xent.c -- cross-entropy costs computed from the output layer's weighted input z, so
 * that they stay finite where the activation rounds to 0 or 1:
 *   sigmoid:  C = -1/n sum [y ln a + (1 - y) ln(1 - a)],  a = sigmoid(z)
 *   softmax:  C = -1/n sum y ln a,                         a = softmax(z) along axis 0
 * n is the number of examples (nb__examples). */
#include <math.h>

#include "nabla_int.h"

/* -[y ln a + (1 - y) ln(1 - a)] = max(z, 0) - z y + ln(1 + exp(-|z|)), term by term. */
static void sigmoid_cross_entropy_forward(nb_tensor *c)
{
	const double *z = c->in[0]->value, *y = c->in[1]->value;
	double s = 0.0;

	for (size_t i = 0; i < c->in[0]->size; i++)
		s += fmax(z[i], 0.0) - z[i] * y[i] + log1p(exp(-fabs(z[i])));
	c->value[0] = s / (double)nb__examples(c->in[0]);
}

/* dz = dC (sigmoid(z) - y) / n: BP1 for this cost, where sigma'(z) has cancelled (Nielsen,
 * chapter 3). dy = -dC z / n. */
static void sigmoid_cross_entropy_backward(nb_tape *t, nb_tensor *c, nb_tensor *dc)
{
	nb_tensor *z = c->in[0], *y = c->in[1];
	double inv_n = 1.0 / (double)nb__examples(z);

	if (nb__wants_grad(z))
		nb__grad_add(t, z, nb_scale(t, nb_mul(t, dc, nb_sub(t, nb_sigmoid(t, z), y)), inv_n));
	if (nb__wants_grad(y))
		nb__grad_add(t, y, nb_scale(t, nb_mul(t, dc, z), -inv_n));
}

/* The column of z at (i) in a (d x inner) layout: -sum_k y_k (z_k - logsumexp(z)). */
static double softmax_xent_line(const double *z, const double *y, size_t d, size_t s)
{
	double m = z[0], sum = 0.0, lse, c = 0.0;

	for (size_t k = 1; k < d; k++)
		m = fmax(m, z[k * s]);
	for (size_t k = 0; k < d; k++)
		sum += exp(z[k * s] - m);
	lse = m + log(sum);
	for (size_t k = 0; k < d; k++)
		c -= y[k * s] * (z[k * s] - lse);
	return c;
}

static void softmax_cross_entropy_forward(nb_tensor *c)
{
	const nb_tensor *zt = c->in[0];
	const double *z = zt->value, *y = c->in[1]->value;
	size_t d = zt->dim[0], inner = zt->size / d;
	double s = 0.0;

	for (size_t i = 0; i < inner; i++)
		s += softmax_xent_line(z + i, y + i, d, inner);
	c->value[0] = s / (double)nb__examples(zt);
}

/* dz = dC (softmax(z) ⊙ sum_0(y) - y) / n, which is (a - y) / n for one-hot targets.
 * dy = -dC ln softmax(z) / n. */
static void softmax_cross_entropy_backward(nb_tape *t, nb_tensor *c, nb_tensor *dc)
{
	nb_tensor *z = c->in[0], *y = c->in[1];
	double inv_n = 1.0 / (double)nb__examples(z);
	nb_tensor *a = nb_softmax(t, z, 0);

	if (nb__wants_grad(z)) {
		nb_tensor *mass = nb_sum_axis(t, y, 0, 1);

		nb__grad_add(t, z, nb_scale(t, nb_mul(t, dc, nb_sub(t, nb_mul(t, a, mass), y)),
		                            inv_n));
	}
	if (nb__wants_grad(y))
		nb__grad_add(t, y, nb_scale(t, nb_mul(t, dc, nb_log(t, a)), -inv_n));
}

const struct nb_op nb__op_sigmoid_cross_entropy = {
	.name = "sigmoid_cross_entropy", .arity = 2,
	.forward = sigmoid_cross_entropy_forward, .backward = sigmoid_cross_entropy_backward,
};
const struct nb_op nb__op_softmax_cross_entropy = {
	.name = "softmax_cross_entropy", .arity = 2,
	.forward = softmax_cross_entropy_forward, .backward = softmax_cross_entropy_backward,
};

nb_tensor *nb_sigmoid_cross_entropy(nb_tape *t, nb_tensor *z, nb_tensor *y)
{
	nb_tensor *in[2] = { z, y };

	if (!nb__cost_args(t, "sigmoid_cross_entropy", z, y))
		return NULL;
	return nb__record(t, &nb__op_sigmoid_cross_entropy, in, NULL, 0, NULL);
}

nb_tensor *nb_softmax_cross_entropy(nb_tape *t, nb_tensor *z, nb_tensor *y)
{
	nb_tensor *in[2] = { z, y };

	if (!nb__cost_args(t, "softmax_cross_entropy", z, y))
		return NULL;
	if (z->rank == 0)
		return nb__fail(t, NB_ERANK, "softmax_cross_entropy: a scalar has no classes axis");
	return nb__record(t, &nb__op_softmax_cross_entropy, in, NULL, 0, NULL);
}
