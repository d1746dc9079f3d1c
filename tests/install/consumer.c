/* consumer.c -- a program built against an installed nabla with pkg-config, as a user
 * would build one: it must compile with -std=c11 -pedantic, link, and run. */
#include <stdio.h>
#include <string.h>

#include <nabla.h>

int main(void)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *y = nb_sum(t, nb_mul(t, x, x));

	if (nb_backward(t, y, NULL) != NB_OK || nb_value(nb_grad(x))[1] != 4.0) {
		fprintf(stderr, "consumer: %s\n", nb_tape_message(t));
		return 1;
	}
	printf("nabla %s: d/dx sum(x*x) at (1, 2) = (%g, %g)\n", nb_version(),
	       nb_value(nb_grad(x))[0], nb_value(nb_grad(x))[1]);
	nb_tape_free(t);
	return strcmp(nb_version(), NB_VERSION_STRING) != 0;
}
