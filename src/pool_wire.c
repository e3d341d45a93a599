/* The pool's wire format: the messages between the handler thread and a
 * worker (src/pool.c, src/pool_worker.c), and the buffers they are built
 * and received in.  Little-endian, written with wire.c's writers and read
 * only through mproc__rd, which fails closed: everything a worker sends,
 * and everything in a dead worker's result area, is untrusted.
 *
 *   down  u32 TASKS, u32 slot, u32 shared, then chunks  | u32 STOP
 *           chunk:  u64 id, u32 name_len, name, u32 nitems, u32 size,
 *                   inputs: size == VAR: nitems x (u32 len, bytes)
 *                           else (> 0):  nitems x size bytes
 *   up    u32 READY         | u32 INITFAIL, i32 code     |
 *         u32 RESULTS, u32 slot, u32 shared, then chunks:
 *           chunk:  u64 id, u32 nitems, runs covering nitems items:
 *                   u32 n, i32 status, u32 len, n x len bytes
 *                   (n 0, in a result area only: a run being built,
 *                   of as many results as its bytes hold)
 *
 * The first `shared` bytes of a message's chunks are in the worker's
 * input slot (TASKS) or result slot (RESULTS, after a copy of the head)
 * numbered `slot` (src/pool.h), the rest follow inline: a message of small
 * chunks is then a 12-byte note in the pipe, its chunks written once into
 * shared memory and read there in place.
 *
 * Why sizes and runs rather than a length per item: a map of small inputs
 * of one size (the common case) then costs one header per chunk each way,
 * the inputs of a chunk are copied with one memcpy when they lie side by
 * side, and the parent stores a chunk's results with one copy instead of
 * settling them item by item (src/pool.c: mproc__settle_run).
 *
 * A TASKS message may be answered by several RESULTS messages, each with
 * whole chunks.  A worker builds a RESULTS message in its result area in
 * shared memory, so the area holds the same format, possibly cut short
 * inside a run (fuzz/fuzz_pool_wire.c feeds these readers damage). */
#include <stdlib.h>
#include <string.h>

#include "pool.h"

int mproc__pool_grow(unsigned char **buf, size_t *cap, size_t need) {
  size_t c = *cap ? *cap : 4096;
  unsigned char *nb;
  if (need <= *cap)
    return MPROC_OK;
  while (c < need)
    c = c > SIZE_MAX / 2 ? need : c * 2;
  nb = (unsigned char *)realloc(*buf, c);
  if (!nb)
    return MPROC_ENOMEM;
  *buf = nb;
  *cap = c;
  return MPROC_OK;
}

int mproc__pool_recv(mproc_conn *c, unsigned char **buf, size_t *cap,
                     size_t *len, double timeout) {
  int rc;
  if (!*buf && mproc__pool_grow(buf, cap, 65536) < 0)
    return MPROC_ENOMEM;
  rc = mproc_conn_recv_bytes(c, *buf, *cap, len, timeout);
  if (rc == MPROC_ERANGE) {
    if (mproc__pool_grow(buf, cap, *len) < 0)
      return MPROC_ENOMEM;
    rc = mproc_conn_recv_bytes(c, *buf, *cap, len, timeout);
  }
  return rc;
}

size_t mproc__pw_task_head(unsigned char *p, uint64_t id, const char *name,
                           size_t name_len, size_t nitems, uint32_t size) {
  mproc__wr_put64(p, id);
  mproc__wr_put32(p + 8, (uint32_t)name_len);
  memcpy(p + 12, name, name_len);
  mproc__wr_put32(p + 12 + name_len, (uint32_t)nitems);
  mproc__wr_put32(p + 16 + name_len, size);
  return MPROC__PW_TASK_HEAD + name_len;
}

size_t mproc__pw_input(unsigned char *p, const void *data, size_t len) {
  mproc__wr_put32(p, (uint32_t)len);
  if (len)
    memcpy(p + 4, data, len);
  return 4 + len;
}

size_t mproc__pw_inputs_fixed(unsigned char *p, const mproc_bytes *in, size_t n,
                              size_t size) {
  const unsigned char *start, *end;
  unsigned char *to = p;
  size_t j;
  if (n == 0 || size == 0)
    return 0;
  start = (const unsigned char *)in[0].data;
  end = start + size;
  for (j = 1; j < n; j++) {
    const unsigned char *d = (const unsigned char *)in[j].data;
    if (d != end) {
      memcpy(to, start, (size_t)(end - start));
      to += end - start;
      start = d;
      end = d;
    }
    end += size;
  }
  memcpy(to, start, (size_t)(end - start));
  return n * size;
}

