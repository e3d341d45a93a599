/* POSIX backend: the portable futex (plat/futex.h).  Linux: futex(2) on the
 * shared word.  macOS: os_sync_wait_on_address (macOS 14.4+) or the
 * __ulock_wait2/__ulock_wake system calls (macOS 11+), both in their
 * cross-process ("shared") form.  FreeBSD: _umtx_op(UMTX_OP_WAIT_UINT), shared.
 * Elsewhere (and in the plain-POSIX build):
 * a wake channel of process-shared POSIX semaphores in a small segment of
 * its own, which blocks in the kernel too (see "the wake channel" below). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "internal.h"
#include "px_have.h"

#if MPROC__HAVE_LINUX_FUTEX
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#if MPROC__HAVE_UMTX
#include <string.h>
#include <sys/types.h>
#include <sys/umtx.h>
#endif

/* A futex of the OS's own, or the wake channel. */
#define MPROC__FX_NATIVE                                                       \
  (MPROC__HAVE_LINUX_FUTEX || MPROC__HAVE_ULOCK || MPROC__HAVE_UMTX)

#if !MPROC__FX_NATIVE
#include <semaphore.h>
#endif

#if MPROC__HAVE_LINUX_FUTEX || MPROC__HAVE_UMTX || !MPROC__FX_NATIVE
/* An mproc__plat_now() time (CLOCK_MONOTONIC seconds) as a timespec. */
static void mproc__fx_timespec(double t, struct timespec *ts) {
  double whole = (double)(time_t)t;
  ts->tv_sec = (time_t)t;
  ts->tv_nsec = (long)((t - whole) * 1e9);
  if (ts->tv_nsec >= 1000000000L)
    ts->tv_nsec = 999999999L;
  if (ts->tv_nsec < 0)
    ts->tv_nsec = 0;
}
#endif

#if MPROC__HAVE_ULOCK
/* os_sync_wait_on_address is public from the macOS 14.4 SDK on.  Older SDKs
 * (Zig 0.11 bundles 13's, so the macos-check lane compiles the __ulock path
 * only) and older systems use the __ulock calls that libc++'s atomic wait,
 * Swift and Chromium use.  They are not in any public header, so they are
 * declared here, with the values of XNU's bsd/sys/ulock.h. */
#if defined(__has_include)
#if __has_include(<os/os_sync_wait_on_address.h>)
#include <os/clock.h>
#include <os/os_sync_wait_on_address.h>
#define MPROC__HAVE_OS_SYNC 1
#endif
#endif
extern int __ulock_wait2(uint32_t operation, void *addr, uint64_t value,
                         uint64_t timeout_ns, uint64_t value2);
extern int __ulock_wake(uint32_t operation, void *addr, uint64_t wake_value);
#define MPROC__UL_COMPARE_AND_WAIT_SHARED 3u
#define MPROC__ULF_WAKE_ALL 0x00000100u
#endif

#if MPROC__FX_NATIVE
int mproc__fx_create(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters) {
  fx->word = word;
  fx->waiters = waiters;
  fx->sem = MPROC_INVALID_HANDLE; /* the kernel keys futexes by address */
  fx->chan = NULL;
  return MPROC_OK;
}

int mproc__fx_import(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters, mproc_handle_t sem) {
  if (sem != MPROC_INVALID_HANDLE)
    (void)close(sem);
  return mproc__fx_create(fx, word, waiters);
}

void mproc__fx_close(mproc__fx *fx) { fx->word = fx->waiters = NULL; }

#if MPROC__HAVE_LINUX_FUTEX
/* FUTEX_WAIT_BITSET until the absolute CLOCK_MONOTONIC time *ts (NULL: no
 * limit).  A 32-bit ABI with a 64-bit time_t (all 32-bit musl, glibc with
 * _TIME_BITS=64) has a struct timespec that the old SYS_futex reads as two
 * 32-bit fields (whole seconds, then the seconds' high half as ns), so every
 * timeout would expire at once: such a build needs futex_time64 (Linux
 * 5.1+), and falls back to the old call, with the old layout, on a kernel
 * that lacks it. */
