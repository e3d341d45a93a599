#include "parent.h"

const char *parent_mproc_version(void) { return mproc_version_string(); }
