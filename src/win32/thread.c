/* Threads and condition variables for the pool (plat/thread.h) on Windows:
 * mproc__mutex_t is an SRW lock, so SleepConditionVariableSRW pairs with
 * it directly. */
#include <windows.h>

#include <stdlib.h>

#include "internal.h"

struct mproc__thread {
  HANDLE h;
  void (*fn)(void *);
  void *arg;
};

static DWORD WINAPI mproc__thread_trampoline(LPVOID p) {
  mproc__thread *t = (mproc__thread *)p;
  t->fn(t->arg);
  return 0;
}

int mproc__thread_start(mproc__thread **out, void (*fn)(void *), void *arg) {
  mproc__thread *t = (mproc__thread *)calloc(1, sizeof(*t));
  if (!t)
    return MPROC_ENOMEM;
  t->fn = fn;
  t->arg = arg;
  t->h = CreateThread(NULL, 0, mproc__thread_trampoline, t, 0, NULL);
  if (!t->h) {
    DWORD e = GetLastError();
    free(t);
    return mproc__os_fail(MPROC_ESYS, (int)e);
  }
  *out = t;
  return MPROC_OK;
}

void mproc__thread_join(mproc__thread *t) {
  if (!t)
    return;
  (void)WaitForSingleObject(t->h, INFINITE);
  CloseHandle(t->h);
  free(t);
}

int mproc__cond_init(mproc__cond *c) {
  CONDITION_VARIABLE *cv = (CONDITION_VARIABLE *)malloc(sizeof(*cv));
  if (!cv)
    return MPROC_ENOMEM;
  InitializeConditionVariable(cv);
  c->impl = cv;
  return MPROC_OK;
}

void mproc__cond_destroy(mproc__cond *c) {
  free(c->impl); /* a CONDITION_VARIABLE needs no destruction */
  c->impl = NULL;
}

void mproc__cond_broadcast(mproc__cond *c) {
  WakeAllConditionVariable((CONDITION_VARIABLE *)c->impl);
}

int mproc__cond_wait(mproc__cond *c, mproc__mutex_t *m, double deadline) {
  DWORD ms = INFINITE;
  if (deadline >= 0) {
    double left = deadline - mproc__plat_now();
    /* A DWORD holds ~49 days of milliseconds: wait that long at most (the
     * caller re-checks its deadline), never convert an out-of-range double. */
    if (!(left < 4.0e6))
      ms = INFINITE - 1;
    else
      ms = left <= 0 ? 0 : (DWORD)(left * 1000.0 + 0.999);
    if (ms == INFINITE)
      ms = INFINITE - 1;
  }
  if (!SleepConditionVariableSRW((CONDITION_VARIABLE *)c->impl,
                                 (PSRWLOCK)(void *)m, ms, 0))
    return GetLastError() == ERROR_TIMEOUT ? MPROC_ETIMEDOUT : MPROC_OK;
  return MPROC_OK;
}
