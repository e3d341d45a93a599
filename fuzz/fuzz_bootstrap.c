/* libFuzzer target: the spawn bootstrap decoder, the first thing a spawned
 * child reads from its parent.  Damage must give an error, never a crash or
 * an out-of-bounds read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *buf, size_t len) {
  mproc__bootstrap bs;
  size_t total;
  if (len >= MPROC__BS_HEADER)
    (void)mproc__bootstrap_peek_len(buf, &total);
  if (mproc__bootstrap_decode(buf, len, &bs) == MPROC_OK) {
    uint32_t i;
    volatile size_t sink = strlen(bs.entry) + strlen(bs.name) +
                           strlen(bs.identity) + strlen(bs.parent_name);
    for (i = 0; i < bs.nhandles; i++)
      sink += (size_t)bs.handles[i];
    if (bs.args_len)
      sink += bs.args[bs.args_len - 1];
    (void)sink;
    mproc__bootstrap_release(&bs);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t buf[4096];
  mproc__bootstrap bs;
  unsigned char *enc = NULL;
  size_t len = 0;
  uint64_t handles[3] = {4, 5, 6};
  check(data, size);
  /* A valid message with the input spliced over its body. */
  memset(&bs, 0, sizeof bs);
  bs.start_method = MPROC_START_SPAWN;
  bs.parent_pid = 42;
  bs.entry = "entry";
  bs.name = "Process-1";
  bs.identity = "1";
  bs.parent_name = "MainProcess";
  bs.nhandles = 3;
  bs.handles = handles;
  bs.args = data;
  bs.args_len = size;
  if (mproc__bootstrap_encode(&bs, &enc, &len) == MPROC_OK) {
    if (len <= sizeof buf && size > 2) {
      memcpy(buf, enc, len);
      buf[MPROC__BS_HEADER + data[0] % (len - MPROC__BS_HEADER)] = data[1];
      check(buf, len);
    }
    free(enc);
  }
  return 0;
}
