/* Windows backend, the parent's side: start the own executable again with
 * CreateProcessW, hand it exactly the handles it needs, deliver the
 * bootstrap, then wait for, signal and reap it through its process handle. */
#include <windows.h>

#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "internal.h"
#include "w32.h"

/* ---- the daemon job ------------------------------------------------------ */

/* Daemonic children must die with their parent whatever way it ends,
 * TerminateProcess included, where no atexit code runs.  A job object with
 * JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE kills every process in it when its last
 * handle closes, and the system closes a process's handles when it ends.  The
 * one handle is never inheritable and never closed, so it lives exactly as
 * long as this process.  Without JOB_OBJECT_LIMIT_BREAKAWAY_OK the
 * grandchildren are caught too.  Windows 8 allows a process in a job (a CI
 * runner, a terminal) to be put in a nested one, hence _WIN32_WINNT 0x0602
 * (set in CMakeLists.txt). */
static INIT_ONCE mproc__w32_job_once = INIT_ONCE_STATIC_INIT;
static HANDLE mproc__w32_job;
static DWORD mproc__w32_job_error;

static BOOL CALLBACK mproc__w32_job_init(PINIT_ONCE once, PVOID param,
                                         PVOID *ctx) {
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info;
  HANDLE job;
  (void)once;
  (void)param;
  (void)ctx;
  job = CreateJobObjectW(NULL, NULL);
  if (!job) {
    mproc__w32_job_error = GetLastError();
    return TRUE; /* remembered: every daemon spawn reports the same error */
  }
  memset(&info, 0, sizeof(info));
  info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &info,
                               sizeof(info))) {
    mproc__w32_job_error = GetLastError();
    CloseHandle(job);
    return TRUE;
  }
  mproc__w32_job = job;
  return TRUE;
}

static HANDLE mproc__w32_daemon_job(DWORD *err) {
  /* InitOnceExecuteOnce makes concurrent first spawns create one job. */
  if (!InitOnceExecuteOnce(&mproc__w32_job_once, mproc__w32_job_init, NULL,
                           NULL)) {
    *err = GetLastError();
    return NULL;
  }
  *err = mproc__w32_job_error;
  return mproc__w32_job;
}

/* ---- helpers ------------------------------------------------------------- */

/* An inheritable duplicate with the same access.  The original keeps its
 * flag: setting HANDLE_FLAG_INHERIT on it instead would let any other
 * thread's CreateProcess(bInheritHandles=TRUE) without a handle list pick it
 * up for as long as it lives; the duplicate is closed right after the spawn. */
static int mproc__w32_dup_inheritable(HANDLE h, HANDLE *out) {
  return DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), out, 0,
                         TRUE, DUPLICATE_SAME_ACCESS)
             ? 0
             : -1;
}

static void mproc__w32_close(HANDLE *h) {
  if (mproc__w32_valid(*h))
    CloseHandle(*h);
  *h = NULL;
}

/* `"C:\path\prog.exe" --mproc-spawn=1c` in UTF-16.  The quoting rules are
 * those of CommandLineToArgvW and the C runtime (mproc__quote_arg).  The
 * path also goes to lpApplicationName, which is what Windows runs, so argv[0]
 * only has to parse as one argument: a path with unpaired surrogates that
 * UTF-8 cannot carry becomes U+FFFD there and nothing breaks. */
