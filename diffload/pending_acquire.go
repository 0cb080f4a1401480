package diffload

// Acquire returns a reference to the task views the pending switch is
// building, usable before the switch finished: a tensor's view may be used
// once WaitTensor (or WaitLayer for its layer) reported it ready. The
// reference keeps the blocks in place until Release, also after Wait and
// across later switches. After a failed switch the views must not be used
// (blocks that failed verification were freed). The C ABI's
// dms_pending_views is built on it.
func (p *Pending) Acquire() (*TaskViews, error) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	p.st.refs++
	return &TaskViews{r: p.r, st: p.st}, nil
}
