/*
 * The byte ring behind mproc_queue (src/queue.c), as pure functions over a
 * block of memory so they can be unit-tested and fuzzed without processes.
 *
 * The ring is `ring` bytes (a multiple of 8).  Producers and consumers
 * count bytes with 64-bit counters that only grow: `tail` (bytes ever
 * written) and `head` (bytes ever consumed); the byte offset of a counter
 * is counter % ring.  tail - head is the number of bytes in use.
 *
 * A record is a little header (u32 payload length) followed by the payload,
 * the whole padded to 8 bytes, so every record starts 8-aligned.  A record
 * never wraps: if it does not fit before the end of the ring, the producer
 * writes a wrap marker (length MPROC__QR_WRAP) where it stands and puts the
 * record at offset 0 of the next lap.  The skipped bytes count as used
 * until the consumer passes them.
 *
 * Everything a reader takes from the ring is checked against the ring's
 * bounds first: the memory is shared with other processes, and a damaged
 * or hostile peer must not make this process read or write out of bounds.
 */
#ifndef MPROC_QUEUE_RING_H
#define MPROC_QUEUE_RING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MPROC__QR_HDR 4u             /* the u32 length before a payload */
#define MPROC__QR_WRAP 0xffffffffu   /* length field of a wrap marker */
#define MPROC__QR_MSG_MAX 0x7ffffff0u /* largest payload the format holds */

/* Bytes a record of `len` payload bytes takes: header plus payload,
 * rounded up to 8.  len <= MPROC__QR_MSG_MAX. */
static inline uint64_t mproc__qr_recsize(uint64_t len) {
  return (MPROC__QR_HDR + len + 7u) & ~(uint64_t)7u;
}

/* Ring bytes (a multiple of 8) for a queue created with `capacity` bytes
 * (>= 16) whose messages are at most capacity / 2.  A record of the largest
 * size r may find the tail just under r bytes before the end, so it needs
 * up to 2r - 8 bytes of an empty ring: rounding capacity to 16 and adding
 * 16 makes every accepted message fit once the ring drains, whatever the
 * tail's position. */
static inline uint64_t mproc__qr_ring_for(uint64_t capacity) {
  return ((capacity + 15u) & ~(uint64_t)15u) + 16u;
}

/* Largest payload for a queue of `capacity` bytes. */
static inline uint64_t mproc__qr_msg_max(uint64_t capacity) {
  uint64_t m = capacity / 2u;
  return m > MPROC__QR_MSG_MAX ? MPROC__QR_MSG_MAX : m;
}

/* Where a record of `rec` bytes goes when the tail is at `tail`: returns
 * the counter of its first byte (tail itself, or the start of the next lap
 * when it does not fit before the end, in which case *wrap is set). */
static inline uint64_t mproc__qr_place(uint64_t tail, uint64_t ring,
                                       uint64_t rec, int *wrap) {
  uint64_t left = ring - tail % ring;
  *wrap = left < rec;
  return left < rec ? tail + left : tail;
}

/* Room for a record of `rec` bytes with the counters at head/tail?
 * Returns the new tail if it fits, 0 if not (a new tail is never 0). */
static inline uint64_t mproc__qr_fits(uint64_t head, uint64_t tail,
                                      uint64_t ring, uint64_t rec) {
  int wrap;
  uint64_t at = mproc__qr_place(tail, ring, rec, &wrap);
  return at + rec - head <= ring ? at + rec : 0;
}

/* The early wrap.  A wrap marker may stand anywhere, so a ring whose
 * consumers keep up need not run through all of a large ring: when a
 * consumer empties it (head == tail) with the counters at or past `hot`
 * bytes into their lap, it moves both counters to the start of the next
 * lap (src/queue.c, mproc__q_wrap_empty), and the ring cycles through its
 * first `hot` bytes however large it is.  Only while it is empty: after a
 * wrap with records still in the old lap, a producer could fill the new
 * lap only up to the consumers' head, so consumers that stop reading just
 * then would leave a "large" ring full at about `hot` bytes.  Returns the
 * next lap's start when the counters should move there, else 0 (also
 * when hot >= ring: a small ring never wraps early). */
static inline uint64_t mproc__qr_wraps_early(uint64_t head, uint64_t tail,
                                             uint64_t ring, uint64_t hot) {
  if (head != tail || hot >= ring || tail % ring < hot)
    return 0;
  return tail - tail % ring + ring;
}

/* 1 if the head stands on a wrap marker with nothing after it (the tail is
 * the next lap's start): the state an early wrap leaves between its two
 * stores (tail first, then head), which recovery finishes by moving the
 * head to the tail.  A producer writes a marker only with a record after
 * it, and a record's length is never MPROC__QR_WRAP, so no other state
 * looks like this one. */
static inline int mproc__qr_bare_wrap(const unsigned char *base,
                                      uint64_t ring, uint64_t head,
                                      uint64_t tail) {
  uint32_t n;
  if (ring % 8u || ring < 16u || head % 8u || head % ring == 0 ||
      tail - head != ring - head % ring)
    return 0;
  memcpy(&n, base + head % ring, sizeof n);
  return n == MPROC__QR_WRAP;
}

/* Writes a record ending at `end` (from mproc__qr_fits: it starts at
 * `tail`, or at the next lap's start after a wrap marker at `tail`).
 * Nothing here is visible to consumers until the caller
 * publishes `end` as the new tail.  A NULL `data` writes the header (and
 * marker) only: the caller put the payload in place itself. */
