package diffload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dmsparse/dmsparse/bsr"
)

// Pending is a switch in progress. Tensors become usable as their blocks are
// verified (WaitTensor, WaitLayer); Wait returns when the task is published
// or the switch failed. Every Pending must be waited for: the next switch
// starts only after Wait.
type Pending struct {
	r     *Runtime
	task  *taskInfo
	st    *taskState
	start time.Time

	tensorReady []chan struct{}
	layerReady  map[int]chan struct{}
	done        chan struct{}

	stats *SwitchStats
	// err is the switch's error, set before done is closed and never
	// changed afterwards (WaitTensor, WaitLayer and Acquire read it).
	err error
	// final is Wait's result: err plus any failure to restore the
	// retired task; written once, inside once.
	final   error
	retired *taskInfo
	once    sync.Once
	// unlock tells Wait to release the load slot (after a restore).
	unlock bool
}

// Switch makes task's block versions resident, verifies them and publishes
// the task's views. On failure the previously published task stays
// published (see SwitchStats.Restored for the tight-budget case).
func (r *Runtime) Switch(ctx context.Context, task string) (*SwitchStats, error) {
	p, err := r.Begin(ctx, task)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// Begin plans a switch to task (evicting as needed, waiting with ctx for
// readers to release blocks when the budget demands it) and starts reading
// in layer order in the background.
func (r *Runtime) Begin(ctx context.Context, task string) (*Pending, error) {
	start := time.Now()
	ti, ok := r.byName[task]
	if !ok {
		return nil, fmt.Errorf("switch on %s: %w: %q", r.path, ErrNoTask, task)
	}
	// A prefetch of the same task keeps going and the switch reuses what
	// it loads; a prefetch of another task is cancelled.
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("switch to %q: %w", task, ErrClosed)
	}
	pf := r.prefetch
	r.mu.Unlock()
	if pf != nil {
		if pf.task != task {
			pf.Cancel()
		}
		select {
		case <-pf.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("switch to %q: waiting for prefetch of %q: %w", task, pf.task, ctx.Err())
		}
	}
	select {
	case r.loadSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("switch to %q: waiting for the previous switch: %w", task, ctx.Err())
	}
	p, err := r.begin(ctx, ti, start, true)
	if err != nil {
		<-r.loadSem
		return nil, err
	}
	return p, nil
}

