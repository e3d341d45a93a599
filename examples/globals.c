/* globals.c: processes do not share memory.
 *
 * A child has its own copy of every global variable.  What that copy starts
 * as depends on the start method:
 *   fork   the child is a copy of the parent at start(): it sees the value
 *          the parent had then;
 *   spawn  the child is this program started again: it sees the value the
 *          variable is initialised with, whatever the parent did since.
 * Either way, what the child changes stays in the child.  To share data,
 * pass it as arguments (and, in a later mproc, through pipes, queues or
 * shared memory).
 */
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

static int counter = 1; /* every process starts from its own copy */

static int bump(const mproc_args *args) {
  (void)args;
  printf("child:  counter starts at %d\n", counter);
  counter = 100;
  printf("child:  counter set to %d\n", counter);
  fflush(stdout);
  return 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(bump), MPROC_ENTRY_END};

int main(int argc, char **argv) {
  mproc_process *p = NULL;
  int rc;

  rc = mproc_main(argc, argv, entries);
  if (rc < 0) {
    fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 1;
  }
  printf("start method: %s\n",
         mproc_get_start_method() == MPROC_START_FORK ? "fork" : "spawn");

  counter = 2;
  printf("parent: counter set to %d before start\n", counter);

  if ((rc = mproc_process_create(&p, "bump", NULL, NULL)) < 0 ||
      (rc = mproc_process_start(p)) < 0 ||
      (rc = mproc_process_join(p, MPROC_FOREVER)) < 0) {
    fprintf(stderr, "globals: %s\n", mproc_strerror(rc));
    return 1;
  }
  mproc_process_free(p);

  printf("parent: counter is still %d after the child ended\n", counter);
  return counter == 2 ? 0 : 1;
}
