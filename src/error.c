#include "internal.h"

static MPROC__THREAD_LOCAL int mproc__os_errno;

int mproc__os_fail(int code, int os_error) {
  mproc__os_errno = os_error;
  return code;
}

int mproc_os_error(void) { return mproc__os_errno; }

#define MPROC__ERRORS(X)                                                      \
  X(MPROC_OK, "success")                                                      \
  X(MPROC_EINVAL, "invalid argument")                                         \
  X(MPROC_ENOMEM, "out of memory")                                            \
  X(MPROC_ESTATE, "operation not valid in the object's current state")        \
  X(MPROC_ETIMEDOUT, "timed out")                                             \
  X(MPROC_ENOENTRY, "no entry of that name in the dispatch table")            \
  X(MPROC_ECLOSED, "object is closed")                                        \
  X(MPROC_EBUSY, "process is still running")                                  \
  X(MPROC_ENOTSUP, "not supported on this platform")                          \
  X(MPROC_EDAEMON, "daemonic processes are not allowed to have children")     \
  X(MPROC_ESPAWN, "child process could not be started")                       \
  X(MPROC_ESYS, "operating system error")                                     \
  X(MPROC_ETYPE, "argument has another type")                                 \
  X(MPROC_ENOTFOUND, "not found (no such argument or name)")                                      \
  X(MPROC_EPERM, "not permitted: only the creating process may do that, "    \
                 "or another user owns or may open the shared memory block, "  \
                 "or owns the socket or pipe")                                \
  X(MPROC_E2BIG, "over the size limit")                                       \
  X(MPROC_ENOINIT, "mproc_main() was not called")                             \
  X(MPROC_ERANGE, "result does not fit the buffer")                          \
  X(MPROC_EOWNERDEAD, "acquired, but the previous holder died holding it")   \
  X(MPROC_EFULL, "queue is full")                                             \
  X(MPROC_EEMPTY, "queue is empty")                                           \
  X(MPROC_EEOF, "end of file: the other end was closed")                      \
  X(MPROC_EBROKEN, "broken: the barrier, or a pipe's damaged message stream")  \
  X(MPROC_EOVERFLOW, "released more often than acquired")                     \
  X(MPROC_EEXIST, "a shared memory block of that name exists")              \
  X(MPROC_EWORKER, "the pool worker running the task died")                  \
  X(MPROC_EAUTH, "authentication failed: the peer does not know the authkey")

const char *mproc_strerror(int err) {
#define MPROC__MSG(code, msg)                                                 \
  if (err == code)                                                            \
    return msg;
  MPROC__ERRORS(MPROC__MSG)
#undef MPROC__MSG
  return "unknown error";
}

const char *mproc_err_name(int err) {
#define MPROC__NAME(code, msg)                                                \
  if (err == code)                                                            \
    return #code;
  MPROC__ERRORS(MPROC__NAME)
#undef MPROC__NAME
  return "MPROC_E_UNKNOWN";
}

const char *mproc_version_string(void) {
#define MPROC__STR2(x) #x
#define MPROC__STR(x) MPROC__STR2(x)
  return MPROC__STR(MPROC_VERSION_MAJOR) "." MPROC__STR(
      MPROC_VERSION_MINOR) "." MPROC__STR(MPROC_VERSION_PATCH);
}
