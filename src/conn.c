/*
 * Pipes: Python's multiprocessing.Pipe() and its Connection objects, for
 * byte messages (send_bytes / recv_bytes / poll / close).
 *
 * This file holds what is the same everywhere: the framing (conn.h), the
 * shared state of a pipe, argument checks, thread and process safety,
 * closing, and passing an end to a child.  The transport (POSIX pipes,
 * Windows named pipes) is behind the mproc__conn_os_* functions of conn.h.
 *
 * Shared state.  mproc_pipe() also makes a small shared segment that
 * travels with every end passed to a child.  Per direction of the pipe it
 * holds a send lock, a receive lock (robust lock words, src/sync.h) and
 * the receive read-ahead:
 *   - A send takes the send lock for its whole frame, so senders on one
 *     end (threads, and processes the end was passed to) never interleave
 *     frames, whatever their size.  Uncontended: one CAS and one store.
 *   - A receive or poll takes the receive lock (by its deadline: a holder
 *     stopped by SIGSTOP or a debugger delays nobody past theirs) and reads
 *     ahead into the shared buffer, so any receiver of any process sees
 *     the bytes another one read ahead: each frame goes whole to exactly
 *     one receiver, and nothing stays behind in a process that stops
 *     receiving.  A frame bigger than the buffer goes straight into the
 *     receiver's buffer; if that receive times out part way, the process
 *     keeps the part and the receive lock until a later receive of it
 *     completes the frame (or it closes the end: then the stream breaks).
 *   - Damage is an error, never mis-framed data: a header that is not one
 *     (bad check word, impossible length), a frame cut short by
 *     end-of-file, a sender that died holding the send lock (inside a
 *     frame), a receiver that died while bytes were on their way out of
 *     the pipe.  Each sets the stream's `broken` flag, and from then on
 *     sends and receives of that direction report MPROC_EBROKEN.  A
 *     receiver already waiting for the rest of a dead sender's frame learns
 *     of it at its deadline or at end-of-file.
 *   - A receiver that dies anywhere else loses nothing and hands nothing
 *     out twice: the read-ahead's whole state (start, end, flags) is one
 *     word, and each change of it one store (MPROC__RA_*), so a death
 *     leaves it as it was before the change or after, never half of each.
 *
 * Semantics, where Python leaves room or mproc differs:
 *   - One send is one receive: frames are never split or merged.  A
 *     receive into a buffer that is too small fails with MPROC_ERANGE and
 *     *len set, and the message stays for a receive with a bigger buffer.
 *   - End-of-file (MPROC_EEOF) comes once every copy of the peer end is
 *     closed (or its processes died) and everything sent was received.
 *   - When a parent passes an end to a child it should usually close its
 *     own copy of that end right after mproc_process_start(), as in Python:
 *     end-of-file needs every copy of the sending side closed.  Under the
 *     fork start method a child also inherits copies of every end the
 *     parent held at that moment, passed or not.
 *   - In a child, mproc_conn_free() of an end received as an argument only
 *     closes it (the argument list owns and frees it).
 *   - A fork child's copy of an end starts clean, whatever the parent's
 *     threads were doing in it at the fork (mproc__conn_adopt).
 *   - Threads: any function may be called from any thread.
 *     mproc_conn_close() from another thread does not interrupt a receive
 *     blocked in the OS on POSIX (nothing can wake it there without also
 *     disturbing other processes sharing the pipe); on Windows it cancels
 *     it.  The OS handles are released when the last call in progress
 *     returns.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "sync.h"

/* The read-ahead buffer: the default pipe capacity on Linux, so one read
 * can drain a full pipe. */
#define MPROC__CONN_BUF ((size_t)64 << 10)
/* Words written by senders, by receivers and read by both sit on their own
 * cache lines (two 64-byte lines: see MPROC__Q_LINE in queue.c). */
#define MPROC__CONN_LINE 128

/* The ring of a stream: a frame that fits goes through it (no system
 * call) while nothing sent through the OS is unread.  At most the
 * read-ahead's size, so a frame out of the ring always fits the read-ahead. */
#define MPROC__CONN_RING MPROC__CONN_BUF
/* How long a receiver looks at an empty ring before it asks for a wake-up
 * through the OS channel (seconds). */
#define MPROC__CONN_RING_SPIN 50e-6
/* How long a sender waits for room in a full ring before it uses the OS
 * channel instead (seconds; see mproc__ring_wait_room). */
#define MPROC__CONN_RING_ROOM_WAIT 200e-6
/* The bell: a header no frame has (length 0xffffffff), written through the
 * OS only to wake a receiver; receivers drop it. */
#define MPROC__CONN_BELL 0xffffffffu

/* Version of the description an end carries to a child. */
#define MPROC__CONN_WIRE 3u

/* The state of a read-ahead is one 64-bit word (mproc__conn_stream.ra):
 * buf[off, end) holds bytes read ahead, and two flags.  One word, so that
 * each change of that state is one store: a receiver that dies anywhere
 * leaves either the state before a change or the one after it, never half
 * of each (a new off with an old end would hand bytes out twice).  off and
 * end are at most MPROC__CONN_BUF, which fits their 20 bits. */
#define MPROC__RA_BITS 20
#define MPROC__RA_MASK ((1u << MPROC__RA_BITS) - 1u)
/* Bytes of the stream are on their way out of the pipe (or were moved in
 * buf) and not yet accounted for in off/end: see mproc__conn_stream.ra. */
#define MPROC__RA_BUSY ((uint64_t)1 << 40)
#define MPROC__RA_EOF ((uint64_t)1 << 41) /* the OS reported end-of-file */

/* One direction of a pipe, in the pipe's shared segment: what every
 * process holding an end of that direction agrees on. */
typedef struct mproc__conn_stream {
  mproc__lockword tx; /* senders: held for one whole frame */
  unsigned char pad0[MPROC__CONN_LINE - sizeof(mproc__lockword)];
  /* Set once, never cleared: the byte stream is damaged (a frame cut
   * short, bytes that are not a frame, a sender or receiver that died
   * inside a frame).  Sends and receives report MPROC_EBROKEN. */
  volatile uint32_t broken;
  /* Set at creation: this stream's small frames may go through `ring`
   * (see "the ring" below). */
  uint32_t ring_on;
  unsigned char pad1[MPROC__CONN_LINE - 8];
  mproc__lockword rx; /* receivers: held while the stream is read */
  /* Changed under rx, one store at a time (MPROC__RA_*): off, end and the
   * flags.  BUSY is set while bytes of the stream are on their way out of
   * the pipe and not yet accounted for in off/end (inside a read, or a
   * frame bigger than buf that goes straight to a receiver), or while
   * buf[off, end) is being moved.  A receiver that dies then takes them
   * along (or leaves them half moved), and its successor marks the stream
   * broken; one that dies with BUSY clear (waiting for bytes, or copying a
   * frame out before publishing the new off) loses nothing. */
  volatile uint64_t ra;
  unsigned char pad2[MPROC__CONN_LINE - sizeof(mproc__lockword) - 8];
  /* The ring (ring_on only).  Written under tx: r_tail (bytes published
   * into ring) and os_sent (bytes handed to the OS, counted before the
   * write); under rx: r_head and os_recvd (bytes read from the OS). */
  volatile mproc__u64a r_tail, os_sent;
  /* os_sent when the ring's content began (set by the sender that finds
   * the ring empty): the pipe's bytes before it come first. */
  volatile mproc__u64a gate;
  unsigned char pad3[MPROC__CONN_LINE - 24];
  volatile mproc__u64a r_head, os_recvd;
  unsigned char pad4[MPROC__CONN_LINE - 16];
  /* 1: a receiver (or mproc_wait) may be asleep on the OS channel; the
   * next sender clears it and wakes it through the OS. */
  volatile uint32_t sleeping;
  unsigned char pad5[MPROC__CONN_LINE - 4];
  unsigned char buf[MPROC__CONN_BUF];
  unsigned char ring[MPROC__CONN_RING];
} mproc__conn_stream;

