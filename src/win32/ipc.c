/* Windows side of the IPC foundation (src/ipc.h): shared segments are
 * pagefile-backed file mappings, the portable futex is a kernel semaphore
 * plus a waiter word in shared memory, and lock owners are checked through
 * their process objects. */
#include <windows.h>

#include <aclapi.h> /* GetSecurityInfo */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "mproc/ipc.h"
#include "w32.h"

#if defined(_MSC_VER)
#pragma comment(lib, "advapi32.lib") /* the token and ACL functions */
#endif

static int mproc__w32_valid(HANDLE h) {
  return h != NULL && h != INVALID_HANDLE_VALUE;
}

/* ---- owner-only security ---------------------------------------------------
 * A named mapping lives in the session's "Local\" namespace, where any
 * process of the session may try to open it.  With no security descriptor
 * the object gets the creator token's default DACL, which usually grants
 * the user, SYSTEM and (for an elevated token) the Administrators group,
 * and which a program may have changed.  An explicit DACL with one ACE for
 * the process token's user makes the rule "this user only", the mode 0600
 * of the POSIX side, whatever the token's defaults are.  (Holders of
 * SeTakeOwnershipPrivilege or SeDebugPrivilege, SYSTEM among them, still
 * get in, as root does on POSIX.)  The owner is set to that user as well:
 * an elevated token's default owner is the Administrators group, and
 * attach (mproc__w32_private) accepts only sections the user owns.
 * Unnamed mappings get it too: only a duplicated handle reaches them, but
 * the rule should not rest on that.  It is built once: a process's user
 * never changes. */

static INIT_ONCE mproc__w32_sd_once = INIT_ONCE_STATIC_INIT;
static SECURITY_DESCRIPTOR mproc__w32_sd;
static TOKEN_USER *mproc__w32_user; /* its SID is the descriptor's owner */
static DWORD mproc__w32_sd_error;

static BOOL CALLBACK mproc__w32_sd_init(PINIT_ONCE once, PVOID param,
                                        PVOID *ctx) {
  HANDLE token = NULL;
  TOKEN_USER *user = NULL;
  PACL acl = NULL;
  DWORD len = 0, acl_len;
  (void)once;
  (void)param;
  (void)ctx;
  /* The process token, not a thread's impersonation token: the mappings
   * belong to the process and are used by its other threads too. */
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    goto fail;
  if (GetTokenInformation(token, TokenUser, NULL, 0, &len) ||
      GetLastError() != ERROR_INSUFFICIENT_BUFFER)
    goto fail;
  if (!(user = (TOKEN_USER *)malloc(len))) {
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
    goto fail;
  }
  if (!GetTokenInformation(token, TokenUser, user, len, &len))
    goto fail;
  /* "Creating a DACL": the ACL header plus one ACE whose SidStart member
   * is the first DWORD of the SID. */
  acl_len = (DWORD)(sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) -
                    sizeof(DWORD) + GetLengthSid(user->User.Sid));
  acl_len = (acl_len + 3u) & ~3u; /* ACL sizes are DWORD multiples */
  if (!(acl = (PACL)malloc(acl_len))) {
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
    goto fail;
  }
  if (!InitializeAcl(acl, acl_len, ACL_REVISION) ||
      !AddAccessAllowedAce(acl, ACL_REVISION, FILE_MAP_ALL_ACCESS,
                           user->User.Sid) ||
      !InitializeSecurityDescriptor(&mproc__w32_sd,
                                    SECURITY_DESCRIPTOR_REVISION) ||
      !SetSecurityDescriptorOwner(&mproc__w32_sd, user->User.Sid, FALSE) ||
      !SetSecurityDescriptorDacl(&mproc__w32_sd, TRUE, acl, FALSE))
    goto fail;
  /* The absolute descriptor points at `acl` and at the SID in `user`, which
   * therefore live as long as the process. */
  mproc__w32_user = user;
  CloseHandle(token);
  return TRUE;
fail:
  mproc__w32_sd_error = GetLastError();
  if (mproc__w32_sd_error == 0)
    mproc__w32_sd_error = ERROR_INVALID_FUNCTION;
  free(acl);
  free(user);
  if (token)
    CloseHandle(token);
  return TRUE; /* remembered: every create reports the same error */
}

