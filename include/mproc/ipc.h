/**
 * @file
 * @brief mproc IPC: shared memory, synchronization primitives, pipes and queues,
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
 * `*_free()`, which must not race with other calls on the same object.
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

/** The type of an IPC object, as mproc_arg_object() expects it. */
typedef enum mproc_object_type {
  MPROC_OBJ_SHM = 1,       /**< mproc_shm */
  MPROC_OBJ_LOCK = 2, /**< Lock and RLock (mproc_lock) */
  MPROC_OBJ_SEMAPHORE = 3, /**< mproc_semaphore */
  MPROC_OBJ_EVENT = 4,     /**< mproc_event */
  MPROC_OBJ_CONDITION = 5, /**< mproc_condition */
  MPROC_OBJ_BARRIER = 6,   /**< mproc_barrier */
  MPROC_OBJ_ARRAY = 7, /**< Value and Array (mproc_array) */
  MPROC_OBJ_CONN = 8,      /**< mproc_conn */
  MPROC_OBJ_QUEUE = 9      /**< mproc_queue */
} mproc_object_type;

/** Add any IPC object of this header to an argument list (it is described,
 * not copied: the child attaches to the same shared state).
 *
 * The object is
 * described when the process starts, so it must stay alive until
 * mproc_process_start() returns, and the child gets it as it is then (a pipe
 * end's unread data included).  After start, close your copy of a pipe end
 * you handed over, as in Python, or its peer never sees end-of-file.
 * @param args    the list
 * @param key     NULL for a positional argument, else the keyword
 * @param object  any mproc IPC object
 * @return 0, or #MPROC_EINVAL if `object` is not an mproc IPC object. */
MPROC_API int mproc_args_add_object(mproc_args *args, const char *key,
                                    const void *object);
/** In the entry: the child's object of the expected type, by position.
 * Owned by the argument list.
 * @param args   the list
 * @param index  0-based position
 * @param type   the expected #mproc_object_type
 * @param[out] out  the object (cast to its type)
 * @return 0, #MPROC_ENOTFOUND, or #MPROC_ETYPE if the argument holds another
 *   type. */
MPROC_API int mproc_arg_object(const mproc_args *args, size_t index, int type,
                               void **out);
/** In the entry: the child's object of the expected type, by keyword.
 * Owned by the argument list.
 * @param args  the list
 * @param key   the keyword
 * @param type  the expected #mproc_object_type
 * @param[out] out  the object (cast to its type)
 * @return 0, #MPROC_ENOTFOUND, or #MPROC_ETYPE if the argument holds another
 *   type. */
MPROC_API int mproc_kwarg_object(const mproc_args *args, const char *key,
                                 int type, void **out);

/* ------------------------------------------------------------------------ */
/* Shared memory                                                             */
/* ------------------------------------------------------------------------ */

/** A shared memory block (Python's shared_memory.SharedMemory). */
typedef struct mproc_shm mproc_shm;

/** Longest name, without the NUL.  Names are 1..MPROC_SHM_NAME_MAX
 * characters from [A-Za-z0-9_.-] (no slash, not "." or ".."), so they mean
 * the same on every platform; mproc adds its own prefix in the OS namespace.
 * macOS allows only 31 characters for a whole shm name, "/mproc." included,
 * so there names have at most 24 characters; a longer one fails with
 * MPROC_EINVAL (never truncated: two names must not meet in one block). */
#define MPROC_SHM_NAME_MAX 64

/** @typedef mproc_shm
 * What a name protects.  A name is not a secret: any local user can guess
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

/** Create a block of `size` bytes (> 0), zero-filled, readable and writable
 * by this user only.  `name` NULL makes an anonymous block (reachable only
 * by passing the object to children); a name lets an unrelated process of
 * the same user attach.
 * @param[out] out  the block; free it with mproc_shm_free()
 * @param name  NULL, or 1..#MPROC_SHM_NAME_MAX characters from [A-Za-z0-9_.-]
 * @param size  bytes, > 0
 * @return 0; #MPROC_EEXIST if the name is taken (also by a file, link or
 *   object that is not an mproc block), #MPROC_EINVAL for a bad name, or
 *   another negative code. */
