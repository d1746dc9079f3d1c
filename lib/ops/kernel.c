/* kernel.c -- the matrix product C = op(A) op(B), blocked and packed as the caches want
 * it, around one micro-kernel per instruction set (tile.h):
 *
 *   for each panel of NC columns of C and each block of KC terms of k:
 *       pack that KC x NC panel of op(B) into strips of NR columns, contiguous
 *       for each block of MC rows (the unit of work of a thread):
 *           pack that MC x KC block of op(A) into strips of MR rows
 *           for each strip of B (it stays in the first-level cache):
 *               for each strip of A (the block stays in the second):
 *                   the micro-kernel adds an MR x NR tile of C
 *
 * Packing costs a pass over the operands, which only products that reuse them repay:
 * small ones (a mini-batch's) read A and B where they lie, and only a transposed B is
 * always packed, since the micro-kernel reads rows of B. Whatever the blocking, the
 * threads and the tile, each element of C is one chain of multiply-adds over k in order
 * (tile.h): results depend only on the instruction set (FMA or not), never on the
 * number of threads or the shape of the blocks. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"
#include "nabla.h"
#include "pool.h"
#include "tile.h"

/* Terms of k per block, so that a strip of B (KC x NR) fits the first-level cache and a
 * block of A (MC x KC) the second; columns per panel of B (KC x NC, in the third). MC is
 * a multiple of every kernel's MR, and NR_MAX of every NR. */
enum { KC = 256, MC = 96, NC = 2048, NR_MAX = 16 };

/* Products smaller than this many multiply-adds stay on one thread: below it, waking a
 * second one costs more than it saves. */
#define PARALLEL_MIN_MACS 2000000.0

/* ---- The kernels in use ------------------------------------------------------------- */

/* The kernels of this build, best first. */
static const struct nb__tiles *const kernels[] = {
#ifdef NB_X86_SIMD
	&nb__tiles_avx512, &nb__tiles_avx2,
#endif
	&nb__tiles_plain,
};
enum { N_KERNELS = sizeof kernels / sizeof kernels[0] };

static _Atomic(const struct nb__tiles *) chosen;

static const struct nb__tiles *best_kernels(void)
{
	for (int i = 0; i < N_KERNELS; i++)
		if (kernels[i]->usable())
			return kernels[i];
	return &nb__tiles_plain;
}

static const struct nb__tiles *active(void)
{
	const struct nb__tiles *t = atomic_load_explicit(&chosen, memory_order_acquire);

	if (!t) {  /* the first product: any thread that gets here picks the same */
		t = best_kernels();
		atomic_store_explicit(&chosen, t, memory_order_release);
	}
	return t;
}

int nb_set_kernels(const char *name)
{
	if (!name)
		return -1;
	if (!strcmp(name, "auto")) {
		atomic_store(&chosen, best_kernels());
		return 0;
	}
	for (int i = 0; i < N_KERNELS; i++)
		if (!strcmp(name, kernels[i]->name)) {
			if (!kernels[i]->usable())
				return -1;
			atomic_store(&chosen, kernels[i]);
			return 0;
		}
	return -1;
}

const char *nb_kernels(void)
{
	return active()->name;
}

/* ---- Blocking ----------------------------------------------------------------------- */

/* How a product is cut: the same for every kernel, so that the work space reserved at
 * recording fits whichever runs. */
struct blocking {
	bool pack_a, pack_b;
	size_t kc, nc;           /* terms per block, columns per panel */
};

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static size_t round_up(size_t x, size_t to)
{
	return (x + to - 1) / to * to;
}

/* When the operands are packed. B is packed when it is transposed (the micro-kernel
 * reads rows of op(B)), or when it is larger than a quarter of the second-level cache
 * (32768 doubles) and enough rows of A reuse it: at 30 rows (a layer of 30 units and a
 * mini-batch of 1000), reading it in place was 20% faster, at 100 rows 30% slower. A is
 * packed when B is and enough strips of B reuse it: at 64 columns (the weights of a
 * layer for a mini-batch of 64), packing cost more than it saved. Small products, a
 * mini-batch's, read both in place: a pass to pack them would cost as much as they do. */
enum { PACK_B_DOUBLES = 32768, PACK_B_ROWS = 48, PACK_A_ROWS = 24, PACK_A_COLS = 256 };

static struct blocking blocking(bool tb, size_t m, size_t n, size_t k)
{
	struct blocking bl;

	bl.pack_b = tb || ((double)k * (double)n > PACK_B_DOUBLES && m >= PACK_B_ROWS);
	bl.pack_a = bl.pack_b && m >= PACK_A_ROWS && n >= PACK_A_COLS;
	bl.kc = bl.pack_b ? min_size(k, KC) : k;
	bl.nc = bl.pack_b ? min_size(n, NC) : n;
	return bl;
}

/* Doubles of work space: a packed panel of B, and a packed block of A per thread, each
 * on a cache line of its own (ALIGN doubles), and a line's worth to align the first. */
enum { ALIGN = 8 };

static size_t b_panel(struct blocking bl)
{
	return bl.pack_b ? bl.kc * round_up(bl.nc, NR_MAX) : 0;
}

