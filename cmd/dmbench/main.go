// Command dmbench packs task families into a block store, inspects and
// exports them, and measures kernels and task switching against monolithic
// baselines. Run "dmbench help" for the list of subcommands.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one dmbench subcommand. Each lives in its own file and adds
// itself to the command table with register from an init function.
type command struct {
	name    string
	summary string
	// run executes the subcommand with the arguments after its name,
	// writing results to stdout and progress and diagnostics to stderr.
	run func(args []string, stdout, stderr io.Writer) error
}

// commands is the dispatch table, filled by register at init time.
var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("dmbench: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: dmbench <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'dmbench <command> -h' for a command's flags.")
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs the command named by args[0] and returns the exit code.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		if _, ok := commands["run"]; ok {
			args = []string{"run"}
		} else {
			usage(stderr)
			return 2
		}
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dmbench: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(args[1:], stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "dmbench %s: %v\n", c.name, err)
		return 1
	}
	return 0
}
