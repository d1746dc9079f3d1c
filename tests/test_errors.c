/* test_errors.c -- bad input never aborts: each case returns NULL (or a status), records
 * the right status and a message that names the op and the shapes, and the error is
 * sticky. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* A fresh tape with a few tensors of known shapes, for the cases below. */
struct fixture {
	nb_tape *t;
	nb_tensor *m34, *m52, *m23, *v3, *v4, *s;
};

static struct fixture setup(void)
{
	struct fixture f;

	f.t = nb_tape_new();
	f.m34 = nb_variable(f.t, 2, (size_t[]){ 3, 4 }, NULL);
	f.m52 = nb_variable(f.t, 2, (size_t[]){ 5, 2 }, NULL);
	f.m23 = nb_constant(f.t, 2, (size_t[]){ 2, 3 }, NULL);
	f.v3 = nb_constant(f.t, 1, (size_t[]){ 3 }, NULL);
	f.v4 = nb_variable(f.t, 1, (size_t[]){ 4 }, NULL);
	f.s = nb_scalar(f.t, 2.0);
	ck_assert_int_eq(nb_tape_status(f.t), NB_OK);
	return f;
}

/* The call returned NULL and recorded exactly this status and message. */
static void expect_fail(struct fixture *f, const nb_tensor *r, int status, const char *msg)
{
	ck_assert_ptr_null(r);
	ck_assert_str_eq(nb_status_name(nb_tape_status(f->t)), nb_status_name(status));
	ck_assert_str_eq(nb_tape_message(f->t), msg);
	nb_tape_free(f->t);
}

/* ---- One table per signature: NULL and foreign arguments for every op ---------------- */

typedef nb_tensor *(*unary_fn)(nb_tape *, nb_tensor *);
typedef nb_tensor *(*binary_fn)(nb_tape *, nb_tensor *, nb_tensor *);

static nb_tensor *scale2(nb_tape *t, nb_tensor *x) { return nb_scale(t, x, 2.0); }
static nb_tensor *sum_axis0(nb_tape *t, nb_tensor *x) { return nb_sum_axis(t, x, 0, 0); }
static nb_tensor *reshape4(nb_tape *t, nb_tensor *x)
{
	return nb_reshape(t, x, 1, (size_t[]){ 4 });
}
static nb_tensor *broadcast_to4(nb_tape *t, nb_tensor *x)
{
	return nb_broadcast_to(t, x, 1, (size_t[]){ 4 });
}
static nb_tensor *reduce_to1(nb_tape *t, nb_tensor *x)
{
	return nb_reduce_to(t, x, 1, (size_t[]){ 1 });
}
static nb_tensor *softmax0(nb_tape *t, nb_tensor *x) { return nb_softmax(t, x, 0); }
static nb_tensor *pow3(nb_tape *t, nb_tensor *x) { return nb_pow(t, x, 3.0); }
static nb_tensor *mean_axis0(nb_tape *t, nb_tensor *x) { return nb_mean_axis(t, x, 0, 0); }
static nb_tensor *max_axis0(nb_tape *t, nb_tensor *x) { return nb_max_axis(t, x, 0, 0); }
static nb_tensor *logsumexp0(nb_tape *t, nb_tensor *x) { return nb_logsumexp(t, x, 0, 0); }
static nb_tensor *log_softmax0(nb_tape *t, nb_tensor *x) { return nb_log_softmax(t, x, 0); }
static nb_tensor *slice01(nb_tape *t, nb_tensor *x) { return nb_slice(t, x, 0, 0, 1); }
static nb_tensor *pad011(nb_tape *t, nb_tensor *x) { return nb_pad(t, x, 0, 1, 1); }
static nb_tensor *permute10(nb_tape *t, nb_tensor *x) { return nb_permute(t, x, (int[]){ 1, 0 }); }
static nb_tensor *max_pool2(nb_tape *t, nb_tensor *x) { return nb_max_pool2d(t, x, 2, 2); }
static nb_tensor *avg_pool2(nb_tape *t, nb_tensor *x) { return nb_avg_pool2d(t, x, 2, 2); }
static nb_tensor *conv11(nb_tape *t, nb_tensor *a, nb_tensor *b) { return nb_conv2d(t, a, b, 1, 1); }
static nb_tensor *dropout5(nb_tape *t, nb_tensor *x) { return nb_dropout(t, x, 0.5, 1); }
static nb_tensor *where_ab(nb_tape *t, nb_tensor *a, nb_tensor *b) { return nb_where(t, a, b, b); }
static nb_tensor *matmul_tb(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return nb_matmul_t(t, a, b, NB_TRANS_B);
}

