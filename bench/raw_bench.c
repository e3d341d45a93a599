/* Raw system-call baselines: what the benchmarks cost written by hand with
 * fork/posix_spawn/waitpid, pipes and a process-shared mutex, no library.
 * Same subcommands and output as mproc_bench.c:
 *
 *   raw_bench start_join fork|spawn ITERS
 *   raw_bench scale fork|spawn N ROUNDS
 *   raw_bench live fork|spawn NALIVE ITERS
 *   raw_bench pipe_small NMSGS | queue_small NMSGS | bulk NMSGS
 *   raw_bench lock ITERS | pool NTASKS CHUNKSIZE [WORKERS]
 *   raw_bench lock_contend NPROCS ITERS | queue_mpmc NPAIRS NMSGS
 *   raw_bench bulk_ring NMSGS 1|2 (copies) | bulk_memcpy NMSGS
 *   raw_bench spsc_small NMSGS   (64-byte messages, bare shared-memory ring)
 *
 * POSIX only: the Windows numbers would need their own baseline. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "mproc.h"

extern char **environ;

#define EXIT_NOW_FLAG "--exit-now"

/* The spawn baseline execs this program, and mproc spawns mproc_bench.
 * Exec cost grows with the image (mapping, relocations, page faults), so
 * this binary carries the same library code as mproc_bench by keeping a
 * reference to it, without ever calling it. */
int (*volatile raw_bench_keep_mproc)(int, char **, const mproc_entry *) =
    mproc_main;

static _Noreturn void die(const char *what) {
  fprintf(stderr, "raw_bench: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void read_full(int fd, void *buf, size_t n) {
  char *p = (char *)buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      die("read");
    p += r;
    n -= (size_t)r;
  }
}

static void write_full(int fd, const void *buf, size_t n) {
  const char *p = (const char *)buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      die("write");
    p += w;
    n -= (size_t)w;
  }
}

static void reap(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      die("waitpid");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "raw_bench: child %d failed (status %#x)\n", (int)pid, st);
    exit(1);
  }
}

/* ---- starting processes -------------------------------------------------- */

static pid_t start_fork(void) {
  pid_t pid = fork();
  if (pid < 0)
    die("fork");
  if (pid == 0)
    _exit(0);
  return pid;
}

/* The same executable mproc's spawn uses on Linux, found the same way. */
static pid_t start_spawn(void) {
  static char *child_argv[] = {(char *)"raw_bench", (char *)EXIT_NOW_FLAG,
                               NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, child_argv,
                       environ);
  if (rc != 0) {
    errno = rc;
    die("posix_spawn");
  }
  return pid;
}

static double run_start_join(pid_t (*start)(void), long iters) {
  double batch[BENCH_BATCHES], t0;
  long per = iters / BENCH_BATCHES > 0 ? iters / BENCH_BATCHES : 1, i;
  int b;
  for (i = 0; i < 3; i++)
    reap(start());
  for (b = 0; b < BENCH_BATCHES; b++) {
    t0 = bench_now();
    for (i = 0; i < per; i++)
      reap(start());
    batch[b] = (bench_now() - t0) / (double)per * 1e6;
  }
  return bench_median(batch, BENCH_BATCHES);
}

static double run_scale(pid_t (*start)(void), long n, long rounds) {
  pid_t *pids = (pid_t *)calloc((size_t)n, sizeof(*pids));
  double *per = (double *)calloc((size_t)rounds, sizeof(*per)), t0, med;
  long r, i;
  if (!pids || !per)
    die("calloc");
  reap(start());
  for (r = 0; r < rounds; r++) {
    t0 = bench_now();
    for (i = 0; i < n; i++)
      pids[i] = start();
    for (i = 0; i < n; i++)
      reap(pids[i]);
    per[r] = (bench_now() - t0) / (double)n * 1e6;
  }
  med = bench_median(per, (size_t)rounds);
  free(pids);
  free(per);
  return med;
}

/* ---- live children ----------------------------------------------------------- */

#define BLOCK_FLAG "--block"

/* A blocker: alive and idle until terminated. */
static pid_t start_blocker(pid_t (*start)(void)) {
  static char *block_argv[] = {(char *)"raw_bench", (char *)BLOCK_FLAG, NULL};
  pid_t pid;
  int rc;
  if (start == start_fork) {
    pid = fork();
    if (pid < 0)
      die("fork");
    if (pid == 0)
      for (;;)
        pause();
    return pid;
  }
  rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, block_argv, environ);
  if (rc != 0) {
    errno = rc;
    die("posix_spawn");
  }
  return pid;
}

