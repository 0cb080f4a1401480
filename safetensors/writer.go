package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/dmsparse/dmsparse/internal/atomicfile"
)

// Tensor is one tensor to write: its raw little-endian bytes with dtype and
// shape.
type Tensor struct {
	// Name is the tensor's key; it must be unique and not "__metadata__".
	Name string
	// DType is the element type.
	DType DType
	// Shape lists the dimensions.
	Shape []int
	// Data holds NumElements * DType.Size() bytes.
	Data []byte
}

// FromFloat32 builds a tensor of dtype dt (F32, F16 or BF16) from float32
// values, rounding to nearest even for the 16-bit types.
func FromFloat32(name string, dt DType, shape []int, v []float32) Tensor {
	var b []byte
	switch dt {
	case F16, BF16:
		b = make([]byte, 2*len(v))
		for i, x := range v {
			var h uint16
			if dt == F16 {
				h = Float32ToHalf(x)
			} else {
				h = Float32ToBF16(x)
			}
			binary.LittleEndian.PutUint16(b[2*i:], h)
		}
	default:
		dt = F32
		b = make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
	}
	return Tensor{Name: name, DType: dt, Shape: append([]int(nil), shape...), Data: b}
}

// FromInt32 builds an I32 tensor.
func FromInt32(name string, shape []int, v []int32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return Tensor{Name: name, DType: I32, Shape: append([]int(nil), shape...), Data: b}
}

// FromUint8 builds a U8 tensor (use DType Bool on the result for a BOOL
// tensor of 0/1 values).
func FromUint8(name string, shape []int, v []uint8) Tensor {
	return Tensor{Name: name, DType: U8, Shape: append([]int(nil), shape...), Data: append([]byte(nil), v...)}
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Encode writes tensors (in name order) and metadata in safetensors format
// to w. The header is padded with spaces to a multiple of 8 bytes so F32 and
// F64 data stay aligned.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	ts := append([]Tensor(nil), tensors...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	hdr := make(map[string]any, len(ts)+1)
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for i, t := range ts {
		if t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: tensor name %q is reserved", t.Name)
		}
		if i > 0 && ts[i-1].Name == t.Name {
			return fmt.Errorf("safetensors: tensor %q given twice", t.Name)
		}
		if t.DType.Size() == 0 {
			return fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		n := int64(t.DType.Size())
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			n *= int64(d)
		}
		if n != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: tensor %q: %d data bytes, want %d for %s shape %v", t.Name, len(t.Data), n, t.DType, t.Shape)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("safetensors: encode header: %w", err)
	}
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, bytes.Repeat([]byte(" "), pad)...)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("safetensors: write header length: %w", err)
	}
	if _, err := w.Write(js); err != nil {
		return fmt.Errorf("safetensors: write header: %w", err)
	}
	for _, t := range ts {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// WriteFile writes tensors and metadata to path atomically (see
// AtomicWrite).
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	return AtomicWrite(path, func(w io.Writer) error { return Encode(w, tensors, metadata) })
}

// AtomicWrite calls write with a buffered writer on a temporary file in
// path's directory, then fsyncs it, renames it to path and fsyncs the
// directory: path ends up complete or untouched.
func AtomicWrite(path string, write func(w io.Writer) error) error {
	return atomicfile.Write(path, 0o644, write)
}
