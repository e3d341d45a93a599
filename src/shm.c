/* Shared memory blocks (Python's shared_memory.SharedMemory) and shared
 * C arrays (Python's Value / Array / RawValue / RawArray), built on the
 * segments of plat/seg.h, which already keep the exact size, the creator's
 * pid and the "kept" mark in a header of their own (src/seg.c).
 *
 * Who removes a name: Python leaves it to the user (and its resource
 * tracker); mproc's rule is that the process that created a named block
 * unlinks it when it frees the block, unless mproc_shm_keep() said the
 * block must outlive it.  The segment layer's own "owner unlinks on close"
 * is not used for this, because a fork child holds a byte copy of its
 * parent's object: freeing that copy must not take the name away. */
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

/* How long attach waits for a creator that is between creating the name
 * and writing the segment header (a few system calls, unless descheduled
 * on a busy machine). */
#define MPROC__SHM_ATTACH_WAIT 2.0

struct mproc_shm {
  mproc__obj hdr;
  mproc__seg seg; /* seg.name: the user's name, or NULL */
  int64_t creator_pid; /* the creating process, for named blocks; else 0 */
  volatile uint32_t keep;
  volatile uint32_t unlinked; /* this object unlinked the name already */
};

extern const mproc__objtype mproc__shm_type;

static int mproc__shm_ok(const mproc_shm *shm) {
  return mproc__obj_is(shm, &mproc__shm_type);
}

static mproc_shm *mproc__shm_new(void) {
  mproc_shm *shm = (mproc_shm *)mproc__obj_new(sizeof(*shm), &mproc__shm_type);
  if (!shm)
    return NULL;
  shm->seg.handle = MPROC_INVALID_HANDLE;
  return shm;
}

/* Unmaps and closes; the name is left alone (see the top of the file). */
static void mproc__shm_release(mproc_shm *shm) {
  shm->seg.owner = 0;
  mproc__seg_close(&shm->seg);
  shm->hdr.magic = 0;
  free(shm);
}

int mproc_shm_create(mproc_shm **out, const char *name, size_t size) {
  mproc_shm *shm;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (size == 0 || (name && mproc__seg_name_ok(name) != 1))
    return MPROC_EINVAL;
  if (!(shm = mproc__shm_new()))
    return MPROC_ENOMEM;
  if ((rc = mproc__seg_create(&shm->seg, name, size)) < 0) {
    free(shm);
    return rc;
  }
  shm->seg.owner = 0;
  if (name)
    shm->creator_pid = mproc__plat_getpid();
  *out = shm;
  return MPROC_OK;
}

int mproc_shm_attach(mproc_shm **out, const char *name) {
  mproc_shm *shm;
  double deadline = -1;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (!name || mproc__seg_name_ok(name) != 1)
    return MPROC_EINVAL;
  if (!(shm = mproc__shm_new()))
    return MPROC_ENOMEM;
  /* With a valid name, MPROC_EINVAL from the segment layer means the block
   * exists but does not look complete: its creator is between creating the
   * name and sizing it or writing its header.  Look again every millisecond
   * for a while; a block that never completes (its creator died there) is
   * reported as absent.
   *
   * A documented exception to "no sleep-and-look loops", for an OS rule:
   * POSIX has no call that creates a shared memory object with its size
   * (shm_open(O_CREAT | O_EXCL) makes it empty, ftruncate sizes it after),
   * no rename or link to publish a finished one under its name, and no
   * event when an object's size changes.  Until ftruncate the object has
   * no byte that could hold a futex word (touching a mapping past its end
   * is SIGBUS).  On Windows CreateFileMapping sizes the section as it names
   * it, but the header is still written after, with nothing to wait on.
   * A named semaphore created before the segment could carry a real wait,
   * at the price of a second named object per block for every program to
   * clean up after a crash (and macOS has no sem_timedwait); for a window
   * of a few system calls the retry is the smaller rule.  The loop almost
   * never runs twice, and attach returns by MPROC__SHM_ATTACH_WAIT whatever
   * the creator does. */
  while ((rc = mproc__seg_attach(&shm->seg, name)) == MPROC_EINVAL) {
    if (deadline < 0)
      deadline = mproc__plat_now() + MPROC__SHM_ATTACH_WAIT;
    else if (mproc__plat_now() > deadline) {
      rc = MPROC_ENOTFOUND;
      break;
    }
    mproc__plat_sleep(0.001);
  }
  if (rc < 0) {
    free(shm);
    return rc;
  }
  shm->seg.owner = 0;
  *out = shm;
  return MPROC_OK;
}

