// The Process API: lifecycle, exit codes, signals, names, daemons, waiting.
// Every test runs under the lane's start method (fork or spawn on Linux,
// spawn on Windows), so the same expectations hold for all of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

bool pipe_has_data(mproc_handle_t h) {
#ifdef _WIN32
  DWORD avail = 0;
  return PeekNamedPipe(h, nullptr, 0, nullptr, &avail, nullptr) && avail > 0;
#else
  mproc_waitable w = {MPROC_WAIT_HANDLE, nullptr, h, 0};
  return mproc_wait(&w, 1, 0) == 1;
#endif
}

mproc_process *created(const char *entry, const mproc_args *a = nullptr,
                       const mproc_process_options *o = nullptr) {
  mproc_process *p = nullptr;
  EXPECT_EQ(mproc_process_create(&p, entry, a, o), MPROC_OK);
  return p;
}

} // namespace

TEST_ENTRY(ret_arg) { return (int)arg_int(args, 0); }

TEST_ENTRY(sleep_then_ret) {
  test_sleep_ms((int)arg_int(args, 0));
  return (int)arg_int(args, 1);
}

// Writes "name|parent name|pid|daemon" to the handle in arg 0.
TEST_ENTRY(report_self) {
  mproc_process *me = mproc_current_process();
  mproc_process *parent = mproc_parent_process();
  int64_t pid = -1, ppid = -1;
  mproc_process_pid(me, &pid);
  if (parent)
    mproc_process_pid(parent, &ppid);
  std::string s = std::string(mproc_process_name(me)) + "|" +
                  (parent ? mproc_process_name(parent) : "-") + "|" +
                  std::to_string(pid) + "|" + std::to_string(ppid) + "|" +
                  std::to_string(mproc_process_daemon(me)) + "|" +
                  std::to_string(test_getpid()) + "|" +
                  std::to_string(parent ? mproc_process_is_alive(parent) : -1);
  return test_write_all(arg_handle(args, 0), s.data(), s.size()) ? 0 : 1;
}

// Starts a default-named grandchild that reports itself on our handle.
TEST_ENTRY(report_grandchild) {
  mproc_handle_t h = arg_handle(args, 0);
  Args a;
  a.h(h);
  mproc_process *p = nullptr;
  if (mproc_process_create(&p, "report_self", a, nullptr) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK)
    return 10;
  int code = -1;
  mproc_process_join(p, 60);
  mproc_process_exitcode(p, &code);
  mproc_process_free(p);
  return code;
}

// Returns -rc of starting a child (0 if it worked).
TEST_ENTRY(try_start_child) {
  mproc_process *p = nullptr;
  int rc = mproc_process_create(&p, "ret_arg", nullptr, nullptr);
  if (rc == MPROC_OK)
    rc = mproc_process_start(p);
  if (rc == MPROC_OK)
    mproc_process_join(p, 60);
  mproc_process_free(p);
  return -rc;
}

// Writes 'R' on the handle, then sleeps (holding the handle) up to 60 s.
TEST_ENTRY(hold_and_sleep) {
  mproc_handle_t h = arg_handle(args, 0);
  if (!test_write_all(h, "R", 1))
    return 1;
  test_sleep_ms((int)arg_int(args, 1, 60000));
  return 0;
}

// Starts a grandchild running hold_and_sleep(handle), daemonic or not per
// arg 1, then returns at once (arg 2 == 0) or sleeps (arg 2 ms).
TEST_ENTRY(start_grandchild_and_go) {
  mproc_handle_t h = arg_handle(args, 0);
  int64_t daemonic = arg_int(args, 1), linger = arg_int(args, 2);
  Args a;
  a.h(h).i(daemonic ? 60000 : 300);
  mproc_process_options o = {nullptr,
                             daemonic ? MPROC_DAEMON_YES : MPROC_DAEMON_NO,
                             MPROC_START_DEFAULT, 0, 0, nullptr, nullptr, {}, 0};
  mproc_process *p = nullptr;
  if (mproc_process_create(&p, "hold_and_sleep", a, &o) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK)
    return 10;
  mproc_process_free(p); // still tracked: exit-time cleanup handles it
  if (linger)
    test_sleep_ms((int)linger);
  return 0;
}

// Writes "done" after arg 1 ms, on the handle in arg 0.
TEST_ENTRY(write_done_later) {
  test_sleep_ms((int)arg_int(args, 1));
  return test_write_all(arg_handle(args, 0), "done", 4) ? 0 : 1;
}

TEST_ENTRY(start_nondaemon_writer_and_go) {
  Args a;
  a.h(arg_handle(args, 0)).i(300);
  mproc_process *p = nullptr;
  if (mproc_process_create(&p, "write_done_later", a, nullptr) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK)
    return 10;
  mproc_process_free(p);
  return 0; // exit-time cleanup must join the grandchild first
}

static volatile sig_atomic_t g_sigint_seen;
static void on_sigint(int) { g_sigint_seen = 1; }

TEST_ENTRY(wait_for_sigint) {
  signal(SIGINT, on_sigint);
  if (!test_write_all(arg_handle(args, 0), "R", 1))
    return 1;
  for (int i = 0; i < 30000 && !g_sigint_seen; i++)
    test_sleep_ms(1);
  return g_sigint_seen ? 42 : 43;
}

TEST_ENTRY(ready_then_sleep) {
  // A fork child inherits the parent's dispositions; if whoever launched the
  // tests ignores SIGINT (nohup, a background job), so would this child.
  signal(SIGINT, SIG_DFL);
  if (!test_write_all(arg_handle(args, 0), "R", 1))
    return 1;
  test_sleep_ms(60000);
  return 0;
}

// ---- lifecycle ----------------------------------------------------------

TEST(Lifecycle, ExitCodeIsTheEntryReturnValue) {
  mproc_process *p = test_start("ret_arg", Args().i(7));
  EXPECT_EQ(test_join_code(p), 7);
  mproc_process_free(p);
}

