package pack

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/align"
	"github.com/dmsparse/dmsparse/safetensors"
)

func TestPrivateAndDense(t *testing.T) {
	fam := writeFamily(t, famSpec{kind: "calib", tasks: 3, layers: 2, seed: 3, heads: true, dtype: safetensors.BF16})
	store, res := packFamily(t, fam, Options{Density: 0.5, Eps: 0.01})
	rep := res.Report
	kinds := map[string]string{}
	for _, q := range rep.Quality {
		for _, e := range q.Tensors {
			if k, ok := kinds[e.Name]; ok && k != e.Kind {
				t.Fatalf("tensor %s is %s in one task, %s in another", e.Name, k, e.Kind)
			}
			kinds[e.Name] = e.Kind
		}
	}
	want := map[string]string{
		"lm_head.weight":               KindPrivate,
		"position_ids":                 KindDense,
		"model.layers.0.mlp.up.weight": KindBlocked,
		"model.layers.1.mlp.up.bias":   KindDense,
		"model.layers.1.attn.q.weight": KindBlocked,
		"model.layers.0.norm.weight":   KindDense,
	}
	for n, k := range want {
		if kinds[n] != k {
			t.Errorf("tensor %s kind %q, want %q", n, kinds[n], k)
		}
	}
	// Biases and norms are identical across tasks: stored once.
	var perTask int64
	for _, sh := range fam.shapes {
		if len(sh) == 1 {
			perTask += int64(4 * sh[0])
		}
	}
	if rep.DenseBytes != perTask+2*16 { // position_ids differ in tasks 0 and 2
		t.Errorf("dense bytes %d, want %d (shared biases once + two distinct position_ids)", rep.DenseBytes, perTask+32)
	}
	checkDeployed(t, fam, store, res, 0.01)
	// position_ids round-trips in its input dtype.
	out := filepath.Join(fam.dir, "t2.safetensors")
	if err := ExportDense(store, "task2", out); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, info, err := f.Int32("position_ids")
	if err != nil || info.DType != safetensors.I32 || ids[3] != 2 {
		t.Fatalf("position_ids %v %v %v", ids, info, err)
	}
	if _, ok := f.Info("lm_head.weight"); !ok {
		t.Fatal("private head missing from export")
	}
	if err := ExportDense(store, "nope", out); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown task: %v", err)
	}
}

