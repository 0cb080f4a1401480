//go:build linux

package diffload

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDirectIOAndFallback checks that the real disk is read with O_DIRECT
// and tmpfs falls back to buffered reads, saying so.
func TestDirectIOAndFallback(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.6, 12)
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type != unix.TMPFS_MAGIC {
		r := openRT(t, f.path, Options{Budget: 2 * f.largest(t), DirectIO: DirectForce})
		st := switchAndCheck(t, r, f, "taskA")
		if !st.DirectIO || st.FallbackReason != "" {
			t.Fatalf("real disk: DirectIO %v reason %q", st.DirectIO, st.FallbackReason)
		}
		switchAndCheck(t, r, f, "taskB")
	}
	r := openRT(t, f.path, Options{Budget: 2 * f.largest(t), DirectIO: DirectOff})
	if st := switchAndCheck(t, r, f, "taskA"); st.DirectIO || !strings.Contains(st.FallbackReason, "disabled") {
		t.Fatalf("DirectOff: DirectIO %v reason %q", st.DirectIO, st.FallbackReason)
	}
	shm := "/dev/shm"
	if err := unix.Statfs(shm, &sfs); err != nil || sfs.Type != unix.TMPFS_MAGIC {
		t.Skipf("no tmpfs at %s for the fallback case", shm)
	}
	sd, err := os.MkdirTemp(shm, "diffload-test-")
	if err != nil {
		t.Skipf("cannot use %s: %v", shm, err)
	}
	defer os.RemoveAll(sd)
	tf := writeFamily(t, sd, 32, 32, 2, 0.6, 12)
	// Kernels since 6.6 accept O_DIRECT on tmpfs; older ones answer EINVAL.
	// Either way the runtime must say what it does.
	r = openRT(t, tf.path, Options{Budget: 2 * tf.largest(t)})
	st := switchAndCheck(t, r, tf, "taskA")
	if probe, err := openDirect(tf.path); err == nil {
		probe.Close()
		if !st.DirectIO {
			t.Fatalf("tmpfs accepts O_DIRECT but the runtime fell back: %q", st.FallbackReason)
		}
	} else if st.DirectIO || !strings.Contains(st.FallbackReason, "O_DIRECT") {
		t.Fatalf("tmpfs refuses O_DIRECT (%v): DirectIO %v reason %q", err, st.DirectIO, st.FallbackReason)
	}
	switchAndCheck(t, r, tf, "taskB")
}

// TestDirectRefusedFallback injects the EINVAL a filesystem without direct
// I/O answers and checks the buffered fallback and its report.
func TestDirectRefusedFallback(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.6, 22)
	refuse := func(path string) (*os.File, error) {
		return nil, fmt.Errorf("open %s with O_DIRECT: %w (%w)", path, errDirectRefused, unix.EINVAL)
	}
	if _, err := Open(f.path, Options{Budget: f.largest(t), DirectIO: DirectForce, openDirect: refuse}); err == nil {
		t.Fatal("DirectForce with O_DIRECT refused succeeded")
	}
	r := openRT(t, f.path, Options{Budget: f.largest(t), openDirect: refuse})
	for _, task := range []string{"taskA", "taskB", "taskA"} {
		st := switchAndCheck(t, r, f, task)
		if st.DirectIO || !strings.Contains(st.FallbackReason, "invalid argument") {
			t.Fatalf("fallback: DirectIO %v reason %q", st.DirectIO, st.FallbackReason)
		}
	}
}
