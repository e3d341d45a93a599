/* Typed argument lists: Python's args= and kwargs=, carried to the child in
 * one encoding for fork and spawn alike, so an entry cannot tell them apart. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ipc.h"

int mproc_args_create(mproc_args **out) {
  mproc_args *a;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  a = (mproc_args *)calloc(1, sizeof(*a));
  if (!a)
    return MPROC_ENOMEM;
  *out = a;
  return MPROC_OK;
}

static void mproc__arg_release(mproc__arg *it) {
  free(it->key);
  if (it->type == MPROC_ARG_STR || it->type == MPROC_ARG_BYTES)
    free(it->v.b.data);
  if (it->type == MPROC_ARG_OBJECT) {
    const mproc__objtype *vt = (const mproc__objtype *)it->v.o.vt;
    if (it->v.o.imported)
      vt->free_(it->v.o.imported);
  }
}

mproc_args *mproc_args_free(mproc_args *args) {
  size_t i;
  if (!args)
    return NULL;
  for (i = 0; i < args->npos; i++)
    mproc__arg_release(&args->pos[i]);
  for (i = 0; i < args->nkw; i++)
    mproc__arg_release(&args->kw[i]);
  free(args->pos);
  free(args->kw);
  free(args);
  return NULL;
}

static mproc__arg *mproc__find_kw(const mproc_args *a, const char *key) {
  size_t i;
  for (i = 0; i < a->nkw; i++)
    if (strcmp(a->kw[i].key, key) == 0)
      return &a->kw[i];
  return NULL;
}

/* Appends a slot for a new argument of this type to the list `a` (not
 * NULL); the caller fills in the value. */
static int mproc__arg_slot(mproc_args *a, const char *key, int type,
                           mproc__arg **out) {
  mproc__arg **arr = key ? &a->kw : &a->pos;
  size_t *n = key ? &a->nkw : &a->npos;
  size_t *cap = key ? &a->kw_cap : &a->pos_cap;
  mproc__arg *it;
  char *kcopy = NULL;
  if (key) {
    size_t kl = strlen(key);
    if (kl == 0 || mproc__find_kw(a, key))
      return MPROC_EINVAL;
    kcopy = (char *)malloc(kl + 1);
    if (!kcopy)
      return MPROC_ENOMEM;
    memcpy(kcopy, key, kl + 1);
  }
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 4;
    mproc__arg *na = (mproc__arg *)realloc(*arr, ncap * sizeof(**arr));
    if (!na) {
      free(kcopy);
      return MPROC_ENOMEM;
    }
    *arr = na;
    *cap = ncap;
  }
  it = &(*arr)[(*n)++];
  memset(it, 0, sizeof(*it));
  it->key = kcopy;
  it->type = type;
  *out = it;
  return MPROC_OK;
}

int mproc_args_add_int(mproc_args *args, const char *key, int64_t v) {
  mproc__arg *it = NULL;
  int rc = args ? mproc__arg_slot(args, key, MPROC_ARG_INT, &it) : MPROC_EINVAL;
  if (rc == MPROC_OK)
    it->v.i = v;
  return rc;
}

int mproc_args_add_double(mproc_args *args, const char *key, double v) {
  mproc__arg *it = NULL;
  int rc =
      args ? mproc__arg_slot(args, key, MPROC_ARG_DOUBLE, &it) : MPROC_EINVAL;
  if (rc == MPROC_OK)
    it->v.d = v;
  return rc;
}

static int mproc__add_blob(mproc_args *args, const char *key, int type,
                           const void *data, size_t len) {
  mproc__arg *it;
  unsigned char *copy;
  int rc;
  if (!args || (!data && len))
    return MPROC_EINVAL;
  if (len > MPROC_ARGS_MAX)
    return MPROC_E2BIG;
  copy = (unsigned char *)malloc(len + 1);
  if (!copy)
    return MPROC_ENOMEM;
  if (len)
    memcpy(copy, data, len);
  copy[len] = 0;
  if ((rc = mproc__arg_slot(args, key, type, &it)) < 0) {
    free(copy);
    return rc;
  }
  it->v.b.data = copy;
  it->v.b.len = len;
  return MPROC_OK;
}

