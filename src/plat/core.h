/*
 * Platform contract, core services: the process-wide lock, pid, CPU count,
 * clock, OS error, start-up, handles, and the identity of a process that an
 * owner recorded in shared memory.  Implemented by src/posix/core.c and
 * src/win32/core.c.
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
#ifndef MPROC_PLAT_CORE_H
#define MPROC_PLAT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "mproc.h"
#include "plat_types.h"

void mproc__mutex_lock(mproc__mutex_t *m);
void mproc__mutex_unlock(mproc__mutex_t *m);

int64_t mproc__plat_getpid(void);
int mproc__plat_cpu_count(void);
/* Monotonic clock, seconds. */
double mproc__plat_now(void);
/* Suspend the calling thread for up to `seconds` (> 0).  May return early
 * (POSIX: a signal interrupted it): mproc_sleep() loops on the clock. */
void mproc__plat_sleep(double seconds);
/* errno or GetLastError() of the calling thread, as the OS left it. */
int mproc__plat_last_error(void);

/* Called once by mproc_main() in every process (parent or child) before
 * anything else: find the own executable, read backend tunables. */
int mproc__plat_init(int argc, char **argv);

/* Could `h` be a handle at all (POSIX: a descriptor >= 0; Windows: not
 * NULL)?  MPROC_INVALID_HANDLE is checked separately by the callers. */
int mproc__plat_handle_plausible(mproc_handle_t h);

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

/* ---- owner identity and liveness ------------------------------------------- */

/* A process's identity that pid reuse cannot fake, for owners recorded in
 * shared memory: pid << 32 | a nonzero 32-bit fold of the process's start
 * time (Linux: /proc/<pid>/stat field 22; Windows: its creation time), or
 * the pid alone (low half 0) where the OS does not tell.  Read once per
 * process (again after fork).  This "incarnation" is what lock words
 * record as their owner. */
uint64_t mproc__self_stamp(void);
/* Is the process a stamp names still running?  0 when its pid is gone or a
 * zombie, or when the pid now belongs to a process that started at another
 * time (the stamped one died and its pid was reused); a start time that
 * cannot be read counts as a match.  1 otherwise. */
int mproc__stamp_alive(uint64_t stamp);
/* The same from a pid alone (a reused pid looks alive).  Portable, built on
 * mproc__stamp_alive (src/seg.c, where segment cleanup uses it). */
int mproc__pid_alive(int64_t pid);
/* The calling thread's id, to tell RLock owners apart within a process. */
uint64_t mproc__thread_id(void);

/* ---- large private buffers ------------------------------------------------- */

/* n (> 0) bytes of private, zeroed memory for a large buffer written once
 * front to back (a pool job's results), or NULL.  Its pages are taken from
 * the OS only as they are first written, in large pages where the OS gives
 * them to any process (Linux: transparent huge pages, asked for with
 * madvise where the system leaves it to the program): writing fresh memory
 * costs one fault per page, and a 2 MiB page replaces 512 of them.  Free it
 * with mproc__plat_big_free and the same n. */
void *mproc__plat_big_alloc(size_t n);
void mproc__plat_big_free(void *p, size_t n);

#endif
