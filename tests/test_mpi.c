/* test_mpi.c -- data-parallel training over MPI (nabla_mpi.h), run by tests/mpi.sh under
 * mpirun with 1, 2 and 3 ranks. Every rank runs every test, in the same order, so the
 * collectives meet; Check runs them in this process (no fork), as MPI needs.
 *
 * What is checked: the sum over the ranks is in rank order, to the bit; P ranks train
 * what one process trains on the same global mini-batches (to the bit with one rank,
 * within 1e-12 relative with more), steps and epochs, for networks and for a program's own
 * op graph; a rerun gives the same bits; a checkpoint restored continues as if the run had
 * not stopped; a rank that fails (a bad file, no memory, another network) makes every rank
 * return its error, naming it; steps allocate nothing after the first; bad arguments. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "nabla_mpi.h"

/* The relative difference allowed between P ranks and one process: rounding only, since
 * each rank sums its share of a mini-batch and then the shares are summed. */
#define TOL_RANKS 1e-12

static int RANK, SIZE;

static nb_mpi *new_mpi(nb_alloc_fn alloc, void *ud)
{
	nb_mpi_opts o = { .alloc = alloc, .alloc_ud = ud };
	char msg[NB_MSG_MAX];
	nb_mpi *m = NULL;

	ck_assert_msg(nb_mpi_new(MPI_COMM_WORLD, &o, &m, msg) == NB_OK, "%s", msg);
	ck_assert_int_eq(nb_mpi_rank(m), RANK);
	ck_assert_int_eq(nb_mpi_size(m), SIZE);
	return m;
}

/* ---- Networks and data ---------------------------------------------------------------- */

/* The networks the tests train: 0, Nielsen's kind (sigmoid, quadratic cost) with plain
 * SGD; 1, a convolutional one with a softmax and momentum; 2, a relu one with Adam. */
static const nb_layer CONV[] = { NB_CONV2D(2, 3, NB_RELU, NB_INIT_HE), NB_MAX_POOL(2),
                                 NB_DENSE(3, NB_SOFTMAX, NB_INIT_ZERO) };
static const size_t SIZES[3] = { 36, 7, 3 };

static nb_net *make_net(int kind, unsigned long long seed, nb_alloc_fn alloc, void *ud)
{
	nb_net_config c = { .n_layers = 3, .sizes = SIZES, .seed = seed, .alloc = alloc,
	                    .alloc_ud = ud };
	char msg[NB_MSG_MAX];
	nb_net *net = NULL;

	if (kind == 1) {
		c.layers = CONV;
		c.layer_count = 3;
		c.input[0] = 1;
		c.input[1] = c.input[2] = 6;
		c.cost = NB_CROSS_ENTROPY;
	} else if (kind == 2) {
		c.hidden = NB_RELU;
		c.init = NB_INIT_HE;
	}
	ck_assert_msg(nb_net_new(&c, &net, msg) == NB_OK, "%s", msg);
	return net;
}

static nb_sgd opts_of(int kind, size_t batch)
{
	nb_sgd o = { .batch = batch, .eta = 0.5 };

	if (kind == 1) {
		o.eta = 0.1;
		o.momentum = 0.6;
		o.weight_decay = 1e-3;
	} else if (kind == 2) {
		o.eta = 0.01;
		o.method = NB_METHOD_ADAM;
	}
	return o;
}

/* n random examples of 36 features and 3 classes, the same on every rank. */
static void make_data(nb_dataset *ds, size_t n, uint64_t seed)
{
	test_rng r;

	rng_seed(&r, seed);
	*ds = (nb_dataset){ .n = n, .rows = 6, .cols = 6, .features = 36, .classes = 3 };
	ds->x = malloc(n * 36 * sizeof *ds->x);
	ds->y = calloc(n * 3, sizeof *ds->y);
	ds->label = malloc(n);
	rng_fill(&r, ds->x, n * 36, 0.0, 1.0);
	for (size_t i = 0; i < n; i++) {
		ds->label[i] = (unsigned char)((ds->x[36 * i] > 0.5) + (ds->x[36 * i + 7] > 0.5));
		ds->y[3 * i + ds->label[i]] = 1.0;
	}
}

static void free_data(nb_dataset *ds)
{
	free(ds->x);
	free(ds->y);
	free(ds->label);
}

/* Part q of P of ds as the library splits data sets: a view. */
static nb_dataset part_of(const nb_dataset *ds, size_t q, size_t p)
{
	size_t n = ds->n / p + (q < ds->n % p), first = q * (ds->n / p) +
	           (q < ds->n % p ? q : ds->n % p);
	nb_dataset v = *ds;

	v.n = n;
	v.x = ds->x + first * ds->features;
	v.y = ds->y + first * ds->classes;
	v.label = ds->label + first;
	return v;
}

