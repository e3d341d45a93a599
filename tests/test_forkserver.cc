// The forkserver start method (issue 11): every test names the method
// explicitly, so the dev lane runs them too; the `forkserver` lane runs the
// whole suite with it as the default.  Windows has no forkserver: there the
// one test checks that every way to ask for it is MPROC_ENOTSUP.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#ifndef _WIN32
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "test_util.h"

extern "C" {
#include "internal.h" // mproc__fs_server_pid, mproc__fs_reply_timeout
}

namespace {

const mproc_process_options kFs = {nullptr, MPROC_DAEMON_INHERIT,
                                   MPROC_START_FORKSERVER, 0, 0, nullptr, nullptr, {}, 0};

} // namespace

#ifdef _WIN32

TEST_ENTRY(fs_nothing) { return 0; }

TEST(Forkserver, IsNotSupportedOnWindows) {
  mproc_process *p = nullptr;
  EXPECT_EQ(mproc_process_create(&p, "fs_nothing", nullptr, &kFs),
            MPROC_ENOTSUP);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(mproc_set_start_method(MPROC_START_FORKSERVER), MPROC_ENOTSUP);
  EXPECT_EQ(mproc_get_start_method(), MPROC_START_SPAWN);
  EXPECT_EQ(mproc_set_forkserver_preload("fs_nothing"), MPROC_ENOTSUP);
  mproc_pool_options o{};
  o.processes = 1;
  o.start_method = MPROC_START_FORKSERVER;
  mproc_pool *pool = nullptr;
  EXPECT_NE(mproc_pool_create(&pool, &o), MPROC_OK);
  EXPECT_EQ(pool, nullptr);
}

#else

namespace {
// An entry's verdict on the pipe in arg 0: "ok", or what went wrong.
int fs_verdict(const mproc_args *args, std::string why) {
  if (why.empty())
    why = "ok";
  return test_write_all(arg_handle(args, 0), why.data(), why.size()) ? 0 : 1;
}

// Runs `entry` in a fresh spawned process (its own server, no other test's
// children around) and expects its verdict to be "ok".
void fs_expect_ok_in_fresh_process(const char *entry) {
  mproc_process_options o = {nullptr, MPROC_DAEMON_INHERIT, MPROC_START_SPAWN, 0, 0, nullptr, nullptr, {}, 0};
  TestPipe pipe;
  mproc_process *p = test_start(entry, Args().h(pipe.w), &o);
  pipe.close_w();
  EXPECT_EQ(test_read_all(pipe.r), "ok");
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

} // namespace

// ---- arguments, objects, names, parent ------------------------------------------

// Args: int, str, bytes, a pipe's write end, a queue, a lock, an event,
// a semaphore, a shared block, a connection, a condition, a barrier (of
// one party) and an array.  Uses each and writes "ok" or what failed to the
// pipe.
TEST_ENTRY(fs_use_everything) {
  std::string why;
  const char *s = nullptr;
  const void *b = nullptr;
  size_t blen = 0;
  void *q = nullptr, *l = nullptr, *ev = nullptr, *sem = nullptr,
       *shm = nullptr, *conn = nullptr, *cond = nullptr, *bar = nullptr,
       *arr = nullptr;
  unsigned idx = 9;
  if (arg_int(args, 0, -1) != -12345678901LL)
    why += "int ";
  if (mproc_arg_str(args, 1, &s) != MPROC_OK || std::string(s) != "héllo w")
    why += "str ";
  if (mproc_arg_bytes(args, 2, &b, &blen) != MPROC_OK || blen != 3 ||
      memcmp(b, "\0\1\2", 3) != 0)
    why += "bytes ";
  if (mproc_arg_object(args, 4, MPROC_OBJ_QUEUE, &q) != MPROC_OK ||
      mproc_queue_put((mproc_queue *)q, "q", 1, 30) != MPROC_OK)
    why += "queue ";
  if (mproc_arg_object(args, 5, MPROC_OBJ_LOCK, &l) != MPROC_OK ||
      mproc_lock_acquire((mproc_lock *)l, 30) != MPROC_OK ||
      mproc_lock_release((mproc_lock *)l) != MPROC_OK)
    why += "lock ";
  if (mproc_arg_object(args, 6, MPROC_OBJ_EVENT, &ev) != MPROC_OK ||
      mproc_event_set((mproc_event *)ev) != MPROC_OK)
    why += "event ";
  if (mproc_arg_object(args, 7, MPROC_OBJ_SEMAPHORE, &sem) != MPROC_OK ||
      mproc_semaphore_release((mproc_semaphore *)sem) != MPROC_OK)
    why += "semaphore ";
  if (mproc_arg_object(args, 8, MPROC_OBJ_SHM, &shm) != MPROC_OK)
    why += "shm ";
  else
    memcpy(mproc_shm_ptr((mproc_shm *)shm), "shared", 7);
  if (mproc_arg_object(args, 9, MPROC_OBJ_CONN, &conn) != MPROC_OK ||
      mproc_conn_send_bytes((mproc_conn *)conn, "conn", 4) != MPROC_OK)
    why += "conn ";
  if (mproc_arg_object(args, 10, MPROC_OBJ_CONDITION, &cond) != MPROC_OK ||
      mproc_condition_acquire((mproc_condition *)cond, 30) != MPROC_OK ||
      mproc_condition_notify_all((mproc_condition *)cond) != MPROC_OK ||
      mproc_condition_release((mproc_condition *)cond) != MPROC_OK)
    why += "condition ";
  if (mproc_arg_object(args, 11, MPROC_OBJ_BARRIER, &bar) != MPROC_OK ||
      mproc_barrier_wait((mproc_barrier *)bar, 30, &idx) != MPROC_OK ||
      idx != 0)
    why += "barrier ";
  if (mproc_arg_object(args, 12, MPROC_OBJ_ARRAY, &arr) != MPROC_OK)
    why += "array ";
  else
    ((int64_t *)mproc_array_ptr((mproc_array *)arr))[1] = 77;
  if (why.empty())
    why = "ok";
  return test_write_all(arg_handle(args, 3), why.data(), why.size()) ? 0 : 1;
}

TEST(Forkserver, EveryArgumentAndObjectReachesTheChild) {
  mproc_queue *q = nullptr;
  mproc_lock *l = nullptr;
  mproc_event *ev = nullptr;
  mproc_semaphore *sem = nullptr;
  mproc_shm *shm = nullptr;
  mproc_conn *a = nullptr, *b = nullptr;
  mproc_condition *cond = nullptr;
  mproc_barrier *bar = nullptr;
  mproc_array *arr = nullptr;
  ASSERT_EQ(mproc_queue_create(&q, nullptr), MPROC_OK);
  ASSERT_EQ(mproc_condition_create(&cond, nullptr), MPROC_OK);
  ASSERT_EQ(mproc_barrier_create(&bar, 1), MPROC_OK);
  ASSERT_EQ(mproc_array_create(&arr, MPROC_INT64, 2, 1), MPROC_OK);
  ASSERT_EQ(mproc_lock_create(&l, 0), MPROC_OK);
  ASSERT_EQ(mproc_event_create(&ev), MPROC_OK);
  ASSERT_EQ(mproc_semaphore_create(&sem, 0, 0), MPROC_OK);
  ASSERT_EQ(mproc_shm_create(&shm, nullptr, 4096), MPROC_OK);
  ASSERT_EQ(mproc_pipe(&a, &b, 0), MPROC_OK);
  TestPipe pipe;
  {
    Args args;
    args.i(-12345678901LL).s("héllo w").b("\0\1\2", 3).h(pipe.w);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, q), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, l), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, ev), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, sem), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, shm), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, b), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, cond), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, bar), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(args.a, nullptr, arr), MPROC_OK);
    mproc_process *p = test_start("fs_use_everything", args, &kFs);
    pipe.close_w();
    EXPECT_EQ(test_read_all(pipe.r), "ok");
    EXPECT_EQ(test_join_code(p), 0);
    mproc_process_free(p);
  }
  char buf[16] = {0};
  size_t n = 0;
  EXPECT_EQ(mproc_queue_get(q, buf, sizeof buf, &n, 30), MPROC_OK);
  EXPECT_EQ(std::string(buf, n), "q");
  EXPECT_EQ(mproc_event_is_set(ev), 1);
  EXPECT_EQ(mproc_semaphore_acquire(sem, 30), MPROC_OK);
  EXPECT_STREQ((const char *)mproc_shm_ptr(shm), "shared");
  EXPECT_EQ(mproc_conn_recv_bytes(a, buf, sizeof buf, &n, 30), MPROC_OK);
  EXPECT_EQ(std::string(buf, n), "conn");
  EXPECT_EQ(((int64_t *)mproc_array_ptr(arr))[1], 77);
  mproc_array_free(arr);
  mproc_barrier_free(bar);
  mproc_condition_free(cond);
  mproc_conn_free(a);
  mproc_conn_free(b);
  mproc_shm_free(shm);
  mproc_semaphore_free(sem);
  mproc_event_free(ev);
  mproc_lock_free(l);
  mproc_queue_free(q);
}

