/* bench.h -- what the parts of bench share: the clock, medians, random data, the matrix
 * products timed against the BLAS's (gemm.c), the sweep of networks (sweep.c) and, with
 * MPI, the data-parallel steps (mpi_bench.c). */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stddef.h>

#include "nabla.h"

/* Repetitions of each timing; a figure is their median. */
enum { REPEATS = 7 };

/* Seconds on a monotonic clock. */
double bench_now(void);
/* The median of the n values v (sorted in place). */
double bench_median(double *v, size_t n);
/* The next value, uniform in [0, 1), of bench's one fixed sequence. */
double bench_uniform(void);
/* n uniform values in [0, 1) from that sequence. */
void bench_fill(double *x, size_t n);
/* Print "bench: what: msg" on stderr and exit with status 1. */
_Noreturn void bench_die(const char *what, const char *msg);

/* The processor, nabla's kernels and the BLAS, for the first line of a run:
 * "cpu: ...; nabla kernels: ...; blas: ...". */
void gemm_print_setup(void);

/* Seconds per product op(A) op(B) of m x k by k x n, by nabla (a replayed tape) and by
 * the BLAS (NAN without one), medians of turns taken one after the other. */
void gemm_compare(bool ta, bool tb, size_t m, size_t n, size_t k, double *nabla_s,
                  double *blas_s);

/* gemm_ratio_vs_blas_1024_<isa> for each instruction set this processor has, from a run
 * of bench's executable self (/proc/self/exe) per set, self --gemm-only ISA with
 * OPENBLAS_CORETYPE set so that OpenBLAS loads that core; its lines are relayed. */
void gemm_ratios_per_isa(const char *self);

/* What bench --gemm-only ISA does: force nabla's kernels to isa, check OpenBLAS's core,
 * and print gemm_ratio_vs_blas_1024_<isa>. Returns the exit status. */
int gemm_only(const char *isa);

/* make bench-gemm: one line per shape, square and those of the benchmark's networks. */
void gemm_shapes(void);

/* make bench-sweep (sweep.c): nabla's SGD steps over the reference trainer's for networks
 * [784, h, 10] of several widths h and batch sizes, one line per configuration; without
 * OpenBLAS, one line saying that the sweep needs it. */
void sweep_networks(void);

/* With MPI (mpi_bench.c, built when configure found MPI; NABLA_WITH_MPI): */
/* make bench's mpi_* lines: the wide network's data-parallel step with one rank and with
 * two, each a run of bench's executable self (/proc/self/exe) under mpirun, self
 * --mpi-step FILE, and the difference of their parameters. */
void mpi_speedup(const char *self);
/* What bench --mpi-step FILE does on each rank: time the steps, print
 * "mpi_us_per_step: T" on rank 0 and save the network to FILE. Returns the exit status. */
int mpi_step(const char *path);

#endif
