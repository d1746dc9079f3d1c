/* bp_reference.c -- gradients of a fully connected network by the four backpropagation
 * equations BP1-BP4 (Nielsen, "Neural Networks and Deep Learning", ch. 2), with plain loops
 * and no tape: the closed form the autodiff engine is tested against. nb_bp_reference() is
 * chapter 2's network (sigmoid units, the quadratic cost); nb_bp_reference_opts() adds the
 * choices of chapter 3: the cross-entropy cost, a softmax output layer with the
 * log-likelihood cost, tanh and ReLU units, L2 regularisation, and examples as rows.
 * Equation numbers (63), (66), ... are those of chapter 3 of the online book.
 *
 * Layers are numbered as in nabla.h: layer 0 is the input, layer L = n_layers - 1 the
 * output; w[l-1], b[l-1] map layer l-1 to layer l. Matrices are row-major. A layer of the
 * batch has one example per column, element (j, c) at j * n + c, as in Nielsen's matrix
 * form; or, with examples as rows, one per row, element (j, c) at c * m + j. The equations
 * are the same in both, written for rows with the products the other way round:
 *   z^l = a^{l-1} (w^l)^T + b^l,  delta^l = (delta^{l+1} w^{l+1}) ⊙ f'(z^l),
 *   dC/dw^l = (delta^l)^T a^{l-1}.
 * Each product is the library's matrix kernel called as the op graph of that layout calls
 * it, so that the forward pass is the graph's bit for bit (see product()). */

#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "nabla_int.h"

/* Scratch space: activations a^l and errors delta^l = dC/dz^l for l = 1..L, z^L, and x
 * transposed, in one block. z^l of the hidden layers is not kept: each f'(z^l) is derived
 * from a^l (see derivative()). */
struct bp_work {
	bool rows;        /* one example per row */
	const double *xr; /* a^0 with one example per row: the caller's x, or xt */
	double *xt;       /* x transposed, when it comes one example per column */
	double *zL;       /* z^L, which the cross-entropy costs take */
	double *scratch;  /* the matrix kernel's work space */
	double **a;       /* a[1..L] point into block; a[0] is unused (a^0 is xr) */
	double **delta;   /* delta[1..L] point into block; delta[0] is unused */
	double *block;
	size_t n_scratch, n_ptr, n_block;  /* elements of each allocation, to give them back */
	nb_alloc_fn alloc;                 /* the network's allocator, or malloc's */
	void *ud;
};

/* A layer of the batch: m units over n examples, in either layout. */
struct dims {
	size_t m, n;
	bool rows;
};

/* Where element (j, c), unit j of example c, lies. */
static size_t at(struct dims d, size_t j, size_t c)
{
	return d.rows ? c * d.m + j : j * d.n + c;
}

static const char *const act_names[] = { "sigmoid", "tanh", "relu", "softmax" };

/* Check the network: its fields, the layer count, every size, the batch size. */
static int check_net(const nb_mlp *net, size_t n, char *msg)
{
	if (net == NULL)
		return nb__msg_fail(msg, NB_ENULL, "bp_reference: net is NULL");
	if (net->n_layers < 2)
		return nb__msg_fail(msg, NB_EINVAL, "bp_reference: need at least 2 layers, got %zu",
		               net->n_layers);
	if (net->sizes == NULL)
		return nb__msg_fail(msg, NB_ENULL, "bp_reference: net->sizes is NULL");
	for (size_t l = 0; l < net->n_layers; l++) {
		if (net->sizes[l] == 0)
			return nb__msg_fail(msg, NB_EINVAL, "bp_reference: layer %zu has size 0", l);
	}
	if (n == 0)
		return nb__msg_fail(msg, NB_EINVAL, "bp_reference: batch size n is 0");
	if (net->w == NULL)
		return nb__msg_fail(msg, NB_ENULL, "bp_reference: net->w is NULL");
	if (net->b == NULL)
		return nb__msg_fail(msg, NB_ENULL, "bp_reference: net->b is NULL");
	for (size_t l = 0; l + 1 < net->n_layers; l++) {
		if (net->w[l] == NULL)
			return nb__msg_fail(msg, NB_ENULL, "bp_reference: w[%zu] is NULL", l);
		if (net->b[l] == NULL)
			return nb__msg_fail(msg, NB_ENULL, "bp_reference: b[%zu] is NULL", l);
	}
	return NB_OK;
}

