/*
 * Windows side of listeners and clients (plat/net.h): named pipes and TCP
 * (Winsock), and the handshake's crypto from BCrypt.  Unix domain sockets
 * are POSIX only here.
 *
 * Named pipes (\\.\pipe\NAME), as CPython's PipeListener does them: the
 * listener always keeps one instance of the pipe waiting, so a client that
 * arrives between two accepts connects (to the waiting instance) instead
 * of finding no pipe.  The first instance is made with
 * FILE_FLAG_FIRST_PIPE_INSTANCE, so a name someone else already serves is
 * MPROC_EEXIST rather than shared with them.  Every instance is local only
 * (PIPE_REJECT_REMOTE_CLIENTS) and carries a DACL that lets only this user
 * in (the default one gives Everyone read access).  Accepting is an
 * overlapped ConnectNamedPipe waited on together with the listener's close
 * event, so close wakes accepts at once.
 *
 * TCP: overlapped sockets (what the transport's WSARecv/WSASend need),
 * not inheritable (WSA_FLAG_NO_HANDLE_INHERIT), the listening one bound
 * with SO_EXCLUSIVEADDRUSE so no other program can bind the port beside
 * it.  accept waits on the socket's FD_ACCEPT event (WSAEventSelect, one
 * event per listener, reset and selected again before each accept(), so a
 * connection queued or arriving after that sets it; every waiting thread
 * wakes and one wins) and the close event; the accepted socket inherits that selection, which
 * is undone.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <bcrypt.h>
#include <sddl.h>

#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "conn.h"
#include "w32.h"

/* Wine's SDK headers (the MSVC-mode check) lack this <bcrypt.h> macro. */
#ifndef BCRYPT_SUCCESS
#define BCRYPT_SUCCESS(status) (((NTSTATUS)(status)) >= 0)
#endif

#define MPROC__NET_PIPE_BUF 65536
#define MPROC__NET_NAME_MAX 256 /* a pipe's full name, in characters */

struct mproc__net_listener {
  int kind;
  wchar_t name[MPROC__NET_NAME_MAX + 1]; /* pipe: \\.\pipe\NAME */
  mproc__mutex_t lock;                   /* spare */
  HANDLE spare;   /* pipe: the instance waiting for the next client */
  SOCKET sock;    /* tcp: the listening socket */
  WSAEVENT ev_accept; /* tcp: FD_ACCEPT of sock (manual reset) */
  unsigned port;
  HANDLE ev_close; /* set by mproc__net_close: wakes every accept */
  volatile LONG closed;
};

/* ---- Winsock ------------------------------------------------------------------- */

static INIT_ONCE mproc__net_wsa_once = INIT_ONCE_STATIC_INIT;
static int mproc__net_wsa_error;

static BOOL CALLBACK mproc__net_wsa_init(PINIT_ONCE once, PVOID param,
                                         PVOID *ctx) {
  WSADATA d;
  (void)once;
  (void)param;
  (void)ctx;
  /* Never WSACleanup'ed: sockets may be in use until the process ends. */
  mproc__net_wsa_error = WSAStartup(MAKEWORD(2, 2), &d);
  return TRUE;
}

static int mproc__net_wsa(void) {
  (void)InitOnceExecuteOnce(&mproc__net_wsa_once, mproc__net_wsa_init, NULL,
                            NULL);
  return mproc__net_wsa_error
             ? mproc__os_fail(MPROC_ESYS, mproc__net_wsa_error)
             : MPROC_OK;
}

static int mproc__net_wsa_fail(int e) {
  switch (e) {
  case WSAECONNREFUSED:
    return mproc__os_fail(MPROC_ENOTFOUND, e);
  case WSAEADDRINUSE:
  case WSAEACCES: /* SO_EXCLUSIVEADDRUSE: someone else has the port */
    return mproc__os_fail(MPROC_EEXIST, e);
  case WSAETIMEDOUT:
    return MPROC_ETIMEDOUT;
  default:
    return mproc__os_fail(MPROC_ESYS, e);
  }
}

