package handles

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/dmsparse/dmsparse/bsr"
)

// setup returns a table over one fake store, opened, and its allocator.
func setup(t *testing.T) (*Table, uint64, *fakeStore, *goAlloc) {
	t.Helper()
	fs := newFakeStore(7)
	al := newGoAlloc()
	open := func(path string, opt Options) (Backend, error) {
		if path != "fake.dms" {
			return nil, fmt.Errorf("open %s: %w", path, errors.New("no such file"))
		}
		return fs, nil
	}
	tb := New(open, bsr.Linear, bsr.Mul, al)
	h, err := tb.Open("fake.dms", true, Options{Budget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return tb, h, fs, al
}

// wantCode fails unless err carries code and mentions every part.
func wantCode(t *testing.T, err error, code Code, parts ...string) {
	t.Helper()
	if got := CodeOf(err); got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("message %q does not mention %q", err.Error(), p)
		}
	}
}

func TestOpenArguments(t *testing.T) {
	tb, _, _, _ := setup(t)
	_, err := tb.Open("", false, Options{Budget: 1})
	wantCode(t, err, InvalidArgument, "NULL")
	_, err = tb.Open("", true, Options{Budget: 1})
	wantCode(t, err, InvalidArgument, "empty")
	_, err = tb.Open("fake.dms", true, Options{})
	wantCode(t, err, InvalidArgument, "budget 0")
	_, err = tb.Open("fake.dms", true, Options{Budget: 1, DirectIO: 3})
	wantCode(t, err, InvalidArgument, "direct_io 3")
	_, err = tb.Open("fake.dms", true, Options{Budget: 1, InFlight: -1})
	wantCode(t, err, InvalidArgument, "in_flight -1")
	_, err = tb.Open("missing.dms", true, Options{Budget: 1})
	wantCode(t, err, IO, "missing.dms")
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Code
	}{
		{nil, OK},
		{fmt.Errorf("x: %w", context.Canceled), Canceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), Timeout},
		{&Error{Code: Budget, Err: errors.New("b")}, Budget},
		{errors.New("plain"), NotFound},
	} {
		if got := Classify(c.err, NotFound); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if s := Code(-99).String(); !strings.Contains(s, "-99") {
		t.Errorf("unknown code string %q", s)
	}
}

func TestBadHandles(t *testing.T) {
	tb, h, _, _ := setup(t)
	_, err := tb.Tasks(0)
	wantCode(t, err, BadHandle, "0")
	_, err = tb.Tasks(12345)
	wantCode(t, err, BadHandle, "12345")
	if _, err := tb.Switch(h, "traffic", true); err != nil {
		t.Fatal(err)
	}
	v, err := tb.Acquire(h)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tb.Tasks(v)
	wantCode(t, err, BadHandle, "views handle, not a runtime")
	_, err = tb.Tensor(h, "l0.w", true)
	wantCode(t, err, BadHandle, "runtime handle, not a views")
	err = tb.Cancel(h)
	wantCode(t, err, BadHandle, "pending switch")
	err = tb.CancelPrefetch(v)
	wantCode(t, err, BadHandle, "prefetch")
}

func TestSwitchAndTasks(t *testing.T) {
	tb, h, _, _ := setup(t)
	names, err := tb.Tasks(h)
	if err != nil || len(names) != 3 {
		t.Fatalf("tasks %v, %v", names, err)
	}
	n, err := tb.TaskName(h, 2)
	if err != nil || n != "obstacles" {
		t.Fatalf("task 2 = %q, %v", n, err)
	}
	_, err = tb.TaskName(h, 3)
	wantCode(t, err, InvalidArgument, "index 3", "3 tasks")
	_, err = tb.Acquire(h)
	wantCode(t, err, NoTask)
	_, err = tb.Switch(h, "bicycles", true)
	wantCode(t, err, NotFound, "bicycles", "traffic")
	_, err = tb.Switch(h, "", false)
	wantCode(t, err, InvalidArgument, "NULL")
	st, err := tb.Switch(h, "vehicles", true)
	if err != nil || st.Task != "vehicles" || st.BytesRead != 4096 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	v, err := tb.Acquire(h)
	if err != nil {
		t.Fatal(err)
	}
	if task, _ := tb.ViewsTask(v); task != "vehicles" {
		t.Fatalf("views task %q", task)
	}
	b, nv, err := tb.Resident(h)
	if err != nil || b != 4096 || nv != 1 {
		t.Fatalf("resident %d %d %v", b, nv, err)
	}
}

