package diffload

import (
	"context"
	"path/filepath"
	"testing"
)

func benchSwitch(b *testing.B, layout BenchLayout, diff int64) {
	dir := tmpDir(b)
	path := filepath.Join(dir, "bench.dms")
	if err := WriteBenchStore(path, layout, diff, diff/4); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	res, _, err := SwitchBench(context.Background(), path, b.N, Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.Bandwidth/1e6, "MB/s")
	b.ReportMetric(res.RequestsPerSwitch, "requests/switch")
	b.ReportMetric(float64(res.BytesPerSwitch), "bytes/switch")
}

// BenchmarkSwitchExtents switches between two tasks whose diff sets are four
// long extents (32 MiB per switch).
func BenchmarkSwitchExtents(b *testing.B) { benchSwitch(b, LayoutExtents, 32<<20) }

// BenchmarkSwitchScattered switches between two tasks whose diff sets are
// scattered single 4 KiB blocks (2 MiB per switch).
func BenchmarkSwitchScattered(b *testing.B) { benchSwitch(b, LayoutScattered, 2<<20) }

// BenchmarkDeviceRead measures sequential 1 MiB O_DIRECT reads at depth 16
// on a 64 MiB scratch file.
func BenchmarkDeviceRead(b *testing.B) {
	dir := tmpDir(b)
	path := filepath.Join(dir, "scratch.bin")
	if err := WriteScratch(path, 64<<20); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var bw float64
	for i := 0; i < b.N; i++ {
		res, err := MeasureDevice(context.Background(), path, 1<<20, 16, 1)
		if err != nil {
			b.Fatal(err)
		}
		bw = res.Bandwidth
	}
	b.ReportMetric(bw/1e6, "MB/s")
}

// TestBenchStores checks the benchmark layouts: every switch reads exactly
// the other task's diff set, as a few extents or as single-block requests.
func TestBenchStores(t *testing.T) {
	dir := tmpDir(t)
	for _, c := range []struct {
		layout      BenchLayout
		wantExtents int
	}{{LayoutExtents, 4}, {LayoutScattered, 256}} {
		path := filepath.Join(dir, c.layout.String()+".dms")
		if err := WriteBenchStore(path, c.layout, 256*4096, 16*4096); err != nil {
			t.Fatal(err)
		}
		res, all, err := SwitchBench(context.Background(), path, 3, Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range all {
			if st.Versions != 256 || st.BytesRead != 256*4096 || st.Extents != c.wantExtents {
				t.Fatalf("%s: switch read %d versions, %d bytes in %d extents; want 256, %d, %d", c.layout, st.Versions, st.BytesRead, st.Extents, 256*4096, c.wantExtents)
			}
		}
		if c.layout == LayoutScattered && res.RequestsPerSwitch != 256 {
			t.Fatalf("scattered: %.1f requests per switch, want 256 single-block reads", res.RequestsPerSwitch)
		}
		if res.Bandwidth <= 0 || res.Mean <= 0 {
			t.Fatalf("%s: %+v", c.layout, res)
		}
	}
}

// TestRunLoadBench runs the whole loadbench at toy sizes: both cases read
// their diff sets, and the ratios refer to the measured device.
func TestRunLoadBench(t *testing.T) {
	var lines int
	res, err := RunLoadBench(context.Background(), LoadBenchConfig{
		Dir: tmpDir(t), ScratchBytes: 4 << 20, ExtentDiffBytes: 1 << 20, ScatterDiffBytes: 256 << 10,
		Switches: 2, Depth: 4, Progress: func(string) { lines++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Device.Bandwidth <= 0 || res.Device.Bytes != 4<<20 || lines == 0 {
		t.Fatalf("device %+v, %d progress lines", res.Device, lines)
	}
	if len(res.Cases) != 2 || res.Cases[0].Name != "extents" || res.Cases[1].Name != "scattered" {
		t.Fatalf("cases %+v", res.Cases)
	}
	for _, c := range res.Cases {
		if c.OfDevice <= 0 || c.DeviceBandwidth <= 0 || c.Bandwidth/c.DeviceBandwidth != c.OfDevice || c.DeviceBandwidth > res.Device.Bandwidth*1.0001 {
			t.Fatalf("%s: %.3f of device", c.Name, c.OfDevice)
		}
	}
	if res.Cases[0].BytesPerSwitch != 1<<20 || res.Cases[1].BytesPerSwitch != 256<<10 || res.Cases[1].RequestsPerSwitch != 64 {
		t.Fatalf("cases %+v %+v", res.Cases[0], res.Cases[1])
	}
}
