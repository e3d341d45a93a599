/*
 * Listeners and clients: Python's multiprocessing.connection.Listener and
 * Client (include/mproc/connection.h).  This file holds what is the same
 * everywhere: parsing addresses, the listener object, and the handshake.
 * The sockets and named pipes, and the crypto, are behind plat/net.h.
 *
 * The handshake is CPython's (Lib/multiprocessing/connection.py,
 * deliver_challenge / answer_challenge), carried in mproc frames:
 *   challenger -> "#CHALLENGE#" M,  M = "{sha256}" + 40 random bytes
 *   responder  -> "{sha256}" + HMAC-SHA256(authkey, M)
 *   challenger -> "#WELCOME#" or "#FAILURE#"
 * The listener challenges first, then answers the client's challenge, so
 * each side has proved to the other that it knows the key before either
 * hands the connection to its program.  Every receive is capped at 256
 * bytes (a longer frame is refused from its header, before its payload is
 * read) and bounded by the call's deadline.  Only sha256 is spoken: the
 * legacy MD5 form Python still accepts is refused.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

#define MPROC__LISTENER_MAGIC 0x4c53544eu /* "LSTN" */
#define MPROC__HS_MAX 256                 /* Python's recv_bytes(256) */
#define MPROC__HS_NONCE 40                /* Python's MESSAGE_LENGTH */
#define MPROC__HS_TAG "{sha256}"
#define MPROC__HS_TAG_LEN 8u
#define MPROC__HS_CHALLENGE "#CHALLENGE#"
#define MPROC__HS_CHALLENGE_LEN 11u
#define MPROC__HS_WELCOME "#WELCOME#"
#define MPROC__HS_FAILURE "#FAILURE#"
#define MPROC__HS_REPLY_LEN 9u /* both replies */

struct mproc_listener {
  uint32_t magic;
  mproc__net_listener *net;
  unsigned char *key; /* NULL: no authentication */
  size_t keylen;
  char *address; /* as mproc_listener_address() gives it */
  volatile uint32_t closed;
};

/* ---- addresses ------------------------------------------------------------------ */

/* Parse "unix:PATH", "pipe:NAME", "tcp:HOST:PORT" ("tcp:[V6]:PORT").  On
 * success a->path points into *copy (malloc'ed; the caller frees it). */
static int mproc__addr_parse(const char *s, mproc__net_addr *a, char **copy) {
  char *p, *colon, *end;
  unsigned long port;
  *copy = NULL;
  memset(a, 0, sizeof *a);
  if (!s)
    return MPROC_EINVAL;
  if (strncmp(s, "unix:", 5) == 0) {
    a->kind = MPROC__NET_UNIX;
    s += 5;
  } else if (strncmp(s, "pipe:", 5) == 0) {
    a->kind = MPROC__NET_PIPE;
    s += 5;
    if (strchr(s, '\\') || strchr(s, '/'))
      return MPROC_EINVAL; /* a name, not a path */
  } else if (strncmp(s, "tcp:", 4) == 0) {
    a->kind = MPROC__NET_TCP;
    s += 4;
  } else {
    return MPROC_EINVAL;
  }
  if (!*s || !(p = *copy = (char *)malloc(strlen(s) + 1)))
    return *s ? MPROC_ENOMEM : MPROC_EINVAL;
  memcpy(p, s, strlen(s) + 1);
  a->path = p;
  if (a->kind != MPROC__NET_TCP)
    return MPROC_OK;
  colon = strrchr(p, ':');
  if (!colon || colon == p || colon[1] < '0' || colon[1] > '9')
    return MPROC_EINVAL;
  port = strtoul(colon + 1, &end, 10);
  if (*end || port > 65535 || end - colon > 6)
    return MPROC_EINVAL;
  a->port = (unsigned)port;
  *colon = 0;
  if (p[0] == '[') { /* "[::1]": the brackets only delimit the host */
    if (colon[-1] != ']' || colon - p < 3)
      return MPROC_EINVAL;
    colon[-1] = 0;
    a->path = p + 1;
  } else if (strchr(p, ':')) {
    return MPROC_EINVAL; /* an IPv6 host needs its brackets */
  }
  return MPROC_OK;
}

