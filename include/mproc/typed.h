/*
 * mproc typed helpers: the common cases of the byte-level API without the
 * ceremony.  Included by mproc.h.
 *
 *   - Typed argument getters for IPC objects: mproc_arg_queue(args, 0, &q)
 *     instead of mproc_arg_object(args, 0, MPROC_OBJ_QUEUE, (void **)&q).
 *   - An int64, a double or a string as one message on a queue or a pipe,
 *     and as a pool task's input or result.
 *   - mproc_sleep(), a portable time.sleep().
 *
 * The typed message format
 *   A typed value travels as one message: a tag byte, then the value.
 *     int64   0xF5, then 8 bytes, little-endian two's complement (9 bytes)
 *     double  0xF6, then the 8 bytes of the IEEE-754 binary64 value,
 *             little-endian (9 bytes; bit-exact, NaN payloads included)
 *     string  0xF7, then the bytes of the string and its NUL (length + 2)
 *   Fixed little-endian, so a 32-bit and a 64-bit process, or processes of
 *   either byte order, read the same value.  The tags are bytes that never
 *   occur in UTF-8 text, so a text message sent with the byte API is never
 *   taken for a typed one.  A typed get of a message that is not of its
 *   type (another type, or bytes sent with the byte API) returns
 *   MPROC_ETYPE, and that message has been taken off the queue or pipe
 *   (a get cannot put it back without racing other receivers): mixing
 *   types on one channel is for programs that read with the byte API and
 *   decode themselves.
 *
 * Thread safety: as the underlying calls (every queue, pipe and pool call
 * here is thread-safe; the task_* calls run in the task's thread).
 */
#ifndef MPROC_TYPED_H
#define MPROC_TYPED_H

#ifndef MPROC_H
#error "include <mproc.h>, not <mproc/typed.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Tag byte of a typed int64 message. */
#define MPROC_TYPED_INT64 0xF5
/** Tag byte of a typed double message. */
#define MPROC_TYPED_DOUBLE 0xF6
/** Tag byte of a typed string message. */
#define MPROC_TYPED_STR 0xF7

/* ------------------------------------------------------------------------ */
/* Typed argument getters for IPC objects                                    */
/* ------------------------------------------------------------------------ */
/* Each reads positional argument `index` (or keyword `key`) as the named
 * object.  Returns 0, MPROC_ENOTFOUND (no such argument), MPROC_ETYPE (the
 * argument is not an object of that kind), MPROC_EINVAL (NULL args, key or
 * out).  *out is NULL on error.  The object is owned by the argument list
 * (do not free it).  Thread-safe (read-only). */

