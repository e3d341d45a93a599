/*
 * mproc IPC: shared memory, synchronization primitives, pipes and queues,
 * with the semantics of Python's multiprocessing.  Included by mproc.h.
 *
 * Every object here is created in one process and handed to children as an
 * argument (mproc_args_add_object); its OS handles reach the child under
 * fork, POSIX spawn and Windows spawn, and several children may share it.
 * In the child, mproc_arg_object()/mproc_kwarg_object() return the child's
 * own object, valid until the entry returns (do not free it).
 *
 * State lives in shared memory with atomic fast paths; a process blocks in
 * the OS only when it must wait (Linux: futex on the shared word; Windows:
 * a kernel semaphore per object).  There are no helper threads, so a process
 * that exits right after a put loses nothing and joining it cannot deadlock.
 *
 * Thread safety: every function on these objects is thread-safe, except
 * *_free(), which must not race with other calls on the same object.
 */
#ifndef MPROC_IPC_H
#define MPROC_IPC_H

#ifndef MPROC_H
#error "include <mproc.h>, not <mproc/ipc.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Objects as arguments                                                      */
/* ------------------------------------------------------------------------ */

typedef enum mproc_object_type {
  MPROC_OBJ_SHM = 1,
  MPROC_OBJ_LOCK = 2, /* Lock and RLock */
  MPROC_OBJ_SEMAPHORE = 3,
  MPROC_OBJ_EVENT = 4,
  MPROC_OBJ_CONDITION = 5,
  MPROC_OBJ_BARRIER = 6,
  MPROC_OBJ_ARRAY = 7, /* Value and Array */
  MPROC_OBJ_CONN = 8,
  MPROC_OBJ_QUEUE = 9
} mproc_object_type;

/* Add any IPC object of this header to an argument list (it is described,
 * not copied: the child attaches to the same shared state).  The object is
 * described when the process starts, so it must stay alive until
 * mproc_process_start() returns, and the child gets it as it is then (a pipe
 * end's unread data included).  After start, close your copy of a pipe end
 * you handed over, as in Python, or its peer never sees end-of-file.
 * MPROC_EINVAL if `object` is not an mproc IPC object. */
MPROC_API int mproc_args_add_object(mproc_args *args, const char *key,
                                    const void *object);
/* In the entry: the child's object of the expected type (MPROC_ETYPE if the
 * argument holds another type).  Owned by the argument list. */
MPROC_API int mproc_arg_object(const mproc_args *args, size_t index, int type,
                               void **out);
MPROC_API int mproc_kwarg_object(const mproc_args *args, const char *key,
                                 int type, void **out);

/* ------------------------------------------------------------------------ */
/* Shared memory                                                             */
/* ------------------------------------------------------------------------ */

typedef struct mproc_shm mproc_shm;

/* Longest name, without the NUL.  Names are 1..MPROC_SHM_NAME_MAX
 * characters from [A-Za-z0-9_.-] (no slash, not "." or ".."), so they mean
 * the same on every platform; mproc adds its own prefix in the OS namespace.
 * macOS allows only 31 characters for a whole shm name, "/mproc." included,
 * so there names have at most 24 characters; a longer one fails with
 * MPROC_EINVAL (never truncated: two names must not meet in one block). */
#define MPROC_SHM_NAME_MAX 64

/* What a name protects.  A name is not a secret: any local user can guess
 * it and may create it first.  mproc therefore deals only in this user's
 * private blocks.  Create never opens what is already there (whoever made
 * it: MPROC_EEXIST) and makes the block accessible to this user only
 * (POSIX: a regular file of mode 0600 owned by the effective uid; Windows:
 * a DACL with one entry, the process token's user).  Attach refuses, with
 * MPROC_EPERM, anything under the name that is not such a block: another
 * user's, one others may open (POSIX: any of the mode bits 077; Windows:
 * an owner other than this user, or a DACL granting anyone else), a
 * symbolic link, a fifo or directory.  Attach checks the size before it
 * maps, and never maps more than the file holds (a short block is
 * MPROC_ENOTFOUND, not a crash).  What remains is within this user: their
 * other programs (and root / SYSTEM) can read, write or shrink the block;
 * shrinking a block while it is mapped makes its users fault (SIGBUS), as
 * with any mapped file.  To share with no name at all, create an anonymous
 * block (name NULL) and pass it to children as an argument. */

