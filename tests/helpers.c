/* helpers.c -- shared test helpers (see helpers.h). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

double rel_diff(double a, double b)
{
	double m = fmax(fabs(a), fabs(b));

	return m == 0.0 ? 0.0 : fabs(a - b) / m;
}

double max_rel_diff(const double *a, const double *b, size_t n, double floor)
{
	double worst = 0.0;

	for (size_t i = 0; i < n; i++) {
		double m = fmax(fmax(fabs(a[i]), fabs(b[i])), floor);
		double d = m == 0.0 ? 0.0 : fabs(a[i] - b[i]) / m;

		if (d > worst || isnan(d))
			worst = isnan(d) ? INFINITY : d;
	}
	return worst;
}

void rng_seed(test_rng *r, uint64_t seed)
{
	r->s = seed ? seed : 0x9e3779b97f4a7c15u;
}

static uint64_t rng_next(test_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1du;
}

double rng_uniform(test_rng *r, double lo, double hi)
{
	/* 53 random bits give every double in [0, 1) a step of 2^-53. */
	double u = (double)(rng_next(r) >> 11) * 0x1.0p-53;

	return lo + (hi - lo) * u;
}

double rng_normal(test_rng *r)
{
	double u1 = rng_uniform(r, 0.0, 1.0), u2 = rng_uniform(r, 0.0, 1.0);

	return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

void rng_fill(test_rng *r, double *x, size_t n, double lo, double hi)
{
	for (size_t i = 0; i < n; i++)
		x[i] = rng_uniform(r, lo, hi);
}

void *count_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
	count_alloc *c = ud;

	if (nsize == 0) {
		if (ptr) {
			c->frees++;
			c->bytes_in_use -= osize;
		}
		free(ptr);
		return NULL;
	}
	if (c->fail_at && c->allocs + 1 == c->fail_at) {
		c->fail_at = 0;  /* fail once, so that the tape can still free itself */
		return NULL;
	}
	ptr = malloc(nsize);
	if (ptr) {
		c->allocs++;
		c->bytes_in_use += nsize;
	}
	return ptr;
}

void expect_reason_then_path(const char *msg, const char *reason, const char *path)
{
	size_t n = strlen(reason);

	ck_assert_uint_eq(strlen(msg), NB_MSG_MAX - 1);
	ck_assert_msg(strncmp(msg, reason, n) == 0 && strncmp(msg + n, ": ", 2) == 0,
	              "message: %s", msg);
	ck_assert(strncmp(msg + n + 2, path, NB_MSG_MAX - 1 - n - 2) == 0);
}

int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void make_pairs_data(nb_dataset *ds, size_t n, uint64_t seed)
{
	test_rng r;

	rng_seed(&r, seed);
	*ds = (nb_dataset){ .n = n, .rows = 1, .cols = 2, .features = 2, .classes = 2 };
	ds->x = malloc(n * 2 * sizeof *ds->x);
	ds->y = calloc(n * 2, sizeof *ds->y);
	ds->label = malloc(n);
	for (size_t i = 0; i < n; i++) {
		rng_fill(&r, ds->x + 2 * i, 2, 0, 1);
		ds->label[i] = ds->x[2 * i] > ds->x[2 * i + 1];
		ds->y[2 * i + ds->label[i]] = 1.0;
	}
}

void free_pairs_data(nb_dataset *ds)
{
	free(ds->x);
	free(ds->y);
	free(ds->label);
}
