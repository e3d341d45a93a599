/*
 * mproc connections between unrelated processes: Python's
 * multiprocessing.connection.Listener and Client.  Included by mproc.h.
 *
 * A listener waits at an address; a client connects to it; each accepted
 * or connected end is an ordinary mproc_conn (send/recv bytes, poll,
 * mproc_wait, pass to a child), whatever the two programs are.
 *
 * Addresses
 *   "unix:PATH"       a Unix domain socket (POSIX).  The socket file is
 *                     created readable and writable by its owner only
 *                     (mode 0600).  A socket file of this user left by a
 *                     listener that died is replaced; a path where a
 *                     listener still answers, or that is not such a
 *                     socket, is MPROC_EEXIST.  (The check connects once:
 *                     a live listener sees a client that hangs up at once.)
 *                     The path must fit sockaddr_un's sun_path (about
 *                     100 bytes): longer is MPROC_EINVAL.
 *                     mproc_listener_free() removes the file.
 *   "pipe:NAME"       a Windows named pipe, \\.\pipe\NAME, local clients
 *                     only, open to this user only.
 *   "tcp:HOST:PORT"   TCP on both (HOST a name or an IPv4 address, an IPv6
 *                     one in brackets: "tcp:[::1]:5000").  Port 0 takes a
 *                     free port; mproc_listener_address() tells which.
 *   An address of a kind the platform lacks is MPROC_ENOTSUP; a malformed
 *   one MPROC_EINVAL.
 *
 * Authentication (authkey)
 *   As Python does it: with an authkey, each side proves to the other that
 *   it knows the key before any data flows, by a challenge-response over
 *   HMAC-SHA256 (40 random bytes; the listener challenges first, then the
 *   client).  A peer with another key (or none, or one that is not mproc)
 *   is refused on both sides with MPROC_EAUTH, and the connection closed;
 *   nothing it sent is ever handed to the program.  Handshake messages
 *   are at most 256 bytes, so a peer cannot make either side allocate or
 *   wait for more.  authkey NULL means no authentication, as Python's
 *   authkey=None: then anyone who can reach the address may connect (for
 *   TCP, every local user, and the network unless HOST is a loopback
 *   address).  The key is the secret: keep it out of command lines.
 *   The wire format is mproc's own (its message framing), so an mproc
 *   program talks to mproc programs, not to Python ones.
 *
 *   Crypto comes from the platform: OpenSSL's libcrypto on POSIX (found
 *   at build time; optional), BCrypt on Windows.  A POSIX build without
 *   OpenSSL has no authentication: every call with an authkey, and every
 *   tcp: address (a TCP port without a key is open to every local user),
 *   returns MPROC_ENOTSUP; unix: without a key still works (the socket
 *   file's mode keeps other users out).  mproc_connection_auth_supported()
 *   tells which build this is.
 *
 * The connections
 *   Accepted and connected ends are duplex mproc_conn objects like
 *   mproc_pipe()'s: several threads may use one, mproc_wait() waits on it,
 *   and it may be passed to a child as an argument, except a TCP
 *   connection on Windows (MPROC_ENOTSUP when the process is created:
 *   Winsock sockets need WSADuplicateSocket).  A fork child that frees its
 *   copy of a listener leaves the parent's listener working (and its
 *   socket file in place).
 *
 * Timeouts
 *   accept and connect take a timeout in seconds (negative: no limit) that
 *   bounds everything they do, the handshake included.  A client that
 *   connects and then says nothing (or garbage) makes that accept return
 *   MPROC_ETIMEDOUT (or MPROC_EAUTH) and closes it; the next accept serves
 *   the next client.  Without a limit, a silent client holds accept for at
 *   most MPROC_HANDSHAKE_TIMEOUT seconds.
 */
#ifndef MPROC_CONNECTION_H
#define MPROC_CONNECTION_H

#ifndef MPROC_H
#error "include <mproc.h>, not <mproc/connection.h>"
#endif

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Longest authkey, in bytes. */
#define MPROC_AUTHKEY_MAX 1024

/** Bound, in seconds, on the handshake of a connection accepted or
 * connected with no timeout (a negative one). */
#define MPROC_HANDSHAKE_TIMEOUT 30.0

typedef struct mproc_listener mproc_listener;