/* Create a block of `size` bytes (> 0), zero-filled, readable and writable
 * by this user only.  `name` NULL makes an anonymous block (reachable only
 * by passing the object to children); a name lets an unrelated process of
 * the same user attach.  MPROC_EEXIST if the name is taken (also by a file,
 * link or object that is not an mproc block), MPROC_EINVAL for a bad name. */
MPROC_API int mproc_shm_create(mproc_shm **out, const char *name, size_t size);
/* Attach to a named block.  MPROC_ENOTFOUND if there is none (or what is
 * there never becomes a complete block of the size its header claims);
 * MPROC_EPERM if the name is not this user's private block (see above):
 * another user's, open to others, a link, or not a file. */
MPROC_API int mproc_shm_attach(mproc_shm **out, const char *name);
MPROC_API void *mproc_shm_ptr(const mproc_shm *shm);
MPROC_API size_t mproc_shm_size(const mproc_shm *shm);
/* The name, or NULL for an anonymous block. */
MPROC_API const char *mproc_shm_name(const mproc_shm *shm);
/* Remove the name (attached processes keep their mapping).  Named blocks
 * are also unlinked by their creator's mproc_shm_free(), unless
 * mproc_shm_keep() was called.  MPROC_ESTATE for an anonymous block;
 * MPROC_ENOTFOUND if the name is gone, or (POSIX) was removed and now
 * leads to something else, which is left alone. */
MPROC_API int mproc_shm_unlink(mproc_shm *shm);
MPROC_API int mproc_shm_keep(mproc_shm *shm);
/* Unmap and release; returns NULL. */
MPROC_API mproc_shm *mproc_shm_free(mproc_shm *shm);
/* Remove names that crashed mproc programs of this user left behind (POSIX:
 * /dev/shm entries whose creating process is gone; only this user's
 * private blocks, never links, other files, or other users' blocks).
 * Returns the number removed, or a negative code.  A no-op on Windows,
 * where named mappings vanish with their last handle. */
MPROC_API int mproc_shm_cleanup(void);

/* ------------------------------------------------------------------------ */
/* Locks                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct mproc_lock mproc_lock;

/* Lock: any process may release it (Python's Lock).  RLock (recursive=1):
 * the owning thread of the owning process may acquire it again and must
 * release it as often.  If the process holding a lock dies, the next
 * acquire takes the lock and returns MPROC_EOWNERDEAD instead of 0: the
 * data it protects may be half-updated; repair it, then release as usual. */
MPROC_API int mproc_lock_create(mproc_lock **out, int recursive);
/* 0 (acquired), MPROC_EOWNERDEAD (acquired), MPROC_ETIMEDOUT.  Returns by
 * the timeout whatever the holder does (even when it is stopped, e.g. by
 * SIGSTOP or a debugger).  A holder counts as dead once its process has
 * exited (a zombie included) or its pid names a process started at
 * another time (the pid was reused), so pid reuse cannot wedge a lock.
 * The check is made while waiting (about every 50 ms), not by
 * try-acquires (timeout 0) or waits shorter than a few milliseconds. */
MPROC_API int mproc_lock_acquire(mproc_lock *lock, double timeout);
/* MPROC_ESTATE if not held; RLock: MPROC_EPERM if held by someone else. */
MPROC_API int mproc_lock_release(mproc_lock *lock);
/* Python's Lock.locked(): 1 if any thread of any process holds the lock
 * (Lock or RLock), 0 if it is free; a snapshot that may be stale by the
 * time it returns.  A lock whose holder died counts as held until the next
 * acquire takes it over.  Thread-safe, never blocks. */
MPROC_API int mproc_lock_locked(mproc_lock *lock);
MPROC_API mproc_lock *mproc_lock_free(mproc_lock *lock);

