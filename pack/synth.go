package pack

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"sort"

	"github.com/dmsparse/dmsparse/safetensors"
)

// SyntheticSpec describes a synthetic task family for tests, examples and
// benchmarks of the packer.
type SyntheticSpec struct {
	// Kind is "calib" (every task holds the same dense weights and has its
	// own calibration statistics) or "finetune" (a base checkpoint plus
	// tasks whose every weight moved by about Delta relative to it).
	Kind string
	// Tasks and Layers give the family size.
	Tasks, Layers int
	// Hidden is the model width (default 64): each layer has an
	// mlp.up.weight [1.5*Hidden, Hidden] and an attn.q.weight
	// [Hidden, Hidden+8] (a shape 16-wide blocks do not divide), a bias and
	// a norm.
	Hidden int
	// Seed seeds the generator.
	Seed int64
	// DType is the weights' dtype (F32 default, F16 or BF16).
	DType safetensors.DType
	// Heads adds a task-private lm_head.weight of a task-specific shape and,
	// in even tasks, an I32 position_ids buffer.
	Heads bool
	// CalibSigma is the log-normal spread of each task's statistics around
	// the common profile (default 0.5).
	CalibSigma float64
	// Delta is the fine-tunes' relative change (default 0.12).
	Delta float64
}

// WriteSynthetic writes a synthetic family into dir and returns its tasks
// (with calibration files for Kind "calib") and the base ("" unless Kind is
// "finetune"). Weights get log-normal row and column scales, so blocks
// differ in importance as in trained layers.
func WriteSynthetic(dir string, spec SyntheticSpec) ([]TaskInput, string, error) {
	if spec.Kind != "calib" && spec.Kind != "finetune" {
		return nil, "", fmt.Errorf("pack: synthetic family kind %q: want calib or finetune", spec.Kind)
	}
	if spec.Tasks < 1 || spec.Layers < 1 {
		return nil, "", errors.New("pack: synthetic family needs at least one task and one layer")
	}
	if spec.DType == "" {
		spec.DType = safetensors.F32
	}
	if spec.Hidden <= 0 {
		spec.Hidden = 64
	}
	if spec.CalibSigma == 0 {
		spec.CalibSigma = 0.5
	}
	if spec.Delta == 0 {
		spec.Delta = 0.12
	}
	rng := rand.New(rand.NewSource(spec.Seed))
	h := spec.Hidden
	shapes := map[string][]int{}
	for l := 0; l < spec.Layers; l++ {
		shapes[fmt.Sprintf("model.layers.%d.mlp.up.weight", l)] = []int{h * 3 / 2, h}
		shapes[fmt.Sprintf("model.layers.%d.attn.q.weight", l)] = []int{h, h + 8}
		shapes[fmt.Sprintf("model.layers.%d.mlp.up.bias", l)] = []int{h * 3 / 2}
		shapes[fmt.Sprintf("model.layers.%d.norm.weight", l)] = []int{h}
	}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	baseW := map[string][]float32{}
	for _, n := range names {
		sh := shapes[n]
		if len(sh) == 2 {
			baseW[n] = synthWeight(rng, sh[0], sh[1])
		} else {
			v := make([]float32, sh[0])
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			baseW[n] = v
		}
	}
	write := func(path string, w map[string][]float32, extra []safetensors.Tensor) error {
		var ts []safetensors.Tensor
		for _, n := range names {
			dt := spec.DType
			if len(shapes[n]) == 1 {
				dt = safetensors.F32
			}
			ts = append(ts, safetensors.FromFloat32(n, dt, shapes[n], w[n]))
		}
		return safetensors.WriteFile(path, append(ts, extra...), map[string]string{"format": "pt"})
	}
	var base string
	if spec.Kind == "finetune" {
		base = filepath.Join(dir, "base.safetensors")
		if err := write(base, baseW, nil); err != nil {
			return nil, "", err
		}
	}
	profile := map[string][]float64{}
	for _, n := range names {
		if sh := shapes[n]; len(sh) == 2 {
			a := make([]float64, sh[1])
			for j := range a {
				a[j] = math.Exp(rng.NormFloat64())
			}
			profile[n] = a
		}
	}
	var tasks []TaskInput
	for ti := 0; ti < spec.Tasks; ti++ {
		name := fmt.Sprintf("task%d", ti)
		w := map[string][]float32{}
		for _, n := range names {
			v := append([]float32(nil), baseW[n]...)
			if spec.Kind == "finetune" {
				for i := range v {
					v[i] += float32(spec.Delta * rng.NormFloat64() * (math.Abs(float64(baseW[n][i])) + 0.5))
				}
			}
			w[n] = v
		}
		var extra []safetensors.Tensor
		if spec.Heads {
			rows := 8 + 4*ti
			hv := make([]float32, rows*h)
			for i := range hv {
				hv[i] = float32(rng.NormFloat64())
			}
			extra = append(extra, safetensors.FromFloat32("lm_head.weight", safetensors.F32, []int{rows, h}, hv))
			if ti%2 == 0 {
				extra = append(extra, safetensors.FromInt32("position_ids", []int{4}, []int32{0, 1, 2, int32(ti)}))
			}
		}
		in := TaskInput{Name: name, Path: filepath.Join(dir, name+".safetensors")}
		if err := write(in.Path, w, extra); err != nil {
			return nil, "", err
		}
		if spec.Kind == "calib" {
			var cs []safetensors.Tensor
			for _, n := range names {
				if a, ok := profile[n]; ok {
					act := make([]float32, len(a))
					for j := range act {
						act[j] = float32(a[j] * math.Exp(spec.CalibSigma*rng.NormFloat64()))
					}
					cs = append(cs, safetensors.FromFloat32(n+".act_sqmean", safetensors.F32, []int{len(act)}, act))
				}
			}
			in.Calib = filepath.Join(dir, name+".calib.safetensors")
			if err := safetensors.WriteFile(in.Calib, cs, map[string]string{"format": "dmsparse-calib"}); err != nil {
				return nil, "", err
			}
		}
		tasks = append(tasks, in)
	}
	return tasks, base, nil
}

func synthWeight(rng *rand.Rand, rows, cols int) []float32 {
	rs := make([]float64, rows)
	cs := make([]float64, cols)
	for i := range rs {
		rs[i] = math.Exp(0.25 * rng.NormFloat64())
	}
	for j := range cs {
		cs[j] = math.Exp(0.25 * rng.NormFloat64())
	}
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * rs[i/cols] * cs[i%cols])
	}
	return w
}
