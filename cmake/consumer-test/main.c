/* Downstream smoke test: compiles against the installed header and links the
 * installed library through find_package(mproc) / pkg-config. */
#include <mproc.h>
#include <stdio.h>

int main(void) {
  const char *version = mproc_version_string();
  const char *ok = mproc_strerror(0);
  if (version == NULL || ok == NULL)
    return 1;
  printf("mproc_version_string: %s\nmproc_strerror(0): %s\n", version, ok);
  return 0;
}