TEST(Lifecycle, ZeroExitCode) {
  mproc_process *p = test_start("ret_arg", Args().i(0));
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

TEST(Lifecycle, ExitCodeNoneBeforeStartAndWhileRunning) {
  mproc_process *p = created("sleep_then_ret", Args().i(60000));
  int code = 12345;
  EXPECT_EQ(mproc_process_exitcode(p, &code), 0);
  EXPECT_EQ(code, 12345);
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  EXPECT_EQ(mproc_process_exitcode(p, &code), 0);
  EXPECT_EQ(mproc_process_terminate(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -15);
  mproc_process_free(p);
}

TEST(Lifecycle, JoinTimesOutWhileRunningAndCanBeRepeated) {
  mproc_process *p = test_start("sleep_then_ret", Args().i(60000).i(3));
  double t0 = test_now();
  EXPECT_EQ(mproc_process_join(p, 0.2), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_process_join(p, 0), MPROC_ETIMEDOUT);
  EXPECT_LT(test_now() - t0, 30.0); // a generous upper bound only
  EXPECT_EQ(mproc_process_is_alive(p), 1);
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  // Joining an ended process again is fine and immediate.
  EXPECT_EQ(mproc_process_join(p, 0), MPROC_OK);
  EXPECT_EQ(mproc_process_join(p, MPROC_FOREVER), MPROC_OK);
  mproc_process_free(p);
}

TEST(Lifecycle, JoinBeforeStartIsAStateError) {
  mproc_process *p = created("ret_arg");
  EXPECT_EQ(mproc_process_join(p, 0), MPROC_ESTATE);
  mproc_process_free(p);
}

TEST(Lifecycle, StartTwiceIsAStateError) {
  mproc_process *p = test_start("ret_arg", Args().i(1));
  EXPECT_EQ(mproc_process_start(p), MPROC_ESTATE);
  EXPECT_EQ(test_join_code(p), 1);
  EXPECT_EQ(mproc_process_start(p), MPROC_ESTATE);
  mproc_process_free(p);
}

TEST(Lifecycle, IsAliveBeforeDuringAfter) {
  mproc_process *p = created("sleep_then_ret", Args().i(60000));
  EXPECT_EQ(mproc_process_is_alive(p), 0);
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  EXPECT_EQ(mproc_process_is_alive(p), 1);
  mproc_process_terminate(p);
  test_join_code(p);
  EXPECT_EQ(mproc_process_is_alive(p), 0);
  mproc_process_free(p);
}

TEST(Lifecycle, PidUnsetBeforeStartThenMatchesTheChild) {
  TestPipe pipe;
  mproc_process *p = created("report_self", Args().h(pipe.w));
  int64_t pid = 0;
  EXPECT_EQ(mproc_process_pid(p, &pid), MPROC_ESTATE);
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  pipe.close_w();
  ASSERT_EQ(mproc_process_pid(p, &pid), MPROC_OK);
  std::string out = test_read_all(pipe.r);
  EXPECT_EQ(test_join_code(p), 0);
  // Field 3 is the child's own view of its pid, field 6 its OS pid.
  size_t a = out.find('|'), b = out.find('|', a + 1), c = out.find('|', b + 1);
  ASSERT_NE(c, std::string::npos) << out;
  EXPECT_EQ(out.substr(b + 1, c - b - 1), std::to_string(pid)) << out;
  std::string tail = "|" + std::to_string(pid) + "|1";
  ASSERT_GE(out.size(), tail.size());
  EXPECT_EQ(out.substr(out.size() - tail.size()), tail) << out;
  mproc_process_free(p);
}

TEST(Lifecycle, ManyChildrenAtOnce) {
  mproc_process *ps[8];
  for (int i = 0; i < 8; i++)
    ps[i] = test_start("ret_arg", Args().i(i + 1));
  for (int i = 0; i < 8; i++) {
    EXPECT_EQ(test_join_code(ps[i]), i + 1);
    mproc_process_free(ps[i]);
  }
}

TEST(Lifecycle, SeveralThreadsJoinTheSameProcess) {
  mproc_process *p = test_start("sleep_then_ret", Args().i(200).i(9));
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; i++)
    ts.emplace_back([&] {
      if (mproc_process_join(p, 60) == MPROC_OK)
        ok++;
    });
  for (auto &t : ts)
    t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(test_join_code(p), 9);
  mproc_process_free(p);
}

// ---- signals ----------------------------------------------------------------

TEST(Signals, TerminateReportsMinus15) {
  mproc_process *p = test_start("sleep_then_ret", Args().i(60000));
  EXPECT_EQ(mproc_process_terminate(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -15);
  mproc_process_free(p);
}

TEST(Signals, KillReportsMinus9) {
  mproc_process *p = test_start("sleep_then_ret", Args().i(60000));
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  mproc_process_free(p);
}

TEST(Signals, InterruptWithoutHandlerReportsMinus2) {
  TestPipe pipe;
  mproc_process *p = test_start("ready_then_sleep", Args().h(pipe.w));
  pipe.close_w();
  ASSERT_EQ(test_read_n(pipe.r, 1), "R");
  EXPECT_EQ(mproc_process_interrupt(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -2);
  mproc_process_free(p);
}

TEST(Signals, InterruptRunsTheChildsSigintHandler) {
  TestPipe pipe;
  mproc_process *p = test_start("wait_for_sigint", Args().h(pipe.w));
  pipe.close_w();
  ASSERT_EQ(test_read_n(pipe.r, 1), "R");
  EXPECT_EQ(mproc_process_interrupt(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), 42);
  mproc_process_free(p);
}

TEST(Signals, OnAnEndedProcessAreHarmlessNoOps) {
  mproc_process *p = test_start("ret_arg", Args().i(5));
  EXPECT_EQ(test_join_code(p), 5);
  // Reaped: its pid may belong to a stranger now.  Nothing is sent.
  EXPECT_EQ(mproc_process_terminate(p), MPROC_OK);
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(mproc_process_interrupt(p), MPROC_OK);
  int code = 0;
  EXPECT_EQ(mproc_process_exitcode(p, &code), 1);
  EXPECT_EQ(code, 5);
  mproc_process_free(p);
}

TEST(Signals, BeforeStartAreStateErrors) {
  mproc_process *p = created("ret_arg");
  EXPECT_EQ(mproc_process_terminate(p), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_kill(p), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_interrupt(p), MPROC_ESTATE);
  mproc_process_free(p);
}

// ---- close and free -----------------------------------------------------------

TEST(Close, WhileRunningIsBusy) {
  mproc_process *p = test_start("sleep_then_ret", Args().i(60000));
  EXPECT_EQ(mproc_process_close(p), MPROC_EBUSY);
  mproc_process_kill(p);
  test_join_code(p);
  EXPECT_EQ(mproc_process_close(p), MPROC_OK);
  mproc_process_free(p);
}

TEST(Close, EveryCallAfterCloseIsAnError) {
  mproc_process *p = test_start("ret_arg", Args().i(3));
  test_join_code(p);
  ASSERT_EQ(mproc_process_close(p), MPROC_OK);
  int64_t pid;
  int code;
  mproc_handle_t h;
  EXPECT_EQ(mproc_process_start(p), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_join(p, 0), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_is_alive(p), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_exitcode(p, &code), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_terminate(p), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_kill(p), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_interrupt(p), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_pid(p, &pid), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_sentinel(p, &h), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_daemon(p), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_set_daemon(p, 1), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_set_name(p, "x"), MPROC_ECLOSED);
  EXPECT_EQ(mproc_process_name(p), nullptr);
  EXPECT_EQ(mproc_process_close(p), MPROC_OK); // twice is harmless
  mproc_process_free(p);
}

TEST(Close, NeverStartedProcessCloses) {
  mproc_process *p = created("ret_arg");
  EXPECT_EQ(mproc_process_close(p), MPROC_OK);
  EXPECT_EQ(mproc_process_start(p), MPROC_ECLOSED);
  mproc_process_free(p);
}

TEST(Close, FreeWhileRunningKeepsTrackingTheChild) {
  mproc_process *p = test_start("sleep_then_ret", Args().i(60000));
  int64_t pid = 0;
  mproc_process_pid(p, &pid);
  EXPECT_EQ(mproc_process_free(p), nullptr);
  mproc_process *kids[16];
  size_t n = 0;
  ASSERT_EQ(mproc_active_children(kids, 16, &n), MPROC_OK);
  mproc_process *mine = nullptr;
  for (size_t i = 0; i < n && i < 16; i++) {
    int64_t kp = 0;
    mproc_process_pid(kids[i], &kp);
    if (kp == pid)
      mine = kids[i];
    else
      mproc_process_free(kids[i]);
  }
  ASSERT_NE(mine, nullptr);
  mproc_process_kill(mine);
  EXPECT_EQ(test_join_code(mine), -9);
  mproc_process_free(mine);
}

// ---- names, identity, parents ---------------------------------------------------

TEST(Names, MainProcessAndCurrentPid) {
  mproc_process *me = mproc_current_process();
  ASSERT_NE(me, nullptr);
  EXPECT_STREQ(mproc_process_name(me), "MainProcess");
  int64_t pid = 0;
  EXPECT_EQ(mproc_process_pid(me, &pid), MPROC_OK);
  EXPECT_EQ(pid, test_getpid());
  EXPECT_EQ(mproc_process_daemon(me), 0);
  EXPECT_EQ(mproc_parent_process(), nullptr);
  EXPECT_EQ(mproc_process_is_alive(me), 1);
  EXPECT_EQ(mproc_process_start(me), MPROC_EPERM);
  EXPECT_EQ(mproc_process_join(me, 0), MPROC_EPERM);
  EXPECT_EQ(mproc_process_terminate(me), MPROC_EPERM);
  EXPECT_EQ(mproc_process_free(me), nullptr); // borrowed: a no-op
}

TEST(Names, DefaultNamesCountUp) {
  mproc_process *a = created("ret_arg"), *b = created("ret_arg");
  std::string na = mproc_process_name(a), nb = mproc_process_name(b);
  ASSERT_EQ(na.rfind("Process-", 0), 0u) << na;
  ASSERT_EQ(nb.rfind("Process-", 0), 0u) << nb;
  EXPECT_EQ(std::stoi(nb.substr(8)), std::stoi(na.substr(8)) + 1);
  mproc_process_free(a);
  mproc_process_free(b);
}

TEST(Names, CustomNameAndRename) {
  mproc_process_options o = {"worker", MPROC_DAEMON_INHERIT,
                             MPROC_START_DEFAULT, 0, 0, nullptr, nullptr, {}, 0};
  mproc_process *p = created("ret_arg", nullptr, &o);
  EXPECT_STREQ(mproc_process_name(p), "worker");
  EXPECT_EQ(mproc_process_set_name(p, "renamed"), MPROC_OK);
  EXPECT_STREQ(mproc_process_name(p), "renamed");
  EXPECT_EQ(mproc_process_set_name(p, nullptr), MPROC_EINVAL);
  mproc_process_free(p);
}

TEST(Names, ChildSeesItsNameAndItsParent) {
  TestPipe pipe;
  mproc_process_options o = {"alpha", MPROC_DAEMON_INHERIT, MPROC_START_DEFAULT,
                             0, 0, nullptr, nullptr, {}, 0};
  mproc_process *p = test_start("report_self", Args().h(pipe.w), &o);
  pipe.close_w();
  std::string out = test_read_all(pipe.r);
  EXPECT_EQ(test_join_code(p), 0);
  std::string expect =
      "alpha|MainProcess|";
  EXPECT_EQ(out.rfind(expect, 0), 0u) << out;
  // The parent pid the child sees is ours, and it sees us alive.
  EXPECT_NE(out.find("|" + std::to_string(test_getpid()) + "|0|"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.substr(out.size() - 2), "|1") << out;
  mproc_process_free(p);
}

TEST(Names, ChildrenOfChildrenAreNumberedBelowTheirParent) {
  TestPipe pipe;
  mproc_process *p = test_start("report_grandchild", Args().h(pipe.w));
  pipe.close_w();
  std::string parent_name = mproc_process_name(p);
  std::string out = test_read_all(pipe.r);
  EXPECT_EQ(test_join_code(p), 0);
  // Python: the first child of Process-N is Process-N:1, and its parent is
  // the child itself.
  EXPECT_EQ(out.rfind(parent_name + ":1|" + parent_name + "|", 0), 0u)
      << out;
  mproc_process_free(p);
}

// ---- daemons ------------------------------------------------------------------------

TEST(Daemon, InheritedDefaultAndSettableOnlyBeforeStart) {
  mproc_process *p = created("sleep_then_ret", Args().i(60000));
  EXPECT_EQ(mproc_process_daemon(p), 0);
  EXPECT_EQ(mproc_process_set_daemon(p, 1), MPROC_OK);
  EXPECT_EQ(mproc_process_daemon(p), 1);
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  EXPECT_EQ(mproc_process_set_daemon(p, 0), MPROC_ESTATE);
  mproc_process_kill(p);
  test_join_code(p);
  mproc_process_free(p);

  mproc_process_options o = {nullptr, MPROC_DAEMON_YES, MPROC_START_DEFAULT, 0, 0, nullptr, nullptr, {}, 0};
  p = created("ret_arg", nullptr, &o);
  EXPECT_EQ(mproc_process_daemon(p), 1);
  mproc_process_free(p);
  o.daemon = 7;
  EXPECT_EQ(mproc_process_create(&p, "ret_arg", nullptr, &o), MPROC_EINVAL);
}

TEST(Daemon, DaemonicProcessMayNotStartChildren) {
  mproc_process_options o = {nullptr, MPROC_DAEMON_YES, MPROC_START_DEFAULT, 0, 0, nullptr, nullptr, {}, 0};
  mproc_process *p = test_start("try_start_child", nullptr, &o);
  EXPECT_EQ(test_join_code(p), -MPROC_EDAEMON);
  mproc_process_free(p);
}

TEST(Daemon, TerminatedWhenItsParentExitsNormally) {
  TestPipe pipe;
  mproc_process *p =
      test_start("start_grandchild_and_go", Args().h(pipe.w).i(1).i(0));
  pipe.close_w();
  EXPECT_EQ(test_join_code(p), 0);
  // The daemonic grandchild would hold the pipe for 60 s; the child's exit
  // terminated it, so EOF comes long before that.
  double t0 = test_now();
  test_read_all(pipe.r);
  EXPECT_LT(test_now() - t0, 20.0);
  mproc_process_free(p);
}

TEST(Daemon, NonDaemonicChildrenAreJoinedAtExit) {
  TestPipe pipe;
  mproc_process *p =
      test_start("start_nondaemon_writer_and_go", Args().h(pipe.w));
  pipe.close_w();
  EXPECT_EQ(test_join_code(p), 0);
  // The child could only exit after its child wrote: the data is there now.
  EXPECT_TRUE(pipe_has_data(pipe.r));
  EXPECT_EQ(test_read_all(pipe.r), "done");
  mproc_process_free(p);
}

TEST(Daemon, DiesWhenItsParentIsKilledOutright) {
  TestPipe pipe;
  mproc_process *p =
      test_start("start_grandchild_and_go", Args().h(pipe.w).i(1).i(60000));
  pipe.close_w();
  ASSERT_EQ(test_read_n(pipe.r, 1), "R"); // the grandchild runs
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  // No exit handler ran in the killed child; the OS must end the daemon
  // (PR_SET_PDEATHSIG on Linux, the job object on Windows).
  double t0 = test_now();
  test_read_all(pipe.r);
  EXPECT_LT(test_now() - t0, 20.0);
  mproc_process_free(p);
}

// Waits for its parent to end through the parent's sentinel and join:
// writes "R" once waiting (or "X" when the parent has no valid sentinel),
// then "E" when the join saw the parent end ("T" if it timed out).
TEST_ENTRY(await_parent_end) {
  mproc_handle_t h = arg_handle(args, 0), s = MPROC_INVALID_HANDLE;
  mproc_process *parent = mproc_parent_process();
  if (!parent || mproc_process_sentinel(parent, &s) != MPROC_OK ||
      s == MPROC_INVALID_HANDLE)
    return test_write_all(h, "X", 1) ? 2 : 1;
  if (!test_write_all(h, "R", 1))
    return 1;
  int rc = mproc_process_join(parent, 60);
  return test_write_all(h, rc == MPROC_OK ? "E" : "T", 1) ? 0 : 1;
}

TEST_ENTRY(start_awaiter_and_sleep) {
  mproc_process *p = nullptr;
  if (mproc_process_create(&p, "await_parent_end", Args().h(arg_handle(args, 0)),
                           nullptr) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK)
    return 10;
  mproc_process_free(p);
  test_sleep_ms(60000);
  return 0;
}

TEST(Parent, ChildSeesItsParentEndThroughItsSentinel) {
  // Without pidfds the child's watch on its parent is its end of the life
  // line (src/posix/proc.c): a real sentinel, and a join that wakes when
  // the parent ends (it used to be no sentinel and a 10 ms getppid loop).
  TestPipe pipe;
  mproc_process *p = test_start("start_awaiter_and_sleep", Args().h(pipe.w));
  pipe.close_w();
  ASSERT_EQ(test_read_n(pipe.r, 1), "R");
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  double t0 = test_now();
  EXPECT_EQ(test_read_all(pipe.r), "E");
  EXPECT_LT(test_now() - t0, 20.0);
  mproc_process_free(p);
}

#ifndef _WIN32
// start_awaiter_and_sleep, plus a raw fork() child left behind (it holds
// copies of all our descriptors, the parent's end of the awaiter's life
// line included) that closes the pipe and its stdio and sleeps 40 s.
TEST_ENTRY(start_awaiter_fork_and_sleep) {
  mproc_handle_t h = arg_handle(args, 0);
  mproc_process *p = nullptr;
  if (mproc_process_create(&p, "await_parent_end", Args().h(h), nullptr) !=
          MPROC_OK ||
      mproc_process_start(p) != MPROC_OK)
    return 10;
  mproc_process_free(p);
  if (fork() == 0) {
    int null = open("/dev/null", O_RDWR);
    (void)close(h);
    for (int fd = 0; fd < 3; fd++)
      (void)dup2(null, fd);
    sleep(40);
    _exit(0);
  }
  test_sleep_ms(60000);
  return 0;
}

TEST(Parent, RawForkChildOfTheParentDoesNotKeepItAliveWithoutPidfds) {
  // Without pidfds a child sees its parent end when the parent's end of
  // its life line closes; a fork child the parent made itself must not
  // keep that end open (a daemonic child would outlive its killed parent
  // as long as it, where PR_SET_PDEATHSIG is missing).
  const char *knob = getenv("MPROC_POSIX_NO_PIDFD");
  if (!knob || strcmp(knob, "1") != 0) {
    std::string out;
    int code = test_run(
        {test_self_exe(), "--gtest_filter=Parent."
                          "RawForkChildOfTheParentDoesNotKeepItAliveWithoutPidfds"},
        {"MPROC_POSIX_NO_PIDFD=1"}, &out, 240);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
    return;
  }
  TestPipe pipe;
  mproc_process *p =
      test_start("start_awaiter_fork_and_sleep", Args().h(pipe.w));
  pipe.close_w();
  ASSERT_EQ(test_read_n(pipe.r, 1), "R");
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  double t0 = test_now();
  EXPECT_EQ(test_read_all(pipe.r), "E"); // "T" after 60 s before the fix
  EXPECT_LT(test_now() - t0, 20.0);
  mproc_process_free(p);
}
#endif

// ---- active children, cpu count, creator rules -----------------------------------------

TEST(Children, ActiveChildrenListsRunningAndReapsEnded) {
  mproc_process *quick = test_start("ret_arg", Args().i(0));
  mproc_process *slow = test_start("sleep_then_ret", Args().i(60000));
  test_join_code(quick);
  size_t n = 99;
  mproc_process *kids[8];
  ASSERT_EQ(mproc_active_children(kids, 8, &n), MPROC_OK);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(kids[0], slow);
  mproc_process_free(kids[0]);
  ASSERT_EQ(mproc_active_children(nullptr, 0, &n), MPROC_OK);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(mproc_active_children(nullptr, 3, &n), MPROC_EINVAL);
  mproc_process_kill(slow);
  test_join_code(slow);
  ASSERT_EQ(mproc_active_children(nullptr, 0, &n), MPROC_OK);
  EXPECT_EQ(n, 0u);
  mproc_process_free(quick);
  mproc_process_free(slow);
}

TEST(Children, CpuCountIsPositive) { EXPECT_GE(mproc_cpu_count(), 1); }

// ---- waiting on many ---------------------------------------------------------------------

TEST(Wait, ReturnsTheProcessesThatEnded) {
  mproc_process *fast = test_start("ret_arg", Args().i(1));
  mproc_process *slow = test_start("sleep_then_ret", Args().i(60000));
  mproc_waitable w[2] = {{MPROC_WAIT_PROCESS, fast, MPROC_INVALID_HANDLE, 0},
                         {MPROC_WAIT_PROCESS, slow, MPROC_INVALID_HANDLE, 0}};
  EXPECT_EQ(mproc_wait(w, 2, 60), 1);
  EXPECT_EQ(w[0].ready, 1);
  EXPECT_EQ(w[1].ready, 0);
  EXPECT_EQ(mproc_wait(&w[1], 1, 0.1), 0); // timeout
  mproc_process_kill(slow);
  EXPECT_EQ(mproc_wait(&w[1], 1, 60), 1);
  test_join_code(fast);
  test_join_code(slow);
  mproc_process_free(fast);
  mproc_process_free(slow);
}

TEST(Wait, MoreThanSixtyFourProcesses) {
  // Windows' WaitForMultipleObjects stops at 64 handles; mproc_wait not.
  const int n = 70;
  std::vector<mproc_process *> ps;
  std::vector<mproc_waitable> w;
  for (int i = 0; i < n; i++)
    ps.push_back(test_start("sleep_then_ret", Args().i(i == n - 1 ? 0 : 60000)));
  for (auto *p : ps)
    w.push_back({MPROC_WAIT_PROCESS, p, MPROC_INVALID_HANDLE, 0});
  // Only the last one ends on its own: it sits beyond the first 64.
  EXPECT_EQ(mproc_wait(w.data(), w.size(), 60), 1);
  EXPECT_EQ(w[n - 1].ready, 1);
  for (auto *p : ps)
    mproc_process_kill(p);
  int all = 0;
  double deadline = test_now() + 60;
  while (all < n && test_now() < deadline) {
    int r = mproc_wait(w.data(), w.size(), 5);
    ASSERT_GE(r, 0);
    all = r;
  }
  EXPECT_EQ(all, n);
  for (auto *p : ps) {
    test_join_code(p);
    mproc_process_free(p);
  }
}

TEST(Wait, BadInput) {
  mproc_waitable w = {MPROC_WAIT_PROCESS, nullptr, MPROC_INVALID_HANDLE, 0};
  EXPECT_EQ(mproc_wait(nullptr, 1, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_wait(&w, 0, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_wait(&w, 1, 0), MPROC_EINVAL);
  mproc_process *p = created("ret_arg");
  w.object = p;
  EXPECT_EQ(mproc_wait(&w, 1, 0), MPROC_ESTATE); // not started
  w.kind = 99;
  EXPECT_EQ(mproc_wait(&w, 1, 0), MPROC_EINVAL);
  mproc_process_free(p);
}

TEST(Wait, SentinelIsReadyWhenTheChildEnds) {
  mproc_process *p = created("sleep_then_ret", Args().i(100));
  mproc_handle_t h;
  EXPECT_EQ(mproc_process_sentinel(p, &h), MPROC_ESTATE);
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  ASSERT_EQ(mproc_process_sentinel(p, &h), MPROC_OK);
  mproc_waitable w = {MPROC_WAIT_HANDLE, nullptr, h, 0};
  EXPECT_EQ(mproc_wait(&w, 1, 60), 1);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

// ---- bad input --------------------------------------------------------------------------

TEST(BadInput, NullsAndUnknownEntries) {
  mproc_process *p = nullptr;
  EXPECT_EQ(mproc_process_create(nullptr, "ret_arg", nullptr, nullptr),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_process_create(&p, nullptr, nullptr, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_create(&p, "no_such_entry", nullptr, nullptr),
            MPROC_ENOENTRY);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(mproc_process_start(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_join(nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_is_alive(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_terminate(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_close(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_free(nullptr), nullptr);
  EXPECT_EQ(mproc_process_name(nullptr), nullptr);
  int code;
  EXPECT_EQ(mproc_process_exitcode(nullptr, &code), MPROC_EINVAL);
  p = created("ret_arg");
  EXPECT_EQ(mproc_process_exitcode(p, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_join(p, std::nan("")), MPROC_EINVAL);
  mproc_process_free(p);
}

TEST(BadInput, StartMethods) {
  mproc_process *p = nullptr;
  mproc_process_options o = {nullptr, MPROC_DAEMON_INHERIT,
                             (mproc_start_method)9, 0, 0, nullptr, nullptr, {}, 0};
  EXPECT_EQ(mproc_process_create(&p, "ret_arg", nullptr, &o), MPROC_EINVAL);
  EXPECT_EQ(mproc_set_start_method(MPROC_START_DEFAULT), MPROC_EINVAL);
  mproc_start_method m = mproc_get_start_method();
  o.start_method = MPROC_START_FORK;
  if (test_on_windows()) {
    EXPECT_EQ(m, MPROC_START_SPAWN);
    EXPECT_EQ(mproc_set_start_method(MPROC_START_FORK), MPROC_ENOTSUP);
    EXPECT_EQ(mproc_process_create(&p, "ret_arg", nullptr, &o),
              MPROC_ENOTSUP);
  } else {
    ASSERT_EQ(mproc_process_create(&p, "ret_arg", nullptr, &o), MPROC_OK);
    mproc_process_free(p);
  }
  EXPECT_EQ(mproc_set_start_method(m), MPROC_OK);
  EXPECT_EQ(mproc_get_start_method(), m);
}

TEST(BadInput, SecondMainCallIsAStateError) {
  static const mproc_entry table[] = {MPROC_ENTRY_END};
  EXPECT_EQ(mproc_main(0, nullptr, table), MPROC_ESTATE);
  EXPECT_EQ(mproc_main(0, nullptr, nullptr), MPROC_EINVAL);
}

TEST(BadInput, EveryErrorCodeHasANameAndMessage) {
  std::set<std::string> msgs;
  for (int e = 0; e >= MPROC_EWORKER; e--) {
    std::string name = mproc_err_name(e);
    EXPECT_EQ(name.rfind("MPROC_", 0), 0u);
    EXPECT_NE(name, "MPROC_E_UNKNOWN") << e;
    EXPECT_TRUE(msgs.insert(mproc_strerror(e)).second) << e;
  }
  EXPECT_STREQ(mproc_strerror(-1000), "unknown error");
  EXPECT_STREQ(mproc_err_name(1), "MPROC_E_UNKNOWN");
  EXPECT_STREQ(mproc_version_string(), "0.2.0");
}

TEST(BadInput, ReservedPoolWorkerEntryIsRefused) {
  // Only a pool starts its worker loop; a process running it by hand would
  // wait for pool messages that never come.
  mproc_process *p = nullptr;
  EXPECT_EQ(mproc_process_create(&p, MPROC_POOL_WORKER_ENTRY, nullptr, nullptr),
            MPROC_ENOENTRY);
  EXPECT_EQ(p, nullptr);
  // Nor may a table claim the name (it would be shadowed by the pool's).
  static const mproc_entry table[] = {
      {MPROC_POOL_WORKER_ENTRY, +[](const mproc_args *) { return 0; }},
      MPROC_ENTRY_END};
  EXPECT_EQ(mproc_main(0, nullptr, table), MPROC_EINVAL);
}

// ---- passed handles ------------------------------------------------------------------------

// 0 if the handle in arg 0 is close-on-exec (not inheritable) here, 1 if it
// is inheritable, 2 if it is not open.
TEST_ENTRY(report_passed_handle_inheritable) {
  mproc_handle_t h = arg_handle(args, 0);
#ifdef _WIN32
  DWORD flags = 0;
  if (!GetHandleInformation(h, &flags))
    return 2;
  return (flags & HANDLE_FLAG_INHERIT) ? 1 : 0;
#else
  int fl = fcntl(h, F_GETFD);
  if (fl < 0)
    return 2;
  return (fl & FD_CLOEXEC) ? 0 : 1;
#endif
}

TEST(Handles, PassedHandleIsCloseOnExecInTheChildUnderEveryMethod) {
  // Inheritable in the parent on purpose: the child must not pass it on to
  // programs it runs, whatever the start method.
  TestPipe pipe;
#ifdef _WIN32
  ASSERT_TRUE(SetHandleInformation(pipe.w, HANDLE_FLAG_INHERIT,
                                   HANDLE_FLAG_INHERIT));
#else
  ASSERT_EQ(fcntl(pipe.w, F_SETFD, 0), 0);
#endif
  mproc_process *p = test_start("report_passed_handle_inheritable",
                                Args().h(pipe.w));
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
#ifdef _WIN32
  DWORD flags = 0;
  ASSERT_TRUE(GetHandleInformation(pipe.w, &flags));
  EXPECT_NE(flags & HANDLE_FLAG_INHERIT, 0u); // the parent's is untouched
#else
  EXPECT_EQ(fcntl(pipe.w, F_GETFD) & FD_CLOEXEC, 0);
#endif
}

// ---- fire and forget ------------------------------------------------------------------------

namespace {

#ifndef _WIN32
int count_open_fds() {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  while (struct dirent *e = readdir(d))
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; // the directory's own descriptor
}

int highest_open_fd() {
  int hi = 2;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return 1023;
  while (struct dirent *e = readdir(d))
    if (e->d_name[0] != '.' && atoi(e->d_name) > hi)
      hi = atoi(e->d_name);
  closedir(d);
  return hi;
}

// Children of this process that have ended and wait to be reaped.
int count_zombie_children() {
  int n = 0;
  std::string me = std::to_string(getpid());
  DIR *d = opendir("/proc");
  if (!d)
    return -1;
  while (struct dirent *e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9')
      continue;
    // Plain read(): a process may vanish while we read (ESRCH), which
    // iostreams turn into an exception.
    char buf[512];
    std::string path = std::string("/proc/") + e->d_name + "/stat";
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0)
      continue;
    std::string stat(buf, (size_t)got);
    // "pid (comm) S ppid ...": comm may hold spaces, so parse after ')'.
    size_t rp = stat.rfind(')');
    if (rp == std::string::npos || rp + 4 > stat.size())
      continue;
    char state = stat[rp + 2];
    std::string rest = stat.substr(rp + 4);
    std::string ppid = rest.substr(0, rest.find(' '));
    n += state == 'Z' && ppid == me;
  }
  closedir(d);
  return n;
}
#else
int count_open_fds() {
  DWORD n = 0;
  if (GetProcessHandleCount(GetCurrentProcess(), &n) && n > 0)
    return (int)n;
  // Wine answers 0.  Its handle table hands out the lowest free slot, so
  // the value of a new handle grows with the number held open.
  HANDLE h = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (!h)
    return -1;
  int slot = (int)((uintptr_t)h / 4);
  CloseHandle(h);
  return slot;
}
#endif

} // namespace

// Starts children that end at once and frees each without joining it, far
// more of them than the descriptor limit set here allows if each freed
// child kept its descriptor (POSIX) or handles (Windows).  Writes "ok" or
// the reason on the handle in arg 0.
TEST_ENTRY(fire_and_forget) {
  mproc_handle_t out = arg_handle(args, 0);
  std::string why;
#ifndef _WIN32
  const int headroom = 16;
  struct rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = (rlim_t)(highest_open_fd() + 1 + headroom);
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
    why = "setrlimit failed";
  // Windows is slow to start processes, and has no such limit to run into.
  const int want = 200, at_least = 4 * headroom;
#else
  const int want = 100, at_least = 40;
#endif
  int fds_before = count_open_fds(), rounds = 0;
  double t0 = test_now();
  // Up to `want` rounds or 20 s, but always past the limit.
  while (why.empty() &&
         (rounds < at_least || (rounds < want && test_now() - t0 < 20))) {
    mproc_process *p = nullptr;
    int rc = mproc_process_create(&p, "ret_arg", nullptr, nullptr);
    if (rc == MPROC_OK)
      rc = mproc_process_start(p);
    if (rc != MPROC_OK) {
      why = "start " + std::to_string(rounds) + ": " + mproc_strerror(rc) +
            ", OS error " + std::to_string(mproc_os_error());
      mproc_process_free(p);
      break;
    }
    // Wait until it has ended without reaping it, so each start finds the
    // one before ended and unjoined, whatever the machine's speed.
    mproc_waitable w = {MPROC_WAIT_PROCESS, p, MPROC_INVALID_HANDLE, 0};
    if (mproc_wait(&w, 1, 60) != 1)
      why = "child did not end";
#ifndef _WIN32
    // A sentinel pipe (no pidfds) reports the end when the child closes its
    // descriptors, a moment before it becomes a zombie: wait for that too.
    // (A forkserver child is the server's: its sentinel is ready only once
    // the server saw it end, and it is no child of ours to wait for.)
    int64_t pid = 0;
    siginfo_t info;
    mproc_process_pid(p, &pid);
    if (mproc_get_start_method() != MPROC_START_FORKSERVER &&
        waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) != 0)
      why = "waitid failed";
#endif
    mproc_process_free(p);
    rounds++;
#ifndef _WIN32
    int z = count_zombie_children();
    if (why.empty() && z > 2)
      why = std::to_string(z) + " zombies after " + std::to_string(rounds);
#endif
  }
  int grown = count_open_fds() - fds_before;
  if (why.empty() && grown > 8)
    why = "descriptors grew by " + std::to_string(grown) + " over " +
          std::to_string(rounds) + " rounds";
  if (why.empty())
    why = "ok";
  return test_write_all(out, why.data(), why.size()) ? 0 : 1;
}

TEST(Children, FreedChildrenAreReapedAtTheNextStart) {
  TestPipe pipe;
  mproc_process *p = test_start("fire_and_forget", Args().h(pipe.w));
  pipe.close_w();
  EXPECT_EQ(test_read_all(pipe.r), "ok");
  EXPECT_EQ(test_join_code(p, 120), 0);
  mproc_process_free(p);
}

#ifndef _WIN32
// Exits with the number of descriptors it holds (up to 250).
TEST_ENTRY(exit_with_fd_count) {
  int n = count_open_fds();
  return n < 0 ? 255 : n > 250 ? 250 : n;
}

// What the parent holds for one child (its pidfd or life line, its result
// block) must not reach a fork child made later: a fork child closes all of
// it, in a few system calls whatever the number of children, so it holds
// no more descriptors with 50 siblings than with none.  Half of them run;
// half have ended and been joined but not closed (their objects keep their
// descriptors until close, and the registry no longer lists them).
TEST(Children, ForkChildHoldsNoSiblingDescriptors) {
  mproc_process_options fork_opts = {};
  fork_opts.start_method = MPROC_START_FORK;
  mproc_process *probe =
      test_start("exit_with_fd_count", nullptr, &fork_opts);
  int alone = test_join_code(probe);
  mproc_process_free(probe);
  std::vector<mproc_process *> running, ended;
  for (int i = 0; i < 25; i++) {
    running.push_back(test_start("sleep_then_ret", Args().i(120000).i(0)));
    mproc_process *p = test_start("ret_arg", Args().i(0));
    EXPECT_EQ(test_join_code(p), 0);
    ended.push_back(p);
  }
  // A sentinel asked for: one more descriptor in the parent for that child.
  mproc_handle_t s = MPROC_INVALID_HANDLE;
  EXPECT_EQ(mproc_process_sentinel(running[0], &s), MPROC_OK);
  probe = test_start("exit_with_fd_count", nullptr, &fork_opts);
  int with = test_join_code(probe);
  mproc_process_free(probe);
  EXPECT_LE(with, alone + 2) << "alone " << alone << ", with 50 siblings "
                             << with;
  for (mproc_process *p : running) {
    EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    EXPECT_EQ(test_join_code(p), -SIGKILL);
    mproc_process_free(p);
  }
  for (mproc_process *p : ended)
    mproc_process_free(p);
}
#endif

#ifndef _WIN32
// Handles 0..n-1 (n = the count): 0 if every one is still open here.
TEST_ENTRY(handles_open) {
  size_t n = mproc_args_count(args);
  for (size_t i = 0; i < n; i++) {
    mproc_handle_t h = MPROC_INVALID_HANDLE;
    if (mproc_arg_handle(args, i, &h) != MPROC_OK || fcntl(h, F_GETFD) < 0)
      return 10 + (int)i;
  }
  return 0;
}

// Descriptors mproc registered for a fork child to drop (a child's pidfd,
// sentinel, capture pipes, result block) are unregistered when closed: a
// user descriptor that gets one of those numbers later reaches a fork
// child like any other.
TEST(Children, ForkChildKeepsUserDescriptorsOnFreedNumbers) {
  mproc_process_options fork_opts = {};
  fork_opts.start_method = MPROC_START_FORK;
  mproc_process_options cap = {};
  cap.stdio[1].mode = MPROC_STDIO_CAPTURE;
  cap.stdio[2].mode = MPROC_STDIO_CAPTURE;
  for (int round = 0; round < 3; round++) {
    mproc_process *p = test_start("ret_arg", Args().i(0), &cap);
    mproc_handle_t s = MPROC_INVALID_HANDLE;
    EXPECT_EQ(mproc_process_sentinel(p, &s), MPROC_OK);
    EXPECT_EQ(test_join_code(p), 0);
    EXPECT_EQ(mproc_process_close(p), MPROC_OK);
    mproc_process_free(p);
    std::vector<int> fds(24, -1);
    Args a;
    for (size_t i = 0; i < fds.size(); i += 2) {
      ASSERT_EQ(pipe(&fds[i]), 0);
      a.h(fds[i]).h(fds[i + 1]);
    }
    mproc_process *c = test_start("handles_open", a.a, &fork_opts);
    EXPECT_EQ(test_join_code(c), 0) << "round " << round;
    mproc_process_free(c);
    for (int fd : fds)
      close(fd);
  }
}
#endif

#ifndef _WIN32
// With SIGCHLD set to SIG_IGN the kernel reaps each child as it ends, so
// mproc finds it gone.  Each child here has been reaped that way before
// anything waits on it (waitid blocks until then and fails with ECHILD):
// join still returns, the exit code is the documented 255 (the status is
// lost), and a sentinel asked for afterwards is readable.  Returns 0, or
// the step that failed.
TEST_ENTRY(children_with_sigchld_ignored) {
  signal(SIGCHLD, SIG_IGN);
  for (int i = 0; i < 10; i++) {
    mproc_process *p = nullptr;
    int64_t pid = 0;
    int code = -1;
    siginfo_t info;
    mproc_handle_t s = MPROC_INVALID_HANDLE;
    if (mproc_process_create(&p, "ret_arg", Args().i(0), nullptr) != 0 ||
        mproc_process_start(p) != 0 || mproc_process_pid(p, &pid) != 0)
      return 10;
    if (i % 2 == 0)
      (void)waitid(P_PID, (id_t)pid, &info, WEXITED);
    if (mproc_process_join(p, 30) != 0)
      return 11;
    if (mproc_process_exitcode(p, &code) != 1 || (code != 255 && code != 0))
      return 12;
    if (mproc_process_sentinel(p, &s) != 0)
      return 13;
    struct pollfd pfd = {s, POLLIN, 0};
    // (A forkserver child's sentinel is the server's status channel, which
    // the join has drained: not checked here.)
    if (mproc_get_start_method() != MPROC_START_FORKSERVER &&
        poll(&pfd, 1, 0) != 1)
      return 14;
    mproc_process_close(p);
    mproc_process_free(p);
  }
  return 0;
}

TEST(Children, SigchldIgnoredChildrenStillJoin) {
  mproc_process *p = test_start("children_with_sigchld_ignored");
  EXPECT_EQ(test_join_code(p, 120), 0);
  mproc_process_free(p);
}
#endif

// ---- joins without pidfds -----------------------------------------------------------------

#ifndef _WIN32
// Replaces itself with `sleep 60` (another program: its descriptors that
// were close-on-exec are gone, mproc's own included).
TEST_ENTRY(exec_sleep) {
  execlp("sleep", "sleep", "60", (char *)nullptr);
  return 127;
}

TEST(Join, ChildThatExecsAnotherProgramKeepsAWorkingSentinel) {
  // Without pidfds a child's sentinel is the parent's end of its life line,
  // which reads EOF when the child's end closes: at exec, here, while the
  // child runs on.  The first wait that notices hands the watch to a
  // thread blocked in waitid(), whose pipe is the sentinel from then on:
  // it must stay unreadable until the child really ends (there used to be
  // no working sentinel after an exec, and joins looked every 2 ms).
  mproc_process *p = test_start("exec_sleep");
  EXPECT_EQ(mproc_process_join(p, 0.3), MPROC_ETIMEDOUT);
  mproc_handle_t s = MPROC_INVALID_HANDLE;
  ASSERT_EQ(mproc_process_sentinel(p, &s), MPROC_OK);
  struct pollfd pfd = {s, POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 0), 0) << "the sentinel says ended while it runs";
  EXPECT_EQ(mproc_process_join(p, 0.1), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  pfd.revents = 0;
  EXPECT_EQ(poll(&pfd, 1, 20000), 1);
  EXPECT_EQ(test_join_code(p), -9);
  mproc_process_free(p);
}

TEST(Join, ForkChildOfAnotherThreadDoesNotDelayAJoinWithoutPidfds) {
  // The fallback for kernels without pidfds watches a pipe whose write end
  // only the child may hold.  A fork child started by another thread while a
  // spawn is under way must not take a copy of that end along: the join
  // of a child that ended at once would then last as long as the fork child.
  const char *knob = getenv("MPROC_POSIX_NO_PIDFD");
  if (!knob || strcmp(knob, "1") != 0) {
    std::string out;
    int code = test_run(
        {test_self_exe(), "--gtest_filter=Join."
                          "ForkChildOfAnotherThreadDoesNotDelayAJoinWithoutPidfds"},
        {"MPROC_POSIX_NO_PIDFD=1"}, &out, 240);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
    return;
  }
  const int kSpawners = 4, kForks = 24;
  std::mutex mu;
  std::condition_variable cv;
  int rounds = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> slow{0}, failed{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kSpawners; i++)
    ts.emplace_back([&] {
      mproc_process_options o = {nullptr, MPROC_DAEMON_INHERIT,
                                 MPROC_START_SPAWN, 0, 0, nullptr, nullptr, {}, 0};
      while (!stop) {
        mproc_process *p = nullptr;
        if (mproc_process_create(&p, "ret_arg", Args().i(0), &o) != MPROC_OK ||
            mproc_process_start(p) != MPROC_OK) {
          std::lock_guard<std::mutex> g(mu);
          failed++;
          cv.notify_all();
          mproc_process_free(p);
          break;
        }
        // A generous bound: the child ends at once, the fork children live
        // a minute.  (A join that waited too long still reaps the child
        // when its wait ends, so the time tells, not the result.)
        double t0 = test_now();
        int rc = mproc_process_join(p, 20);
        mproc_process_free(p);
        if (rc != MPROC_OK || test_now() - t0 > 10) {
          std::lock_guard<std::mutex> g(mu);
          slow++;
          cv.notify_all();
          break;
        }
        std::lock_guard<std::mutex> g(mu);
        rounds++;
        cv.notify_all();
      }
    });
  // Fork a long-lived child after each finished spawn round, so forks land
  // at every phase of the other threads' starts.
  std::vector<mproc_process *> longs;
  mproc_process_options fo = {nullptr, MPROC_DAEMON_INHERIT, MPROC_START_FORK,
                              0, 0, nullptr, nullptr, {}, 0};
  for (int i = 0; i < kForks && !slow && !failed; i++) {
    {
      std::unique_lock<std::mutex> g(mu);
      int seen = rounds;
      cv.wait_for(g, std::chrono::seconds(30),
                  [&] { return rounds > seen || slow || failed; });
    }
    longs.push_back(test_start("sleep_then_ret", Args().i(60000), &fo));
  }
  stop = true;
  for (auto &t : ts)
    t.join();
  for (auto *p : longs) {
    mproc_process_kill(p);
    EXPECT_EQ(test_join_code(p), -9);
    mproc_process_free(p);
  }
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(slow.load(), 0) << "a join waited on an unrelated fork child";
  if (!slow && !failed) {
    EXPECT_GE(rounds, kForks);
  }
}

// Leaves a raw fork() child behind (which inherits every descriptor of
// this child, its end of the life line included), tells the parent its pid
// on the pipe in arg 0, and returns 4.  The fork child closes its stdio (so
// no test runner waits for it) and sleeps until the test kills it.
TEST_ENTRY(leave_raw_fork_child) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++)
      (void)dup2(null, fd);
    sleep(60);
    _exit(0);
  }
  int64_t v = pid;
  return pid > 0 && test_write_all(arg_handle(args, 0), &v, sizeof v) ? 4 : 1;
}

TEST(Join, RawForkChildOfTheChildDoesNotDelayAJoinWithoutPidfds) {
  // Without pidfds the join watches the life line, which reads EOF once
  // every holder of the child's end has closed it.  A fork child the child
  // makes itself (fork() without exec, as a library might) must not hold
  // it: the join would last as long as that process.
  const char *knob = getenv("MPROC_POSIX_NO_PIDFD");
  if (!knob || strcmp(knob, "1") != 0) {
    std::string out;
    int code = test_run(
        {test_self_exe(), "--gtest_filter=Join."
                          "RawForkChildOfTheChildDoesNotDelayAJoinWithoutPidfds"},
        {"MPROC_POSIX_NO_PIDFD=1"}, &out, 240);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
    return;
  }
  TestPipe pipe;
  mproc_process *p = test_start("leave_raw_fork_child", Args().h(pipe.w));
  ASSERT_NE(p, nullptr);
  int64_t gpid = 0;
  std::string got = test_read_n(pipe.r, sizeof gpid);
  ASSERT_EQ(got.size(), sizeof gpid);
  std::memcpy(&gpid, got.data(), sizeof gpid);
  double t0 = test_now();
  // The fork child sleeps a minute: a join that waits for it times out.
  EXPECT_EQ(mproc_process_join(p, 30), MPROC_OK);
  EXPECT_LT(test_now() - t0, 20.0);
  int code = 0;
  EXPECT_EQ(mproc_process_exitcode(p, &code), 1);
  EXPECT_EQ(code, 4);
  mproc_process_free(p);
  if (gpid > 0)
    (void)kill((pid_t)gpid, SIGKILL);
}
#endif

// ---- after mproc_main() failed ---------------------------------------------

// Run only inside the program started below, where mproc_main() failed on
// MPROC_START_METHOD=vfork and tests/main.cc went on regardless, as a
// program that ignores mproc_main's result would.
TEST(Init, InnerLaterCallsReportWhyMainFailed) {
  const char *v = getenv("MPROC_TEST_IGNORE_MAIN_FAILURE");
  if (!v || strcmp(v, "1") != 0)
    GTEST_SKIP() << "runs only when started by another test";
  ASSERT_EQ(test_main_rc, MPROC_EINVAL);
  mproc_process *p = nullptr;
  int rc = mproc_process_create(&p, "ret_arg", nullptr, nullptr);
  EXPECT_EQ(rc, test_main_rc) << mproc_err_name(rc);
  EXPECT_EQ(p, nullptr);
  std::printf("later call: %s: %s\n", mproc_err_name(rc), mproc_strerror(rc));
  mproc_pool *pool = nullptr;
  rc = mproc_pool_create(&pool, nullptr);
  EXPECT_EQ(rc, test_main_rc) << mproc_err_name(rc);
  EXPECT_EQ(pool, nullptr);
  // The same answer from another thread (no thread-local state involved).
  std::thread([&] {
    rc = mproc_process_create(&p, "ret_arg", nullptr, nullptr);
  }).join();
  EXPECT_EQ(rc, test_main_rc) << mproc_err_name(rc);
}

// Issue 10: a bad MPROC_START_METHOD made mproc_main() fail, and every later
// call then said "mproc_main() was not called" (MPROC_ENOINIT), hiding the
// real cause.  Later calls now return the code mproc_main() failed with.
TEST(Init, CallsAfterAFailedMainReportItsCause) {
  const char *v = getenv("MPROC_TEST_IGNORE_MAIN_FAILURE");
  if (v && strcmp(v, "1") == 0)
    GTEST_SKIP();
  std::string out;
  int code = test_run({test_self_exe(),
                       "--gtest_filter=Init.InnerLaterCallsReportWhyMainFailed"},
                      {"MPROC_START_METHOD=vfork",
                       "MPROC_TEST_IGNORE_MAIN_FAILURE=1"},
                      &out, 120);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("not a start method"), std::string::npos) << out;
  EXPECT_NE(out.find("later call: MPROC_EINVAL: invalid argument"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("was not called"), std::string::npos) << out;
  EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
}

// ---- stop chains (issue 12) ---------------------------------------------------

// Ignores what a polite stop sends (SIGINT, and SIGTERM where it is a
// signal), says it is ready, and sleeps.
TEST_ENTRY(ignore_int_term_then_sleep) {
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  if (!test_write_all(arg_handle(args, 0), "R", 1))
    return 1;
  test_sleep_ms(60000);
  return 0;
}

namespace {

// interrupt -> wait -> terminate -> wait -> kill -> wait, with short waits
// for the steps a test expects to be ignored (ignoring does not get faster
// or slower with the machine) and a generous one for the last.
const mproc_stop_step kEscalation[] = {{MPROC_STOP_INTERRUPT, 0.3},
                                       {MPROC_STOP_TERMINATE, 0.3},
                                       {MPROC_STOP_KILL, 30.0}};

mproc_process *start_ready(const char *entry) {
  TestPipe pipe;
  mproc_process *p = test_start(entry, Args().h(pipe.w));
  pipe.close_w();
  EXPECT_EQ(test_read_n(pipe.r, 1), "R");
  return p;
}

} // namespace

TEST(Stop, ChildIgnoringInterruptAndTerminateEndsAtTheKillStep) {
  mproc_process *p = start_ready("ignore_int_term_then_sleep");
  mproc_stop_result how = {99, 99};
  double t0 = test_now();
  ASSERT_EQ(mproc_process_stop(p, kEscalation, 3, &how), MPROC_OK);
  EXPECT_LT(test_now() - t0, 20.0);
  if (test_on_windows()) {
    // TerminateProcess cannot be ignored: the chain ends one step early.
    EXPECT_EQ(how.step, 1);
    EXPECT_EQ(how.exitcode, -15);
  } else {
    EXPECT_EQ(how.step, 2);
    EXPECT_EQ(how.exitcode, -9);
  }
  EXPECT_EQ(mproc_process_is_alive(p), 0);
  mproc_process_free(p);
}

TEST(Stop, ChildThatExitsOnInterruptEndsAtStepZero) {
  mproc_process *p = start_ready("wait_for_sigint");
  // The first wait is long: whatever the machine, the child's handler runs
  // within it, so the later steps are never reached.
  const mproc_stop_step chain[] = {{MPROC_STOP_INTERRUPT, 30.0},
                                   {MPROC_STOP_KILL, 30.0}};
  mproc_stop_result how = {99, 99};
  ASSERT_EQ(mproc_process_stop(p, chain, 2, &how), MPROC_OK);
  EXPECT_EQ(how.step, 0);
  EXPECT_EQ(how.exitcode, 42); // its SIGINT handler ran, then it returned
  mproc_process_free(p);
}

TEST(Stop, WaitOnlyChainTimesOutAndLeavesTheChildRunning) {
  mproc_process *p = test_start("sleep_then_ret", Args().i(60000));
  const mproc_stop_step wait_only[] = {{MPROC_STOP_WAIT, 0.05},
                                       {MPROC_STOP_WAIT, 0.05}};
  mproc_stop_result how = {99, 99};
  double t0 = test_now();
  EXPECT_EQ(mproc_process_stop(p, wait_only, 2, &how), MPROC_ETIMEDOUT);
  EXPECT_LT(test_now() - t0, 10.0);
  EXPECT_EQ(how.step, -1);
  EXPECT_EQ(mproc_process_is_alive(p), 1);
  const mproc_stop_step kill_now[] = {{MPROC_STOP_KILL, 30.0}};
  ASSERT_EQ(mproc_process_stop(p, kill_now, 1, &how), MPROC_OK);
  EXPECT_EQ(how.step, 0);
  EXPECT_EQ(how.exitcode, -9);
  mproc_process_free(p);
}

TEST(Stop, AlreadyEndedChildReturnsAtOnceAndIsNotSignalled) {
  mproc_process *p = test_start("ret_arg", Args().i(5));
  EXPECT_EQ(test_join_code(p), 5);
  // Waits that would take a minute if they were waited out.
  const mproc_stop_step chain[] = {{MPROC_STOP_WAIT, 60.0},
                                   {MPROC_STOP_KILL, 60.0}};
  mproc_stop_result how = {99, 99};
  double t0 = test_now();
  ASSERT_EQ(mproc_process_stop(p, chain, 2, &how), MPROC_OK);
  EXPECT_LT(test_now() - t0, 10.0);
  EXPECT_EQ(how.step, -1);
  EXPECT_EQ(how.exitcode, 5);
  // Ended on its own before the stop is the same answer.
  mproc_process *q = test_start("ret_arg", Args().i(6));
  ASSERT_TRUE(test_wait_for([&] {
    mproc_handle_t h;
    mproc_process_sentinel(q, &h);
    mproc_waitable w = {MPROC_WAIT_HANDLE, nullptr, h, 0};
    return mproc_wait(&w, 1, 0) == 1;
  }));
  ASSERT_EQ(mproc_process_stop(q, chain, 2, &how), MPROC_OK);
  // Without pidfds the sentinel is a pipe the kernel closes while the child
  // exits, a moment before it can be collected: the chain may then end in
  // its first step, a wait (no signal sent; exit code 6 proves it).
  EXPECT_LE(how.step, 0);
  EXPECT_EQ(how.exitcode, 6);
  mproc_process_free(p);
  mproc_process_free(q);
}

TEST(Stop, BadInputIsRefusedBeforeAnythingIsSent) {
  const mproc_stop_step ok[] = {{MPROC_STOP_KILL, 5.0}};
  mproc_stop_result how = {99, 99};
  mproc_process *p = created("ret_arg");
  // Not started.
  EXPECT_EQ(mproc_process_stop(p, ok, 1, &how), MPROC_ESTATE);
  EXPECT_EQ(how.step, -1);
  EXPECT_EQ(mproc_process_stop(nullptr, ok, 1, &how), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_stop(p, nullptr, 1, &how), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_stop(p, ok, 0, &how), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_stop(mproc_current_process(), ok, 1, nullptr),
            MPROC_EPERM);
  mproc_process_free(p);

  // On a running child: a bad step anywhere in the chain means nothing is
  // sent, not even the good steps before it.
  p = test_start("sleep_then_ret", Args().i(60000));
  mproc_stop_step zeroed[2] = {{MPROC_STOP_KILL, 5.0}, {}};
  EXPECT_EQ(mproc_process_stop(p, zeroed, 2, &how), MPROC_EINVAL);
  mproc_stop_step unknown[2] = {{MPROC_STOP_KILL, 5.0},
                                {(mproc_stop_action)77, 1.0}};
  EXPECT_EQ(mproc_process_stop(p, unknown, 2, &how), MPROC_EINVAL);
  mproc_stop_step nan_wait[1] = {{MPROC_STOP_KILL, std::nan("")}};
  EXPECT_EQ(mproc_process_stop(p, nan_wait, 1, &how), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_is_alive(p), 1);
  EXPECT_EQ(mproc_process_stop(p, ok, 1, nullptr), MPROC_OK); // how optional
  EXPECT_EQ(mproc_process_close(p), MPROC_OK);
  EXPECT_EQ(mproc_process_stop(p, ok, 1, &how), MPROC_ECLOSED);
  mproc_process_free(p);
}

#ifndef _WIN32
// A stopped child does not act on SIGINT or SIGTERM it ignores (nor would
// it on ones it handles, until continued): only the kill step ends it, and
// the chain's waits on a stopped child neither end early nor hang.
TEST(Stop, StoppedChildIsStillKilledByTheChain) {
  mproc_process *p = start_ready("ignore_int_term_then_sleep");
  int64_t pid = 0;
  ASSERT_EQ(mproc_process_pid(p, &pid), MPROC_OK);
  ASSERT_EQ(kill((pid_t)pid, SIGSTOP), 0);
  mproc_stop_result how = {99, 99};
  double t0 = test_now();
  ASSERT_EQ(mproc_process_stop(p, kEscalation, 3, &how), MPROC_OK);
  EXPECT_LT(test_now() - t0, 20.0);
  EXPECT_EQ(how.step, 2);
  EXPECT_EQ(how.exitcode, -9);
  mproc_process_free(p);
}
#endif

// ---- process trees (issue 12) -----------------------------------------------

// One node of a tree `arg 1` generations deep: ignores SIGTERM, starts the
// next generation (a plain child: it inherits the tree), says 'R' on the
// handle in arg 0, which it holds, and sleeps.  The test sees EOF on the
// pipe only once every node is dead.
TEST_ENTRY(tree_node) {
  mproc_handle_t h = arg_handle(args, 0);
  int64_t depth = arg_int(args, 1);
  signal(SIGTERM, SIG_IGN);
  if (depth > 1) {
    Args a;
    a.h(h).i(depth - 1);
    mproc_process *p = nullptr;
    if (mproc_process_create(&p, "tree_node", a, nullptr) != MPROC_OK ||
        mproc_process_start(p) != MPROC_OK)
      return 10;
    mproc_process_free(p); // still tracked: exit-time cleanup joins it
  }
  if (!test_write_all(h, "R", 1))
    return 1;
  test_sleep_ms(60000);
  return 0;
}

namespace {

mproc_process_options tree_options() {
  mproc_process_options o;
  std::memset(&o, 0, sizeof o);
  o.new_group = 1;
  return o;
}

// Starts a three-generation tree_node tree in a group of its own and waits
// until all three run; *pipe keeps the read end.
mproc_process *start_tree(TestPipe *pipe) {
  mproc_process_options o = tree_options();
  mproc_process *p = test_start("tree_node", Args().h(pipe->w).i(3), &o);
  pipe->close_w();
  EXPECT_EQ(test_read_n(pipe->r, 3), "RRR");
  return p;
}

} // namespace

TEST(Trees, KillTreeEndsThreeGenerationsThatIgnoreSigterm) {
  TestPipe pipe;
  mproc_process *p = start_tree(&pipe);
  double t0 = test_now();
  ASSERT_EQ(mproc_process_kill_tree(p), MPROC_OK);
  // EOF: every holder of the write end, so every generation, is dead.  Had
  // one survived, this would take the minute of its sleep.
  EXPECT_EQ(test_read_all(pipe.r), "");
  EXPECT_LT(test_now() - t0, 30.0);
  EXPECT_EQ(test_join_code(p), -9);
  mproc_process_free(p);
}

TEST(Trees, StopChainEscalatesFromTerminateTreeToKillTree) {
  TestPipe pipe;
  mproc_process *p = start_tree(&pipe);
  const mproc_stop_step chain[] = {{MPROC_STOP_TERMINATE_TREE, 0.3},
                                   {MPROC_STOP_KILL_TREE, 30.0}};
  mproc_stop_result how = {99, 99};
  ASSERT_EQ(mproc_process_stop(p, chain, 2, &how), MPROC_OK);
  if (test_on_windows()) {
    // TerminateJobObject cannot be ignored: the whole tree ends at once.
    EXPECT_EQ(how.step, 0);
    EXPECT_EQ(how.exitcode, -15);
  } else {
    EXPECT_EQ(how.step, 1);
    EXPECT_EQ(how.exitcode, -9);
  }
  double t0 = test_now();
  EXPECT_EQ(test_read_all(pipe.r), "");
  EXPECT_LT(test_now() - t0, 30.0);
  mproc_process_free(p);
}

TEST(Trees, WithoutTheOptionTreeCallsAreRefusedAndNothingIsSent) {
  mproc_process_options bad = tree_options();
  bad.new_group = 2;
  mproc_process *q = nullptr;
  EXPECT_EQ(mproc_process_create(&q, "ret_arg", nullptr, &bad), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_kill_tree(nullptr), MPROC_EINVAL);
  mproc_process_options o = tree_options();
  mproc_process *p = created("ret_arg", nullptr, &o);
  EXPECT_EQ(mproc_process_kill_tree(p), MPROC_ESTATE); // not started
  mproc_process_free(p);

  p = test_start("sleep_then_ret", Args().i(60000));
  EXPECT_EQ(mproc_process_kill_tree(p), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_terminate_tree(p), MPROC_ESTATE);
  const mproc_stop_step chain[] = {{MPROC_STOP_KILL, 5.0},
                                   {MPROC_STOP_KILL_TREE, 5.0}};
  EXPECT_EQ(mproc_process_stop(p, chain, 2, nullptr), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_is_alive(p), 1);
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  mproc_process_free(p);

  // With the option, after the child was joined: nothing to report.
  p = test_start("ret_arg", Args().i(3), &o);
  EXPECT_EQ(test_join_code(p), 3);
  EXPECT_EQ(mproc_process_kill_tree(p), MPROC_OK);
  EXPECT_EQ(mproc_process_close(p), MPROC_OK);
  EXPECT_EQ(mproc_process_kill_tree(p), MPROC_ECLOSED);
  mproc_process_free(p);
}

// Windows: a daemonic child is in the daemon job already; its own job is
// nested below that one.
TEST(Trees, DaemonicChildGetsATreeToo) {
  mproc_process_options o = tree_options();
  o.daemon = MPROC_DAEMON_YES;
  mproc_process *p = test_start("sleep_then_ret", Args().i(60000), &o);
  ASSERT_EQ(mproc_process_kill_tree(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  mproc_process_free(p);
}

#ifndef _WIN32
// The group exists when start returns, whichever of parent and child ran
// first, so a kill_tree right after start cannot miss it.
TEST(Trees, ChildLeadsItsOwnProcessGroupWhenStartReturns) {
  mproc_process_options o = tree_options();
  mproc_process *p = test_start("sleep_then_ret", Args().i(60000), &o);
  int64_t pid = 0;
  ASSERT_EQ(mproc_process_pid(p, &pid), MPROC_OK);
  EXPECT_EQ(getpgid((pid_t)pid), (pid_t)pid);
  EXPECT_NE(getpgrp(), (pid_t)pid);
  ASSERT_EQ(mproc_process_kill_tree(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -9);
  mproc_process_free(p);
}
#endif

// ---- environment and working directory (mproc_process_options) ----------

namespace {

void set_env_var(const char *k, const char *v) {
#ifdef _WIN32
  _putenv_s(k, v);
#else
  setenv(k, v, 1);
#endif
}

// The child checks what it sees and says what was wrong in its exit code:
// 1 the added variable, 2 the removed one still there, 4 an inherited one
// missing (or present after env_clear), 8 the working directory.
TEST_ENTRY(env_cwd_child) {
  const char *cwd = nullptr, *added = std::getenv("MPROC_T_ADDED");
  int64_t cleared = 0;
  int code = 0;
  mproc_arg_int(args, 0, &cleared);
  mproc_arg_str(args, 1, &cwd);
  if (!added || std::strcmp(added, "a value=with equals") != 0)
    code |= 1;
  if (std::getenv("MPROC_T_REMOVED"))
    code |= 2;
  if ((std::getenv("MPROC_T_KEPT") != nullptr) == (cleared != 0))
    code |= 4;
  if (cwd && *cwd) {
    std::error_code ec;
    if (!std::filesystem::equivalent(std::filesystem::current_path(ec), cwd,
                                     ec))
      code |= 8;
  }
  return code;
}

int run_env_child(mproc_start_method method, int clear, const char *cwd) {
  static const char *const env[] = {"MPROC_T_REMOVED",
                                    "MPROC_T_ADDED=first",
                                    "MPROC_T_ADDED=a value=with equals",
                                    nullptr};
  mproc_process_options o = {};
  mproc_args *a = nullptr;
  mproc_args_create(&a);
  mproc_process *p = nullptr;
  int code = -1000;
  o.start_method = method;
  o.env_clear = clear;
  o.env = env;
  o.cwd = cwd;
  mproc_args_add_int(a, nullptr, clear);
  mproc_args_add_str(a, nullptr, cwd ? cwd : "");
  EXPECT_EQ(mproc_process_create(&p, "env_cwd_child", a, &o), MPROC_OK);
  EXPECT_EQ(mproc_process_start(p), MPROC_OK);
  EXPECT_EQ(mproc_process_join(p, 60), MPROC_OK);
  EXPECT_EQ(mproc_process_exitcode(p, &code), 1);
  mproc_process_free(p);
  mproc_args_free(a);
  return code;
}

} // namespace

static void set_parent_env() {
  set_env_var("MPROC_T_KEPT", "kept");
  set_env_var("MPROC_T_REMOVED", "removed");
  set_env_var("MPROC_T_ADDED", "the parent's");
}

TEST(ProcessEnv, ChildSeesAddedOverriddenRemovedAndInheritedVariables) {
  set_parent_env();
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    EXPECT_EQ(run_env_child(m, 0, nullptr), 0);
    EXPECT_EQ(run_env_child(m, 1, nullptr), 0);
  }
  // The parent's own environment is untouched.
  EXPECT_STREQ(std::getenv("MPROC_T_ADDED"), "the parent's");
}

TEST(ProcessEnv, ChildStartsInTheDirectoryAsked) {
  namespace fs = std::filesystem;
  int64_t me = 0;
  mproc_process_pid(mproc_current_process(), &me);
  fs::path dir = fs::temp_directory_path() / ("mproc-cwd-" + std::to_string(me));
  fs::create_directories(dir);
  set_parent_env();
  fs::path before = fs::current_path();
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    EXPECT_EQ(run_env_child(m, 0, dir.string().c_str()), 0);
  }
  EXPECT_EQ(fs::current_path(), before);
  fs::remove_all(dir);
}

TEST(ProcessEnv, MissingDirectoryFailsTheStartAndNoChildRuns) {
  namespace fs = std::filesystem;
  std::string missing =
      (fs::temp_directory_path() / "mproc-no-such-dir" / "below").string();
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = {};
    mproc_args *a = nullptr;
  mproc_args_create(&a);
    mproc_process *p = nullptr;
    int64_t pid = 0;
    o.start_method = m;
    o.cwd = missing.c_str();
    ASSERT_EQ(mproc_process_create(&p, "env_cwd_child", a, &o), MPROC_OK);
    EXPECT_EQ(mproc_process_start(p), MPROC_ESPAWN);
#ifdef _WIN32
    EXPECT_EQ(mproc_os_error(), ERROR_PATH_NOT_FOUND);
#else
    EXPECT_EQ(mproc_os_error(), ENOENT);
#endif
    EXPECT_EQ(mproc_process_pid(p, &pid), MPROC_ESTATE); // never started
    mproc_process_free(p);
    mproc_args_free(a);
  }
}

TEST(ProcessEnv, EntryWithoutANameIsRefusedAtCreate) {
  static const char *const env[] = {"=x", nullptr};
  mproc_process_options o = {};
  mproc_process *p = nullptr;
  o.env = env;
  EXPECT_EQ(mproc_process_create(&p, "env_cwd_child", nullptr, &o),
            MPROC_EINVAL);
  o.env = nullptr;
  o.env_clear = 2;
  EXPECT_EQ(mproc_process_create(&p, "env_cwd_child", nullptr, &o),
            MPROC_EINVAL);
}

// ---- standard streams (mproc_process_options::stdio) -----------------------

namespace {

// Reads stdin to its end and reports the byte count on both output streams.
TEST_ENTRY(stdio_child) {
  char buf[256];
  size_t n = 0, r;
  while ((r = std::fread(buf, 1, sizeof buf, stdin)) > 0)
    n += r;
  std::printf("out:%zu\n", n);
  std::fprintf(stderr, "err:%zu\n", n);
  std::fflush(stdout);
  std::fflush(stderr);
  return 0;
}

// Windows' C runtime writes text streams with CRLF line ends.
std::string no_cr(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '\r'), s.end());
  return s;
}

std::string slurp(const std::filesystem::path &f) {
  std::FILE *fp = std::fopen(f.string().c_str(), "rb");
  std::string s;
  char buf[256];
  size_t r;
  if (!fp)
    return "(missing)";
  while ((r = std::fread(buf, 1, sizeof buf, fp)) > 0)
    s.append(buf, r);
  std::fclose(fp);
  return s;
}

void spit(const std::filesystem::path &f, const char *text) {
  std::FILE *fp = std::fopen(f.string().c_str(), "wb");
  ASSERT_NE(fp, nullptr);
  std::fputs(text, fp);
  std::fclose(fp);
}

std::filesystem::path stdio_dir() {
  int64_t me = 0;
  mproc_process_pid(mproc_current_process(), &me);
  auto d = std::filesystem::temp_directory_path() /
           ("mproc-stdio-" + std::to_string(me));
  std::filesystem::create_directories(d);
  return d;
}

int run_stdio_child(const mproc_process_options &o) {
  mproc_process *p = nullptr;
  int code = -1000;
  EXPECT_EQ(mproc_process_create(&p, "stdio_child", nullptr, &o), MPROC_OK);
  EXPECT_EQ(mproc_process_start(p), MPROC_OK);
  EXPECT_EQ(mproc_process_join(p, 60), MPROC_OK);
  EXPECT_EQ(mproc_process_exitcode(p, &code), 1);
  mproc_process_free(p);
  return code;
}

} // namespace

TEST(ProcessStdio, FilesTruncatedAppendedAndReadInEveryStartMethod) {
  auto dir = stdio_dir();
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    spit(dir / "in.txt", "12345");
    spit(dir / "out.txt", "old content, longer than what the child writes");
    spit(dir / "err.txt", "first\n");
    std::string in = (dir / "in.txt").string(), out = (dir / "out.txt").string(),
                err = (dir / "err.txt").string();
    mproc_process_options o = {};
    o.start_method = m;
    o.stdio[0] = {MPROC_STDIO_FILE, in.c_str(), MPROC_INVALID_HANDLE};
    o.stdio[1] = {MPROC_STDIO_FILE, out.c_str(), MPROC_INVALID_HANDLE};
    o.stdio[2] = {MPROC_STDIO_APPEND, err.c_str(), MPROC_INVALID_HANDLE};
    EXPECT_EQ(run_stdio_child(o), 0);
    EXPECT_EQ(no_cr(slurp(dir / "out.txt")), "out:5\n");
    EXPECT_EQ(no_cr(slurp(dir / "err.txt")), "first\nerr:5\n");
  }
  std::filesystem::remove_all(dir);
}

TEST(ProcessStdio, DiscardAndAHandleOfTheParent) {
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    TestPipe pipe;
    mproc_process_options o = {};
    o.start_method = m;
    o.stdio[0].mode = MPROC_STDIO_DISCARD; // reads end-of-file at once
    o.stdio[1].mode = MPROC_STDIO_DISCARD;
    o.stdio[2] = {MPROC_STDIO_HANDLE, nullptr, pipe.w};
    EXPECT_EQ(run_stdio_child(o), 0);
    pipe.close_w(); // the child's copy is gone with it, ours now
    EXPECT_EQ(no_cr(test_read_all(pipe.r)), "err:0\n");
  }
}

TEST(ProcessStdio, UnwritablePathFailsTheStartAndNoChildRuns) {
  std::string bad =
      (std::filesystem::temp_directory_path() / "mproc-no-such-dir" / "out.txt")
          .string();
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = {};
    mproc_process *p = nullptr;
    int64_t pid = 0;
    o.start_method = m;
    o.stdio[1] = {MPROC_STDIO_FILE, bad.c_str(), MPROC_INVALID_HANDLE};
    ASSERT_EQ(mproc_process_create(&p, "stdio_child", nullptr, &o), MPROC_OK);
    EXPECT_EQ(mproc_process_start(p), MPROC_ESPAWN);
    EXPECT_NE(mproc_os_error(), 0);
    EXPECT_EQ(mproc_process_pid(p, &pid), MPROC_ESTATE); // never started
    EXPECT_FALSE(std::filesystem::exists(bad));
    mproc_process_free(p);
  }
  mproc_process_options o = {};
  mproc_process *p = nullptr;
  o.stdio[1].mode = MPROC_STDIO_FILE; // no path
  EXPECT_EQ(mproc_process_create(&p, "stdio_child", nullptr, &o), MPROC_EINVAL);
  o.stdio[1].mode = 9;
  EXPECT_EQ(mproc_process_create(&p, "stdio_child", nullptr, &o), MPROC_EINVAL);
}

// ---- Windows: no console window (mproc_process_options::no_window) ---------

namespace {
// 0 when the child has no console window; POSIX: always 0.
TEST_ENTRY(no_window_child) {
#ifdef _WIN32
  return GetConsoleWindow() == nullptr ? 0 : 1;
#else
  return 0;
#endif
}
} // namespace

TEST(ProcessNoWindow, ChildRunsWithoutAConsoleWindow) {
  for (mproc_start_method m : every_method()) {
    SCOPED_TRACE(m);
    mproc_process_options o = {};
    mproc_process *p = nullptr;
    int code = -1;
    o.start_method = m;
    o.no_window = 1;
    ASSERT_EQ(mproc_process_create(&p, "no_window_child", nullptr, &o),
              MPROC_OK);
    ASSERT_EQ(mproc_process_start(p), MPROC_OK);
    EXPECT_EQ(mproc_process_join(p, 60), MPROC_OK);
    EXPECT_EQ(mproc_process_exitcode(p, &code), 1);
    EXPECT_EQ(code, 0);
    mproc_process_free(p);
  }
  mproc_process_options o = {};
  mproc_process *p = nullptr;
  o.no_window = 2;
  EXPECT_EQ(mproc_process_create(&p, "no_window_child", nullptr, &o),
            MPROC_EINVAL);
}

// A join without a timeout blocks on the child's pid itself on Linux (no
// pidfd).  While such joins wait, another thread asking for the exit code
// must get it without reaping the child (the pid must stay the child's
// until the waiting joins are out); the last join reaps it, so no zombie
// is left, and every caller sees the same code, for an exit and a signal.
TEST(Join, ForeverJoinsAndAnExitCodeAskerAgreeAndLeaveNoZombie) {
  double end = test_now() + 30;
  for (int round = 0; round < 8 && test_now() < end; round++) {
    SCOPED_TRACE(round);
    const bool killed = round % 2 == 1;
    mproc_process *p =
        test_start("sleep_then_ret", Args().i(killed ? 5000 : 50).i(7));
    ASSERT_NE(p, nullptr);
    std::atomic<int> ok{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; i++)
      ts.emplace_back([&] {
        if (mproc_process_join(p, MPROC_FOREVER) == MPROC_OK)
          ok++;
      });
    if (killed) {
      EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    }
    int code = 0, rc = 0;
    while ((rc = mproc_process_exitcode(p, &code)) == 0 && test_now() < end)
      test_sleep_ms(1);
    EXPECT_EQ(rc, 1);
    EXPECT_EQ(code, killed ? -9 : 7);
    for (auto &t : ts)
      t.join();
    EXPECT_EQ(ok.load(), 2);
    EXPECT_EQ(test_join_code(p), killed ? -9 : 7);
#ifndef _WIN32
    int64_t pid = -1;
    ASSERT_EQ(mproc_process_pid(p, &pid), MPROC_OK);
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    errno = 0;
    EXPECT_NE(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT), 0)
        << "the child is still an unreaped zombie after every join returned: "
        << info.si_pid << " code " << info.si_code << " pid " << pid;
    EXPECT_EQ(errno, ECHILD);
#endif
    mproc_process_free(p);
  }
}

// Forever joins, timed joins and an is_alive asker race on one child: every
// join agrees on the code, and no zombie is left.
TEST(Join, ManyThreadsJoiningOneChildEveryWay) {
  double end = test_now() + 30;
  for (int round = 0; round < 12 && test_now() < end; round++) {
    SCOPED_TRACE(round);
    const bool killed = round % 3 == 2;
    mproc_process *p =
        test_start("sleep_then_ret", Args().i(killed ? 5000 : round % 3).i(5));
    ASSERT_NE(p, nullptr);
    const int want = killed ? -9 : 5;
    std::atomic<int> bad{0}, joined{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; i++)
      ts.emplace_back([&] {
        int rc = mproc_process_join(p, MPROC_FOREVER), code = 0;
        if (rc != MPROC_OK || mproc_process_exitcode(p, &code) != 1 ||
            code != want)
          bad = 1;
        joined++;
      });
    for (int i = 0; i < 2; i++)
      ts.emplace_back([&] {
        int rc;
        while ((rc = mproc_process_join(p, 0.001)) == MPROC_ETIMEDOUT &&
               test_now() < end) {
        }
        int code = 0;
        if (rc != MPROC_OK || mproc_process_exitcode(p, &code) != 1 ||
            code != want)
          bad = 2;
        joined++;
      });
    ts.emplace_back([&] {
      int rc;
      while ((rc = mproc_process_is_alive(p)) == 1 && test_now() < end) {
      }
      if (rc != 0)
        bad = 3;
    });
    if (killed) {
      EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    }
    for (auto &t : ts)
      t.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(joined.load(), 5);
#ifndef _WIN32
    int64_t pid = -1;
    ASSERT_EQ(mproc_process_pid(p, &pid), MPROC_OK);
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    errno = 0;
    EXPECT_NE(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT), 0);
    EXPECT_EQ(errno, ECHILD);
#endif
    EXPECT_EQ(mproc_process_close(p), MPROC_OK);
    mproc_process_free(p);
  }
}

#ifndef _WIN32
// SIGCHLD ignored (the kernel reaps every child as it ends), one child
// left running: a forever join of another child still returns when that one
// ends (its waitid must not wait for every child).
TEST_ENTRY(forever_join_with_sigchld_ignored) {
  signal(SIGCHLD, SIG_IGN);
  mproc_process *longer = nullptr, *p = nullptr;
  int code = -1;
  if (mproc_process_create(&longer, "sleep_then_ret", Args().i(20000).i(0),
                           nullptr) != 0 ||
      mproc_process_start(longer) != 0)
    return 10;
  for (int i = 0; i < 4; i++) {
    if (mproc_process_create(&p, "ret_arg", Args().i(0), nullptr) != 0 ||
        mproc_process_start(p) != 0)
      return 11;
    double t0 = test_now();
    if (mproc_process_join(p, MPROC_FOREVER) != 0)
      return 12;
    if (test_now() - t0 > 10)
      return 13; // waited for the other child
    if (mproc_process_exitcode(p, &code) != 1 || (code != 255 && code != 0))
      return 14;
    mproc_process_free(p);
  }
  mproc_process_kill(longer);
  mproc_process_join(longer, 30);
  mproc_process_free(longer);
  return 0;
}

TEST(Children, SigchldIgnoredForeverJoinDoesNotWaitForOtherChildren) {
  mproc_process *p = test_start("forever_join_with_sigchld_ignored");
  EXPECT_EQ(test_join_code(p, 120), 0);
  mproc_process_free(p);
}
#endif

#ifndef _WIN32
// The application reaps with a raw waitpid(-1) while threads join the same
// child forever and with timeouts: every join returns (code 255 or the
// real one), none hangs.
TEST_ENTRY(joins_racing_a_raw_waitpid) {
  // A forkserver child is the server's, not ours: our waitpid(-1) could
  // only reap the server itself.
  if (mproc_get_start_method() == MPROC_START_FORKSERVER)
    return 0;
  for (int i = 0; i < 6; i++) {
    mproc_process *p = nullptr;
    if (mproc_process_create(&p, "sleep_then_ret", Args().i(20).i(3),
                             nullptr) != 0 ||
        mproc_process_start(p) != 0)
      return 10;
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int k = 0; k < 2; k++)
      ts.emplace_back([&] {
        int code = -1;
        if (mproc_process_join(p, MPROC_FOREVER) != 0 ||
            mproc_process_exitcode(p, &code) != 1 ||
            (code != 3 && code != 255))
          bad = 1;
      });
    ts.emplace_back([&] {
      int rc;
      double end = test_now() + 30;
      while ((rc = mproc_process_join(p, 0.001)) == MPROC_ETIMEDOUT &&
             test_now() < end) {
      }
      if (rc != 0)
        bad = 2;
    });
    int st = 0;
    (void)waitpid(-1, &st, 0);
    for (auto &t : ts)
      t.join();
    if (bad)
      return 20 + bad;
    mproc_process_free(p);
  }
  return 0;
}

TEST(Children, JoinsRacingARawWaitpidAllReturn) {
  mproc_process *p = test_start("joins_racing_a_raw_waitpid");
  EXPECT_EQ(test_join_code(p, 120), 0);
  mproc_process_free(p);
}
#endif
