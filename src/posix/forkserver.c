/* POSIX backend, the forkserver start method (plat/forkserver.h has the
 * design): the program's side (start the server, send it a child, read the
 * child's pid and exit code) and the server's loop (fork on request, report
 * exits, kill the daemonic children when the program is gone).
 *
 * CPython's Lib/multiprocessing/forkserver.py solves the same problem with
 * a listening Unix socket at an address any process of the user can
 * connect to (a 0600 file, or an abstract name on Linux; 3.14 adds an
 * authentication key), an "alive" pipe whose write end every client
 * holds, and per child a connection that returns the pid and later the
 * exit code and doubles as the sentinel.  Here the server has no address at
 * all (it is reached through the socket pair it inherited, by one client),
 * the alive pipe is per client, and the code is sent before the child is
 * reaped, so the client can also hold a pidfd that pid reuse cannot
 * fool. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "px_have.h"
#if MPROC__HAVE_PIDFD
#include <sys/syscall.h>
#endif

#include "internal.h"
#include "pool.h"
#include "px.h"

#if MPROC__HAVE_PIDFD && !defined(SYS_pidfd_send_signal)
#define SYS_pidfd_send_signal 424
#endif
#ifndef MSG_CMSG_CLOEXEC
#define MSG_CMSG_CLOEXEC 0 /* macOS: the server execs nothing anyway */
#endif

#define MPROC__FS_MAGIC 0x5346504du /* "MPFS" */
#define MPROC__FS_HEADER 16         /* magic, bootstrap length, fds, flags */
#define MPROC__FS_BATCH 250         /* descriptors per message (Linux: 253) */
#define MPROC__FS_MAX_FDS 4100 /* status channel, 4096 handles, stdio */
/* Request flags: a daemonic child; which of the program's stdin, stdout
 * and stderr ride along (after the handles), so the child writes where
 * the program writes now, as a fork or spawn child would, not where it
 * wrote when the server started; a child that leads a process group of its
 * own (new_group). */
enum { MPROC__FS_DAEMON = 1u, MPROC__FS_STDIO0 = 2u, MPROC__FS_GROUP = 16u };
#define MPROC__FS_STDIO(i) (MPROC__FS_STDIO0 << (i))
/* The bootstrap is followed by the child's setup (mproc__fs_setup_make):
 * the server's own environment and directory are the program's as they
 * were when the server started, so a child that asks for others gets them
 * spelled out. */
#define MPROC__FS_SETUP 32u
/* The request carries the child's end of a life line (after the status
 * channel).  Only where something needs it: no pidfds (the program's watch
 * on the child once the server is gone) or a daemon without
 * PR_SET_PDEATHSIG (the child's watch on the program).  A socket pair is
 * not free (tens of microseconds on a loaded machine). */
#define MPROC__FS_LIFE 64u
/* Seconds a reap waits for the server to close a child's channel after
 * its code (mproc__px_fs_reap). */
#define MPROC__FS_REAP_WAIT 1.0
#define MPROC__FS_FLAGS 127u
#define MPROC__FS_SETUP_MAX (64u << 20)

static int mproc__fs_server_main(const mproc_args *args);

static const mproc_entry g_fs_entry = {"mproc.forkserver",
                                       mproc__fs_server_main};

const mproc_entry *mproc__plat_fs_entry(void) { return &g_fs_entry; }

/* ---- descriptors over a Unix socket ------------------------------------------ */

/* sendmsg(2) by `deadline` (negative: none): a stopped or wedged server
 * must not block a start for ever once its socket buffer is full.
 * *sent counts the bytes that went.  0, or -1 with errno. */
static int mproc__fs_sendmsg_until(int sock, struct msghdr *msg,
                                   double deadline, size_t *sent) {
  ssize_t w;
  int prc;
  for (;;) {
    w = sendmsg(sock, msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0)
      break;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -1;
    prc = mproc__px_poll_out(sock, deadline);
    if (prc <= 0) {
      errno = prc == 0 ? ETIMEDOUT : errno;
      return -1;
    }
  }
  *sent += (size_t)w;
  return 0;
}

/* All `len` bytes by `deadline`; *sent counts them.  0 or -1 with errno. */
static int mproc__fs_send_until(int sock, const unsigned char *data,
                                size_t len, double deadline, size_t *sent) {
  struct msghdr msg;
  struct iovec iov;
  size_t before;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  while (len > 0) {
    iov.iov_base = (void *)data;
    iov.iov_len = len;
    before = *sent;
    if (mproc__fs_sendmsg_until(sock, &msg, deadline, sent) != 0)
      return -1;
    data += *sent - before;
    len -= *sent - before;
  }
  return 0;
}

/* One message of `len` bytes carrying n (<= MPROC__FS_BATCH) descriptors,
 * sent by `deadline`; *sent counts the bytes that went. */
static int mproc__fs_send_fds(int sock, const void *data, size_t len,
                              const int *fds, size_t n, double deadline,
                              size_t *sent) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(MPROC__FS_BATCH * sizeof(int))];
  } u;
  struct msghdr msg;
  struct iovec iov;
  struct cmsghdr *c;
  size_t before = *sent;
  memset(&msg, 0, sizeof msg);
  memset(&u, 0, sizeof u);
  iov.iov_base = (void *)data;
  iov.iov_len = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
  c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(n * sizeof(int));
  memcpy(CMSG_DATA(c), fds, n * sizeof(int));
  if (mproc__fs_sendmsg_until(sock, &msg, deadline, sent) != 0)
    return -1;
  /* The descriptors went with the first byte; the rest is plain data. */
  return mproc__fs_send_until(sock, (const unsigned char *)data + (*sent - before),
                              len - (*sent - before), deadline, sent);
}

/* Exactly n bytes by `deadline` (negative: none; ETIMEDOUT then); 0, or -1
 * with errno (EPIPE for an early EOF). */
static int mproc__fs_recv_until(int fd, unsigned char *buf, size_t len,
                                double deadline) {
  int prc;
  while (len > 0) {
    ssize_t r;
    prc = mproc__px_poll_in(fd, deadline);
    if (prc <= 0) {
      errno = prc == 0 ? ETIMEDOUT : errno;
      return -1;
    }
    r = recv(fd, buf, len, MSG_DONTWAIT);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (r <= 0) {
      errno = r == 0 ? EPIPE : errno;
      return -1;
    }
    buf += r;
    len -= (size_t)r;
  }
  return 0;
}

/* Receives `len` bytes and the descriptors sent with them by
 * mproc__fs_send_fds: up to `max` (<= MPROC__FS_BATCH) into fds, *n of
 * them.  0, or -1 with errno (EPROTO: more than max, or cut short); on
 * failure the caller closes the *n received (0 when none were kept). */
