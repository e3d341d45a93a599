/* Captured output (MPROC_STDIO_CAPTURE, include/mproc/output.h): one pipe
 * and one reader thread per captured stream of a child, and the buffer
 * they fill.
 *
 * Why a thread per stream, started before the child: a pipe holds only
 * 64 KiB (Linux; Windows: the size we ask for), so a child writing more to
 * stdout and stderr than that blocks until someone reads, and a parent
 * that reads only after join would deadlock with it (Python's
 * subprocess.communicate() runs reader threads on Windows for the same
 * reason).  The threads never touch mproc__lock, so join, signals and
 * close work as before.
 *
 * Why the pipe is read only under the capture's lock, by whoever holds it
 * (mproc__capture_pump_locked): once the child has ended, its bytes are in
 * the pipe, but the reader thread may not have taken them yet.
 * mproc_process_output() takes them itself, and a read that is serialised
 * with the thread's keeps the bytes in order.  It takes as many as the
 * pipe held when it looked (mproc__cap_pipe_avail): all the child wrote,
 * and nothing that makes it wait for a descendant still holding the
 * stream (it would never see end-of-file). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The most a reader thread takes per hold of the lock, so that a child
 * writing without pause does not keep output_read callers out. */
#define MPROC__CAP_SESSION ((size_t)1 << 20)

struct mproc__capture {
  mproc__mutex_t mu; /* everything below but `w` and `next` */
  mproc__cond cv;    /* broadcast on new bytes and on end-of-file */
  mproc__cap_pipe *pipe;
  mproc__thread *thread;
  /* The write end until the start has passed it on; registered in
   * g_inflight meanwhile (mproc__lock), see mproc__capture_forget_forked. */
  mproc_handle_t w;
  struct mproc__capture *next;
  unsigned char *buf; /* retained bytes at buf[start .. start+len) */
  size_t start, len, alloc, limit;
  uint64_t total;   /* bytes received */
  uint64_t dropped; /* of those, not retained: total - len */
  uint64_t cursor;  /* mproc_process_output_read's position in total */
  int eof;          /* end-of-file seen (or a read error: no more come) */
  int stop;         /* being closed */
};

static struct mproc__capture *g_inflight; /* guarded by mproc__lock */

/* ---- the buffer --------------------------------------------------------------- */

/* Room for n more bytes after the retained ones: move them down or grow
 * (with a limit, up to twice it, so the move happens once per `limit`
 * dropped bytes).  0 or MPROC_ENOMEM. */
static int mproc__capture_room(mproc__capture *c, size_t n) {
  size_t want, cap;
  unsigned char *nb;
  if (c->start + c->len + n <= c->alloc)
    return MPROC_OK;
  if (c->start && c->len + n <= c->alloc) {
    memmove(c->buf, c->buf + c->start, c->len);
    c->start = 0;
    return MPROC_OK;
  }
  want = c->len + n;
  cap = c->alloc < 4096 ? 4096 : c->alloc;
  while (cap < want && cap <= ((size_t)-1) / 2)
    cap *= 2;
  if (cap < want)
    cap = want;
  if (c->limit && c->limit <= ((size_t)-1) / 2 && cap > 2 * c->limit)
    cap = 2 * c->limit > want ? 2 * c->limit : want;
  if (c->start) {
    memmove(c->buf, c->buf + c->start, c->len);
    c->start = 0;
  }
  nb = (unsigned char *)realloc(c->buf, cap);
  if (!nb)
    return MPROC_ENOMEM;
  c->buf = nb;
  c->alloc = cap;
  return MPROC_OK;
}

/* Keep n new bytes, dropping the oldest beyond the limit.  When memory
 * runs out, everything kept so far is dropped with the new bytes: the pipe
 * must be drained whatever happens, or the child would block forever, and
 * what stays kept is always the last bytes (the ones at offsets dropped ..
 * total, which output_read's cursor counts on). */
static void mproc__capture_append(mproc__capture *c, const unsigned char *d,
                                  size_t n) {
  c->total += n;
  if (c->limit && n > c->limit) {
    c->dropped += n - c->limit;
    d += n - c->limit;
    n = c->limit;
  }
  if (c->limit && c->len + n > c->limit) {
    size_t drop = c->len + n - c->limit;
    c->start += drop;
    c->len -= drop;
    c->dropped += drop;
  }
  if (mproc__capture_room(c, n) < 0) {
    c->dropped = c->total;
    c->start = c->len = 0;
    return;
  }
  memcpy(c->buf + c->start + c->len, d, n);
  c->len += n;
}

/* Move up to `budget` bytes from the pipe into the buffer (c->mu held).
 * 1 at end-of-file or on a read error (no more will come), else 0. */
static int mproc__capture_pump_locked(mproc__capture *c, size_t budget) {
  const unsigned char *d;
  size_t got, moved = 0;
  int rc = MPROC_OK;
  while (!c->eof && moved < budget) {
    rc = mproc__cap_pipe_read(c->pipe, &d, &got);
    if (rc < 0 || got == 0)
      break;
    mproc__capture_append(c, d, got);
    moved += got;
  }
  if (rc < 0)
    c->eof = 1; /* MPROC_EEOF, or an error after which nothing comes */
  if (moved || rc < 0)
    mproc__cond_broadcast(&c->cv);
  return c->eof;
}

