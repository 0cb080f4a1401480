/*
 * dmsparse.h - C ABI of libdmsparse, the DM-Sparse multi-task runtime.
 *
 * libdmsparse loads the task variants of one model from a block store (a
 * file made by `dmbench pack`), keeps the block versions of the current
 * task resident in a pool with a byte budget, and switches tasks by reading
 * only the blocks the new task needs that are not resident. Weights are
 * handed to C as block-sparse-row (BSR) views whose blocks live in the pool;
 * linear layers run on them with the library's SIMD kernels.
 *
 * Conventions
 * - Every call returns an int status: DMS_OK (0) or a negative DMS_ERR_*
 *   code naming the kind of error. Nothing aborts or throws: bad handles,
 *   NULL pointers and short buffers are reported as codes.
 * - dms_last_error() returns the message of the most recent call made on the
 *   calling thread ("" after a success). The text names the store, task,
 *   tensor or argument and what was expected.
 * - Handles (dms_runtime, dms_views, dms_pending, dms_prefetch) are 64-bit
 *   integers; 0 is never valid. Handles are never reused, so a closed or
 *   released handle yields DMS_ERR_BAD_HANDLE for the life of the process.
 * - Out-parameters are written only on success unless a call says
 *   otherwise.
 * - Lengths of float buffers count floats, not bytes.
 * - Thread safety: every call may be made from any thread. Each function
 *   documents how calls on the same handle may overlap; different handles
 *   are independent.
 *
 * Linking: pkg-config --cflags --libs dmsparse   (-ldmsparse)
 * The library is a Go c-shared library: it starts the Go runtime in the
 * process on load. Load it once per process; do not fork() after calling
 * into it unless you exec() right away.
 */
#ifndef DMSPARSE_H
#define DMSPARSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version of this header; dms_abi_version() returns the library's. */
#define DMS_ABI_VERSION 1

/* Status codes. */
#define DMS_OK 0
/* NULL pointer, empty name, negative length, option out of range. */
#define DMS_ERR_INVALID_ARGUMENT (-1)
/* Handle is 0, unknown, closed, released, freed, or of another kind. */
#define DMS_ERR_BAD_HANDLE (-2)
/* The named task or tensor does not exist. */
#define DMS_ERR_NOT_FOUND (-3)
/* The store could not be opened or read. */
#define DMS_ERR_IO (-4)
/* The store failed validation or a block failed its checksum. */
#define DMS_ERR_CORRUPT (-5)
/* The pool budget cannot hold what was asked. */
#define DMS_ERR_BUDGET (-6)
/* Canceled by dms_pending_cancel, dms_prefetch_cancel or dms_close. */
#define DMS_ERR_CANCELED (-7)
/* A caller buffer is too short; the needed size is reported if possible. */
#define DMS_ERR_BUFFER_TOO_SMALL (-8)
/* No task is published yet (switch first). */
#define DMS_ERR_NO_TASK (-9)
/* A bug inside the library; the message says what happened. */
#define DMS_ERR_INTERNAL (-10)
/* A switch exceeded dms_options.switch_timeout_ms (typically: views the
 * caller holds pin the blocks the budget needs; release them first). */
#define DMS_ERR_TIMEOUT (-11)

/* Flags of dms_views_linear and dms_views_mul. */
#define DMS_ACCUMULATE 1u /* add the product to y instead of overwriting it */

/* O_DIRECT modes of dms_options.direct_io. */
#define DMS_DIRECT_AUTO 0  /* O_DIRECT, buffered reads where refused (tmpfs) */
#define DMS_DIRECT_FORCE 1 /* fail dms_open where O_DIRECT is refused */
#define DMS_DIRECT_OFF 2   /* buffered reads */

typedef uint64_t dms_runtime;  /* an open store with its pool */
typedef uint64_t dms_views;    /* an acquired task's weights */
typedef uint64_t dms_pending;  /* a pipelined switch in progress */
typedef uint64_t dms_prefetch; /* a background prefetch */

