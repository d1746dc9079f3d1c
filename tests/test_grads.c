/* test_grads.c -- gradients that compose: zero gradients are tensors, nb_gradients()
 * returns handles later sweeps do not touch, structural zeros and ones cost nothing,
 * rules build no gradient nobody asked for; and the optimizer updates. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "helpers.h"

/* ---- Zero gradients ---------------------------------------------------------------- */

/* The Hessian-vector product of a linear function: its gradient does not depend on x, so
 * the second sweep finds no path and hands back a zero tensor, usable in any op. */
START_TEST(test_hvp_of_linear_function_is_zero)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 1, 2, 3 });
	nb_tensor *a = nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 4, 5, 6 });
	nb_tensor *v = nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 1, -1, 2 });
	nb_tensor *g, *h;

	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_mul(t, a, x)), NULL), NB_OK);
	g = nb_grad(x);
	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_mul(t, v, g)), NULL), NB_OK);
	h = nb_grad(x);
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(nb_op_name(h), "fill");
	ck_assert_uint_eq(nb_size(h), 3);
	for (int i = 0; i < 3; i++)
		ck_assert_double_eq(nb_value(h)[i], 0.0);
	/* usable in any op, and 0 ⊙ a is the zero itself: no new node */
	ck_assert_ptr_eq(nb_mul(t, h, a), h);
	ck_assert_double_eq(nb_value(nb_add(t, h, x))[2], 3.0);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* dy/dy is the seed even when y depends on no variable; what y depends on gets zeros. */
START_TEST(test_grad_of_output_is_seed)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *k = nb_constant(t, 0, NULL, (double[]){ 2 });
	nb_tensor *y = nb_exp(t, k), *seed = nb_constant(t, 0, NULL, (double[]){ 3 });

	ck_assert_int_eq(nb_backward(t, y, seed), NB_OK);
	ck_assert_ptr_eq(nb_grad(y), seed);
	ck_assert_double_eq(nb_value(nb_grad(k))[0], 0.0);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_grad_before_any_sweep_is_null)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, NULL);

	ck_assert_ptr_null(nb_grad(x));
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* ---- nb_gradients ------------------------------------------------------------------ */

/* f(x) = x^T A x has Hessian A + A^T: built with nb_gradients twice, row by row. */
START_TEST(test_full_hessian_of_quadratic_form)
{
	static const double A[9] = { 2, -1, 0.5, 3, 4, -2, 0, 1.5, -3 };
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 2, (size_t[]){ 3, 1 }, (double[]){ 0.3, -1.2, 2.0 });
	nb_tensor *a = nb_constant(t, 2, (size_t[]){ 3, 3 }, A);
	nb_tensor *f = nb_sum(t, nb_mul(t, x, nb_matmul(t, a, x)));
	nb_tensor *g;

	ck_assert_int_eq(nb_gradients(t, f, NULL, &x, 1, &g), NB_OK);
	for (size_t i = 0; i < 3; i++) {
		double e[3] = { 0 };
		nb_tensor *row, *gi;

		e[i] = 1.0;
		gi = nb_sum(t, nb_mul(t, g, nb_constant(t, 2, (size_t[]){ 3, 1 }, e)));
		ck_assert_int_eq(nb_gradients(t, gi, NULL, &x, 1, &row), NB_OK);
		for (size_t j = 0; j < 3; j++)
			ck_assert_double_eq_tol(nb_value(row)[j], A[i * 3 + j] + A[j * 3 + i], 1e-15);
	}
	nb_tape_free(t);
}
END_TEST

/* Handles from nb_gradients stay what they were whatever is swept later. */
START_TEST(test_gradients_survive_later_sweeps)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *y = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 3, 5 });
	nb_tensor *xs[2] = { x, y }, *out[2];

	ck_assert_int_eq(nb_gradients(t, nb_sum(t, nb_mul(t, x, y)), NULL, xs, 2, out), NB_OK);
	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_exp(t, x)), NULL), NB_OK);
	ck_assert_double_eq(nb_value(out[0])[1], 5.0);   /* d/dx sum(x ⊙ y) = y */
	ck_assert_double_eq(nb_value(out[1])[0], 1.0);   /* d/dy = x */
	ck_assert_double_eq(nb_value(nb_grad(x))[0], exp(1.0));  /* nb_grad: the last sweep */
	ck_assert_str_eq(nb_op_name(nb_grad(y)), "fill");
	nb_tape_free(t);
}
END_TEST

