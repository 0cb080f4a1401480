package align

import (
	"math"
	"math/rand"
	"testing"
)

// TestChooseBaseDelta checks the delta bound: for every tolerance the
// substituted blocks hold at most eps of the kept delta energy, eps 0 keeps
// every differing block private, eps 1 puts every block on the base, the
// curve is monotone, and a preferred order never breaks the bound.
func TestChooseBaseDelta(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for trial := 0; trial < 20; trial++ {
		n := 1 + rng.Intn(300)
		diff := make([]float64, n)
		var sum float64
		for i := range diff {
			diff[i] = rng.ExpFloat64() * math.Exp(2*rng.NormFloat64())
			if rng.Intn(25) == 0 {
				diff[i] = 0
			}
			sum += diff[i]
		}
		var prefer []int
		if trial%2 == 1 {
			prefer = rng.Perm(n)[:n/3]
		}
		pruned, total := 10.0, 10.0+sum*20
		curve := NewCurve(DefaultCurveEps)
		choices, err := AddCurve(curve, BoundDelta, diff, prefer, pruned, total)
		if err != nil {
			t.Fatal(err)
		}
		prevShared, prevRet := -1, 2.0
		for k, c := range choices {
			eps := DefaultCurveEps[k]
			var subst float64
			shared := 0
			for i, u := range c.UseBase {
				if u {
					subst += diff[i]
					shared++
				} else if diff[i] == 0 {
					t.Fatalf("trial %d eps %g: block %d identical to the base kept private", trial, eps, i)
				}
			}
			if shared != c.Shared || math.Abs(subst-c.DeltaSubst) > 1e-9*sum {
				t.Fatalf("trial %d eps %g: counts %d/%d, subst %g/%g", trial, eps, shared, c.Shared, subst, c.DeltaSubst)
			}
			if subst > eps*sum*(1+1e-12) {
				t.Fatalf("trial %d eps %g: substituted delta %g exceeds eps * %g", trial, eps, subst, sum)
			}
			if r := c.DeltaRetained(); r < 1-eps-1e-12 {
				t.Fatalf("trial %d eps %g: delta retained %g < 1 - eps", trial, eps, r)
			}
			if math.Abs(c.Err2-(pruned+subst)) > 1e-9*total {
				t.Fatalf("trial %d eps %g: err2 %g, want pruned + substituted %g", trial, eps, c.Err2, pruned+subst)
			}
			if eps == 0 && subst != 0 {
				t.Fatalf("trial %d: eps 0 substituted a differing block", trial)
			}
			if eps == 1 && shared != n {
				t.Fatalf("trial %d: eps 1 shared %d of %d blocks", trial, shared, n)
			}
			if prefer == nil {
				// Without a preference the smallest differences go first, so
				// the shared count and error are monotone in eps.
				if shared < prevShared || c.DeltaRetained() > prevRet+1e-12 {
					t.Fatalf("trial %d eps %g: curve not monotone: shared %d after %d, retained %g after %g", trial, eps, shared, prevShared, c.DeltaRetained(), prevRet)
				}
				// Greedy optimality: the smallest private block would break the bound.
				minOut := math.Inf(1)
				for i, u := range c.UseBase {
					if !u {
						minOut = math.Min(minOut, diff[i])
					}
				}
				if !math.IsInf(minOut, 1) && subst+minOut <= eps*sum*(1-1e-9) {
					t.Fatalf("trial %d eps %g: block of difference %g fits but stayed private", trial, eps, minOut)
				}
			}
			prevShared, prevRet = shared, c.DeltaRetained()
		}
		for i := 1; i < len(curve); i++ {
			if curve[i].DeltaRetained() > curve[i-1].DeltaRetained()+1e-12 && prefer == nil {
				t.Fatalf("trial %d: curve retained rises from %g to %g", trial, curve[i-1].DeltaRetained(), curve[i].DeltaRetained())
			}
		}
		if curve[0].DeltaRetained() != 1 || curve[len(curve)-1].Shared != n || curve[0].Kept != n {
			t.Fatalf("trial %d: curve ends %+v / %+v", trial, curve[0], curve[len(curve)-1])
		}
	}
}

// TestDeltaBoundStricterThanWeight shows the point of the delta bound: a
// fine-tune of a few percent fits the weight bound wholesale at eps 0.01,
// while the delta bound keeps 99% of it.
func TestDeltaBoundStricterThanWeight(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	const n = 256
	diff := make([]float64, n)
	var kept float64
	for i := range diff {
		w := 1 + rng.Float64()                       // block energy
		diff[i] = w * 0.0016 * (0.5 + rng.Float64()) // ~4% relative delta
		kept += w
	}
	pruned := kept // density 0.5: the dropped half holds as much
	wc, err := ChooseBaseBound(BoundWeight, diff, nil, pruned, pruned+kept, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := ChooseBaseBound(BoundDelta, diff, nil, pruned, pruned+kept, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if wc.Shared != n {
		t.Fatalf("weight bound shared %d of %d: the test family should fit it wholesale", wc.Shared, n)
	}
	if dc.DeltaRetained() < 0.99 || dc.Shared >= n/4 {
		t.Fatalf("delta bound: retained %g, shared %d of %d", dc.DeltaRetained(), dc.Shared, n)
	}
	if _, err := ParseVersionBound("nope"); err == nil {
		t.Fatal("unknown bound accepted")
	}
	if b, err := ParseVersionBound(""); err != nil || b != BoundDelta {
		t.Fatalf("default bound %q, %v", b, err)
	}
	if _, err := ChooseBaseBound("nope", diff, nil, 0, 1, 0.1); err == nil {
		t.Fatal("unknown bound accepted by ChooseBaseBound")
	}
}
