/* Windows backend: shared segments (plat/seg.h) are pagefile-backed file
 * mappings, named ones with an owner-only security descriptor. */
#include <windows.h>

#include <aclapi.h> /* GetSecurityInfo */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mproc/ipc.h"
#include "w32.h"

#if defined(_MSC_VER)
#pragma comment(lib, "advapi32.lib") /* the token and ACL functions */
#endif

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
 * Every segment starts with the same header as on POSIX (src/seg.c): attach
 * has no other way to learn the exact size (VirtualQuery reports whole
 * pages), and it tells a complete mproc segment from one whose creator has
 * not written it yet. */
/* mproc's names live apart from other programs' in the session namespace.
 * Kernel object names are case-sensitive, like POSIX shm names. */
#define MPROC__SEG_PREFIX L"Local\\mproc-"

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

/* The size of the view at `base` and how much of its start is committed.
 * A view of a committed section is one region of pages in one state; a
 * view of a SEC_RESERVE section is a run of regions (committed, reserved,
 * ...) of the same allocation, which VirtualQuery reports one at a time.
 * Regions never extend past their allocation. */
static int mproc__seg_view(void *base, size_t *total, size_t *committed) {
  MEMORY_BASIC_INFORMATION mbi;
  unsigned char *p = (unsigned char *)base;
  *total = 0;
  *committed = 0;
  for (;;) {
    if (VirtualQuery(p, &mbi, sizeof(mbi)) != sizeof(mbi)) {
      if (*total)
        break; /* past the end of the address space */
      return mproc__os_fail(MPROC_ESYS, (int)GetLastError());
    }
    if (mbi.AllocationBase != base || mbi.State == MEM_FREE)
      break;
    if (mbi.State == MEM_COMMIT && *committed == *total)
      *committed += mbi.RegionSize;
    *total += mbi.RegionSize;
    p += mbi.RegionSize;
  }
  return MPROC_OK;
}

/* Maps the whole section behind `h` and checks the header: MPROC_EINVAL for
 * a section that is not (yet) a complete mproc segment. */
static int mproc__seg_map(mproc__seg *s, HANDLE h) {
  void *base;
  size_t total, committed;
  uint64_t size;
  int rc;
  base = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (!base)
    return mproc__w32_map_error(GetLastError());
  if ((rc = mproc__seg_view(base, &total, &committed)) < 0)
    goto finish;
  rc = MPROC_EINVAL;
  /* The header is read only where a page backs it (a reserved page would
   * fault), and the size it claims must lie inside the view. */
  if (committed <= MPROC__SEG_HDR || mproc__seg_hdr_size(base, &size) < 0)
    goto finish;
  if (size == 0 || size > (uint64_t)(total - MPROC__SEG_HDR))
    goto finish;
  s->map_base = base;
  s->map_size = total;
  s->addr = (unsigned char *)base + MPROC__SEG_HDR;
  s->size = (size_t)size;
  /* A view of a reserve starts with nothing counted as committed: the
   * user commits (again, harmlessly) what it touches in this view rather
   * than rely on what VirtualQuery says another process committed. */
  s->committed = committed >= total ? s->size : 0;
  s->handle = h;
  rc = MPROC_OK;
finish:
  if (rc < 0)
    UnmapViewOfFile(base);
  return rc;
}

/* Creates the mapping object (`total` bytes, owner-only), named when
 * `name` is given; an existing name is refused like O_EXCL. */