int mproc_args_add_str(mproc_args *args, const char *key, const char *s) {
  if (!s)
    return MPROC_EINVAL;
  return mproc__add_blob(args, key, MPROC_ARG_STR, s, strlen(s));
}

int mproc_args_add_bytes(mproc_args *args, const char *key, const void *data,
                         size_t len) {
  return mproc__add_blob(args, key, MPROC_ARG_BYTES, data, len);
}

int mproc_args_add_handle(mproc_args *args, const char *key, mproc_handle_t h) {
  mproc__arg *it;
  int rc;
  if (!args || h == MPROC_INVALID_HANDLE)
    return MPROC_EINVAL;
  if (!mproc__plat_handle_plausible(h))
    return MPROC_EINVAL;
  if ((rc = mproc__arg_slot(args, key, MPROC_ARG_HANDLE, &it)) < 0)
    return rc;
  it->v.h.value = h;
  it->v.h.slot = (uint32_t)args->nhandles++;
  return MPROC_OK;
}

static int mproc__pos(const mproc_args *a, size_t i, int type,
                      const mproc__arg **out);
static int mproc__kw(const mproc_args *a, const char *key, int type,
                     const mproc__arg **out);

/* An IPC object travels as its description (bytes) and its OS handles,
 * which take consecutive handle slots; the child rebuilds it from both.
 * Slots are numbered when the list is encoded, in item order. */
int mproc_args_add_object(mproc_args *args, const char *key,
                          const void *object) {
  const mproc__obj *obj = (const mproc__obj *)object;
  mproc__arg *it;
  int rc;
  if (!args || !obj || obj->magic != MPROC__OBJ_MAGIC || !obj->vt)
    return MPROC_EINVAL;
  if ((rc = mproc__arg_slot(args, key, MPROC_ARG_OBJECT, &it)) < 0)
    return rc;
  /* Only remembered here: the object is described when a process is
   * created and again when it starts, so what the child gets is the
   * object's state at start (a pipe end's read-ahead, for one). */
  it->v.o.vt = obj->vt;
  it->v.o.orig = object;
  return MPROC_OK;
}

static int mproc__get_object(const mproc__arg *it, int rc, int type,
                             void **out) {
  const mproc__objtype *vt;
  if (rc < 0)
    return rc;
  if (!out)
    return MPROC_EINVAL;
  vt = (const mproc__objtype *)it->v.o.vt;
  if (vt->type != type)
    return MPROC_ETYPE;
  *out = it->v.o.imported ? it->v.o.imported : (void *)it->v.o.orig;
  return MPROC_OK;
}

int mproc_arg_object(const mproc_args *args, size_t index, int type,
                     void **out) {
  const mproc__arg *it = NULL;
  int rc = mproc__pos(args, index, MPROC_ARG_OBJECT, &it);
  return mproc__get_object(it, rc, type, out);
}

int mproc_kwarg_object(const mproc_args *args, const char *key, int type,
                       void **out) {
  const mproc__arg *it = NULL;
  int rc = mproc__kw(args, key, MPROC_ARG_OBJECT, &it);
  return mproc__get_object(it, rc, type, out);
}

/* ---- readers ------------------------------------------------------------ */

size_t mproc_args_count(const mproc_args *args) { return args ? args->npos : 0; }
size_t mproc_kwargs_count(const mproc_args *args) { return args ? args->nkw : 0; }

static int mproc__pos(const mproc_args *a, size_t i, int type,
                      const mproc__arg **out) {
  if (!a)
    return MPROC_EINVAL;
  if (i >= a->npos)
    return MPROC_ENOTFOUND;
  if (type && a->pos[i].type != type)
    return MPROC_ETYPE;
  *out = &a->pos[i];
  return MPROC_OK;
}

