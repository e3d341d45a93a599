// The process pool (mproc/pool.h): map equals the serial result, imap
// order, imap_unordered completeness, apply_async and its callbacks, the
// initializer, maxtasksperchild, workers that die (abort, killed from
// outside, exit inside a task) ending their task with MPROC_EWORKER while
// the pool keeps serving, terminate with tasks in flight, bad input.  Every
// test runs under the lane's default start method.
#include <gtest/gtest.h>

#include <limits>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#ifdef _WIN32
#include <windows.h>
#else
#include <signal.h>
#include <unistd.h>
#endif

#include "test_util.h"

namespace {

struct Inputs {
  std::vector<int64_t> v;
  std::vector<mproc_bytes> b;
  explicit Inputs(size_t n) : v(n), b(n) {
    for (size_t i = 0; i < n; i++) {
      v[i] = (int64_t)i;
      b[i].data = &v[i];
      b[i].len = sizeof(int64_t);
    }
  }
};

struct Pool {
  mproc_pool *p = nullptr;
  explicit Pool(int n = 2, const mproc_pool_options *o = nullptr) {
    mproc_pool_options d{};
    d.processes = n;
    EXPECT_EQ(mproc_pool_create(&p, o ? o : &d), MPROC_OK);
  }
  ~Pool() { mproc_pool_free(p); }
  Pool(const Pool &) = delete;
  Pool &operator=(const Pool &) = delete;
};

int64_t item_i64(mproc_async_result *r, size_t i, int *status = nullptr) {
  const void *d = nullptr;
  size_t n = 0;
  int rc = mproc_async_result_item(r, i, &d, &n);
  if (status)
    *status = rc;
  int64_t x = -1;
  if (rc == MPROC_OK && n == sizeof x)
    memcpy(&x, d, sizeof x);
  return x;
}

int64_t apply_i64(mproc_pool *p, const char *task, int64_t x, int *rc) {
  int64_t out = -1;
  size_t len = 0;
  *rc = mproc_pool_apply(p, task, &x, sizeof x, &out, sizeof out, &len);
  return out;
}

} // namespace

// ---- tasks ----------------------------------------------------------------

TEST_ENTRY(pool_square) {
  int64_t x = in_i64(args);
  return out_i64(args, x * x);
}

TEST_ENTRY(pool_getpid) { return out_i64(args, test_getpid()); }

// Fails (returns 7) for odd inputs.
TEST_ENTRY(pool_fail_odd) {
  int64_t x = in_i64(args);
  if (x % 2)
    return 7;
  return out_i64(args, x);
}

// Sleeps input ms, then returns the input.
TEST_ENTRY(pool_sleep_ms) {
  int64_t x = in_i64(args);
  test_sleep_ms((int)x);
  return out_i64(args, x);
}

TEST_ENTRY(pool_abort) {
  test_crash();
  return 0;
}

// LeakSanitizer consults this hook at exit.  A fork worker that calls exit()
// inside a task still holds copies of the parent's memory owned by threads
// that do not exist in it (the pool's handler thread): not leaks of the
// worker, so its exit-time check is switched off for that one process.
static volatile int g_lsan_off = 0;
extern "C" int __lsan_is_turned_off();
extern "C" int __lsan_is_turned_off() { return g_lsan_off; }

TEST_ENTRY(pool_exit) {
  g_lsan_off = 1;
  std::exit(5);
}

TEST_ENTRY(pool_kill_self) {
#ifdef _WIN32
  TerminateProcess(GetCurrentProcess(), 9);
#else
  raise(SIGKILL);
#endif
  return 0;
}

// A task that is given its input: empty result.
TEST_ENTRY(pool_empty) { return 0; }

// Echoes its input.
TEST_ENTRY(pool_echo) {
  const void *d = nullptr;
  size_t n = 0;
  if (mproc_task_input(args, &d, &n) != MPROC_OK)
    return 1;
  return mproc_task_result(args, d, n) == MPROC_OK ? 0 : 2;
}

static int64_t g_init_value = -1;

// Initializer: keeps its int argument for the tasks.
TEST_ENTRY(pool_init_set) {
  int64_t v = 0;
  if (mproc_arg_int(args, 0, &v) != MPROC_OK)
    return 1;
  g_init_value = v;
  return 0;
}

TEST_ENTRY(pool_init_fail) { return 3; }

// An initializer that crashes: a start failure like one that fails.
TEST_ENTRY(pool_init_crash) {
  g_lsan_off = 1;
  test_crash();
  return 0;
}

TEST_ENTRY(pool_get_init) { return out_i64(args, g_init_value); }

// ---- map / imap -----------------------------------------------------------

TEST(PoolMap, TenThousandItemsEqualSerial) {
  Pool pool(2);
  Inputs in(10000);
  for (size_t cs : {(size_t)0, (size_t)1, (size_t)7, (size_t)5000}) {
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_map(pool.p, "pool_square", in.b.data(), in.b.size(),
                             cs, &r),
              MPROC_OK);
    ASSERT_EQ(mproc_async_result_count(r), 10000u);
    for (size_t i = 0; i < 10000; i++)
      ASSERT_EQ(item_i64(r, i), (int64_t)(i * i)) << i << " cs " << cs;
    EXPECT_EQ(mproc_async_result_successful(r), 1);
    mproc_async_result_free(r);
  }
}

TEST(PoolMap, ChunksizeLargerThanTheInputIsOneChunk) {
  // (n + cs - 1) / cs used to wrap to 0 chunks: a job that never ended.
  Pool pool(2);
  Inputs in(10);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_async(pool.p, "pool_square", in.b.data(),
                                 in.b.size(), SIZE_MAX, nullptr, &r),
            MPROC_OK);
  ASSERT_EQ(mproc_async_result_wait(r, 60), MPROC_OK);
  for (size_t i = 0; i < 10; i++)
    EXPECT_EQ(item_i64(r, i), (int64_t)(i * i));
  mproc_async_result_free(r);
}

TEST(PoolMap, HugeTimeoutsWaitInsteadOfSpinning) {
  // A deadline past what a time_t / DWORD holds once made the wait return
  // at once with the pool's lock held, starving the handler thread.
  Pool pool(1);
  Inputs in(4);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_async(pool.p, "pool_square", in.b.data(),
                                 in.b.size(), 1, nullptr, &r),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_wait(r, 1e30), MPROC_OK);
  EXPECT_EQ(mproc_async_result_wait(r, std::numeric_limits<double>::infinity()),
            MPROC_OK);
  EXPECT_EQ(item_i64(r, 3), 9);
  mproc_async_result_free(r);
}

TEST(PoolMap, EmptyMapIsReadyAtOnce) {
  Pool pool(1);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_square", nullptr, 0, 0, &r), MPROC_OK);
  EXPECT_EQ(mproc_async_result_count(r), 0u);
  EXPECT_EQ(mproc_async_result_ready(r), 1);
  EXPECT_EQ(mproc_async_result_successful(r), 1);
  mproc_async_result_free(r);
}

TEST(PoolMap, TaskFailuresAreReportedPerTaskAndOthersGoOn) {
  Pool pool(2);
  Inputs in(100);
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_map(pool.p, "pool_fail_odd", in.b.data(), 100, 3, &r),
            7);
  for (size_t i = 0; i < 100; i++) {
    int st = 0;
    int64_t v = item_i64(r, i, &st);
    if (i % 2) {
      EXPECT_EQ(st, 7);
    } else {
      EXPECT_EQ(st, MPROC_OK);
      EXPECT_EQ(v, (int64_t)i);
    }
  }
  EXPECT_EQ(mproc_async_result_successful(r), 0);
  mproc_async_result_free(r);
}

TEST(PoolMap, VariableSizedResults) {
  Pool pool(2);
  std::vector<std::string> s;
  for (int i = 0; i < 200; i++)
    s.push_back(std::string((size_t)(i * 97 % 3000), (char)('a' + i % 26)));
  std::vector<mproc_bytes> b(s.size());
  for (size_t i = 0; i < s.size(); i++)
    b[i] = mproc_bytes{s[i].data(), s[i].size()};
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_echo", b.data(), b.size(), 5, &r),
            MPROC_OK);
  for (size_t i = 0; i < s.size(); i++) {
    const void *d = nullptr;
    size_t n = 0;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &n), MPROC_OK);
    ASSERT_EQ(std::string((const char *)d, n), s[i]);
  }
  mproc_async_result_free(r);
  // A large single input and result.
  std::string big(3 << 20, 'z');
  std::string out(big.size(), '\0');
  size_t n = 0;
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_echo", big.data(), big.size(),
                             &out[0], out.size(), &n),
            MPROC_OK);
  EXPECT_EQ(n, big.size());
  EXPECT_TRUE(out == big);
}

TEST(PoolImap, YieldsInInputOrder) {
  Pool pool(2);
  // Earlier items sleep longer, so they finish later.
  std::vector<int64_t> ms = {120, 80, 40, 0, 0, 0, 10, 0};
  std::vector<mproc_bytes> b(ms.size());
  for (size_t i = 0; i < ms.size(); i++)
    b[i] = mproc_bytes{&ms[i], sizeof(int64_t)};
  mproc_imap *it = nullptr;
  ASSERT_EQ(mproc_pool_imap(pool.p, "pool_sleep_ms", b.data(), b.size(), 1, &it),
            MPROC_OK);
  for (size_t i = 0; i < ms.size(); i++) {
    const void *d = nullptr;
    size_t n = 0, idx = 99;
    ASSERT_EQ(mproc_imap_next(it, &d, &n, &idx, 30), MPROC_OK);
    EXPECT_EQ(idx, i);
    int64_t v;
    ASSERT_EQ(n, sizeof v);
    memcpy(&v, d, sizeof v);
    EXPECT_EQ(v, ms[i]);
  }
  EXPECT_EQ(mproc_imap_next(it, nullptr, nullptr, nullptr, 1), MPROC_EEOF);
  mproc_imap_free(it);
}

TEST(PoolImap, UnorderedYieldsEveryResultOnce) {
  Pool pool(2);
  Inputs in(1000);
  mproc_imap *it = nullptr;
  ASSERT_EQ(mproc_pool_imap_unordered(pool.p, "pool_square", in.b.data(), 1000,
                                      13, &it),
            MPROC_OK);
  std::set<size_t> seen;
  for (;;) {
    const void *d = nullptr;
    size_t n = 0, idx = 0;
    int rc = mproc_imap_next(it, &d, &n, &idx, 30);
    if (rc == MPROC_EEOF)
      break;
    ASSERT_EQ(rc, MPROC_OK);
    int64_t v;
    ASSERT_EQ(n, sizeof v);
    memcpy(&v, d, sizeof v);
    EXPECT_EQ(v, (int64_t)(idx * idx));
    EXPECT_TRUE(seen.insert(idx).second) << idx;
  }
  EXPECT_EQ(seen.size(), 1000u);
  mproc_imap_free(it);
}