/* Append n bytes of p at s + *len. */
static void mproc__addr_put(char *s, size_t *len, const char *p, size_t n) {
  memcpy(s + *len, p, n);
  *len += n;
}

/* The address in create's form, with the bound port. */
static char *mproc__addr_format(const mproc__net_addr *a, unsigned port) {
  static const char *const kinds[] = {"", "unix:", "pipe:", "tcp:"};
  int v6 = a->kind == MPROC__NET_TCP && strchr(a->path, ':') != NULL;
  char *s = (char *)malloc(strlen(a->path) + 16), digits[8];
  size_t n = 0;
  int i = 0;
  if (!s)
    return NULL;
  mproc__addr_put(s, &n, kinds[a->kind], strlen(kinds[a->kind]));
  if (v6)
    mproc__addr_put(s, &n, "[", 1);
  mproc__addr_put(s, &n, a->path, strlen(a->path));
  if (v6)
    mproc__addr_put(s, &n, "]", 1);
  if (a->kind == MPROC__NET_TCP) {
    mproc__addr_put(s, &n, ":", 1);
    do { /* digits of the port, last first */
      digits[i++] = (char)('0' + port % 10u);
      port /= 10u;
    } while (port);
    while (i > 0)
      s[n++] = digits[--i];
  }
  s[n] = 0;
  return s;
}

/* Can this build serve the request (see the header: crypto)? */
static int mproc__auth_check(const mproc__net_addr *a, const void *key,
                             size_t keylen) {
  if (keylen > MPROC_AUTHKEY_MAX || (!key && keylen))
    return MPROC_EINVAL;
  if ((key || a->kind == MPROC__NET_TCP) && !mproc__net_crypto())
    return MPROC_ENOTSUP;
  return MPROC_OK;
}

/* ---- the handshake ----------------------------------------------------------------- */

/* Compare without an early exit, so the time taken tells nothing about
 * how much of a digest was right. */