/* The parameters of net, flat, in nb_net_tensors() order: nb_net_param_count() doubles. */
static double *params_of(nb_net *net)
{
	nb_named_tensor t[8];
	size_t n = nb_net_tensors(net, t, 8), off = 0;
	double *p = malloc(nb_net_param_count(net) * sizeof *p);

	for (size_t i = 0; i < n; i++) {
		size_t size = 1;

		for (int d = 0; d < t[i].rank; d++)
			size *= t[i].dim[d];
		memcpy(p + off, t[i].data, size * sizeof *p);
		off += size;
	}
	return p;
}

/* a and b: equal bits with one rank, within TOL_RANKS with more; the largest relative
 * difference (printed by rank 0, the figure of the test's log). */
static double expect_like_one_process(nb_net *a, nb_net *b, const char *what)
{
	size_t n = nb_net_param_count(a);
	double *pa = params_of(a), *pb = params_of(b);
	double d = max_rel_diff(pa, pb, n, 1e-3);

	if (RANK == 0)
		printf("%s, %d ranks: largest relative difference from one process %.3g\n", what,
		       SIZE, d);
	if (SIZE == 1)
		ck_assert_msg(memcmp(pa, pb, n * sizeof *pa) == 0, "%s: one rank is not one "
		              "process to the bit (%.3g)", what, d);
	ck_assert_msg(d <= TOL_RANKS, "%s: %.3g from one process", what, d);
	ck_assert_uint_eq(nb_net_param_count(b), n);
	free(pa);
	free(pb);
	return d;
}

/* Every rank holds rank 0's parameters, to the bit. */
static void expect_same_on_every_rank(nb_net *net)
{
	size_t n = nb_net_param_count(net);
	double *mine = params_of(net), *zero = params_of(net);
	int same, all;

	MPI_Bcast(zero, (int)n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
	same = memcmp(mine, zero, n * sizeof *mine) == 0;
	MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	ck_assert_msg(all, "the ranks' parameters differ");
	free(mine);
	free(zero);
}

/* The end of a test of P ranks against one process: the two networks compared (what
 * names the run), then freed with the data and the context. */
static void finish_comparison(nb_net *ranks, nb_net *one, const char *what, nb_dataset *ds,
                              nb_mpi *m)
{
	expect_like_one_process(ranks, one, what);
	expect_same_on_every_rank(ranks);
	nb_net_free(ranks);
	nb_net_free(one);
	free_data(ds);
	nb_mpi_free(m);
}

/* ---- The sum in rank order ------------------------------------------------------------ */

/* Values whose sum depends on the order of the additions: each rank's are 1e16 times
 * (-1)^rank plus small ones, so ((g0 + g1) + g2) differs from g0 + (g1 + g2). Every rank
 * gets the sum in rank order to the bit, for sizes that split unevenly too. */
START_TEST(test_sum_is_in_rank_order)
{
	static const size_t SIZE_OF[3] = { 1, 7, 1000 };
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_tape *t = nb_tape_new();
	size_t n = SIZE_OF[_i];
	double *v = malloc(n * sizeof *v), *want = calloc(n, sizeof *want);
	nb_tensor *src = nb_constant(t, 1, &n, NULL), *dst = nb_constant(t, 1, &n, NULL);

	for (int q = 0; q < SIZE; q++)
		for (size_t j = 0; j < n; j++) {
			double g = (q % 2 ? -1e16 : 1e16) * (q > 0 ? 1.0 : 0.5) + 0.37 * (double)(j + 1)
			           + 1.25 * q;

			want[j] = q == 0 ? g : want[j] + g;
			if (q == RANK)
				v[j] = g;
		}
	ck_assert_int_eq(nb_set(src, v, n), NB_OK);
	ck_assert_int_eq(nb_mpi_sum(m, &src, &dst, 1, 1.0), NB_OK);
	ck_assert_mem_eq(nb_value(dst), want, n * sizeof *want);
	free(v);
	free(want);
	nb_tape_free(t);
	nb_mpi_free(m);
}
END_TEST

/* ---- Steps and epochs against one process -------------------------------------------- */

/* _i: the network (kind _i % 3) and the global batch (12, which 1, 2 and 3 ranks split
 * evenly, or 10, which 3 do not). 15 steps by nb_mpi_net_sgd_step() against 15 by
 * nb_net_sgd_step() on the same batches; the costs agree too. */
START_TEST(test_steps_equal_one_process)
{
	int kind = _i % 3;
	size_t batch = _i < 3 ? 12 : 10;
	nb_sgd opt = opts_of(kind, batch);
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_net *ranks = make_net(kind, 11, NULL, NULL), *one = make_net(kind, 11, NULL, NULL);
	nb_dataset ds;
	char what[64];

	make_data(&ds, 15 * batch, 3);
	ck_assert_int_eq(nb_mpi_net_sync(m, ranks), NB_OK);
	for (size_t s = 0; s < 15; s++) {
		const double *x = ds.x + s * batch * 36, *y = ds.y + s * batch * 3;
		double c_ranks, c_one;

		ck_assert_int_eq(nb_mpi_net_sgd_step(m, ranks, x, y, batch, &opt, &c_ranks), NB_OK);
		ck_assert_int_eq(nb_net_sgd_step(one, x, y, batch, &opt, &c_one), NB_OK);
		ck_assert_double_le(rel_diff(c_ranks, c_one), TOL_RANKS);
	}
	snprintf(what, sizeof what, "network %d, 15 steps of batch %zu", kind, batch);
	finish_comparison(ranks, one, what, &ds, m);
}
END_TEST

/* One process's epoch e of the same parts: step s is the concatenation of every rank's
 * share, in the order nb_mpi_epoch_order() gives each rank. */
static void one_process_epoch(nb_net *net, const nb_dataset *ds, const nb_sgd *opt,
                              size_t epoch)
{
	size_t p = (size_t)SIZE, steps = 0, *order[3], b[3];
	nb_dataset part[3];
	double *x = malloc(opt->batch * 36 * sizeof *x), *y = malloc(opt->batch * 3 * sizeof *y);

	for (size_t q = 0; q < p; q++) {
		part[q] = part_of(ds, q, p);
		b[q] = opt->batch / p + (q < opt->batch % p);
		order[q] = malloc((part[q].n + 1) * sizeof *order[q]);
		nb_mpi_epoch_order(nb_net_get_config(net).seed, epoch, (int)q, part[q].n, order[q]);
		if ((part[q].n + b[q] - 1) / b[q] > steps)
			steps = (part[q].n + b[q] - 1) / b[q];
	}
	for (size_t s = 0; s < steps; s++) {
		size_t k = 0;

		for (size_t q = 0; q < p; q++)
			for (size_t j = s * b[q]; j < (s + 1) * b[q] && j < part[q].n; j++, k++) {
				memcpy(x + k * 36, part[q].x + order[q][j] * 36, 36 * sizeof *x);
				memcpy(y + k * 3, part[q].y + order[q][j] * 3, 3 * sizeof *y);
			}
		ck_assert_int_eq(nb_net_sgd_step(net, x, y, k, opt, NULL), NB_OK);
	}
	for (size_t q = 0; q < p; q++)
		free(order[q]);
	free(x);
	free(y);
}

/* _i: the network. Two epochs over 47 examples split across the ranks (parts of 47 / P),
 * batch 9 (shares of 9 / P), against one process taking the same mini-batches. */
START_TEST(test_epochs_equal_one_process)
{
	nb_sgd opt = opts_of(_i, 9);
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_net *ranks = make_net(_i, 5, NULL, NULL), *one = make_net(_i, 5, NULL, NULL);
	nb_dataset ds, mine;
	double cost = -1.0;

	make_data(&ds, 47, 8);
	mine = part_of(&ds, (size_t)RANK, (size_t)SIZE);
	for (size_t e = 0; e < 2; e++) {
		ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, ranks, &mine, &opt, e, &cost, NULL, NULL),
		                 NB_OK);
		one_process_epoch(one, &ds, &opt, e);
	}
	ck_assert(cost > 0.0 && isfinite(cost));
	finish_comparison(ranks, one, _i == 0 ? "network 0, 2 epochs" : _i == 1 ?
	                  "network 1, 2 epochs" : "network 2, 2 epochs", &ds, m);
}
END_TEST

