/* POSIX backend: fork, spawn (posix_spawn of the own executable), waiting
 * through pidfds (Linux) or life lines, and signals that can never reach a
 * recycled pid.
 *
 * Without pidfds each child gets a life line: a socket pair whose one end
 * only the parent holds (the child's sentinel) and whose other end only the
 * child holds (mproc__px_life_fd, its watch on the parent).  The kernel
 * closes an end when its holder ends, so each side sees the other's end as
 * EOF, in poll(2), with no help from the one that died. */
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
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "proc_exe.h"
#include "px.h"

#if MPROC__HAVE_PIDFD || MPROC__HAVE_CLOSE_RANGE
#include <sys/syscall.h>
#endif


#if MPROC__HAVE_PIDFD && !defined(SYS_pidfd_send_signal)
#define SYS_pidfd_send_signal 424
#endif

/* ---- descriptors meant for one child only ---------------------------------- */

/* While a spawn is under way the parent holds ends that must reach only the
 * child being started: the child's end of its life line (without pidfds,
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
  MPROC__END_SENT,      /* the child's end of its life line (no pidfds) */
  MPROC__END_SENT_COPY,
  MPROC__END_EXECERR,   /* fork+exec: the exec-error pipe's write end */
  MPROC__END_STDIO,     /* 3 slots: the child's standard streams' copies
                           above the dup2 targets (a captured stream's
                           write end among them) */
  MPROC__END_COUNT = MPROC__END_STDIO + 3
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

/* Closes one end (or, with which < 0, every end and unregisters `e`);
 * called with mproc__lock held. */
static void mproc__child_ends_close_locked(mproc__child_ends *e, int which) {
  mproc__child_ends **pp;
  int i;
  for (i = 0; i < MPROC__END_COUNT; i++)
    if (which < 0 || i == which)
      mproc__px_close_fd(&e->fd[i]);
  if (which < 0 && e->linked) {
    for (pp = &g_child_ends; *pp && *pp != e; pp = &(*pp)->next) {
    }
    if (*pp)
      *pp = e->next;
    e->linked = 0;
  }
}

static void mproc__child_ends_close(mproc__child_ends *e, int which) {
  mproc__mutex_lock(&mproc__lock);
  mproc__child_ends_close_locked(e, which);
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

/* ---- descriptors a fork child drops ------------------------------------------------- */

/* Every descriptor the parent holds for one child (its pidfd, the parent's
 * end of its life line, its exit watch, its result block) is copied into
 * each fork child made while it is open, and a fork child must not keep
 * them: the life line's EOF is how a child sees its parent end, and a
 * result block holds the sibling's memory.  Closing them one by one in
 * every fork child made the start cost grow with the number of children
 * alive (and walking the process objects copied their pages), so their
 * numbers are kept in one bitmap instead, and a fork child closes them
 * with one close_range(2) per run of consecutive numbers: children started
 * in a row hold consecutive descriptors, so that is one call or a few.
 * The bitmap is guarded by mproc__lock, which a fork start holds across
 * fork(), so the child sees it whole.  `used` words are valid; words past
 * it hold garbage until an add clears them, so the fork child forgets the
 * whole set by one store (each write to the heap would copy a page). */
static uint64_t *g_private_bits;
static size_t g_private_cap, g_private_used; /* in words */

void mproc__plat_private_add(mproc_handle_t fd) {
  size_t w = (size_t)fd / 64, cap;
  uint64_t *bits;
  if (fd < 0)
    return;
  if (w >= g_private_cap) {
    cap = w + 1 > 2 * g_private_cap ? w + 1 : 2 * g_private_cap;
    bits = (uint64_t *)realloc(g_private_bits, cap * sizeof(*bits));
    /* Out of memory: the descriptor stays visible to fork children, as
     * any descriptor is; nothing else depends on the bitmap. */
    if (!bits)
      return;
    g_private_bits = bits;
    g_private_cap = cap;
  }
  if (w >= g_private_used) {
    memset(g_private_bits + g_private_used, 0,
           (w + 1 - g_private_used) * sizeof(*g_private_bits));
    g_private_used = w + 1;
  }
  g_private_bits[w] |= (uint64_t)1 << (fd % 64);
}

void mproc__plat_private_del(mproc_handle_t fd) {
  size_t w = (size_t)fd / 64;
  if (fd >= 0 && w < g_private_used)
    g_private_bits[w] &= ~((uint64_t)1 << (fd % 64));
}

static int mproc__private_has(int fd) {
  size_t w = (size_t)fd / 64;
  return fd >= 0 && w < g_private_used &&
         (g_private_bits[w] >> (fd % 64) & 1) != 0;
}

void mproc__plat_private_drop(mproc_handle_t keep) {
  /* From 3: 0..2 are this process's standard streams whatever they held
   * in the parent (a child's stdio was just put there). */
  int fd = 3, end = (int)(g_private_used * 64), lo;
  while (fd < end) {
    if (fd % 64 == 0 && g_private_bits[fd / 64] == 0) {
      fd += 64;
      continue;
    }
    if (fd == keep || !mproc__private_has(fd)) {
      fd++;
      continue;
    }
    for (lo = fd; fd < end && fd != keep && mproc__private_has(fd); fd++) {
    }
    mproc__px_close_range(lo, fd - 1);
  }
  g_private_used = 0;
}

/* ---- starting ---------------------------------------------------------------- */

/* What a spawn runs: the program, its argv and environment (envp), the
 * directory it starts in (NULL: ours), and the descriptors src[i] it gets
 * as MPROC__BS_FD + i. */
typedef struct mproc__exec_req {
  const char *path;
  char **argv;
  char **envp;
  const char *cwd;
  const int *src;
  int nsrc;
  int new_group;
  int stdio[3]; /* what becomes fd 0-2 (copies above the targets), -1: ours */
} mproc__exec_req;

int mproc__plat_check_dir(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return mproc__os_fail(MPROC_ESPAWN, errno);
  if (!S_ISDIR(st.st_mode))
    return mproc__os_fail(MPROC_ESPAWN, ENOTDIR);
  return MPROC_OK;
}

mproc_handle_t mproc__plat_open_stdio(int stream, const char *path, int append,
                                      int *os_error) {
  int flags = stream == 0 ? O_RDONLY
                          : O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
  int fd;
  if (!path)
    flags = O_RDWR; /* the null device */
  do
    fd = open(path ? path : "/dev/null", flags | O_CLOEXEC, 0666);
  while (fd < 0 && errno == EINTR);
  *os_error = fd < 0 ? errno : 0;
  return fd < 0 ? MPROC_INVALID_HANDLE : fd;
}

/* In a fork child: the standard streams p asks for, each source copied
 * above 2 first so that one naming another's target (stderr to the
 * parent's stdout, fd 1) is not overwritten by an earlier dup2.  fcntl and
 * dup2 are async-signal-safe. */
static void mproc__fork_child_stdio(const mproc_process *p) {
  int tmp[3], i;
  for (i = 0; i < 3; i++) {
    tmp[i] = -1;
    if (p->stdio_h[i] != MPROC_INVALID_HANDLE &&
        (tmp[i] = fcntl(p->stdio_h[i], F_DUPFD_CLOEXEC, 3)) < 0)
      mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP);
  }
  for (i = 0; i < 3; i++)
    if (tmp[i] >= 0) {
      if (dup2(tmp[i], i) < 0)
        mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP);
      (void)close(tmp[i]);
    }
}

