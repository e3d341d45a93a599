/* daemon.c: daemonic and non-daemonic processes.
 *
 * As in Python, when the main program ends normally mproc first terminates
 * its daemonic children that are still running, then joins the others.  So
 * here the non-daemon's lines all appear, while the daemon, still asleep
 * when main returns, is terminated and its "exiting" line never appears.
 * (A daemonic child also dies if the parent is killed: Linux arms
 * PR_SET_PDEATHSIG, Windows puts it in a kill-on-close job object.)
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* nanosleep; must precede every #include */
#endif

#include <inttypes.h>
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

/* Both entries print "starting" and "exiting" with their name and pid. */
static void say(const char *what) {
  mproc_process *me = mproc_current_process();
  int64_t pid = -1;
  (void)mproc_process_pid(me, &pid);
  printf("%-9s %-10s (pid %" PRId64 ", daemon=%d)\n", what,
         mproc_process_name(me), pid, mproc_process_daemon(me));
  fflush(stdout); /* a terminated process does not flush its buffers */
}

static int daemon_main(const mproc_args *args) {
  (void)args;
  say("starting");
  sleep_seconds(5.0);
  say("exiting"); /* never printed: main ends first and terminates us */
  return 0;
}

static int non_daemon_main(const mproc_args *args) {
  (void)args;
  say("starting");
  sleep_seconds(0.5);
  say("exiting");
  return 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(daemon_main),
                                      MPROC_ENTRY(non_daemon_main),
                                      MPROC_ENTRY_END};

static void die(const char *what, int rc) {
  fprintf(stderr, "daemon: %s: %s\n", what, mproc_strerror(rc));
  exit(1);
}

int main(int argc, char **argv) {
  const mproc_process_options dopts = {.name = "daemon",
                                       .daemon = MPROC_DAEMON_YES};
  const mproc_process_options nopts = {.name = "non-daemon",
                                       .daemon = MPROC_DAEMON_NO};
  mproc_process *d, *n;
  int rc;

  rc = mproc_main(argc, argv, entries);
  if (rc < 0)
    die("mproc_main", rc);

  if ((rc = mproc_process_create(&d, "daemon_main", NULL, &dopts)) < 0 ||
      (rc = mproc_process_create(&n, "non_daemon_main", NULL, &nopts)) < 0)
    die("mproc_process_create", rc);

  if ((rc = mproc_process_start(d)) < 0)
    die("start daemon", rc);
  /* Give the daemon a moment to print its first line.  A join with a
   * timeout doubles as a sleep: it returns MPROC_ETIMEDOUT, because the
   * daemon is still running. */
  rc = mproc_process_join(d, 1.0);
  if (rc != MPROC_ETIMEDOUT) {
    fprintf(stderr, "daemon: the daemon ended too early (%s)\n",
            mproc_strerror(rc));
    return 1;
  }
  if ((rc = mproc_process_start(n)) < 0)
    die("start non-daemon", rc);

  printf("main: returning without joining either child\n");
  fflush(stdout);
  /* Dropping our references does not stop the children: mproc still tracks
   * them, and its exit handler terminates the daemon and waits for the
   * non-daemon. */
  mproc_process_free(d);
  mproc_process_free(n);
  return 0;
}
