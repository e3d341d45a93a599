/* Windows backend: waiting on any number of handles at once
 * (multiprocessing.connection.wait). */
#include <windows.h>

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "w32.h"

/* WaitForMultipleObjects takes at most MAXIMUM_WAIT_OBJECTS (64) handles.
 * Past that, each helper thread waits on a group of 63 plus a shared cancel
 * event, the design of CPython's _winapi.BatchedWaitForMultipleObjects. */
#define MPROC__W32_GROUP (MAXIMUM_WAIT_OBJECTS - 1)

typedef struct mproc__w32_group {
  HANDLE wait[MAXIMUM_WAIT_OBJECTS]; /* [0] cancel, then the group */
  DWORD count;                       /* handles of the group */
  HANDLE done;                       /* shared, manual reset */
  DWORD hit;   /* index in the group that woke the thread, or MAXDWORD */
  DWORD error; /* GetLastError() after WAIT_FAILED, else 0 */
  HANDLE thread;
} mproc__w32_group;

static DWORD WINAPI mproc__w32_group_main(LPVOID arg) {
  mproc__w32_group *g = (mproc__w32_group *)arg;
  /* The cancel event comes first: when it and a group handle are both
   * signaled the wait reports the cancel and consumes nothing, so an
   * auto-reset object is left for the caller's final poll. */
  DWORD r = WaitForMultipleObjects(g->count + 1, g->wait, FALSE, INFINITE);
  if (r > WAIT_OBJECT_0 && r <= WAIT_OBJECT_0 + g->count) {
    g->hit = r - WAIT_OBJECT_0 - 1;
  } else if (r > WAIT_ABANDONED_0 && r <= WAIT_ABANDONED_0 + g->count) {
    g->hit = r - WAIT_ABANDONED_0 - 1;
  } else if (r == WAIT_OBJECT_0) {
    return 0; /* cancelled */
  } else {
    g->error = GetLastError();
    if (g->error == 0)
      g->error = ERROR_INVALID_FUNCTION;
  }
  SetEvent(g->done);
  return 0;
}

/* One handle, no waiting: 1 signaled, 0 not, or a negative code.  An
 * abandoned mutex is signaled too (the wait acquired it). */
static int mproc__w32_poll(HANDLE h) {
  DWORD r = WaitForSingleObject(h, 0);
  if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED)
    return 1;
  if (r == WAIT_TIMEOUT)
    return 0;
  return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
}

/* Marks every handle not yet marked that is signaled now.  A wait acquires
 * what it reports (an auto-reset event is reset, a semaphore decremented),
 * so handles already reported ready are not waited on again. */
static int mproc__w32_poll_rest(const HANDLE *h, size_t n, int *ready) {
  size_t i;
  int r, count = 0;
  for (i = 0; i < n; i++) {
    if (!ready[i]) {
      r = mproc__w32_poll(h[i]);
      if (r < 0)
        return r;
      ready[i] = r;
    }
    count += ready[i];
  }
  return count;
}

/* Starts one waiting thread per group of handles; 0, or the Windows error
 * (the threads started so far are counted in *started). */
static DWORD mproc__w32_start_groups(mproc__w32_group *groups, size_t ngroups,
                                     const HANDLE *h, size_t n, HANDLE done,
                                     HANDLE cancel, size_t *started) {
  size_t g;
  for (g = 0; g < ngroups; g++) {
    mproc__w32_group *gr = &groups[g];
    size_t first = g * MPROC__W32_GROUP;
    gr->count = (DWORD)(n - first < MPROC__W32_GROUP ? n - first
                                                     : MPROC__W32_GROUP);
    gr->wait[0] = cancel;
    memcpy(&gr->wait[1], &h[first], gr->count * sizeof(HANDLE));
    gr->done = done;
    gr->hit = MAXDWORD;
    /* The threads only wait: a small reserved stack keeps a wait on
     * thousands of handles cheap. */
    gr->thread = CreateThread(NULL, 64 * 1024, mproc__w32_group_main, gr,
                              STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    if (!gr->thread)
      return GetLastError();
    (*started)++;
  }
  return 0;
}

/* Waits for the started threads (the cancel event is set) and collects
 * their results: the handle each saw signaled, or the first error when *err
 * holds none yet. */
static void mproc__w32_join_groups(mproc__w32_group *groups, size_t started,
                                   int *ready, DWORD *err) {
  size_t g;
  for (g = 0; g < started; g++) {
    WaitForSingleObject(groups[g].thread, INFINITE);
    CloseHandle(groups[g].thread);
  }
  for (g = 0; g < started; g++) {
    if (groups[g].hit != MAXDWORD)
      ready[g * MPROC__W32_GROUP + groups[g].hit] = 1;
    else if (groups[g].error && !*err)
      *err = groups[g].error;
  }
}

static int mproc__w32_wait_batched(const HANDLE *h, size_t n, double timeout,
                                   int *ready) {
  size_t ngroups = (n + MPROC__W32_GROUP - 1) / MPROC__W32_GROUP;
  size_t started = 0;
  mproc__w32_group *groups;
  HANDLE done = NULL, cancel = NULL;
  DWORD r, err = 0;
  int rc;

  /* Something may already be signaled: then no thread is needed. */
  rc = mproc__w32_poll_rest(h, n, ready);
  if (rc != 0)
    return rc;

  groups = (mproc__w32_group *)calloc(ngroups, sizeof(*groups));
  if (!groups)
    return MPROC_ENOMEM;
  done = CreateEventW(NULL, TRUE, FALSE, NULL);
  cancel = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!done || !cancel) {
    err = GetLastError();
    goto finish;
  }
  err = mproc__w32_start_groups(groups, ngroups, h, n, done, cancel, &started);
  if (err)
    goto finish;

  r = mproc__w32_wait_any(1, &done, timeout);
  if (r == WAIT_FAILED)
    err = GetLastError();

finish:
  /* Every thread reads `groups`, so none may outlive this call. */
  if (cancel)
    SetEvent(cancel);
  mproc__w32_join_groups(groups, started, ready, &err);
  if (done)
    CloseHandle(done);
  if (cancel)
    CloseHandle(cancel);
  free(groups);
  rc = mproc__w32_poll_rest(h, n, ready);
  if (rc == 0 && err)
    return mproc__os_fail(MPROC_ESYS, (int)err);
  return rc;
}

