/*
 * Internal declarations shared by the portable sources and the backends.
 * Names are mproc__*; nothing here is public API.
 */
#ifndef MPROC_INTERNAL_H
#define MPROC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mproc.h"
#include "platform.h"

#if defined(__GNUC__) || defined(__clang__)
#define MPROC__UNUSED __attribute__((unused))
#else
#define MPROC__UNUSED
#endif

/* ---- errors ------------------------------------------------------------ */

/* Record the calling thread's OS error for mproc_os_error() and return
 * `code` (MPROC_ESYS or MPROC_ESPAWN), so backends can write
 * `return mproc__os_fail(MPROC_ESYS, errno);`. */
int mproc__os_fail(int code, int os_error);

/* ---- argument lists ------------------------------------------------------ */

typedef struct mproc__arg {
  int type;  /* mproc_arg_kind */
  char *key; /* NULL for positional */
  union {
    int64_t i;
    double d;
    struct {
      unsigned char *data; /* malloc'ed; strings are NUL-terminated */
      size_t len;          /* bytes, without the NUL for strings */
    } b;
    struct {
      mproc_handle_t value; /* in the parent: the handle to pass; in the
                               child: the child's value for it */
      uint32_t slot;        /* index into the process's handle table */
    } h;
    struct {
      const void *vt;        /* const mproc__objtype * (src/ipc.h) */
      const void *orig;      /* in the parent: the object given */
      void *imported;        /* in the child: the object rebuilt, owned */
      uint32_t slot0, nh;    /* in the child: its handles' slots */
    } o;
  } v;
} mproc__arg;

struct mproc_args {
  mproc__arg *pos;
  size_t npos, pos_cap;
  mproc__arg *kw;
  size_t nkw, kw_cap;
  size_t nhandles; /* handle arguments, numbered 0..nhandles-1 */
};

/* Encoding shared by fork and spawn so an entry sees identical arguments
 * under both.  Handles are encoded as slots; `handles_out` (may be NULL)
 * receives the parent's handle for each slot (nhandles entries). */
int mproc__args_encode(const mproc_args *args, unsigned char **buf,
                       size_t *len, mproc_handle_t **handles_out,
                       size_t *nhandles_out);
int mproc__args_has_objects(const mproc_args *args);
int mproc__args_clone(const mproc_args *src, mproc_args **out);
int mproc__args_append(mproc_args *dst, const mproc_args *src);
/* Decode bytes from another process; any damage is MPROC_EINVAL, never an
 * out-of-bounds read.  `table` gives the child's value for each slot.  With
 * dup_object_handles (fork children, whose table is the parent's own
 * handles), each object gets duplicates it can own and close. */
int mproc__args_decode(const unsigned char *buf, size_t len,
                       const mproc_handle_t *table, size_t ntable,
                       int dup_object_handles, mproc_args **out);

/* ---- the spawn bootstrap ------------------------------------------------- */

#define MPROC__BS_MAGIC "MPROCBS1"
#define MPROC__BS_HEADER 16 /* magic[8], u32 version, u32 total length */
#define MPROC__BS_VERSION 1u
#define MPROC__BS_MAX (MPROC_ARGS_MAX + ((size_t)1 << 20))

/* MPROC__BS_RESULT: the last handle of the table is the child's result
 * block (src/process_result.c), not an argument's. */
enum { MPROC__BS_DAEMON = 1u, MPROC__BS_RESULT = 2u };

typedef struct mproc__bootstrap {
  uint32_t start_method;
  uint32_t flags;
  int64_t parent_pid;
  uint64_t parent_handle;    /* Windows: inherited handle of the parent */
  uint64_t interrupt_handle; /* Windows: event set by interrupt() */
  const char *entry;         /* all strings point into the decoded buffer */
  const char *name;
  const char *identity;      /* "1", "1:2": position in the process tree */
  const char *parent_name;
  uint32_t nhandles;
  uint64_t *handles; /* malloc'ed by decode: the child's value per slot */
  const unsigned char *args;
  size_t args_len;
} mproc__bootstrap;

