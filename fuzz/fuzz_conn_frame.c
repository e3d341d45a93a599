/* libFuzzer target: the pipe's frame parser, which reads whatever the peer
 * process wrote.  A damaged header must be an error, a short one "need more
 * bytes", and nothing may be read past the bytes given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *copy = (unsigned char *)malloc(size ? size : 1);
  size_t pos = 0, len = 0;
  if (!copy)
    return 0;
  memcpy(copy, data, size);
  if (size >= MPROC__CONN_HDR)
    (void)mproc__conn_frame_parse(copy, &len);
  /* Walk the stream frame by frame, as a receiver's buffer would. */
  while (pos < size) {
    int have_header = 0;
    int rc = mproc__conn_frame_next(copy + pos, size - pos, &len, &have_header);
    if (rc != 1)
      break;
    if (len)
      (void)((volatile unsigned char *)copy)[pos + MPROC__CONN_HDR + len - 1];
    pos += MPROC__CONN_HDR + len;
  }
  /* A valid frame, then the input as its body with one byte of damage. */
  if (size > 0 && size < 65536) {
    unsigned char *msg = (unsigned char *)malloc(MPROC__CONN_HDR + size);
    if (msg) {
      int have_header = 0;
      mproc__conn_frame_header(msg, (uint32_t)size);
      memcpy(msg + MPROC__CONN_HDR, data, size);
      msg[data[0] % MPROC__CONN_HDR] ^= (unsigned char)(data[size - 1] | 1);
      (void)mproc__conn_frame_next(msg, MPROC__CONN_HDR + size, &len,
                                   &have_header);
      free(msg);
    }
  }
  free(copy);
  return 0;
}
