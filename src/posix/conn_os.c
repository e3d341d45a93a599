/*
 * POSIX transport of the pipes (plat/conn_os.h): two anonymous pipes per pair.
 *
 * Why pipes and not a socketpair, as Python uses: a 72-byte sendmsg() on an
 * AF_UNIX stream socket costs about four times a pipe write here (an skb
 * per send), which puts small messages at ~0.3x a raw pipe loop; a pipe
 * write keeps them near the raw speed.  Pipes bring two problems, solved so:
 *
 *   SIGPIPE.  A write to a pipe without readers raises SIGPIPE, which kills
 *   a program that did not ignore it; blocking it around each write costs
 *   two more system calls per message, and changing the process-wide
 *   disposition is not a library's call to make.  Instead every sending end
 *   keeps a read descriptor of its own outgoing pipe (`keep`), so a reader
 *   always exists and a write can never raise SIGPIPE.
 *
 *   Noticing that the peer is gone.  With `keep`, a write to a dead peer
 *   would just fill the pipe and then block forever.  So the write end is
 *   O_NONBLOCK, and a sender that finds the pipe full waits in poll() for
 *   room *or* for POLLHUP on its incoming pipe, whose write end only the
 *   peer holds: POLLHUP there means every copy of the peer end is closed.
 *   Between full pipes a sender also polls that POLLHUP once per tick of
 *   the coarse clock (1-4 ms), so a send after the peer is gone reports
 *   MPROC_EEOF; one sent within a tick of the peer's end is still accepted
 *   into the pipe and lost, as a message sent just before the peer died
 *   would be.
 *
 * A one-way pair uses the same two pipes: the receive-only end holds the
 * write end of the second pipe only as the liveness token its sender polls.
 *
 * O_NONBLOCK is set on the write ends only; the descriptions are private to
 * mproc's connections (nobody else is given these descriptors), so the
 * flag, which every copy of a description shares, surprises nobody.  Read
 * ends stay blocking; a receive waits for bytes first (a brief look:
 * mproc__conn_spin, then poll()) and reads only once they are there, so a
 * receiver killed while it waits has taken nothing out of the pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "px_have.h"

/* Frames up to this size are copied into one buffer and written with one
 * write(), which measured faster than writev() for small messages.  Up to
 * PIPE_BUF bytes (4096 on Linux, at least 512 by POSIX) a pipe write is
 * atomic, so such frames sent by several processes on one end never
 * interleave. */
#define MPROC__CONN_SMALL 4096

/* How stale the sender's knowledge that the peer is alive may get (the
 * coarse clock ticks every 1-4 ms anyway). */
#define MPROC__CONN_CHECK_EVERY 0.001

/* How long a receive looks for bytes before it sleeps, and how often it
 * looks (seconds; see mproc__conn_spin). */
#define MPROC__CONN_SPIN_FOR 50e-6
#define MPROC__CONN_SPIN_GAP 1e-6
/* While looking, bytes that arrive are read once this many are there or
 * this long has passed since the look began. */
#define MPROC__CONN_SPIN_BATCH 512
#define MPROC__CONN_SPIN_GATHER 2e-6

/* One read() or write() moves at most this much (below SSIZE_MAX). */
#define MPROC__CONN_IO_MAX ((size_t)1 << 30)

struct mproc__conn_os {
  int in_r;  /* read end of the incoming pipe (data, or only the peer's
                liveness for a send-only end) */
  int out_w; /* write end of the outgoing pipe (O_NONBLOCK) */
  int keep;  /* a read end of the outgoing pipe, or -1 (receive-only) */
  double last_check; /* mproc__conn_clock() of the last liveness poll */
  /* The three descriptors are one stream socket (mproc__conn_os_wrap: a
   * Listener/Client connection): writes go through sendmsg(MSG_NOSIGNAL),
   * since the `keep` trick cannot stop a socket's SIGPIPE. */
  int sock;
};

/* No MSG_NOSIGNAL (older macOS): SO_NOSIGPIPE, set when wrapping, does it. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* A cheap clock for the sender's "is the peer still there" cadence: the
 * coarse clock is a few ns (the precise one ~20 ns, a tenth of a small
 * send), and its millisecond-ish resolution is all the cadence needs. */
