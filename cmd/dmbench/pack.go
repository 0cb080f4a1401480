package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dmsparse/dmsparse/align"
	"github.com/dmsparse/dmsparse/pack"
)

func init() {
	register(command{
		name:    "pack",
		summary: "pack task checkpoints (safetensors) into a block store with aligned masks",
		run:     runPack,
	})
}

// pkList is a repeatable string flag.
type pkList []string

func (l *pkList) String() string     { return strings.Join(*l, " ") }
func (l *pkList) Set(v string) error { *l = append(*l, v); return nil }

// pkFlags holds the flags pack and align share.
type pkFlags struct {
	tasks, calibs, include, exclude pkList
	base, block, masks, method      string
	transitions, bound, curveEps    string
	density, eps                    float64
	independent, ownBase            bool
	alignment                       int
	quiet                           bool
}

func (p *pkFlags) register(fs *flag.FlagSet) {
	fs.Var(&p.tasks, "task", "task checkpoint as NAME=FILE.safetensors (repeat for each task)")
	fs.Var(&p.calibs, "calib", "calibration statistics as NAME=FILE.safetensors (NAME.act_sqmean per weight; repeatable)")
	fs.Var(&p.include, "include", "regexp: block only the 2-D weights whose names match (repeatable; default all 2-D float tensors)")
	fs.Var(&p.exclude, "exclude", "regexp: store matching tensors whole instead of in blocks (repeatable)")
	fs.StringVar(&p.base, "base", "", "base checkpoint the tasks were fine-tuned from")
	fs.StringVar(&p.block, "block", "32x32", "block shape RxC")
	fs.StringVar(&p.masks, "masks", "", "\"from-input\": take each task's zero blocks as pruned (already block-sparse checkpoints)")
	fs.StringVar(&p.method, "method", "swap", "alignment method: swap (core + best-response improvement) or core")
	fs.Float64Var(&p.density, "density", 0.5, "share of blocks each task keeps, in (0, 1]")
	fs.Float64Var(&p.eps, "eps", 0.01, "quality tolerance: each task keeps >= (1-eps) of independent pruning's importance per tensor")
	fs.BoolVar(&p.independent, "independent", false, "prune each task independently (the baseline) instead of aligning")
	fs.StringVar(&p.bound, "version-bound", "delta", "with --base, when a kept block may deploy the base's version instead of the task's own, per task and tensor:\n"+
		"\"delta\": the base-version blocks hold at most eps of the task's fine-tune delta energy sum ||W_b - Base_b||^2 over its kept blocks (the task keeps >= 1-eps of its fine-tune);\n"+
		"\"weight\": they add at most eps of the kept weights' squared norm to the squared weight error (err^2 <= pruned^2 + eps*kept^2; a fine-tune of a few percent fits wholesale)")
	fs.StringVar(&p.curveEps, "curve-eps", "", "with --base: comma-separated tolerances of the reported base-sharing curve (default 0,0.01,0.05,0.1,0.25,0.5,1)")
	fs.BoolVar(&p.ownBase, "own-base-choice", false, "with --base: each task picks its base blocks alone (default: a ranking shared by the tasks)")
	fs.IntVar(&p.alignment, "alignment", 4096, "I/O alignment of block versions in the store, bytes")
	fs.BoolVar(&p.quiet, "q", false, "no progress bar")
	fs.StringVar(&p.transitions, "transitions", "", "JSON file {\"FROM\": {\"TO\": count}} of task switch frequencies: weights the alignment and the layout")
}

func pkParseBlock(s string) (int, int, error) {
	a, b, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		return 0, 0, fmt.Errorf("block %q: want RxC, e.g. 32x32", s)
	}
	r, err1 := strconv.Atoi(a)
	c, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || r < 1 || c < 1 {
		return 0, 0, fmt.Errorf("block %q: want RxC with positive integers", s)
	}
	return r, c, nil
}

