/*
 * misuse.c - every kind of misuse of libdmsparse must return an error code
 * and a message, never crash: NULL pointers, bad options, missing and
 * corrupt files, a budget below the largest task, unknown tasks and
 * tensors, calls before a switch, released views, closed runtimes,
 * handles of the wrong kind, short buffers. It also checks that the last
 * error is per thread and that many threads can run layers on one views
 * handle while another thread releases it.
 *
 *   misuse STORE SCRATCH_DIR
 */
#include <dmsparse.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

/* expect checks that call returned want and that the message contains
 * every one of up to two fragments. */
static void expect_(const char *expr, int line, int got, int want, const char *frag1, const char *frag2) {
  const char *msg = dms_last_error();
  int ok = got == want;
  if (ok && want != DMS_OK && msg[0] == '\0') ok = 0;
  if (ok && frag1 && !strstr(msg, frag1)) ok = 0;
  if (ok && frag2 && !strstr(msg, frag2)) ok = 0;
  if (ok && want == DMS_OK && msg[0] != '\0') ok = 0;
  if (!ok) {
    fprintf(stderr, "FAIL line %d: %s returned %s, want %s; message \"%s\" (want \"%s\", \"%s\")\n", line, expr,
            dms_status_name(got), dms_status_name(want), msg, frag1 ? frag1 : "", frag2 ? frag2 : "");
    failures++;
  } else {
    printf("ok   %-28s %-70.70s\n", dms_status_name(got), expr);
  }
}
#define EXPECT(call, want) expect_(#call, __LINE__, (call), (want), NULL, NULL)
#define EXPECT_MSG(call, want, f1, f2) expect_(#call, __LINE__, (call), (want), (f1), (f2))

static const char *store;

struct worker {
  dms_views views;
  const char *tensor;
  int64_t rows, cols;
  int ok, bad_handle, other;
  char other_msg[512];
};

/* Runs the layer until the views are released under it. */
static void *run_layer(void *arg) {
  struct worker *w = arg;
  float *x = calloc((size_t)w->cols, sizeof(float));
  float *y = calloc((size_t)w->rows, sizeof(float));
  for (int i = 0; i < 2000; i++) {
    int rc = dms_views_linear(w->views, w->tensor, x, 1, w->cols, y, w->rows, NULL, 0, 0, 1);
    if (rc == DMS_OK) {
      w->ok++;
    } else if (rc == DMS_ERR_BAD_HANDLE) {
      w->bad_handle++;
      break;
    } else {
      w->other++;
      snprintf(w->other_msg, sizeof w->other_msg, "%s", dms_last_error());
      break;
    }
  }
  free(x);
  free(y);
  return NULL;
}

struct errthread {
  int rc;
  char msg[512];
};

