package diffload

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// load is one needed block version and the slot it goes to.
type load struct {
	ver  uint32
	slot int32
	pos  int32 // index in the plan's priority order
}

// segment is a run of memory a request reads into: count slots starting at
// slot, or count slots' worth of scratch when slot < 0 (a coalesced gap).
type segment struct {
	slot  int32
	count int32
}

// request is one pread or preadv.
type request struct {
	off   int64
	bytes int64
	gap   int64
	segs  []segment
	loads []load
}

// buildRequests coalesces loads (any order) into extents, merging across
// gaps of at most gapSlots versions, orders the extents by the best
// priority they contain (so the lowest layers are read first), and cuts
// each extent into requests of at most reqSlots slots and maxIOV buffers.
func (r *Runtime) buildRequests(loads []load) (reqs []request, extents int) {
	if len(loads) == 0 {
		return nil, 0
	}
	byVer := slices.Clone(loads)
	slices.SortFunc(byVer, func(a, b load) int { return int(int64(a.ver) - int64(b.ver)) })
	type extent struct {
		lo, hi int // range in byVer
		prio   int32
	}
	var exts []extent
	start := 0
	for i := 1; i <= len(byVer); i++ {
		if i < len(byVer) && int(byVer[i].ver-byVer[i-1].ver)-1 <= r.gapSlots {
			continue
		}
		e := extent{lo: start, hi: i, prio: byVer[start].pos}
		for _, l := range byVer[start:i] {
			e.prio = min(e.prio, l.pos)
		}
		exts = append(exts, e)
		start = i
	}
	slices.SortStableFunc(exts, func(a, b extent) int { return int(a.prio - b.prio) })
	S := r.slotBytes
	for _, e := range exts {
		ls := byVer[e.lo:e.hi]
		var cur request
		active := false
		curSlots := 0
		next := ls[0].ver
		for _, l := range ls {
			gap := int32(l.ver - next)
			// Start a new request when this version (and its gap) would
			// exceed the request size or the iovec limit.
			if active {
				extra := 1
				last := cur.segs[len(cur.segs)-1]
				if gap > 0 {
					extra++
				} else if last.slot >= 0 && last.slot+last.count == l.slot {
					extra = 0
				}
				if curSlots+int(gap)+1 > r.reqSlots || len(cur.segs)+extra > maxIOV {
					reqs = append(reqs, cur)
					active = false
				}
			}
			if !active {
				cur = request{off: r.m.DataOffset + int64(l.ver)*S}
				active = true
				curSlots = 0
				gap = 0
			}
			if gap > 0 {
				cur.segs = append(cur.segs, segment{slot: -1, count: gap})
				cur.gap += int64(gap) * S
				curSlots += int(gap)
			}
			if n := len(cur.segs); n > 0 && cur.segs[n-1].slot >= 0 && cur.segs[n-1].slot+cur.segs[n-1].count == l.slot {
				cur.segs[n-1].count++
			} else {
				cur.segs = append(cur.segs, segment{slot: l.slot, count: 1})
			}
			curSlots++
			cur.loads = append(cur.loads, l)
			next = l.ver + 1
		}
		if active {
			reqs = append(reqs, cur)
		}
	}
	for i := range reqs {
		n := int64(0)
		for _, s := range reqs[i].segs {
			n += int64(s.count)
		}
		reqs[i].bytes = n * S
	}
	// Issue the requests in layer order, not extent by extent: the layout
	// groups versions by the set of tasks using them and only then by
	// layer, so one extent spans every layer. Requests are already cut at
	// the request size, so reordering them costs no extra request and
	// lets the first layers become ready while later ones still load.
	prio := func(q request) int32 {
		p := q.loads[0].pos
		for _, l := range q.loads[1:] {
			p = min(p, l.pos)
		}
		return p
	}
	slices.SortStableFunc(reqs, func(a, b request) int { return int(prio(a) - prio(b)) })
	return reqs, len(exts)
}

// ioResult reports one finished request.
type ioResult struct {
	req      int
	err      error
	bad      *load // the version that failed its checksum
	verified []load
	verify   time.Duration
}

// ioStats summarises runIO.
type ioStats struct {
	requests int
	buffers  int
	bytes    int64
	gap      int64
	read     time.Duration
	verify   time.Duration
}

