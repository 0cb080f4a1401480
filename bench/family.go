package bench

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/dmsparse/dmsparse/profiles"
	"github.com/dmsparse/dmsparse/safetensors"
)

// GeneratorVersion changes whenever the generator's output for a given
// configuration changes, so cached families are rebuilt.
const GeneratorVersion = 2

// The built-in family imitates a family of task fine-tunes of one
// transformer, and says so in its metadata. How it is generated:
//
//   - Shape: Layers transformer blocks, each with attention projections
//     q, k, v, o (Width x Width) and an MLP up (MLPRatio*Width x Width) and
//     down (Width x MLPRatio*Width) projection, each with a bias. Tensor
//     names follow "layers.L.attn.q.weight" / ".bias".
//   - Base weights: W_ij = g_h * r_i * c_j * N(0,1) / sqrt(fan_in), where
//     r and c are log-normal row and column scales (sigma 0.3) and g_h a
//     log-normal scale per group of 64 output rows (an attention head or an
//     MLP channel group, sigma 0.3), so block norms vary as they do in
//     trained models instead of being all alike. Biases are N(0, 0.02).
//   - Kind "finetune" (the default): each task is a full fine-tune of the
//     base, as measured on real fine-tuned families (each layer moved 9-15%
//     relative to the base in Frobenius norm, no 32 x 32 block left
//     identical). Task weights: base + delta, delta = a low-rank term U V^T
//     of rank Rank + a sparse term on about 0.5% of the weights + dense
//     noise, normalised so that ||delta||_F = s * ||W_base||_F per tensor,
//     with s = DeltaScale * (0.6 + 0.4 * l/(Layers-1)) * a per-task,
//     per-tensor factor in [0.95, 1.05]: the first block moves by 60% of
//     DeltaScale, the last by all of it (fine-tuning moves the top of a
//     network most); with the default DeltaScale 0.15 every layer moves
//     9-15%. Biases change alike.
//   - Kind "shared": the tasks share the base's dense weights exactly (the
//     task checkpoints are the base file) and differ only by calibration
//     statistics, the scenario of the DM-Sparse paper: task-specific masks
//     from task calibration data, where alignment is the whole story.
//   - Calibration statistics: each task has, for every weight, the mean
//     squared input activation per input feature ("NAME.act_sqmean"):
//     a shared log-normal profile (sigma 0.5, the model's outlier features)
//     times a task-specific log-normal factor that varies per group of 32
//     features (sigma CalibSpread) and per feature (sigma 0.2), so
//     activation-aware (Wanda-style) importance, and with it independent
//     masks, differ between tasks.
//
// Every number is drawn from a PCG stream seeded by (Seed, tensor name,
// task), so a tensor is the same whatever order or parallelism generates it.
type FamilyConfig struct {
	// Layers is the number of transformer blocks.
	Layers int `json:"layers"`
	// Width is the model width (attention projections are Width x Width).
	Width int `json:"width"`
	// MLPRatio is the MLP expansion factor.
	MLPRatio int `json:"mlp_ratio"`
	// Tasks is the number of task fine-tunes.
	Tasks int `json:"tasks"`
	// Seed seeds every random stream.
	Seed uint64 `json:"seed"`
	// Rank is the rank of the low-rank part of each fine-tune delta.
	Rank int `json:"rank"`
	// Kind is FamilyFinetune ("" means it) or FamilyShared.
	Kind string `json:"kind,omitempty"`
	// DeltaScale is the relative Frobenius norm ||delta||_F / ||W||_F of
	// the last block's fine-tune delta (kind finetune); earlier blocks move
	// less, down to 60% of it in the first.
	DeltaScale float64 `json:"delta_scale"`
	// CalibSpread is the sigma of the task-specific log-normal factor of the
	// calibration statistics per group of 32 input features.
	CalibSpread float64 `json:"calib_spread"`
}

// DefaultFamily is the built-in family of "dmbench run": 8 blocks of width
// 768 (57M parameters, 227 MB of fp32 per task), sized so that generating,
// packing and benchmarking it takes under two minutes on a 2-core machine;
// -layers 12 gives the 12-block, 85M-parameter shape of a BERT-base
// encoder.
func DefaultFamily() FamilyConfig {
	return FamilyConfig{Layers: 8, Width: 768, MLPRatio: 4, Tasks: 4, Seed: 1, Rank: 8, Kind: FamilyFinetune, DeltaScale: 0.15, CalibSpread: 0.3}
}

// Family kinds (FamilyConfig.Kind).
const (
	// FamilyFinetune: every task is a full fine-tune of the base.
	FamilyFinetune = "finetune"
	// FamilyShared: the tasks share dense weights and differ by their
	// calibration statistics (and so by their activation-aware masks).
	FamilyShared = "shared"
)

