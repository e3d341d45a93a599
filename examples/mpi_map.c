/* The same map program, run locally or on the ranks of an MPI job.
 *
 * Python: mpi4py.futures' MPIPoolExecutor().map(square, range(n)), which
 * `mpiexec -n 4 python -m mpi4py.futures app.py` runs on ranks 1..3.
 *
 *   ./mpi_map                       a pool of 3 local worker processes
 *   mpiexec -n 4 ./mpi_map          rank 0 runs main; ranks 1..3 are the
 *                                   pool's workers (mproc built with
 *                                   -DMPROC_WITH_MPI=ON)
 *   ./mpi_map 200000 100            200000 items in chunks of 100
 *
 * mproc_main() does the MPI part: under mpiexec it initialises MPI, and on
 * ranks 1..N-1 it serves pools and never returns; on rank 0 it returns, and
 * main goes on as in any mproc program.  The only MPI-specific line here is
 * the choice of backend.  It prints the tasks per second, the bench row of
 * the README's "MPI ranks as workers" section.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mproc.h>

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

static const mproc_entry entries[] = {MPROC_ENTRY(square), MPROC_ENTRY_END};

#ifdef _WIN32
#include <windows.h>
static double now(void) { /* seconds, for a rate */
  LARGE_INTEGER f, c;
  QueryPerformanceFrequency(&f);
  QueryPerformanceCounter(&c);
  return (double)c.QuadPart / (double)f.QuadPart;
}
#else
static double now(void) { /* seconds, for a rate */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
#endif

/* map(square, range(n)) in chunks of cs: 0, or the failed task's status. */
static int map_squares(mproc_pool *pool, size_t n, size_t cs) {
  int64_t *values = (int64_t *)malloc(n * sizeof *values);
  mproc_bytes *inputs = (mproc_bytes *)malloc(n * sizeof *inputs);
  mproc_async_result *res = NULL;
  int64_t sum = 0, want = 0;
  double t0;
  size_t i;
  int rc = MPROC_ENOMEM;
  if (!values || !inputs)
    goto finish;
  for (i = 0; i < n; i++) {
    values[i] = (int64_t)i;
    inputs[i].data = &values[i];
    inputs[i].len = sizeof values[i];
    want += (int64_t)(i * i);
  }
  t0 = now();
  rc = mproc_pool_map(pool, "square", inputs, n, cs, &res);
  for (i = 0; rc == 0 && i < n; i++) {
    const void *data;
    int64_t v;
    if (mproc_async_result_item(res, i, &data, NULL) == 0) {
      memcpy(&v, data, sizeof v);
      sum += v;
    }
  }
  if (rc == 0)
    printf("map(square, range(%zu)) -> sum %lld (%s), %.0f tasks/s\n", n,
           (long long)sum, sum == want ? "right" : "WRONG",
           (double)n / (now() - t0));
finish:
  mproc_async_result_free(res);
  free(values);
  free(inputs);
  return rc == 0 && sum != want ? 1 : rc;
}

int main(int argc, char **argv) {
  mproc_pool *pool = NULL;
  mproc_pool_options opts;
  size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 10000;
  size_t cs = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 0;
  int rc;
  if ((rc = mproc_main(argc, argv, entries)) < 0)
    return 1;
  memset(&opts, 0, sizeof opts);
  /* Under mpiexec (an MPI build): the other ranks; otherwise 3 local
   * processes, as many workers as `mpiexec -n 4` gives. */
  if (mproc_pool_mpi_workers() > 0)
    opts.backend = MPROC_POOL_MPI;
  else
    opts.processes = 3;
  if ((rc = mproc_pool_create(&pool, &opts)) < 0) {
    fprintf(stderr, "error: %s\n", mproc_strerror(rc));
    return 1;
  }
  printf("%s pool of %d workers\n",
         opts.backend == MPROC_POOL_MPI ? "an MPI" : "a local",
         mproc_pool_processes(pool));
  rc = map_squares(pool, n, cs);
  if (rc != 0)
    fprintf(stderr, "error: %s\n", rc < 0 ? mproc_strerror(rc) : "a task");
  mproc_pool_close(pool);
  mproc_pool_join(pool, MPROC_FOREVER);
  mproc_pool_free(pool);
  return rc == 0 ? 0 : 1;
}