/* The segment of one pipe as mapped in one process: shared by the two ends
 * mproc_pipe() made here, or owned by one imported end. */
typedef struct mproc__conn_shm {
  mproc__seg seg;
  mproc__conn_stream *st; /* nst streams: 0 carries b -> a, 1 a -> b */
  int nst, nfx;
  mproc__fx fx[4]; /* stream i: fx[2i] its tx lock, fx[2i+1] its rx lock */
  volatile uint32_t refs;
} mproc__conn_shm;

struct mproc_conn {
  mproc__obj hdr;
  unsigned dir;  /* MPROC__CONN_R / _W bits; fixed at creation */
  unsigned side; /* 0: the pipe's *a end, 1: its *b end */
  int imported;  /* owned by a child's argument list */
  /* bit 0: closed; bits 1..: calls in progress (steps of 2).  A close
   * releases the OS side at once only when nobody is inside; otherwise the
   * last call to leave does it, so no thread ever uses a closed handle. */
  volatile uint32_t state;
  volatile uint32_t released;
  /* The process the local state here (state's count, rlw, hold, part)
   * belongs to: its pid << 1, with bit 0 set while a thread of that
   * process takes the state over after a fork (mproc__conn_adopt). */
  volatile mproc__u64a owner;
  /* Threads of this process: the receive side's local state below (the
   * shared locks serialise processes, and threads for sends).  A lock word
   * in this process's memory rather than a mutex, for its deadline: a
   * thread blocked in an untimed receive must not hold up a timed receive
   * or poll of another thread past its timeout. */
  mproc__lockword rlw;
  mproc__fx rlfx;
  mproc__conn_shm *shm;
  mproc__conn_stream *rx, *tx; /* NULL without that direction */
  mproc__fx *rxfx, *txfx;
  /* 1 while this process keeps the stream's receive lock between calls:
   * a receive of a frame bigger than the read-ahead ended (timeout) with
   * part of it here, in `part`.  Read without rlw by mproc_wait(). */
  volatile uint32_t hold;
  unsigned char *part;
  size_t part_len, part_total;
  mproc__conn_os *os;
};

/* ---- framing ------------------------------------------------------------------ */

static void mproc__put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t mproc__get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

void mproc__conn_frame_header(unsigned char hdr[MPROC__CONN_HDR], uint32_t len) {
  mproc__put32(hdr, len);
  mproc__put32(hdr + 4, len ^ MPROC__CONN_CHECK);
}

int mproc__conn_frame_parse(const unsigned char *p, size_t *len) {
  uint32_t n = mproc__get32(p);
  if ((n ^ MPROC__CONN_CHECK) != mproc__get32(p + 4) ||
      (size_t)n > MPROC_CONN_MSG_MAX)
    return MPROC_EINVAL;
  *len = (size_t)n;
  return MPROC_OK;
}

int mproc__conn_frame_next(const unsigned char *p, size_t n,
                           size_t *payload_len, int *have_header) {
  size_t len;
  *payload_len = 0;
  *have_header = 0;
  if (n < MPROC__CONN_HDR)
    return 0;
  if (mproc__conn_frame_parse(p, &len) < 0)
    return MPROC_EINVAL;
  *payload_len = len;
  *have_header = 1;
  return n - MPROC__CONN_HDR >= len ? 1 : 0;
}

/* ---- the shared segment ------------------------------------------------------------ */

static void mproc__conn_shm_unref(mproc__conn_shm *m) {
  int i;
  if (!m || mproc__add32(&m->refs, (uint32_t)-1) != 1u)
    return;
  for (i = 0; i < m->nfx; i++)
    mproc__fx_close(&m->fx[i]);
  mproc__seg_close(&m->seg);
  free(m);
}

static size_t mproc__conn_shm_size(int nst) {
  return (size_t)nst * sizeof(mproc__conn_stream) + MPROC__CONN_LINE;
}

/* Point st at the streams (aligned to a line in every process alike: the
 * backend may put a small header before seg.addr). */
static void mproc__conn_shm_bind(mproc__conn_shm *m, int nst) {
  uintptr_t a = (uintptr_t)m->seg.addr;
  m->st = (mproc__conn_stream *)(a + (MPROC__CONN_LINE - a % MPROC__CONN_LINE) %
                                         MPROC__CONN_LINE);
  m->nst = nst;
  m->refs = 1;
}

static mproc__lockword *mproc__conn_shm_lw(mproc__conn_shm *m, int i) {
  return i % 2 ? &m->st[i / 2].rx : &m->st[i / 2].tx;
}

static int mproc__conn_shm_create(int nst, mproc__conn_shm **out) {
  mproc__conn_shm *m = (mproc__conn_shm *)calloc(1, sizeof(*m));
  int rc = m ? MPROC_OK : MPROC_ENOMEM;
  *out = NULL;
  if (rc == MPROC_OK &&
      (rc = mproc__seg_create(&m->seg, NULL, mproc__conn_shm_size(nst))) < 0) {
    free(m);
    m = NULL;
  }
  if (m) {
    mproc__conn_shm_bind(m, nst);
    for (; rc == MPROC_OK && m->nfx < 2 * nst; m->nfx++) {
      mproc__lockword_init(mproc__conn_shm_lw(m, m->nfx));
      rc = mproc__lockword_fx(&m->fx[m->nfx], mproc__conn_shm_lw(m, m->nfx));
      if (rc < 0)
        break;
    }
    if (rc < 0)
      mproc__conn_shm_unref(m);
    else
      *out = m;
  }
  return rc;
}

/* ---- the read-ahead's state word ---------------------------------------------------- */

static uint64_t mproc__ra_make(size_t off, size_t end, uint64_t flags) {
  return (uint64_t)off | (uint64_t)end << MPROC__RA_BITS | flags;
}

static size_t mproc__ra_off(uint64_t v) { return (size_t)(v & MPROC__RA_MASK); }

static size_t mproc__ra_end(uint64_t v) {
  return (size_t)(v >> MPROC__RA_BITS & MPROC__RA_MASK);
}

/* Readers without the receive lock (mproc_wait) load it too: one word. */
static uint64_t mproc__ra_get(mproc__conn_stream *s) {
  return mproc__load64_rlx(&s->ra);
}

/* Publish a new state: the one store a change is (ordered for the next
 * holder by the receive lock's release). */
static void mproc__ra_set(mproc__conn_stream *s, uint64_t v) {
  mproc__store64_rlx(&s->ra, v);
}

/* ---- life cycle ------------------------------------------------------------------ */

static int mproc__conn_valid(const mproc_conn *c) {
  return mproc__obj_is(c, &mproc__conn_type);
}

static void mproc__conn_set_broken(mproc__conn_stream *s) {
  mproc__store32(&s->broken, 1u);
}

static void mproc__conn_rx_unlock(mproc_conn *c) {
  if (!c->hold)
    (void)mproc__lockword_release(&c->rx->rx, c->rxfx, 0);
}

/* Give up a partly received big frame: the rest of it is still in the
 * pipe, so the stream is damaged for whoever receives next.  The receive
 * lock stays held (hold is 0 now, so mproc__conn_rx_unlock releases it). */
static void mproc__conn_drop_part(mproc_conn *c) {
  mproc__conn_set_broken(c->rx);
  free(c->part);
  c->part = NULL;
  c->part_len = c->part_total = 0;
  c->hold = 0;
}

