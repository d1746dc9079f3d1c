/* op_softmax.c -- along one axis: y = softmax(x) = exp(x) / sum exp(x), and
 * y = logsumexp(x) = log sum exp(x), both with the maximum subtracted so that exp never
 * overflows; log_softmax(x) = x - logsumexp(x) is built from them. */
#include <math.h>

#include "nabla_int.h"

/* One distribution: n values at stride s. The maximum is subtracted so that exp never
 * overflows; the result is the same. */
static void softmax_line(const double *x, double *y, size_t n, size_t s)
{
	double m = x[0], sum = 0.0;

	for (size_t k = 1; k < n; k++)
		m = fmax(m, x[k * s]);
	for (size_t k = 0; k < n; k++) {
		y[k * s] = exp(x[k * s] - m);
		sum += y[k * s];
	}
	for (size_t k = 0; k < n; k++)
		y[k * s] /= sum;
}

static void softmax_forward(nb_tensor *y)
{
	struct nb__around a = nb__around_axis(y, y->attr.axis);
	const double *x = y->in[0]->value;

	for (size_t o = 0; o < a.outer; o++)
		for (size_t i = 0; i < a.inner; i++) {
			size_t off = o * a.d * a.inner + i;

			softmax_line(x + off, y->value + off, a.d, a.inner);
		}
}

/* dx = y ⊙ (dy - sum_axis(dy ⊙ y)): the Jacobian diag(y) - y y^T applied to dy. */
static void softmax_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *dot = nb_sum_axis(t, nb_mul(t, dy, y), y->attr.axis, 1);

	nb__grad_add(t, y->in[0], nb_mul(t, y, nb_sub(t, dy, dot)));
}

const struct nb_op nb__op_softmax = {
	.name = "softmax", .arity = 1, .forward = softmax_forward, .backward = softmax_backward,
};

nb_tensor *nb_softmax(nb_tape *t, nb_tensor *x, int axis)
{
	struct nb_attr attr = { .axis = axis };
	char s[NB_MSG_MAX];

	if (!nb__args_ok(t, "softmax", &x, 1))
		return NULL;
	if (axis < 0 || axis >= x->rank)
		return nb__fail(t, NB_EINVAL, "softmax: axis %d is out of range for shape %s",
		                axis, nb__shape_str(x->rank, x->dim, s));
	return nb__record(t, &nb__op_softmax, &x, &attr, x->rank, x->dim);
}

/* log sum exp of one line of n values at stride s. An infinite maximum is the result
 * (inf - inf would make it NaN), unless the line holds a NaN. */
static double logsumexp_line(const double *x, size_t n, size_t s)
{
	double m = x[0], sum = 0.0;

	for (size_t k = 1; k < n; k++)
		m = fmax(m, x[k * s]);
	for (size_t k = 0; k < n; k++)
		sum += isinf(m) ? (isnan(x[k * s]) ? NAN : 0.0) : exp(x[k * s] - m);
	return isinf(m) ? m + sum : m + log(sum);
}

static void logsumexp_forward(nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	struct nb__around a = nb__around_axis(x, y->attr.axis);

	for (size_t o = 0; o < a.outer; o++)
		for (size_t i = 0; i < a.inner; i++)
			y->value[o * a.inner + i] = logsumexp_line(x->value + o * a.d * a.inner + i,
			                                           a.d, a.inner);
}

/* dx = dy ⊙ softmax(x), dy broadcast back along the axis. */
static void logsumexp_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *x = y->in[0];

	nb__grad_add(t, x, nb_mul(t, nb__along_axis(t, dy, x, y->attr.axis),
	                          nb_softmax(t, x, y->attr.axis)));
}

const struct nb_op nb__op_logsumexp = {
	.name = "logsumexp", .arity = 1, .forward = logsumexp_forward,
	.backward = logsumexp_backward,
};

nb_tensor *nb_logsumexp(nb_tape *t, nb_tensor *x, int axis, int keepdim)
{
	struct nb_attr attr = { .axis = axis, .keepdim = keepdim != 0 };
	size_t dim[NB_MAX_RANK];
	int rank;

	if (!nb__args_ok(t, "logsumexp", &x, 1) ||
	    !nb__reduced_shape(t, "logsumexp", x, axis, keepdim, &rank, dim))
		return NULL;
	return nb__record(t, &nb__op_logsumexp, &x, &attr, rank, dim);
}

/* x - logsumexp(x): the log of softmax, without the log of a rounded 0. */
nb_tensor *nb_log_softmax(nb_tape *t, nb_tensor *x, int axis)
{
	size_t mark = t ? t->n : 0;

	if (!nb__args_ok(t, "log_softmax", &x, 1))
		return NULL;
	if (axis < 0 || axis >= x->rank) {
		char s[NB_MSG_MAX];

		return nb__fail(t, NB_EINVAL, "log_softmax: axis %d is out of range for shape %s",
		                axis, nb__shape_str(x->rank, x->dim, s));
	}
	return nb__undo(t, mark, nb_sub(t, x, nb_logsumexp(t, x, axis, 1)));
}