/* ------------------------------------------------------------------------ */
/* Semaphores                                                                */
/* ------------------------------------------------------------------------ */

typedef struct mproc_semaphore mproc_semaphore;

/* bounded=1: BoundedSemaphore, whose release above the initial value is
 * MPROC_EOVERFLOW.  Values up to MPROC_SEM_VALUE_MAX. */
#define MPROC_SEM_VALUE_MAX 0x7fffffff
MPROC_API int mproc_semaphore_create(mproc_semaphore **out, unsigned value,
                                     int bounded);
MPROC_API int mproc_semaphore_acquire(mproc_semaphore *sem, double timeout);
MPROC_API int mproc_semaphore_release(mproc_semaphore *sem);
/* The current value (approximate while others act on it). */
MPROC_API int mproc_semaphore_value(mproc_semaphore *sem, unsigned *value);
MPROC_API mproc_semaphore *mproc_semaphore_free(mproc_semaphore *sem);

/* ------------------------------------------------------------------------ */
/* Events                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct mproc_event mproc_event;

MPROC_API int mproc_event_create(mproc_event **out);
MPROC_API int mproc_event_set(mproc_event *ev);
MPROC_API int mproc_event_clear(mproc_event *ev);
/* 1 if set, 0 if not. */
MPROC_API int mproc_event_is_set(mproc_event *ev);
/* 0 once set, MPROC_ETIMEDOUT. */
MPROC_API int mproc_event_wait(mproc_event *ev, double timeout);
MPROC_API mproc_event *mproc_event_free(mproc_event *ev);

/* ------------------------------------------------------------------------ */
/* Conditions                                                                */
/* ------------------------------------------------------------------------ */

typedef struct mproc_condition mproc_condition;

/* With `lock` NULL the condition makes its own RLock (Python's default).
 * A given lock must outlive the condition and be passed to children with
 * it (the condition's argument carries its lock too). */
MPROC_API int mproc_condition_create(mproc_condition **out, mproc_lock *lock);
MPROC_API mproc_lock *mproc_condition_lock(mproc_condition *cond);
MPROC_API int mproc_condition_acquire(mproc_condition *cond, double timeout);
MPROC_API int mproc_condition_release(mproc_condition *cond);
/* Release the lock, wait for a notify (or the timeout), re-acquire.  The
 * lock must be held (MPROC_ESTATE otherwise).  Returns 0 when notified,
 * MPROC_ETIMEDOUT; the lock is held again in both cases (may also be
 * MPROC_EOWNERDEAD, as for mproc_lock_acquire).  The one timed call that
 * may return after its deadline: like Python's (and pthread_cond_timedwait)
 * it must return holding the lock, so after the timeout it still waits for
 * whoever holds the lock then to release it (or die). */
MPROC_API int mproc_condition_wait(mproc_condition *cond, double timeout);
/* Python's wait_for: wait until pred(ctx) is non-zero; returns 0 then, or
 * MPROC_ETIMEDOUT with the predicate still false. */
MPROC_API int mproc_condition_wait_for(mproc_condition *cond,
                                       int (*pred)(void *ctx), void *ctx,
                                       double timeout);
/* Wake up to n waiters / all, oldest first.  The lock must be held
 * (MPROC_ESTATE).  A waiter whose process died while it waited is skipped
 * (notify checks that another process's waiter still runs before giving
 * it a notification), so notify(n) reaches live waiters. */
MPROC_API int mproc_condition_notify(mproc_condition *cond, unsigned n);
MPROC_API int mproc_condition_notify_all(mproc_condition *cond);
MPROC_API mproc_condition *mproc_condition_free(mproc_condition *cond);

