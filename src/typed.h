/* The typed message format (include/mproc/typed.h describes it): one tag
 * byte, then the value in fixed little-endian.  Encoders write into room
 * the caller has; decoders check tag and length and fail with MPROC_ETYPE,
 * never read past `len`. */
#ifndef MPROC_TYPED_INTERNAL_H
#define MPROC_TYPED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mproc.h"

/* Bytes of an int64 or double message. */
#define MPROC__TYPED_SCALAR_LEN 9

void mproc__typed_enc_int64(unsigned char *out, int64_t v);
void mproc__typed_enc_double(unsigned char *out, double v);
/* Writes the message for the n-byte string s (no NUL among them) into out,
 * which has room for n + 2 bytes. */
void mproc__typed_enc_str(unsigned char *out, const char *s, size_t n);

int mproc__typed_dec_int64(const void *msg, size_t len, int64_t *out);
int mproc__typed_dec_double(const void *msg, size_t len, double *out);
/* *out points into msg (the string is NUL-terminated there); *n is its
 * length without the NUL. */
int mproc__typed_dec_str(const void *msg, size_t len, const char **out,
                         size_t *n);

/* The message for string s: in `small` (cap bytes) when it fits, else in
 * *heap (malloc'd; the caller frees it).  NULL when out of memory or the
 * string's message would not fit a size_t. */
const unsigned char *mproc__typed_str_msg(const char *s, unsigned char *small,
                                          size_t cap, unsigned char **heap,
                                          size_t *len);

#endif
