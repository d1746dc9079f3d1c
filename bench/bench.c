/* bench.c -- how fast nabla trains, in one run: prints one "name: value" line per figure.
 * Each figure is the median of several repetitions after a warm-up. Run with `make bench`.
 *
 *   nielsen_us_per_step          autodiff SGD step, [784, 30, 10], batch 10, one thread
 *   nielsen_ratio_vs_closed_form that time over a closed-form BP1-BP4 step (same kernels)
 *   wide_gflops                  [784, 256, 256, 10], batch 64, one thread
 *   wide_ratio_vs_closed_form
 *   wide_gflops_2threads         the same with two threads (nb_net_set_threads)
 *   wide_speedup_2threads        the step's time on one thread over its time on two
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
 *
 * With OpenBLAS (configure found it), one thread of it (openblas_set_num_threads(1)):
 *   nielsen_blas_trainer_us_per_step  the same SGD steps by blas_trainer.c, plain C with
 *                                cblas_dgemm for every product (also wide_...)
 *   nielsen_ratio_vs_blas_trainer     nabla's step over the reference's, the two timed in
 *                                turns in one run (also wide_...)
 *   blas_trainer_max_rel_diff    the largest relative difference of any parameter of both
 *                                networks after 20 steps of both from the same start
 *   gemm_ratio_vs_blas_1024      nabla's 1024 x 1024 product time over cblas_dgemm's
 *   gemm_ratio_vs_blas_1024_ISA  the same with nabla's avx512, avx2 or plain kernels
 *                                (nb_set_kernels) against OpenBLAS's SkylakeX, Haswell or
 *                                Prescott core: bench --gemm-only ISA, run by bench with
 *                                OPENBLAS_CORETYPE set, for each set the processor has
 *
 * With MPI (configure found it; mpi_bench.c), the wide network trained data-parallel by
 * nb_mpi_net_sgd_step() on global mini-batches of 128, one thread per rank: bench runs
 * itself under mpirun (configure's, or $MPIRUN), bench --mpi-step FILE, with 1 rank and
 * with 2, each run 3 warm-up steps then passes of 30 steps, the median pass:
 *   mpi_us_per_step_1rank        a step with one rank (the slowest rank's time)
 *   mpi_us_per_step_2ranks       the same global step with two ranks, each computing half
 *   mpi_speedup_2ranks           the first over the second
 *   mpi_max_rel_diff_2ranks_vs_1 after all their steps (213), the largest difference of
 *                                the two runs' parameters in a tensor over the tensor's
 *                                largest parameter, the largest over the tensors (each
 *                                network saved to a file in the current directory, then
 *                                removed)
 *   mpi_max_elementwise_rel_diff_2ranks_vs_1
 *                                the largest difference of one parameter over itself
 * bench --mpi prints only the line "cpu: ..." and these.
 * and always, first, a line "cpu: ...": the processor, nabla's kernels and the BLAS.
 * `make bench-gemm` (bench --gemm): nabla's products against the BLAS's, square ones and
 * those of the benchmark's training steps, one line per shape.
 * `make bench-sweep` (bench --sweep): nabla's SGD step against blas_trainer.c's for
 * [784, h, 10], h in {30, 100, 300, 1000}, batch in {1, 10, 100, 1000} (sweep.c).
 */
#define _POSIX_C_SOURCE 200809L

#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "nabla_nn.h"
#include "bench.h"
#include "problem.h"

double bench_now(void)
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

double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, by_value);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t rng_state = 88172645463325252u;

double bench_uniform(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) * 0x1.0p-53;
}

void bench_fill(double *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = bench_uniform();
}

_Noreturn void bench_die(const char *what, const char *msg)
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

/* Seconds per step of the autodiff network on the given number of threads, median over
 * REPEATS passes of p->steps. */
