package pack

import (
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsparse/dmsparse/safetensors"
)

// TestStreamingMemory packs six BF16 tasks (so every tensor is converted
// on the heap, not viewed in the mapping) and samples the live heap: the
// packer holds one tensor of each task at a time, so the peak must stay well
// under the size of one task in float32; loading whole tasks would exceed it
// several times.
func TestStreamingMemory(t *testing.T) {
	if raceEnabled {
		// The race detector multiplies run time by ~20 and its shadow
		// memory and allocation pattern distort the sample; the same test
		// runs in the non-race pass.
		t.Skip("heap measurement runs without -race")
	}
	// Many layers: the task size grows while the packer's working set (one
	// tensor per task, the store writer's buffer) stays put.
	hidden, layers := 256, 12
	dir := t.TempDir()
	tasks, base, err := WriteSynthetic(dir, SyntheticSpec{Kind: "finetune", Tasks: 6, Layers: layers, Hidden: hidden, Seed: 8, DType: safetensors.BF16})
	if err != nil {
		t.Fatal(err)
	}
	perTask := int64(layers) * int64(hidden*3/2*hidden+hidden*(hidden+8)) * 4
	old := debug.SetGCPercent(10)
	defer debug.SetGCPercent(old)
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() int64 {
		metrics.Read(sample)
		return int64(sample[0].Value.Uint64())
	}
	start := heap()
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if v := heap(); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	_, err = Run(filepath.Join(dir, "f.dms"), Options{Tasks: tasks, Base: base, Density: 0.5, Eps: 0.01, R: 32, C: 32}, false)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	grow := peak.Load() - start
	t.Logf("one task: %d KiB float32; whole family %d KiB; peak heap growth while packing: %d KiB", perTask>>10, 6*perTask>>10, grow>>10)
	if grow > perTask {
		t.Fatalf("peak heap grew by %d KiB, more than one task's %d KiB: the packer is not streaming", grow>>10, perTask>>10)
	}
}
