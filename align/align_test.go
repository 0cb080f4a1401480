package align

import (
	"math"
	"math/rand"
	"sort"
	"testing"

	"github.com/dmsparse/dmsparse/bsr"
)

// family returns per-task block scores of one tensor for the two families of
// the bar: kind "calib" (shared dense weights, per-task activation
// statistics that vary by a log-normal factor of sigma 0.5 around a common
// profile, Wanda importance) and "finetune" (a base plus per-task deltas of
// about 12% relative size, magnitude importance). "calib-hard" varies the
// statistics by sigma 1.0: a stress case outside the bar.
func family(kind string, T int, g Grid, seed int64) [][]float64 {
	rng := rand.New(rand.NewSource(seed))
	n := g.Rows * g.Cols
	w := make([]float32, n)
	// Row and column scales give blocks different importance, as in trained
	// layers.
	rs := make([]float64, g.Rows)
	cs := make([]float64, g.Cols)
	for i := range rs {
		rs[i] = math.Exp(0.25 * rng.NormFloat64())
	}
	for j := range cs {
		cs[j] = math.Exp(0.25 * rng.NormFloat64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64() * rs[i/g.Cols] * cs[i%g.Cols])
	}
	scores := make([][]float64, T)
	switch kind {
	case "calib", "calib-hard":
		sigma := 0.5
		if kind == "calib-hard" {
			sigma = 1.0
		}
		baseAct := make([]float64, g.Cols)
		for j := range baseAct {
			baseAct[j] = math.Exp(rng.NormFloat64())
		}
		for t := range scores {
			act := make([]float32, g.Cols)
			for j := range act {
				act[j] = float32(baseAct[j] * math.Exp(sigma*rng.NormFloat64()))
			}
			s, err := Importance(w, g, act)
			if err != nil {
				panic(err)
			}
			scores[t] = s
		}
	case "finetune":
		for t := range scores {
			wt := make([]float32, n)
			for i := range wt {
				wt[i] = w[i] + float32(0.12*rng.NormFloat64()*rs[i/g.Cols]*cs[i%g.Cols])
			}
			s, err := Importance(wt, g, nil)
			if err != nil {
				panic(err)
			}
			scores[t] = s
		}
	}
	return scores
}