/** Positional argument as a queue.
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the queue (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_queue(const mproc_args *args, size_t index,
                              mproc_queue **out);
/** Keyword argument as a queue.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the queue (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_queue(const mproc_args *args, const char *key,
                                mproc_queue **out);
/** Positional argument as a pipe end (either end of mproc_pipe()).
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the end (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_conn(const mproc_args *args, size_t index,
                             mproc_conn **out);
/** Keyword argument as a pipe end.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the end (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_conn(const mproc_args *args, const char *key,
                               mproc_conn **out);
/** Positional argument as a Lock or an RLock (one C type for both).
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the lock (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_lock(const mproc_args *args, size_t index,
                             mproc_lock **out);
/** Keyword argument as a Lock or an RLock.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the lock (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_lock(const mproc_args *args, const char *key,
                               mproc_lock **out);
/** Positional argument as a (bounded) semaphore.
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the semaphore (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_semaphore(const mproc_args *args, size_t index,
                                  mproc_semaphore **out);
/** Keyword argument as a (bounded) semaphore.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the semaphore (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_semaphore(const mproc_args *args, const char *key,
                                    mproc_semaphore **out);
/** Positional argument as an event.
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the event (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_event(const mproc_args *args, size_t index,
                              mproc_event **out);
/** Keyword argument as an event.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the event (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_event(const mproc_args *args, const char *key,
                                mproc_event **out);
/** Positional argument as a condition (its lock comes with it).
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the condition (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_condition(const mproc_args *args, size_t index,
                                  mproc_condition **out);
/** Keyword argument as a condition.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the condition (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_condition(const mproc_args *args, const char *key,
                                    mproc_condition **out);
/** Positional argument as a barrier.
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the barrier (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_barrier(const mproc_args *args, size_t index,
                                mproc_barrier **out);
/** Keyword argument as a barrier.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the barrier (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_barrier(const mproc_args *args, const char *key,
                                  mproc_barrier **out);
/** Positional argument as a shared memory block.
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the block (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_shm(const mproc_args *args, size_t index,
                            mproc_shm **out);
/** Keyword argument as a shared memory block.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the block (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_shm(const mproc_args *args, const char *key,
                              mproc_shm **out);
/** Positional argument as a shared Value or Array.
 * @param args the entry's argument list
 * @param index 0-based position
 * @param out receives the array (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_arg_array(const mproc_args *args, size_t index,
                              mproc_array **out);
/** Keyword argument as a shared Value or Array.
 * @param args the entry's argument list
 * @param key the keyword
 * @param out receives the array (owned by @p args)
 * @return 0, MPROC_ENOTFOUND, MPROC_ETYPE or MPROC_EINVAL. Thread-safe. */
MPROC_API int mproc_kwarg_array(const mproc_args *args, const char *key,
                                mproc_array **out);

/* ------------------------------------------------------------------------ */
/* Typed values on queues                                                    */
/* ------------------------------------------------------------------------ */

/** Put an int64 on a queue as one typed message.
 * @param q the queue
 * @param v the value
 * @param timeout seconds (0: put_nowait; MPROC_FOREVER: no limit)
 * @return as mproc_queue_put(). Thread-safe. */
MPROC_API int mproc_queue_put_int64(mproc_queue *q, int64_t v, double timeout);
/** Put a double on a queue as one typed message (bit-exact).
 * @param q the queue
 * @param v the value
 * @param timeout seconds (0: put_nowait; MPROC_FOREVER: no limit)
 * @return as mproc_queue_put(). Thread-safe. */
MPROC_API int mproc_queue_put_double(mproc_queue *q, double v, double timeout);
/** Put a NUL-terminated string on a queue as one typed message.
 * @param q the queue
 * @param s the string (copied)
 * @param timeout seconds (0: put_nowait; MPROC_FOREVER: no limit)
 * @return as mproc_queue_put(); MPROC_EINVAL for NULL @p s. Thread-safe. */
MPROC_API int mproc_queue_put_str(mproc_queue *q, const char *s,
                                  double timeout);
/** Get an int64 put by mproc_queue_put_int64().
 * @param q the queue
 * @param out receives the value
 * @param timeout seconds (0: get_nowait; MPROC_FOREVER: no limit)
 * @return 0; MPROC_ETYPE if the next message is not a typed int64 (it is
 *         consumed); else as mproc_queue_get(). Thread-safe. */
MPROC_API int mproc_queue_get_int64(mproc_queue *q, int64_t *out,
                                    double timeout);
/** Get a double put by mproc_queue_put_double().
 * @param q the queue
 * @param out receives the value
 * @param timeout seconds (0: get_nowait; MPROC_FOREVER: no limit)
 * @return 0; MPROC_ETYPE if the next message is not a typed double (it is
 *         consumed); else as mproc_queue_get(). Thread-safe. */
MPROC_API int mproc_queue_get_double(mproc_queue *q, double *out,
                                     double timeout);
/** Get a string put by mproc_queue_put_str() into a buffer.
 * @param q the queue
 * @param buf receives the string and its NUL
 * @param cap bytes at @p buf
 * @param len receives the string's length without the NUL (may be NULL)
 * @param timeout seconds (0: get_nowait; MPROC_FOREVER: no limit)
 * @return 0; MPROC_ERANGE if it does not fit (*len set: @p cap must be
 *         at least *len + 1; the message stays queued); MPROC_ETYPE if the
 *         message is not a typed string (it is consumed); else as
 *         mproc_queue_get(). Thread-safe. */
