// Package pack turns a family of safetensors checkpoints (one per task,
// optionally a base they were fine-tuned from and per-task calibration
// statistics) into a DM-Sparse block store: per-task block importance,
// independent or aligned masks, block versions, an I/O-aware layout, and a
// quality report. It streams over tensors: one tensor of every task (and of
// the base) is in memory at a time, the checkpoints themselves are
// memory-mapped.
package pack

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/dmsparse/dmsparse/align"
	"github.com/dmsparse/dmsparse/diffload"
	"github.com/dmsparse/dmsparse/safetensors"
)

// TaskInput names one task and its files.
type TaskInput struct {
	// Name is the task name.
	Name string
	// Path is the task's safetensors checkpoint.
	Path string
	// Calib is the task's calibration statistics file ("" for none): for
	// each blocked weight NAME a tensor NAME.act_sqmean of shape
	// [in_features].
	Calib string
}

// Options controls Run.
type Options struct {
	// Tasks lists the family's tasks (at most 64).
	Tasks []TaskInput
	// Base is an optional base checkpoint the tasks were fine-tuned from.
	Base string
	// Density is the share of blocks each task keeps, in (0, 1]; ignored
	// with MasksFromInput.
	Density float64
	// R and C give the block shape.
	R, C int
	// Eps is the tolerance of the quality bounds (>= 0): of the aligned
	// masks' importance and, with a base, of VersionBound.
	Eps float64
	// Method selects independent, core or swap (default) masks.
	Method align.Method
	// MasksFromInput takes each task's zero blocks as pruned instead of
	// choosing masks.
	MasksFromInput bool
	// Include and Exclude are regular expressions on tensor names: a 2-D
	// floating-point tensor is blocked when it matches some Include (or
	// Include is empty) and no Exclude.
	Include, Exclude []string
	// Weights optionally gives task transition frequencies (T x T) for the
	// alignment and the layout.
	Weights [][]float64
	// VersionBound is the bound under which a kept block deploys the
	// base's version (with a base only): align.BoundDelta (default: each
	// task keeps at least 1 - Eps of its fine-tune delta energy on its kept
	// blocks, per tensor) or align.BoundWeight (the substitutions add at
	// most Eps of the kept weights' squared norm to the squared weight
	// error, per tensor).
	VersionBound align.VersionBound
	// CurveEps lists the tolerances of the base-sharing curve (default
	// align.DefaultCurveEps).
	CurveEps []float64
	// OwnBaseChoice makes each task pick the blocks that deploy the base's
	// version by its own differences alone. By default the tasks first walk
	// a ranking they share (mean normalised difference over the tasks that
	// keep the block), so they pick the same base blocks and switches read
	// fewer versions.
	OwnBaseChoice bool
	// Alignment is the store's I/O alignment (default 4096).
	Alignment int
	// Progress, when set, is called as work proceeds.
	Progress func(stage string, done, total int)
}

// Result is what Run produced.
type Result struct {
	// Report describes the family (also stored in the store).
	Report *Report
	// Masks holds, per task, the chosen block mask of each blocked tensor
	// (row-major over the block grid), when Run was asked to keep them.
	Masks []map[string][]bool
	// Grids gives each blocked tensor's grid.
	Grids map[string]align.Grid
}

