package native

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/bsr"
)

var (
	benchShape   = flag.String("dms.shape", "4096x4096", "benchmark matrix shape MxK")
	benchBlock   = flag.String("dms.block", "32x32", "benchmark block shape RxC")
	benchDensity = flag.String("dms.density", "100,50,25,10", "benchmark block densities in percent")
	benchN       = flag.String("dms.n", "1,16,64,256", "benchmark batch sizes")
)

// pair parses "AxB".
func pair(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "x")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want AxB", s)
	}
	x, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: %w", s, err)
	}
	y, err := strconv.Atoi(b)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: %w", s, err)
	}
	return x, y, nil
}

// ints parses a comma-separated list.
func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// BenchMatrix returns a rows x cols matrix in R x C blocks keeping the same
// share of blocks (density percent, rounded) in every block row, at random
// columns, with random values; built directly, without a dense copy.
func BenchMatrix(rng *rand.Rand, rows, cols, R, C, percent int) *bsr.Matrix {
	br, bc := (rows+R-1)/R, (cols+C-1)/C
	keep := (bc*percent + 50) / 100
	m := &bsr.Matrix{Rows: rows, Cols: cols, R: R, C: C, Indptr: make([]int32, br+1)}
	m.Indices = make([]int32, 0, br*keep)
	for i := 0; i < br; i++ {
		sel := rng.Perm(bc)[:keep]
		mark := make([]bool, bc)
		for _, j := range sel {
			mark[j] = true
		}
		for j := 0; j < bc; j++ {
			if mark[j] {
				m.Indices = append(m.Indices, int32(j))
			}
		}
		m.Indptr[i+1] = int32(len(m.Indices))
	}
	m.Data = make([]float32, len(m.Indices)*R*C)
	for k := range m.Indices {
		blk := m.Block(k)
		i := 0
		for ; int(m.Indptr[i+1]) <= k; i++ {
		}
		for r := 0; r < R; r++ {
			for c := 0; c < C; c++ {
				if i*R+r < rows && int(m.Indices[k])*C+c < cols {
					blk[r*C+c] = float32(rng.Float64()*2 - 1)
				}
			}
		}
	}
	return m
}

type benchConfig struct {
	M, K, R, C int
	densities  []int
	ns         []int
}

func config(b *testing.B) benchConfig {
	var c benchConfig
	var err error
	if c.M, c.K, err = pair(*benchShape); err != nil {
		b.Fatalf("-dms.shape: %v", err)
	}
	if c.R, c.C, err = pair(*benchBlock); err != nil {
		b.Fatalf("-dms.block: %v", err)
	}
	if c.densities, err = ints(*benchDensity); err != nil {
		b.Fatalf("-dms.density: %v", err)
	}
	if c.ns, err = ints(*benchN); err != nil {
		b.Fatalf("-dms.n: %v", err)
	}
	return c
}

func benchProducts(b *testing.B, linear bool) {
	cfg := config(b)
	rng := rand.New(rand.NewPCG(1, 2))
	maxN := 0
	for _, n := range cfg.ns {
		maxN = max(maxN, n)
	}
	x := make([]float32, cfg.K*maxN)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	y := make([]float32, cfg.M*maxN)
	bias := make([]float32, cfg.M)
	for _, k := range Kernels() {
		b.Run(k.Name(), func(b *testing.B) {
			for _, d := range cfg.densities {
				name := fmt.Sprintf("%dx%d/b%dx%d/d%d", cfg.M, cfg.K, cfg.R, cfg.C, d)
				var m *bsr.Matrix
				for _, n := range cfg.ns {
					b.Run(fmt.Sprintf("%s/n%d", name, n), func(b *testing.B) {
						if m == nil {
							m = BenchMatrix(rand.New(rand.NewPCG(uint64(d), 3)), cfg.M, cfg.K, cfg.R, cfg.C, d)
						}
						v := m.View()
						opt := bsr.Options{Workers: 1}
						flops := 2 * float64(m.NNZB()) * float64(cfg.R*cfg.C) * float64(n)
						b.ResetTimer()
						for b.Loop() {
							var err error
							if linear {
								err = bsr.LinearWith(k, y, x, n, v, bias, opt)
							} else {
								err = bsr.MulWith(k, y, v, x, n, opt)
							}
							if err != nil {
								b.Fatal(err)
							}
						}
						sec := b.Elapsed().Seconds() / float64(b.N)
						b.ReportMetric(flops/sec/1e9, "GFLOP/s")
						if n == 1 {
							b.ReportMetric(float64(m.NNZB()*cfg.R*cfg.C*4)/sec/1e9, "GB/s")
						}
					})
				}
			}
		})
	}
}

// BenchmarkMul measures Y = A*X per kernel, density and batch size, on one
// thread, reporting GFLOP/s over the stored blocks' flops (2*nnzb*R*C*N)
// and, for N = 1, the weight bytes streamed per second.
func BenchmarkMul(b *testing.B) { benchProducts(b, false) }

// BenchmarkLinear measures Y = X*A^T + bias like BenchmarkMul (the
// transposition of X is included in the time).
func BenchmarkLinear(b *testing.B) { benchProducts(b, true) }