/* Check the data and the output arrays (entries of delta may be NULL: skipped). */
static int check_io(size_t n_layers, const double *x, const double *y, double *const *dw,
                    double *const *db, char *msg)
{
	if (x == NULL)
		return nb__msg_fail(msg, NB_ENULL, "bp_reference: x is NULL");
	if (y == NULL)
		return nb__msg_fail(msg, NB_ENULL, "bp_reference: y is NULL");
	if (dw == NULL)
		return nb__msg_fail(msg, NB_ENULL, "bp_reference: dw is NULL");
	if (db == NULL)
		return nb__msg_fail(msg, NB_ENULL, "bp_reference: db is NULL");
	for (size_t l = 0; l + 1 < n_layers; l++) {
		if (dw[l] == NULL)
			return nb__msg_fail(msg, NB_ENULL, "bp_reference: dw[%zu] is NULL", l);
		if (db[l] == NULL)
			return nb__msg_fail(msg, NB_ENULL, "bp_reference: db[%zu] is NULL", l);
	}
	return NB_OK;
}

/* ---- Options ------------------------------------------------------------------------ */

/* The activation of layer l (1..L): its entry of opts->activations, or hidden / output. */
static int layer_act(const nb_bp_opts *o, size_t L, size_t l)
{
	if (o->activations != NULL)
		return o->activations[l - 1];
	return l == L ? o->output : o->hidden;
}

/* A hidden layer's activation: softmax couples the units of a layer, which BP2's
 * elementwise f'(z^l) cannot express, so only the output layer may have it. what names
 * the field in messages. */
static int check_hidden(int act, const char *what, char *msg)
{
	if (act == NB_SOFTMAX)
		return nb__msg_fail(msg, NB_EINVAL, "bp_reference: %s is softmax, which is for the "
		                "output layer only (hidden layers: sigmoid, tanh or relu)", what);
	if (act != NB_SIGMOID && act != NB_TANH && act != NB_RELU)
		return nb__msg_fail(msg, NB_EINVAL, "bp_reference: %s is %d, not sigmoid, tanh or "
		                "relu", what, act);
	return NB_OK;
}

static int check_output(int act, const char *what, char *msg)
{
	if (act < NB_SIGMOID || act > NB_SOFTMAX)
		return nb__msg_fail(msg, NB_EINVAL, "bp_reference: %s is %d, not sigmoid, tanh, "
		                "relu or softmax", what, act);
	return NB_OK;
}

/* Every layer's activation, from the list or from the two fields. hidden is checked even
 * in a network without hidden layers: a value outside the enum is a mistake either way. */
static int check_acts(const nb_bp_opts *o, size_t L, char *msg)
{
	char what[64];
	int status = NB_OK;

	if (o->activations == NULL) {
		status = check_hidden(o->hidden, "opts->hidden", msg);
		return status == NB_OK ? check_output(o->output, "opts->output", msg) : status;
	}
	for (size_t l = 1; l <= L && status == NB_OK; l++) {
		snprintf(what, sizeof what, "opts->activations[%zu]", l - 1);
		status = l < L ? check_hidden(o->activations[l - 1], what, msg)
		               : check_output(o->activations[l - 1], what, msg);
	}
	return status;
}

/* The activations, the cost and whether they go together (the cross-entropy costs are
 * those of a sigmoid or a softmax output, as nb_net's), and lambda. */
static int check_opts(const nb_bp_opts *o, size_t L, char *msg)
{
	int status = check_acts(o, L, msg);
	int out = layer_act(o, L, L);

	if (status != NB_OK)
		return status;
	if (o->cost != NB_QUADRATIC && o->cost != NB_CROSS_ENTROPY)
		return nb__msg_fail(msg, NB_EINVAL, "bp_reference: opts->cost is %d, not quadratic "
		                "or cross-entropy", o->cost);
	if (o->cost == NB_CROSS_ENTROPY && out != NB_SIGMOID && out != NB_SOFTMAX)
		return nb__msg_fail(msg, NB_EINVAL, "bp_reference: opts->cost is cross-entropy, "
		                "which needs a sigmoid or softmax output layer, not %s",
		                act_names[out]);
	/* Written so that NaN fails too. */
	if (!(o->lambda >= 0.0) || isinf(o->lambda))
		return nb__msg_fail(msg, NB_EINVAL, "bp_reference: opts->lambda is %g, not a finite "
		                "number >= 0", o->lambda);
	return NB_OK;
}