// Writes "name|parent name|parent pid|alive|OS parent is not the parent|
// grandchild's report" to the pipe in arg 0; with arg 1 = 1 it also starts
// a forkserver grandchild that reports the same way.
TEST_ENTRY(fs_report) {
  mproc_process *me = mproc_current_process(), *par = mproc_parent_process();
  int64_t ppid = -1;
  std::string s;
  if (par)
    mproc_process_pid(par, &ppid);
  s = std::string(mproc_process_name(me)) + "|" +
      (par ? mproc_process_name(par) : "-") + "|" + std::to_string(ppid) +
      "|" + std::to_string(par ? mproc_process_is_alive(par) : -1) + "|" +
      std::to_string((int64_t)getppid() != ppid);
  if (arg_int(args, 1, -1) == 1) {
    TestPipe inner;
    mproc_process *g = nullptr;
    Args a;
    a.h(inner.w).i(0);
    if (mproc_process_create(&g, "fs_report", a, &kFs) == MPROC_OK &&
        mproc_process_start(g) == MPROC_OK) {
      inner.close_w();
      s += "|" + test_read_all(inner.r);
      mproc_process_join(g, 60);
    }
    mproc_process_free(g);
  }
  mproc_handle_t out = arg_handle(args, 0);
  return test_write_all(out, s.data(), s.size()) ? 0 : 1;
}

TEST(Forkserver, NamesAndTheRealParent) {
  TestPipe pipe;
  Args a;
  a.h(pipe.w).i(1);
  mproc_process *p = test_start("fs_report", a, &kFs);
  pipe.close_w();
  std::string out = test_read_all(pipe.r);
  EXPECT_EQ(test_join_code(p), 0);
  std::string name = mproc_process_name(p);
  std::string me = std::to_string(test_getpid());
  int64_t child = 0;
  ASSERT_EQ(mproc_process_pid(p, &child), MPROC_OK);
  // The parent is this process (not the server, which is the OS parent),
  // alive; the grandchild is numbered below the child and sees the child.
  EXPECT_EQ(out, name + "|MainProcess|" + me + "|1|1|" + name +
                     ":1|" + name + "|" + std::to_string(child) + "|1|1")
      << out;
  mproc_process_free(p);
}