static int mproc__w32_sd_ready(void) {
  if (!InitOnceExecuteOnce(&mproc__w32_sd_once, mproc__w32_sd_init, NULL,
                           NULL))
    return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
  if (mproc__w32_sd_error)
    return mproc__os_fail(MPROC_ESYS, (int)mproc__w32_sd_error);
  return MPROC_OK;
}

static int mproc__w32_owner_only(SECURITY_ATTRIBUTES *sa) {
  int rc = mproc__w32_sd_ready();
  if (rc < 0)
    return rc;
  sa->nLength = sizeof(*sa);
  sa->lpSecurityDescriptor = &mproc__w32_sd;
  sa->bInheritHandle = FALSE; /* passing to a child is always explicit */
  return MPROC_OK;
}

/* Does the DACL let only `me` in?  A NULL DACL grants everyone everything;
 * otherwise every entry must be a grant to `me` or a denial.  Other entry
 * kinds (object or callback grants) are refused rather than interpreted:
 * mproc never makes them. */
static int mproc__w32_dacl_private(PACL dacl, PSID me) {
  ACL_SIZE_INFORMATION info;
  DWORD i;
  void *ace;
  if (!dacl ||
      !GetAclInformation(dacl, &info, sizeof(info), AclSizeInformation))
    return 0;
  for (i = 0; i < info.AceCount; i++) {
    if (!GetAce(dacl, i, &ace))
      return 0;
    switch (((const ACE_HEADER *)ace)->AceType) {
    case ACCESS_DENIED_ACE_TYPE:
      break;
    case ACCESS_ALLOWED_ACE_TYPE:
      if (!EqualSid((PSID)&((ACCESS_ALLOWED_ACE *)ace)->SidStart, me))
        return 0;
      break;
    default:
      return 0;
    }
  }
  return 1;
}

/* Is the named section behind `h` this user's private one?  A name in
 * "Local\" is not a secret: any process of the session (another user's
 * too, e.g. under runas) may create it first, with its own security, and
 * OpenFileMapping would hand us that section.  So its owner must be the
 * process token's user (mproc's own sections are made so, see above) and
 * its DACL must let nobody else in.  MPROC_EPERM otherwise.  `h` needs
 * READ_CONTROL. */
static int mproc__w32_private(HANDLE h) {
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID owner = NULL;
  PACL dacl = NULL;
  DWORD err;
  int rc = mproc__w32_sd_ready();
  if (rc < 0)
    return rc;
  err = GetSecurityInfo(h, SE_KERNEL_OBJECT,
                        OWNER_SECURITY_INFORMATION |
                            DACL_SECURITY_INFORMATION,
                        &owner, NULL, &dacl, NULL, &sd);
  if (err != ERROR_SUCCESS)
    return mproc__os_fail(MPROC_ESYS, (int)err);
  if (!owner || !EqualSid(owner, mproc__w32_user->User.Sid) ||
      !mproc__w32_dacl_private(dacl, mproc__w32_user->User.Sid))
    rc = MPROC_EPERM;
  LocalFree(sd);
  return rc;
}

/* ---- shared segments ---------------------------------------------------------
 * Every segment starts with the same 64-byte header as on POSIX: attach has
 * no other way to learn the exact size (VirtualQuery reports whole pages),
 * and it tells a complete mproc segment from one whose creator has not
 * written it yet. */
#define MPROC__SEG_HDR 64
#define MPROC__SEG_MAGIC "MPROCSHM"
#define MPROC__SEG_KEPT 1u
/* mproc's names live apart from other programs' in the session namespace.
 * Kernel object names are case-sensitive, like POSIX shm names. */
#define MPROC__SEG_PREFIX L"Local\\mproc-"

typedef struct mproc__seg_hdr {
  char magic[8];
  uint32_t version;
  volatile uint32_t flags;
  int64_t creator_pid;
  uint64_t size;
} mproc__seg_hdr;

static void mproc__seg_init(mproc__seg *s) {
  memset(s, 0, sizeof(*s));
  s->handle = MPROC_INVALID_HANDLE;
}

/* "Local\mproc-<name>".  The portable check (mproc__seg_name_ok) already
 * keeps '\\' out, which would otherwise reach other namespaces. */
