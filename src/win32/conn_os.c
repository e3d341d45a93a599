/*
 * Windows transport of the pipes (plat/conn_os.h): one named pipe instance per
 * pair, both ends opened for overlapped I/O, as CPython's
 * multiprocessing.connection.Pipe() does on Windows.
 *
 * Why not CreatePipe(): anonymous pipes cannot do overlapped I/O, so a
 * receive could not time out and nothing could wait on them together with
 * processes (mproc_wait).  A named pipe can, at the price of a name:
 *   - the name is \\.\pipe\mproc-<pid>-<128 random bits>, so nobody can
 *     guess it in advance; FILE_FLAG_FIRST_PIPE_INSTANCE fails if the name
 *     exists (nobody squats it for us) and with one instance allowed the
 *     only client that can ever connect is the one we open right away (if
 *     a stranger raced us to it, our open fails and we try a new name);
 *   - PIPE_REJECT_REMOTE_CLIENTS keeps it off the network; the default
 *     security descriptor limits it to this user (plus SYSTEM and admins).
 * Byte mode, not message mode: frames carry their own length (conn.h), and
 * byte mode has no zero-length messages, which message mode makes awkward
 * to wait for (CPython's _got_empty_message).
 *
 * Waiting (poll, mproc_wait): a zero-byte overlapped ReadFile stays pending
 * until bytes arrive or the peer closes, without consuming anything, and
 * signals its OVERLAPPED event: that event is the handle mproc_wait waits
 * on.  PeekNamedPipe answers "is something there now" without waiting.
 *
 * Timeouts: every read is overlapped; past the deadline CancelIoEx cancels
 * it and GetOverlappedResult(wait) collects what it did (it may have
 * completed meanwhile: then its bytes count).
 *
 * The peer going away shows up as ERROR_BROKEN_PIPE (or ERROR_NO_DATA,
 * ERROR_PIPE_NOT_CONNECTED) on reads and writes: MPROC_EEOF.  Bytes it sent
 * before closing are still read first.
 *
 * TCP connections (mproc__conn_os_wrap of a SOCKET, src/win32/net.c) take
 * the same paths with Winsock's calls where a pipe's do not apply: WSARecv
 * and WSASend (overlapped, on the same events), WSAPoll instead of
 * PeekNamedPipe, a zero-byte WSARecv as the pending "wake me on data"
 * read, and a zero-byte receive is end-of-file.  A socket end cannot be
 * passed to a child (MPROC_ENOTSUP): Winsock wants WSADuplicateSocket.
 */
#include <winsock2.h>
#include <windows.h>

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "w32.h"

/* RtlGenRandom: the CSPRNG behind rand_s, exported by advapi32 under this
 * name (declared here so <ntsecapi.h> and its macros are not needed). */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

#define MPROC__CONN_PIPE_BUF 65536
#define MPROC__CONN_SMALL 4096
#define MPROC__CONN_IO_MAX ((DWORD)1 << 30)

struct mproc__conn_os {
  HANDLE h;        /* the pipe end, overlapped */
  HANDLE ev_read;  /* manual-reset events for the three kinds of I/O */
  HANDLE ev_write;
  HANDLE ev_poll;
  mproc__mutex_t poll_lock; /* ov_poll and poll_pending */
  OVERLAPPED ov_poll;       /* the pending zero-byte read, if any */
  int poll_pending;
  char zero; /* its buffer: must outlive the pending read */
  /* Set by mproc__conn_os_cancel before it cancels.  CancelIoEx only
   * reaches I/O already issued: a read issued just after it would wait to
   * its deadline, so readers look at this once their read is pending. */
  volatile LONG cancelled;
  int sock; /* h is a SOCKET (see the top) */
};

/* Start an overlapped read (or write) of n bytes: TRUE when it completed
 * at once, else FALSE with the error in GetLastError() (ERROR_IO_PENDING
 * when it is under way; WSA_IO_PENDING is the same number). */
