/* mproc side of the benchmarks.  bench/run.sh runs one subcommand per
 * measurement and reads the single number it prints (see bench_util.h).
 *
 *   mproc_bench start_join fork|spawn|forkserver ITERS
 *   mproc_bench scale fork|spawn|forkserver N ROUNDS
 *   mproc_bench live fork|spawn|forkserver NALIVE ITERS
 *   mproc_bench pipe_small NMSGS | queue_small NMSGS | bulk NMSGS
 *   mproc_bench lock ITERS | pool NTASKS CHUNKSIZE [WORKERS|mpi]
 *   mproc_bench lock_contend NPROCS ITERS | queue_mpmc NPAIRS NMSGS
 *   mproc_bench bulk_view NMSGS (bulk by put_reserve and get_borrow)
 *   mproc_bench bulk_shm NMSGS (bulk in a SharedMemory block, by slot number)
 *
 * BENCH_TOUCH_MIB=N in the environment: the parent first touches N MiB
 * (bench_util.h), for start costs against the parent's memory.
 *
 * Each measures exactly what raw_bench.c and py_bench.py measure (same
 * message sizes, the same start and stop points of the clock); a benchmark
 * of a feature mproc lacks prints "null". */
#include "bench_util.h" /* first: feature-test macros */

#include <stdint.h>
#include <string.h>
#include <unistd.h> /* pause */

#include "mproc.h"

static int bench_empty(const mproc_args *args) {
  (void)args;
  return 0;
}

static int bench_bulk_consumer(const mproc_args *args);
static int bench_shm_consumer(const mproc_args *args);
static int bench_queue_small_consumer(const mproc_args *args);
static int bench_pipe_reader(const mproc_args *args);
static int bench_square(const mproc_args *args);
static int bench_block(const mproc_args *args);
static int bench_lock_worker(const mproc_args *args);
static int bench_mpmc_producer(const mproc_args *args);
static int bench_mpmc_consumer(const mproc_args *args);

static const mproc_entry entries[] = {MPROC_ENTRY(bench_empty),
                                      MPROC_ENTRY(bench_bulk_consumer),
                                      MPROC_ENTRY(bench_shm_consumer),
                                      MPROC_ENTRY(bench_queue_small_consumer),
                                      MPROC_ENTRY(bench_pipe_reader),
                                      MPROC_ENTRY(bench_square),
                                      MPROC_ENTRY(bench_block),
                                      MPROC_ENTRY(bench_lock_worker),
                                      MPROC_ENTRY(bench_mpmc_producer),
                                      MPROC_ENTRY(bench_mpmc_consumer),
                                      MPROC_ENTRY_END};

static _Noreturn void die(const char *what, int rc) {
  fprintf(stderr, "mproc_bench: %s: %s (%s, os error %d)\n", what,
          mproc_strerror(rc), mproc_err_name(rc), mproc_os_error());
  exit(1);
}

static mproc_start_method parse_method(const char *s) {
  if (s && strcmp(s, "fork") == 0)
    return MPROC_START_FORK;
  if (s && strcmp(s, "spawn") == 0)
    return MPROC_START_SPAWN;
  if (s && strcmp(s, "forkserver") == 0)
    return MPROC_START_FORKSERVER;
  fprintf(stderr, "mproc_bench: method must be fork, spawn or forkserver\n");
  exit(2);
}

