// Captured output (MPROC_STDIO_CAPTURE): mproc_process_output,
// mproc_process_output_read, mproc_process_output_info, the capture limit,
// and the last stderr lines in end reports.  Each test runs every start
// method this platform has (spawn; on POSIX also fork and forkserver).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#else
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

// A stream-specific pattern, so that stdout and stderr swapped or
// interleaved show up.
unsigned char pattern(int stream, size_t i) {
  return (unsigned char)(((i * 131u + 7u) >> 3) + (unsigned)stream * 101u);
}

// Windows' C runtime turns "\n" into "\r\n" on a text-mode stream.
void binary_stdio() {
#ifdef _WIN32
  _setmode(_fileno(stdout), _O_BINARY);
  _setmode(_fileno(stderr), _O_BINARY);
#endif
}

mproc_event *arg_event(const mproc_args *a, size_t i) {
  mproc_event *ev = nullptr;
  mproc_arg_object(a, i, MPROC_OBJ_EVENT, (void **)&ev);
  return ev;
}

mproc_process_options capture_opts(mproc_start_method m, bool out, bool err) {
  mproc_process_options o = {};
  o.start_method = m;
  if (out)
    o.stdio[1].mode = MPROC_STDIO_CAPTURE;
  if (err)
    o.stdio[2].mode = MPROC_STDIO_CAPTURE;
  return o;
}

// Makes an event and starts `entry` with it as its one argument (the child
// waits on it).  Fails the test fatally: call it in ASSERT_NO_FATAL_FAILURE.
void start_with_event(const char *entry, const mproc_process_options *o,
                      mproc_event **ev, mproc_process **p) {
  mproc_args *a = nullptr;
  ASSERT_EQ(mproc_event_create(ev), MPROC_OK);
  ASSERT_EQ(mproc_args_create(&a), MPROC_OK);
  ASSERT_EQ(mproc_args_add_object(a, nullptr, *ev), MPROC_OK);
  ASSERT_EQ(mproc_process_create(p, entry, a, o), MPROC_OK);
  mproc_args_free(a);
  ASSERT_EQ(mproc_process_start(*p), MPROC_OK);
}

// Creates and starts `entry` (no arguments) and waits for its end.  Fails
// the test fatally: call it in ASSERT_NO_FATAL_FAILURE.
void run_to_end(const char *entry, const mproc_process_options *o,
                mproc_process **p) {
  ASSERT_EQ(mproc_process_create(p, entry, nullptr, o), MPROC_OK);
  ASSERT_EQ(mproc_process_start(*p), MPROC_OK);
  ASSERT_EQ(mproc_process_join(*p, 60), MPROC_OK);
}

// The end report of an ended child: checks that its stderr tail is `tail`
// and gives the text mproc_end_describe() makes of it.  Fails the test
// fatally: call it in ASSERT_NO_FATAL_FAILURE.
void end_report(mproc_process *p, const char *tail, std::string *text) {
  mproc_end_info info;
  char buf[2048];
  ASSERT_EQ(mproc_process_end(p, &info), MPROC_OK);
  EXPECT_STREQ(info.stderr_tail, tail);
  ASSERT_GT(mproc_end_describe(&info, buf, sizeof buf), 0);
  *text = buf;
}

std::string output_of(mproc_process *p, int stream) {
  size_t len = 0;
  int rc = mproc_process_output(p, stream, nullptr, 0, &len);
  if (rc == MPROC_OK && len == 0)
    return "";
  EXPECT_EQ(rc, MPROC_ERANGE);
  std::string s(len, '\0');
  EXPECT_EQ(mproc_process_output(p, stream, &s[0], s.size(), &len), MPROC_OK);
  EXPECT_EQ(len, s.size());
  return s;
}

// Reads with mproc_process_output_read until `want` bytes came (or an
// error / 60 s).
std::string read_until(mproc_process *p, int stream, size_t want) {
  std::string got;
  char buf[256];
  double end = test_now() + 60;
  while (got.size() < want && test_now() < end) {
    size_t n = 0;
    int rc = mproc_process_output_read(p, stream, buf, sizeof buf, &n, 30);
    if (rc != MPROC_OK) {
      ADD_FAILURE() << "output_read: " << mproc_err_name(rc);
      break;
    }
    got.append(buf, n);
  }
  return got;
}

} // namespace