static void mproc__conn_release(mproc_conn *c) {
  if (mproc__xchg32(&c->released, 1u) != 0)
    return;
  if (c->hold) { /* closed with part of a frame kept: see the above */
    mproc__conn_drop_part(c);
    mproc__conn_rx_unlock(c);
  }
  mproc__conn_os_close(c->os);
  mproc__conn_shm_unref(c->shm);
}

/* The `owner` value of the calling process. */
static uint64_t mproc__conn_me(void) {
  return (uint64_t)mproc__plat_getpid() << 1;
}

/* A fork child inherits a copy of this struct as it was at the fork, with
 * local state that belongs to the parent's threads, none of which run here:
 *   - the count of calls in progress (state): they never leave here, so a
 *     close here would never release this process's descriptors;
 *   - the local receive lock (rlw), held by a parent thread inside a
 *     receive or poll: never released here, every receive would wait;
 *   - a kept part of a big frame (hold, part): the receive lock it stands
 *     for is held by the parent, so receiving on here would read the pipe
 *     beside it, and closing here would mark the parent's stream broken.
 * The first call in another process resets them (once: its other threads
 * wait for that; the window holds no blocking call but the close of
 * descriptors).  The shared locks and read-ahead need nothing: a parent
 * thread holding one is alive and releases it.  If the end was closed
 * with calls in progress in the parent, its descriptors here go now. */
static void mproc__conn_adopt(mproc_conn *c, uint64_t me) {
  uint64_t seen = mproc__load64(&c->owner);
  uint32_t closed;
  for (;;) {
    if (seen == me)
      return;
    if (seen == (me | 1u)) { /* another thread of this process does it */
      mproc__pause();
      seen = mproc__load64(&c->owner);
    } else if (mproc__cas64(&c->owner, &seen, me | 1u)) {
      break; /* seen: another process's pid (or its unfinished takeover) */
    }
  }
  free(c->part); /* this process's copy */
  c->part = NULL;
  c->part_len = c->part_total = 0;
  c->hold = 0;
  mproc__lockword_init(&c->rlw);
  closed = mproc__load32(&c->state) & 1u;
  mproc__store32(&c->state, closed);
  if (closed)
    mproc__conn_release(c);
  mproc__store64(&c->owner, me);
}

static void mproc__conn_leave(mproc_conn *c) {
  uint32_t old = mproc__add32(&c->state, (uint32_t)-2);
  if (old == 3u) /* closed, and we were the last one inside */
    mproc__conn_release(c);
}

static int mproc__conn_enter(mproc_conn *c) {
  uint64_t me = mproc__conn_me();
  uint32_t old;
  if (mproc__load64(&c->owner) != me)
    mproc__conn_adopt(c, me); /* first call after a fork */
  old = mproc__add32(&c->state, 2u);
  if (old & 1u) {
    mproc__conn_leave(c);
    return MPROC_ECLOSED;
  }
  return MPROC_OK;
}

/* A new end on `shm` (taking one reference).  Stream 0 carries b -> a,
 * stream 1 (duplex only) a -> b. */
static mproc_conn *mproc__conn_new(mproc__conn_os *os, mproc__conn_shm *shm,
                                   unsigned dir, unsigned side) {
  mproc_conn *c = (mproc_conn *)mproc__obj_new(sizeof(*c), &mproc__conn_type);
  int in = side == 0 ? 0 : 1, out = side == 0 ? 1 : 0;
  if (!c)
    return NULL;
  mproc__lockword_init(&c->rlw);
  if (mproc__lockword_fx(&c->rlfx, &c->rlw) < 0) {
    free(c);
    return NULL;
  }
  c->owner = mproc__conn_me();
  c->dir = dir;
  c->side = side;
  c->os = os;
  c->shm = shm;
  if (dir & MPROC__CONN_R) {
    c->rx = &shm->st[in];
    c->rxfx = &shm->fx[2 * in + 1];
  }
  if (dir & MPROC__CONN_W) {
    c->tx = &shm->st[out];
    c->txfx = &shm->fx[2 * out];
  }
  return c;
}

/* Free the struct of an end whose OS side is released (or never was). */
static void mproc__conn_free_struct(mproc_conn *c) {
  if (!c)
    return;
  mproc__fx_close(&c->rlfx);
  c->hdr.magic = 0;
  free(c);
}

static void mproc__conn_destroy(mproc_conn *c) {
  (void)mproc_conn_close(c);
  mproc__conn_free_struct(c);
}

int mproc_pipe(mproc_conn **a, mproc_conn **b, int duplex) {
  mproc__conn_os *oa = NULL, *ob = NULL;
  mproc__conn_shm *shm = NULL;
  mproc_conn *ca = NULL, *cb = NULL;
  int rc;
  if (!a || !b || a == b)
    return MPROC_EINVAL;
  *a = *b = NULL;
  rc = mproc__conn_shm_create(duplex ? 2 : 1, &shm);
  if (rc == MPROC_OK)
    rc = mproc__conn_os_pair(&oa, &ob, duplex != 0);
  if (rc == MPROC_OK && mproc__conn_os_ring_check(oa) != MPROC_ENOTSUP) {
    shm->st[0].ring_on = 1u;
    if (duplex)
      shm->st[1].ring_on = 1u;
  }
  if (rc == MPROC_OK) {
    shm->refs = 2; /* one per end */
    ca = mproc__conn_new(oa, shm, duplex ? MPROC__CONN_R | MPROC__CONN_W
                                         : MPROC__CONN_R, 0);
    cb = mproc__conn_new(ob, shm, duplex ? MPROC__CONN_R | MPROC__CONN_W
                                         : MPROC__CONN_W, 1);
    rc = ca && cb ? MPROC_OK : MPROC_ENOMEM;
  }
  if (rc < 0) {
    mproc__conn_free_struct(ca);
    mproc__conn_free_struct(cb);
    mproc__conn_os_close(oa);
    mproc__conn_os_close(ob);
    if (shm)
      shm->refs = 1;
    mproc__conn_shm_unref(shm);
    return rc;
  }
  *a = ca;
  *b = cb;
  return MPROC_OK;
}

int mproc__conn_from_os(mproc__conn_os *os, mproc_conn **out) {
  mproc__conn_shm *shm = NULL;
  mproc_conn *c = NULL;
  int rc = mproc__conn_shm_create(2, &shm);
  if (rc < 0)
    goto finish;
  /* Side a of a duplex pair whose b is the peer's (another process with
   * its own segment): the locks serialise only the holders of this end. */
  c = mproc__conn_new(os, shm, MPROC__CONN_R | MPROC__CONN_W, 0);
  rc = c ? MPROC_OK : MPROC_ENOMEM;
finish:
  if (rc < 0) {
    mproc__conn_os_close(os);
    mproc__conn_shm_unref(shm);
  }
  *out = c;
  return rc;
}

int mproc_conn_close(mproc_conn *c) {
  uint32_t v;
  if (!mproc__conn_valid(c))
    return MPROC_EINVAL;
  /* Count ourselves in while closing, so a caller that leaves meanwhile
   * cannot release the OS side under the cancel below. */
  if (mproc__conn_enter(c) < 0)
    return MPROC_OK; /* closing twice is harmless, as in Python */
  v = mproc__load32(&c->state);
  while (!(v & 1u) && !mproc__cas32(&c->state, &v, v | 1u)) {
  }
  if (!(v & 1u) && (v >> 1) > 1u)
    mproc__conn_os_cancel(c->os); /* wake the others (where possible) */
  mproc__conn_leave(c);
  return MPROC_OK;
}

