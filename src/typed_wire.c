/* The typed message format: a tag byte, then the value, little-endian on
 * the shared wire.c readers and writers, so that 32/64-bit processes and
 * either byte order agree.  Decoders see bytes from another process (or
 * bytes a program sent with the byte API): they check the tag and the exact
 * length, and a string's NUL, before trusting anything (fuzz/fuzz_typed.c). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "typed.h"

int mproc__tval_make(mproc__tval *v, int tag, const void *value) {
  memset(v, 0, sizeof *v);
  v->tag = tag;
  if (!value)
    return MPROC_EINVAL;
  if (tag == MPROC_TYPED_INT64)
    memcpy(&v->i, value, sizeof v->i);
  else if (tag == MPROC_TYPED_DOUBLE)
    memcpy(&v->d, value, sizeof v->d);
  else {
    v->s = (const char *)value;
    v->n = strlen(v->s);
    if (v->n > SIZE_MAX - 2)
      return MPROC_ENOMEM;
  }
  return MPROC_OK;
}

size_t mproc__tval_len(const mproc__tval *v) {
  return v->tag == MPROC_TYPED_STR ? v->n + 2 : MPROC__TYPED_SCALAR_LEN;
}

void mproc__tval_enc(unsigned char *out, const mproc__tval *v) {
  uint64_t u;
  out[0] = (unsigned char)v->tag;
  if (v->tag == MPROC_TYPED_STR) {
    if (v->n)
      memcpy(out + 1, v->s, v->n);
    out[v->n + 1] = 0;
    return;
  }
  /* int64_t is two's complement and double IEEE-754 binary64 on every
   * supported target: their bytes are the value. */
  if (v->tag == MPROC_TYPED_INT64)
    memcpy(&u, &v->i, sizeof u);
  else
    memcpy(&u, &v->d, sizeof u);
  mproc__wr_put64(out + 1, u);
}

/* The tag, the bytes, one NUL at the end and none before it. */
static int mproc__tval_dec_str(const unsigned char *p, size_t len,
                               mproc__tval *v) {
  if (len < 2 || p[0] != MPROC_TYPED_STR || p[len - 1] != 0 ||
      memchr(p + 1, 0, len - 2))
    return MPROC_ETYPE;
  v->s = (const char *)(p + 1);
  v->n = len - 2;
  return MPROC_OK;
}

int mproc__tval_dec(const void *msg, size_t len, int tag, mproc__tval *v) {
  mproc__rd r;
  uint64_t u;
  memset(v, 0, sizeof *v);
  v->tag = tag;
  if (!msg) /* an empty result */
    return MPROC_ETYPE;
  if (tag == MPROC_TYPED_STR)
    return mproc__tval_dec_str((const unsigned char *)msg, len, v);
  mproc__rd_init(&r, msg, len);
  if (len != MPROC__TYPED_SCALAR_LEN || mproc__rd_u8(&r) != tag)
    return MPROC_ETYPE;
  u = mproc__rd_u64(&r);
  if (tag == MPROC_TYPED_INT64)
    memcpy(&v->i, &u, sizeof u);
  else
    memcpy(&v->d, &u, sizeof u);
  return MPROC_OK;
}

int mproc__tval_read(const void *msg, size_t len, int tag, void *out) {
  mproc__tval v;
  int rc = mproc__tval_dec(msg, len, tag, &v);
  if (rc < 0)
    return rc;
  if (tag == MPROC_TYPED_INT64)
    memcpy(out, &v.i, sizeof v.i);
  else if (tag == MPROC_TYPED_DOUBLE)
    memcpy(out, &v.d, sizeof v.d);
  else
    memcpy(out, &v.s, sizeof v.s);
  return MPROC_OK;
}

int mproc__tval_send(mproc__send_fn send, void *ch, int tag, const void *value,
                     double timeout) {
  unsigned char small[256];
  unsigned char *m = small;
  mproc__tval v;
  size_t len;
  int rc;
  if (!ch)
    return MPROC_EINVAL;
  if ((rc = mproc__tval_make(&v, tag, value)) < 0)
    return rc;
  len = mproc__tval_len(&v);
  if (len > sizeof small && !(m = (unsigned char *)malloc(len)))
    return MPROC_ENOMEM;
  mproc__tval_enc(m, &v);
  rc = send(ch, m, len, timeout);
  if (m != small)
    free(m);
  return rc;
}
