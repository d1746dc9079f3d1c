/* test_parse.c -- nb_parse(): each construct records the graph the C API builds for it,
 * precedence and associativity, numbers read as the compiler reads them, every error
 * message with its position, op errors with the position of the op, nothing recorded by
 * a parse that fails, nesting limits, and the named inputs. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ---- The inputs every expression here may use ------------------------------------------ */

enum { A, B, C, V, S, Z, Y, N_IN };

/* a, c (2x3), b (3x2), v (3), s (a scalar), z and y (3x4), seeded values away from 0
 * (so that log and div are finite) */
static void make_inputs(nb_tape *t, nb_tensor **x, nb_parse_input *named)
{
	static const char *const names[N_IN] = { "a", "b", "c", "v", "s", "z", "y" };
	static const int rank[N_IN] = { 2, 2, 2, 1, 0, 2, 2 };
	static const size_t dim[N_IN][2] = { { 2, 3 }, { 3, 2 }, { 2, 3 }, { 3 }, { 0 },
	                                     { 3, 4 }, { 3, 4 } };
	test_rng r;

	rng_seed(&r, 42);
	for (int i = 0; i < N_IN; i++) {
		double data[12];

		rng_fill(&r, data, 12, 0.25, 2.0);
		x[i] = nb_variable(t, rank[i], dim[i], data);
		ck_assert_ptr_nonnull(x[i]);
		named[i] = (nb_parse_input){ names[i], x[i] };
	}
}

/* ---- Constructs: the parse is the node the C API records ------------------------------ */

struct construct {
	const char *src;
	nb_tensor *(*build)(nb_tape *t, nb_tensor *const *x);
};

#define BUILD(name, expr) \
	static nb_tensor *name(nb_tape *t, nb_tensor *const *x) \
	{                                                        \
		(void)t;                                         \
		(void)x;                                         \
		return (expr);                                   \
	}

BUILD(b_num, nb_scalar(t, 2.5))
BUILD(b_neg_num, nb_scalar(t, -2.0))
BUILD(b_neg_paren_num, nb_neg(t, nb_scalar(t, 2.0)))
BUILD(b_name, x[A])
BUILD(b_add, nb_add(t, x[A], x[C]))
BUILD(b_sub, nb_sub(t, x[A], x[C]))
BUILD(b_mul, nb_mul(t, x[A], x[C]))
BUILD(b_div, nb_div(t, x[A], x[C]))
BUILD(b_matmul, nb_matmul(t, x[A], x[B]))
BUILD(b_bcast, nb_add(t, x[A], x[V]))
BUILD(b_num_mul, nb_mul(t, nb_scalar(t, 2.0), x[A]))
BUILD(b_neg, nb_neg(t, x[A]))
BUILD(b_neg_neg, nb_neg(t, nb_neg(t, x[A])))
BUILD(b_t, nb_transpose(t, x[A]))
BUILD(b_tt, nb_transpose(t, nb_transpose(t, x[A])))
BUILD(b_scale, nb_scale(t, x[A], 2.5))
BUILD(b_scale_neg, nb_scale(t, x[A], -1.0))
BUILD(b_sigmoid, nb_sigmoid(t, x[A]))
BUILD(b_tanh, nb_tanh(t, x[A]))
BUILD(b_exp, nb_exp(t, x[A]))
BUILD(b_log, nb_log(t, x[A]))
BUILD(b_sqrt, nb_sqrt(t, x[A]))
BUILD(b_square, nb_square(t, x[A]))
BUILD(b_pow, nb_pow(t, x[A], -1.5))
BUILD(b_abs, nb_abs(t, x[A]))
BUILD(b_log1p, nb_log1p(t, x[A]))
BUILD(b_softplus, nb_softplus(t, x[A]))
BUILD(b_maximum, nb_maximum(t, x[A], x[V]))
BUILD(b_minimum, nb_minimum(t, x[A], x[C]))
BUILD(b_where, nb_where(t, x[V], x[C], x[A]))
BUILD(b_mean, nb_mean(t, x[A]))
BUILD(b_mean_axis, nb_mean_axis(t, x[A], 1, 1))
BUILD(b_max, nb_max_axis(t, x[A], 0, 0))
BUILD(b_logsumexp, nb_logsumexp(t, x[A], 1, 0))
BUILD(b_log_softmax, nb_log_softmax(t, x[A], 0))
BUILD(b_slice, nb_slice(t, x[A], 1, 1, 3))
BUILD(b_pad, nb_pad(t, x[A], 0, 2, 1))
BUILD(b_concat, nb_concat(t, (nb_tensor *[]){ x[A], x[C] }, 2, 1))
BUILD(b_permute, nb_permute(t, x[A], (const int[]){ 1, 0 }))
BUILD(b_relu, nb_relu(t, nb_sub(t, x[A], nb_scalar(t, 1.0))))
BUILD(b_step, nb_step(t, x[A]))
BUILD(b_softmax0, nb_softmax(t, x[A], 0))
BUILD(b_softmax1, nb_softmax(t, x[A], 1))
BUILD(b_matmul_tb, nb_matmul_t(t, x[A], x[C], NB_TRANS_B))
BUILD(b_matmul_ta, nb_matmul_t(t, x[A], x[C], NB_TRANS_A))
BUILD(b_matmul_tab, nb_matmul_t(t, x[B], x[A], NB_TRANS_A | NB_TRANS_B))
BUILD(b_reshape32, nb_reshape(t, x[A], 2, (size_t[]){ 3, 2 }))
BUILD(b_reshape6, nb_reshape(t, x[A], 1, (size_t[]){ 6 }))
BUILD(b_reshape4, nb_reshape(t, x[A], 4, (size_t[]){ 1, 2, 3, 1 }))
BUILD(b_reshape0, nb_reshape(t, nb_sum(t, x[A]), 0, NULL))
BUILD(b_sum, nb_sum(t, x[A]))
BUILD(b_sum0, nb_sum_axis(t, x[A], 0, 0))
BUILD(b_sum1, nb_sum_axis(t, x[A], 1, 0))
BUILD(b_sum0k, nb_sum_axis(t, x[A], 0, 1))
BUILD(b_sumk, nb_reshape(t, nb_sum(t, x[A]), 2, (size_t[]){ 1, 1 }))
BUILD(b_bto, nb_broadcast_to(t, x[V], 2, (size_t[]){ 2, 3 }))
BUILD(b_rto, nb_reduce_to(t, x[A], 2, (size_t[]){ 1, 3 }))
BUILD(b_quad, nb_quadratic_cost(t, x[Z], x[Y]))
BUILD(b_sxent, nb_sigmoid_cross_entropy(t, x[Z], x[Y]))
BUILD(b_smxent, nb_softmax_cross_entropy(t, x[Z], x[Y]))
BUILD(b_layer, nb_quadratic_cost(t, nb_sigmoid(t, nb_add(t, nb_matmul(t, nb_matmul(t, x[B], x[A]),
                                  x[Z]), nb_scalar(t, 0.5))), nb_scale(t, x[Y], 0.5)))

