package diffload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DeviceResult is a sequential read bandwidth measurement of a file.
type DeviceResult struct {
	// Path is the scratch file measured.
	Path string
	// Bytes is the number of bytes read per pass.
	Bytes int64
	// RequestSize and Depth describe the reads: Depth requests of
	// RequestSize bytes in flight.
	RequestSize int64
	Depth       int
	// Seconds is the best pass's duration; Bandwidth is Bytes/Seconds.
	Seconds   float64
	Bandwidth float64
	// DirectIO reports whether the reads used O_DIRECT.
	DirectIO bool
}

// WriteScratch writes a file of size bytes (rounded up to 1 MiB) of
// pseudo-random data and fsyncs it.
func WriteScratch(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("scratch file: %w", err)
	}
	buf := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		buf[0], buf[1] = byte(off>>20), byte(off>>28)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return fmt.Errorf("scratch file %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("scratch file %s: fsync: %w", path, err)
	}
	return f.Close()
}

// MeasureDevice reads the file at path sequentially, the way fio does:
// depth goroutines each keep one reqSize-byte O_DIRECT pread in flight at
// the next offset. It takes the best of passes passes. Without O_DIRECT
// (tmpfs on old kernels) it reads buffered after dropping the page cache
// and says so.
func MeasureDevice(ctx context.Context, path string, reqSize int64, depth, passes int) (*DeviceResult, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("measure device: %w", err)
	}
	size := st.Size() / reqSize * reqSize
	if size == 0 {
		return nil, fmt.Errorf("measure device: %s has %d bytes, want at least one %d-byte request", path, st.Size(), reqSize)
	}
	res := &DeviceResult{Path: path, Bytes: size, RequestSize: reqSize, Depth: depth}
	f, err := openDirect(path)
	if err == nil {
		res.DirectIO = true
	} else if errors.Is(err, errDirectRefused) {
		if f, err = os.Open(path); err != nil {
			return nil, fmt.Errorf("measure device: %w", err)
		}
	} else {
		return nil, fmt.Errorf("measure device: %w", err)
	}
	defer f.Close()
	mem, err := mapArena(int(reqSize) * depth)
	if err != nil {
		return nil, fmt.Errorf("measure device: %w", err)
	}
	defer unmapArena(mem)
	best := time.Duration(0)
	for pass := 0; pass < max(1, passes); pass++ {
		if !res.DirectIO {
			dropCache(f)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		var firstErr error
		var once sync.Once
		t0 := time.Now()
		for g := 0; g < depth; g++ {
			wg.Add(1)
			go func(buf []byte) {
				defer wg.Done()
				for ctx.Err() == nil {
					off := (next.Add(1) - 1) * reqSize
					if off >= size {
						return
					}
					if err := preadFull(f, buf, off); err != nil {
						once.Do(func() { firstErr = fmt.Errorf("measure device: read %s at %d: %w", path, off, err) })
						return
					}
				}
			}(mem[int64(g)*reqSize : int64(g+1)*reqSize])
		}
		wg.Wait()
		d := time.Since(t0)
		if firstErr != nil {
			return nil, firstErr
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("measure device: %w", err)
		}
		if best == 0 || d < best {
			best = d
		}
	}
	res.Seconds = best.Seconds()
	res.Bandwidth = float64(size) / res.Seconds
	return res, nil
}

// BenchLayout selects how WriteBenchStore lays out the two tasks' specific
// block versions.
type BenchLayout int

const (
	// LayoutExtents puts each task's specific versions in a few long runs
	// (the packer's layout), so a switch reads a few long extents.
	LayoutExtents BenchLayout = iota
	// LayoutScattered interleaves each task's specific versions one by one
	// among the shared ones, far enough apart that no coalescing merges
	// them, so a switch reads scattered single blocks.
	LayoutScattered
)

// String names the layout.
func (l BenchLayout) String() string {
	if l == LayoutScattered {
		return "scattered"
	}
	return "extents"
}