static int mproc__net_resolve(const char *host, unsigned port, int passive,
                              struct addrinfo **res) {
  struct addrinfo hints;
  char service[8];
  int rc = mproc__net_wsa(), i = 7;
  if (rc < 0)
    return rc;
  service[i] = 0;
  do { /* the port in decimal, without printf (its CRT varies) */
    service[--i] = (char)('0' + port % 10u);
    port /= 10u;
  } while (port);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  return getaddrinfo(host, service + i, &hints, res) == 0 ? MPROC_OK
                                                          : MPROC_EINVAL;
}

static SOCKET mproc__net_socket(int family) {
  return WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                    WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}

/* Wait for ev (or the close event, if any) by the deadline:
 * 0 ev, MPROC_ECLOSED, MPROC_ETIMEDOUT, MPROC_ESYS. */
static int mproc__net_wait(HANDLE ev, HANDLE ev_close, double deadline) {
  HANDLE hs[2];
  DWORD n = 0, r;
  hs[n++] = ev;
  if (ev_close)
    hs[n++] = ev_close;
  r = mproc__w32_wait_any(n, hs, mproc__remaining(deadline));
  if (r == WAIT_OBJECT_0)
    return MPROC_OK;
  if (r == WAIT_OBJECT_0 + 1)
    return MPROC_ECLOSED;
  if (r == WAIT_TIMEOUT)
    return MPROC_ETIMEDOUT;
  return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
}

/* A connected socket as a transport end, blocking again (it may come from
 * a non-blocking connect or from an event-selected listener) and without
 * Nagle's delay. */
static int mproc__net_wrap_socket(SOCKET s, mproc__conn_os **out) {
  u_long off = 0;
  BOOL one = TRUE;
  (void)WSAEventSelect(s, NULL, 0);
  (void)ioctlsocket(s, FIONBIO, &off);
  (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one,
                   sizeof one);
  return mproc__conn_os_wrap((mproc_handle_t)s, out);
}

/* Connect s to ai by the deadline.  Non-blocking (WSAEventSelect makes it
 * so), so the deadline holds. */
static int mproc__net_tcp_connect_s(SOCKET s, WSAEVENT ev,
                                    const struct addrinfo *ai,
                                    double deadline) {
  WSANETWORKEVENTS ne;
  int rc;
  if (WSAEventSelect(s, ev, FD_CONNECT) != 0)
    return mproc__net_wsa_fail(WSAGetLastError());
  if (connect(s, ai->ai_addr, (int)ai->ai_addrlen) == 0)
    return MPROC_OK;
  if (WSAGetLastError() != WSAEWOULDBLOCK)
    return mproc__net_wsa_fail(WSAGetLastError());
  rc = mproc__net_wait(ev, NULL, deadline);
  if (rc < 0)
    return rc;
  if (WSAEnumNetworkEvents(s, ev, &ne) != 0)
    return mproc__net_wsa_fail(WSAGetLastError());
  return ne.iErrorCode[FD_CONNECT_BIT]
             ? mproc__net_wsa_fail(ne.iErrorCode[FD_CONNECT_BIT])
             : MPROC_OK;
}

/* One attempt: a new socket connected to ai by the deadline. */
static int mproc__net_tcp_try(const struct addrinfo *ai, double deadline,
                              mproc__conn_os **out) {
  SOCKET s = mproc__net_socket(ai->ai_family);
  WSAEVENT ev = NULL;
  int rc = MPROC_OK;
  if (s == INVALID_SOCKET || !(ev = WSACreateEvent())) {
    rc = mproc__net_wsa_fail(WSAGetLastError());
    goto finish;
  }
  rc = mproc__net_tcp_connect_s(s, ev, ai, deadline);
  if (rc < 0)
    goto finish;
  rc = mproc__net_wrap_socket(s, out);
  s = INVALID_SOCKET; /* taken */
finish:
  if (s != INVALID_SOCKET)
    closesocket(s);
  if (ev)
    WSACloseEvent(ev);
  return rc;
}

static int mproc__net_tcp_connect(const mproc__net_addr *a, double deadline,
                                  mproc__conn_os **out) {
  struct addrinfo *ai = NULL, *p;
  int rc = mproc__net_resolve(a->path, a->port, 0, &ai);
  if (rc < 0)
    return rc;
  /* Each address the name has, in order ("localhost": ::1, 127.0.0.1). */
  rc = MPROC_ENOTFOUND;
  for (p = ai; p; p = p->ai_next) {
    rc = mproc__net_tcp_try(p, deadline, out);
    if (rc == MPROC_OK || rc == MPROC_ETIMEDOUT)
      break; /* connected, or no time left for the others either */
  }
  freeaddrinfo(ai);
  return rc;
}

