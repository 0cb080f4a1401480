package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCalibrateSmall(t *testing.T) {
	var log bytes.Buffer
	p, err := Calibrate(CalibrateOptions{
		Dir: t.TempDir(), FileSize: 4 << 20,
		RequestSizes: []int64{4096, 1 << 20}, InFlights: []int{1, 2},
		PointTime: 20 * time.Millisecond, RandomReads: 20, Progress: &log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(p.Storage.Reads) != 4 {
		t.Errorf("got %d read points, want 4", len(p.Storage.Reads))
	}
	if !strings.HasPrefix(p.Source, "measured") {
		t.Errorf("source %q, want it to start with measured", p.Source)
	}
	if p.KernelGFLOPS <= 0 || p.MemoryBandwidth <= 0 {
		t.Errorf("kernel %g GFLOP/s, memory %g B/s: want both > 0", p.KernelGFLOPS, p.MemoryBandwidth)
	}
	if !strings.Contains(log.String(), "4 KiB random read") {
		t.Errorf("progress log lacks the random read line:\n%s", log.String())
	}
	if _, err := Calibrate(CalibrateOptions{Dir: t.TempDir(), FileSize: 1 << 20, RequestSizes: []int64{1000}}); err == nil {
		t.Error("request size 1000 accepted, want an alignment error")
	}
}

func TestRecommendations(t *testing.T) {
	if b := recommendBlock(4096); b.R != 32 || b.C != 32 {
		t.Errorf("recommendBlock(4096) = %v, want 32x32", b)
	}
	if b := recommendBlock(16384); b.R*b.C*4 != 16384 {
		t.Errorf("recommendBlock(16384) = %v, want a 16 KiB block", b)
	}
	// 1 GB/s, 100 us per request, 1 in flight: 100 kB, rounded down to 4 KiB.
	if g := coalesceGap(1e9, 100, 1, 4096); g != 98304 {
		t.Errorf("coalesceGap = %d, want 98304", g)
	}
}
