/* test_threads.c -- tapes are independent: two threads training separate networks at the
 * same time get exactly what each gets alone, with the matrix kernels on one thread or on
 * two (then one network's products find the kernels' pool busy with the other's); a
 * tape's thread count is what the machine can give; and products are the same bit for
 * bit on one thread and on two. Run under ThreadSanitizer by `./build.sh tsan`, which
 * reports any data race between them, the pool's included. */
#define _POSIX_C_SOURCE 200809L /* sysconf */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* ---- Thread counts ------------------------------------------------------------------- */

START_TEST(test_tape_thread_count_is_clamped)
{
	nb_tape *t = nb_tape_new();
	long procs = sysconf(_SC_NPROCESSORS_ONLN);
	int granted;
	char key;

	ck_assert_int_eq(nb_tape_threads(t), 1);
	granted = nb_tape_set_threads(t, INT_MAX);
	ck_assert_int_ge(granted, 1);
	ck_assert_int_le(granted, procs);
	ck_assert_int_eq(nb_tape_threads(t), granted);
	ck_assert_int_eq(nb_tape_set_threads(t, 2), procs < 2 ? 1 : 2);
	ck_assert_int_eq(nb_tape_set_threads(t, 0), 1);
	ck_assert_int_eq(nb_tape_set_threads(t, -5), 1);
	ck_assert_int_eq(nb_tape_threads(t), 1);
	/* a locked tape takes a count: it changes no value */
	ck_assert_int_eq(nb_tape_lock(t, &key), NB_OK);
	ck_assert_int_eq(nb_tape_set_threads(t, INT_MAX), granted);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	ck_assert_int_eq(nb_tape_unlock(t, &key), NB_OK);
	ck_assert_int_eq(nb_tape_set_threads(NULL, 4), 1);
	ck_assert_int_eq(nb_tape_threads(NULL), 1);
	nb_tape_free(t);
}
END_TEST

/* A network gives its count to the tapes it has and to those it records later. */
START_TEST(test_net_thread_count_reaches_its_tapes)
{
	nb_net_config cfg = { .n_layers = 3, .sizes = (size_t[]){ 2, 8, 2 }, .seed = 1 };
	long procs = sysconf(_SC_NPROCESSORS_ONLN);
	nb_net *net;
	nb_tape *before, *after;
	int granted;

	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	before = nb_net_tape(net, 10);
	ck_assert_int_eq(nb_tape_threads(before), 1);
	granted = nb_net_set_threads(net, INT_MAX);
	ck_assert_int_ge(granted, 1);
	ck_assert_int_le(granted, procs);
	ck_assert_int_eq(nb_tape_threads(before), granted);
	after = nb_net_tape(net, 20);
	ck_assert_ptr_nonnull(after);
	ck_assert_int_eq(nb_tape_threads(after), granted);
	ck_assert_int_eq(nb_net_set_threads(net, -1), 1);
	ck_assert_int_eq(nb_tape_threads(before), 1);
	ck_assert_int_eq(nb_tape_threads(after), 1);
	ck_assert_int_eq(nb_net_status(net), NB_OK);
	ck_assert_int_eq(nb_net_set_threads(NULL, 2), 1);
	nb_net_free(net);
}
END_TEST

/* A network that cannot make the tape it asks keeps its count, and says why. */
START_TEST(test_net_thread_count_out_of_memory)
{
	count_alloc ca = { 0 };
	nb_net_config cfg = { .n_layers = 3, .sizes = (size_t[]){ 2, 8, 2 }, .seed = 1,
	                      .alloc = count_alloc_fn, .alloc_ud = &ca };
	nb_net *net;

	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	ca.fail_at = ca.allocs + 1;
	ck_assert_int_eq(nb_net_set_threads(net, 2), 1);
	ck_assert_int_eq(nb_net_status(net), NB_ENOMEM);
	ck_assert_str_eq(nb_net_message(net), "set_threads: out of memory");
	nb_net_free(net);
	ck_assert_uint_eq(ca.bytes_in_use, 0);
}
END_TEST

/* ---- Products on one thread and on two ----------------------------------------------- */

/* Shapes of c = op(a) op(b) (m x n, inner k) for every kernel: above the size at which
 * the kernels share a product out (two million multiply-adds, at least 24 rows), with m
 * not a multiple of the row blocks (12) but one, and one small product that stays on one
 * thread. */
