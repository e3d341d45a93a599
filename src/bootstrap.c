/* The spawn bootstrap: what a child started by spawn needs to become the
 * process its parent created.  It travels over an inherited pipe, never on
 * the command line, so a child flag typed by hand finds no bootstrap and the
 * child refuses to run (DESIGN.md: the dispatch table).  Nothing in it is
 * secret or signed: the child trusts it because the kernel says who made
 * the channel it came over (mproc__plat_read_bootstrap), and the parent pid
 * written here must be that process. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void mproc__wr_str(mproc__wr *w, const char *s) {
  size_t n = strlen(s);
  mproc__wr_u32(w, (uint32_t)n);
  mproc__wr_bytes(w, s, n + 1);
}

int mproc__bootstrap_encode(const mproc__bootstrap *bs, unsigned char **buf,
                            size_t *len) {
  mproc__wr w = {NULL, 0, 0, 0};
  uint32_t i;
  *buf = NULL;
  *len = 0;
  mproc__wr_bytes(&w, MPROC__BS_MAGIC, 8);
  mproc__wr_u32(&w, MPROC__BS_VERSION);
  mproc__wr_u32(&w, 0); /* total length, patched below */
  mproc__wr_u32(&w, bs->start_method);
  mproc__wr_u32(&w, bs->flags);
  mproc__wr_u64(&w, (uint64_t)bs->parent_pid);
  mproc__wr_u64(&w, bs->parent_handle);
  mproc__wr_u64(&w, bs->interrupt_handle);
  mproc__wr_str(&w, bs->entry);
  mproc__wr_str(&w, bs->name);
  mproc__wr_str(&w, bs->identity);
  mproc__wr_str(&w, bs->parent_name);
  mproc__wr_u32(&w, bs->nhandles);
  for (i = 0; i < bs->nhandles; i++)
    mproc__wr_u64(&w, bs->handles[i]);
  mproc__wr_u32(&w, (uint32_t)bs->args_len);
  mproc__wr_bytes(&w, bs->args, bs->args_len);
  if (w.oom) {
    free(w.buf);
    return MPROC_ENOMEM;
  }
  if (w.len > MPROC__BS_MAX) {
    free(w.buf);
    return MPROC_E2BIG;
  }
  w.buf[12] = (unsigned char)w.len;
  w.buf[13] = (unsigned char)(w.len >> 8);
  w.buf[14] = (unsigned char)(w.len >> 16);
  w.buf[15] = (unsigned char)(w.len >> 24);
  *buf = w.buf;
  *len = w.len;
  return MPROC_OK;
}

int mproc__bootstrap_peek_len(const unsigned char *hdr, size_t *total) {
  mproc__rd r;
  uint32_t version, n;
  if (memcmp(hdr, MPROC__BS_MAGIC, 8) != 0)
    return MPROC_EINVAL;
  mproc__rd_init(&r, hdr + 8, 8);
  version = mproc__rd_u32(&r);
  n = mproc__rd_u32(&r);
  if (version != MPROC__BS_VERSION || n < MPROC__BS_HEADER ||
      n > MPROC__BS_MAX)
    return MPROC_EINVAL;
  *total = n;
  return MPROC_OK;
}

/* A string is u32 length, the bytes, and a NUL that must be there, with no
 * NUL inside: then it can be used in place. */
static const char *mproc__rd_str(mproc__rd *r) {
  uint32_t n = mproc__rd_u32(r);
  const unsigned char *p;
  if (n == UINT32_MAX)
    r->bad = 1;
  p = mproc__rd_bytes(r, (size_t)n + 1);
  if (!p || p[n] != 0 || memchr(p, 0, n)) {
    r->bad = 1;
    return NULL;
  }
  return (const char *)p;
}

int mproc__bootstrap_decode(const unsigned char *buf, size_t len,
                            mproc__bootstrap *bs) {
  mproc__rd r;
  size_t total;
  uint32_t i;
  memset(bs, 0, sizeof(*bs));
  if (!buf || len < MPROC__BS_HEADER)
    return MPROC_EINVAL;
  if (mproc__bootstrap_peek_len(buf, &total) < 0 || total != len)
    return MPROC_EINVAL;
  mproc__rd_init(&r, buf + MPROC__BS_HEADER, len - MPROC__BS_HEADER);
  bs->start_method = mproc__rd_u32(&r);
  bs->flags = mproc__rd_u32(&r);
  bs->parent_pid = (int64_t)mproc__rd_u64(&r);
  bs->parent_handle = mproc__rd_u64(&r);
  bs->interrupt_handle = mproc__rd_u64(&r);
  bs->entry = mproc__rd_str(&r);
  bs->name = mproc__rd_str(&r);
  bs->identity = mproc__rd_str(&r);
  bs->parent_name = mproc__rd_str(&r);
  bs->nhandles = mproc__rd_u32(&r);
  if (r.bad || bs->nhandles > r.left / 8 ||
      (bs->start_method != MPROC_START_FORK &&
       bs->start_method != MPROC_START_SPAWN &&
       bs->start_method != MPROC_START_FORKSERVER) ||
      (bs->flags & ~(uint32_t)(MPROC__BS_DAEMON | MPROC__BS_RESULT)) != 0 ||
      ((bs->flags & MPROC__BS_RESULT) && bs->nhandles == 0) ||
      bs->entry[0] == 0 ||
      bs->parent_pid <= 0) {
    memset(bs, 0, sizeof(*bs));
    return MPROC_EINVAL;
  }
  if (bs->nhandles) {
    bs->handles = (uint64_t *)malloc(bs->nhandles * sizeof(uint64_t));
    if (!bs->handles) {
      memset(bs, 0, sizeof(*bs));
      return MPROC_ENOMEM;
    }
  }
  for (i = 0; i < bs->nhandles; i++)
    bs->handles[i] = mproc__rd_u64(&r);
  bs->args_len = mproc__rd_u32(&r);
  bs->args = mproc__rd_bytes(&r, bs->args_len);
  if (r.bad || r.left != 0) {
    mproc__bootstrap_release(bs);
    return MPROC_EINVAL;
  }
  return MPROC_OK;
}

void mproc__bootstrap_release(mproc__bootstrap *bs) {
  free(bs->handles);
  memset(bs, 0, sizeof(*bs));
}

const char *mproc__bootstrap_flag_value(const char *arg) {
  size_t n = sizeof(MPROC__BS_FLAG) - 1;
  if (!arg || strncmp(arg, MPROC__BS_FLAG, n) != 0)
    return NULL;
  if (arg[n] == 0)
    return arg + n;
  return arg[n] == '=' ? arg + n + 1 : NULL;
}
