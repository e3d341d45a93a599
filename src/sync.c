/*
 * Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier
 * (include/mproc/ipc.h), with Python multiprocessing's semantics.
 *
 * Each object is one small shared segment holding its state words and the
 * futex words it blocks on; the process-local struct holds the mapping and
 * the mproc__fx of each futex.  Nothing here is platform specific: the
 * segment, futex and liveness primitives come from src/ipc.h.
 *
 * Every blocking wait sleeps in bounded slices and looks at the shared
 * state again after each one, so a wake-up that never comes (its sender
 * died between changing the word and waking, or a waiter it woke died
 * before acting on it) costs latency, never a hang.
 */
#include <stdlib.h>
#include <string.h>

#include "pool.h" /* mproc__entry_find: a barrier's action */
#include "sync.h"

/* How long a lock waiter spins before its first sleep (see
 * mproc__lw_unlock for why this is also what makes the release correct). */
#define MPROC__SPIN_SECONDS 10e-6
/* Its first sleep is short: a backstop should a release's wake-up be missed
 * anyway (a store buffer slower than the spin). */
#define MPROC__BACKSTOP_SECONDS 0.002
/* How often a lock waiter checks that the holder's process still runs. */
#define MPROC__OWNER_CHECK_SECONDS 0.05
/* Longest single sleep of the other objects' waiters. */
#define MPROC__IDLE_SLICE_SECONDS 0.5
/* Longest name of a barrier's action entry. */
#define MPROC__BAR_ACTION_MAX 256

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Python: None or a negative timeout waits forever.  Anything past ~31
 * years is forever too, so the deadline arithmetic never sees infinity. */
double mproc__deadline(double timeout) {
  if (timeout < 0 || timeout > 1e9)
    return -1.0;
  return mproc__plat_now() + timeout;
}

static int mproc__expired(double deadline, double now) {
  return deadline >= 0 && now >= deadline;
}

/* The end of the next sleep: the deadline, but at most `slice` from now. */
static double mproc__sleep_until(double deadline, double now, double slice) {
  double t = now + slice;
  return deadline >= 0 && deadline < t ? deadline : t;
}

/* Our identity in a lock word.  Process ids are nonzero and fit in 32 bits
 * on both platforms (Linux pid_max <= 2^22; Windows ids are DWORDs). */
static uint32_t mproc__me(void) { return (uint32_t)mproc__plat_getpid(); }

/* Closes handles an import cannot use (imports own every handle). */
static void mproc__drop_handles(const mproc_handle_t *hs, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    mproc__plat_close_handle(hs[i]);
}

/* ---- one segment and its futexes, as they travel to a child ----------------
 * u64 segment size, u8 has_sems; handles: the segment, then (when the
 * platform's futex has one, i.e. on Windows) one semaphore per futex. */

