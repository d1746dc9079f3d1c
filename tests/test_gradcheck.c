/* test_gradcheck.c -- nb_gradcheck(): correct gradients pass; wrong ones are caught and
 * located, down to the op whose rule is wrong; what replay cannot see (values that leave
 * the graph, C branches) is caught by evaluating the expression again; kinks, non-finite
 * values and inputs the output ignores are reported for what they are; bad arguments and
 * failing expressions are reported with status and text. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "nabla.h"
#include "userops.h"

/* Extrapolated differences of these smooth expressions are within ~1e-9 of the
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

static const char *print_to(const nb_gradcheck_report *r, char *buf, size_t size);

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
	ck_assert_uint_eq(r->first.all.checked, checked);
	ck_assert_uint_eq(r->first.all.failed, 0);
	ck_assert_uint_eq(r->first.n_worst, 0);
	ck_assert_int_eq(r->repeatable, 1);
	ck_assert_int_eq(r->forward_reverse, 1);
	ck_assert_double_eq_tol(r->reverse_dot, r->forward_dot, 1e-13);
	ck_assert_double_ne(r->reverse_dot, 0.0);
	ck_assert_int_eq(r->second_checked, 1);
	ck_assert_int_eq(r->second.passed, 1);
	ck_assert_uint_eq(r->second.all.checked, checked);
	ck_assert_int_eq(r->graph_break, 0);
	ck_assert_int_eq(r->control_flow, 0);
	ck_assert_int_eq(r->culprit, 0);
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
	ck_assert_int_eq(r.mode, NB_GRADCHECK_AUTO);
	ck_assert_int_eq(r.replay, 0);
	ck_assert_int_eq(r.levels, 2);
	ck_assert_double_eq(r.step, cbrt(DBL_EPSILON));
	ck_assert_double_eq(r.atol, 1e-7);
	ck_assert_double_eq(r.rtol, 1e-6);
	ck_assert_double_le(r.first.all.max_abs_err, TOL_DIFF);
	/* per input: every element, and the worst of each within tolerance */
	ck_assert_uint_eq(r.first.input[0].checked, 12);
	ck_assert_uint_eq(r.first.input[1].checked, 8);
	ck_assert_uint_eq(r.first.input[2].checked, 3);
	for (int k = 0; k < 3; k++) {
		const nb_gradcheck_mismatch *m = &r.first.input[k].worst;

		ck_assert_uint_eq(m->input, (size_t)k);
		ck_assert_double_gt(m->error, 0.0);  /* the estimate is carried, and small */
		ck_assert_double_lt(m->error, 1e-8);
		ck_assert_double_le(fabs(m->analytic - m->numeric), TOL_DIFF);
	}
}
END_TEST

START_TEST(test_layer_passes_direction_mode)
{
	nb_gradcheck_input in[3];
	nb_gradcheck_opts o = { .mode = NB_GRADCHECK_DIRECTIONS };
	nb_gradcheck_report r;

	layer_inputs(in);
	ck_assert_int_eq(nb_gradcheck(layer, NULL, in, 3, &o, &r), NB_OK);
	assert_all_passed(&r, 3 * 4);  /* the default 4 directions per input */
	ck_assert_int_eq(r.mode, NB_GRADCHECK_DIRECTIONS);
	ck_assert_uint_eq(r.first.input[1].checked, 4);
	ck_assert_int_eq(r.first.input[1].worst.direction, 1);
	ck_assert_uint_lt(r.first.input[1].worst.index, 4);
	ck_assert_double_ne(r.first.input[1].worst.analytic, 0.0);
	o.directions = 7;
	ck_assert_int_eq(nb_gradcheck(layer, NULL, in, 3, &o, &r), NB_OK);
	assert_all_passed(&r, 3 * 7);
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

	o.mode = NB_GRADCHECK_DIRECTIONS;
	ck_assert_int_eq(nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r), NB_OK);
	assert_all_passed(&r, 2 * 4);
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

/* b's gradient is a zero, and so is every Hessian-vector product: a pass, with a warning
 * that the output does not depend on b. */
