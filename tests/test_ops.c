/* test_ops.c -- every op's forward values, computed by hand. The gradient checks of every
 * op, at first and second order, are nb_selftest()'s (tests/test_selftest.c). */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ---- Forward values ------------------------------------------------------------------ */

static nb_tensor *vec(nb_tape *t, size_t n, const double *v)
{
	return nb_constant(t, 1, (size_t[]){ n }, v);
}

static void assert_values(const nb_tensor *x, const double *want, size_t n)
{
	ck_assert_ptr_nonnull(x);
	ck_assert_uint_eq(nb_size(x), n);
	for (size_t i = 0; i < n; i++)
		ck_assert_double_eq_tol(nb_value(x)[i], want[i], 1e-15);
}

/* The project's first example: [1, 2] ⊙ [3, 4] = [3, 8]. */
START_TEST(test_hadamard_example)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *c = nb_mul(t, vec(t, 2, (double[]){ 1, 2 }), vec(t, 2, (double[]){ 3, 4 }));

	ck_assert_str_eq(nb_op_name(c), "mul");
	ck_assert_double_eq(nb_value(c)[0], 3.0);
	ck_assert_double_eq(nb_value(c)[1], 8.0);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_arith_broadcast_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *col = nb_constant(t, 2, (size_t[]){ 2, 1 }, (double[]){ 10, 20 });
	nb_tensor *row = vec(t, 3, (double[]){ 1, 2, 4 });

	assert_values(nb_add(t, col, row), (double[]){ 11, 12, 14, 21, 22, 24 }, 6);
	assert_values(nb_sub(t, col, row), (double[]){ 9, 8, 6, 19, 18, 16 }, 6);
	assert_values(nb_mul(t, col, row), (double[]){ 10, 20, 40, 20, 40, 80 }, 6);
	assert_values(nb_div(t, col, row), (double[]){ 10, 5, 2.5, 20, 10, 5 }, 6);
	assert_values(nb_add(t, nb_scalar(t, 1), row), (double[]){ 2, 3, 5 }, 3);
	ck_assert_uint_eq(nb_dim(nb_add(t, col, row), 0), 2);
	ck_assert_uint_eq(nb_dim(nb_add(t, col, row), 1), 3);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_unary_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = vec(t, 3, (double[]){ 0, 1, -2 });

	assert_values(nb_sigmoid(t, x), (double[]){ 0.5, 1 / (1 + exp(-1.0)), 1 / (1 + exp(2.0)) }, 3);
	assert_values(nb_tanh(t, x), (double[]){ 0, tanh(1.0), tanh(-2.0) }, 3);
	assert_values(nb_exp(t, x), (double[]){ 1, exp(1.0), exp(-2.0) }, 3);
	assert_values(nb_log(t, nb_exp(t, x)), (double[]){ 0, 1, -2 }, 3);
	assert_values(nb_scale(t, x, 3), (double[]){ 0, 3, -6 }, 3);
	assert_values(nb_neg(t, x), (double[]){ 0, -1, 2 }, 3);
	nb_tape_free(t);
}
END_TEST

/* Each flag combination against the product of explicitly transposed matrices. */
START_TEST(test_matmul_values_with_transposes)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 2, (size_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *b = nb_constant(t, 2, (size_t[]){ 3, 2 }, (double[]){ 7, 8, 9, 10, 11, 12 });
	nb_tensor *at = nb_transpose(t, a), *bt = nb_transpose(t, b);

	assert_values(nb_matmul(t, a, b), (double[]){ 58, 64, 139, 154 }, 4);
	assert_values(at, (double[]){ 1, 4, 2, 5, 3, 6 }, 6);
	assert_values(nb_matmul_t(t, at, b, NB_TRANS_A), nb_value(nb_matmul(t, a, b)), 4);
	assert_values(nb_matmul_t(t, a, bt, NB_TRANS_B), nb_value(nb_matmul(t, a, b)), 4);
	assert_values(nb_matmul_t(t, at, bt, NB_TRANS_A | NB_TRANS_B),
	              nb_value(nb_matmul(t, a, b)), 4);
	assert_values(nb_matmul_t(t, a, a, NB_TRANS_B), (double[]){ 14, 32, 32, 77 }, 4);
	nb_tape_free(t);
}
END_TEST

