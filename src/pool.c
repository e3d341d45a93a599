/* The process pool (include/mproc/pool.h).
 *
 * One duplex connection per worker carries batches of chunks down and
 * batches of results up; a handler thread in the parent waits (mproc_wait)
 * on every worker's connection and process plus a wake-up pipe, reads
 * results, feeds chunks and replaces workers.  The parent decides which
 * worker gets which chunk, so when a worker dies it knows exactly what that
 * worker held.  What it had done is read from shared memory: each worker
 * has a progress slot, where it stores the chunk and item it is about to
 * run, and a result area, in which it builds its RESULTS message and
 * after each task stores how much of it is complete (plain stores, no
 * system call).  When it dies, the finished results are taken from its
 * area, the running task fails with MPROC_EWORKER, and the tasks after it
 * go back to the queue.  A worker whose batch results grow past half its
 * result slot sends them early (a copy), at a chunk's end, so the slot
 * does not overflow.
 *
 * Where the bytes go (a map of a million small items is bound by this): a
 * message's chunks are written once into shared memory, the inputs by the
 * parent into one of the worker's input slots, the results by the worker
 * into the matching result slot, and the pipe carries a 12-byte note per
 * message each way (src/pool.h says when a slot may be reused).  Inputs
 * of one size travel without a length each and results in runs, so the
 * parent stores a chunk's results with one copy (mproc__settle_run) and
 * does no work per item.
 *
 * Why sends from the handler thread cannot deadlock with a worker that is
 * blocked writing its results to us: at most MPROC__POOL_NSLOTS messages
 * are in flight per worker.  A message is a 12-byte note, except one whose
 * first chunk is too big for an input slot: that one travels inline,
 * alone, and only as the first in flight, to a worker that has answered
 * everything and so reads all of it before it writes anything.  A note
 * then fits in the pipe (one page is the least a pipe ever holds: Linux
 * shrinks new pipes to one page once a user passes pipe-user-pages-soft,
 * pipe(7)) as soon as the worker has read what is before it, which it does
 * before it writes its results; a worker with every slot in flight gets
 * nothing until it answers a message.
 *
 * This file is the parent's side: the handler thread (scheduler and worker
 * replacement), the results and the public calls.  The worker's side is in
 * src/pool_worker.c; the messages are described, written and read in
 * src/pool_wire.c.
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "ipc.h"
#include "pool.h"
#include "pool_mpi.h"

#define MPROC__POOL_MAX_INFLIGHT 256 /* chunks queued at one worker */
#define MPROC__POOL_MSG_CHUNKS 64    /* chunks per message */
/* Back-off between attempts to start a worker after failed ones (see
 * mproc__start_failed): doubles from MIN per failure in a row, up to MAX. */
#define MPROC__POOL_BACKOFF_MIN 0.005
#define MPROC__POOL_BACKOFF_MAX 1.0
/* Room for the message and chunk headers and a task name of up to 4096. */
#define MPROC__POOL_CHUNK_MAX (MPROC_CONN_MSG_MAX - 8192)

enum { MPROC__POOL_RUN = 0, MPROC__POOL_CLOSED = 1, MPROC__POOL_TERMINATE = 2 };

typedef struct mproc__chunk {
  uint64_t id;
  struct mproc_async_result *job;
  size_t first, count;
  size_t off, len; /* encoded items in job->payload */
  uint32_t size;   /* every input's size, or MPROC__PW_VAR */
  /* Of borrowed inputs of one size lying side by side: the first. */
  const unsigned char *contig;
  int last;        /* last chunk of the message it was sent in */
  /* A run of its results stored in one piece (mproc__settle_run): items
   * rfirst.. rfirst+rn-1 succeeded, each with rlen bytes from rdata. */
  const unsigned char *rdata;
  size_t rfirst, rn;
  uint32_t rlen;
  /* It outlived a worker that held it: some of its items may be settled
   * (from the dead worker's area or a damaged message), so its runs are
   * settled item by item, each checked. */
  int touched;
  struct mproc__chunk *next;
} mproc__chunk;

/* 16 bytes: a map of a million items touches this array once per item.
 * A failed task has no result bytes, so the same pointer then says how
 * the worker it was lost with ended (mproc__item_lost), or is NULL: the
 * report costs succeeded tasks nothing. */
typedef struct mproc__item {
  union {
    const unsigned char *data;  /* status 0: its result */
    const mproc_end_info *end;  /* else: its worker's end, or NULL */
  };
  uint32_t len1; /* result length + 1; 0 while the task is pending */
  int32_t status;
} mproc__item;

/* How a worker ended, kept once per job and worker death for the tasks of
 * that job lost with it (mproc_async_result_item_end). */
typedef struct mproc__end_rec {
  struct mproc__end_rec *next;
  uint64_t death; /* mproc_pool::deaths of that death */
  mproc_end_info info;
} mproc__end_rec;

/* A worker death being settled (mproc__worker_died). */
typedef struct mproc__death {
  uint64_t seq;
  mproc_end_info info;
} mproc__death;

typedef struct mproc__blk {
  struct mproc__blk *next;
  size_t used, cap;
  int big; /* from mproc__plat_big_alloc (sizeof header + cap bytes) */
  unsigned char data[1];
} mproc__blk;

/* A job's results are copied into blocks (mproc__job_copy) sized for the
 * rest of the job at the size of the results being stored: a map's
 * results are mostly of one size, so they fill one block.  Blocks of BIG
 * or more come from mproc__plat_big_alloc, in large pages where it can:
 * storing results was mostly first-touch page faults of fresh memory (a
 * map of a million 8-byte results: 2048 faults of ~2 us on a loaded
 * machine, a third of the parent's work).  A guess too large costs only
 * address space (pages never written are never taken), and MAX bounds
 * it. */
#define MPROC__BLK_MIN ((size_t)64 << 10)
#define MPROC__BLK_BIG ((size_t)1 << 20)
#define MPROC__BLK_MAX ((size_t)64 << 20)
/* A pool keeps its largest large block up to this size when the job that
 * had it is freed, for the next job's results (mproc_pool::spare): a
 * program that maps in a loop then stores results into memory it already
 * has, instead of fresh pages the OS must fault in and clear (half the
 * parent's CPU in some runs of a map of a million 8-byte results). */
#define MPROC__BLK_KEEP ((size_t)16 << 20)

struct mproc_async_result {
  mproc_pool *pool;
  int refs;
  int ready;
  /* 1 once ready, stored (atomically) after every item was settled: from
   * then on the items never change, so mproc_async_result_item reads them
   * without the pool's lock (a map's million results are read one by
   * one, and the lock cost more than the map). */
  volatile uint32_t settled;
  int any_fail;
  char *task;
  size_t n, ndone;
  mproc__item *items;
  size_t *order; /* completion order (imap_unordered only, else NULL) */
  mproc__chunk *chunks;
  size_t nchunks, cs; /* item i is in chunks[i / cs] */
  unsigned char *payload;   /* the inputs, encoded and copied */
  const mproc_bytes *src;   /* or the caller's, borrowed (blocking map) */
  mproc__blk *blocks;
  mproc__end_rec *ends; /* newest first */
  double timeout; /* seconds each task may run; 0: no limit */
  mproc_async_options cb;
  struct mproc_async_result *cb_next;
};

struct mproc_imap {
  mproc_async_result *r;
  int unordered;
  size_t cursor;
};

typedef struct mproc__worker {
  mproc_process *proc;
  mproc_conn *conn;
  int alive, ready, eof;
  /* A send to it failed (it died, or cannot be reached): it gets no more
   * messages.  Not eof: results it sent before are still to be read, and
   * its tasks settled from them rather than failed with its death. */
  int nosend;
  int init_failed;   /* it reported that its initializer failed */
  double restart_at; /* while dead: no new start before (mproc__plat_now) */
  mproc__chunk *head, *tail;
  size_t inflight;
  int msgs;
  uint32_t slot; /* the slot of its areas the next message uses */
  unsigned long sent;
  /* Task timeouts (mproc__watch_worker): PROG_TIMED was set for it; it was
   * killed because task kill_item of chunk kill_chunk overran. */
  int timed, timed_out;
  uint64_t kill_chunk, kill_item;
} mproc__worker;

/* A result mproc_pool_apply could not hand over (MPROC_ERANGE), kept for
 * the same thread's next apply of the same task and input. */
typedef struct mproc__kept {
  uint64_t tid;
  mproc_async_result *r;
  unsigned char *in;
  size_t in_len;
  size_t need; /* the result's size: only a buffer this big takes it */
  struct mproc__kept *next;
} mproc__kept;

struct mproc_pool {
  mproc__mutex_t mu;
  mproc__cond cond;
  int refs;
  int state;
  /* 0 or the error every task gets: MPROC_ESPAWN while no worker is ready
   * and the last start really failed (cleared when one gets ready again),
   * MPROC_EDAEMON or MPROC_ENOMEM for good. */
  int broken;
  int done;   /* the handler thread has ended */
  int initial_ready;
  unsigned start_fails; /* workers that failed to get ready, in a row */
  int n;
  mproc__worker *w;
  mproc_array *progress;   /* MPROC__PROG_STRIDE words per worker */
  volatile uint64_t *prog;
  mproc_array *results;    /* MPROC__POOL_WORKER_SHM bytes per worker */
  unsigned char *area;
  mproc_conn *wake_r, *wake_w;
  int wake_pending;
  /* Items were settled since the handler last woke the threads waiting in
   * mproc_imap_next (item_waiters of them): see mproc__handler. */
  int progress_made;
  int item_waiters;
  mproc__chunk *qhead, *qtail;
  size_t qlen;
  uint64_t next_id;
  unsigned long spawned;
  uint64_t deaths; /* workers that died, numbering mproc__death */
  char *init;
  mproc_args *initargs;
  unsigned long maxtasks;
  double task_timeout; /* mproc_pool_options::task_timeout; 0: none */
  mproc_start_method method;
  int64_t creator;
  mproc__thread *thread;
  unsigned char *rbuf, *sbuf;
  size_t rcap, scap;
  mproc_async_result *cb_head;
  mproc__blk *spare; /* a freed job's large block (MPROC__BLK_KEEP) */
  mproc__kept *kept; /* one per thread at most */
  struct mproc_pool *all_next;
  /* An MPROC_POOL_MPI pool's ranks (src/pool_mpi.h), else NULL: its workers
   * have no process, and a connection to a bridge instead of a child. */
  mproc__mpi_pool *mpi;
};

/* Pools of this process, terminated by the exit handler. */
static mproc__mutex_t g_pools_mu = MPROC__MUTEX_INITIALIZER;
static mproc_pool *g_pools;
static int g_atexit_set;

/* ---- small helpers ----------------------------------------------------------- */

/* Whether this process created the pool.  A fork child inherits a copy of
 * the pool without its handler thread and without its workers (they are
 * the parent's children): a call that waited would wait forever, and the
 * pool's lock may have been held by a parent thread at the fork, so the
 * child must not even take it.  Such calls are MPROC_EPERM, as for a
 * process object used outside its creator (src/process.c).  `creator` is
 * written once at create, so reading it needs no lock. */
