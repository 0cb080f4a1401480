package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/native"
)

func init() {
	register(command{
		name:    "kernels",
		summary: "time the BSR kernels against dense OpenBLAS and pure Go",
		run:     runKernels,
	})
}

// kernelRow is one line of the kernels table.
type kernelRow struct {
	Impl    string  `json:"impl"`
	Op      string  `json:"op"`
	M       int     `json:"m"`
	K       int     `json:"k"`
	R       int     `json:"r"`
	C       int     `json:"c"`
	Density int     `json:"density_percent"`
	N       int     `json:"n"`
	Threads int     `json:"threads"`
	NNZB    int     `json:"nnzb"`
	Seconds float64 `json:"seconds_median"`
	// GFLOPS counts the stored blocks' flops, 2*nnzb*R*C*N (dense rows:
	// 2*M*K*N).
	GFLOPS float64 `json:"gflops"`
	// GBps is the weight bytes streamed per second (N = 1 only).
	GBps float64 `json:"weight_gbps,omitempty"`
	// VsOpenBLAS is OpenBLAS's dense time over this time (0: not measured).
	VsOpenBLAS float64 `json:"speedup_vs_openblas,omitempty"`
	// EffVsOpenBLAS is GFLOPS over OpenBLAS's dense GFLOP/s.
	EffVsOpenBLAS float64 `json:"gflops_ratio_vs_openblas,omitempty"`
	// VsGo is the pure-Go kernel's time over this time (0: not measured).
	VsGo float64 `json:"speedup_vs_go,omitempty"`
}

type kernelsFlags struct {
	shape, block, densities, ns, impl, op string
	threads, reps                         int
	minTime                               time.Duration
	json                                  bool
	seed                                  uint64
}

func runKernels(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kernels", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f kernelsFlags
	fs.StringVar(&f.shape, "shape", "4096x4096", "weight shape MxK")
	fs.StringVar(&f.block, "block", "32x32", "block shape RxC")
	fs.StringVar(&f.densities, "density", "100,50,25,10", "comma-separated block densities in percent")
	fs.StringVar(&f.ns, "n", "1,16,64,256", "comma-separated batch sizes N")
	fs.StringVar(&f.impl, "impl", "", "regexp selecting implementations (go, scalar, avx2, avx512, neon, openblas); empty: all")
	fs.StringVar(&f.op, "op", "mul", "product: mul (Y = A*X) or linear (Y = X*A^T + bias)")
	fs.IntVar(&f.threads, "threads", 1, "worker threads (also OpenBLAS threads)")
	fs.IntVar(&f.reps, "reps", 5, "timed repetitions; the median is reported")
	fs.DurationVar(&f.minTime, "min-time", 200*time.Millisecond, "minimum total time per measurement (split over the repetitions)")
	fs.BoolVar(&f.json, "json", false, "write JSON instead of a table")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed for weights and inputs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	rows, err := kernelsTable(f, stderr)
	if err != nil {
		return err
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	writeKernelsTable(stdout, rows)
	if openblasStatus != "" {
		fmt.Fprintf(stdout, "openblas: %s\n", openblasStatus)
	}
	return nil
}

func parsePair(name, s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "x")
	x, err1 := strconv.Atoi(a)
	y, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || x < 1 || y < 1 {
		return 0, 0, fmt.Errorf("-%s %q: want two positive integers AxB", name, s)
	}
	return x, y, nil
}

func parseList(name, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < lo || v > hi {
			return nil, fmt.Errorf("-%s %q: want comma-separated integers in [%d, %d]", name, s, lo, hi)
		}
		out = append(out, v)
	}
	return out, nil
}

