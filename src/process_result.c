/* Results: the bytes a child entry hands back to its parent
 * (mproc_set_result / mproc_process_result), and the note a child leaves
 * when its bootstrap fails before the entry runs.
 *
 * Why a shared block and not a pipe: a child blocked writing 16 MiB into a
 * pipe the parent drains only after join would never end, and a parent
 * that drains while joining would change what join, the sentinel and
 * mproc_wait() mean (a child's end would no longer be the only event).  So
 * the parent makes a *blank* block at start (mproc__seg_blank), passes its
 * handle like a handle argument (fork: inherited; spawn and anything else
 * built on the bootstrap: the last slot of the bootstrap's handle table),
 * and reads it once the child has ended (a fork child gets a slot of one
 * arena instead, laid out the same from the result header on: see "the
 * fork children's arena" below).  Blank, because most children set
 * no result and every start pays for the block: POSIX makes an empty
 * memfd (no size, mapping or page until the child writes: the child gives
 * it its MPROC_RESULT_MAX bytes, sparse), Windows a reserved section with
 * only its header page committed (the child commits what it writes, so
 * hundreds of open process objects do not charge 32 MiB each against the
 * commit limit).  The parent keeps the handle, never a mapping; it maps
 * the block only to read it, and touches only the committed header and the
 * `len` bytes it then commits itself (a no-op for the pages the child
 * committed; a forged child that committed less reads as zeros, never as
 * an access violation).
 *
 * The block's first MPROC__RES_HDR bytes are a header the child writes:
 *   u32 state   0 none, 1 writing, 2 done (set last)
 *   u32 boot    a bootstrap failure (MPROC__BOOT_*), 0 if none
 *   u64 len     the result's length (state 2)
 *   u32 seq     raised by every mproc_set_result() before it writes
 *   u32 busy    mproc_set_result() calls under way (in any process)
 * The child is untrusted by the time the parent reads: every value is
 * checked (a state other than 0/2, a length over the limit: MPROC_EBROKEN),
 * and the block's size was checked against the file/section by
 * mproc__seg_open_blank before anything is read.  A block still blank is
 * a child that wrote nothing: no result, no bootstrap note.  The child is
 * not the only writer either: a raw fork() child of it inherits the block
 * and may still replace the result while the parent copies it, even while
 * the child does (two processes: nothing serialises them, and one's DONE
 * can cover the other's copy).  So a copy counts only if no call was under
 * way when it began (`busy` 0) and none began during it (`seq` unchanged
 * after it); and two calls that overlapped each other both end WRITING,
 * since their copies may have interleaved. */
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "internal.h"

#define MPROC__RES_HDR 64
#define MPROC__RES_SIZE (MPROC__RES_HDR + MPROC_RESULT_MAX)

enum { MPROC__RES_NONE = 0, MPROC__RES_WRITING = 1, MPROC__RES_DONE = 2 };
/* The header's 32-bit words, by index (the layout above). */
enum { MPROC__RW_STATE = 0, MPROC__RW_BOOT = 1, MPROC__RW_SEQ = 4,
       MPROC__RW_BUSY = 5 };

typedef struct mproc__res_hdr {
  uint32_t state;
  uint32_t boot;
  uint64_t len;
  uint32_t seq;
  uint32_t busy;
} mproc__res_hdr;

/* The child's own block, or (a fork child, g_result_slot 1) the mapping
 * of its arena slot, and the lock that serialises its writers. */
static mproc_handle_t g_result_h = MPROC_INVALID_HANDLE;
static int g_result_slot;
static mproc__seg g_result_seg;
static mproc__mutex_t g_result_lock = MPROC__MUTEX_INITIALIZER;

/* ---- the fork children's arena -------------------------------------------------
 * A blank block per start cost a memfd made and closed (about 5 us of a
 * fork start+join's ~120 us of CPU) and kept one descriptor per unclosed
 * child, which every later fork copied and its child closed again.  Fork
 * children get a slot of one arena instead (plat/seg.h): the result header
 * at the slot's start, the bytes after it.  The fork child maps its slot
 * and closes the arena's descriptor before its entry runs, so it holds
 * nothing that reaches a sibling's slot (as it held no sibling's block).
 * A slot is never given out twice: a raw fork() child of a child inherits
 * the slot's mapping and may write it after that child was closed (the
 * result docs allow it to replace the result), and must never land in
 * another child's.  So slots are wiped at drop (their pages go back; a late
 * writer only dirties a slot nobody reads, until the arena is closed) and
 * an arena that ran out of slots is replaced, closed once its last slot is
 * dropped.  Spawn and forkserver children keep a block each: a bootstrap
 * hands over a descriptor, and the arena's would reach every slot.  All
 * under mproc__lock. */
