/* The POSIX backend's choice of OS mechanisms, made here once: every file
 * of src/posix tests these MPROC__HAVE_* macros (always defined, 0 or 1)
 * instead of naming an operating system.  A mechanism off here means the
 * plain-POSIX path is taken (the one a system without it, e.g. a BSD
 * without a port of its own, would run).
 *
 * MPROC_PORTABLE_POSIX (the CMake option of that name, Linux only) turns
 * every Linux-only mechanism off, so that the whole suite runs on Linux
 * through the plain-POSIX paths (the `portable` preset).  It keeps the
 * peer credentials of a socket (SO_PEERCRED): every system mproc targets
 * has its own call for them (macOS LOCAL_PEERPID, FreeBSD LOCAL_PEERCRED,
 * OpenBSD SO_PEERCRED), and without one a spawned child refuses its
 * bootstrap (child.c), so there is no plain-POSIX path to test. */
#ifndef MPROC_POSIX_PX_HAVE_H
#define MPROC_POSIX_PX_HAVE_H

#include <unistd.h> /* any libc header: __GLIBC__, _POSIX_VERSION */

#if defined(__FreeBSD__) || defined(__APPLE__)
#include <sys/param.h> /* __FreeBSD_version */
#endif

#if defined(__linux__) && !defined(MPROC_PORTABLE_POSIX)
#define MPROC__LINUX 1
#else
#define MPROC__LINUX 0
#endif

#ifdef __APPLE__
#define MPROC__APPLE 1
#else
#define MPROC__APPLE 0
#endif

/* pidfd_open(2) / pidfd_send_signal(2): a descriptor that polls readable
 * when a process ends, and signals that cannot reach a recycled pid. */
#define MPROC__HAVE_PIDFD MPROC__LINUX
/* A kqueue watching a pid for NOTE_EXIT stands in for a pidfd (core.c),
 * and a watcher thread on the parent's for PR_SET_PDEATHSIG (child.c). */
#define MPROC__HAVE_KQUEUE_PROC MPROC__APPLE
/* memfd_create(2): anonymous segments with no name at all (seg.c). */
#define MPROC__HAVE_MEMFD MPROC__LINUX
/* FreeBSD: shm_open(SHM_ANON) and sysctl KERN_PROC_PATHNAME (the running
 * image's path: proc_exe.c).  Not compiled against FreeBSD's headers
 * here; syntax-checked against stubs only. */
#if defined(__FreeBSD__)
#define MPROC__HAVE_SHM_ANON 1
#define MPROC__HAVE_KERN_PROC_PATHNAME 1
#else
#define MPROC__HAVE_SHM_ANON 0
#define MPROC__HAVE_KERN_PROC_PATHNAME 0
#endif
/* futex(2) on a shared word (futex.c). */
#define MPROC__HAVE_LINUX_FUTEX MPROC__LINUX
/* os_sync_wait_on_address / __ulock_wait2, shared (futex.c). */
#define MPROC__HAVE_ULOCK MPROC__APPLE
/* FreeBSD's _umtx_op(UMTX_OP_WAIT_UINT / UMTX_OP_WAKE), shared (futex.c). */
#if defined(__FreeBSD__)
#define MPROC__HAVE_UMTX 1
#else
#define MPROC__HAVE_UMTX 0
#endif
/* prctl(PR_SET_PDEATHSIG): the kernel kills a daemonic child with its
 * parent (child.c). */
#define MPROC__HAVE_PDEATHSIG MPROC__LINUX
/* /proc: the running image (/proc/self/exe, maps, cmdline: proc_exe.c),
 * a process's state and start time (/proc/<pid>/stat, status: core.c). */
#define MPROC__HAVE_PROCFS MPROC__LINUX
/* proc_pidinfo(PROC_PIDTBSDINFO): state and start time on macOS. */
#define MPROC__HAVE_PROC_PIDINFO MPROC__APPLE
/* gettid(2): a thread id that is small and stable for the thread's life. */
#define MPROC__HAVE_GETTID MPROC__LINUX
/* pipe2(2) and SOCK_CLOEXEC: descriptors close-on-exec from birth.  In
 * POSIX.1-2024 and on the BSDs, but not on macOS: off, the flag follows a
 * moment later (core.c explains why that is safe enough). */
#if MPROC__LINUX || defined(__FreeBSD__) || defined(__NetBSD__) ||            \
    defined(__OpenBSD__) || defined(__DragonFly__)
#define MPROC__HAVE_PIPE2 1
#else
#define MPROC__HAVE_PIPE2 0
#endif
/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): a spawned child
 * gets only the descriptors the file actions name. */
#if MPROC__LINUX && defined(__GLIBC__) &&                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define MPROC__HAVE_CLOSEFROM_NP 1
#else
#define MPROC__HAVE_CLOSEFROM_NP 0
#endif
/* posix_spawn_file_actions_addchdir_np (glibc 2.29+): a spawned child
 * starts in another directory (mproc_process_options::cwd); without it
 * such a child is started by fork+exec. */
#if MPROC__LINUX && defined(__GLIBC__) &&                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define MPROC__HAVE_SPAWN_CHDIR 1
#else
#define MPROC__HAVE_SPAWN_CHDIR 0
#endif
/* close_range(2) (Linux 5.9): close every descriptor from one up, in one
 * call (the forkserver's child). */
#define MPROC__HAVE_CLOSE_RANGE MPROC__LINUX
/* POSIX_SPAWN_CLOEXEC_DEFAULT (macOS): the same, as a spawn flag. */
#define MPROC__HAVE_SPAWN_CLOEXEC_DEFAULT MPROC__APPLE
/* Who made a socket, as the kernel recorded it (child.c).  Kept in the
 * portable build: see the top of this file. */
#if defined(__linux__)
#define MPROC__HAVE_SO_PEERCRED 1
#else
#define MPROC__HAVE_SO_PEERCRED 0
#endif
#define MPROC__HAVE_LOCAL_PEERPID MPROC__APPLE
/* sem_clockwait (POSIX.1-2024; glibc 2.30+): a semaphore wait for a
 * CLOCK_MONOTONIC deadline (the futex's wake channel, futex.c). */
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define MPROC__HAVE_SEM_CLOCKWAIT 1
#else
#define MPROC__HAVE_SEM_CLOCKWAIT 0
#endif
/* Not a mechanism but a fact about the system, so the portable build keeps
 * it: Linux keeps shm names as files of a world-writable directory
 * (/dev/shm), where anyone may plant a link or a fifo (seg.c). */
#if defined(__linux__)
#define MPROC__SHM_NAMES_ARE_FILES 1
#else
#define MPROC__SHM_NAMES_ARE_FILES 0
#endif
#if defined(__FreeBSD__) && __FreeBSD_version >= 1300000
#define MPROC__HAVE_XUCRED_PID 1 /* LOCAL_PEERCRED's cr_pid */
#else
#define MPROC__HAVE_XUCRED_PID 0
#endif

#endif