MPROC_API int mproc_shm_create(mproc_shm **out, const char *name, size_t size);
/** Attach to a named block.
 * @param[out] out  the block; free it with mproc_shm_free()
 * @param name  the name it was created with
 * @return 0; #MPROC_ENOTFOUND if there is none (or what is there never
 *   becomes a complete block of the size its header claims); #MPROC_EPERM if
 *   the name is not this user's private block (see #mproc_shm): another
 *   user's, open to others, a link, or not a file. */
MPROC_API int mproc_shm_attach(mproc_shm **out, const char *name);
/** The block's memory in this process.
 * @param shm  the block
 * @return the address; NULL for an invalid block. */
MPROC_API void *mproc_shm_ptr(const mproc_shm *shm);
/** The block's size in bytes.
 * @param shm  the block
 * @return the size; 0 for an invalid block. */
MPROC_API size_t mproc_shm_size(const mproc_shm *shm);
/** The block's name.
 * @param shm  the block
 * @return the name, or NULL for an anonymous block. */
MPROC_API const char *mproc_shm_name(const mproc_shm *shm);
/** Remove the name (attached processes keep their mapping).  Named blocks
 * are also unlinked by their creator's mproc_shm_free(), unless
 * mproc_shm_keep() was called.
 * @param shm  the block
 * @return 0; #MPROC_ESTATE for an anonymous block; #MPROC_ENOTFOUND if the
 *   name is gone, or (POSIX) was removed and now leads to something else,
 *   which is left alone. */
MPROC_API int mproc_shm_unlink(mproc_shm *shm);
/** Keep the name when the creator frees the block (its mproc_shm_free() then
 * does not unlink it, and mproc_shm_cleanup() leaves it alone).
 * @param shm  the block
 * @return 0, or #MPROC_ESTATE for an anonymous block. */
MPROC_API int mproc_shm_keep(mproc_shm *shm);
/** Unmap and release.
 * @param shm  the block, or NULL
 * @return NULL. */
MPROC_API mproc_shm *mproc_shm_free(mproc_shm *shm);
/** Remove names that crashed mproc programs of this user left behind (POSIX:
 * /dev/shm entries whose creating process is gone; only this user's
 * private blocks, never links, other files, or other users' blocks).
 * A no-op on Windows, where named mappings vanish with their last handle.
 * @return the number removed, or a negative code. */
MPROC_API int mproc_shm_cleanup(void);

/* ------------------------------------------------------------------------ */
/* Locks                                                                     */
/* ------------------------------------------------------------------------ */

/** A Lock or RLock shared between processes. */
typedef struct mproc_lock mproc_lock;

/** Create a Lock or an RLock.
 *
 * Lock: any process may release it (Python's Lock).  RLock (recursive=1):
 * the owning thread of the owning process may acquire it again and must
 * release it as often.  If the process holding a lock dies, the next
 * acquire takes the lock and returns #MPROC_EOWNERDEAD instead of 0: the
 * data it protects may be half-updated; repair it, then release as usual.
 * @param[out] out  the lock; free it with mproc_lock_free()
 * @param recursive  1 for an RLock, 0 for a Lock
 * @return 0 or a negative code. */
MPROC_API int mproc_lock_create(mproc_lock **out, int recursive);
/** Acquire the lock.
 *
 * Returns by
 * the timeout whatever the holder does (even when it is stopped, e.g. by
 * SIGSTOP or a debugger).  A holder counts as dead once its process has
 * exited (a zombie included) or its pid names a process started at
 * another time (the pid was reused), so pid reuse cannot wedge a lock.
 * The check is made while waiting (about every 50 ms), not by
 * try-acquires (timeout 0) or waits shorter than a few milliseconds.
 * @param lock     the lock
 * @param timeout  seconds; 0 tries, negative waits without limit
 * @return 0 (acquired), #MPROC_EOWNERDEAD (acquired), #MPROC_ETIMEDOUT. */
MPROC_API int mproc_lock_acquire(mproc_lock *lock, double timeout);
/** Release the lock.
 * @param lock  the lock
 * @return 0; #MPROC_ESTATE if not held; RLock: #MPROC_EPERM if held by
 *   someone else. */
