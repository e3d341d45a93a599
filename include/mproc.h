/**
 * @file
 * @brief mproc — Python's multiprocessing model for C, on POSIX and Windows.
 *
 * Run a function in a child process, name it, pass it arguments, join it with
 * a timeout, terminate it and read its exit code, the same way on Linux (fork
 * or spawn) and on Windows (spawn: the program is started again).
 *
 * ### Conventions
 *   - Every function that can fail returns 0 (#MPROC_OK) or a negative
 *     `MPROC_E*` code; mproc_strerror() turns it into a message.  Functions
 *     that answer a yes/no question return 1 or 0, or a negative code on error.
 *   - Objects are opaque and created through out-parameters.
 *   - Timeouts are in seconds, as in Python; a negative timeout (use
 *     #MPROC_FOREVER) waits without limit, 0 polls.
 *   - Thread safety is stated per function.  "Thread-safe" means the call may
 *     run concurrently with any other call on the same object except
 *     mproc_process_free() of that object.
 *
 * ### The one rule to remember (the spawn start method and Windows)
 * A spawned child is this same executable started again.  Call mproc_main()
 * first thing in main(): in a spawned child it runs the requested entry and
 * never returns; in the parent it returns 0 at once.  Code that runs before
 * mproc_main() runs again in every spawned child, exactly as module-level
 * code does in Python without the `if __name__ == "__main__"` guard.
 */
#ifndef MPROC_H
#define MPROC_H

#include <stddef.h>
#include <stdint.h>

#define MPROC_VERSION_MAJOR 0 /**< Major version of this header. */
#define MPROC_VERSION_MINOR 2 /**< Minor version of this header. */
#define MPROC_VERSION_PATCH 0 /**< Patch version of this header. */
/** The version as one number, 0xMMmmpp (major, minor, patch). */
#define MPROC_VERSION_HEX                                                      \
  ((MPROC_VERSION_MAJOR << 16) | (MPROC_VERSION_MINOR << 8) |                  \
   MPROC_VERSION_PATCH)

/**
 * @def MPROC_API
 * Marks the exported functions.  A shared build defines MPROC_SHARED for the
 * library and its users (CMake does this); the library itself also defines
 * MPROC_BUILDING.
 */
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(MPROC_SHARED)
#if defined(MPROC_BUILDING)
#define MPROC_API __declspec(dllexport)
#else
#define MPROC_API __declspec(dllimport)
#endif
#else
#define MPROC_API
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

#define MPROC_OK 0 /**< Success. */
#define MPROC_EINVAL (-1)    /**< invalid argument: NULL, out of range, bad name */
#define MPROC_ENOMEM (-2)    /**< out of memory */
#define MPROC_ESTATE (-3)    /**< wrong state: start twice, join before start */
#define MPROC_ETIMEDOUT (-4) /**< the timeout expired first */
#define MPROC_ENOENTRY (-5)  /**< no entry of that name in the dispatch table */
#define MPROC_ECLOSED (-6)   /**< the object was closed */
#define MPROC_EBUSY (-7)     /**< close of a process that is still running */
#define MPROC_ENOTSUP (-8)   /**< not available on this platform (fork on Windows) */
#define MPROC_EDAEMON (-9)   /**< a daemonic process may not start children */
#define MPROC_ESPAWN (-10)   /**< the child could not be started or bootstrapped */
#define MPROC_ESYS (-11)     /**< other OS error; see mproc_os_error() */
#define MPROC_ETYPE (-12)    /**< argument exists but has another type */
#define MPROC_ENOTFOUND (-13) /**< no argument at that index / with that key */
#define MPROC_EPERM (-14)    /**< only the creating process may do that; a shared
                                 memory block another user owns or may open;
                                 a socket or pipe another user owns */
#define MPROC_E2BIG (-15)    /**< argument list or message over the size limit */
#define MPROC_ENOINIT (-16)  /**< mproc_main() was not called */
#define MPROC_ERANGE (-17)   /**< result does not fit the caller's buffer */
#define MPROC_EOWNERDEAD (-18) /**< acquired, but the previous holder died */
#define MPROC_EFULL (-19)    /**< queue full (put timed out or put_nowait) */
#define MPROC_EEMPTY (-20)   /**< queue empty (get timed out or get_nowait) */
#define MPROC_EEOF (-21)     /**< the peer closed its end (or died) */
#define MPROC_EBROKEN (-22)  /**< the barrier is broken; a pipe's stream is damaged */
#define MPROC_EOVERFLOW (-23) /**< released/task_done more often than allowed */
#define MPROC_EEXIST (-24)   /**< a shared memory block of that name exists */
#define MPROC_EWORKER (-25)  /**< the pool worker running the task died */
#define MPROC_EAUTH (-26)    /**< authentication failed: the peer does not know the authkey */

/** Message for an `MPROC_E*` code ("unknown error" for others).  Thread-safe.
 * @param err  an `MPROC_E*` code (or any int)
 * @return the message; never NULL. */
MPROC_API const char *mproc_strerror(int err);
/** The code's symbolic name, e.g. "MPROC_ETIMEDOUT".  Thread-safe.
 * @param err  an `MPROC_E*` code (or any int)
 * @return the name; never NULL. */
MPROC_API const char *mproc_err_name(int err);
/** The OS error (errno, or GetLastError() on Windows) behind the last
 * #MPROC_ESYS or #MPROC_ESPAWN returned to the calling thread.  Thread-safe
 * (kept per thread).
 * @return the OS error code. */
MPROC_API int mproc_os_error(void);

/** The library's version, "0.2.0".  Thread-safe.
 * @return a static string. */
MPROC_API const char *mproc_version_string(void);

