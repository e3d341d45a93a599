// Pipes (mproc_pipe / mproc_conn_*): framing, directions, buffers too
// small, timeouts, end-of-file (peer closed, peer killed), mproc_wait on
// connections with processes, ends passed to children, threads, damaged
// streams.  Every test that starts children runs under the lane's default
// start method.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cmath>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

#ifndef _WIN32
#include <signal.h>
#endif

extern "C" {
#include "conn.h"
}

namespace {

// A pair that frees itself.
struct Pipe {
  mproc_conn *a = nullptr, *b = nullptr;
  explicit Pipe(int duplex = 1) {
    EXPECT_EQ(mproc_pipe(&a, &b, duplex), MPROC_OK);
  }
  ~Pipe() {
    mproc_conn_free(a);
    mproc_conn_free(b);
  }
  Pipe(const Pipe &) = delete;
  Pipe &operator=(const Pipe &) = delete;
};

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = (char)(x >> 24);
  }
  return s;
}

int send_str(mproc_conn *c, const std::string &s) {
  return mproc_conn_send_bytes(c, s.data(), s.size());
}

// Receives one message into a string (grows on MPROC_ERANGE).
int recv_str(mproc_conn *c, std::string *out, double timeout = 30) {
  std::vector<char> buf(256);
  size_t n = 0;
  int rc = mproc_conn_recv_bytes(c, buf.data(), buf.size(), &n, timeout);
  if (rc == MPROC_ERANGE) {
    buf.resize(n);
    rc = mproc_conn_recv_bytes(c, buf.data(), buf.size(), &n, timeout);
  }
  if (rc == MPROC_OK)
    out->assign(buf.data(), n);
  return rc;
}

mproc_conn *arg_conn(const mproc_args *args, size_t i) {
  void *o = nullptr;
  if (mproc_arg_object(args, i, MPROC_OBJ_CONN, &o) != MPROC_OK)
    return nullptr;
  return static_cast<mproc_conn *>(o);
}

mproc_process *start_with_conn(const char *entry, mproc_conn *c,
                               int64_t extra = 0) {
  Args a;
  EXPECT_EQ(mproc_args_add_object(a.a, nullptr, c), MPROC_OK);
  a.i(extra);
  return test_start(entry, a);
}

// start_with_conn(), then the parent's copy of the child's end goes (as in
// Python): the child holds the only one, so its exit is end-of-file.
mproc_process *start_with_own_end(const char *entry, mproc_conn *c,
                                  int64_t extra = 0) {
  mproc_process *proc = start_with_conn(entry, c, extra);
  if (proc) {
    EXPECT_EQ(mproc_conn_close(c), MPROC_OK);
  }
  return proc;
}

} // namespace

// ---- child entries ---------------------------------------------------------

// Echoes every message on the connection in arg 0 until "STOP".
TEST_ENTRY(conn_echo) {
  mproc_conn *c = arg_conn(args, 0);
  if (!c)
    return 2;
  std::vector<char> buf((1 << 20) + 16);
  for (;;) {
    size_t n = 0;
    int rc = mproc_conn_recv_bytes(c, buf.data(), buf.size(), &n, 60);
    if (rc != MPROC_OK)
      return 10 - rc;
    if (n == 4 && memcmp(buf.data(), "STOP", 4) == 0)
      return 0;
    rc = mproc_conn_send_bytes(c, buf.data(), n);
    if (rc != MPROC_OK)
      return 40 - rc;
  }
}

// Sends "ready" on arg 0, then sleeps up to 60 s holding the end.
TEST_ENTRY(conn_hold) {
  mproc_conn *c = arg_conn(args, 0);
  if (!c || mproc_conn_send_bytes(c, "ready", 5) != MPROC_OK)
    return 2;
  test_sleep_ms(60000);
  return 0;
}

// Receives arg 1 messages from arg 0 and sends them back joined by '|'.
TEST_ENTRY(conn_recv_report) {
  mproc_conn *c = arg_conn(args, 0);
  int64_t n = 0;
  mproc_arg_int(args, 1, &n);
  if (!c)
    return 2;
  std::string all;
  for (int64_t i = 0; i < n; i++) {
    std::string m;
    int rc = recv_str(c, &m, 30);
    if (rc != MPROC_OK)
      return 10 - rc;
    all += (i ? "|" : "") + m;
  }
  return mproc_conn_send_bytes(c, all.data(), all.size()) == MPROC_OK ? 0 : 3;
}

// Receive-only end in arg 0: expects arg 1 messages pattern(i, i), returns 0
// if all arrive intact and in order.
TEST_ENTRY(conn_check_stream) {
  mproc_conn *c = arg_conn(args, 0);
  int64_t n = 0;
  mproc_arg_int(args, 1, &n);
  if (!c)
    return 2;
  if (mproc_conn_send_bytes(c, "x", 1) != MPROC_EPERM)
    return 3;
  for (int64_t i = 0; i < n; i++) {
    std::string m;
    int rc = recv_str(c, &m, 30);
    if (rc != MPROC_OK)
      return 10 - rc;
    if (m != pattern((size_t)(i * 37 % 5000), (unsigned)i))
      return 4;
  }
  return 0;
}

// The size of message i of conn_send_mixed: small ones (the shared-memory
// ring), some that fill most of the ring, some bigger than it (the pipe).
size_t mixed_size(int64_t i) {
  static const size_t sizes[] = {0, 5, 64, 60000, 64, 70000, 3, 200000, 1000};
  return sizes[i % 9] + (size_t)(i % 3);
}

// Sends arg 1 messages pattern(mixed_size(i), i) on arg 0, pausing now and
// then so that the receiver goes to sleep between bursts.
TEST_ENTRY(conn_send_mixed) {
  mproc_conn *c = arg_conn(args, 0);
  int64_t n = 0;
  mproc_arg_int(args, 1, &n);
  if (!c)
    return 2;
  for (int64_t i = 0; i < n; i++) {
    if (send_str(c, pattern(mixed_size(i), (unsigned)i)) != MPROC_OK)
      return 3;
    if (i % 50 == 49)
      test_sleep_ms(2);
  }
  return 0;
}

// Receives what conn_send_mixed sends with n: each message whole and in
// order.  Fails the test fatally: call it in ASSERT_NO_FATAL_FAILURE.
static void expect_mixed(mproc_conn *c, int n) {
  std::string m;
  for (int i = 0; i < n; i++) {
    ASSERT_EQ(recv_str(c, &m, 30), MPROC_OK) << i;
    ASSERT_TRUE(m == pattern(mixed_size(i), (unsigned)i)) << i;
  }
}

// Sends arg 1 messages of 1000 bytes tagged with arg 2 on arg 0, then
// returns.  Several of these share one end.
TEST_ENTRY(conn_blast) {
  mproc_conn *c = arg_conn(args, 0);
  int64_t n = 0, tag = 0;
  mproc_arg_int(args, 1, &n);
  mproc_arg_int(args, 2, &tag);
  if (!c)
    return 2;
  for (int64_t i = 0; i < n; i++) {
    std::string m(1000, (char)('A' + tag));
    memcpy(&m[0], &i, sizeof i);
    if (mproc_conn_send_bytes(c, m.data(), m.size()) != MPROC_OK)
      return 3;
  }
  return 0;
}

mproc_event *arg_event(const mproc_args *args, size_t i) {
  void *o = nullptr;
  if (mproc_arg_object(args, i, MPROC_OBJ_EVENT, &o) != MPROC_OK)
    return nullptr;
  return static_cast<mproc_event *>(o);
}

// Frees (which, for an end received as an argument, only closes) the end in
// arg 0, then lives on until the event in arg 1 is set.
TEST_ENTRY(conn_free_then_wait) {
  mproc_conn *c = arg_conn(args, 0);
  mproc_event *go = arg_event(args, 1);
  if (!c || !go)
    return 2;
  if (mproc_conn_free(c) != nullptr)
    return 3;
  if (mproc_conn_send_bytes(c, "x", 1) != MPROC_ECLOSED)
    return 4;
  // The argument list frees the object: no double free.
  return mproc_event_wait(go, 60) == MPROC_OK ? 0 : 5;
}

// Lives until the event in arg 0 is set.
TEST_ENTRY(conn_wait_event) {
  mproc_event *go = arg_event(args, 0);
  return go && mproc_event_wait(go, 60) == MPROC_OK ? 0 : 2;
}

// ---- framing ---------------------------------------------------------------

TEST(ConnFrames, NeverSplitOrMergedAcrossSizes) {
  Pipe p;
  const size_t sizes[] = {0,     1,     7,     8,      9,      63,
                          64,    65,    4087,  4088,   4089,   4096,
                          65527, 65528, 65536, 100000, 300000, 0,
                          1,     1 << 20};
  std::thread t([&] {
    for (int round = 0; round < 3; round++)
      for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        EXPECT_EQ(send_str(p.b, pattern(sizes[i], (unsigned)(i + round))),
                  MPROC_OK);
  });
  std::vector<char> buf((1 << 20) + 1);
  for (int round = 0; round < 3; round++)
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = 12345;
      ASSERT_EQ(mproc_conn_recv_bytes(p.a, buf.data(), buf.size(), &n, 30),
                MPROC_OK);
      ASSERT_EQ(n, sizes[i]);
      ASSERT_EQ(std::string(buf.data(), n),
                pattern(sizes[i], (unsigned)(i + round)));
    }
  t.join();
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 0);
}

TEST(ConnFrames, ZeroByteMessagesWithNullBuffers) {
  Pipe p;
  for (int i = 0; i < 1000; i++)
    ASSERT_EQ(mproc_conn_send_bytes(p.b, nullptr, 0), MPROC_OK);
  for (int i = 0; i < 1000; i++) {
    size_t n = 99;
    ASSERT_EQ(mproc_conn_recv_bytes(p.a, nullptr, 0, &n, 5), MPROC_OK);
    ASSERT_EQ(n, 0u);
  }
  // A non-empty message does not fit a zero-capacity receive: it stays.
  ASSERT_EQ(send_str(p.b, "abc"), MPROC_OK);
  size_t n = 0;
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, nullptr, 0, &n, 5), MPROC_ERANGE);
  EXPECT_EQ(n, 3u);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "abc");
}

TEST(ConnFrames, OneMiBMessagesBothWays) {
  Pipe p;
  const size_t big = 1 << 20;
  std::thread t([&] {
    std::string m;
    for (int i = 0; i < 6; i++) {
      EXPECT_EQ(recv_str(p.b, &m), MPROC_OK);
      EXPECT_EQ(m, pattern(big, (unsigned)i));
      EXPECT_EQ(send_str(p.b, m), MPROC_OK);
    }
  });
  std::string m;
  for (int i = 0; i < 6; i++) {
    ASSERT_EQ(send_str(p.a, pattern(big, (unsigned)i)), MPROC_OK);
    ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
    ASSERT_EQ(m.size(), big);
    ASSERT_TRUE(m == pattern(big, (unsigned)i));
  }
  t.join();
}