MPROC_API int mproc_queue_get_str(mproc_queue *q, char *buf, size_t cap,
                                  size_t *len, double timeout);

/* ------------------------------------------------------------------------ */
/* Typed values on pipes                                                     */
/* ------------------------------------------------------------------------ */

/** Send an int64 as one typed message.
 * @param c a pipe end that may send
 * @param v the value
 * @return as mproc_conn_send_bytes(). Thread-safe. */
MPROC_API int mproc_conn_send_int64(mproc_conn *c, int64_t v);
/** Send a double as one typed message (bit-exact).
 * @param c a pipe end that may send
 * @param v the value
 * @return as mproc_conn_send_bytes(). Thread-safe. */
MPROC_API int mproc_conn_send_double(mproc_conn *c, double v);
/** Send a NUL-terminated string as one typed message.
 * @param c a pipe end that may send
 * @param s the string
 * @return as mproc_conn_send_bytes(); MPROC_EINVAL for NULL @p s.
 *         Thread-safe. */
MPROC_API int mproc_conn_send_str(mproc_conn *c, const char *s);
/** Receive an int64 sent by mproc_conn_send_int64().
 * @param c a pipe end that may receive
 * @param out receives the value
 * @param timeout seconds (MPROC_FOREVER: no limit)
 * @return 0; MPROC_ETYPE if the message is not a typed int64 (it is
 *         consumed); else as mproc_conn_recv_bytes(). Thread-safe. */
MPROC_API int mproc_conn_recv_int64(mproc_conn *c, int64_t *out,
                                    double timeout);
/** Receive a double sent by mproc_conn_send_double().
 * @param c a pipe end that may receive
 * @param out receives the value
 * @param timeout seconds (MPROC_FOREVER: no limit)
 * @return 0; MPROC_ETYPE if the message is not a typed double (it is
 *         consumed); else as mproc_conn_recv_bytes(). Thread-safe. */
MPROC_API int mproc_conn_recv_double(mproc_conn *c, double *out,
                                     double timeout);
/** Receive a string sent by mproc_conn_send_str() into a buffer.
 * @param c a pipe end that may receive
 * @param buf receives the string and its NUL
 * @param cap bytes at @p buf
 * @param len receives the string's length without the NUL (may be NULL)
 * @param timeout seconds (MPROC_FOREVER: no limit)
 * @return 0; MPROC_ERANGE if it does not fit (*len set: @p cap must be at
 *         least *len + 1; the message stays); MPROC_ETYPE if the message
 *         is not a typed string (it is consumed); else as
 *         mproc_conn_recv_bytes(). Thread-safe. */
MPROC_API int mproc_conn_recv_str(mproc_conn *c, char *buf, size_t cap,
                                  size_t *len, double timeout);

/* ------------------------------------------------------------------------ */
/* Typed pool inputs and results                                             */
/* ------------------------------------------------------------------------ */

/** mproc_pool_map() over int64 inputs: task i gets values[i], which it
 * reads with mproc_task_input_int64().
 * @param pool the pool
 * @param task the task's entry name
 * @param values n values (may be NULL when n is 0)
 * @param n number of values
 * @param chunksize as mproc_pool_map() (0: its default)
 * @param out receives the result (read it with the mproc_async_result_item_*
 *        functions; free it)
 * @return as mproc_pool_map(); MPROC_ENOMEM. Thread-safe. */
MPROC_API int mproc_pool_map_int64(mproc_pool *pool, const char *task,
                                   const int64_t *values, size_t n,
                                   size_t chunksize, mproc_async_result **out);
