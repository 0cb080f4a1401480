package pack

import (
	"fmt"

	"github.com/dmsparse/dmsparse/safetensors"
)

// CalibStat is one calibration statistic: NAME.act_sqmean and its values.
type CalibStat struct {
	// Name is the statistic's tensor name (weight name + ".act_sqmean").
	Name string
	// Values holds the mean squared activation per input feature.
	Values []float32
}

// CalibFromActivations computes calibration statistics from recorded input
// activations: every tensor NAME of acts, of shape [..., in_features], gives
// NAME.act_sqmean, the mean squared activation per input feature. When model
// is not "", every NAME must be a 2-D weight of that checkpoint with the
// same in_features.
func CalibFromActivations(acts, model string) ([]CalibStat, error) {
	f, err := safetensors.Open(acts)
	if err != nil {
		return nil, fmt.Errorf("pack: activations: %w", err)
	}
	defer f.Close()
	var m *safetensors.File
	if model != "" {
		if m, err = safetensors.Open(model); err != nil {
			return nil, fmt.Errorf("pack: model: %w", err)
		}
		defer m.Close()
	}
	var out []CalibStat
	for _, info := range f.Tensors() {
		if len(info.Shape) == 0 || info.Shape[len(info.Shape)-1] == 0 {
			return nil, fmt.Errorf("pack: activations %s: tensor %q has shape %v, want [..., in_features]", acts, info.Name, info.Shape)
		}
		in := info.Shape[len(info.Shape)-1]
		if m != nil {
			wi, ok := m.Info(info.Name)
			if !ok || len(wi.Shape) != 2 {
				return nil, fmt.Errorf("pack: activations %s: tensor %q is not a 2-D weight of %s", acts, info.Name, model)
			}
			if wi.Shape[1] != in {
				return nil, fmt.Errorf("pack: activations %s: tensor %q has %d input features, the weight in %s has %d", acts, info.Name, in, model, wi.Shape[1])
			}
		}
		x, _, err := f.Float32View(info.Name)
		if err != nil {
			return nil, fmt.Errorf("pack: activations: %w", err)
		}
		sum := make([]float64, in)
		for i, v := range x {
			sum[i%in] += float64(v) * float64(v)
		}
		rows := len(x) / in
		st := CalibStat{Name: info.Name + ".act_sqmean", Values: make([]float32, in)}
		for j, s := range sum {
			if rows > 0 {
				st.Values[j] = float32(s / float64(rows))
			}
		}
		out = append(out, st)
		f.Release(info.Name)
	}
	return out, nil
}

// WriteCalib computes calibration statistics with CalibFromActivations and
// writes them to out.
func WriteCalib(acts, model, out string) (int, error) {
	stats, err := CalibFromActivations(acts, model)
	if err != nil {
		return 0, err
	}
	ts := make([]safetensors.Tensor, len(stats))
	for i, s := range stats {
		ts[i] = safetensors.FromFloat32(s.Name, safetensors.F32, []int{len(s.Values)}, s.Values)
	}
	if err := safetensors.WriteFile(out, ts, map[string]string{"format": "dmsparse-calib"}); err != nil {
		return 0, fmt.Errorf("pack: write calibration statistics: %w", err)
	}
	return len(stats), nil
}
