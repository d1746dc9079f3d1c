/* test_gradcheck.c -- nb_gradcheck(): correct gradients pass, wrong ones are caught and
 * located, bad arguments and failing expressions are reported with status and text. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "nabla.h"

/* Central differences at h = 1e-6 of these smooth expressions are within ~1e-9 of the
 * derivative; the hand-computed values below are exact up to a few ulps. */
#define TOL_DIFF 1e-7

/* ---- Expressions ------------------------------------------------------------------- */

/* sum(sigmoid(W x + b)) for W (3x4), x (4x2), b (3x1) broadcast over the columns. */
static nb_tensor *layer(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_sigmoid(t, nb_add(t, nb_matmul(t, in[0], in[1]), in[2])));
}

/* tanh(a ⊙ b): a non-scalar output, reduced by gradcheck with a random seed. */
static nb_tensor *tanh_prod(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_tanh(t, nb_mul(t, in[0], in[1]));
}

static nb_tensor *sum_squares(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_mul(t, in[0], in[0]));
}

static nb_tensor *sum_exp(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_exp(t, in[0]));
}

/* x / (1 + exp(-s x)) for a rank-0 s broadcast against a vector x. */
static nb_tensor *scalar_bcast(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	nb_tensor *one = nb_scalar(t, 1.0);

	(void)n;
	(void)ud;
	return nb_div(t, in[1], nb_add(t, one, nb_exp(t, nb_neg(t, nb_mul(t, in[0], in[1])))));
}

/* sum(a): b is an input the expression ignores, so its gradient is NULL. */
static nb_tensor *first_only(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, in[0]);
}

/* sum(c x) with c taken from ud; records the n it was given in ud too. */
struct scale_ud {
	double c;
	size_t calls, n;
};

static nb_tensor *scaled(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	struct scale_ud *s = ud;

	s->calls++;
	s->n = n;
	return nb_sum(t, nb_scale(t, in[0], s->c));
}

static nb_tensor *returns_null(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)t;
	(void)in;
	(void)n;
	(void)ud;
	return NULL;
}

static nb_tensor *bad_matmul(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_matmul(t, in[0], in[1]));
}

/* ---- Inputs ------------------------------------------------------------------------ */

static const size_t dim_w[] = { 3, 4 }, dim_x[] = { 4, 2 }, dim_b[] = { 3, 1 };
static double val_w[12], val_x[8], val_b[3];

static void layer_inputs(nb_gradcheck_input in[3])
{
	test_rng r;

	rng_seed(&r, 42);
	rng_fill(&r, val_w, 12, -1.0, 1.0);
	rng_fill(&r, val_x, 8, -2.0, 2.0);
	rng_fill(&r, val_b, 3, -0.5, 0.5);
	in[0] = (nb_gradcheck_input){ 2, dim_w, val_w };
	in[1] = (nb_gradcheck_input){ 2, dim_x, val_x };
	in[2] = (nb_gradcheck_input){ 2, dim_b, val_b };
}

static const size_t dim_23[] = { 2, 3 };
static const double val_a[] = { 0.5, -1.0, 0.25, 1.5, -0.75, 0.1 };
static const double val_c[] = { -0.3, 0.8, 1.2, -0.6, 0.4, 0.9 };

static const size_t dim_3[] = { 3 };
static const double val_sq[] = { 1.0, -2.0, 3.0 };

static const size_t dim_4[] = { 4 };
static const double val_exp[] = { 0.0, 1.0, 2.0, 0.5 };

static void assert_all_passed(const nb_gradcheck_report *r, size_t checked)
{
	ck_assert_int_eq(r->status, NB_OK);
	ck_assert_str_eq(r->message, "");
	ck_assert_int_eq(r->passed, 1);
	ck_assert_int_eq(r->first.passed, 1);
	ck_assert_uint_eq(r->first.checked, checked);
	ck_assert_int_eq(r->repeatable, 1);
	ck_assert_int_eq(r->second_checked, 1);
	ck_assert_int_eq(r->second.passed, 1);
	ck_assert_uint_eq(r->second.checked, checked);
}

/* ---- Correct expressions pass ------------------------------------------------------ */

