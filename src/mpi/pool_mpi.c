/* A pool whose workers are MPI ranks (src/pool_mpi.h): the MPI transport,
 * built with -DMPROC_WITH_MPI=ON.
 *
 * Rank 0 runs the program; mproc_main() on ranks 1..N-1 never returns:
 * it serves pool sessions until rank 0 exits.  A session is one worker's
 * life in one pool: rank 0 sends HELLO (with the initializer's name), the
 * rank runs the pool's ordinary worker loop (src/pool_worker.c) until it
 * gets STOP, then answers BYE.  Two bridge threads per worker on each side
 * carry the pool's messages (src/pool_wire.c) between a local connection
 * and MPI, one thread per direction, each blocked in its own receive
 * (MPI_Mprobe or a connection read; no sleep-and-look loop of ours, though
 * Open MPI spins inside a blocking receive, yielding the CPU when ranks
 * outnumber cores: the README's numbers show the cost):
 *
 *   rank 0:  handler thread <-conn-> down: conn -> MPI_Send(rank, DOWN)
 *                                    up:   MPI_Mrecv(rank, UP) -> conn
 *   rank r:  down: MPI_Mrecv(0, DOWN) -> conn <-> worker loop (main thread)
 *            up:   conn -> MPI_Send(0, UP)
 *
 * The pool's messages are notes whose chunks lie in shared memory (an
 * input or result slot); the bridge that sends one over MPI copies those
 * bytes in (mproc__mpi_forward), since ranks share no memory.  Reading a
 * slot from the bridge is safe for the same reason the worker's own read
 * is: a slot is reused only after the message that used it was answered.
 *
 * Threads: several threads make MPI calls at once, so MPI_THREAD_MULTIPLE
 * is required (OpenMPI provides it); without it MPI pools are
 * MPROC_ENOTSUP.  Messages between the same two ranks with one tag arrive
 * in order (MPI's non-overtaking rule), which is what keeps HELLO, the
 * TASKS messages, STOP and FINISH in sequence.  Errors: MPI_COMM_WORLD
 * keeps MPI_ERRORS_ARE_FATAL, so a lost rank ends the whole job (see
 * include/mproc/pool.h, "MPI ranks as workers"). */
#include <float.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "pool_mpi.h"

enum { MPROC__MPI_TAG_DOWN = 0x6d70, MPROC__MPI_TAG_UP = 0x6d71 };
/* Kinds of our own, beside the pool's (src/pool.h, MPROC__PM_*). */
enum { MPROC__MPI_HELLO = 100, MPROC__MPI_FINISH = 101, MPROC__MPI_BYE = 102 };

/* Set once by mproc__mpi_main before any pool can exist, then only read. */
static struct {
  int inited, multiple, rank, size;
  int64_t pid; /* the process that initialised MPI (not a fork child) */
} g_mpi;
/* One MPI pool at a time holds the ranks. */
static mproc__mutex_t g_mpi_mu = MPROC__MUTEX_INITIALIZER;
static int g_mpi_busy;

/* One worker rank's bridge on rank 0. */
typedef struct mproc__mpi_link {
  int rank;
  const unsigned char *slots; /* the worker's input slots (src/pool.h) */
  mproc_conn *theirs;         /* the bridge's end of the handler's conn */
  mproc__thread *down, *up;
} mproc__mpi_link;

struct mproc__mpi_pool {
  int n;
  char *init;
  mproc__mpi_link *links;
};

/* ---- messages ----------------------------------------------------------- */

/* Whether this process was started by mpiexec/mpirun: OpenMPI sets
 * OMPI_COMM_WORLD_SIZE, MPICH and Intel MPI (Hydra) PMI_SIZE, PMIx-based
 * launchers PMIX_RANK.  MPROC_MPI=0 opts out (e.g. a program that calls
 * MPI_Init itself). */
static int mproc__mpi_detected(void) {
  const char *off = getenv("MPROC_MPI");
  if (off && strcmp(off, "0") == 0)
    return 0;
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") ||
         getenv("PMIX_RANK");
}

static int mproc__mpi_send(int rank, int tag, const void *m, size_t n) {
  return MPI_Send(m, (int)n, MPI_BYTE, rank, tag, MPI_COMM_WORLD) ==
                 MPI_SUCCESS
             ? MPROC_OK
             : MPROC_ESYS;
}

static int mproc__mpi_send_kind(int rank, int tag, uint32_t kind) {
  unsigned char m[4];
  mproc__wr_put32(m, kind);
  return mproc__mpi_send(rank, tag, m, sizeof m);
}

