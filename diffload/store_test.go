package diffload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/bsr"
)

func TestRoundTrip(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.6, 1)
	s, err := OpenStore(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := s.Manifest()
	if m.R != 32 || m.C != 32 || m.SlotBytes != 4096 || m.BlockBytes != 4096 || m.Alignment < 4096 || m.DType != "f32" {
		t.Fatalf("manifest header fields: %+v", m)
	}
	if got := string(m.Meta["quality"]); got != `{"ok":true}` {
		t.Fatalf("meta quality = %q", got)
	}
	if len(m.Dense) != 1+3 {
		t.Fatalf("%d dense blobs, want 4 (one shared, deduplicated)", len(m.Dense))
	}
	for i := 0; i < m.NumVersions(); i++ {
		vi := m.Version(uint32(i))
		if vi.Offset%int64(m.Alignment) != 0 || vi.Length != 4096 {
			t.Fatalf("version %d at %d length %d: not aligned", i, vi.Offset, vi.Length)
		}
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	for _, task := range f.tasks {
		for name, want := range f.want[task] {
			got, err := s.TaskTensor(task, name)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Data, want.Data) || !slices.Equal(got.Indices, want.Indices) || !slices.Equal(got.Indptr, want.Indptr) {
				t.Fatalf("task %s tensor %s differs after the round trip", task, name)
			}
		}
		for name, want := range f.dense[task] {
			got, shape, err := s.DenseTensor(task, name)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("dense %s/%s = %v, want %v", task, name, got, want)
			}
			if name == "bias" && !slices.Equal(shape, []int{1, 2}) {
				t.Fatalf("bias shape %v", shape)
			}
		}
	}
	if _, err := s.TaskTensor("nope", "l0.w"); !errors.Is(err, ErrNoTask) {
		t.Fatalf("missing task: %v", err)
	}
	if _, err := s.TaskTensor(f.tasks[0], "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing tensor: %v", err)
	}
}