TEST(PoolImap, NextTimesOut) {
  Pool pool(1);
  int64_t ms = 2000;
  mproc_bytes b{&ms, sizeof ms};
  mproc_imap *it = nullptr;
  ASSERT_EQ(mproc_pool_imap(pool.p, "pool_sleep_ms", &b, 1, 0, &it), MPROC_OK);
  EXPECT_EQ(mproc_imap_next(it, nullptr, nullptr, nullptr, 0.05),
            MPROC_ETIMEDOUT);
  mproc_imap_free(it); // pending: completes inside the pool
}

// ---- apply / callbacks ----------------------------------------------------

namespace {
struct CbState {
  std::atomic<int> ok{0}, err{0};
  std::atomic<int64_t> sum{0};
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0; // under mu: callbacks that ran, announced on cv
  void called() {
    std::lock_guard<std::mutex> lk(mu);
    calls++;
    cv.notify_all();
  }
  bool wait_calls(int n, double seconds) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::duration<double>(seconds),
                       [&] { return calls >= n; });
  }
};
void on_ok(mproc_async_result *r, void *ctx) {
  CbState *s = static_cast<CbState *>(ctx);
  int64_t v = 0;
  size_t n = 0;
  if (mproc_async_result_get(r, &v, sizeof v, &n, 0) == MPROC_OK)
    s->sum += v;
  s->ok++;
  s->called();
}
void on_err(mproc_async_result *r, void *ctx) {
  CbState *s = static_cast<CbState *>(ctx);
  if (mproc_async_result_get(r, nullptr, 0, nullptr, 0) == 7)
    s->err++;
  s->called();
}
} // namespace

namespace {
int64_t next_pid(mproc_queue *q);
// A lock and a queue for a pool's initargs, freed after the pool.
struct InitObjects {
  mproc_lock *l = nullptr;
  mproc_queue *q = nullptr;
  InitObjects() {
    EXPECT_EQ(mproc_lock_create(&l, 0), MPROC_OK);
    EXPECT_EQ(mproc_queue_create(&q, nullptr), MPROC_OK);
  }
  ~InitObjects() {
    mproc_queue_free(q);
    mproc_lock_free(l);
  }
};

// Options for a pool of n workers whose initializer, pool_init_objects, is
// given objs' lock and queue in `a` (which must outlive the pool).  Fails
// the test fatally: call it in ASSERT_NO_FATAL_FAILURE.
void init_objects_options(const InitObjects &objs, int n, Args *a,
                          mproc_pool_options *o) {
  ASSERT_EQ(mproc_args_add_object(a->a, nullptr, objs.l), MPROC_OK);
  ASSERT_EQ(mproc_args_add_object(a->a, nullptr, objs.q), MPROC_OK);
  o->processes = n;
  o->initializer = "pool_init_objects";
  o->initargs = *a;
}
} // namespace

TEST(PoolApply, ApplyAndApplyAsyncWithCallbacks) {
  Pool pool(2);
  int rc = 0;
  EXPECT_EQ(apply_i64(pool.p, "pool_square", 12, &rc), 144);
  EXPECT_EQ(rc, MPROC_OK);
  CbState st;
  mproc_async_options o{on_ok, on_err, &st, 0};
  std::vector<mproc_async_result *> rs;
  for (int64_t i = 0; i < 40; i++) {
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_fail_odd", &i, sizeof i, &o,
                                     &r),
              MPROC_OK);
    rs.push_back(r);
  }
  int64_t want = 0;
  for (int64_t i = 0; i < 40; i++) {
    int64_t v = -1;
    size_t n = 0;
    int g = mproc_async_result_get(rs[(size_t)i], &v, sizeof v, &n, 30);
    if (i % 2) {
      EXPECT_EQ(g, 7);
    } else {
      EXPECT_EQ(g, MPROC_OK);
      EXPECT_EQ(v, i);
      want += i;
    }
    EXPECT_EQ(mproc_async_result_ready(rs[(size_t)i]), 1);
  }
  // Callbacks run on the handler thread right after the result is ready.
  EXPECT_TRUE(st.wait_calls(40, 30));
  EXPECT_EQ(st.ok.load(), 20);
  EXPECT_EQ(st.err.load(), 20);
  EXPECT_EQ(st.sum.load(), want);
  for (auto *r : rs)
    mproc_async_result_free(r);
}

TEST(PoolApply, WaitTimesOutThenSucceeds) {
  // The task waits for a lock this thread holds: it cannot finish before
  // the release below, however slow the machine (a sleeping task could).
  InitObjects objs; // freed after the pool
  ASSERT_EQ(mproc_lock_acquire(objs.l, 0), MPROC_OK);
  Args a;
  mproc_pool_options o{};
  ASSERT_NO_FATAL_FAILURE(init_objects_options(objs, 1, &a, &o));
  Pool pool(1, &o);
  int64_t x = 300;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_locked_put", &x, sizeof x,
                                   nullptr, &r),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_wait(r, 0.01), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_async_result_ready(r), 0);
  EXPECT_EQ(mproc_async_result_successful(r), MPROC_ESTATE);
  EXPECT_EQ(mproc_lock_release(objs.l), MPROC_OK);
  EXPECT_EQ(mproc_async_result_wait(r, 30), MPROC_OK);
  int64_t v = 0;
  size_t n = 0;
  EXPECT_EQ(mproc_async_result_get(r, &v, 4, &n, 0), MPROC_ERANGE);
  EXPECT_EQ(n, sizeof v);
  EXPECT_EQ(mproc_async_result_get(r, &v, sizeof v, &n, 0), MPROC_OK);
  EXPECT_EQ(v, 300);
  mproc_async_result_free(r);
}

// ---- initializer / maxtasksperchild -----------------------------------------

TEST(PoolWorkers, InitializerStateSeenByEveryTask) {
  Args a;
  a.i(4242);
  mproc_pool_options o{};
  o.processes = 2;
  o.initializer = "pool_init_set";
  o.initargs = a;
  Pool pool(2, &o);
  Inputs in(50);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_get_init", in.b.data(), 50, 1, &r),
            MPROC_OK);
  for (size_t i = 0; i < 50; i++)
    EXPECT_EQ(item_i64(r, i), 4242);
  mproc_async_result_free(r);
}

TEST(PoolWorkers, FailingInitializerIsAnErrorNotAHang) {
  mproc_pool_options o{};
  o.processes = 2;
  o.initializer = "pool_init_fail";
  mproc_pool *p = nullptr;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ESPAWN);
  EXPECT_EQ(p, nullptr);
  o.initializer = "pool_init_crash";
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ESPAWN);
  EXPECT_EQ(p, nullptr);
  o.initializer = "no_such_entry";
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ENOENTRY);
}

TEST(PoolWorkers, MaxTasksPerChildReplacesWorkers) {
  mproc_pool_options o{};
  o.processes = 2;
  o.maxtasksperchild = 2;
  Pool pool(2, &o);
  Inputs in(20);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_getpid", in.b.data(), 20, 1, &r),
            MPROC_OK);
  std::map<int64_t, int> per;
  for (size_t i = 0; i < 20; i++)
    per[item_i64(r, i)]++;
  EXPECT_GE(per.size(), 10u);
  for (auto &kv : per)
    EXPECT_LE(kv.second, 2) << kv.first;
  mproc_async_result_free(r);
}

// ---- dying workers ----------------------------------------------------------

namespace {
void expect_still_serves(mproc_pool *p) {
  Inputs in(200);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, "pool_square", in.b.data(), 200, 3, &r),
            MPROC_OK);
  for (size_t i = 0; i < 200; i++)
    ASSERT_EQ(item_i64(r, i), (int64_t)(i * i));
  mproc_async_result_free(r);
}
} // namespace

TEST(PoolDeath, AbortExitAndSelfKillFailOnlyThatTask) {
  Pool pool(2);
  for (const char *task : {"pool_abort", "pool_exit", "pool_kill_self"}) {
    double t0 = test_now();
    int rc = 0;
    apply_i64(pool.p, task, 1, &rc);
    EXPECT_EQ(rc, MPROC_EWORKER) << task;
    EXPECT_LT(test_now() - t0, 20.0) << task;
    expect_still_serves(pool.p);
  }
}

TEST(PoolDeath, DeathAmongManyTasksFailsOneChunkOnly) {
  Pool pool(2);
  // 300 quick tasks with a crash in the middle: only the crashing one fails.
  std::vector<mproc_async_result *> rs;
  for (int64_t i = 0; i < 300; i++) {
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_apply_async(pool.p, i == 150 ? "pool_abort"
                                                      : "pool_square",
                                     &i, sizeof i, nullptr, &r),
              MPROC_OK);
    rs.push_back(r);
  }
  for (int64_t i = 0; i < 300; i++) {
    int64_t v = -1;
    size_t n = 0;
    int g = mproc_async_result_get(rs[(size_t)i], &v, sizeof v, &n, 60);
    if (i == 150) {
      EXPECT_EQ(g, MPROC_EWORKER);
    } else {
      // Finished tasks of the dead worker's batch whose results it had not
      // sent yet survive it (issue 8, item 14): every other task completes.
      EXPECT_EQ(g, MPROC_OK) << i;
      EXPECT_EQ(v, i * i);
    }
    mproc_async_result_free(rs[(size_t)i]);
  }
  expect_still_serves(pool.p);
}