static int mproc__pool_mine(const mproc_pool *p) {
  return p->creator == mproc__plat_getpid();
}

static char *mproc__pool_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = (char *)malloc(n);
  if (c)
    memcpy(c, s, n);
  return c;
}

/* Slot h of worker i's result area, and of its input area (src/pool.h). */
static unsigned char *mproc__res_slot(const mproc_pool *p, int i,
                                      uint32_t h) {
  return p->area + (size_t)i * MPROC__POOL_WORKER_SHM +
         (size_t)h * MPROC__POOL_RES_SLOT;
}

static unsigned char *mproc__in_slot(const mproc_pool *p, int i, uint32_t h) {
  return p->area + (size_t)i * MPROC__POOL_WORKER_SHM + MPROC__POOL_AREA +
         (size_t)h * MPROC__POOL_IN_SLOT;
}

/* ---- results (caller holds pool->mu) ---------------------------------------- */

static void mproc__blk_free(mproc__blk *b) {
  if (b->big)
    mproc__plat_big_free(b, sizeof(mproc__blk) + b->cap);
  else
    free(b);
}

/* Frees r (its pool's lock held, if it has blocks).  Its largest large
 * block within MPROC__BLK_KEEP becomes the pool's spare (see there). */
static void mproc__job_destroy(mproc_async_result *r) {
  mproc_pool *p = r->pool;
  mproc__blk *b, *nb;
  mproc__end_rec *e, *ne;
  for (b = r->blocks; b; b = nb) {
    nb = b->next;
    if (b->big && b->cap <= MPROC__BLK_KEEP &&
        (!p->spare || p->spare->cap < b->cap)) {
      if (p->spare)
        mproc__blk_free(p->spare);
      b->next = NULL;
      p->spare = b;
    } else {
      mproc__blk_free(b);
    }
  }
  for (e = r->ends; e; e = ne) {
    ne = e->next;
    free(e);
  }
  free(r->task);
  free(r->items);
  free(r->order);
  free(r->chunks);
  free(r->payload);
  free(r);
}

/* Drop one reference of r (and r's reference of the pool). */
static void mproc__job_unref(mproc_async_result *r) {
  mproc_pool *p = r->pool;
  if (--r->refs > 0)
    return;
  mproc__job_destroy(r);
  /* Only the handler thread gets here, and the user's reference of the
   * pool outlives it (mproc_pool_free joins the thread first). */
  p->refs--;
}

/* A new block of r for at least n bytes, the first results of a run of
 * `len` bytes each (see MPROC__BLK_MIN); NULL when out of memory. */
static mproc__blk *mproc__job_block(mproc_async_result *r, size_t n,
                                    size_t len) {
  size_t rest = r->n - r->ndone, cap = MPROC__BLK_MAX;
  mproc__blk *b;
  int big;
  if (len == 0 || rest <= MPROC__BLK_MAX / len)
    cap = rest * len;
  if (cap < MPROC__BLK_MIN)
    cap = MPROC__BLK_MIN;
  if (cap < n)
    cap = n;
  if (cap > SIZE_MAX - sizeof(mproc__blk))
    return NULL;
  big = cap >= MPROC__BLK_BIG;
  if (big && r->pool->spare && r->pool->spare->cap >= cap) {
    b = r->pool->spare; /* its cap may be larger: the job may use it all */
    r->pool->spare = NULL;
  } else {
    b = big ? (mproc__blk *)mproc__plat_big_alloc(sizeof(mproc__blk) + cap)
            : (mproc__blk *)malloc(sizeof(mproc__blk) + cap);
    if (!b)
      return NULL;
    b->cap = cap;
    b->big = big;
  }
  b->used = 0;
  b->next = r->blocks;
  r->blocks = b;
  return b;
}

/* Copy n bytes of results, `len` bytes each, into r's blocks. */
static const unsigned char *mproc__job_copy(mproc_async_result *r,
                                            const unsigned char *d, size_t n,
                                            size_t len) {
  mproc__blk *b = r->blocks;
  unsigned char *dst;
  if (n == 0)
    return NULL;
  if (!b || b->cap - b->used < n) {
    b = mproc__job_block(r, n, len);
    if (!b)
      return NULL;
  }
  dst = b->data + b->used;
  memcpy(dst, d, n);
  b->used += n;
  return dst;
}

/* Item i's state: r->items[i], or for an item of its chunk's stored run
 * (whose items[] entry is never touched) a copy of it in *tmp.  len1 0:
 * pending. */
static const mproc__item *mproc__job_item(const mproc_async_result *r,
                                          size_t i, mproc__item *tmp) {
  const mproc__chunk *c = &r->chunks[i / r->cs];
  if (c->rn && i >= c->rfirst && i - c->rfirst < c->rn) {
    tmp->data = c->rlen ? c->rdata + (i - c->rfirst) * c->rlen : NULL;
    tmp->len1 = c->rlen + 1;
    tmp->status = 0;
    return tmp;
  }
  return &r->items[i];
}

/* Items first.. first+n-1 of r were just settled. */
static void mproc__items_settled(mproc_pool *p, mproc_async_result *r,
                                 size_t first, size_t n) {
  size_t k;
  if (r->order)
    for (k = 0; k < n; k++)
      r->order[r->ndone + k] = first + k;
  r->ndone += n;
  p->progress_made = 1;
  if (r->ndone == r->n) {
    r->ready = 1;
    mproc__store32(&r->settled, 1u);
    free(r->payload);
    r->payload = NULL;
    r->src = NULL; /* a blocking map's caller may free its inputs now */
    /* The pool's reference goes after the callbacks ran. */
    r->cb_next = p->cb_head;
    p->cb_head = r;
  }
}

/* Settle item i of r; returns 0 if it was settled already, else 1. */
static int mproc__item_done(mproc_pool *p, mproc_async_result *r, size_t i,
                            int status, const unsigned char *d, size_t n) {
  mproc__item tmp, *it = &r->items[i];
  if (mproc__job_item(r, i, &tmp)->len1)
    return 0;
  it->len1 = 1;
  it->status = status;
  if (status == 0 && n) {
    it->data = mproc__job_copy(r, d, n, n);
    if (!it->data)
      it->status = MPROC_ENOMEM;
    else
      it->len1 = (uint32_t)n + 1;
  }
  if (it->status != 0)
    r->any_fail = 1;
  mproc__items_settled(p, r, i, 1);
  return 1;
}

/* Item i of r was lost with a worker (d: how it ended; NULL: no report):
 * it fails with `code` and points at d's record in r, made at the first
 * of r's tasks lost in that death, so one death costs a job one record
 * however many of its tasks it took.  No memory for it loses the report,
 * never the status. */
static void mproc__item_lost(mproc_pool *p, mproc_async_result *r, size_t i,
                             int code, const mproc__death *d) {
  mproc__end_rec *e = r->ends;
  if (!mproc__item_done(p, r, i, code, NULL, 0) || !d)
    return;
  if (!e || e->death != d->seq) {
    e = (mproc__end_rec *)malloc(sizeof *e);
    if (!e)
      return;
    e->death = d->seq;
    e->info = d->info;
    e->next = r->ends;
    r->ends = e;
  }
  r->items[i].end = &e->info;
}

/* The status of r's first failed item, 0 if none failed (r is ready);
 * its index in *at (may be NULL). */
static int mproc__job_first_failure(const mproc_async_result *r, size_t *at) {
  size_t i;
  mproc__item tmp;
  for (i = 0; r->any_fail && i < r->n; i++) {
    int st = mproc__job_item(r, i, &tmp)->status;
    if (st != 0) {
      if (at)
        *at = i;
      return st;
    }
  }
  return MPROC_OK;
}

/* Settle a run of results for items k.. of chunk c.  The first run of two
 * or more successes of a chunk is stored in one piece with one copy, and
 * items[] is not touched for it: a map of small results then costs the
 * parent one copy per chunk instead of work per item.  That is only for a
 * chunk none of whose items can be settled yet (not `touched`). */
static void mproc__settle_run(mproc_pool *p, mproc__chunk *c, size_t k,
                              const mproc__pw_run *run) {
  mproc_async_result *r = c->job;
  size_t j, bytes = (size_t)run->n * run->len;
  if (run->status == 0 && run->n >= 2 && c->rn == 0 && !c->touched) {
    const unsigned char *d = mproc__job_copy(r, run->data, bytes, run->len);
    if (d || bytes == 0) {
      c->rdata = d;
      c->rfirst = c->first + k;
      c->rn = run->n;
      c->rlen = run->len;
      mproc__items_settled(p, r, c->rfirst, run->n);
      return;
    }
  }
  for (j = 0; j < run->n; j++)
    mproc__item_done(p, r, c->first + k + j, run->status,
                     run->data ? run->data + j * run->len : NULL, run->len);
}

/* Fail chunk c's items not settled yet with `code` (d: as for
 * mproc__item_lost). */
static void mproc__chunk_fail(mproc_pool *p, mproc__chunk *c, int code,
                              const mproc__death *d) {
  size_t k;
  for (k = 0; k < c->count; k++)
    mproc__item_lost(p, c->job, c->first + k, code, d);
}

/* Fail every queued and in-flight chunk. */
static void mproc__fail_all(mproc_pool *p, int code) {
  mproc__chunk *c;
  int i;
  while ((c = p->qhead) != NULL) {
    p->qhead = c->next;
    mproc__chunk_fail(p, c, code, NULL);
  }
  p->qtail = NULL;
  p->qlen = 0;
  for (i = 0; i < p->n; i++) {
    mproc__worker *w = &p->w[i];
    while ((c = w->head) != NULL) {
      w->head = c->next;
      mproc__chunk_fail(p, c, code, NULL);
    }
    w->tail = NULL;
    w->inflight = 0;
    w->msgs = 0;
  }
}

/* Callbacks run without the lock; then the pool's references go. */
static void mproc__run_callbacks(mproc_pool *p) {
  while (p->cb_head) {
    mproc_async_result *r = p->cb_head, *next;
    p->cb_head = NULL;
    mproc__cond_broadcast(&p->cond);
    mproc__mutex_unlock(&p->mu);
    for (next = r; next; next = next->cb_next) {
      mproc_async_callback f =
          next->any_fail ? next->cb.error_callback : next->cb.callback;
      if (f)
        f(next, next->cb.ctx);
    }
    mproc__mutex_lock(&p->mu);
    while (r) {
      next = r->cb_next;
      mproc__job_unref(r);
      r = next;
    }
  }
}

/* ---- workers (handler side, lock held) ----------------------------------------- */

/* Fills `args` with worker i's arguments: the initializer's, then the
 * worker's end of its pipe, the shared areas and its settings. */
static int mproc__worker_args(mproc_pool *p, int i, mproc_conn *theirs,
                              mproc_args *args) {
  int rc = mproc__args_append(args, p->initargs);
  if (rc < 0)
    return rc;
  rc = mproc_args_add_object(args, "mproc.pool.conn", theirs);
  if (rc < 0)
    return rc;
  rc = mproc_args_add_object(args, "mproc.pool.progress", p->progress);
  if (rc < 0)
    return rc;
  rc = mproc_args_add_object(args, "mproc.pool.results", p->results);
  if (rc < 0)
    return rc;
  rc = mproc_args_add_int(args, "mproc.pool.slot", i);
  if (rc < 0)
    return rc;
  rc = mproc_args_add_int(args, "mproc.pool.maxtasks", (int64_t)p->maxtasks);
  if (rc < 0)
    return rc;
  return mproc_args_add_str(args, "mproc.pool.init", p->init ? p->init : "");
}

