/* Windows backend, the child's side of spawn: read the bootstrap from the
 * inherited pipe, check the handles the parent gave, watch for interrupt()
 * and for the parent's end. */
#include <windows.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "w32.h"

/* How long a child waits for its bootstrap without receiving a byte.  A
 * real parent writes it right after ResumeThread; the limit only matters
 * when the flag was forged and names a pipe nobody writes to. */
#define MPROC__W32_BS_STALL_MS 60000u

static const char mproc__w32_not_ours[] =
    MPROC__W32_FLAG
    "... is internal to mproc; this process was not started by an mproc "
    "parent";

/* Parses the hexadecimal handle value after the flag: digits only (an
 * optional 0x), at most 16 of them, not zero. */
static int mproc__w32_parse_handle(const char *s, uint64_t *out) {
  uint64_t v = 0;
  int digits = 0, d;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    s += 2;
  for (; *s; s++) {
    if (*s >= '0' && *s <= '9')
      d = *s - '0';
    else if (*s >= 'a' && *s <= 'f')
      d = *s - 'a' + 10;
    else if (*s >= 'A' && *s <= 'F')
      d = *s - 'A' + 10;
    else
      return -1;
    if (++digits > 16)
      return -1;
    v = (v << 4) | (uint64_t)d;
  }
  if (digits == 0 || v == 0)
    return -1;
#if UINTPTR_MAX < UINT64_MAX
  /* A 32-bit process has 32-bit handle values; a larger one is not ours. */
  if (v > (uint64_t)UINTPTR_MAX)
    return -1;
#endif
  *out = v;
  return 0;
}

/* Reads exactly `len` bytes.  The parent made the pipe with mproc's pipe
 * transport (a named pipe opened for overlapped I/O, src/win32/conn_os.c),
 * so each read is an overlapped ReadFile that blocks in the kernel until
 * bytes arrive, the write end closes (the parent closed it or died), or
 * MPROC__W32_BS_STALL_MS pass without a byte; then CancelIoEx ends it (in
 * mproc__conn_os_read).  A pipe opened for synchronous I/O (CreatePipe)
 * is read as well, but its ReadFile ignores the OVERLAPPED and blocks until
 * data or end-of-file; only the process that created this one can hand
 * over such a pipe (mproc__w32_check_sender), and that process can stall
 * its child in many other ways.  Returns 0, or -1 with the reason in `why`
 * (a Windows error, or 0 for end of data, or WAIT_TIMEOUT for the stall). */
static int mproc__w32_read_exact(mproc__conn_os *in, unsigned char *buf,
                                 size_t len, DWORD *why) {
  size_t got = 0, n;
  int rc;
  while (got < len) {
    /* The limit is on silence, not on the whole message: a large
     * bootstrap streamed by a busy parent keeps making progress. */
    rc = mproc__conn_os_read(in, buf + got, len - got,
                             mproc__plat_now() +
                                 MPROC__W32_BS_STALL_MS / 1000.0,
                             &n);
    if (rc < 0) {
      *why = rc == MPROC_EEOF       ? 0
             : rc == MPROC_ETIMEDOUT ? WAIT_TIMEOUT
             : rc == MPROC_ESYS      ? (DWORD)mproc_os_error()
                                     : ERROR_OPERATION_ABORTED;
      return -1;
    }
    got += n;
  }
  return 0;
}

static void mproc__w32_read_fail(char *err, size_t errlen, uint64_t hv,
                                 const char *what, DWORD why) {
  char sys[256], hexv[17];
  mproc__w32_hex(hv, hexv);
  if (why == 0)
    snprintf(sys, sizeof(sys), "the parent closed the pipe early");
  else if (why == WAIT_TIMEOUT)
    snprintf(sys, sizeof(sys), "nothing arrived for %u s",
             MPROC__W32_BS_STALL_MS / 1000u);
  else
    mproc__w32_strerror(why, sys, sizeof(sys));
  snprintf(err, errlen, "bootstrap pipe 0x%s: %s (%s)",
           hexv, what, sys);
}

/* ProcessBasicInformation as ntdll fills it; the documented winternl.h
 * names the creator's pid Reserved3, so the layout is spelled out here. */
typedef struct mproc__w32_pbi {
  PVOID exit_status;
  PVOID peb;
  PVOID affinity_and_priority[2];
  ULONG_PTR pid;
  ULONG_PTR creator_pid; /* InheritedFromUniqueProcessId */
} mproc__w32_pbi;

