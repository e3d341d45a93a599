/*
 * Queue and JoinableQueue (include/mproc/ipc.h): a byte ring in one shared
 * segment, used by any number of producer and consumer processes.
 *
 * Layout.  The segment holds a header and the ring (src/queue_ring.h).
 * The header is split into blocks of MPROC__Q_LINE bytes so that words
 * written by producers, words written by consumers and the published
 * counters each sit on their own cache lines: in the common one-producer
 * one-consumer case each side then keeps its lock and bookkeeping in its
 * own cache, and the only traffic between the two cores is the payload and
 * the counter the other side has to see.
 *
 * Two locks (the two-lock queue of Michael and Scott): producers serialize
 * on the put lock, consumers on the get lock, so a producer and a consumer
 * never wait for each other.  They agree through two counters: `tail`
 * (bytes ever written, stored only by producers) and `head` (bytes ever
 * consumed, stored only by consumers).  Each lock is the library's robust
 * lock word (src/sync.h): a waiter can tell that the owner died and take
 * the lock over, and gives up at its call's deadline.
 *
 * Crash safety.  Each side changes shared state in an order that leaves the
 * queue consistent wherever the process is killed:
 *   put: write the record past the tail (invisible), journal, nput += 1,
 *        then publish with one store of the new tail;
 *   get: copy the record out, journal, then one store of the new head
 *        (a consumer killed while copying leaves the record in the queue for
 *        the next one), then nget += 1.
 * The journal (the old count and the new counter, marked valid) lets the
 * next owner of a lock whose holder died finish or undo the count that
 * goes with the counter: the counter decides whether the operation
 * happened.  The early wrap, which moves both counters, has its own order
 * (see "the early wrap" below).
 *
 * Blocking.  Only an empty or full queue blocks, on a futex word per
 * condition (not_empty, not_full).  A sleeper reads the futex word, and
 * then, holding the lock of the side that would wake it (a consumer the
 * put lock, a producer the get lock), raises the condition's `want` flag
 * and looks at the condition.  A waker reads `want` after taking its own
 * lock (and publishing under it), with a plain load: a sleeper that
 * registered before that lock was taken is seen (the lock orders the two),
 * and one that registers after it was released sees the change.  So the
 * fast path pays no barrier of its own for the wake-up protocol (it used
 * to be a Dekker pair, a locked swap per put and per get: measured, about
 * as much as the lock itself), and only a sleeper, about to make a system
 * call anyway, takes the other side's lock once.  The waker that swaps the
 * flag back to 0 bumps the futex word and wakes every sleeper; later wakers
 * see 0 and make no system call until someone sleeps again.  So the fast path
 * makes no system call, a burst of puts to a sleeping consumer costs one
 * wake-up (a count of sleepers would cost one per put until the consumer
 * runs), and a flag left up by a process killed while sleeping costs one
 * spare wake-up, not one per operation forever.  Every sleeper is woken,
 * so a consumer that cannot use the message (ERANGE) or a producer whose
 * message needs more room than was freed cannot swallow the wake-up that
 * another one needed; the price is a stampede when many sleep at once.
 * A sleeper that set the flag after the swap had read the futex word before
 * the bump, so its wait returns at once: nobody sleeps with the flag down.
 * Before sleeping a waiter spins briefly, which on a busy queue finds the
 * next message without a system call at all, and longer while the other
 * side is inside its critical section (mproc__q_spin): a stream of big
 * messages then costs no sleep and wake-up per message.
 *
 * Views (mproc_queue_get_borrow, mproc_queue_put_reserve) lend a record of
 * the ring in place and keep the side's lock until they end: see "views"
 * below for why that is what keeps them crash-safe.
 */
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "queue_ring.h"
#include "sync.h"

#define MPROC__Q_MAGIC 0x5155504du /* "MPUQ" */
#define MPROC__Q_VERSION 3u
/* Two 64-byte lines: Intel's adjacent-line prefetcher pulls lines in pairs,
 * so words 64 bytes apart still bounce together. */
#define MPROC__Q_LINE 128
/* The ring starts here; the header sits before it, moved up to a multiple
 * of MPROC__Q_LINE in memory (the backend may put its own small header at
 * the start of the mapping, the same in every process). */
#define MPROC__Q_HDR_SIZE (1024 + MPROC__Q_LINE)
#define MPROC__Q_CAP_MIN 16u
#define MPROC__Q_CAP_MAX ((uint64_t)1 << 40)

/* ---- a ring that grows with its backlog -------------------------------------
 * Python's Queue(maxsize=0) never blocks a put, so the tutorial's "put every
 * task, then read the results" works with it.  A default mproc queue is
 * therefore a large reserve: address space, not memory.  The segment is
 * sparse (POSIX) or a SEC_RESERVE section whose pages are committed as the
 * ring reaches them (Windows), so memory follows the bytes in the queue:
 *  - a consumer that empties the ring past MPROC__Q_HOT moves both counters
 *    to the start of the next lap (the early wrap, mproc__q_wrap_empty), so
 *    a queue its consumers keep up with cycles through its first megabyte,
 *    as the old fixed ring did, and only a backlog reaches further.  Never
 *    while the ring holds records: a producer that went back to the start
 *    ahead of them could fill only up to the consumers' head, and a used
 *    queue whose consumers then stopped was full at about a megabyte;
 *  - consumers hand the pages a backlog used back to the OS as they drain
 *    it (mproc__q_give_back), past MPROC__Q_KEEP (the hot part and room for
 *    a few big messages, which stay: refaulting them on every lap would cost
 *    more than they hold).  Linux only: see mproc__seg_decommit.
 * The default reserve is 1 GiB where pointers are 64-bit and 128 MiB where
 * they are 32-bit, since every process that uses the queue maps all of it. */
#define MPROC__Q_DEFAULT_CAP                                                   \
  (sizeof(void *) >= 8 ? (uint64_t)1 << 30 : (uint64_t)128 << 20)
#define MPROC__Q_HOT ((uint64_t)1 << 20)
#define MPROC__Q_KEEP ((uint64_t)4 << 20)
/* A ring this small (an explicit byte cap) is its own working set: no early
 * wrap, nothing handed back, the fixed ring of mproc 0.1. */
#define MPROC__Q_SMALL (2 * MPROC__Q_KEEP)
/* Pages are committed (Windows) and handed back (Linux) a megabyte at a
 * time: one system call per megabyte of backlog. */
#define MPROC__Q_STEP ((uint64_t)1 << 20)

/* Spin iterations (each a pause instruction, tens of ns) before a waiter
 * sleeps in the kernel: a few microseconds, about the cost of the sleep and
 * wake system calls it saves. */
#define MPROC__Q_SPIN_WAIT 256
/* After the first few, a spinning waiter looks at the other side's counter
 * only every this many pauses.  Each look pulls that counter's line into
 * this core, so the other side's next store to it must take the line back,
 * and its next lock CAS waits for that store: polled on every pause, a
 * consumer that keeps up made each put wait for a cross-core transfer.
 * Looking less often also lets a few messages gather, taken with one read
 * of the tail.  The latency it adds is a few hundred nanoseconds. */
#define MPROC__Q_SPIN_EVERY 8
/* How long a waiter spins while the other side's lock is held (see
 * mproc__q_spin): a few times a 1 MiB copy. */
#define MPROC__Q_SPIN_BUSY 200e-6
/* A sleeper without a deadline still looks again at this interval, so a
 * peer killed between publishing and waking delays it, never hangs it. */
#define MPROC__Q_WAIT_SLICE 0.5

/* Publishing stores.  Each makes visible what this process wrote before it
 * (the record, or the copy out of it) to a reader that loads the counter
 * with a seq_cst (hence acquire) load: release ordering is all they need,
 * and on x86 a release store is a plain move where a seq_cst one is a
 * locked exchange (measured: about a third of the time of a small
 * message).  The Dekker pairs
 * with the sleepers' flags still get their full barrier: every publishing
 * store is followed by the waker's seq_cst swap of the flag (a locked
 * instruction on x86, which no later load passes; on ARMv8 the swap's
 * load-acquire cannot pass the earlier store-release).
 * Compilers without GNU builtins (MSVC) use the seq_cst store. */
#if defined(__GNUC__) || defined(__clang__)
#define MPROC__Q_PUBLISH64(p, v) __atomic_store_n(MPROC__A64(p), (v), __ATOMIC_RELEASE)
#else
#define MPROC__Q_PUBLISH64(p, v) mproc__store64((p), (v))
#endif

enum { MPROC__QFX_PLOCK, MPROC__QFX_GLOCK, MPROC__QFX_NE, MPROC__QFX_NF,
       MPROC__QFX_JOIN, MPROC__QFX_N };

/* Written once by the creator, read by importers (and then copied); and
 * commit_hw, raised by producers (under the put lock) when they commit
 * more of the ring, which changes a few times over a queue's life. */
typedef struct mproc__qconst {
  uint32_t magic, version, joinable, reserved;
  uint64_t ring_size, capacity, maxsize, max_msg, hot;
  volatile mproc__u64a commit_hw; /* ring bytes committed (Windows) */
} mproc__qconst;

