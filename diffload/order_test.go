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
// task: the prefetch must make room by evicting the older task's unpinned
// versions (loading more than the free slots allowed), and must leave every
// version of the published task resident.
func TestPrefetchEvictsOnlyUnpinned(t *testing.T) {
	dir := tmpDir(t)
	f := writeFamily(t, dir, 32, 32, 3, 0.3, 23)
	r := openRT(t, f.path, Options{Budget: f.largest(t) * 3 / 2})
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
	if pst.Evicted == 0 || pst.Versions <= freeBefore {
		t.Fatalf("prefetch loaded %d versions with %d free slots and evicted %d: it did not make room", pst.Versions, freeBefore, pst.Evicted)
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