/* ------------------------------------------------------------------------ */
/* Arguments: a typed list, positional and keyword (Python's args/kwargs)    */
/* ------------------------------------------------------------------------ */

/** A typed argument list, positional and keyword (Python's args/kwargs). */
typedef struct mproc_args mproc_args;

/** The type of one argument, as mproc_arg_type() and mproc_kwarg_type()
 * report it. */
typedef enum mproc_arg_kind {
  MPROC_ARG_INT = 1,    /**< int64_t */
  MPROC_ARG_DOUBLE = 2, /**< double, bit-exact across the process boundary */
  MPROC_ARG_STR = 3,    /**< NUL-terminated string (may contain any bytes but NUL) */
  MPROC_ARG_BYTES = 4,  /**< byte blob, may be empty */
  MPROC_ARG_HANDLE = 5, /**< an OS handle passed to the child (see mproc_args_add_handle()) */
  MPROC_ARG_OBJECT = 6  /**< an IPC object (mproc/ipc.h) */
} mproc_arg_kind;

/** @typedef mproc_handle_t
 * An OS handle: a file descriptor (int) on POSIX, a HANDLE (void *) on
 * Windows.
 * @def MPROC_INVALID_HANDLE
 * The invalid #mproc_handle_t: -1 on POSIX, INVALID_HANDLE_VALUE on Windows. */
#ifdef _WIN32
typedef void *mproc_handle_t;
#define MPROC_INVALID_HANDLE ((mproc_handle_t)(intptr_t)-1)
#else
typedef int mproc_handle_t;
#define MPROC_INVALID_HANDLE (-1)
#endif

/** Largest encoded argument list (all values and keys), 64 MiB. */
#define MPROC_ARGS_MAX ((size_t)64 << 20)

/** @name Building an argument list
 * An mproc_args is copied (encoded) by mproc_process_create(), so it may be
 * freed or reused right after.  Not thread-safe: one thread builds a given
 * list.  `key` NULL adds a positional argument; a non-NULL key adds a
 * keyword argument (adding the same key twice is #MPROC_EINVAL).
 * The adders return 0, #MPROC_EINVAL, #MPROC_ENOMEM, or #MPROC_E2BIG past
 * #MPROC_ARGS_MAX.
 * @{ */

/** Create an empty argument list.
 * @param[out] out  the new list; free it with mproc_args_free()
 * @return 0, #MPROC_EINVAL (NULL out) or #MPROC_ENOMEM. */
MPROC_API int mproc_args_create(mproc_args **out);
/** Free an argument list (NULL is allowed).
 * @param args  the list
 * @return NULL. */
MPROC_API mproc_args *mproc_args_free(mproc_args *args); /* returns NULL */
/** Add an integer.
 * @param args  the list
 * @param key   NULL for a positional argument, else the keyword
 * @param v     the value
 * @return 0 or a negative code. */
MPROC_API int mproc_args_add_int(mproc_args *args, const char *key, int64_t v);
/** Add a double (bit-exact across the process boundary).
 * @param args  the list
 * @param key   NULL for a positional argument, else the keyword
 * @param v     the value
 * @return 0 or a negative code. */
MPROC_API int mproc_args_add_double(mproc_args *args, const char *key, double v);
/** Add a NUL-terminated string (copied).
 * @param args  the list
 * @param key   NULL for a positional argument, else the keyword
 * @param s     the string
 * @return 0 or a negative code. */
MPROC_API int mproc_args_add_str(mproc_args *args, const char *key, const char *s);
/** Add a byte blob (copied; may be empty).
 * @param args  the list
 * @param key   NULL for a positional argument, else the keyword
 * @param data  the bytes (may be NULL when len is 0)
 * @param len   their number
 * @return 0 or a negative code. */
MPROC_API int mproc_args_add_bytes(mproc_args *args, const char *key,
                                   const void *data, size_t len);
/** Pass an OS handle to the child.
 *
 * The child reads its own value for it with
 * mproc_arg_handle()/mproc_kwarg_handle().  The parent keeps ownership of
 * `h`: it must stay open until mproc_process_start() returns.  Under fork the
 * child sees the same descriptor; under POSIX spawn it is duplicated to a new
 * number (every other descriptor except stdin/stdout/stderr is closed in a
 * spawned child); on Windows it is duplicated straight into the child
 * (DuplicateHandle into the suspended child, never made inheritable in the
 * parent) and, with the standard handles, is all the child gets: the
 * bootstrap pipe and std handles go through an explicit
 * PROC_THREAD_ATTRIBUTE_HANDLE_LIST, so no other inheritable handle leaks.
 * In the child a passed handle is not inheritable again (close-on-exec),
 * whatever the start method: a fork child sets FD_CLOEXEC on its copy (the
 * parent's descriptor keeps its own flag).
 * @param args  the list
 * @param key   NULL for a positional argument, else the keyword
 * @param h     the handle (stays the caller's)
 * @return 0 or a negative code. */
MPROC_API int mproc_args_add_handle(mproc_args *args, const char *key,
                                    mproc_handle_t h);
/** @} */

/** @name Reading arguments
 * Readers, used in the entry.  Positional by index (0-based), keyword by key.
 * Return #MPROC_ENOTFOUND if absent, #MPROC_ETYPE on a type mismatch.  Strings
 * and bytes point into `args` and live as long as it does (for an entry: until
 * it returns).  Thread-safe (read-only).
 * @{ */

/** Number of positional arguments.
 * @param args  the list
 * @return the count (0 for NULL). */
MPROC_API size_t mproc_args_count(const mproc_args *args);   /* positional */
/** Number of keyword arguments.
 * @param args  the list
 * @return the count (0 for NULL). */
