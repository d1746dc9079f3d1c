/* bp_equations.c -- the four equations of backpropagation, computed twice.
 *
 * Chapter 2 of Nielsen's "Neural Networks and Deep Learning" derives, for a sigmoid
 * network with the quadratic cost C = 1/(2n) sum_x ||y(x) - a^L(x)||^2, four equations:
 *
 *   BP1  delta^L = (a^L - y) ⊙ sigma'(z^L)                 the error of the output layer
 *   BP2  delta^l = ((w^{l+1})^T delta^{l+1}) ⊙ sigma'(z^l)  the error, one layer down
 *   BP3  dC/db^l = delta^l                                  (summed over the examples)
 *   BP4  dC/dw^l = delta^l (a^{l-1})^T                      (summed over the examples)
 *
 * where z^l = w^l a^{l-1} + b^l, a^l = sigma(z^l) and delta^l = dC/dz^l. For a batch of n
 * examples, one per column, delta^L carries the 1/n of the mean.
 *
 * nabla never sees these equations. We only record the forward computation as ops on a
 * tape; nb_backward() applies each op's own small backward rule, and the equations come
 * out by themselves. This program prints, side by side, the closed form (nb_bp_reference,
 * plain loops) and the autodiff value (nb_grad) of every quantity in BP1-BP4 for a small
 * [3,4,2] network and a batch of 2 examples.
 *
 * Build and run from the top of the tree:  make && ./examples/bp_equations
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "nabla.h"

/* The network: 3 inputs, 4 hidden sigmoid units, 2 outputs. Layer 0 is the input and
 * layer L = 2 the output, as in nabla.h; w[l-1] and b[l-1] belong to layer l. */
#define N_LAYERS 3
#define L (N_LAYERS - 1)
#define BATCH 2

static const size_t sizes[N_LAYERS] = { 3, 4, 2 };

/* Autodiff and the closed form do the same arithmetic in a slightly different order, so
 * they agree to a few units in the last place: far below this bound. */
#define TOLERANCE 1e-12

/* ---- A tiny random number generator, so the output is the same everywhere ---------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64*: a uniform double in [0, 1) from the top 53 bits. */
static double uniform(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 0x2545f4914f6cdd1du) >> 11) * 0x1.0p-53;
}

/* Standard normal by Box-Muller (Nielsen initializes weights and biases this way). */
static double normal(void)
{
	const double two_pi = 6.283185307179586;
	double u = 1.0 - uniform();  /* in (0, 1]: log(u) is finite */

	return sqrt(-2.0 * log(u)) * cos(two_pi * uniform());
}

/* ---- The data: row-major matrices, one example per column ---------------------------- */

static double w1[4 * 3], b1[4], w2[2 * 4], b2[2];
static double x[3 * BATCH], y[2 * BATCH];

static void make_data(void)
{
	for (size_t i = 0; i < sizeof w1 / sizeof w1[0]; i++)
		w1[i] = normal();
	for (size_t i = 0; i < sizeof b1 / sizeof b1[0]; i++)
		b1[i] = normal();
	for (size_t i = 0; i < sizeof w2 / sizeof w2[0]; i++)
		w2[i] = normal();
	for (size_t i = 0; i < sizeof b2 / sizeof b2[0]; i++)
		b2[i] = normal();
	for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
		x[i] = uniform();
	/* One-hot targets: example 0 is of class 1, example 1 of class 0. Element (j, c)
	 * of a 2 x BATCH matrix is at j * BATCH + c. */
	y[1 * BATCH + 0] = 1.0;
	y[0 * BATCH + 1] = 1.0;
}

/* ---- The network as an op graph ----------------------------------------------------- */

/* Handles to the nodes we want to look at afterwards. They are borrowed from the tape:
 * nobody frees a tensor, nb_tape_free() frees them all. Index l - 1 is layer l. */
struct graph {
	nb_tensor *w[L], *b[L], *z[L], *a[L], *cost;
};

