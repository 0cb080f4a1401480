package bsr

import (
	"testing"

	"gorgonia.org/tensor"
)

func TestTensorRoundTrip(t *testing.T) {
	d := make([]float32, 40*24)
	for i := range d {
		if (i/16)%2 == 0 {
			d[i] = float32(i) * 0.5
		}
	}
	dense := tensor.New(tensor.WithShape(40, 24), tensor.WithBacking(append([]float32(nil), d...)))
	m, err := FromTensor(dense, 16, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != 40 || m.Cols != 24 || m.Validate() != nil {
		t.Fatalf("bad conversion %v", m)
	}
	back := m.ToTensor()
	got := back.Data().([]float32)
	for i := range d {
		if got[i] != d[i] {
			t.Fatalf("round trip differs at %d", i)
		}
	}
	// A transposed (non-contiguous) tensor must be materialised, not misread.
	tr := tensor.New(tensor.WithShape(40, 24), tensor.WithBacking(append([]float32(nil), d...)))
	if err := tr.T(); err != nil {
		t.Fatal(err)
	}
	mt, err := FromTensor(tr, 8, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mt.Rows != 24 || mt.Cols != 40 {
		t.Fatalf("transposed tensor gave %dx%d", mt.Rows, mt.Cols)
	}
	td := mt.ToDense()
	for r := 0; r < 24; r++ {
		for c := 0; c < 40; c++ {
			if td[r*40+c] != d[c*24+r] {
				t.Fatalf("transposed element (%d,%d) = %g, want %g", r, c, td[r*40+c], d[c*24+r])
			}
		}
	}
	if _, err := FromTensor(tensor.New(tensor.WithShape(4), tensor.WithBacking(make([]float32, 4))), 2, 2, nil); err == nil {
		t.Fatal("1-D tensor accepted")
	}
	if _, err := FromTensor(tensor.New(tensor.WithShape(2, 2), tensor.WithBacking(make([]float64, 4))), 2, 2, nil); err == nil {
		t.Fatal("float64 tensor accepted")
	}
	if _, err := FromTensorThreshold(dense, 8, 8, 1e9); err != nil {
		t.Fatal(err)
	}
}