static int mproc__worker_start(mproc_pool *p, int i) {
  mproc__worker *w = &p->w[i];
  mproc_conn *mine = NULL, *theirs = NULL;
  mproc_args *args = NULL;
  mproc_process_options o;
  char name[64];
  int rc;
  memset(w, 0, sizeof *w);
  mproc__store64(&p->prog[(size_t)i * MPROC__PROG_STRIDE + MPROC__PROG_CHUNK],
                 0);
  mproc__store64(&p->prog[(size_t)i * MPROC__PROG_STRIDE + MPROC__PROG_KEPT],
                 0);
  mproc__store64(&p->prog[(size_t)i * MPROC__PROG_STRIDE + MPROC__PROG_START],
                 0);
  mproc__store64(&p->prog[(size_t)i * MPROC__PROG_STRIDE + MPROC__PROG_TIMED],
                 0);
  if (p->mpi) {
    rc = mproc__mpi_pool_attach(p->mpi, i, &w->conn);
    w->alive = rc == MPROC_OK;
    return rc;
  }
  /* Named first: an attempt that fails still uses up its number. */
  memset(&o, 0, sizeof o);
  snprintf(name, sizeof name, "PoolWorker-%lu", ++p->spawned);
  o.name = name;
  o.daemon = MPROC_DAEMON_YES;
  o.start_method = p->method;
  rc = mproc_pipe(&mine, &theirs, 1);
  if (rc < 0)
    goto finish;
  rc = mproc_args_create(&args);
  if (rc < 0)
    goto finish;
  rc = mproc__worker_args(p, i, theirs, args);
  if (rc < 0)
    goto finish;
  rc = mproc__pool_worker_create(&w->proc, args, &o);
  if (rc < 0)
    goto finish;
  rc = mproc_process_start(w->proc);
  if (rc < 0)
    goto finish;
  w->conn = mine;
  mine = NULL;
  w->alive = 1;
  rc = MPROC_OK;
finish:
  mproc_args_free(args);
  /* Our copy of the worker's end goes now, so only the worker holds it. */
  mproc_conn_free(theirs);
  if (rc < 0) {
    mproc_conn_free(mine);
    w->proc = mproc_process_free(w->proc);
  }
  return rc;
}

/* Join (or kill after `timeout`) and release worker w; returns its exit
 * code (0 if it has none). */
static int mproc__worker_reap(mproc__worker *w, double timeout) {
  int code = 0;
  if (mproc_process_join(w->proc, timeout) == MPROC_ETIMEDOUT) {
    (void)mproc_process_kill(w->proc);
    (void)mproc_process_join(w->proc, MPROC_FOREVER);
  }
  (void)mproc_process_exitcode(w->proc, &code);
  w->proc = mproc_process_free(w->proc);
  w->conn = mproc_conn_free(w->conn);
  w->alive = w->ready = w->eof = w->nosend = 0;
  return code;
}

/* Whether a worker that ended with this exit code was ended from outside
 * (SIGKILL, SIGTERM, SIGINT, SIGHUP; on Windows mproc's kill, terminate and
 * interrupt report -9, -15 and -2 too), rather than failing by itself. */
static int mproc__killed_code(int code) {
  return code == -9 || code == -15 || code == -2 || code == -1;
}

static void mproc__queue_front(mproc_pool *p, mproc__chunk *first,
                               mproc__chunk *last, size_t k) {
  if (!first)
    return;
  last->next = p->qhead;
  p->qhead = first;
  if (!p->qtail)
    p->qtail = last;
  p->qlen += k;
}

static int mproc__any_ready(const mproc_pool *p) {
  int i;
  for (i = 0; i < p->n; i++)
    if (p->w[i].alive && p->w[i].ready)
      return 1;
  return 0;
}

/* Worker slot i did not get ready: it could not be started, or its
 * initializer failed or crashed (`real`), or it was killed before it
 * reported ready, which is no failure of the pool (random kills must not
 * break a pool).  Either way the slot is retried after a back-off that doubles
 * with each failure in a row, so the handler neither spins on a failing
 * start nor gives up.  A real failure is reported as MPROC_ESPAWN when it
 * leaves no ready worker (and always during mproc_pool_create). */
static void mproc__start_failed(mproc_pool *p, int i, int real) {
  unsigned f = p->start_fails < 16 ? p->start_fails : 16;
  double delay = MPROC__POOL_BACKOFF_MIN * (double)(1u << f);
  p->start_fails++;
  if (delay > MPROC__POOL_BACKOFF_MAX)
    delay = MPROC__POOL_BACKOFF_MAX;
  p->w[i].restart_at = mproc__plat_now() + delay;
  if (real && !p->broken && (!p->initial_ready || !mproc__any_ready(p)))
    p->broken = MPROC_ESPAWN;
}

/* The results dead worker i left in its result area (the RESULTS message
 * it was building, complete up to PROG_KEPT bytes): settle those of chunks
 * it still held, and note in each chunk how many it kept.  Records of
 * chunks it no longer holds (a batch already sent) are skipped.  The area
 * is untrusted: anything that does not parse ends the reading. */
static void mproc__area_settle(mproc_pool *p, int i) {
  mproc__worker *w = &p->w[i];
  volatile uint64_t *prog = p->prog + (size_t)i * MPROC__PROG_STRIDE;
  uint64_t n = prog[MPROC__PROG_KEPT], slot = prog[MPROC__PROG_SLOT];
  uint32_t h, shared;
  mproc__chunk *c;
  mproc__rd r;
  if (n > MPROC__POOL_RES_SLOT || slot >= MPROC__POOL_NSLOTS ||
      mproc__pw_rd_kind(&r, mproc__res_slot(p, i, (uint32_t)slot),
                        (size_t)n) != MPROC__PM_RESULTS ||
      mproc__pw_rd_msg_head(&r, &h, &shared, MPROC__POOL_RES_SLOT) < 0)
    return;
  while (r.left > 0) {
    uint64_t id;
    uint32_t nitems, k = 0;
    if (mproc__pw_rd_result_head(&r, &id, &nitems) < 0)
      return;
    for (c = w->head; c && c->id != id; c = c->next)
      ;
    if (c && nitems != c->count)
      return;
    while (k < nitems && r.left > 0) { /* may end inside a chunk */
      mproc__pw_run run;
      if (mproc__pw_rd_run(&r, nitems - k, 1, &run) < 0)
        return;
      if (c && run.n)
        mproc__settle_run(p, c, k, &run);
      k += run.n;
    }
  }
}

/* Drop chunk c's first k items (settled) and give the rest a new id, so
 * that they can be queued again. */
static void mproc__chunk_trim(mproc_pool *p, mproc__chunk *c, size_t k) {
  mproc_async_result *r = c->job;
  size_t j, skip = c->size == MPROC__PW_VAR ? 0 : k * c->size;
  for (j = c->first; c->size == MPROC__PW_VAR && j < c->first + k; j++) {
    const unsigned char *d;
    uint32_t len = 0;
    mproc__rd rd;
    if (!r->src) { /* our own encoding of the inputs: valid */
      mproc__rd_init(&rd, r->payload + c->off + skip, c->len - skip);
      (void)mproc__pw_rd_input(&rd, MPROC__PW_VAR, &d, &len);
    }
    skip += 4 + (r->src ? r->src[j].len : len);
  }
  c->first += k;
  c->count -= k;
  if (c->contig)
    c->contig += skip;
  c->off += skip;
  c->len -= skip;
  c->id = p->next_id++;
}

/* A worker died while running task `item` of chunk `running` (of its list).
 * The task fails with `code` (MPROC_EWORKER, or MPROC_ETIMEDOUT for the
 * task whose timeout killed it; 0: it had not started, a timeout killed
 * the worker as it passed from the overrunning task to this one, which
 * then goes back to the queue); finished tasks whose results it kept only
 * in private memory (mproc__result_reserve) fail with MPROC_EWORKER.
 * Every task failed here carries d, the worker's end.  Returns the chunks that never started, the rest of `running` first
 * (NULL: none). */
static mproc__chunk *mproc__chunks_lost(mproc_pool *p, mproc__worker *w,
                                        mproc__chunk *running, uint64_t item,
                                        int code, const mproc__death *d) {
  mproc__chunk *c;
  size_t k, ran;
  while ((c = w->head) != running) {
    w->head = c->next;
    mproc__chunk_fail(p, c, MPROC_EWORKER, d); /* settled items stay */
  }
  if (item >= running->count) { /* damaged: the whole chunk is lost */
    mproc__chunk_fail(p, running, MPROC_EWORKER, d);
    return running->next;
  }
  /* Items before `item` finished (settled, unless their results were
   * only in private memory); `item` died, unless it got its result out
   * first; the ones after it never started. */
  ran = (size_t)item + (code != 0);
  for (k = 0; k < ran; k++)
    mproc__item_lost(p, running->job, running->first + k,
                     k == (size_t)item ? code : MPROC_EWORKER, d);
  if (ran == running->count)
    return running->next;
  mproc__chunk_trim(p, running, ran);
  return running; /* still linked to the chunks after it */
}

/* A worker died: settle what it held, free it.  Only the task it was
 * running fails: every finished result is in its result area (or was sent),
 * and the tasks after it go back to the queue for another worker. */
static void mproc__worker_died(mproc_pool *p, int i) {
  mproc__worker *w = &p->w[i];
  volatile uint64_t *prog = p->prog + (size_t)i * MPROC__PROG_STRIDE;
  uint64_t running = mproc__load64(&prog[MPROC__PROG_CHUNK]);
  uint64_t item = prog[MPROC__PROG_ITEM];
  mproc__chunk *c, *found = NULL, *rest;
  mproc__death d;
  int code = MPROC_EWORKER, have_end;
  /* Its sentinel fired, so this reaps at once; what it says goes with
   * every task it takes down (mproc_async_result_item_end). */
  d.seq = ++p->deaths;
  have_end = mproc_process_end(w->proc, &d.info) == MPROC_OK;
  if (w->timed_out) /* we killed it: see mproc__watch_worker */
    code =
        running == w->kill_chunk && item == w->kill_item ? MPROC_ETIMEDOUT : 0;
  for (c = w->head; c; c = c->next)
    c->touched = 1;
  mproc__area_settle(p, i);
  for (c = w->head; c; c = c->next)
    if (c->id == running)
      found = c;
  rest = found ? mproc__chunks_lost(p, w, found, item, code,
                                    have_end ? &d : NULL)
               : w->head;
  if (rest) {
    size_t k = 0;
    mproc__chunk *last = NULL;
    for (c = rest; c; c = c->next) {
      k++;
      last = c;
    }
    mproc__queue_front(p, rest, last, k);
  }
  w->head = w->tail = NULL;
  w->inflight = 0;
  w->msgs = 0;
  {
    /* Before it got ready: its initializer failed (it said so, exited, or
     * crashed), which is a real start failure, or it was killed. */
    int ready = w->ready, said = w->init_failed;
    int exitcode = mproc__worker_reap(w, 5);
    if (!ready)
      mproc__start_failed(p, i, said || !mproc__killed_code(exitcode));
  }
}

