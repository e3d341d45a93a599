/*
 * Platform contract, the OS side of pipes (mproc__conn_os): the transport
 * under the portable connection code (src/conn.c, src/conn.h).  Implemented
 * by src/posix/conn_os.c and src/win32/conn_os.c.
 */
#ifndef MPROC_PLAT_CONN_OS_H
#define MPROC_PLAT_CONN_OS_H

#include <stddef.h>

#include "plat/core.h"

/* The list of handles an object exports for a child (src/ipc.h). */
struct mproc__handles;

/*
 * One mproc__conn_os per end.  The portable layer serialises calls: at most
 * one thread of all the processes holding an end reads (os_read, os_poll)
 * and one writes (os_write) at a time; os_wait_handle may run concurrently
 * with both, and os_read is only called once os_poll saw bytes or
 * end-of-file (so it does not block, and a receiver that dies while it
 * waits has taken nothing out of the pipe).  Deadlines are
 * absolute mproc__plat_now() seconds, negative for no limit; a deadline in
 * the past still makes one non-blocking attempt. */

typedef struct mproc__conn_os mproc__conn_os;

enum { MPROC__CONN_R = 1u, MPROC__CONN_W = 2u };

/* A connected pair.  duplex=0: *a receives only, *b sends only. */
int mproc__conn_os_pair(mproc__conn_os **a, mproc__conn_os **b, int duplex);

/* Send header then payload, completely, blocking as long as it takes.
 * 0, MPROC_EEOF (the peer is gone), MPROC_ECLOSED (cancelled by a close in
 * another thread), MPROC_ESYS. */
int mproc__conn_os_write(mproc__conn_os *os, const unsigned char *hdr,
                         size_t hlen, const void *data, size_t len);

/* Read at least one and at most cap bytes (after os_poll said there are
 * some).  0 with *got > 0, MPROC_EEOF at end-of-file, MPROC_ETIMEDOUT,
 * MPROC_ECLOSED, MPROC_ESYS. */
int mproc__conn_os_read(mproc__conn_os *os, void *buf, size_t cap,
                        double deadline, size_t *got);

/* 1 when bytes or end-of-file are there to read, 0 at the deadline (or
 * an error). */
int mproc__conn_os_poll(mproc__conn_os *os, double deadline);

/* See mproc__conn_wait_handle (ready_now is only ever set to 1 here). */
int mproc__conn_os_wait_handle(mproc__conn_os *os, mproc_handle_t *out,
                               int *ready_now);

/* Wake calls blocked in this process on `os` (Windows: cancels its pending
 * I/O, which then reports MPROC_ECLOSED); a no-op where the OS has no way to
 * do that without disturbing other processes (POSIX). */
void mproc__conn_os_cancel(mproc__conn_os *os);

/* Describe for a child: push the handles, return the count. */
int mproc__conn_os_export(const mproc__conn_os *os, unsigned dir,
                          struct mproc__handles *hs);
/* How many handles an end with direction bits `dir` exports. */
size_t mproc__conn_os_nhandles(unsigned dir);
/* Rebuild from the child's values of the exported handles (takes them,
 * also on failure). */
int mproc__conn_os_import(const mproc_handle_t *hs, size_t nh, unsigned dir,
                          mproc__conn_os **out);

/* Wrap one connected duplex stream as an end (a Listener/Client
 * connection, src/plat/net.h).  POSIX: a stream socket; Windows: a named
 * pipe handle or a SOCKET, opened for overlapped I/O.  Takes h (closed on
 * failure too). */
int mproc__conn_os_wrap(mproc_handle_t h, mproc__conn_os **out);

/* For the shared-memory ring of mproc_pipe() pairs (src/conn.c): the
 * sender's check that the peer end still exists, on the same coarse
 * cadence os_write uses.  MPROC_OK, MPROC_EEOF (the peer is gone), or
 * MPROC_ENOTSUP where the ring is not used (Windows, wrapped sockets: the
 * peer may not share the segment). */
int mproc__conn_os_ring_check(mproc__conn_os *os);

/* Let another thread run (a receiver looking at the ring again). */
void mproc__conn_os_yield(void);

/* Release everything (NULL allowed). */
void mproc__conn_os_close(mproc__conn_os *os);

#endif
