package bsr

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzValidate decodes an arbitrary structure from the fuzz input. Validate
// must never panic, and whatever it accepts must be safe for the kernels and
// survive a dense round trip with its own mask.
func FuzzValidate(f *testing.F) {
	f.Add([]byte{5, 7, 2, 3, 0, 2, 2, 4, 0, 2, 1, 2})
	f.Add([]byte{4, 4, 2, 2, 0, 1, 2, 0, 1})
	f.Add([]byte{0, 0, 1, 1, 0})
	f.Add([]byte{9, 9, 4, 4, 0, 3, 3, 3, 0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 {
			return
		}
		m := &Matrix{Rows: int(b[0] % 40), Cols: int(b[1] % 40), R: int(b[2] % 9), C: int(b[3] % 9)}
		rest := b[4:]
		br := 0
		if m.R > 0 {
			br = ceilDiv(m.Rows, m.R)
		}
		// Indptr takes br+1 bytes when there are enough, else what is there.
		np := min(len(rest), br+1)
		for _, v := range rest[:np] {
			m.Indptr = append(m.Indptr, int32(int8(v)))
		}
		for _, v := range rest[np:] {
			m.Indices = append(m.Indices, int32(int8(v)))
		}
		if m.R > 0 && m.C > 0 {
			m.Data = make([]float32, len(m.Indices)*m.R*m.C)
			for k := range m.Data {
				m.Data[k] = float32(k%5) - 2
			}
			// Zero the padding so that structurally sound inputs pass.
			for i := 0; i+1 < len(m.Indptr) && i < br; i++ {
				for k := m.Indptr[i]; k < m.Indptr[i+1] && k >= 0 && int(k) < len(m.Indices); k++ {
					for r := 0; r < m.R; r++ {
						for c := 0; c < m.C; c++ {
							if i*m.R+r >= m.Rows || int(m.Indices[k])*m.C+c >= m.Cols {
								m.Data[int(k)*m.R*m.C+r*m.C+c] = 0
							}
						}
					}
				}
			}
		}
		if err := m.Validate(); err != nil {
			return
		}
		v := m.View()
		if err := v.Validate(); err != nil {
			t.Fatalf("matrix valid but its view is not: %v", err)
		}
		x := make([]float32, m.Cols*2)
		for i := range x {
			x[i] = 1
		}
		y := make([]float32, m.Rows*2)
		if err := Mul(y, v, x, 2, Options{Workers: 2}); err != nil {
			t.Fatal(err)
		}
		back, err := FromDense(m.ToDense(), m.Rows, m.Cols, m.R, m.C, m.Mask())
		if err != nil {
			t.Fatal(err)
		}
		for k := range m.Data {
			if back.Data[k] != m.Data[k] {
				t.Fatalf("dense round trip changed block data at %d", k)
			}
		}
	})
}

// FuzzFromDense checks that FromDense and FromDenseThreshold always build a
// structure Validate accepts and that ToDense gives back the kept values.
func FuzzFromDense(f *testing.F) {
	f.Add(uint8(5), uint8(7), uint8(2), uint8(3), []byte{1, 0, 0, 0, 0, 0, 128, 63})
	f.Add(uint8(33), uint8(17), uint8(16), uint8(8), []byte{})
	f.Add(uint8(1), uint8(64), uint8(64), uint8(64), []byte{0, 0, 192, 127})
	f.Fuzz(func(t *testing.T, rows, cols, R, C uint8, raw []byte) {
		r, c := int(rows%70), int(cols%70)
		bR, bC := int(R%65)+1, int(C%65)+1
		d := make([]float32, r*c)
		for i := 0; i+4 <= len(raw) && i/4 < len(d); i += 4 {
			v := math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				v = 1
			}
			d[(i/4*7919)%len(d)] = v
		}
		m, err := FromDense(d, r, c, bR, bC, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("FromDense built an invalid matrix: %v", err)
		}
		got := m.ToDense()
		for i := range d {
			if got[i] != d[i] {
				t.Fatalf("value %d: %g became %g", i, d[i], got[i])
			}
		}
		mt, err := FromDenseThreshold(d, r, c, bR, bC, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		if err := mt.Validate(); err != nil {
			t.Fatalf("FromDenseThreshold built an invalid matrix: %v", err)
		}
	})
}