// kindName returns the family kind, FamilyFinetune for "".
func (c FamilyConfig) kindName() string {
	if c.Kind == "" {
		return FamilyFinetune
	}
	return c.Kind
}

// IsShared reports whether the tasks share the base's dense weights.
func (c FamilyConfig) IsShared() bool { return c.Kind == FamilyShared }

// Validate checks the configuration's ranges.
func (c FamilyConfig) Validate() error {
	switch {
	case c.Layers < 1 || c.Layers > 1000:
		return fmt.Errorf("family: layers %d: want 1..1000", c.Layers)
	case c.Width < 1 || c.Width > 1<<16:
		return fmt.Errorf("family: width %d: want 1..65536", c.Width)
	case c.MLPRatio < 1 || c.MLPRatio > 16:
		return fmt.Errorf("family: mlp ratio %d: want 1..16", c.MLPRatio)
	case c.Tasks < 1 || c.Tasks > len(DrivingTasks):
		return fmt.Errorf("family: tasks %d: want 1..%d", c.Tasks, len(DrivingTasks))
	case c.Rank < 0 || c.Rank > c.Width:
		return fmt.Errorf("family: rank %d: want 0..width (%d)", c.Rank, c.Width)
	case c.Kind != "" && c.Kind != FamilyFinetune && c.Kind != FamilyShared:
		return fmt.Errorf("family: kind %q: want %q or %q", c.Kind, FamilyFinetune, FamilyShared)
	case !(c.DeltaScale >= 0 && c.DeltaScale < 1):
		return fmt.Errorf("family: delta scale %g: want [0, 1)", c.DeltaScale)
	case !(c.CalibSpread >= 0 && c.CalibSpread < 5):
		return fmt.Errorf("family: calib spread %g: want [0, 5)", c.CalibSpread)
	}
	return nil
}

// DrivingTasks are the task names of the built-in family, in order: the
// first Tasks of them are used.
var DrivingTasks = []string{"detection", "traffic-light", "obstacle", "lane", "sign", "parking", "pedestrian", "weather"}

// TaskNames returns the names of the configured tasks.
func (c FamilyConfig) TaskNames() []string { return append([]string(nil), DrivingTasks[:c.Tasks]...) }

// TensorSpec is one tensor of the family's model.
type TensorSpec struct {
	// Name is the tensor's name in the checkpoints.
	Name string
	// Shape is [rows, cols] for weights and [rows] for biases.
	Shape []int
	// Layer is the transformer block the tensor belongs to.
	Layer int
	// Weight reports a 2-D weight (blocked); otherwise a bias.
	Weight bool
}

// Size returns the number of values.
func (s TensorSpec) Size() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// Specs lists the model's tensors in pipeline order.
func (c FamilyConfig) Specs() []TensorSpec {
	d, h := c.Width, c.Width*c.MLPRatio
	var out []TensorSpec
	for l := 0; l < c.Layers; l++ {
		for _, p := range []struct {
			name       string
			rows, cols int
		}{{"attn.q", d, d}, {"attn.k", d, d}, {"attn.v", d, d}, {"attn.o", d, d}, {"mlp.up", h, d}, {"mlp.down", d, h}} {
			base := fmt.Sprintf("layers.%d.%s", l, p.name)
			out = append(out,
				TensorSpec{Name: base + ".weight", Shape: []int{p.rows, p.cols}, Layer: l, Weight: true},
				TensorSpec{Name: base + ".bias", Shape: []int{p.rows}, Layer: l})
		}
	}
	return out
}

// WeightBytes returns the bytes of one task's dense fp32 weights and biases.
func (c FamilyConfig) WeightBytes() int64 {
	var n int64
	for _, s := range c.Specs() {
		n += int64(s.Size()) * 4
	}
	return n
}

// stream returns a random stream determined by the seed, the tensor name
// and a salt (the task index, or -1 for the base).
func (c FamilyConfig) stream(name string, salt int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(c.Seed^0x9e3779b97f4a7c15, h.Sum64()+uint64(int64(salt))*0x632be59bd9b4e019))
}

func lognormal(r *rand.Rand, sigma float64) float64 {
	return math.Exp(sigma*r.NormFloat64() - sigma*sigma/2)
}

// Base returns the base values of a tensor.
func (c FamilyConfig) Base(s TensorSpec) []float32 {
	r := c.stream(s.Name, -1)
	out := make([]float32, s.Size())
	if !s.Weight {
		for i := range out {
			out[i] = float32(0.02 * r.NormFloat64())
		}
		return out
	}
	rows, cols := s.Shape[0], s.Shape[1]
	rs := make([]float64, rows)
	group := 1.0
	for i := range rs {
		if i%64 == 0 {
			group = lognormal(r, 0.3)
		}
		rs[i] = group * lognormal(r, 0.3)
	}
	cs := make([]float64, cols)
	for j := range cs {
		cs[j] = lognormal(r, 0.3) / math.Sqrt(float64(cols))
	}
	for i := 0; i < rows; i++ {
		row := out[i*cols : (i+1)*cols]
		for j := range row {
			row[j] = float32(rs[i] * cs[j] * r.NormFloat64())
		}
	}
	return out
}

