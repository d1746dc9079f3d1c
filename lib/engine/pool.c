/* pool.c -- the workers behind nb__parallel_for(): started when a job first needs them, at
 * most one fewer than the processors online (the caller is the last), asleep on a
 * condition variable between jobs, and stopped and joined when the process exits. The
 * pool runs one job at a time; a caller that finds it busy runs its own tasks, so tapes on
 * different threads never wait for each other. */
#define _POSIX_C_SOURCE 200809L /* sysconf, pthread_sigmask */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "pool.h"

/* The most workers the pool starts, however many processors there are. */
#define MAX_WORKERS 255

/* The pool and its one job. Everything but the claim counter is read and written under
 * the lock; the counter hands out the job's tasks, next to n - 1, to the threads in it. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;           /* workers wait here for a job, or for the exit */
	pthread_cond_t left;           /* a caller waits here for its workers to leave */
	pthread_t worker[MAX_WORKERS];
	int n_workers;
	bool cannot_start;             /* pthread_create failed once: no more attempts */
	bool at_fork;                  /* the fork handlers are registered */
	bool stop;                     /* the process is exiting: workers return */
	bool busy;                     /* a job runs, from its posting until it ends */
	bool open;                     /* workers may join it: some tasks are unclaimed */
	unsigned long job;             /* counts jobs, so that a worker joins each once */
	int seats;                     /* workers that may still join it */
	int inside;                    /* workers in it */
	void (*task)(void *arg, size_t i);
	void *arg;
	size_t n;
	atomic_size_t next;
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.left = PTHREAD_COND_INITIALIZER,
};

int nb__processors(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > INT_MAX ? INT_MAX : (int)n;
}

/* Run tasks of the job until none is left to claim. A claim only has to be unique, hence
 * relaxed: what the tasks write reaches the caller through the lock, which every worker
 * takes to leave the job. */
static void claim_tasks(void (*task)(void *, size_t), void *arg, size_t n)
{
	size_t i;

	while ((i = atomic_fetch_add_explicit(&pool.next, 1, memory_order_relaxed)) < n)
		task(arg, i);
}

/* A worker: sleep until a job has a seat for it, take tasks until none is left, leave,
 * and sleep again, until the process exits. */
static void *worker_main(void *unused)
{
	unsigned long seen = 0;

	(void)unused;
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		void (*task)(void *, size_t);
		void *arg;
		size_t n;

		while (!pool.stop && !(pool.open && pool.job != seen && pool.seats > 0))
			pthread_cond_wait(&pool.wake, &pool.lock);
		if (pool.stop)
			break;
		seen = pool.job;
		pool.seats--;
		pool.inside++;
		task = pool.task;
		arg = pool.arg;
		n = pool.n;
		pthread_mutex_unlock(&pool.lock);
		claim_tasks(task, arg, n);
		pthread_mutex_lock(&pool.lock);
		if (--pool.inside == 0 && !pool.open)
			pthread_cond_signal(&pool.left);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

/* fork() copies only the calling thread: the child forgets the workers (joining them at
 * its exit would wait forever) and any job of another thread, and takes the lock and the
 * conditions afresh. The lock is held across the fork, so the state copied is whole. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&pool.lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&pool.lock);
}

static void fork_child(void)
{
	pool.n_workers = 0;
	pool.busy = pool.open = false;
	pool.seats = pool.inside = 0;
	pthread_cond_init(&pool.wake, NULL);
	pthread_cond_init(&pool.left, NULL);
	pthread_mutex_unlock(&pool.lock);
}

/* Start workers until there are want of them, or as many as the processors allow, and
 * return how many there are. Under the lock. They start with every signal blocked, so
 * that the program's signals go to its own threads. */
static int start_workers(int want)
{
	int cap;
	sigset_t all, old;

	if (pool.n_workers >= want || pool.cannot_start)
		return pool.n_workers;
	if (!pool.at_fork && pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
		return pool.n_workers;
	pool.at_fork = true;
	cap = nb__processors() - 1;  /* read from the system: not on every job */
	cap = cap > MAX_WORKERS ? MAX_WORKERS : cap;
	want = want > cap ? cap : want;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; pool.n_workers < want; pool.n_workers++)
		if (pthread_create(&pool.worker[pool.n_workers], NULL, worker_main, NULL) != 0) {
			pool.cannot_start = true;
			break;
		}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pool.n_workers;
}

/* Make (task, arg, n) the pool's job and wake up to threads - 1 workers for it; false,
 * posting nothing, when the pool is busy or has no worker. */
static bool post_job(int threads, size_t n, void (*task)(void *, size_t), void *arg)
{
	int want = (size_t)threads - 1 < n - 1 ? threads - 1 : (int)(n - 1), helpers = 0, all;

	pthread_mutex_lock(&pool.lock);
	if (!pool.busy && !pool.stop)
		helpers = start_workers(want);
	helpers = helpers < want ? helpers : want;
	all = pool.n_workers;
	if (helpers > 0) {
		pool.busy = pool.open = true;
		pool.job++;
		pool.seats = helpers;
		pool.task = task;
		pool.arg = arg;
		pool.n = n;
		atomic_store_explicit(&pool.next, 0, memory_order_relaxed);
	}
	pthread_mutex_unlock(&pool.lock);
	if (helpers > 0 && helpers == all)
		pthread_cond_broadcast(&pool.wake);
	else
		for (int w = 0; w < helpers; w++)
			pthread_cond_signal(&pool.wake);
	return helpers > 0;
}

/* Close the job to latecomers (every task is claimed) and wait for the workers in it to
 * finish theirs. */
static void finish_job(void)
{
	pthread_mutex_lock(&pool.lock);
	pool.open = false;
	while (pool.inside > 0)
		pthread_cond_wait(&pool.left, &pool.lock);
	pool.busy = false;
	pthread_mutex_unlock(&pool.lock);
}

void nb__parallel_for(int threads, size_t n, void (*task)(void *arg, size_t i), void *arg)
{
	if (threads > 1 && n > 1 && post_job(threads, n, task, arg)) {
		claim_tasks(task, arg, n);
		finish_job();
		return;
	}
	for (size_t i = 0; i < n; i++)
		task(arg, i);
}

/* At exit, or when the library is unloaded: tell the workers to return, and join them,
 * so that no thread outlives the library's code and no thread's memory is left behind. A
 * job still running in another thread ends first: workers return only between jobs. */
__attribute__((destructor)) static void stop_workers(void)
{
	int n;

	pthread_mutex_lock(&pool.lock);
	pool.stop = true;
	n = pool.n_workers;
	pthread_mutex_unlock(&pool.lock);
	pthread_cond_broadcast(&pool.wake);
	for (int w = 0; w < n; w++)
		pthread_join(pool.worker[w], NULL);
}