static int mproc__kw(const mproc_args *a, const char *key, int type,
                     const mproc__arg **out) {
  const mproc__arg *it;
  if (!a || !key)
    return MPROC_EINVAL;
  it = mproc__find_kw(a, key);
  if (!it)
    return MPROC_ENOTFOUND;
  if (type && it->type != type)
    return MPROC_ETYPE;
  *out = it;
  return MPROC_OK;
}

int mproc_arg_type(const mproc_args *args, size_t index) {
  const mproc__arg *it;
  int rc = mproc__pos(args, index, 0, &it);
  return rc < 0 ? rc : it->type;
}

int mproc_kwarg_type(const mproc_args *args, const char *key) {
  const mproc__arg *it;
  int rc = mproc__kw(args, key, 0, &it);
  return rc < 0 ? rc : it->type;
}

int mproc_kwarg_key(const mproc_args *args, size_t index, const char **key) {
  if (!args || !key)
    return MPROC_EINVAL;
  if (index >= args->nkw)
    return MPROC_ENOTFOUND;
  *key = args->kw[index].key;
  return MPROC_OK;
}

/* One body for the ten typed readers: find the item, then copy out. */
static int mproc__get(const mproc__arg *it, int rc, int type, void *out,
                      size_t *len) {
  if (rc < 0)
    return rc;
  if (!out)
    return MPROC_EINVAL;
  switch (type) {
  case MPROC_ARG_INT:
    *(int64_t *)out = it->v.i;
    break;
  case MPROC_ARG_DOUBLE:
    *(double *)out = it->v.d;
    break;
  case MPROC_ARG_STR:
    *(const char **)out = (const char *)it->v.b.data;
    break;
  case MPROC_ARG_BYTES:
    if (!len)
      return MPROC_EINVAL;
    *(const void **)out = it->v.b.data;
    *len = it->v.b.len;
    break;
  default:
    *(mproc_handle_t *)out = it->v.h.value;
    break;
  }
  return MPROC_OK;
}

#define MPROC__READERS(suffix, ctype, tag)                                     \
  int mproc_arg_##suffix(const mproc_args *args, size_t index, ctype *out) {   \
    const mproc__arg *it = NULL;                                               \
    int rc = mproc__pos(args, index, tag, &it);                                \
    return mproc__get(it, rc, tag, out, NULL);                                 \
  }                                                                            \
  int mproc_kwarg_##suffix(const mproc_args *args, const char *key,            \
                           ctype *out) {                                       \
    const mproc__arg *it = NULL;                                               \
    int rc = mproc__kw(args, key, tag, &it);                                   \
    return mproc__get(it, rc, tag, out, NULL);                                 \
  }

MPROC__READERS(int, int64_t, MPROC_ARG_INT)
MPROC__READERS(double, double, MPROC_ARG_DOUBLE)
MPROC__READERS(str, const char *, MPROC_ARG_STR)
MPROC__READERS(handle, mproc_handle_t, MPROC_ARG_HANDLE)

int mproc_arg_bytes(const mproc_args *args, size_t index, const void **data,
                    size_t *len) {
  const mproc__arg *it = NULL;
  int rc = mproc__pos(args, index, MPROC_ARG_BYTES, &it);
  return mproc__get(it, rc, MPROC_ARG_BYTES, (void *)data, len);
}

int mproc_kwarg_bytes(const mproc_args *args, const char *key,
                      const void **data, size_t *len) {
  const mproc__arg *it = NULL;
  int rc = mproc__kw(args, key, MPROC_ARG_BYTES, &it);
  return mproc__get(it, rc, MPROC_ARG_BYTES, (void *)data, len);
}

