//go:build cgo

package main

/*
#include "dmsparse.h"

// Const-qualified aliases, so that the prototypes cgo generates for the
// exports below match dmsparse.h exactly (the header is included here, so
// any mismatch fails the build).
typedef const char dms_cchar_;
typedef const float dms_cfloat_;
typedef const dms_options dms_coptions_;
*/
import "C"

import (
	"fmt"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/dmsparse/dmsparse/capi/internal/handles"
)

// call runs f as one C ABI call: it converts f's error to a status code and
// the thread's last error, and turns a panic (including a memory fault in
// Go code) into DMS_ERR_INTERNAL instead of a crash across the boundary.
func call(name string, f func() error) (rc C.int) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			setError(fmt.Sprintf("%s: internal error (recovered panic): %v\n%s", name, r, debug.Stack()))
			rc = C.int(handles.Internal)
		}
	}()
	if err := f(); err != nil {
		setError(fmt.Sprintf("%s: %v", name, err))
		return C.int(handles.CodeOf(err))
	}
	clearError()
	return C.DMS_OK
}

// errNull reports a NULL out-parameter.
func errNull(what string) error {
	return &handles.Error{Code: handles.InvalidArgument, Err: fmt.Errorf("%s is NULL", what)}
}

// goString converts a C string; ok is false for NULL.
func goString(p *C.dms_cchar_) (string, bool) {
	if p == nil {
		return "", false
	}
	return C.GoString((*C.char)(unsafe.Pointer(p))), true
}

// fillStats copies switch stats into the C struct (when not NULL).
func fillStats(out *C.dms_switch_stats, st handles.Stats) {
	if out == nil {
		return
	}
	*out = C.dms_switch_stats{
		bytes_read:           C.int64_t(st.BytesRead),
		versions:             C.int64_t(st.Versions),
		reused:               C.int64_t(st.ReusedVersions),
		evicted:              C.int64_t(st.Evicted),
		requests:             C.int64_t(st.Requests),
		extents:              C.int64_t(st.Extents),
		total_ns:             C.int64_t(st.Total.Nanoseconds()),
		read_ns:              C.int64_t(st.Read.Nanoseconds()),
		first_layer_ready_ns: C.int64_t(st.FirstLayerReady.Nanoseconds()),
		bandwidth:            C.double(st.Bandwidth),
	}
	if st.DirectIO {
		out.direct_io = 1
	}
}

//export dms_open
func dms_open(path *C.dms_cchar_, opt *C.dms_coptions_, out *C.dms_runtime) C.int {
	return call("dms_open", func() error {
		if opt == nil {
			return errNull("options")
		}
		if out == nil {
			return errNull("out (runtime handle)")
		}
		for i, r := range opt.reserved {
			if r != 0 {
				return &handles.Error{Code: handles.InvalidArgument, Err: fmt.Errorf("options.reserved[%d] = %d, want 0 (zero the whole struct)", i, r)}
			}
		}
		p, ok := goString(path)
		h, err := lib.Open(p, ok, handles.Options{
			Budget:      int64(opt.budget_bytes),
			CoalesceGap: int64(opt.coalesce_gap),
			RequestSize: int64(opt.request_size),
			InFlight:    int(opt.in_flight),
			DirectIO:    int(opt.direct_io),
			// Milliseconds; a negative value reaches Open's check.
			SwitchTimeout: time.Duration(opt.switch_timeout_ms) * time.Millisecond,
		})
		if err != nil {
			return err
		}
		*out = C.dms_runtime(h)
		return nil
	})
}

//export dms_close
func dms_close(rt C.dms_runtime) C.int {
	return call("dms_close", func() error { return lib.Close(uint64(rt)) })
}

//export dms_task_count
func dms_task_count(rt C.dms_runtime, count *C.int64_t) C.int {
	return call("dms_task_count", func() error {
		if count == nil {
			return errNull("count")
		}
		names, err := lib.Tasks(uint64(rt))
		if err != nil {
			return err
		}
		*count = C.int64_t(len(names))
		return nil
	})
}

//export dms_task_name
func dms_task_name(rt C.dms_runtime, i C.int64_t, buf *C.char, bufLen C.int64_t, needed *C.int64_t) C.int {
	return call("dms_task_name", func() error {
		name, err := lib.TaskName(uint64(rt), int64(i))
		if err != nil {
			return err
		}
		return handles.CopyString(unsafe.Pointer(buf), int64(bufLen), name, (*int64)(unsafe.Pointer(needed)))
	})
}