/* The kernels tile C in 4 x 5 and 6 x 16 blocks, eight lanes at a time, and copy B^T
 * first when C has 32 rows or more and k is short: shapes around those sizes, every
 * transpose, against a plain triple loop. */
static void naive(int flags, size_t m, size_t n, size_t k, const double *a, const double *b,
                  double *c)
{
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			double s = 0.0;

			for (size_t p = 0; p < k; p++)
				s += (flags & NB_TRANS_A ? a[p * m + i] : a[i * k + p]) *
				     (flags & NB_TRANS_B ? b[j * k + p] : b[p * n + j]);
			c[i * n + j] = s;
		}
}

START_TEST(test_matmul_matches_plain_loops)
{
	static const size_t sizes[] = { 1, 3, 4, 7, 8, 13, 16, 17, 25, 40 };
	static double a[40 * 40], b[40 * 40], want[40 * 40];
	test_rng r;

	rng_seed(&r, 21);
	rng_fill(&r, a, 1600, -1, 1);
	rng_fill(&r, b, 1600, -1, 1);
	for (int flags = 0; flags < 4; flags++)
		for (size_t im = 0; im < 10; im++)
			for (size_t in = 0; in < 10; in++)
				for (size_t ik = 0; ik < 10; ik += 3) {
					size_t m = sizes[im], n = sizes[in], k = sizes[ik];
					nb_tape *t = nb_tape_new();
					size_t da[2] = { flags & NB_TRANS_A ? k : m, flags & NB_TRANS_A ? m : k };
					size_t db[2] = { flags & NB_TRANS_B ? n : k, flags & NB_TRANS_B ? k : n };
					nb_tensor *c = nb_matmul_t(t, nb_constant(t, 2, da, a),
					                           nb_constant(t, 2, db, b), flags);

					naive(flags, m, n, k, a, b, want);
					ck_assert_ptr_nonnull(c);
					/* sums of k terms of size < 1 in another order: k ulps at most */
					for (size_t e = 0; e < m * n; e++)
						ck_assert_msg(fabs(nb_value(c)[e] - want[e]) <= 1e-15 * (double)k,
						              "%zux%zux%zu flags %d element %zu", m, n, k,
						              flags, e);
					nb_tape_free(t);
				}
}
END_TEST

