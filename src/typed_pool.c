/* Typed pool inputs and results (include/mproc/typed.h): map over int64s
 * or strings, and the task-side readers and writers, in the typed message
 * format (typed_wire.c), so a task reads the same bytes whether a typed
 * map or the byte API with a typed encoding submitted them. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "typed.h"

/* The inputs of a typed map: one buffer of encoded values, and the
 * mproc_bytes array pointing into it that mproc_pool_map takes. */
typedef struct mproc__typed_inputs {
  unsigned char *buf;
  mproc_bytes *items;
} mproc__typed_inputs;

/* Value i of a typed map's input array: an int64_t, or a string. */
static const void *mproc__input_value(int tag, const void *values, size_t i) {
  if (tag == MPROC_TYPED_STR)
    return ((const char *const *)values)[i];
  return (const int64_t *)values + i;
}

/* Bytes of every value's message, or MPROC_EINVAL (a NULL string) /
 * MPROC_ENOMEM. */
static int mproc__inputs_size(int tag, const void *values, size_t n,
                              size_t *total) {
  mproc__tval v;
  size_t i, len;
  int rc;
  *total = 0;
  if (n > SIZE_MAX / sizeof(mproc_bytes))
    return MPROC_ENOMEM;
  for (i = 0; i < n; i++) {
    if ((rc = mproc__tval_make(&v, tag, mproc__input_value(tag, values, i))) <
        0)
      return rc;
    len = mproc__tval_len(&v);
    if (*total > SIZE_MAX - len)
      return MPROC_ENOMEM;
    *total += len;
  }
  return MPROC_OK;
}

/* Encodes the n values into in->buf, one item each. */
static int mproc__inputs_build(mproc__typed_inputs *in, int tag,
                               const void *values, size_t n) {
  mproc__tval v;
  size_t i, total = 0, at = 0;
  int rc = mproc__inputs_size(tag, values, n, &total);
  if (rc < 0)
    return rc;
  in->buf = (unsigned char *)malloc(total ? total : 1);
  in->items = (mproc_bytes *)malloc((n ? n : 1) * sizeof(mproc_bytes));
  if (!in->buf || !in->items)
    return MPROC_ENOMEM;
  for (i = 0; i < n; i++) {
    (void)mproc__tval_make(&v, tag, mproc__input_value(tag, values, i));
    mproc__tval_enc(in->buf + at, &v);
    in->items[i].data = in->buf + at;
    in->items[i].len = mproc__tval_len(&v);
    at += in->items[i].len;
  }
  return MPROC_OK;
}

/* The one typed map: task i gets value i's message. */
static int mproc__pool_map_typed(mproc_pool *pool, const char *task, int tag,
                                 const void *values, size_t n, size_t chunksize,
                                 mproc_async_result **out) {
  mproc__typed_inputs in = {NULL, NULL};
  int rc;
  if (!values && n)
    return MPROC_EINVAL;
  rc = mproc__inputs_build(&in, tag, values, n);
  if (rc < 0)
    goto finish;
  /* mproc_pool_map waits for every task, so the inputs may go after it. */
  rc = mproc_pool_map(pool, task, in.items, n, chunksize, out);
finish:
  free(in.buf);
  free(in.items);
  return rc;
}

int mproc_pool_map_int64(mproc_pool *pool, const char *task,
                         const int64_t *values, size_t n, size_t chunksize,
                         mproc_async_result **out) {
  return mproc__pool_map_typed(pool, task, MPROC_TYPED_INT64, values, n,
                               chunksize, out);
}

int mproc_pool_map_str(mproc_pool *pool, const char *task,
                       const char *const *strs, size_t n, size_t chunksize,
                       mproc_async_result **out) {
  return mproc__pool_map_typed(pool, task, MPROC_TYPED_STR, strs, n, chunksize,
                               out);
}

/* ---- inside a task ---------------------------------------------------------- */

/* The task's input as a value of `tag`, to *out (see mproc__tval_read). */
static int mproc__task_input_typed(const mproc_args *args, int tag, void *out) {
  const void *d = NULL;
  size_t n = 0;
  int rc = mproc_task_input(args, &d, &n);
  return rc < 0 ? rc : mproc__tval_read(d, n, tag, out);
}

int mproc_task_input_int64(const mproc_args *args, int64_t *out) {
  if (!out)
    return MPROC_EINVAL;
  return mproc__task_input_typed(args, MPROC_TYPED_INT64, out);
}

int mproc_task_input_str(const mproc_args *args, const char **out) {
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  return mproc__task_input_typed(args, MPROC_TYPED_STR, (void *)out);
}

/* A task's result is sent in its own thread; it has no timeout.  The
 * argument list is only read (the result goes to the task's slot). */
static int mproc__task_send(void *args, const void *msg, size_t len,
                            double timeout) {
  (void)timeout;
  return mproc_task_result((const mproc_args *)args, msg, len);
}

int mproc_task_result_int64(const mproc_args *args, int64_t v) {
  return mproc__tval_send(mproc__task_send, (void *)args, MPROC_TYPED_INT64, &v,
                          0);
}

int mproc_task_result_double(const mproc_args *args, double v) {
  return mproc__tval_send(mproc__task_send, (void *)args, MPROC_TYPED_DOUBLE,
                          &v, 0);
}

int mproc_task_result_str(const mproc_args *args, const char *s) {
  return mproc__tval_send(mproc__task_send, (void *)args, MPROC_TYPED_STR, s,
                          0);
}

/* ---- reading results -------------------------------------------------------- */

/* Task i's result as a value of `tag`: its non-zero status first. */
static int mproc__result_item_typed(mproc_async_result *r, size_t i, int tag,
                                    void *out) {
  const void *d = NULL;
  size_t n = 0;
  int rc = mproc_async_result_item(r, i, &d, &n);
  return rc != 0 ? rc : mproc__tval_read(d, n, tag, out);
}

int mproc_async_result_item_int64(mproc_async_result *r, size_t i,
                                  int64_t *out) {
  if (!out)
    return MPROC_EINVAL;
  return mproc__result_item_typed(r, i, MPROC_TYPED_INT64, out);
}

int mproc_async_result_item_double(mproc_async_result *r, size_t i,
                                   double *out) {
  if (!out)
    return MPROC_EINVAL;
  return mproc__result_item_typed(r, i, MPROC_TYPED_DOUBLE, out);
}

int mproc_async_result_item_str(mproc_async_result *r, size_t i,
                                const char **out) {
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  return mproc__result_item_typed(r, i, MPROC_TYPED_STR, (void *)out);
}