/* Options of dms_open. Zero every field (memset or = {0}) and set budget;
 * other zero fields select the defaults.
 * switch_timeout_ms matters when the budget is tight: a switch that needs
 * the slots of blocks that acquired views still hold waits for their
 * release. A thread that switches while holding views would wait forever;
 * with a timeout the switch fails with DMS_ERR_TIMEOUT instead and the
 * previous task stays published. */
typedef struct dms_options {
  int64_t budget_bytes;  /* pool size; required; must hold the largest task */
  int64_t coalesce_gap;  /* bridge gaps up to this many bytes (0 = 64 KiB) */
  int64_t request_size;  /* largest read request (0 = 1 MiB) */
  int32_t in_flight;     /* read requests in flight (0 = 8) */
  int32_t direct_io;     /* DMS_DIRECT_* */
  int64_t switch_timeout_ms; /* bound on one switch (0 = none), see below */
  int64_t reserved[3];   /* must be zero */
} dms_options;

/* Outcome of a switch. Durations are in nanoseconds. */
typedef struct dms_switch_stats {
  int64_t bytes_read;   /* bytes read, including coalesced gaps */
  int64_t versions;     /* block versions read (the diff set) */
  int64_t reused;       /* target versions already resident */
  int64_t evicted;      /* versions evicted to make room */
  int64_t requests;     /* read requests issued */
  int64_t extents;      /* runs the diff set was coalesced into */
  int64_t total_ns;     /* call to published views */
  int64_t read_ns;      /* wall time of the reads */
  int64_t first_layer_ready_ns; /* call to lowest layer verified */
  double bandwidth;     /* bytes_read / read time, bytes per second */
  int32_t direct_io;    /* 1 when the reads used O_DIRECT */
  int32_t reserved;
} dms_switch_stats;

/* A tensor's BSR view (scipy/torch layout). The weight W is rows x cols,
 * cut into r x c blocks; edge blocks are zero-padded. Block row i owns the
 * stored blocks k = indptr[i] .. indptr[i+1]-1; block k sits at block
 * column indices[k] and its r*c floats, row-major, start at blocks[k]
 * (equivalently arena + slots[k] * stride). Blocks of identical content may
 * share a slot. indices, slots and blocks are NULL when nnzb is 0.
 * Every pointer stays valid until dms_views_release (or
 * dms_close) of the views it came from; the memory is read-only. */
typedef struct dms_bsr_view {
  int64_t rows, cols;        /* true shape of W */
  int32_t r, c;              /* block shape */
  int64_t block_rows;        /* ceil(rows / r) */
  int64_t block_cols;        /* ceil(cols / c) */
  int64_t nnzb;              /* stored blocks */
  const int32_t *indptr;     /* block_rows + 1 entries */
  const int32_t *indices;    /* nnzb entries, sorted within a block row */
  const int32_t *slots;      /* nnzb entries */
  const float *arena;        /* pool base */
  int64_t arena_len;         /* floats in the arena */
  int64_t stride;            /* floats between slots, >= r * c */
  const float *const *blocks; /* nnzb block pointers into the arena */
} dms_bsr_view;

/* ---- Library ------------------------------------------------------- */

/* Returns DMS_ABI_VERSION of the built library. Thread-safe. */
int dms_abi_version(void);

/* Returns the library version string (static). Thread-safe. */
const char *dms_version(void);

/* Returns the message of the calling thread's most recent dmsparse call,
 * "" after a success. The pointer stays valid until the thread's next
 * dmsparse call. Thread-safe (thread-local). */
const char *dms_last_error(void);

/* Returns the constant name of a status code ("DMS_ERR_NOT_FOUND"), static
 * storage. Thread-safe. */
const char *dms_status_name(int status);

/* Copies the name of the kernel dms_views_linear and dms_views_mul use
 * ("avx512", "avx2", "neon", "scalar" or "go") into buf (see dms_task_name for
 * buf/needed). The best kernel of the CPU is chosen when the library loads;
 * the environment variable DMSPARSE_KERNEL=name, set before loading,
 * forces one. Thread-safe. */
int dms_kernel_name(char *buf, int64_t buf_len, int64_t *needed);

