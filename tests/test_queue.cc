// Queue and JoinableQueue: Python's semantics (FIFO, Full/Empty, timeouts,
// maxsize, close, task_done/join), the byte ring's limits, and what must
// hold across processes: many producers and consumers, consumers and lock
// holders that die, and a producer that puts and exits at once.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

#ifndef _WIN32
#include <signal.h>
#endif

extern "C" {
#include "queue_ring.h"
}

namespace {

// RAII for a queue made by the test.
struct Q {
  mproc_queue *q = nullptr;
  explicit Q(size_t maxsize = 0, size_t capacity = 0, int joinable = 0) {
    mproc_queue_options o;
    std::memset(&o, 0, sizeof o);
    o.maxsize = maxsize;
    o.capacity = capacity;
    o.joinable = joinable;
    EXPECT_EQ(mproc_queue_create(&q, &o), MPROC_OK);
  }
  ~Q() { mproc_queue_free(q); }
  operator mproc_queue *() const { return q; }
};

mproc_queue *arg_queue(const mproc_args *a, size_t i) {
  void *q = nullptr;
  if (mproc_arg_object(a, i, MPROC_OBJ_QUEUE, &q) != MPROC_OK)
    return nullptr;
  return static_cast<mproc_queue *>(q);
}

// Argument list: the queues first, then integers.
struct QArgs : Args {
  QArgs(std::initializer_list<mproc_queue *> qs,
        std::initializer_list<int64_t> ints = {}) {
    for (mproc_queue *q : qs)
      EXPECT_EQ(mproc_args_add_object(a, nullptr, q), MPROC_OK);
    for (int64_t v : ints)
      i(v);
  }
};

int put_str(mproc_queue *q, const std::string &s, double timeout = 30) {
  return mproc_queue_put(q, s.data(), s.size(), timeout);
}

std::string get_str(mproc_queue *q, double timeout = 30, int *rc = nullptr) {
  std::vector<char> buf(1 << 16);
  size_t n = 0;
  int r = mproc_queue_get(q, buf.data(), buf.size(), &n, timeout);
  if (rc)
    *rc = r;
  else
    EXPECT_EQ(r, MPROC_OK) << mproc_strerror(r);
  return r == MPROC_OK ? std::string(buf.data(), n) : std::string();
}

// Deterministic payload for message `id` of `len` bytes.
void fill(unsigned char *p, size_t len, uint32_t id) {
  uint32_t x = id * 2654435761u + 1;
  for (size_t k = 0; k < len; k++) {
    x = x * 1103515245u + 12345u;
    p[k] = (unsigned char)(x >> 16);
  }
  if (len >= 4)
    std::memcpy(p, &id, 4);
}

bool check(const unsigned char *p, size_t len, uint32_t id) {
  std::vector<unsigned char> want(len);
  fill(want.data(), len, id);
  return len == 0 || std::memcmp(p, want.data(), len) == 0;
}

const char kEnd[] = "END";

} // namespace

// ---- children -------------------------------------------------------------

// q, n, size: puts n messages of `size` bytes (payload fill(id)), then END.
TEST_ENTRY(q_produce) {
  mproc_queue *q = arg_queue(args, 0);
  int64_t n = arg_int(args, 1), size = arg_int(args, 2);
  if (!q)
    return 2;
  std::vector<unsigned char> buf((size_t)size);
  for (int64_t i = 0; i < n; i++) {
    fill(buf.data(), buf.size(), (uint32_t)i);
    if (mproc_queue_put(q, buf.data(), buf.size(), 60) != MPROC_OK)
      return 3;
  }
  return mproc_queue_put(q, kEnd, 3, 60) == MPROC_OK ? 0 : 4;
}

// q, n, size: gets until END; exit 0 if exactly n in-order messages came.
TEST_ENTRY(q_consume) {
  mproc_queue *q = arg_queue(args, 0);
  int64_t n = arg_int(args, 1), size = arg_int(args, 2), got = 0;
  if (!q)
    return 2;
  std::vector<unsigned char> buf((size_t)size + 16);
  for (;;) {
    size_t len = 0;
    if (mproc_queue_get(q, buf.data(), buf.size(), &len, 60) != MPROC_OK)
      return 3;
    if (len == 3 && std::memcmp(buf.data(), kEnd, 3) == 0)
      break;
    if (len != (size_t)size || !check(buf.data(), len, (uint32_t)got))
      return 4;
    got++;
  }
  return got == n ? 0 : 5;
}

// q, producer id, n: puts n 16-byte messages {id, seq, ~id, ~seq}.
TEST_ENTRY(q_mp_produce) {
  mproc_queue *q = arg_queue(args, 0);
  uint32_t id = (uint32_t)arg_int(args, 1), n = (uint32_t)arg_int(args, 2);
  if (!q)
    return 2;
  for (uint32_t s = 0; s < n; s++) {
    uint32_t m[4] = {id, s, ~id, ~s};
    if (mproc_queue_put(q, m, sizeof m, 60) != MPROC_OK)
      return 3;
  }
  return 0;
}

// q, results: gets until an empty message; sends every (id, seq) received
// to `results` in chunks, then an empty message.
TEST_ENTRY(q_mp_consume) {
  mproc_queue *q = arg_queue(args, 0), *res = arg_queue(args, 1);
  if (!q || !res)
    return 2;
  std::vector<uint32_t> got;
  for (;;) {
    uint32_t m[4];
    size_t len = 0;
    if (mproc_queue_get(q, m, sizeof m, &len, 60) != MPROC_OK)
      return 3;
    if (len == 0)
      break;
    if (len != sizeof m || m[2] != ~m[0] || m[3] != ~m[1])
      return 4;
    got.push_back(m[0]);
    got.push_back(m[1]);
  }
  for (size_t i = 0; i < got.size(); i += 1024) {
    size_t k = got.size() - i < 1024 ? got.size() - i : 1024;
    if (mproc_queue_put(res, &got[i], k * 4, 60) != MPROC_OK)
      return 5;
  }
  return mproc_queue_put(res, nullptr, 0, 60) == MPROC_OK ? 0 : 6;
}

// q: puts 64-byte messages numbered 0, 1, 2, ... as fast as it can, until
// killed (exit 3 if a put fails).
TEST_ENTRY(q_stream_forever) {
  mproc_queue *q = arg_queue(args, 0);
  unsigned char buf[64] = {0};
  if (!q)
    return 2;
  for (uint64_t i = 0;; i++) {
    std::memcpy(buf, &i, sizeof i);
    if (mproc_queue_put(q, buf, sizeof buf, 60) != MPROC_OK)
      return 3;
  }
}

// q: gets 64-byte messages as fast as it can, until killed (exit 3 if a
// get fails, 4 if one is out of order).
TEST_ENTRY(q_drain_forever) {
  mproc_queue *q = arg_queue(args, 0);
  unsigned char buf[64];
  uint64_t want = 0, got = 0;
  size_t len = 0;
  if (!q)
    return 2;
  for (;; want++) {
    if (mproc_queue_get(q, buf, sizeof buf, &len, 60) != MPROC_OK)
      return 3;
    std::memcpy(&got, buf, sizeof got);
    if (len != sizeof buf || got != want)
      return 4;
  }
}

// q: blocks in get until killed (exit 7 if something arrives).
TEST_ENTRY(q_block_get) {
  mproc_queue *q = arg_queue(args, 0);
  char buf[64];
  size_t len;
  if (!q)
    return 2;
  return mproc_queue_get(q, buf, sizeof buf, &len, MPROC_FOREVER) == MPROC_OK
             ? 7
             : 3;
}

// q, side (0 put, 1 get), stage: dies inside the queue's critical section.
TEST_ENTRY(q_die_in_lock) {
  mproc_queue *q = arg_queue(args, 0);
  int64_t side = arg_int(args, 1), stage = arg_int(args, 2);
  if (!q)
    return 2;
  if (side == 0) {
    const char m[] = "from the dead";
    return mproc__queue_test_stop_put(q, m, sizeof m - 1, (int)stage) ==
                   MPROC_OK
               ? 0
               : 3;
  }
  char buf[64];
  size_t len = 0;
  return mproc__queue_test_stop_get(q, buf, sizeof buf, &len, (int)stage) ==
                 MPROC_OK
             ? 0
             : 3;
}

// q, side (0 put, 1 get), ready pipe (w): takes that side's lock (get:
// copies the first message out but leaves it), says "R", then holds the
// lock while it sleeps (the parent stops it with SIGSTOP where it can).
TEST_ENTRY(q_hold_lock) {
  mproc_queue *q = arg_queue(args, 0);
  mproc_handle_t ready = MPROC_INVALID_HANDLE;
  char buf[64];
  size_t len = 0;
  int rc;
  if (!q || mproc_arg_handle(args, 2, &ready) != MPROC_OK)
    return 2;
  if (arg_int(args, 1) == 0)
    rc = mproc__queue_test_stop_put(q, "held", 4, MPROC__Q_STOP_NONE);
  else
    rc = mproc__queue_test_stop_get(q, buf, sizeof buf, &len,
                                    MPROC__Q_STOP_WRITTEN);
  if (rc != MPROC_OK || !test_write_all(ready, "R", 1))
    return 3;
  test_sleep_ms(120000);
  return 4;
}

// q, kind (0 reserve, 1 borrow), ready pipe (w): takes a view (a reserve
// half filled, or a borrow of the first message), says "R", then sleeps
// holding it until the parent kills it.
TEST_ENTRY(q_hold_view) {
  mproc_queue *q = arg_queue(args, 0);
  mproc_handle_t ready = MPROC_INVALID_HANDLE;
  mproc_queue_view v;
  int rc;
  if (!q || mproc_arg_handle(args, 2, &ready) != MPROC_OK)
    return 2;
  if (arg_int(args, 1) == 0) {
    rc = mproc_queue_put_reserve(q, 64, &v, 10);
    if (rc == MPROC_OK)
      std::memcpy(v.data, "half", 4);
  } else {
    rc = mproc_queue_get_borrow(q, &v, 10);
  }
  if (rc != MPROC_OK || !test_write_all(ready, "R", 1))
    return 3;
  test_sleep_ms(120000);
  return 4;
}

// q, n, size: takes n messages of `size` bytes with borrow (checking
// fill(id) in place), then answers with n messages put by reserve.
TEST_ENTRY(q_view_echo) {
  mproc_queue *q = arg_queue(args, 0), *back = arg_queue(args, 1);
  int64_t n = arg_int(args, 2), size = arg_int(args, 3);
  mproc_queue_view v;
  if (!q || !back)
    return 2;
  for (int64_t i = 0; i < n; i++) {
    if (mproc_queue_get_borrow(q, &v, 30) != MPROC_OK ||
        v.len != (size_t)size ||
        !check((const unsigned char *)v.data, v.len, (uint32_t)i) ||
        mproc_queue_release(q, &v) != MPROC_OK)
      return 3;
    if (mproc_queue_put_reserve(back, (size_t)size, &v, 30) != MPROC_OK)
      return 4;
    fill((unsigned char *)v.data, v.len, (uint32_t)i);
    if (mproc_queue_put_commit(back, &v) != MPROC_OK)
      return 5;
  }
  return 0;
}

// q, total, size: puts `total` bytes in messages of `size`, exits at once.
TEST_ENTRY(q_put_exit) {
  mproc_queue *q = arg_queue(args, 0);
  int64_t total = arg_int(args, 1), size = arg_int(args, 2);
  if (!q)
    return 2;
  std::vector<unsigned char> buf((size_t)size);
  for (int64_t i = 0; i * size < total; i++) {
    fill(buf.data(), buf.size(), (uint32_t)i);
    if (mproc_queue_put(q, buf.data(), buf.size(), 60) != MPROC_OK)
      return 3;
  }
  return 0;
}

// q: JoinableQueue worker: gets until END, task_done for every item
// (END too); exit 0, or the step that failed.
TEST_ENTRY(q_join_worker) {
  mproc_queue *q = arg_queue(args, 0);
  if (!q)
    return 2;
  for (;;) {
    char buf[64];
    size_t len = 0;
    if (mproc_queue_get(q, buf, sizeof buf, &len, 60) != MPROC_OK)
      return 3;
    test_sleep_ms(1); // "processing"; join's verdict holds without it too
    if (mproc_queue_task_done(q) != MPROC_OK)
      return 4;
    if (len == 3 && std::memcmp(buf, kEnd, 3) == 0)
      return 0;
  }
}

