/* Windows backend: how a child ended (plat/end.h).  mproc__plat_reap
 * reports terminate/kill/interrupt as -15/-9/-2 (Python's rule), an
 * NTSTATUS error or warning code (an unhandled exception: 0xC0000005) as
 * the negative int it casts to, and anything else as the exit code.  The
 * names are the meanings ntstatus.h documents, in words, for the codes a
 * crashing program ends with; FormatMessage could look them up in
 * ntdll.dll, but its text is localised and multi-line. */
#include "internal.h"

typedef struct mproc__status_name {
  uint32_t status;
  const char *name;
} mproc__status_name;

static const mproc__status_name mproc__status_names[] = {
    {0xC0000005u, "access violation"},
    {0xC0000006u, "in-page error"},
    {0xC000001Du, "illegal instruction"},
    {0xC0000025u, "noncontinuable exception"},
    {0xC000008Cu, "array bounds exceeded"},
    {0xC000008Du, "floating-point denormal operand"},
    {0xC000008Eu, "floating-point division by zero"},
    {0xC000008Fu, "floating-point inexact result"},
    {0xC0000090u, "floating-point invalid operation"},
    {0xC0000091u, "floating-point overflow"},
    {0xC0000092u, "floating-point stack check"},
    {0xC0000093u, "floating-point underflow"},
    {0xC0000094u, "integer division by zero"},
    {0xC0000095u, "integer overflow"},
    {0xC0000096u, "privileged instruction"},
    {0xC00000FDu, "stack overflow"},
    {0xC0000135u, "a DLL was not found"},
    {0xC0000139u, "an entry point was not found in a DLL"},
    {0xC0000142u, "a DLL failed to initialise"},
    {0xC000013Au, "ended by Ctrl+C"},
    {0xC0000374u, "heap corruption"},
    {0xC0000409u, "stack buffer overrun (fail fast)"},
    {0xC0000417u, "invalid C runtime parameter"},
    {0x80000002u, "datatype misalignment"},
    {0x80000003u, "breakpoint"},
    {0x80000004u, "single step"},
};

static const char *mproc__status_name_of(uint32_t status) {
  size_t i;
  for (i = 0; i < sizeof mproc__status_names / sizeof mproc__status_names[0];
       i++)
    if (mproc__status_names[i].status == status)
      return mproc__status_names[i].name;
  return "unknown NTSTATUS";
}

void mproc__plat_end_decode(int exitcode, mproc_end_info *info) {
  info->status = 0;
  info->code = -exitcode;
  switch (exitcode) {
  case -15:
    info->kind = MPROC_END_TERMINATED;
    info->name = "SIGTERM";
    return;
  case -9:
    info->kind = MPROC_END_TERMINATED;
    info->name = "SIGKILL";
    return;
  case -2:
    info->kind = MPROC_END_TERMINATED;
    info->name = "SIGINT";
    return;
  default:
    break;
  }
  /* Error (0xC...) and warning (0x8...) severities have the top bit set,
   * so they are the exit codes below -255 here. */
  if (exitcode < -255) {
    info->kind = MPROC_END_CRASH;
    info->code = 0;
    info->status = (uint32_t)exitcode;
    info->name = mproc__status_name_of(info->status);
    return;
  }
  info->kind = MPROC_END_EXIT;
  info->code = exitcode;
  info->name = "";
}
