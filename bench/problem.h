/* problem.h -- a fully connected network's training problem, shared by bench's figures and
 * by the sweep: random mini-batches, nabla's network for them and, with OpenBLAS, the
 * reference trainer of blas_trainer.c beside it, the two timed in turns.
 * Include config.h first: HAVE_OPENBLAS decides what is declared. */
#ifndef BENCH_PROBLEM_H
#define BENCH_PROBLEM_H

#include <stddef.h>

#include "nabla_nn.h"
#ifdef HAVE_OPENBLAS
#include "blas_trainer.h"
#endif

struct problem {
	size_t n_layers, batch, steps;
	const size_t *sizes;
	double *x, *y;          /* steps batches, rows: batch x sizes[0], batch x sizes[L] */
	double *xc, *yc;        /* the same in columns, as nb_bp_reference takes them */
};

/* Fill in p's mini-batches from bench's random sequence (n_layers, sizes, batch and steps
 * set by the caller): inputs uniform in [0, 1), each target one-hot. */
void problem_make(struct problem *p);
void problem_free(struct problem *p);

/* A new network for p, Nielsen's initialisation from seed 1, allocating through alloc
 * (NULL: malloc) with ud. The caller frees it. */
nb_net *problem_net(const struct problem *p, nb_alloc_fn alloc, void *ud);

/* Floating-point operations of one SGD step of p. */
double problem_step_flops(const struct problem *p);

#ifdef HAVE_OPENBLAS
/* A reference trainer starting from net's parameters, copied. The caller frees it. */
blas_trainer *problem_trainer(const struct problem *p, nb_net *net);

/* The largest relative difference between any parameter of net and the reference's. */
double problem_max_rel_diff(const struct problem *p, nb_net *net, blas_trainer *bt);

/* Seconds per step of net and of bt (borrowed), in turns: each repetition runs p->steps
 * steps of one, then of the other; medians over REPEATS after a warm-up. Both train on
 * p's mini-batches, so that from the same parameters they do the same work. */
void problem_trainer_times(const struct problem *p, nb_net *net, blas_trainer *bt,
                           double *nabla_s, double *ref_s);
#endif

#endif
