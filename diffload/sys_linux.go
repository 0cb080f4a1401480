//go:build linux

package diffload

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// dioAlign returns the direct-I/O offset alignment the kernel reports for
// path through statx STATX_DIOALIGN, or 0 when it does not report one.
func dioAlign(path string) int {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_DIOALIGN, &stx); err != nil {
		return 0
	}
	if stx.Mask&unix.STATX_DIOALIGN == 0 {
		return 0
	}
	return int(max(stx.Dio_offset_align, stx.Dio_mem_align))
}

// openDirect opens path read-only with O_DIRECT. The error wraps
// errDirectRefused when the filesystem refuses direct I/O (EINVAL, as tmpfs
// answers).
func openDirect(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("open %s with O_DIRECT: %w (%w)", path, errDirectRefused, err)
		}
		return nil, fmt.Errorf("open %s with O_DIRECT: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// dropCache asks the kernel to drop the file's cached pages, so buffered
// fallback reads neither pollute nor profit from the page cache.
func dropCache(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// preadFull reads len(p) bytes at off, retrying short reads and EINTR.
func preadFull(f *os.File, p []byte, off int64) error {
	fd := int(f.Fd())
	for len(p) > 0 {
		n, err := unix.Pread(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("unexpected end of file at offset %d", off)
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}

// preadvFull reads into the buffers of iov in order at off, retrying short
// reads and EINTR. iov is consumed.
func preadvFull(f *os.File, iov [][]byte, off int64) error {
	fd := int(f.Fd())
	for len(iov) > 0 {
		n, err := unix.Preadv(fd, iov, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("unexpected end of file at offset %d", off)
		}
		off += int64(n)
		for n > 0 && len(iov) > 0 {
			if n >= len(iov[0]) {
				n -= len(iov[0])
				iov = iov[1:]
			} else {
				iov[0] = iov[0][n:]
				n = 0
			}
		}
		for len(iov) > 0 && len(iov[0]) == 0 {
			iov = iov[1:]
		}
	}
	return nil
}

// mapArena maps n bytes of anonymous memory outside the Go heap.
func mapArena(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("mmap %d-byte arena: %w", n, err)
	}
	return b, nil
}

// unmapArena releases memory from mapArena.
func unmapArena(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return unix.Munmap(b)
}