/* The environment a child of p starts with: ours, or a merged copy to free
 * (*owned).  0, or MPROC_ENOMEM. */
int mproc__px_child_env(const mproc_process *p, char ***envp, int *owned) {
  *owned = 0;
  *envp = mproc__environ;
  if (!mproc__env_changed(p))
    return MPROC_OK;
  *envp = mproc__env_merge(p->env_clear ? NULL : mproc__environ, p->env, 0);
  *owned = 1;
  return *envp ? MPROC_OK : MPROC_ENOMEM;
}

/* In a fork child before the entry: the environment and directory asked
 * for.  The merged array was made before fork (no malloc here) and is
 * never freed: it is the child's environ from now on. */
static void mproc__fork_child_env(const mproc_process *p, char **envp) {
  if (mproc__env_changed(p))
    mproc__environ = envp;
  if (p->cwd && chdir(p->cwd) != 0)
    mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP); /* removed since start */
}

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

static int mproc__ended_nowait(pid_t pid);

/* A pidfd sees an exit at any time.  macOS's kqueue stand-in (core.c) sees
 * one only after its registration, and an already-ended child is reported
 * by ESRCH only if XNU refuses to attach to it; in case it attached to a
 * child that had ended just before, ask waitid (the child is ours and
 * unreaped) and make the kqueue readable.  A no-op elsewhere. */
static void mproc__pidfd_catch_up(int pidfd, pid_t pid) {
#if MPROC__HAVE_KQUEUE_PROC
  if (mproc__ended_nowait(pid))
    (void)mproc__px_pidfd_mark_ended(pidfd);
#else
  (void)pidfd;
  (void)pid;
#endif
}

/* The fork child's side of mproc__plat_fork, before and around the entry:
 * only async-signal-safe calls until child_main (the parent may have had
 * other threads).  Never returns. */
static void mproc__fork_child(mproc_process *p, char **envp, int sent[2],
                              void (*child_main)(mproc_process *p)) {
  size_t i;
  mproc__px_close_fd(&sent[0]);
  mproc__px_close_fd(&mproc__px_life_fd);
  mproc__child_ends_drop_all();
  /* First, while the handles it names are open: a capture's write end is
   * registered below like every descriptor a fork child must not keep. */
  mproc__fork_child_stdio(p);
  /* Our siblings' descriptors; our own result block stays. */
  mproc__plat_private_drop(mproc__result_handle(p));
  /* The child's end of the life line stays open (close-on-exec) for its
   * whole life: the kernel closes it when the child ends, which the
   * parent sees; the child sees the parent's end close the same way. */
  mproc__px_life_fd = sent[1];
  /* A passed handle is close-on-exec in the child whatever the start
   * method (mproc.h), as spawn makes it in mproc__plat_child_setup.  The
   * flag belongs to this process's descriptor table: the parent's
   * descriptor keeps its own. */
  for (i = 0; i < p->nhandles; i++)
    (void)fcntl(p->handles[i], F_SETFD, FD_CLOEXEC);
  /* A group of its own before the entry runs, so that whatever it starts
   * is born in it (the parent does the same, see mproc__plat_fork). */
  if (p->new_group)
    (void)setpgid(0, 0);
  mproc__fork_child_env(p, envp);
  child_main(p);
  _exit(1); /* not reached */
}

