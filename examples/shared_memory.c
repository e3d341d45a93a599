/* shared_memory.c: a named shared memory block between two processes.
 *
 * The Python it mirrors (multiprocessing.shared_memory):
 *
 *     def writer(name):
 *         shm = SharedMemory(name=name)           # attach by name
 *         shm.buf[:6] = b'hello\0'
 *         for i in range(8): struct.pack_into('i', shm.buf, 8 + 4*i, i*i)
 *         shm.close()
 *
 *     if __name__ == '__main__':
 *         shm = SharedMemory(create=True, size=64, name=...)
 *         p = Process(target=writer, args=(shm.name,))    # only the name
 *         p.start(); p.join()
 *         print(bytes(shm.buf[:5]), [struct.unpack_from('i', shm.buf, 8 + 4*i)[0]
 *                                     for i in range(8)])
 *         shm.close(); shm.unlink()
 *
 * The parent creates the block under a name and hands the child nothing but
 * that name (a string), as an unrelated program would learn it; the child
 * attaches by name and writes, the parent reads what it wrote.  A block may
 * also be passed as an object argument (mproc_args_add_object), which needs
 * no name at all: see producer_consumer.c for objects as arguments.
 *
 * Names are private to this user: mproc_shm_create() makes a block only this
 * user may open, and mproc_shm_attach() refuses anything else under the name.
 * The creator's mproc_shm_free() removes the name (Python's unlink()) unless
 * mproc_shm_keep() was called; here it is removed explicitly, as in Python.
 *
 * Each step prints the Python line it mirrors next to the C that does it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

#include "mirror.h"

#define NSQUARES 8

/* The block's layout: a greeting, then the squares (Python's offsets 0, 8). */
typedef struct shared_block {
  char greeting[8];
  int32_t squares[NSQUARES];
} shared_block;

/* The child: attach by name, write, detach. */
static int writer(const mproc_args *args) {
  const char *name = NULL;
  mproc_shm *shm = NULL;
  shared_block *b;
  int i, rc;
  if ((rc = mproc_arg_str(args, 0, &name)) < 0 ||
      (rc = mproc_shm_attach(&shm, name)) < 0) {
    fprintf(stderr, "writer: attach \"%s\": %s\n", name ? name : "?",
            mproc_strerror(rc));
    return 1;
  }
  if (mproc_shm_size(shm) < sizeof(shared_block)) {
    mproc_shm_free(shm);
    return 2;
  }
  b = (shared_block *)mproc_shm_ptr(shm);
  memcpy(b->greeting, "hello", 6);
  for (i = 0; i < NSQUARES; i++)
    b->squares[i] = i * i;
  printf("writer: attached to \"%s\" (%lu bytes) and wrote into it\n", name,
         (unsigned long)mproc_shm_size(shm));
  fflush(stdout);
  /* shm.close(): detach.  Not the creator, so the name stays. */
  mproc_shm_free(shm);
  return 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(writer), MPROC_ENTRY_END};

/* Process(target=writer, args=(name,)): start, join, check the exit code. */
static int run_writer(const char *name) {
  mproc_process *p = NULL;
  mproc_args *args = NULL;
  int rc, code = -1;
  if ((rc = mproc_args_create(&args)) < 0 ||
      (rc = mproc_args_add_str(args, NULL, name)) < 0)
    goto finish;
  if ((rc = mproc_process_create(&p, "writer", args, NULL)) < 0 ||
      (rc = mproc_process_start(p)) < 0 ||
      (rc = mproc_process_join(p, MPROC_FOREVER)) < 0)
    goto finish;
  if (mproc_process_exitcode(p, &code) != 1 || code != 0)
    rc = MPROC_ESPAWN;
finish:
  mproc_args_free(args);
  mproc_process_free(p);
  return rc;
}

/* The parent's read: the greeting and the squares the child wrote. */
static int check_block(const shared_block *b) {
  int i, bad = memcmp(b->greeting, "hello", 6) != 0;
  printf("parent: read \"%.5s\" and", b->greeting);
  for (i = 0; i < NSQUARES; i++) {
    printf(" %" PRId32, b->squares[i]);
    bad |= b->squares[i] != i * i;
  }
  printf("\n");
  return bad;
}

int main(int argc, char **argv) {
  char name[MPROC_SHM_NAME_MAX + 1];
  mproc_shm *shm = NULL;
  int64_t pid = 0;
  int rc, failed;

  if ((rc = mproc_main(argc, argv, entries)) < 0) {
    fprintf(stderr, "mproc_main: %s\n", mproc_strerror(rc));
    return 1;
  }
  mirror_begin();

  /* A name no other run uses at the same time: this process's pid in it.
   * (At most 24 characters keeps it valid on macOS too.) */
  mproc_process_pid(mproc_current_process(), &pid);
  snprintf(name, sizeof(name), "mproc-ex-shm-%" PRId64, pid);

  mirror("shm = SharedMemory(True, 64, name=name)", "mproc_shm_create(&shm, name, 64)");
  if ((rc = mproc_shm_create(&shm, name, 64)) < 0) {
    fprintf(stderr, "mproc_shm_create(\"%s\"): %s\n", name, mproc_strerror(rc));
    return 1;
  }
  printf("parent: created \"%s\" (%lu bytes, zero-filled)\n", mproc_shm_name(shm),
         (unsigned long)mproc_shm_size(shm));

  mirror("p = Process(target=writer, args=(name,))", "mproc_args_add_str(args, NULL, name)");
  mirror("    shm = SharedMemory(name=name)  # child", "mproc_shm_attach(&shm, name)");
  mirror("p.start(); p.join()", "mproc_process_start(p); _join(p, ...)");
  if ((rc = run_writer(name)) < 0) {
    fprintf(stderr, "writer: %s\n", mproc_strerror(rc));
    failed = 1;
  } else {
    mirror("print(bytes(shm.buf[:5]), ...)", "(shared_block *)mproc_shm_ptr(shm)");
    failed = check_block((const shared_block *)mproc_shm_ptr(shm));
  }

  mirror("shm.close(); shm.unlink()", "mproc_shm_unlink(shm); mproc_shm_free(shm)");
  if ((rc = mproc_shm_unlink(shm)) < 0) {
    fprintf(stderr, "mproc_shm_unlink: %s\n", mproc_strerror(rc));
    failed = 1;
  }
  mproc_shm_free(shm);
  printf("%s\n", failed ? "FAILED" : "ok");
  return failed;
}