static BOOL mproc__conn_w32_start_read(mproc__conn_os *os, void *buf, DWORD n,
                                       OVERLAPPED *ov) {
  WSABUF b;
  DWORD flags = 0;
  if (!os->sock)
    return ReadFile(os->h, buf, n, NULL, ov);
  b.buf = (char *)buf;
  b.len = n;
  return WSARecv((SOCKET)os->h, &b, 1, NULL, &flags, ov, NULL) == 0;
}

static BOOL mproc__conn_w32_start_write(mproc__conn_os *os, const void *buf,
                                        DWORD n, OVERLAPPED *ov) {
  WSABUF b;
  if (!os->sock)
    return WriteFile(os->h, buf, n, NULL, ov);
  b.buf = (char *)(uintptr_t)buf;
  b.len = n;
  return WSASend((SOCKET)os->h, &b, 1, NULL, 0, ov, NULL) == 0;
}

static int mproc__conn_w32_cancelled(mproc__conn_os *os) {
  return InterlockedCompareExchange(&os->cancelled, 0, 0) != 0;
}

static int mproc__conn_w32_fail(DWORD err) {
  switch (err) {
  case ERROR_BROKEN_PIPE:
  case ERROR_NO_DATA:
  case ERROR_PIPE_NOT_CONNECTED:
  case ERROR_HANDLE_EOF:
  case ERROR_NETNAME_DELETED: /* sockets: the peer reset or went away */
  case ERROR_CONNECTION_ABORTED:
  case WSAECONNRESET:
  case WSAECONNABORTED:
  case WSAESHUTDOWN:
    return MPROC_EEOF;
  case ERROR_OPERATION_ABORTED:
  case ERROR_INVALID_HANDLE:
    return MPROC_ECLOSED; /* cancelled (or closed) by mproc_conn_close */
  default:
    return mproc__os_fail(MPROC_ESYS, (int)err);
  }
}

static mproc__conn_os *mproc__conn_w32_new(HANDLE h) {
  mproc__mutex_t init = MPROC__MUTEX_INITIALIZER;
  mproc__conn_os *os = (mproc__conn_os *)calloc(1, sizeof(*os));
  if (!os)
    return NULL;
  os->h = h;
  os->poll_lock = init;
  os->ev_read = CreateEventW(NULL, TRUE, FALSE, NULL);
  os->ev_write = CreateEventW(NULL, TRUE, FALSE, NULL);
  os->ev_poll = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!os->ev_read || !os->ev_write || !os->ev_poll) {
    if (os->ev_read)
      CloseHandle(os->ev_read);
    if (os->ev_write)
      CloseHandle(os->ev_write);
    if (os->ev_poll)
      CloseHandle(os->ev_poll);
    free(os);
    return NULL;
  }
  return os;
}

static void mproc__conn_w32_name(wchar_t *out, size_t cap) {
  static const wchar_t prefix[] = L"\\\\.\\pipe\\mproc-";
  unsigned char rnd[16];
  char hex[17];
  uint64_t r0 = 0, r1 = 0;
  size_t n = 0, i, k;
  for (i = 0; prefix[i]; i++)
    out[n++] = prefix[i];
  mproc__w32_hex((uint64_t)GetCurrentProcessId(), hex);
  for (i = 0; hex[i]; i++)
    out[n++] = (wchar_t)hex[i];
  out[n++] = L'-';
  if (!SystemFunction036(rnd, (ULONG)sizeof rnd)) {
    /* Never expected; still unique (not secret) with the counter below. */
    LARGE_INTEGER t;
    static volatile LONG counter;
    QueryPerformanceCounter(&t);
    r0 = (uint64_t)t.QuadPart;
    r1 = (uint64_t)InterlockedIncrement(&counter);
  } else {
    for (k = 0; k < 8; k++) {
      r0 = r0 << 8 | rnd[k];
      r1 = r1 << 8 | rnd[8 + k];
    }
  }
  for (k = 0; k < 2; k++) {
    uint64_t v = k ? r1 : r0;
    int d;
    /* Fixed width: 16 digits each, 32 in all. */
    for (d = 15; d >= 0; d--) {
      unsigned nib = (unsigned)(v >> (d * 4)) & 15u;
      out[n++] = (wchar_t)(nib < 10 ? L'0' + nib : L'a' + (nib - 10));
    }
  }
  out[n] = 0;
  (void)cap;
}

