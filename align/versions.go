package align

import (
	"fmt"
	"math"
	"sort"
)

// VersionBound selects the bound under which a task's kept blocks may
// deploy the base's block version instead of the task's own (fine-tunes of
// a base only).
type VersionBound string

const (
	// BoundDelta protects the fine-tune: per tensor, the blocks deploying
	// the base's version together hold at most eps of the task's fine-tune
	// delta energy on its kept blocks, sum_kept ||W_b - Base_b||_F^2. The
	// task keeps at least (1 - eps) of that energy (see
	// BaseChoice.DeltaRetained). eps = 0 keeps every block that differs
	// from the base private; eps = 1 allows every kept block on the base.
	BoundDelta VersionBound = "delta"
	// BoundWeight bounds the task's weight error: per tensor, the
	// substitutions add at most eps of the kept weights' squared norm to
	// the squared error of pruning alone (see ErrBudget). Fine-tune deltas
	// of a few percent of the weights fit this bound wholesale, so it can
	// replace a whole fine-tune by the base at eps 0.01.
	BoundWeight VersionBound = "weight"
)

// ParseVersionBound parses a version bound name ("" is BoundDelta).
func ParseVersionBound(s string) (VersionBound, error) {
	switch VersionBound(s) {
	case "", BoundDelta:
		return BoundDelta, nil
	case BoundWeight:
		return BoundWeight, nil
	}
	return "", fmt.Errorf("align: version bound %q: want %q or %q", s, BoundDelta, BoundWeight)
}

// BaseChoice is the result of ChooseBase for one task and tensor.
type BaseChoice struct {
	// UseBase[i] reports whether kept block i (in the order given) deploys
	// the base's version instead of the task's own.
	UseBase []bool
	// Shared counts the kept blocks that use the base's version.
	Shared int
	// PrunedErr2 is the squared weight error of pruning alone (the energy of
	// the dropped blocks); Err2 adds the base substitutions.
	PrunedErr2, Err2 float64
	// Total is the squared Frobenius norm of the task's tensor.
	Total float64
	// DeltaTotal is the fine-tune delta energy on the kept blocks,
	// sum ||W_b - Base_b||^2; DeltaSubst the part of it on blocks that
	// deploy the base's version (what the deployed task loses of its
	// fine-tune).
	DeltaTotal, DeltaSubst float64
}

// RelErr returns ||W - W_deployed||_F / ||W||_F.
func (c BaseChoice) RelErr() float64 {
	if c.Total <= 0 {
		return 0
	}
	return math.Sqrt(c.Err2 / c.Total)
}

// DeltaRetained returns 1 - DeltaSubst/DeltaTotal, the share of the
// fine-tune's delta energy on the kept blocks that the deployed task keeps
// (1 when the kept blocks equal the base).
func (c BaseChoice) DeltaRetained() float64 {
	return deltaRetained(c.DeltaSubst, c.DeltaTotal)
}

func deltaRetained(subst, total float64) float64 {
	if total <= 0 {
		return 1
	}
	return math.Max(0, 1-subst/total)
}

// ErrBudget returns the largest squared weight error the weight bound
// allows: the error of pruning alone plus eps of the kept weights' squared
// norm, pruned + eps*(total-pruned). This is the importance bound of the
// masks in magnitude terms: the deployed kept blocks retain at least (1-eps)
// of the kept blocks' energy. In relative terms, relErr^2 <= prunedRelErr^2 +
// eps*(1 - prunedRelErr^2).
func ErrBudget(pruned, total, eps float64) float64 {
	return pruned + eps*math.Max(total-pruned, 0)
}

// DeltaBudget returns the largest delta energy the delta bound lets base
// versions replace: eps times the kept blocks' delta energy sum(diff).
func DeltaBudget(diff []float64, eps float64) float64 {
	var s float64
	for _, d := range diff {
		s += d
	}
	return eps * s
}

// ChooseBase decides, for each kept block of one task's tensor, whether the
// block deploys the base's version, under the weight bound. diff[i] is
// ||W_b - Base_b||_F^2 of kept block i, pruned the energy of the task's
// dropped blocks and total the tensor's squared norm. The bound (see
// ErrBudget): the substitutions add at most eps of the kept weights'
// squared norm to the squared weight error. Blocks are taken in order of
// increasing difference, which maximises the number shared under the bound;
// blocks identical to the base are always shared.
func ChooseBase(diff []float64, pruned, total, eps float64) (BaseChoice, error) {
	return ChooseBaseOrdered(diff, nil, pruned, total, eps)
}

// ChooseBaseOrdered is ChooseBase with a preferred order: it first walks
// prefer (indices into diff, e.g. a ranking shared by all tasks so that
// they pick the same base blocks) taking every block that still fits the
// budget, then fills what budget is left in order of increasing difference.
// A nil prefer is plain ChooseBase.
func ChooseBaseOrdered(diff []float64, prefer []int, pruned, total, eps float64) (BaseChoice, error) {
	return ChooseBaseBound(BoundWeight, diff, prefer, pruned, total, eps)
}