/**
 * Listen at an address (Python's Listener(address, authkey=...)).
 *
 * @param out          receives the listener.
 * @param address      "unix:PATH", "pipe:NAME" or "tcp:HOST:PORT" (see
 *                     the header's comment).
 * @param authkey      the shared key, or NULL for no authentication.
 * @param authkey_len  its length in bytes (at most MPROC_AUTHKEY_MAX;
 *                     0 with a non-NULL key is an empty key, as b'').
 * @return 0; MPROC_EINVAL (NULL out or address, malformed address, a unix
 *         path too long for sun_path, authkey_len over the maximum);
 *         MPROC_ENOTSUP (address kind not on this platform, or no crypto:
 *         see above); MPROC_EEXIST (a live listener, or something that is
 *         not a socket, holds the path or pipe name; the TCP port is in
 *         use); MPROC_EPERM (no permission to create the unix: socket
 *         file in its directory); MPROC_ESYS (mproc_os_error() has the
 *         reason).
 * Thread-safe.
 */
MPROC_API int mproc_listener_create(mproc_listener **out, const char *address,
                                    const void *authkey, size_t authkey_len);

/**
 * Wait for the next client and authenticate it (Python's
 * Listener.accept()).
 *
 * @param l        the listener.
 * @param out      receives the connection (duplex), to free with
 *                 mproc_conn_free().
 * @param timeout  seconds for the whole accept, handshake included;
 *                 negative for no limit (the handshake is then bounded by
 *                 MPROC_HANDSHAKE_TIMEOUT).
 * @return 0; MPROC_ETIMEDOUT (no client, or one that did not finish the
 *         handshake in time: that one is closed); MPROC_EAUTH (the client
 *         failed authentication, or sent what is not a handshake: it is
 *         told and closed); MPROC_EEOF (it hung up during the handshake);
 *         MPROC_ECLOSED (the listener was closed); MPROC_EINVAL;
 *         MPROC_ESYS.  After any error the listener accepts again.
 * Thread-safe: several threads may accept at once (each client goes to
 * one of them).
 */
MPROC_API int mproc_listener_accept(mproc_listener *l, mproc_conn **out,
                                    double timeout);

/**
 * The address the listener is bound to, in the form create takes, with
 * the port a tcp: listener of port 0 was given ("tcp:127.0.0.1:40123").
 *
 * @param l  the listener.
 * @return the address, valid until mproc_listener_free(); NULL for an
 *         invalid listener.  Thread-safe.
 */
MPROC_API const char *mproc_listener_address(const mproc_listener *l);

/**
 * Stop listening: clients can no longer connect, later accepts return
 * MPROC_ECLOSED, and a unix: socket file is removed.  Connections already
 * accepted stay open.  Closing twice is harmless.
 *
 * @param l  the listener.
 * @return 0, or MPROC_EINVAL.
 * Thread-safe, but an accept blocked in another thread may wait out its
 * timeout (POSIX) before it sees the close.
 */
MPROC_API int mproc_listener_close(mproc_listener *l);

/**
 * Close (if open) and release the listener.
 *
 * @param l  the listener, or NULL.
 * @return NULL.
 * Must not race with other calls on the same listener.
 */
MPROC_API mproc_listener *mproc_listener_free(mproc_listener *l);

/**
 * Connect to a listener and authenticate (Python's Client(address,
 * authkey=...)).
 *
 * @param out          receives the connection (duplex), to free with
 *                     mproc_conn_free().
 * @param address      as for mproc_listener_create().
 * @param authkey      the shared key (NULL: none; it must match the
 *                     listener's choice).
 * @param authkey_len  its length in bytes.
 * @param timeout      seconds for the connect and the handshake; negative
 *                     for no limit (the handshake is then bounded by
 *                     MPROC_HANDSHAKE_TIMEOUT).
 * @return 0; MPROC_ENOTFOUND (nobody listens there); MPROC_EAUTH (the
 *         listener refused our key, or failed to prove it knows it);
 *         MPROC_ETIMEDOUT; MPROC_EEOF (the listener hung up during the
 *         handshake); MPROC_EPERM (the unix: socket file or the pipe
 *         belongs to another user, who did not let us in: the OS said
 *         EACCES/EPERM or ERROR_ACCESS_DENIED, see mproc_os_error());
 *         MPROC_EINVAL; MPROC_ENOTSUP (see create); MPROC_ESYS.
 * Thread-safe.
 */
MPROC_API int mproc_client_connect(mproc_conn **out, const char *address,
                                   const void *authkey, size_t authkey_len,
                                   double timeout);

/**
 * Whether this build can authenticate (has HMAC-SHA256: always on
 * Windows, with OpenSSL on POSIX) and so offers authkeys and tcp:.
 *
 * @return 1 or 0.  Thread-safe.
 */
MPROC_API int mproc_connection_auth_supported(void);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_CONNECTION_H */