static int mproc__fs_recv_fds(int sock, void *data, size_t len, int *fds,
                              size_t max, size_t *n) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(MPROC__FS_BATCH * sizeof(int))];
  } u;
  struct msghdr msg;
  struct iovec iov;
  struct cmsghdr *c;
  size_t got = 0, extra = 0;
  ssize_t r;
  *n = 0; /* nothing for the caller to close until they are all taken */
  memset(&msg, 0, sizeof msg);
  iov.iov_base = data;
  iov.iov_len = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof u.buf;
  do
    r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r <= 0) {
    errno = r == 0 ? EPIPE : errno;
    return -1;
  }
  /* The sender attaches one SCM_RIGHTS header (musl's CMSG_NXTHDR does
   * not compile cleanly under -Wsign-compare, and there is no second). */
  c = CMSG_FIRSTHDR(&msg);
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
    size_t k, room = (size_t)c->cmsg_len;
    for (k = 0; (size_t)CMSG_LEN((k + 1) * sizeof(int)) <= room; k++)
      if (got < max)
        memcpy(&fds[got++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
      else if (++extra)
        (void)close(*(int *)(void *)(CMSG_DATA(c) + k * sizeof(int)));
  }
  if (extra || (msg.msg_flags & MSG_CTRUNC)) {
    while (got > 0)
      (void)close(fds[--got]);
    errno = EPROTO;
    return -1;
  }
  *n = got;
  return mproc__fs_recv_until(sock, (unsigned char *)data + r, len - (size_t)r,
                              -1.0);
}

/* ---- the program's side: the connection to its server ------------------------- */

/* Guarded by g_fs_lock, which is held for a whole request so that the
 * requests of several threads never interleave on the stream. */
static mproc__mutex_t g_fs_lock = MPROC__MUTEX_INITIALIZER;
static int g_fs_conn = -1;    /* our end of the server's socket pair */
static int g_fs_alive_w = -1; /* children read EOF on its pipe when we end */
static int g_fs_state;        /* 0 not started, 1 running, 2 failed */
static int g_fs_error;        /* errno of the failure (state 2) */
static int64_t g_fs_pid;      /* the server's pid (its hello) */
static const char *g_fs_preload;
/* The environment (its entries back to back, each NUL-terminated) and the
 * directory the server inherited at launch: a child is sent the program's
 * current ones only when they differ.  Written by the launch under
 * g_fs_lock, never changed while the server runs. */
static char *g_fs_env_snap, *g_fs_cwd_snap;
static size_t g_fs_env_snap_len;

double mproc__fs_reply_timeout = 30.0;

int64_t mproc__fs_server_pid(void) {
  int64_t pid;
  mproc__mutex_lock(&g_fs_lock);
  pid = g_fs_state == 1 ? g_fs_pid : 0;
  mproc__mutex_unlock(&g_fs_lock);
  return pid;
}

int mproc__plat_fs_preload(const char *entry) {
  int rc = MPROC_OK;
  mproc__mutex_lock(&g_fs_lock);
  if (g_fs_state != 0)
    rc = MPROC_ESTATE;
  else
    g_fs_preload = entry;
  mproc__mutex_unlock(&g_fs_lock);
  return rc;
}

/* ---- descriptors in flight -------------------------------------------------------

 * While a start (or the launch) runs, this thread holds both ends of the
 * socket pairs it made: the status channel, the life line, the server's
 * connection.  A process another thread forks meanwhile (a fork start, a
 * raw fork() of the application) would keep copies for its whole life:
 * a copy of the server's end of a status channel could write a sibling's
 * exit code, a copy of the program's end of a life line would keep a
 * daemonic child alive after the program died, a copy of the connection
 * the server.  So every such end is made, closed and handed on under
 * g_fs_ends_lock, which fork() takes too (the atfork prepare handler), and
 * recorded in a list of records on the starting threads' stacks (a fork
 * child has a copy of every stack); the fork child closes them all. */
typedef struct mproc__fs_ends {
  int fd[4]; /* -1 once closed or handed on */
  struct mproc__fs_ends *next;
} mproc__fs_ends;

static mproc__mutex_t g_fs_ends_lock = MPROC__MUTEX_INITIALIZER;
static mproc__fs_ends *g_fs_ends; /* guarded by g_fs_ends_lock */

enum { MPROC__FS_ENDS_NONE, MPROC__FS_ENDS_PIPE, MPROC__FS_ENDS_SOCK };

/* Linked in e: fd[0..1] a socket pair, fd[2..3] a pipe, another socket pair
 * or nothing (`second`).  0, or -1 with errno (e linked anyway:
 * mproc__fs_ends_close releases it). */
static int mproc__fs_ends_open(mproc__fs_ends *e, int second) {
  int rc = 0, e2 = 0, i;
  for (i = 0; i < 4; i++)
    e->fd[i] = -1;
  mproc__mutex_lock(&g_fs_ends_lock);
  if (mproc__px_socketpair(e->fd) != 0 ||
      (second == MPROC__FS_ENDS_PIPE && mproc__px_pipe(e->fd + 2) != 0) ||
      (second == MPROC__FS_ENDS_SOCK && mproc__px_socketpair(e->fd + 2) != 0)) {
    rc = -1;
    e2 = errno;
  }
  e->next = g_fs_ends;
  g_fs_ends = e;
  mproc__mutex_unlock(&g_fs_ends_lock);
  errno = e2 ? e2 : errno;
  return rc;
}

/* Close end i of e (if still there). */
static void mproc__fs_ends_drop(mproc__fs_ends *e, int i) {
  mproc__mutex_lock(&g_fs_ends_lock);
  mproc__px_close_fd(&e->fd[i]);
  mproc__mutex_unlock(&g_fs_ends_lock);
}

/* Hand end i of e on to *dst, where the fork child's own cleanup finds it
 * (the connection's globals, a tracked process's descriptors). */
static void mproc__fs_ends_take(mproc__fs_ends *e, int i, int *dst) {
  mproc__mutex_lock(&g_fs_ends_lock);
  *dst = e->fd[i];
  e->fd[i] = -1;
  mproc__mutex_unlock(&g_fs_ends_lock);
}

/* Close what is left of e and unlink it. */
static void mproc__fs_ends_close(mproc__fs_ends *e) {
  mproc__fs_ends **at;
  int i;
  mproc__mutex_lock(&g_fs_ends_lock);
  for (at = &g_fs_ends; *at && *at != e; at = &(*at)->next) {
  }
  if (*at)
    *at = e->next;
  for (i = 0; i < 4; i++)
    mproc__px_close_fd(&e->fd[i]);
  mproc__mutex_unlock(&g_fs_ends_lock);
}

static void mproc__fs_ends_prepare(void) { mproc__mutex_lock(&g_fs_ends_lock); }

static void mproc__fs_ends_parent(void) {
  mproc__mutex_unlock(&g_fs_ends_lock);
}

