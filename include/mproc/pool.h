/**
 * @file
 * @brief mproc pool: Python's multiprocessing.Pool (apply, apply_async, map,
 * map_async, imap, imap_unordered), without its best-known failure: a worker
 * that dies (killed, crashed, exit() or abort() inside a task) fails the
 * task it was running with MPROC_EWORKER, is replaced, and the pool goes on.
 * Nothing waits forever on a worker that is gone.  Included by mproc.h.
 *
 * ### Tasks are ordinary entries of the dispatch table
 *   A task is an mproc_entry listed in the table given to mproc_main(), so
 *   a worker finds it under fork, POSIX spawn and Windows alike.  Inside a
 *   pool it is called with an argument list whose positional argument 0 is
 *   the task's input bytes (mproc_task_input() reads it), and it appends its
 *   result bytes with mproc_task_result().  Its return value is its status:
 *   0 is success; any other value fails that task alone and is reported
 *   with that value (use positive codes; a negative one is passed on as is,
 *   so a task may hand on an `MPROC_E*` code it got).
 *
 *   @code{.c}
 *       static int square(const mproc_args *a) {
 *         const void *in; size_t n; int64_t x;
 *         if (mproc_task_input(a, &in, &n) < 0 || n != 8) return 1;
 *         memcpy(&x, in, 8); x *= x;
 *         return mproc_task_result(a, &x, 8) < 0 ? 2 : 0;
 *       }
 *       static const mproc_entry table[] = {MPROC_ENTRY(square), MPROC_ENTRY_END};
 *   @endcode
 *
 *   The pool's own worker loop is an internal entry, "mproc.pool.worker",
 *   that mproc_main() knows without the table listing it.
 *
 * ### Results and errors
 *   Each task ends with a status: 0, the task's own non-zero return value,
 *   or a pool error: MPROC_EWORKER (its worker died while running it),
 *   MPROC_ECLOSED (the pool was terminated first), MPROC_ESPAWN (the pool
 *   cannot start workers).  A task that failed with MPROC_EWORKER or
 *   MPROC_ETIMEDOUT carries its worker's pid and how it ended
 *   (mproc_async_result_item_end()).
 *
 * ### Chunks and prefetch
 *   map/imap split the inputs into chunks of `chunksize` items (0: map's
 *   default ceil(n / (4 * workers)), imap's default 1); a chunk is the unit a
 *   worker takes, as in Python.  The parent keeps a few chunks queued at each
 *   worker and batches many small chunks per message.
 *
 * ### One casualty per worker death
 *   A worker that dies fails only the task it was running, whatever the
 *   chunksize, as in Python: each finished task's result is published in
 *   the worker's result area in shared memory as the task returns (one
 *   memory store, no system call; results still travel in one message per
 *   batch), so results finished but not yet sent survive the worker; the
 *   tasks after the dying one in its chunk, and the chunks queued behind it,
 *   had not started and are given to other workers.  One exception: the
 *   result area holds 256 KiB (a batch's results are sent early, at a
 *   chunk's end, once they pass 128 KiB), so only inside a chunk whose own
 *   results pass 128 KiB can it overflow; results finished after that point
 *   are then in private memory until sent, and a death before that fails
 *   them too (MPROC_EWORKER).
 *
 * ### Replacing workers
 *   A worker that dies is replaced at once.  One that dies before it
 *   reports ready (killed while it starts or runs its initializer) is
 *   replaced too, after a back-off that doubles with each such death in a
 *   row (5 ms, 10 ms, ... up to 1 s; the count resets when a worker gets
 *   ready): killing workers as they start slows the pool down but never
 *   breaks it ("killed": ended by SIGKILL, SIGTERM, SIGINT or SIGHUP, or on
 *   Windows by mproc's kill, terminate or interrupt).  MPROC_ESPAWN means
 *   starting really failed: the OS could not start the worker, or its
 *   initializer returned non-zero, exited or crashed.  It is reported by
 *   mproc_pool_create if any first worker fails so, and later while no
 *   worker is ready after such a failure: queued tasks fail with it and
 *   submissions return it, while the pool goes on retrying with back-off and
 *   serves again as soon as a worker starts.
 *
 * ### Task timeouts
 *   mproc_async_options::timeout (apply_async, map_async) or the pool's
 *   mproc_pool_options::task_timeout (every submission, the blocking
 *   apply, map and imap included) bounds how long one task may run,
 *   counted from when its worker starts it (time in the queue does not
 *   count).  A task still running then fails with #MPROC_ETIMEDOUT; its
 *   worker is killed and replaced, as after a death: the tasks of its
 *   chunk that had finished keep their results, those that had not started
 *   go to other workers, and every other task goes on.  The handler
 *   thread waits for the nearest deadline (no polling); a task is failed
 *   within about a scheduler tick of its deadline on an idle machine.  A
 *   task that returns at the same moment as its worker is killed is either
 *   kept or failed with #MPROC_ETIMEDOUT, never #MPROC_EWORKER.  Without a
 *   timeout a worker only reads a word per chunk: timed tasks cost a clock
 *   read and two stores each.
 *
 * ### Progress
 *   mproc_async_result_done_count() and mproc_imap_done_count() say how
 *   many tasks have finished so far, from any thread, while a map runs:
 *   enough for a progress bar (examples/progress.c).
 *
 * ### Ctrl-C (SIGINT)
 *   The pool installs no signal handler.  With SIGINT's default action a
 *   parent that receives it dies at once; its workers do not outlive it:
 *   on Linux and Windows they are killed with it, elsewhere a worker
 *   exits when it reads end-of-file on its pipe (after the task it is
 *   running).  Ctrl-C in a terminal sends SIGINT to the whole foreground
 *   process group, workers included, which die of it as well.  A program
 *   that handles SIGINT and then calls exit() gets its pools terminated
 *   by the exit handler (workers killed and reaped); one that handles it
 *   and goes on keeps its pools, but workers killed by a Ctrl-C are
 *   replaced and their running tasks fail with #MPROC_EWORKER: call
 *   mproc_pool_terminate() from the code that sees the flag your handler
 *   sets (not from the handler: it is not async-signal-safe).  On Windows
 *   Ctrl-C in a console reaches every process attached to it the same
 *   way, and mproc_process_interrupt() of a parent raises SIGINT in it
 *   (default action: exit code -2, its workers die with it).
 *
 * ### Threads
 *   A handler thread per pool waits on the workers, reads results, feeds
 *   chunks and replaces dead workers.  Callbacks run on that thread, without
 *   any pool lock held (they may call pool functions, but should be quick:
 *   results wait while they run; and must not join or free their own pool,
 *   which waits for that thread).  Every function here is thread-safe
 *   except the _free functions, which must not race with other calls on
 *   the same object.
 *
 * ### Fork children
 *   A pool belongs to the process that created it.  A child started with
 *   fork inherits a copy of the pool, its results and iterators, but not
 *   its handler thread nor its workers: every call on them there returns
 *   MPROC_EPERM at once (the _free functions return NULL; mproc_pool_free
 *   closes only the child's copies of the pool's descriptors and never
 *   touches the workers).  Under spawn and on Windows a pool cannot be
 *   passed to a child at all.
 *
 * ### MPI ranks as workers
 *   In a build with `-DMPROC_WITH_MPI=ON` (an MPI providing
 *   MPI_THREAD_MULTIPLE, e.g. Open MPI), a program started as
 *   `mpiexec -n N ./app` runs main on rank 0 only: mproc_main() sees the
 *   launcher's environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK;
 *   MPROC_MPI=0 opts out, for a program that calls MPI_Init itself after
 *   mproc_main(); one that called it before is left alone as well),
 *   calls MPI_Init_thread(MPI_THREAD_MULTIPLE), and on ranks 1..N-1
 *   serves pools from the same dispatch table until rank 0 exits, then
 *   calls MPI_Finalize and exits (it never returns there).  On rank 0 it
 *   returns, and an exit handler later releases the ranks and calls
 *   MPI_Finalize.  A pool created there with mproc_pool_options::backend
 *   #MPROC_POOL_MPI has the other ranks as workers (processes 0: all of
 *   them, mproc_pool_mpi_workers()); map, imap, imap_unordered, apply,
 *   apply_async, callbacks, results and task errors work as with local
 *   workers, and so does a failing initializer (#MPROC_ESPAWN).  One MPI
 *   pool at a time holds the ranks (#MPROC_EBUSY for a second one until
 *   the first is freed); after it is freed the ranks serve the next.
 *
 *   Not started by mpiexec (or by `mpiexec -n 1`) the backend is
 *   #MPROC_ENOTSUP, as it is in a build without MPI: a program can test
 *   mproc_pool_mpi_workers() > 0 and fall back to local workers
 *   (examples/mpi_map.c).
 *
 *   What ranks cannot do that local workers do:
 *   - A rank that dies (crash, kill, exit() in a task) is not replaced:
 *     MPI's default error handler ends the whole job, rank 0 included,
 *     and MPI cannot reliably recover a lost rank even with
 *     MPI_ERRORS_RETURN.  Run tasks that may crash in a local pool, and
 *     let long jobs save their progress so a new job can resume it.
 *   - No task timeouts: a rank cannot be killed and replaced, so
 *     mproc_pool_options::task_timeout and mproc_async_options::timeout
 *     are #MPROC_ENOTSUP, and so is maxtasksperchild.
 *   - initargs are #MPROC_ENOTSUP (handles and IPC objects cannot reach
 *     another machine); the initializer runs with no arguments of yours.
 *   - mproc_pool_terminate fails what is still queued at once
 *     (#MPROC_ECLOSED), but the chunks already sent to a rank run to
 *     their end before the rank stops, and mproc_pool_free waits for
 *     them.
 *   - Ranks share no memory with rank 0: every input and result is copied
 *     through MPI.
 *
 * ### Starmap
 *   Inputs are byte buffers, so a task with several arguments encodes them
 *   in its input (a struct, or mproc's own serialisation of your choice);
 *   map over such buffers is Python's starmap.
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#ifndef MPROC_H
#error "include <mproc.h>, not <mproc/pool.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** A pool of worker processes (Python's Pool). */
typedef struct mproc_pool mproc_pool;
/** The pending or finished result of apply_async/map/map_async (Python's
 * AsyncResult). */