static const struct shape {
	size_t m, n, k;
	int flags;
} shapes[] = {
	{ 100, 80, 300, 0 },                         /* axpy */
	{ 150, 120, 150, NB_TRANS_A },               /* axpy, a read transposed */
	{ 257, 64, 200, NB_TRANS_B },                /* dot */
	{ 130, 200, 100, NB_TRANS_B },               /* b^T packed, then axpy */
	{ 110, 100, 200, NB_TRANS_A | NB_TRANS_B },  /* plain loops */
	{ 25, 300, 300, 0 },                         /* three blocks, the last of one row */
	{ 96, 80, 300, 0 },                          /* eight whole blocks */
	{ 30, 20, 10, 0 },                           /* small: one thread */
};

/* op(a) op(b) on a tape with the given thread count, into c (m x n). */
static void product_on(int threads, const struct shape *s, const double *a, const double *b,
                       double *c)
{
	nb_tape *t = nb_tape_new();
	bool ta = s->flags & NB_TRANS_A, tb = s->flags & NB_TRANS_B;
	size_t da[2] = { ta ? s->k : s->m, ta ? s->m : s->k };
	size_t db[2] = { tb ? s->n : s->k, tb ? s->k : s->n };
	nb_tensor *p;

	nb_tape_set_threads(t, threads);
	p = nb_matmul_t(t, nb_constant(t, 2, da, a), nb_constant(t, 2, db, b), s->flags);
	ck_assert_msg(p != NULL, "matmul: %s", nb_tape_message(t));
	memcpy(c, nb_value(p), s->m * s->n * sizeof *c);
	nb_tape_free(t);
}

/* The largest difference between c and op(a) op(b) computed by plain loops, relative to
 * the largest |element|: the kernels sum in another order, so they differ by rounding. */
static double diff_from_loops(const struct shape *s, const double *a, const double *b,
                              const double *c)
{
	bool ta = s->flags & NB_TRANS_A, tb = s->flags & NB_TRANS_B;
	double worst = 0.0, scale = 0.0;

	for (size_t i = 0; i < s->m; i++)
		for (size_t j = 0; j < s->n; j++) {
			double sum = 0.0;

			for (size_t p = 0; p < s->k; p++)
				sum += (ta ? a[p * s->m + i] : a[i * s->k + p]) *
				       (tb ? b[j * s->k + p] : b[p * s->n + j]);
			worst = fmax(worst, fabs(sum - c[i * s->n + j]));
			scale = fmax(scale, fabs(sum));
		}
	return worst / scale;
}

START_TEST(test_products_same_on_one_and_two_threads)
{
	const struct shape *s = &shapes[_i];
	double *a = malloc(s->m * s->k * sizeof *a), *b = malloc(s->k * s->n * sizeof *b);
	double *one = malloc(s->m * s->n * sizeof *one), *two = malloc(s->m * s->n * sizeof *two);
	test_rng r;

	rng_seed(&r, 5 + (uint64_t)_i);
	rng_fill(&r, a, s->m * s->k, -1.0, 1.0);
	rng_fill(&r, b, s->k * s->n, -1.0, 1.0);
	product_on(1, s, a, b, one);
	product_on(2, s, a, b, two);
	ck_assert_msg(memcmp(one, two, s->m * s->n * sizeof *one) == 0,
	              "%zux%zux%zu flags %d: one and two threads differ", s->m, s->n, s->k,
	              s->flags);
	ck_assert_double_lt(diff_from_loops(s, a, b, two), TOL_EXACT);
	free(a);
	free(b);
	free(one);
	free(two);
}
END_TEST

/* ---- Networks trained at once ------------------------------------------------------- */

/* One training job: a network, its data, its kernels' thread count and seed in; its
 * parameters (every weight, layer by layer) and its test count out. */
struct job {
	size_t n_layers;
	const size_t *sizes;
	size_t examples, batch;
	int epochs, threads;
	unsigned long long seed;
	double *w;              /* malloc'd by train() */
	size_t n_w;
	size_t correct;
	int status;
};