static double mproc__conn_clock(void) {
#if defined(CLOCK_MONOTONIC_COARSE)
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
  return mproc__plat_now();
}

static int mproc__conn_pipe(int fds[2]) {
#if MPROC__HAVE_PIPE2
  /* Atomically close-on-exec: a child spawned by another thread right now
   * must not inherit these (DESIGN pitfall 1). */
  return pipe2(fds, O_CLOEXEC);
#else
  if (pipe(fds) != 0)
    return -1;
  (void)fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  (void)fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  return 0;
#endif
}

static void mproc__conn_closefd(int fd) {
  if (fd >= 0)
    (void)close(fd);
}

static int mproc__conn_is_socket(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int mproc__conn_ms(double deadline) {
  double left;
  if (deadline < 0)
    return -1;
  left = deadline - mproc__plat_now();
  if (left <= 0)
    return 0;
  if (left >= (double)INT_MAX / 1000.0)
    return INT_MAX;
  /* Round up: a short wait must not turn into a poll that returns early. */
  return (int)(left * 1000.0) + 1;
}

int mproc__conn_os_pair(mproc__conn_os **a, mproc__conn_os **b, int duplex) {
  int ab[2] = {-1, -1}, ba[2] = {-1, -1}, e;
  mproc__conn_os *oa = NULL, *ob = NULL;
  *a = *b = NULL;
  if (mproc__conn_pipe(ab) != 0 || mproc__conn_pipe(ba) != 0)
    goto fail_errno;
  if (fcntl(ab[1], F_SETFL, O_NONBLOCK) != 0 ||
      fcntl(ba[1], F_SETFL, O_NONBLOCK) != 0)
    goto fail_errno;
  oa = (mproc__conn_os *)calloc(1, sizeof(*oa));
  ob = (mproc__conn_os *)calloc(1, sizeof(*ob));
  if (!oa || !ob) {
    e = ENOMEM;
    goto fail;
  }
  /* ab carries a -> b (one-way: nothing, a only holds its write end as the
   * token b watches); ba carries b -> a. */
  oa->in_r = ba[0];
  oa->out_w = ab[1];
  oa->keep = -1;
  ob->in_r = ab[0];
  ob->out_w = ba[1];
  ob->keep = fcntl(ba[0], F_DUPFD_CLOEXEC, 0);
  if (ob->keep < 0)
    goto fail_errno;
  if (duplex) {
    oa->keep = fcntl(ab[0], F_DUPFD_CLOEXEC, 0);
    if (oa->keep < 0)
      goto fail_errno;
  }
  *a = oa;
  *b = ob;
  return MPROC_OK;
fail_errno:
  e = errno;
fail:
  if (oa)
    mproc__conn_closefd(oa->keep);
  if (ob)
    mproc__conn_closefd(ob->keep);
  free(oa);
  free(ob);
  mproc__conn_closefd(ab[0]);
  mproc__conn_closefd(ab[1]);
  mproc__conn_closefd(ba[0]);
  mproc__conn_closefd(ba[1]);
  return e == ENOMEM ? MPROC_ENOMEM : mproc__os_fail(MPROC_ESYS, e);
}

/* 1 if every copy of the peer end is closed (POLLHUP on our incoming pipe:
 * its write end is the peer's).  POLLHUP is asked for although POSIX
 * reports it unasked (Linux does): XNU's poll(2) is built on kqueue
 * (bsd/kern/sys_generic.c) and registers a read filter only for POLLIN,
 * POLLPRI or POLLHUP in `events`, so with events = 0 it never says the
 * peer is gone.  POLLHUP alone (not POLLIN) registers that filter without
 * reporting pending data: poll_callback keeps only the bits asked for.
 * macOS is compile-checked only; this follows XNU's source. */
static int mproc__conn_peer_gone(mproc__conn_os *os) {
  struct pollfd p;
  p.fd = os->in_r;
  p.events = POLLHUP;
  p.revents = 0;
  while (poll(&p, 1, 0) < 0) {
    if (errno != EINTR)
      return 0; /* cannot tell: let the write decide */
  }
  return (p.revents & (POLLHUP | POLLERR)) != 0;
}

/* MPROC_EEOF once the peer is seen gone; looks once per coarse tick. */
static int mproc__conn_check_peer(mproc__conn_os *os) {
  double now = mproc__conn_clock();
  if (os->last_check == 0 || now - os->last_check >= MPROC__CONN_CHECK_EVERY) {
    os->last_check = now;
    if (mproc__conn_peer_gone(os))
      return MPROC_EEOF;
  }
  return MPROC_OK;
}

int mproc__conn_os_ring_check(mproc__conn_os *os) {
  return os->sock ? MPROC_ENOTSUP : mproc__conn_check_peer(os);
}

void mproc__conn_os_yield(void) { (void)sched_yield(); }

/* The outgoing pipe is full: wait for room or for the peer to go. */
static int mproc__conn_wait_room(mproc__conn_os *os) {
  struct pollfd p[2];
  p[0].fd = os->out_w;
  p[0].events = POLLOUT;
  p[1].fd = os->in_r;
  p[1].events = POLLHUP; /* asked for: see mproc__conn_peer_gone */
  for (;;) {
    p[0].revents = p[1].revents = 0;
    if (poll(p, 2, -1) >= 0)
      break;
    if (errno != EINTR)
      return mproc__os_fail(MPROC_ESYS, errno);
  }
  if (p[1].revents & (POLLHUP | POLLERR))
    return MPROC_EEOF;
  if (p[0].revents & POLLERR)
    return MPROC_EEOF; /* no reader at all (cannot happen while keep is open) */
  if (p[0].revents & POLLNVAL)
    return MPROC_ECLOSED;
  return MPROC_OK;
}

/* One write of the n iovecs left: the bytes written, or -1 with errno. */
static ssize_t mproc__conn_write_once(mproc__conn_os *os, struct iovec *iov,
                                      int n) {
  if (os->sock) {
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    return sendmsg(os->out_w, &mh, MSG_NOSIGNAL);
  }
  if (n == 1)
    return write(os->out_w, iov[0].iov_base,
                 iov[0].iov_len > MPROC__CONN_IO_MAX ? MPROC__CONN_IO_MAX
                                                     : iov[0].iov_len);
  return writev(os->out_w, iov, n);
}

/* After a write that failed with errno e: MPROC_OK to write again (after
 * an interruption, or once a full pipe has room), or the error. */
static int mproc__conn_write_failed(mproc__conn_os *os, int e) {
  if (e == EINTR)
    return MPROC_OK;
  if (e == EAGAIN || e == EWOULDBLOCK)
    return mproc__conn_wait_room(os);
  if (e == EPIPE || e == ECONNRESET) /* ECONNRESET: sockets */
    return MPROC_EEOF;
  if (e == EBADF)
    return MPROC_ECLOSED;
  return mproc__os_fail(MPROC_ESYS, e);
}

int mproc__conn_os_write(mproc__conn_os *os, const unsigned char *hdr,
                         size_t hlen, const void *data, size_t len) {
  unsigned char small[MPROC__CONN_SMALL];
  struct iovec iov[2];
  int niov, first = 0, rc;
  ssize_t n;
  size_t done;
  if (mproc__conn_check_peer(os) < 0)
    return MPROC_EEOF;
  if (hlen + len <= sizeof small) {
    memcpy(small, hdr, hlen);
    if (len)
      memcpy(small + hlen, data, len);
    iov[0].iov_base = small;
    iov[0].iov_len = hlen + len;
    niov = 1;
  } else {
    iov[0].iov_base = (void *)(uintptr_t)hdr;
    iov[0].iov_len = hlen;
    iov[1].iov_base = (void *)(uintptr_t)data;
    iov[1].iov_len = len;
    niov = 2;
  }
  for (rc = MPROC_OK; rc == MPROC_OK && first < niov;) {
    n = mproc__conn_write_once(os, iov + first, niov - first);
    if (n < 0) {
      rc = mproc__conn_write_failed(os, errno);
      continue;
    }
    for (done = (size_t)n; first < niov && done >= iov[first].iov_len;
         first++)
      done -= iov[first].iov_len;
    if (first < niov) {
      iov[first].iov_base = (char *)iov[first].iov_base + done;
      iov[first].iov_len -= done;
    }
  }
  return rc;
}

/* 1 readable (or end-of-file), 0 at the deadline, or an error. */
static int mproc__conn_wait_readable(mproc__conn_os *os, double deadline) {
  struct pollfd p;
  int prc;
  p.fd = os->in_r;
  p.events = POLLIN;
  for (;;) {
    p.revents = 0;
    prc = poll(&p, 1, mproc__conn_ms(deadline));
    /* A deadline past INT_MAX ms is waited out in several polls. */
    if (prc > 0 || (prc == 0 && mproc__conn_ms(deadline) == 0))
      break;
    if (prc < 0 && errno != EINTR)
      return mproc__os_fail(MPROC_ESYS, errno);
  }
  if (prc == 0)
    return 0;
  if (p.revents & POLLNVAL)
    return MPROC_ECLOSED;
  return 1;
}

/* Look for bytes a few times before a read() or poll() that would sleep.
 *
 * A receiver that finds the pipe empty and sleeps at once makes the sender
 * pay a wake-up for nearly every message of a stream, and Linux's wake-up of
 * a pipe reader is a "sync" one that tends to pull both processes onto one
 * CPU, where they then take turns.  Looking again for a few microseconds
 * catches the next message on its way.  sched_yield() between looks makes
 * this harmless when the sender shares our CPU (it runs instead of us), and
 * keeps us runnable, which lets the scheduler spread the two over CPUs.
 * FIONREAD looks without consuming and without poll(): once poll() has been
 * used on a pipe, Linux makes every later write to it issue a wake-up call
 * (pipe->poll_usage).  Returns 1 when bytes are there. */
static int mproc__conn_spin(mproc__conn_os *os) {
#ifdef FIONREAD
  double start = mproc__plat_now(), now = start, next;
  int avail;
  for (;;) {
    avail = 0;
    if (ioctl(os->in_r, FIONREAD, &avail) != 0)
      return 0;
    /* A few bytes are likely a stream in progress: let a few more messages
     * gather (two microseconds at most) so that one read takes a batch and
     * the sender meets our lock less often.  This doubled small-message
     * throughput on an idle machine; it delays a lone message by at most
     * that much. */
    if (avail > 0 && (avail >= MPROC__CONN_SPIN_BATCH ||
                      now - start >= MPROC__CONN_SPIN_GATHER))
      return 1;
    if (now - start >= MPROC__CONN_SPIN_FOR)
      return avail > 0;
    (void)sched_yield();
    /* Look at the pipe only every so often: each look takes the pipe's
     * lock, which the sender needs for every write, and a pause lets a
     * few messages gather for one read. */
    next = mproc__plat_now() + MPROC__CONN_SPIN_GAP;
    do {
      mproc__pause();
      now = mproc__plat_now();
    } while (now < next);
  }
#else
  (void)os;
  return 0;
#endif
}

int mproc__conn_os_read(mproc__conn_os *os, void *buf, size_t cap,
                        double deadline, size_t *got) {
  ssize_t n;
  int rc;
  *got = 0;
  if (cap > MPROC__CONN_IO_MAX)
    cap = MPROC__CONN_IO_MAX;
  for (;;) {
    n = read(os->in_r, buf, cap);
    if (n > 0) {
      *got = (size_t)n;
      return MPROC_OK;
    }
    if (n == 0 || errno == ECONNRESET) /* a socket whose peer reset it */
      return MPROC_EEOF;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      /* Someone made the read end non-blocking: wait, then read again. */
      rc = mproc__conn_wait_readable(os, deadline);
      if (rc <= 0)
        return rc == 0 ? MPROC_ETIMEDOUT : rc;
      continue;
    }
    if (errno == EBADF)
      return MPROC_ECLOSED;
    return mproc__os_fail(MPROC_ESYS, errno);
  }
}

