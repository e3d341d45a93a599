/* Typed helpers over the byte-level API (include/mproc/typed.h): object
 * argument getters, typed values on queues and pipes, mproc_sleep().
 * Nothing here reaches past the public functions of the other modules
 * except the wire format (typed_wire.c) and the clock. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "typed.h"

/* ---- object arguments ------------------------------------------------------ */

/* One lookup behind every typed getter: positional when key is NULL. */
static int mproc__typed_object(const mproc_args *args, size_t index,
                               const char *key, int type, void **out) {
  int rc;
  *out = NULL;
  rc = key ? mproc_kwarg_object(args, key, type, out)
           : mproc_arg_object(args, index, type, out);
  if (rc < 0)
    *out = NULL;
  return rc;
}

/* The pair of getters of one object kind.  A macro rather than eighteen
 * hand-copied bodies: they differ only in the C type and the type code. */
#define MPROC__OBJECT_GETTERS(name, ctype, objtype)                            \
  int mproc_arg_##name(const mproc_args *args, size_t index, ctype **out) {    \
    void *o = NULL;                                                            \
    int rc;                                                                    \
    if (!args || !out)                                                         \
      return MPROC_EINVAL;                                                     \
    rc = mproc__typed_object(args, index, NULL, objtype, &o);                  \
    *out = (ctype *)o;                                                         \
    return rc;                                                                 \
  }                                                                            \
  int mproc_kwarg_##name(const mproc_args *args, const char *key,              \
                         ctype **out) {                                        \
    void *o = NULL;                                                            \
    int rc;                                                                    \
    if (!args || !key || !out)                                                 \
      return MPROC_EINVAL;                                                     \
    rc = mproc__typed_object(args, 0, key, objtype, &o);                       \
    *out = (ctype *)o;                                                         \
    return rc;                                                                 \
  }

MPROC__OBJECT_GETTERS(queue, mproc_queue, MPROC_OBJ_QUEUE)
MPROC__OBJECT_GETTERS(conn, mproc_conn, MPROC_OBJ_CONN)
MPROC__OBJECT_GETTERS(lock, mproc_lock, MPROC_OBJ_LOCK)
MPROC__OBJECT_GETTERS(semaphore, mproc_semaphore, MPROC_OBJ_SEMAPHORE)
MPROC__OBJECT_GETTERS(event, mproc_event, MPROC_OBJ_EVENT)
MPROC__OBJECT_GETTERS(condition, mproc_condition, MPROC_OBJ_CONDITION)
MPROC__OBJECT_GETTERS(barrier, mproc_barrier, MPROC_OBJ_BARRIER)
MPROC__OBJECT_GETTERS(shm, mproc_shm, MPROC_OBJ_SHM)
MPROC__OBJECT_GETTERS(array, mproc_array, MPROC_OBJ_ARRAY)

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
  if (tag == MPROC_TYPED_INT64)
    rc = mproc__typed_dec_int64(msg, len, (int64_t *)out);
  else
    rc = mproc__typed_dec_double(msg, len, (double *)out);
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
  const char *s = NULL;
  size_t n = 0, slen = 0;
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
  rc = mproc__typed_dec_str(msg, n, &s, &slen);
  if (rc < 0)
    goto finish;
  memmove(buf, s, slen + 1);
  if (len)
    *len = slen;
finish:
  free(bounce);
  return rc;
}

/* ---- queues ---------------------------------------------------------------- */

int mproc_queue_put_int64(mproc_queue *q, int64_t v, double timeout) {
  unsigned char m[MPROC__TYPED_SCALAR_LEN];
  mproc__typed_enc_int64(m, v);
  return mproc_queue_put(q, m, sizeof m, timeout);
}

int mproc_queue_put_double(mproc_queue *q, double v, double timeout) {
  unsigned char m[MPROC__TYPED_SCALAR_LEN];
  mproc__typed_enc_double(m, v);
  return mproc_queue_put(q, m, sizeof m, timeout);
}

int mproc_queue_put_str(mproc_queue *q, const char *s, double timeout) {
  unsigned char small[256];
  unsigned char *heap = NULL;
  const unsigned char *m;
  size_t len = 0;
  int rc;
  if (!q || !s)
    return MPROC_EINVAL;
  m = mproc__typed_str_msg(s, small, sizeof small, &heap, &len);
  rc = m ? mproc_queue_put(q, m, len, timeout) : MPROC_ENOMEM;
  free(heap);
  return rc;
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

int mproc_conn_send_int64(mproc_conn *c, int64_t v) {
  unsigned char m[MPROC__TYPED_SCALAR_LEN];
  mproc__typed_enc_int64(m, v);
  return mproc_conn_send_bytes(c, m, sizeof m);
}

int mproc_conn_send_double(mproc_conn *c, double v) {
  unsigned char m[MPROC__TYPED_SCALAR_LEN];
  mproc__typed_enc_double(m, v);
  return mproc_conn_send_bytes(c, m, sizeof m);
}

int mproc_conn_send_str(mproc_conn *c, const char *s) {
  unsigned char small[256];
  unsigned char *heap = NULL;
  const unsigned char *m;
  size_t len = 0;
  int rc;
  if (!c || !s)
    return MPROC_EINVAL;
  m = mproc__typed_str_msg(s, small, sizeof small, &heap, &len);
  rc = m ? mproc_conn_send_bytes(c, m, len) : MPROC_ENOMEM;
  free(heap);
  return rc;
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