func (o *Options) check() error {
	if len(o.Tasks) == 0 {
		return errors.New("pack: no tasks given")
	}
	if len(o.Tasks) > 64 {
		return fmt.Errorf("pack: %d tasks, at most 64 supported", len(o.Tasks))
	}
	seen := map[string]bool{}
	for _, t := range o.Tasks {
		if t.Name == "" || strings.ContainsAny(t.Name, "/=") {
			return fmt.Errorf("pack: task name %q: want a non-empty name without '/' or '='", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("pack: task %q given twice", t.Name)
		}
		seen[t.Name] = true
	}
	if !o.MasksFromInput {
		if _, err := align.KeepCount(1, o.Density); err != nil {
			return fmt.Errorf("pack: %w", err)
		}
	}
	if err := align.CheckEps(o.Eps); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if o.R < 1 || o.C < 1 || o.R > 4096 || o.C > 4096 {
		return fmt.Errorf("pack: block shape %dx%d: want sides in [1, 4096]", o.R, o.C)
	}
	if o.Weights != nil {
		if len(o.Weights) != len(o.Tasks) {
			return fmt.Errorf("pack: transition weights have %d rows, want one per task (%d)", len(o.Weights), len(o.Tasks))
		}
		for _, r := range o.Weights {
			if len(r) != len(o.Tasks) {
				return fmt.Errorf("pack: transition weights row has %d entries, want %d", len(r), len(o.Tasks))
			}
		}
	}
	if _, err := align.ParseMethod(string(o.Method)); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if _, err := align.ParseVersionBound(string(o.VersionBound)); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	for _, e := range o.CurveEps {
		if err := align.CheckEps(e); err != nil {
			return fmt.Errorf("pack: curve tolerance: %w", err)
		}
	}
	return nil
}

// source locates one block's contents in an input file.
type source struct {
	file   int // index into files (tasks first, base last)
	tensor string
	block  int
}

type taskTensor struct {
	name     string
	entry    TensorEntry
	indptr   []int32
	indices  []int32
	versions []uint32 // version numbers (pass 1), store ids (pass 2)
}

// state is one Run's working set.
type state struct {
	opt        Options
	files      []*safetensors.File // tasks, then base
	calib      []*safetensors.File
	base       *safetensors.File
	include    []*regexp.Regexp
	exclude    []*regexp.Regexp
	refs       []align.VersionRef
	srcs       []source
	byHash     map[[16]byte]uint32
	tensors    [][]taskTensor // per task
	dense      [][]diffload.DenseSpec
	tensorIdx  map[string]int
	q          []TaskQuality
	out        [][]float64 // per task, rel output err per tensor
	curves     [][]align.CurvePoint
	curvePriv  [][]int     // per task and curve point: private versions
	curveDiff  [][][]int64 // per curve point, from, to: versions to read
	share      align.PairShare
	indepShare align.PairShare
	store      *diffload.StoreWriter
	res        *Result
	denseBytes int64
	blobs      map[uint32]bool // dense blobs counted in denseBytes
	inv        []uint32        // store position -> version number
	hbuf       []byte          // hashBlock scratch
	taskBuf    []float32       // conversion buffer for task tensors
	baseBuf    []float32       // conversion buffer for base tensors
}

// Run packs the family into the store at out (nothing is written when out
// is ""), returning the report; keepMasks also returns the masks.
func Run(out string, opt Options, keepMasks bool) (res *Result, err error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	if opt.Method == "" {
		opt.Method = align.Swap
	}
	if opt.CurveEps == nil {
		opt.CurveEps = align.DefaultCurveEps
	}
	opt.VersionBound, _ = align.ParseVersionBound(string(opt.VersionBound))
	if opt.Alignment == 0 {
		opt.Alignment = 4096
	}
	s := &state{opt: opt, byHash: map[[16]byte]uint32{}, tensorIdx: map[string]int{},
		res: &Result{Grids: map[string]align.Grid{}}}
	T := len(opt.Tasks)
	defer s.close()
	for _, p := range opt.Include {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("pack: include pattern %q: %w", p, err)
		}
		s.include = append(s.include, re)
	}
	for _, p := range opt.Exclude {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("pack: exclude pattern %q: %w", p, err)
		}
		s.exclude = append(s.exclude, re)
	}
	s.calib = make([]*safetensors.File, T)
	for _, t := range opt.Tasks {
		f, err := safetensors.Open(t.Path)
		if err != nil {
			return nil, fmt.Errorf("pack: task %q checkpoint: %w", t.Name, err)
		}
		s.files = append(s.files, f)
	}
	for i, t := range opt.Tasks {
		if t.Calib == "" {
			continue
		}
		f, err := safetensors.Open(t.Calib)
		if err != nil {
			return nil, fmt.Errorf("pack: task %q calibration statistics: %w", t.Name, err)
		}
		s.calib[i] = f
	}
	if opt.Base != "" {
		f, err := safetensors.Open(opt.Base)
		if err != nil {
			return nil, fmt.Errorf("pack: base checkpoint: %w", err)
		}
		s.base = f
		s.files = append(s.files, f)
	}
	s.tensors = make([][]taskTensor, T)
	s.dense = make([][]diffload.DenseSpec, T)
	s.q = make([]TaskQuality, T)
	s.out = make([][]float64, T)
	s.curves = make([][]align.CurvePoint, T)
	for i := range s.q {
		s.q[i].Task = opt.Tasks[i].Name
		s.q[i].MinTensorRatio = 1
		if s.base != nil {
			s.curves[i] = align.NewCurve(opt.CurveEps)
			s.curvePriv = append(s.curvePriv, make([]int, len(opt.CurveEps)))
		}
	}
	if s.base != nil {
		s.curveDiff = make([][][]int64, len(opt.CurveEps))
		for e := range s.curveDiff {
			s.curveDiff[e] = make([][]int64, T)
			for f := range s.curveDiff[e] {
				s.curveDiff[e][f] = make([]int64, T)
			}
		}
	}
	if keepMasks {
		s.res.Masks = make([]map[string][]bool, T)
		for i := range s.res.Masks {
			s.res.Masks[i] = map[string][]bool{}
		}
	}
	if out != "" {
		s.store, err = diffload.CreateStore(out, diffload.WriterOptions{R: opt.R, C: opt.C, Alignment: opt.Alignment})
		if err != nil {
			return nil, fmt.Errorf("pack: %w", err)
		}
		defer func() {
			if err != nil {
				s.store.Abort()
			}
		}()
	}
	if err := s.pass1(); err != nil {
		return nil, err
	}
	order := align.Layout(s.refs, T, opt.Weights)
	pos := make([]uint32, len(order))
	for p, v := range order {
		pos[v] = uint32(p)
	}
	if s.store != nil {
		if err := s.writeVersions(order); err != nil {
			return nil, err
		}
	}
	rep := s.report(pos)
	s.res.Report = rep
	if s.store != nil {
		for t := range opt.Tasks {
			spec := diffload.TaskSpec{Name: opt.Tasks[t].Name, Dense: s.dense[t]}
			for _, tt := range s.tensors[t] {
				spec.Tensors = append(spec.Tensors, diffload.TensorSpec{
					Name: tt.name, Rows: tt.entry.Shape[0], Cols: tt.entry.Shape[1], Layer: tt.entry.Layer,
					Indptr: tt.indptr, Indices: tt.indices, Versions: tt.versions,
				})
			}
			if err := s.store.AddTask(spec); err != nil {
				return nil, fmt.Errorf("pack: %w", err)
			}
		}
		js, err := json.Marshal(rep)
		if err != nil {
			return nil, fmt.Errorf("pack: encode report: %w", err)
		}
		s.store.SetMeta(MetaKey, js)
		if err := s.store.Commit(); err != nil {
			return nil, fmt.Errorf("pack: %w", err)
		}
	}
	return s.res, nil
}