static int mproc__w32_wait_unique(const HANDLE *h, size_t n, double timeout,
                                  int *ready) {
  DWORD r;
  if (timeout == 0)
    return mproc__w32_poll_rest(h, n, ready);
  if (n > MAXIMUM_WAIT_OBJECTS)
    return mproc__w32_wait_batched(h, n, timeout, ready);
  r = mproc__w32_wait_any((DWORD)n, h, timeout);
  if (r == WAIT_TIMEOUT)
    return 0;
  if (r < WAIT_OBJECT_0 + n) /* WAIT_OBJECT_0 is 0 */
    ready[r - WAIT_OBJECT_0] = 1;
  else if (r >= WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + n)
    ready[r - WAIT_ABANDONED_0] = 1;
  else
    return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
  /* WaitForMultipleObjects reports only the lowest signaled index; the rest
   * are found by polling so the caller learns every ready item at once. */
  return mproc__w32_poll_rest(h, n, ready);
}

typedef struct mproc__w32_slot {
  HANDLE h;
  size_t index;
} mproc__w32_slot;

static int mproc__w32_slot_cmp(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const mproc__w32_slot *)a)->h;
  uintptr_t y = (uintptr_t)((const mproc__w32_slot *)b)->h;
  return x < y ? -1 : x > y;
}

/* Lists the distinct handles of h in uh (m of them, returned) and, in
 * map, each position's index into uh. */
static size_t mproc__w32_dedup_handles(const mproc_handle_t *h, size_t n,
                                       mproc__w32_slot *slots, HANDLE *uh,
                                       size_t *map) {
  size_t m = 0, i;
  for (i = 0; i < n; i++) {
    slots[i].h = (HANDLE)h[i];
    slots[i].index = i;
  }
  qsort(slots, n, sizeof(*slots), mproc__w32_slot_cmp);
  for (i = 0; i < n; i++) {
    if (m == 0 || uh[m - 1] != slots[i].h)
      uh[m++] = slots[i].h;
    map[slots[i].index] = m - 1;
  }
  return m;
}

int mproc__plat_wait_handles(const mproc_handle_t *h, size_t n, double timeout,
                             int *ready) {
  mproc__w32_slot *slots = NULL;
  HANDLE *uh = NULL;
  size_t *map = NULL, m, i;
  int *uready = NULL;
  int rc;

  if (n == 0) {
    /* Nothing can become ready: sleep out a finite timeout (as Python's
     * wait([], timeout) does), refuse to sleep forever. */
    if (!(timeout >= 0))
      return MPROC_EINVAL;
    if (timeout > 0)
      Sleep(mproc__w32_ms(timeout));
    return 0;
  }
  for (i = 0; i < n; i++) {
    ready[i] = 0;
    /* INVALID_HANDLE_VALUE is also the pseudo handle of the current process,
     * which a wait would accept and never see signaled. */
    if (!mproc__w32_valid(h[i]))
      return MPROC_EINVAL;
  }

  /* "The array may not contain multiple copies of the same handle"
   * (WaitForMultipleObjects docs: ERROR_INVALID_PARAMETER), yet a caller may
   * list a process twice.  Wait on the distinct handles and copy each
   * result back to every position that named it. */
  slots = (mproc__w32_slot *)malloc(n * sizeof(*slots));
  uh = (HANDLE *)malloc(n * sizeof(*uh));
  map = (size_t *)malloc(n * sizeof(*map));
  uready = (int *)calloc(n, sizeof(*uready));
  if (!slots || !uh || !map || !uready) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  m = mproc__w32_dedup_handles(h, n, slots, uh, map);
  rc = mproc__w32_wait_unique(uh, m, timeout, uready);
  if (rc > 0) {
    rc = 0;
    for (i = 0; i < n; i++) {
      ready[i] = uready[map[i]];
      rc += ready[i];
    }
  }

finish:
  free(slots);
  free(uh);
  free(map);
  free(uready);
  return rc;
}
