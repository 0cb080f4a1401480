//go:build !cgo || purego

package native

import "github.com/dmsparse/dmsparse/bsr"

// nativeKernels returns no kernel: this build has no C.
func nativeKernels() []bsr.Kernel { return nil }

// cgoEnabled tells tests that the C kernels are built in.
const cgoEnabled = false
