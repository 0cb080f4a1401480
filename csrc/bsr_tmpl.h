/*
 * bsr_tmpl.h - the BSR kernels, written once over a small vector
 * vocabulary and instantiated per ISA by kernels.c. Not a public header.
 *
 * The including file defines:
 *   SFX            suffix of the generated names (scalar, avx2, ...)
 *   ATTR           function attributes (target ISA)
 *   VT, VL         vector type and its float lanes
 *   HAS_MASK       1 if partial vectors load/store through a mask
 *   MT, MK(k)      mask type and the mask of the first k lanes (HAS_MASK)
 *   VZERO()        zero vector
 *   VLOAD(p), VSTORE(p, v)             unaligned full-vector access
 *   VLOADM(p, m), VSTOREM(p, v, m)     masked access (HAS_MASK)
 *   VBCAST(p)      broadcast *p
 *   VFMA(c, a, b)  c + a*b
 *   VADD(a, b)     a + b
 *   VREDUCE(v)     sum of the lanes, as float
 *   PREFETCH(p)    prefetch the cache line at p for reading
 *   TMR, TNV       micro-tile: TMR block rows x TNV vectors of the batch
 *   NSMALL         (optional) largest batch the small-batch path takes
 *   CUNROLL        (optional) unroll factor of the tile's column loop
 *   TAIL_SFX       (only if !HAS_MASK and VL > 1) the suffix of an
 *                  already-instantiated VL == 1 variant that handles the
 *                  last n % VL batch columns
 *
 * Mul (n >= 2): for each block row, the batch is cut into chunks of
 * TNV*VL columns and the block rows into tiles of TMR rows; a TMR x TNV
 * tile of accumulators stays in registers across the C columns of every
 * block of the block row: per block column one row of X is loaded (TNV
 * vectors, contiguous along n) and each of the TMR weights is broadcast and
 * FMAed into its row of the tile. The next block's rows of the tile are
 * prefetched (paged views scatter blocks, which defeats hardware
 * prefetchers at every block). Rows past the true shape reuse the last
 * valid row's weights and are not stored. Long block rows are cut into
 * groups of blocks whose X rows (one batch chunk) fit in ~192 KiB of L2;
 * groups after the first accumulate into Y. Linear is the same product on X
 * transposed, stored transposed with the bias added.
 *
 * 2 <= n <= NSMALL with C in {16, 32, 64}: see small_cc, vectorised along
 * C like n == 1, so that small batches waste no lanes.
 *
 * n == 1 (both products): the block row is streamed block by block, each
 * block once, in storage order: for every row, vector FMAs along C into a
 * per-row accumulator vector kept in a small stack array (L1), reduced once
 * at the end of the block row. The next block is prefetched whole.
 */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#define DMS_INLINE static inline __attribute__((always_inline))

/* Unroll factor of the tile's loop over block columns (CUNROLL, default 1). */
#ifndef CUNROLL
#define CUNROLL 1
#endif
#define DMS_PRAGMA_(x) _Pragma(#x)
#define DMS_UNROLL(k) DMS_PRAGMA_(GCC unroll k)

/* One TMR x nv tile: rows rt..rt+mr-1 of block row i, batch columns
 * n0 .. n0+w-1 where w = (nv-1)*VL + (masked ? lanes of mlast : VL). CC is
 * the block width (a constant in the specialised copies). */