static const struct construct constructs[] = {
	{ "2.5", b_num },
	{ "-2", b_neg_num },
	{ "- 2", b_neg_num },
	{ "-(2)", b_neg_paren_num },
	{ "a", b_name },
	{ "(a)", b_name },
	{ "+a", b_name },
	{ "a + c", b_add },
	{ "add(a, c)", b_add },
	{ "a - c", b_sub },
	{ "sub(a, c)", b_sub },
	{ "a * c", b_mul },
	{ "mul(a,c)", b_mul },
	{ "a / c", b_div },
	{ "div(a, c)", b_div },
	{ "a @ b", b_matmul },
	{ "matmul(a, b)", b_matmul },
	{ "matmul(a, b, trans_a=0, trans_b=0)", b_matmul },
	{ "a + v", b_bcast },
	{ "2 * a", b_num_mul },
	{ "-a", b_neg },
	{ "neg(a)", b_neg },
	{ "--a", b_neg_neg },
	{ "a.T", b_t },
	{ "transpose(a)", b_t },
	{ "a.T.T", b_tt },
	{ "scale(a, 2.5)", b_scale },
	{ "scale(a, c=2.5)", b_scale },
	{ "scale(a, -1)", b_scale_neg },
	{ "sigmoid(a)", b_sigmoid },
	{ "tanh(a)", b_tanh },
	{ "exp(a)", b_exp },
	{ "log(a)", b_log },
	{ "sqrt(a)", b_sqrt },
	{ "square(a)", b_square },
	{ "pow(a, -1.5)", b_pow },
	{ "pow(a, p=-1.5)", b_pow },
	{ "abs(a)", b_abs },
	{ "log1p(a)", b_log1p },
	{ "softplus(a)", b_softplus },
	{ "maximum(a, v)", b_maximum },
	{ "minimum(a, c)", b_minimum },
	{ "where(v, c, a)", b_where },
	{ "mean(a)", b_mean },
	{ "mean(a, 1, keepdim=1)", b_mean_axis },
	{ "max(a)", b_max },
	{ "logsumexp(a, axis=1)", b_logsumexp },
	{ "log_softmax(a)", b_log_softmax },
	{ "slice(a, 1, 1, 3)", b_slice },
	{ "pad(a, before=2, after=1)", b_pad },
	{ "concat(a, c, axis=1)", b_concat },
	{ "permute(a, 1, 0)", b_permute },
	{ "relu(a - 1)", b_relu },
	{ "step(a)", b_step },
	{ "softmax(a)", b_softmax0 },
	{ "softmax(a, 1)", b_softmax1 },
	{ "softmax(a, axis=1)", b_softmax1 },
	{ "matmul(a, c, trans_b=1)", b_matmul_tb },
	{ "matmul(a, c, 0, 1)", b_matmul_tb },
	{ "matmul(a, c, trans_a=1)", b_matmul_ta },
	{ "matmul(b, a, trans_b=1, trans_a=1)", b_matmul_tab },
	{ "reshape(a, 3, 2)", b_reshape32 },
	{ "reshape(a, 6)", b_reshape6 },
	{ "reshape(a, 1, 2, 3, 1)", b_reshape4 },
	{ "reshape(sum(a))", b_reshape0 },
	{ "sum(a)", b_sum },
	{ "sum(a, 0)", b_sum0 },
	{ "sum(a, axis=0)", b_sum0 },
	{ "sum(a, axis=1)", b_sum1 },
	{ "sum(a, axis=0, keepdim=1)", b_sum0k },
	{ "sum(a, keepdim=1, axis=0)", b_sum0k },
	{ "sum(a, 0, 1)", b_sum0k },
	{ "sum(a, keepdim=1)", b_sumk },
	{ "broadcast_to(v, 2, 3)", b_bto },
	{ "reduce_to(a, 1, 3)", b_rto },
	{ "quadratic_cost(z, y)", b_quad },
	{ "sigmoid_cross_entropy(z, y)", b_sxent },
	{ "softmax_cross_entropy(z, y)", b_smxent },
	{ "quadratic_cost(sigmoid(b @ a @ z + 0.5), scale(y, 0.5))", b_layer },
	{ " \tquadratic_cost(\n  sigmoid(matmul(b, a) @ z + .5),\n  scale(y, c=5e-1))\n", b_layer },
};

