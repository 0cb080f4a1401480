//go:build !linux

package diffload

import (
	"fmt"
	"io"
	"os"
	"unsafe"
)

// dioAlign reports no direct-I/O alignment outside Linux.
func dioAlign(path string) int { return 0 }

// openDirect refuses: direct I/O is only implemented on Linux.
func openDirect(path string) (*os.File, error) {
	return nil, fmt.Errorf("open %s with O_DIRECT: %w (not implemented on this OS)", path, errDirectRefused)
}

// dropCache is a no-op outside Linux.
func dropCache(f *os.File) {}

// preadFull reads len(p) bytes at off.
func preadFull(f *os.File, p []byte, off int64) error {
	_, err := f.ReadAt(p, off)
	if err == io.EOF {
		return fmt.Errorf("unexpected end of file at offset %d", off)
	}
	return err
}

// preadvFull reads the buffers one by one.
func preadvFull(f *os.File, iov [][]byte, off int64) error {
	for _, b := range iov {
		if err := preadFull(f, b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

// mapArena allocates the arena on the Go heap, aligned to 64 KiB.
func mapArena(n int) ([]byte, error) {
	const a = 1 << 16
	b := make([]byte, n+a)
	s := int((a - uintptr(unsafe.Pointer(&b[0]))%a) % a)
	return b[s : s+n : s+n], nil
}

// unmapArena lets the garbage collector reclaim the arena.
func unmapArena(b []byte) error { return nil }