// tensorFromDesc rebuilds a view from the C description, reading only the
// memory the description points at, as C code would.
func tensorFromDesc(d ViewDesc) *bsr.View {
	v := &bsr.View{
		Rows: int(d.Rows), Cols: int(d.Cols), R: int(d.R), C: int(d.C),
		Indptr:  unsafe.Slice((*int32)(d.Indptr), d.BlockRows+1),
		Indices: unsafe.Slice((*int32)(d.Indices), d.NNZB),
		Slots:   unsafe.Slice((*int32)(d.Slots), d.NNZB),
		Stride:  int(d.Stride),
	}
	if d.Arena != nil {
		v.Arena = unsafe.Slice((*float32)(d.Arena), d.ArenaLen)
	}
	return v
}

func TestTensorDescription(t *testing.T) {
	tb, h, fs, al := setup(t)
	if _, err := tb.Switch(h, "traffic", true); err != nil {
		t.Fatal(err)
	}
	v, err := tb.Acquire(h)
	if err != nil {
		t.Fatal(err)
	}
	names, err := tb.TensorNames(v)
	if err != nil || len(names) != 2 {
		t.Fatalf("names %v %v", names, err)
	}
	for _, name := range names {
		d, err := tb.Tensor(v, name, true)
		if err != nil {
			t.Fatal(err)
		}
		want := fs.tasks["traffic"].tensors[name]
		got := tensorFromDesc(d)
		if d.BlockRows != int64(want.BlockRows()) || d.BlockCols != int64(want.BlockCols()) || d.NNZB != int64(want.NNZB()) {
			t.Fatalf("%s: desc %+v vs view %v", name, d, want)
		}
		if fmt.Sprint(got.Indptr) != fmt.Sprint(want.Indptr) || fmt.Sprint(got.Indices) != fmt.Sprint(want.Indices) || fmt.Sprint(got.Slots) != fmt.Sprint(want.Slots) {
			t.Fatalf("%s: structure differs", name)
		}
		if unsafe.Pointer(unsafe.SliceData(got.Indptr)) == unsafe.Pointer(unsafe.SliceData(want.Indptr)) {
			t.Fatalf("%s: indptr not copied out of the backend's memory", name)
		}
		blocks := unsafe.Slice((*uintptr)(d.Blocks), d.NNZB)
		for k := range want.Indices {
			if blocks[k] != uintptr(unsafe.Pointer(&want.Block(k)[0])) {
				t.Fatalf("%s: block %d pointer %#x, want %p", name, k, blocks[k], &want.Block(k)[0])
			}
		}
		again, err := tb.Tensor(v, name, true)
		if err != nil || again.Indptr != d.Indptr {
			t.Fatalf("%s: second call did not reuse the copy (%v)", name, err)
		}
	}
	if al.count() != 2 {
		t.Fatalf("%d allocations live, want 2", al.count())
	}
	_, err = tb.Tensor(v, "l9.w", true)
	wantCode(t, err, NotFound, "l9.w", "traffic")
	_, err = tb.Tensor(v, "", false)
	wantCode(t, err, InvalidArgument, "NULL")
	if err := tb.Release(v); err != nil {
		t.Fatal(err)
	}
	if al.count() != 0 || fs.refs != 0 || fs.released != 1 {
		t.Fatalf("after release: %d allocations, %d refs, %d releases", al.count(), fs.refs, fs.released)
	}
	_, err = tb.Tensor(v, "l0.w", true)
	wantCode(t, err, BadHandle, "unknown")
	wantCode(t, tb.Release(v), BadHandle)
}

func TestAllocFailure(t *testing.T) {
	tb, h, _, al := setup(t)
	if _, err := tb.Switch(h, "traffic", true); err != nil {
		t.Fatal(err)
	}
	v, _ := tb.Acquire(h)
	al.fail = true
	_, err := tb.Tensor(v, "l0.w", true)
	wantCode(t, err, Internal, "out of memory", "l0.w")
}

// dense multiplies a view out in float64 for a reference.
func denseLinear(v *bsr.View, x []float32, n int, bias []float32) []float64 {
	m := v.Contiguous()
	y := make([]float64, n*v.Rows)
	for i := 0; i < m.BlockRows(); i++ {
		for k := m.Indptr[i]; k < m.Indptr[i+1]; k++ {
			j := int(m.Indices[k])
			b := m.Block(int(k))
			for r := 0; r < m.R && i*m.R+r < v.Rows; r++ {
				for c := 0; c < m.C && j*m.C+c < v.Cols; c++ {
					for s := 0; s < n; s++ {
						y[s*v.Rows+i*m.R+r] += float64(b[r*m.C+c]) * float64(x[s*v.Cols+j*m.C+c])
					}
				}
			}
		}
	}
	if bias != nil {
		for s := 0; s < n; s++ {
			for r := range bias {
				y[s*v.Rows+r] += float64(bias[r])
			}
		}
	}
	return y
}

