package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"unsafe"
)

// File is an open, memory-mapped safetensors file. Its methods are safe for
// concurrent use until Close.
type File struct {
	// Path is the file name the File was opened from.
	Path string
	// Header is the validated header.
	Header *Header
	data   []byte // the whole file (mapped or read)
	unmap  func([]byte) error
	byName map[string]int
}

// Open memory-maps path and validates its header. Errors name the file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err) // the *PathError names the file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: stat %s: %w", path, err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors: %s: %w", path, formatErr("file of %d bytes is shorter than the 8-byte header length", size))
	}
	var lenBuf [8]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: read %s: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize || int64(n) > size-8 {
		_, err := ParseHeader(lenBuf[:], size)
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	hb := make([]byte, 8+n)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("safetensors: read header of %s: %w", path, err)
	}
	h, err := ParseHeader(hb, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	data, unmap, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: map %s: %w", path, err)
	}
	sf := &File{Path: path, Header: h, data: data, unmap: unmap, byName: make(map[string]int, len(h.Tensors))}
	for i, t := range h.Tensors {
		sf.byName[t.Name] = i
	}
	return sf, nil
}

// Close unmaps the file. Slices returned by Bytes or Float32View become
// invalid.
func (f *File) Close() error {
	if f.data == nil {
		return nil
	}
	err := f.unmap(f.data)
	f.data = nil
	if err != nil {
		return fmt.Errorf("safetensors: unmap %s: %w", f.Path, err)
	}
	return nil
}

// Metadata returns the "__metadata__" map (nil when absent).
func (f *File) Metadata() map[string]string { return f.Header.Metadata }

// Tensors lists the file's tensors in data-offset order.
func (f *File) Tensors() []TensorInfo { return f.Header.Tensors }

// Info returns the tensor named name.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Header.Tensors[i], true
}

func (f *File) lookup(name string) (TensorInfo, error) {
	t, ok := f.Info(name)
	if !ok {
		return t, fmt.Errorf("safetensors: %s: no tensor %q", f.Path, name)
	}
	return t, nil
}

// Bytes returns the raw little-endian bytes of a tensor (a slice of the
// mapping; do not modify, do not use after Close).
func (f *File) Bytes(name string) ([]byte, TensorInfo, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, t, err
	}
	off := f.Header.DataStart
	return f.data[off+t.Begin : off+t.End : off+t.End], t, nil
}

// Release tells the kernel the tensor's pages are no longer needed, so
// streaming over a large file keeps the resident set small. The data stays
// readable (it is paged in again on access).
func (f *File) Release(name string) {
	t, ok := f.Info(name)
	if !ok || f.data == nil {
		return
	}
	off := f.Header.DataStart
	release(f.data, off+t.Begin, off+t.End)
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Float32View returns a float32 tensor without copying when it is F32 and
// 4-byte aligned in the mapping on a little-endian host; otherwise it
// converts like Float32. The result must not be modified.
func (f *File) Float32View(name string) ([]float32, TensorInfo, error) {
	b, t, err := f.Bytes(name)
	if err != nil {
		return nil, t, err
	}
	if t.DType == F32 && littleEndian && len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4), t, nil
	}
	v, err := ToFloat32(b, t.DType, nil)
	if err != nil {
		return nil, t, fmt.Errorf("safetensors: %s: tensor %q: %w", f.Path, name, err)
	}
	return v, t, nil
}

// Float32Into is Float32View that converts into dst's storage (reused
// when large enough) instead of allocating, for streaming over many
// tensors. The result must not be modified when it is a view of the mapping.
func (f *File) Float32Into(name string, dst []float32) ([]float32, TensorInfo, error) {
	b, t, err := f.Bytes(name)
	if err != nil {
		return nil, t, err
	}
	if t.DType == F32 && littleEndian && len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4), t, nil
	}
	v, err := ToFloat32(b, t.DType, dst[:0])
	if err != nil {
		return nil, t, fmt.Errorf("safetensors: %s: tensor %q: %w", f.Path, name, err)
	}
	return v, t, nil
}

