/* POSIX side of the IPC foundation: shared segments (memfd or shm_open plus
 * mmap), the futex the portable objects block on, and liveness checks for
 * lock owners. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* memfd_create, syscall, gettid */
#endif
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "ipc.h"

/* Every segment starts with this header; the user's bytes follow at
 * MPROC__SEG_HDR.  It lets attach check that a name belongs to mproc and
 * learn the size, and lets cleanup tell a block whose creator crashed from
 * one that was kept on purpose. */
#define MPROC__SEG_HDR 64
#define MPROC__SEG_MAGIC "MPROCSHM"
#define MPROC__SEG_KEPT 1u
/* /dev/shm/mproc.<name>: a fixed prefix keeps mproc's names apart from
 * other programs' and lets cleanup find them. */
#define MPROC__SEG_PREFIX "/mproc."

typedef struct mproc__seg_hdr {
  char magic[8];
  uint32_t version;
  volatile uint32_t flags;
  int64_t creator_pid;
  uint64_t size;
} mproc__seg_hdr;

/* ---- who may have put something under a name --------------------------------
 * Names are predictable, so any local user may create mproc.<name> before
 * us: a file of theirs (to read what we write into it, or to shrink it
 * under our mapping: SIGBUS), a symbolic link, a fifo.  Linux keeps the
 * names as ordinary files in /dev/shm, a world-writable sticky directory.
 * So names are opened with
 *   O_NOFOLLOW  a link fails with ELOOP instead of opening its target
 *               (glibc and musl add it themselves; not relied upon);
 *   O_NONBLOCK  opening a fifo for reading would wait for a writer;
 * and what was opened is then checked on the descriptor, where nobody can
 * swap it: see mproc__seg_private().  FreeBSD and macOS keep shm objects in
 * a namespace of their own with no links or fifos, and their shm_open
 * rejects flags it does not define. */
#ifdef __linux__
#define MPROC__SEG_OFLAGS (O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
#else
#define MPROC__SEG_OFLAGS O_CLOEXEC
#endif

/* Is the opened name this user's private block: a regular file owned by
 * the effective uid, with no permission bits for group or others?  Then no
 * other user (root aside) can open it, and in a sticky directory nobody
 * else can remove or replace the name either, so its contents and its size
 * change only at this user's hands.  The one thing left is this user
 * shrinking its own file while it is mapped: that is a program hurting
 * itself, as with any file it maps, and is not guarded against.
 * MPROC_EPERM otherwise. */
static int mproc__seg_private(const struct stat *st) {
  if (!S_ISREG(st->st_mode) || st->st_uid != geteuid() ||
      (st->st_mode & 077) != 0)
    return MPROC_EPERM;
  return MPROC_OK;
}

/* shm_open's errno for a name that exists: ELOOP is a link (O_NOFOLLOW),
 * EACCES another user's private file, EISDIR a directory (which glibc
 * reports as EINVAL; the name itself was checked already).  None of them
 * is this user's block, and none is "no such name". */
static int mproc__seg_open_error(int err) {
  switch (err) {
  case ENOENT:
    return MPROC_ENOTFOUND;
  case ELOOP:
  case EACCES:
  case EPERM:
  case EISDIR:
  case EINVAL:
    return MPROC_EPERM;
  default:
    return mproc__os_fail(MPROC_ESYS, err);
  }
}

static int mproc__seg_map(mproc__seg *s, int fd, size_t total) {
  void *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED)
    return mproc__os_fail(MPROC_ESYS, errno);
  s->map_base = base;
  s->map_size = total;
  s->addr = (unsigned char *)base + MPROC__SEG_HDR;
  s->handle = fd;
  return MPROC_OK;
}

static void mproc__seg_init(mproc__seg *s) {
  memset(s, 0, sizeof(*s));
  s->handle = -1;
}

/* A name this process just created: the umask may have taken bits off
 * 0600 (it never adds any), which would keep this user's own attach out,
 * so the mode is set again; then the same check as attach's, so a file
 * system that does not keep modes or owners fails here, not later. */