TEST(PoolDeath, WorkerKilledFromOutside) {
  InitObjects objs; // freed after the pool
  Args a;
  mproc_pool_options o{};
  ASSERT_NO_FATAL_FAILURE(init_objects_options(objs, 2, &a, &o));
  Pool pool(2, &o);
  // A worker blocks in a long task that first tells its pid.
  int64_t ms = 60000;
  mproc_async_result *blocker = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_pid_then_sleep", &ms,
                                   sizeof ms, nullptr, &blocker),
            MPROC_OK);
  int64_t blocked_pid = next_pid(objs.q);
  mproc_process *kids[16];
  size_t nk = 0;
  ASSERT_EQ(mproc_active_children(kids, 16, &nk), MPROC_OK);
  mproc_process *victim = nullptr;
  for (size_t i = 0; i < nk && i < 16; i++) {
    int64_t pid = 0;
    mproc_process_pid(kids[i], &pid);
    if (!victim && pid == blocked_pid)
      victim = kids[i];
    else
      mproc_process_free(kids[i]);
  }
  ASSERT_NE(victim, nullptr);
  double t0 = test_now();
  ASSERT_EQ(mproc_process_kill(victim), MPROC_OK);
  mproc_process_free(victim);
  int64_t v = 0;
  size_t n = 0;
  EXPECT_EQ(mproc_async_result_get(blocker, &v, sizeof v, &n, 30),
            MPROC_EWORKER);
  double dt = test_now() - t0;
  EXPECT_LT(dt, 10.0);
  std::printf("worker death to task error: %.1f ms\n", dt * 1e3);
  mproc_async_result_free(blocker);
  expect_still_serves(pool.p);
}

// ---- close / terminate / join -------------------------------------------------

TEST(PoolLifecycle, CloseFinishesQueuedTasksThenJoins) {
  mproc_pool *p = nullptr;
  mproc_pool_options o{};
  o.processes = 2;
  ASSERT_EQ(mproc_pool_create(&p, &o), MPROC_OK);
  EXPECT_EQ(mproc_pool_processes(p), 2);
  EXPECT_EQ(mproc_pool_join(p, 1), MPROC_ESTATE);
  Inputs in(500);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_async(p, "pool_square", in.b.data(), 500, 1, nullptr,
                                 &r),
            MPROC_OK);
  EXPECT_EQ(mproc_pool_close(p), MPROC_OK);
  mproc_async_result *r2 = nullptr;
  int64_t x = 1;
  EXPECT_EQ(mproc_pool_apply_async(p, "pool_square", &x, sizeof x, nullptr, &r2),
            MPROC_ECLOSED);
  EXPECT_EQ(mproc_pool_join(p, 60), MPROC_OK);
  EXPECT_EQ(mproc_async_result_ready(r), 1);
  for (size_t i = 0; i < 500; i++)
    ASSERT_EQ(item_i64(r, i), (int64_t)(i * i));
  mproc_pool_free(p);
  // The result outlives the pool.
  EXPECT_EQ(item_i64(r, 499), 499 * 499);
  mproc_async_result_free(r);
  size_t nk = 99;
  ASSERT_EQ(mproc_active_children(nullptr, 0, &nk), MPROC_OK);
  EXPECT_EQ(nk, 0u);
}

TEST(PoolLifecycle, TerminateWithTasksInFlight) {
  mproc_pool *p = nullptr;
  mproc_pool_options o{};
  o.processes = 2;
  ASSERT_EQ(mproc_pool_create(&p, &o), MPROC_OK);
  std::vector<int64_t> ms(10, 20000);
  std::vector<mproc_bytes> b(ms.size());
  for (size_t i = 0; i < ms.size(); i++)
    b[i] = mproc_bytes{&ms[i], sizeof(int64_t)};
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_async(p, "pool_sleep_ms", b.data(), b.size(), 1,
                                 nullptr, &r),
            MPROC_OK);
  test_sleep_ms(100); // likely in flight by then; queued ones end alike
  double t0 = test_now();
  EXPECT_EQ(mproc_pool_terminate(p), MPROC_OK);
  EXPECT_EQ(mproc_pool_join(p, 30), MPROC_OK);
  EXPECT_LT(test_now() - t0, 10.0);
  EXPECT_EQ(mproc_async_result_wait(r, 5), MPROC_OK);
  for (size_t i = 0; i < b.size(); i++) {
    int st = 0;
    item_i64(r, i, &st);
    EXPECT_EQ(st, MPROC_ECLOSED);
  }
  mproc_async_result_free(r);
  mproc_pool_free(p);
  size_t nk = 99;
  ASSERT_EQ(mproc_active_children(nullptr, 0, &nk), MPROC_OK);
  EXPECT_EQ(nk, 0u);
}

TEST(PoolLifecycle, FreeWithoutCloseTerminates) {
  mproc_pool *p = nullptr;
  mproc_pool_options o{};
  o.processes = 2;
  ASSERT_EQ(mproc_pool_create(&p, &o), MPROC_OK);
  int64_t ms = 20000;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(p, "pool_sleep_ms", &ms, sizeof ms, nullptr,
                                   &r),
            MPROC_OK);
  double t0 = test_now();
  mproc_pool_free(p);
  EXPECT_LT(test_now() - t0, 10.0);
  EXPECT_EQ(mproc_async_result_get(r, nullptr, 0, nullptr, 5), MPROC_ECLOSED);
  mproc_async_result_free(r);
}

namespace {
// Whether a process still runs (a zombie counts as ended).
bool pid_running(int64_t pid) {
#ifdef _WIN32
  HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  if (!h)
    return false;
  DWORD code = 0;
  BOOL ok = GetExitCodeProcess(h, &code);
  CloseHandle(h);
  return ok && code == STILL_ACTIVE;
#else
  if (kill((pid_t)pid, 0) != 0)
    return false;
  std::string st;
  FILE *f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f)
    return true;
  char buf[512] = {0};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  st.assign(buf, n);
  size_t rp = st.rfind(')');
  return !(rp != std::string::npos && rp + 2 < st.size() &&
           (st[rp + 2] == 'Z' || st[rp + 2] == 'X'));
#endif
}

// Starts `entry`, a program with a pool of two workers (not a daemon: the
// test ends it as a program ends), and reads the two worker pids it sends
// on the handle in its arg 0 into `pids`.
mproc_process *start_pool_main(const char *entry, std::string *pids) {
  mproc_process_options o{};
  o.daemon = MPROC_DAEMON_NO;
  TestPipe tp;
  Args a;
  a.h(tp.w);
  mproc_process *p = test_start(entry, a, &o);
  tp.close_w();
  *pids = test_read_n(tp.r, 2 * sizeof(int64_t));
  return p;
}

// Each worker pid start_pool_main() read ends (its program ended).
void expect_workers_gone(const std::string &pids) {
  for (int k = 0; k < 2; k++) {
    int64_t pid = 0;
    memcpy(&pid, pids.data() + k * sizeof pid, sizeof pid);
    // Not our child: nothing to wait on but its state, for up to 30 s.
    bool gone = test_wait_for([&] { return !pid_running(pid); });
    EXPECT_TRUE(gone) << "worker " << pid << " outlived its program";
  }
}
} // namespace

// A pool left running when the program exits: the exit handler terminates
// it, and no worker outlives the program.  Sends its workers' pids on the
// handle in arg 0.
namespace {
// A program's pool of two workers, for the entries below, and the handle
// in arg 0 on which it reports their pids.
struct PoolOfTwo {
  mproc_pool *p = nullptr;
  mproc_handle_t h = MPROC_INVALID_HANDLE;
  mproc_process *kids[8];
  size_t nk = 0;
  // 0, or the entry's exit code for the step that failed.
  int start(const mproc_args *args) {
    mproc_pool_options o{};
    o.processes = 2;
    if (mproc_arg_handle(args, 0, &h) != MPROC_OK)
      return 4;
    if (mproc_pool_create(&p, &o) != MPROC_OK)
      return 2;
    if (mproc_active_children(kids, 8, &nk) != MPROC_OK || nk != 2)
      return 5;
    return 0;
  }
  // Writes each worker's pid on h, frees the process objects, closes h.
  void send_worker_pids() {
    for (size_t i = 0; i < nk; i++) {
      int64_t pid = 0;
      mproc_process_pid(kids[i], &pid);
      test_write_all(h, &pid, sizeof pid);
      mproc_process_free(kids[i]);
    }
    test_close_handle(h);
  }
};
} // namespace

TEST_ENTRY(pool_leaky_main) {
  PoolOfTwo pool;
  if (int rc = pool.start(args))
    return rc;
  pool.send_worker_pids();
  int64_t ms = 60000;
  mproc_async_result *r = nullptr;
  if (mproc_pool_apply_async(pool.p, "pool_sleep_ms", &ms, sizeof ms, nullptr,
                             &r) != MPROC_OK)
    return 3;
  test_sleep_ms(100); // likely running by then; the verdict holds either way
  std::exit(0);       // neither close nor terminate
}

TEST(PoolLifecycle, ExitWithoutCleanupLeavesNoWorkers) {
  double t0 = test_now();
  std::string pids;
  mproc_process *p = start_pool_main("pool_leaky_main", &pids);
  EXPECT_EQ(test_join_code(p, 60), 0);
  EXPECT_LT(test_now() - t0, 20.0);
  mproc_process_free(p);
  ASSERT_EQ(pids.size(), 2 * sizeof(int64_t));
  expect_workers_gone(pids);
}

// ---- bad input ------------------------------------------------------------------

TEST(PoolBadInput, Errors) {
  mproc_pool *p = nullptr;
  mproc_pool_options o{};
  o.processes = -1;
  EXPECT_EQ(mproc_pool_create(nullptr, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_EINVAL);
  o.processes = 1;
  o.start_method = (mproc_start_method)77;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_EINVAL);
  Pool pool(1);
  mproc_async_result *r = nullptr;
  int64_t x = 3;
  EXPECT_EQ(mproc_pool_apply_async(pool.p, "no_such_task", &x, sizeof x, nullptr,
                                   &r),
            MPROC_ENOENTRY);
  EXPECT_EQ(mproc_pool_apply_async(pool.p, MPROC_POOL_WORKER_ENTRY, &x, sizeof x,
                                   nullptr, &r),
            MPROC_ENOENTRY);
  EXPECT_EQ(mproc_pool_apply_async(nullptr, "pool_square", &x, sizeof x,
                                   nullptr, &r),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_apply_async(pool.p, "pool_square", nullptr, 8, nullptr,
                                   &r),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_map(pool.p, "pool_square", nullptr, 3, 1, &r),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_join(pool.p, 0), MPROC_ESTATE);
  EXPECT_EQ(mproc_pool_join(nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_imap_next(nullptr, nullptr, nullptr, nullptr, 0),
            MPROC_EINVAL);
  // An empty result.
  size_t n = 9;
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_empty", nullptr, 0, nullptr, 0, &n),
            MPROC_OK);
  EXPECT_EQ(n, 0u);
  // Result too small for the caller's buffer.
  int64_t out = 0;
  n = 0;
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_square", &x, sizeof x, &out, 4, &n),
            MPROC_ERANGE);
  EXPECT_EQ(n, sizeof(int64_t));
  // Task helpers outside a pool task.
  Args a;
  const void *d = nullptr;
  EXPECT_EQ(mproc_task_input(a, &d, &n), MPROC_ESTATE);
  EXPECT_EQ(mproc_task_result(a, "x", 1), MPROC_ESTATE);
  EXPECT_EQ(mproc_pool_close(pool.p), MPROC_OK);
  EXPECT_EQ(mproc_pool_apply_async(pool.p, "pool_square", &x, sizeof x, nullptr,
                                   &r),
            MPROC_ECLOSED);
  EXPECT_EQ(mproc_pool_join(pool.p, 30), MPROC_OK);
  EXPECT_EQ(mproc_pool_free(nullptr), nullptr);
  EXPECT_EQ(mproc_async_result_free(nullptr), nullptr);
}

