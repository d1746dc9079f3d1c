/* bench.c -- how fast nabla trains, in one run: prints one "name: value" line per figure.
 * Each figure is the median of several repetitions after a warm-up. Run with `make bench`.
 *
 *   nielsen_us_per_step          autodiff SGD step, [784, 30, 10], batch 10, one thread
 *   nielsen_ratio_vs_closed_form that time over a closed-form BP1-BP4 step (same kernels)
 *   wide_gflops                  [784, 256, 256, 10], batch 64, one thread
 *   wide_ratio_vs_closed_form
 *   wide_gflops_2threads         the same with two threads (nb_net_set_threads)
 *   gemm_gflops_1024             a square 1024 x 1024 double matmul, one thread
 *   rerecord_us_per_step         the Nielsen step recorded afresh each time: rewind, record
 *                                the forward pass and its gradients, SGD update
 *   allocs_per_step              heap allocations of a step after the first
 *   tape_ns_per_node             replay of a long chain of scalar ops, per node
 *   conv_us_per_step             Nielsen's chapter-6 network (mnist --net conv) through
 *                                nb_net: conv 5x5 20 maps, pool, conv 5x5 40 maps, pool,
 *                                dense 100 relu, softmax 10; batch 10, one thread
 *   conv_allocs_per_step         heap allocations of its steps after the first
 *   *_tape_bytes, *_tape_nodes   what the tape of a training step holds
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nabla_nn.h"

enum { REPEATS = 7 };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, by_value);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t rng_state = 88172645463325252u;

static double uniform(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) * 0x1.0p-53;
}

static void fill(double *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = uniform();
}

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "bench: %s: %s\n", what, msg);
	exit(1);
}

/* ---- A counting allocator, for allocs_per_step and the tape's memory ------------------ */

struct counter {
	size_t allocs, bytes;
};

static void *counting(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct counter *c = ud;

	if (nsize == 0) {
		if (ptr)
			c->bytes -= osize;
		free(ptr);
		return NULL;
	}
	c->allocs++;
	c->bytes += nsize;
	return malloc(nsize);
}

/* ---- Training steps: autodiff and closed form ------------------------------------------ */

struct problem {
	size_t n_layers, batch, steps;
	const size_t *sizes;
	double *x, *y;          /* steps batches, rows: batch x sizes[0], batch x sizes[L] */
	double *xc, *yc;        /* the same in columns, as nb_bp_reference takes them */
};

static void make_problem(struct problem *p)
{
	size_t in = p->sizes[0], out = p->sizes[p->n_layers - 1], n = p->batch * p->steps;

	p->x = malloc(n * in * sizeof *p->x);
	p->y = calloc(n * out, sizeof *p->y);
	p->xc = malloc(n * in * sizeof *p->xc);
	p->yc = malloc(n * out * sizeof *p->yc);
	fill(p->x, n * in);
	for (size_t e = 0; e < n; e++)
		p->y[e * out + (size_t)(uniform() * (double)out)] = 1.0;
	for (size_t s = 0; s < p->steps; s++) {  /* each batch transposed on its own */
		size_t b = p->batch, off = s * b;

		for (size_t e = 0; e < b; e++) {
			for (size_t i = 0; i < in; i++)
				p->xc[off * in + i * b + e] = p->x[(off + e) * in + i];
			for (size_t k = 0; k < out; k++)
				p->yc[off * out + k * b + e] = p->y[(off + e) * out + k];
		}
	}
}

static void free_problem(struct problem *p)
{
	free(p->x);
	free(p->y);
	free(p->xc);
	free(p->yc);
}

static nb_net *make_net(const struct problem *p, struct counter *c)
{
	nb_net_config cfg = { .n_layers = p->n_layers, .sizes = p->sizes, .seed = 1,
	                      .init = NB_INIT_SCALED, .alloc = c ? counting : NULL, .alloc_ud = c };
	char msg[NB_MSG_MAX];
	nb_net *net;

	if (nb_net_new(&cfg, &net, msg) != NB_OK)
		die("net", msg);
	return net;
}

/* Seconds per step of the autodiff network on the given number of threads, median over
 * REPEATS passes of p->steps. */