typedef struct mproc_async_result mproc_async_result;
/** An iterator over the results of imap/imap_unordered. */
typedef struct mproc_imap mproc_imap;

/** The internal worker entry's name (reserved: do not use it in a table). */
#define MPROC_POOL_WORKER_ENTRY "mproc.pool.worker"

/** One input of map/imap. */
typedef struct mproc_bytes {
  const void *data; /**< may be NULL when len is 0 */
  size_t len;       /**< number of bytes */
} mproc_bytes;

/* ---- inside a task --------------------------------------------------------- */

/** The task's input (positional argument 0).  The bytes live until the
 * task returns.
 * @param args  the list the task was called with
 * @param[out] data  the input bytes
 * @param[out] len   their number
 * @return 0, or #MPROC_ESTATE outside a pool task. */
MPROC_API int mproc_task_input(const mproc_args *args, const void **data,
                               size_t *len);
/** Append bytes to the task's result (call any number of times; a result
 * may be empty).
 *
 * Results travel back in one message per batch of small chunks (a batch's
 * results are sent early, at a chunk's end, once they pass 128 KiB), so
 * that limit holds for the results of a chunk: tasks with results of
 * hundreds of MiB should be submitted with chunksize 1, or pass their
 * data through shared memory.
 * Call it from the thread that runs the task.
 * @param args  the list the task was called with
 * @param data  the bytes (may be NULL when len is 0)
 * @param len   their number
 * @return 0; #MPROC_ESTATE if `args` is not the list the task was called
 *   with (e.g. when the entry was started as a process); #MPROC_E2BIG when
 *   the result would pass #MPROC_CONN_MSG_MAX / 2 bytes. */
