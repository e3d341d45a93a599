// Shared memory blocks (mproc_shm_*) and shared arrays (mproc_array_*):
// names, attach, unlink/keep/cleanup, owner-only access, passing both to
// children under the lane's start method, and Values updated by several
// children under their lock.
#include <gtest/gtest.h>

#include <cstdint>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace {

// Names unique to this test process, so parallel test binaries (and other
// people's runs on the same machine) never meet.
std::string uniq(const char *what) {
  static int n = 0;
  return std::string("shmtest-") + std::to_string(test_getpid()) + "-" +
         std::to_string(++n) + "-" + what;
}

const char *arg_str(const mproc_args *a, size_t i) {
  const char *s = nullptr;
  mproc_arg_str(a, i, &s);
  return s;
}

uint8_t pattern(size_t i, unsigned seed) {
  return (uint8_t)((i * 131u + seed * 7u + (i >> 9)) & 0xff);
}

#ifndef _WIN32
// The block's file in /dev/shm (the POSIX backend's naming).
std::string dev_shm_path(const std::string &name) {
  return "/dev/shm/mproc." + name;
}
bool dev_shm_exists(const std::string &name) {
  struct stat st;
  return stat(dev_shm_path(name).c_str(), &st) == 0;
}
#endif

// Join, free, and return the exit code.
int join_free(mproc_process *p) {
  int code = test_join_code(p);
  mproc_process_free(p);
  return code;
}

// Start `entry` with `args`, wait for it, return its exit code.
int run_child(const char *entry, const mproc_args *args) {
  return join_free(test_start(entry, args));
}

struct Shm {
  mproc_shm *s = nullptr;
  ~Shm() { mproc_shm_free(s); }
  uint8_t *p() const { return static_cast<uint8_t *>(mproc_shm_ptr(s)); }
};

struct Arr {
  mproc_array *a = nullptr;
  ~Arr() { mproc_array_free(a); }
};

} // namespace

// ---- child entries -----------------------------------------------------------

// Attaches by name (arg 0), checks the size (arg 1), writes the pattern
// with seed arg 2, frees its handle (which must not unlink: it did not
// create the block).
TEST_ENTRY(shm_attach_and_write) {
  mproc_shm *s = nullptr;
  if (mproc_shm_attach(&s, arg_str(args, 0)) != MPROC_OK)
    return 2;
  size_t n = mproc_shm_size(s);
  if (n != (size_t)arg_int(args, 1))
    return 3;
  uint8_t *p = static_cast<uint8_t *>(mproc_shm_ptr(s));
  for (size_t i = 0; i < n; i++)
    p[i] = pattern(i, (unsigned)arg_int(args, 2));
  mproc_shm_free(s);
  return 0;
}

// Gets a block as object arg 0; checks the parent's pattern (seed arg 1),
// then writes its own (seed arg 2) over slice [arg 3, arg 4).  Arg 5: the
// expected name ("" for an anonymous block).
TEST_ENTRY(shm_obj_check_and_write) {
  void *o = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_SHM, &o) != MPROC_OK)
    return 2;
  mproc_shm *s = static_cast<mproc_shm *>(o);
  uint8_t *p = static_cast<uint8_t *>(mproc_shm_ptr(s));
  size_t n = mproc_shm_size(s);
  const char *want = arg_str(args, 5);
  const char *name = mproc_shm_name(s);
  if (!p || !want)
    return 3;
  if (*want ? (!name || std::strcmp(name, want) != 0) : name != nullptr)
    return 4;
  size_t lo = (size_t)arg_int(args, 3), hi = (size_t)arg_int(args, 4);
  if (hi > n || lo > hi)
    return 5;
  int64_t seed_in = arg_int(args, 1);
  if (seed_in >= 0)
    for (size_t i = lo; i < hi; i++)
      if (p[i] != pattern(i, (unsigned)seed_in))
        return 6;
  for (size_t i = lo; i < hi; i++)
    p[i] = pattern(i, (unsigned)arg_int(args, 2));
  return 0;
}

// Asks for a block argument as an array: must be MPROC_ETYPE.
TEST_ENTRY(shm_obj_wrong_type) {
  void *o = nullptr;
  return mproc_arg_object(args, 0, MPROC_OBJ_ARRAY, &o) == MPROC_ETYPE ? 0 : 1;
}

// Creates a named block (arg 0) of arg 1 bytes, keeps it if arg 2, says
// "R" on the handle in arg 3, then either sleeps to be killed (arg 4 != 0)
// or frees the block and returns.
TEST_ENTRY(shm_create_named) {
  mproc_shm *s = nullptr;
  mproc_handle_t h = MPROC_INVALID_HANDLE;
  mproc_arg_handle(args, 3, &h);
  if (mproc_shm_create(&s, arg_str(args, 0), (size_t)arg_int(args, 1)) !=
      MPROC_OK)
    return 2;
  std::memset(mproc_shm_ptr(s), 0x5a, mproc_shm_size(s));
  if (arg_int(args, 2) && mproc_shm_keep(s) != MPROC_OK)
    return 3;
  if (!test_write_all(h, "R", 1))
    return 4;
  if (arg_int(args, 4)) {
    test_sleep_ms(60000);
    return 5;
  }
  mproc_shm_free(s);
  return 0;
}

// Value/Array children.  Arg 0: the array object.  Adds 1 to element 0
// (int64) arg 1 times, each time under the array's lock, with a read and a
// separate write so that a missing lock loses updates.
TEST_ENTRY(array_add_locked) {
  void *o = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_ARRAY, &o) != MPROC_OK)
    return 2;
  mproc_array *a = static_cast<mproc_array *>(o);
  mproc_lock *lk = mproc_array_lock(a);
  if (!lk || mproc_array_type(a) != MPROC_INT64 || mproc_array_length(a) != 1)
    return 3;
  volatile int64_t *v = static_cast<volatile int64_t *>(mproc_array_ptr(a));
  int64_t n = arg_int(args, 1);
  for (int64_t i = 0; i < n; i++) {
    if (mproc_lock_acquire(lk, 60) != MPROC_OK)
      return 4;
    int64_t x = *v;
    if ((i & 63) == 0)
      test_sleep_ms(0); // invite a switch inside the critical section
    *v = x + 1;
    if (mproc_lock_release(lk) != MPROC_OK)
      return 5;
  }
  return 0;
}

// Raw double array (arg 0), no lock: writes slot arg 1 of every row of
// width arg 2 with (slot * 1000 + row) + 0.5.
TEST_ENTRY(array_raw_write) {
  void *o = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_ARRAY, &o) != MPROC_OK)
    return 2;
  mproc_array *a = static_cast<mproc_array *>(o);
  if (mproc_array_lock(a) != nullptr || mproc_array_type(a) != MPROC_DOUBLE)
    return 3;
  size_t slot = (size_t)arg_int(args, 1), width = (size_t)arg_int(args, 2);
  size_t len = mproc_array_length(a);
  if (width == 0 || len % width != 0 || slot >= width)
    return 4;
  double *d = static_cast<double *>(mproc_array_ptr(a));
  for (size_t row = 0; row < len / width; row++)
    d[row * width + slot] = (double)(slot * 1000 + row) + 0.5;
  return 0;
}

