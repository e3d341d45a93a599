/* The pool's worker side (include/mproc/pool.h): the loop a worker runs
 * (the internal entry "mproc.pool.worker"), and the task helpers.
 *
 * A worker reports READY (or INITFAIL when its initializer fails), then
 * runs TASKS messages chunk by chunk.  It builds its RESULTS message in its
 * result area in shared memory and, after every task, stores how much of
 * the area is complete and which task comes next in its progress slot
 * (src/pool.h), so that if it dies the parent keeps every finished result
 * and fails only the running task (src/pool.c: mproc__worker_died).
 * Messages are written and read with src/pool_wire.c. */
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "pool.h"

/* The task running in this worker: what mproc_task_result appends to, and
 * the message it came in (static, so a task that calls exit() leaves no
 * unreachable memory behind for leak checkers). */
static struct {
  const mproc_args *args;
  const void *in_data; /* its input (the args' only argument) */
  size_t in_len;
  unsigned char *buf; /* the RESULTS message being built: res or priv */
  size_t len, cap;
  unsigned char *area;     /* this worker's result area (shared memory) */
  unsigned char *in_area;  /* and its input slots (src/pool.h) */
  unsigned char *res;      /* the result slot of the running message */
  uint32_t slot;           /* its number */
  volatile uint64_t *prog; /* this worker's progress slot (MPROC__PROG_*) */
  unsigned char *priv;     /* results past the area's end */
  size_t priv_cap;
  unsigned char *in;
  size_t incap;
  /* The open run of the chunk being run (see mproc__result_record): where
   * its header is in buf, and its items' status and result length. */
  size_t run_at;
  uint32_t run_n, run_len;
  int run_status;
  int timed; /* PROG_TIMED was set: mark each task's start (src/pool.h) */
} g_task;

/* Results up to this size extend the open run when they match it: moving
 * them back over the header reserved for them is cheaper than a header.
 * Larger ones get a run of their own and are never moved. */
#define MPROC__RUN_EXTEND_MAX 256

/* Room for `need` bytes of results.  A batch's results are built in this
 * worker's result area in shared memory, so that the parent finds every
 * finished one there if the worker dies (mproc__area_settle).  A batch
 * whose results outgrow the area goes on in private memory: results past
 * that point travel only in the message, and a death loses them. */
static int mproc__result_reserve(size_t need) {
  int leaving = g_task.buf == g_task.res;
  if (need <= g_task.cap)
    return MPROC_OK;
  if (mproc__pool_grow(&g_task.priv, &g_task.priv_cap, need) < 0)
    return MPROC_ENOMEM;
  if (leaving && g_task.len)
    memcpy(g_task.priv, g_task.res, g_task.len);
  g_task.buf = g_task.priv;
  g_task.cap = g_task.priv_cap;
  return MPROC_OK;
}

/* Start a RESULTS message in result slot `slot` (the TASKS message's). */
static void mproc__result_begin(uint32_t slot) {
  /* Nothing of the area counts until a record is complete again: the
   * parent must not read the last batch's records half overwritten. */
  g_task.prog[MPROC__PROG_KEPT] = 0;
  g_task.prog[MPROC__PROG_SLOT] = slot;
  g_task.slot = slot;
  g_task.res = g_task.area + (size_t)slot * MPROC__POOL_RES_SLOT;
  g_task.buf = g_task.res;
  g_task.cap = MPROC__POOL_RES_SLOT;
  g_task.len = mproc__pw_msg_head(g_task.buf, MPROC__PM_RESULTS, slot, 0);
}

/* Send the RESULTS message built so far: when it is in the result slot,
 * only its head (saying how much of the slot it fills) travels. */
static int mproc__result_send(mproc_conn *conn) {
  unsigned char head[MPROC__PW_MSG_HEAD];
  if (g_task.buf != g_task.res)
    return mproc_conn_send_bytes(conn, g_task.buf, g_task.len);
  (void)mproc__pw_msg_head(head, MPROC__PM_RESULTS, g_task.slot,
                           (uint32_t)(g_task.len - MPROC__PW_MSG_HEAD));
  return mproc_conn_send_bytes(conn, head, sizeof head);
}

/* A task's record is complete: publish it.  One plain store, no system
 * call: the parent reads the area only after this process is gone, when
 * every store it made is visible (and an aligned 64-bit store is never
 * seen torn), so no ordering is needed. */
static void mproc__result_commit(void) {
  if (g_task.buf == g_task.res)
    g_task.prog[MPROC__PROG_KEPT] = g_task.len;
}

int mproc_task_input(const mproc_args *args, const void **data, size_t *len) {
  if (!args || !data || !len)
    return MPROC_EINVAL;
  if (args != g_task.args)
    return MPROC_ESTATE;
  *data = g_task.in_data;
  *len = g_task.in_len;
  return MPROC_OK;
}

