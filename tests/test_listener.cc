// Listener / Client (include/mproc/connection.h): round trips over every
// address kind of the platform, the authkey handshake (right key, wrong
// key, no key, peers that send garbage, huge lengths or nothing), many
// clients in turn, Unix socket files (mode, stale files, long paths), and
// a client in another, unrelated program.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

extern "C" {
#include "conn.h"
}

#ifndef _WIN32
#include <sys/socket.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace {

const char kKey[] = "a shared secret";
const size_t kKeyLen = sizeof kKey - 1;

bool have_auth() { return mproc_connection_auth_supported() == 1; }

// A fresh address of each kind, unique per process and call.
std::string unique_suffix() {
  static int n = 0;
  return std::to_string((long long)test_getpid()) + "-" + std::to_string(++n);
}

std::string unix_addr() {
  return "unix:/tmp/mproc-test-" + unique_suffix() + ".sock";
}

std::string pipe_addr() { return "pipe:mproc-test-" + unique_suffix(); }

// The addresses this platform offers (TCP only where the build can).
std::vector<std::string> local_addresses() {
  std::vector<std::string> v;
  if (test_on_windows())
    v.push_back(pipe_addr());
  else
    v.push_back(unix_addr());
  if (have_auth())
    v.push_back("tcp:127.0.0.1:0");
  return v;
}

int send_str(mproc_conn *c, const std::string &s) {
  return mproc_conn_send_bytes(c, s.data(), s.size());
}

int recv_str(mproc_conn *c, std::string *out, double timeout = 30) {
  char buf[4096];
  size_t n = 0;
  int rc = mproc_conn_recv_bytes(c, buf, sizeof buf, &n, timeout);
  if (rc == MPROC_OK)
    out->assign(buf, n);
  return rc;
}

struct Listener {
  mproc_listener *l = nullptr;
  int rc;
  Listener(const std::string &addr, const void *key, size_t keylen) {
    rc = mproc_listener_create(&l, addr.c_str(), key, keylen);
  }
  ~Listener() { mproc_listener_free(l); }
  std::string address() const {
    const char *a = mproc_listener_address(l);
    return a ? a : "";
  }
};

// Accepts one connection in a thread and echoes one message back with a
// prefix; the result of accept is kept for the test to check.
struct EchoServer {
  int accept_rc = 1;
  std::thread t;
  EchoServer(mproc_listener *l, double timeout = 30) {
    t = std::thread([this, l, timeout] {
      mproc_conn *c = nullptr;
      accept_rc = mproc_listener_accept(l, &c, timeout);
      if (accept_rc == MPROC_OK) {
        std::string m;
        if (recv_str(c, &m) == MPROC_OK)
          (void)send_str(c, "echo:" + m);
      }
      mproc_conn_free(c);
    });
  }
  ~EchoServer() {
    if (t.joinable())
      t.join();
  }
  int join() {
    t.join();
    return accept_rc;
  }
};

// One client of an EchoServer on `l`: connects to `addr` with the key,
// sends `msg`, expects "echo:" + msg back and the server's accept to have
// succeeded.  Wrap calls in ASSERT_NO_FATAL_FAILURE: a failed connect ends
// the test as it would inline.
void expect_echo(mproc_listener *l, const std::string &addr, const void *key,
                 size_t keylen, const std::string &msg) {
  EchoServer srv(l);
  mproc_conn *c = nullptr;
  ASSERT_EQ(mproc_client_connect(&c, addr.c_str(), key, keylen, 30), MPROC_OK);
  std::string m;
  EXPECT_EQ(send_str(c, msg), MPROC_OK);
  EXPECT_EQ(recv_str(c, &m), MPROC_OK);
  EXPECT_EQ(m, "echo:" + msg);
  mproc_conn_free(c);
  EXPECT_EQ(srv.join(), MPROC_OK);
}

// A connected pair through `L`: *s the accepted end, *c the client's, with
// the key given.  Wrap calls in ASSERT_NO_FATAL_FAILURE.
void accept_pair(const Listener &L, const void *key, size_t keylen,
                 mproc_conn **s, mproc_conn **c) {
  std::thread t([&] { EXPECT_EQ(mproc_listener_accept(L.l, s, 30), MPROC_OK); });
  ASSERT_EQ(mproc_client_connect(c, L.address().c_str(), key, keylen, 30),
            MPROC_OK);
  t.join();
  ASSERT_NE(*s, nullptr);
}

