/* POSIX backend: shared segments (plat/seg.h), memfd or shm_open plus
 * mmap. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "px_have.h"

/* Every segment starts with the header src/seg.c writes and reads; the
 * user's bytes follow at MPROC__SEG_HDR. */
/* /dev/shm/mproc.<name>: a fixed prefix keeps mproc's names apart from
 * other programs' and lets cleanup find them. */
#define MPROC__SEG_PREFIX "/mproc."

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
#if MPROC__SHM_NAMES_ARE_FILES
#define MPROC__SEG_OFLAGS (O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
#elif MPROC__APPLE
/* macOS's shm_open(2) documents no O_CLOEXEC: mproc__seg_shm_open sets the
 * flag after the open instead. */
#define MPROC__SEG_OFLAGS 0
#else
#define MPROC__SEG_OFLAGS O_CLOEXEC
#endif

#if MPROC__APPLE
/* XNU limits a shm name to PSHMNAMLEN (31) characters, slash and prefix
 * included (bsd/sys/posix_shm_internal.h, not a public header), so a named
 * block's name may have 31 - strlen("/mproc.") = 24 characters there.  A
 * longer name is refused (MPROC_EINVAL), never truncated: two long names
 * cut to the same prefix would silently share one block. */
#define MPROC__SEG_PATH_MAX 31
#else
#define MPROC__SEG_PATH_MAX (sizeof MPROC__SEG_PREFIX - 1 + MPROC_SHM_NAME_MAX)
#endif

/* shm_open(2) with the flags above, the descriptor close-on-exec. */
static int mproc__seg_shm_open(const char *path, int oflag, mode_t mode) {
  int fd = shm_open(path, oflag | MPROC__SEG_OFLAGS, mode);
#if MPROC__APPLE
  if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    int e = errno;
    (void)close(fd);
    errno = e;
    return -1;
  }
#endif
  return fd;
}

/* The OS name of a block, or MPROC_EINVAL for a name this system's
 * namespace cannot hold (see MPROC__SEG_PATH_MAX). */
static int mproc__seg_path(char *path, size_t pathlen, const char *name) {
  if (!mproc__seg_name_ok(name) ||
      sizeof MPROC__SEG_PREFIX - 1 + strlen(name) > MPROC__SEG_PATH_MAX)
    return MPROC_EINVAL;
  snprintf(path, pathlen, "%s%s", MPROC__SEG_PREFIX, name);
  return MPROC_OK;
}

/* Is the opened name this user's private block: a regular file owned by
 * the effective uid, with no permission bits for group or others, and no
 * other name (a hard link made elsewhere could make the name lead to
 * another of this user's blocks, or outlive an unlink)?  Then no
 * other user (root aside) can open it, and in a sticky directory nobody
 * else can remove or replace the name either, so its contents and its size
 * change only at this user's hands.  The one thing left is this user
 * shrinking its own file while it is mapped: that is a program hurting
 * itself, as with any file it maps, and is not guarded against.
 * MPROC_EPERM otherwise. */
