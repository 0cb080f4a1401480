package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func fakeResults() *Results {
	mk := func(name string, lat []time.Duration, bytes int64) StrategyResult {
		s := StrategyResult{Strategy: name, PeakPoolBytes: 3 << 20}
		for i, l := range lat {
			s.Records = append(s.Records, SwitchRecord{Index: i, Cold: i == 0, To: "a", Latency: l, FirstLayer: l / 2, Bytes: bytes, ReadTime: l})
		}
		s.summarize()
		return s
	}
	ms := time.Millisecond
	r := &Results{Family: "fake", Density: 0.5, Eps: 0.01, R: 32, C: 32, Budget: 6 << 20, DeviceBandwidth: 1e9,
		Traces: []TraceResult{{Trace: "round-robin", Strategies: []StrategyResult{
			mk(MonoSparse, []time.Duration{300 * ms, 100 * ms, 100 * ms, 100 * ms}, 100<<20),
			mk(DiffAligned, []time.Duration{300 * ms, 10 * ms, 5 * ms, 15 * ms}, 1<<20),
		}}}}
	r.finish()
	return r
}

func TestSummaryAndTable(t *testing.T) {
	r := fakeResults()
	da := r.Strategy("round-robin", DiffAligned)
	if da.Steady.Switches != 3 || da.Steady.Mean != 10*time.Millisecond || da.Steady.P50 != 10*time.Millisecond || da.Steady.P99 != 15*time.Millisecond {
		t.Errorf("steady summary %+v", da.Steady)
	}
	if da.Cold.Latency != 300*time.Millisecond || !da.Cold.Cold {
		t.Errorf("cold start %+v", da.Cold)
	}
	if da.Speedup != 10 {
		t.Errorf("speedup %g, want 10", da.Speedup)
	}
	// 1 MiB per 10 ms on average = 104.9 MB/s of a 1 GB/s device.
	if got := da.BandwidthShare; got < 0.104 || got > 0.105 {
		t.Errorf("bandwidth share %g", got)
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"10.0x", "10.0 ms", "15.0 ms", "1.0 MiB", "100.0 MiB", "300 ms", "budget 6.0 MiB", "diff-aligned"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	v := strings.Join(r.Verdict(), "\n")
	if !strings.Contains(v, "diff-aligned 10.0x mono-sparse (target 10x: met; 10x at p50; 100.0x fewer bytes)") {
		t.Errorf("verdict %q", v)
	}
	buf.Reset()
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], "store,round-robin,diff-aligned,3,1.04858e+06,10.0000,10.0000,15.0000,5.0000,10,") {
		t.Errorf("CSV:\n%s", buf.String())
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[float64]string{512: "512 B", 2048: "2.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.00 GiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%g) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{1500 * time.Microsecond: "1.50 ms", 25 * time.Millisecond: "25.0 ms", 2 * time.Second: "2000 ms"} {
		if got := FormatDuration(in); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", in, got, want)
		}
	}
	if q := quantile([]time.Duration{1, 2, 3, 4}, 0.5); q != 2 {
		t.Errorf("median of 1..4 = %v, want 2 (nearest rank)", q)
	}
}