//export dms_resident
func dms_resident(rt C.dms_runtime, bytes *C.int64_t, versions *C.int64_t) C.int {
	return call("dms_resident", func() error {
		b, n, err := lib.Resident(uint64(rt))
		if err != nil {
			return err
		}
		if bytes != nil {
			*bytes = C.int64_t(b)
		}
		if versions != nil {
			*versions = C.int64_t(n)
		}
		return nil
	})
}

//export dms_switch
func dms_switch(rt C.dms_runtime, task *C.dms_cchar_, stats *C.dms_switch_stats) C.int {
	return call("dms_switch", func() error {
		t, ok := goString(task)
		st, err := lib.Switch(uint64(rt), t, ok)
		if err != nil {
			return err
		}
		fillStats(stats, st)
		return nil
	})
}

//export dms_begin_switch
func dms_begin_switch(rt C.dms_runtime, task *C.dms_cchar_, out *C.dms_pending) C.int {
	return call("dms_begin_switch", func() error {
		if out == nil {
			return errNull("out (pending handle)")
		}
		t, ok := goString(task)
		p, err := lib.Begin(uint64(rt), t, ok)
		if err != nil {
			return err
		}
		*out = C.dms_pending(p)
		return nil
	})
}

//export dms_pending_wait_layer
func dms_pending_wait_layer(p C.dms_pending, layer C.int64_t) C.int {
	return call("dms_pending_wait_layer", func() error { return lib.WaitLayer(uint64(p), int64(layer)) })
}

//export dms_pending_wait_tensor
func dms_pending_wait_tensor(p C.dms_pending, tensor *C.dms_cchar_) C.int {
	return call("dms_pending_wait_tensor", func() error {
		t, ok := goString(tensor)
		return lib.WaitTensor(uint64(p), t, ok)
	})
}

//export dms_pending_wait
func dms_pending_wait(p C.dms_pending, stats *C.dms_switch_stats) C.int {
	return call("dms_pending_wait", func() error {
		st, err := lib.Wait(uint64(p))
		if err != nil {
			return err
		}
		fillStats(stats, st)
		return nil
	})
}

//export dms_pending_cancel
func dms_pending_cancel(p C.dms_pending) C.int {
	return call("dms_pending_cancel", func() error { return lib.Cancel(uint64(p)) })
}

//export dms_pending_free
func dms_pending_free(p C.dms_pending) C.int {
	return call("dms_pending_free", func() error { return lib.FreePending(uint64(p)) })
}

//export dms_prefetch_start
func dms_prefetch_start(rt C.dms_runtime, task *C.dms_cchar_, out *C.dms_prefetch) C.int {
	return call("dms_prefetch_start", func() error {
		if out == nil {
			return errNull("out (prefetch handle)")
		}
		t, ok := goString(task)
		p, err := lib.Prefetch(uint64(rt), t, ok)
		if err != nil {
			return err
		}
		*out = C.dms_prefetch(p)
		return nil
	})
}

//export dms_prefetch_cancel
func dms_prefetch_cancel(p C.dms_prefetch) C.int {
	return call("dms_prefetch_cancel", func() error { return lib.CancelPrefetch(uint64(p)) })
}

//export dms_prefetch_wait
func dms_prefetch_wait(p C.dms_prefetch) C.int {
	return call("dms_prefetch_wait", func() error { return lib.WaitPrefetch(uint64(p)) })
}

//export dms_prefetch_free
func dms_prefetch_free(p C.dms_prefetch) C.int {
	return call("dms_prefetch_free", func() error { return lib.FreePrefetch(uint64(p)) })
}

//export dms_acquire
func dms_acquire(rt C.dms_runtime, out *C.dms_views) C.int {
	return call("dms_acquire", func() error {
		if out == nil {
			return errNull("out (views handle)")
		}
		v, err := lib.Acquire(uint64(rt))
		if err != nil {
			return err
		}
		*out = C.dms_views(v)
		return nil
	})
}

//export dms_views_task
func dms_views_task(v C.dms_views, buf *C.char, bufLen C.int64_t, needed *C.int64_t) C.int {
	return call("dms_views_task", func() error {
		name, err := lib.ViewsTask(uint64(v))
		if err != nil {
			return err
		}
		return handles.CopyString(unsafe.Pointer(buf), int64(bufLen), name, (*int64)(unsafe.Pointer(needed)))
	})
}

//export dms_views_tensor_count
func dms_views_tensor_count(v C.dms_views, count *C.int64_t) C.int {
	return call("dms_views_tensor_count", func() error {
		if count == nil {
			return errNull("count")
		}
		names, err := lib.TensorNames(uint64(v))
		if err != nil {
			return err
		}
		*count = C.int64_t(len(names))
		return nil
	})
}