/* The examples of all parts are visited once each per epoch (progress counts them all). */
static void count_progress(void *ud, size_t done, size_t total)
{
	size_t *last = ud;

	ck_assert_uint_gt(done, last[0]);
	last[0] = done;
	last[1] = total;
}

/* Evaluation over the parts counts what one process counts over the whole set; the
 * progress of an epoch ends at every example. */
START_TEST(test_evaluate_and_progress_over_parts)
{
	nb_sgd opt = opts_of(0, 6);
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_net *net = make_net(0, 2, NULL, NULL);
	nb_dataset ds, mine;
	size_t correct = 0, total = 0, c1 = 0, last[2] = { 0, 0 };
	double cost = 0.0, cost1 = 0.0;

	make_data(&ds, 31, 4);
	mine = part_of(&ds, (size_t)RANK, (size_t)SIZE);
	ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, net, &mine, &opt, 0, NULL, count_progress, last),
	                 NB_OK);
	ck_assert_uint_eq(last[0], 31);
	ck_assert_uint_eq(last[1], 31);
	ck_assert_int_eq(nb_mpi_net_evaluate(m, net, &mine, &correct, &total, &cost), NB_OK);
	ck_assert_int_eq(nb_net_evaluate(net, &ds, &c1, &cost1), NB_OK);
	ck_assert_uint_eq(total, 31);
	ck_assert_uint_eq(correct, c1);
	ck_assert_double_le(rel_diff(cost, cost1), 1e-13);
	nb_net_free(net);
	free_data(&ds);
	nb_mpi_free(m);
}
END_TEST

/* ---- Reproducibility and checkpoints ------------------------------------------------ */