int mproc__plat_fork(mproc_process *p, void (*child_main)(mproc_process *p)) {
  int sent[2] = {-1, -1};
  pid_t pid;
  int env_owned = 0;
  char **envp = NULL;
  if (mproc__px_child_env(p, &envp, &env_owned) < 0)
    return MPROC_ENOMEM;
  if (!mproc__px_use_pidfd && mproc__px_socketpair(sent) != 0) {
    int e = errno;
    if (env_owned)
      free(envp);
    return mproc__os_fail(MPROC_ESPAWN, e);
  }
  mproc__px_forking = 1;
  pid = fork();
  mproc__px_forking = 0;
  if (pid != 0 && env_owned)
    free(envp); /* the parent's copy; the child's is its environ */
  if (pid < 0) {
    int e = errno;
    mproc__px_close_fd(&sent[0]);
    mproc__px_close_fd(&sent[1]);
    return mproc__os_fail(MPROC_ESPAWN, e);
  }
  if (pid == 0)
    mproc__fork_child(p, envp, sent, child_main); /* no return */
  /* Also here, as shells do for a job (setpgid(2)): whichever of the two
   * runs first, the group exists before start returns, so a kill_tree
   * right after start cannot miss it.  Fails harmlessly (EACCES, ESRCH)
   * when the child got there first or already ended. */
  if (p->new_group)
    (void)setpgid(pid, pid);
  mproc__px_close_fd(&sent[1]);
  /* No pidfd yet: opened when something waits (mproc__end_fd_open). */
  p->plat.pidfd = -1;
  p->plat.sentinel_r = sent[0];
  p->plat.exit_r = -1;
  p->pid = (int64_t)pid;
  return MPROC_OK;
}

/* The child of mproc__forkexec, between fork and exec: only
 * async-signal-safe calls (signal-safety(7)), since the parent may have
 * other threads holding malloc or stdio locks.  Execs, or writes errno to
 * errfd (close-on-exec) and exits 127. */
static void mproc__forkexec_child(const mproc__exec_req *rq, int errfd) {
  sigset_t none;
  struct sigaction dfl;
  int i, lo, child_errno;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (i = 1; i < NSIG; i++)
    if (i != SIGKILL && i != SIGSTOP)
      (void)sigaction(i, &dfl, NULL);
  sigemptyset(&none);
  (void)sigprocmask(SIG_SETMASK, &none, NULL);
  if (rq->new_group && setpgid(0, 0) != 0)
    goto finish;
  if (rq->cwd && chdir(rq->cwd) != 0)
    goto finish;
  for (i = 0; i < 3; i++)
    if (rq->stdio[i] >= 0 && dup2(rq->stdio[i], i) < 0)
      goto finish;
  /* Sources were duplicated above every target, so no dup2 clobbers a
   * source that a later one still needs. */
  for (i = 0; i < rq->nsrc; i++)
    if (dup2(rq->src[i], MPROC__BS_FD + i) < 0)
      goto finish;
  lo = MPROC__BS_FD + rq->nsrc;
  if (errfd >= lo) { /* every descriptor but errfd */
    if (errfd > lo)
      mproc__px_close_range(lo, errfd - 1);
    lo = errfd + 1;
  }
  mproc__px_close_range(lo, -1);
  execve(rq->path, rq->argv, rq->envp);
finish:
  child_errno = errno;
  while (write(errfd, &child_errno, sizeof child_errno) < 0 &&
         errno == EINTR) {
  }
  _exit(127);
}

/* The parent of mproc__forkexec: 0 once the child exec'd (EOF on errfd,
 * which was close-on-exec), else the child's errno after reaping it. */
static int mproc__forkexec_wait(pid_t pid, int errfd) {
  int child_errno = 0, st;
  ssize_t r;
  do
    r = read(errfd, &child_errno, sizeof child_errno);
  while (r < 0 && errno == EINTR);
  if (r != (ssize_t)sizeof child_errno)
    return 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return child_errno ? child_errno : ENOEXEC;
}

/* fork+exec for libcs without posix_spawn_file_actions_addclosefrom_np:
 * 0 with *out set, or the errno of the fork or of the child's exec. */
