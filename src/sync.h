/*
 * Internal side of the synchronization objects (src/sync.c and the
 * src/sync_*.c file of each object): the robust lock word every lock is
 * made of, for other modules that want a lock on a word in their own shared
 * memory (a queue's ring, a pool's table), and what the objects share.
 *
 * A lock word is 32 bytes of shared memory, zero = free.  The word the
 * holder CASes in is its process id, so "who holds it" is recorded by the
 * same atomic operation that takes it: a holder killed at any instant
 * leaves its pid behind, and a waiter that finds that pid dead takes the
 * lock over and is told so (MPROC_EOWNERDEAD).  Right after the CAS the
 * holder also stores its stamp (pid and start time, plat/core.h), so a dead
 * holder whose pid the OS gave to a new process is still seen as dead.
 * Uncontended, acquire is one CAS and a plain store, release two plain
 * stores (see the release in sync.c for why no read-modify-write).
 *
 * Using one from another module:
 *     mproc__lockword *lw = <8-aligned, zeroed memory in a segment>;
 *     mproc__fx fx;
 *     mproc__lockword_fx(&fx, lw);          (creator; a child calls
 *                                            mproc__fx_import on the same
 *                                            two words with the passed
 *                                            fx.sem: export it when it is
 *                                            not MPROC_INVALID_HANDLE)
 *     rc = mproc__lockword_acquire(lw, &fx, 0, deadline);
 *     ... rc is 0 or MPROC_EOWNERDEAD: either way the lock is held ...
 *     mproc__lockword_release(lw, &fx, 0);
 */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include <stdint.h>

#include "ipc.h"

/* ---- ordering helpers that src/atomics.h does not have -------------------
 * atomics.h gives sequentially consistent operations only; a seq_cst store
 * is an XCHG on x86, which would double the cost of an uncontended
 * acquire+release.  The lock's release and the owner-only bookkeeping need
 * just release (resp. no) ordering. */
#if defined(_MSC_VER) && !defined(__clang__)
#if defined(_M_IX86) || defined(_M_X64)
/* x86 never reorders a store with earlier loads or stores (Intel SDM vol. 3
 * 8.2.2): a plain store is a release store once the compiler is fenced. */
#define mproc__store32_rel(p, v) (_ReadWriteBarrier(), (void)(*(p) = (v)))
#else
#define mproc__store32_rel(p, v) mproc__store32((p), (v))
#endif
#define mproc__load32_rlx(p) (*(p))
#define mproc__store32_rlx(p, v) ((void)(*(p) = (v)))
#define mproc__load64_rlx(p) mproc__load64(p)
#define mproc__store64_rlx(p, v) mproc__store64((p), (v))
#else
#define mproc__store32_rel(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define mproc__load32_rlx(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define mproc__store32_rlx(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define mproc__load64_rlx(p) __atomic_load_n(MPROC__A64(p), __ATOMIC_RELAXED)
#define mproc__store64_rlx(p, v) __atomic_store_n(MPROC__A64(p), (v), __ATOMIC_RELAXED)
#endif

/* ---- helpers the objects share (src/sync.c) ------------------------------ */

/* Longest single sleep of a waiter that has no lock word to watch: it
 * looks at the shared state again after each. */
#define MPROC__IDLE_SLICE_SECONDS 0.5

/* Closes handles an import cannot use (imports own every handle). */
void mproc__drop_handles(const mproc_handle_t *hs, size_t n);
/* One segment and its futexes, as they travel to a child: u64 segment
 * size, u8 has_sems; handles: the segment, then (when the platform's futex
 * has one, i.e. on Windows) one semaphore per futex. */
int mproc__export_seg(const mproc__seg *seg, const mproc__fx *const *fxs,
                      size_t nfx, mproc__wr *w, mproc__handles *hs);
/* The other side: maps the segment (at least min_size bytes) from hs[0]
 * and hands out one semaphore per futex (MPROC_INVALID_HANDLE where the
 * platform has none).  `ok` false (the caller found the description bad)
 * fails, but still takes care of every handle, as imports must: on any
 * failure all nh handles are closed. */
int mproc__import_seg(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                      size_t nfx, size_t min_size, int ok, mproc__seg *seg,
                      mproc_handle_t *sems);

/* ---- the lock word ------------------------------------------------------- */

typedef struct mproc__lockword {
  volatile uint32_t word;  /* 0 free, else the holder's pid; the futex word */
  volatile uint32_t fxw;   /* the futex's waiter count (mproc__fx) */
  volatile uint32_t nwait; /* threads in the acquire slow path */
  volatile uint32_t depth; /* recursive: the owner's recursion count */
  volatile mproc__u64a tid;   /* recursive: the owning thread (0 when free) */
  volatile mproc__u64a stamp; /* the holder's mproc__self_stamp(), stored just
                              after its CAS; 0 once released */
} mproc__lockword;

/* Zero a lock word (free).  Only before any process uses it. */
void mproc__lockword_init(mproc__lockword *lw);
/* Make the futex of a new lock word (Windows: creates its semaphore). */
int mproc__lockword_fx(mproc__fx *fx, mproc__lockword *lw);
/* Our identity in a lock word.  Process ids are nonzero and fit in 32 bits
 * on both platforms (Linux pid_max <= 2^22; Windows ids are DWORDs). */
static MPROC__INLINE uint32_t mproc__lockword_me(void) {
  return (uint32_t)mproc__plat_getpid();
}
/* Bookkeeping after taking a free or dead holder's word.  Only the owner
 * writes tid and depth; another thread of the same process compares tid
 * with its own id, and can never see its own id there unless it wrote it
 * itself (a thread clears tid before it releases), so relaxed is enough. */