/* ---- Work space --------------------------------------------------------------------- */

/* n doubles (or pointers: elem bytes each) from the network's allocator, or NULL. */
static void *work_take(const struct bp_work *wk, size_t n, size_t elem)
{
	return wk->alloc(wk->ud, NULL, 0, n * elem);
}

static void work_free(struct bp_work *wk)
{
	if (wk->scratch)
		wk->alloc(wk->ud, wk->scratch, wk->n_scratch * sizeof *wk->scratch, 0);
	if (wk->a)
		wk->alloc(wk->ud, wk->a, wk->n_ptr * sizeof *wk->a, 0);
	if (wk->delta)
		wk->alloc(wk->ud, wk->delta, wk->n_ptr * sizeof *wk->delta, 0);
	if (wk->block)
		wk->alloc(wk->ud, wk->block, wk->n_block * sizeof *wk->block, 0);
}

/* The largest work space the matrix kernel asks for in backprop_batch(): for the forward products
 * and BP4's (BP2's never need any). */
static size_t scratch_size(const nb_mlp *net, size_t n, bool rows)
{
	size_t most = 0;

	for (size_t l = 1; l < net->n_layers; l++) {
		size_t m = net->sizes[l], k = net->sizes[l - 1];
		size_t f = rows ? nb__gemm_work(false, true, n, m, k)
		                : nb__gemm_work(false, l == 1, m, n, k);
		size_t g = rows ? nb__gemm_work(true, false, m, k, n)
		                : nb__gemm_work(false, l != 1, m, k, n);

		most = f > most ? f : most;
		most = g > most ? g : most;
	}
	return most;
}

/* *total += s * n, unless the sum would pass limit: then false. */
static bool add_size(size_t *total, size_t s, size_t n, size_t limit)
{
	if (s > limit / n || s * n > limit - *total)
		return false;
	*total += s * n;
	return true;
}

/* Point the work space's a^l, delta^l (l = 1..L) and z^L into block, and x where the
 * first product reads it: one example per row, as data sets hold it and nb_net feeds it
 * (so both compute with the same kernels), which for examples as columns takes a copy. */
static void work_layout(const nb_mlp *net, size_t n, size_t total, const double *x,
                        struct bp_work *wk)
{
	size_t L = net->n_layers - 1, in = net->sizes[0], off = 0;

	wk->a[0] = NULL;
	wk->delta[0] = NULL;
	for (size_t l = 1; l <= L; l++) {
		wk->a[l] = wk->block + off;
		wk->delta[l] = wk->block + total + off;
		off += net->sizes[l] * n;
	}
	wk->zL = wk->block + 2 * total;
	if (wk->rows) {
		wk->xr = x;
		return;
	}
	wk->xt = wk->zL + net->sizes[L] * n;
	for (size_t i = 0; i < in; i++)
		for (size_t c = 0; c < n; c++)
			wk->xt[c * in + i] = x[i * n + c];
	wk->xr = wk->xt;
}

/* Allocate the work space (2 sizes[l] n doubles each layer, sizes[L] n for z^L, and
 * sizes[0] n for x transposed when examples are columns) and lay x out. On failure frees
 * what it got and reports NB_ENOMEM, overflow included. */
static int work_alloc(const nb_mlp *net, size_t n, const double *x, struct bp_work *wk,
                      char *msg)
{
	const size_t limit = SIZE_MAX / 2 / sizeof(double);
	size_t L = net->n_layers - 1, total = 0, all;
	bool fits = true;

	/* a^l and delta^l take 2 total: at most limit, then the rest fits or not. */
	for (size_t l = 1; l <= L && fits; l++)
		fits = add_size(&total, net->sizes[l], n, limit / 2);
	all = 2 * total;
	fits = fits && add_size(&all, net->sizes[L], n, limit) &&
	       (wk->rows || add_size(&all, net->sizes[0], n, limit));
	if (!fits)
		return nb__msg_fail(msg, NB_ENOMEM, "bp_reference: out of memory");
	wk->alloc = net->alloc ? net->alloc : nb_default_alloc;
	wk->ud = net->alloc_ud;
	wk->n_scratch = scratch_size(net, n, wk->rows) + 1;
	wk->n_ptr = L + 1;
	wk->n_block = all;
	wk->scratch = work_take(wk, wk->n_scratch, sizeof *wk->scratch);
	wk->a = work_take(wk, wk->n_ptr, sizeof *wk->a);
	wk->delta = work_take(wk, wk->n_ptr, sizeof *wk->delta);
	wk->block = work_take(wk, wk->n_block, sizeof *wk->block);
	if (!wk->scratch || !wk->a || !wk->delta || !wk->block) {
		work_free(wk);
		return nb__msg_fail(msg, NB_ENOMEM, "bp_reference: out of memory");
	}
	work_layout(net, n, total, x, wk);
	return NB_OK;
}