// q, n: passes its queue on to a grandchild that produces n messages.
TEST_ENTRY(q_relay) {
  mproc_queue *q = arg_queue(args, 0);
  if (!q)
    return 2;
  Args a; // no gtest assertions in a child: plain calls
  if (mproc_args_add_object(a.a, nullptr, q) != MPROC_OK)
    return 5;
  a.i(arg_int(args, 1)).i(32);
  mproc_process *p = nullptr;
  if (mproc_process_create(&p, "q_produce", a, nullptr) != MPROC_OK ||
      mproc_process_start(p) != MPROC_OK)
    return 3;
  int code = -1;
  if (mproc_process_join(p, 60) != MPROC_OK ||
      mproc_process_exitcode(p, &code) != 1)
    code = 4;
  mproc_process_free(p);
  return code;
}

// q: asks for the queue as another type.
TEST_ENTRY(q_wrong_type) {
  void *o = nullptr;
  return mproc_arg_object(args, 0, MPROC_OBJ_LOCK, &o) == MPROC_ETYPE &&
                 arg_queue(args, 0) != nullptr
             ? 0
             : 1;
}

// q, ack: gets one message, closes its own handle, checks that this handle
// refuses work, then puts an ack on `ack` (the parent's handle still works).
TEST_ENTRY(q_close_child) {
  mproc_queue *q = arg_queue(args, 0), *ack = arg_queue(args, 1);
  if (!q || !ack)
    return 2;
  char buf[16];
  size_t len = 0;
  if (mproc_queue_get(q, buf, sizeof buf, &len, 60) != MPROC_OK)
    return 3;
  if (mproc_queue_close(q) != MPROC_OK)
    return 4;
  if (mproc_queue_put(q, "x", 1, 0) != MPROC_ECLOSED ||
      mproc_queue_get(q, buf, sizeof buf, &len, 0) != MPROC_ECLOSED)
    return 5;
  return mproc_queue_put(ack, buf, len, 60) == MPROC_OK ? 0 : 6;
}

// in, out: Python's tutorial worker.  Takes int64 tasks from `in` until the
// sentinel -1 and puts task * 2 + 1 for each on `out`.
TEST_ENTRY(q_tutorial_worker) {
  mproc_queue *in = arg_queue(args, 0), *out = arg_queue(args, 1);
  if (!in || !out)
    return 2;
  for (;;) {
    int64_t task = 0;
    size_t len = 0;
    if (mproc_queue_get(in, &task, sizeof task, &len, 120) != MPROC_OK ||
        len != sizeof task)
      return 3;
    if (task < 0)
      return 0;
    int64_t result = task * 2 + 1;
    if (mproc_queue_put(out, &result, sizeof result, 120) != MPROC_OK)
      return 4;
  }
}

// ---- single process -------------------------------------------------------

TEST(QueueBasics, FifoOrderWithAllSizes) {
  Q q;
  for (int i = 0; i < 200; i++)
    ASSERT_EQ(put_str(q, std::string((size_t)i, (char)('a' + i % 26)), 0),
              MPROC_OK);
  size_t n = 0;
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, 200u);
  EXPECT_EQ(mproc_queue_empty(q), 0);
  for (int i = 0; i < 200; i++)
    EXPECT_EQ(get_str(q, 0), std::string((size_t)i, (char)('a' + i % 26)));
  EXPECT_EQ(mproc_queue_empty(q), 1);
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, 0u);
}

TEST(QueueBasics, EmptyMessagesAndNullBuffers) {
  Q q;
  ASSERT_EQ(mproc_queue_put(q, nullptr, 0, 0), MPROC_OK);
  size_t len = 99;
  EXPECT_EQ(mproc_queue_get(q, nullptr, 0, &len, 0), MPROC_OK);
  EXPECT_EQ(len, 0u);
}

TEST(QueueBasics, NowaitReportsEmptyAndFull) {
  Q q(2);
  int rc;
  get_str(q, 0, &rc);
  EXPECT_EQ(rc, MPROC_EEMPTY);
  EXPECT_EQ(put_str(q, "a", 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_full(q), 0);
  EXPECT_EQ(put_str(q, "b", 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_full(q), 1);
  EXPECT_EQ(put_str(q, "c", 0), MPROC_EFULL);
  size_t n = 0;
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, 2u); // maxsize, like Python: put blocks at qsize == maxsize
  EXPECT_EQ(get_str(q, 0), "a");
  EXPECT_EQ(put_str(q, "c", 0), MPROC_OK);
  EXPECT_EQ(get_str(q, 0), "b");
  EXPECT_EQ(get_str(q, 0), "c");
}

TEST(QueueBasics, TimeoutsExpireInTime) {
  Q q(1);
  int rc;
  double t0 = test_now();
  get_str(q, 0.15, &rc);
  double dt = test_now() - t0;
  EXPECT_EQ(rc, MPROC_EEMPTY);
  EXPECT_GE(dt, 0.14);
  EXPECT_LT(dt, 10.0);
  ASSERT_EQ(put_str(q, "x", 0), MPROC_OK);
  t0 = test_now();
  EXPECT_EQ(put_str(q, "y", 0.15), MPROC_EFULL);
  dt = test_now() - t0;
  EXPECT_GE(dt, 0.14);
  EXPECT_LT(dt, 10.0);
}

TEST(QueueBasics, BlockedGetWokenByAnotherThread) {
  Q q;
  std::thread t([&] {
    // Put only once the get sleeps (a getter counted in the queue's
    // not-empty futex), so the wake-up is what the test sees.
    EXPECT_TRUE(test_wait_for(
        [&] { return mproc__queue_test_getters_waiting(q) > 0; }));
    put_str(q, "late");
  });
  double t0 = test_now();
  EXPECT_EQ(get_str(q, 30), "late");
  EXPECT_LT(test_now() - t0, 10.0);
  t.join();
}

TEST(QueueBasics, BlockedPutWokenByAnotherThread) {
  Q q(1);
  ASSERT_EQ(put_str(q, "first", 0), MPROC_OK);
  std::thread t([&] {
    test_sleep_ms(100); // likely blocked by then; the verdict holds either way
    EXPECT_EQ(get_str(q), "first");
  });
  EXPECT_EQ(put_str(q, "second", 30), MPROC_OK);
  t.join();
  EXPECT_EQ(get_str(q, 0), "second");
}

TEST(QueueBasics, TooBigIsE2bigAndHalfCapacityFitsAnywhere) {
  const size_t cap = 4096;
  Q q(0, cap);
  std::vector<unsigned char> big(cap / 2 + 1), out(cap);
  EXPECT_EQ(mproc_queue_put(q, big.data(), big.size(), 0), MPROC_E2BIG);
  // The largest message fits an empty ring wherever its tail stands: walk
  // the tail around the ring in 8-byte steps.
  for (uint32_t step = 0; step < 600; step++) {
    fill(big.data(), cap / 2, step);
    ASSERT_EQ(mproc_queue_put(q, big.data(), cap / 2, 0), MPROC_OK) << step;
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(q, out.data(), out.size(), &len, 0), MPROC_OK);
    ASSERT_EQ(len, cap / 2);
    ASSERT_TRUE(check(out.data(), len, step));
    ASSERT_EQ(put_str(q, "", 0), MPROC_OK); // moves the tail by 8 bytes
    ASSERT_EQ(get_str(q, 0), "");
  }
}

TEST(QueueBasics, BufferTooSmallIsErangeAndTheMessageStays) {
  Q q;
  ASSERT_EQ(put_str(q, "0123456789"), MPROC_OK);
  ASSERT_EQ(put_str(q, "next"), MPROC_OK);
  char small[4];
  size_t len = 0;
  EXPECT_EQ(mproc_queue_get(q, small, sizeof small, &len, 0), MPROC_ERANGE);
  EXPECT_EQ(len, 10u);
  EXPECT_EQ(mproc_queue_get(q, nullptr, 0, &len, 0), MPROC_ERANGE);
  EXPECT_EQ(len, 10u);
  EXPECT_EQ(get_str(q, 0), "0123456789");
  EXPECT_EQ(get_str(q, 0), "next");
}

TEST(QueueBasics, ByteLimitBlocksLikeMaxsize) {
  Q q(0, 1024); // no count limit: the ring's bytes are the limit
  std::vector<unsigned char> m(100);
  int n = 0;
  while (mproc_queue_put(q, m.data(), m.size(), 0) == MPROC_OK)
    n++;
  EXPECT_GE(n, 8);  // 1024 bytes of ring hold at least 8 records of 104 + 4
  EXPECT_LE(n, 11);
  EXPECT_EQ(mproc_queue_put(q, m.data(), m.size(), 0.05), MPROC_EFULL);
  size_t len;
  std::vector<unsigned char> out(200);
  EXPECT_EQ(mproc_queue_get(q, out.data(), out.size(), &len, 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_put(q, m.data(), m.size(), 0), MPROC_OK);
}

TEST(QueueBasics, CloseMakesThisHandleRefuseWork) {
  Q q;
  ASSERT_EQ(put_str(q, "x"), MPROC_OK);
  EXPECT_EQ(mproc_queue_close(q), MPROC_OK);
  EXPECT_EQ(mproc_queue_close(q), MPROC_OK); // twice is harmless
  EXPECT_EQ(put_str(q, "y", 0), MPROC_ECLOSED);
  int rc;
  get_str(q, 0, &rc);
  EXPECT_EQ(rc, MPROC_ECLOSED);
  size_t n;
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_ECLOSED);
  EXPECT_EQ(mproc_queue_empty(q), MPROC_ECLOSED);
}

TEST(QueueBasics, CloseFromAnotherThreadEndsABlockedGet) {
  // A thread blocked in get when another closes the handle returns
  // ECLOSED at its next look instead of waiting forever.
  Q q;
  std::thread t([&] {
    int rc;
    get_str(q, 30, &rc);
    EXPECT_TRUE(rc == MPROC_ECLOSED) << mproc_strerror(rc);
  });
  EXPECT_TRUE(test_wait_for(
      [&] { return mproc__queue_test_getters_waiting(q) > 0; }));
  mproc_queue_close(q);
  t.join();
}

// Runs `call` (a put or get that must end with MPROC_ECLOSED) on a thread,
// waits until it waits for `lock` (0 the put lock, 1 the get lock), then
// closes the queue from this thread and joins that one.
template <class Call>
static void close_ends_call_behind_lock(Q &q, int lock, Call call) {
  std::thread t([&] {
    int rc = call();
    EXPECT_EQ(rc, MPROC_ECLOSED) << mproc_strerror(rc);
  });
  EXPECT_TRUE(test_wait_for(
      [&] { return mproc__queue_test_lock_waiting(q, lock) > 0; }));
  mproc_queue_close(q);
  t.join();
}

// A get on an empty queue raises its flag under the put lock, which a
// reserve holds until it ends: close() from another thread must still end
// that get at its next look (here the view is held past the get's timeout).
TEST(QueueViews, CloseEndsAGetWaitingBehindAReserve) {
  Q q(0, 4096);
  mproc_queue_view v;
  ASSERT_EQ(mproc_queue_put_reserve(q, 8, &v, 5), MPROC_OK);
  close_ends_call_behind_lock(q, 0 /* the put lock */, [&] {
    int rc;
    get_str(q, 10, &rc);
    return rc;
  });
  EXPECT_EQ(mproc_queue_put_abort(q, &v), MPROC_OK);
}

// The same for a put on a full queue behind a borrow (it waits on the get
// lock).
TEST(QueueViews, CloseEndsAPutWaitingBehindABorrow) {
  Q q(1, 4096);
  ASSERT_EQ(put_str(q, "kept"), MPROC_OK);
  mproc_queue_view v;
  ASSERT_EQ(mproc_queue_get_borrow(q, &v, 5), MPROC_OK);
  close_ends_call_behind_lock(q, 1 /* the get lock */,
                              [&] { return put_str(q, "more", 10); });
  EXPECT_EQ(mproc_queue_release(q, &v), MPROC_OK);
}

