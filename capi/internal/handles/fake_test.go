package handles

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dmsparse/dmsparse/bsr"
)

// goAlloc is a test Allocator over Go memory that counts live allocations.
type goAlloc struct {
	mu   sync.Mutex
	live map[unsafe.Pointer][]uint64
	fail bool
}

func newGoAlloc() *goAlloc { return &goAlloc{live: map[unsafe.Pointer][]uint64{}} }

func (a *goAlloc) Alloc(size int) unsafe.Pointer {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return nil
	}
	b := make([]uint64, (size+7)/8)
	p := unsafe.Pointer(&b[0])
	a.live[p] = b
	return p
}

func (a *goAlloc) Free(p unsafe.Pointer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.live[p]; !ok {
		panic(fmt.Sprintf("free of unknown pointer %p", p))
	}
	delete(a.live, p)
}

func (a *goAlloc) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.live)
}

// fakeTask is one task of the fake store: BSR tensors in a shared arena.
type fakeTask struct {
	names   []string
	tensors map[string]*bsr.View
	dense   map[string][]float32
	layers  map[string]int
}

// fakeStore is a Backend over in-memory tasks.
type fakeStore struct {
	tasks    map[string]*fakeTask
	order    []string
	mu       sync.Mutex
	current  string
	refs     int
	released int
	closed   bool
	// gate, when set, holds pipelined switches until closed.
	gate chan struct{}
	// releasing, when set, is called at the start of every views Release.
	releasing func()
}

var errFakeNotFound = errors.New("fake: no such thing")

// randomView builds a rows x cols view with r x c blocks at about half
// density, its blocks scattered over a larger arena with padding stride.
func randomView(rng *rand.Rand, rows, cols, r, c int) *bsr.View {
	br, bc := (rows+r-1)/r, (cols+c-1)/c
	indptr := make([]int32, br+1)
	var indices []int32
	for i := 0; i < br; i++ {
		for j := 0; j < bc; j++ {
			if rng.IntN(2) == 0 {
				indices = append(indices, int32(j))
			}
		}
		indptr[i+1] = int32(len(indices))
	}
	stride := r*c + 3
	nslots := len(indices) + 2
	arena := make([]float32, nslots*stride)
	for i := range arena {
		arena[i] = float32(rng.NormFloat64())
	}
	slots := rng.Perm(nslots)[:len(indices)]
	s32 := make([]int32, len(slots))
	for k, s := range slots {
		s32[k] = int32(s)
	}
	// Zero the padding of edge blocks, as a store would.
	v := &bsr.View{Rows: rows, Cols: cols, R: r, C: c, Indptr: indptr, Indices: indices, Arena: arena, Slots: s32, Stride: stride}
	for i := 0; i < br; i++ {
		for k := indptr[i]; k < indptr[i+1]; k++ {
			b := v.Block(int(k))
			for y := 0; y < r; y++ {
				for x := 0; x < c; x++ {
					if i*r+y >= rows || int(indices[k])*c+x >= cols {
						b[y*c+x] = 0
					}
				}
			}
		}
	}
	return v
}

func newFakeStore(seed uint64) *fakeStore {
	rng := rand.New(rand.NewPCG(seed, 1))
	fs := &fakeStore{tasks: map[string]*fakeTask{}}
	for _, name := range []string{"traffic", "vehicles", "obstacles"} {
		t := &fakeTask{tensors: map[string]*bsr.View{}, dense: map[string][]float32{}, layers: map[string]int{}}
		for l, tn := range []string{"l0.w", "l1.w"} {
			t.names = append(t.names, tn)
			t.tensors[tn] = randomView(rng, 19+l*5, 23, 4, 8)
			t.layers[tn] = l
		}
		t.dense["l0.b"] = []float32{1, 2, 3}
		fs.tasks[name] = t
		fs.order = append(fs.order, name)
	}
	return fs
}

func (f *fakeStore) Tasks() []string { return append([]string(nil), f.order...) }