/* Settle the results of one RESULTS message (r after its kind) from
 * worker i: whole chunks, in the order the worker got them.  Negative:
 * damaged. */
static int mproc__handle_results(mproc_pool *p, int i, mproc__rd *r) {
  mproc__worker *w = &p->w[i];
  while (r->left > 0) {
    mproc__chunk *c = w->head;
    mproc__pw_run run;
    uint64_t id;
    uint32_t nitems, k;
    if (mproc__pw_rd_result_head(r, &id, &nitems) < 0 || !c || id != c->id ||
        nitems != c->count)
      return MPROC_EINVAL;
    for (k = 0; k < nitems; k += run.n) {
      if (mproc__pw_rd_run(r, nitems - k, 0, &run) < 0)
        return MPROC_EINVAL;
      mproc__settle_run(p, c, k, &run);
    }
    w->head = c->next;
    if (!w->head)
      w->tail = NULL;
    w->inflight--;
    if (c->last)
      w->msgs--;
  }
  return MPROC_OK;
}

/* A RESULTS message from worker i (r after its kind): the chunks in the
 * result slot it names, then those inline. */
static int mproc__handle_results_msg(mproc_pool *p, int i, mproc__rd *r) {
  mproc__rd shared;
  uint32_t slot, slen;
  if (mproc__pw_rd_msg_head(r, &slot, &slen,
                            MPROC__POOL_RES_SLOT - MPROC__PW_MSG_HEAD) < 0)
    return MPROC_EINVAL;
  mproc__rd_init(&shared, mproc__res_slot(p, i, slot) + MPROC__PW_MSG_HEAD,
                 slen);
  if (mproc__handle_results(p, i, &shared) < 0)
    return MPROC_EINVAL;
  return mproc__handle_results(p, i, r);
}

/* Handle one message from worker i.  Negative: damaged. */
static int mproc__handle_msg(mproc_pool *p, int i, const unsigned char *m,
                             size_t n) {
  mproc__worker *w = &p->w[i];
  mproc__rd r;
  switch (mproc__pw_rd_kind(&r, m, n)) {
  case MPROC__PM_READY:
    if (!w->ready) {
      w->ready = 1;
      p->start_fails = 0;
      if (p->broken == MPROC_ESPAWN && p->initial_ready)
        p->broken = 0; /* a worker runs again: so does the pool */
    }
    return MPROC_OK;
  case MPROC__PM_INITFAIL:
    w->init_failed = 1;
    return MPROC_OK;
  case MPROC__PM_RESULTS:
    return mproc__handle_results_msg(p, i, &r);
  default:
    return MPROC_EINVAL;
  }
}

/* Read every message worker i has ready. */
static void mproc__drain(mproc_pool *p, int i) {
  mproc__worker *w = &p->w[i];
  for (;;) {
    size_t len = 0;
    int rc;
    if (w->eof)
      return;
    rc = mproc__pool_recv(w->conn, &p->rbuf, &p->rcap, &len, 0);
    if (rc == MPROC_ETIMEDOUT)
      return;
    if (rc < 0) {
      /* End-of-file: the process sentinel follows.  Any other failure
       * (no memory for a large result) leaves a live worker we can no
       * longer talk to: end it, so its sentinel settles its chunks. */
      if (rc != MPROC_EEOF)
        (void)mproc_process_kill(w->proc);
      w->eof = 1;
      return;
    }
    if (mproc__handle_msg(p, i, p->rbuf, len) < 0) {
      /* A damaged stream cannot be trusted again: end the worker, the
       * sentinel then settles its chunks. */
      (void)mproc_process_kill(w->proc);
      w->eof = 1;
      return;
    }
  }
}

/* Writes chunk c's inputs (from in) in the form they travel in at `to`. */
static void mproc__chunk_inputs(unsigned char *to, const mproc__chunk *c,
                                const mproc_bytes *in) {
  size_t j;
  if (c->contig)
    memcpy(to, c->contig, c->len);
  else if (c->size != MPROC__PW_VAR)
    (void)mproc__pw_inputs_fixed(to, in + c->first, c->count, c->size);
  else
    for (j = c->first; j < c->first + c->count; j++)
      to += mproc__pw_input(to, in[j].data, in[j].len);
}

/* Write chunk c of a TASKS message at `to` (room for it is there); returns
 * the bytes written. */
static size_t mproc__encode_chunk(unsigned char *to, const mproc__chunk *c) {
  const mproc_async_result *r = c->job;
  size_t len = mproc__pw_task_head(to, c->id, r->task, strlen(r->task),
                                   c->count, c->size);
  if (!r->src) /* already encoded at submit */
    memcpy(to + len, r->payload + c->off, c->len);
  else
    mproc__chunk_inputs(to + len, c, r->src);
  return len + c->len;
}

/* Feed queued chunks to ready workers (see the note at the top on why this
 * cannot block for long). */
/* The chunks each usable worker should hold: an even share of what is
 * queued and in flight, capped; 0 when there is nothing to send or nobody
 * to send it to. */
static size_t mproc__sched_share(const mproc_pool *p) {
  size_t alive = 0, total = p->qlen, share;
  int i;
  for (i = 0; i < p->n; i++)
    if (p->w[i].alive && p->w[i].ready && !p->w[i].eof && !p->w[i].nosend) {
      alive++;
      total += p->w[i].inflight;
    }
  if (!alive || !p->qhead)
    return 0;
  share = (total + alive - 1) / alive;
  if (share > MPROC__POOL_MAX_INFLIGHT)
    share = MPROC__POOL_MAX_INFLIGHT;
  return share;
}

/* How many chunks the next message to `w` may carry; 0 when its
 * maxtasksperchild is used up.  A message carries at most a quarter of
 * the worker's share (its slots' number): results come back per message,
 * so a map of a few chunks per worker reports progress (and pipelines)
 * chunk by chunk rather than all at once. */
static size_t mproc__sched_limit(const mproc_pool *p, const mproc__worker *w,
                                 size_t share) {
  size_t limit = share - w->inflight;
  size_t quarter = (share + MPROC__POOL_NSLOTS - 1) / MPROC__POOL_NSLOTS;
  if (limit > quarter)
    limit = quarter;
  if (limit > MPROC__POOL_MSG_CHUNKS)
    limit = MPROC__POOL_MSG_CHUNKS;
  if (p->maxtasks) {
    if (w->sent >= p->maxtasks)
      return 0;
    if (limit > p->maxtasks - w->sent)
      limit = p->maxtasks - w->sent;
  }
  return limit;
}

/* The bytes chunk c takes in a TASKS message. */
static size_t mproc__chunk_need(const mproc__chunk *c) {
  return MPROC__PW_TASK_HEAD + strlen(c->job->task) + c->len;
}

/* Encodes up to `limit` chunks from the head of the queue at `to`, as
 * many as fit in `cap` bytes; returns how many, with the last one in *last
 * and their length in *len. */
static size_t mproc__sched_encode(mproc_pool *p, unsigned char *to,
                                  size_t cap, size_t limit,
                                  mproc__chunk **last, size_t *len) {
  size_t k = 0;
  mproc__chunk *c;
  *len = 0;
  for (c = p->qhead; c && k < limit; c = c->next) {
    if (*len + mproc__chunk_need(c) > cap)
      break;
    *len += mproc__encode_chunk(to + *len, c);
    k++;
    *last = c;
  }
  return k;
}

/* Builds worker i's next TASKS message in *msg (*mlen bytes): the chunks
 * that fit in its next input slot are written there, and the message only
 * says how many bytes; a first chunk too big for a slot travels alone,
 * inline in p->sbuf, and only as the first message in flight (see the
 * note at the top).  Returns how many chunks it holds (0: none now). */
static size_t mproc__sched_build(mproc_pool *p, int i, size_t limit,
                                 mproc__chunk **last, unsigned char *head,
                                 const unsigned char **msg, size_t *mlen) {
  mproc__worker *w = &p->w[i];
  size_t need = mproc__chunk_need(p->qhead), len = 0, k;
  if (need <= MPROC__POOL_IN_SLOT) {
    k = mproc__sched_encode(p, mproc__in_slot(p, i, w->slot),
                            MPROC__POOL_IN_SLOT, limit, last, &len);
    *mlen = mproc__pw_msg_head(head, MPROC__PM_TASKS, w->slot,
                               (uint32_t)len);
    *msg = head;
    return k;
  }
  if (w->msgs > 0 || mproc__pool_grow(&p->sbuf, &p->scap,
                                      MPROC__PW_MSG_HEAD + need) < 0)
    return 0;
  k = mproc__sched_encode(p, p->sbuf + MPROC__PW_MSG_HEAD, need, 1, last,
                          &len);
  *mlen = mproc__pw_msg_head(p->sbuf, MPROC__PM_TASKS, w->slot, 0) + len;
  *msg = p->sbuf;
  return k;
}

/* Moves the k sent chunks (the queue's head up to `last`) to the worker's
 * in-flight list. */
static void mproc__sched_hand_over(mproc_pool *p, mproc__worker *w,
                                   mproc__chunk *last, size_t k) {
  mproc__chunk *c, *first = p->qhead;
  p->qhead = last->next;
  if (!p->qhead)
    p->qtail = NULL;
  p->qlen -= k;
  for (c = first;; c = c->next) {
    c->last = c == last;
    if (c == last)
      break;
  }
  last->next = NULL;
  if (w->tail)
    w->tail->next = first;
  else
    w->head = first;
  w->tail = last;
  w->inflight += k;
  w->sent += k;
  w->msgs++;
}

/* If a chunk about to be sent to worker i (the queue's head up to `last`)
 * has a timeout, tells the worker to mark its tasks' starts (src/pool.h),
 * before the send that makes the store visible to it. */
static void mproc__sched_flag_timed(mproc_pool *p, int i,
                                    const mproc__chunk *last) {
  const mproc__chunk *c;
  if (p->w[i].timed)
    return;
  for (c = p->qhead; c; c = c == last ? NULL : c->next)
    if (c->job->timeout > 0) {
      p->w[i].timed = 1;
      mproc__store64(
          &p->prog[(size_t)i * MPROC__PROG_STRIDE + MPROC__PROG_TIMED], 1);
      return;
    }
}

/* Sends worker i messages of queued chunks until it holds its share. */
static void mproc__schedule_worker(mproc_pool *p, int i, size_t share) {
  mproc__worker *w = &p->w[i];
  while (p->qhead && w->msgs < MPROC__POOL_NSLOTS && w->inflight < share) {
    size_t limit = mproc__sched_limit(p, w, share), mlen = 0, k;
    unsigned char head[MPROC__PW_MSG_HEAD];
    const unsigned char *msg = NULL;
    mproc__chunk *last = NULL;
    int rc;
    if (!limit)
      return;
    k = mproc__sched_build(p, i, limit, &last, head, &msg, &mlen);
    if (!k)
      return;
    mproc__sched_flag_timed(p, i, last);
    rc = mproc_conn_send_bytes(w->conn, msg, mlen);
    if (rc < 0) {
      /* Gone (its sentinel settles it), or unreachable: then end it.
       * Its stream is still read to the end (see nosend). */
      if (rc != MPROC_EEOF)
        (void)mproc_process_kill(w->proc);
      w->nosend = 1;
      return;
    }
    mproc__sched_hand_over(p, w, last, k);
    w->slot = (w->slot + 1) % MPROC__POOL_NSLOTS;
  }
}