/* Producers' bookkeeping, under the put lock.  The caches hold a value of
 * the consumers' counters seen earlier: those only grow, so a stale cache
 * errs on the side of "full", and the real counter is read only then.
 * Only the lock holder reads or writes a cache, so it is stored relaxed:
 * the lock orders it for the next holder.  (A seq_cst store is a locked
 * XCHG on x86; a consumer that keeps up refreshes its tail cache on
 * nearly every get, and that swap measured over half of get's own time.) */
typedef struct mproc__qprod {
  mproc__lockword lock;
  volatile mproc__u64a nput;       /* messages ever put (incl. in flight) */
  volatile mproc__u64a head_cache; /* <= head */
  volatile mproc__u64a nget_cache; /* <= nget */
  volatile mproc__u64a j_valid, j_tail, j_nput; /* journal of the last put */
} mproc__qprod;

/* Consumers' bookkeeping, under the get lock. */
typedef struct mproc__qcons {
  mproc__lockword lock;
  volatile mproc__u64a nget;       /* messages ever taken */
  volatile mproc__u64a tail_cache; /* <= tail */
  volatile mproc__u64a j_valid, j_head, j_nget; /* journal of the last get */
  volatile mproc__u64a given; /* <= head: pages before it handed back */
} mproc__qcons;

/* A condition to wait for: futex word, the futex's own waiter count, and
 * the flag a sleeper raises (see the top of the file). */
typedef struct mproc__qcond {
  volatile uint32_t seq, fxw, want, reserved;
} mproc__qcond;

typedef struct mproc__qjoin {
  volatile mproc__u64a ndone; /* task_done calls */
  volatile uint32_t seq, fxw;
} mproc__qjoin;

#define MPROC__Q_BLOCK(type, name)                                             \
  union {                                                                      \
    type v;                                                                    \
    unsigned char pad_[MPROC__Q_LINE];                                         \
  } name

typedef struct mproc__qhdr {
  MPROC__Q_BLOCK(mproc__qconst, c);
  MPROC__Q_BLOCK(mproc__qprod, p);
  MPROC__Q_BLOCK(volatile mproc__u64a, tail); /* published by producers */
  MPROC__Q_BLOCK(mproc__qcons, g);
  MPROC__Q_BLOCK(volatile mproc__u64a, head); /* published by consumers */
  MPROC__Q_BLOCK(mproc__qcond, ne);        /* not empty */
  MPROC__Q_BLOCK(mproc__qcond, nf);        /* not full */
  MPROC__Q_BLOCK(mproc__qjoin, jn);
} mproc__qhdr;

/* C11 static assertion without <assert.h>'s macro (MSVC's C mode). */
typedef char
    mproc__q_hdr_fits[sizeof(mproc__qhdr) + MPROC__Q_LINE <= MPROC__Q_HDR_SIZE
                          ? 1
                          : -1];

/* A view this handle lent (see "views" below), by side.  Written by the
 * side's lock holder only; `out` and `tid` are also read without it. */
typedef struct mproc__qview {
  volatile uint32_t out;    /* 1 while lent */
  uint32_t len;             /* borrow: the message; reserve: the room */
  int64_t pid;              /* the lender (a forked child has a copy) */
  volatile mproc__u64a tid; /* the lending thread */
  unsigned long long gen;   /* bumped by every lend: older views are stale */
  uint64_t from, to;        /* head (borrow) or tail (reserve), and after */
  uint64_t off;             /* borrow: the payload's offset in the ring */
} mproc__qview;

struct mproc_queue {
  mproc__obj hdr;
  mproc__seg seg;
  mproc__qhdr *h;
  unsigned char *ring;
  /* Local copies of the constants: a peer that scribbles over the shared
   * header cannot make this process index past its mapping. */
  uint64_t ring_size, capacity, maxsize, max_msg, hot;
  uint64_t committed; /* ring bytes usable in this process's view */
  int gives_back;     /* drained pages go back to the OS (see above) */
  int joinable;
  int nfx;
  volatile uint32_t closed;
  mproc__fx fx[MPROC__QFX_N];
  mproc__qview view[2]; /* by side */
};

extern const mproc__objtype mproc__queue_type;

enum { MPROC__Q_PUT_SIDE = 0, MPROC__Q_GET_SIDE = 1 };

/* ---- the locks ------------------------------------------------------------
 * Each side's lock is the library's robust lock word (src/sync.h): it
 * records its holder, hands a dead holder's lock over with
 * MPROC_EOWNERDEAD, and gives up at the caller's deadline however long a
 * live holder keeps it (stopped by SIGSTOP, in a debugger).  A call whose
 * lock wait times out reports what Python's Queue does when its lock
 * cannot be had in time: Full for a put, Empty for a get. */

/* Even a put_nowait/get_nowait waits this long for a lock that another
 * process holds: a critical section lasts microseconds, and a "queue
 * empty" answer for a queue holding data only because another consumer
 * was mid-copy would be a surprise.  Also long enough for the lock word
 * to look at the holder's liveness once before giving up. */
#define MPROC__Q_LOCK_GRACE 0.002

static mproc__lockword *mproc__q_lockword(mproc_queue *q, int side) {
  return side == MPROC__Q_PUT_SIDE ? &q->h->p.v.lock : &q->h->g.v.lock;
}

static mproc__fx *mproc__q_lockfx(mproc_queue *q, int side) {
  return &q->fx[side == MPROC__Q_PUT_SIDE ? MPROC__QFX_PLOCK
                                          : MPROC__QFX_GLOCK];
}

static void mproc__q_recover(mproc_queue *q, int side);

/* The call's deadline, read from the clock the first time it is needed
 * (*deadline starts as MPROC__Q_UNSET): the fast path never reads it. */
#define MPROC__Q_UNSET (-2.0)
static double mproc__q_deadline(double timeout, double *deadline) {
  if (*deadline == MPROC__Q_UNSET)
    *deadline = mproc__deadline(timeout);
  return *deadline;
}

/* Takes a side's lock: 0 (repairing first what a dead holder left), or
 * MPROC_ETIMEDOUT at the deadline. */
static int mproc__q_lock(mproc_queue *q, int side, double timeout,
                         double *deadline) {
  mproc__lockword *lw = mproc__q_lockword(q, side);
  double until;
  int rc;
  if (mproc__lockword_try(lw))
    return MPROC_OK;
  until = mproc__q_deadline(timeout, deadline);
  if (until >= 0 && until < mproc__plat_now() + MPROC__Q_LOCK_GRACE)
    until = mproc__plat_now() + MPROC__Q_LOCK_GRACE;
  rc = mproc__lockword_acquire(lw, mproc__q_lockfx(q, side), 0, until);
  if (rc == MPROC_EOWNERDEAD) {
    mproc__q_recover(q, side);
    rc = MPROC_OK;
  }
  return rc;
}

static void mproc__q_unlock(mproc_queue *q, int side) {
  (void)mproc__lockword_release(mproc__q_lockword(q, side),
                                mproc__q_lockfx(q, side), 0);
}

/* ---- waiting and waking --------------------------------------------------- */

static void mproc__q_signal(mproc__qcond *c, mproc__fx *fx) {
  /* The caller took its side's lock (and published under it) before this
   * load: a sleeper registers under that same lock (mproc__q_wait), so one
   * that registered before the caller's acquire is seen here, and one that
   * registers later saw the change and does not sleep.  Only a raised flag
   * needs the swap, which makes one waker of many do the wake-up. */
  if (mproc__load32(&c->want) == 0 || mproc__xchg32(&c->want, 0) == 0)
    return;
  (void)mproc__add32(&c->seq, 1);
  mproc__fx_wake(fx, UINT32_MAX);
}

static void mproc__q_signal_all(mproc__qcond *c, mproc__fx *fx) {
  mproc__store32(&c->want, 0);
  (void)mproc__add32(&c->seq, 1);
  mproc__fx_wake(fx, UINT32_MAX);
}

static void mproc__q_reap(mproc_queue *q, int side);
static void mproc__q_finish_wrap(mproc_queue *q);

/* Spins until ready(q) looks true (1) or the spin is over: briefly, then
 * 0 when the other side's lock is free, or while that lock is held, up to
 * MPROC__Q_SPIN_BUSY seconds (then -1, also at the deadline, unless the
 * other side's counter moved meanwhile: a peer that works, with this
 * process descheduled for most of the spin, is not a stuck holder): a
 * peer inside its critical section is copying the message (or the room)
 * this waiter wants, and a big message's copy lasts tens of microseconds,
 * longer than the short spin and about the cost of the futex sleep and
 * wake-up it saves, once per message in a stream of big ones. */
