/*
 * mproc results and end reports: a child entry hands bytes back to its
 * parent (a future's result, procspawn's join() value), and the parent
 * learns in one call why a child ended.  Included by mproc.h.
 *
 * How a result travels
 *   At start the parent makes one shared memory block per child, blank
 *   (POSIX: an empty memfd/shm object the child sizes to header +
 *   MPROC_RESULT_MAX, sparse, when it first sets a result; Windows: a
 *   reserved pagefile section whose header page alone is committed, the
 *   child committing what it writes, so an open process object costs one
 *   page of commit charge, not 32 MiB) and passes its handle to the child
 *   like any handle argument: inherited by fork, carried in the spawn
 *   bootstrap's handle table (so every start method that runs the
 *   bootstrap has it).  The
 *   child writes into it; the parent reads it after the child has ended.
 *   No pipe is involved, so a child never blocks on its result and join,
 *   the sentinel and mproc_wait() mean what they always meant.  The parent
 *   drops the block at mproc_process_close() or mproc_process_free(),
 *   read or not; a child that dies while writing leaves a block the parent
 *   reports as damaged (MPROC_EBROKEN), and every length in it is checked
 *   against the limit and the block's real size before a byte is copied.
 *   Pool workers get no block (their tasks' results travel in the pool).
 *
 * Standard error in end reports: when the child's stderr was captured
 * (MPROC_STDIO_CAPTURE, mproc/output.h), mproc_process_end() copies its
 * last MPROC_END_TAIL_LINES lines (at most MPROC_END_TAIL_MAX bytes) into
 * mproc_end_info::stderr_tail, and mproc_end_describe() appends them after
 * the one-line reason, one per line, each after "  | ".
 */
#ifndef MPROC_RESULT_H
#define MPROC_RESULT_H

#ifndef MPROC_H
#error "include <mproc.h>, not <mproc/result.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Largest result a child can set, 32 MiB. */
#define MPROC_RESULT_MAX ((size_t)32 << 20)

/**
 * @brief Set the calling child's result, the bytes its parent reads with
 * mproc_process_result() once the child has ended.
 *
 * Copies `len` bytes into the result block the parent made for this child;
 * a later call replaces the earlier result.  The copy is complete when the
 * call returns 0; a child that ends (or is killed) during the call leaves
 * a result the parent reports as MPROC_EBROKEN.  Thread-safe (calls are
 * serialised; the last one to finish wins).
 *
 * @param data  the bytes; may be NULL when len is 0
 * @param len   0 to MPROC_RESULT_MAX
 * @return 0; MPROC_E2BIG for len over MPROC_RESULT_MAX (nothing is
 * written and an earlier result stays); MPROC_EINVAL for NULL data with a
 * nonzero len; MPROC_ESTATE outside a child started by mproc_process_start()
 * (the main program, a pool worker); MPROC_ESYS if the block cannot be
 * mapped (mproc_os_error() says why).
 */
MPROC_API int mproc_set_result(const void *data, size_t len);

/**
 * @brief Read the result a child set with mproc_set_result().
 *
 * Call it after the child has ended (a join returned 0); it reaps a child
 * that ended without a join.  May be called any number of times until
 * mproc_process_close().  Thread-safe.
 *
 * @param p    a child process object
 * @param buf  where to copy the result; may be NULL when cap is 0
 * @param cap  bytes available at buf
 * @param len  set to the result's length on 0 and on MPROC_ERANGE
 * @return 0 with the result copied; MPROC_ERANGE when it is longer than
 * cap (nothing copied; *len says how much room it needs, so a call with
 * cap 0 asks for the length); MPROC_ENOTFOUND when the child ended without
 * setting one (also a pool worker); MPROC_EBROKEN when the block holds no
 * valid result (the child died while setting it, or wrote garbage into
 * it), or when it was replaced during the copy or last set by two
 * processes at once (a raw fork() child of the child inherits the block);
 * MPROC_ESTATE before start or while the child runs; MPROC_EPERM outside
 * the creating process or for the current/parent process objects;
 * MPROC_ECLOSED after close; MPROC_EINVAL for NULL p or len, or NULL buf
 * with cap above 0.
 */