/* Receives the next message from `rank` with `tag` into *buf (grown as
 * needed); returns its kind (0 if too short for one) or a negative code.
 * MPI_Mprobe + MPI_Mrecv, so that threads receiving from other ranks
 * never take this message. */
static int mproc__mpi_recv(int rank, int tag, unsigned char **buf,
                           size_t *cap, size_t *len) {
  MPI_Message msg;
  MPI_Status st;
  mproc__rd r;
  int count = 0;
  if (MPI_Mprobe(rank, tag, MPI_COMM_WORLD, &msg, &st) != MPI_SUCCESS ||
      MPI_Get_count(&st, MPI_BYTE, &count) != MPI_SUCCESS || count < 0)
    return MPROC_ESYS;
  /* A probed message must be received: without room for it the job
   * cannot go on coherently. */
  if (mproc__pool_grow(buf, cap, (size_t)count + 4) < 0)
    MPI_Abort(MPI_COMM_WORLD, 70);
  if (MPI_Mrecv(*buf, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE) !=
      MPI_SUCCESS)
    return MPROC_ESYS;
  *len = (size_t)count;
  return (int)mproc__pw_rd_kind(&r, *buf, *len);
}

/* Sends pool message m (n bytes) to `rank`.  A message of kind `kind`
 * (TASKS down, RESULTS up) whose first `shared` bytes of chunks lie in
 * slot `slot` of `slots` (each `stride` bytes, the chunks `skip` bytes
 * into it) travels whole, with those bytes inline and `shared` 0, as the
 * pool's readers accept; any other message as it is (a damaged one is the
 * receiver's to refuse). */
static int mproc__mpi_forward(int rank, int tag, const unsigned char *m,
                              size_t n, uint32_t kind,
                              const unsigned char *slots, size_t stride,
                              size_t skip, unsigned char **buf, size_t *cap) {
  mproc__rd r;
  uint32_t slot, shared;
  size_t len;
  if (mproc__pw_rd_kind(&r, m, n) != kind ||
      mproc__pw_rd_msg_head(&r, &slot, &shared, stride - skip) < 0 ||
      shared == 0)
    return mproc__mpi_send(rank, tag, m, n);
  if (mproc__pool_grow(buf, cap, MPROC__PW_MSG_HEAD + shared + r.left) < 0)
    return MPROC_ENOMEM;
  len = mproc__pw_msg_head(*buf, kind, slot, 0);
  memcpy(*buf + len, slots + (size_t)slot * stride + skip, shared);
  len += shared;
  if (r.left)
    memcpy(*buf + len, r.p, r.left);
  len += r.left;
  return mproc__mpi_send(rank, tag, *buf, len);
}

/* ---- rank 0: the bridges -------------------------------------------------- */

/* conn -> rank: the handler's messages, until its STOP, or until it frees
 * its end (a terminated pool, a worker it gave up on): then STOP is sent
 * for it, so every session ends with exactly one STOP. */
static void mproc__mpi_link_down(void *arg) {
  mproc__mpi_link *l = (mproc__mpi_link *)arg;
  unsigned char *in = NULL, *out = NULL;
  size_t icap = 0, ocap = 0, len = 0;
  mproc__rd r;
  for (;;) {
    if (mproc__pool_recv(l->theirs, &in, &icap, &len, MPROC_FOREVER) < 0)
      break;
    if (mproc__pw_rd_kind(&r, in, len) == MPROC__PM_STOP)
      break;
    if (mproc__mpi_forward(l->rank, MPROC__MPI_TAG_DOWN, in, len,
                           MPROC__PM_TASKS, l->slots, MPROC__POOL_IN_SLOT, 0,
                           &out, &ocap) < 0)
      break;
  }
  (void)mproc__mpi_send_kind(l->rank, MPROC__MPI_TAG_DOWN, MPROC__PM_STOP);
  free(in);
  free(out);
}

/* rank -> conn: READY, INITFAIL and RESULTS, until the rank's BYE.  Then
 * the handler is sent a STOP, which no worker sends: it reads it as a
 * damaged stream and ends the worker (src/pool.c: a worker without a
 * process ends with its stream).  Sends fail harmlessly once the handler
 * has let go of its end; the receives go on until BYE all the same. */
static void mproc__mpi_link_up(void *arg) {
  mproc__mpi_link *l = (mproc__mpi_link *)arg;
  unsigned char *buf = NULL;
  size_t cap = 0, len = 0;
  unsigned char stop[4];
  int kind;
  for (;;) {
    kind = mproc__mpi_recv(l->rank, MPROC__MPI_TAG_UP, &buf, &cap, &len);
    if (kind < 0 || kind == MPROC__MPI_BYE)
      break;
    (void)mproc_conn_send_bytes(l->theirs, buf, len);
  }
  mproc__wr_put32(stop, MPROC__PM_STOP);
  (void)mproc_conn_send_bytes(l->theirs, stop, sizeof stop);
  free(buf);
}

