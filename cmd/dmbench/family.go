package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/dmsparse/dmsparse/bench"
)

func init() {
	register(command{
		name:    "family",
		summary: "write the built-in synthetic family (base, tasks, calibration statistics) as safetensors files",
		run:     runFamily,
	})
}

// runFamily writes the generator's checkpoints to a directory, so that the
// pack / inspect / export workflow can be tried without a model of one's own.
func runFamily(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("family", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := bench.DefaultFamily()
	out := fs.String("o", "", "output directory (required)")
	fs.IntVar(&c.Layers, "layers", c.Layers, "transformer blocks")
	fs.IntVar(&c.Width, "width", c.Width, "model width")
	fs.IntVar(&c.Tasks, "tasks", c.Tasks, fmt.Sprintf("number of tasks (1..%d)", len(bench.DrivingTasks)))
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "generator seed")
	fs.StringVar(&c.Kind, "kind", c.Kind, "\"finetune\" (full fine-tunes of a base) or \"shared\" (shared weights, task calibration statistics)")
	fs.Float64Var(&c.DeltaScale, "delta", c.DeltaScale, "kind finetune: relative Frobenius norm of the last block's fine-tune delta")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return fmt.Errorf("usage: dmbench family -o DIR [-layers N -width W -tasks T -seed S -kind finetune|shared]")
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("family configuration: %w", err)
	}
	var progress func(done, total int)
	if bench.IsTerminal(stderr) {
		p := bench.NewProgress(stderr)
		progress = func(done, total int) { p.Update("generate", done, total) }
		defer p.Done()
	}
	files, err := bench.WriteFamily(*out, c, progress)
	if err != nil {
		return fmt.Errorf("write family to %s: %w", *out, err)
	}
	fmt.Fprintf(stdout, "family %s (%s): %d layers, width %d, %.1f MB of fp32 per task\n", files.Dir, c.Kind, c.Layers, c.Width, float64(c.WeightBytes())/1e6)
	fmt.Fprintf(stdout, "base   %s\n", files.Path(files.Base))
	for _, t := range files.Order {
		fmt.Fprintf(stdout, "task   %s=%s  calib %s\n", t, files.Path(files.Tasks[t]), files.Path(files.Calib[t]))
	}
	return nil
}