// setIO records what runIO did in the statistics of a switch or prefetch.
func (s *SwitchStats) setIO(st ioStats) {
	s.Requests = st.requests
	s.Buffers = st.buffers
	s.BytesRead = st.bytes
	s.GapBytes = st.gap
	s.Read = st.read
	s.Verify = st.verify
	if st.read > 0 {
		s.Bandwidth = float64(st.bytes) / st.read.Seconds()
	}
}

// runIO reads reqs with r.opt.InFlight goroutines straight into the pool
// slots and verifies every version's CRC, calling onVerified (on the calling
// goroutine) for each request's versions as they pass. Reader goroutines
// only issue reads; one verifier goroutine computes the checksums, so CPU
// spent on CRCs never delays the next read (on a 2-core board, a reader
// waiting for a CPU after its read returned would leave the queue short).
// At the first error or when ctx ends runIO stops issuing requests, waits
// for the requests in flight and returns the first error; failed names the
// version that failed its checksum, if one did.
func (r *Runtime) runIO(ctx context.Context, reqs []request, onVerified func([]load)) (st ioStats, failed *load, err error) {
	if len(reqs) == 0 {
		return st, nil, nil
	}
	if !r.direct {
		dropCache(r.f)
	}
	t0 := time.Now()
	var next atomic.Int64
	var stop atomic.Bool
	workers := min(r.opt.InFlight, len(reqs))
	res := make(chan ioResult, workers)
	toVerify := make(chan int, len(reqs))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(scratch []byte) {
			defer wg.Done()
			iov := make([][]byte, 0, 16)
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				if err := ctx.Err(); err != nil {
					res <- ioResult{req: i, err: err}
					return
				}
				if err := r.readRequest(&reqs[i], scratch, iov[:0]); err != nil {
					res <- ioResult{req: i, err: err}
					return
				}
				toVerify <- i
			}
		}(r.scratch[w])
	}
	verifierDone := make(chan struct{})
	go func() {
		defer close(verifierDone)
		for i := range toVerify {
			res <- r.verifyRequest(&reqs[i], i)
		}
	}()
	go func() {
		wg.Wait()
		close(toVerify)
		<-verifierDone
		close(res)
	}()
	for x := range res {
		if x.err != nil {
			if err == nil {
				err, failed = x.err, x.bad
			}
			stop.Store(true)
			continue
		}
		st.requests++
		st.buffers += len(reqs[x.req].segs)
		st.bytes += reqs[x.req].bytes
		st.gap += reqs[x.req].gap
		st.verify += x.verify
		if len(x.verified) > 0 && err == nil {
			onVerified(x.verified)
		}
	}
	st.read = time.Since(t0)
	if !r.direct {
		dropCache(r.f)
	}
	return st, failed, err
}

// readRequest performs one pread (one buffer) or preadv (several).
func (r *Runtime) readRequest(q *request, scratch []byte, iov [][]byte) error {
	S := r.slotBytes
	for _, s := range q.segs {
		if s.slot < 0 {
			iov = append(iov, scratch[:int64(s.count)*S])
		} else {
			iov = append(iov, r.arenaMem[int64(s.slot)*S:int64(s.slot+s.count)*S])
		}
	}
	var err error
	if len(iov) == 1 {
		err = preadFull(r.f, iov[0], q.off)
	} else {
		err = preadvFull(r.f, iov, q.off)
	}
	if err != nil {
		return fmt.Errorf("read %d bytes at offset %d of %s: %w", q.bytes, q.off, r.path, err)
	}
	return nil
}

// verifyRequest checks the CRC of every version a request brought in.
func (r *Runtime) verifyRequest(q *request, i int) ioResult {
	S := r.slotBytes
	t0 := time.Now()
	for k := range q.loads {
		l := &q.loads[k]
		b := r.arenaMem[int64(l.slot)*S : int64(l.slot+1)*S]
		if got, want := crc(b), r.m.VersionCRC[l.ver]; got != want {
			return ioResult{req: i, bad: l, verify: time.Since(t0),
				err: fmt.Errorf("block version %d at offset %d: CRC-32C %08x, manifest says %08x: %w", l.ver, r.m.DataOffset+int64(l.ver)*S, got, want, ErrCorrupt)}
		}
	}
	return ioResult{req: i, verified: q.loads, verify: time.Since(t0)}
}