MPROC_API int mproc_task_result(const mproc_args *args, const void *data,
                                size_t len);

/* ---- the pool -------------------------------------------------------------- */

/** Where a pool's workers run (mproc_pool_options::backend). */
typedef enum mproc_pool_backend {
  MPROC_POOL_LOCAL = 0, /**< child processes of this one (the default) */
  MPROC_POOL_MPI = 1    /**< ranks 1..N-1 of the `mpiexec` job (rank 0 only) */
} mproc_pool_backend;

/** Options of mproc_pool_create() (Python's Pool keyword arguments). */
typedef struct mproc_pool_options {
  int processes;           /**< workers; 0: mproc_cpu_count() */
  const char *initializer; /**< entry run once in each worker before its first
                              task (NULL: none); a non-zero return ends that
                              worker (see mproc_pool_create) */
  /** The initializer's arguments (NULL: none), copied at create.  Handles
   * and IPC objects in it (a queue, a lock: Python's initargs=(queue,)
   * idiom) reach every worker's initializer, replacement workers included,
   * under fork, spawn and Windows, so they must stay open/alive as long as
   * the pool.  The initializer may keep the objects it gets for the tasks
   * (they live as long as the worker).  Keys starting with "mproc.pool."
   * are reserved: workers get their own there. */
  const mproc_args *initargs;
  unsigned long maxtasksperchild; /**< replace a worker after this many chunks
                                     (Python's tasks); 0: never */
  mproc_start_method start_method; /**< DEFAULT: the global default */
  /** Seconds a task may run (see "Task timeouts" above) when its
   * submission sets none: 0 (the default) or an infinity for no limit;
   * negative or NaN is #MPROC_EINVAL at create. */
  double task_timeout;
  /** Where the workers run: #MPROC_POOL_LOCAL (0, the default: child
   * processes) or #MPROC_POOL_MPI (the other ranks of an `mpiexec` job; see
   * "MPI ranks as workers" above). */
  mproc_pool_backend backend;
} mproc_pool_options;

