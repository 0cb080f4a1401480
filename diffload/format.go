package diffload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"unsafe"

	"github.com/dmsparse/dmsparse/bsr"
)

// Format constants. docs/FORMAT.md describes the layout byte by byte.
const (
	// FormatVersion is the store format version this package writes and reads.
	FormatVersion = 1
	// HeaderSize is the number of meaningful bytes at the start of the file;
	// the rest of the first alignment unit is zero.
	HeaderSize = 64
	// FooterSize is the size of the footer at the end of the file.
	FooterSize = 64
	// MinAlignment is the smallest alignment the writer uses.
	MinAlignment = 4096
	// MaxAlignment bounds the alignment a store may declare.
	MaxAlignment = 1 << 20
	// maxName bounds task, tensor, dense and meta key names in bytes.
	maxName = 1 << 12
)

var (
	headerMagic = [8]byte{'D', 'M', 'S', 'P', 'A', 'R', 'S', 'E'}
	footerMagic = [8]byte{'D', 'M', 'S', 'F', 'O', 'O', 'T', 0}
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

// ErrCorrupt is wrapped by every error that reports a store file that is
// truncated, foreign, inconsistent or fails a checksum.
var ErrCorrupt = errors.New("corrupt store")

// dtype codes in the header.
const dtypeF32 = 1

func dtypeCode(s string) (uint32, error) {
	switch s {
	case "", "f32", "float32":
		return dtypeF32, nil
	}
	return 0, fmt.Errorf("unsupported dtype %q, want \"f32\"", s)
}

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// header is the decoded fixed header.
type header struct {
	dtype      uint32
	R, C       uint32
	alignment  uint32
	dataOffset uint64
	slotBytes  uint64
}

func (h *header) encode() []byte {
	b := make([]byte, HeaderSize)
	copy(b, headerMagic[:])
	le := binary.LittleEndian
	le.PutUint32(b[8:], FormatVersion)
	le.PutUint32(b[12:], h.dtype)
	le.PutUint32(b[16:], h.R)
	le.PutUint32(b[20:], h.C)
	le.PutUint32(b[24:], h.alignment)
	le.PutUint64(b[32:], h.dataOffset)
	le.PutUint64(b[40:], h.slotBytes)
	le.PutUint32(b[60:], crc(b[:60]))
	return b
}

func decodeHeader(b []byte) (*header, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("header: %d bytes, want %d: %w", len(b), HeaderSize, ErrCorrupt)
	}
	if [8]byte(b[:8]) != headerMagic {
		return nil, fmt.Errorf("header: magic %q, want %q (not a dmsparse store): %w", b[:8], headerMagic[:], ErrCorrupt)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != FormatVersion {
		return nil, fmt.Errorf("header: format version %d, want %d: %w", v, FormatVersion, ErrCorrupt)
	}
	if got, want := le.Uint32(b[60:]), crc(b[:60]); got != want {
		return nil, fmt.Errorf("header: CRC-32C %08x, computed %08x: %w", got, want, ErrCorrupt)
	}
	h := &header{
		dtype: le.Uint32(b[12:]), R: le.Uint32(b[16:]), C: le.Uint32(b[20:]),
		alignment: le.Uint32(b[24:]), dataOffset: le.Uint64(b[32:]), slotBytes: le.Uint64(b[40:]),
	}
	if h.dtype != dtypeF32 {
		return nil, fmt.Errorf("header: dtype code %d, want %d (f32): %w", h.dtype, dtypeF32, ErrCorrupt)
	}
	if h.R < 1 || h.C < 1 || h.R > 4096 || h.C > 4096 {
		return nil, fmt.Errorf("header: block shape %dx%d, want sides in [1, 4096]: %w", h.R, h.C, ErrCorrupt)
	}
	a := h.alignment
	if a < 512 || a > MaxAlignment || a&(a-1) != 0 {
		return nil, fmt.Errorf("header: alignment %d, want a power of two in [512, %d]: %w", a, MaxAlignment, ErrCorrupt)
	}
	if h.dataOffset != uint64(a) {
		return nil, fmt.Errorf("header: data offset %d, want the alignment %d: %w", h.dataOffset, a, ErrCorrupt)
	}
	if want := roundUp(uint64(h.R)*uint64(h.C)*4, uint64(a)); h.slotBytes != want {
		return nil, fmt.Errorf("header: slot size %d, want block bytes rounded to the alignment = %d: %w", h.slotBytes, want, ErrCorrupt)
	}
	for i := 28; i < 32; i++ {
		if b[i] != 0 {
			return nil, fmt.Errorf("header: reserved byte %d is %#x, want 0: %w", i, b[i], ErrCorrupt)
		}
	}
	for i := 48; i < 60; i++ {
		if b[i] != 0 {
			return nil, fmt.Errorf("header: reserved byte %d is %#x, want 0: %w", i, b[i], ErrCorrupt)
		}
	}
	return h, nil
}

// footer is the decoded fixed footer.
type footer struct {
	numVersions    uint64
	denseOffset    uint64
	denseBytes     uint64
	manifestOffset uint64
	manifestBytes  uint64
	manifestCRC    uint32
}

func (f *footer) encode() []byte {
	b := make([]byte, FooterSize)
	copy(b, footerMagic[:])
	le := binary.LittleEndian
	le.PutUint64(b[8:], f.numVersions)
	le.PutUint64(b[16:], f.denseOffset)
	le.PutUint64(b[24:], f.denseBytes)
	le.PutUint64(b[32:], f.manifestOffset)
	le.PutUint64(b[40:], f.manifestBytes)
	le.PutUint32(b[48:], f.manifestCRC)
	le.PutUint32(b[52:], FormatVersion)
	le.PutUint32(b[60:], crc(b[:60]))
	return b
}

func decodeFooter(b []byte) (*footer, error) {
	if [8]byte(b[:8]) != footerMagic {
		return nil, fmt.Errorf("footer: magic %q, want %q (truncated or not a dmsparse store): %w", b[:8], footerMagic[:], ErrCorrupt)
	}
	le := binary.LittleEndian
	if got, want := le.Uint32(b[60:]), crc(b[:60]); got != want {
		return nil, fmt.Errorf("footer: CRC-32C %08x, computed %08x: %w", got, want, ErrCorrupt)
	}
	if v := le.Uint32(b[52:]); v != FormatVersion {
		return nil, fmt.Errorf("footer: format version %d, want %d: %w", v, FormatVersion, ErrCorrupt)
	}
	if le.Uint32(b[56:]) != 0 {
		return nil, fmt.Errorf("footer: reserved word is %#x, want 0: %w", le.Uint32(b[56:]), ErrCorrupt)
	}
	return &footer{
		numVersions: le.Uint64(b[8:]), denseOffset: le.Uint64(b[16:]), denseBytes: le.Uint64(b[24:]),
		manifestOffset: le.Uint64(b[32:]), manifestBytes: le.Uint64(b[40:]), manifestCRC: le.Uint32(b[48:]),
	}, nil
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// VersionInfo locates one block version in the store.
type VersionInfo struct {
	// Offset is the byte offset of the version in the file.
	Offset int64
	// Length is the number of bytes the version occupies (the slot size:
	// R*C*4 bytes of values followed by zero padding to the alignment).
	Length int64
	// CRC is the CRC-32C (Castagnoli) of those Length bytes.
	CRC uint32
}

// DenseBlob locates one small dense tensor blob in the store.
type DenseBlob struct {
	// Offset is the byte offset of the blob in the file.
	Offset int64
	// Count is the number of float32 values.
	Count int
	// CRC is the CRC-32C of the Count*4 bytes.
	CRC uint32
}

// TaskSpec describes one task: its block-sparse tensors and its small dense
// tensors.
type TaskSpec struct {
	// Name identifies the task; unique within a store.
	Name string
	// Tensors are the task's block-sparse weight tensors.
	Tensors []TensorSpec
	// Dense are the task's small dense tensors (biases, norms).
	Dense []DenseSpec
}

// TensorSpec is one block-sparse tensor of a task: its BSR structure and the
// block version stored for each kept block.
type TensorSpec struct {
	// Name identifies the tensor; unique within a task.
	Name string
	// Rows and Cols give the true shape.
	Rows, Cols int
	// Layer is the pipeline position: the loader reads lower layers first
	// and readiness can be awaited per layer.
	Layer int
	// Indptr and Indices are the BSR structure (see bsr.Matrix).
	Indptr, Indices []int32
	// Versions gives the block version id of every kept block.
	Versions []uint32
}

// DenseSpec is one small dense tensor of a task.
type DenseSpec struct {
	// Name identifies the tensor; unique within a task.
	Name string
	// Shape gives the dimensions; their product is the blob's value count.
	Shape []int
	// Blob is the dense blob id returned by StoreWriter.AddDense.
	Blob uint32
}

// Manifest is the decoded table of contents of a store.
type Manifest struct {
	// FormatVersion is the store's format version.
	FormatVersion int
	// DType is the element type ("f32").
	DType string
	// R and C give the block shape.
	R, C int
	// Alignment is the I/O alignment of block versions in bytes.
	Alignment int
	// BlockBytes is R*C*4; SlotBytes is BlockBytes rounded up to Alignment.
	BlockBytes, SlotBytes int64
	// DataOffset is the offset of block version 0.
	DataOffset int64
	// VersionCRC holds the CRC-32C of each block version's slot, by id.
	VersionCRC []uint32
	// Dense holds the dense blobs, by id.
	Dense []DenseBlob
	// Tasks lists the tasks in the order they were added.
	Tasks []TaskSpec
	// Meta holds free-form metadata (the packer stores "quality").
	Meta map[string][]byte
	// FileSize is the size of the store file in bytes.
	FileSize int64
}

// NumVersions returns the number of block versions in the store.
func (m *Manifest) NumVersions() int { return len(m.VersionCRC) }

// Version returns where block version id lives and its checksum.
func (m *Manifest) Version(id uint32) VersionInfo {
	return VersionInfo{Offset: m.DataOffset + int64(id)*m.SlotBytes, Length: m.SlotBytes, CRC: m.VersionCRC[id]}
}

// Task returns the task named name.
func (m *Manifest) Task(name string) (*TaskSpec, bool) {
	for i := range m.Tasks {
		if m.Tasks[i].Name == name {
			return &m.Tasks[i], true
		}
	}
	return nil, false
}

// Tensor returns the tensor named name of task t.
func (t *TaskSpec) Tensor(name string) (*TensorSpec, bool) {
	for i := range t.Tensors {
		if t.Tensors[i].Name == name {
			return &t.Tensors[i], true
		}
	}
	return nil, false
}

// DenseByName returns the dense tensor named name of task t.
func (t *TaskSpec) DenseByName(name string) (*DenseSpec, bool) {
	for i := range t.Dense {
		if t.Dense[i].Name == name {
			return &t.Dense[i], true
		}
	}
	return nil, false
}

// encoder appends little-endian values.
type encoder struct{ b []byte }

func (e *encoder) u32(v uint32)   { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64)   { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) bytes(p []byte) { e.u32(uint32(len(p))); e.b = append(e.b, p...) }
func (e *encoder) i32s(v []int32) {
	for _, x := range v {
		e.u32(uint32(x))
	}
}

// encodeManifest serialises the variable part of the manifest (see
// docs/FORMAT.md, "Manifest").
func encodeManifest(crcs []uint32, dense []DenseBlob, meta map[string][]byte, metaKeys []string, tasks []TaskSpec) []byte {
	e := &encoder{}
	e.u32(uint32(len(crcs)))
	for _, c := range crcs {
		e.u32(c)
	}
	e.u32(uint32(len(dense)))
	for _, d := range dense {
		e.u64(uint64(d.Offset))
		e.u64(uint64(d.Count))
		e.u32(d.CRC)
	}
	e.u32(uint32(len(metaKeys)))
	for _, k := range metaKeys {
		e.bytes([]byte(k))
		e.bytes(meta[k])
	}
	e.u32(uint32(len(tasks)))
	for _, t := range tasks {
		e.bytes([]byte(t.Name))
		e.u32(uint32(len(t.Tensors)))
		for _, ts := range t.Tensors {
			e.bytes([]byte(ts.Name))
			e.u32(uint32(ts.Rows))
			e.u32(uint32(ts.Cols))
			e.u32(uint32(int32(ts.Layer)))
			e.u32(uint32(len(ts.Indices)))
			e.i32s(ts.Indptr)
			e.i32s(ts.Indices)
			for _, v := range ts.Versions {
				e.u32(v)
			}
		}
		e.u32(uint32(len(t.Dense)))
		for _, d := range t.Dense {
			e.bytes([]byte(d.Name))
			e.u32(uint32(len(d.Shape)))
			for _, s := range d.Shape {
				e.u32(uint32(s))
			}
			e.u32(d.Blob)
		}
	}
	return e.b
}

// decoder reads little-endian values and remembers the first overrun.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("manifest byte %d: %s: %w", d.off, fmt.Sprintf(format, args...), ErrCorrupt)
	}
}

