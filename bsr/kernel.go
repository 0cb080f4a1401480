package bsr

import (
	"fmt"
	"runtime"
	"sync"
)

// Kernel is one implementation of the two BSR products over a range of block
// rows. The pure-Go Generic kernel is the reference; package native adds the
// C SIMD kernels. Callers normally use Mul and Linear (or native.Mul and
// native.Linear), which check arguments and split the block rows over
// workers; a Kernel's methods trust their arguments.
type Kernel interface {
	// Name identifies the implementation ("go", "scalar", "avx2", ...).
	Name() string
	// MulRows computes block rows [lo, hi) of Y = A*X, where A is the
	// Rows x Cols view, X is row-major Cols x n and Y is row-major Rows x n.
	// With accumulate the product is added to Y, otherwise it replaces Y.
	// Only rows lo*R .. min(hi*R, Rows)-1 of Y are written.
	MulRows(y []float32, a *View, x []float32, n, lo, hi int, accumulate bool)
	// LinearRows computes, for the output features of block rows [lo, hi),
	// Y = X*A^T + bias, where X is row-major n x Cols, Y is row-major
	// n x Rows and xt is X transposed (row-major Cols x n; for n == 1 it is X
	// itself). bias is nil or has Rows values. With accumulate the result is
	// added to Y. Only columns lo*R .. min(hi*R, Rows)-1 of Y are written.
	LinearRows(y []float32, xt []float32, n int, a *View, bias []float32, lo, hi int, accumulate bool)
}

// Options tunes a product.
type Options struct {
	// Accumulate adds the product to the output instead of overwriting it.
	Accumulate bool
	// Workers is the number of goroutines the block rows are split over.
	// Zero means runtime.GOMAXPROCS(0); one runs on the calling goroutine.
	// Ignored when Exec is set.
	Workers int
	// Exec, when set, runs the work on its long-lived goroutines so that a
	// product allocates nothing in the steady state.
	Exec *Executor
}

// Mul computes Y = A*X (or Y += A*X with opt.Accumulate) with the pure-Go
// kernel. A is Rows x Cols, X row-major Cols x n, Y row-major Rows x n.
func Mul(y []float32, a *View, x []float32, n int, opt Options) error {
	return MulWith(Generic, y, a, x, n, opt)
}

// Linear computes Y = X*A^T + bias (or adds it to Y with opt.Accumulate) with
// the pure-Go kernel: the linear-layer form, with X row-major n x Cols
// activations and Y row-major n x Rows. bias may be nil.
func Linear(y, x []float32, n int, a *View, bias []float32, opt Options) error {
	return LinearWith(Generic, y, x, n, a, bias, opt)
}

// checkView verifies the parts of a view that the kernels rely on for memory
// safety in O(1): shape, block shape and slice lengths. Full structural
// checks are Validate's job.
func checkView(a *View) error {
	if a == nil {
		return fmt.Errorf("bsr: nil view")
	}
	if a.R <= 0 || a.C <= 0 || a.Rows < 0 || a.Cols < 0 {
		return fmt.Errorf("bsr: view shape %dx%d with blocks %dx%d: want non-negative shape and positive block sides", a.Rows, a.Cols, a.R, a.C)
	}
	if len(a.Indptr) != a.BlockRows()+1 {
		return fmt.Errorf("bsr: view has %d indptr entries, want block rows+1 = %d", len(a.Indptr), a.BlockRows()+1)
	}
	if len(a.Slots) != len(a.Indices) {
		return fmt.Errorf("bsr: view has %d slots for %d blocks", len(a.Slots), len(a.Indices))
	}
	if a.Stride < a.R*a.C && len(a.Indices) > 0 {
		return fmt.Errorf("bsr: view slot stride %d is below the block size %d", a.Stride, a.R*a.C)
	}
	return nil
}

// MulWith is Mul with a chosen kernel.
func MulWith(k Kernel, y []float32, a *View, x []float32, n int, opt Options) error {
	if err := checkView(a); err != nil {
		return fmt.Errorf("bsr: mul: %w", err)
	}
	if n < 1 {
		return fmt.Errorf("bsr: mul: n = %d, want at least 1", n)
	}
	if len(x) < a.Cols*n {
		return fmt.Errorf("bsr: mul: X has %d values, want Cols*n = %d*%d", len(x), a.Cols, n)
	}
	if len(y) < a.Rows*n {
		return fmt.Errorf("bsr: mul: Y has %d values, want Rows*n = %d*%d", len(y), a.Rows, n)
	}
	j := jobPool.Get().(*job)
	*j = job{k: k, y: y, x: x, a: a, n: n, acc: opt.Accumulate}
	run(opt, a.BlockRows(), j)
	*j = job{}
	jobPool.Put(j)
	return nil
}

var transposePool = sync.Pool{New: func() any { return new([]float32) }}