// Checks type arg 1 and length arg 2 of the array in arg 0, whether it has a
// lock (arg 3), and that every element's first byte is arg 4.
TEST_ENTRY(array_check_meta) {
  void *o = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_ARRAY, &o) != MPROC_OK)
    return 2;
  mproc_array *a = static_cast<mproc_array *>(o);
  if ((int64_t)mproc_array_type(a) != arg_int(args, 1))
    return 3;
  if ((int64_t)mproc_array_length(a) != arg_int(args, 2))
    return 4;
  if ((mproc_array_lock(a) != nullptr) != (arg_int(args, 3) != 0))
    return 5;
  const uint8_t *p = static_cast<const uint8_t *>(mproc_array_ptr(a));
  if (!p || p[0] != (uint8_t)arg_int(args, 4))
    return 6;
  return 0;
}

// The array's lock is held by the parent: a short acquire must time out.
TEST_ENTRY(array_lock_is_shared) {
  void *o = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_ARRAY, &o) != MPROC_OK)
    return 2;
  mproc_lock *lk = mproc_array_lock(static_cast<mproc_array *>(o));
  if (!lk)
    return 3;
  int rc = mproc_lock_acquire(lk, 0.2);
  return rc == MPROC_ETIMEDOUT ? 0 : 10 + (-rc);
}

// ---- SharedMemory ----------------------------------------------------------

TEST(Shm, AnonymousBlockIsZeroFilledWithAccessors) {
  Shm b;
  ASSERT_EQ(mproc_shm_create(&b.s, nullptr, 100000), MPROC_OK);
  ASSERT_NE(b.p(), nullptr);
  EXPECT_EQ(mproc_shm_size(b.s), 100000u);
  EXPECT_EQ(mproc_shm_name(b.s), nullptr);
  EXPECT_EQ((uintptr_t)b.p() % 16, 0u);
  for (size_t i = 0; i < 100000; i++)
    ASSERT_EQ(b.p()[i], 0) << i;
  std::memset(b.p(), 0xab, 100000);
  EXPECT_EQ(mproc_shm_unlink(b.s), MPROC_ESTATE);
  EXPECT_EQ(mproc_shm_keep(b.s), MPROC_ESTATE);
}

TEST(Shm, BadInput) {
  mproc_shm *s = reinterpret_cast<mproc_shm *>(1);
  EXPECT_EQ(mproc_shm_create(nullptr, nullptr, 10), MPROC_EINVAL);
  EXPECT_EQ(mproc_shm_create(&s, nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(mproc_shm_create(&s, uniq("zero").c_str(), 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_shm_attach(nullptr, "x"), MPROC_EINVAL);
  EXPECT_EQ(mproc_shm_attach(&s, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_shm_ptr(nullptr), nullptr);
  EXPECT_EQ(mproc_shm_size(nullptr), 0u);
  EXPECT_EQ(mproc_shm_name(nullptr), nullptr);
  EXPECT_EQ(mproc_shm_unlink(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_shm_keep(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_shm_free(nullptr), nullptr);
  // Another IPC object is not a block.
  Arr a;
  ASSERT_EQ(mproc_array_create(&a.a, MPROC_INT32, 4, 0), MPROC_OK);
  EXPECT_EQ(mproc_shm_ptr(reinterpret_cast<mproc_shm *>(a.a)), nullptr);
  EXPECT_EQ(mproc_shm_unlink(reinterpret_cast<mproc_shm *>(a.a)),
            MPROC_EINVAL);
  // Objects that are not mproc objects cannot be passed.
  Args args;
  // As large and as aligned as an object header (the check reads one; a bare
  // int here is a misaligned, out-of-bounds read that UBSan traps on).
  struct {
    uint32_t word;
    void *ptr;
  } not_an_object = {0, nullptr};
  EXPECT_EQ(mproc_args_add_object(args.a, nullptr, &not_an_object),
            MPROC_EINVAL);
}

TEST(Shm, NameValidation) {
  const std::string long_ok(MPROC_SHM_NAME_MAX, 'n');
  const std::string too_long(MPROC_SHM_NAME_MAX + 1, 'n');
  const char *bad[] = {"",      ".",     "..",   "a/b",  "/abc", "a\\b",
                       "a b",   "tab\t", "q?",   "st*r", "c:x",  "\xc3\xa9t\xc3\xa9",
                       "x\n"};
  for (const char *n : bad) {
    mproc_shm *s = nullptr;
    EXPECT_EQ(mproc_shm_create(&s, n, 64), MPROC_EINVAL) << "'" << n << "'";
    EXPECT_EQ(s, nullptr);
    EXPECT_EQ(mproc_shm_attach(&s, n), MPROC_EINVAL) << "'" << n << "'";
  }
  mproc_shm *s = nullptr;
  EXPECT_EQ(mproc_shm_create(&s, too_long.c_str(), 64), MPROC_EINVAL);
  EXPECT_EQ(mproc_shm_attach(&s, too_long.c_str()), MPROC_EINVAL);
  // The longest name, and dots and dashes that are not "." or "..".
  std::string pid = std::to_string(test_getpid());
  std::string longest = pid + "-" + long_ok.substr(pid.size() + 1);
  ASSERT_EQ(longest.size(), (size_t)MPROC_SHM_NAME_MAX);
  for (std::string n : {longest, "..." + pid, ".h" + pid, "A-z_0.9-" + pid}) {
    Shm b;
    ASSERT_EQ(mproc_shm_create(&b.s, n.c_str(), 64), MPROC_OK) << n;
    EXPECT_STREQ(mproc_shm_name(b.s), n.c_str());
    Shm c;
    EXPECT_EQ(mproc_shm_attach(&c.s, n.c_str()), MPROC_OK) << n;
  }
}

TEST(Shm, CreateAndAttachInOneProcess) {
  std::string name = uniq("same");
  Shm a, b;
  ASSERT_EQ(mproc_shm_create(&a.s, name.c_str(), 5000), MPROC_OK);
  EXPECT_STREQ(mproc_shm_name(a.s), name.c_str());
  for (size_t i = 0; i < 5000; i++)
    ASSERT_EQ(a.p()[i], 0);
  a.p()[0] = 1;
  a.p()[4999] = 2;
  ASSERT_EQ(mproc_shm_attach(&b.s, name.c_str()), MPROC_OK);
  EXPECT_EQ(mproc_shm_size(b.s), 5000u); // the exact size, on every platform
  EXPECT_STREQ(mproc_shm_name(b.s), name.c_str());
  EXPECT_NE(a.p(), b.p()); // a second mapping of the same bytes
  EXPECT_EQ(b.p()[0], 1);
  EXPECT_EQ(b.p()[4999], 2);
  b.p()[100] = 77;
  EXPECT_EQ(a.p()[100], 77);
  // Freeing an attached handle leaves the block to its creator.
  b.s = mproc_shm_free(b.s);
  ASSERT_EQ(mproc_shm_attach(&b.s, name.c_str()), MPROC_OK);
  EXPECT_EQ(b.p()[100], 77);
}

TEST(Shm, DuplicateNameIsEexist) {
  std::string name = uniq("dup");
  Shm a;
  ASSERT_EQ(mproc_shm_create(&a.s, name.c_str(), 10), MPROC_OK);
  mproc_shm *s = nullptr;
  EXPECT_EQ(mproc_shm_create(&s, name.c_str(), 10), MPROC_EEXIST);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(mproc_shm_create(&s, name.c_str(), 99999), MPROC_EEXIST);
}

TEST(Shm, MissingNameIsEnotfound) {
  mproc_shm *s = nullptr;
  EXPECT_EQ(mproc_shm_attach(&s, uniq("never").c_str()), MPROC_ENOTFOUND);
  EXPECT_EQ(s, nullptr);
}

TEST(Shm, CreatorFreeUnlinks) {
  std::string name = uniq("gone");
  mproc_shm *s = nullptr;
  ASSERT_EQ(mproc_shm_create(&s, name.c_str(), 10), MPROC_OK);
  mproc_shm_free(s);
  EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_ENOTFOUND);
  // The name is free again.
  ASSERT_EQ(mproc_shm_create(&s, name.c_str(), 20), MPROC_OK);
  EXPECT_EQ(mproc_shm_size(s), 20u);
  mproc_shm_free(s);
}

TEST(Shm, UnlinkRemovesTheNameNotTheMapping) {
  std::string name = uniq("unl");
  Shm a, b;
  ASSERT_EQ(mproc_shm_create(&a.s, name.c_str(), 4096), MPROC_OK);
  ASSERT_EQ(mproc_shm_attach(&b.s, name.c_str()), MPROC_OK);
  EXPECT_EQ(mproc_shm_unlink(b.s), MPROC_OK); // any process may unlink
  EXPECT_EQ(mproc_shm_unlink(b.s), MPROC_ENOTFOUND);
  a.p()[7] = 42; // both mappings still work
  EXPECT_EQ(b.p()[7], 42);
  EXPECT_STREQ(mproc_shm_name(b.s), name.c_str());
  mproc_shm *s = nullptr;
  if (test_on_windows()) {
    // A Windows mapping's name lives until its last handle is closed (the
    // documented behaviour of mproc__seg_unlink and of Python).
    b.s = mproc_shm_free(b.s);
    a.s = mproc_shm_free(a.s);
    EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_ENOTFOUND);
  } else {
    EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_ENOTFOUND);
    EXPECT_EQ(mproc_shm_unlink(a.s), MPROC_ENOTFOUND);
    // A new block may take the name; the old creator's free leaves it.
    Shm c;
    ASSERT_EQ(mproc_shm_create(&c.s, name.c_str(), 8), MPROC_OK);
    a.s = mproc_shm_free(a.s);
    ASSERT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_OK);
    EXPECT_EQ(mproc_shm_size(s), 8u);
    mproc_shm_free(s);
  }
}

TEST(Shm, KeepOutlivesTheCreatorsFree) {
  std::string name = uniq("keep");
  mproc_shm *s = nullptr, *t = nullptr;
  ASSERT_EQ(mproc_shm_create(&s, name.c_str(), 64), MPROC_OK);
  static_cast<uint8_t *>(mproc_shm_ptr(s))[3] = 9;
  ASSERT_EQ(mproc_shm_attach(&t, name.c_str()), MPROC_OK);
  EXPECT_EQ(mproc_shm_keep(s), MPROC_OK);
  mproc_shm_free(s);
  s = nullptr;
  ASSERT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_OK);
  EXPECT_EQ(static_cast<uint8_t *>(mproc_shm_ptr(s))[3], 9);
  EXPECT_EQ(mproc_shm_unlink(s), MPROC_OK);
  mproc_shm_free(s);
  mproc_shm_free(t);
  EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_ENOTFOUND);
}