// begin starts a switch; wait says whether planning may wait for readers
// to release blocks (a restore from Wait must not: the readers may be
// waiting for it).
func (r *Runtime) begin(ctx context.Context, ti *taskInfo, start time.Time, wait bool) (*Pending, error) {
	task := ti.spec.Name
	stats := &SwitchStats{Task: task, DirectIO: r.direct, FallbackReason: r.fallback}
	p := &Pending{r: r, task: ti, start: start, done: make(chan struct{}), stats: stats, layerReady: map[int]chan struct{}{}}
	p.tensorReady = make([]chan struct{}, len(ti.spec.Tensors))
	for i := range p.tensorReady {
		p.tensorReady[i] = make(chan struct{})
	}
	for _, l := range ti.layers {
		p.layerReady[l] = make(chan struct{})
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("switch to %q: %w", task, ErrClosed)
	}
	if r.current != nil && r.current.task == ti {
		// Already published: nothing to read.
		st := r.current
		st.refs++
		r.mu.Unlock()
		p.st = st
		stats.Reused = len(ti.versions)
		for _, c := range p.tensorReady {
			close(c)
		}
		for _, c := range p.layerReady {
			close(c)
		}
		stats.Total = time.Since(start)
		stats.Plan, stats.FirstLayerReady = stats.Total, stats.Total
		close(p.done)
		<-r.loadSem
		return p, nil
	}
	r.mu.Unlock()

	loads, err := r.plan(ctx, ti, p, wait)
	if err != nil {
		return nil, err
	}
	// Readiness bookkeeping: which tensors wait for which loaded version.
	for i, l := range loads {
		r.posOf[l.ver] = int32(i)
	}
	pending := make([]int, len(ti.spec.Tensors))
	lastT := make([]int32, len(loads))
	for i := range lastT {
		lastT[i] = -1
	}
	var pairs [][2]int32
	for t := range ti.spec.Tensors {
		for _, v := range ti.spec.Tensors[t].Versions {
			if pos := r.posOf[v]; pos >= 0 && lastT[pos] != int32(t) {
				lastT[pos] = int32(t)
				pairs = append(pairs, [2]int32{pos, int32(t)})
				pending[t]++
			}
		}
	}
	for _, l := range loads {
		r.posOf[l.ver] = -1
	}
	waitersStart := make([]int32, len(loads)+1)
	for _, pr := range pairs {
		waitersStart[pr[0]+1]++
	}
	for i := range loads {
		waitersStart[i+1] += waitersStart[i]
	}
	waiters := make([]int32, len(pairs))
	fill := slices.Clone(waitersStart[:len(loads)])
	for _, pr := range pairs {
		waiters[fill[pr[0]]] = pr[1]
		fill[pr[0]]++
	}
	layerPending := map[int]int{}
	for t := range ti.spec.Tensors {
		if pending[t] > 0 {
			layerPending[ti.spec.Tensors[t].Layer]++
		}
	}
	firstLayer := ti.layers
	markLayer := func(l int) {
		close(p.layerReady[l])
		if len(firstLayer) > 0 && l == firstLayer[0] {
			stats.FirstLayerReady = time.Since(start)
		}
	}
	for t := range ti.spec.Tensors {
		if pending[t] == 0 {
			close(p.tensorReady[t])
		}
	}
	for _, l := range ti.layers {
		if layerPending[l] == 0 {
			markLayer(l)
		}
	}
	reqs, extents := r.buildRequests(loads)
	stats.Extents = extents
	stats.Plan = time.Since(start)

	go func() {
		verified := make([]bool, len(loads))
		ioSt, bad, err := r.runIO(ctx, reqs, func(ls []load) {
			r.mu.Lock()
			for _, l := range ls {
				r.slots[l.slot].valid = true
			}
			r.mu.Unlock()
			for _, l := range ls {
				verified[l.pos] = true
				for _, t := range waiters[waitersStart[l.pos]:waitersStart[l.pos+1]] {
					pending[t]--
					if pending[t] == 0 {
						close(p.tensorReady[t])
						lay := ti.spec.Tensors[t].Layer
						layerPending[lay]--
						if layerPending[lay] == 0 {
							markLayer(lay)
						}
					}
				}
			}
		})
		stats.setIO(ioSt)
		if err != nil {
			p.err = r.failSwitch(p, loads, verified, bad, err)
			stats.Total = time.Since(start)
			if p.retired != nil {
				p.unlock = true // Wait restores, then releases the load slot
			} else {
				<-r.loadSem
			}
			close(p.done)
			return
		}
		t0 := time.Now()
		r.mu.Lock()
		r.tick++
		for _, v := range ti.versions {
			r.slots[r.slotOf[v]].lastUse = r.tick
		}
		if r.current != nil {
			r.releaseLocked(r.current)
		}
		p.st.refs++ // the publication's reference
		r.current = p.st
		r.mu.Unlock()
		stats.Publish = time.Since(t0)
		stats.Total = time.Since(start)
		<-r.loadSem
		close(p.done)
	}()
	return p, nil
}

