package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/dmsparse/dmsparse/internal/atomicfile"

	"github.com/dmsparse/dmsparse/bench"
	"github.com/dmsparse/dmsparse/profiles"
)

func init() {
	register(command{
		name:    "run",
		summary: "switch benchmark: built-in family (or FAMILY.dms) against monolithic baselines",
		run:     runRun,
	})
}

// parseSize parses a byte count with an optional binary suffix (K, M, G,
// KiB, MiB, GiB; case-insensitive).
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if strings.HasSuffix(t, suf.s) {
			t, mult = strings.TrimSuffix(t, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a non-negative number with an optional K, M or G suffix", s)
	}
	return int64(n * float64(mult)), nil
}

type sizeFlag struct{ v *int64 }

func (f sizeFlag) String() string {
	if f.v == nil {
		return "0"
	}
	return strconv.FormatInt(*f.v, 10)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.v = n
	return nil
}

func parseBlock(s string) (int, int, error) {
	a, b, ok := strings.Cut(strings.ToLower(s), "x")
	r, err1 := strconv.Atoi(a)
	c, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || r < 1 || c < 1 {
		return 0, 0, fmt.Errorf("block shape %q: want RxC, e.g. 32x32", s)
	}
	return r, c, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// createOut opens an output file, "-" meaning stdout.
func createOut(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		return write(stdout)
	}
	return atomicfile.Write(path, 0o644, write)
}

