/* The typed message format: a tag byte, then the value, little-endian on
 * the shared wire.c readers and writers, so that 32/64-bit processes and
 * either byte order agree.  Decoders see bytes from another process (or
 * bytes a program sent with the byte API): they check the tag and the exact
 * length, and a string's NUL, before trusting anything (fuzz/fuzz_typed.c). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "typed.h"

void mproc__typed_enc_int64(unsigned char *out, int64_t v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u); /* two's complement, as int64_t must be */
  out[0] = MPROC_TYPED_INT64;
  mproc__wr_put64(out + 1, u);
}

void mproc__typed_enc_double(unsigned char *out, double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u); /* IEEE-754 binary64 on every supported target */
  out[0] = MPROC_TYPED_DOUBLE;
  mproc__wr_put64(out + 1, u);
}

void mproc__typed_enc_str(unsigned char *out, const char *s, size_t n) {
  out[0] = MPROC_TYPED_STR;
  if (n)
    memcpy(out + 1, s, n);
  out[n + 1] = 0;
}

/* The 8-byte payload of a scalar message with this tag. */
static int mproc__typed_dec_u64(const void *msg, size_t len, int tag,
                                uint64_t *out) {
  mproc__rd r;
  if (!out)
    return MPROC_EINVAL;
  if (!msg) /* an empty result */
    return MPROC_ETYPE;
  r.p = (const unsigned char *)msg;
  r.left = len;
  r.bad = 0;
  if (len != MPROC__TYPED_SCALAR_LEN || mproc__rd_u8(&r) != tag)
    return MPROC_ETYPE;
  *out = mproc__rd_u64(&r);
  return MPROC_OK;
}

int mproc__typed_dec_int64(const void *msg, size_t len, int64_t *out) {
  uint64_t u = 0;
  int rc = mproc__typed_dec_u64(msg, len, MPROC_TYPED_INT64, &u);
  if (rc == MPROC_OK)
    memcpy(out, &u, sizeof u);
  return rc;
}

int mproc__typed_dec_double(const void *msg, size_t len, double *out) {
  uint64_t u = 0;
  int rc = mproc__typed_dec_u64(msg, len, MPROC_TYPED_DOUBLE, &u);
  if (rc == MPROC_OK)
    memcpy(out, &u, sizeof u);
  return rc;
}

int mproc__typed_dec_str(const void *msg, size_t len, const char **out,
                         size_t *n) {
  const unsigned char *p = (const unsigned char *)msg;
  if (!out || !n)
    return MPROC_EINVAL;
  if (!msg)
    return MPROC_ETYPE;
  /* The tag, the bytes, one NUL at the end and none before it. */
  if (len < 2 || p[0] != MPROC_TYPED_STR || p[len - 1] != 0 ||
      memchr(p + 1, 0, len - 2))
    return MPROC_ETYPE;
  *out = (const char *)(p + 1);
  *n = len - 2;
  return MPROC_OK;
}

const unsigned char *mproc__typed_str_msg(const char *s, unsigned char *small,
                                          size_t cap, unsigned char **heap,
                                          size_t *len) {
  size_t n = strlen(s);
  unsigned char *out = small;
  if (n > SIZE_MAX - 2)
    return NULL;
  *len = n + 2;
  if (*len > cap) {
    *heap = (unsigned char *)malloc(*len);
    if (!*heap)
      return NULL;
    out = *heap;
  }
  mproc__typed_enc_str(out, s, n);
  return out;
}