MPROC_API int mproc_lock_release(mproc_lock *lock);
/** Python's Lock.locked(): whether the lock is held; a snapshot that may be
 * stale by the time it returns.  A lock whose holder died counts as held
 * until the next acquire takes it over.  Thread-safe, never blocks.
 * @param lock  the lock
 * @return 1 if any thread of any process holds the lock (Lock or RLock), 0
 *   if it is free, or a negative code. */
MPROC_API int mproc_lock_locked(mproc_lock *lock);
/** Release this process's handle on the lock.
 * @param lock  the lock, or NULL
 * @return NULL. */
MPROC_API mproc_lock *mproc_lock_free(mproc_lock *lock);

/* ------------------------------------------------------------------------ */
/* Semaphores                                                                */
/* ------------------------------------------------------------------------ */

/** A Semaphore or BoundedSemaphore shared between processes. */
typedef struct mproc_semaphore mproc_semaphore;

/** Largest semaphore value. */
#define MPROC_SEM_VALUE_MAX 0x7fffffff
/** Create a semaphore.
 *
 * bounded=1: BoundedSemaphore, whose release above the initial value is
 * #MPROC_EOVERFLOW.  Values up to #MPROC_SEM_VALUE_MAX.
 * @param[out] out  the semaphore; free it with mproc_semaphore_free()
 * @param value    the initial value
 * @param bounded  1 for a BoundedSemaphore
 * @return 0 or a negative code (#MPROC_EINVAL above #MPROC_SEM_VALUE_MAX). */
MPROC_API int mproc_semaphore_create(mproc_semaphore **out, unsigned value,
                                     int bounded);
/** Decrement the value, waiting while it is 0.
 * @param sem      the semaphore
 * @param timeout  seconds; 0 tries, negative waits without limit
 * @return 0 or #MPROC_ETIMEDOUT. */
MPROC_API int mproc_semaphore_acquire(mproc_semaphore *sem, double timeout);
/** Increment the value and wake a waiter.
 * @param sem  the semaphore
 * @return 0, or #MPROC_EOVERFLOW past the bound (or #MPROC_SEM_VALUE_MAX). */
MPROC_API int mproc_semaphore_release(mproc_semaphore *sem);
/** The current value (approximate while others act on it).
 * @param sem  the semaphore
 * @param[out] value  the value
 * @return 0 or a negative code. */
MPROC_API int mproc_semaphore_value(mproc_semaphore *sem, unsigned *value);
/** Release this process's handle on the semaphore.
 * @param sem  the semaphore, or NULL
 * @return NULL. */
MPROC_API mproc_semaphore *mproc_semaphore_free(mproc_semaphore *sem);

/* ------------------------------------------------------------------------ */
/* Events                                                                    */
/* ------------------------------------------------------------------------ */

/** An Event shared between processes. */
typedef struct mproc_event mproc_event;

/** Create an event, not set.
 * @param[out] out  the event; free it with mproc_event_free()
 * @return 0 or a negative code. */
MPROC_API int mproc_event_create(mproc_event **out);
/** Set the flag and wake every waiter.
 * @param ev  the event
 * @return 0 or a negative code. */
MPROC_API int mproc_event_set(mproc_event *ev);
/** Clear the flag.
 * @param ev  the event
 * @return 0 or a negative code. */
MPROC_API int mproc_event_clear(mproc_event *ev);
/** Whether the flag is set.
 * @param ev  the event
 * @return 1 if set, 0 if not. */
MPROC_API int mproc_event_is_set(mproc_event *ev);
/** Wait until the flag is set.
 * @param ev       the event
 * @param timeout  seconds; negative waits without limit
 * @return 0 once set, #MPROC_ETIMEDOUT. */
MPROC_API int mproc_event_wait(mproc_event *ev, double timeout);
/** Release this process's handle on the event.
 * @param ev  the event, or NULL
 * @return NULL. */
MPROC_API mproc_event *mproc_event_free(mproc_event *ev);

/* ------------------------------------------------------------------------ */
/* Conditions                                                                */
/* ------------------------------------------------------------------------ */