/* The parameters as one number, for tests/mpi.sh to compare two runs of the same P. */
static unsigned long long fnv(const double *p, size_t n)
{
	unsigned long long h = 1469598103934665603ull;
	const unsigned char *b = (const unsigned char *)p;

	for (size_t i = 0; i < n * sizeof *p; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

/* Two runs in this process give the same bits; the hash of the parameters is printed for
 * tests/mpi.sh, which compares it across runs of the program. */
START_TEST(test_rerun_gives_the_same_bits)
{
	nb_sgd opt = opts_of(1, 7);
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_dataset ds, mine;
	double *p[2];

	make_data(&ds, 40, 6);
	mine = part_of(&ds, (size_t)RANK, (size_t)SIZE);
	for (int run = 0; run < 2; run++) {
		nb_net *net = make_net(1, 9, NULL, NULL);

		for (size_t e = 0; e < 2; e++)
			ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, net, &mine, &opt, e, NULL, NULL, NULL),
			                 NB_OK);
		p[run] = params_of(net);
		if (run == 1) {
			ck_assert_mem_eq(p[0], p[1], nb_net_param_count(net) * sizeof *p[0]);
			if (RANK == 0)
				printf("parameters-hash %d ranks: %016llx\n", SIZE,
				       fnv(p[1], nb_net_param_count(net)));
		}
		nb_net_free(net);
	}
	free(p[0]);
	free(p[1]);
	free_data(&ds);
	nb_mpi_free(m);
}
END_TEST

/* Two epochs, save, a network whose parameters are spoilt restored from the file, two
 * more epochs (2 and 3): the same bits as four epochs without stopping. (The order of an
 * epoch comes from the network's seed, so the restarted run is made with the same.) */
START_TEST(test_checkpoint_continues_the_run)
{
	const char *path = "test_mpi_checkpoint.tmp";
	nb_sgd opt = opts_of(0, 8);
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_net *whole = make_net(0, 3, NULL, NULL), *first = make_net(0, 3, NULL, NULL);
	nb_net *second = make_net(0, 3, NULL, NULL);
	nb_dataset ds, mine;
	double *a, *b;

	make_data(&ds, 50, 7);
	mine = part_of(&ds, (size_t)RANK, (size_t)SIZE);
	for (size_t e = 0; e < 4; e++)
		ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, whole, &mine, &opt, e, NULL, NULL, NULL),
		                 NB_OK);
	for (size_t e = 0; e < 2; e++)
		ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, first, &mine, &opt, e, NULL, NULL, NULL),
		                 NB_OK);
	ck_assert_int_eq(nb_mpi_net_save(m, first, path), NB_OK);
	memset(nb_net_weights(second, 0), 0, 7 * 36 * sizeof(double));
	nb_net_biases(second, 1)[2] = 5.0;
	ck_assert_int_eq(nb_mpi_net_restore(m, second, path), NB_OK);
	for (size_t e = 2; e < 4; e++)
		ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, second, &mine, &opt, e, NULL, NULL, NULL),
		                 NB_OK);
	a = params_of(whole);
	b = params_of(second);
	ck_assert_mem_eq(a, b, nb_net_param_count(whole) * sizeof *a);
	expect_same_on_every_rank(second);
	MPI_Barrier(MPI_COMM_WORLD);
	if (RANK == 0)
		remove(path);
	free(a);
	free(b);
	nb_net_free(whole);
	nb_net_free(first);
	nb_net_free(second);
	free_data(&ds);
	nb_mpi_free(m);
}
END_TEST

/* ---- A program's own op graph --------------------------------------------------------- */

/* A linear least-squares model W x + b, its cost the mean over a batch of n: recorded on
 * t with inputs X (n x 3) and targets Y (n x 2). */
struct linear {
	nb_tape *t;
	nb_tensor *w, *b, *x, *y, *cost, *sum[2];
};

static void linear_new(struct linear *l, size_t n, unsigned long long seed)
{
	double w[6];
	test_rng r;

	rng_seed(&r, seed);
	rng_fill(&r, w, 6, -1.0, 1.0);
	l->t = nb_tape_new();
	l->w = nb_variable(l->t, 2, (size_t[]){ 3, 2 }, w);
	l->b = nb_variable(l->t, 2, (size_t[]){ 1, 2 }, NULL);
	l->x = nb_constant(l->t, 2, (size_t[]){ n, 3 }, NULL);
	l->y = nb_constant(l->t, 2, (size_t[]){ n, 2 }, NULL);
	{
		nb_tensor *e = nb_sub(l->t, nb_add(l->t, nb_matmul(l->t, l->x, l->w), l->b), l->y);

		l->cost = nb_scale(l->t, nb_sum(l->t, nb_mul(l->t, e, e)), 1.0 / (double)n);
	}
	ck_assert_int_eq(nb_backward(l->t, l->cost, NULL), NB_OK);
	l->sum[0] = nb_constant(l->t, 2, (size_t[]){ 3, 2 }, NULL);
	l->sum[1] = nb_constant(l->t, 2, (size_t[]){ 1, 2 }, NULL);
	ck_assert_int_eq(nb_tape_status(l->t), NB_OK);
}

/* 10 steps of a global batch of 12 (rows of x and y): the ranks broadcast rank 0's start,
 * each takes its share, sums the gradients weighed by it, and updates with nb_sgd_update();
 * one process takes the whole batches. */
