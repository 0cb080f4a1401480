package diffload

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPendingAcquireAfterSwitchAway: a Pending's views must not be handed
// out once its task state is gone (switched away and evicted, failed, or the
// runtime closed): the blocks behind them belong to other versions by then.
func TestPendingAcquireAfterSwitchAway(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.2, 31)
	r, err := Open(f.path, Options{Budget: f.largest(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := r.Begin(ctx, "taskA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	// Still published: Acquire works and the views are right.
	tv, err := p.Acquire()
	if err != nil {
		t.Fatalf("Acquire on a published pending switch: %v", err)
	}
	f.checkViews(t, tv)
	tv.Release()
	// Switching away at the tightest budget evicts taskA's own blocks.
	if _, err := r.Switch(ctx, "taskB"); err != nil {
		t.Fatal(err)
	}
	if tv, err := p.Acquire(); err == nil {
		tv.Release()
		t.Fatal("Acquire on a pending switch whose task was switched away and evicted succeeded")
	}
	checkInvariants(t, r)
	q, err := r.Begin(ctx, "taskB") // already published
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if tv, err := q.Acquire(); !errors.Is(err, ErrClosed) {
		if err == nil {
			tv.Release()
		}
		t.Fatalf("Acquire on a pending switch after Close: %v, want ErrClosed", err)
	}
}

// TestPendingAcquireAfterFailure: once a switch failed its views are gone.
func TestPendingAcquireAfterFailure(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.3, 32)
	corruptVersion(t, f.path, f.only["taskB"][0])
	r := openRT(t, f.path, Options{Budget: 2 * f.largest(t)})
	p, err := r.Begin(context.Background(), "taskB")
	if err != nil {
		t.Fatal(err)
	}
	<-p.done
	if tv, err := p.Acquire(); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			tv.Release()
		}
		t.Fatalf("Acquire on a failed switch: %v, want its ErrCorrupt", err)
	}
	if _, err := p.Wait(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Wait: %v", err)
	}
	if tv, err := p.Acquire(); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			tv.Release()
		}
		t.Fatalf("Acquire after Wait on a failed switch: %v", err)
	}
	checkInvariants(t, r)
}

// badPolicy names versions that are not candidates (the target's own).
type badPolicy struct {
	LRU
	victim uint32
}

func (b badPolicy) Order(_ string, cands []Candidate) {
	for i := range cands {
		cands[i].Version = b.victim
	}
}

// TestPolicyCannotEvictTarget: a policy that hands back versions outside
// the candidate list must not make the runtime evict the target's blocks
// or corrupt its bookkeeping; the switch fails instead.
func TestPolicyCannotEvictTarget(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.5, 33)
	// A version both tasks use: resident after taskA, needed by taskB.
	a, b := map[uint32]bool{}, map[uint32]bool{}
	for _, ts := range f.spec["taskA"].Tensors {
		for _, v := range ts.Versions {
			a[v] = true
		}
	}
	var shared uint32
	found := false
	for _, ts := range f.spec["taskB"].Tensors {
		for _, v := range ts.Versions {
			b[v] = true
			if a[v] && !found {
				shared, found = v, true
			}
		}
	}
	if !found {
		t.Fatal("family has no shared version")
	}
	r := openRT(t, f.path, Options{Budget: f.largest(t), Policy: badPolicy{victim: shared}})
	if _, err := r.Switch(context.Background(), "taskA"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Switch(context.Background(), "taskB")
	if err == nil || !strings.Contains(err.Error(), "policy") {
		t.Fatalf("switch with a policy naming non-candidates: %v, want an error naming the policy", err)
	}
	checkInvariants(t, r)
	if r.Current() != "taskA" {
		t.Fatalf("after the failed switch %q is published, want taskA", r.Current())
	}
	tv, err := r.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	f.checkViews(t, tv)
	tv.Release()
}

