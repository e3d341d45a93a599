// The C++ wrapper (include/mproc.hpp): a process started with arguments
// and joined, queue and pipe round trips (typed and bytes), a pool's typed
// map, the RAII owners of the sync objects and shared memory, and errors
// as exceptions and as std::error_code (the category's messages and its
// std::errc equivalents), result values and end reports, stop chains and
// trees, the forkserver start method, and a pool's async results (progress,
// task timeouts).  Entries are named functions, as the wrapper requires:
// the children here may be spawned.
#include <gtest/gtest.h>

#include <mproc.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

// Doubles its integer argument onto the queue, echoes its string with a
// suffix, and returns its keyword "code".
TEST_ENTRY(cpp_child) {
  try {
    mproc::args_view in(args);
    mproc::queue q = in.get_queue(0);
    q.put_int64(in.get_int64(1) * 2);
    q.put_str(in.get_str(2) + " back");
    q.put_double(in.get_double(3) * 2);
    return static_cast<int>(in.kw_int64("code"));
  } catch (const mproc::error &e) {
    return 100 + (-e.value());
  }
}

TEST(Cpp, ProcessWithArgsAndQueue) {
  mproc::queue q;
  mproc::args a(q, 21, "there", 1.25);
  a.kw("code", 7);
  mproc::process p("cpp_child", a);
  EXPECT_FALSE(p.exitcode().has_value());
  p.start();
  EXPECT_GT(p.pid(), 0);
  EXPECT_EQ(q.get_int64(30), 42);
  EXPECT_EQ(q.get_str(30), "there back");
  EXPECT_EQ(q.get_double(30), 2.5);
  EXPECT_TRUE(p.join(60));
  ASSERT_TRUE(p.exitcode().has_value());
  EXPECT_EQ(*p.exitcode(), 7);
  EXPECT_FALSE(p.name().empty());
}

TEST_ENTRY(cpp_wait_event) {
  mproc::args_view in(args);
  return in.get_event(0).wait(60) ? 0 : 1;
}

TEST(Cpp, JoinTimeoutAsErrorCode) {
  mproc::event ev;
  mproc::process p("cpp_wait_event", mproc::args(ev));
  p.start();
  std::error_code ec;
  EXPECT_FALSE(p.join(0.01, ec));
  EXPECT_EQ(ec, std::errc::timed_out);
  EXPECT_EQ(ec.value(), MPROC_ETIMEDOUT);
  EXPECT_FALSE(p.join(0)); // the throwing form: a timeout is an answer
  ev.set();
  EXPECT_TRUE(p.join(60, ec));
  EXPECT_FALSE(ec);
  EXPECT_EQ(p.exitcode().value_or(-1), 0);
}

TEST(Cpp, QueueRoundTripAndErrors) {
  mproc::queue q;
  q.put_int64(-5);
  q.put_double(0.5);
  q.put_str(std::string(3000, 'y')); // longer than get_str's first buffer
  q.put_bytes("raw\0bytes", 9);
  EXPECT_EQ(q.get_int64(5), -5);
  EXPECT_EQ(q.get_double(5), 0.5);
  EXPECT_EQ(q.get_str(5), std::string(3000, 'y'));
  EXPECT_EQ(q.get_bytes(5), std::string("raw\0bytes", 9));
  EXPECT_TRUE(q.empty());

  std::error_code ec;
  EXPECT_EQ(q.get_int64(0, ec), 0);
  EXPECT_EQ(ec.value(), MPROC_EEMPTY);
  EXPECT_EQ(&ec.category(), &mproc::category());
  EXPECT_EQ(ec.message(), mproc_strerror(MPROC_EEMPTY));
  try {
    q.get_int64(0);
    FAIL() << "no exception";
  } catch (const mproc::error &e) {
    EXPECT_EQ(e.value(), MPROC_EEMPTY);
    EXPECT_NE(std::string(e.what()).find("mproc_queue_get_int64"),
              std::string::npos);
  }
  q.put_str("not a number");
  try {
    q.get_int64(5);
    FAIL() << "no exception";
  } catch (const std::system_error &e) { // mproc::error is one
    EXPECT_EQ(e.code(), mproc::make_error_code(MPROC_ETYPE));
  }
}

TEST(Cpp, ErrorCategory) {
  EXPECT_STREQ(mproc::category().name(), "mproc");
  EXPECT_EQ(mproc::make_error_code(MPROC_ETIMEDOUT), std::errc::timed_out);
  EXPECT_EQ(mproc::make_error_code(MPROC_EINVAL), std::errc::invalid_argument);
  EXPECT_NE(mproc::make_error_code(MPROC_EEMPTY), std::errc::timed_out);
  EXPECT_EQ(mproc::make_error_code(3).message(), "task failed with status 3");
  EXPECT_THROW(mproc::process("no_such_entry_anywhere"), mproc::error);
  EXPECT_THROW(mproc::sleep(-1.0), mproc::error);
  mproc::sleep(std::chrono::milliseconds(1));
}