/* Record the forward pass. Each call evaluates its op at once and appends a node to the
 * tape; nothing is differentiated yet. */
static void record_network(nb_tape *t, struct graph *g)
{
	const double *wdata[L] = { w1, w2 }, *bdata[L] = { b1, b2 };
	/* Inputs and targets are constants: they get no gradient. */
	nb_tensor *a = nb_constant(t, 2, (size_t[]){ sizes[0], BATCH }, x);
	nb_tensor *target = nb_constant(t, 2, (size_t[]){ sizes[L], BATCH }, y);

	for (int l = 0; l < L; l++) {
		size_t rows = sizes[l + 1], cols = sizes[l];

		/* Parameters are variables: nb_backward() gives them gradients. */
		g->w[l] = nb_variable(t, 2, (size_t[]){ rows, cols }, wdata[l]);
		/* b^l is a column (rows x 1); nb_add broadcasts it over the BATCH columns. */
		g->b[l] = nb_variable(t, 2, (size_t[]){ rows, 1 }, bdata[l]);
		/* z^l = w^l a^{l-1} + b^l and a^l = sigma(z^l). No error check between calls:
		 * errors are sticky, so after a failure every op returns NULL and we look at
		 * nb_tape_status() once, at the end. */
		g->z[l] = nb_add(t, nb_matmul(t, g->w[l], a), g->b[l]);
		g->a[l] = nb_sigmoid(t, g->z[l]);
		a = g->a[l];
	}
	g->cost = nb_quadratic_cost(t, a, target);
}

/* ---- Printing ----------------------------------------------------------------------- */

/* |p - q| / max(|p|, |q|), and 0 when both are 0. */
static double rel_diff(double p, double q)
{
	double m = fmax(fabs(p), fabs(q));

	return m == 0.0 ? 0.0 : fabs(p - q) / m;
}

/* Print one rows x cols quantity, closed form beside autodiff, under a header line; return
 * the largest relative difference, or INFINITY when autodiff has no such gradient. */
static double show(const char *header, const double *closed, const nb_tensor *grad,
                   size_t rows, size_t cols)
{
	const double *ad = nb_value(grad);  /* borrowed from the tape */
	double worst = 0.0;

	printf("%s\n", header);
	if (ad == NULL || nb_size(grad) != rows * cols) {
		printf("    (no autodiff gradient)\n\n");
		return INFINITY;
	}
	printf("    %-8s %23s %23s %10s\n", "entry", "closed form", "autodiff", "rel. diff");
	for (size_t j = 0; j < rows; j++) {
		for (size_t k = 0; k < cols; k++) {
			size_t i = j * cols + k;
			double d = rel_diff(closed[i], ad[i]);
			char entry[48];

			snprintf(entry, sizeof entry, "(%zu,%zu)", j, k);
			printf("    %-8s %23.15e %23.15e %10.2g\n", entry, closed[i], ad[i], d);
			worst = fmax(worst, d);
		}
	}
	printf("\n");
	return worst;
}

/* The closed-form results of nb_bp_reference: caller-allocated, shaped like what they
 * receive. delta[l - 1] is delta^l (sizes[l] x BATCH), dw[l - 1] and db[l - 1] the
 * gradients of w^l and b^l. */
struct closed_form {
	double dw1[4 * 3], db1[4], dw2[2 * 4], db2[2];
	double delta1[4 * BATCH], delta2[2 * BATCH];
	double cost;
};