void round_trip(const std::string &addr, const void *key, size_t keylen) {
  SCOPED_TRACE(addr);
  Listener L(addr, key, keylen);
  ASSERT_EQ(L.rc, MPROC_OK) << mproc_strerror(L.rc);
  EchoServer srv(L.l);
  mproc_conn *c = nullptr;
  ASSERT_EQ(mproc_client_connect(&c, L.address().c_str(), key, keylen, 30),
            MPROC_OK);
  ASSERT_EQ(send_str(c, "hello"), MPROC_OK);
  std::string m;
  EXPECT_EQ(recv_str(c, &m), MPROC_OK);
  EXPECT_EQ(m, "echo:hello");
  EXPECT_EQ(recv_str(c, &m, 10), MPROC_EEOF); // the server freed its end
  mproc_conn_free(c);
  EXPECT_EQ(srv.join(), MPROC_OK);
}

} // namespace

TEST(Address, MalformedAndForeignKinds) {
  mproc_listener *l = nullptr;
  mproc_conn *c = nullptr;
  for (const char *a : {"", "unix:", "pipe:", "tcp:", "tcp:127.0.0.1",
                        "tcp:127.0.0.1:", "tcp:127.0.0.1:65536",
                        "tcp::80", "tcp:::1:80", "tcp:[::1:80", "tcp:x:8a",
                        "udp:1.2.3.4:5", "pipe:a\\b", "/tmp/x"}) {
    SCOPED_TRACE(a);
    EXPECT_EQ(mproc_listener_create(&l, a, nullptr, 0), MPROC_EINVAL);
    EXPECT_EQ(l, nullptr);
    EXPECT_EQ(mproc_client_connect(&c, a, nullptr, 0, 1), MPROC_EINVAL);
    EXPECT_EQ(c, nullptr);
  }
  EXPECT_EQ(mproc_listener_create(nullptr, "tcp:127.0.0.1:0", nullptr, 0),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_create(&l, nullptr, nullptr, 0), MPROC_EINVAL);
  // A key length without a key, and a key over the limit.
  EXPECT_EQ(mproc_listener_create(&l, unix_addr().c_str(), nullptr, 3),
            MPROC_EINVAL);
  std::string big(MPROC_AUTHKEY_MAX + 1, 'k');
  EXPECT_EQ(mproc_client_connect(&c, "tcp:127.0.0.1:1", big.data(),
                                 big.size(), 1),
            MPROC_EINVAL);
  // The other platform's kind.
  std::string foreign = test_on_windows() ? unix_addr() : pipe_addr();
  EXPECT_EQ(mproc_listener_create(&l, foreign.c_str(), nullptr, 0),
            MPROC_ENOTSUP);
  EXPECT_EQ(mproc_client_connect(&c, foreign.c_str(), nullptr, 0, 1),
            MPROC_ENOTSUP);
  EXPECT_EQ(mproc_listener_address(nullptr), nullptr);
  EXPECT_EQ(mproc_listener_free(nullptr), nullptr);
}

// The platform's HMAC-SHA256 against RFC 4231 (test case 2) and the
// empty key and message: the handshake's digests are the standard ones.
TEST(Crypto, HmacSha256KnownAnswers) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto";
  auto hex = [](const unsigned char *d) {
    std::string s;
    for (int i = 0; i < MPROC__NET_DIGEST; i++) {
      char b[3];
      snprintf(b, sizeof b, "%02x", d[i]);
      s += b;
    }
    return s;
  };
  unsigned char out[MPROC__NET_DIGEST];
  const char msg[] = "what do ya want for nothing?";
  ASSERT_EQ(mproc__net_hmac("Jefe", 4, msg, sizeof msg - 1, out), MPROC_OK);
  EXPECT_EQ(hex(out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  ASSERT_EQ(mproc__net_hmac("", 0, "", 0, out), MPROC_OK);
  EXPECT_EQ(hex(out),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  unsigned char r1[40], r2[40];
  ASSERT_EQ(mproc__net_random(r1, sizeof r1), MPROC_OK);
  ASSERT_EQ(mproc__net_random(r2, sizeof r2), MPROC_OK);
  EXPECT_NE(memcmp(r1, r2, sizeof r1), 0);
}

// A host name works ("localhost" may resolve to ::1 before 127.0.0.1: the
// client tries each address in turn).
TEST(Client, TriesEveryAddressOfAName) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no tcp:";
  Listener L("tcp:127.0.0.1:0", kKey, kKeyLen);
  ASSERT_EQ(L.rc, MPROC_OK);
  std::string port = L.address().substr(14);
  ASSERT_NO_FATAL_FAILURE(
      expect_echo(L.l, "tcp:localhost:" + port, kKey, kKeyLen, "by name"));
}

TEST(Listener, RoundTripEveryKindWithKey) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no authkeys";
  for (const std::string &a : local_addresses())
    round_trip(a, kKey, kKeyLen);
}