/* start+join of one more process while `nalive` blockers are alive. */
static double run_live(pid_t (*start)(void), long nalive, long iters) {
  pid_t *pids = (pid_t *)calloc((size_t)nalive, sizeof(*pids));
  double v;
  long i;
  int st;
  if (!pids)
    die("calloc");
  for (i = 0; i < nalive; i++)
    pids[i] = start_blocker(start);
  v = run_start_join(start, iters);
  for (i = 0; i < nalive; i++)
    kill(pids[i], SIGTERM);
  for (i = 0; i < nalive; i++)
    while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
      ;
  free(pids);
  return v;
}

/* ---- contention: a process-shared mutex, a pipe shared by many --------------
 * As mproc_bench: the children meet the parent at a (process-shared
 * pthread) barrier, each reads the clock before and after its share, and
 * the time is from the earliest start to the latest end. */
#define GROUP_MAX 128

typedef struct {
  pthread_barrier_t go;
  pthread_mutex_t mu;
  long counter;
  double t[GROUP_MAX][2]; /* child i's clock readings */
} shared_area;

static shared_area *shared_area_new(unsigned parties) {
  pthread_barrierattr_t ba;
  pthread_mutexattr_t ma;
  shared_area *a =
      (shared_area *)mmap(NULL, sizeof(shared_area), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED)
    die("mmap");
  pthread_barrierattr_init(&ba);
  pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
  pthread_barrier_init(&a->go, &ba, parties);
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&a->mu, &ma);
  a->counter = 0;
  return a;
}

/* Forks n children running child(i, ctx) after the barrier, reaps them;
 * returns the seconds from the earliest start to the latest end. */
static double run_group(shared_area *a, long n, void (*child)(long, void *),
                        void *ctx) {
  pid_t *pids = (pid_t *)calloc((size_t)n, sizeof(*pids));
  double first, last;
  long i;
  if (!pids || n > GROUP_MAX)
    die("group");
  for (i = 0; i < n; i++) {
    pids[i] = fork();
    if (pids[i] < 0)
      die("fork");
    if (pids[i] == 0) {
      pthread_barrier_wait(&a->go);
      a->t[i][0] = bench_now();
      child(i, ctx);
      a->t[i][1] = bench_now();
      _exit(0);
    }
  }
  pthread_barrier_wait(&a->go);
  for (i = 0; i < n; i++)
    reap(pids[i]);
  first = a->t[0][0];
  last = a->t[0][1];
  for (i = 1; i < n; i++) {
    first = a->t[i][0] < first ? a->t[i][0] : first;
    last = a->t[i][1] > last ? a->t[i][1] : last;
  }
  free(pids);
  return last - first;
}

typedef struct {
  shared_area *a;
  long iters;
} lock_ctx;

static void lock_child(long i, void *p) {
  lock_ctx *c = (lock_ctx *)p;
  long k;
  (void)i;
  for (k = 0; k < c->iters; k++) {
    pthread_mutex_lock(&c->a->mu);
    c->a->counter++; /* lost updates would show a broken lock */
    pthread_mutex_unlock(&c->a->mu);
  }
}

/* ns per lock+unlock pair, nprocs processes doing iters pairs each. */
static double run_lock_contend(long nprocs, long iters) {
  lock_ctx c;
  double t;
  c.a = shared_area_new((unsigned)nprocs + 1);
  c.iters = iters;
  t = run_group(c.a, nprocs, lock_child, &c);
  if (c.a->counter != nprocs * iters) {
    fprintf(stderr, "raw_bench: counter %ld, expected %ld\n", c.a->counter,
            nprocs * iters);
    exit(1);
  }
  munmap(c.a, sizeof(shared_area));
  return t / ((double)nprocs * (double)iters) * 1e9;
}

typedef struct {
  int fds[2];
  long npairs, each;
} mpmc_ctx;

/* Children 0..npairs-1 write, the others read.  Writes of 64 bytes are
 * atomic (below PIPE_BUF) and every read asks for 64, so the pipe's bytes
 * stay whole messages with any number of writers and readers. */