/* ------------------------------------------------------------------------ */
/* Barriers                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct mproc_barrier mproc_barrier;

/* Python's Barrier(parties, action=None, timeout=None). */
typedef struct mproc_barrier_options {
  /* Name of an entry of the dispatch table (NULL: none), run once per
   * cycle by the last party to arrive, on that party's thread in its
   * process, before the others are released (CPython's rule).  It gets an
   * empty argument list and finds its data the way any code in that
   * process does (an entry name, not a function pointer, so that it works
   * in spawned children and on Windows).  A non-zero
   * return, or an entry a child cannot find, breaks the barrier: every
   * party of the cycle, the one that ran it included, gets MPROC_EBROKEN.
   * While it runs the others keep waiting, and their timeouts still
   * count. */
  const char *action;
  /* Default timeout, in seconds, of waits called with a negative timeout
   * (Python's None); 0 or negative: none (wait without limit). */
  double timeout;
} mproc_barrier_options;

/* parties: 1 .. 2^31-1.  MPROC_ENOENTRY if opts->action names no entry
 * (mproc_main() must have been called), MPROC_EINVAL for bad arguments
 * (a NaN timeout among them).  `opts` may be NULL and is copied (the
 * action's name too); mproc_barrier_create(out, n) is _ex(out, n, NULL).
 * Children that receive the barrier get its action and default timeout. */
MPROC_API int mproc_barrier_create_ex(mproc_barrier **out, unsigned parties,
                                      const mproc_barrier_options *opts);
MPROC_API int mproc_barrier_create(mproc_barrier **out, unsigned parties);
/* Wait for all parties.  0 with *index (0..parties-1, may be NULL) when the
 * barrier opens; MPROC_EBROKEN if it is or becomes broken (abort, another
 * waiter's timeout, a failed action, or a party whose process died inside
 * wait()); MPROC_ETIMEDOUT breaks it for everyone.  A negative timeout
 * means the barrier's default (Python's None; without a default, no
 * limit).  Returns by the deadline whatever the other parties do (one
 * stopped inside the barrier's internal lock included: the waiter then
 * leaves the barrier broken).  A party killed while waiting is noticed by
 * the last arrival (before opening), by the other waiters within about
 * 0.1 s, and by reset(); the first 1024 parties inside wait() at once are
 * watched, any beyond that are not. */
MPROC_API int mproc_barrier_wait(mproc_barrier *b, double timeout,
                                 unsigned *index);
MPROC_API int mproc_barrier_abort(mproc_barrier *b);
/* Back to the initial state; waiters in the old cycle get MPROC_EBROKEN.
 * Parties whose process died inside wait() are counted out first, so a
 * barrier broken by a dead party is usable again after a reset. */
MPROC_API int mproc_barrier_reset(mproc_barrier *b);
MPROC_API unsigned mproc_barrier_parties(mproc_barrier *b);
MPROC_API unsigned mproc_barrier_n_waiting(mproc_barrier *b);
MPROC_API int mproc_barrier_broken(mproc_barrier *b); /* 1 or 0 */
MPROC_API mproc_barrier *mproc_barrier_free(mproc_barrier *b);

/* ------------------------------------------------------------------------ */
/* Value and Array                                                           */
/* ------------------------------------------------------------------------ */

typedef enum mproc_ctype {
  MPROC_INT8 = 1, MPROC_UINT8, MPROC_INT16, MPROC_UINT16, MPROC_INT32,
  MPROC_UINT32, MPROC_INT64, MPROC_UINT64, MPROC_FLOAT, MPROC_DOUBLE
} mproc_ctype;

typedef struct mproc_array mproc_array;

/* A shared array of `length` (> 0) elements of a C type, zero-filled.
 * with_lock=1 gives it an RLock (Python's lock=True), 0 a raw array
 * (RawArray).  A Value is an array of length 1. */
MPROC_API int mproc_array_create(mproc_array **out, mproc_ctype type,
                                 size_t length, int with_lock);
MPROC_API void *mproc_array_ptr(mproc_array *a);
MPROC_API size_t mproc_array_length(const mproc_array *a);
MPROC_API mproc_ctype mproc_array_type(const mproc_array *a);
/* The lock, or NULL for a raw array (Python's get_lock()). */
MPROC_API mproc_lock *mproc_array_lock(mproc_array *a);
MPROC_API mproc_array *mproc_array_free(mproc_array *a);