typedef LONG(WINAPI *mproc__w32_nqip_fn)(HANDLE, int, PVOID, ULONG, PULONG);

/* The pid of the process that created this one (its CreateProcess caller),
 * which Windows records at creation and never changes: 0 when unknown. */
static DWORD mproc__w32_creator_pid(void) {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  FARPROC f = ntdll ? GetProcAddress(ntdll, "NtQueryInformationProcess") : NULL;
  mproc__w32_nqip_fn nqip;
  mproc__w32_pbi pbi;
  ULONG got = 0;
  if (!f)
    return 0;
  /* Through void (*)(void), which GCC's -Wcast-function-type documents as
   * matching every function type: the cast is meant. */
  nqip = (mproc__w32_nqip_fn)(void (*)(void))f;
  memset(&pbi, 0, sizeof(pbi));
  if (nqip(GetCurrentProcess(), 0 /* ProcessBasicInformation */, &pbi,
           (ULONG)sizeof(pbi), &got) < 0)
    return 0;
  return (DWORD)pbi.creator_pid;
}

/* Who sent the bootstrap, attested by the system rather than claimed in
 * it: the pipe's two ends must both have been made by the process that
 * created this one.  CreatePipe makes the read end as a pipe server and
 * opens the write end as its client, both in the caller, and the pipe file
 * system records each pid; a forger's pipe carries the forger's pid, and
 * only a process that may duplicate handles into the parent (which gives
 * it full control of the parent anyway) could plant one there. */
static int mproc__w32_check_sender(HANDLE h, const char *hexv,
                                   int64_t *sender, char *err,
                                   size_t errlen) {
  DWORD creator = mproc__w32_creator_pid();
  ULONG server = 0, client = 0;
  char sys[256];
  if (creator == 0) {
    snprintf(err, errlen,
             "bootstrap refused: cannot learn which process created this one");
    return MPROC_ESPAWN;
  }
  if (!GetNamedPipeServerProcessId(h, &server) ||
      !GetNamedPipeClientProcessId(h, &client)) {
    mproc__w32_strerror(GetLastError(), sys, sizeof(sys));
    snprintf(err, errlen,
             "bootstrap refused: cannot learn who made pipe 0x%s (%s)", hexv,
             sys);
    return MPROC_ESPAWN;
  }
  if (server != creator || client != creator) {
    snprintf(err, errlen,
             "bootstrap refused: pipe 0x%s was made by process %lu (write "
             "end: process %lu), not by process %lu that created this one",
             hexv, (unsigned long)server, (unsigned long)client,
             (unsigned long)creator);
    return MPROC_ESPAWN;
  }
  *sender = (int64_t)creator;
  return MPROC_OK;
}

/* Turns the flag's value into the bootstrap pipe's handle, refusing one
 * that cannot be ours. */
static int mproc__w32_bootstrap_handle(const char *value, uint64_t *hv,
                                       char hexv[17], HANDLE *h, char *err,
                                       size_t errlen) {
  DWORD flags;
  char sys[256];
  if (mproc__w32_parse_handle(value, hv) < 0) {
    snprintf(err, errlen, "%s (\"%.40s\" is not a handle value)",
             mproc__w32_not_ours, value);
    return MPROC_ESPAWN;
  }
  *h = (HANDLE)(uintptr_t)*hv;
  mproc__w32_hex(*hv, hexv);
  /* A hand-typed value may name nothing, or some unrelated handle the
   * process happens to own (the console, a DLL's event).  Only a pipe can be
   * ours; anything else is refused before a byte is read from it. */
  if (!GetHandleInformation(*h, &flags)) {
    mproc__w32_strerror(GetLastError(), sys, sizeof(sys));
    snprintf(err, errlen, "%s (handle 0x%s: %s)", mproc__w32_not_ours,
             hexv, sys);
    return MPROC_ESPAWN;
  }
  if (GetFileType(*h) != FILE_TYPE_PIPE) {
    snprintf(err, errlen, "%s (handle 0x%s is not a pipe)",
             mproc__w32_not_ours, hexv);
    return MPROC_ESPAWN;
  }
  return MPROC_OK;
}

/* Reads the whole bootstrap message: its header, then the length the
 * header gives. */