static wchar_t *mproc__w32_command_line(const wchar_t *exe, HANDLE bs_read) {
  char *utf8 = NULL, *line = NULL;
  wchar_t *wline = NULL;
  char hex[17];
  int n8, nw;
  size_t qlen, flag_len = sizeof(MPROC__W32_FLAG) - 1, total;

  n8 = WideCharToMultiByte(CP_UTF8, 0, exe, -1, NULL, 0, NULL, NULL);
  if (n8 <= 0)
    return NULL;
  utf8 = (char *)malloc((size_t)n8);
  if (!utf8) {
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
    goto finish;
  }
  if (WideCharToMultiByte(CP_UTF8, 0, exe, -1, utf8, n8, NULL, NULL) != n8)
    goto finish;
  qlen = mproc__quote_arg(utf8, NULL, 0);
  mproc__w32_hex((uint64_t)(uintptr_t)bs_read, hex);
  total = qlen + 1 + flag_len + strlen(hex) + 1;
  line = (char *)malloc(total);
  if (!line) {
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
    goto finish;
  }
  mproc__quote_arg(utf8, line, qlen + 1);
  line[qlen] = ' ';
  memcpy(line + qlen + 1, MPROC__W32_FLAG, flag_len);
  memcpy(line + qlen + 1 + flag_len, hex, strlen(hex) + 1);
  nw = MultiByteToWideChar(CP_UTF8, 0, line, -1, NULL, 0);
  if (nw <= 0)
    goto finish;
  wline = (wchar_t *)malloc((size_t)nw * sizeof(wchar_t));
  if (!wline) {
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
  } else if (MultiByteToWideChar(CP_UTF8, 0, line, -1, wline, nw) != nw) {
    free(wline);
    wline = NULL;
  }
finish:
  free(utf8);
  free(line);
  return wline;
}

/* UTF-8 to a malloc'ed UTF-16 string, or NULL (last error set). */
static wchar_t *mproc__w32_wide(const char *s) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  wchar_t *w;
  if (n <= 0)
    return NULL;
  w = (wchar_t *)malloc((size_t)n * sizeof(*w));
  if (!w)
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
  else if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) !=
           n) {
    free(w);
    w = NULL;
  }
  return w;
}

/* UTF-16 to a malloc'ed UTF-8 string, or NULL. */
static char *mproc__w32_narrow(const wchar_t *w) {
  int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
  char *s;
  if (n <= 0)
    return NULL;
  s = (char *)malloc((size_t)n);
  if (s && WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL) != n) {
    free(s);
    s = NULL;
  }
  return s;
}

int mproc__plat_check_dir(const char *path) {
  wchar_t *w = mproc__w32_wide(path);
  DWORD attrs;
  if (!w)
    return mproc__os_fail(MPROC_ESPAWN, (int)GetLastError());
  attrs = GetFileAttributesW(w);
  free(w);
  if (attrs == INVALID_FILE_ATTRIBUTES)
    return mproc__os_fail(MPROC_ESPAWN, (int)GetLastError());
  if (!(attrs & FILE_ATTRIBUTE_DIRECTORY))
    return mproc__os_fail(MPROC_ESPAWN, ERROR_DIRECTORY);
  return MPROC_OK;
}

mproc_handle_t mproc__plat_open_stdio(int stream, const char *path, int append,
                                      int *os_error) {
  wchar_t *w = mproc__w32_wide(path ? path : "NUL");
  DWORD access = stream == 0 ? GENERIC_READ
                 : append    ? FILE_APPEND_DATA | SYNCHRONIZE
                             : GENERIC_WRITE;
  DWORD disp = stream == 0 ? OPEN_EXISTING : append ? OPEN_ALWAYS : CREATE_ALWAYS;
  HANDLE h;
  if (!path) {
    access = GENERIC_READ | GENERIC_WRITE;
    disp = OPEN_EXISTING;
  }
  if (!w) {
    *os_error = (int)GetLastError();
    return MPROC_INVALID_HANDLE;
  }
  /* Not inheritable: the spawn passes a copy through the handle list. */
  h = CreateFileW(w, access, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, disp,
                  FILE_ATTRIBUTE_NORMAL, NULL);
  *os_error = h == INVALID_HANDLE_VALUE ? (int)GetLastError() : 0;
  free(w);
  return h == INVALID_HANDLE_VALUE ? MPROC_INVALID_HANDLE : (mproc_handle_t)h;
}

/* This process's environment as UTF-8 "NAME=VALUE" strings (a malloc'ed
 * NULL-terminated array of malloc'ed strings), less everything but
 * SystemRoot when `clear`: system DLLs (Winsock among them) fail to load
 * without it, so an "empty" Windows environment keeps that one. */