/* Creates and starts a child running `entry`, or ends the bench. */
static mproc_process *start_one(const char *entry, const mproc_args *args,
                                const mproc_process_options *opts) {
  mproc_process *p;
  int rc = mproc_process_create(&p, entry, args, opts);
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
    join_one(start_one("bench_empty", NULL, opts));
  for (b = 0; b < BENCH_BATCHES; b++) {
    t0 = bench_now();
    for (i = 0; i < per; i++)
      join_one(start_one("bench_empty", NULL, opts));
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
  join_one(start_one("bench_empty", NULL, opts));
  for (r = 0; r < rounds; r++) {
    t0 = bench_now();
    for (i = 0; i < n; i++)
      ps[i] = start_one("bench_empty", NULL, opts);
    for (i = 0; i < n; i++)
      join_one(ps[i]);
    per[r] = (bench_now() - t0) / (double)n * 1e6;
  }
  med = bench_median(per, (size_t)rounds);
  free(ps);
  free(per);
  return med;
}

/* ---- start_live -------------------------------------------------------------
 * start+join of one process while NALIVE others of the same method are
 * alive (started, blocked in pause()): a start whose bookkeeping or
 * inherited descriptors grow with the live children gets slower here.  The
 * blockers are daemonic, so a benchmark that dies cannot leave them behind,
 * and are terminated after the clock. */
static int bench_block(const mproc_args *args) {
  (void)args;
  for (;;)
    pause();
  return 0; /* not reached */
}

static double run_live(const mproc_process_options *opts, long nalive,
                       long iters) {
  mproc_process_options bo = *opts;
  mproc_process **ps = (mproc_process **)calloc((size_t)nalive, sizeof(*ps));
  double v;
  long i;
  int rc;
  if (!ps)
    die("calloc", MPROC_ENOMEM);
  bo.daemon = MPROC_DAEMON_YES;
  for (i = 0; i < nalive; i++) {
    if ((rc = mproc_process_create(&ps[i], "bench_block", NULL, &bo)) < 0 ||
        (rc = mproc_process_start(ps[i])) < 0)
      die("start blocker", rc);
  }
  v = run_start_join(opts, iters);
  for (i = 0; i < nalive; i++)
    if ((rc = mproc_process_terminate(ps[i])) < 0)
      die("terminate blocker", rc);
  for (i = 0; i < nalive; i++) {
    if ((rc = mproc_process_join(ps[i], MPROC_FOREVER)) < 0)
      die("join blocker", rc);
    mproc_process_close(ps[i]);
    mproc_process_free(ps[i]);
  }
  free(ps);
  return v;
}

/* ---- lock_contended / queue_mpmc ----------------------------------------------
 * Several processes working on one object at once.  The children are
 * started first and meet the parent at a barrier; each then reads the
 * clock, does its share, reads the clock again and reports both readings
 * (CLOCK_MONOTONIC is one clock for every process) on a queue.  The time is
 * from the first child's start to the last child's end: whoever the barrier
 * wakes first, start-up and exit stay outside it.  Every child's exit code
 * is checked.  The results are per operation of the whole system (that
 * time / all operations), so a flat line means the object scales and a
 * rising one is what contention costs.
 *
 * Every child gets the same arguments: the object, the barrier, its count,
 * the queue of clock readings. */
typedef struct {
  mproc_barrier *go;
  mproc_queue *times;
  mproc_args *args;
} group;

static void group_setup(group *g, void *obj, long nchildren, long each) {
  int rc;
  if ((rc = mproc_barrier_create(&g->go, (unsigned)nchildren + 1)) < 0 ||
      (rc = mproc_queue_create(&g->times, NULL)) < 0 ||
      (rc = mproc_args_create(&g->args)) < 0 ||
      (rc = mproc_args_add_object(g->args, NULL, obj)) < 0 ||
      (rc = mproc_args_add_object(g->args, NULL, g->go)) < 0 ||
      (rc = mproc_args_add_int(g->args, NULL, each)) < 0 ||
      (rc = mproc_args_add_object(g->args, NULL, g->times)) < 0)
    die("group setup", rc);
}

/* Starts `n` children running names[i], waits at the barrier with them,
 * joins them; returns the seconds between the earliest start and the latest
 * end the children reported, and frees the group. */
static double group_run(group *g, const char *const *names, long n) {
  mproc_process **ps = (mproc_process **)calloc((size_t)n, sizeof(*ps));
  double first = 0, last = 0, t[2];
  size_t len;
  long i;
  int rc;
  if (!ps)
    die("calloc", MPROC_ENOMEM);
  for (i = 0; i < n; i++)
    if ((rc = mproc_process_create(&ps[i], names[i], g->args, NULL)) < 0 ||
        (rc = mproc_process_start(ps[i])) < 0)
      die("start", rc);
  if ((rc = mproc_barrier_wait(g->go, MPROC_FOREVER, NULL)) < 0)
    die("barrier", rc);
  for (i = 0; i < n; i++)
    join_one(ps[i]);
  for (i = 0; i < n; i++) {
    if ((rc = mproc_queue_get(g->times, t, sizeof t, &len, 0)) < 0 ||
        len != sizeof t)
      die("clock readings", rc < 0 ? rc : MPROC_EINVAL);
    first = i == 0 || t[0] < first ? t[0] : first;
    last = i == 0 || t[1] > last ? t[1] : last;
  }
  mproc_args_free(g->args);
  mproc_barrier_free(g->go);
  mproc_queue_free(g->times);
  free(ps);
  return last - first;
}

/* In a child: the object (of `type`), its count, and the barrier passed. */
static int group_enter(const mproc_args *args, int type, void **obj,
                       int64_t *n, double *t0) {
  void *go = NULL;
  if (mproc_arg_object(args, 0, type, obj) < 0 ||
      mproc_arg_object(args, 1, MPROC_OBJ_BARRIER, &go) < 0 ||
      mproc_arg_int(args, 2, n) < 0)
    return 2;
  if (mproc_barrier_wait((mproc_barrier *)go, MPROC_FOREVER, NULL) < 0)
    return 3;
  *t0 = bench_now();
  return 0;
}

static int group_leave(const mproc_args *args, double t0) {
  void *times = NULL;
  double t[2];
  t[0] = t0;
  t[1] = bench_now();
  if (mproc_arg_object(args, 3, MPROC_OBJ_QUEUE, &times) < 0 ||
      mproc_queue_put((mproc_queue *)times, t, sizeof t, MPROC_FOREVER) < 0)
    return 5;
  return 0;
}

/* A child that fails says why (run.sh keeps stderr in errors.log) and
 * returns 4.  Children wait at most GROUP_PATIENCE seconds for the queue:
 * when one fails, the others would otherwise wait forever (a producer on a
 * full queue, say) and the parent, joining them, with them. */
#define GROUP_PATIENCE 60.0

static int group_fail(const char *what, int rc, int64_t i, size_t len) {
  fprintf(stderr, "mproc_bench: %s %lld: %s (%s), length %zu\n", what,
          (long long)i, rc < 0 ? mproc_strerror(rc) : "ok",
          rc < 0 ? mproc_err_name(rc) : "-", len);
  return 4;
}

static int bench_lock_worker(const mproc_args *args) {
  void *lk = NULL;
  int64_t n = 0, i;
  double t0 = 0;
  int code = group_enter(args, MPROC_OBJ_LOCK, &lk, &n, &t0);
  for (i = 0; !code && i < n; i++) {
    if (mproc_lock_acquire((mproc_lock *)lk, MPROC_FOREVER) < 0)
      code = 4;
    else
      mproc_lock_release((mproc_lock *)lk);
  }
  return code ? code : group_leave(args, t0);
}

/* ns per acquire+release pair, NPROCS processes doing ITERS pairs each. */
static double lock_contended(long nprocs, long iters) {
  mproc_lock *lk;
  group g;
  const char **names = (const char **)calloc((size_t)nprocs, sizeof(char *));
  double t;
  long i;
  int rc;
  if (!names)
    die("calloc", MPROC_ENOMEM);
  if ((rc = mproc_lock_create(&lk, 0)) < 0)
    die("lock_create", rc);
  group_setup(&g, lk, nprocs, iters);
  for (i = 0; i < nprocs; i++)
    names[i] = "bench_lock_worker";
  t = group_run(&g, names, nprocs);
  /* A lock that did not really work would be fast: insist it is free. */
  if ((rc = mproc_lock_release(lk)) != MPROC_ESTATE)
    die("lock state", rc);
  mproc_lock_free(lk);
  free(names);
  return t / ((double)nprocs * (double)iters) * 1e9;
}

/* Producer: n 64-byte messages; consumer: n gets, each checked for its
 * size.  Producers and consumers are equally many and move the same count
 * each, so every consumer finishes whoever fed it. */
static int bench_mpmc_producer(const mproc_args *args) {
  void *q = NULL;
  int64_t n = 0, i;
  double t0 = 0;
  unsigned char buf[BENCH_SMALL_MSG];
  int rc, code = group_enter(args, MPROC_OBJ_QUEUE, &q, &n, &t0);
  memset(buf, 'x', sizeof buf);
  for (i = 0; !code && i < n; i++)
    if ((rc = mproc_queue_put((mproc_queue *)q, buf, sizeof buf,
                              GROUP_PATIENCE)) < 0)
      code = group_fail("put", rc, i, sizeof buf);
  return code ? code : group_leave(args, t0);
}

static int bench_mpmc_consumer(const mproc_args *args) {
  void *q = NULL;
  int64_t n = 0, i;
  double t0 = 0;
  unsigned char buf[BENCH_SMALL_MSG];
  size_t len = 0;
  int rc, code = group_enter(args, MPROC_OBJ_QUEUE, &q, &n, &t0);
  for (i = 0; !code && i < n; i++)
    if ((rc = mproc_queue_get((mproc_queue *)q, buf, sizeof buf, &len,
                              GROUP_PATIENCE)) < 0 ||
        len != BENCH_SMALL_MSG)
      code = group_fail("get", rc, i, len);
  return code ? code : group_leave(args, t0);
}

/* Messages per second through one queue, NPAIRS producers and NPAIRS
 * consumers, NMSGS messages in all. */
static double queue_mpmc(long npairs, long nmsgs) {
  mproc_queue *q;
  group g;
  long each = nmsgs / npairs > 0 ? nmsgs / npairs : 1, i;
  const char **names =
      (const char **)calloc((size_t)(2 * npairs), sizeof(char *));
  double t;
  int rc;
  if (!names)
    die("calloc", MPROC_ENOMEM);
  if ((rc = mproc_queue_create(&q, NULL)) < 0)
    die("queue_create", rc);
  group_setup(&g, q, 2 * npairs, each);
  for (i = 0; i < 2 * npairs; i++)
    names[i] = i < npairs ? "bench_mpmc_producer" : "bench_mpmc_consumer";
  t = group_run(&g, names, 2 * npairs);
  mproc_queue_free(q);
  free(names);
  return (double)(each * npairs) / t;
}

/* ---- bulk_1mib --------------------------------------------------------------
 * 1 MiB messages, producer -> consumer, through mproc's Queue with a 4 MiB
 * ring: the put copies the message into shared memory, the get copies it
 * out into the consumer's own buffer (the raw baseline's write/read pair,
 * without the kernel in between), and the ring holds a few messages so the
 * two copies overlap.  Clock as in raw_bench: from the first put once the
 * consumer said it runs, to its reply after the last get.  Each message
 * carries its index, which the consumer checks, so a queue that lost,
 * repeated or reordered messages cannot post a number.  bulk_view is the
 * same through the zero-copy views: the producer copies each message
 * straight into room reserved in the ring, the consumer reads it where it
 * lies (summing its words, as raw_bench's one-copy ring does). */
/* Room for 4 messages, as raw_bench's bare ring has 4 slots: each record
 * carries an 8-byte header, so 4 MiB even would hold 3 of them a lap. */
#define BULK_RING (((size_t)4 << 20) + 4096)

/* Sum of the message's 64-bit words: reading every byte in place, as
 * raw_bench's one-copy ring consumer does. */
static uint64_t bulk_sum(const unsigned char *p, size_t n) {
  const uint64_t *w = (const uint64_t *)(const void *)p;
  uint64_t s = 0;
  size_t i;
  for (i = 0; i < n / 8; i++)
    s += w[i];
  return s;
}

/* Takes one message: copied out with get (view 0), or borrowed, read in
 * place and released (view 1).  Returns its index, or -1. */
static int64_t bulk_take(mproc_queue *q, unsigned char *buf, int view,
                         volatile uint64_t *sink) {
  mproc_queue_view v;
  int64_t idx = -1;
  size_t len;
  if (!view) {
    if (mproc_queue_get(q, buf, BENCH_BULK_MSG, &len, MPROC_FOREVER) < 0 ||
        len != BENCH_BULK_MSG)
      return -1;
    memcpy(&idx, buf, sizeof idx);
    return idx;
  }
  if (mproc_queue_get_borrow(q, &v, MPROC_FOREVER) < 0)
    return -1;
  if (v.len == BENCH_BULK_MSG) {
    *sink += bulk_sum((const unsigned char *)v.data, v.len);
    memcpy(&idx, v.data, sizeof idx);
  }
  if (mproc_queue_release(q, &v) < 0)
    return -1;
  return idx;
}

static int bench_bulk_consumer(const mproc_args *args) {
  void *data = NULL, *ack = NULL;
  int64_t n = 0, i, view = 0;
  volatile uint64_t sink = 0;
  unsigned char *buf = (unsigned char *)malloc(BENCH_BULK_MSG);
  int code = 0;
  if (!buf || mproc_arg_object(args, 0, MPROC_OBJ_QUEUE, &data) < 0 ||
      mproc_arg_object(args, 1, MPROC_OBJ_QUEUE, &ack) < 0 ||
      mproc_arg_int(args, 2, &n) < 0 || mproc_arg_int(args, 3, &view) < 0)
    code = 2;
  if (!code && mproc_queue_put((mproc_queue *)ack, "r", 1, MPROC_FOREVER) < 0)
    code = 3;
  for (i = 0; !code && i < n; i++)
    if (bulk_take((mproc_queue *)data, buf, (int)view, &sink) != i)
      code = 4;
  if (!code && mproc_queue_put((mproc_queue *)ack, "d", 1, MPROC_FOREVER) < 0)
    code = 6;
  free(buf);
  return code;
}

/* Puts one message: a copy by put (view 0), or copied straight into room
 * reserved in the ring (view 1: the one copy a producer makes anyway). */
static void bulk_give(mproc_queue *q, const unsigned char *buf, int view) {
  mproc_queue_view v;
  int rc;
  if (!view) {
    if ((rc = mproc_queue_put(q, buf, BENCH_BULK_MSG, MPROC_FOREVER)) < 0)
      die("put", rc);
    return;
  }
  if ((rc = mproc_queue_put_reserve(q, BENCH_BULK_MSG, &v, MPROC_FOREVER)) < 0)
    die("put_reserve", rc);
  memcpy(v.data, buf, BENCH_BULK_MSG);
  if ((rc = mproc_queue_put_commit(q, &v)) < 0)
    die("put_commit", rc);
}

/* GB/s (1e9 bytes per second), as raw_bench and py_bench report it. */
static double bulk_1mib(long nmsgs, int view) {
  mproc_queue_options data_opts = {0, BULK_RING, 0};
  mproc_queue *data, *ack;
  mproc_args *args;
  mproc_process *p;
  unsigned char *buf = (unsigned char *)malloc(BENCH_BULK_MSG);
  char c;
  size_t len;
  double t0, t;
  int64_t i;
  int rc;
  if (!buf)
    die("malloc", MPROC_ENOMEM);
  memset(buf, 'x', BENCH_BULK_MSG);
  if ((rc = mproc_queue_create(&data, &data_opts)) < 0 ||
      (rc = mproc_queue_create(&ack, NULL)) < 0)
    die("queue_create", rc);
  if ((rc = mproc_args_create(&args)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, data)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, ack)) < 0 ||
      (rc = mproc_args_add_int(args, NULL, nmsgs)) < 0 ||
      (rc = mproc_args_add_int(args, NULL, view)) < 0)
    die("args", rc);
  p = start_one("bench_bulk_consumer", args, NULL);
  mproc_args_free(args);
  if ((rc = mproc_queue_get(ack, &c, 1, &len, MPROC_FOREVER)) < 0)
    die("get ready", rc);
  t0 = bench_now();
  for (i = 0; i < nmsgs; i++) {
    memcpy(buf, &i, sizeof i);
    bulk_give(data, buf, view);
  }
  if ((rc = mproc_queue_get(ack, &c, 1, &len, MPROC_FOREVER)) < 0)
    die("get done", rc);
  t = bench_now() - t0;
  join_one(p); /* checks the consumer's exit code */
  mproc_queue_free(data);
  mproc_queue_free(ack);
  free(buf);
  return (double)nmsgs * (double)BENCH_BULK_MSG / t / 1e9;
}