// kernelsTable runs every measurement the flags ask for.
func kernelsTable(f kernelsFlags, progress io.Writer) ([]kernelRow, error) {
	M, K, err := parsePair("shape", f.shape)
	if err != nil {
		return nil, err
	}
	R, C, err := parsePair("block", f.block)
	if err != nil {
		return nil, err
	}
	dens, err := parseList("density", f.densities, 0, 100)
	if err != nil {
		return nil, err
	}
	ns, err := parseList("n", f.ns, 1, 1<<20)
	if err != nil {
		return nil, err
	}
	if f.threads < 1 || f.reps < 1 {
		return nil, fmt.Errorf("-threads %d, -reps %d: want at least 1", f.threads, f.reps)
	}
	if f.op != "mul" && f.op != "linear" {
		return nil, fmt.Errorf("-op %q: want mul or linear", f.op)
	}
	sel, err := regexp.Compile(f.impl)
	if err != nil {
		return nil, fmt.Errorf("-impl: %w", err)
	}
	linear := f.op == "linear"
	var kernels []bsr.Kernel
	for _, k := range native.Kernels() {
		if sel.MatchString(k.Name()) {
			kernels = append(kernels, k)
		}
	}
	withBLAS := openblasStatus == "" && sel.MatchString("openblas")
	if len(kernels) == 0 && !withBLAS {
		return nil, fmt.Errorf("-impl %q selects no implementation", f.impl)
	}
	exec, err := bsr.NewExecutor(f.threads)
	if err != nil {
		return nil, err
	}
	defer exec.Close()
	openblasThreads(f.threads)

	rng := rand.New(rand.NewPCG(f.seed, 11))
	maxN := 0
	for _, n := range ns {
		maxN = max(maxN, n)
	}
	x := randSlice(rng, K*maxN)
	y := make([]float32, M*maxN)
	bias := randSlice(rng, M)
	meas := measurer{reps: f.reps, minTime: f.minTime}

	var rows []kernelRow
	blas := map[int]float64{}
	if withBLAS {
		w := randSlice(rng, M*K)
		for _, n := range ns {
			fmt.Fprintf(progress, "openblas n=%d\n", n)
			sec := meas.median(func() {
				if linear {
					openblasLinear(y, w, x, M, K, n)
				} else {
					openblasMul(y, w, x, M, K, n)
				}
			})
			blas[n] = sec
			row := kernelRow{Impl: "openblas", Op: f.op, M: M, K: K, R: R, C: C, Density: 100, N: n, Threads: f.threads,
				NNZB: ((M + R - 1) / R) * ((K + C - 1) / C), Seconds: sec, GFLOPS: 2 * float64(M) * float64(K) * float64(n) / sec / 1e9, VsOpenBLAS: 1, EffVsOpenBLAS: 1}
			if n == 1 {
				row.GBps = float64(M*K*4) / sec / 1e9
			}
			rows = append(rows, row)
		}
	}
	for _, d := range dens {
		m := kernelMatrix(rand.New(rand.NewPCG(f.seed, uint64(d))), M, K, R, C, d)
		v := m.View()
		for _, n := range ns {
			goSec := 0.0
			for _, k := range kernels {
				fmt.Fprintf(progress, "%s d=%d%% n=%d\n", k.Name(), d, n)
				opt := bsr.Options{Exec: exec}
				var runErr error
				sec := meas.median(func() {
					var err error
					if linear {
						err = bsr.LinearWith(k, y, x, n, v, bias, opt)
					} else {
						err = bsr.MulWith(k, y, v, x, n, opt)
					}
					if err != nil && runErr == nil {
						runErr = err
					}
				})
				if runErr != nil {
					return nil, fmt.Errorf("%s %s d=%d%% n=%d: %w", k.Name(), f.op, d, n, runErr)
				}
				flops := 2 * float64(m.NNZB()) * float64(R*C) * float64(n)
				row := kernelRow{Impl: k.Name(), Op: f.op, M: M, K: K, R: R, C: C, Density: d, N: n, Threads: f.threads,
					NNZB: m.NNZB(), Seconds: sec, GFLOPS: flops / sec / 1e9}
				if n == 1 {
					row.GBps = float64(m.NNZB()*R*C*4) / sec / 1e9
				}
				if b, ok := blas[n]; ok {
					row.VsOpenBLAS = b / sec
					row.EffVsOpenBLAS = row.GFLOPS / (2 * float64(M) * float64(K) * float64(n) / b / 1e9)
				}
				if k == bsr.Generic {
					goSec = sec
				}
				if goSec > 0 {
					row.VsGo = goSec / sec
				}
				rows = append(rows, row)
			}
		}
	}
	return rows, nil
}

// measurer times a function: each of reps repetitions runs it enough times
// to last minTime/reps, and the median per-call time is kept.
type measurer struct {
	reps    int
	minTime time.Duration
}

func (m measurer) median(f func()) float64 {
	t0 := time.Now()
	f() // warm up caches and pools
	one := time.Since(t0)
	per := m.minTime / time.Duration(m.reps)
	iters := 1
	if one > 0 && one < per {
		iters = int(per / one)
	}
	times := make([]float64, m.reps)
	for r := range times {
		t := time.Now()
		for i := 0; i < iters; i++ {
			f()
		}
		times[r] = time.Since(t).Seconds() / float64(iters)
	}
	sort.Float64s(times)
	return times[len(times)/2]
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.Float64()*2 - 1)
	}
	return s
}

// kernelMatrix returns an M x K matrix in R x C blocks keeping round(d% of
// the block columns) in every block row, at random columns, random values.
func kernelMatrix(rng *rand.Rand, M, K, R, C, d int) *bsr.Matrix {
	br, bc := (M+R-1)/R, (K+C-1)/C
	keep := (bc*d + 50) / 100
	m := &bsr.Matrix{Rows: M, Cols: K, R: R, C: C, Indptr: make([]int32, br+1), Indices: make([]int32, 0, br*keep)}
	mark := make([]bool, bc)
	for i := 0; i < br; i++ {
		clear(mark)
		for _, j := range rng.Perm(bc)[:keep] {
			mark[j] = true
		}
		for j := range mark {
			if mark[j] {
				m.Indices = append(m.Indices, int32(j))
			}
		}
		m.Indptr[i+1] = int32(len(m.Indices))
	}
	m.Data = make([]float32, len(m.Indices)*R*C)
	for i := 0; i < br; i++ {
		for k := m.Indptr[i]; k < m.Indptr[i+1]; k++ {
			blk := m.Block(int(k))
			for r := 0; r < min(R, M-i*R); r++ {
				for c := 0; c < min(C, K-int(m.Indices[k])*C); c++ {
					blk[r*C+c] = float32(rng.Float64()*2 - 1)
				}
			}
		}
	}
	return m
}

func writeKernelsTable(w io.Writer, rows []kernelRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\top\tshape\tblock\tdensity%\tN\tthreads\tms\tGFLOP/s\tGB/s\tvs openblas\tGFLOP/s vs openblas\tvs go\t")
	opt := func(v float64, format string) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%dx%d\t%dx%d\t%d\t%d\t%d\t%.3f\t%.1f\t%s\t%s\t%s\t%s\t\n",
			r.Impl, r.Op, r.M, r.K, r.R, r.C, r.Density, r.N, r.Threads, r.Seconds*1e3, r.GFLOPS,
			opt(r.GBps, "%.1f"), opt(r.VsOpenBLAS, "%.2fx"), opt(r.EffVsOpenBLAS, "%.2f"), opt(r.VsGo, "%.1fx"))
	}
	tw.Flush()
}
