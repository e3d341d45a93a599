// Shared helpers for every mproc test binary.
#ifndef MPROC_TEST_UTIL_H
#define MPROC_TEST_UTIL_H

#include <mproc.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

// Test entries register themselves next to the tests that use them; main.cc
// turns the list into the dispatch table before anything else runs.  (The
// library itself takes one explicit table; this is test scaffolding.)
std::vector<mproc_entry> &test_entries();
struct TestEntryRegistrar {
  TestEntryRegistrar(const char *name, mproc_entry_fn fn) {
    test_entries().push_back(mproc_entry{name, fn});
  }
};
#define TEST_ENTRY(fn)                                                         \
  static int fn(const mproc_args *args);                                       \
  static TestEntryRegistrar fn##_registrar(#fn, fn);                           \
  static int fn([[maybe_unused]] const mproc_args *args)

// Portable anonymous pipe.  Both ends are non-inheritable; pass an end to a
// child with mproc_args_add_handle().
struct TestPipe {
  mproc_handle_t r = MPROC_INVALID_HANDLE;
  mproc_handle_t w = MPROC_INVALID_HANDLE;
  TestPipe();
  ~TestPipe();
  void close_r();
  void close_w();
};

bool test_write_all(mproc_handle_t h, const void *data, size_t len);
// Reads until EOF (all writers closed) or `max` bytes.
std::string test_read_all(mproc_handle_t h, size_t max = 1 << 24);
// Reads exactly n bytes (fewer at EOF).
std::string test_read_n(mproc_handle_t h, size_t n);
void test_close_handle(mproc_handle_t h);

void test_sleep_ms(int ms);
double test_now();

// Bounds a loop by count and by time, so that a slow or loaded machine (5x
// slower, ASan) runs fewer rounds instead of taking minutes: always at least
// `min` rounds (size the test's checks so they hold after those), then more,
// up to `max`, while `seconds` have not passed since the object was made.
//   for (TestRounds r(300, 10000, 20); r.next();) { ... r.i() ... }
// Kills `p` if the test is still running `seconds` after this was made, so
// a call that hangs on a peer (a lock holder the test stopped) makes the
// test's bounds fail instead of the test hanging.  Disarmed by disarm() or
// at the end of its scope.
class TestWatchdog {
public:
  TestWatchdog(mproc_process *p, double seconds);
  ~TestWatchdog() { disarm(); }
  void disarm();

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread t_;
};

class TestRounds {
public:
  TestRounds(long min, long max, double seconds);
  bool next();                    // true: run another round
  long i() const { return n_ - 1; } // the current round, from 0
  long done() const { return n_; }  // rounds run (after the loop: in all)

private:
  long min_, max_, n_ = 0;
  double end_;
};

// Waits until pred() is true, looking every millisecond, for at most
// `seconds`; returns pred()'s last answer.  For states no event announces
// (another thread or process counted as waiting); the deadline bounds it.
template <class Pred> bool test_wait_for(Pred pred, double seconds = 30) {
  double end = test_now() + seconds;
  while (!pred()) {
    if (test_now() >= end)
      return pred();
    test_sleep_ms(1);
  }
  return true;
}
int64_t test_getpid();
bool test_on_windows();

// What mproc_main() returned in tests/main.cc.
extern int test_main_rc;

// The running test binary's path.
std::string test_self_exe();

// Run a program (argv[0] = path) with extra environment "K=V" entries,
// capture stdout+stderr, return the exit code (or -signal), or -1000 on
// a failure to run it.  timeout_s bounds the wait; the child is killed past it.
int test_run(const std::vector<std::string> &argv,
             const std::vector<std::string> &env, std::string *output,
             double timeout_s = 60);

// Argument i of a child's entry as an int (dflt if it has none), or as a
// handle (MPROC_INVALID_HANDLE if it has none).
int64_t arg_int(const mproc_args *a, size_t i, int64_t dflt = 0);
mproc_handle_t arg_handle(const mproc_args *a, size_t i);

// The start methods this platform has: spawn, and on POSIX fork and
// forkserver too (for tests that run in each).
std::vector<mproc_start_method> every_method();

// Create, start a process running `entry` with `args` (may be NULL); fails
// the test on error.
mproc_process *test_start(const char *entry, const mproc_args *args = nullptr,
                          const mproc_process_options *opts = nullptr);
// Join with a generous bound and return the exit code; fails the test if
// it does not end in time.
int test_join_code(mproc_process *p, double timeout = 60);

// A task's int64_t input (0 if it has none of that size), and its int64_t
// result: 0, or 99 if the result could not be stored (a task's exit code).
int64_t in_i64(const mproc_args *args);
int out_i64(const mproc_args *args, int64_t v);

// RAII for argument lists.
struct Args {
  mproc_args *a = nullptr;
  Args();
  ~Args();
  Args(const Args &) = delete;
  Args &operator=(const Args &) = delete;
  Args(Args &&o) noexcept : a(o.a) { o.a = nullptr; }
  Args &i(int64_t v, const char *key = nullptr);
  Args &d(double v, const char *key = nullptr);
  Args &s(const char *v, const char *key = nullptr);
  Args &b(const void *p, size_t n, const char *key = nullptr);
  Args &h(mproc_handle_t v, const char *key = nullptr);
  operator const mproc_args *() const { return a; }
};

// Starts `entry` with `args`, which pass it the write end of `ready`; waits
// for the "R" it writes there once it holds what the test wants held (a
// lock, a view), then, where signals exist, stops it with SIGSTOP so that it
// keeps holding it without running.  Fails the test (fatally: call it in
// ASSERT_NO_FATAL_FAILURE) if the "R" does not come.
void test_start_stopped_holder(const char *entry, const mproc_args *args,
                               TestPipe &ready, mproc_process **p);

// Ends this process at once, as a crash would: abort(), or on Windows
// TerminateProcess with `code` (abort() pops a dialog on some CRTs).
void test_crash(unsigned code = 3);

// RAII for the IPC objects tests make most; a failed create fails the test
// (EXPECT), and the object converts to its C pointer.
struct TestQueue {
  mproc_queue *q = nullptr;
  TestQueue();
  ~TestQueue();
  TestQueue(const TestQueue &) = delete;
  TestQueue &operator=(const TestQueue &) = delete;
  operator mproc_queue *() const { return q; }
};
struct TestEvent {
  mproc_event *e = nullptr;
  explicit TestEvent(bool set = false);
  ~TestEvent();
  TestEvent(const TestEvent &) = delete;
  TestEvent &operator=(const TestEvent &) = delete;
  operator mproc_event *() const { return e; }
};
// A duplex mproc_pipe(): a and b are its two ends.
struct TestConnPair {
  mproc_conn *a = nullptr, *b = nullptr;
  TestConnPair();
  ~TestConnPair();
  TestConnPair(const TestConnPair &) = delete;
  TestConnPair &operator=(const TestConnPair &) = delete;
};

#endif