func (d *decoder) need(n uint64, what string) bool {
	if d.err != nil {
		return false
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("%s needs %d bytes, only %d left", what, n, len(d.b)-d.off)
		return false
	}
	return true
}

func (d *decoder) u32(what string) uint32 {
	if !d.need(4, what) {
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64(what string) uint64 {
	if !d.need(8, what) {
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

// count reads a u32 element count and checks that count*elemSize bytes
// remain, so a corrupt count cannot trigger a huge allocation.
func (d *decoder) count(elemSize uint64, what string) int {
	n := d.u32(what + " count")
	if !d.need(uint64(n)*elemSize, what) {
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(what string, limit int) []byte {
	n := d.u32(what + " length")
	if d.err == nil && int64(n) > int64(limit) {
		d.fail("%s length %d exceeds %d", what, n, limit)
		return nil
	}
	if !d.need(uint64(n), what) {
		return nil
	}
	p := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return p
}

func (d *decoder) name(what string) string {
	p := d.bytes(what, maxName)
	return string(p)
}

func (d *decoder) i32s(n int, what string) []int32 {
	if !d.need(uint64(n)*4, what) {
		return nil
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(d.b[d.off+4*i:]))
	}
	d.off += 4 * n
	return v
}

func (d *decoder) u32s(n int, what string) []uint32 {
	if !d.need(uint64(n)*4, what) {
		return nil
	}
	v := make([]uint32, n)
	for i := range v {
		v[i] = binary.LittleEndian.Uint32(d.b[d.off+4*i:])
	}
	d.off += 4 * n
	return v
}

// decodeManifest parses and fully validates the manifest against the header
// and footer. It returns errors wrapping ErrCorrupt that name the task,
// tensor or blob at fault.
func decodeManifest(b []byte, h *header, f *footer) (*Manifest, error) {
	m := &Manifest{
		FormatVersion: FormatVersion, DType: "f32", R: int(h.R), C: int(h.C),
		Alignment: int(h.alignment), BlockBytes: int64(h.R) * int64(h.C) * 4,
		SlotBytes: int64(h.slotBytes), DataOffset: int64(h.dataOffset),
		Meta: map[string][]byte{},
	}
	d := &decoder{b: b}
	nv := d.count(4, "version CRCs")
	if d.err == nil && uint64(nv) != f.numVersions {
		d.fail("%d version CRCs, footer says %d versions", nv, f.numVersions)
	}
	m.VersionCRC = d.u32s(nv, "version CRCs")
	nd := d.count(20, "dense blobs")
	m.Dense = make([]DenseBlob, 0, nd)
	denseEnd := f.denseOffset + f.denseBytes
	for i := 0; i < nd && d.err == nil; i++ {
		off, cnt, c := d.u64("dense offset"), d.u64("dense count"), d.u32("dense CRC")
		if d.err != nil {
			break
		}
		if off < f.denseOffset || off%4 != 0 || cnt > f.denseBytes/4 || off+cnt*4 > denseEnd {
			d.fail("dense blob %d: %d values at offset %d outside the dense region [%d, %d)", i, cnt, off, f.denseOffset, denseEnd)
			break
		}
		m.Dense = append(m.Dense, DenseBlob{Offset: int64(off), Count: int(cnt), CRC: c})
	}
	nm := d.count(8, "meta entries")
	for i := 0; i < nm && d.err == nil; i++ {
		k := d.name("meta key")
		v := d.bytes("meta value", math.MaxInt32)
		if d.err != nil {
			break
		}
		if _, dup := m.Meta[k]; dup {
			d.fail("meta key %q appears twice", k)
			break
		}
		m.Meta[k] = v
	}
	nt := d.count(8, "tasks")
	m.Tasks = make([]TaskSpec, 0, nt)
	taskNames := map[string]bool{}
	var zero []float32 // checkTensor's shared zero block
	for ti := 0; ti < nt && d.err == nil; ti++ {
		var t TaskSpec
		t.Name = d.name("task name")
		if d.err == nil && (t.Name == "" || taskNames[t.Name]) {
			d.fail("task %d: name %q is empty or repeated", ti, t.Name)
		}
		taskNames[t.Name] = true
		nts := d.count(24, "tensors of task "+t.Name)
		t.Tensors = make([]TensorSpec, 0, nts)
		for k := 0; k < nts && d.err == nil; k++ {
			var ts TensorSpec
			ts.Name = d.name("tensor name")
			rows, cols := d.u32("rows"), d.u32("cols")
			ts.Layer = int(int32(d.u32("layer")))
			nnzb := d.u32("nnzb")
			if d.err != nil {
				break
			}
			if rows > math.MaxInt32 || cols > math.MaxInt32 {
				d.fail("task %q tensor %q: shape %dx%d exceeds int32", t.Name, ts.Name, rows, cols)
				break
			}
			ts.Rows, ts.Cols = int(rows), int(cols)
			br := (uint64(rows) + uint64(h.R) - 1) / uint64(h.R)
			if !d.need((br+1)*4+uint64(nnzb)*8, fmt.Sprintf("task %q tensor %q structure", t.Name, ts.Name)) {
				break
			}
			ts.Indptr = d.i32s(int(br)+1, "indptr")
			ts.Indices = d.i32s(int(nnzb), "indices")
			ts.Versions = d.u32s(int(nnzb), "versions")
			if d.err != nil {
				break
			}
			if err := checkTensor(&ts, m.R, m.C, uint32(nv), &zero); err != nil {
				d.fail("task %q: %v", t.Name, err)
				break
			}
			if _, dup := t.Tensor(ts.Name); dup {
				d.fail("task %q: tensor %q appears twice", t.Name, ts.Name)
				break
			}
			t.Tensors = append(t.Tensors, ts)
		}
		ndn := d.count(12, "dense tensors of task "+t.Name)
		for k := 0; k < ndn && d.err == nil; k++ {
			var ds DenseSpec
			ds.Name = d.name("dense name")
			ndim := d.count(4, "dense dims")
			dims := d.u32s(ndim, "dense dims")
			ds.Blob = d.u32("dense blob")
			if d.err != nil {
				break
			}
			for _, x := range dims {
				ds.Shape = append(ds.Shape, int(x))
			}
			if err := checkDense(&ds, m.Dense); err != nil {
				d.fail("task %q: %v", t.Name, err)
				break
			}
			if _, dup := t.DenseByName(ds.Name); dup {
				d.fail("task %q: dense tensor %q appears twice", t.Name, ds.Name)
				break
			}
			t.Dense = append(t.Dense, ds)
		}
		m.Tasks = append(m.Tasks, t)
	}
	if d.err == nil && d.off != len(b) {
		d.fail("%d trailing bytes after the last task", len(b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// checkTensor validates a tensor's BSR structure and version ids. zero
// caches the one zero block the structural check needs (R*C values, shared
// by every tensor of a manifest); it is allocated only for a tensor with
// blocks, whose version ids were checked first, so a store's header cannot
// make the reader allocate a block without holding one.
func checkTensor(ts *TensorSpec, R, C int, numVersions uint32, zero *[]float32) error {
	if ts.Name == "" {
		return errors.New("tensor with an empty name")
	}
	if ts.Rows < 0 || ts.Cols < 0 || ts.Rows > math.MaxInt32 || ts.Cols > math.MaxInt32 {
		return fmt.Errorf("tensor %q: shape %dx%d outside [0, 2^31)", ts.Name, ts.Rows, ts.Cols)
	}
	if len(ts.Versions) != len(ts.Indices) {
		return fmt.Errorf("tensor %q: %d versions for %d blocks, want one per block", ts.Name, len(ts.Versions), len(ts.Indices))
	}
	br := (ts.Rows + R - 1) / R
	if len(ts.Indptr) != br+1 {
		return fmt.Errorf("tensor %q: indptr has %d entries, want %d", ts.Name, len(ts.Indptr), br+1)
	}
	for k, id := range ts.Versions {
		if id >= numVersions {
			return fmt.Errorf("tensor %q block %d: version %d out of range [0, %d)", ts.Name, k, id, numVersions)
		}
	}
	// A view over one zero block lets bsr validate the structure without
	// touching any block data. Its shape is padded to whole blocks: the
	// block grid and so every structural rule are the same, and the
	// padding rule, meaningless on zero data, would only scan R*C values
	// per edge block.
	if len(ts.Indices) > 0 && len(*zero) != R*C {
		*zero = make([]float32, R*C)
	}
	bc := (ts.Cols + C - 1) / C
	v := &bsr.View{Rows: br * R, Cols: bc * C, R: R, C: C, Indptr: ts.Indptr, Indices: ts.Indices,
		Arena: *zero, Slots: make([]int32, len(ts.Indices)), Stride: R * C}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("tensor %q: %w", ts.Name, err)
	}
	return nil
}

// checkDense validates a dense tensor's shape against its blob.
func checkDense(ds *DenseSpec, blobs []DenseBlob) error {
	if ds.Name == "" {
		return errors.New("dense tensor with an empty name")
	}
	if int(ds.Blob) >= len(blobs) || int64(ds.Blob) < 0 {
		return fmt.Errorf("dense tensor %q: blob %d out of range [0, %d)", ds.Name, ds.Blob, len(blobs))
	}
	n := int64(1)
	for _, s := range ds.Shape {
		if s < 0 || s > math.MaxInt32 {
			return fmt.Errorf("dense tensor %q: dimension %d outside [0, 2^31)", ds.Name, s)
		}
		n *= int64(s)
		if n > math.MaxInt32 {
			return fmt.Errorf("dense tensor %q: shape %v has too many values", ds.Name, ds.Shape)
		}
	}
	if n != int64(blobs[ds.Blob].Count) {
		return fmt.Errorf("dense tensor %q: shape %v holds %d values, blob %d has %d", ds.Name, ds.Shape, n, ds.Blob, blobs[ds.Blob].Count)
	}
	return nil
}

// f32bytes reinterprets a float32 slice as its bytes (the store is
// little-endian; see hostLittleEndian).
func f32bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
}

// bytesF32 reinterprets a byte slice whose length is a multiple of 4 and
// whose start is 4-byte aligned as float32 values.
func bytesF32(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// hostLittleEndian reports whether the host stores integers little-endian;
// the store's values are read straight into memory, so only such hosts
// (amd64, arm64, ...) can run it.
func hostLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