// ---- exit codes, signals, sentinels ---------------------------------------------

TEST_ENTRY(fs_ret) { return (int)arg_int(args, 0, -1); }

TEST_ENTRY(fs_wait_forever) {
  for (;;)
    pause();
}

TEST_ENTRY(fs_raise) {
  raise((int)arg_int(args, 0, -1));
  return 99;
}

TEST(Forkserver, ExitCodesSignalsAndSentinels) {
  mproc_process *p = test_start("fs_ret", Args().i(42), &kFs);
  mproc_handle_t s = MPROC_INVALID_HANDLE;
  ASSERT_EQ(mproc_process_sentinel(p, &s), MPROC_OK);
  mproc_waitable w = {MPROC_WAIT_PROCESS, p, MPROC_INVALID_HANDLE, 0};
  EXPECT_EQ(mproc_wait(&w, 1, 60), 1);
  EXPECT_EQ(test_join_code(p), 42);
  mproc_process_free(p);

  // SIGUSR1: its default action ends the process, and no sanitizer
  // catches it the way ASan catches SIGSEGV.
  p = test_start("fs_raise", Args().i(SIGUSR1), &kFs);
  EXPECT_EQ(test_join_code(p), -SIGUSR1);
  mproc_process_free(p);

  struct {
    int (*fn)(mproc_process *);
    int code;
  } cases[] = {{mproc_process_terminate, -SIGTERM},
               {mproc_process_kill, -SIGKILL},
               {mproc_process_interrupt, -SIGINT}};
  for (auto &c : cases) {
    p = test_start("fs_wait_forever", nullptr, &kFs);
    EXPECT_EQ(mproc_process_join(p, 0.05), MPROC_ETIMEDOUT);
    EXPECT_EQ(mproc_process_is_alive(p), 1);
    EXPECT_EQ(c.fn(p), MPROC_OK);
    EXPECT_EQ(test_join_code(p), c.code);
    // Ended: signals are harmless no-ops now.
    EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    mproc_process_free(p);
  }
}

// ---- a hostile child cannot forge what the parent learns ----------------------------

// Reports its pid (16 bytes) on arg 0 and closes it, then writes fake
// status records (an 8-byte pid of 1, then exit codes 7) and garbage on
// every other descriptor it holds, the way code that wanted to lie to its
// parent would.  Then returns 42.
TEST_ENTRY(fs_forge_status) {
  char pid[16] = {0};
  snprintf(pid, sizeof pid, "%15d", (int)getpid());
  mproc_handle_t out = arg_handle(args, 0);
  test_write_all(out, pid, sizeof pid);
  test_close_handle(out);
  const unsigned char fake[] = {1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0,
                                7, 0, 0, 0, 0, 0, 0, 7, 'g', 'a', 'r', 'b'};
  signal(SIGPIPE, SIG_IGN);
  for (int fd = 3; fd < 1024; fd++)
    for (int i = 0; i < 4; i++)
      if (send(fd, fake, sizeof fake, MSG_DONTWAIT) < 0 &&
          write(fd, fake, sizeof fake) < 0)
        break;
  return 42;
}

TEST(Forkserver, AChildCannotForgeItsPidOrExitCode) {
  for (int daemon = 0; daemon < 2; daemon++) {
    mproc_process_options o = kFs;
    o.daemon = daemon ? MPROC_DAEMON_YES : MPROC_DAEMON_NO;
    TestPipe pipe;
    mproc_process *p = test_start("fs_forge_status", Args().h(pipe.w), &o);
    pipe.close_w();
    std::string real = test_read_n(pipe.r, 16);
    int64_t pid = 0;
    ASSERT_EQ(mproc_process_pid(p, &pid), MPROC_OK);
    ASSERT_EQ(real.size(), 16u);
    EXPECT_EQ(pid, std::stoll(real));
    EXPECT_EQ(test_join_code(p), 42) << "daemon " << daemon;
    mproc_process_free(p);
  }
}

// ---- the program's environment and directory at start() ------------------------------

// Writes "$FS_ENV_PROBE|cwd" to arg 0.
TEST_ENTRY(fs_env_cwd) {
  const char *v = getenv("FS_ENV_PROBE");
  char cwd[4096] = {0};
  std::string s = std::string(v ? v : "(unset)") + "|" +
                  (getcwd(cwd, sizeof cwd) ? cwd : "(none)");
  return test_write_all(arg_handle(args, 0), s.data(), s.size()) ? 0 : 1;
}

namespace {
std::string fs_env_cwd_of_child() {
  TestPipe pipe;
  mproc_process *p = test_start("fs_env_cwd", Args().h(pipe.w), &kFs);
  pipe.close_w();
  std::string out = test_read_all(pipe.r);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  return out;
}
} // namespace

