// Results and end reports: mproc_set_result / mproc_process_result and
// mproc_process_end / mproc_end_describe.  Every test runs under the lane's
// start method (fork or spawn on Linux, spawn on Windows) unless it asks
// for spawn itself.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

extern "C" {
#include "internal.h"
}

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

const size_t kBig = (size_t)16 << 20;

unsigned char pattern(size_t i) {
  return (unsigned char)((i * 131u + 7u) >> 3);
}

std::vector<unsigned char> make_pattern(size_t n) {
  std::vector<unsigned char> v(n);
  for (size_t i = 0; i < n; i++)
    v[i] = pattern(i);
  return v;
}

void set_env(const char *k, const char *v) {
#ifdef _WIN32
  SetEnvironmentVariableA(k, v && *v ? v : nullptr);
  _putenv_s(k, v ? v : "");
#else
  if (v && *v)
    setenv(k, v, 1);
  else
    unsetenv(k);
#endif
}

// Waits for the parent to write a byte into the pipe whose read end is
// argument 0 (not for EOF: a fork child holds the write end too).
void wait_for_parent(const mproc_args *args) {
  mproc_handle_t h = MPROC_INVALID_HANDLE;
  mproc_arg_handle(args, 0, &h);
  (void)test_read_n(h, 1);
}

std::string describe(mproc_process *p, mproc_end_info *info) {
  char buf[256];
  EXPECT_EQ(mproc_process_end(p, info), MPROC_OK);
  int n = mproc_end_describe(info, buf, sizeof buf);
  EXPECT_GT(n, 0);
  return n > 0 ? std::string(buf) : std::string();
}

} // namespace

// Sets a result of arg0 bytes of the pattern.
TEST_ENTRY(result_pattern) {
  std::vector<unsigned char> v = make_pattern((size_t)arg_int(args, 0));
  return mproc_set_result(v.empty() ? nullptr : v.data(), v.size()) == MPROC_OK
             ? 0
             : 9;
}

TEST_ENTRY(result_over_limit) {
  // An earlier result stays when a later one is refused.
  if (mproc_set_result("abc", 3) != MPROC_OK)
    return 7;
  static const char one = 'x';
  // The length is checked before a byte is read, so one byte of storage
  // is enough to ask for MPROC_RESULT_MAX + 1.
  return mproc_set_result(&one, MPROC_RESULT_MAX + 1) == MPROC_E2BIG ? 0 : 8;
}

TEST_ENTRY(result_none) { return 0; }

TEST_ENTRY(result_then_wait) {
  if (mproc_set_result("0123456789", 10) != MPROC_OK)
    return 9;
  wait_for_parent(args);
  return 0;
}

TEST_ENTRY(result_exit_code) { return (int)arg_int(args, 0); }

TEST_ENTRY(result_block) {
  wait_for_parent(args);
  return 0;
}

TEST_ENTRY(result_abort) {
#ifdef _WIN32
  // What an unhandled access violation ends a process with.  Raising a
  // real one would start Wine's debugger (or Windows Error Reporting).
  TerminateProcess(GetCurrentProcess(), 0xC0000005u);
#else
  struct rlimit no_core = {0, 0};
  (void)setrlimit(RLIMIT_CORE, &no_core); // abort() need not write a core
  std::abort();
#endif
  return 0;
}

// Rewrites 1 MiB results until it is killed: whatever instant the kill
// lands, the parent sees a complete result or MPROC_EBROKEN, never a torn
// one.  Tells the parent through argument 0 once the first one is set.
TEST_ENTRY(result_rewrite_forever) {
  std::vector<unsigned char> v = make_pattern((size_t)1 << 20);
  mproc_handle_t h = MPROC_INVALID_HANDLE;
  mproc_arg_handle(args, 0, &h);
  if (mproc_set_result(v.data(), v.size()) != MPROC_OK)
    return 9;
  (void)test_write_all(h, "x", 1);
  for (;;)
    (void)mproc_set_result(v.data(), v.size());
}