int mproc__conn_os_poll(mproc__conn_os *os, double deadline) {
  /* A wait that may hardly wait (timeout 0: a check) does not spin. */
  if ((deadline < 0 || deadline - mproc__plat_now() >= 0.001) &&
      mproc__conn_spin(os))
    return 1;
  return mproc__conn_wait_readable(os, deadline < 0 ? -1.0 : deadline);
}

int mproc__conn_os_wait_handle(mproc__conn_os *os, mproc_handle_t *out,
                               int *ready_now) {
  (void)ready_now; /* the descriptor itself tells: poll() sees the data */
  *out = os->in_r;
  return MPROC_OK;
}

void mproc__conn_os_cancel(mproc__conn_os *os) { (void)os; }

size_t mproc__conn_os_nhandles(unsigned dir) {
  return (dir & MPROC__CONN_W) ? 3 : 2;
}

int mproc__conn_os_export(const mproc__conn_os *os, unsigned dir,
                          mproc__handles *hs) {
  int rc = mproc__handles_push(hs, os->in_r);
  if (rc == MPROC_OK)
    rc = mproc__handles_push(hs, os->out_w);
  if (rc == MPROC_OK && (dir & MPROC__CONN_W))
    rc = mproc__handles_push(hs, os->keep);
  return rc;
}

