/* The process pool (include/mproc/pool.h): what the rest of the library
 * needs to know about it. */
#ifndef MPROC_POOL_INTERNAL_H
#define MPROC_POOL_INTERNAL_H

#include "internal.h"

/* The pool's worker loop, found by name in every program without the table
 * listing it (src/process.c: mproc__find_entry). */
extern const mproc_entry mproc__pool_worker_entry;

/* An entry of the program's table (or the internal worker) by name; NULL if
 * there is none or mproc_main() was not called.  (src/process.c) */
const mproc_entry *mproc__entry_find(const char *name);

/* mproc_process_create() for the worker entry, which refuses it to everyone
 * else.  (src/process.c) */
int mproc__pool_worker_create(mproc_process **out, const mproc_args *args,
                              const mproc_process_options *opts);

#endif