// layerFactor is how much fine-tuning moves block l relative to the last
// block: 0.6 for the first, rising linearly to 1 for the last.
func (c FamilyConfig) layerFactor(l int) float64 {
	if c.Layers <= 1 {
		return 1
	}
	return 0.6 + 0.4*float64(l)/float64(c.Layers-1)
}

// Delta adds task t's fine-tune change to base (the tensor's base values)
// and returns the task's values in a new slice.
func (c FamilyConfig) Delta(t int, s TensorSpec, base []float32) []float32 {
	r := c.stream(s.Name, t)
	scale := c.DeltaScale * c.layerFactor(s.Layer) * (0.95 + 0.1*r.Float64())
	out := make([]float32, len(base))
	var ss float64
	for _, v := range base {
		ss += float64(v) * float64(v)
	}
	rms := math.Sqrt(ss / float64(max(len(base), 1)))
	if !s.Weight || scale == 0 {
		for i, v := range base {
			out[i] = v + float32(scale*rms*r.NormFloat64())
		}
		return out
	}
	rows, cols := s.Shape[0], s.Shape[1]
	delta := make([]float64, len(base))
	// Low-rank part: U V^T with U rows x k, V cols x k.
	if k := min(c.Rank, rows, cols); k > 0 {
		u := make([]float64, rows*k)
		v := make([]float64, cols*k)
		for i := range u {
			u[i] = r.NormFloat64()
		}
		for i := range v {
			v[i] = r.NormFloat64()
		}
		w := 0.7 / math.Sqrt(float64(k))
		for i := 0; i < rows; i++ {
			ui := u[i*k : (i+1)*k]
			row := delta[i*cols : (i+1)*cols]
			for j := range row {
				vj := v[j*k : (j+1)*k]
				var d float64
				for q, x := range ui {
					d += x * vj[q]
				}
				row[j] = w * d
			}
		}
	}
	// Noise everywhere, and a sparse part on about 0.5% of the weights
	// (geometric gaps between them).
	for i := range delta {
		delta[i] += 0.5 * r.NormFloat64()
	}
	for i := int(r.ExpFloat64() * 200); i < len(delta); i += 1 + int(r.ExpFloat64()*200) {
		delta[i] += 3 * r.NormFloat64()
	}
	var ds float64
	for _, d := range delta {
		ds += d * d
	}
	norm := scale * rms / math.Sqrt(ds/float64(len(delta)))
	for i, v := range base {
		out[i] = v + float32(norm*delta[i])
	}
	return out
}

// Calib returns task t's mean squared input activation per input feature
// of the weight named weight, which has cols input features.
func (c FamilyConfig) Calib(t int, weight string, cols int) []float32 {
	shared := c.stream(weight+"#act", -1)
	own := c.stream(weight+"#act", t)
	out := make([]float32, cols)
	g := 1.0
	for j := range out {
		if j%32 == 0 {
			g = lognormal(own, c.CalibSpread)
		}
		out[j] = float32(lognormal(shared, 0.5) * g * lognormal(own, 0.2))
	}
	return out
}

// FamilyFiles names the files of a generated family.
type FamilyFiles struct {
	// Dir is the directory holding them.
	Dir string `json:"dir"`
	// Base is the base checkpoint.
	Base string `json:"base"`
	// Tasks maps each task to its checkpoint.
	Tasks map[string]string `json:"tasks"`
	// Calib maps each task to its calibration statistics.
	Calib map[string]string `json:"calib"`
	// Order lists the tasks in family order.
	Order []string `json:"order"`
	// Config is the configuration the files were generated from.
	Config FamilyConfig `json:"config"`
}

// Key returns the cache key of the configuration: a hash of it and the
// generator version.
func (c FamilyConfig) Key() string {
	b, _ := json.Marshal(c)
	h := sha256.New()
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], GeneratorVersion)
	h.Write(v[:])
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// CacheDir returns $XDG_CACHE_HOME/dmsparse, or ~/.cache/dmsparse.
func CacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "dmsparse"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: no XDG_CACHE_HOME and no home directory: %w", err)
	}
	return filepath.Join(home, ".cache", "dmsparse"), nil
}

// familyIndex is the file written last in a generated family's directory;
// its presence means the family is complete.
const familyIndex = "family.json"