// Python's authkey=None: no handshake at all.
TEST(Listener, RoundTripEveryKindWithoutKey) {
  for (const std::string &a : local_addresses())
    round_trip(a, nullptr, 0);
}

// An empty key is a key (Python's b''), not "none".
TEST(Listener, EmptyKeyIsAKey) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no authkeys";
  round_trip(local_addresses()[0], "", 0);
}

TEST(Listener, TcpPortZeroGetsAPort) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no tcp:";
  Listener L("tcp:127.0.0.1:0", kKey, kKeyLen);
  ASSERT_EQ(L.rc, MPROC_OK);
  std::string a = L.address();
  ASSERT_EQ(a.rfind("tcp:127.0.0.1:", 0), 0u) << a;
  int port = std::atoi(a.c_str() + 14);
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
  // The port is taken while the listener lives.
  Listener again(a, kKey, kKeyLen);
  EXPECT_EQ(again.rc, MPROC_EEXIST);
}

TEST(Listener, WrongKeyRefusedOnBothSides) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no authkeys";
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    Listener L(addr, kKey, kKeyLen);
    ASSERT_EQ(L.rc, MPROC_OK);
    EchoServer srv(L.l);
    mproc_conn *c = nullptr;
    EXPECT_EQ(mproc_client_connect(&c, L.address().c_str(), "wrong", 5, 30),
              MPROC_EAUTH);
    EXPECT_EQ(c, nullptr);
    EXPECT_EQ(srv.join(), MPROC_EAUTH);
    // The listener goes on serving clients with the right key.
    ASSERT_NO_FATAL_FAILURE(expect_echo(L.l, L.address(), kKey, kKeyLen, "x"));
  }
  EXPECT_STRNE(mproc_strerror(MPROC_EAUTH), "unknown error");
  EXPECT_STREQ(mproc_err_name(MPROC_EAUTH), "MPROC_EAUTH");
}

// A client without a key meets a listener with one: the challenge is not
// answered, and the client's first message is no answer.
TEST(Listener, KeylessClientIsRefused) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no authkeys";
  std::string addr = local_addresses()[0];
  Listener L(addr, kKey, kKeyLen);
  ASSERT_EQ(L.rc, MPROC_OK);
  EchoServer srv(L.l);
  mproc_conn *c = nullptr;
  ASSERT_EQ(mproc_client_connect(&c, L.address().c_str(), nullptr, 0, 30),
            MPROC_OK);
  std::string m;
  ASSERT_EQ(recv_str(c, &m), MPROC_OK); // the challenge
  EXPECT_EQ(m.rfind("#CHALLENGE#{sha256}", 0), 0u);
  EXPECT_EQ(send_str(c, "I have no key"), MPROC_OK);
  EXPECT_EQ(srv.join(), MPROC_EAUTH);
  EXPECT_EQ(recv_str(c, &m), MPROC_OK);
  EXPECT_EQ(m, "#FAILURE#");
  mproc_conn_free(c);
}

namespace {

// Connects without a key (so the client side does no handshake) and does
// `misbehave` to the listener; the listener's accept must fail for it.
template <class F>
void bad_client(const std::string &addr, F misbehave, int want_accept,
                double accept_timeout) {
  Listener L(addr, kKey, kKeyLen);
  ASSERT_EQ(L.rc, MPROC_OK);
  EchoServer srv(L.l, accept_timeout);
  mproc_conn *c = nullptr;
  ASSERT_EQ(mproc_client_connect(&c, L.address().c_str(), nullptr, 0, 30),
            MPROC_OK);
  double t0 = test_now();
  misbehave(c);
  EXPECT_EQ(srv.join(), want_accept);
  EXPECT_LT(test_now() - t0, accept_timeout + 10);
  mproc_conn_free(c);
  // ... and the next client is served.
  ASSERT_NO_FATAL_FAILURE(expect_echo(L.l, L.address(), kKey, kKeyLen, "next"));
}

} // namespace

TEST(Listener, SilentClientTimesOutAndOthersAreServed) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no authkeys";
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    bad_client(addr, [](mproc_conn *) {}, MPROC_ETIMEDOUT, 0.5);
  }
}