TEST(Shm, ChildAttachesByNameAndWrites) {
  std::string name = uniq("child");
  const size_t n = 200000;
  Shm b;
  ASSERT_EQ(mproc_shm_create(&b.s, name.c_str(), n), MPROC_OK);
  Args a;
  a.s(name.c_str()).i((int64_t)n).i(3);
  EXPECT_EQ(run_child("shm_attach_and_write", a), 0);
  for (size_t i = 0; i < n; i++)
    ASSERT_EQ(b.p()[i], pattern(i, 3)) << i;
  // The child's free did not take the name away.
  Shm c;
  EXPECT_EQ(mproc_shm_attach(&c.s, name.c_str()), MPROC_OK);
}

TEST(Shm, AnonymousBlockPassedToChild) {
  const size_t n = 1 << 20;
  Shm b;
  ASSERT_EQ(mproc_shm_create(&b.s, nullptr, n), MPROC_OK);
  for (size_t i = 0; i < n; i++)
    b.p()[i] = pattern(i, 1);
  Args a;
  ASSERT_EQ(mproc_args_add_object(a.a, nullptr, b.s), MPROC_OK);
  a.i(1).i(2).i(0).i((int64_t)n).s("");
  EXPECT_EQ(run_child("shm_obj_check_and_write", a), 0);
  for (size_t i = 0; i < n; i++)
    ASSERT_EQ(b.p()[i], pattern(i, 2)) << i;
}

TEST(Shm, NamedBlockPassedToChildKeepsItsName) {
  std::string name = uniq("named-obj");
  Shm b;
  ASSERT_EQ(mproc_shm_create(&b.s, name.c_str(), 3000), MPROC_OK);
  Args a;
  ASSERT_EQ(mproc_args_add_object(a.a, "blk", b.s), MPROC_OK);
  ASSERT_EQ(mproc_args_add_object(a.a, nullptr, b.s), MPROC_OK);
  a.i(-1).i(5).i(0).i(3000).s(name.c_str());
  EXPECT_EQ(run_child("shm_obj_check_and_write", a), 0);
  for (size_t i = 0; i < 3000; i++)
    ASSERT_EQ(b.p()[i], pattern(i, 5)) << i;
  Shm c;
  EXPECT_EQ(mproc_shm_attach(&c.s, name.c_str()), MPROC_OK);
  // The wrong type is refused in the child.
  Args w;
  ASSERT_EQ(mproc_args_add_object(w.a, nullptr, b.s), MPROC_OK);
  EXPECT_EQ(run_child("shm_obj_wrong_type", w), 0);
}

