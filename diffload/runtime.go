package diffload

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dmsparse/dmsparse/bsr"
)

// DirectMode selects whether the runtime reads with O_DIRECT.
type DirectMode int

const (
	// DirectAuto uses O_DIRECT when the filesystem accepts it and falls back
	// to buffered reads with posix_fadvise(DONTNEED) otherwise, saying so
	// in SwitchStats.FallbackReason.
	DirectAuto DirectMode = iota
	// DirectForce fails Open when O_DIRECT is refused.
	DirectForce
	// DirectOff always uses buffered reads.
	DirectOff
)

// Defaults for Options fields left zero.
const (
	// DefaultCoalesceGap is the largest gap between needed versions that a
	// read spans instead of issuing another request.
	DefaultCoalesceGap = 64 << 10
	// DefaultInFlight is the number of read requests kept in flight.
	DefaultInFlight = 16
	// DefaultRequestSize is the largest read request.
	DefaultRequestSize = 1 << 20
	// maxIOV is IOV_MAX on Linux: the most buffers one preadv accepts.
	maxIOV = 1024
)

// Options configures a Runtime.
type Options struct {
	// Budget is the pool size in bytes; the pool never holds more. It must
	// cover the largest task's distinct block versions.
	Budget int64
	// Policy chooses eviction victims; nil means LRU.
	Policy EvictionPolicy
	// CoalesceGap merges two runs of needed versions into one read when the
	// bytes between them are at most this many (the gap lands in scratch
	// memory, never in a live slot). Zero means DefaultCoalesceGap; a
	// negative value never merges. A platform profile supplies the value
	// at which reading the gap costs less than another request.
	CoalesceGap int64
	// InFlight is the number of reader goroutines, hence of requests in
	// flight. Zero means DefaultInFlight.
	InFlight int
	// RequestSize caps the bytes of one read request (rounded down to whole
	// slots, at least one). Zero means DefaultRequestSize.
	RequestSize int64
	// DirectIO selects O_DIRECT use.
	DirectIO DirectMode

	// openDirect replaces the O_DIRECT open in tests (fault injection).
	openDirect func(path string) (*os.File, error)
}

var (
	// ErrNoTask is wrapped by errors about a task name the store lacks.
	ErrNoTask = errors.New("no such task")
	// ErrNotPublished is returned by Acquire when no task is published
	// (before the first switch, or while a switch that had to retire the
	// published task to stay within the budget is running).
	ErrNotPublished = errors.New("no task published")
	// ErrClosed is returned by calls on a closed Runtime.
	ErrClosed = errors.New("runtime closed")
	// errDirectRefused marks an O_DIRECT open the filesystem refused.
	errDirectRefused = errors.New("filesystem refuses O_DIRECT")
)

// SwitchStats reports one switch (or prefetch).
type SwitchStats struct {
	// Task is the target task.
	Task string
	// BytesRead counts every byte read, including coalesced gaps.
	BytesRead int64
	// GapBytes counts the bytes read only to bridge gaps between extents.
	GapBytes int64
	// Requests is the number of pread/preadv calls issued (short reads
	// retried inside one request are not counted again).
	Requests int
	// Buffers is the number of memory buffers those requests filled: one
	// per request when a request's slots are contiguous in the pool, more
	// (a preadv) when the free slots it reads into are scattered.
	Buffers int
	// Extents is the number of runs the diff set was coalesced into.
	Extents int
	// Versions is the size of the diff set: block versions read.
	Versions int
	// Reused counts the target's versions that were already resident.
	Reused int
	// Evicted counts the versions evicted to make room.
	Evicted int
	// Plan, Read, Verify, Publish and Total time the phases. Read is the
	// wall time of the I/O phase; Verify is the CRC time summed over the
	// reader goroutines, overlapped with Read.
	Plan, Read, Verify, Publish, Total time.Duration
	// FirstLayerReady is the time from the call until every tensor of the
	// task's lowest layer was verified.
	FirstLayerReady time.Duration
	// Bandwidth is BytesRead / Read in bytes per second.
	Bandwidth float64
	// DirectIO reports whether the reads used O_DIRECT.
	DirectIO bool
	// FallbackReason says why buffered reads were used, if they were.
	FallbackReason string
	// Retired reports that the previously published task had to be
	// unpublished before the new one was ready to stay within the budget.
	Retired bool
	// Restored reports that a failed switch reloaded the retired task.
	Restored bool
}