//export dms_views_tensor_name
func dms_views_tensor_name(v C.dms_views, i C.int64_t, buf *C.char, bufLen C.int64_t, needed *C.int64_t) C.int {
	return call("dms_views_tensor_name", func() error {
		name, err := lib.TensorName(uint64(v), int64(i))
		if err != nil {
			return err
		}
		return handles.CopyString(unsafe.Pointer(buf), int64(bufLen), name, (*int64)(unsafe.Pointer(needed)))
	})
}

//export dms_views_tensor
func dms_views_tensor(v C.dms_views, tensor *C.dms_cchar_, out *C.dms_bsr_view) C.int {
	return call("dms_views_tensor", func() error {
		if out == nil {
			return errNull("out (dms_bsr_view)")
		}
		t, ok := goString(tensor)
		d, err := lib.Tensor(uint64(v), t, ok)
		if err != nil {
			return err
		}
		*out = C.dms_bsr_view{
			rows: C.int64_t(d.Rows), cols: C.int64_t(d.Cols), r: C.int32_t(d.R), c: C.int32_t(d.C),
			block_rows: C.int64_t(d.BlockRows), block_cols: C.int64_t(d.BlockCols), nnzb: C.int64_t(d.NNZB),
			indptr:    (*C.int32_t)(d.Indptr),
			indices:   (*C.int32_t)(d.Indices),
			slots:     (*C.int32_t)(d.Slots),
			arena:     (*C.float)(d.Arena),
			arena_len: C.int64_t(d.ArenaLen),
			stride:    C.int64_t(d.Stride),
			blocks:    (**C.float)(d.Blocks),
		}
		return nil
	})
}

//export dms_views_dense
func dms_views_dense(v C.dms_views, name *C.dms_cchar_, dst *C.float, dstLen C.int64_t, length *C.int64_t) C.int {
	return call("dms_views_dense", func() error {
		s, ok := goString(name)
		n, err := lib.Dense(uint64(v), s, ok, unsafe.Pointer(dst), int64(dstLen))
		if length != nil && (err == nil || handles.CodeOf(err) == handles.BufferTooSmall) {
			*length = C.int64_t(n)
		}
		return err
	})
}

//export dms_views_linear
func dms_views_linear(v C.dms_views, tensor *C.dms_cchar_, x *C.dms_cfloat_, n C.int64_t, xLen C.int64_t,
	y *C.float, yLen C.int64_t, bias *C.dms_cfloat_, biasLen C.int64_t, flags C.uint32_t, threads C.int32_t) C.int {
	return call("dms_views_linear", func() error {
		t, ok := goString(tensor)
		return lib.Linear(uint64(v), t, ok, handles.LayerArgs{
			X: unsafe.Pointer(x), XLen: int64(xLen),
			Y: unsafe.Pointer(y), YLen: int64(yLen),
			Bias: unsafe.Pointer(bias), BiasLen: int64(biasLen),
			N: int64(n), Flags: uint32(flags), Threads: int32(threads),
		})
	})
}

//export dms_views_mul
func dms_views_mul(v C.dms_views, tensor *C.dms_cchar_, x *C.dms_cfloat_, n C.int64_t, xLen C.int64_t,
	y *C.float, yLen C.int64_t, flags C.uint32_t, threads C.int32_t) C.int {
	return call("dms_views_mul", func() error {
		t, ok := goString(tensor)
		return lib.Mul(uint64(v), t, ok, handles.LayerArgs{
			X: unsafe.Pointer(x), XLen: int64(xLen),
			Y: unsafe.Pointer(y), YLen: int64(yLen),
			N: int64(n), Flags: uint32(flags), Threads: int32(threads),
		})
	})
}

//export dms_views_release
func dms_views_release(v C.dms_views) C.int {
	return call("dms_views_release", func() error { return lib.Release(uint64(v)) })
}

//export dms_kernel_name
func dms_kernel_name(buf *C.char, bufLen C.int64_t, needed *C.int64_t) C.int {
	return call("dms_kernel_name", func() error {
		return handles.CopyString(unsafe.Pointer(buf), int64(bufLen), kernelBest().Name(), (*int64)(unsafe.Pointer(needed)))
	})
}

//export dms_kernel_names
func dms_kernel_names(buf *C.char, bufLen C.int64_t, needed *C.int64_t) C.int {
	return call("dms_kernel_names", func() error {
		return handles.CopyString(unsafe.Pointer(buf), int64(bufLen), kernelNames(), (*int64)(unsafe.Pointer(needed)))
	})
}

//export dms_pending_views
func dms_pending_views(p C.dms_pending, out *C.dms_views) C.int {
	return call("dms_pending_views", func() error {
		if out == nil {
			return errNull("out (views handle)")
		}
		v, err := lib.PendingViews(uint64(p))
		if err != nil {
			return err
		}
		*out = C.dms_views(v)
		return nil
	})
}
