/* blas_trainer.c -- the network of blas_trainer.h: the forward pass and BP1-BP4 for a whole
 * mini-batch at once, each product one cblas_dgemm, every buffer allocated once. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <cblas.h>

#include "blas_trainer.h"

struct blas_trainer {
	size_t L, batch;                       /* layers with parameters, examples per step */
	size_t size[BLAS_TRAINER_MAX_LAYERS + 1];
	double *w[BLAS_TRAINER_MAX_LAYERS], *b[BLAS_TRAINER_MAX_LAYERS];
	double *dw[BLAS_TRAINER_MAX_LAYERS], *db[BLAS_TRAINER_MAX_LAYERS];
	double *a[BLAS_TRAINER_MAX_LAYERS];    /* a^{l+1}: size[l+1] x batch */
	double *delta[BLAS_TRAINER_MAX_LAYERS];/* delta^{l+1}: size[l+1] x batch */
	double *block;                         /* every array above, in one allocation */
};

/* The doubles of every array (per layer w, dw, b, db, a and delta), or 0 when they would
 * not fit in memory's sizes. */
static size_t doubles_needed(size_t n_layers, const size_t *sizes, size_t batch)
{
	size_t total = 0;

	for (size_t l = 0; l + 1 < n_layers; l++) {
		size_t in = sizes[l], out = sizes[l + 1], per_unit, layer;

		if (in > SIZE_MAX / 4 || batch > SIZE_MAX / 4)
			return 0;
		per_unit = in + 1 + batch;
		if (per_unit > SIZE_MAX / 2 / out)
			return 0;
		layer = 2 * out * per_unit;
		if (layer > SIZE_MAX / sizeof(double) - total)
			return 0;
		total += layer;
	}
	return total;
}

blas_trainer *blas_trainer_new(size_t n_layers, const size_t *sizes, size_t batch)
{
	blas_trainer *bt;
	size_t total;
	double *p;

	if (n_layers < 2 || n_layers > BLAS_TRAINER_MAX_LAYERS + 1 || batch == 0)
		return NULL;
	for (size_t l = 0; l < n_layers; l++)
		if (sizes[l] == 0)
			return NULL;
	total = doubles_needed(n_layers, sizes, batch);
	bt = calloc(1, sizeof *bt);
	if (!bt || total == 0 || !(bt->block = calloc(total, sizeof *bt->block))) {
		free(bt);
		return NULL;
	}
	bt->L = n_layers - 1;
	bt->batch = batch;
	p = bt->block;
	for (size_t l = 0; l < n_layers; l++)
		bt->size[l] = sizes[l];
	for (size_t l = 0; l < bt->L; l++) {
		size_t in = sizes[l], out = sizes[l + 1];

		bt->w[l] = p, p += out * in;
		bt->dw[l] = p, p += out * in;
		bt->b[l] = p, p += out;
		bt->db[l] = p, p += out;
		bt->a[l] = p, p += out * batch;
		bt->delta[l] = p, p += out * batch;
	}
	return bt;
}

void blas_trainer_free(blas_trainer *bt)
{
	if (!bt)
		return;
	free(bt->block);
	free(bt);
}

double *blas_trainer_weights(blas_trainer *bt, size_t l)
{
	return l < bt->L ? bt->w[l] : NULL;
}

double *blas_trainer_biases(blas_trainer *bt, size_t l)
{
	return l < bt->L ? bt->b[l] : NULL;
}

/* a^{l+1} = sigma(w^{l+1} a^l + b^{l+1}) for the whole batch: the biases copied into every
 * column, then one dgemm adds the product to them. a^0 is x, one example per row, read as
 * columns through a transposed operand. */
static void forward(blas_trainer *bt, const double *x)
{
	size_t n = bt->batch;

	for (size_t l = 0; l < bt->L; l++) {
		size_t in = bt->size[l], out = bt->size[l + 1];
		double *z = bt->a[l];

		for (size_t i = 0; i < out; i++)
			for (size_t j = 0; j < n; j++)
				z[i * n + j] = bt->b[l][i];
		if (l == 0)
			cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, (int)n, (int)in,
			            1.0, bt->w[0], (int)in, x, (int)in, 1.0, z, (int)n);
		else
			cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)n,
			            (int)in, 1.0, bt->w[l], (int)in, bt->a[l - 1], (int)n, 1.0, z,
			            (int)n);
		for (size_t i = 0; i < out * n; i++)
			z[i] = 1.0 / (1.0 + exp(-z[i]));
	}
}

/* BP1 for the quadratic cost: delta^L = nabla_a C (.) sigma'(z^L), with
 * nabla_a C = (a^L - y) / n over the batch's n examples and sigma'(z) = a (1 - a). */
static void output_error(blas_trainer *bt, const double *y)
{
	size_t n = bt->batch, out = bt->size[bt->L];
	const double *a = bt->a[bt->L - 1];
	double *d = bt->delta[bt->L - 1], inv_n = 1.0 / (double)n;

	for (size_t i = 0; i < out; i++)
		for (size_t j = 0; j < n; j++) {
			double aij = a[i * n + j];

			d[i * n + j] = (aij - y[j * out + i]) * inv_n * (aij * (1.0 - aij));
		}
}

/* From delta^{l+1}: dC/dw^{l+1} = delta^{l+1} (a^l)^T (BP4), dC/db^{l+1} = the row sums
 * of delta^{l+1} (BP3), and for l > 0 delta^l = (w^{l+1})^T delta^{l+1} (.) sigma'(z^l)
 * (BP2). For l = 0, (a^0)^T is x itself. */
static void backward_layer(blas_trainer *bt, size_t l, const double *x)
{
	size_t n = bt->batch, in = bt->size[l], out = bt->size[l + 1];
	const double *d = bt->delta[l];

	if (l == 0)
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)n,
		            1.0, d, (int)n, x, (int)in, 0.0, bt->dw[0], (int)in);
	else
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, (int)in, (int)n,
		            1.0, d, (int)n, bt->a[l - 1], (int)n, 0.0, bt->dw[l], (int)in);
	for (size_t i = 0; i < out; i++) {
		double s = 0.0;

		for (size_t j = 0; j < n; j++)
			s += d[i * n + j];
		bt->db[l][i] = s;
	}
	if (l == 0)
		return;
	cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)in, (int)n, (int)out, 1.0,
	            bt->w[l], (int)in, d, (int)n, 0.0, bt->delta[l - 1], (int)n);
	for (size_t i = 0; i < in * n; i++) {
		double a = bt->a[l - 1][i];

		bt->delta[l - 1][i] *= a * (1.0 - a);
	}
}

void blas_trainer_step(blas_trainer *bt, const double *x, const double *y, double eta)
{
	forward(bt, x);
	output_error(bt, y);
	for (size_t l = bt->L; l-- > 0;)
		backward_layer(bt, l, x);
	for (size_t l = 0; l < bt->L; l++) {
		size_t in = bt->size[l], out = bt->size[l + 1];

		for (size_t i = 0; i < out * in; i++)
			bt->w[l][i] -= eta * bt->dw[l][i];
		for (size_t i = 0; i < out; i++)
			bt->b[l][i] -= eta * bt->db[l][i];
	}
}
