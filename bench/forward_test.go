package bench

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/bsr"
)

func TestForwardCheckDetectsWrongBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	rows, cols, R, C := 96, 128, 16, 16
	d := make([]float32, rows*cols)
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	mask := bsr.NewMask(rows, cols, R, C)
	for i := range mask.Keep {
		mask.Keep[i] = i%3 != 0
	}
	m, err := bsr.FromDense(d, rows, cols, R, C, mask)
	if err != nil {
		t.Fatal(err)
	}
	bias := make([]float32, rows)
	for i := range bias {
		bias[i] = float32(rng.NormFloat64())
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	r, err := computeRef(bsr.Generic, monoTensorIn{name: "w", bias: "b", m: m, b: bias}, x)
	if err != nil {
		t.Fatal(err)
	}
	prep := &prepared{
		tensors: map[string][]tensorRef{"task": {{name: "w", bias: "b", rows: rows, cols: cols}}},
		xs:      map[int][]float32{cols: x},
	}
	fw := newForwarder(bsr.Generic, prep)
	refs := map[string]*ref{"w": r}
	check := func(v *bsr.View) error {
		return fw.pass("task", func(string, string) (*bsr.View, []float32, error) { return v, bias, nil }, refs)
	}
	// The right blocks in other slots (a paged view) pass.
	paged := m.View()
	arena := make([]float32, 2*len(m.Data)+R*C)
	for k := range paged.Slots {
		paged.Slots[k] = int32(2*k + 1)
		copy(arena[(2*k+1)*R*C:], m.Block(k))
	}
	paged.Arena = arena
	if err := check(paged); err != nil {
		t.Fatalf("correct paged view rejected: %v", err)
	}
	// A stale block version: one block off by 0.1%.
	stale := m.View().Contiguous().View()
	blk := stale.Block(5)
	for i := range blk {
		blk[i] *= 1.001
	}
	if err := check(stale); err == nil || !strings.Contains(err.Error(), "forward check failed") {
		t.Errorf("stale block accepted: %v", err)
	}
	// Two blocks swapped.
	swapped := m.View()
	swapped.Slots = append([]int32(nil), swapped.Slots...)
	swapped.Slots[0], swapped.Slots[1] = swapped.Slots[1], swapped.Slots[0]
	if err := check(swapped); err == nil {
		t.Error("swapped blocks accepted")
	}
	// A missing bias.
	if err := fw.pass("task", func(string, string) (*bsr.View, []float32, error) { return m.View(), nil, nil }, refs); err == nil {
		t.Error("missing bias accepted")
	}
}
