/* Declarations shared by the POSIX backend's own files in src/posix (core.c,
 * proc.c, child.c); nothing outside src/posix/ sees this. */
#ifndef MPROC_POSIX_PX_H
#define MPROC_POSIX_PX_H

#include <sys/types.h>

#include "px_have.h"

/* In a spawned child the bootstrap arrives on this descriptor, and the
 * handles passed as arguments follow it, in slot order. */
#define MPROC__BS_FD 3

/* posix_spawn can start a child holding only the descriptors passed to it;
 * without that, spawn uses fork+exec. */
#define MPROC__HAVE_SPAWN_CLOSE                                                \
  (MPROC__HAVE_CLOSEFROM_NP || MPROC__HAVE_SPAWN_CLOEXEC_DEFAULT)

/* Chosen once by mproc__plat_init (core.c): pidfds work here and are not
 * switched off by MPROC_POSIX_NO_PIDFD; spawn via fork+exec instead of
 * posix_spawn. */
extern int mproc__px_use_pidfd;
extern int mproc__px_use_forkexec;

/* Without pidfds: our end of the life line to our parent (proc.c), -1
 * when we have none.  Our parent sees us end when it closes; we see the
 * parent end when it reads EOF.  A child we fork must close it, or our
 * parent would not see us end until that grandchild ends too.  Set in
 * child.c (spawn) or proc.c (fork). */
extern int mproc__px_life_fd;

/* Set by mproc's own fork start around fork() (mproc__lock held), so
 * that the pthread_atfork child handler (core.c) leaves to it what it
 * does itself: the handler's pthread_mutex_trylock would fail anyway, and
 * a function the parent never calls costs each fork child a lazy symbol
 * lookup by the dynamic linker (ld.so). */
extern int mproc__px_forking;

#if MPROC__APPLE
#include <crt_externs.h>
/* A shared library on macOS cannot link against `environ` directly
 * (environ(7)); _NSGetEnviron() is the documented way. */
#define mproc__environ (*_NSGetEnviron())
#else
extern char **environ;
#define mproc__environ environ
#endif

struct mproc_process;
/* The environment a child of p starts with (proc.c): *envp is environ, or
 * (*owned set) a merged array to free.  0, or MPROC_ENOMEM. */
int mproc__px_child_env(const struct mproc_process *p, char ***envp,
                        int *owned);

/* A descriptor that polls readable once process `pid` has ended: Linux
 * pidfd_open(2), macOS a kqueue watching the pid (core.c); or -1 with errno
 * (ENOSYS elsewhere). */
int mproc__px_pidfd_open(pid_t pid);

#if MPROC__HAVE_KQUEUE_PROC
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

/* Close descriptors lo..hi (hi negative: every one from lo up), with
 * close_range(2) where the kernel has it; async-signal-safe, for a child
 * between fork and exec. */
void mproc__px_close_range(int lo, int hi);

/* Milliseconds for poll(): negative waits forever; round up so a short
 * timeout never becomes a busy 0. */
int mproc__px_ms(double seconds);

/* Wait until fd is readable (or hung up) or `deadline` (mproc__plat_now()
 * seconds, negative: none) passes; EINTR waits on.  1 ready, 0 timed out,
 * -1 with errno. */
int mproc__px_poll_in(int fd, double deadline);
/* The same for room to write (POLLOUT). */
int mproc__px_poll_out(int fd, double deadline);

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
/* Its sentinel: the status channel, or once the server is gone the
 * child's pidfd or the program's end of its life line. */
int mproc__px_fs_sentinel(const struct mproc_process *p);

#endif