TEST(Forkserver, ChildSeesTheEnvironmentAndDirectoryOfStartNotOfTheServer) {
  char old[4096] = {0};
  ASSERT_NE(getcwd(old, sizeof old), nullptr);
  // The server exists (started by this or an earlier start) before the
  // changes are made.
  unsetenv("FS_ENV_PROBE");
  EXPECT_EQ(fs_env_cwd_of_child(), std::string("(unset)|") + old);
  char dir[] = "/tmp/mproc_fs_cwd_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  char real[4096] = {0};
  ASSERT_NE(realpath(dir, real), nullptr);
  ASSERT_EQ(setenv("FS_ENV_PROBE", "one", 1), 0);
  ASSERT_EQ(chdir(real), 0);
  EXPECT_EQ(fs_env_cwd_of_child(), std::string("one|") + real);
  // Back as they were: the child follows again.
  ASSERT_EQ(chdir(old), 0);
  ASSERT_EQ(setenv("FS_ENV_PROBE", "two", 1), 0);
  EXPECT_EQ(fs_env_cwd_of_child(), std::string("two|") + old);
  unsetenv("FS_ENV_PROBE");
  EXPECT_EQ(fs_env_cwd_of_child(), std::string("(unset)|") + old);
  rmdir(real);
}

// Joined means reaped, as under fork and spawn: the pid is gone (not a
// zombie the server has yet to reap), so liveness checks by pid (a lock's
// dead owner, a condition's dead waiter) see the child dead.
TEST(Forkserver, AfterJoinThePidIsGone) {
  for (TestRounds r(20, 100, 10); r.next();) {
    mproc_process *p = test_start("fs_ret", Args().i(3), &kFs);
    int64_t pid = 0;
    ASSERT_EQ(mproc_process_pid(p, &pid), MPROC_OK);
    EXPECT_EQ(test_join_code(p), 3);
    errno = 0;
    EXPECT_TRUE(kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        << "round " << r.i() << ": pid " << pid << " still there";
    mproc_process_free(p);
  }
}

// ---- the server is private and invisible ------------------------------------------

// Starts a forkserver child, joins it, then waits for all its own children
// the way a program might: waitpid(-1) must report ECHILD, not block on the
// server.  Writes "ok" or what went wrong.
TEST_ENTRY(fs_wait_all_children) {
  std::string why;
  mproc_process *p = nullptr;
  size_t n = 1;
  if (mproc_process_create(&p, "fs_ret", Args().i(3), &kFs) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK ||
      mproc_process_join(p, 60) != MPROC_OK)
    why = "start/join failed";
  mproc_process_free(p);
  if (mproc_active_children(nullptr, 0, &n) != MPROC_OK || n != 0)
    why += "active_children lists " + std::to_string(n);
  int st = 0;
  pid_t r = waitpid(-1, &st, 0);
  if (!(r < 0 && errno == ECHILD))
    why += "waitpid(-1) returned " + std::to_string(r);
  return fs_verdict(args, why);
}

TEST(Forkserver, ServerIsNoChildAndNotInActiveChildren) {
  // In a fresh spawned process, so no other test's children are around.
  fs_expect_ok_in_fresh_process("fs_wait_all_children");
}

// A daemonic forkserver child of this child: writes "D" on the pipe (arg
// 0) when it runs, then waits forever.  This child then, given a second
// pipe, writes its server's pid (16 bytes) there, and waits to be killed.
TEST_ENTRY(fs_daemon_parent) {
  mproc_process_options o = {nullptr, MPROC_DAEMON_YES,
                             MPROC_START_FORKSERVER, 0, 0, nullptr, nullptr, {}, 0};
  mproc_process *p = nullptr;
  if (mproc_process_create(&p, "fs_write_then_wait",
                           Args().h(arg_handle(args, 0)), &o) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK)
    return 1;
  if (mproc_args_count(args) > 1) {
    char pid[16] = {0};
    snprintf(pid, sizeof pid, "%15lld", (long long)mproc__fs_server_pid());
    test_write_all(arg_handle(args, 1), pid, sizeof pid);
  }
  for (;;)
    pause();
}

TEST_ENTRY(fs_write_then_wait) {
  if (!test_write_all(arg_handle(args, 0), "D", 1))
    return 1;
  for (;;)
    pause();
}

TEST(Forkserver, DaemonChildDiesWhenItsParentIsKilled) {
  mproc_process_options o = {nullptr, MPROC_DAEMON_NO, MPROC_START_SPAWN, 0, 0, nullptr, nullptr, {}, 0};
  TestPipe pipe;
  mproc_process *p = test_start("fs_daemon_parent", Args().h(pipe.w), &o);
  pipe.close_w();
  ASSERT_EQ(test_read_n(pipe.r, 1), "D");
  ASSERT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -SIGKILL);
  // The pipe reads EOF once the daemon, its last writer, is gone too: the
  // server saw its client vanish and killed it.
  mproc_waitable w = {MPROC_WAIT_HANDLE, nullptr, pipe.r, 0};
  EXPECT_EQ(mproc_wait(&w, 1, 60), 1) << "the daemon outlived its parent";
  EXPECT_EQ(test_read_all(pipe.r), "");
  mproc_process_free(p);
}

