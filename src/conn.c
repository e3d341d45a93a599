/*
 * Pipes: Python's multiprocessing.Pipe() and its Connection objects, for
 * byte messages (send_bytes / recv_bytes / poll / close).
 *
 * This file holds what is the same everywhere: the framing (conn.h), the
 * per-connection receive buffer, argument checks, thread safety, closing,
 * and passing an end to a child.  The transport (POSIX pipes, Windows named
 * pipes) is behind the mproc__conn_os_* functions of conn.h.
 *
 * Semantics, where Python leaves room or mproc differs:
 *   - One send is one receive: frames are never split or merged.  A
 *     receive into a buffer that is too small fails with MPROC_ERANGE and
 *     *len set, and the message stays for a receive with a bigger buffer.
 *   - End-of-file (MPROC_EEOF) comes once every copy of the peer end is
 *     closed (or its processes died) and everything sent was received.  A
 *     frame cut short by end-of-file, or bytes that are not a frame (two
 *     processes sending on one end at once), are damage: the connection
 *     reports MPROC_EEOF from then on, as there is nothing reliable left to
 *     read.
 *   - When a parent passes an end to a child it should usually close its
 *     own copy of that end right after mproc_process_start(), as in Python:
 *     end-of-file needs every copy of the sending side closed.  Under the
 *     fork start method a child also inherits copies of every end the
 *     parent held at that moment, passed or not.
 *   - Receiving reads ahead into a 64 KiB buffer (one system call for many
 *     small messages).  Bytes read ahead travel with the end when it is
 *     passed to a child, so a parent that received some messages and then
 *     hands the end over loses nothing; if parent and child both go on
 *     receiving on one end, both see those bytes (sharing one receiving end
 *     between processes is unsafe in Python too).
 *   - In a child, mproc_conn_free() of an end received as an argument only
 *     closes it (the argument list owns and frees it).
 *   - Thread safety: any function may be called from any thread; sends are
 *     serialised with sends, receives and polls with receives and polls
 *     (and with passing the end to a child, which reads the read-ahead).
 *     mproc_conn_close() from another thread does not interrupt a receive
 *     blocked in the OS on POSIX (nothing can wake it there without also
 *     disturbing other processes sharing the pipe); on Windows it cancels
 *     it.  The OS handles are released when the last call in progress
 *     returns.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

/* The read-ahead buffer: the default pipe capacity on Linux, so one read
 * can drain a full pipe. */
#define MPROC__CONN_BUF ((size_t)64 << 10)

/* Version of the description an end carries to a child. */
#define MPROC__CONN_WIRE 1u

struct mproc_conn {
  mproc__obj hdr;
  unsigned dir;     /* MPROC__CONN_R / _W bits; fixed at creation */
  int imported;     /* owned by a child's argument list */
  /* bit 0: closed; bits 1..: calls in progress (steps of 2).  A close
   * releases the OS side at once only when nobody is inside; otherwise the
   * last call to leave does it, so no thread ever uses a closed handle. */
  volatile uint32_t state;
  volatile uint32_t released;
  /* 1 while a message or end-of-file can be received without the OS: read
   * by mproc_wait() without the receive lock. */
  volatile uint32_t ready_hint;
  mproc__mutex_t rlock; /* receive side: buf, off, end, cap, eof, broken */
  mproc__mutex_t wlock; /* send side */
  unsigned char *buf;
  size_t cap, off, end;
  int eof;    /* the OS reported end-of-file: nothing more will come */
  int broken; /* damaged stream: report end-of-file from now on */
  mproc__conn_os *os;
};

/* ---- framing ------------------------------------------------------------------ */

static void mproc__put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t mproc__get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

void mproc__conn_frame_header(unsigned char hdr[MPROC__CONN_HDR], uint32_t len) {
  mproc__put32(hdr, len);
  mproc__put32(hdr + 4, len ^ MPROC__CONN_CHECK);
}