/* Threads split C by rows; every element is summed in the same order either way. */
START_TEST(test_threads_give_identical_products)
{
	size_t m = 96, n = 80, k = 300;
	double *a = malloc(m * k * sizeof *a), *b = malloc(k * n * sizeof *b);
	nb_tape *one = nb_tape_new(), *two = nb_tape_new();
	nb_tensor *c1, *c2;
	test_rng r;

	rng_seed(&r, 5);
	rng_fill(&r, a, m * k, -1, 1);
	rng_fill(&r, b, k * n, -1, 1);
	nb_tape_set_threads(two, 2);
	c1 = nb_matmul(one, nb_constant(one, 2, (size_t[]){ m, k }, a),
	               nb_constant(one, 2, (size_t[]){ k, n }, b));
	c2 = nb_matmul(two, nb_constant(two, 2, (size_t[]){ m, k }, a),
	               nb_constant(two, 2, (size_t[]){ k, n }, b));
	ck_assert_ptr_nonnull(c1);
	ck_assert_ptr_nonnull(c2);
	ck_assert_mem_eq(nb_value(c2), nb_value(c1), m * n * sizeof(double));
	nb_tape_free(one);
	nb_tape_free(two);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_reduction_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_constant(t, 2, (size_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *s0 = nb_sum_axis(t, x, 0, 0), *s1 = nb_sum_axis(t, x, 1, 1);

	assert_values(nb_sum(t, x), (double[]){ 21 }, 1);
	ck_assert_int_eq(nb_rank(nb_sum(t, x)), 0);
	assert_values(s0, (double[]){ 5, 7, 9 }, 3);
	ck_assert_int_eq(nb_rank(s0), 1);
	assert_values(s1, (double[]){ 6, 15 }, 2);
	ck_assert_int_eq(nb_rank(s1), 2);
	ck_assert_uint_eq(nb_dim(s1, 1), 1);
	assert_values(nb_reduce_to(t, x, 1, (size_t[]){ 3 }), (double[]){ 5, 7, 9 }, 3);
	assert_values(nb_broadcast_to(t, nb_constant(t, 2, (size_t[]){ 2, 1 }, (double[]){ 1, 2 }),
	                              3, (size_t[]){ 2, 2, 3 }),
	              (double[]){ 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2 }, 12);
	assert_values(nb_reshape(t, x, 2, (size_t[]){ 3, 2 }), (double[]){ 1, 2, 3, 4, 5, 6 }, 6);
	ck_assert_ptr_eq(nb_reshape(t, x, 2, (size_t[]){ 2, 3 }), x);
	ck_assert_ptr_eq(nb_broadcast_to(t, x, 2, (size_t[]){ 2, 3 }), x);
	assert_values(nb_fill(t, 2, (size_t[]){ 1, 2 }, 7.5), (double[]){ 7.5, 7.5 }, 2);
	nb_tape_free(t);
}
END_TEST

/* The powers, abs, log1p and softplus, against the C library; the structural cases of
 * pow; softplus where log(1 + exp(x)) would overflow or lose every digit. */
START_TEST(test_pow_abs_softplus_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = vec(t, 3, (double[]){ 0.25, 2.0, 9.0 });
	nb_tensor *s = vec(t, 3, (double[]){ -1.5, 0.0, 2.0 });
	nb_tensor *big = vec(t, 3, (double[]){ 800.0, -800.0, 1e-20 });

	assert_values(nb_sqrt(t, x), (double[]){ 0.5, sqrt(2.0), 3.0 }, 3);
	assert_values(nb_square(t, s), (double[]){ 2.25, 0.0, 4.0 }, 3);
	assert_values(nb_pow(t, x, -1.5), (double[]){ 8.0, pow(2.0, -1.5), 1.0 / 27.0 }, 3);
	assert_values(nb_pow(t, s, 3.0), (double[]){ -3.375, 0.0, 8.0 }, 3);
	ck_assert(isnan(nb_value(nb_pow(t, s, 0.5))[0]));
	assert_values(nb_abs(t, s), (double[]){ 1.5, 0.0, 2.0 }, 3);
	assert_values(nb_log1p(t, x), (double[]){ log1p(0.25), log1p(2.0), log(10.0) }, 3);
	assert_values(nb_softplus(t, s), (double[]){ log1p(exp(-1.5)), log(2.0),
		                                     2.0 + log1p(exp(-2.0)) }, 3);
	ck_assert_double_eq(nb_value(nb_softplus(t, big))[0], 800.0);
	ck_assert_double_eq(nb_value(nb_softplus(t, big))[1], exp(-800.0));
	ck_assert_double_eq(nb_value(nb_log1p(t, big))[2], 1e-20);
	/* x^0 is a literal 1, x^1 is x, x^2 is square: no pow node */
	ck_assert_str_eq(nb_op_name(nb_pow(t, s, 0.0)), "fill");
	ck_assert_double_eq(nb_value(nb_pow(t, s, 0.0))[1], 1.0);
	ck_assert_ptr_eq(nb_pow(t, s, 1.0), s);
	ck_assert_ptr_eq(nb_pow(t, s, 2.0), nb_square(t, s));
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	/* an exponent that is not finite */
	ck_assert_ptr_null(nb_pow(t, s, INFINITY));
	ck_assert_int_eq(nb_tape_status(t), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "pow: exponent inf is not finite");
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_pow(t, s, NAN));
	ck_assert_str_eq(nb_tape_message(t), "pow: exponent nan is not finite");
	nb_tape_free(t);
}
END_TEST

/* maximum, minimum and where with broadcasting and NaN; mean; max along an axis and
 * where it is; logsumexp and log_softmax where exp would overflow. */
START_TEST(test_select_reduce_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 2, (size_t[]){ 2, 3 }, (double[]){ 1, 5, -2, 0, 7, 3 });
	nb_tensor *b = vec(t, 3, (double[]){ 2, 4, -2 });
	nb_tensor *m = vec(t, 3, (double[]){ 1, 0, 1 });
	nb_tensor *n = vec(t, 2, (double[]){ NAN, 1 });
	nb_tensor *big = nb_constant(t, 2, (size_t[]){ 2, 2 }, (double[]){ 1000, 1000, 0, -1000 });
	size_t idx[3];

	assert_values(nb_maximum(t, a, b), (double[]){ 2, 5, -2, 2, 7, 3 }, 6);
	assert_values(nb_minimum(t, a, b), (double[]){ 1, 4, -2, 0, 4, -2 }, 6);
	assert_values(nb_where(t, m, a, b), (double[]){ 1, 4, -2, 0, 4, 3 }, 6);
	ck_assert(isnan(nb_value(nb_maximum(t, n, vec(t, 1, (double[]){ 3 })))[0]));
	ck_assert(isnan(nb_value(nb_minimum(t, vec(t, 1, (double[]){ 3 }), n))[0]));
	ck_assert(isnan(nb_value(nb_where(t, n, n, n))[0]));
	assert_values(nb_mean(t, a), (double[]){ 14.0 / 6 }, 1);
	assert_values(nb_mean_axis(t, a, 0, 0), (double[]){ 0.5, 6, 0.5 }, 3);
	assert_values(nb_mean_axis(t, a, 1, 1), (double[]){ 4.0 / 3, 10.0 / 3 }, 2);
	assert_values(nb_max_axis(t, a, 1, 0), (double[]){ 5, 7 }, 2);
	assert_values(nb_max_axis(t, a, 0, 1), (double[]){ 1, 7, 3 }, 3);
	ck_assert(isnan(nb_value(nb_max_axis(t, n, 0, 0))[0]));
	ck_assert_int_eq(nb_argmax(a, 0, idx, 3), NB_OK);
	ck_assert_uint_eq(idx[0], 0);
	ck_assert_uint_eq(idx[1], 1);
	ck_assert_uint_eq(idx[2], 1);
	ck_assert_int_eq(nb_argmax(b, 0, idx, 1), NB_OK);
	ck_assert_uint_eq(idx[0], 1);
	ck_assert_int_eq(nb_argmax(n, 0, idx, 1), NB_OK);  /* NaN counts as the maximum */
	ck_assert_uint_eq(idx[0], 0);
	assert_values(nb_logsumexp(t, big, 1, 0), (double[]){ 1000 + log(2.0), 0 }, 2);
	assert_values(nb_logsumexp(t, big, 0, 1), (double[]){ 1000, 1000 }, 2);
	/* x - logsumexp(x) at x = 1000: the sum is rounded to the ulp of 1000, 1.1e-13 */
	for (int i = 0; i < 2; i++)
		ck_assert_double_eq_tol(nb_value(nb_log_softmax(t, big, 1))[i], -log(2.0), 2e-13);
	assert_values(nb_log_softmax(t, big, 0), (double[]){ 0, 0, -1000, -2000 }, 4);
	ck_assert_double_eq(nb_value(nb_logsumexp(t, vec(t, 2, (double[]){ INFINITY, 1 }),
	                                           0, 0))[0], INFINITY);
	ck_assert_double_eq(nb_value(nb_logsumexp(t, vec(t, 2, (double[]){ -INFINITY,
	                                                                   -INFINITY }),
	                                           0, 0))[0], -INFINITY);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* The gradient of a maximum goes to the winner; at a tie, to the first operand or the
 * first element of the line. */
START_TEST(test_select_gradients_at_ties)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 1, 2, 3 });
	nb_tensor *b = nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 1, 5, 0 });
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 4 }, (double[]){ 2, 7, 7, 1 });
	nb_tensor *in[2] = { a, b }, *g[2], *gx;

	ck_assert_int_eq(nb_gradients(t, nb_sum(t, nb_maximum(t, a, b)), NULL, in, 2, g), NB_OK);
	assert_values(g[0], (double[]){ 1, 0, 1 }, 3);
	assert_values(g[1], (double[]){ 0, 1, 0 }, 3);
	ck_assert_int_eq(nb_gradients(t, nb_max_axis(t, x, 0, 0), NULL, &x, 1, &gx), NB_OK);
	assert_values(gx, (double[]){ 0, 1, 0, 0 }, 4);
	nb_tape_free(t);
}
END_TEST

