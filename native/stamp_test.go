package native

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
)

// The Go build cache hashes only the files of the package directory, so an
// edit under csrc/ alone would leave a stale object in the cache. kernels.c
// therefore carries a digest of csrc/: this test fails until the digest is
// updated (run it with DMSPARSE_UPDATE_STAMP=1 to rewrite it), and changing
// the digest changes kernels.c, which makes Go recompile the kernels.

var stampRe = regexp.MustCompile(`csrc digest: ([0-9a-f]*)`)

func csrcDigest(t *testing.T) string {
	t.Helper()
	var names []string
	for _, pat := range []string{"*.c", "*.h"} {
		m, err := filepath.Glob(filepath.Join("..", "csrc", pat))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m...)
	}
	if len(names) == 0 {
		t.Fatal("no C sources found in ../csrc")
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatalf("reading %s: %v", n, err)
		}
		h.Write([]byte(filepath.Base(n)))
		h.Write([]byte{0})
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func TestCSourcesStamp(t *testing.T) {
	want := csrcDigest(t)
	src, err := os.ReadFile("kernels.c")
	if err != nil {
		t.Fatal(err)
	}
	m := stampRe.FindSubmatch(src)
	if m == nil {
		t.Fatal("kernels.c has no \"csrc digest:\" line")
	}
	if string(m[1]) == want {
		return
	}
	if os.Getenv("DMSPARSE_UPDATE_STAMP") == "1" {
		out := stampRe.ReplaceAll(src, []byte("csrc digest: "+want))
		if err := os.WriteFile("kernels.c", out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("kernels.c digest updated to %s; rebuild", want)
		return
	}
	t.Fatalf("csrc/ changed since native/kernels.c was stamped (digest %s, stamped %s): run DMSPARSE_UPDATE_STAMP=1 go test -run CSourcesStamp ./native so that the Go build cache recompiles the kernels", want, m[1])
}