TEST(ConnFrames, DuplexBothWaysAtOnce) {
  Pipe p;
  // Both sides send more than a pipe holds before receiving anything: the
  // threads keep it flowing; neither direction may block the other.
  auto side = [](mproc_conn *c, unsigned seed) {
    std::thread r([&] {
      std::string m;
      for (int i = 0; i < 300; i++) {
        EXPECT_EQ(recv_str(c, &m), MPROC_OK);
        EXPECT_EQ(m, pattern(1000 + (size_t)i, seed ^ 1u));
      }
    });
    for (int i = 0; i < 300; i++)
      EXPECT_EQ(send_str(c, pattern(1000 + (size_t)i, seed)), MPROC_OK);
    r.join();
  };
  std::thread t1(side, p.a, 10u), t2(side, p.b, 11u);
  t1.join();
  t2.join();
}

TEST(ConnFrames, OneWayEndsRefuseTheWrongDirection) {
  Pipe p(0);
  char buf[8];
  size_t n = 0;
  mproc_waitable w = {MPROC_WAIT_CONN, p.b, MPROC_INVALID_HANDLE, 0};
  EXPECT_EQ(mproc_conn_send_bytes(p.a, "x", 1), MPROC_EPERM);
  EXPECT_EQ(mproc_conn_recv_bytes(p.b, buf, sizeof buf, &n, 0), MPROC_EPERM);
  EXPECT_EQ(mproc_conn_poll(p.b, 0), MPROC_EPERM);
  EXPECT_EQ(mproc_wait(&w, 1, 0), MPROC_EPERM);
  ASSERT_EQ(send_str(p.b, "hello"), MPROC_OK);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "hello");
}

TEST(ConnFrames, TooSmallIsErangeAndTheMessageStays) {
  Pipe p;
  ASSERT_EQ(send_str(p.b, pattern(100, 1)), MPROC_OK);
  ASSERT_EQ(send_str(p.b, "next"), MPROC_OK);
  char small[10];
  size_t n = 0;
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, small, sizeof small, &n, 5),
            MPROC_ERANGE);
  EXPECT_EQ(n, 100u);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, small, sizeof small, &n, 5),
            MPROC_ERANGE);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, pattern(100, 1));
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "next");

  // A message bigger than the read-ahead buffer: the header is enough to
  // say it does not fit, and nothing of it is lost.
  const size_t big = 3 << 20;
  std::thread t([&] { EXPECT_EQ(send_str(p.b, pattern(big, 7)), MPROC_OK); });
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, small, sizeof small, &n, 30),
            MPROC_ERANGE);
  EXPECT_EQ(n, big);
  std::vector<char> buf(big);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf.data(), buf.size(), &n, 30),
            MPROC_OK);
  EXPECT_EQ(n, big);
  EXPECT_TRUE(std::string(buf.data(), n) == pattern(big, 7));
  t.join();
}

TEST(ConnFrames, TooBigToSendIsE2big) {
  Pipe p;
  static const char dummy[1] = {0};
  // The data is never read: the size alone decides.
  EXPECT_EQ(mproc_conn_send_bytes(p.b, dummy, MPROC_CONN_MSG_MAX + 1),
            MPROC_E2BIG);
  EXPECT_EQ(mproc_conn_send_bytes(p.b, dummy, (size_t)-1), MPROC_E2BIG);
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 0);
}

// ---- poll and timeouts -----------------------------------------------------

TEST(ConnPoll, TimeoutsExpireAndReadinessIsSeen) {
  Pipe p;
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 0);
  double t0 = test_now();
  EXPECT_EQ(mproc_conn_poll(p.a, 0.2), 0);
  double dt = test_now() - t0;
  EXPECT_GE(dt, 0.15);
  EXPECT_LT(dt, 10.0);

  char buf[16];
  size_t n = 7;
  t0 = test_now();
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, 0.2),
            MPROC_ETIMEDOUT);
  dt = test_now() - t0;
  EXPECT_GE(dt, 0.15);
  EXPECT_LT(dt, 10.0);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, 0),
            MPROC_ETIMEDOUT);

  // Sent once the poll below is in progress (it holds the receive lock),
  // so the message has to wake it.
  std::thread t([&] {
    EXPECT_TRUE(
        test_wait_for([&] { return mproc__conn_test_rx_held(p.a) == 3; }));
    EXPECT_EQ(send_str(p.b, "late"), MPROC_OK);
  });
  EXPECT_EQ(mproc_conn_poll(p.a, 30), 1);
  t.join();
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 1);
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 1); // poll consumes nothing
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, 0), MPROC_OK);
  EXPECT_EQ(std::string(buf, n), "late");
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 0);
}

TEST(ConnPoll, TimeoutInsideABigMessageKeepsItWhole) {
  Pipe p;
  const size_t total = 300000, first = 100000;
  std::string body = pattern(total, 3);
  unsigned char hdr[MPROC__CONN_HDR];
  mproc__conn_frame_header(hdr, (uint32_t)total);
  std::string head(reinterpret_cast<char *>(hdr), sizeof hdr);
  head += body.substr(0, first);
  std::promise<void> go;
  std::thread t([&, released = go.get_future()] {
    EXPECT_EQ(mproc__conn_send_raw(p.b, head.data(), head.size()), MPROC_OK);
    released.wait();
    EXPECT_EQ(mproc__conn_send_raw(p.b, body.data() + first, total - first),
              MPROC_OK);
  });
  std::vector<char> buf(total);
  size_t n = 0;
  // Part of the message arrives (at least its first bytes, however late the
  // thread runs), then nothing: the receive times out.
  ASSERT_EQ(mproc_conn_poll(p.a, 30), 1);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf.data(), buf.size(), &n, 0.5),
            MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 1); // the partial bytes are kept
  go.set_value();
  std::fill(buf.begin(), buf.end(), 0);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf.data(), buf.size(), &n, 30),
            MPROC_OK);
  EXPECT_EQ(n, total);
  EXPECT_TRUE(std::string(buf.data(), n) == body);
  t.join();
  ASSERT_EQ(send_str(p.b, "after"), MPROC_OK);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "after");
}

// ---- end-of-file ------------------------------------------------------------

TEST(ConnEof, AfterThePeerClosesEverythingSentIsReceivedFirst) {
  Pipe p;
  std::thread t([&] {
    EXPECT_EQ(send_str(p.b, "one"), MPROC_OK);
    EXPECT_EQ(mproc_conn_send_bytes(p.b, nullptr, 0), MPROC_OK);
    EXPECT_EQ(send_str(p.b, pattern(200000, 2)), MPROC_OK);
    EXPECT_EQ(mproc_conn_close(p.b), MPROC_OK);
  });
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "one");
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "");
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_TRUE(m == pattern(200000, 2));
  t.join();
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 1); // end-of-file is "ready"
  EXPECT_EQ(recv_str(p.a, &m, 5), MPROC_EEOF);
  EXPECT_EQ(recv_str(p.a, &m, 0), MPROC_EEOF);
  mproc_waitable w = {MPROC_WAIT_CONN, p.a, MPROC_INVALID_HANDLE, 0};
  EXPECT_EQ(mproc_wait(&w, 1, 5), 1);
  EXPECT_EQ(w.ready, 1);
}

TEST(ConnEof, SendingToAClosedPeerIsEof) {
  Pipe p;
  ASSERT_EQ(send_str(p.b, "x"), MPROC_OK);
  ASSERT_EQ(mproc_conn_close(p.a), MPROC_OK);
  test_sleep_ms(25); // past a tick of the sender's coarse clock
  EXPECT_EQ(send_str(p.b, "y"), MPROC_EEOF);
  // Also without a pause: at the latest when the OS buffer is full.
  Pipe q;
  ASSERT_EQ(mproc_conn_close(q.b), MPROC_OK);
  int rc = MPROC_OK, sent = 0;
  std::string kib(1024, 'k');
  while (rc == MPROC_OK && sent < 10000) {
    rc = send_str(q.a, kib);
    sent++;
  }
  EXPECT_EQ(rc, MPROC_EEOF);
  EXPECT_LT(sent, 1000);
}

TEST(ConnEof, OneWayEndsSeeEachOtherGo) {
  {
    Pipe p(0);
    ASSERT_EQ(send_str(p.b, "last"), MPROC_OK);
    ASSERT_EQ(mproc_conn_close(p.b), MPROC_OK);
    std::string m;
    EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
    EXPECT_EQ(m, "last");
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EEOF);
  }
  {
    Pipe p(0);
    ASSERT_EQ(mproc_conn_close(p.a), MPROC_OK);
    int rc = MPROC_OK;
    for (int i = 0; i < 1000 && rc == MPROC_OK; i++)
      rc = send_str(p.b, std::string(1024, 'z'));
    EXPECT_EQ(rc, MPROC_EEOF);
  }
}

TEST(ConnEof, DamagedStreamsReportBroken) {
  // A frame cut short by end-of-file.
  {
    Pipe p;
    unsigned char hdr[MPROC__CONN_HDR];
    mproc__conn_frame_header(hdr, 100);
    ASSERT_EQ(mproc__conn_send_raw(p.b, hdr, sizeof hdr), MPROC_OK);
    ASSERT_EQ(mproc__conn_send_raw(p.b, "only part", 9), MPROC_OK);
    ASSERT_EQ(mproc_conn_close(p.b), MPROC_OK);
    std::string m;
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EBROKEN);
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EBROKEN);
    EXPECT_EQ(mproc_conn_poll(p.a, 0), 1);
  }
  // Bytes that are not a frame, after good frames.
  {
    Pipe p;
    ASSERT_EQ(send_str(p.b, "good"), MPROC_OK);
    ASSERT_EQ(mproc__conn_send_raw(p.b, "garbage!garbage!", 16), MPROC_OK);
    ASSERT_EQ(send_str(p.b, "lost"), MPROC_OK);
    std::string m;
    EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
    EXPECT_EQ(m, "good");
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EBROKEN);
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EBROKEN);
  }
}

// A hostile process sharing the segment writes a read-ahead state word
// that points past (or to the end of) the read-ahead with off == end, so
// it looks empty: mproc_conn_poll must not read the pipe out of bounds
// (or report a phantom end-of-file), and the stream reports MPROC_EBROKEN.
// (Found by review: the ring's poll path filled the read-ahead without
// checking the word.)
TEST(ConnEof, HostileReadAheadWordIsBrokenNotOutOfBounds) {
#ifdef _WIN32
  GTEST_SKIP() << "Windows pipes have no ring; their poll reads nothing";
#endif
  const uint64_t far = 0xfffffu | 0xfffffull << 20; // off = end = 2^20 - 1
  const uint64_t full = 0x10000u | 0x10000ull << 20; // off = end = 64 KiB
  for (uint64_t ra : {far, full}) {
    Pipe p;
    // A poll that finds nothing asks for a wake-up: "x" goes through the
    // pipe (on a ring stream), so the poll has pipe bytes to read.
    ASSERT_EQ(mproc_conn_poll(p.a, 0), 0);
    ASSERT_EQ(send_str(p.b, "x"), MPROC_OK);
    ASSERT_EQ(mproc__conn_test_scribble(p.a, ra, 0), MPROC_OK);
    double t0 = test_now();
    int rc = mproc_conn_poll(p.a, 0.2);
    EXPECT_TRUE(rc == 1 || rc == MPROC_EBROKEN) << rc;
    EXPECT_LT(test_now() - t0, 5.0);
    std::string m;
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EBROKEN);
    EXPECT_EQ(mproc_conn_poll(p.a, 0), 1);
  }
}