START_TEST(test_own_graph_equals_one_process)
{
	size_t share = 12 / (size_t)SIZE, first = share * (size_t)RANK;
	nb_mpi *m = new_mpi(NULL, NULL);
	struct linear ranks, one;
	nb_sgd_opts o = { .eta = 0.1 };
	double x[12 * 3], y[12 * 2];
	test_rng r;

	linear_new(&ranks, share, 100 + (unsigned long long)RANK);  /* each rank its own start */
	linear_new(&one, 12, 100);
	ck_assert_int_eq(nb_mpi_broadcast(m, (nb_tensor *[]){ ranks.w, ranks.b }, 2), NB_OK);
	ck_assert_mem_eq(nb_value(ranks.w), nb_value(one.w), 6 * sizeof(double));
	rng_seed(&r, 1);
	for (int s = 0; s < 10; s++) {
		nb_tensor *g[2];

		rng_fill(&r, x, 36, -1.0, 1.0);
		rng_fill(&r, y, 24, -1.0, 1.0);
		ck_assert_int_eq(nb_set(ranks.x, x + first * 3, share * 3), NB_OK);
		ck_assert_int_eq(nb_set(ranks.y, y + first * 2, share * 2), NB_OK);
		g[0] = nb_grad(ranks.w);
		g[1] = nb_grad(ranks.b);
		ck_assert_int_eq(nb_mpi_sum(m, g, ranks.sum, 2, (double)share / 12.0), NB_OK);
		ck_assert_int_eq(nb_sgd_update((nb_tensor *[]){ ranks.w, ranks.b }, ranks.sum, NULL, 2,
		                               &o), NB_OK);
		ck_assert_int_eq(nb_set(one.x, x, 36), NB_OK);
		ck_assert_int_eq(nb_set(one.y, y, 24), NB_OK);
		ck_assert_int_eq(nb_sgd_update((nb_tensor *[]){ one.w, one.b }, NULL, NULL, 2, &o),
		                 NB_OK);
	}
	ck_assert_double_le(max_rel_diff(nb_value(ranks.w), nb_value(one.w), 6, 1e-3), TOL_RANKS);
	ck_assert_double_le(max_rel_diff(nb_value(ranks.b), nb_value(one.b), 2, 1e-3), TOL_RANKS);
	if (SIZE == 1)
		ck_assert_mem_eq(nb_value(ranks.w), nb_value(one.w), 6 * sizeof(double));
	nb_tape_free(ranks.t);
	nb_tape_free(one.t);
	nb_mpi_free(m);
}
END_TEST

/* ---- A rank that fails ---------------------------------------------------------------- */

/* The message every rank must have for an error of the last rank. */
static void expect_last_rank_failed(nb_mpi *m, int status, int want, const char *part)
{
	char prefix[32];

	snprintf(prefix, sizeof prefix, "rank %d: ", SIZE - 1);
	ck_assert_int_eq(status, want);
	ck_assert_int_eq(nb_mpi_status(m), want);
	ck_assert_msg(strncmp(nb_mpi_message(m), prefix, strlen(prefix)) == 0 &&
	              strstr(nb_mpi_message(m), part), "message: %s", nb_mpi_message(m));
	/* sticky: the next call does nothing and says the same */
	ck_assert_int_eq(nb_mpi_agree(m, NB_OK, NULL), want);
	nb_mpi_clear_error(m);
	ck_assert_int_eq(nb_mpi_agree(m, NB_OK, NULL), NB_OK);
}

/* The last rank's image file does not exist: every rank returns its NB_EIO, and every
 * rank's data set is empty. */
START_TEST(test_a_bad_file_stops_every_rank)
{
	nb_mpi *m = new_mpi(NULL, NULL);
	const char *dir = getenv("NABLA_DATA_DIR");
	char images[1024], labels[1024];
	nb_dataset ds;

	ck_assert_ptr_nonnull(dir);
	snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz%s", dir,
	         RANK == SIZE - 1 ? ".missing" : "");
	snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", dir);
	expect_last_rank_failed(m, nb_mpi_dataset_load_idx(m, images, labels, NULL, &ds), NB_EIO,
	                        "cannot open");
	ck_assert_uint_eq(ds.n, 0);
	ck_assert_ptr_null(ds.x);
	nb_mpi_free(m);
}
END_TEST

