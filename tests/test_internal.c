/* test_internal.c -- invariants a backward rule cannot escape, checked through the
 * library's internals (this program links its objects directly): a rule that hands a
 * gradient of the wrong shape is an internal error naming the op, never a silent
 * broadcast, and the failed sweep records nothing. */
#include <check.h>
#include <string.h>

#include "config.h"
#include "helpers.h"
#include "nabla_int.h"

static void copy_forward(nb_tensor *y)
{
	memcpy(y->value, y->in[0]->value, y->size * sizeof *y->value);
}

/* A wrong rule: dx should have x's shape, (2x3); it hands the sum, a scalar. */
static void bad_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_sum(t, dy));
}

static const struct nb_op bad_op = {
	.name = "bad_rule", .arity = 1, .forward = copy_forward, .backward = bad_backward,
};

START_TEST(test_wrong_gradient_shape_is_internal_error)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 2, (size_t[]){ 2, 3 }, NULL);
	nb_tensor *y = nb__record_unary(t, &bad_op, x);
	nb_tensor *c = nb_sum(t, nb_exp(t, y));
	size_t n = nb_tape_size(t);

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(nb_backward(t, c, NULL), NB_EINTERNAL);
	ck_assert_str_eq(nb_tape_message(t), "bad_rule: backward rule handed a gradient of shape "
	                 "() for node 0 (variable (2x3))");
	ck_assert_uint_eq(nb_tape_size(t), n);
	ck_assert_ptr_null(nb_grad(x));
	nb_tape_free(t);
}
END_TEST

/* The same rule, when x is not asked for, builds nothing and so breaks nothing. */
START_TEST(test_pruned_rule_is_not_called)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 2, (size_t[]){ 2, 3 }, NULL);
	nb_tensor *w = nb_variable(t, 0, NULL, (double[]){ 2 });
	nb_tensor *c = nb_sum(t, nb_mul(t, nb__record_unary(t, &bad_op, x), w));
	nb_tensor *g;

	ck_assert_int_eq(nb_gradients(t, c, NULL, &w, 1, &g), NB_OK);
	ck_assert_double_eq(nb_value(g)[0], 0.0);  /* sum of x = 0 */
	nb_tape_free(t);
}
END_TEST

static Suite *internal_suite(void)
{
	Suite *s = suite_create("internal");
	TCase *tc = tcase_create("internal");

	tcase_add_test(tc, test_wrong_gradient_shape_is_internal_error);
	tcase_add_test(tc, test_pruned_rule_is_not_called);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(internal_suite());
}