static void mproc__schedule(mproc_pool *p) {
  size_t share = mproc__sched_share(p);
  int i;
  if (!share)
    return;
  for (i = 0; i < p->n && p->qhead; i++) {
    mproc__worker *w = &p->w[i];
    if (!w->alive || !w->ready || w->eof || w->nosend)
      continue;
    mproc__schedule_worker(p, i, share);
  }
}

/* The shorter of two waits in seconds (negative: without limit). */
static double mproc__sooner(double a, double b) {
  if (a < 0)
    return b;
  return b < 0 || a < b ? a : b;
}

/* The smallest timeout of the chunks worker w holds (0: none has one). */
static double mproc__held_timeout(const mproc__worker *w) {
  const mproc__chunk *c;
  double t = 0;
  for (c = w->head; c; c = c->next)
    if (c->job->timeout > 0 && (t == 0 || c->job->timeout < t))
      t = c->job->timeout;
  return t;
}

/* Task timeouts of worker i: kills it if its running task has run past its
 * job's timeout (mproc__worker_died then fails that task with
 * MPROC_ETIMEDOUT), else returns the seconds until it must be looked at
 * again (negative: never), which the handler waits in mproc_wait.  The
 * start of the running task is read from the worker's progress slot,
 * twice around the reads of its chunk and item, which belong to that
 * start only if both reads agree (src/pool.h).  A task that starts later
 * has not run `tmin` (the least timeout it holds) before now + tmin: that
 * is the next look when no task is running or the mark is changing, and
 * the latest one otherwise; so a hung task is killed at its deadline,
 * whichever task ran before it, without a wake-up per task. */
static double mproc__watch_worker(mproc_pool *p, int i, double now) {
  mproc__worker *w = &p->w[i];
  volatile uint64_t *prog = p->prog + (size_t)i * MPROC__PROG_STRIDE;
  double tmin = mproc__held_timeout(w), start, t = 0;
  uint64_t s1, s2, chunk, item;
  const mproc__chunk *c;
  if (!w->alive || !w->ready || w->eof || w->timed_out || tmin == 0)
    return MPROC_FOREVER;
  s1 = mproc__load64(&prog[MPROC__PROG_START]);
  chunk = mproc__load64(&prog[MPROC__PROG_CHUNK]);
  item = mproc__load64(&prog[MPROC__PROG_ITEM]);
  s2 = mproc__load64(&prog[MPROC__PROG_START]);
  if (s1 == 0 || s1 != s2)
    return tmin;
  for (c = w->head; c && c->id != chunk; c = c->next)
    ;
  if (c)
    t = c->job->timeout;
  start = mproc__pw_word_time(s1);
  if (t <= 0 || now < start + t)
    return mproc__sooner(t > 0 ? start + t - now : -1, tmin);
  w->timed_out = 1;
  w->kill_chunk = chunk;
  w->kill_item = item;
  (void)mproc_process_kill(w->proc); /* its sentinel settles the rest */
  return MPROC_FOREVER;
}

/* Every worker's task timeouts: the seconds until the next look. */
static double mproc__watch(mproc_pool *p) {
  double now = mproc__plat_now(), next = MPROC_FOREVER;
  int i;
  for (i = 0; i < p->n; i++)
    next = mproc__sooner(next, mproc__watch_worker(p, i, now));
  return next;
}

static int mproc__busy(mproc_pool *p) {
  int i;
  if (p->qhead)
    return 1;
  for (i = 0; i < p->n; i++)
    if (p->w[i].head)
      return 1;
  return 0;
}

/* Start the workers the pool lacks while there is or may be work, each
 * once its back-off is over.  Returns how long the handler may wait before
 * a slot is due again (MPROC_FOREVER: none is): the back-off is waited in
 * mproc_wait with the workers and the wake-up pipe, never in a sleep. */
static double mproc__keep_strength(mproc_pool *p) {
  double now = mproc__plat_now(), next = -1;
  int i, rc;
  for (i = 0; i < p->n; i++) {
    mproc__worker *w = &p->w[i];
    if (w->alive || (p->broken && p->broken != MPROC_ESPAWN))
      continue;
    if (p->state != MPROC__POOL_RUN && !mproc__busy(p))
      continue;
    if (p->broken && !p->initial_ready)
      continue; /* mproc_pool_create fails: no more attempts */
    if (w->restart_at > now) {
      if (next < 0 || w->restart_at < next)
        next = w->restart_at;
      continue;
    }
    rc = mproc__worker_start(p, i);
    if (rc == MPROC_EDAEMON) {
      p->broken = rc;
    } else if (rc < 0) {
      mproc__start_failed(p, i, 1);
      if (next < 0 || w->restart_at < next)
        next = w->restart_at;
    }
  }
  return next < 0 ? MPROC_FOREVER : next - now;
}

/* Wait (lock released) until a worker's message or exit, a wake-up or the
 * timeout, then handle what is ready.  items and who have room for every
 * worker's connection and process plus the wake-up pipe. */
static void mproc__handler_wait(mproc_pool *p, mproc_waitable *items, int *who,
                                double timeout) {
  size_t nw = 0, k;
  int i, rc;
  items[nw].kind = MPROC_WAIT_CONN;
  items[nw].object = p->wake_r;
  who[nw++] = -1;
  for (i = 0; i < p->n; i++) {
    if (!p->w[i].alive)
      continue;
    if (!p->w[i].eof) {
      items[nw].kind = MPROC_WAIT_CONN;
      items[nw].object = p->w[i].conn;
      who[nw++] = i;
    }
    if (!p->w[i].proc) /* an MPI rank (see below) */
      continue;
    items[nw].kind = MPROC_WAIT_PROCESS;
    items[nw].object = p->w[i].proc;
    who[nw++] = i;
  }
  mproc__mutex_unlock(&p->mu);
  rc = mproc_wait(items, nw, timeout);
  mproc__mutex_lock(&p->mu);
  for (k = 0; rc >= 0 && k < nw; k++) {
    if (!items[k].ready)
      continue;
    if (who[k] < 0) {
      size_t len;
      unsigned char b[16];
      while (mproc_conn_recv_bytes(p->wake_r, b, sizeof b, &len, 0) == 0)
        ;
      p->wake_pending = 0;
    } else if (items[k].kind == MPROC_WAIT_CONN) {
      mproc__drain(p, who[k]);
    } else if (p->w[who[k]].alive) {
      /* Results it sent before it died come first. */
      mproc__drain(p, who[k]);
      mproc__worker_died(p, who[k]);
    }
  }
  /* A worker without a process (an MPI rank) has ended when its stream
   * has: there is no sentinel to wait for. */
  for (i = 0; i < p->n; i++)
    if (p->w[i].alive && p->w[i].eof && !p->w[i].proc)
      mproc__worker_died(p, i);
}

/* Shut down (lock held).  Closed: each worker is told to stop and exits on
 * its own.  Terminated: workers are stopped now and what they held fails. */
static void mproc__handler_shutdown(mproc_pool *p) {
  int i;
  if (p->state == MPROC__POOL_TERMINATE) {
    for (i = 0; i < p->n; i++)
      if (p->w[i].alive)
        (void)mproc_process_terminate(p->w[i].proc);
    mproc__fail_all(p, MPROC_ECLOSED);
  } else {
    unsigned char stop[4];
    mproc__wr_put32(stop, MPROC__PM_STOP);
    for (i = 0; i < p->n; i++)
      if (p->w[i].alive && !p->w[i].eof && !p->w[i].nosend)
        (void)mproc_conn_send_bytes(p->w[i].conn, stop, 4);
  }
  mproc__mutex_unlock(&p->mu);
  for (i = 0; i < p->n; i++)
    if (p->w[i].alive)
      (void)mproc__worker_reap(&p->w[i], 10);
  mproc__mutex_lock(&p->mu);
  mproc__run_callbacks(p);
  p->initial_ready = 1;
  p->done = 1;
  mproc__cond_broadcast(&p->cond);
}

static void mproc__handler(void *arg) {
  mproc_pool *p = (mproc_pool *)arg;
  mproc_waitable *items;
  int *who;
  int i;
  items = (mproc_waitable *)calloc((size_t)p->n * 2 + 1, sizeof(*items));
  who = (int *)calloc((size_t)p->n * 2 + 1, sizeof(*who));
  mproc__mutex_lock(&p->mu);
  if (!items || !who) {
    p->broken = MPROC_ENOMEM;
    p->state = MPROC__POOL_TERMINATE;
  }
  while (p->state != MPROC__POOL_TERMINATE) {
    double timeout = mproc__keep_strength(p);
    if (p->broken) {
      mproc__fail_all(p, p->broken);
      mproc__cond_broadcast(&p->cond);
    }
    if (!p->initial_ready) {
      int all = 1;
      for (i = 0; i < p->n; i++)
        all = all && p->w[i].alive && p->w[i].ready;
      if (all || p->broken) {
        p->initial_ready = 1;
        mproc__cond_broadcast(&p->cond);
      }
    }
    mproc__schedule(p);
    mproc__run_callbacks(p);
    timeout = mproc__sooner(timeout, mproc__watch(p));
    if (p->state == MPROC__POOL_TERMINATE ||
        (p->state == MPROC__POOL_CLOSED && !mproc__busy(p)))
      break;
    mproc__handler_wait(p, items, who, timeout);
    /* Results that made a job ready wake its waiters through the callback
     * list (mproc__run_callbacks); only mproc_imap_next waits for single
     * items.  Waking every waiter after each message would cost the
     * waiting thread a switch per message on a busy map. */
    if (p->progress_made && p->item_waiters > 0)
      mproc__cond_broadcast(&p->cond);
    p->progress_made = 0;
  }
  mproc__handler_shutdown(p);
  mproc__mutex_unlock(&p->mu);
  free(items);
  free(who);
}

/* ---- the pool ------------------------------------------------------------------ */

static void mproc__pool_wake_handler(mproc_pool *p) {
  if (!p->wake_pending) {
    p->wake_pending = 1;
    (void)mproc_conn_send_bytes(p->wake_w, "w", 1);
  }
}

static void mproc__pool_destroy(mproc_pool *p) {
  mproc__mpi_pool_close(p->mpi); /* waits for the ranks' sessions to end */
  mproc__cond_destroy(&p->cond);
  mproc_conn_free(p->wake_r);
  mproc_conn_free(p->wake_w);
  mproc_array_free(p->progress);
  mproc_array_free(p->results);
  mproc_args_free(p->initargs);
  if (p->spare)
    mproc__blk_free(p->spare);
  free(p->init);
  free(p->w);
  free(p->rbuf);
  free(p->sbuf);
  free(p);
}

