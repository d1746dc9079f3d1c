/* kernel.c -- matrix products. Two register-tiled kernels cover the cases training
 * needs, each reading its operands where they lie:
 *   dot:   C = A B^T   -- rows of A and of B are contiguous along k, so each C element
 *                         is a dot product, accumulated eight lanes at a time, 4 x 5 at once;
 *   axpy:  C = op(A) B -- rows of B are contiguous along n, so each row of C is a sum of
 *                         rows of B scaled by elements of A, broadcast.
 * A^T B^T, which only higher-order gradients of transposed products meet, takes a plain
 * loop. The compiler builds each kernel for AVX-512, AVX2 and plain x86-64 and the
 * loader picks the best one the processor has (function multiversioning). */
#include <string.h>

#include "kernel.h"
#include "nabla.h"
#include "pool.h"

/* Eight and four doubles; aligned(8) lets a pointer to one read unaligned memory. */
typedef double v8 __attribute__((vector_size(64), aligned(8)));
typedef double v4 __attribute__((vector_size(32), aligned(8)));

/* ThreadSanitizer instruments the resolver that picks a version, which then runs before
 * the sanitizer is ready: its builds take the plain version. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
	!defined(__SANITIZE_THREAD__)
#define MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MULTIVERSION
#endif

/* The small functions below are written once and compiled into each version of the
 * kernel that calls them: they must be inlined there, not called in their plain x86-64
 * form. */
#define INLINE static inline __attribute__((always_inline))

/* Products smaller than this many multiply-adds stay on one thread: below it, waking a
 * second one costs more than it saves. */
#define PARALLEL_MIN_MACS 2000000.0

/* Eight doubles from p (a macro: a function returning a vector would have an ABI that
 * depends on the instruction set). */
#define load(p) (*(const v8 *)(p))

/* The sum of the lanes of vector v, in a fixed order (a macro, as load). */
#define hsum(v) ((((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + (((v)[2] + (v)[6]) + ((v)[3] + (v)[7])))

/* ---- dot: C = A B^T, A m x k, B n x k ------------------------------------------------ */

/* An mr x nr tile of C (mr <= MR, nr <= NR): mr nr dot products sharing mr + nr loads
 * of vectors of LANES doubles per LANES steps of k. Called with constant mr and nr, so
 * that the accumulators live in registers: 4 x 5 eight-lane vectors take 29 of
 * AVX-512's 32 registers, 3 x 3 four-lane ones 15 of AVX2's 16. The lanes of a dot
 * product are summed in a fixed order, which depends on LANES: each instruction set
 * gives its own last bits, the same for any thread count. */
#define DOT_TILE(name, vec, LANES, MR, NR, hsumv)                                       \
	INLINE void name(const double *a, const double *b, size_t k, double *c,          \
	                 size_t ldc, int mr, int nr)                                     \
	{                                                                                \
		vec s[MR][NR] = { { { 0 } } };                                           \
		size_t p = 0;                                                            \
                                                                                         \
		for (; p + LANES <= k; p += LANES) {                                     \
			vec av[MR], bv[NR];                                              \
                                                                                         \
			_Pragma("GCC unroll 5") for (int r = 0; r < mr; r++)             \
				av[r] = *(const vec *)(a + r * k + p);                   \
			_Pragma("GCC unroll 5") for (int j = 0; j < nr; j++)             \
				bv[j] = *(const vec *)(b + j * k + p);                   \
			_Pragma("GCC unroll 5") for (int r = 0; r < mr; r++)             \
				_Pragma("GCC unroll 5") for (int j = 0; j < nr; j++)     \
					s[r][j] += av[r] * bv[j];                        \
		}                                                                        \
		for (int r = 0; r < mr; r++)                                             \
			for (int j = 0; j < nr; j++) {                                   \
				double t = 0.0;                                          \
                                                                                         \
				for (size_t q = p; q < k; q++)                           \
					t += a[r * k + q] * b[j * k + q];                \
				c[r * ldc + j] = hsumv(s[r][j]) + t;                     \
			}                                                                \
	}