int mproc__bootstrap_encode(const mproc__bootstrap *bs, unsigned char **buf,
                            size_t *len);
/* Checks the header, every length and every string; `bs` points into buf.
 * Free with mproc__bootstrap_release. */
int mproc__bootstrap_decode(const unsigned char *buf, size_t len,
                            mproc__bootstrap *bs);
void mproc__bootstrap_release(mproc__bootstrap *bs);
/* Total message length from the 16-byte header, or a negative code. */
int mproc__bootstrap_peek_len(const unsigned char *hdr, size_t *total);

/* argv[1] of a spawned child starts with this flag.  A Windows parent
 * appends "=" and the bootstrap pipe's handle value; a POSIX parent passes
 * the bare flag (the bootstrap socket is descriptor 3). */
#define MPROC__BS_FLAG "--mproc-spawn"
/* NULL when `arg` is not the child flag; else what follows the flag and its
 * '=' ("" for the bare flag or a bare '=').  Every form counts as the flag,
 * so a hand-typed variant is refused rather than running main(). */
const char *mproc__bootstrap_flag_value(const char *arg);

/* ---- processes ----------------------------------------------------------- */

enum {
  MPROC__P_CREATED = 0,
  MPROC__P_STARTED = 1,
  MPROC__P_ENDED = 2, /* reaped, exitcode valid */
  MPROC__P_CLOSED = 3
};

enum { MPROC__K_CHILD = 0, MPROC__K_CURRENT = 1, MPROC__K_PARENT = 2 };

struct mproc_process {
  int kind;
  int state;
  int refs;    /* the user's reference, plus one while tracked */
  int tracked; /* in the registry of started, not yet reaped children */
  int waiters; /* threads inside join/wait on this object */
  int daemon;
  int method; /* MPROC_START_FORK or MPROC_START_SPAWN */
  int new_group; /* mproc_process_options::new_group: a tree of its own */
  int exitcode;
  int64_t pid;
  int64_t creator_pid;
  char *name;
  char *identity;
  const mproc_entry *entry;
  unsigned char *args_blob;
  size_t args_len;
  mproc_handle_t *handles; /* parent's handle per slot (borrowed) */
  size_t nhandles;
  mproc_args *objects_src; /* args holding IPC objects: described again at
                              start, so the child gets their state then */
  struct mproc_process *next, *prev; /* registry links */
  mproc__plat_proc plat;
  /* The result block's handle (src/process_result.c) from start until
   * close; MPROC_INVALID_HANDLE before, after, and for pool workers. */
  mproc_handle_t result_h;
  /* A fork child's result block is instead a slot of an arena shared by
   * the fork children (result_arena, from result_off; NULL otherwise). */
  struct mproc__arena *result_arena;
  uint64_t result_off;
  /* mproc_process_options' env_clear, env (a malloc'ed NULL-terminated copy,
   * or NULL) and cwd (a copy, or NULL): src/process_env.c. */
  int env_clear;
  char **env;
  char *cwd;
  /* mproc_process_options::stdio, the paths copied (src/process_env.c);
   * stdio_h: the handle each stream gets in the child, MPROC_INVALID_HANDLE
   * to inherit, set by mproc__stdio_open during a start only. */
  int stdio_mode[3];
  char *stdio_path[3];
  mproc_handle_t stdio_user[3];
  mproc_handle_t stdio_h[3];
  int no_window; /* mproc_process_options::no_window (Windows) */
  /* MPROC_STDIO_CAPTURE (src/process_output.c): the capture of stdout
   * ([1]) and stderr ([2]) from start until close, NULL otherwise;
   * capture_limit: mproc_process_set_capture_limit(); readers: output calls under way
   * (close refuses meanwhile). */
  struct mproc__capture *capture[3];
  size_t capture_limit;
  int readers;
};

/* The one lock that guards process state and the registry. */
extern mproc__mutex_t mproc__lock;

