package bsr

import (
	"fmt"
	"math"
)

// Mask is the set of block coordinates a matrix keeps: a BlockRows x
// BlockCols grid of booleans, row-major.
type Mask struct {
	// BlockRows and BlockCols give the grid size.
	BlockRows, BlockCols int
	// Keep has BlockRows*BlockCols entries; Keep[i*BlockCols+j] keeps block
	// (i, j).
	Keep []bool
}

// NewMask returns an empty (keep nothing) mask for a rows x cols matrix cut
// into R x C blocks.
func NewMask(rows, cols, R, C int) *Mask {
	br, bc := ceilDiv(rows, R), ceilDiv(cols, C)
	return &Mask{BlockRows: br, BlockCols: bc, Keep: make([]bool, br*bc)}
}

// Get reports whether block (i, j) is kept.
func (m *Mask) Get(i, j int) bool { return m.Keep[i*m.BlockCols+j] }

// Set keeps or drops block (i, j).
func (m *Mask) Set(i, j int, keep bool) { m.Keep[i*m.BlockCols+j] = keep }

// Count returns the number of kept blocks.
func (m *Mask) Count() int {
	n := 0
	for _, k := range m.Keep {
		if k {
			n++
		}
	}
	return n
}

// Mask returns the block mask of the matrix's stored blocks.
func (m *Matrix) Mask() *Mask {
	mk := NewMask(m.Rows, m.Cols, m.R, m.C)
	for i := 0; i < m.BlockRows(); i++ {
		for k := m.Indptr[i]; k < m.Indptr[i+1]; k++ {
			mk.Set(i, int(m.Indices[k]), true)
		}
	}
	return mk
}

func checkDense(d []float32, rows, cols, R, C int) error {
	if rows < 0 || cols < 0 {
		return fmt.Errorf("bsr: dense shape %dx%d: want non-negative", rows, cols)
	}
	if R < 1 || C < 1 {
		return fmt.Errorf("bsr: block shape %dx%d: want both sides >= 1", R, C)
	}
	if len(d) != rows*cols {
		return fmt.Errorf("bsr: dense data has %d values, want rows*cols = %d*%d = %d", len(d), rows, cols, rows*cols)
	}
	if int64(ceilDiv(rows, R)) >= math.MaxInt32 || int64(ceilDiv(cols, C)) >= math.MaxInt32 {
		return fmt.Errorf("bsr: %dx%d in %dx%d blocks has more block rows or columns than int32 indices hold", rows, cols, R, C)
	}
	return nil
}

// FromDense cuts the row-major rows x cols matrix d into R x C blocks and
// keeps the blocks mask keeps (zero blocks included). A nil mask keeps every
// block that holds a non-zero value.
func FromDense(d []float32, rows, cols, R, C int, mask *Mask) (*Matrix, error) {
	if err := checkDense(d, rows, cols, R, C); err != nil {
		return nil, err
	}
	br, bc := ceilDiv(rows, R), ceilDiv(cols, C)
	if mask != nil && (mask.BlockRows != br || mask.BlockCols != bc || len(mask.Keep) != br*bc) {
		return nil, fmt.Errorf("bsr: mask is %dx%d blocks (%d entries), want %dx%d for a %dx%d matrix in %dx%d blocks",
			mask.BlockRows, mask.BlockCols, len(mask.Keep), br, bc, rows, cols, R, C)
	}
	keep := func(i, j int) bool {
		if mask != nil {
			return mask.Get(i, j)
		}
		return blockSquaredNorm(d, rows, cols, R, C, i, j) > 0
	}
	return build(d, rows, cols, R, C, keep), nil
}

// FromDenseThreshold keeps the blocks whose Frobenius norm exceeds threshold;
// threshold 0 keeps every block holding a non-zero value.
func FromDenseThreshold(d []float32, rows, cols, R, C int, threshold float64) (*Matrix, error) {
	if err := checkDense(d, rows, cols, R, C); err != nil {
		return nil, err
	}
	if threshold < 0 || math.IsNaN(threshold) {
		return nil, fmt.Errorf("bsr: threshold %g: want a non-negative number", threshold)
	}
	t2 := threshold * threshold
	return build(d, rows, cols, R, C, func(i, j int) bool {
		return blockSquaredNorm(d, rows, cols, R, C, i, j) > t2
	}), nil
}

// BlockSquaredNorm returns the squared Frobenius norm of block (i, j) of the
// row-major rows x cols matrix d cut into R x C blocks.
func BlockSquaredNorm(d []float32, rows, cols, R, C, i, j int) float64 {
	return blockSquaredNorm(d, rows, cols, R, C, i, j)
}

func blockSquaredNorm(d []float32, rows, cols, R, C, i, j int) float64 {
	var s float64
	for r := i * R; r < min(i*R+R, rows); r++ {
		for _, v := range d[r*cols+j*C : r*cols+min(j*C+C, cols)] {
			s += float64(v) * float64(v)
		}
	}
	return s
}

func build(d []float32, rows, cols, R, C int, keep func(i, j int) bool) *Matrix {
	br, bc := ceilDiv(rows, R), ceilDiv(cols, C)
	m := &Matrix{Rows: rows, Cols: cols, R: R, C: C, Indptr: make([]int32, br+1)}
	for i := 0; i < br; i++ {
		for j := 0; j < bc; j++ {
			if !keep(i, j) {
				continue
			}
			m.Indices = append(m.Indices, int32(j))
			start := len(m.Data)
			m.Data = append(m.Data, make([]float32, R*C)...)
			blk := m.Data[start:]
			for r := 0; r < min(R, rows-i*R); r++ {
				src := d[(i*R+r)*cols+j*C : (i*R+r)*cols+min(j*C+C, cols)]
				copy(blk[r*C:], src)
			}
		}
		m.Indptr[i+1] = int32(len(m.Indices))
	}
	if m.Indices == nil {
		m.Indices = []int32{}
		m.Data = []float32{}
	}
	return m
}

// ToDense returns the matrix as a row-major Rows x Cols slice, dropped blocks
// as zeros.
func (m *Matrix) ToDense() []float32 { return m.View().ToDense() }

// ToDense returns the view as a row-major Rows x Cols slice, dropped blocks
// as zeros.
func (v *View) ToDense() []float32 {
	d := make([]float32, v.Rows*v.Cols)
	for i := 0; i < v.BlockRows(); i++ {
		for k := v.Indptr[i]; k < v.Indptr[i+1]; k++ {
			j := int(v.Indices[k])
			blk := v.Block(int(k))
			for r := 0; r < min(v.R, v.Rows-i*v.R); r++ {
				copy(d[(i*v.R+r)*v.Cols+j*v.C:(i*v.R+r)*v.Cols+min(j*v.C+v.C, v.Cols)], blk[r*v.C:])
			}
		}
	}
	return d
}