/* Print BP1-BP4 layer by layer; return the largest relative difference of them all. */
static double show_equations(const struct closed_form *cf, const struct graph *g)
{
	const double *delta[L] = { cf->delta1, cf->delta2 };
	const double *dw[L] = { cf->dw1, cf->dw2 }, *db[L] = { cf->db1, cf->db2 };
	const double cost = nb_value(g->cost)[0];
	double worst = rel_diff(cf->cost, cost);
	char header[128];

	printf("C = %.15e (closed form)   %.15e (autodiff)\n\n", cf->cost, cost);
	/* BP1: the output layer's error is the gradient autodiff gives z^L. */
	snprintf(header, sizeof header,
	         "BP1  delta^%d = dC/dz^%d = (a^%d - y) ⊙ sigma'(z^%d) / n", L, L, L, L);
	worst = fmax(worst, show(header, delta[L - 1], nb_grad(g->z[L - 1]), sizes[L], BATCH));
	/* BP2: the error carried down one layer at a time. */
	for (int l = L - 1; l >= 1; l--) {
		snprintf(header, sizeof header,
		         "BP2  delta^%d = dC/dz^%d = ((w^%d)^T delta^%d) ⊙ sigma'(z^%d)", l, l,
		         l + 1, l + 1, l);
		worst = fmax(worst, show(header, delta[l - 1], nb_grad(g->z[l - 1]), sizes[l],
		                         BATCH));
	}
	/* BP3: biases; nb_grad(b^l) has b's shape, sizes[l] x 1. */
	for (int l = 1; l <= L; l++) {
		snprintf(header, sizeof header, "BP3  dC/db^%d = delta^%d summed over examples",
		         l, l);
		worst = fmax(worst, show(header, db[l - 1], nb_grad(g->b[l - 1]), sizes[l], 1));
	}
	/* BP4: weights. */
	for (int l = 1; l <= L; l++) {
		snprintf(header, sizeof header, "BP4  dC/dw^%d = delta^%d (a^%d)^T", l, l, l - 1);
		worst = fmax(worst, show(header, dw[l - 1], nb_grad(g->w[l - 1]), sizes[l],
		                         sizes[l - 1]));
	}
	return worst;
}

/* ---- Putting it together ------------------------------------------------------------- */

/* The same network for nb_bp_reference: sizes and pointers to the same parameters. */
static int closed_form_gradients(struct closed_form *cf)
{
	const double *w[L] = { w1, w2 }, *b[L] = { b1, b2 };
	const nb_mlp net = { .n_layers = N_LAYERS, .sizes = sizes, .w = w, .b = b };
	char msg[NB_MSG_MAX];
	int status = nb_bp_reference(&net, BATCH, x, y, (double *[]){ cf->dw1, cf->dw2 },
	                             (double *[]){ cf->db1, cf->db2 },
	                             (double *[]){ cf->delta1, cf->delta2 }, &cf->cost, msg);

	if (status != NB_OK)
		fprintf(stderr, "bp_equations: %s\n", msg);
	return status;
}

int main(void)
{
	struct closed_form cf;
	struct graph g;
	nb_tape *t;
	double worst;

	make_data();
	if (closed_form_gradients(&cf) != NB_OK)
		return 1;

	t = nb_tape_new();
	if (t == NULL) {
		fprintf(stderr, "bp_equations: out of memory\n");
		return 1;
	}
	record_network(t, &g);
	/* The reverse sweep: C is a scalar, so no seed is needed (NULL means dC/dC = 1).
	 * It records the gradients as new nodes on the same tape; nb_grad() finds them. */
	if (nb_tape_status(t) != NB_OK || nb_backward(t, g.cost, NULL) != NB_OK) {
		fprintf(stderr, "bp_equations: %s\n", nb_tape_message(t));
		nb_tape_free(t);
		return 1;
	}

	printf("A [%zu,%zu,%zu] sigmoid network, quadratic cost, a batch of n = %d examples.\n",
	       sizes[0], sizes[1], sizes[2], BATCH);
	printf("Closed form: nb_bp_reference().  Autodiff: nb_grad() after nb_backward().\n\n");
	worst = show_equations(&cf, &g);
	nb_tape_free(t);  /* frees every node, gradients included */

	printf("max relative difference: %.3g\n", worst);
	return worst < TOLERANCE ? 0 : 1;
}
