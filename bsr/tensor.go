package bsr

import (
	"fmt"

	"gorgonia.org/tensor"
)

// FromTensor converts a 2-D float32 gorgonia Dense into a Matrix of R x C
// blocks, keeping the blocks mask keeps (nil keeps every non-zero block).
func FromTensor(t *tensor.Dense, R, C int, mask *Mask) (*Matrix, error) {
	d, rows, cols, err := denseOf(t)
	if err != nil {
		return nil, err
	}
	return FromDense(d, rows, cols, R, C, mask)
}

// FromTensorThreshold converts a 2-D float32 gorgonia Dense, keeping the
// blocks whose Frobenius norm exceeds threshold.
func FromTensorThreshold(t *tensor.Dense, R, C int, threshold float64) (*Matrix, error) {
	d, rows, cols, err := denseOf(t)
	if err != nil {
		return nil, err
	}
	return FromDenseThreshold(d, rows, cols, R, C, threshold)
}

func denseOf(t *tensor.Dense) ([]float32, int, int, error) {
	if t == nil {
		return nil, 0, 0, fmt.Errorf("bsr: nil tensor")
	}
	if t.Dtype() != tensor.Float32 {
		return nil, 0, 0, fmt.Errorf("bsr: tensor dtype %v, want float32", t.Dtype())
	}
	shape := t.Shape()
	if len(shape) != 2 {
		return nil, 0, 0, fmt.Errorf("bsr: tensor shape %v, want 2-D", shape)
	}
	if !t.IsNativelyAccessible() || t.RequiresIterator() {
		t = t.Materialize().(*tensor.Dense)
	}
	d, ok := t.Data().([]float32)
	if !ok {
		return nil, 0, 0, fmt.Errorf("bsr: tensor data is %T, want []float32", t.Data())
	}
	return d, shape[0], shape[1], nil
}

// ToTensor returns the matrix as a dense 2-D float32 gorgonia tensor.
func (m *Matrix) ToTensor() *tensor.Dense {
	return tensor.New(tensor.WithShape(m.Rows, m.Cols), tensor.WithBacking(m.ToDense()))
}
