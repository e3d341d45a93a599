// Pipes (mproc_pipe / mproc_conn_*): framing, directions, buffers too
// small, timeouts, end-of-file (peer closed, peer killed), mproc_wait on
// connections with processes, ends passed to children, threads, damaged
// streams.  Every test that starts children runs under the lane's default
// start method.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

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

// Frees (which, for an end received as an argument, only closes) the end in
// arg 0, then lives on for arg 1 ms.
TEST_ENTRY(conn_free_then_sleep) {
  mproc_conn *c = arg_conn(args, 0);
  int64_t ms = 0;
  mproc_arg_int(args, 1, &ms);
  if (!c)
    return 2;
  if (mproc_conn_free(c) != nullptr)
    return 3;
  if (mproc_conn_send_bytes(c, "x", 1) != MPROC_ECLOSED)
    return 4;
  test_sleep_ms((int)ms);
  return 0; // the argument list frees the object: no double free
}

TEST_ENTRY(conn_sleep_ms) {
  int64_t ms = 0;
  mproc_arg_int(args, 0, &ms);
  test_sleep_ms((int)ms);
  return 0;
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

  std::thread t([&] {
    test_sleep_ms(100);
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
  std::atomic<bool> go{false};
  std::thread t([&] {
    EXPECT_EQ(mproc__conn_send_raw(p.b, head.data(), head.size()), MPROC_OK);
    while (!go)
      test_sleep_ms(5);
    EXPECT_EQ(mproc__conn_send_raw(p.b, body.data() + first, total - first),
              MPROC_OK);
  });
  std::vector<char> buf(total);
  size_t n = 0;
  // Part of the message arrives, then nothing: the receive times out.
  EXPECT_EQ(mproc_conn_recv_bytes(p.a, buf.data(), buf.size(), &n, 0.5),
            MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_conn_poll(p.a, 0), 1); // the partial bytes are kept
  go = true;
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

TEST(ConnEof, DamagedStreamsReportEof) {
  // A frame cut short by end-of-file.
  {
    Pipe p;
    unsigned char hdr[MPROC__CONN_HDR];
    mproc__conn_frame_header(hdr, 100);
    ASSERT_EQ(mproc__conn_send_raw(p.b, hdr, sizeof hdr), MPROC_OK);
    ASSERT_EQ(mproc__conn_send_raw(p.b, "only part", 9), MPROC_OK);
    ASSERT_EQ(mproc_conn_close(p.b), MPROC_OK);
    std::string m;
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EEOF);
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EEOF);
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
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EEOF);
    EXPECT_EQ(recv_str(p.a, &m), MPROC_EEOF);
  }
}

