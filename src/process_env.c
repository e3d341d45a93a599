/* A child's environment, working directory and standard streams
 * (mproc_process_options' env_clear, env, cwd and stdio): the copies a
 * process object keeps, the files a start opens for the streams, and the
 * merge of a base environment with the changes, which the POSIX backend
 * runs on `environ` (the Windows one merges UTF-16 blocks its own way). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Length of the name of "NAME=VALUE" (or of a bare "NAME"). */
static size_t mproc__env_name_len(const char *entry) {
  const char *eq = strchr(entry, '=');
  return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* `fold`: ASCII letters compare without case (Windows names). */
static int mproc__env_same_name(const char *a, const char *b, int fold) {
  size_t n = mproc__env_name_len(a), i;
  if (n != mproc__env_name_len(b))
    return 0;
  for (i = 0; i < n; i++) {
    char x = a[i], y = b[i];
    if (fold && x >= 'a' && x <= 'z')
      x = (char)(x - 'a' + 'A');
    if (fold && y >= 'a' && y <= 'z')
      y = (char)(y - 'a' + 'A');
    if (x != y)
      return 0;
  }
  return 1;
}

/* The stdio options, checked, their paths copied. */
static int mproc__stdio_copy(mproc_process *p,
                             const mproc_process_options *opts) {
  int i;
  for (i = 0; i < 3; i++) {
    const mproc_stdio *s = &opts->stdio[i];
    if (s->mode < MPROC_STDIO_INHERIT || s->mode > MPROC_STDIO_CAPTURE)
      return MPROC_EINVAL;
    if (s->mode == MPROC_STDIO_CAPTURE && i == 0)
      return MPROC_EINVAL; /* a child's input is not output to capture */
    if ((s->mode == MPROC_STDIO_FILE || s->mode == MPROC_STDIO_APPEND) &&
        (!s->path || !*s->path))
      return MPROC_EINVAL;
    if (s->mode == MPROC_STDIO_HANDLE && s->handle == MPROC_INVALID_HANDLE)
      return MPROC_EINVAL;
    p->stdio_mode[i] = s->mode;
    p->stdio_user[i] = s->handle;
    if ((s->mode == MPROC_STDIO_FILE || s->mode == MPROC_STDIO_APPEND) &&
        !(p->stdio_path[i] = mproc__strdup(s->path)))
      return MPROC_ENOMEM;
  }
  return MPROC_OK;
}

int mproc__env_copy(mproc_process *p, const mproc_process_options *opts) {
  size_t n = 0, i;
  int rc = MPROC_OK;
  if (!opts)
    return MPROC_OK;
  if (opts->env_clear != 0 && opts->env_clear != 1)
    return MPROC_EINVAL;
  if (opts->no_window != 0 && opts->no_window != 1)
    return MPROC_EINVAL;
  p->no_window = opts->no_window;
  p->env_clear = opts->env_clear;
  rc = mproc__stdio_copy(p, opts);
  if (rc < 0)
    return rc;
  if (opts->cwd && !(p->cwd = mproc__strdup(opts->cwd)))
    return MPROC_ENOMEM;
  if (!opts->env)
    return MPROC_OK;
  while (opts->env[n])
    n++;
  p->env = (char **)calloc(n + 1, sizeof(*p->env));
  if (!p->env)
    return MPROC_ENOMEM;
  for (i = 0; i < n && rc == MPROC_OK; i++) {
    /* An empty name would make an entry no lookup can find. */
    if (mproc__env_name_len(opts->env[i]) == 0)
      rc = MPROC_EINVAL;
    else if (!(p->env[i] = mproc__strdup(opts->env[i])))
      rc = MPROC_ENOMEM;
  }
  return rc; /* on failure the caller frees p, and with it the copies */
}

int mproc__stdio_open(mproc_process *p) {
  int i, os_error = 0;
  for (i = 0; i < 3; i++) {
    int mode = p->stdio_mode[i];
    if (mode == MPROC_STDIO_INHERIT)
      continue;
    if (mode == MPROC_STDIO_HANDLE) {
      p->stdio_h[i] = p->stdio_user[i];
      continue;
    }
    if (mode == MPROC_STDIO_CAPTURE) {
      int rc = mproc__capture_open(p, i); /* sets p->stdio_h[i] */
      if (rc < 0) {
        mproc__stdio_close(p);
        return rc;
      }
      continue;
    }
    p->stdio_h[i] = mproc__plat_open_stdio(i, p->stdio_path[i],
                                           mode == MPROC_STDIO_APPEND,
                                           &os_error);
    if (p->stdio_h[i] == MPROC_INVALID_HANDLE) {
      mproc__stdio_close(p);
      return mproc__os_fail(MPROC_ESPAWN, os_error);
    }
  }
  return MPROC_OK;
}

void mproc__stdio_close(mproc_process *p) {
  int i;
  for (i = 0; i < 3; i++) {
    /* The caller's handle stays the caller's; a capture's write end is
     * the capture's. */
    if (p->stdio_mode[i] == MPROC_STDIO_CAPTURE)
      mproc__capture_passed(p->capture[i]);
    else if (p->stdio_mode[i] != MPROC_STDIO_HANDLE)
      mproc__plat_close_handle(p->stdio_h[i]);
    p->stdio_h[i] = MPROC_INVALID_HANDLE;
  }
}

void mproc__env_free(mproc_process *p) {
  size_t i;
  for (i = 0; i < 3; i++) {
    free(p->stdio_path[i]);
    p->stdio_path[i] = NULL;
  }
  for (i = 0; p->env && p->env[i]; i++)
    free(p->env[i]);
  free(p->env);
  free(p->cwd);
  p->env = NULL;
  p->cwd = NULL;
}

int mproc__env_changed(const mproc_process *p) {
  return p->env_clear || p->env;
}

/* Is `entry` of the base replaced or removed by one of the changes? */
static int mproc__env_overridden(const char *entry, char *const *changes,
                                 int fold) {
  size_t i;
  for (i = 0; changes && changes[i]; i++)
    if (mproc__env_same_name(entry, changes[i], fold))
      return 1;
  return 0;
}

char **mproc__env_merge(char *const *base, char *const *changes, int fold) {
  size_t nb = 0, nc = 0, n = 0, i, j;
  char **out;
  while (base && base[nb])
    nb++;
  while (changes && changes[nc])
    nc++;
  out = (char **)malloc((nb + nc + 1) * sizeof(*out));
  if (!out)
    return NULL;
  for (i = 0; i < nb; i++)
    if (!mproc__env_overridden(base[i], changes, fold))
      out[n++] = base[i];
  for (i = 0; i < nc; i++) {
    if (!strchr(changes[i], '='))
      continue; /* a removal */
    /* The last of several entries for one name wins, as with setenv. */
    for (j = i + 1; j < nc; j++)
      if (mproc__env_same_name(changes[i], changes[j], fold))
        break;
    if (j == nc)
      out[n++] = changes[i];
  }
  out[n] = NULL;
  return out;
}
