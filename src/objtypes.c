/* The registered IPC object types: each module adds its line. */
#include "ipc.h"

extern const mproc__objtype mproc__shm_type, mproc__array_type; /* shm.c */
extern const mproc__objtype mproc__queue_type; /* queue.c */
extern const mproc__objtype mproc__lock_type, mproc__semaphore_type,
    mproc__event_type, mproc__condition_type, mproc__barrier_type; /* sync.c */
extern const mproc__objtype mproc__conn_type; /* conn.c */

const mproc__objtype *const mproc__objtypes[] = {
    &mproc__shm_type, &mproc__array_type,
    &mproc__queue_type,
    &mproc__lock_type, &mproc__semaphore_type, &mproc__event_type,
    &mproc__condition_type, &mproc__barrier_type,
    &mproc__conn_type,
    /* MODULES: add `&mproc__<name>_type,` lines above this comment */
    NULL};