// plan computes the diff set of ti, evicts to make room and assigns slots.
// It returns the loads in priority (layer) order, and sets p.st to a new
// task state holding one reference (the Pending's) that pins every slot
// of the task.
func (r *Runtime) plan(ctx context.Context, ti *taskInfo, p *Pending, wait bool) ([]load, error) {
	task := ti.spec.Name
	for {
		r.mu.Lock()
		diff := r.markDiffLocked(ti)
		need := len(diff) - len(r.free)
		if need > 0 {
			cands := r.candidates()
			if len(cands) < need && r.current != nil {
				// Only the published task's blocks are left: unpublish it
				// (readers holding it keep their blocks) and evict from it.
				p.retired = r.current.task
				p.stats.Retired = true
				old := r.current
				r.current = nil
				r.releaseLocked(old)
				cands = r.candidates()
			}
			if len(cands) < need && !wait {
				err := fmt.Errorf("switch to %q: pool of %d slots needs %d more free slots, held by readers of %v", task, r.nSlots, need-len(cands), r.heldBy())
				r.mu.Unlock()
				return nil, err
			}
			if len(cands) < need {
				held := r.heldBy()
				ch := r.released
				r.mu.Unlock()
				select {
				case <-ch:
					continue
				case <-ctx.Done():
					err := fmt.Errorf("switch to %q: pool of %d slots needs %d more free slots, held by readers of %v: %w", task, r.nSlots, need-len(cands), held, ctx.Err())
					if p.retired != nil {
						r.mu.Lock()
						if rerr := r.restoreLocked(p); rerr != nil {
							err = errors.Join(err, rerr)
						}
						r.mu.Unlock()
					}
					return nil, err
				}
			}
			r.policy.Order(task, cands)
			// The policy only orders; check, before evicting anything,
			// that the victims are evictable candidates, so that a
			// faulty policy cannot evict the target's or a reader's
			// blocks (or one version twice: a chosen victim is marked).
			for i, c := range cands[:need] {
				if !r.evictable(c.Version) {
					err := fmt.Errorf("switch to %q: eviction policy %T returned version %d at position %d, which is not an evictable candidate (resident, unpinned, not needed by the target, listed once)", task, r.policy, c.Version, i)
					if p.retired != nil {
						if rerr := r.restoreLocked(p); rerr != nil {
							err = errors.Join(err, rerr)
						}
					}
					r.mu.Unlock()
					return nil, err
				}
				r.mark[c.Version] = r.gen
			}
			for _, c := range cands[:need] {
				r.evictLocked(c.Version)
			}
			p.stats.Evicted = need
		}
		loads := r.assignSlotsLocked(diff)
		p.stats.Versions = len(diff)
		p.stats.Reused = len(ti.versions) - len(diff)
		st := r.pinTaskLocked(ti)
		p.st = st
		r.mu.Unlock()
		return loads, nil
	}
}

// candidates lists the evictable versions: verified, unpinned and not
// marked as needed by the current plan. r.mu is held.
func (r *Runtime) candidates() []Candidate {
	var c []Candidate
	for i := range r.slots {
		s := &r.slots[i]
		if s.valid && s.pins == 0 && r.mark[s.ver] != r.gen {
			c = append(c, Candidate{Version: uint32(s.ver), LastUse: s.lastUse})
		}
	}
	return c
}

// evictable reports whether version v is resident, verified, unpinned and
// not needed by the current plan. r.mu is held.
func (r *Runtime) evictable(v uint32) bool {
	if int(v) >= len(r.slotOf) {
		return false
	}
	s := r.slotOf[v]
	if s < 0 {
		return false
	}
	sl := &r.slots[s]
	return sl.valid && sl.pins == 0 && r.mark[v] != r.gen
}

// heldBy names the tasks whose views readers still hold. r.mu is held.
func (r *Runtime) heldBy() []string {
	var out []string
	for st := range r.live {
		out = append(out, fmt.Sprintf("%s (%d refs)", st.task.spec.Name, st.refs))
	}
	slices.Sort(out)
	return out
}

// restoreLocked republishes the retired task of p when all its blocks are
// still resident (a switch that failed before reading). r.mu is held. When
// blocks are missing, it reports that a reload is needed.
func (r *Runtime) restoreLocked(p *Pending) error {
	ti := p.retired
	for _, v := range ti.versions {
		if s := r.slotOf[v]; s < 0 || !r.slots[s].valid {
			return fmt.Errorf("task %q was unpublished to make room and must be switched to again", ti.spec.Name)
		}
	}
	r.current = r.pinTaskLocked(ti)
	p.retired = nil
	p.stats.Restored = true
	return nil
}