#define MPROC__RES_SLOT ((size_t)MPROC_RESULT_MAX + ((size_t)64 << 10))

typedef struct mproc__arena {
  mproc_handle_t h;
  uint64_t next, slots; /* slots given out, slots in all */
  size_t live;          /* slots not yet dropped */
} mproc__arena;

static mproc__arena *g_arena; /* the one slots come from; NULL: none yet */

static void mproc__arena_release(mproc__arena *a) {
  if (a == g_arena || a->live)
    return;
  mproc__plat_private_del(a->h);
  mproc__plat_close_handle(a->h);
  free(a);
}

/* A slot for p, from a new arena when the current one is used up.
 * MPROC_ENOTSUP (or an OS failure) makes the caller fall back to a block. */
static int mproc__arena_take(mproc_process *p) {
  mproc__arena *a = g_arena, *old;
  int rc;
  if (!a || a->next == a->slots) {
    if (!(a = (mproc__arena *)calloc(1, sizeof *a)))
      return MPROC_ENOMEM;
    rc = mproc__seg_arena(&a->h, MPROC__RES_SLOT, UINT32_MAX, &a->slots);
    if (rc < 0) {
      free(a);
      return rc;
    }
    mproc__plat_private_add(a->h);
    old = g_arena;
    g_arena = a;
    if (old)
      mproc__arena_release(old);
  }
  p->result_arena = a;
  p->result_off = a->next++ * (uint64_t)MPROC__RES_SLOT;
  a->live++;
  return MPROC_OK;
}

void mproc__result_forget_forked(void) {
  /* The copy is left unwritten (each write would copy a page); its
   * descriptor was closed with the other private ones. */
  g_arena = NULL;
}

mproc_handle_t mproc__result_handle(const mproc_process *p) {
  return p->result_arena ? p->result_arena->h : p->result_h;
}

/* ---- parent ------------------------------------------------------------------- */

int mproc__result_create(mproc_process *p) {
  int rc;
  if (p->method == MPROC_START_FORK && mproc__arena_take(p) == MPROC_OK)
    return MPROC_OK;
  /* A handle, not the 32 MiB mapping: a parent with many children would
   * run out of address space (32-bit) long before memory. */
  rc = mproc__seg_blank(&p->result_h, MPROC__RES_SIZE);
  /* Part of starting the child: an OS refusal (EMFILE) is start()'s
   * MPROC_ESPAWN, with the OS error kept. */
  if (rc == MPROC_ESYS)
    return mproc__os_fail(MPROC_ESPAWN, mproc_os_error());
  /* Only this child may inherit it (a fork child made later drops it). */
  if (rc == MPROC_OK)
    mproc__plat_private_add(p->result_h);
  return rc;
}

void mproc__result_drop(mproc_process *p) {
  mproc__arena *a = p->result_arena;
  if (a) {
    (void)mproc__seg_wipe(a->h, p->result_off, MPROC__RES_SLOT);
    a->live--;
    p->result_arena = NULL;
    mproc__arena_release(a);
  }
  mproc__plat_private_del(p->result_h);
  mproc__plat_close_handle(p->result_h);
  p->result_h = MPROC_INVALID_HANDLE;
}

/* Map the block of a child that has ended.  MPROC_ENOTFOUND when it has
 * none; MPROC_EBROKEN when it is not the block we made (a child can
 * truncate or resize it). */