/** A Condition shared between processes. */
typedef struct mproc_condition mproc_condition;

/** Create a condition.
 *
 * With `lock` NULL the condition makes its own RLock (Python's default).
 * A given lock must outlive the condition and be passed to children with
 * it (the condition's argument carries its lock too).
 * @param[out] out  the condition; free it with mproc_condition_free()
 * @param lock  the lock to use, or NULL
 * @return 0 or a negative code. */
MPROC_API int mproc_condition_create(mproc_condition **out, mproc_lock *lock);
/** The condition's lock.
 * @param cond  the condition
 * @return the lock (borrowed), or NULL for an invalid condition. */
MPROC_API mproc_lock *mproc_condition_lock(mproc_condition *cond);
/** Acquire the condition's lock (as mproc_lock_acquire()).
 * @param cond     the condition
 * @param timeout  seconds; 0 tries, negative waits without limit
 * @return 0, #MPROC_EOWNERDEAD (acquired), #MPROC_ETIMEDOUT. */
MPROC_API int mproc_condition_acquire(mproc_condition *cond, double timeout);
/** Release the condition's lock (as mproc_lock_release()).
 * @param cond  the condition
 * @return 0 or a negative code. */
MPROC_API int mproc_condition_release(mproc_condition *cond);
/** Release the lock, wait for a notify (or the timeout), re-acquire.
 *
 * The one timed call that
 * may return after its deadline: like Python's (and pthread_cond_timedwait)
 * it must return holding the lock, so after the timeout it still waits for
 * whoever holds the lock then to release it (or die).
 * @param cond     the condition; its lock must be held
 * @param timeout  seconds; negative waits without limit
 * @return 0 when notified, #MPROC_ETIMEDOUT; the lock is held again in both
 *   cases (may also be #MPROC_EOWNERDEAD, as for mproc_lock_acquire).
 *   #MPROC_ESTATE if the lock is not held. */
MPROC_API int mproc_condition_wait(mproc_condition *cond, double timeout);
/** Python's wait_for: wait until pred(ctx) is non-zero.
 * @param cond     the condition; its lock must be held
 * @param pred     the predicate, called with the lock held
 * @param ctx      its argument
 * @param timeout  seconds; negative waits without limit
 * @return 0 then, or #MPROC_ETIMEDOUT with the predicate still false. */
MPROC_API int mproc_condition_wait_for(mproc_condition *cond,
                                       int (*pred)(void *ctx), void *ctx,
                                       double timeout);
/** Wake up to n waiters, oldest first.
 *
 * A waiter whose process died while it waited is skipped
 * (notify checks that another process's waiter still runs before giving
 * it a notification), so notify(n) reaches live waiters.
 * @param cond  the condition; its lock must be held
 * @param n     how many waiters
 * @return 0, or #MPROC_ESTATE if the lock is not held. */
MPROC_API int mproc_condition_notify(mproc_condition *cond, unsigned n);
/** Wake all waiters (see mproc_condition_notify()).
 * @param cond  the condition; its lock must be held
 * @return 0, or #MPROC_ESTATE if the lock is not held. */
MPROC_API int mproc_condition_notify_all(mproc_condition *cond);
/** Release this process's handle on the condition.
 * @param cond  the condition, or NULL
 * @return NULL. */
MPROC_API mproc_condition *mproc_condition_free(mproc_condition *cond);

/* ------------------------------------------------------------------------ */
/* Barriers                                                                  */
/* ------------------------------------------------------------------------ */

/** A Barrier shared between processes. */
typedef struct mproc_barrier mproc_barrier;

/** Options of mproc_barrier_create_ex(): Python's Barrier(parties,
 * action=None, timeout=None). */
typedef struct mproc_barrier_options {
  /** Name of an entry of the dispatch table (NULL: none), run once per
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
  /** Default timeout, in seconds, of waits called with a negative timeout
   * (Python's None); 0 or negative: none (wait without limit). */
  double timeout;
} mproc_barrier_options;

