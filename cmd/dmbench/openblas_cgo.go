//go:build openblas && cgo

package main

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

// openblasStatus says whether the dense OpenBLAS baseline is built in; the
// empty string means it is.
const openblasStatus = ""

// openblasThreads sets the OpenBLAS thread count.
func openblasThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

func cf(s []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }

// openblasMul computes the dense Y = W*X (W row-major m x k, X row-major
// k x n, Y m x n) with sgemv for n == 1 and sgemm otherwise.
func openblasMul(y, w, x []float32, m, k, n int) {
	if n == 1 {
		C.cblas_sgemv(C.CblasRowMajor, C.CblasNoTrans, C.blasint(m), C.blasint(k), 1, cf(w), C.blasint(k), cf(x), 1, 0, cf(y), 1)
		return
	}
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasNoTrans, C.blasint(m), C.blasint(n), C.blasint(k),
		1, cf(w), C.blasint(k), cf(x), C.blasint(n), 0, cf(y), C.blasint(n))
}

// openblasLinear computes the dense Y = X*W^T (X row-major n x k, W m x k,
// Y n x m) with sgemv for n == 1 and sgemm otherwise.
func openblasLinear(y, w, x []float32, m, k, n int) {
	if n == 1 {
		C.cblas_sgemv(C.CblasRowMajor, C.CblasNoTrans, C.blasint(m), C.blasint(k), 1, cf(w), C.blasint(k), cf(x), 1, 0, cf(y), 1)
		return
	}
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasTrans, C.blasint(n), C.blasint(m), C.blasint(k),
		1, cf(x), C.blasint(k), cf(w), C.blasint(k), 0, cf(y), C.blasint(m))
}
