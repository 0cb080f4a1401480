package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
)

// Trace is a sequence of task switches. Visits[0] is the task loaded at
// cold start (empty pool); every later visit is a switch to a different
// task. Dwell[i] is how many forward-pass windows the trace stays on
// Visits[i] (at least 1). Predict is the transition matrix prefetching uses
// to guess the next task (rows and columns in Tasks order).
type Trace struct {
	// Name is "round-robin", "random" or "markov".
	Name string
	// Tasks lists the family's tasks; indexes refer to it.
	Tasks []string
	// Visits are task indexes.
	Visits []int
	// Dwell gives the forward windows spent at each visit.
	Dwell []int
	// Predict[i][j] is the probability that task j follows task i.
	Predict [][]float64
}

// Next returns the most likely next task after task i other than i itself,
// by Predict (ties to the lower index).
func (t *Trace) Next(i int) int {
	best, bp := -1, -1.0
	for j, p := range t.Predict[i] {
		if j != i && p > bp {
			best, bp = j, p
		}
	}
	return best
}

func checkTraceArgs(tasks []string, switches int) error {
	if len(tasks) < 2 {
		return fmt.Errorf("trace: %d tasks, want at least 2 to switch between", len(tasks))
	}
	if switches < 1 {
		return fmt.Errorf("trace: %d switches, want at least 1", switches)
	}
	return nil
}

// RoundRobin visits the tasks in order, cyclically, for switches switches
// after the cold start.
func RoundRobin(tasks []string, switches int) (*Trace, error) {
	if err := checkTraceArgs(tasks, switches); err != nil {
		return nil, err
	}
	n := len(tasks)
	t := &Trace{Name: "round-robin", Tasks: tasks, Predict: make([][]float64, n)}
	for i := range t.Predict {
		t.Predict[i] = make([]float64, n)
		t.Predict[i][(i+1)%n] = 1
	}
	for k := 0; k <= switches; k++ {
		t.Visits = append(t.Visits, k%n)
		t.Dwell = append(t.Dwell, 1)
	}
	return t, nil
}

// UniformRandom picks every next task uniformly among the other tasks.
func UniformRandom(tasks []string, switches int, seed uint64) (*Trace, error) {
	if err := checkTraceArgs(tasks, switches); err != nil {
		return nil, err
	}
	n := len(tasks)
	r := rand.New(rand.NewPCG(seed, 0x72616e646f6d))
	t := &Trace{Name: "random", Tasks: tasks, Predict: make([][]float64, n)}
	for i := range t.Predict {
		t.Predict[i] = make([]float64, n)
		for j := range t.Predict[i] {
			if j != i {
				t.Predict[i][j] = 1 / float64(n-1)
			}
		}
	}
	cur := r.IntN(n)
	t.Visits, t.Dwell = []int{cur}, []int{1}
	for k := 0; k < switches; k++ {
		nx := r.IntN(n - 1)
		if nx >= cur {
			nx++
		}
		cur = nx
		t.Visits = append(t.Visits, cur)
		t.Dwell = append(t.Dwell, 1)
	}
	return t, nil
}

// Markov runs the chain with transition matrix p (self-transitions allowed:
// they lengthen the dwell) from the first task until it has made switches
// switches to a different task.
func Markov(tasks []string, p [][]float64, switches int, seed uint64) (*Trace, error) {
	if err := checkTraceArgs(tasks, switches); err != nil {
		return nil, err
	}
	if err := CheckTransition(tasks, p); err != nil {
		return nil, err
	}
	for i := range p {
		if p[i][i] >= 1 {
			return nil, fmt.Errorf("trace: task %s never leaves (P[%d][%d] = 1); a switch trace needs every task to be left", tasks[i], i, i)
		}
	}
	r := rand.New(rand.NewPCG(seed, 0x6d61726b6f76))
	t := &Trace{Name: "markov", Tasks: tasks, Predict: p}
	cur := 0
	t.Visits, t.Dwell = []int{cur}, []int{1}
	for len(t.Visits) <= switches {
		nx := sample(r, p[cur])
		if nx == cur {
			t.Dwell[len(t.Dwell)-1]++
			continue
		}
		cur = nx
		t.Visits = append(t.Visits, cur)
		t.Dwell = append(t.Dwell, 1)
	}
	return t, nil
}

func sample(r *rand.Rand, row []float64) int {
	u := r.Float64()
	acc := 0.0
	for j, p := range row {
		acc += p
		if u < acc {
			return j
		}
	}
	// Rounding left u above the sum: the last task with mass.
	for j := len(row) - 1; j >= 0; j-- {
		if row[j] > 0 {
			return j
		}
	}
	return len(row) - 1
}