static int mproc__seg_made_private(int fd) {
  struct stat st;
  if (fchmod(fd, 0600) != 0 || fstat(fd, &st) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  return mproc__seg_private(&st);
}

/* A descriptor for an anonymous segment, or -1 with errno. */
static int mproc__seg_anon_fd(const void *salt) {
#ifdef __linux__
  /* memfd: no name in any namespace, so nothing to guess, collide with or
   * leave behind. */
  (void)salt;
  return memfd_create("mproc", MFD_CLOEXEC);
#else
  /* Elsewhere: a random name, unlinked at once. */
  char path[64];
  unsigned long r = (unsigned long)getpid() ^ (unsigned long)time(NULL) ^
                    (unsigned long)(uintptr_t)salt;
  int fd;
  snprintf(path, sizeof path, "/mproc-anon.%lx", r);
  fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    (void)shm_unlink(path);
  return fd;
#endif
}

int mproc__seg_create(mproc__seg *s, const char *name, size_t size) {
  char path[sizeof MPROC__SEG_PREFIX + MPROC_SHM_NAME_MAX];
  mproc__seg_hdr *h;
  int fd = -1, rc;
  mproc__seg_init(s);
  if (size == 0 || size > (size_t)INT64_MAX - MPROC__SEG_HDR)
    return MPROC_EINVAL;
  if (name && !mproc__seg_name_ok(name))
    return MPROC_EINVAL;
  if (name) {
    snprintf(path, sizeof path, "%s%s", MPROC__SEG_PREFIX, name);
    /* O_EXCL: two creators of one name must not share it by accident, and
     * whatever someone planted under the name (a file, a link, even one
     * pointing nowhere) is "taken", never opened or followed. */
    fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR | MPROC__SEG_OFLAGS, 0600);
    if (fd < 0)
      return errno == EEXIST ? MPROC_EEXIST : mproc__os_fail(MPROC_ESYS, errno);
    s->name = (char *)malloc(strlen(name) + 1);
    if (!s->name) {
      rc = MPROC_ENOMEM;
      goto fail;
    }
    strcpy(s->name, name);
    s->owner = 1;
    if ((rc = mproc__seg_made_private(fd)) < 0)
      goto fail;
  } else if ((fd = mproc__seg_anon_fd(s)) < 0) {
    return mproc__os_fail(MPROC_ESYS, errno);
  }
  if (ftruncate(fd, (off_t)(size + MPROC__SEG_HDR)) != 0) {
    rc = mproc__os_fail(MPROC_ESYS, errno);
    goto fail;
  }
  if ((rc = mproc__seg_map(s, fd, size + MPROC__SEG_HDR)) < 0)
    goto fail;
  s->size = size;
  h = (mproc__seg_hdr *)s->map_base;
  memcpy(h->magic, MPROC__SEG_MAGIC, 8);
  h->version = 1;
  h->creator_pid = mproc__plat_getpid();
  h->size = size;
  return MPROC_OK;
fail:
  if (name)
    (void)shm_unlink(path);
  (void)close(fd);
  free(s->name);
  mproc__seg_init(s);
  return rc;
}

/* Maps the segment behind fd after checking that the file holds the whole
 * header and exactly the size the header claims, so nothing is mapped past
 * the end of the file (touching such a page is SIGBUS).  `named`: fd came
 * from a name anyone could have created first, and must be this user's
 * private block (MPROC_EPERM); a handle received from the parent is
 * trusted (a memfd is mode 0777).  MPROC_EINVAL: not a complete block. */