START_TEST(test_unused_input_is_a_warning)
{
	nb_gradcheck_input in[2] = { { 1, dim_3, val_sq }, { 2, dim_23, val_a } };
	nb_gradcheck_report r;
	char buf[8192];

	ck_assert_int_eq(nb_gradcheck(first_only, NULL, in, 2, NULL, &r), NB_OK);
	assert_all_passed(&r, 3 + 6);
	ck_assert_double_eq(r.second.all.max_abs_err, 0.0);
	ck_assert_int_eq(r.independent[0], 0);
	ck_assert_int_eq(r.independent[1], 1);
	ck_assert_ptr_nonnull(strstr(print_to(&r, buf, sizeof buf),
	                             "warning: the output does not depend on input 1\n"));
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
	i = r.first.all.worst.index;
	ck_assert_uint_lt(i, 3);
	ck_assert_uint_eq(r.first.all.worst.input, 0);
	ck_assert_double_eq(r.first.all.worst.analytic, 2.0 * val_sq[i]);
	ck_assert_double_eq_tol(r.first.all.worst.numeric, 2.0 * val_sq[i], TOL_DIFF);
	ck_assert_double_le(r.first.all.max_abs_err, TOL_DIFF);
	ck_assert_double_eq_tol(r.second.all.worst.numeric, r.second.all.worst.analytic, TOL_DIFF);
	/* 2 v_i with |v_i| <= 1 */
	ck_assert_double_le(fabs(r.second.all.worst.analytic), 2.0);
}
END_TEST

START_TEST(test_ud_and_n_reach_the_expression)
{
	struct scale_ud s = { .c = -3.0 };
	nb_gradcheck_input in[2] = { { 1, dim_3, val_sq }, { 1, dim_4, val_exp } };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(scaled, &s, in, 2, NULL, &r), NB_OK);
	/* recorded, recorded again for repeatability, then once per evaluation: 2 levels of
	 * central differences, 7 elements, 2 orders */
	ck_assert_uint_eq(s.calls, 2 + 2 * 2 * 2 * 7);
	ck_assert_uint_eq(s.n, 2);
	assert_all_passed(&r, 3 + 4);
	ck_assert_double_eq(r.first.input[0].worst.analytic, -3.0);
	ck_assert_double_eq(r.first.input[1].worst.analytic, 0.0);
	/* by replay, the expression is recorded twice only */
	s.calls = 0;
	ck_assert_int_eq(nb_gradcheck(scaled, &s, in, 2, &(nb_gradcheck_opts){ .replay = 1 }, &r),
	                 NB_OK);
	ck_assert_uint_eq(s.calls, 2);
	assert_all_passed(&r, 3 + 4);
}
END_TEST

/* With step 0.5 and one level, h = 0.5 max(1, |x|) and the central difference of exp is
 * e^x sinh(h)/h: 4% too large for |x| <= 1, 17.5% at x = 2 (h = 1). Every element fails,
 * x = 2 worst of all, and the worst list has them all, worst first. */