static void mproc__pools_atexit(void) {
  mproc_pool *p;
  /* Pools still running at exit are terminated before mproc's own exit
   * handler joins the children: otherwise the handler thread could start a
   * replacement for a worker that handler just terminated. */
  for (;;) {
    mproc__mutex_lock(&g_pools_mu);
    for (p = g_pools; p && p->creator != mproc__plat_getpid(); p = p->all_next)
      ;
    if (p)
      p->refs++;
    mproc__mutex_unlock(&g_pools_mu);
    if (!p)
      break;
    (void)mproc_pool_terminate(p);
    (void)mproc_pool_join(p, MPROC_FOREVER);
    mproc__mutex_lock(&g_pools_mu);
    {
      mproc_pool **pp;
      for (pp = &g_pools; *pp; pp = &(*pp)->all_next)
        if (*pp == p) {
          *pp = p->all_next;
          break;
        }
    }
    mproc__mutex_unlock(&g_pools_mu);
    mproc__mutex_lock(&p->mu);
    if (--p->refs == 0) {
      mproc__mutex_unlock(&p->mu);
      mproc__pool_destroy(p);
    } else {
      mproc__mutex_unlock(&p->mu);
    }
  }
}

static void mproc__pools_unlink(mproc_pool *p) {
  mproc_pool **pp;
  mproc__mutex_lock(&g_pools_mu);
  for (pp = &g_pools; *pp; pp = &(*pp)->all_next)
    if (*pp == p) {
      *pp = p->all_next;
      break;
    }
  mproc__mutex_unlock(&g_pools_mu);
}

/* A task timeout as the pool keeps it: 0 for none (0 or an infinity);
 * MPROC_EINVAL for a negative one or NaN. */
static int mproc__task_timeout(double t, double *out) {
  if (t != t || t < 0)
    return MPROC_EINVAL;
  *out = t > DBL_MAX ? 0 : t;
  return MPROC_OK;
}

/* Checks the options; *n is the number of workers. */
static int mproc__pool_check_options(const mproc_pool_options *opts, int *n) {
  double t;
  *n = opts ? opts->processes : 0;
  if (opts && opts->backend != MPROC_POOL_LOCAL) {
    int rc = mproc__mpi_pool_check(opts, n);
    if (rc < 0)
      return rc;
  }
  if (*n < 0 || (opts && mproc__task_timeout(opts->task_timeout, &t) < 0))
    return MPROC_EINVAL;
  if (*n == 0)
    *n = mproc_cpu_count();
  if (!mproc_current_process())
    return mproc__not_inited();
  if (mproc_process_daemon(mproc_current_process()) == 1)
    return MPROC_EDAEMON;
  if (opts && opts->start_method != MPROC_START_DEFAULT &&
      mproc__check_method(opts->start_method) < 0)
    return mproc__check_method(opts->start_method);
  if (opts && opts->initializer &&
      (!mproc__entry_find(opts->initializer) ||
       strcmp(opts->initializer, MPROC_POOL_WORKER_ENTRY) == 0))
    return MPROC_ENOENTRY;
  return MPROC_OK;
}

/* The pool object with its lock and condition; everything else is
 * acquired by mproc__pool_open_resources, released by mproc__pool_destroy. */
static int mproc__pool_alloc(const mproc_pool_options *opts, int n,
                             mproc_pool **out) {
  mproc__mutex_t init = MPROC__MUTEX_INITIALIZER;
  mproc_pool *p = (mproc_pool *)calloc(1, sizeof(*p));
  int rc;
  if (!p)
    return MPROC_ENOMEM;
  p->mu = init;
  p->refs = 1;
  p->n = n;
  p->next_id = 1;
  p->creator = mproc__plat_getpid();
  p->maxtasks = opts ? opts->maxtasksperchild : 0;
  if (opts)
    (void)mproc__task_timeout(opts->task_timeout, &p->task_timeout);
  p->method = opts ? opts->start_method : MPROC_START_DEFAULT;
  rc = mproc__cond_init(&p->cond);
  if (rc < 0) {
    free(p);
    return rc;
  }
  *out = p;
  return MPROC_OK;
}

/* The worker table, the initializer, the shared progress and result areas
 * and the wake pipe. */
static int mproc__pool_open_resources(mproc_pool *p,
                                      const mproc_pool_options *opts) {
  int rc;
  p->w = (mproc__worker *)calloc((size_t)p->n, sizeof(*p->w));
  if (!p->w)
    return MPROC_ENOMEM;
  if (opts && opts->initializer) {
    p->init = mproc__pool_strdup(opts->initializer);
    if (!p->init)
      return MPROC_ENOMEM;
  }
  if (opts && opts->initargs) {
    rc = mproc_args_create(&p->initargs);
    if (rc < 0)
      return rc;
    rc = mproc__args_append(p->initargs, opts->initargs);
    if (rc < 0)
      return rc;
  }
  rc = mproc_array_create(&p->progress, MPROC_UINT64,
                          (size_t)p->n * MPROC__PROG_STRIDE, 0);
  if (rc < 0)
    return rc;
  p->prog = (volatile uint64_t *)mproc_array_ptr(p->progress);
  rc = mproc_array_create(&p->results, MPROC_UINT8,
                          (size_t)p->n * MPROC__POOL_WORKER_SHM, 0);
  if (rc < 0)
    return rc;
  p->area = (unsigned char *)mproc_array_ptr(p->results);
  if (opts && opts->backend == MPROC_POOL_MPI) {
    rc = mproc__mpi_pool_open(&p->mpi, p->n, p->init, p->area);
    if (rc < 0)
      return rc;
  }
  return mproc_pipe(&p->wake_r, &p->wake_w, 0);
}

/* Starts the handler thread and waits until it has started the first
 * workers; a pool that could not start them is ended again. */
static int mproc__pool_start_handler(mproc_pool *p) {
  int rc = mproc__thread_start(&p->thread, mproc__handler, p);
  if (rc < 0)
    return rc;
  mproc__mutex_lock(&p->mu);
  while (!p->initial_ready)
    (void)mproc__cond_wait(&p->cond, &p->mu, -1);
  rc = p->broken;
  mproc__mutex_unlock(&p->mu);
  if (rc < 0) {
    (void)mproc_pool_terminate(p);
    mproc__thread_join(p->thread);
    return rc;
  }
  return MPROC_OK;
}

/* Lists the pool for the exit handler, which ends the pools left open. */
static void mproc__pool_register(mproc_pool *p) {
  mproc__mutex_lock(&g_pools_mu);
  p->all_next = g_pools;
  g_pools = p;
  if (!g_atexit_set) {
    g_atexit_set = 1;
    atexit(mproc__pools_atexit);
  }
  mproc__mutex_unlock(&g_pools_mu);
}

int mproc_pool_create(mproc_pool **out, const mproc_pool_options *opts) {
  mproc_pool *p = NULL;
  int rc, n;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  rc = mproc__pool_check_options(opts, &n);
  if (rc < 0)
    return rc;
  rc = mproc__pool_alloc(opts, n, &p);
  if (rc < 0)
    return rc;
  rc = mproc__pool_open_resources(p, opts);
  if (rc < 0)
    goto finish;
  rc = mproc__pool_start_handler(p);
  if (rc < 0)
    goto finish;
  mproc__pool_register(p);
  *out = p;
finish:
  if (rc < 0)
    mproc__pool_destroy(p);
  return rc;
}

int mproc_pool_processes(const mproc_pool *pool) {
  return pool ? pool->n : MPROC_EINVAL;
}

enum { MPROC__SUB_UNORDERED = 1, MPROC__SUB_BORROW = 2 };

/* Build a job of n inputs in chunks of cs and queue it.  With BORROW the
 * inputs are not copied: only for callers that wait until the job is ready
 * (every chunk is encoded, and re-encoded after a worker death, from them). */
/* Checks a submission (its inputs are checked as they are cut into
 * chunks: mproc__chunk_scan). */
static int mproc__submit_check(mproc_pool *p, const char *task,
                               const mproc_bytes *in, size_t n) {
  if (!p || !task || (n && !in))
    return MPROC_EINVAL;
  if (!mproc__pool_mine(p))
    return MPROC_EPERM;
  if (!mproc__entry_find(task) || strcmp(task, MPROC_POOL_WORKER_ENTRY) == 0)
    return MPROC_ENOENTRY;
  if (strlen(task) > 4096)
    return MPROC_EINVAL;
  return MPROC_OK;
}

/* The job with its tables, sized for n inputs in chunks of cs. */
static int mproc__job_alloc(mproc_pool *p, const char *task,
                            const mproc_bytes *in, size_t n, size_t cs,
                            const mproc_async_options *o, int flags,
                            mproc_async_result **out) {
  int unordered = (flags & MPROC__SUB_UNORDERED) != 0;
  int borrow = (flags & MPROC__SUB_BORROW) != 0;
  mproc_async_result *r = (mproc_async_result *)calloc(1, sizeof(*r));
  if (!r)
    return MPROC_ENOMEM;
  r->pool = p;
  r->n = n;
  r->task = mproc__pool_strdup(task);
  r->items = (mproc__item *)calloc(n ? n : 1, sizeof(*r->items));
  if (unordered)
    r->order = (size_t *)malloc((n ? n : 1) * sizeof(*r->order));
  r->nchunks = n / cs + (n % cs != 0); /* (n + cs - 1) overflows for big cs */
  r->chunks = (mproc__chunk *)calloc(r->nchunks ? r->nchunks : 1,
                                     sizeof(*r->chunks));
  if (borrow)
    r->src = in;
  if (o)
    r->cb = *o;
  if (!r->task || !r->items || (unordered && !r->order) || !r->chunks) {
    mproc__job_destroy(r);
    return MPROC_ENOMEM;
  }
  *out = r;
  return MPROC_OK;
}

/* The usual case first: a map over an array, its n inputs of one size
 * (not 0) side by side.  1 when they are, and their chunk is within
 * bounds (the general loop below finds the error otherwise).  This loop
 * does a third of the general one's work per input: scanning a million
 * inputs is serial time before the first chunk can leave. */
static int mproc__scan_contig(const mproc_bytes *b, size_t n) {
  const unsigned char *next = (const unsigned char *)b[0].data;
  size_t size = b[0].len, j;
  if (!next || size == 0 || size > MPROC__POOL_CHUNK_MAX ||
      n > MPROC__POOL_CHUNK_MAX / (4 + size))
    return 0;
  for (j = 0; j < n; j++) {
    if (b[j].data != (const void *)next || b[j].len != size)
      return 0;
    next += size;
  }
  return 1;
}

/* Checks chunk c's inputs (from in[c->first], c->count of them) and
 * notes the form they travel in: the size they all have (or VAR), the
 * first when they also lie side by side in memory (a map's inputs often
 * do: then a chunk is sent with one copy), and their encoded length.  One
 * pass over them, the only one before they are sent. */
