/* Typed helpers over the byte-level API (include/mproc/typed.h): object
 * argument getters, typed values on queues and pipes, mproc_sleep().
 * Nothing here reaches past the public functions of the other modules
 * except the wire format (typed_wire.c) and the clock. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "typed.h"

/* ---- object arguments ------------------------------------------------------ */

/* The one getter behind the eighteen public ones: argument `index` (or
 * keyword `key` when key_form is set) as an object of kind `type`, stored
 * through `out`, which points to a pointer of that kind's C type.  The
 * store goes through memcpy of `size` bytes (sizeof that pointer) rather
 * than a cast to void **: C11 6.2.5p28 gives every pointer to a structure
 * type the representation of any other, so the bytes of the void * are
 * those of the typed pointer, and no pointer is accessed as another type. */
static int mproc__typed_object(const mproc_args *args, size_t index,
                               const char *key, int key_form, int type,
                               void *out, size_t size) {
  void *o = NULL;
  int rc;
  if (!args || !out || (key_form && !key) || size != sizeof o)
    return MPROC_EINVAL;
  rc = key_form ? mproc_kwarg_object(args, key, type, &o)
                : mproc_arg_object(args, index, type, &o);
  if (rc < 0)
    o = NULL;
  memcpy(out, &o, size);
  return rc;
}

/* Thin typed wrappers: the public API keeps one C type per object kind. */
int mproc_arg_queue(const mproc_args *args, size_t index, mproc_queue **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_QUEUE, out,
                             sizeof *out);
}
int mproc_kwarg_queue(const mproc_args *args, const char *key,
                      mproc_queue **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_QUEUE, out,
                             sizeof *out);
}
int mproc_arg_conn(const mproc_args *args, size_t index, mproc_conn **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_CONN, out,
                             sizeof *out);
}
int mproc_kwarg_conn(const mproc_args *args, const char *key,
                     mproc_conn **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_CONN, out, sizeof *out);
}
int mproc_arg_lock(const mproc_args *args, size_t index, mproc_lock **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_LOCK, out,
                             sizeof *out);
}
int mproc_kwarg_lock(const mproc_args *args, const char *key,
                     mproc_lock **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_LOCK, out, sizeof *out);
}
int mproc_arg_semaphore(const mproc_args *args, size_t index,
                        mproc_semaphore **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_SEMAPHORE, out,
                             sizeof *out);
}
int mproc_kwarg_semaphore(const mproc_args *args, const char *key,
                          mproc_semaphore **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_SEMAPHORE, out,
                             sizeof *out);
}
int mproc_arg_event(const mproc_args *args, size_t index, mproc_event **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_EVENT, out,
                             sizeof *out);
}
int mproc_kwarg_event(const mproc_args *args, const char *key,
                      mproc_event **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_EVENT, out,
                             sizeof *out);
}
int mproc_arg_condition(const mproc_args *args, size_t index,
                        mproc_condition **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_CONDITION, out,
                             sizeof *out);
}
int mproc_kwarg_condition(const mproc_args *args, const char *key,
                          mproc_condition **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_CONDITION, out,
                             sizeof *out);
}
int mproc_arg_barrier(const mproc_args *args, size_t index,
                      mproc_barrier **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_BARRIER, out,
                             sizeof *out);
}
int mproc_kwarg_barrier(const mproc_args *args, const char *key,
                        mproc_barrier **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_BARRIER, out,
                             sizeof *out);
}
int mproc_arg_shm(const mproc_args *args, size_t index, mproc_shm **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_SHM, out,
                             sizeof *out);
}
int mproc_kwarg_shm(const mproc_args *args, const char *key, mproc_shm **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_SHM, out, sizeof *out);
}
int mproc_arg_array(const mproc_args *args, size_t index, mproc_array **out) {
  return mproc__typed_object(args, index, NULL, 0, MPROC_OBJ_ARRAY, out,
                             sizeof *out);
}
int mproc_kwarg_array(const mproc_args *args, const char *key,
                      mproc_array **out) {
  return mproc__typed_object(args, 0, key, 1, MPROC_OBJ_ARRAY, out,
                             sizeof *out);
}

