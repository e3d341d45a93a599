/* POSIX backend types for platform.h. */
#ifndef MPROC_POSIX_PLAT_TYPES_H
#define MPROC_POSIX_PLAT_TYPES_H

#include <pthread.h>
#include <stdint.h>

typedef pthread_mutex_t mproc__mutex_t;
#define MPROC__MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#define MPROC__THREAD_LOCAL _Thread_local

typedef struct mproc__plat_proc {
  /* A pidfd when the kernel has one (Linux >= 5.3): pollable, and signals
   * through it can never reach a recycled pid.  On macOS a kqueue watching
   * the child for NOTE_EXIT, which polls readable once it ended (core.c).
   * Otherwise the parent's end of the child's life line (proc.c): EOF
   * means the child ended. */
  int pidfd;
  int sentinel_r;
  /* Once the life line closed while the child still ran (a fork child
   * that exec'd another program closes its end): the read end of the exit
   * watch's pipe (proc.c), readable once the child ended; -1 before. */
  int exit_r;
  /* A forkserver child (forkserver.c): sentinel_r is its status channel
   * from the server, which is the child's OS parent, and fs_pidfd a pidfd
   * opened while the server still pins the pid (Linux; -1 elsewhere or
   * once the child is known to have ended), used to signal it. */
  int fs;
  int fs_pidfd;
  /* A forkserver child: the program's end of its life line (the child
   * holds the other), EOF once the child ended; -1 otherwise. */
  int fs_life;
  /* A forkserver child: 1 once its exit code (fs_code) was read from the
   * status channel; it has ended when the channel then reads EOF (the
   * server closes it once it reaped the child). */
  int fs_got;
  int fs_code;
  /* Threads blocked in waitid() on the child's pid (a join without a
   * timeout, proc.c), and 1 once it ended with its reaping left to the
   * last of them: while they wait the pid must stay ours. */
  int waiting;
  int held;
} mproc__plat_proc;

#define MPROC__PLAT_PROC_INIT {-1, -1, -1, 0, -1, -1, 0, 0, 0, 0}
#define MPROC__HAVE_FORK 1

typedef struct mproc__plat_parent {
  int64_t pid;
  int pidfd; /* pidfd, or macOS kqueue, opened on first use; -1 before,
              * and always without pidfds (the life line serves then) */
} mproc__plat_parent;

#endif
