// Package align computes per-task block importance, the independent
// (per-task top-k) masks that serve as the baseline, cross-task aligned masks
// under a quality bound, block version choices for fine-tunes of a base, the
// per-task quality figures, and the I/O-aware order of block versions in a
// store.
//
// Blocks of a Rows x Cols tensor cut into R x C tiles are numbered row-major
// over the BlockRows x BlockCols grid (block (i, j) is index i*BlockCols+j),
// matching bsr.Mask.
//
// The bound: for every task and tensor, the aligned mask retains at least
// (1 - eps) of the importance that the task's own top-k mask (independent
// pruning at the same density) retains.
package align

import (
	"fmt"
	"math"
	"sort"
)

// Grid describes how a Rows x Cols tensor is cut into R x C blocks.
type Grid struct {
	// Rows and Cols give the tensor shape.
	Rows, Cols int
	// R and C give the block shape.
	R, C int
}

// BlockRows returns ceil(Rows/R).
func (g Grid) BlockRows() int { return (g.Rows + g.R - 1) / g.R }

// BlockCols returns ceil(Cols/C).
func (g Grid) BlockCols() int { return (g.Cols + g.C - 1) / g.C }

// NumBlocks returns BlockRows*BlockCols.
func (g Grid) NumBlocks() int { return g.BlockRows() * g.BlockCols() }

func (g Grid) check(n int, what string) error {
	if g.Rows < 1 || g.Cols < 1 || g.R < 1 || g.C < 1 {
		return fmt.Errorf("align: %s: grid %dx%d in %dx%d blocks: want positive sizes", what, g.Rows, g.Cols, g.R, g.C)
	}
	if n != g.Rows*g.Cols {
		return fmt.Errorf("align: %s has %d values, want %d*%d = %d", what, n, g.Rows, g.Cols, g.Rows*g.Cols)
	}
	return nil
}

// blockWalk calls f(block, row, colStart, colEnd) for every row segment of
// every block.
func (g Grid) blockWalk(f func(b, r, c0, c1 int)) {
	bc := g.BlockCols()
	for r := 0; r < g.Rows; r++ {
		i := r / g.R
		for j := 0; j < bc; j++ {
			f(i*bc+j, r, j*g.C, min(j*g.C+g.C, g.Cols))
		}
	}
}

// Importance returns the importance of every block of the row-major tensor
// w. Without calibration statistics (act nil) it is the squared Frobenius
// norm of the block; with act (the mean squared input activation per input
// feature, len Cols) it is the Wanda-style sum over the block of
// |W_ij| * sqrt(act_j).
func Importance(w []float32, g Grid, act []float32) ([]float64, error) {
	if err := g.check(len(w), "weight"); err != nil {
		return nil, err
	}
	s := make([]float64, g.NumBlocks())
	if act == nil {
		g.blockWalk(func(b, r, c0, c1 int) {
			var acc float64
			for _, v := range w[r*g.Cols+c0 : r*g.Cols+c1] {
				acc += float64(v) * float64(v)
			}
			s[b] += acc
		})
		return s, nil
	}
	if len(act) != g.Cols {
		return nil, fmt.Errorf("align: activation statistics have %d entries, want in_features = %d", len(act), g.Cols)
	}
	sq := make([]float64, len(act))
	for j, a := range act {
		if a < 0 || math.IsNaN(float64(a)) || math.IsInf(float64(a), 0) {
			return nil, fmt.Errorf("align: activation statistic %d is %g, want a finite non-negative mean square", j, a)
		}
		sq[j] = math.Sqrt(float64(a))
	}
	g.blockWalk(func(b, r, c0, c1 int) {
		var acc float64
		row := w[r*g.Cols:]
		for c := c0; c < c1; c++ {
			acc += math.Abs(float64(row[c])) * sq[c]
		}
		s[b] += acc
	})
	return s, nil
}

// Energy returns, for every block, sum over the block of d_ij^2 * act_j
// (act nil: weight 1), where d = a - b (b nil: d = a). With act nil this is
// the squared Frobenius norm of the block (difference).
func Energy(a, b []float32, g Grid, act []float32) ([]float64, error) {
	if err := g.check(len(a), "weight"); err != nil {
		return nil, err
	}
	if b != nil && len(b) != len(a) {
		return nil, fmt.Errorf("align: base has %d values, want %d", len(b), len(a))
	}
	if act != nil && len(act) != g.Cols {
		return nil, fmt.Errorf("align: activation statistics have %d entries, want in_features = %d", len(act), g.Cols)
	}
	s := make([]float64, g.NumBlocks())
	g.blockWalk(func(blk, r, c0, c1 int) {
		var acc float64
		for c := c0; c < c1; c++ {
			d := float64(a[r*g.Cols+c])
			if b != nil {
				d -= float64(b[r*g.Cols+c])
			}
			if act != nil {
				acc += d * d * float64(act[c])
			} else {
				acc += d * d
			}
		}
		s[blk] += acc
	})
	return s, nil
}

// KeepCount returns the number of blocks a mask keeps at density d out of n
// blocks: round(d*n), at least 1. It fails unless 0 < d <= 1.
func KeepCount(n int, d float64) (int, error) {
	if !(d > 0 && d <= 1) {
		return 0, fmt.Errorf("align: density %g outside (0, 1]", d)
	}
	k := int(math.Round(d * float64(n)))
	return max(1, min(k, n)), nil
}

// TopK returns the mask keeping the k highest-scoring blocks (ties go to the
// lower index).
func TopK(scores []float64, k int) []bool {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	m := make([]bool, len(scores))
	for _, i := range idx[:min(k, len(idx))] {
		m[i] = true
	}
	return m
}

// Retained returns the sum of the scores of the kept blocks.
func Retained(scores []float64, mask []bool) float64 {
	var s float64
	for i, k := range mask {
		if k {
			s += scores[i]
		}
	}
	return s
}

// Overlap returns the number of blocks both masks keep.
func Overlap(a, b []bool) int {
	n := 0
	for i := range a {
		if a[i] && b[i] {
			n++
		}
	}
	return n
}

// Count returns the number of kept blocks.
func Count(m []bool) int {
	n := 0
	for _, k := range m {
		if k {
			n++
		}
	}
	return n
}

// PairShare accumulates the blocks two tasks keep in common and the blocks
// they keep, over every pair of tasks: Common/Kept is the mean pairwise share
// of kept blocks in common (|A∩B| / ((|A|+|B|)/2), pooled over pairs and
// tensors).
type PairShare struct {
	// Common sums |A∩B| over pairs; Kept sums (|A|+|B|)/2.
	Common, Kept float64
}

// Add accumulates every pair of masks of one tensor.
func (p *PairShare) Add(masks [][]bool) {
	for a := range masks {
		ca := Count(masks[a])
		for b := a + 1; b < len(masks); b++ {
			p.Common += float64(Overlap(masks[a], masks[b]))
			p.Kept += float64(ca+Count(masks[b])) / 2
		}
	}
}

// Share returns Common/Kept (1 when nothing was added).
func (p PairShare) Share() float64 {
	if p.Kept == 0 {
		return 1
	}
	return p.Common / p.Kept
}
