/* Producer/consumer: Python's classic Queue tutorial, in C.
 *
 * Two producers put numbered messages on one shared queue; a consumer
 * takes them until it has seen one end marker (an empty message) per
 * producer, and reports how many it got.  A Lock guards a shared counter
 * that every process bumps, and a Pipe carries the consumer's report back.
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#define PER_PRODUCER 1000

static int producer(const mproc_args *args) {
  mproc_queue *q = NULL;
  mproc_lock *lock = NULL;
  mproc_array *counter = NULL;
  int64_t id = 0;
  int i;
  if (mproc_arg_object(args, 0, MPROC_OBJ_QUEUE, (void **)&q) < 0 ||
      mproc_arg_object(args, 1, MPROC_OBJ_ARRAY, (void **)&counter) < 0 ||
      mproc_arg_int(args, 2, &id) < 0)
    return 2;
  lock = mproc_array_lock(counter);
  for (i = 0; i < PER_PRODUCER; i++) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "producer %d, item %d", (int)id, i);
    if (mproc_queue_put(q, msg, (size_t)n, MPROC_FOREVER) < 0)
      return 3;
  }
  if (mproc_lock_acquire(lock, MPROC_FOREVER) < 0)
    return 4;
  ((int64_t *)mproc_array_ptr(counter))[0] += PER_PRODUCER;
  mproc_lock_release(lock);
  return mproc_queue_put(q, NULL, 0, MPROC_FOREVER) < 0 ? 5 : 0; /* done */
}

static int consumer(const mproc_args *args) {
  mproc_queue *q = NULL;
  mproc_conn *report = NULL;
  int64_t producers = 0, got = 0, ended = 0;
  char buf[64], line[128];
  size_t len;
  if (mproc_arg_object(args, 0, MPROC_OBJ_QUEUE, (void **)&q) < 0 ||
      mproc_arg_object(args, 1, MPROC_OBJ_CONN, (void **)&report) < 0 ||
      mproc_arg_int(args, 2, &producers) < 0)
    return 2;
  while (ended < producers) {
    if (mproc_queue_get(q, buf, sizeof buf, &len, MPROC_FOREVER) < 0)
      return 3;
    if (len == 0)
      ended++;
    else if (++got % 500 == 0)
      printf("  consumer: %.*s\n", (int)len, buf);
  }
  len = (size_t)snprintf(line, sizeof line, "%lld messages", (long long)got);
  return mproc_conn_send_bytes(report, line, len) < 0 ? 4 : 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(producer),
                                      MPROC_ENTRY(consumer), MPROC_ENTRY_END};

static int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "%s: %s\n", what, mproc_strerror(rc));
  return rc < 0;
}

int main(int argc, char **argv) {
  mproc_queue *q = NULL;
  mproc_array *counter = NULL;
  mproc_conn *rx = NULL, *tx = NULL;
  mproc_process *procs[3] = {NULL, NULL, NULL};
  char report[128];
  size_t len = 0;
  int i, failed = 0;
  if (check(mproc_main(argc, argv, entries), "mproc_main") ||
      check(mproc_queue_create(&q, NULL), "queue") ||
      check(mproc_array_create(&counter, MPROC_INT64, 1, 1), "counter") ||
      check(mproc_pipe(&rx, &tx, 0), "pipe"))
    return 1;
  for (i = 0; i < 3; i++) {
    mproc_args *a = NULL;
    mproc_args_create(&a);
    mproc_args_add_object(a, NULL, q);
    mproc_args_add_object(a, NULL, i < 2 ? (const void *)counter
                                         : (const void *)tx);
    mproc_args_add_int(a, NULL, i < 2 ? i : 2);
    failed |= check(mproc_process_create(&procs[i], i < 2 ? "producer"
                                                          : "consumer",
                                         a, NULL),
                    "create");
    mproc_args_free(a);
    if (!failed)
      failed |= check(mproc_process_start(procs[i]), "start");
  }
  mproc_conn_free(tx); /* the consumer has its copy; ours would hide EOF */
  if (!failed)
    failed |= check(mproc_conn_recv_bytes(rx, report, sizeof report - 1, &len,
                                          60),
                    "report");
  report[len] = 0;
  for (i = 0; i < 3; i++) {
    int code = -1;
    if (procs[i] && mproc_process_join(procs[i], 60) == 0)
      mproc_process_exitcode(procs[i], &code);
    failed |= code != 0;
    mproc_process_free(procs[i]);
  }
  printf("consumer reports: %s; producers counted %lld under the lock\n",
         report, (long long)((int64_t *)mproc_array_ptr(counter))[0]);
  failed |= strcmp(report, "2000 messages") != 0 ||
            ((int64_t *)mproc_array_ptr(counter))[0] != 2 * PER_PRODUCER;
  mproc_conn_free(rx);
  mproc_array_free(counter);
  mproc_queue_free(q);
  printf("%s\n", failed ? "FAILED" : "ok");
  return failed;
}
