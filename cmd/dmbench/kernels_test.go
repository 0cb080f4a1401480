package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/native"
)

func TestKernelsCommandJSON(t *testing.T) {
	var out, errb bytes.Buffer
	err := runKernels([]string{"-shape", "70x45", "-block", "16x8", "-density", "100,30", "-n", "1,5",
		"-reps", "1", "-min-time", "1ms", "-impl", "^(go|scalar)$", "-json"}, &out, &errb)
	if err != nil {
		t.Fatalf("kernels: %v (stderr %s)", err, errb.String())
	}
	var rows []kernelRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("decoding JSON %q: %v", out.String(), err)
	}
	impls := 0
	for _, k := range native.Kernels() {
		if k.Name() == "go" || k.Name() == "scalar" {
			impls++ // scalar exists only in cgo builds
		}
	}
	if len(rows) != impls*2*2 {
		t.Fatalf("got %d rows, want %d (%d impls x 2 densities x 2 N)", len(rows), impls*4, impls)
	}
	for _, r := range rows {
		if r.Seconds <= 0 || r.GFLOPS <= 0 || r.NNZB <= 0 {
			t.Errorf("row %+v: want positive time, GFLOP/s and nnzb", r)
		}
		if (r.N == 1) != (r.GBps > 0) {
			t.Errorf("row %+v: weight GB/s should be reported exactly for N = 1", r)
		}
		if r.Impl == "scalar" && r.VsGo <= 0 {
			t.Errorf("row %+v: want a speedup over go", r)
		}
		if r.Density == 100 && r.NNZB != 5*6 {
			t.Errorf("row %+v: 70x45 in 16x8 blocks at 100%% has 30 blocks", r)
		}
	}
}

func TestKernelsCommandTableAndErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if err := runKernels([]string{"-shape", "32x32", "-block", "8x8", "-density", "50", "-n", "3", "-reps", "1", "-min-time", "1ms", "-impl", "^go$"}, &out, &errb); err != nil {
		t.Fatalf("kernels: %v", err)
	}
	if !strings.Contains(out.String(), "GFLOP/s") || !strings.Contains(out.String(), " go ") {
		t.Errorf("table lacks header or row:\n%s", out.String())
	}
	for _, args := range [][]string{
		{"-shape", "10"},
		{"-block", "0x4"},
		{"-density", "120"},
		{"-n", "0"},
		{"-op", "conv"},
		{"-impl", "nothing-matches"},
		{"-threads", "0"},
	} {
		if err := runKernels(append(args, "-reps", "1", "-min-time", "1ms", "-shape", "16x16"), &out, &errb); err == nil && args[0] != "-shape" {
			t.Errorf("args %q: want an error", args)
		}
	}
	if err := runKernels([]string{"-shape", "10"}, &out, &errb); err == nil {
		t.Error("-shape 10: want an error")
	}
}
