/* jacobian.c -- the Jacobian and the Hessian of a small expression, printed.
 *
 * y = tanh(W x) for a 3 x 2 matrix W and x of 2 elements, and the cost c = sum(y ⊙ y) / 2.
 * nb_jacobian() gives dy/dx (3 x 2), nb_hessian() d^2c/dx^2 (2 x 2), and nb_jvp() the
 * directional derivative of y along u, which is J u. After x changes, the same calls find
 * the graphs they recorded the first time: the tape does not grow.
 *
 * Run: ./examples/jacobian
 */
#include <stdio.h>
#include <stdlib.h>

#include "nabla.h"

static void print_matrix(const char *name, const double *m, size_t rows, size_t cols)
{
	printf("%s =\n", name);
	for (size_t r = 0; r < rows; r++) {
		for (size_t c = 0; c < cols; c++)
			printf(" %10.6f", m[r * cols + c]);
		printf("\n");
	}
}

int main(void)
{
	static const double w[6] = { 1.0, -0.5, 0.25, 2.0, -1.5, 0.75 };
	nb_tape *t = nb_tape_new();
	nb_tensor *W, *x, *u, *y, *c, *ju;
	double J[6], H[4];
	size_t size;

	if (!t)
		return EXIT_FAILURE;
	W = nb_constant(t, 2, (size_t[]){ 3, 2 }, w);
	x = nb_variable(t, 2, (size_t[]){ 2, 1 }, (double[]){ 0.5, -0.25 });
	u = nb_constant(t, 2, (size_t[]){ 2, 1 }, (double[]){ 1.0, 0.0 });
	y = nb_tanh(t, nb_matmul(t, W, x));
	c = nb_scale(t, nb_sum(t, nb_mul(t, y, y)), 0.5);
	if (nb_jacobian(t, y, &x, 1, J) != NB_OK || nb_hessian(t, c, &x, 1, H) != NB_OK ||
	    !(ju = nb_jvp(t, y, &x, &u, 1))) {
		fprintf(stderr, "jacobian: %s\n", nb_tape_message(t));
		nb_tape_free(t);
		return EXIT_FAILURE;
	}
	print_matrix("dy/dx", J, 3, 2);
	print_matrix("d2c/dx2", H, 2, 2);
	print_matrix("J u for u = e_1 (the first column of dy/dx)", nb_value(ju), 3, 1);

	size = nb_tape_size(t);
	nb_set(x, (double[]){ -1.0, 2.0 }, 2);
	if (nb_jacobian(t, y, &x, 1, J) != NB_OK || nb_hessian(t, c, &x, 1, H) != NB_OK) {
		fprintf(stderr, "jacobian: %s\n", nb_tape_message(t));
		nb_tape_free(t);
		return EXIT_FAILURE;
	}
	printf("\nat x = (-1, 2), from the same graphs (%zu nodes before, %zu after):\n", size,
	       nb_tape_size(t));
	print_matrix("dy/dx", J, 3, 2);
	print_matrix("d2c/dx2", H, 2, 2);
	nb_tape_free(t);
	return EXIT_SUCCESS;
}