/* ------------------------------------------------------------------------ */
/* Pipes (connections)                                                       */
/* ------------------------------------------------------------------------ */

typedef struct mproc_conn mproc_conn;

/* Largest message on a connection: 1 GiB. */
#define MPROC_CONN_MSG_MAX ((size_t)1 << 30)

/* Python's Pipe(duplex).  duplex=0: *a only receives, *b only sends.
 * Messages are framed: one send is one receive, never split or merged.
 *
 * Sharing an end.  Unlike Python's Connection, one end may be used by
 * several threads and by several processes at once (pass it to several
 * children): sends on an end never interleave (each message is written
 * whole under a lock of that direction of the pipe), and concurrent
 * receives get disjoint, whole messages (one receiver reads each; the
 * read-ahead is shared, so bytes one process read ahead are there for the
 * others).  The locks live in a small shared block that travels with the
 * ends; timed receives and polls take them by their deadline, so a process
 * stopped inside a call (SIGSTOP, a debugger) delays no timed call past
 * its timeout.
 *
 * A damaged stream is reported, never delivered: MPROC_EBROKEN from every
 * send and receive of that direction once a process died inside a message
 * (a sender killed while writing one; a receiver killed while a message's
 * bytes were on their way out of the pipe), a message was cut short by
 * end-of-file, or bytes arrived that are not a message (written to the
 * descriptor behind mproc's back).  A receiver that is already waiting for
 * the rest of a dead sender's message sees MPROC_EBROKEN at end-of-file,
 * and its timeout, if any, expires as usual.  A receiver killed while it
 * only waited takes nothing with it, and one killed at any other point
 * (even right after it took a message, before its call returned) never
 * makes a message come twice: the next receiver gets the next message,
 * or MPROC_EBROKEN when the death left bytes it cannot account for.
 *
 * Fork children.  A child started by fork (or by a fork of your own)
 * inherits every end the parent held, and may use or free them whatever
 * the parent's other threads were doing at the fork: a receive there waits
 * for a parent thread that was inside a receive to finish, a part of a big
 * message the parent kept stays the parent's, and mproc_conn_free() (or
 * close) in the child closes the child's descriptors, so end-of-file is
 * not held up by a child that freed its copy. */
MPROC_API int mproc_pipe(mproc_conn **a, mproc_conn **b, int duplex);
/* MPROC_E2BIG over MPROC_CONN_MSG_MAX, MPROC_EEOF if the peer is gone,
 * MPROC_EPERM on a receive-only end, MPROC_EBROKEN (see above). */
MPROC_API int mproc_conn_send_bytes(mproc_conn *c, const void *data, size_t len);
/* Receive one message into buf.  *len gets its size.  If it does not fit in
 * cap: MPROC_ERANGE, *len set, and the message stays to be received with a
 * bigger buffer.  MPROC_EEOF once the peer closed (or died) and everything
 * it sent was received; MPROC_ETIMEDOUT; MPROC_EBROKEN (see above).  A
 * receive of a message bigger than 64 KiB that times out part way keeps
 * what arrived in this process, and with it the end's receive lock, until
 * a later receive here completes the message (closing the end instead
 * breaks the stream). */
MPROC_API int mproc_conn_recv_bytes(mproc_conn *c, void *buf, size_t cap,
                                    size_t *len, double timeout);
/* 1 when data (at least the start of a message), end-of-file or damage has
 * arrived, 0 on timeout.  As in Python, a 1 does not promise that a whole
 * message is there (a large one may still be arriving), nor, with several
 * receivers, that another one will not take it first. */
MPROC_API int mproc_conn_poll(mproc_conn *c, double timeout);
MPROC_API int mproc_conn_close(mproc_conn *c);
MPROC_API mproc_conn *mproc_conn_free(mproc_conn *c);

