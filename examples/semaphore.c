/* semaphore.c: a Semaphore lets at most two of six workers in at once.
 *
 * The Python it mirrors:
 *
 *     def worker(i, sem, counts):             # counts: [inside, peak]
 *         with sem:                           # at most 2 get past here
 *             with counts.get_lock():
 *                 counts[0] += 1
 *                 counts[1] = max(counts[1], counts[0])
 *             time.sleep(0.05)                # the work
 *             with counts.get_lock():
 *                 counts[0] -= 1
 *
 *     if __name__ == '__main__':
 *         sem = Semaphore(2)
 *         counts = Array('i', 2)              # with a lock, zero-filled
 *         ps = [Process(target=worker, args=(i, sem, counts)) for i in range(6)]
 *         for p in ps: p.start()
 *         for p in ps: p.join()
 *         print('most inside at once:', counts[1])     # never more than 2
 *
 * The shared counter proves the limit: every worker counts itself in and out
 * under the array's lock and records the largest count it saw.  The program
 * fails if that peak is ever above 2.  (It is usually exactly 2, but that
 * depends on how the OS schedules the workers, so it is only printed.)
 *
 * Each step prints the Python line it mirrors next to the C that does it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

#include "mirror.h"

#define NWORKERS 6
#define LIMIT 2

/* counts[0] += delta under the array's lock; keeps counts[1] the largest
 * counts[0] seen.  Returns the new counts[0], or a negative code. */
static int count_in(mproc_array *counts, int delta) {
  int32_t *c = (int32_t *)mproc_array_ptr(counts);
  int inside, rc = mproc_lock_acquire(mproc_array_lock(counts), MPROC_FOREVER);
  if (rc < 0 && rc != MPROC_EOWNERDEAD)
    return rc;
  c[0] += delta;
  if (c[0] > c[1])
    c[1] = c[0];
  inside = c[0];
  mproc_lock_release(mproc_array_lock(counts));
  return inside;
}

/* time.sleep(seconds), portably: a wait on an Event nobody sets. */
static void work(mproc_event *never_set, double seconds) {
  (void)mproc_event_wait(never_set, seconds);
}

static int worker(const mproc_args *args) {
  void *sem = NULL, *counts = NULL, *idle = NULL;
  int64_t i = -1;
  int inside;
  if (mproc_arg_int(args, 0, &i) < 0 ||
      mproc_arg_object(args, 1, MPROC_OBJ_SEMAPHORE, &sem) < 0 ||
      mproc_arg_object(args, 2, MPROC_OBJ_ARRAY, &counts) < 0 ||
      mproc_arg_object(args, 3, MPROC_OBJ_EVENT, &idle) < 0)
    return 1;
  /* `with sem:` -- acquire, and release on the way out.  A semaphore has
   * no owner, so a worker that died inside would never give its slot back:
   * a generous timeout keeps the example from hanging if that happens. */
  if (mproc_semaphore_acquire((mproc_semaphore *)sem, 60.0) < 0)
    return 2;
  inside = count_in((mproc_array *)counts, +1);
  printf("worker %" PRId64 ": in  (%d inside)\n", i, inside);
  fflush(stdout);
  work((mproc_event *)idle, 0.05);
  inside = count_in((mproc_array *)counts, -1);
  printf("worker %" PRId64 ": out (%d inside)\n", i, inside);
  fflush(stdout);
  mproc_semaphore_release((mproc_semaphore *)sem);
  return inside < 0 ? 3 : 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(worker), MPROC_ENTRY_END};

/* Process(target=worker, args=(i, sem, counts)).start() */
static int start_worker(int i, mproc_semaphore *sem, mproc_array *counts,
                        mproc_event *idle, mproc_process **out) {
  mproc_args *args = NULL;
  int rc;
  *out = NULL;
  if ((rc = mproc_args_create(&args)) < 0)
    goto finish;
  if ((rc = mproc_args_add_int(args, NULL, i)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, sem)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, counts)) < 0 ||
      (rc = mproc_args_add_object(args, NULL, idle)) < 0)
    goto finish;
  if ((rc = mproc_process_create(out, "worker", args, NULL)) < 0)
    goto finish;
  rc = mproc_process_start(*out);
finish:
  mproc_args_free(args);
  return rc;
}

int main(int argc, char **argv) {
  mproc_process *ps[NWORKERS] = {NULL};
  mproc_semaphore *sem = NULL;
  mproc_array *counts = NULL;
  mproc_event *idle = NULL;
  int i, rc, code, peak, failed = 0;

  if ((rc = mproc_main(argc, argv, entries)) < 0) {
    fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 1;
  }
  mirror_begin();
  mirror("sem = Semaphore(2)", "mproc_semaphore_create(&sem, 2, 0)");
  mirror("counts = Array('i', 2)", "mproc_array_create(&counts, MPROC_INT32, 2, 1)");
  mirror("with sem: ...", "mproc_semaphore_acquire() ... _release()");
  mirror("time.sleep(0.05)", "mproc_event_wait(never_set, 0.05)");
  if ((rc = mproc_semaphore_create(&sem, LIMIT, 0)) < 0 ||
      (rc = mproc_array_create(&counts, MPROC_INT32, 2, 1)) < 0 ||
      (rc = mproc_event_create(&idle)) < 0) {
    fprintf(stderr, "semaphore: %s\n", mproc_strerror(rc));
    return 1;
  }

  for (i = 0; i < NWORKERS; i++)
    if ((rc = start_worker(i, sem, counts, idle, &ps[i])) < 0) {
      fprintf(stderr, "worker %d: start: %s\n", i, mproc_strerror(rc));
      failed = 1;
    }
  for (i = 0; i < NWORKERS; i++) {
    code = -1;
    if (ps[i] && (mproc_process_join(ps[i], MPROC_FOREVER) < 0 ||
                  mproc_process_exitcode(ps[i], &code) != 1 || code != 0))
      failed = 1;
    mproc_process_free(ps[i]);
  }

  peak = ((int32_t *)mproc_array_ptr(counts))[1];
  mirror("print('most inside at once:', counts[1])", "counts[1]");
  printf("most inside at once: %d (the limit is %d)\n", peak, LIMIT);
  if (peak < 1 || peak > LIMIT)
    failed = 1;

  mproc_event_free(idle);
  mproc_array_free(counts);
  mproc_semaphore_free(sem);
  printf("%s\n", failed ? "FAILED" : "ok");
  return failed;
}
