package pack

import (
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/safetensors"
)

// python returns an interpreter that imports the given modules: $PYTHON,
// python3 on PATH, or Debian's /usr/bin/python3 (pyenv shims may hide the
// system packages). Without one the test fails under CI (which installs
// python3-scipy) and is skipped elsewhere.
func python(t *testing.T, modules string) string {
	t.Helper()
	var cands []string
	if p := os.Getenv("PYTHON"); p != "" {
		cands = append(cands, p)
	}
	cands = append(cands, "python3", "/usr/bin/python3")
	for _, c := range cands {
		if exec.Command(c, "-c", "import "+modules).Run() == nil {
			return c
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but no python3 imports %s (install python3-scipy)", modules)
	}
	t.Skipf("no python3 with %s; set PYTHON or install python3-scipy", modules)
	return ""
}

func toolsDir(t *testing.T) string {
	d, err := filepath.Abs("../tools")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestScipyLoadsBSRExport(t *testing.T) {
	py := python(t, "scipy.sparse, numpy")
	fam := writeFamily(t, famSpec{kind: "finetune", tasks: 2, layers: 2, seed: 21, heads: true})
	store, _ := packFamily(t, fam, Options{Density: 0.5, Eps: 0.01})
	for _, task := range []string{"task0", "task1"} {
		bsrOut := filepath.Join(fam.dir, task+".bsr.safetensors")
		denseOut := filepath.Join(fam.dir, task+".dense.safetensors")
		if err := ExportBSR(store, task, bsrOut); err != nil {
			t.Fatal(err)
		}
		if err := ExportDense(store, task, denseOut); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, filepath.Join(toolsDir(t), "check_bsr.py"), bsrOut, denseOut).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: scipy check failed: %v\n%s", task, err, out)
		}
		t.Logf("%s: %s", task, strings.TrimSpace(string(out)))
		if !strings.HasPrefix(string(out), "ok 5 bsr tensors") {
			t.Fatalf("%s: expected 5 blocked tensors (4 shared + head), got %s", task, out)
		}
	}
}

func TestPythonCalibHelper(t *testing.T) {
	py := python(t, "numpy")
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(2))
	x := make([]float32, 6*5*7)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * float64(1+i%7))
	}
	acts := filepath.Join(dir, "acts.safetensors")
	model := filepath.Join(dir, "model.safetensors")
	if err := safetensors.WriteFile(acts, []safetensors.Tensor{safetensors.FromFloat32("l.weight", safetensors.F32, []int{6, 5, 7}, x)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(model, []safetensors.Tensor{safetensors.FromFloat32("l.weight", safetensors.F32, []int{3, 7}, make([]float32, 21))}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "calib.safetensors")
	if b, err := exec.Command(py, filepath.Join(toolsDir(t), "calib_stats.py"), "--acts", acts, "--model", model, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("calib_stats.py: %v\n%s", err, b)
	}
	want, err := CalibFromActivations(acts, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, info, err := f.Float32("l.weight.act_sqmean")
	if err != nil || len(info.Shape) != 1 || info.Shape[0] != 7 {
		t.Fatalf("helper output %v %v", info, err)
	}
	w := want[0]
	for j := range got {
		if math.Abs(float64(got[j]-w.Values[j])) > 1e-4*float64(w.Values[j]) {
			t.Fatalf("feature %d: python %g, Go %g", j, got[j], w.Values[j])
		}
	}
	// A mismatched model is rejected, naming the weight.
	bad := filepath.Join(dir, "bad.safetensors")
	safetensors.WriteFile(bad, []safetensors.Tensor{safetensors.FromFloat32("l.weight", safetensors.F32, []int{7, 3}, make([]float32, 21))}, nil)
	if b, err := exec.Command(py, filepath.Join(toolsDir(t), "calib_stats.py"), "--acts", acts, "--model", bad, "-o", out).CombinedOutput(); err == nil || !strings.Contains(string(b), "l.weight") {
		t.Fatalf("mismatched model accepted: %v %s", err, b)
	}
}
