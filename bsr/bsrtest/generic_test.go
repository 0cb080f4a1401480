package bsrtest

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/bsr"
)

func TestGeneric(t *testing.T) { TestKernel(t, bsr.Generic) }

// brokenKernel wraps Generic and damages its results in a chosen way, to
// show that the harness catches each kind of fault.
type brokenKernel struct{ fault string }

func (b brokenKernel) Name() string { return "broken-" + b.fault }

func (b brokenKernel) MulRows(y []float32, a *bsr.View, x []float32, n, lo, hi int, acc bool) {
	bsr.Generic.MulRows(y, a, x, n, lo, hi, acc)
	b.damage(y, a, lo*a.R*n, min(hi*a.R, a.Rows)*n)
}

func (b brokenKernel) LinearRows(y []float32, xt []float32, n int, a *bsr.View, bias []float32, lo, hi int, acc bool) {
	bsr.Generic.LinearRows(y, xt, n, a, bias, lo, hi, acc)
	b.damage(y, a, lo*a.R, min(hi*a.R, a.Rows))
}

func (b brokenKernel) damage(y []float32, a *bsr.View, first, end int) {
	if first >= end {
		return
	}
	switch b.fault {
	case "value":
		y[first] += 0.5
	case "paged-ulp":
		// One ulp off on paged views only: within tolerance, so only the
		// bitwise paged-versus-contiguous check can see it.
		if a.Stride != a.R*a.C {
			y[first] = math.Float32frombits(math.Float32bits(y[first]) ^ 1)
		}
	case "skip":
		y[end-1] = float32(math.NaN())
	}
}

func TestHarnessCatchesFaults(t *testing.T) {
	c := Case{Rows: 40, Cols: 37, R: 8, C: 8, N: 5, Density: 1, Kind: AllDense, Workers: 1}
	for fault, want := range map[string]string{
		"value":     "against the reference",
		"paged-ulp": "paged view differs",
		"skip":      "against the reference",
	} {
		rng := rand.New(rand.NewPCG(1, 2))
		err := RunCase(rng, brokenKernel{fault}, c)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fault %s: got error %v, want one containing %q", fault, err, want)
		}
	}
}

func TestCheckGuards(t *testing.T) {
	buf, y := Guarded(10, Sentinel)
	if err := CheckGuards(buf); err != nil {
		t.Fatalf("fresh buffer: %v", err)
	}
	y[9] = 1
	if err := CheckGuards(buf); err != nil {
		t.Fatalf("write inside the output flagged: %v", err)
	}
	buf[Guard+10] = 0
	if err := CheckGuards(buf); err == nil {
		t.Fatal("write after the output not caught")
	}
	buf[Guard+10] = Sentinel
	buf[Guard-1] = 0
	if err := CheckGuards(buf); err == nil {
		t.Fatal("write before the output not caught")
	}
}

func TestPagedSharesSlots(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := RandomMatrix(rng, 64, 64, 8, 8, 1, AllDense, true)
	v := Paged(rng, m)
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	if v.Stride <= v.R*v.C {
		t.Errorf("stride %d, want above %d", v.Stride, v.R*v.C)
	}
	used := map[int32]bool{}
	shuffled := false
	for k, s := range v.Slots {
		used[s] = true
		if int(s) != k {
			shuffled = true
		}
	}
	if len(used) >= len(v.Slots) {
		t.Errorf("no shared slot among %d blocks", len(v.Slots))
	}
	if !shuffled {
		t.Error("slots are in block order")
	}
	if err := BitEqual(v.ToDense(), m.ToDense()); err != nil {
		t.Errorf("paged view holds other values: %v", err)
	}
}