/* Every rank loads its part of the bundled digits; the parts make up the set. */
START_TEST(test_each_rank_loads_its_part)
{
	nb_mpi *m = new_mpi(NULL, NULL);
	unsigned long long n, all;
	nb_dataset ds;

	ck_assert_ptr_nonnull(getenv("NABLA_DATA_DIR"));
	ck_assert_int_eq(nb_mpi_dataset_load_dir(m, getenv("NABLA_DATA_DIR"), "t10k", NULL, &ds),
	                 NB_OK);
	ck_assert_uint_eq(ds.n, 2000 / (size_t)SIZE + ((size_t)RANK < 2000 % (size_t)SIZE));
	n = ds.n;
	MPI_Allreduce(&n, &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
	ck_assert_uint_eq(all, 2000);
	nb_dataset_free(&ds);
	nb_mpi_free(m);
}
END_TEST

/* The last rank runs out of memory at its first step (the first allocation its network
 * makes after creation fails): every rank returns NB_ENOMEM naming it, and no rank's
 * parameters have moved. */
START_TEST(test_out_of_memory_stops_every_rank)
{
	count_alloc c = { 0 };
	nb_sgd opt = opts_of(0, 6);
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_net *net = make_net(0, 4, count_alloc_fn, &c);
	nb_dataset ds;
	double *before = params_of(net), *after;

	make_data(&ds, 6, 2);
	if (RANK == SIZE - 1)
		c.fail_at = c.allocs + 1;
	expect_last_rank_failed(m, nb_mpi_net_sgd_step(m, net, ds.x, ds.y, 6, &opt, NULL),
	                        NB_ENOMEM, "out of memory");
	after = params_of(net);
	ck_assert_mem_eq(before, after, nb_net_param_count(net) * sizeof *after);
	free(before);
	free(after);
	nb_net_free(net);
	free_data(&ds);
	nb_mpi_free(m);
}
END_TEST

/* The last rank's allocation k of nb_mpi_new() fails, for every k until none does: every
 * rank returns NB_ENOMEM and no context, the others saying another rank could not make
 * its context, and nothing leaks. */
START_TEST(test_no_memory_for_a_context_stops_every_rank)
{
	for (size_t k = 1;; k++) {
		count_alloc c = { .fail_at = RANK == SIZE - 1 ? k : 0 };
		nb_mpi_opts o = { .alloc = count_alloc_fn, .alloc_ud = &c };
		char msg[NB_MSG_MAX];
		nb_mpi *m = NULL;
		int st = nb_mpi_new(MPI_COMM_WORLD, &o, &m, msg), failed = st != NB_OK, any;

		MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
		ck_assert_int_eq(failed, any);  /* all or none */
		if (!any) {
			ck_assert_uint_gt(k, 2);
			nb_mpi_free(m);
			ck_assert_uint_eq(c.bytes_in_use, 0);
			break;
		}
		ck_assert_int_eq(st, NB_ENOMEM);
		ck_assert_ptr_null(m);
		ck_assert_str_eq(msg, RANK == SIZE - 1 ? "mpi_new: out of memory"
		                 : "mpi_new: another rank could not make its context (out of "
		                   "memory)");
		ck_assert_uint_eq(c.bytes_in_use, 0);
	}
}
END_TEST

/* The update fails: on every rank (a bad learning rate: no rank moves), or on the last
 * one alone (no memory for the velocity, at the first step with momentum: the others
 * move, and the message says the ranks now differ). */
START_TEST(test_a_failed_update_is_every_ranks_error)
{
	count_alloc c = { 0 };
	nb_sgd plain = opts_of(0, 6), bad = plain, momentum = plain;
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_net *net = make_net(0, 4, count_alloc_fn, &c);
	nb_dataset ds;
	double *before, *after;
	int moved;

	make_data(&ds, 6, 2);
	ck_assert_int_eq(nb_mpi_net_sgd_step(m, net, ds.x, ds.y, 6, &plain, NULL), NB_OK);
	before = params_of(net);
	bad.eta = -1.0;
	ck_assert_int_eq(nb_mpi_net_sgd_step(m, net, ds.x, ds.y, 6, &bad, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_mpi_message(m), "rank 0: sgd: eta must be a finite number > 0, not "
	                 "-1");
	nb_mpi_clear_error(m);
	nb_net_clear_error(net);
	after = params_of(net);
	ck_assert_mem_eq(before, after, nb_net_param_count(net) * sizeof *after);
	free(after);
	momentum.momentum = 0.5;
	if (RANK == SIZE - 1)
		c.fail_at = c.allocs + 1;  /* the velocity's first array */
	expect_last_rank_failed(m, nb_mpi_net_sgd_step(m, net, ds.x, ds.y, 6, &momentum, NULL),
	                        NB_ENOMEM, SIZE > 1 ? "out of memory for the optimizer's state "
	                        "(only some ranks failed, so the ranks' parameters now differ: "
	                        "restore a checkpoint)" : "out of memory for the optimizer's "
	                        "state");
	if (SIZE == 1)
		ck_assert_ptr_null(strstr(nb_mpi_message(m), "only some"));
	after = params_of(net);
	moved = memcmp(before, after, nb_net_param_count(net) * sizeof *after) != 0;
	ck_assert_int_eq(moved, RANK != SIZE - 1);
	free(before);
	free(after);
	nb_net_free(net);
	ck_assert_uint_eq(c.bytes_in_use, 0);
	free_data(&ds);
	nb_mpi_free(m);
}
END_TEST

/* The last rank's network has another hidden layer: sync says so on every rank (with one
 * rank, the network is rank 0's and sync succeeds). */
START_TEST(test_another_network_stops_every_rank)
{
	static const size_t OTHER[3] = { 36, 8, 3 };
	nb_net_config c = { .n_layers = 3, .sizes = RANK == SIZE - 1 && SIZE > 1 ? OTHER : SIZES };
	nb_mpi *m = new_mpi(NULL, NULL);
	nb_net *net = NULL;
	int st;

	ck_assert_int_eq(nb_net_new(&c, &net, NULL), NB_OK);
	st = nb_mpi_net_sync(m, net);
	if (SIZE == 1)
		ck_assert_int_eq(st, NB_OK);
	else
		expect_last_rank_failed(m, st, NB_ESHAPE, "net_sync: its network's parameters "
		                        "(w1 (8x36), b1 (8x1), w2 (3x8), b2 (3x1)) are not rank 0's "
		                        "(w1 (7x36), b1 (7x1), w2 (3x7), b2 (3x1))");
	nb_net_free(net);
	nb_mpi_free(m);
}
END_TEST

/* ---- Allocation ------------------------------------------------------------------------- */

/* After the first step, steps, epochs and sums allocate nothing, in the network or in the
 * context. */
START_TEST(test_steps_allocate_nothing_after_the_first)
{
	count_alloc cm = { 0 }, cn = { 0 };
	nb_sgd opt = opts_of(1, 6);
	nb_mpi *m = new_mpi(count_alloc_fn, &cm);
	nb_net *net = make_net(1, 4, count_alloc_fn, &cn);
	nb_dataset ds, mine;
	size_t am, an;

	make_data(&ds, 30, 2);
	mine = part_of(&ds, (size_t)RANK, (size_t)SIZE);
	ck_assert_int_eq(nb_mpi_net_sgd_step(m, net, ds.x, ds.y, 6, &opt, NULL), NB_OK);
	ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, net, &mine, &opt, 0, NULL, NULL, NULL), NB_OK);
	am = cm.allocs;
	an = cn.allocs;
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(nb_mpi_net_sgd_step(m, net, ds.x + 36 * k, ds.y + 3 * k, 6, &opt,
		                                     NULL), NB_OK);
	ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, net, &mine, &opt, 1, NULL, NULL, NULL), NB_OK);
	ck_assert_uint_eq(cm.allocs, am);
	ck_assert_uint_eq(cn.allocs, an);
	nb_net_free(net);
	nb_mpi_free(m);
	ck_assert_uint_eq(cm.bytes_in_use, 0);
	ck_assert_uint_eq(cn.bytes_in_use, 0);
	free_data(&ds);
}
END_TEST