START_TEST(test_layer_passes_elements_mode)
{
	nb_gradcheck_input in[3];
	nb_gradcheck_report r;

	layer_inputs(in);
	ck_assert_int_eq(nb_gradcheck(layer, NULL, in, 3, NULL, &r), NB_OK);
	assert_all_passed(&r, 12 + 8 + 3);
	ck_assert_uint_eq(r.output_size, 1);
	ck_assert_int_eq(r.mode, NB_GRADCHECK_ELEMENTS);
	ck_assert_double_eq(r.step, 1e-6);
	ck_assert_double_eq(r.atol, 1e-7);
	ck_assert_double_eq(r.rtol, 1e-6);
	ck_assert_double_le(r.first.max_abs_err, TOL_DIFF);
}
END_TEST

START_TEST(test_layer_passes_direction_mode)
{
	nb_gradcheck_input in[3];
	nb_gradcheck_opts o = { .mode = NB_GRADCHECK_DIRECTION };
	nb_gradcheck_report r;

	layer_inputs(in);
	ck_assert_int_eq(nb_gradcheck(layer, NULL, in, 3, &o, &r), NB_OK);
	assert_all_passed(&r, 1);
	ck_assert_int_eq(r.mode, NB_GRADCHECK_DIRECTION);
	ck_assert_uint_eq(r.first.worst_input, 0);
	ck_assert_uint_eq(r.first.worst_index, 0);
	ck_assert_double_ne(r.first.analytic, 0.0);
}
END_TEST

START_TEST(test_nonscalar_output_passes_both_modes)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, dim_23, val_c } };
	nb_gradcheck_opts o = { 0 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r), NB_OK);
	assert_all_passed(&r, 12);
	ck_assert_uint_eq(r.output_size, 6);

	o.mode = NB_GRADCHECK_DIRECTION;
	ck_assert_int_eq(nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r), NB_OK);
	assert_all_passed(&r, 1);
	ck_assert_uint_eq(r.output_size, 6);
}
END_TEST

START_TEST(test_rank0_input_with_broadcasting_passes)
{
	static const double s = 0.7;
	nb_gradcheck_input in[2] = { { 0, NULL, &s }, { 1, dim_4, val_exp } };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(scalar_bcast, NULL, in, 2, NULL, &r), NB_OK);
	assert_all_passed(&r, 1 + 4);
	ck_assert_uint_eq(r.output_size, 4);
}
END_TEST

/* b's gradient is NULL (zero), and so is every Hessian-vector product: still a pass. */
START_TEST(test_unused_input_has_zero_gradient)
{
	nb_gradcheck_input in[2] = { { 1, dim_3, val_sq }, { 2, dim_23, val_a } };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(first_only, NULL, in, 2, NULL, &r), NB_OK);
	assert_all_passed(&r, 3 + 6);
	ck_assert_double_eq(r.second.max_abs_err, 0.0);
}
END_TEST

/* ---- Report fields against values computed by hand --------------------------------- */

/* f = sum(x ⊙ x): grad = 2x exactly, Hessian = 2I, so H v = 2v is linear in x. */
START_TEST(test_sum_squares_report_matches_hand_values)
{
	nb_gradcheck_input in = { 1, dim_3, val_sq };
	nb_gradcheck_report r;
	size_t i;

	ck_assert_int_eq(nb_gradcheck(sum_squares, NULL, &in, 1, NULL, &r), NB_OK);
	assert_all_passed(&r, 3);
	i = r.first.worst_index;
	ck_assert_uint_lt(i, 3);
	ck_assert_uint_eq(r.first.worst_input, 0);
	ck_assert_double_eq(r.first.analytic, 2.0 * val_sq[i]);
	ck_assert_double_eq_tol(r.first.numeric, 2.0 * val_sq[i], TOL_DIFF);
	ck_assert_double_le(r.first.max_abs_err, TOL_DIFF);
	ck_assert_double_eq_tol(r.second.numeric, r.second.analytic, TOL_DIFF);
	ck_assert_double_le(fabs(r.second.analytic), 2.0);  /* 2 v_i with |v_i| <= 1 */
}
END_TEST