TEST(Shm, SeveralChildrenShareOneBlock) {
  const int kids = 4;
  const size_t slice = 50000;
  Shm b;
  ASSERT_EQ(mproc_shm_create(&b.s, nullptr, slice * kids), MPROC_OK);
  std::vector<mproc_process *> ps;
  for (int k = 0; k < kids; k++) {
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, b.s), MPROC_OK);
    a.i(-1).i(10 + k).i((int64_t)(k * slice)).i((int64_t)((k + 1) * slice))
        .s("");
    ps.push_back(test_start("shm_obj_check_and_write", a));
  }
  for (mproc_process *p : ps)
    EXPECT_EQ(join_free(p), 0);
  for (int k = 0; k < kids; k++)
    for (size_t i = k * slice; i < (k + 1) * slice; i++)
      ASSERT_EQ(b.p()[i], pattern(i, 10 + k)) << i;
}

#ifndef _WIN32
TEST(ShmPosix, OwnerOnlyPermissions) {
  std::string name = uniq("mode");
  Shm b;
  ASSERT_EQ(mproc_shm_create(&b.s, name.c_str(), 10), MPROC_OK);
  struct stat st;
  ASSERT_EQ(stat(dev_shm_path(name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
}

TEST(ShmPosix, NothingLeftInDevShmAfterFree) {
  std::vector<std::string> names;
  {
    Shm anon, n1, n2, kept;
    ASSERT_EQ(mproc_shm_create(&anon.s, nullptr, 100), MPROC_OK);
    for (Shm *s : {&n1, &n2, &kept}) {
      names.push_back(uniq("left"));
      ASSERT_EQ(mproc_shm_create(&s->s, names.back().c_str(), 100), MPROC_OK);
      EXPECT_TRUE(dev_shm_exists(names.back()));
    }
    // A child that used the blocks, by object and by name.
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, n1.s), MPROC_OK);
    a.i(-1).i(1).i(0).i(100).s(names[0].c_str());
    EXPECT_EQ(run_child("shm_obj_check_and_write", a), 0);
    Args b;
    b.s(names[1].c_str()).i(100).i(2);
    EXPECT_EQ(run_child("shm_attach_and_write", b), 0);
    // A kept block stays until someone unlinks it.
    ASSERT_EQ(mproc_shm_keep(kept.s), MPROC_OK);
  }
  EXPECT_FALSE(dev_shm_exists(names[0]));
  EXPECT_FALSE(dev_shm_exists(names[1]));
  EXPECT_TRUE(dev_shm_exists(names[2]));
  Shm k;
  ASSERT_EQ(mproc_shm_attach(&k.s, names[2].c_str()), MPROC_OK);
  EXPECT_EQ(mproc_shm_unlink(k.s), MPROC_OK);
  EXPECT_FALSE(dev_shm_exists(names[2]));
}

// A child that made a block and was killed before freeing it leaves its
// name behind; cleanup removes it.  Blocks whose creator lives, and blocks
// kept on purpose, stay.
TEST(ShmPosix, CleanupRemovesLeftoverOfKilledCreator) {
  std::string dead = uniq("dead"), kept = uniq("kept-dead"), live = uniq("live");
  Shm mine;
  ASSERT_EQ(mproc_shm_create(&mine.s, live.c_str(), 10), MPROC_OK);
  for (int keep = 0; keep < 2; keep++) {
    TestPipe tp;
    Args a;
    a.s(keep ? kept.c_str() : dead.c_str()).i(4096).i(keep).h(tp.w).i(1);
    mproc_process *p = test_start("shm_create_named", a);
    tp.close_w();
    EXPECT_EQ(test_read_n(tp.r, 1), "R");
    EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    EXPECT_EQ(join_free(p), -9);
  }
  EXPECT_TRUE(dev_shm_exists(dead));
  EXPECT_TRUE(dev_shm_exists(kept));
  int removed = mproc_shm_cleanup();
  EXPECT_GE(removed, 1);
  EXPECT_FALSE(dev_shm_exists(dead));
  mproc_shm *s = nullptr;
  EXPECT_EQ(mproc_shm_attach(&s, dead.c_str()), MPROC_ENOTFOUND);
  EXPECT_TRUE(dev_shm_exists(live));
  EXPECT_TRUE(dev_shm_exists(kept));
  ASSERT_EQ(mproc_shm_attach(&s, kept.c_str()), MPROC_OK);
  EXPECT_EQ(static_cast<uint8_t *>(mproc_shm_ptr(s))[4095], 0x5a);
  EXPECT_EQ(mproc_shm_unlink(s), MPROC_OK);
  mproc_shm_free(s);
  EXPECT_GE(mproc_shm_cleanup(), 0);
  EXPECT_TRUE(dev_shm_exists(live));
}
#endif

// Attaching while another thread creates the block: attach sees either no
// block or the complete one (never a half-made one), and sees it once
// create has returned.
TEST(Shm, AttachRacingCreate) {
  // Up to 100 races, fewer (at least 20) past 10 s: the attaching thread
  // spins, slow beside busy processes.
  for (TestRounds r(20, 100, 10); r.next();) {
    std::string name = uniq("race");
    std::atomic<int> bad{0}, created{0};
    std::thread t([&] {
      for (;;) {
        int was_created = created.load();
        mproc_shm *s = nullptr;
        int rc = mproc_shm_attach(&s, name.c_str());
        if (rc == MPROC_OK) {
          if (mproc_shm_size(s) != 1234 ||
              static_cast<uint8_t *>(mproc_shm_ptr(s))[1233] != 0)
            bad++;
          mproc_shm_free(s);
          return;
        }
        if (rc != MPROC_ENOTFOUND || was_created) {
          bad++;
          return;
        }
      }
    });
    Shm b;
    ASSERT_EQ(mproc_shm_create(&b.s, name.c_str(), 1234), MPROC_OK);
    created = 1;
    t.join();
    ASSERT_EQ(bad.load(), 0) << r.i();
  }
}

#ifndef _WIN32
// Something under the name that is not a complete mproc block (a creator
// that died before sizing it, or another program's object): attach waits a
// little for it to complete, then reports no block.
TEST(ShmPosix, IncompleteBlockIsNotFound) {
  std::string name = uniq("half");
  std::string path = "/mproc." + name;
  int fd = shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  mproc_shm *s = nullptr;
  double t0 = test_now();
  EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_ENOTFOUND);
  EXPECT_EQ(s, nullptr);
  EXPECT_LT(test_now() - t0, 30.0);
  EXPECT_EQ(mproc_shm_create(&s, name.c_str(), 8), MPROC_EEXIST);
  shm_unlink(path.c_str());
}

// ---- names another user got to first (issue 8, item 1) ----------------------
// A name is predictable, so anyone may create /dev/shm/mproc.<name> before
// us.  Attach must refuse what is not this user's private block (with
// MPROC_EPERM, at once), create must report MPROC_EEXIST, and neither may
// follow a link or map a file shorter than its header says.