/* Gradients with respect to an intermediate node and a constant, as torch.autograd.grad
 * takes them; what lies below z is not differentiated. */
START_TEST(test_gradients_of_intermediate_and_constant)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *k = nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 3, 4 });
	nb_tensor *z = nb_exp(t, w);
	nb_tensor *c = nb_sum(t, nb_mul(t, z, k));
	nb_tensor *xs[3] = { z, k, w }, *out[3];

	ck_assert_int_eq(nb_gradients(t, c, NULL, xs, 2, out), NB_OK);
	ck_assert_double_eq(nb_value(out[0])[1], 4.0);
	ck_assert_double_eq(nb_value(out[1])[0], exp(1.0));
	ck_assert_str_eq(nb_op_name(nb_grad(w)), "fill");  /* w was not asked for */
	ck_assert_int_eq(nb_gradients(t, c, NULL, xs, 3, out), NB_OK);
	ck_assert_double_eq(nb_value(out[2])[0], 3.0 * exp(1.0));
	nb_tape_free(t);
}
END_TEST

START_TEST(test_gradients_bad_arguments)
{
	nb_tape *t = nb_tape_new(), *u = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, NULL), *other = nb_variable(u, 0, NULL, NULL);
	nb_tensor *y = nb_exp(t, x), *xs[2] = { x, NULL }, *out[2] = { x, x };
	size_t n = nb_tape_size(t);

	ck_assert_int_eq(nb_gradients(NULL, y, NULL, xs, 1, out), NB_ENULL);
	/* on a tape that holds an error, out is cleared too */
	ck_assert_ptr_null(nb_matmul(t, x, x));
	ck_assert_int_eq(nb_gradients(t, y, NULL, xs, 1, out), NB_ERANK);
	ck_assert_ptr_null(out[0]);
	nb_tape_clear_error(t);
	out[0] = x;
	ck_assert_int_eq(nb_gradients(t, y, NULL, xs, 2, out), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "gradients: xs[1] is NULL");
	ck_assert_ptr_null(out[0]);
	nb_tape_clear_error(t);
	xs[1] = other;
	ck_assert_int_eq(nb_gradients(t, y, NULL, xs, 2, out), NB_ETAPE);
	ck_assert_str_eq(nb_tape_message(t), "gradients: xs[1] belongs to another tape");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_gradients(t, y, NULL, NULL, 1, out), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "gradients: xs is NULL");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_gradients(t, y, NULL, xs, 1, NULL), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "gradients: out is NULL");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_gradients(t, nb_add(t, y, y), x, xs, 1, out), NB_OK);
	ck_assert_uint_gt(nb_tape_size(t), n);
	n = nb_tape_size(t);
	ck_assert_int_eq(nb_gradients(t, nb_fill(t, 1, (size_t[]){ 2 }, 1.0), NULL, xs, 1, out),
	                 NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "gradients: output of shape (2) is not a scalar "
	                 "and no seed was given");
	ck_assert_ptr_null(out[0]);
	ck_assert_uint_eq(nb_tape_size(t), n + 1);  /* the fill, recorded before the call */
	nb_tape_free(t);
	nb_tape_free(u);
}
END_TEST

/* ---- Structural zeros and ones ----------------------------------------------------- */

