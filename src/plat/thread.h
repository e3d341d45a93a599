/*
 * Platform contract, threads: a tiny thread and condition-variable layer for
 * the pool's handler thread (C11 <threads.h> is not in MSVC).  POSIX:
 * pthreads (src/posix/thread.c); Windows: CreateThread and
 * CONDITION_VARIABLE over the SRW lock that mproc__mutex_t already is
 * (src/win32/thread.c).
 */
#ifndef MPROC_PLAT_THREAD_H
#define MPROC_PLAT_THREAD_H

#include "plat/core.h"

typedef struct mproc__thread mproc__thread;

/* Start fn(arg) on a new thread.  0, MPROC_ENOMEM or MPROC_ESYS. */
int mproc__thread_start(mproc__thread **out, void (*fn)(void *), void *arg);
/* Wait for the thread to end and release it (NULL allowed). */
void mproc__thread_join(mproc__thread *t);

/* A condition variable used with an mproc__mutex_t. */
typedef struct mproc__cond {
  void *impl;
} mproc__cond;

int mproc__cond_init(mproc__cond *c);
void mproc__cond_destroy(mproc__cond *c);
void mproc__cond_broadcast(mproc__cond *c);
/* Wait with `m` held until woken or the absolute mproc__plat_now() deadline
 * passes (negative: no limit).  0 or MPROC_ETIMEDOUT; spurious wake-ups
 * happen: callers loop on their predicate. */
int mproc__cond_wait(mproc__cond *c, mproc__mutex_t *m, double deadline);

#endif