static double autodiff_step(const struct problem *p, int threads)
{
	nb_net *net = make_net(p, NULL);
	nb_sgd opt = { .batch = p->batch, .eta = 0.1 };
	size_t in = p->sizes[0], out = p->sizes[p->n_layers - 1];
	double t[REPEATS];

	nb_net_set_threads(net, threads);
	for (int r = -1; r < REPEATS; r++) {  /* r = -1: warm-up */
		double t0 = now();

		for (size_t s = 0; s < p->steps; s++)
			if (nb_net_sgd_step(net, p->x + s * p->batch * in, p->y + s * p->batch * out,
			                    p->batch, &opt, NULL) != NB_OK)
				die("sgd_step", nb_net_message(net));
		if (r >= 0)
			t[r] = (now() - t0) / (double)p->steps;
	}
	nb_net_free(net);
	return median(t, REPEATS);
}

/* The same steps with gradients from nb_bp_reference (BP1-BP4 written out) and the same
 * update, on the same parameters. */
static double closed_form_step(const struct problem *p)
{
	nb_net *net = make_net(p, NULL);
	nb_mlp m = nb_net_mlp(net);
	size_t L = p->n_layers - 1, in = p->sizes[0], out = p->sizes[L];
	double *dw[8], *db[8], t[REPEATS];
	char msg[NB_MSG_MAX];

	for (size_t l = 0; l < L; l++) {
		dw[l] = malloc(p->sizes[l + 1] * p->sizes[l] * sizeof(double));
		db[l] = malloc(p->sizes[l + 1] * sizeof(double));
	}
	for (int r = -1; r < REPEATS; r++) {
		double t0 = now();

		for (size_t s = 0; s < p->steps; s++) {
			if (nb_bp_reference(&m, p->batch, p->xc + s * p->batch * in,
			                    p->yc + s * p->batch * out, dw, db, NULL, NULL, msg))
				die("bp_reference", msg);
			for (size_t l = 0; l < L; l++) {
				double *w = nb_net_weights(net, l), *b = nb_net_biases(net, l);

				for (size_t i = 0; i < p->sizes[l + 1] * p->sizes[l]; i++)
					w[i] -= 0.1 * dw[l][i];
				for (size_t j = 0; j < p->sizes[l + 1]; j++)
					b[j] -= 0.1 * db[l][j];
			}
		}
		if (r >= 0)
			t[r] = (now() - t0) / (double)p->steps;
	}
	for (size_t l = 0; l < L; l++) {
		free(dw[l]);
		free(db[l]);
	}
	nb_net_free(net);
	return median(t, REPEATS);
}

/* Floating-point operations of a step: forward w a, backward dw = delta a^T, and w^T delta
 * for every layer but the first (nobody needs the gradient of the input). */
static double step_flops(const struct problem *p)
{
	double f = 0.0;

	for (size_t l = 0; l + 1 < p->n_layers; l++)
		f += 2.0 * (double)(p->sizes[l] * p->sizes[l + 1] * p->batch) * (l ? 3.0 : 2.0);
	return f;
}

/* Allocations of steps after the first, and the memory of the step's tape. */
static void step_memory(const struct problem *p, const char *name)
{
	struct counter c = { 0 };
	nb_net *net = make_net(p, &c);
	nb_sgd opt = { .batch = p->batch, .eta = 0.1 };
	size_t before, allocs;
	nb_tape *t;

	before = c.bytes;
	t = nb_net_tape(net, p->batch);
	if (!t)
		die("tape", nb_net_message(net));
	printf("%s_tape_nodes: %zu\n", name, nb_tape_size(t));
	printf("%s_tape_bytes: %zu\n", name, c.bytes - before);
	printf("%s_tape_bytes_per_node: %.0f\n", name,
	       (double)(c.bytes - before) / (double)nb_tape_size(t));
	nb_net_sgd_step(net, p->x, p->y, p->batch, &opt, NULL);
	allocs = c.allocs;
	for (size_t s = 0; s < p->steps; s++)
		nb_net_sgd_step(net, p->x + s * p->batch * p->sizes[0],
		                p->y + s * p->batch * p->sizes[p->n_layers - 1], p->batch, &opt, NULL);
	printf("%s_allocs_per_step: %g\n", name, (double)(c.allocs - allocs) / (double)p->steps);
	nb_net_free(net);
}