START_TEST(test_ud_and_n_reach_the_expression)
{
	struct scale_ud s = { .c = -3.0 };
	nb_gradcheck_input in[2] = { { 1, dim_3, val_sq }, { 1, dim_4, val_exp } };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(scaled, &s, in, 2, NULL, &r), NB_OK);
	ck_assert_uint_eq(s.calls, 2);  /* recorded, replayed, recorded again for repeatability */
	ck_assert_uint_eq(s.n, 2);
	assert_all_passed(&r, 3 + 4);
	if (r.first.worst_input == 0)
		ck_assert_double_eq(r.first.analytic, -3.0);
	else
		ck_assert_double_eq(r.first.analytic, 0.0);
}
END_TEST

/* With h = 0.5 the central difference of exp is e^x sinh(h)/h, 4% too large: every
 * element fails, the largest x worst of all. */
START_TEST(test_large_step_fails_at_largest_element)
{
	nb_gradcheck_input in = { 1, dim_4, val_exp };
	nb_gradcheck_opts o = { .step = 0.5 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_int_eq(r.first.passed, 0);
	ck_assert_uint_eq(r.first.checked, 4);
	ck_assert_uint_eq(r.first.worst_input, 0);
	ck_assert_uint_eq(r.first.worst_index, 2);
	ck_assert_double_eq_tol(r.first.analytic, exp(2.0), TOL_EXACT);
	ck_assert_double_eq_tol(r.first.numeric, exp(2.5) - exp(1.5), TOL_EXACT);
	ck_assert_double_eq_tol(r.first.max_abs_err, exp(2.5) - exp(1.5) - exp(2.0),
	                        TOL_EXACT);
	ck_assert_double_eq_tol(r.first.max_rel_err, 1.0 - 1.0 / (2.0 * sinh(0.5)), 1e-12);
	ck_assert_double_eq(r.step, 0.5);
	ck_assert_int_eq(r.repeatable, 1);
}
END_TEST

/* Every allocation of a check, its buffers and its tapes alike, goes through the
 * caller's allocator: failing each in turn gives NB_ENOMEM, leaks nothing, and the run
 * after the last one passes. */
START_TEST(test_gradcheck_uses_the_callers_allocator)
{
	nb_gradcheck_input in = { 1, dim_4, val_exp };
	nb_gradcheck_report r;
	size_t k;

	for (k = 1;; k++) {
		count_alloc c = { .fail_at = k };
		nb_gradcheck_opts o = { .alloc = count_alloc_fn, .alloc_ud = &c };
		int status = nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r);

		ck_assert_uint_eq(c.bytes_in_use, 0);
		if (c.fail_at != 0) {
			ck_assert_int_eq(status, NB_OK);
			ck_assert_int_eq(r.passed, 1);
			break;
		}
		ck_assert_int_eq(status, NB_ENOMEM);
		ck_assert_int_eq(r.passed, 0);
	}
	ck_assert_uint_gt(k, 10);
}
END_TEST

/* An expression that reads state outside the graph (a counter bumped at every call) has
 * a correct gradient on each tape, but not the same one twice: the repeatability check,
 * which records it again on a fresh tape, must catch that. */
static nb_tensor *drifting(nb_tape *t, nb_tensor *const *x, size_t n, void *ud)
{
	int *calls = ud;

	(void)n;
	++*calls;
	return nb_sum(t, nb_scale(t, nb_mul(t, x[0], x[0]), 1.0 + 1e-3 * *calls));
}

START_TEST(test_repeatable_fails_for_state_outside_the_graph)
{
	nb_gradcheck_input in = { 1, dim_4, val_exp };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;
	int calls = 0;

	ck_assert_int_eq(nb_gradcheck(drifting, &calls, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(calls, 2);
	ck_assert_int_eq(r.first.passed, 1);
	ck_assert_int_eq(r.repeatable, 0);
	ck_assert_int_eq(r.passed, 0);
}
END_TEST

/* The same 4% error (at most 0.32 here) passes when atol allows it. */
START_TEST(test_loose_tolerance_accepts_large_step)
{
	nb_gradcheck_input in = { 1, dim_4, val_exp };
	nb_gradcheck_opts o = { .step = 0.5, .atol = 10.0, .first_order_only = 1 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_double_eq(r.atol, 10.0);
	ck_assert_double_eq(r.rtol, 1e-6);
}
END_TEST

START_TEST(test_first_order_only_skips_second)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, dim_23, val_c } };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_uint_eq(r.first.checked, 12);
	ck_assert_int_eq(r.second_checked, 0);
	ck_assert_uint_eq(r.second.checked, 0);
}
END_TEST

