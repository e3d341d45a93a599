/* Windows backend: the portable futex (plat/futex.h) is a kernel semaphore
 * plus a waiter word in shared memory. */
#include <windows.h>

#include <limits.h>
#include <stdlib.h>

#include "atomics.h"
#include "internal.h"
#include "w32.h"

/* ---- the portable futex -------------------------------------------------------
 * One kernel semaphore per futex; the waiter word in shared memory counts the
 * threads (of any process) inside mproc__fx_wait, so the waker knows how
 * many units to release and releases none when nobody waits.
 *
 * Lost wake-ups.  The waiter counts itself, then reads the word; the waker
 * changes the word, then reads the count.  All four accesses are
 * sequentially consistent (Interlocked / __atomic seq_cst: full barriers),
 * so in their single total order either the waker's count read comes after
 * the waiter's increment (the waker releases a unit, and a semaphore keeps
 * units: it is found even if the waiter reaches WaitForSingleObject later)
 * or the waiter's word read comes after the waker's store (it sees the new
 * word and does not sleep).  The waker's count read is an interlocked
 * read-modify-write, so this holds even if the caller changed the word with
 * a weaker store than atomics.h's.
 *
 * Stolen units.  A futex's units are not addressed to anyone.  A waiter that
 * has counted itself but not yet entered WaitForSingleObject (a window of a
 * few instructions, unless it is preempted there) may be overtaken by a
 * thread that arrives after the wake, sees the new word, waits for the next
 * change and takes the unit: the earlier waiter then sleeps although its
 * word changed.  On Linux the kernel wakes only threads already queued, and
 * the portable objects rely on that (one futex for both directions of a
 * ping-pong; a barrier whose last thread runs into the next round).  So the
 * count shares its word with an 8-bit wake epoch that every wake increases:
 *   bits 0..23  threads inside mproc__fx_wait
 *   bits 24..31 wake epoch; reset with the count when the last waiter
 *               leaves, so *waiters == 0 still means "nobody waits"
 * A waiter that gets a unit while the epoch is still the one it counted
 * itself in knows the unit was released before it arrived; it gives the
 * unit back and yields, so the earlier waiter (queued in the kernel by
 * then) gets it.  It keeps giving back for at most MPROC__FX_GIVEBACK
 * seconds, after which the unit is taken as a spurious wake-up: units
 * nobody is owed (their waiter timed out or died) must not circulate for
 * ever.  As a last resort against a waiter preempted for longer than that
 * inside the window, every wait wakes up each MPROC__FX_SLICE_MS to
 * look at the word: a lost wake-up costs at most that much latency, never
 * a hang.
 *
 * Surplus units.  The count can include waiters that already took a unit
 * and have not uncounted themselves yet, waiters that timed out, and
 * waiters that died inside the wait (a consumer killed mid-get, whose count
 * stays for ever).  The waker bounds what piles up: ReleaseSemaphore
 * reports the units already there, and whatever exceeds the count it read
 * is taken back at once.  The units left are never fewer than the waiters
 * counted at the wake that have not consumed one, so no owed wake-up is
 * taken back. */

#define MPROC__FX_COUNT 0x00ffffffu
#define MPROC__FX_EPOCH_ONE 0x01000000u
#define MPROC__FX_EPOCH(v) ((v) >> 24)
#define MPROC__FX_GIVEBACK 0.001
#define MPROC__FX_SLICE_MS 50u

int mproc__fx_create(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters) {
  HANDLE sem;
  if (!fx)
    return MPROC_EINVAL;
  fx->word = NULL;
  fx->waiters = NULL;
  fx->sem = MPROC_INVALID_HANDLE;
  if (!word || !waiters)
    return MPROC_EINVAL;
  /* Unnamed, so reachable only by handle duplication, and not
   * inheritable (NULL attributes): passing to a child is explicit. */
  sem = CreateSemaphoreW(NULL, 0, LONG_MAX, NULL);
  if (!sem)
    return mproc__w32_map_error(GetLastError());
  fx->word = word;
  fx->waiters = waiters;
  fx->sem = (mproc_handle_t)sem;
  return MPROC_OK;
}

int mproc__fx_import(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters, mproc_handle_t sem) {
  /* Like mproc__seg_import: the handle is this function's, also on
   * failure. */
  if (!fx || !word || !waiters || !mproc__w32_valid((HANDLE)sem)) {
    if (mproc__w32_valid((HANDLE)sem))
      CloseHandle((HANDLE)sem);
    if (fx) {
      fx->word = NULL;
      fx->waiters = NULL;
      fx->sem = MPROC_INVALID_HANDLE;
    }
    return MPROC_EINVAL;
  }
  fx->word = word;
  fx->waiters = waiters;
  fx->sem = sem;
  return MPROC_OK;
}

void mproc__fx_close(mproc__fx *fx) {
  if (!fx)
    return;
  if (mproc__w32_valid((HANDLE)fx->sem))
    CloseHandle((HANDLE)fx->sem);
  fx->sem = MPROC_INVALID_HANDLE;
  fx->word = NULL;
  fx->waiters = NULL;
}