/** Start the workers and wait until each has run its initializer.
 *
 * Workers
 * are daemonic children: if the program exits without terminating the pool
 * they are terminated at exit (and on Linux and Windows die with the parent
 * even if it is killed).
 * @param[out] out  the pool; free it with mproc_pool_free()
 * @param opts  may be NULL
 * @return 0 or an error: #MPROC_EINVAL (NULL out, processes < 0, bad start
 *   method), #MPROC_ENOINIT, #MPROC_ENOENTRY (no such initializer),
 *   #MPROC_EDAEMON (called in a daemonic process: its children would be
 *   orphans), #MPROC_ESPAWN (a worker could not be started, or its
 *   initializer failed or it died before its first task), #MPROC_ENOMEM;
 *   with #MPROC_POOL_MPI also #MPROC_ENOTSUP and #MPROC_EBUSY (see "MPI
 *   ranks as workers" above). */
MPROC_API int mproc_pool_create(mproc_pool **out, const mproc_pool_options *opts);

/** Number of workers the pool keeps.
 * @param pool  the pool
 * @return the number, or #MPROC_EINVAL. */
MPROC_API int mproc_pool_processes(const mproc_pool *pool);

/** How many worker ranks an #MPROC_POOL_MPI pool can have: the size of the
 * `mpiexec` job minus rank 0.
 * @return the number (0 when the program was not started by `mpiexec`, or
 *   by `mpiexec -n 1`); #MPROC_ENOTSUP when mproc was built without MPI
 *   (`-DMPROC_WITH_MPI=ON`) or MPI lacks MPI_THREAD_MULTIPLE;
 *   #MPROC_ENOINIT before mproc_main(). */
MPROC_API int mproc_pool_mpi_workers(void);

/** Callbacks for the `*_async` functions, run on the pool's handler thread
 * once the result is ready: `callback` if every task succeeded, else
 * `error_callback` (either may be NULL).  `r` is borrowed: read it, do not
 * free it (the caller's own reference stays valid).
 * @param r    the result
 * @param ctx  mproc_async_options::ctx */
typedef void (*mproc_async_callback)(mproc_async_result *r, void *ctx);
/** Options of the `*_async` functions. */
typedef struct mproc_async_options {
  mproc_async_callback callback;       /**< on success (may be NULL) */
  mproc_async_callback error_callback; /**< on failure (may be NULL) */
  void *ctx;                           /**< passed to both */
  /** Seconds each task of this submission may run (see "Task timeouts"
   * above); 0: the pool's mproc_pool_options::task_timeout, an infinity:
   * no limit; negative or NaN is #MPROC_EINVAL. */
  double timeout;
} mproc_async_options;

/** Run task(in) in a worker and wait for it.
 *
 * Copies the result into out
 * (cap bytes; *out_len gets its size).  If it does not fit: #MPROC_ERANGE
 * with *out_len the size needed, and the result is kept, as the _get
 * functions keep theirs: the next mproc_pool_apply from the same thread
 * with the same task and input bytes and a buffer big enough returns it
 * without running the task again (any other apply from that thread,
 * including the same call with a buffer still too small, drops it and runs
 * its own task; mproc_pool_free releases it).
 * @param pool    the pool
 * @param task    the name of an entry of the dispatch table
 * @param in      the input bytes (may be NULL when in_len is 0)
 * @param in_len  their number
 * @param out     where the result goes; may be NULL with cap 0
 * @param cap     its size
 * @param[out] out_len  the result's size; may be NULL
 * @return 0, the task's non-zero status, or a pool error. */