// A hostile process sharing the segment moves the ring's tail far ahead
// (the ring then claims 2^40 bytes): receives and polls hand out at most
// the real message, then report MPROC_EBROKEN, by their deadline.
TEST(ConnEof, HostileRingCountersAreBrokenNotOutOfBounds) {
#ifdef _WIN32
  GTEST_SKIP() << "Windows pipes have no ring; their poll reads nothing";
#endif
  for (double t : {0.0, 0.5, MPROC_FOREVER}) {
    Pipe p;
    ASSERT_EQ(send_str(p.b, "x"), MPROC_OK);
    ASSERT_EQ(mproc__conn_test_scribble(p.a, 0, (uint64_t)1 << 40), MPROC_OK);
    double t0 = test_now();
    EXPECT_EQ(mproc_conn_poll(p.a, t), 1);
    std::string m;
    int rc = recv_str(p.a, &m, t);
    if (rc == MPROC_OK) {
      EXPECT_EQ(m, "x");
      rc = recv_str(p.a, &m, t);
    }
    EXPECT_EQ(rc, MPROC_EBROKEN);
    EXPECT_EQ(send_str(p.b, "y"), MPROC_EBROKEN);
    EXPECT_LT(test_now() - t0, 5.0);
  }
}

// Fuzz-style: a stream of random frames with one header bit flipped is
// received intact up to the damaged frame, then reports MPROC_EBROKEN; the
// pure decoder never reads past its input and agrees with the encoder.
TEST(ConnEof, FrameDecoderOnDamagedBytes) {
  std::mt19937 rng(12345);
  for (TestRounds rounds(300, 3000, 10); rounds.next();) {
    uint32_t len = (uint32_t)(rng() % (MPROC_CONN_MSG_MAX + 1));
    unsigned char hdr[MPROC__CONN_HDR];
    size_t got = 0;
    mproc__conn_frame_header(hdr, len);
    ASSERT_EQ(mproc__conn_frame_parse(hdr, &got), MPROC_OK);
    ASSERT_EQ(got, len);
    hdr[rng() % sizeof hdr] ^= (unsigned char)(1u << (rng() % 8));
    ASSERT_EQ(mproc__conn_frame_parse(hdr, &got), MPROC_EINVAL);

    // Random bytes of random length, in an allocation of exactly that size
    // so the sanitizers catch any read past it.
    size_t n = rng() % 40;
    std::vector<unsigned char> v(n);
    for (auto &c : v)
      c = (unsigned char)rng();
    if (n >= 8 && rng() % 2)
      mproc__conn_frame_header(v.data(), (uint32_t)(rng() % 48));
    unsigned char *heap = n ? new unsigned char[n] : nullptr;
    if (n)
      memcpy(heap, v.data(), n);
    size_t plen = 99;
    int have = 7;
    int r = mproc__conn_frame_next(heap, n, &plen, &have);
    ASSERT_TRUE(r == 1 || r == 0 || r == MPROC_EINVAL);
    delete[] heap;
    if (r == 1) {
      ASSERT_LE(MPROC__CONN_HDR + plen, n);
    }
    if (r == 0 && have) {
      ASSERT_GT(MPROC__CONN_HDR + plen, n);
    }
    if (n < MPROC__CONN_HDR) {
      ASSERT_EQ(r, 0);
    }
  }

  for (TestRounds rounds(10, 40, 10); rounds.next();) {
    std::vector<std::string> msgs;
    std::string stream;
    std::vector<size_t> starts;
    size_t nframes = 1 + rng() % 20;
    for (size_t i = 0; i < nframes; i++) {
      std::string m = pattern(rng() % 600, (unsigned)rng());
      unsigned char hdr[MPROC__CONN_HDR];
      mproc__conn_frame_header(hdr, (uint32_t)m.size());
      starts.push_back(stream.size());
      stream.append(reinterpret_cast<char *>(hdr), sizeof hdr);
      stream += m;
      msgs.push_back(m);
    }
    size_t bad = rng() % nframes;
    stream[starts[bad] + rng() % MPROC__CONN_HDR] ^=
        (char)(1u << (rng() % 8));
    Pipe p;
    ASSERT_EQ(mproc__conn_send_raw(p.b, stream.data(), stream.size()),
              MPROC_OK);
    ASSERT_EQ(mproc_conn_close(p.b), MPROC_OK);
    std::string m;
    for (size_t i = 0; i < bad; i++) {
      ASSERT_EQ(recv_str(p.a, &m, 5), MPROC_OK);
      ASSERT_EQ(m, msgs[i]);
    }
    ASSERT_EQ(recv_str(p.a, &m, 5), MPROC_EBROKEN);
    ASSERT_EQ(recv_str(p.a, &m, 5), MPROC_EBROKEN);
  }
}

// ---- bad input and closed connections -------------------------------------

TEST(ConnErrors, BadInput) {
  mproc_conn *a = nullptr, *b = nullptr;
  EXPECT_EQ(mproc_pipe(nullptr, &b, 1), MPROC_EINVAL);
  EXPECT_EQ(mproc_pipe(&a, nullptr, 1), MPROC_EINVAL);
  EXPECT_EQ(mproc_pipe(&a, &a, 1), MPROC_EINVAL);
  Pipe p;
  char buf[4];
  size_t n = 0;
  EXPECT_EQ(mproc_conn_send_bytes(nullptr, "x", 1), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_send_bytes(p.a, nullptr, 1), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_recv_bytes(nullptr, buf, 4, &n, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, nullptr, 4, &n, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, 4, nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, 4, &n, NAN), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_poll(nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_poll(p.a, NAN), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_close(nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_free(nullptr), nullptr);
  // Something that is not a connection.
  struct {
    uint32_t magic;
    void *vt;
    char pad[256];
  } fake;
  memset(&fake, 0, sizeof fake);
  mproc_conn *f = reinterpret_cast<mproc_conn *>(&fake);
  EXPECT_EQ(mproc_conn_send_bytes(f, "x", 1), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_poll(f, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_conn_close(f), MPROC_EINVAL);
  mproc_waitable w = {MPROC_WAIT_CONN, nullptr, MPROC_INVALID_HANDLE, 0};
  EXPECT_EQ(mproc_wait(&w, 1, 0), MPROC_EINVAL);
  w.object = f;
  EXPECT_EQ(mproc_wait(&w, 1, 0), MPROC_EINVAL);
  // Nothing above disturbed the pipe.
  ASSERT_EQ(send_str(p.b, "ok"), MPROC_OK);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "ok");
}

TEST(ConnErrors, ClosedConnectionsRefuseWork) {
  Pipe p;
  ASSERT_EQ(send_str(p.b, "pending"), MPROC_OK);
  EXPECT_EQ(mproc_conn_close(p.a), MPROC_OK);
  EXPECT_EQ(mproc_conn_close(p.a), MPROC_OK); // twice is harmless
  char buf[16];
  size_t n = 0;
  EXPECT_EQ(mproc_conn_send_bytes(p.a, "x", 1), MPROC_ECLOSED);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, 0), MPROC_ECLOSED);
  EXPECT_EQ(mproc_conn_poll(p.a, 0), MPROC_ECLOSED);
  mproc_waitable w = {MPROC_WAIT_CONN, p.a, MPROC_INVALID_HANDLE, 0};
  EXPECT_EQ(mproc_wait(&w, 1, 0), MPROC_ECLOSED);
  // Objects are described at create and start, so a closed end is refused
  // there.
  Args args;
  EXPECT_EQ(mproc_args_add_object(args.a, nullptr, p.a), MPROC_OK);
  mproc_process *proc = nullptr;
  EXPECT_EQ(mproc_process_create(&proc, "conn_echo", args, nullptr),
            MPROC_ECLOSED);
  EXPECT_EQ(proc, nullptr);
}

TEST(ConnErrors, CloseFromAnotherThreadWhileReceiving) {
  Pipe p;
  std::atomic<int> rc{1};
  double t0 = test_now();
  // Windows must cancel the read, so its timeout is long enough that a
  // stalled test thread cannot let it expire first; POSIX runs to it.
  double timeout = test_on_windows() ? 30.0 : 1.0;
  std::thread t([&] {
    char buf[8];
    size_t n = 0;
    rc = mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, timeout);
  });
  // Close once the receive is in progress (it holds the receive lock).
  ASSERT_TRUE(test_wait_for([&] { return mproc__conn_test_rx_held(p.a) == 3; }));
  EXPECT_EQ(mproc_conn_close(p.a), MPROC_OK);
  t.join();
  // Windows cancels the blocked read; POSIX lets it run to its timeout.
  if (test_on_windows()) {
    EXPECT_EQ(rc.load(), MPROC_ECLOSED);
  } else {
    EXPECT_TRUE(rc == MPROC_ETIMEDOUT || rc == MPROC_ECLOSED) << rc;
  }
  EXPECT_LT(test_now() - t0, 25.0);
  EXPECT_EQ(mproc_conn_poll(p.a, 0), MPROC_ECLOSED);
}

// ---- threads ----------------------------------------------------------------

namespace {
// Size of message i of a wake-up stream: mostly small (the ring), with
// sizes around the ring's capacity and the frame header, and 0 bytes.
size_t wake_size(long i) {
  static const size_t odd[] = {0, 1, 7, 8, 9, 65519, 65527, 65528,
                               65529, 65536, 65544, 70000};
  return i % 17 == 5 ? odd[(i / 17) % 12] : (size_t)(i * 37 % 300);
}

// Streams messages (pattern(wake_size(i), i)) with pauses, so the receiver
// goes from spinning to asleep and back, then the end marker "END!".
void wake_stream(mproc_conn *c, unsigned seed) {
  TestRounds r(300, 3000, 5);
  while (r.next()) {
    long i = r.i();
    ASSERT_EQ(send_str(c, pattern(wake_size(i), seed + (unsigned)i)), MPROC_OK);
    if (i % 50 == 49)
      std::this_thread::sleep_for(std::chrono::milliseconds(2)); // asleep
    else if (i % 3 == 0)
      std::this_thread::sleep_for(std::chrono::microseconds(40 + i % 90));
  }
  ASSERT_EQ(send_str(c, "END!"), MPROC_OK);
}

// Checks message m as the next one of stream k; false on the end marker.
bool wake_check(std::string &m, long *next, unsigned seed) {
  if (m == "END!")
    return false;
  EXPECT_EQ(m, pattern(wake_size(*next), seed + (unsigned)*next)) << *next;
  ++*next;
  return true;
}

// Runs fn (a receiver that waits with MPROC_FOREVER) and fails if it has
// not finished after 60 s: a lost wake-up.  Then a message on each end
// (through the pipe: the receiver asked for a wake-up) gets it out.
void run_or_rescue(std::function<void()> fn, std::vector<mproc_conn *> ends,
                   std::atomic<bool> *rescued) {
  auto f = std::async(std::launch::async, fn);
  if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "receiver still waiting: lost wake-up";
    *rescued = true;
    while (f.wait_for(std::chrono::milliseconds(100)) !=
           std::future_status::ready)
      for (mproc_conn *e : ends)
        (void)send_str(e, "END!");
  }
  f.get();
}
} // namespace

