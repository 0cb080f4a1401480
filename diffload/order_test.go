package diffload

import "testing"

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