namespace {

// Creates /dev/shm/mproc.<name> with an mproc header claiming `claimed`
// bytes, `file_size` bytes long (header included), with `mode`.  Returns
// the open descriptor (for fchown), or -1.
int plant_block(const std::string &name, mode_t mode, uint64_t claimed,
                off_t file_size) {
  int fd = open(dev_shm_path(name).c_str(),
                O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  unsigned char h[64] = {0};
  std::memcpy(h, "MPROCSHM", 8);
  uint32_t version = 1;
  int64_t creator = test_getpid(); // alive: no cleanup takes it meanwhile
  std::memcpy(h + 8, &version, 4);
  std::memcpy(h + 16, &creator, 8);
  std::memcpy(h + 24, &claimed, 8);
  if (ftruncate(fd, file_size) != 0 ||
      pwrite(fd, h, sizeof h, 0) != (ssize_t)sizeof h ||
      fchmod(fd, mode) != 0) {
    close(fd);
    unlink(dev_shm_path(name).c_str());
    return -1;
  }
  return fd;
}

// Removes a planted name (file, link, fifo or directory) at scope exit.
struct Planted {
  std::string path;
  explicit Planted(const std::string &name) : path(dev_shm_path(name)) {}
  ~Planted() {
    if (unlink(path.c_str()) != 0)
      rmdir(path.c_str());
  }
};

} // namespace

// Runs mproc_shm_cleanup(): 0 if it returned a count.
TEST_ENTRY(shm_run_cleanup) { return mproc_shm_cleanup() >= 0 ? 0 : 1; }

// A complete mproc block of ours whose mode lets the group or others in
// (someone widened it, or planted it with our uid): not private, refused.
TEST(ShmPosix, AttachRefusesBlockOpenToOthers) {
  for (mode_t mode : {0666, 0644, 0640, 0604, 0620, 0602, 0700 | 0010}) {
    std::string name = uniq("open");
    Shm mine;
    ASSERT_EQ(mproc_shm_create(&mine.s, name.c_str(), 100), MPROC_OK);
    ASSERT_EQ(chmod(dev_shm_path(name).c_str(), mode), 0);
    mproc_shm *s = nullptr;
    double t0 = test_now();
    EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_EPERM) << std::oct
                                                                << mode;
    EXPECT_EQ(s, nullptr);
    EXPECT_LT(test_now() - t0, 1.5); // refused, not waited on
    // Put back, it is ours and private again: attach works.
    ASSERT_EQ(chmod(dev_shm_path(name).c_str(), 0600), 0);
    ASSERT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_OK);
    mproc_shm_free(s);
  }
}

// The attack of the issue: another user creates the name first (here a
// complete block, mode 0600 or 0666, owned by "nobody").  Attach must not
// hand us the attacker's file; create reports the name taken.
TEST(ShmPosix, AttachRefusesAnotherUsersBlock) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root to give a file to another uid (the mode "
                    "check is covered by AttachRefusesBlockOpenToOthers)";
  for (mode_t mode : {0600, 0666}) {
    std::string name = uniq("theirs");
    int fd = plant_block(name, mode, 4096, 64 + 4096);
    ASSERT_GE(fd, 0);
    Planted gone(name);
    ASSERT_EQ(fchown(fd, 65534, 65534), 0);
    close(fd);
    mproc_shm *s = nullptr;
    EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_EPERM) << std::oct
                                                                << mode;
    EXPECT_EQ(s, nullptr);
    EXPECT_EQ(mproc_shm_create(&s, name.c_str(), 4096), MPROC_EEXIST);
    EXPECT_EQ(s, nullptr);
  }
  // A block we made and someone gave away later is not ours either.
  std::string name = uniq("given");
  Shm mine;
  ASSERT_EQ(mproc_shm_create(&mine.s, name.c_str(), 100), MPROC_OK);
  ASSERT_EQ(chown(dev_shm_path(name).c_str(), 65534, 65534), 0);
  mproc_shm *s = nullptr;
  EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_EPERM);
  EXPECT_EQ(s, nullptr);
}

// A symbolic link at the name (to one of our blocks, or to nowhere): attach
// does not follow it, create does not create its target.
TEST(ShmPosix, SymlinkAtTheNameIsNotFollowed) {
  std::string target = uniq("target"), link = uniq("link"),
              dangling = uniq("dangling"), nowhere = uniq("nowhere");
  Shm t;
  ASSERT_EQ(mproc_shm_create(&t.s, target.c_str(), 100), MPROC_OK);
  std::memset(t.p(), 0x11, 100);
  ASSERT_EQ(symlink(dev_shm_path(target).c_str(), dev_shm_path(link).c_str()),
            0);
  Planted gone1(link);
  ASSERT_EQ(
      symlink(dev_shm_path(nowhere).c_str(), dev_shm_path(dangling).c_str()),
      0);
  Planted gone2(dangling);
  for (const std::string &name : {link, dangling}) {
    mproc_shm *s = nullptr;
    EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_EPERM) << name;
    EXPECT_EQ(s, nullptr);
    EXPECT_EQ(mproc_shm_create(&s, name.c_str(), 100), MPROC_EEXIST) << name;
    EXPECT_EQ(s, nullptr);
  }
  EXPECT_FALSE(dev_shm_exists(nowhere));
  EXPECT_EQ(mproc_shm_size(t.s), 100u);
  EXPECT_EQ(t.p()[99], 0x11);
}

// A hard link at the name leads to another block (a user who can make links
// to the victim's files could swap one block for another): refused.
TEST(ShmPosix, HardLinkAtTheNameIsRefused) {
  std::string target = uniq("hltarget"), link = uniq("hlink");
  Shm t;
  ASSERT_EQ(mproc_shm_create(&t.s, target.c_str(), 100), MPROC_OK);
  ASSERT_EQ(::link(dev_shm_path(target).c_str(), dev_shm_path(link).c_str()),
            0);
  Planted gone(link);
  mproc_shm *s = nullptr;
  EXPECT_EQ(mproc_shm_attach(&s, link.c_str()), MPROC_EPERM);
  EXPECT_EQ(s, nullptr);
  // The block itself now has two names: no longer private to one name.
  EXPECT_EQ(mproc_shm_attach(&s, target.c_str()), MPROC_EPERM);
  EXPECT_EQ(s, nullptr);
}