static long mproc__futex_wait_abs(volatile uint32_t *word, uint32_t expected,
                                  const struct timespec *ts) {
#ifdef SYS_futex_time64
  if (sizeof(ts->tv_sec) > sizeof(long)) {
    struct {
      long tv_sec, tv_nsec;
    } old;
    long r = syscall(SYS_futex_time64, word, FUTEX_WAIT_BITSET, expected, ts,
                     NULL, FUTEX_BITSET_MATCH_ANY);
    if (r == 0 || errno != ENOSYS)
      return r;
    if (ts) {
      /* Past 2038 the old call cannot say the deadline: clamp it. */
      old.tv_sec = (long)ts->tv_sec;
      if ((time_t)old.tv_sec != ts->tv_sec)
        old.tv_sec = LONG_MAX;
      old.tv_nsec = (long)ts->tv_nsec;
    }
    return syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected,
                   ts ? (const void *)&old : NULL, NULL,
                   FUTEX_BITSET_MATCH_ANY);
  }
#endif
  return syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, ts, NULL,
                 FUTEX_BITSET_MATCH_ANY);
}

/* 0, or -1 with errno (ETIMEDOUT, EINTR, EAGAIN: the word had changed). */
static int mproc__fx_os_wait(volatile uint32_t *word, uint32_t expected,
                             double deadline) {
  struct timespec ts, *tsp = NULL;
  if (deadline >= 0) {
    mproc__fx_timespec(deadline, &ts);
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, the
   * clock mproc__plat_now() reads, so retries after EINTR keep the
   * original deadline.  Not FUTEX_PRIVATE_FLAG: the word is shared
   * between processes, and the kernel must key it by the page. */
  return (int)mproc__futex_wait_abs(word, expected, tsp);
}

static void mproc__fx_os_wake(volatile uint32_t *word, uint32_t n) {
  (void)syscall(SYS_futex, word, FUTEX_WAKE,
                n > (uint32_t)INT_MAX ? INT_MAX : (int)n, NULL, NULL, 0);
}

#elif MPROC__HAVE_ULOCK
/* Compile-checked only (scripts/check-macos.sh); the semantics are those of
 * Apple's os_sync_wait_on_address(3) and XNU's ulock.h: both compare the
 * word and sleep atomically, keyed by the physical page when "shared", and
 * take a relative timeout in nanoseconds (0 = none for __ulock_wait2). */
static int mproc__fx_os_wait(volatile uint32_t *word, uint32_t expected,
                             double deadline) {
  uint64_t ns = 0;
  void *addr = (void *)(uintptr_t)word;
  if (deadline >= 0) {
    double left = deadline - mproc__plat_now();
    if (left <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    /* At least 1 ns: 0 would mean "no limit" to __ulock_wait2. */
    ns = left > 1e9 * 86400.0 * 365 ? (uint64_t)1e9 * 86400u * 365u
                                    : (uint64_t)(left * 1e9) + 1u;
  }
#ifdef MPROC__HAVE_OS_SYNC
  if (__builtin_available(macOS 14.4, *)) {
    if (ns == 0)
      return os_sync_wait_on_address(addr, expected, 4,
                                     OS_SYNC_WAIT_ON_ADDRESS_SHARED) < 0
                 ? -1
                 : 0;
    return os_sync_wait_on_address_with_timeout(
               addr, expected, 4, OS_SYNC_WAIT_ON_ADDRESS_SHARED,
               OS_CLOCK_MACH_ABSOLUTE_TIME, ns) < 0
               ? -1
               : 0;
  }
#endif
  return __ulock_wait2(MPROC__UL_COMPARE_AND_WAIT_SHARED, addr, expected, ns,
                       0) < 0
             ? -1
             : 0;
}

static void mproc__fx_os_wake(volatile uint32_t *word, uint32_t n) {
  void *addr = (void *)(uintptr_t)word;
  /* Neither call wakes a chosen number: one, or all.  More than one waiter
   * asked for means all; the extra ones re-check their word and sleep
   * again (spurious wake-ups are allowed by the contract). */
#ifdef MPROC__HAVE_OS_SYNC
  if (__builtin_available(macOS 14.4, *)) {
    if (n == 1)
      (void)os_sync_wake_by_address_any(addr, 4,
                                        OS_SYNC_WAKE_BY_ADDRESS_SHARED);
    else
      (void)os_sync_wake_by_address_all(addr, 4,
                                        OS_SYNC_WAKE_BY_ADDRESS_SHARED);
    return;
  }
#endif
  (void)__ulock_wake(MPROC__UL_COMPARE_AND_WAIT_SHARED |
                         (n == 1 ? 0u : MPROC__ULF_WAKE_ALL),
                     addr, 0);
}

#elif MPROC__HAVE_UMTX
/* Not compiled against FreeBSD's headers here (see the portable notes);
 * written from _umtx_op(2).  UMTX_OP_WAIT_UINT compares the 32-bit word
 * and sleeps atomically, and without the _PRIVATE suffix the kernel keys
 * the sleep by the shared page, so waker and waiter may be different
 * processes.  A timeout is a struct _umtx_time, whose size goes in uaddr:
 * here an absolute CLOCK_MONOTONIC time, the clock mproc__plat_now()
 * reads, so a retry after EINTR keeps the deadline. */
static int mproc__fx_os_wait(volatile uint32_t *word, uint32_t expected,
                             double deadline) {
  struct _umtx_time t;
  void *size = NULL, *tp = NULL;
  if (deadline >= 0) {
    memset(&t, 0, sizeof t);
    mproc__fx_timespec(deadline, &t._timeout);
    t._flags = UMTX_ABSTIME;
    t._clockid = CLOCK_MONOTONIC;
    size = (void *)(uintptr_t)sizeof t;
    tp = &t;
  }
  return _umtx_op((void *)(uintptr_t)word, UMTX_OP_WAIT_UINT,
                  (u_long)expected, size, tp) == -1
             ? -1
             : 0;
}

static void mproc__fx_os_wake(volatile uint32_t *word, uint32_t n) {
  (void)_umtx_op((void *)(uintptr_t)word, UMTX_OP_WAKE,
                 (u_long)(n > (uint32_t)INT_MAX ? INT_MAX : (int)n), NULL,
                 NULL);
}
#endif

int mproc__fx_wait(mproc__fx *fx, uint32_t expected, double deadline) {
  int rc = MPROC_OK;
  (void)mproc__add32(fx->waiters, 1);
  if (mproc__fx_os_wait(fx->word, expected, deadline) != 0 &&
      errno == ETIMEDOUT)
    rc = MPROC_ETIMEDOUT;
  (void)mproc__add32(fx->waiters, (uint32_t)-1);
  return rc;
}

void mproc__fx_wake(mproc__fx *fx, uint32_t n) {
  /* The waker changed the word before this load, and a waiter counts
   * itself before it sleeps: if no waiter is counted here, any later one
   * sees the new word and does not sleep (both orders are seq_cst). */
  if (mproc__load32(fx->waiters) == 0)
    return;
  mproc__fx_os_wake(fx->word, n);
}

#else /* !MPROC__FX_NATIVE */
/* ---- the wake channel (no futex of the OS's own) -----------------------------
 * Plain POSIX has no futex, and a process-shared condition variable is no
 * substitute: a waiter killed inside pthread_cond_wait can leave glibc's
 * waiting for it for ever.  What POSIX has is the process-shared unnamed
 * semaphore (sem_init(pshared = 1) in shared memory): it blocks in the
 * kernel, and a waiter killed inside sem_wait takes nothing with it.  So
 * each futex gets a wake channel: a small anonymous segment of its own
 * (its descriptor is fx->sem, passed to children like the Windows
 * semaphore handle) holding MPROC__FXC_SLOTS slots, each a semaphore and a
 * slot word.  (macOS has no unnamed semaphores, but has a futex of its
 * own, above; a system with neither would put a pipe per slot here.)
 *
 * A semaphore's units are not addressed to anyone, so a unit released for
 * a waiter that is a few instructions short of sem_wait could be taken by a
 * thread that came later and waits for the next change; the earlier
 * waiter would then sleep although its word changed (the Windows backend
 * meets the same problem with its epoch and give-back).  Slots keep the
 * units apart:
 *   - a waiter joins the open slot `cur` (counts itself in its slot word),
 *     looks at the word, and sleeps on that slot's semaphore;
 *   - a wake closes every open slot (one CAS each: the open bit goes, the
 *     generation goes up, the count stays) and releases as many units on
 *     it as the count says;
 *   - a closed slot is opened again only once its count is back to zero,
 *     i.e. once every waiter it counted has left, each with its unit.
 * So the units on a closed slot's semaphore are taken only by the waiters
 * they were released for, and a late waiter always finds them; later
 * arrivals join another slot.  A waiter that took a unit while its slot's
 * generation is still the one it joined in got a unit nobody is owed (see
 * below) and sleeps on.
 *
 * Leaving.  A waiter that times out, or sees the word changed before it
 * sleeps, takes itself off its slot's count if the slot is still the
 * generation it joined (CAS), else it was counted by a wake and takes its
 * unit with sem_trywait first.  If the waker has not released it yet (it
 * is between its CAS and sem_post), the unit comes later and is nobody's:
 * the next waiter on that slot takes it, sees no new generation, and
 * sleeps on.
 *
 * Waiters killed inside a wait.  Their count stays on their slot for ever,
 * so that slot is never opened again, and its units stay there, harming
 * nobody.  When every other slot is held, by such waiters or by woken
 * waiters that have not run since their wake (MPROC__FXC_SLOTS - 1 of
 * them on one futex), a slot that still counts waiters is opened again
 * anyway, the one with the fewest: units left there by the dead are taken
 * by later waiters, which sleep on; but a woken waiter of that slot that
 * has not taken its unit yet could then lose it to a later one, and sleep
 * until the next wake or its deadline.  That is the limit of this
 * backend: it needs 63 such waiters on one futex.
 *
 * Deadlines.  sem_clockwait (POSIX.1-2024, glibc 2.30) waits for the
 * CLOCK_MONOTONIC deadline itself.  Without it sem_timedwait waits for the
 * same moment on CLOCK_REALTIME, which a wall-clock jump during the wait
 * moves. */

#define MPROC__FXC_SLOTS 64u
#define MPROC__FXC_OPEN 0x80000000u
#define MPROC__FXC_GEN_ONE 0x01000000u
#define MPROC__FXC_GEN_MASK 0x7f000000u
#define MPROC__FXC_COUNT 0x00ffffffu

typedef struct mproc__fx_chan {
  sem_t sem[MPROC__FXC_SLOTS];
  volatile uint32_t slot[MPROC__FXC_SLOTS]; /* open | generation | count */
  volatile uint32_t cur;                     /* the slot waiters join */
} mproc__fx_chan;

/* What the process keeps of a channel: its segment (fx->chan). */
static mproc__fx_chan *mproc__fxc(const mproc__fx *fx) {
  return (mproc__fx_chan *)((mproc__seg *)fx->chan)->addr;
}

/* Takes `seg` over into fx (fx->chan owns a heap copy of it). */
static int mproc__fxc_adopt(mproc__fx *fx, mproc__seg *seg,
                            volatile uint32_t *word,
                            volatile uint32_t *waiters) {
  mproc__seg *own = (mproc__seg *)malloc(sizeof *own);
  if (!own) {
    mproc__seg_close(seg);
    return MPROC_ENOMEM;
  }
  *own = *seg;
  fx->word = word;
  fx->waiters = waiters;
  fx->sem = own->handle;
  fx->chan = own;
  return MPROC_OK;
}

static void mproc__fx_reset(mproc__fx *fx) {
  fx->word = fx->waiters = NULL;
  fx->sem = MPROC_INVALID_HANDLE;
  fx->chan = NULL;
}

int mproc__fx_create(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters) {
  mproc__seg seg;
  mproc__fx_chan *c;
  unsigned i;
  int rc;
  mproc__fx_reset(fx);
  if (!word || !waiters)
    return MPROC_EINVAL;
  if ((rc = mproc__seg_create(&seg, NULL, sizeof *c)) < 0)
    return rc;
  c = (mproc__fx_chan *)seg.addr;
  for (i = 0; i < MPROC__FXC_SLOTS; i++) {
    if (sem_init(&c->sem[i], 1, 0) != 0) {
      rc = mproc__os_fail(MPROC_ESYS, errno);
      mproc__seg_close(&seg);
      return rc;
    }
  }
  c->slot[0] = MPROC__FXC_OPEN; /* the others open when needed */
  return mproc__fxc_adopt(fx, &seg, word, waiters);
}

int mproc__fx_import(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters, mproc_handle_t sem) {
  mproc__seg seg;
  int rc;
  mproc__fx_reset(fx);
  /* Like mproc__seg_import: the handle is this function's, also on
   * failure. */
  if (!word || !waiters || sem == MPROC_INVALID_HANDLE) {
    if (sem != MPROC_INVALID_HANDLE)
      (void)close(sem);
    return MPROC_EINVAL;
  }
  if ((rc = mproc__seg_import(&seg, sem, sizeof(mproc__fx_chan))) < 0)
    return rc;
  return mproc__fxc_adopt(fx, &seg, word, waiters);
}

void mproc__fx_close(mproc__fx *fx) {
  if (fx->chan) {
    /* No sem_destroy: other processes may still wait on the semaphores;
     * the memory goes when the last of them unmaps it. */
    mproc__seg_close((mproc__seg *)fx->chan);
    free(fx->chan);
  }
  mproc__fx_reset(fx);
}

/* Opens a slot for waiters to join, after `seen` was found closed: a
 * closed one that counts nobody, else (see "Waiters killed inside a wait")
 * the closed one that counts fewest.  A slot someone else opened
 * meanwhile does as well. */
static void mproc__fxc_open_one(mproc__fx_chan *c, uint32_t seen) {
  uint32_t i, s, v, best = seen, best_count = UINT32_MAX;
  for (i = 1; i <= MPROC__FXC_SLOTS; i++) {
    s = (seen + i) % MPROC__FXC_SLOTS;
    v = mproc__load32(&c->slot[s]);
    if ((v & MPROC__FXC_OPEN) ||
        ((v & MPROC__FXC_COUNT) == 0 &&
         mproc__cas32(&c->slot[s], &v, v | MPROC__FXC_OPEN))) {
      mproc__store32(&c->cur, s);
      return;
    }
    if ((v & MPROC__FXC_COUNT) < best_count) {
      best = s;
      best_count = v & MPROC__FXC_COUNT;
    }
  }
  v = mproc__load32(&c->slot[best]);
  if (!(v & MPROC__FXC_OPEN))
    (void)mproc__cas32(&c->slot[best], &v, v | MPROC__FXC_OPEN);
  mproc__store32(&c->cur, best);
}

/* Counts the caller into the open slot; returns the slot, and in *joined
 * the slot word it counted itself into. */
static uint32_t mproc__fxc_join(mproc__fx_chan *c, uint32_t *joined) {
  uint32_t s, v;
  for (;;) {
    s = mproc__load32(&c->cur) % MPROC__FXC_SLOTS;
    v = mproc__load32(&c->slot[s]);
    if (!(v & MPROC__FXC_OPEN) ||
        (v & MPROC__FXC_COUNT) == MPROC__FXC_COUNT) {
      mproc__fxc_open_one(c, s);
      continue;
    }
    if (mproc__cas32(&c->slot[s], &v, v + 1u)) {
      *joined = v;
      return s;
    }
  }
}

/* Has slot s been closed (by a wake that counted us) since we joined? */
static int mproc__fxc_woken(mproc__fx_chan *c, uint32_t s, uint32_t joined) {
  return ((mproc__load32(&c->slot[s]) ^ joined) & MPROC__FXC_GEN_MASK) != 0;
}

/* Takes the caller off slot s without sleeping (see "Leaving"). */
static void mproc__fxc_leave(mproc__fx_chan *c, uint32_t s, uint32_t joined) {
  uint32_t v = mproc__load32(&c->slot[s]);
  while (((v ^ joined) & MPROC__FXC_GEN_MASK) == 0) {
    if (mproc__cas32(&c->slot[s], &v, v - 1u))
      return;
  }
  while (sem_trywait(&c->sem[s]) != 0 && errno == EINTR) {
  }
  (void)mproc__add32(&c->slot[s], (uint32_t)-1);
}

/* One sem wait until `deadline`: 0, or an errno value. */
static int mproc__fxc_sem_wait(sem_t *sem, double deadline) {
  struct timespec ts;
  int r;
  if (deadline < 0) {
    r = sem_wait(sem);
  } else {
#if MPROC__HAVE_SEM_CLOCKWAIT
    mproc__fx_timespec(deadline, &ts);
    r = sem_clockwait(sem, CLOCK_MONOTONIC, &ts);
#else
    double left = deadline - mproc__plat_now();
    struct timespec now;
    (void)clock_gettime(CLOCK_REALTIME, &now);
    mproc__fx_timespec((double)now.tv_sec + (double)now.tv_nsec / 1e9 +
                           (left > 0 ? left : 0),
                       &ts);
    r = sem_timedwait(sem, &ts);
#endif
  }
  return r == 0 ? 0 : errno;
}

int mproc__fx_wait(mproc__fx *fx, uint32_t expected, double deadline) {
  mproc__fx_chan *c;
  uint32_t s, joined;
  int rc = MPROC_OK, e;
  if (!fx || !fx->chan)
    return MPROC_EINVAL;
  c = mproc__fxc(fx);
  (void)mproc__add32(fx->waiters, 1);
  s = mproc__fxc_join(c, &joined);
  if (mproc__load32(fx->word) != expected) {
    mproc__fxc_leave(c, s, joined);
    goto finish;
  }
  for (;;) {
    e = mproc__fxc_sem_wait(&c->sem[s], deadline);
    if (e == 0 && mproc__fxc_woken(c, s, joined)) {
      (void)mproc__add32(&c->slot[s], (uint32_t)-1); /* our unit: done */
      break;
    }
    if (e == 0 || e == EINTR)
      continue; /* a unit nobody was owed, or a signal: sleep on */
    rc = e == ETIMEDOUT ? MPROC_ETIMEDOUT : mproc__os_fail(MPROC_ESYS, e);
    mproc__fxc_leave(c, s, joined);
    break;
  }
finish:
  (void)mproc__add32(fx->waiters, (uint32_t)-1);
  return rc;
}

void mproc__fx_wake(mproc__fx *fx, uint32_t n) {
  mproc__fx_chan *c;
  uint32_t i, v, k;
  /* As above: a waiter counts itself before it reads the word, the waker
   * reads the count after it changed the word. */
  if (!fx || !fx->chan || n == 0 || mproc__load32(fx->waiters) == 0)
    return;
  c = mproc__fxc(fx);
  /* Every wake wakes all: the units cannot be addressed to one waiter of a
   * slot, and the contract allows the extra wake-ups. */
  for (i = 0; i < MPROC__FXC_SLOTS; i++) {
    v = mproc__load32(&c->slot[i]);
    while (v & MPROC__FXC_OPEN) {
      uint32_t closed = ((v & ~MPROC__FXC_OPEN) + MPROC__FXC_GEN_ONE) &
                        ~MPROC__FXC_OPEN;
      if (mproc__cas32(&c->slot[i], &v, closed)) {
        for (k = v & MPROC__FXC_COUNT; k > 0; k--)
          if (sem_post(&c->sem[i]) != 0)
            break; /* EOVERFLOW: more than enough units are there */
        break;
      }
    }
  }
}
#endif

uint32_t mproc__fx_waiting(const mproc__fx *fx) {
  return mproc__load32(fx->waiters);
}