DMS_INLINE ATTR void FN(tile)(float *restrict y, const dms_view *restrict a,
                              const float *restrict x, int64_t n, int64_t i, int64_t kb,
                              int64_t ke, int64_t rt, int mr, int64_t n0, int w, const int nv, const int masked,
#if HAS_MASK
                              MT mlast,
#endif
                              const int64_t CC, int linear, const float *restrict bias,
                              int accumulate)
{
	VT acc[TMR][TNV];
	(void)masked;
#pragma GCC unroll 16
	for (int r = 0; r < TMR; r++)
#pragma GCC unroll 8
		for (int v = 0; v < TNV; v++)
			acc[r][v] = VZERO();
	int64_t ro[TMR];
#pragma GCC unroll 16
	for (int r = 0; r < TMR; r++)
		ro[r] = (rt + (r < mr ? r : mr - 1)) * CC;
	const int64_t k0 = kb, k1 = ke;
	const int64_t stride = a->stride;
	const int lines = (int)((CC * 4 + 63) / 64);
	for (int64_t k = k0; k < k1; k++) {
		const float *restrict blk = a->arena + (int64_t)a->slots[k] * stride;
		if (k + 1 < k1) {
			const float *nb = a->arena + (int64_t)a->slots[k + 1] * stride;
#pragma GCC unroll 16
			for (int r = 0; r < TMR; r++)
				for (int l = 0; l < lines; l++)
					PREFETCH(nb + ro[r] + l * 16);
		}
		const int64_t c0 = (int64_t)a->indices[k] * CC;
		int64_t cols = a->cols - c0;
		if (cols > CC)
			cols = CC;
		const float *restrict xp = x + c0 * n + n0;
		DMS_UNROLL(CUNROLL)
		for (int64_t c = 0; c < cols; c++) {
			VT xv[TNV];
#pragma GCC unroll 8
			for (int v = 0; v < nv; v++) {
#if HAS_MASK
				if (masked && v == nv - 1)
					xv[v] = VLOADM(xp + v * VL, mlast);
				else
#endif
					xv[v] = VLOAD(xp + v * VL);
			}
#pragma GCC unroll 16
			for (int r = 0; r < TMR; r++) {
				VT wv = VBCAST(blk + ro[r] + c);
#pragma GCC unroll 8
				for (int v = 0; v < nv; v++)
					acc[r][v] = VFMA(acc[r][v], wv, xv[v]);
			}
			xp += n;
		}
	}
	const int64_t M = a->rows;
	const int64_t m0 = i * a->R + rt;
	if (!linear) {
#pragma GCC unroll 16
		for (int r = 0; r < TMR; r++) {
			if (r >= mr)
				break;
			float *yr = y + (m0 + r) * n + n0;
#pragma GCC unroll 8
			for (int v = 0; v < nv; v++) {
				VT s = acc[r][v];
#if HAS_MASK
				if (masked && v == nv - 1) {
					if (accumulate)
						s = VADD(s, VLOADM(yr + v * VL, mlast));
					VSTOREM(yr + v * VL, s, mlast);
					continue;
				}
#endif
				if (accumulate)
					s = VADD(s, VLOAD(yr + v * VL));
				VSTORE(yr + v * VL, s);
			}
		}
		return;
	}
	float tmp[TNV * VL] = {0};
#pragma GCC unroll 16
	for (int r = 0; r < TMR; r++) {
		if (r >= mr)
			break;
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			VSTORE(tmp + v * VL, acc[r][v]);
		dms_store_transposed(y + n0 * M + m0 + r, M, tmp, w, bias ? bias[m0 + r] : 0.0f,
		                     accumulate);
	}
}

/* The last, partial row tile of a block row (rows past R % TMR or the
 * matrix's last rows): one out-of-line copy per vector count, any C. */
static __attribute__((noinline)) ATTR void FN(tile_tail_nv)(float *y, const dms_view *a,
                                                           const float *x, int64_t n,
                                                           int64_t i, int64_t kb, int64_t ke, int64_t rt, int mr,
                                                           int64_t n0, int w, const int nv,
                                                           const int masked,
#if HAS_MASK
                                                           MT mlast,
#endif
                                                           int linear, const float *bias,
                                                           int accumulate)
{
#if HAS_MASK
#define TAIL_MASK_ARG mlast,
#else
#define TAIL_MASK_ARG
#endif
	switch (nv) {
#if TNV > 3
	case 3:
		FN(tile)(y, a, x, n, i, kb, ke, rt, mr, n0, w, 3, masked, TAIL_MASK_ARG a->C, linear, bias,
		         accumulate);
		return;
#endif
#if TNV > 2
	case 2:
		FN(tile)(y, a, x, n, i, kb, ke, rt, mr, n0, w, 2, masked, TAIL_MASK_ARG a->C, linear, bias,
		         accumulate);
		return;
#endif
#if TNV > 1
	case 1:
		FN(tile)(y, a, x, n, i, kb, ke, rt, mr, n0, w, 1, masked, TAIL_MASK_ARG a->C, linear, bias,
		         accumulate);
		return;
#endif
	default:
		FN(tile)(y, a, x, n, i, kb, ke, rt, mr, n0, w, TNV, masked, TAIL_MASK_ARG a->C, linear, bias,
		         accumulate);
		return;
	}
#undef TAIL_MASK_ARG
}

