/* POSIX backend: which file a spawned child runs, and with which leading
 * arguments.
 *
 * Linux names the running image /proc/self/exe, which survives renames and
 * paths a shell would mangle.  But when the program was started through
 * its loader (`/lib64/ld-linux-x86-64.so.2 ./prog`) or under valgrind, the
 * kernel exec'd the loader or valgrind's tool, and /proc/self/exe names
 * that: a child exec'd through it runs the loader, which rejects the child
 * flag, while start() reports success.  So the first spawn compares the
 * file behind /proc/self/exe with the file the main program is mapped from
 * and, when they differ, runs the main program's own file (when it is
 * executable: under valgrind children then run natively, as with valgrind's
 * default --trace-children=no), or else the same loader with the same
 * loader options and the program's path, as it was started. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc_exe.h"
#include "internal.h"
#include "px_have.h"

#if MPROC__HAVE_PROCFS
#include <link.h>
#endif
#if MPROC__APPLE
#include <mach-o/dyld.h> /* _NSGetExecutablePath */
#endif
#if MPROC__HAVE_KERN_PROC_PATHNAME
#include <sys/types.h>
#include <sys/sysctl.h>
#endif

static pthread_once_t g_plan_once = PTHREAD_ONCE_INIT;
static mproc__exe_plan g_plan;
static int g_argc;
static const char *g_argv0;

void mproc__exe_init(int argc, char **argv) {
  g_argc = argc;
  g_argv0 = argc > 0 && argv ? argv[0] : NULL;
}

/* Runs the file at `path` (resolved now) with argv[0] as the program got
 * it, the way it was started. */
static void mproc__plan_direct(const char *path) {
  static const char *prefix[1];
  prefix[0] = g_argv0 && g_argv0[0] ? g_argv0 : path;
  g_plan.path = path;
  g_plan.prefix = prefix;
  g_plan.nprefix = 1;
}

#if MPROC__HAVE_PROCFS

/* The first object dl_iterate_phdr reports is the main program
 * (dl_iterate_phdr(3)), also when the loader was run explicitly; any
 * address in its first loaded segment finds its mapping. */
static int mproc__main_object_addr(struct dl_phdr_info *info, size_t size,
                                   void *data) {
  uintptr_t *addr = (uintptr_t *)data;
  int i;
  (void)size;
  for (i = 0; i < (int)info->dlpi_phnum; i++) {
    if (info->dlpi_phdr[i].p_type == PT_LOAD) {
      *addr = (uintptr_t)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
      break;
    }
  }
  return 1; /* stop after the first object */
}

/* The path of the file mapped at `addr`, from /proc/self/maps (the kernel
 * writes it absolute, with " (deleted)" if it was removed); malloc'ed. */
static char *mproc__mapped_path(uintptr_t addr) {
  FILE *f = fopen("/proc/self/maps", "re");
  char *line = NULL, *path = NULL;
  size_t cap = 0;
  if (!f)
    return NULL;
  while (!path && getline(&line, &cap, f) > 0) {
    unsigned long lo, hi;
    int off = 0;
    char *p;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2 ||
        off == 0 || addr < lo || addr >= hi)
      continue;
    p = line + off;
    p[strcspn(p, "\n")] = 0;
    if (p[0] == '/')
      path = strdup(p);
    break;
  }
  free(line);
  fclose(f);
  return path;
}

static int mproc__same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

/* Through the loader: /proc/self/exe (the loader itself) with the
 * arguments it was given before the program's path, which are the start
 * of /proc/self/cmdline (the command line the kernel exec'd; the loader
 * shifted argv so that main() sees the program's), then the program's
 * path.  The argument block lives as long as the process. */
static void mproc__plan_loader(char *prog) {
  FILE *f = fopen("/proc/self/cmdline", "re");
  char buf[4096], **args;
  size_t len = 0, i;
  int count = 0, keep, k;
  if (f) {
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
  }
  buf[len] = 0;
  for (i = 0; i < len; i++)
    count += buf[i] == 0;
  /* main() got the last g_argc of them; the rest belong to the loader.  If
   * that does not add up (a truncated read, a caller that passed its own
   * argc), keep only the loader's name. */
  keep = count - g_argc;
  if (keep < 1 || len == sizeof buf - 1)
    keep = 1;
  /* The pointers (the loader's, the program's, a spare), then the text. */
  args = (char **)malloc((size_t)(keep + 2) * sizeof(*args) + len + 1);
  if (!args) {
    free(prog);
    g_plan.error = ENOMEM;
    return;
  }
  args[0] = (char *)(args + keep + 2);
  memcpy(args[0], buf, len + 1);
  for (k = 1; k < keep; k++)
    args[k] = args[k - 1] + strlen(args[k - 1]) + 1;
  args[keep] = prog;
  args[keep + 1] = NULL;
  g_plan.path = "/proc/self/exe";
  g_plan.prefix = (const char **)args;
  g_plan.nprefix = keep + 1;
}