mproc_conn *mproc_conn_free(mproc_conn *c) {
  if (!mproc__conn_valid(c))
    return NULL;
  if (c->imported) {
    /* A child's end belongs to its argument list, which frees it: freeing
     * it here too would free it twice.  Closing is what the caller meant. */
    (void)mproc_conn_close(c);
    return NULL;
  }
  mproc__conn_destroy(c);
  return NULL;
}

/* ---- sending -------------------------------------------------------------------- */

/* ---- the ring ----------------------------------------------------------------------
 *
 * A stream of an mproc_pipe() pair (POSIX) has a byte ring beside its
 * read-ahead.  A sender puts a frame into it, instead of writing it to the
 * pipe, when the frame fits, no receiver asked for a wake-up, and either
 * the ring is empty (it then records os_sent as the ring's `gate`) or
 * nothing went through the pipe since the gate was set.  So the ring
 * holds bytes of one stretch of the stream, which comes after the pipe's
 * first `gate` bytes and before every pipe byte counted later.  Order on
 * the receiving side: ring bytes are taken once os_recvd reached the
 * gate; pipe reads stop at the gate while the ring has bytes, and at the
 * os_sent loaded before the ring was seen empty otherwise (bytes counted
 * later may follow ring bytes not seen yet).  A receive with the
 * read-ahead empty copies a whole ring frame straight into the caller's
 * buffer; otherwise ring bytes go through the read-ahead like pipe bytes.
 * A full ring: the sender waits briefly for room before it uses the pipe
 * (mproc__ring_wait_room), as one pipe frame puts all later ones on the
 * pipe until the ring drained.
 * Waking: a receiver that finds nothing sets `sleeping`, looks again, then
 * sleeps in the OS poll; a sender that sees `sleeping` clears it and sends
 * through the pipe (the write wakes), or, when it saw it only after
 * publishing into the ring, writes a bell.  Peer death: a ring sender
 * checks, on the coarse cadence the pipe write uses, that the peer end is
 * still there (MPROC_EEOF otherwise), and a receiver reads end-of-file
 * from the pipe only after the ring is empty. */

static uint64_t mproc__ring_used(mproc__conn_stream *s) {
  return mproc__load64(&s->r_tail) - mproc__load64(&s->r_head);
}

/* 1 when every byte counted into the pipe was read (os_recvd passes
 * os_sent only if a stranger wrote into the pipe: treat that as idle). */
static int mproc__ring_os_idle(mproc__conn_stream *s) {
  return mproc__load64(&s->os_sent) <= mproc__load64(&s->os_recvd);
}

static void mproc__ring_copy_in(mproc__conn_stream *s, uint64_t at,
                                const unsigned char *p, size_t n) {
  size_t i = (size_t)(at % MPROC__CONN_RING),
         first = n < MPROC__CONN_RING - i ? n : MPROC__CONN_RING - i;
  memcpy(s->ring + i, p, first);
  if (n > first)
    memcpy(s->ring, p + first, n - first);
}

/* Through the pipe, counted (ring streams), waking a sleeper. */
static int mproc__ring_os_send(mproc_conn *c, const unsigned char *hdr,
                               size_t hlen, const void *data, size_t len) {
  mproc__conn_stream *s = c->tx;
  if (mproc__load32(&s->sleeping))
    mproc__store32(&s->sleeping, 0u); /* this write is the wake-up */
  (void)mproc__add64(&s->os_sent, (uint64_t)(hlen + len));
  return mproc__conn_os_write(c->os, hdr, hlen, data, len);
}

/* Where a frame of n bytes may go now (tx lock held): 1 into the ring, 0
 * through the pipe, 2 into the ring once the receiver made room (the
 * ring's stretch is current and merely full).  A count beyond the ring's
 * size (a stranger wrote it) sends through the pipe; the receiver reports
 * the damage. */
static int mproc__ring_where(mproc__conn_stream *s, uint64_t n) {
  uint64_t used = mproc__ring_used(s);
  if (used > MPROC__CONN_RING || n > MPROC__CONN_RING ||
      mproc__load32(&s->sleeping) ||
      (used && mproc__load64(&s->gate) != mproc__load64(&s->os_sent)))
    return 0;
  return n <= MPROC__CONN_RING - used ? 1 : 2;
}

/* The ring is full and its receiver awake: it is taking frames out, so
 * room usually comes within microseconds.  Look for it for a bounded time
 * (yielding, in case the receiver waits for our CPU) rather than send
 * through the pipe: a pipe frame would put every later frame on the pipe
 * until the ring drained (the gate rule), at a system call each.  A
 * receiver that is stopped, slow or asleep costs one such wait per ring
 * filled, then the pipe takes over with its own flow control.  1 when
 * the frame may go into the ring. */
static int mproc__ring_wait_room(mproc__conn_stream *s, uint64_t n) {
  double start = mproc__plat_now();
  int where;
  do {
    mproc__conn_os_yield();
    where = mproc__ring_where(s, n);
  } while (where == 2 &&
           mproc__plat_now() - start < MPROC__CONN_RING_ROOM_WAIT);
  return where == 1;
}

/* Send one frame on a ring stream (tx lock held). */
static int mproc__ring_send(mproc_conn *c, const unsigned char *hdr,
                            size_t hlen, const void *data, size_t len) {
  mproc__conn_stream *s = c->tx;
  unsigned char bell[MPROC__CONN_HDR];
  uint64_t tail;
  int where, rc = mproc__conn_os_ring_check(c->os);
  if (rc < 0)
    return rc;
  where = mproc__ring_where(s, (uint64_t)(hlen + len));
  if (where == 2)
    where = mproc__ring_wait_room(s, (uint64_t)(hlen + len));
  if (!where)
    return mproc__ring_os_send(c, hdr, hlen, data, len);
  if (!mproc__ring_used(s))
    mproc__store64(&s->gate, mproc__load64(&s->os_sent));
  tail = mproc__load64(&s->r_tail);
  mproc__ring_copy_in(s, tail, hdr, hlen);
  if (len)
    mproc__ring_copy_in(s, tail + hlen, (const unsigned char *)data, len);
  mproc__store64(&s->r_tail, tail + hlen + len);
  /* A receiver that went to sleep meanwhile may have missed it. */
  if (!mproc__load32(&s->sleeping))
    return MPROC_OK;
  mproc__put32(bell, MPROC__CONN_BELL);
  mproc__put32(bell + 4, MPROC__CONN_BELL ^ MPROC__CONN_CHECK);
  return mproc__ring_os_send(c, bell, sizeof bell, NULL, 0);
}

/* Write one frame (or, for the test hook, raw bytes) under the stream's
 * send lock, so frames of several threads or processes never interleave.
 * Uncontended the lock costs one CAS and one store. */
static int mproc__conn_send_locked(mproc_conn *c, const unsigned char *hdr,
                                   size_t hlen, const void *data, size_t len) {
  mproc__conn_stream *s = c->tx;
  int rc = mproc__lockword_acquire(&s->tx, c->txfx, 0, -1.0);
  if (rc == MPROC_EOWNERDEAD) {
    /* A sender died holding the lock, almost surely inside a frame whose
     * rest never comes: nothing sent after it could be framed right. */
    mproc__conn_set_broken(s);
  } else if (rc < 0) {
    return rc;
  }
  if (mproc__load32(&s->broken)) {
    rc = MPROC_EBROKEN;
  } else {
    rc = s->ring_on ? mproc__ring_send(c, hdr, hlen, data, len)
                    : mproc__conn_os_write(c->os, hdr, hlen, data, len);
    /* Cut short by a close in another thread (Windows cancels), or an OS
     * error: part of the frame may be in the pipe.  (End-of-file: nobody
     * is left to receive it.) */
    if (rc < 0 && rc != MPROC_EEOF)
      mproc__conn_set_broken(s);
  }
  (void)mproc__lockword_release(&s->tx, c->txfx, 0);
  return rc;
}

