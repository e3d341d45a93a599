/* Declarations shared by the POSIX backend's own files in src/posix (core.c,
 * proc.c, child.c); nothing outside src/posix/ sees this. */
#ifndef MPROC_POSIX_PX_H
#define MPROC_POSIX_PX_H

#include <sys/types.h>

/* In a spawned child the bootstrap arrives on this descriptor, and the
 * handles passed as arguments follow it, in slot order. */
#define MPROC__BS_FD 3

#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define MPROC__HAVE_CLOSEFROM_NP 1
#else
#define MPROC__HAVE_CLOSEFROM_NP 0
#endif

/* macOS's posix_spawn closes every descriptor the file actions do not name
 * when given POSIX_SPAWN_CLOEXEC_DEFAULT (an Apple flag, <spawn.h>). */
#ifdef __APPLE__
#define MPROC__HAVE_SPAWN_CLOEXEC_DEFAULT 1
#else
#define MPROC__HAVE_SPAWN_CLOEXEC_DEFAULT 0
#endif

/* posix_spawn can start a child holding only the descriptors passed to it;
 * without that, spawn uses fork+exec. */
#define MPROC__HAVE_SPAWN_CLOSE                                                \
  (MPROC__HAVE_CLOSEFROM_NP || MPROC__HAVE_SPAWN_CLOEXEC_DEFAULT)

/* Chosen once by mproc__plat_init (core.c): pidfds work here and are not
 * switched off by MPROC_POSIX_NO_PIDFD; spawn via fork+exec instead of
 * posix_spawn. */
extern int mproc__px_use_pidfd;
extern int mproc__px_use_forkexec;

/* Without pidfds: the write end of our own parent's sentinel pipe.  A child
 * we fork must close it, or our parent would not see us end until that
 * grandchild ends too.  Set in child.c, taken over by fork in proc.c. */
extern int mproc__px_own_sentinel_w;

/* A descriptor that polls readable once process `pid` has ended: Linux
 * pidfd_open(2), macOS a kqueue watching the pid (core.c); or -1 with errno
 * (ENOSYS elsewhere). */
int mproc__px_pidfd_open(pid_t pid);

#ifdef __APPLE__
/* Makes such a kqueue readable now (a user event): for a process found
 * ended some other way.  0 or -1 with errno. */
int mproc__px_pidfd_mark_ended(int kq);
#endif

/* pipe(2) and an AF_UNIX stream socketpair(2), both ends close-on-exec (and
 * the sockets SIGPIPE-free where SO_NOSIGPIPE exists); 0 or -1 with errno.
 * Callers that create ends meant for one child hold mproc__lock. */
int mproc__px_pipe(int fds[2]);
int mproc__px_socketpair(int fds[2]);

/* Close *fd if open and set it to -1, keeping errno. */
void mproc__px_close_fd(int *fd);

/* Milliseconds for poll(): negative waits forever; round up so a short
 * timeout never becomes a busy 0. */
int mproc__px_ms(double seconds);

/* Wait until fd is readable (or hung up) or `deadline` (mproc__plat_now()
 * seconds, negative: none) passes; EINTR waits on.  1 ready, 0 timed out,
 * -1 with errno. */
int mproc__px_poll_in(int fd, double deadline);

/* send(2) all of buf on a socket, without SIGPIPE (MSG_NOSIGNAL: a peer
 * that died gives EPIPE); 0, or -1 with errno (proc.c). */
int mproc__px_send_all(int fd, const unsigned char *buf, size_t len);

/* The parent's side of a forkserver child (forkserver.c), called by
 * proc.c for process objects with plat.fs set: wait until `deadline`,
 * reap (read the code the server sent), signal. */
struct mproc_process;
int mproc__px_fs_wait(struct mproc_process *p, double deadline);
int mproc__px_fs_reap(struct mproc_process *p, int *exitcode);
int mproc__px_fs_signal(struct mproc_process *p, int sig);

#endif