static int mproc__net_tcp_listen(mproc__net_listener *l,
                                 const mproc__net_addr *a) {
  struct addrinfo *ai = NULL;
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  BOOL one = TRUE;
  int rc = mproc__net_resolve(a->path, a->port, 1, &ai);
  if (rc < 0)
    goto finish;
  l->sock = mproc__net_socket(ai->ai_family);
  if (l->sock == INVALID_SOCKET) {
    rc = mproc__net_wsa_fail(WSAGetLastError());
    goto finish;
  }
  (void)setsockopt(l->sock, SOL_SOCKET, SO_EXCLUSIVEADDRUSE,
                   (const char *)&one, sizeof one);
  if (!(l->ev_accept = WSACreateEvent()) ||
      WSAEventSelect(l->sock, l->ev_accept, FD_ACCEPT) != 0 ||
      bind(l->sock, ai->ai_addr, (int)ai->ai_addrlen) != 0 ||
      listen(l->sock, SOMAXCONN) != 0 ||
      getsockname(l->sock, (struct sockaddr *)&ss, &len) != 0) {
    rc = mproc__net_wsa_fail(WSAGetLastError());
    goto finish;
  }
  l->port = ntohs(ss.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&ss)->sin6_port
                      : ((struct sockaddr_in *)&ss)->sin_port);
finish:
  if (ai)
    freeaddrinfo(ai);
  return rc;
}

static int mproc__net_tcp_accept(mproc__net_listener *l, double deadline,
                                 mproc__conn_os **out) {
  SOCKET c;
  int rc, e;
  for (;;) {
    /* Select again each round: that re-posts FD_ACCEPT for a connection
     * already queued (Wine does not always re-post after accept()). */
    (void)WSAResetEvent(l->ev_accept);
    if (WSAEventSelect(l->sock, l->ev_accept, FD_ACCEPT) != 0)
      return InterlockedCompareExchange(&l->closed, 0, 0)
                 ? MPROC_ECLOSED
                 : mproc__net_wsa_fail(WSAGetLastError());
    c = accept(l->sock, NULL, NULL);
    if (c != INVALID_SOCKET)
      return mproc__net_wrap_socket(c, out);
    e = WSAGetLastError();
    if (InterlockedCompareExchange(&l->closed, 0, 0))
      return MPROC_ECLOSED;
    /* WSAECONNRESET: a client that gave up before we took it. */
    if (e != WSAEWOULDBLOCK && e != WSAECONNRESET)
      return mproc__net_wsa_fail(e);
    rc = mproc__net_wait(l->ev_accept, l->ev_close, deadline);
    if (rc < 0)
      return rc;
  }
}

/* ---- named pipes ------------------------------------------------------------------ */

/* \\.\pipe\NAME, from UTF-8.  MPROC_EINVAL when too long. */
static int mproc__net_pipe_name(const char *name, wchar_t *out) {
  static const wchar_t prefix[] = L"\\\\.\\pipe\\";
  size_t np = sizeof prefix / sizeof prefix[0] - 1;
  int n;
  memcpy(out, prefix, np * sizeof(wchar_t));
  n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, out + np,
                          (int)(MPROC__NET_NAME_MAX + 1 - np));
  return n > 1 ? MPROC_OK : MPROC_EINVAL;
}

/* Append the NUL-terminated w at out + *n if it fits (cap characters in
 * all, NUL included); 0 if it did not. */
static int mproc__net_wput(wchar_t *out, size_t cap, size_t *n,
                           const wchar_t *w) {
  size_t k = wcslen(w);
  if (*n + k >= cap)
    return 0;
  memcpy(out + *n, w, (k + 1) * sizeof(wchar_t));
  *n += k;
  return 1;
}

/* This user only: "O:<user>D:P(A;;FA;;;<user>)" (protected DACL, one
 * entry, full access for the process token's user). */
