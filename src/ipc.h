/*
 * Internal foundation of the IPC objects (include/mproc/ipc.h):
 *   - shared segments (mproc__seg): anonymous or named shared memory whose
 *     OS handle can be passed to a child;
 *   - a portable futex (mproc__fx): block on a 32-bit word in a segment
 *     until it changes, wake waiters;
 *   - the object header and type table through which any IPC object is
 *     described for a child and rebuilt there.
 * The portable modules (sync.c, queue.c, shm.c, ...) build everything on
 * these; src/posix/ipc.c and src/win32/ipc.c implement the mproc__seg_* and
 * mproc__fx_* functions.
 */
#ifndef MPROC_IPC_INTERNAL_H
#define MPROC_IPC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "internal.h"

/* ---- shared segments ------------------------------------------------------ */

typedef struct mproc__seg {
  void *addr;            /* the usable bytes (size of them) */
  size_t size;
  mproc_handle_t handle; /* memfd/shm fd (POSIX), file mapping (Windows) */
  char *name;            /* user's name for a named segment, else NULL */
  int owner;             /* created here: unlinks the name on close */
  void *map_base;        /* backend: the whole mapping (POSIX puts a small */
  size_t map_size;       /* header before addr) */
} mproc__seg;

/* Create `size` zero-filled bytes, owner-only access.  name NULL:
 * anonymous.  Named: MPROC_EEXIST if taken.  The handle is never
 * inheritable (passing is explicit). */
int mproc__seg_create(mproc__seg *s, const char *name, size_t size);
/* Attach by name (MPROC_ENOTFOUND); the size is the segment's. */
int mproc__seg_attach(mproc__seg *s, const char *name);
/* Map a segment from a handle this process received (it takes ownership of
 * the handle). */
int mproc__seg_import(mproc__seg *s, mproc_handle_t h, size_t size);
/* Remove the name (no-op on Windows, where names die with the last handle). */
int mproc__seg_unlink(mproc__seg *s);
/* Mark a named segment as meant to outlive its creator, so
 * mproc__seg_cleanup() leaves it alone, and stop unlinking it on close. */
int mproc__seg_keep(mproc__seg *s);
/* Unmap and close the handle (and unlink if owner and still named). */
void mproc__seg_close(mproc__seg *s);
/* mproc_shm_cleanup()'s work. */
int mproc__seg_cleanup(void);
/* Shared names: 1..MPROC_SHM_NAME_MAX of [A-Za-z0-9_.-], not "." or "..". */
int mproc__seg_name_ok(const char *name);

/* ---- the portable futex --------------------------------------------------------
 * A waitable word lives in shared memory together with a waiter count.  The
 * waker changes the word first, then calls wake; a waiter sleeps only while
 * the word still equals `expected`, so no wake-up is lost.  Spurious
 * wake-ups happen: callers re-check in a loop.
 *   Linux: futex(2) on the word (not FUTEX_PRIVATE: the word is shared).
 *   Windows: a kernel semaphore per object; the waiter count in shared
 *            memory tells the waker how many units to release.
 *   Other POSIX: sleeps in short steps (correct, slower). */

typedef struct mproc__fx {
  volatile uint32_t *word;
  volatile uint32_t *waiters;
  mproc_handle_t sem; /* Windows semaphore; MPROC_INVALID_HANDLE elsewhere */
} mproc__fx;

/* Make the OS part of a futex in a new object (Windows: the semaphore). */
int mproc__fx_create(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters);
/* Rebuild in a child from the handle it received (may be invalid on Linux).
 * Takes ownership of `sem` (closes it) also on failure. */
int mproc__fx_import(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters, mproc_handle_t sem);
void mproc__fx_close(mproc__fx *fx);
/* Sleep while *word == expected, at most until `deadline` (mproc__plat_now()
 * seconds; negative: no limit).  0 (woken, changed, or spurious),
 * MPROC_ETIMEDOUT, or (Windows) MPROC_ESYS/MPROC_EINVAL when the wait itself
 * failed: callers must not loop on those.  `*waiters` belongs to the
 * backend (Windows keeps a wake counter in its top bits): the only thing
 * modules may rely on is that zero means nobody waits. */
int mproc__fx_wait(mproc__fx *fx, uint32_t expected, double deadline);
/* Wake up to n waiters (n = UINT32_MAX: all). */
void mproc__fx_wake(mproc__fx *fx, uint32_t n);
/* How many threads are counted inside mproc__fx_wait on this futex now (the
 * backend's count without its other bits).  For tests that must know a
 * waiter is asleep before they wake it; a snapshot, nothing to act on. */
uint32_t mproc__fx_waiting(const mproc__fx *fx);

/* A process's identity that pid reuse cannot fake, for owners recorded in
 * shared memory: pid << 32 | a nonzero 32-bit fold of the process's start
 * time (Linux: /proc/<pid>/stat field 22; Windows: its creation time), or
 * the pid alone (low half 0) where the OS does not tell.  Read once per
 * process (again after fork). */
uint64_t mproc__self_stamp(void);
/* Is the process a stamp names still running?  0 when its pid is gone or a
 * zombie, or when the pid now belongs to a process that started at another
 * time (the stamped one died and its pid was reused); a start time that
 * cannot be read counts as a match.  1 otherwise. */
int mproc__stamp_alive(uint64_t stamp);
/* The same from a pid alone (a reused pid looks alive). */
int mproc__pid_alive(int64_t pid);
/* The calling thread's id, to tell RLock owners apart within a process. */
uint64_t mproc__thread_id(void);

/* ---- objects as arguments ---------------------------------------------------- */

#define MPROC__OBJ_MAGIC 0x4f43504du /* "MPCO" */

typedef struct mproc__handles {
  mproc_handle_t *v;
  size_t n, cap;
} mproc__handles;
int mproc__handles_push(mproc__handles *hs, mproc_handle_t h);

typedef struct mproc__objtype {
  int type; /* mproc_object_type */
  /* Describe `obj` for a child: bytes into w, handles appended to hs. */
  int (*export_)(const void *obj, mproc__wr *w, mproc__handles *hs);
  /* Rebuild in the child: the bytes, and the child's values for the handles
   * exported (in order).  Owns the handles from then on, also on failure. */
  int (*import_)(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                 void **out);
  void (*free_)(void *obj);
} mproc__objtype;

/* First member of every IPC object. */
typedef struct mproc__obj {
  uint32_t magic;
  const mproc__objtype *vt;
} mproc__obj;

/* A zeroed object of `size` bytes with its header stamped, or NULL. */
void *mproc__obj_new(size_t size, const mproc__objtype *vt);
/* Is `p` a live object of this type?  (Checks the header: a freed object
 * has its magic cleared by its destroy function.)  Inline: it guards every
 * call, the lock's few-nanosecond fast path among them. */
#if defined(_MSC_VER) && !defined(__cplusplus)
#define MPROC__INLINE __inline
#else
#define MPROC__INLINE inline
#endif
static MPROC__INLINE int mproc__obj_is(const void *p,
                                       const mproc__objtype *vt) {
  const mproc__obj *o = (const mproc__obj *)p;
  return o && o->magic == MPROC__OBJ_MAGIC && o->vt == vt;
}

/* The table of object types (src/objects.c). */
const mproc__objtype *mproc__objtype_find(int type);

#endif