func runRun(args []string, stdout, stderr io.Writer) (err error) {
	o := bench.DefaultRunOptions()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Family.Layers, "layers", o.Family.Layers, "built-in family: transformer blocks")
	fs.IntVar(&o.Family.Width, "width", o.Family.Width, "built-in family: model width")
	fs.IntVar(&o.Family.MLPRatio, "mlp-ratio", o.Family.MLPRatio, "built-in family: MLP expansion factor")
	fs.IntVar(&o.Family.Tasks, "tasks", o.Family.Tasks, fmt.Sprintf("built-in family: number of tasks (1..%d)", len(bench.DrivingTasks)))
	fs.Uint64Var(&o.Family.Seed, "family-seed", o.Family.Seed, "built-in family: generator seed")
	fs.Float64Var(&o.Family.DeltaScale, "delta", o.Family.DeltaScale, "built-in fine-tune family: ||delta||_F / ||W||_F of the last block (the first moves 60% of it)")
	family := fs.String("family", "both", "built-in family: \"finetune\" (full fine-tunes of a base, every layer moved 9-15%), \"shared\" (tasks share dense weights, differ by calibration statistics: the paper's scenario) or \"both\" (one after the other)")
	fs.StringVar(&o.VersionBound, "version-bound", "delta", "fine-tune family: base-version bound, \"delta\" (each task keeps >= 1-eps of its fine-tune delta energy) or \"weight\" (base versions add <= eps of the kept weights' squared norm to the squared error); see dmbench pack -h")
	fs.Float64Var(&o.Density, "density", o.Density, "share of blocks each task keeps")
	fs.Float64Var(&o.Eps, "eps", o.Eps, "tolerance: each task keeps >= (1-eps) of its independent importance, and of its fine-tune delta under -version-bound delta")
	block := fs.String("block", "32x32", "block shape RxC")
	fs.StringVar(&o.Method, "method", "", "alignment method: core or swap (default: the packer's)")
	traces := fs.String("trace", "round-robin,random,markov", "traces to run, comma-separated")
	fs.StringVar(&o.TransitionFile, "transition", "", "Markov trace transition matrix JSON {\"tasks\": [...], \"p\": [[...]]} (default: built-in driving schedule)")
	fs.IntVar(&o.Switches, "switches", o.Switches, "switches per trace after the cold start")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the random and Markov traces and the forward inputs")
	fs.DurationVar(&o.Window, "window", o.Window, "forward-pass time between switches (the prefetch window)")
	fs.Var(sizeFlag{&o.Budget}, "budget", "pool budget, e.g. 512MiB (default: the profile's, else one and a half tasks)")
	profile := fs.String("profile", "", "platform profile: a built-in name ("+strings.Join(profiles.Names(), ", ")+") or a JSON file")
	fs.Var(sizeFlag{&o.Loader.RequestBytes}, "request-size", "read request size (default: profile, else 1MiB)")
	fs.IntVar(&o.Loader.InFlight, "in-flight", 0, "read requests in flight (default: profile, else 4)")
	fs.Var(sizeFlag{&o.Loader.CoalesceGap}, "gap", "coalescing gap (default: profile, else 64KiB)")
	direct := fs.String("direct", "auto", "O_DIRECT: auto, force or off")
	strategies := fs.String("strategies", strings.Join(bench.AllStrategies, ","), "strategies to run, comma-separated")
	fs.StringVar(&o.CacheDir, "cache", "", "cache directory (default $XDG_CACHE_HOME/dmsparse or ~/.cache/dmsparse)")
	jsonOut := fs.String("json", "", "write the results as JSON to FILE (- for stdout, replacing the tables; an array with -family both)")
	csvOut := fs.String("csv", "", "write the results as CSV to FILE (- for stdout, replacing the tables; a family column tells the runs apart)")
	chart := fs.String("chart", "", "draw the latency distribution per strategy to FILE.svg (FILE.KIND.svg per family with -family both)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to FILE")
	memProfile := fs.String("memprofile", "", "write a heap profile to FILE at the end")
	switchProfile := fs.String("switchprofile", "", "write a pprof profile of switch time per phase and layer to FILE (FILE.KIND per family with -family both)")
	verbose := fs.Bool("v", false, "log preparation steps on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dmbench run [flags] [FAMILY.dms]")
		fmt.Fprintln(stderr, "\nWithout FAMILY.dms it generates (once, cached), packs and benchmarks the built-in families:")
		fmt.Fprintln(stderr, "fine-tunes of a base under the version bound, then tasks sharing dense weights (-family).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch fs.NArg() {
	case 0:
	case 1:
		o.Store = fs.Arg(0)
		if _, err := os.Stat(o.Store); err != nil {
			return fmt.Errorf("family store: %w", err)
		}
	default:
		return fmt.Errorf("want at most one FAMILY.dms argument, got %q", fs.Args())
	}
	if o.R, o.C, err = parseBlock(*block); err != nil {
		return err
	}
	var kinds []string
	switch *family {
	case "both":
		kinds = []string{bench.FamilyFinetune, bench.FamilyShared}
	case bench.FamilyFinetune, bench.FamilyShared:
		kinds = []string{*family}
	default:
		return fmt.Errorf("-family %q: want finetune, shared or both", *family)
	}
	if o.Store != "" {
		kinds = []string{""} // a packed family: no built-in kind
	}
	o.Traces = splitList(*traces)
	o.Strategies = splitList(*strategies)
	switch *direct {
	case "auto":
		o.Loader.Direct = bench.DirectAuto
	case "force":
		o.Loader.Direct = bench.DirectForce
	case "off":
		o.Loader.Direct = bench.DirectOff
	default:
		return fmt.Errorf("-direct %q: want auto, force or off", *direct)
	}
	if *profile != "" {
		if o.Profile, err = profiles.Load(*profile); err != nil {
			return err
		}
	}
	if *chart != "" && !strings.HasSuffix(strings.ToLower(*chart), ".svg") {
		return fmt.Errorf("-chart %s: only SVG output is supported; name the file .svg", *chart)
	}
	if *verbose {
		o.Log = stderr
	}
	if bench.IsTerminal(stderr) {
		o.Progress = bench.NewProgress(stderr)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("cpu profile %s: %w", *cpuProfile, err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("cpu profile %s: %w", *cpuProfile, cerr)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	text := *jsonOut != "-" && *csvOut != "-"
	var all []*bench.Results
	for i, kind := range kinds {
		ko := o
		if kind != "" {
			ko.Family.Kind = kind
		}
		res, err := bench.Run(ctx, ko)
		if err != nil {
			if kind != "" {
				return fmt.Errorf("%s family: %w", kind, err)
			}
			return err
		}
		all = append(all, res)
		if !text {
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if len(kinds) > 1 {
			fmt.Fprintf(stdout, "==== %s family ====\n", kind)
		}
		if err := res.WriteText(stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		for _, v := range res.Verdict() {
			fmt.Fprintln(stdout, v)
		}
		fmt.Fprintf(stdout, "total %v (preparation %v)\n", res.Elapsed.Round(time.Millisecond), res.Prepare.Round(time.Millisecond))
	}
	if *jsonOut == "-" {
		if err := bench.WriteJSONAll(stdout, all); err != nil {
			return err
		}
	}
	if *csvOut == "-" {
		if err := bench.WriteCSVAll(stdout, all); err != nil {
			return err
		}
	}
	outs := []struct {
		path  string
		write func(io.Writer) error
	}{
		{*jsonOut, func(w io.Writer) error { return bench.WriteJSONAll(w, all) }},
		{*csvOut, func(w io.Writer) error { return bench.WriteCSVAll(w, all) }},
	}
	for _, res := range all {
		suffix := func(p string) string {
			if len(all) == 1 || p == "" {
				return p
			}
			ext := filepath.Ext(p)
			return strings.TrimSuffix(p, ext) + "." + res.FamilyLabel() + ext
		}
		outs = append(outs, struct {
			path  string
			write func(io.Writer) error
		}{suffix(*chart), res.WriteChartSVG}, struct {
			path  string
			write func(io.Writer) error
		}{suffix(*switchProfile), res.WriteSwitchProfile})
	}
	for _, out := range outs {
		if out.path == "" || out.path == "-" {
			continue
		}
		if err := createOut(out.path, stdout, out.write); err != nil {
			return err
		}
	}
	if *memProfile != "" {
		runtime.GC()
		if err := createOut(*memProfile, stdout, pprof.WriteHeapProfile); err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
	}
	return nil
}