static const struct {
	const char *name;
	unary_fn f;
} unary_ops[] = {
	{ "scale", scale2 }, { "neg", nb_neg }, { "sigmoid", nb_sigmoid }, { "tanh", nb_tanh },
	{ "exp", nb_exp }, { "log", nb_log }, { "transpose", nb_transpose },
	{ "reshape", reshape4 }, { "sum", nb_sum }, { "sum_axis", sum_axis0 },
	{ "broadcast_to", broadcast_to4 }, { "reduce_to", reduce_to1 }, { "relu", nb_relu },
	{ "step", nb_step }, { "softmax", softmax0 }, { "pow", pow3 }, { "square", nb_square },
	{ "sqrt", nb_sqrt }, { "abs", nb_abs }, { "log1p", nb_log1p }, { "softplus", nb_softplus },
	{ "mean", nb_mean }, { "mean_axis", mean_axis0 }, { "max_axis", max_axis0 },
	{ "logsumexp", logsumexp0 }, { "log_softmax", log_softmax0 }, { "slice", slice01 },
	{ "pad", pad011 }, { "permute", permute10 }, { "max_pool2d", max_pool2 },
	{ "avg_pool2d", avg_pool2 }, { "dropout", dropout5 },
};

static const struct {
	const char *name;
	binary_fn f;
} binary_ops[] = {
	{ "add", nb_add }, { "sub", nb_sub }, { "mul", nb_mul }, { "div", nb_div },
	{ "matmul", nb_matmul }, { "matmul", matmul_tb }, { "quadratic_cost", nb_quadratic_cost },
	{ "sigmoid_cross_entropy", nb_sigmoid_cross_entropy },
	{ "softmax_cross_entropy", nb_softmax_cross_entropy },
	{ "maximum", nb_maximum }, { "minimum", nb_minimum }, { "where", where_ab },
	{ "gather_rows", nb_gather_rows }, { "conv2d", conv11 },
};

#define N_UNARY (int)(sizeof unary_ops / sizeof unary_ops[0])
#define N_BINARY (int)(sizeof binary_ops / sizeof binary_ops[0])

static char *msg(char *buf, const char *op, const char *what)
{
	snprintf(buf, NB_MSG_MAX, "%s: %s", op, what);
	return buf;
}

START_TEST(test_unary_null_argument)
{
	struct fixture f = setup();
	char m[NB_MSG_MAX];

	expect_fail(&f, unary_ops[_i].f(f.t, NULL), NB_ENULL,
	            msg(m, unary_ops[_i].name, "argument 1 is NULL"));
}
END_TEST

START_TEST(test_unary_foreign_argument)
{
	struct fixture f = setup();
	nb_tape *other = nb_tape_new();
	nb_tensor *x = nb_constant(other, 1, (size_t[]){ 4 }, NULL);
	char m[NB_MSG_MAX];

	expect_fail(&f, unary_ops[_i].f(f.t, x), NB_ETAPE,
	            msg(m, unary_ops[_i].name, "argument 1 belongs to another tape"));
	nb_tape_free(other);
}
END_TEST

START_TEST(test_unary_null_tape)
{
	struct fixture f = setup();

	ck_assert_ptr_null(unary_ops[_i].f(NULL, f.v4));
	ck_assert_int_eq(nb_tape_status(f.t), NB_OK);
	nb_tape_free(f.t);
}
END_TEST

START_TEST(test_binary_null_arguments)
{
	struct fixture f = setup();
	char m[NB_MSG_MAX];

	ck_assert_ptr_null(binary_ops[_i].f(f.t, f.m34, NULL));
	ck_assert_str_eq(nb_tape_message(f.t), msg(m, binary_ops[_i].name, "argument 2 is NULL"));
	nb_tape_free(f.t);
	f = setup();
	expect_fail(&f, binary_ops[_i].f(f.t, NULL, f.m34), NB_ENULL,
	            msg(m, binary_ops[_i].name, "argument 1 is NULL"));
}
END_TEST

START_TEST(test_binary_foreign_argument)
{
	struct fixture f = setup();
	nb_tape *other = nb_tape_new();
	nb_tensor *x = nb_constant(other, 2, (size_t[]){ 3, 4 }, NULL);
	char m[NB_MSG_MAX];

	expect_fail(&f, binary_ops[_i].f(f.t, f.m34, x), NB_ETAPE,
	            msg(m, binary_ops[_i].name, "argument 2 belongs to another tape"));
	nb_tape_free(other);
}
END_TEST

