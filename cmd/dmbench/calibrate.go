package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/dmsparse/dmsparse/bench"
)

func init() {
	register(command{
		name:    "calibrate",
		summary: "measure this machine's storage, memory and kernels and write a platform profile",
		run:     runCalibrate,
	})
}

func runCalibrate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("calibrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the profile to this JSON file (atomically); default: print it")
	dir := fs.String("dir", "", "directory for the scratch file, on the device the weights live on (default: the temp dir)")
	size := fs.Int64("size", 256, "scratch file size in MiB")
	pointTime := fs.Duration("point-time", 200*time.Millisecond, "time spent per request size and queue depth")
	name := fs.String("name", "local", "profile name")
	quiet := fs.Bool("q", false, "do not print measurements on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dmbench calibrate [-o profiles/local.json] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *size <= 0 {
		return fmt.Errorf("-size %d: want a positive number of MiB", *size)
	}
	opt := bench.CalibrateOptions{
		Dir: *dir, FileSize: *size << 20, PointTime: *pointTime, Name: *name,
		Kernel: bench.BestKernel(),
	}
	if !*quiet {
		opt.Progress = stderr
	}
	p, err := bench.Calibrate(opt)
	if err != nil {
		return err
	}
	if *out == "" {
		b, err := p.Marshal()
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	if err := p.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s storage, %.0f MB/s sequential O_DIRECT, %.0f us 4 KiB random, %.1f GB/s memory, %.2f GFLOP/s (%s); recommended %d KiB x %d in flight, gap %d KiB, blocks %dx%d\n",
		*out, p.Storage.Kind, p.Storage.SeqReadBandwidth/1e6, p.Storage.RandRead4KLatencyUS, p.MemoryBandwidth/1e9,
		p.KernelGFLOPS, p.Kernel, p.Loader.RequestBytes>>10, p.Loader.InFlight, p.Loader.CoalesceGapBytes>>10, p.Block.R, p.Block.C)
	return nil
}