static int mproc__q_spin(mproc_queue *q,
                         int (*ready)(mproc_queue *q, uint64_t arg),
                         uint64_t arg, int peer, double deadline) {
  mproc__lockword *lw = mproc__q_lockword(q, peer);
  volatile mproc__u64a *moves =
      peer == MPROC__Q_PUT_SIDE ? &q->h->tail.v : &q->h->head.v;
  uint64_t seen = 0;
  double until = 0;
  int i;
  for (i = 0;; i++) {
    if ((i < MPROC__Q_SPIN_EVERY || i % MPROC__Q_SPIN_EVERY == 0) &&
        ready(q, arg))
      return 1;
    if (i >= MPROC__Q_SPIN_WAIT && i % MPROC__Q_SPIN_WAIT == 0) {
      if (!mproc__load32(&lw->word))
        return 0;
      if (until == 0) {
        until = mproc__plat_now() + MPROC__Q_SPIN_BUSY;
        if (deadline >= 0 && deadline < until)
          until = deadline; /* the caller's deadline bounds the spin too */
        seen = mproc__load64(moves);
      } else if (mproc__plat_now() >= until)
        return mproc__load64(moves) == seen ? -1 : 0;
    }
    mproc__pause();
  }
}

/* Raises c's flag and looks at the condition holding `side`'s lock (the
 * side whose operations wake this waiter): 1 when ready(q) is true (do not
 * sleep), 0 when the flag is up and the sleep may begin, MPROC_ETIMEDOUT
 * when the lock was not had by the deadline, MPROC__Q_RETRY when it was
 * not had within a wait slice before it, or (`brief`) at once.
 *
 * `brief`: the spin before found the other side's lock free, so a holder
 * now is an operation that just began and will end in nanoseconds (and
 * likely brings what we wait for): look again rather than wait for the
 * lock.  Waiting for it as a lock waiter would count this process in the
 * word's waiters, and every release until this process runs again would
 * pay a futex wake system call: measured on a loaded machine, thousands
 * per registration (a woken process waits milliseconds for a CPU), a
 * fifth of a busy consumer's time.  A holder that kept the lock through
 * the whole spin (stopped, descheduled, a view) is waited for as a lock,
 * so a long hold costs a sleep, not a busy loop.
 *
 * The lock is held for a load and a store by everyone but a view, which
 * keeps it until it ends: a holder
 * stopped by a signal, or a view held long, delays us, but never past our
 * deadline, and by no more than a slice a close() of our handle (the
 * caller looks at it before it tries again). */
#define MPROC__Q_RETRY 2
static int mproc__q_register(mproc_queue *q, mproc__qcond *c,
                             int (*ready)(mproc_queue *q, uint64_t arg),
                             uint64_t arg, double deadline, int side,
                             int brief) {
  double until = mproc__plat_now() + MPROC__Q_WAIT_SLICE;
  int rc, sliced = deadline < 0 || deadline > until;
  if (!sliced)
    until = deadline; /* set: q_lock never reads the clock for it */
  if (brief && !mproc__lockword_try(mproc__q_lockword(q, side)))
    return sliced || mproc__plat_now() < deadline ? MPROC__Q_RETRY
                                                  : MPROC_ETIMEDOUT;
  if (!brief && mproc__q_lock(q, side, 0, &until) < 0)
    return sliced ? MPROC__Q_RETRY : MPROC_ETIMEDOUT;
  mproc__store32(&c->want, 1);
  rc = ready(q, arg) ? 1 : 0;
  mproc__q_unlock(q, side);
  return rc;
}

/* Until ready(q) looks true, the deadline passes (MPROC_ETIMEDOUT), or a
 * spurious wake-up (0: the caller retries).  Spins first, then sleeps in
 * slices; after each slice it repairs the `reap` side's lock if its holder
 * died (what the waiter waits for may hinge on that repair). */
static int mproc__q_wait(mproc_queue *q, mproc__qcond *c, mproc__fx *fx,
                         int (*ready)(mproc_queue *q, uint64_t arg),
                         uint64_t arg, double deadline, int reap) {
  int rc;
  uint32_t seen;
  double now, until;
  if ((rc = mproc__q_spin(q, ready, arg, reap, deadline)) > 0)
    return MPROC_OK;
  /* Word first, then the flag and the look, under the waker's lock (see
   * the top of the file). */
  seen = mproc__load32(&c->seq);
  if ((rc = mproc__q_register(q, c, ready, arg, deadline, reap, rc == 0)) !=
      0)
    return rc == 1 || rc == MPROC__Q_RETRY ? MPROC_OK : rc;
  now = mproc__plat_now();
  if (deadline >= 0 && now >= deadline)
    return MPROC_ETIMEDOUT;
  until = now + MPROC__Q_WAIT_SLICE;
  if (deadline >= 0 && deadline < until)
    until = deadline;
  rc = mproc__fx_wait(fx, seen, until);
  if (rc == MPROC_ETIMEDOUT && (deadline < 0 || until < deadline)) {
    mproc__q_reap(q, reap);
    rc = MPROC_OK; /* only a slice ended: look again */
  }
  return rc;
}

static int mproc__q_has_data(mproc_queue *q, uint64_t unused) {
  (void)unused;
  return mproc__load64(&q->h->tail.v) != mproc__load64(&q->h->head.v);
}

/* Might a record of `rec` bytes fit, and the count allow one more? */
static int mproc__q_has_room(mproc_queue *q, uint64_t rec) {
  mproc__qhdr *h = q->h;
  uint64_t tail = mproc__load64(&h->tail.v), head = mproc__load64(&h->head.v);
  if (q->maxsize &&
      mproc__load64(&h->p.v.nput) - mproc__load64(&h->g.v.nget) >= q->maxsize)
    return 0;
  return mproc__qr_fits(head, tail, q->ring_size, rec) != 0;
}

static int mproc__q_join_done(mproc_queue *q, uint64_t unused) {
  (void)unused;
  return mproc__load64(&q->h->jn.v.ndone) == mproc__load64(&q->h->p.v.nput);
}

/* ---- recovery after a dead lock holder ------------------------------------ */

/* The dead producer either published its record (tail == journal's new
 * tail) or not; nput must match.  Consumers may sleep though it published:
 * wake them all.  Caller holds the put lock. */
static void mproc__q_recover_put(mproc_queue *q) {
  mproc__qhdr *h = q->h;
  if (h->p.v.j_valid) {
    uint64_t n = h->p.v.j_nput;
    if (mproc__load64(&h->tail.v) == h->p.v.j_tail)
      n++;
    mproc__store64(&h->p.v.nput, n);
  }
  /* A consumer killed inside an early wrap holds the get lock too, and may
   * have moved the tail to the next lap and not the head: until a consumer
   * came, producers could fill that lap only up to the old head. */
  mproc__q_reap(q, MPROC__Q_GET_SIDE);
  mproc__store64(&h->p.v.head_cache, mproc__load64(&h->head.v));
  mproc__store64(&h->p.v.nget_cache, mproc__load64(&h->g.v.nget));
  mproc__q_signal_all(&h->ne.v, &q->fx[MPROC__QFX_NE]);
  if (q->joinable) {
    /* An nput taken back may be what join() waits for. */
    (void)mproc__add32(&h->jn.v.seq, 1);
    mproc__fx_wake(&q->fx[MPROC__QFX_JOIN], UINT32_MAX);
  }
}

static void mproc__q_recover_get(mproc_queue *q) {
  mproc__qhdr *h = q->h;
  if (h->g.v.j_valid) {
    uint64_t n = h->g.v.j_nget;
    if (mproc__load64(&h->head.v) == h->g.v.j_head)
      n++;
    mproc__store64(&h->g.v.nget, n);
  }
  mproc__q_finish_wrap(q);
  mproc__store64(&h->g.v.tail_cache, mproc__load64(&h->tail.v));
  mproc__q_signal_all(&h->nf.v, &q->fx[MPROC__QFX_NF]);
}

static void mproc__q_recover(mproc_queue *q, int side) {
  if (side == MPROC__Q_PUT_SIDE)
    mproc__q_recover_put(q);
  else
    mproc__q_recover_get(q);
}

/* If the side's lock is held by a process that died, take it, repair, and
 * release it.  Waiters call this now and then: the next operation on that
 * side would do the same, but a waiter may depend on it and no such
 * operation may come (a join() for a message whose producer died between
 * counting and publishing it; a put waiting for a count that a consumer
 * died before lowering). */
static void mproc__q_reap(mproc_queue *q, int side) {
  if (!mproc__lockword_take_dead(mproc__q_lockword(q, side)))
    return;
  mproc__q_recover(q, side);
  mproc__q_unlock(q, side);
}

/* ---- memory behind the ring (see "a ring that grows" above) --------------- */

/* Makes the ring's first `upto` (<= ring_size) bytes usable in this
 * process's view, a step at a time: Windows commits the section's pages;
 * elsewhere everything already is (q->committed == ring_size). */
static int mproc__q_commit(mproc_queue *q, uint64_t upto) {
  uint64_t want = (upto + MPROC__Q_STEP - 1) / MPROC__Q_STEP * MPROC__Q_STEP;
  int rc;
  if (want > q->ring_size)
    want = q->ring_size;
  rc = mproc__seg_commit(&q->seg, (size_t)(MPROC__Q_HDR_SIZE + want));
  if (rc == MPROC_OK)
    q->committed = want;
  return rc;
}

/* A producer about to write a record of `rec` bytes at counter `at` (after
 * a wrap marker at `tail` if at != tail) commits what that touches, and
 * tells the consumers how far the ring is committed before it publishes
 * the record (they read commit_hw after the tail).  Put lock held. */
