/* op_softmax.c -- y = exp(x) / sum exp(x) along one axis. */
#include <math.h>

#include "nabla_int.h"

/* x seen as (outer, d, inner) around the axis: element (o, k, i) is at (o d + k) inner + i. */
struct around {
	size_t outer, d, inner;
};

static struct around around_axis(const nb_tensor *x, int axis)
{
	struct around a = { 1, x->dim[axis], 1 };

	for (int i = 0; i < axis; i++)
		a.outer *= x->dim[i];
	for (int i = axis + 1; i < x->rank; i++)
		a.inner *= x->dim[i];
	return a;
}

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
	struct around a = around_axis(y, y->attr.axis);
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
