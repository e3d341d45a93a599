/* The table of IPC object types that can travel as arguments.  Each module
 * defines its mproc__objtype; a child rebuilds an object by looking its type
 * up here. */
#include <stdlib.h>

#include "ipc.h"

/* One line per module (defined in src/<module>.c). */
extern const mproc__objtype *const mproc__objtypes[];

const mproc__objtype *mproc__objtype_find(int type) {
  size_t i;
  for (i = 0; mproc__objtypes[i]; i++)
    if (mproc__objtypes[i]->type == type)
      return mproc__objtypes[i];
  return NULL;
}

int mproc__handles_push(mproc__handles *hs, mproc_handle_t h) {
  if (hs->n == hs->cap) {
    size_t cap = hs->cap ? hs->cap * 2 : 4;
    mproc_handle_t *v =
        (mproc_handle_t *)realloc(hs->v, cap * sizeof(*v));
    if (!v)
      return MPROC_ENOMEM;
    hs->v = v;
    hs->cap = cap;
  }
  hs->v[hs->n++] = h;
  return MPROC_OK;
}

void *mproc__obj_new(size_t size, const mproc__objtype *vt) {
  mproc__obj *o = (mproc__obj *)calloc(1, size);
  if (o) {
    o->magic = MPROC__OBJ_MAGIC;
    o->vt = vt;
  }
  return o;
}

int mproc__obj_export_nested(const void *obj, mproc__wr *w,
                             mproc__handles *hs) {
  const mproc__obj *o = (const mproc__obj *)obj;
  mproc__wr inner = {NULL, 0, 0, 0};
  size_t before = hs->n;
  int rc;
  if (!o || o->magic != MPROC__OBJ_MAGIC || !o->vt)
    return MPROC_ESTATE;
  rc = o->vt->export_(obj, &inner, hs);
  if (rc == MPROC_OK && inner.oom)
    rc = MPROC_ENOMEM;
  if (rc == MPROC_OK && inner.len > UINT32_MAX)
    rc = MPROC_E2BIG;
  if (rc == MPROC_OK) {
    mproc__wr_u32(w, (uint32_t)(hs->n - before));
    mproc__wr_u32(w, (uint32_t)inner.len);
    mproc__wr_bytes(w, inner.buf, inner.len);
  }
  free(inner.buf);
  return rc;
}