// Lost wake-ups: a receiver blocked with MPROC_FOREVER in a receive, in
// mproc_conn_poll, or in mproc_wait over three connections, while senders
// stream small messages with pauses: it never sleeps through a message,
// and every message arrives whole and in order.
TEST(ConnThreads, ForeverReceiverNeverMissesAWakeUp) {
  for (int mode = 0; mode < 3; mode++) {
    SCOPED_TRACE(mode);
    const int npipes = mode == 2 ? 3 : 1;
    std::vector<std::unique_ptr<Pipe>> ps;
    std::vector<mproc_conn *> tx;
    for (int k = 0; k < npipes; k++) {
      ps.emplace_back(new Pipe());
      tx.push_back(ps.back()->b);
    }
    std::atomic<bool> rescued{false};
    std::vector<std::thread> senders;
    for (int k = 0; k < npipes; k++)
      senders.emplace_back([&, k] { wake_stream(tx[k], 1000u * (unsigned)k); });
    run_or_rescue(
        [&] {
          std::vector<long> next(npipes, 0);
          std::vector<bool> open(npipes, true);
          std::string m;
          for (int left = npipes; left > 0 && !rescued;) {
            if (mode < 2) {
              if (mode == 1) {
                ASSERT_EQ(mproc_conn_poll(ps[0]->a, MPROC_FOREVER), 1);
              }
              ASSERT_EQ(recv_str(ps[0]->a, &m, mode ? 30 : MPROC_FOREVER),
                        MPROC_OK);
              left -= !wake_check(m, &next[0], 0) ? 1 : 0;
              continue;
            }
            mproc_waitable w[3];
            for (int k = 0; k < npipes; k++)
              w[k] = {MPROC_WAIT_CONN, ps[k]->a, MPROC_INVALID_HANDLE, 0};
            ASSERT_GE(mproc_wait(w, (size_t)npipes, MPROC_FOREVER), 1);
            for (int k = 0; k < npipes; k++) {
              if (!w[k].ready || !open[k])
                continue;
              int rc = recv_str(ps[k]->a, &m, 0);
              if (rc == MPROC_ETIMEDOUT)
                continue; // ready for a message that another look took
              ASSERT_EQ(rc, MPROC_OK);
              if (!wake_check(m, &next[k], 1000u * (unsigned)k)) {
                open[k] = false;
                left--;
              }
            }
          }
        },
        tx, &rescued);
    for (auto &pp : ps) // a receiver that failed early: senders see EOF
      EXPECT_EQ(mproc_conn_close(pp->a), MPROC_OK);
    for (auto &t : senders)
      t.join();
  }
}

TEST(ConnThreads, ConcurrentSendersNeverInterleave) {
  Pipe p;
  const int nthreads = 4;
  std::vector<std::thread> ts;
  // Each thread sends 30 to 300 messages (as time allows), then an 8-byte
  // end marker {k, count}.
  for (int k = 0; k < nthreads; k++)
    ts.emplace_back([&, k] {
      TestRounds r(30, 300, 10);
      while (r.next()) {
        int i = (int)r.i();
        // Sizes cross the 4 KiB atomic-write limit and the 64 KiB buffer.
        size_t size = 9 + (size_t)((i * 7919 + k * 104729) % 90000);
        std::string m = pattern(size, (unsigned)(k * 100000 + i));
        uint32_t tag[2] = {(uint32_t)k, (uint32_t)i};
        memcpy(&m[0], tag, sizeof tag);
        EXPECT_EQ(send_str(p.b, m), MPROC_OK);
      }
      uint32_t end[2] = {(uint32_t)k, (uint32_t)(r.done() - 1)};
      EXPECT_EQ(mproc_conn_send_bytes(p.b, end, sizeof end), MPROC_OK);
    });
  int next[nthreads] = {0};
  std::string m;
  for (int ended = 0; ended < nthreads;) {
    ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
    ASSERT_GE(m.size(), 8u);
    uint32_t tag[2];
    memcpy(tag, m.data(), sizeof tag);
    ASSERT_LT(tag[0], (uint32_t)nthreads);
    if (m.size() == 8) { // the end marker: every message came before it
      ASSERT_EQ(tag[1] + 1, (uint32_t)next[tag[0]]);
      ended++;
      continue;
    }
    ASSERT_EQ(tag[1], (uint32_t)next[tag[0]]++);
    std::string want = pattern(m.size(), tag[0] * 100000 + tag[1]);
    ASSERT_TRUE(m.compare(8, std::string::npos, want, 8, std::string::npos) ==
                0);
  }
  for (auto &t : ts)
    t.join();
}

// ---- mproc_wait ---------------------------------------------------------------

TEST(ConnWait, SeveralConnectionsAndProcessesTogether) {
  Pipe p1, p2, p3(0);
  // The process lives until the test lets it go, however slow the machine.
  mproc_event *go = nullptr;
  ASSERT_EQ(mproc_event_create(&go), MPROC_OK);
  Args args;
  ASSERT_EQ(mproc_args_add_object(args.a, nullptr, go), MPROC_OK);
  mproc_process *proc = test_start("conn_wait_event", args);
  ASSERT_NE(proc, nullptr);
  mproc_waitable w[4] = {
      {MPROC_WAIT_CONN, p1.a, MPROC_INVALID_HANDLE, 0},
      {MPROC_WAIT_CONN, p2.a, MPROC_INVALID_HANDLE, 0},
      {MPROC_WAIT_CONN, p3.a, MPROC_INVALID_HANDLE, 0},
      {MPROC_WAIT_PROCESS, proc, MPROC_INVALID_HANDLE, 0}};
  EXPECT_EQ(mproc_wait(w, 4, 0), 0);

  ASSERT_EQ(send_str(p2.b, "two"), MPROC_OK);
  EXPECT_EQ(mproc_wait(w, 4, 30), 1);
  EXPECT_EQ(w[0].ready + w[1].ready * 2 + w[2].ready * 4, 2);
  EXPECT_EQ(mproc_wait(w, 4, 30), 1); // still there: waiting consumes nothing
  std::string m;
  EXPECT_EQ(recv_str(p2.a, &m), MPROC_OK);
  EXPECT_EQ(m, "two");

  // Two messages arrive in one read: the second sits in the read-ahead
  // buffer while the OS pipe is empty, and must still count as ready.
  ASSERT_EQ(send_str(p1.b, "first"), MPROC_OK);
  ASSERT_EQ(send_str(p1.b, "second"), MPROC_OK);
  EXPECT_EQ(recv_str(p1.a, &m), MPROC_OK);
  EXPECT_EQ(m, "first");
  EXPECT_EQ(mproc_wait(w, 4, 0), 1);
  EXPECT_EQ(w[0].ready, 1);
  EXPECT_EQ(recv_str(p1.a, &m), MPROC_OK);
  EXPECT_EQ(m, "second");

  // A message from another thread wakes a wait in progress (the sleep only
  // makes it likely that the wait is in progress: the verdict holds either
  // way, and no hook tells that mproc_wait is blocked).
  std::thread t([&] {
    test_sleep_ms(50);
    EXPECT_EQ(send_str(p3.b, "three"), MPROC_OK);
  });
  EXPECT_GE(mproc_wait(w, 4, 30), 1);
  t.join();
  EXPECT_EQ(w[2].ready, 1);
  EXPECT_EQ(recv_str(p3.a, &m), MPROC_OK);

  // The process ends; end-of-file of a closed peer is ready too.
  ASSERT_EQ(mproc_conn_close(p2.b), MPROC_OK);
  ASSERT_EQ(mproc_event_set(go), MPROC_OK);
  double t0 = test_now();
  while (!w[3].ready && test_now() - t0 < 30)
    ASSERT_GE(mproc_wait(w, 4, 30), 1);
  EXPECT_EQ(w[3].ready, 1);
  EXPECT_EQ(w[1].ready, 1);
  EXPECT_EQ(w[0].ready, 0);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
  mproc_event_free(go);
}

// ---- children ------------------------------------------------------------------

TEST(ConnChild, EchoServer) {
  Pipe p;
  mproc_process *proc = start_with_own_end("conn_echo", p.b);
  ASSERT_NE(proc, nullptr);
  const size_t sizes[] = {0, 1, 100, 4088, 4089, 65536, 1 << 20, 3};
  std::string m;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    std::string want = pattern(sizes[i], (unsigned)i);
    ASSERT_EQ(send_str(p.a, want), MPROC_OK);
    ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
    ASSERT_TRUE(m == want) << sizes[i];
  }
  for (int i = 0; i < 500; i++) {
    ASSERT_EQ(send_str(p.a, std::to_string(i)), MPROC_OK);
    ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
    ASSERT_EQ(m, std::to_string(i));
  }
  ASSERT_EQ(send_str(p.a, "STOP"), MPROC_OK);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
  // The child is gone and the parent closed its copy: end-of-file.
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_EEOF);
}

// Sends pattern(wake_size(i), i) on arg 0 for i = 0, 1, ... until killed
// (or the receiver is gone), pausing now and then.
TEST_ENTRY(conn_stream_until_killed) {
  mproc_conn *c = arg_conn(args, 0);
  if (!c)
    return 2;
  for (long i = 0;; i++) {
    if (send_str(c, pattern(wake_size(i), (unsigned)i)) != MPROC_OK)
      return 3;
    if (i % 97 == 96)
      test_sleep_ms(1);
  }
}

// A sender killed anywhere inside its stream (ring copies, pipe writes,
// bells): the receiver gets whole messages in order, never a torn or
// phantom one, and then end-of-file (or MPROC_EBROKEN when the kill cut
// a frame short), by its deadline.
TEST(ConnChild, SenderKilledWhileStreamingLeavesNoTornMessage) {
  TestRounds r(3, 12, 6);
  while (r.next()) {
    Pipe p(0);
    mproc_process *proc = start_with_own_end("conn_stream_until_killed", p.b);
    ASSERT_NE(proc, nullptr);
    std::string m;
    long i = 0, stop = 40 + (r.i() * 331) % 900;
    for (; i < stop; i++) {
      ASSERT_EQ(recv_str(p.a, &m, 30), MPROC_OK) << i;
      ASSERT_TRUE(m == pattern(wake_size(i), (unsigned)i)) << i;
    }
    ASSERT_EQ(mproc_process_kill(proc), MPROC_OK);
    int rc;
    double t0 = test_now();
    while ((rc = recv_str(p.a, &m, 30)) == MPROC_OK) {
      ASSERT_TRUE(m == pattern(wake_size(i), (unsigned)i)) << i;
      i++;
    }
    EXPECT_TRUE(rc == MPROC_EEOF || rc == MPROC_EBROKEN) << rc;
    EXPECT_LT(test_now() - t0, 20.0);
    EXPECT_EQ(test_join_code(proc), -9);
    mproc_process_free(proc);
  }
}

