#include <parent.h>
#include <stdio.h>

int main(void) {
  const char *v = parent_mproc_version();
  if (v == NULL)
    return 1;
  printf("mproc %s through parent\n", v);
  return 0;
}
