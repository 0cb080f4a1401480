package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/dmsparse/dmsparse/diffload"
	"github.com/dmsparse/dmsparse/profiles"
)

func init() {
	register(command{name: "loadbench", summary: "measure O_DIRECT device bandwidth and the loader's switch bandwidth (long extents vs scattered blocks)", run: runLoadbench})
}

// loadbenchReport is the --json output of dmbench loadbench.
type loadbenchReport struct {
	Device *diffload.DeviceResult   `json:"device"`
	Cases  []*diffload.CaseResult   `json:"cases"`
	Bar    float64                  `json:"bar"`
	Pass   bool                     `json:"pass"`
	Config diffload.LoadBenchConfig `json:"-"`
}

func runLoadbench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "/var/tmp", "directory on the device to measure (not tmpfs) for the scratch file and stores")
	scratch := fs.Int64("scratch-mib", 512, "size of the sequential-read scratch file in MiB")
	extent := fs.Int64("extent-mib", 256, "bytes read per switch in case (a), long extents, in MiB")
	scatter := fs.Int64("scatter-mib", 8, "bytes read per switch in case (b), scattered 4 KiB blocks, in MiB")
	switches := fs.Int("switches", 4, "timed switches per case")
	depth := fs.Int("depth", 16, "requests in flight for the device measurement")
	inflight := fs.Int("inflight", 0, "loader requests in flight (0 = default)")
	reqKiB := fs.Int64("request-kib", 0, "loader request size in KiB (0 = default 1024)")
	gapKiB := fs.Int64("gap-kib", 0, "loader coalescing gap in KiB (0 = default 64, negative = never merge)")
	direct := fs.String("direct", "auto", "O_DIRECT use: auto, force or off")
	keep := fs.Bool("keep", false, "keep the scratch file and stores")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	bar := fs.Float64("bar", 0.9, "required share of the device bandwidth for case (a)")
	profile := fs.String("profile", "", "platform profile (built-in name or JSON path) whose loader settings fill -inflight, -request-kib and -gap-kib when those are 0")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *scratch < 1 || *extent < 1 || *scatter < 1 || *switches < 1 || *depth < 1 {
		return fmt.Errorf("sizes, switches and depth must be positive")
	}
	mode := map[string]diffload.DirectMode{"auto": diffload.DirectAuto, "force": diffload.DirectForce, "off": diffload.DirectOff}
	dm, ok := mode[*direct]
	if !ok {
		return fmt.Errorf("-direct %q: want auto, force or off", *direct)
	}
	gap := *gapKiB << 10
	if *gapKiB < 0 {
		gap = -1
	}
	req := *reqKiB << 10
	if *profile != "" {
		p, err := profiles.Load(*profile)
		if err != nil {
			return err
		}
		if *inflight == 0 {
			*inflight = p.Loader.InFlight
		}
		if req == 0 {
			req = p.Loader.RequestBytes
		}
		if *gapKiB == 0 {
			gap = p.Loader.CoalesceGapBytes
			if gap == 0 {
				gap = -1 // the profile says: never merge
			}
		}
	}
	cfg := diffload.LoadBenchConfig{
		Dir: *dir, ScratchBytes: *scratch << 20, ExtentDiffBytes: *extent << 20, ScatterDiffBytes: *scatter << 20,
		Switches: *switches, Depth: *depth, Keep: *keep,
		Loader:   diffload.Options{InFlight: *inflight, RequestSize: req, CoalesceGap: gap, DirectIO: dm},
		Progress: func(s string) { fmt.Fprintln(stderr, "loadbench:", s) },
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := diffload.RunLoadBench(ctx, cfg)
	if err != nil {
		return err
	}
	rep := loadbenchReport{Device: res.Device, Cases: res.Cases, Bar: *bar}
	rep.Pass = len(res.Cases) > 0 && res.Cases[0].OfDevice >= *bar
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	d := res.Device
	fmt.Fprintf(stdout, "device: %s, %d MiB sequential, %d KiB requests x %d in flight, O_DIRECT %v: best pass %.0f MB/s\n",
		d.Path, d.Bytes>>20, d.RequestSize>>10, d.Depth, d.DirectIO, d.Bandwidth/1e6)
	fmt.Fprintf(stdout, "each case: fresh scratch file read twice (\"device MB/s\", the reference for \"of device\"), then a fresh store switched\n\n")
	fmt.Fprintln(tw, "case\tMiB/switch\trequests\textents\tmean\tp50\tmax\tfirst layer\tMB/s\tdevice MB/s\tof device\tO_DIRECT\t")
	for _, c := range res.Cases {
		fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.1f%%\t%v\t\n", c.Name, float64(c.BytesPerSwitch)/(1<<20),
			c.RequestsPerSwitch, c.ExtentsPerSwitch, ms(c.Mean), ms(c.P50), ms(c.Max), ms(c.FirstLayer), c.Bandwidth/1e6, c.DeviceBandwidth/1e6, 100*c.OfDevice, c.DirectIO)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "PASS"
	if !rep.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(stdout, "\nbar: case (a) extents >= %.0f%% of the device bandwidth: %s\n", 100**bar, verdict)
	for _, c := range res.Cases {
		if c.FallbackReason != "" {
			fmt.Fprintf(stdout, "note: %s read without O_DIRECT: %s\n", c.Name, c.FallbackReason)
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
