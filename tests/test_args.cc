// Arguments: the typed list reaches the entry identically under fork and
// spawn; the decoders of bytes from another process reject damage; Windows
// command-line quoting follows the documented rules.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "test_util.h"

extern "C" {
#include "internal.h"
}

namespace {

std::string hex(const void *p, size_t n) {
  static const char *digits = "0123456789abcdef";
  const unsigned char *b = static_cast<const unsigned char *>(p);
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += digits[b[i] >> 4];
    s += digits[b[i] & 15];
  }
  return s;
}

uint64_t fnv(const void *p, size_t n) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

std::string describe_one(const mproc_args *a, int type, size_t i,
                         const char *key) {
  std::string s;
  switch (type) {
  case MPROC_ARG_INT: {
    int64_t v = 0;
    key ? mproc_kwarg_int(a, key, &v) : mproc_arg_int(a, i, &v);
    s = "i:" + std::to_string(v);
    break;
  }
  case MPROC_ARG_DOUBLE: {
    double v = 0;
    key ? mproc_kwarg_double(a, key, &v) : mproc_arg_double(a, i, &v);
    s = "d:" + hex(&v, sizeof v); // bit-exact
    break;
  }
  case MPROC_ARG_STR: {
    const char *v = nullptr;
    key ? mproc_kwarg_str(a, key, &v) : mproc_arg_str(a, i, &v);
    s = "s:" + hex(v, strlen(v));
    break;
  }
  case MPROC_ARG_BYTES: {
    const void *v = nullptr;
    size_t n = 0;
    key ? mproc_kwarg_bytes(a, key, &v, &n) : mproc_arg_bytes(a, i, &v, &n);
    s = "b:" + std::to_string(n) + ":" + std::to_string(fnv(v, n));
    break;
  }
  case MPROC_ARG_HANDLE:
    s = "h";
    break;
  default:
    s = "?";
  }
  return s;
}

// A canonical text of a whole list, computed the same way on both sides.
std::string describe(const mproc_args *a) {
  std::string s = "pos=" + std::to_string(mproc_args_count(a)) + ";";
  for (size_t i = 0; i < mproc_args_count(a); i++)
    s += describe_one(a, mproc_arg_type(a, i), i, nullptr) + ";";
  s += "kw=" + std::to_string(mproc_kwargs_count(a)) + ";";
  for (size_t i = 0; i < mproc_kwargs_count(a); i++) {
    const char *k = nullptr;
    mproc_kwarg_key(a, i, &k);
    s += std::string(k) + "=" + describe_one(a, mproc_kwarg_type(a, k), 0, k) +
         ";";
  }
  return s;
}

} // namespace

TEST_ENTRY(describe_args) {
  mproc_handle_t out = MPROC_INVALID_HANDLE;
  if (mproc_kwarg_handle(args, "out", &out) != MPROC_OK)
    return 3;
  std::string s = describe(args);
  return test_write_all(out, s.data(), s.size()) ? 0 : 1;
}

static std::string round_trip(const Args &a) {
  TestPipe pipe;
  EXPECT_EQ(mproc_args_add_handle(a.a, "out", pipe.w), MPROC_OK);
  mproc_process *p = test_start("describe_args", a);
  pipe.close_w();
  std::string got = test_read_all(pipe.r);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
  return got;
}

TEST(ArgsRoundTrip, EveryTypePositionalAndKeyword) {
  double nan_payload;
  uint64_t bits = 0x7ff8dead0000beefull;
  memcpy(&nan_payload, &bits, sizeof bits);
  const unsigned char blob[] = {0, 1, 2, 0, 255, 0};
  Args a;
  a.i(0).i(std::numeric_limits<int64_t>::min()).i(
      std::numeric_limits<int64_t>::max());
  a.d(-0.0).d(nan_payload).d(std::numeric_limits<double>::infinity()).d(
      std::numeric_limits<double>::denorm_min());
  a.s("").s("h\xc3\xa9llo w\xc3\xb6rld \"quoted\" \\back\\").b(blob, sizeof blob);
  a.b(nullptr, 0);
  a.i(42, "answer").d(3.5, "ratio").s("value with spaces", "name");
  a.b(blob, 3, "blob");
  std::string got = round_trip(a); // adds the "out" handle to `a`
  EXPECT_EQ(got, describe(a)) << got;
}

