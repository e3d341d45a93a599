/*
 * The platform contract: the narrow interface between the portable code (the
 * .c files in src/) and one backend (src/posix/ or src/win32/).  This header
 * only includes the concern headers in src/plat/, which declare and document
 * every function a backend provides; each plat/<concern>.h is implemented by
 * src/posix/<concern>.c and src/win32/<concern>.c.  The portable code calls
 * nothing else that is platform specific (scripts/check-boundary.sh checks
 * that it includes no OS header).
 */
#ifndef MPROC_PLATFORM_H
#define MPROC_PLATFORM_H

#include "plat/core.h"    /* lock, pid, clock, init, handles, owner liveness */
#include "plat/proc.h"    /* start, wait, reap, signal a child */
#include "plat/child.h"   /* the child's side: bootstrap, parent watch */
#include "plat/seg.h"     /* shared segments */
#include "plat/futex.h"   /* wait/wake on a shared 32-bit word */
#include "plat/conn_os.h" /* the OS side of pipes */
#include "plat/thread.h"  /* threads and condition variables */
#include "plat/forkserver.h" /* the forkserver start method */
#include "plat/end.h"     /* how a child ended: signal and status names */
#include "plat/net.h"     /* listeners, clients, handshake crypto */
#include "plat/capture.h" /* captured stdout/stderr pipes */

#endif
