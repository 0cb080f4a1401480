package bench

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRunTiny runs the round-robin trace on a tiny family and reports
// the mean steady-state switch latency of mono-sparse and diff-aligned and
// their ratio. Run with -benchtime=1x; "dmbench run" is the full benchmark.
func BenchmarkRunTiny(b *testing.B) {
	o := DefaultRunOptions()
	// The shared-weights family: fine-tunes under the delta bound read
	// whole tasks (see TestRunFinetuneFamily), alignment is measured here.
	o.Family = FamilyConfig{Layers: 4, Width: 128, MLPRatio: 4, Tasks: 4, Seed: 1, Rank: 4, Kind: FamilyShared, DeltaScale: 0.15, CalibSpread: 0.3}
	o.Traces = []string{TraceRoundRobin}
	o.Strategies = []string{MonoSparse, DiffAligned}
	o.Switches = 8
	o.Window = time.Millisecond
	o.CacheDir = b.TempDir()
	if _, err := Run(context.Background(), o); err != nil { // fill the cache
		b.Fatal(err)
	}
	b.ResetTimer()
	var ms, da time.Duration
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		ms += res.Strategy(TraceRoundRobin, MonoSparse).Steady.Mean
		da += res.Strategy(TraceRoundRobin, DiffAligned).Steady.Mean
	}
	b.ReportMetric(float64(ms.Microseconds())/float64(b.N), "mono-sparse-us/switch")
	b.ReportMetric(float64(da.Microseconds())/float64(b.N), "diff-aligned-us/switch")
	if da > 0 {
		b.ReportMetric(float64(ms)/float64(da), "speedup")
	}
}
