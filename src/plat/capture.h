/*
 * Platform contract, the parent's end of a captured standard stream
 * (MPROC_STDIO_CAPTURE, src/process_output.c): an OS pipe whose write end
 * the child gets as its stdout or stderr and whose read end stays here,
 * read without ever blocking so that whoever holds the capture's lock can
 * pump it.  Implemented by src/posix/capture.c (a pipe, non-blocking read
 * end, and a wake pipe for poll) and src/win32/capture.c (a named pipe
 * whose read end does overlapped reads, and a wake event).
 */
#ifndef MPROC_PLAT_CAPTURE_H
#define MPROC_PLAT_CAPTURE_H

#include <stddef.h>

#include "plat/core.h"

typedef struct mproc__cap_pipe mproc__cap_pipe;

/* A new pipe: *out keeps the read end, *w is the write end for the child
 * (not inheritable: the start passes it on like a stdio handle and the
 * caller closes it afterwards).  0, MPROC_ENOMEM or MPROC_ESYS. */
int mproc__cap_pipe_open(mproc__cap_pipe **out, mproc_handle_t *w);

/* Block until bytes or end-of-file may be there to read, or until
 * mproc__cap_pipe_wake.  Runs without the caller's lock, concurrently with
 * mproc__cap_pipe_read in other threads: it may return 1 when another
 * thread took the bytes first (the caller reads 0 bytes and waits again).
 * 1, or 0 once woken (for good). */
int mproc__cap_pipe_wait(mproc__cap_pipe *cp);

/* Take bytes that are there now, without blocking: 0 with *data pointing
 * at *got bytes inside cp (valid until the next call; *got 0: none now),
 * MPROC_EEOF when every write end is closed and all was read, or
 * MPROC_ESYS.  Calls are serialised by the caller. */
int mproc__cap_pipe_read(mproc__cap_pipe *cp, const unsigned char **data,
                         size_t *got);

/* How many bytes the pipe holds now (what reads will return before they
 * find it empty, if no one writes meanwhile), so that a drain takes what
 * an ended child wrote and stops there.  Serialised with reads. */
size_t mproc__cap_pipe_avail(mproc__cap_pipe *cp);

/* Before a final look (the child has ended): a read still in flight is
 * brought to its end, so the bytes it took count in mproc__cap_pipe_avail
 * and the rest stay in the pipe (Windows: the transfer into an overlapped
 * read may complete after the writer exited; POSIX: nothing to do). */
void mproc__cap_pipe_settle(mproc__cap_pipe *cp);

/* Make mproc__cap_pipe_wait return 0, now and from now on. */
void mproc__cap_pipe_wake(mproc__cap_pipe *cp);

/* Release everything (NULL allowed); no wait may be under way. */
void mproc__cap_pipe_close(mproc__cap_pipe *cp);

#endif