// TestNegativeBudget: a negative budget is an error, not a panic.
func TestNegativeBudget(t *testing.T) {
	dir := tmpDir(t)
	path := filepath.Join(dir, "empty.dms")
	w, err := CreateStore(path, WriterOptions{R: 2, C: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddTask(TaskSpec{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []int64{-1 << 20, -1} {
		r, err := Open(path, Options{Budget: b})
		if err == nil {
			r.Close()
			t.Fatalf("Open with budget %d succeeded", b)
		}
	}
	r := openRT(t, path, Options{Budget: 0})
	if _, err := r.Switch(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
}

// TestLyingHeaderCheap: a small file whose header claims the largest block
// shape (64 MiB blocks) and whose manifest lists many edge blocks must be
// rejected without allocating or scanning block-sized buffers per tensor.
func TestLyingHeaderCheap(t *testing.T) {
	dir := tmpDir(t)
	path := filepath.Join(dir, "lying.dms")
	const R, C, A = 4096, 4096, 4096
	h := header{dtype: dtypeF32, R: R, C: C, alignment: A, dataOffset: A, slotBytes: roundUp(R*C*4, A)}
	first := make([]byte, A)
	copy(first, h.encode())
	// One tensor of 1 row and 64 block columns: every block is an edge
	// block, and every block names version 0 of a store that has none.
	var tensors []TensorSpec
	for k := 0; k < 32; k++ {
		ts := TensorSpec{Name: "w" + itoa(int64(k)), Rows: 1, Cols: 64 * C, Indptr: []int32{0, 64}}
		for j := 0; j < 64; j++ {
			ts.Indices = append(ts.Indices, int32(j))
			ts.Versions = append(ts.Versions, 0)
		}
		tensors = append(tensors, ts)
	}
	man := encodeManifest(nil, nil, nil, nil, []TaskSpec{{Name: "t", Tensors: tensors}})
	ft := footer{denseOffset: A, manifestOffset: A, manifestBytes: uint64(len(man)), manifestCRC: crc(man)}
	data := append(append(first, man...), ft.encode()...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := OpenStore(path)
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "version 0 out of range") {
		t.Fatalf("OpenStore: %v, want the out-of-range version", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Fatalf("rejecting a %d-byte file allocated %d bytes", len(data), got)
	}
	if el > 2*time.Second {
		t.Fatalf("rejecting a %d-byte file took %v", len(data), el)
	}
}

// TestWaitErrorRace: the error a failed restore adds must not race with
// WaitTensor readers of the failed switch (run with -race).
func TestWaitErrorRace(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.2, 34)
	r := openRT(t, f.path, Options{Budget: f.largest(t), DirectIO: DirectOff})
	ctx := context.Background()
	if _, err := r.Switch(ctx, "taskA"); err != nil {
		t.Fatal(err)
	}
	// Now damage every block only taskA uses (so the restore's reload
	// fails too) and the last one only taskB uses.
	for _, v := range f.only["taskA"] {
		corruptVersion(t, f.path, v)
	}
	bOnly := f.only["taskB"]
	corruptVersion(t, f.path, bOnly[len(bOnly)-1])
	p, err := r.Begin(ctx, "taskB")
	if err != nil {
		t.Fatal(err)
	}
	last := f.spec["taskB"].Tensors[len(f.spec["taskB"].Tensors)-1].Name
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-p.done
		for i := 0; i < 100; i++ {
			p.WaitTensor(ctx, last)
			p.WaitLayer(ctx, 2)
		}
	}()
	_, err = p.Wait()
	wg.Wait()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `restore task "taskA"`) {
		t.Fatalf("switch over corrupt blocks: %v, want its failure and the failed restore of taskA", err)
	}
	checkInvariants(t, r)
}

// fixChecksums rewrites the header, footer and manifest checksums of b in
// place (where the regions are in range), so that a fuzzer's mutations reach
// the structural checks behind them.
func fixChecksums(b []byte) {
	le := binary.LittleEndian
	if len(b) >= HeaderSize {
		le.PutUint32(b[60:], crc(b[:60]))
	}
	if len(b) < HeaderSize+FooterSize {
		return
	}
	ft := b[len(b)-FooterSize:]
	off, n := le.Uint64(ft[32:]), le.Uint64(ft[40:])
	if off <= uint64(len(b)) && n <= uint64(len(b))-off {
		le.PutUint32(ft[48:], crc(b[off:off+n]))
	}
	le.PutUint32(ft[60:], crc(ft[:60]))
}

// FuzzOpenStoreValidChecksums fuzzes OpenStore with the checksums fixed up,
// so the layout, manifest and structure checks see the mutations. Accepted
// stores must be readable without panics.
func FuzzOpenStoreValidChecksums(f *testing.F) {
	dir := f.TempDir()
	orig := tinyStore(f, filepath.Join(dir, "seed.dms"))
	f.Add(orig)
	f.Add(orig[:len(orig)-1])
	path := filepath.Join(dir, "fuzz.dms")
	f.Fuzz(func(t *testing.T, data []byte) {
		data = append([]byte(nil), data...)
		fixChecksums(data)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(path)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		for _, task := range s.Manifest().Tasks {
			for _, ts := range task.Tensors {
				s.TaskTensor(task.Name, ts.Name)
			}
			for _, d := range task.Dense {
				if _, _, err := s.DenseTensor(task.Name, d.Name); err != nil {
					t.Fatalf("dense %s/%s of an accepted store: %v", task.Name, d.Name, err)
				}
			}
		}
	})
}

// TestRestoreDoesNotWaitForReaders: when a failed switch at a tight budget
// must reload the retired task but readers of the failed switch's views
// pin the room, Wait must fail (the previous task has to be switched to
// again) instead of waiting forever for those readers, which may well be
// waiting for Wait.
func TestRestoreDoesNotWaitForReaders(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.2, 35)
	bOnly := f.only["taskB"]
	corruptVersion(t, f.path, bOnly[len(bOnly)-1])
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		r := openRT(t, f.path, Options{Budget: f.largest(t), InFlight: 1, RequestSize: 4096, CoalesceGap: -1})
		if _, err := r.Switch(ctx, "taskA"); err != nil {
			t.Fatal(err)
		}
		p, err := r.Begin(ctx, "taskB")
		if err != nil {
			t.Fatal(err)
		}
		held, err := p.Acquire()
		if err != nil {
			// The switch failed before the views were taken: retry.
			p.Wait()
			if attempt == 5 {
				t.Fatalf("could not acquire the views of a running switch: %v", err)
			}
			continue
		}
		done := make(chan error, 1)
		go func() {
			_, err := p.Wait()
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Wait: %v, want the corrupt block", err)
			}
		case <-time.After(5 * time.Second):
			held.Release()
			<-done
			t.Fatal("Wait blocked on readers of the failed switch while restoring the previous task")
		}
		held.Release()
		checkInvariants(t, r)
		if r.Current() == "" {
			// The restore was refused for lack of room: a switch brings
			// taskA back now that the readers are gone.
			if _, err := r.Switch(ctx, "taskA"); err != nil {
				t.Fatal(err)
			}
		}
		tv, err := r.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		f.checkViews(t, tv)
		tv.Release()
		return
	}
}