TEST(ConnChild, EofAfterThePeerProcessIsKilled) {
  Pipe p;
  mproc_process *proc = start_with_own_end("conn_hold", p.b);
  ASSERT_NE(proc, nullptr);
  std::string m;
  ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "ready");
  EXPECT_EQ(mproc_conn_poll(p.a, 0.05), 0);
  ASSERT_EQ(mproc_process_kill(proc), MPROC_OK);
  double t0 = test_now();
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_EEOF);
  EXPECT_LT(test_now() - t0, 20.0);
  EXPECT_EQ(test_join_code(proc), -9);
  mproc_process_free(proc);
  test_sleep_ms(25); // past a tick of the sender's coarse clock
  EXPECT_EQ(send_str(p.a, "anyone?"), MPROC_EEOF);
}

TEST(ConnChild, ReadAheadTravelsWithTheEnd) {
  Pipe p;
  ASSERT_EQ(send_str(p.b, "one"), MPROC_OK);
  ASSERT_EQ(send_str(p.b, "two"), MPROC_OK);
  ASSERT_EQ(send_str(p.b, "three"), MPROC_OK);
  std::string m;
  ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
  ASSERT_EQ(m, "one");
  // "two" and "three" were read ahead with "one": they go with the end.
  mproc_process *proc = start_with_own_end("conn_recv_report", p.a, 2);
  ASSERT_NE(proc, nullptr);
  ASSERT_EQ(recv_str(p.b, &m), MPROC_OK);
  EXPECT_EQ(m, "two|three");
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
}

TEST(ConnChild, OneWayStreamToAChild) {
  Pipe p(0);
  const int n = 400;
  mproc_process *proc = start_with_own_end("conn_check_stream", p.a, n);
  ASSERT_NE(proc, nullptr);
  for (int i = 0; i < n; i++)
    ASSERT_EQ(send_str(p.b, pattern((size_t)(i * 37 % 5000), (unsigned)i)),
              MPROC_OK);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
  test_sleep_ms(25); // past a tick of the sender's coarse clock
  EXPECT_EQ(send_str(p.b, "gone"), MPROC_EEOF);
}

// Small frames go through a shared-memory ring, big ones (and those sent
// while the receiver sleeps) through the pipe: the receiver must still see
// them in the order sent.
TEST(ConnChild, RingAndPipeFramesKeepTheirOrder) {
  Pipe p(0);
  const int n = 900;
  mproc_process *proc = start_with_own_end("conn_send_mixed", p.b, n);
  ASSERT_NE(proc, nullptr);
  ASSERT_NO_FATAL_FAILURE(expect_mixed(p.a, n));
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_EEOF);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
}

// A sender that fills the ring while nobody receives waits only briefly
// for room, then sends through the pipe: the sends do not block (the pipe
// has room for the rest), and the receiver gets every message in order.
TEST(ConnFrames, SendsPastAFullRingGoThroughThePipeInOrder) {
#ifdef _WIN32
  GTEST_SKIP() << "Windows pipes have no ring (and a pipe buffer smaller "
                  "than these messages)";
#endif
  Pipe p(0);
  // 910 72-byte frames fill the 64 KiB ring; the other 190 (13.7 KB) fit
  // any pipe's buffer (16 KiB at least).
  const int n = 1100;
  double t0 = test_now();
  for (int i = 0; i < n; i++)
    ASSERT_EQ(send_str(p.b, pattern(64, (unsigned)i)), MPROC_OK) << i;
  EXPECT_LT(test_now() - t0, 10.0);
  std::string m;
  for (int i = 0; i < n; i++) {
    ASSERT_EQ(recv_str(p.a, &m, 30), MPROC_OK) << i;
    ASSERT_TRUE(m == pattern(64, (unsigned)i)) << i;
  }
  EXPECT_EQ(recv_str(p.a, &m, 0), MPROC_ETIMEDOUT);
}

// Passes the end in arg 0 on to a grandchild that sends arg 1 mixed
// messages (conn_send_mixed), waits for it, then sends "RELAY-DONE" itself.
TEST_ENTRY(conn_relay_mixed) {
  mproc_conn *c = arg_conn(args, 0);
  int64_t n = 0;
  mproc_arg_int(args, 1, &n);
  if (!c)
    return 2;
  mproc_process *g = start_with_conn("conn_send_mixed", c, n);
  if (!g)
    return 3;
  int code = test_join_code(g);
  mproc_process_free(g);
  if (code != 0)
    return 4;
  return send_str(c, "RELAY-DONE") == MPROC_OK ? 0 : 5;
}

// An end passed on to a grandchild (in every start method) shares the
// ring: the grandchild's messages arrive whole and in order, then the
// child's, then end-of-file once both have exited.
TEST(ConnChild, EndPassedOnToAGrandchildKeepsOrder) {
  Pipe p(0);
  const int n = 300;
  mproc_process *proc = start_with_own_end("conn_relay_mixed", p.b, n);
  ASSERT_NE(proc, nullptr);
  ASSERT_NO_FATAL_FAILURE(expect_mixed(p.a, n));
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_OK);
  EXPECT_EQ(m, "RELAY-DONE");
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_EEOF);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
}

// mproc_wait() saying a connection is ready means a receive does not wait,
// also while messages stream in through the ring (a stale wake-up in the
// pipe must not count as a message).
TEST(ConnChild, WaitThenReceiveDoesNotWaitWhileStreaming) {
  Pipe p(0);
  const int n = 900;
  mproc_process *proc = start_with_own_end("conn_send_mixed", p.b, n);
  ASSERT_NE(proc, nullptr);
  std::string m;
  for (int i = 0; i < n; i++) {
    mproc_waitable w = {MPROC_WAIT_CONN, p.a, MPROC_INVALID_HANDLE, 0};
    ASSERT_EQ(mproc_wait(&w, 1, 30), 1) << i;
    // A big message may be partly there (ready, as in Python): give it
    // time; a small one is there whole.
    ASSERT_EQ(recv_str(p.a, &m, mixed_size(i) > 4096 ? 30 : 0), MPROC_OK) << i;
    ASSERT_TRUE(m == pattern(mixed_size(i), (unsigned)i)) << i;
  }
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
}

TEST(ConnChild, SmallMessagesFromSeveralProcessesDoNotInterleave) {
  Pipe p;
  const int per = 1500;
  mproc_process *procs[2];
  for (int k = 0; k < 2; k++) {
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, p.b), MPROC_OK);
    a.i(per).i(k);
    procs[k] = test_start("conn_blast", a);
    ASSERT_NE(procs[k], nullptr);
  }
  int64_t next[2] = {0, 0};
  std::string m;
  for (int j = 0; j < 2 * per; j++) {
    ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
    ASSERT_EQ(m.size(), 1000u);
    int k = m[999] - 'A';
    ASSERT_TRUE(k == 0 || k == 1);
    int64_t seq;
    memcpy(&seq, m.data(), sizeof seq);
    ASSERT_EQ(seq, next[k]++);
    ASSERT_EQ(m.find_first_not_of((char)('A' + k), 8), std::string::npos);
  }
  for (int k = 0; k < 2; k++) {
    EXPECT_EQ(test_join_code(procs[k]), 0);
    mproc_process_free(procs[k]);
  }
}

TEST(ConnChild, FreeInTheChildClosesItsEnd) {
  Pipe p;
  mproc_event *go = nullptr;
  ASSERT_EQ(mproc_event_create(&go), MPROC_OK);
  Args a;
  ASSERT_EQ(mproc_args_add_object(a.a, nullptr, p.b), MPROC_OK);
  ASSERT_EQ(mproc_args_add_object(a.a, nullptr, go), MPROC_OK);
  mproc_process *proc = test_start("conn_free_then_wait", a);
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(mproc_conn_close(p.b), MPROC_OK);
  // Spawned children hold only what they were given, so closing it there
  // ends the stream while the child still runs (it waits for `go`).  A fork
  // child also keeps the descriptors it inherited with the parent's own
  // object, which it does not free here (the object it receives owns
  // duplicates), so there end-of-file comes when it exits.
  bool forked = mproc_get_start_method() == MPROC_START_FORK;
  if (forked) {
    EXPECT_EQ(mproc_event_set(go), MPROC_OK);
  }
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_EEOF);
  if (!forked) {
    EXPECT_EQ(mproc_process_is_alive(proc), 1);
    EXPECT_EQ(mproc_event_set(go), MPROC_OK);
  }
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_event_free(go);
  mproc_process_free(proc);
}

// Receives one message on the receive-only end in arg 0 and writes it to the
// raw handle in arg 1.
TEST_ENTRY(conn_recv_one_to_handle) {
  mproc_conn *c = arg_conn(args, 0);
  mproc_handle_t out = MPROC_INVALID_HANDLE;
  mproc_arg_handle(args, 1, &out);
  std::string m;
  if (!c || recv_str(c, &m, 30) != MPROC_OK)
    return 2;
  return test_write_all(out, m.data(), m.size()) ? 0 : 3;
}

// The parent received from the end between adding it to the arguments and
// starting the child: the child must get the end as it is at start, so it
// neither sees again what the parent took nor misses what was read ahead.
TEST(ConnChild, EndIsHandedOverAsItIsAtStart) {
  mproc_conn *r = nullptr, *w = nullptr;
  ASSERT_EQ(mproc_pipe(&r, &w, 0), MPROC_OK);
  for (const char *m : {"A", "B", "C"})
    ASSERT_EQ(mproc_conn_send_bytes(w, m, 1), MPROC_OK);
  std::string got;
  ASSERT_EQ(recv_str(r, &got, 30), MPROC_OK);
  EXPECT_EQ(got, "A"); // B and C are likely in r's read-ahead now
  TestPipe pipe;
  Args a;
  ASSERT_EQ(mproc_args_add_object(a.a, nullptr, r), MPROC_OK);
  a.h(pipe.w);
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, "conn_recv_one_to_handle", a, nullptr),
            MPROC_OK);
  ASSERT_EQ(recv_str(r, &got, 30), MPROC_OK); // after create, before start
  EXPECT_EQ(got, "B");
  ASSERT_EQ(mproc_process_start(p), MPROC_OK);
  pipe.close_w();
  EXPECT_EQ(test_read_all(pipe.r), "C");
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  mproc_conn_free(r);
  mproc_conn_free(w);
}

// ---- one end shared by several threads or processes (issue 8, item 9) ------

namespace {

// A big frame that says who sent it: u32 sender, u32 sequence number, then
// pattern(size, sender * 1000 + seq) from byte 8 on.
std::string tagged_frame(size_t size, uint32_t sender, uint32_t seq) {
  std::string m = pattern(size, sender * 1000u + seq);
  uint32_t tag[2] = {sender, seq};
  memcpy(&m[0], tag, sizeof tag);
  return m;
}

// "" if m is an intact tagged_frame of `size` bytes (tag in *sender, *seq),
// else what is wrong with it.
std::string check_tagged(const std::string &m, size_t size, uint32_t *sender,
                         uint32_t *seq) {
  if (m.size() != size)
    return "size " + std::to_string(m.size());
  uint32_t tag[2];
  memcpy(tag, m.data(), sizeof tag);
  *sender = tag[0];
  *seq = tag[1];
  if (tag[0] > 64 || tag[1] > 100000 || m != tagged_frame(size, tag[0], tag[1]))
    return "damaged payload";
  return "";
}

const size_t kBigFrame = 256 << 10;

// recv_str for ends with several receivers: with a buffer for any frame of
// these tests, so no receive fails with MPROC_ERANGE (retrying with a
// bigger buffer could meet another receiver's next message).
int recv_big(mproc_conn *c, std::string *out, double timeout) {
  std::vector<char> buf(kBigFrame);
  size_t n = 0;
  int rc = mproc_conn_recv_bytes(c, buf.data(), buf.size(), &n, timeout);
  if (rc == MPROC_OK)
    out->assign(buf.data(), n);
  return rc;
}

} // namespace

