/* POSIX backend: the portable futex (plat/futex.h).  Linux: futex(2) on the
 * shared word; elsewhere a short sleep-and-look loop. */
#include <errno.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "atomics.h"
#include "internal.h"

int mproc__fx_create(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters) {
  fx->word = word;
  fx->waiters = waiters;
  fx->sem = MPROC_INVALID_HANDLE; /* the kernel keys futexes by address */
  return MPROC_OK;
}

int mproc__fx_import(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters, mproc_handle_t sem) {
  if (sem != MPROC_INVALID_HANDLE)
    (void)close(sem);
  return mproc__fx_create(fx, word, waiters);
}

void mproc__fx_close(mproc__fx *fx) { fx->word = fx->waiters = NULL; }

#ifdef __linux__
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
#endif

int mproc__fx_wait(mproc__fx *fx, uint32_t expected, double deadline) {
  int rc = MPROC_OK;
  (void)mproc__add32(fx->waiters, 1);
#ifdef __linux__
  {
    struct timespec ts, *tsp = NULL;
    long r;
    if (deadline >= 0) {
      double whole = (double)(time_t)deadline;
      ts.tv_sec = (time_t)deadline;
      ts.tv_nsec = (long)((deadline - whole) * 1e9);
      if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
      tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, the
     * clock mproc__plat_now() reads, so retries after EINTR keep the
     * original deadline.  Not FUTEX_PRIVATE_FLAG: the word is shared
     * between processes, and the kernel must key it by the page. */
    r = mproc__futex_wait_abs(fx->word, expected, tsp);
    if (r != 0 && errno == ETIMEDOUT)
      rc = MPROC_ETIMEDOUT;
  }
#else
  {
    /* No futex: look again after a short sleep. */
    struct timespec ts = {0, 200 * 1000};
    if (mproc__load32(fx->word) == expected) {
      if (deadline >= 0 && mproc__plat_now() >= deadline)
        rc = MPROC_ETIMEDOUT;
      else
        (void)nanosleep(&ts, NULL);
    }
  }
#endif
  (void)mproc__add32(fx->waiters, (uint32_t)-1);
  return rc;
}

void mproc__fx_wake(mproc__fx *fx, uint32_t n) {
  /* The waker changed the word before this load, and a waiter counts
   * itself before it sleeps: if no waiter is counted here, any later one
   * sees the new word and does not sleep (both orders are seq_cst). */
  if (mproc__load32(fx->waiters) == 0)
    return;
#ifdef __linux__
  (void)syscall(SYS_futex, fx->word, FUTEX_WAKE,
                n > (uint32_t)INT_MAX ? INT_MAX : (int)n, NULL, NULL, 0);
#else
  (void)n;
#endif
}

uint32_t mproc__fx_waiting(const mproc__fx *fx) {
  return mproc__load32(fx->waiters);
}
