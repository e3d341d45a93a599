/* Processes: the dispatch hook, the registry of started children, and the
 * state machine Python's multiprocessing.Process defines (created, started,
 * ended, closed).  Everything OS specific is behind platform.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "internal.h"
#include "pool.h"
#include "pool_mpi.h"

mproc__mutex_t mproc__lock = MPROC__MUTEX_INITIALIZER;

/* Process-wide state, guarded by mproc__lock once mproc_main() returned. */
static const mproc_entry *g_table;
static int g_inited;
/* Why the first mproc_main() failed (0: it did not, or was not called), and
 * the OS error behind it, so that later calls report the cause instead of
 * "mproc_main() was not called".  Written once before any other mproc call
 * can run (mproc_main comes first in main), then only read. */
static int g_init_rc, g_init_os_error;
static const char *g_argv0 = "";
static mproc_start_method g_method =
    MPROC__HAVE_FORK ? MPROC_START_FORK : MPROC_START_SPAWN;
/* Started children that have not been reaped (Python's _children). */
static mproc_process *g_children;
/* How many of them only the registry still holds (the owner freed them; at
 * least, since a count that is too high only costs a sweep), and starts
 * since the last sweep that reaped such children
 * (mproc__reap_orphans_locked). */
static size_t g_orphans, g_starts_since_sweep;
/* Next child number: children are Process-N here, Process-<id>:N below. */
static unsigned long g_counter = 1;
static mproc_process g_current;
static mproc_process g_parent;
static int g_have_parent;
static mproc__plat_parent g_parent_watch;
/* In a forkserver child: a descriptor that reads EOF once the parent has
 * ended (the server is our OS parent, so the usual watch does not apply). */
static mproc_handle_t g_parent_fd = MPROC_INVALID_HANDLE;
static char g_main_name[] = "MainProcess";
static const mproc_args g_no_args; /* what a fork child gets for no arguments */
static char g_empty[] = "";
/* Whether g_current's name and identity are heap copies of our own; a fork
 * child borrows them from its process object instead of copying (every
 * write in a fork child costs a page copy). */
static int g_current_owns_name, g_current_owns_identity, g_parent_owns_name;

const char *mproc__argv0(void) { return g_argv0; }

mproc_start_method mproc__default_method(void) {
  mproc_start_method m;
  mproc__mutex_lock(&mproc__lock);
  m = g_method;
  mproc__mutex_unlock(&mproc__lock);
  return m;
}

char *mproc__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = (char *)malloc(n);
  if (c)
    memcpy(c, s, n);
  return c;
}

static const mproc_entry *mproc__find_entry(const char *name) {
  const mproc_entry *e, *fs = mproc__plat_fs_entry();
  /* The pool's worker loop is an entry of every program (src/pool.h). */
  if (strcmp(name, mproc__pool_worker_entry.name) == 0)
    return &mproc__pool_worker_entry;
  /* So is the forkserver's loop (plat/forkserver.h). */
  if (fs && strcmp(name, fs->name) == 0)
    return fs;
  for (e = g_table; e && e->name; e++)
    if (strcmp(e->name, name) == 0)
      return e;
  return NULL;
}

static int mproc__valid_timeout(double t) { return !isnan(t); }

int mproc__not_inited(void) {
  if (g_init_rc < 0)
    return mproc__os_fail(g_init_rc, g_init_os_error);
  return MPROC_ENOINIT;
}

const mproc_entry *mproc__entry_find(const char *name) {
  return g_inited && name ? mproc__find_entry(name) : NULL;
}

/* ---- start methods -------------------------------------------------------- */

int mproc__check_method(mproc_start_method method) {
  if (method != MPROC_START_FORK && method != MPROC_START_SPAWN &&
      method != MPROC_START_FORKSERVER)
    return MPROC_EINVAL;
  if (method != MPROC_START_SPAWN && !MPROC__HAVE_FORK)
    return MPROC_ENOTSUP; /* fork and forkserver both need fork() */
  return MPROC_OK;
}

int mproc_set_start_method(mproc_start_method method) {
  int rc = mproc__check_method(method);
  if (rc < 0)
    return rc;
  mproc__mutex_lock(&mproc__lock);
  g_method = method;
  mproc__mutex_unlock(&mproc__lock);
  return MPROC_OK;
}

mproc_start_method mproc_get_start_method(void) {
  return mproc__default_method();
}

static int mproc__method_from_env(void) {
  const char *v = getenv("MPROC_START_METHOD");
  if (!v || !*v)
    return MPROC_OK;
  if (strcmp(v, "spawn") == 0)
    return mproc_set_start_method(MPROC_START_SPAWN);
  if (strcmp(v, "fork") == 0)
    return mproc_set_start_method(MPROC_START_FORK);
  if (strcmp(v, "forkserver") == 0)
    return mproc_set_start_method(MPROC_START_FORKSERVER);
  return MPROC_EINVAL;
}

int mproc_set_forkserver_preload(const char *entry) {
  const mproc_entry *e;
  if (!g_inited)
    return MPROC_ENOINIT;
  if (entry) {
    e = mproc__find_entry(entry);
    if (!e || e == &mproc__pool_worker_entry || e == mproc__plat_fs_entry())
      return MPROC_ENOENTRY;
    entry = e->name; /* the table outlives the caller's string */
  }
  return mproc__plat_fs_preload(entry);
}

/* ---- registry (callers hold mproc__lock) ----------------------------------- */

static void mproc__destroy(mproc_process *p) {
  /* In a fork child the parent's objects' OS handles were closed at fork
   * and their numbers may have been reused since: leave them alone. */
  if (p->state != MPROC__P_CLOSED && p->creator_pid == mproc__plat_getpid()) {
    mproc__plat_close(p);
    mproc__result_drop(p);
    mproc__capture_drop(p);
  }
  free(p->name);
  free(p->identity);
  free(p->args_blob);
  free(p->handles);
  mproc_args_free(p->objects_src);
  mproc__env_free(p);
  free(p);
}

/* An IPC object's description can change between create and start (a pipe
 * end reads ahead whenever the parent receives on it): describe the objects
 * again right before the child is made.  Called with mproc__lock held. */