START_TEST(test_ops_simplify_literal_zeros_and_ones)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_variable(t, 2, (size_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *b = nb_variable(t, 2, (size_t[]){ 3, 2 }, NULL);
	nb_tensor *zero = nb_scalar(t, 0.0), *one = nb_scalar(t, 1.0);
	nb_tensor *z23 = nb_fill(t, 2, (size_t[]){ 2, 3 }, 0.0);
	size_t n = nb_tape_size(t);
	nb_tensor *r;

	ck_assert_ptr_eq(nb_add(t, a, zero), a);
	ck_assert_ptr_eq(nb_add(t, zero, a), a);
	ck_assert_ptr_eq(nb_sub(t, a, zero), a);
	ck_assert_ptr_eq(nb_mul(t, a, one), a);
	ck_assert_ptr_eq(nb_mul(t, one, a), a);
	ck_assert_ptr_eq(nb_div(t, a, one), a);
	ck_assert_ptr_eq(nb_mul(t, a, zero), z23);
	ck_assert_ptr_eq(nb_div(t, zero, a), z23);
	ck_assert_ptr_eq(nb_scale(t, a, 1.0), a);
	ck_assert_ptr_eq(nb_scale(t, a, 0.0), z23);
	ck_assert_ptr_eq(nb_scale(t, z23, 3.0), z23);
	ck_assert_uint_eq(nb_tape_size(t), n);  /* none of these recorded a node */
	r = nb_matmul(t, z23, b);
	ck_assert_str_eq(nb_op_name(r), "fill");
	ck_assert_uint_eq(nb_dim(r, 0), 2);
	ck_assert_uint_eq(nb_dim(r, 1), 2);
	ck_assert_str_eq(nb_op_name(nb_transpose(t, z23)), "fill");
	ck_assert_str_eq(nb_op_name(nb_reshape(t, z23, 1, (size_t[]){ 6 })), "fill");
	ck_assert_str_eq(nb_op_name(nb_sum(t, z23)), "fill");
	/* 0 - a is -a; a literal broadcast is a literal of the larger shape */
	r = nb_sub(t, zero, a);
	ck_assert_double_eq(nb_value(r)[5], -6.0);
	r = nb_add(t, one, z23);
	ck_assert_ptr_eq(r, nb_fill(t, 2, (size_t[]){ 2, 3 }, 1.0));
	r = nb_add(t, b, zero);
	ck_assert_ptr_eq(r, b);
	r = nb_add(t, nb_variable(t, 0, NULL, (double[]){ 7 }), z23);
	ck_assert_str_eq(nb_op_name(r), "broadcast_to");
	ck_assert_double_eq(nb_value(r)[4], 7.0);
	nb_tape_free(t);
}
END_TEST

/* ---- Rules build only what is asked for -------------------------------------------- */

/* y = sum(k + x), k a (3) constant and x a (2x3) variable: the sweep records the seed and
 * its broadcast over (2x3) (sum's rule; a literal 1 of that shape), and nothing for k. */
START_TEST(test_sweep_builds_no_unwanted_gradient)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *k = nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 1, 2, 3 });
	nb_tensor *x = nb_variable(t, 2, (size_t[]){ 2, 3 }, NULL);
	nb_tensor *y = nb_sum(t, nb_add(t, k, x));
	size_t n = nb_tape_size(t);

	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_uint_eq(nb_tape_size(t), n + 2);
	ck_assert_str_eq(nb_op_name(nb_grad(x)), "fill");
	ck_assert_double_eq(nb_value(nb_grad(x))[5], 1.0);
	nb_tape_free(t);
}
END_TEST

/* The second-order sweep of f = sum(x ⊙ x ⊙ c) records exactly the nodes of H v. The
 * first sweep gives g = p + p with p = c ⊙ x (sum's rule broadcasts the seed to a literal
 * 1 of shape (3), which the products then drop). From s = sum(v ⊙ g), the second finds
 * the seed and its broadcast already there, passes v itself to g, and records dp = v + v
 * (p is used twice) and dx = dp ⊙ c: two nodes. */
START_TEST(test_second_order_sweep_node_count)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 1, 2, 3 });
	nb_tensor *c = nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 4, 5, 6 });
	nb_tensor *v = nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 1, -1, 2 });
	nb_tensor *f = nb_sum(t, nb_mul(t, nb_mul(t, x, x), c));
	nb_tensor *g, *s, *h;
	size_t n1, n2;

	ck_assert_int_eq(nb_gradients(t, f, NULL, &x, 1, &g), NB_OK);
	s = nb_sum(t, nb_mul(t, v, g));
	n1 = nb_tape_size(t);
	ck_assert_int_eq(nb_gradients(t, s, NULL, &x, 1, &h), NB_OK);
	n2 = nb_tape_size(t);
	ck_assert_str_eq(nb_op_name(g), "add");
	ck_assert_ptr_eq(nb_input(g, 0), nb_input(g, 1));
	ck_assert_uint_eq(n2 - n1, 2);
	for (int i = 0; i < 3; i++)
		ck_assert_double_eq(nb_value(h)[i], 2.0 * nb_value(c)[i] * nb_value(v)[i]);
	nb_tape_free(t);
}
END_TEST

/* ---- Optimizers -------------------------------------------------------------------- */

/* f = sum(w ⊙ u) with both variables: each one's gradient is the other's memory, so an
 * update must read both before moving either. */
