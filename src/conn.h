/*
 * Pipes (mproc_pipe / mproc_conn_*): the internal interface between the
 * portable half (src/conn.c: framing, the receive buffer, states, locking,
 * the object type) and the transport of each platform (plat/conn_os.h:
 * src/posix/conn_os.c, src/win32/conn_os.c), plus the hooks mproc_wait()
 * and the tests use.
 *
 * Wire format (the same on every platform): each message is one frame,
 *   u32 length (little endian) | u32 length ^ MPROC__CONN_CHECK | payload
 * Senders of one direction take a lock for each whole frame and receivers
 * one while they read, both in a small segment shared by every process
 * holding an end (src/conn.c), so frames of several senders never
 * interleave.  The check word still catches what the locks cannot rule
 * out (bytes written by a stranger holding the descriptor, a frame cut
 * short): damage is reported as MPROC_EBROKEN instead of as a bogus 1 GiB
 * allocation or a silent resynchronisation on random bytes.
 */
#ifndef MPROC_CONN_INTERNAL_H
#define MPROC_CONN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ipc.h"

/* ---- framing (pure functions: no I/O, no state; fuzzed) ------------------- */

#define MPROC__CONN_HDR 8u
#define MPROC__CONN_CHECK 0x4e43504du /* "MPCN" */

/* Write the 8-byte header for a payload of `len` bytes (len must be at most
 * MPROC_CONN_MSG_MAX). */
void mproc__conn_frame_header(unsigned char hdr[MPROC__CONN_HDR], uint32_t len);

/* Parse the 8 header bytes at p.  0 with *len set, or MPROC_EINVAL when the
 * check word does not match or the length exceeds MPROC_CONN_MSG_MAX. */
int mproc__conn_frame_parse(const unsigned char *p, size_t *len);

/* Look at the start of a byte stream (p, n): 1 when a whole frame is there
 * (*payload_len set; the frame is MPROC__CONN_HDR + *payload_len bytes),
 * 0 when more bytes are needed (*payload_len set if at least the header is
 * there, else 0; *have_header tells which), MPROC_EINVAL on a damaged
 * header.  Never reads past p + n. */
int mproc__conn_frame_next(const unsigned char *p, size_t n,
                           size_t *payload_len, int *have_header);

/* ---- for listeners and clients (src/listener.c) ------------------------------ */

struct mproc__conn_os;

/* A duplex connection over one transport end that reaches another program
 * (mproc__conn_os_wrap), with a shared segment of its own so it can be used
 * by several threads and passed to children like a pipe end.  Takes os
 * (closed on failure too). */
int mproc__conn_from_os(struct mproc__conn_os *os, mproc_conn **out);

/* ---- for mproc_wait() --------------------------------------------------------- */

/* The OS handle mproc_wait() waits on for a connection (POSIX: a descriptor
 * that polls readable on data or end-of-file; Windows: an event that a
 * pending zero-byte read signals), and *ready_now = 1 when a message or
 * end-of-file can be received without waiting (bytes already buffered).
 * The handle stays owned by the connection and is valid while it is open;
 * do not close the connection in another thread while waiting on it.
 * MPROC_EINVAL (not a connection), MPROC_ECLOSED, MPROC_EPERM (send-only). */
int mproc__conn_wait_handle(mproc_conn *c, mproc_handle_t *out, int *ready_now);

/* ---- for tests and fuzzers ------------------------------------------------------ */

/* Send raw bytes, without a frame, on a sending end: the only way to make a
 * damaged stream on purpose.  Checks and errors as mproc_conn_send_bytes. */
int mproc__conn_send_raw(mproc_conn *c, const void *data, size_t len);

/* 1 if another process holds the receive lock of c's incoming stream (it
 * is inside a receive or poll), 2 if it also has bytes of the stream on
 * their way (inside a read, or a frame bigger than the read-ahead), 3 if
 * another thread of this process holds it, 0 if nobody else holds it,
 * MPROC_EINVAL. */
int mproc__conn_test_rx_held(mproc_conn *c);

/* Play a hostile process sharing c's segment: store ra as the incoming
 * stream's read-ahead state word and put ring_bytes more (unwritten) bytes
 * into its ring (when the stream has one).  MPROC_OK or MPROC_EINVAL. */
int mproc__conn_test_scribble(mproc_conn *c, uint64_t ra, uint64_t ring_bytes);

/* Kill points: fn(point) is called (in the calling process only) at these
 * places of a receive, so a test can make a receiver die exactly there
 * (fn calls _exit) and check what its successor gets.  NULL (the default)
 * turns them off; set it before the receives start.
 *   MPROC__CONN_AT_CONSUMED: a frame was copied out and its consumption
 *     from the shared read-ahead published;
 *   MPROC__CONN_AT_MOVED: a partial frame was copied to the front of the
 *     read-ahead, before that move is published;
 *   MPROC__CONN_AT_MIDFRAME: the start of a frame bigger than the
 *     read-ahead was taken out of it, the rest still to come (mid-frame). */
#define MPROC__CONN_AT_CONSUMED 1
#define MPROC__CONN_AT_MOVED 2
#define MPROC__CONN_AT_MIDFRAME 3
void mproc__conn_test_hook(void (*fn)(int point));

/* ---- the object type (registered in src/objtypes.c) ------------------------- */

extern const mproc__objtype mproc__conn_type;

/* The platform transport (mproc__conn_os_*) is in plat/conn_os.h. */

#endif
