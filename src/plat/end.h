/*
 * Platform contract, how a child ended: what the exit code
 * mproc__plat_reap() reported means on this OS (an exit, a signal, a
 * Windows terminate or crash) and the name of its signal or status.
 * Implemented by src/posix/end.c and src/win32/end.c; src/process_end.c
 * adds what is the same everywhere (bootstrap failures, the text).
 */
#ifndef MPROC_PLAT_END_H
#define MPROC_PLAT_END_H

#include "plat/core.h"

/* Fill info->kind, code, status and name (a static string, "" for a plain
 * exit) from `exitcode`; the caller set the rest. */
void mproc__plat_end_decode(int exitcode, mproc_end_info *info);

#endif
