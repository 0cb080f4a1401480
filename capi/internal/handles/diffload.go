package handles

import (
	"context"
	"errors"
	"fmt"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/diffload"
)

// OpenDiffload opens a store with the diffload runtime; it is the OpenFunc
// of the library.
func OpenDiffload(path string, opt Options) (Backend, error) {
	r, err := diffload.Open(path, diffload.Options{
		Budget:      opt.Budget,
		CoalesceGap: opt.CoalesceGap,
		RequestSize: opt.RequestSize,
		InFlight:    opt.InFlight,
		DirectIO:    diffload.DirectMode(opt.DirectIO),
	})
	if err != nil {
		return nil, &Error{Code: openCode(path, opt.Budget, err), Err: err}
	}
	return dlRuntime{r}, nil
}

// openCode classifies a failed diffload.Open: corrupt files, file-system
// errors, and budgets below the largest task (found by reading the
// manifest again, which only happens on this error path).
func openCode(path string, budget int64, err error) Code {
	if errors.Is(err, diffload.ErrCorrupt) {
		return Corrupt
	}
	if c := Classify(err, Internal); c != Internal {
		return c
	}
	s, serr := diffload.OpenStore(path)
	if serr != nil {
		return Internal
	}
	defer s.Close()
	if budget < largestTask(s.Manifest()) {
		return Budget
	}
	return Internal
}

// largestTask returns the pool bytes the largest task of m needs: its
// distinct block versions times the slot size.
func largestTask(m *diffload.Manifest) int64 {
	var largest int64
	for i := range m.Tasks {
		seen := map[uint32]struct{}{}
		for _, t := range m.Tasks[i].Tensors {
			for _, v := range t.Versions {
				seen[v] = struct{}{}
			}
		}
		largest = max(largest, int64(len(seen))*m.SlotBytes)
	}
	return largest
}

// dlCode classifies an error of the diffload runtime.
func dlCode(err error, fallback Code) Code {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, diffload.ErrNoTask):
		return NotFound
	case errors.Is(err, diffload.ErrNotPublished):
		return NoTask
	case errors.Is(err, diffload.ErrClosed):
		return BadHandle
	case errors.Is(err, diffload.ErrCorrupt):
		return Corrupt
	}
	return Classify(err, fallback)
}

// dlErr attaches the diffload classification to err.
func dlErr(err error, fallback Code) error {
	if err == nil {
		return nil
	}
	return &Error{Code: dlCode(err, fallback), Err: err}
}

// stats converts diffload's switch statistics.
func stats(s *diffload.SwitchStats) Stats {
	if s == nil {
		return Stats{}
	}
	return Stats{
		Task: s.Task, BytesRead: s.BytesRead,
		Requests: s.Requests, Extents: s.Extents, Versions: s.Versions, Evicted: s.Evicted,
		Plan: s.Plan, Read: s.Read, Verify: s.Verify, Publish: s.Publish, Total: s.Total,
		FirstLayerReady: s.FirstLayerReady, Bandwidth: s.Bandwidth,
		DirectIO: s.DirectIO, FallbackReason: s.FallbackReason,
		ReusedVersions: s.Reused,
	}
}

// dlRuntime adapts *diffload.Runtime to Backend.
type dlRuntime struct{ r *diffload.Runtime }

func (d dlRuntime) Tasks() []string { return d.r.Tasks() }

func (d dlRuntime) Switch(ctx context.Context, task string) (Stats, error) {
	st, err := d.r.Switch(ctx, task)
	if err != nil {
		return Stats{}, dlErr(err, Internal)
	}
	return stats(st), nil
}

func (d dlRuntime) Begin(ctx context.Context, task string) (Pending, error) {
	p, err := d.r.Begin(ctx, task)
	if err != nil {
		return nil, dlErr(err, Internal)
	}
	return dlPending{p}, nil
}

func (d dlRuntime) Prefetch(ctx context.Context, task string) (Prefetching, error) {
	p, err := d.r.Prefetch(ctx, task)
	if err != nil {
		return nil, dlErr(err, Internal)
	}
	return dlPrefetch{p}, nil
}

func (d dlRuntime) Acquire() (Views, error) {
	v, err := d.r.Acquire()
	if err != nil {
		return nil, dlErr(err, NoTask)
	}
	return dlViews{v}, nil
}

func (d dlRuntime) Resident() (int64, int) { return d.r.Resident() }

func (d dlRuntime) Close() error { return dlErr(d.r.Close(), IO) }

// dlPending adapts *diffload.Pending.
type dlPending struct{ p *diffload.Pending }

func (d dlPending) WaitLayer(ctx context.Context, l int) error {
	return dlErr(d.p.WaitLayer(ctx, l), NotFound)
}

func (d dlPending) WaitTensor(ctx context.Context, name string) error {
	_, err := d.p.WaitTensor(ctx, name)
	return dlErr(err, NotFound)
}

func (d dlPending) Wait() (Stats, error) {
	st, err := d.p.Wait()
	if err != nil {
		return Stats{}, dlErr(err, Internal)
	}
	return stats(st), nil
}

func (d dlPending) Acquire() (Views, error) {
	v, err := d.p.Acquire()
	if err != nil {
		return nil, dlErr(err, Internal)
	}
	return dlViews{v}, nil
}

// dlPrefetch adapts *diffload.Prefetch.
type dlPrefetch struct{ p *diffload.Prefetch }

func (d dlPrefetch) Cancel() { d.p.Cancel() }

func (d dlPrefetch) Wait() error {
	_, err := d.p.Wait()
	return dlErr(err, Internal)
}

// dlViews adapts *diffload.TaskViews.
type dlViews struct{ v *diffload.TaskViews }

func (d dlViews) Task() string      { return d.v.Task() }
func (d dlViews) Tensors() []string { return d.v.Tensors() }
func (d dlViews) Release()          { d.v.Release() }

func (d dlViews) Tensor(name string) (*bsr.View, error) {
	v, err := d.v.Tensor(name)
	if err != nil {
		return nil, &Error{Code: NotFound, Err: err}
	}
	return v, nil
}

func (d dlViews) Dense(name string) ([]float32, []int, error) {
	vals, shape, err := d.v.Dense(name)
	if err != nil {
		return nil, nil, &Error{Code: NotFound, Err: fmt.Errorf("%w", err)}
	}
	return vals, shape, nil
}