/** mproc_pool_map() over strings: task i gets strs[i], which it reads with
 * mproc_task_input_str().
 * @param pool the pool
 * @param task the task's entry name
 * @param strs n NUL-terminated strings (may be NULL when n is 0)
 * @param n number of strings
 * @param chunksize as mproc_pool_map() (0: its default)
 * @param out receives the result (free it)
 * @return as mproc_pool_map(); MPROC_EINVAL for a NULL string; MPROC_ENOMEM.
 *         Thread-safe. */
MPROC_API int mproc_pool_map_str(mproc_pool *pool, const char *task,
                                 const char *const *strs, size_t n,
                                 size_t chunksize, mproc_async_result **out);
/** Inside a task: the input as an int64 (from mproc_pool_map_int64()).
 * @param args the list the task was called with
 * @param out receives the value
 * @return 0, MPROC_ETYPE (the input is not a typed int64), or as
 *         mproc_task_input(). Call it from the task's thread. */
MPROC_API int mproc_task_input_int64(const mproc_args *args, int64_t *out);
/** Inside a task: the input as a string (from mproc_pool_map_str()).
 * @param args the list the task was called with
 * @param out receives the string, valid until the task returns
 * @return 0, MPROC_ETYPE (the input is not a typed string), or as
 *         mproc_task_input(). Call it from the task's thread. */
MPROC_API int mproc_task_input_str(const mproc_args *args, const char **out);
/** Inside a task: make an int64 the task's result (a typed result is the
 * task's only result: do not mix with mproc_task_result()).
 * @param args the list the task was called with
 * @param v the value
 * @return as mproc_task_result(). Call it from the task's thread. */
MPROC_API int mproc_task_result_int64(const mproc_args *args, int64_t v);
/** Inside a task: make a double the task's result.
 * @param args the list the task was called with
 * @param v the value
 * @return as mproc_task_result(). Call it from the task's thread. */
MPROC_API int mproc_task_result_double(const mproc_args *args, double v);
/** Inside a task: make a string the task's result.
 * @param args the list the task was called with
 * @param s the string
 * @return as mproc_task_result(); MPROC_EINVAL for NULL @p s. Call it from
 *         the task's thread. */
MPROC_API int mproc_task_result_str(const mproc_args *args, const char *s);
/** Task i's result as an int64.
 * @param r a ready result
 * @param i the task's index
 * @param out receives the value
 * @return 0; the task's non-zero status (as mproc_async_result_item());
 *         MPROC_ETYPE if it succeeded without a typed int64 result.
 *         Thread-safe. */
MPROC_API int mproc_async_result_item_int64(mproc_async_result *r, size_t i,
                                            int64_t *out);
/** Task i's result as a double.
 * @param r a ready result
 * @param i the task's index
 * @param out receives the value
 * @return 0; the task's non-zero status; MPROC_ETYPE. Thread-safe. */
MPROC_API int mproc_async_result_item_double(mproc_async_result *r, size_t i,
                                             double *out);
/** Task i's result as a string.
 * @param r a ready result
 * @param i the task's index
 * @param out receives the string, borrowed from @p r (valid until it is
 *        freed)
 * @return 0; the task's non-zero status; MPROC_ETYPE. Thread-safe. */
MPROC_API int mproc_async_result_item_str(mproc_async_result *r, size_t i,
                                          const char **out);

/* ------------------------------------------------------------------------ */
/* Sleep                                                                     */
/* ------------------------------------------------------------------------ */

/** Python's time.sleep(): suspend the calling thread for @p seconds.
 * Sleeps at least that long on the monotonic clock: a signal that
 * interrupts the sleep (POSIX EINTR) does not end it early.  Windows
 * rounds up to whole milliseconds and the timer tick (about 15.6 ms by
 * default).  A time past ~31 years sleeps without end.
 * @param seconds how long, >= 0 (0 returns at once)
 * @return 0, or MPROC_EINVAL for a negative or NaN time. Thread-safe. */
MPROC_API int mproc_sleep(double seconds);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_TYPED_H */