/** Create a barrier with options.
 *
 * `opts` may be NULL and is copied (the
 * action's name too); mproc_barrier_create(out, n) is _ex(out, n, NULL).
 * Children that receive the barrier get its action and default timeout.
 * @param[out] out  the barrier; free it with mproc_barrier_free()
 * @param parties  1 .. 2^31-1
 * @param opts     NULL, or the action and default timeout
 * @return 0; #MPROC_ENOENTRY if opts->action names no entry (mproc_main()
 *   must have been called), #MPROC_EINVAL for bad arguments (a NaN timeout
 *   among them). */
MPROC_API int mproc_barrier_create_ex(mproc_barrier **out, unsigned parties,
                                      const mproc_barrier_options *opts);
/** Create a barrier for `parties` parties, no action, no default timeout.
 * @param[out] out  the barrier; free it with mproc_barrier_free()
 * @param parties  1 .. 2^31-1
 * @return 0 or #MPROC_EINVAL. */
MPROC_API int mproc_barrier_create(mproc_barrier **out, unsigned parties);
/** Wait for all parties.
 *
 * A negative timeout
 * means the barrier's default (Python's None; without a default, no
 * limit).  Returns by the deadline whatever the other parties do (one
 * stopped inside the barrier's internal lock included: the waiter then
 * leaves the barrier broken).  A party killed while waiting is noticed by
 * the last arrival (before opening), by the other waiters within about
 * 0.1 s, and by reset(); the first 1024 parties inside wait() at once are
 * watched, any beyond that are not.
 * @param b        the barrier
 * @param timeout  seconds; negative: the barrier's default
 * @param[out] index  this party's arrival index (0..parties-1); may be NULL
 * @return 0 with *index when the barrier opens; #MPROC_EBROKEN if it is or
 *   becomes broken (abort, another waiter's timeout, a failed action, or a
 *   party whose process died inside wait()); #MPROC_ETIMEDOUT breaks it for
 *   everyone. */
MPROC_API int mproc_barrier_wait(mproc_barrier *b, double timeout,
                                 unsigned *index);
/** Break the barrier: current and later waiters get #MPROC_EBROKEN until a
 * reset.
 * @param b  the barrier
 * @return 0 or #MPROC_EINVAL. */
MPROC_API int mproc_barrier_abort(mproc_barrier *b);
/** Back to the initial state; waiters in the old cycle get #MPROC_EBROKEN.
 * Parties whose process died inside wait() are counted out first, so a
 * barrier broken by a dead party is usable again after a reset.
 * @param b  the barrier
 * @return 0 or a negative code. */
MPROC_API int mproc_barrier_reset(mproc_barrier *b);
/** Number of parties.
 * @param b  the barrier
 * @return the number; 0 for an invalid barrier. */
MPROC_API unsigned mproc_barrier_parties(mproc_barrier *b);
/** Number of parties waiting in the current cycle.
 * @param b  the barrier
 * @return the number; 0 for an invalid barrier. */
MPROC_API unsigned mproc_barrier_n_waiting(mproc_barrier *b);
/** Whether the barrier is broken.
 * @param b  the barrier
 * @return 1 or 0, or #MPROC_EINVAL. */
MPROC_API int mproc_barrier_broken(mproc_barrier *b); /* 1 or 0 */
/** Release this process's handle on the barrier.
 * @param b  the barrier, or NULL
 * @return NULL. */
MPROC_API mproc_barrier *mproc_barrier_free(mproc_barrier *b);

/* ------------------------------------------------------------------------ */
/* Value and Array                                                           */
/* ------------------------------------------------------------------------ */

/** The element type of a shared array: int8_t, uint8_t, ..., uint64_t,
 * float, double (Python's typecodes 'b', 'B', 'h', 'H', 'i', 'I', 'q', 'Q',
 * 'f', 'd'). */
typedef enum mproc_ctype {
  MPROC_INT8 = 1, MPROC_UINT8, MPROC_INT16, MPROC_UINT16, MPROC_INT32,
  MPROC_UINT32, MPROC_INT64, MPROC_UINT64, MPROC_FLOAT, MPROC_DOUBLE
} mproc_ctype;

/** A shared Value or Array. */
typedef struct mproc_array mproc_array;

