package handles

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/examples/c/storegen"
)

// realStore writes the default example family into a temp dir.
func realStore(t *testing.T) (string, *storegen.Family, storegen.Spec) {
	t.Helper()
	spec := storegen.Default()
	path := filepath.Join(t.TempDir(), "family.dms")
	fam, err := storegen.Write(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	return path, fam, spec
}

func sameMatrix(a, b *bsr.Matrix) bool {
	if a.Rows != b.Rows || a.Cols != b.Cols || a.R != b.R || a.C != b.C ||
		len(a.Indptr) != len(b.Indptr) || len(a.Indices) != len(b.Indices) || len(a.Data) != len(b.Data) {
		return false
	}
	for i := range a.Indptr {
		if a.Indptr[i] != b.Indptr[i] {
			return false
		}
	}
	for i := range a.Indices {
		if a.Indices[i] != b.Indices[i] {
			return false
		}
	}
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			return false
		}
	}
	return true
}

// TestDiffloadBackend drives the real runtime through the table, the way
// the C ABI does: every call of dmsparse.h on a store the example uses.
func TestDiffloadBackend(t *testing.T) {
	path, fam, spec := realStore(t)
	al := newGoAlloc()
	tb := New(OpenDiffload, bsr.Linear, bsr.Mul, al)
	h, err := tb.Open(path, true, Options{Budget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tb.Tasks(h)
	if err != nil || len(tasks) != len(spec.Tasks) {
		t.Fatalf("tasks %v %v", tasks, err)
	}
	_, err = tb.Acquire(h)
	wantCode(t, err, NoTask)
	_, err = tb.Switch(h, "bicycles", true)
	wantCode(t, err, NotFound, "bicycles")

	rng := rand.New(rand.NewPCG(5, 6))
	for round, task := range append(tasks, tasks[0]) {
		var st Stats
		if round%2 == 0 {
			st, err = tb.Switch(h, task, true)
		} else {
			var p uint64
			p, err = tb.Begin(h, task, true)
			if err != nil {
				t.Fatal(err)
			}
			// Compute on each layer as it arrives, through the pending
			// switch's views.
			pv, err := tb.PendingViews(p)
			if err != nil {
				t.Fatal(err)
			}
			for l := range spec.Shapes {
				name := storegen.TensorName(l)
				want := fam.Weights[task][name]
				x := make([]float32, want.Cols)
				x[rng.IntN(len(x))] = 1
				y := make([]float32, want.Rows)
				if err := tb.Linear(pv, name, true, LayerArgs{X: ptr(x), XLen: int64(len(x)), Y: ptr(y), YLen: int64(len(y)), N: 1}); err != nil {
					t.Fatalf("pipelined linear %s/%s: %v", task, name, err)
				}
				ref := denseLinear(want.View(), x, 1, nil)
				for i := range y {
					if float64(y[i]) != ref[i] {
						t.Fatalf("pipelined %s/%s: y[%d] = %v, want %v", task, name, i, y[i], ref[i])
					}
				}
			}
			defer tb.Release(pv)
			for l := range spec.Shapes {
				if err := tb.WaitLayer(p, int64(l)); err != nil {
					t.Fatalf("task %s layer %d: %v", task, l, err)
				}
			}
			if err := tb.WaitTensor(p, storegen.TensorName(0), true); err != nil {
				t.Fatal(err)
			}
			wantCode(t, tb.WaitLayer(p, 99), NotFound, "99")
			st, err = tb.Wait(p)
			tb.FreePending(p)
		}
		if err != nil {
			t.Fatalf("switch to %s: %v", task, err)
		}
		if st.Task != task {
			t.Fatalf("stats of %q say %q", task, st.Task)
		}
		v, err := tb.Acquire(h)
		if err != nil {
			t.Fatal(err)
		}
		names, _ := tb.TensorNames(v)
		if len(names) != len(spec.Shapes) || names[0] != storegen.TensorName(0) {
			t.Fatalf("tensor names %v", names)
		}
		for l, name := range names {
			d, err := tb.Tensor(v, name, true)
			if err != nil {
				t.Fatal(err)
			}
			got := tensorFromDesc(d).Contiguous()
			want := fam.Weights[task][name]
			if !sameMatrix(got, want) {
				t.Fatalf("task %s tensor %s: the view read through the description differs from what was stored", task, name)
			}
			bias := fam.Biases[task][storegen.BiasName(l)]
			n, err := tb.Dense(v, storegen.BiasName(l), true, nil, 0)
			if err != nil || n != int64(len(bias)) {
				t.Fatalf("dense length %d %v", n, err)
			}
			const batch = 4
			x := make([]float32, batch*want.Cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			y := make([]float32, batch*want.Rows)
			err = tb.Linear(v, name, true, LayerArgs{X: ptr(x), XLen: int64(len(x)), Y: ptr(y), YLen: int64(len(y)),
				Bias: ptr(bias), BiasLen: int64(len(bias)), N: batch})
			if err != nil {
				t.Fatal(err)
			}
			ref := denseLinear(want.View(), x, batch, bias)
			for i := range y {
				if math.Abs(float64(y[i])-ref[i]) > 1e-4*(1+math.Abs(ref[i])) {
					t.Fatalf("task %s %s: y[%d] = %v, want %v", task, name, i, y[i], ref[i])
				}
			}
		}
		if round == 1 {
			// Views stay valid across a later switch until released.
			next := tasks[2]
			if _, err := tb.Switch(h, next, true); err != nil {
				t.Fatal(err)
			}
			d, _ := tb.Tensor(v, names[0], true)
			if !sameMatrix(tensorFromDesc(d).Contiguous(), fam.Weights[task][names[0]]) {
				t.Fatalf("held views of %s changed after a switch to %s", task, next)
			}
		}
		if err := tb.Release(v); err != nil {
			t.Fatal(err)
		}
	}
	pf, err := tb.Prefetch(h, tasks[1], true)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitPrefetch(pf); err != nil {
		t.Fatalf("prefetch: %v", err)
	}
	tb.FreePrefetch(pf)
	st, err := tb.Switch(h, tasks[1], true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Versions != 0 {
		t.Errorf("switch after a complete prefetch read %d versions, want 0", st.Versions)
	}
	b, nv, err := tb.Resident(h)
	if err != nil || b <= 0 || nv <= 0 || b > 1<<20 {
		t.Fatalf("resident %d B %d versions %v", b, nv, err)
	}
	keep, _ := tb.Acquire(h)
	tb.Tensor(keep, storegen.TensorName(1), true)
	if err := tb.Close(h); err != nil {
		t.Fatal(err)
	}
	if al.count() != 0 || tb.Len() != 0 {
		t.Fatalf("after close: %d allocations, %d handles", al.count(), tb.Len())
	}
	_, err = tb.Tensor(keep, storegen.TensorName(1), true)
	wantCode(t, err, BadHandle)
}

func TestDiffloadOpenErrors(t *testing.T) {
	path, _, _ := realStore(t)
	tb := New(OpenDiffload, bsr.Linear, bsr.Mul, newGoAlloc())
	_, err := tb.Open(filepath.Join(t.TempDir(), "missing.dms"), true, Options{Budget: 1 << 20})
	wantCode(t, err, IO, "missing.dms")
	_, err = tb.Open(path, true, Options{Budget: 4096})
	wantCode(t, err, Budget, "4096")
	bad := filepath.Join(t.TempDir(), "garbage.dms")
	if err := os.WriteFile(bad, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = tb.Open(bad, true, Options{Budget: 1 << 20})
	wantCode(t, err, Corrupt, "garbage.dms")
	if tb.Len() != 0 {
		t.Fatalf("%d handles after failed opens", tb.Len())
	}
}

// TestSwitchTimeout: with a tight budget, a switch that needs the slots of
// views the caller holds fails with Timeout instead of waiting forever, and
// the previous task stays published.
func TestSwitchTimeout(t *testing.T) {
	path, _, spec := realStore(t)
	tb := New(OpenDiffload, bsr.Linear, bsr.Mul, newGoAlloc())
	_, err := tb.Open(path, true, Options{Budget: 45 * 4096, SwitchTimeout: -1})
	wantCode(t, err, InvalidArgument, "timeout")
	h, err := tb.Open(path, true, Options{Budget: 45 * 4096, SwitchTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close(h)
	a, b := spec.Tasks[0], spec.Tasks[1]
	if _, err := tb.Switch(h, a, true); err != nil {
		t.Fatal(err)
	}
	v, _ := tb.Acquire(h)
	_, err = tb.Switch(h, b, true)
	wantCode(t, err, Timeout, b)
	p, err := tb.Begin(h, b, true)
	if err == nil {
		_, err = tb.Wait(p)
	}
	wantCode(t, err, Timeout, b)
	cur, _ := tb.Acquire(h)
	if task, _ := tb.ViewsTask(cur); task != a {
		t.Fatalf("after the timed-out switch the published task is %q, want %q", task, a)
	}
	tb.Release(cur)
	tb.Release(v)
	if _, err := tb.Switch(h, b, true); err != nil {
		t.Fatalf("switch after release: %v", err)
	}
}