static double autodiff_step(const struct problem *p, int threads)
{
	nb_net *net = problem_net(p, NULL, NULL);
	nb_sgd opt = { .batch = p->batch, .eta = 0.1 };
	size_t in = p->sizes[0], out = p->sizes[p->n_layers - 1];
	double t[REPEATS];

	nb_net_set_threads(net, threads);
	for (int r = -1; r < REPEATS; r++) {  /* r = -1: warm-up */
		double t0 = bench_now();

		for (size_t s = 0; s < p->steps; s++)
			if (nb_net_sgd_step(net, p->x + s * p->batch * in, p->y + s * p->batch * out,
			                    p->batch, &opt, NULL) != NB_OK)
				bench_die("sgd_step", nb_net_message(net));
		if (r >= 0)
			t[r] = (bench_now() - t0) / (double)p->steps;
	}
	nb_net_free(net);
	return bench_median(t, REPEATS);
}

/* The same steps with gradients from nb_bp_reference (BP1-BP4 written out) and the same
 * update, on the same parameters. */
static double closed_form_step(const struct problem *p)
{
	nb_net *net = problem_net(p, NULL, NULL);
	nb_mlp m = nb_net_mlp(net);
	size_t L = p->n_layers - 1, in = p->sizes[0], out = p->sizes[L];
	double *dw[8], *db[8], t[REPEATS];
	char msg[NB_MSG_MAX];

	for (size_t l = 0; l < L; l++) {
		dw[l] = malloc(p->sizes[l + 1] * p->sizes[l] * sizeof(double));
		db[l] = malloc(p->sizes[l + 1] * sizeof(double));
	}
	for (int r = -1; r < REPEATS; r++) {
		double t0 = bench_now();

		for (size_t s = 0; s < p->steps; s++) {
			if (nb_bp_reference(&m, p->batch, p->xc + s * p->batch * in,
			                    p->yc + s * p->batch * out, dw, db, NULL, NULL, msg))
				bench_die("bp_reference", msg);
			for (size_t l = 0; l < L; l++) {
				double *w = nb_net_weights(net, l), *b = nb_net_biases(net, l);

				for (size_t i = 0; i < p->sizes[l + 1] * p->sizes[l]; i++)
					w[i] -= 0.1 * dw[l][i];
				for (size_t j = 0; j < p->sizes[l + 1]; j++)
					b[j] -= 0.1 * db[l][j];
			}
		}
		if (r >= 0)
			t[r] = (bench_now() - t0) / (double)p->steps;
	}
	for (size_t l = 0; l < L; l++) {
		free(dw[l]);
		free(db[l]);
	}
	nb_net_free(net);
	return bench_median(t, REPEATS);
}