static int mproc__q_commit_put(mproc_queue *q, uint64_t tail, uint64_t at,
                               uint64_t rec) {
  uint64_t upto, mark;
  int rc;
  if (q->committed >= q->ring_size) /* always, but on Windows */
    return MPROC_OK;
  upto = at % q->ring_size + rec;
  mark = tail % q->ring_size + 8u;
  if (at != tail && mark > upto)
    upto = mark;
  if (upto <= q->committed)
    return MPROC_OK;
  if ((rc = mproc__q_commit(q, upto)) < 0)
    return rc;
  if (q->committed > mproc__load64(&q->h->c.v.commit_hw))
    mproc__store64(&q->h->c.v.commit_hw, q->committed);
  return MPROC_OK;
}

/* A consumer commits in its own view what the producers committed in
 * theirs (a section's commit is seen by every view on Windows; doing it
 * again costs one call per step and does not rest on that). */
static int mproc__q_commit_get(mproc_queue *q) {
  uint64_t hw;
  if (q->committed >= q->ring_size)
    return MPROC_OK;
  hw = mproc__load64(&q->h->c.v.commit_hw);
  if (hw <= q->committed)
    return MPROC_OK;
  return mproc__q_commit(q, hw < q->ring_size ? hw : q->ring_size);
}

/* Hands back (or with `dry`, only says whether there is anything to hand
 * back) the pages of ring counters [from, to) past MPROC__Q_KEEP, a lap at
 * a time, in pieces of at least MPROC__Q_GRAIN (less is not worth a system
 * call and a lock).  A piece's start is taken down to a grain boundary:
 * the page that held the previous call's end is consumed by now too, and
 * punching a hole that is one already costs nothing. */
#define MPROC__Q_GRAIN ((uint64_t)64 << 10)
static int mproc__q_decommit(mproc_queue *q, uint64_t from, uint64_t to,
                             int dry) {
  uint64_t ring = q->ring_size;
  int found = 0;
  while (from < to) {
    uint64_t off = from % ring, end = ring;
    if (to - from < ring - off)
      end = off + (to - from);
    from += end - off;
    off -= off % MPROC__Q_GRAIN;
    if (off < MPROC__Q_KEEP)
      off = MPROC__Q_KEEP;
    if (end < off + MPROC__Q_GRAIN)
      continue;
    found = 1;
    if (!dry)
      (void)mproc__seg_decommit(&q->seg, (size_t)(MPROC__Q_HDR_SIZE + off),
                                (size_t)(end - off));
  }
  return found;
}

/* Called with the get lock held after publishing the head: the pages of
 * the consumed counters [given, head) past MPROC__Q_KEEP go back to the
 * OS, once a step of them has gathered or (resume > head) when the
 * consumer passed a wrap marker at `head`: the lap's bytes after it were
 * never written, and the next range starts at `resume`, the next lap.
 * Producers must not write there meanwhile (a full ring's next lap reaches
 * those offsets), so it takes the put lock too, by a try only: the order
 * get-then-put is used nowhere else, and a busy or stopped producer merely
 * leaves the pages to a later get. */
static void mproc__q_give_back(mproc_queue *q, uint64_t head,
                               uint64_t resume) {
  mproc__qcons *g = &q->h->g.v;
  uint64_t from = g->given, tail, lo, in;
  if (resume == head && head - from < MPROC__Q_STEP)
    return;
  if (from > head || head - from > q->ring_size)
    from = head - q->ring_size; /* a damaged counter, or a lap of failed tries */
  if (!mproc__q_decommit(q, from, head, 1)) {
    g->given = resume;
    return;
  }
  if (!mproc__lockword_try(mproc__q_lockword(q, MPROC__Q_PUT_SIDE)))
    return;
  /* The offsets of counters below tail - ring hold the next lap's
   * records.  mproc__q_decommit rounds the start down to a piece's start:
   * if that would reach below, start at the next piece instead (the pages
   * in between go on a later lap). */
  tail = mproc__load64(&q->h->tail.v);
  lo = tail >= q->ring_size ? tail - q->ring_size : 0;
  if (from < lo)
    from = lo;
  in = from % q->ring_size % MPROC__Q_GRAIN;
  if (in && from - in < lo)
    from += MPROC__Q_GRAIN - in;
  (void)mproc__q_decommit(q, from, head, 0);
  mproc__q_unlock(q, MPROC__Q_PUT_SIDE);
  g->given = resume;
}

/* ---- the early wrap (see "a ring that grows" above) ------------------------
 * A consumer that has just emptied the ring past the hot part moves both
 * counters to the next lap's start.  It holds the get lock and takes the
 * put lock by a try only (the order get-then-put is mproc__q_give_back's
 * too; a busy producer is about to make the ring non-empty anyway), so
 * head == tail holds while it works.  The stores, in this order, leave a
 * consistent queue wherever the process is killed (both locks are then a
 * dead holder's, and whoever takes one over repairs):
 *   1. a wrap marker at the tail: past the tail, so nobody reads it yet;
 *   2. both journals invalid: the counts are right (no put or get is
 *      half done), and a journal must not judge a counter it sees moved;
 *   3. tail = next lap: now "a marker with nothing after it", which the
 *      get side's recovery finishes (mproc__q_finish_wrap); the put side's
 *      recovery takes the dead get lock over too, so a producer that comes
 *      first finishes it as well (else it could fill the new lap only up
 *      to the old head until a consumer came);
 *   4. head = next lap, then the two caches. */
static void mproc__q_wrap_to(mproc_queue *q, uint64_t at, uint64_t lap,
                             int stop) {
  mproc__qhdr *h = q->h;
  uint32_t marker = MPROC__QR_WRAP;
  memcpy(q->ring + at % q->ring_size, &marker, sizeof marker);
  if (stop == MPROC__Q_STOP_WRAP_MARKED)
    return;
  h->p.v.j_valid = 0;
  h->g.v.j_valid = 0;
  MPROC__Q_PUBLISH64(&h->tail.v, lap);
  if (stop == MPROC__Q_STOP_WRAP_TAIL)
    return;
  MPROC__Q_PUBLISH64(&h->head.v, lap);
  mproc__store64_rlx(&h->g.v.tail_cache, lap);
  mproc__store64_rlx(&h->p.v.head_cache, lap);
}

/* Recovery of the get side (get lock held): finishes an early wrap whose
 * consumer was killed between its tail and head stores (step 3 above). */
static void mproc__q_finish_wrap(mproc_queue *q) {
  mproc__qhdr *h = q->h;
  uint64_t head = mproc__load64(&h->head.v), tail = mproc__load64(&h->tail.v);
  /* The marker's page, committed by the dead consumer (Windows), in this
   * process's view too before it is read. */
  if (mproc__q_commit_get(q) < 0 || head % q->ring_size >= q->committed ||
      !mproc__qr_bare_wrap(q->ring, q->ring_size, head, tail))
    return;
  h->g.v.j_valid = 0; /* its nget stands; this head is no get of its own */
  MPROC__Q_PUBLISH64(&h->head.v, tail);
}

/* Called with the get lock held after publishing the head (and nget):
 * wraps early if the ring is empty past the hot part.  Returns the next
 * lap's start if it did, else 0.  A WRAP_ stop keeps the put lock. */
static uint64_t mproc__q_wrap_empty(mproc_queue *q, uint64_t head, int stop) {
  mproc__qhdr *h = q->h;
  uint64_t tail = h->g.v.tail_cache, lap;
  /* The cache first (free: one past the head means records remain), then
   * the real tail, which the next get would read anyway. */
  if (!mproc__qr_wraps_early(head, tail, q->ring_size, q->hot))
    return 0;
  tail = mproc__load64(&h->tail.v);
  mproc__store64_rlx(&h->g.v.tail_cache, tail);
  if (tail != head ||
      !mproc__lockword_try(mproc__q_lockword(q, MPROC__Q_PUT_SIDE)))
    return 0;
  /* Under both locks neither counter moves but by this process. */
  tail = mproc__load64(&h->tail.v);
  lap = mproc__qr_wraps_early(head, tail, q->ring_size, q->hot);
  if (lap && mproc__q_commit_put(q, tail, lap, 0) < 0)
    lap = 0; /* no memory for the marker's page (Windows): go on linearly */
  if (lap)
    mproc__q_wrap_to(q, tail, lap, stop);
  if (!lap || stop < MPROC__Q_STOP_WRAP_MARKED)
    mproc__q_unlock(q, MPROC__Q_PUT_SIDE);
  return lap;
}

/* ---- the critical sections ------------------------------------------------ */

/* Where a record of `rec` bytes goes with the tail at `tail`: its end (the
 * new tail), or 0 if it does not fit now.  The cached head errs on the side
 * of "full": the real one is read only when the cache says no.  Caller
 * holds the put lock. */
static uint64_t mproc__q_place(mproc_queue *q, uint64_t tail, uint64_t rec) {
  mproc__qprod *p = &q->h->p.v;
  uint64_t head, end = mproc__qr_fits(p->head_cache, tail, q->ring_size, rec);
  if (end)
    return end;
  head = mproc__load64(&q->h->head.v);
  mproc__store64_rlx(&p->head_cache, head);
  return mproc__qr_fits(head, tail, q->ring_size, rec);
}