static int mproc__result_map(mproc_process *p, mproc__seg *s) {
  mproc_handle_t h = MPROC_INVALID_HANDLE;
  int code, rc;
  if (p->kind != MPROC__K_CHILD)
    return p->state == MPROC__P_CLOSED ? MPROC_ECLOSED : MPROC_EPERM;
  rc = mproc_process_exitcode(p, &code); /* reaps; checks creator/closed */
  if (rc <= 0)
    return rc == 0 ? MPROC_ESTATE : rc;
  /* Under the lock, so a concurrent close cannot close it under the dup. */
  mproc__mutex_lock(&mproc__lock);
  if (p->state == MPROC__P_CLOSED)
    rc = MPROC_ECLOSED;
  else if (p->result_arena) {
    /* Mapped under the lock: a drop meanwhile would close the arena. */
    rc = mproc__seg_map_slot(s, p->result_arena->h, p->result_off,
                             MPROC__RES_SIZE);
    mproc__mutex_unlock(&mproc__lock);
    return rc;
  } else if (p->result_h == MPROC_INVALID_HANDLE)
    rc = MPROC_ENOTFOUND;
  else if ((h = mproc__plat_dup_handle(p->result_h)) == MPROC_INVALID_HANDLE)
    rc = mproc__os_fail(MPROC_ESYS, mproc__plat_last_error());
  else
    rc = MPROC_OK;
  mproc__mutex_unlock(&mproc__lock);
  if (rc < 0)
    return rc;
  rc = mproc__seg_open_blank(s, h, MPROC__RES_SIZE, 0); /* owns h */
  if (rc == MPROC_EINVAL)
    return MPROC_EBROKEN;
  if (rc == MPROC_OK && (rc = mproc__seg_commit(s, MPROC__RES_HDR)) < 0)
    mproc__seg_close(s);
  return rc;
}

/* The header (committed by mproc__result_map), read once into local memory
 * so later checks and the copy use the same values. */
static mproc__res_hdr mproc__result_header(const mproc__seg *s) {
  mproc__res_hdr hdr;
  /* seq first, then busy: what is read after them is checked against seq
   * afterwards, and a writer raises busy before seq. */
  uint32_t seq = mproc__load32((volatile uint32_t *)s->addr + MPROC__RW_SEQ);
  uint32_t busy = mproc__load32((volatile uint32_t *)s->addr + MPROC__RW_BUSY);
  memcpy(&hdr, s->addr, sizeof hdr);
  hdr.seq = seq;
  hdr.busy = busy;
  return hdr;
}

int mproc_process_result(mproc_process *p, void *buf, size_t cap, size_t *len) {
  mproc__seg s;
  mproc__res_hdr hdr;
  int rc;
  if (!p || !len || (cap && !buf))
    return MPROC_EINVAL;
  rc = mproc__result_map(p, &s);
  if (rc < 0)
    return rc;
  hdr = mproc__result_header(&s);
  if (hdr.state == MPROC__RES_NONE) {
    rc = MPROC_ENOTFOUND;
    goto finish;
  }
  if (hdr.state != MPROC__RES_DONE || hdr.len > MPROC_RESULT_MAX) {
    rc = MPROC_EBROKEN;
    goto finish;
  }
  *len = (size_t)hdr.len;
  if (hdr.len > cap) {
    rc = MPROC_ERANGE;
    goto finish;
  }
  if ((rc = mproc__seg_commit(&s, MPROC__RES_HDR + (size_t)hdr.len)) < 0)
    goto finish;
  if (hdr.len)
    memcpy(buf, (unsigned char *)s.addr + MPROC__RES_HDR, (size_t)hdr.len);
  /* A writer that began meanwhile raised seq first (a read-modify-write,
   * so the check is one too): then the copy may mix two results. */
  rc = hdr.busy == 0 &&
               mproc__cas32((volatile uint32_t *)s.addr + MPROC__RW_SEQ, &hdr.seq,
                            hdr.seq) &&
               mproc__load32((volatile uint32_t *)s.addr) == MPROC__RES_DONE
           ? MPROC_OK
           : MPROC_EBROKEN;
finish:
  mproc__seg_close(&s);
  return rc;
}

uint32_t mproc__result_boot_reason(mproc_process *p) {
  mproc__seg s;
  uint32_t boot;
  if (mproc__result_map(p, &s) < 0)
    return 0;
  boot = mproc__result_header(&s).boot;
  mproc__seg_close(&s);
  /* A value we never write is a child's garbage: no bootstrap note. */
  return boot <= MPROC__BOOT_NOMEM ? boot : 0;
}

/* ---- child -------------------------------------------------------------------- */

void mproc__result_adopt(mproc_handle_t h, int forked) {
  /* A fork child is a copy of one thread: another thread of the parent may
   * have held the lock at the fork, and nobody would ever release it. */
  if (forked) {
    mproc__mutex_t fresh = MPROC__MUTEX_INITIALIZER;
    g_result_lock = fresh;
  }
  mproc__mutex_lock(&g_result_lock);
  mproc__plat_close_handle(g_result_h);
  g_result_h = h;
  mproc__mutex_unlock(&g_result_lock);
}

