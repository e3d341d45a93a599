/* mirror.h: the printout of the tutorial examples (process_subclass.c,
 * semaphore.c, shared_memory.c, main_guard.c): each step's Python line
 * beside the C that does the same thing.  Nothing here is part of mproc.
 */
#ifndef MPROC_EXAMPLE_MIRROR_H
#define MPROC_EXAMPLE_MIRROR_H

#include <stdio.h>

#include <mproc.h>

/* Prints a Python line beside the C that does the same thing. */
static void mirror(const char *python, const char *c) {
  printf("  %-44s | %s\n", python, c);
}

/* The start method in use, and the two columns' titles.  Call it after
 * mproc_main(): only the parent gets there. */
static void mirror_begin(void) {
  printf("start method: %s\n",
         mproc_get_start_method() == MPROC_START_FORK ? "fork" : "spawn");
  mirror("Python", "C");
}

#endif
