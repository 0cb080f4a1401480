package bsr

import (
	"errors"
	"fmt"
)

// ErrStructure is wrapped by every error Validate returns, so callers can
// tell a malformed structure from other failures with errors.Is.
var ErrStructure = errors.New("invalid BSR structure")

// StructureError reports the first structural rule a matrix or view breaks.
type StructureError struct {
	// Rule names the broken rule, e.g. "indices-sorted".
	Rule string
	// Detail says where and what was found against what was expected.
	Detail string
}

// Error implements error.
func (e *StructureError) Error() string {
	return fmt.Sprintf("bsr: %s: rule %s: %s", ErrStructure, e.Rule, e.Detail)
}

// Unwrap lets errors.Is match ErrStructure.
func (e *StructureError) Unwrap() error { return ErrStructure }

func broken(rule, format string, args ...any) error {
	return &StructureError{Rule: rule, Detail: fmt.Sprintf(format, args...)}
}

// Rules checked by Validate, in order:
//
//	shape           Rows, Cols >= 0 and R, C >= 1
//	indptr-length   len(Indptr) == ceil(Rows/R) + 1
//	indptr-start    Indptr[0] == 0
//	indptr-monotone Indptr never decreases
//	indptr-end      Indptr[last] == len(Indices)
//	indices-range   0 <= Indices[k] < ceil(Cols/C)
//	indices-sorted  Indices strictly increase within a block row
//	data-length     len(Data) == len(Indices)*R*C        (Matrix)
//	slots-length    len(Slots) == len(Indices)           (View)
//	stride          Stride >= R*C                        (View)
//	slots-range     the whole slot lies inside Arena     (View)
//	padding         the padding of edge blocks is zero
func validateStructure(rows, cols, R, C int, indptr, indices []int32) error {
	if rows < 0 || cols < 0 || R < 1 || C < 1 {
		return broken("shape", "shape %dx%d with blocks %dx%d: want non-negative shape and block sides >= 1", rows, cols, R, C)
	}
	br, bc := ceilDiv(rows, R), ceilDiv(cols, C)
	if len(indptr) != br+1 {
		return broken("indptr-length", "indptr has %d entries, want block rows + 1 = %d", len(indptr), br+1)
	}
	if indptr[0] != 0 {
		return broken("indptr-start", "indptr[0] = %d, want 0", indptr[0])
	}
	for i := 0; i < br; i++ {
		if indptr[i+1] < indptr[i] {
			return broken("indptr-monotone", "indptr[%d] = %d is below indptr[%d] = %d", i+1, indptr[i+1], i, indptr[i])
		}
	}
	if int(indptr[br]) != len(indices) {
		return broken("indptr-end", "indptr[%d] = %d, want len(indices) = %d", br, indptr[br], len(indices))
	}
	for i := 0; i < br; i++ {
		for k := indptr[i]; k < indptr[i+1]; k++ {
			j := indices[k]
			if j < 0 || int(j) >= bc {
				return broken("indices-range", "block row %d: indices[%d] = %d outside [0, %d)", i, k, j, bc)
			}
			if k > indptr[i] && j <= indices[k-1] {
				return broken("indices-sorted", "block row %d: indices[%d] = %d follows %d; want strictly increasing", i, k, j, indices[k-1])
			}
		}
	}
	return nil
}

// checkPadding verifies that the padding of edge blocks is zero.
func checkPadding(rows, cols, R, C int, indptr, indices []int32, block func(k int) []float32) error {
	br := ceilDiv(rows, R)
	bc := ceilDiv(cols, C)
	padRows := br*R - rows
	padCols := bc*C - cols
	if padRows == 0 && padCols == 0 {
		return nil
	}
	for i := 0; i < br; i++ {
		lastRow := i == br-1
		for k := indptr[i]; k < indptr[i+1]; k++ {
			lastCol := int(indices[k]) == bc-1
			if !(lastRow && padRows > 0) && !(lastCol && padCols > 0) {
				continue
			}
			blk := block(int(k))
			for r := 0; r < R; r++ {
				for c := 0; c < C; c++ {
					inside := i*R+r < rows && int(indices[k])*C+c < cols
					if !inside && blk[r*C+c] != 0 {
						return broken("padding", "block %d at (%d, %d): padding value [%d, %d] = %g, want 0", k, i, indices[k], r, c, blk[r*C+c])
					}
				}
			}
		}
	}
	return nil
}

// Validate checks every structural rule (see the rules above) and returns a
// *StructureError naming the first one broken, or nil.
func (m *Matrix) Validate() error {
	if err := validateStructure(m.Rows, m.Cols, m.R, m.C, m.Indptr, m.Indices); err != nil {
		return err
	}
	if want := len(m.Indices) * m.R * m.C; len(m.Data) != want {
		return broken("data-length", "data has %d values, want nnzb*R*C = %d*%d*%d = %d", len(m.Data), len(m.Indices), m.R, m.C, want)
	}
	return checkPadding(m.Rows, m.Cols, m.R, m.C, m.Indptr, m.Indices, m.Block)
}

// Validate checks every structural rule of a view, including that every slot
// lies inside the arena, and returns a *StructureError naming the first one
// broken, or nil.
func (v *View) Validate() error {
	if err := validateStructure(v.Rows, v.Cols, v.R, v.C, v.Indptr, v.Indices); err != nil {
		return err
	}
	if len(v.Slots) != len(v.Indices) {
		return broken("slots-length", "slots has %d entries, want one per block = %d", len(v.Slots), len(v.Indices))
	}
	if v.Stride < v.R*v.C {
		return broken("stride", "slot stride %d is below the block size R*C = %d", v.Stride, v.R*v.C)
	}
	for k, s := range v.Slots {
		if s < 0 || int64(s)*int64(v.Stride)+int64(v.R*v.C) > int64(len(v.Arena)) {
			return broken("slots-range", "block %d: slot %d (values %d..%d) outside the arena of %d values", k, s, int64(s)*int64(v.Stride), int64(s)*int64(v.Stride)+int64(v.R*v.C), len(v.Arena))
		}
	}
	return checkPadding(v.Rows, v.Cols, v.R, v.C, v.Indptr, v.Indices, v.Block)
}