MPROC_API size_t mproc_kwargs_count(const mproc_args *args); /* keyword */
/** Type of a positional argument.
 * @param args   the list
 * @param index  0-based position
 * @return an #mproc_arg_kind, or #MPROC_ENOTFOUND / #MPROC_EINVAL. */
MPROC_API int mproc_arg_type(const mproc_args *args, size_t index);
/** Read a positional integer.
 * @param args   the list
 * @param index  0-based position
 * @param[out] out  the value
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_arg_int(const mproc_args *args, size_t index, int64_t *out);
/** Read a positional double.
 * @param args   the list
 * @param index  0-based position
 * @param[out] out  the value
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_arg_double(const mproc_args *args, size_t index, double *out);
/** Read a positional string.
 * @param args   the list
 * @param index  0-based position
 * @param[out] out  the string, pointing into `args`
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_arg_str(const mproc_args *args, size_t index, const char **out);
/** Read a positional byte blob.
 * @param args   the list
 * @param index  0-based position
 * @param[out] data  the bytes, pointing into `args`
 * @param[out] len   their number
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_arg_bytes(const mproc_args *args, size_t index,
                              const void **data, size_t *len);
/** Read a positional OS handle: this process's own value for it (see
 * mproc_args_add_handle()).
 * @param args   the list
 * @param index  0-based position
 * @param[out] out  the handle
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_arg_handle(const mproc_args *args, size_t index,
                               mproc_handle_t *out);
/** Keyword by position in the keyword list (0..mproc_kwargs_count()-1).
 * @param args   the list
 * @param index  0-based position among the keyword arguments
 * @param[out] key  the keyword, pointing into `args`
 * @return 0, #MPROC_ENOTFOUND or #MPROC_EINVAL. */
MPROC_API int mproc_kwarg_key(const mproc_args *args, size_t index,
                              const char **key);
/** Type of a keyword argument.
 * @param args  the list
 * @param key   the keyword
 * @return an #mproc_arg_kind, or #MPROC_ENOTFOUND / #MPROC_EINVAL. */
MPROC_API int mproc_kwarg_type(const mproc_args *args, const char *key);
/** Read a keyword integer.
 * @param args  the list
 * @param key   the keyword
 * @param[out] out  the value
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_kwarg_int(const mproc_args *args, const char *key, int64_t *out);
/** Read a keyword double.
 * @param args  the list
 * @param key   the keyword
 * @param[out] out  the value
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_kwarg_double(const mproc_args *args, const char *key, double *out);
/** Read a keyword string.
 * @param args  the list
 * @param key   the keyword
 * @param[out] out  the string, pointing into `args`
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_kwarg_str(const mproc_args *args, const char *key,
                              const char **out);
/** Read a keyword byte blob.
 * @param args  the list
 * @param key   the keyword
 * @param[out] data  the bytes, pointing into `args`
 * @param[out] len   their number
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_kwarg_bytes(const mproc_args *args, const char *key,
                                const void **data, size_t *len);
/** Read a keyword OS handle: this process's own value for it.
 * @param args  the list
 * @param key   the keyword
 * @param[out] out  the handle
 * @return 0, #MPROC_ENOTFOUND, #MPROC_ETYPE or #MPROC_EINVAL. */
MPROC_API int mproc_kwarg_handle(const mproc_args *args, const char *key,
                                 mproc_handle_t *out);
/** @} */

/* ------------------------------------------------------------------------ */
/* The dispatch table and the init hook                                      */
/* ------------------------------------------------------------------------ */

/** An entry runs in the child.  Its return value is the child's exit code
 * (POSIX keeps the low 8 bits: return 0..125 for portable codes).
 * @param args  the arguments the parent gave (valid until the entry returns)
 * @return the child's exit code. */
typedef int (*mproc_entry_fn)(const mproc_args *args);

/** One row of the dispatch table given to mproc_main(). */
typedef struct mproc_entry {
  const char *name;  /**< the entry's name, unique in the table */
  mproc_entry_fn fn; /**< the function run in the child */
} mproc_entry;

/** Table row: MPROC_ENTRY(my_function) names the entry after the function;
 * the table ends with #MPROC_ENTRY_END. */
#define MPROC_ENTRY(fn) {#fn, fn}
/** The row that ends a dispatch table. */
#define MPROC_ENTRY_END {NULL, NULL}

/** Exit code of a spawned child whose bootstrap could not be read, understood
 * or trusted (the child flag typed by hand, a damaged, forged or replayed
 * bootstrap, an entry name the table does not have).  The child also prints
 * a one-line reason to stderr.
 *
 * Who can make a spawned child run an entry: only the process that created
 * it.  Before reading a byte of the bootstrap the child asks the kernel who
 * made the channel it arrives on, and the parent pid written in the
 * bootstrap must be that process:
 *   - POSIX: descriptor 3 must be one end of a socket pair (a peer with no
 *     address) whose creator, as SO_PEERCRED reports it (macOS:
 *     LOCAL_PEERPID; FreeBSD: LOCAL_PEERCRED), is getppid() and runs as the
 *     child's effective user.  A system where the port knows no such query
 *     refuses every bootstrap.
 *   - Windows: both ends of the bootstrap pipe must have been made by the
 *     process that created the child (GetNamedPipeServerProcessId and
 *     GetNamedPipeClientProcessId against the creator's pid, which the
 *     system records at CreateProcess).
 * So another user, or an unrelated process of the same user, that starts
 * the program with the child flag and a hand-made bootstrap, or replays one
 * captured from a real parent over a channel of its own, gets exit 120 and
 * no entry runs; a set-user-ID program refuses a bootstrap from a user
 * other than its effective one.  Not covered: a process that can already
 * act as the parent (debug or ptrace it, read its memory, take its
 * descriptors or duplicate its handles: root, an administrator, or the same
 * user where the system allows that) can do whatever the parent can; and
 * whoever starts the program is its parent, so it can have it run an entry
 * with that process's own rights, no more.  A POSIX child whose parent
 * exited before the child started (it was reparented) also exits with 120. */