// Present in the parent's table, absent from a child started with
// MPROC_TEST_HIDE_ENTRY=1 in its environment: the child's dispatch table
// lacks the entry the parent asks for.
static int result_hidden(const mproc_args *) { return 0; }
static struct HiddenRegistrar {
  HiddenRegistrar() {
    const char *v = std::getenv("MPROC_TEST_HIDE_ENTRY");
    if (!(v && v[0] == '1'))
      test_entries().push_back(mproc_entry{"result_hidden", result_hidden});
  }
} hidden_registrar;

static void check_result_size(size_t n) {
  Args a;
  a.i((int64_t)n);
  mproc_process *p = test_start("result_pattern", a);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), 0);
  std::vector<unsigned char> got(n + 1, 0xEE);
  size_t len = 12345;
  EXPECT_EQ(mproc_process_result(p, got.data(), got.size(), &len), MPROC_OK);
  EXPECT_EQ(len, n);
  got.resize(n);
  EXPECT_TRUE(got == make_pattern(n));
  // Read again: the result stays until close.
  len = 0;
  EXPECT_EQ(mproc_process_result(p, got.data(), n, &len), MPROC_OK);
  EXPECT_EQ(len, n);
  EXPECT_EQ(mproc_process_close(p), MPROC_OK);
  EXPECT_EQ(mproc_process_result(p, got.data(), n, &len), MPROC_ECLOSED);
  mproc_process_free(p);
}

TEST(Result, ZeroBytes) { check_result_size(0); }
TEST(Result, OneByte) { check_result_size(1); }
// A child whose 16 MiB result is far bigger than any pipe buffer ends on
// its own: the join returns (test_join_code fails the test otherwise).
TEST(Result, SixteenMiB) { check_result_size(kBig); }

TEST(Result, OverLimitIsRefusedInTheChild) {
  mproc_process *p = test_start("result_over_limit");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), 0);
  char buf[8];
  size_t len = 0;
  EXPECT_EQ(mproc_process_result(p, buf, sizeof buf, &len), MPROC_OK);
  EXPECT_EQ(std::string(buf, len), "abc");
  mproc_process_free(p);
}

TEST(Result, TooSmallBufferIsERange) {
  TestPipe pipe;
  Args a;
  a.h(pipe.r);
  mproc_process *p = test_start("result_then_wait", a);
  ASSERT_NE(p, nullptr);
  char buf[16];
  size_t len = 0;
  // Before the child ended (it waits for a byte from us).
  EXPECT_EQ(mproc_process_result(p, buf, sizeof buf, &len), MPROC_ESTATE);
  EXPECT_TRUE(test_write_all(pipe.w, "x", 1));
  EXPECT_EQ(test_join_code(p), 0);
  EXPECT_EQ(mproc_process_result(p, buf, 4, &len), MPROC_ERANGE);
  EXPECT_EQ(len, 10u);
  len = 0;
  EXPECT_EQ(mproc_process_result(p, nullptr, 0, &len), MPROC_ERANGE);
  EXPECT_EQ(len, 10u);
  EXPECT_EQ(mproc_process_result(p, buf, 10, &len), MPROC_OK);
  EXPECT_EQ(std::string(buf, len), "0123456789");
  mproc_process_free(p);
}

TEST(Result, StateAndArgumentErrors) {
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, "result_none", nullptr, nullptr),
            MPROC_OK);
  char buf[4];
  size_t len = 0;
  mproc_end_info info;
  EXPECT_EQ(mproc_process_result(p, buf, sizeof buf, &len), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_end(p, &info), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_result(p, nullptr, 4, &len), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_result(p, buf, 4, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_result(nullptr, buf, 4, &len), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_end(p, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_result(mproc_current_process(), buf, 4, &len),
            MPROC_EPERM);
  // The main program is nobody's child: it has no result to set.
  EXPECT_EQ(mproc_set_result("x", 1), MPROC_ESTATE);
  EXPECT_EQ(mproc_set_result(nullptr, 1), MPROC_EINVAL);
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), 0);
  EXPECT_EQ(mproc_process_result(p, buf, sizeof buf, &len), MPROC_ENOTFOUND);
  mproc_process_free(p);
}

