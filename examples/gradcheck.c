/* gradcheck.c -- check nabla's gradients of a few expressions against finite differences.
 *
 * nb_gradcheck() records an expression on a fresh tape, differentiates it in reverse mode,
 * and compares the result with central differences (f(x + h) - f(x - h)) / 2h obtained by
 * changing the inputs and replaying the tape. It then does the same one order higher, for
 * a Hessian-vector product. An expression is a callback that records ops on the tape.
 *
 * Run: ./examples/gradcheck (exit status 0 when every check passes).
 */
#include <stdio.h>
#include <stdlib.h>

#include "nabla.h"

/* A sigmoid layer with the quadratic cost: C = ||y - sigmoid(w a + b)||^2 / 2n.
 * inputs: w (3x2), a (2x4: four examples as columns), b (3x1), y (3x4). */
static nb_tensor *sigmoid_layer(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	nb_tensor *z = nb_add(t, nb_matmul(t, in[0], in[1]), in[2]);

	(void)n;
	(void)ud;
	return nb_quadratic_cost(t, nb_sigmoid(t, z), in[3]);
}

/* x / (1 + exp(-y)) with x (2x3) and y (3): y broadcasts over the rows. The output is a
 * matrix, so gradcheck reduces it to sum(r ⊙ f) with a random r. */
static nb_tensor *gated(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	nb_tensor *one = nb_scalar(t, 1.0);

	(void)n;
	(void)ud;
	return nb_div(t, in[0], nb_add(t, one, nb_exp(t, nb_neg(t, in[1]))));
}

/* log(sum(exp(x))), the log-sum-exp of a vector. */
static nb_tensor *logsumexp(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_log(t, nb_sum(t, nb_exp(t, in[0])));
}

/* tanh(x^T x) row sums: transpose, matmul and a reduction along an axis. */
static nb_tensor *gram_rows(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum_axis(t, nb_tanh(t, nb_matmul_t(t, in[0], in[0], NB_TRANS_A)), 1, 0);
}

/* Check one expression, print its report, and return whether it passed. */
static int check(const char *title, nb_expr_fn f, const nb_gradcheck_input *in, size_t n,
                 int mode)
{
	nb_gradcheck_opts opts = { .mode = mode };
	nb_gradcheck_report report;

	printf("== %s\n", title);
	nb_gradcheck(f, NULL, in, n, &opts, &report);
	nb_gradcheck_print(stdout, &report);
	printf("\n");
	return report.passed;
}

int main(void)
{
	static const size_t d_w[] = { 3, 2 }, d_a[] = { 2, 4 }, d_b[] = { 3, 1 },
	                    d_y[] = { 3, 4 }, d_x[] = { 2, 3 }, d_v[] = { 3 }, d_5[] = { 5 };
	static const double w[] = { 0.2, -0.5, 0.8, 0.1, -0.3, 0.7 };
	static const double a[] = { 1.0, 0.5, -0.5, 2.0, -1.0, 0.3, 0.9, -0.2 };
	static const double b[] = { 0.1, -0.2, 0.3 };
	static const double y[] = { 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0 };
	static const double x[] = { 1.5, -2.0, 0.5, 0.25, 3.0, -1.0 };
	static const double v[] = { 0.3, -1.2, 2.0 };
	static const double s[] = { 0.1, 2.0, -1.0, 0.5, 1.2 };
	const nb_gradcheck_input layer_in[] = {
		{ 2, d_w, w }, { 2, d_a, a }, { 2, d_b, b }, { 2, d_y, y },
	};
	const nb_gradcheck_input gated_in[] = { { 2, d_x, x }, { 1, d_v, v } };
	const nb_gradcheck_input lse_in[] = { { 1, d_5, s } };
	const nb_gradcheck_input gram_in[] = { { 2, d_x, x } };
	int ok = 1;

	ok &= check("sigmoid layer, quadratic cost", sigmoid_layer, layer_in, 4,
	            NB_GRADCHECK_ELEMENTS);
	ok &= check("x / (1 + exp(-y)), broadcasting", gated, gated_in, 2,
	            NB_GRADCHECK_ELEMENTS);
	ok &= check("log(sum(exp(x)))", logsumexp, lse_in, 1, NB_GRADCHECK_ELEMENTS);
	ok &= check("row sums of tanh(x^T x), one random direction", gram_rows, gram_in, 1,
	            NB_GRADCHECK_DIRECTIONS);
	printf("%s\n", ok ? "all gradients check" : "some gradients are wrong");
	return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
