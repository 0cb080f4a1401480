package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dmsparse/dmsparse/pack"
)

// Strategy names, in table order.
const (
	MonoDense       = "mono-dense"
	MonoSparse      = "mono-sparse"
	DiffIndependent = "diff-independent"
	DiffAligned     = "diff-aligned"
	DiffPrefetch    = "diff-aligned+prefetch"
)

// AllStrategies lists every strategy in table order.
var AllStrategies = []string{MonoDense, MonoSparse, DiffIndependent, DiffAligned, DiffPrefetch}

// SwitchRecord is one measured switch.
type SwitchRecord struct {
	// Index is the switch's position in the trace (0 is the cold start).
	Index int `json:"index"`
	// From and To name the tasks ("" From at cold start).
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// Cold marks the first load into an empty pool.
	Cold bool `json:"cold"`
	// Bytes is the bytes read by the switch itself.
	Bytes int64 `json:"bytes"`
	// Requests is the number of read requests it issued.
	Requests int `json:"requests"`
	// Latency is the time from the switch call until the task's views are
	// usable (for prefetch, including cancelling an unfinished prefetch).
	Latency time.Duration `json:"latency_ns"`
	// FirstLayer is the time until the first layer's tensors are usable.
	FirstLayer time.Duration `json:"first_layer_ns"`
	// ReadTime is the wall time of the I/O phase.
	ReadTime time.Duration `json:"read_ns"`
	// Phases times the switch's phases (plan, read, publish, ...); they
	// partition Latency.
	Phases map[string]time.Duration `json:"phases_ns,omitempty"`
	// LayerRead gives, per layer, the part of the read phase until that
	// layer was complete after the previous one.
	LayerRead []time.Duration `json:"layer_read_ns,omitempty"`
	// PrefetchBytes is what the prefetch before this switch read.
	PrefetchBytes int64 `json:"prefetch_bytes,omitempty"`
	// Direct reports O_DIRECT reads.
	Direct bool `json:"direct"`
}

// Summary aggregates the steady-state switches of one strategy on one trace.
type Summary struct {
	// Switches is the number of steady-state switches.
	Switches int `json:"switches"`
	// BytesPerSwitch is the mean bytes read per switch.
	BytesPerSwitch float64 `json:"bytes_per_switch"`
	// Mean, P50 and P99 summarise the switch latency.
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	// FirstLayer is the mean first-layer-ready time.
	FirstLayer time.Duration `json:"first_layer_ns"`
	// Bandwidth is the bytes read over the time spent reading them.
	Bandwidth float64 `json:"bandwidth"`
	// PrefetchBytesPerSwitch is the mean bytes a background prefetch read
	// before each switch (not part of the switch's latency).
	PrefetchBytesPerSwitch float64 `json:"prefetch_bytes_per_switch,omitempty"`
}

// StrategyResult is one strategy on one trace.
type StrategyResult struct {
	// Strategy names the strategy.
	Strategy string `json:"strategy"`
	// Cold is the first load into an empty pool.
	Cold SwitchRecord `json:"cold"`
	// Steady summarises every later switch.
	Steady Summary `json:"steady"`
	// Speedup is mono-sparse's mean steady latency over this one's.
	Speedup float64 `json:"speedup_vs_mono_sparse"`
	// BandwidthShare is Steady.Bandwidth over the device's sequential
	// O_DIRECT bandwidth.
	BandwidthShare float64 `json:"bandwidth_share"`
	// PeakPoolBytes is the most weight memory resident at once.
	PeakPoolBytes int64 `json:"peak_pool_bytes"`
	// ForwardChecks counts the forward passes checked against the dense
	// reference (all passed, or the run failed).
	ForwardChecks int `json:"forward_checks"`
	// FallbackReason is set when reads did not use O_DIRECT.
	FallbackReason string `json:"fallback_reason,omitempty"`
	// Records lists every switch, cold start first.
	Records []SwitchRecord `json:"records"`
}

// TraceResult holds every strategy's result on one trace.
type TraceResult struct {
	// Trace names the trace.
	Trace string `json:"trace"`
	// Visits is the task sequence.
	Visits []string `json:"visits"`
	// Strategies are in table order.
	Strategies []StrategyResult `json:"strategies"`
}