/* ---- Activations -------------------------------------------------------------------- */

static double sigmoid(double z)
{
	return 1.0 / (1.0 + exp(-z));
}

/* Softmax (78) of each example of z, in place: a_j = e^{z_j} / sum_k e^{z_k}, with the
 * example's maximum subtracted first, as nb_softmax does, so that exp never overflows. */
static void softmax(double *z, struct dims d)
{
	for (size_t c = 0; c < d.n; c++) {
		double top = z[at(d, 0, c)], sum = 0.0;

		for (size_t k = 1; k < d.m; k++)
			top = fmax(top, z[at(d, k, c)]);
		for (size_t k = 0; k < d.m; k++) {
			z[at(d, k, c)] = exp(z[at(d, k, c)] - top);
			sum += z[at(d, k, c)];
		}
		for (size_t k = 0; k < d.m; k++)
			z[at(d, k, c)] /= sum;
	}
}

/* a = f(z) in place for a layer of the batch. */
static void activate(int act, double *z, struct dims d)
{
	if (act == NB_SOFTMAX) {
		softmax(z, d);
		return;
	}
	for (size_t i = 0; i < d.m * d.n; i++) {
		if (act == NB_TANH)
			z[i] = tanh(z[i]);
		else if (act == NB_RELU)
			z[i] = z[i] > 0.0 ? z[i] : 0.0;
		else
			z[i] = sigmoid(z[i]);
	}
}

/* f'(z) from a = f(z), as the ops' backward rules build it: sigma'(z) = a (1 - a),
 * tanh'(z) = 1 - a^2, and relu'(z) = step(z), which is [a > 0] since a ReLU is positive
 * exactly where z is (at z = 0, the kink, both say 0). Not for softmax, whose a_j depends
 * on every z_k of the layer (see softmax_jacobian()). */
static double derivative(int act, double a)
{
	if (act == NB_TANH)
		return 1.0 - a * a;
	if (act == NB_RELU)
		return a > 0.0 ? 1.0 : 0.0;
	return a * (1.0 - a);
}

/* The product of the forward pass for layer d (m units) from a_in (k units): w a_in with
 * examples as columns, a_in w^T with examples as rows. The kernel sums a product's terms
 * in an order that depends on how it is called, so it is called as the op graph of the
 * layout calls it: matmul(w, a), matmul_t(a, w, NB_TRANS_B), and for the first layer of
 * columns matmul_t(w, x, NB_TRANS_B) with x as rows, as nb_net records it. Then z is the
 * graph's bit for bit, which matters where f'(z) is computed from a saturated a: 1 - a^2
 * would turn one last bit of z into a large relative difference of delta. */
static void product(struct dims d, size_t k, const double *w, const double *a_in,
                    bool in_rows, double *z, double *scratch)
{
	if (d.rows)
		nb__gemm(1, false, true, d.n, d.m, k, a_in, w, z, scratch);
	else
		nb__gemm(1, false, in_rows, d.m, d.n, k, w, a_in, z, scratch);
}

/* One layer of the forward pass: z = w a_in + b into out, then, after a copy into z_out
 * when not NULL (the output layer, whose z the cross-entropy costs take), a = f(z) in
 * place. a_in has k units, one example per row when in_rows. b is added after the
 * product, the order in which the op graph z = add(matmul(w, a), b) evaluates it. */
static void forward_layer(struct dims d, size_t k, const double *w, const double *b,
                          const double *a_in, bool in_rows, int act, double *out,
                          double *z_out, double *scratch)
{
	product(d, k, w, a_in, in_rows, out, scratch);
	for (size_t j = 0; j < d.m; j++)
		for (size_t c = 0; c < d.n; c++)
			out[at(d, j, c)] += b[j];
	if (z_out != NULL)
		memcpy(z_out, out, d.m * d.n * sizeof *out);
	activate(act, out, d);
}