int mproc_conn_send_bytes(mproc_conn *c, const void *data, size_t len) {
  unsigned char hdr[MPROC__CONN_HDR];
  int rc;
  if (!mproc__conn_valid(c) || (!data && len))
    return MPROC_EINVAL;
  if (len > MPROC_CONN_MSG_MAX)
    return MPROC_E2BIG;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (c->dir & MPROC__CONN_W) {
    mproc__conn_frame_header(hdr, (uint32_t)len);
    rc = mproc__conn_send_locked(c, hdr, sizeof hdr, data, len);
  } else {
    rc = MPROC_EPERM;
  }
  mproc__conn_leave(c);
  return rc;
}

int mproc__conn_send_raw(mproc_conn *c, const void *data, size_t len) {
  int rc;
  if (!mproc__conn_valid(c) || (!data && len))
    return MPROC_EINVAL;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (!(c->dir & MPROC__CONN_W))
    rc = MPROC_EPERM;
  else if (len)
    rc = mproc__conn_send_locked(c, (const unsigned char *)data, len, NULL, 0);
  mproc__conn_leave(c);
  return rc;
}

/* ---- receiving (callers hold rlw) ------------------------------------------------ */

/* The test kill points of conn.h (one load and a branch when off). */
static void (*mproc__conn_hook)(int point);
#define MPROC__CONN_AT(point)                                                  \
  do {                                                                         \
    if (mproc__conn_hook)                                                      \
      mproc__conn_hook(point);                                                 \
  } while (0)

void mproc__conn_test_hook(void (*fn)(int point)) { mproc__conn_hook = fn; }

/* The receive side's lock among this process's threads (by the deadline). */
static int mproc__conn_local_lock(mproc_conn *c, double deadline) {
  int rc = mproc__lockword_acquire(&c->rlw, &c->rlfx, 0, deadline);
  /* No thread of this process dies holding it, and a fork child starts
   * from a free word (mproc__conn_adopt); should it happen all the same,
   * the local state is consistent between calls: use it. */
  return rc == MPROC_EOWNERDEAD ? MPROC_OK : rc;
}

static void mproc__conn_local_unlock(mproc_conn *c) {
  (void)mproc__lockword_release(&c->rlw, &c->rlfx, 0);
}

/* Take the stream's receive lock, by the deadline: a holder that another
 * process stopped (SIGSTOP, a debugger) delays nobody past theirs. */
static int mproc__conn_rx_lock(mproc_conn *c, double deadline) {
  int rc;
  if (c->hold)
    return MPROC_OK; /* kept from an earlier receive of this process */
  rc = mproc__lockword_acquire(&c->rx->rx, c->rxfx, 0, deadline);
  if (rc == MPROC_EOWNERDEAD) {
    if (mproc__ra_get(c->rx) & MPROC__RA_BUSY)
      mproc__conn_set_broken(c->rx);
    rc = MPROC_OK;
  }
  return rc;
}

/* 1 when a receive would not have to wait for the OS. */
static int mproc__conn_rx_ready(const mproc_conn *c) {
  uint64_t ra = mproc__ra_get(c->rx);
  return c->hold || mproc__load32(&c->rx->broken) || (ra & MPROC__RA_EOF) ||
         mproc__ra_end(ra) != mproc__ra_off(ra) ||
         (c->rx->ring_on && mproc__load64(&c->rx->r_tail) !=
                                mproc__load64(&c->rx->r_head));
}

/* Wait until the pipe has bytes (or end-of-file) for a read that will not
 * block.  Waiting outside the read is what makes a receiver that dies
 * while it waits harmless (BUSY is clear then). */
static int mproc__conn_wait_bytes(mproc_conn *c, double deadline) {
  int rc;
  /* Closed by another thread already: its cancel (Windows) may have come
   * before this wait began, and would not end it. */
  if (mproc__load32(&c->state) & 1u)
    return MPROC_ECLOSED;
  rc = mproc__conn_os_poll(c->os, deadline);
  if (rc == 0)
    return MPROC_ETIMEDOUT;
  if (rc < 0)
    return rc;
  /* Woken by mproc_conn_close in another thread (Windows cancels). */
  return (mproc__load32(&c->state) & 1u) ? MPROC_ECLOSED : MPROC_OK;
}

/* Read what the pipe has into the read-ahead, after its `end`. */
static int mproc__conn_fill_os(mproc_conn *c, double deadline, uint64_t cap) {
  mproc__conn_stream *s = c->rx;
  uint64_t ra = mproc__ra_get(s);
  size_t got = 0, end = mproc__ra_end(ra);
  int rc = mproc__conn_wait_bytes(c, deadline);
  if (rc < 0)
    return rc;
  mproc__ra_set(s, ra | MPROC__RA_BUSY);
  if (cap > MPROC__CONN_BUF - end)
    cap = MPROC__CONN_BUF - end;
  rc = mproc__conn_os_read(c->os, s->buf + end, (size_t)cap, deadline, &got);
  if (rc == MPROC_OK && s->ring_on)
    (void)mproc__add64(&s->os_recvd, (uint64_t)got);
  if (rc == MPROC_OK) /* the bytes and the end of BUSY in one store */
    ra = mproc__ra_make(mproc__ra_off(ra), end + got, ra & MPROC__RA_EOF);
  else if (rc == MPROC_EEOF)
    ra |= MPROC__RA_EOF;
  mproc__ra_set(s, ra);
  return rc;
}

/* Copy n bytes of the ring from stream position `at` (n <= the ring). */
static void mproc__ring_copy_out(mproc__conn_stream *s, uint64_t at,
                                 unsigned char *p, size_t n) {
  size_t i = (size_t)(at % MPROC__CONN_RING),
         first = n < MPROC__CONN_RING - i ? n : MPROC__CONN_RING - i;
  memcpy(p, s->ring + i, first);
  if (n > first)
    memcpy(p + first, s->ring, n - first);
}

/* Move ring bytes into the read-ahead after its `end` (BUSY while they
 * are in neither place). */
static void mproc__ring_take(mproc__conn_stream *s) {
  uint64_t ra = mproc__ra_get(s), head = mproc__load64(&s->r_head);
  size_t end = mproc__ra_end(ra), n = (size_t)mproc__ring_used(s);
  if (n > MPROC__CONN_BUF - end)
    n = MPROC__CONN_BUF - end;
  mproc__ra_set(s, ra | MPROC__RA_BUSY);
  mproc__ring_copy_out(s, head, s->buf + end, n);
  mproc__store64(&s->r_head, head + n);
  mproc__ra_set(s, mproc__ra_make(mproc__ra_off(ra), end + n,
                                  ra & MPROC__RA_EOF));
}

/* With the read-ahead empty, a whole frame at the ring's head that fits
 * the caller's buffer goes straight there (one copy, not two), once the
 * pipe's bytes before the ring's stretch were read.  Its consumption is
 * the one store to r_head: a receiver that dies before it leaves the frame
 * to the next one, after it leaves the next frame.  1 when taken, 0 when
 * the general path is to do it (nothing there yet, a frame too big for
 * the buffer, or counters or bytes that are not sane: it reports those). */