/* A copy of every weight of net, or NULL. */
static double *copy_weights(nb_net *net, size_t *n)
{
	size_t L = nb_net_param_layers(net), total = 0;
	const size_t *sizes = nb_net_get_config(net).sizes;
	double *w;

	for (size_t l = 0; l < L; l++)
		total += sizes[l + 1] * sizes[l];
	w = malloc(total * sizeof *w);
	*n = 0;
	for (size_t l = 0; w && l < L; l++) {
		memcpy(w + *n, nb_net_weights(net, l), sizes[l + 1] * sizes[l] * sizeof *w);
		*n += sizes[l + 1] * sizes[l];
	}
	return w;
}

static void *train(void *arg)
{
	struct job *j = arg;
	nb_net_config cfg = { .n_layers = j->n_layers, .sizes = j->sizes, .seed = j->seed };
	nb_sgd opt = { .batch = j->batch, .eta = 2.0, .momentum = 0.5 };
	nb_dataset ds;
	nb_net *net;

	make_pairs_data(&ds, j->examples, j->seed);
	j->status = nb_net_new(&cfg, &net, NULL);
	if (j->status == NB_OK)
		nb_net_set_threads(net, j->threads);
	for (int e = 0; e < j->epochs && j->status == NB_OK; e++)
		j->status = nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL);
	if (j->status == NB_OK)
		j->status = nb_net_evaluate(net, &ds, &j->correct, NULL);
	if (j->status == NB_OK)
		j->w = copy_weights(net, &j->n_w);
	nb_net_free(net);
	free_pairs_data(&ds);
	return NULL;
}

/* Jobs alone[0] and alone[1] one after the other, then the same two at once, which must
 * end with the same parameters and counts. */
static void train_alone_then_at_once(struct job alone[2])
{
	struct job both[2] = { alone[0], alone[1] };
	pthread_t th[2];

	train(&alone[0]);
	train(&alone[1]);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, train, &both[i]), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(alone[i].status, NB_OK);
		ck_assert_int_eq(both[i].status, NB_OK);
		ck_assert_ptr_nonnull(both[i].w);
		ck_assert_uint_eq(both[i].correct, alone[i].correct);
		ck_assert_uint_eq(both[i].n_w, alone[i].n_w);
		ck_assert_mem_eq(both[i].w, alone[i].w, alone[i].n_w * sizeof *alone[i].w);
		free(both[i].w);
	}
}

START_TEST(test_two_threads_train_as_one)
{
	static const size_t sizes[] = { 2, 8, 2 };
	struct job alone[2] = {
		{ .n_layers = 3, .sizes = sizes, .examples = 200, .batch = 10, .epochs = 3,
		  .threads = 1, .seed = 1 },
		{ .n_layers = 3, .sizes = sizes, .examples = 200, .batch = 10, .epochs = 3,
		  .threads = 1, .seed = 2 },
	};

	train_alone_then_at_once(alone);
	ck_assert_uint_gt(alone[0].correct, 200 / 2);
	free(alone[0].w);
	free(alone[1].w);
}
END_TEST

/* Hidden layers of 256 and mini-batches of 64: the products of the second layer, forward
 * and backward, are large enough to share out, so two networks at once contend for the
 * kernels' pool, and the one that finds it busy runs its products alone. */
START_TEST(test_two_threads_train_as_one_on_two_kernel_threads)
{
	static const size_t sizes[] = { 2, 256, 256, 2 };
	struct job alone[2] = {
		{ .n_layers = 4, .sizes = sizes, .examples = 128, .batch = 64, .epochs = 1,
		  .threads = 2, .seed = 3 },
		{ .n_layers = 4, .sizes = sizes, .examples = 128, .batch = 64, .epochs = 1,
		  .threads = 2, .seed = 4 },
	};

	train_alone_then_at_once(alone);
	free(alone[0].w);
	free(alone[1].w);
}
END_TEST

static Suite *threads_suite(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("threads");

	tcase_add_test(tc, test_tape_thread_count_is_clamped);
	tcase_add_test(tc, test_net_thread_count_reaches_its_tapes);
	tcase_add_test(tc, test_net_thread_count_out_of_memory);
	tcase_add_loop_test(tc, test_products_same_on_one_and_two_threads, 0,
	                    (int)(sizeof shapes / sizeof shapes[0]));
	tcase_add_test(tc, test_two_threads_train_as_one);
	tcase_add_test(tc, test_two_threads_train_as_one_on_two_kernel_threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(threads_suite());
}