// Float32 returns a new float32 copy of a floating-point tensor (F32, F16,
// BF16 or F64).
func (f *File) Float32(name string) ([]float32, TensorInfo, error) {
	b, t, err := f.Bytes(name)
	if err != nil {
		return nil, t, err
	}
	v, err := ToFloat32(b, t.DType, nil)
	if err != nil {
		return nil, t, fmt.Errorf("safetensors: %s: tensor %q: %w", f.Path, name, err)
	}
	return v, t, nil
}

// Int32 returns an integer tensor (I32, I64, I16, I8, U8, U16, BOOL) as
// int32; values that do not fit are an error.
func (f *File) Int32(name string) ([]int32, TensorInfo, error) {
	v, t, err := f.Int64(name)
	if err != nil {
		return nil, t, err
	}
	out := make([]int32, len(v))
	for i, x := range v {
		if x < math.MinInt32 || x > math.MaxInt32 {
			return nil, t, fmt.Errorf("safetensors: %s: tensor %q: element %d = %d does not fit in int32", f.Path, name, i, x)
		}
		out[i] = int32(x)
	}
	return out, t, nil
}

// Int64 returns an integer or boolean tensor as int64.
func (f *File) Int64(name string) ([]int64, TensorInfo, error) {
	b, t, err := f.Bytes(name)
	if err != nil {
		return nil, t, err
	}
	n := len(b) / max(t.DType.Size(), 1)
	out := make([]int64, n)
	le := binary.LittleEndian
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
	case U64:
		for i := range out {
			u := le.Uint64(b[8*i:])
			if u > math.MaxInt64 {
				return nil, t, fmt.Errorf("safetensors: %s: tensor %q: element %d = %d does not fit in int64", f.Path, name, i, u)
			}
			out[i] = int64(u)
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(b[4*i:])))
		}
	case U32:
		for i := range out {
			out[i] = int64(le.Uint32(b[4*i:]))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(le.Uint16(b[2*i:])))
		}
	case U16:
		for i := range out {
			out[i] = int64(le.Uint16(b[2*i:]))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(b[i]))
		}
	case U8, Bool:
		for i := range out {
			out[i] = int64(b[i])
		}
	default:
		return nil, t, fmt.Errorf("safetensors: %s: tensor %q: dtype %s is not an integer or boolean type", f.Path, name, t.DType)
	}
	return out, t, nil
}

// Uint8 returns a U8 or BOOL tensor (a mask) as bytes; BOOL values other
// than 0 and 1 are an error.
func (f *File) Uint8(name string) ([]uint8, TensorInfo, error) {
	b, t, err := f.Bytes(name)
	if err != nil {
		return nil, t, err
	}
	if t.DType != U8 && t.DType != Bool {
		return nil, t, fmt.Errorf("safetensors: %s: tensor %q: dtype %s, want U8 or BOOL", f.Path, name, t.DType)
	}
	if t.DType == Bool {
		for i, x := range b {
			if x > 1 {
				return nil, t, fmt.Errorf("safetensors: %s: tensor %q: BOOL element %d = %d, want 0 or 1", f.Path, name, i, x)
			}
		}
	}
	return append([]uint8(nil), b...), t, nil
}

// ErrDType is wrapped by conversion errors for element types that do not
// convert to the requested type.
var ErrDType = errors.New("unsupported dtype for conversion")

// ToFloat32 converts little-endian raw bytes of a floating-point dtype to
// float32, appending to dst (which may be nil).
func ToFloat32(b []byte, dt DType, dst []float32) ([]float32, error) {
	sz := dt.Size()
	if !dt.IsFloat() {
		return nil, fmt.Errorf("%w: %s to float32 (want F32, F16, BF16 or F64)", ErrDType, dt)
	}
	if len(b)%sz != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of %s elements", ErrFormat, len(b), dt)
	}
	n := len(b) / sz
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	out := dst[start:]
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = HalfToFloat32(le.Uint16(b[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(le.Uint16(b[2*i:])) << 16)
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	}
	return dst, nil
}

// HalfToFloat32 converts IEEE 754 binary16 bits to float32 exactly
// (subnormals, infinities and NaN included).
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToHalf converts a float32 to IEEE 754 binary16 bits, rounding to
// nearest even; out-of-range values become infinities.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

// Float32ToBF16 converts a float32 to bfloat16 bits, rounding to nearest
// even (NaN stays NaN).
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
