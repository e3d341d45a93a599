/* Little-endian encoding helpers.  Every decoder of bytes that came from
 * another process reads through mproc__rd, which can only fail closed: an
 * overrun sets `bad` and yields zeros, so decoders check once at the end. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void mproc__rd_init(mproc__rd *r, const void *p, size_t n) {
  r->p = (const unsigned char *)p;
  r->left = p ? n : 0;
  r->bad = 0;
}

const unsigned char *mproc__rd_bytes(mproc__rd *r, size_t n) {
  const unsigned char *p;
  if (r->bad || n > r->left) {
    r->bad = 1;
    r->left = 0;
    return NULL;
  }
  p = r->p;
  r->p += n;
  r->left -= n;
  return p;
}

uint8_t mproc__rd_u8(mproc__rd *r) {
  const unsigned char *p = mproc__rd_bytes(r, 1);
  return p ? p[0] : 0;
}

uint32_t mproc__rd_u32(mproc__rd *r) {
  const unsigned char *p = mproc__rd_bytes(r, 4);
  if (!p)
    return 0;
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

uint64_t mproc__rd_u64(mproc__rd *r) {
  uint64_t lo = mproc__rd_u32(r);
  uint64_t hi = mproc__rd_u32(r);
  return lo | hi << 32;
}

static void mproc__wr_reserve(mproc__wr *w, size_t n) {
  size_t cap;
  unsigned char *nb;
  if (w->oom)
    return;
  if (n > SIZE_MAX - w->len) {
    w->oom = 1;
    return;
  }
  if (w->len + n <= w->cap)
    return;
  cap = w->cap ? w->cap : 256;
  while (cap < w->len + n)
    cap = cap > SIZE_MAX / 2 ? w->len + n : cap * 2;
  nb = (unsigned char *)realloc(w->buf, cap);
  if (!nb) {
    w->oom = 1;
    return;
  }
  w->buf = nb;
  w->cap = cap;
}

void mproc__wr_bytes(mproc__wr *w, const void *p, size_t n) {
  mproc__wr_reserve(w, n);
  if (w->oom || n == 0)
    return;
  memcpy(w->buf + w->len, p, n);
  w->len += n;
}

void mproc__wr_u8(mproc__wr *w, uint8_t v) { mproc__wr_bytes(w, &v, 1); }

void mproc__wr_put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

void mproc__wr_put64(unsigned char *p, uint64_t v) {
  mproc__wr_put32(p, (uint32_t)v);
  mproc__wr_put32(p + 4, (uint32_t)(v >> 32));
}

void mproc__wr_u32(mproc__wr *w, uint32_t v) {
  unsigned char b[4];
  mproc__wr_put32(b, v);
  mproc__wr_bytes(w, b, 4);
}

void mproc__wr_u64(mproc__wr *w, uint64_t v) {
  mproc__wr_u32(w, (uint32_t)v);
  mproc__wr_u32(w, (uint32_t)(v >> 32));
}
