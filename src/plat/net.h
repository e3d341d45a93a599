/*
 * Platform contract, listeners and clients (mproc_listener_*,
 * mproc_client_connect): the OS side of an address, and the crypto of the
 * handshake.  The portable half (src/listener.c) parses addresses and runs
 * the handshake; implemented by src/posix/net.c and src/win32/net.c.
 */
#ifndef MPROC_PLAT_NET_H
#define MPROC_PLAT_NET_H

#include <stddef.h>

#include "plat/conn_os.h"

enum {
  MPROC__NET_UNIX = 1, /* path: a Unix domain socket file */
  MPROC__NET_PIPE = 2, /* path: a Windows pipe name, without \\.\pipe\ */
  MPROC__NET_TCP = 3   /* path: host (brackets removed), port */
};

/* A parsed address (src/listener.c checks the syntax; the backend the
 * rest: lengths, whether the kind exists here). */
typedef struct mproc__net_addr {
  int kind;
  const char *path;
  unsigned port;
} mproc__net_addr;

typedef struct mproc__net_listener mproc__net_listener;

/* Bind and listen.  MPROC_ENOTSUP for a kind this platform lacks,
 * MPROC_EINVAL for a path/name too long (sun_path) or a host that does not
 * resolve, MPROC_EEXIST when the address is taken (a live listener, or a
 * file that is not a stale socket), MPROC_ESYS. */
int mproc__net_listen(const mproc__net_addr *a, mproc__net_listener **out);

/* The port a TCP listener is bound to (port 0 asked for a free one); 0 for
 * other kinds. */
unsigned mproc__net_port(const mproc__net_listener *l);

/* Take the next connection by `deadline` (absolute mproc__plat_now()
 * seconds, negative: none) as a transport end (mproc__conn_os_wrap).
 * MPROC_ETIMEDOUT, MPROC_ECLOSED after mproc__net_close, MPROC_ESYS.
 * Several threads may accept at once. */
int mproc__net_accept(mproc__net_listener *l, double deadline,
                      mproc__conn_os **out);

/* Stop listening (a unix: socket file is removed); accepts in progress
 * return MPROC_ECLOSED (Windows at once; POSIX at once where shutdown()
 * wakes them, Linux, else by their deadline).  Idempotent. */
void mproc__net_close(mproc__net_listener *l);

/* Release (after close; no call may be in progress).  NULL allowed. */
void mproc__net_free(mproc__net_listener *l);

/* Connect by `deadline`.  MPROC_ENOTFOUND when nobody listens there,
 * MPROC_ETIMEDOUT, MPROC_ENOTSUP, MPROC_EINVAL, MPROC_ESYS. */
int mproc__net_connect(const mproc__net_addr *a, double deadline,
                       mproc__conn_os **out);

/* ---- crypto for the handshake ------------------------------------------- */

#define MPROC__NET_DIGEST 32 /* HMAC-SHA256 */

/* 1 if HMAC-SHA256 and a CSPRNG are available (POSIX: built with
 * OpenSSL), else 0. */
int mproc__net_crypto(void);

/* HMAC-SHA256 of msg under key.  MPROC_ENOTSUP without crypto, MPROC_ESYS. */
int mproc__net_hmac(const void *key, size_t keylen, const void *msg,
                    size_t msglen, unsigned char out[MPROC__NET_DIGEST]);

/* n bytes from the system's CSPRNG.  MPROC_ENOTSUP, MPROC_ESYS. */
int mproc__net_random(void *buf, size_t n);

#endif
