package storegen

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dmsparse/dmsparse/diffload"
)

func TestWriteReadsBack(t *testing.T) {
	spec := Default()
	spec.Shapes = [][2]int{{40, 33}, {7, 40}}
	spec.R, spec.C = 8, 16
	path := filepath.Join(t.TempDir(), "f.dms")
	fam, err := Write(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := diffload.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Manifest().NumVersions(); got != fam.Versions {
		t.Fatalf("store has %d versions, Write reported %d", got, fam.Versions)
	}
	shared := 0
	for _, task := range spec.Tasks {
		for l := range spec.Shapes {
			m, err := s.TaskTensor(task, TensorName(l))
			if err != nil {
				t.Fatal(err)
			}
			want := fam.Weights[task][TensorName(l)]
			if len(m.Data) != len(want.Data) {
				t.Fatalf("%s/%s: %d values, want %d", task, TensorName(l), len(m.Data), len(want.Data))
			}
			for i := range m.Data {
				if m.Data[i] != want.Data[i] {
					t.Fatalf("%s/%s: value %d differs", task, TensorName(l), i)
				}
			}
			shared += m.NNZB()
			b, _, err := s.DenseTensor(task, BiasName(l))
			if err != nil || len(b) != spec.Shapes[l][0] {
				t.Fatalf("bias %d: %d values, %v", l, len(b), err)
			}
		}
	}
	if fam.Versions >= shared {
		t.Fatalf("%d versions for %d stored blocks: tasks share nothing", fam.Versions, shared)
	}
}

func TestWriteRejectsBadSpec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.dms")
	for _, spec := range []Spec{{}, {Tasks: []string{"a"}, Shapes: [][2]int{{4, 4}}, R: 0, C: 4, Density: 0.5}} {
		if _, err := Write(path, spec); err == nil {
			t.Fatalf("spec %+v accepted", spec)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a rejected spec left %s behind (%v)", path, err)
	}
}