/* ---- encoding ------------------------------------------------------------
 * u32 npos, u32 nkw, u32 nhandles, then each item:
 *   u8 type, [kw: u32 keylen, key], value:
 *   INT/DOUBLE u64 | STR/BYTES u32 len, bytes | HANDLE u32 slot |
 *   OBJECT u32 object type, u32 first slot, u32 handle count, u32 len, bytes
 * Doubles travel as their bit pattern, so NaN payloads and -0.0 survive. */

static int mproc__enc_item(mproc__wr *w, const mproc__arg *it,
                           mproc__handles *hs) {
  uint64_t bits;
  int rc = MPROC_OK;
  mproc__wr_u8(w, (uint8_t)it->type);
  if (it->key) {
    size_t kl = strlen(it->key);
    mproc__wr_u32(w, (uint32_t)kl);
    mproc__wr_bytes(w, it->key, kl);
  }
  switch (it->type) {
  case MPROC_ARG_INT:
    mproc__wr_u64(w, (uint64_t)it->v.i);
    break;
  case MPROC_ARG_DOUBLE:
    memcpy(&bits, &it->v.d, sizeof bits);
    mproc__wr_u64(w, bits);
    break;
  case MPROC_ARG_STR:
  case MPROC_ARG_BYTES:
    mproc__wr_u32(w, (uint32_t)it->v.b.len);
    mproc__wr_bytes(w, it->v.b.data, it->v.b.len);
    break;
  case MPROC_ARG_OBJECT: {
    const mproc__objtype *vt = (const mproc__objtype *)it->v.o.vt;
    mproc__wr blob = {NULL, 0, 0, 0};
    size_t slot0 = hs->n;
    rc = vt->export_(it->v.o.orig, &blob, hs);
    if (rc == MPROC_OK && blob.oom)
      rc = MPROC_ENOMEM;
    if (rc == MPROC_OK && blob.len > MPROC_ARGS_MAX)
      rc = MPROC_E2BIG;
    mproc__wr_u32(w, (uint32_t)vt->type);
    mproc__wr_u32(w, (uint32_t)slot0);
    mproc__wr_u32(w, (uint32_t)(hs->n - slot0));
    mproc__wr_u32(w, (uint32_t)blob.len);
    mproc__wr_bytes(w, blob.buf, blob.len);
    free(blob.buf);
    break;
  }
  default:
    mproc__wr_u32(w, (uint32_t)hs->n);
    rc = mproc__handles_push(hs, it->v.h.value);
    break;
  }
  return rc;
}

int mproc__args_encode(const mproc_args *args, unsigned char **buf,
                       size_t *len, mproc_handle_t **handles_out,
                       size_t *nhandles_out) {
  mproc__wr w = {NULL, 0, 0, 0};
  mproc__handles hs = {NULL, 0, 0};
  size_t i;
  int rc = MPROC_OK;
  *buf = NULL;
  *len = 0;
  if (handles_out)
    *handles_out = NULL;
  if (nhandles_out)
    *nhandles_out = 0;
  mproc__wr_u32(&w, (uint32_t)(args ? args->npos : 0));
  mproc__wr_u32(&w, (uint32_t)(args ? args->nkw : 0));
  mproc__wr_u32(&w, 0); /* the handle count, known at the end */
  for (i = 0; args && i < args->npos && rc == MPROC_OK && !w.oom &&
              w.len <= MPROC_ARGS_MAX;
       i++)
    rc = mproc__enc_item(&w, &args->pos[i], &hs);
  for (i = 0; args && i < args->nkw && rc == MPROC_OK && !w.oom &&
              w.len <= MPROC_ARGS_MAX;
       i++)
    rc = mproc__enc_item(&w, &args->kw[i], &hs);
  if (rc == MPROC_OK && w.oom)
    rc = MPROC_ENOMEM;
  if (rc == MPROC_OK && (w.len > MPROC_ARGS_MAX || hs.n > 4096))
    rc = MPROC_E2BIG;
  if (rc < 0) {
    free(w.buf);
    free(hs.v);
    return rc;
  }
  w.buf[8] = (unsigned char)hs.n;
  w.buf[9] = (unsigned char)(hs.n >> 8);
  w.buf[10] = (unsigned char)(hs.n >> 16);
  w.buf[11] = (unsigned char)(hs.n >> 24);
  if (handles_out && hs.n) {
    *handles_out = hs.v;
    *nhandles_out = hs.n;
  } else {
    free(hs.v);
  }
  *buf = w.buf;
  *len = w.len;
  return MPROC_OK;
}

