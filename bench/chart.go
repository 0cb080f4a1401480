package bench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"time"
)

// strategyColors gives each strategy a colour (colour-blind safe palette).
var strategyColors = map[string]string{
	MonoDense:       "#4477aa",
	MonoSparse:      "#ee6677",
	DiffIndependent: "#ccbb44",
	DiffAligned:     "#228833",
	DiffPrefetch:    "#aa3377",
}

// WriteChartSVG draws the switch-latency distribution of every strategy,
// one panel per trace, on a shared logarithmic time axis: a dot per
// steady-state switch, a bar from p50 to p99 with a tick at the mean, and a
// hollow ring for the cold start.
func (r *Results) WriteChartSVG(w io.Writer) error {
	const (
		width    = 960
		left     = 190
		right    = 30
		rowH     = 26
		panelGap = 46
		top      = 50
	)
	lo, hi := math.Inf(1), math.Inf(-1)
	rows := 0
	for _, tr := range r.Traces {
		rows += len(tr.Strategies)
		for _, s := range tr.Strategies {
			for _, rec := range s.Records {
				if ms := float64(rec.Latency) / 1e6; ms > 0 {
					lo, hi = math.Min(lo, ms), math.Max(hi, ms)
				}
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0.1, 1
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	height := top + rows*rowH + len(r.Traces)*panelGap + 40
	plotW := float64(width - left - right)
	x := func(ms float64) float64 {
		ms = math.Max(ms, lo)
		return float64(left) + plotW*(math.Log10(ms)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">Task switch latency (ms, log scale): %s</text>`+"\n", left-170, html.EscapeString(r.Family))
	p(`<text x="%d" y="38" fill="#555">dots: steady-state switches; bar: p50 to p99; tick: mean; ring: cold start. Density %g, eps %g, budget %s</text>`+"\n",
		left-170, r.Density, r.Eps, FormatBytes(float64(r.Budget)))
	y := top
	for _, tr := range r.Traces {
		y += 20
		p(`<text x="10" y="%d" font-weight="bold">trace %s</text>`+"\n", y, html.EscapeString(tr.Trace))
		panelTop := y + 6
		for si, s := range tr.Strategies {
			cy := float64(panelTop + si*rowH + rowH/2)
			col := strategyColors[s.Strategy]
			if col == "" {
				col = "#333333"
			}
			p(`<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-8, cy, html.EscapeString(s.Strategy))
			p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eeeeee"/>`+"\n", left, width-right, cy, cy)
			if s.Steady.Switches > 0 {
				p(`<rect x="%.1f" y="%.1f" width="%.1f" height="8" fill="%s" opacity="0.35"/>`+"\n",
					x(ms(s.Steady.P50)), cy-4, math.Max(x(ms(s.Steady.P99))-x(ms(s.Steady.P50)), 1), col)
				p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", x(ms(s.Steady.Mean)), x(ms(s.Steady.Mean)), cy-9, cy+9, col)
			}
			for k, rec := range s.Records {
				if rec.Cold {
					p(`<circle cx="%.1f" cy="%.1f" r="5" fill="none" stroke="%s" stroke-width="1.5"><title>cold start %s: %s</title></circle>`+"\n",
						x(ms(rec.Latency)), cy, col, html.EscapeString(rec.To), FormatDuration(rec.Latency))
					continue
				}
				jitter := float64((k*7)%9-4) * 1.2
				p(`<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"><title>%s to %s: %s</title></circle>`+"\n",
					x(ms(rec.Latency)), cy+jitter, col, html.EscapeString(rec.From), html.EscapeString(rec.To), FormatDuration(rec.Latency))
			}
		}
		y = panelTop + len(tr.Strategies)*rowH
		// Axis with decade ticks.
		p(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>`+"\n", left, width-right, y, y)
		for d := lo; d <= hi*1.0001; d *= 10 {
			for _, m := range []float64{1, 2, 5} {
				v := d * m
				if v > hi*1.0001 {
					break
				}
				p(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="black"/>`+"\n", x(v), x(v), y, y+4)
				p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#333">%s</text>`+"\n", x(v), y+16, trimFloat(v))
			}
		}
		y += panelGap - 20
	}
	p("</svg>\n")
	return bw.Flush()
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%g", v)
	if slices.Contains([]byte(s), 'e') {
		return fmt.Sprintf("%.0f", v)
	}
	return s
}
