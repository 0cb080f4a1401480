package native

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/bsr/bsrtest"
	"github.com/klauspost/cpuid/v2"
)

func TestSelection(t *testing.T) {
	ks := Kernels()
	if ks[0] != bsr.Generic {
		t.Errorf("Kernels()[0] = %s, want the pure-Go kernel first", ks[0].Name())
	}
	seen := map[string]bool{}
	for _, k := range ks {
		if seen[k.Name()] {
			t.Errorf("kernel %s listed twice", k.Name())
		}
		seen[k.Name()] = true
		got, err := ByName(k.Name())
		if err != nil || got.Name() != k.Name() {
			t.Errorf("ByName(%q) = %v, %v", k.Name(), got, err)
		}
	}
	if _, err := ByName("sse9"); err == nil || !strings.Contains(err.Error(), "sse9") {
		t.Errorf("ByName(sse9) error %v, want one naming the kernel", err)
	}
	if os.Getenv(EnvKernel) == "" && Best().Name() != ks[len(ks)-1].Name() {
		t.Errorf("Best() = %s, want the fastest listed, %s", Best().Name(), ks[len(ks)-1].Name())
	}
	if !cgoEnabled {
		return
	}
	want := "scalar"
	switch runtime.GOARCH {
	case "amd64":
		if cpuid.CPU.Supports(cpuid.AVX512F) {
			want = "avx512"
		} else if cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3) {
			want = "avx2"
		}
	case "arm64":
		want = "neon"
	}
	if got := ks[len(ks)-1].Name(); got != want {
		t.Errorf("fastest kernel %s, want %s on this CPU", got, want)
	}
}

// TestEnvOverride checks how DMSPARSE_KERNEL picks the kernel.
func TestEnvOverride(t *testing.T) {
	ks := Kernels()
	fastest := ks[len(ks)-1]
	for _, c := range []struct {
		env, want, errPart string
	}{
		{"", fastest.Name(), ""},
		{"go", "go", ""},
		{" go ", "go", ""},
		{"nothing", fastest.Name(), `DMSPARSE_KERNEL="nothing" ignored`},
	} {
		k, err := choose(ks, c.env)
		if k.Name() != c.want {
			t.Errorf("env %q: chose %s, want %s", c.env, k.Name(), c.want)
		}
		if (c.errPart == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.errPart)) {
			t.Errorf("env %q: error %v, want one containing %q", c.env, err, c.errPart)
		}
	}
	if os.Getenv(EnvKernel) == "" && EnvError() != nil {
		t.Errorf("EnvError() = %v with %s unset", EnvError(), EnvKernel)
	}
}

// TestPackageProducts checks native.Mul and native.Linear against the
// pure-Go products.
func TestPackageProducts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := bsrtest.RandomMatrix(rng, 70, 90, 16, 8, 0.5, bsrtest.Random, false)
	v := m.View()
	for _, n := range []int{1, 21} {
		x := bsrtest.RandomSlice(rng, 90*n)
		bias := bsrtest.RandomSlice(rng, 70)
		got, want := make([]float32, 70*n), make([]float32, 70*n)
		if err := Mul(got, v, x, n, bsr.Options{Workers: 2}); err != nil {
			t.Fatal(err)
		}
		if err := bsr.Mul(want, v, x, n, bsr.Options{Workers: 1}); err != nil {
			t.Fatal(err)
		}
		ref, scale := bsrtest.RefMul(v, x, n, nil)
		if err := bsrtest.Compare(got, ref, scale, n, 92); err != nil {
			t.Errorf("Mul n=%d: %v", n, err)
		}
		if err := Linear(got, x, n, v, bias, bsr.Options{}); err != nil {
			t.Fatal(err)
		}
		ref, scale = bsrtest.RefLinear(v, x, n, bias, nil)
		if err := bsrtest.Compare(got, ref, scale, 70, 92); err != nil {
			t.Errorf("Linear n=%d: %v", n, err)
		}
		if err := Mul(got, v, x[:10], n, bsr.Options{}); err == nil {
			t.Errorf("Mul with a short X: want an error")
		}
	}
}

// FuzzKernels checks every kernel on fuzzer-chosen shapes, block shapes,
// batch sizes and options against the reference and paged views.
func FuzzKernels(f *testing.F) {
	f.Add(uint8(33), uint8(47), uint8(8), uint8(8), uint8(17), uint64(1), uint8(0))
	f.Add(uint8(5), uint8(3), uint8(3), uint8(5), uint8(1), uint64(2), uint8(7))
	f.Add(uint8(64), uint8(64), uint8(32), uint8(32), uint8(49), uint64(3), uint8(3))
	f.Add(uint8(0), uint8(9), uint8(4), uint8(8), uint8(2), uint64(4), uint8(1))
	f.Fuzz(func(t *testing.T, rows, cols, R, C, n uint8, seed uint64, flags uint8) {
		c := bsrtest.Case{
			Rows: int(rows), Cols: int(cols),
			R: 1 + int(R)%64, C: 1 + int(C)%64, N: 1 + int(n)%80,
			Density:    float64(seed%101) / 100,
			Kind:       bsrtest.Kind(int(flags>>2) % 5),
			Accumulate: flags&1 != 0, Bias: flags&2 != 0,
			Workers: 1 + int(flags>>5),
		}
		for _, k := range Kernels() {
			if err := bsrtest.RunCase(rand.New(rand.NewPCG(seed, 1)), k, c); err != nil {
				t.Errorf("kernel %s, case %v: %v", k.Name(), c, err)
			}
		}
	})
}