DMS_INLINE ATTR void FN(tile_tail)(float *y, const dms_view *a, const float *x, int64_t n,
                                   int64_t i, int64_t kb, int64_t ke, int64_t rt, int mr, int64_t n0, int w,
                                   const int nv, const int masked,
#if HAS_MASK
                                   MT mlast,
#endif
                                   int linear, const float *bias, int accumulate)
{
	FN(tile_tail_nv)(y, a, x, n, i, kb, ke, rt, mr, n0, w, nv, masked,
#if HAS_MASK
	                 mlast,
#endif
	                 linear, bias, accumulate);
}

/* Dispatch one chunk of nv vectors over the row tiles of block row i. */
DMS_INLINE ATTR void FN(chunk)(float *y, const dms_view *a, const float *x, int64_t n,
                               int64_t i, int64_t kb, int64_t ke, int64_t rows, int64_t n0, int w, const int nv,
                               const int masked, const int64_t CC, int linear,
                               const float *bias, int accumulate)
{
#if HAS_MASK
	const MT m = MK(w - (nv - 1) * VL);
#define TILE_MASK_ARG m,
#else
#define TILE_MASK_ARG
#endif
	int64_t rt = 0;
	for (; rt + TMR <= rows; rt += TMR)
		FN(tile)(y, a, x, n, i, kb, ke, rt, TMR, n0, w, nv, masked, TILE_MASK_ARG CC, linear,
		         bias, accumulate);
	if (rt < rows)
		FN(tile_tail)(y, a, x, n, i, kb, ke, rt, (int)(rows - rt), n0, w, nv, masked, TILE_MASK_ARG
		              linear, bias, accumulate);
#undef TILE_MASK_ARG
}

/* Block row i, blocks [kb, ke), batch columns [nlo, nhi). */
DMS_INLINE ATTR void FN(block_row_group)(float *y, const dms_view *a, const float *x, int64_t n,
                                         int64_t i, int64_t kb, int64_t ke, int64_t rows,
                                         int64_t nlo, int64_t nhi, const int64_t CC, int linear,
                                         const float *bias, int accumulate)
{
	const int NT = TNV * VL;
	int64_t n0 = nlo;
	for (; n0 + NT <= nhi; n0 += NT)
		FN(chunk)(y, a, x, n, i, kb, ke, rows, n0, NT, TNV, 0, CC, linear, bias, accumulate);
	int64_t rem = nhi - n0;
	if (rem <= 0)
		return;
	const int nv = (int)((rem + VL - 1) / VL);
	/* The remainder chunk goes through the mask only when it ends in a
	 * partial vector. */
#if HAS_MASK
#define REM_CHUNK(NV)                                                                      \
	if (rem % VL)                                                                      \
		FN(chunk)(y, a, x, n, i, kb, ke, rows, n0, (int)rem, NV, 1, CC, linear, bias,  \
		          accumulate);                                                     \
	else                                                                               \
		FN(chunk)(y, a, x, n, i, kb, ke, rows, n0, (int)rem, NV, 0, CC, linear, bias,  \
		          accumulate);
#else
#define REM_CHUNK(NV)                                                                      \
	FN(chunk)(y, a, x, n, i, kb, ke, rows, n0, (int)rem, NV, 0, CC, linear, bias, accumulate);
#endif
	switch (nv) {
#if TNV > 3
	case 3:
		REM_CHUNK(3)
		break;
#endif
#if TNV > 2
	case 2:
		REM_CHUNK(2)
		break;
#endif
#if TNV > 1
	case 1:
		REM_CHUNK(1)
		break;
#endif
	default:
		REM_CHUNK(TNV)
		break;
	}
#undef REM_CHUNK
}

/* Block row i over batch columns [nlo, nhi), for a constant block width. */
DMS_INLINE ATTR void FN(block_row_cc)(float *y, const dms_view *a, const float *x, int64_t n,
                                      int64_t i, int64_t nlo, int64_t nhi, const int64_t CC,
                                      int linear, const float *bias, int accumulate)
{
	int64_t rows = a->rows - i * a->R;
	if (rows > a->R)
		rows = a->R;
	/* K blocking: the blocks of the row are taken in groups whose X rows
	 * (for one chunk of the batch) fit in about 192 KiB, so that X stays
	 * in L2 across the row tiles; later groups accumulate into Y. */
	const int64_t k0 = a->indptr[i], k1 = a->indptr[i + 1];
	int64_t group = (192 * 1024) / (CC * TNV * VL * 4);
	if (group < 1)
		group = 1;
	int64_t kb = k0;
	do {
		const int64_t ke = k1 - kb > group ? kb + group : k1;
		const int first = kb == k0;
		FN(block_row_group)(y, a, x, n, i, kb, ke, rows, nlo, nhi, CC, linear,
		                    first ? bias : 0, accumulate || !first);
		kb = ke;
	} while (kb < k1);
}

