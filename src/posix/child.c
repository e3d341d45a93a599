/* POSIX backend, the child's side: the bootstrap a spawning parent sends
 * (checked against the kernel's record of who made its socket), the passed
 * descriptors, dying with a daemonic parent, and watching the parent. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "px.h"

#if MPROC__HAVE_PDEATHSIG
#include <sys/prctl.h>
#endif
#if !MPROC__HAVE_PDEATHSIG
#include <pthread.h>
#endif
#if MPROC__HAVE_LOCAL_PEERPID || MPROC__HAVE_XUCRED_PID
#include <sys/ucred.h> /* LOCAL_PEERPID, LOCAL_PEERCRED, struct xucred */
#endif

int mproc__px_life_fd = -1;

/* Reads exactly n bytes, waiting at most until `deadline`. */
static int mproc__read_full(int fd, unsigned char *buf, size_t n,
                            double deadline) {
  size_t got = 0;
  while (got < n) {
    ssize_t r;
    int prc = mproc__px_poll_in(fd, deadline);
    if (prc < 0)
      return MPROC_ESYS;
    if (prc == 0)
      return MPROC_ETIMEDOUT;
    r = read(fd, buf + got, n - got);
    if (r < 0 && errno != EINTR && errno != EAGAIN)
      return MPROC_ESYS;
    if (r == 0)
      return MPROC_ECLOSED;
    if (r > 0)
      got += (size_t)r;
  }
  return MPROC_OK;
}

/* The flag must be the bare one a parent passes, with a socket on fd 3. */
static int mproc__check_bs_flag(const char *arg, char *err, size_t errlen) {
  struct stat st;
  /* A POSIX parent passes the bare flag; a value is the flag typed by hand
   * (or a Windows command line), refused like any other forgery. */
  if (strcmp(arg, MPROC__BS_FLAG) != 0) {
    snprintf(err, errlen,
             "%s is internal to mproc: this process was not started by an "
             "mproc parent (a parent passes no value)",
             MPROC__BS_FLAG);
    return MPROC_ESPAWN;
  }
  /* The flag alone proves nothing: a parent hands over a socket on fd 3.
   * Anything else means the flag was typed by hand. */
  if (fstat(MPROC__BS_FD, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    snprintf(err, errlen,
             "%s is internal to mproc: this process was not started by an "
             "mproc parent (no bootstrap socket on fd %d%s%s)",
             MPROC__BS_FLAG, MPROC__BS_FD, errno ? ": " : "",
             errno ? strerror(errno) : "");
    return MPROC_ESPAWN;
  }
  return MPROC_OK;
}

/* The pid and effective uid of the process that made the other end of a
 * Unix socket, as the kernel recorded them when it was made (socketpair()
 * records its caller for both ends).  0, or -1 with errno; ENOSYS where
 * this port knows no way to ask. */
static int mproc__peer_cred(int fd, int64_t *pid, int64_t *euid) {
#if MPROC__HAVE_SO_PEERCRED
  struct ucred c; /* uid is the effective one (socket(7), SO_PEERCRED) */
  socklen_t n = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &n) != 0)
    return -1;
  *pid = (int64_t)c.pid;
  *euid = (int64_t)c.uid;
  return 0;
#elif MPROC__HAVE_LOCAL_PEERPID
  pid_t p;
  uid_t u;
  gid_t g;
  socklen_t n = sizeof p;
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &p, &n) != 0 ||
      getpeereid(fd, &u, &g) != 0)
    return -1;
  *pid = (int64_t)p;
  *euid = (int64_t)u;
  return 0;
#elif MPROC__HAVE_XUCRED_PID
  struct xucred c; /* cr_pid since FreeBSD 13 */
  socklen_t n = sizeof c;
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, &c, &n) != 0)
    return -1;
  *pid = (int64_t)c.cr_pid;
  *euid = (int64_t)c.cr_uid;
  return 0;
#else
  /* Ports: OpenBSD has SO_PEERCRED (struct sockpeercred), NetBSD
   * LOCAL_PEEREID (struct unpcbid).  A system with no peer pid at all needs
   * another proof, e.g. the parent signs the bootstrap with a secret only
   * it and the child can hold.  Until then spawn children are refused:
   * failing closed is the documented guarantee. */
  (void)fd;
  (void)pid;
  (void)euid;
  errno = ENOSYS;
  return -1;
#endif
}

/* Who sent the bootstrap, attested by the kernel rather than claimed in it:
 * the other end of fd 3 must be a socket pair made by this process's
 * parent, running as our effective user.  A forger can start the program,
 * but the socket it hands over is its own, and it cannot make a socket
 * pair on another process's behalf.  Checked before a byte is read, while
 * the parent is still alive (it is blocked sending, or has just sent). */