static int mproc__chunk_scan(mproc__chunk *c, const mproc_bytes *in) {
  const mproc_bytes *b = in + c->first;
  const unsigned char *next = (const unsigned char *)b[0].data;
  size_t j, size = b[0].len, sum = 0;
  int same = 1, adjacent = 1;
  if (mproc__scan_contig(b, c->count)) {
    c->size = (uint32_t)size;
    c->len = c->count * size;
    c->contig = next;
    return MPROC_OK;
  }
  for (j = 0; j < c->count; j++) {
    const unsigned char *d = (const unsigned char *)b[j].data;
    if (b[j].len && !d)
      return MPROC_EINVAL;
    if (b[j].len > MPROC__POOL_CHUNK_MAX)
      return MPROC_E2BIG;
    same = same && b[j].len == size;
    adjacent = adjacent && d == next;
    next = d ? d + b[j].len : NULL;
    sum += 4 + b[j].len; /* both at most CHUNK_MAX: no wrap, even 32-bit */
    if (sum > MPROC__POOL_CHUNK_MAX)
      return MPROC_E2BIG; /* as the inputs with a length each would be */
  }
  same = same && size > 0; /* see mproc__pw_rd_task_head */
  c->size = same ? (uint32_t)size : MPROC__PW_VAR;
  c->len = same ? c->count * size : sum;
  c->contig = same && adjacent ? (const unsigned char *)b[0].data : NULL;
  return MPROC_OK;
}

/* Cuts the inputs into chunks of cs, checking them, and copies them into
 * the job's payload (in the form they travel in) unless it borrows them. */
static int mproc__job_fill_chunks(mproc_async_result *r, const mproc_bytes *in,
                                  size_t cs) {
  size_t c, total = 0;
  int rc;
  r->cs = cs;
  for (c = 0; c < r->nchunks; c++) {
    mproc__chunk *ch = &r->chunks[c];
    ch->job = r;
    ch->first = c * cs;
    ch->count = r->n - ch->first < cs ? r->n - ch->first : cs;
    ch->off = total;
    rc = mproc__chunk_scan(ch, in);
    if (rc < 0)
      return rc;
    if (!r->src && ch->len > SIZE_MAX - total)
      return MPROC_ENOMEM; /* a copy no address space holds (32-bit) */
    total += ch->len;
  }
  if (r->src)
    return MPROC_OK;
  r->payload = (unsigned char *)malloc(total ? total : 1);
  if (!r->payload)
    return MPROC_ENOMEM;
  for (c = 0; c < r->nchunks; c++) {
    mproc__chunk_inputs(r->payload + r->chunks[c].off, &r->chunks[c], in);
    r->chunks[c].contig = NULL; /* the caller's memory: not kept */
  }
  return MPROC_OK;
}

/* Queues the job's chunks, unless the pool is closed or broken. */
static int mproc__job_enqueue(mproc_pool *p, mproc_async_result *r) {
  size_t c;
  int rc;
  mproc__mutex_lock(&p->mu);
  rc = p->state != MPROC__POOL_RUN ? MPROC_ECLOSED : p->broken;
  if (rc < 0)
    goto finish;
  p->refs++;
  r->refs = 2; /* the caller's and the pool's (until ready) */
  for (c = 0; c < r->nchunks; c++) {
    mproc__chunk *ch = &r->chunks[c];
    ch->id = p->next_id++;
    if (p->qtail)
      p->qtail->next = ch;
    else
      p->qhead = ch;
    p->qtail = ch;
  }
  p->qlen += r->nchunks;
  if (r->n == 0) {
    r->ready = 1;
    mproc__store32(&r->settled, 1u);
    r->cb_next = p->cb_head; /* callbacks run on the handler thread */
    p->cb_head = r;
  }
  mproc__pool_wake_handler(p);
  rc = MPROC_OK;
finish:
  mproc__mutex_unlock(&p->mu);
  return rc;
}

static int mproc__submit(mproc_pool *p, const char *task,
                         const mproc_bytes *in, size_t n, size_t cs,
                         const mproc_async_options *o, int flags,
                         mproc_async_result **out) {
  mproc_async_result *r = NULL;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  rc = mproc__submit_check(p, task, in, n);
  if (rc < 0)
    return rc;
  if (cs == 0)
    cs = 1;
  rc = mproc__job_alloc(p, task, in, n, cs, o, flags, &r);
  if (rc < 0)
    return rc;
  r->timeout = p->task_timeout;
  if (o && o->timeout != 0 &&
      (rc = mproc__task_timeout(o->timeout, &r->timeout)) < 0)
    goto finish;
  if (p->mpi && r->timeout > 0) {
    rc = MPROC_ENOTSUP; /* a rank cannot be killed and replaced */
    goto finish;
  }
  rc = mproc__job_fill_chunks(r, in, cs);
  if (rc < 0)
    goto finish;
  rc = mproc__job_enqueue(p, r);
  if (rc < 0)
    goto finish;
  *out = r;
finish:
  if (rc < 0)
    mproc__job_destroy(r);
  return rc;
}

int mproc_pool_apply_async(mproc_pool *pool, const char *task, const void *in,
                           size_t in_len, const mproc_async_options *opts,
                           mproc_async_result **out) {
  mproc_bytes b;
  b.data = in;
  b.len = in_len;
  if (in_len && !in)
    return MPROC_EINVAL;
  return mproc__submit(pool, task, &b, 1, 1, opts, 0, out);
}

/* The calling thread's kept result, unlinked (NULL: none).  It is
 * returned if it is for this task and input; else it is dropped: a kept
 * result answers only the call that repeats the one that got ERANGE. */
static mproc_async_result *mproc__kept_take(mproc_pool *p, const char *task,
                                            const void *in, size_t in_len,
                                            size_t cap) {
  uint64_t me = mproc__thread_id();
  mproc__kept **pp, *k = NULL;
  mproc_async_result *r = NULL;
  mproc__mutex_lock(&p->mu);
  for (pp = &p->kept; *pp; pp = &(*pp)->next)
    if ((*pp)->tid == me) {
      k = *pp;
      *pp = k->next;
      break;
    }
  mproc__mutex_unlock(&p->mu);
  if (!k)
    return NULL;
  /* Only the retry with a buffer big enough gets it: a repeated call that
   * still cannot take it (a task run for its side effects, out NULL) runs
   * the task again instead of being answered from the kept result. */
  if (task && cap >= k->need && strcmp(task, k->r->task) == 0 &&
      in_len == k->in_len && (in_len == 0 || memcmp(in, k->in, in_len) == 0))
    r = k->r;
  else
    mproc_async_result_free(k->r);
  free(k->in);
  free(k);
  return r;
}

/* Keep r for the calling thread (see mproc__kept_take).  0 or ENOMEM. */
static int mproc__kept_put(mproc_pool *p, mproc_async_result *r,
                           const void *in, size_t in_len, size_t need) {
  mproc__kept *k = (mproc__kept *)calloc(1, sizeof(*k));
  if (!k)
    return MPROC_ENOMEM;
  k->in = (unsigned char *)malloc(in_len ? in_len : 1);
  if (!k->in) {
    free(k);
    return MPROC_ENOMEM;
  }
  if (in_len)
    memcpy(k->in, in, in_len);
  k->in_len = in_len;
  k->need = need;
  k->tid = mproc__thread_id();
  k->r = r;
  mproc__mutex_lock(&p->mu);
  k->next = p->kept;
  p->kept = k;
  mproc__mutex_unlock(&p->mu);
  return MPROC_OK;
}

/* Release every kept result (mproc_pool_free: each holds a pool reference). */
static void mproc__kept_drop_all(mproc_pool *p) {
  mproc__kept *k, *next;
  mproc__mutex_lock(&p->mu);
  k = p->kept;
  p->kept = NULL;
  mproc__mutex_unlock(&p->mu);
  for (; k; k = next) {
    next = k->next;
    mproc_async_result_free(k->r);
    free(k->in);
    free(k);
  }
}

int mproc_pool_apply(mproc_pool *pool, const char *task, const void *in,
                     size_t in_len, void *out, size_t cap, size_t *out_len) {
  mproc_async_result *r = NULL;
  size_t need = 0;
  int rc;
  if (!pool || (cap && !out) || (in_len && !in))
    return MPROC_EINVAL;
  if (!mproc__pool_mine(pool))
    return MPROC_EPERM;
  r = mproc__kept_take(pool, task, in, in_len, cap);
  if (!r) {
    rc = mproc_pool_apply_async(pool, task, in, in_len, NULL, &r);
    if (rc < 0)
      return rc;
  }
  rc = mproc_async_result_get(r, out, cap, &need, MPROC_FOREVER);
  if (out_len)
    *out_len = need;
  /* Too small a buffer: keep the result for the retry, as the _get
   * functions do, rather than run the task again. */
  if (rc == MPROC_ERANGE &&
      mproc__kept_put(pool, r, in, in_len, need) == MPROC_OK)
    return rc;
  mproc_async_result_free(r);
  return rc;
}

static size_t mproc__default_chunk(const mproc_pool *p, size_t n) {
  size_t d = (size_t)p->n * 4;
  return n / d + (n % d ? 1 : 0);
}

int mproc_pool_map_async(mproc_pool *pool, const char *task,
                         const mproc_bytes *inputs, size_t n, size_t chunksize,
                         const mproc_async_options *opts,
                         mproc_async_result **out) {
  if (pool && chunksize == 0)
    chunksize = mproc__default_chunk(pool, n);
  return mproc__submit(pool, task, inputs, n, chunksize, opts, 0, out);
}

int mproc_pool_map(mproc_pool *pool, const char *task,
                   const mproc_bytes *inputs, size_t n, size_t chunksize,
                   mproc_async_result **out) {
  int rc;
  if (pool && chunksize == 0)
    chunksize = mproc__default_chunk(pool, n);
  /* We wait for the result below, so the inputs outlive the job: no copy. */
  rc = mproc__submit(pool, task, inputs, n, chunksize, NULL,
                     MPROC__SUB_BORROW, out);
  if (rc < 0)
    return rc;
  (void)mproc_async_result_wait(*out, MPROC_FOREVER);
  return mproc__job_first_failure(*out, NULL);
}

static int mproc__imap(mproc_pool *pool, const char *task,
                       const mproc_bytes *inputs, size_t n, size_t chunksize,
                       int unordered, mproc_imap **out) {
  mproc_imap *it;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  it = (mproc_imap *)calloc(1, sizeof(*it));
  if (!it)
    return MPROC_ENOMEM;
  rc = mproc__submit(pool, task, inputs, n, chunksize ? chunksize : 1, NULL,
                     unordered ? MPROC__SUB_UNORDERED : 0, &it->r);
  if (rc < 0) {
    free(it);
    return rc;
  }
  it->unordered = unordered;
  *out = it;
  return MPROC_OK;
}

int mproc_pool_imap(mproc_pool *pool, const char *task,
                    const mproc_bytes *inputs, size_t n, size_t chunksize,
                    mproc_imap **out) {
  return mproc__imap(pool, task, inputs, n, chunksize, 0, out);
}

int mproc_pool_imap_unordered(mproc_pool *pool, const char *task,
                              const mproc_bytes *inputs, size_t n,
                              size_t chunksize, mproc_imap **out) {
  return mproc__imap(pool, task, inputs, n, chunksize, 1, out);
}