static size_t a_block(struct blocking bl, size_t m)
{
	return bl.pack_a ? round_up(min_size(round_up(m, MC), MC) * bl.kc, ALIGN) : 0;
}

static size_t work_doubles(struct blocking bl, size_t m, int threads)
{
	size_t all = b_panel(bl) + (size_t)(threads < 1 ? 1 : threads) * a_block(bl, m);

	return all ? all + ALIGN : 0;
}

size_t nb__gemm_work(bool ta, bool tb, size_t m, size_t n, size_t k, int threads)
{
	(void)ta;  /* A is read in place, or packed, the same way transposed or not */
	return k ? work_doubles(blocking(tb, m, n, k), m, threads) : 0;
}

/* ---- Packing ------------------------------------------------------------------------ */

/* op(B)'s rows [p0, p0 + kc), columns [j0, j0 + nc), as strips of NR columns, each kc x NR
 * with its rows contiguous (the last strip is narrower, and the micro-kernel reads only
 * its columns). B in place is read a row at a time across every strip, each line of it
 * once; B transposed, NR of its rows at a time, side by side. */
static void pack_b(bool tb, const double *b, size_t n, size_t k, size_t p0, size_t kc,
                   size_t j0, size_t nc, size_t NR, double *dst)
{
	if (!tb) {
		for (size_t p = 0; p < kc; p++) {
			const double *src = b + (p0 + p) * n + j0;
			double *row = dst + p * NR;

			for (size_t j = 0; j < nc; j += NR, row += kc * NR) {
				size_t nr = min_size(NR, nc - j);

				for (size_t jj = 0; jj < nr; jj++)
					row[jj] = src[j + jj];
			}
		}
		return;
	}
	for (size_t j = 0; j < nc; j += NR, dst += kc * NR) {
		size_t nr = min_size(NR, nc - j);

		for (size_t p = 0; p < kc; p++) {
			const double *src = b + (j0 + j) * k + p0 + p;

			for (size_t jj = 0; jj < nr; jj++)
				dst[p * NR + jj] = src[jj * k];
		}
	}
}

/* Element (i, p) of op(A), m x k. */
static const double *a_at(bool ta, const double *a, size_t m, size_t k, size_t i, size_t p)
{
	return ta ? a + p * m + i : a + i * k + p;
}

/* op(A)'s rows [i0, i0 + mc), columns [p0, p0 + kc), as strips of MR rows, each kc x MR
 * with its columns contiguous. */
static void pack_a(bool ta, const double *a, size_t m, size_t k, size_t i0, size_t mc,
                   size_t p0, size_t kc, size_t MR, double *dst)
{
	for (size_t i = 0; i < mc; i += MR, dst += kc * MR) {
		size_t mr = min_size(MR, mc - i);

		if (ta)
			for (size_t p = 0; p < kc; p++) {
				const double *src = a_at(true, a, m, k, i0 + i, p0 + p);

				for (size_t r = 0; r < mr; r++)
					dst[p * MR + r] = src[r];
			}
		else
			for (size_t r = 0; r < mr; r++) {
				const double *src = a_at(false, a, m, k, i0 + i + r, p0);

				for (size_t p = 0; p < kc; p++)
					dst[p * MR + r] = src[p];
			}
	}
}

/* ---- The product -------------------------------------------------------------------- */

/* One product, one block of k and one panel of columns at a time. */
struct gemm {
	const struct nb__tiles *t;
	bool ta, tb;
	size_t m, n, k;
	const double *a, *b;
	double *c;
	struct blocking bl;
	size_t p0, kc, j0, nc;  /* the current block of k and panel of columns */
	const double *bpack;    /* the panel of B packed, or NULL */
	double *apack;          /* per thread: MC x KC, when A is packed */
	size_t apack_n;
	size_t row_blocks, col_chunks, chunk;  /* the units of work */
	atomic_size_t next;     /* the next unit to take */
};

/* Rows [i0, i1), columns [j0, j1) of the current panel and block of k. */
static void gemm_unit(const struct gemm *g, size_t i0, size_t i1, size_t j0, size_t j1,
                      const double *apack)
{
	size_t MR = (size_t)g->t->mr, NR = (size_t)g->t->nr, kc = g->kc;
	bool acc = g->p0 > 0;  /* continue the chains of the blocks of k before */

	for (size_t j = j0; j < j1; j += NR) {
		int nr = (int)min_size(NR, j1 - j);
		const double *b = g->bpack ? g->bpack + (j - g->j0) / NR * kc * NR
		                           : g->b + g->p0 * g->n + j;
		size_t ldb = g->bpack ? NR : g->n;

		for (size_t i = i0; i < i1; i += MR) {
			int mr = (int)min_size(MR, i1 - i);
			double *c = g->c + i * g->n + j;

			if (apack)
				g->t->tile(kc, apack + (i - i0) / MR * kc * MR, 1, MR, b, ldb, c,
				           g->n, mr, nr, acc);
			else
				g->t->tile(kc, a_at(g->ta, g->a, g->m, g->k, i, g->p0),
				           g->ta ? 1 : g->k, g->ta ? g->m : 1, b, ldb, c, g->n, mr,
				           nr, acc);
		}
	}
}