TEST(Listener, GarbageClientIsRefused) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no authkeys";
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    // Bytes that are not a frame.
    bad_client(addr, [](mproc_conn *c) {
      const char junk[] = "GET / HTTP/1.0\r\n\r\n";
      EXPECT_EQ(mproc__conn_send_raw(c, junk, sizeof junk - 1), MPROC_OK);
    }, MPROC_EAUTH, 30);
    // A well-formed header announcing 512 MiB: refused from the header,
    // nothing allocated or waited for.
    bad_client(addr, [](mproc_conn *c) {
      unsigned char hdr[MPROC__CONN_HDR];
      mproc__conn_frame_header(hdr, 512u << 20);
      EXPECT_EQ(mproc__conn_send_raw(c, hdr, sizeof hdr), MPROC_OK);
    }, MPROC_EAUTH, 30);
    // A client that hangs up at once.
    bad_client(addr, [](mproc_conn *c) { mproc_conn_close(c); }, MPROC_EEOF,
               30);
  }
}

// A listener that knows no key, and a client that insists on one: the
// client learns nothing and times out (or is refused), never gets data.
TEST(Listener, ClientWithKeyRefusesKeylessListenerData) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no authkeys";
  Listener L(local_addresses()[0], nullptr, 0);
  ASSERT_EQ(L.rc, MPROC_OK);
  std::thread t([&] {
    mproc_conn *s = nullptr;
    if (mproc_listener_accept(L.l, &s, 30) == MPROC_OK) {
      (void)send_str(s, "data, not a challenge");
      std::string m;
      (void)recv_str(s, &m, 10); // until the client hangs up
    }
    mproc_conn_free(s);
  });
  mproc_conn *c = nullptr;
  EXPECT_EQ(mproc_client_connect(&c, L.address().c_str(), kKey, kKeyLen, 30),
            MPROC_EAUTH);
  EXPECT_EQ(c, nullptr);
  t.join();
}

TEST(Listener, HundredClientsInTurn) {
  if (!have_auth())
    GTEST_SKIP() << "built without crypto: no authkeys";
  const int kClients = 100;
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    Listener L(addr, kKey, kKeyLen);
    ASSERT_EQ(L.rc, MPROC_OK);
    int served = 0;
    std::thread t([&] {
      for (int i = 0; i < kClients; i++) {
        mproc_conn *s = nullptr;
        if (mproc_listener_accept(L.l, &s, 60) != MPROC_OK)
          break;
        std::string m;
        if (recv_str(s, &m) == MPROC_OK && send_str(s, m + "!") == MPROC_OK)
          served++;
        mproc_conn_free(s);
      }
    });
    int ok = 0;
    for (int i = 0; i < kClients; i++) {
      mproc_conn *c = nullptr;
      if (mproc_client_connect(&c, L.address().c_str(), kKey, kKeyLen, 60) !=
          MPROC_OK)
        break;
      std::string m, want = "client " + std::to_string(i);
      if (send_str(c, want) == MPROC_OK && recv_str(c, &m) == MPROC_OK &&
          m == want + "!")
        ok++;
      mproc_conn_free(c);
    }
    t.join();
    EXPECT_EQ(ok, kClients);
    EXPECT_EQ(served, kClients);
  }
}

// The connection is an ordinary mproc_conn: mproc_wait and poll see it.
TEST(Listener, ConnectionWorksWithWaitAndPoll) {
  std::string addr = local_addresses()[0];
  Listener L(addr, have_auth() ? kKey : nullptr, have_auth() ? kKeyLen : 0);
  ASSERT_EQ(L.rc, MPROC_OK);
  mproc_conn *s = nullptr, *c = nullptr;
  ASSERT_NO_FATAL_FAILURE(accept_pair(L, have_auth() ? kKey : nullptr,
                                      have_auth() ? kKeyLen : 0, &s, &c));
  EXPECT_EQ(mproc_conn_poll(s, 0), 0);
  mproc_waitable w[1];
  memset(w, 0, sizeof w);
  w[0].kind = MPROC_WAIT_CONN;
  w[0].object = s;
  EXPECT_EQ(mproc_wait(w, 1, 0.05), 0);
  std::string big(200000, 'b'); // bigger than the read-ahead
  std::thread sender([&] { EXPECT_EQ(send_str(c, big), MPROC_OK); });
  EXPECT_EQ(mproc_wait(w, 1, 30), 1);
  EXPECT_EQ(w[0].ready, 1);
  std::vector<char> buf(big.size());
  size_t n = 0;
  EXPECT_EQ(mproc_conn_recv_bytes(s, buf.data(), buf.size(), &n, 30), MPROC_OK);
  sender.join();
  EXPECT_EQ(std::string(buf.data(), n), big);
  mproc_conn_free(c);
  EXPECT_EQ(mproc_conn_recv_bytes(s, buf.data(), buf.size(), &n, 30),
            MPROC_EEOF);
  EXPECT_EQ(mproc_conn_send_bytes(s, "x", 1) == MPROC_EEOF ||
                mproc_conn_send_bytes(s, "x", 1) == MPROC_EEOF,
            true);
  mproc_conn_free(s);
}