/* Copies the space-separated names of every kernel available on this CPU
 * (each a valid DMSPARSE_KERNEL value). Thread-safe. */
int dms_kernel_names(char *buf, int64_t buf_len, int64_t *needed);

/* ---- Runtime ------------------------------------------------------- */

/* Opens the store at path with a pool of opt->budget_bytes and writes the
 * runtime handle to *out. The store is validated (magic, CRCs, structure);
 * a budget below the largest task is DMS_ERR_BUDGET naming both sizes.
 * Thread-safe. */
int dms_open(const char *path, const dms_options *opt, dms_runtime *out);

/* Closes a runtime: cancels its pending switches and prefetches, releases
 * every views handle acquired from it (their pointers become invalid),
 * frees its pending and prefetch handles, unmaps the pool and closes the
 * store. Waits for calls on the runtime that are in progress on other
 * threads (and cancels a blocking dms_switch). The handle is invalid
 * afterwards, even when an error is returned. */
int dms_close(dms_runtime rt);

/* Writes the number of tasks in the store to *count. Thread-safe. */
int dms_task_count(dms_runtime rt, int64_t *count);

/* Copies the name of task i (0 <= i < count) with its NUL into buf of
 * buf_len bytes; *needed (may be NULL) receives the size the name needs,
 * also when DMS_ERR_BUFFER_TOO_SMALL is returned. buf may be NULL with
 * buf_len 0 to query the size. Thread-safe. */
int dms_task_name(dms_runtime rt, int64_t i, char *buf, int64_t buf_len, int64_t *needed);

/* Writes the pool's resident bytes and block versions. Either pointer may
 * be NULL. Thread-safe. */
int dms_resident(dms_runtime rt, int64_t *bytes, int64_t *versions);

/* Switches to task, blocking until every block of the task is resident and
 * verified and its views are published; stats may be NULL. Views acquired
 * before stay valid. On failure the previous task stays published.
 * Thread-safe: switches and prefetches of one runtime run one at a time. */
int dms_switch(dms_runtime rt, const char *task, dms_switch_stats *stats);

/* Starts a pipelined switch to task and writes a pending handle to *out:
 * blocks are read in layer order and each layer can be waited for
 * separately, so compute on layer 0 can start while later layers load.
 * Free the handle with dms_pending_free. Thread-safe. */
int dms_begin_switch(dms_runtime rt, const char *task, dms_pending *out);

/* Blocks until every tensor of pipeline layer `layer` of the pending
 * switch is resident and verified. Thread-safe; several threads may wait on
 * one pending handle. */
int dms_pending_wait_layer(dms_pending p, int64_t layer);

/* Blocks until the named tensor of the pending switch is ready.
 * Thread-safe. */
int dms_pending_wait_tensor(dms_pending p, const char *tensor);

/* Acquires the views of the task the pending switch is loading, before it
 * finished, and writes a views handle to *out. dms_views_tensor,
 * dms_views_linear and dms_views_mul on them first wait until that tensor's
 * blocks are verified, so compute on early layers overlaps the loading of
 * later ones. The views keep their blocks resident until dms_views_release,
 * also after the switch finished and across later switches. If the switch
 * fails, calls on the views return its error, and pointers obtained from
 * them must no longer be used. Once the switch failed, or finished and its
 * task was since switched away from, dms_pending_views itself fails (use
 * dms_acquire for the published task). Thread-safe. */
int dms_pending_views(dms_pending p, dms_views *out);

/* Blocks until the switch finished and its task is published (or it
 * failed); stats may be NULL. May be called again and returns the same
 * outcome. Thread-safe. */
int dms_pending_wait(dms_pending p, dms_switch_stats *stats);

/* Cancels the switch; waits then return DMS_ERR_CANCELED unless it had
 * already finished. The previous task stays published. Thread-safe. */
int dms_pending_cancel(dms_pending p);

/* Frees the pending handle. A switch still running carries on and
 * publishes its task. Do not free a handle another thread is waiting on
 * (that wait still returns, but later calls on the handle fail). */
