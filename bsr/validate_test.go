package bsr

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// validMatrix returns a 5x7 matrix in 2x3 blocks (3 block rows, 3 block
// columns, tails in both dimensions) keeping blocks (0,0), (0,2), (2,1), (2,2).
func validMatrix(t *testing.T) *Matrix {
	t.Helper()
	d := make([]float32, 5*7)
	for i := range d {
		d[i] = float32(i + 1)
	}
	mk := NewMask(5, 7, 2, 3)
	mk.Set(0, 0, true)
	mk.Set(0, 2, true)
	mk.Set(2, 1, true)
	mk.Set(2, 2, true)
	m, err := FromDense(d, 5, 7, 2, 3, mk)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("valid matrix rejected: %v", err)
	}
	return m
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		rule   string
		detail string
		break_ func(m *Matrix)
	}{
		{"shape", "block sides", func(m *Matrix) { m.R = 0 }},
		{"shape", "non-negative", func(m *Matrix) { m.Rows = -1 }},
		{"indptr-length", "want block rows + 1 = 4", func(m *Matrix) { m.Indptr = m.Indptr[:3] }},
		{"indptr-start", "indptr[0] = 1", func(m *Matrix) { m.Indptr[0] = 1 }},
		{"indptr-monotone", "indptr[2] = 1 is below indptr[1] = 2", func(m *Matrix) { m.Indptr[2] = 1 }},
		{"indptr-end", "want len(indices) = 4", func(m *Matrix) { m.Indptr[3] = 3 }},
		{"indices-range", "indices[3] = 3 outside [0, 3)", func(m *Matrix) { m.Indices[3] = 3 }},
		{"indices-range", "indices[0] = -1", func(m *Matrix) { m.Indices[0] = -1 }},
		{"indices-sorted", "block row 0: indices[1] = 0 follows 0", func(m *Matrix) { m.Indices[1] = 0 }},
		{"indices-sorted", "block row 2: indices[3] = 1 follows 1", func(m *Matrix) { m.Indices[3] = 1 }},
		{"data-length", "want nnzb*R*C = 4*2*3 = 24", func(m *Matrix) { m.Data = m.Data[:23] }},
		// Block 1 is (0, 2): columns 6..8 of which 7 and 8 are padding.
		{"padding", "block 1 at (0, 2): padding value [0, 1]", func(m *Matrix) { m.Data[1*6+1] = 5 }},
		// Block 3 is (2, 2): row 5 is padding.
		{"padding", "block 3 at (2, 2)", func(m *Matrix) { m.Data[3*6+3] = 1 }},
	}
	for _, c := range cases {
		m := validMatrix(t)
		c.break_(m)
		err := m.Validate()
		if err == nil {
			t.Errorf("rule %s: broken matrix accepted", c.rule)
			continue
		}
		var se *StructureError
		if !errors.As(err, &se) || !errors.Is(err, ErrStructure) {
			t.Errorf("rule %s: error %v is not a *StructureError wrapping ErrStructure", c.rule, err)
			continue
		}
		if se.Rule != c.rule {
			t.Errorf("broke rule %s, Validate reported rule %s (%v)", c.rule, se.Rule, err)
		}
		if !strings.Contains(err.Error(), c.detail) {
			t.Errorf("rule %s: error %q does not say %q", c.rule, err, c.detail)
		}
	}
}

func TestValidateViewRejects(t *testing.T) {
	cases := []struct {
		rule   string
		break_ func(v *View)
	}{
		{"slots-length", func(v *View) { v.Slots = v.Slots[:2] }},
		{"stride", func(v *View) { v.Stride = 5 }},
		{"slots-range", func(v *View) { v.Slots[1] = 4 }},
		{"slots-range", func(v *View) { v.Slots[0] = -1 }},
		{"indices-sorted", func(v *View) { v.Indices[1] = 0 }},
		{"padding", func(v *View) { v.Arena[v.Slots[1]*int32(v.Stride)+2] = 1 }},
	}
	for _, c := range cases {
		m := validMatrix(t)
		v := m.View()
		if err := v.Validate(); err != nil {
			t.Fatalf("valid view rejected: %v", err)
		}
		c.break_(v)
		err := v.Validate()
		var se *StructureError
		if !errors.As(err, &se) || se.Rule != c.rule {
			t.Errorf("broke view rule %s, got %v", c.rule, err)
		}
	}
}

