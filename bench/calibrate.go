package bench

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/profiles"
)

// CalibrateOptions control "dmbench calibrate".
type CalibrateOptions struct {
	// Dir is where the scratch file is written; it must be on the device the
	// weights will be read from. Empty means os.TempDir().
	Dir string
	// FileSize is the scratch file size. Zero means 256 MiB.
	FileSize int64
	// RequestSizes are the request sizes measured. Nil means 4 KiB, 64 KiB,
	// 256 KiB, 1 MiB and 4 MiB.
	RequestSizes []int64
	// InFlights are the queue depths measured. Nil means 1, 4 and 16.
	InFlights []int
	// PointTime bounds the time spent on one (size, depth) point. Zero
	// means 200 ms.
	PointTime time.Duration
	// RandomReads is the number of 4 KiB random reads timed at depth 1.
	// Zero means 400.
	RandomReads int
	// Kernel is the BSR kernel timed; nil means bsr.Generic.
	Kernel bsr.Kernel
	// Name is the profile name; empty means "local".
	Name string
	// Progress, when set, receives one line per measurement.
	Progress io.Writer
}

// Calibrate measures this machine and returns a profile: O_DIRECT read
// bandwidth and latency against request size and requests in flight, 4 KiB
// random read latency, memory read bandwidth and the BSR kernel's GFLOP/s,
// with the recommended request size, parallelism, coalescing gap and block
// shape derived from them.
func Calibrate(opt CalibrateOptions) (*profiles.Profile, error) {
	if opt.Dir == "" {
		opt.Dir = os.TempDir()
	}
	if opt.FileSize <= 0 {
		opt.FileSize = 256 << 20
	}
	if opt.RequestSizes == nil {
		opt.RequestSizes = []int64{4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20}
	}
	if opt.InFlights == nil {
		opt.InFlights = []int{1, 4, 16}
	}
	if opt.PointTime <= 0 {
		opt.PointTime = 200 * time.Millisecond
	}
	if opt.RandomReads <= 0 {
		opt.RandomReads = 400
	}
	if opt.Kernel == nil {
		opt.Kernel = bsr.Generic
	}
	if opt.Name == "" {
		opt.Name = "local"
	}
	logf := func(format string, args ...any) {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, format+"\n", args...)
		}
	}
	align := dioAlignment(opt.Dir)
	opt.FileSize = roundUp(opt.FileSize, int64(align))
	for _, s := range opt.RequestSizes {
		if s <= 0 || s%int64(align) != 0 || s > opt.FileSize {
			return nil, fmt.Errorf("calibrate: request size %d: want a positive multiple of the DIO alignment %d no larger than the scratch file (%d)", s, align, opt.FileSize)
		}
	}
	path, err := writeScratch(opt.Dir, opt.FileSize)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	logf("scratch file %s: %d MiB, DIO alignment %d", path, opt.FileSize>>20, align)

	p := &profiles.Profile{
		Name:   opt.Name,
		Source: fmt.Sprintf("measured by dmbench calibrate on %s in %s", time.Now().UTC().Format("2006-01-02"), opt.Dir),
		Storage: profiles.Storage{
			Kind:         storageKind(opt.Dir),
			DIOAlignment: align,
		},
	}
	direct := true
	for _, size := range opt.RequestSizes {
		for _, qd := range opt.InFlights {
			rp, d, err := measureReads(path, opt.FileSize, size, qd, opt.PointTime, align)
			if err != nil {
				return nil, fmt.Errorf("calibrate: %w", err)
			}
			direct = direct && d
			p.Storage.Reads = append(p.Storage.Reads, rp)
			logf("read %7d B x %2d in flight: %8.1f MB/s, %8.1f us/request", size, qd, rp.Bandwidth/1e6, rp.LatencyUS)
		}
	}
	if !direct {
		p.Source += " (O_DIRECT refused: buffered reads after POSIX_FADV_DONTNEED)"
	}
	lat, err := randomReadLatency(path, opt.FileSize, opt.RandomReads, align)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	p.Storage.RandRead4KLatencyUS = lat
	logf("4 KiB random read at depth 1: %.1f us", lat)

	// Recommendations: the best bandwidth, then the smallest request size
	// and depth within 5% of it.
	best := slices.MaxFunc(p.Storage.Reads, func(a, b profiles.ReadPoint) int { return cmpF(a.Bandwidth, b.Bandwidth) })
	p.Storage.SeqReadBandwidth = best.Bandwidth
	rec := best
	for _, r := range p.Storage.Reads {
		if r.Bandwidth >= 0.95*best.Bandwidth && (r.RequestBytes < rec.RequestBytes || (r.RequestBytes == rec.RequestBytes && r.InFlight < rec.InFlight)) {
			rec = r
		}
	}
	p.Loader = profiles.Loader{
		RequestBytes:     max(rec.RequestBytes, 256<<10),
		InFlight:         rec.InFlight,
		CoalesceGapBytes: coalesceGap(best.Bandwidth, lat, rec.InFlight, align),
	}
	p.Block = recommendBlock(align)
	p.MemoryBytes = memTotal()
	p.BudgetBytes = p.MemoryBytes / 4
	p.MemoryBandwidth = memoryBandwidth()
	logf("memory read bandwidth: %.1f GB/s", p.MemoryBandwidth/1e9)
	p.KernelGFLOPS = KernelGFLOPS(opt.Kernel, 768, 768, p.Block.R, p.Block.C, 0.5, 16, 200*time.Millisecond)
	p.Kernel = opt.Kernel.Name()
	logf("kernel %s: %.2f GFLOP/s (768x768, %dx%d blocks, density 0.5, batch 16, one thread)", p.Kernel, p.KernelGFLOPS, p.Block.R, p.Block.C)
	p.Description = fmt.Sprintf("this machine: %s storage, recommended %d KiB requests x %d in flight, coalescing gap %d KiB",
		p.Storage.Kind, p.Loader.RequestBytes>>10, p.Loader.InFlight, p.Loader.CoalesceGapBytes>>10)
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("calibrate: measured profile is invalid: %w", err)
	}
	return p, nil
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// coalesceGap is the number of bytes that can be read in the time one extra
// request costs (its latency, shared by the requests in flight): merging
// extents across a smaller gap is cheaper than issuing another request.
func coalesceGap(bw, latUS float64, inFlight, align int) int64 {
	g := int64(bw * latUS * 1e-6 / float64(max(inFlight, 1)))
	g = g / int64(align) * int64(align)
	return min(max(g, 0), 4<<20)
}