#define MPROC_EXIT_BOOTSTRAP 120

/** The init hook.
 *
 * Call it first in main() with the program's entry table
 * (which must stay valid for the life of the process; names must be unique).
 *   - In the parent (no child flag on the command line) it records the table,
 *     reads MPROC_START_METHOD, and returns 0.
 *   - In a child started with the spawn method it reads the bootstrap from the
 *     parent, runs the entry and exits with its return value: it does not
 *     return.  A damaged, forged or replayed bootstrap exits with
 *     #MPROC_EXIT_BOOTSTRAP (see there for who may send one).
 *
 * After a failed first call, the calls that need it
 * (mproc_process_create(), mproc_pool_create(), ...) return the code it
 * failed with (and its mproc_os_error()), not #MPROC_ENOINIT, so a program
 * that ignored the failure still learns its cause.
 *
 * Call it from the main thread before starting other threads.
 * @param argc   main()'s argc
 * @param argv   main()'s argv
 * @param table  the entries, ended by #MPROC_ENTRY_END
 * @return 0 in the parent; #MPROC_EINVAL for a NULL/invalid table, a
 *         duplicate name or the reserved name #MPROC_POOL_WORKER_ENTRY, or
 *         an MPROC_START_METHOD that is not a start method here, and
 *         #MPROC_ESTATE if called twice. */
MPROC_API int mproc_main(int argc, char **argv, const mproc_entry *table);

/* ------------------------------------------------------------------------ */
/* Start methods                                                             */
/* ------------------------------------------------------------------------ */

/** How a child is started (see below for which file spawn starts). */
typedef enum mproc_start_method {
  MPROC_START_DEFAULT = 0, /**< the global default */
  MPROC_START_FORK = 1,    /**< POSIX only: fork(), the child runs the entry */
  MPROC_START_SPAWN = 2,   /**< start the program again (Windows: the only one) */
  MPROC_START_FORKSERVER = 3 /**< POSIX only: a server forks each child */
} mproc_start_method;

/** @enum mproc_start_method
 * The forkserver method (Python's "forkserver").  On first use in a process
 * mproc starts a small server: this executable started again (as spawn
 * does, so code before mproc_main() runs in it too), which forks every
 * child of that process on request.  A child so started runs its entry as
 * a spawned child would (fresh image: globals at their initial values,
 * objects and handles as arguments), but costs a fork of a small process,
 * not an exec, and never inherits a lock another thread of the program
 * held: safe in a program with threads, where fork is not.
 *   - Arguments, IPC objects (their descriptors travel to the server with
 *     SCM_RIGHTS), names, daemon, parent_process() (the real parent, not
 *     the server), exit codes (-N for signal N), terminate/kill/interrupt,
 *     sentinels and pools behave as under spawn.
 *   - The server is private to the process that started it: reached only
 *     through a socket pair it inherited (no file name), it exits when that
 *     process exits or dies, first killing the daemonic children it forked,
 *     and it is never listed by mproc_active_children().  It is not a child
 *     of the program: it detaches (its first process forks it and exits at
 *     once, reaped at start), so a program that waits for all its children
 *     (waitpid(-1) until ECHILD) never waits for it, and forkserver
 *     children are children of the server, not of the program (they too
 *     are invisible to waitpid(-1) there).  An orphaned server is adopted
 *     by init, or by the nearest PR_SET_CHILD_SUBREAPER ancestor (the
 *     program itself if it set that flag).
 *   - A fork child of the program does not use its parent's server; its
 *     first forkserver start starts its own.
 *   - If the server was killed, later forkserver starts fail with
 *     #MPROC_ESPAWN and mproc_os_error() EPIPE; children it had started run
 *     on (daemonic ones die with it on Linux), and their exit code reads 255
 *     because nobody is left to report it.
 *   - A child may be passed at most 4096 handles, as under spawn.
 *
 * Which file spawn starts: on Linux the running image (/proc/self/exe), so a
 * renamed or replaced program still starts its own copy.  When the program
 * was started through its loader (`ld.so ./prog`) or under valgrind,
 * /proc/self/exe is the loader or valgrind: spawn then runs the program's
 * own file if it is executable (so under valgrind children run natively,
 * as with --trace-children=no), else the same loader with the same loader
 * options and the program's path.  If the program's file is gone as well,
 * start() fails with MPROC_ESPAWN and mproc_os_error() ENOENT rather than
 * start the wrong program.  Elsewhere: argv[0], resolved at start-up. */

/** Set the global default start method.
 *
 * The global default: fork on POSIX, spawn on Windows, unless the environment
 * variable MPROC_START_METHOD=fork|spawn|forkserver (read by mproc_main) says
 * otherwise.  Setting FORK or FORKSERVER on Windows is #MPROC_ENOTSUP.
 * Thread-safe.
 * @param method  #MPROC_START_FORK, #MPROC_START_SPAWN or
 *                #MPROC_START_FORKSERVER
 * @return 0, #MPROC_EINVAL (another value) or #MPROC_ENOTSUP. */
MPROC_API int mproc_set_start_method(mproc_start_method method);
/** The global default start method (see mproc_set_start_method()).
 * Thread-safe.
 * @return #MPROC_START_FORK, #MPROC_START_SPAWN or #MPROC_START_FORKSERVER. */
MPROC_API mproc_start_method mproc_get_start_method(void);