static void mproc__plan_linux(void) {
  uintptr_t addr = 0;
  char *prog = NULL, self[PATH_MAX];
  ssize_t n;
  dl_iterate_phdr(mproc__main_object_addr, &addr);
  prog = addr ? mproc__mapped_path(addr) : NULL;
  /* Unknown main program (no /proc/self/maps): trust /proc/self/exe. */
  if (!prog || mproc__same_file("/proc/self/exe", prog)) {
    free(prog);
    mproc__plan_direct("/proc/self/exe");
    return;
  }
  /* A program deleted or replaced since it started has no file at its
   * old path, but /proc/self/exe still names the image it runs. */
  n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = 0;
  if (strcmp(self, prog) == 0 && access(prog, F_OK) != 0) {
    free(prog);
    mproc__plan_direct("/proc/self/exe");
    return;
  }
  /* Started through a loader or valgrind. */
  if (access(prog, X_OK) == 0)
    mproc__plan_direct(prog);
  else if (access(prog, R_OK) == 0)
    mproc__plan_loader(prog);
  else {
    g_plan.error = errno ? errno : ENOENT;
    free(prog);
  }
}

#endif /* MPROC__HAVE_PROCFS */

#if MPROC__APPLE
/* macOS has no /proc: dyld records the path the kernel exec'd, which
 * _NSGetExecutablePath(3) returns (possibly through symbolic links or with
 * "." parts, hence realpath).  1 if the plan was made.  Compile-checked only
 * (scripts/check-macos.sh). */
static int mproc__plan_apple(void) {
  static char resolved[PATH_MAX];
  char small[PATH_MAX], *buf = small;
  uint32_t size = (uint32_t)sizeof small;
  int ok = 0;
  if (_NSGetExecutablePath(buf, &size) != 0) {
    /* Too small: size now says how much it needs. */
    buf = (char *)malloc(size);
    if (!buf || _NSGetExecutablePath(buf, &size) != 0) {
      free(buf);
      return 0;
    }
  }
  if (realpath(buf, resolved) && access(resolved, X_OK) == 0) {
    mproc__plan_direct(resolved);
    ok = 1;
  }
  if (buf != small)
    free(buf);
  return ok;
}
#endif

#if MPROC__HAVE_KERN_PROC_PATHNAME
/* FreeBSD without /proc (it is not mounted by default): the kernel's
 * record of the image it exec'd, sysctl(3) kern.proc.pathname of pid -1
 * (this process).  1 if the plan was made.  Not compiled against FreeBSD's
 * headers here (syntax-checked against a stub). */
static int mproc__plan_freebsd(void) {
  static char resolved[PATH_MAX];
  int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_PATHNAME, -1};
  size_t len = sizeof resolved;
  if (sysctl(mib, 4, resolved, &len, NULL, 0) != 0 || len == 0 ||
      access(resolved, X_OK) != 0)
    return 0;
  mproc__plan_direct(resolved);
  return 1;
}
#endif

static void mproc__plan_once(void) {
#if MPROC__HAVE_PROCFS
  if (access("/proc/self/exe", X_OK) == 0) {
    mproc__plan_linux();
    return;
  }
#elif MPROC__APPLE
  if (mproc__plan_apple())
    return;
#elif MPROC__HAVE_KERN_PROC_PATHNAME
  if (mproc__plan_freebsd())
    return;
#endif
  {
    static char resolved[PATH_MAX];
    if (g_argv0 && realpath(g_argv0, resolved))
      mproc__plan_direct(resolved);
    else if (g_argv0)
      mproc__plan_direct(g_argv0);
    else
      g_plan.error = ENOENT;
  }
}

const mproc__exe_plan *mproc__exe(void) {
  (void)pthread_once(&g_plan_once, mproc__plan_once);
  return &g_plan;
}
