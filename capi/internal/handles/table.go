// Package handles holds the logic behind the dmsparse C ABI (package capi):
// a table of integer handles for runtimes, acquired views, pending switches
// and prefetches; argument checks for every call; status codes per error
// kind; and the copies of BSR structure into C memory that C code reads.
// It uses no cgo, so it is tested in Go; capi's exports are thin wrappers.
//
// Handles are never reused: a closed, released or freed handle stays
// unknown for the life of the process, so a stale handle gets BadHandle
// instead of reaching another object. Every method is safe for concurrent
// use; the per-call notes in dmsparse.h say which calls may overlap on the
// same handle.
package handles

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/dmsparse/dmsparse/bsr"
)

// Table maps handles to objects. The zero value is not usable; call New.
type Table struct {
	open   OpenFunc
	linear LinearFunc
	mul    MulFunc
	alloc  Allocator

	mu   sync.Mutex
	next uint64
	objs map[uint64]any // *rtEntry, *viewsEntry, *pendingEntry, *prefetchEntry
}

// New returns an empty table whose runtimes are opened with open, whose
// layers run with linear and mul, and whose C-visible copies come from alloc.
func New(open OpenFunc, linear LinearFunc, mul MulFunc, alloc Allocator) *Table {
	return &Table{open: open, linear: linear, mul: mul, alloc: alloc, objs: map[uint64]any{}}
}

// rtEntry is an open runtime.
type rtEntry struct {
	id     uint64
	path   string
	b      Backend
	ctx    context.Context
	cancel context.CancelFunc
	// timeout bounds every switch (0: none).
	timeout time.Duration
	// ops guards b against Close: calls hold it shared, Close exclusively.
	ops    sync.RWMutex
	closed bool
	// bg counts background goroutines (pending switches, prefetches).
	bg sync.WaitGroup

	mu sync.Mutex
	// children maps the handles made from this runtime to their objects.
	// A views entry leaves it only after its release finished, so Close
	// can wait for a release that is running concurrently.
	children map[uint64]any
}

// viewsEntry is an acquired set of task views.
type viewsEntry struct {
	id    uint64
	rt    *rtEntry
	v     Views
	task  string
	names []string
	// mu guards use against release: calls hold it shared, release
	// exclusively.
	mu   sync.RWMutex
	done bool
	// cacheMu guards descs and allocs.
	cacheMu sync.Mutex
	descs   map[string]*tensorDesc
	allocs  []unsafe.Pointer
}

// tensorDesc is a tensor's view with its structure copied to C memory.
type tensorDesc struct {
	view *bsr.View
	desc ViewDesc
}

// pendingEntry is a pipelined switch.
type pendingEntry struct {
	id     uint64
	rt     *rtEntry
	task   string
	p      Pending
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	stats  Stats
	err    error
}

// prefetchEntry is a background prefetch.
type prefetchEntry struct {
	id   uint64
	rt   *rtEntry
	task string
	p    Prefetching
	done chan struct{}
	err  error
}

// ViewDesc is a tensor's BSR view as C sees it (dms_bsr_view). Every pointer
// points outside the Go heap: the structure arrays into memory from the
// table's Allocator, Arena and Blocks into the pool.
type ViewDesc struct {
	Rows, Cols           int64
	R, C                 int32
	BlockRows, BlockCols int64
	NNZB                 int64
	// Indptr has BlockRows+1 int32 entries, Indices and Slots NNZB each
	// (nil when NNZB is 0).
	Indptr, Indices, Slots unsafe.Pointer
	// Arena is the pool base; block k starts at Arena + Slots[k]*Stride
	// floats. ArenaLen is the arena's length in floats.
	Arena    unsafe.Pointer
	ArenaLen int64
	Stride   int64
	// Blocks holds NNZB pointers, one per stored block.
	Blocks unsafe.Pointer
}

// add registers o under a fresh handle.
func (t *Table) add(o any) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	id := t.next
	switch e := o.(type) {
	case *rtEntry:
		e.id = id
	case *viewsEntry:
		e.id = id
	case *pendingEntry:
		e.id = id
	case *prefetchEntry:
		e.id = id
	}
	t.objs[id] = o
	return id
}