/**
 * @brief Name an entry the forkserver runs once before it forks any child
 * (Python's set_forkserver_preload).
 *
 * The entry runs in the server with no arguments, so state it builds in
 * globals (tables, parsed configuration, loaded libraries) is already there
 * in every child the server forks.  Its return value is ignored.  It must
 * not start threads or children: the server forks right after.  Call it
 * before the first forkserver start of this process.
 *
 * @param entry a name from the dispatch table, or NULL for none.
 * @return 0; MPROC_ENOINIT before mproc_main(), MPROC_ENOENTRY for a name
 *         the table does not have, MPROC_ESTATE once this process's server
 *         runs, MPROC_ENOTSUP on Windows.  Thread-safe.
 */
MPROC_API int mproc_set_forkserver_preload(const char *entry);

/* ------------------------------------------------------------------------ */
/* Processes                                                                 */
/* ------------------------------------------------------------------------ */

/** A child process (Python's Process). */
typedef struct mproc_process mproc_process;

/** Seconds: pass to any timeout to wait without limit. */
#define MPROC_FOREVER (-1.0)

/** Values of mproc_process_options::daemon. */
enum {
  MPROC_DAEMON_INHERIT = 0, /**< default: the creating process's daemon flag */
  MPROC_DAEMON_YES = 1,     /**< daemonic */
  MPROC_DAEMON_NO = 2       /**< not daemonic */
};

/** Values of mproc_stdio::mode: where one of a child's standard streams goes. */
typedef enum mproc_stdio_mode {
  MPROC_STDIO_INHERIT = 0, /**< default: this process's stream, as it is at start */
  MPROC_STDIO_DISCARD = 1, /**< /dev/null (Windows: NUL) */
  MPROC_STDIO_FILE = 2,    /**< `path`: created or truncated (stdin: read) */
  MPROC_STDIO_APPEND = 3,  /**< `path`: created or appended to (stdin: read) */
  MPROC_STDIO_HANDLE = 4,  /**< `handle`, an open file, pipe or socket of this
                                process (the caller keeps and closes it) */
  MPROC_STDIO_CAPTURE = 5  /**< stdout/stderr only: a pipe this process reads
                                (mproc_process_output(), mproc/output.h),
                                kept whole unless
                                mproc_process_set_capture_limit() says
                                otherwise; stdin: #MPROC_EINVAL */
} mproc_stdio_mode;

/** One standard stream of a child (mproc_process_options::stdio). */
typedef struct mproc_stdio {
  int mode;           /**< an #mproc_stdio_mode */
  const char *path;   /**< for FILE and APPEND; copied at create */
  mproc_handle_t handle; /**< for HANDLE */
} mproc_stdio;

/** Options of mproc_process_create() (Python's Process keyword arguments). */
typedef struct mproc_process_options {
  const char *name;    /**< NULL: "Process-N" (in a child: "Process-P:N") */
  int daemon;          /**< MPROC_DAEMON_INHERIT / _YES / _NO */
  mproc_start_method start_method; /**< DEFAULT: the global default */
  /** 1: start the child in a process tree of its own, which
   *  mproc_process_kill_tree() and mproc_process_terminate_tree() end as a
   *  whole; 0 (default): the child shares this process's.  POSIX: a new
   *  process group led by the child (setpgid), so the child and what it
   *  starts no longer get the terminal's Ctrl+C or Ctrl+Z: the program
   *  forwards them if it wants (e.g. with mproc_process_interrupt()).
   *  Windows: a new job object holding the child from its first
   *  instruction.  A descendant that leaves the tree on purpose (setsid(),
   *  setpgid(), a child it starts with this option itself, or
   *  CREATE_BREAKAWAY_FROM_JOB where the job allows it) is not reached. */
  int new_group;
  /** 0 (default): the child starts with this process's environment as it
   *  is at start; 1: with an empty one plus `env` (Windows keeps SystemRoot,
   *  without which system DLLs such as Winsock fail to load).  fork: the
   *  environment is replaced in the child before the entry runs. */
  int env_clear;
  /** NULL, or a NULL-terminated list of "NAME=VALUE" entries that add to or
   *  override the environment; an entry "NAME" without '=' removes NAME.
   *  Copied at create.  Names compare case-insensitively on Windows. */
  const char *const *env;
  /** NULL: the child starts in this process's working directory; else in
   *  this directory (fork: the child changes to it before the entry runs).
   *  A path that is not a directory fails mproc_process_start() with
   *  #MPROC_ESPAWN (mproc_os_error(): ENOENT, ENOTDIR...; Windows:
   *  ERROR_PATH_NOT_FOUND, ERROR_DIRECTORY) and the child never runs. */
  const char *cwd;
  /** stdin, stdout and stderr of the child (zeroed: inherit all three).
   *  Files are opened by mproc_process_start() in this process, so a path
   *  that cannot be opened fails the start with #MPROC_ESPAWN
   *  (mproc_os_error() says why) and the child never runs.  fork: the
   *  streams are replaced in the child before the entry runs (C stdio
   *  buffers were flushed at start). */
  mproc_stdio stdio[3];
  /** Windows: 1 starts the child with CREATE_NO_WINDOW, so a console child
   *  of a GUI program (which has no console to share) does not open a
   *  console window of its own; the child then has no console at all.
   *  0 (default): Windows' rules.  POSIX: accepted and ignored. */
  int no_window;
} mproc_process_options;

