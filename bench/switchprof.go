package bench

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/google/pprof/profile"
)

// SwitchProfile builds a pprof profile of where switch time goes. Every
// sample's stack is, from the root: "trace T", "strategy S", "phase P" and,
// for the read phase, "layer L"; its values are the wall nanoseconds spent
// there summed over the switches and the number of switches. Labels repeat
// trace, strategy and phase, and "start" tells the cold start ("cold") from
// the steady state ("steady"). Open it with "go tool pprof -top FILE";
// "-tagfocus start=steady" leaves the cold starts out.
func (r *Results) SwitchProfile() *profile.Profile {
	p := &profile.Profile{
		SampleType:        []*profile.ValueType{{Type: "switch_time", Unit: "nanoseconds"}, {Type: "switches", Unit: "count"}},
		PeriodType:        &profile.ValueType{Type: "switch_time", Unit: "nanoseconds"},
		Period:            1,
		DefaultSampleType: "switch_time",
		TimeNanos:         time.Now().UnixNano(),
	}
	if r.Elapsed > 0 {
		p.DurationNanos = int64(r.Elapsed)
	}
	funcs := map[string]*profile.Function{}
	locs := map[string]*profile.Location{}
	loc := func(name string) *profile.Location {
		if l, ok := locs[name]; ok {
			return l
		}
		f := &profile.Function{ID: uint64(len(funcs) + 1), Name: name, SystemName: name, Filename: "dmbench/switch"}
		funcs[name] = f
		p.Function = append(p.Function, f)
		l := &profile.Location{ID: uint64(len(locs) + 1), Line: []profile.Line{{Function: f}}}
		locs[name] = l
		p.Location = append(p.Location, l)
		return l
	}
	type key struct{ trace, strategy, phase, layer, start string }
	sums := map[key]int64{}
	counts := map[key]int64{}
	for _, tr := range r.Traces {
		for _, s := range tr.Strategies {
			for _, rec := range s.Records {
				start := "steady"
				if rec.Cold {
					start = "cold"
				}
				for ph, d := range rec.Phases {
					if ph == "read" && len(rec.LayerRead) > 0 {
						continue
					}
					k := key{tr.Trace, s.Strategy, ph, "", start}
					sums[k] += int64(d)
					counts[k]++
				}
				for l, d := range rec.LayerRead {
					if d == 0 {
						// Nothing of this layer was read (resident, or no such layer).
						continue
					}
					k := key{tr.Trace, s.Strategy, "read", fmt.Sprintf("layer %d", l), start}
					sums[k] += int64(d)
					counts[k]++
				}
			}
		}
	}
	keys := make([]key, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.trace != b.trace {
			return a.trace < b.trace
		}
		if a.strategy != b.strategy {
			return a.strategy < b.strategy
		}
		if a.phase != b.phase {
			return a.phase < b.phase
		}
		if a.layer != b.layer {
			return a.layer < b.layer
		}
		return a.start < b.start
	})
	for _, k := range keys {
		// Leaf first.
		var stack []*profile.Location
		if k.layer != "" {
			stack = append(stack, loc(k.layer))
		}
		stack = append(stack, loc("phase "+k.phase), loc("strategy "+k.strategy), loc("trace "+k.trace))
		p.Sample = append(p.Sample, &profile.Sample{
			Location: stack,
			Value:    []int64{sums[k], counts[k]},
			Label:    map[string][]string{"trace": {k.trace}, "strategy": {k.strategy}, "phase": {k.phase}, "start": {k.start}},
		})
	}
	return p
}

// WriteSwitchProfile writes SwitchProfile in pprof's gzipped protobuf form.
func (r *Results) WriteSwitchProfile(w io.Writer) error {
	p := r.SwitchProfile()
	if err := p.CheckValid(); err != nil {
		return fmt.Errorf("switch profile: %w", err)
	}
	if err := p.Write(w); err != nil {
		return fmt.Errorf("writing switch profile: %w", err)
	}
	return nil
}