START_TEST(test_large_step_fails_at_largest_element)
{
	nb_gradcheck_input in = { 1, dim_4, val_exp };
	nb_gradcheck_opts o = { .step = 0.5, .levels = 1, .first_order_only = 1 };
	nb_gradcheck_report r;
	const nb_gradcheck_mismatch *w = r.first.worst;

	ck_assert_int_eq(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_int_eq(r.first.passed, 0);
	ck_assert_uint_eq(r.first.all.checked, 4);
	ck_assert_uint_eq(r.first.all.failed, 4);
	ck_assert_uint_eq(r.first.input[0].failed, 4);
	ck_assert_uint_eq(r.first.n_worst, 4);
	ck_assert_uint_eq(w[0].input, 0);
	ck_assert_uint_eq(w[0].index, 2);
	ck_assert_double_eq_tol(w[0].analytic, exp(2.0), TOL_EXACT);
	ck_assert_double_eq_tol(w[0].numeric, (exp(3.0) - exp(1.0)) / 2.0, TOL_EXACT);
	/* one level: the error estimate is rounding only */
	ck_assert_double_lt(w[0].error, 1e-12);
	ck_assert_double_eq_tol(r.first.all.max_abs_err, (exp(3.0) - exp(1.0)) / 2.0 - exp(2.0),
	                        TOL_EXACT);
	ck_assert_double_eq_tol(r.first.all.max_rel_err, 1.0 - 1.0 / sinh(1.0), 1e-12);
	/* then the others by excess: e^1 sinh(.5)/.5 - e^1, e^.5 ..., e^0 ... */
	ck_assert_uint_eq(w[1].index, 1);
	ck_assert_uint_eq(w[2].index, 3);
	ck_assert_uint_eq(w[3].index, 0);
	ck_assert_double_eq(r.step, 0.5);
	ck_assert_int_eq(r.repeatable, 1);
	/* no op is wrong: the culprit search finds none */
	ck_assert_int_eq(r.culprit, 0);
}
END_TEST

/* Richardson extrapolation over steps h, 2h, 4h removes most of the error a plain central
 * difference at step 0.05 has (4e-4 relative for exp), and says how small the rest is. */
START_TEST(test_richardson_levels_remove_truncation_error)
{
	nb_gradcheck_input in = { 1, dim_4, val_exp };
	nb_gradcheck_opts o = { .step = 0.05, .levels = 1, .first_order_only = 1 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_double_gt(r.first.all.max_rel_err, 1e-4);
	o.levels = 3;
	ck_assert_int_eq(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_int_eq(r.levels, 3);
	ck_assert_double_lt(r.first.all.max_rel_err, 1e-7);
	/* the estimate bounds the error actually made */
	ck_assert_double_le(fabs(r.first.all.worst.numeric - r.first.all.worst.analytic),
	                    r.first.all.worst.error);
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
	nb_gradcheck_opts o = { .first_order_only = 1, .replay = 1 };
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
	ck_assert_uint_eq(r.first.all.checked, 12);
	ck_assert_int_eq(r.second_checked, 0);
	ck_assert_uint_eq(r.second.all.checked, 0);
}
END_TEST

/* The same seed gives the same numbers; another seed another random direction. */
START_TEST(test_seed_determines_the_check)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, dim_23, val_c } };
	nb_gradcheck_opts o = { .mode = NB_GRADCHECK_DIRECTIONS, .seed = 7 };
	nb_gradcheck_report r1, r2, r3;

	nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r1);
	nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r2);
	o.seed = 8;
	nb_gradcheck(tanh_prod, NULL, in, 2, &o, &r3);
	ck_assert_int_eq(r1.passed && r2.passed && r3.passed, 1);
	ck_assert_double_eq(r1.first.all.worst.analytic, r2.first.all.worst.analytic);
	ck_assert_double_eq(r1.first.all.worst.numeric, r2.first.all.worst.numeric);
	ck_assert_double_eq(r1.second.all.worst.analytic, r2.second.all.worst.analytic);
	ck_assert_double_ne(r1.first.all.worst.analytic, r3.first.all.worst.analytic);
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
	assert_error(nb_gradcheck(sum_exp, NULL, in, NB_GRADCHECK_MAX_INPUTS + 1, NULL, &r), &r,
	             NB_EINVAL, "gradcheck: 65 inputs (at most 64)");
	assert_error(nb_gradcheck(sum_exp, NULL, in, 1, &(nb_gradcheck_opts){
	                                   .mask = (const int[]){ 0 } }, &r),
	             &r, NB_EINVAL, "gradcheck: the mask leaves no input to check");
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
	             "gradcheck: step is -0.5 (must be finite and >= 0)");
	o = (nb_gradcheck_opts){ .step = INFINITY };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: step is inf (must be finite and >= 0)");
	o = (nb_gradcheck_opts){ .atol = -1e-3 };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: atol is -0.001 (must be finite and >= 0)");
	o = (nb_gradcheck_opts){ .rtol = NAN };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: rtol is nan (must be finite and >= 0)");
	o = (nb_gradcheck_opts){ .mode = 7 };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: unknown mode 7");
	o = (nb_gradcheck_opts){ .mode = -1 };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: unknown mode -1");
	o = (nb_gradcheck_opts){ .levels = 5 };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: levels is 5 (0..4 allowed, 0: 2)");
	o = (nb_gradcheck_opts){ .levels = -1 };
	assert_error(nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r), &r, NB_EINVAL,
	             "gradcheck: levels is -1 (0..4 allowed, 0: 2)");
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