/* Block row i over batch columns [nlo, nhi): picks the block-width
 * specialisation. */
static ATTR void FN(block_row)(float *y, const dms_view *a, const float *x, int64_t n, int64_t i,
                               int64_t nlo, int64_t nhi, int linear, const float *bias,
                               int accumulate)
{
#if defined(NO_CC_SPECIAL)
	FN(block_row_cc)(y, a, x, n, i, nlo, nhi, a->C, linear, bias, accumulate);
	return;
#endif
	switch (a->C) {
	case 16:
		FN(block_row_cc)(y, a, x, n, i, nlo, nhi, 16, linear, bias, accumulate);
		break;
	case 32:
		FN(block_row_cc)(y, a, x, n, i, nlo, nhi, 32, linear, bias, accumulate);
		break;
	case 64:
		FN(block_row_cc)(y, a, x, n, i, nlo, nhi, 64, linear, bias, accumulate);
		break;
	default:
		FN(block_row_cc)(y, a, x, n, i, nlo, nhi, a->C, linear, bias, accumulate);
		break;
	}
}

/* Rows per pass of the n == 1 kernel (its accumulators live on the stack). */
#define GV_ROWS 64

/* n == 1: block row i, rows rt..rt+rows-1, for a constant block width. */
DMS_INLINE ATTR void FN(gemv_cc)(float *restrict y, const dms_view *restrict a,
                                 const float *restrict x, int64_t i, int64_t rt, int rows,
                                 const int64_t CC, const float *restrict bias, int accumulate)
{
	VT acc[GV_ROWS];
	float sacc[GV_ROWS];
	for (int r = 0; r < rows; r++) {
		acc[r] = VZERO();
		sacc[r] = 0.0f;
	}
	const int64_t k0 = a->indptr[i], k1 = a->indptr[i + 1];
	const int64_t stride = a->stride;
	const int64_t bs = a->R * CC;
	for (int64_t k = k0; k < k1; k++) {
		const float *restrict blk = a->arena + (int64_t)a->slots[k] * stride + rt * CC;
		if (k + 1 < k1) {
			const float *nb = a->arena + (int64_t)a->slots[k + 1] * stride + rt * CC;
			const int64_t span = (int64_t)rows * CC;
			for (int64_t o = 0; o < span; o += 16)
				PREFETCH(nb + o);
		}
		(void)bs;
		const int64_t c0 = (int64_t)a->indices[k] * CC;
		int64_t cols = a->cols - c0;
		if (cols > CC)
			cols = CC;
		const float *restrict xp = x + c0;
		if (cols == CC && CC % VL == 0 && CC <= 256) {
			/* Full-width block: CC/VL vectors per row, all constant. */
			VT xv[CC / VL > 0 && CC <= 256 ? CC / VL : 1];
			for (int64_t v = 0; v < CC / VL; v++)
				xv[v] = VLOAD(xp + v * VL);
			for (int r = 0; r < rows; r++) {
				const float *wr = blk + r * CC;
				VT s = acc[r];
				for (int64_t v = 0; v < CC / VL; v++)
					s = VFMA(s, VLOAD(wr + v * VL), xv[v]);
				acc[r] = s;
			}
			continue;
		}
		const int64_t full = cols / VL;
#if HAS_MASK
		const int64_t rem = cols % VL;
#endif
		for (int r = 0; r < rows; r++) {
			const float *wr = blk + r * CC;
			VT s = acc[r];
			for (int64_t v = 0; v < full; v++)
				s = VFMA(s, VLOAD(wr + v * VL), VLOAD(xp + v * VL));
#if HAS_MASK
			if (rem) {
				const MT m = MK((int)rem);
				s = VFMA(s, VLOADM(wr + full * VL, m), VLOADM(xp + full * VL, m));
			}
#else
			float t = 0.0f;
			for (int64_t c = full * VL; c < cols; c++)
				t += wr[c] * xp[c];
			sacc[r] += t;
#endif
			acc[r] = s;
		}
	}
	const int64_t m0 = i * a->R + rt;
	for (int r = 0; r < rows; r++) {
		float s = VREDUCE(acc[r]) + sacc[r];
		if (bias)
			s += bias[m0 + r];
		if (accumulate)
			y[m0 + r] += s;
		else
			y[m0 + r] = s;
	}
}