/* In every fork child of a process that has a server (a pthread_atfork
 * handler, so raw fork() calls of the application count too): drop the
 * parent's connection unused, and every end a start of another thread had
 * in flight.  Held on, the connection would keep the server running after
 * the parent died and make the parent look alive to its forkserver
 * children; a forkserver start here starts this process's own server.
 * Only close() and stores: async-signal-safe, as a child of a
 * multithreaded parent needs before exec. */
static void mproc__fs_forget(void) {
  /* Another thread of the parent may have held the lock at fork(); the
   * ends lock is held by this thread (the prepare handler). */
  static const mproc__mutex_t fresh = MPROC__MUTEX_INITIALIZER;
  mproc__fs_ends *e;
  int i;
  g_fs_lock = fresh;
  g_fs_ends_lock = fresh;
  for (e = g_fs_ends; e; e = e->next)
    for (i = 0; i < 4; i++)
      mproc__px_close_fd(&e->fd[i]);
  g_fs_ends = NULL;
  mproc__px_close_fd(&g_fs_conn);
  mproc__px_close_fd(&g_fs_alive_w);
  g_fs_state = 0;
}

/* The environment as one block (see g_fs_env_snap); NULL when out of
 * memory. */
static char *mproc__fs_env_flat(size_t *len) {
  char **e = mproc__environ, *out;
  size_t n = 0, i, at = 0;
  for (i = 0; e && e[i]; i++)
    n += strlen(e[i]) + 1;
  if (!(out = (char *)malloc(n ? n : 1)))
    return NULL;
  for (i = 0; e && e[i]; i++) {
    memcpy(out + at, e[i], strlen(e[i]) + 1);
    at += strlen(e[i]) + 1;
  }
  *len = n;
  return out;
}

/* Whether the environment is still the one the server inherited: a walk
 * over the strings, no allocation (a start pays microseconds for it). */
static int mproc__fs_env_same(void) {
  char **e = mproc__environ;
  size_t at = 0, i, n;
  if (!g_fs_env_snap)
    return 0;
  for (i = 0; e && e[i]; i++) {
    n = strlen(e[i]) + 1;
    if (n > g_fs_env_snap_len - at || memcmp(g_fs_env_snap + at, e[i], n) != 0)
      return 0;
    at += n;
  }
  return at == g_fs_env_snap_len;
}

/* Records what the server inherits (g_fs_lock held); MPROC_ENOMEM. */
static int mproc__fs_snapshot(void) {
  char cwd[4096];
  free(g_fs_env_snap);
  free(g_fs_cwd_snap);
  g_fs_cwd_snap = NULL;
  g_fs_env_snap = mproc__fs_env_flat(&g_fs_env_snap_len);
  /* No directory (removed, or a path too long): every child is sent the
   * program's, if it has one then. */
  if (getcwd(cwd, sizeof cwd))
    g_fs_cwd_snap = mproc__strdup(cwd);
  return g_fs_env_snap ? MPROC_OK : MPROC_ENOMEM;
}

/* Start the server: spawn the reserved entry with the server's ends, wait
 * for that first process to fork the server and exit, then (by the reply
 * deadline) for the server's hello, its pid, on the connection.
 * g_fs_lock held. */
static int mproc__fs_launch(void) {
  static int atfork_done;
  int code = 0, rc;
  mproc__fs_ends e; /* the connection (0 ours, 1 the server's), the alive
                     * pipe (2 the server's, 3 ours) */
  unsigned char hello[8];
  mproc_args *args = NULL;
  mproc__rd rd;
  if (!atfork_done &&
      pthread_atfork(mproc__fs_ends_prepare, mproc__fs_ends_parent,
                     mproc__fs_forget) == 0)
    atfork_done = 1;
  if (mproc__fs_ends_open(&e, MPROC__FS_ENDS_PIPE) != 0 || !atfork_done) {
    rc = mproc__os_fail(MPROC_ESPAWN, atfork_done ? errno : ENOMEM);
    goto finish;
  }
  if ((rc = mproc__fs_snapshot()) < 0 || (rc = mproc_args_create(&args)) < 0 ||
      (rc = mproc_args_add_handle(args, NULL, e.fd[1])) < 0 ||
      (rc = mproc_args_add_handle(args, NULL, e.fd[2])) < 0 ||
      (g_fs_preload &&
       (rc = mproc_args_add_str(args, "preload", g_fs_preload)) < 0) ||
      (rc = mproc__run_helper(&g_fs_entry, args, &code)) < 0)
    goto finish;
  mproc__fs_ends_drop(&e, 1);
  mproc__fs_ends_drop(&e, 2);
  /* The hello decides, not the first process's exit code, which a
   * program reaping with waitpid(-1) may have taken (code 255 then).  EOF
   * here: the server never came up (its first process says why on
   * stderr). */
  if (mproc__fs_recv_until(e.fd[0], hello, sizeof hello,
                           mproc__deadline(mproc__fs_reply_timeout)) != 0) {
    rc = mproc__os_fail(MPROC_ESPAWN, errno);
    goto finish;
  }
  mproc__rd_init(&rd, hello, sizeof hello);
  g_fs_pid = (int64_t)mproc__rd_u64(&rd);
  mproc__fs_ends_take(&e, 0, &g_fs_conn);
  mproc__fs_ends_take(&e, 3, &g_fs_alive_w);
finish:
  mproc_args_free(args);
  mproc__fs_ends_close(&e);
  return rc;
}

/* Start the server if need be.  A server that could not be started is
 * tried again at the next start (the cause, e.g. no descriptors left, may
 * pass); one that died fails this and every later start (EPIPE): its
 * children's codes are lost, and a silent new server would hide that. */
static int mproc__fs_ready(void) {
  int rc = MPROC_OK;
  mproc__mutex_lock(&g_fs_lock);
  if (g_fs_state == 0 && (rc = mproc__fs_launch()) == MPROC_OK)
    g_fs_state = 1;
  if (g_fs_state == 2)
    rc = mproc__os_fail(MPROC_ESPAWN, g_fs_error ? g_fs_error : EPIPE);
  mproc__mutex_unlock(&g_fs_lock);
  return rc;
}

/* One request: header and descriptors (the status channel first), in
 * batches the kernel accepts, then the bootstrap, by `deadline`.  *sent
 * counts the bytes that went.  g_fs_lock held. */
