/* gradcheck.c -- what nb_gradcheck() tells about an expression, right or wrong.
 *
 * An expression is a callback that records ops on a tape. nb_gradcheck() differentiates
 * it in reverse mode and compares the result with finite differences of the expression
 * itself, called again for every difference, at first and second order. The report says
 * per input how close they came, lists the worst mismatches, and when something is wrong
 * says what: here a value that leaves the graph, a relu at its kink (not a failure), and
 * a user-defined op whose backward rule is wrong, which the checker names.
 *
 * Run: ./examples/gradcheck (exit status 0 when every verdict is the expected one).
 */
#include <stdio.h>
#include <stdlib.h>

#include "nabla.h"

/* ---- Expressions ----------------------------------------------------------------------- */

/* A sigmoid layer with the quadratic cost: C = ||y - sigmoid(w a + b)||^2 / 2n.
 * inputs: w (3x2), a (2x4: four examples as columns), b (3x1), y (3x4). */
static nb_tensor *sigmoid_layer(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	nb_tensor *z = nb_add(t, nb_matmul(t, in[0], in[1]), in[2]);

	(void)n;
	(void)ud;
	return nb_quadratic_cost(t, nb_sigmoid(t, z), in[3]);
}

/* A mistake replay cannot see: x's value read in C and recorded again as a constant, so
 * sum(x ⊙ c) is really sum(x ⊙ x), but no gradient flows through c. */
static nb_tensor *graph_break(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	nb_tensor *c = nb_constant(t, 1, (size_t[]){ nb_size(in[0]) }, nb_value(in[0]));

	(void)n;
	(void)ud;
	return nb_sum(t, nb_mul(t, in[0], c));
}

/* sum(relu(x)) with an element at 0, where relu has no derivative. */
static nb_tensor *relu_sum(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_relu(t, in[0]));
}

/* ---- A user-defined op: y = x^3, with a right and a wrong backward rule ----------------- */

static void cube_forward(const nb_op_def *op, nb_tensor *const *in, const double *const *x,
                         const nb_tensor *out, double *y)
{
	(void)op;
	(void)out;
	for (size_t i = 0; i < nb_size(in[0]); i++)
		y[i] = x[0][i] * x[0][i] * x[0][i];
}

/* dx = c x^2 dy, written with nabla's ops so that second derivatives work too; c is 3 for
 * the right rule and 2 for the wrong one. */
static int cube_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                         nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	(void)out;
	grad[0] = nb_mul(t, dy, nb_scale(t, nb_mul(t, in[0], in[0]), *(const double *)op->ud));
	return nb_tape_status(t);
}

static const double three = 3.0, two = 2.0;
static const nb_op_def cube = {
	.name = "cube", .arity = 1, .forward = cube_forward, .backward = cube_backward,
	.ud = (void *)&three,
};
static const nb_op_def cube_wrong = {
	.name = "cube_wrong", .arity = 1, .forward = cube_forward, .backward = cube_backward,
	.ud = (void *)&two,
};

/* sum(tanh(op(x))) for the op given as ud. */
static nb_tensor *tanh_of_op(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	return nb_sum(t, nb_tanh(t, nb_apply(t, ud, in, 1)));
}

/* ---- Checking ---------------------------------------------------------------------------- */

/* Check one expression, print its report, and return whether the verdict is the one
 * expected. */
static int check(const char *title, nb_expr_fn f, const void *ud, const nb_gradcheck_input *in,
                 size_t n, const nb_gradcheck_opts *opts, int expect_pass)
{
	nb_gradcheck_report report;

	printf("== %s (expected: %s)\n", title, expect_pass ? "PASS" : "FAIL");
	nb_gradcheck(f, (void *)ud, in, n, opts, &report);
	nb_gradcheck_print(stdout, &report);
	printf("\n");
	return report.status == NB_OK && report.passed == expect_pass;
}

int main(void)
{
	static const size_t d_w[] = { 3, 2 }, d_a[] = { 2, 4 }, d_b[] = { 3, 1 },
	                    d_y[] = { 3, 4 }, d_3[] = { 3 }, d_4[] = { 4 };
	static const double w[] = { 0.2, -0.5, 0.8, 0.1, -0.3, 0.7 };
	static const double a[] = { 1.0, 0.5, -0.5, 2.0, -1.0, 0.3, 0.9, -0.2 };
	static const double b[] = { 0.1, -0.2, 0.3 };
	static const double y[] = { 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0 };
	static const double x[] = { 1.0, 2.0, 3.0 };
	static const double r[] = { 0.0, 1.5, -0.5, 2.0 };
	static const double u[] = { 0.4, -0.7, 0.9 };
	const nb_gradcheck_input layer_in[] = {
		{ 2, d_w, w }, { 2, d_a, a }, { 2, d_b, b }, { 2, d_y, y },
	};
	const nb_gradcheck_input x_in[] = { { 1, d_3, x } }, r_in[] = { { 1, d_4, r } },
	                         u_in[] = { { 1, d_3, u } };
	/* the data a and the targets y are constants: only w and b are checked */
	const nb_gradcheck_opts params_only = { .mask = (const int[]){ 1, 0, 1, 0 } };
	const nb_gradcheck_opts replay = { .replay = 1 };
	int ok = 1;

	ok &= check("sigmoid layer, quadratic cost, w and b checked", sigmoid_layer, NULL,
	            layer_in, 4, &params_only, 1);
	ok &= check("sum(x * constant(value of x)): a graph break", graph_break, NULL, x_in, 1,
	            NULL, 0);
	ok &= check("the same by replay, which cannot see it", graph_break, NULL, x_in, 1,
	            &replay, 1);
	ok &= check("sum(relu(x)) with x[0] = 0, a kink", relu_sum, NULL, r_in, 1, NULL, 1);
	ok &= check("sum(tanh(cube(x))), a user-defined op", tanh_of_op, &cube, u_in, 1, NULL, 1);
	ok &= check("sum(tanh(cube_wrong(x))), a wrong backward rule", tanh_of_op, &cube_wrong,
	            u_in, 1, NULL, 0);
	printf("%s\n", ok ? "every verdict as expected" : "some verdict is not the expected one");
	return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