static int mproc__net_pipe_sd(PSECURITY_DESCRIPTOR *sd) {
  HANDLE token = NULL;
  BYTE buf[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  DWORD len = 0;
  wchar_t *sid = NULL, sddl[256];
  size_t n = 0, cap = sizeof sddl / sizeof sddl[0];
  int rc = MPROC_OK;
  *sd = NULL;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token) ||
      !GetTokenInformation(token, TokenUser, buf, sizeof buf, &len) ||
      !ConvertSidToStringSidW(((TOKEN_USER *)buf)->User.Sid, &sid)) {
    rc = mproc__os_fail(MPROC_ESYS, (int)GetLastError());
    goto finish;
  }
  if (!(mproc__net_wput(sddl, cap, &n, L"O:") &&
        mproc__net_wput(sddl, cap, &n, sid) &&
        mproc__net_wput(sddl, cap, &n, L"D:P(A;;FA;;;") &&
        mproc__net_wput(sddl, cap, &n, sid) &&
        mproc__net_wput(sddl, cap, &n, L")"))) {
    rc = MPROC_EINVAL; /* a SID is at most ~190 characters */
    goto finish;
  }
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          sddl, SDDL_REVISION_1, sd, NULL))
    rc = mproc__os_fail(MPROC_ESYS, (int)GetLastError());
finish:
  if (sid)
    LocalFree(sid);
  if (token)
    CloseHandle(token);
  return rc;
}

/* A new instance of the listener's pipe, waiting for a client. */
static int mproc__net_pipe_instance(const mproc__net_listener *l, int first,
                                    HANDLE *out) {
  SECURITY_ATTRIBUTES sa;
  PSECURITY_DESCRIPTOR sd = NULL;
  DWORD err;
  int rc = mproc__net_pipe_sd(&sd);
  *out = INVALID_HANDLE_VALUE;
  if (rc < 0)
    return rc;
  sa.nLength = sizeof sa;
  sa.lpSecurityDescriptor = sd;
  sa.bInheritHandle = FALSE;
  *out = CreateNamedPipeW(
      l->name,
      PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
          (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
      PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
          PIPE_REJECT_REMOTE_CLIENTS,
      PIPE_UNLIMITED_INSTANCES, MPROC__NET_PIPE_BUF, MPROC__NET_PIPE_BUF, 0,
      &sa);
  err = GetLastError();
  LocalFree(sd);
  if (*out != INVALID_HANDLE_VALUE)
    return MPROC_OK;
  if (err == ERROR_ACCESS_DENIED || err == ERROR_PIPE_BUSY)
    return mproc__os_fail(MPROC_EEXIST, (int)err); /* someone else's */
  return err == ERROR_INVALID_NAME ? MPROC_EINVAL
                                   : mproc__os_fail(MPROC_ESYS, (int)err);
}

/* Take the waiting instance (or make one). */
static int mproc__net_pipe_take(mproc__net_listener *l, HANDLE *h) {
  mproc__mutex_lock(&l->lock);
  *h = l->spare;
  l->spare = INVALID_HANDLE_VALUE;
  mproc__mutex_unlock(&l->lock);
  return *h != INVALID_HANDLE_VALUE ? MPROC_OK
                                    : mproc__net_pipe_instance(l, 0, h);
}

/* Keep h as the waiting instance, unless there is one (or we closed). */
static void mproc__net_pipe_put(mproc__net_listener *l, HANDLE h) {
  mproc__mutex_lock(&l->lock);
  if (l->spare == INVALID_HANDLE_VALUE &&
      !InterlockedCompareExchange(&l->closed, 0, 0)) {
    l->spare = h;
    h = INVALID_HANDLE_VALUE;
  }
  mproc__mutex_unlock(&l->lock);
  if (h != INVALID_HANDLE_VALUE)
    CloseHandle(h);
}

/* Wait for a client on instance h.  0 connected, or an error (h is still
 * the caller's either way). */
static int mproc__net_pipe_connect(mproc__net_listener *l, HANDLE h,
                                   double deadline) {
  OVERLAPPED ov;
  DWORD n, err;
  int rc = MPROC_OK;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!ov.hEvent)
    return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
  if (!ConnectNamedPipe(h, &ov)) {
    err = GetLastError();
    if (err == ERROR_IO_PENDING) {
      rc = mproc__net_wait(ov.hEvent, l->ev_close, deadline);
      if (rc != MPROC_OK)
        CancelIoEx(h, &ov);
      /* Collect it in every case (ov lives on this frame); a client that
       * connected just as we gave up counts. */
      if (GetOverlappedResult(h, &ov, &n, TRUE))
        rc = MPROC_OK;
      else if (rc == MPROC_OK)
        rc = mproc__os_fail(MPROC_ESYS, (int)GetLastError());
    } else if (err != ERROR_PIPE_CONNECTED) {
      /* ERROR_NO_DATA: a client came and left already. */
      rc = err == ERROR_NO_DATA ? MPROC_EEOF
                                : mproc__os_fail(MPROC_ESYS, (int)err);
    }
  }
  CloseHandle(ov.hEvent);
  return rc;
}

