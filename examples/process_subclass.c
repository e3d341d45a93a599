/* process_subclass.c: a Process subclass with run(), the C way.
 *
 * Python's tutorials often subclass Process: the object carries its state,
 * and run() is what the child executes:
 *
 *     class Counter(Process):
 *         def __init__(self, name, first, last, results):
 *             super().__init__(name=name)
 *             self.first, self.last = first, last
 *             self.results = results          # a Queue
 *             self.total = 0
 *         def run(self):                      # runs in the child
 *             self.total = sum(range(self.first, self.last + 1))
 *             self.results.put((self.name, self.total))
 *
 *     if __name__ == '__main__':
 *         results = Queue()
 *         counters = [Counter(f'counter-{i}', 100 * i, 100 * i + 99, results)
 *                     for i in range(3)]
 *         for c in counters: c.start()
 *         for c in counters: print(results.get())
 *         for c in counters: c.join()
 *         print(counters[0].total)            # 0: run() changed the child's copy
 *
 * C has no classes, and a spawned child (and every child on Windows) is this
 * program started again, so it cannot receive a pointer to the parent's
 * object.  The idiom:
 *   - a struct holds the state (the subclass's attributes);
 *   - counter_to_args() writes the fields into an mproc_args, and
 *     counter_from_args() rebuilds the struct in the child (what pickling
 *     the Process object does for Python under spawn);
 *   - an entry, counter_run_entry, rebuilds the struct and calls
 *     counter_run(&self): that is run().
 * As in Python, the child works on its own copy: what run() changes there is
 * not seen by the parent.  Results come back through an IPC object kept in
 * the struct (here a Queue), exactly as the Python class keeps `results`.
 *
 * Each step prints the Python line it mirrors next to the C that does it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

#include "mirror.h"

#define NCOUNTERS 3

/* The "subclass": its attributes.  `name` is the process's name. */
typedef struct counter {
  const char *name;
  int64_t first, last;
  mproc_queue *results; /* shared: parent and children use the same queue */
  int64_t total;        /* set by run(), in the child */
} counter;

/* Counter.__init__'s arguments, as an argument list (keyword arguments, so
 * the child reads them by name whatever their order). */
static int counter_to_args(const counter *self, mproc_args *args) {
  int rc;
  if ((rc = mproc_args_add_int(args, "first", self->first)) < 0 ||
      (rc = mproc_args_add_int(args, "last", self->last)) < 0 ||
      (rc = mproc_args_add_object(args, "results", self->results)) < 0)
    return rc;
  return MPROC_OK;
}

/* The child's copy of the object.  The queue is the child's own handle on
 * the shared queue, owned by `args` (valid until the entry returns). */
static int counter_from_args(const mproc_args *args, counter *self) {
  void *q = NULL;
  int rc;
  memset(self, 0, sizeof(*self));
  self->name = mproc_process_name(mproc_current_process());
  if ((rc = mproc_kwarg_int(args, "first", &self->first)) < 0 ||
      (rc = mproc_kwarg_int(args, "last", &self->last)) < 0 ||
      (rc = mproc_kwarg_object(args, "results", MPROC_OBJ_QUEUE, &q)) < 0)
    return rc;
  self->results = (mproc_queue *)q;
  return MPROC_OK;
}

/* run(): the child's work, on the child's copy of the object. */
static int counter_run(counter *self) {
  char msg[128];
  int64_t i;
  int n;
  self->total = 0;
  for (i = self->first; i <= self->last; i++)
    self->total += i;
  printf("%s: run() in the child: self.total = %" PRId64 "\n", self->name,
         self->total);
  fflush(stdout);
  n = snprintf(msg, sizeof(msg), "%s %" PRId64, self->name, self->total);
  if (n < 0 || (size_t)n >= sizeof(msg))
    return 2;
  return mproc_queue_put(self->results, msg, (size_t)n, MPROC_FOREVER) < 0 ? 3 : 0;
}

/* The entry every Counter process runs: rebuild the object, call run(). */
static int counter_run_entry(const mproc_args *args) {
  counter self;
  int rc = counter_from_args(args, &self);
  if (rc < 0) {
    fprintf(stderr, "counter: %s\n", mproc_strerror(rc));
    return 1;
  }
  return counter_run(&self);
}

static const mproc_entry entries[] = {MPROC_ENTRY(counter_run_entry),
                                      MPROC_ENTRY_END};

/* Counter(...).start(): a process named after the object, running
 * counter_run_entry with the object's fields. */