static inline void mproc__qr_write_to(unsigned char *base, uint64_t ring,
                                      uint64_t tail, uint64_t end,
                                      const void *data, uint32_t len) {
  uint64_t at = end - mproc__qr_recsize(len);
  uint32_t marker = MPROC__QR_WRAP;
  unsigned char *p = base + at % ring;
  if (at != tail)
    memcpy(base + tail % ring, &marker, sizeof marker);
  memcpy(p, &len, sizeof len);
  if (len && data)
    memcpy(p + MPROC__QR_HDR, data, len);
}

enum {
  MPROC__QR_OK = 0,
  MPROC__QR_EMPTY = 1,
  MPROC__QR_BAD = 2 /* the counters or a record are inconsistent */
};

/* The next record between head and tail: its payload offset in the ring
 * (*off), its length (*len) and the head after it (*next).  Checks that the
 * counters are sane, that any wrap marker and the record lie inside
 * [head, tail) and inside the ring, and that len <= max_msg. */
static inline int mproc__qr_peek(const unsigned char *base, uint64_t ring,
                                 uint64_t max_msg, uint64_t head,
                                 uint64_t tail, uint64_t *off, uint32_t *len,
                                 uint64_t *next) {
  uint64_t pos, rec;
  uint32_t n;
  if (head == tail)
    return MPROC__QR_EMPTY;
  if (tail - head > ring || head % 8u || tail % 8u || ring % 8u || ring < 16u)
    return MPROC__QR_BAD;
  pos = head % ring;
  memcpy(&n, base + pos, sizeof n);
  if (n == MPROC__QR_WRAP) {
    uint64_t skip = ring - pos;
    if (tail - head <= skip)
      return MPROC__QR_BAD; /* a marker is always followed by a record */
    head += skip;
    pos = 0;
    memcpy(&n, base, sizeof n);
  }
  if (n > max_msg)
    return MPROC__QR_BAD;
  rec = mproc__qr_recsize(n);
  if (rec > ring - pos || rec > tail - head)
    return MPROC__QR_BAD;
  *off = pos + MPROC__QR_HDR;
  *len = n;
  *next = head + rec;
  return MPROC__QR_OK;
}

/* Records between head and tail (for recovery after a dead lock holder),
 * or -1 if the ring is inconsistent. */
static inline int64_t mproc__qr_count(const unsigned char *base,
                                      uint64_t ring, uint64_t max_msg,
                                      uint64_t head, uint64_t tail) {
  int64_t n = 0;
  uint64_t off, next;
  uint32_t len;
  for (;;) {
    int rc = mproc__qr_peek(base, ring, max_msg, head, tail, &off, &len,
                            &next);
    if (rc == MPROC__QR_EMPTY)
      return n;
    if (rc != MPROC__QR_OK)
      return -1;
    head = next;
    n++;
  }
}

/* ---- test hooks (src/queue.c) ----------------------------------------------
 * Run a put or get and stop at `stage`, keeping the queue's internal lock,
 * as if the process had been killed there; the caller then exits without
 * releasing it.  Stages: WRITTEN (put: record written past the tail; get:
 * record copied out), COUNTED (put: nput counted, tail not yet published),
 * PUBLISHED (get: head advanced, nget not yet counted).  NONE runs to the
 * end, still keeping the lock.  The WRAP_ stages are for a get that
 * empties the ring past its hot part, and stop inside the early wrap that
 * follows, keeping the put lock too: MARKED (wrap marker written, no
 * counter moved), TAIL (the tail moved to the next lap, not the head),
 * DONE (both moved).  A WRAP_ stage that finds no wrap to stop in
 * returns MPROC_ESTATE. */
enum {
  MPROC__Q_STOP_NONE = 0,
  MPROC__Q_STOP_WRITTEN = 1,
  MPROC__Q_STOP_COUNTED = 2,
  MPROC__Q_STOP_PUBLISHED = 3,
  MPROC__Q_STOP_WRAP_MARKED = 4,
  MPROC__Q_STOP_WRAP_TAIL = 5,
  MPROC__Q_STOP_WRAP_DONE = 6
};
struct mproc_queue;
int mproc__queue_test_stop_put(struct mproc_queue *q, const void *data,
                               size_t len, int stage);
int mproc__queue_test_stop_get(struct mproc_queue *q, void *buf, size_t cap,
                               size_t *len, int stage);
/* How many threads sleep in a get on an empty queue now (tests: to know a
 * getter is blocked before closing the queue or killing its process). */
uint32_t mproc__queue_test_getters_waiting(struct mproc_queue *q);
/* How many threads wait for a side's lock now (side: 0 put, 1 get;
 * tests: to know a waiter is blocked behind a view). */
uint32_t mproc__queue_test_lock_waiting(struct mproc_queue *q, int side);
/* The bytes of the queue's segment the OS backs with memory now (*backed)
 * and the bytes it reserves (*reserved); MPROC_ENOTSUP where the platform
 * cannot say. */
int mproc__queue_test_memory(struct mproc_queue *q, uint64_t *backed,
                             uint64_t *reserved);
/* 1 if this platform hands a drained queue's pages back, else 0. */
int mproc__queue_test_gives_back(struct mproc_queue *q);

#endif