TEST(Listener, AcceptTimesOutWithoutClientsAndCloseStopsIt) {
  std::string addr = local_addresses()[0];
  Listener L(addr, nullptr, 0);
  ASSERT_EQ(L.rc, MPROC_OK);
  mproc_conn *s = nullptr;
  double t0 = test_now();
  EXPECT_EQ(mproc_listener_accept(L.l, &s, 0.1), MPROC_ETIMEDOUT);
  EXPECT_LT(test_now() - t0, 5.0);
  EXPECT_EQ(mproc_listener_close(L.l), MPROC_OK);
  EXPECT_EQ(mproc_listener_close(L.l), MPROC_OK);
  EXPECT_EQ(mproc_listener_accept(L.l, &s, 1), MPROC_ECLOSED);
  mproc_conn *c = nullptr;
  EXPECT_EQ(mproc_client_connect(&c, addr.c_str(), nullptr, 0, 1),
            MPROC_ENOTFOUND);
}

// Serves one message on the connection in arg 0: replies "child:" + it.
TEST_ENTRY(listener_child_echo) {
  void *o = nullptr;
  if (mproc_arg_object(args, 0, MPROC_OBJ_CONN, &o) != MPROC_OK)
    return 2;
  mproc_conn *c = static_cast<mproc_conn *>(o);
  std::string m;
  if (recv_str(c, &m, 60) != MPROC_OK)
    return 3;
  return send_str(c, "child:" + m) == MPROC_OK ? 0 : 4;
}

// An accepted connection is handed to a child, which serves the client
// (a pipe end can be; a Windows TCP one cannot: MPROC_ENOTSUP).
TEST(Listener, AcceptedConnectionPassedToChild) {
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    bool win_tcp = test_on_windows() && addr.rfind("tcp:", 0) == 0;
    Listener L(addr, have_auth() ? kKey : nullptr, have_auth() ? kKeyLen : 0);
    ASSERT_EQ(L.rc, MPROC_OK);
    mproc_conn *s = nullptr, *c = nullptr;
    ASSERT_NO_FATAL_FAILURE(accept_pair(L, have_auth() ? kKey : nullptr,
                                        have_auth() ? kKeyLen : 0, &s, &c));
    Args a;
    ASSERT_EQ(mproc_args_add_object(a.a, nullptr, s), MPROC_OK);
    mproc_process *p = nullptr;
    int rc = mproc_process_create(&p, "listener_child_echo", a, nullptr);
    if (win_tcp) {
      EXPECT_EQ(rc, MPROC_ENOTSUP);
    } else {
      ASSERT_EQ(rc, MPROC_OK);
      ASSERT_EQ(mproc_process_start(p), MPROC_OK);
      mproc_conn_free(s); // the child has its copy
      s = nullptr;
      std::string m;
      EXPECT_EQ(send_str(c, "hi"), MPROC_OK);
      EXPECT_EQ(recv_str(c, &m), MPROC_OK);
      EXPECT_EQ(m, "child:hi");
      EXPECT_EQ(test_join_code(p), 0);
      EXPECT_EQ(recv_str(c, &m), MPROC_EEOF);
    }
    mproc_process_free(p);
    mproc_conn_free(s);
    mproc_conn_free(c);
  }
}

// A client that connected and left before accept was called: accept does
// not hand out a dead connection (EEOF), or, where the OS re-arms the pipe
// instance (Wine), waits for the next client; either way the next client
// is served.
TEST(Listener, ClientGoneBeforeAccept) {
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    Listener L(addr, kKey, have_auth() ? kKeyLen : 0);
    if (!have_auth())
      GTEST_SKIP() << "built without crypto: no authkeys";
    ASSERT_EQ(L.rc, MPROC_OK);
    mproc_conn *c = nullptr;
    ASSERT_EQ(mproc_client_connect(&c, L.address().c_str(), nullptr, 0, 30),
              MPROC_OK);
    mproc_conn_free(c);
    mproc_conn *s = nullptr;
    int rc = mproc_listener_accept(L.l, &s, 1.0);
    EXPECT_TRUE(rc == MPROC_EEOF || rc == MPROC_ETIMEDOUT) << rc;
    EXPECT_EQ(s, nullptr);
    ASSERT_NO_FATAL_FAILURE(
        expect_echo(L.l, L.address(), kKey, kKeyLen, "after"));
  }
}