void *mproc_shm_ptr(const mproc_shm *shm) {
  return mproc__shm_ok(shm) ? shm->seg.addr : NULL;
}

size_t mproc_shm_size(const mproc_shm *shm) {
  return mproc__shm_ok(shm) ? shm->seg.size : 0;
}

const char *mproc_shm_name(const mproc_shm *shm) {
  return mproc__shm_ok(shm) ? shm->seg.name : NULL;
}

int mproc_shm_unlink(mproc_shm *shm) {
  int rc;
  if (!mproc__shm_ok(shm))
    return MPROC_EINVAL;
  if (!shm->seg.name)
    return MPROC_ESTATE;
  /* Once per object: a second unlink could remove a new block that another
   * process created under the same name in between. */
  if (mproc__xchg32(&shm->unlinked, 1))
    return MPROC_ENOTFOUND;
  rc = mproc__seg_unlink(&shm->seg);
  shm->seg.owner = 0;
  return rc;
}

int mproc_shm_keep(mproc_shm *shm) {
  int rc;
  if (!mproc__shm_ok(shm))
    return MPROC_EINVAL;
  if (!shm->seg.name)
    return MPROC_ESTATE;
  mproc__store32(&shm->keep, 1);
  /* Also marks the segment, so mproc_shm_cleanup() does not take a block
   * meant to outlive its creator for a crashed program's leftover. */
  rc = mproc__seg_keep(&shm->seg);
  shm->seg.owner = 0;
  return rc;
}

mproc_shm *mproc_shm_free(mproc_shm *shm) {
  if (!mproc__shm_ok(shm))
    return NULL;
  if (shm->seg.name && shm->creator_pid != 0 && !mproc__load32(&shm->keep) &&
      !mproc__load32(&shm->unlinked) &&
      shm->creator_pid == mproc__plat_getpid())
    (void)mproc_shm_unlink(shm);
  mproc__shm_release(shm);
  return NULL;
}

int mproc_shm_cleanup(void) { return mproc__seg_cleanup(); }

/* ---- passing a block to a child --------------------------------------------
 * u64 size, u8 named, [u32 name length, name]; one handle: the segment.
 * The child's object is an attached one: it never unlinks on its own. */

static int mproc__shm_export(const void *obj, mproc__wr *w,
                             mproc__handles *hs) {
  const mproc_shm *shm = (const mproc_shm *)obj;
  size_t n;
  if (!mproc__shm_ok(shm))
    return MPROC_EINVAL;
  mproc__wr_u64(w, (uint64_t)shm->seg.size);
  mproc__wr_u8(w, (uint8_t)(shm->seg.name ? 1 : 0));
  if (shm->seg.name) {
    n = strlen(shm->seg.name);
    mproc__wr_u32(w, (uint32_t)n);
    mproc__wr_bytes(w, shm->seg.name, n);
  }
  return mproc__handles_push(hs, shm->seg.handle);
}

