package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/profiles"
)

func TestParseFlags(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "1.5g": 3 << 29, "4096": 4096, "64k": 64 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1M", "lots"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
	if r, c, err := parseBlock("16x32"); err != nil || r != 16 || c != 32 {
		t.Errorf("parseBlock(16x32) = %d, %d, %v", r, c, err)
	}
	if _, _, err := parseBlock("32"); err == nil {
		t.Error("parseBlock(32) accepted")
	}
}

func TestRunCommandTiny(t *testing.T) {
	dir := t.TempDir()
	out := func(n string) string { return filepath.Join(dir, n) }
	var stdout, stderr bytes.Buffer
	args := []string{"-layers", "2", "-width", "64", "-mlp-ratio", "2", "-tasks", "3", "-block", "32x32",
		"-switches", "3", "-window", "1ms", "-cache", out("cache"), "-json", out("r.json"), "-csv", out("r.csv"),
		"-chart", out("r.svg"), "-switchprofile", out("s.pb.gz"), "-memprofile", out("mem.pb.gz"), "-cpuprofile", out("cpu.pb.gz")}
	if err := runRun(args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	for _, want := range []string{"trace markov", "per-task quality", "==== finetune family ====", "==== shared family ====",
		"version bound delta", "base-sharing curve", "scenario: shared weights", "finetune family, round-robin: diff-aligned"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, f := range []string{"r.json", "r.csv", "r.finetune.svg", "r.shared.svg", "s.pb.finetune.gz", "s.pb.shared.gz", "mem.pb.gz", "cpu.pb.gz"} {
		if st, err := os.Stat(out(f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	var res []map[string]any
	b, _ := os.ReadFile(out("r.json"))
	if err := json.Unmarshal(b, &res); err != nil || len(res) != 2 || res[0]["traces"] == nil || res[1]["scenario"] == nil {
		t.Errorf("JSON output: %v", err)
	}
	csvb, _ := os.ReadFile(out("r.csv"))
	if !strings.Contains(string(csvb), "\nshared,") || !strings.Contains(string(csvb), "\nfinetune,") {
		t.Errorf("CSV lacks a family column:\n%s", csvb)
	}
	// One family: a single JSON object.
	stdout.Reset()
	one := []string{"-family", "shared", "-layers", "2", "-width", "64", "-mlp-ratio", "2", "-tasks", "3", "-block", "32x32",
		"-switches", "2", "-window", "1ms", "-cache", out("cache"), "-trace", "random", "-json", "-"}
	if err := runRun(one, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var single map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &single); err != nil || single["traces"] == nil {
		t.Errorf("-family shared -json -: %v\n%s", err, stdout.String())
	}
	for _, bad := range [][]string{{"-block", "x"}, {"-direct", "sometimes"}, {"-chart", "a.png"}, {"a.dms", "b.dms"}, {"-profile", "nowhere"}, {"-family", "mixed"}, {"-version-bound", "loose"}} {
		if err := runRun(bad, &stdout, &stderr); err == nil {
			t.Errorf("run %v accepted", bad)
		}
	}
}

func TestCalibrateCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "local.json")
	var stdout, stderr bytes.Buffer
	if err := runCalibrate([]string{"-dir", dir, "-size", "8", "-point-time", "5ms", "-q", "-o", path}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "local" || !strings.Contains(stdout.String(), "wrote "+path) {
		t.Errorf("profile %q, stdout %q", p.Name, stdout.String())
	}
	if err := runCalibrate([]string{"-size", "0"}, &stdout, &stderr); err == nil {
		t.Error("-size 0 accepted")
	}
}