/* Caller holds the put lock.  Finds room for a record of `len` payload
 * bytes with the tail at *tail: *end is where it ends (the new tail once
 * published), its pages committed.  0, MPROC_EFULL, or MPROC_ESTATE if the
 * shared tail is damaged. */
static int mproc__q_put_room(mproc_queue *q, uint32_t len, uint64_t *tail,
                             uint64_t *end) {
  mproc__qhdr *h = q->h;
  uint64_t rec = mproc__qr_recsize(len), nput = h->p.v.nput;
  *tail = mproc__load64(&h->tail.v);
  /* Records start 8-aligned, so the wrap marker (4 bytes) always fits
   * before the end: a tail that is not could make it overrun the ring. */
  if (*tail % 8u)
    return MPROC_ESTATE;
  if (q->maxsize && nput - h->p.v.nget_cache >= q->maxsize) {
    uint64_t nget = mproc__load64(&h->g.v.nget);
    mproc__store64_rlx(&h->p.v.nget_cache, nget);
    if (nput - nget >= q->maxsize)
      return MPROC_EFULL;
  }
  if (!(*end = mproc__q_place(q, *tail, rec)))
    return MPROC_EFULL;
  return mproc__q_commit_put(q, *tail, *end - rec, rec);
}

/* Where the payload of the record of `len` bytes ending at `end` goes. */
static unsigned char *mproc__q_payload(mproc_queue *q, uint64_t end,
                                       uint32_t len) {
  return q->ring + (end - mproc__qr_recsize(len)) % q->ring_size +
         MPROC__QR_HDR;
}

/* Caller holds the put lock and wrote the payload of a record of `len`
 * bytes ending at `end` (from mproc__q_put_room with the tail at `tail`):
 * writes its header and publishes it.  Always 0. */
static int mproc__q_put_publish(mproc_queue *q, uint64_t tail, uint64_t end,
                                uint32_t len, int stop) {
  mproc__qhdr *h = q->h;
  uint64_t nput = h->p.v.nput;
  mproc__qr_write_to(q->ring, q->ring_size, tail, end, NULL, len);
  if (stop == MPROC__Q_STOP_WRITTEN)
    return MPROC_OK;
  /* Journal first, so that a successor can tell which of the two stores
   * below happened: the tail decides whether the message exists. */
  h->p.v.j_valid = 0;
  h->p.v.j_tail = end;
  h->p.v.j_nput = nput;
  h->p.v.j_valid = 1;
  /* nput before the tail: a consumer can take (and count) a message only
   * after the tail shows it, so nput - nget never goes negative. */
  MPROC__Q_PUBLISH64(&h->p.v.nput, nput + 1);
  if (stop == MPROC__Q_STOP_COUNTED)
    return MPROC_OK;
  MPROC__Q_PUBLISH64(&h->tail.v, end);
  return MPROC_OK;
}

/* Caller holds the put lock.  0, MPROC_EFULL, or MPROC_ESTATE if the
 * shared tail is damaged. */
static int mproc__q_put_locked(mproc_queue *q, const void *data, uint32_t len,
                               int stop) {
  uint64_t tail, end;
  int rc = mproc__q_put_room(q, len, &tail, &end);
  if (rc < 0)
    return rc;
  if (len)
    memcpy(mproc__q_payload(q, end, len), data, len);
  return mproc__q_put_publish(q, tail, end, len, stop);
}

/* Caller holds the get lock.  The next message: its payload's offset in
 * the ring (*off), its length (*n), and the head before (*head) and after
 * it (*next).  0, MPROC_EEMPTY or MPROC_ESTATE (the ring is damaged). */
static int mproc__q_get_peek(mproc_queue *q, uint64_t *head, uint64_t *off,
                             uint32_t *n, uint64_t *next) {
  mproc__qhdr *h = q->h;
  uint64_t tail = h->g.v.tail_cache;
  int rc;
  *head = mproc__load64(&h->head.v);
  if (*head == tail) {
    tail = mproc__load64(&h->tail.v);
    mproc__store64_rlx(&h->g.v.tail_cache, tail);
  }
  if ((rc = mproc__q_commit_get(q)) < 0)
    return rc;
  rc = mproc__qr_peek(q->ring, q->ring_size, q->max_msg, *head, tail, off, n,
                      next);
  if (rc == MPROC__QR_EMPTY)
    return MPROC_EEMPTY;
  return rc == MPROC__QR_OK ? MPROC_OK : MPROC_ESTATE;
}

/* Caller holds the get lock and is done with the message of `n` bytes
 * between head and next (from mproc__q_get_peek): takes it.  Always 0. */
static int mproc__q_get_take(mproc_queue *q, uint64_t head, uint32_t n,
                             uint64_t next, int stop) {
  mproc__qhdr *h = q->h;
  uint64_t nget = h->g.v.nget, lap;
  h->g.v.j_valid = 0;
  h->g.v.j_head = next;
  h->g.v.j_nget = nget;
  h->g.v.j_valid = 1;
  /* The one store that takes the message: everything before it was a
   * private copy, so a consumer killed earlier leaves the message here. */
  MPROC__Q_PUBLISH64(&h->head.v, next);
  if (stop == MPROC__Q_STOP_PUBLISHED)
    return MPROC_OK;
  MPROC__Q_PUBLISH64(&h->g.v.nget, nget + 1);
  lap = mproc__q_wrap_empty(q, next, stop);
  if (q->gives_back && stop < MPROC__Q_STOP_WRAP_MARKED) {
    if (next - mproc__qr_recsize(n) != head) /* passed a wrap marker */
      mproc__q_give_back(q, head, next - mproc__qr_recsize(n));
    /* After an early wrap, the rest of the old lap was never written. */
    mproc__q_give_back(q, next, lap ? lap : next);
  }
  return MPROC_OK;
}

/* Caller holds the get lock.  0, MPROC_EEMPTY, MPROC_ERANGE (*len set,
 * nothing taken) or MPROC_ESTATE (the ring is damaged). */
static int mproc__q_get_locked(mproc_queue *q, void *buf, size_t cap,
                               size_t *len, int stop) {
  uint64_t head, off, next;
  uint32_t n;
  int rc = mproc__q_get_peek(q, &head, &off, &n, &next);
  if (rc < 0)
    return rc;
  *len = n;
  if (n > cap)
    return MPROC_ERANGE;
  if (n)
    memcpy(buf, q->ring + off, n);
  if (stop == MPROC__Q_STOP_WRITTEN)
    return MPROC_OK;
  return mproc__q_get_take(q, head, n, next, stop);
}

static int mproc__q_usable(mproc_queue *q) {
  if (!q || q->hdr.magic != MPROC__OBJ_MAGIC || q->hdr.vt != &mproc__queue_type)
    return MPROC_EINVAL;
  if (mproc__load32(&q->closed))
    return MPROC_ECLOSED;
  return MPROC_OK;
}

static void mproc__q_release(mproc_queue *q) {
  int i;
  for (i = 0; i < q->nfx; i++)
    mproc__fx_close(&q->fx[i]);
  mproc__seg_close(&q->seg);
  q->hdr.magic = 0;
  free(q);
}

/* The futex words of the queue, in MPROC__QFX_* order. */
static void mproc__q_fx_words(mproc__qhdr *h, int i, volatile uint32_t **word,
                              volatile uint32_t **waiters) {
  switch (i) {
  case MPROC__QFX_PLOCK:
    *word = &h->p.v.lock.word;
    *waiters = &h->p.v.lock.fxw;
    break;
  case MPROC__QFX_GLOCK:
    *word = &h->g.v.lock.word;
    *waiters = &h->g.v.lock.fxw;
    break;
  case MPROC__QFX_NE:
    *word = &h->ne.v.seq;
    *waiters = &h->ne.v.fxw;
    break;
  case MPROC__QFX_NF:
    *word = &h->nf.v.seq;
    *waiters = &h->nf.v.fxw;
    break;
  default:
    *word = &h->jn.v.seq;
    *waiters = &h->jn.v.fxw;
    break;
  }
}

static void mproc__q_bind(mproc_queue *q) {
  uintptr_t a = (uintptr_t)q->seg.addr;
  q->h = (mproc__qhdr *)(a + (MPROC__Q_LINE - a % MPROC__Q_LINE) %
                                 MPROC__Q_LINE);
  q->ring = (unsigned char *)q->seg.addr + MPROC__Q_HDR_SIZE;
  q->hdr.magic = MPROC__OBJ_MAGIC;
  q->hdr.vt = &mproc__queue_type;
}

/* Where an emptied ring goes back to its start (mproc__qr_wraps_early). */
static uint64_t mproc__q_hot_for(uint64_t ring) {
  return ring > MPROC__Q_SMALL ? MPROC__Q_HOT : ring;
}

/* What this process derives from the geometry and its own view: how much
 * of the ring it may touch now, and whether drained pages go back. */
static void mproc__q_local(mproc_queue *q) {
  size_t c = q->seg.committed;
  q->committed = c > MPROC__Q_HDR_SIZE ? c - MPROC__Q_HDR_SIZE : 0;
  if (q->committed > q->ring_size)
    q->committed = q->ring_size;
  q->gives_back = mproc__seg_can_decommit() && q->ring_size > MPROC__Q_SMALL;
}