TEST(Cpp, PipeLockEventSemaphoreShm) {
  auto [a, b] = mproc::pipe();
  a.send_int64(9);
  a.send_str("pipe");
  a.send_bytes("xyz", 3);
  a.send_double(-0.25);
  EXPECT_EQ(b.recv_int64(5), 9);
  EXPECT_EQ(b.recv_str(5), "pipe");
  EXPECT_EQ(b.recv_bytes(5), "xyz");
  EXPECT_EQ(b.recv_double(5), -0.25);
  EXPECT_FALSE(b.poll(0));
  std::error_code ec;
  EXPECT_EQ(b.recv_int64(0, ec), 0);
  EXPECT_EQ(ec, std::errc::timed_out);

  mproc::lock lk;
  {
    mproc::lock::guard g(lk);
    EXPECT_EQ(mproc_lock_locked(lk.get()), 1);
  }
  EXPECT_EQ(mproc_lock_locked(lk.get()), 0);
  EXPECT_TRUE(lk.acquire(0));
  lk.release();

  mproc::semaphore sem(1, true);
  EXPECT_TRUE(sem.acquire(0));
  EXPECT_FALSE(sem.acquire(0));
  sem.release();
  EXPECT_EQ(sem.value(), 1u);
  EXPECT_THROW(sem.release(), mproc::error); // bounded: MPROC_EOVERFLOW

  mproc::event ev;
  EXPECT_FALSE(ev.wait(0));
  ev.set();
  EXPECT_TRUE(ev.is_set());

  mproc::shared_memory shm(128);
  EXPECT_GE(shm.size(), 128u);
  EXPECT_EQ(shm.name(), nullptr);
  std::memcpy(shm.data(), "hi", 3);
  mproc::shared_memory moved = std::move(shm);
  EXPECT_STREQ(static_cast<const char *>(moved.data()), "hi");
  EXPECT_FALSE(shm);
}

TEST_ENTRY(cpp_square) {
  std::int64_t x = 0;
  if (mproc_task_input_int64(args, &x) < 0)
    return 1;
  if (x == 13)
    return 13; // a task's own failure status
  return mproc_task_result_int64(args, x * x) < 0 ? 2 : 0;
}

TEST_ENTRY(cpp_shout) {
  const char *s = nullptr;
  if (mproc_task_input_str(args, &s) < 0)
    return 1;
  return mproc_task_result_str(args, (std::string(s) + "!").c_str()) < 0 ? 2
                                                                         : 0;
}

TEST(Cpp, PoolMap) {
  mproc::pool pool(2);
  std::vector<std::int64_t> in{1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<std::int64_t> out = pool.map<std::int64_t>("cpp_square", in);
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); i++)
    EXPECT_EQ(out[i], in[i] * in[i]);
  std::vector<std::string> words{"a", "bc", ""};
  std::vector<std::string> shouted = pool.map<std::string>("cpp_shout", words);
  EXPECT_EQ(shouted, (std::vector<std::string>{"a!", "bc!", "!"}));
  try {
    pool.map<std::int64_t>("cpp_square", std::vector<std::int64_t>{12, 13});
    FAIL() << "no exception";
  } catch (const mproc::error &e) {
    EXPECT_EQ(e.value(), 13);
  }
  pool.close();
  EXPECT_TRUE(pool.join(60));
}

// Sets a binary result (a NUL inside) and exits 3.
TEST_ENTRY(cpp_result) {
  try {
    mproc::set_result(std::string("res\0ult", 7));
  } catch (const mproc::error &) {
    return 9;
  }
  return 3;
}

TEST_ENTRY(cpp_nothing) { return 0; }

TEST(Cpp, ResultAndEndReport) {
  mproc::process p("cpp_result");
  EXPECT_THROW((void)p.result(), mproc::error); // before start: MPROC_ESTATE
  p.start();
  EXPECT_TRUE(p.join(60));
  std::optional<std::vector<unsigned char>> r = p.result();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::string(r->begin(), r->end()), std::string("res\0ult", 7));
  EXPECT_EQ(p.result_string().value_or(""), std::string("res\0ult", 7));
  mproc_end_info info = p.end();
  EXPECT_EQ(info.kind, MPROC_END_EXIT);
  EXPECT_EQ(info.code, 3);
  EXPECT_EQ(p.describe(), "exited with code 3");
  EXPECT_EQ(mproc::describe(info), "exited with code 3");

  mproc::process none("cpp_nothing");
  none.start();
  EXPECT_TRUE(none.join(60));
  EXPECT_FALSE(none.result().has_value()); // MPROC_ENOTFOUND
  EXPECT_FALSE(none.result_string().has_value());
  EXPECT_THROW(mproc::set_result("x"), mproc::error); // not a child
}