/* Whether the iterator's next result is there (lock held). */
static int mproc__imap_has_next(const mproc_imap *it) {
  mproc__item tmp;
  if (it->unordered)
    return it->r->ndone > it->cursor;
  return mproc__job_item(it->r, it->cursor, &tmp)->len1 != 0;
}

int mproc_imap_next(mproc_imap *it, const void **data, size_t *len,
                    size_t *index, double timeout) {
  mproc_async_result *r;
  mproc_pool *p;
  const mproc__item *item;
  mproc__item tmp;
  double deadline;
  size_t i;
  int rc = MPROC_OK;
  if (!it || timeout != timeout)
    return MPROC_EINVAL;
  r = it->r;
  p = r->pool;
  if (!mproc__pool_mine(p))
    return MPROC_EPERM;
  if (it->cursor >= r->n)
    return MPROC_EEOF;
  deadline = mproc__deadline(timeout);
  mproc__mutex_lock(&p->mu);
  /* Counted, so the handler wakes us as items settle (only then). */
  p->item_waiters++;
  while (!mproc__imap_has_next(it) && rc != MPROC_ETIMEDOUT)
    rc = mproc__cond_wait(&p->cond, &p->mu, deadline);
  p->item_waiters--;
  if (!mproc__imap_has_next(it)) {
    mproc__mutex_unlock(&p->mu);
    return MPROC_ETIMEDOUT;
  }
  i = it->unordered ? r->order[it->cursor] : it->cursor;
  it->cursor++;
  item = mproc__job_item(r, i, &tmp);
  rc = item->status;
  if (data)
    *data = item->status == 0 ? item->data : NULL;
  if (len)
    *len = item->len1 - 1;
  if (index)
    *index = i;
  mproc__mutex_unlock(&p->mu);
  return rc;
}

int mproc_imap_done_count(mproc_imap *it, size_t *n) {
  return it ? mproc_async_result_done_count(it->r, n) : MPROC_EINVAL;
}

mproc_imap *mproc_imap_free(mproc_imap *it) {
  if (it) {
    mproc_async_result_free(it->r); /* in a fork child: leaves r alone */
    free(it);
  }
  return NULL;
}

int mproc_pool_close(mproc_pool *pool) {
  if (!pool)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(pool))
    return MPROC_EPERM;
  mproc__mutex_lock(&pool->mu);
  if (pool->state == MPROC__POOL_RUN)
    pool->state = MPROC__POOL_CLOSED;
  mproc__pool_wake_handler(pool);
  mproc__mutex_unlock(&pool->mu);
  return MPROC_OK;
}

int mproc_pool_terminate(mproc_pool *pool) {
  if (!pool)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(pool))
    return MPROC_EPERM;
  mproc__mutex_lock(&pool->mu);
  if (!pool->done)
    pool->state = MPROC__POOL_TERMINATE;
  mproc__pool_wake_handler(pool);
  mproc__mutex_unlock(&pool->mu);
  return MPROC_OK;
}

int mproc_pool_join(mproc_pool *pool, double timeout) {
  double deadline;
  mproc__thread *t = NULL;
  int rc = MPROC_OK;
  if (!pool || timeout != timeout)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(pool))
    return MPROC_EPERM;
  deadline = mproc__deadline(timeout);
  mproc__mutex_lock(&pool->mu);
  if (pool->state == MPROC__POOL_RUN) {
    mproc__mutex_unlock(&pool->mu);
    return MPROC_ESTATE;
  }
  while (!pool->done && rc == MPROC_OK)
    rc = mproc__cond_wait(&pool->cond, &pool->mu, deadline);
  if (pool->done) {
    rc = MPROC_OK;
    t = pool->thread;
    pool->thread = NULL;
  }
  mproc__mutex_unlock(&pool->mu);
  mproc__thread_join(t);
  return rc;
}

/* mproc_pool_free in a fork child: the child's copies of the pool's
 * descriptors are its own, so they are closed; the workers, the handler
 * thread and the lock belong to the parent and are not touched.  The
 * pool's memory stays (reachable from the list of pools, which the child
 * must not lock either: a parent thread may have held that lock at the
 * fork). */
static void mproc__pool_free_inherited(mproc_pool *p) {
  int i;
  for (i = 0; i < p->n; i++)
    p->w[i].conn = mproc_conn_free(p->w[i].conn);
  p->wake_r = mproc_conn_free(p->wake_r);
  p->wake_w = mproc_conn_free(p->wake_w);
}

mproc_pool *mproc_pool_free(mproc_pool *pool) {
  int last;
  if (!pool)
    return NULL;
  if (!mproc__pool_mine(pool)) {
    mproc__pool_free_inherited(pool);
    return NULL;
  }
  (void)mproc_pool_terminate(pool);
  (void)mproc_pool_join(pool, MPROC_FOREVER);
  mproc__kept_drop_all(pool);
  mproc__pools_unlink(pool);
  mproc__mutex_lock(&pool->mu);
  last = --pool->refs == 0;
  mproc__mutex_unlock(&pool->mu);
  if (last)
    mproc__pool_destroy(pool);
  return NULL;
}

/* ---- async results --------------------------------------------------------- */

int mproc_async_result_wait(mproc_async_result *r, double timeout) {
  double deadline;
  mproc_pool *p;
  int rc = MPROC_OK;
  if (!r || timeout != timeout)
    return MPROC_EINVAL;
  p = r->pool;
  if (!mproc__pool_mine(p))
    return MPROC_EPERM;
  deadline = mproc__deadline(timeout);
  mproc__mutex_lock(&p->mu);
  while (!r->ready) {
    if (mproc__cond_wait(&p->cond, &p->mu, deadline) == MPROC_ETIMEDOUT &&
        !r->ready) {
      rc = MPROC_ETIMEDOUT;
      break;
    }
  }
  mproc__mutex_unlock(&p->mu);
  return rc;
}

int mproc_async_result_ready(mproc_async_result *r) {
  int v;
  if (!r)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(r->pool))
    return MPROC_EPERM;
  mproc__mutex_lock(&r->pool->mu);
  v = r->ready;
  mproc__mutex_unlock(&r->pool->mu);
  return v;
}

int mproc_async_result_successful(mproc_async_result *r) {
  int v;
  if (!r)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(r->pool))
    return MPROC_EPERM;
  mproc__mutex_lock(&r->pool->mu);
  v = !r->ready ? MPROC_ESTATE : !r->any_fail;
  mproc__mutex_unlock(&r->pool->mu);
  return v;
}

int mproc_async_result_get(mproc_async_result *r, void *buf, size_t cap,
                           size_t *len, double timeout) {
  const mproc__item *it;
  mproc__item tmp;
  int rc;
  if (!r || (cap && !buf))
    return MPROC_EINVAL;
  rc = mproc_async_result_wait(r, timeout);
  if (rc < 0)
    return rc;
  rc = mproc__job_first_failure(r, NULL);
  if (rc != 0)
    return rc;
  if (r->n == 0) {
    if (len)
      *len = 0;
    return MPROC_OK;
  }
  it = mproc__job_item(r, 0, &tmp);
  if (len)
    *len = it->len1 - 1;
  if (it->len1 - 1 > cap)
    return MPROC_ERANGE;
  if (it->len1 > 1)
    memcpy(buf, it->data, it->len1 - 1);
  return MPROC_OK;
}

size_t mproc_async_result_count(const mproc_async_result *r) {
  return r ? r->n : 0;
}

int mproc_async_result_item(mproc_async_result *r, size_t i, const void **data,
                            size_t *len) {
  const mproc__item *it;
  mproc__item tmp;
  int locked = 0, rc;
  if (!r)
    return MPROC_EINVAL;
  if (i >= r->n)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(r->pool))
    return MPROC_EPERM;
  if (!mproc__load32(&r->settled)) { /* see `settled` */
    mproc__mutex_lock(&r->pool->mu);
    locked = 1;
  }
  it = mproc__job_item(r, i, &tmp);
  rc = r->ready ? it->status : MPROC_ESTATE;
  if (r->ready) {
    if (data)
      *data = it->status == 0 ? it->data : NULL;
    if (len)
      *len = it->len1 - 1;
  }
  if (locked)
    mproc__mutex_unlock(&r->pool->mu);
  return rc;
}

/* The end report of item i of r, which is ready (lock held). */
static int mproc__item_end(const mproc_async_result *r, size_t i,
                           mproc_end_info *info) {
  mproc__item tmp;
  const mproc__item *it = mproc__job_item(r, i, &tmp);
  if ((it->status != MPROC_EWORKER && it->status != MPROC_ETIMEDOUT) ||
      !it->end)
    return MPROC_ENOTFOUND; /* also a task that returned such a code */
  *info = *it->end;
  return MPROC_OK;
}

int mproc_async_result_item_end(mproc_async_result *r, size_t i,
                                mproc_end_info *info) {
  int rc;
  if (!r || !info || i >= r->n)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(r->pool))
    return MPROC_EPERM;
  mproc__mutex_lock(&r->pool->mu);
  rc = r->ready ? mproc__item_end(r, i, info) : MPROC_ESTATE;
  mproc__mutex_unlock(&r->pool->mu);
  return rc;
}

int mproc_async_result_end(mproc_async_result *r, mproc_end_info *info) {
  size_t i = 0;
  int rc;
  if (!r || !info)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(r->pool))
    return MPROC_EPERM;
  mproc__mutex_lock(&r->pool->mu);
  if (!r->ready)
    rc = MPROC_ESTATE;
  else if (mproc__job_first_failure(r, &i) == 0)
    rc = MPROC_ENOTFOUND;
  else
    rc = mproc__item_end(r, i, info);
  mproc__mutex_unlock(&r->pool->mu);
  return rc;
}

int mproc_async_result_done_count(mproc_async_result *r, size_t *n) {
  if (!r || !n)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(r->pool))
    return MPROC_EPERM;
  mproc__mutex_lock(&r->pool->mu);
  *n = r->ndone;
  mproc__mutex_unlock(&r->pool->mu);
  return MPROC_OK;
}

mproc_async_result *mproc_async_result_free(mproc_async_result *r) {
  mproc_pool *p;
  int last_pool = 0;
  if (!r)
    return NULL;
  p = r->pool;
  if (!mproc__pool_mine(p))
    return NULL; /* a fork child's copy: the parent's pool owns it */
  mproc__mutex_lock(&p->mu);
  if (--r->refs == 0) {
    mproc__job_destroy(r);
    last_pool = --p->refs == 0;
  }
  mproc__mutex_unlock(&p->mu);
  if (last_pool)
    mproc__pool_destroy(p);
  return NULL;
}

int mproc_imap_item_end(mproc_imap *it, size_t index, mproc_end_info *info) {
  mproc__item tmp;
  int rc;
  if (!it || !info || index >= it->r->n)
    return MPROC_EINVAL;
  if (!mproc__pool_mine(it->r->pool))
    return MPROC_EPERM;
  mproc__mutex_lock(&it->r->pool->mu);
  /* A settled item's report is final, whether or not the others are. */
  rc = mproc__job_item(it->r, index, &tmp)->len1 == 0
           ? MPROC_ESTATE
           : mproc__item_end(it->r, index, info);
  mproc__mutex_unlock(&it->r->pool->mu);
  return rc;
}