static int mproc__seg_wname(const char *name,
                            wchar_t out[sizeof(MPROC__SEG_PREFIX) /
                                            sizeof(wchar_t) +
                                        MPROC_SHM_NAME_MAX]) {
  size_t p = sizeof(MPROC__SEG_PREFIX) / sizeof(wchar_t) - 1, i;
  if (mproc__seg_name_ok(name) != 1)
    return MPROC_EINVAL;
  memcpy(out, MPROC__SEG_PREFIX, p * sizeof(wchar_t));
  for (i = 0; name[i]; i++)
    out[p + i] = (wchar_t)(unsigned char)name[i]; /* ASCII only */
  out[p + i] = 0;
  return MPROC_OK;
}

static int mproc__w32_map_error(DWORD err) {
  switch (err) {
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_COMMITMENT_LIMIT:
  case ERROR_DISK_FULL: /* the pagefile could not grow */
    return MPROC_ENOMEM;
  default:
    return mproc__os_fail(MPROC_ESYS, (int)err);
  }
}

/* Maps the whole section behind `h` and checks the header: MPROC_EINVAL for
 * a section that is not (yet) a complete mproc segment. */
static int mproc__seg_map(mproc__seg *s, HANDLE h) {
  MEMORY_BASIC_INFORMATION mbi;
  mproc__seg_hdr *hdr;
  void *base;
  uint64_t size;
  base = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (!base)
    return mproc__w32_map_error(GetLastError());
  /* A view of a committed pagefile section is one region of pages with the
   * same state, and regions never extend past their allocation. */
  if (VirtualQuery(base, &mbi, sizeof(mbi)) != sizeof(mbi)) {
    DWORD err = GetLastError();
    UnmapViewOfFile(base);
    return mproc__os_fail(MPROC_ESYS, (int)err);
  }
  hdr = (mproc__seg_hdr *)base;
  if (mbi.RegionSize <= MPROC__SEG_HDR ||
      memcmp(hdr->magic, MPROC__SEG_MAGIC, 8) != 0)
    goto bad;
  /* The creator writes the magic last, behind a barrier. */
  (void)mproc__add32(&hdr->flags, 0);
  size = hdr->size;
  if (size == 0 || size > (uint64_t)(mbi.RegionSize - MPROC__SEG_HDR))
    goto bad;
  s->map_base = base;
  s->map_size = mbi.RegionSize;
  s->addr = (unsigned char *)base + MPROC__SEG_HDR;
  s->size = (size_t)size;
  s->handle = h;
  return MPROC_OK;
bad:
  UnmapViewOfFile(base);
  return MPROC_EINVAL;
}

int mproc__seg_create(mproc__seg *s, const char *name, size_t size) {
  wchar_t wname[sizeof(MPROC__SEG_PREFIX) / sizeof(wchar_t) +
                MPROC_SHM_NAME_MAX];
  SECURITY_ATTRIBUTES sa;
  mproc__seg_hdr *hdr;
  uint64_t total;
  HANDLE h;
  void *base;
  int rc;
  if (!s)
    return MPROC_EINVAL;
  mproc__seg_init(s);
  if (size == 0 || size > (size_t)-1 - MPROC__SEG_HDR)
    return MPROC_EINVAL;
  if (name && (rc = mproc__seg_wname(name, wname)) < 0)
    return rc;
  if ((rc = mproc__w32_owner_only(&sa)) < 0)
    return rc;
  total = (uint64_t)size + MPROC__SEG_HDR;
  /* Cleared first, so ERROR_ALREADY_EXISTS below is this call's. */
  SetLastError(ERROR_SUCCESS);
  /* INVALID_HANDLE_VALUE: backed by the pagefile, committed and
   * zero-filled at creation (SEC_COMMIT is the default). */
  h = CreateFileMappingW(INVALID_HANDLE_VALUE, &sa, PAGE_READWRITE,
                         (DWORD)(total >> 32), (DWORD)(total & 0xffffffffu),
                         name ? wname : NULL);
  if (!h) {
    DWORD err = GetLastError();
    /* ERROR_INVALID_HANDLE: the name belongs to an object of another type
     * (events, mutexes and mappings share the namespace); access denied:
     * another user's object.  Either way the name is taken. */
    if (name && (err == ERROR_INVALID_HANDLE || err == ERROR_ACCESS_DENIED))
      return MPROC_EEXIST;
    return mproc__w32_map_error(err);
  }
  /* An existing name is opened rather than created, with its own size and
   * security; the create must fail like O_EXCL instead. */
  if (name && GetLastError() == ERROR_ALREADY_EXISTS) {
    CloseHandle(h);
    return MPROC_EEXIST;
  }
  base = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (!base) {
    rc = mproc__w32_map_error(GetLastError());
    CloseHandle(h);
    return rc;
  }
  if (name) {
    s->name = (char *)malloc(strlen(name) + 1);
    if (!s->name) {
      UnmapViewOfFile(base);
      CloseHandle(h);
      return MPROC_ENOMEM;
    }
    strcpy(s->name, name);
    s->owner = 1;
  }
  hdr = (mproc__seg_hdr *)base;
  hdr->version = 1;
  hdr->creator_pid = mproc__plat_getpid();
  hdr->size = size;
  /* A concurrent attach that sees the magic must see the fields above. */
  (void)mproc__add32(&hdr->flags, 0);
  memcpy(hdr->magic, MPROC__SEG_MAGIC, 8);
  s->map_base = base;
  s->map_size = (size_t)total;
  s->addr = (unsigned char *)base + MPROC__SEG_HDR;
  s->size = size;
  s->handle = h;
  return MPROC_OK;
}