TEST(QueueBasics, BadInput) {
  mproc_queue *q = nullptr;
  mproc_queue_options o;
  std::memset(&o, 0, sizeof o);
  EXPECT_EQ(mproc_queue_create(nullptr, nullptr), MPROC_EINVAL);
  o.capacity = 8;
  EXPECT_EQ(mproc_queue_create(&q, &o), MPROC_EINVAL);
  EXPECT_EQ(q, nullptr);
  ASSERT_EQ(mproc_queue_create(&q, nullptr), MPROC_OK); // defaults
  size_t len, n;
  char buf[4];
  EXPECT_EQ(mproc_queue_put(nullptr, "x", 1, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_put(q, nullptr, 1, 0), MPROC_EINVAL);
  // Past half the default byte cap (a size check: nothing is read).
  EXPECT_EQ(mproc_queue_put(q, "x", (size_t)1 << 31, 0), MPROC_E2BIG);
  EXPECT_EQ(mproc_queue_get(nullptr, buf, 4, &len, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_get(q, buf, 4, nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_get(q, nullptr, 4, &len, 0), MPROC_EINVAL);
  const double nan = std::nan("");
  EXPECT_EQ(mproc_queue_put(q, "x", 1, nan), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_get(q, buf, 4, &len, nan), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_qsize(q, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_qsize(nullptr, &n), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_empty(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_full(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_task_done(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_join(nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_close(nullptr), MPROC_EINVAL);
  // A plain queue is not joinable.
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_ESTATE);
  EXPECT_EQ(mproc_queue_join(q, 0), MPROC_ESTATE);
  // Something that is not a queue.
  int not_a_queue[16] = {0};
  EXPECT_EQ(mproc_queue_put(reinterpret_cast<mproc_queue *>(not_a_queue), "x",
                            1, 0),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_free(nullptr), nullptr);
  EXPECT_EQ(mproc_queue_free(q), nullptr);
}

TEST(QueueBasics, ThreadsShareAHandle) {
  Q q(64);
  const int per = 5000;
  std::atomic<long> sum{0};
  std::vector<std::thread> ts;
  for (int p = 0; p < 2; p++)
    ts.emplace_back([&, p] {
      for (int i = 0; i < per; i++) {
        uint32_t v = (uint32_t)(p * per + i);
        ASSERT_EQ(mproc_queue_put(q, &v, 4, 30), MPROC_OK);
      }
    });
  for (int c = 0; c < 2; c++)
    ts.emplace_back([&] {
      for (int i = 0; i < per; i++) {
        uint32_t v;
        size_t len;
        ASSERT_EQ(mproc_queue_get(q, &v, 4, &len, 30), MPROC_OK);
        sum += v;
      }
    });
  for (auto &t : ts)
    t.join();
  long n = 2 * per;
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
}

TEST(QueueBasics, RandomSizesWrapAroundIntact) {
  Q q(0, 8192);
  std::vector<unsigned char> buf(4096), out(4096);
  uint32_t x = 7, put = 0, got = 0;
  std::vector<size_t> sizes;
  for (int round = 0; round < 3000; round++) {
    x = x * 1103515245u + 12345u;
    bool do_put = (x >> 20) % 3 != 0;
    if (do_put) {
      size_t len = (x >> 8) % 4097;
      fill(buf.data(), len, put);
      int rc = mproc_queue_put(q, buf.data(), len, 0);
      if (rc == MPROC_OK) {
        sizes.push_back(len);
        put++;
      } else
        ASSERT_EQ(rc, MPROC_EFULL);
    } else if (got < put) {
      size_t len = 0;
      ASSERT_EQ(mproc_queue_get(q, out.data(), out.size(), &len, 0), MPROC_OK);
      ASSERT_EQ(len, sizes[got]);
      ASSERT_TRUE(check(out.data(), len, got)) << got;
      got++;
    }
  }
  EXPECT_GT(put, 500u);
}

// ---- views: borrow and reserve in place ------------------------------------

namespace {

// Puts message `id` of `len` bytes by reserve + commit.
int put_view(mproc_queue *q, size_t len, uint32_t id, double timeout = 5) {
  mproc_queue_view v;
  int rc = mproc_queue_put_reserve(q, len, &v, timeout);
  if (rc != MPROC_OK)
    return rc;
  EXPECT_EQ(v.len, len);
  EXPECT_NE(v.data, nullptr);
  fill(static_cast<unsigned char *>(v.data), len, id);
  return mproc_queue_put_commit(q, &v);
}

// Takes the next message by borrow and checks it is message `id` of `len`.
void get_view(mproc_queue *q, size_t len, uint32_t id) {
  mproc_queue_view v;
  ASSERT_EQ(mproc_queue_get_borrow(q, &v, 5), MPROC_OK);
  EXPECT_EQ(v.len, len);
  EXPECT_NE(v.data, nullptr);
  EXPECT_TRUE(check(static_cast<const unsigned char *>(v.data), v.len, id))
      << "message " << id << " of " << len << " bytes";
  ASSERT_EQ(mproc_queue_release(q, &v), MPROC_OK);
  EXPECT_EQ(v.data, nullptr);
}

void get_copy(mproc_queue *q, size_t len, uint32_t id) {
  std::vector<unsigned char> buf(len + 1);
  size_t n = 0;
  ASSERT_EQ(mproc_queue_get(q, buf.data(), buf.size(), &n, 5), MPROC_OK);
  EXPECT_EQ(n, len);
  EXPECT_TRUE(check(buf.data(), n, id)) << "message " << id;
}

} // namespace

TEST(QueueViews, RoundTripsOfEverySizeInterleavedWithPutAndGet) {
  // A small fixed ring (1 KiB: messages up to 512 bytes), so that the
  // sizes below wrap its end over and over: every view must still be one
  // contiguous block, and the four ways in and out mix in FIFO order.
  Q q(0, 1024);
  const size_t sizes[] = {0, 1, 3, 8, 100, 255, 500, 511, 512};
  uint32_t id = 0;
  for (int round = 0; round < 40; round++) {
    for (size_t len : sizes) {
      int way = (int)((id + (uint32_t)round) % 4);
      std::vector<unsigned char> msg(len);
      fill(msg.data(), len, id);
      if (way & 1)
        ASSERT_EQ(put_view(q, len, id), MPROC_OK) << len;
      else
        ASSERT_EQ(mproc_queue_put(q, msg.data(), len, 5), MPROC_OK) << len;
      if (way & 2)
        get_view(q, len, id);
      else
        get_copy(q, len, id);
      id++;
    }
  }
  // Several in flight: two near-capacity views in a row fill the ring.
  ASSERT_EQ(put_view(q, 400, 1), MPROC_OK);
  ASSERT_EQ(put_view(q, 400, 2), MPROC_OK);
  mproc_queue_view v;
  EXPECT_EQ(mproc_queue_put_reserve(q, 400, &v, 0), MPROC_EFULL);
  EXPECT_EQ(v.data, nullptr);
  get_view(q, 400, 1);
  get_copy(q, 400, 2);
  EXPECT_EQ(mproc_queue_empty(q), 1);
}

TEST(QueueViews, CommitShorterAbortAndQueueCounts) {
  Q q(0, 4096, 1);
  mproc_queue_view v;
  ASSERT_EQ(mproc_queue_put_reserve(q, 100, &v, 0), MPROC_OK);
  std::memcpy(v.data, "short", 5);
  v.len = 5;
  ASSERT_EQ(mproc_queue_put_commit(q, &v), MPROC_OK);
  ASSERT_EQ(mproc_queue_put_reserve(q, 100, &v, 0), MPROC_OK);
  std::memcpy(v.data, "dropped", 7);
  ASSERT_EQ(mproc_queue_put_abort(q, &v), MPROC_OK);
  ASSERT_EQ(put_str(q, "after"), MPROC_OK);
  size_t n = 0;
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, 2u);
  ASSERT_EQ(mproc_queue_get_borrow(q, &v, 0), MPROC_OK);
  EXPECT_EQ(std::string(static_cast<char *>(v.data), v.len), "short");
  ASSERT_EQ(mproc_queue_release(q, &v), MPROC_OK);
  EXPECT_EQ(get_str(q, 5), "after");
  // Borrowed messages count for join() like gotten ones.
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_OK);
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_OK);
  EXPECT_EQ(mproc_queue_join(q, 0), MPROC_OK);
  // Nowait on an empty queue is Empty, and leaves no view out.
  EXPECT_EQ(mproc_queue_get_borrow(q, &v, 0), MPROC_EEMPTY);
  EXPECT_EQ(v.data, nullptr);
  EXPECT_EQ(mproc_queue_release(q, &v), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_put_reserve(q, 4096, &v, 0), MPROC_E2BIG);
}

TEST(QueueViews, MisuseIsAClearError) {
  Q q(0, 4096), other(0, 4096);
  mproc_queue_view v, copy, o;
  char buf[16];
  size_t len = 0;
  EXPECT_EQ(mproc_queue_get_borrow(nullptr, &v, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_get_borrow(q, nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_get_borrow(q, &v, NAN), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_put_reserve(nullptr, 1, &v, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_put_reserve(q, 1, nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_release(q, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_release(nullptr, &v), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_put_commit(q, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_put_abort(nullptr, &v), MPROC_EINVAL);
  ASSERT_EQ(put_str(q, "a"), MPROC_OK);
  ASSERT_EQ(put_str(q, "b"), MPROC_OK);
  ASSERT_EQ(put_str(other, "c"), MPROC_OK);
  ASSERT_EQ(mproc_queue_get_borrow(q, &v, 0), MPROC_OK);
  copy = v;
  // This thread holds the get side: another get or borrow would wait for
  // itself, so it is refused at once.
  EXPECT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0), MPROC_ESTATE);
  EXPECT_EQ(mproc_queue_get_borrow(q, &o, 0), MPROC_ESTATE);
  // The put side is free; another queue's views are its own.
  EXPECT_EQ(put_str(q, "c"), MPROC_OK);
  ASSERT_EQ(mproc_queue_get_borrow(other, &o, 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_release(q, &o), MPROC_EINVAL);   // foreign view
  EXPECT_EQ(mproc_queue_put_commit(q, &v), MPROC_EINVAL); // not a reserve
  EXPECT_EQ(mproc_queue_put_abort(q, &v), MPROC_EINVAL);
  EXPECT_EQ(mproc_queue_release(other, &o), MPROC_OK);
  EXPECT_EQ(mproc_queue_release(q, &v), MPROC_OK);
  EXPECT_EQ(mproc_queue_release(q, &v), MPROC_ESTATE);    // double release
  EXPECT_EQ(mproc_queue_release(q, &copy), MPROC_ESTATE); // a stale copy
  ASSERT_EQ(mproc_queue_get_borrow(q, &v, 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_release(q, &copy), MPROC_ESTATE); // older borrow
  EXPECT_EQ(std::string(static_cast<char *>(v.data), v.len), "b");
  EXPECT_EQ(mproc_queue_release(q, &v), MPROC_OK);
  // Reservations: the same rules, and a commit longer than the room.
  ASSERT_EQ(mproc_queue_put_reserve(q, 4, &v, 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_put(q, "x", 1, 0), MPROC_ESTATE);
  EXPECT_EQ(mproc_queue_put_reserve(q, 4, &o, 0), MPROC_ESTATE);
  EXPECT_EQ(mproc_queue_release(q, &v), MPROC_EINVAL); // not a borrow
  v.len = 5;
  EXPECT_EQ(mproc_queue_put_commit(q, &v), MPROC_EINVAL); // still out
  v.len = 4;
  std::memcpy(v.data, "dddd", 4);
  EXPECT_EQ(mproc_queue_put_commit(q, &v), MPROC_OK);
  EXPECT_EQ(mproc_queue_put_commit(q, &v), MPROC_ESTATE);
  EXPECT_EQ(mproc_queue_put_abort(q, &v), MPROC_ESTATE);
  EXPECT_EQ(get_str(q, 5), "c");
  EXPECT_EQ(get_str(q, 5), "dddd");
  // A view still out when the handle is freed does not wedge the queue:
  // (checked in a child below: here `q` must stay usable.)
}

TEST(QueueViews, AnotherThreadWaitsForABorrowAndGetsTheNextMessage) {
  Q q(0, 4096);
  ASSERT_EQ(put_str(q, "first"), MPROC_OK);
  ASSERT_EQ(put_str(q, "second"), MPROC_OK);
  mproc_queue_view v;
  ASSERT_EQ(mproc_queue_get_borrow(q, &v, 0), MPROC_OK);
  std::string got;
  std::thread t([&] { got = get_str(q, 30); });
  test_sleep_ms(50); // not a synchronisation: the result is the same either way
  EXPECT_EQ(std::string(static_cast<char *>(v.data), v.len), "first");
  ASSERT_EQ(mproc_queue_release(q, &v), MPROC_OK);
  t.join();
  EXPECT_EQ(got, "second");
}

TEST(QueueViews, ChildBorrowsAndReservesBigMessages) {
  // 64 KiB messages through a 256 KiB ring, both ways by view.
  Q q(0, 256 << 10), back(0, 256 << 10);
  const int n = 40;
  const size_t size = 64 << 10;
  mproc_process *p = test_start("q_view_echo", QArgs({q, back}, {n, size}));
  std::vector<unsigned char> msg(size);
  for (int i = 0; i < n; i++) {
    fill(msg.data(), size, (uint32_t)i);
    ASSERT_EQ(mproc_queue_put(q, msg.data(), size, 30), MPROC_OK);
    get_view(back, size, (uint32_t)i);
  }
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

class QueueViewHolderDies : public testing::TestWithParam<int> {};

TEST_P(QueueViewHolderDies, NothingLeaksAndTheQueueGoesOn) {
  const int kind = GetParam(); // 0 reserve, 1 borrow
  Q q(0, 4096);
  ASSERT_EQ(put_str(q, "kept"), MPROC_OK);
  TestPipe ready;
  QArgs a({q}, {kind});
  a.h(ready.w);
  mproc_process *p = test_start("q_hold_view", a);
  ready.close_w();
  ASSERT_EQ(test_read_n(ready.r, 1), "R");
  // While the view is out, its side waits (and gives up in time); the
  // other side goes on.
  mproc_queue_view v;
  if (kind == 0) {
    EXPECT_EQ(mproc_queue_put_reserve(q, 8, &v, 0.05), MPROC_EFULL);
  } else {
    EXPECT_EQ(mproc_queue_get_borrow(q, &v, 0.05), MPROC_EEMPTY);
    EXPECT_EQ(put_str(q, "next"), MPROC_OK);
  }
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_NE(test_join_code(p), 0);
  mproc_process_free(p);
  // Dead now: a reservation never became a message, a borrowed message
  // is still there, and the counts agree.
  ASSERT_EQ(put_view(q, 8, 7, 10), MPROC_OK);
  EXPECT_EQ(get_str(q, 10), "kept");
  if (kind == 1) {
    EXPECT_EQ(get_str(q, 5), "next");
  }
  get_view(q, 8, 7);
  size_t n = 9;
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(mproc_queue_empty(q), 1);
}


// A waiter for the other side raises its flag under the view holder's lock
// (mproc__q_register): a FOREVER get on an empty queue while a reserve is
// out, or a FOREVER put on a full one while a borrow is out, must end once
// the holder is killed (stopped first where signals exist) and the other
// side moves.
TEST_P(QueueViewHolderDies, ForeverWaiterOnTheOtherSideGoesOn) {
  const int kind = GetParam(); // 0 reserve, 1 borrow
  Q q(1, 4096);
  if (kind == 1) {
    ASSERT_EQ(put_str(q, "kept"), MPROC_OK); // full (maxsize 1)
  }
  TestPipe ready;
  QArgs a({q}, {kind});
  a.h(ready.w);
  mproc_process *p = nullptr;
  ASSERT_NO_FATAL_FAILURE(
      test_start_stopped_holder("q_hold_view", a, ready, &p));
  std::atomic<int> rc{1};
  std::string got;
  std::thread waiter([&] {
    if (kind == 0) {
      got = get_str(q, MPROC_FOREVER);
    } else {
      rc = put_str(q, "after", MPROC_FOREVER);
    }
  });
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_NE(test_join_code(p), 0);
  mproc_process_free(p);
  if (kind == 0) {
    EXPECT_EQ(put_str(q, "x", 10), MPROC_OK);
    waiter.join();
    EXPECT_EQ(got, "x");
  } else {
    EXPECT_EQ(get_str(q, 10), "kept");
    waiter.join();
    EXPECT_EQ(rc.load(), MPROC_OK);
    EXPECT_EQ(get_str(q, 10), "after");
  }
}

// Many producers and consumers on a small ring, every way in and out mixed
// (put, reserve, get, borrow): each message arrives once, and nobody
// sleeps through the wake-up it needed (a call that waited longer than
// its generous timeout would fail the test).
static void mix_views_and_copies(size_t capacity) {
  Q q(0, capacity);
  const int kProducers = 3, kConsumers = 3;
  std::atomic<bool> stop{false};
  std::atomic<long> sent{0}, bad{0};
  std::vector<std::atomic<int>> seen(1 << 20);
  std::vector<std::thread> ts;
  double end = test_now() + 8;
  for (int p = 0; p < kProducers; p++)
    ts.emplace_back([&, p] {
      for (uint32_t i = 0; !stop && i < 40000; i++) {
        uint32_t id = (uint32_t)p << 17 | i;
        size_t len = 4 + (id * 7919u) % 300;
        int rc;
        if (i & 1) {
          rc = put_view(q, len, id, 10);
        } else {
          std::vector<unsigned char> m(len);
          fill(m.data(), len, id);
          rc = mproc_queue_put(q, m.data(), len, 10);
        }
        if (rc != MPROC_OK) {
          bad++;
          return;
        }
        sent++;
        if (test_now() > end)
          break;
      }
    });
  std::atomic<long> recv{0};
  for (int c = 0; c < kConsumers; c++)
    ts.emplace_back([&, c] {
      std::vector<unsigned char> buf(512);
      for (uint32_t i = 0;; i++) {
        mproc_queue_view v;
        const unsigned char *d;
        size_t len = 0;
        int rc;
        if ((i + (uint32_t)c) & 1) {
          rc = mproc_queue_get_borrow(q, &v, 10);
          d = static_cast<const unsigned char *>(v.data);
          len = v.len;
        } else {
          rc = mproc_queue_get(q, buf.data(), buf.size(), &len, 10);
          d = buf.data();
        }
        if (rc != MPROC_OK) {
          bad++;
          return;
        }
        if (len == 0) { // the end marker
          if ((i + (uint32_t)c) & 1)
            mproc_queue_release(q, &v);
          return;
        }
        uint32_t id;
        std::memcpy(&id, d, 4);
        if (!check(d, len, id) || len != 4 + (id * 7919u) % 300 ||
            seen[(id >> 17) * 40000 + (id & 0x1ffff)]++ != 0)
          bad++;
        if ((i + (uint32_t)c) & 1)
          mproc_queue_release(q, &v);
        recv++;
      }
    });
  for (int p = 0; p < kProducers; p++)
    ts[(size_t)p].join();
  for (int c = 0; c < kConsumers; c++)
    EXPECT_EQ(mproc_queue_put(q, "", 0, 10), MPROC_OK);
  for (size_t k = (size_t)kProducers; k < ts.size(); k++)
    ts[k].join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(recv.load(), sent.load());
  EXPECT_GT(sent.load(), 1000);
}

TEST(QueueViews, ManyThreadsMixingViewsAndCopiesOnASmallRing) {
  mix_views_and_copies(1024);
}

// The same on a default (growing) ring: consumers that catch up empty it
// again and again, and each get that empties it past the first megabyte
// moves both counters to the next lap, racing producers' puts and
// reserves (its try of the put lock fails then) and other consumers.
TEST(QueueViews, ManyThreadsMixingViewsAndCopiesOnAGrowingRing) {
  mix_views_and_copies(0);
}

INSTANTIATE_TEST_SUITE_P(Kinds, QueueViewHolderDies, testing::Values(0, 1));

TEST(QueueRing, PeekRejectsDamagedRings) {
  std::vector<unsigned char> ring(64, 0);
  uint64_t off, next;
  uint32_t len;
  const uint64_t R = 64, max = 24;
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, max, 8, 8, &off, &len, &next),
            MPROC__QR_EMPTY);
  // A record: length 5 at offset 8.
  uint32_t five = 5;
  std::memcpy(&ring[8], &five, 4);
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, max, 8, 24, &off, &len, &next),
            MPROC__QR_OK);
  EXPECT_EQ(off, 12u);
  EXPECT_EQ(len, 5u);
  EXPECT_EQ(next, 24u);
  // Tail inside the record, misaligned counters, more than a ring in use.
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, max, 8, 16, &off, &len, &next),
            MPROC__QR_BAD);
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, max, 9, 24, &off, &len, &next),
            MPROC__QR_BAD);
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, max, 8, 8 + 72, &off, &len, &next),
            MPROC__QR_BAD);
  // A length past the limit, and one that would run off the ring's end.
  uint32_t huge = 1000;
  std::memcpy(&ring[8], &huge, 4);
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, 2000, 8, 64, &off, &len, &next),
            MPROC__QR_BAD);
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, max, 8, 64, &off, &len, &next),
            MPROC__QR_BAD);
  // A wrap marker with nothing after it.
  uint32_t wrap = MPROC__QR_WRAP;
  std::memcpy(&ring[56], &wrap, 4);
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, max, 56, 64, &off, &len, &next),
            MPROC__QR_BAD);
  // ... and with a record at the start of the next lap.
  std::memcpy(&ring[0], &five, 4);
  EXPECT_EQ(mproc__qr_peek(ring.data(), R, max, 56, 80, &off, &len, &next),
            MPROC__QR_OK);
  EXPECT_EQ(off, 4u);
  EXPECT_EQ(next, 80u);
}