/* ---- receiving typed messages ---------------------------------------------- */

/* A queue's get and a pipe's receive have the same shape: one message into
 * buf, MPROC_ERANGE with *len set (and the message left) when it does not
 * fit.  These adapters let one receiver serve both. */
typedef int (*mproc__recv_fn)(void *ch, void *buf, size_t cap, size_t *len,
                              double timeout);

static int mproc__queue_recv(void *q, void *buf, size_t cap, size_t *len,
                             double timeout) {
  return mproc_queue_get((mproc_queue *)q, buf, cap, len, timeout);
}

static int mproc__conn_recv(void *c, void *buf, size_t cap, size_t *len,
                            double timeout) {
  return mproc_conn_recv_bytes((mproc_conn *)c, buf, cap, len, timeout);
}

/* Takes the next message whatever its size, so that a scalar get of a
 * bigger message consumes it (the documented rule for a type mismatch)
 * instead of leaving it at the head for ever: into buf when it fits, else
 * into *heap (the caller frees it).  Another receiver may take the big
 * message between two tries; the next try then judges whatever comes. */
static int mproc__recv_whole(mproc__recv_fn recv, void *ch, unsigned char *buf,
                             size_t cap, const unsigned char **msg, size_t *len,
                             unsigned char **heap, double timeout) {
  double deadline = mproc__deadline(timeout);
  unsigned char *nb;
  int rc = recv(ch, buf, cap, len, timeout);
  *msg = buf;
  while (rc == MPROC_ERANGE) {
    nb = (unsigned char *)realloc(*heap, *len);
    if (!nb)
      return MPROC_ENOMEM;
    *heap = nb;
    *msg = nb;
    rc = recv(ch, nb, *len, len, mproc__remaining(deadline));
  }
  return rc;
}

static int mproc__recv_scalar(mproc__recv_fn recv, void *ch, int tag, void *out,
                              double timeout) {
  unsigned char small[16];
  unsigned char *heap = NULL;
  const unsigned char *msg = NULL;
  size_t len = 0;
  int rc;
  if (!ch || !out)
    return MPROC_EINVAL;
  rc = mproc__recv_whole(recv, ch, small, sizeof small, &msg, &len, &heap,
                         timeout);
  if (rc < 0)
    goto finish;
  rc = mproc__tval_read(msg, len, tag, out);
finish:
  free(heap);
  return rc;
}

/* A string's message is its length + 2 bytes, the string with its NUL one
 * byte less: it is received straight into the caller's buffer and moved
 * down over the tag.  Only a string that fills buf exactly needs one byte
 * more than buf has; that one goes through a bounce buffer. */
static int mproc__recv_str(mproc__recv_fn recv, void *ch, char *buf, size_t cap,
                           size_t *len, double timeout) {
  double deadline = mproc__deadline(timeout);
  unsigned char *bounce = NULL;
  const void *msg = buf;
  mproc__tval v;
  size_t n = 0;
  int rc;
  if (!ch || (!buf && cap))
    return MPROC_EINVAL;
  rc = recv(ch, buf, cap, &n, timeout);
  if (rc == MPROC_ERANGE && cap && n == cap + 1) {
    bounce = (unsigned char *)malloc(n);
    if (!bounce) {
      rc = MPROC_ENOMEM;
      goto finish;
    }
    msg = bounce;
    rc = recv(ch, bounce, n, &n, mproc__remaining(deadline));
  }
  if (rc == MPROC_ERANGE && len)
    *len = n >= 2 ? n - 2 : 0;
  if (rc < 0)
    goto finish;
  rc = mproc__tval_dec(msg, n, MPROC_TYPED_STR, &v);
  if (rc < 0)
    goto finish;
  memmove(buf, v.s, v.n + 1);
  if (len)
    *len = v.n;
finish:
  free(bounce);
  return rc;
}

