package align

import (
	"fmt"
	"math"
	"sort"
)

// Method selects how masks are chosen.
type Method string

// The mask methods.
const (
	// Independent keeps each task's own top-k blocks (the baseline).
	Independent Method = "independent"
	// Core keeps a shared core of blocks ranked by the tasks' normalised
	// summed scores, as large as the bound allows (found by bisection),
	// filled with each task's own top blocks.
	Core Method = "core"
	// Swap starts from Core and improves each task's mask in turn by a
	// Lagrangian best response: keep the blocks the other tasks keep
	// (weighted by transition frequency) while the bound holds. It is never
	// worse than Core on the weighted overlap, and is the default.
	Swap Method = "swap"
)

// ParseMethod maps a name to a Method.
func ParseMethod(s string) (Method, error) {
	switch Method(s) {
	case Independent, Core, Swap:
		return Method(s), nil
	case "":
		return Swap, nil
	}
	return "", fmt.Errorf("align: unknown method %q (want independent, core or swap)", s)
}

// Options controls AlignTensor.
type Options struct {
	// Eps is the tolerance: each task retains at least (1-Eps) of its
	// independent importance. Must be >= 0.
	Eps float64
	// Method selects the algorithm (default Swap).
	Method Method
	// Weights, when not nil, is a T x T matrix of how often task a is
	// followed by task b (transition frequency); overlap between tasks that
	// often follow each other counts more. Nil weighs every pair equally.
	Weights [][]float64
	// MaxRounds bounds the Swap improvement rounds over all tasks (default 8).
	MaxRounds int
}

// TensorResult is the alignment of one tensor across tasks.
type TensorResult struct {
	// Masks holds each task's chosen mask.
	Masks [][]bool
	// Independent holds each task's top-k mask.
	Independent [][]bool
	// IndepRetained and Retained give each task's retained importance under
	// its independent and its chosen mask.
	IndepRetained, Retained []float64
	// CoreSize is the number of blocks in the shared core (Core, Swap).
	CoreSize int
}

// Ratio returns task t's retained importance relative to independent
// pruning (1 when independent retains nothing).
func (r *TensorResult) Ratio(t int) float64 {
	if r.IndepRetained[t] <= 0 {
		return 1
	}
	return r.Retained[t] / r.IndepRetained[t]
}

// boundSlack absorbs floating-point rounding in the bound check.
const boundSlack = 1e-12

func meets(retained, indep, eps float64) bool {
	return retained >= (1-eps)*indep-boundSlack*math.Abs(indep)
}

// CheckEps validates a tolerance.
func CheckEps(eps float64) error {
	if !(eps >= 0) || math.IsInf(eps, 0) {
		return fmt.Errorf("align: eps %g: want a finite number >= 0", eps)
	}
	return nil
}

// AlignTensor chooses, for one tensor, a mask of k blocks per task from the
// tasks' block scores (scores[t][b]) so that every task meets the bound and
// the tasks keep as many blocks in common as possible.
func AlignTensor(scores [][]float64, k int, opt Options) (*TensorResult, error) {
	if err := CheckEps(opt.Eps); err != nil {
		return nil, err
	}
	T := len(scores)
	if T == 0 {
		return nil, fmt.Errorf("align: no tasks")
	}
	n := len(scores[0])
	for t, s := range scores {
		if len(s) != n {
			return nil, fmt.Errorf("align: task %d has %d block scores, task 0 has %d", t, len(s), n)
		}
		for b, v := range s {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("align: task %d block %d score %g: want finite and non-negative", t, b, v)
			}
		}
	}
	if k < 1 || k > n {
		return nil, fmt.Errorf("align: keep %d of %d blocks: want 1..%d", k, n, n)
	}
	if opt.Weights != nil && len(opt.Weights) != T {
		return nil, fmt.Errorf("align: weights are %dx?, want %dx%d", len(opt.Weights), T, T)
	}
	for _, row := range opt.Weights {
		if len(row) != T {
			return nil, fmt.Errorf("align: weights row has %d entries, want %d", len(row), T)
		}
	}
	method := opt.Method
	if method == "" {
		method = Swap
	}
	res := &TensorResult{
		Masks: make([][]bool, T), Independent: make([][]bool, T),
		IndepRetained: make([]float64, T), Retained: make([]float64, T),
	}
	for t := range scores {
		res.Independent[t] = TopK(scores[t], k)
		res.IndepRetained[t] = Retained(scores[t], res.Independent[t])
	}
	if method == Independent || T == 1 {
		for t := range scores {
			res.Masks[t] = res.Independent[t]
			res.Retained[t] = res.IndepRetained[t]
		}
		return res, nil
	}
	pairW := func(a, b int) float64 {
		if opt.Weights == nil {
			return 1
		}
		return opt.Weights[a][b] + opt.Weights[b][a]
	}
	// Normalised scores: each task's independent retained importance is 1.
	norm := make([][]float64, T)
	for t := range scores {
		norm[t] = make([]float64, n)
		if res.IndepRetained[t] > 0 {
			for b, v := range scores[t] {
				norm[t][b] = v / res.IndepRetained[t]
			}
		}
	}
	// Core ranking: task-weighted sum of normalised scores.
	sum := make([]float64, n)
	for t := range norm {
		w := 0.0
		for u := range norm {
			if u != t {
				w += pairW(t, u)
			}
		}
		if opt.Weights == nil {
			w = 1
		}
		for b, v := range norm[t] {
			sum[b] += w * v
		}
	}
	rank := make([]int, n)
	for i := range rank {
		rank[i] = i
	}
	sort.SliceStable(rank, func(a, b int) bool { return sum[rank[a]] > sum[rank[b]] })
	// Each task's own ranking, for the fill.
	own := make([][]int, T)
	for t := range scores {
		own[t] = make([]int, n)
		for i := range own[t] {
			own[t][i] = i
		}
		s := scores[t]
		sort.SliceStable(own[t], func(a, b int) bool { return s[own[t][a]] > s[own[t][b]] })
	}
	build := func(c int) ([][]bool, bool) {
		masks := make([][]bool, T)
		ok := true
		for t := range scores {
			m := make([]bool, n)
			for _, b := range rank[:c] {
				m[b] = true
			}
			left := k - c
			for _, b := range own[t] {
				if left == 0 {
					break
				}
				if !m[b] {
					m[b] = true
					left--
				}
			}
			masks[t] = m
			if !meets(Retained(scores[t], m), res.IndepRetained[t], opt.Eps) {
				ok = false
			}
		}
		return masks, ok
	}
	// Bisection for the largest feasible core; c = 0 is independent pruning
	// and always feasible.
	lo, hi := 0, k
	if _, ok := build(k); ok {
		lo = k
	} else {
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if _, ok := build(mid); ok {
				lo = mid
			} else {
				hi = mid
			}
		}
	}
	masks, _ := build(lo)
	res.CoreSize = lo
	if method == Swap {
		improve(scores, masks, k, res.IndepRetained, opt, pairW)
	}
	res.Masks = masks
	for t := range scores {
		res.Retained[t] = Retained(scores[t], masks[t])
	}
	return res, nil
}

