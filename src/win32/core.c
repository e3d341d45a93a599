/* Windows backend: the small process-wide services (lock, clock, pid, CPU
 * count, the own executable, handles), the identity and liveness of the
 * processes lock words name as owners, and the helpers the other files share
 * (w32.h). */
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "internal.h"
#include "w32.h"

/* plat_types.h keeps <windows.h> out of the portable code by declaring the
 * mutex as a struct of one pointer, which is what an SRWLOCK is; this
 * refuses to compile if that ever stops being true. */
typedef char mproc__w32_srwlock_size_check
    [sizeof(SRWLOCK) == sizeof(mproc__mutex_t) ? 1 : -1];

/* An SRW lock: all-zero is SRWLOCK_INIT, so a static mproc__mutex_t needs no
 * runtime initialisation, and it is never recursive, like the POSIX one. */
void mproc__mutex_lock(mproc__mutex_t *m) {
  AcquireSRWLockExclusive((PSRWLOCK)(void *)m);
}

void mproc__mutex_unlock(mproc__mutex_t *m) {
  ReleaseSRWLockExclusive((PSRWLOCK)(void *)m);
}

int64_t mproc__plat_getpid(void) { return (int64_t)GetCurrentProcessId(); }

int mproc__plat_cpu_count(void) {
  /* GetSystemInfo() only counts the calling thread's processor group (at
   * most 64 CPUs); ALL_PROCESSOR_GROUPS counts every group, as Python's
   * os.cpu_count() does since 3.4. */
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return n > 0 ? (int)n : 1;
}

double mproc__plat_now(void) {
  /* The performance counter is monotonic and its frequency is fixed at
   * boot ("Acquiring high-resolution time stamps"), so reading it each time
   * is cheap and never races. */
  LARGE_INTEGER f, c;
  QueryPerformanceFrequency(&f);
  QueryPerformanceCounter(&c);
  return (double)(c.QuadPart / f.QuadPart) +
         (double)(c.QuadPart % f.QuadPart) / (double)f.QuadPart;
}

int mproc__plat_last_error(void) { return (int)GetLastError(); }

static wchar_t *mproc__w32_exe;

const wchar_t *mproc__w32_exe_path(void) { return mproc__w32_exe; }

int mproc__plat_init(int argc, char **argv) {
  /* GetModuleFileNameW truncates silently at the buffer size (returning the
   * size and ERROR_INSUFFICIENT_BUFFER), and paths may be longer than
   * MAX_PATH when long paths are enabled, so grow until it fits. */
  DWORD cap = MAX_PATH, n;
  wchar_t *buf = NULL, *bigger;
  (void)argc;
  (void)argv;
  if (mproc__w32_exe)
    return MPROC_OK;
  for (;;) {
    bigger = (wchar_t *)realloc(buf, cap * sizeof(wchar_t));
    if (!bigger) {
      free(buf);
      return MPROC_ENOMEM;
    }
    buf = bigger;
    n = GetModuleFileNameW(NULL, buf, cap);
    if (n == 0) {
      DWORD err = GetLastError();
      free(buf);
      return mproc__os_fail(MPROC_ESYS, (int)err);
    }
    if (n < cap)
      break;
    if (cap >= 32768) { /* the longest path Windows has */
      free(buf);
      return mproc__os_fail(MPROC_ESYS, ERROR_FILENAME_EXCED_RANGE);
    }
    cap *= 2;
  }
  mproc__w32_exe = buf;
  return MPROC_OK;
}

DWORD mproc__w32_ms(double seconds) {
  double ms;
  DWORD d;
  if (!(seconds >= 0)) /* negative or NaN */
    return INFINITE;
  ms = seconds * 1000.0;
  if (ms >= (double)(INFINITE - 1))
    return INFINITE - 1;
  d = (DWORD)ms;
  if ((double)d < ms)
    d++;
  return d;
}

void mproc__plat_sleep(double seconds) {
  /* Sleep() rounds to the timer tick (about 15.6 ms unless a program raised
   * the resolution); mproc__w32_ms rounds up, so the caller's clock check
   * rarely needs a second round.  A day at most per call. */
  Sleep(mproc__w32_ms(seconds > 86400.0 ? 86400.0 : seconds));
}

/* A slice well below INFINITE, so a finite timeout is never mistaken for
 * "forever" (about 24.8 days). */
#define MPROC__W32_SLICE_MS 0x7fffffffu

DWORD mproc__w32_wait_any(DWORD n, const HANDLE *h, double timeout) {
  double deadline, left;
  DWORD r;
  if (!(timeout >= 0))
    return WaitForMultipleObjects(n, h, FALSE, INFINITE);
  if (timeout * 1000.0 < (double)MPROC__W32_SLICE_MS)
    return WaitForMultipleObjects(n, h, FALSE, mproc__w32_ms(timeout));
  deadline = mproc__plat_now() + timeout;
  for (;;) {
    left = deadline - mproc__plat_now();
    if (left * 1000.0 >= (double)MPROC__W32_SLICE_MS) {
      r = WaitForMultipleObjects(n, h, FALSE, MPROC__W32_SLICE_MS);
      if (r != WAIT_TIMEOUT)
        return r;
    } else {
      return WaitForMultipleObjects(n, h, FALSE,
                                    mproc__w32_ms(left > 0 ? left : 0));
    }
  }
}