/** A shared array of `length` (> 0) elements of a C type, zero-filled.
 * with_lock=1 gives it an RLock (Python's lock=True), 0 a raw array
 * (RawArray).  A Value is an array of length 1.
 * @param[out] out  the array; free it with mproc_array_free()
 * @param type       the element type
 * @param length     elements, > 0
 * @param with_lock  1 for an RLock, 0 for none
 * @return 0, #MPROC_EINVAL or another negative code. */
MPROC_API int mproc_array_create(mproc_array **out, mproc_ctype type,
                                 size_t length, int with_lock);
/** The elements in this process.
 * @param a  the array
 * @return the address; NULL for an invalid array. */
MPROC_API void *mproc_array_ptr(mproc_array *a);
/** Number of elements.
 * @param a  the array
 * @return the length; 0 for an invalid array. */
MPROC_API size_t mproc_array_length(const mproc_array *a);
/** Element type.
 * @param a  the array
 * @return the type; 0 for an invalid array. */
MPROC_API mproc_ctype mproc_array_type(const mproc_array *a);
/** The lock (Python's get_lock()).
 * @param a  the array
 * @return the lock (borrowed), or NULL for a raw array. */
MPROC_API mproc_lock *mproc_array_lock(mproc_array *a);
/** Release this process's handle on the array.
 * @param a  the array, or NULL
 * @return NULL. */
MPROC_API mproc_array *mproc_array_free(mproc_array *a);

/* ------------------------------------------------------------------------ */
/* Pipes (connections)                                                       */
/* ------------------------------------------------------------------------ */

/** One end of a pipe (Python's Connection). */
typedef struct mproc_conn mproc_conn;

/** Largest message on a connection: 1 GiB. */
#define MPROC_CONN_MSG_MAX ((size_t)1 << 30)

/** Python's Pipe(duplex).  duplex=0: *a only receives, *b only sends.
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
 * not held up by a child that freed its copy.
 * @param[out] a  the first end (receive-only when duplex is 0)
 * @param[out] b  the second end (send-only when duplex is 0)
 * @param duplex  1 for a two-way pipe
 * @return 0 or a negative code. */
MPROC_API int mproc_pipe(mproc_conn **a, mproc_conn **b, int duplex);
/** Send one message.
 * @param c     the end
 * @param data  the bytes (may be NULL when len is 0)
 * @param len   their number, up to #MPROC_CONN_MSG_MAX
 * @return 0; #MPROC_E2BIG over #MPROC_CONN_MSG_MAX, #MPROC_EEOF if the peer
 *   is gone, #MPROC_EPERM on a receive-only end, #MPROC_EBROKEN (see
 *   mproc_pipe()). */
MPROC_API int mproc_conn_send_bytes(mproc_conn *c, const void *data, size_t len);
/** Receive one message into buf.
 *
 * If it does not fit in
 * cap: #MPROC_ERANGE, *len set, and the message stays to be received with a
 * bigger buffer.  A
 * receive of a message bigger than 64 KiB that times out part way keeps
 * what arrived in this process, and with it the end's receive lock, until
 * a later receive here completes the message (closing the end instead
 * breaks the stream).
 * @param c        the end
 * @param buf      where the message goes
 * @param cap      its size
 * @param[out] len  the message's size
 * @param timeout  seconds; 0 polls, negative waits without limit
 * @return 0; #MPROC_ERANGE; #MPROC_EEOF once the peer closed (or died) and
 *   everything it sent was received; #MPROC_ETIMEDOUT; #MPROC_EBROKEN (see
 *   mproc_pipe()). */
MPROC_API int mproc_conn_recv_bytes(mproc_conn *c, void *buf, size_t cap,
                                    size_t *len, double timeout);
/** Whether something can be received.  As in Python, a 1 does not promise
 * that a whole message is there (a large one may still be arriving), nor,
 * with several receivers, that another one will not take it first.
 * @param c        the end
 * @param timeout  seconds; 0 polls, negative waits without limit
 * @return 1 when data (at least the start of a message), end-of-file or
 *   damage has arrived, 0 on timeout. */
MPROC_API int mproc_conn_poll(mproc_conn *c, double timeout);
/** Close this process's end (closing twice is harmless, as in Python).
 * @param c  the end
 * @return 0 or #MPROC_EINVAL. */