int mproc__conn_frame_parse(const unsigned char *p, size_t *len) {
  uint32_t n = mproc__get32(p);
  if ((n ^ MPROC__CONN_CHECK) != mproc__get32(p + 4) ||
      (size_t)n > MPROC_CONN_MSG_MAX)
    return MPROC_EINVAL;
  *len = (size_t)n;
  return MPROC_OK;
}

int mproc__conn_frame_next(const unsigned char *p, size_t n,
                           size_t *payload_len, int *have_header) {
  size_t len;
  *payload_len = 0;
  *have_header = 0;
  if (n < MPROC__CONN_HDR)
    return 0;
  if (mproc__conn_frame_parse(p, &len) < 0)
    return MPROC_EINVAL;
  *payload_len = len;
  *have_header = 1;
  return n - MPROC__CONN_HDR >= len ? 1 : 0;
}

/* ---- life cycle ------------------------------------------------------------------ */

static int mproc__conn_valid(const mproc_conn *c) {
  return mproc__obj_is(c, &mproc__conn_type);
}

static void mproc__conn_release(mproc_conn *c) {
  if (mproc__xchg32(&c->released, 1u) == 0)
    mproc__conn_os_close(c->os);
}

static void mproc__conn_leave(mproc_conn *c) {
  uint32_t old = mproc__add32(&c->state, (uint32_t)-2);
  if (old == 3u) /* closed, and we were the last one inside */
    mproc__conn_release(c);
}

static int mproc__conn_enter(mproc_conn *c) {
  uint32_t old = mproc__add32(&c->state, 2u);
  if (old & 1u) {
    mproc__conn_leave(c);
    return MPROC_ECLOSED;
  }
  return MPROC_OK;
}

static mproc_conn *mproc__conn_new(mproc__conn_os *os, unsigned dir) {
  mproc__mutex_t init = MPROC__MUTEX_INITIALIZER;
  mproc_conn *c = (mproc_conn *)mproc__obj_new(sizeof(*c), &mproc__conn_type);
  if (!c)
    return NULL;
  c->dir = dir;
  c->rlock = init;
  c->wlock = init;
  c->os = os;
  return c;
}

static void mproc__conn_destroy(mproc_conn *c) {
  (void)mproc_conn_close(c);
  c->hdr.magic = 0;
  free(c->buf);
  free(c);
}

int mproc_pipe(mproc_conn **a, mproc_conn **b, int duplex) {
  mproc__conn_os *oa = NULL, *ob = NULL;
  mproc_conn *ca, *cb;
  int rc;
  if (!a || !b || a == b)
    return MPROC_EINVAL;
  *a = *b = NULL;
  rc = mproc__conn_os_pair(&oa, &ob, duplex != 0);
  if (rc < 0)
    return rc;
  ca = mproc__conn_new(oa, duplex ? MPROC__CONN_R | MPROC__CONN_W
                                   : MPROC__CONN_R);
  cb = mproc__conn_new(ob, duplex ? MPROC__CONN_R | MPROC__CONN_W
                                   : MPROC__CONN_W);
  if (!ca || !cb) {
    free(ca);
    free(cb);
    mproc__conn_os_close(oa);
    mproc__conn_os_close(ob);
    return MPROC_ENOMEM;
  }
  *a = ca;
  *b = cb;
  return MPROC_OK;
}

int mproc_conn_close(mproc_conn *c) {
  uint32_t v;
  if (!mproc__conn_valid(c))
    return MPROC_EINVAL;
  /* Count ourselves in while closing, so a caller that leaves meanwhile
   * cannot release the OS side under the cancel below. */
  if (mproc__conn_enter(c) < 0)
    return MPROC_OK; /* closing twice is harmless, as in Python */
  v = mproc__load32(&c->state);
  while (!(v & 1u) && !mproc__cas32(&c->state, &v, v | 1u)) {
  }
  if (!(v & 1u) && (v >> 1) > 1u)
    mproc__conn_os_cancel(c->os); /* wake the others (where possible) */
  mproc__conn_leave(c);
  return MPROC_OK;
}

