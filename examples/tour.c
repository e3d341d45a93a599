/* tour.c: a walk through mproc in one program.
 *
 * Each section starts processes, prints what happens and checks it: start
 * methods, names and pids, exit codes, arguments, globals, join with a
 * timeout, terminate/kill/interrupt, waiting on several processes, and
 * daemons.  The tour takes a few seconds and exits with 0 when every check
 * passed, 1 otherwise.
 *
 *     ./tour                            # fork on POSIX, spawn on Windows
 *     MPROC_START_METHOD=spawn ./tour   # spawn, as Windows does it
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* nanosleep; must precede every #include */
#endif

#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- printing and checking ---------------------------------------------- */

static int checks, failures;

/* Print one line and flush it at once, so that the parent's and the
 * children's lines come out in the order they happen even when stdout is a
 * pipe (a child killed by a signal would also lose what it had buffered). */
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

static void heading(const char *title) { say("\n== %s ==", title); }

static void check(int ok, const char *fmt, ...) {
  va_list ap;
  checks++;
  if (!ok)
    failures++;
  printf("  %s ", ok ? "ok  " : "FAIL");
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/* For calls that should succeed: a negative code is a failed check. */
static int must(int rc, const char *what) {
  if (rc < 0)
    check(0, "%s: %s (%s)", what, mproc_err_name(rc), mproc_strerror(rc));
  return rc;
}

/* In a child: a line tagged with the child's name and pid. */
static void child_say(const char *fmt, ...) {
  mproc_process *me = mproc_current_process();
  int64_t pid = -1;
  va_list ap;
  (void)mproc_process_pid(me, &pid);
  printf("    [%s, pid %" PRId64 "] ", mproc_process_name(me), pid);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

#define NO_CODE INT_MIN

/* The exit code, or NO_CODE while there is none (not started, running). */
static int exitcode_of(mproc_process *p) {
  int code = NO_CODE;
  return mproc_process_exitcode(p, &code) == 1 ? code : NO_CODE;
}

static const char *method_name(mproc_start_method m) {
  return m == MPROC_START_FORK ? "fork" : "spawn";
}

/* ---- the entries: functions that run in child processes ----------------- */

/* worker(n): says hello, exits with 10 + n. */
static int worker(const mproc_args *args) {
  int64_t n = 0;
  if (mproc_arg_int(args, 0, &n) < 0)
    return 1;
  child_say("worker %" PRId64 ", exiting with %d", n, (int)(10 + n));
  return (int)(10 + n);
}

/* whoami(ppid=..., [name=...]): checks what current_process() and
 * parent_process() say against what the parent passed; without a name, the
 * child expects a default "Process-N".  Exit 0 if all agree. */
static int whoami(const mproc_args *args) {
  mproc_process *me = mproc_current_process();
  mproc_process *parent = mproc_parent_process();
  const char *name = mproc_process_name(me), *want_name = NULL;
  int64_t want_ppid = -1, ppid = -1;
  int name_ok;
  if (mproc_kwarg_int(args, "ppid", &want_ppid) < 0 || !parent ||
      mproc_process_pid(parent, &ppid) < 0)
    return 1;
  if (mproc_kwarg_str(args, "name", &want_name) == 0)
    name_ok = strcmp(name, want_name) == 0;
  else
    name_ok = strncmp(name, "Process-", 8) == 0;
  child_say("my name is %s; my parent is %s, pid %" PRId64, name,
            mproc_process_name(parent), ppid);
  return name_ok && strcmp(mproc_process_name(parent), "MainProcess") == 0 &&
                 ppid == want_ppid
             ? 0
             : 1;
}

static const unsigned char blob[] = {0x00, 0x01, 0x7f, 0x80, 0xff};

/* show_args(42, 0.1, "hello, world", blob, retries=3, big=-2^53-1,
 * mode="fast"): prints and checks every value.  Exit 0 if all match. */
static int show_args(const mproc_args *args) {
  int64_t i = 0, retries = 0, big = 0;
  double d = 0;
  const char *s = "", *mode = "";
  const void *data = NULL;
  size_t len = 0;
  if (mproc_arg_int(args, 0, &i) < 0 || mproc_arg_double(args, 1, &d) < 0 ||
      mproc_arg_str(args, 2, &s) < 0 ||
      mproc_arg_bytes(args, 3, &data, &len) < 0 ||
      mproc_kwarg_int(args, "retries", &retries) < 0 ||
      mproc_kwarg_int(args, "big", &big) < 0 ||
      mproc_kwarg_str(args, "mode", &mode) < 0) {
    child_say("an argument is missing or has another type");
    return 1;
  }
  child_say("args: %" PRId64 ", %.17g, \"%s\", %u bytes", i, d, s,
            (unsigned)len);
  child_say("kwargs: retries=%" PRId64 ", big=%" PRId64 ", mode=%s", retries,
            big, mode);
  /* Doubles travel bit-exact: compare the bits with a stored 0.1, because
   * on x87 (FLT_EVAL_METHOD 2) the literal 0.1 in `d == 0.1` may be
   * evaluated in long double and never equal a double. */
  const double tenth = 0.1;
  return i == 42 && memcmp(&d, &tenth, sizeof d) == 0 && strcmp(s, "hello, world") == 0 &&
                 len == sizeof blob && memcmp(data, blob, len) == 0 &&
                 retries == 3 && big == -INT64_C(9007199254740993) &&
                 strcmp(mode, "fast") == 0 &&
                 mproc_args_count(args) == 4 && mproc_kwargs_count(args) == 3
             ? 0
             : 1;
}

static int counter = 1;

/* read_global(): exits with the value of `counter` it found, after
 * changing its own copy. */
static int read_global(const mproc_args *args) {
  int seen = counter;
  (void)args;
  counter = 100;
  child_say("counter was %d here; set it to %d", seen, counter);
  return seen;
}

/* sleeper(seconds, code): sleeps, exits with `code`. */
static int sleeper(const mproc_args *args) {
  double s = 0;
  int64_t code = 0;
  if (mproc_arg_double(args, 0, &s) < 0 || mproc_arg_int(args, 1, &code) < 0)
    return 1;
  sleep_seconds(s);
  return (int)code;
}

/* late_daemon(): a daemonic child.  Shows that it may not start children,
 * then sleeps long enough that its last line could only appear if nothing
 * terminated it. */
static int late_daemon(const mproc_args *args) {
  mproc_process *p = NULL;
  int rc;
  (void)args;
  rc = mproc_process_create(&p, "worker", NULL, NULL);
  if (rc == 0)
    rc = mproc_process_start(p);
  mproc_process_free(p);
  child_say("daemonic, so starting a child gives %s", mproc_err_name(rc));
  sleep_seconds(20.0);
  child_say("LATE: this line must never appear");
  return 0;
}

/* daemon_scene(): starts a daemonic and a non-daemonic child and returns
 * without joining either.  Its exit handler terminates the daemon and joins
 * the other, so the scene ends soon, not after the daemon's 20 s sleep. */
static int daemon_scene(const mproc_args *args) {
  const mproc_process_options dopts = {.name = "the-daemon",
                                       .daemon = MPROC_DAEMON_YES};
  const mproc_process_options nopts = {.name = "the-non-daemon"};
  mproc_process *d = NULL, *n = NULL;
  mproc_args *wargs = NULL;
  int rc;
  (void)args;
  if ((rc = mproc_args_create(&wargs)) < 0 ||
      (rc = mproc_args_add_int(wargs, NULL, 5)) < 0 ||
      (rc = mproc_process_create(&d, "late_daemon", NULL, &dopts)) < 0 ||
      (rc = mproc_process_create(&n, "worker", wargs, &nopts)) < 0 ||
      (rc = mproc_process_start(d)) < 0 || (rc = mproc_process_start(n)) < 0) {
    child_say("cannot start the children: %s", mproc_strerror(rc));
    return 1;
  }
  mproc_args_free(wargs);
  /* Give the daemon a moment to print.  The join times out: it runs on. */
  (void)mproc_process_join(d, 0.5);
  child_say("returning without joining %s (daemon) or %s",
            mproc_process_name(d), mproc_process_name(n));
  mproc_process_free(d);
  mproc_process_free(n);
  return 0;
}

static const mproc_entry entries[] = {
    MPROC_ENTRY(worker),      MPROC_ENTRY(whoami),      MPROC_ENTRY(show_args),
    MPROC_ENTRY(read_global), MPROC_ENTRY(sleeper),     MPROC_ENTRY(late_daemon),
    MPROC_ENTRY(daemon_scene), MPROC_ENTRY_END};

/* ---- helpers for the parent --------------------------------------------- */

/* Create and start a process; NULL (and a failed check) on error. */
static mproc_process *start(const char *entry, const mproc_args *args,
                            const mproc_process_options *opts) {
  mproc_process *p = NULL;
  if (must(mproc_process_create(&p, entry, args, opts), entry) < 0)
    return NULL;
  if (must(mproc_process_start(p), mproc_process_name(p)) < 0)
    return mproc_process_free(p);
  return p;
}

/* A sleeper(seconds, code).  Long sleepers are made daemonic so that a
 * failed step cannot keep the tour waiting for them at exit. */
static mproc_process *start_sleeper(const char *name, double seconds, int code) {
  mproc_process_options opts = {.name = name, .daemon = MPROC_DAEMON_YES};
  mproc_args *args = NULL;
  mproc_process *p = NULL;
  if (must(mproc_args_create(&args), "mproc_args_create") == 0 &&
      must(mproc_args_add_double(args, NULL, seconds), "add_double") == 0 &&
      must(mproc_args_add_int(args, NULL, code), "add_int") == 0)
    p = start("sleeper", args, &opts);
  mproc_args_free(args);
  return p;
}

static int join_ok(mproc_process *p) {
  return must(mproc_process_join(p, MPROC_FOREVER), "join") == 0;
}

/* ---- the tour ----------------------------------------------------------- */

static void section_start_method(void) {
  mproc_process *me = mproc_current_process();
  const char *env = getenv("MPROC_START_METHOD");
  int64_t pid = -1;
  size_t nchildren = 99;
  heading("1. Start method and the main process");
  say("mproc %s, %d CPUs", mproc_version_string(), mproc_cpu_count());
  say("start method: %s (MPROC_START_METHOD=%s)",
      method_name(mproc_get_start_method()), env ? env : "(unset)");
  (void)must(mproc_process_pid(me, &pid), "pid of the main process");
  say("this is %s, pid %" PRId64, mproc_process_name(me), pid);
  check(strcmp(mproc_process_name(me), "MainProcess") == 0,
        "the main program is called MainProcess");
  check(mproc_parent_process() == NULL, "the main program has no parent");
  check(mproc_active_children(NULL, 0, &nchildren) == 0 && nchildren == 0,
        "no children yet");
}

static void section_five_workers(void) {
  mproc_process *ps[5];
  int i;
  heading("2. Five workers and their exit codes");
  say("starting worker(0) .. worker(4); each exits with 10 + its argument");
  for (i = 0; i < 5; i++) {
    mproc_args *args = NULL;
    ps[i] = NULL;
    if (must(mproc_args_create(&args), "mproc_args_create") == 0 &&
        must(mproc_args_add_int(args, NULL, i), "add_int") == 0)
      ps[i] = start("worker", args, NULL);
    mproc_args_free(args);
  }
  for (i = 0; i < 5; i++) {
    int64_t pid = -1;
    if (!ps[i] || !join_ok(ps[i]))
      continue;
    (void)mproc_process_pid(ps[i], &pid);
    check(exitcode_of(ps[i]) == 10 + i, "%s (pid %" PRId64 ") exitcode %d",
          mproc_process_name(ps[i]), pid, exitcode_of(ps[i]));
    mproc_process_free(ps[i]);
  }
}

static void section_names(void) {
  const mproc_process_options named = {.name = "alice"};
  int64_t mypid = -1;
  int i;
  heading("3. Names and pids");
  say("one child named \"alice\", one with a default name \"Process-N\"");
  (void)must(mproc_process_pid(mproc_current_process(), &mypid), "pid");
  for (i = 0; i < 2; i++) {
    mproc_process *p = NULL;
    mproc_args *args = NULL;
    if (must(mproc_args_create(&args), "mproc_args_create") == 0 &&
        must(mproc_args_add_int(args, "ppid", mypid), "add_int") == 0 &&
        (i == 1 ||
         must(mproc_args_add_str(args, "name", named.name), "add_str") == 0))
      p = start("whoami", args, i == 0 ? &named : NULL);
    mproc_args_free(args);
    if (p && join_ok(p))
      check(exitcode_of(p) == 0,
            "%s agrees on its name and on its parent's name and pid",
            mproc_process_name(p));
    mproc_process_free(p);
  }
}

static void section_arguments(void) {
  mproc_args *args = NULL;
  mproc_process *p = NULL;
  heading("4. Arguments");
  say("positional: 42, 0.1, \"hello, world\", 5 bytes; "
      "keyword: retries=3, big=-2^53-1, mode=\"fast\"");
  if (must(mproc_args_create(&args), "mproc_args_create") == 0 &&
      must(mproc_args_add_int(args, NULL, 42), "add_int") == 0 &&
      must(mproc_args_add_double(args, NULL, 0.1), "add_double") == 0 &&
      must(mproc_args_add_str(args, NULL, "hello, world"), "add_str") == 0 &&
      must(mproc_args_add_bytes(args, NULL, blob, sizeof blob), "add_bytes") ==
          0 &&
      must(mproc_args_add_int(args, "retries", 3), "add_int") == 0 &&
      must(mproc_args_add_int(args, "big", -INT64_C(9007199254740993)),
           "add_int") == 0 &&
      must(mproc_args_add_str(args, "mode", "fast"), "add_str") == 0)
    p = start("show_args", args, NULL);
  mproc_args_free(args); /* the process has its own copy */
  if (p && join_ok(p))
    check(exitcode_of(p) == 0, "the child read back every value exactly");
  mproc_process_free(p);
}

static void section_globals(void) {
  static const mproc_start_method methods[2] = {MPROC_START_FORK,
                                                MPROC_START_SPAWN};
  int i;
  heading("5. Globals are not shared");
  counter = 2;
  say("the parent sets counter = 2 (it starts as 1), then starts one child "
      "per start method (a per-process option)");
  for (i = 0; i < 2; i++) {
    mproc_process_options opts = {.start_method = methods[i]};
    mproc_process *p = NULL;
    int rc = mproc_process_create(&p, "read_global", NULL, &opts);
    if (rc == MPROC_ENOTSUP) {
#ifdef _WIN32
      check(1, "fork: not available on Windows (MPROC_ENOTSUP)");
#else
      check(0, "fork: MPROC_ENOTSUP on a POSIX system");
#endif
      continue;
    }
    if (must(rc, "create") < 0)
      continue;
    say("  %s:", method_name(methods[i]));
    if (must(mproc_process_start(p), "start") == 0 && join_ok(p))
      check(exitcode_of(p) == (methods[i] == MPROC_START_FORK ? 2 : 1),
            "a %s child sees %d: %s", method_name(methods[i]), exitcode_of(p),
            methods[i] == MPROC_START_FORK
                ? "a copy of the parent's memory at start()"
                : "the program started afresh");
    mproc_process_free(p);
  }
  check(counter == 2, "the parent's counter is still %d", counter);
}

static void section_join_timeout(void) {
  mproc_process *p, *q = NULL;
  heading("6. join with a timeout, is_alive, exitcode, and mistakes");
  say("a child that sleeps 1 s and exits with 3");
  p = start_sleeper("sleepy", 1.0, 3);
  if (!p)
    return;
  check(mproc_process_join(p, 0.05) == MPROC_ETIMEDOUT,
        "join(0.05) -> MPROC_ETIMEDOUT while it sleeps");
  check(mproc_process_is_alive(p) == 1, "is_alive -> 1");
  check(exitcode_of(p) == NO_CODE, "exitcode -> none yet");
  check(mproc_process_start(p) == MPROC_ESTATE,
        "start again -> MPROC_ESTATE (a process starts once)");
  check(mproc_process_close(p) == MPROC_EBUSY,
        "close while it runs -> MPROC_EBUSY");
  check(mproc_process_create(&q, "no_such_entry", NULL, NULL) ==
            MPROC_ENOENTRY,
        "create with an unknown entry -> MPROC_ENOENTRY (\"%s\")",
        mproc_strerror(MPROC_ENOENTRY));
  if (join_ok(p)) {
    check(mproc_process_is_alive(p) == 0, "join(forever) -> 0, is_alive -> 0");
    check(exitcode_of(p) == 3, "exitcode -> %d", exitcode_of(p));
    check(mproc_process_join(p, 0) == 0, "join again -> 0 (any number of times)");
  }
  mproc_process_free(p);
}

static void section_signals(void) {
  static const char *const names[3] = {"terminate", "kill", "interrupt"};
  static const int want[3] = {-15, -9, -2};
  mproc_process *ps[3];
  void (*prev)(int);
  int i, rc;
  int64_t pid = -1;
  heading("7. terminate, kill, interrupt");
  say("three children that would sleep 60 s");
  /* A fork child inherits the parent's signal dispositions.  If whoever
   * started the tour ignores SIGINT (nohup, a background job of a script),
   * a fork child would ignore interrupt() too, so the children get the
   * default action.  (Spawned children always start with the defaults.) */
  prev = signal(SIGINT, SIG_DFL);
  for (i = 0; i < 3; i++)
    ps[i] = start_sleeper(names[i], 60.0, 0);
  if (prev != SIG_ERR)
    (void)signal(SIGINT, prev);
  for (i = 0; i < 3; i++) {
    if (!ps[i])
      continue;
    rc = i == 0   ? mproc_process_terminate(ps[i])
         : i == 1 ? mproc_process_kill(ps[i])
                  : mproc_process_interrupt(ps[i]);
    if (must(rc, names[i]) < 0 || !join_ok(ps[i]))
      continue;
    check(exitcode_of(ps[i]) == want[i], "%s -> exitcode %d", names[i],
          exitcode_of(ps[i]));
  }
  if (ps[0]) {
    check(mproc_process_terminate(ps[0]) == 0,
          "terminate an ended child -> 0, nothing is signalled");
    check(mproc_process_close(ps[0]) == 0, "close -> 0");
    check(mproc_process_pid(ps[0], &pid) == MPROC_ECLOSED &&
              mproc_process_name(ps[0]) == NULL,
          "after close: pid -> MPROC_ECLOSED, name -> NULL");
  }
  for (i = 0; i < 3; i++)
    mproc_process_free(ps[i]);
}

static void section_wait(void) {
  static const char *const names[3] = {"slow", "fast", "medium"};
  static const double secs[3] = {0.9, 0.1, 0.5};
  mproc_process *ps[3];
  mproc_waitable items[3];
  size_t n = 0, i, active = 0;
  int ended = 0, rc;
  heading("8. Waiting on several processes (mproc_wait)");
  say("slow (0.9 s), fast (0.1 s) and medium (0.5 s); report each as it ends");
  for (i = 0; i < 3; i++) {
    ps[i] = start_sleeper(names[i], secs[i], (int)i);
    if (!ps[i])
      continue;
    memset(&items[n], 0, sizeof items[n]);
    items[n].kind = MPROC_WAIT_PROCESS;
    items[n].object = ps[i];
    n++;
  }
  rc = mproc_active_children(NULL, 0, &active);
  check(rc == 0 && active == n, "mproc_active_children -> %u running",
        (unsigned)active);
  while (n > 0) {
    int r = mproc_wait(items, n, 10.0);
    if (r <= 0) {
      check(0, "mproc_wait -> %d (%s)", r,
            r == 0 ? "timed out" : mproc_strerror(r));
      break;
    }
    /* Ready processes are not reaped by mproc_wait: join them, and drop
     * them from the list (compacting it). */
    for (i = 0; i < n;) {
      if (items[i].ready) {
        mproc_process *p = (mproc_process *)items[i].object;
        if (join_ok(p))
          say("  ended: %s", mproc_process_name(p));
        ended++;
        items[i] = items[--n];
      } else {
        i++;
      }
    }
  }
  check(ended == 3, "all three ended (listed in the order they finished)");
  rc = mproc_active_children(NULL, 0, &active);
  check(rc == 0 && active == 0, "mproc_active_children -> %u running",
        (unsigned)active);
  for (i = 0; i < 3; i++)
    mproc_process_free(ps[i]);
}

static void section_daemons(void) {
  mproc_process *scene;
  int rc;
  heading("9. Daemons");
  say("a child starts a daemon (sleeps 20 s, then prints LATE) and a "
      "non-daemon, and returns without joining them");
  scene = start("daemon_scene", NULL, NULL);
  if (!scene)
    return;
  rc = mproc_process_join(scene, 10.0);
  check(rc == 0, "its exit handler terminated the daemon and joined the "
                 "non-daemon: it ended in under 10 s");
  if (rc == 0)
    check(exitcode_of(scene) == 0, "exitcode %d", exitcode_of(scene));
  else
    (void)mproc_process_kill(scene);
  mproc_process_free(scene);
}

int main(int argc, char **argv) {
  size_t left = 0;
  int rc = mproc_main(argc, argv, entries);
  if (rc < 0) {
    fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 1;
  }
  say("mproc tour: Python's multiprocessing, in C");
  section_start_method();
  section_five_workers();
  section_names();
  section_arguments();
  section_globals();
  section_join_timeout();
  section_signals();
  section_wait();
  section_daemons();

  heading("Done");
  check(mproc_active_children(NULL, 0, &left) == 0 && left == 0,
        "no children left");
  if (failures)
    say("%d of %d checks FAILED", failures, checks);
  else
    say("all %d checks passed", checks);
  return failures ? 1 : 0;
}