/* Allocations of steps after the first, and the memory of the step's tape. */
static void step_memory(const struct problem *p, const char *name)
{
	struct counter c = { 0 };
	nb_net *net = problem_net(p, counting, &c);
	nb_sgd opt = { .batch = p->batch, .eta = 0.1 };
	size_t before, allocs;
	nb_tape *t;

	before = c.bytes;
	t = nb_net_tape(net, p->batch);
	if (!t)
		bench_die("tape", nb_net_message(net));
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

#ifdef HAVE_OPENBLAS
/* ---- The hand-written reference: blas_trainer.c ----------------------------------------- */

/* Steps after which the reference's parameters are compared with nabla's. */
enum { SAME_STEPS = 20 };

/* Train nabla's network and the reference from the same parameters on the same first
 * SAME_STEPS mini-batches; the largest relative difference of their parameters. */
static double trainer_difference(const struct problem *p)
{
	nb_net *net = problem_net(p, NULL, NULL);
	blas_trainer *bt = problem_trainer(p, net);
	nb_sgd opt = { .batch = p->batch, .eta = 0.1 };
	size_t in = p->sizes[0], out = p->sizes[p->n_layers - 1];
	double d;

	for (size_t s = 0; s < SAME_STEPS && s < p->steps; s++) {
		const double *x = p->x + s * p->batch * in, *y = p->y + s * p->batch * out;

		if (nb_net_sgd_step(net, x, y, p->batch, &opt, NULL) != NB_OK)
			bench_die("sgd_step", nb_net_message(net));
		blas_trainer_step(bt, x, y, opt.eta);
	}
	d = problem_max_rel_diff(p, net, bt);
	blas_trainer_free(bt);
	nb_net_free(net);
	return d;
}

/* Seconds per step of nabla's network and of the reference, from the same parameters,
 * timed in turns. */
static void trainer_times(const struct problem *p, double *nabla_s, double *ref_s)
{
	nb_net *net = problem_net(p, NULL, NULL);
	blas_trainer *bt = problem_trainer(p, net);

	problem_trainer_times(p, net, bt, nabla_s, ref_s);
	blas_trainer_free(bt);
	nb_net_free(net);
}
#endif

/* ---- Raw kernels and the tape itself ---------------------------------------------------- */

/* GFLOP/s of an n x n matmul, replayed on a tape. */
static double gemm_gflops(size_t n)
{
	nb_tape *t = nb_tape_new();
	double *a = malloc(n * n * sizeof *a), *b = malloc(n * n * sizeof *b), s[REPEATS];

	bench_fill(a, n * n);
	bench_fill(b, n * n);
	nb_set_name(nb_matmul(t, nb_constant(t, 2, (size_t[]){ n, n }, a),
	                      nb_constant(t, 2, (size_t[]){ n, n }, b)), "c");
	for (int r = 0; r < REPEATS; r++) {
		double t0 = bench_now();

		nb_touch(nb_input(nb_tape_find(t, "c"), 0));
		nb_tape_replay(t);
		s[r] = 2.0 * (double)n * (double)n * (double)n / (bench_now() - t0) * 1e-9;
	}
	free(a);
	free(b);
	nb_tape_free(t);
	return bench_median(s, REPEATS);
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
		bench_die("chain", nb_tape_message(t));
	for (int r = -1; r < REPEATS; r++) {
		double t0 = bench_now();

		nb_touch(y0);
		nb_tape_replay(t);
		if (r >= 0)
			s[r] = (bench_now() - t0) / (double)nb_tape_size(t) * 1e9;
	}
	nb_tape_free(t);
	return bench_median(s, REPEATS);
}

/* Seconds per step of Nielsen's network written as a define-by-run loop: each step
 * rewinds the tape to the parameters, records the forward pass and its gradients anew
 * for the next mini-batch, and updates the parameters (views of the network's arrays). */
static double rerecord_step(const struct problem *p)
{
	nb_net *net = problem_net(p, NULL, NULL);
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
		double t0 = bench_now();

		for (size_t k = 0; k < p->steps; k++) {
			nb_tensor *x, *y, *a1, *a2;

			nb_tape_rewind(t, mark);
			x = nb_constant_view(t, 2, (size_t[]){ b, in }, p->x + k * b * in);
			y = nb_constant_view(t, 2, (size_t[]){ out, b }, p->yc + k * b * out);
			a1 = nb_sigmoid(t, nb_add(t, nb_matmul_t(t, w[0], x, NB_TRANS_B), w[2]));
			a2 = nb_sigmoid(t, nb_add(t, nb_matmul(t, w[1], a1), w[3]));
			if (nb_backward(t, nb_quadratic_cost(t, a2, y), NULL) != NB_OK ||
			    nb_sgd_update(w, NULL, NULL, 4, &o) != NB_OK)
				bench_die("rerecord", nb_tape_message(t));
		}
		if (r >= 0)
			s[r] = (bench_now() - t0) / (double)p->steps;
	}
	nb_tape_free(t);
	nb_net_free(net);
	return bench_median(s, REPEATS);
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
		bench_die("conv", "out of memory");
	bench_fill(images, steps * B * 28 * 28);
	for (size_t e = 0; e < steps * B; e++)
		y[e * CLASSES + e % CLASSES] = 1.0;
	if (nb_net_new(&cfg, &net, msg) != NB_OK)
		bench_die("conv", msg);
	if (nb_net_sgd_step(net, images, y, B, &opt, NULL) != NB_OK)
		bench_die("conv", nb_net_message(net));
	before = c.allocs;
	for (int r = -1; r < REPEATS; r++) {
		double t0 = bench_now();

		for (size_t k = 0; k < steps; k++)
			if (nb_net_sgd_step(net, images + k * B * 28 * 28, y + k * B * CLASSES, B, &opt,
			                    NULL) != NB_OK)
				bench_die("conv", nb_net_message(net));
		if (r >= 0)
			s[r] = (bench_now() - t0) / (double)steps;
	}
	*allocs = (double)(c.allocs - before) / (double)(steps * (REPEATS + 1));
	nb_net_free(net);
	free(images);
	free(y);
	return bench_median(s, REPEATS);
}

