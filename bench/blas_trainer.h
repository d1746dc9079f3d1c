/* blas_trainer.h -- a fully connected sigmoid network with the quadratic cost, trained by
 * mini-batch SGD in plain C with cblas_dgemm for every product: what a program written
 * by hand, without autodiff, would do. bench compares nabla's steps with its steps.
 *
 * Its conventions are nb_net's, so that parameters copy across and the results match:
 * weights of layer l are sizes[l+1] x sizes[l], row-major, biases sizes[l+1]; a
 * mini-batch x holds one example per row (batch x sizes[0]), its targets y likewise
 * (batch x sizes[L]); activations are held one example per column, as Nielsen writes
 * z = w a + b. */
#ifndef BLAS_TRAINER_H
#define BLAS_TRAINER_H

#include <stddef.h>

typedef struct blas_trainer blas_trainer;

/* A network of n_layers sizes (2 .. BLAS_TRAINER_MAX_LAYERS + 1, input layer included)
 * for mini-batches of batch examples, every buffer allocated here, its parameters zero.
 * NULL when out of memory or for a bad size. */
#define BLAS_TRAINER_MAX_LAYERS 8
blas_trainer *blas_trainer_new(size_t n_layers, const size_t *sizes, size_t batch);

/* NULL does nothing. */
void blas_trainer_free(blas_trainer *bt);

/* The parameters of layer l (0 <= l < n_layers - 1), writable, valid until
 * blas_trainer_free(). */
double *blas_trainer_weights(blas_trainer *bt, size_t l);
double *blas_trainer_biases(blas_trainer *bt, size_t l);

/* One SGD step on a mini-batch: w -= eta dC/dw, b -= eta dC/db, with the gradients of
 * C = 1/(2n) sum ||y - a^L||^2 over the batch's n examples. Allocates nothing. */
void blas_trainer_step(blas_trainer *bt, const double *x, const double *y, double eta);

#endif
