package profiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinProfilesValid(t *testing.T) {
	want := []string{"jetson-agx-orin-64gb", "jetson-orin-nx-16gb", "raspberry-pi-5", "x86-dev"}
	got := Names()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, n := range got {
		p, err := Builtin(n)
		if err != nil {
			t.Fatalf("Builtin(%q): %v", n, err)
		}
		if p.Name != n {
			t.Errorf("profile file %s.json has name %q", n, p.Name)
		}
		if !strings.Contains(p.Source, "vendor specifications") {
			t.Errorf("%s: source %q does not cite vendor specifications", n, p.Source)
		}
		rp, ok := p.ReadPointFor(p.Loader.RequestBytes, p.Loader.InFlight)
		if !ok || rp.RequestBytes > p.Loader.RequestBytes || rp.InFlight > p.Loader.InFlight {
			t.Errorf("%s: ReadPointFor(%d, %d) = %+v, %v", n, p.Loader.RequestBytes, p.Loader.InFlight, rp, ok)
		}
	}
}

func TestLoadByNameAndPath(t *testing.T) {
	p, err := Load("x86-dev")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "local.json")
	p.Name = "local"
	p.Source = "measured"
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	q, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "local" || q.Storage.SeqReadBandwidth != p.Storage.SeqReadBandwidth || len(q.Storage.Reads) != len(p.Storage.Reads) {
		t.Errorf("round trip changed the profile: %+v", q)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("Save left %d files in the directory, want 1", len(ents))
	}
	if _, err := Load("no-such-profile"); err == nil || !strings.Contains(err.Error(), "no built-in profile") {
		t.Errorf("Load(unknown name) error = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("Load(missing file) error = %v", err)
	}
}

func TestValidationErrors(t *testing.T) {
	base, err := Builtin("jetson-orin-nx-16gb")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		field string
		edit  func(p *Profile)
	}{
		{"source", func(p *Profile) { p.Source = " " }},
		{"name", func(p *Profile) { p.Name = "" }},
		{"budget_bytes", func(p *Profile) { p.BudgetBytes = p.MemoryBytes + 1 }},
		{"memory_bytes", func(p *Profile) { p.MemoryBytes = 0 }},
		{"storage.kind", func(p *Profile) { p.Storage.Kind = "" }},
		{"storage.dio_alignment", func(p *Profile) { p.Storage.DIOAlignment = 3000 }},
		{"storage.seq_read_bandwidth", func(p *Profile) { p.Storage.SeqReadBandwidth = -1 }},
		{"storage.reads", func(p *Profile) { p.Storage.Reads = nil }},
		{"storage.reads[1].request_bytes", func(p *Profile) { p.Storage.Reads[1].RequestBytes = 1000 }},
		{"storage.reads[0].in_flight", func(p *Profile) { p.Storage.Reads[0].InFlight = 0 }},
		{"loader.in_flight", func(p *Profile) { p.Loader.InFlight = 0 }},
		{"loader.request_bytes", func(p *Profile) { p.Loader.RequestBytes = 100 }},
		{"block", func(p *Profile) { p.Block.R = 0 }},
	}
	for _, c := range cases {
		p := *base
		p.Storage.Reads = append([]ReadPoint(nil), base.Storage.Reads...)
		c.edit(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), "field "+c.field+":") {
			t.Errorf("editing %s: Validate() = %v, want an error naming the field", c.field, err)
		}
	}
	for name, data := range map[string]string{
		"unknown field": `{"name":"x","bogus":1}`,
		"not json":      `{"name":`,
		"trailing":      `{"name":"x"} {}`,
	} {
		if _, err := Parse([]byte(data), "bad.json"); err == nil || !strings.Contains(err.Error(), "bad.json") {
			t.Errorf("%s: Parse error = %v, want one naming the file", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range Names() {
		data, _ := builtin.ReadFile(n + ".json")
		f.Add(data)
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted a profile Validate rejects: %v", err)
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out, "again.json"); err != nil {
			t.Fatalf("re-parsing a marshalled profile: %v", err)
		}
	})
}