mproc_conn *mproc_conn_free(mproc_conn *c) {
  if (!mproc__conn_valid(c))
    return NULL;
  if (c->imported) {
    /* A child's end belongs to its argument list, which frees it: freeing
     * it here too would free it twice.  Closing is what the caller meant. */
    (void)mproc_conn_close(c);
    return NULL;
  }
  mproc__conn_destroy(c);
  return NULL;
}

/* ---- sending -------------------------------------------------------------------- */

int mproc_conn_send_bytes(mproc_conn *c, const void *data, size_t len) {
  unsigned char hdr[MPROC__CONN_HDR];
  int rc;
  if (!mproc__conn_valid(c) || (!data && len))
    return MPROC_EINVAL;
  if (len > MPROC_CONN_MSG_MAX)
    return MPROC_E2BIG;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (c->dir & MPROC__CONN_W) {
    mproc__conn_frame_header(hdr, (uint32_t)len);
    mproc__mutex_lock(&c->wlock);
    rc = mproc__conn_os_write(c->os, hdr, sizeof hdr, data, len);
    mproc__mutex_unlock(&c->wlock);
  } else {
    rc = MPROC_EPERM;
  }
  mproc__conn_leave(c);
  return rc;
}

int mproc__conn_send_raw(mproc_conn *c, const void *data, size_t len) {
  int rc;
  if (!mproc__conn_valid(c) || (!data && len))
    return MPROC_EINVAL;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (!(c->dir & MPROC__CONN_W)) {
    rc = MPROC_EPERM;
  } else if (len) {
    mproc__mutex_lock(&c->wlock);
    rc = mproc__conn_os_write(c->os, (const unsigned char *)data, len, NULL, 0);
    mproc__mutex_unlock(&c->wlock);
  }
  mproc__conn_leave(c);
  return rc;
}

/* ---- receiving (callers hold rlock) ---------------------------------------------- */

static double mproc__deadline(double timeout) {
  return timeout < 0 ? -1.0 : mproc__plat_now() + timeout;
}

static void mproc__conn_update_hint(mproc_conn *c) {
  uint32_t ready = c->end > c->off || c->eof || c->broken;
  if (mproc__load32(&c->ready_hint) != ready)
    mproc__store32(&c->ready_hint, ready);
}

static void mproc__conn_break(mproc_conn *c) {
  c->broken = 1;
  c->off = c->end = 0;
}

/* A frame bigger than the buffer: everything buffered belongs to it, the
 * rest is read straight into the caller's buffer.  If the wait ends before
 * the frame is complete, what was read is put back into the (grown)
 * buffer, so the message is still whole for the next call. */
static int mproc__conn_recv_direct(mproc_conn *c, unsigned char *ubuf,
                                   size_t plen, double deadline, size_t *len) {
  size_t pos = c->end - c->off - MPROC__CONN_HDR, got = 0, need;
  unsigned char *nb;
  int rc;
  if (pos)
    memcpy(ubuf, c->buf + c->off + MPROC__CONN_HDR, pos);
  while (pos < plen) {
    rc = mproc__conn_os_read(c->os, ubuf + pos, plen - pos, deadline, &got);
    if (rc == MPROC_EEOF) {
      c->eof = 1;
      mproc__conn_break(c); /* end-of-file inside a frame */
      return MPROC_EEOF;
    }
    if (rc < 0) {
      memmove(c->buf, c->buf + c->off, MPROC__CONN_HDR);
      c->off = 0;
      need = MPROC__CONN_HDR + pos;
      if (need > c->cap) {
        nb = (unsigned char *)realloc(c->buf, need);
        if (!nb) {
          mproc__conn_break(c); /* cannot keep it: the stream is lost */
          return MPROC_ENOMEM;
        }
        c->buf = nb;
        c->cap = need;
      }
      memcpy(c->buf + MPROC__CONN_HDR, ubuf, pos);
      c->end = need;
      return rc;
    }
    pos += got;
  }
  c->off = c->end = 0;
  *len = plen;
  return MPROC_OK;
}

