/* test_userop.c -- ops a program defines with nb_op_def and nb_apply(): recorded, replayed,
 * hash-consed, differentiated (twice, since rules are made of ops) and checked like
 * nabla's own, and refused with a clear message when the definition or its inputs are
 * wrong. */
#define _POSIX_C_SOURCE 200809L  /* fmemopen */

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "userops.h"

/* ---- Recording and values ------------------------------------------------------------ */

START_TEST(test_cube_value_gradient_and_second_derivative)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 1.0, -2.0, 0.5 });
	nb_tensor *y = nb_apply(t, &cube_op, &x, 1), *g, *h;

	ck_assert_ptr_nonnull(y);
	ck_assert_str_eq(nb_op_name(y), "cube");
	ck_assert_double_eq(nb_value(y)[1], -8.0);
	ck_assert_int_eq(nb_gradients(t, nb_sum(t, y), NULL, &x, 1, &g), NB_OK);
	ck_assert_double_eq(nb_value(g)[0], 3.0);
	ck_assert_double_eq(nb_value(g)[1], 12.0);
	ck_assert_double_eq(nb_value(g)[2], 0.75);
	/* the rule is made of ops: differentiate the gradient again, d2/dx2 x^3 = 6x */
	ck_assert_int_eq(nb_gradients(t, nb_sum(t, g), NULL, &x, 1, &h), NB_OK);
	ck_assert_double_eq(nb_value(h)[0], 6.0);
	ck_assert_double_eq(nb_value(h)[1], -12.0);
	ck_assert_double_eq(nb_value(h)[2], 3.0);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_binary_op_with_a_shape_rule)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *in[2] = {
		nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 2.0, 3.0 }),
		nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 1.0, -1.0, 4.0 }),
	};
	nb_tensor *y = nb_apply(t, &outer_op, in, 2);
	nb_tensor *w = nb_constant(t, 2, (size_t[]){ 2, 3 },
	                           (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *g[2];

	ck_assert_ptr_nonnull(y);
	ck_assert_int_eq(nb_rank(y), 2);
	ck_assert_uint_eq(nb_dim(y, 0), 2);
	ck_assert_uint_eq(nb_dim(y, 1), 3);
	ck_assert_double_eq(nb_value(y)[5], 12.0);
	/* L = sum(w ⊙ a b^T): dL/da_i = sum_j w_ij b_j, dL/db_j = sum_i w_ij a_i */
	ck_assert_int_eq(nb_gradients(t, nb_sum(t, nb_mul(t, w, y)), NULL, in, 2, g), NB_OK);
	ck_assert_double_eq(nb_value(g[0])[0], 1.0 - 2.0 + 12.0);
	ck_assert_double_eq(nb_value(g[0])[1], 4.0 - 5.0 + 24.0);
	ck_assert_double_eq(nb_value(g[1])[0], 2.0 + 12.0);
	ck_assert_double_eq(nb_value(g[1])[2], 6.0 + 18.0);
	nb_tape_free(t);
}
END_TEST

/* Hash-consed like a built-in op, recomputed when a leaf changes, drawn under its name. */
START_TEST(test_user_op_is_hash_consed_replayed_and_drawn)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1.0, 2.0 });
	nb_tensor *y = nb_apply(t, &cube_op, &x, 1);
	size_t n = nb_tape_size(t);
	char buf[4096] = "";
	FILE *f;

	ck_assert_ptr_eq(nb_apply(t, &cube_op, &x, 1), y);
	ck_assert_uint_eq(nb_tape_size(t), n);
	/* another definition with the same callbacks is another op */
	ck_assert_ptr_ne(nb_apply(t, &cube_wrong_op, &x, 1), y);
	ck_assert_int_eq(nb_set(x, (double[]){ 3.0, -1.0 }, 2), NB_OK);
	ck_assert_double_eq(nb_value(y)[0], 27.0);
	ck_assert_int_eq(nb_tape_replay(t), NB_OK);
	ck_assert_double_eq(nb_value(y)[1], -1.0);
	f = fmemopen(buf, sizeof buf - 1, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(nb_tape_write_dot(t, f), NB_OK);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "cube"));
	nb_tape_free(t);
}
END_TEST