static ATTR void FN(gemv)(float *y, const dms_view *a, const float *x, int64_t i,
                          const float *bias, int accumulate)
{
	int64_t rows = a->rows - i * a->R;
	if (rows > a->R)
		rows = a->R;
	for (int64_t rt = 0; rt < rows; rt += GV_ROWS) {
		int rr = (int)(rows - rt < GV_ROWS ? rows - rt : GV_ROWS);
#if defined(NO_CC_SPECIAL)
		FN(gemv_cc)(y, a, x, i, rt, rr, a->C, bias, accumulate);
		continue;
#endif
		switch (a->C) {
		case 8:
			FN(gemv_cc)(y, a, x, i, rt, rr, 8, bias, accumulate);
			break;
		case 16:
			FN(gemv_cc)(y, a, x, i, rt, rr, 16, bias, accumulate);
			break;
		case 32:
			FN(gemv_cc)(y, a, x, i, rt, rr, 32, bias, accumulate);
			break;
		case 64:
			FN(gemv_cc)(y, a, x, i, rt, rr, 64, bias, accumulate);
			break;
		default:
			FN(gemv_cc)(y, a, x, i, rt, rr, a->C, bias, accumulate);
			break;
		}
	}
}

#if defined(NSMALL) && NSMALL > 1
/* Small batches (2 <= n <= NSMALL, a block width that is a multiple of VL
 * and at most 64): vectorise along C instead of along n, as for n == 1, so
 * no lane is wasted. Per block the nb columns of X's C rows are gathered
 * into xs (zero past the true width), the rows of the block are streamed
 * once, and every row FMAs its CC/VL weight vectors against the nb
 * gathered columns into nb accumulator vectors kept on the stack;
 * accumulators are reduced once per block row. */
#define SM_ROWS 32
DMS_INLINE ATTR void FN(small_cc)(float *restrict y, const dms_view *restrict a,
                                  const float *restrict x, int64_t n, int64_t i, int64_t rt,
                                  int rows, const int64_t CC, const int nb, int linear,
                                  const float *restrict bias, int accumulate)
{
	VT acc[SM_ROWS * NSMALL];
	float xs[NSMALL * 64];
	for (int q = 0; q < rows * nb; q++)
		acc[q] = VZERO();
	const int64_t k0 = a->indptr[i], k1 = a->indptr[i + 1];
	const int64_t stride = a->stride;
	for (int64_t k = k0; k < k1; k++) {
		const float *restrict blk = a->arena + (int64_t)a->slots[k] * stride + rt * CC;
		if (k + 1 < k1) {
			const float *nb_ = a->arena + (int64_t)a->slots[k + 1] * stride + rt * CC;
			for (int64_t o = 0; o < (int64_t)rows * CC; o += 16)
				PREFETCH(nb_ + o);
		}
		const int64_t c0 = (int64_t)a->indices[k] * CC;
		int64_t cols = a->cols - c0;
		if (cols > CC)
			cols = CC;
		const float *restrict xp = x + c0 * n;
		for (int64_t c = 0; c < cols; c++)
#pragma GCC unroll 8
			for (int b = 0; b < nb; b++)
				xs[b * CC + c] = xp[c * n + b];
		for (int64_t c = cols; c < CC; c++)
			for (int b = 0; b < nb; b++)
				xs[b * CC + c] = 0.0f;
		VT xv[NSMALL * 64 / VL];
#pragma GCC unroll 32
		for (int q = 0; q < nb * CC / VL; q++)
			xv[q] = VLOAD(xs + q * VL);
		for (int r = 0; r < rows; r++) {
			const float *wr = blk + r * CC;
			VT w[64 / VL];
#pragma GCC unroll 16
			for (int v = 0; v < CC / VL; v++)
				w[v] = VLOAD(wr + v * VL);
#pragma GCC unroll 8
			for (int b = 0; b < nb; b++) {
				VT s = acc[r * nb + b];
#pragma GCC unroll 16
				for (int v = 0; v < CC / VL; v++)
					s = VFMA(s, w[v], xv[b * (CC / VL) + v]);
				acc[r * nb + b] = s;
			}
		}
	}
	const int64_t M = a->rows;
	const int64_t m0 = i * a->R + rt;
	for (int r = 0; r < rows; r++) {
		const float bv = bias ? bias[m0 + r] : 0.0f;
		for (int b = 0; b < nb; b++) {
			float s = VREDUCE(acc[r * nb + b]) + bv;
			float *p = linear ? y + b * M + m0 + r : y + (m0 + r) * n + b;
			if (accumulate)
				*p += s;
			else
				*p = s;
		}
	}
}

