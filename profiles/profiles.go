// Package profiles describes the platforms dmsparse deploys on: the memory
// budget for resident weight blocks, the storage device's read bandwidth and
// latency by request size, the direct-I/O alignment, and the loader settings
// (request size, requests in flight, coalescing gap) and block shape that
// suit it. The JSON profiles in this directory are embedded; Load reads any
// other file (for example one written by "dmbench calibrate").
package profiles

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dmsparse/dmsparse/internal/atomicfile"
)

// builtin holds the vendor-figure profiles; a measured local.json written
// by "dmbench calibrate" beside them is loaded by path, not embedded.
//
//go:embed jetson-orin-nx-16gb.json jetson-agx-orin-64gb.json raspberry-pi-5.json x86-dev.json
var builtin embed.FS

// Profile is one platform's description. Bandwidths are in bytes per
// second, latencies in microseconds, sizes in bytes.
type Profile struct {
	// Name identifies the profile, e.g. "jetson-orin-nx-16gb".
	Name string `json:"name"`
	// Description says what hardware the profile describes.
	Description string `json:"description,omitempty"`
	// Source cites where the figures come from: vendor specifications (with
	// the document), or "measured" with the date and tool.
	Source string `json:"source"`
	// MemoryBytes is the device's total memory.
	MemoryBytes int64 `json:"memory_bytes"`
	// BudgetBytes is the pool budget for resident weight blocks.
	BudgetBytes int64 `json:"budget_bytes"`
	// MemoryBandwidth is the streaming read bandwidth of main memory.
	MemoryBandwidth float64 `json:"memory_bandwidth,omitempty"`
	// KernelGFLOPS is the BSR kernel's throughput (32 x 32 fp32 blocks,
	// one thread), with Kernel naming the implementation measured.
	KernelGFLOPS float64 `json:"kernel_gflops,omitempty"`
	// Kernel names the kernel KernelGFLOPS was measured with.
	Kernel string `json:"kernel,omitempty"`
	// Storage describes the device the weights are read from.
	Storage Storage `json:"storage"`
	// Loader holds the loader settings recommended for this platform.
	Loader Loader `json:"loader"`
	// Block is the preferred block shape.
	Block BlockShape `json:"block"`
}

// Storage describes a storage device's read performance.
type Storage struct {
	// Kind is the device class: "nvme", "ssd", "emmc", "microsd", "virtio", ...
	Kind string `json:"kind"`
	// DIOAlignment is the offset, length and buffer alignment O_DIRECT needs.
	DIOAlignment int `json:"dio_alignment"`
	// SeqReadBandwidth is the sequential O_DIRECT read bandwidth with the
	// recommended request size and requests in flight.
	SeqReadBandwidth float64 `json:"seq_read_bandwidth"`
	// RandRead4KLatencyUS is the latency of one 4 KiB random read at queue
	// depth 1.
	RandRead4KLatencyUS float64 `json:"rand_read_4k_latency_us"`
	// Reads gives bandwidth and latency by request size and requests in
	// flight.
	Reads []ReadPoint `json:"reads"`
}

// ReadPoint is the read performance at one request size and queue depth.
type ReadPoint struct {
	// RequestBytes is the size of each read request.
	RequestBytes int64 `json:"request_bytes"`
	// InFlight is the number of requests outstanding at once.
	InFlight int `json:"in_flight"`
	// Bandwidth is the achieved read bandwidth.
	Bandwidth float64 `json:"bandwidth"`
	// LatencyUS is the mean completion time of one request.
	LatencyUS float64 `json:"latency_us"`
}

// Loader holds loader settings.
type Loader struct {
	// RequestBytes is the largest read request the loader issues.
	RequestBytes int64 `json:"request_bytes"`
	// InFlight is the number of read requests kept outstanding.
	InFlight int `json:"in_flight"`
	// CoalesceGapBytes merges two extents when the gap between them is
	// smaller: reading the gap costs less than another request.
	CoalesceGapBytes int64 `json:"coalesce_gap_bytes"`
}

// BlockShape is an R x C block shape.
type BlockShape struct {
	// R is the number of rows in a block.
	R int `json:"r"`
	// C is the number of columns in a block.
	C int `json:"c"`
}