// badPrefetchPolicy orders like LRU until bad is set; then it lets a
// prefetch evict anything and names victim as every candidate.
type badPrefetchPolicy struct {
	LRU
	bad    bool
	victim uint32
}

func (b *badPrefetchPolicy) Order(target string, cands []Candidate) {
	if !b.bad {
		b.LRU.Order(target, cands)
		return
	}
	for i := range cands {
		cands[i].Version = b.victim
	}
}

func (b *badPrefetchPolicy) PrefetchEvictable(current, target string, v uint32) bool { return true }

// TestPrefetchPolicyCannotEvictPublished: a faulty policy must not make a
// prefetch evict the published task's (pinned) blocks.
func TestPrefetchPolicyCannotEvictPublished(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.3, 36)
	pol := &badPrefetchPolicy{victim: f.only["taskA"][0]}
	r := openRT(t, f.path, Options{Budget: f.largest(t) + 4*4096, Policy: pol})
	ctx := context.Background()
	for _, task := range []string{"taskC", "taskA"} {
		if _, err := r.Switch(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	pol.bad = true
	pf, err := r.Prefetch(ctx, "taskB")
	if err != nil {
		t.Fatal(err)
	}
	pf.Wait()
	checkInvariants(t, r)
	tv, err := r.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	f.checkViews(t, tv)
	tv.Release()
}
