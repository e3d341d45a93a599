/*
 * Platform contract, the child's side: read the bootstrap a spawning parent
 * sent, set the child up, die with a daemonic parent, watch the parent.
 * Implemented by src/posix/child.c and src/win32/child.c.
 */
#ifndef MPROC_PLAT_CHILD_H
#define MPROC_PLAT_CHILD_H

#include <stddef.h>
#include <stdint.h>

#include "plat/core.h"

struct mproc__bootstrap;

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

/* The parent watch opened by mproc__plat_watch_parent: 1/0 alive, wait for
 * its end (0, or MPROC_ETIMEDOUT), its sentinel. */
int mproc__plat_parent_alive(mproc__plat_parent *parent);
int mproc__plat_parent_wait(mproc__plat_parent *parent, double timeout);
mproc_handle_t mproc__plat_parent_sentinel(mproc__plat_parent *parent);

#endif
