/* bench.h -- what the parts of bench share: the clock, medians and random data. */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>

/* Repetitions of each timing; a figure is their median. */
enum { REPEATS = 7 };

/* Seconds on a monotonic clock. */
double bench_now(void);
/* The median of the n values v (sorted in place). */
double bench_median(double *v, size_t n);
/* n uniform values in [0, 1) from bench's one fixed sequence. */
void bench_fill(double *x, size_t n);
/* Print "bench: what: msg" on stderr and exit with status 1. */
_Noreturn void bench_die(const char *what, const char *msg);

#endif