// kindName names the kind of a table object for messages.
func kindName(o any) string {
	switch o.(type) {
	case *rtEntry:
		return "runtime"
	case *viewsEntry:
		return "views"
	case *pendingEntry:
		return "pending switch"
	case *prefetchEntry:
		return "prefetch"
	}
	return fmt.Sprintf("%T", o)
}

// get looks up handle h expecting type E; kind names E for messages.
func get[E any](t *Table, h uint64, kind string) (E, error) {
	var zero E
	if h == 0 {
		return zero, errorf(BadHandle, "%s handle is 0 (never valid)", kind)
	}
	t.mu.Lock()
	o, ok := t.objs[h]
	t.mu.Unlock()
	if !ok {
		return zero, errorf(BadHandle, "%s handle %d is unknown, closed or released", kind, h)
	}
	e, ok := o.(E)
	if !ok {
		return zero, errorf(BadHandle, "handle %d is a %s handle, not a %s handle", h, kindName(o), kind)
	}
	return e, nil
}

// remove unregisters h if it still maps to o; it reports whether it did.
func (t *Table) remove(h uint64, o any) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.objs[h]; ok && cur == o {
		delete(t.objs, h)
		return true
	}
	return false
}

// Len returns the number of live handles (for tests and leak checks).
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.objs)
}

// cstr checks a string argument that came from a C pointer; ok is false
// for NULL.
func cstr(s string, ok bool, what string) (string, error) {
	if !ok {
		return "", errorf(InvalidArgument, "%s is NULL", what)
	}
	if s == "" {
		return "", errorf(InvalidArgument, "%s is empty", what)
	}
	return s, nil
}

