// Package bsrtest is the cross-implementation test harness of the BSR
// kernels. Every implementation of bsr.Kernel (the pure-Go reference and each
// native SIMD kernel) runs TestKernel from its own tests, so all of them are
// held to the same checks: agreement with a float64 dense reference, exact
// handling of tails in every dimension, untouched guard regions around the
// output, no reads outside the operands, bit-identical results on paged
// views, and zero allocations with an Executor.
package bsrtest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/dmsparse/dmsparse/bsr"
)

// Guard is the number of float32 values placed before and after every
// output, input and bias buffer the harness hands to a kernel.
const Guard = 37

// Sentinel fills the guard regions around outputs; a kernel that writes
// outside its output changes it.
var Sentinel = math.Float32frombits(0x7fc0beef) // a NaN with a recognisable payload

// Kind selects how RandomMatrix fills a matrix.
type Kind int

const (
	// Random keeps each block with the given density and random values.
	Random Kind = iota
	// EmptyRows is Random with every other block row dropped entirely.
	EmptyRows
	// AllZero keeps blocks at the given density but with all values zero.
	AllZero
	// AllDense keeps every block.
	AllDense
	// NoBlocks keeps no block at all.
	NoBlocks
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Random:
		return "random"
	case EmptyRows:
		return "emptyrows"
	case AllZero:
		return "allzero"
	case AllDense:
		return "alldense"
	case NoBlocks:
		return "noblocks"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// RandomMatrix returns a rows x cols matrix in R x C blocks filled as kind
// says, with values uniform in [-1, 1) and a few exact zeros. With dups, some
// kept blocks are copies of earlier ones (so that Paged can share slots).
func RandomMatrix(rng *rand.Rand, rows, cols, R, C int, density float64, kind Kind, dups bool) *bsr.Matrix {
	d := make([]float32, rows*cols)
	if kind != AllZero {
		for i := range d {
			if rng.IntN(16) == 0 {
				continue
			}
			d[i] = float32(rng.Float64()*2 - 1)
		}
	}
	mask := bsr.NewMask(rows, cols, R, C)
	for i := 0; i < mask.BlockRows; i++ {
		for j := 0; j < mask.BlockCols; j++ {
			var keep bool
			switch kind {
			case AllDense:
				keep = true
			case NoBlocks:
				keep = false
			case EmptyRows:
				keep = i%2 == 1 && rng.Float64() < density
			default:
				keep = rng.Float64() < density
			}
			mask.Set(i, j, keep)
		}
	}
	m, err := bsr.FromDense(d, rows, cols, R, C, mask)
	if err != nil {
		panic(fmt.Sprintf("bsrtest: FromDense %dx%d blocks %dx%d: %v", rows, cols, R, C, err))
	}
	if dups && m.NNZB() > 1 {
		copyDuplicates(rng, m)
	}
	return m
}

// copyDuplicates makes some blocks equal to other blocks of the same
// position class (interior blocks copy interior blocks, so edge padding
// stays zero).
func copyDuplicates(rng *rand.Rand, m *bsr.Matrix) {
	br := m.BlockRows()
	interior := func(i, j int) bool {
		return (i+1)*m.R <= m.Rows && (j+1)*m.C <= m.Cols
	}
	var inner []int
	for i := 0; i < br; i++ {
		for k := m.Indptr[i]; k < m.Indptr[i+1]; k++ {
			if interior(i, int(m.Indices[k])) {
				inner = append(inner, int(k))
			}
		}
	}
	if len(inner) < 2 {
		return
	}
	src := inner[rng.IntN(len(inner))]
	for _, k := range inner {
		if k != src && rng.IntN(3) == 0 {
			copy(m.Block(k), m.Block(src))
		}
	}
}

// Paged returns a view of m whose blocks are scattered in a larger arena:
// the slot stride exceeds R*C, slots are shuffled, identical blocks share a
// slot, and every unused value of the arena is NaN, so that a kernel that
// reads the wrong slot or past a block produces NaN.
func Paged(rng *rand.Rand, m *bsr.Matrix) *bsr.View {
	bs := m.R * m.C
	stride := bs + 1 + rng.IntN(17)
	nnzb := m.NNZB()
	// Distinct block contents get one slot each.
	owner := make([]int, nnzb) // block -> first block with identical contents
	seen := map[string]int{}
	distinct := 0
	for k := 0; k < nnzb; k++ {
		key := blockKey(m.Block(k))
		if f, ok := seen[key]; ok {
			owner[k] = f
			continue
		}
		seen[key] = k
		owner[k] = k
		distinct++
	}
	nslots := distinct + 3 + rng.IntN(5)
	perm := rng.Perm(nslots)
	arena := make([]float32, nslots*stride+rng.IntN(7))
	nan := float32(math.NaN())
	for i := range arena {
		arena[i] = nan
	}
	slots := make([]int32, nnzb)
	next := 0
	for k := 0; k < nnzb; k++ {
		if owner[k] != k {
			slots[k] = slots[owner[k]]
			continue
		}
		s := perm[next]
		next++
		slots[k] = int32(s)
		copy(arena[s*stride:s*stride+bs], m.Block(k))
	}
	return &bsr.View{
		Rows: m.Rows, Cols: m.Cols, R: m.R, C: m.C,
		Indptr: m.Indptr, Indices: m.Indices,
		Arena: arena, Slots: slots, Stride: stride,
	}
}

func blockKey(b []float32) string {
	buf := make([]byte, 4*len(b))
	for i, v := range b {
		u := math.Float32bits(v)
		buf[4*i], buf[4*i+1], buf[4*i+2], buf[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return string(buf)
}

// Guarded returns a buffer of Guard+n+Guard values whose guards hold fill
// and whose middle holds fill too, and the middle slice (length and
// capacity n).
func Guarded(n int, fill float32) (buf, mid []float32) {
	buf = make([]float32, n+2*Guard)
	for i := range buf {
		buf[i] = fill
	}
	return buf, buf[Guard : Guard+n : Guard+n]
}

// RandomSlice returns n values uniform in [-1, 1) inside a NaN-guarded
// buffer (the returned slice has capacity n).
func RandomSlice(rng *rand.Rand, n int) []float32 {
	_, s := Guarded(n, float32(math.NaN()))
	for i := range s {
		s[i] = float32(rng.Float64()*2 - 1)
	}
	return s
}

// CheckGuards reports an error if a guard value of buf differs (bitwise)
// from Sentinel.
func CheckGuards(buf []float32) error {
	want := math.Float32bits(Sentinel)
	for i := 0; i < Guard; i++ {
		if math.Float32bits(buf[i]) != want {
			return fmt.Errorf("guard before output overwritten at offset %d: %g", i-Guard, buf[i])
		}
		j := len(buf) - Guard + i
		if math.Float32bits(buf[j]) != want {
			return fmt.Errorf("guard after output overwritten at offset +%d: %g", i, buf[j])
		}
	}
	return nil
}

// RefMul returns Y = A*X computed in float64 from the dense form of a, with
// y0 added when non-nil, and for each output the sum of the absolute values
// of its terms (the scale of its rounding error).
func RefMul(a *bsr.View, x []float32, n int, y0 []float32) (ref, scale []float64) {
	d := a.ToDense()
	ref = make([]float64, a.Rows*n)
	scale = make([]float64, a.Rows*n)
	for r := 0; r < a.Rows; r++ {
		for c := 0; c < a.Cols; c++ {
			w := float64(d[r*a.Cols+c])
			if w == 0 {
				continue
			}
			for b := 0; b < n; b++ {
				t := w * float64(x[c*n+b])
				ref[r*n+b] += t
				scale[r*n+b] += math.Abs(t)
			}
		}
	}
	if y0 != nil {
		for i := range ref {
			ref[i] += float64(y0[i])
			scale[i] += math.Abs(float64(y0[i]))
		}
	}
	return ref, scale
}

// RefLinear returns Y = X*A^T + bias computed in float64 (X row-major
// n x Cols, Y n x Rows), with y0 added when non-nil, and per-output scales.
func RefLinear(a *bsr.View, x []float32, n int, bias, y0 []float32) (ref, scale []float64) {
	xt := make([]float32, a.Cols*n)
	for b := 0; b < n; b++ {
		for c := 0; c < a.Cols; c++ {
			xt[c*n+b] = x[b*a.Cols+c]
		}
	}
	rm, sm := RefMul(a, xt, n, nil)
	ref = make([]float64, n*a.Rows)
	scale = make([]float64, n*a.Rows)
	for r := 0; r < a.Rows; r++ {
		for b := 0; b < n; b++ {
			v, s := rm[r*n+b], sm[r*n+b]
			if bias != nil {
				v += float64(bias[r])
				s += math.Abs(float64(bias[r]))
			}
			if y0 != nil {
				v += float64(y0[b*a.Rows+r])
				s += math.Abs(float64(y0[b*a.Rows+r]))
			}
			ref[b*a.Rows+r], scale[b*a.Rows+r] = v, s
		}
	}
	return ref, scale
}

// Compare checks got against ref within the rigorous float32 summation
// bound: |got-ref| <= (terms+2)*2^-23*scale, where terms bounds the number of
// summed terms of one output. It returns an error naming the first
// mismatch, its row-major position in a rows x cols output and the values.
func Compare(got []float32, ref, scale []float64, cols, terms int) error {
	u := math.Ldexp(1, -23)
	for i, g := range got {
		gv := float64(g)
		tol := float64(terms+2)*u*scale[i] + 1e-30
		if math.IsNaN(gv) || math.IsInf(gv, 0) || math.Abs(gv-ref[i]) > tol {
			return fmt.Errorf("output [%d, %d] = %g, want %g (tolerance %.3g)", i/cols, i%cols, g, ref[i], tol)
		}
	}
	return nil
}

// BitEqual reports an error naming the first position where a and b differ
// bitwise.
func BitEqual(a, b []float32) error {
	if len(a) != len(b) {
		return fmt.Errorf("lengths %d and %d differ", len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return fmt.Errorf("value %d differs: %g (%#x) vs %g (%#x)", i, a[i], math.Float32bits(a[i]), b[i], math.Float32bits(b[i]))
		}
	}
	return nil
}