static int mproc__shm_import(mproc__rd *r, const mproc_handle_t *hs,
                             size_t nh, void **out) {
  uint64_t size = mproc__rd_u64(r);
  uint8_t named = mproc__rd_u8(r);
  uint32_t n = named ? mproc__rd_u32(r) : 0;
  const unsigned char *name =
      named && n <= MPROC_SHM_NAME_MAX ? mproc__rd_bytes(r, n) : NULL;
  mproc_shm *shm = mproc__shm_new();
  int rc = MPROC_EINVAL;
  *out = NULL;
  /* The handle is ours whatever happens: hand it to the segment layer
   * first, which closes it if it cannot map it (a size that does not match
   * the segment's own header fails there). */
  /* One handle is expected; any more came from a damaged description,
   * and they are ours to close too. */
  {
    size_t extra;
    for (extra = 1; extra < nh; extra++)
      mproc__plat_close_handle(hs[extra]);
  }
  if (nh >= 1) {
    mproc__seg seg;
    rc = mproc__seg_import(&seg, hs[0],
                           size > (uint64_t)SIZE_MAX ? 0 : (size_t)size);
    if (rc == MPROC_OK && shm)
      shm->seg = seg;
    else if (rc == MPROC_OK)
      mproc__seg_close(&seg);
  }
  if (!shm)
    return MPROC_ENOMEM;
  if (rc < 0)
    goto finish;
  rc = MPROC_EINVAL;
  if (nh != 1 || r->bad || named > 1 || (named && !name))
    goto finish;
  if (named) {
    if (!(shm->seg.name = (char *)malloc((size_t)n + 1))) {
      rc = MPROC_ENOMEM;
      goto finish;
    }
    memcpy(shm->seg.name, name, n);
    shm->seg.name[n] = 0;
    if (mproc__seg_name_ok(shm->seg.name) != 1)
      goto finish;
  }
  shm->seg.owner = 0;
  *out = shm;
  rc = MPROC_OK;
finish:
  if (rc < 0)
    mproc__shm_release(shm);
  return rc;
}

static void mproc__shm_objfree(void *obj) {
  if (obj)
    mproc__shm_release((mproc_shm *)obj);
}

const mproc__objtype mproc__shm_type = {MPROC_OBJ_SHM, mproc__shm_export,
                                        mproc__shm_import,
                                        mproc__shm_objfree};

/* ------------------------------------------------------------------------ */
/* Value and Array                                                           */
/* ------------------------------------------------------------------------ */

/* The elements live in an anonymous segment of their own (its start is
 * aligned for any element type); the optional RLock is a separate object
 * that travels with the array. */
struct mproc_array {
  mproc__obj hdr;
  mproc__seg seg;
  mproc_ctype type;
  size_t length;
  mproc_lock *lock;
  int imported; /* rebuilt in a child: the lock is freed through its type */
};

extern const mproc__objtype mproc__array_type;

static size_t mproc__ctype_size(int type) {
  switch (type) {
  case MPROC_INT8:
  case MPROC_UINT8:
    return 1;
  case MPROC_INT16:
  case MPROC_UINT16:
    return 2;
  case MPROC_INT32:
  case MPROC_UINT32:
  case MPROC_FLOAT:
    return 4;
  case MPROC_INT64:
  case MPROC_UINT64:
  case MPROC_DOUBLE:
    return 8;
  default:
    return 0;
  }
}

static int mproc__array_ok(const mproc_array *a) {
  return mproc__obj_is(a, &mproc__array_type);
}

static void mproc__array_release(mproc_array *a) {
  if (a->lock) {
    if (a->imported)
      ((const mproc__obj *)a->lock)->vt->free_(a->lock);
    else
      mproc_lock_free(a->lock);
  }
  a->seg.owner = 0;
  mproc__seg_close(&a->seg);
  a->hdr.magic = 0;
  free(a);
}

