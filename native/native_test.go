package native

import (
	"testing"

	"github.com/dmsparse/dmsparse/bsr/bsrtest"
)

func TestKernels(t *testing.T) {
	for _, k := range Kernels() {
		t.Run(k.Name(), func(t *testing.T) { bsrtest.TestKernel(t, k) })
	}
}
