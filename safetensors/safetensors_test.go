package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func rawFile(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	w := []float32{1, -2.5, 0.125, 3e-5, 65504, -0}
	ts := []Tensor{
		FromFloat32("w32", F32, []int{2, 3}, w),
		FromFloat32("w16", F16, []int{6}, w),
		FromFloat32("wbf", BF16, []int{3, 2}, w),
		FromInt32("idx", []int{3}, []int32{-1, 7, math.MaxInt32}),
		FromUint8("mask", []int{2}, []uint8{0, 1}),
		{Name: "scalar", DType: F32, Shape: nil, Data: []byte{0, 0, 128, 63}},
		{Name: "empty", DType: F32, Shape: []int{0, 4}, Data: nil},
	}
	if err := WriteFile(p, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata()["format"] != "pt" {
		t.Fatalf("metadata %v", f.Metadata())
	}
	if len(f.Tensors()) != len(ts) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors()), len(ts))
	}
	for _, name := range []string{"w32", "w16", "wbf"} {
		v, info, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumElements() != 6 || len(v) != 6 {
			t.Fatalf("%s: %d elements", name, len(v))
		}
		for i := range w {
			tol := 0.0
			if name == "w16" {
				tol = math.Abs(float64(w[i])) / 1024
			}
			if name == "wbf" {
				tol = math.Abs(float64(w[i])) / 128
			}
			if d := math.Abs(float64(v[i] - w[i])); d > tol {
				t.Errorf("%s[%d] = %g, want %g (tol %g)", name, i, v[i], w[i], tol)
			}
		}
		vv, _, err := f.Float32View(name)
		if err != nil || len(vv) != 6 || vv[1] != v[1] {
			t.Fatalf("%s view %v %v", name, vv, err)
		}
	}
	idx, _, err := f.Int32("idx")
	if err != nil || idx[0] != -1 || idx[2] != math.MaxInt32 {
		t.Fatalf("idx %v %v", idx, err)
	}
	m, _, err := f.Uint8("mask")
	if err != nil || m[1] != 1 {
		t.Fatalf("mask %v %v", m, err)
	}
	s, info, err := f.Float32("scalar")
	if err != nil || len(s) != 1 || s[0] != 1 || len(info.Shape) != 0 {
		t.Fatalf("scalar %v %v %v", s, info, err)
	}
	if _, _, err := f.Int32("w32"); err == nil {
		t.Fatal("Int32 of an F32 tensor succeeded")
	}
	if _, _, err := f.Float32("idx"); !errors.Is(err, ErrDType) {
		t.Fatalf("Float32 of I32: %v, want ErrDType", err)
	}
	if _, _, err := f.Float32("nope"); err == nil || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), p) {
		t.Fatalf("missing tensor error %v should name tensor and file", err)
	}
	f.Release("w32")
	if v, _, _ := f.Float32("w32"); v[0] != 1 {
		t.Fatal("data changed after Release")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestHalf(t *testing.T) {
	// Every finite half converts to float32 and back unchanged.
	for h := 0; h < 1<<16; h++ {
		f := HalfToFloat32(uint16(h))
		if f != f {
			continue
		}
		if back := Float32ToHalf(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %g -> %#04x", h, f, back)
		}
	}
	cases := map[float32]uint16{1: 0x3c00, -2: 0xc000, 65504: 0x7bff, 1e6: 0x7c00, 5.960464477539063e-08: 0x0001, 1e-9: 0}
	for f, want := range cases {
		if got := Float32ToHalf(f); got != want {
			t.Errorf("Float32ToHalf(%g) = %#04x, want %#04x", f, got, want)
		}
	}
	if HalfToFloat32(0x0001) != 5.960464477539063e-08 {
		t.Error("smallest subnormal")
	}
	if Float32ToBF16(1) != 0x3f80 || Float32ToBF16(float32(math.NaN()))&0x7f80 != 0x7f80 {
		t.Error("bf16")
	}
}

func TestBadHeaders(t *testing.T) {
	f32 := make([]byte, 8)
	cases := []struct {
		name, want string
		file       []byte
	}{
		{"short", "shorter than", []byte{1, 2, 3}},
		{"truncated header", "runs past the end", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, nil)[:20]},
		{"truncated data", "past the", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32[:4])},
		{"lying offsets", "needs 8 bytes", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, f32[:4])},
		{"unknown dtype", "unknown dtype", rawFile(`{"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}}`, f32[:2])},
		{"overlap", "overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32)},
		{"hole", "hole", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32)},
		{"trailing", "trailing bytes", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32)},
		{"duplicate", "twice", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32[:4])},
		{"negative dim", "non-negative", rawFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f32[:4])},
		{"missing field", "needs dtype", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, f32[:4])},
		{"bad metadata", "__metadata__", rawFile(`{"__metadata__":{"a":1}}`, nil)},
		{"not object", "object", rawFile(`[1]`, nil)},
		{"junk after", "trailing content", rawFile(`{} {}`, nil)},
		{"huge length", "exceeds", append([]byte{0, 0, 0, 0, 0, 0, 0, 1}, f32...)},
		{"overflow shape", "more than", rawFile(`{"a":{"dtype":"F64","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}}`, nil)},
	}
	dir := t.TempDir()
	for _, c := range cases {
		_, err := ParseHeader(c.file, int64(len(c.file)))
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseHeader error %v, want ErrFormat containing %q", c.name, err, c.want)
		}
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
		os.WriteFile(p, c.file, 0o644)
		if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: Open error %v should name the file", c.name, err)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); err == nil || !os.IsNotExist(errors.Unwrap(err)) && !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
	// Valid edge cases: empty header object, whitespace padding.
	for _, h := range []string{`{}`, `{}      `, `{"__metadata__":{"k":"v"}}`} {
		if _, err := ParseHeader(rawFile(h, nil), int64(8+len(h))); err != nil {
			t.Errorf("header %q: %v", h, err)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(rawFile(`{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[],"data_offsets":[8,9]}}`, make([]byte, 9)))
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b, int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		dataLen := int64(len(b)) - h.DataStart
		var pos int64
		for _, ti := range h.Tensors {
			if ti.Begin != pos || ti.End < ti.Begin || ti.End > dataLen {
				t.Fatalf("accepted bad offsets %+v (pos %d, data %d)", ti, pos, dataLen)
			}
			if ti.NumElements()*int64(ti.DType.Size()) != ti.End-ti.Begin {
				t.Fatalf("accepted lying offsets %+v", ti)
			}
			pos = ti.End
		}
		if pos != dataLen {
			t.Fatalf("accepted %d data bytes covering %d", dataLen, pos)
		}
	})
}
