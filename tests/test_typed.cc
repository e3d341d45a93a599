// The typed helpers (mproc/typed.h): object argument getters (positional
// and keyword, every kind, wrong kind, missing, NULLs), typed int64 /
// double / string messages on queues and pipes (round trips in and across
// processes, the exact wire bytes, a get of the wrong type, a buffer too
// small), typed pool inputs and results, and mproc_sleep (its bounds, and
// on POSIX that a signal does not cut it short).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#ifndef _WIN32
#include <pthread.h>
#include <signal.h>
#endif

#include "test_util.h"

namespace {

// One pointer of every IPC object kind (a lock and an RLock), in the
// order AllObjects::add_to passes them: positional 0..9.
struct Kinds {
  mproc_queue *q = nullptr;
  mproc_conn *c1 = nullptr;
  mproc_lock *lk = nullptr, *rlk = nullptr;
  mproc_semaphore *sem = nullptr;
  mproc_event *ev = nullptr;
  mproc_condition *cond = nullptr;
  mproc_barrier *bar = nullptr;
  mproc_shm *shm = nullptr;
  mproc_array *arr = nullptr;
};

// Every IPC object kind, made once, for the getter tests.
struct AllObjects : Kinds {
  mproc_conn *c2 = nullptr;
  AllObjects() {
    EXPECT_EQ(mproc_queue_create(&q, nullptr), MPROC_OK);
    EXPECT_EQ(mproc_pipe(&c1, &c2, 1), MPROC_OK);
    EXPECT_EQ(mproc_lock_create(&lk, 0), MPROC_OK);
    EXPECT_EQ(mproc_lock_create(&rlk, 1), MPROC_OK);
    EXPECT_EQ(mproc_semaphore_create(&sem, 1, 0), MPROC_OK);
    EXPECT_EQ(mproc_event_create(&ev), MPROC_OK);
    EXPECT_EQ(mproc_condition_create(&cond, nullptr), MPROC_OK);
    EXPECT_EQ(mproc_barrier_create(&bar, 2), MPROC_OK);
    EXPECT_EQ(mproc_shm_create(&shm, nullptr, 64), MPROC_OK);
    EXPECT_EQ(mproc_array_create(&arr, MPROC_INT64, 4, 0), MPROC_OK);
  }
  ~AllObjects() {
    mproc_array_free(arr);
    mproc_shm_free(shm);
    mproc_barrier_free(bar);
    mproc_condition_free(cond);
    mproc_event_free(ev);
    mproc_semaphore_free(sem);
    mproc_lock_free(rlk);
    mproc_lock_free(lk);
    mproc_conn_free(c2);
    mproc_conn_free(c1);
    mproc_queue_free(q);
  }
  // Positional 0..10 in this order, and the same objects under keywords.
  void add_to(Args &a) {
    const void *objs[] = {q, c1, lk, rlk, sem, ev, cond, bar, shm, arr};
    const char *keys[] = {"q",  "c",    "lk",  "rlk", "sem",
                          "ev", "cond", "bar", "shm", "arr"};
    for (size_t i = 0; i < 10; i++)
      EXPECT_EQ(mproc_args_add_object(a.a, nullptr, objs[i]), MPROC_OK);
    for (size_t i = 0; i < 10; i++)
      EXPECT_EQ(mproc_args_add_object(a.a, keys[i], objs[i]), MPROC_OK);
    a.i(7);           // positional 10: not an object
    a.i(8, "number"); // keyword: not an object
  }
};

// The child's side of TypedArgs.ChildGetsEveryKind: every getter by
// position and by keyword must give an object of the kind that works.
TEST_ENTRY(typed_child_objects) {
  Kinds k;
  mproc_queue *kq = nullptr;
  if (mproc_arg_queue(args, 0, &k.q) || mproc_arg_conn(args, 1, &k.c1) ||
      mproc_arg_lock(args, 2, &k.lk) || mproc_arg_lock(args, 3, &k.rlk) ||
      mproc_arg_semaphore(args, 4, &k.sem) || mproc_arg_event(args, 5, &k.ev) ||
      mproc_arg_condition(args, 6, &k.cond) ||
      mproc_arg_barrier(args, 7, &k.bar) || mproc_arg_shm(args, 8, &k.shm) ||
      mproc_arg_array(args, 9, &k.arr))
    return 10;
  if (mproc_kwarg_queue(args, "q", &kq) || !kq)
    return 11;
  if (mproc_arg_queue(args, 1, &kq) != MPROC_ETYPE || kq)
    return 12;
  if (mproc_lock_acquire(k.lk, 5) || mproc_lock_release(k.lk))
    return 13;
  if (mproc_semaphore_acquire(k.sem, 5) || mproc_semaphore_release(k.sem))
    return 14;
  static_cast<unsigned char *>(mproc_shm_ptr(k.shm))[0] = 42;
  static_cast<int64_t *>(mproc_array_ptr(k.arr))[1] = 43;
  if (mproc_conn_send_str(k.c1, "from child") || mproc_event_set(k.ev))
    return 15;
  return mproc_queue_put_int64(k.q, 44, 30) ? 16 : 0;
}

TEST(TypedArgs, EveryKindPositionalAndKeyword) {
  AllObjects o;
  Args a;
  o.add_to(a);
  Kinds g; // what the getters give
  EXPECT_EQ(mproc_arg_queue(a, 0, &g.q), MPROC_OK);
  EXPECT_EQ(g.q, o.q);
  EXPECT_EQ(mproc_arg_conn(a, 1, &g.c1), MPROC_OK);
  EXPECT_EQ(g.c1, o.c1);
  EXPECT_EQ(mproc_arg_lock(a, 2, &g.lk), MPROC_OK);
  EXPECT_EQ(g.lk, o.lk);
  EXPECT_EQ(mproc_arg_lock(a, 3, &g.lk), MPROC_OK); // an RLock is a lock
  EXPECT_EQ(g.lk, o.rlk);
  EXPECT_EQ(mproc_arg_semaphore(a, 4, &g.sem), MPROC_OK);
  EXPECT_EQ(g.sem, o.sem);
  EXPECT_EQ(mproc_arg_event(a, 5, &g.ev), MPROC_OK);
  EXPECT_EQ(g.ev, o.ev);
  EXPECT_EQ(mproc_arg_condition(a, 6, &g.cond), MPROC_OK);
  EXPECT_EQ(g.cond, o.cond);
  EXPECT_EQ(mproc_arg_barrier(a, 7, &g.bar), MPROC_OK);
  EXPECT_EQ(g.bar, o.bar);
  EXPECT_EQ(mproc_arg_shm(a, 8, &g.shm), MPROC_OK);
  EXPECT_EQ(g.shm, o.shm);
  EXPECT_EQ(mproc_arg_array(a, 9, &g.arr), MPROC_OK);
  EXPECT_EQ(g.arr, o.arr);

  EXPECT_EQ(mproc_kwarg_queue(a, "q", &g.q), MPROC_OK);
  EXPECT_EQ(g.q, o.q);
  EXPECT_EQ(mproc_kwarg_conn(a, "c", &g.c1), MPROC_OK);
  EXPECT_EQ(mproc_kwarg_lock(a, "rlk", &g.lk), MPROC_OK);
  EXPECT_EQ(g.lk, o.rlk);
  EXPECT_EQ(mproc_kwarg_semaphore(a, "sem", &g.sem), MPROC_OK);
  EXPECT_EQ(mproc_kwarg_event(a, "ev", &g.ev), MPROC_OK);
  EXPECT_EQ(mproc_kwarg_condition(a, "cond", &g.cond), MPROC_OK);
  EXPECT_EQ(mproc_kwarg_barrier(a, "bar", &g.bar), MPROC_OK);
  EXPECT_EQ(mproc_kwarg_shm(a, "shm", &g.shm), MPROC_OK);
  EXPECT_EQ(mproc_kwarg_array(a, "arr", &g.arr), MPROC_OK);
  EXPECT_EQ(g.arr, o.arr);
}

TEST(TypedArgs, WrongKindMissingAndNull) {
  AllObjects o;
  Args a;
  o.add_to(a);
  mproc_queue *q = reinterpret_cast<mproc_queue *>(&o); // not left as is
  EXPECT_EQ(mproc_arg_queue(a, 1, &q), MPROC_ETYPE);    // a pipe end
  EXPECT_EQ(q, nullptr);
  mproc_event *ev = nullptr;
  EXPECT_EQ(mproc_arg_event(a, 10, &ev), MPROC_ETYPE); // an int
  EXPECT_EQ(mproc_kwarg_event(a, "number", &ev), MPROC_ETYPE);
  EXPECT_EQ(mproc_kwarg_event(a, "q", &ev), MPROC_ETYPE);
  EXPECT_EQ(mproc_arg_event(a, 11, &ev), MPROC_ENOTFOUND);
  EXPECT_EQ(mproc_kwarg_event(a, "nope", &ev), MPROC_ENOTFOUND);
  EXPECT_EQ(mproc_arg_event(nullptr, 5, &ev), MPROC_EINVAL);
  EXPECT_EQ(mproc_arg_event(a, 5, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_kwarg_event(a, nullptr, &ev), MPROC_EINVAL);
  EXPECT_EQ(mproc_kwarg_event(nullptr, "ev", &ev), MPROC_EINVAL);
  EXPECT_EQ(mproc_kwarg_event(a, "ev", nullptr), MPROC_EINVAL);
  mproc_lock *lk = nullptr;
  EXPECT_EQ(mproc_arg_lock(a, 4, &lk), MPROC_ETYPE); // a semaphore
  mproc_shm *shm = nullptr;
  EXPECT_EQ(mproc_arg_shm(a, 9, &shm), MPROC_ETYPE); // an array
}

TEST(TypedArgs, ChildGetsEveryKind) {
  AllObjects o;
  Args a;
  o.add_to(a);
  mproc_process *p = test_start("typed_child_objects", a);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  int64_t v = 0;
  EXPECT_EQ(mproc_queue_get_int64(o.q, &v, 30), MPROC_OK);
  EXPECT_EQ(v, 44);
  char buf[32];
  size_t n = 0;
  EXPECT_EQ(mproc_conn_recv_str(o.c2, buf, sizeof buf, &n, 30), MPROC_OK);
  EXPECT_STREQ(buf, "from child");
  EXPECT_EQ(n, 10u);
  EXPECT_EQ(mproc_event_is_set(o.ev), 1);
  EXPECT_EQ(static_cast<unsigned char *>(mproc_shm_ptr(o.shm))[0], 42);
  EXPECT_EQ(static_cast<int64_t *>(mproc_array_ptr(o.arr))[1], 43);
}

// ---- typed messages --------------------------------------------------------

TEST(TypedQueue, RoundTrips) {
  TestQueue q;
  const int64_t ints[] = {0, 1, -1, std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max()};
  for (int64_t v : ints)
    ASSERT_EQ(mproc_queue_put_int64(q, v, 5), MPROC_OK);
  for (int64_t v : ints) {
    int64_t got = 12345;
    ASSERT_EQ(mproc_queue_get_int64(q, &got, 5), MPROC_OK);
    EXPECT_EQ(got, v);
  }
  const double dbls[] = {0.0,
                         -0.0,
                         1.5,
                         -1e300,
                         std::numeric_limits<double>::infinity(),
                         std::numeric_limits<double>::denorm_min()};
  for (double v : dbls)
    ASSERT_EQ(mproc_queue_put_double(q, v, 5), MPROC_OK);
  for (double v : dbls) {
    double got = 7;
    ASSERT_EQ(mproc_queue_get_double(q, &got, 5), MPROC_OK);
    EXPECT_EQ(std::memcmp(&got, &v, sizeof v), 0) << v; // bit-exact, -0.0
  }
  std::string big(5000, 'x'); // past the helpers' on-stack buffers
  const std::string strs[] = {"", "hello", "caf\xc3\xa9", big};
  for (const std::string &s : strs)
    ASSERT_EQ(mproc_queue_put_str(q, s.c_str(), 5), MPROC_OK);
  for (const std::string &s : strs) {
    std::vector<char> buf(s.size() + 1, '?');
    size_t n = 99;
    ASSERT_EQ(mproc_queue_get_str(q, buf.data(), buf.size(), &n, 5), MPROC_OK);
    EXPECT_EQ(n, s.size());
    EXPECT_EQ(std::string(buf.data()), s);
  }
  EXPECT_EQ(mproc_queue_empty(q), 1);
}

// The wire format is fixed: tag, then little-endian, whatever the host.
TEST(TypedQueue, WireBytesAreTaggedLittleEndian) {
  TestQueue q;
  ASSERT_EQ(mproc_queue_put_int64(q, 0x0102030405060708LL, 5), MPROC_OK);
  ASSERT_EQ(mproc_queue_put_double(q, 1.0, 5), MPROC_OK); // 0x3ff0...
  ASSERT_EQ(mproc_queue_put_str(q, "ab", 5), MPROC_OK);
  unsigned char b[16];
  size_t n = 0;
  ASSERT_EQ(mproc_queue_get(q, b, sizeof b, &n, 5), MPROC_OK);
  const unsigned char i64[] = {0xF5, 8, 7, 6, 5, 4, 3, 2, 1};
  ASSERT_EQ(n, sizeof i64);
  EXPECT_EQ(std::memcmp(b, i64, n), 0);
  ASSERT_EQ(mproc_queue_get(q, b, sizeof b, &n, 5), MPROC_OK);
  const unsigned char one[] = {0xF6, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F};
  ASSERT_EQ(n, sizeof one);
  EXPECT_EQ(std::memcmp(b, one, n), 0);
  ASSERT_EQ(mproc_queue_get(q, b, sizeof b, &n, 5), MPROC_OK);
  const unsigned char ab[] = {0xF7, 'a', 'b', 0};
  ASSERT_EQ(n, sizeof ab);
  EXPECT_EQ(std::memcmp(b, ab, n), 0);
}

// A get of the wrong type fails with MPROC_ETYPE and takes the message,
// whatever its size; the next message is read normally.
TEST(TypedQueue, WrongTypeIsETypeAndConsumed) {
  TestQueue q;
  ASSERT_EQ(mproc_queue_put_double(q, 2.5, 5), MPROC_OK);
  std::string raw(1000, 'r');
  ASSERT_EQ(mproc_queue_put(q, raw.data(), raw.size(), 5), MPROC_OK);
  ASSERT_EQ(mproc_queue_put(q, "12345678", 8, 5), MPROC_OK);
  ASSERT_EQ(mproc_queue_put_int64(q, 5, 5), MPROC_OK);
  ASSERT_EQ(mproc_queue_put(q, "raw", 3, 5), MPROC_OK);
  int64_t v = 0;
  EXPECT_EQ(mproc_queue_get_int64(q, &v, 5), MPROC_ETYPE); // a double
  EXPECT_EQ(mproc_queue_get_int64(q, &v, 5), MPROC_ETYPE); // 1000 bytes
  EXPECT_EQ(mproc_queue_get_int64(q, &v, 5), MPROC_ETYPE); // 8 raw bytes
  EXPECT_EQ(mproc_queue_get_int64(q, &v, 5), MPROC_OK);
  EXPECT_EQ(v, 5);
  char buf[16];
  EXPECT_EQ(mproc_queue_get_str(q, buf, sizeof buf, nullptr, 5), MPROC_ETYPE);
  EXPECT_EQ(mproc_queue_empty(q), 1);
  EXPECT_EQ(mproc_queue_get_int64(q, &v, 0), MPROC_EEMPTY);
  EXPECT_EQ(mproc_queue_get_int64(nullptr, &v, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_get_int64(q, nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_put_str(q, nullptr, 0), MPROC_EINVAL);
}

// A string that does not fit: MPROC_ERANGE with the length, and the
// message stays; a buffer of exactly length + 1 is enough.
TEST(TypedQueue, StringBufferTooSmallKeepsTheMessage) {
  TestQueue q;
  ASSERT_EQ(mproc_queue_put_str(q, "hello", 5), MPROC_OK);
  char buf[8];
  size_t n = 0;
  EXPECT_EQ(mproc_queue_get_str(q, buf, 5, &n, 5), MPROC_ERANGE);
  EXPECT_EQ(n, 5u);
  EXPECT_EQ(mproc_queue_get_str(q, nullptr, 0, &n, 5), MPROC_ERANGE);
  EXPECT_EQ(n, 5u);
  std::memset(buf, '?', sizeof buf);
  EXPECT_EQ(mproc_queue_get_str(q, buf, 6, &n, 5), MPROC_OK); // exact fit
  EXPECT_STREQ(buf, "hello");
  EXPECT_EQ(buf[6], '?'); // nothing written past cap
  EXPECT_EQ(mproc_queue_empty(q), 1);
}

TEST_ENTRY(typed_child_conn) {
  mproc_conn *c = nullptr;
  int64_t v = 0;
  char buf[64];
  if (mproc_arg_conn(args, 0, &c) || mproc_conn_recv_int64(c, &v, 30))
    return 10;
  if (mproc_conn_send_double(c, (double)v / 4) ||
      mproc_conn_recv_str(c, buf, sizeof buf, nullptr, 30))
    return 11;
  std::string s = std::string(buf) + "!";
  return mproc_conn_send_str(c, s.c_str()) ? 12 : 0;
}

TEST(TypedConn, RoundTripWithAChild) {
  TestConnPair p;
  Args a;
  ASSERT_EQ(mproc_args_add_object(a.a, nullptr, p.b), MPROC_OK);
  mproc_process *proc = test_start("typed_child_conn", a);
  ASSERT_EQ(mproc_conn_send_int64(p.a, 10), MPROC_OK);
  double d = 0;
  ASSERT_EQ(mproc_conn_recv_double(p.a, &d, 30), MPROC_OK);
  EXPECT_EQ(d, 2.5);
  ASSERT_EQ(mproc_conn_send_str(p.a, "hi"), MPROC_OK);
  char buf[4]; // "hi!" and its NUL: the exact fit, across processes
  size_t n = 0;
  ASSERT_EQ(mproc_conn_recv_str(p.a, buf, sizeof buf, &n, 30), MPROC_OK);
  EXPECT_STREQ(buf, "hi!");
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
}

TEST(TypedConn, WrongTypeAndTooSmall) {
  TestConnPair p;
  ASSERT_EQ(mproc_conn_send_str(p.a, "a longer string"), MPROC_OK);
  ASSERT_EQ(mproc_conn_send_int64(p.a, 3), MPROC_OK);
  char buf[4];
  size_t n = 0;
  EXPECT_EQ(mproc_conn_recv_str(p.b, buf, sizeof buf, &n, 5), MPROC_ERANGE);
  EXPECT_EQ(n, 15u);
  double d = 0;
  EXPECT_EQ(mproc_conn_recv_double(p.b, &d, 5), MPROC_ETYPE); // the string
  char big[16]; // an int64's message fits: read, and not a string
  EXPECT_EQ(mproc_conn_recv_str(p.b, big, sizeof big, &n, 5), MPROC_ETYPE);
  EXPECT_EQ(mproc_conn_poll(p.b, 0), 0);
  EXPECT_EQ(mproc_conn_send_str(p.a, nullptr), MPROC_EINVAL);
}

// ---- typed pool --------------------------------------------------------------

TEST_ENTRY(typed_square) {
  int64_t x = 0;
  if (mproc_task_input_int64(args, &x) < 0)
    return 1;
  return mproc_task_result_int64(args, x * x) < 0 ? 2 : 0;
}

TEST_ENTRY(typed_upper) {
  const char *s = nullptr;
  if (mproc_task_input_str(args, &s) < 0)
    return 1;
  std::string u(s);
  for (char &ch : u)
    if (ch >= 'a' && ch <= 'z')
      ch = (char)(ch - 'a' + 'A');
  return mproc_task_result_str(args, u.c_str()) < 0 ? 2 : 0;
}

TEST_ENTRY(typed_half) {
  int64_t x = 0;
  int rc = mproc_task_input_int64(args, &x);
  if (rc < 0)
    return rc == MPROC_ETYPE ? 7 : 1; // 7: the input was not an int64
  return mproc_task_result_double(args, (double)x / 2) < 0 ? 2 : 0;
}

struct Pool {
  mproc_pool *p = nullptr;
  Pool() {
    mproc_pool_options o{};
    o.processes = 2;
    EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_OK);
  }
  ~Pool() { mproc_pool_free(p); }
};

TEST(TypedPool, MapInt64AndStrings) {
  Pool pool;
  ASSERT_NE(pool.p, nullptr);
  std::vector<int64_t> xs;
  for (int64_t i = -20; i < 30; i++)
    xs.push_back(i);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(
      mproc_pool_map_int64(pool.p, "typed_square", xs.data(), xs.size(), 0, &r),
      MPROC_OK);
  ASSERT_EQ(mproc_async_result_count(r), xs.size());
  for (size_t i = 0; i < xs.size(); i++) {
    int64_t v = -1;
    EXPECT_EQ(mproc_async_result_item_int64(r, i, &v), MPROC_OK);
    EXPECT_EQ(v, xs[i] * xs[i]);
  }
  double d = 0;
  EXPECT_EQ(mproc_async_result_item_double(r, 0, &d), MPROC_ETYPE);
  const char *s = nullptr;
  EXPECT_EQ(mproc_async_result_item_str(r, 0, &s), MPROC_ETYPE);
  EXPECT_EQ(s, nullptr);
  mproc_async_result_free(r);

  const char *words[] = {"alpha", "", "Mixed Case", "z"};
  ASSERT_EQ(mproc_pool_map_str(pool.p, "typed_upper", words, 4, 1, &r),
            MPROC_OK);
  const char *want[] = {"ALPHA", "", "MIXED CASE", "Z"};
  for (size_t i = 0; i < 4; i++) {
    ASSERT_EQ(mproc_async_result_item_str(r, i, &s), MPROC_OK);
    EXPECT_STREQ(s, want[i]);
  }
  mproc_async_result_free(r);

  // A string input to an int64 task: the task sees MPROC_ETYPE (status 7),
  // and a typed reader of a failed task gets the task's status.
  ASSERT_EQ(mproc_pool_map_str(pool.p, "typed_half", words, 1, 0, &r), 7);
  EXPECT_EQ(mproc_async_result_item_double(r, 0, &d), 7);
  mproc_async_result_free(r);
  const int64_t three = 3;
  ASSERT_EQ(mproc_pool_map_int64(pool.p, "typed_half", &three, 1, 0, &r),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_item_double(r, 0, &d), MPROC_OK);
  EXPECT_EQ(d, 1.5);
  mproc_async_result_free(r);

  ASSERT_EQ(mproc_pool_map_int64(pool.p, "typed_square", nullptr, 0, 0, &r),
            MPROC_OK);
  EXPECT_EQ(mproc_async_result_count(r), 0u);
  mproc_async_result_free(r);
  const char *with_null[] = {"a", nullptr};
  r = nullptr;
  EXPECT_EQ(mproc_pool_map_str(pool.p, "typed_upper", with_null, 2, 0, &r),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_pool_map_int64(pool.p, "typed_square", nullptr, 2, 0, &r),
            MPROC_EINVAL);
}

// ---- sleep ------------------------------------------------------------------

TEST(TypedSleep, SleepsAtLeastTheTime) {
  double t0 = test_now();
  EXPECT_EQ(mproc_sleep(0.05), MPROC_OK);
  double took = test_now() - t0;
  EXPECT_GE(took, 0.05);
  EXPECT_LT(took, 5.0); // generous: a loaded machine
  EXPECT_EQ(mproc_sleep(0), MPROC_OK);
  EXPECT_EQ(mproc_sleep(-1), MPROC_EINVAL);
  EXPECT_EQ(mproc_sleep(std::nan("")), MPROC_EINVAL);
}

#ifndef _WIN32
std::atomic<int> g_signals{0};
extern "C" void typed_count_signal(int) { g_signals++; }

// A signal whose handler does not ask for SA_RESTART makes nanosleep fail
// with EINTR; mproc_sleep must sleep on for the rest of the time.
TEST(TypedSleep, SignalsDoNotCutItShort) {
  struct sigaction sa {
  }, old{};
  sa.sa_handler = typed_count_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; // no SA_RESTART
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  g_signals = 0;
  std::atomic<bool> done{false};
  pthread_t self = pthread_self();
  std::thread pester([&] {
    // Signals the sleeper until it is done; each may land in the sleep.
    while (!done) {
      pthread_kill(self, SIGUSR1);
      test_sleep_ms(5);
    }
  });
  double t0 = test_now();
  EXPECT_EQ(mproc_sleep(0.2), MPROC_OK);
  double took = test_now() - t0;
  done = true;
  pester.join();
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_GE(took, 0.2);
  EXPECT_GT(g_signals.load(), 0);
}
#endif

} // namespace