TEST(QueueRing, PlacementAndSizes) {
  EXPECT_EQ(mproc__qr_recsize(0), 8u);
  EXPECT_EQ(mproc__qr_recsize(4), 8u);
  EXPECT_EQ(mproc__qr_recsize(5), 16u);
  EXPECT_EQ(mproc__qr_recsize(64), 72u);
  int wrap;
  EXPECT_EQ(mproc__qr_place(0, 64, 64, &wrap), 0u);
  EXPECT_EQ(wrap, 0);
  EXPECT_EQ(mproc__qr_place(8, 64, 64, &wrap), 64u);
  EXPECT_EQ(wrap, 1);
  EXPECT_EQ(mproc__qr_fits(0, 8, 64, 64), 0u);    // would need 120 bytes
  EXPECT_EQ(mproc__qr_fits(8, 8, 64, 56), 64u);   // exactly to the end
  EXPECT_EQ(mproc__qr_fits(56, 56, 64, 32), 96u); // wraps, 40 bytes used
  // An empty ring at or past `hot` into its lap goes back to the next
  // lap's start; a ring holding records never does (the producer would
  // be stuck behind them), nor one under `hot`, nor a ring whose `hot` is
  // all of it (a small ring).
  EXPECT_EQ(mproc__qr_wraps_early(200, 200, 256, 32), 256u);
  EXPECT_EQ(mproc__qr_wraps_early(32, 32, 256, 32), 256u);
  EXPECT_EQ(mproc__qr_wraps_early(256 + 40, 256 + 40, 256, 32), 512u);
  EXPECT_EQ(mproc__qr_wraps_early(192, 200, 256, 32), 0u); // one record
  EXPECT_EQ(mproc__qr_wraps_early(24, 24, 256, 32), 0u);   // not past hot
  EXPECT_EQ(mproc__qr_wraps_early(200, 200, 256, 256), 0u); // hot == ring
  // "A marker with nothing after it": the state between an early wrap's
  // two stores, which recovery finishes.
  std::vector<unsigned char> r(256, 0);
  uint32_t marker = MPROC__QR_WRAP, five = 5;
  std::memcpy(&r[200], &marker, 4);
  EXPECT_EQ(mproc__qr_bare_wrap(r.data(), 256, 200, 256), 1);
  EXPECT_EQ(mproc__qr_bare_wrap(r.data(), 256, 200 + 512, 768), 1);
  EXPECT_EQ(mproc__qr_bare_wrap(r.data(), 256, 200, 200), 0); // empty
  EXPECT_EQ(mproc__qr_bare_wrap(r.data(), 256, 200, 272), 0); // a record
  EXPECT_EQ(mproc__qr_bare_wrap(r.data(), 256, 200, 264), 0); // damaged
  EXPECT_EQ(mproc__qr_bare_wrap(r.data(), 250, 200, 250), 0); // odd ring
  std::memcpy(&r[200], &five, 4); // a record that ends the lap exactly
  EXPECT_EQ(mproc__qr_bare_wrap(r.data(), 256, 200, 256), 0);
  // Every accepted message fits an empty ring from any aligned position.
  for (uint64_t cap = 16; cap < 600; cap++) {
    uint64_t R = mproc__qr_ring_for(cap),
             rec = mproc__qr_recsize(mproc__qr_msg_max(cap));
    for (uint64_t t = 0; t < 2 * R; t += 8)
      ASSERT_NE(mproc__qr_fits(t, t, R, rec), 0u) << cap << " " << t;
  }
}

