// Package native runs the BSR products on the hand-written C SIMD kernels
// of csrc/ through cgo: scalar C everywhere, AVX2+FMA and AVX-512F on
// x86-64, NEON on arm64. The best kernel the CPU supports is chosen at init
// with github.com/klauspost/cpuid/v2 (AVX-512 > AVX2+FMA > scalar on x86-64,
// NEON on arm64). Each product is one cgo call per block-row range (one per
// worker), never one per block, and passes the Go slices' memory to C
// without copying.
//
// Built with the purego tag or with CGO_ENABLED=0 the package keeps the same
// API and falls back to the pure-Go bsr.Generic kernel.
//
// The environment variable DMSPARSE_KERNEL, read once at init, forces the
// kernel Best returns: one of the names Kernels lists ("go", "scalar",
// "avx2", "avx512", "neon"). An unknown or unavailable name is ignored
// (Best keeps the automatic choice) and reported by EnvError.
//
// The C kernels trust the view's structure (indices and slots in range), as
// bsr.Kernel allows: pass views that bsr.View.Validate accepts; the pool and
// the store loader only publish validated views.
package native

import (
	"fmt"
	"os"
	"strings"

	"github.com/dmsparse/dmsparse/bsr"
)

// EnvKernel is the environment variable that forces the kernel choice.
const EnvKernel = "DMSPARSE_KERNEL"

// kernels lists every usable kernel, slowest first; best is the chosen one.
// Both are set once by init and never modified afterwards.
var (
	kernels []bsr.Kernel
	best    bsr.Kernel
	envErr  error
)

func init() {
	kernels = append([]bsr.Kernel{bsr.Generic}, nativeKernels()...)
	best, envErr = choose(kernels, os.Getenv(EnvKernel))
}

// choose returns the kernel named by env if it is among ks, and otherwise
// the last (fastest) of ks with, for a non-empty env, the error saying why
// env was ignored.
func choose(ks []bsr.Kernel, env string) (bsr.Kernel, error) {
	fastest := ks[len(ks)-1]
	name := strings.TrimSpace(env)
	if name == "" {
		return fastest, nil
	}
	k, err := byName(ks, name)
	if err != nil {
		return fastest, fmt.Errorf("native: %s=%q ignored: %w", EnvKernel, name, err)
	}
	return k, nil
}

// Kernels returns every kernel usable on this machine and build, the pure-Go
// one first and the fastest last.
func Kernels() []bsr.Kernel {
	return append([]bsr.Kernel(nil), kernels...)
}

// Best returns the kernel the package-level products use: the fastest one
// the CPU supports, or the one DMSPARSE_KERNEL names.
func Best() bsr.Kernel { return best }

// EnvError reports why DMSPARSE_KERNEL was ignored, or nil when it was unset
// or honoured.
func EnvError() error { return envErr }

// ByName returns the usable kernel with the given name.
func ByName(name string) (bsr.Kernel, error) { return byName(kernels, name) }

func byName(ks []bsr.Kernel, name string) (bsr.Kernel, error) {
	names := make([]string, len(ks))
	for i, k := range ks {
		if k.Name() == name {
			return k, nil
		}
		names[i] = k.Name()
	}
	return nil, fmt.Errorf("native: no kernel %q on this machine and build (have %s)", name, strings.Join(names, ", "))
}

// Mul computes Y = A*X (or Y += A*X with opt.Accumulate) with Best. A is
// Rows x Cols, X row-major Cols x n, Y row-major Rows x n; see bsr.Mul.
func Mul(y []float32, a *bsr.View, x []float32, n int, opt bsr.Options) error {
	return bsr.MulWith(best, y, a, x, n, opt)
}

// Linear computes Y = X*A^T + bias (added to Y with opt.Accumulate) with
// Best: X row-major n x Cols, Y row-major n x Rows, bias nil or Rows
// values; see bsr.Linear.
func Linear(y, x []float32, n int, a *bsr.View, bias []float32, opt bsr.Options) error {
	return bsr.LinearWith(best, y, x, n, a, bias, opt)
}