func ptr(s []float32) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(s)) }

func TestLinearAndMul(t *testing.T) {
	tb, h, fs, _ := setup(t)
	if _, err := tb.Switch(h, "obstacles", true); err != nil {
		t.Fatal(err)
	}
	v, _ := tb.Acquire(h)
	w := fs.tasks["obstacles"].tensors["l1.w"]
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 3
	x := make([]float32, n*w.Cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	bias := make([]float32, w.Rows)
	for i := range bias {
		bias[i] = float32(i)
	}
	y := make([]float32, n*w.Rows)
	args := LayerArgs{X: ptr(x), XLen: int64(len(x)), Y: ptr(y), YLen: int64(len(y)), Bias: ptr(bias), BiasLen: int64(len(bias)), N: n, Threads: 1}
	if err := tb.Linear(v, "l1.w", true, args); err != nil {
		t.Fatal(err)
	}
	ref := denseLinear(w, x, n, bias)
	for i := range y {
		if math.Abs(float64(y[i])-ref[i]) > 1e-4*(1+math.Abs(ref[i])) {
			t.Fatalf("y[%d] = %v, want %v", i, y[i], ref[i])
		}
	}
	// Accumulate doubles the product plus bias.
	acc := args
	acc.Flags = FlagAccumulate
	if err := tb.Linear(v, "l1.w", true, acc); err != nil {
		t.Fatal(err)
	}
	for i := range y {
		if math.Abs(float64(y[i])-2*ref[i]) > 1e-4*(1+math.Abs(ref[i])) {
			t.Fatalf("accumulated y[%d] = %v, want %v", i, y[i], 2*ref[i])
		}
	}
	// Mul with X = x^T (cols x n) gives Y^T without bias.
	xt := make([]float32, len(x))
	for s := 0; s < n; s++ {
		for c := 0; c < w.Cols; c++ {
			xt[c*n+s] = x[s*w.Cols+c]
		}
	}
	ym := make([]float32, len(y))
	margs := LayerArgs{X: ptr(xt), XLen: int64(len(xt)), Y: ptr(ym), YLen: int64(len(ym)), N: n}
	if err := tb.Mul(v, "l1.w", true, margs); err != nil {
		t.Fatal(err)
	}
	for s := 0; s < n; s++ {
		for r := 0; r < w.Rows; r++ {
			want := ref[s*w.Rows+r] - float64(bias[r])
			if math.Abs(float64(ym[r*n+s])-want) > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("mul y[%d,%d] = %v, want %v", r, s, ym[r*n+s], want)
			}
		}
	}
	bad := func(mod func(a *LayerArgs), code Code, parts ...string) {
		t.Helper()
		a := args
		mod(&a)
		wantCode(t, tb.Linear(v, "l1.w", true, a), code, parts...)
	}
	bad(func(a *LayerArgs) { a.X = nil }, InvalidArgument, "x", "NULL")
	bad(func(a *LayerArgs) { a.Y = nil }, InvalidArgument, "y", "NULL")
	bad(func(a *LayerArgs) { a.XLen-- }, BufferTooSmall, "x", fmt.Sprint(len(x)-1), fmt.Sprint(len(x)))
	bad(func(a *LayerArgs) { a.YLen = 1 }, BufferTooSmall, "y")
	bad(func(a *LayerArgs) { a.XLen = -1 }, InvalidArgument, "negative")
	bad(func(a *LayerArgs) { a.BiasLen++ }, InvalidArgument, "bias", fmt.Sprint(w.Rows))
	bad(func(a *LayerArgs) { a.Bias = nil }, InvalidArgument, "bias is NULL")
	bad(func(a *LayerArgs) { a.N = 0 }, InvalidArgument, "n = 0")
	bad(func(a *LayerArgs) { a.Flags = 6 }, InvalidArgument, "flags")
	bad(func(a *LayerArgs) { a.Threads = -2 }, InvalidArgument, "threads")
	bad(func(a *LayerArgs) { a.X = unsafe.Add(a.X, 1) }, InvalidArgument, "aligned")
	wantCode(t, tb.Linear(v, "nope", true, args), NotFound, "nope")
	wantCode(t, tb.Mul(v, "l1.w", true, args), InvalidArgument, "no bias")
	if err := tb.Release(v); err != nil {
		t.Fatal(err)
	}
	wantCode(t, tb.Linear(v, "l1.w", true, args), BadHandle)
}

