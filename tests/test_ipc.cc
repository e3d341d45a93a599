// The IPC foundation every object is built on: shared segments handed to
// children, the portable futex across processes, owner liveness, names.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>

#include "test_util.h"

extern "C" {
#include "ipc.h"
}

namespace {

struct Shared {
  volatile uint32_t word;
  volatile uint32_t waiters;
  volatile uint32_t counter;
};

// Imports the segment (arg 0) and the futex semaphore (arg 1, may be
// invalid) a parent passed.
bool import_shared(const mproc_args *args, mproc__seg *seg, mproc__fx *fx) {
  mproc_handle_t hseg = MPROC_INVALID_HANDLE, hsem = MPROC_INVALID_HANDLE;
  if (mproc_arg_handle(args, 0, &hseg) != MPROC_OK)
    return false;
  mproc_arg_handle(args, 1, &hsem);
  if (mproc__seg_import(seg, hseg, sizeof(Shared)) != MPROC_OK)
    return false;
  Shared *s = static_cast<Shared *>(seg->addr);
  return mproc__fx_import(fx, &s->word, &s->waiters, hsem) == MPROC_OK;
}

} // namespace

// Ping-pong: the word is odd when it is the child's turn, even for the
// parent's; each side bumps it and wakes the other.  The parent decides how
// many rounds are played: it sets `counter` before the turn that ends it.
TEST_ENTRY(futex_pong) {
  mproc__seg seg;
  mproc__fx fx;
  if (!import_shared(args, &seg, &fx))
    return 2;
  Shared *s = static_cast<Shared *>(seg.addr);
  for (;;) {
    uint32_t v;
    while (((v = mproc__load32(&s->word)) & 1u) == 0)
      if (mproc__fx_wait(&fx, v, mproc__plat_now() + 30) == MPROC_ETIMEDOUT)
        return 3;
    if (mproc__load32(&s->counter) != 0)
      break;
    mproc__store32(&s->word, v + 1);
    mproc__fx_wake(&fx, 1);
  }
  mproc__fx_close(&fx);
  mproc__seg_close(&seg);
  return 0;
}

// Writes a pattern into the segment, then returns.
TEST_ENTRY(seg_writer) {
  mproc__seg seg;
  mproc__fx fx;
  if (!import_shared(args, &seg, &fx))
    return 2;
  Shared *s = static_cast<Shared *>(seg.addr);
  mproc__store32(&s->counter, 0xC0FFEEu);
  mproc__fx_close(&fx);
  mproc__seg_close(&seg);
  return 0;
}

struct SegFixture {
  mproc__seg seg;
  mproc__fx fx;
  Shared *s = nullptr;
  SegFixture() {
    EXPECT_EQ(mproc__seg_create(&seg, nullptr, sizeof(Shared)), MPROC_OK);
    s = static_cast<Shared *>(seg.addr);
    EXPECT_EQ(mproc__fx_create(&fx, &s->word, &s->waiters), MPROC_OK);
  }
  ~SegFixture() {
    mproc__fx_close(&fx);
    mproc__seg_close(&seg);
  }
  Args args() {
    Args a;
    a.h(seg.handle);
    if (fx.sem != MPROC_INVALID_HANDLE)
      a.h(fx.sem);
    else
      a.h(seg.handle); // placeholder slot; the child ignores it on POSIX
    return a;
  }
};

TEST(Segment, ZeroFilledAndSharedWithAChild) {
  SegFixture f;
  EXPECT_EQ(f.s->counter, 0u);
  mproc_process *p = test_start("seg_writer", f.args());
  EXPECT_EQ(test_join_code(p), 0);
  EXPECT_EQ(mproc__load32(&f.s->counter), 0xC0FFEEu);
  mproc_process_free(p);
}

// The parent's side of a ping-pong with futex_pong, for r's rounds: each
// round hands the child its turn (odd word) and waits for it to hand it
// back.  Fails the test fatally: call it in ASSERT_NO_FATAL_FAILURE.
static void play_pong(SegFixture &f, TestRounds &r) {
  while (r.next()) {
    uint32_t v;
    mproc__store32(&f.s->word, mproc__load32(&f.s->word) + 1); // child's turn
    mproc__fx_wake(&f.fx, 1);
    while (((v = mproc__load32(&f.s->word)) & 1u) == 1)
      ASSERT_NE(mproc__fx_wait(&f.fx, v, mproc__plat_now() + 30),
                MPROC_ETIMEDOUT)
          << "round " << r.i();
  }
  // The last turn tells the child to stop instead of answering.
  mproc__store32(&f.s->counter, 1u);
  mproc__store32(&f.s->word, mproc__load32(&f.s->word) + 1);
  mproc__fx_wake(&f.fx, 1);
}

