/* helpers.h -- shared test helpers: tolerances, seeded random data, a counting allocator. */
#ifndef NB_TEST_HELPERS_H
#define NB_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "nabla_nn.h"

/* Autodiff and the closed-form equations do the same arithmetic in a different order, so
 * they differ by rounding only: a few ulps of the terms each result sums. */
#define TOL_EXACT 1e-12

/* Relative difference |a - b| / max(|a|, |b|), 0 when both are 0. */
double rel_diff(double a, double b);

/* Largest rel_diff over n pairs, with absolute slack for values that cancel to ~0:
 * max over i of |a_i - b_i| / max(|a_i|, |b_i|, floor). */
double max_rel_diff(const double *a, const double *b, size_t n, double floor);

/* A small deterministic generator (xorshift64*), so every test sees the same numbers. */
typedef struct test_rng {
	uint64_t s;
} test_rng;

void rng_seed(test_rng *r, uint64_t seed);
/* Uniform in [lo, hi). */
double rng_uniform(test_rng *r, double lo, double hi);
/* Standard normal (Box-Muller). */
double rng_normal(test_rng *r);
/* Fill n doubles uniformly in [lo, hi). */
void rng_fill(test_rng *r, double *x, size_t n, double lo, double hi);

/* A counting allocator for nb_tape_new_alloc(): counts allocations and frees, tracks
 * bytes in use, and fails allocation number fail_at (1-based; 0 never fails). */
typedef struct count_alloc {
	size_t allocs;
	size_t frees;
	size_t bytes_in_use;
	size_t fail_at;
} count_alloc;

void *count_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);

/* A small synthetic data set for training tests: n points of [0, 1)^2, class 1 when
 * x0 > x1; arrays from malloc, given back by free_pairs_data(). */
void make_pairs_data(nb_dataset *ds, size_t n, uint64_t seed);
void free_pairs_data(nb_dataset *ds);

/* A message that filled its buffer: the whole reason, then as much of ": PATH" as fits
 * (what the loaders write for a path too long to fit). */
void expect_reason_then_path(const char *msg, const char *reason, const char *path);

/* Run a Check suite (and free it): the exit status of a test program. */
struct Suite;
int run_suite(struct Suite *s);

#endif