static int mproc__export_seg(const mproc__seg *seg, const mproc__fx *const *fxs,
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

/* The other side: maps the segment (at least min_size bytes) from hs[0]
 * and hands out one semaphore per futex (MPROC_INVALID_HANDLE where the
 * platform has none).  `ok` false (the caller found the description bad)
 * fails, but still takes care of every handle, as imports must: on any
 * failure all nh handles are closed. */
static int mproc__import_seg(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                             size_t nfx, size_t min_size, int ok,
                             mproc__seg *seg, mproc_handle_t *sems) {
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

/* Bookkeeping after taking a free or dead holder's word.  Only the owner
 * writes tid and depth; another thread of the same process compares tid
 * with its own id, and can never see its own id there unless it wrote it
 * itself (a thread clears tid before it releases), so relaxed is enough. */
static void mproc__lw_took(mproc__lockword *lw, int recursive) {
  mproc__store64_rlx(&lw->stamp, mproc__self_stamp());
  if (recursive) {
    mproc__store64_rlx(&lw->tid, mproc__thread_id());
    mproc__store32_rlx(&lw->depth, 1u);
  }
}

/* The fast path after a failed CAS: a recursive re-acquire.  1 (taken), 0
 * (someone else holds it) or MPROC_EOVERFLOW. */
static int mproc__lw_recurse(mproc__lockword *lw, uint32_t me, uint32_t seen) {
  uint32_t d;
  if (seen != me || mproc__load64_rlx(&lw->tid) != mproc__thread_id())
    return 0;
  d = mproc__load32_rlx(&lw->depth);
  if (d == UINT32_MAX)
    return MPROC_EOVERFLOW;
  mproc__store32_rlx(&lw->depth, d + 1);
  return 1;
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
static void mproc__lw_unlock(mproc__lockword *lw, mproc__fx *fx) {
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

static int mproc__lw_slow(mproc__lockword *lw, mproc__fx *fx, int recursive,
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
    mproc__lw_took(lw, recursive);
  return rc;
}

int mproc__lockword_acquire(mproc__lockword *lw, mproc__fx *fx, int recursive,
                            double deadline) {
  uint32_t me = mproc__me(), expect = 0;
  int rc;
  if (mproc__cas32(&lw->word, &expect, me)) {
    mproc__lw_took(lw, recursive);
    return MPROC_OK;
  }
  if (recursive && (rc = mproc__lw_recurse(lw, me, expect)) != 0)
    return rc < 0 ? rc : MPROC_OK;
  return mproc__lw_slow(lw, fx, recursive, me, deadline);
}

int mproc__lockword_release(mproc__lockword *lw, mproc__fx *fx, int recursive) {
  uint32_t v = mproc__load32(&lw->word), d;
  if (recursive) {
    if (v != mproc__me() || mproc__load64_rlx(&lw->tid) != mproc__thread_id())
      return v == 0 ? MPROC_ESTATE : MPROC_EPERM;
    d = mproc__load32_rlx(&lw->depth);
    if (d > 1) {
      mproc__store32_rlx(&lw->depth, d - 1);
      return MPROC_OK;
    }
    mproc__store64_rlx(&lw->tid, 0);
    mproc__store32_rlx(&lw->depth, 0u);
    mproc__lw_unlock(lw, fx);
    return MPROC_OK;
  }
  /* Python's Lock may be released by any process or thread: no owner
   * check.  A release racing with another release of the same acquire is
   * the caller's bug either way; one racing with a takeover of a dead
   * holder's word releases the new holder, as if it came just after. */
  if (v == 0)
    return MPROC_ESTATE;
  mproc__lw_unlock(lw, fx);
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
  if (mproc__load32(&lw->word) != mproc__me())
    return 0;
  return !recursive || mproc__load64_rlx(&lw->tid) == mproc__thread_id();
}

/* ------------------------------------------------------------------------ */
/* Lock and RLock                                                            */
/* ------------------------------------------------------------------------ */

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

static int mproc__lock_ok(const mproc_lock *l) {
  return mproc__obj_is(l, &mproc__lock_type);
}

static mproc_lock *mproc__lock_alloc(int recursive, int kind) {
  mproc_lock *l = (mproc_lock *)mproc__obj_new(sizeof(*l), &mproc__lock_type);
  if (!l)
    return NULL;
  l->recursive = recursive;
  l->kind = kind;
  l->seg.handle = MPROC_INVALID_HANDLE;
  l->fx.sem = MPROC_INVALID_HANDLE;
  return l;
}

static void mproc__lock_destroy(mproc_lock *l) {
  if (l->fx.word)
    mproc__fx_close(&l->fx);
  if (l->kind != MPROC__LOCK_BORROWED)
    mproc__seg_close(&l->seg);
  l->hdr.magic = 0;
  free(l);
}

/* A lock whose word lives at `offset` in another object's segment. */
static int mproc__lock_view(mproc_lock **out, const mproc__seg *host,
                            size_t offset, int recursive, int create,
                            mproc_handle_t sem) {
  mproc_lock *l = mproc__lock_alloc(recursive, MPROC__LOCK_BORROWED);
  mproc__lockword *lw =
      (mproc__lockword *)((unsigned char *)host->addr + offset);
  int rc;
  *out = NULL;
  if (!l) {
    if (!create)
      mproc__drop_handles(&sem, 1);
    return MPROC_ENOMEM;
  }
  l->host = host;
  l->offset = offset;
  l->lw = lw;
  rc = create ? mproc__lockword_fx(&l->fx, lw)
              : mproc__fx_import(&l->fx, &lw->word, &lw->fxw, sem);
  if (rc < 0) {
    l->fx.word = NULL;
    mproc__lock_destroy(l);
    return rc;
  }
  *out = l;
  return MPROC_OK;
}

int mproc_lock_create(mproc_lock **out, int recursive) {
  mproc_lock *l;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (recursive != 0 && recursive != 1)
    return MPROC_EINVAL;
  if (!(l = mproc__lock_alloc(recursive, MPROC__LOCK_OWN)))
    return MPROC_ENOMEM;
  if ((rc = mproc__seg_create(&l->seg, NULL, sizeof(mproc__lockword))) < 0)
    goto fail;
  l->host = &l->seg;
  l->lw = (mproc__lockword *)l->seg.addr;
  mproc__lockword_init(l->lw);
  if ((rc = mproc__lockword_fx(&l->fx, l->lw)) < 0) {
    l->fx.word = NULL;
    goto fail;
  }
  *out = l;
  return MPROC_OK;
fail:
  mproc__lock_destroy(l);
  return rc;
}

/* The fast paths are spelled out here rather than calling
 * mproc__lockword_acquire, so an uncontended acquire is one call, one
 * cached pid load and one CAS. */
int mproc_lock_acquire(mproc_lock *lock, double timeout) {
  uint32_t me, expect = 0;
  int rc;
  if (!mproc__lock_ok(lock) || timeout != timeout)
    return MPROC_EINVAL;
  me = mproc__me();
  if (mproc__cas32(&lock->lw->word, &expect, me)) {
    mproc__lw_took(lock->lw, lock->recursive);
    return MPROC_OK;
  }
  if (lock->recursive && (rc = mproc__lw_recurse(lock->lw, me, expect)) != 0)
    return rc < 0 ? rc : MPROC_OK;
  return mproc__lw_slow(lock->lw, &lock->fx, lock->recursive, me,
                        mproc__deadline(timeout));
}

int mproc_lock_release(mproc_lock *lock) {
  if (!mproc__lock_ok(lock))
    return MPROC_EINVAL;
  if (!lock->recursive) {
    if (mproc__load32(&lock->lw->word) == 0)
      return MPROC_ESTATE;
    mproc__lw_unlock(lock->lw, &lock->fx);
    return MPROC_OK;
  }
  return mproc__lockword_release(lock->lw, &lock->fx, 1);
}

int mproc_lock_locked(mproc_lock *lock) {
  if (!mproc__lock_ok(lock))
    return MPROC_EINVAL;
  return mproc__lockword_locked(lock->lw);
}

void mproc__lock_test_plant(mproc_lock *lock, uint32_t pid) {
  uint64_t s = (uint64_t)pid << 32;
  /* Any start time but the real one (folded start times are nonzero). */
  if (mproc__stamp_alive(s | 1u))
    s |= 2u;
  else
    s |= 1u;
  mproc__store32(&lock->lw->word, pid);
  mproc__store64(&lock->lw->stamp, s);
}

mproc_lock *mproc_lock_free(mproc_lock *lock) {
  /* A condition's own lock and a child's argument belong to their owner. */
  if (mproc__lock_ok(lock) && lock->kind == MPROC__LOCK_OWN)
    mproc__lock_destroy(lock);
  return NULL;
}

/* u8 recursive, u64 offset of the word, then the host segment (any lock
 * travels as its host's segment, so a condition's lock can be passed on its
 * own too). */
static int mproc__lock_export(const void *obj, mproc__wr *w,
                              mproc__handles *hs) {
  const mproc_lock *l = (const mproc_lock *)obj;
  const mproc__fx *fxs[1];
  if (!mproc__lock_ok(l))
    return MPROC_EINVAL;
  fxs[0] = &l->fx;
  mproc__wr_u8(w, (uint8_t)l->recursive);
  mproc__wr_u64(w, (uint64_t)l->offset);
  return mproc__export_seg(l->host, fxs, 1, w, hs);
}

static int mproc__lock_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                              void **out) {
  uint8_t recursive = mproc__rd_u8(r);
  uint64_t offset = mproc__rd_u64(r);
  mproc_lock *l = mproc__lock_alloc(recursive, MPROC__LOCK_IMPORTED);
  mproc_handle_t sem = MPROC_INVALID_HANDLE;
  int ok = l && recursive <= 1 && offset % 8 == 0 &&
           offset <= (uint64_t)SIZE_MAX - sizeof(mproc__lockword);
  size_t off = ok ? (size_t)offset : 0;
  mproc__seg seg;
  int rc;
  *out = NULL;
  rc = mproc__import_seg(r, hs, nh, 1, off + sizeof(mproc__lockword), ok, &seg,
                         &sem);
  if (rc < 0) {
    if (l)
      mproc__lock_destroy(l);
    return l ? rc : MPROC_ENOMEM;
  }
  l->seg = seg;
  l->host = &l->seg;
  l->offset = off;
  l->lw = (mproc__lockword *)((unsigned char *)l->seg.addr + off);
  if ((rc = mproc__fx_import(&l->fx, &l->lw->word, &l->lw->fxw, sem)) < 0) {
    l->fx.word = NULL;
    mproc__lock_destroy(l);
    return rc;
  }
  *out = l;
  return MPROC_OK;
}

static void mproc__lock_objfree(void *obj) {
  if (mproc__lock_ok((mproc_lock *)obj))
    mproc__lock_destroy((mproc_lock *)obj);
}

const mproc__objtype mproc__lock_type = {MPROC_OBJ_LOCK, mproc__lock_export,
                                         mproc__lock_import,
                                         mproc__lock_objfree};

/* ------------------------------------------------------------------------ */
/* Semaphore and BoundedSemaphore                                            */
/* ------------------------------------------------------------------------ */

typedef struct mproc__sem_shared {
  volatile uint32_t value; /* the futex word: waiters sleep while it is 0 */
  volatile uint32_t fxw;
  uint32_t max; /* bounded: the initial value; else MPROC_SEM_VALUE_MAX */
  uint32_t bounded;
} mproc__sem_shared;

struct mproc_semaphore {
  mproc__obj hdr;
  mproc__seg seg;
  mproc__sem_shared *sh;
  mproc__fx fx;
  int imported;
};

static int mproc__sem_ok(const mproc_semaphore *s) {
  return mproc__obj_is(s, &mproc__semaphore_type);
}

static mproc_semaphore *mproc__sem_alloc(void) {
  mproc_semaphore *s = (mproc_semaphore *)mproc__obj_new(sizeof(*s), &mproc__semaphore_type);
  if (!s)
    return NULL;
  s->seg.handle = MPROC_INVALID_HANDLE;
  return s;
}

static void mproc__sem_destroy(mproc_semaphore *s) {
  if (s->fx.word)
    mproc__fx_close(&s->fx);
  mproc__seg_close(&s->seg);
  s->hdr.magic = 0;
  free(s);
}

int mproc_semaphore_create(mproc_semaphore **out, unsigned value, int bounded) {
  mproc_semaphore *s;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if ((bounded != 0 && bounded != 1) || value > MPROC_SEM_VALUE_MAX)
    return MPROC_EINVAL;
  if (!(s = mproc__sem_alloc()))
    return MPROC_ENOMEM;
  if ((rc = mproc__seg_create(&s->seg, NULL, sizeof(mproc__sem_shared))) < 0)
    goto fail;
  s->sh = (mproc__sem_shared *)s->seg.addr;
  s->sh->value = (uint32_t)value;
  s->sh->max = bounded ? (uint32_t)value : (uint32_t)MPROC_SEM_VALUE_MAX;
  s->sh->bounded = (uint32_t)bounded;
  if ((rc = mproc__fx_create(&s->fx, &s->sh->value, &s->sh->fxw)) < 0)
    goto fail;
  *out = s;
  return MPROC_OK;
fail:
  s->fx.word = NULL;
  mproc__sem_destroy(s);
  return rc;
}

int mproc_semaphore_acquire(mproc_semaphore *sem, double timeout) {
  volatile uint32_t *word;
  double deadline, now;
  uint32_t v;
  if (!mproc__sem_ok(sem) || timeout != timeout)
    return MPROC_EINVAL;
  word = &sem->sh->value;
  v = mproc__load32(word);
  while (v > 0)
    if (mproc__cas32(word, &v, v - 1))
      return MPROC_OK;
  deadline = mproc__deadline(timeout);
  for (;;) {
    v = mproc__load32(word);
    if (v > 0) {
      if (mproc__cas32(word, &v, v - 1))
        return MPROC_OK;
      continue;
    }
    now = mproc__plat_now();
    if (mproc__expired(deadline, now))
      return MPROC_ETIMEDOUT;
    /* Slices: a waiter woken for a release may die before taking it. */
    (void)mproc__fx_wait(
        &sem->fx, 0u,
        mproc__sleep_until(deadline, now, MPROC__IDLE_SLICE_SECONDS));
  }
}

int mproc_semaphore_release(mproc_semaphore *sem) {
  volatile uint32_t *word;
  uint32_t v, max;
  if (!mproc__sem_ok(sem))
    return MPROC_EINVAL;
  word = &sem->sh->value;
  max = sem->sh->max;
  if (max > MPROC_SEM_VALUE_MAX)
    max = MPROC_SEM_VALUE_MAX;
  v = mproc__load32(word);
  do {
    if (v >= max)
      return MPROC_EOVERFLOW;
  } while (!mproc__cas32(word, &v, v + 1));
  mproc__fx_wake(&sem->fx, 1);
  return MPROC_OK;
}

int mproc_semaphore_value(mproc_semaphore *sem, unsigned *value) {
  if (!mproc__sem_ok(sem) || !value)
    return MPROC_EINVAL;
  *value = (unsigned)mproc__load32(&sem->sh->value);
  return MPROC_OK;
}

mproc_semaphore *mproc_semaphore_free(mproc_semaphore *sem) {
  if (mproc__sem_ok(sem) && !sem->imported)
    mproc__sem_destroy(sem);
  return NULL;
}

static int mproc__sem_export(const void *obj, mproc__wr *w,
                             mproc__handles *hs) {
  const mproc_semaphore *s = (const mproc_semaphore *)obj;
  const mproc__fx *fxs[1];
  if (!mproc__sem_ok(s))
    return MPROC_EINVAL;
  fxs[0] = &s->fx;
  return mproc__export_seg(&s->seg, fxs, 1, w, hs);
}

static int mproc__sem_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                             void **out) {
  mproc_semaphore *s = mproc__sem_alloc();
  mproc_handle_t sem = MPROC_INVALID_HANDLE;
  mproc__seg seg;
  int rc;
  *out = NULL;
  rc = mproc__import_seg(r, hs, nh, 1, sizeof(mproc__sem_shared), s != NULL,
                         &seg, &sem);
  if (rc < 0) {
    if (s)
      mproc__sem_destroy(s);
    return s ? rc : MPROC_ENOMEM;
  }
  s->seg = seg;
  s->imported = 1;
  s->sh = (mproc__sem_shared *)s->seg.addr;
  if ((rc = mproc__fx_import(&s->fx, &s->sh->value, &s->sh->fxw, sem)) < 0) {
    s->fx.word = NULL;
    mproc__sem_destroy(s);
    return rc;
  }
  *out = s;
  return MPROC_OK;
}

static void mproc__sem_objfree(void *obj) {
  if (mproc__sem_ok((mproc_semaphore *)obj))
    mproc__sem_destroy((mproc_semaphore *)obj);
}

const mproc__objtype mproc__semaphore_type = {
    MPROC_OBJ_SEMAPHORE, mproc__sem_export, mproc__sem_import,
    mproc__sem_objfree};

/* ------------------------------------------------------------------------ */
/* Event                                                                     */
/* ------------------------------------------------------------------------ */

/* word = generation << 1 | flag.  set() bumps the generation, so a waiter
 * that saw the flag clear returns when the word changes, even if clear()
 * came right after set() (threading.Event's rule: the wait was notified). */
typedef struct mproc__event_shared {
  volatile uint32_t word;
  volatile uint32_t fxw;
} mproc__event_shared;

struct mproc_event {
  mproc__obj hdr;
  mproc__seg seg;
  mproc__event_shared *sh;
  mproc__fx fx;
  int imported;
};

static int mproc__event_ok(const mproc_event *e) {
  return mproc__obj_is(e, &mproc__event_type);
}

static mproc_event *mproc__event_alloc(void) {
  mproc_event *e = (mproc_event *)mproc__obj_new(sizeof(*e), &mproc__event_type);
  if (!e)
    return NULL;
  e->seg.handle = MPROC_INVALID_HANDLE;
  return e;
}

static void mproc__event_destroy(mproc_event *e) {
  if (e->fx.word)
    mproc__fx_close(&e->fx);
  mproc__seg_close(&e->seg);
  e->hdr.magic = 0;
  free(e);
}

int mproc_event_create(mproc_event **out) {
  mproc_event *e;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (!(e = mproc__event_alloc()))
    return MPROC_ENOMEM;
  if ((rc = mproc__seg_create(&e->seg, NULL, sizeof(mproc__event_shared))) < 0)
    goto fail;
  e->sh = (mproc__event_shared *)e->seg.addr;
  if ((rc = mproc__fx_create(&e->fx, &e->sh->word, &e->sh->fxw)) < 0)
    goto fail;
  *out = e;
  return MPROC_OK;
fail:
  e->fx.word = NULL;
  mproc__event_destroy(e);
  return rc;
}

int mproc_event_set(mproc_event *ev) {
  uint32_t v;
  if (!mproc__event_ok(ev))
    return MPROC_EINVAL;
  v = mproc__load32(&ev->sh->word);
  do {
    if (v & 1u)
      return MPROC_OK;
  } while (!mproc__cas32(&ev->sh->word, &v, (v + 2u) | 1u));
  mproc__fx_wake(&ev->fx, UINT32_MAX);
  return MPROC_OK;
}

int mproc_event_clear(mproc_event *ev) {
  uint32_t v;
  if (!mproc__event_ok(ev))
    return MPROC_EINVAL;
  v = mproc__load32(&ev->sh->word);
  do {
    if (!(v & 1u))
      return MPROC_OK;
  } while (!mproc__cas32(&ev->sh->word, &v, v & ~1u));
  return MPROC_OK;
}

int mproc_event_is_set(mproc_event *ev) {
  if (!mproc__event_ok(ev))
    return MPROC_EINVAL;
  return (int)(mproc__load32(&ev->sh->word) & 1u);
}

int mproc_event_wait(mproc_event *ev, double timeout) {
  double deadline, now;
  uint32_t seen;
  if (!mproc__event_ok(ev) || timeout != timeout)
    return MPROC_EINVAL;
  seen = mproc__load32(&ev->sh->word);
  if (seen & 1u)
    return MPROC_OK;
  deadline = mproc__deadline(timeout);
  for (;;) {
    /* Only set() changes a clear word, so any change means "was set". */
    if (mproc__load32(&ev->sh->word) != seen)
      return MPROC_OK;
    now = mproc__plat_now();
    if (mproc__expired(deadline, now))
      return MPROC_ETIMEDOUT;
    (void)mproc__fx_wait(
        &ev->fx, seen,
        mproc__sleep_until(deadline, now, MPROC__IDLE_SLICE_SECONDS));
  }
}

mproc_event *mproc_event_free(mproc_event *ev) {
  if (mproc__event_ok(ev) && !ev->imported)
    mproc__event_destroy(ev);
  return NULL;
}

static int mproc__event_export(const void *obj, mproc__wr *w,
                               mproc__handles *hs) {
  const mproc_event *e = (const mproc_event *)obj;
  const mproc__fx *fxs[1];
  if (!mproc__event_ok(e))
    return MPROC_EINVAL;
  fxs[0] = &e->fx;
  return mproc__export_seg(&e->seg, fxs, 1, w, hs);
}

static int mproc__event_import(mproc__rd *r, const mproc_handle_t *hs,
                               size_t nh, void **out) {
  mproc_event *e = mproc__event_alloc();
  mproc_handle_t sem = MPROC_INVALID_HANDLE;
  mproc__seg seg;
  int rc;
  *out = NULL;
  rc = mproc__import_seg(r, hs, nh, 1, sizeof(mproc__event_shared), e != NULL,
                         &seg, &sem);
  if (rc < 0) {
    if (e)
      mproc__event_destroy(e);
    return e ? rc : MPROC_ENOMEM;
  }
  e->seg = seg;
  e->imported = 1;
  e->sh = (mproc__event_shared *)e->seg.addr;
  if ((rc = mproc__fx_import(&e->fx, &e->sh->word, &e->sh->fxw, sem)) < 0) {
    e->fx.word = NULL;
    mproc__event_destroy(e);
    return rc;
  }
  *out = e;
  return MPROC_OK;
}

static void mproc__event_objfree(void *obj) {
  if (mproc__event_ok((mproc_event *)obj))
    mproc__event_destroy((mproc_event *)obj);
}

const mproc__objtype mproc__event_type = {MPROC_OBJ_EVENT, mproc__event_export,
                                          mproc__event_import,
                                          mproc__event_objfree};

/* ------------------------------------------------------------------------ */
/* Condition                                                                 */
/* ------------------------------------------------------------------------ *
 * A waiter takes a slot (under the condition's lock) stamped with a ticket,
 * reads the sequence number, releases the lock and sleeps on the sequence
 * futex.  notify(n) (under the lock) marks the n oldest waiting slots
 * NOTIFIED, bumps the sequence and wakes every sleeper; those not marked go
 * back to sleep.  So notify(n) wakes at most n waiters, first come first
 * served, and never one that began waiting after it (a bare sequence
 * counter would let every waiter that looks at the right moment through).
 * A waiter that times out frees its slot with a CAS that loses to a notify
 * marking it: then it was notified and says so (Python would drop that
 * notification).
 *
 * Past MPROC__COND_SLOTS concurrent waiters the extra ones wait without a
 * slot and take any notify as theirs (spurious wake-ups, which
 * Condition.wait allows).  A waiter process killed while waiting keeps its
 * slot until notify(n) picks it: notify checks that the waiter's process
 * still runs (a system call or two, only for waiters of other processes),
 * frees a dead one's slot and picks the next, so a notification always
 * goes to a live waiter.  (notify_all marks every slot; a dead waiter's
 * mark costs nothing.)  Dead waiters' slots are also reclaimed when the
 * table is full. */

#define MPROC__COND_SLOTS 128

enum {
  MPROC__SLOT_FREE = 0,
  MPROC__SLOT_WAITING = 1,
  MPROC__SLOT_NOTIFIED = 2
};

typedef struct mproc__cond_slot {
  volatile uint32_t state;
  uint32_t pad;
  volatile uint64_t stamp;  /* the waiter's process (mproc__self_stamp) */
  volatile uint64_t ticket; /* arrival order */
} mproc__cond_slot;

typedef struct mproc__cond_shared {
  mproc__lockword lock;  /* the condition's own RLock (unused with a user
                            lock) */
  volatile uint32_t seq; /* futex word: bumped by every effective notify */
  volatile uint32_t seqw;
  volatile uint32_t noverflow; /* waiters without a slot */
  uint32_t pad;
  volatile uint64_t next_ticket; /* under the lock */
  mproc__cond_slot slots[MPROC__COND_SLOTS];
} mproc__cond_shared;

struct mproc_condition {
  mproc__obj hdr;
  mproc__seg seg;
  mproc__cond_shared *sh;
  mproc__fx seqfx;
  mproc_lock *lock;
  int own_lock;  /* lock is a view of sh->lock */
  int free_lock; /* lock is freed with the condition */
  int imported;
};

static int mproc__cond_ok(const mproc_condition *c) {
  return mproc__obj_is(c, &mproc__condition_type) && mproc__lock_ok(c->lock);
}

static mproc_condition *mproc__cond_alloc(void) {
  mproc_condition *c = (mproc_condition *)mproc__obj_new(sizeof(*c), &mproc__condition_type);
  if (!c)
    return NULL;
  c->seg.handle = MPROC_INVALID_HANDLE;
  return c;
}

static void mproc__cond_destroy(mproc_condition *c) {
  if (c->lock && c->free_lock)
    mproc__lock_destroy(c->lock);
  if (c->seqfx.word)
    mproc__fx_close(&c->seqfx);
  mproc__seg_close(&c->seg);
  c->hdr.magic = 0;
  free(c);
}

int mproc_condition_create(mproc_condition **out, mproc_lock *lock) {
  mproc_condition *c;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (lock && !mproc__lock_ok(lock))
    return MPROC_EINVAL;
  if (!(c = mproc__cond_alloc()))
    return MPROC_ENOMEM;
  if ((rc = mproc__seg_create(&c->seg, NULL, sizeof(mproc__cond_shared))) < 0)
    goto fail;
  c->sh = (mproc__cond_shared *)c->seg.addr;
  if ((rc = mproc__fx_create(&c->seqfx, &c->sh->seq, &c->sh->seqw)) < 0) {
    c->seqfx.word = NULL;
    goto fail;
  }
  if (lock) {
    c->lock = lock;
  } else {
    mproc__lockword_init(&c->sh->lock);
    rc = mproc__lock_view(&c->lock, &c->seg, offsetof(mproc__cond_shared, lock),
                          1, 1, MPROC_INVALID_HANDLE);
    if (rc < 0)
      goto fail;
    c->own_lock = c->free_lock = 1;
  }
  *out = c;
  return MPROC_OK;
fail:
  mproc__cond_destroy(c);
  return rc;
}

mproc_lock *mproc_condition_lock(mproc_condition *cond) {
  return mproc__cond_ok(cond) ? cond->lock : NULL;
}

int mproc_condition_acquire(mproc_condition *cond, double timeout) {
  if (!mproc__cond_ok(cond))
    return MPROC_EINVAL;
  return mproc_lock_acquire(cond->lock, timeout);
}

int mproc_condition_release(mproc_condition *cond) {
  if (!mproc__cond_ok(cond))
    return MPROC_EINVAL;
  return mproc_lock_release(cond->lock);
}

/* Frees the slots of waiters whose process is gone (table full only: the
 * liveness check is a system call or two per slot).  Under the lock. */
static int mproc__cond_reclaim(mproc__cond_shared *sh) {
  int i, freed = 0;
  for (i = 0; i < MPROC__COND_SLOTS; i++) {
    uint32_t st = mproc__load32(&sh->slots[i].state);
    if (st != MPROC__SLOT_FREE &&
        !mproc__stamp_alive(mproc__load64(&sh->slots[i].stamp)) &&
        mproc__cas32(&sh->slots[i].state, &st, MPROC__SLOT_FREE))
      freed++;
  }
  return freed;
}

/* A slot for a new waiter, or -1 (overflow).  Under the lock, so tickets
 * follow the order of wait() calls and notify sees every registered slot;
 * a slot turns FREE outside the lock only by its own waiter leaving. */
static int mproc__cond_claim(mproc__cond_shared *sh) {
  int i, pass;
  for (pass = 0; pass < 2; pass++) {
    for (i = 0; i < MPROC__COND_SLOTS; i++) {
      mproc__cond_slot *s = &sh->slots[i];
      if (mproc__load32(&s->state) == MPROC__SLOT_FREE) {
        s->ticket = sh->next_ticket;
        sh->next_ticket = sh->next_ticket + 1;
        s->stamp = mproc__self_stamp();
        mproc__store32(&s->state, MPROC__SLOT_WAITING);
        return i;
      }
    }
    if (pass == 0 && mproc__cond_reclaim(sh) == 0)
      break;
  }
  (void)mproc__add32(&sh->noverflow, 1u);
  return -1;
}

/* Sleeps until the slot is notified or the deadline passes (the lock is
 * not held).  0 or MPROC_ETIMEDOUT; the slot is left FREE. */
static int mproc__cond_sleep(mproc_condition *c, int slot, uint32_t seq0,
                             double deadline) {
  mproc__cond_shared *sh = c->sh;
  volatile uint32_t *st = slot >= 0 ? &sh->slots[slot].state : NULL;
  uint32_t seq, expect;
  double now;
  for (;;) {
    /* The sequence first: a notify marks the slot before it bumps the
     * sequence, so if the slot still reads WAITING below, the bump is yet
     * to come and the futex wait returns at once when it does. */
    seq = mproc__load32(&sh->seq);
    if (st ? mproc__load32(st) == MPROC__SLOT_NOTIFIED : seq != seq0)
      break;
    now = mproc__plat_now();
    if (mproc__expired(deadline, now)) {
      if (!st) {
        (void)mproc__add32(&sh->noverflow, (uint32_t)-1);
        return MPROC_ETIMEDOUT;
      }
      expect = MPROC__SLOT_WAITING;
      if (mproc__cas32(st, &expect, MPROC__SLOT_FREE))
        return MPROC_ETIMEDOUT;
      break; /* notified at the last moment */
    }
    (void)mproc__fx_wait(
        &c->seqfx, seq,
        mproc__sleep_until(deadline, now, MPROC__IDLE_SLICE_SECONDS));
  }
  if (st)
    mproc__store32(st, MPROC__SLOT_FREE);
  else
    (void)mproc__add32(&sh->noverflow, (uint32_t)-1);
  return MPROC_OK;
}

int mproc_condition_wait(mproc_condition *cond, double timeout) {
  mproc_lock *lk;
  uint32_t depth = 1, seq0;
  double deadline;
  int slot, rc, rc2;
  if (!mproc__cond_ok(cond) || timeout != timeout)
    return MPROC_EINVAL;
  lk = cond->lock;
  if (!mproc__lockword_owned(lk->lw, lk->recursive))
    return MPROC_ESTATE;
  deadline = mproc__deadline(timeout);
  slot = mproc__cond_claim(cond->sh);
  seq0 = mproc__load32(&cond->sh->seq);
  /* Release every level of an RLock, as Python's Condition does, and put
   * the count back once it is ours again. */
  if (lk->recursive) {
    depth = mproc__load32_rlx(&lk->lw->depth);
    mproc__store32_rlx(&lk->lw->depth, 1u);
  }
  rc = mproc__lockword_release(lk->lw, &lk->fx, lk->recursive);
  if (rc < 0) /* cannot happen: we own it */
    return rc;
  rc = mproc__cond_sleep(cond, slot, seq0, deadline);
  rc2 = mproc__lockword_acquire(lk->lw, &lk->fx, lk->recursive, -1.0);
  if (lk->recursive)
    mproc__store32_rlx(&lk->lw->depth, depth);
  return rc2 == MPROC_EOWNERDEAD ? rc2 : rc;
}

int mproc_condition_wait_for(mproc_condition *cond, int (*pred)(void *ctx),
                             void *ctx, double timeout) {
  double deadline, left;
  int rc;
  if (!mproc__cond_ok(cond) || !pred || timeout != timeout)
    return MPROC_EINVAL;
  if (!mproc__lockword_owned(cond->lock->lw, cond->lock->recursive))
    return MPROC_ESTATE;
  deadline = mproc__deadline(timeout);
  /* Python's loop: one deadline for all the waits, the predicate checked
   * once more after the last one. */
  while (!pred(ctx)) {
    left = -1.0;
    if (deadline >= 0) {
      left = deadline - mproc__plat_now();
      if (left <= 0)
        return MPROC_ETIMEDOUT;
    }
    rc = mproc_condition_wait(cond, left);
    /* The lock is held again, but what it protects may be half-updated:
     * the caller must repair it before trusting the predicate. */
    if (rc == MPROC_EOWNERDEAD || (rc < 0 && rc != MPROC_ETIMEDOUT))
      return rc;
  }
  return MPROC_OK;
}

/* Does a slot's waiter still run?  A waiter of this process does. */
static int mproc__cond_alive(mproc__cond_slot *slot) {
  uint64_t st = mproc__load64(&slot->stamp);
  return st == mproc__self_stamp() || mproc__stamp_alive(st);
}

static int mproc__cond_notify(mproc_condition *cond, uint32_t n) {
  mproc__cond_shared *sh;
  uint32_t done = 0, expect;
  int i, best;
  if (!mproc__cond_ok(cond))
    return MPROC_EINVAL;
  if (!mproc__lockword_owned(cond->lock->lw, cond->lock->recursive))
    return MPROC_ESTATE;
  sh = cond->sh;
  if (n >= MPROC__COND_SLOTS) {
    /* Everyone: one pass. */
    for (i = 0; i < MPROC__COND_SLOTS; i++) {
      expect = MPROC__SLOT_WAITING;
      if (mproc__cas32(&sh->slots[i].state, &expect, MPROC__SLOT_NOTIFIED))
        done++;
    }
  } else {
    while (done < n) {
      uint64_t best_ticket = 0;
      best = -1;
      for (i = 0; i < MPROC__COND_SLOTS; i++)
        if (mproc__load32(&sh->slots[i].state) == MPROC__SLOT_WAITING &&
            (best < 0 || sh->slots[i].ticket < best_ticket)) {
          best = i;
          best_ticket = sh->slots[i].ticket;
        }
      if (best < 0)
        break;
      expect = MPROC__SLOT_WAITING;
      if (!mproc__cond_alive(&sh->slots[best])) {
        /* Killed while waiting: it would swallow the notification. */
        (void)mproc__cas32(&sh->slots[best].state, &expect, MPROC__SLOT_FREE);
        continue;
      }
      /* Fails only if that waiter timed out meanwhile: pick again. */
      if (mproc__cas32(&sh->slots[best].state, &expect, MPROC__SLOT_NOTIFIED))
        done++;
    }
  }
  if (done > 0 || mproc__load32(&sh->noverflow) != 0) {
    (void)mproc__add32(&sh->seq, 1u);
    mproc__fx_wake(&cond->seqfx, UINT32_MAX);
  }
  return MPROC_OK;
}

int mproc_condition_notify(mproc_condition *cond, unsigned n) {
  if (n == 0) {
    if (!mproc__cond_ok(cond))
      return MPROC_EINVAL;
    return mproc__lockword_owned(cond->lock->lw, cond->lock->recursive)
               ? MPROC_OK
               : MPROC_ESTATE;
  }
  return mproc__cond_notify(cond, (uint32_t)n);
}

int mproc_condition_notify_all(mproc_condition *cond) {
  return mproc__cond_notify(cond, UINT32_MAX);
}

mproc_condition *mproc_condition_free(mproc_condition *cond) {
  if (mproc__cond_ok(cond) && !cond->imported)
    mproc__cond_destroy(cond);
  return NULL;
}

/* u8 own_lock, then the segment (futexes: the sequence, and the own lock's
 * when own_lock); a user's lock follows as u32 handle count, u32 length,
 * its own description, and its handles come after the condition's. */
static int mproc__cond_export(const void *obj, mproc__wr *w,
                              mproc__handles *hs) {
  const mproc_condition *c = (const mproc_condition *)obj;
  const mproc__fx *fxs[2];
  mproc__wr lw = {NULL, 0, 0, 0};
  size_t before;
  int rc;
  if (!mproc__cond_ok(c))
    return MPROC_EINVAL;
  fxs[0] = &c->seqfx;
  fxs[1] = &c->lock->fx;
  mproc__wr_u8(w, (uint8_t)c->own_lock);
  if ((rc = mproc__export_seg(&c->seg, fxs, c->own_lock ? 2 : 1, w, hs)) < 0)
    return rc;
  if (c->own_lock)
    return MPROC_OK;
  before = hs->n;
  rc = mproc__lock_export(c->lock, &lw, hs);
  if (rc == MPROC_OK && lw.oom)
    rc = MPROC_ENOMEM;
  if (rc == MPROC_OK) {
    mproc__wr_u32(w, (uint32_t)(hs->n - before));
    mproc__wr_u32(w, (uint32_t)lw.len);
    mproc__wr_bytes(w, lw.buf, lw.len);
  }
  free(lw.buf);
  return rc;
}

static int mproc__cond_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                              void **out) {
  mproc_condition *c = mproc__cond_alloc();
  uint8_t own = mproc__rd_u8(r);
  mproc_handle_t sems[2] = {MPROC_INVALID_HANDLE, MPROC_INVALID_HANDLE};
  size_t nfx = own ? 2 : 1, mine, lock_nh = 0, lock_len = 0;
  const unsigned char *lock_blob = NULL;
  mproc__rd probe = *r, lr;
  mproc__seg seg;
  void *lock = NULL;
  int rc, ok;
  *out = NULL;
  /* How many handles are the condition's: its segment's description says
   * whether futexes carry semaphores; look ahead without consuming. */
  (void)mproc__rd_u64(&probe);
  mine = 1 + (mproc__rd_u8(&probe) == 1 ? nfx : 0);
  ok = c && own <= 1 && !probe.bad && (own ? mine == nh : mine <= nh);
  rc = mproc__import_seg(r, hs, ok ? mine : nh, nfx, sizeof(mproc__cond_shared),
                         ok, &seg, sems);
  if (rc < 0) {
    if (c)
      mproc__cond_destroy(c);
    return c ? rc : MPROC_ENOMEM;
  }
  c->seg = seg;
  c->imported = 1;
  c->sh = (mproc__cond_shared *)c->seg.addr;
  if (!own) {
    lock_nh = mproc__rd_u32(r);
    lock_len = mproc__rd_u32(r);
    lock_blob = mproc__rd_bytes(r, lock_len);
  }
  /* From here every handle goes to an importer that closes it on failure. */
  rc = mproc__fx_import(&c->seqfx, &c->sh->seq, &c->sh->seqw, sems[0]);
  if (rc < 0)
    c->seqfx.word = NULL;
  if (own) {
    if (rc == MPROC_OK)
      rc = mproc__lock_view(&c->lock, &c->seg,
                            offsetof(mproc__cond_shared, lock), 1, 0, sems[1]);
    else
      mproc__drop_handles(&sems[1], 1);
    c->own_lock = c->free_lock = 1;
  } else if (r->bad || !lock_blob || lock_nh != nh - mine) {
    mproc__drop_handles(hs + mine, nh - mine);
    rc = MPROC_EINVAL;
  } else {
    lr.p = lock_blob;
    lr.left = lock_len;
    lr.bad = 0;
    {
      int rc2 = mproc__lock_import(&lr, hs + mine, lock_nh, &lock);
      if (rc2 == MPROC_OK && (lr.bad || lr.left != 0)) {
        mproc__lock_objfree(lock);
        lock = NULL;
        rc2 = MPROC_EINVAL;
      }
      if (rc == MPROC_OK)
        rc = rc2;
      c->lock = (mproc_lock *)lock;
      c->free_lock = 1;
    }
  }
  if (rc < 0) {
    if (!c->lock)
      c->free_lock = 0;
    mproc__cond_destroy(c);
    return rc;
  }
  *out = c;
  return MPROC_OK;
}

static void mproc__cond_objfree(void *obj) {
  if (mproc__cond_ok((mproc_condition *)obj))
    mproc__cond_destroy((mproc_condition *)obj);
}

const mproc__objtype mproc__condition_type = {
    MPROC_OBJ_CONDITION, mproc__cond_export, mproc__cond_import,
    mproc__cond_objfree};

/* ------------------------------------------------------------------------ */
/* Barrier                                                                   */
/* ------------------------------------------------------------------------ *
 * threading.Barrier's algorithm (which multiprocessing reuses), on an
 * internal lock word and a sequence futex that every state change bumps:
 * parties arrive while FILLING; the last one runs the action (ACTION, the
 * lock released meanwhile) and switches to DRAINING, and the others leave;
 * the last to leave switches back to FILLING.  Arrivals that find it
 * DRAINING or RESETTING wait for the next cycle.
 *
 * Parties that die.  Each party inside wait() holds a slot with its stamp
 * (src/ipc.h).  A party killed while the barrier waits for it would
 * otherwise count as arrived for ever: the barrier would open without it,
 * and with the count never dropping to zero a reset could not finish.  So
 * the last arrival checks every other process's slot before opening, the
 * waiters check a few slots each slice, and reset checks them all; a dead
 * party is counted out and breaks a barrier still waiting for it. */

enum {
  MPROC__BAR_FILLING = 0,
  MPROC__BAR_DRAINING = 1,
  MPROC__BAR_RESETTING = 2,
  MPROC__BAR_BROKEN = 3,
  MPROC__BAR_ACTION = 4
};

/* Slots kept: past this many parties, the extra ones are not watched. */
#define MPROC__BAR_SLOTS_MAX 1024u
/* How often a waiter looks at other parties' liveness ... */
#define MPROC__BAR_SLICE_SECONDS 0.1
/* ... and how many other processes' slots it checks each time. */
#define MPROC__BAR_CHECKS 8u
/* Internal lock waits get this much past the caller's deadline: a
 * critical section lasts microseconds. */
#define MPROC__BAR_LOCK_GRACE 0.01
/* A wait(), lock lost (see mproc__bar_abandon). */
#define MPROC__BAR_LOST 1

typedef struct mproc__bar_shared {
  mproc__lockword lock;
  volatile uint32_t seq; /* futex word */
  volatile uint32_t seqw;
  volatile uint32_t parties;
  volatile uint32_t count;  /* parties inside wait(); changed atomically */
  volatile uint32_t state;  /* under the lock; read without it by queries */
  volatile uint32_t nslots; /* min(parties, MPROC__BAR_SLOTS_MAX) */
  volatile uint64_t slots[1]; /* nslots: stamps of parties inside wait() */
} mproc__bar_shared;

struct mproc_barrier {
  mproc__obj hdr;
  mproc__seg seg;
  mproc__bar_shared *sh;
  mproc__fx lockfx, seqfx;
  unsigned parties, nslots;
  char *action;   /* entry name or NULL */
  double timeout; /* default; negative: none */
  int imported;
};

static size_t mproc__bar_size(unsigned nslots) {
  return offsetof(mproc__bar_shared, slots) + (size_t)nslots * sizeof(uint64_t);
}

static int mproc__bar_ok(const mproc_barrier *b) {
  return mproc__obj_is(b, &mproc__barrier_type);
}

static mproc_barrier *mproc__bar_alloc(void) {
  mproc_barrier *b = (mproc_barrier *)mproc__obj_new(sizeof(*b), &mproc__barrier_type);
  if (!b)
    return NULL;
  b->seg.handle = MPROC_INVALID_HANDLE;
  b->timeout = -1.0;
  return b;
}

static void mproc__bar_destroy(mproc_barrier *b) {
  if (b->lockfx.word)
    mproc__fx_close(&b->lockfx);
  if (b->seqfx.word)
    mproc__fx_close(&b->seqfx);
  mproc__seg_close(&b->seg);
  free(b->action);
  b->hdr.magic = 0;
  free(b);
}

/* Wakes everyone waiting for a state change. */
static void mproc__bar_bump(mproc_barrier *b) {
  (void)mproc__add32(&b->sh->seq, 1u);
  mproc__fx_wake(&b->seqfx, UINT32_MAX);
}

/* Counts out the parties whose process died, checking the slots after
 * `from` (-1: from the first), at most `limit` of other processes (a slot
 * of this process is alive).  A barrier still waiting for a dead party is
 * broken; one draining or resetting may reach zero and refill.  Under the
 * lock.  Returns how many died. */
static unsigned mproc__bar_reap(mproc_barrier *b, int from, unsigned limit) {
  mproc__bar_shared *sh = b->sh;
  uint64_t mine = mproc__self_stamp(), st;
  unsigned k, checked = 0, died = 0, i;
  for (k = 1; k <= b->nslots && checked < limit; k++) {
    i = (unsigned)((long)from + (long)k) % b->nslots;
    st = mproc__load64(&sh->slots[i]);
    if (st == 0 || st == mine)
      continue;
    checked++;
    if (mproc__stamp_alive(st))
      continue;
    mproc__store64(&sh->slots[i], 0u);
    (void)mproc__add32(&sh->count, (uint32_t)-1);
    died++;
  }
  if (died == 0)
    return 0;
  st = sh->state;
  if (st == MPROC__BAR_FILLING || st == MPROC__BAR_ACTION)
    mproc__store32(&sh->state, MPROC__BAR_BROKEN);
  else if (st != MPROC__BAR_BROKEN && mproc__load32(&sh->count) == 0)
    mproc__store32(&sh->state, MPROC__BAR_FILLING);
  mproc__bar_bump(b);
  return died;
}

/* Takes the internal lock by `deadline` (plus a little grace): 0 or
 * MPROC_ETIMEDOUT.  A party killed inside the lock may have left count,
 * slots or state half updated: nothing about this cycle can be trusted, so
 * break it (what Python does when anything goes wrong inside the barrier)
 * and count the parties again from their slots. */
static int mproc__bar_lock(mproc_barrier *b, double deadline) {
  mproc__bar_shared *sh = b->sh;
  uint32_t i, n = 0;
  double now = mproc__plat_now();
  int rc;
  if (deadline >= 0 && deadline < now + MPROC__BAR_LOCK_GRACE)
    deadline = now + MPROC__BAR_LOCK_GRACE;
  rc = mproc__lockword_acquire(&sh->lock, &b->lockfx, 0, deadline);
  if (rc != MPROC_EOWNERDEAD)
    return rc;
  mproc__store32(&sh->state, MPROC__BAR_BROKEN);
  (void)mproc__bar_reap(b, -1, UINT32_MAX);
  if (b->parties <= b->nslots) {
    for (i = 0; i < b->nslots; i++)
      n += mproc__load64(&sh->slots[i]) != 0;
    mproc__store32(&sh->count, n);
  }
  mproc__bar_bump(b);
  return MPROC_OK;
}

static void mproc__bar_unlock(mproc_barrier *b) {
  (void)mproc__lockword_release(&b->sh->lock, &b->lockfx, 0);
}

/* A wait() that could not get the internal lock back by its deadline (a
 * party stopped inside it, e.g. by SIGSTOP) leaves without it: it breaks
 * the barrier and counts itself out with atomic stores, so the call still
 * returns by its deadline.  Best effort: the stopped party, once resumed,
 * finishes what it was doing. */
static int mproc__bar_abandon(mproc_barrier *b, int counted, int slot) {
  mproc__store32(&b->sh->state, MPROC__BAR_BROKEN);
  if (slot >= 0)
    mproc__store64(&b->sh->slots[slot], 0u);
  if (counted)
    (void)mproc__add32(&b->sh->count, (uint32_t)-1);
  mproc__bar_bump(b);
  return MPROC__BAR_LOST;
}

/* Drops the lock until the state may have changed or a slice passed, then
 * looks at the other parties' liveness.  0, or MPROC__BAR_LOST.  counted:
 * the caller is in the count (and holds `slot` if not -1). */
static int mproc__bar_sleep(mproc_barrier *b, double deadline, int counted,
                            int slot) {
  uint32_t seq = mproc__load32(&b->sh->seq);
  mproc__bar_unlock(b);
  (void)mproc__fx_wait(&b->seqfx, seq,
                       mproc__sleep_until(deadline, mproc__plat_now(),
                                          MPROC__BAR_SLICE_SECONDS));
  if (mproc__bar_lock(b, deadline) < 0)
    return mproc__bar_abandon(b, counted, slot);
  (void)mproc__bar_reap(b, slot, MPROC__BAR_CHECKS);
  return MPROC_OK;
}

/* A slot for an arriving party (-1 if all are taken).  Under the lock. */
static int mproc__bar_claim(mproc_barrier *b) {
  unsigned i;
  for (i = 0; i < b->nslots; i++)
    if (mproc__load64(&b->sh->slots[i]) == 0) {
      mproc__store64(&b->sh->slots[i], mproc__self_stamp());
      return (int)i;
    }
  return -1;
}

/* Python's _exit: a party leaves; the last one out opens the next cycle.
 * Under the lock. */
static void mproc__bar_leave(mproc_barrier *b, int slot) {
  mproc__bar_shared *sh = b->sh;
  uint32_t st = sh->state;
  if (slot >= 0)
    mproc__store64(&sh->slots[slot], 0u);
  if (mproc__add32(&sh->count, (uint32_t)-1) == 1 &&
      (st == MPROC__BAR_RESETTING || st == MPROC__BAR_DRAINING)) {
    mproc__store32(&sh->state, MPROC__BAR_FILLING);
    mproc__bar_bump(b);
  }
}

/* Sets a state under the lock and wakes everyone. */
static void mproc__bar_set(mproc_barrier *b, uint32_t state) {
  mproc__store32(&b->sh->state, state);
  mproc__bar_bump(b);
}

/* The action: the entry, run with an empty argument list.  0 if it ran
 * and returned 0. */
static int mproc__bar_run_action(const char *name) {
  const mproc_entry *e = mproc__entry_find(name);
  mproc_args *args = NULL;
  int rc;
  if (!e || mproc_args_create(&args) < 0)
    return -1;
  rc = e->fn(args);
  mproc_args_free(args);
  return rc;
}

/* The last party to arrive: checks that every other party still lives,
 * runs the action without the lock (waiters keep waiting, and may time
 * out, meanwhile), then opens.  0, MPROC_EBROKEN or MPROC__BAR_LOST. */
static int mproc__bar_open(mproc_barrier *b, int slot, double deadline) {
  int failed;
  if (mproc__bar_reap(b, slot, UINT32_MAX) > 0)
    return MPROC_EBROKEN;
  if (b->action) {
    mproc__bar_set(b, MPROC__BAR_ACTION);
    mproc__bar_unlock(b);
    failed = mproc__bar_run_action(b->action) != 0;
    if (mproc__bar_lock(b, deadline) < 0)
      return mproc__bar_abandon(b, 1, slot);
    if (b->sh->state != MPROC__BAR_ACTION)
      return MPROC_EBROKEN; /* broken or reset while it ran */
    if (failed) {
      mproc__bar_set(b, MPROC__BAR_BROKEN);
      return MPROC_EBROKEN;
    }
  }
  mproc__bar_set(b, MPROC__BAR_DRAINING);
  return MPROC_OK;
}

/* The other parties: wait for the opening.  0, MPROC_EBROKEN,
 * MPROC_ETIMEDOUT (which breaks the barrier for everyone) or
 * MPROC__BAR_LOST. */
static int mproc__bar_await(mproc_barrier *b, int slot, double deadline) {
  uint32_t st;
  while ((st = b->sh->state) == MPROC__BAR_FILLING ||
         st == MPROC__BAR_ACTION) {
    if (mproc__expired(deadline, mproc__plat_now())) {
      mproc__bar_set(b, MPROC__BAR_BROKEN);
      return MPROC_ETIMEDOUT;
    }
    if (mproc__bar_sleep(b, deadline, 1, slot) != MPROC_OK)
      return MPROC__BAR_LOST;
  }
  return st == MPROC__BAR_DRAINING ? MPROC_OK : MPROC_EBROKEN;
}

/* Python's _enter: the previous cycle must drain (or reset) first.  A
 * party killed inside the previous wait is counted out by the checks, and
 * this wait honours the timeout too (Python's does not), breaking the
 * barrier as every timeout does.  0, MPROC_EBROKEN, MPROC_ETIMEDOUT or
 * MPROC__BAR_LOST; the lock is held unless LOST. */
static int mproc__bar_enter(mproc_barrier *b, double deadline) {
  uint32_t st;
  while ((st = b->sh->state) == MPROC__BAR_DRAINING ||
         st == MPROC__BAR_RESETTING) {
    if (mproc__expired(deadline, mproc__plat_now())) {
      mproc__bar_set(b, MPROC__BAR_BROKEN);
      return MPROC_ETIMEDOUT;
    }
    if (mproc__bar_sleep(b, deadline, 0, -1) != MPROC_OK)
      return MPROC__BAR_LOST;
  }
  return st == MPROC__BAR_BROKEN ? MPROC_EBROKEN : MPROC_OK;
}

/* A copy of an action's name (n bytes, no NUL needed), or NULL. */
static char *mproc__bar_name(const char *p, size_t n) {
  char *c = (char *)malloc(n + 1);
  if (c) {
    memcpy(c, p, n);
    c[n] = 0;
  }
  return c;
}

static int mproc__bar_make(mproc_barrier *b, unsigned parties) {
  int rc;
  b->parties = parties;
  b->nslots = parties < MPROC__BAR_SLOTS_MAX ? parties : MPROC__BAR_SLOTS_MAX;
  rc = mproc__seg_create(&b->seg, NULL, mproc__bar_size(b->nslots));
  if (rc < 0)
    return rc;
  b->sh = (mproc__bar_shared *)b->seg.addr;
  b->sh->parties = (uint32_t)parties;
  b->sh->nslots = (uint32_t)b->nslots;
  if ((rc = mproc__lockword_fx(&b->lockfx, &b->sh->lock)) < 0) {
    b->lockfx.word = NULL;
    return rc;
  }
  if ((rc = mproc__fx_create(&b->seqfx, &b->sh->seq, &b->sh->seqw)) < 0)
    b->seqfx.word = NULL;
  return rc;
}

int mproc_barrier_create_ex(mproc_barrier **out, unsigned parties,
                            const mproc_barrier_options *opts) {
  mproc_barrier *b = NULL;
  int rc = MPROC_EINVAL;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (parties == 0 || parties > UINT32_MAX / 2 ||
      (opts && opts->timeout != opts->timeout))
    goto finish;
  rc = MPROC_ENOENTRY;
  if (opts && opts->action &&
      (strlen(opts->action) > MPROC__BAR_ACTION_MAX ||
       !mproc__entry_find(opts->action)))
    goto finish;
  rc = MPROC_ENOMEM;
  if (!(b = mproc__bar_alloc()))
    goto finish;
  if (opts && opts->action &&
      !(b->action = mproc__bar_name(opts->action, strlen(opts->action))))
    goto finish;
  if (opts && opts->timeout > 0)
    b->timeout = opts->timeout;
  if ((rc = mproc__bar_make(b, parties)) < 0)
    goto finish;
  *out = b;
  b = NULL;
finish:
  if (b)
    mproc__bar_destroy(b);
  return rc;
}

int mproc_barrier_create(mproc_barrier **out, unsigned parties) {
  return mproc_barrier_create_ex(out, parties, NULL);
}

int mproc_barrier_wait(mproc_barrier *b, double timeout, unsigned *index) {
  mproc__bar_shared *sh;
  double deadline;
  uint32_t idx;
  int rc, slot;
  if (!mproc__bar_ok(b) || timeout != timeout)
    return MPROC_EINVAL;
  sh = b->sh;
  /* Python: timeout None means the barrier's default. */
  deadline = mproc__deadline(timeout < 0 ? b->timeout : timeout);
  if (mproc__bar_lock(b, deadline) < 0)
    return MPROC_ETIMEDOUT; /* nothing changed: not even arrived */
  rc = mproc__bar_enter(b, deadline);
  if (rc == MPROC__BAR_LOST)
    return MPROC_ETIMEDOUT;
  if (rc < 0) {
    mproc__bar_unlock(b);
    return rc;
  }
  slot = mproc__bar_claim(b);
  idx = mproc__add32(&sh->count, 1u);
  if (idx + 1 >= b->parties)
    rc = mproc__bar_open(b, slot, deadline);
  else
    rc = mproc__bar_await(b, slot, deadline);
  if (rc == MPROC__BAR_LOST)
    return MPROC_ETIMEDOUT;
  mproc__bar_leave(b, slot);
  mproc__bar_unlock(b);
  if (rc == MPROC_OK && index)
    *index = (unsigned)idx;
  return rc;
}

int mproc_barrier_abort(mproc_barrier *b) {
  if (!mproc__bar_ok(b))
    return MPROC_EINVAL;
  (void)mproc__bar_lock(b, -1.0);
  mproc__bar_set(b, MPROC__BAR_BROKEN);
  mproc__bar_unlock(b);
  return MPROC_OK;
}

int mproc_barrier_reset(mproc_barrier *b) {
  mproc__bar_shared *sh;
  uint32_t st;
  if (!mproc__bar_ok(b))
    return MPROC_EINVAL;
  sh = b->sh;
  (void)mproc__bar_lock(b, -1.0);
  /* Dead parties first, so the count is of live ones: they could never
   * leave, and the reset would never finish. */
  (void)mproc__bar_reap(b, -1, UINT32_MAX);
  st = sh->state;
  if (mproc__load32(&sh->count) > 0) {
    /* Waiters of this cycle leave with MPROC_EBROKEN; the last one out
     * makes it FILLING again. */
    if (st == MPROC__BAR_FILLING || st == MPROC__BAR_BROKEN ||
        st == MPROC__BAR_ACTION)
      mproc__store32(&sh->state, MPROC__BAR_RESETTING);
  } else {
    mproc__store32(&sh->state, MPROC__BAR_FILLING);
  }
  mproc__bar_bump(b);
  mproc__bar_unlock(b);
  return MPROC_OK;
}

unsigned mproc_barrier_parties(mproc_barrier *b) {
  return mproc__bar_ok(b) ? b->parties : 0;
}

unsigned mproc_barrier_n_waiting(mproc_barrier *b) {
  if (!mproc__bar_ok(b))
    return 0;
  return mproc__load32(&b->sh->state) == MPROC__BAR_FILLING
             ? (unsigned)mproc__load32(&b->sh->count)
             : 0;
}

int mproc_barrier_broken(mproc_barrier *b) {
  if (!mproc__bar_ok(b))
    return MPROC_EINVAL;
  return mproc__load32(&b->sh->state) == MPROC__BAR_BROKEN;
}

mproc_barrier *mproc_barrier_free(mproc_barrier *b) {
  if (mproc__bar_ok(b) && !b->imported)
    mproc__bar_destroy(b);
  return NULL;
}

/* u32 parties, u64 default timeout (the double's bits), u32 action length
 * and its bytes (0: none), then the segment (futexes: the lock's, the
 * sequence). */
static int mproc__bar_export(const void *obj, mproc__wr *w,
                             mproc__handles *hs) {
  const mproc_barrier *b = (const mproc_barrier *)obj;
  const mproc__fx *fxs[2];
  size_t n;
  uint64_t bits;
  if (!mproc__bar_ok(b))
    return MPROC_EINVAL;
  fxs[0] = &b->lockfx;
  fxs[1] = &b->seqfx;
  n = b->action ? strlen(b->action) : 0;
  memcpy(&bits, &b->timeout, sizeof bits);
  mproc__wr_u32(w, (uint32_t)b->parties);
  mproc__wr_u64(w, bits);
  mproc__wr_u32(w, (uint32_t)n);
  mproc__wr_bytes(w, b->action, n);
  return mproc__export_seg(&b->seg, fxs, 2, w, hs);
}

/* The description's fields before the segment.  0 or MPROC_EINVAL. */
static int mproc__bar_read_desc(mproc__rd *r, mproc_barrier *b) {
  uint64_t bits;
  uint32_t n;
  const unsigned char *name;
  b->parties = mproc__rd_u32(r);
  bits = mproc__rd_u64(r);
  n = mproc__rd_u32(r);
  name = n <= MPROC__BAR_ACTION_MAX ? mproc__rd_bytes(r, n) : NULL;
  memcpy(&b->timeout, &bits, sizeof bits);
  if (r->bad || b->parties == 0 || b->parties > UINT32_MAX / 2 ||
      b->timeout != b->timeout || (n > 0 && !name))
    return MPROC_EINVAL;
  b->nslots = b->parties < MPROC__BAR_SLOTS_MAX ? b->parties
                                                 : MPROC__BAR_SLOTS_MAX;
  if (n > 0 && !(b->action = mproc__bar_name((const char *)name, n)))
    return MPROC_ENOMEM;
  return MPROC_OK;
}

static int mproc__bar_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                             void **out) {
  mproc_barrier *b = mproc__bar_alloc();
  mproc_handle_t sems[2] = {MPROC_INVALID_HANDLE, MPROC_INVALID_HANDLE};
  mproc__seg seg;
  int rc = b ? mproc__bar_read_desc(r, b) : MPROC_ENOMEM;
  *out = NULL;
  rc = mproc__import_seg(r, hs, nh, 2, b ? mproc__bar_size(b->nslots) : 0,
                         rc == MPROC_OK, &seg, sems);
  if (rc < 0) {
    if (b)
      mproc__bar_destroy(b);
    return b ? rc : MPROC_ENOMEM;
  }
  b->seg = seg;
  b->imported = 1;
  b->sh = (mproc__bar_shared *)b->seg.addr;
  rc = mproc__fx_import(&b->lockfx, &b->sh->lock.word, &b->sh->lock.fxw,
                        sems[0]);
  if (rc < 0)
    b->lockfx.word = NULL;
  if (rc == MPROC_OK) {
    rc = mproc__fx_import(&b->seqfx, &b->sh->seq, &b->sh->seqw, sems[1]);
    if (rc < 0)
      b->seqfx.word = NULL;
  } else {
    mproc__drop_handles(&sems[1], 1);
  }
  if (rc == MPROC_OK && (mproc__load32(&b->sh->parties) != b->parties ||
                         mproc__load32(&b->sh->nslots) != b->nslots))
    rc = MPROC_EINVAL;
  if (rc < 0) {
    mproc__bar_destroy(b);
    return rc;
  }
  *out = b;
  return MPROC_OK;
}

static void mproc__bar_objfree(void *obj) {
  if (mproc__bar_ok((mproc_barrier *)obj))
    mproc__bar_destroy((mproc_barrier *)obj);
}

const mproc__objtype mproc__barrier_type = {
    MPROC_OBJ_BARRIER, mproc__bar_export, mproc__bar_import,
    mproc__bar_objfree};