static void mpmc_child(long i, void *p) {
  mpmc_ctx *c = (mpmc_ctx *)p;
  char buf[BENCH_SMALL_MSG];
  long k;
  memset(buf, 'x', sizeof buf);
  for (k = 0; k < c->each; k++) {
    if (i < c->npairs)
      write_full(c->fds[1], buf, sizeof buf);
    else
      read_full(c->fds[0], buf, sizeof buf);
  }
}

/* Messages per second through one pipe, npairs writers and npairs readers. */
static double run_queue_mpmc(long npairs, long nmsgs) {
  mpmc_ctx c;
  shared_area *a = shared_area_new((unsigned)(2 * npairs) + 1);
  double t;
  if (pipe(c.fds) != 0)
    die("pipe");
  c.npairs = npairs;
  c.each = nmsgs / npairs > 0 ? nmsgs / npairs : 1;
  t = run_group(a, 2 * npairs, mpmc_child, &c);
  close(c.fds[0]);
  close(c.fds[1]);
  munmap(a, sizeof(shared_area));
  return (double)(c.each * npairs) / t;
}

/* ---- one-way messages over a pipe ---------------------------------------- */

/* The child reads `nmsgs` messages of `size` bytes and then says "done" on a
 * second pipe; the clock runs from the first write to that reply, so the
 * time covers delivery, not just filling the pipe buffer. */
static double run_stream(long nmsgs, size_t size) {
  int data[2], ack[2];
  char *buf = (char *)malloc(size);
  char c = 'r';
  double t0, t;
  long i;
  pid_t pid;
  if (!buf)
    die("malloc");
  memset(buf, 'x', size);
  if (pipe(data) != 0 || pipe(ack) != 0)
    die("pipe");
#ifdef F_SETPIPE_SZ
  /* With the default 64 KiB buffer a 1 MiB message takes 16 round trips
   * between writer and reader; sizing the pipe to the message is what a
   * hand-written bulk transfer on Linux would do.  Best effort: the limit
   * is /proc/sys/fs/pipe-max-size. */
  if (size > 65536)
    (void)fcntl(data[1], F_SETPIPE_SZ, (int)size);
#endif
  pid = fork();
  if (pid < 0)
    die("fork");
  if (pid == 0) {
    close(data[1]);
    close(ack[0]);
    write_full(ack[1], &c, 1);
    /* A pipe keeps no message boundaries: a read of exactly `size` bytes
     * is what turns the byte stream back into messages. */
    for (i = 0; i < nmsgs; i++)
      read_full(data[0], buf, size);
    c = 'd';
    write_full(ack[1], &c, 1);
    _exit(0);
  }
  close(data[0]);
  close(ack[1]);
  read_full(ack[0], &c, 1);
  t0 = bench_now();
  for (i = 0; i < nmsgs; i++)
    write_full(data[1], buf, size);
  read_full(ack[0], &c, 1);
  t = bench_now() - t0;
  close(data[1]);
  close(ack[0]);
  reap(pid);
  free(buf);
  return t;
}

/* ---- bulk through a bare shared-memory ring --------------------------------
 * The limit a queue for big messages can approach: 4 slots of 1 MiB in one
 * shared mapping, two counters on their own cache lines, and a spin
 * hand-off (no lock, no system call, no crash safety).  The producer
 * copies each message in; the consumer copies it out (`copies` 2) or reads
 * it in place (`copies` 1: it sums the message's words, so it still touches
 * every byte, as a consumer of the data would).  Pages are touched before
 * the clock starts.  GB/s, the clock as in run_stream. */
#define RING_SLOTS 4
#define RING_LINE 128

struct bare_ring {
  volatile uint64_t tail;
  char pad1[RING_LINE - 8];
  volatile uint64_t head;
  char pad2[RING_LINE - 8];
  volatile uint64_t ready, done, sink;
  char pad3[RING_LINE - 24];
};

/* One step of a spin wait.  After a while it yields the CPU: on a loaded
 * machine the peer may not be running, and a spinner that keeps its core
 * for a whole time slice would measure the scheduler, not the ring. */