static int mproc__fs_send_request(const int *fds, size_t nfds,
                                  const unsigned char *bs, size_t bslen,
                                  size_t total, uint32_t flags,
                                  double deadline, size_t *sent) {
  unsigned char hdr[MPROC__FS_HEADER];
  size_t off = 0, n;
  mproc__wr_put32(hdr, MPROC__FS_MAGIC);
  mproc__wr_put32(hdr + 4, (uint32_t)bslen);
  mproc__wr_put32(hdr + 8, (uint32_t)nfds);
  mproc__wr_put32(hdr + 12, flags);
  n = nfds < MPROC__FS_BATCH ? nfds : MPROC__FS_BATCH;
  if (mproc__fs_send_fds(g_fs_conn, hdr, sizeof hdr, fds, n, deadline,
                         sent) != 0)
    return -1;
  for (off = n; off < nfds; off += n) {
    n = nfds - off < MPROC__FS_BATCH ? nfds - off : MPROC__FS_BATCH;
    if (mproc__fs_send_fds(g_fs_conn, "+", 1, fds + off, n, deadline,
                           sent) != 0)
      return -1;
  }
  return mproc__fs_send_until(g_fs_conn, bs, total, deadline, sent);
}

/* Hand the request to the running server by `deadline`.  A request cut
 * short leaves the stream torn: every later start fails too.  One that
 * could not even begin (a stopped server whose buffer is full) leaves it
 * whole. */
static int mproc__fs_submit(const int *fds, size_t nfds,
                            const unsigned char *bs, size_t bslen,
                            size_t total, uint32_t flags, double deadline) {
  int rc = MPROC_OK, e;
  size_t sent = 0;
  mproc__mutex_lock(&g_fs_lock);
  if (g_fs_state != 1) {
    rc = mproc__os_fail(MPROC_ESPAWN, g_fs_error ? g_fs_error : EPIPE);
    goto finish;
  }
  if (mproc__fs_send_request(fds, nfds, bs, bslen, total, flags, deadline,
                             &sent) != 0) {
    e = errno == ECONNRESET ? EPIPE : errno;
    if (sent > 0 || e != ETIMEDOUT) {
      g_fs_state = 2;
      g_fs_error = e;
    }
    rc = mproc__os_fail(MPROC_ESPAWN, e);
  }
finish:
  mproc__mutex_unlock(&g_fs_lock);
  return rc;
}

/* The child's pid from its status channel (by `deadline`), then (Linux) a
 * pidfd for it.  The server sends the exit code before it reaps the child,
 * so a pidfd opened while the channel has nothing more to read names our
 * child, never a process that reused its pid.  A server that does not
 * answer in time (stopped, wedged) gets no second chance at this child: we
 * stop reading first (SHUT_RD: its late pid then fails with EPIPE, and the
 * server kills the child it made) and take a pid that made it before. */
static int mproc__fs_take_child(mproc_process *p, int ch, double deadline) {
  unsigned char rec[8];
  int64_t v;
  mproc__rd rd;
  if (mproc__fs_recv_until(ch, rec, sizeof rec, deadline) != 0) {
    int e = errno;
    (void)shutdown(ch, SHUT_RD);
    if (e != ETIMEDOUT || mproc__fs_recv_until(ch, rec, sizeof rec, 0) != 0)
      return mproc__os_fail(MPROC_ESPAWN, e == ETIMEDOUT ? e : EPIPE);
  }
  mproc__rd_init(&rd, rec, sizeof rec);
  v = (int64_t)mproc__rd_u64(&rd);
  if (v <= 0)
    return mproc__os_fail(MPROC_ESPAWN, v < 0 ? (int)-v : EPROTO);
  p->pid = v;
  p->plat.fs = 1;
  p->plat.fs_pidfd = -1;
#if MPROC__HAVE_PIDFD
  if (mproc__px_use_pidfd) {
    p->plat.fs_pidfd = mproc__px_pidfd_open((pid_t)v);
    if (p->plat.fs_pidfd >= 0 && mproc__px_poll_in(ch, 0) != 0)
      mproc__px_close_fd(&p->plat.fs_pidfd); /* ended already */
  }
#endif
  return MPROC_OK;
}

/* The directory a child of p is sent: the one it asks for, else the
 * program's current one if it moved since the server started (a program
 * that chdir()s before start expects its child there, as under fork and
 * spawn), else NULL. */
static const char *mproc__fs_child_dir(const mproc_process *p, char *buf,
                                       size_t size) {
  if (p->cwd)
    return p->cwd;
  if (!getcwd(buf, size))
    return NULL; /* removed, or too long: the server's it is */
  return g_fs_cwd_snap && strcmp(buf, g_fs_cwd_snap) == 0 ? NULL : buf;
}

/* Appends p's setup to the bootstrap in *bs (*len grows): a 32-bit
 * length, then the directory ("" for none), a byte saying whether an
 * environment follows, and its entries, each NUL-terminated.  Sets
 * MPROC__FS_SETUP in *flags; does nothing for a child whose environment
 * and directory are the server's. */
static int mproc__fs_setup_make(const mproc_process *p, unsigned char **bs,
                                size_t *len, uint32_t *flags) {
  char **envp = NULL, dirbuf[4096];
  const char *dir = mproc__fs_child_dir(p, dirbuf, sizeof dirbuf);
  int owned = 0, rc = MPROC_OK, env = !mproc__fs_env_same();
  size_t need = 4 + 1 + 1, i, at;
  unsigned char *grown;
  if (!dir && !env && !mproc__env_changed(p))
    return MPROC_OK;
  if ((env || mproc__env_changed(p)) &&
      mproc__px_child_env(p, &envp, &owned) < 0)
    return MPROC_ENOMEM;
  need += dir ? strlen(dir) : 0;
  for (i = 0; envp && envp[i]; i++)
    need += strlen(envp[i]) + 1;
  if (need - 4 > MPROC__FS_SETUP_MAX) {
    rc = MPROC_E2BIG;
    goto finish;
  }
  if (!(grown = (unsigned char *)realloc(*bs, *len + need))) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  *bs = grown;
  at = *len;
  mproc__wr_put32(grown + at, (uint32_t)(need - 4));
  at += 4;
  for (i = 0; dir && dir[i]; i++)
    grown[at++] = (unsigned char)dir[i];
  grown[at++] = 0;
  grown[at++] = envp != NULL;
  for (i = 0; envp && envp[i]; i++) {
    memcpy(grown + at, envp[i], strlen(envp[i]) + 1);
    at += strlen(envp[i]) + 1;
  }
  *len = at;
  *flags |= MPROC__FS_SETUP;
finish:
  if (owned)
    free(envp);
  return rc;
}

/* The request's descriptors: the status channel (the server's end: only
 * the server writes the child's pid and code, so nothing the child runs can
 * forge them), with MPROC__FS_LIFE the child's end of its life line (the
 * program holds the other: the child's watch on the program, and the
 * program's on the child should the server die), the handles, then the
 * stdio that rides along.
 * fds has room for nhandles + 5. */
static size_t mproc__fs_request_fds(const mproc_process *p, int *fds,
                                    const mproc_handle_t *handles,
                                    size_t nhandles, uint32_t *flags) {
  size_t i, n = (*flags & MPROC__FS_LIFE) ? 2 : 1;
  for (i = 0; i < nhandles; i++)
    fds[n++] = handles[i];
  for (i = 0; i < 3; i++)
    if (p->stdio_h[i] != MPROC_INVALID_HANDLE) {
      fds[n++] = p->stdio_h[i]; /* what the options ask for */
      *flags |= MPROC__FS_STDIO(i);
    } else if (fcntl((int)i, F_GETFD) >= 0) {
      fds[n++] = (int)i;
      *flags |= MPROC__FS_STDIO(i);
    }
  return n;
}