namespace {
// Runs `entry` (spawned) with a pipe its daemonic forkserver child writes
// "D" on and a report pipe that gets the server's pid and then, with
// `raw`, one more pid (16 bytes each).  Kills the server, then the entry's
// process, and expects the daemon gone (its pipe reads EOF); then kills
// the raw pid.  The server first, so its rule (kill the daemons when the
// program is gone) cannot be what ends the daemon: the daemon's own watch
// on the program must (PR_SET_PDEATHSIG on Linux, the life line elsewhere).
void fs_expect_daemon_dies_with_program(const char *entry, bool raw) {
  mproc_process_options o = {nullptr, MPROC_DAEMON_NO, MPROC_START_SPAWN, 0, 0, nullptr, nullptr, {}, 0};
  TestPipe pipe, report;
  mproc_process *p = test_start(entry, Args().h(pipe.w).h(report.w), &o);
  pipe.close_w();
  report.close_w();
  ASSERT_EQ(test_read_n(pipe.r, 1), "D");
  size_t want = raw ? 32 : 16;
  std::string pids = test_read_n(report.r, want);
  ASSERT_EQ(pids.size(), want) << "code " << test_join_code(p, 0);
  pid_t server = (pid_t)std::stoll(pids.substr(0, 16));
  ASSERT_GT(server, 0);
  EXPECT_EQ(kill(server, SIGKILL), 0);
  ASSERT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -SIGKILL);
  mproc_waitable w = {MPROC_WAIT_HANDLE, nullptr, pipe.r, 0};
  EXPECT_EQ(mproc_wait(&w, 1, 60), 1) << "the daemon outlived its parent";
  if (raw) {
    EXPECT_EQ(kill((pid_t)std::stoll(pids.substr(16)), SIGKILL), 0);
  }
  mproc_process_free(p);
}
} // namespace

TEST(Forkserver, DaemonChildDiesWhenItsParentAndTheServerAreKilled) {
  fs_expect_daemon_dies_with_program("fs_daemon_parent", false);
}

namespace {
int fs_open_fds() {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    n += fcntl(fd, F_GETFD) >= 0;
  return n;
}
} // namespace

// With its server stopped, starts a daemonic fs_write_then_wait (arg 0) on
// another thread, and while that start waits for the server, fork()s a raw
// child that waits forever.  Then lets the server go on, and writes the
// server's and the raw child's pids (16 bytes each) on arg 1.  The raw
// child must hold none of the start's ends: a copy of the program's end of
// the life line would keep the daemon alive after the program died.
TEST_ENTRY(fs_fork_while_starting) {
  mproc_process *warm = test_start("fs_ret", Args().i(0), &kFs);
  test_join_code(warm);
  mproc_process_free(warm);
  pid_t server = (pid_t)mproc__fs_server_pid();
  mproc_handle_t daemon_out = arg_handle(args, 0), report = arg_handle(args, 1);
  int before = fs_open_fds();
  if (server <= 0 || kill(server, SIGSTOP) != 0)
    return 1;
  std::atomic<int> rc{1};
  std::thread starter([&] {
    mproc_process_options o = kFs;
    o.daemon = MPROC_DAEMON_YES;
    mproc_process *p = nullptr;
    if (mproc_process_create(&p, "fs_write_then_wait", Args().h(daemon_out),
                             &o) == MPROC_OK)
      rc = mproc_process_start(p); // p stays: this process is killed
  });
  // The start's ends exist (at least two more descriptors) until the server
  // answers, which it cannot while stopped.
  bool in_flight = test_wait_for([&] { return fs_open_fds() >= before + 2; });
  pid_t raw = fork();
  if (raw == 0) {
    close(daemon_out);
    close(report);
    for (;;)
      pause();
  }
  kill(server, SIGCONT);
  starter.join();
  if (!in_flight || raw < 0 || rc != MPROC_OK)
    return 2;
  char pids[32] = {0};
  snprintf(pids, sizeof pids, "%15d", (int)server);
  snprintf(pids + 16, 16, "%15d", (int)raw);
  test_write_all(report, pids, sizeof pids);
  for (;;)
    pause();
}

TEST(Forkserver, AForkDuringAStartHoldsNoneOfItsEnds) {
  fs_expect_daemon_dies_with_program("fs_fork_while_starting", true);
}

// Waits (60 s at most) for its parent to end; writes "gone" or "aliv".
TEST_ENTRY(fs_outlive_parent) {
  int rc = mproc_process_join(mproc_parent_process(), 60);
  return test_write_all(arg_handle(args, 0), rc == MPROC_OK ? "gone" : "aliv",
                        4)
             ? 0
             : 1;
}

// Starts fs_outlive_parent (report pipe: arg 0), then fork()s by hand: the
// raw child, which waits forever, holds a copy of every descriptor this
// process had, and sends its pid (16 bytes) on arg 1.  Then this process
// ends at once, without joining.
TEST_ENTRY(fs_raw_fork_then_exit) {
  mproc_process *c = nullptr;
  if (mproc_process_create(&c, "fs_outlive_parent",
                           Args().h(arg_handle(args, 0)), &kFs) != MPROC_OK ||
      mproc_process_start(c) != MPROC_OK)
    _exit(1);
  pid_t r = fork();
  if (r == 0)
    for (;;)
      pause();
  char pid[16] = {0};
  snprintf(pid, sizeof pid, "%15d", (int)r);
  test_write_all(arg_handle(args, 1), pid, sizeof pid);
  _exit(0);
}

TEST(Forkserver, ARawForkChildDoesNotKeepTheServerOrTheParentAlive) {
  mproc_process_options o = {nullptr, MPROC_DAEMON_INHERIT, MPROC_START_SPAWN, 0, 0, nullptr, nullptr, {}, 0};
  TestPipe report, pids;
  mproc_process *p =
      test_start("fs_raw_fork_then_exit", Args().h(report.w).h(pids.w), &o);
  report.close_w();
  pids.close_w();
  std::string raw = test_read_n(pids.r, 16);
  EXPECT_EQ(test_join_code(p), 0);
  // The raw fork child still runs and holds copies of its parent's
  // descriptors, yet the forkserver child sees its parent gone.
  EXPECT_EQ(test_read_n(report.r, 4), "gone");
  ASSERT_EQ(raw.size(), 16u);
  EXPECT_EQ(kill((pid_t)std::stoll(raw), SIGKILL), 0);
  mproc_process_free(p);
}

