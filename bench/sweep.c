/* sweep.c -- make bench-sweep (bench --sweep): nabla's SGD step against the reference
 * trainer's (blas_trainer.c) for networks [784, h, 10] over hidden widths h and batch
 * sizes, one thread each, timed in turns as nielsen_ratio_vs_blas_trainer is. One line per
 * configuration, then the largest parameter difference and the worst ratio. */
#include "config.h"

#include <stdio.h>

#include "bench.h"
#include "problem.h"

#ifdef HAVE_OPENBLAS
/* The floating-point operations of a turn: a configuration runs as many steps as make
 * about this many (at least one), so that a small step is timed over many and a large
 * one does not make the sweep long. Here a turn takes 20 to 150 ms (batch 1 runs far
 * below the processor's peak), one step of h = 1000, batch 1000 about 0.13 s, and the
 * whole sweep about 17 s. */
#define TURN_FLOPS 3e8

static const size_t widths[] = { 30, 100, 300, 1000 };
static const size_t batches[] = { 1, 10, 100, 1000 };

struct sweep_result {
	double nabla_s, ref_s;  /* seconds per step */
	double diff;            /* the largest relative parameter difference after the turns */
};

/* Steps per turn for p: TURN_FLOPS over a step's operations, at least one. */
static size_t sweep_steps(const struct problem *p)
{
	double steps = TURN_FLOPS / problem_step_flops(p);

	return steps < 1.0 ? 1 : (size_t)steps;
}

/* Time nabla's network and the reference on [784, h, 10] with mini-batches of batch.
 * The reference starts from a copy of nabla's parameters, and both train on the same
 * mini-batches, so they do the same work; how far apart they end shows that they did. */
static void sweep_one(size_t h, size_t batch, struct sweep_result *r)
{
	const size_t sizes[3] = { 784, h, 10 };
	struct problem p = { .n_layers = 3, .sizes = sizes, .batch = batch };
	nb_net *net;
	blas_trainer *bt;

	p.steps = sweep_steps(&p);
	problem_make(&p);
	net = problem_net(&p, NULL, NULL);
	bt = problem_trainer(&p, net);
	if (problem_max_rel_diff(&p, net, bt) != 0.0)
		bench_die("sweep", "the reference does not start from nabla's parameters");
	problem_trainer_times(&p, net, bt, &r->nabla_s, &r->ref_s);
	r->diff = problem_max_rel_diff(&p, net, bt);
	blas_trainer_free(bt);
	nb_net_free(net);
	problem_free(&p);
}

void sweep_networks(void)
{
	double worst = 0.0, diff = 0.0;
	size_t worst_h = 0, worst_batch = 0;

	gemm_print_setup();
	for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
		for (size_t j = 0; j < sizeof batches / sizeof batches[0]; j++) {
			size_t h = widths[i], batch = batches[j];
			struct sweep_result r;
			double ratio;

			sweep_one(h, batch, &r);
			ratio = r.nabla_s / r.ref_s;
			printf("sweep h=%zu batch=%zu: nabla %.1f us, blas %.1f us, ratio %.3f\n",
			       h, batch, r.nabla_s * 1e6, r.ref_s * 1e6, ratio);
			fflush(stdout);
			if (ratio > worst) {
				worst = ratio;
				worst_h = h;
				worst_batch = batch;
			}
			if (r.diff > diff)
				diff = r.diff;
		}
	printf("sweep_max_rel_diff: %.3g\n", diff);
	printf("sweep_worst_ratio: %.3f (h=%zu, batch=%zu)\n", worst, worst_h, worst_batch);
}
#else
void sweep_networks(void)
{
	printf("sweep: needs OpenBLAS for the reference trainer; configure did not find it\n");
}
#endif
