/* op_select.c -- elementwise choices: y = maximum(a, b), minimum(a, b), and
 * where(m, a, b) = a where m != 0, else b. Operands broadcast: each is broadcast to the
 * result's shape first (broadcast_to's rule sums its gradient back), so the kernels see
 * one shape. All three give NaN for a NaN operand; they are piecewise, with branch rules
 * for the gradient checker. */
#include <math.h>
#include <string.h>

#include "nabla_int.h"

static void maximum_forward(nb_tensor *y)
{
	const double *a = y->in[0]->value, *b = y->in[1]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = a[i] >= b[i] || isnan(a[i]) ? a[i] : b[i];
}

static void minimum_forward(nb_tensor *y)
{
	const double *a = y->in[0]->value, *b = y->in[1]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = a[i] <= b[i] || isnan(a[i]) ? a[i] : b[i];
}

static void where_forward(nb_tensor *y)
{
	const double *m = y->in[0]->value, *a = y->in[1]->value, *b = y->in[2]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = isnan(m[i]) ? m[i] : m[i] != 0.0 ? a[i] : b[i];
}

/* The rules' selectors, ops without a gradient (flat wherever they have one): [a > b]
 * and [m != 0], NaN for NaN. They compare rather than subtract, so that no infinity
 * appears in between (max(-inf, 1) has the gradient 0 and 1, and b - a would be inf). */
static void greater_forward(nb_tensor *y)
{
	const double *a = y->in[0]->value, *b = y->in[1]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = a[i] > b[i] ? 1.0 : a[i] <= b[i] ? 0.0 : NAN;
}

static void nonzero_forward(nb_tensor *y)
{
	const double *m = y->in[0]->value;

	for (size_t i = 0; i < y->size; i++)
		y->value[i] = isnan(m[i]) ? m[i] : m[i] != 0.0;
}

const struct nb_op nb__op_greater = { .name = "greater", .arity = 2, .forward = greater_forward };
const struct nb_op nb__op_nonzero = { .name = "nonzero", .arity = 1, .forward = nonzero_forward };

/* Of two operands x and z, z was chosen where z_wins is 1 and x where it is 0: dx =
 * dy ⊙ (1 - z_wins), dz = dy ⊙ z_wins. For maximum a tie goes to a, so z_wins is
 * [b > a]. */
static void choose_backward(nb_tape *t, nb_tensor *dy, nb_tensor *x, nb_tensor *z,
                            nb_tensor *z_wins)
{
	if (nb__wants_grad(x))
		nb__grad_add(t, x, nb_mul(t, dy, nb_sub(t, nb_scalar(t, 1.0), z_wins)));
	if (nb__wants_grad(z))
		nb__grad_add(t, z, nb_mul(t, dy, z_wins));
}

static void maximum_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *a = y->in[0], *b = y->in[1];

	nb_tensor *in[2] = { b, a };

	choose_backward(t, dy, a, b, nb__record(t, &nb__op_greater, in, NULL, a->rank, a->dim));
}

static void minimum_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *a = y->in[0], *b = y->in[1];

	nb_tensor *in[2] = { a, b };

	choose_backward(t, dy, a, b, nb__record(t, &nb__op_greater, in, NULL, a->rank, a->dim));
}

/* da = dy ⊙ [m != 0], db = dy ⊙ [m == 0]; m, a selector, gets no gradient (it is flat
 * wherever it has one). */
static void where_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *m = y->in[0];
	nb_tensor *pick_a = nb__record(t, &nb__op_nonzero, &m, NULL, m->rank, m->dim);

	choose_backward(t, dy, y->in[2], y->in[1], pick_a);
}

/* Which operand each element took. */
static uint64_t maximum_branch(const nb_tensor *y)
{
	const double *a = y->in[0]->value, *b = y->in[1]->value;
	uint64_t h = 0;

	for (size_t i = 0; i < y->size; i++)
		h = h * 0x100000001b3ULL ^ (a[i] >= b[i]);
	return h;
}

static uint64_t minimum_branch(const nb_tensor *y)
{
	const double *a = y->in[0]->value, *b = y->in[1]->value;
	uint64_t h = 0;

	for (size_t i = 0; i < y->size; i++)
		h = h * 0x100000001b3ULL ^ (a[i] <= b[i]);
	return h;
}

static uint64_t where_branch(const nb_tensor *y)
{
	const double *m = y->in[0]->value;
	uint64_t h = 0;

	for (size_t i = 0; i < y->size; i++)
		h = h * 0x100000001b3ULL ^ (m[i] != 0.0);
	return h;
}

const struct nb_op nb__op_maximum = {
	.name = "maximum", .arity = 2, .forward = maximum_forward,
	.backward = maximum_backward, .branch = maximum_branch,
};
const struct nb_op nb__op_minimum = {
	.name = "minimum", .arity = 2, .forward = minimum_forward,
	.backward = minimum_backward, .branch = minimum_branch,
};
const struct nb_op nb__op_where = {
	.name = "where", .arity = 3, .forward = where_forward, .backward = where_backward,
	.branch = where_branch,
};

/* The shape n operands broadcast to, or an error naming op and every shape. */
static bool common_shape(nb_tape *t, const char *op, nb_tensor *const *in, int n, int *rank,
                         size_t *dim)
{
	char s[3][NB_MSG_MAX];

	*rank = in[0]->rank;
	memcpy(dim, in[0]->dim, sizeof in[0]->dim);
	for (int i = 1; i < n; i++)
		if (!nb__broadcast_shape(*rank, dim, in[i]->rank, in[i]->dim, rank, dim)) {
			for (int k = 0; k < n; k++)
				nb__shape_str(in[k]->rank, in[k]->dim, s[k]);
			nb__fail(t, NB_ESHAPE, n == 2 ? "%s: shapes do not broadcast: %s and %s"
			         : "%s: shapes do not broadcast: %s, %s and %s", op, s[0], s[1],
			         n == 3 ? s[2] : "");
			return false;
		}
	return true;
}

/* Check, broadcast every operand to the common shape, record op: a failure at any step
 * records nothing. */
static nb_tensor *select_op(nb_tape *t, const struct nb_op *op, nb_tensor *const *in)
{
	nb_tensor *b[3];
	size_t dim[NB_MAX_RANK], mark = t ? t->n : 0;
	int rank, n = op->arity;

	if (!nb__args_ok(t, op->name, in, n) || !common_shape(t, op->name, in, n, &rank, dim))
		return NULL;
	for (int i = 0; i < n; i++)
		if (!(b[i] = nb_broadcast_to(t, in[i], rank, dim)))
			return nb__undo(t, mark, NULL);
	return nb__undo(t, mark, nb__record(t, op, b, NULL, rank, dim));
}

nb_tensor *nb_maximum(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return select_op(t, &nb__op_maximum, (nb_tensor *[]){ a, b });
}

nb_tensor *nb_minimum(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return select_op(t, &nb__op_minimum, (nb_tensor *[]){ a, b });
}

nb_tensor *nb_where(nb_tape *t, nb_tensor *m, nb_tensor *a, nb_tensor *b)
{
	return select_op(t, &nb__op_where, (nb_tensor *[]){ m, a, b });
}