/** Create (not start) a process that will run entry `entry` with `args`.
 *
 * Thread-safe.
 * @param[out] out  the new process; free it with mproc_process_free()
 * @param entry  the name of an entry of the dispatch table
 * @param args   NULL: no arguments; the list is copied
 * @param opts   may be NULL
 * @return 0 or an error: #MPROC_EINVAL (NULL out/entry), #MPROC_ENOINIT
 *   (mproc_main not called; if it failed, the code it failed with),
 *   #MPROC_ENOENTRY (no such entry in the table;
 *   also for #MPROC_POOL_WORKER_ENTRY, which only a pool starts),
 *   #MPROC_ENOTSUP (fork on Windows), #MPROC_E2BIG (arguments over
 *   #MPROC_ARGS_MAX). */
MPROC_API int mproc_process_create(mproc_process **out, const char *entry,
                                   const mproc_args *args,
                                   const mproc_process_options *opts);

/** Start the child.
 *
 * Once per process object, and only in the process that
 * created it.  Flushes stdio first so buffered output is not written twice.
 * Like Python's start(), it first reaps every child of this process that
 * has ended (see mproc_process_free()).
 * Thread-safe.
 * @param p  the process
 * @return 0 or an error: #MPROC_ESTATE (already started), #MPROC_EPERM (not
 *   the creator), #MPROC_EDAEMON (the calling process is daemonic),
 *   #MPROC_ESPAWN (the OS refused, or exec failed: mproc_os_error() has the
 *   reason), #MPROC_ECLOSED. */
MPROC_API int mproc_process_start(mproc_process *p);

/** Wait up to `timeout` seconds for the child to end, and reap it.
 *
 * May be called any number of times.
 * A join waits for its own child only: without pidfds (Linux before 5.3,
 * seccomp sandboxes) the child's end is seen through a pipe whose write end
 * no other child started by mproc ever holds, even one forked by another
 * thread while this child was being started.
 * Thread-safe: several threads may join the same process.
 * @param p        the process
 * @param timeout  seconds; negative (#MPROC_FOREVER) waits without limit
 * @return 0 once the child has ended (then mproc_process_exitcode() has its
 *   code), #MPROC_ETIMEDOUT if it is still running, #MPROC_ESTATE before
 *   start, #MPROC_EPERM if not the creator. */
MPROC_API int mproc_process_join(mproc_process *p, double timeout);

/** Whether the child runs (reaps a child that ended).  Thread-safe.
 * @param p  the process
 * @return 1 while started and not ended, else 0. */
MPROC_API int mproc_process_is_alive(mproc_process *p);

/** The child's exit code.
 *
 * *code is the
 * entry's return value, -N when killed by signal N, #MPROC_EXIT_BOOTSTRAP for a
 * failed bootstrap; on Windows terminate() reports -15, kill() -9 and
 * interrupt() -2, and a crash reports its NTSTATUS (e.g. 0xC0000005) cast to
 * int (a value below -255).  Thread-safe.
 * @param p  the process
 * @param[out] code  the exit code, set when the child has ended
 * @return 1 and sets *code when the child has ended, 0 when there is none
 *   yet (not started, or running), negative on error. */
MPROC_API int mproc_process_exitcode(mproc_process *p, int *code);

/** @name Signals
 * POSIX: SIGTERM, SIGKILL, SIGINT.  Windows: terminate and kill call
 * TerminateProcess; interrupt asks the child's mproc runtime to raise SIGINT in
 * the child (a handler installed with signal() runs, on a separate thread as
 * Windows does for Ctrl+C; without one the child ends with exit code -2).
 * A child that has already ended is left alone (returns 0): after it is reaped
 * its pid is never signalled, so a recycled pid is never hit.  #MPROC_ESTATE
 * before start.  Thread-safe.
 * @{ */
/** Python's terminate(): SIGTERM (Windows: TerminateProcess, exit code -15).
 * @param p  the process
 * @return 0 (also for a child that has ended), #MPROC_ESTATE before start, or
 *   another negative code. */
MPROC_API int mproc_process_terminate(mproc_process *p);
/** Python's kill(): SIGKILL (Windows: TerminateProcess, exit code -9).
 * @param p  the process
 * @return 0 (also for a child that has ended), #MPROC_ESTATE before start, or
 *   another negative code. */
MPROC_API int mproc_process_kill(mproc_process *p);
/** Python's interrupt(): SIGINT (Windows: raised by the child's mproc
 * runtime; exit code -2 without a handler).
 * @param p  the process
 * @return 0 (also for a child that has ended), #MPROC_ESTATE before start, or
 *   another negative code. */
MPROC_API int mproc_process_interrupt(mproc_process *p);
/** @} */

/** @name Process trees
 * For a child created with mproc_process_options::new_group: act on the
 * child and every process it started, directly or not, that is still in
 * its tree.  POSIX: killpg() on the child's process group, which reaches
 * the members also after the child itself ended (while it is not yet
 * joined).  The group is only named through the child's pid, and once the
 * child has been reaped that number may be reused (POSIX keeps a group's id
 * from a new process only while the group has members, and nothing tells
 * the parent when it is empty): after the child was joined the call sends
 * nothing and returns 0, so end a tree before joining it.  Windows:
 * TerminateJobObject on the child's job, which stays reachable until
 * mproc_process_close(), also after a join.  Thread-safe.
 * @{ */
/** SIGKILL to the child's process tree (Windows: TerminateJobObject, every
 * member's exit code -9).
 * @param p  a child started with mproc_process_options::new_group
 * @return 0 (also when the child has ended), #MPROC_ESTATE before start or
 *   for a child started without new_group (nothing is sent then),
 *   #MPROC_EPERM outside the creator, #MPROC_ECLOSED, or another negative
 *   code. */
MPROC_API int mproc_process_kill_tree(mproc_process *p);
/** SIGTERM to the child's process tree, which each member may handle or
 * ignore (Windows: TerminateJobObject, every member's exit code -15).
 * @param p  a child started with mproc_process_options::new_group
 * @return as mproc_process_kill_tree(). */
