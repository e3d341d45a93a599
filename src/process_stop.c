/* Stopping a child by an escalation chain (mproc_process_stop): reproc's
 * stop actions over an array of steps, with Python's interrupt() as a step.
 * Built only from the public calls (join, interrupt, terminate, kill), so it
 * inherits their rules: an ended child is never signalled (its pid may be a
 * stranger's by now), and every wait blocks in the kernel on the child's
 * sentinel until its deadline. */
#include <limits.h>
#include <math.h>

#include "internal.h"

/* Everything is checked before the first action is sent, so a bad step at
 * the end of the chain cannot leave a child half stopped. */
static int mproc__stop_check(const mproc_process *p,
                             const mproc_stop_step *steps, size_t nsteps) {
  size_t i;
  int tree_refused = 0;
  if (!p || !steps || nsteps == 0 || nsteps > (size_t)INT_MAX)
    return MPROC_EINVAL;
  for (i = 0; i < nsteps; i++) {
    /* As an int: the caller's value may be outside the enumeration. */
    int action = (int)steps[i].action;
    if (action < MPROC_STOP_WAIT || action > MPROC_STOP_KILL_TREE)
      return MPROC_EINVAL;
    if (isnan(steps[i].timeout))
      return MPROC_EINVAL;
    /* Set at create and never changed: read without the lock.  Refused
     * here, not at the step, so no earlier step has been sent. */
    if (action >= MPROC_STOP_TERMINATE_TREE && !p->new_group)
      tree_refused = 1;
  }
  /* join() on the parent's object waits for the parent; stopping it (or
   * this process) is not what a chain of a child's steps can mean.  The
   * kind never changes after creation, so it is read without the lock. */
  if (p->kind != MPROC__K_CHILD)
    return MPROC_EPERM;
  return tree_refused ? MPROC_ESTATE : MPROC_OK;
}

static int mproc__stop_act(mproc_process *p, mproc_stop_action action) {
  switch (action) {
  case MPROC_STOP_INTERRUPT:
    return mproc_process_interrupt(p);
  case MPROC_STOP_TERMINATE:
    return mproc_process_terminate(p);
  case MPROC_STOP_KILL:
    return mproc_process_kill(p);
  case MPROC_STOP_TERMINATE_TREE:
    return mproc_process_terminate_tree(p);
  case MPROC_STOP_KILL_TREE:
    return mproc_process_kill_tree(p);
  default:
    return MPROC_OK; /* MPROC_STOP_WAIT: nothing to send */
  }
}

/* The child has ended and is reaped: record which step saw it. */
static int mproc__stop_ended(mproc_process *p, int step,
                             mproc_stop_result *how) {
  int code = 0;
  int rc = mproc_process_exitcode(p, &code);
  if (rc < 0)
    return rc; /* closed by another thread meanwhile */
  if (how) {
    how->step = step;
    how->exitcode = code;
  }
  return MPROC_OK;
}

int mproc_process_stop(mproc_process *p, const mproc_stop_step *steps,
                       size_t nsteps, mproc_stop_result *how) {
  size_t i;
  int rc = mproc__stop_check(p, steps, nsteps);
  /* What a caller that ignores the result reads: no step, no exit code. */
  if (how) {
    how->step = -1;
    how->exitcode = 0;
  }
  if (rc < 0)
    goto finish;
  /* A zero join reaps a child that has already ended (nothing is sent to
   * it then) and gives the state errors: ESTATE before start, ECLOSED,
   * EPERM outside the creator. */
  rc = mproc_process_join(p, 0);
  if (rc == MPROC_OK) {
    rc = mproc__stop_ended(p, -1, how);
    goto finish;
  }
  if (rc != MPROC_ETIMEDOUT)
    goto finish;
  for (i = 0; i < nsteps; i++) {
    rc = mproc__stop_act(p, steps[i].action);
    if (rc < 0)
      goto finish;
    /* A negative timeout waits without limit, as join's does. */
    rc = mproc_process_join(p, steps[i].timeout);
    if (rc == MPROC_OK) {
      rc = mproc__stop_ended(p, (int)i, how);
      goto finish;
    }
    if (rc != MPROC_ETIMEDOUT)
      goto finish;
  }
finish:
  return rc;
}
