/* Declarations shared by the Windows backend's own files in src/win32.
 * Include after <windows.h>; nothing outside src/win32/ sees this. */
#ifndef MPROC_WIN32_W32_H
#define MPROC_WIN32_W32_H

#include <stddef.h>
#include <stdint.h>

/* Windows has no signals, but Python's exit codes for terminate(), kill()
 * and a SIGINT death are negative signal numbers.  A child ended by the
 * backend gets 0x10000 + N: far above the 0..255 a portable program returns
 * and far below the 0xC0000000 NTSTATUS range of crashes, so reap() can map
 * it back to -N without hiding a real exit code. */
#define MPROC__W32_SIG_BASE 0x10000u
#define MPROC__W32_EXIT_INT (MPROC__W32_SIG_BASE + 2u)
#define MPROC__W32_EXIT_KILL (MPROC__W32_SIG_BASE + 9u)
#define MPROC__W32_EXIT_TERM (MPROC__W32_SIG_BASE + 15u)

/* The child flag: argv[1] of a spawned child is this prefix followed by the
 * hexadecimal value of the inherited bootstrap pipe handle. */
#define MPROC__W32_FLAG MPROC__BS_FLAG "="

/* Full path of the own executable, recorded by mproc__plat_init(); NULL
 * before it. */
const wchar_t *mproc__w32_exe_path(void);

/* Seconds to a Wait* timeout in milliseconds: negative (or NaN) is INFINITE,
 * fractions round up so a short wait never becomes a poll, and the result is
 * clamped below INFINITE. */
DWORD mproc__w32_ms(double seconds);

/* WaitForMultipleObjects(bWaitAll=FALSE) with a timeout in seconds that may
 * exceed the ~49.7 days a DWORD of milliseconds holds: long waits are cut
 * into slices against a deadline.  Returns what the last slice returned. */
DWORD mproc__w32_wait_any(DWORD n, const HANDLE *h, double timeout);

/* The system's message for `err` ("The handle is invalid"), without the
 * trailing period and line break; "error N" when there is none. */
void mproc__w32_strerror(DWORD err, char *buf, size_t cap);

/* Lower-case hexadecimal of `v` without leading zeros ("1c"); `out` holds
 * at least 17 chars.  Used instead of printf so the format does not depend
 * on which C runtime's printf the toolchain links. */
void mproc__w32_hex(uint64_t v, char *out);

/* Is `h` a handle at all (neither NULL nor INVALID_HANDLE_VALUE)? */
int mproc__w32_valid(HANDLE h);

/* MPROC_ENOMEM for the errors that mean the system (or the pagefile) is out
 * of memory, else MPROC_ESYS with `err` recorded (mproc__os_fail). */
int mproc__w32_map_error(DWORD err);

/* The pipe handle under a transport end (src/win32/conn_os.c), still owned
 * by it: the spawn code names the bootstrap pipe's read end on the child's
 * command line and lets the child inherit it. */
HANDLE mproc__w32_conn_handle(const mproc__conn_os *os);

/* A named pipe of one instance under a fresh unguessable name, server end
 * overlapped, client connected (src/win32/conn_os.c); `duplex` 0: the
 * server only reads; `sync_client`: the client is not overlapped.  Then
 * mproc__conn_w32_confirm(server): 0 or the Windows error. */
int mproc__conn_w32_open_pipe(int duplex, int sync_client, HANDLE *server,
                              HANDLE *client);
DWORD mproc__conn_w32_confirm(HANDLE server);

#endif
