/* POSIX backend: the small process-wide services (lock, pid, clock, CPU
 * count, start-up, handles) and the identity and liveness of the processes
 * lock words name as owners. */
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "px_have.h"

#if MPROC__HAVE_PIDFD || MPROC__HAVE_GETTID || MPROC__HAVE_CLOSE_RANGE
#include <sys/syscall.h>
#endif
#if MPROC__HAVE_CLOSE_RANGE && !defined(SYS_close_range)
#define SYS_close_range 436 /* the same number on every architecture */
#endif
#if MPROC__HAVE_PROC_PIDINFO
#include <libproc.h> /* proc_pidinfo */
#include <sys/proc.h> /* SZOMB */
#endif
#if MPROC__HAVE_KQUEUE_PROC
#include <sys/event.h>
#endif
#include <sys/mman.h>
#include <sys/socket.h>

#include "internal.h"
#include "proc_exe.h"
#include "px.h"

#if MPROC__HAVE_PIDFD && !defined(SYS_pidfd_open)
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

int mproc__px_use_pidfd;
int mproc__px_use_forkexec;

void mproc__mutex_lock(mproc__mutex_t *m) { (void)pthread_mutex_lock(m); }
void mproc__mutex_unlock(mproc__mutex_t *m) { (void)pthread_mutex_unlock(m); }

/* glibc stopped caching getpid() (2.25), and the library asks often: keep
 * our own cache, cleared in every fork child by a pthread_atfork handler
 * (also for forks the application makes itself). */
static int64_t g_pid_cache;

int mproc__px_forking;

static void mproc__atfork_child(void) {
  __atomic_store_n(&g_pid_cache, 0, __ATOMIC_RELAXED);
  /* Our end of the life line (proc.c) says to our parent that we live
   * while any process holds it: a fork child of ours that kept it would
   * hold our parent's join (and sentinel) until it ends too.  A fork child
   * is not the process our parent started, so it watches no parent, as
   * with pidfds (its parent is not the one the copy names). */
  mproc__px_close_fd(&mproc__px_life_fd);
  /* Likewise our copies of our children's descriptors.  mproc's own fork
   * start holds the lock across fork() and does this itself; a lock held by
   * another thread at the fork can never be taken here, and then the
   * copies stay (as before: best effort). */
  if (!mproc__px_forking && pthread_mutex_trylock(&mproc__lock) == 0) {
    mproc__children_forget_forked();
    pthread_mutex_unlock(&mproc__lock);
  }
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

void mproc__plat_sleep(double seconds) {
  struct timespec ts;
  /* A day at most per call: time_t may be 32 bits, and the caller loops. */
  if (seconds > 86400.0)
    seconds = 86400.0;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec > 999999999L)
    ts.tv_nsec = 999999999L;
  /* EINTR returns early; the caller sleeps again for what is left. */
  (void)nanosleep(&ts, NULL);
}

#if MPROC__HAVE_KQUEUE_PROC
/* macOS has no pidfd; a kqueue watching the pid for NOTE_EXIT is one: it
 * polls readable once the process has ended and stays so (nobody reads the
 * event), and it is pinned to that process, not to its pid.  kevent(2) says
 * registering a process that is gone fails with ESRCH; a zombie (ended,
 * unreaped) counts as gone there, so the queue is then made readable at once
 * with a user event.  Compile-checked only; the behaviour is the one Apple's
 * kqueue(2) man page and XNU's filt_procattach describe.  A kqueue is not
 * inherited by fork(2), so mproc__plat_private_proc (proc.c) does not
 * register it for fork children to close. */