// A task entry started as a plain process: the task helpers refuse.
TEST(PoolBadInput, TaskEntryAsProcess) {
  mproc_process *p = test_start("pool_square");
  EXPECT_EQ(test_join_code(p), 99);
  mproc_process_free(p);
}

// More workers than one WaitForMultipleObjects call takes (64): the handler
// waits on 140 handles plus its wake-up pipe.
TEST(PoolWorkers, SeventyWorkers) {
  mproc_pool_options o{};
  o.processes = 70;
  Pool pool(70, &o);
  EXPECT_EQ(mproc_pool_processes(pool.p), 70);
  Inputs in(700);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_square", in.b.data(), 700, 1, &r),
            MPROC_OK);
  for (size_t i = 0; i < 700; i++)
    ASSERT_EQ(item_i64(r, i), (int64_t)(i * i));
  mproc_async_result_free(r);
  // A death among them is still noticed.
  int rc = 0;
  apply_i64(pool.p, "pool_kill_self", 0, &rc);
  EXPECT_EQ(rc, MPROC_EWORKER);
  expect_still_serves(pool.p);
}

// ---- a pool used outside its creator (issue 8, item 11) -------------------------

namespace {
mproc_pool *g_inherited_pool = nullptr;
mproc_async_result *g_inherited_result = nullptr;
mproc_imap *g_inherited_imap = nullptr;
} // namespace

// Runs in a fork child: every call on the parent's pool, results and
// iterators is MPROC_EPERM at once (the child has no handler thread: a call
// that waited would wait forever); free releases only the child's copy.
// Returns the number of the first check that failed, 0 if all passed.
TEST_ENTRY(pool_use_inherited) {
  mproc_pool *p = g_inherited_pool;
  mproc_async_result *r = nullptr;
  mproc_imap *it = nullptr;
  Inputs in(4);
  int64_t x = 3, out = 0;
  size_t n = 0;
  const void *d = nullptr;
  if (mproc_pool_apply(p, "pool_square", &x, sizeof x, &out, sizeof out, &n) !=
      MPROC_EPERM)
    return 10;
  if (mproc_pool_apply_async(p, "pool_square", &x, sizeof x, nullptr, &r) !=
      MPROC_EPERM)
    return 11;
  if (mproc_pool_map(p, "pool_square", in.b.data(), 4, 1, &r) != MPROC_EPERM)
    return 12;
  if (mproc_pool_map_async(p, "pool_square", in.b.data(), 4, 1, nullptr, &r) !=
      MPROC_EPERM)
    return 13;
  if (mproc_pool_imap(p, "pool_square", in.b.data(), 4, 1, &it) != MPROC_EPERM)
    return 14;
  if (mproc_pool_imap_unordered(p, "pool_square", in.b.data(), 4, 1, &it) !=
      MPROC_EPERM)
    return 15;
  if (mproc_imap_next(g_inherited_imap, &d, &n, nullptr, 0) != MPROC_EPERM)
    return 16;
  if (mproc_async_result_wait(g_inherited_result, 0) != MPROC_EPERM)
    return 17;
  if (mproc_async_result_get(g_inherited_result, &out, sizeof out, &n, 0) !=
      MPROC_EPERM)
    return 18;
  if (mproc_async_result_ready(g_inherited_result) != MPROC_EPERM)
    return 19;
  if (mproc_async_result_successful(g_inherited_result) != MPROC_EPERM)
    return 20;
  if (mproc_async_result_item(g_inherited_result, 0, &d, &n) != MPROC_EPERM)
    return 21;
  if (mproc_pool_close(p) != MPROC_EPERM)
    return 22;
  if (mproc_pool_terminate(p) != MPROC_EPERM)
    return 23;
  if (mproc_pool_join(p, 0) != MPROC_EPERM)
    return 24;
  if (mproc_imap_free(g_inherited_imap) != nullptr ||
      mproc_async_result_free(g_inherited_result) != nullptr ||
      mproc_pool_free(p) != nullptr)
    return 25;
  return 0;
}

TEST(PoolFork, InheritedPoolIsRefusedInAForkChild) {
  if (test_on_windows())
    GTEST_SKIP() << "no fork: a spawned child cannot inherit a pool";
  Pool pool(2);
  const void *d = nullptr;
  size_t n = 0;
  Inputs in(8);
  ASSERT_EQ(mproc_pool_imap(pool.p, "pool_square", in.b.data(), 8, 1,
                            &g_inherited_imap),
            MPROC_OK);
  for (size_t i = 0; i < 4; i++)
    EXPECT_EQ(mproc_imap_next(g_inherited_imap, &d, &n, nullptr, 30), MPROC_OK);
  // A result still pending in the parent when the child starts (on a very
  // slow machine perhaps not; the child's checks hold either way).
  int64_t ms = 1000;
  ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_sleep_ms", &ms, sizeof ms,
                                   nullptr, &g_inherited_result),
            MPROC_OK);
  g_inherited_pool = pool.p;
  // Fork explicitly: the spawn lane starts children with exec otherwise.
  mproc_process_options o{};
  o.start_method = MPROC_START_FORK;
  double t0 = test_now();
  mproc_process *child = test_start("pool_use_inherited", nullptr, &o);
  if (mproc_process_join(child, 20) == MPROC_ETIMEDOUT)
    mproc_process_kill(child);
  EXPECT_EQ(test_join_code(child), 0);
  EXPECT_LT(test_now() - t0, 30.0);
  mproc_process_free(child);
  // The child's free touched neither the workers nor the parent's pool.
  for (size_t i = 4; i < 8; i++)
    EXPECT_EQ(mproc_imap_next(g_inherited_imap, &d, &n, nullptr, 30), MPROC_OK);
  mproc_imap_free(g_inherited_imap);
  EXPECT_EQ(mproc_async_result_get(g_inherited_result, nullptr, 0, nullptr, 30),
            MPROC_ERANGE);
  mproc_async_result_free(g_inherited_result);
  expect_still_serves(pool.p);
  g_inherited_pool = nullptr;
}

// ---- apply keeps a result that does not fit (issue 8, item 17) ------------------

// Result: 16 bytes, {how many tasks this worker ran, including this one; pid}.
TEST_ENTRY(pool_count_runs) {
  static int64_t runs = 0;
  int64_t v[2] = {++runs, test_getpid()};
  return mproc_task_result(args, v, sizeof v) == MPROC_OK ? 0 : 99;
}

TEST(PoolApply, TooSmallBufferKeepsTheResultForTheNextCall) {
  Pool pool(1);
  int64_t x = 1, v[2] = {0, 0};
  size_t n = 0;
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_count_runs", &x, sizeof x, v, 4, &n),
            MPROC_ERANGE);
  EXPECT_EQ(n, sizeof v);
  // The same call with room gets the kept result: the task did not run again.
  n = 0;
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_count_runs", &x, sizeof x, v,
                             sizeof v, &n),
            MPROC_OK);
  EXPECT_EQ(n, sizeof v);
  EXPECT_EQ(v[0], 1);
  // Kept once: the next call runs the task.
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_count_runs", &x, sizeof x, v,
                             sizeof v, &n),
            MPROC_OK);
  EXPECT_EQ(v[0], 2);
  // A different call drops a kept result and runs its own task.
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_count_runs", &x, sizeof x, nullptr, 0,
                             &n),
            MPROC_ERANGE);
  x = 2;
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_count_runs", &x, sizeof x, v,
                             sizeof v, &n),
            MPROC_OK);
  EXPECT_EQ(v[0], 4);
}

// A call that still cannot take the result (out NULL: a task run for its
// side effects) runs the task every time instead of being answered from the
// kept result (review finding: 4 calls ran the task once).
TEST(PoolApply, RepeatedCallsWithoutRoomRunTheTaskEachTime) {
  Pool pool(1);
  int64_t x = 1, v[2] = {0, 0};
  size_t n = 0;
  for (int i = 0; i < 4; i++) {
    EXPECT_EQ(mproc_pool_apply(pool.p, "pool_count_runs", &x, sizeof x,
                               nullptr, 0, &n),
              MPROC_ERANGE);
    EXPECT_EQ(n, sizeof v);
  }
  // The last one is kept for a retry with room: that one does not run.
  EXPECT_EQ(mproc_pool_apply(pool.p, "pool_count_runs", &x, sizeof x, v,
                             sizeof v, &n),
            MPROC_OK);
  EXPECT_EQ(v[0], 4);
}

// ---- replacement workers killed before they are ready (issue 8, item 4) ---------
// ---- and IPC objects in initargs (issue 8, item 17) ----------------------------

namespace {
// Kill this process's child with that pid (a pool worker); false if none.
// A worker can report its pid before the pool's start() of it has returned
// and listed it (its start needs a reply the child does not wait for: the
// forkserver's pid record), so look again for a while before giving up.
bool kill_child(int64_t pid) {
  double deadline = test_now() + 30;
  for (int round = 0; round < 100000 && test_now() < deadline; round++) {
    mproc_process *kids[64];
    size_t nk = 0;
    bool found = false;
    if (mproc_active_children(kids, 64, &nk) != MPROC_OK)
      return false;
    for (size_t i = 0; i < nk && i < 64; i++) {
      int64_t p = 0;
      mproc_process_pid(kids[i], &p);
      if (p == pid && mproc_process_kill(kids[i]) == MPROC_OK)
        found = true;
      mproc_process_free(kids[i]);
    }
    if (found)
      return true;
    test_sleep_ms(1);
  }
  return false;
}

int64_t next_pid(mproc_queue *q) {
  int64_t pid = -1;
  size_t n = 0;
  EXPECT_EQ(mproc_queue_get(q, &pid, sizeof pid, &n, 60), MPROC_OK);
  return pid;
}
} // namespace

