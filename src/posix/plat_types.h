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
   * Otherwise the read end of a pipe whose write end only the child holds:
   * EOF means it ended. */
  int pidfd;
  int sentinel_r;
  /* Set when the sentinel pipe closed but waitpid says the child still runs
   * (a fork child that exec'd another program closes the write end): from
   * then on waits poll waitpid with a short sleep. */
  int sentinel_unreliable;
  /* A forkserver child (forkserver.c): sentinel_r is its status channel
   * from the server, which is the child's OS parent, and fs_pidfd a pidfd
   * opened while the server still pins the pid (Linux; -1 elsewhere or
   * once the child is known to have ended), used to signal it. */
  int fs;
  int fs_pidfd;
} mproc__plat_proc;

#define MPROC__PLAT_PROC_INIT {-1, -1, 0, 0, -1}
#define MPROC__HAVE_FORK 1

typedef struct mproc__plat_parent {
  int64_t pid;
  int pidfd; /* pidfd, or macOS kqueue; -1 when unavailable: fall back to
              * getppid() checks */
} mproc__plat_parent;

#endif