START_TEST(test_sgd_update_reads_every_gradient_first)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *u = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 3, 4 });
	nb_tensor *p[2] = { w, u };
	nb_sgd_opts o = { .eta = 0.5 };

	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_mul(t, w, u)), NULL), NB_OK);
	ck_assert_ptr_eq(nb_grad(w), u);  /* 1 ⊙ u simplified to u itself */
	ck_assert_int_eq(nb_sgd_update(p, NULL, NULL, 2, &o), NB_OK);
	ck_assert_double_eq(nb_value(w)[0], 1.0 - 0.5 * 3.0);
	ck_assert_double_eq(nb_value(w)[1], 2.0 - 0.5 * 4.0);
	ck_assert_double_eq(nb_value(u)[0], 3.0 - 0.5 * 1.0);
	ck_assert_double_eq(nb_value(u)[1], 4.0 - 0.5 * 2.0);
	nb_tape_free(t);
}
END_TEST

/* Momentum and weight decay per parameter, against the formula, over three steps; the
 * gradient is recomputed at each new point because the update marks w changed. */
START_TEST(test_sgd_update_momentum_and_decay)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, -2 });
	nb_tensor *b = nb_variable(t, 0, NULL, (double[]){ 0.5 });
	nb_tensor *p[2] = { w, b };
	nb_tensor *f = nb_add(t, nb_sum(t, nb_mul(t, w, w)), nb_mul(t, b, b));
	double vw[2] = { 0 }, vb[1] = { 0 }, *vel[2] = { vw, vb };
	double ew[2] = { 1, -2 }, eb = 0.5, evw[2] = { 0 }, evb = 0;
	nb_sgd_opts o = { .eta = 0.1, .momentum = 0.9, .decay = (double[]){ 0.01, 0.0 } };

	ck_assert_int_eq(nb_backward(t, f, NULL), NB_OK);
	for (int step = 0; step < 3; step++) {
		ck_assert_int_eq(nb_sgd_update(p, NULL, vel, 2, &o), NB_OK);
		for (int i = 0; i < 2; i++) {
			evw[i] = 0.9 * evw[i] - 0.1 * (2.0 * ew[i] + 0.01 * ew[i]);
			ew[i] += evw[i];
			ck_assert_double_eq_tol(nb_value(w)[i], ew[i], 1e-15);
		}
		evb = 0.9 * evb - 0.1 * (2.0 * eb);
		eb += evb;
		ck_assert_double_eq_tol(nb_value(b)[0], eb, 1e-15);
	}
	nb_tape_free(t);
}
END_TEST

START_TEST(test_adam_update_matches_formula)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, -2 });
	nb_tensor *f = nb_sum(t, nb_mul(t, w, nb_mul(t, w, w)));  /* grad 3 w^2 */
	double m[2] = { 0 }, v[2] = { 0 }, *mm[1] = { m }, *vv[1] = { v };
	double ew[2] = { 1, -2 }, em[2] = { 0 }, ev[2] = { 0 };
	nb_adam_opts o = NB_ADAM_DEFAULTS;

	o.eta = 0.01;
	o.weight_decay = 0.1;
	ck_assert_int_eq(nb_backward(t, f, NULL), NB_OK);
	for (size_t k = 1; k <= 3; k++) {
		ck_assert_int_eq(nb_adam_update(&w, NULL, mm, vv, 1, &o, k), NB_OK);
		for (int i = 0; i < 2; i++) {
			double g = 3.0 * ew[i] * ew[i] + 0.1 * ew[i];

			em[i] = 0.9 * em[i] + 0.1 * g;
			ev[i] = 0.999 * ev[i] + 0.001 * g * g;
			ew[i] -= 0.01 * (em[i] / (1.0 - pow(0.9, (double)k))) /
			         (sqrt(ev[i] / (1.0 - pow(0.999, (double)k))) + 1e-8);
			ck_assert_double_eq_tol(nb_value(w)[i], ew[i], 1e-15);
		}
	}
	nb_tape_free(t);
}
END_TEST

/* A parameter the cost does not depend on has a zero gradient: the update moves it by
 * weight decay alone and records no zero literal, and a refused update records none
 * either. */
START_TEST(test_update_of_unused_parameter_records_nothing)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 0, NULL, (double[]){ 1 });
	nb_tensor *u = nb_variable(t, 0, NULL, (double[]){ 4 });
	nb_tensor *k = nb_constant(t, 0, NULL, (double[]){ 3 });
	nb_tensor *p[2] = { w, u }, *bad[3] = { u, w, k };
	nb_sgd_opts o = { .eta = 0.5, .weight_decay = 0.25 };
	size_t n;

	ck_assert_int_eq(nb_backward(t, nb_mul(t, w, k), NULL), NB_OK);
	n = nb_tape_size(t);
	ck_assert_int_eq(nb_sgd_update(bad, NULL, NULL, 3, &o), NB_EINVAL);
	ck_assert_uint_eq(nb_tape_size(t), n);
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_sgd_update(p, NULL, NULL, 2, &o), NB_OK);
	ck_assert_uint_eq(nb_tape_size(t), n);
	ck_assert_double_eq(nb_value(w)[0], 1.0 - 0.5 * (3.0 + 0.25 * 1.0));
	ck_assert_double_eq(nb_value(u)[0], 4.0 - 0.5 * (0.25 * 4.0));
	nb_tape_free(t);
}
END_TEST