/* ---- bulk_1mib_shm ------------------------------------------------------------
 * The other zero-copy path: a SharedMemory block of 4 slots of 1 MiB, handed
 * to the consumer once (as an argument), and per message only its slot's
 * number, over a queue; the consumer reads the slot in place (summing its
 * words) and hands the number back over a second queue, the free list.
 * The producer copies each message into a free slot: one copy, as the
 * bare ring's.  The clock runs from the first copy, once the consumer
 * runs, until every slot is back on the free list. */
#define SHM_SLOTS 4

static int bench_shm_consumer(const mproc_args *args) {
  void *shm = NULL, *data = NULL, *free_q = NULL;
  int64_t n = 0, i, slot, idx;
  volatile uint64_t sink = 0;
  size_t len;
  int code = 0;
  if (mproc_arg_object(args, 0, MPROC_OBJ_SHM, &shm) < 0 ||
      mproc_arg_object(args, 1, MPROC_OBJ_QUEUE, &data) < 0 ||
      mproc_arg_object(args, 2, MPROC_OBJ_QUEUE, &free_q) < 0 ||
      mproc_arg_int(args, 3, &n) < 0)
    return 2;
  for (i = 0; !code && i < SHM_SLOTS; i++) /* the free list, and "ready" */
    if (mproc_queue_put((mproc_queue *)free_q, &i, sizeof i, MPROC_FOREVER) < 0)
      code = 3;
  for (i = 0; !code && i < n; i++) {
    const unsigned char *p;
    if (mproc_queue_get((mproc_queue *)data, &slot, sizeof slot, &len,
                        MPROC_FOREVER) < 0 ||
        slot < 0 || slot >= SHM_SLOTS) {
      code = 4;
      break;
    }
    p = (const unsigned char *)mproc_shm_ptr((mproc_shm *)shm) +
        (size_t)slot * BENCH_BULK_MSG;
    sink += bulk_sum(p, BENCH_BULK_MSG);
    memcpy(&idx, p, sizeof idx);
    if (idx != i || mproc_queue_put((mproc_queue *)free_q, &slot, sizeof slot,
                                    MPROC_FOREVER) < 0)
      code = 5;
  }
  return code;
}

