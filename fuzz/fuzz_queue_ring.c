/* libFuzzer target: the queue's ring reader.  The ring and its counters sit
 * in memory other processes write, so a damaged peer could leave any bytes
 * and any head/tail there; the reader must report an inconsistency, never
 * read outside the ring. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "queue_ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t head, tail, ring, max_msg, off, next;
  unsigned char *copy;
  uint32_t len;
  int64_t n;
  if (size < 24)
    return 0;
  memcpy(&head, data, 8);
  memcpy(&tail, data + 8, 8);
  memcpy(&max_msg, data + 16, 8);
  data += 24;
  size -= 24;
  ring = size & ~(uint64_t)7;
  if (ring < 16)
    return 0;
  /* An exact-size heap copy, so ASan sees any read past the ring. */
  copy = (unsigned char *)malloc((size_t)ring);
  if (!copy)
    return 0;
  memcpy(copy, data, (size_t)ring);
  /* Counters near each other are what a real ring has; keep some of both. */
  if (head & 1)
    tail = head + (tail % (ring + 16));
  if (mproc__qr_peek(copy, ring, max_msg, head, tail, &off, &len, &next) ==
      MPROC__QR_OK) {
    if (len)
      (void)((volatile unsigned char *)copy)[off + len - 1];
  }
  n = mproc__qr_count(copy, ring, max_msg, head, tail);
  (void)n;
  /* Recovery's look for an early wrap cut short reads the same memory. */
  (void)mproc__qr_bare_wrap(copy, ring, head, tail);
  free(copy);
  return 0;
}
