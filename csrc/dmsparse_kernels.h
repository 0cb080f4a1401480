/*
 * dmsparse_kernels.h - C ABI of the dmsparse block-sparse-row (BSR) kernels.
 *
 * A dms_view describes a paged BSR matrix exactly like Go's bsr.View: a
 * rows x cols matrix cut into R x C blocks; block row i owns blocks
 * indptr[i] .. indptr[i+1]-1; block k sits at block column indices[k] and
 * its R*C row-major values start at arena + slots[k]*stride. Edge blocks are
 * zero-padded; the kernels honour the true shape and never read X, Y or bias
 * outside it. A contiguous matrix is the view with slots[k] = k and
 * stride = R*C.
 *
 * Every kernel computes the block rows [lo, hi) only, so callers split work
 * over threads by block rows; a call never allocates. The kernels trust
 * their arguments: the view must be structurally valid (bsr.View.Validate).
 *
 *   dms_mul_<isa>:    Y = A*X (Y += A*X with accumulate), X row-major
 *                     cols x n, Y row-major rows x n.
 *   dms_linear_<isa>: Y = X*A^T + bias (added to Y with accumulate), given
 *                     xt = X transposed (row-major cols x n; for n == 1 it
 *                     is X itself); Y row-major n x rows; bias NULL or rows
 *                     values.
 *
 * ISAs: scalar (portable C), avx2 (AVX2+FMA) and avx512 (AVX-512F) on
 * x86-64, neon on arm64. Each x86 function carries its own target
 * attribute, so one binary holds all of them; the caller checks the CPU
 * (dms_has_isa only reports what was compiled in).
 */
#ifndef DMSPARSE_KERNELS_H
#define DMSPARSE_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dms_view {
	int64_t rows, cols;     /* true (unpadded) shape */
	int64_t R, C;           /* block shape */
	const int32_t *indptr;  /* block rows + 1 entries */
	const int32_t *indices; /* block column of each kept block */
	const float *arena;     /* memory the slots index into */
	const int32_t *slots;   /* slot of each kept block */
	int64_t stride;         /* floats between consecutive slots, >= R*C */
} dms_view;

/* Instruction-set identifiers, as used by dms_mul/dms_linear. */
enum {
	DMS_ISA_SCALAR = 0,
	DMS_ISA_AVX2 = 1,
	DMS_ISA_AVX512 = 2,
	DMS_ISA_NEON = 3
};

#define DMS_DECLARE_ISA(isa)                                                        \
	void dms_mul_##isa(float *y, const dms_view *a, const float *x, int64_t n,      \
	                   int64_t lo, int64_t hi, int accumulate);                    \
	void dms_linear_##isa(float *y, const float *xt, int64_t n, const dms_view *a,  \
	                      const float *bias, int64_t lo, int64_t hi, int accumulate);

DMS_DECLARE_ISA(scalar)
#if defined(__x86_64__)
DMS_DECLARE_ISA(avx2)
DMS_DECLARE_ISA(avx512)
#endif
#if defined(__aarch64__)
DMS_DECLARE_ISA(neon)
#endif

/* dms_has_isa reports whether the kernels of isa are compiled in. */
int dms_has_isa(int isa);

/* dms_mul and dms_linear dispatch to the kernels of isa (which must be
 * compiled in and supported by the CPU); they return -1 for an unknown or
 * missing isa and 0 otherwise. */
int dms_mul(int isa, float *y, const dms_view *a, const float *x, int64_t n,
            int64_t lo, int64_t hi, int accumulate);
int dms_linear(int isa, float *y, const float *xt, int64_t n, const dms_view *a,
               const float *bias, int64_t lo, int64_t hi, int accumulate);

#ifdef __cplusplus
}
#endif

#endif /* DMSPARSE_KERNELS_H */