// A receive already waiting when the peer hangs up sees end-of-file at
// once (TCP on Windows: the pending zero-byte receive must complete on the
// peer's FIN, not at the deadline).
TEST(Listener, HangUpWakesWaitingReceive) {
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    Listener L(addr, nullptr, 0);
    ASSERT_EQ(L.rc, MPROC_OK);
    mproc_conn *s = nullptr, *c = nullptr;
    ASSERT_NO_FATAL_FAILURE(accept_pair(L, nullptr, 0, &s, &c));
    double t0 = test_now();
    int rc = 1;
    std::thread r([&] {
      std::string m;
      rc = recv_str(s, &m, 30);
    });
    test_sleep_ms(100); // usually waiting by now
    mproc_conn_free(c);
    r.join();
    EXPECT_EQ(rc, MPROC_EEOF);
    EXPECT_LT(test_now() - t0, 20.0);
    mproc_conn_free(s);
  }
}

// Several threads accept on one listener at once: every client is served
// by one of them, none waits out its timeout while clients queue.
TEST(Listener, ThreadsAcceptTogether) {
  const int kThreads = 3, kClients = 12;
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    Listener L(addr, nullptr, 0);
    ASSERT_EQ(L.rc, MPROC_OK);
    std::atomic<int> served{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; t++)
      ts.emplace_back([&] {
        for (;;) {
          mproc_conn *s = nullptr;
          if (mproc_listener_accept(L.l, &s, 60) != MPROC_OK)
            return; // closed at the end
          std::string m;
          if (recv_str(s, &m) == MPROC_OK && send_str(s, m) == MPROC_OK)
            served++;
          mproc_conn_free(s);
        }
      });
    double t0 = test_now();
    int ok = 0;
    for (int i = 0; i < kClients; i++) {
      mproc_conn *c = nullptr;
      std::string m;
      if (mproc_client_connect(&c, L.address().c_str(), nullptr, 0, 30) ==
              MPROC_OK &&
          send_str(c, "x") == MPROC_OK && recv_str(c, &m) == MPROC_OK)
        ok++;
      mproc_conn_free(c);
    }
    EXPECT_LT(test_now() - t0, 30.0); // nobody waited out a 60 s accept
    mproc_listener_close(L.l);
    for (auto &t : ts)
      t.join();
    EXPECT_EQ(ok, kClients);
    EXPECT_EQ(served.load(), kClients);
  }
}

// close() in another thread ends an accept that waits without a limit.
TEST(Listener, CloseWakesBlockedAccept) {
  Listener L(local_addresses()[0], nullptr, 0);
  ASSERT_EQ(L.rc, MPROC_OK);
  int rc = 1;
  double t0 = test_now();
  std::thread t([&] {
    mproc_conn *s = nullptr;
    rc = mproc_listener_accept(L.l, &s, -1);
    mproc_conn_free(s);
  });
  test_sleep_ms(50); // usually inside the wait by now; either way it ends
  EXPECT_EQ(mproc_listener_close(L.l), MPROC_OK);
  t.join();
  EXPECT_EQ(rc, MPROC_ECLOSED);
  EXPECT_LT(test_now() - t0, 30.0);
}

// Without crypto (a POSIX build without OpenSSL) only keyless unix: works,
// and everything else says so instead of running unauthenticated.
TEST(Listener, WithoutCryptoOnlyKeylessUnixWorks) {
  if (test_on_windows()) {
    EXPECT_EQ(mproc_connection_auth_supported(), 1); // BCrypt is always there
    return;
  }
  if (have_auth())
    GTEST_SKIP() << "built with OpenSSL";
  mproc_listener *l = nullptr;
  mproc_conn *c = nullptr;
  EXPECT_EQ(mproc_listener_create(&l, "tcp:127.0.0.1:0", nullptr, 0),
            MPROC_ENOTSUP);
  EXPECT_EQ(mproc_listener_create(&l, unix_addr().c_str(), kKey, kKeyLen),
            MPROC_ENOTSUP);
  EXPECT_EQ(mproc_client_connect(&c, "tcp:127.0.0.1:1", nullptr, 0, 1),
            MPROC_ENOTSUP);
  EXPECT_EQ(mproc_client_connect(&c, unix_addr().c_str(), kKey, kKeyLen, 1),
            MPROC_ENOTSUP);
  round_trip(unix_addr(), nullptr, 0);
}

