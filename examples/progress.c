/* A progress bar over a running map, and a task timeout.
 *
 * Python: r = pool.map_async(count_primes, limits), then a loop that
 * draws a bar until r.ready() (Python has no count of finished tasks:
 * tqdm over imap is the usual stand-in).  Here
 * mproc_async_result_done_count() says how many tasks have finished, from
 * any thread, while the map runs.
 *
 * Then a task that hangs is given a timeout: it fails with
 * MPROC_ETIMEDOUT, its worker is killed and replaced, and the pool goes
 * on (Python's Pool has no per-task timeout: a hung task holds its worker
 * for good).
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#define NTASKS 48
#define BAR 40

/* How many primes are below the input (trial division: some real work). */
static int count_primes(const mproc_args *a) {
  const void *in;
  size_t n;
  int64_t limit, k, d, count = 0;
  if (mproc_task_input(a, &in, &n) < 0 || n != sizeof limit)
    return 1;
  memcpy(&limit, in, sizeof limit);
  for (k = 2; k < limit; k++) {
    for (d = 2; d * d <= k && k % d != 0; d++)
      ;
    count += d * d > k;
  }
  return mproc_task_result(a, &count, sizeof count) < 0 ? 2 : 0;
}

/* Never returns on its own (a task stuck on a lock, a network read...). */
static int hang(const mproc_args *a) {
  (void)a;
  while (mproc_sleep(1.0) == 0)
    ;
  return 1;
}

static const mproc_entry entries[] = {MPROC_ENTRY(count_primes),
                                      MPROC_ENTRY(hang), MPROC_ENTRY_END};

/* One frame of the bar, drawn over the last one ('\r'). */
static void draw(size_t done, size_t total) {
  char bar[BAR + 1];
  size_t i, fill = total ? done * BAR / total : BAR;
  for (i = 0; i < BAR; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[BAR] = 0;
  printf("\r[%s] %3u/%u", bar, (unsigned)done, (unsigned)total);
  fflush(stdout);
}

/* map_async over NTASKS limits, drawing the bar ten times a second until
 * the map is ready (the wait returns at once when it is).  1: right. */
static int progress_map(mproc_pool *pool) {
  static int64_t limits[NTASKS];
  mproc_bytes inputs[NTASKS];
  mproc_async_result *res = NULL;
  size_t i, done = 0, last = (size_t)-1;
  int64_t below_1000 = 0;
  int rc;
  for (i = 0; i < NTASKS; i++) {
    limits[i] = i == 0 ? 1000 : 20000 + (int64_t)i * 1000;
    inputs[i].data = &limits[i];
    inputs[i].len = sizeof limits[i];
  }
  /* chunksize 1: the count moves task by task. */
  rc =
      mproc_pool_map_async(pool, "count_primes", inputs, NTASKS, 1, NULL, &res);
  if (rc < 0)
    return 0;
  do {
    rc = mproc_async_result_wait(res, 0.1);
    if (mproc_async_result_done_count(res, &done) == 0 && done != last)
      draw(done, NTASKS);
    last = done;
  } while (rc == MPROC_ETIMEDOUT);
  printf("\n");
  rc = mproc_async_result_get(res, &below_1000, sizeof below_1000, NULL, 0);
  mproc_async_result_free(res);
  printf("primes below 1000: %lld (%s)\n", (long long)below_1000,
         rc == 0 && below_1000 == 168 && done == NTASKS ? "right" : "WRONG");
  return rc == 0 && below_1000 == 168 && done == NTASKS;
}

/* A hung task with a 0.5 s timeout, beside a task that finishes.  1: the
 * hung one failed with MPROC_ETIMEDOUT and the other got its result. */
static int timeout_demo(mproc_pool *pool) {
  mproc_async_options o;
  mproc_async_result *stuck = NULL, *fine = NULL;
  int64_t x = 0, limit = 1000, count = 0;
  int rc1, rc2;
  memset(&o, 0, sizeof o);
  o.timeout = 0.5;
  if (mproc_pool_apply_async(pool, "hang", &x, sizeof x, &o, &stuck) < 0 ||
      mproc_pool_apply_async(pool, "count_primes", &limit, sizeof limit, &o,
                             &fine) < 0) {
    mproc_async_result_free(stuck);
    return 0;
  }
  rc1 = mproc_async_result_get(stuck, NULL, 0, NULL, MPROC_FOREVER);
  rc2 = mproc_async_result_get(fine, &count, sizeof count, NULL, MPROC_FOREVER);
  printf("hung task: %s; the other: %lld primes (%s)\n", mproc_strerror(rc1),
         (long long)count,
         rc1 == MPROC_ETIMEDOUT && rc2 == 0 && count == 168 ? "right"
                                                            : "WRONG");
  mproc_async_result_free(stuck);
  mproc_async_result_free(fine);
  return rc1 == MPROC_ETIMEDOUT && rc2 == 0 && count == 168;
}

int main(int argc, char **argv) {
  mproc_pool *pool = NULL;
  mproc_pool_options opts;
  int rc, ok;
  if ((rc = mproc_main(argc, argv, entries)) < 0)
    return 1;
  memset(&opts, 0, sizeof opts);
  opts.processes = 2;
  if ((rc = mproc_pool_create(&pool, &opts)) < 0) {
    fprintf(stderr, "error: %s\n", mproc_strerror(rc));
    return 1;
  }
  ok = progress_map(pool);
  ok = timeout_demo(pool) && ok;
  /* The worker the timeout killed was replaced: the pool still serves. */
  ok = progress_map(pool) && ok;
  (void)mproc_pool_close(pool);
  (void)mproc_pool_join(pool, MPROC_FOREVER);
  mproc_pool_free(pool);
  return ok ? 0 : 1;
}