/* Waits for a session's bridges to end (the rank has said BYE) and frees
 * what they used. */
static void mproc__mpi_link_end(mproc__mpi_link *l) {
  mproc__thread_join(l->down);
  mproc__thread_join(l->up);
  l->down = l->up = NULL;
  l->theirs = mproc_conn_free(l->theirs);
}

/* HELLO: the kind, then the initializer's name (possibly empty). */
static int mproc__mpi_hello(const mproc__mpi_pool *m, int rank) {
  size_t n = m->init ? strlen(m->init) : 0;
  unsigned char *h = (unsigned char *)malloc(4 + n);
  int rc;
  if (!h)
    return MPROC_ENOMEM;
  mproc__wr_put32(h, MPROC__MPI_HELLO);
  if (n)
    memcpy(h + 4, m->init, n);
  rc = mproc__mpi_send(rank, MPROC__MPI_TAG_DOWN, h, 4 + n);
  free(h);
  return rc;
}

int mproc__mpi_pool_attach(mproc__mpi_pool *m, int i, mproc_conn **conn) {
  mproc__mpi_link *l = &m->links[i];
  mproc_conn *mine = NULL;
  int rc;
  mproc__mpi_link_end(l); /* the last session of this worker, if any */
  rc = mproc_pipe(&mine, &l->theirs, 1);
  if (rc < 0)
    goto finish;
  rc = mproc__mpi_hello(m, l->rank);
  if (rc < 0)
    goto finish;
  /* From here the rank is in a session: it must get a STOP, and its BYE
   * must be received, whatever fails next. */
  rc = mproc__thread_start(&l->up, mproc__mpi_link_up, l);
  if (rc < 0) {
    (void)mproc__mpi_send_kind(l->rank, MPROC__MPI_TAG_DOWN, MPROC__PM_STOP);
    mproc__mpi_link_up(l); /* here: until its BYE */
    goto finish;
  }
  rc = mproc__thread_start(&l->down, mproc__mpi_link_down, l);
  if (rc < 0) {
    (void)mproc__mpi_send_kind(l->rank, MPROC__MPI_TAG_DOWN, MPROC__PM_STOP);
    goto finish;
  }
  *conn = mine;
  mine = NULL;
finish:
  mproc_conn_free(mine);
  return rc;
}

/* Gives the ranks back (the claim of mproc__mpi_pool_open). */
static void mproc__mpi_release(void) {
  mproc__mutex_lock(&g_mpi_mu);
  g_mpi_busy = 0;
  mproc__mutex_unlock(&g_mpi_mu);
}

static void mproc__mpi_pool_free(mproc__mpi_pool *m) {
  if (!m)
    return;
  free(m->links);
  free(m->init);
  free(m);
}

int mproc__mpi_pool_open(mproc__mpi_pool **out, int n, const char *init,
                         const unsigned char *areas) {
  mproc__mpi_pool *m = NULL;
  int rc = MPROC_ENOMEM, i;
  mproc__mutex_lock(&g_mpi_mu);
  if (g_mpi_busy) {
    mproc__mutex_unlock(&g_mpi_mu);
    return MPROC_EBUSY;
  }
  g_mpi_busy = 1;
  mproc__mutex_unlock(&g_mpi_mu);
  m = (mproc__mpi_pool *)calloc(1, sizeof *m);
  if (!m)
    goto finish;
  m->n = n;
  m->links = (mproc__mpi_link *)calloc((size_t)n, sizeof *m->links);
  if (!m->links)
    goto finish;
  if (init && !(m->init = mproc__strdup(init)))
    goto finish;
  for (i = 0; i < n; i++) {
    m->links[i].rank = i + 1;
    m->links[i].slots =
        areas + (size_t)i * MPROC__POOL_WORKER_SHM + MPROC__POOL_AREA;
  }
  *out = m;
  rc = MPROC_OK;
finish:
  if (rc < 0) {
    mproc__mpi_pool_free(m);
    mproc__mpi_release();
  }
  return rc;
}

void mproc__mpi_pool_close(mproc__mpi_pool *m) {
  int i;
  if (!m)
    return; /* not an MPI pool, or its open failed: no claim to give back */
  for (i = 0; i < m->n; i++)
    mproc__mpi_link_end(&m->links[i]);
  mproc__mpi_pool_free(m);
  mproc__mpi_release();
}