/* ---- Costs: as the library's cost ops compute them ---------------------------------- */

/* The cost ops take one example per column: the sums below run in that order whatever
 * the layout, unit by unit, so that they add the same terms in the same order. */

/* C = 1/(2n) sum over the batch of ||y - a^L||^2. */
static double quadratic_cost(const double *aL, const double *y, struct dims d)
{
	double s = 0.0;

	for (size_t j = 0; j < d.m; j++)
		for (size_t c = 0; c < d.n; c++) {
			size_t i = at(d, j, c);

			s += (y[i] - aL[i]) * (y[i] - aL[i]);
		}
	return s / (2.0 * (double)d.n);
}

/* The cross-entropy of a sigmoid output, summed over the outputs (63):
 * C = -1/n sum [y ln a + (1 - y) ln(1 - a)], from z^L as nb_sigmoid_cross_entropy computes
 * it, term by term max(z, 0) - z y + ln(1 + e^{-|z|}), which is finite for every z. */
static double sigmoid_cross_entropy(const double *zL, const double *y, struct dims d)
{
	double s = 0.0;

	for (size_t j = 0; j < d.m; j++)
		for (size_t c = 0; c < d.n; c++) {
			size_t i = at(d, j, c);

			s += fmax(zL[i], 0.0) - zL[i] * y[i] + log1p(exp(-fabs(zL[i])));
		}
	return s / (double)d.n;
}

/* The log-likelihood of a softmax output (80), C = -1/n sum_x ln a^L_{y(x)}, which for
 * targets y as vectors is -1/n sum y ln a^L (the one-hot y picks ln a^L_{y(x)}). From z^L
 * as nb_softmax_cross_entropy computes it, example by example:
 * ln a^L_k = z_k - ln sum_j e^{z_j}, the maximum taken out of the sum. */
static double log_likelihood(const double *zL, const double *y, struct dims d)
{
	double s = 0.0;

	for (size_t c = 0; c < d.n; c++) {
		double top = zL[at(d, 0, c)], sum = 0.0, lse, col = 0.0;

		for (size_t k = 1; k < d.m; k++)
			top = fmax(top, zL[at(d, k, c)]);
		for (size_t k = 0; k < d.m; k++)
			sum += exp(zL[at(d, k, c)] - top);
		lse = top + log(sum);
		for (size_t k = 0; k < d.m; k++)
			col -= y[at(d, k, c)] * (zL[at(d, k, c)] - lse);
		s += col;
	}
	return s / (double)d.n;
}

/* L2 regularisation (87): C = C0 + lambda/(2n) sum_w w^2, over the weights of every layer
 * and none of the biases. */
static double l2_term(const nb_mlp *net, double lambda, size_t n)
{
	double s = 0.0;

	for (size_t l = 0; l + 1 < net->n_layers; l++)
		for (size_t i = 0; i < net->sizes[l + 1] * net->sizes[l]; i++)
			s += net->w[l][i] * net->w[l][i];
	return lambda / (2.0 * (double)n) * s;
}

/* C for the chosen cost, plus L2's term: the graph adds it to the cost op's value. */
static double cost_of(const nb_mlp *net, const nb_bp_opts *o, const struct bp_work *wk,
                      const double *y, struct dims d)
{
	size_t L = net->n_layers - 1;
	int out = layer_act(o, L, L);
	double c;

	if (o->cost == NB_QUADRATIC)
		c = quadratic_cost(wk->a[L], y, d);
	else if (out == NB_SOFTMAX)
		c = log_likelihood(wk->zL, y, d);
	else
		c = sigmoid_cross_entropy(wk->zL, y, d);
	return o->lambda != 0.0 ? c + l2_term(net, o->lambda, d.n) : c;
}

/* ---- The errors delta^l, BP1 and BP2 ------------------------------------------------ */

/* For a softmax output, a_j depends on every z_k of its example, and BP1's Hadamard
 * product becomes the Jacobian's: delta_j = sum_k (da_k/dz_j) g_k = a_j (g_j - sum_k a_k g_k),
 * with g = nabla_a C, as nb_softmax's rule applies it. g and delta may be the same array. */