TEST(Client, NobodyListening) {
  mproc_conn *c = nullptr;
  std::string addr = local_addresses()[0];
  EXPECT_EQ(mproc_client_connect(&c, addr.c_str(), nullptr, 0, 5),
            MPROC_ENOTFOUND);
  EXPECT_EQ(c, nullptr);
}

#ifndef _WIN32

namespace {
std::string path_of(const std::string &addr) { return addr.substr(5); }
} // namespace

TEST(UnixSocket, OwnerOnlyAndRemovedAtFree) {
  std::string addr = unix_addr();
  struct stat st;
  {
    Listener L(addr, nullptr, 0);
    ASSERT_EQ(L.rc, MPROC_OK);
    ASSERT_EQ(lstat(path_of(addr).c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 077, 0u) << std::oct << st.st_mode;
    EXPECT_EQ(L.address(), addr);
  }
  EXPECT_NE(lstat(path_of(addr).c_str(), &st), 0);
}

namespace {
mproc_listener *g_fork_listener; // the parent's, seen by a fork child
} // namespace

// In a fork child: free the inherited copy of the parent's listener.
TEST_ENTRY(listener_fork_free) {
  if (!g_fork_listener)
    return 3;
  mproc_listener_free(g_fork_listener);
  return 0;
}

// A fork child that frees its copy of a listener neither shuts the
// parent's socket down nor removes its file (as Python's Finalize skips
// other processes).
TEST(UnixSocket, ForkChildFreeingItsCopyLeavesTheParentsListener) {
  if (mproc_get_start_method() != MPROC_START_FORK)
    GTEST_SKIP() << "needs the fork start method";
  for (const std::string &addr : local_addresses()) {
    SCOPED_TRACE(addr);
    Listener L(addr, nullptr, 0);
    ASSERT_EQ(L.rc, MPROC_OK);
    g_fork_listener = L.l;
    mproc_process *p = test_start("listener_fork_free");
    EXPECT_EQ(test_join_code(p), 0);
    mproc_process_free(p);
    g_fork_listener = nullptr;
    struct stat st;
    if (addr.rfind("unix:", 0) == 0) {
      EXPECT_EQ(lstat(path_of(addr).c_str(), &st), 0);
    }
    ASSERT_NO_FATAL_FAILURE(
        expect_echo(L.l, L.address(), nullptr, 0, "still here"));
  }
}

// As another user (uid/gid 65534, "nobody"), connect to the unix: address
// in arg 0.  0: refused with EACCES (the socket file is owner-only); 10:
// it connected; 11: the uid could not be dropped; 12: refused otherwise.
TEST_ENTRY(listener_connect_as_nobody) {
  const char *addr = nullptr;
  mproc_conn *c = nullptr;
  int rc;
  if (mproc_arg_str(args, 0, &addr) != MPROC_OK)
    return 13;
  // Groups first: after setuid the process may no longer change them.
  if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
    return 11;
  rc = mproc_client_connect(&c, addr, nullptr, 0, 10);
  if (rc == MPROC_OK) {
    mproc_conn_free(c);
    return 10;
  }
  std::fprintf(stderr, "connect as nobody: %s (os error %d)\n",
               mproc_strerror(rc), mproc_os_error());
  return rc == MPROC_EPERM && mproc_os_error() == EACCES ? 0 : 12;
}

// Issue 13: unix: socket files are owner-only, so another user cannot
// connect, even in a directory everyone may enter (/tmp), and even without
// an authkey.  Needs root, to become that other user.
TEST(UnixSocket, AnotherUserCannotConnect) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root (to run a child as uid 65534)";
  std::string addr = unix_addr();
  Listener L(addr, nullptr, 0);
  ASSERT_EQ(L.rc, MPROC_OK);
  Args a;
  ASSERT_EQ(mproc_args_add_str(a.a, nullptr, addr.c_str()), MPROC_OK);
  mproc_process *p = test_start("listener_connect_as_nobody", a.a);
  EXPECT_EQ(test_join_code(p), 0)
      << "10: connected, 11: could not become nobody, 12: another error";
  mproc_process_free(p);
}

