package bench

import (
	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/native"
)

// BestKernel returns the fastest BSR kernel available in this build
// (native.Best: the C SIMD kernels, or the pure-Go one without cgo); the
// forward passes of the benchmark and the calibration use it.
func BestKernel() bsr.Kernel { return native.Best() }
