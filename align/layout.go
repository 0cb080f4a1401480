package align

import (
	"math/bits"
	"sort"
)

// VersionRef describes one block version for layout: the set of tasks that
// use it (bit t for task t, at most 64 tasks), and where it comes from.
type VersionRef struct {
	// Tasks is the bit set of tasks using the version.
	Tasks uint64
	// Layer and Tensor give the pipeline layer and the tensor's index in
	// the family's tensor order.
	Layer, Tensor int
	// Block is the block's row-major index in its tensor.
	Block int
}

// Layout returns the order in which to store versions: position p holds
// refs[order[p]]. Versions are grouped by the set of tasks that use them,
// groups are ordered to minimise the (transition-weighted) number of extents
// over all ordered task switches, and each group is sorted by layer, tensor
// and block. weights may be nil (every switch equally likely).
func Layout(refs []VersionRef, T int, weights [][]float64) []int {
	groupOf := map[uint64]int{}
	var sets []uint64
	for _, r := range refs {
		if _, ok := groupOf[r.Tasks]; !ok {
			groupOf[r.Tasks] = len(sets)
			sets = append(sets, r.Tasks)
		}
	}
	seq := OrderGroups(sets, T, weights)
	pos := make(map[uint64]int, len(seq))
	for i, s := range seq {
		pos[s] = i
	}
	order := make([]int, len(refs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ra, rb := refs[order[a]], refs[order[b]]
		if ga, gb := pos[ra.Tasks], pos[rb.Tasks]; ga != gb {
			return ga < gb
		}
		if ra.Layer != rb.Layer {
			return ra.Layer < rb.Layer
		}
		if ra.Tensor != rb.Tensor {
			return ra.Tensor < rb.Tensor
		}
		return ra.Block < rb.Block
	})
	return order
}

func reverseBits(s uint64, T int) uint64 { return bits.Reverse64(s) >> (64 - T) }

// groupCost counts the weighted extents of every switch a -> b when groups
// lie in order seq: a maximal run of groups that contain b and not a is one
// extent.
func groupCost(seq []uint64, T int, weights [][]float64) float64 {
	var cost float64
	for a := 0; a < T; a++ {
		for b := 0; b < T; b++ {
			if a == b {
				continue
			}
			w := 1.0
			if weights != nil {
				w = weights[a][b]
				if w == 0 {
					continue
				}
			}
			in := false
			runs := 0
			for _, s := range seq {
				d := s>>uint(b)&1 == 1 && s>>uint(a)&1 == 0
				if d && !in {
					runs++
				}
				in = d
			}
			cost += w * float64(runs)
		}
	}
	return cost
}

// OrderGroups orders task sets so that the diff set of each switch spans
// few runs: it starts from the sets sorted with task 0 as the most
// significant bit and improves by moving single groups while the weighted
// number of runs falls (skipped above 512 groups).
func OrderGroups(sets []uint64, T int, weights [][]float64) []uint64 {
	seq := append([]uint64(nil), sets...)
	if T <= 0 || T > 64 {
		return seq
	}
	sort.Slice(seq, func(i, j int) bool { return reverseBits(seq[i], T) > reverseBits(seq[j], T) })
	if len(seq) > 512 || len(seq) < 3 {
		return seq
	}
	best := groupCost(seq, T, weights)
	for pass := 0; pass < 20; pass++ {
		improved := false
		for i := range seq {
			g := seq[i]
			rest := append(append([]uint64(nil), seq[:i]...), seq[i+1:]...)
			for j := 0; j <= len(rest); j++ {
				if j == i {
					continue
				}
				cand := make([]uint64, 0, len(seq))
				cand = append(cand, rest[:j]...)
				cand = append(cand, g)
				cand = append(cand, rest[j:]...)
				if c := groupCost(cand, T, weights); c < best-1e-9 {
					best, seq, improved = c, cand, true
					break
				}
			}
		}
		if !improved {
			break
		}
	}
	return seq
}

// Diff is the diff set of one switch.
type Diff struct {
	// From and To are task indices.
	From int `json:"from"`
	To   int `json:"to"`
	// Versions counts the block versions To needs that From does not hold.
	Versions int `json:"versions"`
	// Bytes is Versions times the slot size.
	Bytes int64 `json:"bytes"`
	// Extents counts the maximal runs of consecutive store positions.
	Extents int `json:"extents"`
}

// DiffMatrix returns, for every ordered pair of distinct tasks, the diff set
// a switch from one to the other reads: positions[t] lists the store
// positions (version ids) task t uses, in any order and possibly repeated.
func DiffMatrix(positions [][]uint32, slotBytes int64) []Diff {
	T := len(positions)
	sets := make([]map[uint32]bool, T)
	sorted := make([][]uint32, T)
	for t, p := range positions {
		sets[t] = make(map[uint32]bool, len(p))
		for _, v := range p {
			if !sets[t][v] {
				sets[t][v] = true
				sorted[t] = append(sorted[t], v)
			}
		}
		sort.Slice(sorted[t], func(i, j int) bool { return sorted[t][i] < sorted[t][j] })
	}
	var out []Diff
	for a := 0; a < T; a++ {
		for b := 0; b < T; b++ {
			if a == b {
				continue
			}
			d := Diff{From: a, To: b}
			last := int64(-2)
			for _, v := range sorted[b] {
				if sets[a][v] {
					continue
				}
				d.Versions++
				if int64(v) != last+1 {
					d.Extents++
				}
				last = int64(v)
			}
			d.Bytes = int64(d.Versions) * slotBytes
			out = append(out, d)
		}
	}
	return out
}

// Extents counts the maximal runs of consecutive values in the sorted,
// duplicate-free positions p.
func Extents(p []uint32) int {
	n := 0
	for i, v := range p {
		if i == 0 || v != p[i-1]+1 {
			n++
		}
	}
	return n
}