/* After the first error every op returns NULL and the first message stays. */
START_TEST(test_errors_are_sticky)
{
	struct fixture f = setup();
	nb_tensor *ok = nb_sigmoid(f.t, f.m34);

	ck_assert_ptr_nonnull(ok);
	ck_assert_ptr_null(nb_matmul(f.t, f.m34, f.m52));
	for (int i = 0; i < N_UNARY; i++)
		ck_assert_ptr_null(unary_ops[i].f(f.t, f.m34));
	for (int i = 0; i < N_BINARY; i++)
		ck_assert_ptr_null(binary_ops[i].f(f.t, f.m34, f.m34));
	ck_assert_ptr_null(nb_constant(f.t, 0, NULL, NULL));
	ck_assert_ptr_null(nb_scalar(f.t, 1.0));
	ck_assert_int_eq(nb_backward(f.t, nb_sum(f.t, ok), NULL), NB_ESHAPE);
	ck_assert_int_eq(nb_tape_replay(f.t), NB_ESHAPE);
	ck_assert_int_eq(nb_set(f.v4, (double[]){ 1, 2, 3, 4 }, 4), NB_ESHAPE);
	expect_fail(&f, NULL, NB_ESHAPE, "matmul: inner dimensions differ: (3x4) @ (5x2)");
}
END_TEST

/* ---- Shape errors, op by op ---------------------------------------------------------- */

START_TEST(test_matmul_rejects_inner_dim_mismatch)
{
	struct fixture f = setup();

	expect_fail(&f, nb_matmul(f.t, f.m34, f.m52), NB_ESHAPE,
	            "matmul: inner dimensions differ: (3x4) @ (5x2)");
}
END_TEST

START_TEST(test_matmul_names_transposed_operands)
{
	struct fixture f = setup();

	expect_fail(&f, nb_matmul_t(f.t, f.m34, f.m52, NB_TRANS_A | NB_TRANS_B), NB_ESHAPE,
	            "matmul: inner dimensions differ: (3x4)^T @ (5x2)^T");
}
END_TEST

START_TEST(test_matmul_rejects_rank_1)
{
	struct fixture f = setup();

	expect_fail(&f, nb_matmul(f.t, f.v3, f.m34), NB_ERANK,
	            "matmul: operands must both have rank 2, or both rank 3 (batches): (3) @ (3x4)");
}
END_TEST

START_TEST(test_batched_matmul_rejects_mismatches)
{
	struct fixture f = setup();
	nb_tensor *a = nb_constant(f.t, 3, (size_t[]){ 2, 3, 4 }, NULL);
	nb_tensor *b = nb_constant(f.t, 3, (size_t[]){ 3, 4, 5 }, NULL);
	nb_tensor *c = nb_constant(f.t, 3, (size_t[]){ 2, 5, 4 }, NULL);

	ck_assert_ptr_null(nb_matmul(f.t, a, f.m34));
	ck_assert_str_eq(nb_tape_message(f.t), "matmul: operands must both have rank 2, or both "
	                 "rank 3 (batches): (2x3x4) @ (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_matmul(f.t, a, b));
	ck_assert_str_eq(nb_tape_message(f.t), "matmul: batch sizes differ: (2x3x4) @ (3x4x5)");
	nb_tape_clear_error(f.t);
	expect_fail(&f, nb_matmul(f.t, a, c), NB_ESHAPE,
	            "matmul: inner dimensions differ: (2x3x4) @ (2x5x4)");
}
END_TEST

START_TEST(test_matmul_rejects_unknown_flags)
{
	struct fixture f = setup();

	expect_fail(&f, nb_matmul_t(f.t, f.m34, f.m34, 4), NB_EINVAL, "matmul: unknown flags 0x4");
}
END_TEST

START_TEST(test_elementwise_rejects_incompatible_shapes)
{
	static const char *const names[] = { "add", "sub", "mul", "div" };
	char m[NB_MSG_MAX];

	for (int i = 0; i < 4; i++) {
		struct fixture f = setup();

		snprintf(m, sizeof m, "%s: shapes do not broadcast: (3x4) and (3)", names[i]);
		expect_fail(&f, binary_ops[i].f(f.t, f.m34, f.v3), NB_ESHAPE, m);
	}
}
END_TEST

START_TEST(test_quadratic_cost_rejects_shape_mismatch)
{
	struct fixture f = setup();

	expect_fail(&f, nb_quadratic_cost(f.t, f.m34, f.m52), NB_ESHAPE,
	            "quadratic_cost: output (3x4) and target (5x2) differ");
}
END_TEST

START_TEST(test_cross_entropies_reject_shape_mismatch)
{
	struct fixture f = setup();

	ck_assert_ptr_null(nb_sigmoid_cross_entropy(f.t, f.m34, f.v4));
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "sigmoid_cross_entropy: output (3x4) and target (4) differ");
	nb_tape_free(f.t);
	f = setup();
	expect_fail(&f, nb_softmax_cross_entropy(f.t, f.m34, f.m52), NB_ESHAPE,
	            "softmax_cross_entropy: output (3x4) and target (5x2) differ");
}
END_TEST

