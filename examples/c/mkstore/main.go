// Command mkstore writes the small synthetic store that the C examples
// (examples/c) run against:
//
//	go run ./examples/c/mkstore -o /tmp/family.dms
//
// It prints the store's tasks, layers and the budget the examples should
// use (every task's blocks plus room for a prefetch).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dmsparse/dmsparse/examples/c/storegen"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkstore:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	spec := storegen.Default()
	fs := flag.NewFlagSet("mkstore", flag.ContinueOnError)
	out := fs.String("o", "", "store file to write (required)")
	seed := fs.Uint64("seed", spec.Seed, "random seed")
	density := fs.Float64("density", spec.Density, "share of blocks the common mask keeps")
	own := fs.Float64("own", spec.Own, "share of each task's blocks that are task-specific")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return fmt.Errorf("usage: mkstore -o store.dms [-seed n] [-density d] [-own o]")
	}
	spec.Seed, spec.Density, spec.Own = *seed, *density, *own
	fam, err := storegen.Write(*out, spec)
	if err != nil {
		return err
	}
	blockBytes := int64(spec.R * spec.C * 4)
	fmt.Fprintf(stdout, "wrote %s: %d tasks, %d layers, %d block versions of %d B\n",
		*out, len(spec.Tasks), len(spec.Shapes), fam.Versions, blockBytes)
	for _, t := range spec.Tasks {
		n := 0
		for _, m := range fam.Weights[t] {
			n += m.NNZB()
		}
		fmt.Fprintf(stdout, "task %s: %d blocks\n", t, n)
	}
	return nil
}
