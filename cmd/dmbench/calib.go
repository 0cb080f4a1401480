package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/dmsparse/dmsparse/pack"
)

func init() {
	register(command{
		name:    "calib",
		summary: "compute calibration statistics (NAME.act_sqmean) from recorded input activations",
		run:     runCalib,
	})
}

func runCalib(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("calib", flag.ContinueOnError)
	fs.SetOutput(stderr)
	acts := fs.String("acts", "", "safetensors file: for each weight NAME, its input activations [..., in_features]")
	model := fs.String("model", "", "checkpoint to check the names and in_features against (optional)")
	out := fs.String("o", "", "statistics file to write")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dmbench calib --acts ACTS.safetensors [--model MODEL.safetensors] -o CALIB.safetensors")
		fmt.Fprintln(stderr, "(from PyTorch, use tools/calib_stats.py: see tools/README.md)")
		fs.PrintDefaults()
	}
	if err := parseNoArgs(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *acts == "" || *out == "" {
		return errors.New("give --acts ACTS.safetensors and -o OUT.safetensors")
	}
	n, err := pack.WriteCalib(*acts, *model, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d statistics to %s\n", n, *out)
	return nil
}
