/* The parts of shared segments (plat/seg.h) that are the same on every
 * platform: the header at the start of every segment, keeping a named
 * segment, and the rule for names.  The backends (src/posix/seg.c,
 * src/win32/seg.c) make only the OS calls. */
#include <string.h>

#include "atomics.h"
#include "ipc.h"

/* Every segment starts with this header; the user's bytes follow at
 * MPROC__SEG_HDR.  It lets attach check that a name belongs to mproc and
 * learn the size, and lets cleanup tell a block whose creator crashed from
 * one that was kept on purpose.  The same layout on every platform. */
#define MPROC__SEG_MAGIC "MPROCSHM"
#define MPROC__SEG_KEPT 1u

typedef struct mproc__seg_hdr {
  char magic[8];
  uint32_t version;
  volatile uint32_t flags;
  int64_t creator_pid;
  uint64_t size;
} mproc__seg_hdr;

typedef char
    mproc__seg_hdr_fits[sizeof(mproc__seg_hdr) <= MPROC__SEG_HDR ? 1 : -1];

void mproc__seg_reset(mproc__seg *s) {
  memset(s, 0, sizeof(*s));
  s->handle = MPROC_INVALID_HANDLE;
}

void mproc__seg_hdr_init(void *base, size_t size) {
  mproc__seg_hdr *h = (mproc__seg_hdr *)base;
  h->version = 1;
  h->creator_pid = mproc__plat_getpid();
  h->size = size;
  /* A concurrent attach that sees the magic must see the fields above. */
  (void)mproc__add32(&h->flags, 0);
  memcpy(h->magic, MPROC__SEG_MAGIC, 8);
}

int mproc__seg_hdr_size(const void *base, uint64_t *size) {
  const mproc__seg_hdr *h = (const mproc__seg_hdr *)base;
  if (memcmp(h->magic, MPROC__SEG_MAGIC, 8) != 0)
    return MPROC_EINVAL;
  /* The creator writes the magic last, behind a barrier. */
  (void)mproc__add32((volatile uint32_t *)&h->flags, 0);
  *size = h->size;
  return MPROC_OK;
}

/* The same rule on every platform, so it lives here, next to its user. */
int mproc__pid_alive(int64_t pid) {
  return pid > 0 && pid <= (int64_t)0xffffffff
             ? mproc__stamp_alive((uint64_t)pid << 32)
             : 0;
}

int mproc__seg_hdr_abandoned(const void *base) {
  const mproc__seg_hdr *h = (const mproc__seg_hdr *)base;
  if (memcmp(h->magic, MPROC__SEG_MAGIC, 8) != 0)
    return MPROC_EINVAL;
  return !(h->flags & MPROC__SEG_KEPT) && !mproc__pid_alive(h->creator_pid);
}

/* Windows reads no mark (a block cannot outlive its last handle whatever is
 * marked), but the header looks the same everywhere. */
int mproc__seg_keep(mproc__seg *s) {
  mproc__seg_hdr *h;
  if (!s || !s->name || !s->map_base)
    return MPROC_ESTATE;
  h = (mproc__seg_hdr *)s->map_base;
  (void)mproc__add32(&h->flags, 0); /* a full barrier before the flag */
  h->flags |= MPROC__SEG_KEPT;
  s->owner = 0;
  return MPROC_OK;
}

/* Names of shared memory blocks, checked the same way on every platform so
 * a program that works on one does not fail on the other: POSIX shm_open
 * names may not contain '/', Windows kernel object names may not contain
 * '\\', and both have length limits. */
int mproc__seg_name_ok(const char *name) {
  size_t n, i;
  if (!name)
    return 0;
  n = strlen(name);
  if (n == 0 || n > MPROC_SHM_NAME_MAX || strcmp(name, ".") == 0 ||
      strcmp(name, "..") == 0)
    return 0;
  for (i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}