// A fifo or a directory at the name is no block: refused at once, and
// neither attach nor cleanup blocks on the fifo (opening one for reading
// waits for a writer).
TEST(ShmPosix, NonRegularFileAtTheNameIsRefused) {
  std::string fifo = uniq("fifo"), dir = uniq("dir");
  ASSERT_EQ(mkfifo(dev_shm_path(fifo).c_str(), 0600), 0);
  Planted gone1(fifo);
  ASSERT_EQ(mkdir(dev_shm_path(dir).c_str(), 0700), 0);
  Planted gone2(dir);
  for (const std::string &name : {fifo, dir}) {
    mproc_shm *s = nullptr;
    double t0 = test_now();
    EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_EPERM) << name;
    EXPECT_LT(test_now() - t0, 1.5);
    EXPECT_EQ(mproc_shm_create(&s, name.c_str(), 100), MPROC_EEXIST) << name;
    EXPECT_EQ(s, nullptr);
  }
  // In a child, so that a cleanup stuck on the fifo fails this test
  // instead of hanging the binary.
  mproc_process *p = test_start("shm_run_cleanup");
  EXPECT_EQ(test_join_code(p, 30), 0);
  mproc_process_free(p);
}

// A file of ours whose header claims more (or fewer) bytes than it has is
// refused, never mapped past its end (touching a page past the end of a
// file is SIGBUS).
TEST(ShmPosix, BlockShorterThanItsHeaderSaysIsRefused) {
  struct {
    uint64_t claimed;
    off_t file_size;
  } cases[] = {{1 << 20, 64 + 100}, {100, 64 + 4096}};
  for (const auto &c : cases) {
    std::string name = uniq("short");
    int fd = plant_block(name, 0600, c.claimed, c.file_size);
    ASSERT_GE(fd, 0);
    Planted gone(name);
    close(fd);
    mproc_shm *s = nullptr;
    EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_ENOTFOUND)
        << c.claimed << " " << c.file_size;
    EXPECT_EQ(s, nullptr);
  }
}

// Cleanup removes only this user's regular files: a stale-looking block of
// another user stays.
TEST(ShmPosix, CleanupLeavesOtherUsersBlocks) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root to give a file to another uid";
  std::string name = uniq("theirs-stale");
  int fd = plant_block(name, 0600, 100, 64 + 100);
  ASSERT_GE(fd, 0);
  Planted gone(name);
  // Creator pid 0: nobody, so it would look stale if it were ours.
  int64_t none = 0;
  ASSERT_EQ(pwrite(fd, &none, 8, 16), 8);
  ASSERT_EQ(fchown(fd, 65534, 65534), 0);
  close(fd);
  EXPECT_GE(mproc_shm_cleanup(), 0);
  EXPECT_TRUE(dev_shm_exists(name));
}

// The name of a block we created was removed behind our back and is now
// someone else's block (here: a new one of ours; as root also another
// user's file).  Unlinking, or the creator's free, must not remove it.
TEST(ShmPosix, UnlinkLeavesWhatIsNowUnderTheName) {
  std::string name = uniq("reused");
  mproc_shm *first = nullptr;
  ASSERT_EQ(mproc_shm_create(&first, name.c_str(), 10), MPROC_OK);
  ASSERT_EQ(unlink(dev_shm_path(name).c_str()), 0);
  Shm second;
  ASSERT_EQ(mproc_shm_create(&second.s, name.c_str(), 20), MPROC_OK);
  mproc_shm_free(first); // the creator's free unlinks "its" name
  EXPECT_TRUE(dev_shm_exists(name));
  mproc_shm *again = nullptr;
  ASSERT_EQ(mproc_shm_attach(&again, name.c_str()), MPROC_OK);
  EXPECT_EQ(mproc_shm_size(again), 20u);
  mproc_shm_free(again);
  if (geteuid() != 0)
    return;
  // Another user's file under the name of a block we attached to.
  ASSERT_EQ(mproc_shm_attach(&again, name.c_str()), MPROC_OK);
  ASSERT_EQ(mproc_shm_unlink(second.s), MPROC_OK);
  int fd = plant_block(name, 0600, 100, 64 + 100);
  ASSERT_GE(fd, 0);
  Planted gone(name);
  ASSERT_EQ(fchown(fd, 65534, 65534), 0);
  close(fd);
  EXPECT_EQ(mproc_shm_unlink(again), MPROC_ENOTFOUND);
  EXPECT_TRUE(dev_shm_exists(name));
  mproc_shm_free(again);
}