/* In a fork child the application made itself (POSIX pthread_atfork
 * handler), with mproc__lock taken by the caller: drop our copies of the
 * children's descriptors (src/process.c). */
void mproc__children_forget_forked(void);

/* Windows command-line quoting (CommandLineToArgvW rules), on UTF-8 bytes:
 * appends the quoted form of `arg` to `out` (cap bytes, NUL-terminated).
 * Returns the length needed without the NUL; if >= cap the output is cut.
 * Portable so its tests run on every platform. */
size_t mproc__quote_arg(const char *arg, char *out, size_t cap);

/* Little-endian wire helpers for every decoder of bytes from another
 * process. */
typedef struct mproc__rd {
  const unsigned char *p;
  size_t left;
  int bad; /* set on the first overrun; later reads return zeros */
} mproc__rd;

/* Start reading the n bytes at p (NULL: none). */
void mproc__rd_init(mproc__rd *r, const void *p, size_t n);
uint32_t mproc__rd_u32(mproc__rd *r);
uint64_t mproc__rd_u64(mproc__rd *r);
uint8_t mproc__rd_u8(mproc__rd *r);
/* Returns a pointer to n bytes in place, or NULL (and sets bad). */
const unsigned char *mproc__rd_bytes(mproc__rd *r, size_t n);

typedef struct mproc__wr {
  unsigned char *buf;
  size_t len, cap;
  int oom;
} mproc__wr;

void mproc__wr_u8(mproc__wr *w, uint8_t v);
void mproc__wr_u32(mproc__wr *w, uint32_t v);
void mproc__wr_u64(mproc__wr *w, uint64_t v);
void mproc__wr_bytes(mproc__wr *w, const void *p, size_t n);
/* The same encoding stored in place, into room the caller has (for a
 * record whose header is filled in after its body). */
void mproc__wr_put32(unsigned char *p, uint32_t v);
void mproc__wr_put64(unsigned char *p, uint64_t v);

/* Deadlines (src/deadline.c).  The deadline (mproc__plat_now() seconds) of
 * a call given `timeout` seconds: -1 (none) for a negative timeout (Python's
 * None) or one past ~31 years, so the arithmetic never sees infinity. */
double mproc__deadline(double timeout);
/* Has `deadline` (-1: none) passed at `now`? */
int mproc__expired(double deadline, double now);
/* Seconds left until `deadline`: -1 for none, never below 0. */
double mproc__remaining(double deadline);
/* The end of the next sleep: the deadline, but at most `slice` from now. */
double mproc__sleep_until(double deadline, double now, double slice);

/* Run the child a decoded-to-be bootstrap describes and exit with its
 * entry's code (never returns).  `sender` is the process the bootstrap
 * must claim as parent.  `parent_fd` is MPROC_INVALID_HANDLE for a spawned
 * child; a forkserver child passes a descriptor that reads EOF once its
 * parent ended (its OS parent is the server) and has armed the daemon
 * flag itself. */
void mproc__run_child(unsigned char *buf, size_t len, int64_t sender,
                      mproc_handle_t parent_fd);
/* Spawn entry `e` as an untracked helper and wait for it to exit
 * (process.c); *exitcode is its code. */
int mproc__run_helper(const mproc_entry *e, const mproc_args *args,
                      int *exitcode);

/* 0 if `method` names a start method this platform has (not DEFAULT);
 * MPROC_EINVAL or MPROC_ENOTSUP (fork and forkserver on Windows). */
int mproc__check_method(mproc_start_method method);

/* ---- results (src/process_result.c) ---------------------------------------- */

/* Bootstrap failures a child records in its result block before it exits
 * with MPROC_EXIT_BOOTSTRAP, so mproc_process_end() can tell them from an
 * entry that returned 120. */
