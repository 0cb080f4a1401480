package handles

import (
	"unsafe"
)

// Allocator provides the memory whose pointers are handed to C: it must not
// be Go heap memory that C would keep (the library uses C malloc). Alloc
// returns zeroed memory or nil when out of memory.
type Allocator interface {
	// Alloc returns size zeroed bytes aligned to 8, or nil.
	Alloc(size int) unsafe.Pointer
	// Free releases memory returned by Alloc.
	Free(p unsafe.Pointer)
}

// CopyString writes s and a terminating NUL into the C buffer dst of dstLen
// bytes and stores len(s)+1 in *needed (when needed is not nil). A NULL dst
// with dstLen 0 only queries the size. A buffer that is too small gets
// nothing written except, when it has room, an empty string, and the call
// returns BufferTooSmall.
func CopyString(dst unsafe.Pointer, dstLen int64, s string, needed *int64) error {
	if needed != nil {
		*needed = int64(len(s)) + 1
	}
	if dst == nil {
		if dstLen != 0 {
			return errorf(InvalidArgument, "string buffer is NULL but its length is %d", dstLen)
		}
		if needed == nil {
			return errorf(InvalidArgument, "string buffer and needed-size pointer are both NULL")
		}
		return nil
	}
	if dstLen < 0 {
		return errorf(InvalidArgument, "string buffer length %d is negative", dstLen)
	}
	if dstLen < int64(len(s))+1 {
		if dstLen > 0 {
			*(*byte)(dst) = 0
		}
		return errorf(BufferTooSmall, "string %q needs %d bytes with its NUL, buffer has %d", s, len(s)+1, dstLen)
	}
	b := unsafe.Slice((*byte)(dst), dstLen)
	copy(b, s)
	b[len(s)] = 0
	return nil
}

// floats turns a caller buffer into a slice after checking it: what names
// the argument in messages, need is the number of values the call uses.
func floats(p unsafe.Pointer, length int64, need int64, what string) ([]float32, error) {
	if p == nil {
		return nil, errorf(InvalidArgument, "%s is NULL", what)
	}
	if length < 0 {
		return nil, errorf(InvalidArgument, "%s length %d is negative", what, length)
	}
	if length < need {
		return nil, errorf(BufferTooSmall, "%s has %d floats, the call needs %d", what, length, need)
	}
	if uintptr(p)%unsafe.Alignof(float32(0)) != 0 {
		return nil, errorf(InvalidArgument, "%s at %#x is not 4-byte aligned", what, uintptr(p))
	}
	// Only the values the call uses: a length claimed beyond them is never
	// touched (and cannot overflow the slice's size).
	return unsafe.Slice((*float32)(p), need), nil
}
