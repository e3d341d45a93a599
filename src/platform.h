/*
 * The narrow interface between the portable code (the .c files in src/) and one backend
 * (src/posix/ or src/win32/).  Both backends define every function here;
 * the portable code calls nothing else that is platform specific.
 *
 * Each backend also provides "plat_types.h" (found through its include
 * directory) defining:
 *   mproc__mutex_t, MPROC__MUTEX_INITIALIZER  a non-recursive mutex with a
 *                                             static initializer
 *   MPROC__THREAD_LOCAL                        a thread-local storage class
 *   mproc__plat_proc, MPROC__PLAT_PROC_INIT   per-process OS state (embedded
 *                                             in struct mproc_process) and
 *                                             its "owns nothing" value
 *   MPROC__HAVE_FORK                          1 if the fork method exists
 *   mproc__plat_parent                        OS state that watches the parent
 */
#ifndef MPROC_PLATFORM_H
#define MPROC_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "mproc.h"
#include "plat_types.h"

struct mproc__bootstrap;

void mproc__mutex_lock(mproc__mutex_t *m);
void mproc__mutex_unlock(mproc__mutex_t *m);

int64_t mproc__plat_getpid(void);
int mproc__plat_cpu_count(void);
/* Monotonic clock, seconds. */
double mproc__plat_now(void);
/* errno or GetLastError() of the calling thread, as the OS left it. */
int mproc__plat_last_error(void);

/* Called once by mproc_main() in every process (parent or child) before
 * anything else: find the own executable, read backend tunables. */
int mproc__plat_init(int argc, char **argv);

/* If argv carries the spawn-child flag, read the bootstrap the parent sent.
 * Before reading a byte, the backend asks the kernel who made the bootstrap
 * channel and refuses it unless that is the process that created this one
 * (and, on POSIX, runs as the same effective user); *sender is then that
 * process's pid, which the caller compares with the parent pid the
 * bootstrap claims.  Returns 0 when this is not a spawned child, 1 with
 * *buf (malloc'ed, caller frees), *len and *sender set, or a negative code
 * with a one-line reason in `err`. */
int mproc__plat_read_bootstrap(int argc, char **argv, unsigned char **buf,
                               size_t *len, int64_t *sender, char *err,
                               size_t errlen);

/* In a spawned child after the bootstrap was decoded: make the passed
 * handles non-inheritable again and start the interrupt watcher (Windows).
 * Returns 0 or a negative code with a reason in `err`. */
int mproc__plat_child_setup(const struct mproc__bootstrap *bs, char *err,
                            size_t errlen);

/* In any child (fork or spawn) of a daemonic process object: make sure the
 * child dies with its parent (Linux: PR_SET_PDEATHSIG; Windows: nothing, the
 * parent's job object does it).  Returns MPROC_ESTATE if the parent is
 * already gone, so the child can exit at once. */
int mproc__plat_arm_daemon(int64_t parent_pid);

/* In any child: open a watch on the parent.  `parent_handle` is the handle
 * the Windows parent passed (0 elsewhere).  `w` is zeroed storage. */
int mproc__plat_watch_parent(mproc__plat_parent *w, int64_t parent_pid,
                             uint64_t parent_handle);

/* Start with fork (POSIX).  Called with the global lock held.  In the child,
 * `child_main(p)` runs and never returns; in the parent, fills p->plat and
 * p->pid and returns 0, or a negative code.  Windows returns MPROC_ENOTSUP. */
int mproc__plat_fork(struct mproc_process *p, void (*child_main)(struct mproc_process *p));

/* In a fork child, close the OS state of a process object the parent owns
 * (a sibling), without waiting or signalling. */
void mproc__plat_forget(struct mproc_process *p);

/* Builds the bootstrap once the backend knows the values the passed handles
 * will have in the child.  Returns 0 with a malloc'ed buffer, or a code. */
typedef int (*mproc__bootstrap_builder)(struct mproc_process *p,
                                        const uint64_t *child_handles,
                                        uint64_t parent_handle,
                                        uint64_t interrupt_handle,
                                        unsigned char **buf, size_t *len);

/* Start with spawn: run the own executable with the child flag, pass it
 * exactly `handles` (plus what the backend needs), and deliver the bootstrap
 * made by `build`.  Fills p->plat and p->pid.  On failure nothing is left
 * running or open. */
int mproc__plat_spawn(struct mproc_process *p, const mproc_handle_t *handles,
                      size_t nhandles, mproc__bootstrap_builder build);

/* Wait up to `timeout` seconds (negative: forever) until the child has ended;
 * does not reap.  0 when ended, MPROC_ETIMEDOUT, or an error. */
int mproc__plat_wait(struct mproc_process *p, double timeout);

/* Reap without blocking.  1 with *exitcode (Python's rules: -N for signal N;
 * Windows: -15/-9/-2 for terminate/kill/interrupt), 0 if still running, or a
 * negative code.  Called with the global lock held, at most once with 1. */
int mproc__plat_reap(struct mproc_process *p, int *exitcode);

enum { MPROC__SIG_TERM = 1, MPROC__SIG_KILL = 2, MPROC__SIG_INT = 3 };
/* Deliver a signal to a started, not yet reaped child. */
int mproc__plat_signal(struct mproc_process *p, int which);

/* The pollable / waitable sentinel. */
mproc_handle_t mproc__plat_sentinel(const struct mproc_process *p);

/* Release p->plat (after reaping, or for a never-started process). */
void mproc__plat_close(struct mproc_process *p);

/* Wait on raw sentinels; sets ready[i] to 0/1, returns the ready count, 0 on
 * timeout, or a negative code.  No limit on n. */
int mproc__plat_wait_handles(const mproc_handle_t *h, size_t n, double timeout,
                             int *ready);

/* The parent watch opened by mproc__plat_watch_parent: 1/0 alive, wait for
 * its end (0, or MPROC_ETIMEDOUT), its sentinel. */
int mproc__plat_parent_alive(mproc__plat_parent *parent);
int mproc__plat_parent_wait(mproc__plat_parent *parent, double timeout);
mproc_handle_t mproc__plat_parent_sentinel(mproc__plat_parent *parent);

/* A new, non-inheritable handle for the same open file/object, or
 * MPROC_INVALID_HANDLE.  A fork child gives each object argument its own
 * copies, so two objects sharing one handle (a condition and its lock) do
 * not close it twice. */
mproc_handle_t mproc__plat_dup_handle(mproc_handle_t h);
/* Close a handle this process owns (MPROC_INVALID_HANDLE is ignored). */
void mproc__plat_close_handle(mproc_handle_t h);

/* Exit the calling child process with `code` without running atexit
 * handlers (fork children: the parent's handlers are not ours to run). */
void mproc__plat_exit_now(int code);

#endif