static int64_t shm_free_slot(mproc_queue *free_q) {
  int64_t slot = -1;
  size_t len;
  int rc = mproc_queue_get(free_q, &slot, sizeof slot, &len, MPROC_FOREVER);
  if (rc < 0 || slot < 0 || slot >= SHM_SLOTS)
    die("free slot", rc < 0 ? rc : MPROC_ESTATE);
  return slot;
}

static double bulk_shm(long nmsgs) {
  mproc_shm *shm;
  mproc_queue *data, *free_q;
  mproc_args *args;
  mproc_process *p;
  unsigned char *buf = (unsigned char *)malloc(BENCH_BULK_MSG), *slots;
  double t0, t;
  int64_t i, slot;
  int rc;
  if (!buf)
    die("malloc", MPROC_ENOMEM);
  memset(buf, 'x', BENCH_BULK_MSG);
  if ((rc = mproc_shm_create(&shm, NULL, SHM_SLOTS * BENCH_BULK_MSG)) < 0 ||
      (rc = mproc_queue_create(&data, NULL)) < 0 ||
      (rc = mproc_queue_create(&free_q, NULL)) < 0)
    die("create", rc);
  slots = (unsigned char *)mproc_shm_ptr(shm);
  memset(slots, 0, SHM_SLOTS * BENCH_BULK_MSG);
  if ((rc = mproc_args_create(&args)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, shm)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, data)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, free_q)) < 0 ||
      (rc = mproc_args_add_int(args, NULL, nmsgs)) < 0)
    die("args", rc);
  p = start_one("bench_shm_consumer", args, NULL);
  mproc_args_free(args);
  /* The consumer's first free slot says it runs. */
  slot = shm_free_slot(free_q);
  t0 = bench_now();
  for (i = 0; i < nmsgs; i++) {
    if (i > 0)
      slot = shm_free_slot(free_q);
    memcpy(buf, &i, sizeof i);
    memcpy(slots + (size_t)slot * BENCH_BULK_MSG, buf, BENCH_BULK_MSG);
    if ((rc = mproc_queue_put(data, &slot, sizeof slot, MPROC_FOREVER)) < 0)
      die("put", rc);
  }
  /* Every slot back on the free list: the consumer has read them all. */
  for (i = 0; i < SHM_SLOTS; i++)
    (void)shm_free_slot(free_q);
  t = bench_now() - t0;
  join_one(p); /* checks its exit code */
  mproc_queue_free(data);
  mproc_queue_free(free_q);
  mproc_shm_free(shm);
  free(buf);
  return (double)nmsgs * (double)BENCH_BULK_MSG / t / 1e9;
}