/* Creates the pipe's single server instance under a fresh name and
 * connects the client end to it (declared in w32.h: captured stdio opens
 * its pipes here too, with a synchronous client, `sync_client`, that a
 * child's C runtime can write to without an OVERLAPPED). */
int mproc__conn_w32_open_pipe(int duplex, int sync_client, HANDLE *server,
                              HANDLE *client) {
  wchar_t name[96];
  DWORD err = 0;
  int tries;
  *server = *client = INVALID_HANDLE_VALUE;
  for (tries = 0; tries < 8; tries++) {
    mproc__conn_w32_name(name, sizeof name / sizeof name[0]);
    *server = CreateNamedPipeW(
        name,
        (duplex ? PIPE_ACCESS_DUPLEX : PIPE_ACCESS_INBOUND) |
            FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
            PIPE_REJECT_REMOTE_CLIENTS,
        1, MPROC__CONN_PIPE_BUF, MPROC__CONN_PIPE_BUF, 0, NULL);
    if (*server == INVALID_HANDLE_VALUE) {
      err = GetLastError();
      if (err == ERROR_ACCESS_DENIED || err == ERROR_PIPE_BUSY)
        continue; /* the name exists: take another */
      return mproc__os_fail(MPROC_ESYS, (int)err);
    }
    /* The one-way client only writes; FILE_READ_ATTRIBUTES lets it ask the
     * pipe's state all the same. */
    *client = CreateFileW(name,
                          duplex ? GENERIC_READ | GENERIC_WRITE
                                 : GENERIC_WRITE | FILE_READ_ATTRIBUTES,
                          0, NULL, OPEN_EXISTING,
                          (sync_client ? 0 : FILE_FLAG_OVERLAPPED) |
                              SECURITY_SQOS_PRESENT | SECURITY_ANONYMOUS,
                          NULL);
    if (*client != INVALID_HANDLE_VALUE)
      return MPROC_OK;
    err = GetLastError();
    CloseHandle(*server);
    *server = INVALID_HANDLE_VALUE;
    if (err != ERROR_PIPE_BUSY)
      return mproc__os_fail(MPROC_ESYS, (int)err);
    /* Someone connected first (the single instance is taken): retry. */
  }
  return mproc__os_fail(MPROC_ESYS, (int)(err ? err : ERROR_PIPE_BUSY));
}

/* The client is already connected; ConnectNamedPipe just confirms it
 * (ERROR_PIPE_CONNECTED).  0, or the Windows error. */
DWORD mproc__conn_w32_confirm(HANDLE server) {
  OVERLAPPED ov;
  DWORD err = 0, n;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!ov.hEvent)
    return GetLastError();
  if (!ConnectNamedPipe(server, &ov)) {
    err = GetLastError();
    if (err == ERROR_IO_PENDING) {
      err = GetOverlappedResult(server, &ov, &n, TRUE) ? 0 : GetLastError();
    } else if (err == ERROR_PIPE_CONNECTED) {
      err = 0;
    }
  }
  CloseHandle(ov.hEvent);
  return err;
}

/* The two connection objects; on failure the pipe's handles stay with
 * the caller. */
static int mproc__conn_w32_wrap(HANDLE server, HANDLE client,
                                mproc__conn_os **a, mproc__conn_os **b) {
  *a = mproc__conn_w32_new(server);
  if (!*a)
    return MPROC_ENOMEM;
  *b = mproc__conn_w32_new(client);
  if (!*b) {
    CloseHandle((*a)->ev_read);
    CloseHandle((*a)->ev_write);
    CloseHandle((*a)->ev_poll);
    free(*a);
    *a = NULL;
    return MPROC_ENOMEM;
  }
  return MPROC_OK;
}