static int mproc__conn_recv_locked(mproc_conn *c, unsigned char *ubuf,
                                   size_t cap, size_t *len, double deadline) {
  size_t avail, plen, got = 0;
  int have, rc;
  if (c->broken)
    return MPROC_EEOF;
  if (!c->buf) {
    c->buf = (unsigned char *)malloc(MPROC__CONN_BUF);
    if (!c->buf)
      return MPROC_ENOMEM;
    c->cap = MPROC__CONN_BUF;
  }
  for (;;) {
    avail = c->end - c->off;
    rc = mproc__conn_frame_next(c->buf + c->off, avail, &plen, &have);
    if (rc < 0) {
      mproc__conn_break(c);
      return MPROC_EEOF;
    }
    if (have && plen > cap) {
      *len = plen;
      return MPROC_ERANGE;
    }
    if (rc == 1) {
      if (plen)
        memcpy(ubuf, c->buf + c->off + MPROC__CONN_HDR, plen);
      c->off += MPROC__CONN_HDR + plen;
      if (c->off == c->end)
        c->off = c->end = 0;
      *len = plen;
      return MPROC_OK;
    }
    if (c->eof) {
      if (avail)
        mproc__conn_break(c); /* a frame cut short by end-of-file */
      return MPROC_EEOF;
    }
    if (have && MPROC__CONN_HDR + plen > c->cap)
      return mproc__conn_recv_direct(c, ubuf, plen, deadline, len);
    /* The partial frame moves to the front so the frame fits (it is no
     * bigger than the buffer) and the read gets as much room as there is. */
    if (c->off) {
      memmove(c->buf, c->buf + c->off, avail);
      c->off = 0;
      c->end = avail;
    }
    rc = mproc__conn_os_read(c->os, c->buf + c->end, c->cap - c->end,
                             deadline, &got);
    if (rc == MPROC_EEOF) {
      c->eof = 1;
      continue;
    }
    if (rc < 0)
      return rc;
    c->end += got;
  }
}

int mproc_conn_recv_bytes(mproc_conn *c, void *buf, size_t cap, size_t *len,
                          double timeout) {
  int rc;
  if (!mproc__conn_valid(c) || !len || (!buf && cap) || isnan(timeout))
    return MPROC_EINVAL;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (c->dir & MPROC__CONN_R) {
    double deadline = mproc__deadline(timeout);
    size_t n = 0;
    mproc__mutex_lock(&c->rlock);
    rc = mproc__conn_recv_locked(c, (unsigned char *)buf, cap, &n, deadline);
    /* A big buffer grown to keep a partial message goes back to normal. */
    if (c->cap > MPROC__CONN_BUF && c->off == c->end) {
      unsigned char *nb = (unsigned char *)realloc(c->buf, MPROC__CONN_BUF);
      if (nb) {
        c->buf = nb;
        c->cap = MPROC__CONN_BUF;
      }
    }
    mproc__conn_update_hint(c);
    mproc__mutex_unlock(&c->rlock);
    *len = rc == MPROC_OK || rc == MPROC_ERANGE ? n : 0;
  } else {
    rc = MPROC_EPERM;
  }
  mproc__conn_leave(c);
  return rc;
}

int mproc_conn_poll(mproc_conn *c, double timeout) {
  int rc;
  if (!mproc__conn_valid(c) || isnan(timeout))
    return MPROC_EINVAL;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (c->dir & MPROC__CONN_R) {
    double deadline = mproc__deadline(timeout);
    mproc__mutex_lock(&c->rlock);
    /* Bytes of a message are enough, as in Python: waiting for a whole
     * frame could wait forever on a big message whose sender is blocked
     * until someone reads. */
    if (c->end > c->off || c->eof || c->broken)
      rc = 1;
    else
      rc = mproc__conn_os_poll(c->os, deadline);
    mproc__mutex_unlock(&c->rlock);
  } else {
    rc = MPROC_EPERM;
  }
  mproc__conn_leave(c);
  return rc;
}

