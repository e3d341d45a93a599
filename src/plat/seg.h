/*
 * Platform contract, shared segments (mproc__seg): anonymous or named
 * shared memory whose OS handle can be passed to a child.  The portable
 * modules (sync.c, queue.c, shm.c, ...) build their objects in these.
 * Implemented by src/posix/seg.c and src/win32/seg.c (the OS calls) and
 * src/seg.c (the header, keep, names: the same everywhere).
 */
#ifndef MPROC_PLAT_SEG_H
#define MPROC_PLAT_SEG_H

#include <stddef.h>
#include <stdint.h>

#include "plat/core.h"

typedef struct mproc__seg {
  void *addr;            /* the usable bytes (size of them) */
  size_t size;
  mproc_handle_t handle; /* memfd/shm fd (POSIX), file mapping (Windows) */
  char *name;            /* user's name for a named segment, else NULL */
  int owner;             /* created here: unlinks the name on close */
  void *map_base;        /* backend: the whole mapping (POSIX puts a small */
  size_t map_size;       /* header before addr) */
  size_t committed;      /* bytes from addr usable in this process now */
} mproc__seg;

/* Create `size` zero-filled bytes, owner-only access.  name NULL:
 * anonymous.  Named: MPROC_EEXIST if taken.  The handle is never
 * inheritable (passing is explicit). */
int mproc__seg_create(mproc__seg *s, const char *name, size_t size);
/* Attach by name (MPROC_ENOTFOUND); the size is the segment's. */
int mproc__seg_attach(mproc__seg *s, const char *name);
/* Map a segment from a handle this process received (it takes ownership of
 * the handle). */
int mproc__seg_import(mproc__seg *s, mproc_handle_t h, size_t size);
/* Remove the name (no-op on Windows, where names die with the last handle). */
int mproc__seg_unlink(mproc__seg *s);
/* Mark a named segment as meant to outlive its creator, so
 * mproc__seg_cleanup() leaves it alone, and stop unlinking it on close. */
int mproc__seg_keep(mproc__seg *s);
/* ---- reserved segments (the queue's ring) ----------------------------------
 * A segment may reserve far more than it uses: an anonymous segment of
 * `size` bytes of which only the first `commit` must be usable at once.
 * POSIX: the same as mproc__seg_create (a memfd or shm object gets pages on
 * first touch, so all of it counts as committed and nothing is charged until
 * it is written).  Windows: a SEC_RESERVE section, whose pages must be
 * committed (mproc__seg_commit) in a view before anyone touches them. */
int mproc__seg_reserve(mproc__seg *s, size_t size, size_t commit);
/* Makes the first `upto` bytes (<= size) usable in this process's view and
 * raises s->committed to at least that.  Pages committed in one view are
 * committed in the section (every view sees them); committing them again
 * is harmless.  MPROC_ENOMEM when the system's commit limit is reached. */
int mproc__seg_commit(mproc__seg *s, size_t upto);
/* Hands back the memory of the whole pages inside [off, off + len) (offsets
 * from addr), which then read as zeros; nobody may be using them.  Linux:
 * a hole punched in the memfd / shm object.  MPROC_ENOTSUP where the OS has
 * no such call for shared memory (Windows cannot decommit a section's
 * pages; macOS and the BSDs offer nothing for a POSIX shm object): the
 * pages stay until the segment is closed everywhere. */
int mproc__seg_decommit(mproc__seg *s, size_t off, size_t len);
/* 1 if mproc__seg_decommit can hand pages back here, else 0. */
int mproc__seg_can_decommit(void);
/* Bytes of the segment the OS backs with memory now (POSIX: the object's
 * allocated blocks; Windows: the view's committed pages), for tests and
 * diagnostics.  MPROC_ENOTSUP where the OS cannot say. */
int mproc__seg_backed(const mproc__seg *s, uint64_t *bytes);