static int mproc__reencode_objects(mproc_process *p) {
  unsigned char *blob;
  mproc_handle_t *hs;
  size_t len, nh;
  int rc;
  if (!p->objects_src)
    return MPROC_OK;
  rc = mproc__args_encode(p->objects_src, &blob, &len, &hs, &nh);
  if (rc < 0)
    return rc;
  free(p->args_blob);
  free(p->handles);
  p->args_blob = blob;
  p->args_len = len;
  p->handles = hs;
  p->nhandles = nh;
  return MPROC_OK;
}

static void mproc__track(mproc_process *p) {
  p->tracked = 1;
  p->refs++;
  p->prev = NULL;
  p->next = g_children;
  if (g_children)
    g_children->prev = p;
  g_children = p;
}

static void mproc__untrack(mproc_process *p) {
  if (!p->tracked)
    return;
  if (p->prev)
    p->prev->next = p->next;
  else
    g_children = p->next;
  if (p->next)
    p->next->prev = p->prev;
  p->next = p->prev = NULL;
  p->tracked = 0;
  p->refs--;
}

/* Reap without blocking.  Returns 1 if the child has ended (state ENDED).
 * Never frees p: when the registry held the last reference, p->refs is 0
 * afterwards and the caller (which then owns no reference either) frees it. */
static int mproc__poll_locked(mproc_process *p) {
  int code, rc;
  if (p->state == MPROC__P_ENDED)
    return 1;
  if (p->state != MPROC__P_STARTED)
    return 0;
  rc = mproc__plat_reap(p, &code);
  if (rc != 1)
    return rc < 0 ? rc : 0;
  p->state = MPROC__P_ENDED;
  p->exitcode = code;
  mproc__untrack(p);
  return 1;
}

/* The checks every operation on a child object starts with. */
int mproc__check_child(const mproc_process *p) {
  if (p->state == MPROC__P_CLOSED)
    return MPROC_ECLOSED;
  if (p->kind != MPROC__K_CHILD || p->creator_pid != mproc__plat_getpid())
    return MPROC_EPERM;
  return MPROC_OK;
}

/* Python's _cleanup(), run at every start: reap each child that has ended
 * and free the ones whose owner already dropped them, so a program that
 * starts children and frees them without joining keeps neither zombies nor
 * descriptors/handles for more than the children still running.  A child
 * another thread is joining is left to that thread, which reaps it moments
 * later; reaping it here would make that thread's wait look at a pid that
 * may already belong to someone else.  Called with mproc__lock held. */
static void mproc__reap_ended_locked(void) {
  mproc_process *c, *next;
  g_orphans = 0;
  g_starts_since_sweep = 0;
  for (c = g_children; c; c = next) {
    next = c->next; /* polling unlinks c alone */
    if (c->waiters)
      continue;
    if (mproc__poll_locked(c) == 1 && c->refs == 0)
      mproc__destroy(c); /* freed by the user earlier, now reaped */
    else if (c->refs == 1 && c->tracked)
      g_orphans++; /* freed, still running */
  }
}

/* What a start does of Python's _cleanup(): only freed children need it
 * (a child its owner still holds is reaped when the owner looks at it, or
 * at exit), and asking each live child at every start made the start cost
 * grow with the number alive.  So a sweep runs only if some child was
 * freed unreaped, and at most once per as many starts as such children
 * remain: with k of them, k polls every k starts, O(1) a start, and a
 * freed child that ended is reaped within k starts (at the next one when
 * it is the only one).  Called with mproc__lock held. */
static void mproc__reap_orphans_locked(void) {
  if (g_orphans > 0 && ++g_starts_since_sweep >= g_orphans)
    mproc__reap_ended_locked();
}

/* ---- create / start --------------------------------------------------------- */

/* The start method and daemon flag `opts` asks for, checked. */
static int mproc__read_options(const mproc_process_options *opts,
                               mproc_start_method *method, int *daemon) {
  int rc;
  *method = opts ? opts->start_method : MPROC_START_DEFAULT;
  if (*method == MPROC_START_DEFAULT)
    *method = mproc__default_method();
  rc = mproc__check_method(*method);
  if (rc < 0)
    return rc;
  *daemon = opts ? opts->daemon : MPROC_DAEMON_INHERIT;
  if (*daemon != MPROC_DAEMON_INHERIT && *daemon != MPROC_DAEMON_YES &&
      *daemon != MPROC_DAEMON_NO)
    return MPROC_EINVAL;
  if (opts && opts->new_group != 0 && opts->new_group != 1)
    return MPROC_EINVAL;
  return MPROC_OK;
}

/* Python's identity and default name: the next number below ours
 * ("1", "1:2"), "Process-<identity>" unless `name` is given, and the daemon
 * flag (inherited from us unless asked). */
static int mproc__name_process(mproc_process *p, int daemon,
                               const char *name) {
  unsigned long idx;
  char buf[64];
  size_t need;
  mproc__mutex_lock(&mproc__lock);
  idx = g_counter++;
  p->daemon = daemon == MPROC_DAEMON_INHERIT ? g_current.daemon
                                             : daemon == MPROC_DAEMON_YES;
  need = strlen(g_current.identity) + sizeof buf;
  p->identity = (char *)malloc(need);
  if (p->identity) {
    if (g_current.identity[0])
      snprintf(p->identity, need, "%s:%lu", g_current.identity, idx);
    else
      snprintf(p->identity, need, "%lu", idx);
  }
  mproc__mutex_unlock(&mproc__lock);
  if (!p->identity)
    return MPROC_ENOMEM;
  if (name) {
    p->name = mproc__strdup(name);
  } else {
    need = strlen(p->identity) + sizeof "Process-";
    p->name = (char *)malloc(need);
    if (p->name)
      snprintf(p->name, need, "Process-%s", p->identity);
  }
  return p->name ? MPROC_OK : MPROC_ENOMEM;
}

/* A zeroed child object for entry `e` with every handle field set to "none"
 * (zero is a valid descriptor on POSIX: a field left at 0 would close
 * stdin). */
