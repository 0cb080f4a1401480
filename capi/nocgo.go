//go:build !cgo

// Command capi is the dmsparse C ABI. It is a cgo shared library
// (go build -buildmode=c-shared -o libdmsparse.so ./capi); without cgo
// there is nothing to build, and this file only keeps CGO_ENABLED=0 builds
// of ./... working.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "capi: the dmsparse C ABI needs cgo: build with CGO_ENABLED=1 go build -buildmode=c-shared -o libdmsparse.so ./capi")
	os.Exit(2)
}