// Initializer: a queue (positional 0) and an event (1) from initargs.  Puts
// the worker's pid on the queue, then waits at the gate (the event).
TEST_ENTRY(pool_init_gated) {
  void *q = nullptr, *ev = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_QUEUE, &q) != MPROC_OK ||
      mproc_arg_object(args, 1, MPROC_OBJ_EVENT, &ev) != MPROC_OK)
    return 1;
  int64_t pid = test_getpid();
  if (mproc_queue_put((mproc_queue *)q, &pid, sizeof pid, 30) != MPROC_OK)
    return 2;
  return mproc_event_wait((mproc_event *)ev, 120) == MPROC_OK ? 0 : 3;
}

namespace {
// Initargs of the gated initializers: a queue for the workers' pids and an
// event, the gate, open at first; o is ready for Pool(processes, &o), which
// must be declared after this (and so freed before it).
struct GatedInit {
  TestQueue q;
  TestEvent gate{true};
  Args a;
  mproc_pool_options o{};
  GatedInit(int processes, const char *initializer) {
    EXPECT_EQ(mproc_args_add_object(a.a, nullptr, q.q), MPROC_OK);
    EXPECT_EQ(mproc_args_add_object(a.a, nullptr, gate.e), MPROC_OK);
    o.processes = processes;
    o.initializer = initializer;
    o.initargs = a;
  }
};
} // namespace

TEST(PoolDeath, ReplacementsKilledBeforeReadyDoNotBreakThePool) {
  GatedInit init(2, "pool_init_gated");
  mproc_queue *q = init.q;
  mproc_event *gate = init.gate;
  {
    Pool pool(2, &init.o);
    ASSERT_NE(pool.p, nullptr);
    int64_t first = next_pid(q);
    next_pid(q);
    // Close the gate, then kill a ready worker and, one after the other,
    // five of its replacements while they wait in their initializer.
    ASSERT_EQ(mproc_event_clear(gate), MPROC_OK);
    ASSERT_TRUE(kill_child(first));
    for (int k = 0; k < 5; k++) {
      int64_t pid = next_pid(q);
      ASSERT_GT(pid, 0);
      ASSERT_TRUE(kill_child(pid)) << k;
    }
    // The kills stop: the next replacement gets ready and the pool serves.
    ASSERT_EQ(mproc_event_set(gate), MPROC_OK);
    expect_still_serves(pool.p);
  }
}

namespace {
mproc_lock *g_init_lock = nullptr;
mproc_queue *g_init_queue = nullptr;
} // namespace

// Initializer: keeps the lock (positional 0) and queue (1) it was given.
TEST_ENTRY(pool_init_objects) {
  void *l = nullptr, *q = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_LOCK, &l) != MPROC_OK ||
      mproc_arg_object(args, 1, MPROC_OBJ_QUEUE, &q) != MPROC_OK)
    return 1;
  g_init_lock = (mproc_lock *)l;
  g_init_queue = (mproc_queue *)q;
  return 0;
}

// Task: under the initializer's lock, puts its input on its queue.
TEST_ENTRY(pool_locked_put) {
  int64_t x = in_i64(args);
  if (!g_init_lock || !g_init_queue)
    return 5;
  if (mproc_lock_acquire(g_init_lock, 30) != MPROC_OK)
    return 6;
  int rc = mproc_queue_put(g_init_queue, &x, sizeof x, 30);
  mproc_lock_release(g_init_lock);
  return rc == MPROC_OK ? out_i64(args, x) : 7;
}

// Task: puts its worker's pid on the initializer's queue, then sleeps
// input ms.
TEST_ENTRY(pool_pid_then_sleep) {
  int64_t pid = test_getpid();
  if (!g_init_queue ||
      mproc_queue_put(g_init_queue, &pid, sizeof pid, 30) != MPROC_OK)
    return 5;
  test_sleep_ms((int)in_i64(args));
  return out_i64(args, in_i64(args));
}

// Python's Pool(initializer=f, initargs=(lock, queue)): every worker gets
// the objects, replacement workers too (maxtasksperchild 1 replaces each
// worker after every task).
TEST(PoolWorkers, InitargsCarryIpcObjectsToEveryWorker) {
  InitObjects objs;
  mproc_queue *q = objs.q;
  {
    Args a;
    mproc_pool_options o{};
    ASSERT_NO_FATAL_FAILURE(init_objects_options(objs, 2, &a, &o));
    o.maxtasksperchild = 1;
    Pool pool(2, &o);
    ASSERT_NE(pool.p, nullptr);
    Inputs in(6);
    mproc_async_result *r = nullptr;
    EXPECT_EQ(mproc_pool_map(pool.p, "pool_locked_put", in.b.data(), 6, 1, &r),
              MPROC_OK);
    mproc_async_result_free(r);
    std::set<int64_t> got;
    for (int i = 0; i < 6; i++)
      got.insert(next_pid(q));
    EXPECT_EQ(got.size(), 6u);
  }
}

// Initializer: a queue (positional 0) and an event (1).  Puts the worker's
// pid on the queue; fails (a real start failure) while the event is clear.
TEST_ENTRY(pool_init_fail_unless) {
  void *q = nullptr, *ev = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_QUEUE, &q) != MPROC_OK ||
      mproc_arg_object(args, 1, MPROC_OBJ_EVENT, &ev) != MPROC_OK)
    return 1;
  int64_t pid = test_getpid();
  (void)mproc_queue_put((mproc_queue *)q, &pid, sizeof pid, 0);
  return mproc_event_is_set((mproc_event *)ev) == 1 ? 0 : 3;
}

// A replacement whose initializer fails is a real start failure: with no
// worker left the pool reports MPROC_ESPAWN, but keeps trying (with
// back-off) and serves again once workers start.
TEST(PoolWorkers, FailingReplacementsReportEspawnThenRecover) {
  GatedInit init(1, "pool_init_fail_unless");
  mproc_queue *q = init.q;
  mproc_event *gate = init.gate;
  {
    Pool pool(1, &init.o);
    ASSERT_NE(pool.p, nullptr);
    int64_t first = next_pid(q);
    ASSERT_EQ(mproc_event_clear(gate), MPROC_OK);
    int rc = 0;
    apply_i64(pool.p, "pool_kill_self", 0, &rc);
    EXPECT_EQ(rc, MPROC_EWORKER);
    EXPECT_NE(next_pid(q), first); // a replacement ran its initializer
    EXPECT_EQ(apply_i64(pool.p, "pool_square", 3, &rc), -1);
    EXPECT_EQ(rc, MPROC_ESPAWN);
    ASSERT_EQ(mproc_event_set(gate), MPROC_OK);
    // The next attempt (at most a back-off of a second away) succeeds.
    double t0 = test_now();
    do {
      if (rc == MPROC_ESPAWN)
        test_sleep_ms(20);
      rc = 0;
      apply_i64(pool.p, "pool_square", 3, &rc);
    } while (rc == MPROC_ESPAWN && test_now() - t0 < 30);
    EXPECT_EQ(rc, MPROC_OK);
    expect_still_serves(pool.p);
  }
}

// ---- one casualty per worker death (issue 8, item 14) ----------------------------

// Squares its input, but aborts the worker for input 13.
TEST_ENTRY(pool_abort_at_13) {
  int64_t x = in_i64(args);
  if (x == 13)
    test_crash();
  return out_i64(args, x * x);
}

namespace {
// The results of a map of pool_abort_at_13 over 0..n-1: every item its
// square, but item 13, lost with its worker.  `what` names the case.
void expect_squares_but_13(mproc_async_result *r, size_t n,
                           const std::string &what) {
  for (size_t i = 0; i < n; i++) {
    int st = 0;
    int64_t v = item_i64(r, i, &st);
    if (i == 13) {
      EXPECT_EQ(st, MPROC_EWORKER);
    } else {
      EXPECT_EQ(st, MPROC_OK) << what << " item " << i;
      EXPECT_EQ(v, (int64_t)(i * i)) << i;
    }
  }
}

void expect_one_casualty(size_t chunksize) {
  Pool pool(2);
  const size_t n = 60;
  Inputs in(n);
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_map(pool.p, "pool_abort_at_13", in.b.data(), n,
                           chunksize, &r),
            MPROC_EWORKER);
  expect_squares_but_13(r, n, "chunksize " + std::to_string(chunksize));
  mproc_async_result_free(r);
  expect_still_serves(pool.p);
}
} // namespace

// Finished results of the dead worker's batch, not yet sent, survive it.
TEST(PoolDeath, OnlyTheDyingTaskFailsChunksize1) { expect_one_casualty(1); }

// The rest of the dying task's chunk is run by another worker.
TEST(PoolDeath, OnlyTheDyingTaskFailsChunksize4) { expect_one_casualty(4); }

// 100 KiB of (input & 0xff) bytes; aborts the worker for input 13.
TEST_ENTRY(pool_big_abort_at_13) {
  int64_t x = in_i64(args);
  if (x == 13)
    test_crash();
  std::string s(100 << 10, (char)(x & 0xff));
  return mproc_task_result(args, s.data(), s.size()) == MPROC_OK ? 0 : 99;
}

// Results too large to stay in a worker's result area are sent early, at a
// chunk boundary: still only the dying task fails.
TEST(PoolDeath, OnlyTheDyingTaskFailsWithLargeResults) {
  Pool pool(2);
  const size_t n = 30;
  Inputs in(n);
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_map(pool.p, "pool_big_abort_at_13", in.b.data(), n, 1,
                           &r),
            MPROC_EWORKER);
  for (size_t i = 0; i < n; i++) {
    const void *d = nullptr;
    size_t len = 0;
    int st = mproc_async_result_item(r, i, &d, &len);
    if (i == 13) {
      EXPECT_EQ(st, MPROC_EWORKER);
      continue;
    }
    ASSERT_EQ(st, MPROC_OK) << i;
    ASSERT_EQ(len, (size_t)(100 << 10)) << i;
    EXPECT_EQ(((const unsigned char *)d)[len - 1], (unsigned char)i) << i;
  }
  mproc_async_result_free(r);
  expect_still_serves(pool.p);
}

// ---- chunks in one piece (issue 14, item 2) -------------------------------------
// A chunk's inputs of one size travel as one block (one copy when they lie
// side by side), its results as runs stored in one piece: these check the
// other forms and every way back to the per-item one.

