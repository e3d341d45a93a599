/* A pool whose workers are MPI ranks (src/pool_mpi.h), in a build without
 * MPI (-DMPROC_WITH_MPI=OFF, the default): mproc_main ignores mpiexec,
 * and an MPROC_POOL_MPI pool is MPROC_ENOTSUP. */
#include "pool_mpi.h"

int mproc__mpi_main(void) { return MPROC_OK; }

int mproc__mpi_pool_check(const mproc_pool_options *opts, int *n) {
  (void)opts;
  (void)n;
  return MPROC_ENOTSUP;
}

int mproc__mpi_pool_open(mproc__mpi_pool **out, int n, const char *init,
                         const unsigned char *areas) {
  (void)out;
  (void)n;
  (void)init;
  (void)areas;
  return MPROC_ENOTSUP;
}

int mproc__mpi_pool_attach(mproc__mpi_pool *m, int i, mproc_conn **conn) {
  (void)m;
  (void)i;
  (void)conn;
  return MPROC_ENOTSUP;
}

void mproc__mpi_pool_close(mproc__mpi_pool *m) { (void)m; }

int mproc_pool_mpi_workers(void) {
  return mproc_current_process() ? MPROC_ENOTSUP : MPROC_ENOINIT;
}