/* ---- blank segments (a child's result block) ---------------------------------
 * A segment made to be handed on and filled by its receiver, so that its
 * maker pays almost nothing for the many that are never written:
 * POSIX: an empty anonymous memfd / shm object (no size, no mapping, no
 * pages); the first mproc__seg_open_blank(fill 1) gives it its size.  On
 * Linux it is sealed against shrinking (F_SEAL_SHRINK | F_SEAL_SEAL), so no
 * holder can ever cut it under a reader's mapping.
 * Windows: a SEC_RESERVE section of which only the header page is
 * committed (no commit charge for the rest); whoever touches bytes commits
 * them first (mproc__seg_commit).
 * *h gets the only handle; nothing stays mapped here. */
int mproc__seg_blank(mproc_handle_t *h, size_t size);
/* mproc__seg_import for a block made by mproc__seg_blank (takes h).
 * `fill` 1 (the writer): gives a blank block its size first.  `fill` 0 (a
 * reader): MPROC_ENOTFOUND while it is still blank.  MPROC_EINVAL: not a
 * complete block of `size` bytes.  Bytes may be touched only up to
 * s->committed (mproc__seg_commit raises it). */
int mproc__seg_open_blank(mproc__seg *s, mproc_handle_t h, size_t size,
                          int fill);

/* ---- a blank arena (POSIX with memfd: the fork children's result slots) ----
 * One blank block cut into slots of `slot` bytes (a multiple of 64 KiB, so
 * every slot starts on a page), each the result block of one fork child:
 * a start then makes no memfd of its own and the parent holds one
 * descriptor for all its fork children (process_result.c).  Sparse: only
 * written pages take memory.  Sealed against shrinking like a blank block.
 * mproc__seg_arena: *h and how many slots it has (at most `max`);
 * MPROC_ENOTSUP where there is none (no memfd or no hole punching:
 * the caller makes blank blocks then).  mproc__seg_map_slot: map `size`
 * bytes from offset `off` (s holds no handle: closing s unmaps only).
 * mproc__seg_wipe: give back the pages of `size` bytes at `off`, which
 * then read as zeros. */
int mproc__seg_arena(mproc_handle_t *h, size_t slot, uint64_t max,
                     uint64_t *slots);
int mproc__seg_map_slot(mproc__seg *s, mproc_handle_t h, uint64_t off,
                        size_t size);
int mproc__seg_wipe(mproc_handle_t h, uint64_t off, size_t size);

/* Unmap and close the handle (and unlink if owner and still named). */
void mproc__seg_close(mproc__seg *s);
/* mproc_shm_cleanup()'s work. */
int mproc__seg_cleanup(void);
/* ---- the same on every platform (src/seg.c), for the backends and callers */

/* Shared names: 1..MPROC_SHM_NAME_MAX of [A-Za-z0-9_.-], not "." or "..". */
int mproc__seg_name_ok(const char *name);

/* Bytes of the header every segment starts with; the usable bytes follow. */
#define MPROC__SEG_HDR 64

/* Zero *s and mark its handle invalid: the "owns nothing" state. */
void mproc__seg_reset(mproc__seg *s);
/* Stamp the header of a new segment of `size` usable bytes at `base` (its
 * first MPROC__SEG_HDR bytes, zero-filled): version, creator, size, then
 * behind a barrier the magic, so whoever sees the magic sees the rest. */
void mproc__seg_hdr_init(void *base, size_t size);
/* The usable size the header at `base` records, or MPROC_EINVAL when it
 * is not (yet) an mproc header.  The caller checks it against what the OS
 * says the mapping holds. */
int mproc__seg_hdr_size(const void *base, uint64_t *size);
/* For cleanup: 1 when the header at `base` belongs to a segment nobody
 * kept whose creator is gone, 0 when it does not, MPROC_EINVAL when it is
 * not an mproc header. */
int mproc__seg_hdr_abandoned(const void *base);

#endif
