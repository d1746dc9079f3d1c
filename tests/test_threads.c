/* test_threads.c -- tapes are independent: two threads training separate networks at the
 * same time get exactly what each gets alone. Run under ThreadSanitizer by
 * `./build.sh tsan`, which reports any data race between them. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

static Suite *threads_suite(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("threads");

	tcase_add_test(tc, test_two_threads_train_as_one);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(threads_suite());
}
