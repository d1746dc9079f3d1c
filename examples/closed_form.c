/* closed_form.c -- chapter 3's networks, differentiated twice.
 *
 * Chapter 3 of Nielsen's "Neural Networks and Deep Learning" changes the network of
 * chapter 2 in ways that change BP1 and add a term to BP4, and leaves the rest alone:
 *
 *   sigmoid output, cross-entropy cost    delta^L = (a^L - y) / n            (eq. 66)
 *   softmax output, log-likelihood cost   delta^L = (a^L - y) / n            (eq. 84)
 *   softmax output, quadratic cost        delta^L_j = a_j (g_j - sum_k a_k g_k),
 *                                         g = (a^L - y) / n: softmax's Jacobian
 *   tanh or ReLU units                    BP2 with tanh' = 1 - a^2, relu' = step(z)
 *   L2 regularisation                     C += lambda/(2n) sum w^2, so
 *                                         dC/dw += (lambda/n) w, dC/db unchanged (87-89)
 *
 * For a few of these networks this program records the forward computation as ops on a
 * tape, lets nb_backward() differentiate it, computes the same gradients with the closed
 * form (nb_bp_reference_opts, plain loops), and prints a few of them side by side: for
 * each layer, the largest entry of delta^l = dC/dz^l, dC/db^l and dC/dw^l. Each
 * combination ends with the largest relative difference over every entry of every
 * gradient and the cost.
 *
 * Build and run from the top of the tree:  make && ./examples/closed_form
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla.h"

/* Autodiff and the closed form do the same arithmetic in a slightly different order, so
 * they agree to a few units in the last place: far below this bound. */
#define TOLERANCE 1e-12

#define MAX_LAYERS 4
#define MAX_W (MAX_LAYERS - 1)

/* One network (n_layers sizes, input first), a batch of n examples, and the choices, as
 * the closed form takes them. */
struct combo {
	const char *title;
	size_t n_layers, sizes[MAX_LAYERS], n;
	nb_bp_opts opts;
};

/* An activation for each layer, the output layer's last. */
static const int relu_tanh_softmax[] = { NB_RELU, NB_TANH, NB_SOFTMAX };

static const struct combo combos[] = {
	{ "tanh hidden layer, softmax output, log-likelihood cost, lambda = 0.5, examples as rows",
	  3, { 4, 6, 3 }, 5,
	  { .hidden = NB_TANH, .output = NB_SOFTMAX, .cost = NB_CROSS_ENTROPY, .lambda = 0.5,
	    .rows = 1 } },
	{ "ReLU hidden layer, sigmoid output, cross-entropy cost, examples as columns",
	  3, { 4, 6, 3 }, 5, { .hidden = NB_RELU, .output = NB_SIGMOID, .cost = NB_CROSS_ENTROPY } },
	{ "ReLU, then tanh, then a softmax output, quadratic cost, lambda = 0.1, examples as "
	  "columns",
	  4, { 5, 4, 3, 2 }, 4,
	  { .activations = relu_tanh_softmax, .cost = NB_QUADRATIC, .lambda = 0.1 } },
};

/* The activation of layer l + 1, from the list or from hidden and output. */
static int activation_of(const struct combo *c, size_t l)
{
	if (c->opts.activations != NULL)
		return c->opts.activations[l];
	return l + 2 == c->n_layers ? c->opts.output : c->opts.hidden;
}

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

/* ---- One network: parameters, data, both sets of results --------------------------- */

/* Index l of the arrays belongs to layer l + 1, as in nabla.h. */
struct run {
	const struct combo *c;
	size_t L;
	double *w[MAX_W], *b[MAX_W];
	double *x_rows;          /* n x sizes[0]: the inputs one example per row */
	double *x, *y;           /* inputs and one-hot targets, laid out as opts.rows says */
	double *dw[MAX_W], *db[MAX_W], *delta[MAX_W], cost;  /* the closed form */
	nb_tape *t;
	nb_tensor *tw[MAX_W], *tb[MAX_W], *tz[MAX_W], *tc;
};

static double *doubles(size_t count)
{
	double *p = calloc(count, sizeof *p);

	if (p == NULL) {
		fprintf(stderr, "closed_form: out of memory\n");
		exit(1);
	}
	return p;
}

/* Element (i, j) of a matrix of examples: unit i of example j, in either layout. */
static size_t at(int rows, size_t units, size_t n, size_t i, size_t j)
{
	return rows ? j * units + i : i * n + j;
}