int mproc__conn_wait_handle(mproc_conn *c, mproc_handle_t *out,
                            int *ready_now) {
  int rc;
  if (!mproc__conn_valid(c) || !out || !ready_now)
    return MPROC_EINVAL;
  *ready_now = 0;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (c->dir & MPROC__CONN_R) {
    /* Without the receive lock: a thread blocked in a receive must not
     * hold up mproc_wait() in another. */
    if (mproc__load32(&c->ready_hint))
      *ready_now = 1;
    rc = mproc__conn_os_wait_handle(c->os, out, ready_now);
  } else {
    rc = MPROC_EPERM;
  }
  mproc__conn_leave(c);
  return rc;
}

/* ---- passing an end to a child ------------------------------------------------------
 * Description: u8 version, u8 direction bits, u32 n + n bytes read ahead
 * and not yet received; then the transport's handles. */

static int mproc__conn_export(const void *obj, mproc__wr *w,
                              mproc__handles *hs) {
  mproc_conn *c = (mproc_conn *)(uintptr_t)obj;
  size_t n;
  int rc;
  if (!mproc__conn_valid(c))
    return MPROC_EINVAL;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  mproc__mutex_lock(&c->rlock);
  n = c->broken ? 0 : c->end - c->off;
  if (n > MPROC_ARGS_MAX) {
    rc = MPROC_E2BIG;
  } else {
    mproc__wr_u8(w, (uint8_t)MPROC__CONN_WIRE);
    mproc__wr_u8(w, (uint8_t)c->dir);
    mproc__wr_u32(w, (uint32_t)n);
    if (n)
      mproc__wr_bytes(w, c->buf + c->off, n);
    rc = w->oom ? MPROC_ENOMEM : mproc__conn_os_export(c->os, c->dir, hs);
  }
  mproc__mutex_unlock(&c->rlock);
  mproc__conn_leave(c);
  return rc < 0 ? rc : MPROC_OK;
}

static int mproc__conn_import(mproc__rd *r, const mproc_handle_t *hs,
                              size_t nh, void **out) {
  uint8_t version = mproc__rd_u8(r);
  unsigned dir = mproc__rd_u8(r);
  uint32_t n = mproc__rd_u32(r);
  const unsigned char *bytes = mproc__rd_bytes(r, n);
  mproc__conn_os *os = NULL;
  mproc_conn *c;
  int rc;
  *out = NULL;
  if (r->bad || version != MPROC__CONN_WIRE ||
      (dir != MPROC__CONN_R && dir != MPROC__CONN_W &&
       dir != (MPROC__CONN_R | MPROC__CONN_W)) ||
      (n && !(dir & MPROC__CONN_R)))
    dir = 0; /* the transport refuses it and closes the handles */
  rc = mproc__conn_os_import(hs, nh, dir, &os);
  if (rc < 0)
    return rc;
  c = mproc__conn_new(os, dir);
  if (c && n) {
    c->cap = n > MPROC__CONN_BUF ? (size_t)n : MPROC__CONN_BUF;
    c->buf = (unsigned char *)malloc(c->cap);
    if (c->buf) {
      memcpy(c->buf, bytes, n);
      c->end = n;
      c->ready_hint = 1;
    }
  }
  if (!c || (n && !c->buf)) {
    if (c)
      free(c);
    mproc__conn_os_close(os);
    return MPROC_ENOMEM;
  }
  c->imported = 1;
  *out = c;
  return MPROC_OK;
}

static void mproc__conn_free_obj(void *obj) {
  mproc_conn *c = (mproc_conn *)obj;
  if (mproc__conn_valid(c))
    mproc__conn_destroy(c);
}

const mproc__objtype mproc__conn_type = {MPROC_OBJ_CONN, mproc__conn_export,
                                         mproc__conn_import,
                                         mproc__conn_free_obj};