int mproc__seg_attach(mproc__seg *s, const char *name) {
  wchar_t wname[sizeof(MPROC__SEG_PREFIX) / sizeof(wchar_t) +
                MPROC_SHM_NAME_MAX];
  HANDLE h;
  int rc;
  if (!s)
    return MPROC_EINVAL;
  mproc__seg_init(s);
  if ((rc = mproc__seg_wname(name, wname)) < 0)
    return rc;
  /* bInheritHandle FALSE: passing to a child is always explicit.
   * READ_CONTROL: to read the owner and DACL before trusting the section. */
  h = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE | READ_CONTROL, FALSE,
                       wname);
  if (!h) {
    DWORD err = GetLastError();
    /* ERROR_INVALID_HANDLE: the name is some other type of object. */
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_INVALID_HANDLE)
      return MPROC_ENOTFOUND;
    /* A section whose DACL keeps us out is someone else's. */
    if (err == ERROR_ACCESS_DENIED)
      return MPROC_EPERM;
    return mproc__os_fail(MPROC_ESYS, (int)err);
  }
  if ((rc = mproc__w32_private(h)) < 0) {
    CloseHandle(h);
    return rc;
  }
  s->name = (char *)malloc(strlen(name) + 1);
  if (!s->name) {
    CloseHandle(h);
    return MPROC_ENOMEM;
  }
  strcpy(s->name, name);
  if ((rc = mproc__seg_map(s, h)) < 0) {
    CloseHandle(h);
    free(s->name);
    mproc__seg_init(s);
  }
  return rc;
}

int mproc__seg_import(mproc__seg *s, mproc_handle_t h, size_t size) {
  int rc = MPROC_EINVAL;
  if (!s) {
    if (mproc__w32_valid((HANDLE)h))
      CloseHandle((HANDLE)h);
    return MPROC_EINVAL;
  }
  mproc__seg_init(s);
  if (!mproc__w32_valid((HANDLE)h))
    return MPROC_EINVAL;
  if (size != 0)
    rc = mproc__seg_map(s, (HANDLE)h);
  if (rc == MPROC_OK && s->size != size) {
    UnmapViewOfFile(s->map_base);
    rc = MPROC_EINVAL;
  }
  if (rc < 0) {
    CloseHandle((HANDLE)h);
    mproc__seg_init(s);
  }
  return rc;
}

/* Windows has no unlink: a named kernel object exists while any handle to
 * it is open and its name goes with the last one, so a name cannot outlive
 * the processes using it and cannot be removed while they do.  Unlink only
 * stops this object from treating the name as its own; the name is kept
 * for mproc_shm_name(), and until the last handle closes another attach
 * still finds the block (Python's SharedMemory.unlink() is a no-op on
 * Windows too). */
int mproc__seg_unlink(mproc__seg *s) {
  if (!s || !s->name)
    return MPROC_ESTATE;
  s->owner = 0;
  return MPROC_OK;
}

/* The mark is kept for a segment header that looks the same everywhere;
 * nothing on Windows reads it, since a block cannot outlive its last handle
 * whatever is marked. */