/* Each bad argument is refused with its message, and nothing is updated. */
START_TEST(test_update_errors_change_nothing)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *k = nb_constant(t, 0, NULL, (double[]){ 1 });
	nb_tensor *p[2] = { w, k }, *g1[1] = { k };
	nb_sgd_opts o = { .eta = 0.1 }, bad = { .eta = -1 };
	nb_adam_opts a = NB_ADAM_DEFAULTS;
	double v0[2] = { 0 }, *vel[1] = { v0 };

	ck_assert_int_eq(nb_sgd_update(p, NULL, NULL, 1, &o), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "sgd_update: params[0] has no gradient: call "
	                 "nb_backward() first");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_mul(t, w, w)), NULL), NB_OK);
	ck_assert_int_eq(nb_sgd_update(p, NULL, NULL, 2, &o), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "sgd_update: params[1] is a constant node, not a "
	                 "variable");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_sgd_update(p, g1, NULL, 1, &o), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(t), "sgd_update: gradient of shape () for params[0] of "
	                 "shape (2)");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_sgd_update(p, NULL, NULL, 1, &bad), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "sgd_update: eta must be a finite number > 0, not -1");
	nb_tape_clear_error(t);
	o.momentum = 0.5;
	ck_assert_int_eq(nb_sgd_update(p, NULL, NULL, 1, &o), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "sgd_update: velocity is NULL");
	nb_tape_clear_error(t);
	o.momentum = 1.0;
	ck_assert_int_eq(nb_sgd_update(p, NULL, vel, 1, &o), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "sgd_update: momentum must be in [0, 1), not 1");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_sgd_update(p, NULL, vel, 1, NULL), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "sgd_update: options are NULL");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_adam_update(p, NULL, vel, vel, 1, &a, 0), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "adam_update: step is 0 (the first step is 1)");
	nb_tape_clear_error(t);
	a.beta2 = 1.0;
	ck_assert_int_eq(nb_adam_update(p, NULL, vel, vel, 1, &a, 1), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "adam_update: beta2 must be in [0, 1), not 1");
	nb_tape_clear_error(t);
	a.beta2 = 0.999;
	ck_assert_int_eq(nb_adam_update(p, NULL, vel, NULL, 1, &a, 1), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "adam_update: v is NULL");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_sgd_update(NULL, NULL, NULL, 1, &o), NB_ENULL);
	ck_assert_int_eq(nb_sgd_update(p, NULL, NULL, 0, &o), NB_EINVAL);
	ck_assert_double_eq(nb_value(w)[0], 1.0);
	ck_assert_double_eq(nb_value(w)[1], 2.0);
	ck_assert_double_eq(v0[0], 0.0);
	nb_tape_free(t);
}
END_TEST

static Suite *grads_suite(void)
{
	Suite *s = suite_create("grads");
	TCase *tc = tcase_create("grads");

	tcase_add_test(tc, test_hvp_of_linear_function_is_zero);
	tcase_add_test(tc, test_grad_of_output_is_seed);
	tcase_add_test(tc, test_grad_before_any_sweep_is_null);
	tcase_add_test(tc, test_full_hessian_of_quadratic_form);
	tcase_add_test(tc, test_gradients_survive_later_sweeps);
	tcase_add_test(tc, test_gradients_of_intermediate_and_constant);
	tcase_add_test(tc, test_gradients_bad_arguments);
	tcase_add_test(tc, test_ops_simplify_literal_zeros_and_ones);
	tcase_add_test(tc, test_sweep_builds_no_unwanted_gradient);
	tcase_add_test(tc, test_second_order_sweep_node_count);
	tcase_add_test(tc, test_sgd_update_reads_every_gradient_first);
	tcase_add_test(tc, test_sgd_update_momentum_and_decay);
	tcase_add_test(tc, test_adam_update_matches_formula);
	tcase_add_test(tc, test_update_errors_change_nothing);
	tcase_add_test(tc, test_update_of_unused_parameter_records_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(grads_suite());
}