// Waits for the event in arg 1, then sends arg 3 frames of kBigFrame bytes
// tagged with sender arg 2 on the end in arg 0.
TEST_ENTRY(conn_send_big) {
  mproc_conn *c = arg_conn(args, 0);
  void *ev = nullptr;
  int64_t tag = 0, n = 0;
  mproc_arg_object(args, 1, MPROC_OBJ_EVENT, &ev);
  mproc_arg_int(args, 2, &tag);
  mproc_arg_int(args, 3, &n);
  if (!c || !ev || mproc_event_wait((mproc_event *)ev, 60) != MPROC_OK)
    return 2;
  for (int64_t i = 0; i < n; i++) {
    std::string m = tagged_frame(kBigFrame, (uint32_t)tag, (uint32_t)i);
    int rc = send_str(c, m);
    if (rc != MPROC_OK)
      return 10 - rc;
  }
  return 0;
}

TEST(ConnShared, BigFramesFromSeveralThreadsArriveWhole) {
  Pipe p;
  const int nthreads = 2, per = 8;
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int k = 0; k < nthreads; k++)
    ts.emplace_back([&, k] {
      while (!go)
        std::this_thread::yield();
      for (int i = 0; i < per; i++)
        EXPECT_EQ(send_str(p.b, tagged_frame(kBigFrame, (uint32_t)k,
                                             (uint32_t)i)),
                  MPROC_OK);
    });
  go = true;
  uint32_t next[nthreads] = {0, 0};
  std::string m;
  for (int j = 0; j < nthreads * per; j++) {
    ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
    uint32_t who = 0, seq = 0;
    ASSERT_EQ(check_tagged(m, kBigFrame, &who, &seq), "") << "frame " << j;
    ASSERT_LT(who, (uint32_t)nthreads);
    ASSERT_EQ(seq, next[who]++);
  }
  for (auto &t : ts)
    t.join();
}

// Two children share one sending end; the parent receives.  Without a lock
// held for a whole frame, frames bigger than the pipe's buffer interleave.
TEST(ConnShared, BigFramesFromSeveralProcessesArriveWhole) {
  Pipe p;
  mproc_event *go = nullptr;
  ASSERT_EQ(mproc_event_create(&go), MPROC_OK);
  const int per = 8;
  mproc_process *procs[2];
  for (int k = 0; k < 2; k++) {
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, p.b), MPROC_OK);
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, go), MPROC_OK);
    a.i(k).i(per);
    procs[k] = test_start("conn_send_big", a);
    ASSERT_NE(procs[k], nullptr);
  }
  ASSERT_EQ(mproc_event_set(go), MPROC_OK); // both start at once
  uint32_t next[2] = {0, 0};
  std::string m;
  int bad = 0;
  for (int j = 0; j < 2 * per && bad == 0; j++) {
    int rc = recv_str(p.a, &m);
    EXPECT_EQ(rc, MPROC_OK) << "frame " << j;
    if (rc != MPROC_OK) {
      bad = 1;
      break;
    }
    uint32_t who = 0, seq = 0;
    std::string why = check_tagged(m, kBigFrame, &who, &seq);
    EXPECT_EQ(why, "") << "frame " << j;
    bad = !why.empty() || who > 1 || seq != next[who]++;
  }
  EXPECT_EQ(bad, 0);
  if (bad) // the children may be stuck on a damaged stream
    for (auto *proc : procs)
      mproc_process_kill(proc);
  for (auto *proc : procs) {
    int code = test_join_code(proc);
    if (!bad) {
      EXPECT_EQ(code, 0);
    }
    mproc_process_free(proc);
  }
  mproc_event_free(go);
}

// Receives tagged frames (any size up to arg 2) on the end in arg 0 until
// an empty one; writes the sequence numbers it got (u32 each) to the handle
// in arg 1.  Exits 0 if every frame was intact.
TEST_ENTRY(conn_recv_tagged) {
  mproc_conn *c = arg_conn(args, 0);
  mproc_handle_t out = MPROC_INVALID_HANDLE;
  mproc_arg_handle(args, 1, &out);
  if (!c)
    return 2;
  std::vector<uint32_t> got;
  int code = 0;
  for (;;) {
    std::string m;
    int rc = recv_big(c, &m, 60);
    if (rc != MPROC_OK) {
      code = 10 - rc;
      break;
    }
    if (m.empty())
      break;
    uint32_t who = 0, seq = 0;
    if (m.size() < 8 || !check_tagged(m, m.size(), &who, &seq).empty()) {
      code = 3;
      break;
    }
    got.push_back(seq);
  }
  if (!test_write_all(out, got.data(), got.size() * sizeof(uint32_t)))
    return 4;
  return code;
}

// Two children receive from one end while the parent sends frames of mixed
// sizes (some within the read-ahead, some bigger): each frame goes whole to
// exactly one of them.
TEST(ConnShared, SeveralReceivingProcessesGetDisjointWholeFrames) {
  Pipe p;
  const uint32_t n = 120;
  TestPipe out[2];
  mproc_process *procs[2];
  for (int k = 0; k < 2; k++) {
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, p.a), MPROC_OK);
    a.h(out[k].w);
    procs[k] = test_start("conn_recv_tagged", a);
    ASSERT_NE(procs[k], nullptr);
    out[k].close_w();
  }
  // Ours closed, so a send fails (end-of-file) rather than blocks should
  // both receivers give up.
  ASSERT_EQ(mproc_conn_close(p.a), MPROC_OK);
  int rc = MPROC_OK;
  for (uint32_t i = 0; i < n && rc == MPROC_OK; i++) {
    size_t size = i % 3 == 0 ? 100000 + i * 7 : 16 + (i * 131) % 3000;
    rc = send_str(p.b, tagged_frame(size, 9, i));
  }
  for (int k = 0; k < 2 && rc == MPROC_OK; k++)
    rc = mproc_conn_send_bytes(p.b, "", 0); // stop, one each
  EXPECT_EQ(rc, MPROC_OK);
  std::vector<int> seen(n, 0);
  for (int k = 0; k < 2; k++) {
    std::string r = test_read_all(out[k].r);
    int code = test_join_code(procs[k]);
    EXPECT_EQ(code, 0) << "receiver " << k;
    mproc_process_free(procs[k]);
    for (size_t off = 0; off + 4 <= r.size(); off += 4) {
      uint32_t seq;
      memcpy(&seq, r.data() + off, 4);
      ASSERT_LT(seq, n);
      seen[seq]++;
    }
  }
  for (uint32_t i = 0; i < n; i++)
    EXPECT_EQ(seen[i], 1) << "frame " << i;
}

// Two threads receive from one end: disjoint, whole frames.
TEST(ConnShared, SeveralReceivingThreadsGetDisjointWholeFrames) {
  Pipe p;
  const uint32_t n = 200;
  std::vector<int> seen(n, 0);
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int k = 0; k < 2; k++)
    ts.emplace_back([&] {
      for (;;) {
        std::string m;
        if (recv_big(p.a, &m, 60) != MPROC_OK) {
          bad++;
          return;
        }
        if (m.empty())
          return;
        uint32_t who = 0, seq = 0;
        if (m.size() < 8 || !check_tagged(m, m.size(), &who, &seq).empty() ||
            seq >= n) {
          bad++;
          return;
        }
        seen[seq]++; // each index written by one thread at most, if correct
      }
    });
  for (uint32_t i = 0; i < n; i++) {
    size_t size = i % 4 == 0 ? 90000 : 16 + (i * 131) % 3000;
    ASSERT_EQ(send_str(p.b, tagged_frame(size, 9, i)), MPROC_OK);
  }
  for (int k = 0; k < 2; k++)
    ASSERT_EQ(mproc_conn_send_bytes(p.b, "", 0), MPROC_OK);
  for (auto &t : ts)
    t.join();
  EXPECT_EQ(bad.load(), 0);
  for (uint32_t i = 0; i < n; i++)
    EXPECT_EQ(seen[i], 1) << "frame " << i;
}

// Sends one frame of 4 MiB on the end in arg 0 (more than the OS buffer
// holds, so it blocks in the middle until someone reads).
TEST_ENTRY(conn_send_huge) {
  mproc_conn *c = arg_conn(args, 0);
  if (!c)
    return 2;
  std::string m(4 << 20, 'h');
  return send_str(c, m) == MPROC_OK ? 0 : 3;
}

// A sender killed in the middle of a frame leaves a damaged stream: the
// next send on that end and the receives report MPROC_EBROKEN instead of
// sending or delivering mis-framed bytes.
TEST(ConnShared, SenderKilledInsideAFrameBreaksTheStream) {
  Pipe p;
  mproc_process *proc = start_with_conn("conn_send_huge", p.b);
  ASSERT_NE(proc, nullptr);
  // Bytes arrive once the child is inside its frame; the frame is bigger
  // than the pipe holds, so it stays inside until we read the rest.
  ASSERT_EQ(mproc_conn_poll(p.a, 60), 1);
  ASSERT_EQ(mproc_process_kill(proc), MPROC_OK);
  EXPECT_NE(test_join_code(proc), 0);
  mproc_process_free(proc);
  // Take what arrived: the start of a message whose rest never comes.
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 0.2), MPROC_ETIMEDOUT);
  EXPECT_EQ(send_str(p.b, "next"), MPROC_EBROKEN);
  EXPECT_EQ(send_str(p.b, "next"), MPROC_EBROKEN);
  EXPECT_EQ(recv_str(p.a, &m, 5), MPROC_EBROKEN);
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 1); // ready: the error is there to take
}

// Receives on the end in arg 0 (without a timeout) until end-of-file or a
// message; returns 0 on either.
TEST_ENTRY(conn_recv_forever) {
  mproc_conn *c = arg_conn(args, 0);
  std::string m;
  if (!c)
    return 2;
  int rc = recv_str(c, &m, MPROC_FOREVER);
  return rc == MPROC_OK || rc == MPROC_EEOF ? 0 : 10 - rc;
}

namespace {
// Waits (bounded) until another process (the child) holds the receive
// lock of the end c (busy: and is in the middle of a frame).
bool wait_rx_holder(mproc_conn *c, bool busy = false) {
  double t0 = test_now();
  while (test_now() - t0 < 60) {
    if (mproc__conn_test_rx_held(c) == (busy ? 2 : 1))
      return true;
    test_sleep_ms(2);
  }
  return false;
}
} // namespace

// A receiver killed while it waits (between messages) takes nothing with
// it: the next receiver gets the next message, not an error.
TEST(ConnShared, ReceiverKilledWhileWaitingLeavesTheStreamIntact) {
  Pipe p;
  mproc_process *proc = start_with_conn("conn_recv_forever", p.a);
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(wait_rx_holder(p.a));
  ASSERT_EQ(mproc_process_kill(proc), MPROC_OK);
  EXPECT_NE(test_join_code(proc), 0);
  mproc_process_free(proc);
  ASSERT_EQ(send_str(p.b, "still fine"), MPROC_OK);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_OK);
  EXPECT_EQ(m, "still fine");
}

