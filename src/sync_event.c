/*
 * Event (include/mproc/ipc.h): one futex word holding the flag and a
 * generation.
 */
#include <stdlib.h>
#include <string.h>

#include "sync.h"

/* ------------------------------------------------------------------------ */
/* Event                                                                     */
/* ------------------------------------------------------------------------ */

/* word = generation << 1 | flag.  set() bumps the generation, so a waiter
 * that saw the flag clear returns when the word changes, even if clear()
 * came right after set() (threading.Event's rule: the wait was notified). */
typedef struct mproc__event_shared {
  volatile uint32_t word;
  volatile uint32_t fxw;
} mproc__event_shared;

struct mproc_event {
  mproc__obj hdr;
  mproc__seg seg;
  mproc__event_shared *sh;
  mproc__fx fx;
  int imported;
};

static int mproc__event_ok(const mproc_event *e) {
  return mproc__obj_is(e, &mproc__event_type);
}

static mproc_event *mproc__event_alloc(void) {
  mproc_event *e =
      (mproc_event *)mproc__obj_new(sizeof(*e), &mproc__event_type);
  if (!e)
    return NULL;
  e->seg.handle = MPROC_INVALID_HANDLE;
  return e;
}

static void mproc__event_destroy(mproc_event *e) {
  if (e->fx.word)
    mproc__fx_close(&e->fx);
  mproc__seg_close(&e->seg);
  e->hdr.magic = 0;
  free(e);
}

int mproc_event_create(mproc_event **out) {
  mproc_event *e;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (!(e = mproc__event_alloc()))
    return MPROC_ENOMEM;
  if ((rc = mproc__seg_create(&e->seg, NULL, sizeof(mproc__event_shared))) < 0)
    goto fail;
  e->sh = (mproc__event_shared *)e->seg.addr;
  if ((rc = mproc__fx_create(&e->fx, &e->sh->word, &e->sh->fxw)) < 0)
    goto fail;
  *out = e;
  return MPROC_OK;
fail:
  e->fx.word = NULL;
  mproc__event_destroy(e);
  return rc;
}

int mproc_event_set(mproc_event *ev) {
  uint32_t v;
  if (!mproc__event_ok(ev))
    return MPROC_EINVAL;
  v = mproc__load32(&ev->sh->word);
  do {
    if (v & 1u)
      return MPROC_OK;
  } while (!mproc__cas32(&ev->sh->word, &v, (v + 2u) | 1u));
  mproc__fx_wake(&ev->fx, UINT32_MAX);
  return MPROC_OK;
}

int mproc_event_clear(mproc_event *ev) {
  uint32_t v;
  if (!mproc__event_ok(ev))
    return MPROC_EINVAL;
  v = mproc__load32(&ev->sh->word);
  do {
    if (!(v & 1u))
      return MPROC_OK;
  } while (!mproc__cas32(&ev->sh->word, &v, v & ~1u));
  return MPROC_OK;
}

int mproc_event_is_set(mproc_event *ev) {
  if (!mproc__event_ok(ev))
    return MPROC_EINVAL;
  return (int)(mproc__load32(&ev->sh->word) & 1u);
}

int mproc_event_wait(mproc_event *ev, double timeout) {
  double deadline, now;
  uint32_t seen;
  if (!mproc__event_ok(ev) || timeout != timeout)
    return MPROC_EINVAL;
  seen = mproc__load32(&ev->sh->word);
  if (seen & 1u)
    return MPROC_OK;
  deadline = mproc__deadline(timeout);
  for (;;) {
    /* Only set() changes a clear word, so any change means "was set". */
    if (mproc__load32(&ev->sh->word) != seen)
      return MPROC_OK;
    now = mproc__plat_now();
    if (mproc__expired(deadline, now))
      return MPROC_ETIMEDOUT;
    (void)mproc__fx_wait(
        &ev->fx, seen,
        mproc__sleep_until(deadline, now, MPROC__IDLE_SLICE_SECONDS));
  }
}

uint32_t mproc__event_test_waiting(mproc_event *ev) {
  return mproc__event_ok(ev) ? mproc__fx_waiting(&ev->fx) : 0u;
}

mproc_event *mproc_event_free(mproc_event *ev) {
  if (mproc__event_ok(ev) && !ev->imported)
    mproc__event_destroy(ev);
  return NULL;
}

static int mproc__event_export(const void *obj, mproc__wr *w,
                               mproc__handles *hs) {
  const mproc_event *e = (const mproc_event *)obj;
  const mproc__fx *fxs[1];
  if (!mproc__event_ok(e))
    return MPROC_EINVAL;
  fxs[0] = &e->fx;
  return mproc__export_seg(&e->seg, fxs, 1, w, hs);
}

static int mproc__event_import(mproc__rd *r, const mproc_handle_t *hs,
                               size_t nh, void **out) {
  mproc_event *e = mproc__event_alloc();
  mproc_handle_t sem = MPROC_INVALID_HANDLE;
  mproc__seg seg;
  int rc;
  *out = NULL;
  rc = mproc__import_seg(r, hs, nh, 1, sizeof(mproc__event_shared), e != NULL,
                         &seg, &sem);
  if (rc < 0) {
    if (e)
      mproc__event_destroy(e);
    return e ? rc : MPROC_ENOMEM;
  }
  e->seg = seg;
  e->imported = 1;
  e->sh = (mproc__event_shared *)e->seg.addr;
  if ((rc = mproc__fx_import(&e->fx, &e->sh->word, &e->sh->fxw, sem)) < 0) {
    e->fx.word = NULL;
    mproc__event_destroy(e);
    return rc;
  }
  *out = e;
  return MPROC_OK;
}

static void mproc__event_objfree(void *obj) {
  if (mproc__event_ok((mproc_event *)obj))
    mproc__event_destroy((mproc_event *)obj);
}

const mproc__objtype mproc__event_type = {MPROC_OBJ_EVENT, mproc__event_export,
                                          mproc__event_import,
                                          mproc__event_objfree};
