/* names.c: process names and pids, as Python's current_process() and
 * parent_process() report them.
 *
 * A process gets the name you give it (mproc_process_options.name) or a
 * default one: "Process-1", "Process-2", ... numbered in creation order, and
 * a child's own children are "Process-<its number>:1", ":2", ...  The main
 * program is "MainProcess".  A child sees the name its parent gave it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

/* Print "name (pid N), parent name" for the calling process. */
static void report(const char *what) {
  mproc_process *me = mproc_current_process();
  mproc_process *parent = mproc_parent_process(); /* NULL in the main program */
  int64_t pid = -1;
  int rc = mproc_process_pid(me, &pid);
  if (rc < 0)
    fprintf(stderr, "mproc_process_pid: %s\n", mproc_strerror(rc));
  printf("%-12s name=%-12s pid=%-7" PRId64 " parent=%s\n", what,
         mproc_process_name(me), pid,
         parent ? mproc_process_name(parent) : "(none)");
  fflush(stdout);
}

static int worker(const mproc_args *args) {
  (void)args;
  report("worker:");
  return 0;
}

/* A child that starts a child of its own, to show the "Process-N:M" names. */
static int spawner(const mproc_args *args) {
  mproc_process *p = NULL;
  int rc;
  (void)args;
  report("spawner:");
  if ((rc = mproc_process_create(&p, "worker", NULL, NULL)) < 0 ||
      (rc = mproc_process_start(p)) < 0 ||
      (rc = mproc_process_join(p, MPROC_FOREVER)) < 0)
    fprintf(stderr, "spawner: %s\n", mproc_strerror(rc));
  mproc_process_free(p);
  return rc < 0 ? 1 : 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(worker), MPROC_ENTRY(spawner),
                                      MPROC_ENTRY_END};

int main(int argc, char **argv) {
  /* name NULL: a default "Process-N" name. */
  const mproc_process_options named1 = {.name = "worker 1"};
  const mproc_process_options named2 = {.name = "my_service"};
  struct {
    const char *entry;
    const mproc_process_options *opts;
  } plan[] = {{"worker", &named1}, {"worker", &named2}, {"worker", NULL},
              {"spawner", NULL}};
  mproc_process *procs[4];
  size_t i, n = sizeof plan / sizeof plan[0];
  int rc;

  rc = mproc_main(argc, argv, entries);
  if (rc < 0) {
    fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 1;
  }
  report("main:");

  for (i = 0; i < n; i++) {
    rc = mproc_process_create(&procs[i], plan[i].entry, NULL, plan[i].opts);
    if (rc < 0) {
      fprintf(stderr, "mproc_process_create: %s\n", mproc_strerror(rc));
      return 1;
    }
    /* One at a time, so the output comes in a readable order. */
    if ((rc = mproc_process_start(procs[i])) < 0 ||
        (rc = mproc_process_join(procs[i], MPROC_FOREVER)) < 0) {
      fprintf(stderr, "%s: %s\n", mproc_process_name(procs[i]),
              mproc_strerror(rc));
      return 1;
    }
  }

  for (i = 0; i < n; i++) {
    int64_t pid = -1;
    if ((rc = mproc_process_pid(procs[i], &pid)) < 0) {
      fprintf(stderr, "mproc_process_pid: %s\n", mproc_strerror(rc));
      return 1;
    }
    printf("main: started %-12s pid=%" PRId64 "\n", mproc_process_name(procs[i]),
           pid);
    mproc_process_free(procs[i]);
  }
  return 0;
}
