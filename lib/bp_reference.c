/* bp_reference.c -- gradients of the quadratic cost of a sigmoid network by the four
 * backpropagation equations BP1-BP4 (Nielsen, "Neural Networks and Deep Learning", ch. 2),
 * with plain loops and no tape: the closed form the autodiff engine is tested against.
 *
 * Layers are numbered as in nabla.h: layer 0 is the input, layer L = n_layers - 1 the
 * output; w[l-1], b[l-1] map layer l-1 to layer l. Matrices are row-major with one example
 * per column, so element (j, c) of a layer of the batch is at j * n + c. */

#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "nabla_int.h"

/* Scratch space: activations a^l and errors delta^l = dC/dz^l for l = 1..L, in one block.
 * z^l itself is not kept: sigma'(z) = sigma(z) (1 - sigma(z)) is derived from a^l. */
struct bp_work {
	double *xr;       /* a^0, the caller's input, transposed: one example per row */
	double *scratch;  /* the matrix kernel's work space */
	double **a;       /* a[1..L] point into block; a[0] is unused (a^0 is xr) */
	double **delta;   /* delta[1..L] point into block; delta[0] is unused */
	double *block;
	size_t n_scratch, n_ptr, n_block;  /* elements of each allocation, to give them back */
	nb_alloc_fn alloc;                 /* the network's allocator, or malloc's */
	void *ud;
};

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

/* The largest work space the matrix kernel asks for in run(). */
static size_t scratch_size(const nb_mlp *net, size_t n)
{
	size_t most = 0;

	for (size_t l = 1; l < net->n_layers; l++) {
		size_t rows = net->sizes[l], cols = net->sizes[l - 1];
		size_t f = nb__gemm_work(false, l == 1, rows, n, cols);
		size_t g = nb__gemm_work(false, l != 1, rows, cols, n);

		most = f > most ? f : most;
		most = g > most ? g : most;
	}
	return most;
}

/* Allocate a^l and delta^l for l = 1..L (2 sizes[l] n doubles each layer) and point
 * a[0] at x. On failure frees what it got and reports NB_ENOMEM, overflow included. */
static int work_alloc(const nb_mlp *net, size_t n, const double *x, struct bp_work *wk,
                      char *msg)
{
	const size_t limit = SIZE_MAX / 2 / sizeof(double);
	size_t L = net->n_layers - 1, total = 0, off = 0;

	for (size_t l = 1; l <= L; l++) {
		size_t s = net->sizes[l];

		if (s > limit / n || s * n > limit - total)
			return nb__msg_fail(msg, NB_ENOMEM, "bp_reference: out of memory");
		total += s * n;
	}
	if (net->sizes[0] > limit / n || net->sizes[0] * n > limit - 2 * total)
		return nb__msg_fail(msg, NB_ENOMEM, "bp_reference: out of memory");
	wk->alloc = net->alloc ? net->alloc : nb__default_alloc;
	wk->ud = net->alloc_ud;
	wk->n_scratch = scratch_size(net, n) + 1;
	wk->n_ptr = L + 1;
	wk->n_block = 2 * total + net->sizes[0] * n;
	wk->scratch = work_take(wk, wk->n_scratch, sizeof *wk->scratch);
	wk->a = work_take(wk, wk->n_ptr, sizeof *wk->a);
	wk->delta = work_take(wk, wk->n_ptr, sizeof *wk->delta);
	wk->block = work_take(wk, wk->n_block, sizeof *wk->block);
	if (!wk->scratch || !wk->a || !wk->delta || !wk->block) {
		work_free(wk);
		return nb__msg_fail(msg, NB_ENOMEM, "bp_reference: out of memory");
	}
	wk->a[0] = NULL;
	wk->delta[0] = NULL;
	for (size_t l = 1; l <= L; l++) {
		wk->a[l] = wk->block + off;
		wk->delta[l] = wk->block + total + off;
		off += net->sizes[l] * n;
	}
	/* Examples as rows, as data sets hold them and nb_net feeds them: then both compute
	 * with the same kernels. */
	wk->xr = wk->block + 2 * total;
	for (size_t i = 0; i < net->sizes[0]; i++)
		for (size_t c = 0; c < n; c++)
			wk->xr[c * net->sizes[0] + i] = x[i * n + c];
	return NB_OK;
}

static double sigmoid(double z)
{
	return 1.0 / (1.0 + exp(-z));
}

/* One layer of the forward pass: z = w a_in + b, a_out = sigma(z). w is rows x cols, a_in
 * cols x n (or n x cols, one example per row, when in_rows), a_out rows x n. The product is
 * the library's matrix kernel, then b is added, the order in which the op graph
 * z = add(matmul(w, a), b) evaluates it. */