/* ---- Raw kernels and the tape itself ---------------------------------------------------- */

/* GFLOP/s of an n x n matmul, replayed on a tape. */
static double gemm_gflops(size_t n)
{
	nb_tape *t = nb_tape_new();
	double *a = malloc(n * n * sizeof *a), *b = malloc(n * n * sizeof *b), s[REPEATS];

	fill(a, n * n);
	fill(b, n * n);
	nb_set_name(nb_matmul(t, nb_constant(t, 2, (size_t[]){ n, n }, a),
	                      nb_constant(t, 2, (size_t[]){ n, n }, b)), "c");
	for (int r = 0; r < REPEATS; r++) {
		double t0 = now();

		nb_touch(nb_input(nb_tape_find(t, "c"), 0));
		nb_tape_replay(t);
		s[r] = 2.0 * (double)n * (double)n * (double)n / (now() - t0) * 1e-9;
	}
	free(a);
	free(b);
	nb_tape_free(t);
	return median(s, REPEATS);
}

/* Nanoseconds per node of a replayed chain y = tanh(c y) of scalars, its input changed
 * before each replay so that every node is recomputed. */
static double tape_ns_per_node(size_t n)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *y0 = nb_variable(t, 0, NULL, (double[]){ 0.5 }), *y = y0;
	double s[REPEATS];

	for (size_t i = 0; i < n; i++)
		y = nb_tanh(t, nb_scale(t, y, 1.0 + 1e-9 * (double)i));
	if (nb_tape_status(t))
		die("chain", nb_tape_message(t));
	for (int r = -1; r < REPEATS; r++) {
		double t0 = now();

		nb_touch(y0);
		nb_tape_replay(t);
		if (r >= 0)
			s[r] = (now() - t0) / (double)nb_tape_size(t) * 1e9;
	}
	nb_tape_free(t);
	return median(s, REPEATS);
}

/* Seconds per step of Nielsen's network written as a define-by-run loop: each step
 * rewinds the tape to the parameters, records the forward pass and its gradients anew
 * for the next mini-batch, and updates the parameters (views of the network's arrays). */
static double rerecord_step(const struct problem *p)
{
	nb_net *net = make_net(p, NULL);
	nb_tape *t = nb_tape_new();
	size_t in = p->sizes[0], out = p->sizes[2], b = p->batch;
	nb_tensor *w[4];
	nb_sgd_opts o = { .eta = 0.1 };
	double s[REPEATS];
	size_t mark;

	for (size_t l = 0; l < 2; l++) {
		w[l] = nb_variable_view(t, 2, (size_t[]){ p->sizes[l + 1], p->sizes[l] },
		                        nb_net_weights(net, l));
		w[2 + l] = nb_variable_view(t, 2, (size_t[]){ p->sizes[l + 1], 1 },
		                            nb_net_biases(net, l));
	}
	mark = nb_tape_mark(t);
	for (int r = -1; r < REPEATS; r++) {
		double t0 = now();

		for (size_t k = 0; k < p->steps; k++) {
			nb_tensor *x, *y, *a1, *a2;

			nb_tape_rewind(t, mark);
			x = nb_constant_view(t, 2, (size_t[]){ b, in }, p->x + k * b * in);
			y = nb_constant_view(t, 2, (size_t[]){ out, b }, p->yc + k * b * out);
			a1 = nb_sigmoid(t, nb_add(t, nb_matmul_t(t, w[0], x, NB_TRANS_B), w[2]));
			a2 = nb_sigmoid(t, nb_add(t, nb_matmul(t, w[1], a1), w[3]));
			if (nb_backward(t, nb_quadratic_cost(t, a2, y), NULL) != NB_OK ||
			    nb_sgd_update(w, NULL, NULL, 4, &o) != NB_OK)
				die("rerecord", nb_tape_message(t));
		}
		if (r >= 0)
			s[r] = (now() - t0) / (double)p->steps;
	}
	nb_tape_free(t);
	nb_net_free(net);
	return median(s, REPEATS);
}