static int mproc__ring_recv_direct(mproc__conn_stream *s, unsigned char *ubuf,
                                   size_t cap, size_t *len) {
  uint64_t head = mproc__load64(&s->r_head),
           used = mproc__load64(&s->r_tail) - head;
  unsigned char hdr[MPROC__CONN_HDR];
  size_t plen;
  if (used < MPROC__CONN_HDR || used > MPROC__CONN_RING ||
      mproc__load64(&s->os_recvd) < mproc__load64(&s->gate))
    return 0;
  mproc__ring_copy_out(s, head, hdr, sizeof hdr);
  if (mproc__conn_frame_parse(hdr, &plen) < 0 || plen > cap ||
      plen > used - MPROC__CONN_HDR)
    return 0;
  if (plen)
    mproc__ring_copy_out(s, head + MPROC__CONN_HDR, ubuf, plen);
  mproc__store64(&s->r_head, head + MPROC__CONN_HDR + plen);
  MPROC__CONN_AT(MPROC__CONN_AT_CONSUMED);
  *len = plen;
  return 1;
}

/* Nothing in the ring nor counted for the pipe: look a little longer, then
 * ask for a wake-up and sleep in the OS poll.  0 when there is something
 * to take, 1 when the pipe became readable, or an error. */
static int mproc__ring_wait(mproc_conn *c, double deadline) {
  mproc__conn_stream *s = c->rx;
  double start = mproc__plat_now();
  int rc;
  while (mproc__plat_now() - start < MPROC__CONN_RING_SPIN &&
         (deadline < 0 || mproc__plat_now() < deadline)) {
    if (mproc__ring_used(s) || !mproc__ring_os_idle(s))
      return 0;
    mproc__conn_os_yield();
  }
  mproc__store32(&s->sleeping, 1u);
  if (mproc__ring_used(s) || !mproc__ring_os_idle(s))
    return 0;
  rc = mproc__conn_wait_bytes(c, deadline);
  return rc < 0 ? rc : 1;
}

/* Fill the read-ahead of a ring stream: ring bytes first, then counted
 * pipe bytes; the pipe is read without a count only after a poll saw it
 * readable with nothing counted since (end-of-file: no writer is left to
 * put anything into the ring). */
static int mproc__conn_fill(mproc_conn *c, double deadline) {
  mproc__conn_stream *s = c->rx;
  uint64_t limit, recvd, ra = mproc__ra_get(s);
  int woke = 0, rc;
  /* Another process wrote the word (mproc_conn_poll comes here without
   * recv's checks): a fill needs room after end, which a sane state that
   * reaches a fill always has. */
  if (mproc__ra_end(ra) >= MPROC__CONN_BUF ||
      mproc__ra_off(ra) > mproc__ra_end(ra)) {
    mproc__conn_set_broken(s);
    return MPROC_EBROKEN;
  }
  if (!s->ring_on)
    return mproc__conn_fill_os(c, deadline, MPROC__CONN_BUF);
  for (;;) {
    /* More than the ring holds: the counters were written by a stranger
     * (cast to a 32-bit size_t, such a count could even read as 0). */
    if (mproc__ring_used(s) > MPROC__CONN_RING) {
      mproc__conn_set_broken(s);
      return MPROC_EBROKEN;
    }
    limit = mproc__load64(&s->os_sent); /* before the ring: see above */
    recvd = mproc__load64(&s->os_recvd);
    if (mproc__ring_used(s)) {
      limit = mproc__load64(&s->gate);
      if (recvd >= limit) {
        mproc__ring_take(s);
        return MPROC_OK;
      }
    }
    if (limit > recvd)
      return mproc__conn_fill_os(c, deadline, limit - recvd);
    if (woke)
      return mproc__conn_fill_os(c, deadline, MPROC__CONN_BUF);
    rc = mproc__ring_wait(c, deadline);
    if (rc < 0)
      return rc;
    woke = rc;
  }
}

/* 1 if the 8 bytes at p are a bell. */
static int mproc__conn_is_bell(const unsigned char *p) {
  return mproc__get32(p) == MPROC__CONN_BELL &&
         mproc__get32(p + 4) == (MPROC__CONN_BELL ^ MPROC__CONN_CHECK);
}

/* Drop the bells at the start of the read-ahead (receive lock held; a
 * bell is always written between frames). */
static void mproc__conn_skip_bells(mproc__conn_stream *s) {
  uint64_t ra = mproc__ra_get(s);
  size_t off = mproc__ra_off(ra), end = mproc__ra_end(ra);
  if (!s->ring_on || end > MPROC__CONN_BUF || off > end)
    return;
  while (end - off >= MPROC__CONN_HDR && mproc__conn_is_bell(s->buf + off))
    off += MPROC__CONN_HDR;
  if (off != mproc__ra_off(ra))
    mproc__ra_set(s, off == end ? mproc__ra_make(0, 0, ra & MPROC__RA_EOF)
                                : mproc__ra_make(off, end, ra & MPROC__RA_EOF));
}

/* How a receive of a frame bigger than the read-ahead ends (see
 * mproc__conn_recv_direct): pos of plen payload bytes are in ubuf. */
static int mproc__conn_direct_end(mproc_conn *c, const unsigned char *ubuf,
                                  size_t pos, size_t plen, int rc,
                                  size_t *len) {
  unsigned char *p;
  if (rc == MPROC_OK) {
    free(c->part);
    c->part = NULL;
    c->part_len = c->part_total = 0;
    c->hold = 0;
    mproc__ra_set(c->rx, mproc__ra_make(0, 0, 0));
    *len = plen;
    return MPROC_OK;
  }
  if (rc == MPROC_EEOF) {
    mproc__ra_set(c->rx, mproc__ra_get(c->rx) | MPROC__RA_EOF);
    mproc__conn_drop_part(c); /* end-of-file inside a frame */
    return MPROC_EBROKEN;
  }
  /* Keep what arrived, and the lock, for the next receive here. */
  p = pos ? (unsigned char *)realloc(c->part, pos) : c->part;
  if (pos && !p) {
    mproc__conn_drop_part(c); /* cannot keep it: the stream is lost */
    return MPROC_ENOMEM;
  }
  if (pos)
    memcpy(p, ubuf, pos);
  c->part = p;
  c->part_len = pos;
  c->part_total = plen;
  c->hold = 1;
  return rc;
}

/* A frame bigger than the read-ahead: its payload is read straight into
 * the caller's buffer.  From its first payload byte out of the shared
 * read-ahead until its last, the stream is mid-frame (BUSY); if the wait
 * ends first, what arrived stays in this process, which keeps the receive
 * lock (hold) so the next receive here completes the message. */
static int mproc__conn_recv_direct(mproc_conn *c, unsigned char *ubuf,
                                   size_t cap, double deadline, size_t *len) {
  mproc__conn_stream *s = c->rx;
  size_t pos, plen = 0, got = 0;
  int rc = MPROC_OK;
  if (c->hold) {
    plen = c->part_total;
    pos = c->part_len;
    if (plen > cap) {
      *len = plen;
      return MPROC_ERANGE;
    }
    if (pos)
      memcpy(ubuf, c->part, pos);
  } else {
    /* The header is at buf[0] (the caller moved it there and checked the
     * length against cap). */
    (void)mproc__conn_frame_parse(s->buf, &plen);
    pos = mproc__ra_end(mproc__ra_get(s)) - MPROC__CONN_HDR;
    if (pos)
      memcpy(ubuf, s->buf + MPROC__CONN_HDR, pos);
    /* Copied out, and the rest of the frame to come from the pipe: the
     * read-ahead empties and the stream turns mid-frame in one store (a
     * death before it leaves the frame's start where it was). */
    mproc__ra_set(s, mproc__ra_make(0, 0, MPROC__RA_BUSY));
    MPROC__CONN_AT(MPROC__CONN_AT_MIDFRAME);
  }
  while (pos < plen && rc == MPROC_OK) {
    rc = mproc__conn_wait_bytes(c, deadline);
    if (rc == MPROC_OK)
      rc = mproc__conn_os_read(c->os, ubuf + pos, plen - pos, deadline, &got);
    if (rc == MPROC_OK && s->ring_on)
      (void)mproc__add64(&s->os_recvd, (uint64_t)got);
    if (rc == MPROC_OK)
      pos += got;
  }
  return mproc__conn_direct_end(c, ubuf, pos, plen, rc, len);
}