void mproc__w32_strerror(DWORD err, char *buf, size_t cap) {
  DWORD n;
  if (cap == 0)
    return;
  n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                     NULL, err, 0, buf, cap > 65535 ? 65535 : (DWORD)cap,
                     NULL);
  if (n == 0) {
    snprintf(buf, cap, "error %lu", (unsigned long)err);
    return;
  }
  while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n' ||
                   buf[n - 1] == ' ' || buf[n - 1] == '.'))
    n--;
  buf[n] = 0;
}

void mproc__w32_hex(uint64_t v, char *out) {
  char tmp[16];
  int n = 0, i;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15u];
    v >>= 4;
  } while (v);
  for (i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = 0;
}

void mproc__plat_exit_now(int code) {
  /* _exit skips atexit handlers and stdio flushing (the caller flushed
   * what it owns), which is the point: a fork child must not run the
   * parent's handlers.  Windows never forks, but the interface is shared. */
  _exit(code);
}

int mproc__plat_handle_plausible(mproc_handle_t h) { return h != NULL; }

mproc_handle_t mproc__plat_dup_handle(mproc_handle_t h) {
  HANDLE dup = NULL;
  if (!DuplicateHandle(GetCurrentProcess(), (HANDLE)h, GetCurrentProcess(),
                       &dup, 0, FALSE, DUPLICATE_SAME_ACCESS))
    return MPROC_INVALID_HANDLE;
  return (mproc_handle_t)dup;
}

void mproc__plat_close_handle(mproc_handle_t h) {
  if (h != MPROC_INVALID_HANDLE && h != NULL)
    (void)CloseHandle((HANDLE)h);
}

int mproc__w32_valid(HANDLE h) {
  return h != NULL && h != INVALID_HANDLE_VALUE;
}

int mproc__w32_map_error(DWORD err) {
  switch (err) {
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_COMMITMENT_LIMIT:
  case ERROR_DISK_FULL: /* the pagefile could not grow */
    return MPROC_ENOMEM;
  default:
    return mproc__os_fail(MPROC_ESYS, (int)err);
  }
}

/* ---- owners ------------------------------------------------------------------ */

/* A creation time (FILETIME, 100 ns units) folded to the 32 bits a stamp
 * keeps; 0 is "unknown". */
static uint32_t mproc__fold_start(const FILETIME *ft) {
  uint64_t t = (uint64_t)ft->dwHighDateTime << 32 | ft->dwLowDateTime;
  uint32_t f = (uint32_t)(t ^ (t >> 32));
  return t == 0 ? 0u : f ? f : 1u;
}

static uint32_t mproc__process_start(HANDLE h) {
  FILETIME created, exited, kernel, user;
  if (!GetProcessTimes(h, &created, &exited, &kernel, &user))
    return 0;
  return mproc__fold_start(&created);
}

uint64_t mproc__self_stamp(void) {
  /* No fork on Windows: one value for the life of the process.  A race
   * between two first callers stores the same value twice. */
  static volatile mproc__u64a cache;
  uint64_t s = mproc__load64(&cache);
  if (s == 0) {
    s = (uint64_t)GetCurrentProcessId() << 32 |
        mproc__process_start(GetCurrentProcess());
    mproc__store64(&cache, s);
  }
  return s;
}

int mproc__stamp_alive(uint64_t stamp) {
  DWORD pid = (DWORD)(stamp >> 32), r;
  uint32_t start = (uint32_t)stamp, now_start;
  HANDLE h;
  if (pid == 0)
    return 0;
  if (pid == GetCurrentProcessId())
    return start == 0 || start == (uint32_t)mproc__self_stamp();
  /* A process object, and with it its pid, exists while any handle to it
   * is open, so a pid that opens names the same process or a newer one
   * (Windows reuses pids): the creation time tells them apart.  Exited but
   * still referenced: the object is signaled. */
  h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE,
                  pid);
  if (!h)
    /* ERROR_INVALID_PARAMETER: no such process.  Anything else (access
     * denied: another user's or a protected process) means it exists; a
     * wrong "dead" would hand a live holder's lock to someone else. */
    return GetLastError() == ERROR_INVALID_PARAMETER ? 0 : 1;
  r = WaitForSingleObject(h, 0);
  now_start = r == WAIT_OBJECT_0 ? 0 : mproc__process_start(h);
  CloseHandle(h);
  if (r == WAIT_OBJECT_0)
    return 0;
  return start == 0 || now_start == 0 || now_start == start;
}

/* Thread ids are unique system-wide among running threads, which is all an
 * RLock owner (recorded with its pid) needs. */
uint64_t mproc__thread_id(void) { return (uint64_t)GetCurrentThreadId(); }

/* ---- large private buffers ------------------------------------------------- */

/* Ordinary pages: VirtualAlloc's memory is zeroed and faulted in on first
 * touch, as mmap's.  Large pages (MEM_LARGE_PAGES) are not for a library:
 * they need the SeLockMemoryPrivilege, which Windows grants to no account
 * by default and which must also be enabled in the process token; they are
 * locked in memory and allocated in full at once (a buffer sized by a
 * guess would take all its memory at once), and the request fails when
 * physical memory is too fragmented ("Large-Page Support", Microsoft
 * Learn). */
void *mproc__plat_big_alloc(size_t n) {
  if (n == 0)
    return NULL;
  return VirtualAlloc(NULL, n, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

void mproc__plat_big_free(void *p, size_t n) {
  (void)n; /* MEM_RELEASE frees the whole reservation */
  if (p)
    (void)VirtualFree(p, 0, MEM_RELEASE);
}