// ---- unbounded by default (Python's maxsize=0) ------------------------------

// The tutorial pattern: put every task on the worker's input queue, and only
// then read the results from its output queue.  With Python's queues put
// never blocks when maxsize is 0; with bounded rings both sides would block
// once the two rings fill (the parent in put, the worker in its put of a
// result), so the pattern must not depend on the parent reading early.
TEST(QueueUnbounded, TutorialPutAllTasksThenReadAllResults) {
  const int64_t n = 1000000; // under a second on Linux and under Wine
  const double budget = 300; // seconds; a hang fails here, not in ctest
  Q in, out;
  mproc_process *p = test_start("q_tutorial_worker", QArgs({in, out}));
  TestWatchdog dog(p, budget);
  double t0 = test_now();
  for (int64_t i = 0; i < n; i++) {
    // A put that would block is the bug: nothing reads `out` yet.
    ASSERT_EQ(mproc_queue_put(in, &i, sizeof i, 30), MPROC_OK) << i;
    ASSERT_LT(test_now() - t0, budget) << "put " << i;
  }
  int64_t stop = -1;
  ASSERT_EQ(mproc_queue_put(in, &stop, sizeof stop, 30), MPROC_OK);
  int64_t sum = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t r = 0;
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(out, &r, sizeof r, &len, 60), MPROC_OK) << i;
    ASSERT_EQ(len, sizeof r);
    ASSERT_EQ(r, i * 2 + 1) << "results in order";
    sum += r;
    ASSERT_LT(test_now() - t0, budget) << "get " << i;
  }
  EXPECT_EQ(sum, n * n); // 1 + 3 + 5 + ... (n odd numbers)
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  EXPECT_EQ(mproc_queue_empty(in), 1);
  EXPECT_EQ(mproc_queue_empty(out), 1);
}

// The default queue holds far more than the old 1 MiB ring, without a
// reader, and a message may be far larger than the old 512 KiB limit.
TEST(QueueUnbounded, DefaultQueueHoldsABacklogAndBigMessages) {
  Q q;
  std::vector<unsigned char> m(4096), out(4 << 20);
  const int n = 8192; // 32 MiB of backlog
  for (int i = 0; i < n; i++) {
    fill(m.data(), m.size(), (uint32_t)i);
    ASSERT_EQ(mproc_queue_put(q, m.data(), m.size(), 0), MPROC_OK) << i;
  }
  std::vector<unsigned char> big(out.size());
  fill(big.data(), big.size(), 7);
  ASSERT_EQ(mproc_queue_put(q, big.data(), big.size(), 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_full(q), 0);
  for (int i = 0; i < n; i++) {
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(q, out.data(), out.size(), &len, 0), MPROC_OK);
    ASSERT_EQ(len, m.size());
    ASSERT_TRUE(check(out.data(), len, (uint32_t)i)) << i;
  }
  size_t len = 0;
  ASSERT_EQ(mproc_queue_get(q, out.data(), out.size(), &len, 0), MPROC_OK);
  ASSERT_EQ(len, big.size());
  EXPECT_TRUE(check(out.data(), len, 7));
}

// What the OS backs a queue's segment with, where the platform says so.
static bool queue_memory(mproc_queue *q, uint64_t *backed, uint64_t *reserved) {
  return mproc__queue_test_memory(q, backed, reserved) == MPROC_OK;
}

// Pages are committed as the backlog grows and (Linux) handed back as it
// drains, so a queue that once held a big backlog does not keep it.
TEST(QueueUnbounded, MemoryFollowsTheBacklog) {
  Q q;
  uint64_t backed = 0, reserved = 0;
  if (!queue_memory(q, &backed, &reserved))
    GTEST_SKIP() << "this platform does not say what backs a segment";
  const uint64_t mib = 1 << 20, backlog = 48 * mib;
  EXPECT_LT(backed, 4 * mib) << "a new queue commits only what it uses";
  EXPECT_GE(reserved, 2 * backlog);
  std::vector<unsigned char> m(16384);
  for (uint64_t put = 0; put < backlog; put += m.size())
    ASSERT_EQ(mproc_queue_put(q, m.data(), m.size(), 0), MPROC_OK);
  ASSERT_TRUE(queue_memory(q, &backed, &reserved));
  EXPECT_GE(backed, backlog);
  EXPECT_LT(backed, backlog + 8 * mib);
  size_t len;
  while (mproc_queue_get(q, m.data(), m.size(), &len, 0) == MPROC_OK) {
  }
  ASSERT_TRUE(queue_memory(q, &backed, &reserved));
  if (mproc__queue_test_gives_back(q))
    EXPECT_LT(backed, 8 * mib) << "drained pages are handed back";
  else // Windows: a section's committed pages stay until it is closed
    EXPECT_LT(backed, backlog + 8 * mib);
  // A consumer that keeps up: the ring stays in its first pages.
  for (int i = 0; i < 20000; i++) {
    ASSERT_EQ(mproc_queue_put(q, m.data(), m.size(), 0), MPROC_OK);
    ASSERT_EQ(mproc_queue_get(q, m.data(), m.size(), &len, 0), MPROC_OK);
  }
  uint64_t after = 0;
  ASSERT_TRUE(queue_memory(q, &after, &reserved));
  EXPECT_LE(after, backed + 4 * mib) << "a busy ring does not creep";
}

// A consumer hands drained pages back while the ring is full, so producers
// have already written the next lap over part of what it drained: only the
// pages nobody wrote again may go.  (A capacity past the 8 MiB under which
// a ring stays fixed, messages that keep the ring full, three laps.)
TEST(QueueUnbounded, HandingPagesBackSparesTheNextLap) {
  Q q(0, (size_t)12 << 20);
  std::vector<unsigned char> m(65536), out(65536);
  uint32_t put = 0, got = 0;
  for (;; put++) {
    fill(m.data(), m.size(), put);
    int rc = mproc_queue_put(q, m.data(), m.size(), 0);
    if (rc == MPROC_EFULL)
      break;
    ASSERT_EQ(rc, MPROC_OK);
  }
  ASSERT_GT(put, 160u);
  for (TestRounds r(600, 600, 60); r.next();) {
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(q, out.data(), out.size(), &len, 0), MPROC_OK);
    ASSERT_EQ(len, m.size());
    ASSERT_TRUE(check(out.data(), len, got)) << "message " << got;
    got++;
    fill(m.data(), m.size(), put);
    if (mproc_queue_put(q, m.data(), m.size(), 0) == MPROC_OK)
      put++;
  }
  for (; got < put; got++) {
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(q, out.data(), out.size(), &len, 0), MPROC_OK);
    ASSERT_TRUE(check(out.data(), len, got)) << "message " << got;
  }
  EXPECT_EQ(mproc_queue_empty(q), 1);
}

// A backlog past the kept first megabytes, drained: the get that empties
// the ring goes back to its start (the early wrap) and hands the drained
// pages back, and the next backlog is written over those offsets, handed
// back in turn while it drains, and wrapped again.  Odd sizes, so no counter
// falls on a 64 KiB piece boundary.  (Before the early wrap waited for an
// empty ring, a page handed back after it zeroed records of the next lap:
// a get returned a 0-byte message, seen first in bench/run.sh's
// queue_small_msgs on a loaded machine.)
TEST(QueueUnbounded, HandingPagesBackAfterTheEarlyWrapSparesTheNextLap) {
  Q q;
  std::vector<unsigned char> m(1001), out(1001);
  const uint32_t lap0 = 6600, first = 4700; // about 6.6 and 4.7 MiB
  uint32_t put = 0, got = 0;
  size_t len = 0;
  auto put_upto = [&](uint32_t n) {
    for (; put < n; put++) {
      fill(m.data(), m.size(), put);
      ASSERT_EQ(mproc_queue_put(q, m.data(), m.size(), 0), MPROC_OK) << put;
    }
  };
  auto get_upto = [&](uint32_t n) {
    for (; got < n; got++) {
      ASSERT_EQ(mproc_queue_get(q, out.data(), out.size(), &len, 0), MPROC_OK)
          << "message " << got;
      ASSERT_EQ(len, m.size()) << "message " << got;
      ASSERT_TRUE(check(out.data(), len, got)) << "message " << got;
    }
  };
  ASSERT_NO_FATAL_FAILURE(put_upto(lap0));
  ASSERT_NO_FATAL_FAILURE(get_upto(lap0));
  uint64_t backed = 0, reserved = 0;
  if (queue_memory(q, &backed, &reserved) && mproc__queue_test_gives_back(q)) {
    EXPECT_LT(backed, (uint64_t)5 << 20) << "the drained lap was handed back";
  }
  ASSERT_NO_FATAL_FAILURE(put_upto(2 * lap0));
  ASSERT_NO_FATAL_FAILURE(get_upto(lap0 + first));
  ASSERT_NO_FATAL_FAILURE(put_upto(3 * lap0));
  ASSERT_NO_FATAL_FAILURE(get_upto(3 * lap0));
  EXPECT_EQ(mproc_queue_empty(q), 1);
  ASSERT_NO_FATAL_FAILURE(put_upto(3 * lap0 + 1));
  ASSERT_NO_FATAL_FAILURE(get_upto(3 * lap0 + 1));
}

// A default queue is unbounded however it was used before.  The producer
// used to go back to the ring's start as soon as the consumers had passed
// its first record, with records still in the old lap; from there it could
// fill only up to the consumers' head, so with nobody reading (the tutorial's
// "put everything, then read") a used queue was full at about 1 MiB:
// put_nowait said EFULL at put 14,566, and a put with a timeout waited for
// a reader that never came.  Python's Queue() never blocks.
TEST(QueueUnbounded, AUsedQueueStillHoldsABacklogPastTheHotPart) {
  Q q;
  unsigned char buf[64] = {0};
  size_t len = 0;
  for (int i = 0; i < 20000; i++) {
    ASSERT_EQ(mproc_queue_put(q, buf, sizeof buf, 0), MPROC_OK);
    ASSERT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0), MPROC_OK);
  }
  for (uint32_t i = 0; i < 100000; i++) { // 7.2 MB: far under the reserve
    std::memcpy(buf, &i, sizeof i);
    ASSERT_EQ(mproc_queue_put(q, buf, sizeof buf, 0), MPROC_OK) << i;
  }
  for (uint32_t i = 0; i < 100000; i++) {
    uint32_t id = 0;
    ASSERT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0), MPROC_OK) << i;
    std::memcpy(&id, buf, sizeof id);
    ASSERT_EQ(id, i);
  }
  EXPECT_EQ(mproc_queue_empty(q), 1);
}

