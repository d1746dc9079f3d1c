/* tile_avx2.c -- the micro-kernel for AVX2 with FMA: a 6 x 8 tile, twelve accumulators of
 * four doubles in sixteen registers, with two for a row of B and one for a broadcast
 * element of A. Twelve independent chains hide the latency of the multiply-adds. */
#include "tile.h"

#ifdef NB_X86_SIMD
#include <immintrin.h>

#define TILE_FN tile_avx2
#define TILES nb__tiles_avx2
#define TILE_NAME "avx2"
#define TARGET __attribute__((target("avx2,fma")))
#define MR 6
#define NR 8
#define LANES 4
#define VEC __m256d
#define MASK_T __m256i
#define ZERO() _mm256_setzero_pd()
#define BCAST(x) _mm256_set1_pd(x)
#define FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define LOAD(p) _mm256_loadu_pd(p)
#define STORE(p, v) _mm256_storeu_pd(p, v)
#define MASK(n) _mm256_set_epi64x((n) > 3 ? -1 : 0, (n) > 2 ? -1 : 0, (n) > 1 ? -1 : 0, \
                                  (n) > 0 ? -1 : 0)
#define MLOAD(p, m) _mm256_maskload_pd(p, m)
#define MSTORE(p, m, v) _mm256_maskstore_pd(p, m, v)

static bool usable(void)
{
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#define USABLE usable

#include "tile_body.h"
#endif