type slotInfo struct {
	ver     int32 // block version in the slot, -1 when free
	pins    int32 // live task states that use the slot
	valid   bool  // the slot holds verified data
	lastUse uint64
}

type taskInfo struct {
	spec *TaskSpec
	// versions lists the task's distinct block versions in load order:
	// tensors by ascending layer, blocks in storage order.
	versions []uint32
	// order lists tensor indices by ascending layer.
	order  []int
	layers []int
}

// taskState is one materialisation of a task: its views and the slots it
// pins. It is reference counted: the publication holds one reference, every
// TaskViews one, a Pending switch one.
type taskState struct {
	task  *taskInfo
	views map[string]*bsr.View
	slots []int32
	refs  int
}

// Runtime is a budgeted pool of block slots over a store with differential
// task switching. Its methods are safe for concurrent use; switches and
// prefetches run one at a time.
type Runtime struct {
	path      string
	store     *Store
	m         *Manifest
	opt       Options
	policy    EvictionPolicy
	f         *os.File
	direct    bool
	fallback  string
	arenaMem  []byte
	arena     []float32
	slotBytes int64
	nSlots    int
	gapSlots  int
	reqSlots  int
	scratch   [][]byte
	scratchM  []byte
	dense     [][]float32
	tasks     []*taskInfo
	byName    map[string]*taskInfo

	loadSem chan struct{} // one switch or prefetch at a time
	// planning scratch, guarded by loadSem
	posOf []int32
	mark  []uint32
	gen   uint32

	mu       sync.Mutex
	slotOf   []int32
	slots    []slotInfo
	free     []int32
	tick     uint64
	current  *taskState
	live     map[*taskState]struct{}
	released chan struct{}
	prefetch *Prefetch
	closed   bool
}

// Open opens the store at path and maps a pool of opt.Budget bytes. The
// budget must cover the largest task; otherwise the error names both sizes.
func Open(path string, opt Options) (*Runtime, error) {
	s, err := OpenStore(path)
	if err != nil {
		return nil, err
	}
	r, err := open(s, opt)
	if err != nil {
		s.Close()
		return nil, err
	}
	return r, nil
}