// ChooseBaseBound is ChooseBaseOrdered under the given bound. Under
// BoundDelta the substituted blocks' differences sum to at most
// eps * sum(diff) (all blocks when eps >= 1); under BoundWeight to at most
// eps * (total - pruned). In both, blocks identical to the base are always
// shared, prefer is walked first, then the smallest differences.
func ChooseBaseBound(bound VersionBound, diff []float64, prefer []int, pruned, total, eps float64) (BaseChoice, error) {
	if err := CheckEps(eps); err != nil {
		return BaseChoice{}, err
	}
	c := BaseChoice{UseBase: make([]bool, len(diff)), PrunedErr2: pruned, Err2: pruned, Total: total}
	for i, d := range diff {
		if d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
			return BaseChoice{}, fmt.Errorf("align: block %d difference energy %g: want a finite number >= 0", i, d)
		}
		c.DeltaTotal += d
	}
	var budget float64 // on the sum of substituted differences
	switch bound {
	case BoundWeight:
		budget = (ErrBudget(pruned, total, eps) - pruned) * (1 - 1e-12)
	case BoundDelta:
		if eps >= 1 {
			budget = math.Inf(1)
		} else {
			budget = eps * c.DeltaTotal * (1 - 1e-12)
		}
	default:
		return BaseChoice{}, fmt.Errorf("align: version bound %q: want %q or %q", bound, BoundDelta, BoundWeight)
	}
	for i, d := range diff {
		if d == 0 { // identical to the base: sharing is free
			c.UseBase[i] = true
			c.Shared++
		}
	}
	take := func(i int) {
		if c.UseBase[i] || c.DeltaSubst+diff[i] > budget {
			return
		}
		c.UseBase[i] = true
		c.Shared++
		c.DeltaSubst += diff[i]
	}
	for _, i := range prefer {
		if i < 0 || i >= len(diff) {
			return BaseChoice{}, fmt.Errorf("align: preferred block %d outside [0, %d)", i, len(diff))
		}
		take(i)
	}
	idx := make([]int, len(diff))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return diff[idx[a]] < diff[idx[b]] })
	for _, i := range idx {
		if c.DeltaSubst+diff[i] > budget {
			break
		}
		take(i)
	}
	c.Err2 = pruned + c.DeltaSubst
	return c, nil
}

// CurvePoint is one point of a task's base-sharing curve: what the version
// bound at tolerance Eps gives, summed over the task's blocked tensors.
type CurvePoint struct {
	// Eps is the tolerance.
	Eps float64 `json:"eps"`
	// Shared and Kept count kept blocks deploying the base version and all
	// kept blocks.
	Shared int `json:"shared"`
	Kept   int `json:"kept"`
	// Err2 and Total accumulate the squared deployed weight error and the
	// squared weight norm, so RelErr = sqrt(Err2/Total).
	Err2  float64 `json:"err2"`
	Total float64 `json:"total"`
	// DeltaTotal and DeltaSubst accumulate the fine-tune delta energy on
	// the kept blocks and the part of it replaced by base versions.
	DeltaTotal float64 `json:"delta_total"`
	DeltaSubst float64 `json:"delta_subst"`
	// Private counts the task's block versions no other task uses and
	// SwitchBytes the mean bytes of a switch into the task from each other
	// task (its versions the other lacks, times the slot size). Both are
	// filled by the packer, which sees every task; versions are counted
	// per tensor.
	Private     int     `json:"private"`
	SwitchBytes float64 `json:"switch_bytes"`
}

// RelErr returns the relative weight error of the point.
func (p CurvePoint) RelErr() float64 {
	if p.Total <= 0 {
		return 0
	}
	return math.Sqrt(p.Err2 / p.Total)
}

// DeltaRetained returns the share of the kept blocks' fine-tune delta
// energy that the task keeps at this point.
func (p CurvePoint) DeltaRetained() float64 { return deltaRetained(p.DeltaSubst, p.DeltaTotal) }

// DefaultCurveEps lists the tolerances a base-sharing curve reports.
var DefaultCurveEps = []float64{0, 0.01, 0.05, 0.1, 0.25, 0.5, 1}

// AddCurve accumulates, for each point's tolerance, what ChooseBaseBound
// (with prefer, which may be nil) does for one tensor into curve (allocate
// with NewCurve), and returns the choice of each point (the packer derives
// versions and switch bytes from them).
func AddCurve(curve []CurvePoint, bound VersionBound, diff []float64, prefer []int, pruned, total float64) ([]BaseChoice, error) {
	out := make([]BaseChoice, len(curve))
	for i := range curve {
		c, err := ChooseBaseBound(bound, diff, prefer, pruned, total, curve[i].Eps)
		if err != nil {
			return nil, err
		}
		out[i] = c
		curve[i].Shared += c.Shared
		curve[i].Kept += len(diff)
		curve[i].Err2 += c.Err2
		curve[i].Total += total
		curve[i].DeltaTotal += c.DeltaTotal
		curve[i].DeltaSubst += c.DeltaSubst
	}
	return out, nil
}

// NewCurve returns empty curve points for the given tolerances.
func NewCurve(eps []float64) []CurvePoint {
	c := make([]CurvePoint, len(eps))
	for i, e := range eps {
		c[i].Eps = e
	}
	return c
}