#define hsum4(v) (((v)[0] + (v)[2]) + ((v)[1] + (v)[3]))
DOT_TILE(dot_tile, v8, 8, 4, 5, hsum)
DOT_TILE(dot_tile4, v4, 4, 3, 3, hsum4)

/* Tiles of mr rows across all n columns: 5 at a time, then the rest (nr 3 and four-lane
 * tiles with narrow registers). */
INLINE void dot_strip(const double *a, const double *b, size_t n, size_t k, double *c,
                      int mr, int nr)
{
	size_t j = 0;

	if (nr == 3) {
		for (; j + 3 <= n; j += 3)
			dot_tile4(a, b + j * k, k, c + j, n, mr, 3);
		if (n - j == 2)
			dot_tile4(a, b + j * k, k, c + j, n, mr, 2);
		else if (n - j == 1)
			dot_tile4(a, b + j * k, k, c + j, n, mr, 1);
		return;
	}
	for (; j + 5 <= n; j += 5)
		dot_tile(a, b + j * k, k, c + j, n, mr, 5);
	switch (n - j) {
	case 4:
		dot_tile(a, b + j * k, k, c + j, n, mr, 4);
		break;
	case 3:
		dot_tile(a, b + j * k, k, c + j, n, mr, 3);
		break;
	case 2:
		dot_tile(a, b + j * k, k, c + j, n, mr, 2);
		break;
	case 1:
		dot_tile(a, b + j * k, k, c + j, n, mr, 1);
		break;
	}
}

/* Rows [i0, i1) of C. (Blocking k for the first-level cache was measured slower on the
 * shapes of training: rows of a few thousand doubles stream well from the second.) */
MULTIVERSION
static void dot_rows(size_t i0, size_t i1, size_t n, size_t k, const double *a,
                     const double *b, double *c, bool wide)
{
	size_t i = i0;

	if (!wide) {
		for (; i + 3 <= i1; i += 3)
			dot_strip(a + i * k, b, n, k, c + i * n, 3, 3);
		for (; i < i1; i++)
			dot_strip(a + i * k, b, n, k, c + i * n, 1, 3);
		return;
	}
	for (; i + 4 <= i1; i += 4)
		dot_strip(a + i * k, b, n, k, c + i * n, 4, 5);
	for (; i < i1; i++)
		dot_strip(a + i * k, b, n, k, c + i * n, 1, 5);
}

/* ---- axpy: C = op(A) B, B k x n ---------------------------------------------------- */

/* Element (i, p) of op(A) lies at a[i * ai + p * ap]. */
struct amat {
	const double *a;
	size_t ai, ap;
};

INLINE double at(struct amat A, size_t i, size_t p)
{
	return A.a[i * A.ai + p * A.ap];
}

/* An mr x 2 LANES tile of C (mr <= 6): per p, two vectors of a row of B times mr
 * broadcast elements of A, in 2 mr accumulators: 6 x 16 doubles in AVX-512's registers,
 * 6 x 8 in AVX2's (an eight-lane type there is two registers that GCC keeps in memory).
 * Called with a constant mr, so that the accumulators live in registers: the rows left
 * over below a multiple of six take a tile of their own height, not a row at a time,
 * which would leave one chain of dependent multiply-adds to wait on. Each element is
 * summed over p in order, whatever the tile. */
#define AXPY_TILE(name, vec, LANES)                                                     \
	INLINE void name(struct amat A, size_t i, const double *b, size_t n, size_t k,    \
	                 double *c, int mr)                                              \
	{                                                                                \
		vec s[6][2] = { { { 0 } } };                                             \
                                                                                         \
		for (size_t p = 0; p < k; p++) {                                         \
			vec b0 = *(const vec *)(b + p * n);                              \
			vec b1 = *(const vec *)(b + p * n + LANES);                      \
                                                                                         \
			_Pragma("GCC unroll 6") for (int r = 0; r < mr; r++) {           \
				double ar = at(A, i + r, p);                             \
                                                                                         \
				s[r][0] += ar * b0;                                      \
				s[r][1] += ar * b1;                                      \
			}                                                                \
		}                                                                        \
		for (int r = 0; r < mr; r++) {                                           \
			memcpy(c + r * n, &s[r][0], sizeof s[r][0]);                     \
			memcpy(c + r * n + LANES, &s[r][1], sizeof s[r][1]);             \
		}                                                                        \
	}

