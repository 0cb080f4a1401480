package pack

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// human formats a byte count with a binary unit.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	for v /= unit; v >= unit && i < len(units)-1; v /= unit {
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// WriteText prints a human-readable report: the packing parameters, the
// tensors, each task's quality and storage, the diff matrix of every switch
// (bytes and extents) and, with a base, the base-sharing curves. fileSize is
// the store's size (0 when no store was written).
func (r *Report) WriteText(w io.Writer, fileSize int64) error {
	ew := &errWriter{w: w}
	p := func(format string, args ...any) { fmt.Fprintf(ew, format, args...) }
	p("tasks: %s\n", strings.Join(r.Tasks, ", "))
	method := r.Method
	p("block %dx%d, density %g, eps %g, masks %s", r.R, r.C, r.Density, r.Eps, method)
	if r.Base != "" {
		p(", base %s, version bound %s", r.Base, r.boundName())
	}
	if len(r.Calibrated) > 0 {
		p(", calibrated: %s", strings.Join(r.Calibrated, ", "))
	}
	p("\n")
	p("block versions: %d x %s slots = %s; dense tensors %s", r.Versions, human(r.SlotBytes), human(r.VersionBytes), human(r.DenseBytes))
	if fileSize > 0 {
		p("; store file %s", human(fileSize))
	}
	p("\n")
	p("mean pairwise share of kept blocks in common: %.1f%% (independent pruning: %.1f%%)\n", 100*r.Share, 100*r.IndepShare)

	// Tensors: the union over tasks.
	type row struct {
		e     TensorEntry
		shape string
		tasks []string
	}
	rows := map[string]*row{}
	var names []string
	for _, q := range r.Quality {
		for _, e := range q.Tensors {
			rw := rows[e.Name]
			if rw == nil {
				rw = &row{e: e, shape: fmt.Sprint(e.Shape)}
				rows[e.Name] = rw
				names = append(names, e.Name)
			} else if rw.shape != fmt.Sprint(e.Shape) {
				rw.shape = "varies"
			}
			rw.tasks = append(rw.tasks, q.Task)
		}
	}
	sort.SliceStable(names, func(i, j int) bool {
		a, b := rows[names[i]].e, rows[names[j]].e
		if a.Layer != b.Layer {
			return a.Layer < b.Layer
		}
		return a.Name < b.Name
	})
	p("\ntensors (%d):\n", len(names))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  name\tshape\tdtype\tkind\tlayer\ttasks")
	for _, n := range names {
		rw := rows[n]
		tasks := "all"
		if len(rw.tasks) != len(r.Tasks) {
			tasks = strings.Join(rw.tasks, ",")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", n, rw.shape, rw.e.DType, rw.e.Kind, rw.e.Layer, tasks)
	}
	tw.Flush()

	p("\n")
	if err := r.WriteQualityTable(ew); err != nil {
		return err
	}

	if len(r.Tasks) > 1 {
		p("\nswitch diff sets (row: from, column: to; bytes / extents):\n")
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "from \\ to\t")
		for _, t := range r.Tasks {
			fmt.Fprintf(tw, "%s\t", t)
		}
		fmt.Fprintln(tw)
		cell := map[[2]int]string{}
		for _, d := range r.Diffs {
			cell[[2]int{d.From, d.To}] = fmt.Sprintf("%s / %d", human(d.Bytes), d.Extents)
		}
		for a, ta := range r.Tasks {
			fmt.Fprintf(tw, "%s\t", ta)
			for b := range r.Tasks {
				if a == b {
					fmt.Fprint(tw, "-\t")
				} else {
					fmt.Fprintf(tw, "%s\t", cell[[2]int{a, b}])
				}
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}

	if err := r.WriteCurve(ew); err != nil {
		return err
	}
	return ew.err
}

// boundName returns the version bound's name, "weight" for reports written
// before the delta bound existed.
func (r *Report) boundName() string {
	if r.VersionBound == "" {
		return "weight"
	}
	return r.VersionBound
}

// WriteQualityTable prints the per-task quality table: density, retained
// importance, weight and output errors, versions, and with a base the share
// of the fine-tune delta the deployed task keeps.
func (r *Report) WriteQualityTable(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "quality per task (retained = importance kept / independent pruning's; errors relative, over blocked tensors")
	if r.Base != "" {
		fmt.Fprintf(ew, "; delta kept = share of the fine-tune's delta energy on kept blocks deployed, version bound %s", r.boundName())
	}
	fmt.Fprintln(ew, "):")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "task\tdensity\tretained\tmin tensor\tweight err\tpruned-only\toutput err\tmax output\t")
	if r.Base != "" {
		fmt.Fprint(tw, "delta kept\t")
	}
	fmt.Fprintln(tw, "versions\tshared\tprivate\tfrom base\tbytes\t")
	for _, q := range r.Quality {
		out, mx := "-", "-"
		if q.RelOutputErr != nil {
			out, mx = fmt.Sprintf("%.4f", *q.RelOutputErr), fmt.Sprintf("%.4f", *q.MaxRelOutputErr)
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.4f\t%.4f\t%.4f\t%.4f\t%s\t%s\t",
			q.Task, q.Density, q.RetainedRatio, q.MinTensorRatio, q.RelWeightErr, q.PrunedRelErr, out, mx)
		if r.Base != "" {
			d := "-"
			if q.DeltaRetained != nil {
				d = fmt.Sprintf("%.4f", *q.DeltaRetained)
			}
			fmt.Fprintf(tw, "%s\t", d)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t\n", q.Versions, q.Shared, q.Private, q.FromBase, human(q.Bytes))
	}
	tw.Flush()
	return ew.err
}

// WriteCurve prints, with a base, each task's base-sharing curve: for every
// tolerance of the version bound, the kept blocks on the base's version,
// the task's private versions, the mean bytes of a switch into the task,
// its relative weight error and the share of its fine-tune delta kept.
func (r *Report) WriteCurve(w io.Writer) error {
	if r.Base == "" || len(r.Quality) == 0 || len(r.Quality[0].Curve) == 0 {
		return nil
	}
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "\nbase-sharing curve over eps (version bound %s; bytes/switch = mean over the other tasks of the versions a switch into the task reads, counted per tensor):\n", r.boundName())
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "task\teps\tfrom base\tprivate\tbytes/switch\tweight err\tdelta kept\t")
	for _, q := range r.Quality {
		for _, c := range q.Curve {
			share := 0.0
			if c.Kept > 0 {
				share = float64(c.Shared) / float64(c.Kept)
			}
			fmt.Fprintf(tw, "%s\t%g\t%.1f%%\t%d\t%s\t%.4f\t%.4f\t\n", q.Task, c.Eps, 100*share, c.Private,
				human(int64(c.SwitchBytes)), c.RelErr(), c.DeltaRetained())
		}
	}
	tw.Flush()
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

// Write forwards to the underlying writer until the first error.
func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}