int mproc_queue_create(mproc_queue **out, const mproc_queue_options *opts) {
  mproc_queue *q;
  mproc__qconst *c;
  uint64_t capacity = MPROC__Q_DEFAULT_CAP, ring;
  int rc, i;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (opts && opts->capacity)
    capacity = (uint64_t)opts->capacity;
  if (capacity < MPROC__Q_CAP_MIN || capacity > MPROC__Q_CAP_MAX)
    return MPROC_EINVAL;
  ring = mproc__qr_ring_for(capacity);
  if (ring > (uint64_t)SIZE_MAX - MPROC__Q_HDR_SIZE)
    return MPROC_EINVAL;
  q = (mproc_queue *)calloc(1, sizeof(*q));
  if (!q)
    return MPROC_ENOMEM;
  rc = mproc__seg_reserve(
      &q->seg, (size_t)(MPROC__Q_HDR_SIZE + ring),
      (size_t)(MPROC__Q_HDR_SIZE + (ring < MPROC__Q_STEP ? ring : MPROC__Q_STEP)));
  if (rc < 0) {
    free(q);
    return rc;
  }
  mproc__q_bind(q);
  q->ring_size = ring;
  q->hot = mproc__q_hot_for(ring);
  mproc__q_local(q);
  q->capacity = capacity;
  q->maxsize = opts ? (uint64_t)opts->maxsize : 0;
  q->max_msg = mproc__qr_msg_max(capacity);
  q->joinable = opts && opts->joinable ? 1 : 0;
  q->nfx = q->joinable ? MPROC__QFX_N : MPROC__QFX_JOIN;
  c = &q->h->c.v;
  c->magic = MPROC__Q_MAGIC;
  c->version = MPROC__Q_VERSION;
  c->joinable = (uint32_t)q->joinable;
  c->ring_size = ring;
  c->capacity = capacity;
  c->maxsize = q->maxsize;
  c->max_msg = q->max_msg;
  c->hot = q->hot;
  c->commit_hw = q->committed;
  for (i = 0; i < q->nfx; i++) {
    volatile uint32_t *word, *waiters;
    mproc__q_fx_words(q->h, i, &word, &waiters);
    rc = mproc__fx_create(&q->fx[i], word, waiters);
    if (rc < 0) {
      q->nfx = i;
      mproc__q_release(q);
      return rc;
    }
  }
  *out = q;
  return MPROC_OK;
}

/* ---- the put and get loops -------------------------------------------------
 * A step runs under its side's lock: 0 (done), MPROC_EFULL / MPROC_EEMPTY
 * (wait for the other side, then try again) or another error.  `rec` is
 * the record size a put waits room for. */
typedef int (*mproc__q_step)(mproc_queue *q, void *ctx);

/* Runs `step` under the side's lock until it succeeds or the timeout
 * passes (MPROC_EFULL for a put, MPROC_EEMPTY for a get, as Python).  On
 * success the lock is released and the other side woken, unless `keep`:
 * then the caller still holds the lock (a view is out, see below). */
static int mproc__q_run(mproc_queue *q, int side, mproc__q_step step,
                        void *ctx, uint64_t rec, double timeout, int keep) {
  int put = side == MPROC__Q_PUT_SIDE;
  int none = put ? MPROC_EFULL : MPROC_EEMPTY;
  double deadline = MPROC__Q_UNSET;
  int rc;
  for (;;) {
    if (mproc__q_lock(q, side, timeout, &deadline) < 0)
      return none; /* Python: Full/Empty when the lock is not had in time */
    rc = step(q, ctx);
    if (rc == MPROC_OK && keep)
      return MPROC_OK;
    mproc__q_unlock(q, side);
    if (rc == MPROC_OK) {
      if (put)
        mproc__q_signal(&q->h->ne.v, &q->fx[MPROC__QFX_NE]);
      else
        mproc__q_signal(&q->h->nf.v, &q->fx[MPROC__QFX_NF]);
      return MPROC_OK;
    }
    if (rc != none || timeout == 0)
      return rc;
    if (put)
      rc = mproc__q_wait(q, &q->h->nf.v, &q->fx[MPROC__QFX_NF],
                         mproc__q_has_room, rec,
                         mproc__q_deadline(timeout, &deadline),
                         MPROC__Q_GET_SIDE);
    else
      rc = mproc__q_wait(q, &q->h->ne.v, &q->fx[MPROC__QFX_NE],
                         mproc__q_has_data, 0,
                         mproc__q_deadline(timeout, &deadline),
                         MPROC__Q_PUT_SIDE);
    if (rc == MPROC_ETIMEDOUT)
      timeout = 0; /* what waited for may have come with the deadline */
    else if (mproc__load32(&q->closed))
      return MPROC_ECLOSED;
  }
}

typedef struct mproc__q_putctx {
  const void *data;
  uint32_t len;
} mproc__q_putctx;

static int mproc__q_put_step(mproc_queue *q, void *ctx) {
  mproc__q_putctx *c = (mproc__q_putctx *)ctx;
  return mproc__q_put_locked(q, c->data, c->len, MPROC__Q_STOP_NONE);
}

typedef struct mproc__q_getctx {
  void *buf;
  size_t cap, *len;
} mproc__q_getctx;

static int mproc__q_get_step(mproc_queue *q, void *ctx) {
  mproc__q_getctx *c = (mproc__q_getctx *)ctx;
  return mproc__q_get_locked(q, c->buf, c->cap, c->len, MPROC__Q_STOP_NONE);
}

static int mproc__q_view_blocks(mproc_queue *q, int side);

int mproc_queue_put(mproc_queue *q, const void *data, size_t len,
                    double timeout) {
  mproc__q_putctx c;
  int rc;
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  if ((!data && len) || timeout != timeout) /* NULL data, NaN timeout */
    return MPROC_EINVAL;
  if ((uint64_t)len > q->max_msg)
    return MPROC_E2BIG;
  if ((rc = mproc__q_view_blocks(q, MPROC__Q_PUT_SIDE)) < 0)
    return rc;
  c.data = data;
  c.len = (uint32_t)len;
  return mproc__q_run(q, MPROC__Q_PUT_SIDE, mproc__q_put_step, &c,
                      mproc__qr_recsize(len), timeout, 0);
}

int mproc_queue_get(mproc_queue *q, void *buf, size_t cap, size_t *len,
                    double timeout) {
  mproc__q_getctx c;
  int rc;
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  if (!len || (!buf && cap) || timeout != timeout)
    return MPROC_EINVAL;
  if ((rc = mproc__q_view_blocks(q, MPROC__Q_GET_SIDE)) < 0)
    return rc;
  c.buf = buf;
  c.cap = cap;
  c.len = len;
  return mproc__q_run(q, MPROC__Q_GET_SIDE, mproc__q_get_step, &c, 0,
                      timeout, 0);
}

/* ---- views: borrow and reserve in place ---------------------------------
 * A view is a record of the ring lent to the caller: for a get, the next
 * message (borrow), read in place and taken on release; for a put, room
 * for a record (reserve), filled in place and published on commit.  The
 * view holds its side's lock from the call that lends it to the one that
 * ends it, which is what makes it safe:
 *  - nothing is published before the end: a reserver that dies leaves a
 *    tail that never moved (the record does not exist), a borrower that
 *    dies a head that never moved (the message stays for the next
 *    consumer), and the lock's dead-holder recovery (mproc__q_recover)
 *    repairs the counts as for a put or get killed midway;
 *  - a record never wraps (queue_ring.h), so a view is always contiguous;
 *  - the other side is not held up: a producer's view never blocks
 *    consumers and the other way round.
 * The price: other producers (for a reserve) or consumers (for a borrow)
 * wait while a view is out, so views are for short work.  One view per
 * side and handle at a time; the lending thread owns it.  The state that
 * checks a view lives here, in this process: a caller's view struct only
 * names its queue, its side and a generation number. */
enum { MPROC__QV_NONE = 0, MPROC__QV_BORROW = 0x51564201,
       MPROC__QV_RESERVE = 0x51565201 };

/* MPROC_ESTATE if the calling thread already holds a view on that side of
 * this handle: waiting for its own lock would wait until the deadline. */
static int mproc__q_view_blocks(mproc_queue *q, int side) {
  mproc__qview *v = &q->view[side];
  if (mproc__load32_rlx(&v->out) &&
      mproc__load64_rlx(&v->tid) == mproc__thread_id() &&
      v->pid == mproc__plat_getpid())
    return MPROC_ESTATE;
  return MPROC_OK;
}


static void mproc__q_lend(mproc_queue *q, int side, int kind,
                          mproc_queue_view *view, void *data, size_t len) {
  mproc__qview *v = &q->view[side];
  v->pid = mproc__plat_getpid();
  mproc__store64_rlx(&v->tid, mproc__thread_id());
  v->gen++;
  mproc__store32_rlx(&v->out, 1u);
  view->data = data;
  view->len = len;
  view->queue_ = q;
  view->gen_ = v->gen;
  view->kind_ = kind;
}