// Results is the outcome of "dmbench run".
type Results struct {
	// Family describes the family ("built-in ..." or the store path).
	Family string `json:"family"`
	// Config is the built-in family's configuration (nil for a store).
	Config *FamilyConfig `json:"config,omitempty"`
	// Scenario says what the family measures (shared weights with
	// per-task calibration, or fine-tunes under a version bound); empty
	// for a packed family.
	Scenario string `json:"scenario,omitempty"`
	// Density, Eps, R and C are the packing parameters.
	Density float64 `json:"density"`
	Eps     float64 `json:"eps"`
	R       int     `json:"r"`
	C       int     `json:"c"`
	// Budget is the pool budget of the differential strategies.
	Budget int64 `json:"budget"`
	// TaskBytes is the largest task's block bytes in the aligned store.
	TaskBytes int64 `json:"task_bytes"`
	// DenseBytes is one task's dense checkpoint bytes.
	DenseBytes int64 `json:"dense_bytes"`
	// DeviceBandwidth is the device's sequential O_DIRECT read bandwidth and
	// DeviceSource where it comes from.
	DeviceBandwidth float64 `json:"device_bandwidth"`
	DeviceSource    string  `json:"device_source"`
	// Loader holds the loader settings every strategy used.
	Loader LoaderSettings `json:"loader"`
	// Window is the forward-pass window between switches.
	Window time.Duration `json:"window_ns"`
	// Kernel names the forward-pass kernel.
	Kernel string `json:"kernel"`
	// Traces holds one result per trace.
	Traces []TraceResult `json:"traces"`
	// Quality is the aligned store's per-task quality report;
	// IndepQuality the independent one's (nil when absent).
	Quality      *pack.Report `json:"quality,omitempty"`
	IndepQuality *pack.Report `json:"indep_quality,omitempty"`
	// Elapsed is the wall time of the whole run, with Prepare the part
	// spent generating, packing and writing baselines.
	Elapsed time.Duration `json:"elapsed_ns"`
	Prepare time.Duration `json:"prepare_ns"`
}

// LoaderSettings are the read settings shared by every strategy.
type LoaderSettings struct {
	// RequestBytes is the largest read request.
	RequestBytes int64 `json:"request_bytes"`
	// InFlight is the number of requests outstanding.
	InFlight int `json:"in_flight"`
	// CoalesceGap is the differential loader's coalescing gap.
	CoalesceGap int64 `json:"coalesce_gap"`
	// Direct chooses O_DIRECT use.
	Direct DirectMode `json:"direct"`
}

// quantile returns the q-quantile (nearest rank) of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// summarize fills Cold and Steady from Records.
func (s *StrategyResult) summarize() {
	if len(s.Records) == 0 {
		return
	}
	s.Cold = s.Records[0]
	steady := s.Records[1:]
	sm := Summary{Switches: len(steady)}
	if len(steady) == 0 {
		s.Steady = sm
		return
	}
	lat := make([]time.Duration, len(steady))
	var bytes, readNS, pf float64
	var sum, fl time.Duration
	for i, r := range steady {
		pf += float64(r.PrefetchBytes)
		lat[i] = r.Latency
		sum += r.Latency
		fl += r.FirstLayer
		bytes += float64(r.Bytes)
		readNS += float64(r.ReadTime)
	}
	slices.Sort(lat)
	sm.BytesPerSwitch = bytes / float64(len(steady))
	sm.PrefetchBytesPerSwitch = pf / float64(len(steady))
	sm.Mean = sum / time.Duration(len(steady))
	sm.P50 = quantile(lat, 0.5)
	sm.P99 = quantile(lat, 0.99)
	sm.FirstLayer = fl / time.Duration(len(steady))
	if readNS > 0 {
		sm.Bandwidth = bytes / (readNS / 1e9)
	}
	s.Steady = sm
}

// finish computes the speedups and bandwidth shares of every trace.
func (r *Results) finish() {
	for ti := range r.Traces {
		tr := &r.Traces[ti]
		var mono time.Duration
		for _, s := range tr.Strategies {
			if s.Strategy == MonoSparse {
				mono = s.Steady.Mean
			}
		}
		for si := range tr.Strategies {
			s := &tr.Strategies[si]
			if mono > 0 && s.Steady.Mean > 0 {
				s.Speedup = float64(mono) / float64(s.Steady.Mean)
			}
			if r.DeviceBandwidth > 0 {
				s.BandwidthShare = s.Steady.Bandwidth / r.DeviceBandwidth
			}
		}
	}
}

// Strategy returns the result of a strategy on a trace, or nil.
func (r *Results) Strategy(trace, strategy string) *StrategyResult {
	for ti := range r.Traces {
		if r.Traces[ti].Trace != trace {
			continue
		}
		for si := range r.Traces[ti].Strategies {
			if r.Traces[ti].Strategies[si].Strategy == strategy {
				return &r.Traces[ti].Strategies[si]
			}
		}
	}
	return nil
}