int mproc__plat_fs_start(mproc_process *p, const mproc_handle_t *handles,
                         size_t nhandles, mproc__bootstrap_builder build) {
  int *fds = NULL, rc;
  mproc__fs_ends e; /* the status channel (0 ours, 1 the server's), the
                     * life line (2 ours, 3 the child's) */
  uint64_t *vals = NULL;
  unsigned char *bs = NULL;
  size_t bslen = 0, total = 0, i, nfds;
  uint32_t flags = (p->daemon ? MPROC__FS_DAEMON : 0) |
                   (p->new_group ? MPROC__FS_GROUP : 0);
  double deadline;
  if (nhandles > 4096)
    return MPROC_E2BIG;
  for (i = 0; i < 4; i++)
    e.fd[i] = -1;
  fds = (int *)malloc((nhandles + 5) * sizeof(*fds));
  vals = (uint64_t *)malloc((nhandles + 1) * sizeof(*vals));
  if (!fds || !vals) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  /* The server puts the handles where a spawned child finds them. */
  for (i = 0; i < nhandles; i++)
    vals[i] = (uint64_t)(MPROC__BS_FD + 1 + i);
  /* The server is made ready before the setup: it compares with it. */
  if ((rc = build(p, vals, 0, 0, &bs, &bslen)) < 0 ||
      (rc = mproc__fs_ready()) < 0)
    goto finish;
  deadline = mproc__deadline(mproc__fs_reply_timeout);
  total = bslen;
  if ((rc = mproc__fs_setup_make(p, &bs, &total, &flags)) < 0)
    goto finish;
  if (!mproc__px_use_pidfd || (p->daemon && !MPROC__HAVE_PDEATHSIG))
    flags |= MPROC__FS_LIFE;
  if (mproc__fs_ends_open(&e, (flags & MPROC__FS_LIFE)
                                  ? MPROC__FS_ENDS_SOCK
                                  : MPROC__FS_ENDS_NONE) != 0) {
    rc = mproc__os_fail(MPROC_ESPAWN, errno);
    goto finish;
  }
  fds[0] = e.fd[1];
  fds[1] = e.fd[3]; /* overwritten by a handle when there is no life line */
  nfds = mproc__fs_request_fds(p, fds, handles, nhandles, &flags);
  rc = mproc__fs_submit(fds, nfds, bs, bslen, total, flags, deadline);
  mproc__fs_ends_drop(&e, 1); /* only the server holds it now */
  mproc__fs_ends_drop(&e, 3); /* and the child this one */
  if (rc < 0 || (rc = mproc__fs_take_child(p, e.fd[0], deadline)) < 0)
    goto finish;
  mproc__fs_ends_take(&e, 0, &p->plat.sentinel_r);
  mproc__fs_ends_take(&e, 2, &p->plat.fs_life);
finish:
  mproc__fs_ends_close(&e); /* unlinks it, if it was ever linked */
  free(fds);
  free(vals);
  free(bs);
  return rc;
}

/* ---- the program's side: waiting for, reaping and signalling a child ----------- */

/* Whether the server is gone without a word about this child: its status
 * channel reads EOF, no code before it. */
