/*
 * Platform contract, the portable futex (mproc__fx): block on a 32-bit word
 * in a segment until it changes, wake waiters.  Implemented by
 * src/posix/futex.c and src/win32/futex.c.
 *
 * A waitable word lives in shared memory together with a waiter count.  The
 * waker changes the word first, then calls wake; a waiter sleeps only while
 * the word still equals `expected`, so no wake-up is lost.  Spurious
 * wake-ups happen: callers re-check in a loop.
 *   Linux: futex(2) on the word (not FUTEX_PRIVATE: the word is shared).
 *   Windows: a kernel semaphore per object; the waiter count in shared
 *            memory tells the waker how many units to release.
 *   macOS: os_sync_wait_on_address (14.4+) or __ulock_wait2 (11+), shared.
 *   FreeBSD: _umtx_op(UMTX_OP_WAIT_UINT / UMTX_OP_WAKE), shared.
 *   Other POSIX (and the plain-POSIX build): process-shared semaphores in
 *            a segment of the futex's own, passed like the Windows
 *            semaphore (src/posix/futex.c, "the wake channel").
 */
#ifndef MPROC_PLAT_FUTEX_H
#define MPROC_PLAT_FUTEX_H

#include <stdint.h>

#include "plat/core.h"

typedef struct mproc__fx {
  volatile uint32_t *word;
  volatile uint32_t *waiters;
  mproc_handle_t sem; /* Windows: its semaphore.  POSIX without a futex of
                       * its own: the wake channel's segment.  Otherwise
                       * MPROC_INVALID_HANDLE. */
  void *chan;         /* POSIX without a futex: the mapped wake channel */
} mproc__fx;

/* Make the OS part of a futex in a new object (Windows: the semaphore). */
int mproc__fx_create(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters);
/* Rebuild in a child from the handle it received (invalid where the OS
 * keys futexes by address: Linux, macOS).
 * Takes ownership of `sem` (closes it) also on failure. */
int mproc__fx_import(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters, mproc_handle_t sem);
void mproc__fx_close(mproc__fx *fx);
/* Sleep while *word == expected, at most until `deadline` (mproc__plat_now()
 * seconds; negative: no limit).  0 (woken, changed, or spurious),
 * MPROC_ETIMEDOUT, or (Windows) MPROC_ESYS/MPROC_EINVAL when the wait itself
 * failed: callers must not loop on those.  `*waiters` belongs to the
 * backend (Windows keeps a wake counter in its top bits): the only thing
 * modules may rely on is that zero means nobody waits. */
int mproc__fx_wait(mproc__fx *fx, uint32_t expected, double deadline);
/* Wake up to n waiters (n = UINT32_MAX: all). */
void mproc__fx_wake(mproc__fx *fx, uint32_t n);
/* How many threads are counted inside mproc__fx_wait on this futex now (the
 * backend's count without its other bits).  For tests that must know a
 * waiter is asleep before they wake it; a snapshot, nothing to act on. */
uint32_t mproc__fx_waiting(const mproc__fx *fx);

#endif