START_TEST(test_softmax_cross_entropy_rejects_scalar)
{
	struct fixture f = setup();

	expect_fail(&f, nb_softmax_cross_entropy(f.t, f.s, f.s), NB_ERANK,
	            "softmax_cross_entropy: a scalar has no classes axis");
}
END_TEST

START_TEST(test_softmax_rejects_bad_axis)
{
	struct fixture f = setup();

	ck_assert_ptr_null(nb_softmax(f.t, f.m34, 2));
	ck_assert_str_eq(nb_tape_message(f.t), "softmax: axis 2 is out of range for shape (3x4)");
	nb_tape_free(f.t);
	f = setup();
	expect_fail(&f, nb_softmax(f.t, f.s, 0), NB_EINVAL,
	            "softmax: axis 0 is out of range for shape ()");
}
END_TEST

/* Every reduction along an axis names itself and the shape. */
START_TEST(test_axis_reductions_reject_bad_axis)
{
	static const struct {
		nb_tensor *(*f)(nb_tape *, nb_tensor *, int, int);
		const char *msg;
	} ops[] = {
		{ nb_mean_axis, "mean_axis: axis 2 is out of range for shape (3x4)" },
		{ nb_max_axis, "max_axis: axis 2 is out of range for shape (3x4)" },
		{ nb_logsumexp, "logsumexp: axis 2 is out of range for shape (3x4)" },
	};

	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		struct fixture f = setup();

		expect_fail(&f, ops[i].f(f.t, f.m34, 2, 0), NB_EINVAL, ops[i].msg);
		f = setup();
		expect_fail(&f, ops[i].f(f.t, f.m34, -1, 1), NB_EINVAL,
		            strncmp(ops[i].msg, "mean", 4) == 0
		                    ? "mean_axis: axis -1 is out of range for shape (3x4)"
		            : strncmp(ops[i].msg, "max", 3) == 0
		                    ? "max_axis: axis -1 is out of range for shape (3x4)"
		                    : "logsumexp: axis -1 is out of range for shape (3x4)");
	}
	{
		struct fixture f = setup();

		expect_fail(&f, nb_log_softmax(f.t, f.s, 0), NB_EINVAL,
		            "log_softmax: axis 0 is out of range for shape ()");
	}
}
END_TEST

/* maximum, minimum and where broadcast their operands, or say which shapes do not fit;
 * a failed call records nothing (the operands are broadcast before the op). */