func TestWriterDedupAndValidation(t *testing.T) {
	dir := tmpDir(t)
	w, err := CreateStore(filepath.Join(dir, "s.dms"), WriterOptions{R: 2, C: 2, Alignment: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	a, _ := w.AddVersion([]float32{1, 2, 3, 4})
	b, _ := w.AddVersion([]float32{1, 2, 3, 5})
	c, _ := w.AddVersion([]float32{1, 2, 3, 4})
	if a != 0 || b != 1 || c != 0 {
		t.Fatalf("ids %d %d %d, want 0 1 0", a, b, c)
	}
	if _, err := w.AddVersion([]float32{1}); err == nil {
		t.Fatal("short block accepted")
	}
	good := TensorSpec{Name: "w", Rows: 3, Cols: 4, Indptr: []int32{0, 1, 2}, Indices: []int32{1, 0}, Versions: []uint32{0, 1}}
	bad := []TensorSpec{
		{Name: "w", Rows: 3, Cols: 4, Indptr: []int32{0, 1, 2}, Indices: []int32{1, 0}, Versions: []uint32{0, 9}},  // version out of range
		{Name: "w", Rows: 3, Cols: 4, Indptr: []int32{0, 2, 2}, Indices: []int32{1, 0}, Versions: []uint32{0, 1}},  // unsorted
		{Name: "w", Rows: 3, Cols: 4, Indptr: []int32{0, 1}, Indices: []int32{1}, Versions: []uint32{0}},           // indptr length
		{Name: "w", Rows: 3, Cols: 4, Indptr: []int32{0, 1, 2}, Indices: []int32{1, 2}, Versions: []uint32{0, 1}},  // column range
		{Name: "w", Rows: 3, Cols: 4, Indptr: []int32{0, 1, 2}, Indices: []int32{1, 0}, Versions: []uint32{0}},     // versions length
		{Name: "", Rows: 3, Cols: 4, Indptr: []int32{0, 1, 2}, Indices: []int32{1, 0}, Versions: []uint32{0, 1}},   // empty name
		{Name: "w", Rows: -1, Cols: 4, Indptr: []int32{0, 1, 2}, Indices: []int32{1, 0}, Versions: []uint32{0, 1}}, // shape
	}
	for i, ts := range bad {
		if err := w.AddTask(TaskSpec{Name: "t", Tensors: []TensorSpec{ts}}); err == nil {
			t.Fatalf("bad tensor %d accepted", i)
		}
	}
	if err := w.AddTask(TaskSpec{Name: "t", Dense: []DenseSpec{{Name: "b", Shape: []int{2}, Blob: 0}}}); err == nil {
		t.Fatal("dense blob out of range accepted")
	}
	d, _ := w.AddDense([]float32{1, 2})
	if err := w.AddTask(TaskSpec{Name: "t", Dense: []DenseSpec{{Name: "b", Shape: []int{3}, Blob: d}}}); err == nil {
		t.Fatal("dense shape mismatch accepted")
	}
	if err := w.AddTask(TaskSpec{Name: "t", Tensors: []TensorSpec{good}, Dense: []DenseSpec{{Name: "b", Shape: []int{2}, Blob: d}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTask(TaskSpec{Name: "t"}); err == nil {
		t.Fatal("duplicate task accepted")
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddVersion([]float32{1, 2, 3, 4}); err == nil {
		t.Fatal("AddVersion after Commit accepted")
	}
	s, err := OpenStore(filepath.Join(dir, "s.dms"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Manifest().NumVersions() != 2 {
		t.Fatalf("%d versions, want 2", s.Manifest().NumVersions())
	}
	mat, err := s.TaskTensor("t", "w")
	if err != nil {
		t.Fatal(err)
	}
	// Blocks come back as written, in the tensor's block order.
	if !slices.Equal(mat.Data, []float32{1, 2, 3, 4, 1, 2, 3, 5}) {
		t.Fatalf("data %v", mat.Data)
	}
	if _, err := CreateStore(filepath.Join(dir, "x"), WriterOptions{R: 2, C: 2, DType: "f16"}); err == nil {
		t.Fatal("dtype f16 accepted")
	}
	if _, err := CreateStore(filepath.Join(dir, "x"), WriterOptions{R: 2, C: 2, Alignment: 3000}); err == nil {
		t.Fatal("alignment 3000 accepted")
	}
}

// TestCorruptionDetected flips one byte in every region of a store: header,
// header padding, each block version, the dense region, the manifest and
// the footer. Header, manifest, dense and footer damage fails OpenStore;
// block damage fails the verified reads of exactly that version.
func TestCorruptionDetected(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 16, 16, 2, 0.5, 2)
	orig, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(f.path)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest()
	s.Close()
	ft, _ := decodeFooter(orig[len(orig)-FooterSize:])
	bad := filepath.Join(dir, "bad.dms")
	if err := os.WriteFile(bad, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(bad, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	// flip damages one byte of bad and returns a function that repairs it.
	flip := func(off int64) func() {
		if _, err := fh.WriteAt([]byte{orig[off] ^ 0x5a}, off); err != nil {
			t.Fatal(err)
		}
		return func() {
			if _, err := fh.WriteAt(orig[off:off+1], off); err != nil {
				t.Fatal(err)
			}
		}
	}
	var openOffsets []int64
	for i := int64(0); i < HeaderSize; i++ {
		openOffsets = append(openOffsets, i)
	}
	openOffsets = append(openOffsets, HeaderSize, int64(m.DataOffset)-1)
	for i := int64(ft.denseOffset); i < int64(ft.denseOffset+ft.denseBytes); i += 3 {
		openOffsets = append(openOffsets, i)
	}
	for i := int64(ft.manifestOffset); i < int64(ft.manifestOffset+ft.manifestBytes); i += max(1, int64(ft.manifestBytes)/200) {
		openOffsets = append(openOffsets, i)
	}
	for i := int64(len(orig) - FooterSize); i < int64(len(orig)); i++ {
		openOffsets = append(openOffsets, i)
	}
	for _, off := range openOffsets {
		repair := flip(off)
		s, err := OpenStore(bad)
		repair()
		if err == nil {
			s.Close()
			t.Fatalf("byte %d flipped: OpenStore accepted the file", off)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: error %v does not wrap ErrCorrupt", off, err)
		}
	}
	// Each block version: one byte inside the values, one in the padding
	// region of the slot when there is one.
	t.Logf("%d open-time offsets, %d versions", len(openOffsets), m.NumVersions())
	dst := make([]float32, m.R*m.C)
	for id := 0; id < m.NumVersions(); id++ {
		vi := m.Version(uint32(id))
		for _, off := range []int64{vi.Offset + int64(id*13)%m.BlockBytes, vi.Offset + vi.Length - 1} {
			repair := flip(off)
			s, err := OpenStore(bad)
			if err != nil {
				t.Fatalf("block byte %d flipped: OpenStore: %v", off, err)
			}
			if err := s.ReadVersion(uint32(id), dst); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("version %d byte %d flipped: ReadVersion: %v", id, off, err)
			}
			if id%16 == 0 {
				if err := s.Verify(); err == nil || !strings.Contains(err.Error(), "block version") {
					t.Fatalf("version %d byte %d flipped: Verify: %v", id, off, err)
				}
			}
			if id != 0 {
				if err := s.ReadVersion(0, dst); err != nil {
					t.Fatalf("intact version 0 rejected: %v", err)
				}
			}
			s.Close()
			repair()
		}
	}
	s, err = OpenStore(bad)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Verify(); err != nil {
		t.Fatalf("repaired file: %v", err)
	}
}

func TestTruncatedAndForeign(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 8, 8, 2, 0.5, 3)
	orig, _ := os.ReadFile(f.path)
	bad := filepath.Join(dir, "bad.dms")
	for _, n := range []int{0, 10, HeaderSize, 4096, len(orig) / 2, len(orig) - FooterSize, len(orig) - 1} {
		os.WriteFile(bad, orig[:n], 0o644)
		if s, err := OpenStore(bad); err == nil {
			s.Close()
			t.Fatalf("truncated to %d bytes: accepted", n)
		} else if !strings.Contains(err.Error(), bad) {
			t.Fatalf("error %q does not name the file", err)
		}
	}
	os.WriteFile(bad, append(slices.Clone(orig), 0), 0o644)
	if _, err := OpenStore(bad); err == nil {
		t.Fatal("extended file accepted")
	}
	foreign := bytes.Repeat([]byte("PK\x03\x04"), 4096)
	os.WriteFile(bad, foreign, 0o644)
	if _, err := OpenStore(bad); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("foreign file: %v", err)
	}
	if _, err := OpenStore(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestFailedCommitLeavesNoFile injects a failure at every commit stage and
// checks that nothing appears at the final name, that an existing store
// there is untouched, and that no temporary file is left behind.
func TestFailedCommitLeavesNoFile(t *testing.T) {
	for _, stage := range []string{"dense", "manifest", "footer", "fsync", "rename"} {
		for _, existing := range []bool{false, true} {
			dir := tmpDir(t)
			path := filepath.Join(dir, "s.dms")
			var old []byte
			if existing {
				f := writeFamily(t, dir, 4, 4, 1, 0.5, 4)
				os.Rename(f.path, path)
				old, _ = os.ReadFile(path)
			}
			w, err := CreateStore(path, WriterOptions{R: 4, C: 4})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 50; i++ {
				if _, err := w.AddVersion(make([]float32, 16)); err != nil {
					t.Fatal(err)
				}
				v := make([]float32, 16)
				v[0] = float32(i + 1)
				if _, err := w.AddVersion(v); err != nil {
					t.Fatal(err)
				}
			}
			w.AddDense([]float32{1, 2})
			injected := errors.New("injected failure")
			w.hook = func(s string) error {
				if s == stage {
					return injected
				}
				return nil
			}
			if err := w.Commit(); !errors.Is(err, injected) {
				t.Fatalf("stage %s: Commit = %v, want the injected error", stage, err)
			}
			got, err := os.ReadFile(path)
			if existing {
				if err != nil || !bytes.Equal(got, old) {
					t.Fatalf("stage %s: the existing store changed (err %v)", stage, err)
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("stage %s: a file exists at the final name (err %v)", stage, err)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Fatalf("stage %s: temporary file %s left behind", stage, e.Name())
				}
			}
		}
	}
}

func TestAbortRemovesTemp(t *testing.T) {
	dir := tmpDir(t)
	w, err := CreateStore(filepath.Join(dir, "s.dms"), WriterOptions{R: 4, C: 4})
	if err != nil {
		t.Fatal(err)
	}
	w.AddVersion(make([]float32, 16))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("files left after Abort: %v", ents)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
}

// FuzzOpenStore mutates a valid store and checks that OpenStore either
// rejects it or returns a store whose every tensor can be read (with
// verified blocks) without panics and whose structure bsr accepts.
func FuzzOpenStore(f *testing.F) {
	dir := f.TempDir()
	orig := tinyStore(f, filepath.Join(dir, "seed.dms"))
	f.Add(orig)
	f.Add(orig[:len(orig)/2])
	f.Add(orig[len(orig)-FooterSize:])
	path := filepath.Join(dir, "fuzz.dms")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(path)
		if err != nil {
			return
		}
		defer s.Close()
		m := s.Manifest()
		for _, task := range m.Tasks {
			for _, ts := range task.Tensors {
				mat, err := s.TaskTensor(task.Name, ts.Name)
				if err != nil {
					continue
				}
				if err := (&bsr.Matrix{Rows: mat.Rows, Cols: mat.Cols, R: mat.R, C: mat.C, Indptr: mat.Indptr, Indices: mat.Indices, Data: mat.Data}).Validate(); err != nil && !errors.Is(err, bsr.ErrStructure) {
					t.Fatalf("unexpected validation error %v", err)
				}
			}
			for _, d := range task.Dense {
				if _, _, err := s.DenseTensor(task.Name, d.Name); err != nil {
					t.Fatalf("dense %s/%s of an accepted store: %v", task.Name, d.Name, err)
				}
			}
		}
	})
}

// tinyStore writes a store of a few hundred bytes per region (2 x 2 blocks,
// 512-byte alignment) for fuzzing, and returns its bytes.
func tinyStore(t testing.TB, path string) []byte {
	t.Helper()
	w, err := CreateStore(path, WriterOptions{R: 2, C: 2, Alignment: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i := 0; i < 3; i++ {
		if _, err := w.AddVersion([]float32{float32(i), 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	edge, _ := w.AddVersion([]float32{5, 0, 6, 0})
	d, _ := w.AddDense([]float32{1, 2, 3})
	for ti, name := range []string{"a", "b"} {
		err := w.AddTask(TaskSpec{Name: name,
			Tensors: []TensorSpec{
				{Name: "w", Rows: 4, Cols: 3, Layer: 0, Indptr: []int32{0, 2, 3}, Indices: []int32{0, 1, 1}, Versions: []uint32{uint32(ti), 2, edge}},
				{Name: "v", Rows: 2, Cols: 2, Layer: 1, Indptr: []int32{0, 1}, Indices: []int32{0}, Versions: []uint32{uint32(ti + 1)}},
			},
			Dense: []DenseSpec{{Name: "bias", Shape: []int{3}, Blob: d}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	w.SetMeta("quality", []byte("{}"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rewriteManifest rewrites the store at path with its manifest changed by
// mutate and the footer's length and CRC fixed up, so that the reader's
// structural checks (not the checksum) must catch the damage.
func rewriteManifest(t *testing.T, orig []byte, path string, mutate func(m *Manifest) []byte) {
	t.Helper()
	ft, err := decodeFooter(orig[len(orig)-FooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeHeader(orig)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeManifest(orig[ft.manifestOffset:ft.manifestOffset+ft.manifestBytes], h, ft)
	if err != nil {
		t.Fatal(err)
	}
	man := mutate(m)
	ft.manifestBytes = uint64(len(man))
	ft.manifestCRC = crc(man)
	out := slices.Concat(orig[:ft.manifestOffset], man, ft.encode())
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func reencode(m *Manifest) []byte {
	keys := make([]string, 0, len(m.Meta))
	for k := range m.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return encodeManifest(m.VersionCRC, m.Dense, m.Meta, keys, m.Tasks)
}

// TestStructureErrors damages the manifest's content behind a valid
// checksum and checks that OpenStore names what is wrong and where.
func TestStructureErrors(t *testing.T) {
	dir := tmpDir(t)
	orig := tinyStore(t, filepath.Join(dir, "seed.dms"))
	bad := filepath.Join(dir, "bad.dms")
	cases := []struct {
		name   string
		mutate func(m *Manifest) []byte
		want   []string
	}{
		{"identity", func(m *Manifest) []byte { return reencode(m) }, nil},
		{"version out of range", func(m *Manifest) []byte {
			m.Tasks[1].Tensors[0].Versions[1] = 99
			return reencode(m)
		}, []string{`task "b"`, `tensor "w"`, "version 99 out of range"}},
		{"unsorted indices", func(m *Manifest) []byte {
			m.Tasks[0].Tensors[0].Indices[0], m.Tasks[0].Tensors[0].Indices[1] = 1, 0
			return reencode(m)
		}, []string{`task "a"`, `tensor "w"`, "indices-sorted"}},
		{"indptr end", func(m *Manifest) []byte {
			m.Tasks[0].Tensors[0].Indptr[2] = 2
			return reencode(m)
		}, []string{`tensor "w"`, "indptr"}},
		{"column out of range", func(m *Manifest) []byte {
			m.Tasks[0].Tensors[1].Indices[0] = 5
			return reencode(m)
		}, []string{`tensor "v"`, "indices-range"}},
		{"duplicate task", func(m *Manifest) []byte {
			m.Tasks[1].Name = "a"
			return reencode(m)
		}, []string{`"a"`, "repeated"}},
		{"duplicate tensor", func(m *Manifest) []byte {
			m.Tasks[0].Tensors[1] = m.Tasks[0].Tensors[0]
			return reencode(m)
		}, []string{`tensor "w" appears twice`}},
		{"dense shape", func(m *Manifest) []byte {
			m.Tasks[0].Dense[0].Shape = []int{4}
			return reencode(m)
		}, []string{`dense tensor "bias"`, "holds 4 values"}},
		{"dense blob outside region", func(m *Manifest) []byte {
			m.Dense[0].Offset = 8
			return reencode(m)
		}, []string{"dense blob 0", "outside the dense region"}},
		{"dense blob id", func(m *Manifest) []byte {
			m.Tasks[0].Dense[0].Blob = 7
			return reencode(m)
		}, []string{"blob 7 out of range"}},
		{"version count", func(m *Manifest) []byte {
			m.VersionCRC = m.VersionCRC[:2]
			return reencode(m)
		}, []string{"2 version CRCs, footer says 4"}},
		{"trailing bytes", func(m *Manifest) []byte { return append(reencode(m), 0) }, []string{"1 trailing bytes"}},
		{"huge count", func(m *Manifest) []byte {
			b := reencode(m)
			binary.LittleEndian.PutUint32(b, 0xffffffff)
			return b
		}, []string{"version CRCs"}},
		{"wrong version CRC", func(m *Manifest) []byte {
			m.VersionCRC[3] ^= 1
			return reencode(m)
		}, nil},
	}
	for _, c := range cases {
		rewriteManifest(t, orig, bad, c.mutate)
		s, err := OpenStore(bad)
		if c.want == nil {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if c.name == "wrong version CRC" {
				if err := s.ReadVersion(3, make([]float32, 4)); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: ReadVersion: %v", c.name, err)
				}
			}
			s.Close()
			continue
		}
		if err == nil {
			s.Close()
			t.Fatalf("%s: accepted", c.name)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v does not wrap ErrCorrupt", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
}

// FuzzDecodeManifest feeds arbitrary manifests (behind a valid checksum) to
// the decoder: it must return a manifest that passes its own checks or an
// error, never panic or allocate without bound.
func FuzzDecodeManifest(f *testing.F) {
	orig := tinyStore(f, filepath.Join(f.TempDir(), "seed.dms"))
	ft, _ := decodeFooter(orig[len(orig)-FooterSize:])
	h, _ := decodeHeader(orig)
	man := orig[ft.manifestOffset : ft.manifestOffset+ft.manifestBytes]
	f.Add(man)
	f.Add(man[:len(man)/2])
	f.Add([]byte{4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b, h, ft)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		for _, task := range m.Tasks {
			for i := range task.Tensors {
				if err := checkTensor(&task.Tensors[i], m.R, m.C, uint32(m.NumVersions()), new([]float32)); err != nil {
					t.Fatalf("accepted manifest fails its own check: %v", err)
				}
			}
		}
	})
}
