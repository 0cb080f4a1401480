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
// base's, and the version bound: squared error <= pruned energy + eps *
// kept energy.
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
			var total, pruned, err2 float64
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
					} else if dep[i] != w[i] && (bw == nil || dep[i] != bw[i]) {
						t.Fatalf("task %s %s: kept value %d = %g is neither own %g nor base", in.Name, name, i, dep[i], w[i])
					}
					d := x - float64(dep[i])
					err2 += d * d
				}
			}
			if bound := pruned + eps*(total-pruned); err2 > bound*(1+1e-6) {
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
			_, own := packFamily(t, fam, Options{Density: 0.5, Eps: 0.01, OwnBaseChoice: true})
			_, res := packFamily(t, fam, Options{Density: 0.5, Eps: 0.01})
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
					t.Fatalf("task %s: curve %+v: fine-tuned blocks shared at eps 0, or none at eps 0.1", q.Task, q.Curve)
				}
			}
		}
	}
}