// Validate checks that every field holds a usable value and returns an error
// naming the first field that does not.
func (p *Profile) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("profile %q: field %s: %s", p.Name, field, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(p.Name) == "" {
		return bad("name", "empty, want a name")
	}
	if strings.TrimSpace(p.Source) == "" {
		return bad("source", "empty, want a citation of where the figures come from (vendor specification or \"measured\")")
	}
	if p.MemoryBytes <= 0 {
		return bad("memory_bytes", "%d, want > 0", p.MemoryBytes)
	}
	if p.BudgetBytes <= 0 || p.BudgetBytes > p.MemoryBytes {
		return bad("budget_bytes", "%d, want in (0, memory_bytes = %d]", p.BudgetBytes, p.MemoryBytes)
	}
	if p.MemoryBandwidth < 0 || !finite(p.MemoryBandwidth) {
		return bad("memory_bandwidth", "%g, want a finite value >= 0", p.MemoryBandwidth)
	}
	if p.KernelGFLOPS < 0 || !finite(p.KernelGFLOPS) {
		return bad("kernel_gflops", "%g, want a finite value >= 0", p.KernelGFLOPS)
	}
	s := &p.Storage
	if strings.TrimSpace(s.Kind) == "" {
		return bad("storage.kind", "empty, want a device class such as nvme, emmc or microsd")
	}
	if s.DIOAlignment < 512 || s.DIOAlignment&(s.DIOAlignment-1) != 0 {
		return bad("storage.dio_alignment", "%d, want a power of two >= 512", s.DIOAlignment)
	}
	if !(s.SeqReadBandwidth > 0) || !finite(s.SeqReadBandwidth) {
		return bad("storage.seq_read_bandwidth", "%g, want a finite value > 0", s.SeqReadBandwidth)
	}
	if !(s.RandRead4KLatencyUS > 0) || !finite(s.RandRead4KLatencyUS) {
		return bad("storage.rand_read_4k_latency_us", "%g, want a finite value > 0", s.RandRead4KLatencyUS)
	}
	if len(s.Reads) == 0 {
		return bad("storage.reads", "empty, want at least one read point")
	}
	for i, r := range s.Reads {
		f := fmt.Sprintf("storage.reads[%d]", i)
		if r.RequestBytes <= 0 || r.RequestBytes%int64(s.DIOAlignment) != 0 {
			return bad(f+".request_bytes", "%d, want a positive multiple of dio_alignment %d", r.RequestBytes, s.DIOAlignment)
		}
		if r.InFlight < 1 {
			return bad(f+".in_flight", "%d, want >= 1", r.InFlight)
		}
		if !(r.Bandwidth > 0) || !finite(r.Bandwidth) {
			return bad(f+".bandwidth", "%g, want a finite value > 0", r.Bandwidth)
		}
		if !(r.LatencyUS > 0) || !finite(r.LatencyUS) {
			return bad(f+".latency_us", "%g, want a finite value > 0", r.LatencyUS)
		}
	}
	l := &p.Loader
	if l.RequestBytes <= 0 || l.RequestBytes%int64(s.DIOAlignment) != 0 {
		return bad("loader.request_bytes", "%d, want a positive multiple of dio_alignment %d", l.RequestBytes, s.DIOAlignment)
	}
	if l.InFlight < 1 || l.InFlight > 1024 {
		return bad("loader.in_flight", "%d, want 1..1024", l.InFlight)
	}
	if l.CoalesceGapBytes < 0 {
		return bad("loader.coalesce_gap_bytes", "%d, want >= 0", l.CoalesceGapBytes)
	}
	if p.Block.R < 1 || p.Block.C < 1 || p.Block.R > 4096 || p.Block.C > 4096 {
		return bad("block", "%dx%d, want both sides in 1..4096", p.Block.R, p.Block.C)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Parse decodes a profile from JSON, rejecting unknown fields, and validates
// it. name is used in error messages (normally the file name).
func Parse(data []byte, name string) (*Profile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("profiles: %s: decoding JSON profile: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("profiles: %s: trailing data after the JSON profile object", name)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("profiles: %s: %w", name, err)
	}
	return &p, nil
}

// Load reads a profile from a JSON file, or, when nameOrPath names no file
// and has no path separator or extension, the built-in profile of that name.
func Load(nameOrPath string) (*Profile, error) {
	data, err := os.ReadFile(nameOrPath)
	if err == nil {
		return Parse(data, nameOrPath)
	}
	if os.IsNotExist(err) && !strings.ContainsRune(nameOrPath, filepath.Separator) && filepath.Ext(nameOrPath) == "" {
		return Builtin(nameOrPath)
	}
	return nil, fmt.Errorf("profiles: reading %s: %w", nameOrPath, err)
}

// Builtin returns the embedded profile of the given name.
func Builtin(name string) (*Profile, error) {
	data, err := builtin.ReadFile(name + ".json")
	if err != nil {
		return nil, fmt.Errorf("profiles: no built-in profile %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return Parse(data, name+".json")
}

// Names lists the built-in profiles, sorted.
func Names() []string {
	ents, _ := builtin.ReadDir(".")
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Marshal encodes the profile as indented JSON with a trailing newline.
func (p *Profile) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("profiles: encoding profile %q: %w", p.Name, err)
	}
	return append(b, '\n'), nil
}

// Save validates the profile and writes it to path atomically: a temporary
// file in the same directory, fsynced, renamed over path, and the directory
// fsynced.
func (p *Profile) Save(path string) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("profiles: saving %s: %w", path, err)
	}
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data, 0o644)
}

// WriteFileAtomic writes data to path so that path holds either its old
// content or all of data: temp file, fsync, rename, fsync of the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// ReadPointFor returns the measured point with the largest request size not
// above requestBytes and the largest queue depth not above inFlight, falling
// back to the smallest point; ok is false when the profile has none.
func (p *Profile) ReadPointFor(requestBytes int64, inFlight int) (ReadPoint, bool) {
	var best ReadPoint
	found := false
	for _, r := range p.Storage.Reads {
		if r.RequestBytes > requestBytes || r.InFlight > inFlight {
			continue
		}
		if !found || r.RequestBytes > best.RequestBytes || (r.RequestBytes == best.RequestBytes && r.InFlight > best.InFlight) {
			best, found = r, true
		}
	}
	if !found && len(p.Storage.Reads) > 0 {
		best = p.Storage.Reads[0]
		for _, r := range p.Storage.Reads[1:] {
			if r.RequestBytes < best.RequestBytes || (r.RequestBytes == best.RequestBytes && r.InFlight < best.InFlight) {
				best = r
			}
		}
		found = true
	}
	return best, found
}
