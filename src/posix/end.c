/* POSIX backend: how a child ended (plat/end.h).  A negative exit code is
 * -N for signal N (mproc__plat_reap).  Signal numbers differ between
 * systems (SIGBUS is 7 on Linux, 10 on macOS and the BSDs), so the table is
 * built from this system's <signal.h> rather than written out by number,
 * and strsignal() is not used: its text is localised, differs between
 * libcs, and is not thread-safe everywhere. */
#include <signal.h>

#include "internal.h"

typedef struct mproc__signame {
  int signo;
  const char *name;
} mproc__signame;

#define MPROC__SIG(s)                                                          \
  { s, #s }
static const mproc__signame mproc__signames[] = {
    MPROC__SIG(SIGHUP),    MPROC__SIG(SIGINT),  MPROC__SIG(SIGQUIT),
    MPROC__SIG(SIGILL),    MPROC__SIG(SIGTRAP), MPROC__SIG(SIGABRT),
    MPROC__SIG(SIGBUS),    MPROC__SIG(SIGFPE),  MPROC__SIG(SIGKILL),
    MPROC__SIG(SIGUSR1),   MPROC__SIG(SIGSEGV), MPROC__SIG(SIGUSR2),
    MPROC__SIG(SIGPIPE),   MPROC__SIG(SIGALRM), MPROC__SIG(SIGTERM),
    MPROC__SIG(SIGCHLD),   MPROC__SIG(SIGCONT), MPROC__SIG(SIGSTOP),
    MPROC__SIG(SIGTSTP),   MPROC__SIG(SIGTTIN), MPROC__SIG(SIGTTOU),
    MPROC__SIG(SIGURG),    MPROC__SIG(SIGXCPU), MPROC__SIG(SIGXFSZ),
    MPROC__SIG(SIGVTALRM), MPROC__SIG(SIGPROF), MPROC__SIG(SIGSYS),
#ifdef SIGWINCH
    MPROC__SIG(SIGWINCH),
#endif
#ifdef SIGIO
    MPROC__SIG(SIGIO),
#endif
#ifdef SIGPWR
    MPROC__SIG(SIGPWR),
#endif
#ifdef SIGSTKFLT
    MPROC__SIG(SIGSTKFLT),
#endif
#ifdef SIGEMT
    MPROC__SIG(SIGEMT),
#endif
#ifdef SIGINFO
    MPROC__SIG(SIGINFO),
#endif
};
#undef MPROC__SIG

static const char *mproc__signal_name(int signo) {
  size_t i;
  for (i = 0; i < sizeof mproc__signames / sizeof mproc__signames[0]; i++)
    if (mproc__signames[i].signo == signo)
      return mproc__signames[i].name;
#ifdef SIGRTMIN
  /* Real-time signals have no fixed names (glibc reserves the first few). */
  if (signo >= SIGRTMIN && signo <= SIGRTMAX)
    return "a real-time signal";
#endif
  return "unknown signal";
}

void mproc__plat_end_decode(int exitcode, mproc_end_info *info) {
  info->status = 0;
  if (exitcode >= 0) {
    info->kind = MPROC_END_EXIT;
    info->code = exitcode;
    info->name = "";
    return;
  }
  info->kind = MPROC_END_SIGNAL;
  info->code = -exitcode;
  info->name = mproc__signal_name(-exitcode);
}
