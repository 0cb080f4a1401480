package handles

import (
	"testing"
	"time"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/diffload"
)

// TestLayerSizeOverflow: a batch size whose product with the tensor's
// shape overflows int64 must be refused before any kernel runs, not wrap
// to a small size that the buffer checks accept.
func TestLayerSizeOverflow(t *testing.T) {
	tb, h, _, _ := setup(t)
	if _, err := tb.Switch(h, "obstacles", true); err != nil {
		t.Fatal(err)
	}
	v, _ := tb.Acquire(h)
	x := make([]float32, 64)
	y := make([]float32, 64)
	for _, n := range []int64{1 << 62, 1 << 61, 1 << 40} {
		args := LayerArgs{X: ptr(x), XLen: int64(len(x)), Y: ptr(y), YLen: int64(len(y)), N: n}
		wantCode(t, tb.Linear(v, "l1.w", true, args), InvalidArgument, "n =")
		wantCode(t, tb.Mul(v, "l1.w", true, args), InvalidArgument, "n =")
	}
	tb.Release(v)
}

// TestPendingViewsAfterSwitchAway: views of a finished pending switch
// whose task has since been switched away from (and its blocks evicted)
// must not be handed out.
func TestPendingViewsAfterSwitchAway(t *testing.T) {
	path, _, spec := realStore(t)
	s, err := diffload.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	budget := largestTask(s.Manifest())
	s.Close()
	tb := New(OpenDiffload, bsr.Linear, bsr.Mul, newGoAlloc())
	h, err := tb.Open(path, true, Options{Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close(h)
	a, b := spec.Tasks[0], spec.Tasks[1]
	p, err := tb.Begin(h, a, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Wait(p); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Switch(h, b, true); err != nil {
		t.Fatal(err)
	}
	v, err := tb.PendingViews(p)
	if err == nil {
		tb.Release(v)
		t.Fatalf("views of the finished switch to %q after switching to %q were handed out", a, b)
	}
}

// TestCloseDuringRelease: a runtime Close that overlaps a views Release
// must wait for that release instead of closing the backend while the views
// are still held (which fails the close and leaks the pool).
func TestCloseDuringRelease(t *testing.T) {
	tb, h, fs, al := setup(t)
	if _, err := tb.Switch(h, "obstacles", true); err != nil {
		t.Fatal(err)
	}
	v, _ := tb.Acquire(h)
	if _, err := tb.Tensor(v, "l1.w", true); err != nil {
		t.Fatal(err)
	}
	inRelease := make(chan struct{})
	fs.releasing = func() {
		close(inRelease)
		time.Sleep(50 * time.Millisecond)
	}
	released := make(chan error, 1)
	go func() { released <- tb.Release(v) }()
	<-inRelease
	if err := tb.Close(h); err != nil {
		t.Fatalf("close overlapping a release: %v", err)
	}
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if fs.refs != 0 || al.count() != 0 || tb.Len() != 0 {
		t.Fatalf("leak: %d refs, %d allocations, %d handles", fs.refs, al.count(), tb.Len())
	}
}
