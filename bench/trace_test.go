package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var fourTasks = []string{"detection", "traffic-light", "obstacle", "lane"}

func TestRoundRobinAndRandom(t *testing.T) {
	rr, err := RoundRobin(fourTasks, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Visits) != 10 || rr.Visits[5] != 1 || rr.Next(3) != 0 {
		t.Errorf("round robin visits %v next(3) %d", rr.Visits, rr.Next(3))
	}
	ur, err := UniformRandom(fourTasks, 2000, 5)
	if err != nil {
		t.Fatal(err)
	}
	count := make([]int, 4)
	for k, v := range ur.Visits {
		count[v]++
		if k > 0 && v == ur.Visits[k-1] {
			t.Fatalf("random trace repeats task %d at %d: not a switch", v, k)
		}
	}
	for i, c := range count {
		if c < 400 || c > 600 {
			t.Errorf("random trace visits %s %d times of 2001, want about 500", fourTasks[i], c)
		}
	}
	again, _ := UniformRandom(fourTasks, 2000, 5)
	for k := range again.Visits {
		if again.Visits[k] != ur.Visits[k] {
			t.Fatal("random trace not deterministic by seed")
		}
	}
	if _, err := RoundRobin(fourTasks[:1], 3); err == nil {
		t.Error("one task accepted")
	}
}

func TestMarkovStationary(t *testing.T) {
	p := DrivingSchedule(fourTasks)
	if err := CheckTransition(fourTasks, p); err != nil {
		t.Fatal(err)
	}
	pi := Stationary(p)
	if pi[0] < 0.5 {
		t.Errorf("detection's stationary share %.3f, want most of the time", pi[0])
	}
	tr, err := Markov(fourTasks, p, 4000, 11)
	if err != nil {
		t.Fatal(err)
	}
	steps := make([]float64, 4)
	total := 0.0
	for k, v := range tr.Visits {
		steps[v] += float64(tr.Dwell[k])
		total += float64(tr.Dwell[k])
	}
	for i := range steps {
		if f := steps[i] / total; math.Abs(f-pi[i]) > 0.03 {
			t.Errorf("task %s: time share %.3f, stationary %.3f", fourTasks[i], f, pi[i])
		}
	}
	if tr.Next(1) != 0 || tr.Next(0) != 1 {
		t.Errorf("likely next: after traffic-light %d, after detection %d; want detection, traffic-light", tr.Next(1), tr.Next(0))
	}
}

func TestTransitionFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "p.json")
	os.WriteFile(good, []byte(`{"tasks":["b","a"],"p":[[0.25,0.75],[1,0]]}`), 0o644)
	p, err := LoadTransition(good, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if p[0][0] != 0 || p[0][1] != 1 || p[1][0] != 0.75 {
		t.Errorf("reordered matrix %v", p)
	}
	for name, body := range map[string]string{
		"sum":     `{"tasks":["a","b"],"p":[[0.5,0.4],[1,0]]}`,
		"neg":     `{"tasks":["a","b"],"p":[[1.5,-0.5],[1,0]]}`,
		"task":    `{"tasks":["a","c"],"p":[[0,1],[1,0]]}`,
		"shape":   `{"tasks":["a","b"],"p":[[1]]}`,
		"unknown": `{"tasks":["a","b"],"q":1}`,
	} {
		path := filepath.Join(dir, name+".json")
		os.WriteFile(path, []byte(body), 0o644)
		if _, err := LoadTransition(path, []string{"a", "b"}); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming %s", name, err, path)
		}
	}
	if _, err := Markov([]string{"a", "b"}, [][]float64{{1, 0}, {0.5, 0.5}}, 3, 1); err == nil {
		t.Error("absorbing task accepted")
	}
}

func FuzzLoadTransition(f *testing.F) {
	f.Add([]byte(`{"tasks":["a","b"],"p":[[0.25,0.75],[1,0]]}`))
	f.Add([]byte(`{"tasks":["b","a"],"p":[[0,1],[0.5,0.5]]}`))
	f.Add([]byte(`{"tasks":["a","b"],"p":[[1e308,-1e308],[1,0]]}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "p.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tasks := []string{"a", "b"}
		p, err := LoadTransition(path, tasks)
		if err != nil {
			return
		}
		if err := CheckTransition(tasks, p); err != nil {
			t.Fatalf("accepted matrix fails the check: %v", err)
		}
		pi := Stationary(p)
		s := 0.0
		for _, v := range pi {
			s += v
		}
		if math.Abs(s-1) > 1e-6 {
			t.Fatalf("stationary distribution sums to %g", s)
		}
	})
}
