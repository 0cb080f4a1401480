package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/dmsparse/dmsparse/pack"
)

func init() {
	register(command{
		name:    "inspect",
		summary: "show a store's tasks, tensors, sizes, switch diff matrix and per-task quality",
		run:     runInspect,
	})
}

// pkStoreArg parses flags with the store file given before or after them.
func pkStoreArg(fs *flag.FlagSet, args []string) (string, error) {
	var store string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		store, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if store == "" && fs.NArg() > 0 {
		store = fs.Arg(0)
		if fs.NArg() > 1 {
			return "", fmt.Errorf("unexpected arguments %q", fs.Args()[1:])
		}
	} else if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if store == "" {
		return "", errors.New("no store file given")
	}
	return store, nil
}

func runInspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the stored report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dmbench inspect [-json] FAMILY.dms")
		fs.PrintDefaults()
	}
	path, err := pkStoreArg(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	st, rep, err := pack.OpenReport(path)
	if err != nil {
		return err
	}
	defer st.Close()
	m := st.Manifest()
	if m.NumVersions() != rep.Versions || len(m.Tasks) != len(rep.Tasks) {
		return fmt.Errorf("store %s: manifest holds %d versions and %d tasks, its report %d and %d", path, m.NumVersions(), len(m.Tasks), rep.Versions, len(rep.Tasks))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "store %s: format %d, %s, alignment %d\n", path, m.FormatVersion, m.DType, m.Alignment)
	return rep.WriteText(stdout, m.FileSize)
}