/* Makes a failing call on its own thread and records its last error. */
static void *fail_on_thread(void *arg) {
  struct errthread *e = arg;
  int64_t n = 0;
  e->rc = dms_task_count(987654321, &n);
  snprintf(e->msg, sizeof e->msg, "%s", dms_last_error());
  return NULL;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc != 3) {
    fprintf(stderr, "usage: %s STORE SCRATCH_DIR\n", argv[0]);
    return 2;
  }
  store = argv[1];
  char path[4096];
  dms_options opt;
  memset(&opt, 0, sizeof opt);
  opt.budget_bytes = 4 << 20;
  dms_runtime rt = 0;

  /* Opening. */
  EXPECT_MSG(dms_open(NULL, &opt, &rt), DMS_ERR_INVALID_ARGUMENT, "path", "NULL");
  EXPECT_MSG(dms_open(store, NULL, &rt), DMS_ERR_INVALID_ARGUMENT, "options", "NULL");
  EXPECT_MSG(dms_open(store, &opt, NULL), DMS_ERR_INVALID_ARGUMENT, "out", "NULL");
  EXPECT_MSG(dms_open("", &opt, &rt), DMS_ERR_INVALID_ARGUMENT, "empty", NULL);
  snprintf(path, sizeof path, "%s/does-not-exist.dms", argv[2]);
  EXPECT_MSG(dms_open(path, &opt, &rt), DMS_ERR_IO, "does-not-exist.dms", NULL);
  snprintf(path, sizeof path, "%s/garbage.dms", argv[2]);
  FILE *f = fopen(path, "wb");
  for (int i = 0; i < 3 * 4096; i++) fputc(i * 7 & 0xff, f);
  fclose(f);
  EXPECT_MSG(dms_open(path, &opt, &rt), DMS_ERR_CORRUPT, "garbage.dms", NULL);
  dms_options small = opt;
  small.budget_bytes = 4096;
  EXPECT_MSG(dms_open(store, &small, &rt), DMS_ERR_BUDGET, "4096", NULL);
  small.budget_bytes = 0;
  EXPECT_MSG(dms_open(store, &small, &rt), DMS_ERR_INVALID_ARGUMENT, "budget", NULL);
  small = opt;
  small.direct_io = 7;
  EXPECT_MSG(dms_open(store, &small, &rt), DMS_ERR_INVALID_ARGUMENT, "direct_io", NULL);
  small = opt;
  small.reserved[1] = 1;
  EXPECT_MSG(dms_open(store, &small, &rt), DMS_ERR_INVALID_ARGUMENT, "reserved", NULL);
  EXPECT(dms_open(store, &opt, &rt), DMS_OK);

  /* Calls before any switch and bad arguments. */
  dms_views views = 0;
  EXPECT(dms_acquire(rt, &views), DMS_ERR_NO_TASK);
  EXPECT_MSG(dms_acquire(rt, NULL), DMS_ERR_INVALID_ARGUMENT, "NULL", NULL);
  EXPECT_MSG(dms_switch(rt, "no-such-task", NULL), DMS_ERR_NOT_FOUND, "no-such-task", NULL);
  EXPECT(dms_switch(rt, NULL, NULL), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_task_count(rt, NULL), DMS_ERR_INVALID_ARGUMENT);
  int64_t n = 0, need = 0;
  EXPECT(dms_task_count(rt, &n), DMS_OK);
  EXPECT_MSG(dms_task_name(rt, n, NULL, 0, &need), DMS_ERR_INVALID_ARGUMENT, "out of range", NULL);
  EXPECT_MSG(dms_task_name(rt, -1, NULL, 0, &need), DMS_ERR_INVALID_ARGUMENT, "out of range", NULL);
  char tiny[3];
  EXPECT(dms_task_name(rt, 0, tiny, sizeof tiny, &need), DMS_ERR_BUFFER_TOO_SMALL);
  if (need <= (int64_t)sizeof tiny || tiny[0] != '\0') {
    fprintf(stderr, "FAIL: short buffer: need %lld, buffer not emptied\n", (long long)need);
    failures++;
  }
  EXPECT(dms_task_name(rt, 0, NULL, 5, &need), DMS_ERR_INVALID_ARGUMENT);
  char task0[256], task1[256];
  EXPECT(dms_task_name(rt, 0, task0, sizeof task0, NULL), DMS_OK);
  EXPECT(dms_task_name(rt, 1, task1, sizeof task1, NULL), DMS_OK);
  dms_pending pend = 0;
  EXPECT(dms_begin_switch(rt, "nope", &pend), DMS_ERR_NOT_FOUND);
  EXPECT(dms_begin_switch(rt, task0, NULL), DMS_ERR_INVALID_ARGUMENT);
  dms_prefetch pf = 0;
  EXPECT(dms_prefetch_start(rt, "nope", &pf), DMS_ERR_NOT_FOUND);

  /* Zero, unknown and wrong-kind handles. */
  EXPECT_MSG(dms_switch(0, task0, NULL), DMS_ERR_BAD_HANDLE, "0", NULL);
  EXPECT_MSG(dms_switch(123456789, task0, NULL), DMS_ERR_BAD_HANDLE, "123456789", NULL);
  EXPECT(dms_switch(rt, task0, NULL), DMS_OK);
  EXPECT(dms_acquire(rt, &views), DMS_OK);
  EXPECT_MSG(dms_switch((dms_runtime)views, task0, NULL), DMS_ERR_BAD_HANDLE, "views handle", NULL);
  EXPECT_MSG(dms_views_release((dms_views)rt), DMS_ERR_BAD_HANDLE, "runtime handle", NULL);
  EXPECT(dms_pending_wait((dms_pending)views, NULL), DMS_ERR_BAD_HANDLE);
  EXPECT(dms_prefetch_cancel((dms_prefetch)rt), DMS_ERR_BAD_HANDLE);

  /* Tensors and layers. */
  dms_bsr_view v;
  char tname[256];
  EXPECT(dms_views_tensor_name(views, 0, tname, sizeof tname, NULL), DMS_OK);
  EXPECT(dms_views_tensor(views, tname, &v), DMS_OK);
  EXPECT_MSG(dms_views_tensor(views, "no.such.tensor", &v), DMS_ERR_NOT_FOUND, "no.such.tensor", task0);
  EXPECT(dms_views_tensor(views, NULL, &v), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_views_tensor(views, tname, NULL), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_views_tensor_name(views, 99, tname, sizeof tname, NULL), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_views_dense(views, "no.such.bias", NULL, 0, &need), DMS_ERR_NOT_FOUND);
  float small_buf[2];
  EXPECT(dms_views_dense(views, "layer0.bias", small_buf, 2, &need), DMS_ERR_BUFFER_TOO_SMALL);
  if (need != v.rows) {
    fprintf(stderr, "FAIL: dense length %lld, want %lld\n", (long long)need, (long long)v.rows);
    failures++;
  }
  float *x = calloc((size_t)(v.cols * 4), sizeof(float));
  float *y = calloc((size_t)(v.rows * 4), sizeof(float));
  EXPECT(dms_views_linear(views, tname, x, 1, v.cols, y, v.rows, NULL, 0, 0, 0), DMS_OK);
  EXPECT_MSG(dms_views_linear(views, tname, NULL, 1, v.cols, y, v.rows, NULL, 0, 0, 0), DMS_ERR_INVALID_ARGUMENT, "x", "NULL");
  EXPECT_MSG(dms_views_linear(views, tname, x, 1, v.cols, NULL, v.rows, NULL, 0, 0, 0), DMS_ERR_INVALID_ARGUMENT, "y", "NULL");
  EXPECT_MSG(dms_views_linear(views, tname, x, 2, v.cols, y, 2 * v.rows, NULL, 0, 0, 0), DMS_ERR_BUFFER_TOO_SMALL, "x", NULL);
  EXPECT_MSG(dms_views_linear(views, tname, x, 1, v.cols, y, v.rows - 1, NULL, 0, 0, 0), DMS_ERR_BUFFER_TOO_SMALL, "y", NULL);
  EXPECT_MSG(dms_views_linear(views, tname, x, 1, v.cols, y, v.rows, y, v.rows - 1, 0, 0), DMS_ERR_INVALID_ARGUMENT, "bias", NULL);
  EXPECT(dms_views_linear(views, tname, x, 0, v.cols, y, v.rows, NULL, 0, 0, 0), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_views_linear(views, tname, x, -3, v.cols, y, v.rows, NULL, 0, 0, 0), DMS_ERR_INVALID_ARGUMENT);
  /* n * cols would wrap to 0 in 64 bits: refused, no kernel runs. */
  EXPECT_MSG(dms_views_linear(views, tname, x, (int64_t)1 << 62, v.cols, y, v.rows, NULL, 0, 0, 0), DMS_ERR_INVALID_ARGUMENT, "n =", NULL);
  EXPECT_MSG(dms_views_mul(views, tname, x, (int64_t)1 << 62, v.cols, y, v.rows, 0, 0), DMS_ERR_INVALID_ARGUMENT, "n =", NULL);
  EXPECT_MSG(dms_views_linear(views, tname, x, 1, v.cols, y, v.rows, NULL, 0, 0x80, 0), DMS_ERR_INVALID_ARGUMENT, "flags", NULL);
  EXPECT(dms_views_linear(views, tname, x, 1, v.cols, y, v.rows, NULL, 0, 0, -1), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_views_linear(views, "nope", x, 1, v.cols, y, v.rows, NULL, 0, 0, 0), DMS_ERR_NOT_FOUND);
  EXPECT(dms_views_linear(views, NULL, x, 1, v.cols, y, v.rows, NULL, 0, 0, 0), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_views_mul(views, tname, NULL, 1, v.cols, y, v.rows, 0, 0), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_views_mul(views, tname, x, 1, v.cols, y, v.rows, 0, 0), DMS_OK);

  /* Released views: every call fails, a second release too. */
  EXPECT(dms_views_release(views), DMS_OK);
  EXPECT_MSG(dms_views_tensor(views, tname, &v), DMS_ERR_BAD_HANDLE, "unknown, closed or released", NULL);
  EXPECT(dms_views_linear(views, tname, x, 1, v.cols, y, v.rows, NULL, 0, 0, 0), DMS_ERR_BAD_HANDLE);
  EXPECT(dms_views_release(views), DMS_ERR_BAD_HANDLE);

  /* Pipelined switch canceled before it could finish, or finished. */
  EXPECT(dms_begin_switch(rt, task1, &pend), DMS_OK);
  EXPECT(dms_pending_wait_layer(pend, -1), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_pending_wait_tensor(pend, NULL), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_pending_cancel(pend), DMS_OK);
  int rc = dms_pending_wait(pend, NULL);
  if (rc != DMS_OK && rc != DMS_ERR_CANCELED) {
    fprintf(stderr, "FAIL: canceled switch returned %s: %s\n", dms_status_name(rc), dms_last_error());
    failures++;
  }
  EXPECT(dms_pending_views(pend, NULL), DMS_ERR_INVALID_ARGUMENT);
  EXPECT(dms_pending_free(pend), DMS_OK);
  EXPECT(dms_pending_free(pend), DMS_ERR_BAD_HANDLE);
  EXPECT(dms_pending_views(pend, &views), DMS_ERR_BAD_HANDLE);
  EXPECT(dms_acquire(rt, &views), DMS_OK);
  char cur[256];
  EXPECT(dms_views_task(views, cur, sizeof cur, NULL), DMS_OK);
  if (rc == DMS_ERR_CANCELED && strcmp(cur, task0) != 0) {
    fprintf(stderr, "FAIL: after a canceled switch the task is %s, want %s\n", cur, task0);
    failures++;
  }
  EXPECT(dms_views_release(views), DMS_OK);

  /* The last error belongs to the thread that made the call. */
  EXPECT(dms_task_count(rt, &n), DMS_OK);
  struct errthread et;
  pthread_t th;
  pthread_create(&th, NULL, fail_on_thread, &et);
  pthread_join(th, NULL);
  if (et.rc != DMS_ERR_BAD_HANDLE || !strstr(et.msg, "987654321") || dms_last_error()[0] != '\0') {
    fprintf(stderr, "FAIL: thread-local error: thread got %s \"%s\", main thread sees \"%s\"\n",
            dms_status_name(et.rc), et.msg, dms_last_error());
    failures++;
  } else {
    printf("ok   last error is per thread\n");
  }

  /* Layers on four threads while the main thread releases the views. */
  EXPECT(dms_switch(rt, task0, NULL), DMS_OK);
  for (int round = 0; round < 5; round++) {
    EXPECT(dms_acquire(rt, &views), DMS_OK);
    EXPECT(dms_views_tensor(views, tname, &v), DMS_OK);
    struct worker w[4];
    pthread_t tids[4];
    for (int i = 0; i < 4; i++) {
      memset(&w[i], 0, sizeof w[i]);
      w[i].views = views, w[i].tensor = tname, w[i].rows = v.rows, w[i].cols = v.cols;
      pthread_create(&tids[i], NULL, run_layer, &w[i]);
    }
    EXPECT(dms_views_release(views), DMS_OK);
    for (int i = 0; i < 4; i++) {
      pthread_join(tids[i], NULL);
      if (w[i].other) {
        fprintf(stderr, "FAIL: layer on a thread during release failed: %s\n", w[i].other_msg);
        failures++;
      }
    }
  }

  /* A tight budget: switching while holding views that pin the blocks
   * the new task needs times out instead of waiting forever, and the
   * previous task stays published. */
  {
    dms_options tight = opt;
    tight.budget_bytes = 45 * 4096; /* the largest task needs 41 slots */
    tight.switch_timeout_ms = 100;
    dms_runtime rt2;
    dms_views held, cur2;
    EXPECT(dms_open(store, &tight, &rt2), DMS_OK);
    EXPECT(dms_switch(rt2, task0, NULL), DMS_OK);
    EXPECT(dms_acquire(rt2, &held), DMS_OK);
    EXPECT_MSG(dms_switch(rt2, task1, NULL), DMS_ERR_TIMEOUT, task1, "held by readers");
    EXPECT(dms_acquire(rt2, &cur2), DMS_OK);
    char name2[256];
    EXPECT(dms_views_task(cur2, name2, sizeof name2, NULL), DMS_OK);
    if (strcmp(name2, task0) != 0) {
      fprintf(stderr, "FAIL: after a timed-out switch the task is %s, want %s\n", name2, task0);
      failures++;
    }
    EXPECT(dms_views_release(cur2), DMS_OK);
    EXPECT(dms_views_release(held), DMS_OK);
    EXPECT(dms_switch(rt2, task1, NULL), DMS_OK);
    EXPECT(dms_close(rt2), DMS_OK);
    tight.switch_timeout_ms = -5;
    EXPECT_MSG(dms_open(store, &tight, &rt2), DMS_ERR_INVALID_ARGUMENT, "timeout", NULL);
  }

  /* A closed runtime: every call fails, views from it are gone. */
  EXPECT(dms_acquire(rt, &views), DMS_OK);
  EXPECT(dms_prefetch_start(rt, task1, &pf), DMS_OK);
  EXPECT(dms_close(rt), DMS_OK);
  EXPECT(dms_close(rt), DMS_ERR_BAD_HANDLE);
  EXPECT(dms_switch(rt, task0, NULL), DMS_ERR_BAD_HANDLE);
  EXPECT(dms_task_count(rt, &n), DMS_ERR_BAD_HANDLE);
  EXPECT(dms_views_tensor(views, tname, &v), DMS_ERR_BAD_HANDLE);
  EXPECT(dms_prefetch_wait(pf), DMS_ERR_BAD_HANDLE);

  if (strcmp(dms_status_name(-999), "DMS_ERR_UNKNOWN") != 0 || strcmp(dms_status_name(DMS_ERR_BUDGET), "DMS_ERR_BUDGET") != 0) {
    fprintf(stderr, "FAIL: dms_status_name\n");
    failures++;
  }
  free(x);
  free(y);
  if (failures) {
    fprintf(stderr, "FAIL: %d misuse checks failed\n", failures);
    return 1;
  }
  printf("OK: every misuse returned its error code and a message\n");
  return 0;
}