MPROC_API int mproc_process_terminate_tree(mproc_process *p);
/** @} */

/** What one step of a stop chain (mproc_process_stop()) does before it
 *  waits.  Zero is no action, so a step left zeroed is refused. */
typedef enum mproc_stop_action {
  /** Send nothing: give the child the step's time to end on its own. */
  MPROC_STOP_WAIT = 1,
  /** mproc_process_interrupt(): SIGINT, the Ctrl+C a program may handle
   *  to finish cleanly; on Windows too (the child's mproc runtime raises
   *  SIGINT in it). */
  MPROC_STOP_INTERRUPT = 2,
  /** mproc_process_terminate(): SIGTERM; Windows: TerminateProcess, which
   *  a child cannot ignore (exit code -15). */
  MPROC_STOP_TERMINATE = 3,
  /** mproc_process_kill(): SIGKILL, which also ends a stopped (SIGSTOP)
   *  child; Windows: TerminateProcess (exit code -9). */
  MPROC_STOP_KILL = 4,
  /** mproc_process_terminate_tree(): SIGTERM to the child's whole process
   *  tree (mproc_process_options::new_group).  The chain still ends when
   *  the child itself is seen ended: members that ignore SIGTERM live on,
   *  so end a tree with a step of #MPROC_STOP_KILL_TREE. */
  MPROC_STOP_TERMINATE_TREE = 5,
  /** mproc_process_kill_tree(): SIGKILL to the child's whole process tree
   *  (Windows: TerminateJobObject, exit code -9). */
  MPROC_STOP_KILL_TREE = 6
} mproc_stop_action;

/** One step of a stop chain: do `action`, then wait up to `timeout`
 *  seconds for the child to end. */
typedef struct mproc_stop_step {
  mproc_stop_action action; /**< what to send first */
  double timeout; /**< seconds to wait after it; negative (MPROC_FOREVER):
                       without limit; 0: only look */
} mproc_stop_step;

/** How a stop chain ended (filled by mproc_process_stop() when it returns
 *  0). */
typedef struct mproc_stop_result {
  /** Index of the step during whose wait the child was seen ended, or -1
   *  if it had already ended before the first step (nothing was sent). */
  int step;
  /** Its exit code, as mproc_process_exitcode() reports it. */
  int exitcode;
} mproc_stop_result;

/**
 * @brief Stop a child by an escalation chain, as reproc's stop actions do.
 *
 * Runs the steps in order: each sends its action, then waits up to its
 * timeout for the child to end; the first wait that sees it end stops the
 * chain, and the child is reaped.  A chain such as interrupt, wait 2 s,
 * terminate, wait 1 s, kill, wait 5 s reads:
 * @code
 * mproc_stop_step chain[] = {{MPROC_STOP_INTERRUPT, 2.0},
 *                            {MPROC_STOP_TERMINATE, 1.0},
 *                            {MPROC_STOP_KILL, 5.0}};
 * mproc_stop_result how;
 * int rc = mproc_process_stop(p, chain, 3, &how);
 * @endcode
 * Each step's time starts when its action was sent; the call returns by
 * the sum of the timeouts (plus the few milliseconds the OS takes to
 * deliver each action), whatever the child does.  A child that has already
 * ended returns 0 at once with how->step -1.  Give the kill step a timeout
 * too: a killed child takes a moment to be gone, and a 0 wait may not see
 * it yet.  On POSIX a stopped (SIGSTOP) child is not continued: an
 * interrupt or terminate it handles or ignores waits until the kill step
 * (a stopped child whose SIGTERM action is the default ends at once on
 * Linux).
 *
 * Thread-safe, in the way mproc_process_join() and the signal calls it is
 * made of are: other threads may join, signal or stop the same process
 * meanwhile, and the result names the step during whose wait the child
 * was seen ended, whoever ended it.  Only the creating process may stop a
 * child.
 *
 * @param p       a started child
 * @param steps   the chain, run in order
 * @param nsteps  the number of steps, at least 1
 * @param how     where to say which step ended it and the exit code; may
 *                be NULL; after any return but 0 it holds step -1 and
 *                exit code 0
 * @return 0 when the child has ended (and is reaped); MPROC_ETIMEDOUT if it
 * still runs after the last step's wait; MPROC_EINVAL for a NULL `p` or
 * `steps`, no steps, an unknown action or a NaN timeout (checked before
 * anything is sent); MPROC_ESTATE before start, or for a tree step on a
 * child started without mproc_process_options::new_group (also checked
 * first); MPROC_EPERM for the
 * current or parent process object or outside the creating process;
 * MPROC_ECLOSED after close; an error of a step's action (the chain stops
 * there).
 */
MPROC_API int mproc_process_stop(mproc_process *p,
                                 const mproc_stop_step *steps, size_t nsteps,
                                 mproc_stop_result *how);

/** Release the OS resources of a process that has ended (or never started).
 *
 * After close, every call on it except
 * mproc_process_free() returns #MPROC_ECLOSED (or NULL).  Thread-safe.
 * @param p  the process
 * @return 0, or #MPROC_EBUSY while it runs. */
MPROC_API int mproc_process_close(mproc_process *p);

/** Drop the caller's reference.
 *
 * Freeing a process that still
 * runs does not stop it: mproc keeps tracking it, mproc_active_children()
 * lists it, and the exit-time cleanup joins (or, if daemonic, terminates) it.
 * Once it has ended, mproc_active_children() reaps it and releases its
 * descriptor or handles, and so does a later mproc_process_start(): with k
 * freed children still tracked, every k-th start looks at them (so a start
 * costs the same however many children are alive).  A program that starts
 * children and frees them without joining therefore holds zombies and
 * descriptors (Windows: handles) only for about as many ended children as
 * it has freed ones running, however long it runs.
 * NULL is allowed.  Not thread-safe with other calls on the same object.
 * @param p  the process, or NULL
 * @return NULL. */