func (p *pkFlags) options(stderr io.Writer) (pack.Options, error) {
	var opt pack.Options
	if len(p.tasks) == 0 {
		return opt, errors.New("no --task NAME=FILE given")
	}
	idx := map[string]int{}
	for _, t := range p.tasks {
		name, file, ok := strings.Cut(t, "=")
		if !ok || name == "" || file == "" {
			return opt, fmt.Errorf("--task %q: want NAME=FILE", t)
		}
		idx[name] = len(opt.Tasks)
		opt.Tasks = append(opt.Tasks, pack.TaskInput{Name: name, Path: file})
	}
	for _, c := range p.calibs {
		name, file, ok := strings.Cut(c, "=")
		if !ok || file == "" {
			return opt, fmt.Errorf("--calib %q: want NAME=FILE", c)
		}
		i, ok := idx[name]
		if !ok {
			return opt, fmt.Errorf("--calib %q: no task named %q", c, name)
		}
		opt.Tasks[i].Calib = file
	}
	var err error
	if opt.R, opt.C, err = pkParseBlock(p.block); err != nil {
		return opt, err
	}
	switch p.masks {
	case "":
	case "from-input":
		opt.MasksFromInput = true
	default:
		return opt, fmt.Errorf("--masks %q: the only mode is from-input", p.masks)
	}
	if p.independent {
		opt.Method = align.Independent
	} else if opt.Method, err = align.ParseMethod(p.method); err != nil {
		return opt, err
	}
	opt.Base, opt.Density, opt.Eps = p.base, p.density, p.eps
	opt.Include, opt.Exclude = p.include, p.exclude
	opt.Alignment = p.alignment
	opt.OwnBaseChoice = p.ownBase
	if opt.VersionBound, err = align.ParseVersionBound(p.bound); err != nil {
		return opt, fmt.Errorf("--version-bound: %w", err)
	}
	if p.curveEps != "" {
		for _, f := range strings.Split(p.curveEps, ",") {
			e, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				return opt, fmt.Errorf("--curve-eps %q: %q is not a number", p.curveEps, f)
			}
			if err := align.CheckEps(e); err != nil {
				return opt, fmt.Errorf("--curve-eps: %w", err)
			}
			opt.CurveEps = append(opt.CurveEps, e)
		}
	}
	if p.transitions != "" {
		if opt.Weights, err = pkTransitions(p.transitions, idx); err != nil {
			return opt, err
		}
	}
	if !p.quiet && pkIsTerminal(stderr) {
		opt.Progress = pkProgressBar(stderr)
	}
	return opt, nil
}

// pkTransitions reads a {"FROM": {"TO": count}} JSON file into a T x T
// matrix in task order.
func pkTransitions(path string, idx map[string]int) ([][]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--transitions: %w", err)
	}
	var m map[string]map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("--transitions %s: want {\"FROM\": {\"TO\": count}}: %w", path, err)
	}
	w := make([][]float64, len(idx))
	for i := range w {
		w[i] = make([]float64, len(idx))
	}
	for from, row := range m {
		a, ok := idx[from]
		if !ok {
			return nil, fmt.Errorf("--transitions %s: no task named %q", path, from)
		}
		for to, c := range row {
			b, ok := idx[to]
			if !ok {
				return nil, fmt.Errorf("--transitions %s: no task named %q", path, to)
			}
			if c < 0 || math.IsNaN(c) || math.IsInf(c, 0) {
				return nil, fmt.Errorf("--transitions %s: %s -> %s count %g: want a finite count >= 0", path, from, to, c)
			}
			w[a][b] = c
		}
	}
	return w, nil
}

// pkIsTerminal reports whether w is a character device (a terminal).
func pkIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// pkProgressBar draws a one-line bar, redrawn at most ten times a second.
func pkProgressBar(w io.Writer) func(stage string, done, total int) {
	var last time.Time
	return func(stage string, done, total int) {
		if done < total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		const width = 40
		frac := 1.0
		if total > 0 {
			frac = float64(done) / float64(total)
		}
		n := int(frac * width)
		fmt.Fprintf(w, "\r%-8s [%s%s] %3.0f%% %d/%d", stage, strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, done, total)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

// parseNoArgs parses flags and rejects positional arguments.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// parsePackCommand parses the flags of pack and align (their shared flags
// plus "-o", which must name outName) and returns the packer's options;
// help given returns (nil, nil).
func parsePackCommand(fs *flag.FlagSet, p *pkFlags, args []string, out *string, outName string, stderr io.Writer) (*pack.Options, error) {
	if err := parseNoArgs(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, err
	}
	if *out == "" {
		return nil, fmt.Errorf("no -o %s given", outName)
	}
	opt, err := p.options(stderr)
	if err != nil {
		return nil, err
	}
	return &opt, nil
}

func runPack(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p pkFlags
	p.register(fs)
	out := fs.String("o", "", "store file to write (FAMILY.dms)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dmbench pack --task NAME=FILE ... [--base FILE] [--calib NAME=FILE] --density D --block RxC --eps E [--independent] [--masks from-input] [--version-bound delta|weight] [--curve-eps LIST] -o FAMILY.dms")
		fs.PrintDefaults()
	}
	opt, err := parsePackCommand(fs, &p, args, out, "FAMILY.dms", stderr)
	if opt == nil || err != nil {
		return err
	}
	start := time.Now()
	res, err := pack.Run(*out, *opt, false)
	if err != nil {
		return err
	}
	var size int64
	if st, err := os.Stat(*out); err == nil {
		size = st.Size()
	}
	fmt.Fprintf(stdout, "packed %d tasks into %s in %.1fs\n", len(opt.Tasks), *out, time.Since(start).Seconds())
	return res.Report.WriteText(stdout, size)
}
