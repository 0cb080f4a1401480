package diffload

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmsparse/dmsparse/bsr"
)

// residentSet returns the versions held in valid slots.
func residentSet(r *Runtime) map[uint32]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[uint32]bool{}
	for _, s := range r.slots {
		if s.valid {
			out[uint32(s.ver)] = true
		}
	}
	return out
}

// checkInvariants verifies the pool's bookkeeping: slot and version maps
// agree, the free list holds exactly the empty slots, and every slot's pin
// count equals the number of live task states using it.
func checkInvariants(t testing.TB, r *Runtime) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	isFree := map[int32]bool{}
	for _, s := range r.free {
		if isFree[s] || r.slots[s].ver != -1 {
			t.Fatalf("free list: slot %d repeated or in use (version %d)", s, r.slots[s].ver)
		}
		isFree[s] = true
	}
	pins := make([]int32, len(r.slots))
	for st := range r.live {
		if st.refs <= 0 {
			t.Fatalf("live state of %s with %d refs", st.task.spec.Name, st.refs)
		}
		for _, s := range st.slots {
			pins[s]++
		}
	}
	for i, s := range r.slots {
		if s.ver < 0 != isFree[int32(i)] {
			t.Fatalf("slot %d: version %d, free %v", i, s.ver, isFree[int32(i)])
		}
		if s.ver >= 0 && r.slotOf[s.ver] != int32(i) {
			t.Fatalf("slot %d holds version %d but slotOf says %d", i, s.ver, r.slotOf[s.ver])
		}
		if s.pins != pins[i] {
			t.Fatalf("slot %d: %d pins, live states use it %d times", i, s.pins, pins[i])
		}
	}
	for v, s := range r.slotOf {
		if s >= 0 && r.slots[s].ver != int32(v) {
			t.Fatalf("version %d maps to slot %d holding %d", v, s, r.slots[s].ver)
		}
	}
}

func switchAndCheck(t *testing.T, r *Runtime, f *family, task string) *SwitchStats {
	t.Helper()
	defer checkInvariants(t, r)
	before := residentSet(r)
	st, err := r.Switch(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	ti := r.byName[task]
	want := 0
	for _, v := range ti.versions {
		if !before[v] {
			want++
		}
	}
	if st.Versions != want {
		t.Fatalf("switch to %s read %d versions, want the diff set of %d", task, st.Versions, want)
	}
	if st.BytesRead != int64(st.Versions)*r.slotBytes+st.GapBytes {
		t.Fatalf("switch to %s: %d bytes read for %d versions and %d gap bytes", task, st.BytesRead, st.Versions, st.GapBytes)
	}
	if st.Reused+st.Versions != len(ti.versions) {
		t.Fatalf("reused %d + read %d != %d versions", st.Reused, st.Versions, len(ti.versions))
	}
	if u := r.inUse(); u > r.opt.Budget {
		t.Fatalf("pool uses %d bytes, budget %d", u, r.opt.Budget)
	}
	after := residentSet(r)
	for _, v := range ti.versions {
		if !after[v] {
			t.Fatalf("target version %d not resident after the switch", v)
		}
	}
	tv, err := r.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer tv.Release()
	if tv.Task() != task {
		t.Fatalf("published %s, want %s", tv.Task(), task)
	}
	f.checkViews(t, tv)
	return st
}

func TestSwitchReturnsStoredBlocks(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.6, 10)
	for _, budget := range []int64{f.largest(t), 3 * f.largest(t)} {
		for _, gap := range []int64{-1, 0, 1 << 20} {
			r := openRT(t, f.path, Options{Budget: budget, CoalesceGap: gap, InFlight: 3, RequestSize: 8192})
			if _, err := r.Acquire(); !errors.Is(err, ErrNotPublished) {
				t.Fatalf("Acquire before any switch: %v", err)
			}
			seq := []string{"taskA", "taskB", "taskC", "taskA", "taskA", "taskC", "taskB"}
			for i, task := range seq {
				st := switchAndCheck(t, r, f, task)
				if i == 4 && st.Versions != 0 {
					t.Fatalf("switch to the published task read %d versions", st.Versions)
				}
			}
			if budget > f.largest(t) {
				// Everything fits: the second round reads nothing.
				for _, task := range []string{"taskA", "taskB", "taskC"} {
					if st := switchAndCheck(t, r, f, task); st.Versions != 0 || st.Evicted != 0 {
						t.Fatalf("budget fits all: switch to %s read %d evicted %d", task, st.Versions, st.Evicted)
					}
				}
			}
		}
	}
}