static void forward_layer(const double *w, const double *b, const double *a_in, bool in_rows,
                          double *a_out, size_t rows, size_t cols, size_t n, double *scratch)
{
	nb__gemm(false, in_rows, rows, n, cols, w, a_in, a_out, scratch);
	for (size_t j = 0; j < rows; j++)
		for (size_t c = 0; c < n; c++)
			a_out[j * n + c] = sigmoid(a_out[j * n + c] + b[j]);
}

/* C = 1/(2n) sum over the batch of ||y - a^L||^2, for m outputs and n examples. */
static double quadratic_cost(const double *aL, const double *y, size_t m, size_t n)
{
	double s = 0.0;

	for (size_t i = 0; i < m * n; i++)
		s += (y[i] - aL[i]) * (y[i] - aL[i]);
	return s / (2.0 * (double)n);
}

/* BP1: delta^L = (a^L - y) ⊙ sigma'(z^L) / n, with sigma'(z^L) = a^L ⊙ (1 - a^L). The 1/n
 * is dC/da^L of the batch mean. m outputs, n examples. */
static void output_error(const double *aL, const double *y, double *delta, size_t m,
                         size_t n)
{
	for (size_t i = 0; i < m * n; i++) {
		double dc_da = (aL[i] - y[i]) * (1.0 / (double)n);

		delta[i] = dc_da * (aL[i] * (1.0 - aL[i]));
	}
}

/* BP2: delta^l = ((w^{l+1})^T delta^{l+1}) ⊙ sigma'(z^l), with sigma'(z^l) = a^l (1 - a^l).
 * w is rows x cols (layer l has cols units, layer l+1 rows), delta_next rows x n; w^T is
 * read in place by the matrix kernel. */
static void backprop_layer(const double *w, const double *delta_next, const double *a,
                           double *delta, size_t rows, size_t cols, size_t n)
{
	nb__gemm(true, false, cols, n, rows, w, delta_next, delta, NULL);
	for (size_t i = 0; i < cols * n; i++)
		delta[i] *= a[i] * (1.0 - a[i]);
}

/* BP3: dC/db^l_j = sum over examples c of delta^l_jc.
 * BP4: dC/dw^l_jk = sum over c of delta^l_jc a^{l-1}_kc, that is dw = delta (a^{l-1})^T,
 * with (a^{l-1})^T read in place by the matrix kernel.
 * delta is rows x n, a_prev cols x n (n x cols when prev_rows), dw rows x cols, db rows. */
static void layer_gradients(const double *delta, const double *a_prev, bool prev_rows,
                            double *dw, double *db, size_t rows, size_t cols, size_t n,
                            double *scratch)
{
	for (size_t j = 0; j < rows; j++) {
		double s = 0.0;

		for (size_t c = 0; c < n; c++)
			s += delta[j * n + c];
		db[j] = s;
	}
	nb__gemm(false, !prev_rows, rows, cols, n, delta, a_prev, dw, scratch);
}

/* Forward pass, then the errors from the output layer down, then the gradients. */
static void run(const nb_mlp *net, size_t n, const double *y, struct bp_work *wk,
                double *const *dw, double *const *db, double *cost)
{
	const size_t *sz = net->sizes;
	size_t L = net->n_layers - 1;

	for (size_t l = 1; l <= L; l++)
		forward_layer(net->w[l - 1], net->b[l - 1], l == 1 ? wk->xr : wk->a[l - 1], l == 1,
		              wk->a[l], sz[l], sz[l - 1], n, wk->scratch);
	if (cost != NULL)
		*cost = quadratic_cost(wk->a[L], y, sz[L], n);
	output_error(wk->a[L], y, wk->delta[L], sz[L], n);
	for (size_t l = L - 1; l >= 1; l--)
		backprop_layer(net->w[l], wk->delta[l + 1], wk->a[l], wk->delta[l], sz[l + 1],
		               sz[l], n);
	for (size_t l = 1; l <= L; l++)
		layer_gradients(wk->delta[l], l == 1 ? wk->xr : wk->a[l - 1], l == 1, dw[l - 1],
		                db[l - 1], sz[l], sz[l - 1], n, wk->scratch);
}

int nb_bp_reference(const nb_mlp *net, size_t n, const double *x, const double *y,
                    double *const *dw, double *const *db, double *const *delta, double *cost,
                    char msg[NB_MSG_MAX])
{
	struct bp_work wk = { 0 };
	int status = check_net(net, n, msg);

	if (status == NB_OK)
		status = check_io(net->n_layers, x, y, dw, db, msg);
	if (status == NB_OK)
		status = work_alloc(net, n, x, &wk, msg);
	if (status != NB_OK)
		return status;
	run(net, n, y, &wk, dw, db, cost);
	for (size_t l = 1; delta != NULL && l < net->n_layers; l++) {
		if (delta[l - 1] != NULL)
			memcpy(delta[l - 1], wk.delta[l],
			       net->sizes[l] * n * sizeof *wk.delta[l]);
	}
	work_free(&wk);
	return NB_OK;
}