int mproc__mpi_pool_check(const mproc_pool_options *opts, int *n) {
  int workers = mproc_pool_mpi_workers();
  double t = opts->task_timeout;
  if (opts->backend != MPROC_POOL_MPI || opts->processes < 0 || t != t ||
      t < 0)
    return MPROC_EINVAL;
  if (workers < 0)
    return workers;
  /* A rank cannot be killed and replaced, nor given handles. */
  if (workers == 0 || opts->initargs || opts->maxtasksperchild ||
      (t > 0 && t <= DBL_MAX))
    return MPROC_ENOTSUP;
  if (opts->processes > workers)
    return MPROC_EINVAL;
  *n = opts->processes ? opts->processes : workers;
  return MPROC_OK;
}

int mproc_pool_mpi_workers(void) {
  if (!mproc_current_process())
    return MPROC_ENOINIT;
  if (!g_mpi.inited)
    return 0;
  return g_mpi.multiple ? g_mpi.size - 1 : MPROC_ENOTSUP;
}

/* ---- ranks 1..N-1: serving sessions -------------------------------------- */

/* A worker rank's bridges: its end of the worker loop's connection, and
 * the worker's result area (RESULTS notes point into it). */
typedef struct mproc__mpi_rank {
  mproc_conn *conn;
  const unsigned char *area;
  int finish; /* rank 0 said FINISH instead of STOP: leave after this */
} mproc__mpi_rank;

/* rank 0 -> the worker loop, until STOP (passed on: it ends the loop).
 * Sends fail harmlessly once the loop has ended (its initializer failed).
 * FINISH (rank 0 exits: its exit handler always stops a pool's sessions
 * first, so only if that failed) ends the session too, and then the rank. */
static void mproc__mpi_rank_down(void *arg) {
  mproc__mpi_rank *k = (mproc__mpi_rank *)arg;
  unsigned char *buf = NULL;
  size_t cap = 0, len = 0;
  int kind;
  do {
    kind = mproc__mpi_recv(0, MPROC__MPI_TAG_DOWN, &buf, &cap, &len);
    if (kind >= 0)
      (void)mproc_conn_send_bytes(k->conn, buf, len);
  } while (kind >= 0 && kind != MPROC__PM_STOP && kind != MPROC__MPI_FINISH);
  k->finish = kind != MPROC__PM_STOP;
  free(buf);
}

/* The worker loop -> rank 0, until the loop's end closes its connection;
 * then BYE. */
static void mproc__mpi_rank_up(void *arg) {
  mproc__mpi_rank *k = (mproc__mpi_rank *)arg;
  unsigned char *in = NULL, *out = NULL;
  size_t icap = 0, ocap = 0, len = 0;
  while (mproc__pool_recv(k->conn, &in, &icap, &len, MPROC_FOREVER) == 0)
    if (mproc__mpi_forward(0, MPROC__MPI_TAG_UP, in, len, MPROC__PM_RESULTS,
                           k->area, MPROC__POOL_RES_SLOT, MPROC__PW_MSG_HEAD,
                           &out, &ocap) < 0)
      break;
  (void)mproc__mpi_send_kind(0, MPROC__MPI_TAG_UP, MPROC__MPI_BYE);
  free(in);
  free(out);
}

/* The worker loop's arguments, as src/pool.c gives a local worker: its
 * connection, a progress slot and a result area of its own (slot 0). */
static int mproc__mpi_worker_args(mproc_args *args, mproc_conn *conn,
                                  mproc_array *prog, mproc_array *area,
                                  const char *init) {
  int rc = mproc_args_add_object(args, "mproc.pool.conn", conn);
  if (rc < 0)
    return rc;
  rc = mproc_args_add_object(args, "mproc.pool.progress", prog);
  if (rc < 0)
    return rc;
  rc = mproc_args_add_object(args, "mproc.pool.results", area);
  if (rc < 0)
    return rc;
  rc = mproc_args_add_int(args, "mproc.pool.slot", 0);
  if (rc < 0)
    return rc;
  return mproc_args_add_str(args, "mproc.pool.init", init);
}

/* Runs the worker loop with its bridges; the loop's end closes its
 * connection, which ends the up bridge (BYE); the down bridge ends with
 * rank 0's STOP. */
static void mproc__mpi_run_worker(mproc__mpi_rank *k, mproc_conn *wconn,
                                  mproc_args *args) {
  mproc__thread *down = NULL, *up = NULL;
  /* Without both bridges the loop is not run: rank 0 sees the worker end
   * before READY, a start failure it retries with back-off. */
  if (mproc__thread_start(&down, mproc__mpi_rank_down, k) == 0 &&
      mproc__thread_start(&up, mproc__mpi_rank_up, k) == 0)
    (void)mproc__pool_worker_entry.fn(args);
  mproc_conn_free(wconn);
  if (!up) /* rank 0 waits for a BYE in any case */
    (void)mproc__mpi_send_kind(0, MPROC__MPI_TAG_UP, MPROC__MPI_BYE);
  mproc__thread_join(up);
  mproc__thread_join(down); /* until rank 0's STOP */
}