TEST(Result, KilledWhileWritingIsCompleteOrBroken) {
  TestPipe pipe;
  Args a;
  a.h(pipe.w);
  mproc_process *p = test_start("result_rewrite_forever", a);
  ASSERT_NE(p, nullptr);
  pipe.close_w();
  EXPECT_EQ(test_read_n(pipe.r, 1), "x");
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(mproc_process_join(p, 60), MPROC_OK);
  std::vector<unsigned char> got((size_t)1 << 20);
  size_t len = 0;
  int rc = mproc_process_result(p, got.data(), got.size(), &len);
  EXPECT_TRUE(rc == MPROC_OK || rc == MPROC_EBROKEN) << mproc_err_name(rc);
  if (rc == MPROC_OK) {
    EXPECT_EQ(len, got.size());
    EXPECT_TRUE(got == make_pattern(got.size()));
  }
  mproc_process_free(p);
}

// The result block costs its maker (nearly) nothing until the child
// writes: POSIX a blank (unsized) file, Windows a reserved section of which
// only the header page is committed; a committed 32 MiB section would count
// against the commit limit for as long as the process object is open.  Wine
// keeps no commit charge (its GetPerformanceInfo and GlobalMemoryStatusEx
// report the host's memory), so what is checked is what this process's
// views show committed (VirtualQuery) and, on POSIX, that nothing is sized.
// Options whose children get a result block of their own (spawn, or the
// forkserver in its lane): a fork child gets a slot of the fork children's
// arena instead (src/process_result.c; Result.ForkChildren* below).
static const mproc_process_options *block_opts() {
  static mproc_process_options o = {};
  o.start_method = mproc_get_start_method() == MPROC_START_FORK
                       ? MPROC_START_SPAWN
                       : MPROC_START_DEFAULT;
  return &o;
}

static int open_block(mproc_handle_t result_h, mproc__seg *s) {
  mproc_handle_t h = mproc__plat_dup_handle(result_h);
  return mproc__seg_open_blank(s, h, (size_t)MPROC_RESULT_MAX + 64, 0);
}

static uint64_t block_backed(mproc_handle_t result_h, int *rc) {
  mproc__seg s;
  uint64_t bytes = 0;
  *rc = open_block(result_h, &s);
  if (*rc == MPROC_OK) {
    if (mproc__seg_backed(&s, &bytes) != MPROC_OK)
      bytes = 0;
    mproc__seg_close(&s);
  }
  return bytes;
}

TEST(Result, TwoHundredBlocksCommitAlmostNothing) {
  std::vector<mproc_process *> ps;
  uint64_t total = 0;
  for (int i = 0; i < 200; i++) {
    mproc_process *p = nullptr;
    ASSERT_EQ(mproc_process_create(&p, "result_none", nullptr, block_opts()),
              MPROC_OK);
    ps.push_back(p);
    ASSERT_EQ(mproc__result_create(p), MPROC_OK) << i;
    int rc;
    total += block_backed(p->result_h, &rc);
#ifdef _WIN32
    EXPECT_EQ(rc, MPROC_OK) << i;
#else
    EXPECT_EQ(rc, MPROC_ENOTFOUND) << i << ": a blank block has no size";
#endif
  }
  EXPECT_LE(total, (uint64_t)200 * 65536) << "committed bytes of 200 blocks";
  std::printf("200 result blocks: %llu bytes committed\n",
              (unsigned long long)total);
  for (mproc_process *p : ps)
    mproc_process_free(p); // drops the blocks
}

TEST(Result, ChildCommitsWhatItWrites) {
  Args a;
  a.i(3 * 4096);
  mproc_process *p = test_start("result_pattern", a, block_opts());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), 0);
  int rc;
  uint64_t backed = block_backed(p->result_h, &rc);
  EXPECT_EQ(rc, MPROC_OK);
  EXPECT_LE(backed, (uint64_t)1 << 20); // not MPROC_RESULT_MAX
  std::vector<unsigned char> buf(3 * 4096);
  size_t len = 0;
  EXPECT_EQ(mproc_process_result(p, buf.data(), buf.size(), &len), MPROC_OK);
  EXPECT_EQ(len, buf.size());
  mproc_process_free(p);

  p = test_start("result_none");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), 0);
  EXPECT_EQ(mproc_process_result(p, buf.data(), buf.size(), &len),
            MPROC_ENOTFOUND);
  mproc_process_free(p);
}