int mproc__seg_keep(mproc__seg *s) {
  mproc__seg_hdr *hdr;
  if (!s || !s->name || !s->map_base)
    return MPROC_ESTATE;
  hdr = (mproc__seg_hdr *)s->map_base;
  (void)mproc__add32(&hdr->flags, 0); /* a full barrier before the flag */
  hdr->flags |= MPROC__SEG_KEPT;
  s->owner = 0;
  return MPROC_OK;
}

void mproc__seg_close(mproc__seg *s) {
  if (!s)
    return;
  if (s->map_base)
    UnmapViewOfFile(s->map_base);
  if (mproc__w32_valid((HANDLE)s->handle))
    CloseHandle((HANDLE)s->handle);
  free(s->name);
  mproc__seg_init(s);
}

/* Nothing can be left behind: the system closes a dead process's handles,
 * and the last close removes the name. */
int mproc__seg_cleanup(void) { return 0; }

/* ---- the portable futex -------------------------------------------------------
 * One kernel semaphore per futex; the waiter word in shared memory counts the
 * threads (of any process) inside mproc__fx_wait, so the waker knows how
 * many units to release and releases none when nobody waits.
 *
 * Lost wake-ups.  The waiter counts itself, then reads the word; the waker
 * changes the word, then reads the count.  All four accesses are
 * sequentially consistent (Interlocked / __atomic seq_cst: full barriers),
 * so in their single total order either the waker's count read comes after
 * the waiter's increment (the waker releases a unit, and a semaphore keeps
 * units: it is found even if the waiter reaches WaitForSingleObject later)
 * or the waiter's word read comes after the waker's store (it sees the new
 * word and does not sleep).  The waker's count read is an interlocked
 * read-modify-write, so this holds even if the caller changed the word with
 * a weaker store than atomics.h's.
 *
 * Stolen units.  A futex's units are not addressed to anyone.  A waiter that
 * has counted itself but not yet entered WaitForSingleObject (a window of a
 * few instructions, unless it is preempted there) may be overtaken by a
 * thread that arrives after the wake, sees the new word, waits for the next
 * change and takes the unit: the earlier waiter then sleeps although its
 * word changed.  On Linux the kernel wakes only threads already queued, and
 * the portable objects rely on that (one futex for both directions of a
 * ping-pong; a barrier whose last thread runs into the next round).  So the
 * count shares its word with an 8-bit wake epoch that every wake increases:
 *   bits 0..23  threads inside mproc__fx_wait
 *   bits 24..31 wake epoch; reset with the count when the last waiter
 *               leaves, so *waiters == 0 still means "nobody waits"
 * A waiter that gets a unit while the epoch is still the one it counted
 * itself in knows the unit was released before it arrived; it gives the
 * unit back and yields, so the earlier waiter (queued in the kernel by
 * then) gets it.  It keeps giving back for at most MPROC__FX_GIVEBACK
 * seconds, after which the unit is taken as a spurious wake-up: units
 * nobody is owed (their waiter timed out or died) must not circulate for
 * ever.  As a last resort against a waiter preempted for longer than that
 * inside the window, every wait wakes up each MPROC__FX_SLICE_MS to
 * look at the word: a lost wake-up costs at most that much latency, never
 * a hang.
 *
 * Surplus units.  The count can include waiters that already took a unit
 * and have not uncounted themselves yet, waiters that timed out, and
 * waiters that died inside the wait (a consumer killed mid-get, whose count
 * stays for ever).  The waker bounds what piles up: ReleaseSemaphore
 * reports the units already there, and whatever exceeds the count it read
 * is taken back at once.  The units left are never fewer than the waiters
 * counted at the wake that have not consumed one, so no owed wake-up is
 * taken back. */

#define MPROC__FX_COUNT 0x00ffffffu
#define MPROC__FX_EPOCH_ONE 0x01000000u
#define MPROC__FX_EPOCH(v) ((v) >> 24)
#define MPROC__FX_GIVEBACK 0.001
#define MPROC__FX_SLICE_MS 50u