size_t mproc__pw_run_head(unsigned char *p, uint32_t n, int status,
                          uint32_t len) {
  mproc__wr_put32(p, n);
  mproc__wr_put32(p + 4, (uint32_t)status);
  mproc__wr_put32(p + 8, len);
  return MPROC__PW_RUN_HEAD;
}

size_t mproc__pw_msg_head(unsigned char *p, uint32_t kind, uint32_t slot,
                          uint32_t shared) {
  mproc__wr_put32(p, kind);
  mproc__wr_put32(p + 4, slot);
  mproc__wr_put32(p + 8, shared);
  return MPROC__PW_MSG_HEAD;
}

/* A time as a word of shared memory: its bits (a monotonic time is
 * positive, so never the word 0 that means "none"). */
uint64_t mproc__pw_time_word(double t) {
  uint64_t w;
  memcpy(&w, &t, sizeof w);
  return w;
}

double mproc__pw_word_time(uint64_t w) {
  double t;
  memcpy(&t, &w, sizeof t);
  return t;
}

int mproc__pw_rd_msg_head(mproc__rd *r, uint32_t *slot, uint32_t *shared,
                          size_t room) {
  *slot = mproc__rd_u32(r);
  *shared = mproc__rd_u32(r);
  if (r->bad || *slot >= MPROC__POOL_NSLOTS || *shared > room) {
    r->bad = 1;
    return MPROC_EINVAL;
  }
  return MPROC_OK;
}

int mproc__pw_rd_task_head(mproc__rd *r, uint64_t *id,
                           const unsigned char **name, uint32_t *name_len,
                           uint32_t *nitems, uint32_t *size) {
  *id = mproc__rd_u64(r);
  *name_len = mproc__rd_u32(r);
  if (r->bad || *name_len == 0 || *name_len > MPROC__PW_NAME_MAX)
    return MPROC_EINVAL;
  *name = mproc__rd_bytes(r, *name_len);
  *nitems = mproc__rd_u32(r);
  *size = mproc__rd_u32(r);
  /* Inputs of size 0 travel with a length each, so that a chunk's item
   * count is bounded by its bytes whatever its form. */
  return r->bad || *size == 0 ? MPROC_EINVAL : MPROC_OK;
}

int mproc__pw_rd_inputs_fixed(mproc__rd *r, uint32_t nitems, uint32_t size,
                              const unsigned char **base) {
  if ((uint64_t)nitems * size > r->left) {
    r->bad = 1;
    return MPROC_EINVAL;
  }
  *base = mproc__rd_bytes(r, (size_t)nitems * size);
  return MPROC_OK;
}

int mproc__pw_rd_input(mproc__rd *r, uint32_t size, const unsigned char **data,
                       uint32_t *len) {
  *len = size == MPROC__PW_VAR ? mproc__rd_u32(r) : size;
  *data = mproc__rd_bytes(r, *len);
  return r->bad ? MPROC_EINVAL : MPROC_OK;
}

int mproc__pw_rd_result_head(mproc__rd *r, uint64_t *id, uint32_t *nitems) {
  *id = mproc__rd_u64(r);
  *nitems = mproc__rd_u32(r);
  return r->bad ? MPROC_EINVAL : MPROC_OK;
}

int mproc__pw_rd_run(mproc__rd *r, uint32_t max, int cut_ok,
                     mproc__pw_run *run) {
  uint64_t need;
  run->n = mproc__rd_u32(r);
  run->status = (int)mproc__rd_u32(r);
  run->len = mproc__rd_u32(r);
  run->data = NULL;
  /* A failed task has no result; a run still open (count 0) holds as
   * many results as there are bytes, and only in a result area. */
  if (r->bad || run->n > max || (run->status != 0 && run->len != 0) ||
      (run->n == 0 && (!cut_ok || run->len == 0))) {
    r->bad = 1;
    return MPROC_EINVAL;
  }
  need = (uint64_t)(run->n ? run->n : max) * run->len; /* no overflow */
  if (need > r->left) {
    if (!cut_ok) {
      r->bad = 1;
      return MPROC_EINVAL;
    }
    /* Cut: keep the whole results there; nothing after them counts. */
    run->n = (uint32_t)(r->left / run->len); /* need > left: len > 0 */
    run->data = mproc__rd_bytes(r, (size_t)run->n * run->len);
    r->left = 0;
    return MPROC_OK;
  }
  if (run->n == 0) /* open, with room for all: the area's last run */
    run->n = max;
  run->data = mproc__rd_bytes(r, (size_t)need);
  return MPROC_OK;
}

uint32_t mproc__pw_rd_kind(mproc__rd *r, const unsigned char *m, size_t n) {
  mproc__rd_init(r, m, n);
  return mproc__rd_u32(r);
}