// improve runs Lagrangian best responses: task t keeps the k blocks with the
// largest votes(b) + lambda*norm_t(b), votes(b) being the weighted number of
// other tasks that keep b, with the smallest lambda that meets the bound. A
// response is taken only when it raises t's weighted overlap with the others.
func improve(scores [][]float64, masks [][]bool, k int, indep []float64, opt Options, pairW func(a, b int) float64) {
	T, n := len(scores), len(scores[0])
	rounds := opt.MaxRounds
	if rounds <= 0 {
		rounds = 8
	}
	votes := make([]float64, n)
	key := make([]float64, n)
	idx := make([]int, n)
	pick := func(t int, lambda float64) []bool {
		norm := 1.0
		if indep[t] > 0 {
			norm = 1 / indep[t]
		}
		for b := range key {
			key[b] = votes[b] + lambda*scores[t][b]*norm*float64(k)
			idx[b] = b
		}
		st := scores[t]
		selectTop(idx, k, func(a, b int) bool {
			if key[a] != key[b] {
				return key[a] > key[b]
			}
			if st[a] != st[b] {
				return st[a] > st[b]
			}
			return a < b
		})
		m := make([]bool, n)
		for _, b := range idx[:k] {
			m[b] = true
		}
		return m
	}
	gain := func(m []bool) float64 {
		var g float64
		for b, keep := range m {
			if keep {
				g += votes[b]
			}
		}
		return g
	}
	for round := 0; round < rounds; round++ {
		changed := false
		for t := 0; t < T; t++ {
			for b := range votes {
				votes[b] = 0
			}
			for u := 0; u < T; u++ {
				if u == t {
					continue
				}
				w := pairW(t, u)
				for b, keep := range masks[u] {
					if keep {
						votes[b] += w
					}
				}
			}
			feasible := func(m []bool) bool { return meets(Retained(scores[t], m), indep[t], opt.Eps) }
			var best []bool
			lo, hi := 0.0, 1.0
			if m := pick(t, 0); feasible(m) {
				best = m
			} else {
				for i := 0; i < 60; i++ {
					if m := pick(t, hi); feasible(m) {
						best = m
						break
					}
					lo, hi = hi, hi*4
				}
				if best == nil {
					continue
				}
				for i := 0; i < 30 && hi-lo > 1e-9*hi; i++ {
					mid := (lo + hi) / 2
					if m := pick(t, mid); feasible(m) {
						best, hi = m, mid
					} else {
						lo = mid
					}
				}
			}
			if gain(best) > gain(masks[t])+1e-9 {
				masks[t] = best
				changed = true
			}
		}
		if !changed {
			break
		}
	}
}

// selectTop reorders idx so that its first k entries are the k first
// under before (a strict total order on the values), in O(len(idx)) expected
// time (quickselect with a median-of-three pivot).
func selectTop(idx []int, k int, before func(a, b int) bool) {
	lo, hi := 0, len(idx)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three to idx[mid].
		if before(idx[mid], idx[lo]) {
			idx[mid], idx[lo] = idx[lo], idx[mid]
		}
		if before(idx[hi], idx[lo]) {
			idx[hi], idx[lo] = idx[lo], idx[hi]
		}
		if before(idx[hi], idx[mid]) {
			idx[hi], idx[mid] = idx[mid], idx[hi]
		}
		pivot := idx[mid]
		i, j := lo, hi
		for i <= j {
			for before(idx[i], pivot) {
				i++
			}
			for before(pivot, idx[j]) {
				j--
			}
			if i <= j {
				idx[i], idx[j] = idx[j], idx[i]
				i++
				j--
			}
		}
		// Now idx[lo..j] <= pivot <= idx[i..hi].
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}