/* Gradients of the sum of y's elements with respect to every input, into g. */
static void gradients(nb_tape *t, nb_tensor *y, nb_tensor *const *x, nb_tensor **g)
{
	size_t dim[NB_MAX_RANK];
	nb_tensor *seed = NULL;

	for (int i = 0; i < nb_rank(y); i++)
		dim[i] = nb_dim(y, i);
	if (nb_size(y) > 1)
		seed = nb_fill(t, nb_rank(y), dim, 1.0);
	ck_assert_int_eq(nb_gradients(t, y, seed, x, N_IN, g), NB_OK);
}

static void assert_same_values(const nb_tensor *p, const nb_tensor *q)
{
	ck_assert_int_eq(nb_rank(p), nb_rank(q));
	ck_assert_uint_eq(nb_size(p), nb_size(q));
	ck_assert_int_eq(memcmp(nb_value(p), nb_value(q), nb_size(p) * sizeof(double)), 0);
}

/* On one tape the parse is the very node built before it (hash-consing finds it: same op,
 * inputs and attributes) and records nothing; on a tape of its own it has the same value
 * and gradients, bit for bit. */
START_TEST(test_construct_is_the_c_api_graph)
{
	const struct construct *k = &constructs[_i];
	nb_tape *t = nb_tape_new(), *u = nb_tape_new();
	nb_tensor *x[N_IN], *xu[N_IN], *built, *parsed, *g[N_IN], *gu[N_IN];
	nb_parse_input in[N_IN], inu[N_IN];
	nb_parse_loc where = { 9, 9, 9 };
	size_t size;

	make_inputs(t, x, in);
	make_inputs(u, xu, inu);
	built = k->build(t, x);
	ck_assert_msg(built != NULL, "%s: %s", k->src, nb_tape_message(t));
	size = nb_tape_size(t);
	parsed = nb_parse(t, k->src, in, N_IN, &where);
	ck_assert_msg(parsed == built, "%s: %s", k->src, nb_tape_message(t));
	ck_assert_uint_eq(nb_tape_size(t), size);
	ck_assert_uint_eq(where.line, 0);
	ck_assert_uint_eq(where.col, 0);

	parsed = nb_parse(u, k->src, inu, N_IN, NULL);
	ck_assert_msg(parsed != NULL, "%s: %s", k->src, nb_tape_message(u));
	assert_same_values(parsed, built);
	gradients(t, built, x, g);
	gradients(u, parsed, xu, gu);
	for (int i = 0; i < N_IN; i++)
		assert_same_values(gu[i], g[i]);
	nb_tape_free(t);
	nb_tape_free(u);
}
END_TEST

/* ---- Precedence and associativity ---------------------------------------------------- */

BUILD(p_sub_sub, nb_sub(t, nb_sub(t, x[A], x[C]), x[A]))
BUILD(p_div_div, nb_div(t, nb_div(t, x[A], x[C]), x[A]))
BUILD(p_sub_add, nb_add(t, nb_sub(t, x[A], x[C]), x[A]))
BUILD(p_add_mul, nb_add(t, x[A], nb_mul(t, x[C], x[A])))
BUILD(p_mul_add, nb_add(t, nb_mul(t, x[A], x[C]), x[A]))
BUILD(p_div_mul, nb_mul(t, nb_div(t, x[A], x[C]), x[A]))
BUILD(p_neg_matmul, nb_matmul(t, nb_neg(t, x[A]), x[B]))
BUILD(p_matmul_mul, nb_mul(t, nb_matmul(t, x[A], x[B]), x[S]))
BUILD(p_mul_matmul, nb_matmul(t, nb_mul(t, x[S], x[A]), x[B]))
BUILD(p_matmul_matmul, nb_matmul(t, nb_matmul(t, x[A], x[B]), x[A]))
BUILD(p_neg_t, nb_neg(t, nb_transpose(t, x[A])))
BUILD(p_paren, nb_mul(t, nb_add(t, x[A], x[C]), x[A]))
BUILD(p_sub_neg, nb_sub(t, x[A], nb_neg(t, x[C])))
BUILD(p_sub_neg_num, nb_sub(t, nb_scalar(t, 2.0), nb_scalar(t, -1.0)))
BUILD(p_numbers, nb_add(t, nb_scalar(t, 1.0), nb_mul(t, nb_scalar(t, 2.0), nb_scalar(t, 3.0))))
BUILD(p_t_matmul, nb_matmul(t, nb_transpose(t, x[B]), nb_transpose(t, x[A])))
BUILD(p_call_t, nb_transpose(t, nb_sigmoid(t, x[A])))
BUILD(p_neg_call, nb_neg(t, nb_exp(t, x[A])))
BUILD(p_sub_mul_div, nb_sub(t, x[A], nb_div(t, nb_mul(t, x[C], x[A]), x[C])))