// A thread blocked in a receive without timeout does not hold up timed
// receives and polls of other threads on the same end past their deadline.
TEST(ConnShared, UntimedReceiverThreadDoesNotDelayTimedCalls) {
  Pipe p;
  std::atomic<int> rc{1};
  std::thread t([&] {
    std::string m;
    rc = recv_str(p.a, &m, MPROC_FOREVER);
  });
  // Ends the receive once the checks are done, or after 3 s should the
  // timed calls be stuck behind it (so a failure is a failure, not a hang).
  std::mutex mu;
  std::condition_variable cv;
  bool checked = false;
  std::thread unblock([&] {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, std::chrono::seconds(3), [&] { return checked; });
    EXPECT_EQ(send_str(p.b, "done"), MPROC_OK);
  });
  // Until the thread is inside (it holds the end's receive lock then); a
  // bounded look, not a sleep that hopes.
  double t0 = test_now();
  while (mproc__conn_test_rx_held(p.a) != 3 && test_now() - t0 < 30)
    test_sleep_ms(2);
  char buf[16];
  size_t n = 0;
  t0 = test_now();
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, 0.05),
            MPROC_ETIMEDOUT);
  EXPECT_LT(test_now() - t0, 2.0);
  t0 = test_now();
  EXPECT_EQ(mproc_conn_poll(p.a, 0.05), 0);
  EXPECT_LT(test_now() - t0, 2.0);
  {
    std::lock_guard<std::mutex> lk(mu);
    checked = true;
  }
  cv.notify_all();
  unblock.join();
  t.join();
  EXPECT_EQ(rc.load(), MPROC_OK);
}

// A receiver killed in the middle of a frame bigger than the read-ahead
// took part of it along: the next receiver gets MPROC_EBROKEN, not the
// rest of that frame read as if it were the next one.
TEST(ConnShared, ReceiverKilledInsideAFrameBreaksTheStream) {
  Pipe p;
  // The receiver dies exactly mid-frame (the kill point after it took the
  // frame's start out of the read-ahead): waiting for "holds the lock and
  // is busy" and then killing it could land while it was still filling the
  // read-ahead, which leaves an intact stream and an incomplete frame.
  mproc_process *proc = start_with_conn("conn_recv_die_at", p.a,
                                        MPROC__CONN_AT_MIDFRAME * 100);
  ASSERT_NE(proc, nullptr);
  unsigned char hdr[MPROC__CONN_HDR];
  mproc__conn_frame_header(hdr, 200000);
  std::string head(reinterpret_cast<char *>(hdr), sizeof hdr);
  head += std::string(100000, 'p');
  ASSERT_EQ(mproc__conn_send_raw(p.b, head.data(), head.size()), MPROC_OK);
  EXPECT_EQ(test_join_code(proc), 77);
  mproc_process_free(proc);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_EBROKEN);
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_EBROKEN);
}

#ifndef _WIN32
// Timed receives and polls return by their deadline even while another
// process holds the end's receive lock and is stopped (SIGSTOP, a debugger).
TEST(ConnShared, StoppedLockHolderDoesNotDelayTimedCalls) {
  Pipe p;
  mproc_process *proc = start_with_conn("conn_recv_forever", p.a);
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(wait_rx_holder(p.a));
  int64_t pid = 0;
  ASSERT_EQ(mproc_process_pid(proc, &pid), MPROC_OK);
  ASSERT_EQ(kill((pid_t)pid, SIGSTOP), 0);
  char buf[16];
  size_t n = 0;
  double t0 = test_now();
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, 0.05),
            MPROC_ETIMEDOUT);
  EXPECT_LT(test_now() - t0, 2.0);
  t0 = test_now();
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, 0),
            MPROC_ETIMEDOUT);
  EXPECT_LT(test_now() - t0, 2.0);
  t0 = test_now();
  EXPECT_EQ(mproc_conn_poll(p.a, 0.05), 0);
  EXPECT_LT(test_now() - t0, 2.0);
  ASSERT_EQ(kill((pid_t)pid, SIGCONT), 0);
  ASSERT_EQ(send_str(p.b, "bye"), MPROC_OK);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
}
#endif

// ---- ends a fork child inherits (issue 8: the three Connection hazards) ----
// A fork child gets a copy of each end as it was at the fork, including the
// state of parent threads that were inside a call then.  These tests fork
// explicitly (so they run in the spawn lane too); Windows has no fork.

namespace {

mproc_conn *g_fork_a = nullptr, *g_fork_b = nullptr;
mproc_event *g_fork_freed = nullptr, *g_fork_go = nullptr;

mproc_process *start_fork_child(const char *entry) {
  mproc_process_options o{};
  o.start_method = MPROC_START_FORK;
  return test_start(entry, nullptr, &o);
}

} // namespace

// Fork child: receives one message on the inherited duplex end g_fork_a and
// sends it back on the same end.
TEST_ENTRY(conn_fork_recv_echo) {
  std::string m;
  int rc = recv_str(g_fork_a, &m, 10);
  if (rc != MPROC_OK)
    return 10 - rc;
  return send_str(g_fork_a, "child:" + m) == MPROC_OK ? 0 : 3;
}

// A parent thread is inside a receive on the end when the child forks: the
// child's copy of the end's local receive lock is held by a thread that does
// not exist there.  The child must still receive (once the parent thread
// has let go of the shared receive lock), and each message goes to one.
TEST(ConnFork, ChildReceivesWhileAParentThreadWasInsideAReceive) {
  if (test_on_windows())
    GTEST_SKIP() << "no fork on Windows";
  Pipe p;
  std::string got_t;
  int rc_t = MPROC_OK;
  std::thread t([&] { rc_t = recv_str(p.a, &got_t, 60); });
  // The thread holds the receive lock: it is inside its receive.
  ASSERT_TRUE(test_wait_for([&] { return mproc__conn_test_rx_held(p.a) == 3; }));
  g_fork_a = p.a;
  mproc_process *child = start_fork_child("conn_fork_recv_echo");
  ASSERT_NE(child, nullptr);
  ASSERT_EQ(send_str(p.b, "m1"), MPROC_OK);
  ASSERT_EQ(send_str(p.b, "m2"), MPROC_OK);
  t.join();
  EXPECT_EQ(rc_t, MPROC_OK);
  int code = test_join_code(child);
  EXPECT_EQ(code, 0); // before: 10 - MPROC_ETIMEDOUT, after 10 s
  std::string back;
  if (code == 0) {
    EXPECT_EQ(recv_str(p.b, &back, 30), MPROC_OK);
  }
  EXPECT_TRUE((got_t == "m1" && back == "child:m2") ||
              (got_t == "m2" && back == "child:m1"))
      << got_t << " / " << back;
  mproc_process_free(child);
  g_fork_a = nullptr;
}

// Fork child: frees both inherited ends, says so, and lives on until told.
TEST_ENTRY(conn_fork_free_and_wait) {
  if (mproc_conn_free(g_fork_a) != nullptr ||
      mproc_conn_free(g_fork_b) != nullptr)
    return 2;
  if (mproc_event_set(g_fork_freed) != MPROC_OK)
    return 3;
  return mproc_event_wait(g_fork_go, 60) == MPROC_OK ? 0 : 4;
}

// A parent thread is inside a send on the end when the child forks, so the
// child's copy counts a call in progress that never ends there.  Freeing the
// end in the child must still close the child's descriptors: end-of-file
// reaches the parent while the child lives.
TEST(ConnFork, FreeInAForkChildReleasesItsDescriptors) {
  if (test_on_windows())
    GTEST_SKIP() << "no fork on Windows";
  Pipe p(0);
  ASSERT_EQ(mproc_event_create(&g_fork_freed), MPROC_OK);
  ASSERT_EQ(mproc_event_create(&g_fork_go), MPROC_OK);
  // 4 MiB cannot fit an OS pipe: the sender stays inside its send until the
  // parent below receives.
  std::string big = pattern((size_t)4 << 20, 5);
  int rc_t = MPROC_OK;
  std::thread t([&] { rc_t = send_str(p.b, big); });
  ASSERT_EQ(mproc_conn_poll(p.a, 30), 1); // its first bytes are there
  g_fork_a = p.a;
  g_fork_b = p.b;
  mproc_process *child = start_fork_child("conn_fork_free_and_wait");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(mproc_event_wait(g_fork_freed, 30), MPROC_OK);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_OK);
  EXPECT_TRUE(m == big);
  t.join();
  EXPECT_EQ(rc_t, MPROC_OK);
  EXPECT_EQ(mproc_conn_close(p.b), MPROC_OK);
  // Every copy of the sending end is closed now (before the fix the child
  // kept its own until it exited: a timeout here).
  EXPECT_EQ(recv_str(p.a, &m, 10), MPROC_EEOF);
  EXPECT_EQ(mproc_process_is_alive(child), 1);
  EXPECT_EQ(mproc_event_set(g_fork_go), MPROC_OK);
  EXPECT_EQ(test_join_code(child), 0);
  mproc_process_free(child);
  g_fork_a = g_fork_b = nullptr;
  g_fork_freed = mproc_event_free(g_fork_freed);
  g_fork_go = mproc_event_free(g_fork_go);
}

// Fork child: frees both inherited ends and exits.
TEST_ENTRY(conn_fork_free) {
  return mproc_conn_free(g_fork_a) == nullptr &&
                 mproc_conn_free(g_fork_b) == nullptr
             ? 0
             : 2;
}

// The parent keeps part of a big message (a receive timed out inside it)
// when the child forks.  The child's copy of that part, and of the receive
// lock it stands for, are the parent's: freeing the end in the child must
// neither mark the stream broken nor release the parent's lock.
TEST(ConnFork, ChildFreeingAnEndKeepsTheParentsPartOfAFrame) {
  if (test_on_windows())
    GTEST_SKIP() << "no fork on Windows";
  Pipe p(0);
  const size_t total = 200000, first = 8000; // first fits any OS pipe
  std::string body = pattern(total, 7);
  unsigned char hdr[MPROC__CONN_HDR];
  mproc__conn_frame_header(hdr, (uint32_t)total);
  std::string head(reinterpret_cast<char *>(hdr), sizeof hdr);
  head += body.substr(0, first);
  ASSERT_EQ(mproc__conn_send_raw(p.b, head.data(), head.size()), MPROC_OK);
  std::vector<char> buf(total);
  size_t n = 0;
  // The rest is not sent yet: the receive times out with the part kept.
  ASSERT_EQ(mproc_conn_recv_bytes(p.a, buf.data(), buf.size(), &n, 0.05),
            MPROC_ETIMEDOUT);
  g_fork_a = p.a;
  g_fork_b = p.b;
  mproc_process *child = start_fork_child("conn_fork_free");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(test_join_code(child), 0);
  mproc_process_free(child);
  g_fork_a = g_fork_b = nullptr;
  EXPECT_EQ(mproc__conn_test_rx_held(p.a), 3); // still ours
  std::thread t([&] {
    EXPECT_EQ(mproc__conn_send_raw(p.b, body.data() + first, total - first),
              MPROC_OK);
  });
  std::fill(buf.begin(), buf.end(), 0);
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf.data(), buf.size(), &n, 30),
            MPROC_OK); // before: MPROC_EBROKEN
  t.join();
  EXPECT_EQ(n, total);
  EXPECT_TRUE(std::string(buf.data(), n) == body);
}

