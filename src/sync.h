/*
 * Internal side of the synchronization objects (src/sync.c): the robust
 * lock word every lock is made of, for other modules that want a lock on a
 * word in their own shared memory (a queue's ring, a pool's table).
 *
 * A lock word is 32 bytes of shared memory, zero = free.  The word the
 * holder CASes in is its process id, so "who holds it" is recorded by the
 * same atomic operation that takes it: a holder killed at any instant
 * leaves its pid behind, and a waiter that finds that pid dead takes the
 * lock over and is told so (MPROC_EOWNERDEAD).  Right after the CAS the
 * holder also stores its stamp (pid and start time, src/ipc.h), so a dead
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
#define mproc__load64_rlx(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define mproc__store64_rlx(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#endif

/* The deadline (mproc__plat_now() seconds) of a call given `timeout`
 * seconds; -1 (none) for a negative timeout or one past ~31 years. */
double mproc__deadline(double timeout);

/* ---- the lock word ------------------------------------------------------- */

typedef struct mproc__lockword {
  volatile uint32_t word;  /* 0 free, else the holder's pid; the futex word */
  volatile uint32_t fxw;   /* the futex's waiter count (mproc__fx) */
  volatile uint32_t nwait; /* threads in the acquire slow path */
  volatile uint32_t depth; /* recursive: the owner's recursion count */
  volatile uint64_t tid;   /* recursive: the owning thread (0 when free) */
  volatile uint64_t stamp; /* the holder's mproc__self_stamp(), stored just
                              after its CAS; 0 once released */
} mproc__lockword;

/* Zero a lock word (free).  Only before any process uses it. */
void mproc__lockword_init(mproc__lockword *lw);
/* Make the futex of a new lock word (Windows: creates its semaphore). */
int mproc__lockword_fx(mproc__fx *fx, mproc__lockword *lw);
/* The uncontended acquire of a plain lock word: one CAS, then the stamp.
 * 1 if taken, 0 if held (then call mproc__lockword_acquire). */
static MPROC__INLINE int mproc__lockword_try(mproc__lockword *lw) {
  uint32_t expect = 0;
  if (!mproc__cas32(&lw->word, &expect, (uint32_t)mproc__plat_getpid()))
    return 0;
  mproc__store64_rlx(&lw->stamp, mproc__self_stamp());
  return 1;
}
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

/* ---- the object types (registered in src/objtypes.c) --------------------- */

extern const mproc__objtype mproc__lock_type, mproc__semaphore_type,
    mproc__event_type, mproc__condition_type, mproc__barrier_type;

#endif
