/* POSIX backend: which file a spawned child runs (see proc_exe.c). */
#ifndef MPROC_POSIX_PROC_EXE_H
#define MPROC_POSIX_PROC_EXE_H

typedef struct mproc__exe_plan {
  const char *path;    /* the file to exec; NULL when there is no way */
  const char **prefix; /* the child's argv before the child flag */
  int nprefix;
  int error; /* errno-style reason when path is NULL */
} mproc__exe_plan;

/* Records main()'s argc and argv[0]; called by mproc__plat_init. */
void mproc__exe_init(int argc, char **argv);

/* The plan, worked out at the first call (thread-safe) and fixed from then
 * on. */
const mproc__exe_plan *mproc__exe(void);

#endif
