/* mproc side of the benchmarks.  bench/run.sh runs one subcommand per
 * measurement and reads the single number it prints (see bench_util.h).
 *
 *   mproc_bench start_join fork|spawn ITERS
 *   mproc_bench scale fork|spawn N ROUNDS
 *   mproc_bench pipe_small NMSGS | queue_small NMSGS | bulk NMSGS
 *   mproc_bench lock ITERS | pool NTASKS CHUNKSIZE
 *
 * Pipe, Queue, Lock and Pool do not exist in mproc yet: their subcommands
 * print "null" until they land; the Python and raw columns already run.
 * Whoever adds one of them fills in its function here, measuring exactly
 * what raw_bench.c and py_bench.py measure (same message sizes, the same
 * start and stop points of the clock). */
#include "bench_util.h" /* first: feature-test macros */

#include <stdint.h>
#include <string.h>

#include "mproc.h"

static int bench_empty(const mproc_args *args) {
  (void)args;
  return 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(bench_empty),
                                      MPROC_ENTRY_END};

static void die(const char *what, int rc) {
  fprintf(stderr, "mproc_bench: %s: %s (%s, os error %d)\n", what,
          mproc_strerror(rc), mproc_err_name(rc), mproc_os_error());
  exit(1);
}

static mproc_start_method parse_method(const char *s) {
  if (s && strcmp(s, "fork") == 0)
    return MPROC_START_FORK;
  if (s && strcmp(s, "spawn") == 0)
    return MPROC_START_SPAWN;
  fprintf(stderr, "mproc_bench: method must be fork or spawn\n");
  exit(2);
}

static mproc_process *start_one(const mproc_process_options *opts) {
  mproc_process *p;
  int rc = mproc_process_create(&p, "bench_empty", NULL, opts);
  if (rc < 0)
    die("create", rc);
  rc = mproc_process_start(p);
  if (rc < 0)
    die("start", rc);
  return p;
}

static void join_one(mproc_process *p) {
  int code = -1;
  int rc = mproc_process_join(p, MPROC_FOREVER);
  if (rc < 0)
    die("join", rc);
  /* A child that failed its bootstrap would still be "fast": insist on a
   * clean exit so a broken build cannot post a good number. */
  if (mproc_process_exitcode(p, &code) != 1 || code != 0) {
    fprintf(stderr, "mproc_bench: child exit code %d\n", code);
    exit(1);
  }
  rc = mproc_process_close(p);
  if (rc < 0)
    die("close", rc);
  mproc_process_free(p);
}

/* The whole user-visible life of a process object (create, start, join,
 * close, free) is timed, as Python's timing includes Process() too. */
static double run_start_join(const mproc_process_options *opts, long iters) {
  double batch[BENCH_BATCHES], t0;
  long per = iters / BENCH_BATCHES > 0 ? iters / BENCH_BATCHES : 1, i;
  int b;
  for (i = 0; i < 3; i++) /* warm the page cache and the allocator */
    join_one(start_one(opts));
  for (b = 0; b < BENCH_BATCHES; b++) {
    t0 = bench_now();
    for (i = 0; i < per; i++)
      join_one(start_one(opts));
    batch[b] = (bench_now() - t0) / (double)per * 1e6;
  }
  return bench_median(batch, BENCH_BATCHES);
}

/* One value per round (N started, then N joined); the median round. */
static double run_scale(const mproc_process_options *opts, long n,
                        long rounds) {
  mproc_process **ps = (mproc_process **)calloc((size_t)n, sizeof(*ps));
  double *per = (double *)calloc((size_t)rounds, sizeof(*per)), t0, med;
  long r, i;
  if (!ps || !per)
    die("calloc", MPROC_ENOMEM);
  join_one(start_one(opts));
  for (r = 0; r < rounds; r++) {
    t0 = bench_now();
    for (i = 0; i < n; i++)
      ps[i] = start_one(opts);
    for (i = 0; i < n; i++)
      join_one(ps[i]);
    per[r] = (bench_now() - t0) / (double)n * 1e6;
  }
  med = bench_median(per, (size_t)rounds);
  free(ps);
  free(per);
  return med;
}

int main(int argc, char **argv) {
  mproc_process_options opts;
  const char *cmd;
  int rc = mproc_main(argc, argv, entries);
  if (rc < 0)
    die("mproc_main", rc);
  if (argc < 2) {
    fprintf(stderr, "usage: %s start_join|scale|pipe_small|queue_small|"
                    "bulk|lock|pool ARGS...\n",
            argv[0]);
    return 2;
  }
  cmd = argv[1];
  memset(&opts, 0, sizeof opts);
  opts.daemon = MPROC_DAEMON_NO;
  if (strcmp(cmd, "start_join") == 0) {
    opts.start_method = parse_method(argc > 2 ? argv[2] : NULL);
    bench_print(run_start_join(&opts, bench_arg(argc, argv, 3, 1000)));
  } else if (strcmp(cmd, "scale") == 0) {
    opts.start_method = parse_method(argc > 2 ? argv[2] : NULL);
    bench_print(run_scale(&opts, bench_arg(argc, argv, 3, 1),
                          bench_arg(argc, argv, 4, 1)));
  } else if (strcmp(cmd, "pipe_small") == 0 ||
             strcmp(cmd, "queue_small") == 0 || strcmp(cmd, "bulk") == 0 ||
             strcmp(cmd, "lock") == 0 || strcmp(cmd, "pool") == 0) {
    bench_null(); /* not in mproc yet: see the comment at the top */
  } else {
    fprintf(stderr, "mproc_bench: unknown benchmark '%s'\n", cmd);
    return 2;
  }
  return 0;
}
