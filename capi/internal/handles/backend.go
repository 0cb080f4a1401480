package handles

import (
	"context"
	"time"

	"github.com/dmsparse/dmsparse/bsr"
)

// Options are the runtime options a C caller can set (dms_options). Zero
// fields take the runtime's defaults, except Budget, which is required.
type Options struct {
	// Budget is the pool size in bytes.
	Budget int64
	// CoalesceGap merges extents separated by fewer bytes than this.
	CoalesceGap int64
	// RequestSize caps the bytes of one read request.
	RequestSize int64
	// InFlight is the number of read requests kept in flight.
	InFlight int
	// DirectIO selects O_DIRECT: 0 auto (fall back when unsupported),
	// 1 force (fail when unsupported), 2 off.
	DirectIO int
	// SwitchTimeout bounds each switch, including the time it waits for
	// readers to release views whose blocks the budget needs; 0 means no
	// bound.
	SwitchTimeout time.Duration
}

// Stats describes one finished switch (dms_switch_stats).
type Stats struct {
	Task                                     string
	BytesRead                                int64
	Requests, Extents, Versions, Evicted     int
	Plan, Read, Verify, Publish, Total       time.Duration
	FirstLayerReady                          time.Duration
	Bandwidth                                float64
	DirectIO                                 bool
	FallbackReason                           string
	ReusedVersions, PrefetchedVersionsReused int
}

// Backend is the runtime the handle table drives: the diffload runtime in
// the library, a fake in tests. Its methods must be safe for concurrent use.
type Backend interface {
	// Tasks lists the store's task names.
	Tasks() []string
	// Switch makes task resident and publishes it, blocking.
	Switch(ctx context.Context, task string) (Stats, error)
	// Begin starts a pipelined switch.
	Begin(ctx context.Context, task string) (Pending, error)
	// Prefetch loads task's blocks into free pool slots in the background.
	Prefetch(ctx context.Context, task string) (Prefetching, error)
	// Acquire returns the published task's views, reference counted.
	Acquire() (Views, error)
	// Resident reports the pool's resident bytes and block versions.
	Resident() (bytes int64, versions int)
	// Close releases the pool and the store.
	Close() error
}

// Pending is a switch in progress.
type Pending interface {
	// WaitLayer blocks until every tensor of pipeline layer l is ready.
	WaitLayer(ctx context.Context, l int) error
	// WaitTensor blocks until the named tensor is ready.
	WaitTensor(ctx context.Context, name string) error
	// Wait blocks until the switch finished and returns its outcome.
	Wait() (Stats, error)
	// Acquire returns a reference to the views the switch is building;
	// a tensor may be used once it is ready. It keeps the blocks in place
	// until Release.
	Acquire() (Views, error)
}

// Prefetching is a prefetch in progress.
type Prefetching interface {
	// Cancel stops the prefetch; blocks already loaded stay resident.
	Cancel()
	// Wait blocks until the prefetch stopped and returns its outcome.
	Wait() error
}

// Views is one acquired task's weights.
type Views interface {
	// Task names the task.
	Task() string
	// Tensors lists the task's BSR tensor names in pipeline order.
	Tensors() []string
	// Tensor returns the paged BSR view of a tensor. Its Arena must live
	// outside the Go heap when the pointers are handed to C.
	Tensor(name string) (*bsr.View, error)
	// Dense returns a small dense tensor (bias, norm) and its shape.
	Dense(name string) ([]float32, []int, error)
	// Release drops the reference; the views must not be used afterwards.
	Release()
}

// LinearFunc is the kernel entry point: bsr.Linear's signature, served by
// native.Linear in the library.
type LinearFunc func(y, x []float32, n int, a *bsr.View, bias []float32, opt bsr.Options) error

// MulFunc is the Y = A*X entry point: bsr.Mul's signature, served by
// native.Mul in the library.
type MulFunc func(y []float32, a *bsr.View, x []float32, n int, opt bsr.Options) error

// OpenFunc opens a backend for a store path.
type OpenFunc func(path string, opt Options) (Backend, error)
