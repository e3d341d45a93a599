/*
 * Condition (include/mproc/ipc.h): waiter slots and a sequence futex in a
 * shared segment, over a Lock or RLock (src/sync_lock.c).
 */
#include <stdlib.h>
#include <string.h>

#include "sync.h"

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
  volatile mproc__u64a stamp;  /* the waiter's process (mproc__self_stamp) */
  volatile mproc__u64a ticket; /* arrival order */
} mproc__cond_slot;

typedef struct mproc__cond_shared {
  mproc__lockword lock;  /* the condition's own RLock (unused with a user
                            lock) */
  volatile uint32_t seq; /* futex word: bumped by every effective notify */
  volatile uint32_t seqw;
  volatile uint32_t noverflow; /* waiters without a slot */
  uint32_t pad;
  volatile mproc__u64a next_ticket; /* under the lock */
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
  mproc_condition *c =
      (mproc_condition *)mproc__obj_new(sizeof(*c), &mproc__condition_type);
  if (!c)
    return NULL;
  c->seg.handle = MPROC_INVALID_HANDLE;
  return c;
}

static void mproc__condition_release(mproc_condition *c) {
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
    goto finish;
  c->sh = (mproc__cond_shared *)c->seg.addr;
  if ((rc = mproc__fx_create(&c->seqfx, &c->sh->seq, &c->sh->seqw)) < 0) {
    c->seqfx.word = NULL;
    goto finish;
  }
  if (lock) {
    c->lock = lock;
  } else {
    mproc__lockword_init(&c->sh->lock);
    rc = mproc__lock_view(&c->lock, &c->seg, offsetof(mproc__cond_shared, lock),
                          1, 1, MPROC_INVALID_HANDLE);
    if (rc < 0)
      goto finish;
    c->own_lock = c->free_lock = 1;
  }
  *out = c;
  rc = MPROC_OK;
finish:
  if (rc < 0)
    mproc__condition_release(c);
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
    mproc__condition_release(cond);
  return NULL;
}

/* u8 own_lock, then the segment (futexes: the sequence, and the own lock's
 * when own_lock); a user's lock follows as u32 handle count, u32 length,
 * its own description, and its handles come after the condition's. */
static int mproc__cond_export(const void *obj, mproc__wr *w,
                              mproc__handles *hs) {
  const mproc_condition *c = (const mproc_condition *)obj;
  const mproc__fx *fxs[2];
  int rc;
  if (!mproc__cond_ok(c))
    return MPROC_EINVAL;
  fxs[0] = &c->seqfx;
  fxs[1] = &c->lock->fx;
  mproc__wr_u8(w, (uint8_t)c->own_lock);
  if ((rc = mproc__export_seg(&c->seg, fxs, c->own_lock ? 2 : 1, w, hs)) < 0)
    return rc;
  return c->own_lock ? MPROC_OK : mproc__obj_export_nested(c->lock, w, hs);
}

/* Maps the condition's segment, which takes the condition's handles (and
 * closes them when the description is bad); *mine is their count and sems
 * the futexes' semaphores. */
static int mproc__cond_import_segment(mproc_condition *c, mproc__rd *r,
                                      const mproc_handle_t *hs, size_t nh,
                                      uint8_t own, size_t *mine,
                                      mproc_handle_t sems[2]) {
  size_t nfx = own ? 2 : 1;
  mproc__rd probe = *r;
  mproc__seg seg;
  int rc, ok;
  /* How many handles are the condition's: its segment's description says
   * whether futexes carry semaphores; look ahead without consuming. */
  (void)mproc__rd_u64(&probe);
  *mine = 1 + (mproc__rd_u8(&probe) == 1 ? nfx : 0);
  ok = c && own <= 1 && !probe.bad && (own ? *mine == nh : *mine <= nh);
  rc = mproc__import_seg(r, hs, ok ? *mine : nh, nfx,
                         sizeof(mproc__cond_shared), ok, &seg, sems);
  if (rc < 0)
    return c ? rc : MPROC_ENOMEM;
  c->seg = seg;
  c->imported = 1;
  c->sh = (mproc__cond_shared *)c->seg.addr;
  return MPROC_OK;
}

