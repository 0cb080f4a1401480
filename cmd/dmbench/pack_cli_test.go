package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsparse/dmsparse/pack"
	"github.com/dmsparse/dmsparse/safetensors"
)

func pkRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestPackCLIWorkflow(t *testing.T) {
	dir := t.TempDir()
	tasks, base, err := pack.WriteSynthetic(dir, pack.SyntheticSpec{Kind: "finetune", Tasks: 3, Layers: 2, Seed: 4, Heads: true})
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "family.dms")
	args := []string{"pack", "--base", base, "--density", "0.5", "--block", "16x16", "--eps", "0.01", "-o", store}
	for _, in := range tasks {
		args = append(args, "--task", in.Name+"="+in.Path)
	}
	out, errs, code := pkRun(t, args...)
	if code != 0 {
		t.Fatalf("pack exit %d: %s", code, errs)
	}
	if errs != "" {
		t.Fatalf("progress written to a non-terminal stderr: %q", errs)
	}
	for _, want := range []string{"packed 3 tasks", "mean pairwise share", "switch diff sets", "base-sharing curve", "lm_head.weight"} {
		if !strings.Contains(out, want) {
			t.Fatalf("pack output lacks %q:\n%s", want, out)
		}
	}
	out, errs, code = pkRun(t, "inspect", store)
	if code != 0 {
		t.Fatalf("inspect exit %d: %s", code, errs)
	}
	t.Logf("dmbench inspect output:\n%s", out)
	for _, want := range []string{"tasks: task0, task1, task2", "quality per task", "task2", "from \\ to",
		"version bound delta", "delta kept", "bytes/switch", "base-sharing curve over eps"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect output lacks %q", want)
		}
	}
	if out, _, code = pkRun(t, "inspect", "-json", store); code != 0 || !strings.Contains(out, `"diffs"`) {
		t.Fatalf("inspect -json: %d %s", code, out)
	}
	dense, bsrOut := filepath.Join(dir, "t1.dense.safetensors"), filepath.Join(dir, "t1.bsr.safetensors")
	if _, errs, code = pkRun(t, "export", store, "--task", "task1", "--dense", dense, "--bsr", bsrOut); code != 0 {
		t.Fatalf("export: %s", errs)
	}
	in, err := safetensors.Open(tasks[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ex, err := safetensors.Open(dense)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if len(ex.Tensors()) != len(in.Tensors()) {
		t.Fatalf("export has %d tensors, input %d", len(ex.Tensors()), len(in.Tensors()))
	}
	for _, ti := range in.Tensors() {
		e, ok := ex.Info(ti.Name)
		if !ok || len(e.Shape) != len(ti.Shape) {
			t.Fatalf("export lacks %s or its shape differs", ti.Name)
		}
		for i := range e.Shape {
			if e.Shape[i] != ti.Shape[i] {
				t.Fatalf("%s: exported shape %v, input %v", ti.Name, e.Shape, ti.Shape)
			}
		}
	}
	b, err := safetensors.Open(bsrOut)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Info("model.layers.0.attn.q.weight.bsr_crow_indices"); !ok || b.Metadata()["model.layers.0.attn.q.weight.shape"] != "[64,72]" {
		t.Fatalf("BSR export lacks indices or shape metadata: %v", b.Metadata())
	}
	b.Close()

	masks := filepath.Join(dir, "masks.safetensors")
	args[len(args)-len(tasks)*2-1] = masks // replace -o value
	args[0] = "align"
	trans := filepath.Join(dir, "transitions.json")
	os.WriteFile(trans, []byte(`{"task0": {"task1": 10, "task2": 1}, "task1": {"task0": 10}}`), 0o644)
	args = append(args, "--transitions", trans)
	if _, errs, code = pkRun(t, args...); code != 0 {
		t.Fatalf("align: %s", errs)
	}
	mf, err := safetensors.Open(masks)
	if err != nil {
		t.Fatal(err)
	}
	m, info, err := mf.Uint8("task0/model.layers.1.mlp.up.weight")
	if err != nil || info.Shape[0] != 6 || info.Shape[1] != 4 {
		t.Fatalf("mask tensor %v %v", info, err)
	}
	kept := 0
	for _, x := range m {
		kept += int(x)
	}
	if kept != 12 {
		t.Fatalf("mask keeps %d of 24 blocks at density 0.5", kept)
	}
	mf.Close()
	if _, err := os.Stat(store); err != nil {
		t.Fatal(err)
	}
}

func TestPackCLIErrors(t *testing.T) {
	dir := t.TempDir()
	tasks, _, err := pack.WriteSynthetic(dir, pack.SyntheticSpec{Kind: "calib", Tasks: 2, Layers: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	trans := filepath.Join(dir, "t.json")
	os.WriteFile(trans, []byte(`{"a": {"zz": 1}}`), 0o644)
	base := []string{"pack", "--task", "a=" + tasks[0].Path, "--task", "b=" + tasks[1].Path, "--block", "16x16", "-o", filepath.Join(dir, "x.dms")}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--density", "0"}, "density 0 outside (0, 1]"},
		{[]string{"--density", "1.2"}, "density 1.2 outside (0, 1]"},
		{[]string{"--eps", "-1"}, "eps -1"},
		{[]string{"--block", "16"}, "want RxC"},
		{[]string{"--calib", "zz=" + tasks[0].Calib}, "no task named \"zz\""},
		{[]string{"--masks", "magic"}, "from-input"},
		{[]string{"--task", "c=" + filepath.Join(dir, "nope.safetensors")}, "nope.safetensors"},
		{[]string{"--transitions", trans}, "no task named \"zz\""},
		{[]string{"--version-bound", "loose"}, "version bound \"loose\""},
		{[]string{"--curve-eps", "0,x"}, "\"x\" is not a number"},
		{[]string{"--curve-eps", "-0.5"}, "eps -0.5"},
	} {
		_, errs, code := pkRun(t, append(append([]string{}, base...), c.extra...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want mention of %q", c.extra, code, errs, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.dms")); err == nil {
		t.Fatal("a store was written despite errors")
	}
	if _, errs, code := pkRun(t, "export", filepath.Join(dir, "none.dms"), "--task", "a", "--dense", filepath.Join(dir, "o.safetensors")); code == 0 || !strings.Contains(errs, "none.dms") {
		t.Fatalf("export of a missing store: %d %q", code, errs)
	}
	acts := filepath.Join(dir, "acts.safetensors")
	safetensors.WriteFile(acts, []safetensors.Tensor{safetensors.FromFloat32("model.layers.0.attn.q.weight", safetensors.F32, []int{2, 72}, make([]float32, 144))}, nil)
	calib := filepath.Join(dir, "c.safetensors")
	if out, errs, code := pkRun(t, "calib", "--acts", acts, "--model", tasks[0].Path, "-o", calib); code != 0 || !strings.Contains(out, "wrote 1") {
		t.Fatalf("calib: %d %s %s", code, out, errs)
	}
}
