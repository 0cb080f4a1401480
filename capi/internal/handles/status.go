package handles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// Code is a status code of the C ABI. Zero is success; every failure is a
// negative code that names the kind of error. The values are part of the ABI
// and mirror the DMS_* constants of dmsparse.h.
type Code int32

// Status codes, one per error kind. Keep in sync with capi/dmsparse.h.
const (
	// OK means the call succeeded.
	OK Code = 0
	// InvalidArgument: a NULL pointer, a negative or zero size, or an
	// option out of range.
	InvalidArgument Code = -1
	// BadHandle: the handle is zero, unknown, already closed or released,
	// or of another kind than the call expects.
	BadHandle Code = -2
	// NotFound: the named task or tensor does not exist.
	NotFound Code = -3
	// IO: the store file could not be opened or read.
	IO Code = -4
	// Corrupt: the store failed validation or a block failed its checksum.
	Corrupt Code = -5
	// Budget: the pool budget cannot hold what was asked.
	Budget Code = -6
	// Canceled: the operation was canceled (by a cancel call or a close).
	Canceled Code = -7
	// BufferTooSmall: a caller buffer is shorter than the call needs; the
	// needed size is reported where the call has an out-parameter for it.
	BufferTooSmall Code = -8
	// NoTask: no task has been switched to yet, so there is nothing to
	// acquire.
	NoTask Code = -9
	// Internal: a bug inside the library (a recovered panic or an
	// unexpected state); the message says what happened.
	Internal Code = -10
	// Timeout: a switch did not finish within the runtime's switch
	// timeout, typically because views held by the caller pin the blocks
	// the budget needs.
	Timeout Code = -11
)

// String returns the constant's name as spelled in dmsparse.h.
func (c Code) String() string {
	switch c {
	case OK:
		return "DMS_OK"
	case InvalidArgument:
		return "DMS_ERR_INVALID_ARGUMENT"
	case BadHandle:
		return "DMS_ERR_BAD_HANDLE"
	case NotFound:
		return "DMS_ERR_NOT_FOUND"
	case IO:
		return "DMS_ERR_IO"
	case Corrupt:
		return "DMS_ERR_CORRUPT"
	case Budget:
		return "DMS_ERR_BUDGET"
	case Canceled:
		return "DMS_ERR_CANCELED"
	case BufferTooSmall:
		return "DMS_ERR_BUFFER_TOO_SMALL"
	case NoTask:
		return "DMS_ERR_NO_TASK"
	case Internal:
		return "DMS_ERR_INTERNAL"
	case Timeout:
		return "DMS_ERR_TIMEOUT"
	}
	return fmt.Sprintf("DMS_ERR_UNKNOWN(%d)", int32(c))
}

// Error is a failure with its ABI status code.
type Error struct {
	// Code is the status the C call returns.
	Code Code
	// Err carries the message.
	Err error
}

// Error returns the message without the code.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// errorf builds an *Error with a formatted message.
func errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// wrap attaches code to err unless err already carries a code, in which case
// the context is added and the code kept.
func wrap(code Code, err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	var e *Error
	if errors.As(err, &e) {
		return &Error{Code: e.Code, Err: fmt.Errorf("%s: %w", msg, err)}
	}
	return &Error{Code: code, Err: fmt.Errorf("%s: %w", msg, err)}
}

// Kinded lets a backend error declare its status code. Backends whose errors
// implement it (directly or anywhere in their wrap chain) are classified
// exactly; others are classified by the standard sentinels.
type Kinded interface {
	StatusCode() Code
}

// Classify maps an error to its status code: nil is OK, an *Error keeps its
// code, context cancellation is Canceled, file-system errors are IO, and
// anything else is fallback.
func Classify(err error, fallback Code) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var k Kinded
	if errors.As(err, &k) {
		return k.StatusCode()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return IO
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return IO
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return IO
	}
	return fallback
}

// CodeOf returns the status code of an error returned by this package's
// calls (OK for nil, Internal for an error that carries no code).
func CodeOf(err error) Code {
	return Classify(err, Internal)
}
