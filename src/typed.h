/* The typed message format (include/mproc/typed.h describes it): one tag
 * byte, then the value in fixed little-endian.  One "tagged value" type
 * carries an int64, a double or a string through one encoder and one
 * decoder, shared by the queue, pipe and pool helpers; decoders check tag
 * and length and fail with MPROC_ETYPE, never read past `len`. */
#ifndef MPROC_TYPED_INTERNAL_H
#define MPROC_TYPED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mproc.h"

/* Bytes of an int64 or double message. */
#define MPROC__TYPED_SCALAR_LEN 9

/* A typed value: `tag` (MPROC_TYPED_INT64, _DOUBLE or _STR) says which
 * member holds it.  A string is s (no NUL among its n bytes); a decoded
 * one points into the message, where it is NUL-terminated. */
typedef struct mproc__tval {
  int tag;
  int64_t i;
  double d;
  const char *s;
  size_t n;
} mproc__tval;

/* v from the value at `value`: an int64_t, a double, or for a string the
 * string itself.  MPROC_EINVAL for NULL, MPROC_ENOMEM for a string whose
 * message would not fit a size_t. */
int mproc__tval_make(mproc__tval *v, int tag, const void *value);
/* Bytes of v's message. */
size_t mproc__tval_len(const mproc__tval *v);
/* Writes v's message into out, which has mproc__tval_len(v) bytes. */
void mproc__tval_enc(unsigned char *out, const mproc__tval *v);
/* Decodes msg as a value of `tag`: MPROC_ETYPE when it is not one. */
int mproc__tval_dec(const void *msg, size_t len, int tag, mproc__tval *v);
/* mproc__tval_dec, then the value to *out: an int64_t, a double, or for a
 * string a const char * into msg. */
int mproc__tval_read(const void *msg, size_t len, int tag, void *out);

/* Where a typed message goes: a queue's put, a pipe's send, a task's
 * result, each behind an adapter of this shape. */
typedef int (*mproc__send_fn)(void *ch, const void *msg, size_t len,
                              double timeout);
/* Encodes the value at `value` (as mproc__tval_make) and sends it: on the
 * stack when small, else through a heap buffer. */
int mproc__tval_send(mproc__send_fn send, void *ch, int tag, const void *value,
                     double timeout);

#endif