/* ---- What only evaluating again can see ---------------------------------------------- */

/* sum(x ⊙ c) where c is x's value recorded again as a constant: the true function is
 * sum(x ⊙ x), whose derivative 2x the gradient (x) misses. */
static nb_tensor *graph_break(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	nb_tensor *c = nb_constant(t, 1, (size_t[]){ nb_size(in[0]) }, nb_value(in[0]));

	(void)n;
	(void)ud;
	return nb_sum(t, nb_mul(t, in[0], c));
}

START_TEST(test_graph_break_fails_and_says_where)
{
	static const double x[] = { 1.0, 2.0, 3.0 };
	nb_gradcheck_input in = { 1, dim_3, x };
	nb_gradcheck_report r;
	char buf[8192];

	ck_assert_int_eq(nb_gradcheck(graph_break, NULL, &in, 1, NULL, &r), NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_int_eq(r.first.passed, 0);
	ck_assert_uint_eq(r.first.all.failed, 3);
	ck_assert_uint_eq(r.first.worst[0].index, 2);
	ck_assert_double_eq(r.first.worst[0].analytic, 3.0);
	ck_assert_double_eq_tol(r.first.worst[0].numeric, 6.0, TOL_DIFF);
	ck_assert_int_eq(r.graph_break, 1);
	ck_assert_uint_eq(r.break_node, 0);  /* the expression's first node */
	ck_assert_uint_eq(r.break_input, 0);
	ck_assert_str_eq(r.break_op, "constant (3)");
	ck_assert_int_eq(r.culprit, 0);       /* mul and sum are right */
	print_to(&r, buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, "graph break: node 0 (constant (3)) changes when "
	                                  "input 0 does"));
	ck_assert_ptr_nonnull(strstr(buf, "every op's backward rule agrees with its own kernel"));
}
END_TEST

/* |x0| + x1 written with a C branch on x0's value, at x0 inside the step of 0: the
 * recorded graph is x0 + x1, the function on the other side -x0 + x1. */
static nb_tensor *c_branch(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	nb_tensor *a = in[0];

	(void)n;
	(void)ud;
	if (nb_value(in[0])[0] < 0.0)
		a = nb_neg(t, a);
	return nb_add(t, a, in[1]);
}

START_TEST(test_c_branch_fails_when_evaluated_again)
{
	static const double x0 = 2e-6, x1 = 0.5;
	nb_gradcheck_input in[2] = { { 0, NULL, &x0 }, { 0, NULL, &x1 } };
	nb_gradcheck_report r;
	char buf[8192];

	ck_assert_int_eq(nb_gradcheck(c_branch, NULL, in, 2, NULL, &r), NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_uint_eq(r.first.input[0].failed, 1);
	ck_assert_uint_eq(r.first.input[1].failed, 0);
	ck_assert_int_eq(r.control_flow, 1);
	ck_assert_uint_eq(r.flow_input, 0);
	ck_assert_int_eq(r.graph_break, 0);
	print_to(&r, buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, "control flow: the expression records another graph "
	                                  "when input 0 changes"));
}
END_TEST