#ifndef _WIN32
// A child that forges its result block: sets a result (which gives the
// blank block its size), finds the block by that size (64 bytes of segment
// header, 64 of result header, MPROC_RESULT_MAX), then either claims a
// result longer than the limit (arg 0 == 1) or shrinks the block under the
// parent (arg 0 == 2), which a parent that trusted the block would read
// past the end of (SIGBUS).  Linux seals the block against shrinking: the
// child exits 10 when its ftruncate is refused.
TEST_ENTRY(result_forge) {
  int64_t how = arg_int(args, 0);
  const off_t size = (off_t)MPROC_RESULT_MAX + 128;
  if (mproc_set_result("ok", 2) != MPROC_OK)
    return 5;
  for (int fd = 3; fd < 1024; fd++) {
    struct stat st;
    // (macOS rounds a shm object's size up to whole pages.)
    if (fstat(fd, &st) != 0 || st.st_size < size || st.st_size >= size + 65536)
      continue;
    if (how == 2)
      return ftruncate(fd, 4096) == 0 ? 0 : errno == EPERM ? 10 : 3;
    void *m = mmap(nullptr, 128, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
      return 4;
    unsigned char *hdr = (unsigned char *)m + 64;
    uint32_t done = 2;
    uint64_t len = (uint64_t)MPROC_RESULT_MAX + 4096;
    memcpy(hdr, &done, 4);
    memcpy(hdr + 8, &len, 8);
    munmap(m, 128);
    return 0;
  }
  return 2; // no block found
}

TEST(Result, ForgedBlockIsRejected) {
  for (int how = 1; how <= 2; how++) {
    Args a;
    a.i(how);
    mproc_process *p = test_start("result_forge", a, block_opts());
    ASSERT_NE(p, nullptr);
    int code = test_join_code(p);
    std::vector<unsigned char> buf(64);
    size_t len = 0;
    int rc = mproc_process_result(p, buf.data(), buf.size(), &len);
    if (code == 10) { // sealed: the shrink was refused, the result intact
      EXPECT_EQ(rc, MPROC_OK);
      EXPECT_EQ(std::string((const char *)buf.data(), len), "ok");
    } else {
      EXPECT_EQ(code, 0) << how;
      EXPECT_EQ(rc, MPROC_EBROKEN) << how;
    }
#if defined(__linux__) && !defined(MPROC_PORTABLE_POSIX)
    if (how == 2) { // (the portable build has no memfd, so no seals)
      EXPECT_EQ(code, 10) << "Linux seals the block against shrinking";
    }
#endif
    mproc_process_free(p);
  }
}
#endif

#ifndef _WIN32
// A hostile child: sets a 1 MiB result, then leaves a raw fork() child that
// keeps shrinking and regrowing the block (for at most 3 s) while the
// parent reads it.  A parent whose copy runs into a page cut off meanwhile
// would die of SIGBUS.
TEST_ENTRY(result_shrink_behind) {
  std::vector<unsigned char> big(1 << 20, 0x5a);
  if (mproc_set_result(big.data(), big.size()) != MPROC_OK)
    return 5;
  const off_t size = (off_t)MPROC_RESULT_MAX + 128;
  int found = -1;
  for (int fd = 3; fd < 1024 && found < 0; fd++) {
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size >= size && st.st_size < size + 65536)
      found = fd;
  }
  if (found < 0)
    return 2;
  if (fork() == 0) {
    double end = test_now() + 3;
    while (test_now() < end) {
      if (ftruncate(found, 4096) != 0)
        _exit(0); // the block refuses to shrink: nothing to do
      (void)ftruncate(found, size);
    }
    _exit(0);
  }
  return 0;
}

