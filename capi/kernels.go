//go:build cgo

package main

import (
	"strings"

	"github.com/dmsparse/dmsparse/native"
)

// The products of dms_views_linear and dms_views_mul run on the native SIMD
// kernels (the best the CPU offers, or the one DMSPARSE_KERNEL names).
var (
	kernelLinear = native.Linear
	kernelMul    = native.Mul
	kernelBest   = native.Best
	kernelAll    = native.Kernels
)

// kernelNames returns the names of the available kernels, fastest first,
// space-separated.
func kernelNames() string {
	all := kernelAll()
	names := make([]string, 0, len(all))
	for i := len(all) - 1; i >= 0; i-- {
		names = append(names, all[i].Name())
	}
	return strings.Join(names, " ")
}