func open(s *Store, opt Options) (*Runtime, error) {
	m := s.m
	if opt.Budget < 0 {
		return nil, fmt.Errorf("open %s: pool budget %d B is negative", s.path, opt.Budget)
	}
	r := &Runtime{path: s.path, store: s, m: m, opt: opt, slotBytes: m.SlotBytes,
		byName: map[string]*taskInfo{}, live: map[*taskState]struct{}{}, released: make(chan struct{}),
		loadSem: make(chan struct{}, 1)}
	if r.opt.InFlight <= 0 {
		r.opt.InFlight = DefaultInFlight
	}
	if r.opt.RequestSize <= 0 {
		r.opt.RequestSize = DefaultRequestSize
	}
	if r.opt.CoalesceGap == 0 {
		r.opt.CoalesceGap = DefaultCoalesceGap
	}
	r.reqSlots = int(max(1, min(r.opt.RequestSize/r.slotBytes, maxIOV)))
	if r.opt.CoalesceGap > 0 {
		r.gapSlots = int(min(r.opt.CoalesceGap/r.slotBytes, int64(r.reqSlots)))
	}
	r.policy = opt.Policy
	if r.policy == nil {
		r.policy = LRU{}
	}
	if err := r.policy.Init(m); err != nil {
		return nil, fmt.Errorf("open %s: %w", s.path, err)
	}
	// Per-task load order and the largest task.
	mark := make([]bool, m.NumVersions())
	var largest int64
	largestName := ""
	for i := range m.Tasks {
		t := &m.Tasks[i]
		ti := &taskInfo{spec: t}
		ti.order = make([]int, len(t.Tensors))
		for k := range ti.order {
			ti.order[k] = k
		}
		slices.SortStableFunc(ti.order, func(a, b int) int { return t.Tensors[a].Layer - t.Tensors[b].Layer })
		for _, k := range ti.order {
			ts := &t.Tensors[k]
			if len(ti.layers) == 0 || ti.layers[len(ti.layers)-1] != ts.Layer {
				ti.layers = append(ti.layers, ts.Layer)
			}
			for _, v := range ts.Versions {
				if !mark[v] {
					mark[v] = true
					ti.versions = append(ti.versions, v)
				}
			}
		}
		for _, v := range ti.versions {
			mark[v] = false
		}
		if b := int64(len(ti.versions)) * r.slotBytes; b > largest {
			largest, largestName = b, t.Name
		}
		r.tasks = append(r.tasks, ti)
		r.byName[t.Name] = ti
	}
	if opt.Budget < largest {
		return nil, fmt.Errorf("open %s: pool budget %d B is below task %q's %d B (%d block versions of %d B)",
			s.path, opt.Budget, largestName, largest, largest/r.slotBytes, r.slotBytes)
	}
	// More slots than versions would never be used.
	r.nSlots = int(min(opt.Budget/r.slotBytes, int64(m.NumVersions())))
	// Dense blobs are small: keep them on the heap, verified.
	r.dense = make([][]float32, len(m.Dense))
	for i := range m.Dense {
		v, err := s.readDense(uint32(i))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", s.path, err)
		}
		r.dense[i] = v
	}
	if err := r.openData(); err != nil {
		return nil, err
	}
	var err error
	if r.arenaMem, err = mapArena(max(1, r.nSlots) * int(r.slotBytes)); err != nil {
		r.f.Close()
		return nil, fmt.Errorf("open %s: pool of %d slots: %w", s.path, r.nSlots, err)
	}
	r.arena = bytesF32(r.arenaMem)
	scr := int(r.slotBytes) * max(1, r.gapSlots)
	if r.scratchM, err = mapArena(scr * r.opt.InFlight); err != nil {
		unmapArena(r.arenaMem)
		r.f.Close()
		return nil, fmt.Errorf("open %s: scratch buffers: %w", s.path, err)
	}
	for i := 0; i < r.opt.InFlight; i++ {
		r.scratch = append(r.scratch, r.scratchM[i*scr:(i+1)*scr:(i+1)*scr])
	}
	r.slotOf = make([]int32, m.NumVersions())
	for i := range r.slotOf {
		r.slotOf[i] = -1
	}
	r.posOf = slices.Clone(r.slotOf)
	r.mark = make([]uint32, m.NumVersions())
	r.slots = make([]slotInfo, r.nSlots)
	r.free = make([]int32, r.nSlots)
	for i := range r.slots {
		r.slots[i].ver = -1
		r.free[i] = int32(i)
	}
	return r, nil
}

// openData opens the file descriptor the loader reads from.
func (r *Runtime) openData() error {
	mode := r.opt.DirectIO
	if mode != DirectOff {
		if da := dioAlign(r.path); da > 0 && r.m.Alignment%da != 0 {
			reason := fmt.Sprintf("store alignment %d is not a multiple of the device's direct-I/O alignment %d", r.m.Alignment, da)
			if mode == DirectForce {
				return fmt.Errorf("open %s: %s", r.path, reason)
			}
			r.fallback = reason
		} else {
			od := openDirect
			if r.opt.openDirect != nil {
				od = r.opt.openDirect
			}
			f, err := od(r.path)
			if err == nil {
				r.f, r.direct = f, true
				return nil
			}
			if mode == DirectForce || !errors.Is(err, errDirectRefused) {
				return fmt.Errorf("open %s: %w", r.path, err)
			}
			r.fallback = err.Error()
		}
	} else {
		r.fallback = "O_DIRECT disabled by options"
	}
	f, err := os.Open(r.path)
	if err != nil {
		return fmt.Errorf("open %s: %w", r.path, err)
	}
	r.f = f
	return nil
}

// Manifest returns the store's manifest (shared; do not modify).
func (r *Runtime) Manifest() *Manifest { return r.m }

// Tasks returns the task names in store order.
func (r *Runtime) Tasks() []string {
	out := make([]string, len(r.tasks))
	for i, t := range r.tasks {
		out[i] = t.spec.Name
	}
	return out
}

// TaskBytes returns the pool bytes task needs (its distinct block versions
// times the slot size).
func (r *Runtime) TaskBytes(task string) (int64, error) {
	ti, ok := r.byName[task]
	if !ok {
		return 0, fmt.Errorf("store %s: %w: %q", r.path, ErrNoTask, task)
	}
	return int64(len(ti.versions)) * r.slotBytes, nil
}