static const struct construct precedence[] = {
	{ "a - c - a", p_sub_sub },
	{ "a / c / a", p_div_div },
	{ "a - c + a", p_sub_add },
	{ "a + c * a", p_add_mul },
	{ "a * c + a", p_mul_add },
	{ "a / c * a", p_div_mul },
	{ "-a @ b", p_neg_matmul },
	{ "a @ b * s", p_matmul_mul },
	{ "s * a @ b", p_mul_matmul },
	{ "a @ b @ a", p_matmul_matmul },
	{ "-a.T", p_neg_t },
	{ "(a + c) * a", p_paren },
	{ "a - -c", p_sub_neg },
	{ "2 - -1", p_sub_neg_num },
	{ "1 + 2 * 3", p_numbers },
	{ "b.T @ a.T", p_t_matmul },
	{ "sigmoid(a).T", p_call_t },
	{ "-exp(a)", p_neg_call },
	{ "a - c * a / c", p_sub_mul_div },
};

START_TEST(test_precedence_and_associativity)
{
	const struct construct *k = &precedence[_i];
	nb_tape *t = nb_tape_new();
	nb_tensor *x[N_IN], *built;
	nb_parse_input in[N_IN];
	size_t size;

	make_inputs(t, x, in);
	built = k->build(t, x);
	ck_assert_ptr_nonnull(built);
	size = nb_tape_size(t);
	ck_assert_msg(nb_parse(t, k->src, in, N_IN, NULL) == built, "%s", k->src);
	ck_assert_uint_eq(nb_tape_size(t), size);
	nb_tape_free(t);
}
END_TEST

/* 1 + 2 * 3 is 7, and 2 - -1 is 3: values worked out by hand, not by the C API. */
START_TEST(test_numbers_compute)
{
	nb_tape *t = nb_tape_new();

	ck_assert_double_eq(nb_value(nb_parse(t, "1 + 2 * 3", NULL, 0, NULL))[0], 7.0);
	ck_assert_double_eq(nb_value(nb_parse(t, "2 - -1", NULL, 0, NULL))[0], 3.0);
	ck_assert_double_eq(nb_value(nb_parse(t, "(1 + 2) * 3", NULL, 0, NULL))[0], 9.0);
	ck_assert_double_eq(nb_value(nb_parse(t, "8 / 4 / 2", NULL, 0, NULL))[0], 1.0);
	ck_assert_double_eq(nb_value(nb_parse(t, "8 - 4 - 2", NULL, 0, NULL))[0], 2.0);
	nb_tape_free(t);
}
END_TEST

/* ---- Numbers ------------------------------------------------------------------------- */

static const struct {
	const char *src;
	double want;
} numbers[] = {
	{ "0", 0.0 }, { "1", 1.0 }, { "2.5", 2.5 }, { "0.1", 0.1 }, { ".5", .5 }, { "5.", 5. },
	{ "1e-3", 1e-3 }, { "1E+2", 1E+2 }, { "2.5e-3", 2.5e-3 }, { "1.e5", 1.e5 },
	{ "007", 7.0 }, { "0.30000000000000004", 0.30000000000000004 },
	{ "123456789012345678901234567890", 123456789012345678901234567890.0 },
	{ "1.7976931348623157e308", 1.7976931348623157e308 },
	{ "4.9406564584124654e-324", 4.9406564584124654e-324 },
	{ "1e-400", 0.0 },
	{ "0.000000000000000000000000000000000000000000000000000000000000000000000000000001",
	  1e-78 },
};

/* Numbers are the doubles the compiler makes of the same text, to the bit. */
START_TEST(test_numbers_read_as_c_does)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *y = nb_parse(t, numbers[_i].src, NULL, 0, NULL);

	ck_assert_msg(y != NULL, "%s: %s", numbers[_i].src, nb_tape_message(t));
	ck_assert_int_eq(nb_rank(y), 0);
	ck_assert_str_eq(nb_op_name(y), "fill");
	ck_assert_msg(memcmp(nb_value(y), &numbers[_i].want, sizeof(double)) == 0,
	              "%s: %.17g", numbers[_i].src, nb_value(y)[0]);
	nb_tape_free(t);
}
END_TEST

/* ---- Errors -------------------------------------------------------------------------- */