// Fuzz-style: a stream of random frames with one header bit flipped is
// received intact up to the damaged frame, then reports end-of-file; the
// pure decoder never reads past its input and agrees with the encoder.
TEST(ConnEof, FrameDecoderOnDamagedBytes) {
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 3000; iter++) {
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

  for (int iter = 0; iter < 40; iter++) {
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
    ASSERT_EQ(recv_str(p.a, &m, 5), MPROC_EEOF);
    ASSERT_EQ(recv_str(p.a, &m, 5), MPROC_EEOF);
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
  std::thread t([&] {
    char buf[8];
    size_t n = 0;
    rc = mproc_conn_recv_bytes(p.a, buf, sizeof buf, &n, 1.0);
  });
  test_sleep_ms(100);
  EXPECT_EQ(mproc_conn_close(p.a), MPROC_OK);
  t.join();
  // Windows cancels the blocked read; POSIX lets it run to its timeout.
  if (test_on_windows()) {
    EXPECT_EQ(rc.load(), MPROC_ECLOSED);
  } else {
    EXPECT_TRUE(rc == MPROC_ETIMEDOUT || rc == MPROC_ECLOSED) << rc;
  }
  EXPECT_LT(test_now() - t0, 20.0);
  EXPECT_EQ(mproc_conn_poll(p.a, 0), MPROC_ECLOSED);
}

// ---- threads ----------------------------------------------------------------

TEST(ConnThreads, ConcurrentSendersNeverInterleave) {
  Pipe p;
  const int nthreads = 4, per = 300;
  std::vector<std::thread> ts;
  for (int k = 0; k < nthreads; k++)
    ts.emplace_back([&, k] {
      for (int i = 0; i < per; i++) {
        // Sizes cross the 4 KiB atomic-write limit and the 64 KiB buffer.
        size_t size = 8 + (size_t)((i * 7919 + k * 104729) % 90000);
        std::string m = pattern(size, (unsigned)(k * 100000 + i));
        uint32_t tag[2] = {(uint32_t)k, (uint32_t)i};
        memcpy(&m[0], tag, sizeof tag);
        EXPECT_EQ(send_str(p.b, m), MPROC_OK);
      }
    });
  int next[nthreads] = {0};
  std::string m;
  for (int j = 0; j < nthreads * per; j++) {
    ASSERT_EQ(recv_str(p.a, &m), MPROC_OK);
    ASSERT_GE(m.size(), 8u);
    uint32_t tag[2];
    memcpy(tag, m.data(), sizeof tag);
    ASSERT_LT(tag[0], (uint32_t)nthreads);
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
  mproc_process *proc = test_start("conn_sleep_ms", Args().i(400));
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

  // A message from another thread wakes a wait in progress.
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
  double t0 = test_now();
  while (!w[3].ready && test_now() - t0 < 30)
    ASSERT_GE(mproc_wait(w, 4, 30), 1);
  EXPECT_EQ(w[3].ready, 1);
  EXPECT_EQ(w[1].ready, 1);
  EXPECT_EQ(w[0].ready, 0);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
}

// ---- children ------------------------------------------------------------------

TEST(ConnChild, EchoServer) {
  Pipe p;
  mproc_process *proc = start_with_conn("conn_echo", p.b);
  ASSERT_NE(proc, nullptr);
  // As in Python: the parent's copy of the child's end goes.
  EXPECT_EQ(mproc_conn_close(p.b), MPROC_OK);
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

TEST(ConnChild, EofAfterThePeerProcessIsKilled) {
  Pipe p;
  mproc_process *proc = start_with_conn("conn_hold", p.b);
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(mproc_conn_close(p.b), MPROC_OK);
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
  mproc_process *proc = start_with_conn("conn_recv_report", p.a, 2);
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(mproc_conn_close(p.a), MPROC_OK);
  ASSERT_EQ(recv_str(p.b, &m), MPROC_OK);
  EXPECT_EQ(m, "two|three");
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
}

TEST(ConnChild, OneWayStreamToAChild) {
  Pipe p(0);
  const int n = 400;
  mproc_process *proc = start_with_conn("conn_check_stream", p.a, n);
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(mproc_conn_close(p.a), MPROC_OK);
  for (int i = 0; i < n; i++)
    ASSERT_EQ(send_str(p.b, pattern((size_t)(i * 37 % 5000), (unsigned)i)),
              MPROC_OK);
  EXPECT_EQ(test_join_code(proc), 0);
  mproc_process_free(proc);
  test_sleep_ms(25); // past a tick of the sender's coarse clock
  EXPECT_EQ(send_str(p.b, "gone"), MPROC_EEOF);
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
  mproc_process *proc = start_with_conn("conn_free_then_sleep", p.b, 1500);
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(mproc_conn_close(p.b), MPROC_OK);
  std::string m;
  EXPECT_EQ(recv_str(p.a, &m, 30), MPROC_EEOF);
  // Spawned children hold only what they were given, so closing it there
  // ends the stream while the child still runs.  A fork child also keeps
  // the descriptors it inherited (the object it receives owns duplicates),
  // so there end-of-file comes when it exits.
  if (mproc_get_start_method() != MPROC_START_FORK) {
    EXPECT_EQ(mproc_process_is_alive(proc), 1);
  }
  EXPECT_EQ(test_join_code(proc), 0);
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