// ---- a receiver that dies inside its update of the read-ahead ----------------

namespace {
// The kill point (conn.h) the child dies at, and how many times it passes
// it first.
int g_die_point, g_die_after;
void die_at(int point) {
  if (point == g_die_point && g_die_after-- == 0)
    _exit(77);
}
} // namespace

// Receives on the end in arg 0 until it dies at the kill point of arg 1
// (point * 100 + passes to let by); 3 if it never gets there.
TEST_ENTRY(conn_recv_die_at) {
  mproc_conn *c = arg_conn(args, 0);
  int64_t n = 0;
  mproc_arg_int(args, 1, &n);
  if (!c)
    return 2;
  g_die_point = (int)(n / 100);
  g_die_after = (int)(n % 100);
  mproc__conn_test_hook(die_at);
  for (int i = 0; i < 10; i++) {
    std::string m;
    int rc = recv_str(c, &m, 30);
    if (rc != MPROC_OK)
      return 10 - rc;
  }
  return 3;
}

// With msg-1..3 waiting on p.a: a child that dies in its third receive,
// the one that empties the read-ahead, right after taking the frame; then
// msg-4 is sent and this process must receive exactly msg-4.
static void die_in_third_receive_then_get_the_next(Pipe &p) {
  mproc_process *proc = start_with_conn("conn_recv_die_at", p.a,
                                        MPROC__CONN_AT_CONSUMED * 100 + 2);
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(test_join_code(proc), 77);
  mproc_process_free(proc);
  ASSERT_EQ(send_str(p.b, "msg-4"), MPROC_OK);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_OK);
  EXPECT_EQ(m, "msg-4");
  EXPECT_EQ(recv_str(p.a, &m, 0), MPROC_ETIMEDOUT);
}

// A receiver that dies right after it took the last frame of the shared
// read-ahead (its consumption published, the call not yet returned) leaves
// a read-ahead that its successor reads on from there: the successor gets
// the next message, never one that was already delivered.
TEST(ConnShared, ReceiverDyingAfterTakingAFrameLeavesNoDuplicates) {
  Pipe p(0);
  for (const char *m : {"msg-1", "msg-2", "msg-3"})
    ASSERT_EQ(send_str(p.b, m), MPROC_OK);
  ASSERT_NO_FATAL_FAILURE(die_in_third_receive_then_get_the_next(p));
}

// The same death, with the frames in the shared read-ahead rather than
// the ring (on POSIX a ring frame goes straight to the caller): the three
// frames go through the pipe in one write (a wait on the receiving end
// asks the next send for a wake-up there), the first receive reads them
// all, and the third empties the read-ahead.
TEST(ConnShared, ReceiverDyingAfterTakingAReadAheadFrameLeavesNoDuplicates) {
  Pipe p(0);
  std::string bytes;
  for (const char *m : {"msg-1", "msg-2", "msg-3"}) {
    unsigned char hdr[MPROC__CONN_HDR];
    mproc__conn_frame_header(hdr, (uint32_t)strlen(m));
    bytes.append(reinterpret_cast<char *>(hdr), sizeof hdr);
    bytes += m;
  }
  mproc_waitable w = {MPROC_WAIT_CONN, p.a, MPROC_INVALID_HANDLE, 0};
  ASSERT_EQ(mproc_wait(&w, 1, 0), 0);
  ASSERT_EQ(mproc__conn_send_raw(p.b, bytes.data(), bytes.size()), MPROC_OK);
  ASSERT_NO_FATAL_FAILURE(die_in_third_receive_then_get_the_next(p));
}

// A receiver that dies while it moves a partial frame to the front of the
// read-ahead (the move overlaps its source) leaves bytes its successor
// must not parse as frames: the successor gets MPROC_EBROKEN or the frame
// itself, never a frame made of the moved bytes.  The payload holds a
// valid-looking header where a reader of the half-moved bytes would look.
TEST(ConnShared, ReceiverDyingWhileMovingAPartialFrameIsNeverMisframed) {
  Pipe p(0);
  unsigned char hdr[MPROC__CONN_HDR], fake[MPROC__CONN_HDR];
  mproc__conn_frame_header(hdr, 92); // a whole frame of 100 bytes first
  std::string head(reinterpret_cast<char *>(hdr), sizeof hdr);
  head += std::string(92, 'a');
  mproc__conn_frame_header(hdr, 1000);
  mproc__conn_frame_header(fake, 5);
  std::string body(1000, 'b');
  // The bytes at offset 100 of the second frame move to the start of the
  // frame's old place first: a valid header of a 5-byte frame "EVIL!".
  memcpy(&body[100 - MPROC__CONN_HDR], fake, sizeof fake);
  memcpy(&body[100], "EVIL!", 5);
  head.append(reinterpret_cast<char *>(hdr), sizeof hdr);
  head += body.substr(0, 500); // 508 bytes: more than the 100 before them
  // One write, so that the child's first read takes all of it.  Through
  // the pipe: a wait on the receiving end asks the next send for a wake-up
  // there (from the ring, a receive would take the whole first frame
  // straight out, and leave the partial one at the front: no move).
  mproc_waitable w = {MPROC_WAIT_CONN, p.a, MPROC_INVALID_HANDLE, 0};
  ASSERT_EQ(mproc_wait(&w, 1, 0), 0);
  ASSERT_EQ(mproc__conn_send_raw(p.b, head.data(), head.size()), MPROC_OK);
  mproc_process *proc = start_with_conn("conn_recv_die_at", p.a,
                                        MPROC__CONN_AT_MOVED * 100 + 0);
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(test_join_code(proc), 77);
  mproc_process_free(proc);
  ASSERT_EQ(mproc__conn_send_raw(p.b, body.data() + 500, 500), MPROC_OK);
  std::string m;
  int rc = recv_str(p.a, &m, 30);
  if (rc == MPROC_OK)
    EXPECT_EQ(m, body);
  else
    EXPECT_EQ(rc, MPROC_EBROKEN);
}

namespace {
// Frames of 1..6000 bytes tagged (thread, seq) from several threads on one
// end, through the ring and the pipe, read by two threads sharing the other
// end, each receive first tried with a buffer one byte short (MPROC_ERANGE:
// nothing may be lost or reordered by it).
void shared_ends_with_short_buffers(int senders, int per) {
  Pipe p(0);
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int id = 0; id < senders; id++)
    ts.emplace_back([&, id] {
      std::mt19937 rng((unsigned)id + 1);
      std::vector<uint32_t> m(1500);
      for (int s = 0; s < per; s++) {
        size_t words = 2 + rng() % 1499;
        m[0] = (uint32_t)id;
        m[1] = (uint32_t)s;
        for (size_t k = 2; k < words; k++)
          m[k] = m[0] * 7919u + m[1] * 31u + (uint32_t)k;
        if (mproc_conn_send_bytes(p.b, m.data(), words * 4) != MPROC_OK)
          bad = 1;
      }
    });
  std::mutex mu;
  std::vector<int> next(senders, 0);
  std::atomic<int> total{0};
  // Each receive sequence under one mutex (so the tags' order is
  // checkable); a failed check is recorded and the loop drains on, so that
  // no sender is left blocked on a full pipe.
  auto recv_loop = [&] {
    std::vector<uint32_t> m(1500);
    auto start = std::chrono::steady_clock::now();
    while (total < senders * per &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
      size_t n = 0, want = 0;
      std::lock_guard<std::mutex> g(mu);
      int rc = mproc_conn_recv_bytes(p.a, m.data(), 4, &n, 0.05);
      if (rc == MPROC_ETIMEDOUT)
        continue;
      if (rc != MPROC_ERANGE) { // 4 bytes never hold a frame
        bad = 40 + (rc < 0 ? -rc : rc);
        if (rc < 0)
          return;
        total++;
        continue;
      }
      want = n;
      rc = mproc_conn_recv_bytes(p.a, m.data(), want - 1, &n, 5);
      if (rc != MPROC_ERANGE || n != want)
        bad = 10;
      if (rc == MPROC_OK) {
        total++;
        continue;
      }
      rc = mproc_conn_recv_bytes(p.a, m.data(), m.size() * 4, &n, 5);
      if (rc < 0) {
        bad = 100 - rc;
        return;
      }
      total++;
      if (n != want || n % 4 || n < 8 || m[0] >= (uint32_t)senders ||
          (int)m[1] != next[m[0]]) {
        bad = 20;
        continue;
      }
      for (size_t k = 2; k < n / 4; k++)
        if (m[k] != m[0] * 7919u + m[1] * 31u + (uint32_t)k)
          bad = 30;
      next[m[0]]++;
    }
  };
  std::thread r1(recv_loop), r2(recv_loop);
  for (auto &t : ts)
    t.join();
  r1.join();
  r2.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(total.load(), senders * per);
}
} // namespace

TEST(ConnShared, ThreadsOnBothEndsWithShortBuffersLoseNothing) {
  shared_ends_with_short_buffers(3, 3000);
}

#ifndef _WIN32
// A sender filling the ring and then the pipe of a stopped receiver ends up
// blocked (sends have no deadline); when the receiver is killed, it returns
// MPROC_EEOF rather than hang, and what it sent before stays unread.
TEST(ConnChild, SenderBlockedOnAStoppedReceiverSeesItsDeath) {
  Pipe p;
  mproc_process *proc = start_with_own_end("conn_hold", p.b);
  ASSERT_NE(proc, nullptr);
  std::string m;
  ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
  EXPECT_EQ(m, "ready");
  int64_t pid = 0;
  ASSERT_EQ(mproc_process_pid(proc, &pid), MPROC_OK);
  ASSERT_EQ(kill((pid_t)pid, SIGSTOP), 0);
  std::atomic<int> sent{0}, rc_end{1};
  std::thread t([&] {
    std::string msg = pattern(64, 1);
    int rc = MPROC_OK;
    // Far past the ring (64 KiB) and any pipe buffer (<= 1 MiB here).
    for (int i = 0; i < 40000 && rc == MPROC_OK; i++) {
      rc = send_str(p.a, msg);
      if (rc == MPROC_OK)
        sent++;
    }
    rc_end = rc;
  });
  // Sends go on until the pipe is full (no way to see "blocked": wait for
  // the count to pass the ring's worth, then kill).
  EXPECT_TRUE(test_wait_for([&] { return sent > 1000 || rc_end != 1; }));
  ASSERT_EQ(mproc_process_kill(proc), MPROC_OK);
  double t0 = test_now();
  t.join();
  EXPECT_LT(test_now() - t0, 20.0);
  EXPECT_EQ(rc_end.load(), MPROC_EEOF) << "sent " << sent.load();
  EXPECT_EQ(test_join_code(proc), -9);
  mproc_process_free(proc);
}
#endif
