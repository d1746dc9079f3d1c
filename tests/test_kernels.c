/* test_kernels.c -- the matrix product under every kernel this processor runs, through
 * the library's internals (this program links its objects directly): each element of C
 * must be, to the bit, one chain of multiply-adds over k in order (fused for the vector
 * kernels, a product then a sum for plain C), whatever the shape, the transposes, the
 * blocking of k, m and n, the packing and the number of threads; and the work space
 * nb__gemm_work() asks for must be enough (AddressSanitizer sees the first double past
 * it). */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "helpers.h"
#include "kernel.h"
#include "nabla.h"

static const char *const names[] = { "avx512", "avx2", "plain" };

/* Shapes that cross every edge of the blocking: tails of tiles, k of zero, one and
 * several blocks, rows past one block, columns past one panel, and the thresholds at
 * which A and B are packed. */
static const size_t shapes[][3] = {
	{ 1, 1, 1 },    { 2, 3, 0 },     { 6, 8, 5 },     { 7, 9, 13 },    { 5, 17, 31 },
	{ 12, 10, 784 }, { 30, 10, 30 },  { 13, 33, 100 }, { 24, 64, 600 }, { 25, 65, 300 },
	{ 97, 70, 260 }, { 24, 2050, 17 }, { 30, 7, 1200 }, { 50, 100, 257 }, { 100, 260, 260 },
	{ 48, 200, 180 },
};

/* Element (i, p) of op(A) for A stored m x k (k x m when ta), and (p, j) of op(B). */
static double a_el(const double *a, bool ta, size_t m, size_t k, size_t i, size_t p)
{
	return ta ? a[p * m + i] : a[i * k + p];
}

static double b_el(const double *b, bool tb, size_t n, size_t k, size_t p, size_t j)
{
	return tb ? b[j * k + p] : b[p * n + j];
}

/* C(i, j) as the kernels must compute it. */
static double chain(bool fused, bool ta, bool tb, size_t m, size_t n, size_t k,
                    const double *a, const double *b, size_t i, size_t j)
{
	double s = 0.0;

	for (size_t p = 0; p < k; p++) {
		double x = a_el(a, ta, m, k, i, p), y = b_el(b, tb, n, k, p, j);

		s = fused ? fma(x, y, s) : s + x * y;
	}
	return s;
}

/* C = op(A) op(B) on `threads` threads, with exactly the work space asked for. */
static double *product(int threads, bool ta, bool tb, size_t m, size_t n, size_t k,
                       const double *a, const double *b)
{
	size_t wn = nb__gemm_work(ta, tb, m, n, k, threads);
	double *w = wn ? malloc(wn * sizeof *w) : NULL, *c = malloc((m * n + 1) * sizeof *c);

	ck_assert(!wn || w);
	ck_assert_ptr_nonnull(c);
	for (size_t i = 0; i < m * n; i++)
		c[i] = NAN;  /* an element the kernel forgets shows */
	nb__gemm(threads, ta, tb, m, n, k, a, b, c, (struct nb__work){ w, wn });
	free(w);
	return c;
}

static double *random_matrix(test_rng *r, size_t n)
{
	double *x = malloc((n + 1) * sizeof *x);

	ck_assert_ptr_nonnull(x);
	rng_fill(r, x, n, -1, 1);
	return x;
}

/* Every shape and transpose under the kernels in use, element by element. */
static void check_all_shapes(bool fused)
{
	test_rng r;

	rng_seed(&r, 11);
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
		for (int tr = 0; tr < 4; tr++) {
			size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
			bool ta = tr & 1, tb = tr & 2;
			double *a = random_matrix(&r, m * k), *b = random_matrix(&r, k * n);
			double *c = product(1, ta, tb, m, n, k, a, b);

			for (size_t i = 0; i < m; i++)
				for (size_t j = 0; j < n; j++) {
					double want = chain(fused, ta, tb, m, n, k, a, b, i, j);

					if (c[i * n + j] != want)
						ck_abort_msg("%s: %zu x %zu x %zu, ta %d tb %d: C(%zu, %zu) "
						             "= %.17g, want %.17g", nb_kernels(), m, n, k,
						             ta, tb, i, j, c[i * n + j], want);
				}
			free(a);
			free(b);
			free(c);
		}
}