static int mproc__w32_read_bootstrap_msg(mproc__conn_os *in, uint64_t hv,
                                         const char *hexv, unsigned char **buf,
                                         size_t *len, char *err,
                                         size_t errlen) {
  unsigned char hdr[MPROC__BS_HEADER];
  unsigned char *msg;
  size_t total;
  DWORD why = 0;
  if (mproc__w32_read_exact(in, hdr, sizeof(hdr), &why) < 0) {
    mproc__w32_read_fail(err, errlen, hv, "no bootstrap header", why);
    return MPROC_ESPAWN;
  }
  if (mproc__bootstrap_peek_len(hdr, &total) < 0) {
    snprintf(err, errlen,
             "damaged bootstrap from the parent process (bad header on "
             "handle 0x%s: not an mproc bootstrap, or one from another "
             "mproc version)",
             hexv);
    return MPROC_ESPAWN;
  }
  msg = (unsigned char *)malloc(total);
  if (!msg) {
    snprintf(err, errlen, "out of memory for a %lu-byte bootstrap",
             (unsigned long)total);
    return MPROC_ENOMEM;
  }
  memcpy(msg, hdr, sizeof(hdr));
  if (mproc__w32_read_exact(in, msg + sizeof(hdr), total - sizeof(hdr), &why) <
      0) {
    free(msg);
    mproc__w32_read_fail(err, errlen, hv, "truncated bootstrap", why);
    return MPROC_ESPAWN;
  }
  *buf = msg;
  *len = total;
  return MPROC_OK;
}

int mproc__plat_read_bootstrap(int argc, char **argv, unsigned char **buf,
                               size_t *len, int64_t *sender, char *err,
                               size_t errlen) {
  const char *value;
  uint64_t hv;
  HANDLE h;
  mproc_handle_t hs;
  mproc__conn_os *in = NULL;
  char hexv[17];
  int rc;

  *buf = NULL;
  *len = 0;
  *sender = 0;
  /* Every form of the flag counts, the bare one included: typed by hand it
   * must be refused, not run main() as if it were an ordinary argument. */
  value = argc < 2 || !argv ? NULL : mproc__bootstrap_flag_value(argv[1]);
  if (!value)
    return 0;
  rc = mproc__w32_bootstrap_handle(value, &hv, hexv, &h, err, errlen);
  if (rc < 0)
    return rc;

  /* On the error paths below the handle is left open: it may be a forged
   * value naming a pipe this process owns for another purpose, and the
   * process is about to exit anyway. */
  if (mproc__w32_check_sender(h, hexv, sender, err, errlen) < 0)
    return MPROC_ESPAWN;
  /* From here the pipe is the parent's, and the transport owns it. */
  hs = (mproc_handle_t)h;
  rc = mproc__conn_os_import(&hs, 1, MPROC__CONN_R, &in);
  if (rc < 0) {
    snprintf(err, errlen, "bootstrap pipe 0x%s: %s", hexv,
             mproc_strerror(rc));
    return rc;
  }
  rc = mproc__w32_read_bootstrap_msg(in, hv, hexv, buf, len, err, errlen);
  mproc__conn_os_close(in);
  return rc < 0 ? rc : 1;
}

/* ---- interrupt() --------------------------------------------------------- */

/* Windows cannot send a signal to another process (GenerateConsoleCtrlEvent
 * reaches a whole console process group, not one child), so interrupt() sets
 * an auto-reset event this thread waits on, and the thread delivers SIGINT
 * the way the C runtime would. */
static DWORD WINAPI mproc__w32_interrupt_watcher(LPVOID arg) {
  HANDLE ev = (HANDLE)arg;
  void (*prev)(int);
  for (;;) {
    if (WaitForSingleObject(ev, INFINITE) != WAIT_OBJECT_0)
      return 1; /* the handle went bad: stop watching rather than spin */
    /* signal() is the only portable way to read the current handler; the
     * brief SIG_IGN window only matters for a second interrupt arriving in
     * the same microsecond. */
    prev = signal(SIGINT, SIG_IGN);
    signal(SIGINT, prev);
    if (prev == SIG_IGN)
      continue;
    if (prev == SIG_DFL || prev == SIG_ERR) {
      /* The CRT's default SIGINT action is _exit(3) (MSDN, "signal"), which
       * the parent could not tell from a normal exit.  Ending with
       * 0x10000+2 lets the parent report -2, as a POSIX SIGINT death. */
      TerminateProcess(GetCurrentProcess(), MPROC__W32_EXIT_INT);
      return 0;
    }
    /* The user's handler runs on this thread, as Windows runs Ctrl+C
     * handlers on a thread of their own.  The CRT resets SIGINT to SIG_DFL
     * before calling it (MSDN, "signal"), as SysV signal() does: a handler
     * that wants the next interrupt too re-installs itself. */
    raise(SIGINT);
  }
}