int mproc__conn_os_import(const mproc_handle_t *hs, size_t nh, unsigned dir,
                          mproc__conn_os **out) {
  mproc__conn_os *os;
  size_t i;
  int ok = dir >= 1 && dir <= 3 && hs && nh == mproc__conn_os_nhandles(dir);
  *out = NULL;
  for (i = 0; ok && i < nh; i++)
    ok = hs[i] >= 0;
  os = ok ? (mproc__conn_os *)calloc(1, sizeof(*os)) : NULL;
  if (!os) {
    for (i = 0; hs && i < nh; i++)
      mproc__conn_closefd(hs[i]);
    return ok ? MPROC_ENOMEM : MPROC_EINVAL;
  }
  os->in_r = hs[0];
  os->out_w = hs[1];
  os->keep = (dir & MPROC__CONN_W) ? hs[2] : -1;
  os->sock = mproc__conn_is_socket(os->in_r);
  *out = os;
  return MPROC_OK;
}

int mproc__conn_os_wrap(mproc_handle_t h, mproc__conn_os **out) {
  mproc__conn_os *os = (mproc__conn_os *)calloc(1, sizeof(*os));
  int e = 0;
  *out = NULL;
  if (!os) {
    e = ENOMEM;
    goto finish;
  }
  os->in_r = h;
  os->out_w = os->keep = -1;
  os->sock = 1;
#ifdef SO_NOSIGPIPE
  {
    int one = 1;
    if (setsockopt(h, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) != 0) {
      e = errno;
      goto finish;
    }
  }
#endif
  /* Three descriptors of one socket, so the end has the shape of a pipe
   * end (passing it to a child exports three) and O_NONBLOCK, which they
   * share, is what the write side expects (reads cope: see os_read). */
  if ((os->out_w = fcntl(h, F_DUPFD_CLOEXEC, 0)) < 0 ||
      (os->keep = fcntl(h, F_DUPFD_CLOEXEC, 0)) < 0 ||
      fcntl(h, F_SETFL, fcntl(h, F_GETFL) | O_NONBLOCK) != 0)
    e = errno;
finish:
  if (e == 0) {
    *out = os;
    return MPROC_OK;
  }
  if (os) {
    mproc__conn_closefd(os->out_w);
    mproc__conn_closefd(os->keep);
    free(os);
  }
  mproc__conn_closefd(h);
  return e == ENOMEM ? MPROC_ENOMEM : mproc__os_fail(MPROC_ESYS, e);
}

void mproc__conn_os_close(mproc__conn_os *os) {
  if (!os)
    return;
  mproc__conn_closefd(os->in_r);
  mproc__conn_closefd(os->out_w);
  mproc__conn_closefd(os->keep);
  free(os);
}
