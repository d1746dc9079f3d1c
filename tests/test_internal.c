/* test_internal.c -- invariants checked through the library's internals (this program
 * links its objects directly): a rule that hands a gradient of the wrong shape is an
 * internal error naming the op, never a silent broadcast, and the failed sweep records
 * nothing; the kernels' thread pool runs every task once, from one caller or from several
 * at once, and a task that asks it for threads runs its own tasks itself. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "config.h"
#include "helpers.h"
#include "nabla_int.h"
#include "pool.h"

static void copy_forward(nb_tensor *y)
{
	memcpy(y->value, y->in[0]->value, y->size * sizeof *y->value);
}

/* A wrong rule: dx should have x's shape, (2x3); it hands the sum, a scalar. */
static void bad_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], nb_sum(t, dy));
}

static const struct nb_op bad_op = {
	.name = "bad_rule", .arity = 1, .forward = copy_forward, .backward = bad_backward,
};

START_TEST(test_wrong_gradient_shape_is_internal_error)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 2, (size_t[]){ 2, 3 }, NULL);
	nb_tensor *y = nb__record_unary(t, &bad_op, x);
	nb_tensor *c = nb_sum(t, nb_exp(t, y));
	size_t n = nb_tape_size(t);

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(nb_backward(t, c, NULL), NB_EINTERNAL);
	ck_assert_str_eq(nb_tape_message(t), "bad_rule: backward rule handed a gradient of shape "
	                 "() for node 0 (variable (2x3))");
	ck_assert_uint_eq(nb_tape_size(t), n);
	ck_assert_ptr_null(nb_grad(x));
	nb_tape_free(t);
}
END_TEST

/* The same rule, when x is not asked for, builds nothing and so breaks nothing. */
START_TEST(test_pruned_rule_is_not_called)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 2, (size_t[]){ 2, 3 }, NULL);
	nb_tensor *w = nb_variable(t, 0, NULL, (double[]){ 2 });
	nb_tensor *c = nb_sum(t, nb_mul(t, nb__record_unary(t, &bad_op, x), w));
	nb_tensor *g;

	ck_assert_int_eq(nb_gradients(t, c, NULL, &w, 1, &g), NB_OK);
	ck_assert_double_eq(nb_value(g)[0], 0.0);  /* sum of x = 0 */
	nb_tape_free(t);
}
END_TEST

/* ---- The thread pool ----------------------------------------------------------------- */

enum { MAX_TASKS = 1000 };

/* How many times each task ran. */
struct tally {
	atomic_int ran[MAX_TASKS];
};

static void count_task(void *arg, size_t i)
{
	struct tally *t = arg;

	atomic_fetch_add(&t->ran[i], 1);
}

static void tally_clear(struct tally *t)
{
	for (size_t i = 0; i < MAX_TASKS; i++)
		atomic_init(&t->ran[i], 0);
}

/* Tasks [0, n) ran once each, and no other. */
static void expect_each_once(struct tally *t, size_t n)
{
	for (size_t i = 0; i < MAX_TASKS; i++)
		ck_assert_msg(atomic_load(&t->ran[i]) == (i < n), "task %zu of %zu ran %d times", i,
		              n, atomic_load(&t->ran[i]));
}

static const size_t task_counts[] = { 0, 1, 7, MAX_TASKS };
#define N_TASK_COUNTS (sizeof task_counts / sizeof task_counts[0])

/* Loop index _i: task_counts[_i % 4] tasks on 1 + _i / 4 threads, 1 to 4. */
START_TEST(test_parallel_for_runs_each_task_once)
{
	static struct tally t;
	size_t n = task_counts[(size_t)_i % N_TASK_COUNTS];
	int threads = 1 + _i / (int)N_TASK_COUNTS;

	tally_clear(&t);
	nb__parallel_for(threads, n, count_task, &t);
	expect_each_once(&t, n);
}
END_TEST

/* A task that calls nb__parallel_for() finds the pool busy with the job it belongs to, and
 * runs the inner tasks on its own thread. */
enum { OUTER = 8, INNER = 5 };

struct nested {
	atomic_int outer[OUTER];
	atomic_int inner[OUTER][INNER];
	atomic_int elsewhere;   /* inner tasks run on another thread than their outer task */
};

struct inner_job {
	struct nested *nest;
	size_t row;
	pthread_t thread;       /* the outer task's */
};

static void inner_task(void *arg, size_t j)
{
	struct inner_job *q = arg;

	atomic_fetch_add(&q->nest->inner[q->row][j], 1);
	if (!pthread_equal(pthread_self(), q->thread))
		atomic_fetch_add(&q->nest->elsewhere, 1);
}

static void outer_task(void *arg, size_t i)
{
	struct nested *nest = arg;
	struct inner_job q = { nest, i, pthread_self() };

	atomic_fetch_add(&nest->outer[i], 1);
	nb__parallel_for(2, INNER, inner_task, &q);
}

START_TEST(test_parallel_for_nested_runs_inline)
{
	static struct nested nest;

	for (int threads = 2; threads <= 4; threads++) {
		memset(&nest, 0, sizeof nest);
		nb__parallel_for(threads, OUTER, outer_task, &nest);
		for (size_t i = 0; i < OUTER; i++) {
			ck_assert_int_eq(atomic_load(&nest.outer[i]), 1);
			for (size_t j = 0; j < INNER; j++)
				ck_assert_int_eq(atomic_load(&nest.inner[i][j]), 1);
		}
		ck_assert_int_eq(atomic_load(&nest.elsewhere), 0);
	}
}
END_TEST

/* Two threads calling nb__parallel_for() over and over: whichever finds the pool busy
 * runs its tasks itself, and every task of every call runs once. */
enum { ROUNDS = 200 };

struct caller {
	struct tally t;
	int bad_rounds;
};

static void *call_repeatedly(void *arg)
{
	struct caller *c = arg;

	for (int r = 0; r < ROUNDS; r++) {
		tally_clear(&c->t);
		nb__parallel_for(2, MAX_TASKS, count_task, &c->t);
		for (size_t i = 0; i < MAX_TASKS; i++)
			if (atomic_load(&c->t.ran[i]) != 1) {
				c->bad_rounds++;
				break;
			}
	}
	return NULL;
}

START_TEST(test_parallel_for_from_two_threads_at_once)
{
	static struct caller c[2];
	pthread_t th[2];

	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, call_repeatedly, &c[i]), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	ck_assert_int_eq(c[0].bad_rounds, 0);
	ck_assert_int_eq(c[1].bad_rounds, 0);
}
END_TEST

static Suite *internal_suite(void)
{
	Suite *s = suite_create("internal");
	TCase *tc = tcase_create("internal");

	tcase_add_test(tc, test_wrong_gradient_shape_is_internal_error);
	tcase_add_test(tc, test_pruned_rule_is_not_called);
	tcase_add_loop_test(tc, test_parallel_for_runs_each_task_once, 0, 4 * (int)N_TASK_COUNTS);
	tcase_add_test(tc, test_parallel_for_nested_runs_inline);
	tcase_add_test(tc, test_parallel_for_from_two_threads_at_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(internal_suite());
}
