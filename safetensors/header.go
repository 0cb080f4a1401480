// Package safetensors reads and writes the safetensors checkpoint format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON header mapping tensor names to dtype, shape and
// data_offsets (plus an optional "__metadata__" string map), then the byte
// buffer every tensor's offsets index into.
//
// The reader memory-maps the file, validates the header strictly (known
// dtypes, non-negative shapes, offsets that match the shape, lie inside the
// buffer, do not overlap and leave no holes, no duplicate keys) and converts
// F32, F16 and BF16 tensors to float32; integer and boolean tensors convert
// to int32, int64 or uint8. The writer writes a temporary file, fsyncs it,
// renames it into place and fsyncs the directory.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// DType names a tensor element type as the safetensors header spells it.
type DType string

// The element types this package knows. Size reports their widths.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U64  DType = "U64"
	U32  DType = "U32"
	U16  DType = "U16"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size returns the width of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// IsFloat reports whether the dtype converts to float32 (F32, F16, BF16, F64).
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 || d == F64 }

// MaxHeaderSize bounds the JSON header length a reader accepts (100 MiB, as
// the reference implementation does).
const MaxHeaderSize = 100 << 20

// ErrFormat is wrapped by every error that reports a malformed file, so
// callers can tell bad input from I/O failures with errors.Is.
var ErrFormat = errors.New("malformed safetensors file")

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	// Name is the tensor's key in the header.
	Name string
	// DType is the element type.
	DType DType
	// Shape lists the dimensions; an empty shape is a scalar.
	Shape []int
	// Begin and End are the tensor's byte range in the data buffer (after
	// the header).
	Begin, End int64
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Header is a parsed and validated safetensors header.
type Header struct {
	// Tensors lists the tensors in data-offset order.
	Tensors []TensorInfo
	// Metadata holds the "__metadata__" string map (nil when absent).
	Metadata map[string]string
	// DataStart is the file offset of the data buffer: 8 + header length.
	DataStart int64
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

type rawEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// ParseHeader parses and validates the header at the start of b, where
// fileSize is the size of the whole file (b may hold only the first 8+N
// bytes). Errors wrap ErrFormat and say what was expected.
func ParseHeader(b []byte, fileSize int64) (*Header, error) {
	if fileSize < 8 || len(b) < 8 {
		return nil, formatErr("file of %d bytes is shorter than the 8-byte header length", fileSize)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderSize {
		return nil, formatErr("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if int64(n) > fileSize-8 {
		return nil, formatErr("header length %d runs past the end of the %d-byte file (truncated?)", n, fileSize)
	}
	if uint64(len(b)-8) < n {
		return nil, formatErr("header length %d but only %d header bytes given", n, len(b)-8)
	}
	js := b[8 : 8+n]
	dataLen := fileSize - 8 - int64(n)
	h := &Header{DataStart: 8 + int64(n)}

	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, formatErr("header JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, formatErr("header JSON must be an object, starts with %v", tok)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, formatErr("header JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, formatErr("header JSON: key %v is not a string", tok)
		}
		if seen[key] {
			return nil, formatErr("header lists %q twice", key)
		}
		seen[key] = true
		if key == "__metadata__" {
			var md map[string]string
			if err := dec.Decode(&md); err != nil {
				return nil, formatErr("__metadata__ must map strings to strings: %v", err)
			}
			h.Metadata = md
			continue
		}
		var e rawEntry
		if err := dec.Decode(&e); err != nil {
			return nil, formatErr("tensor %q: header entry: %v", key, err)
		}
		ti, err := checkEntry(key, e, dataLen)
		if err != nil {
			return nil, err
		}
		h.Tensors = append(h.Tensors, ti)
	}
	if _, err := dec.Token(); err != nil {
		return nil, formatErr("header JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, formatErr("header JSON has trailing content after the object")
	}
	sort.Slice(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var pos int64
	var prev string
	for _, t := range h.Tensors {
		if t.Begin < pos {
			return nil, formatErr("tensor %q bytes [%d, %d) overlap tensor %q ending at %d", t.Name, t.Begin, t.End, prev, pos)
		}
		if t.Begin > pos {
			return nil, formatErr("hole in the data buffer: bytes [%d, %d) before tensor %q belong to no tensor", pos, t.Begin, t.Name)
		}
		pos, prev = t.End, t.Name
	}
	if pos != dataLen {
		return nil, formatErr("tensors cover %d bytes of data but the file holds %d after the header (truncated or trailing bytes)", pos, dataLen)
	}
	return h, nil
}

func checkEntry(name string, e rawEntry, dataLen int64) (TensorInfo, error) {
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return TensorInfo{}, formatErr("tensor %q: header entry needs dtype, shape and data_offsets", name)
	}
	dt := DType(*e.DType)
	if dt.Size() == 0 {
		return TensorInfo{}, formatErr("tensor %q: unknown dtype %q (want one of F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL)", name, *e.DType)
	}
	ti := TensorInfo{Name: name, DType: dt, Shape: make([]int, len(*e.Shape))}
	numel := big{v: 1}
	for i, d := range *e.Shape {
		if d < 0 || d > math.MaxInt32*int64(1<<16) {
			return TensorInfo{}, formatErr("tensor %q: dimension %d is %d, want a non-negative size", name, i, d)
		}
		ti.Shape[i] = int(d)
		numel = numel.mul(d)
	}
	offs := *e.DataOffsets
	if len(offs) != 2 {
		return TensorInfo{}, formatErr("tensor %q: data_offsets has %d entries, want [begin, end]", name, len(offs))
	}
	ti.Begin, ti.End = offs[0], offs[1]
	if ti.Begin < 0 || ti.End < ti.Begin {
		return TensorInfo{}, formatErr("tensor %q: data_offsets [%d, %d] is not a range", name, ti.Begin, ti.End)
	}
	if ti.End > dataLen {
		return TensorInfo{}, formatErr("tensor %q: data_offsets end %d is past the %d-byte data buffer (truncated?)", name, ti.End, dataLen)
	}
	want := numel.mul(int64(dt.Size()))
	if want.overflow || want.v != ti.End-ti.Begin {
		return TensorInfo{}, formatErr("tensor %q: data_offsets [%d, %d] span %d bytes, but %s shape %v needs %s", name, ti.Begin, ti.End, ti.End-ti.Begin, dt, ti.Shape, want)
	}
	return ti, nil
}

// big is an int64 product that remembers overflow.
type big struct {
	v        int64
	overflow bool
}

func (b big) mul(x int64) big {
	if b.overflow {
		return b
	}
	if x != 0 && b.v > math.MaxInt64/x {
		return big{overflow: true}
	}
	return big{v: b.v * x}
}

// String describes the product for error messages.
func (b big) String() string {
	if b.overflow {
		return "more than 2^63 bytes"
	}
	return fmt.Sprintf("%d bytes", b.v)
}