// A umask that takes the owner's write bit away must not leave a block
// its own user cannot attach to: create makes it exactly 0600.
TEST(ShmPosix, CreateIsOwnerReadWriteWhateverTheUmask) {
  std::string name = uniq("umask");
  mode_t old = umask(0277);
  Shm b;
  int rc = mproc_shm_create(&b.s, name.c_str(), 10);
  umask(old);
  ASSERT_EQ(rc, MPROC_OK);
  struct stat st;
  ASSERT_EQ(stat(dev_shm_path(name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}
#endif

#ifdef _WIN32
// ---- names another user got to first, Windows (issue 8, item 1) -------------
// Any process of the session may create "Local\mproc-<name>" first, with
// security of its choosing; OpenFileMapping would hand us that section.
// Attach must refuse a section not owned by this user or whose DACL lets
// anyone else in (MPROC_EPERM); create reports the name taken.

namespace {

// A security descriptor for a planted section: the owner, and a DACL of
// grants (an empty list with `null_dacl`: no DACL at all, which lets
// everyone in).
struct Security {
  SECURITY_DESCRIPTOR sd;
  std::vector<unsigned char> acl_buf;
  std::vector<std::vector<unsigned char>> sids;
};

std::vector<unsigned char> sid_bytes(PSID sid) {
  const unsigned char *p = static_cast<const unsigned char *>(sid);
  return std::vector<unsigned char>(p, p + GetLengthSid(sid));
}

std::vector<unsigned char> my_sid() {
  HANDLE token = nullptr;
  std::vector<unsigned char> out;
  DWORD len = 0;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return out;
  GetTokenInformation(token, TokenUser, nullptr, 0, &len);
  std::vector<unsigned char> buf(len ? len : 1);
  if (GetTokenInformation(token, TokenUser, buf.data(), len, &len))
    out = sid_bytes(reinterpret_cast<TOKEN_USER *>(buf.data())->User.Sid);
  CloseHandle(token);
  return out;
}

std::vector<unsigned char> well_known_sid(WELL_KNOWN_SID_TYPE type) {
  std::vector<unsigned char> buf(SECURITY_MAX_SID_SIZE);
  DWORD len = (DWORD)buf.size();
  if (!CreateWellKnownSid(type, nullptr, buf.data(), &len))
    return {};
  buf.resize(len);
  return buf;
}

// Fills `s` (which must stay alive while used) for `owner` and grants of
// FILE_MAP_ALL_ACCESS to `grantees`.
bool make_security(Security &s, const std::vector<unsigned char> &owner,
                   const std::vector<std::vector<unsigned char>> &grantees,
                   bool null_dacl) {
  s.sids = grantees;
  s.sids.push_back(owner);
  DWORD len = sizeof(ACL);
  for (auto &g : grantees)
    len += (DWORD)(sizeof(ACCESS_ALLOWED_ACE) + g.size());
  s.acl_buf.assign((len + 3) & ~3u, 0);
  PACL acl = reinterpret_cast<PACL>(s.acl_buf.data());
  if (!InitializeSecurityDescriptor(&s.sd, SECURITY_DESCRIPTOR_REVISION) ||
      !InitializeAcl(acl, (DWORD)s.acl_buf.size(), ACL_REVISION))
    return false;
  for (size_t i = 0; i + 1 < s.sids.size(); i++)
    if (!AddAccessAllowedAce(acl, ACL_REVISION, FILE_MAP_ALL_ACCESS,
                             s.sids[i].data()))
      return false;
  return SetSecurityDescriptorOwner(&s.sd, s.sids.back().data(), FALSE) &&
         SetSecurityDescriptorDacl(&s.sd, TRUE, null_dacl ? nullptr : acl,
                                   FALSE);
}

// Creates "Local\mproc-<name>" with `sd` and a complete mproc header for
// a block of `size` bytes.  NULL (GetLastError() says why) on failure.
HANDLE plant_section(const std::string &name, SECURITY_DESCRIPTOR *sd,
                     uint64_t size) {
  std::wstring w = L"Local\\mproc-" + std::wstring(name.begin(), name.end());
  SECURITY_ATTRIBUTES sa = {sizeof(sa), sd, FALSE};
  SetLastError(0);
  HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, &sa, PAGE_READWRITE, 0,
                                (DWORD)(64 + size), w.c_str());
  if (!h)
    return nullptr;
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    CloseHandle(h);
    SetLastError(ERROR_ALREADY_EXISTS);
    return nullptr;
  }
  unsigned char *p = static_cast<unsigned char *>(
      MapViewOfFile(h, FILE_MAP_WRITE, 0, 0, 0));
  if (!p) {
    DWORD err = GetLastError();
    CloseHandle(h);
    SetLastError(err);
    return nullptr;
  }
  uint32_t version = 1;
  int64_t creator = test_getpid();
  std::memcpy(p + 8, &version, 4);
  std::memcpy(p + 16, &creator, 8);
  std::memcpy(p + 24, &size, 8);
  std::memcpy(p, "MPROCSHM", 8);
  UnmapViewOfFile(p);
  return h;
}

} // namespace

// Control: a section planted with what mproc itself gives its sections
// (owner and only grantee: this user) is accepted, so the refusals below
// are about the security, not about planting.
TEST(ShmWin32, AttachAcceptsAnOwnerOnlySection) {
  std::vector<unsigned char> me = my_sid();
  ASSERT_FALSE(me.empty());
  Security sec;
  ASSERT_TRUE(make_security(sec, me, {me}, false));
  std::string name = uniq("mine");
  HANDLE h = plant_section(name, &sec.sd, 100);
  ASSERT_NE(h, nullptr) << GetLastError();
  Shm b;
  EXPECT_EQ(mproc_shm_attach(&b.s, name.c_str()), MPROC_OK);
  EXPECT_EQ(mproc_shm_size(b.s), 100u);
  CloseHandle(h);
}

// Our owner, but a DACL that also lets others in (no DACL at all, or a
// grant to Everyone): refused.
TEST(ShmWin32, AttachRefusesASectionOpenToOthers) {
  std::vector<unsigned char> me = my_sid(),
                             world = well_known_sid(WinWorldSid);
  ASSERT_FALSE(me.empty());
  ASSERT_FALSE(world.empty());
  for (int null_dacl = 0; null_dacl < 2; null_dacl++) {
    Security sec;
    ASSERT_TRUE(make_security(sec, me, {me, world}, null_dacl != 0));
    std::string name = uniq("open");
    HANDLE h = plant_section(name, &sec.sd, 100);
    ASSERT_NE(h, nullptr) << GetLastError();
    mproc_shm *s = nullptr;
    EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_EPERM) << null_dacl;
    EXPECT_EQ(s, nullptr);
    EXPECT_EQ(mproc_shm_create(&s, name.c_str(), 100), MPROC_EEXIST);
    EXPECT_EQ(s, nullptr);
    mproc_shm_free(s);
    CloseHandle(h);
  }
}

// Another owner (the section of another user who granted us access):
// refused.  Windows lets a token name only itself or its owner groups as
// owner (else ERROR_INVALID_OWNER, short of SeRestorePrivilege).
TEST(ShmWin32, AttachRefusesASectionOwnedBySomeoneElse) {
  std::vector<unsigned char> me = my_sid(),
                             other = well_known_sid(WinLocalServiceSid);
  ASSERT_FALSE(me.empty());
  ASSERT_FALSE(other.empty());
  Security sec;
  ASSERT_TRUE(make_security(sec, other, {me}, false));
  std::string name = uniq("theirs");
  HANDLE h = plant_section(name, &sec.sd, 100);
  if (!h && GetLastError() == ERROR_INVALID_OWNER)
    GTEST_SKIP() << "this token may not make another SID the owner";
  ASSERT_NE(h, nullptr) << GetLastError();
  mproc_shm *s = nullptr;
  EXPECT_EQ(mproc_shm_attach(&s, name.c_str()), MPROC_EPERM);
  EXPECT_EQ(s, nullptr);
  mproc_shm_free(s);
  CloseHandle(h);
}
#endif

// A block created and kept by a child that exited: on POSIX it outlives
// the child; on Windows a mapping ends with its last handle.
TEST(Shm, KeptBlockOfAnExitedChild) {
  std::string name = uniq("from-child");
  TestPipe tp;
  Args a;
  a.s(name.c_str()).i(777).i(1).h(tp.w).i(0);
  mproc_process *p = test_start("shm_create_named", a);
  tp.close_w();
  EXPECT_EQ(test_read_n(tp.r, 1), "R");
  EXPECT_EQ(join_free(p), 0);
  Shm b;
  if (test_on_windows()) {
    EXPECT_EQ(mproc_shm_attach(&b.s, name.c_str()), MPROC_ENOTFOUND);
    EXPECT_EQ(mproc_shm_cleanup(), 0);
    return;
  }
  ASSERT_EQ(mproc_shm_attach(&b.s, name.c_str()), MPROC_OK);
  EXPECT_EQ(mproc_shm_size(b.s), 777u);
  EXPECT_EQ(b.p()[776], 0x5a);
  EXPECT_EQ(mproc_shm_unlink(b.s), MPROC_OK);
}

// ---- Value and Array -------------------------------------------------------

