/*
 * Platform contract, the parent's side of a child process: start it (fork
 * or spawn), wait for it, reap it, signal it, wait on many sentinels.
 * Implemented by src/posix/proc.c and src/win32/proc.c.
 */
#ifndef MPROC_PLAT_PROC_H
#define MPROC_PLAT_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "plat/core.h"

/* Start with fork (POSIX).  Called with the global lock held.  In the child,
 * `child_main(p)` runs and never returns; in the parent, fills p->plat and
 * p->pid and returns 0, or a negative code.  Windows returns MPROC_ENOTSUP. */
int mproc__plat_fork(struct mproc_process *p,
                     void (*child_main)(struct mproc_process *p));

/* Descriptors held for one child, which a fork child must not keep (POSIX;
 * Windows starts no child by fork, and these do nothing there).  Add after
 * opening and delete before closing, with the global lock held; a fork
 * child closes every one but `keep` with mproc__plat_private_drop, in a
 * few system calls whatever their number.  mproc__plat_private_proc adds
 * those of p->plat (once p started), and mproc__plat_close deletes them. */
void mproc__plat_private_add(mproc_handle_t h);
void mproc__plat_private_del(mproc_handle_t h);
void mproc__plat_private_drop(mproc_handle_t keep);
void mproc__plat_private_proc(const struct mproc_process *p);

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

/* Is `path` a directory a child could start in?  0, or MPROC_ESPAWN with
 * the OS error recorded (ENOENT, ENOTDIR...; ERROR_PATH_NOT_FOUND...). */
int mproc__plat_check_dir(const char *path);

/* Open what a child's standard stream `stream` (0-2) gets: the null
 * device (path NULL), or `path` (stream 0: for reading; else for writing,
 * created, and appended to when `append`, else truncated).  A
 * non-inheritable handle, or MPROC_INVALID_HANDLE with the OS error in
 * *os_error. */
mproc_handle_t mproc__plat_open_stdio(int stream, const char *path, int append,
                                      int *os_error);

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

/* Deliver MPROC__SIG_TERM or _KILL to the process tree of a child started
 * with new_group (its process group / job).  `reaped`: the child has been
 * reaped, so its pid may name someone else by now.  Called with the global
 * lock held. */
int mproc__plat_signal_tree(struct mproc_process *p, int which, int reaped);

/* The pollable / waitable sentinel, valid until mproc__plat_close (POSIX
 * opens it on first use).  Called with the global lock held; 0 or a
 * negative code. */
int mproc__plat_sentinel(struct mproc_process *p, mproc_handle_t *out);

/* Release p->plat (after reaping, or for a never-started process). */
void mproc__plat_close(struct mproc_process *p);

/* Wait on raw sentinels; sets ready[i] to 0/1, returns the ready count, 0 on
 * timeout, or a negative code.  No limit on n. */
int mproc__plat_wait_handles(const mproc_handle_t *h, size_t n, double timeout,
                             int *ready);

#endif