// benchStride is the spacing of one task's versions in LayoutScattered:
// 24 versions (96 KiB for 32 x 32 fp32), beyond the default coalescing gap.
const benchStride = 24

// WriteBenchStore writes a two-task store ("x", "y") of 32 x 32 fp32 blocks
// in which each task has diffBytes of specific block versions and both
// share baseBytes; a switch between them at a budget of one task reads
// exactly the other task's diffBytes. Tensors are 1024 x 1024 (1024 blocks,
// one per layer).
func WriteBenchStore(path string, layout BenchLayout, diffBytes, baseBytes int64) error {
	const R, C, blk = 32, 32, 4096
	k := int(max(1, diffBytes/blk))
	nb := int(max(0, baseBytes/blk))
	if layout == LayoutScattered {
		// Every benchStride versions hold one x and one y version.
		nb = max(nb, k*(benchStride-2))
	}
	w, err := CreateStore(path, WriterOptions{R: R, C: C, Alignment: MinAlignment})
	if err != nil {
		return err
	}
	defer w.Abort()
	data := make([]float32, R*C)
	serial := 0
	add := func() (uint32, error) {
		serial++
		// Distinct contents so that deduplication keeps every version.
		data[0], data[1] = float32(serial), float32(serial>>20)
		data[R*C-1] = float32(serial % 977)
		return w.AddVersion(data)
	}
	var xs, ys, base []uint32
	emit := func(dst *[]uint32) error {
		id, err := add()
		*dst = append(*dst, id)
		return err
	}
	switch layout {
	case LayoutExtents:
		// Four runs per task: x1 y1 x2 y2 x3 y3 x4 y4, then the base.
		runs := 4
		for r := 0; r < runs; r++ {
			n := k/runs + boolInt(r < k%runs)
			for i := 0; i < n; i++ {
				if err := emit(&xs); err != nil {
					return err
				}
			}
			for i := 0; i < n; i++ {
				if err := emit(&ys); err != nil {
					return err
				}
			}
		}
		for i := 0; i < nb; i++ {
			if err := emit(&base); err != nil {
				return err
			}
		}
	case LayoutScattered:
		for len(xs) < k || len(base) < nb {
			for j := 0; j < benchStride; j++ {
				var err error
				switch {
				case j == 0 && len(xs) < k:
					err = emit(&xs)
				case j == benchStride/2 && len(ys) < k:
					err = emit(&ys)
				case j != 0 && j != benchStride/2 && len(base) < nb:
					err = emit(&base)
				}
				if err != nil {
					return err
				}
			}
		}
	default:
		return fmt.Errorf("bench store: unknown layout %d", layout)
	}
	for _, task := range []struct {
		name string
		own  []uint32
	}{{"x", xs}, {"y", ys}} {
		// Layer order follows the file order of the versions so that the
		// pipelined reader streams.
		all := slices.Concat(task.own, base)
		slices.Sort(all)
		spec := TaskSpec{Name: task.name}
		for layer := 0; len(all) > 0; layer++ {
			n := min(len(all), 1024)
			rows := (n + 31) / 32
			ts := TensorSpec{Name: fmt.Sprintf("layer%d.w", layer), Rows: rows * R, Cols: 32 * C, Layer: layer,
				Indptr: make([]int32, rows+1), Indices: make([]int32, n), Versions: all[:n:n]}
			for b := 0; b < n; b++ {
				ts.Indices[b] = int32(b % 32)
				ts.Indptr[b/32+1] = int32(b + 1)
			}
			for i := 1; i <= rows; i++ {
				ts.Indptr[i] = max(ts.Indptr[i], ts.Indptr[i-1])
			}
			spec.Tensors = append(spec.Tensors, ts)
			all = all[n:]
		}
		if err := w.AddTask(spec); err != nil {
			return err
		}
	}
	return w.Commit()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CaseResult summarises the switches of one loader case.
type CaseResult struct {
	// Name is the case ("extents" or "scattered").
	Name string
	// Switches is the number of timed switches.
	Switches int
	// BytesPerSwitch, RequestsPerSwitch and ExtentsPerSwitch are means.
	BytesPerSwitch    int64
	RequestsPerSwitch float64
	ExtentsPerSwitch  float64
	// Mean, P50 and Max latency of a full switch; FirstLayer is the mean
	// first-layer-ready time.
	Mean, P50, Max, FirstLayer time.Duration
	// Bandwidth is total bytes over total read time, in bytes/s.
	Bandwidth float64
	// DeviceBandwidth is the device's sequential O_DIRECT bandwidth measured
	// just before this case (two passes, total bytes over total time);
	// OfDevice is Bandwidth divided by it.
	DeviceBandwidth float64
	OfDevice        float64
	// DirectIO and FallbackReason come from the switch statistics.
	DirectIO       bool
	FallbackReason string
}

// SwitchBench opens the two-task store at path with a budget of exactly one
// task and switches x -> y -> x ... switches times (after one untimed
// switch), so every switch reads the other task's diff set. before, when
// not nil, runs before each timed switch (RunLoadBench measures the device
// there, so both figures share the same background conditions).
func SwitchBench(ctx context.Context, path string, switches int, opt Options, before func(i int) error) (*CaseResult, []*SwitchStats, error) {
	s, err := OpenStore(path)
	if err != nil {
		return nil, nil, err
	}
	var budget int64
	for _, t := range s.Manifest().Tasks {
		n := map[uint32]bool{}
		for _, ts := range t.Tensors {
			for _, v := range ts.Versions {
				n[v] = true
			}
		}
		budget = max(budget, int64(len(n))*s.Manifest().SlotBytes)
	}
	s.Close()
	opt.Budget = budget
	r, err := Open(path, opt)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	if _, err := r.Switch(ctx, "x"); err != nil {
		return nil, nil, err
	}
	var all []*SwitchStats
	var bytes int64
	var read time.Duration
	res := &CaseResult{Switches: switches}
	for i := 0; i < switches; i++ {
		task := []string{"y", "x"}[i%2]
		if before != nil {
			if err := before(i); err != nil {
				return nil, nil, err
			}
		}
		st, err := r.Switch(ctx, task)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, st)
		bytes += st.BytesRead
		read += st.Read
		res.RequestsPerSwitch += float64(st.Requests)
		res.ExtentsPerSwitch += float64(st.Extents)
		res.FirstLayer += st.FirstLayerReady
		res.DirectIO, res.FallbackReason = st.DirectIO, st.FallbackReason
	}
	if switches > 0 {
		n := float64(switches)
		res.BytesPerSwitch = bytes / int64(switches)
		res.RequestsPerSwitch /= n
		res.ExtentsPerSwitch /= n
		res.FirstLayer /= time.Duration(switches)
		lat := make([]time.Duration, len(all))
		var sum time.Duration
		for i, st := range all {
			lat[i] = st.Total
			sum += st.Total
		}
		slices.Sort(lat)
		res.Mean = sum / time.Duration(switches)
		res.P50 = lat[len(lat)/2]
		res.Max = lat[len(lat)-1]
		if read > 0 {
			res.Bandwidth = float64(bytes) / read.Seconds()
		}
	}
	return res, all, nil
}