static int mproc__fs_orphaned(const mproc_process *p) {
  char c;
  ssize_t r;
  if (__atomic_load_n(&p->plat.fs_got, __ATOMIC_ACQUIRE))
    return 0;
  do
    r = recv(p->plat.sentinel_r, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* What shows the child itself ended once the server is gone: its pidfd
 * (Linux), else the program's end of its life line. */
static int mproc__fs_own_end_fd(const mproc_process *p) {
  return p->plat.fs_pidfd >= 0 ? p->plat.fs_pidfd : p->plat.fs_life;
}

/* Whether an orphaned child has ended.  The life line reads EOF when it
 * has; what the child wrote on its end (it can, it is the child's) is
 * thrown away, a bounded amount per call. */
static int mproc__fs_own_end(const mproc_process *p) {
  char junk[256];
  ssize_t r;
  int i, fd = mproc__fs_own_end_fd(p);
  if (fd < 0)
    return 1; /* nothing left to watch it by */
  if (fd == p->plat.fs_pidfd)
    return mproc__px_poll_in(fd, 0) > 0;
  for (i = 0; i < 64; i++) {
    r = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
  return 0;
}

int mproc__px_fs_sentinel(const mproc_process *p) {
  /* Once the server is gone its channel reads EOF for good: the child's own
   * end is what tells when it ends. */
  if (mproc__fs_orphaned(p) && mproc__fs_own_end_fd(p) >= 0)
    return mproc__fs_own_end_fd(p);
  return p->plat.sentinel_r;
}

int mproc__px_fs_wait(mproc_process *p, double deadline) {
  int r;
  for (;;) {
    r = mproc__px_poll_in(p->plat.sentinel_r, deadline);
    if (r > 0 && mproc__fs_orphaned(p) && mproc__fs_own_end_fd(p) >= 0)
      r = mproc__px_poll_in(mproc__fs_own_end_fd(p), deadline);
    if (r < 0)
      return mproc__os_fail(MPROC_ESYS, errno);
    if (r == 0)
      return MPROC_ETIMEDOUT;
    if (!mproc__fs_orphaned(p) || mproc__fs_own_end(p))
      return MPROC_OK;
  }
}

int mproc__px_fs_reap(mproc_process *p, int *exitcode) {
  unsigned char rec[4];
  ssize_t r;
  mproc__rd rd;
  if (mproc__px_poll_in(p->plat.sentinel_r, 0) == 0)
    return 0;
  if (!p->plat.fs_got) {
    do
      r = recv(p->plat.sentinel_r, rec, sizeof rec,
               MSG_DONTWAIT | MSG_WAITALL);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (r != (ssize_t)sizeof rec) {
      /* EOF without a code: the server died.  Nobody knows the code any
       * more; the child is reported ended once it has. */
      if (!mproc__fs_own_end(p))
        return 0;
      *exitcode = 255;
      return 1;
    }
    mproc__rd_init(&rd, rec, sizeof rec);
    p->plat.fs_code = (int)(int32_t)mproc__rd_u32(&rd);
    __atomic_store_n(&p->plat.fs_got, 1, __ATOMIC_RELEASE);
  }
  /* The code came while the child was a zombie (see the server); the
   * server closes the channel once it reaped it, microseconds later.  Wait
   * for that EOF, so that once joined the pid is gone for liveness checks
   * by pid too (a lock's dead owner, a condition's dead waiter), as after a
   * fork or spawn child's waitpid.  A server stopped in between gets 1 s,
   * then the code counts anyway: whoever saw the sentinel fire may reap at
   * once (the pool does). */
  (void)mproc__px_poll_in(p->plat.sentinel_r,
                          mproc__deadline(MPROC__FS_REAP_WAIT));
  *exitcode = p->plat.fs_code;
  return 1;
}

int mproc__px_fs_signal(mproc_process *p, int sig) {
  int rc;
  /* A code (read or to read) means the child has ended: leave it alone. */
  if (__atomic_load_n(&p->plat.fs_got, __ATOMIC_ACQUIRE) ||
      (mproc__px_poll_in(p->plat.sentinel_r, 0) != 0 &&
       (!mproc__fs_orphaned(p) || mproc__fs_own_end(p))))
    return MPROC_OK;
#if MPROC__HAVE_PIDFD
  if (p->plat.fs_pidfd >= 0)
    rc = (int)syscall(SYS_pidfd_send_signal, p->plat.fs_pidfd, sig, NULL, 0);
  else
#endif
    /* No pidfd: the server had not reaped the child an instant ago; it
     * could reap it, and the pid be reused, before this kill lands. */
    rc = kill((pid_t)p->pid, sig);
  if (rc != 0 && errno != ESRCH)
    return mproc__os_fail(MPROC_ESYS, errno);
  return MPROC_OK;
}

/* ---- the server ------------------------------------------------------------------ */

typedef struct mproc__fs_kid {
  pid_t pid;
  int status_fd; /* the server's end of the child's status channel */
  int daemon;
} mproc__fs_kid;

/* The server's state (single-threaded). */
static mproc__fs_kid *g_kids;
static size_t g_nkids, g_kids_cap;
static int g_sigchld_pipe[2] = {-1, -1};
static int64_t g_fs_client; /* the program the server serves */

static void mproc__fs_on_sigchld(int sig) {
  int saved = errno;
  (void)sig;
  (void)write(g_sigchld_pipe[1], "c", 1); /* full pipe: a wake-up is due */
  errno = saved;
}

static void mproc__fs_report(int fd, const void *rec, size_t len) {
  /* The program may be gone; its code is then nobody's business. */
  (void)mproc__px_send_all(fd, (const unsigned char *)rec, len);
}

static int mproc__fs_ended(const siginfo_t *si) {
  return si->si_code == CLD_EXITED || si->si_code == CLD_KILLED ||
         si->si_code == CLD_DUMPED;
}

/* Kid i has ended (si): send its code while it is still a zombie (its pid
 * still ours, so the program's pidfd cannot name a newcomer), then reap it
 * and close its channel (EOF: the pid is gone too) and drop it from the
 * table. */
static void mproc__fs_report_and_reap(size_t i, const siginfo_t *si) {
  unsigned char rec[4];
  mproc__wr_put32(rec, (uint32_t)(si->si_code == CLD_EXITED ? si->si_status
                                                            : -si->si_status));
  mproc__fs_report(g_kids[i].status_fd, rec, sizeof rec);
  while (waitpid(g_kids[i].pid, NULL, 0) < 0 && errno == EINTR) {
  }
  /* EOF after the code tells the program the pid is gone too. */
  (void)close(g_kids[i].status_fd);
  g_kids[i] = g_kids[--g_nkids];
}

/* Every ended child, each found by one waitid(P_ALL) (the table is only
 * searched in memory), so an exit costs the same with 1 or 1000 children
 * running.  A child the table does not know (the preload's) is reaped
 * unreported.  Where waitid(WNOWAIT) also reports stopped children (a macOS
 * quirk, see proc.c), each child is asked in turn instead. */
static void mproc__fs_reap_ended(void) {
  siginfo_t si;
  size_t i;
  for (;;) {
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        si.si_pid == 0)
      return;
    if (!mproc__fs_ended(&si))
      break;
    for (i = 0; i < g_nkids && g_kids[i].pid != si.si_pid; i++) {
    }
    if (i < g_nkids)
      mproc__fs_report_and_reap(i, &si);
    else
      while (waitpid(si.si_pid, NULL, 0) < 0 && errno == EINTR) {
      }
  }
  for (i = 0; i < g_nkids;) {
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)g_kids[i].pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
            0 &&
        si.si_pid == g_kids[i].pid && mproc__fs_ended(&si))
      mproc__fs_report_and_reap(i, &si);
    else
      i++;
  }
}

static int mproc__fs_nstdio(uint32_t flags) {
  int i, n = 0;
  for (i = 0; i < 3; i++)
    n += (flags & MPROC__FS_STDIO(i)) != 0;
  return n;
}

/* The descriptors a spawned child would have: the program's stdio on 0-2,
 * fd 3 reading EOF when the program ends (our parent watch), the handles
 * from fd 4, the child's end of its life line (if sent) right after them
 * (child.c's life line slot).  Nothing else: not the status channel (fds[0]), nor any
 * other child's, nor the server's connection. */
static void mproc__fs_child_fds(int alive, const int *fds, size_t nfds,
                                uint32_t flags) {
  int nl = (flags & MPROC__FS_LIFE) != 0;
  int nh = (int)nfds - 1 - nl - mproc__fs_nstdio(flags), floor = 4 + nh + nl;
  int src[MPROC__FS_MAX_FDS + 4], dst[MPROC__FS_MAX_FDS + 4], i, k = 0;
  for (i = 0; i < 3; i++)
    if (flags & MPROC__FS_STDIO(i)) {
      src[k] = fds[1 + nl + nh + k];
      dst[k++] = i;
    }
  src[k] = alive;
  dst[k++] = MPROC__BS_FD;
  for (i = 0; i < nh + nl; i++, k++) {
    src[k] = fds[i < nh ? 1 + nl + i : 1];
    dst[k] = MPROC__BS_FD + 1 + i;
  }
  /* Copies above every target first, so no dup2 clobbers a source. */
  for (i = 0; i < k; i++)
    if ((src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, floor)) < 0)
      mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP);
  for (i = 0; i < 3; i++)
    if (!(flags & MPROC__FS_STDIO(i)))
      (void)close(i); /* closed in the program too */
  for (i = 0; i < k; i++)
    if (dup2(src[i], dst[i]) < 0)
      mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP);
  mproc__px_close_range(floor, -1);
  (void)fcntl(MPROC__BS_FD, F_SETFD, FD_CLOEXEC);
  if (nl) {
    (void)fcntl(floor - 1, F_SETFD, FD_CLOEXEC);
    mproc__px_life_fd = floor - 1;
  }
}