/* The checker passes a correct user op at both orders, fails the wrong one and names it. */
START_TEST(test_gradcheck_tells_a_wrong_rule_from_a_right_one)
{
	const double x0[] = { 0.7, -1.3, 2.1 };
	nb_gradcheck_input in = { 1, (size_t[]){ 3 }, x0 };
	nb_gradcheck_report rep;

	ck_assert_int_eq(nb_gradcheck(apply_unary, (void *)&cube_op, &in, 1, NULL, &rep), NB_OK);
	ck_assert_int_eq(rep.passed, 1);
	ck_assert_int_eq(rep.second_checked, 1);
	ck_assert_int_eq(nb_gradcheck(apply_unary, (void *)&cube_wrong_op, &in, 1, NULL, &rep),
	                 NB_OK);
	ck_assert_int_eq(rep.passed, 0);
	ck_assert_int_eq(rep.first.passed, 0);
	ck_assert_uint_eq(rep.first.all.failed, 3);
	ck_assert_int_eq(rep.culprit, 1);
	ck_assert_uint_eq(rep.culprit_node, 0);
	ck_assert_str_eq(rep.culprit_op, "cube_wrong (3) -> (3)");
}
END_TEST

/* ---- Bad definitions and inputs -------------------------------------------------------- */

static void expect_apply_error(const nb_op_def *op, int n, int status, const char *msg)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x[2] = {
		nb_variable(t, 1, (size_t[]){ 2 }, NULL),
		nb_variable(t, 1, (size_t[]){ 3 }, NULL),
	};
	size_t size = nb_tape_size(t);

	ck_assert_ptr_null(nb_apply(t, op, x, n));
	ck_assert_int_eq(nb_tape_status(t), status);
	ck_assert_str_eq(nb_tape_message(t), msg);
	ck_assert_uint_eq(nb_tape_size(t), size);
	nb_tape_free(t);
}

START_TEST(test_bad_definitions)
{
	nb_op_def noname = cube_op, noforward = cube_op, arity0 = cube_op, arity5 = cube_op;

	noname.name = NULL;
	noforward.forward = NULL;
	arity0.arity = 0;
	arity5.arity = 5;
	expect_apply_error(NULL, 1, NB_ENULL, "apply: op is NULL");
	expect_apply_error(&noname, 1, NB_ENULL, "apply: the op's name is NULL");
	expect_apply_error(&noforward, 1, NB_ENULL, "cube: the op has no forward kernel");
	expect_apply_error(&arity0, 1, NB_EINVAL, "cube: arity 0 (1..4 allowed)");
	expect_apply_error(&arity5, 1, NB_EINVAL, "cube: arity 5 (1..4 allowed)");
	expect_apply_error(&cube_op, 2, NB_EINVAL, "cube: 2 inputs given, the op takes 1");
}
END_TEST

START_TEST(test_bad_inputs)
{
	nb_tape *t = nb_tape_new(), *u = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, NULL);
	nb_tensor *other = nb_variable(u, 1, (size_t[]){ 2 }, NULL);
	nb_tensor *in[2] = { x, NULL };

	ck_assert_ptr_null(nb_apply(NULL, &cube_op, &x, 1));
	ck_assert_ptr_null(nb_apply(t, &cube_op, NULL, 1));
	ck_assert_str_eq(nb_tape_message(t), "cube: in is NULL");
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_apply(t, &outer_op, in, 2));
	ck_assert_int_eq(nb_tape_status(t), NB_ENULL);
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_apply(t, &cube_op, &other, 1));
	ck_assert_int_eq(nb_tape_status(t), NB_ETAPE);
	nb_tape_free(t);
	nb_tape_free(u);
}
END_TEST