func TestDenseAndStrings(t *testing.T) {
	tb, h, _, _ := setup(t)
	tb.Switch(h, "traffic", true)
	v, _ := tb.Acquire(h)
	n, err := tb.Dense(v, "l0.b", true, nil, 0)
	if err != nil || n != 3 {
		t.Fatalf("size query %d %v", n, err)
	}
	dst := make([]float32, 2)
	n, err = tb.Dense(v, "l0.b", true, ptr(dst), 2)
	wantCode(t, err, BufferTooSmall, "3")
	if n != 3 {
		t.Fatalf("needed %d", n)
	}
	dst = make([]float32, 4)
	if _, err := tb.Dense(v, "l0.b", true, ptr(dst), 4); err != nil || dst[2] != 3 {
		t.Fatalf("dense %v %v", dst, err)
	}
	_, err = tb.Dense(v, "l0.c", true, nil, 0)
	wantCode(t, err, NotFound, "l0.c")

	var need int64
	buf := make([]byte, 8)
	wantCode(t, CopyString(unsafe.Pointer(&buf[0]), 8, "vehicles", &need), BufferTooSmall, "9")
	if need != 9 || buf[0] != 0 {
		t.Fatalf("need %d buf %q", need, buf)
	}
	buf = make([]byte, 9)
	if err := CopyString(unsafe.Pointer(&buf[0]), 9, "vehicles", &need); err != nil || string(buf[:8]) != "vehicles" || buf[8] != 0 {
		t.Fatalf("copy %q %v", buf, err)
	}
	if err := CopyString(nil, 0, "abc", &need); err != nil || need != 4 {
		t.Fatalf("size query %d %v", need, err)
	}
	wantCode(t, CopyString(nil, 4, "abc", &need), InvalidArgument)
	wantCode(t, CopyString(nil, 0, "abc", nil), InvalidArgument)
	wantCode(t, CopyString(unsafe.Pointer(&buf[0]), -1, "abc", nil), InvalidArgument)
}