// The parent side, in a child of its own so a SIGBUS is an exit code.
TEST_ENTRY(result_read_while_shrunk) {
  mproc_process *p = test_start("result_shrink_behind", nullptr, block_opts());
  if (!p || test_join_code(p) != 0)
    return 3;
  std::vector<unsigned char> buf(1 << 20);
  double end = test_now() + 1.5;
  for (int i = 0; i < 100000 && test_now() < end; i++) {
    size_t len = 0;
    int rc = mproc_process_result(p, buf.data(), buf.size(), &len);
    if (rc != MPROC_OK && rc != MPROC_EBROKEN && rc != MPROC_ENOTFOUND)
      return 4;
  }
  mproc_process_free(p);
  return 0;
}

TEST(Result, BlockShrunkByAGrandchildWhileReadIsNoCrash) {
#if !defined(__linux__) || defined(MPROC_PORTABLE_POSIX)
  // Only Linux's memfd can be sealed against shrinking; a plain POSIX shm
  // object cannot (macOS refuses to shrink one; FreeBSD and this lane
  // do not), so a hostile descendant can still make the read fault there.
  GTEST_SKIP() << "no memfd seals in this build";
#endif
  mproc_process *p = test_start("result_read_while_shrunk");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), 0); // -SIGBUS (-7) before the fix
  mproc_process_free(p);
}
#endif

#ifndef _WIN32
// The child leaves a raw fork() child (which inherits its result block)
// that keeps replacing the result, all 'A' then all 'B', for at most 3 s.
TEST_ENTRY(result_rewrite_behind) {
  if (fork() == 0) {
    std::vector<unsigned char> a(1 << 20, 'A'), b(1 << 20, 'B');
    double end = test_now() + 3;
    for (int i = 0; test_now() < end; i++)
      (void)mproc_set_result(i % 2 ? b.data() : a.data(), a.size());
    _exit(0);
  }
  std::vector<unsigned char> a(1 << 20, 'A');
  return mproc_set_result(a.data(), a.size()) == MPROC_OK ? 0 : 5;
}

// The child and a raw fork() child of it (which shares its result) both
// keep replacing the result, all 'A' and all 'B', until the same moment,
// so their last calls overlap; then both end.
TEST_ENTRY(result_two_writers) {
  pid_t kid = fork();
  std::vector<unsigned char> a(1 << 20, kid == 0 ? 'B' : 'A');
  double end = test_now() + 0.2;
  while (test_now() < end)
    (void)mproc_set_result(a.data(), a.size());
  if (kid == 0)
    _exit(0);
  int status = 0;
  return kid > 0 && waitpid(kid, &status, 0) == kid ? 0 : 5;
}

// Two processes that replace a result at the same time leave it readable
// as one of the two or MPROC_EBROKEN, never as a mix of both: nothing
// serialises two processes' copies, so the one that ends last must not
// publish bytes the other overwrote half of.
TEST(Result, OverlappingWritersNeverLeaveATornResult) {
  int torn = 0, ok = 0;
  double end = test_now() + 10;
  for (int i = 0; i < 12 && test_now() < end; i++) {
    mproc_process *p = test_start("result_two_writers");
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(test_join_code(p), 0);
    std::vector<unsigned char> buf(1 << 20);
    size_t len = 0;
    int rc = mproc_process_result(p, buf.data(), buf.size(), &len);
    ASSERT_TRUE(rc == MPROC_OK || rc == MPROC_EBROKEN) << mproc_err_name(rc);
    if (rc == MPROC_OK) {
      ok++;
      ASSERT_EQ(len, buf.size());
      if (std::memchr(buf.data(), buf[0] == 'A' ? 'B' : 'A', len))
        torn++;
    }
    mproc_process_free(p);
  }
  EXPECT_EQ(torn, 0) << "of " << ok << " results read";
}

