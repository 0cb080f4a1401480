package pack

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/diffload"
	"github.com/dmsparse/dmsparse/safetensors"
)

// OpenReport opens a store and decodes its report.
func OpenReport(path string) (*diffload.Store, *Report, error) {
	st, err := diffload.OpenStore(path)
	if err != nil {
		return nil, nil, fmt.Errorf("pack: %w", err)
	}
	js, ok := st.Manifest().Meta[MetaKey]
	if !ok {
		st.Close()
		return nil, nil, fmt.Errorf("pack: store %s has no %q report (not written by dmbench pack?)", path, MetaKey)
	}
	rep, err := DecodeReport(js)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("pack: store %s: %w", path, err)
	}
	return st, rep, nil
}

func taskOf(st *diffload.Store, rep *Report, task string) (*TaskQuality, error) {
	i := rep.TaskIndex(task)
	if i < 0 {
		return nil, fmt.Errorf("pack: store %s has no task %q (tasks: %v)", st.Path(), task, rep.Tasks)
	}
	return &rep.Quality[i], nil
}

// denseOut converts values back to the tensor's input dtype for integer
// and boolean tensors; floating-point tensors are written as F32.
func denseOut(e TensorEntry, v []float32) safetensors.Tensor {
	dt := safetensors.DType(e.DType)
	if dt.IsFloat() || dt.Size() == 0 {
		return safetensors.FromFloat32(e.Name, safetensors.F32, e.Shape, v)
	}
	b := make([]byte, dt.Size()*len(v))
	for i, x := range v {
		n := int64(math.Round(float64(x)))
		switch dt.Size() {
		case 8:
			binary.LittleEndian.PutUint64(b[8*i:], uint64(n))
		case 4:
			binary.LittleEndian.PutUint32(b[4*i:], uint32(n))
		case 2:
			binary.LittleEndian.PutUint16(b[2*i:], uint16(n))
		default:
			b[i] = byte(n)
		}
	}
	return safetensors.Tensor{Name: e.Name, DType: dt, Shape: append([]int(nil), e.Shape...), Data: b}
}

// ExportDense writes a task's deployed weights to out as a safetensors file
// with the same tensor names and shapes as the task's input checkpoint
// (floating-point tensors as F32, integer and boolean tensors in their input
// dtype), so any tool can evaluate them.
func ExportDense(store, task, out string) error {
	return exportTask(store, task, out,
		func(*Report) map[string]string {
			return map[string]string{"format": "pt", "dmsparse.task": task, "dmsparse.store": store}
		},
		func(e *TensorEntry, m *bsr.Matrix, _ map[string]string) []safetensors.Tensor {
			return []safetensors.Tensor{safetensors.FromFloat32(e.Name, safetensors.F32, e.Shape, m.ToDense())}
		})
}

// ExportBSR writes a task's blocked tensors in BSR form: NAME.bsr_values
// [nnzb, R, C] (F32), NAME.bsr_col_indices [nnzb] and NAME.bsr_crow_indices
// [block rows + 1] (I32), with the true shape in the metadata under
// "NAME.shape" (a JSON list) and the block shape under "block_size". Dense
// tensors are written whole under their own names. Edge blocks of shapes R
// or C do not divide are zero-padded: load them with the padded shape and
// crop.
func ExportBSR(store, task, out string) error {
	return exportTask(store, task, out,
		func(rep *Report) map[string]string {
			return map[string]string{"format": "dmsparse-bsr", "dmsparse.task": task,
				"block_size": fmt.Sprintf("[%d, %d]", rep.R, rep.C)}
		},
		func(e *TensorEntry, m *bsr.Matrix, md map[string]string) []safetensors.Tensor {
			shape, _ := json.Marshal(e.Shape)
			md[e.Name+".shape"] = string(shape)
			return []safetensors.Tensor{
				safetensors.FromFloat32(e.Name+".bsr_values", safetensors.F32, []int{m.NNZB(), m.R, m.C}, m.Data),
				safetensors.FromInt32(e.Name+".bsr_col_indices", []int{len(m.Indices)}, m.Indices),
				safetensors.FromInt32(e.Name+".bsr_crow_indices", []int{len(m.Indptr)}, m.Indptr),
			}
		})
}

// exportTask writes task's tensors from store to out: dense tensors whole
// under their names, blocked tensors as blocked returns them (it may add
// metadata), with the metadata meta builds from the store's report.
func exportTask(store, task, out string, meta func(*Report) map[string]string,
	blocked func(e *TensorEntry, m *bsr.Matrix, md map[string]string) []safetensors.Tensor) error {
	st, rep, err := OpenReport(store)
	if err != nil {
		return err
	}
	defer st.Close()
	q, err := taskOf(st, rep, task)
	if err != nil {
		return err
	}
	md := meta(rep)
	var ts []safetensors.Tensor
	for i := range q.Tensors {
		e := &q.Tensors[i]
		if e.Kind == KindDense {
			v, _, err := st.DenseTensor(task, e.Name)
			if err != nil {
				return fmt.Errorf("pack: export: %w", err)
			}
			ts = append(ts, denseOut(*e, v))
			continue
		}
		m, err := st.TaskTensor(task, e.Name)
		if err != nil {
			return fmt.Errorf("pack: export: %w", err)
		}
		ts = append(ts, blocked(e, m, md)...)
	}
	if err := safetensors.WriteFile(out, ts, md); err != nil {
		return fmt.Errorf("pack: export task %q: %w", task, err)
	}
	return nil
}

// WriteMasks writes the masks of a Run made with keepMasks to a safetensors
// file: one U8 tensor "TASK/NAME" of shape [block rows, block cols] per task
// and blocked tensor (1 = keep), with the block shape, density, eps and
// method in the metadata.
func WriteMasks(path string, res *Result) error {
	rep := res.Report
	if res.Masks == nil {
		return fmt.Errorf("pack: write masks %s: the run kept no masks", path)
	}
	var ts []safetensors.Tensor
	for t, name := range rep.Tasks {
		for tensor, m := range res.Masks[t] {
			g := res.Grids[tensor]
			b := make([]uint8, len(m))
			for i, k := range m {
				if k {
					b[i] = 1
				}
			}
			ts = append(ts, safetensors.FromUint8(name+"/"+tensor, []int{g.BlockRows(), g.BlockCols()}, b))
		}
	}
	md := map[string]string{
		"format":      "dmsparse-masks",
		"block_size":  fmt.Sprintf("[%d, %d]", rep.R, rep.C),
		"density":     fmt.Sprint(rep.Density),
		"eps":         fmt.Sprint(rep.Eps),
		"method":      rep.Method,
		"share":       fmt.Sprintf("%.4f", rep.Share),
		"indep_share": fmt.Sprintf("%.4f", rep.IndepShare),
	}
	if err := safetensors.WriteFile(path, ts, md); err != nil {
		return fmt.Errorf("pack: write masks: %w", err)
	}
	return nil
}