/* The same seed gives the same numbers; another seed another random direction. */
START_TEST(test_seed_determines_the_check)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, dim_23, val_c } };
	nb_gradcheck_opts o = { .mode = NB_GRADCHECK_DIRECTION, .seed = 7 };
	nb_gradcheck_report r1, r2, r3;

	nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r1);
	nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r2);
	o.seed = 8;
	nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r3);
	ck_assert_int_eq(r1.passed && r2.passed && r3.passed, 1);
	ck_assert_double_eq(r1.first.analytic, r2.first.analytic);
	ck_assert_double_eq(r1.first.numeric, r2.first.numeric);
	ck_assert_double_eq(r1.second.analytic, r2.second.analytic);
	ck_assert_double_ne(r1.first.analytic, r3.first.analytic);
}
END_TEST

/* ---- Bad arguments ----------------------------------------------------------------- */

static void assert_error(int got, const nb_gradcheck_report *r, int status, const char *msg)
{
	ck_assert_int_eq(got, status);
	ck_assert_int_eq(r->status, status);
	ck_assert_int_eq(r->passed, 0);
	ck_assert_str_eq(r->message, msg);
}

START_TEST(test_null_arguments_rejected)
{
	nb_gradcheck_input in = { 1, dim_3, val_sq };
	nb_gradcheck_report r;

	assert_error(nb_gradcheck(NULL, NULL, &in, 1, NULL, &r), &r, NB_ENULL,
	             "gradcheck: f is NULL");
	assert_error(nb_gradcheck(sum_exp, NULL, NULL, 1, NULL, &r), &r, NB_ENULL,
	             "gradcheck: inputs is NULL");
	ck_assert_int_eq(nb_gradcheck(sum_exp, NULL, &in, 1, NULL, NULL), NB_ENULL);
}
END_TEST

START_TEST(test_bad_inputs_rejected)
{
	static const size_t d_ok[] = { 2, 2 }, d_zero[] = { 2, 0 };
	nb_gradcheck_input in[2] = { { 1, dim_3, val_sq }, { 5, d_ok, NULL } };
	nb_gradcheck_report r;

	assert_error(nb_gradcheck(sum_exp, NULL, in, 0, NULL, &r), &r, NB_EINVAL,
	             "gradcheck: no inputs (n is 0)");
	assert_error(nb_gradcheck(sum_exp, NULL, in, 2, NULL, &r), &r, NB_EINVAL,
	             "gradcheck: input 1 has rank 5 (0..4 allowed)");
	in[1].rank = -1;
	assert_error(nb_gradcheck(sum_exp, NULL, in, 2, NULL, &r), &r, NB_EINVAL,
	             "gradcheck: input 1 has rank -1 (0..4 allowed)");
	in[1] = (nb_gradcheck_input){ 2, d_zero, NULL };
	assert_error(nb_gradcheck(sum_exp, NULL, in, 2, NULL, &r), &r, NB_EINVAL,
	             "gradcheck: input 1 has dim[1] = 0 (>= 1 needed)");
	in[1] = (nb_gradcheck_input){ 2, NULL, NULL };
	assert_error(nb_gradcheck(sum_exp, NULL, in, 2, NULL, &r), &r, NB_ENULL,
	             "gradcheck: input 1 has rank 2 but dim is NULL");
}
END_TEST

START_TEST(test_bad_options_rejected)
{
	nb_gradcheck_input in = { 1, dim_3, val_sq };
	nb_gradcheck_opts o = { .step = -0.5 };
	nb_gradcheck_report r;

	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: step is -0.5 (must be >= 0)");
	o = (nb_gradcheck_opts){ .atol = -1e-3 };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: atol is -0.001 (must be >= 0)");
	o = (nb_gradcheck_opts){ .rtol = NAN };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: rtol is nan (must be >= 0)");
	o = (nb_gradcheck_opts){ .mode = 7 };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: unknown mode 7");
}
END_TEST

/* ---- Failing expressions ----------------------------------------------------------- */