AXPY_TILE(axpy_tile, v8, 8)
AXPY_TILE(axpy_tile4, v4, 4)

/* One row of C, columns [j0, n): eight lanes at a time, then one by one. */
INLINE void axpy_row(struct amat A, size_t i, const double *b, size_t n, size_t k,
                            size_t j0, double *c)
{
	size_t j = j0;

	for (; j + 8 <= n; j += 8) {
		v8 s = { 0 };

		for (size_t p = 0; p < k; p++)
			s += at(A, i, p) * load(b + p * n + j);
		memcpy(c + j, &s, sizeof s);
	}
	for (; j < n; j++) {
		double t = 0.0;

		for (size_t p = 0; p < k; p++)
			t += at(A, i, p) * b[p * n + j];
		c[j] = t;
	}
}

/* mr rows of C from row i: tiles across the columns, then the last columns a row at a
 * time. */
INLINE void axpy_strip(size_t i, size_t n, size_t k, struct amat A, const double *b,
                       double *c, bool wide, int mr)
{
	size_t j = 0;

	if (wide)
		for (; j + 16 <= n; j += 16)
			axpy_tile(A, i, b + j, n, k, c + i * n + j, mr);
	else
		for (; j + 8 <= n; j += 8)
			axpy_tile4(A, i, b + j, n, k, c + i * n + j, mr);
	for (int r = 0; r < mr; r++)
		axpy_row(A, i + (size_t)r, b, n, k, j, c + (i + (size_t)r) * n);
}

/* Rows [i0, i1) of C: strips of six rows, then one strip of the rows left. */
MULTIVERSION
static void axpy_rows(size_t i0, size_t i1, size_t n, size_t k, struct amat A, const double *b,
                      double *c, bool wide)
{
	size_t i = i0;

	for (; i + 6 <= i1; i += 6)
		axpy_strip(i, n, k, A, b, c, wide, 6);
	switch (i1 - i) {
	case 5: axpy_strip(i, n, k, A, b, c, wide, 5); break;
	case 4: axpy_strip(i, n, k, A, b, c, wide, 4); break;
	case 3: axpy_strip(i, n, k, A, b, c, wide, 3); break;
	case 2: axpy_strip(i, n, k, A, b, c, wide, 2); break;
	case 1: axpy_strip(i, n, k, A, b, c, wide, 1); break;
	default: break;
	}
}

/* ---- A^T B^T: plain loops -------------------------------------------------------- */

static void tt_rows(size_t i0, size_t i1, size_t m, size_t n, size_t k, const double *a,
                    const double *b, double *c)
{
	for (size_t i = i0; i < i1; i++)
		for (size_t j = 0; j < n; j++) {
			double t = 0.0;

			for (size_t p = 0; p < k; p++)
				t += a[p * m + i] * b[j * k + p];
			c[i * n + j] = t;
		}
}

/* ---- Gradient descent -------------------------------------------------------------- */

/* n parameters w with gradient g: w -= eta (g + decay w), or with velocity v (not NULL):
 * v = mu v - eta (g + decay w), w += v. */
MULTIVERSION
void nb__sgd_update(double *w, double *v, const double *g, size_t n, double eta, double mu,
                    double decay)
{
	size_t i = 0;

	if (!v) {
		for (; i + 8 <= n; i += 8) {
			v8 wi = load(w + i), d = eta * (load(g + i) + decay * wi);

			wi -= d;
			memcpy(w + i, &wi, sizeof wi);
		}
		for (; i < n; i++)
			w[i] -= eta * (g[i] + decay * w[i]);
		return;
	}
	for (; i + 8 <= n; i += 8) {
		v8 wi = load(w + i), vi = mu * load(v + i) - eta * (load(g + i) + decay * wi);

		wi += vi;
		memcpy(v + i, &vi, sizeof vi);
		memcpy(w + i, &wi, sizeof wi);
	}
	for (; i < n; i++) {
		v[i] = mu * v[i] - eta * (g[i] + decay * w[i]);
		w[i] += v[i];
	}
}

