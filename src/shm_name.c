/* Names of shared memory blocks, checked the same way on every platform so
 * a program that works on one does not fail on the other: POSIX shm_open
 * names may not contain '/', Windows kernel object names may not contain
 * '\\', and both have length limits. */
#include <string.h>

#include "ipc.h"

int mproc__seg_name_ok(const char *name) {
  size_t n, i;
  if (!name)
    return 0;
  n = strlen(name);
  if (n == 0 || n > MPROC_SHM_NAME_MAX || strcmp(name, ".") == 0 ||
      strcmp(name, "..") == 0)
    return 0;
  for (i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}