static int mproc__net_pipe_accept(mproc__net_listener *l, double deadline,
                                  mproc__conn_os **out) {
  HANDLE h, next;
  int rc = mproc__net_pipe_take(l, &h);
  if (rc < 0)
    return rc;
  rc = mproc__net_pipe_connect(l, h, deadline);
  if (rc < 0 && rc != MPROC_EEOF) { /* no client: h waits on */
    mproc__net_pipe_put(l, h);
    return rc;
  }
  /* h is spent (connected, or its client already left): first another
   * instance, so the next client finds one waiting, not "no such pipe". */
  if (mproc__net_pipe_instance(l, 0, &next) == MPROC_OK)
    mproc__net_pipe_put(l, next);
  if (rc == MPROC_EEOF) {
    CloseHandle(h);
    return rc;
  }
  return mproc__conn_os_wrap((mproc_handle_t)h, out);
}

static int mproc__net_pipe_client(const mproc__net_addr *a, double deadline,
                                  mproc__conn_os **out) {
  wchar_t name[MPROC__NET_NAME_MAX + 1];
  HANDLE h;
  DWORD err;
  double left;
  int rc = mproc__net_pipe_name(a->path, name);
  if (rc < 0)
    return rc;
  for (;;) {
    /* SECURITY_ANONYMOUS: the listener may not act as us. */
    h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL,
                    OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT |
                        SECURITY_ANONYMOUS,
                    NULL);
    if (h != INVALID_HANDLE_VALUE)
      return mproc__conn_os_wrap((mproc_handle_t)h, out);
    err = GetLastError();
    if (err == ERROR_FILE_NOT_FOUND)
      return mproc__os_fail(MPROC_ENOTFOUND, (int)err);
    if (err == ERROR_ACCESS_DENIED) /* the pipe's DACL leaves us out */
      return mproc__os_fail(MPROC_EPERM, (int)err);
    if (err != ERROR_PIPE_BUSY)
      return mproc__os_fail(MPROC_ESYS, (int)err);
    /* Every instance is taken: the kernel wakes us when one is free. */
    left = mproc__remaining(deadline);
    if (left == 0)
      return MPROC_ETIMEDOUT;
    if (!WaitNamedPipeW(name, left < 0 ? NMPWAIT_WAIT_FOREVER
                                       : mproc__w32_ms(left)) &&
        GetLastError() == ERROR_SEM_TIMEOUT)
      return MPROC_ETIMEDOUT;
  }
}

/* ---- the contract ------------------------------------------------------------------ */

int mproc__net_listen(const mproc__net_addr *a, mproc__net_listener **out) {
  mproc__mutex_t init = MPROC__MUTEX_INITIALIZER;
  mproc__net_listener *l;
  int rc;
  *out = NULL;
  if (a->kind == MPROC__NET_UNIX)
    return MPROC_ENOTSUP;
  l = (mproc__net_listener *)calloc(1, sizeof(*l));
  if (!l)
    return MPROC_ENOMEM;
  l->kind = a->kind;
  l->lock = init;
  l->spare = INVALID_HANDLE_VALUE;
  l->sock = INVALID_SOCKET;
  l->ev_close = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!l->ev_close) {
    rc = mproc__os_fail(MPROC_ESYS, (int)GetLastError());
    goto finish;
  }
  if (a->kind == MPROC__NET_TCP) {
    rc = mproc__net_tcp_listen(l, a);
    goto finish;
  }
  rc = mproc__net_pipe_name(a->path, l->name);
  if (rc < 0)
    goto finish;
  rc = mproc__net_pipe_instance(l, 1, &l->spare);