// Every item of a finished pool_echo map is its input, byte for byte.
static void expect_echoed(mproc_async_result *r,
                          const std::vector<mproc_bytes> &b) {
  for (size_t i = 0; i < b.size(); i++) {
    const void *d = nullptr;
    size_t len = 0;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), MPROC_OK) << i;
    ASSERT_EQ(len, b[i].len) << i;
    if (len) {
      EXPECT_EQ(memcmp(d, b[i].data, len), 0) << i;
    }
  }
}

TEST(PoolMap, InputsOfMixedSizesScatteredOrSideBySide) {
  Pool pool(2);
  const size_t n = 300;
  std::vector<int64_t> v(n);
  std::vector<std::string> s(n);
  std::vector<mproc_bytes> b(n);
  for (size_t i = 0; i < n; i++) {
    v[i] = (int64_t)(i * 7 + 1);
    if (i < 100) // one size, in reverse order in memory: gathered
      b[i] = mproc_bytes{&v[99 - i], sizeof(int64_t)};
    else if (i < 200) // one size, side by side: one copy per chunk
      b[i] = mproc_bytes{&v[i], sizeof(int64_t)};
    else { // sizes that differ (some empty): a length per input
      s[i] = std::string(i % 5 == 0 ? 0 : i % 37, (char)('a' + i % 26));
      b[i] = mproc_bytes{s[i].data(), s[i].size()};
    }
  }
  for (int async = 0; async < 2; async++) {
    mproc_async_result *r = nullptr;
    if (async) {
      ASSERT_EQ(mproc_pool_map_async(pool.p, "pool_echo", b.data(), n, 25,
                                     nullptr, &r),
                MPROC_OK);
      ASSERT_EQ(mproc_async_result_wait(r, 60), MPROC_OK);
    } else {
      ASSERT_EQ(mproc_pool_map(pool.p, "pool_echo", b.data(), n, 25, &r),
                MPROC_OK);
    }
    EXPECT_NO_FATAL_FAILURE(expect_echoed(r, b)) << "async " << async;
    mproc_async_result_free(r);
  }
}

// A chunk of inputs side by side is checked by a short loop
// (src/pool.c: mproc__scan_contig) that leaves to the general one at the
// first input out of line: each way out must still send every input as it
// is, and a bad input after a run of good ones is still refused.
TEST(PoolMap, SideBySideInputsWithOneOutOfLine) {
  Pool pool(2);
  const size_t n = 200, cs = 20;
  std::vector<int64_t> v(n), other(n);
  std::vector<mproc_bytes> b(n);
  for (size_t i = 0; i < n; i++) {
    v[i] = (int64_t)(i * 3 + 5);
    other[i] = -(int64_t)i;
    b[i] = mproc_bytes{&v[i], sizeof(int64_t)};
  }
  b[cs - 1].data = &other[cs - 1];         // the last of chunk 0 elsewhere
  b[cs].data = &other[cs];                 // the first of chunk 1
  b[2 * cs + 7].len = 4;                   // a shorter one inside chunk 2
  b[3 * cs + 5] = mproc_bytes{nullptr, 0}; // an empty one in chunk 3
  b[4 * cs + 3].data = &v[4 * cs + 2];     // one that overlaps its neighbour
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_echo", b.data(), n, cs, &r), MPROC_OK);
  EXPECT_NO_FATAL_FAILURE(expect_echoed(r, b));
  mproc_async_result_free(r);
  b[n - 1].data = nullptr; // after 19 good ones of its chunk
  r = nullptr;
  EXPECT_EQ(mproc_pool_map(pool.p, "pool_echo", b.data(), n, cs, &r),
            MPROC_EINVAL);
  EXPECT_EQ(r, nullptr);
}

TEST(PoolMap, TasksWithoutResults) {
  Pool pool(2);
  Inputs in(500);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_empty", in.b.data(), 500, 50, &r),
            MPROC_OK);
  for (size_t i = 0; i < 500; i++) {
    const void *d = nullptr;
    size_t len = 99;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), MPROC_OK) << i;
    EXPECT_EQ(len, 0u) << i;
  }
  EXPECT_EQ(mproc_async_result_successful(r), 1);
  mproc_async_result_free(r);
}

// A job's results are stored in blocks sized for the rest of the job at the
// size of the results coming in (src/pool.c: mproc__job_block): a map of
// many small results fills one large block (page-aligned, in large pages
// where the OS gives them); results that grow past the guess get new
// blocks.  Every result must come back whole either way.
TEST(PoolMap, ResultsInBlocksSizedForTheRestOfTheJob) {
  Pool pool(2);
  const size_t n = 200000; // 1.6 MB of results: one block of the large kind
  Inputs in(n);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_square", in.b.data(), n, 1000, &r),
            MPROC_OK);
  for (size_t i = 0; i < n; i++)
    ASSERT_EQ(item_i64(r, i), (int64_t)i * (int64_t)i) << i;
  mproc_async_result_free(r);
  // 8-byte results first, then 40 KB ones: the guess made from the first
  // is far too small, and the later ones take blocks of several MB.
  std::vector<std::string> s;
  for (size_t i = 0; i < 300; i++)
    s.push_back(std::string(i < 150 ? 8 : 40000 + i, (char)('a' + i % 26)));
  std::vector<mproc_bytes> b(s.size());
  for (size_t i = 0; i < s.size(); i++)
    b[i] = mproc_bytes{s[i].data(), s[i].size()};
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_echo", b.data(), b.size(), 10, &r),
            MPROC_OK);
  for (size_t i = 0; i < s.size(); i++) {
    const void *d = nullptr;
    size_t len = 0;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), MPROC_OK) << i;
    ASSERT_EQ(std::string((const char *)d, len), s[i]) << i;
  }
  mproc_async_result_free(r);
}

// A freed job's large result block stays with the pool for the next job's
// results (src/pool.c: MPROC__BLK_KEEP): each map's results are its own,
// whatever the kept memory held before, whether the block was kept, taken
// by a smaller map, or busy with a result still alive; a result freed
// after its pool leaves the block to the pool's end.
TEST(PoolMap, NextMapsStoreResultsInTheBlockOfTheLast) {
  Pool pool(2);
  // 1.2-1.6 MB of results each: blocks of the large kind.
  const size_t sizes[] = {200000, 150000, 200000, 200000};
  mproc_async_result *kept = nullptr;
  for (int round = 0; round < 4; round++) {
    const size_t n = sizes[round];
    Inputs in(n);
    for (size_t i = 0; i < n; i++)
      in.v[i] = (int64_t)(i * 4 + (size_t)round);
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_map(pool.p, "pool_echo", in.b.data(), n, 1000, &r),
              MPROC_OK);
    for (size_t i = 0; i < n; i++)
      ASSERT_EQ(item_i64(r, i), in.v[i]) << "round " << round << " item " << i;
    if (round == 1)
      kept = r; // round 2 finds no block kept
    else
      mproc_async_result_free(r);
    if (round == 2) { // round 1's results, untouched by round 2's
      for (size_t i = 0; i < sizes[1]; i++)
        ASSERT_EQ(item_i64(kept, i), (int64_t)(i * 4 + 1)) << i;
      kept = mproc_async_result_free(kept);
    }
  }
  mproc_pool_options o{};
  o.processes = 1;
  mproc_pool *p = nullptr;
  ASSERT_EQ(mproc_pool_create(&p, &o), MPROC_OK);
  Inputs in(150000);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, "pool_echo", in.b.data(), 150000, 1000, &r),
            MPROC_OK);
  mproc_pool_free(p);
  EXPECT_EQ(item_i64(r, 149999), 149999);
  mproc_async_result_free(r);
}

// A ready result's items are read without the pool's lock (src/pool.c:
// `settled`): several threads reading every item of a finished map, while
// the handler settles another map under that lock, each see every result.
TEST(PoolMap, ReadyResultsReadFromThreadsWhileThePoolWorks) {
  Pool pool(2);
  const size_t n = 20000;
  Inputs in(n);
  for (size_t i = 0; i < n; i++)
    in.v[i] = (int64_t)(i * 5 + 3);
  mproc_async_result *r = nullptr, *busy = nullptr;
  ASSERT_EQ(mproc_pool_map(pool.p, "pool_echo", in.b.data(), n, 100, &r),
            MPROC_OK);
  Inputs more(200000);
  ASSERT_EQ(mproc_pool_map_async(pool.p, "pool_square", more.b.data(), 200000,
                                 100, nullptr, &busy),
            MPROC_OK);
  std::vector<std::thread> readers;
  std::vector<size_t> wrong(4, 0);
  for (size_t t = 0; t < 4; t++)
    readers.emplace_back([&, t] {
      for (int pass = 0; pass < 5; pass++)
        for (size_t i = 0; i < n; i++)
          if (item_i64(r, i) != in.v[i])
            wrong[t]++;
    });
  for (auto &th : readers)
    th.join();
  for (size_t t = 0; t < 4; t++)
    EXPECT_EQ(wrong[t], 0u) << "thread " << t;
  ASSERT_EQ(mproc_async_result_wait(busy, 60), MPROC_OK);
  EXPECT_EQ(item_i64(busy, 199999), (int64_t)199999 * 199999);
  mproc_async_result_free(busy);
  mproc_async_result_free(r);
}

TEST(PoolImap, ChunkedYieldsInInputOrder) {
  Pool pool(2);
  Inputs in(1000);
  mproc_imap *it = nullptr;
  ASSERT_EQ(mproc_pool_imap(pool.p, "pool_square", in.b.data(), 1000, 50, &it),
            MPROC_OK);
  for (size_t i = 0; i < 1000; i++) {
    const void *d = nullptr;
    size_t n = 0, idx = 0;
    ASSERT_EQ(mproc_imap_next(it, &d, &n, &idx, 30), MPROC_OK);
    ASSERT_EQ(idx, i);
    int64_t v;
    ASSERT_EQ(n, sizeof v);
    memcpy(&v, d, sizeof v);
    EXPECT_EQ(v, (int64_t)(i * i));
  }
  EXPECT_EQ(mproc_imap_next(it, nullptr, nullptr, nullptr, 1), MPROC_EEOF);
  mproc_imap_free(it);
}

// No result for any input; fails with 7 for inputs 4, 9, ...; aborts the
// worker for input 13.
TEST_ENTRY(pool_empty_abort_at_13) {
  int64_t x = in_i64(args);
  if (x == 13)
    test_crash();
  return x % 5 == 4 ? 7 : 0;
}

