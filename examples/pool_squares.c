/* A pool maps a function over inputs, and survives a worker that dies.
 *
 * Python: Pool(4).map(square, range(1000)).  Then one task kills its own
 * worker: that task fails with MPROC_EWORKER, the pool replaces the worker,
 * and the next map works as if nothing happened.
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <signal.h>
#endif

static int square(const mproc_args *a) {
  const void *in;
  size_t n;
  int64_t x;
  if (mproc_task_input(a, &in, &n) < 0 || n != sizeof x)
    return 1;
  memcpy(&x, in, sizeof x);
  x *= x;
  return mproc_task_result(a, &x, sizeof x) < 0 ? 2 : 0;
}

static int crash(const mproc_args *a) {
  (void)a;
#ifdef _WIN32
  TerminateProcess(GetCurrentProcess(), 9);
#else
  raise(SIGKILL);
#endif
  return 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(square), MPROC_ENTRY(crash),
                                      MPROC_ENTRY_END};

static int map_squares(mproc_pool *pool, const char *when) {
  static int64_t values[1000];
  mproc_bytes inputs[1000];
  mproc_async_result *res = NULL;
  int64_t sum = 0, want = 0;
  size_t i;
  int rc;
  for (i = 0; i < 1000; i++) {
    values[i] = (int64_t)i;
    inputs[i].data = &values[i];
    inputs[i].len = sizeof values[i];
    want += (int64_t)(i * i);
  }
  rc = mproc_pool_map(pool, "square", inputs, 1000, 0, &res);
  for (i = 0; rc == 0 && i < mproc_async_result_count(res); i++) {
    const void *data;
    size_t len;
    int64_t v;
    if (mproc_async_result_item(res, i, &data, &len) == 0 && len == sizeof v) {
      memcpy(&v, data, sizeof v);
      sum += v;
    }
  }
  mproc_async_result_free(res);
  printf("%s: map(square, range(1000)) -> sum %lld (%s)\n", when,
         (long long)sum, rc == 0 && sum == want ? "right" : "WRONG");
  return rc == 0 && sum == want;
}

int main(int argc, char **argv) {
  mproc_pool *pool = NULL;
  mproc_pool_options opts = {0};
  int rc, ok;
  if ((rc = mproc_main(argc, argv, entries)) < 0)
    return 1;
  opts.processes = 4; /* Pool(4) */
  if ((rc = mproc_pool_create(&pool, &opts)) < 0) {
    fprintf(stderr, "error: %s\n", mproc_strerror(rc));
    return 1;
  }
  ok = map_squares(pool, "before");
  rc = mproc_pool_apply(pool, "crash", NULL, 0, NULL, 0, NULL);
  printf("a task that kills its worker -> %s (%s)\n", mproc_err_name(rc),
         mproc_strerror(rc));
  ok &= rc == MPROC_EWORKER;
  ok &= map_squares(pool, "after ");
  mproc_pool_close(pool);
  ok &= mproc_pool_join(pool, 60) == 0;
  mproc_pool_free(pool);
  printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