func TestImportance(t *testing.T) {
	g := Grid{Rows: 5, Cols: 7, R: 2, C: 3}
	rng := rand.New(rand.NewSource(1))
	w := make([]float32, 35)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	s, err := Importance(w, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < g.BlockRows(); i++ {
		for j := 0; j < g.BlockCols(); j++ {
			want := bsr.BlockSquaredNorm(w, 5, 7, 2, 3, i, j)
			if math.Abs(s[i*g.BlockCols()+j]-want) > 1e-9 {
				t.Fatalf("block (%d,%d) = %g, want %g", i, j, s[i*g.BlockCols()+j], want)
			}
		}
	}
	act := make([]float32, 7)
	for j := range act {
		act[j] = float32(j + 1)
	}
	s, err = Importance(w, g, act)
	if err != nil {
		t.Fatal(err)
	}
	// Block (2, 2) is the single value w[4*7+6].
	if want := math.Abs(float64(w[34])) * math.Sqrt(7); math.Abs(s[2*3+2]-want) > 1e-6 {
		t.Fatalf("edge block Wanda score %g, want %g", s[8], want)
	}
	if _, err := Importance(w, g, act[:3]); err == nil {
		t.Fatal("short activation statistics accepted")
	}
	if _, err := Importance(w[:10], g, nil); err == nil {
		t.Fatal("short weight accepted")
	}
	e, _ := Energy(w, nil, g, nil)
	if Retained(e, TopK(e, len(e))) == 0 || math.Abs(e[0]-bsr.BlockSquaredNorm(w, 5, 7, 2, 3, 0, 0)) > 1e-9 {
		t.Fatal("Energy without base differs from the block norm")
	}
}

func TestKeepCount(t *testing.T) {
	for _, d := range []float64{0, -0.1, 1.01, math.NaN()} {
		if _, err := KeepCount(10, d); err == nil {
			t.Errorf("density %g accepted", d)
		}
	}
	if k, _ := KeepCount(10, 0.01); k != 1 {
		t.Errorf("tiny density keeps %d, want 1", k)
	}
	if k, _ := KeepCount(10, 1); k != 10 {
		t.Errorf("density 1 keeps %d", k)
	}
	if _, err := AlignTensor([][]float64{{1, 2}}, 1, Options{Eps: -0.1}); err == nil {
		t.Error("negative eps accepted")
	}
}

func TestAlignBound(t *testing.T) {
	const T = 6
	g := Grid{Rows: 192, Cols: 256, R: 16, C: 16}
	for _, kind := range []string{"calib", "finetune", "calib-hard"} {
		for _, eps := range []float64{0, 0.002, 0.01} {
			var indep, core, swap PairShare
			for tensor := 0; tensor < 3; tensor++ {
				scores := family(kind, T, g, int64(tensor*7+len(kind)))
				k, _ := KeepCount(g.NumBlocks(), 0.5)
				var results [2]*TensorResult
				for mi, m := range []Method{Core, Swap} {
					r, err := AlignTensor(scores, k, Options{Eps: eps, Method: m})
					if err != nil {
						t.Fatal(err)
					}
					results[mi] = r
					for task := 0; task < T; task++ {
						if got := Count(r.Masks[task]); got != k {
							t.Fatalf("%s %s task %d keeps %d blocks, want %d", kind, m, task, got, k)
						}
						if r.Ratio(task) < 1-eps-1e-9 {
							t.Fatalf("%s eps %g %s task %d tensor %d retains %.5f of independent, bound %.5f", kind, eps, m, task, tensor, r.Ratio(task), 1-eps)
						}
					}
				}
				var pi, pc, ps PairShare
				pi.Add(results[0].Independent)
				pc.Add(results[0].Masks)
				ps.Add(results[1].Masks)
				if pc.Share() < pi.Share()-1e-12 || ps.Share() < pc.Share()-1e-12 {
					t.Fatalf("%s eps %g: overlap independent %.4f core %.4f swap %.4f: want non-decreasing", kind, eps, pi.Share(), pc.Share(), ps.Share())
				}
				indep.Add(results[0].Independent)
				core.Add(results[0].Masks)
				swap.Add(results[1].Masks)
			}
			t.Logf("%-8s density 0.5 eps %-5g mean pairwise share of kept blocks: independent %.3f core %.3f swap %.3f",
				kind, eps, indep.Share(), core.Share(), swap.Share())
			if eps == 0.01 && kind != "calib-hard" && swap.Share() < 0.85 {
				t.Errorf("%s eps 0.01: aligned share %.3f below the 0.85 bar", kind, swap.Share())
			}
		}
	}
}

func TestAlignWeights(t *testing.T) {
	// Tasks 0 and 1 follow each other; task 2 is rare. Weighted alignment
	// must give the pair at least the overlap the unweighted one gives.
	g := Grid{Rows: 64, Cols: 128, R: 8, C: 8}
	scores := family("calib", 3, g, 5)
	k, _ := KeepCount(g.NumBlocks(), 0.5)
	w := [][]float64{{0, 10, 0.1}, {10, 0, 0.1}, {0.1, 0.1, 0}}
	plain, err := AlignTensor(scores, k, Options{Eps: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	weighted, err := AlignTensor(scores, k, Options{Eps: 0.01, Weights: w})
	if err != nil {
		t.Fatal(err)
	}
	for task := 0; task < 3; task++ {
		if weighted.Ratio(task) < 0.99-1e-9 {
			t.Fatalf("weighted task %d ratio %g", task, weighted.Ratio(task))
		}
	}
	op, ow := Overlap(plain.Masks[0], plain.Masks[1]), Overlap(weighted.Masks[0], weighted.Masks[1])
	t.Logf("pair (0,1) overlap: unweighted %d, weighted %d of %d", op, ow, k)
	if ow < op {
		t.Fatalf("weighting by transitions lowered the frequent pair's overlap: %d < %d", ow, op)
	}
}

func TestChooseBase(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	diff := make([]float64, 200)
	for i := range diff {
		diff[i] = rng.ExpFloat64() * 0.1
	}
	diff[7] = 0
	pruned, total := 40.0, 100.0
	prev := -1
	for _, eps := range []float64{0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1} {
		c, err := ChooseBase(diff, pruned, total, eps)
		if err != nil {
			t.Fatal(err)
		}
		if c.Err2 > pruned+eps*(total-pruned)+1e-12 {
			t.Fatalf("eps %g: squared error %g exceeds pruned %g + eps * kept %g", eps, c.Err2, pruned, total-pruned)
		}
		if !c.UseBase[7] {
			t.Fatalf("eps %g: block identical to the base not shared", eps)
		}
		if c.Shared < prev {
			t.Fatalf("eps %g: shared %d fell below %d", eps, c.Shared, prev)
		}
		prev = c.Shared
		// Optimality: the next-smallest unshared block would break the bound.
		minOut := math.Inf(1)
		for i, u := range c.UseBase {
			if !u {
				minOut = math.Min(minOut, diff[i])
			}
		}
		if !math.IsInf(minOut, 1) && c.Err2+minOut <= ErrBudget(pruned, total, eps)*(1-1e-9) {
			t.Fatalf("eps %g: block of difference %g fits the budget but was not shared", eps, minOut)
		}
	}
	if prev == len(diff) {
		t.Fatal("curve saturates: test does not exercise the trade-off")
	}
	curve := NewCurve([]float64{0, 0.01})
	if _, err := AddCurve(curve, BoundWeight, diff, nil, pruned, total); err != nil {
		t.Fatal(err)
	}
	if curve[0].Shared != 1 || curve[1].Shared <= 1 || curve[1].Kept != 200 {
		t.Fatalf("curve %+v", curve)
	}
	// A preferred order is walked first but never breaks the bound.
	prefer := []int{199, 198, 197, 196, 195}
	c, err := ChooseBaseOrdered(diff, prefer, pruned, total, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if c.Err2 > ErrBudget(pruned, total, 0.01) || !c.UseBase[7] {
		t.Fatalf("ordered choice breaks the bound or drops the identical block: %+v", c)
	}
	for _, i := range prefer {
		if !c.UseBase[i] && c.Err2+diff[i] <= ErrBudget(pruned, total, 0.01)*(1-1e-9) {
			t.Fatalf("preferred block %d fits but was not taken", i)
		}
	}
	if _, err := ChooseBaseOrdered(diff, []int{500}, pruned, total, 0.01); err == nil {
		t.Fatal("out-of-range preferred block accepted")
	}
}

func TestLayoutExtents(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	const T = 5
	var refs []VersionRef
	for i := 0; i < 2000; i++ {
		set := uint64(rng.Intn(1<<T-1) + 1)
		if rng.Intn(2) == 0 {
			set = 1<<T - 1
		}
		refs = append(refs, VersionRef{Tasks: set, Layer: rng.Intn(4), Tensor: rng.Intn(3), Block: rng.Intn(1000)})
	}
	order := Layout(refs, T, nil)
	pos := make([][]uint32, T)
	for p, i := range order {
		for task := 0; task < T; task++ {
			if refs[i].Tasks>>task&1 == 1 {
				pos[task] = append(pos[task], uint32(p))
			}
		}
	}
	diffs := DiffMatrix(pos, 4096)
	var sets []uint64
	seen := map[uint64]bool{}
	for _, p := range order {
		if s := refs[p].Tasks; !seen[s] {
			seen[s] = true
			sets = append(sets, s)
		}
	}
	// Groups are contiguous: each set appears once in order.
	if len(sets) != len(seen) {
		t.Fatal("a task set is split")
	}
	totalExt := 0
	for _, d := range diffs {
		// Brute force: versions To uses that From does not, as sorted positions.
		var want []uint32
		for p, i := range order {
			s := refs[i].Tasks
			if s>>d.To&1 == 1 && s>>d.From&1 == 0 {
				want = append(want, uint32(p))
			}
		}
		if len(want) != d.Versions || Extents(want) != d.Extents || d.Bytes != int64(len(want))*4096 {
			t.Fatalf("diff %d->%d: %d versions %d extents, brute force %d versions %d extents", d.From, d.To, d.Versions, d.Extents, len(want), Extents(want))
		}
		totalExt += d.Extents
	}
	if got := groupCost(sets, T, nil); int(got) != totalExt {
		t.Fatalf("group cost %g, extents %d", got, totalExt)
	}
	// The search must do no worse than plain numeric order of the sets.
	plain := append([]uint64(nil), sets...)
	for i := range plain {
		for j := i + 1; j < len(plain); j++ {
			if plain[j] < plain[i] {
				plain[i], plain[j] = plain[j], plain[i]
			}
		}
	}
	t.Logf("%d groups, %d switches: %d extents (numeric order %g)", len(sets), T*(T-1), totalExt, groupCost(plain, T, nil))
	if float64(totalExt) > groupCost(plain, T, nil) {
		t.Fatalf("layout gives %d extents, numeric order %g", totalExt, groupCost(plain, T, nil))
	}
	// Within a group, versions follow layer then tensor order.
	for p := 1; p < len(order); p++ {
		a, b := refs[order[p-1]], refs[order[p]]
		if a.Tasks == b.Tasks && (a.Layer > b.Layer || a.Layer == b.Layer && a.Tensor > b.Tensor) {
			t.Fatalf("position %d: layer/tensor order broken", p)
		}
	}
}

func TestSelectTop(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.Intn(300)
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = float64(rng.Intn(20)) // many ties
		}
		before := func(a, b int) bool {
			if vals[a] != vals[b] {
				return vals[a] > vals[b]
			}
			return a < b
		}
		k := 1 + rng.Intn(n)
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		selectTop(idx, k, before)
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		sort.Slice(want, func(a, b int) bool { return before(want[a], want[b]) })
		got := map[int]bool{}
		for _, i := range idx[:k] {
			got[i] = true
		}
		for _, i := range want[:k] {
			if !got[i] {
				t.Fatalf("n %d k %d: element %d of the true top-k missing", n, k, i)
			}
		}
	}
}