int mproc_array_create(mproc_array **out, mproc_ctype type, size_t length,
                       int with_lock) {
  mproc_array *a;
  size_t esize = mproc__ctype_size((int)type);
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (!esize || length == 0 || length > SIZE_MAX / esize ||
      (with_lock != 0 && with_lock != 1))
    return MPROC_EINVAL;
  a = (mproc_array *)mproc__obj_new(sizeof(*a), &mproc__array_type);
  if (!a)
    return MPROC_ENOMEM;
  a->type = type;
  a->length = length;
  a->seg.handle = MPROC_INVALID_HANDLE;
  if ((rc = mproc__seg_create(&a->seg, NULL, length * esize)) < 0)
    goto finish;
  if (with_lock && (rc = mproc_lock_create(&a->lock, 1)) < 0) {
    a->lock = NULL;
    goto finish;
  }
  *out = a;
  rc = MPROC_OK;
finish:
  if (rc < 0)
    mproc__array_release(a);
  return rc;
}

void *mproc_array_ptr(mproc_array *a) {
  return mproc__array_ok(a) ? a->seg.addr : NULL;
}

size_t mproc_array_length(const mproc_array *a) {
  return mproc__array_ok(a) ? a->length : 0;
}

mproc_ctype mproc_array_type(const mproc_array *a) {
  return mproc__array_ok(a) ? a->type : (mproc_ctype)0;
}

mproc_lock *mproc_array_lock(mproc_array *a) {
  return mproc__array_ok(a) ? a->lock : NULL;
}

mproc_array *mproc_array_free(mproc_array *a) {
  if (mproc__array_ok(a))
    mproc__array_release(a);
  return NULL;
}

/* ---- passing an array to a child -------------------------------------------
 * u32 ctype, u64 length, u64 segment size, u8 has lock, and with a lock:
 * u32 its handle count, u32 its length, its own description.
 * Handles: the segment, then the lock's. */

static int mproc__array_export(const void *obj, mproc__wr *w,
                               mproc__handles *hs) {
  const mproc_array *a = (const mproc_array *)obj;
  int rc;
  mproc__wr_u32(w, (uint32_t)a->type);
  mproc__wr_u64(w, (uint64_t)a->length);
  mproc__wr_u64(w, (uint64_t)a->seg.size);
  mproc__wr_u8(w, (uint8_t)(a->lock ? 1 : 0));
  if ((rc = mproc__handles_push(hs, a->seg.handle)) < 0)
    return rc;
  return a->lock ? mproc__obj_export_nested(a->lock, w, hs) : MPROC_OK;
}

/* An array's description as its exporter wrote it. */
struct mproc__array_desc {
  uint32_t type;
  uint64_t length, segsize;
  uint8_t has_lock;
  uint32_t lock_nh, lock_len;
  const unsigned char *lock_blob;
};

static void mproc__array_read_desc(mproc__rd *r,
                                   struct mproc__array_desc *d) {
  d->type = mproc__rd_u32(r);
  d->length = mproc__rd_u64(r);
  d->segsize = mproc__rd_u64(r);
  d->has_lock = mproc__rd_u8(r);
  d->lock_nh = d->has_lock ? mproc__rd_u32(r) : 0;
  d->lock_len = d->has_lock ? mproc__rd_u32(r) : 0;
  d->lock_blob = d->has_lock ? mproc__rd_bytes(r, d->lock_len) : NULL;
}

/* Whether the description is whole and fits the nh handles. */
static int mproc__array_desc_ok(const struct mproc__array_desc *d,
                                const mproc__rd *r, size_t nh,
                                const mproc__objtype *lvt) {
  size_t esize = mproc__ctype_size((int)d->type);
  return !r->bad && esize && d->has_lock <= 1 && d->length > 0 &&
         d->length <= (uint64_t)SIZE_MAX / esize &&
         d->segsize >= d->length * esize &&
         d->segsize <= (uint64_t)SIZE_MAX && nh == 1 + (size_t)d->lock_nh &&
         (!d->has_lock || lvt);
}

/* Gives the segment's handle to the segment importer, which closes it if
 * it cannot use it; the segment goes to `a` only while *ok holds, and a
 * failure clears *ok. */
