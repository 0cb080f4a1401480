package diffload

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// WriterOptions configures a new store.
type WriterOptions struct {
	// R and C give the block shape.
	R, C int
	// Alignment is the I/O alignment of block versions in bytes, a power of
	// two. Zero takes the filesystem's direct-I/O requirement from statx
	// STATX_DIOALIGN on the store's file system, at least MinAlignment.
	Alignment int
	// DType is the element type; only "f32" (the default) is supported.
	DType string
}

// StoreWriter writes a store in the caller's block order, streaming block
// versions to a temporary file so that memory stays bounded by the manifest.
// Commit makes the store appear atomically at its final path.
type StoreWriter struct {
	path, tmp string
	f         *os.File
	bw        *bufio.Writer
	h         header
	blockLen  int
	slot      []byte
	crcs      []uint32
	byHash    map[[16]byte]uint32
	dense     [][]float32
	denseHash map[[16]byte]uint32
	tasks     []TaskSpec
	meta      map[string][]byte
	done      bool
	err       error
	// hook, when set (tests only), is called before each commit stage and
	// aborts the commit if it returns an error.
	hook func(stage string) error
}

// CreateStore starts a store that Commit will place at path. The data goes
// to a temporary file in the same directory until then.
func CreateStore(path string, opt WriterOptions) (*StoreWriter, error) {
	dt, err := dtypeCode(opt.DType)
	if err != nil {
		return nil, fmt.Errorf("create store %s: %w", path, err)
	}
	if opt.R < 1 || opt.C < 1 || opt.R > 4096 || opt.C > 4096 {
		return nil, fmt.Errorf("create store %s: block shape %dx%d, want sides in [1, 4096]", path, opt.R, opt.C)
	}
	a := opt.Alignment
	if a != 0 && (a < 512 || a > MaxAlignment || a&(a-1) != 0) {
		return nil, fmt.Errorf("create store %s: alignment %d, want a power of two in [512, %d]", path, a, MaxAlignment)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create store %s: %w", path, err)
	}
	if a == 0 {
		// The kernel reports STATX_DIOALIGN for regular files, so ask
		// about the new file itself.
		a = max(MinAlignment, dioAlign(f.Name()))
		if a > MaxAlignment || a&(a-1) != 0 {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("create store %s: the filesystem's direct-I/O alignment %d is not a power of two up to %d", path, a, MaxAlignment)
		}
	}
	w := &StoreWriter{
		path: path, tmp: f.Name(), f: f, bw: bufio.NewWriterSize(f, 1<<20),
		blockLen: opt.R * opt.C,
		byHash:   map[[16]byte]uint32{}, denseHash: map[[16]byte]uint32{}, meta: map[string][]byte{},
	}
	w.h = header{dtype: dt, R: uint32(opt.R), C: uint32(opt.C), alignment: uint32(a),
		dataOffset: uint64(a), slotBytes: roundUp(uint64(opt.R*opt.C*4), uint64(a))}
	w.slot = make([]byte, w.h.slotBytes)
	first := make([]byte, a)
	copy(first, w.h.encode())
	if _, err := w.bw.Write(first); err != nil {
		w.fail(err)
		return nil, w.Abort()
	}
	return w, nil
}

// fail records the first write error; every later call reports it.
func (w *StoreWriter) fail(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("store %s: %w", w.path, err)
	}
	return w.err
}

func (w *StoreWriter) usable() error {
	if w.done {
		return fmt.Errorf("store %s: writer already committed or aborted", w.path)
	}
	return w.err
}

func hash16(b []byte) [16]byte {
	s := sha256.Sum256(b)
	return [16]byte(s[:16])
}

// AddVersion appends one block version (R*C values, row-major, with the
// padding of edge blocks zero) at the next aligned offset and returns its id:
// 0, 1, 2, ... in call order. A block equal to an earlier one (same bytes)
// is not stored again; its existing id is returned.
func (w *StoreWriter) AddVersion(block []float32) (uint32, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	if len(block) != w.blockLen {
		return 0, fmt.Errorf("store %s: block version has %d values, want R*C = %d", w.path, len(block), w.blockLen)
	}
	clear(w.slot)
	copy(w.slot, f32bytes(block))
	key := hash16(w.slot)
	if id, ok := w.byHash[key]; ok {
		return id, nil
	}
	if len(w.crcs) >= math.MaxUint32-1 {
		return 0, w.fail(errors.New("too many block versions"))
	}
	id := uint32(len(w.crcs))
	if _, err := w.bw.Write(w.slot); err != nil {
		return 0, w.fail(fmt.Errorf("write block version %d: %w", id, err))
	}
	w.crcs = append(w.crcs, crc(w.slot))
	w.byHash[key] = id
	return id, nil
}

// NumVersions returns the number of distinct block versions added so far.
func (w *StoreWriter) NumVersions() int { return len(w.crcs) }

// AddDense adds a small dense tensor blob (bias, norm) and returns its id;
// equal blobs are stored once.
func (w *StoreWriter) AddDense(values []float32) (uint32, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	key := hash16(f32bytes(values))
	if id, ok := w.denseHash[key]; ok && len(w.dense[id]) == len(values) {
		return id, nil
	}
	id := uint32(len(w.dense))
	w.dense = append(w.dense, append([]float32(nil), values...))
	w.denseHash[key] = id
	return id, nil
}