/* Replay repeats what was recorded, so it sees neither: both pass, as documented. */
START_TEST(test_replay_is_blind_to_what_left_the_graph)
{
	static const double x[] = { 1.0, 2.0, 3.0 }, x0 = 2e-6, x1 = 0.5;
	nb_gradcheck_input in = { 1, dim_3, x };
	nb_gradcheck_input in2[2] = { { 0, NULL, &x0 }, { 0, NULL, &x1 } };
	nb_gradcheck_opts o = { .replay = 1 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(graph_break, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_int_eq(r.replay, 1);
	ck_assert_double_eq_tol(r.first.input[0].worst.numeric, r.first.input[0].worst.analytic,
	                        TOL_DIFF);
	ck_assert_int_eq(nb_gradcheck(c_branch, NULL, in2, 2, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
}
END_TEST

/* ---- Kinks, non-finite values, masks ------------------------------------------------- */

static nb_tensor *sum_relu(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_relu(t, in[0]));
}

/* sum(relu(x)) at 0 exactly and at 1e-6, inside the step: differences that cross the
 * kink are reported as such, not as failures; the smooth elements are checked. */
START_TEST(test_relu_at_its_kink_is_reported_not_failed)
{
	static const double x[] = { 0.0, 1e-6, 0.75, -1.5 };
	nb_gradcheck_input in = { 1, dim_4, x };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;
	char buf[8192];

	/* analytic step(x): 0 and 1; numeric across the kink about 1/2 and 0.58 */
	ck_assert_int_eq(nb_gradcheck(sum_relu, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_uint_eq(r.first.all.checked, 4);
	ck_assert_uint_eq(r.first.all.failed, 0);
	ck_assert_uint_eq(r.first.all.kinks, 2);
	ck_assert_double_lt(r.first.all.max_abs_err, TOL_DIFF);  /* kinks are not in it */
	print_to(&r, buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, " at a kink"));
}
END_TEST

/* abs inside the step of its kink: a kink, not a failure. At 0 exactly the central
 * difference is 0, as the rule's gradient, so that element simply passes. */
static nb_tensor *sum_abs(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_abs(t, in[0]));
}

START_TEST(test_abs_at_its_kink_is_reported_not_failed)
{
	static const double x[] = { 0.0, -2e-6, 0.75, -1.5 };
	nb_gradcheck_input in = { 1, dim_4, x };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(sum_abs, NULL, &in, 1, NULL, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_uint_eq(r.first.all.kinks, 1);
	ck_assert_uint_eq(r.first.all.failed, 0);
	ck_assert_uint_eq(r.first.all.checked, 4);
}
END_TEST

/* maximum at a tie, and a maximum along an axis at a tie: kinks, not failures. */
static nb_tensor *ties(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_add(t, nb_sum(t, nb_maximum(t, in[0], in[1])), nb_max_axis(t, in[0], 0, 0));
}

START_TEST(test_ties_of_maximum_are_kinks)
{
	static const double a[] = { 1.0, 0.5, 1.0 }, b[] = { 1.0, -2.0, 0.0 };
	nb_gradcheck_input in[2] = { { 1, dim_3, a }, { 1, dim_3, b } };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(ties, NULL, in, 2, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_uint_eq(r.first.all.failed, 0);
	/* a[0] ties with b[0] and with a[2]; a[2] ties with a[0]; b[0] ties with a[0] */
	ck_assert_uint_eq(r.first.input[0].kinks, 2);
	ck_assert_uint_eq(r.first.input[1].kinks, 1);
}
END_TEST

/* The same for a user op with a branch rule: clip to [0, 1] at 1 exactly. A user op
 * without one (cube_wrong) cannot hide behind a kink. */
static nb_tensor *sum_clip(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_mul(t, nb_apply(t, &clip_op, in, 1), in[0]));
}

START_TEST(test_user_op_kink_is_reported_not_failed)
{
	static const double x[] = { 1.0, 0.5, 2.0 };
	nb_gradcheck_input in = { 1, dim_3, x };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(sum_clip, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_uint_eq(r.first.all.kinks, 1);
	ck_assert_uint_eq(r.first.input[0].kinks, 1);
}
END_TEST

static nb_tensor *sum_log(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_log(t, in[0]));
}

/* log at 0: the value is -inf, so its gradient 1/0 and every difference are not finite.
 * Counted and listed, not hidden in a maximum. */
START_TEST(test_nonfinite_values_are_counted_and_listed)
{
	static const double x[] = { 0.0, 1.0, 2.0 };
	nb_gradcheck_input in = { 1, dim_3, x };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;
	char buf[8192];

	ck_assert_int_eq(nb_gradcheck(sum_log, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_uint_eq(r.first.all.nonfinite, 3);
	ck_assert_uint_eq(r.first.all.failed, 3);
	ck_assert_uint_eq(r.first.n_worst, 3);
	ck_assert_uint_eq(r.first.worst[0].index, 0);
	ck_assert(isinf(r.first.worst[0].analytic));
	ck_assert(isnan(r.first.worst[0].numeric));
	ck_assert_double_eq(r.first.worst[1].analytic, 1.0);
	ck_assert(isnan(r.first.worst[1].numeric));
	/* the maxima are those of the finite comparisons: there are none */
	ck_assert_double_eq(r.first.all.max_abs_err, 0.0);
	print_to(&r, buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, "3 non-finite"));
}
END_TEST

/* exp(2 log x) = x^2 for x > 0 and NaN below 0: at x = 1e-9 every central difference
 * reaches below 0, so the differences are one-sided, and right (2x). Near 0 but further
 * than a finer step, log itself is checked by central differences at that step. */
static nb_tensor *square_by_log(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_exp(t, nb_scale(t, nb_log(t, in[0]), 2.0)));
}

START_TEST(test_one_sided_differences_at_the_edge_of_a_domain)
{
	static const double x[] = { 1e-9, 0.5, 2.0 }, y[] = { 3e-6, 0.5, 2.0 };
	nb_gradcheck_input in = { 1, dim_3, x };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(square_by_log, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_uint_eq(r.first.all.one_sided, 1);
	ck_assert_uint_eq(r.first.all.nonfinite, 0);
	in.data = y;
	ck_assert_int_eq(nb_gradcheck(sum_log, NULL, &in, 1, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_uint_eq(r.first.all.one_sided, 0);
}
END_TEST

/* inputs[1] is a constant when masked out: not checked, handed to f as a constant. */
static nb_tensor *masked(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	const char **op = ud;

	(void)n;
	*op = nb_op_name(in[1]);
	return nb_sum(t, nb_mul(t, nb_tanh(t, in[0]), in[1]));
}

START_TEST(test_mask_makes_inputs_constants)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, dim_23, val_c } };
	nb_gradcheck_opts o = { .mask = (const int[]){ 1, 0 } };
	nb_gradcheck_report r;
	const char *op = NULL;

	ck_assert_int_eq(nb_gradcheck(masked, &op, in, 2, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_str_eq(op, "constant");
	ck_assert_int_eq(r.checked[0], 1);
	ck_assert_int_eq(r.checked[1], 0);
	ck_assert_uint_eq(r.first.all.checked, 6);
	ck_assert_uint_eq(r.first.input[1].checked, 0);
	ck_assert_uint_eq(r.second.input[1].checked, 0);
	ck_assert_int_eq(r.independent[1], 0);
}
END_TEST

/* ---- Large inputs, the culprit ---------------------------------------------------------- */

/* sum(cube_wrong(a)) + sum(cube(b)) with 3000 elements each: more than the auto mode
 * checks one by one, so directions first; a fails them and is checked element by
 * element, b passes them and is not. */
static nb_tensor *two_cubes(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_add(t, nb_sum(t, nb_apply(t, &cube_wrong_op, &in[0], 1)),
	              nb_sum(t, nb_apply(t, &cube_op, &in[1], 1)));
}

START_TEST(test_auto_mode_checks_elements_of_failing_inputs_only)
{
	enum { N = 3000 };
	static double a[N], b[N];
	static const size_t d[] = { N };
	nb_gradcheck_input in[2] = { { 1, d, a }, { 1, d, b } };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;
	test_rng g;

	rng_seed(&g, 3);
	rng_fill(&g, a, N, 0.5, 1.5);
	rng_fill(&g, b, N, 0.5, 1.5);
	ck_assert_int_eq(nb_gradcheck(two_cubes, NULL, in, 2, &o, &r), NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_uint_eq(r.first.input[0].checked, 4 + N);
	ck_assert_uint_eq(r.first.input[0].failed, 4 + N);
	ck_assert_uint_eq(r.first.input[1].checked, 4);
	ck_assert_uint_eq(r.first.input[1].failed, 0);
	ck_assert_uint_eq(r.first.n_worst, NB_GRADCHECK_WORST);
	ck_assert_int_eq(r.culprit, 1);
	ck_assert_str_eq(r.culprit_op, "cube_wrong (3000) -> (3000)");
}
END_TEST

/* A wrong rule deep in an expression: the first node whose rule disagrees is named, with
 * its shapes and its own worst mismatch. */
static nb_tensor *deep(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	nb_tensor *z = nb_matmul(t, in[0], in[1]);
	const nb_op_def *op = ud;

	(void)n;
	return nb_sum(t, nb_sigmoid(t, nb_apply(t, op, &z, 1)));
}

START_TEST(test_culprit_is_named)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, (size_t[]){ 3, 2 }, val_c } };
	nb_gradcheck_report r;
	char buf[8192];

	ck_assert_int_eq(nb_gradcheck(deep, (void *)&cube_op, in, 2, NULL, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_int_eq(r.culprit, 0);
	ck_assert_int_eq(nb_gradcheck(deep, (void *)&cube_wrong_op, in, 2, NULL, &r), NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_int_eq(r.culprit, 1);
	ck_assert_uint_eq(r.culprit_node, 1);  /* matmul, cube_wrong, sigmoid, sum */
	ck_assert_str_eq(r.culprit_op, "cube_wrong (2x2) -> (2x2)");
	ck_assert_uint_eq(r.culprit_worst.input, 0);
	ck_assert_double_gt(fabs(r.culprit_worst.analytic - r.culprit_worst.numeric), 1e-3);
	print_to(&r, buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, "culprit: node 1, cube_wrong (2x2) -> (2x2): its "
	                                  "backward rule disagrees"));
}
END_TEST

/* A rule right at first order whose own gradient is wrong: only the second order fails,
 * and the culprit search checks the nodes at second order too. */
START_TEST(test_culprit_at_second_order)
{
	nb_gradcheck_input in[2] = { { 2, dim_23, val_a }, { 2, (size_t[]){ 3, 2 }, val_c } };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(deep, (void *)&cube_frozen_op, in, 2, NULL, &r), NB_OK);
	ck_assert_int_eq(r.first.passed, 1);
	ck_assert_int_eq(r.second.passed, 0);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_int_eq(r.culprit, 1);
	ck_assert_str_eq(r.culprit_op, "cube_frozen (2x2) -> (2x2)");
}
END_TEST

/* A rule that is not linear in the cotangent is no vector-Jacobian product: forward mode
 * (its derivative in the cotangent) disagrees with reverse mode. */
START_TEST(test_forward_reverse_catches_a_rule_not_linear_in_dy)
{
	static const double x[] = { 0.5, -1.0, 2.0 };
	nb_gradcheck_input in = { 1, dim_3, x };
	nb_gradcheck_opts o = { .first_order_only = 1 };
	nb_gradcheck_report r;
	char buf[8192];

	ck_assert_int_eq(nb_gradcheck(apply_unary, (void *)&squared_cotangent_op, &in, 1, &o, &r),
	                 NB_OK);
	ck_assert_int_eq(r.passed, 0);
	ck_assert_int_eq(r.forward_reverse, 0);
	ck_assert_double_ne(r.reverse_dot, r.forward_dot);
	print_to(&r, buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, "fwd vs rev    FAIL"));
}
END_TEST

/* The value may be an input itself: nothing recorded in between, and still checked. */
static nb_tensor *identity(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)t;
	(void)n;
	(void)ud;
	return in[0];
}

START_TEST(test_an_input_as_the_value_passes)
{
	nb_gradcheck_input in[2] = { { 1, dim_3, val_sq }, { 0, NULL, (const double[]){ 2.0 } } };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(identity, NULL, in, 2, NULL, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_uint_eq(r.first.input[0].checked, 3);
	ck_assert_int_eq(r.independent[1], 1);
	ck_assert_int_eq(r.graph_break, 0);
	ck_assert_int_eq(r.control_flow, 0);
}
END_TEST

/* An expression whose value changes shape with its inputs cannot be differenced. */
static nb_tensor *shape_shifter(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_value(in[0])[0] > 1.0 ? nb_sum(t, in[0]) : in[0];
}

START_TEST(test_output_changing_shape_is_an_error)
{
	static const double x[] = { 1.0, 2.0, 3.0 };
	nb_gradcheck_input in = { 1, dim_3, x };
	nb_gradcheck_report r;

	assert_error(nb_gradcheck(shape_shifter, NULL, &in, 1, NULL, &r), &r, NB_ESHAPE,
	             "gradcheck: the expression's value has shape () when input 0 changes, (3) "
	             "at the point checked");
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
	nb_gradcheck_input in2[2] = { { 2, dim_23, val_a }, { 2, dim_23, val_c } };
	nb_gradcheck_opts o = { .step = 0.5 };
	nb_gradcheck_report r;
	char buf[4096];

	nb_gradcheck(sum_exp, NULL, &in, 1, NULL, &r);
	print_to(&r, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "gradcheck: PASS"));
	ck_assert_ptr_null(strstr(buf, "FAIL"));
	ck_assert_ptr_nonnull(strstr(buf, "second order"));

	o.levels = 1;
	nb_gradcheck(sum_exp, NULL, &in, 1, &o, &r);
	print_to(&r, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "gradcheck: FAIL"));
	ck_assert_ptr_nonnull(strstr(buf, "    worst: input 0 element 2: analytic "));
	ck_assert_ptr_nonnull(strstr(buf, "           input 0 element 1: analytic "));
	ck_assert_ptr_nonnull(strstr(buf, "  first order   FAIL  4 checked, 4 failed"));
	ck_assert_ptr_null(strstr(buf, "input 0    "));  /* one input: no line of its own */
	nb_gradcheck(tanh_prod, NULL, in2, 2, &o, &r);
	print_to(&r, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "    input 0    FAIL  6 checked"));
	ck_assert_ptr_nonnull(strstr(buf, "    input 1    FAIL  6 checked"));
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
	TCase *fooled = tcase_create("fooled");

	tcase_add_test(pass, test_layer_passes_elements_mode);
	tcase_add_test(pass, test_layer_passes_direction_mode);
	tcase_add_test(pass, test_nonscalar_output_passes_both_modes);
	tcase_add_test(pass, test_rank0_input_with_broadcasting_passes);
	tcase_add_test(pass, test_unused_input_is_a_warning);
	tcase_add_test(hand, test_sum_squares_report_matches_hand_values);
	tcase_add_test(hand, test_ud_and_n_reach_the_expression);
	tcase_add_test(hand, test_large_step_fails_at_largest_element);
	tcase_add_test(hand, test_richardson_levels_remove_truncation_error);
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
	tcase_add_test(fooled, test_graph_break_fails_and_says_where);
	tcase_add_test(fooled, test_c_branch_fails_when_evaluated_again);
	tcase_add_test(fooled, test_replay_is_blind_to_what_left_the_graph);
	tcase_add_test(fooled, test_relu_at_its_kink_is_reported_not_failed);
	tcase_add_test(fooled, test_user_op_kink_is_reported_not_failed);
	tcase_add_test(fooled, test_abs_at_its_kink_is_reported_not_failed);
	tcase_add_test(fooled, test_ties_of_maximum_are_kinks);
	tcase_add_test(fooled, test_nonfinite_values_are_counted_and_listed);
	tcase_add_test(fooled, test_one_sided_differences_at_the_edge_of_a_domain);
	tcase_add_test(fooled, test_mask_makes_inputs_constants);
	tcase_add_test(fooled, test_auto_mode_checks_elements_of_failing_inputs_only);
	tcase_add_test(fooled, test_culprit_is_named);
	tcase_add_test(fooled, test_culprit_at_second_order);
	tcase_add_test(err, test_output_changing_shape_is_an_error);
	tcase_add_test(pass, test_an_input_as_the_value_passes);
	tcase_add_test(fooled, test_forward_reverse_catches_a_rule_not_linear_in_dy);
	suite_add_tcase(s, pass);
	suite_add_tcase(s, fooled);
	suite_add_tcase(s, hand);
	suite_add_tcase(s, err);
	suite_add_tcase(s, print);
	return s;
}

int main(void)
{
	return run_suite(gradcheck_suite());
}