// LinearWith is Linear with a chosen kernel.
func LinearWith(k Kernel, y, x []float32, n int, a *View, bias []float32, opt Options) error {
	if err := checkView(a); err != nil {
		return fmt.Errorf("bsr: linear: %w", err)
	}
	if n < 1 {
		return fmt.Errorf("bsr: linear: n = %d, want at least 1", n)
	}
	if len(x) < a.Cols*n {
		return fmt.Errorf("bsr: linear: X has %d values, want n*Cols = %d*%d", len(x), n, a.Cols)
	}
	if len(y) < a.Rows*n {
		return fmt.Errorf("bsr: linear: Y has %d values, want n*Rows = %d*%d", len(y), n, a.Rows)
	}
	if bias != nil && len(bias) != a.Rows {
		return fmt.Errorf("bsr: linear: bias has %d values, want Rows = %d", len(bias), a.Rows)
	}
	xt := x
	var buf *[]float32
	if n > 1 {
		buf = transposePool.Get().(*[]float32)
		if cap(*buf) < a.Cols*n {
			*buf = make([]float32, a.Cols*n)
		}
		xt = (*buf)[:a.Cols*n]
		transpose(xt, x, n, a.Cols)
	}
	j := jobPool.Get().(*job)
	*j = job{k: k, linear: true, y: y, x: xt, a: a, bias: bias, n: n, acc: opt.Accumulate}
	var ybuf *[]float32
	if n >= linearViaMulMinN {
		// Large batches: compute Y^T = A * X^T with the Mul kernel into
		// scratch, then transpose it into Y. Storing the kernel's tiles
		// straight into Y's columns (stride Rows) costs more than the
		// two transposes once the batch is large.
		ybuf = transposePool.Get().(*[]float32)
		if cap(*ybuf) < a.Rows*n {
			*ybuf = make([]float32, a.Rows*n)
		}
		j.yt = (*ybuf)[:a.Rows*n]
	}
	run(opt, a.BlockRows(), j)
	*j = job{}
	jobPool.Put(j)
	if buf != nil {
		transposePool.Put(buf)
	}
	if ybuf != nil {
		transposePool.Put(ybuf)
	}
	return nil
}

// linearViaMulMinN is the batch size from which Linear runs the Mul kernel
// on X^T and transposes the result, instead of the kernel's own linear form.
const linearViaMulMinN = 32

// storeTransposed writes rows [r0, r1) of yt (row-major Rows x n) into the
// columns r0..r1-1 of y (row-major n x Rows), adding bias, or adding to y
// when accumulate is set.
func storeTransposed(y, yt []float32, n, rows, r0, r1 int, bias []float32, accumulate bool) {
	const tile = 16
	for b0 := 0; b0 < n; b0 += tile {
		b1 := min(b0+tile, n)
		for m := r0; m < r1; m++ {
			var bv float32
			if bias != nil {
				bv = bias[m]
			}
			src := yt[m*n+b0 : m*n+b1]
			if accumulate {
				for b, v := range src {
					y[(b0+b)*rows+m] += v + bv
				}
			} else {
				for b, v := range src {
					y[(b0+b)*rows+m] = v + bv
				}
			}
		}
	}
}

// transpose writes the rows x cols row-major src into dst as cols x rows,
// in cache-sized tiles.
func transpose(dst, src []float32, rows, cols int) {
	const tile = 32
	for i0 := 0; i0 < rows; i0 += tile {
		i1 := min(i0+tile, rows)
		for j0 := 0; j0 < cols; j0 += tile {
			j1 := min(j0+tile, cols)
			for i := i0; i < i1; i++ {
				row := src[i*cols : i*cols+cols]
				for j := j0; j < j1; j++ {
					dst[j*rows+i] = row[j]
				}
			}
		}
	}
}

// job is one product's arguments; pooled so that a product does not
// allocate.
type job struct {
	k      Kernel
	linear bool
	y, x   []float32 // for linear, x is X transposed
	yt     []float32 // for linear with large batches: Y^T scratch
	a      *View
	bias   []float32
	n      int
	acc    bool
	wg     sync.WaitGroup
}

var jobPool = sync.Pool{New: func() any { return new(job) }}

// do computes block rows [lo, hi) of the job.
func (j *job) do(lo, hi int) {
	switch {
	case j.linear && j.yt != nil:
		j.k.MulRows(j.yt, j.a, j.x, j.n, lo, hi, false)
		storeTransposed(j.y, j.yt, j.n, j.a.Rows, lo*j.a.R, min(hi*j.a.R, j.a.Rows), j.bias, j.acc)
	case j.linear:
		j.k.LinearRows(j.y, j.x, j.n, j.a, j.bias, lo, hi, j.acc)
	default:
		j.k.MulRows(j.y, j.a, j.x, j.n, lo, hi, j.acc)
	}
}

// run splits [0, blockRows) into contiguous ranges and computes each,
// in parallel when asked to.
func run(opt Options, blockRows int, f *job) {
	if blockRows == 0 {
		return
	}
	if opt.Exec != nil {
		opt.Exec.run(blockRows, f)
		return
	}
	w := opt.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	w = min(w, blockRows)
	if w <= 1 {
		f.do(0, blockRows)
		return
	}
	f.wg.Add(w - 1)
	for i := 1; i < w; i++ {
		lo, hi := split(blockRows, w, i)
		go func() {
			defer f.wg.Done()
			f.do(lo, hi)
		}()
	}
	lo, hi := split(blockRows, w, 0)
	f.do(lo, hi)
	f.wg.Wait()
}

// split returns part i of [0, total) cut into w nearly equal ranges.
func split(total, w, i int) (lo, hi int) {
	return total * i / w, total * (i + 1) / w
}
