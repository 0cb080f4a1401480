package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/dmsparse/dmsparse/pack"
)

func init() {
	register(command{
		name:    "align",
		summary: "compute aligned block masks for a family and write them (safetensors) without packing",
		run:     runAlign,
	})
}

func runAlign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("align", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p pkFlags
	p.register(fs)
	out := fs.String("o", "", "masks file to write: U8 tensor TASK/NAME [block rows, block cols] per task and weight")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dmbench align --task NAME=FILE ... [--base FILE] [--calib NAME=FILE] --density D --block RxC --eps E -o MASKS.safetensors")
		fs.PrintDefaults()
	}
	opt, err := parsePackCommand(fs, &p, args, out, "MASKS.safetensors", stderr)
	if opt == nil || err != nil {
		return err
	}
	res, err := pack.Run("", *opt, true)
	if err != nil {
		return err
	}
	if err := pack.WriteMasks(*out, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote masks of %d tasks to %s\n", len(opt.Tasks), *out)
	return res.Report.WriteText(stdout, 0)
}
