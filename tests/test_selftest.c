/* test_selftest.c -- nb_selftest(): nabla's own ops pass it, every op of lib/ops.def is
 * swept, and a program's ops are caught for each kind of mistake it looks for: a wrong
 * rule, a rule that is wrong only at second order, a rule not linear in the cotangent, a
 * NaN turned into a number, a NaN gradient where the value is finite. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "userops.h"

/* The number of built-in ops, counted from the list that defines them. */
enum {
#define NB_OP(name) BUILTIN_##name,
#include "../lib/ops/ops.def"
#undef NB_OP
	N_BUILTIN
};

static const size_t dim_3[] = { 3 };
static const double x3[] = { 0.7, -1.3, 2.1 };
static const nb_gradcheck_input in3[] = { { 1, dim_3, x3 } };

/* Run the self-test on one user op; return the report. */
static nb_selftest_report run_one(const nb_op_def *op, const nb_gradcheck_input *in)
{
	nb_selftest_op ops[1] = { { op, in } };
	nb_selftest_report r;

	ck_assert_int_eq(nb_selftest(ops, 1, NULL, &r), NB_OK);
	return r;
}

static void expect_failure(const nb_op_def *op, const char *prefix)
{
	nb_selftest_report r = run_one(op, in3);

	ck_assert_int_eq(r.passed, 0);
	ck_assert_uint_ge(r.failures, 1);
	ck_assert_msg(strncmp(r.first_failure, prefix, strlen(prefix)) == 0,
	              "first failure \"%s\" does not start with \"%s\"", r.first_failure, prefix);
}

START_TEST(test_builtin_ops_pass)
{
	nb_selftest_report r;

	ck_assert_int_eq(nb_selftest(NULL, 0, NULL, &r), NB_OK);
	ck_assert_msg(r.passed, "self-test failed: %s", r.first_failure);
	ck_assert_uint_eq(r.failures, 0);
	ck_assert_str_eq(r.first_failure, "");
	ck_assert_uint_eq(r.ops, N_BUILTIN - 2);  /* constant and variable compute nothing */
	ck_assert_uint_ge(r.cases, r.ops);
	ck_assert_uint_eq(r.forward_reverse, r.cases);
	ck_assert_uint_gt(r.comparisons, r.cases);
	/* 18 unary and 8 binary elementwise ops and reductions, 6 edge values in each operand */
	ck_assert_uint_eq(r.edges, (18 + 8 * 2) * 6);
}
END_TEST

START_TEST(test_correct_user_ops_pass)
{
	const size_t d2[] = { 2 };
	const nb_gradcheck_input outer_in[] = { { 1, d2, (double[]){ 0.5, -1.5 } },
		                                { 1, dim_3, (double[]){ 1.0, 0.25, -2.0 } } };
	const nb_gradcheck_input hypot_in[] = { { 1, dim_3, x3 },
		                                { 1, dim_3, (double[]){ 0.4, 0.9, -0.3 } } };
	nb_selftest_op ops[] = { { &cube_op, in3 }, { &outer_op, outer_in },
		                 { &hypot_op, hypot_in } };
	nb_selftest_report base, r;

	ck_assert_int_eq(nb_selftest(NULL, 0, NULL, &base), NB_OK);
	ck_assert_int_eq(nb_selftest(ops, 3, NULL, &r), NB_OK);
	ck_assert_msg(r.passed, "self-test failed: %s", r.first_failure);
	ck_assert_uint_eq(r.ops, base.ops + 3);
	ck_assert_uint_eq(r.cases, base.cases + 3);
	ck_assert_uint_eq(r.forward_reverse, base.forward_reverse + 3);
	/* cube (1 operand) and hypot (2) are elementwise; outer has a shape rule */
	ck_assert_uint_eq(r.edges, base.edges + (1 + 2) * 6);
}
END_TEST