/* ---- Bad arguments ---------------------------------------------------------------------- */

START_TEST(test_bad_arguments)
{
	nb_mpi *m = new_mpi(NULL, NULL), *none = NULL;
	nb_net *net = make_net(0, 1, NULL, NULL);
	nb_sgd opt = opts_of(0, 6);
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 1, (size_t[]){ 3 }, NULL);
	nb_tensor *b = nb_constant(t, 1, (size_t[]){ 4 }, NULL), *s = nb_sum(t, a);
	double x[6 * 36] = { 0 }, y[6 * 3] = { 0 };
	nb_dataset empty = { 0 };
	char msg[NB_MSG_MAX];

	/* local errors: no communicator to agree over */
	ck_assert_int_eq(nb_mpi_new(MPI_COMM_WORLD, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "mpi_new: out is NULL");
	ck_assert_int_eq(nb_mpi_new(MPI_COMM_NULL, NULL, &none, msg), NB_EINVAL);
	ck_assert_str_eq(msg, "mpi_new: the communicator is MPI_COMM_NULL");
	ck_assert_ptr_null(none);
	ck_assert_int_eq(nb_mpi_net_sgd_step(NULL, net, x, y, 6, &opt, NULL), NB_ENULL);
	ck_assert_int_eq(nb_mpi_agree(NULL, NB_OK, NULL), NB_ENULL);
	ck_assert_int_eq(nb_mpi_rank(NULL), -1);
	ck_assert_int_eq(nb_mpi_size(NULL), 0);
	ck_assert_int_eq(nb_mpi_status(NULL), NB_ENULL);
	ck_assert_str_eq(nb_mpi_message(NULL), "mpi is NULL");
	nb_mpi_free(NULL);

	/* the last rank's mistake, every rank's error */
	expect_last_rank_failed(m, nb_mpi_net_sgd_step(m, RANK == SIZE - 1 ? NULL : net, x, y, 6,
	                                               &opt, NULL), NB_ENULL,
	                        "net_sgd_step: net is NULL");
	expect_last_rank_failed(m, nb_mpi_net_sgd_step(m, net, RANK == SIZE - 1 ? NULL : x, y, 6,
	                                               &opt, NULL), NB_ENULL,
	                        "net_sgd_step: x is NULL");
	expect_last_rank_failed(m, nb_mpi_sum(m, &a, RANK == SIZE - 1 ? &b : &a, 1, 1.0),
	                        NB_ESHAPE, "sum: src[0] is (3), dst[0] (4)");
	expect_last_rank_failed(m, nb_mpi_sum(m, &a, &a, 1, RANK == SIZE - 1 ? NAN : 1.0),
	                        NB_EINVAL, "sum: weight must be finite, not nan");
	snprintf(msg, sizeof msg, "broadcast: leaves[0] is a %s node, not a variable or a "
	         "constant", nb_op_name(s));
	expect_last_rank_failed(m, nb_mpi_broadcast(m, RANK == SIZE - 1 ? &s : &a, 1), NB_EINVAL,
	                        msg);
	expect_last_rank_failed(m, nb_mpi_net_evaluate(m, net, RANK == SIZE - 1 ? NULL : &empty,
	                                               NULL, NULL, NULL), NB_ENULL,
	                        "net_evaluate: part is NULL");
	/* rank 0 reads a checkpoint: its error is every rank's */
	ck_assert_int_eq(nb_mpi_net_restore(m, net, "test_mpi_missing.tmp"), NB_EIO);
	ck_assert_msg(strncmp(nb_mpi_message(m), "rank 0: ", 8) == 0 &&
	              strstr(nb_mpi_message(m), "test_mpi_missing.tmp"), "%s", nb_mpi_message(m));
	nb_mpi_clear_error(m);
	/* the same mistake everywhere */
	ck_assert_int_eq(nb_mpi_net_sgd_step(m, net, x, y, 0, &opt, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_mpi_message(m), "rank 0: net_sgd_step: no examples (n is 0)");
	nb_mpi_clear_error(m);
	opt.batch = (size_t)SIZE - 1;
	ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, net, &empty, &opt, 0, NULL, NULL, NULL),
	                 NB_EINVAL);
	snprintf(msg, sizeof msg, "rank 0: net_sgd_epoch: a batch of %d is fewer examples than "
	         "the %d ranks", SIZE - 1, SIZE);
	ck_assert_str_eq(nb_mpi_message(m), msg);
	nb_mpi_clear_error(m);
	opt.batch = 6;
	ck_assert_int_eq(nb_mpi_net_sgd_epoch(m, net, &empty, &opt, 0, NULL, NULL, NULL),
	                 NB_EINVAL);
	ck_assert_str_eq(nb_mpi_message(m), "net_sgd_epoch: the parts hold no example");
	nb_mpi_clear_error(m);
	ck_assert_int_eq(nb_mpi_net_save(m, net, "no-such-directory/x.nbm"), NB_EIO);
	ck_assert_msg(strncmp(nb_mpi_message(m), "rank 0: ", 8) == 0, "%s", nb_mpi_message(m));
	nb_mpi_clear_error(m);
	ck_assert_int_eq(nb_mpi_agree(m, NB_OK, NULL), NB_OK);
	nb_tape_free(t);
	nb_net_free(net);
	nb_mpi_free(m);
}
END_TEST

