package bench

import (
	"math"
	"slices"
	"testing"

	"github.com/dmsparse/dmsparse/safetensors"
)

func tinyFamily() FamilyConfig {
	return FamilyConfig{Layers: 2, Width: 64, MLPRatio: 2, Tasks: 3, Seed: 7, Rank: 4, DeltaScale: 0.15, CalibSpread: 0.3}
}

func TestFamilySpecs(t *testing.T) {
	c := tinyFamily()
	specs := c.Specs()
	if len(specs) != 2*6*2 {
		t.Fatalf("%d tensors, want 24", len(specs))
	}
	shapes := map[string][]int{
		"layers.0.attn.q.weight":   {64, 64},
		"layers.1.mlp.up.weight":   {128, 64},
		"layers.1.mlp.down.weight": {64, 128},
		"layers.1.mlp.down.bias":   {64},
	}
	for _, s := range specs {
		if want, ok := shapes[s.Name]; ok && !slices.Equal(s.Shape, want) {
			t.Errorf("%s shape %v, want %v", s.Name, s.Shape, want)
		}
	}
	if got, want := c.WeightBytes(), int64(4*2*(4*(64*64+64)+(128*64+128)+(64*128+64))); got != want {
		t.Errorf("WeightBytes = %d, want %d", got, want)
	}
	bad := c
	bad.Tasks = 0
	if bad.Validate() == nil {
		t.Error("0 tasks accepted")
	}
}

func relDiff(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

func TestFamilyDeterministicAndDeltas(t *testing.T) {
	c := tinyFamily()
	specs := c.Specs()
	var totalD, totalW float64
	for _, s := range specs {
		b1, b2 := c.Base(s), c.Base(s)
		if !slices.Equal(b1, b2) {
			t.Fatalf("%s: base not deterministic", s.Name)
		}
		d1, d2 := c.Delta(1, s, b1), c.Delta(1, s, b1)
		if !slices.Equal(d1, d2) {
			t.Fatalf("%s: task values not deterministic", s.Name)
		}
		if !s.Weight {
			continue
		}
		other := c.Delta(2, s, b1)
		if slices.Equal(d1, other) {
			t.Errorf("%s: tasks 1 and 2 identical", s.Name)
		}
		r := relDiff(d1, b1)
		// Each layer moves 9-15% (DeltaScale 0.15 in the last block, 60%
		// of it in the first, a per-tensor factor within 5%).
		want := c.DeltaScale * c.layerFactor(s.Layer)
		if r < 0.94*want || r > 1.06*want || r < 0.084 || r > 0.158 {
			t.Errorf("%s: relative delta %.4f, want %.4f within 6%% (9-15%% per layer)", s.Name, r, want)
		}
		// No block stays identical to the base.
		for i := 0; i+32 <= len(d1); i += 32 {
			if slices.Equal(d1[i:i+32], b1[i:i+32]) {
				t.Fatalf("%s: values %d..%d equal the base", s.Name, i, i+32)
			}
		}
		for i := range d1 {
			dd := float64(d1[i] - b1[i])
			totalD += dd * dd
			totalW += float64(b1[i]) * float64(b1[i])
		}
		act := c.Calib(1, s.Name, s.Shape[1])
		if len(act) != s.Shape[1] || slices.Equal(act, c.Calib(2, s.Name, s.Shape[1])) {
			t.Errorf("%s: calibration statistics wrong length or equal across tasks", s.Name)
		}
		for _, a := range act {
			if !(a > 0) {
				t.Fatalf("%s: non-positive activation statistic %g", s.Name, a)
			}
		}
	}
	if r := math.Sqrt(totalD / totalW); r < 0.09 || r > 0.15 {
		t.Errorf("whole-model relative delta %.4f, want 9-15%%", r)
	}
	d := c
	d.Seed = 8
	if slices.Equal(c.Base(specs[0]), d.Base(specs[0])) {
		t.Error("seed does not change the base")
	}
	if c.Key() == d.Key() {
		t.Error("seed does not change the cache key")
	}
}

func TestWriteFamilyCached(t *testing.T) {
	c := tinyFamily()
	cache := t.TempDir()
	f, hit, err := CachedFamily(cache, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hit {
		t.Error("first call reported a cache hit")
	}
	f2, hit, err := CachedFamily(cache, c, nil)
	if err != nil || !hit || f2.Dir != f.Dir {
		t.Fatalf("second call: hit %v dir %s err %v, want a hit in %s", hit, f2.Dir, err, f.Dir)
	}
	st, err := safetensors.Open(f.Path(f.Tasks["obstacle"]))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := c.Specs()[4] // layers.0.attn.k? any weight
	vals, info, err := st.Float32(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Shape, s.Shape) || !slices.Equal(vals, c.Delta(2, s, c.Base(s))) {
		t.Errorf("%s in the obstacle checkpoint differs from the generator", s.Name)
	}
	cs, err := safetensors.Open(f.Path(f.Calib["obstacle"]))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, _, err := cs.Float32(c.Specs()[0].Name + ".act_sqmean"); err != nil {
		t.Error(err)
	}
}

func TestSharedFamily(t *testing.T) {
	c := tinyFamily()
	c.Kind = FamilyShared
	if c.Key() == tinyFamily().Key() {
		t.Fatal("kind does not change the cache key")
	}
	f, _, err := CachedFamily(t.TempDir(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range c.TaskNames() {
		if f.Tasks[name] != f.Base {
			t.Errorf("task %s checkpoint %s, want the base %s", name, f.Tasks[name], f.Base)
		}
	}
	a, err := safetensors.Open(f.Path(f.Calib["detection"]))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := safetensors.Open(f.Path(f.Calib["obstacle"]))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := c.Specs()[0].Name + ".act_sqmean"
	va, _, err := a.Float32(key)
	if err != nil {
		t.Fatal(err)
	}
	vb, _, err := b.Float32(key)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(va, vb) {
		t.Error("shared family: tasks have equal calibration statistics")
	}
	bad := c
	bad.Kind = "mixed"
	if bad.Validate() == nil {
		t.Error("unknown family kind accepted")
	}
}