// Open opens the store at path with opt and returns a runtime handle. ok
// is false when the C path pointer was NULL.
func (t *Table) Open(path string, ok bool, opt Options) (uint64, error) {
	path, err := cstr(path, ok, "store path")
	if err != nil {
		return 0, err
	}
	if opt.Budget <= 0 {
		return 0, errorf(InvalidArgument, "open %s: budget %d bytes, want a positive pool size", path, opt.Budget)
	}
	if opt.CoalesceGap < 0 || opt.RequestSize < 0 || opt.InFlight < 0 {
		return 0, errorf(InvalidArgument, "open %s: coalesce_gap %d, request_size %d, in_flight %d: want non-negative values (0 = default)",
			path, opt.CoalesceGap, opt.RequestSize, opt.InFlight)
	}
	if opt.SwitchTimeout < 0 {
		return 0, errorf(InvalidArgument, "open %s: switch timeout %v is negative (0 = none)", path, opt.SwitchTimeout)
	}
	if opt.DirectIO < 0 || opt.DirectIO > 2 {
		return 0, errorf(InvalidArgument, "open %s: direct_io %d, want 0 (auto), 1 (force) or 2 (off)", path, opt.DirectIO)
	}
	b, err := t.open(path, opt)
	if err != nil {
		return 0, wrap(Classify(err, IO), err, "open %s", path)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &rtEntry{path: path, b: b, ctx: ctx, cancel: cancel, timeout: opt.SwitchTimeout, children: map[uint64]any{}}
	return t.add(e), nil
}

// runtime returns the live runtime for h with its ops lock held shared;
// the caller must call e.ops.RUnlock.
func (t *Table) runtime(h uint64) (*rtEntry, error) {
	e, err := get[*rtEntry](t, h, "runtime")
	if err != nil {
		return nil, err
	}
	e.ops.RLock()
	if e.closed {
		e.ops.RUnlock()
		return nil, errorf(BadHandle, "runtime handle %d (%s) is closed", h, e.path)
	}
	return e, nil
}

// adopt records child id (object o) of runtime e.
func (e *rtEntry) adopt(id uint64, o any) {
	e.mu.Lock()
	e.children[id] = o
	e.mu.Unlock()
}

// disown forgets child id of runtime e.
func (e *rtEntry) disown(id uint64) {
	e.mu.Lock()
	delete(e.children, id)
	e.mu.Unlock()
}

// Close closes runtime h: it cancels the runtime's switches and prefetches
// and waits for them, releases every views handle acquired from it (their
// pointers become invalid), frees its pending and prefetch handles, and
// closes the store. The handle is invalid afterwards, also on error.
func (t *Table) Close(h uint64) error {
	e, err := get[*rtEntry](t, h, "runtime")
	if err != nil {
		return err
	}
	if !t.remove(h, e) {
		return errorf(BadHandle, "runtime handle %d (%s) is already closed", h, e.path)
	}
	e.cancel()
	e.ops.Lock()
	e.closed = true
	e.ops.Unlock()
	e.bg.Wait()
	e.mu.Lock()
	kids := e.children
	e.children = map[uint64]any{}
	e.mu.Unlock()
	for id, o := range kids {
		t.remove(id, o)
		// release is idempotent and waits for one running concurrently
		// in Release, so no views are held when the backend closes.
		if v, ok := o.(*viewsEntry); ok {
			v.release(t.alloc)
		}
	}
	if err := e.b.Close(); err != nil {
		return wrap(IO, err, "close %s", e.path)
	}
	return nil
}

// Tasks returns the store's task names.
func (t *Table) Tasks(h uint64) ([]string, error) {
	e, err := t.runtime(h)
	if err != nil {
		return nil, err
	}
	defer e.ops.RUnlock()
	return e.b.Tasks(), nil
}

// TaskName returns task i of runtime h.
func (t *Table) TaskName(h uint64, i int64) (string, error) {
	names, err := t.Tasks(h)
	if err != nil {
		return "", err
	}
	if i < 0 || i >= int64(len(names)) {
		return "", errorf(InvalidArgument, "task index %d out of range: the store has %d tasks", i, len(names))
	}
	return names[i], nil
}

// Resident returns the pool's resident bytes and block versions.
func (t *Table) Resident(h uint64) (int64, int, error) {
	e, err := t.runtime(h)
	if err != nil {
		return 0, 0, err
	}
	defer e.ops.RUnlock()
	b, n := e.b.Resident()
	return b, n, nil
}

// switchContext returns the context of one switch: parent bounded by the
// runtime's switch timeout, if any.
func (e *rtEntry) switchContext(parent context.Context) (context.Context, context.CancelFunc) {
	if e.timeout > 0 {
		return context.WithTimeout(parent, e.timeout)
	}
	return context.WithCancel(parent)
}

// knownTask checks task against the store's list, so that a misspelt task
// gets NotFound with the list of names.
func knownTask(e *rtEntry, task string) error {
	names := e.b.Tasks()
	for _, n := range names {
		if n == task {
			return nil
		}
	}
	return errorf(NotFound, "task %q is not in store %s (tasks: %v)", task, e.path, names)
}

// Switch switches runtime h to task, blocking until its views are published.
func (t *Table) Switch(h uint64, task string, ok bool) (Stats, error) {
	task, err := cstr(task, ok, "task name")
	if err != nil {
		return Stats{}, err
	}
	e, err := t.runtime(h)
	if err != nil {
		return Stats{}, err
	}
	defer e.ops.RUnlock()
	if err := knownTask(e, task); err != nil {
		return Stats{}, err
	}
	ctx, cancel := e.switchContext(e.ctx)
	defer cancel()
	st, err := e.b.Switch(ctx, task)
	if err != nil {
		return Stats{}, wrap(Classify(err, Internal), err, "switch %s to task %q", e.path, task)
	}
	return st, nil
}

// Begin starts a pipelined switch of runtime h to task and returns a
// pending handle.
func (t *Table) Begin(h uint64, task string, ok bool) (uint64, error) {
	task, err := cstr(task, ok, "task name")
	if err != nil {
		return 0, err
	}
	e, err := t.runtime(h)
	if err != nil {
		return 0, err
	}
	defer e.ops.RUnlock()
	if err := knownTask(e, task); err != nil {
		return 0, err
	}
	// Waits use ctx, which only a cancel, a free or a close ends; the
	// switch itself also stops at the runtime's timeout.
	ctx, cancel := context.WithCancel(e.ctx)
	sctx, scancel := e.switchContext(ctx)
	p, err := e.b.Begin(sctx, task)
	if err != nil {
		scancel()
		cancel()
		return 0, wrap(Classify(err, Internal), err, "begin switch of %s to task %q", e.path, task)
	}
	pe := &pendingEntry{rt: e, task: task, p: p, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	e.bg.Add(1)
	// The context stays live after the switch finished (waits on a done
	// switch must succeed, not race a canceled context); FreePending and
	// Close cancel it.
	go func() {
		defer e.bg.Done()
		defer close(pe.done)
		defer scancel()
		pe.stats, pe.err = p.Wait()
	}()
	id := t.add(pe)
	e.adopt(id, pe)
	return id, nil
}

// pending returns the pending switch for h.
func (t *Table) pending(h uint64) (*pendingEntry, error) {
	return get[*pendingEntry](t, h, "pending switch")
}

// WaitLayer blocks until pipeline layer l of pending switch h is ready.
func (t *Table) WaitLayer(h uint64, l int64) error {
	pe, err := t.pending(h)
	if err != nil {
		return err
	}
	if l < 0 {
		return errorf(InvalidArgument, "layer %d is negative", l)
	}
	if err := pe.p.WaitLayer(pe.ctx, int(l)); err != nil {
		return pe.failure(err, fmt.Sprintf("wait for layer %d", l))
	}
	return nil
}

// WaitTensor blocks until the named tensor of pending switch h is ready.
func (t *Table) WaitTensor(h uint64, name string, ok bool) error {
	name, err := cstr(name, ok, "tensor name")
	if err != nil {
		return err
	}
	pe, err := t.pending(h)
	if err != nil {
		return err
	}
	if err := pe.p.WaitTensor(pe.ctx, name); err != nil {
		return pe.failure(err, fmt.Sprintf("wait for tensor %q", name))
	}
	return nil
}

// failure reports a failed wait. When the switch itself failed, the
// switch's error explains more than the wait's, so it is returned instead.
func (pe *pendingEntry) failure(err error, what string) error {
	select {
	case <-pe.done:
		if pe.err != nil {
			return wrap(Classify(pe.err, Internal), pe.err, "%s of switch to task %q", what, pe.task)
		}
	default:
	}
	return wrap(Classify(err, NotFound), err, "%s of switch to task %q", what, pe.task)
}

// Wait blocks until pending switch h finished and returns its stats. It may
// be called more than once; every call returns the same outcome.
func (t *Table) Wait(h uint64) (Stats, error) {
	pe, err := t.pending(h)
	if err != nil {
		return Stats{}, err
	}
	<-pe.done
	if pe.err != nil {
		return Stats{}, wrap(Classify(pe.err, Internal), pe.err, "switch to task %q", pe.task)
	}
	return pe.stats, nil
}

// Cancel cancels pending switch h; the previously published task stays
// published. Waits return Canceled unless the switch already finished.
func (t *Table) Cancel(h uint64) error {
	pe, err := t.pending(h)
	if err != nil {
		return err
	}
	pe.cancel()
	return nil
}

// FreePending forgets pending switch h. A switch still running carries on
// and publishes its task; only the handle goes away.
func (t *Table) FreePending(h uint64) error {
	pe, err := t.pending(h)
	if err != nil {
		return err
	}
	if t.remove(h, pe) {
		pe.rt.disown(h)
		// Nobody can wait on the handle any more; the switch keeps
		// going and its context is released once it finished.
		go func() {
			<-pe.done
			pe.cancel()
		}()
	}
	return nil
}

// Prefetch starts loading task's blocks of runtime h into free pool slots
// and returns a prefetch handle.
func (t *Table) Prefetch(h uint64, task string, ok bool) (uint64, error) {
	task, err := cstr(task, ok, "task name")
	if err != nil {
		return 0, err
	}
	e, err := t.runtime(h)
	if err != nil {
		return 0, err
	}
	defer e.ops.RUnlock()
	if err := knownTask(e, task); err != nil {
		return 0, err
	}
	p, err := e.b.Prefetch(e.ctx, task)
	if err != nil {
		return 0, wrap(Classify(err, Internal), err, "prefetch task %q of %s", task, e.path)
	}
	pf := &prefetchEntry{rt: e, task: task, p: p, done: make(chan struct{})}
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		defer close(pf.done)
		pf.err = p.Wait()
	}()
	// A close of the runtime cancels its prefetches.
	stop := context.AfterFunc(e.ctx, p.Cancel)
	go func() {
		<-pf.done
		stop()
	}()
	id := t.add(pf)
	e.adopt(id, pf)
	return id, nil
}

// prefetch returns the prefetch for h.
func (t *Table) prefetch(h uint64) (*prefetchEntry, error) {
	return get[*prefetchEntry](t, h, "prefetch")
}

// CancelPrefetch stops prefetch h; blocks already loaded stay resident.
func (t *Table) CancelPrefetch(h uint64) error {
	pf, err := t.prefetch(h)
	if err != nil {
		return err
	}
	pf.p.Cancel()
	return nil
}

// WaitPrefetch blocks until prefetch h stopped. A canceled prefetch
// returns Canceled.
func (t *Table) WaitPrefetch(h uint64) error {
	pf, err := t.prefetch(h)
	if err != nil {
		return err
	}
	<-pf.done
	if pf.err != nil {
		return wrap(Classify(pf.err, Internal), pf.err, "prefetch task %q", pf.task)
	}
	return nil
}

// FreePrefetch forgets prefetch h; a running prefetch carries on.
func (t *Table) FreePrefetch(h uint64) error {
	pf, err := t.prefetch(h)
	if err != nil {
		return err
	}
	if t.remove(h, pf) {
		pf.rt.disown(h)
	}
	return nil
}

// Acquire returns a views handle on the task runtime h has published. The
// views stay valid, and their blocks resident, until Release, even across
// later switches.
func (t *Table) Acquire(h uint64) (uint64, error) {
	e, err := t.runtime(h)
	if err != nil {
		return 0, err
	}
	defer e.ops.RUnlock()
	v, err := e.b.Acquire()
	if err != nil {
		return 0, wrap(Classify(err, NoTask), err, "acquire views of %s", e.path)
	}
	if v == nil {
		return 0, errorf(NoTask, "acquire views of %s: no task has been switched to", e.path)
	}
	ve := &viewsEntry{rt: e, v: v, task: v.Task(), names: v.Tensors(), descs: map[string]*tensorDesc{}}
	id := t.add(ve)
	e.adopt(id, ve)
	return id, nil
}

// views returns the live views for h with its lock held shared; the caller
// must call ve.mu.RUnlock.
func (t *Table) views(h uint64) (*viewsEntry, error) {
	ve, err := get[*viewsEntry](t, h, "views")
	if err != nil {
		return nil, err
	}
	ve.mu.RLock()
	if ve.done {
		ve.mu.RUnlock()
		return nil, errorf(BadHandle, "views handle %d (task %q) is released", h, ve.task)
	}
	return ve, nil
}

// PendingViews returns a views handle on the task pending switch h is
// loading. Tensor, Linear and Mul on it wait until the tensor's blocks are
// verified, so compute on early layers overlaps the loading of later ones.
// The views keep their blocks resident until Release; if the switch fails,
// calls on them return the switch's error.
func (t *Table) PendingViews(h uint64) (uint64, error) {
	pe, err := t.pending(h)
	if err != nil {
		return 0, err
	}
	e := pe.rt
	e.ops.RLock()
	defer e.ops.RUnlock()
	if e.closed {
		return 0, errorf(BadHandle, "pending switch %d: runtime %s is closed", h, e.path)
	}
	v, err := pe.p.Acquire()
	if err != nil {
		return 0, wrap(Classify(err, Internal), err, "views of the switch to task %q", pe.task)
	}
	pv := &pendingViews{Views: v, pe: pe}
	ve := &viewsEntry{rt: e, v: pv, task: pe.task, names: v.Tensors(), descs: map[string]*tensorDesc{}}
	id := t.add(ve)
	e.adopt(id, ve)
	return id, nil
}

// pendingViews are views of a switch in progress: Tensor waits for the
// tensor's blocks, and everything fails once the switch failed.
type pendingViews struct {
	Views
	pe *pendingEntry
}

// Err returns the switch's error once it failed, nil otherwise.
func (v *pendingViews) Err() error {
	select {
	case <-v.pe.done:
		if v.pe.err != nil {
			return wrap(Classify(v.pe.err, Internal), v.pe.err, "views of the failed switch to task %q", v.pe.task)
		}
	default:
	}
	return nil
}

// Tensor waits until the tensor is ready and returns its view.
func (v *pendingViews) Tensor(name string) (*bsr.View, error) {
	select {
	case <-v.pe.done:
	default:
		if err := v.pe.p.WaitTensor(v.pe.ctx, name); err != nil {
			return nil, v.pe.failure(err, fmt.Sprintf("wait for tensor %q", name))
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return v.Views.Tensor(name)
}

// failer is implemented by views that can become unusable (pendingViews).
type failer interface{ Err() error }

// Release releases views h: its tensor pointers become invalid and the
// pool may evict blocks no other holder needs.
func (t *Table) Release(h uint64) error {
	ve, err := get[*viewsEntry](t, h, "views")
	if err != nil {
		return err
	}
	if !t.remove(h, ve) {
		return errorf(BadHandle, "views handle %d (task %q) is already released", h, ve.task)
	}
	ve.release(t.alloc)
	ve.rt.disown(h)
	return nil
}

// release frees the C copies and drops the backend reference, once.
func (ve *viewsEntry) release(alloc Allocator) {
	ve.mu.Lock()
	defer ve.mu.Unlock()
	if ve.done {
		return
	}
	ve.done = true
	for _, p := range ve.allocs {
		alloc.Free(p)
	}
	ve.allocs = nil
	ve.descs = nil
	ve.v.Release()
}

// ViewsTask returns the task name of views h.
func (t *Table) ViewsTask(h uint64) (string, error) {
	ve, err := t.views(h)
	if err != nil {
		return "", err
	}
	defer ve.mu.RUnlock()
	return ve.task, nil
}

// TensorNames returns the BSR tensor names of views h in pipeline order.
func (t *Table) TensorNames(h uint64) ([]string, error) {
	ve, err := t.views(h)
	if err != nil {
		return nil, err
	}
	defer ve.mu.RUnlock()
	return ve.names, nil
}

// TensorName returns tensor i of views h.
func (t *Table) TensorName(h uint64, i int64) (string, error) {
	names, err := t.TensorNames(h)
	if err != nil {
		return "", err
	}
	if i < 0 || i >= int64(len(names)) {
		return "", errorf(InvalidArgument, "tensor index %d out of range: the task has %d tensors", i, len(names))
	}
	return names[i], nil
}

// Tensor returns the C description of tensor name of views h. The pointers
// stay valid until the views are released; repeated calls return the same
// pointers.
func (t *Table) Tensor(h uint64, name string, ok bool) (ViewDesc, error) {
	name, err := cstr(name, ok, "tensor name")
	if err != nil {
		return ViewDesc{}, err
	}
	ve, err := t.views(h)
	if err != nil {
		return ViewDesc{}, err
	}
	defer ve.mu.RUnlock()
	td, err := t.tensor(ve, name)
	if err != nil {
		return ViewDesc{}, err
	}
	return td.desc, nil
}

// tensor returns the cached description of a tensor, building it on first
// use. The caller holds ve.mu shared; the cache has its own lock.
func (t *Table) tensor(ve *viewsEntry, name string) (*tensorDesc, error) {
	if f, ok := ve.v.(failer); ok {
		if err := f.Err(); err != nil {
			return nil, err
		}
	}
	ve.cacheMu.Lock()
	td, ok := ve.descs[name]
	ve.cacheMu.Unlock()
	if ok {
		return td, nil
	}
	v, err := ve.v.Tensor(name)
	if err != nil {
		return nil, wrap(Classify(err, NotFound), err, "tensor %q of task %q", name, ve.task)
	}
	if v == nil {
		return nil, errorf(NotFound, "tensor %q of task %q: no such BSR tensor", name, ve.task)
	}
	td, p, err := t.describe(v)
	if err != nil {
		return nil, fmt.Errorf("tensor %q of task %q: %w", name, ve.task, err)
	}
	ve.cacheMu.Lock()
	defer ve.cacheMu.Unlock()
	if old, ok := ve.descs[name]; ok {
		t.alloc.Free(p)
		return old, nil
	}
	ve.descs[name] = td
	ve.allocs = append(ve.allocs, p)
	return td, nil
}

// describe copies v's structure into one C allocation and fills the
// description; it returns the allocation for freeing.
func (t *Table) describe(v *bsr.View) (*tensorDesc, unsafe.Pointer, error) {
	nnzb := len(v.Indices)
	if len(v.Slots) != nnzb || len(v.Indptr) != v.BlockRows()+1 {
		return nil, nil, errorf(Internal, "view %v has %d indptr, %d indices, %d slots: inconsistent", v, len(v.Indptr), nnzb, len(v.Slots))
	}
	bs := v.R * v.C
	for k, s := range v.Slots {
		if s < 0 || int(s)*v.Stride+bs > len(v.Arena) {
			return nil, nil, errorf(Internal, "view %v: block %d in slot %d lies outside the %d-float arena", v, k, s, len(v.Arena))
		}
	}
	ints := len(v.Indptr) + 2*nnzb
	off := (ints*4 + 7) &^ 7
	size := off + nnzb*8
	if size == 0 {
		size = 8
	}
	p := t.alloc.Alloc(size)
	if p == nil {
		return nil, nil, errorf(Internal, "out of memory allocating %d bytes for the view structure", size)
	}
	i32 := unsafe.Slice((*int32)(p), ints)
	copy(i32, v.Indptr)
	copy(i32[len(v.Indptr):], v.Indices)
	copy(i32[len(v.Indptr)+nnzb:], v.Slots)
	d := ViewDesc{
		Rows: int64(v.Rows), Cols: int64(v.Cols), R: int32(v.R), C: int32(v.C),
		BlockRows: int64(v.BlockRows()), BlockCols: int64(v.BlockCols()), NNZB: int64(nnzb),
		Indptr:   p,
		ArenaLen: int64(len(v.Arena)),
		Stride:   int64(v.Stride),
	}
	if nnzb > 0 {
		d.Indices = unsafe.Add(p, 4*len(v.Indptr))
		d.Slots = unsafe.Add(p, 4*(len(v.Indptr)+nnzb))
		d.Blocks = unsafe.Add(p, off)
	}
	if len(v.Arena) > 0 {
		d.Arena = unsafe.Pointer(unsafe.SliceData(v.Arena))
		blocks := unsafe.Slice((*uintptr)(d.Blocks), nnzb)
		for k, s := range v.Slots {
			blocks[k] = uintptr(d.Arena) + uintptr(int(s)*v.Stride*4)
		}
	}
	return &tensorDesc{view: v, desc: d}, p, nil
}

// Flags of Linear and Mul (DMS_ACCUMULATE).
const (
	// FlagAccumulate adds the product to Y instead of overwriting it.
	FlagAccumulate uint32 = 1
)

// LayerArgs are the caller buffers of a product. Lengths count float32
// values; the pointers come from C and must not overlap.
type LayerArgs struct {
	X, Y, Bias          unsafe.Pointer
	XLen, YLen, BiasLen int64
	N                   int64
	Flags               uint32
	Threads             int32
}

// checkLayer validates the common arguments of Linear and Mul and returns
// the bsr options.
func checkLayer(a *LayerArgs) (bsr.Options, error) {
	// Bounding n keeps n*rows and n*cols (each at most 2^31) far from
	// overflowing, so the buffer checks cannot be fooled by a product that
	// wraps to a small size.
	if a.N < 1 || a.N > math.MaxInt32 {
		return bsr.Options{}, errorf(InvalidArgument, "n = %d, want 1 to %d", a.N, math.MaxInt32)
	}
	if a.Flags&^FlagAccumulate != 0 {
		return bsr.Options{}, errorf(InvalidArgument, "unknown flags %#x (only DMS_ACCUMULATE = 1 is defined)", a.Flags&^FlagAccumulate)
	}
	if a.Threads < 0 {
		return bsr.Options{}, errorf(InvalidArgument, "threads = %d, want 0 (all cores) or more", a.Threads)
	}
	return bsr.Options{Accumulate: a.Flags&FlagAccumulate != 0, Workers: int(a.Threads)}, nil
}

// layerCall holds a checked Linear or Mul call: the views entry, which
// stays read-locked until the caller runs ve.mu.RUnlock, the tensor's view,
// the batch options, and X and Y as Go slices of exactly the needed length.
type layerCall struct {
	ve   *viewsEntry
	v    *bsr.View
	x, y []float32
	opt  bsr.Options
}

// prepareLayer checks what Linear and Mul share: the batch arguments, the
// views handle and tensor, and the lengths of X and Y the tensor implies
// (batch-major for Linear, feature-major when xTransposed, for Mul). op
// names the call in errors. On success the views entry is read-locked.
func (t *Table) prepareLayer(op string, h uint64, name string, a *LayerArgs, xTransposed bool) (*layerCall, error) {
	opt, err := checkLayer(a)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, name, err)
	}
	ve, err := t.views(h)
	if err != nil {
		return nil, err
	}
	td, err := t.tensor(ve, name)
	if err != nil {
		ve.mu.RUnlock()
		return nil, err
	}
	v := td.view
	xShape := fmt.Sprintf("n x cols = %d x %d", a.N, v.Cols)
	yShape := fmt.Sprintf("n x rows = %d x %d", a.N, v.Rows)
	if xTransposed {
		xShape = fmt.Sprintf("cols x n = %d x %d", v.Cols, a.N)
		yShape = fmt.Sprintf("rows x n = %d x %d", v.Rows, a.N)
	}
	x, err := floats(a.X, a.XLen, a.N*int64(v.Cols), fmt.Sprintf("%s %q: x (%s)", op, name, xShape))
	if err != nil {
		ve.mu.RUnlock()
		return nil, err
	}
	y, err := floats(a.Y, a.YLen, a.N*int64(v.Rows), fmt.Sprintf("%s %q: y (%s)", op, name, yShape))
	if err != nil {
		ve.mu.RUnlock()
		return nil, err
	}
	return &layerCall{ve: ve, v: v, x: x, y: y, opt: opt}, nil
}

// Linear computes Y = X*W^T + bias for tensor name W of views h, with X
// row-major n x cols and Y row-major n x rows (a linear layer on a batch of
// n). Bias may be NULL; otherwise it has exactly rows values.
func (t *Table) Linear(h uint64, name string, ok bool, a LayerArgs) error {
	name, err := cstr(name, ok, "tensor name")
	if err != nil {
		return err
	}
	c, err := t.prepareLayer("linear", h, name, &a, false)
	if err != nil {
		return err
	}
	defer c.ve.mu.RUnlock()
	var bias []float32
	if a.Bias != nil {
		if a.BiasLen != int64(c.v.Rows) {
			return errorf(InvalidArgument, "linear %q: bias has %d floats, want rows = %d", name, a.BiasLen, c.v.Rows)
		}
		if bias, err = floats(a.Bias, a.BiasLen, int64(c.v.Rows), fmt.Sprintf("linear %q: bias", name)); err != nil {
			return err
		}
	} else if a.BiasLen != 0 {
		return errorf(InvalidArgument, "linear %q: bias is NULL but bias_len is %d", name, a.BiasLen)
	}
	if err := t.linear(c.y, c.x, int(a.N), c.v, bias, c.opt); err != nil {
		return wrap(Internal, err, "linear %q of task %q", name, c.ve.task)
	}
	return nil
}

// Mul computes Y = W*X for tensor name W of views h, with X row-major
// cols x n and Y row-major rows x n. Bias must be NULL.
func (t *Table) Mul(h uint64, name string, ok bool, a LayerArgs) error {
	name, err := cstr(name, ok, "tensor name")
	if err != nil {
		return err
	}
	if a.Bias != nil || a.BiasLen != 0 {
		return errorf(InvalidArgument, "mul %q: takes no bias", name)
	}
	c, err := t.prepareLayer("mul", h, name, &a, true)
	if err != nil {
		return err
	}
	defer c.ve.mu.RUnlock()
	if err := t.mul(c.y, c.v, c.x, int(a.N), c.opt); err != nil {
		return wrap(Internal, err, "mul %q of task %q", name, c.ve.task)
	}
	return nil
}

// Dense copies dense tensor name of views h into dst (dstLen floats) and
// returns its length. A NULL dst with dstLen 0 only queries the length.
func (t *Table) Dense(h uint64, name string, ok bool, dst unsafe.Pointer, dstLen int64) (int64, error) {
	name, err := cstr(name, ok, "dense tensor name")
	if err != nil {
		return 0, err
	}
	ve, err := t.views(h)
	if err != nil {
		return 0, err
	}
	defer ve.mu.RUnlock()
	vals, _, err := ve.v.Dense(name)
	if err != nil {
		return 0, wrap(Classify(err, NotFound), err, "dense tensor %q of task %q", name, ve.task)
	}
	n := int64(len(vals))
	if dst == nil && dstLen == 0 {
		return n, nil
	}
	out, err := floats(dst, dstLen, n, fmt.Sprintf("dense tensor %q of task %q: dst", name, ve.task))
	if err != nil {
		return n, err
	}
	copy(out, vals)
	return n, nil
}