// LoadBenchConfig configures RunLoadBench.
type LoadBenchConfig struct {
	// Dir holds the scratch file and the stores (a real disk, not tmpfs).
	Dir string
	// ScratchBytes is the size of the device measurement's scratch file.
	ScratchBytes int64
	// ExtentDiffBytes and ScatterDiffBytes are the bytes each switch reads
	// in cases (a) and (b).
	ExtentDiffBytes, ScatterDiffBytes int64
	// Switches is the number of timed switches per case.
	Switches int
	// Depth is the device measurement's queue depth (requests in flight).
	Depth int
	// Loader holds the runtime options (InFlight, RequestSize, CoalesceGap,
	// DirectIO); the budget is set per case.
	Loader Options
	// Keep leaves the scratch file and stores in Dir.
	Keep bool
	// Progress, when set, receives one line per step.
	Progress func(string)
}

// LoadBenchResult is the outcome of RunLoadBench.
type LoadBenchResult struct {
	// Device is the best single sequential pass measured.
	Device *DeviceResult
	// Cases holds case (a) "extents" then case (b) "scattered".
	Cases []*CaseResult
}

// RunLoadBench measures, in one run, the device's sequential O_DIRECT read
// bandwidth and the loader's bandwidth switching between tasks whose diff
// sets are (a) a few long extents and (b) scattered single 4 KiB blocks.
// Each case writes a fresh scratch file, measures it in two passes (their
// mean is the case's DeviceBandwidth), writes a fresh store and times the
// switches, so device and loader read bytes with the same history. Device
// holds the best single pass.
func RunLoadBench(ctx context.Context, cfg LoadBenchConfig) (*LoadBenchResult, error) {
	say := func(format string, args ...any) {
		if cfg.Progress != nil {
			cfg.Progress(fmt.Sprintf(format, args...))
		}
	}
	if cfg.Depth <= 0 {
		cfg.Depth = 16
	}
	if cfg.Switches <= 0 {
		cfg.Switches = 4
	}
	dir, err := os.MkdirTemp(cfg.Dir, "loadbench-")
	if err != nil {
		return nil, fmt.Errorf("loadbench: %w", err)
	}
	if !cfg.Keep {
		defer os.RemoveAll(dir)
	}
	res := &LoadBenchResult{}
	scratch := filepath.Join(dir, "scratch.bin")
	for _, c := range []struct {
		layout BenchLayout
		diff   int64
	}{{LayoutExtents, cfg.ExtentDiffBytes}, {LayoutScattered, cfg.ScatterDiffBytes}} {
		// A fresh scratch file and a fresh store for every case, measured
		// back to back, so that both see the same cache history (on a VM the
		// host may cache recently written or read bytes).
		say("writing %d MiB scratch file %s", cfg.ScratchBytes>>20, scratch)
		if err := WriteScratch(scratch, cfg.ScratchBytes); err != nil {
			return nil, err
		}
		say("measuring sequential reads: 1 MiB requests, %d in flight, 2 passes", cfg.Depth)
		var devBytes int64
		var devSeconds float64
		for pass := 0; pass < 2; pass++ {
			d, err := MeasureDevice(ctx, scratch, 1<<20, cfg.Depth, 1)
			if err != nil {
				return nil, err
			}
			devBytes += d.Bytes
			devSeconds += d.Seconds
			if res.Device == nil || d.Bandwidth > res.Device.Bandwidth {
				res.Device = d
			}
		}
		path := filepath.Join(dir, c.layout.String()+".dms")
		say("writing the %s store (%d MiB diff per switch)", c.layout, c.diff>>20)
		if err := WriteBenchStore(path, c.layout, c.diff, c.diff/4); err != nil {
			return nil, fmt.Errorf("loadbench %s store: %w", c.layout, err)
		}
		say("switching %d times", cfg.Switches)
		cr, _, err := SwitchBench(ctx, path, cfg.Switches, cfg.Loader, nil)
		if err != nil {
			return nil, fmt.Errorf("loadbench %s: %w", c.layout, err)
		}
		cr.Name = c.layout.String()
		cr.DeviceBandwidth = float64(devBytes) / devSeconds
		cr.OfDevice = cr.Bandwidth / cr.DeviceBandwidth
		res.Cases = append(res.Cases, cr)
		if !cfg.Keep {
			os.Remove(path)
		}
	}
	return res, nil
}