/* For a child that has ended (c->mu held): move what the pipe holds now
 * (plus one read that may come back short), which is every byte the child
 * wrote, without waiting for an end-of-file a descendant may withhold. */
static void mproc__capture_pump_ended(mproc__capture *c) {
  mproc__cap_pipe_settle(c->pipe);
  (void)mproc__capture_pump_locked(c, mproc__cap_pipe_avail(c->pipe) + 1);
}

static void mproc__capture_main(void *arg) {
  mproc__capture *c = (mproc__capture *)arg;
  int done = 0;
  while (!done) {
    int woken = mproc__cap_pipe_wait(c->pipe) == 0;
    mproc__mutex_lock(&c->mu);
    done = woken || c->stop ||
           mproc__capture_pump_locked(c, MPROC__CAP_SESSION) != 0;
    mproc__mutex_unlock(&c->mu);
  }
}

/* ---- life cycle (called with mproc__lock held) ---------------------------------- */

static void mproc__capture_free(mproc__capture *c) {
  if (!c)
    return;
  if (c->thread) {
    mproc__mutex_lock(&c->mu);
    c->stop = 1;
    mproc__mutex_unlock(&c->mu);
    mproc__cap_pipe_wake(c->pipe);
    mproc__thread_join(c->thread);
  }
  mproc__capture_passed(c);
  mproc__cap_pipe_close(c->pipe);
  if (c->cv.impl)
    mproc__cond_destroy(&c->cv);
  free(c->buf);
  free(c);
}

int mproc__capture_open(mproc_process *p, int stream) {
  mproc__mutex_t init = MPROC__MUTEX_INITIALIZER;
  mproc__capture *c = (mproc__capture *)calloc(1, sizeof(*c));
  int rc;
  if (!c)
    return MPROC_ENOMEM;
  c->mu = init;
  c->w = MPROC_INVALID_HANDLE;
  c->limit = p->capture_limit;
  rc = mproc__cond_init(&c->cv);
  if (rc < 0)
    goto finish;
  rc = mproc__cap_pipe_open(&c->pipe, &c->w);
  if (rc < 0)
    goto finish;
  mproc__plat_private_add(c->w); /* not for fork children: see above */
  c->next = g_inflight;
  g_inflight = c;
  /* Before the child exists: a thread that cannot start fails the start,
   * not a child that would block on a pipe nobody reads. */
  rc = mproc__thread_start(&c->thread, mproc__capture_main, c);
  if (rc < 0)
    goto finish;
  p->stdio_h[stream] = c->w;
  p->capture[stream] = c;
  c = NULL;
finish:
  mproc__capture_free(c);
  return rc;
}

void mproc__capture_passed(mproc__capture *c) {
  mproc__capture **pp;
  if (!c || c->w == MPROC_INVALID_HANDLE)
    return;
  for (pp = &g_inflight; *pp && *pp != c; pp = &(*pp)->next) {
  }
  if (*pp)
    *pp = c->next;
  /* Ours closed, the reader sees end-of-file once the child's copy (and
   * those of the child's descendants) are closed too. */
  mproc__plat_private_del(c->w);
  mproc__plat_close_handle(c->w);
  c->w = MPROC_INVALID_HANDLE;
}

void mproc__capture_drop(mproc_process *p) {
  int i;
  for (i = 1; i < 3; i++) {
    mproc__capture_free(p->capture[i]);
    p->capture[i] = NULL;
  }
}

void mproc__capture_forget_forked(void) {
  /* The write ends of captures whose start another thread of the parent
   * has under way (a spawn runs without mproc__lock) are closed with the
   * other registered descriptors; held here, they would keep that child's
   * stream open after it ended.  One store: the list's nodes are not ours. */
  g_inflight = NULL;
}

/* ---- the public calls ------------------------------------------------------------ */

/* The capture of p's `stream`, held (p->readers) so that a close waits
 * for the caller's mproc__capture_release.  `ended`: the child must have
 * ended (it is reaped here if it has). */