int mproc_task_result(const mproc_args *args, const void *data, size_t len) {
  if (!args || (!data && len))
    return MPROC_EINVAL;
  if (args != g_task.args)
    return MPROC_ESTATE;
  if (len > MPROC_CONN_MSG_MAX / 2 || g_task.len > MPROC_CONN_MSG_MAX / 2 - len)
    return MPROC_E2BIG;
  if (mproc__result_reserve(g_task.len + len) < 0)
    return MPROC_ENOMEM;
  /* A map's results are mostly one small number: a copy of a constant
   * size is a move, not a call into the C library. */
  if (len == 8)
    memcpy(g_task.buf + g_task.len, data, 8);
  else if (len == 4)
    memcpy(g_task.buf + g_task.len, data, 4);
  else if (len)
    memcpy(g_task.buf + g_task.len, data, len);
  g_task.len += len;
  return MPROC_OK;
}

/* The open run gets its count: it is complete. */
static void mproc__result_close_run(void) {
  mproc__wr_put32(g_task.buf + g_task.run_at, g_task.run_n);
}

/* Makes room for item k's run header (unless `spec`) at the end of the
 * results, where its result is then appended.  `spec`: the result goes
 * straight after the open run's, which it will likely extend (a run of
 * successes with small results, as in a map): no header, no move after.
 * 0 or MPROC_ENOMEM. */
static int mproc__result_place(uint32_t k, int *spec) {
  *spec = k > 0 && g_task.run_status == 0 &&
          g_task.run_len <= MPROC__RUN_EXTEND_MAX;
  if (*spec)
    return MPROC_OK;
  if (mproc__result_reserve(g_task.len + MPROC__PW_RUN_HEAD) < 0)
    return MPROC_ENOMEM;
  g_task.len += MPROC__PW_RUN_HEAD;
  return MPROC_OK;
}

/* Item k's result (status, and its bytes placed at hdr by
 * mproc__result_place) is complete: extend the open run with it, or start
 * a new run at hdr, moving the result to make room for the header or to
 * close the gap of one not needed; then publish it.
 *
 * A run with results is open (count 0 in its header: as many as its bytes
 * hold) until it is closed (mproc__result_close_run), so extending it
 * costs no store but PROG_KEPT's; a dead worker's area is read up to
 * PROG_KEPT, which holds whole results only.  A run without results (len
 * 0) has nothing to count, so its count is stored before PROG_KEPT: it
 * never counts an item whose task had not returned.  0 or MPROC_ENOMEM. */
static int mproc__result_record(size_t hdr, int spec, int status,
                                uint32_t k) {
  size_t start = hdr + (spec ? 0 : MPROC__PW_RUN_HEAD);
  uint32_t len;
  if (status != 0)
    g_task.len = start; /* a failed task: no result */
  len = (uint32_t)(g_task.len - start);
  if (k > 0 && status == g_task.run_status && len == g_task.run_len &&
      len <= MPROC__RUN_EXTEND_MAX) {
    if (!spec) {
      memmove(g_task.buf + hdr, g_task.buf + start, len);
      g_task.len = hdr + len;
    }
    g_task.run_n++;
    if (len == 0)
      mproc__result_close_run();
  } else {
    if (k > 0)
      mproc__result_close_run();
    if (spec) {
      if (mproc__result_reserve(g_task.len + MPROC__PW_RUN_HEAD) < 0)
        return MPROC_ENOMEM;
      memmove(g_task.buf + hdr + MPROC__PW_RUN_HEAD, g_task.buf + hdr, len);
      g_task.len += MPROC__PW_RUN_HEAD;
    }
    g_task.run_at = hdr;
    g_task.run_n = 1;
    g_task.run_len = len;
    g_task.run_status = status;
    (void)mproc__pw_run_head(g_task.buf + hdr, len ? 0 : 1, status, len);
  }
  mproc__result_commit();
  return MPROC_OK;
}

/* Item k's input, from r: of a chunk of fixed `size` inputs all checked at
 * `base` (then r is past them), else read from r. */
static int mproc__item_input(mproc__rd *r, const unsigned char *base,
                             uint32_t size, uint32_t k, mproc__arg *a) {
  const unsigned char *in;
  uint32_t len;
  if (size != MPROC__PW_VAR) {
    in = base ? base + (size_t)k * size : NULL;
    len = size;
  } else if (mproc__pw_rd_input(r, size, &in, &len) < 0) {
    return MPROC_EINVAL;
  }
  a->v.b.data = (unsigned char *)(uintptr_t)in;
  a->v.b.len = len;
  g_task.in_data = in;
  g_task.in_len = len;
  return MPROC_OK;
}

