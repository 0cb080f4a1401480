package bsr

import (
	"fmt"
	"sync"
)

// Executor runs products on a fixed set of long-lived goroutines, so that a
// product passed an Executor in its Options allocates nothing. An Executor is
// safe for concurrent use; products submitted concurrently share its workers.
// Close it when done.
type Executor struct {
	workers int
	tasks   chan execTask
	once    sync.Once
}

type execTask struct {
	j      *job
	lo, hi int
}

// NewExecutor starts an executor whose products are split into workers
// ranges: workers-1 goroutines plus the calling goroutine.
func NewExecutor(workers int) (*Executor, error) {
	if workers < 1 {
		return nil, fmt.Errorf("bsr: executor needs at least 1 worker, got %d", workers)
	}
	e := &Executor{workers: workers, tasks: make(chan execTask, workers)}
	for i := 1; i < workers; i++ {
		go func() {
			for t := range e.tasks {
				t.j.do(t.lo, t.hi)
				t.j.wg.Done()
			}
		}()
	}
	return e, nil
}

// Workers returns the number of ranges a product is split into.
func (e *Executor) Workers() int { return e.workers }

// Close stops the executor's goroutines. Products must not be submitted
// after Close.
func (e *Executor) Close() {
	e.once.Do(func() { close(e.tasks) })
}

func (e *Executor) run(blockRows int, j *job) {
	w := min(e.workers, blockRows)
	j.wg.Add(w - 1)
	for i := 1; i < w; i++ {
		lo, hi := split(blockRows, w, i)
		e.tasks <- execTask{j: j, lo: lo, hi: hi}
	}
	lo, hi := split(blockRows, w, 0)
	j.do(lo, hi)
	j.wg.Wait()
}