int mproc__conn_os_pair(mproc__conn_os **a, mproc__conn_os **b, int duplex) {
  HANDLE server, client;
  DWORD err;
  int rc;
  *a = *b = NULL;
  rc = mproc__conn_w32_open_pipe(duplex, 0, &server, &client);
  if (rc < 0)
    return rc;
  err = mproc__conn_w32_confirm(server);
  if (err) {
    rc = mproc__os_fail(MPROC_ESYS, (int)err);
    goto finish;
  }
  rc = mproc__conn_w32_wrap(server, client, a, b);
finish:
  if (rc < 0) {
    CloseHandle(server);
    CloseHandle(client);
  }
  return rc;
}

/* ---- writing ------------------------------------------------------------------ */

static int mproc__conn_w32_write_all(mproc__conn_os *os, const unsigned char *p,
                                     size_t n) {
  OVERLAPPED ov;
  DWORD chunk, done;
  while (n > 0) {
    chunk = n > MPROC__CONN_IO_MAX ? MPROC__CONN_IO_MAX : (DWORD)n;
    done = 0;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = os->ev_write;
    if (!mproc__conn_w32_start_write(os, p, chunk, &ov)) {
      DWORD err = GetLastError();
      if (err != ERROR_IO_PENDING)
        return mproc__conn_w32_fail(err);
    }
    /* A send has no time limit: wait until the peer has room for it all
     * (or is gone, which completes the write with ERROR_NO_DATA /
     * ERROR_BROKEN_PIPE). */
    if (!GetOverlappedResult(os->h, &ov, &done, TRUE))
      return mproc__conn_w32_fail(GetLastError());
    if (done == 0)
      return mproc__os_fail(MPROC_ESYS, ERROR_WRITE_FAULT);
    p += done;
    n -= done;
  }
  return MPROC_OK;
}

int mproc__conn_os_write(mproc__conn_os *os, const unsigned char *hdr,
                         size_t hlen, const void *data, size_t len) {
  unsigned char small[MPROC__CONN_SMALL];
  int rc;
  if (hlen + len <= sizeof small) {
    memcpy(small, hdr, hlen);
    if (len)
      memcpy(small + hlen, data, len);
    return mproc__conn_w32_write_all(os, small, hlen + len);
  }
  rc = mproc__conn_w32_write_all(os, hdr, hlen);
  if (rc == MPROC_OK)
    rc = mproc__conn_w32_write_all(os, (const unsigned char *)data, len);
  return rc;
}

/* ---- reading and waiting --------------------------------------------------------- */

/* Wait for `ev` until the deadline; WAIT_OBJECT_0 or WAIT_TIMEOUT (or
 * WAIT_FAILED).  Long deadlines are waited out in slices, as DWORD
 * milliseconds end after ~49 days. */
static DWORD mproc__conn_w32_wait(HANDLE ev, double deadline) {
  DWORD r;
  for (;;) {
    double left = deadline < 0 ? -1.0 : deadline - mproc__plat_now();
    if (deadline >= 0 && left < 0)
      left = 0;
    r = WaitForSingleObject(ev, mproc__w32_ms(left));
    if (r != WAIT_TIMEOUT || (deadline >= 0 && mproc__plat_now() >= deadline))
      return r;
  }
}