static Suite *mpi_suite(void)
{
	Suite *s = suite_create("mpi");
	TCase *sum = tcase_create("sum"), *train = tcase_create("training");
	TCase *fail = tcase_create("failing ranks"), *bad = tcase_create("bad arguments");

	tcase_add_loop_test(sum, test_sum_is_in_rank_order, 0, 3);
	tcase_add_loop_test(train, test_steps_equal_one_process, 0, 6);
	tcase_add_loop_test(train, test_epochs_equal_one_process, 0, 3);
	tcase_add_test(train, test_evaluate_and_progress_over_parts);
	tcase_add_test(train, test_rerun_gives_the_same_bits);
	tcase_add_test(train, test_checkpoint_continues_the_run);
	tcase_add_test(train, test_own_graph_equals_one_process);
	tcase_add_test(train, test_steps_allocate_nothing_after_the_first);
	tcase_add_test(fail, test_a_bad_file_stops_every_rank);
	tcase_add_test(fail, test_each_rank_loads_its_part);
	tcase_add_test(fail, test_out_of_memory_stops_every_rank);
	tcase_add_test(fail, test_another_network_stops_every_rank);
	tcase_add_test(fail, test_no_memory_for_a_context_stops_every_rank);
	tcase_add_test(fail, test_a_failed_update_is_every_ranks_error);
	tcase_add_test(bad, test_bad_arguments);
	suite_add_tcase(s, sum);
	suite_add_tcase(s, train);
	suite_add_tcase(s, fail);
	suite_add_tcase(s, bad);
	return s;
}

/* Every rank runs the suite; the program fails on every rank when a test failed on any,
 * so that mpirun's status says so. */
int main(int argc, char **argv)
{
	SRunner *sr;
	int failed, any;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &RANK);
	MPI_Comm_size(MPI_COMM_WORLD, &SIZE);
	sr = srunner_create(mpi_suite());
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, RANK == 0 ? CK_NORMAL : CK_SILENT);
	failed = srunner_ntests_failed(sr);
	if (failed && RANK != 0)
		srunner_print(sr, CK_NORMAL);  /* the failures of the other ranks too */
	srunner_free(sr);
	MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (RANK == 0 && !any)
		printf("test_mpi: every rank passed\n");
	MPI_Finalize();
	return any ? EXIT_FAILURE : EXIT_SUCCESS;
}
