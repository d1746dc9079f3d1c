/* tile_avx512.c -- the micro-kernel for AVX-512: an 8 x 16 tile, sixteen accumulators of
 * eight doubles in thirty-two registers; the lanes past n are masked, natively. */
#include "tile.h"

#ifdef NB_X86_SIMD
#include <immintrin.h>

#define TILE_FN tile_avx512
#define TILES nb__tiles_avx512
#define TILE_NAME "avx512"
#define TARGET __attribute__((target("avx512f")))
#define MR 8
#define NR 16
#define LANES 8
#define VEC __m512d
#define MASK_T __mmask8
#define ZERO() _mm512_setzero_pd()
#define BCAST(x) _mm512_set1_pd(x)
#define FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define LOAD(p) _mm512_loadu_pd(p)
#define STORE(p, v) _mm512_storeu_pd(p, v)
#define MASK(n) ((__mmask8)((1u << (n)) - 1u))
#define MLOAD(p, m) _mm512_maskz_loadu_pd(m, p)
#define MSTORE(p, m, v) _mm512_mask_storeu_pd(p, m, v)

static bool usable(void)
{
	return __builtin_cpu_supports("avx512f");
}
#define USABLE usable

#include "tile_body.h"
#endif