int mproc__conn_os_read(mproc__conn_os *os, void *buf, size_t cap,
                        double deadline, size_t *got) {
  OVERLAPPED ov;
  DWORD want = cap > MPROC__CONN_IO_MAX ? MPROC__CONN_IO_MAX : (DWORD)cap;
  DWORD n, w, err;
  *got = 0;
  for (;;) {
    n = 0;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = os->ev_read;
    if (!mproc__conn_w32_start_read(os, buf, want, &ov)) {
      err = GetLastError();
      if (err != ERROR_IO_PENDING)
        return mproc__conn_w32_fail(err);
      /* WAIT_ABANDONED stands for "closed meanwhile": cancel and collect. */
      w = mproc__conn_w32_cancelled(os)
              ? WAIT_ABANDONED
              : mproc__conn_w32_wait(os->ev_read, deadline);
      if (w != WAIT_OBJECT_0)
        CancelIoEx(os->h, &ov);
      /* Collect the read in every case: the OVERLAPPED lives on this stack
       * frame, so the I/O must be over before it returns. */
      if (!GetOverlappedResult(os->h, &ov, &n, TRUE)) {
        err = GetLastError();
        if (err == ERROR_OPERATION_ABORTED && w == WAIT_TIMEOUT)
          return MPROC_ETIMEDOUT;
        if (w == WAIT_FAILED)
          return mproc__os_fail(MPROC_ESYS, (int)err);
        return mproc__conn_w32_fail(err);
      }
    } else if (!GetOverlappedResult(os->h, &ov, &n, FALSE)) {
      return mproc__conn_w32_fail(GetLastError());
    }
    if (n > 0) {
      *got = n;
      return MPROC_OK;
    }
    if (os->sock) /* a socket's zero-byte receive: the peer shut down */
      return MPROC_EEOF;
    /* Zero bytes from a byte-mode pipe should not happen; do not spin past
     * the deadline if it does. */
    if (deadline >= 0 && mproc__plat_now() >= deadline)
      return MPROC_ETIMEDOUT;
  }
}

/* 1 if bytes or end-of-file are there now, 0 if not, or an error. */
static int mproc__conn_w32_peek(mproc__conn_os *os) {
  DWORD avail = 0;
  if (os->sock) {
    WSAPOLLFD p;
    p.fd = (SOCKET)os->h;
    p.events = POLLRDNORM;
    p.revents = 0;
    if (WSAPoll(&p, 1, 0) < 0)
      return mproc__conn_w32_fail((DWORD)WSAGetLastError());
    return p.revents != 0; /* data, end-of-file, or an error to read */
  }
  if (!PeekNamedPipe(os->h, NULL, 0, NULL, &avail, NULL)) {
    int rc = mproc__conn_w32_fail(GetLastError());
    return rc == MPROC_EEOF ? 1 : rc;
  }
  return avail > 0;
}

/* Make sure a zero-byte read is pending on ev_poll (poll_lock held).
 * 1 if the pipe is ready now (no wait needed), 0 if the read is pending,
 * or an error. */
static int mproc__conn_w32_arm(mproc__conn_os *os) {
  DWORD n, err;
  int rc;
  if (os->poll_pending) {
    if (!HasOverlappedIoCompleted(&os->ov_poll))
      return 0;
    /* It completed: bytes came (or the peer left) at some point, perhaps
     * already received since.  Collect it and look again. */
    (void)GetOverlappedResult(os->h, &os->ov_poll, &n, FALSE);
    os->poll_pending = 0;
  }
  rc = mproc__conn_w32_peek(os);
  if (rc != 0)
    return rc;
  memset(&os->ov_poll, 0, sizeof os->ov_poll);
  os->ov_poll.hEvent = os->ev_poll;
  if (mproc__conn_w32_start_read(os, &os->zero, 0, &os->ov_poll))
    return 1;
  err = GetLastError();
  if (err == ERROR_IO_PENDING) {
    os->poll_pending = 1;
    return 0;
  }
  rc = mproc__conn_w32_fail(err);
  return rc == MPROC_EEOF ? 1 : rc;
}

int mproc__conn_os_poll(mproc__conn_os *os, double deadline) {
  int rc = mproc__conn_w32_peek(os);
  if (rc != 0)
    return rc;
  if (deadline >= 0 && mproc__plat_now() >= deadline)
    return 0;
  mproc__mutex_lock(&os->poll_lock);
  rc = mproc__conn_w32_arm(os);
  mproc__mutex_unlock(&os->poll_lock);
  if (rc != 0)
    return rc;
  /* The pending zero-byte read may have been issued after a close's
   * cancel; it is cancelled again when the end is freed. */
  if (mproc__conn_w32_cancelled(os))
    return MPROC_ECLOSED;
  switch (mproc__conn_w32_wait(os->ev_poll, deadline)) {
  case WAIT_OBJECT_0:
    return 1;
  case WAIT_TIMEOUT:
    return 0;
  default:
    return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
  }
}