static int mproc__check_bs_sender(int fd, int64_t *sender, char *err,
                                  size_t errlen) {
  struct sockaddr_un peer;
  socklen_t plen = sizeof peer;
  int64_t ppid = (int64_t)getppid(), pid = 0, euid = 0;
  if (mproc__peer_cred(fd, &pid, &euid) != 0) {
    snprintf(err, errlen,
             "bootstrap refused: cannot learn who made the bootstrap socket "
             "(%s)",
             strerror(errno));
    return MPROC_ESPAWN;
  }
  /* A socket connected to a listening socket carries the listener's
   * credentials, but anyone who can connect writes to the listener's side:
   * only a socket pair has a peer without an address. */
  memset(&peer, 0, sizeof peer);
  if (getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 ||
      plen > (socklen_t)offsetof(struct sockaddr_un, sun_path)) {
    snprintf(err, errlen,
             "bootstrap refused: the bootstrap socket is connected to a named "
             "socket, not a socket pair made by the parent");
    return MPROC_ESPAWN;
  }
  if (pid != ppid) {
    snprintf(err, errlen,
             "bootstrap refused: the bootstrap socket was made by process "
             "%lld, not by this process's parent (process %lld)",
             (long long)pid, (long long)ppid);
    return MPROC_ESPAWN;
  }
  if (euid != (int64_t)geteuid()) {
    snprintf(err, errlen,
             "bootstrap refused: the bootstrap socket was made by user %lld, "
             "but this process runs as user %lld",
             (long long)euid, (long long)geteuid());
    return MPROC_ESPAWN;
  }
  *sender = pid;
  return MPROC_OK;
}

/* Reads the whole message: the header, then the length it announces. */
/* Why reading the bootstrap stopped, in words for the one-line reason. */
static const char *mproc__bs_read_failure(int rc) {
  switch (rc) {
  case MPROC_ECLOSED:
    return "the parent closed the channel before sending all of it";
  case MPROC_ETIMEDOUT:
    return "nothing more arrived within 60 s";
  case MPROC_ESYS:
    return strerror(errno);
  default:
    return mproc_strerror(rc);
  }
}

static int mproc__receive_bs(int fd, unsigned char **buf, size_t *len,
                             char *err, size_t errlen) {
  unsigned char hdr[MPROC__BS_HEADER];
  unsigned char *msg;
  size_t total;
  /* A parent writes the whole bootstrap right after the exec; a minute
   * covers any load and still ends a run whose sender writes nothing. */
  double deadline = mproc__deadline(60.0);
  int rc = mproc__read_full(fd, hdr, sizeof hdr, deadline);
  if (rc == MPROC_OK && mproc__bootstrap_peek_len(hdr, &total) < 0)
    rc = MPROC_EINVAL;
  if (rc < 0) {
    snprintf(err, errlen, "damaged bootstrap from the parent process (%s)",
             rc == MPROC_EINVAL ? "bad header: not an mproc bootstrap, or one "
                                  "from another mproc version"
                                : mproc__bs_read_failure(rc));
    return MPROC_ESPAWN;
  }
  msg = (unsigned char *)malloc(total);
  if (!msg) {
    snprintf(err, errlen, "out of memory for a %zu-byte bootstrap", total);
    return MPROC_ENOMEM;
  }
  memcpy(msg, hdr, sizeof hdr);
  rc = mproc__read_full(fd, msg + sizeof hdr, total - sizeof hdr, deadline);
  if (rc < 0) {
    snprintf(err, errlen, "truncated bootstrap from the parent process (%s)",
             mproc__bs_read_failure(rc));
    free(msg);
    return MPROC_ESPAWN;
  }
  *buf = msg;
  *len = total;
  return MPROC_OK;
}

int mproc__plat_read_bootstrap(int argc, char **argv, unsigned char **buf,
                               size_t *len, int64_t *sender, char *err,
                               size_t errlen) {
  int rc;
  *buf = NULL;
  *len = 0;
  *sender = 0;
  if (argc < 2 || !argv || !mproc__bootstrap_flag_value(argv[1]))
    return 0;
  rc = mproc__check_bs_flag(argv[1], err, errlen);
  if (rc < 0)
    return rc;
  rc = mproc__check_bs_sender(MPROC__BS_FD, sender, err, errlen);
  if (rc == MPROC_OK)
    rc = mproc__receive_bs(MPROC__BS_FD, buf, len, err, errlen);
  (void)close(MPROC__BS_FD);
  return rc < 0 ? rc : 1;
}

int mproc__plat_child_setup(const mproc__bootstrap *bs, char *err,
                            size_t errlen) {
  uint32_t i;
  int fd;
  /* posix_spawn's dup2 cleared FD_CLOEXEC so the handles survived exec;
   * restore it so programs this child execs do not inherit them. */
  for (i = 0; i < bs->nhandles; i++) {
    fd = (int)bs->handles[i];
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
      snprintf(err, errlen, "passed descriptor %d is not open in the child",
               fd);
      return MPROC_ESPAWN;
    }
  }
  /* Without pidfds our end of the life line (proc.c) sits right after the
   * passed handles. */
  fd = MPROC__BS_FD + 1 + (int)bs->nhandles;
  if (fcntl(fd, F_GETFD) >= 0) {
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    mproc__px_life_fd = fd;
  }
  return MPROC_OK;
}