// The early wrap is what keeps a busy default queue in its first pages:
// a consumer that keeps up empties the ring at every get, and the ring must
// not run on through its reserve (page faults for the producer, hand-backs
// for the consumer, or on Windows commit that stays).
TEST(QueueUnbounded, AConsumerThatKeepsUpKeepsTheRingInItsFirstPages) {
  Q q;
  uint64_t backed = 0, reserved = 0;
  if (!queue_memory(q, &backed, &reserved))
    GTEST_SKIP() << "this platform does not say what backs a segment";
  std::vector<unsigned char> m(1000);
  size_t len = 0;
  for (int i = 0; i < 20000; i++) { // 20 MB through the ring
    ASSERT_EQ(mproc_queue_put(q, m.data(), m.size(), 0), MPROC_OK);
    ASSERT_EQ(mproc_queue_get(q, m.data(), m.size(), &len, 0), MPROC_OK);
  }
  ASSERT_TRUE(queue_memory(q, &backed, &reserved));
  EXPECT_LT(backed, (uint64_t)3 << 20) << "the ring ran on past its start";
}

// An explicit byte cap makes put block (EFULL at its timeout) as the old
// fixed ring did; a get makes room again.
TEST(QueueUnbounded, ByteCapMakesPutBlock) {
  const size_t cap = (size_t)1 << 20;
  Q q(0, cap);
  std::vector<unsigned char> m(1000);
  size_t n = 0;
  while (mproc_queue_put(q, m.data(), m.size(), 0) == MPROC_OK)
    n++;
  EXPECT_GE(n, cap / 1008 - 1);
  EXPECT_LE(n, cap / 1008 + 1);
  double t0 = test_now();
  EXPECT_EQ(mproc_queue_put(q, m.data(), m.size(), 0.1), MPROC_EFULL);
  EXPECT_GE(test_now() - t0, 0.09);
  EXPECT_EQ(mproc_queue_full(q), 0); // an empty message would still fit
  size_t len;
  ASSERT_EQ(mproc_queue_get(q, m.data(), m.size(), &len, 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_put(q, m.data(), m.size(), 0), MPROC_OK);
  std::vector<unsigned char> big(cap / 2 + 1);
  EXPECT_EQ(mproc_queue_put(q, big.data(), big.size(), 0), MPROC_E2BIG);
}

// maxsize still bounds a default (byte-unbounded) queue.
TEST(QueueUnbounded, MaxsizeStillBlocksAtMaxsize) {
  Q q(1000);
  for (int64_t i = 0; i < 1000; i++)
    ASSERT_EQ(mproc_queue_put(q, &i, sizeof i, 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_full(q), 1);
  int64_t x = 0;
  double t0 = test_now();
  EXPECT_EQ(mproc_queue_put(q, &x, sizeof x, 0.1), MPROC_EFULL);
  EXPECT_GE(test_now() - t0, 0.09);
  size_t len;
  ASSERT_EQ(mproc_queue_get(q, &x, sizeof x, &len, 0), MPROC_OK);
  EXPECT_EQ(x, 0);
  EXPECT_EQ(mproc_queue_put(q, &x, sizeof x, 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_put(q, &x, sizeof x, 0), MPROC_EFULL);
}

// ---- across processes -----------------------------------------------------

TEST(QueueProcesses, ProducerChildWithEndMarker) {
  Q q;
  const int n = 20000;
  mproc_process *p = test_start("q_produce", QArgs({q}, {n, 64}));
  std::vector<unsigned char> buf(256);
  int got = 0;
  for (;;) {
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(q, buf.data(), buf.size(), &len, 60), MPROC_OK);
    if (len == 3 && std::memcmp(buf.data(), kEnd, 3) == 0)
      break;
    ASSERT_EQ(len, 64u);
    ASSERT_TRUE(check(buf.data(), len, (uint32_t)got)) << got;
    got++;
  }
  EXPECT_EQ(got, n);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

TEST(QueueProcesses, ConsumerChildWithSmallRingAndBigMessages) {
  // Both ends block in turn: 300 messages of half the ring.
  Q q(0, 16384);
  mproc_process *p = test_start("q_consume", QArgs({q}, {300, 8192}));
  std::vector<unsigned char> buf(8192);
  for (uint32_t i = 0; i < 300; i++) {
    fill(buf.data(), buf.size(), i);
    ASSERT_EQ(mproc_queue_put(q, buf.data(), buf.size(), 60), MPROC_OK);
  }
  ASSERT_EQ(mproc_queue_put(q, kEnd, 3, 60), MPROC_OK);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

TEST(QueueProcesses, ManyProducersManyConsumersEachMessageOnce) {
  const int np = 3, nc = 3, per = 3000;
  Q q(100), res; // a small maxsize makes producers block as well
  std::vector<mproc_process *> ps, cs;
  for (int c = 0; c < nc; c++)
    cs.push_back(test_start("q_mp_consume", QArgs({q, res})));
  for (int p = 0; p < np; p++)
    ps.push_back(test_start("q_mp_produce", QArgs({q}, {p, per})));
  for (auto *p : ps) {
    EXPECT_EQ(test_join_code(p), 0);
    mproc_process_free(p);
  }
  for (int c = 0; c < nc; c++)
    ASSERT_EQ(mproc_queue_put(q, nullptr, 0, 60), MPROC_OK);
  std::vector<int> seen((size_t)np * per, 0);
  int ends = 0;
  std::vector<uint32_t> buf(1024);
  while (ends < nc) {
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(res, buf.data(), buf.size() * 4, &len, 60),
              MPROC_OK);
    if (len == 0) {
      ends++;
      continue;
    }
    for (size_t k = 0; k + 1 < len / 4; k += 2) {
      ASSERT_LT(buf[k], (uint32_t)np);
      ASSERT_LT(buf[k + 1], (uint32_t)per);
      seen[buf[k] * per + buf[k + 1]]++;
    }
  }
  for (auto *c : cs) {
    EXPECT_EQ(test_join_code(c), 0);
    mproc_process_free(c);
  }
  for (size_t i = 0; i < seen.size(); i++)
    ASSERT_EQ(seen[i], 1) << "message " << i;
  size_t left = 99;
  EXPECT_EQ(mproc_queue_qsize(q, &left), MPROC_OK);
  EXPECT_EQ(left, 0u);
}

// A producer killed at a random point of a stream (often inside put,
// holding the put lock) while the consumer keeps up, so that the consumer
// is spinning for data or registering for a wake-up under that lock (the
// fast paths of mproc__q_spin / mproc__q_register): no message the dead
// producer published is lost or repeated, the consumer's wait ends when a
// new producer puts, and that put is not held up by the dead holder.
// Rounds are bounded by count and time; the kill point differs each round.
TEST(QueueProcesses, ProducerKilledMidStreamWhileTheConsumerKeepsUp) {
  auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 6; round++) {
    if (round > 0 && std::chrono::steady_clock::now() - start >
                         std::chrono::seconds(20))
      break;
    Q q;
    std::atomic<uint64_t> seen{0};
    std::atomic<int> bad{0};
    std::thread consumer([&] {
      unsigned char buf[64];
      size_t len = 0;
      for (uint64_t want = 0;; want++) {
        int rc = mproc_queue_get(q, buf, sizeof buf, &len, 30);
        if (rc != MPROC_OK) {
          bad = 1000 + (rc < 0 ? -rc : rc);
          return;
        }
        if (len == 3 && std::memcmp(buf, kEnd, 3) == 0)
          return;
        uint64_t got = 0;
        std::memcpy(&got, buf, sizeof got);
        if (len != sizeof buf || got != want) {
          bad = 1;
          return;
        }
        seen = want + 1;
      }
    });
    mproc_process *p = test_start("q_stream_forever", QArgs({q}));
    uint64_t kill_after = 2000 + (uint64_t)round * 7919;
    EXPECT_TRUE(test_wait_for([&] { return seen >= kill_after || bad; }));
    EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    EXPECT_NE(test_join_code(p), 0);
    mproc_process_free(p);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(put_str(q, kEnd, 10), MPROC_OK);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));
    consumer.join();
    EXPECT_EQ(bad.load(), 0) << "round " << round << " after " << seen;
  }
}

// The other way round: a consumer killed at a random point of a stream
// (often inside get, holding the get lock) while the producer, on a small
// ring, keeps finding it full, so that it spins for room or registers
// under the get lock.  A new consumer (this process) then drains: the
// messages continue in order from wherever the dead one stopped, the
// blocked producer finishes, and nothing is lost after the kill.
TEST(QueueProcesses, ConsumerKilledMidStreamWhileTheProducerWaitsForRoom) {
  auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 6; round++) {
    if (round > 0 && std::chrono::steady_clock::now() - start >
                         std::chrono::seconds(20))
      break;
    Q q(0, 4096);
    const uint64_t total = 60000;
    uint64_t kill_after = 1000 + (uint64_t)round * 3001;
    std::atomic<uint64_t> sent{0};
    std::atomic<int> bad{0};
    // A consumer that drained the whole stream before the kill would read
    // the end mark as a stray message (exit 4): on a loaded machine the
    // 60000 messages take less than one time slice of this thread.  So the
    // producer waits for the kill a little past the point that triggers it.
    std::mutex mu;
    std::condition_variable cv;
    bool killed = false;
    std::thread producer([&] {
      unsigned char buf[64] = {0};
      for (uint64_t i = 0; i < total; i++) {
        if (i == kill_after + 200) {
          std::unique_lock<std::mutex> lk(mu);
          cv.wait_for(lk, std::chrono::seconds(30), [&] { return killed; });
        }
        std::memcpy(buf, &i, sizeof i);
        int rc = mproc_queue_put(q, buf, sizeof buf, 30);
        if (rc != MPROC_OK) {
          bad = 1000 + (rc < 0 ? -rc : rc);
          return;
        }
        sent = i + 1;
      }
      if (put_str(q, kEnd, 30) != MPROC_OK)
        bad = 2;
    });
    mproc_process *c = test_start("q_drain_forever", QArgs({q}));
    EXPECT_TRUE(test_wait_for([&] { return sent >= kill_after || bad; }));
    EXPECT_EQ(mproc_process_kill(c), MPROC_OK);
    {
      std::lock_guard<std::mutex> lk(mu);
      killed = true;
    }
    cv.notify_all();
    int code = test_join_code(c);
    EXPECT_NE(code, 0);
    EXPECT_NE(code, 3); // the dead consumer's own gets never failed
    EXPECT_NE(code, 4); // nor came out of order
    mproc_process_free(c);
    unsigned char buf[64];
    size_t len = 0;
    uint64_t next = UINT64_MAX, got = 0;
    // No ASSERT before the join: a failure must not leave the thread running.
    for (;;) {
      int rc = mproc_queue_get(q, buf, sizeof buf, &len, 30);
      EXPECT_EQ(rc, MPROC_OK) << "round " << round;
      if (rc != MPROC_OK || (len == 3 && std::memcmp(buf, kEnd, 3) == 0))
        break;
      EXPECT_EQ(len, sizeof buf);
      std::memcpy(&got, buf, sizeof got);
      if (next != UINT64_MAX && got != next) {
        ADD_FAILURE() << "round " << round << ": got " << got << " after "
                      << next - 1;
        break;
      }
      next = got + 1;
    }
    if (next != total)
      (void)mproc_queue_close(q); // let a producer still blocked in put end
    producer.join();
    EXPECT_EQ(bad.load(), 0) << "round " << round;
    EXPECT_EQ(next, total) << "round " << round;
  }
}

TEST(QueueProcesses, ConsumerKilledWhileBlockedLeavesQueueUsable) {
  Q q;
  mproc_process *p = test_start("q_block_get", QArgs({q}));
  // Kill it once it sleeps in get, counted in the queue's shared futex.
  EXPECT_TRUE(test_wait_for(
      [&] { return mproc__queue_test_getters_waiting(q) > 0; }));
  ASSERT_EQ(mproc_process_kill(p), MPROC_OK);
  EXPECT_NE(test_join_code(p), 0);
  mproc_process_free(p);
  // Both directions still work, in this process and in a new consumer.
  ASSERT_EQ(put_str(q, "a"), MPROC_OK);
  EXPECT_EQ(get_str(q, 5), "a");
  mproc_process *c = test_start("q_consume", QArgs({q}, {2, 64}));
  std::vector<unsigned char> buf(64);
  for (uint32_t i = 0; i < 2; i++) {
    fill(buf.data(), 64, i);
    ASSERT_EQ(mproc_queue_put(q, buf.data(), 64, 30), MPROC_OK);
  }
  ASSERT_EQ(mproc_queue_put(q, kEnd, 3, 30), MPROC_OK);
  EXPECT_EQ(test_join_code(c), 0);
  mproc_process_free(c);
}