// ---- child entries ----------------------------------------------------------

TEST_ENTRY(out_big) {
  size_t n = (size_t)arg_int(args, 0);
  std::vector<unsigned char> chunk(65536);
  binary_stdio();
  // Interleaved, so that a parent reading one stream only after the other
  // would deadlock once a pipe fills.
  for (size_t off = 0; off < n; off += chunk.size()) {
    size_t k = n - off < chunk.size() ? n - off : chunk.size();
    for (int s = 1; s <= 2; s++) {
      FILE *f = s == 1 ? stdout : stderr;
      for (size_t i = 0; i < k; i++)
        chunk[i] = pattern(s, off + i);
      if (fwrite(chunk.data(), 1, k, f) != k || fflush(f) != 0)
        return 3;
    }
  }
  return 0;
}

TEST_ENTRY(out_line_wait_line) {
  mproc_event *ev = arg_event(args, 0);
  binary_stdio();
  fputs("hello\n", stdout);
  fflush(stdout);
  if (mproc_event_wait(ev, 60) != MPROC_OK)
    return 2;
  fputs("bye\n", stdout);
  fflush(stdout);
  return 0;
}

TEST_ENTRY(out_silent) { return 0; }

// Waits for the event (at most 60 s), writing nothing.
TEST_ENTRY(out_wait) {
  return mproc_event_wait(arg_event(args, 0), 60) == MPROC_OK ? 0 : 2;
}

TEST_ENTRY(out_line_then_hang) {
  mproc_event *ev = arg_event(args, 0);
  binary_stdio();
  fputs("before the kill\n", stderr);
  fflush(stderr);
  (void)mproc_event_wait(ev, 60); // never set: the parent kills us
  return 0;
}

TEST_ENTRY(out_stderr_lines) {
  binary_stdio();
  for (int i = 1; i <= 8; i++)
    fprintf(stderr, "line %d\n", i);
  fflush(stderr);
  return 3;
}

#ifndef _WIN32
// Leaves a raw fork() child that holds stdout open until the event is set.
TEST_ENTRY(out_leave_grandchild) {
  mproc_event *ev = arg_event(args, 0);
  fputs("child's own\n", stdout);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    (void)mproc_event_wait(ev, 60);
    _exit(0);
  }
  return pid > 0 ? 0 : 2;
}
#endif

// ---- tests -----------------------------------------------------------------

TEST(Output, EightMiBOnBothStreamsWithoutDeadlock) {
  const size_t n = (size_t)8 << 20;
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = capture_opts(m, true, true);
    mproc_args *a = nullptr;
    mproc_process *p = nullptr;
    int code = -1;
    ASSERT_EQ(mproc_args_create(&a), MPROC_OK);
    ASSERT_EQ(mproc_args_add_int(a, nullptr, (int64_t)n), MPROC_OK);
    ASSERT_EQ(mproc_process_create(&p, "out_big", a, &o), MPROC_OK);
    mproc_args_free(a);
    double t0 = test_now();
    ASSERT_EQ(mproc_process_start(p), MPROC_OK);
    ASSERT_EQ(mproc_process_join(p, 120), MPROC_OK);
    EXPECT_EQ(mproc_process_exitcode(p, &code), 1);
    EXPECT_EQ(code, 0);
    for (int s = 1; s <= 2; s++) {
      std::string got = output_of(p, s);
      ASSERT_EQ(got.size(), n);
      size_t bad = n;
      for (size_t i = 0; i < n && bad == n; i++)
        if ((unsigned char)got[i] != pattern(s, i))
          bad = i;
      EXPECT_EQ(bad, n) << "stream " << s << " differs at byte " << bad;
      mproc_output_info info;
      ASSERT_EQ(mproc_process_output_info(p, s, &info), MPROC_OK);
      EXPECT_EQ(info.total, (uint64_t)n);
      EXPECT_EQ(info.dropped, 0u);
    }
    std::printf("[ info ] 8 MiB x 2 captured (method %d) in %.2f s\n", (int)m,
                test_now() - t0);
    EXPECT_EQ(mproc_process_close(p), MPROC_OK);
    mproc_process_free(p);
  }
}

