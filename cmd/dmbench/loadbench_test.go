package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestLoadbenchCLI(t *testing.T) {
	dir, err := os.MkdirTemp("/var/tmp", "loadbench-cli-")
	if err != nil {
		dir = t.TempDir()
	} else {
		defer os.RemoveAll(dir)
	}
	var out, errb bytes.Buffer
	args := []string{"-dir", dir, "-scratch-mib", "4", "-extent-mib", "1", "-scatter-mib", "1", "-switches", "2", "-depth", "4", "-json"}
	if err := runLoadbench(args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var rep loadbenchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if rep.Device == nil || rep.Device.Bandwidth <= 0 || len(rep.Cases) != 2 || rep.Cases[0].BytesPerSwitch != 1<<20 {
		t.Fatalf("report %s", out.String())
	}
	out.Reset()
	if err := runLoadbench(args[:len(args)-1], &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"device:", "extents", "scattered", "of device", "bar:"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
	if err := runLoadbench([]string{"-direct", "sometimes"}, &out, &errb); err == nil {
		t.Fatal("bad -direct accepted")
	}
	if err := runLoadbench([]string{"-profile", "no-such-profile"}, &out, &errb); err == nil {
		t.Fatal("unknown profile accepted")
	}
}
