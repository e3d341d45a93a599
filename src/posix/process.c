/* POSIX backend: fork, spawn (posix_spawn of the own executable), waiting
 * through pidfds (Linux) or sentinel pipes, and signals that can never reach
 * a recycled pid. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif
#if defined(__APPLE__) || defined(__FreeBSD__)
#include <sys/param.h> /* __FreeBSD_version */
#include <sys/ucred.h> /* LOCAL_PEERPID, LOCAL_PEERCRED, struct xucred */
#endif

#include "exe.h"
#include "internal.h"

extern char **environ;

/* In a spawned child the bootstrap arrives on this descriptor, and the
 * handles passed as arguments follow it, in slot order. */
#define MPROC__BS_FD 3

#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define MPROC__HAVE_CLOSEFROM_NP 1
#else
#define MPROC__HAVE_CLOSEFROM_NP 0
#endif

#if defined(__linux__) && !defined(SYS_pidfd_open)
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif
#if defined(__linux__) && !defined(SYS_pidfd_send_signal)
#define SYS_pidfd_send_signal 424
#endif

static int g_use_pidfd;
/* Without pidfds: the write end of our own parent's sentinel pipe.  A child
 * we fork must close it, or our parent would not see us end until that
 * grandchild ends too. */
static int g_own_sentinel_w = -1;
static int g_use_forkexec; /* spawn via fork+exec instead of posix_spawn */

void mproc__mutex_lock(mproc__mutex_t *m) { (void)pthread_mutex_lock(m); }
void mproc__mutex_unlock(mproc__mutex_t *m) { (void)pthread_mutex_unlock(m); }

/* glibc stopped caching getpid() (2.25), and the library asks often: keep
 * our own cache, cleared in every fork child by a pthread_atfork handler
 * (also for forks the application makes itself). */
static int64_t g_pid_cache;

static void mproc__atfork_child(void) {
  __atomic_store_n(&g_pid_cache, 0, __ATOMIC_RELAXED);
}

int64_t mproc__plat_getpid(void) {
  int64_t pid = __atomic_load_n(&g_pid_cache, __ATOMIC_RELAXED);
  if (pid == 0) {
    pid = (int64_t)getpid();
    __atomic_store_n(&g_pid_cache, pid, __ATOMIC_RELAXED);
  }
  return pid;
}

int mproc__plat_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 && n < INT_MAX ? (int)n : 1;
}

double mproc__plat_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int mproc__plat_last_error(void) { return errno; }

