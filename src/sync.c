/*
 * The base of the synchronization objects (include/mproc/ipc.h): the robust
 * lock word every lock is made of (src/sync.h), and the helpers the
 * objects share.  One file per object sits on top: sync_lock.c (Lock,
 * RLock), sync_semaphore.c, sync_event.c, sync_condition.c,
 * sync_barrier.c, as CPython's SemLock underlies its locks.
 *
 * Each object is one small shared segment holding its state words and the
 * futex words it blocks on; the process-local struct holds the mapping and
 * the mproc__fx of each futex.  Nothing here is platform specific: the
 * segment, futex and liveness primitives come from the platform contract
 * (plat/seg.h, plat/futex.h, plat/core.h).
 *
 * Every blocking wait sleeps in bounded slices and looks at the shared
 * state again after each one, so a wake-up that never comes (its sender
 * died between changing the word and waking, or a waiter it woke died
 * before acting on it) costs latency, never a hang.
 */
#include <stdlib.h>
#include <string.h>

#include "sync.h"

/* How long a lock waiter spins before its first sleep (see
 * mproc__lockword_unlock for why this is also what makes the release correct).
 */
#define MPROC__SPIN_SECONDS 10e-6
/* Its first sleep is short: a backstop should a release's wake-up be missed
 * anyway (a store buffer slower than the spin). */
#define MPROC__BACKSTOP_SECONDS 0.002
/* How often a lock waiter checks that the holder's process still runs. */
#define MPROC__OWNER_CHECK_SECONDS 0.05

/* ------------------------------------------------------------------------ */
/* Helpers (described in src/sync.h)                                        */
/* ------------------------------------------------------------------------ */

void mproc__drop_handles(const mproc_handle_t *hs, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    mproc__plat_close_handle(hs[i]);
}

int mproc__export_seg(const mproc__seg *seg, const mproc__fx *const *fxs,
                      size_t nfx, mproc__wr *w, mproc__handles *hs) {
  size_t i;
  int has_sems = nfx > 0 && fxs[0]->sem != MPROC_INVALID_HANDLE, rc;
  mproc__wr_u64(w, (uint64_t)seg->size);
  mproc__wr_u8(w, (uint8_t)has_sems);
  if ((rc = mproc__handles_push(hs, seg->handle)) < 0)
    return rc;
  for (i = 0; has_sems && i < nfx; i++)
    if ((rc = mproc__handles_push(hs, fxs[i]->sem)) < 0)
      return rc;
  return MPROC_OK;
}

int mproc__import_seg(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                      size_t nfx, size_t min_size, int ok, mproc__seg *seg,
                      mproc_handle_t *sems) {
  uint64_t size = mproc__rd_u64(r);
  uint8_t has_sems = mproc__rd_u8(r);
  size_t i, need = 1 + (has_sems == 1 ? nfx : 0);
  int rc;
  ok = ok && !r->bad && has_sems <= 1 && nh == need && size >= min_size &&
       size <= (uint64_t)SIZE_MAX;
  memset(seg, 0, sizeof(*seg));
  seg->handle = MPROC_INVALID_HANDLE;
  if (nh == 0)
    return MPROC_EINVAL;
  /* Size 0 never matches a segment: the import then only closes it. */
  rc = mproc__seg_import(seg, hs[0], ok ? (size_t)size : 0);
  if (rc < 0 || !ok) {
    if (rc == MPROC_OK)
      mproc__seg_close(seg);
    mproc__drop_handles(hs + 1, nh - 1);
    return rc < 0 ? rc : MPROC_EINVAL;
  }
  for (i = 0; i < nfx; i++)
    sems[i] = has_sems ? hs[1 + i] : MPROC_INVALID_HANDLE;
  return MPROC_OK;
}

/* ------------------------------------------------------------------------ */
/* The lock word                                                             */
/* ------------------------------------------------------------------------ */

void mproc__lockword_init(mproc__lockword *lw) {
  memset((void *)lw, 0, sizeof(*lw));
}

int mproc__lockword_fx(mproc__fx *fx, mproc__lockword *lw) {
  return mproc__fx_create(fx, &lw->word, &lw->fxw);
}

/* Releases a word this thread (or process) holds.
 *
 * Why a plain store: an atomic read-modify-write costs as much as the CAS
 * of the acquire, and the target (an uncontended acquire+release
 * at least 5x faster than Python's Lock) leaves room for one.  The store
 * is followed by a plain load of nwait, which the CPU may perform before
 * the store leaves its store buffer (x86 reorders a store with a later
 * load; so does every weaker model).  A waiter that counts itself in nwait
 * just after that load would be missed, and would miss the store if it
 * read the word before the store drained: a lost wake-up.  A store buffer
 * drains in bounded time (hundreds of nanoseconds at worst; an interrupt
 * or context switch drains it at once), so the acquire slow path counts
 * itself and then spins, re-reading the word, for MPROC__SPIN_SECONDS
 * before its first sleep: any such store is visible by then.  Later
 * releasers see nwait > 0 and take the fenced path below, which is the
 * futex's ordinary protocol.  Should all that fail, the first sleep is
 * MPROC__BACKSTOP_SECONDS long and every later one a bounded slice, so a
 * missed wake-up would be a delay, not a hang. */
void mproc__lockword_unlock(mproc__lockword *lw, mproc__fx *fx) {
  /* The stamp goes first (the release store orders it): a stamp is then
   * never older than the word it sits beside, see mproc__lockword_take_dead. */
  mproc__store64_rlx(&lw->stamp, 0u);
  mproc__store32_rel(&lw->word, 0u);
  if (mproc__load32(&lw->nwait) != 0) {
    /* A full barrier, so the store above is visible before the futex
     * reads its waiter count (mproc__fx_wake's protocol). */
    (void)mproc__add32(&lw->nwait, 0u);
    mproc__fx_wake(fx, 1);
  }
}

