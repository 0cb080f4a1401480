package diffload

import "fmt"

// Acquire returns a reference to the task views the pending switch is
// building, usable before the switch finished: a tensor's view may be used
// once WaitTensor (or WaitLayer for its layer) reported it ready. The
// reference keeps the blocks in place until Release, also after Wait and
// across later switches. It fails with the switch's error once the switch
// failed (blocks that failed verification were freed), with ErrClosed after
// Close, and when the task state is gone (the switch was waited for and its
// task has since been switched away from: its blocks may hold other
// versions by now; use Runtime.Acquire). The C ABI's dms_pending_views is
// built on it.
func (p *Pending) Acquire() (*TaskViews, error) {
	select {
	case <-p.done:
		if p.err != nil {
			return nil, p.err
		}
	default:
	}
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("views of the switch to %q: %w", p.task.spec.Name, ErrClosed)
	}
	if p.st.refs <= 0 {
		return nil, fmt.Errorf("views of the switch to %q: the task is no longer published and its blocks were released; acquire the published task instead", p.task.spec.Name)
	}
	p.st.refs++
	return &TaskViews{r: r, st: p.st}, nil
}
