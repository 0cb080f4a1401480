package diffload

import (
	"errors"
	"fmt"
	"os"

	"github.com/dmsparse/dmsparse/bsr"
)

// Store is an open, validated store file for inspection and export. The
// Runtime uses one internally.
type Store struct {
	path string
	f    *os.File
	m    *Manifest
}

// OpenStore opens and validates a store: magic, format version, header,
// footer and manifest checksums, every offset in range, every tensor's BSR
// structure (bsr.View.Validate), version and dense blob references, and the
// checksum of every dense blob. Block versions are verified when read
// (ReadVersion, Verify, Runtime switches). Errors wrap ErrCorrupt and name
// the file and what is wrong.
func OpenStore(path string) (*Store, error) {
	if !hostLittleEndian() {
		return nil, fmt.Errorf("open store %s: this host is big-endian; stores hold little-endian values", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	m, err := readManifest(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{path: path, f: f, m: m}, nil
}

func readManifest(f *os.File) (*Manifest, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < HeaderSize+FooterSize {
		return nil, fmt.Errorf("file of %d bytes is truncated: a store has at least %d: %w", size, HeaderSize+FooterSize, ErrCorrupt)
	}
	hb := make([]byte, HeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return nil, err
	}
	fb := make([]byte, FooterSize)
	if _, err := f.ReadAt(fb, size-FooterSize); err != nil {
		return nil, fmt.Errorf("read footer: %w", err)
	}
	ft, err := decodeFooter(fb)
	if err != nil {
		return nil, err
	}
	if h.dataOffset > uint64(size) {
		return nil, fmt.Errorf("data offset %d beyond the file's %d bytes (truncated): %w", h.dataOffset, size, ErrCorrupt)
	}
	// The rest of the first alignment unit must be zero.
	pad := make([]byte, h.dataOffset-HeaderSize)
	if _, err := f.ReadAt(pad, HeaderSize); err != nil {
		return nil, fmt.Errorf("read header padding: %w", err)
	}
	for i, b := range pad {
		if b != 0 {
			return nil, fmt.Errorf("header padding byte %d is %#x, want 0: %w", HeaderSize+i, b, ErrCorrupt)
		}
	}
	// The regions must tile the file exactly.
	if ft.numVersions > uint64(size)/h.slotBytes {
		return nil, fmt.Errorf("footer claims %d block versions of %d bytes, more than the file's %d bytes: %w", ft.numVersions, h.slotBytes, size, ErrCorrupt)
	}
	if want := h.dataOffset + ft.numVersions*h.slotBytes; ft.denseOffset != want {
		return nil, fmt.Errorf("dense region at %d, want %d (after %d versions): %w", ft.denseOffset, want, ft.numVersions, ErrCorrupt)
	}
	if ft.denseBytes > uint64(size) || ft.denseOffset+ft.denseBytes != ft.manifestOffset {
		return nil, fmt.Errorf("manifest at %d, want dense region end %d+%d: %w", ft.manifestOffset, ft.denseOffset, ft.denseBytes, ErrCorrupt)
	}
	if ft.manifestBytes > uint64(size) || ft.manifestOffset+ft.manifestBytes+FooterSize != uint64(size) {
		return nil, fmt.Errorf("manifest [%d, +%d) plus footer does not end at the file size %d (truncated or extended): %w", ft.manifestOffset, ft.manifestBytes, size, ErrCorrupt)
	}
	mb := make([]byte, ft.manifestBytes)
	if _, err := f.ReadAt(mb, int64(ft.manifestOffset)); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if got := crc(mb); got != ft.manifestCRC {
		return nil, fmt.Errorf("manifest CRC-32C %08x, footer says %08x: %w", got, ft.manifestCRC, ErrCorrupt)
	}
	m, err := decodeManifest(mb, h, ft)
	if err != nil {
		return nil, err
	}
	m.FileSize = size
	// Every byte of the dense region belongs to a blob, and every blob
	// must pass its checksum.
	db := make([]byte, ft.denseBytes)
	if _, err := f.ReadAt(db, int64(ft.denseOffset)); err != nil {
		return nil, fmt.Errorf("read dense region: %w", err)
	}
	covered := uint64(0)
	for i, d := range m.Dense {
		lo := uint64(d.Offset) - ft.denseOffset
		b := db[lo : lo+uint64(d.Count)*4]
		if got := crc(b); got != d.CRC {
			return nil, fmt.Errorf("dense blob %d at offset %d: CRC-32C %08x, manifest says %08x: %w", i, d.Offset, got, d.CRC, ErrCorrupt)
		}
		covered += uint64(len(b))
	}
	if covered != ft.denseBytes {
		return nil, fmt.Errorf("dense blobs cover %d bytes of the %d-byte dense region: %w", covered, ft.denseBytes, ErrCorrupt)
	}
	return m, nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Manifest returns the store's manifest. It is shared; do not modify it.
func (s *Store) Manifest() *Manifest { return s.m }

// ReadVersion reads block version id into dst (R*C values), verifying its
// checksum.
func (s *Store) ReadVersion(id uint32, dst []float32) error {
	m := s.m
	if int(id) >= len(m.VersionCRC) {
		return fmt.Errorf("store %s: block version %d out of range [0, %d)", s.path, id, len(m.VersionCRC))
	}
	if len(dst) != m.R*m.C {
		return fmt.Errorf("store %s: destination has %d values, want R*C = %d", s.path, len(dst), m.R*m.C)
	}
	buf := make([]byte, m.SlotBytes)
	if err := s.readVersionBytes(id, buf); err != nil {
		return err
	}
	copy(dst, bytesF32(buf[:m.BlockBytes]))
	return nil
}

func (s *Store) readVersionBytes(id uint32, buf []byte) error {
	vi := s.m.Version(id)
	if _, err := s.f.ReadAt(buf, vi.Offset); err != nil {
		return fmt.Errorf("store %s: read block version %d at offset %d: %w", s.path, id, vi.Offset, err)
	}
	if got := crc(buf); got != vi.CRC {
		return fmt.Errorf("store %s: block version %d at offset %d: CRC-32C %08x, manifest says %08x: %w", s.path, id, vi.Offset, got, vi.CRC, ErrCorrupt)
	}
	return nil
}

// Verify reads every block version and checks its checksum. It returns the
// first failure, naming the version and its offset.
func (s *Store) Verify() error {
	buf := make([]byte, s.m.SlotBytes)
	for id := range s.m.VersionCRC {
		if err := s.readVersionBytes(uint32(id), buf); err != nil {
			return err
		}
	}
	return nil
}

// TaskTensor returns a task's tensor as a contiguous bsr.Matrix, reading and
// verifying every block.
func (s *Store) TaskTensor(task, tensor string) (*bsr.Matrix, error) {
	t, ok := s.m.Task(task)
	if !ok {
		return nil, fmt.Errorf("store %s: %w: %q", s.path, ErrNoTask, task)
	}
	ts, ok := t.Tensor(tensor)
	if !ok {
		return nil, fmt.Errorf("store %s: task %q has no tensor %q", s.path, task, tensor)
	}
	bs := s.m.R * s.m.C
	mat := &bsr.Matrix{Rows: ts.Rows, Cols: ts.Cols, R: s.m.R, C: s.m.C,
		Indptr:  append([]int32(nil), ts.Indptr...),
		Indices: append([]int32(nil), ts.Indices...),
		Data:    make([]float32, len(ts.Indices)*bs)}
	for k, v := range ts.Versions {
		if err := s.ReadVersion(v, mat.Data[k*bs:(k+1)*bs]); err != nil {
			return nil, fmt.Errorf("task %q tensor %q block %d: %w", task, tensor, k, err)
		}
	}
	return mat, nil
}

// DenseTensor returns a task's dense tensor and its shape.
func (s *Store) DenseTensor(task, name string) ([]float32, []int, error) {
	t, ok := s.m.Task(task)
	if !ok {
		return nil, nil, fmt.Errorf("store %s: %w: %q", s.path, ErrNoTask, task)
	}
	ds, ok := t.DenseByName(name)
	if !ok {
		return nil, nil, fmt.Errorf("store %s: task %q has no dense tensor %q", s.path, task, name)
	}
	v, err := s.readDense(ds.Blob)
	if err != nil {
		return nil, nil, fmt.Errorf("task %q dense tensor %q: %w", task, name, err)
	}
	return v, append([]int(nil), ds.Shape...), nil
}

func (s *Store) readDense(id uint32) ([]float32, error) {
	b := s.m.Dense[id]
	buf := make([]byte, b.Count*4)
	if _, err := s.f.ReadAt(buf, b.Offset); err != nil {
		return nil, fmt.Errorf("store %s: read dense blob %d: %w", s.path, id, err)
	}
	if got := crc(buf); got != b.CRC {
		return nil, fmt.Errorf("store %s: dense blob %d: CRC-32C %08x, manifest says %08x: %w", s.path, id, got, b.CRC, ErrCorrupt)
	}
	out := make([]float32, b.Count)
	copy(out, bytesF32(buf))
	return out, nil
}

// Close closes the file.
func (s *Store) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}
