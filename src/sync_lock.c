/*
 * Lock and RLock (include/mproc/ipc.h): a lock word (src/sync.h) in its
 * own shared segment, or in a condition's (its default RLock).
 */
#include <stdlib.h>
#include <string.h>

#include "sync.h"

/* ------------------------------------------------------------------------ */
/* Lock and RLock                                                            */
/* ------------------------------------------------------------------------ */

int mproc__lock_ok(const mproc_lock *l) {
  return mproc__obj_is(l, &mproc__lock_type);
}

static mproc_lock *mproc__lock_alloc(int recursive, int kind) {
  mproc_lock *l = (mproc_lock *)mproc__obj_new(sizeof(*l), &mproc__lock_type);
  if (!l)
    return NULL;
  l->recursive = recursive;
  l->kind = kind;
  l->seg.handle = MPROC_INVALID_HANDLE;
  l->fx.sem = MPROC_INVALID_HANDLE;
  return l;
}

void mproc__lock_destroy(mproc_lock *l) {
  if (l->fx.word)
    mproc__fx_close(&l->fx);
  if (l->kind != MPROC__LOCK_BORROWED)
    mproc__seg_close(&l->seg);
  l->hdr.magic = 0;
  free(l);
}

/* A lock whose word lives at `offset` in another object's segment. */
int mproc__lock_view(mproc_lock **out, const mproc__seg *host, size_t offset,
                     int recursive, int create, mproc_handle_t sem) {
  mproc_lock *l = mproc__lock_alloc(recursive, MPROC__LOCK_BORROWED);
  mproc__lockword *lw =
      (mproc__lockword *)((unsigned char *)host->addr + offset);
  int rc;
  *out = NULL;
  if (!l) {
    if (!create)
      mproc__drop_handles(&sem, 1);
    return MPROC_ENOMEM;
  }
  l->host = host;
  l->offset = offset;
  l->lw = lw;
  rc = create ? mproc__lockword_fx(&l->fx, lw)
              : mproc__fx_import(&l->fx, &lw->word, &lw->fxw, sem);
  if (rc < 0) {
    l->fx.word = NULL;
    mproc__lock_destroy(l);
    return rc;
  }
  *out = l;
  return MPROC_OK;
}

int mproc_lock_create(mproc_lock **out, int recursive) {
  mproc_lock *l;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (recursive != 0 && recursive != 1)
    return MPROC_EINVAL;
  if (!(l = mproc__lock_alloc(recursive, MPROC__LOCK_OWN)))
    return MPROC_ENOMEM;
  if ((rc = mproc__seg_create(&l->seg, NULL, sizeof(mproc__lockword))) < 0)
    goto fail;
  l->host = &l->seg;
  l->lw = (mproc__lockword *)l->seg.addr;
  mproc__lockword_init(l->lw);
  if ((rc = mproc__lockword_fx(&l->fx, l->lw)) < 0) {
    l->fx.word = NULL;
    goto fail;
  }
  *out = l;
  return MPROC_OK;
fail:
  mproc__lock_destroy(l);
  return rc;
}

/* The fast paths are spelled out here rather than calling
 * mproc__lockword_acquire, so an uncontended acquire is one call, one
 * cached pid load and one CAS. */
int mproc_lock_acquire(mproc_lock *lock, double timeout) {
  uint32_t me, expect = 0;
  int rc;
  if (!mproc__lock_ok(lock) || timeout != timeout)
    return MPROC_EINVAL;
  me = mproc__lockword_me();
  if (mproc__cas32(&lock->lw->word, &expect, me)) {
    mproc__lockword_took(lock->lw, lock->recursive);
    return MPROC_OK;
  }
  if (lock->recursive &&
      (rc = mproc__lockword_recurse(lock->lw, me, expect)) != 0)
    return rc < 0 ? rc : MPROC_OK;
  return mproc__lockword_slow(lock->lw, &lock->fx, lock->recursive, me,
                              mproc__deadline(timeout));
}

int mproc_lock_release(mproc_lock *lock) {
  if (!mproc__lock_ok(lock))
    return MPROC_EINVAL;
  if (!lock->recursive) {
    if (mproc__load32(&lock->lw->word) == 0)
      return MPROC_ESTATE;
    mproc__lockword_unlock(lock->lw, &lock->fx);
    return MPROC_OK;
  }
  return mproc__lockword_release(lock->lw, &lock->fx, 1);
}

int mproc_lock_locked(mproc_lock *lock) {
  if (!mproc__lock_ok(lock))
    return MPROC_EINVAL;
  return mproc__lockword_locked(lock->lw);
}

void mproc__lock_test_plant(mproc_lock *lock, uint32_t pid) {
  uint64_t s = (uint64_t)pid << 32;
  /* Any start time but the real one (folded start times are nonzero). */
  if (mproc__stamp_alive(s | 1u))
    s |= 2u;
  else
    s |= 1u;
  mproc__store32(&lock->lw->word, pid);
  mproc__store64(&lock->lw->stamp, s);
}

mproc_lock *mproc_lock_free(mproc_lock *lock) {
  /* A condition's own lock and a child's argument belong to their owner. */
  if (mproc__lock_ok(lock) && lock->kind == MPROC__LOCK_OWN)
    mproc__lock_destroy(lock);
  return NULL;
}

/* u8 recursive, u64 offset of the word, then the host segment (any lock
 * travels as its host's segment, so a condition's lock can be passed on its
 * own too). */
int mproc__lock_export(const void *obj, mproc__wr *w, mproc__handles *hs) {
  const mproc_lock *l = (const mproc_lock *)obj;
  const mproc__fx *fxs[1];
  if (!mproc__lock_ok(l))
    return MPROC_EINVAL;
  fxs[0] = &l->fx;
  mproc__wr_u8(w, (uint8_t)l->recursive);
  mproc__wr_u64(w, (uint64_t)l->offset);
  return mproc__export_seg(l->host, fxs, 1, w, hs);
}

int mproc__lock_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                       void **out) {
  uint8_t recursive = mproc__rd_u8(r);
  uint64_t offset = mproc__rd_u64(r);
  mproc_lock *l = mproc__lock_alloc(recursive, MPROC__LOCK_IMPORTED);
  mproc_handle_t sem = MPROC_INVALID_HANDLE;
  int ok = l && recursive <= 1 && offset % 8 == 0 &&
           offset <= (uint64_t)SIZE_MAX - sizeof(mproc__lockword);
  size_t off = ok ? (size_t)offset : 0;
  mproc__seg seg;
  int rc;
  *out = NULL;
  rc = mproc__import_seg(r, hs, nh, 1, off + sizeof(mproc__lockword), ok, &seg,
                         &sem);
  if (rc < 0) {
    if (l)
      mproc__lock_destroy(l);
    return l ? rc : MPROC_ENOMEM;
  }
  l->seg = seg;
  l->host = &l->seg;
  l->offset = off;
  l->lw = (mproc__lockword *)((unsigned char *)l->seg.addr + off);
  if ((rc = mproc__fx_import(&l->fx, &l->lw->word, &l->lw->fxw, sem)) < 0) {
    l->fx.word = NULL;
    mproc__lock_destroy(l);
    return rc;
  }
  *out = l;
  return MPROC_OK;
}

void mproc__lock_objfree(void *obj) {
  if (mproc__lock_ok((mproc_lock *)obj))
    mproc__lock_destroy((mproc_lock *)obj);
}

const mproc__objtype mproc__lock_type = {MPROC_OBJ_LOCK, mproc__lock_export,
                                         mproc__lock_import,
                                         mproc__lock_objfree};
