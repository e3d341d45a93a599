/*
 * POSIX side of listeners and clients (plat/net.h): Unix domain sockets and
 * TCP, and the handshake's crypto from OpenSSL's libcrypto (when the build
 * found it: MPROC_HAVE_OPENSSL).  Named pipes are Windows only.
 *
 * Unix socket files are made owner-only without touching the umask (it is
 * process-wide, so changing it would race with every other thread).  On
 * Linux, bind() gives the new file the socket inode's mode less the umask
 * (net/unix/af_unix.c, unix_bind), so an fchmod(0600) of the socket before
 * bind() does it; elsewhere the file may appear with the umask's mode, so
 * it is chmod'ed to 0600 before listen(): until listen() nobody can
 * connect (ECONNREFUSED), so no one gets in through that window.
 *
 * A path left by a listener that died (the file outlives the socket) makes
 * bind() fail with EADDRINUSE.  Python leaves that to the user; here the
 * file is replaced when it is a socket of this user that nobody answers on
 * (connect() refused), and anything else is MPROC_EEXIST.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef MPROC_HAVE_OPENSSL
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#endif

#include "atomics.h"
#include "internal.h"
#include "px.h"

struct mproc__net_listener {
  int fd;
  int kind;
  unsigned port;
  char *path;    /* unix: the socket file, removed at close if still ours */
  dev_t dev;     /* ... which it is while it has this device and inode */
  ino_t ino;
  /* The process that made the listener.  A fork child inherits the
   * descriptor and a copy of this struct; closing its copy must neither
   * shut down the socket (that acts on the socket, which the parent shares)
   * nor remove the parent's file (Python's Finalize skips other pids). */
  pid_t owner;
  volatile uint32_t closed;
};

/* ---- sockets --------------------------------------------------------------------- */

/* A close-on-exec stream socket (atomically where SOCK_CLOEXEC exists: a
 * child spawned by another thread meanwhile must not inherit it). */
static int mproc__net_socket(int domain) {
  int fd;
#ifdef SOCK_CLOEXEC
  fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
  fd = socket(domain, SOCK_STREAM, 0);
  if (fd >= 0)
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  return fd;
}

static int mproc__net_unix_sa(const char *path, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa->sun_path)
    return MPROC_EINVAL; /* would be cut: another path */
  memcpy(sa->sun_path, path, strlen(path) + 1);
  return MPROC_OK;
}

/* The first address HOST:PORT resolves to (numeric hosts need no DNS). */
static int mproc__net_resolve(const char *host, unsigned port, int passive,
                              struct addrinfo **res) {
  struct addrinfo hints;
  char service[8];
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  (void)snprintf(service, sizeof service, "%u", port);
  return getaddrinfo(host, service, &hints, res) == 0 ? MPROC_OK
                                                      : MPROC_EINVAL;
}

/* Map a connect()/bind() errno to the contract's codes. */
static int mproc__net_fail(int e) {
  switch (e) {
  case ENOENT:
  case ECONNREFUSED:
    return mproc__os_fail(MPROC_ENOTFOUND, e);
  case EADDRINUSE:
    return mproc__os_fail(MPROC_EEXIST, e);
  case EACCES: /* no write permission on the socket file (another user's) */
  case EPERM:
    return mproc__os_fail(MPROC_EPERM, e);
  case ENAMETOOLONG:
    return MPROC_EINVAL;
  case ETIMEDOUT:
  case EAGAIN:
  case EINPROGRESS:
    return MPROC_ETIMEDOUT;
  default:
    return mproc__os_fail(MPROC_ESYS, e);
  }
}

/* poll() one descriptor for `events` by the deadline: its revents, 0 at
 * the deadline, or MPROC_ESYS. */
