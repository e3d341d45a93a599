/* typed.c: the typed helpers, which save the byte-level ceremony.
 *
 * Python:
 *     def worker(q, results):
 *         while (n := q.get()) is not None:
 *             results.put(f"{n} squared is {n * n}")
 *     q, results = Queue(), Queue()
 *     p = Process(target=worker, args=(q, results)); p.start()
 *     for n in (3, 4, -5): q.put(n)
 *     q.put(None)
 *     ...
 *     Pool(2).map(len, ["a", "bb", "ccc"])
 *
 * In C: mproc_arg_queue() instead of mproc_arg_object(..., (void **)&q);
 * mproc_queue_put_int64() / _get_int64() / _put_str() / _get_str()
 * instead of memcpy into byte messages (a get of the wrong type fails with
 * MPROC_ETYPE instead of reading garbage); mproc_pool_map_str() with
 * mproc_task_input_str() / mproc_task_result_int64() instead of building
 * mproc_bytes arrays; mproc_sleep() instead of #ifdef _WIN32 Sleep().
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#define END_MARK INT64_MIN /* Python's None: this program's end marker */

static int worker(const mproc_args *args) {
  mproc_queue *q = NULL, *results = NULL;
  int64_t n = 0;
  char line[64];
  if (mproc_arg_queue(args, 0, &q) < 0 ||
      mproc_kwarg_queue(args, "results", &results) < 0)
    return 2;
  while (mproc_queue_get_int64(q, &n, MPROC_FOREVER) == 0 && n != END_MARK) {
    snprintf(line, sizeof line, "%" PRId64 " squared is %" PRId64, n, n * n);
    if (mproc_queue_put_str(results, line, MPROC_FOREVER) < 0)
      return 3;
  }
  return n == END_MARK ? 0 : 4;
}

static int length(const mproc_args *a) {
  const char *s = NULL;
  if (mproc_task_input_str(a, &s) < 0)
    return 1;
  return mproc_task_result_int64(a, (int64_t)strlen(s)) < 0 ? 2 : 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(worker), MPROC_ENTRY(length),
                                      MPROC_ENTRY_END};

static int queues(void) {
  mproc_queue *q = NULL, *results = NULL;
  mproc_args *args = NULL;
  mproc_process *p = NULL;
  const int64_t numbers[] = {3, 4, -5};
  char line[64];
  int i, code = -1, ok = 0;
  if (mproc_queue_create(&q, NULL) < 0 ||
      mproc_queue_create(&results, NULL) < 0 || mproc_args_create(&args) < 0 ||
      mproc_args_add_object(args, NULL, q) < 0 ||
      mproc_args_add_object(args, "results", results) < 0 ||
      mproc_process_create(&p, "worker", args, NULL) < 0 ||
      mproc_process_start(p) < 0)
    goto finish;
  for (i = 0; i < 3; i++)
    mproc_queue_put_int64(q, numbers[i], MPROC_FOREVER);
  mproc_queue_put_int64(q, END_MARK, MPROC_FOREVER);
  for (i = 0;
       i < 3 && mproc_queue_get_str(results, line, sizeof line, NULL, 30) == 0;
       i++)
    printf("  %s\n", line);
  ok = i == 3 && mproc_process_join(p, 60) == 0 &&
       mproc_process_exitcode(p, &code) == 1 && code == 0;
finish:
  mproc_process_free(p);
  mproc_args_free(args);
  mproc_queue_free(results);
  mproc_queue_free(q);
  return ok;
}

static int pool_map(void) {
  const char *words[] = {"a", "bb", "ccc"};
  mproc_pool_options opts = {0};
  mproc_pool *pool = NULL;
  mproc_async_result *r = NULL;
  int64_t len = 0;
  size_t i;
  int ok = 0;
  opts.processes = 2;
  if (mproc_pool_create(&pool, &opts) < 0 ||
      mproc_pool_map_str(pool, "length", words, 3, 0, &r) < 0)
    goto finish;
  for (i = 0; i < 3 && mproc_async_result_item_int64(r, i, &len) == 0; i++)
    printf("  len(\"%s\") = %" PRId64 "\n", words[i], len);
  ok = i == 3;
finish:
  mproc_async_result_free(r);
  mproc_pool_free(pool);
  return ok;
}

int main(int argc, char **argv) {
  int ok;
  if (mproc_main(argc, argv, entries) < 0)
    return 1;
  printf("typed queues (Queue.put(n) / Queue.get()):\n");
  ok = queues();
  printf("typed pool map (Pool(2).map(len, words)):\n");
  ok &= pool_map();
  ok &= mproc_sleep(0.01) == 0; /* time.sleep(0.01) */
  printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
