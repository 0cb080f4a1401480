package bench

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DirectMode chooses whether reads bypass the page cache.
type DirectMode int

const (
	// DirectAuto uses O_DIRECT and falls back to buffered reads (with the
	// file's cached pages dropped first) when the file system refuses it.
	DirectAuto DirectMode = iota
	// DirectForce fails when O_DIRECT is refused.
	DirectForce
	// DirectOff always reads through the page cache (after dropping the
	// file's cached pages).
	DirectOff
)

// ReaderOptions are the loader settings a whole-file read uses: the same
// request size and number of requests in flight as the differential loader.
type ReaderOptions struct {
	// RequestSize is the size of each read request in bytes; it is rounded
	// up to Alignment. Zero means 1 MiB.
	RequestSize int64
	// InFlight is the number of requests outstanding at once. Zero means 4.
	InFlight int
	// Direct chooses O_DIRECT or buffered reads.
	Direct DirectMode
	// Alignment is the O_DIRECT alignment of offsets, lengths and buffers.
	// Zero means 4096.
	Alignment int
}

func (o ReaderOptions) withDefaults() ReaderOptions {
	if o.RequestSize <= 0 {
		o.RequestSize = 1 << 20
	}
	if o.InFlight <= 0 {
		o.InFlight = 4
	}
	if o.Alignment <= 0 {
		o.Alignment = 4096
	}
	o.RequestSize = roundUp(o.RequestSize, int64(o.Alignment))
	return o
}

// ReadStats describes one whole-file read.
type ReadStats struct {
	// Bytes is the number of bytes read from the device.
	Bytes int64
	// Requests is the number of read requests issued.
	Requests int
	// Duration is the time from open to the last byte.
	Duration time.Duration
	// Direct reports whether O_DIRECT was used.
	Direct bool
	// FallbackReason says why O_DIRECT was not used, if it was not.
	FallbackReason string
}

// Bandwidth returns bytes per second.
func (s ReadStats) Bandwidth() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Duration.Seconds()
}

func roundUp(n, a int64) int64 { return (n + a - 1) / a * a }

// AlignedBuffer returns a byte slice of n bytes (rounded up to align) whose
// first byte is aligned to align, as O_DIRECT requires.
func AlignedBuffer(n int64, align int) []byte {
	if align <= 0 {
		align = 4096
	}
	n = roundUp(n, int64(align))
	raw := make([]byte, n+int64(align))
	off := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) % uintptr(align)); r != 0 {
		off = align - r
	}
	return raw[off : off+int(n) : off+int(n)]
}

// openForRead opens path for reading with O_DIRECT as mode asks, and returns
// whether O_DIRECT is in effect and, if not, why.
func openForRead(path string, mode DirectMode) (*os.File, bool, string, error) {
	if mode != DirectOff {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECT, 0)
		if err == nil {
			return os.NewFile(uintptr(fd), path), true, "", nil
		}
		if !errors.Is(err, unix.EINVAL) || mode == DirectForce {
			return nil, false, "", fmt.Errorf("opening %s with O_DIRECT: %w", path, err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false, "", fmt.Errorf("opening %s: %w", path, err)
	}
	reason := "O_DIRECT off by request"
	if mode != DirectOff {
		reason = "file system refused O_DIRECT (EINVAL); buffered reads after POSIX_FADV_DONTNEED"
	}
	// Drop cached pages so the read measures the device, as far as the
	// kernel lets us.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return f, false, reason, nil
}

// ReadWhole reads the first size bytes of path (size rounded up to the
// alignment; the file must be padded to it, as the files this package writes
// are) into dst with RequestSize requests, InFlight of them outstanding. dst
// must be aligned (see AlignedBuffer) and hold the rounded size.
func ReadWhole(path string, size int64, dst []byte, opt ReaderOptions) (ReadStats, error) {
	opt = opt.withDefaults()
	start := time.Now()
	total := roundUp(size, int64(opt.Alignment))
	if int64(len(dst)) < total {
		return ReadStats{}, fmt.Errorf("reading %s: buffer holds %d bytes, want %d", path, len(dst), total)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(dst)))%uintptr(opt.Alignment) != 0 {
		return ReadStats{}, fmt.Errorf("reading %s: buffer not aligned to %d bytes", path, opt.Alignment)
	}
	f, direct, reason, err := openForRead(path, opt.Direct)
	if err != nil {
		return ReadStats{}, err
	}
	defer f.Close()
	st := ReadStats{Direct: direct, FallbackReason: reason}
	n, reqs, err := readRange(f, dst[:total], 0, opt)
	st.Bytes, st.Requests = n, reqs
	st.Duration = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("reading %s: %w", path, err)
	}
	return st, nil
}

// readRange reads len(dst) bytes at offset off of f in requests of
// opt.RequestSize with opt.InFlight workers.
func readRange(f *os.File, dst []byte, off int64, opt ReaderOptions) (int64, int, error) {
	total := int64(len(dst))
	nreq := int((total + opt.RequestSize - 1) / opt.RequestSize)
	if nreq == 0 {
		return 0, 0, nil
	}
	workers := min(opt.InFlight, nreq)
	var (
		mu    sync.Mutex
		next  int
		first error
		bytes int64
		wg    sync.WaitGroup
	)
	fd := int(f.Fd())
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first != nil || next >= nreq {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				lo := int64(i) * opt.RequestSize
				hi := min(lo+opt.RequestSize, total)
				buf := dst[lo:hi]
				got := 0
				for got < len(buf) {
					n, err := unix.Pread(fd, buf[got:], off+lo+int64(got))
					if err == unix.EINTR {
						continue
					}
					if err == nil && n == 0 {
						err = fmt.Errorf("unexpected end of file at offset %d (want %d more bytes)", off+lo+int64(got), len(buf)-got)
					}
					if err != nil {
						mu.Lock()
						if first == nil {
							first = fmt.Errorf("pread at offset %d: %w", off+lo+int64(got), err)
						}
						mu.Unlock()
						return
					}
					got += n
				}
				mu.Lock()
				bytes += int64(got)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return bytes, nreq, first
}