/* The sequence futex; on failure its word is left unset. */
static int mproc__cond_import_seq(mproc_condition *c, mproc_handle_t sem) {
  int rc = mproc__fx_import(&c->seqfx, &c->sh->seq, &c->sh->seqw, sem);
  if (rc < 0)
    c->seqfx.word = NULL;
  return rc;
}

/* The condition's own lock, inside its segment.  When the sequence futex
 * failed (seq_rc) the lock's semaphore handle is only closed, and the
 * sequence's error is the result. */
static int mproc__cond_import_own_lock(mproc_condition *c, mproc_handle_t sem,
                                       int seq_rc) {
  int rc = seq_rc;
  if (seq_rc == MPROC_OK)
    rc = mproc__lock_view(&c->lock, &c->seg,
                          offsetof(mproc__cond_shared, lock), 1, 0, sem);
  else
    mproc__drop_handles(&sem, 1);
  c->own_lock = c->free_lock = 1;
  return rc;
}

/* A user's lock, described after the condition, with the handles past the
 * condition's.  They are always imported (so closed on failure); the
 * sequence futex's error (seq_rc), if any, is the result. */
static int mproc__cond_import_user_lock(mproc_condition *c, mproc__rd *r,
                                        const mproc_handle_t *hs, size_t nh,
                                        size_t mine, int seq_rc) {
  uint32_t lock_nh = mproc__rd_u32(r);
  uint32_t lock_len = mproc__rd_u32(r);
  const unsigned char *lock_blob = mproc__rd_bytes(r, lock_len);
  mproc__rd lr;
  void *lock = NULL;
  int rc;
  if (r->bad || !lock_blob || lock_nh != nh - mine) {
    mproc__drop_handles(hs + mine, nh - mine);
    return MPROC_EINVAL;
  }
  mproc__rd_init(&lr, lock_blob, lock_len);
  rc = mproc__lock_import(&lr, hs + mine, lock_nh, &lock);
  if (rc == MPROC_OK && (lr.bad || lr.left != 0)) {
    mproc__lock_objfree(lock);
    lock = NULL;
    rc = MPROC_EINVAL;
  }
  c->lock = (mproc_lock *)lock;
  c->free_lock = 1;
  return seq_rc != MPROC_OK ? seq_rc : rc;
}

static int mproc__cond_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                              void **out) {
  mproc_condition *c = mproc__cond_alloc();
  uint8_t own = mproc__rd_u8(r);
  mproc_handle_t sems[2] = {MPROC_INVALID_HANDLE, MPROC_INVALID_HANDLE};
  size_t mine = 0;
  int rc, seq_rc;
  *out = NULL;
  rc = mproc__cond_import_segment(c, r, hs, nh, own, &mine, sems);
  if (rc < 0)
    goto finish;
  /* From here every handle goes to an importer that closes it on failure. */
  seq_rc = mproc__cond_import_seq(c, sems[0]);
  if (own)
    rc = mproc__cond_import_own_lock(c, sems[1], seq_rc);
  else
    rc = mproc__cond_import_user_lock(c, r, hs, nh, mine, seq_rc);
  if (rc < 0)
    goto finish;
  *out = c;
finish:
  if (rc < 0 && c) {
    if (!c->lock)
      c->free_lock = 0;
    mproc__condition_release(c);
  }
  return rc;
}

static void mproc__cond_objfree(void *obj) {
  if (mproc__cond_ok((mproc_condition *)obj))
    mproc__condition_release((mproc_condition *)obj);
}

const mproc__objtype mproc__condition_type = {
    MPROC_OBJ_CONDITION, mproc__cond_export, mproc__cond_import,
    mproc__cond_objfree};
