/* A captured stream's pipe on Windows (plat/capture.h): a one-way named
 * pipe made like the connections' (src/win32/conn_os.c), whose client end,
 * the child's stdout or stderr, is synchronous (a C runtime writes with
 * plain WriteFile) and whose server end, ours, reads overlapped, so that
 * "read what is there now" never blocks (an anonymous pipe's ReadFile
 * would, and PeekNamedPipe alone cannot tell a reader thread that took
 * the last bytes from one about to append them).
 *
 * One read at a time is in flight into `chunk`.  Its event is signaled
 * whenever no read is in flight (created signaled; ReadFile resets it,
 * completion sets it), so a waiter needs no flag that another thread may
 * be changing: it waits for the event (or the wake event). */
#include <windows.h>

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "w32.h"

#define MPROC__CAP_CHUNK 65536

struct mproc__cap_pipe {
  HANDLE r;    /* our end: the pipe's server, overlapped */
  HANDLE wake; /* set by mproc__cap_pipe_wake */
  OVERLAPPED ov;
  int pending; /* a ReadFile into chunk was issued and not yet collected */
  int eof;
  unsigned char chunk[MPROC__CAP_CHUNK];
};

static int mproc__cap_w32_fail(mproc__cap_pipe *cp, DWORD err) {
  if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED ||
      err == ERROR_NO_DATA || err == ERROR_HANDLE_EOF) {
    cp->eof = 1;
    return MPROC_EEOF;
  }
  return mproc__os_fail(MPROC_ESYS, (int)err);
}

int mproc__cap_pipe_open(mproc__cap_pipe **out, mproc_handle_t *w) {
  mproc__cap_pipe *cp = (mproc__cap_pipe *)calloc(1, sizeof(*cp));
  HANDLE client = INVALID_HANDLE_VALUE;
  DWORD err;
  int rc;
  *out = NULL;
  *w = MPROC_INVALID_HANDLE;
  if (!cp)
    return MPROC_ENOMEM;
  cp->r = INVALID_HANDLE_VALUE;
  cp->wake = CreateEventW(NULL, TRUE, FALSE, NULL);
  cp->ov.hEvent = CreateEventW(NULL, TRUE, TRUE, NULL);
  if (!cp->wake || !cp->ov.hEvent) {
    rc = mproc__w32_map_error(GetLastError());
    goto finish;
  }
  rc = mproc__conn_w32_open_pipe(0, 1, &cp->r, &client);
  if (rc < 0)
    goto finish;
  if ((err = mproc__conn_w32_confirm(cp->r)) != 0) {
    rc = mproc__os_fail(MPROC_ESYS, (int)err);
    goto finish;
  }
  *w = (mproc_handle_t)client;
  client = INVALID_HANDLE_VALUE;
  *out = cp;
  cp = NULL;
finish:
  if (client != INVALID_HANDLE_VALUE)
    CloseHandle(client);
  mproc__cap_pipe_close(cp);
  return rc;
}

int mproc__cap_pipe_wait(mproc__cap_pipe *cp) {
  HANDLE h[2];
  h[0] = cp->wake;
  h[1] = cp->ov.hEvent;
  return mproc__w32_wait_any(2, h, -1.0) == WAIT_OBJECT_0 + 1;
}

int mproc__cap_pipe_read(mproc__cap_pipe *cp, const unsigned char **data,
                         size_t *got) {
  DWORD n = 0;
  int tries;
  *data = cp->chunk;
  *got = 0;
  /* A completed read of 0 bytes carries nothing: issue the next one (a
   * few times at most, so a writer of empty writes cannot hold us). */
  for (tries = 0; tries < 8 && !cp->eof; tries++) {
    if (!cp->pending) {
      if (!ReadFile(cp->r, cp->chunk, MPROC__CAP_CHUNK, NULL, &cp->ov) &&
          GetLastError() != ERROR_IO_PENDING)
        return mproc__cap_w32_fail(cp, GetLastError());
      cp->pending = 1; /* done at once or not: collected below */
    }
    if (!GetOverlappedResult(cp->r, &cp->ov, &n, FALSE)) {
      DWORD err = GetLastError();
      if (err == ERROR_IO_INCOMPLETE)
        return MPROC_OK; /* nothing now */
      cp->pending = 0;
      if (err == ERROR_OPERATION_ABORTED)
        continue; /* cancelled by mproc__cap_pipe_settle: read again */
      return mproc__cap_w32_fail(cp, err);
    }
    cp->pending = 0;
    if (n > 0) {
      *got = n;
      return MPROC_OK;
    }
  }
  return cp->eof ? MPROC_EEOF : MPROC_OK;
}

size_t mproc__cap_pipe_avail(mproc__cap_pipe *cp) {
  DWORD n = 0;
  size_t total = 0;
  if (cp->pending && HasOverlappedIoCompleted(&cp->ov))
    total += (size_t)cp->ov.InternalHigh; /* taken, not yet collected */
  if (PeekNamedPipe(cp->r, NULL, 0, NULL, &n, NULL))
    total += n;
  return total;
}

void mproc__cap_pipe_settle(mproc__cap_pipe *cp) {
  DWORD n = 0;
  if (!cp->pending || HasOverlappedIoCompleted(&cp->ov))
    return;
  /* Completed with the bytes it took, or cancelled with none (they stay
   * in the pipe for PeekNamedPipe): either way it is over after the wait. */
  (void)CancelIoEx(cp->r, &cp->ov);
  (void)GetOverlappedResult(cp->r, &cp->ov, &n, TRUE);
}

void mproc__cap_pipe_wake(mproc__cap_pipe *cp) { SetEvent(cp->wake); }

static void mproc__cap_pipe_forget(mproc__cap_pipe *cp) {
  if (!cp)
    return;
  if (cp->r != INVALID_HANDLE_VALUE)
    CloseHandle(cp->r);
  if (cp->wake)
    CloseHandle(cp->wake);
  if (cp->ov.hEvent)
    CloseHandle(cp->ov.hEvent);
  cp->r = INVALID_HANDLE_VALUE;
  cp->wake = cp->ov.hEvent = NULL;
}

void mproc__cap_pipe_close(mproc__cap_pipe *cp) {
  if (!cp)
    return;
  /* The kernel writes into chunk until the read is over: end it before
   * the memory goes. */
  mproc__cap_pipe_settle(cp);
  mproc__cap_pipe_forget(cp);
  free(cp);
}