/* ---- Dispatch ---------------------------------------------------------------------- */

/* A B^T with a short k (a mini-batch, in dw = delta a^T) spends as much on summing the
 * lanes of its dot products as on multiplying: there, B^T is copied into a k x n buffer
 * and the axpy kernel runs instead, when C has enough rows to repay the copy. */
static bool packs(bool ta, bool tb, size_t m, size_t n, size_t k)
{
	return !ta && tb && k <= 128 && n >= 16 && m >= 32;
}

size_t nb__gemm_work(bool ta, bool tb, size_t m, size_t n, size_t k)
{
	return packs(ta, tb, m, n, k) ? k * n : 0;
}

/* bt = b^T for b n x k, in blocks of 8 x 8 so that reads and writes both stay within a
 * few cache lines. */
static void transpose_into(const double *b, size_t n, size_t k, double *bt)
{
	for (size_t j0 = 0; j0 < n; j0 += 8)
		for (size_t p0 = 0; p0 < k; p0 += 8)
			for (size_t j = j0; j < j0 + 8 && j < n; j++)
				for (size_t p = p0; p < p0 + 8 && p < k; p++)
					bt[p * n + j] = b[j * k + p];
}

/* Whether the processor has 32 vector registers of eight doubles (AVX-512): the large
 * tiles fit there; with 16 registers (AVX2, SSE, elsewhere) they spill to the stack, and
 * smaller tiles are several times faster. Tile sizes change no result: each element of
 * C is summed in the same order whatever the tile. */
static bool wide_registers(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
	return __builtin_cpu_supports("avx512f");
#else
	return false;
#endif
}

static void gemm_rows(bool ta, bool tb, size_t i0, size_t i1, size_t m, size_t n, size_t k,
                      const double *a, const double *b, double *c, const double *bt)
{
	bool wide = wide_registers();

	if (bt)
		axpy_rows(i0, i1, n, k, (struct amat){ a, k, 1 }, bt, c, wide);
	else if (!ta && tb)
		dot_rows(i0, i1, n, k, a, b, c, wide);
	else if (!tb)
		axpy_rows(i0, i1, n, k, (struct amat){ a, ta ? 1 : k, ta ? m : 1 }, b, c, wide);
	else
		tt_rows(i0, i1, m, n, k, a, b, c);
}

/* The arguments of one product, for gemm_block(). */
struct gemm_job {
	bool ta, tb;
	size_t m, n, k;
	const double *a, *b, *bt;
	double *c;
};

/* Row block blk of the product: rows [12 blk, 12 blk + 12) of C, a task of
 * nb__parallel_for(). */
static void gemm_block(void *arg, size_t blk)
{
	const struct gemm_job *g = arg;
	size_t i0 = blk * 12, i1 = i0 + 12 < g->m ? i0 + 12 : g->m;

	gemm_rows(g->ta, g->tb, i0, i1, g->m, g->n, g->k, g->a, g->b, g->c, g->bt);
}

void nb__gemm(int threads, bool ta, bool tb, size_t m, size_t n, size_t k, const double *a,
              const double *b, double *c, double *work)
{
	const double *bt = NULL;

	if (packs(ta, tb, m, n, k)) {
		transpose_into(b, n, k, work);
		bt = work;
	}

	if (threads > 1 && (double)m * (double)n * (double)k >= PARALLEL_MIN_MACS && m >= 24) {
		/* Row blocks of 12, a multiple of both kernels' tile heights, so that every
		 * thread's rows are tiled as one thread's would be. */
		struct gemm_job g = { ta, tb, m, n, k, a, b, bt, c };

		nb__parallel_for(threads, (m + 11) / 12, gemm_block, &g);
		return;
	}
	gemm_rows(ta, tb, 0, m, m, n, k, a, b, c, bt);
}
