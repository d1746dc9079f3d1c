/* tile_body.h -- the micro-kernel, written once for every instruction set. A file that
 * includes it first defines:
 *   TILE_FN, TILES          the names of the function and of its struct nb__tiles
 *   TILE_NAME               its name for nb_set_kernels()
 *   TARGET                  the attribute that compiles it for the instruction set
 *   MR, NR, LANES           the tile's rows and columns, and the doubles in a vector
 *   VEC, MASK_T             a vector of LANES doubles, and a mask of its lanes
 *   ZERO(), BCAST(x), FMA(a, b, c) (a b + c), LOAD(p), STORE(p, v),
 *   MASK(n)  (the first n lanes), MLOAD(p, m), MSTORE(p, m, v)
 *   USABLE()                whether the processor has the instruction set
 * The body is a function of constant rows, vectors and masking: one out-of-line function
 * per number of rows, with a case per number of vectors inside, so that the compiler
 * keeps the MR x NR/LANES accumulators in registers. */
#define NV (NR / LANES)

#define INLINE_T static inline __attribute__((always_inline)) TARGET

/* A statement for each row r < 8 and vector v < 4 of a tile, r and v constants. The
 * statements test r < rows and v < nv, constants where the body is used: what is left
 * is straight-line code, with no loop for a compiler to keep rolled and its
 * accumulators in memory (clang kept some whatever the unrolling pragmas said). */
#define EACH_ROW(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7)
#define EACH_VEC(S, r) S(r, 0) S(r, 1) S(r, 2) S(r, 3)

#if MR > 8 || NV > 4
#error "tile_body.h: a tile of more than 8 rows or 4 vectors"
#endif

INLINE_T VEC tile_load(const double *p, bool masked, MASK_T m)
{
	return masked ? MLOAD(p, m) : LOAD(p);
}

INLINE_T void tile_store(double *p, VEC v, bool masked, MASK_T m)
{
	if (masked)
		MSTORE(p, m, v);
	else
		STORE(p, v);
}

/* rows x (nv vectors) of C; the last vector is masked when masked. */
INLINE_T void tile_body(size_t kc, const double *a, size_t ars, size_t acs, const double *b,
                        size_t ldb, double *c, size_t ldc, const int rows, const int nv,
                        const bool masked, MASK_T m, bool acc)
{
	VEC s[8][4], bv[4];

#define LAST(v) (masked && (v) == nv - 1)
#define INIT(r, v)                                                                      \
	if ((r) < rows && (v) < nv)                                                     \
		s[r][v] = acc ? tile_load(c + (r) * ldc + (v) * LANES, LAST(v), m) : ZERO();
#define INIT_ROW(r) EACH_VEC(INIT, r)
	EACH_ROW(INIT_ROW)
	for (size_t p = 0; p < kc; p++) {
		const double *ap = a + p * acs, *bp = b + p * ldb;

#define LOAD_B(r, v)                                                                    \
	if ((v) < nv)                                                                   \
		bv[v] = tile_load(bp + (v) * LANES, LAST(v), m);
		EACH_VEC(LOAD_B, 0)
#define MULADD(r, v)                                                                    \
	if ((v) < nv)                                                                   \
		s[r][v] = FMA(ar, bv[v], s[r][v]);
#define MULADD_ROW(r)                                                                   \
	if ((r) < rows) {                                                               \
		VEC ar = BCAST(ap[(size_t)(r) * ars]);                                  \
		EACH_VEC(MULADD, r)                                                     \
	}
		EACH_ROW(MULADD_ROW)
	}
#define STORE_C(r, v)                                                                   \
	if ((r) < rows && (v) < nv)                                                     \
		tile_store(c + (r) * ldc + (v) * LANES, s[r][v], LAST(v), m);
#define STORE_ROW(r) EACH_VEC(STORE_C, r)
	EACH_ROW(STORE_ROW)
#undef LAST
#undef INIT
#undef INIT_ROW
#undef LOAD_B
#undef MULADD
#undef MULADD_ROW
#undef STORE_C
#undef STORE_ROW
}

