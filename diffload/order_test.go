package diffload

import (
	"context"
	"testing"
)

// TestRequestsInLayerOrder lays out two groups of versions group-major (all
// layers of group A, then all layers of group B), as the packer does for
// versions used by different task sets, and checks that the requests are
// issued layer by layer across the groups, each still a whole request.
func TestRequestsInLayerOrder(t *testing.T) {
	const layers, perLayer, perReq = 4, 4, 4
	r := &Runtime{m: &Manifest{DataOffset: 4096}, slotBytes: 4096, reqSlots: perReq, gapSlots: 0}
	var loads []load
	// Version v of group g, layer l: g*layers*perLayer + l*perLayer + i.
	// Priority (pos) follows layer order: layer l's loads of both groups
	// come before layer l+1's.
	for g := 0; g < 2; g++ {
		for l := 0; l < layers; l++ {
			for i := 0; i < perLayer; i++ {
				v := uint32(g*layers*perLayer + l*perLayer + i)
				pos := int32(l*2*perLayer + g*perLayer + i)
				loads = append(loads, load{ver: v, slot: int32(v), pos: pos})
			}
		}
	}
	reqs, extents := r.buildRequests(loads)
	if extents != 1 {
		t.Fatalf("contiguous versions gave %d extents, want 1", extents)
	}
	if len(reqs) != 2*layers {
		t.Fatalf("%d requests, want %d (one per group and layer)", len(reqs), 2*layers)
	}
	for k, q := range reqs {
		wantLayer := k / 2
		for _, l := range q.loads {
			if got := int(l.pos) / (2 * perLayer); got != wantLayer {
				t.Fatalf("request %d holds a load of layer %d, want layer %d: requests are not in layer order", k, got, wantLayer)
			}
		}
		if q.bytes != perReq*4096 {
			t.Fatalf("request %d reads %d bytes, want %d", k, q.bytes, perReq*4096)
		}
	}
}

// TestPrefetchEvictsOnlyUnpinned fills the pool, then prefetches a third
// task. Under LRU the prefetch uses free slots only. Under a transition
// policy that makes the third task the likely next one, it must make room
// by evicting the unlikely task's unpinned versions (loading more than the
// free slots allowed), and must leave every version of the published task
// resident.
func TestPrefetchEvictsOnlyUnpinned(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.3, 23)
	tasks := []string{"taskA", "taskB", "taskC"}
	P := [][]float64{{0, 0.5, 0.5}, {0.1, 0, 0.9}, {0.5, 0.5, 0}}
	for _, judged := range []bool{false, true} {
		opt := Options{Budget: f.largest(t) * 3 / 2}
		if judged {
			tp, err := NewTransitionPolicy(tasks, P)
			if err != nil {
				t.Fatal(err)
			}
			opt.Policy = tp
		}
		r := openRT(t, f.path, opt)
		switchAndCheck(t, r, f, "taskA")
		switchAndCheck(t, r, f, "taskB")
		r.mu.Lock()
		freeBefore := len(r.free)
		r.mu.Unlock()
		held, err := r.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		pf, err := r.Prefetch(context.Background(), "taskC")
		if err != nil {
			t.Fatal(err)
		}
		pst, err := pf.Wait()
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, r)
		if !judged && (pst.Evicted != 0 || pst.Versions > freeBefore) {
			t.Fatalf("LRU: prefetch evicted %d versions and loaded %d into %d free slots; want free slots only", pst.Evicted, pst.Versions, freeBefore)
		}
		if judged && (pst.Evicted == 0 || pst.Versions <= freeBefore) {
			t.Fatalf("transition policy: prefetch loaded %d versions with %d free slots and evicted %d: it did not make room", pst.Versions, freeBefore, pst.Evicted)
		}
		res := residentSet(r)
		for _, v := range r.byName["taskB"].versions {
			if !res[v] {
				t.Fatalf("prefetch evicted version %d of the published task", v)
			}
		}
		f.checkViews(t, held)
		held.Release()
		st := switchAndCheck(t, r, f, "taskC")
		if st.Reused < pst.Versions {
			t.Fatalf("switch reused %d versions, the prefetch loaded %d", st.Reused, pst.Versions)
		}
	}
}

func TestTransitionPolicyPrefetchEvictable(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.3, 29)
	s, err := OpenStore(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := NewTransitionPolicy([]string{"taskA", "taskB", "taskC"}, [][]float64{{0, 0.5, 0.5}, {0.1, 0, 0.9}, {1. / 3, 1. / 3, 1. / 3}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Init(s.Manifest()); err != nil {
		t.Fatal(err)
	}
	// A version only taskA uses: worth 0.1 after taskB, below taskC's 0.9.
	onlyA := f.only["taskA"]
	if len(onlyA) == 0 {
		t.Fatal("family has no version private to taskA")
	}
	v := onlyA[0]
	if !tp.PrefetchEvictable("taskB", "taskC", v) {
		t.Error("a version of the unlikely task is not evictable for the likely one")
	}
	if tp.PrefetchEvictable("taskB", "taskA", v) {
		t.Error("a version of the prefetch target itself judged evictable")
	}
	if tp.PrefetchEvictable("taskC", "taskB", v) {
		t.Error("equally likely tasks: eviction allowed on a tie")
	}
	if tp.PrefetchEvictable("", "taskC", v) {
		t.Error("no published task: eviction allowed")
	}
}