/* slice, pad, concat and permute move values, and are each other's adjoints. */
START_TEST(test_shape_op_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 2, (size_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *b = nb_constant(t, 2, (size_t[]){ 2, 1 }, (double[]){ 7, 8 });
	nb_tensor *c = nb_constant(t, 3, (size_t[]){ 2, 1, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 4 }, (double[]){ 1, 2, 3, 4 }), *g;

	assert_values(nb_slice(t, a, 1, 1, 3), (double[]){ 2, 3, 5, 6 }, 4);
	assert_values(nb_slice(t, a, 0, 1, 2), (double[]){ 4, 5, 6 }, 3);
	ck_assert_ptr_eq(nb_slice(t, a, 1, 0, 3), a);
	assert_values(nb_pad(t, b, 1, 1, 2), (double[]){ 0, 7, 0, 0, 0, 8, 0, 0 }, 8);
	assert_values(nb_pad(t, b, 0, 0, 1), (double[]){ 7, 8, 0 }, 3);
	ck_assert_ptr_eq(nb_pad(t, a, 0, 0, 0), a);
	assert_values(nb_concat(t, (nb_tensor *[]){ a, b }, 2, 1),
	              (double[]){ 1, 2, 3, 7, 4, 5, 6, 8 }, 8);
	assert_values(nb_concat(t, (nb_tensor *[]){ a, a, a }, 3, 0),
	              (double[]){ 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6 }, 18);
	ck_assert_ptr_eq(nb_concat(t, &a, 1, 0), a);
	assert_values(nb_permute(t, a, (const int[]){ 1, 0 }), (double[]){ 1, 4, 2, 5, 3, 6 }, 6);
	assert_values(nb_permute(t, c, (const int[]){ 2, 0, 1 }), (double[]){ 1, 4, 2, 5, 3, 6 },
	              6);
	ck_assert_uint_eq(nb_dim(nb_permute(t, c, (const int[]){ 2, 0, 1 }), 0), 3);
	ck_assert_ptr_eq(nb_permute(t, c, (const int[]){ 0, 1, 2 }), c);
	/* the gradient of a slice is padded back; of a concat, sliced */
	ck_assert_int_eq(nb_gradients(t, nb_sum(t, nb_mul(t, nb_slice(t, x, 0, 1, 3),
	                                                  nb_slice(t, x, 0, 2, 4))),
	                              NULL, &x, 1, &g), NB_OK);
	assert_values(g, (double[]){ 0, 3, 2 + 4, 3 }, 4);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* A batch of two products: each is the rank-2 product of its matrices. */
START_TEST(test_batched_matmul_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 3, (size_t[]){ 2, 2, 2 }, (double[]){ 1, 2, 3, 4, 0, 1,
		                                                            1, 0 });
	nb_tensor *b = nb_constant(t, 3, (size_t[]){ 2, 2, 1 }, (double[]){ 5, 6, 7, 8 });

	assert_values(nb_matmul(t, a, b), (double[]){ 17, 39, 8, 7 }, 4);
	assert_values(nb_matmul_t(t, a, b, NB_TRANS_A), (double[]){ 23, 34, 8, 7 }, 4);
	ck_assert_uint_eq(nb_dim(nb_matmul(t, a, b), 0), 2);
	ck_assert_uint_eq(nb_dim(nb_matmul(t, a, b), 2), 1);
	nb_tape_free(t);
}
END_TEST

/* An embedding lookup: rows by index; a repeated index sums its rows' gradients; an index
 * made invalid by nb_set() gives NaN rows. */
START_TEST(test_gather_rows_values_and_gradient)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *table = nb_variable(t, 2, (size_t[]){ 3, 2 }, (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *idx = nb_constant(t, 1, (size_t[]){ 4 }, (double[]){ 2, 0, 2, 1 });
	nb_tensor *w = nb_constant(t, 2, (size_t[]){ 4, 2 }, (double[]){ 1, 2, 3, 4, 5, 6, 7, 8 });
	nb_tensor *y = nb_gather_rows(t, table, idx), *g;

	assert_values(y, (double[]){ 5, 6, 1, 2, 5, 6, 3, 4 }, 8);
	ck_assert_int_eq(nb_gradients(t, nb_sum(t, nb_mul(t, w, y)), NULL, &table, 1, &g), NB_OK);
	assert_values(g, (double[]){ 3, 4, 7, 8, 1 + 5, 2 + 6 }, 6);
	ck_assert_int_eq(nb_set(idx, (double[]){ 0, 0, 7, 1 }, 4), NB_OK);
	ck_assert(isnan(nb_value(y)[4]));
	ck_assert_double_eq(nb_value(y)[2], 1.0);
	nb_tape_free(t);
}
END_TEST

/* conv2d and the pools against plain loops over the definition, with stride and zero
 * padding: y[n][o][i][j] = sum over c, a, b of w[o][c][a][b] x[n][c][i s - p + a][j s - p + b]. */
static double conv_at(const double *x, const double *w, size_t C, size_t H, size_t W,
                      size_t K, size_t s, size_t p, size_t n, size_t o, size_t i, size_t j)
{
	double sum = 0.0;

	for (size_t c = 0; c < C; c++)
		for (size_t a = 0; a < K; a++)
			for (size_t b = 0; b < K; b++) {
				long r = (long)(i * s + a) - (long)p, q = (long)(j * s + b) - (long)p;

				if (r >= 0 && r < (long)H && q >= 0 && q < (long)W)
					sum += w[((o * C + c) * K + a) * K + b] *
					       x[((n * C + c) * H + (size_t)r) * W + (size_t)q];
			}
	return sum;
}

START_TEST(test_conv_and_pool_values)
{
	enum { N = 2, C = 2, H = 5, W = 4, O = 3, K = 3 };
	nb_tape *t = nb_tape_new();
	double xv[N * C * H * W], wv[O * C * K * K];
	test_rng r;
	nb_tensor *x, *w, *y, *mp, *ap;

	rng_seed(&r, 9);
	rng_fill(&r, xv, N * C * H * W, -1, 1);
	rng_fill(&r, wv, O * C * K * K, -1, 1);
	x = nb_constant(t, 4, (size_t[]){ N, C, H, W }, xv);
	w = nb_constant(t, 4, (size_t[]){ O, C, K, K }, wv);
	for (size_t s = 1; s <= 3; s++)
		for (size_t p = 0; p <= 2; p++) {
			size_t oh = (H + 2 * p - K) / s + 1, ow = (W + 2 * p - K) / s + 1;

			y = nb_conv2d(t, x, w, s, p);
			ck_assert_ptr_nonnull(y);
			ck_assert_uint_eq(nb_dim(y, 2), oh);
			ck_assert_uint_eq(nb_dim(y, 3), ow);
			for (size_t n = 0; n < N; n++)
				for (size_t o = 0; o < O; o++)
					for (size_t i = 0; i < oh; i++)
						for (size_t j = 0; j < ow; j++)
							ck_assert_double_eq_tol(
								nb_value(y)[((n * O + o) * oh + i) * ow + j],
								conv_at(xv, wv, C, H, W, K, s, p, n, o, i, j), 1e-14);
		}
	mp = nb_max_pool2d(t, x, 2, 2);
	ap = nb_avg_pool2d(t, x, 2, 1);
	ck_assert_uint_eq(nb_dim(mp, 2), 2);
	ck_assert_uint_eq(nb_dim(mp, 3), 2);
	ck_assert_uint_eq(nb_dim(ap, 2), 4);
	ck_assert_uint_eq(nb_dim(ap, 3), 3);
	for (size_t n = 0; n < N; n++)
		for (size_t c = 0; c < C; c++) {
			const double *img = xv + (n * C + c) * H * W;

			for (size_t i = 0; i < 2; i++)
				for (size_t j = 0; j < 2; j++) {
					double m = img[2 * i * W + 2 * j];

					for (size_t a = 0; a < 2; a++)
						for (size_t b = 0; b < 2; b++)
							m = fmax(m, img[(2 * i + a) * W + 2 * j + b]);
					ck_assert_double_eq(nb_value(mp)[((n * C + c) * 2 + i) * 2 + j], m);
				}
			for (size_t i = 0; i < 4; i++)
				for (size_t j = 0; j < 3; j++) {
					double mean = (img[i * W + j] + img[i * W + j + 1] +
					               img[(i + 1) * W + j] + img[(i + 1) * W + j + 1]) / 4;

					ck_assert_double_eq_tol(nb_value(ap)[((n * C + c) * 4 + i) * 3 + j], mean,
					                        1e-15);
				}
		}
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* Dropout: masks of 0 and 1/(1-p), about a fraction p of zeros, a new mask when the input
 * changes, the same one otherwise, the same sequence for the same seed on another tape,
 * and the mask as the gradient. */
START_TEST(test_dropout_masks)
{
	enum { N = 10000 };
	static double ones[N], twos[N], first[N];
	nb_tape *t = nb_tape_new(), *u = nb_tape_new();
	nb_tensor *x, *y, *xu, *yu, *g;
	size_t zeros = 0, changed = 0;

	for (size_t i = 0; i < N; i++) {
		ones[i] = 1.0;
		twos[i] = 2.0;
	}
	x = nb_variable(t, 1, (size_t[]){ N }, ones);
	y = nb_dropout(t, x, 0.25, 42);
	ck_assert_ptr_nonnull(y);
	for (size_t i = 0; i < N; i++) {
		double v = nb_value(y)[i];

		ck_assert(v == 0.0 || v == 1.0 / 0.75);
		zeros += v == 0.0;
	}
	/* about N/4 zeros (a fixed seed, so always the same count) */
	ck_assert_uint_gt(zeros, N / 4 - 200);
	ck_assert_uint_lt(zeros, N / 4 + 200);
	memcpy(first, nb_value(y), sizeof first);
	ck_assert_int_eq(nb_tape_replay(t), NB_OK);  /* nothing changed: the same mask */
	ck_assert_int_eq(memcmp(first, nb_value(y), sizeof first), 0);
	ck_assert_int_eq(nb_gradients(t, nb_sum(t, y), NULL, &x, 1, &g), NB_OK);
	ck_assert_int_eq(memcmp(nb_value(g), first, sizeof first), 0);
	/* another tape, the same seed: the same first mask */
	xu = nb_variable(u, 1, (size_t[]){ N }, ones);
	yu = nb_dropout(u, xu, 0.25, 42);
	ck_assert_int_eq(memcmp(nb_value(yu), first, sizeof first), 0);
	/* a new input: a new mask, which the gradient follows */
	ck_assert_int_eq(nb_set(x, twos, N), NB_OK);
	for (size_t i = 0; i < N; i++) {
		changed += (nb_value(y)[i] == 0.0) != (first[i] == 0.0);
		ck_assert_double_eq(nb_value(g)[i], nb_value(y)[i] / 2.0);
	}
	ck_assert_uint_gt(changed, N / 10);
	/* p = 0 is x; a probability outside [0, 1) is refused */
	ck_assert_ptr_eq(nb_dropout(t, x, 0.0, 1), x);
	ck_assert_ptr_null(nb_dropout(t, x, 1.0, 1));
	ck_assert_str_eq(nb_tape_message(t), "dropout: probability 1 is not in [0, 1)");
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_dropout(t, x, NAN, 1));
	ck_assert_str_eq(nb_tape_message(t), "dropout: probability nan is not in [0, 1)");
	nb_tape_free(t);
	nb_tape_free(u);
}
END_TEST

START_TEST(test_relu_step_softmax_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = vec(t, 3, (double[]){ -1, 0, 2 });
	nb_tensor *m = nb_constant(t, 2, (size_t[]){ 2, 2 }, (double[]){ 0, 1000, log(3.0), 1000 });
	double e = exp(1.0);

	assert_values(nb_relu(t, x), (double[]){ 0, 0, 2 }, 3);
	assert_values(nb_step(t, x), (double[]){ 0, 0, 1 }, 3);
	/* NaN stays NaN, and so does its gradient through relu's rule */
	ck_assert(isnan(nb_value(nb_relu(t, vec(t, 1, (double[]){ NAN })))[0]));
	ck_assert(isnan(nb_value(nb_step(t, vec(t, 1, (double[]){ NAN })))[0]));
	ck_assert_double_eq(nb_value(nb_relu(t, vec(t, 1, (double[]){ -INFINITY })))[0], 0.0);
	assert_values(nb_softmax(t, vec(t, 2, (double[]){ 0, 1 }), 0),
	              (double[]){ 1 / (1 + e), e / (1 + e) }, 2);
	/* per column, and no overflow at 1000 */
	assert_values(nb_softmax(t, m, 0), (double[]){ 0.25, 0.5, 0.75, 0.5 }, 4);
	assert_values(nb_softmax(t, m, 1), (double[]){ 0, 1, 0, 1 }, 4);
	nb_tape_free(t);
}
END_TEST

/* Both cross-entropies against the formulas written with a = sigmoid(z) or softmax(z),
 * and finite where the activation rounds to 0 or 1. */
START_TEST(test_cross_entropy_values)
{
	nb_tape *t = nb_tape_new();
	double zv[4] = { 0.5, -1, 2, 0 }, yv[4] = { 1, 0, 0.25, 1 }, want = 0;
	nb_tensor *z = nb_constant(t, 2, (size_t[]){ 2, 2 }, zv);
	nb_tensor *y = nb_constant(t, 2, (size_t[]){ 2, 2 }, yv);
	nb_tensor *big = vec(t, 2, (double[]){ 800, -800 });
	nb_tensor *oh = vec(t, 2, (double[]){ 0, 1 });

	for (int i = 0; i < 4; i++) {
		double a = 1 / (1 + exp(-zv[i]));

		want -= (yv[i] * log(a) + (1 - yv[i]) * log(1 - a)) / 2;
	}
	assert_values(nb_sigmoid_cross_entropy(t, z, y), &want, 1);
	/* columns (0.5, -1) and (2, 0) as distributions */
	want = -(1 * (0.5 - log(exp(0.5) + exp(2))) + 0.25 * (2 - log(exp(0.5) + exp(2))) +
	         1 * (0 - log(exp(-1) + exp(0)))) / 2;
	assert_values(nb_softmax_cross_entropy(t, z, y), &want, 1);
	assert_values(nb_sigmoid_cross_entropy(t, big, oh), (double[]){ 1600 }, 1);
	assert_values(nb_softmax_cross_entropy(t, big, oh), (double[]){ 1600 }, 1);
	nb_tape_free(t);
}
END_TEST

/* C = 1/(2n) sum ||y - a||^2 with n the number of columns. */
START_TEST(test_quadratic_cost_value)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 2, (size_t[]){ 2, 2 }, (double[]){ 1, 2, 3, 4 });
	nb_tensor *y = nb_constant(t, 2, (size_t[]){ 2, 2 }, (double[]){ 0, 0, 1, 1 });
	nb_tensor *v = vec(t, 2, (double[]){ 3, 4 });

	assert_values(nb_quadratic_cost(t, a, y), (double[]){ (1 + 4 + 4 + 9) / 4.0 }, 1);
	assert_values(nb_quadratic_cost(t, v, nb_fill(t, 1, (size_t[]){ 2 }, 0)),
	              (double[]){ 12.5 }, 1);
	nb_tape_free(t);
}
END_TEST