/* rows (a constant) x nr columns: full vectors, or the last one masked. */
INLINE_T void tile_shape(size_t kc, const double *a, size_t ars, size_t acs, const double *b,
                         size_t ldb, double *c, size_t ldc, const int rows, int nr, bool acc)
{
	int nv = (nr + LANES - 1) / LANES, tail = nr % LANES;
	MASK_T m = MASK(tail);

#define TILE_CASE(NVC, MASKED) tile_body(kc, a, ars, acs, b, ldb, c, ldc, rows, NVC, MASKED, m, acc)
	switch (nv * 2 + (tail != 0)) {
	case 2: TILE_CASE(1, false); break;
	case 3: TILE_CASE(1, true); break;
#if NV >= 2
	case 4: TILE_CASE(2, false); break;
	case 5: TILE_CASE(2, true); break;
#endif
#if NV >= 3
	case 6: TILE_CASE(3, false); break;
	case 7: TILE_CASE(3, true); break;
#endif
#if NV >= 4
	case 8: TILE_CASE(4, false); break;
	case 9: TILE_CASE(4, true); break;
#endif
	default: break;
	}
#undef TILE_CASE
}

/* Packed operands (kernel.c), the case of large products, have constant strides: given
 * as constants, they free registers and address arithmetic in the loop over k. */
INLINE_T void tile_rows(size_t kc, const double *a, size_t ars, size_t acs, const double *b,
                        size_t ldb, double *c, size_t ldc, const int rows, int nr, bool acc)
{
	if (ars == 1 && acs == MR && ldb == NR)
		tile_shape(kc, a, 1, MR, b, NR, c, ldc, rows, nr, acc);
	else
		tile_shape(kc, a, ars, acs, b, ldb, c, ldc, rows, nr, acc);
}

/* One function per number of rows, kept out of line: inlined into one switch, the copies
 * would be merged by a compiler that sinks common code (clang does) into one with the
 * number of rows a variable, and the accumulators in memory. */
#define ROWS_FN(R)                                                                      \
	__attribute__((noinline)) TARGET static void tile_##R(                          \
		size_t kc, const double *a, size_t ars, size_t acs, const double *b,     \
		size_t ldb, double *c, size_t ldc, int nr, bool acc)                     \
	{                                                                                \
		tile_rows(kc, a, ars, acs, b, ldb, c, ldc, R, nr, acc);                  \
	}
ROWS_FN(1)
#if MR >= 2
ROWS_FN(2)
#endif
#if MR >= 3
ROWS_FN(3)
#endif
#if MR >= 4
ROWS_FN(4)
#endif
#if MR >= 5
ROWS_FN(5)
#endif
#if MR >= 6
ROWS_FN(6)
#endif
#if MR >= 7
ROWS_FN(7)
#endif
#if MR >= 8
ROWS_FN(8)
#endif

TARGET static void TILE_FN(size_t kc, const double *a, size_t ars, size_t acs,
                           const double *b, size_t ldb, double *c, size_t ldc, int mr,
                           int nr, bool acc)
{
#define ROWS_CASE(R) case R: tile_##R(kc, a, ars, acs, b, ldb, c, ldc, nr, acc); break
	switch (mr) {
	ROWS_CASE(1);
#if MR >= 2
	ROWS_CASE(2);
#endif
#if MR >= 3
	ROWS_CASE(3);
#endif
#if MR >= 4
	ROWS_CASE(4);
#endif
#if MR >= 5
	ROWS_CASE(5);
#endif
#if MR >= 6
	ROWS_CASE(6);
#endif
#if MR >= 7
	ROWS_CASE(7);
#endif
#if MR >= 8
	ROWS_CASE(8);
#endif
	default: break;
	}
#undef ROWS_CASE
}

const struct nb__tiles TILES = { TILE_NAME, MR, NR, TILE_FN, USABLE };