TEST(Output, ReadWhileTheChildRunsThenTheWholeTextAfterJoin) {
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = capture_opts(m, true, false);
    mproc_event *ev = nullptr;
    mproc_process *p = nullptr;
    ASSERT_NO_FATAL_FAILURE(
        start_with_event("out_line_wait_line", &o, &ev, &p));
    // The child waits for the event: this line came while it runs.
    EXPECT_EQ(read_until(p, MPROC_STDOUT, 6), "hello\n");
    EXPECT_EQ(mproc_process_is_alive(p), 1);
    size_t len = 0;
    char buf[16];
    EXPECT_EQ(mproc_process_output(p, MPROC_STDOUT, buf, sizeof buf, &len),
              MPROC_ESTATE); // whole text only once it ended
    ASSERT_EQ(mproc_event_set(ev), MPROC_OK);
    EXPECT_EQ(read_until(p, MPROC_STDOUT, 4), "bye\n");
    ASSERT_EQ(mproc_process_join(p, 60), MPROC_OK);
    EXPECT_EQ(mproc_process_output_read(p, MPROC_STDOUT, buf, sizeof buf, &len,
                                        30),
              MPROC_EEOF);
    EXPECT_EQ(output_of(p, MPROC_STDOUT), "hello\nbye\n");
    mproc_process_free(p);
    mproc_event_free(ev);
  }
}

TEST(Output, EmptyOutputReadTwice) {
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = capture_opts(m, true, true);
    mproc_process *p = nullptr;
    ASSERT_NO_FATAL_FAILURE(run_to_end("out_silent", &o, &p));
    for (int round = 0; round < 2; round++) {
      size_t len = 99;
      EXPECT_EQ(mproc_process_output(p, MPROC_STDOUT, nullptr, 0, &len),
                MPROC_OK);
      EXPECT_EQ(len, 0u);
      len = 99;
      EXPECT_EQ(mproc_process_output(p, MPROC_STDERR, nullptr, 0, &len),
                MPROC_OK);
      EXPECT_EQ(len, 0u);
    }
    char c;
    size_t len = 0;
    EXPECT_EQ(mproc_process_output_read(p, MPROC_STDERR, &c, 1, &len, 30),
              MPROC_EEOF);
    mproc_process_free(p);
  }
}

TEST(Output, KilledChildKeepsWhatItWroteAndTheReportShowsIt) {
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = capture_opts(m, false, true);
    mproc_event *ev = nullptr;
    mproc_process *p = nullptr;
    ASSERT_NO_FATAL_FAILURE(
        start_with_event("out_line_then_hang", &o, &ev, &p));
    EXPECT_EQ(read_until(p, MPROC_STDERR, 16), "before the kill\n");
    ASSERT_EQ(mproc_process_kill(p), MPROC_OK);
    ASSERT_EQ(mproc_process_join(p, 60), MPROC_OK);
    EXPECT_EQ(output_of(p, MPROC_STDERR), "before the kill\n");
    std::string text;
    ASSERT_NO_FATAL_FAILURE(end_report(p, "before the kill\n", &text));
    EXPECT_NE(std::strstr(text.c_str(), "SIGKILL"), nullptr) << text;
    EXPECT_NE(std::strstr(text.c_str(), "\n  | before the kill"), nullptr)
        << text;
    mproc_process_free(p);
    mproc_event_free(ev);
  }
}

TEST(Output, EndReportEndsWithTheLastFiveStderrLines) {
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = capture_opts(m, false, true);
    mproc_process *p = nullptr;
    ASSERT_NO_FATAL_FAILURE(run_to_end("out_stderr_lines", &o, &p));
    std::string text;
    ASSERT_NO_FATAL_FAILURE(end_report(
        p, "line 4\nline 5\nline 6\nline 7\nline 8\n", &text));
    EXPECT_STREQ(text.c_str(), "exited with code 3; last lines of stderr:\n"
                       "  | line 4\n  | line 5\n  | line 6\n  | line 7\n"
                       "  | line 8");
    mproc_process_free(p);
  }
}

