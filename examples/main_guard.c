/* main_guard.c: why mproc_main() comes first (Python's __main__ guard).
 *
 * Under the spawn start method (and always on Windows) a child is this
 * program started again from the top.  Python re-imports the main module in
 * the child, so module-level code runs once more in every child:
 *
 *     print('setup: loading the configuration')   # module level: NOT guarded
 *     p = Process(target=work)                    # RuntimeError in a spawned
 *                                                 # child (bootstrapping phase)
 *     def work(): ...
 *
 *     if __name__ == '__main__':                  # only in the parent
 *         ps = [Process(target=work) for i in range(3)]
 *         ...
 *
 * In C the "module level" is whatever main() does before it calls
 * mproc_main(): a spawned child runs all of it again before mproc_main()
 * takes over and runs the entry.  This program does it wrong on purpose:
 * setup_before_main() runs before mproc_main(), and
 *   - its side effect (here a counter and a line of output; in real code a
 *     log file truncated, a connection opened, a big table loaded) happens
 *     again in every spawned child;
 *   - its attempt to start a process is refused with MPROC_ENOINIT
 *     ("mproc_main() was not called"), in the parent and in every child, where
 *     Python raises RuntimeError in the children only.
 * Under fork the child is a copy of the parent taken at start(), long after
 * the setup: nothing runs again, which is why code that "works" under fork
 * can break under spawn and on Windows.
 *
 * Each child finds out whether the setup ran again in its own process, and
 * tells the parent through its exit code; the program checks that this
 * matches the start method (spawn and forkserver: yes in every child;
 * fork: in none).
 * The rule: call mproc_main() first thing in main(), and put setup after it.
 *
 * Each step prints the Python line it mirrors next to the C that does it.
 */
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

#include "mirror.h"

#define NCHILDREN 3
#define EXIT_SETUP_RAN_AGAIN 10 /* the setup ran in this child's process */
#define EXIT_SETUP_INHERITED 11 /* the child is a fork: it ran only in the parent */

static int setup_runs;   /* how often setup_before_main() ran in this process */
static int main_reached; /* 1 once mproc_main() returned here (the parent) */

/* The unguarded "module-level" code: runs before mproc_main(). */
static void setup_before_main(void) {
  mproc_process *p = NULL;
  int rc;
  setup_runs++;
  printf("setup: loading the configuration (code before mproc_main)\n");
  rc = mproc_process_create(&p, "work", NULL, NULL);
  printf("setup: mproc_process_create before mproc_main: %s (%s)\n",
         mproc_err_name(rc), mproc_strerror(rc));
  mproc_process_free(p);
  fflush(stdout);
}

/* In a spawned child mproc_main() never returns, so main_reached is still 0
 * here: if setup_runs is not 0, the setup ran in this very process.  A fork
 * child is a copy of the parent after mproc_main(): main_reached is 1. */
static int work(const mproc_args *args) {
  int ran_again = !main_reached && setup_runs > 0;
  (void)args;
  printf("%s: the setup %s\n", mproc_process_name(mproc_current_process()),
         ran_again ? "ran AGAIN in this child" : "did not run again (a fork copy)");
  fflush(stdout);
  return ran_again ? EXIT_SETUP_RAN_AGAIN : EXIT_SETUP_INHERITED;
}

static const mproc_entry entries[] = {MPROC_ENTRY(work), MPROC_ENTRY_END};

/* Starts the children, joins them and counts those where the setup ran
 * again; -1 if one failed in another way. */
static int run_children(void) {
  mproc_process *ps[NCHILDREN] = {NULL};
  int i, code, again = 0, bad = 0;
  for (i = 0; i < NCHILDREN; i++)
    if (mproc_process_create(&ps[i], "work", NULL, NULL) < 0 ||
        mproc_process_start(ps[i]) < 0)
      bad = 1;
  for (i = 0; i < NCHILDREN; i++) {
    code = -1;
    if (ps[i] && mproc_process_join(ps[i], MPROC_FOREVER) == 0 &&
        mproc_process_exitcode(ps[i], &code) == 1 && code == EXIT_SETUP_RAN_AGAIN)
      again++;
    else if (code != EXIT_SETUP_INHERITED)
      bad = 1;
    mproc_process_free(ps[i]);
  }
  return bad ? -1 : again;
}

int main(int argc, char **argv) {
  int rc, again, fresh, expected;
  mproc_start_method method;

  /* WRONG, on purpose: this belongs after mproc_main(). */
  setup_before_main();

  if ((rc = mproc_main(argc, argv, entries)) < 0) {
    fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 1;
  }
  main_reached = 1;
  /* spawn starts the program again for each child; the forkserver starts it
   * again once (the server, where the setup runs too) and forks children
   * from that copy: either way the setup has run in the child's image. */
  method = mproc_get_start_method();
  fresh = method != MPROC_START_FORK;
  mirror_begin();
  mirror("print('setup: ...')    # module level", "setup_before_main() before mproc_main()");
  mirror("Process(...)  # module level: RuntimeError", "mproc_process_create: MPROC_ENOINIT");
  mirror("if __name__ == '__main__':", "if (mproc_main(argc, argv, entries) < 0)");
  mirror("    for p in ps: p.start(); p.join()", "run_children()");

  again = run_children();
  expected = fresh ? NCHILDREN : 0;
  printf("parent: the setup ran once here and again in %d of %d children "
         "(expected %d under %s)\n",
         again, NCHILDREN, expected,
         method == MPROC_START_SPAWN        ? "spawn"
         : method == MPROC_START_FORKSERVER ? "forkserver"
                                            : "fork");
  printf("the rule: call mproc_main() first in main(); put setup after it\n");
  printf("%s\n", again == expected ? "ok" : "FAILED");
  return again == expected ? 0 : 1;
}