func TestMasksFromInput(t *testing.T) {
	fam := writeFamily(t, famSpec{kind: "finetune", tasks: 2, layers: 1, seed: 5})
	// Prune the tasks by hand: zero some blocks, differently per task.
	for ti, in := range fam.tasks {
		src, err := safetensors.Open(in.Path)
		if err != nil {
			t.Fatal(err)
		}
		var ts []safetensors.Tensor
		for _, info := range src.Tensors() {
			v, _, _ := src.Float32(info.Name)
			if len(info.Shape) == 2 {
				g := align.Grid{Rows: info.Shape[0], Cols: info.Shape[1], R: 16, C: 16}
				for i := range v {
					b := (i/g.Cols/16)*g.BlockCols() + (i%g.Cols)/16
					if (b+ti)%3 == 0 {
						v[i] = 0
					}
				}
			}
			fam.weights[ti][info.Name] = v
			ts = append(ts, safetensors.FromFloat32(info.Name, safetensors.F32, info.Shape, v))
		}
		src.Close()
		if err := safetensors.WriteFile(in.Path, ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	store, res := packFamily(t, fam, Options{MasksFromInput: true, Eps: 0})
	for ti := range fam.tasks {
		for name, m := range res.Masks[ti] {
			for b, keep := range m {
				if want := (b+ti)%3 != 0; keep != want {
					t.Fatalf("task %d %s block %d kept %v, want %v", ti, name, b, keep, want)
				}
			}
		}
	}
	if res.Report.Method != "from-input" {
		t.Fatalf("method %q", res.Report.Method)
	}
	checkDeployed(t, fam, store, res, 0)
}

func writeRaw(t *testing.T, path, header string, data []byte) {
	t.Helper()
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	b = append(b, data...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	fam := writeFamily(t, famSpec{kind: "finetune", tasks: 2, layers: 1, seed: 7})
	dir := fam.dir
	run := func(opt Options) error {
		if opt.R == 0 {
			opt.R, opt.C = 16, 16
		}
		_, err := Run(filepath.Join(dir, "bad.dms"), opt, false)
		return err
	}
	good := Options{Tasks: fam.tasks, Base: fam.base, Density: 0.5, Eps: 0.01}
	expect := func(label string, err error, parts ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", label)
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("%s: error %q does not mention %q", label, err, p)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "bad.dms")); err == nil {
			t.Fatalf("%s: a store was written despite the error", label)
		}
	}
	o := good
	o.Density = 0
	expect("density 0", run(o), "density 0")
	o.Density = 1.5
	expect("density 1.5", run(o), "density 1.5")
	o = good
	o.Eps = -0.1
	expect("negative eps", run(o), "eps -0.1")
	o = good
	o.Tasks = append([]TaskInput{}, good.Tasks...)
	o.Tasks[1].Path = filepath.Join(dir, "missing.safetensors")
	expect("missing file", run(o), "task1", "missing.safetensors")

	// Shape mismatch of a shared tensor against the base.
	mis := filepath.Join(dir, "mismatch.safetensors")
	src, _ := safetensors.Open(fam.tasks[1].Path)
	var ts []safetensors.Tensor
	for _, info := range src.Tensors() {
		v, _, _ := src.Float32(info.Name)
		shape := info.Shape
		if info.Name == "model.layers.0.attn.q.weight" {
			shape = []int{72, 64}
		}
		ts = append(ts, safetensors.FromFloat32(info.Name, safetensors.F32, shape, v))
	}
	src.Close()
	if err := safetensors.WriteFile(mis, ts, nil); err != nil {
		t.Fatal(err)
	}
	o = good
	o.Tasks = []TaskInput{good.Tasks[0], {Name: "task1", Path: mis}}
	expect("shape mismatch", run(o), "task1", "mismatch.safetensors", "model.layers.0.attn.q.weight", "[72 64]", "[64 72]")

	// Unknown dtype, truncated and lying headers.
	for _, c := range []struct {
		name, header, want string
		data               []byte
	}{
		{"unknown_dtype", `{"w":{"dtype":"F8","shape":[2,2],"data_offsets":[0,4]}}`, "unknown dtype", make([]byte, 4)},
		{"lying", `{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}`, "needs 16 bytes", make([]byte, 8)},
		{"truncated", `{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}`, "past the", make([]byte, 8)},
	} {
		p := filepath.Join(dir, c.name+".safetensors")
		writeRaw(t, p, c.header, c.data)
		o = good
		o.Tasks = []TaskInput{good.Tasks[0], {Name: "task1", Path: p}}
		expect(c.name, run(o), "task1", p, c.want)
	}
	short := filepath.Join(dir, "short.safetensors")
	os.WriteFile(short, []byte{200, 0, 0, 0, 0, 0, 0, 0, '{'}, 0o644)
	o.Tasks = []TaskInput{good.Tasks[0], {Name: "task1", Path: short}}
	expect("truncated header", run(o), "task1", short, "runs past the end")

	// Calibration statistics of the wrong length.
	cal := filepath.Join(dir, "cal.safetensors")
	safetensors.WriteFile(cal, []safetensors.Tensor{
		safetensors.FromFloat32("model.layers.0.attn.q.weight.act_sqmean", safetensors.F32, []int{5}, make([]float32, 5)),
	}, nil)
	o = good
	o.Tasks = append([]TaskInput{}, good.Tasks...)
	o.Tasks[0].Calib = cal
	expect("calibration shape", run(o), "task0", cal, "act_sqmean")

	o = good
	o.Tasks = []TaskInput{good.Tasks[0], good.Tasks[0]}
	expect("duplicate task", run(o), "task0", "twice")
}

func TestIncludeExclude(t *testing.T) {
	fam := writeFamily(t, famSpec{kind: "calib", tasks: 2, layers: 2, seed: 9})
	opt := Options{Tasks: fam.tasks, Density: 0.5, Eps: 0.01, R: 16, C: 16, Exclude: []string{`\.attn\.`}, Include: []string{`^model\.layers\.`}}
	res, err := Run("", opt, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Report.Quality[0].Tensors {
		want := KindDense
		if strings.Contains(e.Name, "mlp.up.weight") {
			want = KindBlocked
		}
		if e.Kind != want {
			t.Errorf("%s: kind %s, want %s", e.Name, e.Kind, want)
		}
	}
	if len(res.Masks[0]) != 2 {
		t.Fatalf("masks for %d tensors, want the 2 mlp weights", len(res.Masks[0]))
	}
	opt.Include = []string{"("}
	if _, err := Run("", opt, false); err == nil || !strings.Contains(err.Error(), "include pattern") {
		t.Fatalf("bad include pattern: %v", err)
	}
}