START_TEST(test_selections_reject_shapes_that_do_not_broadcast)
{
	struct fixture f = setup();
	size_t n = nb_tape_size(f.t);

	ck_assert_ptr_null(nb_maximum(f.t, f.m34, f.m52));
	ck_assert_str_eq(nb_tape_message(f.t), "maximum: shapes do not broadcast: (3x4) and (5x2)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_minimum(f.t, f.v3, f.v4));
	ck_assert_str_eq(nb_tape_message(f.t), "minimum: shapes do not broadcast: (3) and (4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_where(f.t, f.v4, f.m34, f.v3));
	ck_assert_int_eq(nb_tape_status(f.t), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "where: shapes do not broadcast: (4), (3x4) and (3)");
	ck_assert_uint_eq(nb_tape_size(f.t), n);
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_where(f.t, f.v4, NULL, f.v4));
	ck_assert_str_eq(nb_tape_message(f.t), "where: argument 2 is NULL");
	nb_tape_free(f.t);
}
END_TEST

/* slice, pad, concat and permute: bad ranges, shapes and permutations, each named; a
 * concat that fails at its third tensor records nothing. */
START_TEST(test_shape_ops_reject_bad_arguments)
{
	struct fixture f = setup();
	nb_tape *other = nb_tape_new();
	nb_tensor *o = nb_constant(other, 2, (size_t[]){ 3, 4 }, NULL);
	size_t n = nb_tape_size(f.t);

	ck_assert_ptr_null(nb_slice(f.t, f.m34, 1, 2, 5));
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "slice: range [2, 5) of axis 1 is out of bounds for shape (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_slice(f.t, f.m34, 0, 2, 2));
	ck_assert_str_eq(nb_tape_message(f.t), "slice: range [2, 2) of axis 0 is empty for shape (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_slice(f.t, f.m34, 2, 0, 1));
	ck_assert_str_eq(nb_tape_message(f.t), "slice: axis 2 is out of range for shape (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_pad(f.t, f.m34, 1, SIZE_MAX, 1));
	ck_assert_int_eq(nb_tape_status(f.t), NB_ESHAPE);
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_concat(f.t, (nb_tensor *[]){ f.m34, f.m34, f.m52 }, 3, 1));
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "concat: xs[2] (5x2) and xs[0] (3x4) differ outside axis 1");
	ck_assert_uint_eq(nb_tape_size(f.t), n);
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_concat(f.t, (nb_tensor *[]){ f.m34, NULL }, 2, 0));
	ck_assert_str_eq(nb_tape_message(f.t), "concat: xs[1] is NULL");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_concat(f.t, (nb_tensor *[]){ f.m34, o }, 2, 0));
	ck_assert_str_eq(nb_tape_message(f.t), "concat: xs[1] belongs to another tape");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_concat(f.t, (nb_tensor *[]){ f.m34 }, 0, 0));
	ck_assert_str_eq(nb_tape_message(f.t), "concat: no tensors (n is 0)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_concat(f.t, NULL, 1, 0));
	ck_assert_str_eq(nb_tape_message(f.t), "concat: xs is NULL");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_concat(f.t, (nb_tensor *[]){ f.m34, f.m34 }, 2, 2));
	ck_assert_str_eq(nb_tape_message(f.t), "concat: axis 2 is out of range for shape (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_permute(f.t, f.m34, (const int[]){ 1, 1 }));
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "permute: perm[1] = 1: not a permutation of the 2 axes of (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_permute(f.t, f.m34, (const int[]){ 0, 2 }));
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "permute: perm[1] = 2: not a permutation of the 2 axes of (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_permute(f.t, f.m34, NULL));
	ck_assert_str_eq(nb_tape_message(f.t), "permute: perm is NULL");
	nb_tape_free(f.t);
	nb_tape_free(other);
}
END_TEST

START_TEST(test_gather_rows_rejects_bad_indices)
{
	struct fixture f = setup();
	nb_tensor *bad = nb_constant(f.t, 1, (size_t[]){ 3 }, (double[]){ 0, 2, 1.5 });
	nb_tensor *far = nb_constant(f.t, 1, (size_t[]){ 2 }, (double[]){ 1, 3 });
	size_t n = nb_tape_size(f.t);

	ck_assert_ptr_null(nb_gather_rows(f.t, f.m34, bad));
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "gather_rows: idx[2] = 1.5 is not a row of the table (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_gather_rows(f.t, f.m34, far));
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "gather_rows: idx[1] = 3 is not a row of the table (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_gather_rows(f.t, f.m34, f.m23));
	ck_assert_int_eq(nb_tape_status(f.t), NB_ERANK);
	ck_assert_str_eq(nb_tape_message(f.t), "gather_rows: a table of rank 1 or 2 and a vector "
	                 "of indices are needed: (3x4) and (2x3)");
	ck_assert_uint_eq(nb_tape_size(f.t), n);
	nb_tape_free(f.t);
}
END_TEST

