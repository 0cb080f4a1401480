//go:build cgo && !purego

package native

/*
#cgo CFLAGS: -O3 -std=gnu11 -I${SRCDIR}/../csrc
#cgo noescape dms_go_mul
#cgo nocallback dms_go_mul
#cgo noescape dms_go_linear
#cgo nocallback dms_go_linear
#include "dmsparse_kernels.h"

// Flat-argument entry points: Go passes each slice's data pointer directly,
// and the view descriptor is built on the C stack (a Go-allocated struct
// holding Go pointers may not be passed to C).
static inline int dms_go_mul(int isa, float *y, int64_t rows, int64_t cols, int64_t R,
                             int64_t C, const int32_t *indptr, const int32_t *indices,
                             const float *arena, const int32_t *slots, int64_t stride,
                             const float *x, int64_t n, int64_t lo, int64_t hi, int acc)
{
	dms_view v = {rows, cols, R, C, indptr, indices, arena, slots, stride};
	return dms_mul(isa, y, &v, x, n, lo, hi, acc);
}

static inline int dms_go_linear(int isa, float *y, const float *xt, int64_t n, int64_t rows,
                                int64_t cols, int64_t R, int64_t C, const int32_t *indptr,
                                const int32_t *indices, const float *arena,
                                const int32_t *slots, int64_t stride, const float *bias,
                                int64_t lo, int64_t hi, int acc)
{
	dms_view v = {rows, cols, R, C, indptr, indices, arena, slots, stride};
	return dms_linear(isa, y, xt, n, &v, bias, lo, hi, acc);
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/klauspost/cpuid/v2"
)

// cKernel is one ISA's C kernels.
type cKernel struct {
	name string
	isa  C.int
}

// Name implements bsr.Kernel.
func (k cKernel) Name() string { return k.name }

func fptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(unsafe.SliceData(s)))
}

func iptr(s []int32) *C.int32_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.int32_t)(unsafe.Pointer(unsafe.SliceData(s)))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// MulRows implements bsr.Kernel with one cgo call for the whole range.
func (k cKernel) MulRows(y []float32, a *bsr.View, x []float32, n, lo, hi int, accumulate bool) {
	if lo >= hi {
		return
	}
	rc := C.dms_go_mul(k.isa, fptr(y), C.int64_t(a.Rows), C.int64_t(a.Cols), C.int64_t(a.R), C.int64_t(a.C),
		iptr(a.Indptr), iptr(a.Indices), fptr(a.Arena), iptr(a.Slots), C.int64_t(a.Stride),
		fptr(x), C.int64_t(n), C.int64_t(lo), C.int64_t(hi), cbool(accumulate))
	if rc != 0 {
		panic(fmt.Sprintf("native: kernel %s is not compiled into this binary", k.name))
	}
}

// LinearRows implements bsr.Kernel with one cgo call for the whole range.
func (k cKernel) LinearRows(y []float32, xt []float32, n int, a *bsr.View, bias []float32, lo, hi int, accumulate bool) {
	if lo >= hi {
		return
	}
	rc := C.dms_go_linear(k.isa, fptr(y), fptr(xt), C.int64_t(n), C.int64_t(a.Rows), C.int64_t(a.Cols), C.int64_t(a.R), C.int64_t(a.C),
		iptr(a.Indptr), iptr(a.Indices), fptr(a.Arena), iptr(a.Slots), C.int64_t(a.Stride),
		fptr(bias), C.int64_t(lo), C.int64_t(hi), cbool(accumulate))
	if rc != 0 {
		panic(fmt.Sprintf("native: kernel %s is not compiled into this binary", k.name))
	}
}

// nativeKernels returns the C kernels this CPU supports, slowest first.
func nativeKernels() []bsr.Kernel {
	ks := []bsr.Kernel{cKernel{name: "scalar", isa: C.DMS_ISA_SCALAR}}
	switch runtime.GOARCH {
	case "amd64":
		if C.dms_has_isa(C.DMS_ISA_AVX2) != 0 && cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3) {
			ks = append(ks, cKernel{name: "avx2", isa: C.DMS_ISA_AVX2})
		}
		if C.dms_has_isa(C.DMS_ISA_AVX512) != 0 && cpuid.CPU.Supports(cpuid.AVX512F) {
			ks = append(ks, cKernel{name: "avx512", isa: C.DMS_ISA_AVX512})
		}
	case "arm64":
		if C.dms_has_isa(C.DMS_ISA_NEON) != 0 {
			ks = append(ks, cKernel{name: "neon", isa: C.DMS_ISA_NEON})
		}
	}
	return ks
}

// cgoEnabled tells tests that the C kernels are built in.
const cgoEnabled = true
