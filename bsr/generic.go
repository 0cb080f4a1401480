package bsr

// Generic is the pure-Go kernel: the reference every other implementation is
// tested against, and the fallback when native kernels are unavailable.
var Generic Kernel = genericKernel{}

type genericKernel struct{}

func (genericKernel) Name() string { return "go" }

// MulRows implements Kernel with a row-by-row axpy over X's rows.
func (genericKernel) MulRows(y []float32, a *View, x []float32, n, lo, hi int, accumulate bool) {
	R, C := a.R, a.C
	for i := lo; i < hi; i++ {
		r0 := i * R
		rows := min(R, a.Rows-r0)
		yb := y[r0*n : (r0+rows)*n]
		if !accumulate {
			clear(yb)
		}
		for k := a.Indptr[i]; k < a.Indptr[i+1]; k++ {
			c0 := int(a.Indices[k]) * C
			cols := min(C, a.Cols-c0)
			blk := a.Block(int(k))
			xb := x[c0*n : (c0+cols)*n]
			for r := 0; r < rows; r++ {
				yr := yb[r*n : r*n+n]
				wr := blk[r*C : r*C+cols]
				for c, w := range wr {
					xr := xb[c*n : c*n+n]
					for b := range yr {
						yr[b] += w * xr[b]
					}
				}
			}
		}
	}
}

// linearChunk is how many batch columns the generic linear kernel keeps in
// its stack accumulator at a time.
const linearChunk = 64

// LinearRows implements Kernel: for each output feature it accumulates
// chunks of the batch on the stack from rows of X transposed.
func (genericKernel) LinearRows(y []float32, xt []float32, n int, a *View, bias []float32, lo, hi int, accumulate bool) {
	R, C, M := a.R, a.C, a.Rows
	var acc [linearChunk]float32
	for i := lo; i < hi; i++ {
		r0 := i * R
		rows := min(R, M-r0)
		for r := 0; r < rows; r++ {
			m := r0 + r
			for b0 := 0; b0 < n; b0 += linearChunk {
				nb := min(linearChunk, n-b0)
				s := acc[:nb]
				clear(s)
				for k := a.Indptr[i]; k < a.Indptr[i+1]; k++ {
					c0 := int(a.Indices[k]) * C
					cols := min(C, a.Cols-c0)
					wr := a.Block(int(k))[r*C : r*C+cols]
					for c, w := range wr {
						xr := xt[(c0+c)*n+b0 : (c0+c)*n+b0+nb]
						for b := range s {
							s[b] += w * xr[b]
						}
					}
				}
				var bv float32
				if bias != nil {
					bv = bias[m]
				}
				for b := range s {
					p := (b0+b)*M + m
					if accumulate {
						y[p] += s[b] + bv
					} else {
						y[p] = s[b] + bv
					}
				}
			}
		}
	}
}
