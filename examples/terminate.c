/* terminate.c: stop a running child and read its exit code.
 *
 * Python:
 *     p = Process(target=time.sleep, args=(1000,))
 *     p.start(); p.terminate(); p.join()
 *     p.exitcode == -signal.SIGTERM
 *
 * The exit code of a child killed by signal N is -N.  terminate() sends
 * SIGTERM on POSIX and calls TerminateProcess on Windows, and both report
 * -15, so the same check works everywhere.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* nanosleep; must precede every #include */
#endif

#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
static void sleep_seconds(double s) { Sleep((DWORD)(s * 1000)); }
#else
#include <errno.h>
#include <time.h>
static void sleep_seconds(double s) {
  struct timespec ts;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}
#endif

static int sleeper(const mproc_args *args) {
  (void)args;
  sleep_seconds(1000.0);
  return 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(sleeper), MPROC_ENTRY_END};

/* Print is_alive and the exit code ("none" while there is none yet). */
static void show(mproc_process *p, const char *when) {
  int code = 0;
  int alive = mproc_process_is_alive(p);
  int have = mproc_process_exitcode(p, &code);
  if (alive < 0 || have < 0) {
    fprintf(stderr, "terminate: %s\n", mproc_strerror(alive < 0 ? alive : have));
    exit(1);
  }
  if (have)
    printf("%-18s is_alive=%d exitcode=%d\n", when, alive, code);
  else
    printf("%-18s is_alive=%d exitcode=none\n", when, alive);
}

static void die(const char *what, int rc) {
  fprintf(stderr, "terminate: %s: %s\n", what, mproc_strerror(rc));
  exit(1);
}

int main(int argc, char **argv) {
  mproc_process *p;
  int rc, code = 0;

  rc = mproc_main(argc, argv, entries);
  if (rc < 0)
    die("mproc_main", rc);

  if ((rc = mproc_process_create(&p, "sleeper", NULL, NULL)) < 0)
    die("mproc_process_create", rc);
  show(p, "before start:");

  if ((rc = mproc_process_start(p)) < 0)
    die("mproc_process_start", rc);
  show(p, "running:");

  /* join with a timeout: the sleeper is still running after 0.2 s. */
  rc = mproc_process_join(p, 0.2);
  if (rc < 0 && rc != MPROC_ETIMEDOUT)
    die("mproc_process_join", rc);
  printf("join(0.2):         %s\n", mproc_err_name(rc));

  if ((rc = mproc_process_terminate(p)) < 0)
    die("mproc_process_terminate", rc);
  show(p, "just terminated:"); /* may still be alive for a moment */

  if ((rc = mproc_process_join(p, MPROC_FOREVER)) < 0)
    die("mproc_process_join", rc);
  show(p, "joined:");

  /* A second terminate() is harmless: an ended child is left alone. */
  if ((rc = mproc_process_terminate(p)) < 0)
    die("second terminate", rc);

  if ((rc = mproc_process_exitcode(p, &code)) < 0)
    die("mproc_process_exitcode", rc);
  printf("exitcode == -15 (SIGTERM): %s\n", code == -15 ? "yes" : "no");

  /* Release the OS resources, then the object. */
  if ((rc = mproc_process_close(p)) < 0)
    die("mproc_process_close", rc);
  mproc_process_free(p);
  return code == -15 ? 0 : 1;
}
