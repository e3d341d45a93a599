/*
 * Platform contract, the forkserver start method: a small server process,
 * private to this program run, that forks each child on request (Python's
 * multiprocessing.forkserver).  Implemented by src/posix/forkserver.c; the
 * Windows twin, src/win32/forkserver.c, reports MPROC_ENOTSUP as it does for
 * fork.
 *
 * How the pieces fit (POSIX):
 *   - The server is this executable started again (spawn) running the
 *     reserved entry mproc__plat_fs_entry(); it forks once more and the
 *     middle process exits at once, so the server is not a child of the
 *     program (a waitpid(-1) loop there never waits for it) and runs with a
 *     fresh image, no threads and little memory, however large the program
 *     has grown.  It is reached only through a socket pair it inherited,
 *     and exits when its end reads EOF: when the program exits or dies.
 *   - Per child the program sends the spawn bootstrap, the passed
 *     descriptors (SCM_RIGHTS), one end of a new socket pair, the child's
 *     status channel, and one end of another, the child's life line.  The
 *     server forks, writes the child's pid on the status channel, and when
 *     the child ends writes its exit code there before it reaps it (the pid
 *     stays pinned until the code is sent).  Only the server holds its end
 *     of the status channel, never the child: the pid and code the program
 *     reads come from the server's fork and waitid, whatever the child's
 *     code does.  The program's end of the status channel is the child's
 *     sentinel.  The life line is the child's watch on the program (a
 *     daemonic child dies when it reads EOF, where there is no
 *     PR_SET_PDEATHSIG) and the program's watch on the child once the
 *     server is gone.
 *   - Every exchange with the server has a deadline,
 *     mproc__fs_reply_timeout: a stopped or wedged server fails the start
 *     (MPROC_ESPAWN, ETIMEDOUT) instead of blocking it; the server later
 *     drops, or kills, the child nobody waits for any more.
 */
#ifndef MPROC_PLAT_FORKSERVER_H
#define MPROC_PLAT_FORKSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "plat/core.h"
#include "plat/proc.h"

/* Start p through the server (started on first use), with the same
 * contract as mproc__plat_spawn: the bootstrap `build` makes reaches the
 * child, which runs it as a spawned child would.  Fills p->plat and p->pid.
 * MPROC_ESPAWN (mproc_os_error() EPIPE) once the server has died. */
int mproc__plat_fs_start(struct mproc_process *p, const mproc_handle_t *handles,
                         size_t nhandles, mproc__bootstrap_builder build);

/* The reserved entry the server runs (NULL where there is no forkserver). */
const mproc_entry *mproc__plat_fs_entry(void);

/* Record the entry the server runs once before it serves (MPROC_ESTATE
 * once the server runs, MPROC_ENOTSUP on Windows).  NULL clears it. */
int mproc__plat_fs_preload(const char *entry);

/* How long a start waits for the server (seconds; 30 unless a test
 * shortens it), and the running server's pid (0 when there is none): for
 * tests. */
extern double mproc__fs_reply_timeout;
int64_t mproc__fs_server_pid(void);

#endif
