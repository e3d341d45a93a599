/* Windows backend types for platform.h.  <windows.h> stays out of the
 * portable sources: handles are void* here and cast in src/win32/. */
#ifndef MPROC_WIN32_PLAT_TYPES_H
#define MPROC_WIN32_PLAT_TYPES_H

#include <stdint.h>

/* Layout-compatible with SRWLOCK, which has a static initializer of all
 * zeros (SRWLOCK_INIT). */
typedef struct mproc__mutex_t {
  void *ptr;
} mproc__mutex_t;
#define MPROC__MUTEX_INITIALIZER {0}

#if defined(_MSC_VER)
#define MPROC__THREAD_LOCAL __declspec(thread)
#else
#define MPROC__THREAD_LOCAL __thread
#endif

typedef struct mproc__plat_proc {
  void *process;         /* HANDLE from CreateProcessW: the sentinel */
  void *interrupt_event; /* HANDLE the child's watcher waits on */
  void *job; /* HANDLE of the child's own job (new_group), or NULL */
} mproc__plat_proc;

/* Keep in step with mproc__plat_proc: the state of a process object that
 * owns no OS resources. */
#define MPROC__PLAT_PROC_INIT {0, 0, 0}
#define MPROC__HAVE_FORK 0

typedef struct mproc__plat_parent {
  int64_t pid;
  void *process; /* HANDLE to the parent (SYNCHRONIZE), or NULL */
} mproc__plat_parent;

#endif