namespace {
// A map (blocking, or async: its inputs copied) of pool_abort_at_13 in
// chunks of 25: the dead worker's finished results of the chunk (one run
// in its result area, cut where it died) survive, item 13 fails, and the
// rest of the chunk is run again elsewhere.
void expect_one_casualty_in_a_long_chunk(bool async) {
  Pool pool(2);
  const size_t n = 60;
  Inputs in(n);
  mproc_async_result *r = nullptr;
  if (async) {
    ASSERT_EQ(mproc_pool_map_async(pool.p, "pool_abort_at_13", in.b.data(), n,
                                   25, nullptr, &r),
              MPROC_OK);
    ASSERT_EQ(mproc_async_result_wait(r, 60), MPROC_OK);
  } else {
    EXPECT_EQ(mproc_pool_map(pool.p, "pool_abort_at_13", in.b.data(), n, 25,
                             &r),
              MPROC_EWORKER);
  }
  expect_squares_but_13(r, n, "async " + std::to_string(async));
  mproc_async_result_free(r);
  expect_still_serves(pool.p);
}
} // namespace

TEST(PoolDeath, OnlyTheDyingTaskFailsChunksize25) {
  expect_one_casualty_in_a_long_chunk(false);
}

TEST(PoolDeath, OnlyTheDyingTaskFailsInAnAsyncMap) {
  expect_one_casualty_in_a_long_chunk(true);
}

// Runs without results (counted item by item in the result area) and
// failures before the death keep their status.
TEST(PoolDeath, TasksWithoutResultsBeforeADeathKeepTheirStatus) {
  Pool pool(2);
  const size_t n = 60;
  Inputs in(n);
  mproc_async_result *r = nullptr;
  EXPECT_NE(mproc_pool_map(pool.p, "pool_empty_abort_at_13", in.b.data(), n,
                           30, &r),
            MPROC_OK);
  for (size_t i = 0; i < n; i++) {
    const void *d = nullptr;
    size_t len = 99;
    int st = mproc_async_result_item(r, i, &d, &len);
    if (i == 13) {
      EXPECT_EQ(st, MPROC_EWORKER);
    } else {
      EXPECT_EQ(st, i % 5 == 4 ? 7 : MPROC_OK) << i;
    }
    if (st == MPROC_OK) {
      EXPECT_EQ(len, 0u) << i;
    }
  }
  mproc_async_result_free(r);
  expect_still_serves(pool.p);
}

// ---- task timeouts, progress, Ctrl-C (issue 12) -----------------------------

// Runs forever (a hung task): only a kill ends it.
TEST_ENTRY(pool_hang) {
  for (;;)
    test_sleep_ms(1000);
  return 0;
}

// Squares its input, but hangs for a negative one.
TEST_ENTRY(pool_square_or_hang) {
  int64_t x = in_i64(args);
  while (x < 0)
    test_sleep_ms(1000);
  return out_i64(args, x * x);
}

static mproc_semaphore *g_gate;

// Initializer: keeps the semaphore (positional 0) that pool_gated waits on.
TEST_ENTRY(pool_init_gate) {
  void *s = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_SEMAPHORE, &s) != MPROC_OK)
    return 1;
  g_gate = (mproc_semaphore *)s;
  return 0;
}

// Waits for one release of the gate, then returns its input.
TEST_ENTRY(pool_gated) {
  if (!g_gate || mproc_semaphore_acquire(g_gate, 60) != MPROC_OK)
    return 5;
  return out_i64(args, in_i64(args));
}

// A hung task is failed with MPROC_ETIMEDOUT at its timeout, its worker is
// replaced, and the tasks around it (an untimed map on the other worker,
// and tasks submitted after it) complete with their results.
TEST(PoolTimeout, HungTaskIsKilledAtItsTimeoutOthersComplete) {
  Pool pool(2);
  ASSERT_NE(pool.p, nullptr);
  mproc_async_options o{};
  o.timeout = 0.3;
  int64_t x = 0;
  double t0 = test_now();
  mproc_async_result *hung = nullptr, *m = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_hang", &x, sizeof x, &o,
                                   &hung),
            MPROC_OK);
  Inputs in(200);
  ASSERT_EQ(mproc_pool_map_async(pool.p, "pool_square", in.b.data(), 200, 10,
                                 nullptr, &m),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_get(hung, nullptr, 0, nullptr, 60),
            MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_async_result_ready(hung), 1); // ready: not a wait timeout
  EXPECT_LT(test_now() - t0, 30.0);
  EXPECT_EQ(mproc_async_result_wait(m, 60), MPROC_OK);
  for (size_t i = 0; i < 200; i++)
    EXPECT_EQ(item_i64(m, i), (int64_t)(i * i)) << i;
  mproc_async_result_free(m);
  mproc_async_result_free(hung);
  // The pool still has two workers that serve (a replacement among them).
  int rc = 0;
  for (int k = 0; k < 4; k++)
    EXPECT_EQ(apply_i64(pool.p, "pool_square", 9, &rc), 81);
  EXPECT_EQ(rc, MPROC_OK);
}

// In a map with chunks, the hung items fail with MPROC_ETIMEDOUT and only
// they: the items of their chunks that had finished keep their results,
// those that had not run go to other workers.  The pool's task_timeout
// applies to the blocking map.
TEST(PoolTimeout, HungItemsOfAChunkedMapFailAloneWithPoolTimeout) {
  mproc_pool_options po{};
  po.processes = 2;
  po.task_timeout = 5; // a square never takes that long, even on a loaded machine
  Pool pool(2, &po);
  ASSERT_NE(pool.p, nullptr);
  const size_t n = 24;
  Inputs in(n);
  in.v[5] = -1;  // second item of chunk 1 (items 4..7)
  in.v[14] = -1; // third item of chunk 3 (items 12..15)
  mproc_async_result *r = nullptr;
  double t0 = test_now();
  EXPECT_EQ(mproc_pool_map(pool.p, "pool_square_or_hang", in.b.data(), n, 4,
                           &r),
            MPROC_ETIMEDOUT);
  EXPECT_LT(test_now() - t0, 60.0);
  for (size_t i = 0; i < n; i++) {
    int st = 0;
    int64_t v = item_i64(r, i, &st);
    if (i == 5 || i == 14) {
      EXPECT_EQ(st, MPROC_ETIMEDOUT) << i;
    } else {
      EXPECT_EQ(st, MPROC_OK) << i;
      EXPECT_EQ(v, (int64_t)(i * i)) << i;
    }
  }
  mproc_async_result_free(r);
  // An infinite per-submission timeout overrides the pool's.
  mproc_async_options o{};
  o.timeout = std::numeric_limits<double>::infinity();
  ASSERT_EQ(mproc_pool_map_async(pool.p, "pool_square", in.b.data(), 4, 1, &o,
                                 &r),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_wait(r, 60), MPROC_OK);
  mproc_async_result_free(r);
}

// The done count rises one by one to N: each task waits for one release
// of a semaphore the test makes, so exactly k can have finished after k
// releases (no timing involved).
TEST(PoolProgress, DoneCountRisesToN) {
  mproc_semaphore *gate = nullptr;
  ASSERT_EQ(mproc_semaphore_create(&gate, 0, 0), MPROC_OK);
  {
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, gate), MPROC_OK);
    mproc_pool_options o{};
    o.processes = 2;
    o.initializer = "pool_init_gate";
    o.initargs = a;
    Pool pool(2, &o);
    ASSERT_NE(pool.p, nullptr);
    const size_t n = 6;
    Inputs in(n);
    mproc_async_result *r = nullptr;
    mproc_imap *it = nullptr;
    size_t done = 99;
    ASSERT_EQ(mproc_pool_map_async(pool.p, "pool_gated", in.b.data(), n, 1,
                                   nullptr, &r),
              MPROC_OK);
    EXPECT_EQ(mproc_async_result_done_count(r, &done), MPROC_OK);
    EXPECT_EQ(done, 0u);
    for (size_t k = 1; k <= n; k++) {
      ASSERT_EQ(mproc_semaphore_release(gate), MPROC_OK);
      EXPECT_TRUE(test_wait_for([&] {
        return mproc_async_result_done_count(r, &done) == MPROC_OK &&
               done >= k;
      })) << k;
      EXPECT_EQ(done, k);
    }
    EXPECT_EQ(mproc_async_result_wait(r, 60), MPROC_OK);
    EXPECT_EQ(mproc_async_result_successful(r), 1);
    mproc_async_result_free(r);
    // imap: the same count through the iterator.
    ASSERT_EQ(mproc_pool_imap(pool.p, "pool_gated", in.b.data(), 2, 1, &it),
              MPROC_OK);
    EXPECT_EQ(mproc_imap_done_count(it, &done), MPROC_OK);
    EXPECT_EQ(done, 0u);
    ASSERT_EQ(mproc_semaphore_release(gate), MPROC_OK);
    ASSERT_EQ(mproc_semaphore_release(gate), MPROC_OK);
    EXPECT_TRUE(test_wait_for([&] {
      return mproc_imap_done_count(it, &done) == MPROC_OK && done == 2;
    }));
    mproc_imap_free(it);
  }
  mproc_semaphore_free(gate);
}

TEST(PoolBadInput, TimeoutsAndDoneCount) {
  mproc_pool *p = nullptr;
  mproc_pool_options po{};
  po.processes = 1;
  po.task_timeout = -1;
  EXPECT_EQ(mproc_pool_create(&p, &po), MPROC_EINVAL);
  po.task_timeout = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(mproc_pool_create(&p, &po), MPROC_EINVAL);
  EXPECT_EQ(p, nullptr);
  Pool pool(1);
  ASSERT_NE(pool.p, nullptr);
  int64_t x = 3;
  mproc_async_result *r = nullptr;
  Inputs in(2);
  mproc_async_options o{};
  o.timeout = -0.5;
  EXPECT_EQ(mproc_pool_apply_async(pool.p, "pool_square", &x, sizeof x, &o, &r),
            MPROC_EINVAL);
  o.timeout = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(mproc_pool_map_async(pool.p, "pool_square", in.b.data(), 2, 1, &o,
                                 &r),
            MPROC_EINVAL);
  EXPECT_EQ(r, nullptr);
  size_t n = 0;
  EXPECT_EQ(mproc_async_result_done_count(nullptr, &n), MPROC_EINVAL);
  EXPECT_EQ(mproc_imap_done_count(nullptr, &n), MPROC_EINVAL);
  ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_square", &x, sizeof x,
                                   nullptr, &r),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_done_count(r, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_async_result_wait(r, 60), MPROC_OK);
  EXPECT_EQ(mproc_async_result_done_count(r, &n), MPROC_OK);
  EXPECT_EQ(n, 1u);
  mproc_async_result_free(r);
}