int mproc__lockword_slow(mproc__lockword *lw, mproc__fx *fx, int recursive,
                         uint32_t me, double deadline) {
  double now = mproc__plat_now(), start = now;
  double spin_end = now + MPROC__SPIN_SECONDS;
  double next_check = now + MPROC__OWNER_CHECK_SECONDS;
  int spinning = !mproc__expired(deadline, now), slept = 0, rc;
  unsigned i = 0;
  uint32_t v, expect;
  (void)mproc__add32(&lw->nwait, 1u); /* before the spin: see the unlock */
  for (;;) {
    v = mproc__load32(&lw->word);
    if (v == 0) {
      expect = 0;
      if (mproc__cas32(&lw->word, &expect, me)) {
        rc = MPROC_OK;
        break;
      }
      continue;
    }
    if (spinning) {
      mproc__pause();
      if ((++i & 15u) == 0) {
        now = mproc__plat_now();
        spinning = now < spin_end && !mproc__expired(deadline, now);
      }
      continue;
    }
    now = mproc__plat_now();
    /* A holder that died never releases.  Its pid stays in the word, so
     * look at it now and then, and once more before giving up.  The check
     * costs system calls, so a try-acquire (or a timeout of a few ms) that
     * fails does not make it: only waits that were willing to block. */
    if (now >= next_check || (mproc__expired(deadline, now) &&
                              now - start >= MPROC__BACKSTOP_SECONDS)) {
      if (mproc__lockword_take_dead(lw)) {
        rc = MPROC_EOWNERDEAD;
        break;
      }
      now = mproc__plat_now();
      next_check = now + MPROC__OWNER_CHECK_SECONDS;
    }
    if (mproc__expired(deadline, now)) {
      rc = MPROC_ETIMEDOUT;
      break;
    }
    (void)mproc__fx_wait(
        fx, v,
        mproc__sleep_until(deadline, now,
                           slept ? next_check - now : MPROC__BACKSTOP_SECONDS));
    slept = 1;
  }
  (void)mproc__add32(&lw->nwait, (uint32_t)-1);
  if (rc != MPROC_ETIMEDOUT)
    mproc__lockword_took(lw, recursive);
  return rc;
}

int mproc__lockword_acquire(mproc__lockword *lw, mproc__fx *fx, int recursive,
                            double deadline) {
  uint32_t me = mproc__lockword_me(), expect = 0;
  int rc;
  if (mproc__cas32(&lw->word, &expect, me)) {
    mproc__lockword_took(lw, recursive);
    return MPROC_OK;
  }
  if (recursive && (rc = mproc__lockword_recurse(lw, me, expect)) != 0)
    return rc < 0 ? rc : MPROC_OK;
  return mproc__lockword_slow(lw, fx, recursive, me, deadline);
}

int mproc__lockword_release(mproc__lockword *lw, mproc__fx *fx, int recursive) {
  uint32_t v = mproc__load32(&lw->word), d;
  if (recursive) {
    if (v != mproc__lockword_me() ||
        mproc__load64_rlx(&lw->tid) != mproc__thread_id())
      return v == 0 ? MPROC_ESTATE : MPROC_EPERM;
    d = mproc__load32_rlx(&lw->depth);
    if (d > 1) {
      mproc__store32_rlx(&lw->depth, d - 1);
      return MPROC_OK;
    }
    mproc__store64_rlx(&lw->tid, 0);
    mproc__store32_rlx(&lw->depth, 0u);
    mproc__lockword_unlock(lw, fx);
    return MPROC_OK;
  }
  /* Python's Lock may be released by any process or thread: no owner
   * check.  A release racing with another release of the same acquire is
   * the caller's bug either way; one racing with a takeover of a dead
   * holder's word releases the new holder, as if it came just after. */
  if (v == 0)
    return MPROC_ESTATE;
  mproc__lockword_unlock(lw, fx);
  return MPROC_OK;
}

/* Whose the stamp is.  A holder stores it right after its CAS and a release
 * clears it before the word, so a stamp naming pid v beside word v is that
 * holder's (or, with a reused pid, a dead predecessor's: then the start
 * times differ, which is the point); one naming another pid is from before
 * the holder's store (it may have died before making it), and the pid
 * alone decides.
 *
 * Taking over: the stamp is swapped first, from exactly the value judged
 * dead to ours, so of two waiters judging the same holder only one goes
 * on, and a live holder that has just stored its stamp (after we read it)
 * makes the swap fail.  Then the word, from the dead pid to ours; should
 * that fail (the word was released meanwhile), the stamp we left names a
 * process that does not hold the word, which readers treat as stale. */
int mproc__lockword_take_dead(mproc__lockword *lw) {
  uint32_t v = mproc__load32(&lw->word), expect = v;
  uint64_t s = mproc__load64(&lw->stamp), mine = mproc__self_stamp();
  if (v == 0)
    return 0;
  if (mproc__stamp_alive(s >> 32 == v ? s : (uint64_t)v << 32))
    return 0;
  if (!mproc__cas64(&lw->stamp, &s, mine))
    return 0;
  if (!mproc__cas32(&lw->word, &expect, (uint32_t)(mine >> 32)))
    return 0;
  return 1;
}

int mproc__lockword_locked(mproc__lockword *lw) {
  return mproc__load32(&lw->word) != 0;
}

int mproc__lockword_owned(mproc__lockword *lw, int recursive) {
  if (mproc__load32(&lw->word) != mproc__lockword_me())
    return 0;
  return !recursive || mproc__load64_rlx(&lw->tid) == mproc__thread_id();
}