/* The figures of one fully connected network; returns how far the reference trainer's
 * parameters end from nabla's (0 without a BLAS). */
static double network(const char *name, const size_t *sizes, size_t n_layers, size_t batch,
                      size_t steps)
{
	struct problem p = { .n_layers = n_layers, .sizes = sizes, .batch = batch, .steps = steps };
	double ad, cf, ad2, diff = 0.0;

	problem_make(&p);
	ad = autodiff_step(&p, 1);
	cf = closed_form_step(&p);
	ad2 = autodiff_step(&p, 2);
	printf("%s_us_per_step: %.2f\n", name, ad * 1e6);
	printf("%s_closed_form_us_per_step: %.2f\n", name, cf * 1e6);
	printf("%s_gflops: %.2f\n", name, problem_step_flops(&p) / ad * 1e-9);
	printf("%s_ratio_vs_closed_form: %.3f\n", name, ad / cf);
	printf("%s_gflops_2threads: %.2f\n", name, problem_step_flops(&p) / ad2 * 1e-9);
	printf("%s_speedup_2threads: %.2f\n", name, ad / ad2);
#ifdef HAVE_OPENBLAS
	{
		double nabla_s, ref_s;

		trainer_times(&p, &nabla_s, &ref_s);
		printf("%s_blas_trainer_us_per_step: %.2f\n", name, ref_s * 1e6);
		printf("%s_ratio_vs_blas_trainer: %.3f\n", name, nabla_s / ref_s);
		diff = trainer_difference(&p);
	}
#endif
	if (n_layers == 3)
		printf("rerecord_us_per_step: %.2f\n", rerecord_step(&p) * 1e6);
	step_memory(&p, name);
	problem_free(&p);
	return diff;
}

/* The figures of `make bench`. */
static void bench_all(void)
{
	double diff;

	gemm_print_setup();
	diff = network("nielsen", (size_t[]){ 784, 30, 10 }, 3, 10, 800);
	diff = fmax(diff, network("wide", (size_t[]){ 784, 256, 256, 10 }, 4, 64, 40));
#ifdef HAVE_OPENBLAS
	printf("blas_trainer_max_rel_diff: %.3g\n", diff);
#else
	(void)diff;
#endif
	printf("gemm_gflops_1024: %.2f\n", gemm_gflops(1024));
#ifdef HAVE_OPENBLAS
	{
		double ns, bs;

		gemm_compare(false, false, 1024, 1024, 1024, &ns, &bs);
		printf("gemm_ratio_vs_blas_1024: %.3f\n", ns / bs);
		gemm_ratios_per_isa("/proc/self/exe");
	}
#endif
	printf("tape_ns_per_node: %.1f\n", tape_ns_per_node(100000));
	{
		double allocs, us = conv_step(20, &allocs) * 1e6;

		printf("conv_us_per_step: %.1f\n", us);
		printf("conv_allocs_per_step: %g\n", allocs);
	}
#ifdef NABLA_WITH_MPI
	mpi_speedup("/proc/self/exe");
#endif
}

/* bench: every figure; bench --gemm: the products of make bench-gemm; bench --sweep: the
 * networks of make bench-sweep; bench --gemm-only ISA: gemm_ratio_vs_blas_1024_ISA, which
 * bench runs itself for each instruction set; with MPI, bench --mpi: the mpi_* figures
 * alone, and bench --mpi-step FILE: one rank of the runs bench starts under mpirun for
 * them. */
int main(int argc, char **argv)
{
#ifdef HAVE_OPENBLAS
	openblas_set_num_threads(1);
#endif
	if (argc == 1) {
		bench_all();
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--gemm") == 0) {
		gemm_print_setup();
		gemm_shapes();
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--sweep") == 0) {
		sweep_networks();
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--gemm-only") == 0)
		return gemm_only(argv[2]);
#ifdef NABLA_WITH_MPI
	if (argc == 2 && strcmp(argv[1], "--mpi") == 0) {
		gemm_print_setup();
		mpi_speedup("/proc/self/exe");
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--mpi-step") == 0)
		return mpi_step(argv[2]);
	fprintf(stderr, "usage: bench [--gemm | --sweep | --mpi]\n");
#else
	fprintf(stderr, "usage: bench [--gemm | --sweep]\n");
#endif
	return 2;
}
