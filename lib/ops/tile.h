/* tile.h -- the micro-kernels under the matrix product (kernel.c): one per instruction
 * set, each computing a small tile of C in registers. kernel.c blocks and packs the
 * operands so that a tile's operands stream from the first-level cache, and picks the
 * kernels at run time (nb_set_kernels()). */
#ifndef NB_TILE_H
#define NB_TILE_H

#include <stdbool.h>
#include <stddef.h>

/* The vector kernels: x86-64 with GCC or clang, unless configure --disable-simd. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(NB_NO_SIMD)
#define NB_X86_SIMD 1
#endif

/* The mr x nr tile at c (row stride ldc), mr <= MR and nr <= NR of the kernels:
 *   C(r, j) = sum over p in [0, kc) of A(r, p) B(p, j)        (acc false)
 *   C(r, j) = C(r, j) + the same sum, term by term            (acc true)
 * with A(r, p) = a[r * ars + p * acs] (in place, transposed or not, or packed) and
 * B(p, j) = b[p * ldb + j] (in place or packed). Each element is one chain of
 * multiply-adds over p in order, continued from C when acc: splitting k into blocks
 * changes no bit, and neither does the tile an element falls in. */
typedef void nb__tile_fn(size_t kc, const double *a, size_t ars, size_t acs,
                         const double *b, size_t ldb, double *c, size_t ldc, int mr, int nr,
                         bool acc);

/* A set of kernels and the tile they compute. */
struct nb__tiles {
	const char *name;   /* "avx512", "avx2" or "plain", as nb_set_kernels() takes */
	int mr, nr;         /* the tile: mr rows, nr columns (a multiple of the vector) */
	nb__tile_fn *tile;
	bool (*usable)(void); /* whether this processor runs them */
};

extern const struct nb__tiles nb__tiles_plain;
#ifdef NB_X86_SIMD
extern const struct nb__tiles nb__tiles_avx2, nb__tiles_avx512;
#endif

#endif