static int mproc__array_import_segment(mproc_array *a, mproc_handle_t h,
                                       uint64_t segsize, int *ok) {
  mproc__seg seg;
  /* Size 0 never matches a segment: it only closes the handle. */
  int rc = mproc__seg_import(&seg, h, *ok ? (size_t)segsize : 0);
  if (rc != MPROC_OK) {
    *ok = 0;
    return rc;
  }
  seg.owner = 0;
  if (*ok)
    a->seg = seg;
  else
    mproc__seg_close(&seg);
  return rc;
}

/* Gives the handles past the segment to the lock type's import, which
 * closes them when the description it gets is bad (it is made bad when the
 * array's is); a failure clears *ok. */
static int mproc__array_import_lock(const mproc__objtype *lvt,
                                    const struct mproc__array_desc *d,
                                    const mproc_handle_t *hs, size_t nh,
                                    int *ok, void **lock) {
  int lock_ok = *ok && d->has_lock && d->lock_blob;
  mproc__rd lr;
  int rc;
  mproc__rd_init(&lr, d->lock_blob, lock_ok ? d->lock_len : 0);
  lr.bad = !lock_ok;
  rc = lvt->import_(&lr, nh > 1 ? hs + 1 : hs, nh > 1 ? nh - 1 : 0, lock);
  if (rc == MPROC_OK && (!lock_ok || lr.bad || lr.left != 0)) {
    lvt->free_(*lock);
    *lock = NULL;
    rc = MPROC_EINVAL;
  }
  if (rc < 0)
    *ok = 0;
  return rc;
}

static int mproc__array_import(mproc__rd *r, const mproc_handle_t *hs,
                               size_t nh, void **out) {
  const mproc__objtype *lvt = mproc__objtype_find(MPROC_OBJ_LOCK);
  struct mproc__array_desc d;
  mproc_array *a;
  void *lock = NULL;
  int rc = MPROC_EINVAL, ok;
  *out = NULL;
  mproc__array_read_desc(r, &d);
  a = (mproc_array *)mproc__obj_new(sizeof(*a), &mproc__array_type);
  if (a) {
    a->seg.handle = MPROC_INVALID_HANDLE;
    a->imported = 1;
  }
  ok = a && mproc__array_desc_ok(&d, r, nh, lvt);
  /* Every handle is ours now, also on failure: each one goes to the
   * importer that owns it (the segment, then the lock), which closes it if
   * it cannot use it. */
  if (nh >= 1)
    rc = mproc__array_import_segment(a, hs[0], d.segsize, &ok);
  /* The lock's part (it may have no handles: a Linux lock is only words
   * in shared memory).  Handles past the segment with no lock described are
   * damage, but still ours to close: the lock type's import owns them and
   * closes them when the description it gets is bad. */
  if (d.has_lock || nh > 1) {
    if (lvt)
      rc = mproc__array_import_lock(lvt, &d, hs, nh, &ok, &lock);
    else
      ok = 0; /* no lock type linked in */
  }
  if (!a) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  if (!ok) {
    rc = rc < 0 && rc != MPROC_EINVAL ? rc : MPROC_EINVAL;
    goto finish;
  }
  a->type = (mproc_ctype)d.type;
  a->length = (size_t)d.length;
  a->lock = (mproc_lock *)lock;
  lock = NULL;
  *out = a;
  rc = MPROC_OK;
finish:
  if (lock)
    lvt->free_(lock);
  if (rc < 0 && a)
    mproc__array_release(a);
  return rc;
}

static void mproc__array_objfree(void *obj) {
  if (obj)
    mproc__array_release((mproc_array *)obj);
}

const mproc__objtype mproc__array_type = {MPROC_OBJ_ARRAY,
                                          mproc__array_export,
                                          mproc__array_import,
                                          mproc__array_objfree};