TEST(Futex, PingPongAcrossProcesses) {
  SegFixture f;
  mproc_process *p = test_start("futex_pong", f.args());
  // Up to 2000 rounds, fewer (at least 200) past 10 s: two cross-process
  // wake-ups each, the slowest thing here on a loaded machine.
  TestRounds r(200, 2000, 10);
  ASSERT_NO_FATAL_FAILURE(play_pong(f, r));
  EXPECT_EQ(test_join_code(p), 0);
  EXPECT_EQ(mproc__load32(&f.s->word), 2u * (uint32_t)r.done() + 1u);
  mproc_process_free(p);
}

TEST(Futex, WaitTimesOutWhenNothingChanges) {
  SegFixture f;
  double t0 = mproc__plat_now();
  EXPECT_EQ(mproc__fx_wait(&f.fx, 0, t0 + 0.05), MPROC_ETIMEDOUT);
  EXPECT_LT(mproc__plat_now() - t0, 10.0);
  EXPECT_EQ(mproc__load32(&f.s->waiters), 0u);
  // A word that already differs returns at once.
  EXPECT_EQ(mproc__fx_wait(&f.fx, 7, mproc__plat_now() + 30), MPROC_OK);
}

// The deadline has a fractional second on purpose: a kernel that reads the
// struct timespec with the wrong layout (64-bit time_t handed to the 32-bit
// SYS_futex, as on 32-bit musl) sees the whole seconds only, so the wait
// timed out up to a second early, every time.  No lower bound on speed here:
// an expired timeout simply must not come before its deadline.
TEST(Futex, TimeoutNeverExpiresBeforeItsDeadline) {
  SegFixture f;
  const double deadline = std::floor(mproc__plat_now()) + 1.25;
  int rc;
  do  // a signal may end a wait early (MPROC_OK): wait again for the rest
    rc = mproc__fx_wait(&f.fx, 0, deadline);
  while (rc == MPROC_OK && mproc__plat_now() < deadline);
  const double late_by = mproc__plat_now() - deadline;
  EXPECT_EQ(rc, MPROC_ETIMEDOUT);
  EXPECT_GE(late_by, -1e-3) << "timed out " << -late_by << " s early";
  EXPECT_LT(late_by, 10.0);
}

TEST(Futex, WakeAllReleasesEveryThread) {
  SegFixture f;
  std::atomic<int> woken{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; i++)
    ts.emplace_back([&] {
      while (mproc__load32(&f.s->word) == 0)
        mproc__fx_wait(&f.fx, 0, mproc__plat_now() + 30);
      woken++;
    });
  // All four asleep in the wait (counted), so the wake below is what ends
  // their waits.
  EXPECT_TRUE(test_wait_for([&] { return mproc__fx_waiting(&f.fx) == 4; }))
      << mproc__fx_waiting(&f.fx);
  mproc__store32(&f.s->word, 1);
  mproc__fx_wake(&f.fx, UINT32_MAX);
  for (auto &t : ts)
    t.join();
  EXPECT_EQ(woken.load(), 4);
}

TEST(Futex, WakeEndsAWaitEvenWithoutAChange) {
  // A wake reaches a waiter asleep in the kernel, whether or not the word
  // changed (the callers' loops take it as a spurious wake-up).  The
  // plain-POSIX fallback used to sleep in short steps and look at the
  // word, so such a wake was never seen and the wait ran to its deadline.
  // A wake can come before the waiter is asleep: wake again until it
  // returns, for less time than its deadline.
  SegFixture f;
  std::atomic<int> rc{1};
  std::thread t([&] { rc = mproc__fx_wait(&f.fx, 0, mproc__plat_now() + 30); });
  EXPECT_TRUE(test_wait_for([&] { return mproc__fx_waiting(&f.fx) == 1; }));
  EXPECT_TRUE(test_wait_for(
      [&] {
        mproc__fx_wake(&f.fx, 1);
        return rc.load() != 1;
      },
      20));
  t.join();
  EXPECT_EQ(rc.load(), MPROC_OK);
  EXPECT_EQ(mproc__load32(&f.s->word), 0u);
}