// recommendBlock picks the square-ish fp32 block whose size is a multiple
// of the DIO alignment, at least 32 x 32 (4 KiB, the kernels' sweet spot).
func recommendBlock(align int) profiles.BlockShape {
	r, c := 32, 32
	for r*c*4 < align {
		if c <= r {
			c *= 2
		} else {
			r *= 2
		}
	}
	return profiles.BlockShape{R: r, C: c}
}

// writeScratch writes size random bytes to a new file in dir and syncs it.
func writeScratch(dir string, size int64) (string, error) {
	f, err := os.CreateTemp(dir, "dmbench-calibrate-*.scratch")
	if err != nil {
		return "", fmt.Errorf("calibrate: creating scratch file in %s: %w", dir, err)
	}
	path := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("calibrate: writing scratch file %s: %w", path, err)
	}
	chunk := make([]byte, 4<<20)
	if _, err := rand.Read(chunk); err != nil {
		return fail(err)
	}
	w := bufio.NewWriterSize(f, len(chunk))
	for left := size; left > 0; {
		n := min(left, int64(len(chunk)))
		chunk[0]++ // no two chunks alike, so nothing below can dedup them
		if _, err := w.Write(chunk[:n]); err != nil {
			return fail(err)
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("calibrate: closing scratch file %s: %w", path, err)
	}
	return path, nil
}

// measureReads reads the file sequentially (wrapping around) in size-byte
// requests with qd workers for about d, and returns the bandwidth and mean
// request latency.
func measureReads(path string, fileSize, size int64, qd int, d time.Duration, align int) (profiles.ReadPoint, bool, error) {
	f, direct, _, err := openForRead(path, DirectAuto)
	if err != nil {
		return profiles.ReadPoint{}, false, err
	}
	defer f.Close()
	fd := int(f.Fd())
	nslots := fileSize / size
	var (
		mu      sync.Mutex
		next    int64
		bytes   int64
		reqs    int64
		latSum  time.Duration
		first   error
		wg      sync.WaitGroup
		start   = time.Now()
		maxByte = max(4*fileSize, 64<<20)
	)
	for w := 0; w < qd; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := AlignedBuffer(size, align)
			for {
				mu.Lock()
				// Stop when time or bytes run out, but only once a request
				// has completed: on a loaded machine the point's time can
				// pass before the first read is even issued.
				if first != nil || (reqs > 0 && (time.Since(start) > d || bytes >= maxByte)) {
					mu.Unlock()
					return
				}
				off := (next % nslots) * size
				next++
				mu.Unlock()
				t0 := time.Now()
				n, err := unix.Pread(fd, buf, off)
				lat := time.Since(t0)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("pread %d bytes at %d of %s: %w", size, off, path, err)
				}
				bytes += int64(n)
				reqs++
				latSum += lat
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if first != nil {
		return profiles.ReadPoint{}, direct, first
	}
	if reqs == 0 || bytes == 0 {
		return profiles.ReadPoint{}, direct, fmt.Errorf("reading %s: no bytes read at request size %d", path, size)
	}
	return profiles.ReadPoint{
		RequestBytes: size, InFlight: qd,
		Bandwidth: float64(bytes) / el.Seconds(),
		LatencyUS: float64(latSum.Microseconds()) / float64(reqs),
	}, direct, nil
}