static void softmax_jacobian(const double *aL, const double *g, double *delta, struct dims d)
{
	for (size_t c = 0; c < d.n; c++) {
		double dot = 0.0;

		for (size_t k = 0; k < d.m; k++)
			dot += g[at(d, k, c)] * aL[at(d, k, c)];
		for (size_t k = 0; k < d.m; k++)
			delta[at(d, k, c)] = aL[at(d, k, c)] * (g[at(d, k, c)] - dot);
	}
}

/* BP1 for the quadratic cost: delta^L = nabla_a C ⊙ f'(z^L), nabla_a C = (a^L - y) / n,
 * the 1/n of the batch mean; for a softmax output, the Jacobian instead of the product. */
static void quadratic_error(int act, const double *aL, const double *y, double *delta,
                            struct dims d)
{
	for (size_t i = 0; i < d.m * d.n; i++) {
		double dc_da = (aL[i] - y[i]) * (1.0 / (double)d.n);

		delta[i] = act == NB_SOFTMAX ? dc_da : dc_da * derivative(act, aL[i]);
	}
	if (act == NB_SOFTMAX)
		softmax_jacobian(aL, delta, delta, d);
}

/* BP1 for a sigmoid output and the cross-entropy cost (66): sigma'(z^L) cancels against
 * the cost's 1/(a (1 - a)), leaving delta^L = (a^L - y) / n. */
static void sigmoid_cross_entropy_error(const double *aL, const double *y, double *delta,
                                        struct dims d)
{
	for (size_t i = 0; i < d.m * d.n; i++)
		delta[i] = (aL[i] - y[i]) * (1.0 / (double)d.n);
}

/* BP1 for a softmax output and the log-likelihood cost (84): delta^L = (a^L - y) / n for a
 * one-hot y, or any y whose examples sum to 1. For other targets the derivative of
 * -1/n sum y ln a^L is (a^L_j sum_k y_k - y_j) / n, which is what is computed here, as
 * nb_softmax_cross_entropy's rule does: with sum_k y_k = 1 it is the formula of (84). */
static void log_likelihood_error(const double *aL, const double *y, double *delta,
                                 struct dims d)
{
	for (size_t c = 0; c < d.n; c++) {
		double mass = 0.0;

		for (size_t k = 0; k < d.m; k++)
			mass += y[at(d, k, c)];
		for (size_t k = 0; k < d.m; k++) {
			size_t i = at(d, k, c);

			delta[i] = (aL[i] * mass - y[i]) * (1.0 / (double)d.n);
		}
	}
}

static void output_error(const nb_mlp *net, const nb_bp_opts *o, struct bp_work *wk,
                         const double *y, struct dims d)
{
	size_t L = net->n_layers - 1;
	int out = layer_act(o, L, L);

	if (o->cost == NB_QUADRATIC)
		quadratic_error(out, wk->a[L], y, wk->delta[L], d);
	else if (out == NB_SOFTMAX)
		log_likelihood_error(wk->a[L], y, wk->delta[L], d);
	else
		sigmoid_cross_entropy_error(wk->a[L], y, wk->delta[L], d);
}

/* BP2: delta^l = ((w^{l+1})^T delta^{l+1}) ⊙ f'(z^l), with f'(z^l) from a^l; for rows
 * (delta^{l+1} w^{l+1}) ⊙ f'(z^l). w is m_next x d.m (layer l has d.m units, layer l+1
 * m_next); w^T is read in place by the matrix kernel, which needs no work space here. */
static void backprop_layer(struct dims d, size_t m_next, const double *w,
                           const double *delta_next, const double *a, int act, double *delta)
{
	if (d.rows)
		nb__gemm(1, false, false, d.n, d.m, m_next, delta_next, w, delta, NULL);
	else
		nb__gemm(1, true, false, d.m, d.n, m_next, w, delta_next, delta, NULL);
	for (size_t i = 0; i < d.m * d.n; i++)
		delta[i] *= derivative(act, a[i]);
}

/* ---- The gradients, BP3 and BP4 ----------------------------------------------------- */

/* BP3: dC/db^l_j = sum over examples c of delta^l_jc; L2 leaves it alone (89).
 * BP4: dC/dw^l_jk = sum over c of delta^l_jc a^{l-1}_kc, that is dw = delta (a^{l-1})^T
 * (for rows, delta^T a^{l-1}), the transposed operand read in place by the matrix kernel;
 * L2 adds (lambda/n) w (88), the derivative of its lambda/(2n) w^2. d is layer l, a_prev
 * has k units (one example per row when prev_rows), w and dw are d.m x k, db d.m. */
