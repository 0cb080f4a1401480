package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/dmsparse/dmsparse/align"
	"github.com/dmsparse/dmsparse/pack"
)

func tinyRunOptions(t *testing.T) RunOptions {
	o := DefaultRunOptions()
	o.Family = FamilyConfig{Layers: 3, Width: 64, MLPRatio: 2, Tasks: 3, Seed: 3, Rank: 4, Kind: FamilyShared, DeltaScale: 0.15, CalibSpread: 0.3}
	o.R, o.C = 32, 32
	o.Switches = 5
	o.Window = time.Millisecond
	o.CacheDir = t.TempDir()
	return o
}

func TestRunTinyFamily(t *testing.T) {
	o := tinyRunOptions(t)
	var log bytes.Buffer
	o.Log = &log
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if len(res.Traces) != 3 {
		t.Fatalf("%d traces, want 3", len(res.Traces))
	}
	for _, tr := range res.Traces {
		if len(tr.Strategies) != len(AllStrategies) {
			t.Fatalf("trace %s: %d strategies, want %d", tr.Trace, len(tr.Strategies), len(AllStrategies))
		}
		for _, s := range tr.Strategies {
			if s.ForwardChecks != len(tr.Visits) {
				t.Errorf("%s/%s: %d forward checks for %d switches", tr.Trace, s.Strategy, s.ForwardChecks, len(tr.Visits))
			}
			if !s.Cold.Cold || s.Steady.Switches != 5 || s.Cold.Bytes <= 0 {
				t.Errorf("%s/%s: cold %+v steady %d switches", tr.Trace, s.Strategy, s.Cold, s.Steady.Switches)
			}
		}
		ms := res.Strategy(tr.Trace, MonoSparse)
		da := res.Strategy(tr.Trace, DiffAligned)
		md := res.Strategy(tr.Trace, MonoDense)
		if !(da.Steady.BytesPerSwitch < ms.Steady.BytesPerSwitch) {
			t.Errorf("%s: diff-aligned reads %.0f bytes per switch, mono-sparse %.0f: want fewer", tr.Trace, da.Steady.BytesPerSwitch, ms.Steady.BytesPerSwitch)
		}
		if !(ms.Steady.BytesPerSwitch < md.Steady.BytesPerSwitch) {
			t.Errorf("%s: mono-sparse reads %.0f, mono-dense %.0f: want fewer", tr.Trace, ms.Steady.BytesPerSwitch, md.Steady.BytesPerSwitch)
		}
		if da.PeakPoolBytes > res.Budget {
			t.Errorf("%s: peak pool %d above the budget %d", tr.Trace, da.PeakPoolBytes, res.Budget)
		}
	}
	if res.Quality == nil || len(res.Quality.Quality) != 3 {
		t.Fatalf("quality report missing: %+v", res.Quality)
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"trace round-robin", "trace markov", "diff-aligned+prefetch", "per-task quality", "traffic-light", "weight err", "scenario: shared weights"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Traces) != 3 {
		t.Fatalf("JSON round trip: %v", err)
	}
	var csvOut bytes.Buffer
	if err := res.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(csvOut.String(), "\n"); lines != 1+3*len(AllStrategies) {
		t.Errorf("CSV has %d lines, want %d", lines, 1+3*len(AllStrategies))
	}
	var svg bytes.Buffer
	if err := res.WriteChartSVG(&svg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svg.String(), "<svg") || strings.Count(svg.String(), "<circle") < 3*5*6 {
		t.Errorf("chart lacks a point per switch")
	}
	var pp bytes.Buffer
	if err := res.WriteSwitchProfile(&pp); err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(&pp)
	if err != nil {
		t.Fatal(err)
	}
	var layerSamples int
	for _, s := range prof.Sample {
		if strings.HasPrefix(s.Location[0].Line[0].Function.Name, "layer ") {
			layerSamples++
		}
	}
	if layerSamples == 0 {
		t.Error("switch profile has no per-layer samples")
	}

	// A second run reuses the cached family, packs and baselines.
	log.Reset()
	o.Traces = []string{TraceRoundRobin}
	o.Strategies = []string{MonoSparse, DiffAligned}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "family: cached") || !strings.Contains(log.String(), "pack aligned: cached") {
		t.Errorf("second run did not reuse the cache:\n%s", log.String())
	}
}