/* Runs the nitems items of a chunk whose inputs (of `size`) are read from
 * r; their results are appended in runs and published item by item.  0,
 * or a negative code for a damaged message or no memory. */
static int mproc__worker_items(const mproc_entry *e, mproc__rd *r,
                               uint32_t nitems, uint32_t size) {
  const unsigned char *base = NULL;
  mproc_args view;
  mproc__arg a;
  uint32_t k;
  /* The task's argument list points into the message: no copy. */
  memset(&view, 0, sizeof view);
  memset(&a, 0, sizeof a);
  a.type = MPROC_ARG_BYTES;
  view.pos = &a;
  view.npos = view.pos_cap = 1;
  if (size != MPROC__PW_VAR &&
      mproc__pw_rd_inputs_fixed(r, nitems, size, &base) < 0)
    return MPROC_EINVAL;
  for (k = 0; k < nitems; k++) {
    size_t hdr = g_task.len;
    int status, spec;
    if (mproc__item_input(r, base, size, k, &a) < 0)
      return MPROC_EINVAL;
    if (mproc__result_place(k, &spec) < 0)
      return MPROC_ENOMEM;
    g_task.prog[MPROC__PROG_ITEM] = k; /* before the task's first instruction */
    if (g_task.timed) /* the parent's timer starts (src/pool.h) */
      mproc__store64(&g_task.prog[MPROC__PROG_START],
                     mproc__pw_time_word(mproc__plat_now()));
    if (!e || e == &mproc__pool_worker_entry) {
      status = MPROC_ENOENTRY;
    } else {
      g_task.args = &view;
      status = e->fn(&view);
      g_task.args = NULL;
    }
    if (g_task.timed)
      mproc__store64(&g_task.prog[MPROC__PROG_START], 0);
    if (mproc__result_record(hdr, spec, status, k) < 0)
      return MPROC_ENOMEM;
  }
  if (nitems > 0)
    mproc__result_close_run(); /* before anything can send the chunk */
  return MPROC_OK;
}

/* The entry a chunk names, looked up again only when the name changes. */
static const mproc_entry *mproc__worker_entry(const unsigned char *name,
                                              uint32_t nlen,
                                              const unsigned char **last,
                                              uint32_t *last_len,
                                              const mproc_entry *e) {
  char cname[MPROC__PW_NAME_MAX + 1];
  if (e && nlen == *last_len && memcmp(*last, name, nlen) == 0)
    return e;
  memcpy(cname, name, nlen);
  cname[nlen] = 0;
  *last = name;
  *last_len = nlen;
  return mproc__entry_find(cname);
}

/* Runs the chunks r holds (of one TASKS message), appending their results
 * in runs (and sending them early when they grow large).  Returns the
 * number of chunks run, or a negative code for a damaged message or a lost
 * parent. */
static int mproc__worker_run(mproc_conn *conn, mproc__rd *r) {
  const mproc_entry *e = NULL;
  const unsigned char *ename = NULL;
  uint32_t enlen = 0;
  int chunks = 0, rc;
  while (r->left > 0) {
    const unsigned char *name;
    uint64_t id;
    uint32_t nlen, nitems, size;
    if (mproc__pw_rd_task_head(r, &id, &name, &nlen, &nitems, &size) < 0)
      return MPROC_EINVAL;
    e = mproc__worker_entry(name, nlen, &ename, &enlen, e);
    /* The parent learns from the progress slot which task was running if
     * we die (see mproc__worker_died). */
    g_task.prog[MPROC__PROG_ITEM] = 0;
    mproc__store64(&g_task.prog[MPROC__PROG_CHUNK], id);
    if (mproc__result_reserve(g_task.len + MPROC__PW_RESULT_HEAD) < 0)
      return MPROC_ENOMEM;
    mproc__wr_put64(g_task.buf + g_task.len, id);
    mproc__wr_put32(g_task.buf + g_task.len + 8, nitems);
    g_task.len += MPROC__PW_RESULT_HEAD;
    if ((rc = mproc__worker_items(e, r, nitems, size)) < 0)
      return rc;
    chunks++;
    if (r->left > 0 && (g_task.buf != g_task.res ||
                        g_task.len > MPROC__POOL_RES_SLOT / 2)) {
      /* Send the chunks finished so far rather than let the next ones
       * outgrow the result slot, where a death would lose them.  A copy:
       * the slot is built anew at once. */
      if (mproc_conn_send_bytes(conn, g_task.buf, g_task.len) < 0)
        return MPROC_EEOF;
      mproc__result_begin(g_task.slot);
    }
  }
  return chunks;
}

/* Receives and runs one TASKS message, whose chunks are in the input slot
 * it names and then inline, and sends its results.  Returns the number of
 * chunks run, or a negative code: end-of-file, STOP, damage or a lost
 * parent, on which the worker leaves. */