// Waits until the word leaves 0 (at most a minute).
TEST_ENTRY(futex_sleeper) {
  mproc__seg seg;
  mproc__fx fx;
  if (!import_shared(args, &seg, &fx))
    return 2;
  Shared *s = static_cast<Shared *>(seg.addr);
  double deadline = mproc__plat_now() + 60;
  while (mproc__load32(&s->word) == 0 && mproc__plat_now() < deadline)
    mproc__fx_wait(&fx, 0, deadline);
  return 0;
}

TEST(Futex, WaitersKilledMidWaitLoseNoLaterWakes) {
  // A waiter killed while it sleeps cannot uncount itself, and whatever its
  // wake-up leaves behind (a count, a unit of a semaphore) stays.  Later
  // waits must neither hang on that nor lose their wakes to it: four
  // waiters killed, each woken once after its death, then a ping-pong of
  // single wakes across processes on the same futex.
  SegFixture f;
  for (uint32_t i = 0; i < 4; i++) {
    mproc_process *p = test_start("futex_sleeper", f.args());
    EXPECT_TRUE(test_wait_for([&] { return mproc__fx_waiting(&f.fx) > i; }))
        << "sleeper " << i << " never waited";
    EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    EXPECT_EQ(test_join_code(p), -9);
    mproc_process_free(p);
    mproc__fx_wake(&f.fx, UINT32_MAX); // the dead one's wake-up, unclaimed
  }
  mproc__store32(&f.s->word, 2); // even: the parent's turn (futex_pong)
  mproc_process *p = test_start("futex_pong", f.args());
  TestRounds r(100, 1000, 10);
  ASSERT_NO_FATAL_FAILURE(play_pong(f, r));
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

TEST(Owners, LivenessOfProcesses) {
  EXPECT_EQ(mproc__pid_alive(mproc__plat_getpid()), 1);
  EXPECT_EQ(mproc__pid_alive(0), 0);
  EXPECT_EQ(mproc__pid_alive(-5), 0);
  mproc_process *p = test_start("futex_pong_never");
  int64_t pid = 0;
  mproc_process_pid(p, &pid);
  EXPECT_EQ(mproc__pid_alive(pid), 1);
  mproc_process_kill(p);
  test_join_code(p);
  mproc_process_free(p);
  EXPECT_EQ(mproc__pid_alive(pid), 0);
  EXPECT_NE(mproc__thread_id(), 0u);
}

TEST_ENTRY(futex_pong_never) {
  test_sleep_ms(60000);
  return 0;
}

TEST(Names, SharedNamesAreCheckedAlike) {
  EXPECT_TRUE(mproc__seg_name_ok("abc-DEF_1.2"));
  EXPECT_TRUE(mproc__seg_name_ok(std::string(MPROC_SHM_NAME_MAX, 'x').c_str()));
  EXPECT_FALSE(mproc__seg_name_ok(
      std::string(MPROC_SHM_NAME_MAX + 1, 'x').c_str()));
  EXPECT_FALSE(mproc__seg_name_ok(""));
  EXPECT_FALSE(mproc__seg_name_ok(nullptr));
  EXPECT_FALSE(mproc__seg_name_ok("."));
  EXPECT_FALSE(mproc__seg_name_ok(".."));
  EXPECT_FALSE(mproc__seg_name_ok("a/b"));
  EXPECT_FALSE(mproc__seg_name_ok("a\\b"));
  EXPECT_FALSE(mproc__seg_name_ok("sp ace"));
}

TEST(Segment, NamedCreateAttachAndExclusive) {
  std::string name = "mproc-test-" + std::to_string(test_getpid());
  mproc__seg a, b, c;
  ASSERT_EQ(mproc__seg_create(&a, name.c_str(), 100), MPROC_OK);
  static_cast<char *>(a.addr)[99] = 'z';
  EXPECT_EQ(mproc__seg_create(&c, name.c_str(), 100), MPROC_EEXIST);
  ASSERT_EQ(mproc__seg_attach(&b, name.c_str()), MPROC_OK);
  EXPECT_EQ(b.size, 100u);
  EXPECT_EQ(static_cast<char *>(b.addr)[99], 'z');
  mproc__seg_close(&b);
  mproc__seg_close(&a); // the creator removes the name
  if (!test_on_windows()) {
    EXPECT_EQ(mproc__seg_attach(&b, name.c_str()), MPROC_ENOTFOUND);
  }
  EXPECT_EQ(mproc__seg_create(&c, nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc__seg_create(&c, "bad/name", 10), MPROC_EINVAL);
}