TEST(Output, EndReportWithoutCaptureHasNoTail) {
  mproc_process_options o = capture_opts(MPROC_START_SPAWN, true, false);
  mproc_process *p = nullptr;
  ASSERT_NO_FATAL_FAILURE(run_to_end("out_silent", &o, &p));
  std::string text;
  ASSERT_NO_FATAL_FAILURE(end_report(p, "", &text));
  EXPECT_STREQ(text.c_str(), "exited with code 0");
  mproc_process_free(p);
}

TEST(Output, LimitKeepsTheLastBytes) {
  const size_t n = 200000, limit = 1000;
  mproc_process_options o = capture_opts(MPROC_START_SPAWN, true, true);
  mproc_args *a = nullptr;
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_args_create(&a), MPROC_OK);
  ASSERT_EQ(mproc_args_add_int(a, nullptr, (int64_t)n), MPROC_OK);
  ASSERT_EQ(mproc_process_create(&p, "out_big", a, &o), MPROC_OK);
  mproc_args_free(a);
  ASSERT_EQ(mproc_process_set_capture_limit(p, limit), MPROC_OK);
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  EXPECT_EQ(mproc_process_set_capture_limit(p, 5), MPROC_ESTATE);
  ASSERT_EQ(mproc_process_join(p, 60), MPROC_OK);
  std::string got = output_of(p, MPROC_STDOUT);
  ASSERT_EQ(got.size(), limit);
  for (size_t i = 0; i < limit; i++)
    ASSERT_EQ((unsigned char)got[i], pattern(1, n - limit + i)) << i;
  mproc_output_info info;
  ASSERT_EQ(mproc_process_output_info(p, MPROC_STDOUT, &info), MPROC_OK);
  EXPECT_EQ(info.total, (uint64_t)n);
  EXPECT_EQ(info.dropped, (uint64_t)(n - limit));
  mproc_process_free(p);
}

TEST(Output, BadArguments) {
  char buf[8];
  size_t len = 0;
  mproc_output_info info;
  EXPECT_EQ(mproc_process_output(nullptr, MPROC_STDOUT, buf, 8, &len),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_process_output_read(nullptr, MPROC_STDOUT, buf, 8, &len, 0),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_process_output_info(nullptr, MPROC_STDOUT, &info),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_process_set_capture_limit(nullptr, 1), MPROC_EINVAL);

  // stdin cannot be captured.
  mproc_process_options o = {};
  mproc_process *p = nullptr;
  o.stdio[0].mode = MPROC_STDIO_CAPTURE;
  EXPECT_EQ(mproc_process_create(&p, "out_silent", nullptr, &o), MPROC_EINVAL);
  EXPECT_EQ(p, nullptr);

  o = capture_opts(MPROC_START_SPAWN, true, false);
  ASSERT_EQ(mproc_process_create(&p, "out_silent", nullptr, &o), MPROC_OK);
  // Never started.
  EXPECT_EQ(mproc_process_output(p, MPROC_STDOUT, buf, 8, &len), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_output_read(p, MPROC_STDOUT, buf, 8, &len, 0),
            MPROC_ESTATE);
  EXPECT_EQ(mproc_process_output_info(p, MPROC_STDOUT, &info), MPROC_ESTATE);
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  ASSERT_EQ(mproc_process_join(p, 60), MPROC_OK);
  // Not a stream, not captured, bad buffers.
  EXPECT_EQ(mproc_process_output(p, 0, buf, 8, &len), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_output(p, 3, buf, 8, &len), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_output(p, MPROC_STDERR, buf, 8, &len),
            MPROC_ENOTFOUND);
  EXPECT_EQ(mproc_process_output_read(p, MPROC_STDERR, buf, 8, &len, 0),
            MPROC_ENOTFOUND);
  EXPECT_EQ(mproc_process_output(p, MPROC_STDOUT, nullptr, 8, &len),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_process_output(p, MPROC_STDOUT, buf, 8, nullptr),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_process_output_read(p, MPROC_STDOUT, buf, 0, &len, 0),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_process_output(p, MPROC_STDOUT, buf, 8, &len), MPROC_OK);
  EXPECT_EQ(mproc_process_close(p), MPROC_OK);
  EXPECT_EQ(mproc_process_output(p, MPROC_STDOUT, buf, 8, &len), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_output_read(p, MPROC_STDOUT, buf, 8, &len, 0),
            MPROC_ECLOSED);
  mproc_process_free(p);
  // The calling process is nobody's capture.
  EXPECT_EQ(mproc_process_output(mproc_current_process(), MPROC_STDOUT, buf, 8,
                                 &len),
            MPROC_EPERM);
}

