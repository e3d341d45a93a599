/* libFuzzer target: the typed message decoders (src/typed_wire.c) read
 * bytes from another process, or bytes a program sent with the byte API.
 * Anything must give a value or MPROC_ETYPE, never an out-of-bounds read;
 * a decoded string must be NUL-terminated within the message, and a value
 * that decodes must encode back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "typed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decodes copy as a value of `tag`; one that decodes must encode back to
 * the same bytes (for a string: its NUL is the message's last byte). */
static void mproc__fuzz_tag(const unsigned char *copy, size_t size, int tag) {
  unsigned char *back;
  mproc__tval v;
  if (mproc__tval_dec(copy, size, tag, &v) != MPROC_OK)
    return;
  if (tag == MPROC_TYPED_STR && strlen(v.s) != v.n)
    abort();
  if (mproc__tval_len(&v) != size || !(back = (unsigned char *)malloc(size)))
    abort();
  mproc__tval_enc(back, &v);
  if (memcmp(back, copy, size) != 0)
    abort();
  free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *copy = (unsigned char *)malloc(size ? size : 1);
  if (!copy)
    return 0;
  if (size)
    memcpy(copy, data, size); /* exact size: ASan sees any overread */
  mproc__fuzz_tag(copy, size, MPROC_TYPED_INT64);
  mproc__fuzz_tag(copy, size, MPROC_TYPED_DOUBLE);
  mproc__fuzz_tag(copy, size, MPROC_TYPED_STR);
  free(copy);
  return 0;
}