TEST(ArgsRoundTrip, OneMebibyteBlobArrivesIntact) {
  std::string big(1 << 20, '\0');
  std::mt19937 rng(7);
  for (auto &c : big)
    c = (char)rng();
  Args a;
  a.b(big.data(), big.size());
  std::string got = round_trip(a);
  EXPECT_EQ(got, describe(a));
}

TEST(ArgsRoundTrip, NoArgumentsAtAll) {
  mproc_process *p = test_start("ret_zero_if_no_args", nullptr);
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

TEST_ENTRY(ret_zero_if_no_args) {
  return mproc_args_count(args) == 0 && mproc_kwargs_count(args) == 0 ? 0 : 1;
}

// Handles given as keyword before a positional one keep their own slots.
TEST_ENTRY(write_to_both) {
  mproc_handle_t a = MPROC_INVALID_HANDLE, b = MPROC_INVALID_HANDLE;
  if (mproc_kwarg_handle(args, "first", &a) || mproc_arg_handle(args, 0, &b))
    return 2;
  return test_write_all(a, "A", 1) && test_write_all(b, "B", 1) ? 0 : 1;
}

TEST(ArgsRoundTrip, HandlesInMixedOrder) {
  TestPipe p1, p2;
  Args a;
  a.h(p1.w, "first").h(p2.w);
  mproc_process *p = test_start("write_to_both", a);
  p1.close_w();
  p2.close_w();
  EXPECT_EQ(test_read_all(p1.r), "A");
  EXPECT_EQ(test_read_all(p2.r), "B");
  EXPECT_EQ(test_join_code(p), 0);
  mproc_process_free(p);
}

TEST(ArgsBuilder, ReadersWorkOnTheBuilderWithTypeChecks) {
  Args a;
  a.i(5).s("x").d(1.5, "k");
  int64_t i = 0;
  double d = 0;
  const char *s = nullptr;
  const void *b = nullptr;
  size_t n = 0;
  mproc_handle_t h;
  EXPECT_EQ(mproc_arg_int(a, 0, &i), MPROC_OK);
  EXPECT_EQ(i, 5);
  EXPECT_EQ(mproc_arg_str(a, 1, &s), MPROC_OK);
  EXPECT_STREQ(s, "x");
  EXPECT_EQ(mproc_kwarg_double(a, "k", &d), MPROC_OK);
  EXPECT_EQ(d, 1.5);
  EXPECT_EQ(mproc_arg_double(a, 0, &d), MPROC_ETYPE);
  EXPECT_EQ(mproc_arg_bytes(a, 1, &b, &n), MPROC_ETYPE);
  EXPECT_EQ(mproc_arg_handle(a, 0, &h), MPROC_ETYPE);
  EXPECT_EQ(mproc_arg_int(a, 2, &i), MPROC_ENOTFOUND);
  EXPECT_EQ(mproc_kwarg_int(a, "missing", &i), MPROC_ENOTFOUND);
  EXPECT_EQ(mproc_kwarg_int(a, "k", &i), MPROC_ETYPE);
  EXPECT_EQ(mproc_arg_type(a, 0), MPROC_ARG_INT);
  EXPECT_EQ(mproc_arg_type(a, 9), MPROC_ENOTFOUND);
  EXPECT_EQ(mproc_kwarg_type(a, "k"), MPROC_ARG_DOUBLE);
  EXPECT_EQ(mproc_args_count(a), 2u);
  EXPECT_EQ(mproc_kwargs_count(a), 1u);
}

TEST(ArgsBuilder, BadInput) {
  mproc_args *a = nullptr;
  EXPECT_EQ(mproc_args_create(nullptr), MPROC_EINVAL);
  ASSERT_EQ(mproc_args_create(&a), MPROC_OK);
  EXPECT_EQ(mproc_args_add_int(nullptr, nullptr, 1), MPROC_EINVAL);
  EXPECT_EQ(mproc_args_add_str(a, nullptr, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_args_add_bytes(a, nullptr, nullptr, 3), MPROC_EINVAL);
  EXPECT_EQ(mproc_args_add_handle(a, nullptr, MPROC_INVALID_HANDLE),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_args_add_int(a, "", 1), MPROC_EINVAL); // empty key
  EXPECT_EQ(mproc_args_add_int(a, "k", 1), MPROC_OK);
  EXPECT_EQ(mproc_args_add_str(a, "k", "dup"), MPROC_EINVAL); // duplicate
  int64_t v;
  EXPECT_EQ(mproc_arg_int(nullptr, 0, &v), MPROC_EINVAL);
  EXPECT_EQ(mproc_kwarg_int(a, nullptr, &v), MPROC_EINVAL);
  EXPECT_EQ(mproc_kwarg_int(a, "k", nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_args_count(nullptr), 0u);
  EXPECT_EQ(mproc_args_free(a), nullptr);
  EXPECT_EQ(mproc_args_free(nullptr), nullptr);
}

TEST(ArgsBuilder, SizeLimitIsEnforced) {
  Args a;
  std::string big((size_t)40 << 20, 'x');
  EXPECT_EQ(mproc_args_add_bytes(a.a, nullptr, big.data(), MPROC_ARGS_MAX + 1),
            MPROC_E2BIG);
  a.b(big.data(), big.size()).b(big.data(), big.size());
  mproc_process *p = nullptr;
  EXPECT_EQ(mproc_process_create(&p, "describe_args", a, nullptr), MPROC_E2BIG);
  EXPECT_EQ(p, nullptr);
}

// ---- decoders of bytes from another process ------------------------------------

static std::vector<unsigned char> encoded_sample(size_t *nhandles) {
  Args a;
  a.i(-7).d(2.25).s("str").b("\0\1", 2).i(1, "kw").s("v", "key");
  a.h((mproc_handle_t)(intptr_t)5, "h");
  unsigned char *buf = nullptr;
  size_t len = 0;
  mproc_handle_t *hs = nullptr;
  EXPECT_EQ(mproc__args_encode(a, &buf, &len, &hs, nhandles), MPROC_OK);
  std::vector<unsigned char> v(buf, buf + len);
  free(buf);
  free(hs);
  return v;
}

TEST(ArgsDecode, EveryTruncationIsRejected) {
  size_t nh = 0;
  auto v = encoded_sample(&nh);
  mproc_handle_t table[1] = {(mproc_handle_t)(intptr_t)9};
  mproc_args *out = nullptr;
  ASSERT_EQ(mproc__args_decode(v.data(), v.size(), table, 1, 0, &out), MPROC_OK);
  EXPECT_EQ(describe(out).find("pos=4;"), 0u);
  mproc_args_free(out);
  for (size_t n = 0; n < v.size(); n++) {
    std::vector<unsigned char> cut(v.begin(), v.begin() + (long)n);
    EXPECT_EQ(mproc__args_decode(cut.data(), n, table, 1, 0, &out), MPROC_EINVAL)
        << n;
    EXPECT_EQ(out, nullptr);
  }
  // Trailing garbage is damage too, and so is a missing handle table.
  v.push_back(0);
  EXPECT_EQ(mproc__args_decode(v.data(), v.size(), table, 1, 0, &out),
            MPROC_EINVAL);
  v.pop_back();
  EXPECT_EQ(mproc__args_decode(v.data(), v.size(), table, 0, 0, &out),
            MPROC_EINVAL);
}

TEST(ArgsDecode, RandomDamageIsRejectedOrDecodedNeverACrash) {
  size_t nh = 0;
  auto v = encoded_sample(&nh);
  mproc_handle_t table[1] = {(mproc_handle_t)(intptr_t)9};
  std::mt19937 rng(12345);
  // Up to 20,000 damaged copies, fewer (at least 2,000) past 10 s (ASan).
  for (TestRounds r(2000, 20000, 10); r.next();) {
    auto d = v;
    int flips = 1 + (int)(rng() % 4);
    for (int f = 0; f < flips; f++)
      d[rng() % d.size()] = (unsigned char)rng();
    mproc_args *out = nullptr;
    int rc = mproc__args_decode(d.data(), d.size(), table, 1, 0, &out);
    ASSERT_TRUE(rc == MPROC_OK || rc == MPROC_EINVAL) << rc;
    if (rc == MPROC_OK)
      describe(out); // touch every decoded value
    mproc_args_free(out);
  }
}

TEST(ArgsDecode, ForgedCountsFailBeforeAllocating) {
  unsigned char hdr[12];
  memset(hdr, 0xff, sizeof hdr);
  mproc_args *out = nullptr;
  EXPECT_EQ(mproc__args_decode(hdr, sizeof hdr, nullptr, 0, 0, &out),
            MPROC_EINVAL);
  EXPECT_EQ(mproc__args_decode(nullptr, 5, nullptr, 0, 0, &out), MPROC_EINVAL);
}

static std::vector<unsigned char> bootstrap_sample() {
  uint64_t handles[2] = {4, 5};
  const unsigned char args[3] = {1, 2, 3};
  mproc__bootstrap bs;
  memset(&bs, 0, sizeof bs);
  bs.start_method = MPROC_START_SPAWN;
  bs.flags = MPROC__BS_DAEMON;
  bs.parent_pid = 1234;
  bs.parent_handle = 0x44;
  bs.entry = "entry";
  bs.name = "Process-1";
  bs.identity = "1";
  bs.parent_name = "MainProcess";
  bs.nhandles = 2;
  bs.handles = handles;
  bs.args = args;
  bs.args_len = 3;
  unsigned char *buf = nullptr;
  size_t len = 0;
  EXPECT_EQ(mproc__bootstrap_encode(&bs, &buf, &len), MPROC_OK);
  std::vector<unsigned char> v(buf, buf + len);
  free(buf);
  return v;
}

TEST(BootstrapDecode, RoundTrip) {
  auto v = bootstrap_sample();
  mproc__bootstrap bs;
  ASSERT_EQ(mproc__bootstrap_decode(v.data(), v.size(), &bs), MPROC_OK);
  EXPECT_STREQ(bs.entry, "entry");
  EXPECT_STREQ(bs.name, "Process-1");
  EXPECT_STREQ(bs.identity, "1");
  EXPECT_STREQ(bs.parent_name, "MainProcess");
  EXPECT_EQ(bs.parent_pid, 1234);
  EXPECT_EQ(bs.parent_handle, 0x44u);
  EXPECT_EQ(bs.flags, (uint32_t)MPROC__BS_DAEMON);
  ASSERT_EQ(bs.nhandles, 2u);
  EXPECT_EQ(bs.handles[1], 5u);
  EXPECT_EQ(bs.args_len, 3u);
  size_t total = 0;
  EXPECT_EQ(mproc__bootstrap_peek_len(v.data(), &total), MPROC_OK);
  EXPECT_EQ(total, v.size());
  mproc__bootstrap_release(&bs);
}

TEST(BootstrapDecode, TruncationAndDamageAreRejected) {
  auto v = bootstrap_sample();
  mproc__bootstrap bs;
  for (size_t n = 0; n < v.size(); n++)
    EXPECT_EQ(mproc__bootstrap_decode(v.data(), n, &bs), MPROC_EINVAL) << n;
  std::mt19937 rng(99);
  // Up to 20,000 damaged copies, fewer (at least 2,000) past 10 s (ASan).
  for (TestRounds r(2000, 20000, 10); r.next();) {
    auto d = v;
    d[rng() % d.size()] = (unsigned char)rng();
    int rc = mproc__bootstrap_decode(d.data(), d.size(), &bs);
    ASSERT_TRUE(rc == MPROC_OK || rc == MPROC_EINVAL);
    if (rc == MPROC_OK) {
      EXPECT_LE(strlen(bs.entry) + strlen(bs.name), d.size());
      mproc__bootstrap_release(&bs);
    }
  }
  auto bad = v;
  bad[0] = 'X'; // magic
  EXPECT_EQ(mproc__bootstrap_decode(bad.data(), bad.size(), &bs), MPROC_EINVAL);
  bad = v;
  bad[8] = 9; // version
  EXPECT_EQ(mproc__bootstrap_decode(bad.data(), bad.size(), &bs), MPROC_EINVAL);
  size_t total;
  bad = v;
  bad[15] = 0x7f; // length far over the limit
  EXPECT_EQ(mproc__bootstrap_peek_len(bad.data(), &total), MPROC_EINVAL);
}

// ---- Windows command-line quoting (pure logic, tested everywhere) -----------------

// CommandLineToArgvW's reading of one quoted or bare argument.
static std::string parse_one(const std::string &s, size_t *pos) {
  std::string out;
  bool inq = false;
  size_t i = *pos;
  while (i < s.size() && (inq || (s[i] != ' ' && s[i] != '\t'))) {
    size_t slashes = 0;
    while (i < s.size() && s[i] == '\\') {
      slashes++;
      i++;
    }
    if (i < s.size() && s[i] == '"') {
      out.append(slashes / 2, '\\');
      if (slashes % 2) {
        out += '"';
      } else if (inq && i + 1 < s.size() && s[i + 1] == '"') {
        out += '"'; // "" inside quotes
        i++;
      } else {
        inq = !inq;
      }
      i++;
    } else {
      out.append(slashes, '\\');
      if (i < s.size() && (inq || (s[i] != ' ' && s[i] != '\t')))
        out += s[i++];
    }
  }
  *pos = i;
  return out;
}

static std::string quote(const std::string &a) {
  size_t need = mproc__quote_arg(a.c_str(), nullptr, 0);
  std::string out(need + 1, '\0');
  EXPECT_EQ(mproc__quote_arg(a.c_str(), &out[0], out.size()), need);
  out.resize(need);
  return out;
}

TEST(Quoting, KnownCases) {
  EXPECT_EQ(quote("plain"), "plain");
  EXPECT_EQ(quote(""), "\"\"");
  EXPECT_EQ(quote("two words"), "\"two words\"");
  EXPECT_EQ(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(quote("C:\\Program Files\\"), "\"C:\\Program Files\\\\\"");
  EXPECT_EQ(quote("C:\\no\\spaces\\"), "C:\\no\\spaces\\");
  EXPECT_EQ(quote("a\\\\\"b"), "\"a\\\\\\\\\\\"b\"");
  EXPECT_EQ(quote("tab\there"), "\"tab\there\"");
}

TEST(Quoting, ParsesBackToTheSameArgument) {
  const char alphabet[] = {'a', ' ', '\\', '"', '\t', 'x', '\\', '"'};
  std::mt19937 rng(3);
  // Up to 5,000 arguments, fewer (at least 1,000) past 10 s (ASan).
  for (TestRounds r(1000, 5000, 10); r.next();) {
    std::string a;
    size_t len = rng() % 12;
    for (size_t i = 0; i < len; i++)
      a += alphabet[rng() % sizeof alphabet];
    std::string q = quote(a);
    size_t pos = 0;
    EXPECT_EQ(parse_one(q, &pos), a) << "quoted: " << q;
    EXPECT_EQ(pos, q.size()) << q;
  }
}

TEST(Quoting, TruncatesSafely) {
  char small[4];
  size_t need = mproc__quote_arg("a long argument", small, sizeof small);
  EXPECT_EQ(need, strlen("\"a long argument\""));
  EXPECT_EQ(small[3], '\0');
}