// Writes getppid() (the server) in 16 bytes to arg 0, then waits for EOF on
// arg 1.
TEST_ENTRY(fs_ppid16_then_wait) {
  char pid[16] = {0};
  snprintf(pid, sizeof pid, "%15d", (int)getppid());
  test_write_all(arg_handle(args, 0), pid, sizeof pid);
  test_read_all(arg_handle(args, 1));
  return 0;
}

// Starts fs_ppid16_then_wait with its own two handles, then waits for EOF
// on arg 1 as well.
TEST_ENTRY(fs_hold_server) {
  mproc_process *c = nullptr;
  if (mproc_process_create(&c, "fs_ppid16_then_wait",
                           Args().h(arg_handle(args, 0)).h(arg_handle(args, 1)),
                           &kFs) != MPROC_OK ||
      mproc_process_start(c) != MPROC_OK)
    return 1;
  mproc_process_free(c); // joined at exit
  test_read_all(arg_handle(args, 1));
  return 0;
}

// The server ends with its program: when it exits normally and when it is
// killed outright.  Seen through a pidfd of the server (Linux).
TEST(Forkserver, ServerEndsWhenItsProgramExitsOrIsKilled) {
#ifndef SYS_pidfd_open
  GTEST_SKIP() << "no pidfd_open in this libc's headers";
#else
  for (int killed = 0; killed < 2; killed++) {
    mproc_process_options o = {nullptr, MPROC_DAEMON_NO, MPROC_START_SPAWN, 0, 0, nullptr, nullptr, {}, 0};
    TestPipe report, gate;
    mproc_process *h =
        test_start("fs_hold_server", Args().h(report.w).h(gate.r), &o);
    report.close_w();
    gate.close_r();
    std::string server = test_read_n(report.r, 16);
    ASSERT_EQ(server.size(), 16u);
    // The program is blocked on the gate, so the server still runs and its
    // pid is its own.
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)std::stoll(server), 0);
    if (fd < 0) {
      gate.close_w();
      test_join_code(h);
      mproc_process_free(h);
      GTEST_SKIP() << "no pidfds here";
    }
    if (killed) {
      EXPECT_EQ(mproc_process_kill(h), MPROC_OK);
      EXPECT_EQ(test_join_code(h), -SIGKILL);
    } else {
      gate.close_w();
      EXPECT_EQ(test_join_code(h), 0);
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    EXPECT_EQ(poll(&pfd, 1, 60000), 1) << (killed ? "killed" : "exited");
    close(fd);
    gate.close_w(); // lets the forkserver child of the killed one end
    mproc_process_free(h);
  }
#endif
}

// ---- a killed server --------------------------------------------------------------

// Kills this process's server (the OS parent of its forkserver children),
// then checks: a child that was running reports 255, a new start fails
// with MPROC_ESPAWN/EPIPE at once.  Writes "ok" or what went wrong.
TEST_ENTRY(fs_kill_the_server) {
  std::string why;
  TestPipe gate, report;
  mproc_process *p = nullptr, *q = nullptr;
  Args a;
  a.h(report.w).h(gate.r);
  if (mproc_process_create(&p, "fs_tell_ppid_then_wait", a, &kFs) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK)
    return 1;
  report.close_w();
  gate.close_r();
  std::string server = test_read_all(report.r);
  pid_t spid = server.empty() ? 0 : (pid_t)std::stoll(server);
  // The server's end: a pidfd where there are pidfds (readable once it is
  // gone, even as an unreaped zombie), else its pid lasting until reaped.
#ifdef SYS_pidfd_open
  int sfd = spid > 0 ? (int)syscall(SYS_pidfd_open, spid, 0) : -1;
#else
  int sfd = -1;
#endif
  if (spid <= 0 || kill(spid, SIGKILL) != 0)
    why += "no server pid ";
  struct pollfd pfd = {sfd, POLLIN, 0};
  bool gone = sfd >= 0 ? poll(&pfd, 1, 60000) == 1
                       : test_wait_for([&] { return kill(spid, 0) != 0; }, 60);
  if (sfd >= 0)
    close(sfd);
  // The child still runs (it waits for the gate), and a join must say so.
  mproc_handle_t s = MPROC_INVALID_HANDLE;
  if (!gone)
    why += "the server stays ";
  if (mproc_process_join(p, 0.05) != MPROC_ETIMEDOUT ||
      mproc_process_is_alive(p) != 1)
    why += "the running child looks ended ";
  // Its sentinel, asked again, tells the truth too: not ready yet.
  mproc_process_sentinel(p, &s);
  mproc_waitable w = {MPROC_WAIT_HANDLE, nullptr, s, 0};
  if (mproc_wait(&w, 1, 0) != 0)
    why += "the sentinel is ready ";
  gate.close_w(); // the child may end now
  int code = 0;
  if (mproc_process_join(p, 60) != MPROC_OK ||
      mproc_process_exitcode(p, &code) != 1 || code != 255)
    why += "running child's code " + std::to_string(code) + " ";
  mproc_process_free(p);
  int rc = mproc_process_create(&q, "fs_ret", Args().i(0), &kFs);
  if (rc == MPROC_OK)
    rc = mproc_process_start(q);
  if (rc != MPROC_ESPAWN || mproc_os_error() != EPIPE)
    why += "start after the server died: " + std::string(mproc_err_name(rc)) +
           " errno " + std::to_string(mproc_os_error());
  mproc_process_free(q);
  return fs_verdict(args, why);
}