int mproc__args_has_objects(const mproc_args *args) {
  size_t i;
  for (i = 0; args && i < args->npos; i++)
    if (args->pos[i].type == MPROC_ARG_OBJECT)
      return 1;
  for (i = 0; args && i < args->nkw; i++)
    if (args->kw[i].type == MPROC_ARG_OBJECT)
      return 1;
  return 0;
}

/* Appends a builder copy of every item of `src` to `dst`: values are
 * copied, handles and objects go by reference (an object must be the
 * parent's own, not one rebuilt from a child's arguments). */
int mproc__args_append(mproc_args *dst, const mproc_args *src) {
  size_t i;
  int rc = MPROC_OK;
  for (i = 0; src && rc == MPROC_OK && i < src->npos + src->nkw; i++) {
    const mproc__arg *it =
        i < src->npos ? &src->pos[i] : &src->kw[i - src->npos];
    switch (it->type) {
    case MPROC_ARG_INT:
      rc = mproc_args_add_int(dst, it->key, it->v.i);
      break;
    case MPROC_ARG_DOUBLE:
      rc = mproc_args_add_double(dst, it->key, it->v.d);
      break;
    case MPROC_ARG_STR:
    case MPROC_ARG_BYTES:
      rc = mproc__add_blob(dst, it->key, it->type, it->v.b.data, it->v.b.len);
      break;
    case MPROC_ARG_HANDLE:
      rc = mproc_args_add_handle(dst, it->key, it->v.h.value);
      break;
    case MPROC_ARG_OBJECT:
      rc = it->v.o.orig ? mproc_args_add_object(dst, it->key, it->v.o.orig)
                        : MPROC_EINVAL;
      break;
    default:
      rc = MPROC_EINVAL;
    }
  }
  return rc;
}

/* A builder copy of `src`, so a process can describe its objects again
 * when it starts. */
int mproc__args_clone(const mproc_args *src, mproc_args **out) {
  mproc_args *a = NULL;
  int rc = mproc_args_create(&a);
  if (rc < 0)
    goto finish;
  rc = mproc__args_append(a, src);
finish:
  if (rc < 0)
    a = mproc_args_free(a);
  *out = a;
  return rc;
}

/* Reads a keyword item's key: into `key` when it fits, else into a heap
 * copy returned in *heap_key for the caller to free. */
static int mproc__dec_key(mproc__rd *r, char *key, size_t key_size,
                          char **keyp, char **heap_key) {
  uint32_t n = mproc__rd_u32(r);
  const unsigned char *p = mproc__rd_bytes(r, n);
  if (!p || n == 0 || memchr(p, 0, n))
    return MPROC_EINVAL;
  *keyp = key;
  if (n >= key_size) {
    *heap_key = (char *)malloc((size_t)n + 1);
    if (!*heap_key)
      return MPROC_ENOMEM;
    *keyp = *heap_key;
  }
  memcpy(*keyp, p, n);
  (*keyp)[n] = 0;
  return MPROC_OK;
}

/* Marks the object's handle slots as taken; a slot already taken by an
 * earlier item makes the message bad. */
static int mproc__dec_claim_slots(unsigned char *seen, uint32_t slot0,
                                  uint32_t nh) {
  uint32_t k;
  for (k = 0; k < nh; k++)
    if (seen[slot0 + k])
      return MPROC_EINVAL;
  for (k = 0; k < nh; k++)
    seen[slot0 + k] = 1;
  return MPROC_OK;
}