TEST(UnixSocket, StaleFileReplacedLiveOrForeignRefused) {
  std::string addr = unix_addr(), path = path_of(addr);
  // A socket file nobody listens on any more (a listener that died).
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, path.c_str());
  ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  close(fd);
  {
    Listener L(addr, nullptr, 0);
    ASSERT_EQ(L.rc, MPROC_OK);
    // A live listener is not replaced.
    Listener second(addr, nullptr, 0);
    EXPECT_EQ(second.rc, MPROC_EEXIST);
    // Its check connected once and hung up: the live listener sees that
    // as a client that left at once.
    mproc_conn *probe = nullptr;
    std::string m;
    ASSERT_EQ(mproc_listener_accept(L.l, &probe, 30), MPROC_OK);
    EXPECT_EQ(recv_str(probe, &m), MPROC_EEOF);
    mproc_conn_free(probe);
    mproc_conn *c = nullptr;
    EchoServer srv(L.l);
    ASSERT_EQ(mproc_client_connect(&c, addr.c_str(), nullptr, 0, 30), MPROC_OK);
    EXPECT_EQ(send_str(c, "still me"), MPROC_OK);
    EXPECT_EQ(recv_str(c, &m), MPROC_OK);
    EXPECT_EQ(m, "echo:still me");
    mproc_conn_free(c);
  }
  // A file that is not a socket is left alone.
  FILE *f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("keep me", f);
  fclose(f);
  Listener L2(addr, nullptr, 0);
  EXPECT_EQ(L2.rc, MPROC_EEXIST);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 7);
  unlink(path.c_str());
}

TEST(UnixSocket, PathTooLongIsInvalid) {
  struct sockaddr_un sa;
  std::string longp = "unix:/tmp/" + std::string(sizeof sa.sun_path, 'p');
  mproc_listener *l = nullptr;
  mproc_conn *c = nullptr;
  EXPECT_EQ(mproc_listener_create(&l, longp.c_str(), nullptr, 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_client_connect(&c, longp.c_str(), nullptr, 0, 1),
            MPROC_EINVAL);
}

#endif

// ---- a client in another, unrelated program ---------------------------------
// The test binary is started again as a plain program (not an mproc
// child), running only PeerProgram.Client, which reads where to connect
// from the environment.

TEST(PeerProgram, Client) {
  const char *addr = std::getenv("MPROC_TEST_LISTENER_ADDR");
  if (!addr)
    GTEST_SKIP() << "runs only as the peer program of TwoPrograms";
  const char *key = std::getenv("MPROC_TEST_LISTENER_KEY");
  mproc_conn *c = nullptr;
  ASSERT_EQ(mproc_client_connect(&c, addr, key, key ? strlen(key) : 0, 60),
            MPROC_OK);
  std::string m;
  ASSERT_EQ(send_str(c, "hello from " + std::to_string((long long)test_getpid())),
            MPROC_OK);
  ASSERT_EQ(recv_str(c, &m, 60), MPROC_OK);
  EXPECT_EQ(m, "welcome");
  mproc_conn_free(c);
}

TEST(PeerProgram, TwoPrograms) {
  if (std::getenv("MPROC_TEST_LISTENER_ADDR"))
    GTEST_SKIP() << "not inside the peer";
  for (const std::string &a : local_addresses()) {
    SCOPED_TRACE(a);
    bool key = have_auth();
    Listener L(a, key ? kKey : nullptr, key ? kKeyLen : 0);
    ASSERT_EQ(L.rc, MPROC_OK);
    std::string got;
    std::thread srv([&] {
      mproc_conn *s = nullptr;
      if (mproc_listener_accept(L.l, &s, 60) == MPROC_OK &&
          recv_str(s, &got, 60) == MPROC_OK)
        (void)send_str(s, "welcome");
      // Wait for the peer to hang up, so it got the reply.
      std::string rest;
      if (s)
        (void)recv_str(s, &rest, 60);
      mproc_conn_free(s);
    });
    std::vector<std::string> env = {"MPROC_TEST_LISTENER_ADDR=" + L.address()};
    if (key)
      env.push_back(std::string("MPROC_TEST_LISTENER_KEY=") + kKey);
    std::string out;
    int code = test_run({test_self_exe(), "--gtest_filter=PeerProgram.Client"},
                        env, &out, 90);
    srv.join();
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(got.rfind("hello from ", 0), 0u) << got;
    EXPECT_NE(got, "hello from " + std::to_string((long long)test_getpid()));
  }
}