// CheckTransition checks that p is a square row-stochastic matrix over
// tasks.
func CheckTransition(tasks []string, p [][]float64) error {
	if len(p) != len(tasks) {
		return fmt.Errorf("transition matrix has %d rows, want one per task (%d)", len(p), len(tasks))
	}
	for i, row := range p {
		if len(row) != len(tasks) {
			return fmt.Errorf("transition matrix row %d (task %s) has %d entries, want %d", i, tasks[i], len(row), len(tasks))
		}
		s := 0.0
		for j, v := range row {
			if !(v >= 0) || math.IsInf(v, 0) {
				return fmt.Errorf("transition matrix entry [%d][%d] (%s -> %s) = %g, want a probability >= 0", i, j, tasks[i], tasks[j], v)
			}
			s += v
		}
		if math.Abs(s-1) > 1e-6 {
			return fmt.Errorf("transition matrix row %d (task %s) sums to %g, want 1", i, tasks[i], s)
		}
	}
	return nil
}

// Stationary returns the stationary distribution of p by power iteration.
func Stationary(p [][]float64) []float64 {
	n := len(p)
	pi := make([]float64, n)
	for i := range pi {
		pi[i] = 1 / float64(n)
	}
	next := make([]float64, n)
	for it := 0; it < 10000; it++ {
		clear(next)
		for i, row := range p {
			for j, v := range row {
				next[j] += pi[i] * v
			}
		}
		// Lazy step so periodic chains converge too.
		d := 0.0
		for j := range next {
			next[j] = 0.5*next[j] + 0.5*pi[j]
			d += math.Abs(next[j] - pi[j])
		}
		pi, next = next, pi
		if d < 1e-13 {
			break
		}
	}
	return pi
}

// DrivingSchedule returns the built-in transition matrix over tasks: the
// first task (detection) most of the time, the second (traffic-light
// recognition) near intersections, then back, the third (obstacle
// avoidance) in bursts that stay a while, and the others rarely.
func DrivingSchedule(tasks []string) [][]float64 {
	n := len(tasks)
	p := make([][]float64, n)
	for i := range p {
		p[i] = make([]float64, n)
	}
	if n == 1 {
		p[0][0] = 1
		return p
	}
	set := func(i int, stay float64, to map[int]float64) {
		s := stay
		for j, v := range to {
			if j < n {
				s += v
			}
		}
		p[i][i] = stay / s
		for j, v := range to {
			if j < n {
				p[i][j] = v / s
			}
		}
	}
	others := map[int]float64{1: 0.12, 2: 0.05}
	for j := 3; j < n; j++ {
		others[j] = 0.03 / float64(n-3)
	}
	set(0, 0.80, others)
	set(1, 0.50, map[int]float64{0: 0.45, 2: 0.05})
	if n > 2 {
		set(2, 0.70, map[int]float64{0: 0.30})
	}
	for i := 3; i < n; i++ {
		set(i, 0.50, map[int]float64{0: 0.50})
	}
	return p
}

// transitionFile is the JSON form of a transition matrix file:
// {"tasks": ["a", "b"], "p": [[0.9, 0.1], [0.5, 0.5]]}.
type transitionFile struct {
	Tasks []string    `json:"tasks"`
	P     [][]float64 `json:"p"`
}

// LoadTransition reads a transition matrix file and reorders it to the
// family's task order; every family task must appear in it.
func LoadTransition(path string, tasks []string) ([][]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transition matrix: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var tf transitionFile
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("transition matrix %s: want {\"tasks\": [...], \"p\": [[...]]}: %w", path, err)
	}
	if err := CheckTransition(tf.Tasks, tf.P); err != nil {
		return nil, fmt.Errorf("transition matrix %s: %w", path, err)
	}
	if len(tf.Tasks) != len(tasks) {
		return nil, fmt.Errorf("transition matrix %s: %d tasks %v, want the family's %d tasks %v", path, len(tf.Tasks), tf.Tasks, len(tasks), tasks)
	}
	idx := make([]int, len(tasks))
	for i, name := range tasks {
		k := slices.Index(tf.Tasks, name)
		if k < 0 {
			return nil, fmt.Errorf("transition matrix %s: no task %q (has %v)", path, name, tf.Tasks)
		}
		idx[i] = k
	}
	p := make([][]float64, len(tasks))
	for i := range p {
		p[i] = make([]float64, len(tasks))
		for j := range p[i] {
			p[i][j] = tf.P[idx[i]][idx[j]]
		}
	}
	return p, nil
}