// A result read while it is being replaced is one of the two results or
// MPROC_EBROKEN, never a mix of both.
TEST(Result, ResultRewrittenWhileReadIsNeverTorn) {
  mproc_process *p = test_start("result_rewrite_behind");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(test_join_code(p), 0);
  std::vector<unsigned char> buf(1 << 20);
  int torn = 0, ok = 0;
  double end = test_now() + 1.5;
  for (int i = 0; i < 100000 && test_now() < end; i++) {
    size_t len = 0;
    int rc = mproc_process_result(p, buf.data(), buf.size(), &len);
    ASSERT_TRUE(rc == MPROC_OK || rc == MPROC_EBROKEN) << mproc_err_name(rc);
    if (rc != MPROC_OK)
      continue;
    ok++;
    ASSERT_EQ(len, buf.size());
    if (std::memchr(buf.data(), buf[0] == 'A' ? 'B' : 'A', len))
      torn++;
  }
  EXPECT_EQ(torn, 0) << "of " << ok << " results read";
  RecordProperty("results_read", ok);
  mproc_process_free(p);
}
#endif

#ifdef __linux__
static int count_fds() {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

// A result nobody reads goes with the process object.
TEST(Result, UnreadResultLeavesNothingOpen) {
  // One start first: the forkserver method opens its connection to the
  // server at the first start, and keeps it.
  mproc_process *warm = test_start("result_none");
  ASSERT_NE(warm, nullptr);
  EXPECT_EQ(test_join_code(warm), 0);
  mproc_process_free(warm);
  int before = count_fds();
  for (int i = 0; i < 3; i++) {
    Args a;
    a.i(4096);
    mproc_process *p = test_start("result_pattern", a);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(test_join_code(p), 0);
    mproc_process_free(p);
  }
  EXPECT_EQ(count_fds(), before);
}
#endif

TEST(End, ExitCode) {
  Args a;
  a.i(3);
  mproc_process *p = test_start("result_exit_code", a);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), 3);
  mproc_end_info info;
  EXPECT_EQ(describe(p, &info), "exited with code 3");
  EXPECT_EQ(info.kind, MPROC_END_EXIT);
  EXPECT_EQ(info.code, 3);
  EXPECT_EQ(info.exitcode, 3);
  int64_t pid = 0;
  EXPECT_EQ(mproc_process_pid(p, &pid), MPROC_OK);
  EXPECT_EQ(info.pid, pid);
  mproc_process_free(p);
}

// An entry may return 120 itself: that is an exit, not a failed bootstrap.
TEST(End, EntryReturning120IsAnExit) {
  Args a;
  a.i(MPROC_EXIT_BOOTSTRAP);
  mproc_process *p = test_start("result_exit_code", a);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), MPROC_EXIT_BOOTSTRAP);
  mproc_end_info info;
  EXPECT_EQ(describe(p, &info), "exited with code 120");
  EXPECT_EQ(info.kind, MPROC_END_EXIT);
  mproc_process_free(p);
}

TEST(End, Killed) {
  TestPipe pipe;
  Args a;
  a.h(pipe.r);
  mproc_process *p = test_start("result_block", a);
  ASSERT_NE(p, nullptr);
  mproc_end_info info;
  EXPECT_EQ(mproc_process_end(p, &info), MPROC_ESTATE); // still running
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  std::string text = describe(p, &info);
  EXPECT_EQ(info.code, 9);
  EXPECT_STREQ(info.name, "SIGKILL");
  if (test_on_windows()) {
    EXPECT_EQ(info.kind, MPROC_END_TERMINATED);
    EXPECT_EQ(text,
              "terminated by mproc_process_kill() (as signal 9, SIGKILL)");
  } else {
    EXPECT_EQ(info.kind, MPROC_END_SIGNAL);
    EXPECT_EQ(text, "killed by signal 9 (SIGKILL)");
  }
  mproc_process_free(p);
}