/* A descriptor that polls readable once our parent has ended, or -1:
 * a pidfd (opened at most once, by whichever thread asks first), macOS's
 * kqueue stand-in, or our end of the life line (proc.c).  If the parent
 * died before pidfd_open the pid may name a stranger now; we were
 * reparented in that case, which getppid() shows, so such a pidfd is
 * dropped. */
static int mproc__parent_watch_fd(mproc__plat_parent *w) {
  int fd = __atomic_load_n(&w->pidfd, __ATOMIC_ACQUIRE);
  int expected = -1;
  if (fd >= 0)
    return fd;
  if (!mproc__px_use_pidfd)
    return mproc__px_life_fd;
  fd = mproc__px_pidfd_open((pid_t)w->pid);
  if (fd >= 0 && (int64_t)getppid() != w->pid)
    mproc__px_close_fd(&fd);
  if (fd < 0)
    return -1;
  if (!__atomic_compare_exchange_n(&w->pidfd, &expected, fd, 0,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    mproc__px_close_fd(&fd); /* another thread opened it first */
    return expected;
  }
  return fd;
}

#if !MPROC__HAVE_PDEATHSIG
/* No PR_SET_PDEATHSIG here.  A detached thread blocks in poll(2) until the
 * parent's end is gone (a kqueue watching the parent for NOTE_EXIT on
 * macOS, the life line elsewhere) and kills this process then, as the
 * Linux death signal would.  On EOF getppid() may still name the parent
 * (the kernel closes a dying process's descriptors before it reparents its
 * children), so the end alone decides.  A parent that execs another
 * program closes its end too (close-on-exec): it is no mproc parent any
 * more, and its daemonic children go. */
static void *mproc__parent_death_watch(void *arg) {
  int fd = (int)(intptr_t)arg;
  while (mproc__px_poll_in(fd, -1) < 0 && errno == EINTR) {
  }
  (void)kill(getpid(), SIGKILL);
  return NULL;
}

static int mproc__arm_parent_death(int64_t parent_pid) {
  pthread_attr_t attr;
  pthread_t tid;
  mproc__plat_parent w;
  int fd, rc = MPROC_OK, e;
  w.pid = parent_pid;
  w.pidfd = -1;
  /* Opened first, checked second: a parent that died before has
   * reparented us, which getppid() shows. */
  fd = mproc__parent_watch_fd(&w);
  if (fd < 0)
    return MPROC_ENOTSUP; /* neither a kqueue nor a life line */
  if ((int64_t)getppid() != parent_pid) {
    rc = MPROC_ESTATE;
    goto finish;
  }
  e = pthread_attr_init(&attr);
  if (e == 0) {
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    e = pthread_create(&tid, &attr, mproc__parent_death_watch,
                       (void *)(intptr_t)fd);
    (void)pthread_attr_destroy(&attr);
  }
  if (e != 0)
    rc = mproc__os_fail(MPROC_ESYS, e);
finish:
  /* On success the watcher uses fd for the rest of our life.  A kqueue
   * opened here (w.pidfd) is ours to close on failure; the life line is
   * not. */
  if (rc < 0)
    mproc__px_close_fd(&w.pidfd);
  return rc;
}
#endif

int mproc__plat_arm_daemon(int64_t parent_pid) {
#if MPROC__HAVE_PDEATHSIG
  /* PR_SET_PDEATHSIG fires when the parent *thread* that forked us exits,
   * and never if the parent died before the call: the getppid() check
   * closes that window (prctl(2)). */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  if ((int64_t)getppid() != parent_pid)
    return MPROC_ESTATE;
  return MPROC_OK;
#else
  return mproc__arm_parent_death(parent_pid);
#endif
}

int mproc__plat_watch_parent(mproc__plat_parent *w, int64_t parent_pid,
                             uint64_t parent_handle) {
  (void)parent_handle;
  /* Only the pid now: the pidfd is opened when first needed, so a child
   * that never looks at its parent pays nothing for it. */
  w->pid = parent_pid;
  w->pidfd = -1;
  return MPROC_OK;
}

int mproc__plat_parent_alive(mproc__plat_parent *w) {
  /* A child is reparented when its parent dies, so this cannot be fooled by
   * pid reuse the way kill(pid, 0) can. */
  return (int64_t)getppid() == w->pid;
}

int mproc__plat_parent_wait(mproc__plat_parent *w, double timeout) {
  int fd, prc;
  if (!mproc__plat_parent_alive(w))
    return MPROC_OK;
  fd = mproc__parent_watch_fd(w);
  if (fd < 0)
    return MPROC_ENOTSUP; /* a parent that gave us no life line */
  prc = mproc__px_poll_in(fd, mproc__deadline(timeout));
  if (prc < 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  return prc > 0 ? MPROC_OK : MPROC_ETIMEDOUT;
}

mproc_handle_t mproc__plat_parent_sentinel(mproc__plat_parent *w) {
  int fd = mproc__parent_watch_fd(w);
  return fd >= 0 ? fd : MPROC_INVALID_HANDLE;
}