/* One session (HELLO `h`, n bytes: the initializer's name follows).
 * Negative when it could not be set up (then no BYE was sent); 1 when the
 * rank must leave (FINISH). */
static int mproc__mpi_session(const unsigned char *h, size_t n) {
  mproc__mpi_rank k;
  mproc_conn *wconn = NULL;
  mproc_array *prog = NULL, *area = NULL;
  mproc_args *args = NULL;
  char init[MPROC__PW_NAME_MAX + 1];
  int rc;
  memset(&k, 0, sizeof k);
  n = n - 4 > MPROC__PW_NAME_MAX ? MPROC__PW_NAME_MAX : n - 4;
  memcpy(init, h + 4, n);
  init[n] = 0;
  rc = mproc_pipe(&k.conn, &wconn, 1);
  if (rc < 0)
    goto finish;
  rc = mproc_array_create(&prog, MPROC_UINT64, MPROC__PROG_STRIDE, 0);
  if (rc < 0)
    goto finish;
  rc = mproc_array_create(&area, MPROC_UINT8, MPROC__POOL_WORKER_SHM, 0);
  if (rc < 0)
    goto finish;
  k.area = (const unsigned char *)mproc_array_ptr(area);
  rc = mproc_args_create(&args);
  if (rc < 0)
    goto finish;
  rc = mproc__mpi_worker_args(args, wconn, prog, area, init);
  if (rc < 0)
    goto finish;
  mproc__mpi_run_worker(&k, wconn, args);
  wconn = NULL;
  rc = k.finish;
finish:
  mproc_args_free(args);
  mproc_conn_free(wconn);
  mproc_conn_free(k.conn);
  mproc_array_free(prog);
  mproc_array_free(area);
  return rc;
}

/* Serves sessions until rank 0's FINISH, then leaves the process.  A
 * session that cannot be set up here is ended at once (rank 0 sees the
 * worker end before READY: a start failure, retried with back-off). */
static void mproc__mpi_serve(void) {
  unsigned char *buf = NULL;
  size_t cap = 0, len = 0;
  int kind, rc;
  for (;;) {
    kind = mproc__mpi_recv(0, MPROC__MPI_TAG_DOWN, &buf, &cap, &len);
    if (kind < 0 || kind == MPROC__MPI_FINISH)
      break;
    if (kind != MPROC__MPI_HELLO)
      continue; /* a STOP of a session that failed to start: done */
    rc = mproc__mpi_session(buf, len);
    if (rc < 0) /* not started: rank 0 still sends STOP, and waits for BYE */
      (void)mproc__mpi_send_kind(0, MPROC__MPI_TAG_UP, MPROC__MPI_BYE);
    if (rc == 1)
      break;
  }
  free(buf);
  MPI_Finalize();
  exit(0);
}

/* Rank 0 at exit: releases the worker ranks (after the pools' own exit
 * handler, registered later, has ended every pool), then MPI. */
static void mproc__mpi_atexit(void) {
  int r;
  if (mproc__plat_getpid() != g_mpi.pid)
    return; /* a fork child of rank 0 is no rank */
  for (r = 1; r < g_mpi.size; r++)
    (void)mproc__mpi_send_kind(r, MPROC__MPI_TAG_DOWN, MPROC__MPI_FINISH);
  MPI_Finalize();
}

int mproc__mpi_main(void) {
  int provided = 0, already = 0;
  if (!mproc__mpi_detected())
    return MPROC_OK;
  /* A program that initialised MPI itself runs its own ranks: mproc stays
   * out of the way (no MPI pools; MPROC_MPI=0 says the same). */
  if (MPI_Initialized(&already) != MPI_SUCCESS || already)
    return MPROC_OK;
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) !=
      MPI_SUCCESS)
    return MPROC_ESYS;
  g_mpi.inited = 1;
  g_mpi.multiple = provided >= MPI_THREAD_MULTIPLE;
  g_mpi.pid = mproc__plat_getpid();
  MPI_Comm_rank(MPI_COMM_WORLD, &g_mpi.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_mpi.size);
  if (g_mpi.rank > 0)
    mproc__mpi_serve(); /* no return */
  atexit(mproc__mpi_atexit);
  return MPROC_OK;
}