/* ------------------------------------------------------------------------ */
/* Queues                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct mproc_queue mproc_queue;

/**
 * @brief Options of mproc_queue_create(), read like Python's keyword
 * arguments.  Zero-initialize and set what you need.
 *
 * A queue is a byte ring in shared memory.  Its `capacity` is a reserve of
 * address space, not memory: pages are committed as the bytes held reach
 * them, and so a default queue is effectively unbounded, as Python's
 * `Queue(maxsize=0)` is (the tutorial's "put every task, then read the
 * results" never blocks).  Memory follows the backlog: a queue its
 * consumers keep up with uses its first megabyte (and room for three of
 * its largest messages), however large its reserve.  When a backlog drains, Linux hands its pages back to the OS
 * (all but the first 4 MiB of the ring; a ring of 8 MiB or less keeps
 * what it touched, as a fixed ring would); Windows keeps the pages a backlog
 * committed until the queue is freed in every process (a section's pages
 * cannot be decommitted), and macOS and the BSDs keep them likewise (no
 * call frees a POSIX shm object's pages).  Every process that uses the
 * queue maps the whole reserve: mind the address space of 32-bit
 * processes when making many queues.
 */
typedef struct mproc_queue_options {
  /** Most messages held at once (put blocks at qsize() == maxsize); 0: no
   *  count limit. */
  size_t maxsize;
  /** Byte cap: the most bytes the ring holds (each message takes its size
   *  plus 4, rounded up to 8); a put blocks while its message does not fit.
   *  0: the default reserve, 1 GiB in 64-bit processes and 128 MiB in 32-bit
   *  ones.  At least 16. */
  size_t capacity;
  /** 1: JoinableQueue (task_done, join). */
  int joinable;
} mproc_queue_options;

/**
 * @brief Create a Queue (or JoinableQueue) to pass to children as an
 * argument.
 * @param out receives the queue, or NULL on failure
 * @param opts NULL for the defaults: no maxsize, the default byte cap, not
 *        joinable
 * @return 0, MPROC_EINVAL (capacity under 16 or over 2^40), MPROC_ENOMEM,
 *         MPROC_ESYS.  A message is at most capacity / 2 bytes (a put of a
 *         larger one is MPROC_E2BIG).
 */
MPROC_API int mproc_queue_create(mproc_queue **out,
                                 const mproc_queue_options *opts);
/**
 * @brief Put a message (a copy of `len` bytes), Python's Queue.put().
 * @param timeout seconds to wait for room; 0: put_nowait; MPROC_FOREVER
 * @return 0; MPROC_EFULL when no room came in time (maxsize reached, or the
 *         byte cap), or when the queue's internal lock stayed held by
 *         another process (even a stopped one) until the timeout (Python's
 *         Full; a nowait put waits up to 2 ms for that lock); MPROC_E2BIG
 *         over capacity / 2 bytes; MPROC_ECLOSED after close; MPROC_ENOMEM
 *         when the system cannot commit the memory for the message
 *         (Windows; on POSIX pages come on first touch).  Returns by the
 *         timeout.  With the default options only maxsize makes it wait.
 */
MPROC_API int mproc_queue_put(mproc_queue *q, const void *data, size_t len,
                              double timeout);
/* timeout 0: get_nowait.  MPROC_EEMPTY when nothing came in time, or when
 * the internal lock stayed held by another process until the timeout (as
 * for put); MPROC_ERANGE with *len set if cap is too small (the message
 * stays).  Returns by the timeout. */
MPROC_API int mproc_queue_get(mproc_queue *q, void *buf, size_t cap,
                              size_t *len, double timeout);
/* Approximate, as in Python. */
MPROC_API int mproc_queue_qsize(mproc_queue *q, size_t *n);
MPROC_API int mproc_queue_empty(mproc_queue *q);
MPROC_API int mproc_queue_full(mproc_queue *q);
/* JoinableQueue: MPROC_EOVERFLOW if called more often than items were put;
 * MPROC_ESTATE on a plain queue. */
MPROC_API int mproc_queue_task_done(mproc_queue *q);
MPROC_API int mproc_queue_join(mproc_queue *q, double timeout);
/* This process's handle stops working (put/get: MPROC_ECLOSED). */
MPROC_API int mproc_queue_close(mproc_queue *q);
MPROC_API mproc_queue *mproc_queue_free(mproc_queue *q);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_IPC_H */