// failSwitch frees the slots of versions that were not verified, unpins the
// new state's hold on them, and builds the error naming task, tensor and
// block. Verified versions stay resident (unpinned once the Pending is
// waited for) for later switches to reuse.
func (r *Runtime) failSwitch(p *Pending, loads []load, verified []bool, bad *load, ioErr error) error {
	ti := p.task
	err := fmt.Errorf("switch to %q: %w", ti.spec.Name, ioErr)
	if bad != nil {
		if t, k, ok := locate(ti.spec, bad.ver); ok {
			err = fmt.Errorf("switch to %q: tensor %q block %d (block row %d, column %d): %w",
				ti.spec.Name, t.Name, k, blockRow(t, k), t.Indices[k], ioErr)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	dropped := map[int32]bool{}
	for _, l := range loads {
		if !verified[l.pos] {
			dropped[l.slot] = true
			r.slotOf[l.ver] = -1
			r.slots[l.slot] = slotInfo{ver: -1}
			r.free = append(r.free, l.slot)
		}
	}
	kept := p.st.slots[:0]
	for _, s := range p.st.slots {
		if !dropped[s] {
			kept = append(kept, s)
		}
	}
	p.st.slots = kept
	return err
}

// locate finds the first tensor and block of spec that use version v.
func locate(spec *TaskSpec, v uint32) (*TensorSpec, int, bool) {
	for i := range spec.Tensors {
		t := &spec.Tensors[i]
		if k := slices.Index(t.Versions, v); k >= 0 {
			return t, k, true
		}
	}
	return nil, 0, false
}

func blockRow(t *TensorSpec, k int) int {
	for i := 0; i+1 < len(t.Indptr); i++ {
		if int(t.Indptr[i+1]) > k {
			return i
		}
	}
	return -1
}

// WaitTensor waits until the named tensor's blocks are verified and returns
// its view. The view stays valid until Wait returns; after a successful
// Wait use Acquire.
func (p *Pending) WaitTensor(ctx context.Context, name string) (*bsr.View, error) {
	k := slices.IndexFunc(p.task.spec.Tensors, func(t TensorSpec) bool { return t.Name == name })
	if k < 0 {
		return nil, fmt.Errorf("task %q has no tensor %q", p.task.spec.Name, name)
	}
	select {
	case <-p.tensorReady[k]:
		return p.st.views[name], nil
	case <-p.done:
		select {
		case <-p.tensorReady[k]:
			return p.st.views[name], nil
		default:
			return nil, p.err
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for tensor %q of task %q: %w", name, p.task.spec.Name, ctx.Err())
	}
}

// WaitLayer waits until every tensor whose Layer is l is verified.
func (p *Pending) WaitLayer(ctx context.Context, l int) error {
	c, ok := p.layerReady[l]
	if !ok {
		return fmt.Errorf("task %q has no tensor in layer %d", p.task.spec.Name, l)
	}
	select {
	case <-c:
		return nil
	case <-p.done:
		select {
		case <-c:
			return nil
		default:
			return p.err
		}
	case <-ctx.Done():
		return fmt.Errorf("wait for layer %d of task %q: %w", l, p.task.spec.Name, ctx.Err())
	}
}

// Task returns the target task's name.
func (p *Pending) Task() string { return p.task.spec.Name }

// Wait waits for the switch to finish and returns its statistics. After a
// successful Wait the task is published. After a failed one the previous
// task is published again; at a budget so tight that the switch evicted its
// blocks, Wait reloads them, and if that fails too (or readers of other
// views pin the room it needs: Wait never waits for readers) the error says
// so and no task is published until the next switch. Extra calls return the
// same result.
func (p *Pending) Wait() (*SwitchStats, error) {
	<-p.done
	p.once.Do(func() {
		r := p.r
		p.final = p.err
		r.mu.Lock()
		r.releaseLocked(p.st)
		if p.err != nil && p.retired != nil {
			if err := r.restoreLocked(p); err == nil {
				r.mu.Unlock()
			} else {
				// The retired task's blocks were evicted: reload it.
				r.mu.Unlock()
				rp, rerr := r.begin(context.Background(), p.retired, time.Now(), false)
				if rerr == nil {
					_, rerr = rp.Wait()
					// rp released the load slot itself.
					p.unlock = false
				}
				if rerr != nil {
					p.final = errors.Join(p.err, fmt.Errorf("restore task %q: %w", p.retired.spec.Name, rerr))
				} else {
					p.stats.Restored = true
				}
			}
		} else {
			r.mu.Unlock()
		}
		if p.unlock {
			<-r.loadSem
		}
	})
	if p.final != nil {
		return p.stats, p.final
	}
	return p.stats, nil
}

// evictLocked drops version v from its slot and frees the slot. r.mu is
// held; the caller has checked that v is evictable.
func (r *Runtime) evictLocked(v uint32) {
	s := r.slotOf[v]
	r.slotOf[v] = -1
	r.slots[s] = slotInfo{ver: -1}
	r.free = append(r.free, s)
}

// assignSlotsLocked gives every version of diff (in priority order; at most
// len(r.free) of them) a free slot and returns the loads in that order.
// Lowest free slots go to lowest versions, so consecutive versions on disk
// land in consecutive slots whenever the free list allows and reads need no
// preadv. r.mu is held.
func (r *Runtime) assignSlotsLocked(diff []uint32) []load {
	slices.Sort(r.free)
	byVer := slices.Clone(diff)
	slices.Sort(byVer)
	for i, v := range byVer {
		s := r.free[i]
		r.slotOf[v] = s
		r.slots[s] = slotInfo{ver: int32(v)}
	}
	r.free = slices.Delete(r.free, 0, len(diff))
	loads := make([]load, len(diff))
	for i, v := range diff {
		loads[i] = load{ver: v, slot: r.slotOf[v], pos: int32(i)}
	}
	return loads
}

// pinTaskLocked builds a task state holding one reference: it pins every
// slot of ti's versions (all of which have slots) and builds the task's
// paged views over them. r.mu is held.
func (r *Runtime) pinTaskLocked(ti *taskInfo) *taskState {
	st := &taskState{task: ti, refs: 1, views: make(map[string]*bsr.View, len(ti.spec.Tensors))}
	for _, v := range ti.versions {
		s := r.slotOf[v]
		r.slots[s].pins++
		st.slots = append(st.slots, s)
	}
	for k := range ti.spec.Tensors {
		ts := &ti.spec.Tensors[k]
		sl := make([]int32, len(ts.Versions))
		for i, v := range ts.Versions {
			sl[i] = r.slotOf[v]
		}
		st.views[ts.Name] = &bsr.View{Rows: ts.Rows, Cols: ts.Cols, R: r.m.R, C: r.m.C,
			Indptr: ts.Indptr, Indices: ts.Indices, Arena: r.arena, Slots: sl, Stride: int(r.slotBytes / 4)}
	}
	r.live[st] = struct{}{}
	return st
}

// markDiffLocked starts a new planning generation, marks every version of
// ti as needed by it (so candidates excludes them) and returns ti's versions
// that are not resident, in priority (layer) order. r.mu is held.
func (r *Runtime) markDiffLocked(ti *taskInfo) []uint32 {
	r.gen++
	if r.gen == 0 {
		clear(r.mark)
		r.gen = 1
	}
	var diff []uint32
	for _, v := range ti.versions {
		r.mark[v] = r.gen
		if r.slotOf[v] < 0 {
			diff = append(diff, v)
		}
	}
	return diff
}
