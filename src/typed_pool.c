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

static int mproc__inputs_alloc(mproc__typed_inputs *in, size_t n,
                               size_t bytes) {
  in->buf = NULL;
  in->items = NULL;
  if (n > SIZE_MAX / sizeof(mproc_bytes))
    return MPROC_ENOMEM;
  in->buf = (unsigned char *)malloc(bytes ? bytes : 1);
  in->items = (mproc_bytes *)malloc((n ? n : 1) * sizeof(mproc_bytes));
  return in->buf && in->items ? MPROC_OK : MPROC_ENOMEM;
}

static void mproc__inputs_free(mproc__typed_inputs *in) {
  free(in->buf);
  free(in->items);
}

int mproc_pool_map_int64(mproc_pool *pool, const char *task,
                         const int64_t *values, size_t n, size_t chunksize,
                         mproc_async_result **out) {
  mproc__typed_inputs in = {NULL, NULL};
  size_t i;
  int rc;
  if (!values && n)
    return MPROC_EINVAL;
  if (n > SIZE_MAX / MPROC__TYPED_SCALAR_LEN)
    return MPROC_ENOMEM;
  rc = mproc__inputs_alloc(&in, n, n * MPROC__TYPED_SCALAR_LEN);
  if (rc < 0)
    goto finish;
  for (i = 0; i < n; i++) {
    unsigned char *m = in.buf + i * MPROC__TYPED_SCALAR_LEN;
    mproc__typed_enc_int64(m, values[i]);
    in.items[i].data = m;
    in.items[i].len = MPROC__TYPED_SCALAR_LEN;
  }
  /* mproc_pool_map waits for every task, so the inputs may go after it. */
  rc = mproc_pool_map(pool, task, in.items, n, chunksize, out);
finish:
  mproc__inputs_free(&in);
  return rc;
}

/* Bytes of every string's message, or MPROC_EINVAL / MPROC_ENOMEM. */
static int mproc__str_inputs_size(const char *const *strs, size_t n,
                                  size_t *total) {
  size_t i, len;
  *total = 0;
  for (i = 0; i < n; i++) {
    if (!strs[i])
      return MPROC_EINVAL;
    len = strlen(strs[i]);
    if (len > SIZE_MAX - 2 || *total > SIZE_MAX - (len + 2))
      return MPROC_ENOMEM;
    *total += len + 2;
  }
  return MPROC_OK;
}

int mproc_pool_map_str(mproc_pool *pool, const char *task,
                       const char *const *strs, size_t n, size_t chunksize,
                       mproc_async_result **out) {
  mproc__typed_inputs in = {NULL, NULL};
  size_t i, total = 0, at = 0, len;
  int rc;
  if (!strs && n)
    return MPROC_EINVAL;
  rc = mproc__str_inputs_size(strs, n, &total);
  if (rc < 0)
    goto finish;
  rc = mproc__inputs_alloc(&in, n, total);
  if (rc < 0)
    goto finish;
  for (i = 0; i < n; i++) {
    len = strlen(strs[i]);
    mproc__typed_enc_str(in.buf + at, strs[i], len);
    in.items[i].data = in.buf + at;
    in.items[i].len = len + 2;
    at += len + 2;
  }
  rc = mproc_pool_map(pool, task, in.items, n, chunksize, out);
finish:
  mproc__inputs_free(&in);
  return rc;
}

/* ---- inside a task ---------------------------------------------------------- */

int mproc_task_input_int64(const mproc_args *args, int64_t *out) {
  const void *d = NULL;
  size_t n = 0;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  rc = mproc_task_input(args, &d, &n);
  return rc < 0 ? rc : mproc__typed_dec_int64(d, n, out);
}

int mproc_task_input_str(const mproc_args *args, const char **out) {
  const void *d = NULL;
  size_t n = 0, slen = 0;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  rc = mproc_task_input(args, &d, &n);
  return rc < 0 ? rc : mproc__typed_dec_str(d, n, out, &slen);
}

int mproc_task_result_int64(const mproc_args *args, int64_t v) {
  unsigned char m[MPROC__TYPED_SCALAR_LEN];
  mproc__typed_enc_int64(m, v);
  return mproc_task_result(args, m, sizeof m);
}

int mproc_task_result_double(const mproc_args *args, double v) {
  unsigned char m[MPROC__TYPED_SCALAR_LEN];
  mproc__typed_enc_double(m, v);
  return mproc_task_result(args, m, sizeof m);
}

int mproc_task_result_str(const mproc_args *args, const char *s) {
  unsigned char small[256];
  unsigned char *heap = NULL;
  const unsigned char *m;
  size_t len = 0;
  int rc;
  if (!args || !s)
    return MPROC_EINVAL;
  m = mproc__typed_str_msg(s, small, sizeof small, &heap, &len);
  rc = m ? mproc_task_result(args, m, len) : MPROC_ENOMEM;
  free(heap);
  return rc;
}

/* ---- reading results -------------------------------------------------------- */

int mproc_async_result_item_int64(mproc_async_result *r, size_t i,
                                  int64_t *out) {
  const void *d = NULL;
  size_t n = 0;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  rc = mproc_async_result_item(r, i, &d, &n);
  return rc != 0 ? rc : mproc__typed_dec_int64(d, n, out);
}

int mproc_async_result_item_double(mproc_async_result *r, size_t i,
                                   double *out) {
  const void *d = NULL;
  size_t n = 0;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  rc = mproc_async_result_item(r, i, &d, &n);
  return rc != 0 ? rc : mproc__typed_dec_double(d, n, out);
}

int mproc_async_result_item_str(mproc_async_result *r, size_t i,
                                const char **out) {
  const void *d = NULL;
  size_t n = 0, slen = 0;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  rc = mproc_async_result_item(r, i, &d, &n);
  return rc != 0 ? rc : mproc__typed_dec_str(d, n, out, &slen);
}