MPROC_API mproc_process *mproc_process_free(mproc_process *p);

/** Process id.  Thread-safe.
 * @param p  the process
 * @param[out] pid  the child's pid
 * @return 0, or #MPROC_ESTATE before start. */
MPROC_API int mproc_process_pid(const mproc_process *p, int64_t *pid);
/** The name.  Valid until set_name/free.
 * @param p  the process
 * @return the name; NULL if p is NULL or closed. */
MPROC_API const char *mproc_process_name(const mproc_process *p);
/** Rename (allowed at any time, as in Python; copies the string).  Not
 * thread-safe with mproc_process_name() on the same object.
 * @param p     the process
 * @param name  the new name
 * @return 0 or a negative code. */
MPROC_API int mproc_process_set_name(mproc_process *p, const char *name);
/** The daemon flag.
 * @param p  the process
 * @return 1 if daemonic, 0 if not, negative on error. */
MPROC_API int mproc_process_daemon(const mproc_process *p);
/** Set the daemon flag.  Only before start.
 * @param p         the process
 * @param daemonic  1 for daemonic, 0 for not
 * @return 0, or #MPROC_ESTATE after start. */
MPROC_API int mproc_process_set_daemon(mproc_process *p, int daemonic);
/** A handle that becomes ready when the child ends: on POSIX a descriptor that
 * polls readable (a pidfd on Linux; for a forkserver child, the socket its
 * server sends the exit code on), on Windows the process HANDLE.  Owned by
 * the process object, valid until close/free.  Ready means "look now", as
 * with Python's sentinel: confirm with mproc_process_join() with timeout 0.
 * A forkserver child's socket also becomes ready (for good) if its server
 * dies first; then call this again to get the descriptor that tracks the
 * child itself.  The first call may open that descriptor (pidfds are opened
 * lazily); the object's observable state does not change.  Thread-safe.
 * @param p  the process
 * @param[out] out  the sentinel
 * @return 0; #MPROC_ESTATE before start; #MPROC_EINVAL for NULL arguments;
 *         #MPROC_ECLOSED after close; #MPROC_EPERM for the current
 *         process; #MPROC_ENOTSUP for a parent that has no exit watch;
 *         #MPROC_ESYS if the descriptor cannot be opened. */
MPROC_API int mproc_process_sentinel(const mproc_process *p, mproc_handle_t *out);

/** The calling process as a process object ("MainProcess" in the main program;
 * in a child, the name its parent gave it).  Borrowed: do not free.  Its name,
 * pid and daemon accessors work; start/join/signals return #MPROC_EPERM.
 * Thread-safe.
 * @return the process; NULL before mproc_main(). */
MPROC_API mproc_process *mproc_current_process(void);

/** The parent of a child started by mproc.  Its
 * is_alive and join(timeout) tell whether the parent still runs; its pid and
 * name are the parent's.  Borrowed: do not free.  Thread-safe.
 * @return the parent; NULL in the main program. */
MPROC_API mproc_process *mproc_parent_process(void);

/** Reap children that have ended, then return the live ones started by this
 * process.  Writes up to `cap` new references into `out` (free each with
 * mproc_process_free) and the number of live children into *count (which may
 * exceed cap: call again with a bigger array).  `out` may be NULL if cap is 0.
 * Thread-safe.
 * @param[out] out    room for `cap` references
 * @param cap         its size
 * @param[out] count  the number of live children
 * @return 0 or a negative code. */
MPROC_API int mproc_active_children(mproc_process **out, size_t cap,
                                    size_t *count);

/** Number of logical CPUs (all processor groups on Windows).
 * @return the count; at least 1. */
MPROC_API int mproc_cpu_count(void);

/* ------------------------------------------------------------------------ */
/* Waiting on many objects (multiprocessing.connection.wait)                 */
/* ------------------------------------------------------------------------ */

/** What an #mproc_waitable holds. */
typedef enum mproc_wait_kind {
  MPROC_WAIT_PROCESS = 1, /**< `object` is an mproc_process*: ready when it ended */
  MPROC_WAIT_HANDLE = 2,  /**< `handle` is a raw sentinel: ready when readable
                             (POSIX) or signaled (Windows) */
  MPROC_WAIT_CONN = 3     /**< `object` is an mproc_conn*: ready when a message
                             or end-of-file can be received */
} mproc_wait_kind;

/** One item of mproc_wait(). */
typedef struct mproc_waitable {
  int kind;              /**< mproc_wait_kind */
  void *object;          /**< for MPROC_WAIT_PROCESS */
  mproc_handle_t handle; /**< for MPROC_WAIT_HANDLE */
  int ready;             /**< out: 1 if ready */
} mproc_waitable;

/** Wait until at least one item is ready or `timeout` seconds pass
 * (multiprocessing.connection.wait).
 *
 * Sets every item's `ready`.  Any
 * number of items, also above Windows' 64-handle limit.  Processes that are
 * ready are not reaped: join them.  Thread-safe.
 * @param items    the items
 * @param n        their number
 * @param timeout  seconds; negative waits without limit
 * @return how many are ready (0 on timeout), or a negative code. */
MPROC_API int mproc_wait(mproc_waitable *items, size_t n, double timeout);

#ifdef __cplusplus
}
#endif

#include "mproc/ipc.h"
#include "mproc/pool.h"
#include "mproc/typed.h"
#include "mproc/result.h"
#include "mproc/output.h"
#include "mproc/connection.h"

#endif /* MPROC_H */
