/* tutorial.c -- the program of docs/backprop.md: Nielsen's network as an op graph.
 *
 * Builds the [784, 30, 10] sigmoid network with the quadratic cost of chapters 1 and 2 of
 * Michael Nielsen's "Neural Networks and Deep Learning" from leaves and ops, lets
 * nb_backward() record its gradients, and prints them next to the closed-form equations
 * BP1-BP4 (nb_bp_reference) for a mini-batch of 10 bundled digits. Then it takes one step
 * of gradient descent and replays the same tape on the next mini-batch.
 *
 * Run: ./examples/tutorial [--data DIR] [--dot FILE]
 *      --data DIR   an MNIST directory (default: the bundled data/mnist-10k): 28 x 28
 *                   images, at least 20 of them
 *      --dot FILE   also write the tape as Graphviz DOT (dot -Tsvg FILE -o graph.svg)
 * Exit status 0 when autodiff and the closed form agree to TOLERANCE.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla_nn.h"

/* The build sets this to the source tree's data/mnist-10k. */
#ifndef NABLA_DATA_DIR
#define NABLA_DATA_DIR "data/mnist-10k"
#endif

/* Autodiff and the closed form do the same arithmetic in a different order: they differ
 * by rounding only, far below this bound (relative to each gradient's largest entry). */
#define TOLERANCE 1e-12

/* ---- Step 1: the parameters ---------------------------------------------------------- */

enum { IN = 784, HID = 30, OUT = 10, BATCH = 10 };

/* Weights w^l (rows: units of layer l, columns: units of layer l-1) and biases b^l,
 * row-major, as Nielsen's network.py stores them. */
static double w1[HID * IN], b1[HID], w2[OUT * HID], b2[OUT];

/* xorshift64* and Box-Muller: Nielsen's standard normal initialisation, the same numbers
 * on every machine. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static double uniform(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 0x2545f4914f6cdd1du) >> 11) * 0x1.0p-53;
}

static void fill_normal(double *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = sqrt(-2.0 * log(1.0 - uniform())) * cos(6.283185307179586 * uniform());
}

/* ---- Step 2: the forward pass as an op graph ------------------------------------------ */

/* Handles to the nodes; the tape owns them all (nobody frees a tensor). */
struct graph {
	nb_tensor *x, *y, *w1, *b1, *z1, *a1, *w2, *b2, *z2, *a2, *cost;
};

/* x is the mini-batch as the data set stores it, one image per row (BATCH x IN); y the
 * targets one example per column (OUT x BATCH), Nielsen's matrix form. */
static void record_forward(nb_tape *t, struct graph *g, const double *x, const double *y)
{
	g->x = nb_constant(t, 2, (size_t[]){ BATCH, IN }, x);
	g->y = nb_constant(t, 2, (size_t[]){ OUT, BATCH }, y);

	/* z1 = w1 x^T + b1: nb_matmul_t reads x transposed in place; nb_add broadcasts the
	 * (HID x 1) bias over the BATCH columns. */
	g->w1 = nb_variable(t, 2, (size_t[]){ HID, IN }, w1);
	g->b1 = nb_variable(t, 2, (size_t[]){ HID, 1 }, b1);
	g->z1 = nb_add(t, nb_matmul_t(t, g->w1, g->x, NB_TRANS_B), g->b1);
	g->a1 = nb_sigmoid(t, g->z1);

	/* z2 = w2 a1 + b2 */
	g->w2 = nb_variable(t, 2, (size_t[]){ OUT, HID }, w2);
	g->b2 = nb_variable(t, 2, (size_t[]){ OUT, 1 }, b2);
	g->z2 = nb_add(t, nb_matmul(t, g->w2, g->a1), g->b2);
	g->a2 = nb_sigmoid(t, g->z2);

	/* C = 1/(2n) sum ||y - a2||^2 over the n = BATCH columns */
	g->cost = nb_quadratic_cost(t, g->a2, g->y);
}

/* Names for the DOT picture; the gradient of a named node x is drawn as dC/dx. */
static void name_nodes(const struct graph *g)
{
	nb_tensor *const node[] = { g->x, g->y, g->w1, g->b1, g->z1, g->a1,
	                            g->w2, g->b2, g->z2, g->a2, g->cost };
	const char *const name[] = { "x", "y", "w1", "b1", "z1", "a1",
	                             "w2", "b2", "z2", "a2", "C" };

	for (size_t i = 0; i < sizeof node / sizeof node[0]; i++)
		nb_set_name(node[i], name[i]);
}

/* ---- The data: mini-batch k of the bundled digits ------------------------------------ */

/* rows (n x k, row-major) into cols (k x n): one example per column. */
static void to_columns(const double *rows, size_t n, size_t k, double *cols)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < k; j++)
			cols[j * n + i] = rows[i * k + j];
}

