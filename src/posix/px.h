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

/* Chosen once by mproc__plat_init (core.c): pidfds work here and are not
 * switched off by MPROC_POSIX_NO_PIDFD; spawn via fork+exec instead of
 * posix_spawn. */
extern int mproc__px_use_pidfd;
extern int mproc__px_use_forkexec;

/* Without pidfds: the write end of our own parent's sentinel pipe.  A child
 * we fork must close it, or our parent would not see us end until that
 * grandchild ends too.  Set in child.c, taken over by fork in proc.c. */
extern int mproc__px_own_sentinel_w;

/* pidfd_open(2), or -1 with errno (ENOSYS off Linux). */
int mproc__px_pidfd_open(pid_t pid);

/* Close *fd if open and set it to -1, keeping errno. */
void mproc__px_close_fd(int *fd);

/* Milliseconds for poll(): negative waits forever; round up so a short
 * timeout never becomes a busy 0. */
int mproc__px_ms(double seconds);

#endif
