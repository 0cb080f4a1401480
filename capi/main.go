//go:build cgo

// Command capi is the dmsparse C ABI, built as a shared library:
//
//	go build -buildmode=c-shared -o libdmsparse.so ./capi
//
// The installable header is capi/dmsparse.h (not the header cgo writes next
// to the library) and capi/dmsparse.pc.in is the pkg-config template; `make
// -C capi install PREFIX=...` builds and installs all three. The exports in
// exports.go are thin wrappers over package capi/internal/handles, which
// holds the handle tables and every argument check and is tested in Go.
//
// The library keeps one handle table for the process (C has no other place
// to hold it); handles are integers, so C never holds a Go pointer. Block
// pointers handed to C point into the pool, which diffload maps outside the
// Go heap; the BSR structure arrays are copied into C memory.
package main

import (
	"github.com/dmsparse/dmsparse/capi/internal/handles"
)

// lib is the process-wide handle table behind every export.
var lib = handles.New(handles.OpenDiffload, kernelLinear, kernelMul, cAlloc{})

// main is required by -buildmode=c-shared and never runs.
func main() {}
