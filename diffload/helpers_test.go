package diffload

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dmsparse/dmsparse/bsr"
)

// family is a synthetic task family written to a store, with the expected
// contents of every tensor.
type family struct {
	path  string
	R, C  int
	tasks []string
	// want[task][tensor] is the expected contiguous matrix.
	want map[string]map[string]*bsr.Matrix
	// dense[task][name] is the expected dense tensor.
	dense map[string]map[string][]float32
	// only[task] lists versions used by that task alone.
	only map[string][]uint32
	// spec[task] is the task as written.
	spec map[string]TaskSpec
}

type tensorShape struct {
	name       string
	rows, cols int
	layer      int
}

var defaultShapes = []tensorShape{
	{"l0.w", 64, 70, 0}, // edge blocks in the columns
	{"l1.w", 50, 64, 1}, // edge blocks in the rows
	{"l1.v", 32, 32, 1},
	{"l2.w", 96, 64, 2},
}

// tmpDir returns a directory on a real disk (O_DIRECT capable), not tmpfs.
func tmpDir(t testing.TB) string {
	t.Helper()
	base := "/var/tmp"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = ""
	}
	d, err := os.MkdirTemp(base, "diffload-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// writeFamily builds nTasks tasks over shapes: every tensor keeps about 60%
// of its blocks; a kept block uses the shared base version with probability
// share, else a task-specific version. Versions are written in layer order.
func writeFamily(t testing.TB, dir string, R, C, nTasks int, share float64, seed uint64) *family {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	f := &family{path: filepath.Join(dir, "family.dms"), R: R, C: C,
		want: map[string]map[string]*bsr.Matrix{}, dense: map[string]map[string][]float32{},
		only: map[string][]uint32{}, spec: map[string]TaskSpec{}}
	w, err := CreateStore(f.path, WriterOptions{R: R, C: C})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	bs := R * C
	// block contents: base per (tensor, i, j) and per task.
	block := func(rows, cols, i, j int, base float32) []float32 {
		b := make([]float32, bs)
		for r := 0; r < R; r++ {
			for c := 0; c < C; c++ {
				if i*R+r < rows && j*C+c < cols {
					b[r*C+c] = base + float32(rng.NormFloat64())
				}
			}
		}
		return b
	}
	for ti := 0; ti < nTasks; ti++ {
		f.tasks = append(f.tasks, "task"+string(rune('A'+ti)))
	}
	specs := make([]TaskSpec, nTasks)
	for ti, name := range f.tasks {
		specs[ti].Name = name
		f.want[name] = map[string]*bsr.Matrix{}
	}
	users := map[uint32]map[int]bool{}
	for _, sh := range defaultShapes {
		br, bc := (sh.rows+R-1)/R, (sh.cols+C-1)/C
		baseIDs := map[[2]int]uint32{}
		baseData := map[[2]int][]float32{}
		// base versions first (shared), in block order
		for i := 0; i < br; i++ {
			for j := 0; j < bc; j++ {
				d := block(sh.rows, sh.cols, i, j, float32(i*bc+j))
				id, err := w.AddVersion(d)
				if err != nil {
					t.Fatal(err)
				}
				baseIDs[[2]int{i, j}], baseData[[2]int{i, j}] = id, d
			}
		}
		for ti, name := range f.tasks {
			ts := TensorSpec{Name: sh.name, Rows: sh.rows, Cols: sh.cols, Layer: sh.layer, Indptr: []int32{0}}
			m := &bsr.Matrix{Rows: sh.rows, Cols: sh.cols, R: R, C: C, Indptr: []int32{0}}
			for i := 0; i < br; i++ {
				for j := 0; j < bc; j++ {
					if rng.Float64() > 0.6 {
						continue
					}
					var id uint32
					var d []float32
					if rng.Float64() < share {
						id, d = baseIDs[[2]int{i, j}], baseData[[2]int{i, j}]
					} else {
						d = block(sh.rows, sh.cols, i, j, 100*float32(ti+1))
						if id, err = w.AddVersion(d); err != nil {
							t.Fatal(err)
						}
					}
					if users[id] == nil {
						users[id] = map[int]bool{}
					}
					users[id][ti] = true
					ts.Indices = append(ts.Indices, int32(j))
					ts.Versions = append(ts.Versions, id)
					m.Indices = append(m.Indices, int32(j))
					m.Data = append(m.Data, d...)
				}
				ts.Indptr = append(ts.Indptr, int32(len(ts.Indices)))
				m.Indptr = append(m.Indptr, int32(len(m.Indices)))
			}
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			specs[ti].Tensors = append(specs[ti].Tensors, ts)
			f.want[name][sh.name] = m
		}
	}
	shared := []float32{1, 2, 3}
	for ti, name := range f.tasks {
		own := []float32{float32(ti), -1}
		idS, err := w.AddDense(shared)
		if err != nil {
			t.Fatal(err)
		}
		idO, err := w.AddDense(own)
		if err != nil {
			t.Fatal(err)
		}
		specs[ti].Dense = []DenseSpec{{Name: "norm", Shape: []int{3}, Blob: idS}, {Name: "bias", Shape: []int{1, 2}, Blob: idO}}
		f.dense[name] = map[string][]float32{"norm": shared, "bias": own}
		if err := w.AddTask(specs[ti]); err != nil {
			t.Fatal(err)
		}
		f.spec[name] = specs[ti]
	}
	for id, u := range users {
		if len(u) == 1 {
			for ti := range u {
				f.only[f.tasks[ti]] = append(f.only[f.tasks[ti]], id)
			}
		}
	}
	for _, v := range f.only {
		slices.Sort(v)
	}
	w.SetMeta("quality", []byte(`{"ok":true}`))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return f
}

// taskBytes returns the pool bytes the largest task needs.
func (f *family) largest(t testing.TB) int64 {
	s, err := OpenStore(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var best int64
	for _, task := range s.Manifest().Tasks {
		seen := map[uint32]bool{}
		for _, ts := range task.Tensors {
			for _, v := range ts.Versions {
				seen[v] = true
			}
		}
		best = max(best, int64(len(seen))*s.Manifest().SlotBytes)
	}
	return best
}

// checkViews compares every tensor and dense tensor of the views with the
// family's expected contents.
func (f *family) checkViews(t testing.TB, tv *TaskViews) {
	t.Helper()
	task := tv.Task()
	for name, want := range f.want[task] {
		v, err := tv.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("task %s tensor %s: %v", task, name, err)
		}
		got := v.Contiguous()
		if !slices.Equal(got.Indptr, want.Indptr) || !slices.Equal(got.Indices, want.Indices) || !slices.Equal(got.Data, want.Data) {
			t.Fatalf("task %s tensor %s: view differs from the stored blocks", task, name)
		}
	}
	for name, want := range f.dense[task] {
		got, _, err := tv.Dense(name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("task %s dense %s = %v, want %v", task, name, got, want)
		}
	}
}

func openRT(t testing.TB, path string, opt Options) *Runtime {
	t.Helper()
	r, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r
}