/* Default handlers and an empty mask, as a spawned child starts. */
static void mproc__fs_child_signals(void) {
  sigset_t none;
  (void)signal(SIGCHLD, SIG_DFL);
  (void)signal(SIGINT, SIG_DFL);
  (void)signal(SIGPIPE, SIG_DFL);
  sigemptyset(&none);
  (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

static size_t mproc__fs_setup_len(const unsigned char *p) {
  mproc__rd rd;
  mproc__rd_init(&rd, p, 4);
  return mproc__rd_u32(&rd);
}

/* Reads the setup that follows the bootstrap into *bs (grown to hold it)
 * and checks its shape: the directory's NUL, the environment byte, and a
 * NUL ending the last entry.  0, or -1 (the stream is damaged). */
static int mproc__fs_recv_setup(int conn, unsigned char **bs, size_t bslen) {
  unsigned char *grown, *s;
  const unsigned char *nul;
  size_t len, cwd_end;
  if (!(grown = (unsigned char *)realloc(*bs, bslen + 4)))
    return -1;
  *bs = grown;
  if (mproc__fs_recv_until(conn, grown + bslen, 4, -1.0) != 0)
    return -1;
  len = mproc__fs_setup_len(grown + bslen);
  if (len < 2 || len > MPROC__FS_SETUP_MAX)
    return -1;
  if (!(grown = (unsigned char *)realloc(*bs, bslen + 4 + len)))
    return -1;
  *bs = grown;
  s = grown + bslen + 4;
  if (mproc__fs_recv_until(conn, s, len, -1.0) != 0)
    return -1;
  nul = (const unsigned char *)memchr(s, 0, len);
  if (!nul)
    return -1;
  cwd_end = (size_t)(nul - s);
  if (cwd_end + 2 > len || s[cwd_end + 1] > 1 ||
      (len > cwd_end + 2 && s[len - 1] != 0))
    return -1;
  return 0;
}

/* In the child: the directory and environment the setup names (see
 * mproc__fs_setup_make; the server checked its shape).  The entries are
 * copied, since the bootstrap buffer is freed before the entry runs, and
 * the copy is never freed: it is the new environ. */
static void mproc__fs_child_setup(const char *blob, size_t len) {
  size_t n = 0, at, k = 0, i;
  char **envp, *setup = (char *)malloc(len);
  if (!setup)
    mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP);
  memcpy(setup, blob, len);
  at = strlen(setup) + 1;
  if (setup[0] && chdir(setup) != 0)
    mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP); /* removed since start */
  if (!setup[at++]) {
    free(setup); /* no environment: nothing points into it */
    return;
  }
  for (i = at; i < len; i++)
    n += setup[i] == 0;
  if (!(envp = (char **)malloc((n + 1) * sizeof(*envp))))
    mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP);
  while (at < len) {
    envp[k++] = setup + at;
    at += strlen(setup + at) + 1;
  }
  envp[k] = NULL;
  mproc__environ = envp;
}

/* In the child the server just forked: become a spawned child of the
 * program, with the bootstrap it sent.  Does not return. */
static void mproc__fs_child_main(int alive, const int *fds, size_t nfds,
                                 unsigned char *bs, size_t bslen,
                                 uint32_t flags) {
  mproc__fs_child_signals();
  if (flags & MPROC__FS_SETUP)
    mproc__fs_child_setup((const char *)bs + bslen + 4,
                          mproc__fs_setup_len(bs + bslen));
  /* Its group before anything it starts is born (the server sets it too,
   * so it exists when the program learns the pid). */
  if ((flags & MPROC__FS_GROUP) && setpgid(0, 0) != 0)
    mproc__plat_exit_now(1);
  mproc__fs_child_fds(alive, fds, nfds, flags);
  /* A daemonic child dies with its program.  Linux: PR_SET_PDEATHSIG on the
   * server, which dies with the program and kills its daemonic children
   * first.  Plain POSIX: a thread watches the life line (child.c), whose
   * other end only the program holds, so the child goes with the program
   * even when the server is killed with it. */
  if ((flags & MPROC__FS_DAEMON) &&
      mproc__plat_arm_daemon((int64_t)getppid()) < 0)
    mproc__plat_exit_now(1);
  mproc__run_child(bs, bslen, g_fs_client, MPROC__BS_FD);
}

/* The request's descriptors, in batches; 0 or -1 (the stream is lost). */
static int mproc__fs_recv_request_fds(int conn, int *fds, size_t nfds) {
  unsigned char one;
  size_t off, n, got = 0;
  for (off = MPROC__FS_BATCH; off < nfds; off += n) {
    n = nfds - off < MPROC__FS_BATCH ? nfds - off : MPROC__FS_BATCH;
    if (mproc__fs_recv_fds(conn, &one, 1, fds + off, n, &got) != 0 ||
        got != n) {
      off += got;
      while (off > MPROC__FS_BATCH)
        (void)close(fds[--off]);
      return -1;
    }
  }
  return 0;
}

/* Whether the program still waits for the child's pid on the status
 * channel: a start that timed out closed its end (recv reads EOF).  The
 * program never writes there; bytes there change nothing. */