// randomReadLatency times n 4 KiB (or one alignment unit, if larger) reads
// at random aligned offsets, one at a time, and returns the mean in us.
func randomReadLatency(path string, fileSize int64, n, align int) (float64, error) {
	f, _, _, err := openForRead(path, DirectAuto)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size := int64(max(4096, align))
	buf := AlignedBuffer(size, align)
	rng := mrand.New(mrand.NewPCG(1, 2))
	var total time.Duration
	for i := 0; i < n; i++ {
		off := rng.Int64N(fileSize/size) * size
		t0 := time.Now()
		if _, err := unix.Pread(int(f.Fd()), buf, off); err != nil {
			return 0, fmt.Errorf("random pread at %d of %s: %w", off, path, err)
		}
		total += time.Since(t0)
	}
	return float64(total.Nanoseconds()) / 1e3 / float64(n), nil
}

// memoryBandwidth measures the streaming read bandwidth of main memory by
// summing a 64 MiB buffer; the best of a few passes.
func memoryBandwidth() float64 {
	buf := make([]uint64, 8<<20)
	for i := range buf {
		buf[i] = uint64(i)
	}
	best := 0.0
	var sink uint64
	for pass := 0; pass < 5; pass++ {
		t0 := time.Now()
		var s0, s1, s2, s3 uint64
		for i := 0; i+4 <= len(buf); i += 4 {
			s0 += buf[i]
			s1 += buf[i+1]
			s2 += buf[i+2]
			s3 += buf[i+3]
		}
		sink += s0 + s1 + s2 + s3
		if bw := float64(len(buf)*8) / time.Since(t0).Seconds(); bw > best {
			best = bw
		}
	}
	if sink == 1 {
		fmt.Fprint(io.Discard, sink)
	}
	return best
}

// KernelGFLOPS times k on a rows x cols matrix of R x C blocks at the given
// block density, batch n, one thread, for about d, and returns GFLOP/s
// counting 2 flops per stored weight per batch column.
func KernelGFLOPS(k bsr.Kernel, rows, cols, R, C int, density float64, n int, d time.Duration) float64 {
	rng := mrand.New(mrand.NewPCG(3, 4))
	dense := make([]float32, rows*cols)
	for i := range dense {
		dense[i] = float32(rng.NormFloat64())
	}
	mask := bsr.NewMask(rows, cols, R, C)
	for i := range mask.Keep {
		mask.Keep[i] = rng.Float64() < density
	}
	m, err := bsr.FromDense(dense, rows, cols, R, C, mask)
	if err != nil {
		return 0
	}
	v := m.View()
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]float32, n*rows)
	opt := bsr.Options{Workers: 1}
	flops := 2 * float64(m.NNZB()*R*C) * float64(n)
	iters := 0
	t0 := time.Now()
	for time.Since(t0) < d || iters == 0 {
		if err := bsr.LinearWith(k, y, x, n, v, nil, opt); err != nil {
			return 0
		}
		iters++
	}
	return flops * float64(iters) / time.Since(t0).Seconds() / 1e9
}

// dioAlignment returns the directory's O_DIRECT offset alignment from statx
// (STATX_DIOALIGN), at least 512, or 4096 when unknown.
func dioAlignment(dir string) int {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, 0, unix.STATX_DIOALIGN, &st); err == nil && st.Mask&unix.STATX_DIOALIGN != 0 && st.Dio_offset_align > 0 {
		return max(int(max(st.Dio_offset_align, st.Dio_mem_align)), 512)
	}
	return 4096
}

// storageKind guesses the device class of the block device holding dir from
// its sysfs name: nvme, emmc/microsd (mmcblk), virtio (vd*), ssd or hdd (sd*).
func storageKind(dir string) string {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "unknown"
	}
	link, err := filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return "unknown"
	}
	dev := filepath.Base(link)
	if _, err := os.Stat(filepath.Join(link, "partition")); err == nil {
		dev = filepath.Base(filepath.Dir(link))
	}
	rot := ""
	if b, err := os.ReadFile(filepath.Join("/sys/block", dev, "queue/rotational")); err == nil {
		rot = strings.TrimSpace(string(b))
	}
	switch {
	case strings.HasPrefix(dev, "nvme"):
		return "nvme"
	case strings.HasPrefix(dev, "mmcblk"):
		return "mmc"
	case strings.HasPrefix(dev, "vd"):
		return "virtio"
	case strings.HasPrefix(dev, "sd") && rot == "1":
		return "hdd"
	case strings.HasPrefix(dev, "sd"):
		return "ssd"
	case dev != "":
		return dev
	}
	return "unknown"
}

// memTotal returns MemTotal from /proc/meminfo in bytes, or 1 GiB if it
// cannot be read.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) >= 1 {
					if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
						return kb << 10
					}
				}
			}
		}
	}
	return 1 << 30
}
