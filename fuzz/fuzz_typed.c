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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *copy = (unsigned char *)malloc(size ? size : 1);
  unsigned char back[MPROC__TYPED_SCALAR_LEN];
  const char *s = NULL;
  size_t n = 0;
  int64_t v = 0;
  double d = 0;
  if (!copy)
    return 0;
  if (size)
    memcpy(copy, data, size); /* exact size: ASan sees any overread */
  if (mproc__typed_dec_int64(copy, size, &v) == MPROC_OK) {
    mproc__typed_enc_int64(back, v);
    if (memcmp(back, copy, sizeof back) != 0)
      abort();
  }
  if (mproc__typed_dec_double(copy, size, &d) == MPROC_OK) {
    mproc__typed_enc_double(back, d);
    if (memcmp(back, copy, sizeof back) != 0)
      abort();
  }
  if (mproc__typed_dec_str(copy, size, &s, &n) == MPROC_OK &&
      (strlen(s) != n || n + 2 != size))
    abort();
  free(copy);
  return 0;
}