#ifndef _WIN32
TEST(Output, AGrandchildHoldingTheStreamDoesNotHoldTheOutput) {
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = capture_opts(m, true, false);
    mproc_event *ev = nullptr;
    mproc_process *p = nullptr;
    ASSERT_NO_FATAL_FAILURE(
        start_with_event("out_leave_grandchild", &o, &ev, &p));
    ASSERT_EQ(mproc_process_join(p, 60), MPROC_OK);
    double t0 = test_now();
    EXPECT_EQ(output_of(p, MPROC_STDOUT), "child's own\n");
    mproc_output_info info;
    ASSERT_EQ(mproc_process_output_info(p, MPROC_STDOUT, &info), MPROC_OK);
    EXPECT_EQ(info.eof, 0); // the grandchild still holds it
    EXPECT_EQ(read_until(p, MPROC_STDOUT, 12), "child's own\n");
    char c;
    size_t len = 0;
    EXPECT_EQ(mproc_process_output_read(p, MPROC_STDOUT, &c, 1, &len, 0.05),
              MPROC_ETIMEDOUT);
    EXPECT_LT(test_now() - t0, 10.0);
    ASSERT_EQ(mproc_event_set(ev), MPROC_OK); // the grandchild exits
    EXPECT_EQ(mproc_process_output_read(p, MPROC_STDOUT, &c, 1, &len, 60),
              MPROC_EEOF);
    mproc_process_free(p);
    mproc_event_free(ev);
  }
}
#endif

#ifndef _WIN32
// A fork start in one thread while another thread spawns captured
// children: the fork child must not keep a copy of a spawned child's
// stream (then the stream would see end-of-file only when that fork child
// ends).  The spawn copies the write end above its dup2 targets while it
// runs without mproc__lock; that copy is a fork child's to drop too.
TEST(Output, ForkStartsInAnotherThreadHoldNoSpawnedChildsStream) {
  mproc_event *gate = nullptr;
  ASSERT_EQ(mproc_event_create(&gate), MPROC_OK);
  std::atomic<bool> stop{false};
  std::vector<mproc_process *> forked;
  std::thread forker([&] {
    mproc_process_options o = {};
    o.start_method = MPROC_START_FORK;
    Args a;
    EXPECT_EQ(mproc_args_add_object(a.a, nullptr, gate), MPROC_OK);
    for (TestRounds r(1, 400, 30); r.next() && !stop;) {
      mproc_process *p = nullptr;
      if (mproc_process_create(&p, "out_wait", a.a, &o) != MPROC_OK ||
          mproc_process_start(p) != MPROC_OK) {
        ADD_FAILURE() << "fork start";
        mproc_process_free(p);
        return;
      }
      forked.push_back(p);
    }
  });
  std::vector<mproc_process *> spawned;
  mproc_process_options o = capture_opts(MPROC_START_SPAWN, true, true);
  for (TestRounds r(10, 40, 20); r.next();) {
    mproc_process *p = nullptr;
    ASSERT_EQ(mproc_process_create(&p, "out_silent", nullptr, &o), MPROC_OK);
    ASSERT_EQ(mproc_process_start(p), MPROC_OK);
    spawned.push_back(p);
  }
  stop = true;
  forker.join();
  // Every spawned child ended: nothing else may hold its streams, while
  // every fork child still lives (the gate is not set).
  for (mproc_process *p : spawned) {
    char c;
    size_t len = 0;
    ASSERT_EQ(mproc_process_join(p, 60), MPROC_OK);
    int rc = mproc_process_output_read(p, MPROC_STDOUT, &c, 1, &len, 10);
    EXPECT_EQ(rc, MPROC_EEOF) << "held by a fork child; " << forked.size()
                              << " forked meanwhile";
    mproc_process_free(p);
    if (rc != MPROC_EEOF)
      break;
  }
  ASSERT_EQ(mproc_event_set(gate), MPROC_OK);
  for (mproc_process *p : forked) {
    EXPECT_EQ(test_join_code(p), 0);
    mproc_process_free(p);
  }
  mproc_event_free(gate);
}
#endif
