/* tile_plain.c -- the micro-kernel in plain C11: a 4 x 4 tile of scalars, for processors
 * and builds without the vector extensions below (configure --disable-simd). */
#include "tile.h"

#define TILE_FN tile_plain
#define TILES nb__tiles_plain
#define TILE_NAME "plain"
#define TARGET
#define MR 4
#define NR 4
#define LANES 1
#define VEC double
#define MASK_T int
#define ZERO() 0.0
#define BCAST(x) (x)
#define FMA(a, b, c) ((c) + (a) * (b))
#define LOAD(p) (*(p))
#define STORE(p, v) (*(p) = (v))
#define MASK(n) ((int)(n))
#define MLOAD(p, m) ((void)(m), *(p))
#define MSTORE(p, m, v) ((void)(m), *(p) = (v))

static bool usable(void)
{
	return true;
}
#define USABLE usable

#include "tile_body.h"