static const struct {
	const char *src;
	const char *message;
} errors[] = {
	{ "", "1:1: empty expression" },
	{ "  \n ", "2:2: empty expression" },
	{ "sigmoid(a) + sigmod(a)", "1:14: unknown function 'sigmod'" },
	{ "q + a", "1:1: unknown name 'q'" },
	{ "a + exp", "1:5: 'exp' is a function: call it as exp(...)" },
	{ "a +\n  q", "2:3: unknown name 'q'" },
	{ "abcdefghijklmnopqrstuvwxyz0123456789",
	  "1:1: unknown name 'abcdefghijklmnopqrstuvwxyz012345...'" },
	{ "sigmoid(a, c)", "1:12: too many arguments for sigmoid(x)" },
	{ "scale(a, 1, 2)", "1:13: too many arguments for scale(x, c)" },
	{ "matmul(a)", "1:9: missing argument 'b' of matmul(a, b, trans_a=0, trans_b=0)" },
	{ "scale(a)", "1:8: missing argument 'c' of scale(x, c)" },
	{ "exp()", "1:5: missing argument 'x' of exp(x)" },
	{ "sum(a, axes=1)", "1:8: unknown keyword 'axes' for sum(x, [axis], keepdim=0)" },
	{ "sum(a, axis=1, axis=0)", "1:16: argument 'axis' of sum(x, [axis], keepdim=0) given "
	  "twice" },
	{ "sum(a, 0, axis=1)", "1:11: argument 'axis' of sum(x, [axis], keepdim=0) given twice" },
	{ "sum(a, axis=1, 0)", "1:16: positional argument after a keyword argument" },
	{ "matmul(a, b=c)", "1:11: argument 'b' of matmul(a, b, trans_a=0, trans_b=0) cannot "
	  "be given by keyword" },
	{ "reshape(a, shape=6)", "1:12: argument 'shape' of reshape(x, shape...) cannot be "
	  "given by keyword" },
	{ "scale(a, c)", "1:10: argument 'c' of scale(x, c) must be a number" },
	{ "scale(a, 2*3)", "1:10: argument 'c' of scale(x, c) must be a number" },
	{ "scale(a, c=)", "1:12: argument 'c' of scale(x, c) must be a number" },
	{ "scale(a, c=1e999)", "1:12: number '1e999' is too large for a double" },
	{ "softmax(a, 0.5)", "1:12: argument 'axis' of softmax(x, axis=0) must be an integer" },
	{ "softmax(a, 3000000000)", "1:12: argument 'axis' of softmax(x, axis=0) must be an "
	  "integer" },
	{ "max_pool2d(a, -1, 3)", "1:15: argument 'k' of max_pool2d(x, k=2, stride=2) must be "
	  "an integer >= 0" },
	{ "conv2d(a, b, pad=-2)", "1:18: argument 'pad' of conv2d(x, w, stride=1, pad=0) must "
	  "be an integer >= 0" },
	{ "slice(a, 0, -1)", "1:13: argument 'start' of slice(x, axis=0, start=0, end=0) must "
	  "be an integer >= 0" },
	{ "dropout(a, 0.5, seed=-1)", "1:22: argument 'seed' of dropout(x, p, seed=1) must be an "
	  "integer >= 0" },
	{ "matmul(a, b, trans_a=2)", "1:22: argument 'trans_a' of matmul(a, b, trans_a=0, "
	  "trans_b=0) must be 0 or 1" },
	{ "reshape(a, 0)", "1:12: dimensions of reshape(x, shape...) must be positive integers" },
	{ "reshape(a, -6)", "1:12: dimensions of reshape(x, shape...) must be positive integers" },
	{ "reshape(a, 1.5)", "1:12: dimensions of reshape(x, shape...) must be positive "
	  "integers" },
	{ "reshape(a, 1, 1, 2, 3, 1)", "1:24: too many dimensions for reshape(x, shape...): at "
	  "most 4" },
	{ "(a + c", "1:7: expected ')' to close the '(' at 1:1, found end of input" },
	{ "((a + c)", "1:9: expected ')' to close the '(' at 1:1, found end of input" },
	{ "(a\n + c d", "2:6: expected ')' to close the '(' at 1:1, found 'd'" },
	{ "a + c)", "1:6: unmatched ')'" },
	{ ")", "1:1: expected an expression, found ')'" },
	{ "sigmoid(a", "1:10: expected ',' or ')' to close the 'sigmoid(' at 1:1, found end of "
	  "input" },
	{ "exp(sum(a, 0 c", "1:14: expected ',' or ')' to close the 'sum(' at 1:5, found 'c'" },
	{ "sum(a,)", "1:7: expected an argument, found ')'" },
	{ "sum(,a)", "1:5: expected an expression, found ','" },
	{ "a c", "1:3: expected an operator or the end, found 'c'" },
	{ "a +", "1:4: expected an expression, found end of input" },
	{ "a + * c", "1:5: expected an expression, found '*'" },
	{ "a = c", "1:3: expected an operator or the end, found '='" },
	{ "a ** 2", "1:3: '**' is not an operator: write pow(x, p)" },
	{ "a ^ 2", "1:3: '^' is not an operator: write pow(x, p)" },
	{ "a $ c", "1:3: unexpected character '$'" },
	{ "a \x01", "1:3: unexpected byte 0x01" },
	{ "a + \xc3\xa9", "1:5: unexpected byte 0xc3" },
	{ "2x", "1:1: malformed number '2x'" },
	{ "1e", "1:1: malformed number '1e'" },
	{ "1e+", "1:1: malformed number '1e+'" },
	{ "1.2.3", "1:1: malformed number '1.2.3'" },
	{ "a * 1e999", "1:5: number '1e999' is too large for a double" },
	{ "a.foo", "1:3: expected T (transpose) after '.', found 'foo'" },
	{ "a.", "1:3: expected T (transpose) after '.', found end of input" },
	{ "a.t", "1:3: expected T (transpose) after '.', found 't'" },
	{ "sigmod$", "1:1: unknown name 'sigmod'" },
	{ "f(", "1:1: unknown function 'f'" },
	{ "a(c)", "1:1: unknown function 'a'" },
};

/* A failed parse: NULL, msg on the tape with status, the position in where, and the tape
 * exactly as it was. */
static void expect_failure(nb_tape *t, const char *src, const nb_parse_input *in, size_t n,
                           int status, const char *msg)
{
	size_t size = nb_tape_size(t);
	nb_parse_loc where;

	ck_assert_msg(nb_parse(t, src, in, n, &where) == NULL, "%s parsed", src);
	ck_assert_int_eq(nb_tape_status(t), status);
	ck_assert_str_eq(nb_tape_message(t), msg);
	ck_assert_uint_eq(nb_tape_size(t), size);
	if (msg[0] >= '1' && msg[0] <= '9') {  /* the position in the message is where's */
		char at[64];

		snprintf(at, sizeof at, "%zu:%zu: ", where.line, where.col);
		ck_assert_msg(strncmp(msg, at, strlen(at)) == 0, "%s: at %s", msg, at);
	} else {
		ck_assert_uint_eq(where.line, 0);
		ck_assert_uint_eq(where.col, 0);
	}
}