TEST(Array, TypesLengthsAndAccessors) {
  struct {
    mproc_ctype t;
    size_t size;
  } types[] = {{MPROC_INT8, 1},   {MPROC_UINT8, 1},  {MPROC_INT16, 2},
               {MPROC_UINT16, 2}, {MPROC_INT32, 4},  {MPROC_UINT32, 4},
               {MPROC_INT64, 8},  {MPROC_UINT64, 8}, {MPROC_FLOAT, 4},
               {MPROC_DOUBLE, 8}};
  for (auto &ty : types) {
    for (int lock = 0; lock < 2; lock++) {
      Arr a;
      const size_t len = 1001;
      ASSERT_EQ(mproc_array_create(&a.a, ty.t, len, lock), MPROC_OK);
      EXPECT_EQ(mproc_array_type(a.a), ty.t);
      EXPECT_EQ(mproc_array_length(a.a), len);
      EXPECT_EQ(mproc_array_lock(a.a) != nullptr, lock == 1);
      uint8_t *p = static_cast<uint8_t *>(mproc_array_ptr(a.a));
      ASSERT_NE(p, nullptr);
      EXPECT_EQ((uintptr_t)p % ty.size, 0u);
      for (size_t i = 0; i < len * ty.size; i++)
        ASSERT_EQ(p[i], 0);
      std::memset(p, 0xee, len * ty.size); // all of it is writable
    }
  }
}

TEST(Array, BadInput) {
  mproc_array *a = reinterpret_cast<mproc_array *>(1);
  EXPECT_EQ(mproc_array_create(nullptr, MPROC_INT32, 1, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_array_create(&a, (mproc_ctype)0, 1, 0), MPROC_EINVAL);
  EXPECT_EQ(a, nullptr);
  EXPECT_EQ(mproc_array_create(&a, (mproc_ctype)11, 1, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_array_create(&a, MPROC_INT32, 0, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_array_create(&a, MPROC_INT32, 1, 2), MPROC_EINVAL);
  EXPECT_EQ(mproc_array_create(&a, MPROC_INT64, SIZE_MAX / 4, 0),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_array_ptr(nullptr), nullptr);
  EXPECT_EQ(mproc_array_length(nullptr), 0u);
  EXPECT_EQ((int)mproc_array_type(nullptr), 0);
  EXPECT_EQ(mproc_array_lock(nullptr), nullptr);
  EXPECT_EQ(mproc_array_free(nullptr), nullptr);
  Shm s;
  ASSERT_EQ(mproc_shm_create(&s.s, nullptr, 8), MPROC_OK);
  EXPECT_EQ(mproc_array_ptr(reinterpret_cast<mproc_array *>(s.s)), nullptr);
  EXPECT_EQ(mproc_array_lock(reinterpret_cast<mproc_array *>(s.s)), nullptr);
}

TEST(Array, ValueLockIsRecursive) {
  Arr v;
  ASSERT_EQ(mproc_array_create(&v.a, MPROC_DOUBLE, 1, 1), MPROC_OK);
  mproc_lock *lk = mproc_array_lock(v.a);
  ASSERT_NE(lk, nullptr);
  EXPECT_EQ(mproc_lock_acquire(lk, 1), MPROC_OK);
  EXPECT_EQ(mproc_lock_acquire(lk, 1), MPROC_OK);
  *static_cast<double *>(mproc_array_ptr(v.a)) = 2.5;
  EXPECT_EQ(mproc_lock_release(lk), MPROC_OK);
  EXPECT_EQ(mproc_lock_release(lk), MPROC_OK);
  EXPECT_EQ(mproc_lock_release(lk), MPROC_ESTATE);
}

TEST(Array, ChildSeesTypeLengthLockAndData) {
  Arr raw, locked;
  ASSERT_EQ(mproc_array_create(&raw.a, MPROC_UINT16, 77, 0), MPROC_OK);
  ASSERT_EQ(mproc_array_create(&locked.a, MPROC_FLOAT, 1, 1), MPROC_OK);
  static_cast<uint8_t *>(mproc_array_ptr(raw.a))[0] = 0x31;
  static_cast<uint8_t *>(mproc_array_ptr(locked.a))[0] = 0x32;
  Args a;
  ASSERT_EQ(mproc_args_add_object(a.a, nullptr, raw.a), MPROC_OK);
  a.i(MPROC_UINT16).i(77).i(0).i(0x31);
  EXPECT_EQ(run_child("array_check_meta", a), 0);
  Args b;
  ASSERT_EQ(mproc_args_add_object(b.a, nullptr, locked.a), MPROC_OK);
  b.i(MPROC_FLOAT).i(1).i(1).i(0x32);
  EXPECT_EQ(run_child("array_check_meta", b), 0);
}

TEST(Array, ChildUsesTheSameLock) {
  Arr v;
  ASSERT_EQ(mproc_array_create(&v.a, MPROC_INT32, 1, 1), MPROC_OK);
  ASSERT_EQ(mproc_lock_acquire(mproc_array_lock(v.a), 1), MPROC_OK);
  Args a;
  ASSERT_EQ(mproc_args_add_object(a.a, nullptr, v.a), MPROC_OK);
  EXPECT_EQ(run_child("array_lock_is_shared", a), 0);
  EXPECT_EQ(mproc_lock_release(mproc_array_lock(v.a)), MPROC_OK);
}

TEST(Array, ValueIncrementedByChildrenUnderItsLock) {
  const int kids = 4;
  const int64_t per = test_on_windows() ? 500 : 5000;
  Arr v;
  ASSERT_EQ(mproc_array_create(&v.a, MPROC_INT64, 1, 1), MPROC_OK);
  std::vector<mproc_process *> ps;
  for (int k = 0; k < kids; k++) {
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, v.a), MPROC_OK);
    a.i(per);
    ps.push_back(test_start("array_add_locked", a));
  }
  // The parent takes part too, through its own object.
  mproc_lock *lk = mproc_array_lock(v.a);
  volatile int64_t *x = static_cast<volatile int64_t *>(mproc_array_ptr(v.a));
  for (int64_t i = 0; i < per; i++) {
    ASSERT_EQ(mproc_lock_acquire(lk, 60), MPROC_OK);
    *x = *x + 1;
    ASSERT_EQ(mproc_lock_release(lk), MPROC_OK);
  }
  for (mproc_process *p : ps)
    EXPECT_EQ(join_free(p), 0);
  EXPECT_EQ(*x, per * (kids + 1));
}

TEST(Array, RawArrayWrittenByChildren) {
  const int kids = 3;
  const size_t rows = 1000;
  Arr arr;
  ASSERT_EQ(mproc_array_create(&arr.a, MPROC_DOUBLE, rows * kids, 0),
            MPROC_OK);
  EXPECT_EQ(mproc_array_lock(arr.a), nullptr);
  std::vector<mproc_process *> ps;
  for (int k = 0; k < kids; k++) {
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, arr.a), MPROC_OK);
    a.i(k).i(kids);
    ps.push_back(test_start("array_raw_write", a));
  }
  for (mproc_process *p : ps)
    EXPECT_EQ(join_free(p), 0);
  const double *d = static_cast<const double *>(mproc_array_ptr(arr.a));
  for (size_t row = 0; row < rows; row++)
    for (int k = 0; k < kids; k++)
      ASSERT_EQ(d[row * kids + k], (double)(k * 1000 + row) + 0.5);
}