static int mproc__net_poll(int fd, short events, double deadline) {
  struct pollfd p;
  int prc;
  p.fd = fd;
  p.events = events;
  do {
    p.revents = 0;
    prc = poll(&p, 1, mproc__px_ms(mproc__remaining(deadline)));
  } while (prc < 0 && errno == EINTR);
  if (prc < 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  return prc == 0 ? 0 : p.revents;
}

/* Wait for a non-blocking connect() to finish, by the deadline. */
static int mproc__net_wait_connected(int fd, double deadline) {
  socklen_t len = sizeof(int);
  int e = 0, rc = mproc__net_poll(fd, POLLOUT, deadline);
  if (rc <= 0)
    return rc == 0 ? MPROC_ETIMEDOUT : rc;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  return e ? mproc__net_fail(e) : MPROC_OK;
}

/* Connect fd to sa by the deadline.  A Unix socket connects in one
 * blocking call bounded by SO_SNDTIMEO (Linux waits there for room in a
 * full backlog; a non-blocking connect would say EAGAIN and leave us to
 * poll); TCP connects non-blocking and waits in poll(). */
static int mproc__net_connect_fd(int fd, const struct sockaddr *sa,
                                 socklen_t len, double deadline) {
  if (sa->sa_family == AF_UNIX) {
    double left = mproc__remaining(deadline);
    struct timeval tv;
    tv.tv_sec = left < 0 ? 0 : (time_t)left;
    tv.tv_usec = left < 0 ? 0 : (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
    if (left >= 0 && tv.tv_sec == 0 && tv.tv_usec == 0)
      tv.tv_usec = 1; /* 0 would mean no limit */
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  } else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    return mproc__os_fail(MPROC_ESYS, errno);
  }
  while (connect(fd, sa, len) != 0) {
    if (errno == EINPROGRESS && sa->sa_family != AF_UNIX)
      return mproc__net_wait_connected(fd, deadline);
    if (errno != EINTR)
      return mproc__net_fail(errno);
  }
  return MPROC_OK;
}

/* A connected socket as a transport end (TCP: without Nagle's delay, which
 * would hold a small message back until the previous one is acked). */
static int mproc__net_wrap(int fd, int tcp, mproc__conn_os **out) {
  int one = 1;
  if (tcp)
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return mproc__conn_os_wrap(fd, out);
}

/* One attempt: a new socket of sa's family connected by the deadline. */
static int mproc__net_try(const struct sockaddr *sa, socklen_t len,
                          double deadline, mproc__conn_os **out) {
  int fd = mproc__net_socket(sa->sa_family), rc;
  if (fd < 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  rc = mproc__net_connect_fd(fd, sa, len, deadline);
  if (rc == MPROC_OK)
    return mproc__net_wrap(fd, sa->sa_family != AF_UNIX, out);
  mproc__px_close_fd(&fd);
  return rc;
}

int mproc__net_connect(const mproc__net_addr *a, double deadline,
                       mproc__conn_os **out) {
  struct sockaddr_un sun;
  struct addrinfo *ai = NULL, *p;
  int rc;
  *out = NULL;
  if (a->kind == MPROC__NET_PIPE)
    return MPROC_ENOTSUP;
  if (a->kind == MPROC__NET_UNIX) {
    rc = mproc__net_unix_sa(a->path, &sun);
    return rc < 0 ? rc
                  : mproc__net_try((struct sockaddr *)&sun, sizeof sun,
                                   deadline, out);
  }
  rc = mproc__net_resolve(a->path, a->port, 0, &ai);
  if (rc < 0)
    return rc;
  /* Each address the name has, in order, as Python's create_connection
   * ("localhost" may be ::1 first while the listener has 127.0.0.1). */
  rc = MPROC_ENOTFOUND;
  for (p = ai; p; p = p->ai_next) {
    rc = mproc__net_try(p->ai_addr, p->ai_addrlen, deadline, out);
    if (rc == MPROC_OK || rc == MPROC_ETIMEDOUT)
      break; /* connected, or no time left for the others either */
  }
  freeaddrinfo(ai);
  return rc;
}

/* ---- listening --------------------------------------------------------------------- */

/* bind() said EADDRINUSE for a Unix path: remove the file if it is a stale
 * socket of ours (see the top), then 0; else MPROC_EEXIST. */
static int mproc__net_unix_stale(const struct sockaddr_un *sa) {
  struct stat st;
  int fd, rc;
  if (lstat(sa->sun_path, &st) != 0)
    return errno == ENOENT ? MPROC_OK : MPROC_EEXIST; /* gone meanwhile */
  if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
    return MPROC_EEXIST;
  fd = mproc__net_socket(AF_UNIX);
  if (fd < 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  (void)fcntl(fd, F_SETFL, O_NONBLOCK);
  rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 &&
               errno == ECONNREFUSED
           ? MPROC_OK
           : MPROC_EEXIST; /* accepted, or busy (EAGAIN): alive */
  mproc__px_close_fd(&fd);
  if (rc == MPROC_OK && unlink(sa->sun_path) != 0 && errno != ENOENT)
    rc = mproc__os_fail(MPROC_ESYS, errno);
  return rc;
}

/* bind() to sa: 0, or the contract's code for errno. */
static int mproc__net_bind(int fd, const struct sockaddr *sa, socklen_t len) {
  return bind(fd, sa, len) == 0 ? MPROC_OK : mproc__net_fail(errno);
}

static int mproc__net_unix_bind(mproc__net_listener *l, const char *path) {
  struct sockaddr_un sa;
  struct stat st;
  int bound = 0, rc = mproc__net_unix_sa(path, &sa);
  if (rc < 0)
    goto finish;
  (void)fchmod(l->fd, 0600); /* Linux: the mode bind() gives the file */
  rc = mproc__net_bind(l->fd, (struct sockaddr *)&sa, sizeof sa);
  if (rc == MPROC_EEXIST && (rc = mproc__net_unix_stale(&sa)) == MPROC_OK)
    rc = mproc__net_bind(l->fd, (struct sockaddr *)&sa, sizeof sa);
  if (rc < 0)
    goto finish;
  bound = 1;
  if (chmod(path, 0600) != 0 || lstat(path, &st) != 0) {
    rc = mproc__os_fail(MPROC_ESYS, errno);
    goto finish;
  }
  l->dev = st.st_dev;
  l->ino = st.st_ino;
  l->path = (char *)malloc(strlen(path) + 1);
  rc = l->path ? MPROC_OK : MPROC_ENOMEM;
  if (l->path)
    memcpy(l->path, path, strlen(path) + 1);
finish:
  if (rc < 0 && bound) /* our file, which close will not know of */
    (void)unlink(path);
  return rc;
}

static int mproc__net_tcp_bind(mproc__net_listener *l, struct addrinfo *ai) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int one = 1, rc;
  /* Rebinding a port whose old connections linger in TIME_WAIT is fine
   * (as Python does on POSIX); a port someone listens on stays taken. */
  (void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  rc = mproc__net_bind(l->fd, ai->ai_addr, ai->ai_addrlen);
  if (rc < 0)
    return rc;
  if (getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0)
    return mproc__os_fail(MPROC_ESYS, errno);
  l->port = ntohs(ss.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&ss)->sin6_port
                      : ((struct sockaddr_in *)&ss)->sin_port);
  return MPROC_OK;
}

int mproc__net_listen(const mproc__net_addr *a, mproc__net_listener **out) {
  mproc__net_listener *l = NULL;
  struct addrinfo *ai = NULL;
  int rc = MPROC_OK;
  *out = NULL;
  if (a->kind == MPROC__NET_PIPE)
    return MPROC_ENOTSUP;
  if (a->kind == MPROC__NET_TCP &&
      (rc = mproc__net_resolve(a->path, a->port, 1, &ai)) < 0)
    goto finish;
  l = (mproc__net_listener *)calloc(1, sizeof(*l));
  if (!l) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  l->kind = a->kind;
  l->owner = getpid();
  if ((l->fd = mproc__net_socket(ai ? ai->ai_family : AF_UNIX)) < 0) {
    rc = mproc__os_fail(MPROC_ESYS, errno);
    goto finish;
  }
  rc = ai ? mproc__net_tcp_bind(l, ai) : mproc__net_unix_bind(l, a->path);
  if (rc < 0)
    goto finish;
  /* Non-blocking, so an accept that lost the connection it polled for to
   * another thread polls again instead of blocking past its deadline. */
  if (fcntl(l->fd, F_SETFL, O_NONBLOCK) != 0 || listen(l->fd, SOMAXCONN) != 0)
    rc = mproc__os_fail(MPROC_ESYS, errno);
finish:
  if (ai)
    freeaddrinfo(ai);
  if (rc < 0 && l) {
    mproc__net_close(l);
    mproc__net_free(l);
    l = NULL;
  }
  *out = l;
  return rc;
}

unsigned mproc__net_port(const mproc__net_listener *l) { return l->port; }

/* accept(2), close-on-exec from the start where the OS can. */
static int mproc__net_accept_fd(int fd) {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) ||     \
    defined(__OpenBSD__) || defined(__DragonFly__)
  return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
#else
  int c = accept(fd, NULL, NULL);
  if (c >= 0)
    (void)fcntl(c, F_SETFD, FD_CLOEXEC);
  return c;
#endif
}

int mproc__net_accept(mproc__net_listener *l, double deadline,
                      mproc__conn_os **out) {
  int c, rc;
  *out = NULL;
  for (;;) {
    if (mproc__load32(&l->closed))
      return MPROC_ECLOSED;
    rc = mproc__net_poll(l->fd, POLLIN, deadline);
    if (rc <= 0)
      return rc == 0 ? MPROC_ETIMEDOUT : rc;
    /* A listening socket reports POLLHUP only once shut down, and then
     * Linux's Unix sockets answer accept() with EAGAIN for ever. */
    if (mproc__load32(&l->closed) || (rc & (POLLHUP | POLLERR | POLLNVAL)))
      return MPROC_ECLOSED;
    c = mproc__net_accept_fd(l->fd);
    if (c >= 0)
      return mproc__net_wrap(c, l->kind == MPROC__NET_TCP, out);
    /* Taken by another thread, or the client gave up: wait again. */
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
        errno == ECONNABORTED || errno == EPROTO)
      continue;
    if (errno == EINVAL) /* shut down by mproc__net_close */
      return MPROC_ECLOSED;
    return mproc__os_fail(MPROC_ESYS, errno);
  }
}