START_TEST(test_expression_returning_null_reported)
{
	nb_gradcheck_input in = { 1, dim_3, val_sq };
	nb_gradcheck_report r;

	assert_error(nb_gradcheck(returns_null, NULL, &in, 1, NULL, &r), &r, NB_ENULL,
	             "gradcheck: the expression returned NULL");
}
END_TEST

START_TEST(test_expression_shape_error_reported)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, dim_23, val_c } };
	nb_gradcheck_report r;

	assert_error(nb_gradcheck(bad_matmul, NULL, in, 2, NULL, &r), &r, NB_ESHAPE,
	             "matmul: inner dimensions differ: (2x3) @ (2x3)");
}
END_TEST

/* ---- Printing ---------------------------------------------------------------------- */

/* Print r into a temporary file and return its text in buf. */
static const char *print_to(const nb_gradcheck_report *r, char *buf, size_t size)
{
	FILE *f = tmpfile();
	size_t len;

	ck_assert_ptr_nonnull(f);
	nb_gradcheck_print(f, r);
	rewind(f);
	len = fread(buf, 1, size - 1, f);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

START_TEST(test_print_shows_pass_and_fail)
{
	nb_gradcheck_input in = { 1, dim_4, val_exp };
	nb_gradcheck_opts o = { .step = 0.5 };
	nb_gradcheck_report r;
	char buf[4096];

	nb_gradcheck(sum_exp, NULL, &in, 1, NULL, &r);
	print_to(&r, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "gradcheck: PASS"));
	ck_assert_ptr_null(strstr(buf, "FAIL"));
	ck_assert_ptr_nonnull(strstr(buf, "second order"));

	nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r);
	print_to(&r, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "gradcheck: FAIL"));
	ck_assert_ptr_nonnull(strstr(buf, "worst at input 0 element 2"));
}
END_TEST

START_TEST(test_print_shows_error_and_null)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, dim_23, val_c } };
	nb_gradcheck_report r;
	char buf[4096];

	nb_gradcheck(bad_matmul, NULL, in, 2, NULL, &r);
	print_to(&r, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "NB_ESHAPE"));
	ck_assert_ptr_nonnull(strstr(buf, "matmul: inner dimensions differ: (2x3) @ (2x3)"));
	ck_assert_str_eq(print_to(NULL, buf, sizeof(buf)), "(null report)\n");
	nb_gradcheck_print(NULL, &r);  /* prints nothing, does not crash */
}
END_TEST

static Suite *gradcheck_suite(void)
{
	Suite *s = suite_create("gradcheck");
	TCase *pass = tcase_create("pass");
	TCase *hand = tcase_create("hand");
	TCase *err = tcase_create("errors");
	TCase *print = tcase_create("print");

	tcase_add_test(pass, test_layer_passes_elements_mode);
	tcase_add_test(pass, test_layer_passes_direction_mode);
	tcase_add_test(pass, test_nonscalar_output_passes_both_modes);
	tcase_add_test(pass, test_rank0_input_with_broadcasting_passes);
	tcase_add_test(pass, test_unused_input_has_zero_gradient);
	tcase_add_test(hand, test_sum_squares_report_matches_hand_values);
	tcase_add_test(hand, test_ud_and_n_reach_the_expression);
	tcase_add_test(hand, test_large_step_fails_at_largest_element);
	tcase_add_test(hand, test_loose_tolerance_accepts_large_step);
	tcase_add_test(hand, test_first_order_only_skips_second);
	tcase_add_test(hand, test_seed_determines_the_check);
	tcase_add_test(err, test_null_arguments_rejected);
	tcase_add_test(err, test_bad_inputs_rejected);
	tcase_add_test(err, test_bad_options_rejected);
	tcase_add_test(err, test_expression_returning_null_reported);
	tcase_add_test(err, test_expression_shape_error_reported);
	tcase_add_test(err, test_repeatable_fails_for_state_outside_the_graph);
	tcase_add_test(err, test_gradcheck_uses_the_callers_allocator);
	tcase_add_test(print, test_print_shows_pass_and_fail);
	tcase_add_test(print, test_print_shows_error_and_null);
	suite_add_tcase(s, pass);
	suite_add_tcase(s, hand);
	suite_add_tcase(s, err);
	suite_add_tcase(s, print);
	return s;
}

int main(void)
{
	return run_suite(gradcheck_suite());
}