MPROC_API int mproc_pool_apply(mproc_pool *pool, const char *task,
                               const void *in, size_t in_len, void *out,
                               size_t cap, size_t *out_len);
/** Submit task(in) (the input is copied).
 * @param pool    the pool
 * @param task    the name of an entry of the dispatch table
 * @param in      the input bytes (may be NULL when in_len is 0)
 * @param in_len  their number
 * @param opts    callbacks; may be NULL
 * @param[out] out  a result to wait on and free
 * @return 0 or an error: #MPROC_EINVAL, #MPROC_ENOENTRY (not in the table),
 *   #MPROC_ECLOSED (after close or terminate), #MPROC_ESPAWN (the pool
 *   cannot start workers), #MPROC_E2BIG, #MPROC_ENOMEM. */
MPROC_API int mproc_pool_apply_async(mproc_pool *pool, const char *task,
                                     const void *in, size_t in_len,
                                     const mproc_async_options *opts,
                                     mproc_async_result **out);

/** task(inputs[i]) for every i, results in input order; waits.
 *
 * chunksize 0 is
 * map's default, ceil(n / (4 * workers)).  n 0 gives an empty result at
 * once (inputs may then be NULL).
 * @param pool       the pool
 * @param task       the name of an entry of the dispatch table
 * @param inputs     the inputs
 * @param n          their number
 * @param chunksize  items per chunk; 0: the default
 * @param[out] out   the result, in both cases (read it with
 *                   mproc_async_result_item, free it)
 * @return 0 when every task succeeded, else the status of the first failed
 *   task (in input order). */
MPROC_API int mproc_pool_map(mproc_pool *pool, const char *task,
                             const mproc_bytes *inputs, size_t n,
                             size_t chunksize, mproc_async_result **out);
/** Like mproc_pool_map(), but returns at once.
 * @param pool       the pool
 * @param task       the name of an entry of the dispatch table
 * @param inputs     the inputs (copied)
 * @param n          their number
 * @param chunksize  items per chunk; 0: the default
 * @param opts       callbacks; may be NULL
 * @param[out] out   a result to wait on and free
 * @return 0 or an error (as for mproc_pool_apply_async()). */
MPROC_API int mproc_pool_map_async(mproc_pool *pool, const char *task,
                                   const mproc_bytes *inputs, size_t n,
                                   size_t chunksize,
                                   const mproc_async_options *opts,
                                   mproc_async_result **out);

/** Streaming map: mproc_imap_next() yields results as they are ready, in
 * input order (imap) or in completion order (imap_unordered).  chunksize 0
 * means 1, as in Python.
 * @param pool       the pool
 * @param task       the name of an entry of the dispatch table
 * @param inputs     the inputs (copied)
 * @param n          their number
 * @param chunksize  items per chunk; 0: 1
 * @param[out] out   the iterator; free it with mproc_imap_free()
 * @return 0 or an error (as for mproc_pool_apply_async()). */
MPROC_API int mproc_pool_imap(mproc_pool *pool, const char *task,
                              const mproc_bytes *inputs, size_t n,
                              size_t chunksize, mproc_imap **out);
/** Like mproc_pool_imap(), results in completion order.
 * @param pool       the pool
 * @param task       the name of an entry of the dispatch table
 * @param inputs     the inputs (copied)
 * @param n          their number
 * @param chunksize  items per chunk; 0: 1
 * @param[out] out   the iterator; free it with mproc_imap_free()
 * @return 0 or an error (as for mproc_pool_apply_async()). */
MPROC_API int mproc_pool_imap_unordered(mproc_pool *pool, const char *task,
                                        const mproc_bytes *inputs, size_t n,
                                        size_t chunksize, mproc_imap **out);
/** The next result.
 * @param it  the iterator
 * @param[out] data   the result's bytes (valid until the iterator is freed);
 *                    may be NULL
 * @param[out] len    their number; may be NULL
 * @param[out] index  the input's position; may be NULL
 * @param timeout     seconds; negative waits without limit
 * @return its status (0, the task's code, or a pool error); #MPROC_EEOF
 *   when every result was yielded (Python's StopIteration),
 *   #MPROC_ETIMEDOUT when none is ready in time (call again later). */