// FormatBytes prints a byte count with a binary unit.
func FormatBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// FormatDuration prints a duration in ms with 3 significant digits.
func FormatDuration(d time.Duration) string {
	ms := float64(d) / 1e6
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.2f ms", ms)
}

// WriteText prints the run's header, a table per trace and the per-task
// quality table.
func (r *Results) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "family: %s\n", r.Family)
	if r.Scenario != "" {
		fmt.Fprintf(w, "scenario: %s\n", r.Scenario)
	}
	fmt.Fprintf(w, "packing: density %g, eps %g, blocks %dx%d; budget %s (largest task %s, dense task %s)\n",
		r.Density, r.Eps, r.R, r.C, FormatBytes(float64(r.Budget)), FormatBytes(float64(r.TaskBytes)), FormatBytes(float64(r.DenseBytes)))
	fmt.Fprintf(w, "loader: %s requests x %d in flight, coalescing gap %s, O_DIRECT %s; device %.0f MB/s (%s); forward window %v, kernel %s\n",
		FormatBytes(float64(r.Loader.RequestBytes)), r.Loader.InFlight, FormatBytes(float64(r.Loader.CoalesceGap)),
		directName(r.Loader.Direct), r.DeviceBandwidth/1e6, r.DeviceSource, r.Window, r.Kernel)
	for _, tr := range r.Traces {
		what := ""
		if r.Scenario != "" {
			what = " [" + r.Scenario + "]"
		}
		fmt.Fprintf(w, "\ntrace %s: %d switches after the cold start%s\n", tr.Trace, len(tr.Visits)-1, what)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "strategy\tbytes/switch\tprefetched\tmean\tp50\tp99\tfirst layer\tspeedup\tbandwidth\tof device\tpeak pool\tcold start\tcold bytes\t")
		for _, s := range tr.Strategies {
			pf := "-"
			if s.Steady.PrefetchBytesPerSwitch > 0 {
				pf = FormatBytes(s.Steady.PrefetchBytesPerSwitch)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1fx\t%.0f MB/s\t%.0f%%\t%s\t%s\t%s\t\n",
				s.Strategy, FormatBytes(s.Steady.BytesPerSwitch), pf, FormatDuration(s.Steady.Mean), FormatDuration(s.Steady.P50),
				FormatDuration(s.Steady.P99), FormatDuration(s.Steady.FirstLayer), s.Speedup, s.Steady.Bandwidth/1e6,
				100*s.BandwidthShare, FormatBytes(float64(s.PeakPoolBytes)), FormatDuration(s.Cold.Latency), FormatBytes(float64(s.Cold.Bytes)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if r.Quality != nil {
		fmt.Fprintf(w, "\nper-task quality (aligned, %s; mean pairwise share of kept blocks %.1f%%", r.Quality.Method, 100*r.Quality.Share)
		if r.IndepQuality != nil {
			fmt.Fprintf(w, ", independent %.1f%%", 100*r.IndepQuality.Share)
		} else {
			fmt.Fprintf(w, ", independent %.1f%%", 100*r.Quality.IndepShare)
		}
		fmt.Fprintln(w, ")")
		if err := r.Quality.WriteQualityTable(w); err != nil {
			return err
		}
		if err := r.Quality.WriteCurve(w); err != nil {
			return err
		}
	}
	return nil
}

func directName(d DirectMode) string {
	switch d {
	case DirectForce:
		return "forced"
	case DirectOff:
		return "off"
	}
	return "auto"
}

// WriteJSON writes the results as indented JSON.
func (r *Results) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteJSONAll writes one run as WriteJSON does, several as a JSON array.
func WriteJSONAll(w io.Writer, rs []*Results) error {
	if len(rs) == 1 {
		return rs[0].WriteJSON(w)
	}
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// FamilyLabel names the run's family for tables and files: the built-in
// family's kind ("finetune" or "shared"), or "store" for a packed family.
func (r *Results) FamilyLabel() string {
	if r.Config == nil {
		return "store"
	}
	return r.Config.kindName()
}

// CSVHeader is the header row of WriteCSV.
var CSVHeader = []string{"family", "trace", "strategy", "switches", "bytes_per_switch", "mean_ms", "p50_ms", "p99_ms", "first_layer_ms",
	"speedup_vs_mono_sparse", "bandwidth_mb_s", "bandwidth_share", "peak_pool_bytes", "cold_ms", "cold_bytes"}

// WriteCSV writes one row per trace and strategy.
func (r *Results) WriteCSV(w io.Writer) error { return WriteCSVAll(w, []*Results{r}) }

// WriteCSVAll writes one header and one row per run, trace and strategy.
func WriteCSVAll(w io.Writer, rs []*Results) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	for _, r := range rs {
		r.csvRows(cw)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	return nil
}

func (r *Results) csvRows(cw *csv.Writer) {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 4, 64) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	for _, tr := range r.Traces {
		for _, s := range tr.Strategies {
			cw.Write([]string{r.FamilyLabel(), tr.Trace, s.Strategy, strconv.Itoa(s.Steady.Switches), f(s.Steady.BytesPerSwitch),
				ms(s.Steady.Mean), ms(s.Steady.P50), ms(s.Steady.P99), ms(s.Steady.FirstLayer), f(s.Speedup),
				f(s.Steady.Bandwidth / 1e6), f(s.BandwidthShare), strconv.FormatInt(s.PeakPoolBytes, 10),
				ms(s.Cold.Latency), strconv.FormatInt(s.Cold.Bytes, 10)})
		}
	}
}

// Verdict states, per trace, how diff-aligned compares with the targets:
// at least 10x faster than mono-sparse, and with prefetch a perceived
// latency at most 5% of mono-sparse's.
func (r *Results) Verdict() []string {
	var out []string
	for _, tr := range r.Traces {
		var parts []string
		ms := r.Strategy(tr.Trace, MonoSparse)
		p50 := func(s *StrategyResult) float64 {
			if ms == nil || s.Steady.P50 <= 0 {
				return 0
			}
			return float64(ms.Steady.P50) / float64(s.Steady.P50)
		}
		if s := r.Strategy(tr.Trace, DiffAligned); s != nil && s.Speedup > 0 {
			mark := "met"
			if s.Speedup < 10 {
				mark = "missed"
			}
			bytesRatio := 0.0
			if ms != nil && s.Steady.BytesPerSwitch > 0 {
				bytesRatio = ms.Steady.BytesPerSwitch / s.Steady.BytesPerSwitch
			}
			parts = append(parts, fmt.Sprintf("diff-aligned %.1fx mono-sparse (target 10x: %s; %.0fx at p50; %.1fx fewer bytes)", s.Speedup, mark, p50(s), bytesRatio))
		}
		if s := r.Strategy(tr.Trace, DiffPrefetch); s != nil && s.Speedup > 0 {
			share := 100 / s.Speedup
			mark := "met"
			if share > 5 {
				mark = "missed"
			}
			pshare := 0.0
			if q := p50(s); q > 0 {
				pshare = 100 / q
			}
			parts = append(parts, fmt.Sprintf("prefetch perceived latency %.1f%% of mono-sparse (target 5%%: %s; %.1f%% at p50)", share, mark, pshare))
		}
		if s := r.Strategy(tr.Trace, DiffAligned); s != nil && r.DeviceBandwidth > 0 {
			if s.Cold.ReadTime > 0 {
				bw := float64(s.Cold.Bytes) / s.Cold.ReadTime.Seconds()
				parts = append(parts, fmt.Sprintf("loader at %.0f%% of device bandwidth on the cold start (%s), %.0f%% on steady diff sets (%s mean: latency-bound when small)",
					100*bw/r.DeviceBandwidth, FormatBytes(float64(s.Cold.Bytes)), 100*s.BandwidthShare, FormatBytes(s.Steady.BytesPerSwitch)))
			}
		}
		if len(parts) > 0 {
			label := tr.Trace
			if r.Config != nil {
				label = r.Config.kindName() + " family, " + label
			}
			out = append(out, label+": "+strings.Join(parts, "; "))
		}
	}
	if q := r.Quality; q != nil && q.Base != "" && len(q.Quality) > 0 {
		var priv, vers int
		minDelta := 1.0
		for _, t := range q.Quality {
			priv += t.Private
			vers += t.Versions
			if t.DeltaRetained != nil {
				minDelta = math.Min(minDelta, *t.DeltaRetained)
			}
		}
		if vers > 0 {
			out = append(out, fmt.Sprintf("fine-tunes: %.0f%% of each task's block versions are private (version bound %s, eps %g: every task keeps >= %.1f%% of its fine-tune delta), so a switch between fine-tunes reads about that share of a task: bytes, not the loader, bound the speedup; the shared-weights family shows what alignment alone gives",
				100*float64(priv)/float64(vers), q.VersionBound, q.Eps, 100*minDelta))
		}
	}
	return out
}
