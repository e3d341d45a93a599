/* POSIX backend: the portable futex (plat/futex.h).  Linux: futex(2) on the
 * shared word.  macOS: os_sync_wait_on_address (macOS 14.4+) or the
 * __ulock_wait2/__ulock_wake system calls (macOS 11+), both in their
 * cross-process ("shared") form.  Other systems: a short sleep-and-look loop
 * (correct, slower; FreeBSD's _umtx_op is still to do). */
#include <errno.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "internal.h"
#include "px_have.h"

#if MPROC__HAVE_LINUX_FUTEX
#include <linux/futex.h>
#include <sys/syscall.h>
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

#else
/* No futex here: look again after a short sleep. */
static int mproc__fx_os_wait(volatile uint32_t *word, uint32_t expected,
                             double deadline) {
  struct timespec ts = {0, 200 * 1000};
  if (mproc__load32(word) != expected)
    return 0;
  if (deadline >= 0 && mproc__plat_now() >= deadline) {
    errno = ETIMEDOUT;
    return -1;
  }
  (void)nanosleep(&ts, NULL);
  return 0;
}

static void mproc__fx_os_wake(volatile uint32_t *word, uint32_t n) {
  (void)word;
  (void)n;
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

uint32_t mproc__fx_waiting(const mproc__fx *fx) {
  return mproc__load32(fx->waiters);
}
