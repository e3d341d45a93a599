/* A pool whose workers are MPI ranks (include/mproc/pool.h, "MPI ranks as
 * workers"): the seam between the pool (src/pool.c), mproc_main
 * (src/process.c) and the MPI transport.  src/mpi/pool_mpi.c implements it
 * with MPI (built with -DMPROC_WITH_MPI=ON); src/pool_mpi_none.c, built
 * otherwise, answers MPROC_ENOTSUP.
 *
 * The pool itself does not know MPI: each worker rank appears to the
 * handler thread as a worker without a process, whose connection leads to
 * a bridge in this process instead of a child.  The bridge forwards the
 * pool's messages over MPI to the rank (expanding the slot notes of
 * src/pool_wire.c into whole messages, since a rank shares no memory with
 * rank 0), where the same bridge in reverse feeds the pool's ordinary
 * worker loop (src/pool_worker.c).  The handler then schedules, settles
 * results and reports errors exactly as for local workers. */
#ifndef MPROC_POOL_MPI_H
#define MPROC_POOL_MPI_H

#include "internal.h"

typedef struct mproc__mpi_pool mproc__mpi_pool;

/* Called by mproc_main in a process that is not an mproc child: when the
 * program runs under mpiexec (see mproc__mpi_detected in pool_mpi.c), MPI
 * is initialised; on ranks 1..N-1 the call serves pools until rank 0 ends
 * and then exits the process (it does not return).  0 on rank 0 and
 * outside MPI; a negative code if MPI could not be initialised. */
int mproc__mpi_main(void);

/* Checks an MPI pool's options and gives its number of workers in *n
 * (opts->processes, or every worker rank when 0).  MPROC_ENOTSUP without
 * MPI, when not started by mpiexec with 2 ranks or more, or for an option
 * ranks cannot honour (initargs, maxtasksperchild, task_timeout);
 * MPROC_EINVAL for more processes than worker ranks. */
int mproc__mpi_pool_check(const mproc_pool_options *opts, int *n);

/* Claims worker ranks 1..n for a pool whose initializer is `init` (NULL:
 * none); `areas` is the pool's shared areas (MPROC__POOL_WORKER_SHM bytes
 * per worker: the bridge reads the input slots from it).  MPROC_EBUSY
 * while another MPI pool holds the ranks, MPROC_ENOMEM. */
int mproc__mpi_pool_open(mproc__mpi_pool **out, int n, const char *init,
                         const unsigned char *areas);

/* Starts a session on worker i's rank (it runs the initializer and says
 * READY) and gives the connection the handler talks to it through.  A
 * previous session of that worker must have ended (its connection freed,
 * which tells the rank to stop).  0, MPROC_ENOMEM, MPROC_ESYS. */
int mproc__mpi_pool_attach(mproc__mpi_pool *m, int i, mproc_conn **conn);

/* Waits until every rank has ended its session (each was told to stop when
 * the handler freed its connection) and frees the ranks for the next MPI
 * pool.  NULL is a no-op. */
void mproc__mpi_pool_close(mproc__mpi_pool *m);

#endif