static int mproc__capture_get(mproc_process *p, int stream, int ended,
                              mproc__capture **out) {
  int code, rc;
  if (!p || (stream != MPROC_STDOUT && stream != MPROC_STDERR))
    return MPROC_EINVAL;
  if (p->kind != MPROC__K_CHILD)
    return p->state == MPROC__P_CLOSED ? MPROC_ECLOSED : MPROC_EPERM;
  if (ended && (rc = mproc_process_exitcode(p, &code)) <= 0)
    return rc == 0 ? MPROC_ESTATE : rc; /* reaps; checks creator/closed */
  mproc__mutex_lock(&mproc__lock);
  if ((rc = mproc__check_child(p)) < 0)
    goto finish;
  if (p->stdio_mode[stream] != MPROC_STDIO_CAPTURE) {
    rc = MPROC_ENOTFOUND;
    goto finish;
  }
  if (!p->capture[stream]) {
    rc = MPROC_ESTATE; /* not started */
    goto finish;
  }
  p->readers++;
  *out = p->capture[stream];
finish:
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

static void mproc__capture_release(mproc_process *p) {
  mproc__mutex_lock(&mproc__lock);
  p->readers--;
  mproc__mutex_unlock(&mproc__lock);
}

int mproc_process_output(mproc_process *p, int stream, void *buf, size_t cap,
                         size_t *len) {
  mproc__capture *c = NULL;
  int rc;
  if (!len || (cap && !buf))
    return MPROC_EINVAL;
  rc = mproc__capture_get(p, stream, 1, &c);
  if (rc < 0)
    return rc;
  mproc__mutex_lock(&c->mu);
  mproc__capture_pump_ended(c);
  *len = c->len;
  if (c->len > cap)
    rc = MPROC_ERANGE;
  else if (c->len)
    memcpy(buf, c->buf + c->start, c->len);
  mproc__mutex_unlock(&c->mu);
  mproc__capture_release(p);
  return rc;
}

/* Copy what output_read has not returned yet (c->mu held): the number of
 * bytes copied, 0 if none. */
static size_t mproc__capture_take(mproc__capture *c, unsigned char *buf,
                                  size_t cap) {
  size_t n, off;
  if (c->cursor < c->dropped)
    c->cursor = c->dropped; /* dropped by the limit before it was read */
  n = (size_t)(c->total - c->cursor);
  if (n > cap)
    n = cap;
  off = (size_t)(c->cursor - c->dropped);
  if (n)
    memcpy(buf, c->buf + c->start + off, n);
  c->cursor += n;
  return n;
}

int mproc_process_output_read(mproc_process *p, int stream, void *buf,
                              size_t cap, size_t *len, double timeout) {
  mproc__capture *c = NULL;
  double deadline = mproc__deadline(timeout);
  int rc;
  if (!buf || !len || cap == 0 || isnan(timeout))
    return MPROC_EINVAL;
  *len = 0;
  rc = mproc__capture_get(p, stream, 0, &c);
  if (rc < 0)
    return rc;
  mproc__mutex_lock(&c->mu);
  for (;;) {
    if ((*len = mproc__capture_take(c, (unsigned char *)buf, cap)) > 0) {
      rc = MPROC_OK;
      break;
    }
    if (c->eof || c->stop) {
      rc = MPROC_EEOF;
      break;
    }
    if (mproc__expired(deadline, mproc__plat_now())) {
      rc = MPROC_ETIMEDOUT;
      break;
    }
    (void)mproc__cond_wait(&c->cv, &c->mu, deadline);
  }
  mproc__mutex_unlock(&c->mu);
  mproc__capture_release(p);
  return rc;
}

int mproc_process_output_info(mproc_process *p, int stream,
                              mproc_output_info *info) {
  mproc__capture *c = NULL;
  int rc;
  if (!info)
    return MPROC_EINVAL;
  rc = mproc__capture_get(p, stream, 0, &c);
  if (rc < 0)
    return rc;
  mproc__mutex_lock(&c->mu);
  info->total = c->total;
  info->dropped = c->dropped;
  info->eof = c->eof;
  mproc__mutex_unlock(&c->mu);
  mproc__capture_release(p);
  return MPROC_OK;
}

int mproc_process_set_capture_limit(mproc_process *p, size_t limit) {
  int rc;
  if (!p)
    return MPROC_EINVAL;
  mproc__mutex_lock(&mproc__lock);
  if ((rc = mproc__check_child(p)) < 0)
    goto finish;
  /* The captures read it when the start makes them. */
  if (p->state != MPROC__P_CREATED) {
    rc = MPROC_ESTATE;
    goto finish;
  }
  p->capture_limit = limit;
finish:
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

/* ---- the end report's stderr lines ----------------------------------------------- */

/* Where the last MPROC_END_TAIL_LINES lines of s[0..n) start: after the
 * line end before them (a final line end closes the last line, it does
 * not start an empty one). */
static size_t mproc__tail_start(const unsigned char *s, size_t n) {
  size_t i = n, lines = 0;
  if (i && s[i - 1] == '\n')
    i--;
  while (i > 0) {
    if (s[i - 1] == '\n' && ++lines == MPROC_END_TAIL_LINES)
      return i;
    i--;
  }
  return 0;
}

void mproc__capture_tail(mproc_process *p, char *out) {
  mproc__capture *c = NULL;
  size_t from, n;
  out[0] = '\0';
  if (mproc__capture_get(p, MPROC_STDERR, 1, &c) < 0)
    return; /* not captured (or no longer there): no lines */
  mproc__mutex_lock(&c->mu);
  mproc__capture_pump_ended(c);
  from = mproc__tail_start(c->buf + c->start, c->len);
  n = c->len - from;
  if (n > MPROC_END_TAIL_MAX) {
    from += n - MPROC_END_TAIL_MAX;
    n = MPROC_END_TAIL_MAX;
  }
  if (n)
    memcpy(out, c->buf + c->start + from, n);
  out[n] = '\0';
  mproc__mutex_unlock(&c->mu);
  mproc__capture_release(p);
}