static MPROC__INLINE void mproc__lockword_took(mproc__lockword *lw,
                                               int recursive) {
  mproc__store64_rlx(&lw->stamp, mproc__self_stamp());
  if (recursive) {
    mproc__store64_rlx(&lw->tid, mproc__thread_id());
    mproc__store32_rlx(&lw->depth, 1u);
  }
}

/* The fast path after a failed CAS: a recursive re-acquire.  1 (taken), 0
 * (someone else holds it) or MPROC_EOVERFLOW. */
static MPROC__INLINE int mproc__lockword_recurse(mproc__lockword *lw,
                                                 uint32_t me, uint32_t seen) {
  uint32_t d;
  if (seen != me || mproc__load64_rlx(&lw->tid) != mproc__thread_id())
    return 0;
  d = mproc__load32_rlx(&lw->depth);
  if (d == UINT32_MAX)
    return MPROC_EOVERFLOW;
  mproc__store32_rlx(&lw->depth, d + 1);
  return 1;
}

/* The uncontended acquire of a plain lock word: one CAS, then the stamp.
 * 1 if taken, 0 if held (then call mproc__lockword_acquire). */
static MPROC__INLINE int mproc__lockword_try(mproc__lockword *lw) {
  uint32_t expect = 0;
  if (!mproc__cas32(&lw->word, &expect, mproc__lockword_me()))
    return 0;
  mproc__lockword_took(lw, 0);
  return 1;
}
/* The acquire's slow path, after a failed CAS (and, recursive, a failed
 * re-entry): spins, sleeps, takes a dead holder's word over. */
int mproc__lockword_slow(mproc__lockword *lw, mproc__fx *fx, int recursive,
                         uint32_t me, double deadline);
/* The release proper, once the caller checked that it may release. */
void mproc__lockword_unlock(mproc__lockword *lw, mproc__fx *fx);
/* Acquire (recursive: the owning thread may take it again).  deadline in
 * mproc__plat_now() seconds, negative: no limit.  0, MPROC_EOWNERDEAD (held
 * now; the previous holder's process died while holding it),
 * MPROC_ETIMEDOUT, or MPROC_EOVERFLOW past 2^32-1 recursion levels. */
int mproc__lockword_acquire(mproc__lockword *lw, mproc__fx *fx, int recursive,
                            double deadline);
/* Plain: any process may release (MPROC_ESTATE if free).  Recursive: only
 * the owning thread (MPROC_EPERM; MPROC_ESTATE if free). */
int mproc__lockword_release(mproc__lockword *lw, mproc__fx *fx, int recursive);
/* 1 if held by the calling thread (recursive) or process (plain), else 0. */
int mproc__lockword_owned(mproc__lockword *lw, int recursive);
/* 1 if held by anyone (Python's Lock.locked()), else 0. */
int mproc__lockword_locked(mproc__lockword *lw);
/* If the word's holder died, take the word (1: held now, as after
 * MPROC_EOWNERDEAD), else 0.  A system call or two: for waiters that have
 * slept a while, not for fast paths. */
int mproc__lockword_take_dead(mproc__lockword *lw);
/* Test hook: make the lock look held by process `pid` with a stamp whose
 * start time is not that process's (a dead holder whose pid was reused). */
void mproc__lock_test_plant(mproc_lock *lock, uint32_t pid);
/* Test hook: take a barrier's internal lock and keep it (as a party
 * stopped inside wait() would). */
void mproc__barrier_test_hold(mproc_barrier *b);
/* Test hook: how many threads sleep in an event's wait now.  A waiter is
 * counted only after it read the flag clear, so once it is counted, a set()
 * wakes it with MPROC_OK even if clear() follows at once. */
uint32_t mproc__event_test_waiting(mproc_event *ev);
/* Test hook: how many threads sleep in a semaphore's acquire now. */
uint32_t mproc__semaphore_test_waiting(mproc_semaphore *sem);

/* ---- Lock internals, for the condition (src/sync_lock.c) ----------------- */

enum {
  MPROC__LOCK_OWN = 0,      /* its own segment; freed by mproc_lock_free */
  MPROC__LOCK_BORROWED = 1, /* a view into another object's segment (a
                               condition's RLock): freed with that object */
  MPROC__LOCK_IMPORTED = 2  /* a child's, owned by its argument list */
};

struct mproc_lock {
  mproc__obj hdr;
  mproc__lockword *lw;
  mproc__fx fx;
  int recursive;
  int kind;
  const mproc__seg *host; /* the segment holding lw: &seg, or the host's */
  size_t offset;          /* of lw in host */
  mproc__seg seg;         /* own mapping (OWN, IMPORTED) */
};

int mproc__lock_ok(const mproc_lock *l);
void mproc__lock_destroy(mproc_lock *l);
/* A lock whose word lives at `offset` in another object's segment (create:
 * a new word's futex; else imported with `sem`, which it then owns). */
int mproc__lock_view(mproc_lock **out, const mproc__seg *host, size_t offset,
                     int recursive, int create, mproc_handle_t sem);
/* The lock type's export, import and free (mproc__lock_type). */
int mproc__lock_export(const void *obj, mproc__wr *w, mproc__handles *hs);
int mproc__lock_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                       void **out);
void mproc__lock_objfree(void *obj);

/* ---- the object types (registered in src/objtypes.c) --------------------- */

extern const mproc__objtype mproc__lock_type, mproc__semaphore_type,
    mproc__event_type, mproc__condition_type, mproc__barrier_type;

#endif
