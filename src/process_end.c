/* End reports: why a child ended (mproc_process_end) and the one line that
 * says so (mproc_end_describe).  What an exit code means on this OS comes
 * from the backend (plat/end.h); a bootstrap failure is the note the child
 * left in its result block (src/process_result.c), since its exit code,
 * MPROC_EXIT_BOOTSTRAP, is also a value an entry may return.
 *
 * When stderr was captured (src/process_output.c) the report also holds
 * its last lines, and the text shows them after the reason. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *mproc__boot_reason_text(uint32_t reason) {
  switch (reason) {
  case MPROC__BOOT_NO_ENTRY:
    return "the child's dispatch table has no entry of that name";
  case MPROC__BOOT_BAD_ARGS:
    return "the child could not decode its arguments";
  case MPROC__BOOT_SETUP:
    return "the child could not take over its handles";
  default:
    return "the child ran out of memory";
  }
}

int mproc_process_end(mproc_process *p, mproc_end_info *info) {
  int code, rc;
  uint32_t boot;
  if (!p || !info)
    return MPROC_EINVAL;
  if (p->kind != MPROC__K_CHILD)
    return p->state == MPROC__P_CLOSED ? MPROC_ECLOSED : MPROC_EPERM;
  rc = mproc_process_exitcode(p, &code); /* reaps; checks creator/closed */
  if (rc <= 0)
    return rc == 0 ? MPROC_ESTATE : rc;
  memset(info, 0, sizeof *info);
  info->exitcode = code;
  info->pid = p->pid;
  mproc__plat_end_decode(code, info);
  if (code == MPROC_EXIT_BOOTSTRAP &&
      (boot = mproc__result_boot_reason(p)) != 0) {
    info->kind = MPROC_END_BOOTSTRAP;
    info->name = mproc__boot_reason_text(boot);
  }
  mproc__capture_tail(p, info->stderr_tail);
  return MPROC_OK;
}

/* Append len bytes of s at offset `at` of the text being built, the way
 * snprintf cuts (at may already be past cap); returns len. */
static int mproc__describe_put(char *buf, size_t cap, int at, const char *s,
                               size_t len) {
  if (at >= 0 && (size_t)at < cap) {
    size_t room = cap - (size_t)at - 1, k = len < room ? len : room;
    memcpy(buf + at, s, k);
    buf[(size_t)at + k] = '\0';
  }
  return (int)len;
}

/* The stderr lines after the reason, each on a line of its own after
 * "  | "; n is the text's length so far, the new one is returned.  The
 * tail is read up to its NUL or its array's end, whichever comes first (a
 * report filled by hand may not end it). */
static int mproc__describe_tail(const char *tail, char *buf, size_t cap,
                                int n) {
  static const char head[] = "; last lines of stderr:";
  const char *nul = (const char *)memchr(tail, '\0', MPROC_END_TAIL_MAX + 1);
  const char *s = tail, *end = nul ? nul : tail + MPROC_END_TAIL_MAX;
  if (s == end)
    return n;
  n += mproc__describe_put(buf, cap, n, head, sizeof head - 1);
  while (s < end) {
    const char *e = (const char *)memchr(s, '\n', (size_t)(end - s));
    size_t len = e ? (size_t)(e - s) : (size_t)(end - s);
    n += mproc__describe_put(buf, cap, n, "\n  | ", 5);
    n += mproc__describe_put(buf, cap, n, s, len);
    s += len + (e != NULL);
  }
  return n;
}

int mproc_end_describe(const mproc_end_info *info, char *buf, size_t cap) {
  int n;
  const char *name;
  if (!info || (cap && !buf))
    return MPROC_EINVAL;
  name = info->name ? info->name : "";
  switch (info->kind) {
  case MPROC_END_EXIT:
    n = snprintf(buf, cap, "exited with code %d", info->code);
    break;
  case MPROC_END_SIGNAL:
    n = snprintf(buf, cap, "killed by signal %d (%s)", info->code, name);
    break;
  case MPROC_END_TERMINATED:
    n = snprintf(buf, cap,
                 "terminated by mproc_process_%s() (as signal %d, %s)",
                 info->code == 9   ? "kill"
                 : info->code == 2 ? "interrupt"
                                   : "terminate",
                 info->code, name);
    break;
  case MPROC_END_CRASH:
    n = snprintf(buf, cap, "crashed: %s (0x%08lX)", name,
                 (unsigned long)info->status);
    break;
  case MPROC_END_BOOTSTRAP:
    n = snprintf(buf, cap, "bootstrap failed: %s (exit code %d)", name,
                 info->code);
    break;
  default:
    return MPROC_EINVAL;
  }
  if (n < 0)
    return MPROC_EINVAL;
  return mproc__describe_tail(info->stderr_tail, buf, cap, n);
}
