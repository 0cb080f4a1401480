package bsrtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmsparse/dmsparse/bsr"
)

// BlockShapes are the R x C block shapes TestKernel covers.
var BlockShapes = [][2]int{
	{8, 8}, {16, 16}, {32, 32}, {64, 64}, {32, 16}, {16, 32}, {4, 8}, {3, 5}, {1, 1}, {5, 3}, {7, 24},
}

// Ns are the batch sizes TestKernel covers: 1..17 fully, then sizes around
// the SIMD widths.
var Ns = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 23, 31, 32, 33, 47, 48, 49, 63, 64, 65, 67}

// Case is one product configuration.
type Case struct {
	// Rows and Cols give the matrix shape, R and C the block shape.
	Rows, Cols, R, C int
	// N is the batch size.
	N int
	// Density is the share of blocks kept (for the kinds that use it).
	Density float64
	// Kind selects how the matrix is filled.
	Kind Kind
	// Accumulate adds the product to a random Y instead of overwriting a
	// NaN-filled one.
	Accumulate bool
	// Bias gives the linear product a random bias.
	Bias bool
	// Workers is Options.Workers; ignored when Exec is set.
	Workers int
	// Exec, when set, runs the products on this executor.
	Exec *bsr.Executor
}

// String names the case for subtest names and messages.
func (c Case) String() string {
	par := fmt.Sprintf("w%d", c.Workers)
	if c.Exec != nil {
		par = fmt.Sprintf("exec%d", c.Exec.Workers())
	}
	return fmt.Sprintf("%dx%d/b%dx%d/n%d/%s%.2f/acc=%t/bias=%t/%s",
		c.Rows, c.Cols, c.R, c.C, c.N, c.Kind, c.Density, c.Accumulate, c.Bias, par)
}

func (c Case) options() bsr.Options {
	return bsr.Options{Accumulate: c.Accumulate, Workers: c.Workers, Exec: c.Exec}
}

// dim returns a side length of blocks*side plus a tail: mostly a proper
// tail (not a multiple of side), sometimes an exact multiple.
func dim(rng *rand.Rand, side, maxBlocks int) int {
	b := rng.IntN(maxBlocks + 1)
	tail := 0
	if side > 1 && (b == 0 || rng.IntN(4) != 0) {
		tail = 1 + rng.IntN(side-1)
	}
	if b == 0 && tail == 0 {
		b = 1
	}
	return b*side + tail
}

// Cases returns the deterministic list of configurations TestKernel runs
// for one executor: every block shape crossed with every N, each with a
// shape that has tails, cycling through matrix kinds, accumulate, bias and
// parallelism so every combination occurs for every block shape; plus
// degenerate shapes.
func Cases(seed uint64, exec *bsr.Executor) []Case {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	kinds := []Kind{Random, EmptyRows, Random, AllDense, AllZero, Random, NoBlocks}
	var out []Case
	for si, bs := range BlockShapes {
		R, C := bs[0], bs[1]
		maxBlocks := max(1, 6-(R*C)/256) // keep the big blocks' matrices small
		for ni, n := range Ns {
			idx := si*len(Ns) + ni
			c := Case{
				Rows: dim(rng, R, maxBlocks), Cols: dim(rng, C, maxBlocks),
				R: R, C: C, N: n,
				Density:    0.3 + 0.5*rng.Float64(),
				Kind:       kinds[idx%len(kinds)],
				Accumulate: ni%2 == 1,
				Bias:       (ni/2)%2 == 1,
			}
			switch ni % 3 {
			case 0:
				c.Workers = 1
			case 1:
				c.Workers = 2 + rng.IntN(4)
			case 2:
				c.Exec = exec
			}
			out = append(out, c)
		}
	}
	// Degenerate shapes: fewer rows than a block, no rows, no columns, one
	// column, tall and thin.
	for i, sh := range [][4]int{{5, 70, 8, 8}, {0, 40, 8, 8}, {40, 0, 8, 8}, {33, 1, 32, 32}, {1, 1, 32, 32}, {200, 7, 16, 16}, {3, 100, 32, 16}} {
		for _, n := range []int{1, 2, 16, 19} {
			out = append(out, Case{
				Rows: sh[0], Cols: sh[1], R: sh[2], C: sh[3], N: n,
				Density: 0.7, Kind: Random,
				Accumulate: i%2 == 0, Bias: n%2 == 0, Workers: 1 + n%3,
			})
		}
	}
	// Wide rows: more blocks per block row than a kernel takes in one
	// K group (the native kernels split long block rows so that X stays in
	// cache, and accumulate the later groups).
	for i, sh := range [][4]int{{40, 64*40 + 13, 16, 64}, {37, 32*70 + 5, 8, 32}, {24, 16 * 140, 8, 16}} {
		for j, n := range []int{1, 6, 16, 37, 50} {
			out = append(out, Case{
				Rows: sh[0], Cols: sh[1], R: sh[2], C: sh[3], N: n,
				Density: 1, Kind: AllDense,
				Accumulate: (i+j)%2 == 0, Bias: j%2 == 1, Workers: 1 + j%2,
			})
		}
	}
	return out
}