MPROC_API int mproc_imap_next(mproc_imap *it, const void **data, size_t *len,
                              size_t *index, double timeout);
/** How many of the iterator's tasks have finished so far (yielded or
 * not): see mproc_async_result_done_count().  Thread-safe.
 * @param it  the iterator
 * @param[out] n  the number, from 0 up to the number of inputs
 * @return 0, #MPROC_EINVAL (NULL argument) or #MPROC_EPERM (a fork child). */
MPROC_API int mproc_imap_done_count(mproc_imap *it, size_t *n);
/** Free an iterator.
 * @param it  the iterator, or NULL
 * @return NULL. */
MPROC_API mproc_imap *mproc_imap_free(mproc_imap *it); /* returns NULL */

/** No more tasks (submissions return #MPROC_ECLOSED); the workers finish the
 * queued ones and exit.
 * @param pool  the pool
 * @return 0 or a negative code. */
MPROC_API int mproc_pool_close(mproc_pool *pool);
/** Stop the workers now: queued and running tasks fail with #MPROC_ECLOSED.
 * @param pool  the pool
 * @return 0 or a negative code. */
MPROC_API int mproc_pool_terminate(mproc_pool *pool);
/** Wait for the workers to exit and the handler thread to end, after close
 * or terminate.
 * @param pool     the pool
 * @param timeout  seconds; negative waits without limit
 * @return 0 or #MPROC_ETIMEDOUT (#MPROC_ESTATE before close/terminate). */
MPROC_API int mproc_pool_join(mproc_pool *pool, double timeout);
/** Terminate (if not closed and joined already), join and release.  Results
 * still held stay valid (pending ones end with #MPROC_ECLOSED).
 * @param pool  the pool, or NULL
 * @return NULL. */
MPROC_API mproc_pool *mproc_pool_free(mproc_pool *pool);

/* ---- async results ---------------------------------------------------------- */

struct mproc_end_info; /* mproc/result.h */

/** @name Async results
 * Like every pool call, these return #MPROC_EINVAL for a NULL result and
 * #MPROC_EPERM in a process other than the pool's creator (a fork child):
 * test `== 1`, not truth, where a negative code is possible.
 * @{ */

/** Wait until the result is ready.
 * @param r        the result
 * @param timeout  seconds; negative waits without limit
 * @return 0 once ready, #MPROC_ETIMEDOUT. */
MPROC_API int mproc_async_result_wait(mproc_async_result *r, double timeout);
/** Whether the result is ready.
 * @param r  the result
 * @return 1 if ready, 0 if not, or a negative code (above). */
MPROC_API int mproc_async_result_ready(mproc_async_result *r);
/** Whether every task succeeded.
 * @param r  the result
 * @return 1 if every task succeeded, 0 if one failed, #MPROC_ESTATE if not
 *   ready (Python raises ValueError), or a negative code (above). */
MPROC_API int mproc_async_result_successful(mproc_async_result *r);
/** Wait up to `timeout`, then copy the result of task 0 (apply_async) into
 * buf as mproc_pool_apply does.  On #MPROC_ERANGE the
 * result stays: call again with a bigger buffer.  For a map result it
 * returns the first failed status (or 0) and copies item 0.
 * @param r        the result
 * @param buf      where the bytes go; may be NULL with cap 0
 * @param cap      its size
 * @param[out] len  the result's size; may be NULL
 * @param timeout  seconds; negative waits without limit
 * @return the task's status, or #MPROC_ETIMEDOUT, #MPROC_ERANGE or another
 *   negative code. */
MPROC_API int mproc_async_result_get(mproc_async_result *r, void *buf,
                                     size_t cap, size_t *len, double timeout);
/** Number of tasks (1 for apply_async, n for map).
 * @param r  the result
 * @return the number. */
MPROC_API size_t mproc_async_result_count(const mproc_async_result *r);
/** Task i's status, with its bytes in *data and *len (borrowed from r;
 * either may be NULL).
 * @param r  the result
 * @param i  the task's index
 * @param[out] data  its bytes; may be NULL
 * @param[out] len   their number; may be NULL
 * @return the task's status; #MPROC_ESTATE before the result is ready,
 *   #MPROC_EINVAL for i out of range. */