START_TEST(test_shape_rules_refuse_with_the_ops_name)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *m = nb_variable(t, 2, (size_t[]){ 2, 2 }, NULL);
	nb_tensor *v = nb_variable(t, 1, (size_t[]){ 2 }, NULL);
	nb_tensor *in[2] = { m, v };

	/* the program's rule */
	ck_assert_ptr_null(nb_apply(t, &outer_op, in, 2));
	ck_assert_int_eq(nb_tape_status(t), NB_ERANK);
	ck_assert_str_eq(nb_tape_message(t), "outer: input 0 has rank 2, a vector is needed");
	nb_tape_clear_error(t);
	/* no rule: elementwise, all inputs of one shape */
	ck_assert_ptr_null(nb_apply(t, &hypot_op, in, 2));
	ck_assert_int_eq(nb_tape_status(t), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(t), "hypot: input 1 has shape (2), input 0 has (2x2)");
	nb_tape_clear_error(t);
	/* a rule that fails without a message gets the status's text */
	ck_assert_ptr_null(nb_apply(t, &silent_shape_op, &v, 1));
	ck_assert_int_eq(nb_tape_status(t), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "silent: invalid argument");
	nb_tape_clear_error(t);
	/* a rule that returns OK with a bad shape is caught as any op's shape is */
	ck_assert_ptr_null(nb_apply(t, &zero_dim_op, &v, 1));
	ck_assert_int_eq(nb_tape_status(t), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(t), "zerodim: dim 0 is 0");
	nb_tape_free(t);
}
END_TEST

/* A rule that hands a gradient of the wrong shape is the program's bug, named: NB_EINVAL,
 * not the internal error a built-in rule would raise; the failed sweep records nothing. */
START_TEST(test_bad_backward_rules)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1.0, 2.0 });
	nb_tensor *y = nb_sum(t, nb_apply(t, &bad_grad_shape_op, &x, 1));
	nb_tensor *z = nb_sum(t, nb_apply(t, &failing_rule_op, &x, 1));
	size_t n = nb_tape_size(t);

	ck_assert_int_eq(nb_backward(t, y, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "badshape: backward rule handed a gradient of "
	                 "shape (1) for node 0 (variable (2))");
	ck_assert_uint_eq(nb_tape_size(t), n);
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_backward(t, z, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "failing: backward rule failed: invalid argument");
	ck_assert_uint_eq(nb_tape_size(t), n);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_rule_handing_a_gradient_of_another_tape)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1.0, 2.0 });
	nb_tensor *y = nb_sum(t, nb_apply(t, &foreign_grad_op, &x, 1));

	ck_assert_int_eq(nb_backward(t, y, NULL), NB_ETAPE);
	ck_assert_str_eq(nb_tape_message(t), "foreign: backward rule handed a gradient of "
	                 "another tape for input 0");
	nb_tape_free(t);
	foreign_grad_cleanup();
}
END_TEST

/* Every allocation of a first use fails in turn: an error, nothing recorded, no leak. */
START_TEST(test_out_of_memory_at_first_use)
{
	size_t failures = 0;

	for (size_t k = 1;; k++) {
		count_alloc ca = { .fail_at = k };
		nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &ca);
		nb_tensor *x, *y;
		size_t n;

		if (!t)
			continue;
		x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1.0, 2.0 });
		n = nb_tape_size(t);
		y = x ? nb_apply(t, &cube_op, &x, 1) : NULL;
		if (y) {
			ck_assert_int_eq(nb_tape_status(t), NB_OK);
			nb_tape_free(t);
			ck_assert_uint_eq(ca.bytes_in_use, 0);
			break;
		}
		ck_assert_int_eq(nb_tape_status(t), NB_ENOMEM);
		if (x) {
			ck_assert_uint_eq(nb_tape_size(t), n);
			failures++;
		}
		nb_tape_free(t);
		ck_assert_uint_eq(ca.bytes_in_use, 0);
	}
	ck_assert_uint_ge(failures, 2);  /* the descriptor list, the descriptor, the node */
}
END_TEST

static Suite *userop_suite(void)
{
	Suite *s = suite_create("userop");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_cube_value_gradient_and_second_derivative);
	tcase_add_test(tc, test_binary_op_with_a_shape_rule);
	tcase_add_test(tc, test_user_op_is_hash_consed_replayed_and_drawn);
	tcase_add_test(tc, test_gradcheck_tells_a_wrong_rule_from_a_right_one);
	tcase_add_test(tc, test_bad_definitions);
	tcase_add_test(tc, test_bad_inputs);
	tcase_add_test(tc, test_shape_rules_refuse_with_the_ops_name);
	tcase_add_test(tc, test_bad_backward_rules);
	tcase_add_test(tc, test_rule_handing_a_gradient_of_another_tape);
	tcase_add_test(tc, test_out_of_memory_at_first_use);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(userop_suite());
}