enum {
  MPROC__BOOT_NO_ENTRY = 1,
  MPROC__BOOT_BAD_ARGS = 2,
  MPROC__BOOT_SETUP = 3,
  MPROC__BOOT_NOMEM = 4
};
/* Parent, at start: a new result block for p (p->result_h). */
int mproc__result_create(mproc_process *p);
/* Parent: release p's block (close, free, a failed start). */
void mproc__result_drop(mproc_process *p);
/* Child: the block this process writes its result into (takes ownership;
 * closes the one it had, a fork parent's).  `forked`: called in a fork
 * child, where only this thread exists. */
void mproc__result_adopt(mproc_handle_t h, int forked);
/* Fork child (only this thread runs): the descriptor it keeps for its result
 * (its parent's arena or its block), and its adoption of that result. */
mproc_handle_t mproc__result_handle(const mproc_process *p);
void mproc__result_fork_child(const mproc_process *p);
/* Any fork child (mproc__lock held): its parent's arena, whose slots the
 * parent goes on giving out, is no source of slots here. */
void mproc__result_forget_forked(void);
/* Child: record a bootstrap failure (best effort, before exiting). */
void mproc__result_mark_boot(uint32_t reason);
/* Parent: the bootstrap failure p's child recorded (0: none). */
uint32_t mproc__result_boot_reason(mproc_process *p);

/* Process-wide facts the backends read. */
const char *mproc__argv0(void);
mproc_start_method mproc__default_method(void);
/* What a call that needs mproc_main() returns before it succeeded: the
 * code the first mproc_main() failed with (its OS error set again), or
 * MPROC_ENOINIT if it was never called. */
int mproc__not_inited(void);

/* A malloc'ed copy of s, or NULL (src/process.c). */
char *mproc__strdup(const char *s);

/* A child's environment and working directory (src/process_env.c).  Copy
 * the options into p at create (MPROC_EINVAL for a bad entry; on failure
 * the caller frees what was copied with mproc__env_free). */
int mproc__env_copy(mproc_process *p, const mproc_process_options *opts);
void mproc__env_free(mproc_process *p);
/* Whether p's environment differs from the parent's (env_clear or env). */
int mproc__env_changed(const mproc_process *p);
/* The handles a start gives the child's stdio (p->stdio_h): files opened
 * now; 0 or MPROC_ESPAWN with the OS error.  mproc__stdio_close releases
 * what was opened, once the child has its copies (or the start failed). */
int mproc__stdio_open(mproc_process *p);
void mproc__stdio_close(mproc_process *p);

/* Captured streams (src/process_output.c); all called with mproc__lock
 * held.  capture_open: a pipe and its reader thread for p's `stream`
 * (p->stdio_h[stream] becomes the write end, owned by the capture);
 * capture_passed: the start is over, close the write end; capture_drop:
 * stop the readers and free (close, free, a failed start);
 * capture_forget_forked: in a fork child, forget the list of starts under
 * way (their descriptors, like every capture descriptor, are registered
 * with mproc__plat_private_add and closed by mproc__plat_private_drop). */
typedef struct mproc__capture mproc__capture;
int mproc__capture_open(mproc_process *p, int stream);
void mproc__capture_passed(mproc__capture *c);
void mproc__capture_drop(mproc_process *p);
void mproc__capture_forget_forked(void);
/* The last lines of p's captured stderr for an end report, into `out`
 * (MPROC_END_TAIL_MAX + 1 bytes, NUL-terminated; "" if not captured).
 * Called without mproc__lock. */
void mproc__capture_tail(mproc_process *p, char *out);
/* The checks every operation on a child object starts with (process.c):
 * MPROC_ECLOSED, MPROC_EPERM (not a child, or not its creator), or 0. */
int mproc__check_child(const mproc_process *p);

/* A child's environment: `base` (NULL for none) less the names `changes`
 * names, then its "NAME=VALUE" entries (`fold`: names compare without
 * ASCII case, as on Windows).  A malloc'ed NULL-terminated array pointing
 * into base and changes (free the array only), or NULL when out of
 * memory. */
char **mproc__env_merge(char *const *base, char *const *changes, int fold);

#endif