MPROC_API int mproc_async_result_item(mproc_async_result *r, size_t i,
                                      const void **data, size_t *len);
/** How many tasks have finished so far (succeeded or failed), for a
 * progress bar over a running map_async or apply_async: it rises from 0
 * to mproc_async_result_count() (reached once the result is ready).
 * It counts results the parent has received, which workers send back per
 * batch of chunks (at most a quarter of a worker's share of the queue, 64
 * chunks at most): a map of 48 chunks on 2 workers moves in steps of 6
 * chunks; use a smaller chunksize for a finer bar.  Thread-safe: any
 * thread may ask while another waits on the result.
 * @param r  the result
 * @param[out] n  the number
 * @return 0, #MPROC_EINVAL (NULL argument) or #MPROC_EPERM (a fork child). */
MPROC_API int mproc_async_result_done_count(mproc_async_result *r, size_t *n);
/** @brief Why task i's worker ended, for a task that failed with
 * #MPROC_EWORKER (its worker died while running it) or #MPROC_ETIMEDOUT
 * (the pool killed it at the task's timeout).
 *
 * The handler thread reaps the dead worker before it fails the tasks it
 * held and keeps its mproc_process_end() report with them (one record per
 * result and death; tasks that succeed cost nothing): `info->pid` is the
 * worker's process id, `kind` and `code` say how it ended (POSIX:
 * "killed by signal 9 (SIGKILL)" from mproc_end_describe() for a worker
 * killed, or timed out; Windows: "terminated by mproc_process_kill() (as
 * signal 9, SIGKILL)" for a timeout, "exited with code N" for a task that
 * ended its process with N).  Every task lost in one death, the running
 * one and any finished ones whose results were lost with it, carries the
 * same report.  Thread-safe.
 * @param r  the result
 * @param i  the task's index
 * @param[out] info  filled on 0
 * @return 0; #MPROC_ENOTFOUND when task i did not fail with its worker
 *   (it succeeded, returned its own status, even #MPROC_EWORKER, failed
 *   with another pool error, or the report could not be kept for lack of
 *   memory); #MPROC_ESTATE before the result is ready; #MPROC_EINVAL for
 *   NULL arguments or i out of range; #MPROC_EPERM (a fork child). */
MPROC_API int mproc_async_result_item_end(mproc_async_result *r, size_t i,
                                          struct mproc_end_info *info);
/** @brief The report of mproc_async_result_item_end() for the first failed
 * task in input order: the one whose status mproc_async_result_get()
 * returns (for apply_async, its only task).
 * @param r  the result
 * @param[out] info  filled on 0
 * @return 0; #MPROC_ENOTFOUND when every task succeeded or the first
 *   failed one did not fail with its worker; #MPROC_ESTATE before the
 *   result is ready; #MPROC_EINVAL (NULL argument); #MPROC_EPERM (a fork
 *   child).  Thread-safe. */
MPROC_API int mproc_async_result_end(mproc_async_result *r,
                                     struct mproc_end_info *info);
/**
 * @brief The end report of a task of the iterator that failed because its
 * worker died (#MPROC_EWORKER) or was killed at the task's timeout
 * (#MPROC_ETIMEDOUT), as mproc_async_result_item_end() gives it for a map.
 *
 * Typically called with the index mproc_imap_next() just returned with
 * such a status; any settled task may be asked, before the others have
 * finished.  Thread-safe.
 * @param it     the iterator
 * @param index  the input's position (mproc_imap_next()'s `index`)
 * @param[out] info  the worker's end: its pid, its exit code or signal
 * @return 0; #MPROC_ENOTFOUND when the task did not fail that way (it
 *   succeeded, or returned its own code); #MPROC_ESTATE while it has not
 *   finished; #MPROC_EINVAL for NULL arguments or an index past the
 *   inputs; #MPROC_EPERM in a fork child. */
MPROC_API int mproc_imap_item_end(mproc_imap *it, size_t index,
                                  struct mproc_end_info *info);
/** Release the caller's reference (a pending result still completes
 * inside the pool).
 * @param r  the result, or NULL
 * @return NULL. */
MPROC_API mproc_async_result *mproc_async_result_free(mproc_async_result *r);
/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPROC_POOL_H */