/* Standard normal parameters, inputs uniform in [0, 1), one-hot targets. */
static void make_run(struct run *r, const struct combo *c)
{
	size_t n = c->n, in = c->sizes[0], out = c->sizes[c->n_layers - 1];

	memset(r, 0, sizeof *r);
	r->c = c;
	r->L = c->n_layers - 1;
	for (size_t l = 0; l < r->L; l++) {
		size_t rows = c->sizes[l + 1], cols = c->sizes[l];

		r->w[l] = doubles(rows * cols);
		r->b[l] = doubles(rows);
		r->dw[l] = doubles(rows * cols);
		r->db[l] = doubles(rows);
		r->delta[l] = doubles(rows * n);
		for (size_t i = 0; i < rows * cols; i++)
			r->w[l][i] = normal();
		for (size_t i = 0; i < rows; i++)
			r->b[l][i] = normal();
	}
	r->x_rows = doubles(n * in);
	r->x = doubles(in * n);
	r->y = doubles(out * n);
	for (size_t j = 0; j < n; j++) {
		for (size_t i = 0; i < in; i++) {
			r->x_rows[j * in + i] = uniform();
			r->x[at(c->opts.rows, in, n, i, j)] = r->x_rows[j * in + i];
		}
		r->y[at(c->opts.rows, out, n, j % out, j)] = 1.0;
	}
}

static void free_run(struct run *r)
{
	nb_tape_free(r->t);  /* every node, gradients included */
	for (size_t l = 0; l < r->L; l++) {
		free(r->w[l]);
		free(r->b[l]);
		free(r->dw[l]);
		free(r->db[l]);
		free(r->delta[l]);
	}
	free(r->x_rows);
	free(r->x);
	free(r->y);
}

/* ---- The network as an op graph ----------------------------------------------------- */

static nb_tensor *activation(nb_tape *t, nb_tensor *z, int act, int axis)
{
	switch (act) {
	case NB_TANH:
		return nb_tanh(t, z);
	case NB_RELU:
		return nb_relu(t, z);
	case NB_SOFTMAX:
		return nb_softmax(t, z, axis);  /* along the units of each example */
	default:
		return nb_sigmoid(t, z);
	}
}

/* The cost ops take one example per column (zL, aL, y are given so) and divide by n.
 * The cross-entropy costs take z^L, from which they compute stably. */
static nb_tensor *cost(const struct run *r, nb_tensor *zL, nb_tensor *aL, nb_tensor *y)
{
	const nb_bp_opts *o = &r->c->opts;
	nb_tape *t = r->t;
	nb_tensor *c, *squares = NULL;

	if (o->cost == NB_QUADRATIC)
		c = nb_quadratic_cost(t, aL, y);
	else if (activation_of(r->c, r->L - 1) == NB_SOFTMAX)
		c = nb_softmax_cross_entropy(t, zL, y);
	else
		c = nb_sigmoid_cross_entropy(t, zL, y);
	if (o->lambda == 0.0)
		return c;
	/* L2: lambda/(2n) times the sum of every weight squared; no biases. */
	for (size_t l = 0; l < r->L; l++) {
		nb_tensor *s = nb_sum(t, nb_mul(t, r->tw[l], r->tw[l]));

		squares = squares ? nb_add(t, squares, s) : s;
	}
	return nb_add(t, c, nb_scale(t, squares, o->lambda / (2.0 * (double)r->c->n)));
}

/* Record the forward pass and the cost. With examples as columns z^l = w^l a^{l-1} + b^l,
 * the first layer reading the inputs as rows (w^1 x^T, as nb_net and the closed form do);
 * with examples as rows z^l = a^{l-1} (w^l)^T + b^l. nb_add broadcasts b^l over the
 * examples. Errors are sticky: one check at the end covers every call. */
static int record_graph(struct run *r)
{
	const struct combo *c = r->c;
	int rows = c->opts.rows;
	size_t n = c->n, out = c->sizes[r->L];
	nb_tensor *a, *y, *z = NULL;
	nb_tape *t = r->t = nb_tape_new();

	if (t == NULL)
		return -1;
	a = nb_constant(t, 2, (size_t[]){ n, c->sizes[0] }, r->x_rows);
	y = nb_constant(t, 2, rows ? (size_t[]){ n, out } : (size_t[]){ out, n }, r->y);
	for (size_t l = 0; l < r->L; l++) {
		size_t units = c->sizes[l + 1], inputs = c->sizes[l];

		r->tw[l] = nb_variable(t, 2, (size_t[]){ units, inputs }, r->w[l]);
		r->tb[l] = nb_variable(t, 2, rows ? (size_t[]){ 1, units } : (size_t[]){ units, 1 },
		                       r->b[l]);
		if (rows)
			z = nb_matmul_t(t, a, r->tw[l], NB_TRANS_B);
		else
			z = l == 0 ? nb_matmul_t(t, r->tw[l], a, NB_TRANS_B) : nb_matmul(t, r->tw[l], a);
		r->tz[l] = z = nb_add(t, z, r->tb[l]);
		a = activation(t, z, activation_of(c, l), rows ? 1 : 0);
	}
	if (rows)
		r->tc = cost(r, nb_transpose(t, z), nb_transpose(t, a), nb_transpose(t, y));
	else
		r->tc = cost(r, z, a, y);
	if (nb_tape_status(t) != NB_OK || nb_backward(t, r->tc, NULL) != NB_OK) {
		fprintf(stderr, "closed_form: %s\n", nb_tape_message(t));
		return -1;
	}
	return 0;
}