/* Imports an object that will own its handles. */
static int mproc__dec_import_owned(const mproc__objtype *vt, mproc__rd *blob,
                                   const mproc_handle_t *table, size_t ntable,
                                   uint32_t slot0, uint32_t nh,
                                   unsigned char *seen, void **obj) {
  mproc_handle_t *own = (mproc_handle_t *)malloc(nh * sizeof(mproc_handle_t));
  uint32_t k;
  int rc;
  if (!own)
    return MPROC_ENOMEM;
  /* The first object to claim a handle takes the inherited one itself
   * (so freeing it in the child really closes it); a later object that
   * names the same handle gets a duplicate to own. */
  for (k = 0; k < nh; k++) {
    size_t j;
    own[k] = table[slot0 + k];
    for (j = 0; j < ntable; j++)
      if (seen[j] == 2 && table[j] == own[k])
        break;
    if (j < ntable)
      own[k] = mproc__plat_dup_handle(own[k]);
  }
  for (k = 0; k < nh; k++)
    seen[slot0 + k] = 2; /* claimed by an object */
  rc = vt->import_(blob, own, nh, obj);
  free(own);
  return rc;
}

static int mproc__dec_object(mproc__rd *r, mproc_args *a, const char *keyp,
                             const mproc_handle_t *table, size_t ntable,
                             int dup_objects, unsigned char *seen) {
  uint32_t otype, slot0, nh, n;
  const mproc__objtype *vt;
  const unsigned char *p;
  mproc__rd blob;
  mproc__arg *it;
  void *obj = NULL;
  int rc;
  otype = mproc__rd_u32(r);
  slot0 = mproc__rd_u32(r);
  nh = mproc__rd_u32(r);
  vt = mproc__objtype_find((int)otype);
  n = mproc__rd_u32(r);
  p = mproc__rd_bytes(r, n);
  if (!p || !vt || slot0 > ntable || nh > ntable - slot0)
    return MPROC_EINVAL;
  rc = mproc__dec_claim_slots(seen, slot0, nh);
  if (rc < 0)
    return rc;
  mproc__rd_init(&blob, p, n);
  if (dup_objects && nh)
    rc = mproc__dec_import_owned(vt, &blob, table, ntable, slot0, nh, seen,
                                 &obj);
  else
    rc = vt->import_(&blob, table + slot0, nh, &obj);
  if (rc == MPROC_OK && (blob.bad || blob.left != 0)) {
    vt->free_(obj);
    rc = MPROC_EINVAL;
  }
  if (rc < 0)
    return rc;
  rc = mproc__arg_slot(a, keyp, MPROC_ARG_OBJECT, &it);
  if (rc < 0) {
    vt->free_(obj);
    return rc;
  }
  it->v.o.vt = vt;
  it->v.o.imported = obj;
  it->v.o.slot0 = slot0;
  it->v.o.nh = nh;
  a->nhandles += nh;
  return MPROC_OK;
}

static int mproc__dec_handle(mproc__rd *r, mproc_args *a, const char *keyp,
                             const mproc_handle_t *table, size_t ntable,
                             unsigned char *seen) {
  uint32_t n = mproc__rd_u32(r);
  mproc__arg *it;
  int rc;
  if (r->bad || n >= ntable || seen[n])
    return MPROC_EINVAL;
  seen[n] = 1;
  rc = mproc_args_add_handle(a, keyp, table[n]);
  if (rc < 0)
    return rc;
  it = keyp ? &a->kw[a->nkw - 1] : &a->pos[a->npos - 1];
  it->v.h.slot = n;
  return MPROC_OK;
}

/* Decodes one value of the given type and adds it under `keyp` (NULL for
 * a positional item). */
