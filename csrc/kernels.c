/*
 * kernels.c - instantiates bsr_tmpl.h for every ISA the target can carry:
 * scalar everywhere, AVX2+FMA and AVX-512F on x86-64 (per-function target
 * attributes, so the file is compiled without -m flags and one binary runs
 * on any x86-64), NEON on arm64. Build with -O3; never -march=native.
 */
#include "dmsparse_kernels.h"

#include <stddef.h>

/* Adds (or stores) w tile values plus b to every M-th float of y: the
 * transposed store of the linear form. Out of line: it runs once per tile
 * row, and keeping it out of the micro-kernels keeps them small. */
static __attribute__((noinline)) void dms_store_transposed(float *y, int64_t M, const float *t,
                                                            int w, float b, int accumulate)
{
	if (accumulate) {
		for (int j = 0; j < w; j++)
			y[j * M] += t[j] + b;
	} else {
		for (int j = 0; j < w; j++)
			y[j * M] = t[j] + b;
	}
}

/* ---------------------------------------------------------------- scalar */
#define NO_CC_SPECIAL 1
#define SFX scalar
#define ATTR
#define VT float
#define VL 1
#define HAS_MASK 0
#define VZERO() 0.0f
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VBCAST(p) (*(p))
#define VFMA(c, a, b) ((c) + (a) * (b))
#define VADD(a, b) ((a) + (b))
#define VREDUCE(v) (v)
#define PREFETCH(p) __builtin_prefetch((p), 0, 3)
#define TMR 4
#define TNV 4
#include "bsr_tmpl.h"
#undef NO_CC_SPECIAL
#undef SFX
#undef ATTR
#undef VT
#undef VL
#undef HAS_MASK
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VFMA
#undef VADD
#undef VREDUCE
#undef TMR
#undef TNV

#if defined(__x86_64__)
#include <immintrin.h>

/* ------------------------------------------------------------------ avx2 */
static const int32_t dms_avx2_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
#define SFX avx2
#define ATTR __attribute__((target("avx2,fma")))
#define VT __m256
#define VL 8
#define HAS_MASK 1
#define MT __m256i
#define MK(k) _mm256_loadu_si256((const __m256i *)(dms_avx2_mask_table + 8 - (k)))
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VLOADM(p, m) _mm256_maskload_ps((p), (m))
#define VSTOREM(p, v, m) _mm256_maskstore_ps((p), (m), (v))
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VFMA(c, a, b) _mm256_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VREDUCE(v) dms_avx2_reduce(v)
#define TMR 4
#define TNV 3
#define NSMALL 8
static inline __attribute__((always_inline, target("avx2,fma"))) float dms_avx2_reduce(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}
#include "bsr_tmpl.h"
#undef NSMALL
#undef SFX
#undef ATTR
#undef VT
#undef VL
#undef HAS_MASK
#undef MT
#undef MK
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VLOADM
#undef VSTOREM
#undef VBCAST
#undef VFMA
#undef VADD
#undef VREDUCE
#undef TMR
#undef TNV

/* ---------------------------------------------------------------- avx512 */
#define SFX avx512
#define ATTR __attribute__((target("avx512f")))
#define VT __m512
#define VL 16
#define HAS_MASK 1
#define MT __mmask16
#define MK(k) ((__mmask16)((1u << (k)) - 1u))
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VLOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define VSTOREM(p, v, m) _mm512_mask_storeu_ps((p), (m), (v))
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(c, a, b) _mm512_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VREDUCE(v) _mm512_reduce_add_ps(v)
#define TMR 8
#define TNV 3
#define NSMALL 8
#define CUNROLL 4
#include "bsr_tmpl.h"
#undef NSMALL
#undef SFX
#undef ATTR
#undef VT
#undef VL
#undef HAS_MASK
#undef MT
#undef MK
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VLOADM
#undef VSTOREM
#undef VBCAST
#undef VFMA
#undef VADD
#undef VREDUCE
#undef TMR
#undef TNV
#endif /* __x86_64__ */

#if defined(__aarch64__)
#include <arm_neon.h>

/* ------------------------------------------------------------------ neon */
#define SFX neon
#define ATTR
#define VT float32x4_t
#define VL 4
#define HAS_MASK 0
#define TAIL_SFX scalar
#define VZERO() vdupq_n_f32(0.0f)
#define VLOAD(p) vld1q_f32(p)
#define VSTORE(p, v) vst1q_f32((p), (v))
#define VBCAST(p) vld1q_dup_f32(p)
#define VFMA(c, a, b) vfmaq_f32((c), (a), (b))
#define VADD(a, b) vaddq_f32((a), (b))
#define VREDUCE(v) vaddvq_f32(v)
#define TMR 8
#define TNV 2
#define NSMALL 8
#include "bsr_tmpl.h"
#undef NSMALL
#undef SFX
#undef ATTR
#undef VT
#undef VL
#undef HAS_MASK
#undef TAIL_SFX
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VFMA
#undef VADD
#undef VREDUCE
#undef TMR
#undef TNV
#endif /* __aarch64__ */

int dms_has_isa(int isa)
{
	switch (isa) {
	case DMS_ISA_SCALAR:
		return 1;
#if defined(__x86_64__)
	case DMS_ISA_AVX2:
	case DMS_ISA_AVX512:
		return 1;
#endif
#if defined(__aarch64__)
	case DMS_ISA_NEON:
		return 1;
#endif
	}
	return 0;
}

int dms_mul(int isa, float *y, const dms_view *a, const float *x, int64_t n, int64_t lo,
            int64_t hi, int accumulate)
{
	switch (isa) {
	case DMS_ISA_SCALAR:
		dms_mul_scalar(y, a, x, n, lo, hi, accumulate);
		return 0;
#if defined(__x86_64__)
	case DMS_ISA_AVX2:
		dms_mul_avx2(y, a, x, n, lo, hi, accumulate);
		return 0;
	case DMS_ISA_AVX512:
		dms_mul_avx512(y, a, x, n, lo, hi, accumulate);
		return 0;
#endif
#if defined(__aarch64__)
	case DMS_ISA_NEON:
		dms_mul_neon(y, a, x, n, lo, hi, accumulate);
		return 0;
#endif
	}
	return -1;
}

int dms_linear(int isa, float *y, const float *xt, int64_t n, const dms_view *a,
               const float *bias, int64_t lo, int64_t hi, int accumulate)
{
	switch (isa) {
	case DMS_ISA_SCALAR:
		dms_linear_scalar(y, xt, n, a, bias, lo, hi, accumulate);
		return 0;
#if defined(__x86_64__)
	case DMS_ISA_AVX2:
		dms_linear_avx2(y, xt, n, a, bias, lo, hi, accumulate);
		return 0;
	case DMS_ISA_AVX512:
		dms_linear_avx512(y, xt, n, a, bias, lo, hi, accumulate);
		return 0;
#endif
#if defined(__aarch64__)
	case DMS_ISA_NEON:
		dms_linear_neon(y, xt, n, a, bias, lo, hi, accumulate);
		return 0;
#endif
	}
	return -1;
}
