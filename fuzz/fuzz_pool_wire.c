/* libFuzzer target: the pool's message readers (src/pool_wire.c), which
 * read what a worker sent and what a dead worker left in its result area,
 * and, in the worker, what the parent sent.  Damage must give an error,
 * never a crash or a read past the bytes given.
 *
 * Each input is read three ways, as the pool walks messages: as a TASKS
 * message (chunk headers and inputs), as a RESULTS message twice (chunk
 * headers and runs of results: whole, as a message must be, and possibly
 * cut short inside a run, as in a result area), and, rebuilt with the
 * writers from the input's bytes and then cut at a place the input
 * chooses, as a TASKS message again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const unsigned char *d, uint32_t len) {
  if (len)
    (void)((const volatile unsigned char *)d)[len - 1];
}

static void walk_tasks(const unsigned char *m, size_t n) {
  mproc__rd r;
  (void)mproc__pw_rd_kind(&r, m, n);
  while (r.left > 0) {
    const unsigned char *name, *in;
    uint64_t id;
    uint32_t nlen, nitems, size, k, len;
    if (mproc__pw_rd_task_head(&r, &id, &name, &nlen, &nitems, &size) < 0)
      return;
    touch(name, nlen);
    if (size != MPROC__PW_VAR && nitems % 2) { /* as the worker reads them */
      if (mproc__pw_rd_inputs_fixed(&r, nitems, size, &in) < 0)
        return;
      touch(in, nitems * size);
      continue;
    }
    for (k = 0; k < nitems; k++) {
      if (mproc__pw_rd_input(&r, size, &in, &len) < 0)
        return;
      touch(in, len);
    }
  }
}

static void walk_results(const unsigned char *m, size_t n, int cut_ok) {
  mproc__rd r;
  (void)mproc__pw_rd_kind(&r, m, n);
  while (r.left > 0) {
    uint64_t id;
    uint32_t nitems, k = 0;
    if (mproc__pw_rd_result_head(&r, &id, &nitems) < 0)
      return;
    while (k < nitems && r.left > 0) {
      mproc__pw_run run;
      if (mproc__pw_rd_run(&r, nitems - k, cut_ok, &run) < 0)
        return;
      if (run.n)
        touch(run.data, run.n * run.len);
      k += run.n;
    }
  }
}

/* A valid TASKS message of up to three chunks cut from the input, then
 * truncated where the input's first byte says. */
static void rebuilt(const uint8_t *data, size_t size) {
  size_t cap = 4 + 3 * (MPROC__PW_TASK_HEAD + 8) + 2 * size + 16, len = 4;
  mproc_bytes two[2];
  size_t at = 1, c;
  unsigned char *m = (unsigned char *)malloc(cap);
  if (!m || size < 2) {
    free(m);
    return;
  }
  mproc__wr_put32(m, MPROC__PM_TASKS);
  for (c = 0; c < 3 && at < size; c++) {
    size_t take = (size - at) / 2, nitems = take ? 2 : 1;
    if (c == 1 && take / 2 > 0) { /* two inputs of one size, side by side */
      two[0].data = data + at;
      two[1].data = data + at + take / 2;
      two[0].len = two[1].len = take / 2;
      len +=
          mproc__pw_task_head(m + len, c + 1, "t", 1, 2, (uint32_t)(take / 2));
      len += mproc__pw_inputs_fixed(m + len, two, 2, take / 2);
      at += take + 1;
      continue;
    }
    len += mproc__pw_task_head(m + len, c + 1, "t", 1, nitems, MPROC__PW_VAR);
    len += mproc__pw_input(m + len, data + at, take);
    if (nitems == 2)
      len += mproc__pw_input(m + len, data + at + take, 0);
    at += take + 1;
  }
  walk_tasks(m, len - (len > 4 ? data[0] % (len - 4) : 0));
  free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *copy = (unsigned char *)malloc(size ? size : 1);
  if (!copy)
    return 0;
  memcpy(copy, data, size);
  walk_tasks(copy, size);
  walk_results(copy, size, 0);
  walk_results(copy, size, 1);
  free(copy);
  rebuilt(data, size);
  return 0;
}