func TestFromDenseRoundTrip(t *testing.T) {
	shapes := [][4]int{{5, 7, 2, 3}, {64, 64, 8, 8}, {33, 17, 16, 16}, {100, 70, 32, 16}, {1, 1, 64, 64}, {0, 5, 4, 4}, {130, 129, 64, 64}}
	for _, s := range shapes {
		rows, cols, R, C := s[0], s[1], s[2], s[3]
		d := make([]float32, rows*cols)
		for i := range d {
			if (i/7)%3 != 0 {
				d[i] = float32(i%11) - 5
			}
		}
		m, err := FromDense(d, rows, cols, R, C, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		got := m.ToDense()
		for i := range d {
			if got[i] != d[i] {
				t.Fatalf("%v: ToDense(FromDense) differs at %d: %g vs %g", s, i, got[i], d[i])
			}
		}
		// Every dropped block must be all zero when no mask is given.
		mk := m.Mask()
		for i := 0; i < mk.BlockRows; i++ {
			for j := 0; j < mk.BlockCols; j++ {
				if !mk.Get(i, j) && BlockSquaredNorm(d, rows, cols, R, C, i, j) != 0 {
					t.Fatalf("%v: non-zero block (%d,%d) dropped", s, i, j)
				}
			}
		}
		if m.View().Contiguous().Validate() != nil {
			t.Fatalf("%v: contiguous copy invalid", s)
		}
	}
}

func TestFromDenseMaskKeepsZeroBlocks(t *testing.T) {
	d := make([]float32, 8*8)
	mk := NewMask(8, 8, 4, 4)
	mk.Set(1, 0, true)
	m, err := FromDense(d, 8, 8, 4, 4, mk)
	if err != nil {
		t.Fatal(err)
	}
	if m.NNZB() != 1 || m.Indptr[1] != 0 || m.Indptr[2] != 1 || m.Indices[0] != 0 {
		t.Fatalf("mask with one zero block gave %v indptr %v indices %v", m, m.Indptr, m.Indices)
	}
	if got := m.Mask(); got.Count() != 1 || !got.Get(1, 0) {
		t.Fatalf("Mask() does not give back the mask")
	}
}

func TestFromDenseThreshold(t *testing.T) {
	// 4x4 in 2x2 blocks; block norms: (0,0)=2, (0,1)=0, (1,0)=1, (1,1)=sqrt(8)
	d := []float32{
		1, 1, 0, 0,
		1, 1, 0, 0,
		1, 0, 2, 2,
		0, 0, 0, 0,
	}
	m, err := FromDenseThreshold(d, 4, 4, 2, 2, 1.5)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{0, 1}
	if m.NNZB() != 2 || m.Indices[0] != want[0] || m.Indices[1] != want[1] || m.Indptr[1] != 1 {
		t.Fatalf("threshold 1.5 kept %v indptr %v", m.Indices, m.Indptr)
	}
	m0, _ := FromDenseThreshold(d, 4, 4, 2, 2, 0)
	if m0.NNZB() != 3 {
		t.Fatalf("threshold 0 kept %d blocks, want the 3 non-zero ones", m0.NNZB())
	}
	if _, err := FromDenseThreshold(d, 4, 4, 2, 2, math.NaN()); err == nil {
		t.Fatal("NaN threshold accepted")
	}
}

func TestFromDenseErrors(t *testing.T) {
	d := make([]float32, 12)
	_, errLength := FromDense(d, 3, 5, 2, 2, nil)
	_, errBlock := FromDense(d, 3, 4, 0, 2, nil)
	_, errMask := FromDense(d, 3, 4, 2, 2, NewMask(6, 4, 2, 2))
	checks := []struct {
		err  error
		want string
	}{
		{errLength, "want rows*cols = 3*5 = 15"},
		{errBlock, "block shape 0x2"},
		{errMask, "mask is 3x2 blocks (6 entries), want 2x2"},
	}
	for _, c := range checks {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("got %v, want an error saying %q", c.err, c.want)
		}
	}
}

func TestMulLinearArgumentErrors(t *testing.T) {
	m := validMatrix(t)
	v := m.View()
	y := make([]float32, 5*2)
	x := make([]float32, 7*2)
	if err := Mul(y, v, x, 2, Options{}); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		err  error
		want string
	}{
		{Mul(y, v, x[:13], 2, Options{}), "X has 13 values"},
		{Mul(y[:9], v, x, 2, Options{}), "Y has 9 values"},
		{Mul(y, v, x, 0, Options{}), "n = 0"},
		{Linear(y, x, 2, v, make([]float32, 4), Options{}), "bias has 4 values, want Rows = 5"},
		{Mul(y, nil, x, 2, Options{}), "nil view"},
		{Mul(y, &View{Rows: 5, Cols: 7, R: 2, C: 3, Indptr: []int32{0}}, x, 2, Options{}), "indptr entries"},
	}
	for _, c := range checks {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("got %v, want an error saying %q", c.err, c.want)
		}
	}
	if _, err := NewExecutor(0); err == nil {
		t.Error("executor with 0 workers accepted")
	}
}
