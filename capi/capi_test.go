//go:build cgo

package main

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/capi/internal/handles"
)

func TestABIConstants(t *testing.T) {
	if err := checkABI(); err != nil {
		t.Fatal(err)
	}
}

// TestCallBoundary checks the wrapper every export goes through: errors
// become codes and thread-local messages, panics and memory faults become
// DMS_ERR_INTERNAL, success clears the message.
func TestCallBoundary(t *testing.T) {
	runtime.LockOSThread() // the message is per OS thread
	defer runtime.UnlockOSThread()
	rc := call("dms_test", func() error {
		return &handles.Error{Code: handles.NotFound, Err: errors.New(`task "x" is not in store`)}
	})
	if rc != -3 || lastError() != `dms_test: task "x" is not in store` {
		t.Fatalf("rc %d message %q", rc, lastError())
	}
	if rc := call("dms_test", func() error { return nil }); rc != 0 || lastError() != "" {
		t.Fatalf("success: rc %d message %q", rc, lastError())
	}
	rc = call("dms_test", func() error { panic("boom") })
	if rc != -10 || !strings.Contains(lastError(), "boom") || !strings.Contains(lastError(), "recovered panic") {
		t.Fatalf("panic: rc %d message %q", rc, lastError())
	}
	rc = call("dms_test", func() error {
		var p *[4]float32
		p[1] = 1
		return nil
	})
	if rc != -10 || !strings.Contains(lastError(), "nil pointer") {
		t.Fatalf("nil dereference: rc %d message %q", rc, lastError())
	}
	long := strings.Repeat("x", 10000)
	call("dms_test", func() error { return errors.New(long) })
	if n := len(lastError()); n != 4095 {
		t.Fatalf("long message stored with %d bytes, want truncation to 4095", n)
	}
	if rc := call("dms_test", func() error { return errors.New("uncoded") }); rc != -10 {
		t.Fatalf("an error without a code returned %d, want DMS_ERR_INTERNAL", rc)
	}
}

func TestCAllocator(t *testing.T) {
	p := cAlloc{}.Alloc(64)
	if p == nil {
		t.Fatal("calloc failed")
	}
	b := (*[64]byte)(p)
	for i, v := range b {
		if v != 0 {
			t.Fatalf("byte %d = %d, want zeroed memory", i, v)
		}
	}
	cAlloc{}.Free(p)
}
