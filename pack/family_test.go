package pack

import (
	"testing"

	"github.com/dmsparse/dmsparse/safetensors"
)

// famSpec describes a synthetic family written by writeFamily.
type famSpec struct {
	kind   string // "calib": shared weights + per-task statistics; "finetune": base + deltas
	tasks  int
	layers int
	seed   int64
	dtype  safetensors.DType
	heads  bool
}

type family struct {
	dir   string
	tasks []TaskInput
	base  string
	// weights[t][name] holds each task file's floating-point tensors as
	// float32.
	weights []map[string][]float32
	shapes  map[string][]int
}

func writeFamily(t testing.TB, spec famSpec) *family {
	t.Helper()
	dir := t.TempDir()
	tasks, base, err := WriteSynthetic(dir, SyntheticSpec{Kind: spec.kind, Tasks: spec.tasks, Layers: spec.layers, Seed: spec.seed, DType: spec.dtype, Heads: spec.heads})
	if err != nil {
		t.Fatal(err)
	}
	fam := &family{dir: dir, tasks: tasks, base: base, shapes: map[string][]int{}}
	for _, in := range tasks {
		f, err := safetensors.Open(in.Path)
		if err != nil {
			t.Fatal(err)
		}
		w := map[string][]float32{}
		for _, info := range f.Tensors() {
			if !info.DType.IsFloat() {
				continue
			}
			if w[info.Name], _, err = f.Float32(info.Name); err != nil {
				t.Fatal(err)
			}
			fam.shapes[info.Name] = info.Shape
		}
		f.Close()
		fam.weights = append(fam.weights, w)
	}
	return fam
}