/* Dispatches a small-batch block row for a constant block width. */
DMS_INLINE ATTR void FN(small_row_cc)(float *y, const dms_view *a, const float *x, int64_t n,
                                      int64_t i, const int64_t CC, int linear,
                                      const float *bias, int accumulate)
{
	int64_t rows = a->rows - i * a->R;
	if (rows > a->R)
		rows = a->R;
	for (int64_t rt = 0; rt < rows; rt += SM_ROWS) {
		int rr = (int)(rows - rt < SM_ROWS ? rows - rt : SM_ROWS);
		switch (n) {
#define SMALL_CASE(NB)                                                                     \
	case NB:                                                                           \
		FN(small_cc)(y, a, x, n, i, rt, rr, CC, NB, linear, bias, accumulate);     \
		break;
		SMALL_CASE(2)
#if NSMALL > 2
		SMALL_CASE(3)
		SMALL_CASE(4)
#endif
#if NSMALL > 4
		SMALL_CASE(5)
		SMALL_CASE(6)
		SMALL_CASE(7)
		SMALL_CASE(8)
#endif
#undef SMALL_CASE
		}
	}
}

/* Reports whether the small-batch kernel takes a product of batch n. */
static inline int FN(small_ok)(const dms_view *a, int64_t n)
{
	return n >= 2 && n <= NSMALL && (a->C == 16 || a->C == 32 || a->C == 64) && a->C % VL == 0;
}

static ATTR void FN(small_row)(float *y, const dms_view *a, const float *x, int64_t n, int64_t i,
                               int linear, const float *bias, int accumulate)
{
	switch (a->C) {
	case 16:
		FN(small_row_cc)(y, a, x, n, i, 16, linear, bias, accumulate);
		break;
	case 32:
		FN(small_row_cc)(y, a, x, n, i, 32, linear, bias, accumulate);
		break;
	case 64:
		FN(small_row_cc)(y, a, x, n, i, 64, linear, bias, accumulate);
		break;
	}
}
#undef SM_ROWS
#endif /* NSMALL */

/* Both products over block rows [lo, hi) of the full batch n. */
static ATTR void FN(run)(float *y, const dms_view *a, const float *x, int64_t n, int64_t lo,
                         int64_t hi, int linear, const float *bias, int accumulate)
{
	if (n == 1) {
		for (int64_t i = lo; i < hi; i++)
			FN(gemv)(y, a, x, i, bias, accumulate);
		return;
	}
#if defined(NSMALL) && NSMALL > 1
	if (FN(small_ok)(a, n)) {
		for (int64_t i = lo; i < hi; i++)
			FN(small_row)(y, a, x, n, i, linear, bias, accumulate);
		return;
	}
#endif
#if !HAS_MASK && VL > 1
	const int64_t nmain = n - n % VL;
#else
	const int64_t nmain = n;
#endif
	for (int64_t i = lo; i < hi; i++) {
		if (nmain > 0)
			FN(block_row)(y, a, x, n, i, 0, nmain, linear, bias, accumulate);
#if !HAS_MASK && VL > 1
		if (nmain < n)
			CAT(block_row, TAIL_SFX)(y, a, x, n, i, nmain, n, linear, bias, accumulate);
#endif
	}
}

ATTR void CAT(dms_mul, SFX)(float *y, const dms_view *a, const float *x, int64_t n, int64_t lo,
                            int64_t hi, int accumulate)
{
	FN(run)(y, a, x, n, lo, hi, 0, 0, accumulate);
}

ATTR void CAT(dms_linear, SFX)(float *y, const float *xt, int64_t n, const dms_view *a,
                               const float *bias, int64_t lo, int64_t hi, int accumulate)
{
	FN(run)(y, a, xt, n, lo, hi, 1, bias, accumulate);
}

#undef GV_ROWS
#undef FN
#undef DMS_INLINE
#undef CUNROLL
#undef DMS_UNROLL
#undef DMS_PRAGMA_