static int mproc__fs_wanted(int status_fd) {
  char c;
  ssize_t r;
  do
    r = recv(status_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  return r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* Room for one more child in the table; 0 or -1 (out of memory). */
static int mproc__fs_kids_room(void) {
  mproc__fs_kid *grown;
  size_t cap = g_kids_cap ? 2 * g_kids_cap : 16;
  if (g_nkids < g_kids_cap)
    return 0;
  grown = (mproc__fs_kid *)realloc(g_kids, cap * sizeof(*g_kids));
  if (!grown)
    return -1;
  g_kids = grown;
  g_kids_cap = cap;
  return 0;
}

/* Fork the child a request asks for and tell the program its pid (or the
 * error).  Keeps the status channel (fds[0]) in the table.  A program that
 * gave up waiting (a start that timed out while we were stopped) gets no
 * child: none is made, or the one just made is killed when its pid cannot
 * be delivered. */
static void mproc__fs_fork(int alive, int *fds, size_t nfds, unsigned char *bs,
                           size_t bslen, uint32_t flags) {
  unsigned char rec[8];
  pid_t pid = -1;
  size_t i;
  int e = ENOMEM, told;
  if (!mproc__fs_wanted(fds[0]))
    e = ECANCELED;
  else if (mproc__fs_kids_room() == 0 && (pid = fork()) < 0)
    e = errno;
  if (pid == 0)
    mproc__fs_child_main(alive, fds, nfds, bs, bslen, flags);
  /* Whichever of the two runs first makes the group; EACCES cannot happen
   * (the child execs nothing), and a child already gone fails with ESRCH. */
  if (pid > 0 && (flags & MPROC__FS_GROUP))
    (void)setpgid(pid, pid);
  mproc__wr_put64(rec, pid > 0 ? (uint64_t)pid : (uint64_t)(int64_t)-e);
  told = mproc__px_send_all(fds[0], rec, sizeof rec) == 0;
  for (i = 1; i < nfds; i++)
    (void)close(fds[i]);
  if (pid > 0 && !told)
    (void)kill(pid, SIGKILL); /* reaped unreported, as a stranger */
  if (pid < 0 || !told) {
    (void)close(fds[0]);
    return;
  }
  g_kids[g_nkids].pid = pid;
  g_kids[g_nkids].status_fd = fds[0];
  g_kids[g_nkids].daemon = (flags & MPROC__FS_DAEMON) != 0;
  g_nkids++;
}

/* Serve one request.  -1 when the program is gone (EOF) or the stream is
 * damaged: the server then shuts down. */
static int mproc__fs_serve(int conn, int alive) {
  unsigned char hdr[MPROC__FS_HEADER], *bs = NULL;
  int *fds = NULL, rc = -1;
  uint32_t bslen, nfds, flags;
  size_t got = 0;
  mproc__rd rd;
  fds = (int *)malloc(MPROC__FS_MAX_FDS * sizeof(*fds));
  if (!fds || mproc__fs_recv_fds(conn, hdr, sizeof hdr, fds, MPROC__FS_BATCH,
                                 &got) != 0)
    goto finish;
  mproc__rd_init(&rd, hdr, sizeof hdr);
  if (mproc__rd_u32(&rd) != MPROC__FS_MAGIC)
    goto finish;
  bslen = mproc__rd_u32(&rd);
  nfds = mproc__rd_u32(&rd);
  flags = mproc__rd_u32(&rd);
  if (bslen < MPROC__BS_HEADER || bslen > MPROC__BS_MAX ||
      (flags & ~MPROC__FS_FLAGS) != 0 ||
      nfds < 1 + ((flags & MPROC__FS_LIFE) != 0) +
                 (uint32_t)mproc__fs_nstdio(flags) ||
      nfds > MPROC__FS_MAX_FDS ||
      got != (nfds < MPROC__FS_BATCH ? nfds : MPROC__FS_BATCH))
    goto finish;
  bs = (unsigned char *)malloc(bslen);
  if (!bs || mproc__fs_recv_request_fds(conn, fds, nfds) != 0)
    goto finish;
  got = nfds;
  if (mproc__fs_recv_until(conn, bs, bslen, -1.0) != 0)
    goto finish;
  if ((flags & MPROC__FS_SETUP) && mproc__fs_recv_setup(conn, &bs, bslen) != 0)
    goto finish;
  mproc__fs_fork(alive, fds, nfds, bs, bslen, flags);
  got = 0; /* the table or the child owns them now */
  rc = 0;
finish:
  while (got > 0)
    (void)close(fds[--got]);
  free(fds);
  free(bs);
  return rc;
}

/* Kill the daemonic children (they die with the program, as a fork child
 * with PR_SET_PDEATHSIG does) and go.  The others run on, adopted by init. */
static void mproc__fs_shutdown(void) {
  size_t i;
  for (i = 0; i < g_nkids; i++)
    if (g_kids[i].daemon)
      (void)kill(g_kids[i].pid, SIGKILL); /* unreaped: still ours */
  mproc__plat_exit_now(0);
}

/* Serve until the program is gone. */
static void mproc__fs_loop(int conn, int alive) {
  struct pollfd pfd[2];
  char drain[64];
  for (;;) {
    pfd[0].fd = conn;
    pfd[0].events = POLLIN;
    pfd[1].fd = g_sigchld_pipe[0];
    pfd[1].events = POLLIN;
    pfd[0].revents = pfd[1].revents = 0;
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      mproc__fs_shutdown();
    }
    if (pfd[1].revents) {
      while (read(g_sigchld_pipe[0], drain, sizeof drain) > 0) {
      }
      mproc__fs_reap_ended();
    }
    if (pfd[0].revents && mproc__fs_serve(conn, alive) != 0)
      mproc__fs_shutdown();
  }
}

/* Signals in the server: SIGCHLD wakes the loop through a pipe; Ctrl+C at
 * the terminal reaches the whole foreground group, and the program decides
 * what its children do about it, so the server never takes SIGINT (as
 * CPython's forkserver, which ignores it).  Blocked, not ignored: a child
 * inherits the mask, so an interrupt() sent before the child restored the
 * default action stays pending and ends it then (an inherited SIG_IGN
 * would have dropped it); a vanished program must not kill the server with
 * SIGPIPE. */
static int mproc__fs_server_signals(void) {
  struct sigaction sa;
  sigset_t intr;
  if (mproc__px_pipe(g_sigchld_pipe) != 0 ||
      fcntl(g_sigchld_pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
      fcntl(g_sigchld_pipe[1], F_SETFL, O_NONBLOCK) != 0)
    return -1;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = mproc__fs_on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  (void)sigprocmask(SIG_BLOCK, &intr, NULL);
  (void)signal(SIGPIPE, SIG_IGN);
  return sigaction(SIGCHLD, &sa, NULL);
}

/* The preload entry, once, before the first fork. */
static void mproc__fs_preload(const mproc_args *args) {
  const char *name = NULL;
  const mproc_entry *e;
  mproc_args *none = NULL;
  if (mproc_kwarg_str(args, "preload", &name) != MPROC_OK)
    return;
  e = mproc__entry_find(name);
  if (e && mproc_args_create(&none) == MPROC_OK) {
    (void)e->fn(none);
    mproc_args_free(none);
  }
  /* What it printed must not be printed again by every child. */
  (void)fflush(NULL);
}

/* The reserved entry: runs in the process the program spawned, which forks
 * the server and exits at once, so the server is nobody's child there. */
static int mproc__fs_server_main(const mproc_args *args) {
  mproc_handle_t conn = -1, alive = -1;
  unsigned char hello[8];
  int64_t client = 0;
  pid_t pid;
  if (mproc_arg_handle(args, 0, &conn) != MPROC_OK ||
      mproc_arg_handle(args, 1, &alive) != MPROC_OK ||
      mproc_process_pid(mproc_parent_process(), &client) != MPROC_OK)
    return MPROC_EXIT_BOOTSTRAP;
  pid = fork();
  if (pid < 0) {
    perror("mproc: forkserver: fork");
    return MPROC_EXIT_BOOTSTRAP;
  }
  if (pid > 0)
    mproc__plat_exit_now(0);
  /* Without pidfds the program sees the helper end by EOF on the helper's
   * life line (proc.c): the server must not keep the helper's end, or the
   * program's start would wait for the server to end.  The server watches
   * the program through `alive` instead. */
  mproc__px_close_fd(&mproc__px_life_fd);
  g_fs_client = client;
  if (mproc__fs_server_signals() != 0) {
    perror("mproc: forkserver: signals");
    mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP);
  }
  mproc__fs_preload(args);
  mproc__wr_put64(hello, (uint64_t)getpid());
  mproc__fs_report(conn, hello, sizeof hello);
  mproc__fs_loop(conn, alive);
  return 0; /* not reached */
}