func TestCloseReleasesEverything(t *testing.T) {
	tb, h, fs, al := setup(t)
	tb.Switch(h, "traffic", true)
	v1, _ := tb.Acquire(h)
	v2, _ := tb.Acquire(h)
	if _, err := tb.Tensor(v1, "l0.w", true); err != nil {
		t.Fatal(err)
	}
	pf, err := tb.Prefetch(h, "vehicles", true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tb.Begin(h, "obstacles", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Close(h); err != nil {
		t.Fatal(err)
	}
	if !fs.closed || fs.refs != 0 || al.count() != 0 || tb.Len() != 0 {
		t.Fatalf("after close: closed %v refs %d allocs %d handles %d", fs.closed, fs.refs, al.count(), tb.Len())
	}
	for _, hh := range []uint64{v1, v2} {
		_, err := tb.Tensor(hh, "l0.w", true)
		wantCode(t, err, BadHandle)
	}
	wantCode(t, tb.WaitPrefetch(pf), BadHandle)
	_, err = tb.Wait(p)
	wantCode(t, err, BadHandle)
	wantCode(t, tb.Close(h), BadHandle)
	_, err = tb.Switch(h, "traffic", true)
	wantCode(t, err, BadHandle)
	_, err = tb.Acquire(h)
	wantCode(t, err, BadHandle)
}

func TestPipelinedSwitch(t *testing.T) {
	tb, h, fs, _ := setup(t)
	fs.gate = make(chan struct{})
	p, err := tb.Begin(h, "vehicles", true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tb.Begin(h, "trains", true)
	wantCode(t, err, NotFound, "trains")
	go close(fs.gate)
	if err := tb.WaitLayer(p, 0); err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitTensor(p, "l1.w", true); err != nil {
		t.Fatal(err)
	}
	wantCode(t, tb.WaitTensor(p, "l7.w", true), NotFound, "l7.w")
	wantCode(t, tb.WaitLayer(p, -1), InvalidArgument)
	wantCode(t, tb.WaitTensor(p, "", false), InvalidArgument)
	for range 2 {
		st, err := tb.Wait(p)
		if err != nil || st.Task != "vehicles" {
			t.Fatalf("wait %+v %v", st, err)
		}
	}
	if err := tb.FreePending(p); err != nil {
		t.Fatal(err)
	}
	_, err = tb.Wait(p)
	wantCode(t, err, BadHandle)

	// A canceled switch reports Canceled and leaves the old task.
	fs.gate = make(chan struct{})
	p, err = tb.Begin(h, "traffic", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Cancel(p); err != nil {
		t.Fatal(err)
	}
	_, err = tb.Wait(p)
	wantCode(t, err, Canceled, "traffic")
	wantCode(t, tb.WaitLayer(p, 0), Canceled)
	v, _ := tb.Acquire(h)
	if task, _ := tb.ViewsTask(v); task != "vehicles" {
		t.Fatalf("after cancel the published task is %q", task)
	}
	tb.Release(v)
	if err := tb.Close(h); err != nil {
		t.Fatal(err)
	}
}

func TestPrefetch(t *testing.T) {
	tb, h, _, _ := setup(t)
	pf, err := tb.Prefetch(h, "traffic", true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tb.Prefetch(h, "nope", true)
	wantCode(t, err, NotFound)
	if err := tb.CancelPrefetch(pf); err != nil {
		t.Fatal(err)
	}
	wantCode(t, tb.WaitPrefetch(pf), Canceled, "traffic")
	if err := tb.FreePrefetch(pf); err != nil {
		t.Fatal(err)
	}
	wantCode(t, tb.FreePrefetch(pf), BadHandle)
	if err := tb.Close(h); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentUseAndRelease runs products on one views handle from many
// goroutines while another releases it: every call either succeeds or gets
// BadHandle, nothing reads freed memory (run with -race).
func TestConcurrentUseAndRelease(t *testing.T) {
	tb, h, fs, al := setup(t)
	tb.Switch(h, "traffic", true)
	w := fs.tasks["traffic"].tensors["l0.w"]
	for round := 0; round < 20; round++ {
		v, err := tb.Acquire(h)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				x := make([]float32, w.Cols)
				y := make([]float32, w.Rows)
				for i := 0; i < 5; i++ {
					err := tb.Linear(v, "l0.w", true, LayerArgs{X: ptr(x), XLen: int64(len(x)), Y: ptr(y), YLen: int64(len(y)), N: 1, Threads: 1})
					if err != nil {
						errs <- err
						return
					}
					if d, err := tb.Tensor(v, "l1.w", true); err == nil {
						_ = tensorFromDesc(d).Indptr[0]
					}
				}
			}()
		}
		if err := tb.Release(v); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if CodeOf(err) != BadHandle {
				t.Fatalf("concurrent call failed with %v", err)
			}
		}
	}
	if al.count() != 0 || fs.refs != 0 {
		t.Fatalf("leak: %d allocations, %d refs", al.count(), fs.refs)
	}
	tb.Close(h)
}

func TestPendingViews(t *testing.T) {
	tb, h, fs, al := setup(t)
	fs.gate = make(chan struct{})
	p, err := tb.Begin(h, "vehicles", true)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tb.PendingViews(p)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := tb.Tensor(v, "l1.w", true)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("tensor of a switch still loading returned early (%v)", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(fs.gate)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if task, _ := tb.ViewsTask(v); task != "vehicles" {
		t.Fatalf("pending views task %q", task)
	}
	if _, err := tb.Wait(p); err != nil {
		t.Fatal(err)
	}
	tb.FreePending(p)
	// The views outlive the pending handle.
	if _, err := tb.Tensor(v, "l0.w", true); err != nil {
		t.Fatal(err)
	}
	_, err = tb.PendingViews(p)
	wantCode(t, err, BadHandle)
	if err := tb.Release(v); err != nil {
		t.Fatal(err)
	}

	// A canceled switch: its views fail with the switch's error.
	fs.gate = make(chan struct{})
	p, _ = tb.Begin(h, "traffic", true)
	v, err = tb.PendingViews(p)
	if err != nil {
		t.Fatal(err)
	}
	tb.Cancel(p)
	_, err = tb.Tensor(v, "l0.w", true)
	wantCode(t, err, Canceled, "traffic")
	x := make([]float32, 64)
	y := make([]float32, 64)
	wantCode(t, tb.Linear(v, "l0.w", true, LayerArgs{X: ptr(x), XLen: 64, Y: ptr(y), YLen: 64, N: 1}), Canceled)
	tb.Wait(p)
	wantCode(t, tb.Linear(v, "l0.w", true, LayerArgs{X: ptr(x), XLen: 64, Y: ptr(y), YLen: 64, N: 1}), Canceled, "failed switch")
	tb.Release(v)
	if err := tb.Close(h); err != nil {
		t.Fatal(err)
	}
	if fs.refs != 0 || al.count() != 0 {
		t.Fatalf("leak: %d refs, %d allocations", fs.refs, al.count())
	}
}