int mproc__plat_child_setup(const struct mproc__bootstrap *bs, char *err,
                            size_t errlen) {
  uint32_t i;
  HANDLE h, th;
  char sys[256], hexv[17];
  /* A grandchild must not get these unless they are passed again (DESIGN.md
   * pitfall 1).  The parent duplicates them into this process already
   * non-inheritable (see spawn), so this normally changes nothing; it keeps
   * the rule whichever way they arrived, and it is also the check that each
   * value the bootstrap names is a handle this process really holds. */
  for (i = 0; i < bs->nhandles; i++) {
    h = (HANDLE)(uintptr_t)bs->handles[i];
    if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0)) {
      mproc__w32_strerror(GetLastError(), sys, sizeof(sys));
      mproc__w32_hex(bs->handles[i], hexv);
      snprintf(err, errlen, "passed handle 0x%s: %s",
               hexv, sys);
      return MPROC_ESPAWN;
    }
  }
  if (bs->interrupt_handle != 0) {
    h = (HANDLE)(uintptr_t)bs->interrupt_handle;
    if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0)) {
      mproc__w32_strerror(GetLastError(), sys, sizeof(sys));
      mproc__w32_hex(bs->interrupt_handle, hexv);
      snprintf(err, errlen, "interrupt event 0x%s: %s",
               hexv, sys);
      return MPROC_ESPAWN;
    }
    /* The thread only blocks; ExitProcess ends it with the process, so it
     * needs no shutdown and its handle is closed at once.  A small stack:
     * it calls nothing but the user's SIGINT handler. */
    th = CreateThread(NULL, 64 * 1024, mproc__w32_interrupt_watcher, h,
                      STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    if (!th) {
      mproc__w32_strerror(GetLastError(), sys, sizeof(sys));
      snprintf(err, errlen, "cannot start the interrupt watcher: %s",
               sys);
      return MPROC_ESPAWN;
    }
    CloseHandle(th);
  }
  return MPROC_OK;
}

int mproc__plat_arm_daemon(int64_t parent_pid) {
  /* The parent put this process in a job object with
   * JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE before it ever ran (see spawn), so
   * there is nothing left to arm, and no window in which the parent could
   * die unnoticed. */
  (void)parent_pid;
  return MPROC_OK;
}

/* ---- the parent watch ----------------------------------------------------- */

int mproc__plat_watch_parent(mproc__plat_parent *w, int64_t parent_pid,
                             uint64_t parent_handle) {
  HANDLE h;
  w->pid = parent_pid;
  w->process = NULL;
  if (parent_handle != 0) {
    h = (HANDLE)(uintptr_t)parent_handle;
    /* Not for grandchildren (already so when the parent duplicated it in). */
    if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0))
      return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
    w->process = h;
    return MPROC_OK;
  }
  /* No handle from the parent (not a Windows mproc parent): opening by pid
   * is the fallback.  A pid can be reused once its process is gone and all
   * handles to it are closed, so this may watch a stranger; a failure means
   * the parent is already gone, and the watch then reports it ended. */
  if (parent_pid > 0 && parent_pid <= (int64_t)0xffffffffu)
    w->process = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)parent_pid);
  return MPROC_OK;
}

int mproc__plat_parent_alive(mproc__plat_parent *parent) {
  if (!parent->process)
    return 0;
  return WaitForSingleObject((HANDLE)parent->process, 0) == WAIT_TIMEOUT;
}

int mproc__plat_parent_wait(mproc__plat_parent *parent, double timeout) {
  HANDLE h = (HANDLE)parent->process;
  DWORD r;
  if (!h)
    return MPROC_OK;
  r = mproc__w32_wait_any(1, &h, timeout);
  if (r == WAIT_OBJECT_0)
    return MPROC_OK;
  if (r == WAIT_TIMEOUT)
    return MPROC_ETIMEDOUT;
  return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
}

mproc_handle_t mproc__plat_parent_sentinel(mproc__plat_parent *parent) {
  return parent->process ? (mproc_handle_t)parent->process
                         : MPROC_INVALID_HANDLE;
}