/* Examples k*BATCH .. k*BATCH + BATCH - 1: x as rows (borrowed from ds), y as columns,
 * and x as columns too for nb_bp_reference, which takes Nielsen's matrix form. */
struct batch {
	const double *x;
	double y[OUT * BATCH], x_cols[IN * BATCH];
};

static void take_batch(const nb_dataset *ds, size_t k, struct batch *b)
{
	b->x = ds->x + k * BATCH * IN;
	to_columns(ds->y + k * BATCH * OUT, BATCH, OUT, b->y);
	to_columns(b->x, BATCH, IN, b->x_cols);
}

/* ---- Step 4: the closed form, side by side -------------------------------------------- */

/* max_i |ad_i - ref_i| / max_i |ref_i|: the difference relative to the largest entry, so
 * that entries which cancel to nearly 0 do not blow it up. Also the largest entry. */
static double max_rel_diff(const double *ad, const double *ref, size_t n, size_t *largest)
{
	double diff = 0.0, scale = 0.0;

	*largest = 0;
	for (size_t i = 0; i < n; i++) {
		diff = fmax(diff, fabs(ad[i] - ref[i]));
		if (fabs(ref[i]) > scale) {
			scale = fabs(ref[i]);
			*largest = i;
		}
	}
	return scale > 0.0 ? diff / scale : diff;
}

/* One line: the gradient node, its largest entry by autodiff and by the closed form, and
 * the max relative difference (INFINITY when autodiff recorded no gradient). */
static double show(const char *eq, const char *what, const nb_tensor *grad, const double *ref,
                   size_t cols)
{
	char shape[NB_MSG_MAX], node[64], entry[32];
	size_t n = nb_size(grad), i;
	double d;

	if (grad == NULL) {
		printf("  %s  %-7s (no gradient)\n", eq, what);
		return INFINITY;
	}
	d = max_rel_diff(nb_value(grad), ref, n, &i);
	snprintf(node, sizeof node, "%s %s", nb_op_name(grad), nb_shape_str(grad, shape));
	snprintf(entry, sizeof entry, "(%zu,%zu)", i / cols, i % cols);
	printf("  %s  %-7s %-18s %-9s %22.15e %22.15e %9.2g\n", eq, what, node, entry,
	       nb_value(grad)[i], ref[i], d);
	return d;
}

/* The closed-form results, shaped as nb_bp_reference writes them. */
struct closed_form {
	double dw1[HID * IN], db1[HID], dw2[OUT * HID], db2[OUT];
	double delta1[HID * BATCH], delta2[OUT * BATCH], cost;
};

static int closed_form(const struct batch *b, struct closed_form *cf)
{
	static const size_t sizes[] = { IN, HID, OUT };
	const double *w[] = { w1, w2 }, *bias[] = { b1, b2 };
	const nb_mlp net = { .n_layers = 3, .sizes = sizes, .w = w, .b = bias };
	char msg[NB_MSG_MAX];

	if (nb_bp_reference(&net, BATCH, b->x_cols, b->y, (double *[]){ cf->dw1, cf->dw2 },
	                    (double *[]){ cf->db1, cf->db2 },
	                    (double *[]){ cf->delta1, cf->delta2 }, &cf->cost, msg) != NB_OK) {
		fprintf(stderr, "tutorial: %s\n", msg);
		return -1;
	}
	return 0;
}

/* Print BP1-BP4 for the tape's current mini-batch; return the largest difference. */
static double compare(const struct graph *g, const struct batch *b, size_t k)
{
	static struct closed_form cf;  /* 190 KB: not on the stack */
	double worst;

	if (closed_form(b, &cf) != 0)
		return INFINITY;
	printf("Mini-batch %zu (examples %zu-%zu): C = %.15e autodiff, %.15e closed form\n",
	       k + 1, k * BATCH, k * BATCH + BATCH - 1, nb_value(g->cost)[0], cf.cost);
	printf("       %-7s %-18s %-9s %22s %22s %9s\n", "grad", "node", "entry", "autodiff",
	       "nb_bp_reference", "rel. diff");
	worst = fabs(nb_value(g->cost)[0] - cf.cost) / cf.cost;
	worst = fmax(worst, show("BP1", "dC/dz2", nb_grad(g->z2), cf.delta2, BATCH));
	worst = fmax(worst, show("BP2", "dC/dz1", nb_grad(g->z1), cf.delta1, BATCH));
	worst = fmax(worst, show("BP3", "dC/db2", nb_grad(g->b2), cf.db2, 1));
	worst = fmax(worst, show("BP3", "dC/db1", nb_grad(g->b1), cf.db1, 1));
	worst = fmax(worst, show("BP4", "dC/dw2", nb_grad(g->w2), cf.dw2, HID));
	worst = fmax(worst, show("BP4", "dC/dw1", nb_grad(g->w1), cf.dw1, IN));
	printf("\n");
	return worst;
}