/* ---- queue_small_msgs ----------------------------------------------------
 * 64-byte messages, producer -> consumer, through mproc's Queue with its
 * default 1 MiB ring: py_bench's Queue put loop, and raw_bench's pipe
 * write/read loop.  Clock from the first put once the consumer said it runs
 * (on a second queue) to its reply after the last get.  Each message
 * carries its index, which the consumer checks, so a queue that lost,
 * repeated or reordered messages cannot post a number. */
static int bench_queue_small_consumer(const mproc_args *args) {
  void *data = NULL, *ack = NULL;
  int64_t n = 0, i, idx;
  size_t len;
  unsigned char buf[BENCH_SMALL_MSG];
  int code = 0;
  if (mproc_arg_object(args, 0, MPROC_OBJ_QUEUE, &data) < 0 ||
      mproc_arg_object(args, 1, MPROC_OBJ_QUEUE, &ack) < 0 ||
      mproc_arg_int(args, 2, &n) < 0)
    code = 2;
  if (!code && mproc_queue_put((mproc_queue *)ack, "r", 1, MPROC_FOREVER) < 0)
    code = 3;
  for (i = 0; !code && i < n; i++) {
    int rc = mproc_queue_get((mproc_queue *)data, buf, sizeof buf, &len,
                             MPROC_FOREVER);
    if (rc < 0 || len != BENCH_SMALL_MSG) {
      /* Say why: the parent only sees the exit code. */
      fprintf(stderr, "consumer: get %lld: %s, len %zu\n", (long long)i,
              rc < 0 ? mproc_strerror(rc) : "ok", len);
      code = 4;
    }
    memcpy(&idx, buf, sizeof idx);
    if (!code && idx != i)
      code = 5;
  }
  if (!code && mproc_queue_put((mproc_queue *)ack, "d", 1, MPROC_FOREVER) < 0)
    code = 6;
  return code;
}