/* Checks that `view` is the one of this kind that this handle has out:
 * MPROC_EINVAL (NULLs, another queue's view, or the other kind),
 * MPROC_ESTATE (ended already, or stale), MPROC_EPERM (lent by another
 * process: a forked child's copy of its parent's view).  *side on 0. */
static int mproc__q_view_side(mproc_queue *q, const mproc_queue_view *view,
                              int kind, int *side) {
  mproc__qview *v;
  if (!mproc__obj_is(q, &mproc__queue_type) || !view ||
      view->queue_ != (void *)q || view->kind_ != kind)
    return MPROC_EINVAL;
  *side = kind == MPROC__QV_BORROW ? MPROC__Q_GET_SIDE : MPROC__Q_PUT_SIDE;
  v = &q->view[*side];
  if (!mproc__load32_rlx(&v->out) || v->gen != view->gen_)
    return MPROC_ESTATE;
  if (v->pid != mproc__plat_getpid())
    return MPROC_EPERM;
  return MPROC_OK;
}

/* Ends the side's view: the lock goes, and the caller's struct no longer
 * points into the ring. */
static void mproc__q_end_view(mproc_queue *q, int side,
                              mproc_queue_view *view) {
  mproc__store64_rlx(&q->view[side].tid, 0);
  mproc__store32_rlx(&q->view[side].out, 0u);
  mproc__q_unlock(q, side);
  if (view) {
    view->data = NULL;
    view->len = 0;
  }
}

static int mproc__q_borrow_step(mproc_queue *q, void *ctx) {
  mproc__qview *v = &q->view[MPROC__Q_GET_SIDE];
  (void)ctx;
  return mproc__q_get_peek(q, &v->from, &v->off, &v->len, &v->to);
}

int mproc_queue_get_borrow(mproc_queue *q, mproc_queue_view *view,
                           double timeout) {
  mproc__qview *v;
  int rc;
  if (view)
    memset(view, 0, sizeof(*view));
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  if (!view || timeout != timeout)
    return MPROC_EINVAL;
  if ((rc = mproc__q_view_blocks(q, MPROC__Q_GET_SIDE)) < 0)
    return rc;
  rc = mproc__q_run(q, MPROC__Q_GET_SIDE, mproc__q_borrow_step, NULL, 0,
                    timeout, 1);
  if (rc < 0)
    return rc;
  v = &q->view[MPROC__Q_GET_SIDE];
  mproc__q_lend(q, MPROC__Q_GET_SIDE, MPROC__QV_BORROW, view,
                q->ring + v->off, v->len);
  return MPROC_OK;
}

int mproc_queue_release(mproc_queue *q, mproc_queue_view *view) {
  mproc__qview *v;
  int side, rc = mproc__q_view_side(q, view, MPROC__QV_BORROW, &side);
  if (rc < 0)
    return rc;
  v = &q->view[side];
  /* Only this holder of the get lock moves the head; a damaged segment
   * could still have moved it: then the message is not taken twice. */
  if (mproc__load64(&q->h->head.v) == v->from)
    (void)mproc__q_get_take(q, v->from, v->len, v->to, MPROC__Q_STOP_NONE);
  else
    rc = MPROC_ESTATE;
  mproc__q_end_view(q, side, view);
  mproc__q_signal(&q->h->nf.v, &q->fx[MPROC__QFX_NF]);
  return rc;
}

static int mproc__q_reserve_step(mproc_queue *q, void *ctx) {
  mproc__qview *v = &q->view[MPROC__Q_PUT_SIDE];
  v->len = *(const uint32_t *)ctx;
  return mproc__q_put_room(q, v->len, &v->from, &v->to);
}

int mproc_queue_put_reserve(mproc_queue *q, size_t len,
                            mproc_queue_view *view, double timeout) {
  mproc__qview *v;
  uint32_t n = (uint32_t)len;
  int rc;
  if (view)
    memset(view, 0, sizeof(*view));
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  if (!view || timeout != timeout)
    return MPROC_EINVAL;
  if ((uint64_t)len > q->max_msg)
    return MPROC_E2BIG;
  if ((rc = mproc__q_view_blocks(q, MPROC__Q_PUT_SIDE)) < 0)
    return rc;
  rc = mproc__q_run(q, MPROC__Q_PUT_SIDE, mproc__q_reserve_step, &n,
                    mproc__qr_recsize(len), timeout, 1);
  if (rc < 0)
    return rc;
  v = &q->view[MPROC__Q_PUT_SIDE];
  mproc__q_lend(q, MPROC__Q_PUT_SIDE, MPROC__QV_RESERVE, view,
                mproc__q_payload(q, v->to, n), len);
  return MPROC_OK;
}

int mproc_queue_put_commit(mproc_queue *q, mproc_queue_view *view) {
  mproc__qview *v;
  uint64_t end;
  int side, rc = mproc__q_view_side(q, view, MPROC__QV_RESERVE, &side);
  if (rc < 0)
    return rc;
  v = &q->view[side];
  if (view->len > v->len)
    return MPROC_EINVAL; /* the view stays out: fix the length or abort */
  /* A shorter message starts where the room does and ends earlier. */
  end = v->to - mproc__qr_recsize(v->len) +
        mproc__qr_recsize((uint64_t)view->len);
  (void)mproc__q_put_publish(q, v->from, end, (uint32_t)view->len,
                             MPROC__Q_STOP_NONE);
  mproc__q_end_view(q, side, view);
  mproc__q_signal(&q->h->ne.v, &q->fx[MPROC__QFX_NE]);
  return MPROC_OK;
}

int mproc_queue_put_abort(mproc_queue *q, mproc_queue_view *view) {
  int side, rc = mproc__q_view_side(q, view, MPROC__QV_RESERVE, &side);
  if (rc < 0)
    return rc;
  /* Nothing was published: the bytes past the tail are nobody's. */
  mproc__q_end_view(q, side, view);
  return MPROC_OK;
}

int mproc_queue_qsize(mproc_queue *q, size_t *n) {
  uint64_t nget, nput;
  int rc;
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  if (!n)
    return MPROC_EINVAL;
  /* nget first: both only grow and nget <= nput at every instant, so the
   * difference of a later nput is never negative. */
  nget = mproc__load64(&q->h->g.v.nget);
  nput = mproc__load64(&q->h->p.v.nput);
  *n = nput > nget ? (size_t)(nput - nget) : 0;
  return MPROC_OK;
}

/* Empty when the counters stand together, or when the counts say no
 * message is left: a consumer killed inside an early wrap leaves the tail
 * a lap ahead of the head with nothing between (until a get or put
 * repairs it), and a tail != head test alone said "not empty" for good.
 * Counts: nget first, as in qsize; a message is counted before it is
 * visible and uncounted after it is taken, so nput == nget at an instant
 * means none was visible then. */
int mproc_queue_empty(mproc_queue *q) {
  uint64_t nget;
  int rc;
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  if (!mproc__q_has_data(q, 0))
    return 1;
  nget = mproc__load64(&q->h->g.v.nget);
  return mproc__load64(&q->h->p.v.nput) == nget;
}

/* Python's full() is qsize() == maxsize.  A byte-limited ring has no such
 * number: it reports full when not even an empty message would fit, so a
 * put of a large message can block while full() says 0. */
int mproc_queue_full(mproc_queue *q) {
  int rc;
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  return !mproc__q_has_room(q, mproc__qr_recsize(0));
}

int mproc_queue_task_done(mproc_queue *q) {
  mproc__qhdr *h;
  uint64_t done;
  int rc;
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  if (!q->joinable)
    return MPROC_ESTATE;
  h = q->h;
  done = mproc__load64(&h->jn.v.ndone);
  for (;;) {
    if (done >= mproc__load64(&h->p.v.nput))
      return MPROC_EOVERFLOW;
    if (mproc__cas64(&h->jn.v.ndone, &done, done + 1))
      break;
  }
  if (done + 1 == mproc__load64(&h->p.v.nput)) {
    /* The word changes before the wake (the futex protocol); joiners are
     * rare, so every one of them is woken. */
    (void)mproc__add32(&h->jn.v.seq, 1);
    mproc__fx_wake(&q->fx[MPROC__QFX_JOIN], UINT32_MAX);
  }
  return MPROC_OK;
}

int mproc_queue_join(mproc_queue *q, double timeout) {
  double deadline, until;
  int rc;
  if ((rc = mproc__q_usable(q)) < 0)
    return rc;
  if (timeout != timeout)
    return MPROC_EINVAL;
  if (!q->joinable)
    return MPROC_ESTATE;
  deadline = mproc__deadline(timeout);
  for (;;) {
    uint32_t seen = mproc__load32(&q->h->jn.v.seq);
    if (mproc__q_join_done(q, 0))
      return MPROC_OK;
    until = mproc__plat_now();
    if (deadline >= 0 && until >= deadline)
      return MPROC_ETIMEDOUT;
    until += MPROC__Q_WAIT_SLICE;
    if (deadline >= 0 && deadline < until)
      until = deadline;
    if (mproc__fx_wait(&q->fx[MPROC__QFX_JOIN], seen, until) ==
        MPROC_ETIMEDOUT)
      mproc__q_reap(q, MPROC__Q_PUT_SIDE);
    if (mproc__load32(&q->closed))
      return MPROC_ECLOSED;
  }
}

