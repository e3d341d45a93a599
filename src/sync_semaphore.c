/*
 * Semaphore and BoundedSemaphore (include/mproc/ipc.h): a counter word
 * that is also the futex its waiters sleep on.
 */
#include <stdlib.h>
#include <string.h>

#include "sync.h"

/* ------------------------------------------------------------------------ */
/* Semaphore and BoundedSemaphore                                            */
/* ------------------------------------------------------------------------ */

typedef struct mproc__sem_shared {
  volatile uint32_t value; /* the futex word: waiters sleep while it is 0 */
  volatile uint32_t fxw;
  uint32_t max; /* bounded: the initial value; else MPROC_SEM_VALUE_MAX */
  uint32_t bounded;
} mproc__sem_shared;

struct mproc_semaphore {
  mproc__obj hdr;
  mproc__seg seg;
  mproc__sem_shared *sh;
  mproc__fx fx;
  int imported;
};

static int mproc__sem_ok(const mproc_semaphore *s) {
  return mproc__obj_is(s, &mproc__semaphore_type);
}

static mproc_semaphore *mproc__sem_alloc(void) {
  mproc_semaphore *s =
      (mproc_semaphore *)mproc__obj_new(sizeof(*s), &mproc__semaphore_type);
  if (!s)
    return NULL;
  s->seg.handle = MPROC_INVALID_HANDLE;
  return s;
}

static void mproc__sem_destroy(mproc_semaphore *s) {
  if (s->fx.word)
    mproc__fx_close(&s->fx);
  mproc__seg_close(&s->seg);
  s->hdr.magic = 0;
  free(s);
}

int mproc_semaphore_create(mproc_semaphore **out, unsigned value, int bounded) {
  mproc_semaphore *s;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if ((bounded != 0 && bounded != 1) || value > MPROC_SEM_VALUE_MAX)
    return MPROC_EINVAL;
  if (!(s = mproc__sem_alloc()))
    return MPROC_ENOMEM;
  if ((rc = mproc__seg_create(&s->seg, NULL, sizeof(mproc__sem_shared))) < 0)
    goto fail;
  s->sh = (mproc__sem_shared *)s->seg.addr;
  s->sh->value = (uint32_t)value;
  s->sh->max = bounded ? (uint32_t)value : (uint32_t)MPROC_SEM_VALUE_MAX;
  s->sh->bounded = (uint32_t)bounded;
  if ((rc = mproc__fx_create(&s->fx, &s->sh->value, &s->sh->fxw)) < 0)
    goto fail;
  *out = s;
  return MPROC_OK;
fail:
  s->fx.word = NULL;
  mproc__sem_destroy(s);
  return rc;
}

int mproc_semaphore_acquire(mproc_semaphore *sem, double timeout) {
  volatile uint32_t *word;
  double deadline, now;
  uint32_t v;
  if (!mproc__sem_ok(sem) || timeout != timeout)
    return MPROC_EINVAL;
  word = &sem->sh->value;
  v = mproc__load32(word);
  while (v > 0)
    if (mproc__cas32(word, &v, v - 1))
      return MPROC_OK;
  deadline = mproc__deadline(timeout);
  for (;;) {
    v = mproc__load32(word);
    if (v > 0) {
      if (mproc__cas32(word, &v, v - 1))
        return MPROC_OK;
      continue;
    }
    now = mproc__plat_now();
    if (mproc__expired(deadline, now))
      return MPROC_ETIMEDOUT;
    /* Slices: a waiter woken for a release may die before taking it. */
    (void)mproc__fx_wait(
        &sem->fx, 0u,
        mproc__sleep_until(deadline, now, MPROC__IDLE_SLICE_SECONDS));
  }
}

uint32_t mproc__semaphore_test_waiting(mproc_semaphore *sem) {
  return mproc__sem_ok(sem) ? mproc__fx_waiting(&sem->fx) : 0u;
}

int mproc_semaphore_release(mproc_semaphore *sem) {
  volatile uint32_t *word;
  uint32_t v, max;
  if (!mproc__sem_ok(sem))
    return MPROC_EINVAL;
  word = &sem->sh->value;
  max = sem->sh->max;
  if (max > MPROC_SEM_VALUE_MAX)
    max = MPROC_SEM_VALUE_MAX;
  v = mproc__load32(word);
  do {
    if (v >= max)
      return MPROC_EOVERFLOW;
  } while (!mproc__cas32(word, &v, v + 1));
  mproc__fx_wake(&sem->fx, 1);
  return MPROC_OK;
}

int mproc_semaphore_value(mproc_semaphore *sem, unsigned *value) {
  if (!mproc__sem_ok(sem) || !value)
    return MPROC_EINVAL;
  *value = (unsigned)mproc__load32(&sem->sh->value);
  return MPROC_OK;
}

mproc_semaphore *mproc_semaphore_free(mproc_semaphore *sem) {
  if (mproc__sem_ok(sem) && !sem->imported)
    mproc__sem_destroy(sem);
  return NULL;
}

static int mproc__sem_export(const void *obj, mproc__wr *w,
                             mproc__handles *hs) {
  const mproc_semaphore *s = (const mproc_semaphore *)obj;
  const mproc__fx *fxs[1];
  if (!mproc__sem_ok(s))
    return MPROC_EINVAL;
  fxs[0] = &s->fx;
  return mproc__export_seg(&s->seg, fxs, 1, w, hs);
}

static int mproc__sem_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                             void **out) {
  mproc_semaphore *s = mproc__sem_alloc();
  mproc_handle_t sem = MPROC_INVALID_HANDLE;
  mproc__seg seg;
  int rc;
  *out = NULL;
  rc = mproc__import_seg(r, hs, nh, 1, sizeof(mproc__sem_shared), s != NULL,
                         &seg, &sem);
  if (rc < 0) {
    if (s)
      mproc__sem_destroy(s);
    return s ? rc : MPROC_ENOMEM;
  }
  s->seg = seg;
  s->imported = 1;
  s->sh = (mproc__sem_shared *)s->seg.addr;
  if ((rc = mproc__fx_import(&s->fx, &s->sh->value, &s->sh->fxw, sem)) < 0) {
    s->fx.word = NULL;
    mproc__sem_destroy(s);
    return rc;
  }
  *out = s;
  return MPROC_OK;
}

static void mproc__sem_objfree(void *obj) {
  if (mproc__sem_ok((mproc_semaphore *)obj))
    mproc__sem_destroy((mproc_semaphore *)obj);
}

const mproc__objtype mproc__semaphore_type = {
    MPROC_OBJ_SEMAPHORE, mproc__sem_export, mproc__sem_import,
    mproc__sem_objfree};
