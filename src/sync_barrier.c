/*
 * Barrier (include/mproc/ipc.h): threading.Barrier's algorithm on a lock
 * word, a sequence futex and one liveness slot per waiting party.
 */
#include <stdlib.h>
#include <string.h>

#include "pool.h" /* mproc__entry_find: the action */
#include "sync.h"

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
 * (plat/core.h).  A party killed while the barrier waits for it would
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
/* Longest name of an action entry. */
#define MPROC__BAR_ACTION_MAX 256
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
  volatile uint32_t count;    /* parties inside wait(); changed atomically */
  volatile uint32_t state;    /* under the lock; read without it by queries */
  volatile uint32_t nslots;   /* min(parties, MPROC__BAR_SLOTS_MAX) */
  volatile mproc__u64a slots[1]; /* nslots: stamps of parties inside wait() */
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
  mproc_barrier *b =
      (mproc_barrier *)mproc__obj_new(sizeof(*b), &mproc__barrier_type);
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
  while ((st = b->sh->state) == MPROC__BAR_FILLING || st == MPROC__BAR_ACTION) {
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

void mproc__barrier_test_hold(mproc_barrier *b) {
  if (mproc__bar_ok(b))
    (void)mproc__bar_lock(b, -1.0);
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
  b->nslots =
      b->parties < MPROC__BAR_SLOTS_MAX ? b->parties : MPROC__BAR_SLOTS_MAX;
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