/* Hand out the whole frame of plen payload bytes at the start of the
 * read-ahead ra: copy it, then publish its consumption in one store (the
 * read-ahead empties to buf[0, 0) when it was the last frame).  A death
 * before that store leaves the frame to the next receiver, after it
 * leaves the next frame: no frame is ever handed out twice. */
static void mproc__conn_take(mproc__conn_stream *s, uint64_t ra,
                             unsigned char *ubuf, size_t plen) {
  size_t off = mproc__ra_off(ra), end = mproc__ra_end(ra);
  if (plen)
    memcpy(ubuf, s->buf + off + MPROC__CONN_HDR, plen);
  off += MPROC__CONN_HDR + plen;
  mproc__ra_set(s, off == end ? mproc__ra_make(0, 0, ra & MPROC__RA_EOF)
                              : mproc__ra_make(off, end, ra & MPROC__RA_EOF));
  MPROC__CONN_AT(MPROC__CONN_AT_CONSUMED);
}

/* Move the partial frame buf[off, end) of ra to the front, so a frame that
 * fits the read-ahead fits, and the read gets as much room as there is.
 * When the move overlaps its source, a death inside it would leave bytes
 * at off that are not the frame: BUSY covers it (the stream breaks).
 * Otherwise the source stays intact until the one store that publishes
 * the move.  Returns the new state. */
static uint64_t mproc__conn_move_front(mproc__conn_stream *s, uint64_t ra) {
  size_t off = mproc__ra_off(ra), avail = mproc__ra_end(ra) - off;
  if (avail > off)
    mproc__ra_set(s, ra | MPROC__RA_BUSY);
  memmove(s->buf, s->buf + off, avail);
  MPROC__CONN_AT(MPROC__CONN_AT_MOVED);
  ra = mproc__ra_make(0, avail, ra & MPROC__RA_EOF);
  mproc__ra_set(s, ra);
  return ra;
}

/* The next whole frame of the shared read-ahead, reading more as needed
 * (receive lock held). */
static int mproc__conn_recv_locked(mproc_conn *c, unsigned char *ubuf,
                                   size_t cap, size_t *len, double deadline) {
  mproc__conn_stream *s = c->rx;
  size_t off, avail, plen;
  uint64_t ra;
  int have, rc;
  if (c->hold && mproc__load32(&s->broken)) {
    mproc__conn_drop_part(c); /* a sender died inside this very frame */
    return MPROC_EBROKEN;
  }
  if (c->hold)
    return mproc__conn_recv_direct(c, ubuf, cap, deadline, len);
  for (;;) {
    mproc__conn_skip_bells(s);
    ra = mproc__ra_get(s);
    off = mproc__ra_off(ra);
    /* Another process wrote this word: check before indexing with it. */
    if (mproc__ra_end(ra) > MPROC__CONN_BUF || off > mproc__ra_end(ra))
      mproc__conn_set_broken(s);
    if (mproc__load32(&s->broken))
      return MPROC_EBROKEN;
    avail = mproc__ra_end(ra) - off;
    rc = mproc__conn_frame_next(s->buf + off, avail, &plen, &have);
    if (rc < 0) { /* not a frame header: damage, not end-of-file */
      mproc__conn_set_broken(s);
      return MPROC_EBROKEN;
    }
    if (have && plen > cap) {
      *len = plen;
      return MPROC_ERANGE;
    }
    if (rc == 1) {
      mproc__conn_take(s, ra, ubuf, plen);
      *len = plen;
      return MPROC_OK;
    }
    if (ra & MPROC__RA_EOF) {
      if (avail) /* a frame cut short by end-of-file */
        mproc__conn_set_broken(s);
      return avail ? MPROC_EBROKEN : MPROC_EEOF;
    }
    if (off)
      ra = mproc__conn_move_front(s, ra);
    if (have && MPROC__CONN_HDR + plen > MPROC__CONN_BUF)
      return mproc__conn_recv_direct(c, ubuf, cap, deadline, len);
    if (!avail && s->ring_on && mproc__ring_recv_direct(s, ubuf, cap, len))
      return MPROC_OK;
    rc = mproc__conn_fill(c, deadline);
    if (rc < 0 && rc != MPROC_EEOF)
      return rc;
  }
}

int mproc_conn_recv_bytes(mproc_conn *c, void *buf, size_t cap, size_t *len,
                          double timeout) {
  int rc;
  if (!mproc__conn_valid(c) || !len || (!buf && cap) || isnan(timeout))
    return MPROC_EINVAL;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (c->dir & MPROC__CONN_R) {
    double deadline = mproc__deadline(timeout);
    size_t n = 0;
    rc = mproc__conn_local_lock(c, deadline);
    if (rc == MPROC_OK) {
      rc = mproc__conn_rx_lock(c, deadline);
      if (rc == MPROC_OK) {
        rc = mproc__conn_recv_locked(c, (unsigned char *)buf, cap, &n,
                                     deadline);
        mproc__conn_rx_unlock(c);
      }
      mproc__conn_local_unlock(c);
    }
    *len = rc == MPROC_OK || rc == MPROC_ERANGE ? n : 0;
  } else {
    rc = MPROC_EPERM;
  }
  mproc__conn_leave(c);
  return rc;
}

/* mproc_conn_poll's wait on a ring stream (receive locks held): fill the
 * read-ahead until it has bytes that are not bells, end-of-file, or the
 * deadline.  1, MPROC_ETIMEDOUT or an error. */
static int mproc__ring_poll(mproc_conn *c, double deadline) {
  int rc;
  for (;;) {
    mproc__conn_skip_bells(c->rx);
    if (mproc__conn_rx_ready(c))
      return 1;
    rc = mproc__conn_fill(c, deadline);
    if (rc == MPROC_EEOF)
      return 1;
    if (rc < 0)
      return rc;
  }
}

/* mproc_wait on a ring stream: ask senders for a wake-up through the pipe,
 * and drop bells already in it when the receive locks are free, so a stale
 * bell does not report the connection ready. */
static void mproc__ring_wait_prepare(mproc_conn *c) {
  mproc__conn_stream *s = c->rx;
  mproc__store32(&s->sleeping, 1u);
  if (mproc__conn_rx_ready(c) || mproc__ring_os_idle(s) ||
      mproc__conn_local_lock(c, 0.0) != MPROC_OK)
    return;
  if (mproc__conn_rx_lock(c, 0.0) == MPROC_OK) {
    (void)mproc__ring_poll(c, 0.0);
    mproc__conn_rx_unlock(c);
  }
  mproc__conn_local_unlock(c);
}

int mproc_conn_poll(mproc_conn *c, double timeout) {
  int rc;
  if (!mproc__conn_valid(c) || isnan(timeout))
    return MPROC_EINVAL;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (c->dir & MPROC__CONN_R) {
    double deadline = mproc__deadline(timeout);
    /* Under the receive locks, so bytes another receiver reads into the
     * read-ahead meanwhile cannot slip past the look at it. */
    rc = mproc__conn_local_lock(c, deadline);
    if (rc == MPROC_OK) {
      rc = mproc__conn_rx_lock(c, deadline);
      if (rc == MPROC_OK) {
        /* Bytes of a message are enough, as in Python: waiting for a whole
         * frame could wait forever on a big message whose sender is
         * blocked until someone reads. */
        if (c->rx->ring_on)
          rc = mproc__ring_poll(c, deadline);
        else
          rc = mproc__conn_rx_ready(c) ? 1
                                       : mproc__conn_os_poll(c->os, deadline);
        mproc__conn_rx_unlock(c);
      }
      mproc__conn_local_unlock(c);
    }
    if (rc == MPROC_ETIMEDOUT)
      rc = 0;
  } else {
    rc = MPROC_EPERM;
  }
  mproc__conn_leave(c);
  return rc;
}