int mproc__conn_os_wait_handle(mproc__conn_os *os, mproc_handle_t *out,
                               int *ready_now) {
  int rc;
  mproc__mutex_lock(&os->poll_lock);
  rc = mproc__conn_w32_arm(os);
  mproc__mutex_unlock(&os->poll_lock);
  if (rc < 0)
    return rc;
  if (rc == 1)
    *ready_now = 1;
  *out = (mproc_handle_t)os->ev_poll;
  return MPROC_OK;
}

void mproc__conn_os_cancel(mproc__conn_os *os) {
  /* Every pending read, write and zero-byte read this process issued on
   * the handle completes with ERROR_OPERATION_ABORTED. */
  InterlockedExchange(&os->cancelled, 1);
  CancelIoEx(os->h, NULL);
}

/* ---- passing and closing ------------------------------------------------------------ */

HANDLE mproc__w32_conn_handle(const mproc__conn_os *os) { return os->h; }

size_t mproc__conn_os_nhandles(unsigned dir) {
  (void)dir;
  return 1;
}

int mproc__conn_os_export(const mproc__conn_os *os, unsigned dir,
                          mproc__handles *hs) {
  (void)dir;
  if (os->sock)
    return MPROC_ENOTSUP; /* see the top */
  /* The file object keeps FILE_FLAG_OVERLAPPED, so the child's duplicate
   * is overlapped too. */
  return mproc__handles_push(hs, (mproc_handle_t)os->h);
}

int mproc__conn_os_import(const mproc_handle_t *hs, size_t nh, unsigned dir,
                          mproc__conn_os **out) {
  size_t i;
  int ok = dir >= 1 && dir <= 3 && hs && nh == 1 && mproc__w32_valid(hs[0]);
  *out = ok ? mproc__conn_w32_new((HANDLE)hs[0]) : NULL;
  if (!*out) {
    for (i = 0; hs && i < nh; i++)
      if (mproc__w32_valid(hs[i]))
        CloseHandle((HANDLE)hs[i]);
    return ok ? MPROC_ENOMEM : MPROC_EINVAL;
  }
  return MPROC_OK;
}

void mproc__conn_os_close(mproc__conn_os *os) {
  DWORD n;
  if (!os)
    return;
  if (os->poll_pending) {
    /* The kernel writes into ov_poll until the read is over: finish it
     * before the memory goes. */
    CancelIoEx(os->h, &os->ov_poll);
    (void)GetOverlappedResult(os->h, &os->ov_poll, &n, TRUE);
  }
  if (os->sock)
    closesocket((SOCKET)os->h);
  else
    CloseHandle(os->h);
  CloseHandle(os->ev_read);
  CloseHandle(os->ev_write);
  CloseHandle(os->ev_poll);
  free(os);
}

int mproc__conn_os_wrap(mproc_handle_t h, mproc__conn_os **out) {
  int type = 0, len = (int)sizeof type;
  /* A SOCKET answers SO_TYPE; a pipe handle fails (WSAENOTSOCK). */
  int sock = getsockopt((SOCKET)h, SOL_SOCKET, SO_TYPE, (char *)&type,
                        &len) == 0;
  *out = mproc__conn_w32_new((HANDLE)h);
  if (!*out) {
    if (sock)
      closesocket((SOCKET)h);
    else
      CloseHandle((HANDLE)h);
    return MPROC_ENOMEM;
  }
  (*out)->sock = sock;
  return MPROC_OK;
}

/* No ring on Windows yet: pipes keep their overlapped I/O path. */
int mproc__conn_os_ring_check(mproc__conn_os *os) {
  (void)os;
  return MPROC_ENOTSUP;
}

void mproc__conn_os_yield(void) { (void)SwitchToThread(); }