func TestBudgetBelowLargestTask(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.6, 11)
	need := f.largest(t)
	_, err := Open(f.path, Options{Budget: need - 1})
	if err == nil {
		t.Fatal("budget below the largest task accepted")
	}
	for _, s := range []string{"budget", itoa(need - 1), itoa(need)} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
	r := openRT(t, f.path, Options{Budget: need})
	if _, err := r.Switch(context.Background(), "nope"); !errors.Is(err, ErrNoTask) {
		t.Fatalf("unknown task: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// corruptVersion flips a byte of version id in the file at path.
func corruptVersion(t *testing.T, path string, id uint32) {
	t.Helper()
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	vi := s.Manifest().Version(id)
	s.Close()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	fh.ReadAt(b, vi.Offset+5)
	b[0] ^= 0xff
	if _, err := fh.WriteAt(b, vi.Offset+5); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptBlockKeepsPreviousTask(t *testing.T) {
	for _, tight := range []bool{false, true} {
		dir := tmpDir(t)
		f := writeFamily(t, dir, 32, 32, 2, 0.3, 13)
		bad := f.only["taskB"][len(f.only["taskB"])/2]
		corruptVersion(t, f.path, bad)
		budget := 2 * f.largest(t)
		if tight {
			budget = f.largest(t)
		}
		r := openRT(t, f.path, Options{Budget: budget})
		switchAndCheck(t, r, f, "taskA")
		held, _ := r.Acquire()
		if tight {
			// Let the switch retire taskA; the reader keeps its blocks.
			held.Release()
			held = nil
		}
		_, before := r.Resident()
		st, err := r.Switch(context.Background(), "taskB")
		if err == nil {
			t.Fatal("switch over a corrupt block succeeded")
		}
		if tight != st.Retired || tight != st.Restored {
			t.Fatalf("tight budget %v: retired %v restored %v", tight, st.Retired, st.Restored)
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"taskB"`) || !strings.Contains(err.Error(), "tensor") || !strings.Contains(err.Error(), "block") {
			t.Fatalf("error %q does not name task, tensor and block", err)
		}
		if r.Current() != "taskA" {
			t.Fatalf("after the failed switch %q is published, want taskA", r.Current())
		}
		tv, err := r.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		f.checkViews(t, tv)
		tv.Release()
		if held != nil {
			f.checkViews(t, held)
			held.Release()
		}
		checkInvariants(t, r)
		if got := residentSet(r); got[bad] {
			t.Fatal("the corrupt version is resident")
		}
		if !tight {
			if _, after := r.Resident(); after < before {
				t.Fatalf("resident versions dropped from %d to %d with room to spare", before, after)
			}
		}
		if u := r.inUse(); u > budget {
			t.Fatalf("pool %d over budget %d", u, budget)
		}
	}
}

// TestEvictionSparesTargetAndReaders runs random switches at the tightest
// budget while a reader holds an old task, checking the budget, the
// target's residency and the held views' contents.
func TestEvictionSparesTargetAndReaders(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 4, 0.5, 14)
	budget := f.largest(t) + 8*4096
	tasks := f.tasks
	P := [][]float64{{0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}, {1, 0, 0, 0}}
	tp, err := NewTransitionPolicy(tasks, P)
	if err != nil {
		t.Fatal(err)
	}
	for _, pol := range []EvictionPolicy{nil, tp} {
		r := openRT(t, f.path, Options{Budget: budget, Policy: pol})
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 12; i++ {
			switchAndCheck(t, r, f, tasks[rng.IntN(len(tasks))])
		}
		// A reader holds taskA while others are switched to with room.
		r2 := openRT(t, f.path, Options{Budget: 3 * f.largest(t), Policy: pol})
		switchAndCheck(t, r2, f, "taskA")
		held, err := r2.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range []string{"taskB", "taskC", "taskD", "taskB"} {
			switchAndCheck(t, r2, f, task)
			f.checkViews(t, held)
		}
		held.Release()
	}
}

// TestSwitchWaitsForReaders: at the tightest budget a switch must wait for
// a reader of the old task, and fails cleanly when its context ends first.
func TestSwitchWaitsForReaders(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.2, 15)
	r := openRT(t, f.path, Options{Budget: f.largest(t)})
	switchAndCheck(t, r, f, "taskA")
	held, _ := r.Acquire()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := r.Switch(ctx, "taskB")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "held by readers") {
		t.Fatalf("switch with a reader holding the pool: %v", err)
	}
	if r.Current() != "taskA" {
		t.Fatalf("after the timed-out switch %q is published", r.Current())
	}
	f.checkViews(t, held)
	done := make(chan error, 1)
	go func() {
		_, err := r.Switch(context.Background(), "taskB")
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	f.checkViews(t, held)
	held.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tv, _ := r.Acquire()
	f.checkViews(t, tv)
	tv.Release()
}

func TestPipelinedReadiness(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.5, 16)
	r := openRT(t, f.path, Options{Budget: 3 * f.largest(t), InFlight: 2, RequestSize: 4096})
	ctx := context.Background()
	p, err := r.Begin(ctx, "taskA")
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range defaultShapes {
		if err := p.WaitLayer(ctx, sh.layer); err != nil {
			t.Fatal(err)
		}
		v, err := p.WaitTensor(ctx, sh.name)
		if err != nil {
			t.Fatal(err)
		}
		want := f.want["taskA"][sh.name]
		if got := v.Contiguous(); !slices.Equal(got.Data, want.Data) {
			t.Fatalf("tensor %s ready before its blocks were", sh.name)
		}
	}
	if err := p.WaitLayer(ctx, 99); err == nil {
		t.Fatal("WaitLayer on a missing layer succeeded")
	}
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.FirstLayerReady <= 0 || st.FirstLayerReady > st.Total {
		t.Fatalf("first layer ready %v, total %v", st.FirstLayerReady, st.Total)
	}
	if st.Requests < st.Extents || st.Bandwidth <= 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPrefetch(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.5, 17)
	r := openRT(t, f.path, Options{Budget: 2 * f.largest(t)})
	ctx := context.Background()
	switchAndCheck(t, r, f, "taskA")
	held, _ := r.Acquire()
	pf, err := r.Prefetch(ctx, "taskB")
	if err != nil {
		t.Fatal(err)
	}
	pst, err := pf.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if pst.Versions == 0 {
		t.Fatal("prefetch loaded nothing")
	}
	f.checkViews(t, held) // the current task was not evicted
	held.Release()
	st := switchAndCheck(t, r, f, "taskB")
	if st.Versions != 0 && pst.Versions+st.Versions+pst.Reused != len(r.byName["taskB"].versions) {
		t.Fatalf("prefetch %d + switch %d + reused %d != %d", pst.Versions, st.Versions, pst.Reused, len(r.byName["taskB"].versions))
	}
	if st.Reused < pst.Versions {
		t.Fatalf("switch reused %d versions, the prefetch loaded %d", st.Reused, pst.Versions)
	}
	// A cancelled prefetch leaves the pool consistent.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	pf, err = r.Prefetch(cctx, "taskC")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pf.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled prefetch: %v", err)
	}
	r.mu.Lock()
	for i, s := range r.slots {
		if s.ver >= 0 && !s.valid {
			t.Fatalf("slot %d holds version %d unverified after a cancelled prefetch", i, s.ver)
		}
	}
	r.mu.Unlock()
	// Prefetch then switch to the same task immediately.
	pf, _ = r.Prefetch(ctx, "taskC")
	if _, err := r.Switch(ctx, "taskC"); err != nil {
		t.Fatal(err)
	}
	if _, err := pf.Wait(); err != nil {
		t.Fatalf("prefetch of the switch target: %v", err)
	}
	tv, err := r.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	f.checkViews(t, tv)
	tv.Release()
	// A switch while a prefetch of another task may still run: the
	// prefetch is cancelled or finishes first (and may have evicted some
	// of the target's unpinned versions, so the diff set is not known in
	// advance); either way the switch publishes exactly the stored blocks.
	pf, _ = r.Prefetch(ctx, "taskA")
	if _, err := r.Switch(ctx, "taskB"); err != nil {
		t.Fatal(err)
	}
	pf.Wait()
	checkInvariants(t, r)
	tv, err = r.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	f.checkViews(t, tv)
	tv.Release()
}

func TestTransitionPolicyOrder(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.3, 18)
	s, err := OpenStore(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := NewTransitionPolicy(f.tasks, [][]float64{{0, 0.9, 0.1}, {0, 0, 1}, {1, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Init(s.Manifest()); err != nil {
		t.Fatal(err)
	}
	b, c := f.only["taskB"][0], f.only["taskC"][0]
	cands := []Candidate{{Version: b, LastUse: 1}, {Version: c, LastUse: 5}}
	tp.Order("taskA", cands)
	if cands[0].Version != c {
		t.Fatal("after taskA, taskB is likely next: its block must be kept, taskC's evicted first")
	}
	LRU{}.Order("taskA", cands)
	if cands[0].Version != b {
		t.Fatal("LRU must evict the older block first")
	}
	if _, err := NewTransitionPolicy([]string{"a"}, [][]float64{{-1}}); err == nil {
		t.Fatal("negative probability accepted")
	}
	bad, _ := NewTransitionPolicy([]string{"zzz"}, [][]float64{{1}})
	if err := bad.Init(s.Manifest()); err == nil {
		t.Fatal("unknown task accepted")
	}
}

func TestBuildRequests(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 1, 0.5, 19)
	r := openRT(t, f.path, Options{Budget: f.largest(t) + 64*4096, CoalesceGap: 2 * 4096, RequestSize: 4 * 4096})
	S := r.slotBytes
	// versions 10,11,12 (slots 0,1,5), gap 2 -> 15 merged, gap 5 -> 21 separate; 40 has priority 0.
	loads := []load{{40, 9, 0}, {10, 0, 1}, {11, 1, 2}, {12, 5, 3}, {15, 6, 4}, {21, 7, 5}}
	reqs, ext := r.buildRequests(loads)
	if ext != 3 {
		t.Fatalf("%d extents, want 3", ext)
	}
	if reqs[0].off != r.m.DataOffset+40*S {
		t.Fatalf("first request at %d, want version 40 (lowest layer first)", reqs[0].off)
	}
	// Extent 10..15 is 6 slots: split at 4 slots.
	if reqs[1].off != r.m.DataOffset+10*S || reqs[1].bytes != 3*S || len(reqs[1].segs) != 2 {
		t.Fatalf("request 1 = %+v", reqs[1])
	}
	if reqs[2].off != r.m.DataOffset+15*S || reqs[2].bytes != S {
		t.Fatalf("request 2 = %+v", reqs[2])
	}
	if reqs[3].off != r.m.DataOffset+21*S || len(reqs) != 4 {
		t.Fatalf("requests %+v", reqs)
	}
	r2 := openRT(t, f.path, Options{Budget: f.largest(t) + 64*4096, CoalesceGap: 4 * 4096, RequestSize: 1 << 20})
	reqs, _ = r2.buildRequests([]load{{10, 0, 0}, {12, 1, 1}})
	if len(reqs) != 1 || reqs[0].gap != S || reqs[0].bytes != 3*S || len(reqs[0].segs) != 3 || reqs[0].segs[1].slot != -1 {
		t.Fatalf("gap request %+v", reqs)
	}
}

// TestStress runs readers doing products on acquired views while switches
// and prefetches run, under the race detector in CI.
func TestStress(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.5, 20)
	r := openRT(t, f.path, Options{Budget: f.largest(t) + 16*4096, InFlight: 3, RequestSize: 3 * 4096})
	ctx := context.Background()
	// Expected products per task and tensor.
	type key struct{ task, tensor string }
	xs := map[string][]float32{}
	want := map[key][]float32{}
	for _, task := range f.tasks {
		for name, m := range f.want[task] {
			x := xs[name]
			if x == nil {
				x = make([]float32, m.Cols*2)
				for i := range x {
					x[i] = float32(i%7) - 3
				}
				xs[name] = x
			}
			y := make([]float32, m.Rows*2)
			if err := bsr.Mul(y, m.View(), x, 2, bsr.Options{Workers: 1}); err != nil {
				t.Fatal(err)
			}
			want[key{task, name}] = y
		}
	}
	if _, err := r.Switch(ctx, "taskA"); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var products atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for !stop.Load() {
				tv, err := r.Acquire()
				if errors.Is(err, ErrNotPublished) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				for _, sh := range defaultShapes {
					v, err := tv.Tensor(sh.name)
					if err != nil {
						errc <- err
						return
					}
					y := make([]float32, v.Rows*2)
					if err := bsr.Mul(y, v, xs[sh.name], 2, bsr.Options{Workers: 1}); err != nil {
						errc <- err
						return
					}
					if !slices.Equal(y, want[key{tv.Task(), sh.name}]) {
						errc <- errors.New("product on " + tv.Task() + "/" + sh.name + " differs: blocks changed under a reader")
						return
					}
					products.Add(1)
				}
				tv.Release()
			}
		}(g)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	n := 40
	if testing.Short() {
		n = 15
	}
	for i := 0; i < n; i++ {
		task := f.tasks[rng.IntN(len(f.tasks))]
		if rng.IntN(3) == 0 {
			pf, err := r.Prefetch(ctx, f.tasks[rng.IntN(len(f.tasks))])
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Wait()
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if _, err := r.Switch(sctx, task); err != nil {
			cancel()
			t.Fatal(err)
		}
		cancel()
		if u := r.inUse(); u > r.opt.Budget {
			t.Fatalf("pool %d over budget %d", u, r.opt.Budget)
		}
	}
	stop.Store(true)
	wg.Wait()
	checkInvariants(t, r)
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if products.Load() == 0 {
		t.Fatal("readers did no work")
	}
}

func TestCloseWithHeldViews(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 1, 0.5, 21)
	r, err := Open(f.path, Options{Budget: f.largest(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Switch(context.Background(), "taskA"); err != nil {
		t.Fatal(err)
	}
	tv, _ := r.Acquire()
	if err := r.Close(); err == nil {
		t.Fatal("Close with held views succeeded")
	}
	f.checkViews(t, tv)
	tv.Release()
	tv.Release() // idempotent
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Acquire(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
	if _, err := r.Switch(context.Background(), "taskA"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Switch after Close: %v", err)
	}
}

// TestCancelledSwitch: a switch whose context ends fails without touching
// the published task and leaves no unverified slot behind.
func TestCancelledSwitch(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 2, 0.4, 23)
	for _, budget := range []int64{f.largest(t), 2 * f.largest(t)} {
		r := openRT(t, f.path, Options{Budget: budget})
		switchAndCheck(t, r, f, "taskA")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := r.Switch(ctx, "taskB"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled switch: %v", err)
		}
		if r.Current() != "taskA" {
			t.Fatalf("after a cancelled switch %q is published", r.Current())
		}
		tv, err := r.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		f.checkViews(t, tv)
		tv.Release()
		r.mu.Lock()
		for i, s := range r.slots {
			if s.ver >= 0 && !s.valid {
				t.Fatalf("slot %d holds version %d unverified", i, s.ver)
			}
		}
		r.mu.Unlock()
		checkInvariants(t, r)
		switchAndCheck(t, r, f, "taskB")
	}
}

func TestBudgetCapsSlots(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 1, 0.5, 24)
	r := openRT(t, f.path, Options{Budget: 1 << 40})
	if r.Capacity() != r.Manifest().NumVersions() {
		t.Fatalf("capacity %d slots for %d versions", r.Capacity(), r.Manifest().NumVersions())
	}
	switchAndCheck(t, r, f, "taskA")
}
