package bench

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"unsafe"

	"github.com/dmsparse/dmsparse/internal/atomicfile"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/profiles"
)

// A monolithic checkpoint file (the mono-dense and mono-sparse baselines)
// holds one task's weights as one blob read whole on a switch: for each
// tensor in layer order, its blocks (bsr.Matrix.Data order, R*C float32
// little-endian values each; a dense checkpoint keeps every block, which
// is the dense tensor's bytes in block order) then its bias, the tensor's
// region padded with zeros to a multiple of 4 KiB and of one block. The
// BSR structure (a few bytes per block) lives in a JSON index beside it,
// FILE.json, read once at startup, like a store's manifest.

// monoAlign is the alignment of every tensor region and of the file size.
const monoAlign = 4096

// MonoIndex describes a monolithic checkpoint file.
type MonoIndex struct {
	// Task names the task.
	Task string `json:"task"`
	// R and C give the block shape.
	R int `json:"r"`
	C int `json:"c"`
	// Size is the file's size in bytes (a multiple of 4 KiB).
	Size int64 `json:"size"`
	// Tensors lists the tensors in file order.
	Tensors []MonoTensor `json:"tensors"`
}

// MonoTensor locates one tensor in a monolithic file.
type MonoTensor struct {
	// Name is the weight's name; Bias its bias's name ("" for none).
	Name string `json:"name"`
	Bias string `json:"bias,omitempty"`
	// Layer is the pipeline layer.
	Layer int `json:"layer"`
	// Rows and Cols give the shape.
	Rows int `json:"rows"`
	Cols int `json:"cols"`
	// Indptr and Indices are the BSR structure.
	Indptr  []int32 `json:"indptr"`
	Indices []int32 `json:"indices"`
	// Offset is the float32 index of the first block; BiasOffset of the
	// bias, BiasLen its length.
	Offset     int64 `json:"offset"`
	BiasOffset int64 `json:"bias_offset"`
	BiasLen    int   `json:"bias_len"`
}

// monoTensorIn is one tensor handed to writeMono.
type monoTensorIn struct {
	name, bias string
	layer      int
	m          *bsr.Matrix
	b          []float32
}

func lcm(a, b int64) int64 {
	g, x := a, b
	for x != 0 {
		g, x = x, g%x
	}
	return a / g * b
}

// writeMono writes the tensors as a monolithic file at path and its index
// at path+".json", both atomically, the index last.
func writeMono(path, task string, R, C int, ts []monoTensorIn) (*MonoIndex, error) {
	region := lcm(monoAlign, int64(R*C*4))
	idx := &MonoIndex{Task: task, R: R, C: C}
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		var off int64 // bytes written
		var buf [4]byte
		put := func(v []float32) error {
			for _, x := range v {
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(x))
				if _, err := w.Write(buf[:]); err != nil {
					return err
				}
			}
			off += int64(len(v)) * 4
			return nil
		}
		for _, t := range ts {
			e := MonoTensor{Name: t.name, Bias: t.bias, Layer: t.layer, Rows: t.m.Rows, Cols: t.m.Cols,
				Indptr: t.m.Indptr, Indices: t.m.Indices, Offset: off / 4}
			if err := put(t.m.Data); err != nil {
				return err
			}
			e.BiasOffset, e.BiasLen = off/4, len(t.b)
			if err := put(t.b); err != nil {
				return err
			}
			if pad := roundUp(off, region) - off; pad > 0 {
				if _, err := w.Write(make([]byte, pad)); err != nil {
					return err
				}
				off += pad
			}
			idx.Tensors = append(idx.Tensors, e)
		}
		idx.Size = off
		return nil
	})
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return nil, fmt.Errorf("writing %s.json: %w", path, err)
	}
	if err := profiles.WriteFileAtomic(path+".json", b, 0o644); err != nil {
		return nil, err
	}
	return idx, nil
}

// loadMonoIndex reads FILE.json and checks it against the file.
func loadMonoIndex(path string) (*MonoIndex, error) {
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		return nil, fmt.Errorf("monolithic checkpoint index: %w", err)
	}
	var idx MonoIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("monolithic checkpoint index %s.json: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("monolithic checkpoint: %w", err)
	}
	if st.Size() != idx.Size || idx.Size%monoAlign != 0 {
		return nil, fmt.Errorf("monolithic checkpoint %s: %d bytes, index says %d (want a multiple of %d)", path, st.Size(), idx.Size, monoAlign)
	}
	for _, t := range idx.Tensors {
		if idx.R < 1 || idx.C < 1 {
			return nil, fmt.Errorf("monolithic checkpoint %s: block shape %dx%d", path, idx.R, idx.C)
		}
		// Structure only: every slot points at one zero block.
		v := bsr.View{Rows: t.Rows, Cols: t.Cols, R: idx.R, C: idx.C, Indptr: t.Indptr, Indices: t.Indices,
			Slots: make([]int32, len(t.Indices)), Stride: idx.R * idx.C, Arena: make([]float32, idx.R*idx.C)}
		if t.Offset%int64(idx.R*idx.C) != 0 || (t.Offset+int64(len(t.Indices)*idx.R*idx.C))*4 > idx.Size ||
			(t.BiasOffset+int64(t.BiasLen))*4 > idx.Size || t.BiasOffset < 0 {
			return nil, fmt.Errorf("monolithic checkpoint %s: tensor %s lies outside the file or off a block boundary", path, t.Name)
		}
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("monolithic checkpoint %s: tensor %s: %w", path, t.Name, err)
		}
	}
	return &idx, nil
}

// monoViews builds the views of a monolithic file read into buf.
func monoViews(idx *MonoIndex, buf []byte) (map[string]*bsr.View, map[string][]float32) {
	arena := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(buf))), len(buf)/4)
	bs := idx.R * idx.C
	views := make(map[string]*bsr.View, len(idx.Tensors))
	biases := make(map[string][]float32, len(idx.Tensors))
	for _, t := range idx.Tensors {
		slots := make([]int32, len(t.Indices))
		first := int32(t.Offset / int64(bs))
		for k := range slots {
			slots[k] = first + int32(k)
		}
		views[t.Name] = &bsr.View{Rows: t.Rows, Cols: t.Cols, R: idx.R, C: idx.C, Indptr: t.Indptr, Indices: t.Indices,
			Arena: arena, Slots: slots, Stride: bs}
		if t.BiasLen > 0 {
			biases[t.Name] = arena[t.BiasOffset : t.BiasOffset+int64(t.BiasLen)]
		}
	}
	return views, biases
}
