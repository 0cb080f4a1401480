// Package storegen writes small synthetic task families into a block store
// for the C ABI examples and tests: a few tasks whose masks share most
// blocks (as aligned DM-Sparse masks do), whose shared blocks have the same
// values (so they are stored once) and whose task-specific blocks differ,
// with shapes that the block size does not divide and a bias per layer.
package storegen

import (
	"fmt"
	"math/rand/v2"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/diffload"
)

// Spec describes the family to write.
type Spec struct {
	// Tasks names the tasks; at least one.
	Tasks []string
	// Shapes gives each layer's weight shape as rows x cols (out x in).
	Shapes [][2]int
	// R and C give the block shape.
	R, C int
	// Density is the share of blocks the common mask keeps, in (0, 1].
	Density float64
	// Own is the share of each task's blocks that it replaces with a
	// task-specific block version (a fine-tuned value or a moved block).
	Own float64
	// Seed makes the family reproducible.
	Seed uint64
}

// Default returns the family the C example uses: three tasks, three
// layers with edge tiles, 32 x 32 blocks at half density.
func Default() Spec {
	return Spec{
		Tasks:   []string{"traffic_lights", "vehicles", "obstacles"},
		Shapes:  [][2]int{{200, 150}, {96, 200}, {10, 96}},
		R:       32,
		C:       32,
		Density: 0.5,
		Own:     0.25,
		Seed:    1,
	}
}

// TensorName and BiasName name layer l's weight and bias.
func TensorName(l int) string { return fmt.Sprintf("layer%d.weight", l) }

// BiasName names layer l's bias dense tensor.
func BiasName(l int) string { return fmt.Sprintf("layer%d.bias", l) }

// Family is what Write stored, for checking reads against.
type Family struct {
	// Weights maps task, then tensor name, to the stored matrix.
	Weights map[string]map[string]*bsr.Matrix
	// Biases maps task, then dense name, to the stored values.
	Biases map[string]map[string][]float32
	// Versions is the number of distinct block versions stored.
	Versions int
}

// Write writes the family of spec to path (atomically) and returns it.
func Write(path string, spec Spec) (*Family, error) {
	if len(spec.Tasks) == 0 || len(spec.Shapes) == 0 {
		return nil, fmt.Errorf("storegen %s: %d tasks and %d layers, want at least one of each", path, len(spec.Tasks), len(spec.Shapes))
	}
	if spec.R < 1 || spec.C < 1 || spec.Density <= 0 || spec.Density > 1 || spec.Own < 0 || spec.Own > 1 {
		return nil, fmt.Errorf("storegen %s: block %dx%d density %v own %v: want positive blocks, density in (0,1], own in [0,1]",
			path, spec.R, spec.C, spec.Density, spec.Own)
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	w, err := diffload.CreateStore(path, diffload.WriterOptions{R: spec.R, C: spec.C})
	if err != nil {
		return nil, fmt.Errorf("storegen: %w", err)
	}
	fam := &Family{Weights: map[string]map[string]*bsr.Matrix{}, Biases: map[string]map[string][]float32{}}
	for _, t := range spec.Tasks {
		fam.Weights[t] = map[string]*bsr.Matrix{}
		fam.Biases[t] = map[string][]float32{}
	}
	bs := spec.R * spec.C
	newBlock := func(rows, cols, bi, bj int) []float32 {
		b := make([]float32, bs)
		for y := 0; y < spec.R; y++ {
			for x := 0; x < spec.C; x++ {
				if bi*spec.R+y < rows && bj*spec.C+x < cols {
					b[y*spec.C+x] = float32(rng.NormFloat64() * 0.1)
				}
			}
		}
		return b
	}
	tasks := make([]diffload.TaskSpec, len(spec.Tasks))
	for i, t := range spec.Tasks {
		tasks[i].Name = t
	}
	for l, shape := range spec.Shapes {
		rows, cols := shape[0], shape[1]
		br, bc := (rows+spec.R-1)/spec.R, (cols+spec.C-1)/spec.C
		// Common mask and its shared versions, added first so that
		// the blocks every task uses lie together on disk.
		common := make([]bool, br*bc)
		shared := make([]uint32, br*bc)
		sharedVals := make([][]float32, br*bc)
		for k := range common {
			if rng.Float64() < spec.Density {
				common[k] = true
				sharedVals[k] = newBlock(rows, cols, k/bc, k%bc)
				if shared[k], err = w.AddVersion(sharedVals[k]); err != nil {
					w.Abort()
					return nil, fmt.Errorf("storegen %s layer %d: %w", path, l, err)
				}
			}
		}
		for i, t := range spec.Tasks {
			m := &bsr.Matrix{Rows: rows, Cols: cols, R: spec.R, C: spec.C, Indptr: make([]int32, br+1)}
			var versions []uint32
			for bi := 0; bi < br; bi++ {
				for bj := 0; bj < bc; bj++ {
					k := bi*bc + bj
					keep, own := common[k], false
					if rng.Float64() < spec.Own {
						// Task-specific: a fine-tuned shared block or a
						// block moved in or out of the mask.
						if keep && rng.IntN(3) == 0 {
							keep = false
						} else {
							keep, own = true, true
						}
					}
					if !keep {
						continue
					}
					vals, id := sharedVals[k], shared[k]
					if own || !common[k] {
						vals = newBlock(rows, cols, bi, bj)
						if id, err = w.AddVersion(vals); err != nil {
							w.Abort()
							return nil, fmt.Errorf("storegen %s task %s layer %d: %w", path, t, l, err)
						}
					}
					m.Indices = append(m.Indices, int32(bj))
					m.Data = append(m.Data, vals...)
					versions = append(versions, id)
				}
				m.Indptr[bi+1] = int32(len(m.Indices))
			}
			bias := make([]float32, rows)
			for r := range bias {
				bias[r] = float32(rng.NormFloat64())
			}
			blob, err := w.AddDense(bias)
			if err != nil {
				w.Abort()
				return nil, fmt.Errorf("storegen %s task %s bias %d: %w", path, t, l, err)
			}
			tasks[i].Tensors = append(tasks[i].Tensors, diffload.TensorSpec{
				Name: TensorName(l), Rows: rows, Cols: cols, Layer: l,
				Indptr: m.Indptr, Indices: m.Indices, Versions: versions,
			})
			tasks[i].Dense = append(tasks[i].Dense, diffload.DenseSpec{Name: BiasName(l), Shape: []int{rows}, Blob: blob})
			fam.Weights[t][TensorName(l)] = m
			fam.Biases[t][BiasName(l)] = bias
		}
	}
	for _, ts := range tasks {
		if err := w.AddTask(ts); err != nil {
			w.Abort()
			return nil, fmt.Errorf("storegen: %w", err)
		}
	}
	fam.Versions = w.NumVersions()
	w.SetMeta("generator", []byte("examples/c/storegen"))
	if err := w.Commit(); err != nil {
		return nil, fmt.Errorf("storegen: %w", err)
	}
	return fam, nil
}