START_TEST(test_error_message_and_position)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x[N_IN];
	nb_parse_input in[N_IN];

	make_inputs(t, x, in);
	expect_failure(t, errors[_i].src, in, N_IN, NB_EINVAL, errors[_i].message);
	nb_tape_free(t);
}
END_TEST

/* where.offset is the byte the line and column point at. */
START_TEST(test_error_offset)
{
	nb_tape *t = nb_tape_new();
	nb_parse_loc where;

	ck_assert_ptr_null(nb_parse(t, "1 +\n\n  2 + q", NULL, 0, &where));
	ck_assert_uint_eq(where.line, 3);
	ck_assert_uint_eq(where.col, 7);
	ck_assert_uint_eq(where.offset, 11);
	nb_tape_free(t);
}
END_TEST

/* A number of 129 characters is refused; 128 are read. */
START_TEST(test_long_number)
{
	nb_tape *t = nb_tape_new();
	char src[160];

	memset(src, '0', 128);
	src[127] = '1';
	src[128] = '\0';
	ck_assert_double_eq(nb_value(nb_parse(t, src, NULL, 0, NULL))[0], 1.0);
	memmove(src + 1, src, 129);
	expect_failure(t, src, NULL, 0, NB_EINVAL, "1:1: number longer than 128 characters");
	nb_tape_free(t);
}
END_TEST

/* ---- Op errors: the op's own message, after the position of the operator or call ------ */

BUILD(e_matmul, nb_matmul(t, x[A], x[C]))
BUILD(e_add, nb_add(t, nb_sigmoid(t, x[A]), x[B]))
BUILD(e_mul, nb_mul(t, nb_exp(t, x[A]), x[Z]))
BUILD(e_div, nb_div(t, x[B], x[A]))
BUILD(e_add2, nb_add(t, nb_sub(t, nb_scalar(t, 1.0), x[Z]), x[A]))
BUILD(e_softmax, nb_softmax(t, x[A], 2))
BUILD(e_sum, nb_sum_axis(t, x[A], -1, 0))
BUILD(e_reshape, nb_reshape(t, x[A], 1, (size_t[]){ 4 }))
BUILD(e_transpose, nb_transpose(t, x[V]))
BUILD(e_matmul_t, nb_matmul_t(t, x[A], x[B], NB_TRANS_A))
BUILD(e_quad, nb_quadratic_cost(t, x[Z], x[A]))
BUILD(e_bto, nb_broadcast_to(t, x[A], 2, (size_t[]){ 3, 3 }))
BUILD(e_matmul_aa, nb_matmul(t, x[A], x[A]))

static const struct {
	const char *src;
	int col;
	nb_tensor *(*build)(nb_tape *t, nb_tensor *const *x);
} op_errors[] = {
	{ "a @ c", 3, e_matmul },
	{ "sigmoid(a) + b", 12, e_add },
	{ "exp(a) * z", 8, e_mul },
	{ "b / a", 3, e_div },
	{ "1 - z + a", 7, e_add2 },
	{ "softmax(a, axis=2)", 1, e_softmax },
	{ "sum(a, axis=-1)", 1, e_sum },
	{ "reshape(a, 4)", 1, e_reshape },
	{ "v.T", 2, e_transpose },
	{ "matmul(a, b, trans_a=1)", 1, e_matmul_t },
	{ "quadratic_cost(z, a)", 1, e_quad },
	{ "broadcast_to(a, 3, 3)", 1, e_bto },
	{ "-(a @ a)", 5, e_matmul_aa },
};

/* The status and message are what the same call of the C API records, with "1:COL: " in
 * front; COL is counted by hand. */
START_TEST(test_op_error_has_position)
{
	nb_tape *t = nb_tape_new(), *u = nb_tape_new();
	nb_tensor *x[N_IN], *xu[N_IN];
	nb_parse_input in[N_IN], inu[N_IN];
	char want[NB_MSG_MAX + 16];

	make_inputs(t, x, in);
	make_inputs(u, xu, inu);
	ck_assert_ptr_null(op_errors[_i].build(u, xu));
	ck_assert_int_ne(nb_tape_status(u), NB_OK);
	snprintf(want, sizeof want, "1:%d: %s", op_errors[_i].col, nb_tape_message(u));
	expect_failure(t, op_errors[_i].src, in, N_IN, nb_tape_status(u), want);
	nb_tape_free(t);
	nb_tape_free(u);
}
END_TEST

/* ---- Nothing recorded on error ------------------------------------------------------- */

/* The error comes after several ops were recorded: they are dropped, the nodes before
 * the parse keep their values, and after clearing the error the tape is usable. */
START_TEST(test_failed_parse_records_nothing)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x[N_IN], *y;
	nb_parse_input in[N_IN];
	size_t size;
	double before;

	make_inputs(t, x, in);
	y = nb_exp(t, x[A]);
	before = nb_value(y)[1];
	size = nb_tape_size(t);
	expect_failure(t, "sigmoid(a) + tanh(c) * a - log(c) + q", in, N_IN, NB_EINVAL,
	               "1:37: unknown name 'q'");
	ck_assert_uint_eq(nb_tape_size(t), size);
	ck_assert_double_eq(nb_value(y)[1], before);
	nb_tape_clear_error(t);
	y = nb_parse(t, "sigmoid(a) + tanh(c)", in, N_IN, NULL);
	ck_assert_ptr_nonnull(y);
	ck_assert_uint_eq(nb_tape_size(t), size + 3);
	nb_tape_free(t);
}
END_TEST