/* The closed form of the same network. */
static int closed_form(struct run *r)
{
	const struct combo *c = r->c;
	nb_mlp net = { .n_layers = c->n_layers, .sizes = c->sizes,
	               .w = (const double *const *)r->w, .b = (const double *const *)r->b };
	char msg[NB_MSG_MAX];

	if (nb_bp_reference_opts(&net, c->n, r->x, r->y, &c->opts, r->dw, r->db, r->delta,
	                         &r->cost, msg) != NB_OK) {
		fprintf(stderr, "closed_form: %s\n", msg);
		return -1;
	}
	return 0;
}

/* ---- Printing ----------------------------------------------------------------------- */

/* |p - q| / max(|p|, |q|), and 0 when both are 0. */
static double rel_diff(double p, double q)
{
	double m = fmax(fabs(p), fabs(q));

	return m == 0.0 ? 0.0 : fabs(p - q) / m;
}

/* Print the largest entry of one rows x cols quantity, closed form beside autodiff;
 * return the largest relative difference over all its entries (INFINITY when autodiff
 * has no such gradient). */
static double show(const char *name, size_t layer, const double *closed, const nb_tensor *grad,
                   size_t rows, size_t cols)
{
	const double *ad = nb_value(grad);  /* borrowed from the tape */
	double worst = 0.0;
	size_t top = 0;
	char label[64], entry[96];

	if (ad == NULL || nb_size(grad) != rows * cols)
		return INFINITY;
	for (size_t i = 0; i < rows * cols; i++) {
		worst = fmax(worst, rel_diff(closed[i], ad[i]));
		if (fabs(closed[i]) > fabs(closed[top]))
			top = i;
	}
	snprintf(label, sizeof label, "%s^%zu", name, layer);
	snprintf(entry, sizeof entry, "(%zu,%zu) of %zux%zu", top / cols, top % cols, rows, cols);
	printf("  %-9s %-16s %23.15e %23.15e %9.2g\n", label, entry, closed[top], ad[top],
	       rel_diff(closed[top], ad[top]));
	return worst;
}

/* One combination: both computations, a few entries, the largest difference. */
static double compare(const struct combo *c)
{
	struct run r;
	double worst = INFINITY;

	make_run(&r, c);
	if (closed_form(&r) == 0 && record_graph(&r) == 0) {
		const double ad_cost = nb_value(r.tc)[0];
		int rows = c->opts.rows;

		printf("%s\n", c->title);
		printf("  [");
		for (size_t l = 0; l < c->n_layers; l++)
			printf("%s%zu", l ? ", " : "", c->sizes[l]);
		printf("] network, n = %zu: C = %.15e closed form, %.15e autodiff\n", c->n, r.cost,
		       ad_cost);
		printf("  %-9s %-16s %23s %23s %9s\n", "gradient", "largest entry", "closed form",
		       "autodiff", "rel. diff");
		worst = rel_diff(r.cost, ad_cost);
		for (size_t l = r.L; l >= 1; l--) {
			size_t units = c->sizes[l], inputs = c->sizes[l - 1];

			/* delta^l = dC/dz^l has the layout of the examples; db^l b's shape. */
			worst = fmax(worst, show("delta", l, r.delta[l - 1], nb_grad(r.tz[l - 1]),
			                         rows ? c->n : units, rows ? units : c->n));
			worst = fmax(worst, show("dC/db", l, r.db[l - 1], nb_grad(r.tb[l - 1]),
			                         rows ? 1 : units, rows ? units : 1));
			worst = fmax(worst, show("dC/dw", l, r.dw[l - 1], nb_grad(r.tw[l - 1]), units,
			                         inputs));
		}
		printf("max relative difference: %.3g\n\n", worst);
	}
	free_run(&r);
	return worst;
}

int main(void)
{
	double worst = 0.0;

	printf("Autodiff (nb_backward through the ops) beside the closed form "
	       "(nb_bp_reference_opts).\n\n");
	for (size_t i = 0; i < sizeof combos / sizeof combos[0]; i++)
		worst = fmax(worst, compare(&combos[i]));
	return worst < TOLERANCE ? 0 : 1;
}