START_TEST(test_every_kernel_sums_each_element_in_order)
{
	int ran = 0;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (nb_set_kernels(names[i]) != 0)
			continue;
		ck_assert_str_eq(nb_kernels(), names[i]);
		check_all_shapes(strcmp(names[i], "plain") != 0);
		ran++;
	}
	ck_assert_int_eq(nb_set_kernels("auto"), 0);
	ck_assert_int_ge(ran, 1);  /* plain C at least */
}
END_TEST

/* Threads share rows and columns of C, never the terms of one element. */
START_TEST(test_threads_change_no_bit)
{
	static const size_t big[][3] = { { 200, 130, 90 }, { 30, 784, 100 }, { 97, 2100, 11 },
		                         { 200, 300, 200 } };
	test_rng r;

	rng_seed(&r, 12);
	for (size_t s = 0; s < sizeof big / sizeof big[0]; s++)
		for (int tr = 0; tr < 4; tr++) {
			size_t m = big[s][0], n = big[s][1], k = big[s][2];
			bool ta = tr & 1, tb = tr & 2;
			double *a = random_matrix(&r, m * k), *b = random_matrix(&r, k * n);
			double *one = product(1, ta, tb, m, n, k, a, b);

			for (int threads = 2; threads <= 3; threads++) {
				double *c = product(threads, ta, tb, m, n, k, a, b);

				ck_assert_mem_eq(c, one, m * n * sizeof *c);
				free(c);
			}
			free(a);
			free(b);
			free(one);
		}
}
END_TEST

/* More threads than the work space was sized for: the product takes fewer. */
START_TEST(test_small_work_space_takes_fewer_threads)
{
	size_t m = 200, n = 130, k = 300, wn = nb__gemm_work(false, false, m, n, k, 1);
	test_rng r;
	double *a, *b, *one, *c = malloc(m * n * sizeof *c), *w = malloc(wn * sizeof *w);

	rng_seed(&r, 13);
	a = random_matrix(&r, m * k);
	b = random_matrix(&r, k * n);
	one = product(1, false, false, m, n, k, a, b);
	nb__gemm(4, false, false, m, n, k, a, b, c, (struct nb__work){ w, wn });
	ck_assert_mem_eq(c, one, m * n * sizeof *c);
	free(a);
	free(b);
	free(c);
	free(w);
	free(one);
}
END_TEST

START_TEST(test_kernel_names)
{
	const char *before = nb_kernels();

	ck_assert(!strcmp(before, "avx512") || !strcmp(before, "avx2") || !strcmp(before, "plain"));
	ck_assert_int_eq(nb_set_kernels("plain"), 0);  /* every build and processor has it */
	ck_assert_str_eq(nb_kernels(), "plain");
	ck_assert_int_eq(nb_set_kernels("sse9"), -1);
	ck_assert_int_eq(nb_set_kernels(NULL), -1);
	ck_assert_int_eq(nb_set_kernels(""), -1);
	ck_assert_str_eq(nb_kernels(), "plain");  /* a refusal changes nothing */
	ck_assert_int_eq(nb_set_kernels("auto"), 0);
	ck_assert_str_eq(nb_kernels(), before);
#ifdef NB_NO_SIMD
	ck_assert_int_eq(nb_set_kernels("avx2"), -1);
	ck_assert_int_eq(nb_set_kernels("avx512"), -1);
#endif
}
END_TEST

/* The kernels read vectors from the start of values: a value starts on a cache line, so
 * that none of those reads spans two. */
START_TEST(test_values_start_on_a_cache_line)
{
	nb_tape *t = nb_tape_new();

	for (size_t n = 1; n < 40; n += 3) {
		nb_tensor *x = nb_variable(t, 1, (size_t[]){ n }, NULL);
		nb_tensor *y = nb_scale(t, x, 2.0);

		ck_assert_ptr_nonnull(y);
		ck_assert_uint_eq((uintptr_t)nb_value(x) % 64, 0);
		ck_assert_uint_eq((uintptr_t)nb_value(y) % 64, 0);
	}
	nb_tape_free(t);
}
END_TEST

static Suite *kernels_suite(void)
{
	Suite *s = suite_create("kernels");
	TCase *tc = tcase_create("kernels");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_every_kernel_sums_each_element_in_order);
	tcase_add_test(tc, test_threads_change_no_bit);
	tcase_add_test(tc, test_small_work_space_takes_fewer_threads);
	tcase_add_test(tc, test_kernel_names);
	tcase_add_test(tc, test_values_start_on_a_cache_line);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(kernels_suite());
}
