package align

import (
	"fmt"
	"math"
	"sort"
)

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
}

// RelErr returns ||W - W_deployed||_F / ||W||_F.
func (c BaseChoice) RelErr() float64 {
	if c.Total <= 0 {
		return 0
	}
	return math.Sqrt(c.Err2 / c.Total)
}

// ErrBudget returns the largest squared weight error the version bound
// allows: the error of pruning alone plus eps of the kept weights' squared
// norm, pruned + eps*(total-pruned). This is the importance bound of the
// masks in magnitude terms: the deployed kept blocks retain at least (1-eps)
// of the kept blocks' energy. In relative terms, relErr^2 <= prunedRelErr^2 +
// eps*(1 - prunedRelErr^2).
func ErrBudget(pruned, total, eps float64) float64 {
	return pruned + eps*math.Max(total-pruned, 0)
}

// ChooseBase decides, for each kept block of one task's tensor, whether the
// block deploys the base's version. diff[i] is ||W_b - Base_b||_F^2 of kept
// block i, pruned the energy of the task's dropped blocks and total the
// tensor's squared norm. The bound (see ErrBudget): the substitutions add at
// most eps of the kept weights' squared norm to the squared weight error.
// Blocks are taken in order of
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
	if err := CheckEps(eps); err != nil {
		return BaseChoice{}, err
	}
	c := BaseChoice{UseBase: make([]bool, len(diff)), PrunedErr2: pruned, Err2: pruned, Total: total}
	budget := ErrBudget(pruned, total, eps) * (1 - 1e-12)
	for i, d := range diff {
		if d < 0 || math.IsNaN(d) {
			return BaseChoice{}, fmt.Errorf("align: block %d difference energy %g: want >= 0", i, d)
		}
		if d == 0 { // identical to the base: sharing is free
			c.UseBase[i] = true
			c.Shared++
		}
	}
	take := func(i int) {
		if c.UseBase[i] || c.Err2+diff[i] > budget {
			return
		}
		c.UseBase[i] = true
		c.Shared++
		c.Err2 += diff[i]
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
		if c.Err2+diff[i] > budget {
			break
		}
		take(i)
	}
	return c, nil
}

// CurvePoint is one point of a task's base-sharing curve.
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
}

// RelErr returns the relative weight error of the point.
func (p CurvePoint) RelErr() float64 {
	if p.Total <= 0 {
		return 0
	}
	return math.Sqrt(p.Err2 / p.Total)
}

// DefaultCurveEps lists the tolerances a base-sharing curve reports.
var DefaultCurveEps = []float64{0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1}

// AddCurve accumulates, for each point's tolerance, what ChooseBaseOrdered
// (with prefer, which may be nil) would do for one tensor into curve
// (allocate with NewCurve).
func AddCurve(curve []CurvePoint, diff []float64, prefer []int, pruned, total float64) error {
	for i := range curve {
		c, err := ChooseBaseOrdered(diff, prefer, pruned, total, curve[i].Eps)
		if err != nil {
			return err
		}
		curve[i].Shared += c.Shared
		curve[i].Kept += len(diff)
		curve[i].Err2 += c.Err2
		curve[i].Total += total
	}
	return nil
}

// NewCurve returns empty curve points for the given tolerances.
func NewCurve(eps []float64) []CurvePoint {
	c := make([]CurvePoint, len(eps))
	for i, e := range eps {
		c[i].Eps = e
	}
	return c
}