/* Messages per second. */
static double queue_small_msgs(long nmsgs) {
  mproc_queue *data, *ack;
  mproc_args *args;
  mproc_process *p;
  unsigned char buf[BENCH_SMALL_MSG];
  char c;
  size_t len;
  double t0, t;
  int64_t i;
  int rc;
  memset(buf, 'x', sizeof buf);
  if ((rc = mproc_queue_create(&data, NULL)) < 0 ||
      (rc = mproc_queue_create(&ack, NULL)) < 0)
    die("queue_create", rc);
  if ((rc = mproc_args_create(&args)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, data)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, ack)) < 0 ||
      (rc = mproc_args_add_int(args, NULL, nmsgs)) < 0)
    die("args", rc);
  p = start_one("bench_queue_small_consumer", args, NULL);
  mproc_args_free(args);
  if ((rc = mproc_queue_get(ack, &c, 1, &len, MPROC_FOREVER)) < 0)
    die("get ready", rc);
  t0 = bench_now();
  for (i = 0; i < nmsgs; i++) {
    memcpy(buf, &i, sizeof i);
    if ((rc = mproc_queue_put(data, buf, sizeof buf, MPROC_FOREVER)) < 0)
      die("put", rc);
  }
  if ((rc = mproc_queue_get(ack, &c, 1, &len, MPROC_FOREVER)) < 0)
    die("get done", rc);
  t = bench_now() - t0;
  join_one(p); /* checks the consumer's exit code */
  mproc_queue_free(data);
  mproc_queue_free(ack);
  return (double)nmsgs / t;
}

/* ---- lock_uncontended -----------------------------------------------------
 * ns per acquire+release pair of mproc's Lock, uncontended, warmed up first:
 * the loop of raw_bench's process-shared mutex and py_bench's Lock. */