/* Nielsen's chapter-6 network (examples/mnist --net conv), trained through nb_net on
 * random images and labels (the speed does not depend on them): seconds per SGD step of
 * a mini-batch of 10, and the allocations of the steps after the first. */
static double conv_step(size_t steps, double *allocs)
{
	enum { B = 10, CLASSES = 10 };
	const nb_layer layers[] = {
		NB_CONV2D(20, 5, NB_RELU, NB_INIT_HE), NB_MAX_POOL(2),
		NB_CONV2D(40, 5, NB_RELU, NB_INIT_HE), NB_MAX_POOL(2),
		NB_DENSE(100, NB_RELU, NB_INIT_HE), NB_DENSE(CLASSES, NB_SOFTMAX, NB_INIT_ZERO),
	};
	struct counter c = { 0 };
	nb_net_config cfg = { .layers = layers, .layer_count = 6, .input = { 1, 28, 28 },
	                      .cost = NB_CROSS_ENTROPY, .seed = 1, .alloc = counting,
	                      .alloc_ud = &c };
	nb_sgd opt = { .batch = B, .eta = 0.03, .weight_decay = 0.1 / 800 };
	double *images = malloc(steps * B * 28 * 28 * sizeof *images);
	double *y = calloc(steps * B * CLASSES, sizeof *y);
	double s[REPEATS];
	char msg[NB_MSG_MAX];
	nb_net *net = NULL;
	size_t before;

	if (!images || !y)
		die("conv", "out of memory");
	fill(images, steps * B * 28 * 28);
	for (size_t e = 0; e < steps * B; e++)
		y[e * CLASSES + e % CLASSES] = 1.0;
	if (nb_net_new(&cfg, &net, msg) != NB_OK)
		die("conv", msg);
	if (nb_net_sgd_step(net, images, y, B, &opt, NULL) != NB_OK)
		die("conv", nb_net_message(net));
	before = c.allocs;
	for (int r = -1; r < REPEATS; r++) {
		double t0 = now();

		for (size_t k = 0; k < steps; k++)
			if (nb_net_sgd_step(net, images + k * B * 28 * 28, y + k * B * CLASSES, B, &opt,
			                    NULL) != NB_OK)
				die("conv", nb_net_message(net));
		if (r >= 0)
			s[r] = (now() - t0) / (double)steps;
	}
	*allocs = (double)(c.allocs - before) / (double)(steps * (REPEATS + 1));
	nb_net_free(net);
	free(images);
	free(y);
	return median(s, REPEATS);
}

static void network(const char *name, const size_t *sizes, size_t n_layers, size_t batch,
                    size_t steps)
{
	struct problem p = { .n_layers = n_layers, .sizes = sizes, .batch = batch, .steps = steps };
	double ad, cf, ad2;

	make_problem(&p);
	ad = autodiff_step(&p, 1);
	cf = closed_form_step(&p);
	ad2 = autodiff_step(&p, 2);
	printf("%s_us_per_step: %.2f\n", name, ad * 1e6);
	printf("%s_closed_form_us_per_step: %.2f\n", name, cf * 1e6);
	printf("%s_gflops: %.2f\n", name, step_flops(&p) / ad * 1e-9);
	printf("%s_ratio_vs_closed_form: %.3f\n", name, ad / cf);
	printf("%s_gflops_2threads: %.2f\n", name, step_flops(&p) / ad2 * 1e-9);
	if (n_layers == 3)
		printf("rerecord_us_per_step: %.2f\n", rerecord_step(&p) * 1e6);
	step_memory(&p, name);
	free_problem(&p);
}

int main(void)
{
	network("nielsen", (size_t[]){ 784, 30, 10 }, 3, 10, 800);
	network("wide", (size_t[]){ 784, 256, 256, 10 }, 4, 64, 40);
	printf("gemm_gflops_1024: %.2f\n", gemm_gflops(1024));
	printf("tape_ns_per_node: %.1f\n", tape_ns_per_node(100000));
	{
		double allocs, us = conv_step(20, &allocs) * 1e6;

		printf("conv_us_per_step: %.1f\n", us);
		printf("conv_allocs_per_step: %g\n", allocs);
	}
	return 0;
}