// AddTask records a task. Its tensors must reference versions and dense
// blobs already added; the structure is validated here.
func (w *StoreWriter) AddTask(t TaskSpec) error {
	if err := w.usable(); err != nil {
		return err
	}
	if t.Name == "" || len(t.Name) > maxName {
		return fmt.Errorf("store %s: task name %q: want 1 to %d bytes", w.path, t.Name, maxName)
	}
	for _, o := range w.tasks {
		if o.Name == t.Name {
			return fmt.Errorf("store %s: task %q added twice", w.path, t.Name)
		}
	}
	blobs := make([]DenseBlob, len(w.dense))
	for i, d := range w.dense {
		blobs[i].Count = len(d)
	}
	c := TaskSpec{Name: t.Name}
	seen := map[string]bool{}
	var zero []float32
	for _, ts := range t.Tensors {
		if len(ts.Name) > maxName || seen[ts.Name] {
			return fmt.Errorf("store %s: task %q: tensor name %q repeated or longer than %d bytes", w.path, t.Name, ts.Name, maxName)
		}
		seen[ts.Name] = true
		if ts.Layer < math.MinInt32 || ts.Layer > math.MaxInt32 {
			return fmt.Errorf("store %s: task %q tensor %q: layer %d outside int32", w.path, t.Name, ts.Name, ts.Layer)
		}
		if err := checkTensor(&ts, int(w.h.R), int(w.h.C), uint32(len(w.crcs)), &zero); err != nil {
			return fmt.Errorf("store %s: task %q: %w", w.path, t.Name, err)
		}
		ts.Indptr = append([]int32(nil), ts.Indptr...)
		ts.Indices = append([]int32(nil), ts.Indices...)
		ts.Versions = append([]uint32(nil), ts.Versions...)
		c.Tensors = append(c.Tensors, ts)
	}
	seen = map[string]bool{}
	for _, ds := range t.Dense {
		if len(ds.Name) > maxName || seen[ds.Name] {
			return fmt.Errorf("store %s: task %q: dense tensor name %q repeated or longer than %d bytes", w.path, t.Name, ds.Name, maxName)
		}
		seen[ds.Name] = true
		if err := checkDense(&ds, blobs); err != nil {
			return fmt.Errorf("store %s: task %q: %w", w.path, t.Name, err)
		}
		ds.Shape = append([]int(nil), ds.Shape...)
		c.Dense = append(c.Dense, ds)
	}
	w.tasks = append(w.tasks, c)
	return nil
}

// SetMeta stores free-form metadata in the manifest under key (the packer
// stores its quality report JSON under "quality"). A later call with the
// same key replaces the value.
func (w *StoreWriter) SetMeta(key string, value []byte) {
	if len(key) > maxName {
		w.fail(fmt.Errorf("meta key of %d bytes exceeds %d", len(key), maxName))
		return
	}
	w.meta[key] = append([]byte(nil), value...)
}

func (w *StoreWriter) stage(name string) error {
	if w.hook != nil {
		return w.hook(name)
	}
	return nil
}

// Commit writes the dense blobs, the manifest and the footer, fsyncs the
// file, renames it over the final path and fsyncs the directory. On any
// error the temporary file is removed and no file appears at the path (an
// existing store there is left untouched).
func (w *StoreWriter) Commit() error {
	if err := w.usable(); err != nil {
		if !w.done {
			w.Abort()
		}
		return err
	}
	if err := w.commit(); err != nil {
		w.fail(err)
		w.Abort()
		return w.err
	}
	w.done = true
	return nil
}

func (w *StoreWriter) commit() error {
	if err := w.stage("dense"); err != nil {
		return err
	}
	denseOff := uint64(w.h.dataOffset) + uint64(len(w.crcs))*w.h.slotBytes
	blobs := make([]DenseBlob, len(w.dense))
	off := denseOff
	for i, d := range w.dense {
		b := f32bytes(d)
		blobs[i] = DenseBlob{Offset: int64(off), Count: len(d), CRC: crc(b)}
		if _, err := w.bw.Write(b); err != nil {
			return fmt.Errorf("write dense blob %d: %w", i, err)
		}
		off += uint64(len(b))
	}
	if err := w.stage("manifest"); err != nil {
		return err
	}
	keys := make([]string, 0, len(w.meta))
	for k := range w.meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	man := encodeManifest(w.crcs, blobs, w.meta, keys, w.tasks)
	if _, err := w.bw.Write(man); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	ft := footer{numVersions: uint64(len(w.crcs)), denseOffset: denseOff, denseBytes: off - denseOff,
		manifestOffset: off, manifestBytes: uint64(len(man)), manifestCRC: crc(man)}
	if err := w.stage("footer"); err != nil {
		return err
	}
	if _, err := w.bw.Write(ft.encode()); err != nil {
		return fmt.Errorf("write footer: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := w.stage("fsync"); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", w.tmp, err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", w.tmp, err)
	}
	w.f = nil
	if err := w.stage("rename"); err != nil {
		return err
	}
	if err := os.Rename(w.tmp, w.path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", w.tmp, w.path, err)
	}
	w.tmp = ""
	return syncDir(filepath.Dir(w.path))
}

// syncDir fsyncs a directory so a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s for fsync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Abort discards the store: the temporary file is closed and removed. It is
// safe to call after a failed Commit and a no-op after a successful one.
func (w *StoreWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	var errs []error
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", w.tmp, err))
		}
		w.f = nil
	}
	if w.tmp != "" {
		if err := os.Remove(w.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", w.tmp, err))
		}
		w.tmp = ""
	}
	if w.err != nil {
		errs = append([]error{w.err}, errs...)
	}
	return errors.Join(errs...)
}