static int mproc__seg_create_mapping(const char *name, uint64_t total,
                                     DWORD sec, HANDLE *out) {
  wchar_t wname[sizeof(MPROC__SEG_PREFIX) / sizeof(wchar_t) +
                MPROC_SHM_NAME_MAX];
  SECURITY_ATTRIBUTES sa;
  HANDLE h;
  int rc;
  if (name && (rc = mproc__seg_wname(name, wname)) < 0)
    return rc;
  if ((rc = mproc__w32_owner_only(&sa)) < 0)
    return rc;
  /* Cleared first, so ERROR_ALREADY_EXISTS below is this call's. */
  SetLastError(ERROR_SUCCESS);
  /* INVALID_HANDLE_VALUE: backed by the pagefile, zero-filled, committed
   * at creation (SEC_COMMIT, the default: sec 0) or only reserved
   * (SEC_RESERVE: pages are committed later, see mproc__seg_commit). */
  h = CreateFileMappingW(INVALID_HANDLE_VALUE, &sa, PAGE_READWRITE | sec,
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
  *out = h;
  return MPROC_OK;
}

/* Creates a segment of `size` bytes: a committed section, or with
 * `reserve` a SEC_RESERVE one whose header and first `commit` bytes are
 * committed now. */
static int mproc__seg_make(mproc__seg *s, const char *name, size_t size,
                           int reserve, size_t commit) {
  uint64_t total;
  HANDLE h = NULL;
  void *base = NULL;
  int rc;
  if (!s)
    return MPROC_EINVAL;
  mproc__seg_reset(s);
  if (size == 0 || size > (size_t)-1 - MPROC__SEG_HDR)
    return MPROC_EINVAL;
  total = (uint64_t)size + MPROC__SEG_HDR;
  if (!reserve || commit > size)
    commit = size;
  rc = mproc__seg_create_mapping(name, total, reserve ? SEC_RESERVE : 0, &h);
  if (rc < 0)
    return rc;
  base = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (!base) {
    rc = mproc__w32_map_error(GetLastError());
    goto finish;
  }
  if (reserve &&
      !VirtualAlloc(base, MPROC__SEG_HDR + commit, MEM_COMMIT,
                    PAGE_READWRITE)) {
    rc = mproc__w32_map_error(GetLastError());
    goto finish;
  }
  if (name) {
    s->name = (char *)malloc(strlen(name) + 1);
    if (!s->name) {
      rc = MPROC_ENOMEM;
      goto finish;
    }
    strcpy(s->name, name);
    s->owner = 1;
  }
  mproc__seg_hdr_init(base, size);
  s->map_base = base;
  s->map_size = (size_t)total;
  s->addr = (unsigned char *)base + MPROC__SEG_HDR;
  s->size = size;
  s->committed = commit;
  s->handle = h;
  rc = MPROC_OK;
finish:
  if (rc < 0) {
    if (base)
      UnmapViewOfFile(base);
    CloseHandle(h);
  }
  return rc;
}

int mproc__seg_create(mproc__seg *s, const char *name, size_t size) {
  return mproc__seg_make(s, name, size, 0, size);
}

int mproc__seg_attach(mproc__seg *s, const char *name) {
  wchar_t wname[sizeof(MPROC__SEG_PREFIX) / sizeof(wchar_t) +
                MPROC_SHM_NAME_MAX];
  HANDLE h;
  int rc;
  if (!s)
    return MPROC_EINVAL;
  mproc__seg_reset(s);
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
    mproc__seg_reset(s);
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
  mproc__seg_reset(s);
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
    mproc__seg_reset(s);
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

void mproc__seg_close(mproc__seg *s) {
  if (!s)
    return;
  if (s->map_base)
    UnmapViewOfFile(s->map_base);
  if (mproc__w32_valid((HANDLE)s->handle))
    CloseHandle((HANDLE)s->handle);
  free(s->name);
  mproc__seg_reset(s);
}

/* Nothing can be left behind: the system closes a dead process's handles,
 * and the last close removes the name. */
int mproc__seg_cleanup(void) { return 0; }

/* ---- reserved segments -------------------------------------------------------
 * A SEC_RESERVE section: its pages take neither memory nor commit charge
 * until VirtualAlloc(MEM_COMMIT) commits them through a view ("Creating a
 * File Mapping Object", CreateFileMapping's SEC_RESERVE).  The commit is
 * the section's: other views see the pages too. */
int mproc__seg_reserve(mproc__seg *s, size_t size, size_t commit) {
  /* Nothing left to reserve: a plain committed section. */
  return mproc__seg_make(s, NULL, size, commit < size, commit);
}

int mproc__seg_commit(mproc__seg *s, size_t upto) {
  if (upto > s->size)
    return MPROC_EINVAL;
  if (upto <= s->committed)
    return MPROC_OK;
  if (!VirtualAlloc((unsigned char *)s->addr + s->committed,
                    upto - s->committed, MEM_COMMIT, PAGE_READWRITE))
    return mproc__w32_map_error(GetLastError());
  s->committed = upto;
  return MPROC_OK;
}

/* ---- blank segments ------------------------------------------------------------
 * A reserve whose header page alone is committed: the section costs one
 * page of commit charge however large it is, and whoever writes commits
 * what it writes (a pagefile-backed SEC_COMMIT section would count all of
 * it against the system's commit limit for as long as the handle is open).
 * The maker's view is gone before the handle is handed back. */
int mproc__seg_blank(mproc_handle_t *h, size_t size) {
  mproc__seg s;
  int rc = mproc__seg_make(&s, NULL, size, 1, 0);
  if (rc < 0)
    return rc;
  UnmapViewOfFile(s.map_base);
  *h = s.handle;
  return MPROC_OK;
}

/* The header was written by the maker, so a blank section is an ordinary
 * reserve here: filling needs nothing but commits. */
int mproc__seg_open_blank(mproc__seg *s, mproc_handle_t h, size_t size,
                          int fill) {
  (void)fill;
  return mproc__seg_import(s, h, size);
}

/* Committed pages of a section cannot be decommitted (VirtualFree refuses
 * MEM_DECOMMIT on a mapped view, and SEC_RESERVE's documentation says so);
 * DiscardVirtualMemory and OfferVirtualMemory take private memory only.
 * The pages stay committed until the last view and handle are closed. */
int mproc__seg_decommit(mproc__seg *s, size_t off, size_t len) {
  (void)s;
  (void)off;
  (void)len;
  return MPROC_ENOTSUP;
}

int mproc__seg_can_decommit(void) { return 0; }

int mproc__seg_backed(const mproc__seg *s, uint64_t *bytes) {
  MEMORY_BASIC_INFORMATION mbi;
  unsigned char *p = (unsigned char *)s->map_base;
  uint64_t n = 0;
  while (p < (unsigned char *)s->map_base + s->map_size &&
         VirtualQuery(p, &mbi, sizeof(mbi)) == sizeof(mbi)) {
    if (mbi.State == MEM_COMMIT)
      n += mbi.RegionSize;
    p += mbi.RegionSize;
  }
  *bytes = n;
  return MPROC_OK;
}

/* No arena on Windows: CreateProcess children get a blank block each, and
 * there is no fork child to share one with (plat/seg.h). */
int mproc__seg_arena(mproc_handle_t *h, size_t slot, uint64_t max,
                     uint64_t *slots) {
  (void)slot;
  (void)max;
  *h = MPROC_INVALID_HANDLE;
  *slots = 0;
  return MPROC_ENOTSUP;
}

int mproc__seg_map_slot(mproc__seg *s, mproc_handle_t h, uint64_t off,
                        size_t size) {
  (void)h;
  (void)off;
  (void)size;
  mproc__seg_reset(s);
  return MPROC_ENOTSUP;
}

int mproc__seg_wipe(mproc_handle_t h, uint64_t off, size_t size) {
  (void)h;
  (void)off;
  (void)size;
  return MPROC_ENOTSUP;
}