static double lock_uncontended(long iters) {
  mproc_lock *lk;
  double t0;
  long i;
  int rc;
  if ((rc = mproc_lock_create(&lk, 0)) < 0)
    die("lock_create", rc);
  for (i = 0; i < 1000; i++) {
    mproc_lock_acquire(lk, MPROC_FOREVER);
    mproc_lock_release(lk);
  }
  t0 = bench_now();
  for (i = 0; i < iters; i++) {
    mproc_lock_acquire(lk, MPROC_FOREVER);
    mproc_lock_release(lk);
  }
  t0 = bench_now() - t0;
  /* A lock that did not really work would be fast: insist it is free. */
  if ((rc = mproc_lock_release(lk)) != MPROC_ESTATE)
    die("lock state", rc);
  mproc_lock_free(lk);
  return t0 / (double)iters * 1e9;
}

/* ---- pipe_small_msgs --------------------------------------------------------
 * 64-byte messages one way over mproc_pipe(duplex=1), as py_bench.py's
 * stream(): the child says "r" on its end, receives every message, says
 * "d"; the clock runs from the first send to the "d".  The child checks the
 * size of every message, so a pipe that merged or split them cannot post a
 * number. */
static int bench_pipe_reader(const mproc_args *args) {
  void *obj = NULL;
  mproc_conn *c;
  int64_t n = 0, i;
  char buf[BENCH_SMALL_MSG];
  size_t len = 0;
  if (mproc_arg_object(args, 0, MPROC_OBJ_CONN, &obj) < 0 ||
      mproc_arg_int(args, 1, &n) < 0)
    return 2;
  c = (mproc_conn *)obj;
  if (mproc_conn_send_bytes(c, "r", 1) < 0)
    return 3;
  for (i = 0; i < n; i++)
    if (mproc_conn_recv_bytes(c, buf, sizeof buf, &len, MPROC_FOREVER) < 0 ||
        len != BENCH_SMALL_MSG)
      return 4;
  return mproc_conn_send_bytes(c, "d", 1) < 0 ? 5 : 0;
}

/* Messages per second. */
static double pipe_small_msgs(long nmsgs) {
  mproc_conn *a, *b;
  mproc_args *args;
  mproc_process *p;
  char msg[BENCH_SMALL_MSG], ack[8];
  size_t len;
  double t0, t;
  long i;
  int rc;
  memset(msg, 'x', sizeof msg);
  if ((rc = mproc_pipe(&a, &b, 1)) < 0)
    die("pipe", rc);
  if ((rc = mproc_args_create(&args)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, b)) < 0 ||
      (rc = mproc_args_add_int(args, NULL, nmsgs)) < 0)
    die("args", rc);
  p = start_one("bench_pipe_reader", args, NULL);
  mproc_args_free(args);
  mproc_conn_free(b); /* the child's end, as py_bench's b.close() */
  if ((rc = mproc_conn_recv_bytes(a, ack, sizeof ack, &len, MPROC_FOREVER)) < 0)
    die("recv ready", rc);
  t0 = bench_now();
  for (i = 0; i < nmsgs; i++)
    if ((rc = mproc_conn_send_bytes(a, msg, sizeof msg)) < 0)
      die("send", rc);
  if ((rc = mproc_conn_recv_bytes(a, ack, sizeof ack, &len, MPROC_FOREVER)) < 0)
    die("recv done", rc);
  t = bench_now() - t0;
  join_one(p); /* checks the reader's exit code */
  mproc_conn_free(a);
  return (double)nmsgs / t;
}

/* ---- pool_map_chunk1 / pool_map_chunked -------------------------------------
 * map of x*x over 0..n-1 (int64 in, int64 out) on a pool of two workers
 * (WORKERS, for pool_workers), as py_bench.py's Pool(2).map: the pool is started and warmed (a map of 100
 * with chunksize 1) before the clock, which covers building the inputs, the
 * map and its results, and stops before they are checked. */
static int bench_square(const mproc_args *args) {
  const void *in;
  size_t n;
  int64_t x;
  if (mproc_task_input(args, &in, &n) < 0 || n != sizeof x)
    return 1;
  memcpy(&x, in, sizeof x);
  x *= x;
  return mproc_task_result(args, &x, sizeof x) < 0 ? 2 : 0;
}

/* backend MPROC_POOL_MPI: the same map on 2 MPI ranks (`mpiexec -n 3
 * mproc_bench pool N CHUNK mpi`, an MPROC_WITH_MPI build). */
