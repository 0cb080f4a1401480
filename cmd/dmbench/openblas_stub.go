//go:build !(openblas && cgo)

package main

// openblasStatus says why the dense OpenBLAS baseline is missing.
const openblasStatus = "not built (build with -tags openblas)"

func openblasThreads(int)                           {}
func openblasMul(y, w, x []float32, m, k, n int)    { panic("dmbench: " + openblasStatus) }
func openblasLinear(y, w, x []float32, m, k, n int) { panic("dmbench: " + openblasStatus) }