static void layer_gradients(struct dims d, size_t k, const double *delta,
                            const double *a_prev, bool prev_rows, const double *w,
                            double lambda, double *dw, double *db, double *scratch)
{
	for (size_t j = 0; j < d.m; j++) {
		double s = 0.0;

		for (size_t c = 0; c < d.n; c++)
			s += delta[at(d, j, c)];
		db[j] = s;
	}
	if (d.rows)
		nb__gemm(1, true, false, d.m, k, d.n, delta, a_prev, dw, scratch);
	else
		nb__gemm(1, false, !prev_rows, d.m, k, d.n, delta, a_prev, dw, scratch);
	if (lambda != 0.0) {
		double decay = lambda / (double)d.n;

		for (size_t i = 0; i < d.m * k; i++)
			dw[i] += decay * w[i];
	}
}

/* Layer l's dims: m units, n examples, laid out as the work space. */
static struct dims layer(const struct bp_work *wk, size_t m, size_t n)
{
	return (struct dims){ m, n, wk->rows };
}

/* Forward pass, then the errors from the output layer down, then the gradients. */
static void backprop_batch(const nb_mlp *net, const nb_bp_opts *o, size_t n, const double *y,
                struct bp_work *wk, double *const *dw, double *const *db, double *cost)
{
	const size_t *sz = net->sizes;
	size_t L = net->n_layers - 1;
	for (size_t l = 1; l <= L; l++)
		forward_layer(layer(wk, sz[l], n), sz[l - 1], net->w[l - 1], net->b[l - 1],
		              l == 1 ? wk->xr : wk->a[l - 1], l == 1 || wk->rows, layer_act(o, L, l),
		              wk->a[l], l == L ? wk->zL : NULL, wk->scratch);
	if (cost != NULL)
		*cost = cost_of(net, o, wk, y, layer(wk, sz[L], n));
	output_error(net, o, wk, y, layer(wk, sz[L], n));
	for (size_t l = L - 1; l >= 1; l--)
		backprop_layer(layer(wk, sz[l], n), sz[l + 1], net->w[l], wk->delta[l + 1], wk->a[l],
		               layer_act(o, L, l), wk->delta[l]);
	for (size_t l = 1; l <= L; l++)
		layer_gradients(layer(wk, sz[l], n), sz[l - 1], wk->delta[l],
		                l == 1 ? wk->xr : wk->a[l - 1], l == 1 || wk->rows, net->w[l - 1],
		                o->lambda, dw[l - 1], db[l - 1], wk->scratch);
}

int nb_bp_reference_opts(const nb_mlp *net, size_t n, const double *x, const double *y,
                         const nb_bp_opts *opts, double *const *dw, double *const *db,
                         double *const *delta, double *cost, char msg[NB_MSG_MAX])
{
	static const nb_bp_opts defaults = { 0 };
	const nb_bp_opts *o = opts ? opts : &defaults;
	struct bp_work wk = { .rows = o->rows != 0 };
	int status = check_net(net, n, msg);

	if (status == NB_OK)
		status = check_io(net->n_layers, x, y, dw, db, msg);
	if (status == NB_OK)
		status = check_opts(o, net->n_layers - 1, msg);
	if (status == NB_OK)
		status = work_alloc(net, n, x, &wk, msg);
	if (status != NB_OK)
		return status;
	backprop_batch(net, o, n, y, &wk, dw, db, cost);
	/* delta^l is already laid out as the caller's arrays. */
	for (size_t l = 1; delta != NULL && l < net->n_layers; l++) {
		if (delta[l - 1] != NULL)
			memcpy(delta[l - 1], wk.delta[l],
			       net->sizes[l] * n * sizeof *wk.delta[l]);
	}
	work_free(&wk);
	return NB_OK;
}

int nb_bp_reference(const nb_mlp *net, size_t n, const double *x, const double *y,
                    double *const *dw, double *const *db, double *const *delta, double *cost,
                    char msg[NB_MSG_MAX])
{
	return nb_bp_reference_opts(net, n, x, y, NULL, dw, db, delta, cost, msg);
}