static mproc_process *mproc__child_new(const mproc_entry *e,
                                       mproc_start_method method) {
  mproc_process *p = (mproc_process *)calloc(1, sizeof(*p));
  mproc__plat_proc init = MPROC__PLAT_PROC_INIT;
  if (!p)
    return NULL;
  p->plat = init;
  p->kind = MPROC__K_CHILD;
  p->state = MPROC__P_CREATED;
  p->method = method;
  p->entry = e;
  p->pid = -1;
  p->result_h = MPROC_INVALID_HANDLE;
  p->stdio_h[0] = p->stdio_h[1] = p->stdio_h[2] = MPROC_INVALID_HANDLE;
  p->creator_pid = mproc__plat_getpid();
  return p;
}

/* A process object for entry `e`, already looked up and allowed. */
static int mproc__create(mproc_process **out, const mproc_entry *e,
                         const mproc_args *args,
                         const mproc_process_options *opts) {
  mproc_process *p;
  mproc_start_method method;
  int daemon, rc;
  rc = mproc__read_options(opts, &method, &daemon);
  if (rc < 0)
    return rc;
  if (!(p = mproc__child_new(e, method)))
    return MPROC_ENOMEM;
  p->refs = 1;
  p->new_group = opts ? opts->new_group : 0;
  rc = mproc__env_copy(p, opts);
  if (rc < 0)
    goto finish;
  /* Encoded now to report E2BIG and bad objects at create, as Python
   * reports bad arguments at construction; objects are described again at
   * start (mproc__reencode_objects). */
  rc = mproc__args_encode(args, &p->args_blob, &p->args_len, &p->handles,
                          &p->nhandles);
  if (rc < 0)
    goto finish;
  if (mproc__args_has_objects(args)) {
    rc = mproc__args_clone(args, &p->objects_src);
    if (rc < 0)
      goto finish;
  }
  rc = mproc__name_process(p, daemon, opts ? opts->name : NULL);
  if (rc < 0)
    goto finish;
  *out = p;
  p = NULL;
finish:
  if (p)
    mproc__destroy(p);
  return rc;
}

int mproc_process_create(mproc_process **out, const char *entry,
                         const mproc_args *args,
                         const mproc_process_options *opts) {
  const mproc_entry *e;
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (!entry)
    return MPROC_EINVAL;
  if (!g_inited)
    return mproc__not_inited();
  /* The pool's worker loop is found by name so that spawned workers can run
   * it, but only a pool may start it: run by hand it would wait for pool
   * messages that never come.  To the caller it is not an entry. */
  e = mproc__find_entry(entry);
  if (!e || e == &mproc__pool_worker_entry || e == mproc__plat_fs_entry())
    return MPROC_ENOENTRY;
  return mproc__create(out, e, args, opts);
}

int mproc__pool_worker_create(mproc_process **out, const mproc_args *args,
                              const mproc_process_options *opts) {
  if (!out)
    return MPROC_EINVAL;
  *out = NULL;
  if (!g_inited)
    return mproc__not_inited();
  return mproc__create(out, &mproc__pool_worker_entry, args, opts);
}

static int mproc__cleanup_children(void);

/* The parent's children are not a fork child's: it closes its copies of
 * their descriptors (all but `keep`, its own result block) and lists none
 * of them, so it neither holds them open nor reaps or signals them.  The
 * parent's end of a child's life line held here would make that child see
 * its parent alive for as long as this process lives.  Their objects are
 * left as they are, never written: each write would copy a page, and
 * their creator_pid already makes every call on them MPROC_EPERM here
 * (the application may still free them; mproc__destroy then leaves their
 * descriptor numbers alone).  O(1) in the number of children: see
 * mproc__plat_private_drop. */
static void mproc__children_drop_forked(mproc_handle_t keep) {
  mproc__plat_private_drop(keep);
  mproc__capture_forget_forked();
  mproc__result_forget_forked();
  g_children = NULL;
  g_orphans = g_starts_since_sweep = 0;
}

void mproc__children_forget_forked(void) {
  mproc__children_drop_forked(MPROC_INVALID_HANDLE);
}

/* The fork child: become process `p`, run its entry, exit.  Runs in the
 * child right after fork() with mproc__lock held (it was held across fork,
 * so no other thread was inside it; only this thread exists now). */
static void mproc__fork_child_main(mproc_process *p) {
  mproc_args *args = NULL;
  int64_t parent_pid = g_current.pid;
  int code;

  mproc__children_drop_forked(mproc__result_handle(p));
  g_counter = 1;
  g_parent.name = g_current.name;
  g_parent_owns_name = 0; /* borrowed, like the rest of a fork child's view */
  g_parent.pid = parent_pid;
  g_parent.identity = g_current.identity;
  g_have_parent = 1;
  g_current.name = p->name;
  g_current.identity = p->identity;
  g_current_owns_name = g_current_owns_identity = 0;
  g_current.daemon = p->daemon;
  g_current.pid = mproc__plat_getpid();
  mproc__mutex_unlock(&mproc__lock);
  mproc__result_fork_child(p);

  if (p->daemon && mproc__plat_arm_daemon(parent_pid) < 0)
    mproc__plat_exit_now(1); /* the parent is already gone */
  memset(&g_parent_watch, 0, sizeof g_parent_watch);
  mproc__plat_watch_parent(&g_parent_watch, parent_pid, 0);
  /* An empty list needs no heap: the child's first malloc would copy the
   * allocator's pages, which is most of what a short child costs. */
  if (p->args_len == 12 && p->nhandles == 0 &&
      memcmp(p->args_blob, "\0\0\0\0\0\0\0\0\0\0\0\0", 12) == 0) {
    code = p->entry->fn(&g_no_args);
  } else {
    if (mproc__args_decode(p->args_blob, p->args_len, p->handles, p->nhandles,
                           1, &args) < 0) {
      fprintf(stderr, "mproc: %s: cannot decode arguments\n", p->name);
      mproc__result_mark_boot(MPROC__BOOT_BAD_ARGS);
      mproc__plat_exit_now(MPROC_EXIT_BOOTSTRAP);
    }
    code = p->entry->fn(args);
    mproc_args_free(args);
  }
  /* _exit, not exit: the atexit handlers and stdio buffers we inherited
   * belong to the parent (Python's fork children call os._exit too).  Our own
   * duties at exit, and the flush, are done by hand. */
  mproc__cleanup_children();
  fflush(NULL);
  mproc__plat_exit_now(code);
}

