package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dmsparse/dmsparse/align"
	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/diffload"
	"github.com/dmsparse/dmsparse/pack"
	"github.com/dmsparse/dmsparse/profiles"
	"github.com/dmsparse/dmsparse/safetensors"
)

// Trace names accepted by RunOptions.Traces.
const (
	TraceRoundRobin = "round-robin"
	TraceRandom     = "random"
	TraceMarkov     = "markov"
)

// RunOptions configures Run.
type RunOptions struct {
	// Family is the built-in family's configuration (used when Store is "").
	Family FamilyConfig
	// Store is a packed family to run on instead of the built-in one. Its
	// monolithic baselines are written beside it (STORE.mono/), and
	// STORE-without-.dms + ".independent.dms", when present, serves the
	// diff-independent strategy.
	Store string
	// Density, Eps, R and C are the packing parameters of the built-in
	// family.
	Density, Eps float64
	R, C         int
	// Method is the alignment method ("" = the packer's default).
	Method string
	// VersionBound is the version bound of the fine-tune family's packs
	// (align.BoundDelta, the default, or align.BoundWeight); the shared
	// family is packed without a base and has no version choice.
	VersionBound string
	// Traces lists the traces to run (default: all three).
	Traces []string
	// Switches is the number of switches per trace after the cold start.
	Switches int
	// Seed seeds the random traces and the forward-pass inputs.
	Seed uint64
	// Window is the forward-pass time between switches (the prefetch
	// window); a Markov trace stays Dwell windows on a task.
	Window time.Duration
	// Budget is the pool budget of the differential strategies in bytes;
	// zero means the profile's budget when a profile is given, else one
	// and a half times the largest task.
	Budget int64
	// Profile is the platform profile (nil: none).
	Profile *profiles.Profile
	// Loader holds the read settings; zero fields come from the profile,
	// else 1 MiB requests, 4 in flight, a 64 KiB coalescing gap.
	Loader LoaderSettings
	// TransitionFile is a JSON transition matrix for the Markov trace
	// ("" = the built-in driving schedule).
	TransitionFile string
	// Strategies lists the strategies to run (default: all).
	Strategies []string
	// CacheDir holds generated families, packs and baselines ("" =
	// CacheDir()).
	CacheDir string
	// Kernel runs the forward passes (nil = BestKernel()).
	Kernel bsr.Kernel
	// Progress draws progress (nil: none).
	Progress *Progress
	// Log receives one line per preparation step (nil: none).
	Log io.Writer
}

// DefaultRunOptions returns the options of "dmbench run" without flags.
func DefaultRunOptions() RunOptions {
	return RunOptions{
		Family: DefaultFamily(), Density: 0.5, Eps: 0.01, R: 32, C: 32,
		Traces: []string{TraceRoundRobin, TraceRandom, TraceMarkov}, Switches: 16, Seed: 1,
		Window: 20 * time.Millisecond, Strategies: AllStrategies,
	}
}

// deployment names a set of deployed weights a strategy serves.
type deployment string

const (
	depDense   deployment = "dense"
	depIndep   deployment = "independent"
	depAligned deployment = "aligned"
)

// ref is the expected forward output of one tensor.
type ref struct {
	exact []float32 // the same kernel on the deployed weights' contiguous copy
	dense []float64 // the dense reference W_deployed x + b in float64
	abs   []float64 // sum_j |W_ij x_j| + |b_i|, the scale of each output
}

// tensorRef is a tensor of a task, in layer order.
type tensorRef struct {
	name, bias string
	layer      int
	rows, cols int
}

// prepared is everything Run needs before the first switch.
type prepared struct {
	family      string
	scenario    string
	config      *FamilyConfig
	tasks       []string
	aligned     string
	indep       string
	mono        map[deployment]map[string]string // deployment -> task -> file
	monoSparse  deployment                       // which deployment mono-sparse files hold
	idx         map[string]*MonoIndex            // file -> index
	tensors     map[string][]tensorRef           // task -> tensors
	refs        map[deployment]map[string]map[string]*ref
	xs          map[int][]float32
	denseBytes  int64
	report      *pack.Report
	indepReport *pack.Report
}

// lockedWriter serialises writes from concurrent preparation steps.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (o *RunOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