static int mproc__forkexec(pid_t *out, const mproc__exec_req *rq,
                           mproc__child_ends *ends) {
  int errp[2];
  pid_t pid;
  int rc;
  mproc__mutex_lock(&mproc__lock);
  if (mproc__px_pipe(errp) != 0) {
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
  if (pid == 0)
    mproc__forkexec_child(rq, errp[1]); /* no return */
  mproc__child_ends_close(ends, MPROC__END_EXECERR);
  rc = mproc__forkexec_wait(pid, errp[0]);
  (void)close(errp[0]);
  if (rc == 0)
    *out = pid;
  return rc;
}

#if MPROC__HAVE_SPAWN_CLOEXEC_DEFAULT
#define MPROC__SPAWN_CLOEXEC_FLAG POSIX_SPAWN_CLOEXEC_DEFAULT

/* POSIX_SPAWN_CLOEXEC_DEFAULT closes stdin, stdout and stderr too unless a
 * file action names them (posix_spawnattr_setflags(3) on macOS): keep the
 * ones that are open here, as a spawned child gets them on Linux.  A closed
 * one is left out, because inheriting it would fail the spawn. */
static int mproc__spawn_keep_stdio(posix_spawn_file_actions_t *fa,
                                   const int *redirected) {
  int fd, rc = 0;
  for (fd = 0; fd <= 2 && rc == 0; fd++)
    if (redirected[fd] < 0 && fcntl(fd, F_GETFD) >= 0)
      rc = posix_spawn_file_actions_addinherit_np(fa, fd);
  return rc;
}
#else
#define MPROC__SPAWN_CLOEXEC_FLAG 0
#endif

#if MPROC__HAVE_SPAWN_CLOSE
/* The file actions of mproc__posix_spawn: 0 or an errno.  dup2 onto fixed
 * numbers clears FD_CLOEXEC on the copies only; then everything else is
 * closed (glibc: closefrom above them; macOS: POSIX_SPAWN_CLOEXEC_DEFAULT
 * keeps only what the file actions name), so descriptors another thread
 * creates meanwhile, CLOEXEC or not, never reach the child. */
static int mproc__spawn_actions(posix_spawn_file_actions_t *fa,
                                const mproc__exec_req *rq) {
  int i, rc = 0;
  for (i = 0; i < 3 && rc == 0; i++)
    if (rq->stdio[i] >= 0)
      rc = posix_spawn_file_actions_adddup2(fa, rq->stdio[i], i);
  for (i = 0; i < rq->nsrc && rc == 0; i++)
    rc = posix_spawn_file_actions_adddup2(fa, rq->src[i], MPROC__BS_FD + i);
#if MPROC__HAVE_CLOSEFROM_NP
  if (rc == 0)
    rc = posix_spawn_file_actions_addclosefrom_np(fa, MPROC__BS_FD + rq->nsrc);
#endif
#if MPROC__HAVE_SPAWN_CLOEXEC_DEFAULT
  if (rc == 0)
    rc = mproc__spawn_keep_stdio(fa, rq->stdio);
#endif
#if MPROC__HAVE_SPAWN_CHDIR
  /* Without it (fork+exec below) the child calls chdir itself. */
  if (rc == 0 && rq->cwd)
    rc = posix_spawn_file_actions_addchdir_np(fa, rq->cwd);
#endif
  return rc;
}

/* The attributes of mproc__posix_spawn: 0 or an errno.  The child starts
 * clean (default handlers, nothing blocked) and, for new_group, leads a
 * group of its own made before the exec (process group 0). */
static int mproc__spawn_attrs(posix_spawnattr_t *attr, int new_group) {
  sigset_t none, all;
  int rc;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  rc = posix_spawnattr_setsigmask(attr, &none);
  if (rc == 0)
    rc = posix_spawnattr_setsigdefault(attr, &all);
  if (rc == 0 && new_group)
    rc = posix_spawnattr_setpgroup(attr, 0);
  if (rc == 0)
    rc = posix_spawnattr_setflags(
        attr, (short)(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                      (new_group ? POSIX_SPAWN_SETPGROUP : 0) |
                      MPROC__SPAWN_CLOEXEC_FLAG));
  return rc;
}
#endif

static int mproc__posix_spawn(pid_t *out, const mproc__exec_req *rq,
                              mproc__child_ends *ends) {
#if MPROC__HAVE_SPAWN_CLOSE
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int rc;
  (void)ends; /* posix_spawn makes no descriptor of its own */
  if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
    return rc;
  if ((rc = posix_spawnattr_init(&attr)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return rc;
  }
  rc = mproc__spawn_actions(&fa, rq);
  if (rc == 0)
    rc = mproc__spawn_attrs(&attr, rq->new_group);
  /* glibc runs the child on CLONE_VFORK and reports exec failure here. */
  if (rc == 0)
    rc = posix_spawn(out, rq->path, &fa, &attr, rq->argv, rq->envp);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
#else
  return mproc__forkexec(out, rq, ends);
#endif
}

int mproc__px_send_all(int fd, const unsigned char *buf, size_t len) {
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

/* The child's argv: what the program needs before it (proc_exe.c), then the
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

/* The bootstrap socket pair and, without pidfds, the life line.  The
 * child's ends are registered in `e` (see mproc__child_ends) and copied above
 * `floor`, so that the dup2 file actions cannot overwrite a source still to
 * be copied.  The parent's ends go to *sock and *sent_r. */
static int mproc__spawn_channels(mproc__child_ends *e, int floor, int *sock,
                                 int *sent_r) {
  int sv[2], sent[2], rc = MPROC_OK;
  mproc__mutex_lock(&mproc__lock);
  mproc__child_ends_link(e);
  if (mproc__px_socketpair(sv) != 0)
    goto fail;
  *sock = sv[0];
  e->fd[MPROC__END_SOCK] = sv[1];
  e->fd[MPROC__END_SOCK_COPY] = fcntl(sv[1], F_DUPFD_CLOEXEC, floor);
  if (e->fd[MPROC__END_SOCK_COPY] < 0)
    goto fail;
  if (!mproc__px_use_pidfd) {
    if (mproc__px_socketpair(sent) != 0)
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

/* What a spawn holds while under way, released by mproc__spawn_release
 * whatever happened. */
typedef struct mproc__spawn_state {
  mproc__child_ends ends;
  int sock;              /* our end of the bootstrap socket pair */
  int sent_r;            /* our end of the life line (no pidfds) */
  int *src;              /* what the child gets as MPROC__BS_FD + i */
  int nsrc, ncopies;     /* src[1..ncopies]: copies of passed handles */
  uint64_t *child_vals;  /* the passed handles' numbers in the child */
  char **argv;
  unsigned char *bs;
  size_t bslen;
  mproc__exec_req rq;
} mproc__spawn_state;

static void mproc__spawn_init(mproc__spawn_state *st) {
  memset(st, 0, sizeof *st);
  mproc__child_ends_init(&st->ends);
  st->sock = st->sent_r = -1;
  st->rq.stdio[0] = st->rq.stdio[1] = st->rq.stdio[2] = -1;
}

static void mproc__spawn_release(mproc__spawn_state *st) {
  int i;
  for (i = 1; i <= st->ncopies; i++) /* the passed handles' copies */
    mproc__px_close_fd(&st->src[i]);
  mproc__child_ends_close(&st->ends, -1);
  mproc__px_close_fd(&st->sock);
  mproc__px_close_fd(&st->sent_r);
  free(st->src);
  free(st->child_vals);
  free(st->bs);
  free(st->argv);
}

/* The copies of p's standard streams above `floor`, child ends of `st`
 * (see mproc__child_ends; st->rq.stdio only names them): a fork start in
 * another thread while this spawn runs must not give its child a copy of a
 * captured stream's write end, which would hold the stream open, so that
 * it saw end-of-file only when that fork child ended. */
static int mproc__spawn_stdio_copies(mproc__spawn_state *st,
                                     const mproc_process *p, int floor) {
  int i, rc = MPROC_OK, *fd;
  mproc__mutex_lock(&mproc__lock);
  for (i = 0; i < 3 && rc == MPROC_OK; i++) {
    if (p->stdio_h[i] == MPROC_INVALID_HANDLE)
      continue;
    fd = &st->ends.fd[MPROC__END_STDIO + i];
    if ((*fd = fcntl(p->stdio_h[i], F_DUPFD_CLOEXEC, floor)) < 0)
      rc = mproc__os_fail(MPROC_ESPAWN, errno);
    st->rq.stdio[i] = *fd;
  }
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

/* The descriptors the child gets, in order: its bootstrap socket, the
 * passed handles, its life line (no pidfds); and its standard streams.
 * Every source is copied above the target range first, so that the dup2
 * file actions cannot overwrite a source still to be copied. */
static int mproc__spawn_sources(mproc__spawn_state *st, const mproc_process *p,
                                const mproc_handle_t *handles,
                                size_t nhandles) {
  int need = 1 + (int)nhandles + (mproc__px_use_pidfd ? 0 : 1);
  int floor = MPROC__BS_FD + need, i, rc;
  st->src = (int *)malloc((nhandles + 2) * sizeof(*st->src));
  st->child_vals = (uint64_t *)malloc((nhandles + 1) * sizeof(uint64_t));
  if (!st->src || !st->child_vals)
    return MPROC_ENOMEM;
  rc = mproc__spawn_channels(&st->ends, floor, &st->sock, &st->sent_r);
  if (rc < 0)
    return rc;
  st->src[st->nsrc++] = st->ends.fd[MPROC__END_SOCK_COPY];
  for (i = 0; i < (int)nhandles; i++) {
    st->src[st->nsrc] = fcntl(handles[i], F_DUPFD_CLOEXEC, floor);
    if (st->src[st->nsrc++] < 0)
      return mproc__os_fail(errno == EBADF ? MPROC_EINVAL : MPROC_ESPAWN,
                            errno);
    st->ncopies++;
    st->child_vals[i] = (uint64_t)(MPROC__BS_FD + 1 + i);
  }
  if (!mproc__px_use_pidfd)
    st->src[st->nsrc++] = st->ends.fd[MPROC__END_SENT_COPY];
  return mproc__spawn_stdio_copies(st, p, floor);
}

/* Runs the program again as p's child (posix_spawn, or fork+exec where
 * posix_spawn cannot do what p asks); *pid is the child. */
static int mproc__spawn_exec(mproc__spawn_state *st, const mproc_process *p,
                             pid_t *pid) {
  const mproc__exe_plan *exe = mproc__exe();
  int env_owned = 0, e;
  if (!exe->path) /* no file runs this program again (proc_exe.c) */
    return mproc__os_fail(MPROC_ESPAWN, exe->error);
  st->argv = mproc__child_argv(exe);
  if (!st->argv)
    return MPROC_ENOMEM;
  st->rq.path = exe->path;
  st->rq.argv = st->argv;
  st->rq.cwd = p->cwd;
  st->rq.src = st->src;
  st->rq.nsrc = st->nsrc;
  st->rq.new_group = p->new_group;
  if (mproc__px_child_env(p, &st->rq.envp, &env_owned) < 0)
    return MPROC_ENOMEM;
  e = mproc__px_use_forkexec || (p->cwd && !MPROC__HAVE_SPAWN_CHDIR)
          ? mproc__forkexec(pid, &st->rq, &st->ends)
          : mproc__posix_spawn(pid, &st->rq, &st->ends);
  if (env_owned)
    free(st->rq.envp);
  return e != 0 ? mproc__os_fail(MPROC_ESPAWN, e) : MPROC_OK;
}

/* The child runs: give it the bootstrap.  On failure the child is killed
 * and reaped. */
static int mproc__spawn_handover(mproc__spawn_state *st, pid_t pid) {
  int e;
  /* The child has its copies: from now on only the child holds them. */
  mproc__child_ends_close(&st->ends, -1);
  /* Larger than the socket buffer, this blocks until the child reads; it
   * is running our code by now, so it will. */
  if (mproc__px_send_all(st->sock, st->bs, st->bslen) != 0) {
    e = errno;
    mproc__abandon(pid);
    return mproc__os_fail(MPROC_ESPAWN, e);
  }
  return MPROC_OK;
}

int mproc__plat_spawn(mproc_process *p, const mproc_handle_t *handles,
                      size_t nhandles, mproc__bootstrap_builder build) {
  mproc__spawn_state st;
  pid_t pid = -1;
  int rc;
  mproc__spawn_init(&st);
  if (nhandles > 4096)
    return MPROC_E2BIG;
  rc = mproc__spawn_sources(&st, p, handles, nhandles);
  if (rc < 0)
    goto finish;
  rc = build(p, st.child_vals, 0, 0, &st.bs, &st.bslen);
  if (rc < 0)
    goto finish;
  rc = mproc__spawn_exec(&st, p, &pid);
  if (rc < 0)
    goto finish;
  rc = mproc__spawn_handover(&st, pid);
  if (rc < 0)
    goto finish;
  p->plat.pidfd = -1; /* opened when something waits (mproc__end_fd_open) */
  p->plat.sentinel_r = st.sent_r;
  p->plat.exit_r = -1;
  st.sent_r = -1;
  p->pid = (int64_t)pid;
finish:
  mproc__spawn_release(&st);
  return rc;
}

/* ---- waiting, reaping, signalling ------------------------------------------- */

/* Has the child ended?  Without reaping it (WNOWAIT), so the pid stays ours.
 * Only an exit or a death by signal counts: on macOS waitid(WNOWAIT) may
 * report a stopped child although WSTOPPED was not asked for (an XNU quirk
 * others report; not observed here, where macOS is compile-checked only),
 * and a stopped child is alive. */
static int mproc__ended_nowait(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno == ECHILD; /* reaped behind our back: it ended */
  return info.si_pid == pid &&
         (info.si_code == CLD_EXITED || info.si_code == CLD_KILLED ||
          info.si_code == CLD_DUMPED);
}

/* The exit watch: a detached thread that blocks in waitid(WNOWAIT) until
 * the child ends (without reaping it: the pid stays ours) and then closes
 * the write end of a pipe.  Its record is a child_ends one, so a fork child
 * made meanwhile closes its copy of that end (mproc__child_ends_drop_all). */
typedef struct mproc__exit_watch {
  mproc__child_ends ends; /* fd[MPROC__END_SENT]: the pipe's write end */
  pid_t pid;
} mproc__exit_watch;

static void *mproc__exit_watch_main(void *arg) {
  mproc__exit_watch *w = (mproc__exit_watch *)arg;
  siginfo_t info;
  /* ECHILD: reaped behind our back (the application's waitpid(-1)), so it
   * ended too. */
  while (waitid(P_PID, (id_t)w->pid, &info, WEXITED | WNOWAIT) != 0 &&
         errno == EINTR) {
  }
  mproc__child_ends_close(&w->ends, -1);
  free(w);
  return NULL;
}

/* The life line closed, but the child lives on: it exec'd another program
 * (its end was close-on-exec) or closed its end itself, or it is exiting
 * right now (the kernel closes a process's descriptors a moment before it
 * becomes a zombie).  From now on the exit watch tells when it ends: its
 * pipe's read end, plat.exit_r, is the child's sentinel.  Once per child;
 * 0 or a negative code. */
static int mproc__watch_exit(mproc_process *p) {
  mproc__exit_watch *w = NULL;
  pthread_attr_t attr;
  pthread_t tid;
  int fds[2] = {-1, -1}, rc = MPROC_OK, e;
  mproc__mutex_lock(&mproc__lock);
  if (p->plat.exit_r >= 0)
    goto finish; /* another joiner started it */
  w = (mproc__exit_watch *)malloc(sizeof *w);
  if (!w) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  mproc__child_ends_init(&w->ends);
  w->pid = (pid_t)p->pid;
  e = mproc__px_pipe(fds) != 0 ? errno : pthread_attr_init(&attr);
  if (e == 0) {
    mproc__child_ends_link(&w->ends);
    w->ends.fd[MPROC__END_SENT] = fds[1];
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    e = pthread_create(&tid, &attr, mproc__exit_watch_main, w);
    (void)pthread_attr_destroy(&attr);
  }
  if (e != 0) {
    mproc__px_close_fd(&fds[0]);
    mproc__px_close_fd(&fds[1]);
    mproc__child_ends_close_locked(&w->ends, -1);
    free(w);
    rc = mproc__os_fail(MPROC_ESYS, e);
    goto finish;
  }
  mproc__plat_private_add(fds[0]);
  __atomic_store_n(&p->plat.exit_r, fds[0], __ATOMIC_RELEASE);
finish:
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

/* What tells that the child ended: its pidfd, its exit watch, or the
 * parent's end of its life line; -1 while the pidfd is not open yet. */
static int mproc__end_fd(const mproc_process *p) {
  int fd = __atomic_load_n(&p->plat.exit_r, __ATOMIC_ACQUIRE);
  int pidfd = __atomic_load_n(&p->plat.pidfd, __ATOMIC_ACQUIRE);
  return pidfd >= 0 ? pidfd : fd >= 0 ? fd : p->plat.sentinel_r;
}

/* A descriptor that is readable at once and forever (a pipe whose write
 * end is closed), kept in p as its end until close: it stands in for the
 * pidfd of a child already reaped.  Lock held. */
static int mproc__ended_fd(mproc_process *p, int *out) {
  int fds[2];
  if (mproc__px_pipe(fds) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  (void)close(fds[1]);
  *out = fds[0];
  mproc__plat_private_add(fds[0]);
  __atomic_store_n(&p->plat.exit_r, fds[0], __ATOMIC_RELEASE);
  return MPROC_OK;
}

/* Is pid a child of ours (ended or not, but not reaped)? */
static int mproc__is_our_child(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof info);
  return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* Opens the pidfd of p, with mproc__lock held.  Lazily, only for a child
 * something waits on: a start then opens and closes nothing for it, and a
 * fork child made meanwhile has one descriptor fewer to drop.  Safe while
 * the child is unreaped (p->state STARTED under the lock: only mproc reaps
 * it, under this lock), because until then its pid names it and no one
 * else, zombie or not.  Unless the application reaped it behind our back:
 * SIGCHLD set to SIG_IGN (the kernel reaps every child as it ends) or a
 * waitpid(-1).  Then pidfd_open fails (ESRCH), or names a stranger that
 * got the pid since, which is no child of ours (waitid: ECHILD): either
 * way the child ended, and a descriptor that is always readable stands in
 * (one of our own later children taking the very pid is the one case not
 * told apart).  Started eagerly, the same child made start() fail. */
static int mproc__open_pidfd_locked(mproc_process *p) {
  int fd = mproc__px_pidfd_open((pid_t)p->pid);
  if (fd >= 0 && !mproc__is_our_child((pid_t)p->pid)) {
    mproc__px_close_fd(&fd);
    errno = ESRCH;
  }
  if (fd < 0 && errno != ESRCH)
    return mproc__os_fail(MPROC_ESYS, errno);
  if (fd < 0)
    return mproc__ended_fd(p, &fd);
  mproc__pidfd_catch_up(fd, (pid_t)p->pid);
#if !MPROC__HAVE_KQUEUE_PROC
  mproc__plat_private_add(fd);
#endif
  __atomic_store_n(&p->plat.pidfd, fd, __ATOMIC_RELEASE);
  return MPROC_OK;
}

/* mproc__end_fd, opening the pidfd first if needed; lock held.  *fd is -1
 * (and 0 returned) for a child already reaped that never had one. */
static int mproc__end_fd_open(mproc_process *p, int *fd) {
  int rc = MPROC_OK;
  if (mproc__end_fd(p) < 0 && !p->plat.fs && p->state == MPROC__P_STARTED)
    rc = mproc__open_pidfd_locked(p);
  *fd = mproc__end_fd(p);
  return rc;
}

/* A join without a timeout on Linux: block in waitid(WNOWAIT) on the pid
 * itself, which wakes when the child ends (or fails with ECHILD once the
 * application reaped it behind our back).  It needs no descriptor: the
 * pidfd the other waits open (pidfd_open, poll, close: a file made and
 * freed) was about a tenth of a fork start+join's CPU time.  A pid is safe
 * to wait on only while it is our unreaped child, so from the moment this
 * thread counts itself in plat.waiting (under mproc__lock, the child still
 * STARTED) mproc does not reap it: mproc__plat_reap reports the end and
 * leaves the zombie to the last waiter, here.  Not on macOS, whose
 * waitid(WNOWAIT) may report a stopped child (mproc__ended_nowait): that
 * would spin here. */
#if MPROC__LINUX
static int mproc__wait_blocking(mproc_process *p) {
  siginfo_t info;
  int rc = MPROC_OK, st;
  mproc__mutex_lock(&mproc__lock);
  if (p->state != MPROC__P_STARTED) {
    mproc__mutex_unlock(&mproc__lock);
    return MPROC_OK; /* reaped by another thread: join sees ENDED */
  }
  p->plat.waiting++;
  mproc__mutex_unlock(&mproc__lock);
  memset(&info, 0, sizeof info);
  while (waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOWAIT) != 0) {
    if (errno != EINTR) {
      if (errno != ECHILD) /* ECHILD: reaped behind our back, so ended */
        rc = mproc__os_fail(MPROC_ESYS, errno);
      break;
    }
  }
  mproc__mutex_lock(&mproc__lock);
  if (--p->plat.waiting == 0 && p->plat.held) {
    p->plat.held = 0;
    /* The zombie's end was seen already, so it needs no wait; WNOHANG
     * because if the application reaped it behind our back (waitpid(-1))
     * the pid may name a newer child by now, which must not be waited for
     * with mproc__lock held. */
    while (waitpid((pid_t)p->pid, &st, WNOHANG) < 0 && errno == EINTR) {
    }
  }
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}
#endif

int mproc__plat_wait(mproc_process *p, double timeout) {
  double deadline = mproc__deadline(timeout);
  int fd, prc, rc;
  if (p->plat.fs)
    return mproc__px_fs_wait(p, deadline);
#if MPROC__LINUX
  if (timeout < 0 && mproc__end_fd(p) < 0)
    return mproc__wait_blocking(p);
#endif
  for (;;) {
    fd = mproc__end_fd(p);
    if (fd < 0) {
      mproc__mutex_lock(&mproc__lock);
      rc = mproc__end_fd_open(p, &fd);
      mproc__mutex_unlock(&mproc__lock);
      if (rc < 0)
        return rc;
      if (fd < 0)
        return MPROC_OK; /* reaped by another thread meanwhile */
    }
    prc = mproc__px_poll_in(fd, deadline);
    if (prc < 0)
      return mproc__os_fail(MPROC_ESYS, errno);
    if (prc == 0)
      return MPROC_ETIMEDOUT;
    if (fd != p->plat.sentinel_r || mproc__ended_nowait((pid_t)p->pid))
      return MPROC_OK;
    if ((rc = mproc__watch_exit(p)) < 0)
      return rc;
  }
}

/* The end of a child that threads wait for in waitid (mproc__wait_blocking):
 * reported, not reaped (the last of them reaps it).  As mproc__plat_reap. */
static int mproc__reap_held(mproc_process *p, int *exitcode) {
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != ECHILD)
      return mproc__os_fail(MPROC_ESYS, errno);
    *exitcode = 255; /* reaped behind our back: see mproc__plat_reap */
    return 1;
  }
  if (info.si_pid != (pid_t)p->pid)
    return 0; /* still running */
  *exitcode = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
  p->plat.held = 1;
  return 1;
}

int mproc__plat_reap(mproc_process *p, int *exitcode) {
  int st = 0;
  pid_t r;
  if (p->plat.fs)
    return mproc__px_fs_reap(p, exitcode);
  if (p->plat.waiting)
    return mproc__reap_held(p, exitcode);
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
  if (p->plat.fs)
    return mproc__px_fs_signal(p, sig);
#if MPROC__HAVE_PIDFD
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

int mproc__plat_signal_tree(mproc_process *p, int which, int reaped) {
  int sig = which == MPROC__SIG_KILL ? SIGKILL : SIGTERM;
  /* While the child is unreaped (even a zombie) its pid is its group's id
   * and no one else's.  After reaping, the group may be empty and the
   * number reused by a stranger leading a group of its own: send nothing. */
  if (reaped)
    return MPROC_OK;
  /* ESRCH: the group has no member left (the leader's zombie is not one). */
  if (killpg((pid_t)p->pid, sig) != 0 && errno != ESRCH)
    return mproc__os_fail(MPROC_ESYS, errno);
  return MPROC_OK;
}

int mproc__plat_sentinel(mproc_process *p, mproc_handle_t *out) {
  int fd, rc;
  if (p->plat.fs) {
    *out = mproc__px_fs_sentinel(p);
    return MPROC_OK;
  }
  *out = MPROC_INVALID_HANDLE;
  if ((rc = mproc__end_fd_open(p, &fd)) < 0)
    return rc;
  /* Reaped before anything waited (is_alive or exitcode saw the end): the
   * always-readable stand-in. */
  if (fd < 0 && (rc = mproc__ended_fd(p, &fd)) < 0)
    return rc;
  *out = fd;
  return MPROC_OK;
}

void mproc__plat_private_proc(const mproc_process *p) {
#if !MPROC__HAVE_KQUEUE_PROC
  /* A kqueue is not inherited at all (kqueue(2)). */
  mproc__plat_private_add(p->plat.pidfd);
#endif
  mproc__plat_private_add(p->plat.sentinel_r);
  mproc__plat_private_add(p->plat.exit_r);
  mproc__plat_private_add(p->plat.fs_pidfd);
  mproc__plat_private_add(p->plat.fs_life);
}

void mproc__plat_close(mproc_process *p) {
  /* Unregistered before closed: the number may be reused at once. */
  mproc__plat_private_del(p->plat.pidfd);
  mproc__plat_private_del(p->plat.sentinel_r);
  mproc__plat_private_del(p->plat.exit_r);
  mproc__plat_private_del(p->plat.fs_pidfd);
  mproc__plat_private_del(p->plat.fs_life);
  mproc__px_close_fd(&p->plat.fs_pidfd);
  mproc__px_close_fd(&p->plat.fs_life);
  mproc__px_close_fd(&p->plat.pidfd);
  mproc__px_close_fd(&p->plat.sentinel_r);
  mproc__px_close_fd(&p->plat.exit_r);
}

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
    prc = poll(pfd, (nfds_t)n, mproc__px_ms(left));
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