TEST(End, Crash) {
  mproc_process *p = test_start("result_abort");
  ASSERT_NE(p, nullptr);
  int code = test_join_code(p);
  mproc_end_info info;
  std::string text = describe(p, &info);
  if (test_on_windows()) {
    EXPECT_EQ(info.kind, MPROC_END_CRASH);
    EXPECT_EQ(info.status, 0xC0000005u);
    EXPECT_EQ(text, "crashed: access violation (0xC0000005)");
  } else {
    EXPECT_EQ(code, -6); // SIGABRT is 6 on every POSIX system mproc runs on
    EXPECT_EQ(info.kind, MPROC_END_SIGNAL);
    EXPECT_EQ(text, "killed by signal 6 (SIGABRT)");
  }
  mproc_process_free(p);
}

// The child started again finds no such entry in its table: it never runs
// an entry, and the report says so (the fork method has no bootstrap).
TEST(End, UnknownEntryUnderSpawnIsABootstrapFailure) {
  mproc_process_options o = {};
  o.start_method = MPROC_START_SPAWN;
  set_env("MPROC_TEST_HIDE_ENTRY", "1");
  mproc_process *p = test_start("result_hidden", nullptr, &o);
  set_env("MPROC_TEST_HIDE_ENTRY", nullptr);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), MPROC_EXIT_BOOTSTRAP);
  mproc_end_info info;
  std::string text = describe(p, &info);
  EXPECT_EQ(info.kind, MPROC_END_BOOTSTRAP);
  EXPECT_EQ(info.code, MPROC_EXIT_BOOTSTRAP);
  EXPECT_EQ(text, "bootstrap failed: the child's dispatch table has no entry "
                  "of that name (exit code 120)");
  size_t len = 0;
  EXPECT_EQ(mproc_process_result(p, nullptr, 0, &len), MPROC_ENOTFOUND);
  mproc_process_free(p);
}

TEST(End, DescribeCutsAndChecks) {
  mproc_end_info info = {};
  info.kind = MPROC_END_EXIT;
  info.code = 42;
  char small[8];
  EXPECT_EQ(mproc_end_describe(&info, small, sizeof small),
            (int)strlen("exited with code 42"));
  EXPECT_STREQ(small, "exited ");
  EXPECT_EQ(mproc_end_describe(&info, nullptr, 0), 19);
  EXPECT_EQ(mproc_end_describe(nullptr, small, sizeof small), MPROC_EINVAL);
  info.kind = (mproc_end_kind)99;
  EXPECT_EQ(mproc_end_describe(&info, small, sizeof small), MPROC_EINVAL);
}

#if defined(__linux__) && !defined(MPROC_PORTABLE_POSIX)
// Fork children's results are slots of one arena the parent holds (one
// descriptor for all of them), not a memfd each: a fork start makes no
// descriptor and a later fork copies none per unclosed child.  Each slot
// still takes memory only for what its child wrote, and gives it back when
// its process object goes.
static uint64_t fd_backed(mproc_handle_t h) {
  struct stat st;
  return fstat(h, &st) == 0 ? (uint64_t)st.st_blocks * 512 : ~(uint64_t)0;
}

TEST(Result, ForkChildrenShareOneArena) {
  mproc_process_options o = {};
  o.start_method = MPROC_START_FORK;
  mproc_process *warm = test_start("result_none", nullptr, &o);
  ASSERT_NE(warm, nullptr);
  EXPECT_EQ(test_join_code(warm), 0);
  const int before = count_fds();
  // What the arena holds already: a raw fork() child an earlier test's
  // child left behind may still be rewriting its dropped slot.
  const uint64_t held = fd_backed(mproc__result_handle(warm));
  std::vector<mproc_process *> ps;
  for (int i = 0; i < 20; i++) {
    Args a;
    a.i(3 * 4096);
    mproc_process *p = test_start("result_pattern", a, &o);
    ASSERT_NE(p, nullptr);
    ps.push_back(p);
  }
  // Before the joins: a join with a timeout opens a pidfd.
  EXPECT_EQ(count_fds(), before) << "a descriptor per unclosed fork child";
  for (mproc_process *p : ps)
    EXPECT_EQ(test_join_code(p), 0);
  const mproc_handle_t arena = mproc__result_handle(ps[0]);
  EXPECT_EQ(mproc__result_handle(ps[19]), arena);
  EXPECT_LE(fd_backed(arena), (uint64_t)20 << 20); // what they wrote, sparse
  std::vector<unsigned char> buf(3 * 4096);
  for (mproc_process *p : ps) {
    size_t len = 0;
    EXPECT_EQ(mproc_process_result(p, buf.data(), buf.size(), &len), MPROC_OK);
    EXPECT_EQ(len, buf.size());
    EXPECT_TRUE(std::vector<unsigned char>(buf.begin(), buf.end()) ==
                make_pattern(len));
    mproc_process_free(p);
  }
  EXPECT_LE(fd_backed(arena), held + ((uint64_t)64 << 10))
      << "slots wiped at free";
  mproc_process_free(warm);
}