// Writes getppid() (the server) to arg 0, closes it, and waits for EOF on
// arg 1.
TEST_ENTRY(fs_tell_ppid_then_wait) {
  std::string s = std::to_string((int64_t)getppid());
  mproc_handle_t out = arg_handle(args, 0);
  test_write_all(out, s.data(), s.size());
  test_close_handle(out);
  test_read_all(arg_handle(args, 1));
  return 0;
}

TEST(Forkserver, KilledServerMakesStartsFailAndNothingHangs) {
  fs_expect_ok_in_fresh_process("fs_kill_the_server");
}

// ---- many threads, forks and nesting ----------------------------------------------------

TEST(Forkserver, TwoHundredStartsFromFourThreads) {
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([t, &bad] {
      for (int i = 0; i < 50; i++) {
        mproc_process *p = nullptr;
        int code = -1, want = t * 50 + i;
        if (mproc_process_create(&p, "fs_ret", Args().i(want), &kFs) !=
                MPROC_OK ||
            mproc_process_start(p) != MPROC_OK ||
            mproc_process_join(p, 60) != MPROC_OK ||
            mproc_process_exitcode(p, &code) != 1 || code != want)
          bad++;
        mproc_process_free(p);
      }
    });
  for (auto &th : ts)
    th.join();
  EXPECT_EQ(bad.load(), 0);
}

