/* The process pool (include/mproc/pool.h): what the rest of the library
 * needs to know about it, and what its files share: the scheduler and
 * results (src/pool.c), the worker side (src/pool_worker.c) and the wire
 * format between them (src/pool_wire.c). */
#ifndef MPROC_POOL_INTERNAL_H
#define MPROC_POOL_INTERNAL_H

#include "internal.h"

/* The pool's worker loop, found by name in every program without the table
 * listing it (src/process.c: mproc__find_entry). */
extern const mproc_entry mproc__pool_worker_entry;

/* An entry of the program's table (or the internal worker) by name; NULL if
 * there is none or mproc_main() was not called.  (src/process.c) */
const mproc_entry *mproc__entry_find(const char *name);

/* mproc_process_create() for the worker entry, which refuses it to everyone
 * else.  (src/process.c) */
int mproc__pool_worker_create(mproc_process **out, const mproc_args *args,
                              const mproc_process_options *opts);

/* ---- shared memory between the parent and each worker ----------------------
 * Each worker's part of the shared progress array: MPROC__PROG_STRIDE
 * 64-bit words (128 bytes: workers that store after every task must not
 * share a cache line, or an adjacent-line prefetch pair), where it stores
 * the chunk and item it is about to run, which slot of its result area it
 * builds its RESULTS message in and how many bytes of it are complete.
 * Its part of the shared areas array (MPROC__POOL_WORKER_SHM bytes) is
 * its result area, MPROC__POOL_NSLOTS slots of MPROC__POOL_RES_SLOT, then
 * as many input slots of MPROC__POOL_IN_SLOT.  The n-th TASKS message to
 * a worker uses slot n % NSLOTS of both: the parent writes its chunks into
 * the input slot (when they fit), the worker builds its results in the
 * result slot, and each message then only says how many bytes of the slot
 * it carries.  At most NSLOTS messages are in flight per worker, so a slot
 * is used again only once the message that used it before has been
 * answered and its results read (src/pool.c).
 *
 * Why four small slots rather than two big ones: the parent answers each
 * message with the next, so a worker runs dry when the parent is slow to
 * be scheduled; more messages in flight hide that, and smaller ones reach
 * the parent sooner (a map of 1000-item chunks measured 0.18x the hand-
 * written pool with two 256 KiB input slots, 0.30x with two of 32 KiB).
 * Each input slot is 64 KiB: a message of 8-byte inputs then carries 8
 * chunks of 1000, and a worker sleeps and is woken half as often as with
 * 32 KiB (the parent's CPU per task fell 15%); results up to twice the
 * inputs' size still fit in half a result slot (no early send).  128 KiB
 * halved the wake-ups again without saving more CPU, and a message's
 * results would then pass half a result slot as soon as they outgrow the
 * inputs. */
enum { MPROC__PROG_CHUNK = 0, MPROC__PROG_ITEM = 1, MPROC__PROG_KEPT = 2,
       MPROC__PROG_SLOT = 3, MPROC__PROG_START = 4, MPROC__PROG_TIMED = 5,
       MPROC__PROG_STRIDE = 16 };
/* Task timeouts (src/pool.c: mproc__watch_worker).  The parent stores 1 in
 * PROG_TIMED before it sends a worker its first chunk of a job with a
 * timeout (it stays set for that worker); from then on the worker stores,
 * around every task, its start time in PROG_START (after PROG_ITEM, so a
 * reader that sees the time sees the item) and 0 when it returns.  Zero
 * thus means "no task running"; the parent compares two reads of the word
 * around its reads of PROG_CHUNK and PROG_ITEM to know they belong to the
 * start it read.  Both clocks are mproc__plat_now(), which is system-wide
 * (CLOCK_MONOTONIC, QueryPerformanceCounter). */
uint64_t mproc__pw_time_word(double t);
double mproc__pw_word_time(uint64_t w);
#define MPROC__POOL_NSLOTS 4
/* 256 KiB: a worker sends its results early once they pass half a slot,
 * at a chunk's end, so every chunk has at least 128 KiB of the slot, where
 * a death does not lose them (README.md promises that much). */
#define MPROC__POOL_RES_SLOT ((size_t)256 << 10)
#define MPROC__POOL_IN_SLOT ((size_t)64 << 10)
#define MPROC__POOL_AREA (MPROC__POOL_NSLOTS * MPROC__POOL_RES_SLOT)
#define MPROC__POOL_WORKER_SHM                                                \
  (MPROC__POOL_AREA + MPROC__POOL_NSLOTS * MPROC__POOL_IN_SLOT)