/* ---- Step 5: a step of gradient descent, and the next mini-batch ---------------------- */

/* p <- p - eta dC/dp, on our copy of a parameter. */
static void descend(double *p, const nb_tensor *grad, double eta)
{
	const double *g = nb_value(grad);

	for (size_t i = 0; i < nb_size(grad); i++)
		p[i] -= eta * g[i];
}

/* Nielsen's update with eta = 3, then new values for every leaf and one replay: forward
 * values and gradients alike are recomputed in place, nothing is recorded again. An
 * error of nb_set() stays on the tape, and nb_tape_replay() returns it. */
static int next_batch(nb_tape *t, const struct graph *g, const struct batch *b)
{
	const double eta = 3.0;

	descend(w1, nb_grad(g->w1), eta);
	descend(b1, nb_grad(g->b1), eta);
	descend(w2, nb_grad(g->w2), eta);
	descend(b2, nb_grad(g->b2), eta);
	nb_set(g->w1, w1, HID * IN);
	nb_set(g->b1, b1, HID);
	nb_set(g->w2, w2, OUT * HID);
	nb_set(g->b2, b2, OUT);
	nb_set(g->x, b->x, BATCH * IN);
	nb_set(g->y, b->y, OUT * BATCH);
	return nb_tape_replay(t);
}

/* ---- Putting it together -------------------------------------------------------------- */

static int write_dot(const nb_tape *t, const char *path)
{
	FILE *f = fopen(path, "w");
	int status = f ? nb_tape_write_dot(t, f) : NB_EIO;

	if (f && fclose(f) != 0)
		status = NB_EIO;
	if (status != NB_OK)
		fprintf(stderr, "tutorial: cannot write %s\n", path);
	return status;
}

static double tape_error(const nb_tape *t)
{
	fprintf(stderr, "tutorial: %s\n", nb_tape_message(t));
	return INFINITY;
}

/* Steps 3 to 5 on the empty tape t: the largest difference seen, INFINITY on an error. */
static double run(nb_tape *t, const nb_dataset *ds, const char *dot)
{
	static struct batch batch;  /* 63 KB of columns: not on the stack */
	struct graph g;
	double worst;

	take_batch(ds, 0, &batch);
	record_forward(t, &g, batch.x, batch.y);
	name_nodes(&g);
	/* Step 3: the reverse sweep records the gradients as nodes. Errors are sticky, so
	 * one check here covers every call above. */
	if (nb_backward(t, g.cost, NULL) != NB_OK)
		return tape_error(t);
	printf("Nielsen's network [%d, %d, %d], sigmoid, quadratic cost: %zu nodes on the "
	       "tape\n\n", IN, HID, OUT, nb_tape_size(t));
	if (dot && write_dot(t, dot) != NB_OK)
		return INFINITY;

	worst = compare(&g, &batch, 0);
	take_batch(ds, 1, &batch);
	if (next_batch(t, &g, &batch) != NB_OK)
		return tape_error(t);
	worst = fmax(worst, compare(&g, &batch, 1));
	printf("max relative difference: %.3g (%zu nodes: the replay recorded none)\n", worst,
	       nb_tape_size(t));
	return worst;
}

/* The network takes 28 x 28 images (IN pixels) of 10 classes, and the program two
 * mini-batches of them: another data set would be read past its end. */
static int usable(const nb_dataset *ds, const char *dir)
{
	if (ds->rows != 28 || ds->cols != 28 || ds->classes != OUT) {
		fprintf(stderr, "tutorial: the images of %s are %zu x %zu; this network takes "
		        "28 x 28\n", dir, ds->rows, ds->cols);
		return 0;
	}
	if (ds->n < 2 * BATCH) {
		fprintf(stderr, "tutorial: %s has %zu training images; this program takes two "
		        "mini-batches of %d\n", dir, ds->n, BATCH);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	const char *dir = NABLA_DATA_DIR, *dot = NULL;
	char msg[NB_MSG_MAX];
	nb_dataset ds;
	nb_tape *t;
	double worst;

	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--data") == 0) {
			dir = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--dot") == 0) {
			dot = argv[++i];
		} else {
			fprintf(stderr, "usage: tutorial [--data DIR] [--dot FILE]\n");
			return 2;
		}
	}
	if (nb_dataset_load_dir(dir, "train", &ds, msg) != NB_OK) {
		fprintf(stderr, "tutorial: %s\n", msg);
		return 1;
	}
	if (!usable(&ds, dir)) {
		nb_dataset_free(&ds);
		return 1;
	}
	fill_normal(w1, HID * IN);
	fill_normal(b1, HID);
	fill_normal(w2, OUT * HID);
	fill_normal(b2, OUT);
	t = nb_tape_new();
	worst = run(t, &ds, dot);
	nb_tape_free(t);  /* frees every node, gradients included */
	nb_dataset_free(&ds);
	return worst < TOLERANCE ? 0 : 1;
}