static inline void ring_pause(unsigned *spins) {
  if (++*spins > 2000) {
    sched_yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static uint64_t ring_load(volatile uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void ring_store(volatile uint64_t *p, uint64_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Sum of the message's 64-bit words: reading every byte in place. */
static uint64_t ring_sum(const unsigned char *p, size_t n) {
  const uint64_t *w = (const uint64_t *)(const void *)p;
  uint64_t s = 0;
  size_t i;
  for (i = 0; i < n / 8; i++)
    s += w[i];
  return s;
}

static void ring_consume(struct bare_ring *r, unsigned char *slots,
                         long nmsgs, int copies) {
  unsigned char *buf = (unsigned char *)malloc(BENCH_BULK_MSG);
  uint64_t j, sum = 0;
  int64_t idx;
  if (!buf)
    _exit(3);
  memset(buf, 0, BENCH_BULK_MSG);
  ring_store(&r->ready, 1);
  for (j = 0; j < (uint64_t)nmsgs; j++) {
    const unsigned char *s = slots + (j % RING_SLOTS) * BENCH_BULK_MSG;
    unsigned spins = 0;
    while (ring_load(&r->tail) == j)
      ring_pause(&spins);
    if (copies == 2) {
      memcpy(buf, s, BENCH_BULK_MSG);
      s = buf;
    } else {
      sum += ring_sum(s, BENCH_BULK_MSG);
    }
    memcpy(&idx, s, sizeof idx);
    if (idx != (int64_t)j)
      _exit(4);
    ring_store(&r->head, j + 1);
  }
  r->sink = sum;
  ring_store(&r->done, 1);
  free(buf);
  _exit(0);
}

static double run_bare_ring(long nmsgs, int copies) {
  size_t size = sizeof(struct bare_ring) + RING_SLOTS * BENCH_BULK_MSG;
  unsigned char *mem, *slots, *buf = (unsigned char *)malloc(BENCH_BULK_MSG);
  struct bare_ring *r;
  double t0, t;
  int64_t i;
  unsigned spins = 0;
  pid_t pid;
  mem = (unsigned char *)mmap(NULL, size, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED || !buf)
    die("mmap");
  memset(mem, 0, size); /* every page present before the clock */
  memset(buf, 'x', BENCH_BULK_MSG);
  r = (struct bare_ring *)(void *)mem;
  slots = mem + sizeof(*r);
  pid = fork();
  if (pid < 0)
    die("fork");
  if (pid == 0)
    ring_consume(r, slots, nmsgs, copies);
  while (!ring_load(&r->ready))
    ring_pause(&spins);
  t0 = bench_now();
  for (i = 0; i < nmsgs; i++) {
    spins = 0;
    while ((uint64_t)i - ring_load(&r->head) >= RING_SLOTS)
      ring_pause(&spins);
    memcpy(buf, &i, sizeof i);
    memcpy(slots + (i % RING_SLOTS) * BENCH_BULK_MSG, buf, BENCH_BULK_MSG);
    ring_store(&r->tail, (uint64_t)i + 1);
  }
  spins = 0;
  while (!ring_load(&r->done))
    ring_pause(&spins);
  t = bench_now() - t0;
  reap(pid);
  munmap(mem, size);
  free(buf);
  return (double)nmsgs * (double)BENCH_BULK_MSG / t / 1e9;
}

/* One 1 MiB memcpy between two buffers that do not fit a small cache (a
 * ring of 4 sources and 4 destinations, as the ring's slots are): the
 * ceiling for any one copy of the message.  GB/s. */
static double run_memcpy(long nmsgs) {
  unsigned char *src = (unsigned char *)malloc(RING_SLOTS * BENCH_BULK_MSG);
  unsigned char *dst = (unsigned char *)malloc(RING_SLOTS * BENCH_BULK_MSG);
  double t0, t;
  long i;
  if (!src || !dst)
    die("malloc");
  memset(src, 'x', RING_SLOTS * BENCH_BULK_MSG);
  memset(dst, 0, RING_SLOTS * BENCH_BULK_MSG);
  t0 = bench_now();
  for (i = 0; i < nmsgs; i++) {
    size_t k = (size_t)(i % RING_SLOTS) * BENCH_BULK_MSG;
    memcpy(dst + k, src + ((size_t)(i + 1) % RING_SLOTS) * BENCH_BULK_MSG,
           BENCH_BULK_MSG);
    __asm__ __volatile__("" ::"r"(dst) : "memory"); /* keep every copy */
  }
  t = bench_now() - t0;
  free(src);
  free(dst);
  return (double)nmsgs * (double)BENCH_BULK_MSG / t / 1e9;
}

/* ---- one-way messages through a bare shared-memory ring ------------------
 * The limit for one producer and one consumer (issue 14, item 3): a
 * single-producer single-consumer ring of fixed 64-byte slots in a shared
 * anonymous mapping, as large as mproc's default queue ring (1 MiB).  The
 * producer owns `tail`, the consumer owns `head`, each on its own cache line
 * and each side keeps a private copy of the other's word, re-read only when
 * the ring looks full (or empty): one shared-line transfer per batch, not
 * per message.  The consumer copies every message out and checks its index,
 * as mproc_bench's consumer does.  No locks, no framing, no sleeping: a side
 * that must wait spins, yielding the CPU (the machine may have fewer free
 * cores than processes), so this is the best case a library cannot offer
 * (it must block in the kernel and survive peers that die). */
#define SPSC_SLOTS 16384u /* x 64 bytes = 1 MiB */

typedef struct spsc_ring {
  volatile uint64_t tail; /* written by the producer */
  char pad0[120];
  volatile uint64_t head; /* written by the consumer */
  char pad1[120];
  volatile uint32_t ready;
  char pad2[124];
  unsigned char slot[SPSC_SLOTS][BENCH_SMALL_MSG];
} spsc_ring;

static void spsc_consume(spsc_ring *r, long nmsgs) {
  unsigned char buf[BENCH_SMALL_MSG];
  uint64_t head = 0, tail = 0;
  int64_t idx;
  for (head = 0; head < (uint64_t)nmsgs; head++) {
    while (head == tail) {
      tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
      if (head == tail)
        sched_yield();
    }
    memcpy(buf, r->slot[head % SPSC_SLOTS], sizeof buf);
    memcpy(&idx, buf, sizeof idx);
    if (idx != (int64_t)head)
      _exit(5);
    __atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
  }
}

static double run_spsc(long nmsgs) {
  spsc_ring *r = (spsc_ring *)mmap(NULL, sizeof(spsc_ring),
                                   PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  unsigned char buf[BENCH_SMALL_MSG];
  uint64_t tail, head = 0;
  int64_t i;
  double t0, t;
  pid_t pid;
  if (r == MAP_FAILED)
    die("mmap");
  memset(buf, 'x', sizeof buf);
  if ((pid = fork()) < 0)
    die("fork");
  if (pid == 0) {
    __atomic_store_n(&r->ready, 1u, __ATOMIC_RELEASE);
    spsc_consume(r, nmsgs);
    _exit(0);
  }
  while (!__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE))
    sched_yield();
  t0 = bench_now();
  for (tail = 0; tail < (uint64_t)nmsgs; tail++) {
    while (tail - head == SPSC_SLOTS) {
      head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
      if (tail - head == SPSC_SLOTS)
        sched_yield();
    }
    i = (int64_t)tail;
    memcpy(buf, &i, sizeof i);
    memcpy(r->slot[tail % SPSC_SLOTS], buf, sizeof buf);
    __atomic_store_n(&r->tail, tail + 1, __ATOMIC_RELEASE);
  }
  /* Delivered means consumed, as the other rows' "done" reply. */
  while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) != (uint64_t)nmsgs)
    sched_yield();
  t = bench_now() - t0;
  reap(pid);
  munmap(r, sizeof(spsc_ring));
  return (double)nmsgs / t;
}

/* ---- lock ------------------------------------------------------------------ */

/* What mproc's Lock is built from: a process-shared mutex in shared memory
 * (futex based on Linux), uncontended. */
static double run_lock(long iters) {
  pthread_mutexattr_t a;
  pthread_mutex_t *m;
  double t0;
  long i;
  m = (pthread_mutex_t *)mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    die("mmap");
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(m, &a);
  for (i = 0; i < 1000; i++) {
    pthread_mutex_lock(m);
    pthread_mutex_unlock(m);
  }
  t0 = bench_now();
  for (i = 0; i < iters; i++) {
    pthread_mutex_lock(m);
    pthread_mutex_unlock(m);
  }
  t0 = bench_now() - t0;
  pthread_mutex_destroy(m);
  munmap(m, sizeof(*m));
  return t0 / (double)iters * 1e9;
}

/* ---- pool --------------------------------------------------------------------- */

/* A minimal hand-written pool doing the work of mproc's map: two forked
 * workers (WORKERS, for pool_workers), each with a task pipe and a result
 * pipe.  A task message is (start, count) and the chunk's `count` int64
 * inputs, taken from the array the parent built in the clock (as the mproc
 * side builds its inputs); the worker answers (start, count) and the
 * results.  The pipes are grown to 1 MiB where Linux allows it
 * (F_SETPIPE_SZ; /proc/sys/fs/pipe-max-size is 1 MiB by default), and the
 * parent keeps up to `depth` chunks in flight per worker, as many as fit
 * in half of the smaller pipe (so no write ever blocks), feeding a worker
 * again as its results come in; it waits in poll().  Like the mproc and
 * Python pools, the workers are started and warmed (one 1-task chunk
 * each) before the clock; the clock covers building the inputs, the map
 * and storing its results. */
#define POOL_MAX_WORKERS 64
#define POOL_PIPE_SIZE ((size_t)1 << 20)

static int64_t pool_fn(int64_t x) { return x * x; }

static void pool_worker(int task_fd, int res_fd, long chunk) {
  int64_t *buf = (int64_t *)malloc(sizeof(int64_t) * (size_t)(chunk + 2));
  int64_t i;
  if (!buf)
    _exit(1);
  for (;;) {
    read_full(task_fd, buf, 2 * sizeof(int64_t));
    if (buf[1] == 0)
      break;
    read_full(task_fd, buf + 2, sizeof(int64_t) * (size_t)buf[1]);
    for (i = 0; i < buf[1]; i++)
      buf[2 + i] = pool_fn(buf[2 + i]);
    write_full(res_fd, buf, sizeof(int64_t) * (size_t)(buf[1] + 2));
  }
  _exit(0);
}

typedef struct {
  pid_t pid;
  int task_fd, res_fd;
  long inflight; /* chunks sent, not yet answered */
  unsigned char *buf;
  size_t have, cap;
} pool_peer;

/* Sends worker w the chunk of `count` inputs at xs + start: one writev,
 * no copy. */
static void pool_send(pool_peer *w, const int64_t *xs, long start, long count) {
  int64_t hdr[2];
  struct iovec iov[2];
  size_t n = sizeof hdr + sizeof(int64_t) * (size_t)count;
  ssize_t r;
  hdr[0] = start;
  hdr[1] = count;
  iov[0].iov_base = hdr;
  iov[0].iov_len = sizeof hdr;
  iov[1].iov_base = (void *)(uintptr_t)(xs + start);
  iov[1].iov_len = n - sizeof hdr;
  do
    r = writev(w->task_fd, iov, 2);
  while (r < 0 && errno == EINTR);
  if (r != (ssize_t)n) /* below the pipe's room: all or an error */
    die("writev task");
  w->inflight++;
}

/* Consumes whole result records from w->buf into results; returns the
 * tasks they completed. */
static long pool_drain(pool_peer *w, int64_t *results) {
  long done = 0;
  size_t off = 0;
  while (w->have - off >= 2 * sizeof(int64_t)) {
    int64_t hdr[2];
    size_t need;
    memcpy(hdr, w->buf + off, sizeof hdr);
    need = sizeof(int64_t) * (size_t)(hdr[1] + 2);
    if (w->have - off < need)
      break;
    memcpy(results + hdr[0], w->buf + off + sizeof hdr,
           sizeof(int64_t) * (size_t)hdr[1]);
    done += (long)hdr[1];
    w->inflight--;
    off += need;
  }
  memmove(w->buf, w->buf + off, w->have - off);
  w->have -= off;
  return done;
}

/* Grows the pipe whose end is fd (see pool_peer); returns its size. */
static size_t pool_pipe_size(int fd) {
#if defined(F_SETPIPE_SZ) && defined(F_GETPIPE_SZ)
  int n;
  (void)fcntl(fd, F_SETPIPE_SZ, (int)POOL_PIPE_SIZE);
  n = fcntl(fd, F_GETPIPE_SZ);
  if (n > 0)
    return (size_t)n;
#else
  (void)fd;
#endif
  return 65536; /* Linux's default; others hold at least PIPE_BUF */
}

/* Forks worker w; returns once it has answered a 1-task chunk.  *room:
 * the smaller of its two pipes' sizes. */
static void pool_start(pool_peer *w, const int64_t *xs, long chunk,
                       size_t *room) {
  int tp[2], rp[2];
  int64_t back[3];
  size_t a, b;
  if (pipe(tp) != 0 || pipe(rp) != 0)
    die("pipe");
  a = pool_pipe_size(tp[1]);
  b = pool_pipe_size(rp[1]);
  *room = a < b ? a : b;
  w->pid = fork();
  if (w->pid < 0)
    die("fork");
  if (w->pid == 0) {
    close(tp[1]);
    close(rp[0]);
    pool_worker(tp[0], rp[1], chunk);
  }
  close(tp[0]);
  close(rp[1]);
  w->task_fd = tp[1];
  w->res_fd = rp[0];
  /* Room for a whole result record of the biggest chunk. */
  w->cap = sizeof(int64_t) * (size_t)(chunk + 2);
  if (w->cap < ((size_t)1 << 20))
    w->cap = (size_t)1 << 20;
  w->have = 0;
  w->buf = (unsigned char *)malloc(w->cap);
  if (!w->buf)
    die("malloc");
  pool_send(w, xs, 0, 1);
  read_full(w->res_fd, back, sizeof back);
  w->inflight = 0;
}

/* The map: feed each worker up to `depth` chunks, drain results. */
static void pool_map_raw(pool_peer *ws, int nw, const int64_t *xs,
                         int64_t *results, long ntasks, long chunk,
                         long depth) {
  long next = 0, done = 0;
  int w;
  while (done < ntasks) {
    struct pollfd pfd[POOL_MAX_WORKERS];
    for (w = 0; w < nw; w++) {
      while (ws[w].inflight < depth && next < ntasks) {
        long count = ntasks - next < chunk ? ntasks - next : chunk;
        pool_send(&ws[w], xs, next, count);
        next += count;
      }
      pfd[w].fd = ws[w].res_fd;
      pfd[w].events = POLLIN;
      pfd[w].revents = 0;
    }
    if (poll(pfd, (nfds_t)nw, -1) < 0) {
      if (errno == EINTR)
        continue;
      die("poll");
    }
    for (w = 0; w < nw; w++) {
      ssize_t r;
      if (!(pfd[w].revents & (POLLIN | POLLHUP)))
        continue;
      r = read(ws[w].res_fd, ws[w].buf + ws[w].have, ws[w].cap - ws[w].have);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        die("read result");
      ws[w].have += (size_t)r;
      done += pool_drain(&ws[w], results);
    }
  }
}

static double run_pool(long ntasks, long chunk, long nworkers) {
  pool_peer ws[POOL_MAX_WORKERS];
  const int nw = (int)nworkers;
  const size_t rec = sizeof(int64_t) * (size_t)(chunk + 2);
  size_t room = 0, r;
  long depth, i;
  int64_t *results = (int64_t *)malloc(sizeof(int64_t) * (size_t)ntasks);
  int64_t *xs = (int64_t *)malloc(sizeof(int64_t) * (size_t)ntasks);
  double t0, t;
  int w;
  if (!results || !xs)
    die("malloc");
  if (nworkers > POOL_MAX_WORKERS) {
    fprintf(stderr, "raw_bench: at most %d workers\n", POOL_MAX_WORKERS);
    exit(2);
  }
  xs[0] = 0;
  for (w = 0; w < nw; w++) {
    pool_start(&ws[w], xs, chunk, &r);
    if (w == 0 || r < room)
      room = r;
  }
  depth = (long)(room / 2 / rec);
  /* Less than one: a chunk bigger than the pipe goes alone, and the
   * worker reads all of it before it answers.  At most mproc's cap of
   * chunks queued at one worker. */
  if (depth < 1)
    depth = 1;
  if (depth > 256)
    depth = 256;
  /* Touched after the fork, as on the mproc side (see mproc_bench.c). */
  memset(xs, 0xa5, sizeof(int64_t) * (size_t)ntasks);
  t0 = bench_now();
  for (i = 0; i < ntasks; i++)
    xs[i] = i;
  pool_map_raw(ws, nw, xs, results, ntasks, chunk, depth);
  t = bench_now() - t0;
  for (i = 0; i < ntasks; i++)
    if (results[i] != pool_fn(i)) {
      fprintf(stderr, "raw_bench: pool result %ld wrong\n", i);
      exit(1);
    }
  for (w = 0; w < nw; w++) {
    int64_t stop[2] = {0, 0};
    write_full(ws[w].task_fd, stop, sizeof stop);
    close(ws[w].task_fd);
    reap(ws[w].pid);
    close(ws[w].res_fd);
    free(ws[w].buf);
  }
  free(results);
  free(xs);
  return (double)ntasks / t;
}

/* ---- main ---------------------------------------------------------------------- */

static pid_t (*parse_method(const char *s))(void) {
  if (s && strcmp(s, "fork") == 0)
    return start_fork;
  if (s && strcmp(s, "spawn") == 0)
    return start_spawn;
  fprintf(stderr, "raw_bench: method must be fork or spawn\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *cmd;
  long n;
  /* The spawn baseline's child: exit at once, through exit() like an mproc
   * child does (atexit handlers and stdio flush included). */
  if (argc > 1 && strcmp(argv[1], EXIT_NOW_FLAG) == 0)
    return 0;
  if (argc > 1 && strcmp(argv[1], BLOCK_FLAG) == 0)
    for (;;)
      pause();
  if (argc < 2) {
    fprintf(stderr, "usage: %s start_join|scale|pipe_small|queue_small|"
                    "bulk|lock|pool|live|lock_contend|queue_mpmc ARGS...\n",
            argv[0]);
    return 2;
  }
  /* A reader that died must show up as an error message, not a silent
   * SIGPIPE exit that the orchestrator could mistake for a crash. */
  signal(SIGPIPE, SIG_IGN);
  bench_touch_memory();
  cmd = argv[1];
  if (strcmp(cmd, "start_join") == 0) {
    bench_print(run_start_join(parse_method(argc > 2 ? argv[2] : NULL),
                               bench_arg(argc, argv, 3, 1000)));
  } else if (strcmp(cmd, "scale") == 0) {
    bench_print(run_scale(parse_method(argc > 2 ? argv[2] : NULL),
                          bench_arg(argc, argv, 3, 1),
                          bench_arg(argc, argv, 4, 1)));
  } else if (strcmp(cmd, "live") == 0) {
    bench_print(run_live(parse_method(argc > 2 ? argv[2] : NULL),
                         bench_arg(argc, argv, 3, 1),
                         bench_arg(argc, argv, 4, 100)));
  } else if (strcmp(cmd, "lock_contend") == 0) {
    bench_print(run_lock_contend(bench_arg(argc, argv, 2, 2),
                                 bench_arg(argc, argv, 3, 100000)));
  } else if (strcmp(cmd, "queue_mpmc") == 0) {
    bench_print(run_queue_mpmc(bench_arg(argc, argv, 2, 4),
                               bench_arg(argc, argv, 3, 100000)));
  } else if (strcmp(cmd, "pipe_small") == 0 ||
             strcmp(cmd, "queue_small") == 0) {
    /* A queue between two processes, by hand, is this same pipe loop. */
    n = bench_arg(argc, argv, 2, 100000);
    bench_print((double)n / run_stream(n, BENCH_SMALL_MSG));
  } else if (strcmp(cmd, "spsc_small") == 0) {
    bench_print(run_spsc(bench_arg(argc, argv, 2, 100000)));
  } else if (strcmp(cmd, "bulk") == 0) {
    n = bench_arg(argc, argv, 2, 1000);
    bench_print((double)n * (double)BENCH_BULK_MSG /
                run_stream(n, BENCH_BULK_MSG) / 1e9);
  } else if (strcmp(cmd, "bulk_ring") == 0) {
    bench_print(run_bare_ring(bench_arg(argc, argv, 2, 1000),
                              (int)bench_arg(argc, argv, 3, 2)));
  } else if (strcmp(cmd, "bulk_memcpy") == 0) {
    bench_print(run_memcpy(bench_arg(argc, argv, 2, 1000)));
  } else if (strcmp(cmd, "lock") == 0) {
    bench_print(run_lock(bench_arg(argc, argv, 2, 1000000)));
  } else if (strcmp(cmd, "pool") == 0) {
    bench_print(run_pool(bench_arg(argc, argv, 2, 100000),
                         bench_arg(argc, argv, 3, 1),
                         bench_arg(argc, argv, 4, 2)));
  } else {
    fprintf(stderr, "raw_bench: unknown benchmark '%s'\n", cmd);
    return 2;
  }
  return 0;
}