static double pool_map(long ntasks, long chunk, long workers,
                       mproc_pool_backend backend) {
  mproc_pool_options o;
  mproc_pool *pool = NULL;
  mproc_async_result *r = NULL;
  int64_t *xs = (int64_t *)malloc(sizeof(int64_t) * (size_t)(ntasks + 100));
  mproc_bytes *in =
      (mproc_bytes *)malloc(sizeof(mproc_bytes) * (size_t)(ntasks + 100));
  double t0, t;
  long i;
  int rc;
  if (!xs || !in)
    die("malloc", MPROC_ENOMEM);
  memset(&o, 0, sizeof o);
  o.processes = (int)workers;
  o.backend = backend;
  rc = mproc_pool_create(&pool, &o);
  if (rc < 0)
    die("pool_create", rc);
  /* The input arrays are touched before the clock: a fresh 24 MB array
   * costs thousands of page faults, the program's cost of getting memory
   * rather than the map's (and more than the whole hand-written pool).
   * After the workers are forked, or each page faults again on the first
   * write (copy-on-write), and not with zeros: the compiler may turn
   * malloc + memset(0) into calloc, which touches nothing. */
  memset(xs, 0xa5, sizeof(int64_t) * (size_t)(ntasks + 100));
  memset(in, 0xa5, sizeof(mproc_bytes) * (size_t)(ntasks + 100));
  for (i = 0; i < 100; i++) {
    xs[i] = i;
    in[i].data = &xs[i];
    in[i].len = sizeof(int64_t);
  }
  rc = mproc_pool_map(pool, "bench_square", in, 100, 1, &r);
  if (rc < 0)
    die("pool_map (warm-up)", rc);
  mproc_async_result_free(r);
  t0 = bench_now();
  for (i = 0; i < ntasks; i++) {
    xs[i] = i;
    in[i].data = &xs[i];
    in[i].len = sizeof(int64_t);
  }
  rc = mproc_pool_map(pool, "bench_square", in, (size_t)ntasks, (size_t)chunk,
                      &r);
  t = bench_now() - t0;
  if (rc != 0)
    die("pool_map", rc);
  for (i = 0; i < ntasks; i++) {
    const void *d;
    size_t n;
    int64_t v;
    if (mproc_async_result_item(r, (size_t)i, &d, &n) != 0 || n != sizeof v)
      die("pool result", MPROC_EINVAL);
    memcpy(&v, d, sizeof v);
    if (v != (int64_t)i * i) {
      fprintf(stderr, "mproc_bench: pool result %ld wrong\n", i);
      exit(1);
    }
  }
  mproc_async_result_free(r);
  rc = mproc_pool_close(pool);
  if (rc == 0)
    rc = mproc_pool_join(pool, MPROC_FOREVER);
  if (rc < 0)
    die("pool close/join", rc);
  mproc_pool_free(pool);
  free(xs);
  free(in);
  return (double)ntasks / t;
}

int main(int argc, char **argv) {
  mproc_process_options opts;
  const char *cmd;
  int rc = mproc_main(argc, argv, entries);
  if (rc < 0)
    die("mproc_main", rc);
  bench_touch_memory();
  if (argc < 2) {
    fprintf(stderr, "usage: %s start_join|scale|pipe_small|queue_small|"
                    "bulk|lock|pool|live|lock_contend|queue_mpmc ARGS...\n",
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
  } else if (strcmp(cmd, "live") == 0) {
    opts.start_method = parse_method(argc > 2 ? argv[2] : NULL);
    bench_print(run_live(&opts, bench_arg(argc, argv, 3, 1),
                         bench_arg(argc, argv, 4, 100)));
  } else if (strcmp(cmd, "lock_contend") == 0) {
    bench_print(lock_contended(bench_arg(argc, argv, 2, 2),
                               bench_arg(argc, argv, 3, 100000)));
  } else if (strcmp(cmd, "queue_mpmc") == 0) {
    bench_print(queue_mpmc(bench_arg(argc, argv, 2, 4),
                           bench_arg(argc, argv, 3, 100000)));
  } else if (strcmp(cmd, "bulk") == 0) {
    bench_print(bulk_1mib(bench_arg(argc, argv, 2, 1000), 0));
  } else if (strcmp(cmd, "bulk_shm") == 0) {
    bench_print(bulk_shm(bench_arg(argc, argv, 2, 1000)));
  } else if (strcmp(cmd, "bulk_view") == 0) {
    bench_print(bulk_1mib(bench_arg(argc, argv, 2, 1000), 1));
  } else if (strcmp(cmd, "lock") == 0) {
    bench_print(lock_uncontended(bench_arg(argc, argv, 2, 1000000)));
  } else if (strcmp(cmd, "queue_small") == 0) {
    bench_print(queue_small_msgs(bench_arg(argc, argv, 2, 100000)));
  } else if (strcmp(cmd, "pipe_small") == 0) {
    bench_print(pipe_small_msgs(bench_arg(argc, argv, 2, 100000)));
  } else if (strcmp(cmd, "pool") == 0) {
    bench_print(pool_map(bench_arg(argc, argv, 2, 100000),
                         bench_arg(argc, argv, 3, 1),
                         argc > 4 && strcmp(argv[4], "mpi") == 0
                             ? 2
                             : bench_arg(argc, argv, 4, 2),
                         argc > 4 && strcmp(argv[4], "mpi") == 0
                             ? MPROC_POOL_MPI
                             : MPROC_POOL_LOCAL));
  } else {
    fprintf(stderr, "mproc_bench: unknown benchmark '%s'\n", cmd);
    return 2;
  }
  return 0;
}
