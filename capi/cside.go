//go:build cgo

package main

/*
#include <stdlib.h>
#include <string.h>
#include "dmsparse.h"

#define DMS_VERSION_STRING "dmsparse 0.1.0"
#define DMS_ERR_CAP 4096

// The last error is thread-local: a Go export runs on the calling C thread
// for its whole duration, so the message it stores is seen by the same
// thread's dms_last_error.
static __thread char dms_err_buf[DMS_ERR_CAP];

__attribute__((visibility("hidden"))) void dms__set_error(const char *msg, size_t n) {
	if (n >= DMS_ERR_CAP) {
		n = DMS_ERR_CAP - 1;
	}
	memcpy(dms_err_buf, msg, n);
	dms_err_buf[n] = 0;
}

__attribute__((visibility("hidden"))) void dms__clear_error(void) { dms_err_buf[0] = 0; }

const char *dms_last_error(void) { return dms_err_buf; }

int dms_abi_version(void) { return DMS_ABI_VERSION; }

const char *dms_version(void) { return DMS_VERSION_STRING; }

const char *dms_status_name(int status) {
	switch (status) {
	case DMS_OK: return "DMS_OK";
	case DMS_ERR_INVALID_ARGUMENT: return "DMS_ERR_INVALID_ARGUMENT";
	case DMS_ERR_BAD_HANDLE: return "DMS_ERR_BAD_HANDLE";
	case DMS_ERR_NOT_FOUND: return "DMS_ERR_NOT_FOUND";
	case DMS_ERR_IO: return "DMS_ERR_IO";
	case DMS_ERR_CORRUPT: return "DMS_ERR_CORRUPT";
	case DMS_ERR_BUDGET: return "DMS_ERR_BUDGET";
	case DMS_ERR_CANCELED: return "DMS_ERR_CANCELED";
	case DMS_ERR_BUFFER_TOO_SMALL: return "DMS_ERR_BUFFER_TOO_SMALL";
	case DMS_ERR_NO_TASK: return "DMS_ERR_NO_TASK";
	case DMS_ERR_INTERNAL: return "DMS_ERR_INTERNAL";
	case DMS_ERR_TIMEOUT: return "DMS_ERR_TIMEOUT";
	}
	return "DMS_ERR_UNKNOWN";
}

__attribute__((visibility("hidden"))) void *dms__calloc(size_t n) { return calloc(1, n); }

// dms__codes lists the status codes in the order of handles' codes, for
// the ABI consistency test.
__attribute__((visibility("hidden"))) int dms__code(int i) {
	static const int codes[] = {DMS_OK, DMS_ERR_INVALID_ARGUMENT, DMS_ERR_BAD_HANDLE,
		DMS_ERR_NOT_FOUND, DMS_ERR_IO, DMS_ERR_CORRUPT, DMS_ERR_BUDGET, DMS_ERR_CANCELED,
		DMS_ERR_BUFFER_TOO_SMALL, DMS_ERR_NO_TASK, DMS_ERR_INTERNAL, DMS_ERR_TIMEOUT};
	return i >= 0 && i < (int)(sizeof codes / sizeof codes[0]) ? codes[i] : 1;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/dmsparse/dmsparse/capi/internal/handles"
)

// setError stores msg as the calling thread's last error.
func setError(msg string) {
	C.dms__set_error((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
}

// clearError empties the calling thread's last error.
func clearError() { C.dms__clear_error() }

// cAlloc hands out C heap memory, which C code may keep.
type cAlloc struct{}

// Alloc returns size zeroed bytes from calloc, or nil.
func (cAlloc) Alloc(size int) unsafe.Pointer { return C.dms__calloc(C.size_t(size)) }

// Free returns memory to free.
func (cAlloc) Free(p unsafe.Pointer) { C.free(p) }

// allCodes lists every status code in dmsparse.h order.
var allCodes = []handles.Code{handles.OK, handles.InvalidArgument, handles.BadHandle,
	handles.NotFound, handles.IO, handles.Corrupt, handles.Budget, handles.Canceled,
	handles.BufferTooSmall, handles.NoTask, handles.Internal, handles.Timeout}

// checkABI verifies that dmsparse.h and package handles agree on every
// status code and its name, and on the flag and direct-I/O constants.
func checkABI() error {
	for i, c := range allCodes {
		if got := handles.Code(C.dms__code(C.int(i))); got != c {
			return fmt.Errorf("status %d: dmsparse.h has %d, handles has %d (%v)", i, got, c, c)
		}
		if name := C.GoString(C.dms_status_name(C.int(c))); name != c.String() {
			return fmt.Errorf("status %d: dms_status_name says %q, handles says %q", c, name, c.String())
		}
	}
	if C.DMS_ACCUMULATE != handles.FlagAccumulate {
		return fmt.Errorf("DMS_ACCUMULATE is %d, handles.FlagAccumulate %d", C.DMS_ACCUMULATE, handles.FlagAccumulate)
	}
	if C.DMS_DIRECT_AUTO != 0 || C.DMS_DIRECT_FORCE != 1 || C.DMS_DIRECT_OFF != 2 {
		return fmt.Errorf("DMS_DIRECT_* constants changed: handles.Options.DirectIO expects 0, 1, 2")
	}
	if C.dms_abi_version() != C.DMS_ABI_VERSION {
		return fmt.Errorf("dms_abi_version %d, header %d", C.dms_abi_version(), C.DMS_ABI_VERSION)
	}
	return nil
}

// lastError returns the calling thread's last error (for tests; C reads it
// with dms_last_error).
func lastError() string { return C.GoString(C.dms_last_error()) }