static int mproc__seg_check(mproc__seg *s, int fd, int named) {
  struct stat st;
  const mproc__seg_hdr *h;
  int rc;
  if (fstat(fd, &st) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  if (named && (rc = mproc__seg_private(&st)) < 0)
    return rc;
  if ((uint64_t)st.st_size <= MPROC__SEG_HDR)
    return MPROC_EINVAL;
  if ((rc = mproc__seg_map(s, fd, (size_t)st.st_size)) < 0)
    return rc;
  h = (const mproc__seg_hdr *)s->map_base;
  if (memcmp(h->magic, MPROC__SEG_MAGIC, 8) != 0 ||
      h->size != (uint64_t)st.st_size - MPROC__SEG_HDR) {
    (void)munmap(s->map_base, s->map_size);
    return MPROC_EINVAL;
  }
  s->size = (size_t)h->size;
  return MPROC_OK;
}

int mproc__seg_attach(mproc__seg *s, const char *name) {
  char path[sizeof MPROC__SEG_PREFIX + MPROC_SHM_NAME_MAX];
  int fd, rc;
  mproc__seg_init(s);
  if (!mproc__seg_name_ok(name))
    return MPROC_EINVAL;
  snprintf(path, sizeof path, "%s%s", MPROC__SEG_PREFIX, name);
  fd = shm_open(path, O_RDWR | MPROC__SEG_OFLAGS, 0);
  if (fd < 0)
    return mproc__seg_open_error(errno);
  s->name = (char *)malloc(strlen(name) + 1);
  if (!s->name) {
    (void)close(fd);
    return MPROC_ENOMEM;
  }
  strcpy(s->name, name);
  if ((rc = mproc__seg_check(s, fd, 1)) < 0) {
    (void)close(fd);
    free(s->name);
    mproc__seg_init(s);
  }
  return rc;
}

int mproc__seg_import(mproc__seg *s, mproc_handle_t h, size_t size) {
  int rc;
  mproc__seg_init(s);
  if (h < 0)
    return MPROC_EINVAL;
  rc = mproc__seg_check(s, h, 0);
  if (rc == MPROC_OK && s->size != size) {
    (void)munmap(s->map_base, s->map_size);
    rc = MPROC_EINVAL;
  }
  if (rc < 0) {
    (void)close(h);
    mproc__seg_init(s);
  }
  return rc;
}

/* Does the name still lead to the file behind s->handle?  Another process
 * may have unlinked it and made a new block under the name since, or
 * another user may then have planted something there: removing the name
 * would take away what is not ours.  MPROC_ENOTFOUND if it leads elsewhere
 * or nowhere.  (Between this check and the unlink only this user can
 * change the name: in the sticky /dev/shm a file's name is its owner's.) */
static int mproc__seg_still_named(const mproc__seg *s, const char *path) {
  struct stat mine, there;
  int fd, rc = MPROC_OK;
  fd = shm_open(path, O_RDONLY | MPROC__SEG_OFLAGS, 0);
  if (fd < 0) {
    rc = mproc__seg_open_error(errno);
    return rc == MPROC_EPERM ? MPROC_ENOTFOUND : rc;
  }
  if (fstat(s->handle, &mine) != 0 || fstat(fd, &there) != 0)
    rc = mproc__os_fail(MPROC_ESYS, errno);
  else if (mine.st_dev != there.st_dev || mine.st_ino != there.st_ino)
    rc = MPROC_ENOTFOUND;
  (void)close(fd);
  return rc;
}

int mproc__seg_unlink(mproc__seg *s) {
  char path[sizeof MPROC__SEG_PREFIX + MPROC_SHM_NAME_MAX];
  int rc;
  if (!s->name)
    return MPROC_ESTATE;
  snprintf(path, sizeof path, "%s%s", MPROC__SEG_PREFIX, s->name);
  s->owner = 0;
  if ((rc = mproc__seg_still_named(s, path)) < 0)
    return rc;
  if (shm_unlink(path) != 0)
    return errno == ENOENT ? MPROC_ENOTFOUND : mproc__os_fail(MPROC_ESYS, errno);
  return MPROC_OK;
}

int mproc__seg_keep(mproc__seg *s) {
  mproc__seg_hdr *h;
  if (!s->name || !s->map_base)
    return MPROC_ESTATE;
  h = (mproc__seg_hdr *)s->map_base;
  (void)mproc__add32(&h->flags, 0); /* a full barrier before the flag */
  h->flags |= MPROC__SEG_KEPT;
  s->owner = 0;
  return MPROC_OK;
}

void mproc__seg_close(mproc__seg *s) {
  if (s->owner && s->name)
    (void)mproc__seg_unlink(s);
  if (s->map_base)
    (void)munmap(s->map_base, s->map_size);
  if (s->handle >= 0)
    (void)close(s->handle);
  free(s->name);
  mproc__seg_init(s);
}

int mproc__seg_cleanup(void) {
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  int removed = 0;
  if (!d)
    return errno == ENOENT ? 0 : mproc__os_fail(MPROC_ESYS, errno);
  while ((e = readdir(d)) != NULL) {
    char path[sizeof MPROC__SEG_PREFIX + MPROC_SHM_NAME_MAX];
    mproc__seg_hdr h;
    struct stat st;
    const char *name;
    int fd, stale = 0;
    if (strncmp(e->d_name, &MPROC__SEG_PREFIX[1],
                sizeof MPROC__SEG_PREFIX - 2) != 0)
      continue;
    name = e->d_name + sizeof MPROC__SEG_PREFIX - 2;
    if (!mproc__seg_name_ok(name))
      continue;
    snprintf(path, sizeof path, "%s%s", MPROC__SEG_PREFIX, name);
    fd = shm_open(path, O_RDONLY | MPROC__SEG_OFLAGS, 0);
    if (fd < 0)
      continue;
    /* Only this user's private blocks (what attach accepts: not a link, a
     * fifo, another user's file, or one others could have written a header
     * into), only unkept ones whose creator is gone.  An entry without a
     * complete header is a creator that died between shm_open and writing
     * it; one that stayed that way for a minute is not still being set up.
     * Nobody else can swap the checked file for another before the unlink
     * below: in the sticky /dev/shm only its owner (or root) can. */
    if (fstat(fd, &st) == 0 && mproc__seg_private(&st) == MPROC_OK) {
      if (pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
          memcmp(h.magic, MPROC__SEG_MAGIC, 8) == 0)
        stale = !(h.flags & MPROC__SEG_KEPT) && !mproc__pid_alive(h.creator_pid);
      else
        stale = st.st_mtime < time(NULL) - 60;
    }
    (void)close(fd);
    if (stale && shm_unlink(path) == 0)
      removed++;
  }
  closedir(d);
  return removed;
}

/* ---- futex --------------------------------------------------------------- */

int mproc__fx_create(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters) {
  fx->word = word;
  fx->waiters = waiters;
  fx->sem = MPROC_INVALID_HANDLE; /* the kernel keys futexes by address */
  return MPROC_OK;
}

int mproc__fx_import(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters, mproc_handle_t sem) {
  if (sem != MPROC_INVALID_HANDLE)
    (void)close(sem);
  return mproc__fx_create(fx, word, waiters);
}

void mproc__fx_close(mproc__fx *fx) { fx->word = fx->waiters = NULL; }

int mproc__fx_wait(mproc__fx *fx, uint32_t expected, double deadline) {
  int rc = MPROC_OK;
  (void)mproc__add32(fx->waiters, 1);
#ifdef __linux__
  {
    struct timespec ts, *tsp = NULL;
    long r, nr = SYS_futex;
    if (deadline >= 0) {
      double whole = (double)(time_t)deadline;
      ts.tv_sec = (time_t)deadline;
      ts.tv_nsec = (long)((deadline - whole) * 1e9);
      if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
      tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, the
     * clock mproc__plat_now() reads, so retries after EINTR keep the
     * original deadline.  Not FUTEX_PRIVATE_FLAG: the word is shared
     * between processes, and the kernel must key it by the page.
     * A 32-bit ABI with a 64-bit time_t (all 32-bit musl, glibc with
     * _TIME_BITS=64) has a struct timespec the old SYS_futex reads as two
     * 32-bit fields (whole seconds, and the seconds' high half as ns):
     * it needs futex_time64 (Linux 5.1+), which takes this layout. */
#ifdef SYS_futex_time64
    if (sizeof(ts.tv_sec) > sizeof(long))
      nr = SYS_futex_time64;
#endif
    r = syscall(nr, fx->word, FUTEX_WAIT_BITSET, expected, tsp, NULL,
                FUTEX_BITSET_MATCH_ANY);
    if (r != 0 && errno == ETIMEDOUT)
      rc = MPROC_ETIMEDOUT;
  }
#else
  {
    /* No futex: look again after a short sleep. */
    struct timespec ts = {0, 200 * 1000};
    if (mproc__load32(fx->word) == expected) {
      if (deadline >= 0 && mproc__plat_now() >= deadline)
        rc = MPROC_ETIMEDOUT;
      else
        (void)nanosleep(&ts, NULL);
    }
  }
#endif
  (void)mproc__add32(fx->waiters, (uint32_t)-1);
  return rc;
}

void mproc__fx_wake(mproc__fx *fx, uint32_t n) {
  /* The waker changed the word before this load, and a waiter counts
   * itself before it sleeps: if no waiter is counted here, any later one
   * sees the new word and does not sleep (both orders are seq_cst). */
  if (mproc__load32(fx->waiters) == 0)
    return;
#ifdef __linux__
  (void)syscall(SYS_futex, fx->word, FUTEX_WAKE,
                n > (uint32_t)INT_MAX ? INT_MAX : (int)n, NULL, NULL, 0);
#else
  (void)n;
#endif
}

uint32_t mproc__fx_waiting(const mproc__fx *fx) {
  return mproc__load32(fx->waiters);
}

/* ---- owners -------------------------------------------------------------- */

/* What /proc/<pid>/stat says about a process: its state letter and its
 * start time (field 22, clock ticks since boot).  0 if it cannot be read:
 * no /proc (a chroot), another pid namespace, or the process is gone. */
static int mproc__proc_stat(int64_t pid, char *state, uint64_t *start) {
#ifdef __linux__
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
  if (state == 'Z' || state == 'X')
    return 0;
  /* The pid names a process that started at another time: the stamped one
   * died and the kernel gave its pid to a newcomer. */
  return start == 0 || now_start == 0 || mproc__fold_start(now_start) == start;
}

int mproc__pid_alive(int64_t pid) {
  return pid > 0 && pid <= (int64_t)0xffffffff
             ? mproc__stamp_alive((uint64_t)pid << 32)
             : 0;
}

uint64_t mproc__thread_id(void) {
  /* Cached per thread, and tagged with the pid it was read in: a fork
   * child's only thread inherits the copy of the forking thread's, whose
   * id the kernel may later give to another thread of the child. */
  static _Thread_local uint64_t tid;
  static _Thread_local int64_t tid_pid;
  int64_t pid = mproc__plat_getpid();
  if (!tid || tid_pid != pid) {
#ifdef __linux__
    tid = (uint64_t)syscall(SYS_gettid);
#else
    tid = (uint64_t)(uintptr_t)pthread_self();
#endif
    tid_pid = pid;
  }
  return tid;
}