MPROC_API int mproc_conn_close(mproc_conn *c);
/** Close and release this process's end.
 * @param c  the end, or NULL
 * @return NULL. */
MPROC_API mproc_conn *mproc_conn_free(mproc_conn *c);

/* ------------------------------------------------------------------------ */
/* Queues                                                                    */
/* ------------------------------------------------------------------------ */

/** A Queue or JoinableQueue shared between processes. */
typedef struct mproc_queue mproc_queue;

/**
 * @brief Options of mproc_queue_create(), read like Python's keyword
 * arguments.  Zero-initialize and set what you need.
 *
 * A queue is a byte ring in shared memory.  Its `capacity` is a reserve of
 * address space, not memory: pages are committed as the bytes held reach
 * them, and so a default queue is effectively unbounded, as Python's
 * `Queue(maxsize=0)` is (the tutorial's "put every task, then read the
 * results" never blocks, however the queue was used before).  Memory
 * follows the backlog: the ring goes back to its first megabyte each time
 * its consumers empty it, so a queue they keep up with uses that megabyte
 * (and room for three of its largest messages), however large its
 * reserve; a stream they never quite empty walks on through the reserve.
 * When a backlog drains,
 * Linux hands its pages back to the OS
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
 * @param[out] out receives the queue, or NULL on failure
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
 * @param q       the queue
 * @param data    the bytes (may be NULL when len is 0)
 * @param len     their number
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
/** Take one message.  timeout 0: get_nowait.  Returns by the timeout.
 * @param q        the queue
 * @param buf      where the message goes
 * @param cap      its size
 * @param[out] len  the message's size
 * @param timeout  seconds; 0: get_nowait, negative waits without limit
 * @return 0; #MPROC_EEMPTY when nothing came in time, or when the internal
 *   lock stayed held by another process until the timeout (as for put);
 *   #MPROC_ERANGE with *len set if cap is too small (the message stays). */
MPROC_API int mproc_queue_get(mproc_queue *q, void *buf, size_t cap,
                              size_t *len, double timeout);
/** Number of messages held.  Approximate, as in Python.
 * @param q  the queue
 * @param[out] n  the number
 * @return 0 or a negative code. */
MPROC_API int mproc_queue_qsize(mproc_queue *q, size_t *n);
/** Whether the queue is empty (approximate).
 * @param q  the queue
 * @return 1 if empty, 0 if not, or a negative code. */
MPROC_API int mproc_queue_empty(mproc_queue *q);
/** Whether the queue is full (approximate): maxsize is reached, or not even
 * an empty message would fit in the ring.
 * @param q  the queue
 * @return 1 if full, 0 if not, or a negative code. */
MPROC_API int mproc_queue_full(mproc_queue *q);
/** JoinableQueue: one item taken with get is done.
 * @param q  the queue
 * @return 0; #MPROC_EOVERFLOW if called more often than items were put;
 *   #MPROC_ESTATE on a plain queue. */
MPROC_API int mproc_queue_task_done(mproc_queue *q);
/** JoinableQueue: wait until every item put has been marked done.
 * @param q        the queue
 * @param timeout  seconds; negative waits without limit
 * @return 0, #MPROC_ETIMEDOUT, or #MPROC_ESTATE on a plain queue. */
MPROC_API int mproc_queue_join(mproc_queue *q, double timeout);
/** This process's handle stops working (put/get: #MPROC_ECLOSED).
 * @param q  the queue
 * @return 0 or #MPROC_EINVAL. */
MPROC_API int mproc_queue_close(mproc_queue *q);
/** Release this process's handle on the queue.
 * @param q  the queue, or NULL
 * @return NULL. */
MPROC_API mproc_queue *mproc_queue_free(mproc_queue *q);

