/**
 * @file
 * @brief mproc captured output: a child's stdout and/or stderr sent to a
 * pipe this process reads (mproc_process_options::stdio[i].mode =
 * MPROC_STDIO_CAPTURE).  Included by mproc.h.
 *
 * How it works
 *   At start the parent makes one OS pipe per captured stream and gives
 *   the child its write end exactly as it gives a MPROC_STDIO_HANDLE (fork:
 *   dup2 in the child; spawn: the file actions; forkserver: sent to the
 *   server with the request; Windows: the STARTUPINFO standard handle,
 *   passed through the explicit handle list), then closes its own copy.  A
 *   reader thread per captured stream, started before the child exists,
 *   drains the pipe into a buffer that grows as needed (or keeps only the
 *   last mproc_process_options::capture_limit bytes), so a child that
 *   writes megabytes to both streams before it exits never blocks, and
 *   join means what it always meant: it waits for the process, never for
 *   the pipes.
 *
 * When the output is complete
 *   Everything the child wrote is in the pipe by the time it has ended
 *   (a write returns once its bytes are in the pipe; a child killed
 *   mid-write leaves the part that was copied).  So mproc_process_output(),
 *   which may only be called once the child has ended, first moves what
 *   the pipe holds at that moment into the buffer, without waiting for the
 *   pipe's end-of-file: a grandchild that inherited the stream and keeps it
 *   open (or a raw fork() child of the child) cannot make it hang, and
 *   never withholds the child's own bytes.  What such a descendant writes
 *   later is added as it arrives (a later call sees it).  Bytes still in a
 *   child's C stdio buffers when it is killed never reach the pipe:
 *   children that are ended by a signal lose what they had not flushed.
 *
 * Reading while the child runs: mproc_process_output_read() returns the
 * bytes that arrived since the previous such call, waiting up to a
 * timeout for at least one.
 */
#ifndef MPROC_OUTPUT_H
#define MPROC_OUTPUT_H

#ifndef MPROC_H
#error "include <mproc.h>, not <mproc/output.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** The `stream` argument of the output calls: the child's stdout. */
#define MPROC_STDOUT 1
/** The `stream` argument of the output calls: the child's stderr. */
#define MPROC_STDERR 2

/**
 * @brief Copy the whole captured output of an ended child's stdout or
 * stderr, as mproc_process_result() copies its result.
 *
 * Call it once the child has ended (a join returned 0); it reaps a child
 * that ended without a join.  It never waits for the pipe's end-of-file
 * (see the top of mproc/output.h): everything the child wrote is there.
 * May be called any number of times until mproc_process_close(); each
 * call returns the same text, plus whatever a descendant still holding the
 * stream wrote since.  With a capture_limit only the last bytes are kept
 * (mproc_process_output_info() says how many were dropped).  Thread-safe.
 *
 * @param p       a child started with that stream set to
 *                #MPROC_STDIO_CAPTURE
 * @param stream  #MPROC_STDOUT or #MPROC_STDERR
 * @param buf     where to copy the text; may be NULL when cap is 0
 * @param cap     bytes available at buf
 * @param len     set to the text's length on 0 and on MPROC_ERANGE
 * @return 0 with the text copied; MPROC_ERANGE when it is longer than cap
 * (nothing copied; *len says how much room it needs, so a call with cap 0
 * asks for the length); MPROC_ENOTFOUND when that stream was not
 * captured; MPROC_ESTATE before start or while the child runs; MPROC_EPERM
 * outside the creating process or for the current/parent process objects;
 * MPROC_ECLOSED after close; MPROC_EINVAL for NULL p or len, NULL buf with
 * cap above 0, or a stream other than MPROC_STDOUT and MPROC_STDERR.
 */
MPROC_API int mproc_process_output(mproc_process *p, int stream, void *buf,
                                   size_t cap, size_t *len);

/**
 * @brief Read captured output while the child runs: the bytes that
 * arrived since the previous call, waiting up to `timeout` seconds for at
 * least one.
 *
 * Each byte is returned once by this call (a cursor per stream, shared by
 * every thread; mproc_process_output() still returns everything).  Bytes
 * dropped by a capture_limit before they were read are skipped.  Works
 * before and after the child's end.  Returns by its deadline whatever the
 * child or its descendants do.  Thread-safe; mproc_process_close()
 * returns MPROC_EBUSY while a call is under way.
 *
 * @param p        a child started with that stream set to
 *                 #MPROC_STDIO_CAPTURE
 * @param stream   #MPROC_STDOUT or #MPROC_STDERR
 * @param buf      where to copy the bytes
 * @param cap      at least 1: the most bytes copied
 * @param len      set to the number copied (0 unless the call returns 0)
 * @param timeout  seconds; negative (#MPROC_FOREVER) waits without limit,
 *                 0 only looks
 * @return 0 with 1 to cap bytes copied; MPROC_ETIMEDOUT when none arrived
 * in time; MPROC_EEOF once every writer closed the stream (the child and
 * every descendant that held it ended) and all was read; MPROC_ENOTFOUND
 * when that stream was not captured; MPROC_ESTATE before start; MPROC_EPERM
 * outside the creating process or for the current/parent process objects;
 * MPROC_ECLOSED after close; MPROC_EINVAL for NULL p, buf or len, cap 0, a
 * bad stream or a NaN timeout.
 */
MPROC_API int mproc_process_output_read(mproc_process *p, int stream,
                                        void *buf, size_t cap, size_t *len,
                                        double timeout);

/**
 * @brief Bound the memory a captured stream may take: keep only its last
 * `limit` bytes.
 *
 * By default (limit 0) a process object keeps all a captured stream
 * brings, so memory grows with the output.  With a limit, each captured
 * stream keeps at most its last `limit` bytes (it may allocate up to twice
 * that, so that dropping costs one move per `limit` bytes): older bytes are
 * dropped as new ones arrive, the child never blocks, and
 * mproc_process_output_info() counts what was dropped.  If memory runs
 * out, what was kept is dropped (and counted) and the capture goes on with
 * the bytes that come next: the pipe must be drained whatever happens.
 * Call it before mproc_process_start().  Not thread-safe with
 * mproc_process_start() of the same object.
 *
 * @param p      a child process object, not started
 * @param limit  bytes kept per captured stream; 0: no limit
 * @return 0; MPROC_ESTATE after start; MPROC_EPERM for the current/parent
 * process objects or outside the creating process; MPROC_ECLOSED after
 * close; MPROC_EINVAL for NULL p.
 */
MPROC_API int mproc_process_set_capture_limit(mproc_process *p, size_t limit);

/** Counters of one captured stream (mproc_process_output_info()). */
typedef struct mproc_output_info {
  uint64_t total;   /**< bytes received so far */
  uint64_t dropped; /**< of those, dropped by the capture_limit */
  int eof;          /**< 1 once every writer closed the stream */
} mproc_output_info;

/**
 * @brief How much of a captured stream arrived and how much a
 * capture_limit dropped.  Looks only: it moves nothing out of the pipe.
 * Thread-safe.
 *
 * @param p       a started child
 * @param stream  #MPROC_STDOUT or #MPROC_STDERR
 * @param info    filled on 0
 * @return 0; the errors of mproc_process_output_read() (MPROC_ENOTFOUND,
 * MPROC_ESTATE before start, MPROC_EPERM, MPROC_ECLOSED, MPROC_EINVAL).
 */
MPROC_API int mproc_process_output_info(mproc_process *p, int stream,
                                        mproc_output_info *info);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_OUTPUT_H */