static int counter_start(const counter *self, mproc_process **out) {
  mproc_process_options opts = {0};
  mproc_args *args = NULL;
  int rc;
  *out = NULL;
  opts.name = self->name;
  if ((rc = mproc_args_create(&args)) < 0)
    goto finish;
  if ((rc = counter_to_args(self, args)) < 0)
    goto finish;
  if ((rc = mproc_process_create(out, "counter_run_entry", args, &opts)) < 0)
    goto finish;
  rc = mproc_process_start(*out);
finish:
  mproc_args_free(args);
  return rc;
}

/* results.get() for every counter: checks each total against the formula. */
static int collect(mproc_queue *results) {
  char msg[128], name[64];
  int64_t total, first;
  size_t len;
  int i, rc, bad = 0;
  for (i = 0; i < NCOUNTERS; i++) {
    if ((rc = mproc_queue_get(results, msg, sizeof(msg) - 1, &len, 60.0)) < 0) {
      fprintf(stderr, "results.get(): %s\n", mproc_strerror(rc));
      return 1;
    }
    msg[len] = '\0';
    if (sscanf(msg, "counter-%63s %" SCNd64, name, &total) != 2) {
      fprintf(stderr, "unexpected result \"%s\"\n", msg);
      return 1;
    }
    first = 100 * (int64_t)atoi(name);
    /* sum(range(first, first + 100)) */
    if (total != 100 * first + 4950)
      bad = 1;
    printf("parent: got (\"counter-%s\", %" PRId64 ")%s\n", name, total,
           total != 100 * first + 4950 ? "  <-- wrong" : "");
  }
  return bad;
}

/* counters = [Counter(f'counter-{i}', 100*i, 100*i + 99, results) ...], and
 * c.start() for each.  Returns 1 if one could not be started. */
static int start_counters(counter *counters, char (*names)[32],
                          mproc_queue *results, mproc_process **procs) {
  int i, rc, failed = 0;
  mirror("c = Counter(name, first, last, results)",
         "counter c = {name, first, last, results}");
  mirror("c.start()", "counter_start(&c, &proc): the fields as arguments");
  for (i = 0; i < NCOUNTERS; i++) {
    snprintf(names[i], sizeof(names[i]), "counter-%d", i);
    counters[i].name = names[i];
    counters[i].first = 100 * i;
    counters[i].last = 100 * i + 99;
    counters[i].results = results;
    counters[i].total = 0;
    if ((rc = counter_start(&counters[i], &procs[i])) < 0) {
      fprintf(stderr, "%s.start(): %s\n", names[i], mproc_strerror(rc));
      failed = 1;
    }
  }
  return failed;
}

/* c.join() for each; 1 if one failed. */
static int join_counters(mproc_process **procs) {
  int i, code, failed = 0;
  mirror("c.join()", "mproc_process_join(proc, MPROC_FOREVER)");
  for (i = 0; i < NCOUNTERS; i++) {
    code = -1;
    if (procs[i] && (mproc_process_join(procs[i], MPROC_FOREVER) < 0 ||
                     mproc_process_exitcode(procs[i], &code) != 1 || code != 0))
      failed = 1;
    mproc_process_free(procs[i]);
  }
  return failed;
}

int main(int argc, char **argv) {
  static char names[NCOUNTERS][32];
  counter counters[NCOUNTERS];
  mproc_process *procs[NCOUNTERS] = {NULL};
  mproc_queue *results = NULL;
  int rc, failed;

  if ((rc = mproc_main(argc, argv, entries)) < 0) {
    fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 1;
  }
  mirror_begin();
  mirror("class Counter(Process): self.first, ...", "typedef struct counter {first, ...}");
  mirror("    def run(self): ...", "static int counter_run(counter *self)");

  mirror("results = Queue()", "mproc_queue_create(&results, NULL)");
  if ((rc = mproc_queue_create(&results, NULL)) < 0) {
    fprintf(stderr, "mproc_queue_create: %s\n", mproc_strerror(rc));
    return 1;
  }

  failed = start_counters(counters, names, results, procs);
  mirror("print(results.get())", "mproc_queue_get(results, ...)");
  if (!failed)
    failed = collect(results);
  failed |= join_counters(procs);

  mirror("print(counters[0].total)  # 0", "counters[0].total: the parent's copy");
  printf("parent: counters[0].total is still %" PRId64
         " (run() set the child's copy)\n",
         counters[0].total);
  if (counters[0].total != 0)
    failed = 1;

  mproc_queue_free(results);
  printf("%s\n", failed ? "FAILED" : "ok");
  return failed;
}
