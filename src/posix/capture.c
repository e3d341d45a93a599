/* A captured stream's pipe on POSIX (plat/capture.h): pipe(2) with the
 * read end non-blocking, and a second pipe whose only job is to wake the
 * reader thread out of poll(2) when the process object is closed while a
 * descendant of the child still holds the write end (no EOF would ever
 * come).  Both pipes are close-on-exec, and registered with
 * mproc__plat_private_add so that a fork child closes them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"
#include "px.h"

/* One read takes at most this much: the default pipe capacity on Linux,
 * so a reader that keeps up empties the pipe in one call. */
#define MPROC__CAP_CHUNK 65536

struct mproc__cap_pipe {
  int r;       /* our end, O_NONBLOCK */
  int wake[2]; /* written once by mproc__cap_pipe_wake */
  unsigned char chunk[MPROC__CAP_CHUNK];
};

int mproc__cap_pipe_open(mproc__cap_pipe **out, mproc_handle_t *w) {
  mproc__cap_pipe *cp = (mproc__cap_pipe *)malloc(sizeof(*cp));
  int fds[2] = {-1, -1}, rc = MPROC_OK;
  *out = NULL;
  *w = MPROC_INVALID_HANDLE;
  if (!cp)
    return MPROC_ENOMEM;
  cp->r = cp->wake[0] = cp->wake[1] = -1;
  /* The callers hold mproc__lock, so no fork-method start copies the write
   * end between here and the registration that a fork child reads
   * (src/process_output.c). */
  if (mproc__px_pipe(fds) != 0 || mproc__px_pipe(cp->wake) != 0 ||
      fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) {
    rc = mproc__os_fail(MPROC_ESYS, errno);
    goto finish;
  }
  cp->r = fds[0];
  fds[0] = -1;
  /* A fork child must not hold them: see mproc__plat_private_add. */
  mproc__plat_private_add(cp->r);
  mproc__plat_private_add(cp->wake[0]);
  mproc__plat_private_add(cp->wake[1]);
  *w = fds[1];
  fds[1] = -1;
  *out = cp;
  cp = NULL;
finish:
  mproc__px_close_fd(&fds[0]);
  mproc__px_close_fd(&fds[1]);
  mproc__cap_pipe_close(cp);
  return rc;
}

int mproc__cap_pipe_wait(mproc__cap_pipe *cp) {
  struct pollfd pfd[2];
  int prc;
  pfd[0].fd = cp->r;
  pfd[1].fd = cp->wake[0];
  do {
    pfd[0].events = pfd[1].events = POLLIN;
    pfd[0].revents = pfd[1].revents = 0;
    prc = poll(pfd, 2, -1);
  } while (prc < 0 && errno == EINTR);
  if (prc < 0 || pfd[1].revents)
    return 0;
  return 1; /* readable, or hung up: the read says which */
}

int mproc__cap_pipe_read(mproc__cap_pipe *cp, const unsigned char **data,
                         size_t *got) {
  ssize_t n;
  *data = cp->chunk;
  *got = 0;
  do
    n = read(cp->r, cp->chunk, sizeof cp->chunk);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    *got = (size_t)n;
  else if (n == 0)
    return MPROC_EEOF;
  else if (errno != EAGAIN && errno != EWOULDBLOCK)
    return mproc__os_fail(MPROC_ESYS, errno);
  return MPROC_OK;
}

size_t mproc__cap_pipe_avail(mproc__cap_pipe *cp) {
  int n = 0;
  /* FIONREAD on a pipe: Linux, the BSDs, macOS, Solaris.  A system that
   * refuses it reports 0: a drain then takes nothing, and the reader
   * thread delivers the bytes a moment later. */
  if (ioctl(cp->r, FIONREAD, &n) != 0 || n < 0)
    return 0;
  return (size_t)n;
}

void mproc__cap_pipe_settle(mproc__cap_pipe *cp) {
  (void)cp; /* reads are synchronous: nothing is ever in flight */
}

void mproc__cap_pipe_wake(mproc__cap_pipe *cp) {
  static const char one = 1;
  ssize_t n;
  do
    n = write(cp->wake[1], &one, 1);
  while (n < 0 && errno == EINTR);
}

static void mproc__cap_pipe_forget(mproc__cap_pipe *cp) {
  if (!cp)
    return;
  mproc__plat_private_del(cp->r);
  mproc__plat_private_del(cp->wake[0]);
  mproc__plat_private_del(cp->wake[1]);
  mproc__px_close_fd(&cp->r);
  mproc__px_close_fd(&cp->wake[0]);
  mproc__px_close_fd(&cp->wake[1]);
}

void mproc__cap_pipe_close(mproc__cap_pipe *cp) {
  if (!cp)
    return;
  mproc__cap_pipe_forget(cp);
  free(cp);
}
