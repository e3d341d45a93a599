/*
 * Internal foundation of the IPC objects (include/mproc/ipc.h): the object
 * header and type table through which any IPC object is described for a
 * child and rebuilt there.  The portable modules (sync.c, queue.c, shm.c,
 * ...) build everything on these and on the platform's shared segments
 * (plat/seg.h), futex (plat/futex.h) and owner liveness (plat/core.h), which
 * platform.h brings in through internal.h.
 */
#ifndef MPROC_IPC_INTERNAL_H
#define MPROC_IPC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "internal.h"

/* ---- objects as arguments ---------------------------------------------------- */

#define MPROC__OBJ_MAGIC 0x4f43504du /* "MPCO" */

typedef struct mproc__handles {
  mproc_handle_t *v;
  size_t n, cap;
} mproc__handles;
int mproc__handles_push(mproc__handles *hs, mproc_handle_t h);

typedef struct mproc__objtype {
  int type; /* mproc_object_type */
  /* Describe `obj` for a child: bytes into w, handles appended to hs. */
  int (*export_)(const void *obj, mproc__wr *w, mproc__handles *hs);
  /* Rebuild in the child: the bytes, and the child's values for the handles
   * exported (in order).  Owns the handles from then on, also on failure. */
  int (*import_)(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                 void **out);
  void (*free_)(void *obj);
} mproc__objtype;

/* First member of every IPC object. */
typedef struct mproc__obj {
  uint32_t magic;
  const mproc__objtype *vt;
} mproc__obj;

/* A zeroed object of `size` bytes with its header stamped, or NULL. */
void *mproc__obj_new(size_t size, const mproc__objtype *vt);
/* Is `p` a live object of this type?  (Checks the header: a freed object
 * has its magic cleared by its destroy function.)  Inline: it guards every
 * call, the lock's few-nanosecond fast path among them. */
#if defined(_MSC_VER) && !defined(__cplusplus)
#define MPROC__INLINE __inline
#else
#define MPROC__INLINE inline
#endif
static MPROC__INLINE int mproc__obj_is(const void *p,
                                       const mproc__objtype *vt) {
  const mproc__obj *o = (const mproc__obj *)p;
  return o && o->magic == MPROC__OBJ_MAGIC && o->vt == vt;
}

/* The table of object types (src/objects.c). */
/* Export an object that travels inside another (a condition's or an
 * array's lock): its handle count, its byte length, then its bytes. */
int mproc__obj_export_nested(const void *obj, mproc__wr *w,
                             mproc__handles *hs);
const mproc__objtype *mproc__objtype_find(int type);

#endif
