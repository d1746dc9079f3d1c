/* pool.h -- the threads the matrix kernels share: one pool of workers for the process,
 * asleep between jobs, and a loop that spreads a job's tasks over them and its caller. */
#ifndef NB_POOL_H
#define NB_POOL_H

#include <stddef.h>

/* Runs task(arg, i) for every i in [0, n), on up to `threads` threads, the calling thread
 * among them, and returns when all have finished. Threads claim tasks one at a time, so
 * a worker the system does not schedule delays only the task it holds. The caller runs
 * every task itself when threads <= 1 or n <= 1 (without locking), while the pool runs
 * another caller's job (another user thread's, or this call is made from a task), or
 * when no worker could be started: never an error, never a wait for another job. Tasks
 * may run in any order and on any thread, so their results must not depend on either. */
void nb__parallel_for(int threads, size_t n, void (*task)(void *arg, size_t i), void *arg);

/* The processors online, at least 1: the most threads worth asking for. */
int nb__processors(void);

#endif