MPROC_API int mproc_process_result(mproc_process *p, void *buf, size_t cap,
                                   size_t *len);

/** Why a process ended (mproc_end_info.kind). */
typedef enum mproc_end_kind {
  /** It returned from its entry or called exit(): `code` is the exit code. */
  MPROC_END_EXIT = 1,
  /** POSIX: a signal ended it; `code` is the signal number, `name` its
   *  name ("SIGKILL"). */
  MPROC_END_SIGNAL = 2,
  /** Windows: mproc_process_terminate(), kill() or interrupt() ended it;
   *  `code` is the signal Python reports for it (15, 9, 2) and `name` its
   *  name. */
  MPROC_END_TERMINATED = 3,
  /** Windows: it ended with an NTSTATUS error code (an unhandled exception
   *  such as an access violation); `status` holds it, `name` says what it
   *  is ("access violation") or "unknown NTSTATUS". */
  MPROC_END_CRASH = 4,
  /** It never reached its entry: the child could not become the process
   *  its parent created (its dispatch table lacks the entry, damaged
   *  arguments, a failed set-up).  `code` is MPROC_EXIT_BOOTSTRAP and
   *  `name` the reason. */
  MPROC_END_BOOTSTRAP = 5
} mproc_end_kind;

/** How many of the last lines of a captured stderr an end report keeps. */
#define MPROC_END_TAIL_LINES 5
/** The most bytes of them an end report keeps (the last ones). */
#define MPROC_END_TAIL_MAX 1024

/** How a process ended, filled by mproc_process_end(). */
typedef struct mproc_end_info {
  mproc_end_kind kind; /**< what happened */
  int exitcode; /**< as mproc_process_exitcode() reports it */
  int code;     /**< exit code (EXIT, BOOTSTRAP) or signal number (SIGNAL,
                     TERMINATED); 0 for CRASH */
  uint32_t status; /**< CRASH: the NTSTATUS (0xC0000005); else 0 */
  const char *name; /**< static text naming the signal, the NTSTATUS or
                         the bootstrap failure; "" for EXIT.  Never NULL. */
  int64_t pid; /**< the process id it had */
  /** The last MPROC_END_TAIL_LINES lines of its stderr, as it wrote them
   *  (line ends included; at most MPROC_END_TAIL_MAX bytes, the last
   *  ones), when stderr was captured (#MPROC_STDIO_CAPTURE); else "". */
  char stderr_tail[MPROC_END_TAIL_MAX + 1];
} mproc_end_info;

/**
 * @brief Say why a child ended, in one call.
 *
 * Reaps a child that ended without a join.  A child that exits with
 * MPROC_EXIT_BOOTSTRAP on its own (its entry returned 120) is reported as
 * MPROC_END_EXIT; only a child that failed before its entry ran, and said
 * so in its result block, is MPROC_END_BOOTSTRAP (a child whose bootstrap
 * was too damaged to find that block reports plain exit code 120).
 * Thread-safe.
 *
 * @param p     a child process object
 * @param info  filled on 0
 * @return 0; MPROC_ESTATE before start or while it runs; MPROC_EPERM
 * outside the creating process or for the current/parent process objects;
 * MPROC_ECLOSED after close; MPROC_EINVAL for NULL arguments.
 */
MPROC_API int mproc_process_end(mproc_process *p, mproc_end_info *info);

/**
 * @brief One line of text for an end report: "exited with code 3",
 * "killed by signal 9 (SIGKILL)", "crashed: access violation
 * (0xC0000005)", "terminated by mproc_process_kill() (as signal 9,
 * SIGKILL)", "bootstrap failed: ... (exit code 120)".
 *
 * Thread-safe (it reads only `info`).
 *
 * @param info  a report from mproc_process_end()
 * @param buf   where to write the NUL-terminated text; may be NULL when
 *              cap is 0
 * @param cap   bytes available at buf; a longer text is cut (and still
 *              NUL-terminated)
 * @return the text's length without the NUL (as snprintf: at least cap
 * means it was cut), or MPROC_EINVAL for a NULL or unknown info, or NULL
 * buf with cap above 0.
 */
MPROC_API int mproc_end_describe(const mproc_end_info *info, char *buf,
                                 size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_RESULT_H */