func (o *RunOptions) check() error {
	if o.Store == "" {
		if err := o.Family.Validate(); err != nil {
			return err
		}
		if _, err := align.KeepCount(1, o.Density); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		if err := align.CheckEps(o.Eps); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		if _, err := align.ParseVersionBound(o.VersionBound); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	if o.R < 1 || o.C < 1 || o.R > 4096 || o.C > 4096 {
		return fmt.Errorf("run: block shape %dx%d: want sides in 1..4096", o.R, o.C)
	}
	if o.Switches < 1 {
		return fmt.Errorf("run: %d switches: want at least 1", o.Switches)
	}
	if o.Window < 0 {
		return fmt.Errorf("run: forward window %v: want >= 0", o.Window)
	}
	if o.Budget < 0 {
		return fmt.Errorf("run: budget %d: want >= 0 (0 = from profile or one and a half tasks)", o.Budget)
	}
	for _, t := range o.Traces {
		if !slices.Contains([]string{TraceRoundRobin, TraceRandom, TraceMarkov}, t) {
			return fmt.Errorf("run: unknown trace %q (want %s, %s or %s)", t, TraceRoundRobin, TraceRandom, TraceMarkov)
		}
	}
	for _, s := range o.Strategies {
		if !slices.Contains(AllStrategies, s) {
			return fmt.Errorf("run: unknown strategy %q (want one of %s)", s, strings.Join(AllStrategies, ", "))
		}
	}
	if len(o.Traces) == 0 || len(o.Strategies) == 0 {
		return errors.New("run: no traces or no strategies selected")
	}
	return nil
}

// Run builds (or reuses from the cache) the family, its packs and its
// monolithic baselines, then runs every strategy on every trace, checking
// each task's forward pass after every switch against the dense reference
// of its deployed weights; a mismatch fails the run.
func Run(ctx context.Context, opt RunOptions) (*Results, error) {
	start := time.Now()
	if opt.Kernel == nil {
		opt.Kernel = BestKernel()
	}
	if err := opt.check(); err != nil {
		return nil, err
	}
	if opt.Log != nil {
		opt.Log = &lockedWriter{w: opt.Log}
	}
	ls := opt.Loader
	if p := opt.Profile; p != nil {
		if ls.RequestBytes == 0 {
			ls.RequestBytes = p.Loader.RequestBytes
		}
		if ls.InFlight == 0 {
			ls.InFlight = p.Loader.InFlight
		}
		if ls.CoalesceGap == 0 {
			ls.CoalesceGap = p.Loader.CoalesceGapBytes
		}
	}
	if ls.RequestBytes == 0 {
		ls.RequestBytes = 1 << 20
	}
	if ls.InFlight == 0 {
		ls.InFlight = 4
	}
	if ls.CoalesceGap == 0 {
		ls.CoalesceGap = 64 << 10
	}
	opt.Loader = ls
	if opt.CacheDir == "" {
		d, err := CacheDir()
		if err != nil {
			return nil, err
		}
		opt.CacheDir = d
	}
	prep, err := prepare(ctx, &opt)
	if err != nil {
		return nil, err
	}
	res := &Results{
		Family: prep.family, Config: prep.config, Density: opt.Density, Eps: opt.Eps, R: opt.R, C: opt.C,
		Loader: ls, Window: opt.Window, Kernel: opt.Kernel.Name(), Quality: prep.report, IndepQuality: prep.indepReport,
		DenseBytes: prep.denseBytes, Scenario: prep.scenario,
	}
	if prep.report != nil {
		res.Density, res.Eps, res.R, res.C = prep.report.Density, prep.report.Eps, prep.report.R, prep.report.C
	}
	// Budget: one and a half of the largest task of either store.
	for _, path := range []string{prep.aligned, prep.indep} {
		if path == "" {
			continue
		}
		b, err := largestTask(path)
		if err != nil {
			return nil, err
		}
		res.TaskBytes = max(res.TaskBytes, b)
	}
	switch {
	case opt.Budget > 0:
		res.Budget = opt.Budget
	case opt.Profile != nil:
		res.Budget = opt.Profile.BudgetBytes
	default:
		res.Budget = res.TaskBytes * 3 / 2
	}
	if res.Budget < res.TaskBytes {
		return nil, fmt.Errorf("run: budget %d bytes is smaller than the largest task (%d bytes)", res.Budget, res.TaskBytes)
	}
	if err := deviceBandwidth(&opt, prep, res); err != nil {
		return nil, err
	}
	res.Prepare = time.Since(start)

	traces, err := buildTraces(&opt, prep.tasks)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, tr := range traces {
		total += len(tr.Visits) * len(opt.Strategies)
	}
	done := 0
	tick := func(phase string) {
		done++
		opt.Progress.Update(phase, done, total)
	}
	fw := newForwarder(opt.Kernel, prep)
	for _, tr := range traces {
		tres := TraceResult{Trace: tr.Name}
		for _, v := range tr.Visits {
			tres.Visits = append(tres.Visits, tr.Tasks[v])
		}
		for _, s := range AllStrategies {
			if !slices.Contains(opt.Strategies, s) {
				continue
			}
			var sr *StrategyResult
			phase := tr.Name + " " + s
			switch s {
			case MonoDense:
				sr, err = runMono(ctx, &opt, prep, fw, tr, s, depDense, func() { tick(phase) })
			case MonoSparse:
				sr, err = runMono(ctx, &opt, prep, fw, tr, s, prep.monoSparse, func() { tick(phase) })
			case DiffIndependent:
				if prep.indep == "" {
					opt.logf("skipping %s: no independent store beside %s", s, prep.aligned)
					done += len(tr.Visits)
					continue
				}
				sr, err = runDiff(ctx, &opt, prep, fw, tr, s, prep.indep, depIndep, false, res.Budget, func() { tick(phase) })
			case DiffAligned:
				sr, err = runDiff(ctx, &opt, prep, fw, tr, s, prep.aligned, depAligned, false, res.Budget, func() { tick(phase) })
			case DiffPrefetch:
				sr, err = runDiff(ctx, &opt, prep, fw, tr, s, prep.aligned, depAligned, true, res.Budget, func() { tick(phase) })
			}
			if err != nil {
				opt.Progress.Done()
				return nil, fmt.Errorf("run: trace %s, strategy %s: %w", tr.Name, s, err)
			}
			sr.summarize()
			tres.Strategies = append(tres.Strategies, *sr)
		}
		res.Traces = append(res.Traces, tres)
	}
	opt.Progress.Done()
	if opt.Profile == nil {
		if err := deviceBandwidth(&opt, prep, res); err != nil {
			return nil, err
		}
	}
	res.finish()
	res.Elapsed = time.Since(start)
	return res, nil
}

func buildTraces(opt *RunOptions, tasks []string) ([]*Trace, error) {
	var out []*Trace
	for _, name := range opt.Traces {
		var tr *Trace
		var err error
		switch name {
		case TraceRoundRobin:
			tr, err = RoundRobin(tasks, opt.Switches)
		case TraceRandom:
			tr, err = UniformRandom(tasks, opt.Switches, opt.Seed)
		case TraceMarkov:
			p := DrivingSchedule(tasks)
			if opt.TransitionFile != "" {
				if p, err = LoadTransition(opt.TransitionFile, tasks); err != nil {
					return nil, err
				}
			}
			tr, err = Markov(tasks, p, opt.Switches, opt.Seed)
		}
		if err != nil {
			return nil, fmt.Errorf("run: building the %s trace: %w", name, err)
		}
		out = append(out, tr)
	}
	return out, nil
}

// largestTask returns the largest task's distinct block version bytes.
func largestTask(path string) (int64, error) {
	s, err := diffload.OpenStore(path)
	if err != nil {
		return 0, fmt.Errorf("run: %w", err)
	}
	defer s.Close()
	m := s.Manifest()
	var best int64
	for _, t := range m.Tasks {
		seen := map[uint32]bool{}
		for _, ts := range t.Tensors {
			for _, v := range ts.Versions {
				seen[v] = true
			}
		}
		best = max(best, int64(len(seen))*m.SlotBytes)
	}
	return best, nil
}

// deviceBandwidth takes the device's sequential O_DIRECT bandwidth from the
// profile, or measures it on the largest monolithic file; Run measures
// before and after the benchmark and keeps the better figure, so that a
// burst of load from elsewhere does not understate the device.
func deviceBandwidth(opt *RunOptions, prep *prepared, res *Results) error {
	if p := opt.Profile; p != nil {
		res.DeviceBandwidth = p.Storage.SeqReadBandwidth
		res.DeviceSource = "profile " + p.Name
		return nil
	}
	var path string
	var size int64
	for _, files := range prep.mono {
		for _, f := range files {
			if st, err := os.Stat(f); err == nil && st.Size() > size {
				path, size = f, st.Size()
			}
		}
	}
	if path == "" {
		return errors.New("run: no monolithic file to measure the device bandwidth on")
	}
	direct := true
	for _, pt := range []struct {
		size int64
		qd   int
	}{{opt.Loader.RequestBytes, opt.Loader.InFlight}, {1 << 20, 8}, {4 << 20, 4}} {
		if pt.size > size {
			continue
		}
		rp, d, err := measureReads(path, size/pt.size*pt.size, pt.size, pt.qd, 250*time.Millisecond, monoAlign)
		if err != nil {
			return fmt.Errorf("run: measuring the device bandwidth: %w", err)
		}
		direct = direct && d
		res.DeviceBandwidth = max(res.DeviceBandwidth, rp.Bandwidth)
	}
	res.DeviceSource = "measured by this run: best sequential read of 1-4 MiB requests, 4-8 in flight, before and after the benchmark"
	if !direct {
		res.DeviceSource += ", buffered (O_DIRECT refused)"
	}
	return nil
}

// forwarder runs forward passes: every weight of a task as a linear layer
// with its bias on a fixed input.
type forwarder struct {
	k    bsr.Kernel
	prep *prepared
	ys   map[string][]float32
}

func newForwarder(k bsr.Kernel, prep *prepared) *forwarder {
	f := &forwarder{k: k, prep: prep, ys: map[string][]float32{}}
	for _, ts := range prep.tensors {
		for _, t := range ts {
			if len(f.ys[t.name]) < t.rows {
				f.ys[t.name] = make([]float32, t.rows)
			}
		}
	}
	return f
}

// pass runs one forward pass of task with the weights get returns and, when
// refs is set, checks every output.
func (f *forwarder) pass(task string, get func(name, bias string) (*bsr.View, []float32, error), refs map[string]*ref) error {
	for _, t := range f.prep.tensors[task] {
		v, b, err := get(t.name, t.bias)
		if err != nil {
			return err
		}
		y := f.ys[t.name][:t.rows]
		if err := bsr.LinearWith(f.k, y, f.prep.xs[t.cols], 1, v, b, bsr.Options{Workers: 1}); err != nil {
			return fmt.Errorf("forward pass of task %s, tensor %s: %w", task, t.name, err)
		}
		if refs == nil {
			continue
		}
		r := refs[t.name]
		if r == nil {
			return fmt.Errorf("forward check of task %s: no reference for tensor %s", task, t.name)
		}
		for i, got := range y {
			g := float64(got)
			if math.Abs(g-float64(r.exact[i])) > 1e-6*r.abs[i] || math.Abs(g-r.dense[i]) > 1e-4*r.abs[i] || math.IsNaN(g) {
				return fmt.Errorf("forward check failed: task %s, tensor %s, output %d = %g; want %g (same kernel on the deployed weights) and %g (dense reference), scale %g: the live blocks are not the task's",
					task, t.name, i, g, r.exact[i], r.dense[i], r.abs[i])
			}
		}
	}
	return nil
}

// window runs forward passes until d has passed since from.
func (f *forwarder) window(ctx context.Context, task string, from time.Time, d time.Duration, get func(name, bias string) (*bsr.View, []float32, error)) error {
	for time.Since(from) < d {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.pass(task, get, nil); err != nil {
			return err
		}
	}
	return nil
}

// layerSplit splits a whole-file read time over the layers in proportion
// to their bytes.
func layerSplit(idx *MonoIndex, d time.Duration) []time.Duration {
	maxL := 0
	for _, t := range idx.Tensors {
		maxL = max(maxL, t.Layer)
	}
	bytes := make([]float64, maxL+1)
	total := 0.0
	for _, t := range idx.Tensors {
		b := float64(len(t.Indices)*idx.R*idx.C + t.BiasLen)
		bytes[t.Layer] += b
		total += b
	}
	out := make([]time.Duration, maxL+1)
	for l, b := range bytes {
		if total > 0 {
			out[l] = time.Duration(float64(d) * b / total)
		}
	}
	return out
}

func runMono(ctx context.Context, opt *RunOptions, prep *prepared, fw *forwarder, tr *Trace, name string, dep deployment, tick func()) (*StrategyResult, error) {
	files := prep.mono[dep]
	var size int64
	for _, f := range files {
		size = max(size, prep.idx[f].Size)
	}
	buf := AlignedBuffer(size, monoAlign)
	ro := ReaderOptions{RequestSize: opt.Loader.RequestBytes, InFlight: opt.Loader.InFlight, Direct: opt.Loader.Direct, Alignment: monoAlign}
	sr := &StrategyResult{Strategy: name, PeakPoolBytes: size}
	prev := ""
	for k, v := range tr.Visits {
		task := tr.Tasks[v]
		path := files[task]
		idx := prep.idx[path]
		t0 := time.Now()
		st, err := ReadWhole(path, idx.Size, buf, ro)
		if err != nil {
			return nil, err
		}
		views, biases := monoViews(idx, buf)
		lat := time.Since(t0)
		if !st.Direct {
			sr.FallbackReason = st.FallbackReason
		}
		sr.Records = append(sr.Records, SwitchRecord{
			Index: k, From: prev, To: task, Cold: k == 0, Bytes: st.Bytes, Requests: st.Requests,
			Latency: lat, FirstLayer: lat, ReadTime: st.Duration,
			Phases:    map[string]time.Duration{"read": st.Duration, "publish": lat - st.Duration},
			LayerRead: layerSplit(idx, st.Duration), Direct: st.Direct,
		})
		get := func(n, _ string) (*bsr.View, []float32, error) {
			v, ok := views[n]
			if !ok {
				return nil, nil, fmt.Errorf("monolithic checkpoint %s has no tensor %s", path, n)
			}
			return v, biases[n], nil
		}
		end := time.Now()
		if err := fw.pass(task, get, prep.refs[dep][task]); err != nil {
			return nil, fmt.Errorf("after switch %d to %s: %w", k, task, err)
		}
		sr.ForwardChecks++
		if err := fw.window(ctx, task, end, opt.Window*time.Duration(tr.Dwell[k]), get); err != nil {
			return nil, err
		}
		prev = task
		tick()
	}
	return sr, nil
}

func runDiff(ctx context.Context, opt *RunOptions, prep *prepared, fw *forwarder, tr *Trace, name, path string, dep deployment, prefetch bool, budget int64, tick func()) (*StrategyResult, error) {
	do := diffload.Options{
		Budget: budget, CoalesceGap: opt.Loader.CoalesceGap, InFlight: opt.Loader.InFlight,
		RequestSize: opt.Loader.RequestBytes, DirectIO: diffload.DirectMode(opt.Loader.Direct),
	}
	if prefetch {
		pol, err := diffload.NewTransitionPolicy(tr.Tasks, tr.Predict)
		if err != nil {
			return nil, err
		}
		do.Policy = pol
	}
	rt, err := diffload.Open(path, do)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	layers := map[string][]int{}
	for _, t := range rt.Manifest().Tasks {
		var ls []int
		for _, ts := range t.Tensors {
			if !slices.Contains(ls, ts.Layer) {
				ls = append(ls, ts.Layer)
			}
		}
		slices.Sort(ls)
		layers[t.Name] = ls
	}
	sr := &StrategyResult{Strategy: name}
	if _, reason := rt.DirectIO(); reason != "" {
		sr.FallbackReason = reason
	}
	var pf *diffload.Prefetch
	prev := ""
	for k, v := range tr.Visits {
		task := tr.Tasks[v]
		t0 := time.Now()
		p, err := rt.Begin(ctx, task)
		if err != nil {
			return nil, err
		}
		tBegin := time.Now()
		rec := SwitchRecord{Index: k, From: prev, To: task, Cold: k == 0, Phases: map[string]time.Duration{}}
		last := tBegin
		for _, l := range layers[task] {
			if err := p.WaitLayer(ctx, l); err != nil {
				p.Wait()
				return nil, err
			}
			now := time.Now()
			for len(rec.LayerRead) < l {
				rec.LayerRead = append(rec.LayerRead, 0)
			}
			rec.LayerRead = append(rec.LayerRead, now.Sub(last))
			if rec.FirstLayer == 0 {
				rec.FirstLayer = now.Sub(t0)
			}
			last = now
		}
		stats, err := p.Wait()
		if err != nil {
			return nil, err
		}
		end := time.Now()
		rec.Latency = end.Sub(t0)
		rec.Bytes, rec.Requests, rec.ReadTime, rec.Direct = stats.BytesRead, stats.Requests, stats.Read, stats.DirectIO
		rec.Phases["plan"] = tBegin.Sub(t0)
		rec.Phases["read"] = last.Sub(tBegin)
		rec.Phases["publish"] = end.Sub(last)
		if pf != nil {
			if ps, _ := pf.Wait(); ps != nil {
				rec.PrefetchBytes = ps.BytesRead
			}
			pf = nil
		}
		b, _ := rt.Resident()
		sr.PeakPoolBytes = max(sr.PeakPoolBytes, b)
		sr.Records = append(sr.Records, rec)

		tv, err := rt.Acquire()
		if err != nil {
			return nil, err
		}
		if tv.Task() != task {
			tv.Release()
			return nil, fmt.Errorf("after switch %d to %s the published task is %s", k, task, tv.Task())
		}
		get := func(n, bias string) (*bsr.View, []float32, error) {
			v, err := tv.Tensor(n)
			if err != nil {
				return nil, nil, err
			}
			if bias == "" {
				return v, nil, nil
			}
			b, _, err := tv.Dense(bias)
			return v, b, err
		}
		if err := fw.pass(task, get, prep.refs[dep][task]); err != nil {
			tv.Release()
			return nil, fmt.Errorf("after switch %d to %s: %w", k, task, err)
		}
		sr.ForwardChecks++
		if prefetch && k+1 < len(tr.Visits) {
			if next := tr.Next(v); next >= 0 {
				if pf, err = rt.Prefetch(ctx, tr.Tasks[next]); err != nil {
					tv.Release()
					return nil, err
				}
			}
		}
		err = fw.window(ctx, task, end, opt.Window*time.Duration(tr.Dwell[k]), get)
		tv.Release()
		if err != nil {
			return nil, err
		}
		if b, _ := rt.Resident(); b > sr.PeakPoolBytes {
			sr.PeakPoolBytes = b
		}
		prev = task
		tick()
	}
	if pf != nil {
		pf.Cancel()
		pf.Wait()
	}
	return sr, nil
}

// prepare generates or finds the family, packs it, writes the monolithic
// baselines and computes the forward references.
func prepare(ctx context.Context, opt *RunOptions) (*prepared, error) {
	prep := &prepared{
		mono: map[deployment]map[string]string{}, idx: map[string]*MonoIndex{},
		tensors: map[string][]tensorRef{}, refs: map[deployment]map[string]map[string]*ref{},
	}
	var denseSrc func(task string) (map[string][]float32, func(), error)
	var monoDir string
	if opt.Store == "" {
		c := opt.Family
		prep.config = &c
		cache := opt.CacheDir
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return nil, fmt.Errorf("run: creating cache directory %s: %w", cache, err)
		}
		opt.Progress.Update("generating the built-in family", 0, 0)
		fam, hit, err := CachedFamily(cache, c, func(d, t int) { opt.Progress.Update("generating the built-in family", d, t) })
		if err != nil {
			return nil, err
		}
		if hit {
			opt.logf("family: cached in %s", fam.Dir)
		} else {
			opt.logf("family: generated in %s", fam.Dir)
		}
		bound, _ := align.ParseVersionBound(opt.VersionBound)
		base := fam.Path(fam.Base)
		if c.IsShared() {
			prep.family = fmt.Sprintf("built-in synthetic family, kind shared (tasks share dense weights and differ by calibration statistics; not trained weights): %d tasks, %d layers, width %d, seed %d",
				c.Tasks, c.Layers, c.Width, c.Seed)
			prep.scenario = "shared weights, per-task calibration (the paper's scenario): no base, versions shared by content"
			base = ""
		} else {
			prep.family = fmt.Sprintf("built-in synthetic family, kind finetune (full fine-tunes of a base, every layer moved %.0f-%.0f%%; not trained weights): %d tasks, %d layers, width %d, seed %d",
				100*c.DeltaScale*c.layerFactor(0), 100*c.DeltaScale, c.Tasks, c.Layers, c.Width, c.Seed)
			prep.scenario = fmt.Sprintf("fine-tunes of a base, version bound %s at eps %g", bound, opt.Eps)
		}
		prep.tasks = fam.Order
		var inputs []pack.TaskInput
		for _, t := range fam.Order {
			inputs = append(inputs, pack.TaskInput{Name: t, Path: fam.Path(fam.Tasks[t]), Calib: fam.Path(fam.Calib[t])})
		}
		tag := fmt.Sprintf("d%g-%dx%d", opt.Density, opt.R, opt.C)
		method := opt.Method
		if method == "" {
			method = "default"
		}
		if base != "" {
			tag += "-" + string(bound)
		}
		prep.aligned = filepath.Join(fam.Dir, fmt.Sprintf("aligned-%s-e%g-%s.dms", tag, opt.Eps, method))
		prep.indep = filepath.Join(fam.Dir, fmt.Sprintf("independent-%s-e%g.dms", tag, opt.Eps))
		// The two packs are single-threaded: run them side by side.
		type packJob struct{ path, method, what string }
		jobs := []packJob{{prep.indep, string(align.Independent), "independent"}, {prep.aligned, opt.Method, "aligned"}}
		errs := make([]error, len(jobs))
		parallelFor(len(jobs), func(i int) {
			j := jobs[i]
			if _, err := os.Stat(j.path); err == nil {
				opt.logf("pack %s: cached %s", j.what, j.path)
				return
			}
			t0 := time.Now()
			phase := "packing " + j.what
			_, err := pack.Run(j.path, pack.Options{
				Tasks: inputs, Base: base, Density: opt.Density, R: opt.R, C: opt.C, Eps: opt.Eps,
				Method: align.Method(j.method), VersionBound: bound,
				Progress: func(stage string, d, t int) {
					opt.Progress.Update(phase+": "+stage, d, t)
				},
			}, false)
			if err != nil {
				errs[i] = fmt.Errorf("run: packing the %s store: %w", j.what, err)
				return
			}
			opt.logf("pack %s: %s in %v", j.what, j.path, time.Since(t0).Round(time.Millisecond))
		})
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		monoDir = filepath.Join(fam.Dir, fmt.Sprintf("mono-%s-e%g", tag, opt.Eps))
		denseSrc = func(task string) (map[string][]float32, func(), error) {
			f, err := safetensors.Open(fam.Path(fam.Tasks[task]))
			if err != nil {
				return nil, nil, err
			}
			out := map[string][]float32{}
			for _, info := range f.Tensors() {
				v, _, err := f.Float32View(info.Name)
				if err != nil {
					f.Close()
					return nil, nil, err
				}
				out[info.Name] = v
			}
			return out, func() { f.Close() }, nil
		}
	} else {
		prep.aligned = opt.Store
		prep.family = "packed family " + opt.Store
		if ind := strings.TrimSuffix(opt.Store, ".dms") + ".independent.dms"; ind != opt.Store {
			if _, err := os.Stat(ind); err == nil {
				prep.indep = ind
			}
		}
		monoDir = opt.Store + ".mono"
	}
	st, err := diffload.OpenStore(prep.aligned)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	defer st.Close()
	m := st.Manifest()
	if q, ok := m.Meta[pack.MetaKey]; ok {
		if prep.report, err = pack.DecodeReport(q); err != nil {
			return nil, fmt.Errorf("run: %s: %w", prep.aligned, err)
		}
	}
	if opt.Store != "" {
		for _, t := range m.Tasks {
			prep.tasks = append(prep.tasks, t.Name)
		}
		opt.R, opt.C = m.R, m.C
	}
	var ist *diffload.Store
	if prep.indep != "" {
		if ist, err = diffload.OpenStore(prep.indep); err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		defer ist.Close()
		if q, ok := ist.Manifest().Meta[pack.MetaKey]; ok {
			if prep.indepReport, err = pack.DecodeReport(q); err != nil {
				return nil, fmt.Errorf("run: %s: %w", prep.indep, err)
			}
		}
	}
	// Tensors of every task, in layer order, with their biases.
	for _, name := range prep.tasks {
		ts, ok := m.Task(name)
		if !ok {
			return nil, fmt.Errorf("run: store %s has no task %q", prep.aligned, name)
		}
		var refs []tensorRef
		for _, t := range ts.Tensors {
			r := tensorRef{name: t.Name, layer: t.Layer, rows: t.Rows, cols: t.Cols}
			if b := strings.TrimSuffix(t.Name, ".weight") + ".bias"; b != t.Name {
				if d, ok := ts.DenseByName(b); ok && len(d.Shape) == 1 && d.Shape[0] == t.Rows {
					r.bias = b
				}
			}
			refs = append(refs, r)
		}
		slices.SortStableFunc(refs, func(a, b tensorRef) int { return a.layer - b.layer })
		prep.tensors[name] = refs
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x696e707574))
	prep.xs = map[int][]float32{}
	for _, ts := range prep.tensors {
		for _, t := range ts {
			if _, ok := prep.xs[t.cols]; !ok {
				x := make([]float32, t.cols)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				prep.xs[t.cols] = x
			}
		}
	}
	if err := os.MkdirAll(monoDir, 0o755); err != nil {
		return nil, fmt.Errorf("run: creating %s: %w", monoDir, err)
	}
	// Deployments: what each strategy serves and where its weights come from.
	fromStore := func(s *diffload.Store) func(task string) ([]monoTensorIn, error) {
		return func(task string) ([]monoTensorIn, error) {
			var out []monoTensorIn
			for _, t := range prep.tensors[task] {
				mat, err := s.TaskTensor(task, t.name)
				if err != nil {
					return nil, err
				}
				in := monoTensorIn{name: t.name, bias: t.bias, layer: t.layer, m: mat}
				if t.bias != "" {
					if in.b, _, err = s.DenseTensor(task, t.bias); err != nil {
						return nil, err
					}
				}
				out = append(out, in)
			}
			return out, nil
		}
	}
	full := func(rows, cols int) *bsr.Mask {
		mk := bsr.NewMask(rows, cols, opt.R, opt.C)
		for i := range mk.Keep {
			mk.Keep[i] = true
		}
		return mk
	}
	denseOf := func(task string) ([]monoTensorIn, error) {
		if denseSrc == nil {
			// A packed family: the dense checkpoint of the deployed weights.
			ts, err := fromStore(st)(task)
			if err != nil {
				return nil, err
			}
			for i := range ts {
				d := ts[i].m.ToDense()
				if ts[i].m, err = bsr.FromDense(d, ts[i].m.Rows, ts[i].m.Cols, opt.R, opt.C, full(ts[i].m.Rows, ts[i].m.Cols)); err != nil {
					return nil, err
				}
			}
			return ts, nil
		}
		vals, closeFn, err := denseSrc(task)
		if err != nil {
			return nil, err
		}
		defer closeFn()
		var out []monoTensorIn
		for _, t := range prep.tensors[task] {
			w, ok := vals[t.name]
			if !ok || len(w) != t.rows*t.cols {
				return nil, fmt.Errorf("dense checkpoint of task %s: tensor %s missing or not %dx%d", task, t.name, t.rows, t.cols)
			}
			mat, err := bsr.FromDense(w, t.rows, t.cols, opt.R, opt.C, full(t.rows, t.cols))
			if err != nil {
				return nil, fmt.Errorf("dense checkpoint of task %s, tensor %s: %w", task, t.name, err)
			}
			in := monoTensorIn{name: t.name, bias: t.bias, layer: t.layer, m: mat}
			if t.bias != "" {
				b, ok := vals[t.bias]
				if !ok {
					return nil, fmt.Errorf("dense checkpoint of task %s: no bias %s", task, t.bias)
				}
				in.b = slices.Clone(b)
			}
			out = append(out, in)
		}
		return out, nil
	}
	type depSpec struct {
		dep  deployment
		get  func(task string) ([]monoTensorIn, error)
		mono string // file prefix, "" for none
	}
	deps := []depSpec{{depDense, denseOf, "dense"}}
	prep.monoSparse = depAligned
	if ist != nil {
		prep.monoSparse = depIndep
		deps = append(deps, depSpec{depIndep, fromStore(ist), "sparse"}, depSpec{depAligned, fromStore(st), ""})
	} else {
		deps = append(deps, depSpec{depAligned, fromStore(st), "sparse"})
	}
	steps := len(deps) * len(prep.tasks)
	step := 0
	for _, d := range deps {
		prep.refs[d.dep] = map[string]map[string]*ref{}
		if d.mono != "" {
			prep.mono[d.dep] = map[string]string{}
		}
		for _, task := range prep.tasks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			opt.Progress.Update("monolithic baselines and forward references", step, steps)
			step++
			ts, err := d.get(task)
			if err != nil {
				return nil, fmt.Errorf("run: %s weights of task %s: %w", d.dep, task, err)
			}
			if d.mono != "" {
				path := filepath.Join(monoDir, fmt.Sprintf("%s-%s.bin", d.mono, task))
				idx, err := loadMonoIndex(path)
				if err != nil {
					if idx, err = writeMono(path, task, opt.R, opt.C, ts); err != nil {
						return nil, fmt.Errorf("run: %w", err)
					}
					opt.logf("mono-%s: wrote %s (%s)", d.mono, path, FormatBytes(float64(idx.Size)))
				}
				prep.mono[d.dep][task] = path
				prep.idx[path] = idx
				if d.dep == depDense {
					prep.denseBytes = max(prep.denseBytes, idx.Size)
				}
			}
			rs := make([]*ref, len(ts))
			errs := make([]error, len(ts))
			parallelFor(len(ts), func(i int) { rs[i], errs[i] = computeRef(opt.Kernel, ts[i], prep.xs[ts[i].m.Cols]) })
			if err := errors.Join(errs...); err != nil {
				return nil, fmt.Errorf("run: %s reference of task %s: %w", d.dep, task, err)
			}
			refs := make(map[string]*ref, len(ts))
			for i, r := range rs {
				refs[ts[i].name] = r
			}
			prep.refs[d.dep][task] = refs
		}
	}
	opt.Progress.Done()
	return prep, nil
}

// computeRef computes a tensor's expected outputs on x: with the kernel on
// the contiguous matrix, and densely in float64; the two must agree.
func computeRef(k bsr.Kernel, t monoTensorIn, x []float32) (*ref, error) {
	m := t.m
	r := &ref{exact: make([]float32, m.Rows), dense: make([]float64, m.Rows), abs: make([]float64, m.Rows)}
	if err := bsr.LinearWith(k, r.exact, x, 1, m.View(), t.b, bsr.Options{Workers: 1}); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.name, err)
	}
	d := m.ToDense()
	for i := 0; i < m.Rows; i++ {
		row := d[i*m.Cols : (i+1)*m.Cols]
		var s, a float64
		for j, w := range row {
			p := float64(w) * float64(x[j])
			s += p
			a += math.Abs(p)
		}
		if t.b != nil {
			s += float64(t.b[i])
			a += math.Abs(float64(t.b[i]))
		}
		r.dense[i], r.abs[i] = s, a
		if math.Abs(float64(r.exact[i])-s) > 1e-4*a {
			return nil, fmt.Errorf("tensor %s output %d: kernel %s gives %g on the contiguous matrix, dense reference %g", t.name, i, k.Name(), r.exact[i], s)
		}
	}
	return r, nil
}