// TestKernel runs the whole harness against k: every case of Cases with
// Workers and with an Executor, for both products, on contiguous and paged
// views, and the zero-allocation checks.
func TestKernel(t *testing.T, k bsr.Kernel) {
	t.Helper()
	exec, err := bsr.NewExecutor(3)
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	defer exec.Close()
	for i, c := range Cases(uint64(len(k.Name()))*7919+1, exec) {
		rng := rand.New(rand.NewPCG(uint64(i), 99))
		if err := RunCase(rng, k, c); err != nil {
			t.Errorf("kernel %s: case %d %v: %v", k.Name(), i, c, err)
		}
	}
	t.Run("allocs", func(t *testing.T) { CheckAllocs(t, k, exec) })
}

// RunCase builds the matrix of c and checks both products of k on it,
// against the float64 reference and, bitwise, between the contiguous view
// and a paged view of the same matrix.
func RunCase(rng *rand.Rand, k bsr.Kernel, c Case) error {
	m := RandomMatrix(rng, c.Rows, c.Cols, c.R, c.C, c.Density, c.Kind, true)
	if err := m.Validate(); err != nil {
		return fmt.Errorf("harness built an invalid matrix: %w", err)
	}
	cv := m.View()
	pv := Paged(rng, m)
	if err := pv.Validate(); err != nil {
		return fmt.Errorf("harness built an invalid paged view: %w", err)
	}
	n := c.N
	terms := c.Cols + 2

	// Y = A*X.
	x := RandomSlice(rng, c.Cols*n)
	var y0 []float32
	if c.Accumulate {
		y0 = make([]float32, c.Rows*n)
		for i := range y0 {
			y0[i] = float32(rng.Float64()*2 - 1)
		}
	}
	ref, scale := RefMul(cv, x, n, y0)
	var first []float32
	for pass, v := range []*bsr.View{cv, pv} {
		ybuf, y := output(c.Rows*n, y0)
		if err := bsr.MulWith(k, y, v, x, n, c.options()); err != nil {
			return fmt.Errorf("mul (view %d): %w", pass, err)
		}
		if err := CheckGuards(ybuf); err != nil {
			return fmt.Errorf("mul (view %d): %w", pass, err)
		}
		if err := Compare(y, ref, scale, n, terms); err != nil {
			return fmt.Errorf("mul (view %d) against the reference: %w", pass, err)
		}
		if pass == 0 {
			first = append([]float32(nil), y...)
		} else if err := BitEqual(first, y); err != nil {
			return fmt.Errorf("mul: paged view differs from contiguous: %w", err)
		}
	}

	// Y = X*A^T + bias.
	xl := RandomSlice(rng, n*c.Cols)
	var bias []float32
	if c.Bias {
		bias = RandomSlice(rng, c.Rows)
	}
	y0 = nil
	if c.Accumulate {
		y0 = make([]float32, n*c.Rows)
		for i := range y0 {
			y0[i] = float32(rng.Float64()*2 - 1)
		}
	}
	ref, scale = RefLinear(cv, xl, n, bias, y0)
	for pass, v := range []*bsr.View{cv, pv} {
		ybuf, y := output(n*c.Rows, y0)
		if err := bsr.LinearWith(k, y, xl, n, v, bias, c.options()); err != nil {
			return fmt.Errorf("linear (view %d): %w", pass, err)
		}
		if err := CheckGuards(ybuf); err != nil {
			return fmt.Errorf("linear (view %d): %w", pass, err)
		}
		if err := Compare(y, ref, scale, c.Rows, terms); err != nil {
			return fmt.Errorf("linear (view %d) against the reference: %w", pass, err)
		}
		if pass == 0 {
			first = append(first[:0], y...)
		} else if err := BitEqual(first, y); err != nil {
			return fmt.Errorf("linear: paged view differs from contiguous: %w", err)
		}
	}
	return nil
}

// output returns a Sentinel-guarded output of n values holding y0, or NaN
// when y0 is nil (a product that overwrites must not read it).
func output(n int, y0 []float32) (buf, y []float32) {
	buf, y = Guarded(n, Sentinel)
	if y0 != nil {
		copy(y, y0)
	} else {
		nan := float32(math.NaN())
		for i := range y {
			y[i] = nan
		}
	}
	return buf, y
}

// CheckAllocs verifies that products run through an Executor allocate
// nothing in the steady state, for N = 1 and a batch, both products.
//
// Under the race detector, whose sync.Pool drops items at random, the
// products still run but the counts are not checked.
func CheckAllocs(t *testing.T, k bsr.Kernel, exec *bsr.Executor) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	m := RandomMatrix(rng, 96, 80, 16, 16, 0.6, Random, false)
	v := m.View()
	for _, n := range []int{1, 24} {
		x := RandomSlice(rng, m.Cols*n)
		y := make([]float32, m.Rows*n)
		bias := RandomSlice(rng, m.Rows)
		opt := bsr.Options{Exec: exec}
		var err error
		allocs := testing.AllocsPerRun(20, func() {
			if e := bsr.MulWith(k, y, v, x, n, opt); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Fatalf("mul n=%d: %v", n, err)
		}
		if allocs != 0 && !raceEnabled {
			t.Errorf("kernel %s: mul n=%d with an Executor allocates %.1f times per product, want 0", k.Name(), n, allocs)
		}
		allocs = testing.AllocsPerRun(20, func() {
			if e := bsr.LinearWith(k, y, x, n, v, bias, opt); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Fatalf("linear n=%d: %v", n, err)
		}
		if allocs != 0 && !raceEnabled {
			t.Errorf("kernel %s: linear n=%d with an Executor allocates %.1f times per product, want 0", k.Name(), n, allocs)
		}
	}
}