/* A tape that holds an error: NULL, the error left as it was, nothing recorded. */
START_TEST(test_tape_with_error_is_left_alone)
{
	nb_tape *t = nb_tape_new();
	nb_parse_loc where = { 5, 5, 5 };
	char msg[NB_MSG_MAX];
	size_t size;

	ck_assert_ptr_null(nb_matmul(t, nb_scalar(t, 1.0), nb_scalar(t, 2.0)));
	snprintf(msg, sizeof msg, "%s", nb_tape_message(t));
	size = nb_tape_size(t);
	ck_assert_ptr_null(nb_parse(t, "1 + 2", NULL, 0, &where));
	ck_assert_int_eq(nb_tape_status(t), NB_ERANK);
	ck_assert_str_eq(nb_tape_message(t), msg);
	ck_assert_uint_eq(nb_tape_size(t), size);
	ck_assert_uint_eq(where.line, 0);
	ck_assert_uint_eq(where.col, 0);
	ck_assert_ptr_null(nb_parse(NULL, "1", NULL, 0, &where));
	nb_tape_free(t);
}
END_TEST

/* Every allocation of a parse failing in turn: NB_ENOMEM with the position of the op
 * that ran out, nothing recorded; then the parse that succeeds. */
START_TEST(test_out_of_memory)
{
	count_alloc ca = { 0 };
	nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &ca);
	nb_tensor *x[N_IN], *y = NULL;
	nb_parse_input in[N_IN];
	int failures = 0;

	make_inputs(t, x, in);
	for (size_t k = 1; !y && k < 1000; k++) {
		size_t size = nb_tape_size(t);

		ca.fail_at = ca.allocs + k;
		y = nb_parse(t, "sum(softmax(z @ y.T) * 2.5, axis=1)", in, N_IN, NULL);
		if (y)
			break;
		ck_assert_int_eq(nb_tape_status(t), NB_ENOMEM);
		ck_assert_msg(strncmp(nb_tape_message(t), "1:", 2) == 0, "%s", nb_tape_message(t));
		ck_assert_uint_eq(nb_tape_size(t), size);
		nb_tape_clear_error(t);
		failures++;
	}
	ck_assert_ptr_nonnull(y);
	ck_assert_int_gt(failures, 0);
	nb_tape_free(t);
}
END_TEST

/* ---- Nesting ------------------------------------------------------------------------- */

/* n copies of open, the middle, n copies of close. */
static char *nested(const char *open, const char *middle, const char *close, size_t n)
{
	size_t lo = strlen(open), lm = strlen(middle), lc = strlen(close);
	char *s = malloc(n * (lo + lc) + lm + 1), *p = s;

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++, p += lo)
		memcpy(p, open, lo);
	memcpy(p, middle, lm);
	p += lm;
	for (size_t i = 0; i < n; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	return s;
}

/* NB_PARSE_MAX_DEPTH levels parse; one more is an error at the opening that goes too
 * deep; many more the same error, without running out of stack. */
START_TEST(test_nesting_limit)
{
	static const struct {
		const char *open, *close;
		size_t width;  /* characters of one level's opening */
	} kinds[] = { { "(", ")", 1 }, { "exp(", ")", 4 }, { "-", "", 1 }, { "- ", "", 2 },
	              { "+", "", 1 }, { "sum(", ", 0)", 4 } };
	nb_tape *t = nb_tape_new();
	nb_tensor *x[N_IN];
	nb_parse_input in[N_IN];
	char want[128];

	make_inputs(t, x, in);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		const char *mid = k == 5 ? "z" : "a";
		char *ok = nested(kinds[k].open, mid, kinds[k].close, NB_PARSE_MAX_DEPTH);
		char *deep = nested(kinds[k].open, mid, kinds[k].close, NB_PARSE_MAX_DEPTH + 1);
		char *deeper = nested(kinds[k].open, mid, kinds[k].close, 100000);

		ck_assert_msg(k == 5 || nb_parse(t, ok, in, N_IN, NULL) != NULL, "%s: %s",
		              kinds[k].open, nb_tape_message(t));
		snprintf(want, sizeof want, "1:%zu: expression nested too deeply (more than %d "
		         "levels)", NB_PARSE_MAX_DEPTH * kinds[k].width + 1, NB_PARSE_MAX_DEPTH);
		expect_failure(t, deep, in, N_IN, NB_EINVAL, want);
		nb_tape_clear_error(t);
		expect_failure(t, deeper, in, N_IN, NB_EINVAL, want);
		nb_tape_clear_error(t);
		free(ok);
		free(deep);
		free(deeper);
	}
	nb_tape_free(t);
}
END_TEST

/* Long chains of operators are loops, not recursion: no limit. */
START_TEST(test_long_chain)
{
	nb_tape *t = nb_tape_new();
	size_t n = 20000;
	char *s = malloc(2 * n + 2);
	nb_tensor *y;

	ck_assert_ptr_nonnull(s);
	s[0] = '1';
	for (size_t i = 0; i < n; i++) {
		s[1 + 2 * i] = '+';
		s[2 + 2 * i] = '1';
	}
	s[2 * n + 1] = '\0';
	y = nb_parse(t, s, NULL, 0, NULL);
	ck_assert_ptr_nonnull(y);
	ck_assert_double_eq(nb_value(y)[0], (double)(n + 1));
	free(s);
	nb_tape_free(t);
}
END_TEST