func TestRunErrors(t *testing.T) {
	o := tinyRunOptions(t)
	o.Traces = []string{"zigzag"}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "zigzag") {
		t.Errorf("unknown trace: %v", err)
	}
	o = tinyRunOptions(t)
	o.Density = 1.5
	if _, err := Run(context.Background(), o); err == nil {
		t.Error("density 1.5 accepted")
	}
	o = tinyRunOptions(t)
	o.Budget = 4096
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "budget") {
		t.Errorf("tiny budget: %v", err)
	}
}

func TestRunPackedStore(t *testing.T) {
	o := tinyRunOptions(t)
	fam, err := WriteFamily(filepath.Join(t.TempDir(), "fam"), o.Family, nil)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []pack.TaskInput
	for _, name := range fam.Order {
		inputs = append(inputs, pack.TaskInput{Name: name, Path: fam.Path(fam.Tasks[name]), Calib: fam.Path(fam.Calib[name])})
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "fam.dms")
	for _, s := range []struct {
		path   string
		method align.Method
	}{{store, align.Swap}, {filepath.Join(dir, "fam.independent.dms"), align.Independent}} {
		if _, err := pack.Run(s.path, pack.Options{Tasks: inputs, Density: 0.5, R: 16, C: 16, Eps: 0.01, Method: s.method}, false); err != nil {
			t.Fatal(err)
		}
	}
	o.Store = store
	o.Traces = []string{TraceRandom}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Config != nil || !strings.Contains(res.Family, store) {
		t.Errorf("family %q, config %v: want the store", res.Family, res.Config)
	}
	if s := res.Strategy(TraceRandom, DiffIndependent); s == nil || s.ForwardChecks == 0 {
		t.Error("diff-independent did not run on the store's .independent.dms sibling")
	}
	if _, err := os.Stat(filepath.Join(store+".mono", "sparse-detection.bin")); err != nil {
		t.Errorf("mono-sparse baseline not beside the store: %v", err)
	}
	if res.IndepQuality == nil {
		t.Error("independent quality report missing")
	}
}

// TestRunFinetuneFamily runs the fine-tune family under the delta bound:
// every task keeps 99% of its fine-tune, so every kept block is private and
// a round-robin switch reads the whole target task; the report says so.
func TestRunFinetuneFamily(t *testing.T) {
	o := tinyRunOptions(t)
	o.Family.Kind = FamilyFinetune
	o.Traces = []string{TraceRoundRobin}
	o.Strategies = []string{MonoSparse, DiffAligned}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	q := res.Quality
	if q == nil || q.VersionBound != string(align.BoundDelta) || q.Base == "" {
		t.Fatalf("quality report %+v: want a base and the delta bound", q)
	}
	var minBytes int64 = -1
	for _, tq := range q.Quality {
		if tq.DeltaRetained == nil || *tq.DeltaRetained < 0.99 {
			t.Fatalf("task %s: delta retained %v, want >= 0.99", tq.Task, tq.DeltaRetained)
		}
		if tq.Private != tq.Versions || len(tq.Curve) != len(align.DefaultCurveEps) {
			t.Errorf("task %s: %d of %d versions private, curve of %d points", tq.Task, tq.Private, tq.Versions, len(tq.Curve))
		}
		if minBytes < 0 || tq.Bytes < minBytes {
			minBytes = tq.Bytes
		}
		last := tq.Curve[len(tq.Curve)-1]
		// At eps 1 every kept block is the base's: only blocks no other
		// task keeps stay private.
		if last.Eps != 1 || last.Shared != last.Kept || last.Private >= tq.Curve[0].Private || last.DeltaRetained() != 0 {
			t.Errorf("task %s: curve at eps 1 %+v: want every block on the base", tq.Task, last)
		}
		if first := tq.Curve[0]; first.Shared != 0 || first.SwitchBytes < float64(tq.Bytes)*0.99 {
			t.Errorf("task %s: curve at eps 0 %+v: want nothing shared and the whole task read per switch (%d bytes)", tq.Task, first, tq.Bytes)
		}
	}
	da := res.Strategy(TraceRoundRobin, DiffAligned)
	if da.Steady.BytesPerSwitch < 0.99*float64(minBytes) {
		t.Errorf("diff-aligned reads %.0f bytes per switch, less than a whole task (%d) although every version is private", da.Steady.BytesPerSwitch, minBytes)
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version bound delta", "delta kept", "base-sharing curve", "scenario: fine-tunes"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
	if v := strings.Join(res.Verdict(), "\n"); !strings.Contains(v, "private") || !strings.Contains(v, "finetune family") {
		t.Errorf("verdict does not explain the fine-tune result:\n%s", v)
	}
}
