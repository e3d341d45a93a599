/* Threads and condition variables for the pool (plat/thread.h) on pthreads. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"
#include "px_have.h"

struct mproc__thread {
  pthread_t tid;
  void (*fn)(void *);
  void *arg;
};

static void *mproc__thread_trampoline(void *p) {
  mproc__thread *t = (mproc__thread *)p;
  t->fn(t->arg);
  return NULL;
}

int mproc__thread_start(mproc__thread **out, void (*fn)(void *), void *arg) {
  mproc__thread *t = (mproc__thread *)calloc(1, sizeof(*t));
  int rc;
  if (!t)
    return MPROC_ENOMEM;
  t->fn = fn;
  t->arg = arg;
  rc = pthread_create(&t->tid, NULL, mproc__thread_trampoline, t);
  if (rc != 0) {
    free(t);
    return mproc__os_fail(MPROC_ESYS, rc);
  }
  *out = t;
  return MPROC_OK;
}

void mproc__thread_join(mproc__thread *t) {
  if (!t)
    return;
  (void)pthread_join(t->tid, NULL);
  free(t);
}

int mproc__cond_init(mproc__cond *c) {
  pthread_cond_t *cv = (pthread_cond_t *)malloc(sizeof(*cv));
  pthread_condattr_t at;
  int rc;
  if (!cv)
    return MPROC_ENOMEM;
  /* Deadlines are mproc__plat_now() seconds, which is CLOCK_MONOTONIC: a
   * wall-clock jump must not stretch or cut a pool timeout.  macOS has no
   * pthread_condattr_setclock: mproc__cond_wait waits a relative time there
   * instead, which no wall-clock jump affects either. */
  if (pthread_condattr_init(&at) != 0) {
    free(cv);
    return MPROC_ESYS;
  }
#if !MPROC__APPLE
  (void)pthread_condattr_setclock(&at, CLOCK_MONOTONIC);
#endif
  rc = pthread_cond_init(cv, &at);
  (void)pthread_condattr_destroy(&at);
  if (rc != 0) {
    free(cv);
    return mproc__os_fail(MPROC_ESYS, rc);
  }
  c->impl = cv;
  return MPROC_OK;
}

void mproc__cond_destroy(mproc__cond *c) {
  if (!c->impl)
    return;
  (void)pthread_cond_destroy((pthread_cond_t *)c->impl);
  free(c->impl);
  c->impl = NULL;
}

void mproc__cond_broadcast(mproc__cond *c) {
  (void)pthread_cond_broadcast((pthread_cond_t *)c->impl);
}

int mproc__cond_wait(mproc__cond *c, mproc__mutex_t *m, double deadline) {
  struct timespec ts;
  double s;
  int rc;
  /* No limit, also for deadlines too far (or not finite) to convert to a
   * time_t safely: callers re-check their deadline after every wake-up. */
  if (deadline < 0 || !(deadline < mproc__plat_now() + 1e9)) {
    (void)pthread_cond_wait((pthread_cond_t *)c->impl, m);
    return MPROC_OK;
  }
#if MPROC__APPLE
  /* The time left until the monotonic deadline, waited for relative to now
   * (pthread_cond_timedwait_relative_np, an Apple extension in <pthread.h>;
   * compile-checked only).  A wake-up past the deadline makes the caller
   * re-check and come back with nothing left: report the timeout. */
  s = deadline - mproc__plat_now();
  if (s <= 0)
    return MPROC_ETIMEDOUT;
#else
  s = deadline;
#endif
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec >= 1000000000L)
    ts.tv_nsec = 999999999L;
#if MPROC__APPLE
  rc = pthread_cond_timedwait_relative_np((pthread_cond_t *)c->impl, m, &ts);
#else
  rc = pthread_cond_timedwait((pthread_cond_t *)c->impl, m, &ts);
#endif
  /* EINVAL would return at once without waiting: report it as a timeout
   * rather than let a caller loop on it with the mutex held. */
  return rc == 0 ? MPROC_OK : MPROC_ETIMEDOUT;
}