/* ---- Named inputs -------------------------------------------------------------------- */

/* Names that share prefixes resolve each to its own tensor, whatever the order; an input
 * may be named like a function, and is that input where it is not called. */
START_TEST(test_named_inputs)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x[5];
	nb_parse_input in[5];
	static const char *const names[5] = { "x_1", "x", "_x", "x1", "exp" };

	for (int i = 0; i < 5; i++) {
		x[i] = nb_scalar(t, 10.0 * (i + 1));
		in[i] = (nb_parse_input){ names[i], x[i] };
	}
	for (int i = 0; i < 5; i++)
		ck_assert_ptr_eq(nb_parse(t, names[i], in, 5, NULL), x[i]);
	ck_assert_ptr_eq(nb_parse(t, "x1 - x", in, 5, NULL), nb_sub(t, x[3], x[1]));
	ck_assert_ptr_eq(nb_parse(t, "exp(exp)", in, 5, NULL), nb_exp(t, x[4]));
	ck_assert_ptr_eq(nb_parse(t, "x", in + 1, 1, NULL), x[1]);
	expect_failure(t, "x1", in + 1, 1, NB_EINVAL, "1:1: unknown name 'x1'");
	nb_tape_free(t);
}
END_TEST

/* An input named T is not the T of .T. */
START_TEST(test_input_named_t)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *m = nb_variable(t, 2, (size_t[]){ 2, 3 }, NULL), *s = nb_scalar(t, 3.0);
	nb_parse_input in[] = { { "m", m }, { "T", s } };

	ck_assert_ptr_eq(nb_parse(t, "m.T * T", in, 2, NULL), nb_mul(t, nb_transpose(t, m), s));
	nb_tape_free(t);
}
END_TEST

START_TEST(test_bad_inputs)
{
	nb_tape *t = nb_tape_new(), *u = nb_tape_new();
	nb_tensor *a = nb_scalar(t, 1.0), *b = nb_scalar(t, 2.0), *other = nb_scalar(u, 3.0);
	nb_parse_input dup[] = { { "x", a }, { "y", b }, { "x", b } };
	nb_parse_input noname[] = { { "x", a }, { NULL, b } };
	nb_parse_input nox[] = { { "x", a }, { "y", NULL } };
	nb_parse_input alien[] = { { "x", other } };
	nb_parse_input bad[] = { { "2x", a }, { "", a }, { "a b", a }, { "a-b", a } };

	expect_failure(t, "x", dup, 3, NB_EINVAL, "parse: inputs[0] and inputs[2] are both "
	               "named 'x'");
	nb_tape_clear_error(t);
	expect_failure(t, "x", noname, 2, NB_ENULL, "parse: inputs[1].name is NULL");
	nb_tape_clear_error(t);
	expect_failure(t, "x", nox, 2, NB_ENULL, "parse: inputs[1].x ('y') is NULL");
	nb_tape_clear_error(t);
	expect_failure(t, "x", alien, 1, NB_ETAPE, "parse: inputs[0].x ('x') belongs to another "
	               "tape");
	nb_tape_clear_error(t);
	for (int i = 0; i < 4; i++) {
		char want[NB_MSG_MAX];

		snprintf(want, sizeof want, "parse: inputs[0].name '%s' is not a name (a letter or "
		         "_, then letters, digits or _)", bad[i].name);
		expect_failure(t, "1", &bad[i], 1, NB_EINVAL, want);
		nb_tape_clear_error(t);
	}
	expect_failure(t, "x", NULL, 1, NB_ENULL, "parse: inputs is NULL");
	nb_tape_clear_error(t);
	expect_failure(t, NULL, NULL, 0, NB_ENULL, "parse: src is NULL");
	nb_tape_free(t);
	nb_tape_free(u);
}
END_TEST

static Suite *parse_suite(void)
{
	Suite *s = suite_create("parse");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, test_construct_is_the_c_api_graph, 0,
	                    (int)(sizeof constructs / sizeof constructs[0]));
	tcase_add_loop_test(tc, test_precedence_and_associativity, 0,
	                    (int)(sizeof precedence / sizeof precedence[0]));
	tcase_add_test(tc, test_numbers_compute);
	tcase_add_loop_test(tc, test_numbers_read_as_c_does, 0,
	                    (int)(sizeof numbers / sizeof numbers[0]));
	tcase_add_loop_test(tc, test_error_message_and_position, 0,
	                    (int)(sizeof errors / sizeof errors[0]));
	tcase_add_test(tc, test_error_offset);
	tcase_add_test(tc, test_long_number);
	tcase_add_loop_test(tc, test_op_error_has_position, 0,
	                    (int)(sizeof op_errors / sizeof op_errors[0]));
	tcase_add_test(tc, test_failed_parse_records_nothing);
	tcase_add_test(tc, test_tape_with_error_is_left_alone);
	tcase_add_test(tc, test_out_of_memory);
	tcase_add_test(tc, test_nesting_limit);
	tcase_add_test(tc, test_long_chain);
	tcase_add_test(tc, test_named_inputs);
	tcase_add_test(tc, test_input_named_t);
	tcase_add_test(tc, test_bad_inputs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(parse_suite());
}