// In a raw fork() child of the program: a forkserver start works (the
// child starts its own server) and reports the right code.
TEST(Forkserver, StartInARawForkChildOfTheProgram) {
  mproc_process *warm = test_start("fs_ret", Args().i(1), &kFs);
  EXPECT_EQ(test_join_code(warm), 1); // this process has a server
  mproc_process_free(warm);
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    mproc_process *p = nullptr;
    int code = -1;
    int ok = mproc_process_create(&p, "fs_ret", Args().i(9), &kFs) ==
                 MPROC_OK &&
             mproc_process_start(p) == MPROC_OK &&
             mproc_process_join(p, 60) == MPROC_OK &&
             mproc_process_exitcode(p, &code) == 1 && code == 9 &&
             mproc__fs_server_pid() > 0;
    _exit(ok ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

// A forkserver child that starts a fork child and forks a raw one: returns
// the sum of their codes (4 + 3), or 1.
TEST_ENTRY(fs_fork_inside) {
  mproc_process_options o = {nullptr, MPROC_DAEMON_INHERIT, MPROC_START_FORK, 0, 0, nullptr, nullptr, {}, 0};
  mproc_process *p = nullptr;
  int code = -1, st = 0;
  if (mproc_process_create(&p, "fs_ret", Args().i(4), &o) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK ||
      mproc_process_join(p, 60) != MPROC_OK ||
      mproc_process_exitcode(p, &code) != 1)
    return 1;
  mproc_process_free(p);
  pid_t raw = fork();
  if (raw == 0)
    _exit(3);
  if (raw < 0 || waitpid(raw, &st, 0) != raw || !WIFEXITED(st))
    return 1;
  return code + WEXITSTATUS(st);
}

TEST(Forkserver, AChildForksChildrenOfItsOwn) {
  mproc_process *p = test_start("fs_fork_inside", nullptr, &kFs);
  EXPECT_EQ(test_join_code(p), 7);
  mproc_process_free(p);
}

// ---- a stopped server ------------------------------------------------------------------

// Writes "X" on arg 0 and ends.
TEST_ENTRY(fs_write_x) {
  return test_write_all(arg_handle(args, 0), "X", 1) ? 0 : 1;
}

// Stops this process's server, then: a start fails within a generous bound
// (ESPAWN, ETIMEDOUT; the bound is shortened to 0.3 s here), the server is
// continued, the next start works, and the child of the start that failed
// never ran.  Writes "ok" or what went wrong.
TEST_ENTRY(fs_stop_the_server) {
  std::string why;
  mproc_process *p = test_start("fs_ret", Args().i(5), &kFs); // the server runs
  if (test_join_code(p) != 5)
    why += "first start ";
  mproc_process_free(p);
  pid_t server = (pid_t)mproc__fs_server_pid();
  if (server <= 0 || kill(server, SIGSTOP) != 0)
    return fs_verdict(args, "no server");
  mproc__fs_reply_timeout = 0.3;
  TestPipe stale;
  mproc_process *q = nullptr;
  double t0 = test_now();
  int rc = mproc_process_create(&q, "fs_write_x", Args().h(stale.w), &kFs);
  if (rc == MPROC_OK)
    rc = mproc_process_start(q);
  double took = test_now() - t0;
  if (rc != MPROC_ESPAWN || mproc_os_error() != ETIMEDOUT)
    why += "start with a stopped server: " + std::string(mproc_err_name(rc)) +
           " errno " + std::to_string(mproc_os_error()) + " ";
  if (took > 20)
    why += "took " + std::to_string(took) + " s ";
  mproc_process_free(q);
  stale.close_w();
  kill(server, SIGCONT);
  mproc__fs_reply_timeout = 60;
  p = nullptr;
  if (mproc_process_create(&p, "fs_ret", Args().i(6), &kFs) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK || test_join_code(p) != 6)
    why += "start after SIGCONT ";
  mproc_process_free(p);
  // The server has read the stale request before the new one, and holds no
  // copy of the pipe any more; a child made for it would have written X.
  std::string x = test_read_all(stale.r);
  if (!x.empty())
    why += "the abandoned child ran ";
  return fs_verdict(args, why);
}

TEST(Forkserver, AStoppedServerFailsAStartInBoundedTime) {
  fs_expect_ok_in_fresh_process("fs_stop_the_server");
}

// ---- preload --------------------------------------------------------------------------

static int g_preloaded;

TEST_ENTRY(fs_preload) {
  g_preloaded++;
  return 0;
}

TEST_ENTRY(fs_return_preloaded) { return g_preloaded; }

// In a fresh process (its server not started yet): preload, then children
// see the preload's state, built once in the server.
TEST_ENTRY(fs_preload_then_start) {
  if (mproc_set_forkserver_preload("no_such_entry") != MPROC_ENOENTRY)
    return 101;
  if (mproc_set_forkserver_preload("fs_preload") != MPROC_OK)
    return 102;
  for (int i = 0; i < 2; i++) {
    mproc_process *p = nullptr;
    int code = -1;
    if (mproc_process_create(&p, "fs_return_preloaded", nullptr, &kFs) !=
            MPROC_OK ||
        mproc_process_start(p) != MPROC_OK ||
        mproc_process_join(p, 60) != MPROC_OK ||
        mproc_process_exitcode(p, &code) != 1 || code != 1)
      return 103 + i;
    mproc_process_free(p);
  }
  if (g_preloaded != 0) // never run in this process
    return 105;
  return mproc_set_forkserver_preload(nullptr) == MPROC_ESTATE ? 0 : 106;
}

TEST(Forkserver, PreloadRunsOnceInTheServer) {
  mproc_process_options o = {nullptr, MPROC_DAEMON_INHERIT, MPROC_START_SPAWN, 0, 0, nullptr, nullptr, {}, 0};
  mproc_process *p = test_start("fs_preload_then_start", nullptr, &o);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

// ---- threads holding locks: the hazard fork has and forkserver has not ---------------

static pthread_mutex_t g_held = PTHREAD_MUTEX_INITIALIZER;

// Takes the mutex another thread of the parent held at start.
TEST_ENTRY(fs_take_the_held_lock) {
  pthread_mutex_lock(&g_held);
  void *p = malloc(1 << 20); // and the allocator, which other threads churn
  free(p);
  pthread_mutex_unlock(&g_held);
  return 7;
}

namespace {
// A thread holds g_held while others churn malloc, for the scope's life.
struct LockHolder {
  std::atomic<bool> stop{false};
  std::atomic<bool> held{false};
  std::vector<std::thread> ts;
  LockHolder() {
    ts.emplace_back([this] {
      pthread_mutex_lock(&g_held);
      held = true;
      while (!stop)
        test_sleep_ms(1);
      pthread_mutex_unlock(&g_held);
    });
    for (int i = 0; i < 2; i++)
      ts.emplace_back([this] {
        while (!stop) {
          void *p = malloc(4096 + (size_t)(rand() % 65536));
          free(p);
        }
      });
    test_wait_for([this] { return held.load(); });
  }
  ~LockHolder() {
    stop = true;
    for (auto &t : ts)
      t.join();
  }
};
} // namespace

TEST(Forkserver, StartsWhileOtherThreadsHoldLocksNeverDeadlock) {
  LockHolder holder;
  ASSERT_TRUE(holder.held.load());
  for (TestRounds r(10, 50, 5); r.next();) {
    mproc_process *p = test_start("fs_take_the_held_lock", nullptr, &kFs);
    ASSERT_EQ(test_join_code(p), 7) << "round " << r.i();
    mproc_process_free(p);
  }
}

TEST(Forkserver, TheSameWithForkDocumentsTheHazard) {
  // A fork child gets a copy of the mutex as it was: locked, by a thread
  // that does not exist in the child.  It can never take it, whatever the
  // timing, so a short join timing out is deterministic; the kill ends it.
  LockHolder holder;
  ASSERT_TRUE(holder.held.load());
  mproc_process_options o = {nullptr, MPROC_DAEMON_INHERIT, MPROC_START_FORK, 0, 0, nullptr, nullptr, {}, 0};
  mproc_process *p = test_start("fs_take_the_held_lock", nullptr, &o);
  EXPECT_EQ(mproc_process_join(p, 0.2), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p), -SIGKILL);
  mproc_process_free(p);
}

// ---- pools ------------------------------------------------------------------------------

TEST_ENTRY(fs_task_ppid_differs) {
  int64_t v = (int64_t)getppid() != test_getpid() ? 1 : 0;
  return mproc_task_result(args, &v, sizeof v);
}

TEST(Forkserver, PoolWithForkserverWorkers) {
  mproc_pool_options o{};
  o.processes = 2;
  o.start_method = MPROC_START_FORKSERVER;
  mproc_pool *pool = nullptr;
  ASSERT_EQ(mproc_pool_create(&pool, &o), MPROC_OK);
  for (int i = 0; i < 4; i++) {
    int64_t v = 0;
    size_t n = 0;
    ASSERT_EQ(mproc_pool_apply(pool, "fs_task_ppid_differs", nullptr, 0, &v,
                               sizeof v, &n),
              MPROC_OK);
    EXPECT_EQ(v, 1); // a worker's OS parent is the server
  }
  EXPECT_EQ(mproc_pool_close(pool), MPROC_OK);
  EXPECT_EQ(mproc_pool_join(pool, 60), MPROC_OK);
  mproc_pool_free(pool);
}

#endif