/* ---- the wire format (src/pool_wire.c, which describes it) ---------------- */

enum { MPROC__PM_TASKS = 1, MPROC__PM_STOP = 2, MPROC__PM_READY = 3,
       MPROC__PM_RESULTS = 4, MPROC__PM_INITFAIL = 5 };

#define MPROC__PW_NAME_MAX 4096 /* longest task name */
#define MPROC__PW_MSG_HEAD 12   /* TASKS and RESULTS: kind, slot, shared */
#define MPROC__PW_TASK_HEAD 20  /* a TASKS chunk's header, without its name */
#define MPROC__PW_RESULT_HEAD 12 /* a RESULTS chunk's header */
#define MPROC__PW_RUN_HEAD 12    /* a run's header */
/* A chunk's input size that says each input carries its own length. */
#define MPROC__PW_VAR 0xffffffffu

/* A run of results: n items in a row with the same status and result
 * length, their results (len bytes each) one after the other at data. */
typedef struct mproc__pw_run {
  uint32_t n, len;
  int status;
  const unsigned char *data;
} mproc__pw_run;

/* Grow *buf to at least `need` bytes (doubling).  0 or MPROC_ENOMEM. */
int mproc__pool_grow(unsigned char **buf, size_t *cap, size_t need);
/* Receive one message into *buf, growing it as needed. */
int mproc__pool_recv(mproc_conn *c, unsigned char **buf, size_t *cap,
                     size_t *len, double timeout);

/* Writers into room the caller has; each returns the bytes written.
 * `size` is the length of every input of the chunk, or MPROC__PW_VAR. */
size_t mproc__pw_task_head(unsigned char *p, uint64_t id, const char *name,
                           size_t name_len, size_t nitems, uint32_t size);
/* An input of a chunk of MPROC__PW_VAR size (u32 len, bytes). */
size_t mproc__pw_input(unsigned char *p, const void *data, size_t len);
/* n inputs of `size` bytes each, one after the other: one copy per run of
 * inputs that lie next to each other in memory. */
size_t mproc__pw_inputs_fixed(unsigned char *p, const mproc_bytes *in,
                              size_t n, size_t size);
size_t mproc__pw_run_head(unsigned char *p, uint32_t n, int status,
                          uint32_t len);
/* A TASKS or RESULTS message's head: its kind, the slot it uses, and how
 * many bytes of its chunks are in that slot (the rest follow inline). */
size_t mproc__pw_msg_head(unsigned char *p, uint32_t kind, uint32_t slot,
                          uint32_t shared);

/* Start reading message m (n bytes): returns its kind (0 when it is too
 * short for one), with r placed after it. */
uint32_t mproc__pw_rd_kind(mproc__rd *r, const unsigned char *m, size_t n);
/* Readers: 0, or MPROC_EINVAL when the bytes are damaged or cut short
 * (then r->bad is set and every later read fails too). */
int mproc__pw_rd_task_head(mproc__rd *r, uint64_t *id,
                           const unsigned char **name, uint32_t *name_len,
                           uint32_t *nitems, uint32_t *size);
/* The nitems inputs of a chunk of fixed `size`, at *base, all at once. */
int mproc__pw_rd_inputs_fixed(mproc__rd *r, uint32_t nitems, uint32_t size,
                              const unsigned char **base);
/* A task's input: `size` bytes, or (u32 len, bytes) for MPROC__PW_VAR. */
int mproc__pw_rd_input(mproc__rd *r, uint32_t size,
                       const unsigned char **data, uint32_t *len);
int mproc__pw_rd_result_head(mproc__rd *r, uint64_t *id, uint32_t *nitems);
/* The rest of a TASKS or RESULTS head (r after its kind): the slot (below
 * MPROC__POOL_NSLOTS) and the shared length, at most `room`. */
int mproc__pw_rd_msg_head(mproc__rd *r, uint32_t *slot, uint32_t *shared,
                          size_t room);
/* A run of at most `max` items.  With cut_ok (a dead worker's result
 * area, which may end inside its last run) a run whose results are not all
 * there is cut to the whole results present (possibly none) and ends the
 * reading. */
int mproc__pw_rd_run(mproc__rd *r, uint32_t max, int cut_ok,
                     mproc__pw_run *run);

#endif
