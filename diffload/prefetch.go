package diffload

import (
	"context"
	"fmt"
	"time"
)

// Prefetch is a background load of a likely next task's diff set into free
// pool slots and, under a policy that implements PrefetchEvicter (such as
// TransitionPolicy), into slots it frees by evicting versions that neither
// the published task nor any held view pins and that the policy judges
// less likely to be needed than the prefetched task; a later switch reuses
// whatever arrived.
type Prefetch struct {
	task   string
	cancel context.CancelFunc
	done   chan struct{}
	stats  *SwitchStats
	err    error
}

// Prefetch starts loading task's missing block versions in layer order, in
// the background, into free slots and slots of versions the policy lets it
// evict (see Prefetch). It replaces (cancels) an earlier prefetch. Cancel
// ctx or call Cancel to stop it; blocks that arrived and passed their checksums stay
// resident.
func (r *Runtime) Prefetch(ctx context.Context, task string) (*Prefetch, error) {
	ti, ok := r.byName[task]
	if !ok {
		return nil, fmt.Errorf("prefetch on %s: %w: %q", r.path, ErrNoTask, task)
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &Prefetch{task: task, cancel: cancel, done: make(chan struct{}),
		stats: &SwitchStats{Task: task, DirectIO: r.direct, FallbackReason: r.fallback}}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("prefetch %q: %w", task, ErrClosed)
	}
	if old := r.prefetch; old != nil {
		old.Cancel()
	}
	r.prefetch = p
	r.mu.Unlock()
	go func() {
		defer close(p.done)
		defer cancel()
		defer func() {
			r.mu.Lock()
			if r.prefetch == p {
				r.prefetch = nil
			}
			r.mu.Unlock()
		}()
		select {
		case r.loadSem <- struct{}{}:
		case <-pctx.Done():
			p.err = fmt.Errorf("prefetch %q: %w", task, pctx.Err())
			return
		}
		defer func() { <-r.loadSem }()
		p.err = r.prefetch1(pctx, ti, p.stats)
	}()
	return p, nil
}

func (r *Runtime) prefetch1(ctx context.Context, ti *taskInfo, stats *SwitchStats) error {
	start := time.Now()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("prefetch %q: %w", ti.spec.Name, ErrClosed)
	}
	diff := r.markDiffLocked(ti)
	stats.Reused = len(ti.versions) - len(diff)
	// Make room by evicting resident versions that neither the prefetched
	// task nor any held view needs (the published task's slots are
	// pinned, so candidates never include them), but only under a policy
	// that can judge them worth less than the prefetch: a wrong guess
	// would otherwise cost the next switch the blocks it evicted.
	judge, canJudge := r.policy.(PrefetchEvicter)
	if need := len(diff) - len(r.free); need > 0 && canJudge {
		cur := ""
		if r.current != nil {
			cur = r.current.task.spec.Name
		}
		cands := r.candidates()
		r.policy.Order(cur, cands)
		n := 0
		for _, c := range cands {
			if n == need {
				break
			}
			// A faulty policy may hand back versions that are not
			// candidates (pinned, needed, or listed twice): skip them.
			if !r.evictable(c.Version) || !judge.PrefetchEvictable(cur, ti.spec.Name, c.Version) {
				continue
			}
			r.evictLocked(c.Version)
			n++
		}
		stats.Evicted = n
	}
	// Lowest layers first, as far as the room goes.
	diff = diff[:min(len(diff), len(r.free))]
	loads := r.assignSlotsLocked(diff)
	r.mu.Unlock()
	reqs, extents := r.buildRequests(loads)
	stats.Extents = extents
	stats.Plan = time.Since(start)
	verified := make([]bool, len(loads))
	ioSt, _, err := r.runIO(ctx, reqs, func(ls []load) {
		r.mu.Lock()
		for _, l := range ls {
			r.slots[l.slot].valid = true
			r.slots[l.slot].lastUse = r.tick
			verified[l.pos] = true
		}
		r.mu.Unlock()
	})
	r.mu.Lock()
	n := 0
	for _, l := range loads {
		if verified[l.pos] {
			n++
			continue
		}
		r.slotOf[l.ver] = -1
		r.slots[l.slot] = slotInfo{ver: -1}
		r.free = append(r.free, l.slot)
	}
	r.mu.Unlock()
	stats.Versions = n
	stats.setIO(ioSt)
	stats.Total = time.Since(start)
	if err != nil {
		return fmt.Errorf("prefetch %q: %w", ti.spec.Name, err)
	}
	return nil
}

// Task returns the prefetched task's name.
func (p *Prefetch) Task() string { return p.task }

// Cancel stops the prefetch; requests in flight finish and what they
// brought in stays resident once verified.
func (p *Prefetch) Cancel() { p.cancel() }

// Done is closed when the prefetch has finished.
func (p *Prefetch) Done() <-chan struct{} { return p.done }

// Wait waits for the prefetch to finish and returns its statistics
// (Versions counts the versions loaded) and error (context.Canceled after
// Cancel).
func (p *Prefetch) Wait() (*SwitchStats, error) {
	<-p.done
	return p.stats, p.err
}