static int mproc__worker_message(mproc_conn *conn) {
  mproc__rd r, shared;
  size_t inlen = 0;
  uint32_t slot, slen;
  int rc, rc2;
  rc = mproc__pool_recv(conn, &g_task.in, &g_task.incap, &inlen,
                        MPROC_FOREVER);
  if (rc < 0)
    return rc;
  if (mproc__pw_rd_kind(&r, g_task.in, inlen) != MPROC__PM_TASKS ||
      mproc__pw_rd_msg_head(&r, &slot, &slen, MPROC__POOL_IN_SLOT) < 0)
    return MPROC_EEOF;
  mproc__result_begin(slot);
  /* Set by the parent before it sent this message, if ever. */
  g_task.timed = mproc__load64(&g_task.prog[MPROC__PROG_TIMED]) != 0;
  mproc__rd_init(&shared, g_task.in_area + (size_t)slot * MPROC__POOL_IN_SLOT,
                 slen);
  rc = mproc__worker_run(conn, &shared);
  if (rc < 0)
    return rc;
  rc2 = mproc__worker_run(conn, &r);
  if (rc2 < 0)
    return rc2;
  if (mproc__result_send(conn) < 0)
    return MPROC_EEOF;
  return rc + rc2;
}

/* The worker's connection, progress slot and result area from its
 * arguments.  0 or MPROC_EINVAL. */
static int mproc__worker_attach(const mproc_args *args, mproc_conn **conn) {
  void *o = NULL;
  mproc_array *prog, *area;
  int64_t slot = -1;
  if (mproc_kwarg_object(args, "mproc.pool.conn", MPROC_OBJ_CONN, &o) < 0)
    return MPROC_EINVAL;
  *conn = (mproc_conn *)o;
  if (mproc_kwarg_object(args, "mproc.pool.progress", MPROC_OBJ_ARRAY, &o) < 0)
    return MPROC_EINVAL;
  prog = (mproc_array *)o;
  if (mproc_kwarg_object(args, "mproc.pool.results", MPROC_OBJ_ARRAY, &o) < 0)
    return MPROC_EINVAL;
  area = (mproc_array *)o;
  if (mproc_kwarg_int(args, "mproc.pool.slot", &slot) < 0 || slot < 0 ||
      (size_t)slot >= mproc_array_length(prog) / MPROC__PROG_STRIDE ||
      (size_t)slot >= mproc_array_length(area) / MPROC__POOL_WORKER_SHM)
    return MPROC_EINVAL;
  g_task.prog = (volatile uint64_t *)mproc_array_ptr(prog) +
                (size_t)slot * MPROC__PROG_STRIDE;
  g_task.area = (unsigned char *)mproc_array_ptr(area) +
                (size_t)slot * MPROC__POOL_WORKER_SHM;
  g_task.in_area = g_task.area + MPROC__POOL_AREA;
  return MPROC_OK;
}

static int mproc__pool_worker_main(const mproc_args *args) {
  mproc_conn *conn = NULL;
  int64_t maxtasks = 0;
  const char *init = "";
  unsigned long done = 0;
  unsigned char hdr[4];
  int rc;
  if (mproc__worker_attach(args, &conn) < 0)
    return 3;
  (void)mproc_kwarg_int(args, "mproc.pool.maxtasks", &maxtasks);
  (void)mproc_kwarg_str(args, "mproc.pool.init", &init);
  if (init && init[0]) {
    const mproc_entry *e = mproc__entry_find(init);
    rc = !e || e == &mproc__pool_worker_entry ? 4 : e->fn(args);
    if (rc != 0) {
      /* Tell the parent this is a real start failure, not a kill: it
       * reports MPROC_ESPAWN for the one and simply retries the other. */
      unsigned char m[8];
      mproc__wr_put32(m, MPROC__PM_INITFAIL);
      mproc__wr_put32(m + 4, (uint32_t)rc);
      (void)mproc_conn_send_bytes(conn, m, sizeof m);
      return rc;
    }
  }
  mproc__wr_put32(hdr, MPROC__PM_READY);
  if (mproc_conn_send_bytes(conn, hdr, 4) < 0)
    return 0;
  for (;;) {
    rc = mproc__worker_message(conn);
    if (rc < 0)
      break;
    done += (unsigned long)rc;
    if (maxtasks > 0 && done >= (unsigned long)maxtasks)
      break;
  }
  free(g_task.in);
  free(g_task.priv);
  memset(&g_task, 0, sizeof g_task);
  return 0;
}

const mproc_entry mproc__pool_worker_entry = {MPROC_POOL_WORKER_ENTRY,
                                              mproc__pool_worker_main};
