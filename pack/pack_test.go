package pack

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/align"
	"github.com/dmsparse/dmsparse/diffload"
	"github.com/dmsparse/dmsparse/safetensors"
)

func packFamily(t *testing.T, fam *family, opt Options) (string, *Result) {
	t.Helper()
	opt.Tasks = fam.tasks
	opt.Base = fam.base
	if opt.R == 0 {
		opt.R, opt.C = 16, 16
	}
	out := filepath.Join(fam.dir, "family.dms")
	res, err := Run(out, opt, true)
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

// checkDeployed exports every task densely and checks, per blocked tensor,
// the mask density, that kept blocks hold the task's own values or the
// base's, and the version bound of the report: under the weight bound
// squared error <= pruned energy + eps * kept energy, under the delta bound
// the substituted delta energy <= eps * the kept blocks' delta energy.
func checkDeployed(t *testing.T, fam *family, store string, res *Result, eps float64) {
	t.Helper()
	var base *safetensors.File
	if fam.base != "" {
		f, err := safetensors.Open(fam.base)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		base = f
	}
	for ti, in := range fam.tasks {
		out := filepath.Join(fam.dir, in.Name+".dense.safetensors")
		if err := ExportDense(store, in.Name, out); err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range fam.weights[ti] {
			dep, info, err := f.Float32(name)
			if err != nil {
				t.Fatalf("task %s: exported file lacks %q: %v", in.Name, name, err)
			}
			if len(info.Shape) != len(fam.shapes[name]) && fam.shapes[name] != nil {
				t.Fatalf("%s: shape %v, want %v", name, info.Shape, fam.shapes[name])
			}
			if len(info.Shape) != 2 || strings.HasPrefix(name, "lm_head") {
				for i := range w {
					if dep[i] != w[i] {
						t.Fatalf("task %s: whole tensor %q differs at %d", in.Name, name, i)
					}
				}
				continue
			}
			g := res.Grids[name]
			mask := res.Masks[ti][name]
			var bw []float32
			if base != nil {
				bw, _, _ = base.Float32(name)
			}
			var total, pruned, err2, keptDelta, subst float64
			for r := 0; r < g.Rows; r++ {
				for c := 0; c < g.Cols; c++ {
					i := r*g.Cols + c
					b := (r/g.R)*g.BlockCols() + c/g.C
					x := float64(w[i])
					total += x * x
					if !mask[b] {
						pruned += x * x
						if dep[i] != 0 {
							t.Fatalf("task %s %s: pruned block %d holds %g", in.Name, name, b, dep[i])
						}
					} else {
						if dep[i] != w[i] && (bw == nil || dep[i] != bw[i]) {
							t.Fatalf("task %s %s: kept value %d = %g is neither own %g nor base", in.Name, name, i, dep[i], w[i])
						}
						if bw != nil {
							dd := x - float64(bw[i])
							keptDelta += dd * dd
						}
						ds := x - float64(dep[i])
						subst += ds * ds
					}
					d := x - float64(dep[i])
					err2 += d * d
				}
			}
			if res.Report.VersionBound == string(align.BoundDelta) {
				if subst > eps*keptDelta*(1+1e-6)+1e-30 {
					t.Fatalf("task %s %s: substituted delta energy %.5g exceeds eps %g * kept delta energy %.5g", in.Name, name, subst, eps, keptDelta)
				}
			} else if bound := pruned + eps*(total-pruned); err2 > bound*(1+1e-6) {
				t.Fatalf("task %s %s: squared weight error %.5g exceeds pruned %.5g + eps %g * kept %.5g", in.Name, name, err2, pruned, eps, total-pruned)
			}
		}
		f.Close()
	}
}

// checkExtents recomputes every diff from the store's manifest: versions are
// laid out by id, so consecutive ids are one extent.
func checkExtents(t *testing.T, store string, rep *Report) {
	t.Helper()
	st, err := diffload.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := st.Manifest()
	if m.NumVersions() != rep.Versions {
		t.Fatalf("store holds %d versions, report %d", m.NumVersions(), rep.Versions)
	}
	sets := make([]map[uint32]bool, len(m.Tasks))
	for i, task := range m.Tasks {
		sets[i] = map[uint32]bool{}
		for _, ts := range task.Tensors {
			for _, v := range ts.Versions {
				sets[i][v] = true
			}
		}
	}
	for _, d := range rep.Diffs {
		ext, n := 0, 0
		var prevEnd int64 = -1
		for id := 0; id < m.NumVersions(); id++ {
			v := uint32(id)
			if !sets[d.To][v] || sets[d.From][v] {
				continue
			}
			vi := m.Version(v)
			if vi.Offset != prevEnd {
				ext++
			}
			prevEnd = vi.Offset + vi.Length
			n++
		}
		if n != d.Versions || ext != d.Extents || int64(n)*m.SlotBytes != d.Bytes {
			t.Fatalf("switch %s->%s: store has %d versions in %d extents, report %d in %d (%d bytes)",
				rep.Tasks[d.From], rep.Tasks[d.To], n, ext, d.Versions, d.Extents, d.Bytes)
		}
	}
}

func logReport(t *testing.T, label string, rep *Report) {
	t.Logf("%s: density %.2f eps %g method %s: mean pairwise share of kept blocks aligned %.3f, independent %.3f; %d versions",
		label, rep.Density, rep.Eps, rep.Method, rep.Share, rep.IndepShare, rep.Versions)
	for _, q := range rep.Quality {
		out := "-"
		if q.RelOutputErr != nil {
			out = fmtF(*q.RelOutputErr)
		}
		t.Logf("  %-6s density %.3f retained %.4f (min tensor %.4f) rel weight err %.4f (pruned %.4f) rel output err %s versions %d shared %d private %d from base %d",
			q.Task, q.Density, q.RetainedRatio, q.MinTensorRatio, q.RelWeightErr, q.PrunedRelErr, out, q.Versions, q.Shared, q.Private, q.FromBase)
	}
}

func fmtF(x float64) string { return fmt.Sprintf("%.4f", x) }

func TestBar(t *testing.T) {
	for _, kind := range []string{"calib", "finetune"} {
		fam := writeFamily(t, famSpec{kind: kind, tasks: 6, layers: 3, seed: 11})
		for _, method := range []align.Method{align.Independent, align.Core, align.Swap} {
			store, res := packFamily(t, fam, Options{Density: 0.5, Eps: 0.01, Method: method})
			rep := res.Report
			logReport(t, kind+" "+string(method), rep)
			for _, q := range rep.Quality {
				if q.MinTensorRatio < 0.99-1e-9 {
					t.Fatalf("%s %s task %s: a tensor retains %.5f of independent importance, bound 0.99", kind, method, q.Task, q.MinTensorRatio)
				}
				if math.Abs(q.Density-0.5) > 0.02 {
					t.Fatalf("%s task %s density %.3f", kind, q.Task, q.Density)
				}
				if kind == "calib" && q.RelOutputErr == nil {
					t.Fatalf("task %s: no output error despite calibration statistics", q.Task)
				}
			}
			if rep.Share < rep.IndepShare-1e-12 {
				t.Fatalf("%s %s: aligned share %.4f below independent %.4f", kind, method, rep.Share, rep.IndepShare)
			}
			if method == align.Swap && rep.Share < 0.85 {
				t.Fatalf("%s: aligned share %.4f below the 0.85 bar", kind, rep.Share)
			}
			checkDeployed(t, fam, store, res, 0.01)
			checkExtents(t, store, rep)
			for _, m := range res.Masks {
				for name, mask := range m {
					g := res.Grids[name]
					if k, _ := align.KeepCount(g.NumBlocks(), 0.5); align.Count(mask) != k {
						t.Fatalf("%s: mask keeps %d of %d blocks", name, align.Count(mask), g.NumBlocks())
					}
				}
			}
		}
		if kind == "finetune" {
			// Shared base ranking against each task's own choice: fewer
			// versions per switch at the same bound.
			_, own := packFamily(t, fam, Options{Density: 0.5, Eps: 0.01, OwnBaseChoice: true, VersionBound: align.BoundWeight})
			_, res := packFamily(t, fam, Options{Density: 0.5, Eps: 0.01, VersionBound: align.BoundWeight})
			mean := func(r *Report) float64 {
				s := 0
				for _, d := range r.Diffs {
					s += d.Versions
				}
				return float64(s) / float64(len(r.Diffs))
			}
			t.Logf("fine-tune family: mean versions per switch: shared base ranking %.1f, own choice %.1f", mean(res.Report), mean(own.Report))
			if mean(res.Report) > mean(own.Report) {
				t.Fatalf("shared base ranking reads more per switch (%.1f) than own choice (%.1f)", mean(res.Report), mean(own.Report))
			}
			for _, q := range res.Report.Quality {
				t.Logf("  base-sharing curve of %s (eps: kept blocks on the base version, relative weight error):", q.Task)
				prev := -1
				for _, p := range q.Curve {
					t.Logf("    eps %-5g shared %4d/%d  rel err %.4f", p.Eps, p.Shared, p.Kept, p.RelErr())
					if p.Shared < prev {
						t.Fatalf("curve not monotone")
					}
					prev = p.Shared
				}
				if q.Curve[0].Shared != 0 || q.Curve[len(q.Curve)-1].Shared == 0 {
					t.Fatalf("task %s: curve %+v: fine-tuned blocks shared at eps 0, or none at eps 1", q.Task, q.Curve)
				}
			}
		}
	}
}

// TestVersionBounds packs a fine-tune family under both version bounds and
// several tolerances and checks, from the exported weights, that the bound
// holds for every task and tensor; that eps 0 keeps every kept block
// private, eps 1 puts every kept block on the base under the delta bound;
// that the curve is monotone and agrees with the store's diffs at the
// packing tolerance.
func TestVersionBounds(t *testing.T) {
	fam := writeFamily(t, famSpec{kind: "finetune", tasks: 3, layers: 2, seed: 5})
	for _, c := range []struct {
		bound align.VersionBound
		eps   float64
	}{{align.BoundDelta, 0}, {align.BoundDelta, 0.1}, {align.BoundDelta, 0.5}, {align.BoundDelta, 1}, {align.BoundWeight, 0.01}} {
		store, res := packFamily(t, fam, Options{Density: 0.5, Eps: c.eps, VersionBound: c.bound,
			CurveEps: []float64{0, 0.01, 0.1, 0.5, 1}})
		rep := res.Report
		if rep.VersionBound != string(c.bound) {
			t.Fatalf("report bound %q, want %q", rep.VersionBound, c.bound)
		}
		checkDeployed(t, fam, store, res, c.eps)
		checkExtents(t, store, rep)
		for ti, q := range rep.Quality {
			if q.DeltaRetained == nil {
				t.Fatalf("%s eps %g task %s: no delta retained", c.bound, c.eps, q.Task)
			}
			dr := *q.DeltaRetained
			t.Logf("%s eps %g task %s: from base %d/%d, delta kept %.4f, weight err %.4f, private %d", c.bound, c.eps, q.Task, q.FromBase, q.Kept, dr, q.RelWeightErr, q.Private)
			if c.bound == align.BoundDelta && dr < 1-c.eps-1e-9 {
				t.Fatalf("task %s: delta retained %.4f below 1 - eps %g", q.Task, dr, c.eps)
			}
			switch {
			case c.bound == align.BoundDelta && c.eps == 0 && (q.FromBase != 0 || dr != 1):
				t.Fatalf("eps 0: task %s has %d blocks on the base", q.Task, q.FromBase)
			case c.bound == align.BoundDelta && c.eps == 1 && (q.FromBase != q.Kept || dr > 1e-12):
				t.Fatalf("eps 1: task %s has %d of %d kept blocks on the base", q.Task, q.FromBase, q.Kept)
			}
			for i := 1; i < len(q.Curve); i++ {
				a, b := q.Curve[i-1], q.Curve[i]
				if b.Shared < a.Shared || b.DeltaRetained() > a.DeltaRetained()+1e-12 || b.Err2 < a.Err2*(1-1e-12) ||
					b.Private > a.Private || b.SwitchBytes > a.SwitchBytes {
					t.Fatalf("%s task %s: curve not monotone from %+v to %+v", c.bound, q.Task, a, b)
				}
			}
			// At the packing tolerance the curve's bytes per switch are the
			// store's mean diff into the task.
			for _, p := range q.Curve {
				if p.Eps != c.eps {
					continue
				}
				var sum int64
				for _, d := range rep.Diffs {
					if d.To == ti {
						sum += d.Bytes
					}
				}
				want := float64(sum) / float64(len(rep.Tasks)-1)
				if math.Abs(p.SwitchBytes-want) > 1e-9*want || p.Private != q.Private {
					t.Fatalf("%s eps %g task %s: curve bytes/switch %.0f private %d, store diffs %.0f private %d", c.bound, c.eps, q.Task, p.SwitchBytes, p.Private, want, q.Private)
				}
				if math.Abs(p.DeltaRetained()-dr) > 1e-9 || math.Abs(p.RelErr()-q.RelWeightErr) > 1e-9 {
					t.Fatalf("%s eps %g task %s: curve point %+v disagrees with the quality row", c.bound, c.eps, q.Task, p)
				}
			}
		}
	}
	if _, err := Run("", Options{Tasks: fam.tasks, Base: fam.base, Density: 0.5, R: 16, C: 16, VersionBound: "loose"}, false); err == nil || !strings.Contains(err.Error(), "loose") {
		t.Fatalf("unknown version bound: %v", err)
	}
}