struct DeathCase {
  int side;             // 0 put, 1 get
  int stage;            // MPROC__Q_STOP_*
  size_t qsize_after;   // messages left once the survivor took over
  const char *first;    // what the survivor gets first
};

class QueueLockHolderDies : public testing::TestWithParam<DeathCase> {};

TEST_P(QueueLockHolderDies, SurvivorTakesOverAndCountsRight) {
  const DeathCase &d = GetParam();
  Q q;
  ASSERT_EQ(put_str(q, "one"), MPROC_OK);
  ASSERT_EQ(put_str(q, "two"), MPROC_OK);
  mproc_process *p =
      test_start("q_die_in_lock", QArgs({q}, {d.side, d.stage}));
  EXPECT_EQ(test_join_code(p), 0); // it exited holding the lock
  mproc_process_free(p);
  // The survivor's next operation on that side waits for the dead holder,
  // takes the lock over and repairs the counts.
  double t0 = test_now();
  if (d.side == 0)
    ASSERT_EQ(put_str(q, "three", 10), MPROC_OK);
  else
    EXPECT_EQ(get_str(q, 10), d.first);
  EXPECT_LT(test_now() - t0, 10.0);
  size_t n = 0;
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, d.qsize_after);
  // The other side never noticed, and FIFO order holds.
  if (d.side == 0) {
    EXPECT_EQ(get_str(q, 5), "one");
    EXPECT_EQ(get_str(q, 5), "two");
    if (d.stage == MPROC__Q_STOP_NONE) {
      EXPECT_EQ(get_str(q, 5), "from the dead");
    }
    EXPECT_EQ(get_str(q, 5), "three");
  } else if (d.qsize_after == 1) {
    EXPECT_EQ(get_str(q, 5), "two");
  }
  EXPECT_EQ(mproc_queue_empty(q), 1);
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Stages, QueueLockHolderDies,
    testing::Values(
        // A producer dead before publishing published nothing.
        DeathCase{0, MPROC__Q_STOP_WRITTEN, 3, ""},
        DeathCase{0, MPROC__Q_STOP_COUNTED, 3, ""},
        // ... and one dead after publishing, before unlocking, did.
        DeathCase{0, MPROC__Q_STOP_NONE, 4, ""},
        // A consumer dead while copying out left the message in the queue.
        DeathCase{1, MPROC__Q_STOP_WRITTEN, 1, "one"},
        // One dead after the head moved took it (and nget is repaired).
        DeathCase{1, MPROC__Q_STOP_PUBLISHED, 0, "two"},
        DeathCase{1, MPROC__Q_STOP_NONE, 0, "two"}));

// A consumer killed inside the early wrap (the get that empties a default
// queue past its first megabyte moves both counters to the next lap: the
// marker, then the tail, then the head) holds both locks.  Whichever side
// comes next takes them over; the queue must then be empty, with its counts
// right, and unbounded (a head left behind the tail's new lap would cap the
// producers at about a megabyte again), and keep FIFO order.
struct WrapDeath {
  int stage;           // MPROC__Q_STOP_WRAP_*
  bool producer_first; // the survivor's first call is a put (else a get)
};

class QueueWrapHolderDies : public testing::TestWithParam<WrapDeath> {};

TEST_P(QueueWrapHolderDies, TheQueueIsEmptyCountedAndUnbounded) {
  const WrapDeath &d = GetParam();
  Q q;
  unsigned char buf[64];
  size_t len = 0;
  const uint32_t lap = 20000, more = 100000; // 1.4 MB, then 7.2 MB
  for (uint32_t i = 0; i < lap; i++) {
    fill(buf, sizeof buf, i);
    ASSERT_EQ(mproc_queue_put(q, buf, sizeof buf, 0), MPROC_OK);
  }
  for (uint32_t i = 0; i + 1 < lap; i++)
    ASSERT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0), MPROC_OK);
  // The child takes the last message, which empties the ring past the hot
  // part, and dies inside the wrap (exit 3: it found no wrap to stop in).
  mproc_process *p = test_start("q_die_in_lock", QArgs({q}, {1, d.stage}));
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  uint32_t id = lap;
  if (d.producer_first) {
    fill(buf, sizeof buf, id);
    ASSERT_EQ(mproc_queue_put(q, buf, sizeof buf, 10), MPROC_OK);
    id++;
  } else {
    // A get_nowait still takes a dead holder's lock over (its grace).
    EXPECT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0), MPROC_EEMPTY);
  }
  size_t n = 99;
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, d.producer_first ? 1u : 0u);
  for (; id < lap + more; id++) {
    fill(buf, sizeof buf, id);
    ASSERT_EQ(mproc_queue_put(q, buf, sizeof buf, id == lap ? 10 : 0),
              MPROC_OK)
        << "put " << id - lap << " of the backlog";
  }
  for (uint32_t i = lap; i < lap + more; i++) {
    ASSERT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0), MPROC_OK) << i;
    ASSERT_EQ(len, sizeof buf);
    ASSERT_TRUE(check(buf, len, i)) << "message " << i;
  }
  EXPECT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0), MPROC_EEMPTY);
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Stages, QueueWrapHolderDies,
    testing::Values(WrapDeath{MPROC__Q_STOP_WRAP_MARKED, false},
                    WrapDeath{MPROC__Q_STOP_WRAP_MARKED, true},
                    WrapDeath{MPROC__Q_STOP_WRAP_TAIL, false},
                    WrapDeath{MPROC__Q_STOP_WRAP_TAIL, true},
                    WrapDeath{MPROC__Q_STOP_WRAP_DONE, false},
                    WrapDeath{MPROC__Q_STOP_WRAP_DONE, true}),
    [](const testing::TestParamInfo<WrapDeath> &i) {
      const char *stage = i.param.stage == MPROC__Q_STOP_WRAP_MARKED ? "Marked"
                          : i.param.stage == MPROC__Q_STOP_WRAP_TAIL ? "TailMoved"
                                                                     : "BothMoved";
      return std::string(stage) +
             (i.param.producer_first ? "_ProducerFirst" : "_ConsumerFirst");
    });

TEST(QueueProcesses, WaitersRepairWhatADeadHolderLeft) {
  // Nobody else comes to take the dead holder's lock over: the waiters
  // themselves must notice.  A producer that died after counting its
  // message but before publishing it would leave join() waiting for ever.
  Q jq(0, 0, 1);
  mproc_process *p = test_start(
      "q_die_in_lock", QArgs({jq}, {0, MPROC__Q_STOP_COUNTED}));
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  double t0 = test_now();
  EXPECT_EQ(mproc_queue_join(jq, 20), MPROC_OK);
  EXPECT_LT(test_now() - t0, 15.0);
  EXPECT_EQ(mproc_queue_empty(jq), 1);
  // A consumer that died after taking the only message of a maxsize=1
  // queue, before counting it, would leave a producer waiting for ever.
  Q q(1);
  ASSERT_EQ(put_str(q, "only"), MPROC_OK);
  p = test_start("q_die_in_lock", QArgs({q}, {1, MPROC__Q_STOP_PUBLISHED}));
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  t0 = test_now();
  EXPECT_EQ(put_str(q, "next", 20), MPROC_OK);
  EXPECT_LT(test_now() - t0, 15.0);
  EXPECT_EQ(get_str(q, 5), "next");
}

// A live holder of a side's lock (stopped, in a debugger, or just slow)
// must not stretch a timed put or get past its timeout: the lock wait is
// part of the call and gives up with the call's own "nothing in time"
// code.  (Issue 8 item 2: get(0) took 7.5 s, get(0.05) 3 s.)
static void stopped_holder(int side) {
  Q q(0, 4096);
  ASSERT_EQ(put_str(q, "x"), MPROC_OK);
  TestPipe ready;
  QArgs a({q}, {side});
  a.h(ready.w);
  mproc_process *p = nullptr;
  ASSERT_NO_FATAL_FAILURE(
      test_start_stopped_holder("q_hold_lock", a, ready, &p));
  // Should a call hang on the held lock, end it by killing the holder
  // after a while, so the bounds below fail instead of the test hanging.
  TestWatchdog watchdog(p, 20);
  char buf[64];
  size_t len = 0;
  const double timeouts[] = {0, 0.05, 0.2};
  for (double t : timeouts) {
    double t0 = test_now();
    if (side == 0)
      EXPECT_EQ(mproc_queue_put(q, "y", 1, t), MPROC_EFULL) << t;
    else
      EXPECT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, t), MPROC_EEMPTY)
          << t;
    EXPECT_LT(test_now() - t0, t + 2.0) << t;
  }
  // The other side is not held: it works as usual.
  if (side == 0) {
    EXPECT_EQ(get_str(q, 5), "x");
    EXPECT_EQ(get_str(q, 5), "held"); // published; the lock stays held
    // A get that must sleep raises its flag under the put lock (the lock of
    // whoever would wake it): the stopped holder delays it only up to its
    // own timeout.
    double t0 = test_now();
    EXPECT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0.2), MPROC_EEMPTY);
    EXPECT_LT(test_now() - t0, 2.2);
  } else {
    EXPECT_EQ(mproc_queue_put(q, "y", 1, 5), MPROC_OK);
  }
  watchdog.disarm();
  EXPECT_EQ(mproc_process_kill(p), MPROC_OK); // SIGKILL ends a stopped one
  EXPECT_EQ(test_join_code(p), -9);
  mproc_process_free(p);
  // Dead now: the next call takes the lock over.
  if (side == 0) {
    EXPECT_EQ(put_str(q, "z", 10), MPROC_OK);
    EXPECT_EQ(get_str(q, 5), "z");
  } else {
    EXPECT_EQ(get_str(q, 10), "x");
    EXPECT_EQ(get_str(q, 5), "y");
  }
}

TEST(QueueProcesses, StoppedPutLockHolderDoesNotStretchPutTimeouts) {
  stopped_holder(0);
}

TEST(QueueProcesses, StoppedGetLockHolderDoesNotStretchGetTimeouts) {
  stopped_holder(1);
}

TEST(QueueProcesses, ChildPutsAndExitsThenIsJoinedBeforeDraining) {
  // Python's documented deadlock: a child that put data on a Queue cannot
  // be joined before the data is taken, since its feeder thread still
  // holds it.  mproc has no feeder: the put completes inside put(), so the
  // child exits at once.  (A *full* mproc queue blocks the producer in
  // put() instead of buffering: size the ring to the data, as here.)
  const int64_t total = (int64_t)10 << 20, size = 1024;
  Q q(0, (size_t)16 << 20);
  mproc_process *p = test_start("q_put_exit", QArgs({q}, {total, size}));
  EXPECT_EQ(test_join_code(p, 60), 0);
  mproc_process_free(p);
  std::vector<unsigned char> buf((size_t)size);
  int64_t n = total / size;
  for (int64_t i = 0; i < n; i++) {
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(q, buf.data(), buf.size(), &len, 0), MPROC_OK)
        << i;
    ASSERT_EQ(len, (size_t)size);
    ASSERT_TRUE(check(buf.data(), len, (uint32_t)i)) << i;
  }
  EXPECT_EQ(mproc_queue_empty(q), 1);
}

