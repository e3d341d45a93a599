/* five_workers.c: start five processes, then join them.
 *
 * The C version of the first example in Python's multiprocessing tutorial:
 *
 *     def worker(num):
 *         print('Worker:', num)
 *
 *     if __name__ == '__main__':
 *         jobs = [Process(target=worker, args=(i,)) for i in range(5)]
 *         for p in jobs: p.start()
 *         for p in jobs: p.join()
 *
 * The children run concurrently, so their lines may come in any order.
 * Run it with MPROC_START_METHOD=spawn to start each child as a fresh copy of
 * this program instead of a fork (the only method Windows has).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

#define NWORKERS 5

/* An entry: runs in the child; its return value is the child's exit code. */
static int worker(const mproc_args *args) {
  int64_t num = -1;
  int rc = mproc_arg_int(args, 0, &num);
  if (rc < 0) {
    fprintf(stderr, "worker: argument 0: %s\n", mproc_strerror(rc));
    return 1;
  }
  printf("%s: worker %" PRId64 "\n", mproc_process_name(mproc_current_process()),
         num);
  return 0;
}

/* Every function a child may run is listed here, by name. */
static const mproc_entry entries[] = {MPROC_ENTRY(worker), MPROC_ENTRY_END};

static void die(const char *what, int rc) {
  fprintf(stderr, "five_workers: %s: %s\n", what, mproc_strerror(rc));
  exit(1);
}

int main(int argc, char **argv) {
  mproc_process *jobs[NWORKERS];
  int i, rc, code, failed = 0;

  /* First line of main: a spawned child runs its entry in here and exits. */
  rc = mproc_main(argc, argv, entries);
  if (rc < 0)
    die("mproc_main", rc);

  for (i = 0; i < NWORKERS; i++) {
    mproc_args *args;
    if ((rc = mproc_args_create(&args)) < 0 ||
        (rc = mproc_args_add_int(args, NULL, i)) < 0)
      die("building the arguments", rc);
    /* The arguments are copied: the list can be freed at once. */
    rc = mproc_process_create(&jobs[i], "worker", args, NULL);
    mproc_args_free(args);
    if (rc < 0)
      die("mproc_process_create", rc);
    if ((rc = mproc_process_start(jobs[i])) < 0)
      die("mproc_process_start", rc);
  }

  for (i = 0; i < NWORKERS; i++) {
    code = -1;
    if ((rc = mproc_process_join(jobs[i], MPROC_FOREVER)) < 0)
      die("mproc_process_join", rc);
    /* After a successful join the exit code is there (returns 1). */
    if ((rc = mproc_process_exitcode(jobs[i], &code)) < 0)
      die("mproc_process_exitcode", rc);
    if (code != 0)
      failed = 1;
    printf("main: %s ended with exit code %d\n", mproc_process_name(jobs[i]),
           code);
    mproc_process_free(jobs[i]);
  }
  return failed;
}