/* ---- queues ---------------------------------------------------------------- */

static int mproc__queue_send(void *q, const void *msg, size_t len,
                             double timeout) {
  return mproc_queue_put((mproc_queue *)q, msg, len, timeout);
}

int mproc_queue_put_int64(mproc_queue *q, int64_t v, double timeout) {
  return mproc__tval_send(mproc__queue_send, q, MPROC_TYPED_INT64, &v, timeout);
}

int mproc_queue_put_double(mproc_queue *q, double v, double timeout) {
  return mproc__tval_send(mproc__queue_send, q, MPROC_TYPED_DOUBLE, &v,
                          timeout);
}

int mproc_queue_put_str(mproc_queue *q, const char *s, double timeout) {
  return mproc__tval_send(mproc__queue_send, q, MPROC_TYPED_STR, s, timeout);
}

int mproc_queue_get_int64(mproc_queue *q, int64_t *out, double timeout) {
  return mproc__recv_scalar(mproc__queue_recv, q, MPROC_TYPED_INT64, out,
                            timeout);
}

int mproc_queue_get_double(mproc_queue *q, double *out, double timeout) {
  return mproc__recv_scalar(mproc__queue_recv, q, MPROC_TYPED_DOUBLE, out,
                            timeout);
}

int mproc_queue_get_str(mproc_queue *q, char *buf, size_t cap, size_t *len,
                        double timeout) {
  return mproc__recv_str(mproc__queue_recv, q, buf, cap, len, timeout);
}

/* ---- pipes ----------------------------------------------------------------- */

/* A pipe's send has no timeout (it blocks until the bytes are written). */
static int mproc__conn_send(void *c, const void *msg, size_t len,
                            double timeout) {
  (void)timeout;
  return mproc_conn_send_bytes((mproc_conn *)c, msg, len);
}

int mproc_conn_send_int64(mproc_conn *c, int64_t v) {
  return mproc__tval_send(mproc__conn_send, c, MPROC_TYPED_INT64, &v, 0);
}

int mproc_conn_send_double(mproc_conn *c, double v) {
  return mproc__tval_send(mproc__conn_send, c, MPROC_TYPED_DOUBLE, &v, 0);
}

int mproc_conn_send_str(mproc_conn *c, const char *s) {
  return mproc__tval_send(mproc__conn_send, c, MPROC_TYPED_STR, s, 0);
}

int mproc_conn_recv_int64(mproc_conn *c, int64_t *out, double timeout) {
  return mproc__recv_scalar(mproc__conn_recv, c, MPROC_TYPED_INT64, out,
                            timeout);
}

int mproc_conn_recv_double(mproc_conn *c, double *out, double timeout) {
  return mproc__recv_scalar(mproc__conn_recv, c, MPROC_TYPED_DOUBLE, out,
                            timeout);
}

int mproc_conn_recv_str(mproc_conn *c, char *buf, size_t cap, size_t *len,
                        double timeout) {
  return mproc__recv_str(mproc__conn_recv, c, buf, cap, len, timeout);
}

/* ---- sleep ----------------------------------------------------------------- */

int mproc_sleep(double seconds) {
  double deadline, left;
  if (!(seconds >= 0)) /* negative or NaN */
    return MPROC_EINVAL;
  if (seconds == 0)
    return MPROC_OK;
  /* Against a deadline on the monotonic clock: a signal (EINTR) or a
   * Windows tick that ends one OS sleep early starts another for the rest.
   * mproc__deadline's "none" (-1, past ~31 years) sleeps a day at a time. */
  deadline = mproc__deadline(seconds);
  while ((left = mproc__remaining(deadline)) != 0)
    mproc__plat_sleep(left < 0 ? 86400.0 : left);
  return MPROC_OK;
}