static int mproc__seg_private(const struct stat *st) {
  if (!S_ISREG(st->st_mode) || st->st_uid != geteuid() ||
      (st->st_mode & 077) != 0 || st->st_nlink != 1)
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
#if MPROC__HAVE_MEMFD
  /* memfd: no name in any namespace, so nothing to guess, collide with or
   * leave behind. */
  (void)salt;
  return memfd_create("mproc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
#elif MPROC__HAVE_SHM_ANON
  /* FreeBSD's anonymous shm object (shm_open(2)): no name either. */
  (void)salt;
  return shm_open(SHM_ANON, O_RDWR | O_CLOEXEC, 0600);
#else
  /* Elsewhere: a random name, unlinked at once, so nothing is left behind
   * and only descriptors reach the block.  O_EXCL: a name someone else
   * holds is skipped, never shared.  The name stays under macOS's 31
   * characters ("/mproc-anon." and 16 hex digits). */
  char path[32];
  int fd = -1, tries;
  for (tries = 0; tries < 16 && fd < 0; tries++) {
#if MPROC__APPLE
    unsigned long long r = (unsigned long long)arc4random() << 32 |
                            arc4random(); /* <stdlib.h> on macOS */
    (void)salt;
#else
    unsigned long long r = (unsigned long long)getpid() << 32 ^
                           (unsigned long long)time(NULL) ^
                           (unsigned long long)(uintptr_t)salt ^
                           (unsigned long long)tries * 0x9E3779B97F4A7C15ull;
#endif
    snprintf(path, sizeof path, "/mproc-anon.%llx", r);
    fd = mproc__seg_shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd >= 0)
    (void)shm_unlink(path);
  return fd;
#endif
}

int mproc__seg_create(mproc__seg *s, const char *name, size_t size) {
  char path[sizeof MPROC__SEG_PREFIX + MPROC_SHM_NAME_MAX];
  int fd = -1, rc;
  mproc__seg_reset(s);
  if (size == 0 || size > (size_t)INT64_MAX - MPROC__SEG_HDR)
    return MPROC_EINVAL;
  if (name && mproc__seg_path(path, sizeof path, name) < 0)
    return MPROC_EINVAL;
  if (name) {
    /* O_EXCL: two creators of one name must not share it by accident, and
     * whatever someone planted under the name (a file, a link, even one
     * pointing nowhere) is "taken", never opened or followed. */
    fd = mproc__seg_shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
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
#if MPROC__HAVE_MEMFD
  /* Every process the block is passed to holds a descriptor that could
   * ftruncate it smaller, and a peer touching a page cut off that way dies
   * of SIGBUS: a hostile child (or its raw fork() child) could crash the
   * parent while it reads a queue, an array or a result.  The size never
   * changes after this, so the memfd is sealed against shrinking. */
  if (!name && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    rc = mproc__os_fail(MPROC_ESYS, errno);
    goto fail;
  }
#endif
  if ((rc = mproc__seg_map(s, fd, size + MPROC__SEG_HDR)) < 0)
    goto fail;
  s->size = size;
  s->committed = size;
  mproc__seg_hdr_init(s->map_base, size);
  return MPROC_OK;
fail:
  if (name)
    (void)shm_unlink(path);
  (void)close(fd);
  free(s->name);
  mproc__seg_reset(s);
  return rc;
}

/* Does a file of st_size bytes hold exactly a block of `size` bytes?  XNU
 * rounds a shm object's size up to whole pages at ftruncate (its st_size
 * then says the rounded size), so there the file may be larger, but by less
 * than a page; everywhere else the sizes must match. */
static int mproc__seg_size_fits(uint64_t size, uint64_t st_size) {
  uint64_t room = st_size - MPROC__SEG_HDR; /* the caller checked > HDR */
#if MPROC__APPLE
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  return size <= room && room - size < page;
#else
  return size == room;
#endif
}

/* Maps the segment behind fd after checking that the file holds the whole
 * header and exactly the size the header claims, so nothing is mapped past
 * the end of the file (touching such a page is SIGBUS).  `named`: fd came
 * from a name anyone could have created first, and must be this user's
 * private block (MPROC_EPERM); a handle received from the parent is
 * trusted (a memfd is mode 0777).  MPROC_EINVAL: not a complete block. */
static int mproc__seg_check(mproc__seg *s, int fd, int named) {
  struct stat st;
  uint64_t size;
  int rc;
  if (fstat(fd, &st) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  if (named && (rc = mproc__seg_private(&st)) < 0)
    return rc;
  if ((uint64_t)st.st_size <= MPROC__SEG_HDR)
    return MPROC_EINVAL;
  if ((rc = mproc__seg_map(s, fd, (size_t)st.st_size)) < 0)
    return rc;
  if (mproc__seg_hdr_size(s->map_base, &size) < 0 ||
      !mproc__seg_size_fits(size, (uint64_t)st.st_size)) {
    (void)munmap(s->map_base, s->map_size);
    return MPROC_EINVAL;
  }
  s->size = (size_t)size;
  s->committed = s->size;
  return MPROC_OK;
}

int mproc__seg_attach(mproc__seg *s, const char *name) {
  char path[sizeof MPROC__SEG_PREFIX + MPROC_SHM_NAME_MAX];
  int fd, rc;
  mproc__seg_reset(s);
  if (mproc__seg_path(path, sizeof path, name) < 0)
    return MPROC_EINVAL;
  fd = mproc__seg_shm_open(path, O_RDWR, 0);
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
    mproc__seg_reset(s);
  }
  return rc;
}

int mproc__seg_import(mproc__seg *s, mproc_handle_t h, size_t size) {
  int rc;
  mproc__seg_reset(s);
  if (h < 0)
    return MPROC_EINVAL;
  rc = mproc__seg_check(s, h, 0);
  if (rc == MPROC_OK && s->size != size) {
    (void)munmap(s->map_base, s->map_size);
    rc = MPROC_EINVAL;
  }
  if (rc < 0) {
    (void)close(h);
    mproc__seg_reset(s);
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
  fd = mproc__seg_shm_open(path, O_RDONLY, 0);
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

void mproc__seg_close(mproc__seg *s) {
  if (s->owner && s->name)
    (void)mproc__seg_unlink(s);
  if (s->map_base)
    (void)munmap(s->map_base, s->map_size);
  if (s->handle >= 0)
    (void)close(s->handle);
  free(s->name);
  mproc__seg_reset(s);
}

int mproc__seg_cleanup(void) {
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  int removed = 0;
  if (!d)
    return errno == ENOENT ? 0 : mproc__os_fail(MPROC_ESYS, errno);
  while ((e = readdir(d)) != NULL) {
    char path[sizeof MPROC__SEG_PREFIX + MPROC_SHM_NAME_MAX];
    union {
      unsigned char b[MPROC__SEG_HDR];
      uint64_t align;
    } h;
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
    fd = mproc__seg_shm_open(path, O_RDONLY, 0);
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
      if (pread(fd, h.b, sizeof h.b, 0) != (ssize_t)sizeof h.b ||
          (stale = mproc__seg_hdr_abandoned(h.b)) < 0)
        stale = st.st_mtime < time(NULL) - 60;
    }
    (void)close(fd);
    if (stale && shm_unlink(path) == 0)
      removed++;
  }
  closedir(d);
  return removed;
}

/* ---- blank segments -------------------------------------------------------------
 * Made with no size: one memfd_create (and, on Linux, one fcntl) instead of
 * ftruncate + mmap + a header page + munmap, which is what a fork start
 * would otherwise pay for every child, result or not.  The receiver gives
 * the block its whole size once (macOS lets a shm object be sized only
 * once, so it is never grown piecemeal); the object stays sparse. */
int mproc__seg_blank(mproc_handle_t *h, size_t size) {
  int fd;
  if (size == 0 || size > (size_t)INT64_MAX - MPROC__SEG_HDR)
    return MPROC_EINVAL;
#if MPROC__HAVE_MEMFD && defined(F_ADD_SEALS)
  /* Sealed now, by its maker: a child (or a grandchild holding an
   * inherited descriptor) can then never shrink it under the parent's
   * mapping, and F_SEAL_SEAL keeps it from adding F_SEAL_WRITE (which
   * would make the parent's shared writable mapping fail). */
  fd = memfd_create("mproc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd >= 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    int e = errno;
    (void)close(fd);
    errno = e;
    fd = -1;
  }
#else
  fd = mproc__seg_anon_fd(h);
#endif
  if (fd < 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  *h = fd;
  return MPROC_OK;
}

#if MPROC__HAVE_MEMFD && defined(F_ADD_SEALS) && defined(FALLOC_FL_PUNCH_HOLE)
int mproc__seg_arena(mproc_handle_t *h, size_t slot, uint64_t max,
                     uint64_t *slots) {
  /* An off_t of 32 bits (a 32-bit build without _FILE_OFFSET_BITS=64)
   * reaches 2 GiB; a 64-bit one 8 TiB here, within every kernel's limit
   * for a tmpfs file (16 TiB on a 32-bit kernel). */
  uint64_t limit = sizeof(off_t) >= 8 ? (uint64_t)1 << 43 : (uint64_t)INT32_MAX;
  uint64_t n = limit / slot < max ? limit / slot : max;
  int rc = n ? mproc__seg_blank(h, slot) : MPROC_ENOTSUP;
  if (rc < 0)
    return rc;
  if (ftruncate(*h, (off_t)(n * slot)) != 0) {
    rc = mproc__os_fail(MPROC_ESYS, errno);
    (void)close(*h);
    *h = -1;
    return rc;
  }
  *slots = n;
  return MPROC_OK;
}

int mproc__seg_wipe(mproc_handle_t h, uint64_t off, size_t size) {
  if (fallocate(h, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                (off_t)size) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  return MPROC_OK;
}
#else
int mproc__seg_arena(mproc_handle_t *h, size_t slot, uint64_t max,
                     uint64_t *slots) {
  (void)slot;
  (void)max;
  *h = -1;
  *slots = 0;
  return MPROC_ENOTSUP;
}

int mproc__seg_wipe(mproc_handle_t h, uint64_t off, size_t size) {
  (void)h;
  (void)off;
  (void)size;
  return MPROC_ENOTSUP;
}
#endif

int mproc__seg_map_slot(mproc__seg *s, mproc_handle_t h, uint64_t off,
                        size_t size) {
  void *base;
  mproc__seg_reset(s);
  base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, h, (off_t)off);
  if (base == MAP_FAILED)
    return mproc__os_fail(MPROC_ESYS, errno);
  s->map_base = s->addr = base;
  s->map_size = s->size = s->committed = size;
  return MPROC_OK;
}

/* Gives the blank block behind fd its size, maps it and writes the header.
 * Two holders doing so at once size it alike and write the same header. */
static int mproc__seg_fill(mproc__seg *s, int fd, size_t size) {
  int rc;
  if (ftruncate(fd, (off_t)(size + MPROC__SEG_HDR)) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  if ((rc = mproc__seg_map(s, fd, size + MPROC__SEG_HDR)) < 0)
    return rc;
  s->size = size;
  s->committed = size;
  mproc__seg_hdr_init(s->map_base, size);
  return MPROC_OK;
}

int mproc__seg_open_blank(mproc__seg *s, mproc_handle_t h, size_t size,
                          int fill) {
  struct stat st;
  int rc;
  mproc__seg_reset(s);
  if (h < 0)
    return MPROC_EINVAL;
  if (fstat(h, &st) != 0)
    rc = mproc__os_fail(MPROC_ESYS, errno);
  else if (st.st_size != 0)
    return mproc__seg_import(s, h, size); /* checks it; owns h */
  else if (!fill)
    rc = MPROC_ENOTFOUND;
  else
    rc = mproc__seg_fill(s, h, size);
  if (rc < 0) {
    (void)close(h);
    mproc__seg_reset(s);
  }
  return rc;
}

/* ---- reserved segments -------------------------------------------------------
 * A memfd or shm object made by ftruncate is sparse: a page is allocated
 * when first touched (Linux: shmem; macOS and the BSDs: a swap-backed VM
 * object), and memfd and tmpfs files charge memory per page, not for their
 * size.  So a reserve is an ordinary segment, all of it usable at once. */
int mproc__seg_reserve(mproc__seg *s, size_t size, size_t commit) {
  (void)commit;
  return mproc__seg_create(s, NULL, size);
}

int mproc__seg_commit(mproc__seg *s, size_t upto) {
  return upto <= s->size ? MPROC_OK : MPROC_EINVAL;
}

int mproc__seg_can_decommit(void) {
#if defined(__linux__) && defined(FALLOC_FL_PUNCH_HOLE)
  return 1;
#else
  return 0;
#endif
}

/* Linux: fallocate(2) FALLOC_FL_PUNCH_HOLE frees the pages of a memfd or a
 * tmpfs file (since 3.5), and the range reads as zeros afterwards in every
 * mapping.  The pages must be whole: a partial page would only be zeroed.
 * Elsewhere: madvise() cannot free a shared object's pages (MADV_FREE and
 * MADV_DONTNEED only drop this mapping's view of them), and macOS has no
 * hole punching for shm objects, so they stay until the object goes. */
int mproc__seg_decommit(mproc__seg *s, size_t off, size_t len) {
#if defined(__linux__) && defined(FALLOC_FL_PUNCH_HOLE)
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t from = (uint64_t)MPROC__SEG_HDR + off, to = from + len;
  if (off > s->size || len > s->size - off)
    return MPROC_EINVAL;
  from = (from + page - 1) / page * page;
  to = to / page * page;
  if (to <= from)
    return MPROC_OK;
  if (fallocate(s->handle, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                (off_t)from, (off_t)(to - from)) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  return MPROC_OK;
#else
  (void)s;
  (void)off;
  (void)len;
  return MPROC_ENOTSUP;
#endif
}

/* Linux keeps a memfd's or tmpfs file's allocated pages in st_blocks (in
 * 512-byte units).  macOS and the BSDs fill in no such count for a shm
 * object. */
int mproc__seg_backed(const mproc__seg *s, uint64_t *bytes) {
#ifdef __linux__
  struct stat st;
  if (fstat(s->handle, &st) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  *bytes = (uint64_t)st.st_blocks * 512u;
  return MPROC_OK;
#else
  (void)s;
  (void)bytes;
  return MPROC_ENOTSUP;
#endif
}
