/* test_threads.c -- tapes are independent: two threads training separate networks at the
 * same time get exactly what each gets alone; and any thread count a caller asks for is
 * one the matrix kernels can run with. Run under ThreadSanitizer by `./build.sh tsan`,
 * which reports any data race between them. */
#define _POSIX_C_SOURCE 200809L /* sysconf */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

enum { N_EXAMPLES = 200, EPOCHS = 3 };

/* One training job: a seed in, the first layer's weights and the test count out. */
struct job {
	unsigned long long seed;
	double w[2 * 8];
	size_t correct;
	int status;
};

static void *train(void *arg)
{
	struct job *j = arg;
	nb_net_config cfg = { .n_layers = 3, .sizes = (size_t[]){ 2, 8, 2 }, .seed = j->seed };
	nb_sgd opt = { .batch = 10, .eta = 2.0, .momentum = 0.5 };
	nb_dataset ds;
	nb_net *net;

	make_pairs_data(&ds, N_EXAMPLES, j->seed);
	j->status = nb_net_new(&cfg, &net, NULL);
	for (int e = 0; e < EPOCHS && j->status == NB_OK; e++)
		j->status = nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL);
	if (j->status == NB_OK)
		j->status = nb_net_evaluate(net, &ds, &j->correct, NULL);
	if (j->status == NB_OK)
		memcpy(j->w, nb_net_weights(net, 0), sizeof j->w);
	nb_net_free(net);
	free_pairs_data(&ds);
	return NULL;
}

START_TEST(test_two_threads_train_as_one)
{
	struct job alone[2] = { { .seed = 1 }, { .seed = 2 } }, both[2] = { { .seed = 1 },
	                                                                 { .seed = 2 } };
	pthread_t th[2];

	train(&alone[0]);
	train(&alone[1]);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, train, &both[i]), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(both[i].status, NB_OK);
		ck_assert_uint_eq(both[i].correct, alone[i].correct);
		ck_assert_mem_eq(both[i].w, alone[i].w, sizeof both[i].w);
	}
	ck_assert_uint_gt(alone[0].correct, N_EXAMPLES / 2);
}
END_TEST

/* c = a b for 256 x 256 matrices through the public API: enough multiply-adds for the
 * kernels to use every thread they may. */
enum { SIDE = 256 };

static void matmul_256(const double *a, const double *b, double *c)
{
	nb_tape *t = nb_tape_new();
	const size_t dim[2] = { SIDE, SIDE };
	nb_tensor *p = nb_matmul(t, nb_constant(t, 2, dim, a), nb_constant(t, 2, dim, b));

	ck_assert_msg(p != NULL, "matmul: %s", nb_tape_message(t));
	memcpy(c, nb_value(p), sizeof(double) * SIDE * SIDE);
	nb_tape_free(t);
}

/* The largest difference between c and a b computed by plain loops, relative to the
 * largest |c|: the kernels sum in another order, so they differ by rounding only. */
static double diff_from_loops(const double *a, const double *b, const double *c)
{
	double worst = 0.0, scale = 0.0;

	for (size_t i = 0; i < SIDE; i++)
		for (size_t j = 0; j < SIDE; j++) {
			double s = 0.0;

			for (size_t k = 0; k < SIDE; k++)
				s += a[i * SIDE + k] * b[k * SIDE + j];
			worst = fmax(worst, fabs(s - c[i * SIDE + j]));
			scale = fmax(scale, fabs(s));
		}
	return worst / scale;
}

/* A thread count the OpenMP runtime cannot start (it once made libgomp exit the process)
 * is clamped: the product is right, and the same bit for bit as on one thread. */
START_TEST(test_huge_thread_count_is_clamped)
{
	static double a[SIDE * SIDE], b[SIDE * SIDE], one[SIDE * SIDE], many[SIDE * SIDE];
	test_rng r;

	rng_seed(&r, 5);
	rng_fill(&r, a, SIDE * SIDE, -1.0, 1.0);
	rng_fill(&r, b, SIDE * SIDE, -1.0, 1.0);
	nb_set_threads(1);
	matmul_256(a, b, one);
	nb_set_threads(INT_MAX);
	ck_assert_int_ge(nb_get_threads(), 1);
	ck_assert_int_le(nb_get_threads(), sysconf(_SC_NPROCESSORS_ONLN));
	matmul_256(a, b, many);
	nb_set_threads(-5);
	ck_assert_int_eq(nb_get_threads(), 1);
	nb_set_threads(1);
	ck_assert_mem_eq(many, one, sizeof one);
	ck_assert_double_lt(diff_from_loops(a, b, many), TOL_EXACT);
}
END_TEST

static Suite *threads_suite(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("threads");

	/* First: the OpenMP thread pool this test starts lives until the process ends. Started
	 * after the other test, a pool thread would take over a cached stack of that test's
	 * threads, and valgrind would report its memory from there, where its suppression of
	 * libgomp's memory does not see it. */
	tcase_add_test(tc, test_huge_thread_count_is_clamped);
	tcase_add_test(tc, test_two_threads_train_as_one);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(threads_suite());
}