/* Spawn: called by the backend once it knows the child's handle values. */
static int mproc__build_bootstrap(mproc_process *p, const uint64_t *child_handles,
                                  uint64_t parent_handle,
                                  uint64_t interrupt_handle,
                                  unsigned char **buf, size_t *len) {
  mproc__bootstrap bs;
  int rc;
  memset(&bs, 0, sizeof bs);
  bs.start_method = (uint32_t)mproc__default_method();
  bs.flags = p->daemon ? MPROC__BS_DAEMON : 0;
  if (p->result_h != MPROC_INVALID_HANDLE)
    bs.flags |= MPROC__BS_RESULT; /* one more handle: see mproc__spawn */
  bs.parent_pid = mproc__plat_getpid();
  bs.parent_handle = parent_handle;
  bs.interrupt_handle = interrupt_handle;
  bs.entry = p->entry->name;
  mproc__mutex_lock(&mproc__lock);
  bs.name = p->name;
  bs.identity = p->identity;
  bs.parent_name = g_current.name;
  bs.nhandles = (uint32_t)p->nhandles + ((bs.flags & MPROC__BS_RESULT) != 0);
  bs.handles = (uint64_t *)child_handles;
  bs.args = p->args_blob;
  bs.args_len = p->args_len;
  rc = mproc__bootstrap_encode(&bs, buf, len);
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

/* Spawn p, passing its argument handles and, in the slot after them, its
 * result block (the bootstrap says so with MPROC__BS_RESULT). */
/* Start p by spawn or through the forkserver: both send the bootstrap and
 * the handles, p's result block last. */
static int mproc__spawn_with(mproc_process *p, const mproc_handle_t *h,
                             size_t n) {
  return p->method == MPROC_START_FORKSERVER
             ? mproc__plat_fs_start(p, h, n, mproc__build_bootstrap)
             : mproc__plat_spawn(p, h, n, mproc__build_bootstrap);
}

static int mproc__spawn(mproc_process *p) {
  mproc_handle_t *all;
  size_t n = p->nhandles;
  int rc;
  if (p->result_h == MPROC_INVALID_HANDLE)
    return mproc__spawn_with(p, p->handles, n);
  all = (mproc_handle_t *)malloc((n + 1) * sizeof(*all));
  if (!all)
    return MPROC_ENOMEM;
  if (n)
    memcpy(all, p->handles, n * sizeof(*all));
  all[n] = p->result_h;
  rc = mproc__spawn_with(p, all, n + 1);
  free(all);
  return rc;
}

/* Whether p may start now (the lock held); if so its objects are described
 * again for the child. */
static int mproc__start_check_locked(mproc_process *p) {
  int rc = mproc__check_child(p);
  if (rc < 0)
    return rc;
  if (p->state != MPROC__P_CREATED)
    return MPROC_ESTATE;
  if (p->waiters)
    return MPROC_ESTATE; /* another thread is starting it right now */
  if (g_current.daemon)
    return MPROC_EDAEMON;
  /* A directory that is not there fails the start, before any child
   * exists, whatever the start method (fork would only learn it in the
   * child). */
  if (p->cwd && (rc = mproc__plat_check_dir(p->cwd)) < 0)
    return rc;
  return mproc__reencode_objects(p);
}

int mproc_process_start(mproc_process *p) {
  int rc;
  if (!p)
    return MPROC_EINVAL;
  /* Buffered output written before start must not appear twice (fork copies
   * the buffers) and must come before the child's (spawn). */
  fflush(NULL);
  mproc__mutex_lock(&mproc__lock);
  rc = mproc__start_check_locked(p);
  if (rc < 0) {
    mproc__mutex_unlock(&mproc__lock);
    return rc;
  }
  mproc__reap_orphans_locked();
  /* Pool workers' results travel in the pool: they get no block. */
  if (p->entry != &mproc__pool_worker_entry)
    rc = mproc__result_create(p);
  if (rc == MPROC_OK)
    rc = mproc__stdio_open(p);
  if (rc == MPROC_OK && p->method == MPROC_START_FORK) {
    rc = mproc__plat_fork(p, mproc__fork_child_main);
  } else if (rc == MPROC_OK) {
    /* Starting an executable takes milliseconds: do it without the lock so
     * other threads can start, join and signal meanwhile.  waiters marks the
     * object busy so a second start() or a close() refuses. */
    p->waiters++;
    mproc__mutex_unlock(&mproc__lock);
    rc = mproc__spawn(p);
    mproc__mutex_lock(&mproc__lock);
    p->waiters--;
  }
  mproc__stdio_close(p); /* the child has its copies */
  if (rc == MPROC_OK) {
    p->state = MPROC__P_STARTED;
    mproc__track(p);
    mproc__plat_private_proc(p);
  } else {
    mproc__result_drop(p);
    mproc__capture_drop(p);
  }
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

/* Start `e` as a helper: spawned like a child, but never named, numbered
 * or tracked (mproc_active_children does not list it), and waited for here
 * until it exits.  *exitcode is its code.  The forkserver's first process
 * is one: it forks the server and exits. */
int mproc__run_helper(const mproc_entry *e, const mproc_args *args,
                      int *exitcode) {
  mproc_process *p;
  int rc;
  if (!(p = mproc__child_new(e, MPROC_START_SPAWN)))
    return MPROC_ENOMEM;
  p->name = mproc__strdup(e->name);
  p->identity = mproc__strdup("");
  if (!p->name || !p->identity) {
    rc = MPROC_ENOMEM;
    goto finish;
  }
  if ((rc = mproc__args_encode(args, &p->args_blob, &p->args_len, &p->handles,
                               &p->nhandles)) < 0 ||
      (rc = mproc__plat_spawn(p, p->handles, p->nhandles,
                              mproc__build_bootstrap)) < 0)
    goto finish;
  p->state = MPROC__P_STARTED;
  if ((rc = mproc__plat_wait(p, MPROC_FOREVER)) < 0)
    goto finish;
  mproc__mutex_lock(&mproc__lock);
  rc = mproc__plat_reap(p, exitcode);
  mproc__mutex_unlock(&mproc__lock);
  rc = rc == 1 ? MPROC_OK : rc < 0 ? rc : MPROC_ESTATE;
finish:
  mproc__mutex_lock(&mproc__lock);
  mproc__destroy(p);
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

/* ---- join and friends ---------------------------------------------------------- */

/* Wait for our parent to end: 0 once it has, else MPROC_ETIMEDOUT. */
static int mproc__parent_wait(double timeout) {
  int ready = 0, rc;
  if (g_parent_fd == MPROC_INVALID_HANDLE)
    return timeout == 0 ? (mproc__plat_parent_alive(&g_parent_watch)
                               ? MPROC_ETIMEDOUT
                               : MPROC_OK)
                        : mproc__plat_parent_wait(&g_parent_watch, timeout);
  rc = mproc__plat_wait_handles(&g_parent_fd, 1, timeout, &ready);
  if (rc < 0)
    return rc;
  return ready ? MPROC_OK : MPROC_ETIMEDOUT;
}

int mproc_process_join(mproc_process *p, double timeout) {
  double deadline, left;
  int rc;
  if (!p || !mproc__valid_timeout(timeout))
    return MPROC_EINVAL;
  if (p->kind == MPROC__K_PARENT)
    return mproc__parent_wait(timeout);
  mproc__mutex_lock(&mproc__lock);
  rc = mproc__check_child(p);
  if (rc == MPROC_OK && p->state == MPROC__P_CREATED)
    rc = MPROC_ESTATE;
  if (rc < 0 || p->state == MPROC__P_ENDED) {
    mproc__mutex_unlock(&mproc__lock);
    return rc;
  }
  p->waiters++;
  deadline = mproc__deadline(timeout);
  /* Wait first, then reap: a child that is being joined has usually not
   * ended yet, and an ended one makes the wait return at once. */
  for (;;) {
    int ended;
    left = mproc__remaining(deadline);
    mproc__mutex_unlock(&mproc__lock);
    rc = mproc__plat_wait(p, left);
    mproc__mutex_lock(&mproc__lock);
    if (rc < 0 && rc != MPROC_ETIMEDOUT)
      break;
    ended = mproc__poll_locked(p);
    if (ended != 0) {
      rc = ended; /* 1: ended; negative: error */
      break;
    }
    if (rc == MPROC_ETIMEDOUT)
      break;
  }
  p->waiters--;
  mproc__mutex_unlock(&mproc__lock);
  return rc == 1 ? MPROC_OK : rc;
}

int mproc_process_is_alive(mproc_process *p) {
  int rc;
  if (!p)
    return MPROC_EINVAL;
  if (p->kind == MPROC__K_CURRENT)
    return 1;
  if (p->kind == MPROC__K_PARENT)
    return mproc__parent_wait(0) == MPROC_ETIMEDOUT;
  mproc__mutex_lock(&mproc__lock);
  rc = mproc__check_child(p);
  if (rc == MPROC_OK) {
    rc = mproc__poll_locked(p);
    if (rc >= 0)
      rc = p->state == MPROC__P_STARTED;
  }
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

int mproc_process_exitcode(mproc_process *p, int *code) {
  int rc;
  if (!p || !code)
    return MPROC_EINVAL;
  if (p->kind != MPROC__K_CHILD)
    return p->state == MPROC__P_CLOSED ? MPROC_ECLOSED : 0;
  mproc__mutex_lock(&mproc__lock);
  rc = mproc__check_child(p);
  if (rc == MPROC_OK) {
    rc = mproc__poll_locked(p);
    if (rc == 1)
      *code = p->exitcode;
  }
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

static int mproc__signal(mproc_process *p, int which) {
  int rc;
  if (!p)
    return MPROC_EINVAL;
  mproc__mutex_lock(&mproc__lock);
  rc = mproc__check_child(p);
  if (rc == MPROC_OK && p->state == MPROC__P_CREATED)
    rc = MPROC_ESTATE;
  /* Holding the lock keeps the child unreaped while we signal it, so its
   * pid cannot have been recycled; an ended child is left alone. */
  if (rc == MPROC_OK && p->state == MPROC__P_STARTED)
    rc = mproc__plat_signal(p, which);
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

int mproc_process_terminate(mproc_process *p) {
  return mproc__signal(p, MPROC__SIG_TERM);
}
int mproc_process_kill(mproc_process *p) {
  return mproc__signal(p, MPROC__SIG_KILL);
}
int mproc_process_interrupt(mproc_process *p) {
  return mproc__signal(p, MPROC__SIG_INT);
}

/* The tree calls: like mproc__signal, but for the child's group or job,
 * which the backend may still reach after the child was reaped. */
static int mproc__signal_tree(mproc_process *p, int which) {
  int rc;
  if (!p)
    return MPROC_EINVAL;
  mproc__mutex_lock(&mproc__lock);
  rc = mproc__check_child(p);
  /* Without the option the child shares our group: refusing says so,
   * where signalling the child alone would leave its tree running. */
  if (rc == MPROC_OK && (p->state == MPROC__P_CREATED || !p->new_group))
    rc = MPROC_ESTATE;
  /* Holding the lock keeps an unreaped child unreaped while the backend
   * signals its group, whose id is the child's pid. */
  if (rc == MPROC_OK)
    rc = mproc__plat_signal_tree(p, which, p->state != MPROC__P_STARTED);
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

int mproc_process_kill_tree(mproc_process *p) {
  return mproc__signal_tree(p, MPROC__SIG_KILL);
}
int mproc_process_terminate_tree(mproc_process *p) {
  return mproc__signal_tree(p, MPROC__SIG_TERM);
}

int mproc_process_close(mproc_process *p) {
  int rc;
  if (!p)
    return MPROC_EINVAL;
  mproc__mutex_lock(&mproc__lock);
  rc = MPROC_OK;
  if (p->state == MPROC__P_CLOSED)
    goto finish; /* closing twice is harmless, as in Python */
  rc = mproc__check_child(p);
  if (rc < 0)
    goto finish;
  rc = mproc__poll_locked(p);
  if (rc < 0)
    goto finish;
  if (p->state == MPROC__P_STARTED || p->waiters || p->readers) {
    rc = MPROC_EBUSY;
    goto finish;
  }
  mproc__plat_close(p);
  mproc__result_drop(p);
  mproc__capture_drop(p);
  free(p->args_blob);
  free(p->handles);
  p->args_blob = NULL;
  p->handles = NULL;
  p->objects_src = mproc_args_free(p->objects_src);
  p->state = MPROC__P_CLOSED;
  rc = MPROC_OK;
finish:
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

mproc_process *mproc_process_free(mproc_process *p) {
  if (!p || p->kind != MPROC__K_CHILD)
    return NULL; /* the current/parent objects are borrowed */
  mproc__mutex_lock(&mproc__lock);
  if (--p->refs == 0)
    mproc__destroy(p);
  else if (p->refs == 1 && p->tracked)
    g_orphans++; /* only the registry holds it now */
  mproc__mutex_unlock(&mproc__lock);
  return NULL;
}

/* ---- accessors ------------------------------------------------------------------ */

int mproc_process_pid(const mproc_process *p, int64_t *pid) {
  int rc = MPROC_OK;
  if (!p || !pid)
    return MPROC_EINVAL;
  mproc__mutex_lock(&mproc__lock);
  if (p->state == MPROC__P_CLOSED)
    rc = MPROC_ECLOSED;
  else if (p->kind == MPROC__K_CHILD && p->state == MPROC__P_CREATED)
    rc = MPROC_ESTATE;
  else
    *pid = p->pid;
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

const char *mproc_process_name(const mproc_process *p) {
  if (!p || p->state == MPROC__P_CLOSED)
    return NULL;
  return p->name;
}

int mproc_process_set_name(mproc_process *p, const char *name) {
  char *copy, *old;
  if (!p || !name)
    return MPROC_EINVAL;
  if (p->state == MPROC__P_CLOSED)
    return MPROC_ECLOSED;
  if (p->kind == MPROC__K_PARENT)
    return MPROC_EPERM;
  copy = mproc__strdup(name);
  if (!copy)
    return MPROC_ENOMEM;
  mproc__mutex_lock(&mproc__lock);
  old = p->name;
  p->name = copy;
  if (p == &g_current) {
    if (!g_current_owns_name)
      old = NULL;
    g_current_owns_name = 1;
  }
  mproc__mutex_unlock(&mproc__lock);
  free(old);
  return MPROC_OK;
}

int mproc_process_daemon(const mproc_process *p) {
  if (!p)
    return MPROC_EINVAL;
  if (p->state == MPROC__P_CLOSED)
    return MPROC_ECLOSED;
  return p->daemon;
}

int mproc_process_set_daemon(mproc_process *p, int daemonic) {
  int rc;
  if (!p)
    return MPROC_EINVAL;
  mproc__mutex_lock(&mproc__lock);
  rc = mproc__check_child(p);
  if (rc < 0)
    goto finish;
  if (p->state != MPROC__P_CREATED || p->waiters) {
    rc = MPROC_ESTATE;
    goto finish;
  }
  p->daemon = daemonic != 0;
finish:
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

int mproc_process_sentinel(const mproc_process *p, mproc_handle_t *out) {
  int rc = MPROC_OK;
  if (!p || !out)
    return MPROC_EINVAL;
  if (p->kind == MPROC__K_PARENT) {
    *out = g_parent_fd != MPROC_INVALID_HANDLE
               ? g_parent_fd
               : mproc__plat_parent_sentinel(&g_parent_watch);
    return *out == MPROC_INVALID_HANDLE ? MPROC_ENOTSUP : MPROC_OK;
  }
  if (p->kind == MPROC__K_CURRENT)
    return MPROC_EPERM;
  mproc__mutex_lock(&mproc__lock);
  if (p->state == MPROC__P_CLOSED)
    rc = MPROC_ECLOSED;
  else if (p->state == MPROC__P_CREATED)
    rc = MPROC_ESTATE;
  else /* the object is the caller's; only its OS state is filled in */
    rc = mproc__plat_sentinel((mproc_process *)p, out);
  mproc__mutex_unlock(&mproc__lock);
  return rc;
}

mproc_process *mproc_current_process(void) {
  return g_inited ? &g_current : NULL;
}

mproc_process *mproc_parent_process(void) {
  return g_inited && g_have_parent ? &g_parent : NULL;
}

int mproc_active_children(mproc_process **out, size_t cap, size_t *count) {
  mproc_process *c;
  size_t n = 0;
  if (!count || (cap && !out))
    return MPROC_EINVAL;
  mproc__mutex_lock(&mproc__lock);
  mproc__reap_ended_locked();
  for (c = g_children; c; c = c->next) {
    if (n < cap) {
      c->refs++;
      out[n] = c;
    }
    n++;
  }
  mproc__mutex_unlock(&mproc__lock);
  *count = n;
  return MPROC_OK;
}

int mproc_cpu_count(void) {
  int n = mproc__plat_cpu_count();
  return n > 0 ? n : 1;
}

/* ---- waiting on many ------------------------------------------------------------ */

/* The OS handle of each item, in hs; items a connection's read-ahead makes
 * ready are marked now, and *timeout becomes 0 then. */
static int mproc__waitables(mproc_waitable *items, size_t n,
                            mproc_handle_t *hs, double *timeout) {
  size_t i;
  int rc = MPROC_OK;
  for (i = 0; i < n && rc == MPROC_OK; i++) {
    items[i].ready = 0;
    if (items[i].kind == MPROC_WAIT_PROCESS) {
      mproc_process *p = (mproc_process *)items[i].object;
      if (!p)
        rc = MPROC_EINVAL;
      else
        rc = mproc_process_sentinel(p, &hs[i]);
    } else if (items[i].kind == MPROC_WAIT_HANDLE) {
      hs[i] = items[i].handle;
      if (hs[i] == MPROC_INVALID_HANDLE)
        rc = MPROC_EINVAL;
    } else if (items[i].kind == MPROC_WAIT_CONN) {
      /* Bytes the connection already read ahead make it ready without the
       * OS: mark it now and only poll the others. */
      rc = mproc__conn_wait_handle((mproc_conn *)items[i].object, &hs[i],
                                   &items[i].ready);
      if (rc == MPROC_OK && items[i].ready)
        *timeout = 0;
    } else {
      rc = MPROC_EINVAL;
    }
  }
  return rc;
}

/* Counts the ready items.  A child's sentinel may turn ready a moment
 * before the child has ended (POSIX without pidfds: the kernel closes a
 * dying process's descriptors before it becomes a zombie), or long before
 * (it exec'd): such a process counts only once mproc__plat_wait agrees,
 * which in the second case also gives it a sentinel that tells the truth
 * (src/posix/proc.c), and *again is set so the caller waits again. */
static size_t mproc__count_ready(mproc_waitable *items, size_t n,
                                 const int *ready, int *again) {
  size_t i, nready = 0;
  for (i = 0; i < n; i++) {
    if (ready[i] && items[i].kind == MPROC_WAIT_PROCESS &&
        mproc__plat_wait((mproc_process *)items[i].object, 0) != MPROC_OK) {
      *again = 1;
      continue;
    }
    items[i].ready = ready[i] != 0 || items[i].ready;
    nready += (size_t)items[i].ready;
  }
  return nready;
}

int mproc_wait(mproc_waitable *items, size_t n, double timeout) {
  mproc_handle_t *hs;
  int *ready;
  double deadline, left;
  int rc = MPROC_OK, again = 1;
  if (!items || n == 0 || !mproc__valid_timeout(timeout))
    return MPROC_EINVAL;
  hs = (mproc_handle_t *)malloc(n * sizeof(*hs));
  ready = (int *)calloc(n, sizeof(*ready));
  if (!hs || !ready) {
    free(hs);
    free(ready);
    return MPROC_ENOMEM;
  }
  deadline = mproc__deadline(timeout);
  while (again && rc >= 0) {
    again = 0;
    left = mproc__remaining(deadline);
    rc = mproc__waitables(items, n, hs, &left);
    if (rc == MPROC_OK)
      rc = mproc__plat_wait_handles(hs, n, left, ready);
    if (rc >= 0)
      rc = (int)mproc__count_ready(items, n, ready, &again);
    if (rc != 0 || mproc__expired(deadline, mproc__plat_now()))
      again = 0;
  }
  free(hs);
  free(ready);
  return rc;
}

/* ---- exit ------------------------------------------------------------------------- */

/* Python's _exit_function: terminate the daemonic children, then join every
 * child.  Runs at normal exit of any process that started children. */
static int mproc__cleanup_children(void) {
  mproc_process *c;
  int failures = 0;
  mproc__mutex_lock(&mproc__lock);
  for (c = g_children; c; c = c->next)
    if (c->daemon && c->state == MPROC__P_STARTED)
      (void)mproc__plat_signal(c, MPROC__SIG_TERM);
  for (;;) {
    c = g_children;
    if (!c)
      break;
    c->refs++;
    mproc__mutex_unlock(&mproc__lock);
    if (mproc_process_join(c, MPROC_FOREVER) < 0)
      failures++;
    mproc__mutex_lock(&mproc__lock);
    /* A child we cannot wait for must not make exit spin. */
    mproc__untrack(c);
    if (--c->refs == 0)
      mproc__destroy(c);
  }
  mproc__mutex_unlock(&mproc__lock);
  return failures;
}

static void mproc__atexit(void) {
  /* Only the process that registered the handler owns the registry; a fork
   * child that calls exit() runs the inherited handler, and by then the
   * registry holds that child's own children, which is right too. */
  (void)mproc__cleanup_children();
}

/* ---- the init hook ---------------------------------------------------------------- */

static int mproc__check_table(const mproc_entry *table) {
  const mproc_entry *e, *f;
  if (!table)
    return MPROC_EINVAL;
  for (e = table; e->name; e++) {
    if (!e->name[0] || !e->fn)
      return MPROC_EINVAL;
    /* Reserved: the pool's entry would shadow it (mproc__find_entry). */
    if (strcmp(e->name, MPROC_POOL_WORKER_ENTRY) == 0 ||
        (mproc__plat_fs_entry() &&
         strcmp(e->name, mproc__plat_fs_entry()->name) == 0))
      return MPROC_EINVAL;
    for (f = table; f != e; f++)
      if (strcmp(f->name, e->name) == 0)
        return MPROC_EINVAL;
  }
  return MPROC_OK;
}

static void mproc__bootstrap_die(const char *what, const char *detail) {
  fprintf(stderr, "mproc: %s%s%s\n", what, detail ? ": " : "",
          detail ? detail : "");
  fflush(stderr);
  exit(MPROC_EXIT_BOOTSTRAP);
}

/* A spawned child: read who we are, run the entry, exit with its value.
 * `sender` is the pid the backend learned from the kernel: the process that
 * created this one and made the bootstrap channel. */
/* The entry the bootstrap names, once it is known to come from the parent
 * it claims; a refused bootstrap ends the child. */
static const mproc_entry *mproc__spawn_child_entry(const mproc__bootstrap *bs,
                                                   int64_t sender) {
  const mproc_entry *e;
  char err[256];
  /* A bootstrap captured from a real parent and replayed by another
   * process claims a parent that did not send it. */
  if (bs->parent_pid != sender) {
    snprintf(err, sizeof err,
             "it claims parent process %lld but came from process %lld",
             (long long)bs->parent_pid, (long long)sender);
    mproc__bootstrap_die("bootstrap refused", err);
  }
  /* Trusted from here on: the last handle is our result block. */
  if (bs->flags & MPROC__BS_RESULT)
    mproc__result_adopt(
        (mproc_handle_t)(intptr_t)bs->handles[bs->nhandles - 1], 0);
  e = mproc__find_entry(bs->entry);
  if (!e) {
    mproc__result_mark_boot(MPROC__BOOT_NO_ENTRY);
    snprintf(err, sizeof err, "'%s'", bs->entry);
    mproc__bootstrap_die("no entry of that name in this program's dispatch "
                         "table",
                         err);
  }
  return e;
}

/* The entry's arguments, their handles taken from the bootstrap's table. */
static mproc_args *mproc__spawn_child_args(const mproc__bootstrap *bs) {
  mproc_handle_t *table = NULL;
  mproc_args *args = NULL;
  uint32_t i;
  if (bs->nhandles) {
    table = (mproc_handle_t *)malloc(bs->nhandles * sizeof(*table));
    if (!table) {
      mproc__result_mark_boot(MPROC__BOOT_NOMEM);
      mproc__bootstrap_die("out of memory", NULL);
    }
    for (i = 0; i < bs->nhandles; i++)
      table[i] = (mproc_handle_t)(intptr_t)bs->handles[i];
  }
  if (mproc__args_decode(bs->args, bs->args_len, table, bs->nhandles, 0,
                         &args) < 0) {
    mproc__result_mark_boot(MPROC__BOOT_BAD_ARGS);
    mproc__bootstrap_die("damaged arguments in the bootstrap", NULL);
  }
  free(table);
  return args;
}

static void mproc__free_identity(void);

/* This process's and its parent's identity, as the bootstrap gives them. */
static void mproc__spawn_child_identity(const mproc__bootstrap *bs) {
  /* A forkserver child arrives here with the server's identity. */
  mproc__free_identity();
  mproc__mutex_lock(&mproc__lock);
  g_method = (mproc_start_method)bs->start_method;
  if (g_method != MPROC_START_SPAWN && !MPROC__HAVE_FORK)
    g_method = MPROC_START_SPAWN;
  g_current.name = mproc__strdup(bs->name);
  g_current.identity = mproc__strdup(bs->identity);
  g_current_owns_name = g_current_owns_identity = 1;
  g_current.daemon = (bs->flags & MPROC__BS_DAEMON) != 0;
  g_current.pid = mproc__plat_getpid(); /* a forkserver child's is new */
  g_current.creator_pid = g_current.pid;
  g_parent.name = mproc__strdup(bs->parent_name);
  g_parent_owns_name = 1;
  g_parent.identity = g_empty;
  g_parent.pid = bs->parent_pid;
  g_have_parent = 1;
  mproc__mutex_unlock(&mproc__lock);
  if (!g_current.name || !g_current.identity || !g_parent.name)
    mproc__bootstrap_die("out of memory", NULL);
}

void mproc__run_child(unsigned char *buf, size_t len, int64_t sender,
                      mproc_handle_t parent_fd) {
  mproc__bootstrap bs;
  mproc_args *args;
  const mproc_entry *e;
  char err[256];
  int code;

  if (mproc__bootstrap_decode(buf, len, &bs) < 0)
    mproc__bootstrap_die("damaged bootstrap from the parent process", NULL);
  e = mproc__spawn_child_entry(&bs, sender);
  err[0] = 0;
  if (mproc__plat_child_setup(&bs, err, sizeof err) < 0) {
    mproc__result_mark_boot(MPROC__BOOT_SETUP);
    mproc__bootstrap_die("cannot set up the child", err);
  }
  args = mproc__spawn_child_args(&bs);
  mproc__spawn_child_identity(&bs);
  if (parent_fd != MPROC_INVALID_HANDLE) {
    /* Forkserver: the server armed the daemon and hands us the watch. */
    g_parent_fd = parent_fd;
  } else {
    if (g_current.daemon && mproc__plat_arm_daemon(bs.parent_pid) < 0)
      exit(1); /* the parent is already gone: a daemonic child goes too */
    mproc__plat_watch_parent(&g_parent_watch, bs.parent_pid,
                             bs.parent_handle);
  }
  mproc__bootstrap_release(&bs);
  free(buf);

  code = e->fn(args);
  mproc_args_free(args);
  /* A spawned child is a program of its own: exit() runs its atexit
   * handlers, ours among them (joining its own children), and flushes. */
  exit(code);
}

static void mproc__free_identity(void) {
  /* Names that live for the whole process, released at exit so leak
   * checkers see a clean heap. */
  if (g_current_owns_name)
    free(g_current.name);
  if (g_current_owns_identity)
    free(g_current.identity);
  if (g_parent_owns_name)
    free(g_parent.name);
  g_current.name = g_main_name;
  g_current.identity = g_empty;
  g_current_owns_name = g_current_owns_identity = g_parent_owns_name = 0;
  g_parent.name = g_empty;
}

static int mproc__main(int argc, char **argv, const mproc_entry *table) {
  unsigned char *buf = NULL;
  size_t len = 0;
  int64_t sender = 0;
  char err[512];
  int rc;
  if (mproc__check_table(table) < 0)
    return MPROC_EINVAL;
  if (g_inited)
    return MPROC_ESTATE;
  g_table = table;
  if (argc > 0 && argv && argv[0])
    g_argv0 = argv[0];
  g_current.kind = MPROC__K_CURRENT;
  g_current.state = MPROC__P_STARTED;
  g_current.name = g_main_name;
  g_current.identity = g_empty;
  g_current.pid = mproc__plat_getpid();
  g_current.creator_pid = g_current.pid;
  g_parent.kind = MPROC__K_PARENT;
  g_parent.state = MPROC__P_STARTED;
  g_parent.name = g_empty;
  g_parent.identity = g_empty;
  rc = mproc__plat_init(argc, argv);
  if (rc < 0)
    return rc;
  err[0] = 0;
  rc = mproc__plat_read_bootstrap(argc, argv, &buf, &len, &sender, err,
                                  sizeof err);
  if (rc < 0)
    mproc__bootstrap_die(err[0] ? err : "cannot read the bootstrap", NULL);
  rc = mproc__method_from_env();
  if (rc < 0) {
    fprintf(stderr,
            "mproc: MPROC_START_METHOD=%s is not a start method here "
            "(use fork, spawn or forkserver%s)\n",
            getenv("MPROC_START_METHOD"),
            MPROC__HAVE_FORK ? "" : "; Windows has only spawn");
    if (buf)
      exit(MPROC_EXIT_BOOTSTRAP);
    return rc;
  }
  g_inited = 1;
  atexit(mproc__free_identity);
  /* Registered after the line above, so it runs before it (LIFO). */
  atexit(mproc__atexit);
  if (buf)
    mproc__run_child(buf, len, sender, MPROC_INVALID_HANDLE); /* no return */
  /* Under mpiexec (an MPI build): ranks 1.. serve pools and exit there. */
  rc = mproc__mpi_main();
  if (rc < 0)
    return rc;
  return MPROC_OK;
}

int mproc_main(int argc, char **argv, const mproc_entry *table) {
  int rc = mproc__main(argc, argv, table);
  /* Remembered for the calls a program makes if it goes on regardless; a
   * second call (MPROC_ESTATE) is not a failure of the first. */
  if (rc < 0 && !g_inited && g_init_rc == 0) {
    g_init_rc = rc;
    g_init_os_error = mproc_os_error();
  }
  return rc;
}