static int mproc__px_kqueue_for(pid_t pid) {
  struct kevent ev;
  int kq = kqueue(), e;
  if (kq < 0)
    return -1;
  (void)fcntl(kq, F_SETFD, FD_CLOEXEC);
  EV_SET(&ev, (uintptr_t)pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
  if (kevent(kq, &ev, 1, NULL, 0, NULL) == 0)
    return kq;
  if (errno == ESRCH && mproc__px_pidfd_mark_ended(kq) == 0)
    return kq;
  e = errno;
  (void)close(kq);
  errno = e;
  return -1;
}

int mproc__px_pidfd_mark_ended(int kq) {
  struct kevent ev;
  EV_SET(&ev, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
  return kevent(kq, &ev, 1, NULL, 0, NULL);
}
#endif

int mproc__px_pidfd_open(pid_t pid) {
#if MPROC__HAVE_PIDFD
  return (int)syscall(SYS_pidfd_open, pid, 0);
#elif MPROC__HAVE_KQUEUE_PROC
  return mproc__px_kqueue_for(pid);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

void mproc__px_close_fd(int *fd) {
  if (*fd >= 0) {
    int saved = errno;
    (void)close(*fd);
    errno = saved;
    *fd = -1;
  }
}

/* Linux makes both ends close-on-exec atomically (pipe2, SOCK_CLOEXEC).
 * Elsewhere (macOS has neither) the flag follows a moment later: a fork in
 * between would keep the ends across its exec.  Every caller that must keep
 * them from other children holds mproc__lock, which mproc's own forks hold
 * too, and spawn closes everything it does not pass (POSIX_SPAWN_CLOEXEC_
 * DEFAULT or closefrom), so only a fork+exec the application makes itself
 * in that moment could inherit them. */
#if !MPROC__HAVE_PIPE2
static int mproc__px_cloexec_pair(int fds[2]) {
  if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 &&
      fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0)
    return 0;
  mproc__px_close_fd(&fds[0]);
  mproc__px_close_fd(&fds[1]);
  return -1;
}
#endif

int mproc__px_pipe(int fds[2]) {
#if MPROC__HAVE_PIPE2
  return pipe2(fds, O_CLOEXEC);
#else
  if (pipe(fds) != 0)
    return -1;
  return mproc__px_cloexec_pair(fds);
#endif
}

int mproc__px_socketpair(int fds[2]) {
#if MPROC__HAVE_PIPE2
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
#else
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
    return -1;
#ifdef SO_NOSIGPIPE
  {
    /* A write to a closed peer gives EPIPE instead of SIGPIPE even where
     * send's MSG_NOSIGNAL is not honoured (BSD, older macOS). */
    int one = 1;
    (void)setsockopt(fds[0], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    (void)setsockopt(fds[1], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  }
#endif
  return mproc__px_cloexec_pair(fds);
#endif
}

int mproc__px_ms(double seconds) {
  double ms;
  if (seconds < 0)
    return -1;
  ms = seconds * 1000.0 + 0.999;
  return ms > (double)INT_MAX ? INT_MAX : (int)ms;
}

static int mproc__px_poll_one(int fd, short events, double deadline) {
  struct pollfd pfd;
  int prc;
  do {
    pfd.fd = fd;
    pfd.events = events;
    pfd.revents = 0;
    prc = poll(&pfd, 1, mproc__px_ms(mproc__remaining(deadline)));
  } while (prc < 0 && errno == EINTR);
  return prc < 0 ? -1 : prc > 0;
}

void mproc__px_close_range(int lo, int hi) {
  int max;
#if MPROC__HAVE_CLOSE_RANGE
  if (syscall(SYS_close_range, (unsigned)lo, hi < 0 ? ~0u : (unsigned)hi, 0) ==
      0)
    return; /* else ENOSYS: a kernel before 5.9 */
#endif
  if (hi < 0) {
    /* No limit given: the descriptor table's, capped so that a huge
     * RLIMIT_NOFILE does not cost millions of close() calls. */
    max = (int)sysconf(_SC_OPEN_MAX);
    hi = (max < 0 || max > 65536 ? 65536 : max) - 1;
  }
  for (; lo <= hi; lo++)
    (void)close(lo);
}

int mproc__px_poll_in(int fd, double deadline) {
  return mproc__px_poll_one(fd, POLLIN, deadline);
}

int mproc__px_poll_out(int fd, double deadline) {
  return mproc__px_poll_one(fd, POLLOUT, deadline);
}

int mproc__plat_init(int argc, char **argv) {
  const char *knob;
  int fd;
  /* Which file spawn runs is worked out at the first spawn (proc_exe.c). */
  mproc__exe_init(argc, argv);
  (void)pthread_atfork(NULL, NULL, mproc__atfork_child);
  /* Probe once: seccomp filters and kernels before 5.3 refuse pidfds
   * (macOS: the kqueue stand-in, which works everywhere). */
  fd = mproc__px_pidfd_open(getpid());
  mproc__px_use_pidfd = fd >= 0;
  if (fd >= 0)
    (void)close(fd);
  /* Debugging and test knobs for the fallbacks this machine does not need. */
  knob = getenv("MPROC_POSIX_NO_PIDFD");
  if (knob && strcmp(knob, "1") == 0)
    mproc__px_use_pidfd = 0;
  knob = getenv("MPROC_POSIX_FORKEXEC");
  mproc__px_use_forkexec =
      !MPROC__HAVE_SPAWN_CLOSE || (knob && strcmp(knob, "1") == 0);
  return MPROC_OK;
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

/* ---- owners -------------------------------------------------------------- */

/* What /proc/<pid>/stat says about a process: its state letter and its
 * start time (field 22, clock ticks since boot).  0 if it cannot be read:
 * no /proc (a chroot), another pid namespace, or the process is gone. */
static int mproc__proc_stat(int64_t pid, char *state, uint64_t *start) {
#if MPROC__HAVE_PROC_PIDINFO
  /* No /proc: proc_pidinfo(PROC_PIDTBSDINFO) (<libproc.h>) gives the state
   * and the start time in microseconds.  It fails for another user's
   * process (and may for a zombie), which then counts as unknown, as a
   * missing /proc does.  Compile-checked only. */
  struct proc_bsdinfo bi;
  if (proc_pidinfo((int)pid, PROC_PIDTBSDINFO, 0, &bi, (int)sizeof bi) !=
      (int)sizeof bi)
    return 0;
  *state = bi.pbi_status == SZOMB ? 'Z' : 'R';
  *start = bi.pbi_start_tvsec * 1000000u + bi.pbi_start_tvusec;
  return 1;
#elif MPROC__HAVE_PROCFS
  char path[64], buf[512];
  const char *p;
  ssize_t n;
  int fd, field;
  snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  n = read(fd, buf, sizeof buf - 1);
  (void)close(fd);
  if (n <= 0)
    return 0;
  buf[n] = 0;
  p = strrchr(buf, ')'); /* the command name may contain anything */
  if (!p || p[1] != ' ' || !p[2])
    return 0;
  *state = p[2];
  /* p + 2 is field 3; field 22 follows 19 more separators. */
  for (p += 2, field = 3; field < 22 && *p; p++)
    if (*p == ' ')
      field++;
  *start = field == 22 ? strtoull(p, NULL, 10) : 0;
  return 1;
#else
  (void)pid;
  (void)state;
  (void)start;
  return 0;
#endif
}

/* Threads still running in a process whose /proc/<pid>/stat says zombie.
 * The state is the thread group leader's: a main thread that called
 * pthread_exit() is a zombie while the other threads run on, and the
 * process holds its locks as before.  Only when no other thread is left
 * ("Threads: 1" in /proc/<pid>/status, proc(5)) is the process gone.
 * 1 (assume alive) when the file cannot be read. */
static int mproc__zombie_has_threads(int64_t pid) {
#if MPROC__HAVE_PROCFS
  char path[64], buf[2048];
  const char *p;
  ssize_t n;
  int fd;
  snprintf(path, sizeof path, "/proc/%lld/status", (long long)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : 1;
  n = read(fd, buf, sizeof buf - 1);
  (void)close(fd);
  if (n <= 0)
    return 1;
  buf[n] = 0;
  p = strstr(buf, "\nThreads:");
  return p ? strtol(p + 9, NULL, 10) > 1 : 1;
#else
  (void)pid;
  return 0;
#endif
}

/* A start time folded to the 32 bits a stamp keeps; 0 is "unknown". */
static uint32_t mproc__fold_start(uint64_t t) {
  uint32_t f = (uint32_t)(t ^ (t >> 32));
  return t == 0 ? 0u : f ? f : 1u;
}

uint64_t mproc__self_stamp(void) {
  /* Read once per process.  The cache carries the pid it was read in: a
   * fork child (whose pid cache the atfork handler clears) reads its own. */
  static uint64_t cache;
  uint64_t pid = (uint64_t)mproc__plat_getpid(), s;
  char state;
  uint64_t start = 0;
  s = __atomic_load_n(&cache, __ATOMIC_RELAXED);
  if (s >> 32 == pid && s != 0)
    return s;
  if (!mproc__proc_stat((int64_t)pid, &state, &start))
    start = 0;
  s = pid << 32 | mproc__fold_start(start);
  __atomic_store_n(&cache, s, __ATOMIC_RELAXED);
  return s;
}

int mproc__stamp_alive(uint64_t stamp) {
  int64_t pid = (int64_t)(stamp >> 32);
  uint32_t start = (uint32_t)stamp;
  uint64_t now_start = 0;
  char state = 0;
  if (pid <= 0)
    return 0;
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
    return 0;
  /* kill() said the process exists: anything short of reading a zombie
   * state or another start time means alive.  /proc may be missing or
   * belong to another pid namespace, where this pid names nobody or
   * someone else; calling a live holder dead would let two processes into
   * one lock. */
  if (!mproc__proc_stat(pid, &state, &now_start))
    return 1;
  /* kill() succeeds on a zombie, which holds nothing any more: a killed
   * lock holder stays a zombie until its parent reaps it. */
  if (state == 'X' || (state == 'Z' && !mproc__zombie_has_threads(pid)))
    return 0;
  /* The pid names a process that started at another time: the stamped one
   * died and the kernel gave its pid to a newcomer. */
  return start == 0 || now_start == 0 || mproc__fold_start(now_start) == start;
}

uint64_t mproc__thread_id(void) {
  /* Cached per thread, and tagged with the pid it was read in: a fork
   * child's only thread inherits the copy of the forking thread's, whose
   * id the kernel may later give to another thread of the child. */
  static _Thread_local uint64_t tid;
  static _Thread_local int64_t tid_pid;
  int64_t pid = mproc__plat_getpid();
  if (!tid || tid_pid != pid) {
#if MPROC__HAVE_GETTID
    tid = (uint64_t)syscall(SYS_gettid);
#else
    tid = (uint64_t)(uintptr_t)pthread_self();
#endif
    tid_pid = pid;
  }
  return tid;
}

/* ---- large private buffers ------------------------------------------------- */

/* Transparent huge pages are 2 MiB on x86-64 and on arm64 with 4 KiB
 * pages; the kernel maps one only over a range aligned to its size, so a
 * buffer that big is placed on that boundary (elsewhere the advice is a
 * harmless no-op: smaller or other huge pages just are not used). */
#define MPROC__BIG_ALIGN ((size_t)2 << 20)

void *mproc__plat_big_alloc(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE), total, lead = 0;
  unsigned char *base;
  if (n == 0 || n > SIZE_MAX - MPROC__BIG_ALIGN - pg)
    return NULL;
  n = (n + pg - 1) / pg * pg; /* so that the tail trimmed below is whole */
  total = n >= MPROC__BIG_ALIGN ? n + MPROC__BIG_ALIGN : n;
  base = (unsigned char *)mmap(NULL, total, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == (unsigned char *)MAP_FAILED)
    return NULL;
  if (total == n)
    return base;
  lead = (MPROC__BIG_ALIGN - (uintptr_t)base % MPROC__BIG_ALIGN) %
         MPROC__BIG_ALIGN;
  if (lead)
    (void)munmap(base, lead);
  if (total - lead > n)
    (void)munmap(base + lead + n, total - lead - n);
  base += lead;
#ifdef MADV_HUGEPAGE
  /* Linux with transparent_hugepage=madvise (a common default) uses huge
   * pages only where asked; with "always" this changes nothing, with
   * "never" it is ignored.  Failure (an old kernel: EINVAL) costs only
   * the speed-up. */
  (void)madvise(base, n, MADV_HUGEPAGE);
#endif
  return base;
}

void mproc__plat_big_free(void *p, size_t n) {
  if (p)
    (void)munmap(p, n); /* the length is rounded up to whole pages */
}