int mproc_queue_close(mproc_queue *q) {
  int rc = mproc__q_usable(q);
  if (rc == MPROC_EINVAL)
    return rc;
  mproc__store32(&q->closed, 1);
  return MPROC_OK;
}

mproc_queue *mproc_queue_free(mproc_queue *q) {
  int side;
  if (!mproc__obj_is(q, &mproc__queue_type))
    return NULL;
  /* A view still out ends as an abort (reserve) or leaves the message in
   * the queue (borrow): its lock must not stay held by a live process. */
  for (side = 0; side < 2; side++)
    if (q->view[side].out && q->view[side].pid == mproc__plat_getpid())
      mproc__q_end_view(q, side, NULL);
  mproc__q_release(q);
  return NULL;
}

/* ---- passing to a child ----------------------------------------------------
 * Bytes: u32 version, u64 segment size, u32 number of futex handles.
 * Handles: the segment, then one semaphore per futex where the platform has
 * them (Windows); Linux futexes need none.  Everything else is read from
 * the segment's header and checked there. */

static int mproc__q_export(const void *obj, mproc__wr *w, mproc__handles *hs) {
  const mproc_queue *q = (const mproc_queue *)obj;
  uint32_t nsem = 0;
  int i, rc;
  for (i = 0; i < q->nfx; i++)
    if (q->fx[i].sem != MPROC_INVALID_HANDLE)
      nsem++;
  if (nsem != 0 && nsem != (uint32_t)q->nfx)
    return MPROC_ESTATE;
  mproc__wr_u32(w, MPROC__Q_VERSION);
  mproc__wr_u64(w, (uint64_t)q->seg.size);
  mproc__wr_u32(w, nsem);
  if ((rc = mproc__handles_push(hs, q->seg.handle)) < 0)
    return rc;
  for (i = 0; nsem && i < q->nfx; i++)
    if ((rc = mproc__handles_push(hs, q->fx[i].sem)) < 0)
      return rc;
  return MPROC_OK;
}

/* Closes a handle this process received and will not use: the futex
 * import takes ownership of a semaphore handle and fx_close releases it,
 * which is the portable way to close any handle here. */
static void mproc__q_drop_handle(mproc_handle_t h) {
  mproc__fx fx;
  volatile uint32_t dummy = 0, dummy_w = 0;
  if (h == MPROC_INVALID_HANDLE)
    return;
  if (mproc__fx_import(&fx, &dummy, &dummy_w, h) == MPROC_OK)
    mproc__fx_close(&fx);
}

/* Checks the constants in the mapped header against the description and
 * takes the queue's geometry from them. */
static int mproc__q_check_header(mproc_queue *q, uint64_t size,
                                 uint32_t nsem) {
  const mproc__qconst *c = &q->h->c.v;
  q->ring_size = c->ring_size;
  q->capacity = c->capacity;
  q->maxsize = c->maxsize;
  q->max_msg = c->max_msg;
  q->hot = c->hot;
  q->joinable = c->joinable == 1;
  if (c->magic != MPROC__Q_MAGIC || c->version != MPROC__Q_VERSION ||
      c->joinable > 1 || q->capacity < MPROC__Q_CAP_MIN ||
      q->capacity > MPROC__Q_CAP_MAX ||
      q->ring_size != mproc__qr_ring_for(q->capacity) ||
      q->max_msg != mproc__qr_msg_max(q->capacity) ||
      q->ring_size != size - MPROC__Q_HDR_SIZE || q->hot != mproc__q_hot_for(q->ring_size))
    return MPROC_EINVAL;
  mproc__q_local(q);
  q->nfx = q->joinable ? MPROC__QFX_N : MPROC__QFX_JOIN;
  if (nsem && nsem != (uint32_t)q->nfx)
    return MPROC_EINVAL;
  return MPROC_OK;
}

/* Binds the futexes, each taking its semaphore handle when there are
 * any; *used counts the handles taken so far. */
static int mproc__q_import_futexes(mproc_queue *q, const mproc_handle_t *hs,
                                   uint32_t nsem, size_t *used) {
  size_t i;
  int rc;
  for (i = 0; i < (size_t)q->nfx; i++) {
    volatile uint32_t *word, *waiters;
    mproc__q_fx_words(q->h, (int)i, &word, &waiters);
    *used = 2 + i;
    rc = mproc__fx_import(&q->fx[i], word, waiters,
                          nsem ? hs[1 + i] : MPROC_INVALID_HANDLE);
    if (rc < 0) {
      q->nfx = (int)i;
      return rc;
    }
  }
  return MPROC_OK;
}

static int mproc__q_import(mproc__rd *r, const mproc_handle_t *hs, size_t nh,
                           void **out) {
  mproc_queue *q = NULL;
  uint32_t version = mproc__rd_u32(r), nsem;
  uint64_t size = mproc__rd_u64(r);
  size_t i, used = 0;
  int mapped = 0, rc = MPROC_EINVAL;
  nsem = mproc__rd_u32(r);
  *out = NULL;
  if (r->bad || version != MPROC__Q_VERSION || nh < 1 ||
      (nsem != 0 && nsem != MPROC__QFX_JOIN && nsem != MPROC__QFX_N) ||
      nh != 1 + (size_t)nsem || size <= MPROC__Q_HDR_SIZE ||
      size > (uint64_t)SIZE_MAX)
    goto finish;
  q = (mproc_queue *)calloc(1, sizeof(*q));
  if (!q) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  used = 1; /* seg_import owns the segment handle from here on */
  rc = mproc__seg_import(&q->seg, hs[0], (size_t)size);
  if (rc < 0)
    goto finish;
  mapped = 1;
  /* The queue's header must be usable before it is read (Windows: a view
   * of a reserve); the creator committed it. */
  if ((rc = mproc__seg_commit(&q->seg, MPROC__Q_HDR_SIZE)) < 0)
    goto finish;
  mproc__q_bind(q);
  rc = mproc__q_check_header(q, size, nsem);
  if (rc < 0)
    goto finish;
  rc = mproc__q_import_futexes(q, hs, nsem, &used);
  if (rc < 0)
    goto finish;
  *out = q;
  rc = MPROC_OK;
finish:
  if (rc < 0) {
    if (mapped)
      mproc__q_release(q);
    else
      free(q);
    /* The handles no importer took yet are still ours to close. */
    for (i = used; i < nh; i++)
      mproc__q_drop_handle(hs[i]);
  }
  return rc;
}

static void mproc__q_free_obj(void *obj) { (void)mproc_queue_free(obj); }

const mproc__objtype mproc__queue_type = {MPROC_OBJ_QUEUE, mproc__q_export,
                                          mproc__q_import, mproc__q_free_obj};

/* ---- test hooks ------------------------------------------------------------
 * Run a put or get and stop at `stage`, keeping the lock, as if the process
 * had been killed there; the test process then exits without releasing. */

int mproc__queue_test_stop_put(mproc_queue *q, const void *data, size_t len,
                               int stage) {
  double deadline = MPROC__Q_UNSET;
  int rc = mproc__q_usable(q);
  if (rc < 0)
    return rc;
  if (len > q->max_msg || (!data && len))
    return MPROC_EINVAL;
  (void)mproc__q_lock(q, MPROC__Q_PUT_SIDE, -1.0, &deadline);
  return mproc__q_put_locked(q, data, (uint32_t)len, stage);
}

int mproc__queue_test_stop_get(mproc_queue *q, void *buf, size_t cap,
                               size_t *len, int stage) {
  double deadline = MPROC__Q_UNSET;
  int rc = mproc__q_usable(q);
  if (rc < 0)
    return rc;
  if (!len || (!buf && cap))
    return MPROC_EINVAL;
  (void)mproc__q_lock(q, MPROC__Q_GET_SIDE, -1.0, &deadline);
  rc = mproc__q_get_locked(q, buf, cap, len, stage);
  /* A WRAP_ stage keeps the put lock: only then did it stop in a wrap. */
  if (rc == MPROC_OK && stage >= MPROC__Q_STOP_WRAP_MARKED &&
      !mproc__lockword_owned(mproc__q_lockword(q, MPROC__Q_PUT_SIDE), 0))
    rc = MPROC_ESTATE;
  return rc;
}

uint32_t mproc__queue_test_getters_waiting(mproc_queue *q) {
  if (!mproc__obj_is(q, &mproc__queue_type))
    return 0u;
  return mproc__fx_waiting(&q->fx[MPROC__QFX_NE]);
}

uint32_t mproc__queue_test_lock_waiting(mproc_queue *q, int side) {
  if (!mproc__obj_is(q, &mproc__queue_type))
    return 0u;
  return mproc__load32(&mproc__q_lockword(q, side)->nwait);
}

int mproc__queue_test_memory(mproc_queue *q, uint64_t *backed,
                             uint64_t *reserved) {
  if (!mproc__obj_is(q, &mproc__queue_type))
    return MPROC_EINVAL;
  *reserved = (uint64_t)q->seg.size;
  return mproc__seg_backed(&q->seg, backed);
}

int mproc__queue_test_gives_back(mproc_queue *q) {
  return mproc__obj_is(q, &mproc__queue_type) ? q->gives_back : 0;
}

