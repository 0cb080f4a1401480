package pack

import (
	"encoding/json"
	"fmt"

	"github.com/dmsparse/dmsparse/align"
)

// Tensor kinds in a Report.
const (
	// KindBlocked is a 2-D weight shared by every task, cut into blocks,
	// masked and versioned.
	KindBlocked = "blocked"
	// KindPrivate is a 2-D weight only some tasks have (or with a
	// task-specific shape): stored whole as blocks of its task.
	KindPrivate = "private"
	// KindDense is any other tensor (biases, norms, integer buffers),
	// stored whole per task and deduplicated when identical.
	KindDense = "dense"
)

// TensorEntry describes one input tensor of a task.
type TensorEntry struct {
	// Name is the tensor's name in the checkpoint.
	Name string `json:"name"`
	// Shape and DType are as in the checkpoint.
	Shape []int  `json:"shape"`
	DType string `json:"dtype"`
	// Kind is KindBlocked, KindPrivate or KindDense.
	Kind string `json:"kind"`
	// Layer is the pipeline layer the store records.
	Layer int `json:"layer"`
}

// TaskQuality is one task's quality and storage figures.
type TaskQuality struct {
	// Task names the task.
	Task string `json:"task"`
	// Kept and Blocks count the kept and all blocks of the shared blocked
	// tensors; Density is Kept/Blocks.
	Kept    int     `json:"kept"`
	Blocks  int     `json:"blocks"`
	Density float64 `json:"density"`
	// Retained and IndepRetained sum the importance kept by the chosen and
	// by independent masks over the blocked tensors; RetainedRatio is
	// their quotient and MinTensorRatio the smallest per-tensor quotient
	// (the bound applies per tensor).
	Retained       float64 `json:"retained"`
	IndepRetained  float64 `json:"indep_retained"`
	RetainedRatio  float64 `json:"retained_ratio"`
	MinTensorRatio float64 `json:"min_tensor_ratio"`
	// RelWeightErr is ||W - W_deployed||_F / ||W||_F over the blocked
	// tensors; PrunedRelErr is the same for the task's own values under its
	// mask (what base sharing adds to).
	RelWeightErr float64 `json:"rel_weight_err"`
	PrunedRelErr float64 `json:"pruned_rel_err"`
	// RelOutputErr is the mean over blocked tensors of
	// E||(W - W_dep) x||^2 / E||W x||^2 under the diagonal model given by
	// the calibration statistics, MaxRelOutputErr its maximum; both absent
	// without statistics.
	RelOutputErr    *float64 `json:"rel_output_err,omitempty"`
	MaxRelOutputErr *float64 `json:"max_rel_output_err,omitempty"`
	// Versions counts the task's distinct block versions; Shared those
	// another task uses too, Private the rest; FromBase counts the kept
	// blocks that deploy the base's version.
	Versions int `json:"versions"`
	Shared   int `json:"shared"`
	Private  int `json:"private"`
	FromBase int `json:"from_base"`
	// Bytes is the task's block version bytes (Versions * slot size).
	Bytes int64 `json:"bytes"`
	// DeltaRetained is, with a base, the share of the task's fine-tune
	// delta energy on its kept blocks (sum ||W_b - Base_b||^2) that the
	// deployed task keeps: 1 - substituted / total; absent without a base.
	DeltaRetained *float64 `json:"delta_retained,omitempty"`
	// Curve is the base-sharing curve over eps (with a base only).
	Curve []align.CurvePoint `json:"curve,omitempty"`
	// Tensors lists the task's input tensors, for export.
	Tensors []TensorEntry `json:"tensors"`

	err2, prunedErr2, total2 float64 // accumulators while packing
	deltaTotal, deltaSubst   float64
}

// Report is the packer's description of a family, stored in the store's
// manifest under the "quality" meta key.
type Report struct {
	// Tasks names the tasks in store order.
	Tasks []string `json:"tasks"`
	// R and C give the block shape.
	R int `json:"r"`
	C int `json:"c"`
	// Density, Eps and Method are the packing parameters; MasksFromInput
	// is set when the checkpoints' own zero blocks were the masks.
	Density        float64 `json:"density"`
	Eps            float64 `json:"eps"`
	Method         string  `json:"method"`
	MasksFromInput bool    `json:"masks_from_input"`
	// Base is the base checkpoint's file name ("" without a base).
	Base string `json:"base,omitempty"`
	// VersionBound is the bound base versions were chosen under ("delta"
	// or "weight"; with a base only).
	VersionBound string `json:"version_bound,omitempty"`
	// Calibrated lists the tasks that had calibration statistics.
	Calibrated []string `json:"calibrated,omitempty"`
	// Share and IndepShare give the mean pairwise share of kept blocks in
	// common under the chosen and under independent masks.
	Share      float64 `json:"share"`
	IndepShare float64 `json:"indep_share"`
	// Versions counts the distinct block versions; SlotBytes is the size
	// of one in the store; VersionBytes their total.
	Versions     int   `json:"versions"`
	SlotBytes    int64 `json:"slot_bytes"`
	VersionBytes int64 `json:"version_bytes"`
	// DenseBytes counts the bytes of the deduplicated dense tensors.
	DenseBytes int64 `json:"dense_bytes"`
	// Quality holds one entry per task.
	Quality []TaskQuality `json:"quality"`
	// Diffs lists, for every ordered task pair, the switch's diff set.
	Diffs []align.Diff `json:"diffs"`
}

// MetaKey is the store meta key holding the Report JSON.
const MetaKey = "quality"

// DecodeReport parses a Report from the store meta value.
func DecodeReport(b []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("pack: decode %q report: %w", MetaKey, err)
	}
	if len(r.Quality) != len(r.Tasks) {
		return nil, fmt.Errorf("pack: report lists %d tasks but %d quality entries", len(r.Tasks), len(r.Quality))
	}
	return &r, nil
}

// TaskIndex returns the index of a task in the report, or -1.
func (r *Report) TaskIndex(name string) int {
	for i, t := range r.Tasks {
		if t == name {
			return i
		}
	}
	return -1
}
