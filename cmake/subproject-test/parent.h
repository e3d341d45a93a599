#ifndef PARENT_H
#define PARENT_H
#include <mproc.h>

/* mproc's version, through the parent library. */
const char *parent_mproc_version(void);

#endif