/* What one thread does: take units (a block of rows by a chunk of columns) until none
 * is left, packing each block of A it meets into its own space. A thread the system
 * does not run holds up only the unit it has taken. */
static void gemm_task(void *arg, size_t slot)
{
	struct gemm *g = arg;
	double *apack = g->bl.pack_a ? g->apack + slot * g->apack_n : NULL;
	size_t packed = (size_t)-1, units = g->row_blocks * g->col_chunks, u;

	while ((u = atomic_fetch_add(&g->next, 1)) < units) {
		size_t rb = u / g->col_chunks, cb = u % g->col_chunks;
		size_t i0 = rb * MC, i1 = min_size(i0 + MC, g->m);
		size_t j0 = g->j0 + cb * g->chunk, j1 = min_size(j0 + g->chunk, g->j0 + g->nc);

		if (apack && packed != rb) {
			pack_a(g->ta, g->a, g->m, g->k, i0, i1 - i0, g->p0, g->kc,
			       (size_t)g->t->mr, apack);
			packed = rb;
		}
		gemm_unit(g, i0, i1, j0, j1, apack);
	}
}

/* The current panel and block of k, on `slots` threads: row blocks, and when they are
 * too few to share, chunks of columns too (whole strips of B). */
static void gemm_panel(struct gemm *g, int slots)
{
	size_t NR = (size_t)g->t->nr, strips = (g->nc + NR - 1) / NR;

	g->row_blocks = (g->m + MC - 1) / MC;
	g->col_chunks = 1;
	if (slots > 1 && g->row_blocks < 2 * (size_t)slots)
		g->col_chunks = min_size(strips, (2 * (size_t)slots + g->row_blocks - 1) /
		                                         g->row_blocks);
	g->chunk = (strips + g->col_chunks - 1) / g->col_chunks * NR;
	g->col_chunks = (g->nc + g->chunk - 1) / g->chunk;
	atomic_store(&g->next, 0);
	nb__parallel_for(slots, (size_t)slots, gemm_task, g);
}

void nb__gemm(int threads, bool ta, bool tb, size_t m, size_t n, size_t k, const double *a,
              const double *b, double *c, struct nb__work work)
{
	struct gemm g = { .t = active(), .ta = ta, .tb = tb, .m = m, .n = n, .k = k, .a = a,
	                  .b = b, .c = c, .bl = blocking(tb, m, n, k) };
	size_t bpanel = b_panel(g.bl), skip;
	int slots = 1;

	if (!k) {
		memset(c, 0, m * n * sizeof *c);
		return;
	}
	if (work.p) {  /* packed operands start on a cache line */
		skip = (size_t)(-(uintptr_t)work.p / sizeof *work.p & (ALIGN - 1));
		work.p += skip;
		work.n -= skip;
	}
	if (g.bl.pack_a) {
		g.apack_n = a_block(g.bl, m);
		g.apack = work.p + bpanel;
	}
	/* As many threads as asked, and as the work space has room for. */
	if (threads > 1 && (double)m * (double)n * (double)k >= PARALLEL_MIN_MACS) {
		size_t room = g.bl.pack_a ? (work.n - bpanel) / g.apack_n : (size_t)threads;

		slots = (int)min_size((size_t)threads, room);
	}
	for (g.j0 = 0; g.j0 < n; g.j0 += g.bl.nc) {
		g.nc = min_size(g.bl.nc, n - g.j0);
		for (g.p0 = 0; g.p0 < k; g.p0 += g.bl.kc) {
			g.kc = min_size(g.bl.kc, k - g.p0);
			if (g.bl.pack_b) {
				pack_b(tb, b, n, k, g.p0, g.kc, g.j0, g.nc, (size_t)g.t->nr, work.p);
				g.bpack = work.p;
			}
			gemm_panel(&g, slots);
		}
	}
}

/* ---- Gradient descent -------------------------------------------------------------- */

/* n parameters w with gradient g: w -= eta (g + decay w), or with velocity v (not NULL):
 * v = mu v - eta (g + decay w), w += v. Four at a time, in statements the compiler
 * turns into vector instructions of any width (at -O2 it does not vectorize a loop with
 * a remainder); the same arithmetic for each element, whatever its place. */
#define SGD4(stmt)                           \
	for (; i + 4 <= n; i += 4) {         \
		stmt(i);                     \
		stmt(i + 1);                 \
		stmt(i + 2);                 \
		stmt(i + 3);                 \
	}                                    \
	for (; i < n; i++)                   \
		stmt(i)

void nb__sgd_update(double *restrict w, double *restrict v, const double *restrict g, size_t n,
                    double eta, double mu, double decay)
{
	size_t i = 0;

#define PLAIN(j) w[j] -= eta * (g[j] + decay * w[j])
#define MOMENTUM(j) (v[j] = mu * v[j] - eta * (g[j] + decay * w[j]), w[j] += v[j])
	if (!v) {
		SGD4(PLAIN);
		return;
	}
	SGD4(MOMENTUM);
#undef PLAIN
#undef MOMENTUM
}