func (f *fakeStore) Switch(ctx context.Context, task string) (Stats, error) {
	if _, ok := f.tasks[task]; !ok {
		return Stats{}, fmt.Errorf("fake switch %q: %w", task, errFakeNotFound)
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	f.mu.Lock()
	f.current = task
	f.mu.Unlock()
	return Stats{Task: task, BytesRead: 4096, Versions: 1, Total: time.Millisecond}, nil
}

type fakePending struct {
	f    *fakeStore
	ctx  context.Context
	task string
	done chan struct{}
	st   Stats
	err  error
}

func (f *fakeStore) Begin(ctx context.Context, task string) (Pending, error) {
	p := &fakePending{f: f, ctx: ctx, task: task, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if f.gate != nil {
			select {
			case <-f.gate:
			case <-ctx.Done():
				p.err = fmt.Errorf("fake pipelined switch to %q: %w", task, ctx.Err())
				return
			}
		}
		p.st, p.err = f.Switch(ctx, task)
	}()
	return p, nil
}

func (p *fakePending) WaitLayer(ctx context.Context, l int) error {
	if l >= len(p.f.tasks[p.task].names) {
		return fmt.Errorf("fake: layer %d beyond the task's layers", l)
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *fakePending) WaitTensor(ctx context.Context, name string) error {
	if _, ok := p.f.tasks[p.task].tensors[name]; !ok {
		return fmt.Errorf("fake: tensor %q: %w", name, errFakeNotFound)
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *fakePending) Acquire() (Views, error) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.f.refs++
	return &fakeViews{f: p.f, task: p.task}, nil
}

func (p *fakePending) Wait() (Stats, error) {
	<-p.done
	return p.st, p.err
}

type fakePrefetch struct {
	once   sync.Once
	cancel chan struct{}
}

func (f *fakeStore) Prefetch(ctx context.Context, task string) (Prefetching, error) {
	return &fakePrefetch{cancel: make(chan struct{})}, nil
}

func (p *fakePrefetch) Cancel() { p.once.Do(func() { close(p.cancel) }) }

func (p *fakePrefetch) Wait() error {
	<-p.cancel
	return fmt.Errorf("fake prefetch: %w", context.Canceled)
}

type fakeViews struct {
	f        *fakeStore
	task     string
	released atomic.Bool
}

func (f *fakeStore) Acquire() (Views, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current == "" {
		return nil, errors.New("fake: nothing published")
	}
	f.refs++
	return &fakeViews{f: f, task: f.current}, nil
}

func (v *fakeViews) Task() string      { return v.task }
func (v *fakeViews) Tensors() []string { return v.f.tasks[v.task].names }
func (v *fakeViews) Tensor(name string) (*bsr.View, error) {
	if v.released.Load() {
		panic("fake: tensor of released views")
	}
	t, ok := v.f.tasks[v.task].tensors[name]
	if !ok {
		return nil, fmt.Errorf("fake tensor %q: %w", name, errFakeNotFound)
	}
	return t, nil
}
func (v *fakeViews) Dense(name string) ([]float32, []int, error) {
	d, ok := v.f.tasks[v.task].dense[name]
	if !ok {
		return nil, nil, fmt.Errorf("fake dense %q: %w", name, errFakeNotFound)
	}
	return d, []int{len(d)}, nil
}
func (v *fakeViews) Release() {
	if v.released.Swap(true) {
		panic("fake: views released twice")
	}
	if v.f.releasing != nil {
		v.f.releasing()
	}
	v.f.mu.Lock()
	v.f.refs--
	v.f.released++
	v.f.mu.Unlock()
}

func (f *fakeStore) Resident() (int64, int) { return 4096, 1 }

func (f *fakeStore) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("fake: closed twice")
	}
	if f.refs != 0 {
		return fmt.Errorf("fake: closed with %d views held", f.refs)
	}
	f.closed = true
	return nil
}