static int mproc__dec_value(mproc__rd *r, mproc_args *a, uint8_t type,
                            const char *keyp, const mproc_handle_t *table,
                            size_t ntable, int dup_objects,
                            unsigned char *seen) {
  const unsigned char *p;
  uint32_t n;
  uint64_t bits;
  double d;
  switch (type) {
  case MPROC_ARG_INT:
    bits = mproc__rd_u64(r);
    return r->bad ? MPROC_EINVAL : mproc_args_add_int(a, keyp, (int64_t)bits);
  case MPROC_ARG_DOUBLE:
    bits = mproc__rd_u64(r);
    memcpy(&d, &bits, sizeof d);
    return r->bad ? MPROC_EINVAL : mproc_args_add_double(a, keyp, d);
  case MPROC_ARG_STR:
  case MPROC_ARG_BYTES:
    n = mproc__rd_u32(r);
    p = mproc__rd_bytes(r, n);
    if (!p)
      return MPROC_EINVAL;
    if (type == MPROC_ARG_STR && memchr(p, 0, n))
      return MPROC_EINVAL;
    return mproc__add_blob(a, keyp, type, p, n);
  case MPROC_ARG_HANDLE:
    return mproc__dec_handle(r, a, keyp, table, ntable, seen);
  case MPROC_ARG_OBJECT:
    return mproc__dec_object(r, a, keyp, table, ntable, dup_objects, seen);
  default:
    return MPROC_EINVAL;
  }
}

static int mproc__dec_item(mproc__rd *r, mproc_args *a, int keyed,
                           const mproc_handle_t *table, size_t ntable,
                           int dup_objects, unsigned char *seen) {
  uint8_t type = mproc__rd_u8(r);
  char key[256];
  char *keyp = NULL, *heap_key = NULL;
  int rc;
  if (keyed) {
    rc = mproc__dec_key(r, key, sizeof key, &keyp, &heap_key);
    if (rc < 0)
      return rc;
  }
  rc = mproc__dec_value(r, a, type, keyp, table, ntable, dup_objects, seen);
  free(heap_key);
  /* A duplicate key or a bad value from the builder is damage here. */
  return rc == MPROC_ENOMEM ? rc : (rc < 0 ? MPROC_EINVAL : rc);
}

int mproc__args_decode(const unsigned char *buf, size_t len,
                       const mproc_handle_t *table, size_t ntable,
                       int dup_object_handles, mproc_args **out) {
  mproc__rd r;
  mproc_args *a = NULL;
  uint32_t npos, nkw, nh, i;
  unsigned char *seen;
  int rc;
  *out = NULL;
  if (!buf && len)
    return MPROC_EINVAL;
  mproc__rd_init(&r, buf, len);
  npos = mproc__rd_u32(&r);
  nkw = mproc__rd_u32(&r);
  nh = mproc__rd_u32(&r);
  /* Every item takes at least 5 bytes: reject counts the input cannot hold
   * before allocating for them. */
  /* Handles are bounded by the table the bootstrap carried (an object may
   * bring several, so the item count says nothing about them). */
  if (r.bad || (uint64_t)npos + nkw > r.left / 5 || nh > ntable)
    return MPROC_EINVAL;
  seen = (unsigned char *)calloc((size_t)nh + 1, 1);
  if (!seen)
    return MPROC_ENOMEM;
  if ((rc = mproc_args_create(&a)) < 0) {
    free(seen);
    return rc;
  }
  for (i = 0; i < npos && rc == MPROC_OK; i++)
    rc = mproc__dec_item(&r, a, 0, table, nh, dup_object_handles, seen);
  for (i = 0; i < nkw && rc == MPROC_OK; i++)
    rc = mproc__dec_item(&r, a, 1, table, nh, dup_object_handles, seen);
  free(seen);
  /* Each slot was seen at most once, so nh handle items cover all slots. */
  if (rc == MPROC_OK && (r.bad || r.left != 0 || a->nhandles != nh))
    rc = MPROC_EINVAL;
  if (rc < 0) {
    mproc_args_free(a);
    return rc;
  }
  *out = a;
  return MPROC_OK;
}
