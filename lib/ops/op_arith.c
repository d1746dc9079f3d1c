/* op_arith.c -- c = a + b, a - b, a ⊙ b (Hadamard), a / b: elementwise, with numpy
 * broadcasting. The gradient of a broadcast operand is summed back to its shape. */
#include "nabla_int.h"

enum arith { ADD, SUB, MUL, DIV };

/* One row of n results; a step of 0 repeats a broadcast element. The switch sits outside
 * the loop so that each loop is a plain vectorisable one. */
static void arith_row(enum arith k, double *y, const double *a, size_t sa, const double *b,
                      size_t sb, size_t n)
{
	switch (k) {
	case ADD:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i * sa] + b[i * sb];
		break;
	case SUB:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i * sa] - b[i * sb];
		break;
	case MUL:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i * sa] * b[i * sb];
		break;
	case DIV:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i * sa] / b[i * sb];
		break;
	}
}

/* The output walked as four padded axes, one row of the last axis at a time. */
static void arith_forward(nb_tensor *y, enum arith k)
{
	const nb_tensor *a = y->in[0], *b = y->in[1];
	size_t d[NB_MAX_RANK], sa[NB_MAX_RANK], sb[NB_MAX_RANK];
	double *out = y->value;

	if (a->size == y->size && b->size == y->size) {
		arith_row(k, out, a->value, 1, b->value, 1, y->size);
		return;
	}
	nb__pad_dims(y->rank, y->dim, d);
	nb__broadcast_strides(a->rank, a->dim, y->rank, y->dim, sa);
	nb__broadcast_strides(b->rank, b->dim, y->rank, y->dim, sb);
	for (size_t i0 = 0; i0 < d[0]; i0++)
		for (size_t i1 = 0; i1 < d[1]; i1++)
			for (size_t i2 = 0; i2 < d[2]; i2++, out += d[3]) {
				size_t oa = i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
				size_t ob = i0 * sb[0] + i1 * sb[1] + i2 * sb[2];

				arith_row(k, out, a->value + oa, sa[3], b->value + ob, sb[3], d[3]);
			}
}

static void add_forward(nb_tensor *y) { arith_forward(y, ADD); }
static void sub_forward(nb_tensor *y) { arith_forward(y, SUB); }
static void mul_forward(nb_tensor *y) { arith_forward(y, MUL); }
static void div_forward(nb_tensor *y) { arith_forward(y, DIV); }

/* da = dc, db = dc (each summed back to its operand's shape). In a layer z = w a + b this
 * is BP3: the bias gradient is delta summed over the examples of the mini-batch. */
static void add_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	for (int i = 0; i < 2; i++)
		if (nb__wants_grad(y->in[i]))
			nb__grad_add(t, y->in[i], nb__unbroadcast(t, dy, y->in[i]));
}

/* da = dc, db = -dc. */
static void sub_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	if (nb__wants_grad(y->in[0]))
		nb__grad_add(t, y->in[0], nb__unbroadcast(t, dy, y->in[0]));
	if (nb__wants_grad(y->in[1]))
		nb__grad_add(t, y->in[1], nb__unbroadcast(t, nb_neg(t, dy), y->in[1]));
}

/* da = dc ⊙ b, db = dc ⊙ a: with b = sigma'(z) this is the Hadamard product of BP1/BP2. */
static void mul_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *a = y->in[0], *b = y->in[1];

	if (nb__wants_grad(a))
		nb__grad_add(t, a, nb__unbroadcast(t, nb_mul(t, dy, b), a));
	if (nb__wants_grad(b))
		nb__grad_add(t, b, nb__unbroadcast(t, nb_mul(t, dy, a), b));
}

/* da = dc / b, db = -dc ⊙ c / b (c = a / b, already computed). */
static void div_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *a = y->in[0], *b = y->in[1];

	if (nb__wants_grad(a))
		nb__grad_add(t, a, nb__unbroadcast(t, nb_div(t, dy, b), a));
	if (nb__wants_grad(b))
		nb__grad_add(t, b, nb__unbroadcast(t, nb_neg(t, nb_mul(t, dy, nb_div(t, y, b))), b));
}

const struct nb_op nb__op_add = {
	.name = "add", .arity = 2, .forward = add_forward, .backward = add_backward,
};
const struct nb_op nb__op_sub = {
	.name = "sub", .arity = 2, .forward = sub_forward, .backward = sub_backward,
};
const struct nb_op nb__op_mul = {
	.name = "mul", .arity = 2, .forward = mul_forward, .backward = mul_backward,
};
const struct nb_op nb__op_div = {
	.name = "div", .arity = 2, .forward = div_forward, .backward = div_backward,
};

/* Structural zeros and ones (nabla.h, "Ops"): true when the result needs no node of op,
 * with the result (NULL after an error) in *out. */
static bool simplified(nb_tape *t, const struct nb_op *op, nb_tensor *a, nb_tensor *b,
                       int rank, const size_t *dim, nb_tensor **out)
{
	bool add = op == &nb__op_add, sub = op == &nb__op_sub, mul = op == &nb__op_mul;
	bool div = op == &nb__op_div;
	size_t mark = t->n;  /* 0 - b records -b, then its broadcast */
	nb_tensor *keep = NULL;

	if ((mul && (nb__is_zero(a) || nb__is_zero(b))) || (div && nb__is_zero(a))) {
		*out = nb__zeros(t, rank, dim);
		return true;
	}
	if (((add || sub) && nb__is_zero(b)) || ((mul || div) && nb__is_fill(b, 1.0)))
		keep = a;
	else if ((add && nb__is_zero(a)) || (mul && nb__is_fill(a, 1.0)))
		keep = b;
	else if (sub && nb__is_zero(a))
		keep = nb_neg(t, b);
	else
		return false;
	*out = keep ? nb__undo(t, mark, nb_broadcast_to(t, keep, rank, dim)) : NULL;
	return true;
}

/* Shape check shared by the four: the operands must broadcast together. */
static nb_tensor *arith(nb_tape *t, const struct nb_op *op, nb_tensor *a, nb_tensor *b)
{
	nb_tensor *in[2] = { a, b }, *c;
	size_t dim[NB_MAX_RANK];
	int rank;

	if (!nb__args_ok(t, op->name, in, 2))
		return NULL;
	if (!nb__broadcast_shape(a->rank, a->dim, b->rank, b->dim, &rank, dim)) {
		char sa[NB_MSG_MAX], sb[NB_MSG_MAX];

		return nb__fail(t, NB_ESHAPE, "%s: shapes do not broadcast: %s and %s", op->name,
		                nb__shape_str(a->rank, a->dim, sa), nb__shape_str(b->rank, b->dim, sb));
	}
	if (simplified(t, op, a, b, rank, dim, &c))
		return c;
	return nb__record(t, op, in, NULL, rank, dim);
}

nb_tensor *nb_add(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return arith(t, &nb__op_add, a, b);
}

nb_tensor *nb_sub(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return arith(t, &nb__op_sub, a, b);
}

nb_tensor *nb_mul(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return arith(t, &nb__op_mul, a, b);
}

nb_tensor *nb_div(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return arith(t, &nb__op_div, a, b);
}