int dms_pending_free(dms_pending p);

/* Starts loading task's blocks into free pool slots in the background
 * (never evicting the current task's blocks) and writes a prefetch handle
 * to *out; a later switch to the task reuses what arrived. Thread-safe. */
int dms_prefetch_start(dms_runtime rt, const char *task, dms_prefetch *out);

/* Stops the prefetch; blocks already loaded stay resident. Thread-safe. */
int dms_prefetch_cancel(dms_prefetch p);

/* Blocks until the prefetch stopped; DMS_ERR_CANCELED after a cancel.
 * Thread-safe. */
int dms_prefetch_wait(dms_prefetch p);

/* Frees the prefetch handle; a running prefetch carries on. */
int dms_prefetch_free(dms_prefetch p);

/* ---- Views ---------------------------------------------------------- */

/* Acquires the published task's weights and writes a views handle to *out.
 * The views, and their blocks in the pool, stay valid until
 * dms_views_release, across later switches. Thread-safe. */
int dms_acquire(dms_runtime rt, dms_views *out);

/* Copies the views' task name (see dms_task_name for buf/needed).
 * Thread-safe. */
int dms_views_task(dms_views v, char *buf, int64_t buf_len, int64_t *needed);

/* Writes the number of BSR tensors of the views' task. Thread-safe. */
int dms_views_tensor_count(dms_views v, int64_t *count);

/* Copies the name of tensor i in pipeline (layer) order. Thread-safe. */
int dms_views_tensor_name(dms_views v, int64_t i, char *buf, int64_t buf_len, int64_t *needed);

/* Describes the named tensor's BSR view in *out; the pointers stay valid
 * until the views are released. Repeated calls return the same pointers.
 * Thread-safe. */
int dms_views_tensor(dms_views v, const char *tensor, dms_bsr_view *out);

/* Copies a dense tensor of the task (bias, norm) into dst of dst_len
 * floats; *len (may be NULL) receives its length, also with
 * DMS_ERR_BUFFER_TOO_SMALL. dst may be NULL with dst_len 0 to query the
 * length. Thread-safe. */
int dms_views_dense(dms_views v, const char *name, float *dst, int64_t dst_len, int64_t *len);

/* Linear layer on the named tensor W (rows x cols):
 *   y = x * W^T + bias     (y += ... with DMS_ACCUMULATE)
 * n is 1 to 2^31-1 (DMS_ERR_INVALID_ARGUMENT otherwise).
 * x is row-major n x cols (x_len >= n*cols), y row-major n x rows
 * (y_len >= n*rows), bias NULL (bias_len 0) or rows floats. Buffers are the
 * caller's, 4-byte aligned, and must not overlap. threads: 0 = all cores,
 * 1 = the calling thread only, k = split over k threads. Runs the best SIMD
 * kernel of the CPU (AVX-512, AVX2+FMA, NEON, scalar C; DMSPARSE_KERNEL=name
 * forces one). Thread-safe: many threads may run layers on the same views
 * at once; a concurrent dms_views_release waits for them. */
int dms_views_linear(dms_views v, const char *tensor, const float *x, int64_t n, int64_t x_len,
                     float *y, int64_t y_len, const float *bias, int64_t bias_len,
                     uint32_t flags, int32_t threads);

/* Matrix product on the named tensor W (rows x cols): y = W * x (y += with
 * DMS_ACCUMULATE), x row-major cols x n, y row-major rows x n. Same rules as
 * dms_views_linear. Thread-safe. */
int dms_views_mul(dms_views v, const char *tensor, const float *x, int64_t n, int64_t x_len,
                  float *y, int64_t y_len, uint32_t flags, int32_t threads);

/* Releases the views: their pointers become invalid and the pool may evict
 * blocks no other holder needs. Waits for dms_views_linear/dms_views_mul
 * calls on the views running on other threads; later calls get
 * DMS_ERR_BAD_HANDLE. */
int dms_views_release(dms_views v);

#ifdef __cplusplus
}
#endif

#endif /* DMSPARSE_H */