/* Uncounts a waiter; the last one out also resets the epoch. */
static void mproc__fx_leave(volatile uint32_t *waiters) {
  uint32_t v = mproc__load32(waiters);
  for (;;) {
    if ((v & MPROC__FX_COUNT) == 0)
      return; /* not ours to fix: the word was damaged */
    if (mproc__cas32(waiters, &v,
                     (v & MPROC__FX_COUNT) == 1 ? 0u : v - 1u))
      return;
  }
}

/* mproc__fx_wait's steps answer this while the wait goes on. */
#define MPROC__FX_KEEP_WAITING 1

/* The next wait's length: one slice, or less when the deadline is nearer. */
static DWORD mproc__fx_slice_ms(double deadline) {
  DWORD ms = MPROC__FX_SLICE_MS, left_ms;
  double left;
  if (deadline >= 0) {
    left = deadline - mproc__plat_now();
    left_ms = mproc__w32_ms(left > 0 ? left : 0);
    if (left_ms < ms)
      ms = left_ms;
  }
  return ms;
}

/* This waiter took a semaphore unit: MPROC_OK when it was meant for it (or
 * is a surplus one), else the unit goes back for the waiter it was meant
 * for and the wait goes on. */
static int mproc__fx_took_unit(mproc__fx *fx, HANDLE sem, uint32_t expected,
                               uint32_t reg, double *giveback_start) {
  double now;
  /* Taking the unit synchronizes with the release, which came after
   * the releasing waker's epoch increment: an epoch equal to the one
   * counted in means the unit was released before this wait began. */
  if (MPROC__FX_EPOCH(mproc__load32(fx->waiters)) != MPROC__FX_EPOCH(reg))
    return MPROC_OK;
  now = mproc__plat_now();
  if (*giveback_start < 0)
    *giveback_start = now;
  if (now - *giveback_start >= MPROC__FX_GIVEBACK)
    return MPROC_OK; /* a surplus unit: a spurious wake-up */
  (void)ReleaseSemaphore(sem, 1, NULL);
  if (mproc__load32(fx->word) != expected)
    return MPROC_OK;
  (void)SwitchToThread();
  return MPROC__FX_KEEP_WAITING;
}

/* A slice passed without a unit: the wait ends when the word changed or
 * the deadline passed. */
static int mproc__fx_slice_over(const mproc__fx *fx, uint32_t expected,
                                double deadline) {
  if (mproc__load32(fx->word) != expected)
    return MPROC_OK;
  if (deadline >= 0 && mproc__plat_now() >= deadline)
    return MPROC_ETIMEDOUT;
  return MPROC__FX_KEEP_WAITING;
}

int mproc__fx_wait(mproc__fx *fx, uint32_t expected, double deadline) {
  HANDLE sem;
  uint32_t reg;
  double giveback_start = -1;
  DWORD r;
  int rc = MPROC__FX_KEEP_WAITING;
  if (!fx || !fx->word || !fx->waiters || !mproc__w32_valid((HANDLE)fx->sem))
    return MPROC_EINVAL;
  sem = (HANDLE)fx->sem;
  reg = mproc__add32(fx->waiters, 1u);
  if (mproc__load32(fx->word) != expected)
    rc = MPROC_OK;
  while (rc == MPROC__FX_KEEP_WAITING) {
    r = WaitForSingleObject(sem, mproc__fx_slice_ms(deadline));
    if (r == WAIT_OBJECT_0)
      rc = mproc__fx_took_unit(fx, sem, expected, reg, &giveback_start);
    else if (r == WAIT_TIMEOUT)
      rc = mproc__fx_slice_over(fx, expected, deadline);
    else
      /* WAIT_FAILED: a closed or foreign handle.  Reported rather than
       * taken for a wake-up, which would turn the caller's loop into a
       * spin. */
      rc = mproc__os_fail(MPROC_ESYS, (int)GetLastError());
  }
  mproc__fx_leave(fx->waiters);
  return rc;
}

void mproc__fx_wake(mproc__fx *fx, uint32_t n) {
  uint32_t v, count;
  LONG k, prev = 0, surplus;
  if (!fx || !fx->waiters || n == 0 || !mproc__w32_valid((HANDLE)fx->sem))
    return;
  /* An interlocked read: a full barrier after the caller's store to the
   * word (see the top of this section). */
  v = mproc__add32(fx->waiters, 0u);
  do {
    count = v & MPROC__FX_COUNT;
    if (count == 0)
      return;
  } while (!mproc__cas32(fx->waiters, &v, v + MPROC__FX_EPOCH_ONE));
  k = (LONG)(count < n ? count : n); /* count < 2^24: fits */
  if (!ReleaseSemaphore((HANDLE)fx->sem, k, &prev))
    return; /* ERROR_TOO_MANY_POSTS: more than enough units are there */
  /* More units than counted waiters: the surplus wakes nobody it is owed
   * to.  Take back at most our own units, stopping early if waiters got
   * there first. */
  surplus = prev + k - (LONG)count;
  if (surplus > k)
    surplus = k;
  while (surplus-- > 0)
    if (WaitForSingleObject((HANDLE)fx->sem, 0) != WAIT_OBJECT_0)
      break;
}

uint32_t mproc__fx_waiting(const mproc__fx *fx) {
  return mproc__load32(fx->waiters) & MPROC__FX_COUNT; /* without the epoch */
}
