// Package bsr holds the block-sparse-row (BSR) matrix types of dmsparse, their
// conversions to and from dense storage, structural validation, and the
// pure-Go kernels that serve both as the reference and as the fallback when the
// native SIMD kernels are not available.
//
// The layout follows scipy.sparse.bsr_matrix and torch.sparse_bsr_tensor: a
// Rows x Cols matrix is cut into R x C blocks; Indptr (int32, one entry per
// block row plus one) delimits each block row's run in Indices (int32 block
// column numbers, sorted and unique within a row); each kept block is stored
// row-major as R*C float32 values. Shapes that R or C do not divide are
// allowed: edge blocks are zero-padded and every product honours the true
// shape.
//
// Two types share that structure. Matrix keeps its blocks contiguous in Data.
// View keeps them in the slots of an arena (the loader's pool), so weights can
// be handed out without a copy; one kernel family serves both, since a Matrix
// is the View whose block i lives in slot i.
package bsr

import "fmt"

// Matrix is a block-sparse-row matrix whose blocks are stored contiguously.
type Matrix struct {
	// Rows and Cols give the true (unpadded) shape of the matrix.
	Rows, Cols int
	// R and C give the block shape.
	R, C int
	// Indptr has BlockRows()+1 entries; block row i owns blocks
	// Indptr[i] .. Indptr[i+1]-1.
	Indptr []int32
	// Indices holds the block column of each kept block, sorted and unique
	// within a block row.
	Indices []int32
	// Data holds NNZB()*R*C values: block k occupies Data[k*R*C:(k+1)*R*C],
	// row-major, with zeros in the padding of edge blocks.
	Data []float32
}

// View is a block-sparse-row matrix whose blocks live in the slots of an
// arena. Block k occupies Arena[Slots[k]*Stride : Slots[k]*Stride+R*C].
// Several blocks may share a slot (identical block versions are stored once).
type View struct {
	// Rows and Cols give the true (unpadded) shape of the matrix.
	Rows, Cols int
	// R and C give the block shape.
	R, C int
	// Indptr and Indices have the same meaning as in Matrix.
	Indptr  []int32
	Indices []int32
	// Arena is the memory the slots index into.
	Arena []float32
	// Slots gives, for every kept block, the slot number in Arena.
	Slots []int32
	// Stride is the distance in float32 values between consecutive slots; it
	// is at least R*C (a pool pads slots to its I/O alignment).
	Stride int
}

// ceilDiv returns ceil(a/b) for a >= 0, b > 0.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// BlockRows returns the number of block rows, ceil(Rows/R).
func (m *Matrix) BlockRows() int { return ceilDiv(m.Rows, m.R) }

// BlockCols returns the number of block columns, ceil(Cols/C).
func (m *Matrix) BlockCols() int { return ceilDiv(m.Cols, m.C) }

// NNZB returns the number of stored blocks.
func (m *Matrix) NNZB() int { return len(m.Indices) }

// Block returns the R*C values of stored block k.
func (m *Matrix) Block(k int) []float32 {
	bs := m.R * m.C
	return m.Data[k*bs : (k+1)*bs : (k+1)*bs]
}

// Density returns the share of blocks that are stored, in [0, 1].
func (m *Matrix) Density() float64 {
	total := m.BlockRows() * m.BlockCols()
	if total == 0 {
		return 0
	}
	return float64(m.NNZB()) / float64(total)
}

// View returns a paged view of m whose block k lives in slot k of m.Data.
// The view shares m's memory.
func (m *Matrix) View() *View {
	slots := make([]int32, m.NNZB())
	for k := range slots {
		slots[k] = int32(k)
	}
	return &View{
		Rows: m.Rows, Cols: m.Cols, R: m.R, C: m.C,
		Indptr: m.Indptr, Indices: m.Indices,
		Arena: m.Data, Slots: slots, Stride: m.R * m.C,
	}
}

// BlockRows returns the number of block rows, ceil(Rows/R).
func (v *View) BlockRows() int { return ceilDiv(v.Rows, v.R) }

// BlockCols returns the number of block columns, ceil(Cols/C).
func (v *View) BlockCols() int { return ceilDiv(v.Cols, v.C) }

// NNZB returns the number of stored blocks.
func (v *View) NNZB() int { return len(v.Indices) }

// Block returns the R*C values of stored block k.
func (v *View) Block(k int) []float32 {
	off := int(v.Slots[k]) * v.Stride
	bs := v.R * v.C
	return v.Arena[off : off+bs : off+bs]
}

// Contiguous copies the view's blocks into a new Matrix.
func (v *View) Contiguous() *Matrix {
	bs := v.R * v.C
	m := &Matrix{
		Rows: v.Rows, Cols: v.Cols, R: v.R, C: v.C,
		Indptr:  append([]int32(nil), v.Indptr...),
		Indices: append([]int32(nil), v.Indices...),
		Data:    make([]float32, v.NNZB()*bs),
	}
	for k := range v.Indices {
		copy(m.Data[k*bs:], v.Block(k))
	}
	return m
}

// String describes the matrix shape and fill in one line.
func (m *Matrix) String() string {
	return fmt.Sprintf("bsr.Matrix %dx%d blocks %dx%d nnzb %d/%d",
		m.Rows, m.Cols, m.R, m.C, m.NNZB(), m.BlockRows()*m.BlockCols())
}

// String describes the view shape and fill in one line.
func (v *View) String() string {
	return fmt.Sprintf("bsr.View %dx%d blocks %dx%d nnzb %d/%d stride %d",
		v.Rows, v.Cols, v.R, v.C, v.NNZB(), v.BlockRows()*v.BlockCols(), v.Stride)
}