void mproc__net_close(mproc__net_listener *l) {
  struct stat st;
  if (!l || mproc__xchg32(&l->closed, 1u) != 0 || l->owner != getpid())
    return; /* a fork child's copy: only its descriptor goes (at free) */
  /* Wakes accepts polling in other threads (Linux) without closing the
   * descriptor under them (its number could be reused meanwhile). */
  if (l->fd >= 0)
    (void)shutdown(l->fd, SHUT_RDWR);
  /* Remove the file only while it is the one we bound: another listener
   * may have replaced it since (after we were gone, say, a stale check). */
  if (l->path && lstat(l->path, &st) == 0 && st.st_dev == l->dev &&
      st.st_ino == l->ino)
    (void)unlink(l->path);
}

void mproc__net_free(mproc__net_listener *l) {
  if (!l)
    return;
  if (l->fd >= 0)
    mproc__px_close_fd(&l->fd);
  free(l->path);
  free(l);
}

/* ---- crypto ----------------------------------------------------------------------- */

#ifdef MPROC_HAVE_OPENSSL

int mproc__net_crypto(void) { return 1; }

int mproc__net_hmac(const void *key, size_t keylen, const void *msg,
                    size_t msglen, unsigned char out[MPROC__NET_DIGEST]) {
  static const unsigned char empty = 0;
  unsigned int n = 0;
  /* A NULL key means "the previous key" to parts of OpenSSL: an empty key
   * is passed as a valid pointer and length 0. */
  if (!HMAC(EVP_sha256(), keylen ? key : &empty, (int)keylen,
            (const unsigned char *)msg, msglen, out, &n) ||
      n != MPROC__NET_DIGEST)
    return mproc__os_fail(MPROC_ESYS, EIO);
  return MPROC_OK;
}

int mproc__net_random(void *buf, size_t n) {
  return RAND_bytes((unsigned char *)buf, (int)n) == 1
             ? MPROC_OK
             : mproc__os_fail(MPROC_ESYS, EIO);
}

#else /* built without OpenSSL: no authentication (connection.h) */

int mproc__net_crypto(void) { return 0; }

int mproc__net_hmac(const void *key, size_t keylen, const void *msg,
                    size_t msglen, unsigned char out[MPROC__NET_DIGEST]) {
  (void)key;
  (void)keylen;
  (void)msg;
  (void)msglen;
  (void)out;
  return MPROC_ENOTSUP;
}

int mproc__net_random(void *buf, size_t n) {
  (void)buf;
  (void)n;
  return MPROC_ENOTSUP;
}

#endif