START_TEST(test_conv_and_pool_reject_bad_shapes)
{
	struct fixture f = setup();
	nb_tensor *x = nb_constant(f.t, 4, (size_t[]){ 1, 3, 5, 5 }, NULL);
	nb_tensor *w = nb_constant(f.t, 4, (size_t[]){ 2, 4, 3, 3 }, NULL);
	nb_tensor *big = nb_constant(f.t, 4, (size_t[]){ 2, 3, 8, 8 }, NULL);
	size_t n = nb_tape_size(f.t);

	ck_assert_ptr_null(nb_conv2d(f.t, x, w, 1, 0));
	ck_assert_str_eq(nb_tape_message(f.t), "conv2d: the input (1x3x5x5) has 3 channels, the "
	                 "weights (2x4x3x3) expect 4");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_conv2d(f.t, x, big, 1, 1));
	ck_assert_str_eq(nb_tape_message(f.t), "conv2d: a 8x8 window with padding 1 does not fit "
	                 "in images of 5x5");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_conv2d(f.t, f.m34, w, 1, 0));
	ck_assert_int_eq(nb_tape_status(f.t), NB_ERANK);
	ck_assert_str_eq(nb_tape_message(f.t), "conv2d: the input must have rank 4 (N x C x H x "
	                 "W): (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_conv2d(f.t, x, f.m34, 1, 0));
	ck_assert_str_eq(nb_tape_message(f.t), "conv2d: weights must have rank 4 (O x C x KH x "
	                 "KW): (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_max_pool2d(f.t, x, 2, 0));
	ck_assert_str_eq(nb_tape_message(f.t), "max_pool2d: the stride is 0");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_avg_pool2d(f.t, x, 0, 1));
	ck_assert_str_eq(nb_tape_message(f.t), "avg_pool2d: the window is 0");
	nb_tape_clear_error(f.t);
	ck_assert_ptr_null(nb_max_pool2d(f.t, x, 6, 1));
	ck_assert_str_eq(nb_tape_message(f.t), "max_pool2d: a 6x6 window with padding 0 does not "
	                 "fit in images of 5x5");
	ck_assert_uint_eq(nb_tape_size(f.t), n);
	nb_tape_free(f.t);
}
END_TEST

/* nb_argmax: a query that checks its arguments and records errors on x's tape. */
START_TEST(test_argmax_rejects_bad_arguments)
{
	struct fixture f = setup();
	size_t idx[4];

	ck_assert_int_eq(nb_argmax(NULL, 0, idx, 4), NB_ENULL);
	ck_assert_int_eq(nb_argmax(f.m34, 0, NULL, 4), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(f.t), "argmax: idx is NULL");
	nb_tape_clear_error(f.t);
	ck_assert_int_eq(nb_argmax(f.m34, 2, idx, 4), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(f.t), "argmax: axis 2 is out of range for shape (3x4)");
	nb_tape_clear_error(f.t);
	ck_assert_int_eq(nb_argmax(f.m34, 0, idx, 3), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "argmax: 3 indices asked for, the shape has 4 lines along axis 0");
	/* on a tape in error: that error, nothing written */
	ck_assert_int_eq(nb_argmax(f.m34, 0, idx, 4), NB_ESHAPE);
	nb_tape_free(f.t);
}
END_TEST

START_TEST(test_transpose_rejects_rank_1)
{
	struct fixture f = setup();

	expect_fail(&f, nb_transpose(f.t, f.v3), NB_ERANK,
	            "transpose: operand must have rank 2: (3)");
}
END_TEST

START_TEST(test_reshape_rejects_other_size)
{
	struct fixture f = setup();

	expect_fail(&f, nb_reshape(f.t, f.m34, 2, (size_t[]){ 5, 2 }), NB_ESHAPE,
	            "reshape: (3x4) has 12 elements, (5x2) has 10");
}
END_TEST

START_TEST(test_sum_axis_rejects_bad_axis)
{
	struct fixture f = setup();

	ck_assert_ptr_null(nb_sum_axis(f.t, f.m34, -1, 0));
	ck_assert_str_eq(nb_tape_message(f.t), "sum_axis: axis -1 is out of range for shape (3x4)");
	nb_tape_free(f.t);
	f = setup();
	expect_fail(&f, nb_sum_axis(f.t, f.m34, 2, 1), NB_EINVAL,
	            "sum_axis: axis 2 is out of range for shape (3x4)");
}
END_TEST

START_TEST(test_broadcast_to_rejects_incompatible_shape)
{
	struct fixture f = setup();

	ck_assert_ptr_null(nb_broadcast_to(f.t, f.m34, 2, (size_t[]){ 3, 5 }));
	ck_assert_str_eq(nb_tape_message(f.t), "broadcast_to: (3x4) does not broadcast to (3x5)");
	nb_tape_free(f.t);
	f = setup();  /* a larger rank does not broadcast to a smaller one */
	expect_fail(&f, nb_broadcast_to(f.t, f.m34, 1, (size_t[]){ 4 }), NB_ESHAPE,
	            "broadcast_to: (3x4) does not broadcast to (4)");
}
END_TEST

