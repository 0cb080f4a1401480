package diffload

import (
	"fmt"
	"math"
	mbits "math/bits"
	"slices"
)

// Candidate is a resident block version that a switch may evict: no task
// being switched to needs it and no reader holds it.
type Candidate struct {
	// Version is the block version id.
	Version uint32
	// LastUse is the runtime's logical clock when the version was last part
	// of a published task or loaded by a prefetch (higher is more recent).
	LastUse uint64
}

// EvictionPolicy chooses which resident block versions a switch evicts to
// make room. The runtime calls it with its own lock held, from one switch at
// a time; implementations need no locking of their own.
type EvictionPolicy interface {
	// Init is called once by Open with the store's manifest.
	Init(m *Manifest) error
	// Order sorts cands so that the versions to evict first come first,
	// for a switch to target. The runtime evicts a prefix.
	Order(target string, cands []Candidate)
}

// PrefetchEvicter is implemented by eviction policies that can tell
// whether a resident version is worth less than a prefetch: Prefetch evicts
// to make room only under such a policy (with plain LRU it uses free slots
// only).
type PrefetchEvicter interface {
	// PrefetchEvictable reports whether version v, resident and unpinned
	// while current is published ("" when none is), may be evicted to
	// prefetch target.
	PrefetchEvictable(current, target string, v uint32) bool
}

// LRU evicts the least recently used block versions first.
type LRU struct{}

// Init implements EvictionPolicy.
func (LRU) Init(*Manifest) error { return nil }

// Order implements EvictionPolicy.
func (LRU) Order(_ string, cands []Candidate) {
	slices.SortFunc(cands, func(a, b Candidate) int {
		if a.LastUse != b.LastUse {
			if a.LastUse < b.LastUse {
				return -1
			}
			return 1
		}
		return int(int64(a.Version) - int64(b.Version))
	})
}

// TransitionPolicy keeps the block versions most likely needed next: given
// a task-transition matrix P (P[i][j] = probability that task j follows task
// i), a version's score for a switch to target is the probability that the
// task after target uses it. The lowest scores are evicted first, least
// recently used first among equals.
type TransitionPolicy struct {
	tasks []string
	p     [][]float64
	// row[i][t] = P[i][task t in manifest order]; filled by Init.
	row   map[string][]float64
	words int
	// users holds, per version, a bitset of the manifest tasks using it.
	users []uint64
}

// NewTransitionPolicy builds a TransitionPolicy. tasks names the rows and
// columns of P; every row must hold non-negative values (they need not sum
// to one).
func NewTransitionPolicy(tasks []string, P [][]float64) (*TransitionPolicy, error) {
	if len(P) != len(tasks) {
		return nil, fmt.Errorf("transition policy: %d rows for %d tasks", len(P), len(tasks))
	}
	seen := map[string]bool{}
	for i, t := range tasks {
		if seen[t] {
			return nil, fmt.Errorf("transition policy: task %q listed twice", t)
		}
		seen[t] = true
		if len(P[i]) != len(tasks) {
			return nil, fmt.Errorf("transition policy: row %q has %d columns, want %d", t, len(P[i]), len(tasks))
		}
		for j, x := range P[i] {
			if !(x >= 0) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("transition policy: P[%q][%q] = %g, want a finite non-negative value", t, tasks[j], x)
			}
		}
	}
	cp := make([][]float64, len(P))
	for i := range P {
		cp[i] = append([]float64(nil), P[i]...)
	}
	return &TransitionPolicy{tasks: append([]string(nil), tasks...), p: cp}, nil
}

// Init implements EvictionPolicy: it indexes which tasks use each version.
func (tp *TransitionPolicy) Init(m *Manifest) error {
	idx := map[string]int{}
	for i, t := range tp.tasks {
		idx[t] = i
	}
	for _, t := range tp.tasks {
		if _, ok := m.Task(t); !ok {
			return fmt.Errorf("transition policy: task %q is not in the store", t)
		}
	}
	nt := len(m.Tasks)
	tp.words = (nt + 63) / 64
	tp.users = make([]uint64, m.NumVersions()*tp.words)
	for ti, t := range m.Tasks {
		for _, ts := range t.Tensors {
			for _, v := range ts.Versions {
				tp.users[int(v)*tp.words+ti/64] |= 1 << (ti % 64)
			}
		}
	}
	tp.row = map[string][]float64{}
	for i, from := range tp.tasks {
		r := make([]float64, nt)
		for ti, t := range m.Tasks {
			if j, ok := idx[t.Name]; ok {
				r[ti] = tp.p[i][j]
			}
		}
		tp.row[from] = r
	}
	return nil
}

// Score returns the probability-weighted use of version v by the task that
// follows target.
func (tp *TransitionPolicy) Score(target string, v uint32) float64 {
	r := tp.row[target]
	if r == nil {
		return 0
	}
	s := 0.0
	base := int(v) * tp.words
	for w := 0; w < tp.words; w++ {
		bits := tp.users[base+w]
		for bits != 0 {
			b := mbits.TrailingZeros64(bits)
			s += r[w*64+b]
			bits &^= 1 << b
		}
	}
	return s
}

// Order implements EvictionPolicy.
func (tp *TransitionPolicy) Order(target string, cands []Candidate) {
	type scored struct {
		c Candidate
		s float64
	}
	sc := make([]scored, len(cands))
	for i, c := range cands {
		sc[i] = scored{c, tp.Score(target, c.Version)}
	}
	slices.SortFunc(sc, func(a, b scored) int {
		if a.s != b.s {
			if a.s < b.s {
				return -1
			}
			return 1
		}
		if a.c.LastUse != b.c.LastUse {
			if a.c.LastUse < b.c.LastUse {
				return -1
			}
			return 1
		}
		return int(int64(a.c.Version) - int64(b.c.Version))
	})
	for i := range sc {
		cands[i] = sc[i].c
	}
}

// PrefetchEvictable implements PrefetchEvicter: v may make room for a
// prefetch of target when the probability that the task after current uses
// v is below the probability that target follows current. With no
// published task nothing is judged less likely, and nothing is evicted.
func (tp *TransitionPolicy) PrefetchEvictable(current, target string, v uint32) bool {
	r := tp.row[current]
	if r == nil {
		return false
	}
	ti := -1
	for i, t := range tp.tasks {
		if t == target {
			ti = i
			break
		}
	}
	if ti < 0 {
		return false
	}
	pTarget := 0.0
	for i, t := range tp.tasks {
		if t == current {
			pTarget = tp.p[i][ti]
			break
		}
	}
	return tp.Score(current, v) < pTarget
}