// SlotBytes returns the size of one pool slot.
func (r *Runtime) SlotBytes() int64 { return r.slotBytes }

// Capacity returns the number of slots the budget buys.
func (r *Runtime) Capacity() int { return r.nSlots }

// DirectIO reports whether the loader reads with O_DIRECT, and if not, why.
func (r *Runtime) DirectIO() (bool, string) { return r.direct, r.fallback }

// Resident returns the bytes and number of verified block versions in the
// pool.
func (r *Runtime) Resident() (bytes int64, versions int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.slots {
		if r.slots[i].valid {
			versions++
		}
	}
	return int64(versions) * r.slotBytes, versions
}

// inUse returns the bytes of slots holding or receiving a version.
func (r *Runtime) inUse() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(r.nSlots-len(r.free)) * r.slotBytes
}

// Current returns the published task's name, or "" when none is published.
func (r *Runtime) Current() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		return ""
	}
	return r.current.task.spec.Name
}

// TaskViews is a reference to a published task's weights. Its views stay
// valid, and their blocks in place, until Release.
type TaskViews struct {
	r    *Runtime
	st   *taskState
	once sync.Once
}

// Acquire returns the currently published task. Call Release when done.
func (r *Runtime) Acquire() (*TaskViews, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("acquire: %w", ErrClosed)
	}
	if r.current == nil {
		return nil, fmt.Errorf("acquire on %s: %w", r.path, ErrNotPublished)
	}
	r.current.refs++
	return &TaskViews{r: r, st: r.current}, nil
}

// Task returns the task name.
func (t *TaskViews) Task() string { return t.st.task.spec.Name }

// Tensor returns the paged view of a tensor. The view is shared: do not
// modify it or the arena.
func (t *TaskViews) Tensor(name string) (*bsr.View, error) {
	v, ok := t.st.views[name]
	if !ok {
		return nil, fmt.Errorf("task %q has no tensor %q", t.Task(), name)
	}
	return v, nil
}

// Tensors returns the task's tensor names in layer order.
func (t *TaskViews) Tensors() []string {
	ti := t.st.task
	out := make([]string, 0, len(ti.order))
	for _, k := range ti.order {
		out = append(out, ti.spec.Tensors[k].Name)
	}
	return out
}

// Dense returns a dense tensor's values (shared: do not modify) and shape.
func (t *TaskViews) Dense(name string) ([]float32, []int, error) {
	ds, ok := t.st.task.spec.DenseByName(name)
	if !ok {
		return nil, nil, fmt.Errorf("task %q has no dense tensor %q", t.Task(), name)
	}
	return t.r.dense[ds.Blob], slices.Clone(ds.Shape), nil
}

// Release drops the reference; the views must not be used afterwards.
// Extra calls are no-ops.
func (t *TaskViews) Release() {
	t.once.Do(func() {
		t.r.mu.Lock()
		t.r.releaseLocked(t.st)
		t.r.mu.Unlock()
	})
}

// releaseLocked drops one reference of st; the last one unpins its slots
// and wakes switches waiting for room.
func (r *Runtime) releaseLocked(st *taskState) {
	st.refs--
	if st.refs > 0 {
		return
	}
	for _, s := range st.slots {
		r.slots[s].pins--
	}
	st.slots = nil
	delete(r.live, st)
	close(r.released)
	r.released = make(chan struct{})
}

// Close releases the pool and the file. It fails, changing nothing, while
// TaskViews or pending switches still hold task views.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	p := r.prefetch
	r.mu.Unlock()
	if p != nil {
		p.Cancel()
		p.Wait()
	}
	r.loadSem <- struct{}{}
	defer func() { <-r.loadSem }()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	held := len(r.live)
	if r.current != nil && r.current.refs == 1 {
		held--
	}
	if held > 0 {
		return fmt.Errorf("close %s: %d task view sets still acquired; release them first", r.path, held)
	}
	r.closed = true
	r.current = nil
	var errs []error
	if err := unmapArena(r.arenaMem); err != nil {
		errs = append(errs, fmt.Errorf("unmap pool: %w", err))
	}
	if err := unmapArena(r.scratchM); err != nil {
		errs = append(errs, fmt.Errorf("unmap scratch: %w", err))
	}
	r.arenaMem, r.arena, r.scratchM, r.scratch = nil, nil, nil, nil
	if err := r.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", r.path, err))
	}
	if err := r.store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