/* nb_rng: a copy continues the same sequence, another seed gives another, and 10,000
 * draws of each kind stay in their range (normal ones average near 0). */
START_TEST(test_rng_sequences_and_ranges)
{
	nb_rng a, b;
	double mean = 0;

	nb_rng_seed(&a, 0);
	b = a;
	ck_assert_uint_eq(nb_rng_next(&a), nb_rng_next(&b));
	nb_rng_seed(&b, 1);
	ck_assert_uint_ne(nb_rng_next(&a), nb_rng_next(&b));
	for (int i = 0; i < 10000; i++) {
		double u = nb_rng_uniform(&a);
		size_t k = nb_rng_below(&a, 7);

		ck_assert(u >= 0.0 && u < 1.0);
		ck_assert_uint_lt(k, 7);
		mean += nb_rng_normal(&b) / 10000;
	}
	ck_assert_double_lt(fabs(mean), 0.05);
	ck_assert_uint_eq(nb_rng_below(&a, 1), 0);
	ck_assert_uint_eq(nb_rng_below(&a, 0), 0);
}
END_TEST

static Suite *ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *values = tcase_create("values");

	tcase_add_test(values, test_hadamard_example);
	tcase_add_test(values, test_arith_broadcast_values);
	tcase_add_test(values, test_unary_values);
	tcase_add_test(values, test_matmul_values_with_transposes);
	tcase_add_test(values, test_matmul_matches_plain_loops);
	tcase_add_test(values, test_threads_give_identical_products);
	tcase_add_test(values, test_reduction_values);
	tcase_add_test(values, test_quadratic_cost_value);
	tcase_add_test(values, test_relu_step_softmax_values);
	tcase_add_test(values, test_dropout_masks);
	tcase_add_test(values, test_conv_and_pool_values);
	tcase_add_test(values, test_gather_rows_values_and_gradient);
	tcase_add_test(values, test_batched_matmul_values);
	tcase_add_test(values, test_shape_op_values);
	tcase_add_test(values, test_select_reduce_values);
	tcase_add_test(values, test_select_gradients_at_ties);
	tcase_add_test(values, test_pow_abs_softplus_values);
	tcase_add_test(values, test_cross_entropy_values);
	tcase_add_test(values, test_rng_sequences_and_ranges);
	suite_add_tcase(s, values);
	return s;
}

int main(void)
{
	return run_suite(ops_suite());
}