int mproc__fx_create(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters) {
  HANDLE sem;
  if (!fx)
    return MPROC_EINVAL;
  fx->word = NULL;
  fx->waiters = NULL;
  fx->sem = MPROC_INVALID_HANDLE;
  if (!word || !waiters)
    return MPROC_EINVAL;
  /* Unnamed, so reachable only by handle duplication, and not
   * inheritable (NULL attributes): passing to a child is explicit. */
  sem = CreateSemaphoreW(NULL, 0, LONG_MAX, NULL);
  if (!sem)
    return mproc__w32_map_error(GetLastError());
  fx->word = word;
  fx->waiters = waiters;
  fx->sem = (mproc_handle_t)sem;
  return MPROC_OK;
}

int mproc__fx_import(mproc__fx *fx, volatile uint32_t *word,
                     volatile uint32_t *waiters, mproc_handle_t sem) {
  /* Like mproc__seg_import: the handle is this function's, also on
   * failure. */
  if (!fx || !word || !waiters || !mproc__w32_valid((HANDLE)sem)) {
    if (mproc__w32_valid((HANDLE)sem))
      CloseHandle((HANDLE)sem);
    if (fx) {
      fx->word = NULL;
      fx->waiters = NULL;
      fx->sem = MPROC_INVALID_HANDLE;
    }
    return MPROC_EINVAL;
  }
  fx->word = word;
  fx->waiters = waiters;
  fx->sem = sem;
  return MPROC_OK;
}

void mproc__fx_close(mproc__fx *fx) {
  if (!fx)
    return;
  if (mproc__w32_valid((HANDLE)fx->sem))
    CloseHandle((HANDLE)fx->sem);
  fx->sem = MPROC_INVALID_HANDLE;
  fx->word = NULL;
  fx->waiters = NULL;
}

/* Uncounts a waiter; the last one out also resets the epoch. */
static void mproc__fx_leave(volatile uint32_t *waiters) {
  uint32_t v = mproc__load32(waiters);
  for (;;) {
    if ((v & MPROC__FX_COUNT) == 0)
      return; /* not ours to fix: the word was damaged */
    if (mproc__cas32(waiters, &v,
                     (v & MPROC__FX_COUNT) == 1 ? 0u : v - 1u))
      return;
  }
}

int mproc__fx_wait(mproc__fx *fx, uint32_t expected, double deadline) {
  HANDLE sem;
  uint32_t reg;
  double giveback_start = -1, now, left;
  DWORD ms, left_ms, r;
  int rc;
  if (!fx || !fx->word || !fx->waiters || !mproc__w32_valid((HANDLE)fx->sem))
    return MPROC_EINVAL;
  sem = (HANDLE)fx->sem;
  reg = mproc__add32(fx->waiters, 1u);
  if (mproc__load32(fx->word) != expected) {
    rc = MPROC_OK;
    goto leave;
  }
  for (;;) {
    ms = MPROC__FX_SLICE_MS;
    if (deadline >= 0) {
      left = deadline - mproc__plat_now();
      left_ms = mproc__w32_ms(left > 0 ? left : 0);
      if (left_ms < ms)
        ms = left_ms;
    }
    r = WaitForSingleObject(sem, ms);
    if (r == WAIT_OBJECT_0) {
      /* Taking the unit synchronizes with the release, which came after
       * the releasing waker's epoch increment: an epoch equal to the one
       * counted in means the unit was released before this wait began. */
      if (MPROC__FX_EPOCH(mproc__load32(fx->waiters)) !=
          MPROC__FX_EPOCH(reg)) {
        rc = MPROC_OK;
        break;
      }
      now = mproc__plat_now();
      if (giveback_start < 0)
        giveback_start = now;
      if (now - giveback_start >= MPROC__FX_GIVEBACK) {
        rc = MPROC_OK; /* a surplus unit: a spurious wake-up */
        break;
      }
      (void)ReleaseSemaphore(sem, 1, NULL);
      if (mproc__load32(fx->word) != expected) {
        rc = MPROC_OK;
        break;
      }
      (void)SwitchToThread();
      continue;
    }
    if (r == WAIT_TIMEOUT) {
      if (mproc__load32(fx->word) != expected) {
        rc = MPROC_OK;
        break;
      }
      if (deadline >= 0 && mproc__plat_now() >= deadline) {
        rc = MPROC_ETIMEDOUT;
        break;
      }
      continue;
    }
    /* WAIT_FAILED: a closed or foreign handle.  Reported rather than taken
     * for a wake-up, which would turn the caller's loop into a spin. */
    rc = mproc__os_fail(MPROC_ESYS, (int)GetLastError());
    break;
  }
leave:
  mproc__fx_leave(fx->waiters);
  return rc;
}