// A raw fork() child of the program that starts fork children of its own
// must not hand out slots of the program's arena: the program goes on
// giving out the same ones, and a result of the raw child's child (left
// unread here: the raw child exits without freeing it) would then show up
// as the result of the program's next child.
TEST(Result, RawForkChildDoesNotShareTheArenasSlots) {
  mproc_process_options o = {};
  o.start_method = MPROC_START_FORK;
  mproc_process *warm = test_start("result_none", nullptr, &o);
  ASSERT_NE(warm, nullptr);
  EXPECT_EQ(test_join_code(warm), 0);
  Args a;
  a.i(4096);
  pid_t raw = fork();
  ASSERT_GE(raw, 0);
  if (raw == 0) {
    mproc_process *c = nullptr;
    int code = -1;
    if (mproc_process_create(&c, "result_pattern", a, &o) != MPROC_OK ||
        mproc_process_start(c) != MPROC_OK ||
        mproc_process_join(c, MPROC_FOREVER) != MPROC_OK ||
        mproc_process_exitcode(c, &code) != 1 || code != 0)
      _exit(3);
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(raw, &st, 0), raw);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  mproc_process *p = test_start("result_none", nullptr, &o);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), 0);
  std::vector<unsigned char> buf(8192);
  size_t len = 0;
  EXPECT_EQ(mproc_process_result(p, buf.data(), buf.size(), &len),
            MPROC_ENOTFOUND)
      << "the raw fork child's child wrote into this child's slot";
  mproc_process_free(p);
  mproc_process_free(warm);
}

// A fork child holds no descriptor that reaches its siblings' slots: only
// the mapping of its own (found here in /proc/self/maps, as a memfd mapping
// of the result's size).  A garbage header written there is refused.
TEST_ENTRY(result_forge_slot) {
  for (int fd = 3; fd < 1024; fd++) {
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)MPROC_RESULT_MAX)
      return 2; // a block or the arena's descriptor: siblings in reach
  }
  FILE *maps = std::fopen("/proc/self/maps", "r");
  if (!maps)
    return 3;
  char line[512];
  unsigned long lo = 0, hi = 0, found = 0;
  while (std::fgets(line, sizeof line, maps))
    if (std::strstr(line, "memfd:mproc") &&
        std::sscanf(line, "%lx-%lx", &lo, &hi) == 2 &&
        hi - lo >= MPROC_RESULT_MAX && hi - lo < MPROC_RESULT_MAX + 65536)
      found = lo;
  std::fclose(maps);
  if (!found)
    return 4;
  uint32_t done = 2;
  uint64_t len = (uint64_t)MPROC_RESULT_MAX + 4096;
  std::memcpy((unsigned char *)found, &done, 4);
  std::memcpy((unsigned char *)found + 8, &len, 8);
  return 0;
}

TEST(Result, ForkChildHoldsOnlyItsOwnSlot) {
  mproc_process_options o = {};
  o.start_method = MPROC_START_FORK;
  mproc_process *p = test_start("result_forge_slot", nullptr, &o);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(test_join_code(p), 0) << "2: holds a descriptor; 4: no slot mapped";
  std::vector<unsigned char> buf(64);
  size_t len = 0;
  EXPECT_EQ(mproc_process_result(p, buf.data(), buf.size(), &len),
            MPROC_EBROKEN);
  mproc_process_free(p);
}
#endif