TEST(Cpp, StopChainAndTrees) {
  mproc::event ev; // never set: the child waits until it is stopped
  mproc::process p("cpp_wait_event", mproc::args(ev));
  p.start();
  EXPECT_THROW(p.kill_tree(), mproc::error); // no new_group: MPROC_ESTATE
  std::optional<mproc_stop_result> how =
      p.stop({{MPROC_STOP_TERMINATE, 30.0}, {MPROC_STOP_KILL, 30.0}});
  ASSERT_TRUE(how.has_value());
  EXPECT_EQ(how->step, 0);
  EXPECT_EQ(how->exitcode, -15);
  how = p.stop({{MPROC_STOP_KILL, 1.0}}); // ended already: nothing sent
  ASSERT_TRUE(how.has_value());
  EXPECT_EQ(how->step, -1);
  EXPECT_THROW(p.stop({}), mproc::error); // no steps: MPROC_EINVAL

  mproc_process_options o{};
  o.new_group = 1;
  mproc::process tree("cpp_wait_event", mproc::args(ev), &o);
  tree.start();
  tree.terminate_tree();
  EXPECT_TRUE(tree.join(60));
  EXPECT_EQ(tree.exitcode().value_or(0), -15);
  tree.kill_tree(); // ended: harmless
}

TEST(Cpp, ForkserverStartMethod) {
  mproc_start_method before = mproc::get_start_method();
#ifdef _WIN32
  EXPECT_THROW(mproc::set_start_method(MPROC_START_FORKSERVER), mproc::error);
  EXPECT_EQ(mproc::get_start_method(), before);
#else
  mproc::set_start_method(MPROC_START_FORKSERVER);
  EXPECT_EQ(mproc::get_start_method(), MPROC_START_FORKSERVER);
  mproc::process p("cpp_result");
  p.start();
  EXPECT_TRUE(p.join(60));
  EXPECT_EQ(p.exitcode().value_or(-1), 3);
  EXPECT_EQ(p.result_string().value_or(""), std::string("res\0ult", 7));
  mproc::set_start_method(before);
  EXPECT_THROW(mproc::set_forkserver_preload("no_such_entry"), mproc::error);
#endif
}

// Echoes its input bytes with a '+'; "nap" sleeps far past any timeout.
TEST_ENTRY(cpp_echo) {
  const void *d = nullptr;
  size_t n = 0;
  if (mproc_task_input(args, &d, &n) < 0)
    return 1;
  std::string s(static_cast<const char *>(d), n);
  if (s == "nap")
    mproc_sleep(60);
  s += '+';
  return mproc_task_result(args, s.data(), s.size()) < 0 ? 2 : 0;
}

TEST(Cpp, PoolAsyncProgressAndTaskTimeout) {
  mproc::pool pool(2);
  std::vector<std::string> in{"a", "nap", "bc", ""};
  mproc::async_result r = pool.map_async("cpp_echo", in, 1, 0.3);
  EXPECT_EQ(r.count(), in.size());
  EXPECT_LE(r.done_count(), in.size());
  EXPECT_TRUE(r.wait(60));
  EXPECT_TRUE(r.ready());
  EXPECT_EQ(r.done_count(), in.size());
  EXPECT_FALSE(r.successful());
  std::string b;
  EXPECT_EQ(r.item(0, &b), 0);
  EXPECT_EQ(b, "a+");
  EXPECT_EQ(r.item(1), MPROC_ETIMEDOUT); // killed past its 0.3 s
  EXPECT_EQ(r.item(2, &b), 0);
  EXPECT_EQ(b, "bc+");
  EXPECT_EQ(r.item(3, &b), 0);
  EXPECT_EQ(b, "+");
  EXPECT_THROW(r.item(4), mproc::error); // out of range

  mproc::async_result one = pool.apply_async("cpp_echo", "x");
  EXPECT_TRUE(one.wait(60));
  EXPECT_EQ(one.item(0, &b), 0);
  EXPECT_EQ(b, "x+");
  EXPECT_TRUE(one.successful());
  pool.close();
  EXPECT_TRUE(pool.join(60));
}

// The code of a wrapper call that throws, or 0.
template <class F> int code_of(F f) {
  try {
    f();
  } catch (const mproc::error &e) {
    return e.value();
  }
  return 0;
}