int mproc__conn_wait_handle(mproc_conn *c, mproc_handle_t *out,
                            int *ready_now) {
  int rc;
  if (!mproc__conn_valid(c) || !out || !ready_now)
    return MPROC_EINVAL;
  *ready_now = 0;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  if (c->dir & MPROC__CONN_R) {
    /* Without any lock: a thread or process blocked in a receive must not
     * hold up mproc_wait() in another. */
    if (c->rx->ring_on)
      mproc__ring_wait_prepare(c);
    if (mproc__conn_rx_ready(c))
      *ready_now = 1;
    rc = mproc__conn_os_wait_handle(c->os, out, ready_now);
  } else {
    rc = MPROC_EPERM;
  }
  mproc__conn_leave(c);
  return rc;
}

int mproc__conn_test_rx_held(mproc_conn *c) {
  if (!mproc__conn_valid(c) || !c->rx)
    return MPROC_EINVAL;
  if (mproc__load32(&c->rx->rx.word) == 0)
    return 0;
  if (mproc__lockword_owned(&c->rx->rx, 0))
    return 3;
  return (mproc__ra_get(c->rx) & MPROC__RA_BUSY) ? 2 : 1;
}

int mproc__conn_test_scribble(mproc_conn *c, uint64_t ra,
                              uint64_t ring_bytes) {
  if (!mproc__conn_valid(c) || !c->rx)
    return MPROC_EINVAL;
  mproc__ra_set(c->rx, ra);
  if (c->rx->ring_on)
    (void)mproc__add64(&c->rx->r_tail, ring_bytes);
  return MPROC_OK;
}

/* ---- passing an end to a child ------------------------------------------------------
 * Description: u8 version, u8 direction bits, u8 side, u8 streams, u64
 * segment size, u8 has_sems; handles: the transport's, the segment, then
 * (Windows) one semaphore per lock.  The read-ahead and the locks live in
 * the segment, so parent and child see one stream: nothing is copied. */

static int mproc__conn_export(const void *obj, mproc__wr *w,
                              mproc__handles *hs) {
  mproc_conn *c = (mproc_conn *)(uintptr_t)obj;
  mproc__conn_shm *m;
  int i, has_sems, rc;
  if (!mproc__conn_valid(c))
    return MPROC_EINVAL;
  rc = mproc__conn_enter(c);
  if (rc < 0)
    return rc;
  m = c->shm;
  has_sems = m->fx[0].sem != MPROC_INVALID_HANDLE;
  mproc__wr_u8(w, (uint8_t)MPROC__CONN_WIRE);
  mproc__wr_u8(w, (uint8_t)c->dir);
  mproc__wr_u8(w, (uint8_t)c->side);
  mproc__wr_u8(w, (uint8_t)m->nst);
  mproc__wr_u64(w, (uint64_t)m->seg.size);
  mproc__wr_u8(w, (uint8_t)has_sems);
  rc = w->oom ? MPROC_ENOMEM : mproc__conn_os_export(c->os, c->dir, hs);
  if (rc == MPROC_OK)
    rc = mproc__handles_push(hs, m->seg.handle);
  for (i = 0; rc == MPROC_OK && has_sems && i < m->nfx; i++)
    rc = mproc__handles_push(hs, m->fx[i].sem);
  mproc__conn_leave(c);
  return rc < 0 ? rc : MPROC_OK;
}

/* Is (dir, side, nst) an end mproc_pipe() makes? */
static int mproc__conn_shape_ok(unsigned dir, unsigned side, unsigned nst) {
  if (nst == 2)
    return side <= 1 && dir == (MPROC__CONN_R | MPROC__CONN_W);
  return nst == 1 && ((side == 0 && dir == MPROC__CONN_R) ||
                      (side == 1 && dir == MPROC__CONN_W));
}

/* The segment part of an import: hs = segment, then nsem semaphores (all
 * taken, also on failure). */
static int mproc__conn_shm_import(const mproc_handle_t *hs, size_t nsem,
                                  int nst, uint64_t size,
                                  mproc__conn_shm **out) {
  mproc__conn_shm *m = (mproc__conn_shm *)calloc(1, sizeof(*m));
  size_t i, used = 0;
  int rc = m ? MPROC_OK : MPROC_ENOMEM;
  *out = NULL;
  if (rc == MPROC_OK) {
    used = 1;
    rc = mproc__seg_import(&m->seg, hs[0], (size_t)size);
    if (rc < 0) {
      free(m);
      m = NULL;
    }
  }
  if (m) {
    mproc__conn_shm_bind(m, nst);
    for (; rc == MPROC_OK && m->nfx < 2 * nst; m->nfx++) {
      mproc__lockword *lw = mproc__conn_shm_lw(m, m->nfx);
      used = 2 + (size_t)m->nfx;
      rc = mproc__fx_import(&m->fx[m->nfx], &lw->word, &lw->fxw,
                            nsem ? hs[1 + m->nfx] : MPROC_INVALID_HANDLE);
      if (rc < 0)
        break;
    }
    if (rc < 0)
      mproc__conn_shm_unref(m);
    else
      *out = m;
  }
  for (i = used; rc < 0 && i < 1 + nsem; i++)
    mproc__plat_close_handle(hs[i]);
  return rc;
}

static int mproc__conn_import(mproc__rd *r, const mproc_handle_t *hs,
                              size_t nh, void **out) {
  uint8_t version = mproc__rd_u8(r);
  unsigned dir = mproc__rd_u8(r), side = mproc__rd_u8(r), nst = mproc__rd_u8(r);
  uint64_t size = mproc__rd_u64(r);
  unsigned has_sems = mproc__rd_u8(r);
  size_t nos, nsem, i;
  mproc__conn_os *os = NULL;
  mproc__conn_shm *shm = NULL;
  mproc_conn *c = NULL;
  int ok, rc;
  *out = NULL;
  ok = !r->bad && version == MPROC__CONN_WIRE &&
       mproc__conn_shape_ok(dir, side, nst) && has_sems <= 1 &&
       size == mproc__conn_shm_size((int)nst);
  nos = ok ? mproc__conn_os_nhandles(dir) : 0;
  nsem = has_sems ? 2 * (size_t)nst : 0;
  if (!ok || nh != nos + 1 + nsem) {
    for (i = 0; hs && i < nh; i++)
      mproc__plat_close_handle(hs[i]);
    return MPROC_EINVAL;
  }
  rc = mproc__conn_os_import(hs, nos, dir, &os);
  if (rc < 0) {
    for (i = nos; i < nh; i++)
      mproc__plat_close_handle(hs[i]);
    return rc;
  }
  rc = mproc__conn_shm_import(hs + nos, nsem, (int)nst, size, &shm);
  if (rc == MPROC_OK) {
    c = mproc__conn_new(os, shm, dir, side);
    rc = c ? MPROC_OK : MPROC_ENOMEM;
  }
  if (rc < 0) {
    mproc__conn_os_close(os);
    mproc__conn_shm_unref(shm);
    return rc;
  }
  c->imported = 1;
  *out = c;
  return MPROC_OK;
}

static void mproc__conn_free_obj(void *obj) {
  mproc_conn *c = (mproc_conn *)obj;
  if (mproc__conn_valid(c))
    mproc__conn_destroy(c);
}

const mproc__objtype mproc__conn_type = {MPROC_OBJ_CONN, mproc__conn_export,
                                         mproc__conn_import,
                                         mproc__conn_free_obj};