TEST(QueueProcesses, FullQueueBlocksTheProducerNotTheJoin) {
  // With a bounded queue the producer waits in put(); joining it times out
  // (no deadlock inside the library) until the parent drains the queue.
  Q q(2);
  mproc_process *p = test_start("q_produce", QArgs({q}, {10, 16}));
  EXPECT_EQ(mproc_process_join(p, 0.3), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_process_is_alive(p), 1);
  std::vector<unsigned char> buf(64);
  for (int i = 0; i < 11; i++) {
    size_t len;
    ASSERT_EQ(mproc_queue_get(q, buf.data(), buf.size(), &len, 60), MPROC_OK);
  }
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

TEST(QueueProcesses, CloseIsPerProcess) {
  Q q, ack;
  mproc_process *p = test_start("q_close_child", QArgs({q, ack}));
  ASSERT_EQ(put_str(q, "hello"), MPROC_OK);
  EXPECT_EQ(get_str(ack, 60), "hello");
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  // The parent's handle is untouched by the child's close.
  ASSERT_EQ(put_str(q, "still"), MPROC_OK);
  EXPECT_EQ(get_str(q, 0), "still");
}

TEST(QueueProcesses, ChildPassesTheQueueToAGrandchild) {
  Q q;
  mproc_process *p = test_start("q_relay", QArgs({q}, {100}));
  std::vector<unsigned char> buf(64);
  for (uint32_t i = 0; i < 100; i++) {
    size_t len = 0;
    ASSERT_EQ(mproc_queue_get(q, buf.data(), buf.size(), &len, 60), MPROC_OK);
    ASSERT_EQ(len, 32u);
    ASSERT_TRUE(check(buf.data(), len, i));
  }
  EXPECT_EQ(get_str(q, 60), kEnd);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

TEST(QueueProcesses, ArgumentTypeIsChecked) {
  Q q;
  mproc_process *p = test_start("q_wrong_type", QArgs({q}));
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

// ---- JoinableQueue --------------------------------------------------------

TEST(JoinableQueue, TaskDoneCountsAndOverflows) {
  Q q(0, 0, 1);
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_EOVERFLOW);
  EXPECT_EQ(mproc_queue_join(q, 0), MPROC_OK); // nothing unfinished
  EXPECT_EQ(mproc_queue_join(q, std::nan("")), MPROC_EINVAL);
  ASSERT_EQ(put_str(q, "a"), MPROC_OK);
  ASSERT_EQ(put_str(q, "b"), MPROC_OK);
  EXPECT_EQ(mproc_queue_join(q, 0.05), MPROC_ETIMEDOUT);
  EXPECT_EQ(get_str(q, 0), "a");
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_OK);
  EXPECT_EQ(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(get_str(q, 0), "b");
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_OK);
  EXPECT_EQ(mproc_queue_join(q, 0), MPROC_OK);
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_EOVERFLOW);
}

TEST(JoinableQueue, JoinWaitsForWorkersInOtherProcesses) {
  Q q(0, 0, 1);
  const int nw = 2, items = 200;
  std::vector<mproc_process *> ws;
  for (int w = 0; w < nw; w++)
    ws.push_back(test_start("q_join_worker", QArgs({q})));
  for (int i = 0; i < items; i++)
    ASSERT_EQ(put_str(q, "item" + std::to_string(i)), MPROC_OK);
  for (int w = 0; w < nw; w++)
    ASSERT_EQ(mproc_queue_put(q, kEnd, 3, 30), MPROC_OK);
  double t0 = test_now();
  EXPECT_EQ(mproc_queue_join(q, 60), MPROC_OK);
  EXPECT_LT(test_now() - t0, 60.0);
  EXPECT_EQ(mproc_queue_empty(q), 1);
  for (auto *w : ws) {
    EXPECT_EQ(test_join_code(w), 0);
    mproc_process_free(w);
  }
  EXPECT_EQ(mproc_queue_task_done(q), MPROC_EOVERFLOW);
  EXPECT_EQ(mproc_queue_join(q, 0), MPROC_OK);
}

// q: gets {producer, seq, ~producer, ~seq} messages until killed; exit 3 if
// a get fails, 4 if a message is torn or a producer's seq goes back.
TEST_ENTRY(q_take_checked_forever) {
  mproc_queue *q = arg_queue(args, 0);
  uint32_t last[8] = {0}, m[16];
  size_t len = 0;
  if (!q)
    return 2;
  for (;;) {
    if (mproc_queue_get(q, m, sizeof m, &len, 60) != MPROC_OK)
      return 3;
    if (len != sizeof m || m[0] >= 8 || m[2] != ~m[0] || m[3] != ~m[1] ||
        m[1] + 1 <= last[m[0]])
      return 4;
    last[m[0]] = m[1] + 1;
  }
}

// Producers (threads) stream into a default queue while consumers (children)
// are killed at random moments and replaced: the early wrap (every time the
// consumers empty the ring past its first megabyte), its recovery and the
// ordinary take-overs race each other.  No call may fail, no message may be
// torn, duplicated or reordered per producer, and the counts must end right.
TEST(QueueProcesses, ConsumersKilledAtRandomInABusyStream) {
  Q q(2000); // a count cap on the default (growing) ring: producers keep pace
  const uint32_t nprod = 2, per = 400000;
  std::atomic<int> bad{0};
  std::atomic<uint32_t> done{0};
  std::vector<std::thread> prods;
  for (uint32_t id = 0; id < nprod; id++)
    prods.emplace_back([&, id] {
      for (uint32_t s = 0; s < per; s++) {
        uint32_t m[16] = {id, s, ~id, ~s};
        int rc = mproc_queue_put(q, m, sizeof m, 30);
        if (rc != MPROC_OK) {
          bad = 1000 - rc;
          break;
        }
      }
      done++;
    });
  std::mt19937 rng(12345);
  mproc_process *c[2] = {test_start("q_take_checked_forever", QArgs({q})),
                         test_start("q_take_checked_forever", QArgs({q}))};
  auto start = std::chrono::steady_clock::now();
#ifdef _WIN32
  const int max_kills = 40; // a start costs ~30 ms under Wine
#else
  const int max_kills = 400;
#endif
  int kills = 0;
  while (done < nprod && kills < max_kills &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    int i = (int)(rng() % 2);
    EXPECT_EQ(mproc_process_kill(c[i]), MPROC_OK);
    int code = test_join_code(c[i]);
    EXPECT_NE(code, 3) << "kill " << kills;
    EXPECT_NE(code, 4) << "kill " << kills;
    mproc_process_free(c[i]);
    c[i] = test_start("q_take_checked_forever", QArgs({q}));
    kills++;
  }
  for (auto &p : c) {
    EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    int code = test_join_code(p);
    EXPECT_NE(code, 3);
    EXPECT_NE(code, 4);
    mproc_process_free(p);
  }
  // Producers still putting now have no consumer: this thread drains.
  uint32_t last[2] = {0, 0}, m[16];
  size_t len = 0, n = 99;
  for (;;) {
    int rc = mproc_queue_get(q, m, sizeof m, &len, done == nprod ? 0 : 5);
    if (rc == MPROC_EEMPTY && done == nprod)
      break;
    if (rc == MPROC_ETIMEDOUT)
      continue;
    ASSERT_EQ(rc, MPROC_OK);
    ASSERT_EQ(len, sizeof m);
    ASSERT_TRUE(m[0] < 2 && m[2] == ~m[0] && m[3] == ~m[1]);
    ASSERT_GE(m[1], last[m[0]]) << "producer " << m[0];
    last[m[0]] = m[1] + 1;
  }
  for (auto &t : prods)
    t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(mproc_queue_get(q, m, sizeof m, &len, 0), MPROC_EEMPTY);
  EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
  EXPECT_EQ(n, 0u);
}

// q, stage (MPROC__Q_STOP_WRAP_*), ready pipe (w): takes the message that
// empties the ring past its hot part, stops inside the early wrap holding
// both locks, says "R", then sleeps (the parent stops it with SIGSTOP).
TEST_ENTRY(q_hold_in_wrap) {
  mproc_queue *q = arg_queue(args, 0);
  mproc_handle_t ready = MPROC_INVALID_HANDLE;
  char buf[64];
  size_t len = 0;
  if (!q || mproc_arg_handle(args, 2, &ready) != MPROC_OK)
    return 2;
  if (mproc__queue_test_stop_get(q, buf, sizeof buf, &len,
                                 (int)arg_int(args, 1)) != MPROC_OK ||
      !test_write_all(ready, "R", 1))
    return 3;
  test_sleep_ms(120000);
  return 4;
}

// Puts 20000 messages of 64 bytes (past the ring's first megabyte) and
// gets all but the last: the next get that empties the ring wraps early.
static void leave_one_past_the_hot_part(mproc_queue *q) {
  unsigned char buf[64];
  size_t len = 0;
  const uint32_t lap = 20000;
  for (uint32_t i = 0; i < lap; i++) {
    fill(buf, sizeof buf, i);
    ASSERT_EQ(mproc_queue_put(q, buf, sizeof buf, 0), MPROC_OK);
  }
  for (uint32_t i = 0; i + 1 < lap; i++)
    ASSERT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 0), MPROC_OK);
}

// A consumer stopped inside the early wrap holds both locks: every other
// call with a timeout still returns by it, and the counts read right.
TEST(QueueProcesses, ConsumerStoppedInsideTheEarlyWrapStretchesNoTimeout) {
#ifdef _WIN32
  GTEST_SKIP() << "no SIGSTOP";
#endif
  const int stages[] = {MPROC__Q_STOP_WRAP_MARKED, MPROC__Q_STOP_WRAP_TAIL,
                        MPROC__Q_STOP_WRAP_DONE};
  for (int stage : stages) {
    Q q;
    unsigned char buf[64];
    size_t len = 0, n = 99;
    ASSERT_NO_FATAL_FAILURE(leave_one_past_the_hot_part(q));
    TestPipe ready;
    QArgs a({q}, {stage});
    a.h(ready.w);
    mproc_process *p = nullptr;
    ASSERT_NO_FATAL_FAILURE(
        test_start_stopped_holder("q_hold_in_wrap", a, ready, &p));
    TestWatchdog watchdog(p, 20);
    const double timeouts[] = {0, 0.05, 0.2};
    for (double t : timeouts) {
      double t0 = test_now();
      EXPECT_EQ(mproc_queue_put(q, buf, sizeof buf, t), MPROC_EFULL)
          << stage << " " << t;
      EXPECT_LT(test_now() - t0, t + 2.0) << stage << " " << t;
      t0 = test_now();
      EXPECT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, t), MPROC_EEMPTY)
          << stage << " " << t;
      EXPECT_LT(test_now() - t0, t + 2.0) << stage << " " << t;
    }
    EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
    EXPECT_EQ(n, 0u) << stage;
    watchdog.disarm();
    EXPECT_EQ(mproc_process_kill(p), MPROC_OK);
    EXPECT_EQ(test_join_code(p), -9);
    mproc_process_free(p);
    fill(buf, sizeof buf, 7);
    EXPECT_EQ(mproc_queue_put(q, buf, sizeof buf, 10), MPROC_OK) << stage;
    EXPECT_EQ(mproc_queue_get(q, buf, sizeof buf, &len, 10), MPROC_OK);
    EXPECT_TRUE(check(buf, len, 7)) << stage;
    EXPECT_EQ(mproc_queue_empty(q), 1) << stage;
  }
}

// A consumer killed inside the early wrap, nobody has come since: the queue
// holds no message, and empty() says so as qsize() does (a dead wrapper's
// half-moved counters are no message; empty() said 0 for good until a get
// or put repaired them).
TEST(QueueProcesses, EmptyIsTrueAfterAConsumerDiedInsideTheEarlyWrap) {
  const int stages[] = {MPROC__Q_STOP_WRAP_MARKED, MPROC__Q_STOP_WRAP_TAIL,
                        MPROC__Q_STOP_WRAP_DONE};
  for (int stage : stages) {
    Q q;
    size_t n = 99;
    ASSERT_NO_FATAL_FAILURE(leave_one_past_the_hot_part(q));
    mproc_process *p = test_start("q_die_in_lock", QArgs({q}, {1, stage}));
    EXPECT_EQ(test_join_code(p), 0);
    mproc_process_free(p);
    EXPECT_EQ(mproc_queue_qsize(q, &n), MPROC_OK);
    EXPECT_EQ(n, 0u) << stage;
    EXPECT_EQ(mproc_queue_empty(q), 1) << stage;
    EXPECT_EQ(mproc_queue_full(q), 0) << stage;
  }
}