// Waits for its event, then writes "out-text" to stdout and 3000 'e' to
// stderr (no newline: Windows' text mode would change it).
TEST_ENTRY(cpp_speak) {
  mproc::args_view in(args);
  if (!in.get_event(0).wait(60))
    return 1;
  std::fputs("out-text", stdout);
  std::fflush(stdout);
  std::fputs(std::string(3000, 'e').c_str(), stderr);
  std::fflush(stderr);
  return 0;
}

TEST(Cpp, CapturedOutput) {
  mproc_process_options o{};
  o.stdio[1].mode = MPROC_STDIO_CAPTURE;
  o.stdio[2].mode = MPROC_STDIO_CAPTURE;
  mproc::event go;
  mproc::process p("cpp_speak", mproc::args(go), &o);
  p.set_capture_limit(1000);
  EXPECT_EQ(code_of([&] { p.output_info(MPROC_STDOUT); }), MPROC_ESTATE);
  p.start();
  EXPECT_EQ(code_of([&] { p.set_capture_limit(10); }), MPROC_ESTATE);
  EXPECT_EQ(code_of([&] { p.output(MPROC_STDOUT); }), MPROC_ESTATE);
  // Nothing before the event: a timeout is an empty answer.
  std::optional<std::string> none = p.read_output(MPROC_STDOUT, 0);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(*none, "");
  go.set();
  std::string got;
  double end = test_now() + 60;
  while (got.size() < 8 && test_now() < end) {
    std::optional<std::string> c = p.read_output(MPROC_STDOUT, 30, 3);
    ASSERT_TRUE(c.has_value()) << "end of file after " << got;
    EXPECT_LE(c->size(), 3u);
    got += *c;
  }
  EXPECT_EQ(got, "out-text");
  EXPECT_TRUE(p.join(60));
  EXPECT_EQ(p.exitcode().value_or(-1), 0);
  EXPECT_FALSE(p.read_output(MPROC_STDOUT, 30).has_value()); // all read
  EXPECT_EQ(p.output(), "out-text");
  std::vector<unsigned char> b = p.output_bytes(MPROC_STDOUT);
  EXPECT_EQ(std::string(b.begin(), b.end()), "out-text");
  // The limit kept the last 1000 of stderr's 3000 bytes.
  EXPECT_EQ(p.output(MPROC_STDERR), std::string(1000, 'e'));
  mproc_output_info info = p.output_info(MPROC_STDERR);
  EXPECT_EQ(info.total, 3000u);
  EXPECT_EQ(info.dropped, 2000u);
  EXPECT_EQ(p.output_info(MPROC_STDOUT).dropped, 0u);
  mproc::process plain("cpp_nothing");
  plain.start();
  EXPECT_TRUE(plain.join(60));
  EXPECT_EQ(code_of([&] { plain.output(); }), MPROC_ENOTFOUND);
}

TEST(Cpp, QueueViews) {
  mproc::queue q;
  {
    mproc::queue_view v = q.put_reserve(16, 5);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v.is_reservation());
    EXPECT_EQ(v.size(), 16u);
    std::memcpy(v.data(), "hello", 5);
    v.commit(5);
    EXPECT_FALSE(v);
    EXPECT_EQ(code_of([&] { v.commit(); }), MPROC_ESTATE);
  }
  {
    mproc::queue_view v = q.put_reserve(8, 5);
    std::memcpy(v.data(), "dropped!", 8);
  } // not committed: aborted, nothing put
  q.put_bytes("raw", 3);
  {
    mproc::queue_view v = q.get_borrow(5);
    EXPECT_FALSE(v.is_reservation());
    EXPECT_EQ(std::string(reinterpret_cast<char *>(v.data()), v.size()),
              "hello");
    // A second borrow on this thread would wait for itself.
    EXPECT_EQ(code_of([&] { q.get_borrow(0); }), MPROC_ESTATE);
    EXPECT_EQ(code_of([&] { v.commit(); }), MPROC_EINVAL); // a borrow
    mproc::queue_view w = std::move(v);
    EXPECT_FALSE(v);
    ASSERT_TRUE(w);
  } // w released by its destructor: the message is taken
  {
    mproc::queue_view v = q.get_borrow(5);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(v.data()), v.size()),
              "raw");
    v.release();
    EXPECT_FALSE(v);
    EXPECT_EQ(v.data(), nullptr);
  }
  EXPECT_EQ(code_of([&] { q.get_borrow(0); }), MPROC_EEMPTY);
  EXPECT_EQ(code_of([&] { q.put_reserve(SIZE_MAX, 0); }),
            MPROC_E2BIG);
}

} // namespace