START_TEST(test_wrong_rule_fails)
{
	expect_failure(&cube_wrong_op, "cube_wrong: first-order gradient check failed at input 0");
}
END_TEST

START_TEST(test_rule_wrong_at_second_order_fails)
{
	expect_failure(&cube_frozen_op, "cube_frozen: second-order gradient check failed");
}
END_TEST

START_TEST(test_rule_not_linear_in_the_cotangent_fails)
{
	nb_selftest_report r = run_one(&squared_cotangent_op, in3);

	ck_assert_int_eq(r.passed, 0);
	/* the gradient check fails first; forward against reverse fails too */
	ck_assert_uint_ge(r.failures, 2);
}
END_TEST

START_TEST(test_laundered_nan_fails)
{
	expect_failure(&nan_free_op, "nan_free: operand 0 NaN gives 0, not NaN");
}
END_TEST

START_TEST(test_nan_gradient_at_a_finite_value_fails)
{
	expect_failure(&x_over_x_op, "x_over_x: operand 0 at 0: finite value 0, NaN gradient");
}
END_TEST

/* With a stream, one line per check, failures marked. */
START_TEST(test_log_lists_every_check)
{
	nb_selftest_op ops[] = { { &cube_wrong_op, in3 } };
	nb_selftest_report r;
	char buf[1 << 16];
	FILE *f = tmpfile();
	size_t len, lines = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(nb_selftest(ops, 1, f, &r), NB_OK);
	rewind(f);
	len = fread(buf, 1, sizeof buf - 1, f);
	buf[len] = '\0';
	fclose(f);
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	ck_assert_uint_eq(lines, r.cases + r.forward_reverse + r.edges);
	ck_assert_ptr_nonnull(strstr(buf, "ok   add: gradient check, first and second order\n"));
	ck_assert_ptr_nonnull(strstr(buf, "ok   matmul: forward mode against reverse mode\n"));
	ck_assert_ptr_nonnull(strstr(buf, "FAIL cube_wrong: first-order gradient check failed"));
}
END_TEST

START_TEST(test_bad_arguments)
{
	nb_op_def arity0 = cube_op;
	nb_selftest_op null_op[] = { { NULL, in3 } }, null_in[] = { { &cube_op, NULL } };
	nb_selftest_op bad_arity[] = { { &arity0, in3 } };
	nb_selftest_report r;

	arity0.arity = 0;
	ck_assert_int_eq(nb_selftest(NULL, 0, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_selftest(NULL, 1, NULL, &r), NB_ENULL);
	ck_assert_str_eq(r.first_failure, "selftest: ops is NULL");
	ck_assert_int_eq(nb_selftest(null_op, 1, NULL, &r), NB_ENULL);
	ck_assert_str_eq(r.first_failure, "selftest: ops[0] has a NULL op");
	ck_assert_int_eq(nb_selftest(null_in, 1, NULL, &r), NB_ENULL);
	ck_assert_str_eq(r.first_failure, "selftest: ops[0] has a NULL inputs");
	ck_assert_int_eq(nb_selftest(bad_arity, 1, NULL, &r), NB_EINVAL);
	ck_assert_str_eq(r.first_failure, "selftest: ops[0] (cube) has arity 0");
	ck_assert_int_eq(r.passed, 0);
}
END_TEST

static Suite *selftest_suite(void)
{
	Suite *s = suite_create("selftest");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_builtin_ops_pass);
	tcase_add_test(tc, test_correct_user_ops_pass);
	tcase_add_test(tc, test_wrong_rule_fails);
	tcase_add_test(tc, test_rule_wrong_at_second_order_fails);
	tcase_add_test(tc, test_rule_not_linear_in_the_cotangent_fails);
	tcase_add_test(tc, test_laundered_nan_fails);
	tcase_add_test(tc, test_nan_gradient_at_a_finite_value_fails);
	tcase_add_test(tc, test_log_lists_every_check);
	tcase_add_test(tc, test_bad_arguments);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(selftest_suite());
}