START_TEST(test_reduce_to_rejects_incompatible_shape)
{
	struct fixture f = setup();

	expect_fail(&f, nb_reduce_to(f.t, f.m34, 2, (size_t[]){ 2, 1 }), NB_ESHAPE,
	            "reduce_to: (2x1) does not broadcast to (3x4)");
}
END_TEST

/* ---- Leaves and shapes --------------------------------------------------------------- */

START_TEST(test_leaf_rejects_bad_rank)
{
	struct fixture f = setup();

	ck_assert_ptr_null(nb_constant(f.t, 5, (size_t[]){ 1, 1, 1, 1, 1 }, NULL));
	ck_assert_str_eq(nb_tape_message(f.t), "constant: rank 5 is out of range (0..4)");
	nb_tape_free(f.t);
	f = setup();
	expect_fail(&f, nb_variable(f.t, -1, NULL, NULL), NB_ERANK,
	            "variable: rank -1 is out of range (0..4)");
}
END_TEST

START_TEST(test_leaf_rejects_zero_dim_and_null_dims)
{
	struct fixture f = setup();

	ck_assert_ptr_null(nb_variable(f.t, 2, (size_t[]){ 3, 0 }, NULL));
	ck_assert_int_eq(nb_tape_status(f.t), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(f.t), "variable: dim 1 is 0");
	nb_tape_free(f.t);
	f = setup();
	expect_fail(&f, nb_fill(f.t, 2, NULL, 1.0), NB_ENULL, "fill: dims are NULL");
}
END_TEST

START_TEST(test_leaf_rejects_overflowing_shape)
{
	struct fixture f = setup();
	size_t big = (size_t)1 << 40;

	expect_fail(&f, nb_constant(f.t, 2, (size_t[]){ big, big }, NULL), NB_ESHAPE,
	            "constant: shape (1099511627776x1099511627776) is too large: its size in "
	            "bytes overflows size_t");
}
END_TEST

START_TEST(test_leaves_reject_null_tape)
{
	ck_assert_ptr_null(nb_constant(NULL, 0, NULL, NULL));
	ck_assert_ptr_null(nb_variable(NULL, 0, NULL, NULL));
	ck_assert_ptr_null(nb_scalar(NULL, 1.0));
	ck_assert_ptr_null(nb_fill(NULL, 0, NULL, 1.0));
	ck_assert_ptr_null(nb_tape_new_alloc(NULL, NULL));
	ck_assert_int_eq(nb_tape_status(NULL), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(NULL), "tape is NULL");
	ck_assert_int_eq(nb_tape_replay(NULL), NB_ENULL);
	ck_assert_int_eq(nb_backward(NULL, NULL, NULL), NB_ENULL);
	ck_assert_uint_eq(nb_tape_size(NULL), 0);
	nb_tape_clear_error(NULL);
}
END_TEST

START_TEST(test_set_rejects_bad_arguments)
{
	struct fixture f = setup();
	nb_tensor *y = nb_sigmoid(f.t, f.v4);

	ck_assert_int_eq(nb_set(NULL, NULL, 0), NB_ENULL);
	ck_assert_int_eq(nb_set(f.v4, (double[]){ 1, 2, 3 }, 3), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(f.t), "set: 3 values for a tensor of shape (4) (4 elements)");
	nb_tape_free(f.t);
	f = setup();
	ck_assert_int_eq(nb_set(f.v4, NULL, 4), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(f.t), "set: data is NULL");
	nb_tape_free(f.t);
	f = setup();
	y = nb_sigmoid(f.t, f.v4);
	ck_assert_int_eq(nb_set(y, (double[]){ 1, 2, 3, 4 }, 4), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(f.t),
	                 "set: tensor is a sigmoid node, not a constant or variable leaf");
	nb_tape_free(f.t);
	f = setup();
	ck_assert_int_eq(nb_set(f.s, (double[]){ 1 }, 1), NB_EINVAL);
	expect_fail(&f, NULL, NB_EINVAL, "set: tensor is a fill node, not a constant or variable leaf");
}
END_TEST

/* ---- Backward ------------------------------------------------------------------------ */

