package bench

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

func writeTemp(t *testing.T, dir string, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	path := filepath.Join(dir, "blob")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func TestReadWhole(t *testing.T) {
	path, data := writeTemp(t, t.TempDir(), 3<<20+8192)
	buf := AlignedBuffer(int64(len(data)), 4096)
	st, err := ReadWhole(path, int64(len(data)), buf, ReaderOptions{RequestSize: 1 << 20, InFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:len(data)], data) {
		t.Fatal("read bytes differ from the file")
	}
	if st.Requests != 4 || st.Bytes != int64(len(data)) {
		t.Errorf("stats %+v: want 4 requests, %d bytes", st, len(data))
	}
	if !st.Direct {
		t.Logf("O_DIRECT refused in %s: %s", filepath.Dir(path), st.FallbackReason)
	}
	if _, err := ReadWhole(path, int64(len(data)), buf[:4096], ReaderOptions{}); err == nil {
		t.Error("short buffer accepted")
	}
	if _, err := ReadWhole(path, int64(len(data)), buf[1:], ReaderOptions{}); err == nil {
		t.Error("misaligned buffer accepted")
	}
	// Past the end of the file: an error naming the file.
	if _, err := ReadWhole(path, int64(len(data))+4096, AlignedBuffer(int64(len(data))+4096, 4096), ReaderOptions{}); err == nil {
		t.Error("reading past the end accepted")
	}
}

func TestReadWholeFallback(t *testing.T) {
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		t.Skip("no /dev/shm tmpfs to exercise the buffered fallback")
	}
	dir, err := os.MkdirTemp("/dev/shm", "dmbench-test")
	if err != nil {
		t.Skipf("cannot write to /dev/shm: %v", err)
	}
	defer os.RemoveAll(dir)
	path, data := writeTemp(t, dir, 64<<10)
	buf := AlignedBuffer(int64(len(data)), 4096)
	st, err := ReadWhole(path, int64(len(data)), buf, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data) {
		t.Error("tmpfs read differs from the file")
	}
	if st.Direct {
		// tmpfs accepts O_DIRECT since Linux 6.6: nothing falls back here.
		t.Logf("tmpfs accepted O_DIRECT on this kernel")
	} else {
		if st.FallbackReason == "" {
			t.Error("buffered fallback without a reason")
		}
		if _, err := ReadWhole(path, int64(len(data)), buf, ReaderOptions{Direct: DirectForce}); err == nil {
			t.Error("DirectForce accepted where O_DIRECT is refused")
		}
	}
	clear(buf)
	st, err = ReadWhole(path, int64(len(data)), buf, ReaderOptions{Direct: DirectOff})
	if err != nil || st.Direct || st.FallbackReason == "" || !bytes.Equal(buf, data) {
		t.Errorf("DirectOff: %+v %v; want a correct buffered read with its reason", st, err)
	}
}