void mproc__result_fork_child(const mproc_process *p) {
  mproc__mutex_t fresh = MPROC__MUTEX_INITIALIZER;
  mproc_handle_t h = mproc__result_handle(p);
  g_result_lock = fresh; /* see mproc__result_adopt */
  /* Our parent's own result is not ours to write. */
  if (g_result_slot)
    mproc__seg_close(&g_result_seg);
  if (g_result_h != h)
    mproc__plat_close_handle(g_result_h);
  g_result_h = h;
  g_result_slot = p->result_arena != NULL;
  /* (g_arena was forgotten with the parent's children: our own fork
   * children get an arena of ours.) */
  if (!g_result_slot)
    return;
  /* The arena's descriptor reaches every sibling's slot, so only our
   * slot's mapping is kept (a raw fork() child of ours inherits it, as it
   * would a block); a failed map leaves no result to set
   * (mproc_set_result: MPROC_ESYS). */
  if (mproc__seg_map_slot(&g_result_seg, h, p->result_off, MPROC__RES_SIZE) <
      0)
    mproc__seg_reset(&g_result_seg);
  mproc__plat_close_handle(h);
  g_result_h = MPROC_INVALID_HANDLE;
}

/* Map this child's block (g_result_lock held) with its first `upto` bytes
 * committed: the header and what will be written. */
static int mproc__result_open_own(mproc__seg *s, size_t upto) {
  mproc_handle_t h;
  int rc;
  if (g_result_slot) {
    *s = g_result_seg; /* mproc__result_close_own leaves it mapped */
    return s->addr ? MPROC_OK : MPROC_ESYS;
  }
  if (g_result_h == MPROC_INVALID_HANDLE)
    return MPROC_ESTATE;
  h = mproc__plat_dup_handle(g_result_h);
  if (h == MPROC_INVALID_HANDLE)
    return mproc__os_fail(MPROC_ESYS, mproc__plat_last_error());
  rc = mproc__seg_open_blank(s, h, MPROC__RES_SIZE, 1);
  if (rc == MPROC_OK && (rc = mproc__seg_commit(s, upto)) < 0)
    mproc__seg_close(s);
  return rc;
}

static void mproc__result_close_own(mproc__seg *s) {
  if (!g_result_slot)
    mproc__seg_close(s);
}

int mproc_set_result(const void *data, size_t len) {
  mproc__seg s;
  volatile uint32_t *state;
  uint64_t len64 = len;
  uint32_t others, mine;
  int rc, overlapped;
  if (len > MPROC_RESULT_MAX)
    return MPROC_E2BIG;
  if (!data && len)
    return MPROC_EINVAL;
  mproc__mutex_lock(&g_result_lock);
  rc = mproc__result_open_own(&s, MPROC__RES_HDR + len);
  if (rc < 0)
    goto finish;
  /* "writing" first and "done" last: a child that dies in between leaves
   * a state the parent refuses rather than a torn result. */
  state = (volatile uint32_t *)s.addr;
  /* busy, then seq: see mproc_process_result.  A writer killed before it
   * lowers busy leaves the block unreadable (MPROC_EBROKEN), as its
   * WRITING state does. */
  others = mproc__add32(state + MPROC__RW_BUSY, 1);
  mine = mproc__add32(state + MPROC__RW_SEQ, 1) + 1;
  mproc__store32(state, MPROC__RES_WRITING);
  if (len)
    memcpy((unsigned char *)s.addr + MPROC__RES_HDR, data, len);
  memcpy((unsigned char *)s.addr + 8, &len64, 8);
  /* Another process's call under way when this one began, or begun since
   * (a raw fork() child shares the block): the two copies may have
   * interleaved, and whichever ends last would publish a mix.  Both see
   * the overlap, so both leave the block WRITING (MPROC_EBROKEN to the
   * reader) until a call that overlaps nothing replaces it. */
  overlapped = others != 0 || mproc__load32(state + MPROC__RW_SEQ) != mine;
  mproc__store32(state, overlapped ? MPROC__RES_WRITING : MPROC__RES_DONE);
  (void)mproc__add32(state + MPROC__RW_BUSY, (uint32_t)-1);
  mproc__result_close_own(&s);
finish:
  mproc__mutex_unlock(&g_result_lock);
  return rc;
}

void mproc__result_mark_boot(uint32_t reason) {
  mproc__seg s;
  mproc__mutex_lock(&g_result_lock);
  if (mproc__result_open_own(&s, MPROC__RES_HDR) == MPROC_OK) {
    mproc__store32((volatile uint32_t *)s.addr + MPROC__RW_BOOT, reason);
    mproc__result_close_own(&s);
  }
  mproc__mutex_unlock(&g_result_lock);
}