// LoadFamily reads the family index of a directory written by WriteFamily.
func LoadFamily(dir string) (*FamilyFiles, error) {
	b, err := os.ReadFile(filepath.Join(dir, familyIndex))
	if err != nil {
		return nil, fmt.Errorf("family in %s: %w", dir, err)
	}
	var f FamilyFiles
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("family in %s: decoding %s: %w", dir, familyIndex, err)
	}
	if len(f.Order) == 0 || len(f.Tasks) != len(f.Order) {
		return nil, fmt.Errorf("family in %s: %s lists %d tasks in order and %d files", dir, familyIndex, len(f.Order), len(f.Tasks))
	}
	f.Dir = dir
	return &f, nil
}

// WriteFamily generates the family into dir (created if needed): base.
// safetensors, task-NAME.safetensors and calib-NAME.safetensors, then
// family.json. Each file is written atomically; family.json last, so a
// directory with it is complete.
func WriteFamily(dir string, c FamilyConfig, progress func(done, total int)) (*FamilyFiles, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("family: creating %s: %w", dir, err)
	}
	specs := c.Specs()
	names := c.TaskNames()
	ff := &FamilyFiles{Dir: dir, Base: "base.safetensors", Tasks: map[string]string{}, Calib: map[string]string{}, Order: names, Config: c}
	meta := map[string]string{
		"generator": fmt.Sprintf("dmsparse bench built-in synthetic family v%d: transformer-like fine-tunes of a shared base, not trained weights", GeneratorVersion),
		"config":    string(mustJSON(c)),
	}
	total := 1 + 2*len(names)
	done := 0
	step := func() {
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	if c.IsShared() {
		meta["generator"] = fmt.Sprintf("dmsparse bench built-in synthetic family v%d: transformer-like tasks sharing one set of dense weights, differing by calibration statistics; not trained weights", GeneratorVersion)
	}
	base := make([][]float32, len(specs))
	parallelFor(len(specs), func(i int) { base[i] = c.Base(specs[i]) })
	if err := writeTensors(filepath.Join(dir, ff.Base), specs, base, withKV(meta, "role", "base")); err != nil {
		return nil, err
	}
	step()
	for t, name := range names {
		if c.IsShared() {
			// The tasks' weights are the base's: the checkpoint is the base file.
			ff.Tasks[name] = ff.Base
		} else {
			vals := make([][]float32, len(specs))
			parallelFor(len(specs), func(i int) { vals[i] = c.Delta(t, specs[i], base[i]) })
			file := "task-" + name + ".safetensors"
			if err := writeTensors(filepath.Join(dir, file), specs, vals, withKV(meta, "task", name)); err != nil {
				return nil, err
			}
			ff.Tasks[name] = file
		}
		step()
		var cs []TensorSpec
		for _, s := range specs {
			if s.Weight {
				cs = append(cs, TensorSpec{Name: s.Name + ".act_sqmean", Shape: []int{s.Shape[1]}, Layer: s.Layer})
			}
		}
		cv := make([][]float32, len(cs))
		parallelFor(len(cs), func(i int) {
			cv[i] = c.Calib(t, strings.TrimSuffix(cs[i].Name, ".act_sqmean"), cs[i].Shape[0])
		})
		file := "calib-" + name + ".safetensors"
		if err := writeTensors(filepath.Join(dir, file), cs, cv, withKV(meta, "task", name)); err != nil {
			return nil, err
		}
		ff.Calib[name] = file
		step()
	}
	if err := profiles.WriteFileAtomic(filepath.Join(dir, familyIndex), append(mustJSON(ff), '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("family: %w", err)
	}
	return ff, nil
}

// CachedFamily returns the family of configuration c from the cache
// directory, generating it on the first call.
func CachedFamily(cacheDir string, c FamilyConfig, progress func(done, total int)) (*FamilyFiles, bool, error) {
	dir := filepath.Join(cacheDir, "family-"+c.Key())
	if f, err := LoadFamily(dir); err == nil && f.Config == c {
		return f, true, nil
	}
	f, err := WriteFamily(dir, c, progress)
	return f, false, err
}

// Path returns the absolute path of a file of the family.
func (f *FamilyFiles) Path(file string) string { return filepath.Join(f.Dir, file) }

func withKV(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("bench: encoding %T: %v", v, err))
	}
	return b
}

func writeTensors(path string, specs []TensorSpec, vals [][]float32, meta map[string]string) error {
	ts := make([]safetensors.Tensor, len(specs))
	for i, s := range specs {
		ts[i] = safetensors.FromFloat32(s.Name, safetensors.F32, s.Shape, vals[i])
	}
	if err := safetensors.WriteFile(path, ts, meta); err != nil {
		return fmt.Errorf("family: writing %s: %w", path, err)
	}
	return nil
}

// parallelFor runs f(0..n-1) on GOMAXPROCS goroutines.
func parallelFor(n int, f func(i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
