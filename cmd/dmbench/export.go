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
		name:    "export",
		summary: "write a task's deployed weights from a store as dense or BSR safetensors",
		run:     runExport,
	})
}

func runExport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	task := fs.String("task", "", "task to export")
	dense := fs.String("dense", "", "write the deployed weights with the input's names and shapes to this safetensors file")
	bsrOut := fs.String("bsr", "", "write blocked tensors as NAME.bsr_values/.bsr_col_indices/.bsr_crow_indices to this safetensors file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dmbench export FAMILY.dms --task NAME [--dense OUT.safetensors] [--bsr OUT.safetensors]")
		fs.PrintDefaults()
	}
	path, err := pkStoreArg(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *task == "" {
		return errors.New("no --task given")
	}
	if *dense == "" && *bsrOut == "" {
		return errors.New("give --dense OUT and/or --bsr OUT")
	}
	if *dense != "" {
		if err := pack.ExportDense(path, *task, *dense); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (task %s, dense)\n", *dense, *task)
	}
	if *bsrOut != "" {
		if err := pack.ExportBSR(path, *task, *bsrOut); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (task %s, BSR)\n", *bsrOut, *task)
	}
	return nil
}