/**
 * @brief A message lent in place by the queue's ring: zero-copy gets and
 * puts.
 *
 * mproc_queue_get_borrow() lends the next message, to read where it lies;
 * mproc_queue_release() takes it.  mproc_queue_put_reserve() lends room
 * for a message, to fill where it lies; mproc_queue_put_commit() puts it,
 * mproc_queue_put_abort() drops it.  `data` is contiguous (a message
 * never wraps the ring's end) and stays valid until the view ends.
 *
 * A view holds its side of the queue: while a borrow is out the other
 * consumers of the queue wait (their gets return #MPROC_EEMPTY at their
 * timeout), while a reservation is out the other producers do; the other
 * side is not held up.  So keep views short.  One view per side and
 * handle at a time; a put or get (or a second view) on the same side from
 * the thread that holds a view returns #MPROC_ESTATE instead of waiting for
 * itself.  If the process dies while it holds a view, nothing of it
 * happened: a borrowed message stays in the queue for the next consumer,
 * a reservation never becomes a message, and the next producer or
 * consumer takes the queue over as after any process killed in a put or
 * get.  mproc_queue_free() with a view out drops the reservation, or
 * leaves the borrowed message in the queue.
 *
 * The fields after `len` are private.
 */
typedef struct mproc_queue_view {
  void *data; /**< the message's bytes (borrow), the room to fill (reserve) */
  size_t len; /**< its length; before a commit, the bytes to put (<= the
                   reserved length) */
  void *queue_;           /**< private */
  unsigned long long gen_; /**< private */
  int kind_;              /**< private */
} mproc_queue_view;

/**
 * @brief Take the next message in place: Python's get(), without the copy.
 * @param q       the queue
 * @param[out] view  the message (data, len), valid until
 *                mproc_queue_release(); zeroed on failure
 * @param timeout seconds; 0: nowait; negative waits without limit
 * @return 0; #MPROC_EEMPTY when nothing came in time (as for get);
 *   #MPROC_EINVAL for NULLs or a NaN timeout; #MPROC_ESTATE if this thread
 *   already holds a borrowed view of this queue; #MPROC_ECLOSED.
 */
MPROC_API int mproc_queue_get_borrow(mproc_queue *q, mproc_queue_view *view,
                                     double timeout);
/**
 * @brief End a borrow: the message is taken out of the queue.
 * @param q     the queue that lent the view
 * @param view  the view from mproc_queue_get_borrow(); its data is NULL after
 * @return 0; #MPROC_EINVAL for NULLs, another queue's view or a reservation;
 *   #MPROC_ESTATE if the view ended already; #MPROC_EPERM for a view lent
 *   in another process (a forked child's copy).
 */
MPROC_API int mproc_queue_release(mproc_queue *q, mproc_queue_view *view);
/**
 * @brief Reserve room for a message of `len` bytes to fill in place.
 * @param q       the queue
 * @param len     the message's largest length (at most capacity / 2)
 * @param[out] view  the room (data, len), valid until
 *                mproc_queue_put_commit() or mproc_queue_put_abort();
 *                zeroed on failure
 * @param timeout seconds to wait for room; 0: nowait; negative: no limit
 * @return 0; #MPROC_EFULL when no room came in time (as for put);
 *   #MPROC_E2BIG over capacity / 2; #MPROC_EINVAL; #MPROC_ESTATE if this
 *   thread already holds a reservation on this queue; #MPROC_ECLOSED;
 *   #MPROC_ENOMEM (Windows, as for put).
 */
MPROC_API int mproc_queue_put_reserve(mproc_queue *q, size_t len,
                                      mproc_queue_view *view, double timeout);
/**
 * @brief Put the reserved message: its first view->len bytes (the caller
 * may lower len below the reserved length first).
 * @param q     the queue that lent the view
 * @param view  the view from mproc_queue_put_reserve(); data is NULL after
 * @return 0; #MPROC_EINVAL for NULLs, another queue's view, a borrow, or a
 *   len above the reserved one (the reservation stays out); #MPROC_ESTATE
 *   if it ended already; #MPROC_EPERM for a view lent in another process.
 */
MPROC_API int mproc_queue_put_commit(mproc_queue *q, mproc_queue_view *view);
/**
 * @brief Drop a reservation: nothing is put.
 * @param q     the queue that lent the view
 * @param view  the view from mproc_queue_put_reserve()
 * @return as mproc_queue_put_commit().
 */
MPROC_API int mproc_queue_put_abort(mproc_queue *q, mproc_queue_view *view);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_IPC_H */
