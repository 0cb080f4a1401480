//go:build unix

package safetensors

import (
	"os"

	"golang.org/x/sys/unix"
)

func mapFile(f *os.File, size int64) ([]byte, func([]byte) error, error) {
	if size == 0 {
		return []byte{}, func([]byte) error { return nil }, nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, unix.Munmap, nil
}

func release(data []byte, begin, end int64) {
	pg := int64(os.Getpagesize())
	b := (begin + pg - 1) / pg * pg
	e := end / pg * pg
	if e > b {
		// Advice only: failure leaves the pages resident, which is harmless.
		_ = unix.Madvise(data[b:e], unix.MADV_DONTNEED)
	}
}