void mproc__fx_wake(mproc__fx *fx, uint32_t n) {
  uint32_t v, count;
  LONG k, prev = 0, surplus;
  if (!fx || !fx->waiters || n == 0 || !mproc__w32_valid((HANDLE)fx->sem))
    return;
  /* An interlocked read: a full barrier after the caller's store to the
   * word (see the top of this section). */
  v = mproc__add32(fx->waiters, 0u);
  do {
    count = v & MPROC__FX_COUNT;
    if (count == 0)
      return;
  } while (!mproc__cas32(fx->waiters, &v, v + MPROC__FX_EPOCH_ONE));
  k = (LONG)(count < n ? count : n); /* count < 2^24: fits */
  if (!ReleaseSemaphore((HANDLE)fx->sem, k, &prev))
    return; /* ERROR_TOO_MANY_POSTS: more than enough units are there */
  /* More units than counted waiters: the surplus wakes nobody it is owed
   * to.  Take back at most our own units, stopping early if waiters got
   * there first. */
  surplus = prev + k - (LONG)count;
  if (surplus > k)
    surplus = k;
  while (surplus-- > 0)
    if (WaitForSingleObject((HANDLE)fx->sem, 0) != WAIT_OBJECT_0)
      break;
}

uint32_t mproc__fx_waiting(const mproc__fx *fx) {
  return mproc__load32(fx->waiters) & MPROC__FX_COUNT; /* without the epoch */
}

/* ---- owners ------------------------------------------------------------------ */

/* A creation time (FILETIME, 100 ns units) folded to the 32 bits a stamp
 * keeps; 0 is "unknown". */
static uint32_t mproc__fold_start(const FILETIME *ft) {
  uint64_t t = (uint64_t)ft->dwHighDateTime << 32 | ft->dwLowDateTime;
  uint32_t f = (uint32_t)(t ^ (t >> 32));
  return t == 0 ? 0u : f ? f : 1u;
}

static uint32_t mproc__process_start(HANDLE h) {
  FILETIME created, exited, kernel, user;
  if (!GetProcessTimes(h, &created, &exited, &kernel, &user))
    return 0;
  return mproc__fold_start(&created);
}

uint64_t mproc__self_stamp(void) {
  /* No fork on Windows: one value for the life of the process.  A race
   * between two first callers stores the same value twice. */
  static volatile uint64_t cache;
  uint64_t s = mproc__load64(&cache);
  if (s == 0) {
    s = (uint64_t)GetCurrentProcessId() << 32 |
        mproc__process_start(GetCurrentProcess());
    mproc__store64(&cache, s);
  }
  return s;
}

int mproc__stamp_alive(uint64_t stamp) {
  DWORD pid = (DWORD)(stamp >> 32), r;
  uint32_t start = (uint32_t)stamp, now_start;
  HANDLE h;
  if (pid == 0)
    return 0;
  if (pid == GetCurrentProcessId())
    return start == 0 || start == (uint32_t)mproc__self_stamp();
  /* A process object, and with it its pid, exists while any handle to it
   * is open, so a pid that opens names the same process or a newer one
   * (Windows reuses pids): the creation time tells them apart.  Exited but
   * still referenced: the object is signaled. */
  h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE,
                  pid);
  if (!h)
    /* ERROR_INVALID_PARAMETER: no such process.  Anything else (access
     * denied: another user's or a protected process) means it exists; a
     * wrong "dead" would hand a live holder's lock to someone else. */
    return GetLastError() == ERROR_INVALID_PARAMETER ? 0 : 1;
  r = WaitForSingleObject(h, 0);
  now_start = r == WAIT_OBJECT_0 ? 0 : mproc__process_start(h);
  CloseHandle(h);
  if (r == WAIT_OBJECT_0)
    return 0;
  return start == 0 || now_start == 0 || now_start == start;
}

int mproc__pid_alive(int64_t pid) {
  return pid > 0 && pid <= (int64_t)0xffffffff
             ? mproc__stamp_alive((uint64_t)pid << 32)
             : 0;
}

/* Thread ids are unique system-wide among running threads, which is all an
 * RLock owner (recorded with its pid) needs. */
uint64_t mproc__thread_id(void) { return (uint64_t)GetCurrentThreadId(); }