finish:
  if (rc < 0) {
    mproc__net_close(l);
    mproc__net_free(l);
    l = NULL;
  }
  *out = l;
  return rc;
}

unsigned mproc__net_port(const mproc__net_listener *l) { return l->port; }

int mproc__net_accept(mproc__net_listener *l, double deadline,
                      mproc__conn_os **out) {
  *out = NULL;
  if (InterlockedCompareExchange(&l->closed, 0, 0))
    return MPROC_ECLOSED;
  return l->kind == MPROC__NET_PIPE ? mproc__net_pipe_accept(l, deadline, out)
                                    : mproc__net_tcp_accept(l, deadline, out);
}

void mproc__net_close(mproc__net_listener *l) {
  HANDLE spare;
  if (!l || InterlockedExchange(&l->closed, 1) != 0)
    return;
  if (l->ev_close)
    SetEvent(l->ev_close);
  /* The waiting instance goes now (clients then find no pipe); instances
   * in accepts are put back closed (mproc__net_pipe_put). */
  mproc__mutex_lock(&l->lock);
  spare = l->spare;
  l->spare = INVALID_HANDLE_VALUE;
  mproc__mutex_unlock(&l->lock);
  if (spare != INVALID_HANDLE_VALUE)
    CloseHandle(spare);
  /* A TCP listener stops taking connections at once; the socket itself
   * goes at free (an accept may still be using it). */
  if (l->sock != INVALID_SOCKET)
    (void)shutdown(l->sock, SD_BOTH);
}

void mproc__net_free(mproc__net_listener *l) {
  if (!l)
    return;
  if (l->sock != INVALID_SOCKET)
    closesocket(l->sock);
  if (l->ev_accept)
    WSACloseEvent(l->ev_accept);
  if (l->ev_close)
    CloseHandle(l->ev_close);
  free(l);
}

int mproc__net_connect(const mproc__net_addr *a, double deadline,
                       mproc__conn_os **out) {
  *out = NULL;
  if (a->kind == MPROC__NET_UNIX)
    return MPROC_ENOTSUP;
  return a->kind == MPROC__NET_PIPE
             ? mproc__net_pipe_client(a, deadline, out)
             : mproc__net_tcp_connect(a, deadline, out);
}

/* ---- crypto (BCrypt) ------------------------------------------------------------------ */

int mproc__net_crypto(void) { return 1; }

int mproc__net_hmac(const void *key, size_t keylen, const void *msg,
                    size_t msglen, unsigned char out[MPROC__NET_DIGEST]) {
  static const UCHAR empty = 0;
  BCRYPT_ALG_HANDLE alg = NULL;
  BCRYPT_HASH_HANDLE h = NULL;
  NTSTATUS st = BCryptOpenAlgorithmProvider(
      &alg, BCRYPT_SHA256_ALGORITHM, NULL, BCRYPT_ALG_HANDLE_HMAC_FLAG);
  if (!BCRYPT_SUCCESS(st))
    goto finish;
  st = BCryptCreateHash(alg, &h, NULL, 0,
                        (PUCHAR)(uintptr_t)(keylen ? key : &empty),
                        (ULONG)keylen, 0);
  if (!BCRYPT_SUCCESS(st))
    goto finish;
  st = BCryptHashData(h, (PUCHAR)(uintptr_t)msg, (ULONG)msglen, 0);
  if (!BCRYPT_SUCCESS(st))
    goto finish;
  st = BCryptFinishHash(h, out, MPROC__NET_DIGEST, 0);
finish:
  if (h)
    BCryptDestroyHash(h);
  if (alg)
    BCryptCloseAlgorithmProvider(alg, 0);
  return BCRYPT_SUCCESS(st) ? MPROC_OK : mproc__os_fail(MPROC_ESYS, (int)st);
}

int mproc__net_random(void *buf, size_t n) {
  NTSTATUS st = BCryptGenRandom(NULL, (PUCHAR)buf, (ULONG)n,
                                BCRYPT_USE_SYSTEM_PREFERRED_RNG);
  return BCRYPT_SUCCESS(st) ? MPROC_OK : mproc__os_fail(MPROC_ESYS, (int)st);
}