func (s *state) close() {
	for _, f := range s.files {
		f.Close()
	}
	for _, f := range s.calib {
		if f != nil {
			f.Close()
		}
	}
}

func (s *state) progress(stage string, done, total int) {
	if s.opt.Progress != nil {
		s.opt.Progress(stage, done, total)
	}
}

var layerRe = regexp.MustCompile(`(?:^|\.)(\d+)(?:\.|$)`)

// LayerOf returns the pipeline layer of a tensor name: the first dotted
// integer component plus one ("model.layers.3.mlp.weight" is layer 4);
// names without one are layer 0 when they mention "embed", else maxLayer+1
// (heads and final norms).
func LayerOf(name string, maxLayer int) int {
	if m := layerRe.FindStringSubmatch(name); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n < math.MaxInt32-2 {
			return n + 1
		}
	}
	if strings.Contains(strings.ToLower(name), "embed") {
		return 0
	}
	return maxLayer + 1
}

func (s *state) blockable(info safetensors.TensorInfo) bool {
	if len(info.Shape) != 2 || !info.DType.IsFloat() || info.Shape[0] == 0 || info.Shape[1] == 0 {
		return false
	}
	if len(s.include) > 0 {
		ok := false
		for _, re := range s.include {
			if re.MatchString(info.Name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, re := range s.exclude {
		if re.MatchString(info.Name) {
			return false
		}
	}
	return true
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// pass1 decides every tensor's kind, masks and versions.
func (s *state) pass1() error {
	T := len(s.opt.Tasks)
	type occ struct {
		info []*safetensors.TensorInfo // per task, nil when absent
	}
	names := map[string]*occ{}
	var order []string
	for t, f := range s.files[:T] {
		for _, info := range f.Tensors() {
			o := names[info.Name]
			if o == nil {
				o = &occ{info: make([]*safetensors.TensorInfo, T)}
				names[info.Name] = o
				order = append(order, info.Name)
			}
			i := info
			o.info[t] = &i
		}
	}
	maxLayer := 0
	for _, n := range order {
		if m := layerRe.FindStringSubmatch(n); m != nil {
			if v, err := strconv.Atoi(m[1]); err == nil && v+1 > maxLayer && v < math.MaxInt32-2 {
				maxLayer = v + 1
			}
		}
	}
	layer := map[string]int{}
	for _, n := range order {
		layer[n] = LayerOf(n, maxLayer)
	}
	sort.SliceStable(order, func(i, j int) bool {
		if layer[order[i]] != layer[order[j]] {
			return layer[order[i]] < layer[order[j]]
		}
		return order[i] < order[j]
	})
	for i, n := range order {
		s.tensorIdx[n] = i
	}
	for i, name := range order {
		s.progress("analyse", i, len(order))
		o := names[name]
		shared := true
		var first *safetensors.TensorInfo
		for _, info := range o.info {
			if info == nil {
				shared = false
				continue
			}
			if first == nil {
				first = info
			} else if !sameShape(first.Shape, info.Shape) {
				shared = false
			}
		}
		if s.base != nil {
			if bi, ok := s.base.Info(name); ok {
				for t, info := range o.info {
					if info != nil && !sameShape(info.Shape, bi.Shape) {
						return fmt.Errorf("pack: task %q (%s): tensor %q has shape %v, but the base (%s) has %v; a tensor of the base must keep its shape in every task",
							s.opt.Tasks[t].Name, s.opt.Tasks[t].Path, name, info.Shape, s.opt.Base, bi.Shape)
					}
				}
			}
		}
		var err error
		switch {
		case shared && s.blockable(*first):
			err = s.blocked(name, o.info, layer[name])
		default:
			for t, info := range o.info {
				if info == nil {
					continue
				}
				if s.blockable(*info) {
					err = s.private(t, *info, layer[name])
				} else {
					err = s.denseTensor(t, *info, layer[name])
				}
				if err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
		for _, f := range s.files {
			f.Release(name)
		}
	}
	s.progress("analyse", len(order), len(order))
	return nil
}

// hashBlock returns the content hash of a block version; buf is scratch
// space reused between calls.
func hashBlock(v []float32, buf *[]byte) [16]byte {
	if cap(*buf) < 4*len(v) {
		*buf = make([]byte, 4*len(v))
	}
	b := (*buf)[:4*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	h := sha256.Sum256(b)
	return [16]byte(h[:16])
}

// extract copies block b of the row-major tensor w (grid g) into dst
// (R*C values, zero padded).
func extract(w []float32, g align.Grid, b int, dst []float32) {
	clear(dst)
	bc := g.BlockCols()
	i, j := b/bc, b%bc
	for r := 0; r < g.R && i*g.R+r < g.Rows; r++ {
		row := (i*g.R + r) * g.Cols
		copy(dst[r*g.C:], w[row+j*g.C:row+min(j*g.C+g.C, g.Cols)])
	}
}

// version registers a block version by content and returns its number.
func (s *state) version(h [16]byte, task int, src source, tensor string) uint32 {
	v, ok := s.byHash[h]
	if !ok {
		v = uint32(len(s.refs))
		s.byHash[h] = v
		s.refs = append(s.refs, align.VersionRef{Layer: math.MaxInt32, Tensor: s.tensorIdx[tensor], Block: src.block})
		s.srcs = append(s.srcs, src)
	}
	s.refs[v].Tasks |= 1 << uint(task)
	return v
}

// loadTask returns task t's tensor as float32: a view of the mapping for
// F32, else converted into the reused task buffer (valid until the next
// call).
func (s *state) loadTask(t int, name string) ([]float32, safetensors.TensorInfo, error) {
	w, info, err := s.files[t].Float32Into(name, s.taskBuf)
	if err != nil {
		return nil, info, fmt.Errorf("pack: task %q: %w", s.opt.Tasks[t].Name, err)
	}
	if info.DType != safetensors.F32 && cap(w) > cap(s.taskBuf) {
		s.taskBuf = w
	}
	return w, info, nil
}

func (s *state) loadCalib(t int, name string, cols int) ([]float32, error) {
	f := s.calib[t]
	if f == nil {
		return nil, nil
	}
	key := name + ".act_sqmean"
	info, ok := f.Info(key)
	if !ok {
		return nil, fmt.Errorf("pack: task %q: calibration statistics %s have no tensor %q for weight %q", s.opt.Tasks[t].Name, f.Path, key, name)
	}
	if len(info.Shape) != 1 || info.Shape[0] != cols {
		return nil, fmt.Errorf("pack: task %q: calibration statistics %s: tensor %q has shape %v, want [%d] (in_features of %q)", s.opt.Tasks[t].Name, f.Path, key, info.Shape, cols, name)
	}
	v, _, err := f.Float32(key)
	if err != nil {
		return nil, fmt.Errorf("pack: task %q: calibration statistics: %w", s.opt.Tasks[t].Name, err)
	}
	return v, nil
}

func entryOf(info safetensors.TensorInfo, kind string, layer int) TensorEntry {
	return TensorEntry{Name: info.Name, Shape: append([]int(nil), info.Shape...), DType: string(info.DType), Kind: kind, Layer: layer}
}

// blocked handles a 2-D weight every task has with the same shape.
func (s *state) blocked(name string, infos []*safetensors.TensorInfo, layer int) error {
	T := len(s.opt.Tasks)
	R, C := s.opt.R, s.opt.C
	g := align.Grid{Rows: infos[0].Shape[0], Cols: infos[0].Shape[1], R: R, C: C}
	n := g.NumBlocks()
	s.res.Grids[name] = g
	var base []float32
	var baseHash [][16]byte
	if s.base != nil {
		if _, ok := s.base.Info(name); ok {
			var err error
			var info safetensors.TensorInfo
			base, info, err = s.base.Float32Into(name, s.baseBuf)
			if err != nil {
				return fmt.Errorf("pack: base: %w", err)
			}
			if info.DType != safetensors.F32 && cap(base) > cap(s.baseBuf) {
				s.baseBuf = base
			}
			baseHash = make([][16]byte, n)
			blk := make([]float32, R*C)
			for b := 0; b < n; b++ {
				extract(base, g, b, blk)
				baseHash[b] = hashBlock(blk, &s.hbuf)
			}
		}
	}
	scores := make([][]float64, T)
	energy := make([][]float64, T)  // per block ||W_b||^2
	wEnergy := make([][]float64, T) // per block sum W^2 act
	diff := make([][]float64, T)    // per block ||W_b - B_b||^2
	wDiff := make([][]float64, T)
	hashes := make([][][16]byte, T)
	given := make([][]bool, T)
	blk := make([]float32, R*C)
	for t := 0; t < T; t++ {
		w, _, err := s.loadTask(t, name)
		if err != nil {
			return err
		}
		for _, v := range w {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("pack: task %q (%s): tensor %q holds a non-finite value", s.opt.Tasks[t].Name, s.opt.Tasks[t].Path, name)
			}
		}
		act, err := s.loadCalib(t, name, g.Cols)
		if err != nil {
			return err
		}
		if scores[t], err = align.Importance(w, g, act); err != nil {
			return fmt.Errorf("pack: task %q: tensor %q: %w", s.opt.Tasks[t].Name, name, err)
		}
		if energy[t], err = align.Energy(w, nil, g, nil); err != nil {
			return err
		}
		if act != nil {
			if wEnergy[t], err = align.Energy(w, nil, g, act); err != nil {
				return err
			}
		}
		if base != nil {
			if diff[t], err = align.Energy(w, base, g, nil); err != nil {
				return err
			}
			if act != nil {
				if wDiff[t], err = align.Energy(w, base, g, act); err != nil {
					return err
				}
			}
		}
		hashes[t] = make([][16]byte, n)
		for b := 0; b < n; b++ {
			extract(w, g, b, blk)
			hashes[t][b] = hashBlock(blk, &s.hbuf)
		}
		if s.opt.MasksFromInput {
			given[t] = make([]bool, n)
			for b, e := range energy[t] {
				given[t][b] = e > 0
			}
			if align.Count(given[t]) == 0 {
				return fmt.Errorf("pack: task %q (%s): tensor %q is all zeros, --masks from-input would keep no block", s.opt.Tasks[t].Name, s.opt.Tasks[t].Path, name)
			}
		}
		s.files[t].Release(name)
	}
	var masks, indep [][]bool
	ratio := make([]float64, T)
	if s.opt.MasksFromInput {
		masks, indep = given, given
		for t := range ratio {
			ratio[t] = 1
			r := align.Retained(scores[t], given[t])
			s.q[t].Retained += r
			s.q[t].IndepRetained += r
		}
	} else {
		k, err := align.KeepCount(n, s.opt.Density)
		if err != nil {
			return fmt.Errorf("pack: tensor %q: %w", name, err)
		}
		res, err := align.AlignTensor(scores, k, align.Options{Eps: s.opt.Eps, Method: s.opt.Method, Weights: s.opt.Weights})
		if err != nil {
			return fmt.Errorf("pack: tensor %q: %w", name, err)
		}
		masks, indep = res.Masks, res.Independent
		for t := range ratio {
			ratio[t] = res.Ratio(t)
			s.q[t].Retained += res.Retained[t]
			s.q[t].IndepRetained += res.IndepRetained[t]
		}
	}
	s.share.Add(masks)
	s.indepShare.Add(indep)
	var rank []int // blocks in shared base-preference order
	if baseHash != nil && !s.opt.OwnBaseChoice {
		norm := energy // weight bound: differences relative to kept energy
		if s.opt.VersionBound == align.BoundDelta {
			norm = diff // delta bound: relative to the kept delta energy
		}
		rank = baseRanking(masks, norm, diff)
	}
	// Per task and curve point, the kept blocks and which deploy the base.
	curveKept := make([][]int, T)
	curveUse := make([][][]bool, T)
	for t := 0; t < T; t++ {
		q := &s.q[t]
		q.MinTensorRatio = math.Min(q.MinTensorRatio, ratio[t])
		m := masks[t]
		var total, pruned, wTotal, wPruned float64
		var kept []int
		for b := 0; b < n; b++ {
			total += energy[t][b]
			if wEnergy[t] != nil {
				wTotal += wEnergy[t][b]
			}
			if m[b] {
				kept = append(kept, b)
			} else {
				pruned += energy[t][b]
				if wEnergy[t] != nil {
					wPruned += wEnergy[t][b]
				}
			}
		}
		useBase := make([]bool, len(kept))
		err2 := pruned
		if baseHash != nil {
			kd := make([]float64, len(kept))
			for i, b := range kept {
				kd[i] = diff[t][b]
			}
			var prefer []int
			if rank != nil {
				at := make(map[int]int, len(kept))
				for i, b := range kept {
					at[b] = i
				}
				for _, b := range rank {
					if i, ok := at[b]; ok {
						prefer = append(prefer, i)
					}
				}
			}
			ch, err := align.ChooseBaseBound(s.opt.VersionBound, kd, prefer, pruned, total, s.opt.Eps)
			if err != nil {
				return fmt.Errorf("pack: task %q: tensor %q: %w", s.opt.Tasks[t].Name, name, err)
			}
			useBase = ch.UseBase
			err2 = ch.Err2
			q.deltaTotal += ch.DeltaTotal
			q.deltaSubst += ch.DeltaSubst
			chs, err := align.AddCurve(s.curves[t], s.opt.VersionBound, kd, prefer, pruned, total)
			if err != nil {
				return fmt.Errorf("pack: task %q: tensor %q: base-sharing curve: %w", s.opt.Tasks[t].Name, name, err)
			}
			curveKept[t] = kept
			for _, c := range chs {
				curveUse[t] = append(curveUse[t], c.UseBase)
			}
		}
		q.Kept += len(kept)
		q.Blocks += n
		q.prunedErr2 += pruned
		q.err2 += err2
		q.total2 += total
		if wEnergy[t] != nil {
			num := wPruned
			for i, b := range kept {
				if useBase[i] {
					num += wDiff[t][b]
				}
			}
			r := 0.0
			if wTotal > 0 {
				r = num / wTotal
			}
			s.out[t] = append(s.out[t], r)
		}
		tt := taskTensor{name: name, entry: entryOf(*infos[t], KindBlocked, layer)}
		tt.indptr = make([]int32, g.BlockRows()+1)
		bc := g.BlockCols()
		for i, b := range kept {
			var v uint32
			if useBase[i] {
				v = s.version(baseHash[b], t, source{file: T, tensor: name, block: b}, name)
				q.FromBase++
			} else {
				v = s.version(hashes[t][b], t, source{file: t, tensor: name, block: b}, name)
			}
			s.refs[v].Layer = min(s.refs[v].Layer, layer)
			tt.indptr[b/bc+1]++
			tt.indices = append(tt.indices, int32(b%bc))
			tt.versions = append(tt.versions, v)
		}
		for i := 1; i < len(tt.indptr); i++ {
			tt.indptr[i] += tt.indptr[i-1]
		}
		s.tensors[t] = append(s.tensors[t], tt)
		if s.res.Masks != nil {
			s.res.Masks[t][name] = m
		}
		q.Tensors = append(q.Tensors, tt.entry)
	}
	if baseHash != nil {
		s.addCurveVersions(curveKept, curveUse, hashes, baseHash)
	}
	return nil
}

// addCurveVersions counts, for each point of the base-sharing curve, the
// tensor's block versions each task would use: private ones, and for every
// ordered task pair the versions the target has and the source lacks.
func (s *state) addCurveVersions(kept [][]int, use [][][]bool, hashes [][][16]byte, baseHash [][16]byte) {
	T := len(kept)
	for e := range s.curveDiff {
		users := map[[16]byte]uint64{}
		for t := 0; t < T; t++ {
			for i, b := range kept[t] {
				h := hashes[t][b]
				if use[t][e][i] {
					h = baseHash[b]
				}
				users[h] |= 1 << uint(t)
			}
		}
		for _, m := range users {
			if bits64(m) == 1 {
				for t := 0; t < T; t++ {
					if m&(1<<uint(t)) != 0 {
						s.curvePriv[t][e]++
					}
				}
			}
			for to := 0; to < T; to++ {
				if m&(1<<uint(to)) == 0 {
					continue
				}
				for from := 0; from < T; from++ {
					if m&(1<<uint(from)) == 0 {
						s.curveDiff[e][from][to]++
					}
				}
			}
		}
	}
}

// baseRanking orders blocks by the mean over the tasks that keep them of
// the task's difference from the base relative to the task's kept norm
// energy (sum over kept blocks of norm: the weights' energy for the weight
// bound, the delta energy for the delta bound), blocks kept by more tasks
// first among equals.
func baseRanking(masks [][]bool, energy, diff [][]float64) []int {
	n := len(masks[0])
	score := make([]float64, n)
	count := make([]int, n)
	for t, m := range masks {
		var kept float64
		for b, k := range m {
			if k {
				kept += energy[t][b]
			}
		}
		if kept <= 0 {
			kept = 1
		}
		for b, k := range m {
			if k {
				score[b] += diff[t][b] / kept
				count[b]++
			}
		}
	}
	var rank []int
	for b := range score {
		if count[b] > 0 {
			score[b] /= float64(count[b])
			rank = append(rank, b)
		}
	}
	sort.SliceStable(rank, func(i, j int) bool {
		a, b := rank[i], rank[j]
		if score[a] != score[b] {
			return score[a] < score[b]
		}
		return count[a] > count[b]
	})
	return rank
}

// private stores a 2-D weight of one task whole, as blocks (every block
// that holds a non-zero value).
func (s *state) private(t int, info safetensors.TensorInfo, layer int) error {
	name := info.Name
	w, _, err := s.loadTask(t, name)
	if err != nil {
		return err
	}
	g := align.Grid{Rows: info.Shape[0], Cols: info.Shape[1], R: s.opt.R, C: s.opt.C}
	tt := taskTensor{name: name, entry: entryOf(info, KindPrivate, layer)}
	tt.indptr = make([]int32, g.BlockRows()+1)
	bc := g.BlockCols()
	blk := make([]float32, g.R*g.C)
	for b := 0; b < g.NumBlocks(); b++ {
		extract(w, g, b, blk)
		nz := false
		for _, x := range blk {
			if x != 0 {
				nz = true
				break
			}
		}
		if !nz {
			continue
		}
		v := s.version(hashBlock(blk, &s.hbuf), t, source{file: t, tensor: name, block: b}, name)
		s.refs[v].Layer = min(s.refs[v].Layer, layer)
		tt.indptr[b/bc+1]++
		tt.indices = append(tt.indices, int32(b%bc))
		tt.versions = append(tt.versions, v)
	}
	for i := 1; i < len(tt.indptr); i++ {
		tt.indptr[i] += tt.indptr[i-1]
	}
	s.tensors[t] = append(s.tensors[t], tt)
	s.q[t].Tensors = append(s.q[t].Tensors, tt.entry)
	return nil
}

// denseTensor stores a tensor whole (deduplicated by the store).
func (s *state) denseTensor(t int, info safetensors.TensorInfo, layer int) error {
	var v []float32
	var err error
	if info.DType.IsFloat() {
		v, _, err = s.files[t].Float32(info.Name)
	} else {
		var iv []int64
		iv, _, err = s.files[t].Int64(info.Name)
		if err == nil {
			v = make([]float32, len(iv))
			for i, x := range iv {
				if x > 1<<24 || x < -(1<<24) {
					return fmt.Errorf("pack: task %q (%s): tensor %q: %s element %d = %d is not exactly representable as float32", s.opt.Tasks[t].Name, s.opt.Tasks[t].Path, info.Name, info.DType, i, x)
				}
				v[i] = float32(x)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("pack: task %q: %w", s.opt.Tasks[t].Name, err)
	}
	s.q[t].Tensors = append(s.q[t].Tensors, entryOf(info, KindDense, layer))
	if s.store == nil {
		return nil
	}
	id, err := s.store.AddDense(v)
	if err != nil {
		return fmt.Errorf("pack: task %q: tensor %q: %w", s.opt.Tasks[t].Name, info.Name, err)
	}
	shape := append([]int(nil), info.Shape...)
	if len(shape) == 0 {
		shape = []int{1}
	}
	s.dense[t] = append(s.dense[t], diffload.DenseSpec{Name: info.Name, Shape: shape, Blob: id})
	if !s.seenBlob(id) {
		s.denseBytes += int64(4 * len(v))
	}
	return nil
}

func (s *state) seenBlob(id uint32) bool {
	if s.blobs == nil {
		s.blobs = map[uint32]bool{}
	}
	if s.blobs[id] {
		return true
	}
	s.blobs[id] = true
	return false
}

// writeVersions writes every version in layout order and renumbers the
// tasks' tensors to store ids.
func (s *state) writeVersions(order []int) error {
	T := len(s.opt.Tasks)
	R, C := s.opt.R, s.opt.C
	blk := make([]float32, R*C)
	var cur []float32
	curFile, curName := -1, ""
	var g align.Grid
	for p, v := range order {
		if p%4096 == 0 {
			s.progress("write", p, len(order))
		}
		src := s.srcs[v]
		if src.file != curFile || src.tensor != curName {
			if curFile >= 0 {
				s.files[curFile].Release(curName)
			}
			w, info, err := s.files[src.file].Float32Into(src.tensor, s.taskBuf)
			if err != nil {
				return fmt.Errorf("pack: write block versions: %w", err)
			}
			if info.DType != safetensors.F32 && cap(w) > cap(s.taskBuf) {
				s.taskBuf = w
			}
			cur, curFile, curName = w, src.file, src.tensor
			g = align.Grid{Rows: info.Shape[0], Cols: info.Shape[1], R: R, C: C}
		}
		extract(cur, g, src.block, blk)
		id, err := s.store.AddVersion(blk)
		if err != nil {
			return fmt.Errorf("pack: write block version of tensor %q block %d: %w", src.tensor, src.block, err)
		}
		if id != uint32(p) {
			return fmt.Errorf("pack: store gave block version of tensor %q block %d id %d, layout position %d (content hash collision?)", src.tensor, src.block, id, p)
		}
	}
	s.progress("write", len(order), len(order))
	pos := make([]uint32, len(order))
	for p, v := range order {
		pos[v] = uint32(p)
	}
	for t := 0; t < T; t++ {
		for i := range s.tensors[t] {
			for k, v := range s.tensors[t][i].versions {
				s.tensors[t][i].versions[k] = pos[v]
			}
		}
	}
	return nil
}

// report assembles the Report; pos maps version numbers to store positions.
func (s *state) report(pos []uint32) *Report {
	T := len(s.opt.Tasks)
	slot := int64((s.opt.R*s.opt.C*4 + s.opt.Alignment - 1) / s.opt.Alignment * s.opt.Alignment)
	rep := &Report{R: s.opt.R, C: s.opt.C, Density: s.opt.Density, Eps: s.opt.Eps, Method: string(s.opt.Method),
		MasksFromInput: s.opt.MasksFromInput, Share: s.share.Share(), IndepShare: s.indepShare.Share(),
		Versions: len(s.refs), SlotBytes: slot, VersionBytes: int64(len(s.refs)) * slot, DenseBytes: s.denseBytes}
	if s.opt.MasksFromInput {
		rep.Method = "from-input"
	}
	if s.base != nil {
		rep.Base = filepath.Base(s.opt.Base)
		rep.VersionBound = string(s.opt.VersionBound)
	}
	positions := make([][]uint32, T)
	for t := 0; t < T; t++ {
		rep.Tasks = append(rep.Tasks, s.opt.Tasks[t].Name)
		if s.calib[t] != nil {
			rep.Calibrated = append(rep.Calibrated, s.opt.Tasks[t].Name)
		}
		q := &s.q[t]
		seen := map[uint32]bool{}
		for _, tt := range s.tensors[t] {
			for _, v := range tt.versions {
				// versions are already store ids when a store was written
				id := v
				if s.store == nil {
					id = pos[v]
				}
				if seen[id] {
					continue
				}
				seen[id] = true
				positions[t] = append(positions[t], id)
			}
		}
		q.Versions = len(seen)
		for id := range seen {
			v := s.versionAt(id, pos)
			if bits64(s.refs[v].Tasks) > 1 {
				q.Shared++
			} else {
				q.Private++
			}
		}
		q.Bytes = int64(q.Versions) * slot
		if q.Blocks > 0 {
			q.Density = float64(q.Kept) / float64(q.Blocks)
		}
		if q.IndepRetained > 0 {
			q.RetainedRatio = q.Retained / q.IndepRetained
		} else {
			q.RetainedRatio = 1
		}
		if q.total2 > 0 {
			q.RelWeightErr = math.Sqrt(q.err2 / q.total2)
			q.PrunedRelErr = math.Sqrt(q.prunedErr2 / q.total2)
		}
		if len(s.out[t]) > 0 {
			var sum, mx float64
			for _, r := range s.out[t] {
				sum += r
				mx = math.Max(mx, r)
			}
			mean := sum / float64(len(s.out[t]))
			q.RelOutputErr, q.MaxRelOutputErr = &mean, &mx
		}
		if s.base != nil {
			r := 1.0
			if q.deltaTotal > 0 {
				r = math.Max(0, 1-q.deltaSubst/q.deltaTotal)
			}
			q.DeltaRetained = &r
			for e := range s.curves[t] {
				s.curves[t][e].Private = s.curvePriv[t][e]
				if T > 1 {
					var sum int64
					for from := 0; from < T; from++ {
						if from != t {
							sum += s.curveDiff[e][from][t]
						}
					}
					s.curves[t][e].SwitchBytes = float64(sum) * float64(slot) / float64(T-1)
				}
			}
		}
		q.Curve = s.curves[t]
		rep.Quality = append(rep.Quality, *q)
	}
	rep.Diffs = align.DiffMatrix(positions, slot)
	return rep
}

func (s *state) versionAt(id uint32, pos []uint32) uint32 {
	if s.inv == nil {
		s.inv = make([]uint32, len(pos))
		for v, p := range pos {
			s.inv[p] = uint32(v)
		}
	}
	return s.inv[id]
}

func bits64(x uint64) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}
