/* libFuzzer target: the argument decoder reads bytes that come from
 * another process (the spawn bootstrap).  Damage must give an error, never
 * a crash, a leak or an out-of-bounds read.
 *
 * Two halves per input: the raw bytes go to the decoder as they are, and
 * the same bytes drive the builder to make a valid encoding, which is then
 * damaged at a place the input chooses, so the fuzzer also reaches the
 * decoder's deep paths without learning the format first. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_and_touch(const uint8_t *buf, size_t len) {
  mproc_handle_t table[4];
  mproc_args *out = NULL;
  size_t i;
  for (i = 0; i < 4; i++)
    table[i] = (mproc_handle_t)(intptr_t)(10 + i);
  if (mproc__args_decode(buf, len, table, 4, 0, &out) == MPROC_OK) {
    for (i = 0; i < mproc_args_count(out); i++) {
      const char *s;
      const void *b;
      size_t n;
      int64_t v;
      double d;
      mproc_handle_t h;
      (void)mproc_arg_int(out, i, &v);
      (void)mproc_arg_double(out, i, &d);
      if (mproc_arg_str(out, i, &s) == MPROC_OK)
        (void)strlen(s);
      if (mproc_arg_bytes(out, i, &b, &n) == MPROC_OK && n)
        (void)((const volatile unsigned char *)b)[n - 1];
      (void)mproc_arg_handle(out, i, &h);
    }
    for (i = 0; i < mproc_kwargs_count(out); i++) {
      const char *k;
      if (mproc_kwarg_key(out, i, &k) == MPROC_OK)
        (void)mproc_kwarg_type(out, k);
    }
  }
  mproc_args_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mproc_args *a = NULL;
  unsigned char *enc = NULL;
  mproc_handle_t *hs = NULL;
  size_t len = 0, nh = 0, i = 0;
  decode_and_touch(data, size);

  if (mproc_args_create(&a) != MPROC_OK)
    return 0;
  while (i + 2 <= size) {
    uint8_t op = data[i], n = data[i + 1];
    const char *key = (op & 0x80) ? "k" : NULL;
    char kbuf[8];
    if (key) {
      kbuf[0] = 'k';
      kbuf[1] = (char)('a' + (i % 26));
      kbuf[2] = 0;
      key = kbuf;
    }
    i += 2;
    if (n > size - i)
      n = (uint8_t)(size - i);
    switch (op & 7) {
    case 0:
      (void)mproc_args_add_int(a, key, (int64_t)n * 1000003);
      break;
    case 1:
      (void)mproc_args_add_double(a, key, (double)n / 7.0);
      break;
    case 2: {
      char s[256];
      memcpy(s, data + i, n);
      s[n] = 0;
      (void)mproc_args_add_str(a, key, s);
      break;
    }
    case 3:
      (void)mproc_args_add_bytes(a, key, data + i, n);
      break;
    default:
      if (a->nhandles < 4)
        (void)mproc_args_add_handle(a, key, (mproc_handle_t)(intptr_t)(3 + n));
      break;
    }
    i += n;
  }
  if (mproc__args_encode(a, &enc, &len, &hs, &nh) == MPROC_OK && len > 0) {
    unsigned char *copy = (unsigned char *)malloc(len);
    if (copy) {
      memcpy(copy, enc, len);
      decode_and_touch(copy, len); /* the valid one must decode */
      if (size > 0) {
        copy[data[0] % len] ^= (unsigned char)(size > 1 ? data[1] | 1 : 0x5a);
        decode_and_touch(copy, len);
        decode_and_touch(copy, len - 1 - (data[0] % len)); /* truncated */
      }
      free(copy);
    }
  }
  free(enc);
  free(hs);
  mproc_args_free(a);
  return 0;
}
