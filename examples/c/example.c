/*
 * example.c - use libdmsparse from C.
 *
 * Opens a store, lists its tasks, and switches between them: blocking
 * (dms_switch), pipelined (dms_begin_switch, computing on the switch's
 * views while later layers load), and after a prefetch. After every switch it acquires the task's views and,
 * for every tensor, runs the linear layer y = x W^T + b through the library
 * (dms_views_linear) and through its own naive loop over the exposed BSR view,
 * once through the per-block pointers and once through arena + slots +
 * stride, and checks they agree. It also checks dms_views_mul. Exits non-zero on
 * any error or mismatch.
 *
 *   example STORE [BUDGET_BYTES]
 *   example --kernels     (prints the kernels this CPU offers)
 */
#include <dmsparse.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                          \
  do {                                                                       \
    int rc_ = (call);                                                        \
    if (rc_ != DMS_OK) {                                                     \
      fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__,     \
              #call, dms_status_name(rc_), dms_last_error());                \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Uniform float in [-1, 1) from xorshift64*. */
static float frand(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  uint64_t r = rng_state * 0x2545f4914f6cdd1dull;
  return (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Naive y = x W^T + b over the BSR view. Double accumulation; with
 * use_blocks the block data comes from blocks[k], otherwise from
 * arena + slots[k] * stride. x is n x cols, y is n x rows, b may be NULL. */
static void naive_linear(const dms_bsr_view *v, const float *x, int64_t n, const float *b,
                         double *y, int use_blocks) {
  for (int64_t s = 0; s < n; s++)
    for (int64_t r = 0; r < v->rows; r++) y[s * v->rows + r] = b ? b[r] : 0.0;
  for (int64_t i = 0; i < v->block_rows; i++) {
    for (int32_t k = v->indptr[i]; k < v->indptr[i + 1]; k++) {
      int64_t j = v->indices[k];
      const float *blk = use_blocks ? v->blocks[k] : v->arena + (int64_t)v->slots[k] * v->stride;
      for (int32_t br = 0; br < v->r; br++) {
        int64_t row = i * v->r + br;
        if (row >= v->rows) break;
        for (int32_t bc = 0; bc < v->c; bc++) {
          int64_t col = j * v->c + bc;
          if (col >= v->cols) break;
          double w = blk[br * v->c + bc];
          for (int64_t s = 0; s < n; s++) y[s * v->rows + row] += w * x[s * v->cols + col];
        }
      }
    }
  }
}

/* Returns the number of values of got that differ from want beyond a
 * float32 rounding tolerance, printing the first. */
static int compare(const char *what, const float *got, const double *want, int64_t len) {
  int bad = 0;
  for (int64_t i = 0; i < len; i++) {
    double tol = 1e-4 * (1.0 + fabs(want[i]));
    if (!(fabs((double)got[i] - want[i]) <= tol)) {
      if (bad == 0)
        fprintf(stderr, "MISMATCH %s: [%lld] library %.7g, naive %.7g\n", what, (long long)i,
                (double)got[i], want[i]);
      bad++;
    }
  }
  return bad;
}

/* Runs every layer of the acquired task both ways; returns mismatches. */
static int check_views(dms_views views, int64_t n) {
  char task[256], name[256], bias_name[300];
  int64_t count = 0;
  int bad = 0;
  CHECK(dms_views_task(views, task, sizeof task, NULL));
  CHECK(dms_views_tensor_count(views, &count));
  for (int64_t t = 0; t < count; t++) {
    dms_bsr_view v;
    CHECK(dms_views_tensor_name(views, t, name, sizeof name, NULL));
    CHECK(dms_views_tensor(views, name, &v));

    /* The bias of layer L is "layerL.bias" in the example store. */
    float *bias = NULL;
    int64_t bias_len = 0;
    snprintf(bias_name, sizeof bias_name, "%.*s.bias", (int)(strlen(name) - strlen(".weight")), name);
    if (dms_views_dense(views, bias_name, NULL, 0, &bias_len) == DMS_OK) {
      bias = malloc(sizeof(float) * (size_t)bias_len);
      CHECK(dms_views_dense(views, bias_name, bias, bias_len, NULL));
    }

    int64_t xl = n * v.cols, yl = n * v.rows;
    float *x = malloc(sizeof(float) * (size_t)xl);
    float *xt = malloc(sizeof(float) * (size_t)xl);
    float *y = malloc(sizeof(float) * (size_t)yl);
    float *ym = malloc(sizeof(float) * (size_t)yl);
    double *ref = malloc(sizeof(double) * (size_t)yl);
    double *ref2 = malloc(sizeof(double) * (size_t)yl);
    for (int64_t i = 0; i < xl; i++) x[i] = frand();
    for (int64_t s = 0; s < n; s++)
      for (int64_t c = 0; c < v.cols; c++) xt[c * n + s] = x[s * v.cols + c];

    CHECK(dms_views_linear(views, name, x, n, xl, y, yl, bias, bias ? v.rows : 0, 0, 0));
    naive_linear(&v, x, n, bias, ref, 1);
    naive_linear(&v, x, n, bias, ref2, 0);
    char what[600];
    snprintf(what, sizeof what, "%s/%s linear vs blocks[]", task, name);
    bad += compare(what, y, ref, yl);
    snprintf(what, sizeof what, "%s/%s linear vs arena+slots", task, name);
    bad += compare(what, y, ref2, yl);

    /* y += x W^T + b on one thread doubles the result. */
    CHECK(dms_views_linear(views, name, x, n, xl, y, yl, bias, bias ? v.rows : 0, DMS_ACCUMULATE, 1));
    for (int64_t i = 0; i < yl; i++) ref[i] *= 2;
    snprintf(what, sizeof what, "%s/%s linear accumulate", task, name);
    bad += compare(what, y, ref, yl);

    /* dms_views_mul: W * X^T (rows x n), without bias. */
    CHECK(dms_views_mul(views, name, xt, n, xl, ym, yl, 0, 0));
    naive_linear(&v, x, n, NULL, ref, 1);
    double *reft = ref2;
    for (int64_t s = 0; s < n; s++)
      for (int64_t r = 0; r < v.rows; r++) reft[r * n + s] = ref[s * v.rows + r];
    snprintf(what, sizeof what, "%s/%s mul", task, name);
    bad += compare(what, ym, reft, yl);

    printf("  %-14s %4lldx%-4lld blocks %dx%d nnzb %3lld/%-3lld: linear and mul match the naive loop\n",
           name, (long long)v.rows, (long long)v.cols, v.r, v.c, (long long)v.nnzb,
           (long long)(v.block_rows * v.block_cols));
    free(x), free(xt), free(y), free(ym), free(ref), free(ref2), free(bias);
  }
  return bad;
}

static void print_stats(const char *how, const char *task, const dms_switch_stats *st) {
  printf("switch (%s) to %s: read %lld B in %lld requests (%lld versions, %lld reused, %lld evicted), "
         "total %.3f ms, first layer %.3f ms, O_DIRECT %s\n",
         how, task, (long long)st->bytes_read, (long long)st->requests, (long long)st->versions,
         (long long)st->reused, (long long)st->evicted, st->total_ns / 1e6,
         st->first_layer_ready_ns / 1e6, st->direct_io ? "yes" : "no");
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s STORE [BUDGET_BYTES] | --kernels\n", argv[0]);
    return 2;
  }
  char kernel[64], kernels[256];
  CHECK(dms_kernel_names(kernels, sizeof kernels, NULL));
  if (strcmp(argv[1], "--kernels") == 0) {
    printf("%s\n", kernels);
    return 0;
  }
  CHECK(dms_kernel_name(kernel, sizeof kernel, NULL));
  printf("%s (ABI %d, header %d), kernel %s of: %s\n", dms_version(), dms_abi_version(), DMS_ABI_VERSION,
         kernel, kernels);
  const char *want = getenv("DMSPARSE_KERNEL");
  if (want && *want && strcmp(want, kernel) != 0) {
    fprintf(stderr, "DMSPARSE_KERNEL=%s but the library uses %s\n", want, kernel);
    return 1;
  }
  if (dms_abi_version() != DMS_ABI_VERSION) {
    fprintf(stderr, "library ABI %d does not match header ABI %d\n", dms_abi_version(), DMS_ABI_VERSION);
    return 1;
  }

  dms_options opt;
  memset(&opt, 0, sizeof opt);
  opt.budget_bytes = argc == 3 ? strtoll(argv[2], NULL, 10) : 4 << 20;
  dms_runtime rt;
  CHECK(dms_open(argv[1], &opt, &rt));

  int64_t ntasks = 0;
  CHECK(dms_task_count(rt, &ntasks));
  if (ntasks < 2) {
    fprintf(stderr, "store %s has %lld tasks, the example needs at least 2\n", argv[1], (long long)ntasks);
    return 1;
  }
  char **tasks = calloc((size_t)ntasks, sizeof *tasks);
  for (int64_t i = 0; i < ntasks; i++) {
    int64_t need = 0;
    CHECK(dms_task_name(rt, i, NULL, 0, &need));
    tasks[i] = malloc((size_t)need);
    CHECK(dms_task_name(rt, i, tasks[i], need, NULL));
  }
  printf("store %s: %lld tasks\n", argv[1], (long long)ntasks);

  int bad = 0;
  /* Visit every task, then go back to the first: a round trip. */
  for (int64_t round = 0; round <= ntasks; round++) {
    const char *task = tasks[round % ntasks];
    dms_switch_stats st;
    if (round % 2 == 0) {
      CHECK(dms_switch(rt, task, &st));
      print_stats("blocking", task, &st);
    } else {
      /* Pipelined: run the layers on the views of the switch while it
       * loads; each layer's call waits only for that layer's blocks. */
      dms_pending p;
      dms_views pv;
      CHECK(dms_begin_switch(rt, task, &p));
      CHECK(dms_pending_views(p, &pv));
      CHECK(dms_pending_wait_layer(p, 0));
      printf("pipelined switch to %s: computing while it loads\n", task);
      bad += check_views(pv, 2);
      CHECK(dms_pending_wait(p, &st));
      CHECK(dms_pending_free(p));
      CHECK(dms_views_release(pv));
      print_stats("pipelined", task, &st);
    }
    dms_views views;
    CHECK(dms_acquire(rt, &views));
    bad += check_views(views, round % 2 ? 1 : 5);
    CHECK(dms_views_release(views));
  }

  /* Prefetch the second task while the first is current, then switch. */
  dms_prefetch pf;
  CHECK(dms_prefetch_start(rt, tasks[1], &pf));
  CHECK(dms_prefetch_wait(pf));
  CHECK(dms_prefetch_free(pf));
  dms_switch_stats st;
  CHECK(dms_switch(rt, tasks[1], &st));
  print_stats("after prefetch", tasks[1], &st);
  /* With the default budget every version fits, so the prefetch brought
   * all that was missing; a tight budget leaves less free room. */
  if (argc == 2 && st.versions != 0) {
    fprintf(stderr, "switch after a finished prefetch read %lld versions, want 0\n", (long long)st.versions);
    bad++;
  }

  int64_t bytes = 0, versions = 0;
  CHECK(dms_resident(rt, &bytes, &versions));
  printf("resident: %lld B in %lld block versions (budget %lld B)\n", (long long)bytes,
         (long long)versions, (long long)opt.budget_bytes);
  if (bytes > opt.budget_bytes) {
    fprintf(stderr, "resident %lld B exceeds the budget\n", (long long)bytes);
    bad++;
  }
  CHECK(dms_close(rt));
  for (int64_t i = 0; i < ntasks; i++) free(tasks[i]);
  free(tasks);
  if (bad) {
    fprintf(stderr, "FAIL: %d mismatches\n", bad);
    return 1;
  }
  printf("OK: library and naive loop agree on every task and layer\n");
  return 0;
}