static char **mproc__w32_env_base(int clear) {
  wchar_t *block = GetEnvironmentStringsW(), *e;
  size_t n = 0, k = 0;
  char **out = NULL;
  if (!block)
    return NULL;
  for (e = block; *e; e += wcslen(e) + 1)
    n++;
  out = (char **)calloc(n + 1, sizeof(*out));
  for (e = block; out && *e; e += wcslen(e) + 1) {
    if (clear && _wcsnicmp(e, L"SystemRoot=", 11) != 0)
      continue;
    if (!(out[k++] = mproc__w32_narrow(e)))
      k--; /* not representable: left out */
  }
  FreeEnvironmentStringsW(block);
  return out;
}

static void mproc__w32_free_strings(char **v) {
  size_t i;
  for (i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}

/* Windows wants the block sorted by name, without case (CreateProcess,
 * "Changing Environment Variables"). */
static int mproc__w32_env_cmp(const void *a, const void *b) {
  return _wcsicmp(*(wchar_t *const *)a, *(wchar_t *const *)b);
}

/* The UTF-16 environment block of a child of p (sorted, ending in two
 * NULs), or NULL with *rc set (MPROC_OK: p keeps ours). */
static wchar_t *mproc__w32_env_block(const struct mproc_process *p, int *rc) {
  char **base = NULL, **merged = NULL;
  wchar_t **wide = NULL, *block = NULL;
  size_t n = 0, i, total = 1, at = 0;
  *rc = MPROC_OK;
  if (!mproc__env_changed(p))
    return NULL;
  *rc = MPROC_ENOMEM;
  if (!(base = mproc__w32_env_base(p->env_clear)) ||
      !(merged = mproc__env_merge(base, p->env, 1)))
    goto finish;
  while (merged[n])
    n++;
  if (!(wide = (wchar_t **)calloc(n + 1, sizeof(*wide))))
    goto finish;
  for (i = 0; i < n; i++) {
    if (!(wide[i] = mproc__w32_wide(merged[i]))) {
      *rc = MPROC_EINVAL; /* not UTF-8 */
      goto finish;
    }
    total += wcslen(wide[i]) + 1;
  }
  qsort(wide, n, sizeof(*wide), mproc__w32_env_cmp);
  if (!(block = (wchar_t *)malloc((total + 1) * sizeof(*block))))
    goto finish;
  for (i = 0; i < n; i++) {
    memcpy(block + at, wide[i], (wcslen(wide[i]) + 1) * sizeof(*block));
    at += wcslen(wide[i]) + 1;
  }
  block[at++] = 0;
  block[at] = 0; /* an empty block still needs its two NULs */
  *rc = MPROC_OK;
finish:
  for (i = 0; wide && i < n; i++)
    free(wide[i]);
  free(wide);
  free(merged);
  mproc__w32_free_strings(base);
  return block;
}

/* The standard handles are inherited through the handle list.
 * GetStdHandle may return NULL or INVALID_HANDLE_VALUE (a GUI program, a
 * closed stream); the child then gets the same, as it would by default. */
#define MPROC__W32_NSTD 3

/* ---- spawn ----------------------------------------------------------------- */

/* Puts a duplicate of `h` (owned by this process) into the child's handle
 * table and returns the child's value for it, which is only meaningful in
 * the child.  `access` 0 with DUPLICATE_SAME_ACCESS keeps the handle's
 * rights. */
static int mproc__w32_give(HANDLE child, HANDLE h, DWORD access,
                           uint64_t *value) {
  HANDLE in_child = NULL;
  if (!DuplicateHandle(GetCurrentProcess(), h, child, &in_child, access,
                       FALSE, access ? 0 : DUPLICATE_SAME_ACCESS))
    return -1;
  *value = (uint64_t)(uintptr_t)in_child;
  return 0;
}

/* What one spawn attempt holds while it runs; mproc__w32_spawn_once
 * releases all of it at its one finish label. */
struct mproc__w32_spawn {
  uint64_t *values; /* the child's value per passed handle */
  uint64_t parent_value, interrupt_value;
  HANDLE list[1 + MPROC__W32_NSTD]; /* PROC_THREAD_ATTRIBUTE_HANDLE_LIST */
  size_t nlist;
  HANDLE std_dups[MPROC__W32_NSTD];
  HANDLE std_values[MPROC__W32_NSTD];
  HANDLE interrupt;
  /* The bootstrap pipe, made by the pipe transport so that it is open for
   * overlapped I/O: the child's read can then wait in the kernel with a
   * time limit (src/win32/child.c).  bs_read is bs_in's handle. */
  mproc__conn_os *bs_in, *bs_out;
  HANDLE bs_read;
  LPPROC_THREAD_ATTRIBUTE_LIST attrs;
  int attrs_ready;
  wchar_t *cmd;
  wchar_t *env; /* the child's environment block, NULL: ours */
  wchar_t *cwd; /* its directory, NULL: ours */
  PROCESS_INFORMATION pi;
  int started; /* CreateProcessW succeeded: a failure must end the child */
  HANDLE job;  /* the child's own job (new_group) */
  unsigned char *bs;
  size_t bs_len;
};

/* MPROC_ESPAWN with `err` recorded; a call that failed without setting an
 * error still reports one. */
static int mproc__w32_spawn_fail(DWORD err) {
  if (err == 0)
    err = ERROR_INVALID_FUNCTION;
  return mproc__os_fail(MPROC_ESPAWN, (int)err);
}

static int mproc__w32_spawn_fail_last(void) {
  return mproc__w32_spawn_fail(GetLastError());
}

/* Checks the handles to pass and allocates the table of their values in
 * the child. */
static int mproc__w32_alloc_values(const mproc_handle_t *handles,
                                   size_t nhandles, uint64_t **values) {
  size_t i;
  for (i = 0; i < nhandles; i++) {
    /* INVALID_HANDLE_VALUE doubles as GetCurrentProcess(): duplicating it
     * would hand the child a handle to this process, not an error. */
    if (!mproc__w32_valid(handles[i]))
      return mproc__os_fail(MPROC_ESPAWN, ERROR_INVALID_HANDLE);
  }
  if (nhandles > 0) {
    *values = (uint64_t *)calloc(nhandles, sizeof(**values));
    if (!*values)
      return MPROC_ENOMEM;
  }
  return MPROC_OK;
}

/* The bootstrap pipe.  Only the read end goes to the child: when this
 * process closes the write end (or dies) the child reads end-of-file
 * instead of waiting.  Not CreatePipe: an anonymous pipe cannot be read
 * overlapped (CreatePipe docs), so the child could only poll it. */
static int mproc__w32_open_bootstrap_pipe(struct mproc__w32_spawn *s) {
  int rc = mproc__conn_os_pair(&s->bs_in, &s->bs_out, 0);
  if (rc < 0)
    return rc == MPROC_ESYS ? mproc__w32_spawn_fail((DWORD)mproc_os_error())
                            : rc;
  s->bs_read = mproc__w32_conn_handle(s->bs_in);
  if (!SetHandleInformation(s->bs_read, HANDLE_FLAG_INHERIT,
                            HANDLE_FLAG_INHERIT))
    return mproc__w32_spawn_fail_last();
  s->list[s->nlist++] = s->bs_read;
  return MPROC_OK;
}

/* Standard handles: the child writes where this process writes.  A
 * console handle is a real handle since Windows 8 and may be listed. */
static void mproc__w32_list_std_handles(struct mproc__w32_spawn *s,
                                        const struct mproc_process *p) {
  static const DWORD std_ids[MPROC__W32_NSTD] = {
      STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  size_t i;
  for (i = 0; i < MPROC__W32_NSTD; i++) {
    /* mproc_process_options::stdio, opened by the start, or ours. */
    HANDLE h = p->stdio_h[i] != MPROC_INVALID_HANDLE
                   ? (HANDLE)p->stdio_h[i]
                   : GetStdHandle(std_ids[i]);
    s->std_values[i] = h;
    if (!mproc__w32_valid(h))
      continue;
    if (mproc__w32_dup_inheritable(h, &s->std_dups[i]) < 0) {
      /* A stale value (the stream was closed behind the C runtime's back)
       * is passed as "none" rather than failing the spawn. */
      s->std_dups[i] = NULL;
      s->std_values[i] = NULL;
      continue;
    }
    s->std_values[i] = s->std_dups[i];
    s->list[s->nlist++] = s->std_dups[i];
  }
}

/* The attribute list that limits inheritance to s->list. */
static int mproc__w32_build_handle_list(struct mproc__w32_spawn *s) {
  SIZE_T attrs_size = 0;
  /* The first call only reports the size; it fails by design with
   * ERROR_INSUFFICIENT_BUFFER. */
  InitializeProcThreadAttributeList(NULL, 1, 0, &attrs_size);
  s->attrs = (LPPROC_THREAD_ATTRIBUTE_LIST)malloc(attrs_size);
  if (!s->attrs)
    return MPROC_ENOMEM;
  if (!InitializeProcThreadAttributeList(s->attrs, 1, 0, &attrs_size))
    return mproc__w32_spawn_fail_last();
  s->attrs_ready = 1;
  /* The list is referenced, not copied, until CreateProcessW returns. */
  if (!UpdateProcThreadAttribute(s->attrs, 0,
                                 PROC_THREAD_ATTRIBUTE_HANDLE_LIST, s->list,
                                 s->nlist * sizeof(*s->list), NULL, NULL))
    return mproc__w32_spawn_fail_last();
  return MPROC_OK;
}

/* CreateProcessW with the handle list and the standard handles. */
static int mproc__w32_create_suspended(struct mproc__w32_spawn *s,
                                       const struct mproc_process *p,
                                       const wchar_t *exe) {
  STARTUPINFOEXW si;
  size_t i;
  int rc;
  s->cmd = mproc__w32_command_line(exe, s->bs_read);
  if (!s->cmd)
    return mproc__w32_spawn_fail_last();
  s->env = mproc__w32_env_block(p, &rc);
  if (rc < 0)
    return rc;
  if (p->cwd && !(s->cwd = mproc__w32_wide(p->cwd)))
    return mproc__w32_spawn_fail_last();

  memset(&si, 0, sizeof(si));
  si.StartupInfo.cb = sizeof(si);
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = s->std_values[0];
  si.StartupInfo.hStdOutput = s->std_values[1];
  si.StartupInfo.hStdError = s->std_values[2];
  si.lpAttributeList = s->attrs;

  /* Suspended: a daemonic child is in the job before it runs a single
   * instruction (so nothing it starts can escape the job), and the handles
   * below are in place before it looks for them. */
  if (!CreateProcessW(exe, s->cmd, NULL, NULL, TRUE,
                      EXTENDED_STARTUPINFO_PRESENT |
                          CREATE_UNICODE_ENVIRONMENT | CREATE_SUSPENDED |
                          (p->no_window ? CREATE_NO_WINDOW : 0),
                      s->env, s->cwd, &si.StartupInfo, &s->pi))
    return mproc__w32_spawn_fail_last();
  s->started = 1;
  /* The child has its copies; ours go now.  The read end in particular: while
   * this process holds it, a child that died would not break the pipe, and a
   * write larger than the buffer would block forever. */
  mproc__conn_os_close(s->bs_in);
  s->bs_in = NULL;
  s->bs_read = NULL;
  for (i = 0; i < MPROC__W32_NSTD; i++)
    mproc__w32_close(&s->std_dups[i]);
  return MPROC_OK;
}

static int mproc__w32_join_daemon_job(struct mproc__w32_spawn *s) {
  DWORD err = 0;
  HANDLE job = mproc__w32_daemon_job(&err);
  if (!job)
    return mproc__w32_spawn_fail(err);
  if (!AssignProcessToJobObject(job, s->pi.hProcess))
    return mproc__w32_spawn_fail_last();
  return MPROC_OK;
}

/* The child's own job (new_group), made while it is suspended so that
 * everything it starts is born in it.  After the daemon job, if any: a
 * process already in a job may join another only if that one is empty,
 * which nests it below the first (Windows 8 nested jobs), so the order
 * daemon job, then this new empty one, always works.  No limits are set:
 * closing the handle leaves the tree running (no KILL_ON_JOB_CLOSE), and
 * the members keep whatever breakaway right the jobs above them give. */
static int mproc__w32_join_tree_job(struct mproc__w32_spawn *s) {
  s->job = CreateJobObjectW(NULL, NULL);
  if (!s->job)
    return mproc__w32_spawn_fail_last();
  if (!AssignProcessToJobObject(s->job, s->pi.hProcess))
    return mproc__w32_spawn_fail_last();
  return MPROC_OK;
}

/* Duplicates the passed handles, the parent watch and the interrupt event
 * into the suspended child and records the child's values for them. */
static int mproc__w32_give_handles(struct mproc__w32_spawn *s,
                                   const mproc_handle_t *handles,
                                   size_t nhandles) {
  HANDLE child = s->pi.hProcess;
  size_t i;
  for (i = 0; i < nhandles; i++)
    if (mproc__w32_give(child, (HANDLE)handles[i], 0, &s->values[i]) < 0)
      return mproc__w32_spawn_fail_last();
  /* The child's watch on this process: SYNCHRONIZE to wait on it and
   * PROCESS_QUERY_LIMITED_INFORMATION to read its exit code, nothing that
   * would let a child act on its parent. */
  if (mproc__w32_give(child, GetCurrentProcess(),
                      SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION,
                      &s->parent_value) < 0)
    return mproc__w32_spawn_fail_last();
  /* Auto-reset: each interrupt() wakes the child's watcher once. */
  s->interrupt = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (!s->interrupt ||
      mproc__w32_give(child, s->interrupt, 0, &s->interrupt_value) < 0)
    return mproc__w32_spawn_fail_last();
  return MPROC_OK;
}

/* Builds the bootstrap now that the child's handle values are known,
 * resumes the child and writes the bootstrap to it. */
static int mproc__w32_deliver_bootstrap(struct mproc__w32_spawn *s,
                                        struct mproc_process *p,
                                        mproc__bootstrap_builder build) {
  int rc = build(p, s->values, s->parent_value, s->interrupt_value, &s->bs,
                 &s->bs_len);
  if (rc < 0)
    return rc;
  if (ResumeThread(s->pi.hThread) == (DWORD)-1)
    return mproc__w32_spawn_fail_last();
  /* The write blocks until the child has read what the pipe cannot
   * buffer; an error means the child died before reading everything
   * (MPROC_EEOF: its read end is gone). */
  rc = mproc__conn_os_write(s->bs_out, s->bs, s->bs_len, NULL, 0);
  if (rc < 0)
    return rc == MPROC_ESYS
               ? mproc__w32_spawn_fail((DWORD)mproc_os_error())
               : mproc__w32_spawn_fail(ERROR_BROKEN_PIPE);
  mproc__conn_os_close(s->bs_out);
  s->bs_out = NULL;
  return MPROC_OK;
}

/* Releases what an attempt still holds (on success the process handle
 * and the interrupt event have moved to the process object). */
static void mproc__w32_spawn_release(struct mproc__w32_spawn *s) {
  size_t i;
  if (s->attrs_ready)
    DeleteProcThreadAttributeList(s->attrs);
  free(s->attrs);
  free(s->cmd);
  free(s->env);
  free(s->cwd);
  free(s->bs);
  free(s->values);
  mproc__w32_close(&s->pi.hThread);
  mproc__w32_close(&s->pi.hProcess);
  mproc__conn_os_close(s->bs_in);
  mproc__conn_os_close(s->bs_out);
  for (i = 0; i < MPROC__W32_NSTD; i++)
    mproc__w32_close(&s->std_dups[i]);
  mproc__w32_close(&s->interrupt);
  mproc__w32_close(&s->job);
}

/* How a handle reaches the child, and why two ways.
 *
 * Inheritance needs a handle that is inheritable in this process at the
 * moment CreateProcess runs, and any other thread's CreateProcess with
 * bInheritHandles=TRUE and no handle list (system(), _popen, a library)
 * would take it along too.  So inheritance is used only where the value
 * must be known before the child exists: the bootstrap pipe, whose value is
 * on the command line, and the standard handles, which STARTUPINFO names.
 * Those go through PROC_THREAD_ATTRIBUTE_HANDLE_LIST, so the child inherits
 * exactly them ("Programmatically controlling which handles are inherited
 * by new processes in Win32", The Old New Thing), and the inheritable
 * copies live only around the CreateProcess call.
 *
 * Everything else (the handles the user passes, the parent watch, the
 * interrupt event) is duplicated straight into the suspended child with
 * DuplicateHandle(target = child), as CPython's multiprocessing does for
 * handles it sends: never inheritable anywhere, and the child's values are
 * known before its first instruction, in time for the bootstrap. */
static int mproc__w32_spawn_once(struct mproc_process *p,
                                 const mproc_handle_t *handles,
                                 size_t nhandles,
                                 mproc__bootstrap_builder build) {
  const wchar_t *exe = mproc__w32_exe_path();
  struct mproc__w32_spawn s;
  int rc;

  if (!exe)
    return MPROC_ENOINIT;
  memset(&s, 0, sizeof(s));
  rc = mproc__w32_alloc_values(handles, nhandles, &s.values);
  if (rc < 0)
    goto finish;
  rc = mproc__w32_open_bootstrap_pipe(&s);
  if (rc < 0)
    goto finish;
  mproc__w32_list_std_handles(&s, p);
  rc = mproc__w32_build_handle_list(&s);
  if (rc < 0)
    goto finish;
  rc = mproc__w32_create_suspended(&s, p, exe);
  if (rc < 0)
    goto finish;
  if (p->daemon) {
    rc = mproc__w32_join_daemon_job(&s);
    if (rc < 0)
      goto finish;
  }
  if (p->new_group) {
    rc = mproc__w32_join_tree_job(&s);
    if (rc < 0)
      goto finish;
  }
  rc = mproc__w32_give_handles(&s, handles, nhandles);
  if (rc < 0)
    goto finish;
  rc = mproc__w32_deliver_bootstrap(&s, p, build);
  if (rc < 0)
    goto finish;

  p->plat.process = s.pi.hProcess;
  p->plat.interrupt_event = s.interrupt;
  p->plat.job = s.job;
  p->pid = (int64_t)s.pi.dwProcessId;
  s.pi.hProcess = NULL;
  s.interrupt = NULL;
  s.job = NULL;
  rc = MPROC_OK;

finish:
  if (rc < 0 && s.started) {
    /* Started but not usable: end it and wait, so nothing is left running
     * (platform.h: "On failure nothing is left running or open").  The
     * handles given to it die with it. */
    TerminateProcess(s.pi.hProcess, MPROC_EXIT_BOOTSTRAP);
    WaitForSingleObject(s.pi.hProcess, INFINITE);
  }
  mproc__w32_spawn_release(&s);
  return rc;
}

int mproc__plat_fork(struct mproc_process *p,
                     void (*child_main)(struct mproc_process *p)) {
  (void)p;
  (void)child_main;
  return MPROC_ENOTSUP;
}

/* CreateProcess passes only the handles listed for the child, so no
 * handle needs hiding from other children. */
void mproc__plat_private_add(mproc_handle_t h) { (void)h; }
void mproc__plat_private_del(mproc_handle_t h) { (void)h; }
void mproc__plat_private_drop(mproc_handle_t keep) { (void)keep; }
void mproc__plat_private_proc(const struct mproc_process *p) { (void)p; }

/* ---- wait, reap, signal ---------------------------------------------------- */

int mproc__plat_wait(struct mproc_process *p, double timeout) {
  HANDLE h = (HANDLE)p->plat.process;
  DWORD r = mproc__w32_wait_any(1, &h, timeout);
  if (r == WAIT_OBJECT_0)
    return MPROC_OK;
  if (r == WAIT_TIMEOUT)
    return MPROC_ETIMEDOUT;
  return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
}

int mproc__plat_reap(struct mproc_process *p, int *exitcode) {
  HANDLE h = (HANDLE)p->plat.process;
  DWORD r = WaitForSingleObject(h, 0), code;
  if (r == WAIT_TIMEOUT)
    return 0;
  if (r != WAIT_OBJECT_0)
    return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
  /* GetExitCodeProcess answers STILL_ACTIVE (259) for a running process,
   * which a process may also exit with; the wait above already settled that
   * it ended, so 259 here is a real exit code. */
  if (!GetExitCodeProcess(h, &code))
    return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
  switch (code) {
  case MPROC__W32_EXIT_TERM:
    *exitcode = -15;
    break;
  case MPROC__W32_EXIT_KILL:
    *exitcode = -9;
    break;
  case MPROC__W32_EXIT_INT:
    *exitcode = -2;
    break;
  default:
    /* An NTSTATUS crash code (0xC0000005) becomes a large negative int, an
     * entry's negative return value comes back as itself. */
    *exitcode = (int)code;
    break;
  }
  return 1;
}

int mproc__plat_signal(struct mproc_process *p, int which) {
  HANDLE h = (HANDLE)p->plat.process;
  UINT code;
  DWORD err;
  switch (which) {
  case MPROC__SIG_TERM:
    code = MPROC__W32_EXIT_TERM;
    break;
  case MPROC__SIG_KILL:
    code = MPROC__W32_EXIT_KILL;
    break;
  case MPROC__SIG_INT:
    if (!p->plat.interrupt_event)
      return MPROC_ENOTSUP;
    if (!SetEvent((HANDLE)p->plat.interrupt_event))
      return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
    return MPROC_OK;
  default:
    return MPROC_EINVAL;
  }
  if (TerminateProcess(h, code))
    return MPROC_OK;
  err = GetLastError();
  /* TerminateProcess on a process that has already ended fails with
   * ERROR_ACCESS_DENIED.  It ended on its own, which is what the caller
   * wanted; CPython's Popen.terminate() treats it the same way. */
  if (err == ERROR_ACCESS_DENIED && WaitForSingleObject(h, 0) == WAIT_OBJECT_0)
    return MPROC_OK;
  return mproc__os_fail(MPROC_ESYS, (int)err);
}

int mproc__plat_signal_tree(struct mproc_process *p, int which, int reaped) {
  UINT code =
      which == MPROC__SIG_KILL ? MPROC__W32_EXIT_KILL : MPROC__W32_EXIT_TERM;
  /* The job handle names this job only, reaped child or not: it stays
   * valid until close, and an empty job is simply terminated again. */
  (void)reaped;
  if (!p->plat.job)
    return MPROC_ESTATE;
  if (!TerminateJobObject((HANDLE)p->plat.job, code))
    return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
  return MPROC_OK;
}

int mproc__plat_sentinel(struct mproc_process *p, mproc_handle_t *out) {
  *out = p->plat.process ? (mproc_handle_t)p->plat.process
                         : MPROC_INVALID_HANDLE;
  return *out == MPROC_INVALID_HANDLE ? MPROC_EINVAL : MPROC_OK;
}

void mproc__plat_close(struct mproc_process *p) {
  HANDLE h = (HANDLE)p->plat.process;
  mproc__w32_close(&h);
  h = (HANDLE)p->plat.interrupt_event;
  mproc__w32_close(&h);
  h = (HANDLE)p->plat.job;
  mproc__w32_close(&h);
  p->plat.process = NULL;
  p->plat.interrupt_event = NULL;
  p->plat.job = NULL;
}

int mproc__plat_spawn(struct mproc_process *p, const mproc_handle_t *handles,
                      size_t nhandles, mproc__bootstrap_builder build) {
  int attempt, rc = MPROC_ESPAWN;
  /* ERROR_INTERNAL_ERROR says nothing about our request: it is the system
   * failing inside process creation.  Wine's server does so about once in a
   * thousand starts under load; every failed attempt has already cleaned up
   * after itself (a half-made child is terminated and reaped), so trying
   * again is safe.  Any other error is reported at once. */
  for (attempt = 0; attempt < 3; attempt++) {
    rc = mproc__w32_spawn_once(p, handles, nhandles, build);
    if (rc != MPROC_ESPAWN || mproc_os_error() != ERROR_INTERNAL_ERROR)
      break;
    Sleep(1);
  }
  return rc;
}