static int mproc__hs_equal(const unsigned char *a, const unsigned char *b,
                           size_t n) {
  unsigned char d = 0;
  size_t i;
  for (i = 0; i < n; i++)
    d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

/* Receive one handshake message (at most MPROC__HS_MAX bytes).  A frame
 * that is too big or not a frame is not a handshake: MPROC_EAUTH. */
static int mproc__hs_recv(mproc_conn *c, unsigned char *buf, size_t *n,
                          double deadline) {
  double left = mproc__remaining(deadline);
  int rc = mproc_conn_recv_bytes(c, buf, MPROC__HS_MAX, n, left < 0 ? 0 : left);
  if (rc == MPROC_ERANGE || rc == MPROC_EBROKEN)
    return MPROC_EAUTH;
  return rc;
}

/* "{sha256}" + HMAC(key, msg) into out (MPROC__HS_TAG_LEN + digest). */
static int mproc__hs_response(const mproc_listener *k, const unsigned char *msg,
                              size_t len, unsigned char *out) {
  memcpy(out, MPROC__HS_TAG, MPROC__HS_TAG_LEN);
  return mproc__net_hmac(k->key, k->keylen, msg, len,
                         out + MPROC__HS_TAG_LEN);
}

/* Python's deliver_challenge: challenge the peer, check its answer, tell
 * it the verdict. */
static int mproc__hs_deliver(mproc_conn *c, const mproc_listener *k,
                             double deadline) {
  unsigned char msg[MPROC__HS_CHALLENGE_LEN + MPROC__HS_TAG_LEN +
                    MPROC__HS_NONCE];
  unsigned char want[MPROC__HS_TAG_LEN + MPROC__NET_DIGEST];
  unsigned char got[MPROC__HS_MAX];
  unsigned char *m = msg + MPROC__HS_CHALLENGE_LEN; /* what is signed */
  size_t n = 0, mlen = MPROC__HS_TAG_LEN + MPROC__HS_NONCE;
  int rc, ok;
  memcpy(msg, MPROC__HS_CHALLENGE, MPROC__HS_CHALLENGE_LEN);
  memcpy(m, MPROC__HS_TAG, MPROC__HS_TAG_LEN);
  rc = mproc__net_random(m + MPROC__HS_TAG_LEN, MPROC__HS_NONCE);
  if (rc < 0)
    goto finish;
  rc = mproc__hs_response(k, m, mlen, want);
  if (rc < 0)
    goto finish;
  rc = mproc_conn_send_bytes(c, msg, sizeof msg);
  if (rc < 0)
    goto finish;
  rc = mproc__hs_recv(c, got, &n, deadline);
  if (rc < 0)
    goto finish;
  ok = n == sizeof want && mproc__hs_equal(got, want, sizeof want);
  rc = mproc_conn_send_bytes(c, ok ? MPROC__HS_WELCOME : MPROC__HS_FAILURE,
                             MPROC__HS_REPLY_LEN);
  if (!ok)
    rc = MPROC_EAUTH;
finish:
  return rc;
}

/* Python's answer_challenge: sign the peer's challenge, learn the
 * verdict. */
static int mproc__hs_answer(mproc_conn *c, const mproc_listener *k,
                            double deadline) {
  unsigned char got[MPROC__HS_MAX];
  unsigned char resp[MPROC__HS_TAG_LEN + MPROC__NET_DIGEST];
  size_t n = 0;
  int rc = mproc__hs_recv(c, got, &n, deadline);
  if (rc < 0)
    goto finish;
  /* "#CHALLENGE#{sha256}" and at least 20 bytes of nonce (Python's
   * minimum for a challenge) */
  rc = MPROC_EAUTH;
  if (n < MPROC__HS_CHALLENGE_LEN + MPROC__HS_TAG_LEN + 20 ||
      memcmp(got, MPROC__HS_CHALLENGE, MPROC__HS_CHALLENGE_LEN) != 0 ||
      memcmp(got + MPROC__HS_CHALLENGE_LEN, MPROC__HS_TAG,
             MPROC__HS_TAG_LEN) != 0)
    goto finish;
  rc = mproc__hs_response(k, got + MPROC__HS_CHALLENGE_LEN,
                          n - MPROC__HS_CHALLENGE_LEN, resp);
  if (rc < 0)
    goto finish;
  rc = mproc_conn_send_bytes(c, resp, sizeof resp);
  if (rc < 0)
    goto finish;
  rc = mproc__hs_recv(c, got, &n, deadline);
  if (rc == MPROC_OK && (n != MPROC__HS_REPLY_LEN ||
                         memcmp(got, MPROC__HS_WELCOME, n) != 0))
    rc = MPROC_EAUTH;
finish:
  return rc;
}

/* The handshake's deadline: the call's, or MPROC_HANDSHAKE_TIMEOUT from now
 * when the call has none (a silent peer must not hold the caller forever). */
static double mproc__hs_deadline(double deadline) {
  return deadline >= 0 ? deadline : mproc__deadline(MPROC_HANDSHAKE_TIMEOUT);
}

/* Wrap a fresh transport end and, with a key, authenticate both ways in
 * the order of the side (the listener challenges first).  On failure the
 * connection is closed: nothing the peer sent reaches the program. */
static int mproc__hs_connection(mproc__conn_os *os, const mproc_listener *k,
                                int listener_side, double deadline,
                                mproc_conn **out) {
  mproc_conn *c = NULL;
  int rc = mproc__conn_from_os(os, &c);
  if (rc < 0 || !k->key)
    goto finish;
  deadline = mproc__hs_deadline(deadline);
  rc = listener_side ? mproc__hs_deliver(c, k, deadline)
                     : mproc__hs_answer(c, k, deadline);
  if (rc < 0)
    goto finish;
  rc = listener_side ? mproc__hs_answer(c, k, deadline)
                     : mproc__hs_deliver(c, k, deadline);
finish:
  if (rc < 0)
    c = mproc_conn_free(c);
  *out = c;
  return rc;
}

/* ---- the listener ------------------------------------------------------------------ */

static int mproc__listener_valid(const mproc_listener *l) {
  return l && l->magic == MPROC__LISTENER_MAGIC;
}

/* A copy of the key (a listener keeps it; a client borrows the caller's). */
static int mproc__listener_keep_key(mproc_listener *l, const void *key,
                                    size_t keylen) {
  if (!key)
    return MPROC_OK;
  l->key = (unsigned char *)malloc(keylen ? keylen : 1);
  if (!l->key)
    return MPROC_ENOMEM;
  if (keylen)
    memcpy(l->key, key, keylen);
  l->keylen = keylen;
  return MPROC_OK;
}

int mproc_listener_create(mproc_listener **out, const char *address,
                          const void *authkey, size_t authkey_len) {
  mproc_listener *l = NULL;
  mproc__net_addr a;
  char *copy = NULL;
  int rc;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  rc = mproc__addr_parse(address, &a, &copy);
  if (rc < 0)
    goto finish;
  rc = mproc__auth_check(&a, authkey, authkey_len);
  if (rc < 0)
    goto finish;
  l = (mproc_listener *)calloc(1, sizeof(*l));
  rc = l ? mproc__listener_keep_key(l, authkey, authkey_len) : MPROC_ENOMEM;
  if (rc < 0)
    goto finish;
  rc = mproc__net_listen(&a, &l->net);
  if (rc < 0)
    goto finish;
  l->address = mproc__addr_format(&a, mproc__net_port(l->net));
  rc = l->address ? MPROC_OK : MPROC_ENOMEM;
finish:
  free(copy);
  if (rc < 0) {
    mproc_listener_free(l);
    return rc;
  }
  l->magic = MPROC__LISTENER_MAGIC;
  *out = l;
  return MPROC_OK;
}

int mproc_listener_accept(mproc_listener *l, mproc_conn **out,
                          double timeout) {
  mproc__conn_os *os = NULL;
  double deadline;
  int rc;
  if (!mproc__listener_valid(l) || !out || isnan(timeout))
    return MPROC_EINVAL;
  *out = NULL;
  if (mproc__load32(&l->closed))
    return MPROC_ECLOSED;
  deadline = mproc__deadline(timeout);
  rc = mproc__net_accept(l->net, deadline, &os);
  return rc < 0 ? rc : mproc__hs_connection(os, l, 1, deadline, out);
}

const char *mproc_listener_address(const mproc_listener *l) {
  return mproc__listener_valid(l) ? l->address : NULL;
}

int mproc_listener_close(mproc_listener *l) {
  if (!mproc__listener_valid(l))
    return MPROC_EINVAL;
  if (mproc__xchg32(&l->closed, 1u) == 0)
    mproc__net_close(l->net);
  return MPROC_OK;
}

mproc_listener *mproc_listener_free(mproc_listener *l) {
  if (!l)
    return NULL;
  if (l->net) {
    mproc__net_close(l->net);
    mproc__net_free(l->net);
  }
  if (l->key) { /* the key is a secret: do not leave it in freed memory */
    volatile unsigned char *p = l->key;
    size_t i;
    for (i = 0; i < l->keylen; i++)
      p[i] = 0;
  }
  free(l->key);
  free(l->address);
  l->magic = 0;
  free(l);
  return NULL;
}

/* ---- the client ----------------------------------------------------------------------- */

int mproc_client_connect(mproc_conn **out, const char *address,
                         const void *authkey, size_t authkey_len,
                         double timeout) {
  mproc_listener k; /* only its key is used: the handshake's view */
  mproc__conn_os *os = NULL;
  mproc__net_addr a;
  char *copy = NULL;
  double deadline = mproc__deadline(timeout);
  int rc;
  if (!out || isnan(timeout))
    return MPROC_EINVAL;
  *out = NULL;
  memset(&k, 0, sizeof k);
  k.key = (unsigned char *)(uintptr_t)authkey;
  k.keylen = authkey_len;
  rc = mproc__addr_parse(address, &a, &copy);
  if (rc < 0)
    goto finish;
  rc = mproc__auth_check(&a, authkey, authkey_len);
  if (rc < 0)
    goto finish;
  rc = mproc__net_connect(&a, deadline, &os);
  if (rc < 0)
    goto finish;
  rc = mproc__hs_connection(os, &k, 0, deadline, out);
finish:
  free(copy);
  return rc;
}

int mproc_connection_auth_supported(void) { return mproc__net_crypto(); }