START_TEST(test_backward_rejects_non_scalar_without_seed)
{
	struct fixture f = setup();

	ck_assert_int_eq(nb_backward(f.t, nb_sigmoid(f.t, f.m34), NULL), NB_EINVAL);
	expect_fail(&f, NULL, NB_EINVAL,
	            "backward: output of shape (3x4) is not a scalar and no seed was given");
}
END_TEST

START_TEST(test_backward_rejects_seed_of_other_shape)
{
	struct fixture f = setup();

	ck_assert_int_eq(nb_backward(f.t, f.m34, f.m52), NB_ESHAPE);
	expect_fail(&f, NULL, NB_ESHAPE, "backward: seed of shape (5x2) for an output of shape (3x4)");
}
END_TEST

START_TEST(test_backward_rejects_null_and_foreign)
{
	struct fixture f = setup();
	nb_tape *other = nb_tape_new();
	nb_tensor *x = nb_scalar(other, 1.0);

	ck_assert_int_eq(nb_backward(f.t, NULL, NULL), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(f.t), "backward: argument 1 is NULL");
	nb_tape_free(f.t);
	f = setup();
	ck_assert_int_eq(nb_backward(f.t, f.s, x), NB_ETAPE);
	expect_fail(&f, NULL, NB_ETAPE, "backward: argument 2 belongs to another tape");
	nb_tape_free(other);
}
END_TEST

static Suite *errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *args = tcase_create("arguments");
	TCase *shapes = tcase_create("shapes");
	TCase *leaves = tcase_create("leaves and backward");

	tcase_add_loop_test(args, test_unary_null_argument, 0, N_UNARY);
	tcase_add_loop_test(args, test_unary_foreign_argument, 0, N_UNARY);
	tcase_add_loop_test(args, test_unary_null_tape, 0, N_UNARY);
	tcase_add_loop_test(args, test_binary_null_arguments, 0, N_BINARY);
	tcase_add_loop_test(args, test_binary_foreign_argument, 0, N_BINARY);
	tcase_add_test(args, test_errors_are_sticky);
	tcase_add_test(shapes, test_matmul_rejects_inner_dim_mismatch);
	tcase_add_test(shapes, test_matmul_names_transposed_operands);
	tcase_add_test(shapes, test_matmul_rejects_rank_1);
	tcase_add_test(shapes, test_batched_matmul_rejects_mismatches);
	tcase_add_test(shapes, test_matmul_rejects_unknown_flags);
	tcase_add_test(shapes, test_elementwise_rejects_incompatible_shapes);
	tcase_add_test(shapes, test_quadratic_cost_rejects_shape_mismatch);
	tcase_add_test(shapes, test_axis_reductions_reject_bad_axis);
	tcase_add_test(shapes, test_selections_reject_shapes_that_do_not_broadcast);
	tcase_add_test(shapes, test_argmax_rejects_bad_arguments);
	tcase_add_test(shapes, test_conv_and_pool_reject_bad_shapes);
	tcase_add_test(shapes, test_gather_rows_rejects_bad_indices);
	tcase_add_test(shapes, test_shape_ops_reject_bad_arguments);
	tcase_add_test(shapes, test_transpose_rejects_rank_1);
	tcase_add_test(shapes, test_cross_entropies_reject_shape_mismatch);
	tcase_add_test(shapes, test_softmax_cross_entropy_rejects_scalar);
	tcase_add_test(shapes, test_softmax_rejects_bad_axis);
	tcase_add_test(shapes, test_reshape_rejects_other_size);
	tcase_add_test(shapes, test_sum_axis_rejects_bad_axis);
	tcase_add_test(shapes, test_broadcast_to_rejects_incompatible_shape);
	tcase_add_test(shapes, test_reduce_to_rejects_incompatible_shape);
	tcase_add_test(leaves, test_leaf_rejects_bad_rank);
	tcase_add_test(leaves, test_leaf_rejects_zero_dim_and_null_dims);
	tcase_add_test(leaves, test_leaf_rejects_overflowing_shape);
	tcase_add_test(leaves, test_leaves_reject_null_tape);
	tcase_add_test(leaves, test_set_rejects_bad_arguments);
	tcase_add_test(leaves, test_backward_rejects_non_scalar_without_seed);
	tcase_add_test(leaves, test_backward_rejects_seed_of_other_shape);
	tcase_add_test(leaves, test_backward_rejects_null_and_foreign);
	suite_add_tcase(s, args);
	suite_add_tcase(s, shapes);
	suite_add_tcase(s, leaves);
	return s;
}

int main(void)
{
	return run_suite(errors_suite());
}