static int mproc__pidfd_open(pid_t pid) {
#ifdef __linux__
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

static void mproc__close_fd(int *fd) {
  if (*fd >= 0) {
    int saved = errno;
    (void)close(*fd);
    errno = saved;
    *fd = -1;
  }
}

/* ---- descriptors meant for one child only ---------------------------------- */

/* While a spawn is under way the parent holds ends that must reach only the
 * child being started: the write end of its sentinel pipe (without pidfds,
 * the parent sees the child end when every copy of that end is closed), the
 * child's end of the bootstrap socket (a dead child shows as a broken
 * socket) and, with fork+exec, the exec-error pipe (its EOF says the exec
 * succeeded).  A fork child made meanwhile by another thread never execs, so
 * close-on-exec does not remove its copies: it would hold them for its whole
 * life, and a join of the spawned child would wait until that unrelated fork
 * child ended.  So every such end is created and registered under
 * mproc__lock, which mproc_process_start holds across fork(), and closed and
 * unregistered under it too; a fork child closes every registered end before
 * it runs its entry.  The records live on the spawning threads' stacks (a
 * fork child sees a copy of those stacks), so registering cannot fail. */
enum {
  MPROC__END_SOCK,      /* the child's end of the bootstrap socket pair */
  MPROC__END_SOCK_COPY, /* its copy above the dup2 targets */
  MPROC__END_SENT,      /* the sentinel pipe's write end (no pidfds) */
  MPROC__END_SENT_COPY,
  MPROC__END_EXECERR,   /* fork+exec: the exec-error pipe's write end */
  MPROC__END_COUNT
};

typedef struct mproc__child_ends {
  int fd[MPROC__END_COUNT]; /* -1 when unused or closed */
  int linked;
  struct mproc__child_ends *next;
} mproc__child_ends;

static mproc__child_ends *g_child_ends; /* guarded by mproc__lock */

static void mproc__child_ends_init(mproc__child_ends *e) {
  int i;
  for (i = 0; i < MPROC__END_COUNT; i++)
    e->fd[i] = -1;
  e->linked = 0;
  e->next = NULL;
}

/* Called with mproc__lock held, before any end is created. */
static void mproc__child_ends_link(mproc__child_ends *e) {
  e->next = g_child_ends;
  g_child_ends = e;
  e->linked = 1;
}

/* Closes one end (or, with which < 0, every end and unregisters `e`). */
static void mproc__child_ends_close(mproc__child_ends *e, int which) {
  mproc__child_ends **pp;
  int i;
  mproc__mutex_lock(&mproc__lock);
  for (i = 0; i < MPROC__END_COUNT; i++)
    if (which < 0 || i == which)
      mproc__close_fd(&e->fd[i]);
  if (which < 0 && e->linked) {
    for (pp = &g_child_ends; *pp && *pp != e; pp = &(*pp)->next) {
    }
    if (*pp)
      *pp = e->next;
    e->linked = 0;
  }
  mproc__mutex_unlock(&mproc__lock);
}

/* In a fork child, where mproc__lock is held and only this thread runs:
 * the ends belong to spawns of the parent's other threads. */
static void mproc__child_ends_drop_all(void) {
  mproc__child_ends *e;
  int i;
  for (e = g_child_ends; e; e = e->next)
    for (i = 0; i < MPROC__END_COUNT; i++)
      if (e->fd[i] >= 0)
        (void)close(e->fd[i]);
  g_child_ends = NULL;
}

/* Milliseconds for poll(): negative waits forever; round up so a short
 * timeout never becomes a busy 0. */
static int mproc__ms(double seconds) {
  double ms;
  if (seconds < 0)
    return -1;
  ms = seconds * 1000.0 + 0.999;
  return ms > (double)INT_MAX ? INT_MAX : (int)ms;
}

int mproc__plat_init(int argc, char **argv) {
  const char *knob;
  int fd;
  /* Which file spawn runs is worked out at the first spawn (exe.c). */
  mproc__exe_init(argc, argv);
  (void)pthread_atfork(NULL, NULL, mproc__atfork_child);
  /* Probe once: seccomp filters and kernels before 5.3 refuse pidfds. */
  fd = mproc__pidfd_open(getpid());
  g_use_pidfd = fd >= 0;
  if (fd >= 0)
    (void)close(fd);
  /* Debugging and test knobs for the fallbacks this machine does not need. */
  knob = getenv("MPROC_POSIX_NO_PIDFD");
  if (knob && strcmp(knob, "1") == 0)
    g_use_pidfd = 0;
  knob = getenv("MPROC_POSIX_FORKEXEC");
  g_use_forkexec = !MPROC__HAVE_CLOSEFROM_NP || (knob && strcmp(knob, "1") == 0);
  return MPROC_OK;
}

/* ---- the child side of spawn ---------------------------------------------- */

/* Reads exactly n bytes, waiting at most until `deadline`. */
static int mproc__read_full(int fd, unsigned char *buf, size_t n,
                            double deadline) {
  size_t got = 0;
  while (got < n) {
    struct pollfd pfd;
    ssize_t r;
    int prc;
    double left = deadline - mproc__plat_now();
    if (left <= 0)
      return MPROC_ETIMEDOUT;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    prc = poll(&pfd, 1, mproc__ms(left));
    if (prc < 0 && errno != EINTR)
      return MPROC_ESYS;
    if (prc <= 0)
      continue;
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
#if defined(__linux__)
  struct ucred c; /* uid is the effective one (socket(7), SO_PEERCRED) */
  socklen_t n = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &n) != 0)
    return -1;
  *pid = (int64_t)c.pid;
  *euid = (int64_t)c.uid;
  return 0;
#elif defined(__APPLE__)
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
#elif defined(__FreeBSD__) && __FreeBSD_version >= 1300000
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
static int mproc__receive_bs(int fd, unsigned char **buf, size_t *len,
                             char *err, size_t errlen) {
  unsigned char hdr[MPROC__BS_HEADER];
  unsigned char *msg;
  size_t total;
  /* A parent writes the whole bootstrap right after the exec; a minute
   * covers any load and still ends a run whose sender writes nothing. */
  double deadline = mproc__plat_now() + 60.0;
  int rc = mproc__read_full(fd, hdr, sizeof hdr, deadline);
  if (rc == MPROC_OK && mproc__bootstrap_peek_len(hdr, &total) < 0)
    rc = MPROC_EINVAL;
  if (rc < 0) {
    snprintf(err, errlen, "damaged bootstrap from the parent process (%s)",
             rc == MPROC_EINVAL ? "bad header: not an mproc bootstrap, or one "
                                  "from another mproc version"
                                : mproc_strerror(rc));
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
             mproc_strerror(rc));
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
  /* Without pidfds the parent watches a pipe whose write end sits right
   * after the passed handles. */
  fd = MPROC__BS_FD + 1 + (int)bs->nhandles;
  if (fcntl(fd, F_GETFD) >= 0) {
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    g_own_sentinel_w = fd;
  }
  return MPROC_OK;
}

int mproc__plat_arm_daemon(int64_t parent_pid) {
#ifdef __linux__
  /* PR_SET_PDEATHSIG fires when the parent *thread* that forked us exits,
   * and never if the parent died before the call: the getppid() check
   * closes that window (prctl(2)). */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  if ((int64_t)getppid() != parent_pid)
    return MPROC_ESTATE;
#else
  if ((int64_t)getppid() != parent_pid)
    return MPROC_ESTATE;
#endif
  return MPROC_OK;
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

/* Opens the pidfd on first use.  If the parent died before pidfd_open the
 * pid may name a stranger now; we were reparented in that case, which
 * getppid() shows, so such a pidfd is dropped. */
static int mproc__parent_pidfd(mproc__plat_parent *w) {
  int fd = __atomic_load_n(&w->pidfd, __ATOMIC_ACQUIRE);
  int expected = -1;
  if (fd >= 0 || !g_use_pidfd)
    return fd;
  fd = mproc__pidfd_open((pid_t)w->pid);
  if (fd >= 0 && (int64_t)getppid() != w->pid)
    mproc__close_fd(&fd);
  if (fd < 0)
    return -1;
  if (!__atomic_compare_exchange_n(&w->pidfd, &expected, fd, 0,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    mproc__close_fd(&fd); /* another thread opened it first */
    return expected;
  }
  return fd;
}

int mproc__plat_parent_alive(mproc__plat_parent *w) {
  /* A child is reparented when its parent dies, so this cannot be fooled by
   * pid reuse the way kill(pid, 0) can. */
  return (int64_t)getppid() == w->pid;
}

int mproc__plat_parent_wait(mproc__plat_parent *w, double timeout) {
  double deadline = mproc__plat_now() + timeout, left;
  for (;;) {
    if (!mproc__plat_parent_alive(w))
      return MPROC_OK;
    left = timeout < 0 ? 0.05 : deadline - mproc__plat_now();
    if (timeout >= 0 && left <= 0)
      return MPROC_ETIMEDOUT;
    if (mproc__parent_pidfd(w) >= 0) {
      struct pollfd pfd;
      pfd.fd = w->pidfd;
      pfd.events = POLLIN;
      pfd.revents = 0;
      (void)poll(&pfd, 1, timeout < 0 ? -1 : mproc__ms(left));
    } else {
      struct timespec ts = {0, 10 * 1000 * 1000};
      (void)nanosleep(&ts, NULL);
    }
  }
}

mproc_handle_t mproc__plat_parent_sentinel(mproc__plat_parent *w) {
  int fd = mproc__parent_pidfd(w);
  return fd >= 0 ? fd : MPROC_INVALID_HANDLE;
}

void mproc__plat_exit_now(int code) { _exit(code); }

int mproc__plat_handle_plausible(mproc_handle_t h) { return h >= 0; }

mproc_handle_t mproc__plat_dup_handle(mproc_handle_t h) {
  return fcntl(h, F_DUPFD_CLOEXEC, 0);
}

void mproc__plat_close_handle(mproc_handle_t h) {
  if (h >= 0)
    (void)close(h);
}

/* ---- starting ---------------------------------------------------------------- */

/* Kill and reap a child we could not finish starting, so a failed start
 * leaves neither a runaway process nor a zombie. */
static void mproc__abandon(pid_t pid) {
  int st;
  int saved = errno;
  (void)kill(pid, SIGKILL);
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  errno = saved;
}

int mproc__plat_fork(mproc_process *p, void (*child_main)(mproc_process *p)) {
  int sent[2] = {-1, -1};
  pid_t pid;
  int pidfd = -1;
  if (!g_use_pidfd && pipe2(sent, O_CLOEXEC) != 0)
    return mproc__os_fail(MPROC_ESPAWN, errno);
  pid = fork();
  if (pid < 0) {
    int e = errno;
    mproc__close_fd(&sent[0]);
    mproc__close_fd(&sent[1]);
    return mproc__os_fail(MPROC_ESPAWN, e);
  }
  if (pid == 0) {
    size_t i;
    mproc__close_fd(&sent[0]);
    mproc__close_fd(&g_own_sentinel_w);
    mproc__child_ends_drop_all();
    /* The write end stays open (close-on-exec) for the child's whole life:
     * the kernel closes it when the child ends, which the parent sees. */
    g_own_sentinel_w = sent[1];
    /* A passed handle is close-on-exec in the child whatever the start
     * method (mproc.h), as spawn makes it in mproc__plat_child_setup.  The
     * flag belongs to this process's descriptor table: the parent's
     * descriptor keeps its own. */
    for (i = 0; i < p->nhandles; i++)
      (void)fcntl(p->handles[i], F_SETFD, FD_CLOEXEC);
    child_main(p);
    _exit(1); /* not reached */
  }
  if (g_use_pidfd) {
    /* The child is unreaped, so its pid cannot have been reused yet. */
    pidfd = mproc__pidfd_open(pid);
    if (pidfd < 0) {
      int e = errno;
      mproc__abandon(pid);
      return mproc__os_fail(MPROC_ESPAWN, e);
    }
  }
  mproc__close_fd(&sent[1]);
  p->plat.pidfd = pidfd;
  p->plat.sentinel_r = sent[0];
  p->plat.sentinel_unreliable = 0;
  p->pid = (int64_t)pid;
  return MPROC_OK;
}

/* fork+exec for libcs without posix_spawn_file_actions_addclosefrom_np.
 * Between fork and exec only async-signal-safe calls (signal-safety(7)): the
 * parent may have other threads holding malloc or stdio locks. */
static int mproc__forkexec(pid_t *out, const char *path, const int *src,
                           int nsrc, char **argv, mproc__child_ends *ends) {
  int errp[2];
  pid_t pid;
  int child_errno = 0;
  ssize_t r;
  int st;
  mproc__mutex_lock(&mproc__lock);
  if (pipe2(errp, O_CLOEXEC) != 0) {
    int e = errno;
    mproc__mutex_unlock(&mproc__lock);
    return e;
  }
  ends->fd[MPROC__END_EXECERR] = errp[1];
  mproc__mutex_unlock(&mproc__lock);
  pid = fork();
  if (pid < 0) {
    int e = errno;
    (void)close(errp[0]);
    mproc__child_ends_close(ends, MPROC__END_EXECERR);
    errno = e;
    return e;
  }
  if (pid == 0) {
    sigset_t none;
    struct sigaction dfl;
    int i, fd, maxfd;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (i = 1; i < NSIG; i++)
      if (i != SIGKILL && i != SIGSTOP)
        (void)sigaction(i, &dfl, NULL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    /* Sources were duplicated above every target, so no dup2 clobbers a
     * source that a later one still needs. */
    for (i = 0; i < nsrc; i++)
      if (dup2(src[i], MPROC__BS_FD + i) < 0)
        goto fail;
    maxfd = (int)sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536)
      maxfd = 65536;
    for (fd = MPROC__BS_FD + nsrc; fd < maxfd; fd++)
      if (fd != errp[1])
        (void)close(fd);
    execv(path, argv);
  fail:
    child_errno = errno;
    while (write(errp[1], &child_errno, sizeof child_errno) < 0 &&
           errno == EINTR) {
    }
    _exit(127);
  }
  mproc__child_ends_close(ends, MPROC__END_EXECERR);
  /* EOF means exec succeeded (the pipe was close-on-exec). */
  do
    r = read(errp[0], &child_errno, sizeof child_errno);
  while (r < 0 && errno == EINTR);
  (void)close(errp[0]);
  if (r == (ssize_t)sizeof child_errno) {
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return child_errno ? child_errno : ENOEXEC;
  }
  *out = pid;
  return 0;
}

static int mproc__posix_spawn(pid_t *out, const char *path, const int *src,
                              int nsrc, char **argv, mproc__child_ends *ends) {
#if MPROC__HAVE_CLOSEFROM_NP
  posix_spawn_file_actions_t fa;
  (void)ends; /* posix_spawn makes no descriptor of its own */
  posix_spawnattr_t attr;
  sigset_t none, all;
  int i, rc;
  if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
    return rc;
  if ((rc = posix_spawnattr_init(&attr)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return rc;
  }
  /* dup2 onto fixed numbers clears FD_CLOEXEC on the copies only; then
   * everything above them is closed, so descriptors another thread creates
   * meanwhile, CLOEXEC or not, never reach the child. */
  for (i = 0; i < nsrc && rc == 0; i++)
    rc = posix_spawn_file_actions_adddup2(&fa, src[i], MPROC__BS_FD + i);
  if (rc == 0)
    rc = posix_spawn_file_actions_addclosefrom_np(&fa, MPROC__BS_FD + nsrc);
  /* The child starts clean: default handlers, nothing blocked. */
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  if (rc == 0)
    rc = posix_spawnattr_setsigmask(&attr, &none);
  if (rc == 0)
    rc = posix_spawnattr_setsigdefault(&attr, &all);
  if (rc == 0)
    rc = posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  /* glibc runs the child on CLONE_VFORK and reports exec failure here. */
  if (rc == 0)
    rc = posix_spawn(out, path, &fa, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
#else
  return mproc__forkexec(out, path, src, nsrc, argv, ends);
#endif
}

static int mproc__send_all(int fd, const unsigned char *buf, size_t len) {
  while (len > 0) {
    /* MSG_NOSIGNAL: a child that died early gives EPIPE, not a SIGPIPE that
     * would kill the application. */
    ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

/* The child's argv: what the program needs before it (exe.c), then the
 * child flag.  Made before the fork: nothing may allocate after it. */
static char **mproc__child_argv(const mproc__exe_plan *exe) {
  char **argv = (char **)malloc((size_t)(exe->nprefix + 2) * sizeof(*argv));
  int i;
  if (!argv)
    return NULL;
  for (i = 0; i < exe->nprefix; i++)
    argv[i] = (char *)exe->prefix[i];
  argv[i++] = (char *)MPROC__BS_FLAG;
  argv[i] = NULL;
  return argv;
}

/* The bootstrap socket pair and, without pidfds, the sentinel pipe.  The
 * child's ends are registered in `e` (see mproc__child_ends) and copied above
 * `floor`, so that the dup2 file actions cannot overwrite a source still to
 * be copied.  The parent's ends go to *sock and *sent_r. */
static int mproc__spawn_channels(mproc__child_ends *e, int floor, int *sock,
                                 int *sent_r) {
  int sv[2], sent[2], rc = MPROC_OK;
  mproc__mutex_lock(&mproc__lock);
  mproc__child_ends_link(e);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    goto fail;
  *sock = sv[0];
  e->fd[MPROC__END_SOCK] = sv[1];
  e->fd[MPROC__END_SOCK_COPY] = fcntl(sv[1], F_DUPFD_CLOEXEC, floor);
  if (e->fd[MPROC__END_SOCK_COPY] < 0)
    goto fail;
  if (!g_use_pidfd) {
    if (pipe2(sent, O_CLOEXEC) != 0)
      goto fail;
    *sent_r = sent[0];
    e->fd[MPROC__END_SENT] = sent[1];
    e->fd[MPROC__END_SENT_COPY] = fcntl(sent[1], F_DUPFD_CLOEXEC, floor);
    if (e->fd[MPROC__END_SENT_COPY] < 0)
      goto fail;
  }
  goto finish;
fail:
  rc = mproc__os_fail(MPROC_ESPAWN, errno);
finish:
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

int mproc__plat_spawn(mproc_process *p, const mproc_handle_t *handles,
                      size_t nhandles, mproc__bootstrap_builder build) {
  int sock = -1, sent_r = -1;
  mproc__child_ends ends;
  int *src = NULL, nsrc = 0, ncopies = 0, i, rc = MPROC_OK, e;
  uint64_t *child_vals = NULL;
  unsigned char *bs = NULL;
  size_t bslen = 0;
  const mproc__exe_plan *exe = mproc__exe();
  char **argv = NULL;
  pid_t pid = -1;
  int pidfd = -1;

  mproc__child_ends_init(&ends);
  if (nhandles > 4096)
    return MPROC_E2BIG;
  src = (int *)malloc((nhandles + 2) * sizeof(*src));
  child_vals = (uint64_t *)malloc((nhandles + 1) * sizeof(*child_vals));
  if (!src || !child_vals) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  /* Copy every source above the target range first, so that the dup2 file
   * actions cannot overwrite a source still to be copied. */
  {
    int need = 1 + (int)nhandles + (g_use_pidfd ? 0 : 1);
    int floor = MPROC__BS_FD + need;
    rc = mproc__spawn_channels(&ends, floor, &sock, &sent_r);
    if (rc < 0)
      goto finish;
    src[nsrc++] = ends.fd[MPROC__END_SOCK_COPY];
    for (i = 0; i < (int)nhandles; i++) {
      src[nsrc] = fcntl(handles[i], F_DUPFD_CLOEXEC, floor);
      if (src[nsrc++] < 0) {
        rc = errno == EBADF ? MPROC_EINVAL : MPROC_ESPAWN;
        e = errno;
        goto fail_errno;
      }
      ncopies++;
      child_vals[i] = (uint64_t)(MPROC__BS_FD + 1 + i);
    }
    if (!g_use_pidfd)
      src[nsrc++] = ends.fd[MPROC__END_SENT_COPY];
  }
  rc = build(p, child_vals, 0, 0, &bs, &bslen);
  if (rc < 0)
    goto finish;

  if (!exe->path) {
    e = exe->error; /* no file runs this program again (exe.c) */
    rc = MPROC_ESPAWN;
    goto fail_errno;
  }
  argv = mproc__child_argv(exe);
  if (!argv) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  e = g_use_forkexec
          ? mproc__forkexec(&pid, exe->path, src, nsrc, argv, &ends)
          : mproc__posix_spawn(&pid, exe->path, src, nsrc, argv, &ends);
  if (e != 0) {
    rc = MPROC_ESPAWN;
    goto fail_errno;
  }
  /* The child has its copies: from now on only the child holds them. */
  mproc__child_ends_close(&ends, -1);
  if (g_use_pidfd) {
    pidfd = mproc__pidfd_open(pid);
    if (pidfd < 0) {
      e = errno;
      mproc__abandon(pid);
      rc = MPROC_ESPAWN;
      goto fail_errno;
    }
  }
  /* Larger than the socket buffer, this blocks until the child reads; it
   * is running our code by now, so it will. */
  if (mproc__send_all(sock, bs, bslen) != 0) {
    e = errno;
    mproc__abandon(pid);
    mproc__close_fd(&pidfd);
    rc = MPROC_ESPAWN;
    goto fail_errno;
  }
  p->plat.pidfd = pidfd;
  p->plat.sentinel_r = sent_r;
  p->plat.sentinel_unreliable = 0;
  sent_r = -1;
  p->pid = (int64_t)pid;
  rc = MPROC_OK;
  goto finish;

fail_errno:
  rc = mproc__os_fail(rc, e);
finish:
  for (i = 1; i <= ncopies; i++) /* the passed handles' copies */
    mproc__close_fd(&src[i]);
  mproc__child_ends_close(&ends, -1);
  mproc__close_fd(&sock);
  mproc__close_fd(&sent_r);
  free(src);
  free(child_vals);
  free(bs);
  free(argv);
  return rc;
}

/* ---- waiting, reaping, signalling ------------------------------------------- */

/* Has the child ended?  Without reaping it (WNOWAIT), so the pid stays ours. */
static int mproc__ended_nowait(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno == ECHILD; /* reaped behind our back: it ended */
  return info.si_pid == pid;
}

int mproc__plat_wait(mproc_process *p, double timeout) {
  double deadline = mproc__plat_now() + timeout, left;
  int fd = p->plat.pidfd >= 0 ? p->plat.pidfd : p->plat.sentinel_r;
  for (;;) {
    left = timeout < 0 ? -1.0 : deadline - mproc__plat_now();
    if (timeout >= 0 && left < 0)
      left = 0;
    if (fd >= 0 && !p->plat.sentinel_unreliable) {
      struct pollfd pfd;
      int prc;
      pfd.fd = fd;
      pfd.events = POLLIN;
      pfd.revents = 0;
      prc = poll(&pfd, 1, mproc__ms(left));
      if (prc < 0 && errno != EINTR)
        return mproc__os_fail(MPROC_ESYS, errno);
      if (prc > 0) {
        if (fd == p->plat.pidfd || mproc__ended_nowait((pid_t)p->pid))
          return MPROC_OK;
        /* The pipe closed but the child lives: it exec'd, or handed the end
         * to nobody.  Its exit cannot be seen that way any more. */
        p->plat.sentinel_unreliable = 1;
      }
    } else {
      /* Last resort: look every few milliseconds. */
      struct timespec ts = {0, 2 * 1000 * 1000};
      if (mproc__ended_nowait((pid_t)p->pid))
        return MPROC_OK;
      if (timeout >= 0 && left <= 0)
        return MPROC_ETIMEDOUT;
      (void)nanosleep(&ts, NULL);
    }
    if (timeout >= 0 && deadline - mproc__plat_now() <= 0)
      return MPROC_ETIMEDOUT;
  }
}

int mproc__plat_reap(mproc_process *p, int *exitcode) {
  int st = 0;
  pid_t r;
  do
    r = waitpid((pid_t)p->pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0)
    return 0;
  if (r < 0) {
    /* ECHILD: the application reaped it (waitpid(-1), or SIGCHLD set to
     * SIG_IGN).  The status is gone; report the child as ended rather than
     * hang forever the way Python does. */
    if (errno != ECHILD)
      return mproc__os_fail(MPROC_ESYS, errno);
    *exitcode = 255;
    return 1;
  }
  if (WIFEXITED(st))
    *exitcode = WEXITSTATUS(st);
  else if (WIFSIGNALED(st))
    *exitcode = -WTERMSIG(st);
  else
    return 0; /* stopped or continued: still alive */
  return 1;
}

int mproc__plat_signal(mproc_process *p, int which) {
  int sig = which == MPROC__SIG_KILL  ? SIGKILL
            : which == MPROC__SIG_INT ? SIGINT
                                      : SIGTERM;
  int rc;
#ifdef __linux__
  if (p->plat.pidfd >= 0)
    rc = (int)syscall(SYS_pidfd_send_signal, p->plat.pidfd, sig, NULL, 0);
  else
#endif
    /* The caller holds the lock that reaping needs, so the pid is still
     * our unreaped child (at worst a zombie), never a recycled stranger. */
    rc = kill((pid_t)p->pid, sig);
  if (rc != 0 && errno != ESRCH)
    return mproc__os_fail(MPROC_ESYS, errno);
  return MPROC_OK;
}

mproc_handle_t mproc__plat_sentinel(const mproc_process *p) {
  return p->plat.pidfd >= 0 ? p->plat.pidfd : p->plat.sentinel_r;
}

void mproc__plat_close(mproc_process *p) {
  mproc__close_fd(&p->plat.pidfd);
  mproc__close_fd(&p->plat.sentinel_r);
}

void mproc__plat_forget(mproc_process *p) { mproc__plat_close(p); }

int mproc__plat_wait_handles(const mproc_handle_t *h, size_t n, double timeout,
                             int *ready) {
  struct pollfd *pfd;
  double deadline = mproc__plat_now() + timeout, left;
  size_t i;
  int prc, count = 0;
  pfd = (struct pollfd *)calloc(n, sizeof(*pfd));
  if (!pfd)
    return MPROC_ENOMEM;
  for (i = 0; i < n; i++) {
    pfd[i].fd = h[i];
    pfd[i].events = POLLIN;
  }
  for (;;) {
    left = timeout < 0 ? -1.0 : deadline - mproc__plat_now();
    if (timeout >= 0 && left < 0)
      left = 0;
    prc = poll(pfd, (nfds_t)n, mproc__ms(left));
    if (prc >= 0 || errno != EINTR)
      break;
  }
  if (prc < 0) {
    int e = errno;
    free(pfd);
    return mproc__os_fail(MPROC_ESYS, e);
  }
  for (i = 0; i < n; i++) {
    if (pfd[i].revents & POLLNVAL) {
      free(pfd);
      return MPROC_EINVAL;
    }
    ready[i] = (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    count += ready[i];
  }
  free(pfd);
  return count;
}