// A program with a pool whose workers are busy (hung tasks), waiting for
// the result: sends its workers' pids on the handle in arg 0 and waits
// until SIGINT ends it.
TEST_ENTRY(pool_sigint_main) {
  PoolOfTwo pool;
  if (int rc = pool.start(args))
    return rc;
  Inputs in(2);
  mproc_async_result *r = nullptr;
  if (mproc_pool_map_async(pool.p, "pool_hang", in.b.data(), 2, 1, nullptr,
                           &r) != MPROC_OK)
    return 3;
  pool.send_worker_pids();
  (void)mproc_async_result_wait(r, MPROC_FOREVER); // until SIGINT
  return 6;
}

// Ctrl-C of a program with a busy pool (SIGINT to the program alone, its
// default action): the program ends at once, without a hang, and no worker
// outlives it.
TEST(PoolLifecycle, SigintToTheParentLeavesNoWorkers) {
  std::string pids;
  mproc_process *p = start_pool_main("pool_sigint_main", &pids);
  ASSERT_EQ(pids.size(), 2 * sizeof(int64_t));
  double t0 = test_now();
  EXPECT_EQ(mproc_process_interrupt(p), MPROC_OK);
  EXPECT_EQ(test_join_code(p, 60), -2);
  EXPECT_LT(test_now() - t0, 30.0);
  mproc_process_free(p);
  expect_workers_gone(pids);
}

// ---- end reports of lost tasks (issue 12) -----------------------------------

// Returns its worker's pid, but ends the worker with exit code 3 for
// input 3.
TEST_ENTRY(pool_pid_or_exit3) {
  if (in_i64(args) == 3) {
    g_lsan_off = 1;
    std::fflush(nullptr);
    std::exit(3);
  }
  return out_i64(args, test_getpid());
}

namespace {
std::string end_text(const mproc_end_info &e) {
  char buf[128];
  int n = mproc_end_describe(&e, buf, sizeof buf);
  return n < 0 ? std::string("?") : std::string(buf);
}

// The end report of worker `pid`, which killed itself (pool_kill_self).
void expect_killed_itself(const mproc_end_info &e, int64_t pid) {
  EXPECT_EQ(e.pid, pid);
#ifdef _WIN32
  EXPECT_EQ(end_text(e), "exited with code 9");
#else
  EXPECT_EQ(e.kind, MPROC_END_SIGNAL);
  EXPECT_EQ(e.code, 9);
  EXPECT_EQ(end_text(e), "killed by signal 9 (SIGKILL)");
#endif
}
} // namespace

// A task that ends its worker (exit code 3) fails with MPROC_EWORKER and
// its report names that worker (the one that ran the task before it: one
// worker, in order) and the exit code; tasks that succeeded have none.
TEST(PoolDeath, LostTaskReportNamesTheWorkerAndItsExitCode) {
  Pool pool(1);
  Inputs in(6);
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_map(pool.p, "pool_pid_or_exit3", in.b.data(), 6, 1,
                           &r),
            MPROC_EWORKER);
  ASSERT_NE(r, nullptr);
  int st = 0;
  int64_t pid = item_i64(r, 2, &st);
  ASSERT_EQ(st, MPROC_OK);
  EXPECT_EQ(mproc_async_result_item(r, 3, nullptr, nullptr), MPROC_EWORKER);
  const void *d = &st;
  size_t n = 1;
  EXPECT_EQ(mproc_async_result_item(r, 3, &d, &n), MPROC_EWORKER);
  EXPECT_EQ(d, nullptr); // the report is not handed out as result bytes
  EXPECT_EQ(n, 0u);
  mproc_end_info e{};
  ASSERT_EQ(mproc_async_result_item_end(r, 3, &e), MPROC_OK);
  EXPECT_EQ(e.pid, pid);
  EXPECT_EQ(e.kind, MPROC_END_EXIT);
  EXPECT_EQ(e.code, 3);
  EXPECT_EQ(end_text(e), "exited with code 3");
  mproc_end_info first{};
  ASSERT_EQ(mproc_async_result_end(r, &first), MPROC_OK); // item 3's
  EXPECT_EQ(first.pid, pid);
  EXPECT_EQ(first.code, 3);
  for (size_t i : {0, 1, 2, 4, 5}) {
    int64_t got = item_i64(r, i, &st);
    EXPECT_EQ(st, MPROC_OK) << i; // finished before the death: kept
    if (i < 3) {
      EXPECT_EQ(got, pid) << i; // the worker that died ran it
    }
    EXPECT_EQ(mproc_async_result_item_end(r, i, &e), MPROC_ENOTFOUND) << i;
  }
  EXPECT_EQ(mproc_async_result_item_end(r, 6, &e), MPROC_EINVAL);
  EXPECT_EQ(mproc_async_result_item_end(r, 0, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_async_result_end(nullptr, &e), MPROC_EINVAL);
  mproc_async_result_free(r);
  // A task's own failure status is no worker's end.
  int64_t one = 1;
  mproc_async_result *f = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_fail_odd", &one, sizeof one,
                                   nullptr, &f),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_get(f, nullptr, 0, nullptr, 60), 7);
  EXPECT_EQ(mproc_async_result_end(f, &e), MPROC_ENOTFOUND);
  mproc_async_result_free(f);
}

// Results a worker sent before it died are read before its death is
// settled: only the task it was running fails.  Windows once lost them
// (the zero-timeout read of the dead worker's pipe could give up while
// the bytes were there), failing tasks that had finished with
// MPROC_EWORKER.  Several rounds, as that lost only now and then.
TEST(PoolDeath, ResultsSentBeforeTheDeathAreKept) {
  Pool pool(1);
  Inputs in(6);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int round = 0;
       round < 12 && std::chrono::steady_clock::now() < until; round++) {
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_map(pool.p, "pool_pid_or_exit3", in.b.data(), 6, 1,
                             &r),
              MPROC_EWORKER);
    for (size_t i = 0; i < 6; i++) {
      int st = 0;
      (void)item_i64(r, i, &st);
      EXPECT_EQ(st, i == 3 ? MPROC_EWORKER : MPROC_OK)
          << "item " << i << " round " << round;
    }
    mproc_async_result_free(r);
  }
}

// A worker killed by a signal inside a task: the apply_async result says
// which worker and which signal (Windows: the task ends its process with
// TerminateProcess(9), an exit code).
TEST(PoolDeath, LostTaskReportSaysKilledBySignal) {
  Pool pool(1);
  int rc = 0;
  int64_t pid = apply_i64(pool.p, "pool_getpid", 0, &rc);
  ASSERT_EQ(rc, MPROC_OK);
  int64_t x = 0;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_kill_self", &x, sizeof x,
                                   nullptr, &r),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_get(r, nullptr, 0, nullptr, 60), MPROC_EWORKER);
  mproc_end_info e{};
  ASSERT_EQ(mproc_async_result_end(r, &e), MPROC_OK);
  expect_killed_itself(e, pid);
  mproc_async_result_free(r);
}

// A task killed at its timeout: the report names its worker and the kill
// by the pool.
TEST(PoolTimeout, TimedOutTaskReportSaysThePoolKilledItsWorker) {
  Pool pool(1);
  int rc = 0;
  int64_t pid = apply_i64(pool.p, "pool_getpid", 0, &rc);
  ASSERT_EQ(rc, MPROC_OK);
  mproc_async_options o{};
  o.timeout = 0.2;
  int64_t x = 0;
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_apply_async(pool.p, "pool_hang", &x, sizeof x, &o, &r),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_get(r, nullptr, 0, nullptr, 60),
            MPROC_ETIMEDOUT);
  mproc_end_info e{};
  ASSERT_EQ(mproc_async_result_item_end(r, 0, &e), MPROC_OK);
  EXPECT_EQ(e.pid, pid);
#ifdef _WIN32
  EXPECT_EQ(end_text(e), "terminated by mproc_process_kill() (as signal 9, "
                         "SIGKILL)");
#else
  EXPECT_EQ(end_text(e), "killed by signal 9 (SIGKILL)");
#endif
  mproc_async_result_free(r);
}

// An imap task whose worker dies: the iterator hands out the same report
// as an async result does (which worker, which signal).
TEST(PoolDeath, ImapLostTaskReportNamesTheWorkerAndTheSignal) {
  Pool pool(1);
  int rc = 0;
  int64_t pid = apply_i64(pool.p, "pool_getpid", 0, &rc);
  ASSERT_EQ(rc, MPROC_OK);
  for (int unordered = 0; unordered < 2; unordered++) {
    SCOPED_TRACE(unordered);
    Inputs in(1);
    mproc_imap *it = nullptr;
    ASSERT_EQ(unordered ? mproc_pool_imap_unordered(pool.p, "pool_kill_self",
                                                    in.b.data(), 1, 1, &it)
                        : mproc_pool_imap(pool.p, "pool_kill_self",
                                          in.b.data(), 1, 1, &it),
              MPROC_OK);
    size_t index = 99;
    EXPECT_EQ(mproc_imap_next(it, nullptr, nullptr, &index, 60), MPROC_EWORKER);
    ASSERT_EQ(index, 0u);
    mproc_end_info e{};
    ASSERT_EQ(mproc_imap_item_end(it, index, &e), MPROC_OK);
    expect_killed_itself(e, pid);
    EXPECT_EQ(mproc_imap_item_end(it, 1, &e), MPROC_EINVAL);
    EXPECT_EQ(mproc_imap_item_end(it, 0, nullptr), MPROC_EINVAL);
    EXPECT_EQ(mproc_imap_item_end(nullptr, 0, &e), MPROC_EINVAL);
    mproc_imap_free(it);
    // The replacement worker runs the next job: a success has no report.
    pid = apply_i64(pool.p, "pool_getpid", 0, &rc);
    ASSERT_EQ(rc, MPROC_OK);
    ASSERT_EQ(mproc_pool_imap(pool.p, "pool_getpid", in.b.data(), 1, 1, &it),
              MPROC_OK);
    EXPECT_EQ(mproc_imap_next(it, nullptr, nullptr, &index, 60), MPROC_OK);
    EXPECT_EQ(mproc_imap_item_end(it, 0, &e), MPROC_ENOTFOUND);
    mproc_imap_free(it);
  }
}
