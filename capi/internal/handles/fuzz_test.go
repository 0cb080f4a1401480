package handles

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/dmsparse/dmsparse/bsr"
)

// FuzzCallSequence drives the table with call sequences decoded from the
// input, with handles picked from every live, stale, zero and wrong-kind
// handle seen so far, the way a buggy C caller would. No call may panic,
// every failure must carry a status code other than Internal, and closing
// what is left must free every C allocation and view reference.
func FuzzCallSequence(f *testing.F) {
	f.Add([]byte{0, 2, 0, 3, 1, 4, 2, 5, 3, 9, 4, 6, 0, 1, 0})
	f.Add([]byte{0, 2, 1, 3, 0, 4, 2, 10, 0, 11, 1, 12, 2, 7, 3, 8, 4, 1, 0})
	f.Add([]byte{0, 0, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 13, 1, 14, 2})
	f.Fuzz(runProg)
}

// runProg runs one decoded call sequence; see FuzzCallSequence.
func runProg(t *testing.T, prog []byte) {
	if len(prog) > 400 {
		prog = prog[:400]
	}
	var stores []*fakeStore
	al := newGoAlloc()
	tb := New(func(path string, opt Options) (Backend, error) {
		if path != "fake.dms" {
			return nil, errors.New("no such store")
		}
		fs := newFakeStore(11)
		stores = append(stores, fs)
		return fs, nil
	}, bsr.Linear, bsr.Mul, al)
	handles := []uint64{0, 1 << 40}
	var runtimes []uint64
	pick := func(b byte) uint64 { return handles[int(b)%len(handles)] }
	names := []string{"traffic", "vehicles", "obstacles", "nope", ""}
	tensors := []string{"l0.w", "l1.w", "l9.w", ""}
	x := make([]float32, 64*3)
	y := make([]float32, 64*3)
	check := func(err error) {
		if err != nil && CodeOf(err) == Internal {
			t.Fatalf("call failed without a specific code: %v", err)
		}
	}
	for i := 0; i+1 < len(prog); i += 2 {
		op, arg := prog[i]%16, prog[i+1]
		h := pick(arg)
		switch op {
		case 0:
			rt, err := tb.Open("fake.dms", arg%5 != 0, Options{Budget: int64(arg%3) * 4096})
			check(err)
			if err == nil {
				runtimes = append(runtimes, rt)
				handles = append(handles, rt)
			}
		case 1:
			check(tb.Close(h))
		case 2:
			_, err := tb.Switch(h, names[int(arg)%len(names)], arg%7 != 0)
			check(err)
		case 3:
			v, err := tb.Acquire(h)
			check(err)
			if err == nil {
				handles = append(handles, v)
			}
		case 4:
			check(tb.Release(h))
		case 5:
			d, err := tb.Tensor(h, tensors[int(arg)%len(tensors)], true)
			check(err)
			if err == nil && d.NNZB > 0 {
				_ = unsafe.Slice((*int32)(d.Indices), d.NNZB)[d.NNZB-1]
			}
		case 6, 7:
			n := int64(arg%4) + int64(arg>>6)
			a := LayerArgs{X: ptr(x), XLen: min(int64(arg)*3, int64(len(x))), Y: ptr(y), YLen: min(int64(arg)*5, int64(len(y))), N: n, Threads: int32(arg % 3)}
			if arg%9 == 0 {
				a.X = nil
			}
			if op == 6 {
				check(tb.Linear(h, tensors[int(arg)%len(tensors)], true, a))
			} else {
				check(tb.Mul(h, tensors[int(arg)%len(tensors)], true, a))
			}
		case 8:
			p, err := tb.Begin(h, names[int(arg)%len(names)], true)
			check(err)
			if err == nil {
				handles = append(handles, p)
			}
		case 9:
			check(tb.WaitLayer(h, int64(arg%4)-1))
		case 10:
			_, err := tb.Wait(h)
			check(err)
		case 11:
			check(tb.Cancel(h))
			check(tb.FreePending(h))
		case 12:
			p, err := tb.Prefetch(h, names[int(arg)%len(names)], true)
			check(err)
			if err == nil {
				handles = append(handles, p)
			}
		case 13:
			check(tb.CancelPrefetch(h))
			check(tb.WaitPrefetch(h))
			check(tb.FreePrefetch(h))
		case 15:
			v, err := tb.PendingViews(h)
			check(err)
			if err == nil {
				handles = append(handles, v)
			}
		case 14:
			_, err := tb.Dense(h, "l0.b", true, nil, 0)
			check(err)
			_, err = tb.TaskName(h, int64(arg%5))
			check(err)
		}
	}
	for _, rt := range runtimes {
		if err := tb.Close(rt); err != nil && CodeOf(err) != BadHandle {
			t.Fatalf("final close: %v", err)
		}
	}
	if al.count() != 0 || tb.Len() != 0 {
		t.Fatalf("after closing everything: %d C allocations, %d handles", al.count(), tb.Len())
	}
	for i, fs := range stores {
		if fs.refs != 0 || !fs.closed {
			t.Fatalf("store %d: %d view references, closed %v", i, fs.refs, fs.closed)
		}
	}
}
