// A pool whose workers are MPI ranks (include/mproc/pool.h, "MPI ranks as
// workers").  The MpiRanks tests need the binary to run under mpiexec with 2
// ranks or more in an MPI build (the mpi lane: cmake/mpi-run.sh -n 4); run
// otherwise they skip, and the MpiLocal tests check what holds anywhere (no
// MPI in the build, or not started by mpiexec: MPROC_ENOTSUP).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

// This process's MPI rank as the launcher says (-1 outside mpiexec).
int64_t env_rank() {
  const char *r = std::getenv("OMPI_COMM_WORLD_RANK");
  if (!r)
    r = std::getenv("PMI_RANK");
  return r ? std::atoll(r) : -1;
}

int g_init_value; // set by the initializer, in each rank

int workers() { return mproc_pool_mpi_workers(); }

// Under a launcher that gave us ranks (MPROC_TEST_MPI_RANKS, set by the
// mpi.ranks4 test), ranks that did not come up are a failure, not a skip.
#define NEED_RANKS()                                                           \
  do {                                                                         \
    if (workers() < 1) {                                                       \
      ASSERT_EQ(std::getenv("MPROC_TEST_MPI_RANKS"), nullptr)                  \
          << "mpiexec started us but mproc_pool_mpi_workers() is "            \
          << workers();                                                        \
      GTEST_SKIP() << "not under mpiexec with 2 ranks or more (an MPI build "  \
                      "run by cmake/mpi-run.sh)";                              \
    }                                                                          \
  } while (0)

mproc_pool *mpi_pool(int processes = 0, const char *init = nullptr) {
  mproc_pool_options o{};
  o.backend = MPROC_POOL_MPI;
  o.processes = processes;
  o.initializer = init;
  mproc_pool *p = nullptr;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_OK);
  return p;
}

// Frees a pool a test left (it stopped at a failed ASSERT): the next test
// needs the ranks.
struct PoolGuard {
  mproc_pool **p;
  ~PoolGuard() {
    if (*p)
      mproc_pool_free(*p);
  }
};
#define GUARD(p) PoolGuard guard_##p{&p}

void close_pool(mproc_pool *&p) {
  EXPECT_EQ(mproc_pool_close(p), MPROC_OK);
  EXPECT_EQ(mproc_pool_join(p, 60), MPROC_OK);
  p = mproc_pool_free(p);
}

// A pool that ranks serve: one apply of mpi_square comes back right, then
// the pool is closed.
void square_then_close(mproc_pool *&p, int64_t x) {
  int64_t y = 0;
  EXPECT_EQ(mproc_pool_apply(p, "mpi_square", &x, sizeof x, &y, sizeof y,
                             nullptr),
            0);
  EXPECT_EQ(y, x * x);
  close_pool(p);
}

std::vector<int64_t> iota(size_t n) {
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; i++)
    v[i] = (int64_t)i;
  return v;
}

std::vector<mproc_bytes> as_bytes(const std::vector<int64_t> &v) {
  std::vector<mproc_bytes> b(v.size());
  for (size_t i = 0; i < v.size(); i++)
    b[i] = mproc_bytes{&v[i], sizeof v[i]};
  return b;
}

} // namespace

// ---- tasks ----------------------------------------------------------------

TEST_ENTRY(mpi_square) {
  int64_t x = in_i64(args);
  return out_i64(args, x * x);
}

TEST_ENTRY(mpi_rank) { return out_i64(args, env_rank()); }

TEST_ENTRY(mpi_fail_odd) {
  int64_t x = in_i64(args);
  return x % 2 ? 7 : out_i64(args, x);
}

// Echoes its input n times (a large result from a small input).
TEST_ENTRY(mpi_echo) {
  const void *d = nullptr;
  size_t n = 0;
  if (mproc_task_input(args, &d, &n) < 0)
    return 1;
  return mproc_task_result(args, d, n) == 0 ? 0 : 2;
}

TEST_ENTRY(mpi_init_set) {
  g_init_value = 42;
  return 0;
}

TEST_ENTRY(mpi_init_fail) { return 5; }

TEST_ENTRY(mpi_init_value) { return out_i64(args, g_init_value); }

TEST_ENTRY(mpi_sleep_ms) {
  int64_t x = in_i64(args);
  test_sleep_ms((int)x);
  return out_i64(args, x);
}

// ---- anywhere ---------------------------------------------------------------

TEST(MpiLocal, WithoutRanksTheBackendIsNotSupported) {
  int n = workers();
#ifndef MPROC_TEST_WITH_MPI
  EXPECT_EQ(n, MPROC_ENOTSUP) << "a build without MPI";
#else
  if (env_rank() < 0) {
    EXPECT_EQ(n, 0) << "an MPI build not started by mpiexec";
  }
#endif
  if (n >= 1)
    GTEST_SKIP() << "under mpiexec: MpiRanks covers the backend";
  mproc_pool_options o{};
  o.backend = MPROC_POOL_MPI;
  mproc_pool *p = nullptr;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ENOTSUP);
  EXPECT_EQ(p, nullptr);
}

TEST(MpiLocal, AnUnknownBackendIsInvalid) {
  if (workers() < 0)
    GTEST_SKIP() << "no MPI in the build: every other backend is ENOTSUP";
  mproc_pool_options o{};
  o.backend = (mproc_pool_backend)7;
  mproc_pool *p = nullptr;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_EINVAL);
}

// ---- under mpiexec ------------------------------------------------------------

TEST(MpiRanks, MapRunsOnTheOtherRanks) {
  NEED_RANKS();
  mproc_pool *p = mpi_pool();
  GUARD(p);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(mproc_pool_processes(p), workers());
  std::vector<int64_t> v = iota(2000);
  std::vector<mproc_bytes> in = as_bytes(v);
  for (size_t cs : {0, 1, 7, 500}) {
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_map(p, "mpi_square", in.data(), in.size(), cs, &r),
              MPROC_OK);
    ASSERT_EQ(mproc_async_result_count(r), v.size());
    for (size_t i = 0; i < v.size(); i++) {
      const void *d = nullptr;
      size_t len = 0;
      ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), 0) << i;
      ASSERT_EQ(len, 8u);
      int64_t y;
      std::memcpy(&y, d, 8);
      ASSERT_EQ(y, v[i] * v[i]) << "chunksize " << cs << " item " << i;
    }
    mproc_async_result_free(r);
  }
  // Which ranks ran the tasks: never rank 0, and only worker ranks.
  std::vector<int64_t> ones(200, 0);
  std::vector<mproc_bytes> in2 = as_bytes(ones);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, "mpi_rank", in2.data(), in2.size(), 1, &r),
            MPROC_OK);
  std::set<int64_t> ranks;
  for (size_t i = 0; i < in2.size(); i++) {
    const void *d = nullptr;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, nullptr), 0);
    int64_t k;
    std::memcpy(&k, d, 8);
    ranks.insert(k);
  }
  mproc_async_result_free(r);
  EXPECT_EQ(ranks.count(0), 0u);
  for (int64_t k : ranks)
    EXPECT_TRUE(k >= 1 && k <= workers()) << k;
  close_pool(p);
}

TEST(MpiRanks, ImapAndImapUnordered) {
  NEED_RANKS();
  mproc_pool *p = mpi_pool();
  GUARD(p);
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> v = iota(300);
  std::vector<mproc_bytes> in = as_bytes(v);
  for (int unordered = 0; unordered < 2; unordered++) {
    mproc_imap *it = nullptr;
    ASSERT_EQ(unordered ? mproc_pool_imap_unordered(p, "mpi_square", in.data(),
                                                    in.size(), 3, &it)
                        : mproc_pool_imap(p, "mpi_square", in.data(),
                                          in.size(), 3, &it),
              MPROC_OK);
    std::vector<int> seen(v.size(), 0);
    size_t k = 0;
    for (;; k++) {
      const void *d = nullptr;
      size_t len = 0, idx = 0;
      int rc = mproc_imap_next(it, &d, &len, &idx, 60);
      if (rc == MPROC_EEOF)
        break;
      ASSERT_EQ(rc, 0);
      ASSERT_LT(idx, v.size());
      if (!unordered) {
        EXPECT_EQ(idx, k);
      }
      int64_t y;
      std::memcpy(&y, d, 8);
      EXPECT_EQ(y, v[idx] * v[idx]);
      seen[idx]++;
    }
    EXPECT_EQ(k, v.size());
    for (int s : seen)
      EXPECT_EQ(s, 1);
    mproc_imap_free(it);
  }
  close_pool(p);
}

namespace {
struct CbState {
  std::mutex mu;
  int ok = 0, err = 0;
};
void on_ok(mproc_async_result *, void *ctx) {
  std::lock_guard<std::mutex> g(((CbState *)ctx)->mu);
  ((CbState *)ctx)->ok++;
}
void on_err(mproc_async_result *, void *ctx) {
  std::lock_guard<std::mutex> g(((CbState *)ctx)->mu);
  ((CbState *)ctx)->err++;
}
} // namespace

TEST(MpiRanks, ApplyAsyncCallbacksAndTaskErrors) {
  NEED_RANKS();
  mproc_pool *p = mpi_pool();
  GUARD(p);
  ASSERT_NE(p, nullptr);
  CbState st;
  mproc_async_options o{};
  o.callback = on_ok;
  o.error_callback = on_err;
  o.ctx = &st;
  std::vector<mproc_async_result *> rs;
  for (int64_t x = 0; x < 20; x++) {
    mproc_async_result *r = nullptr;
    ASSERT_EQ(mproc_pool_apply_async(p, "mpi_fail_odd", &x, sizeof x, &o, &r),
              MPROC_OK);
    rs.push_back(r);
  }
  for (int64_t x = 0; x < 20; x++) {
    int64_t y = -1;
    size_t len = 0;
    int rc = mproc_async_result_get(rs[(size_t)x], &y, sizeof y, &len, 60);
    if (x % 2) {
      EXPECT_EQ(rc, 7);
      EXPECT_EQ(mproc_async_result_successful(rs[(size_t)x]), 0);
    } else {
      EXPECT_EQ(rc, 0);
      EXPECT_EQ(y, x);
    }
    mproc_async_result_free(rs[(size_t)x]);
  }
  // Blocking apply, and a map whose odd items fail alone.
  int64_t x = 12, y = 0;
  size_t len = 0;
  EXPECT_EQ(mproc_pool_apply(p, "mpi_square", &x, sizeof x, &y, sizeof y, &len),
            0);
  EXPECT_EQ(y, 144);
  std::vector<int64_t> v = iota(50);
  std::vector<mproc_bytes> in = as_bytes(v);
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_map(p, "mpi_fail_odd", in.data(), in.size(), 4, &r),
            7); // the first failure's status
  ASSERT_NE(r, nullptr);
  for (size_t i = 0; i < v.size(); i++)
    EXPECT_EQ(mproc_async_result_item(r, i, nullptr, nullptr), i % 2 ? 7 : 0);
  mproc_async_result_free(r);
  close_pool(p); // callbacks have run once the handler has ended
  std::lock_guard<std::mutex> g(st.mu);
  EXPECT_EQ(st.ok, 10);
  EXPECT_EQ(st.err, 10);
}

// Inputs bigger than an input slot (they travel inline) and results bigger
// than half a result slot (sent early, from private memory).
TEST(MpiRanks, LargeInputsAndResults) {
  NEED_RANKS();
  mproc_pool *p = mpi_pool();
  GUARD(p);
  ASSERT_NE(p, nullptr);
  std::vector<std::string> data;
  for (size_t k : {1u, 100u, 40000u, 300000u, 3000000u})
    data.push_back(std::string(k, (char)('a' + k % 26)));
  std::vector<mproc_bytes> in;
  for (auto &s : data)
    in.push_back(mproc_bytes{s.data(), s.size()});
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, "mpi_echo", in.data(), in.size(), 2, &r),
            MPROC_OK);
  for (size_t i = 0; i < in.size(); i++) {
    const void *d = nullptr;
    size_t len = 0;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, &len), 0);
    ASSERT_EQ(len, data[i].size());
    EXPECT_EQ(std::memcmp(d, data[i].data(), len), 0);
  }
  mproc_async_result_free(r);
  close_pool(p);
}

TEST(MpiRanks, InitializerRunsInEachRank) {
  NEED_RANKS();
  mproc_pool *p = mpi_pool(0, "mpi_init_set");
  GUARD(p);
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> v(40, 0);
  std::vector<mproc_bytes> in = as_bytes(v);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map(p, "mpi_init_value", in.data(), in.size(), 1, &r),
            MPROC_OK);
  for (size_t i = 0; i < v.size(); i++) {
    const void *d = nullptr;
    ASSERT_EQ(mproc_async_result_item(r, i, &d, nullptr), 0);
    int64_t k;
    std::memcpy(&k, d, 8);
    EXPECT_EQ(k, 42);
  }
  mproc_async_result_free(r);
  close_pool(p);
}

// A failing initializer fails the create (as for local workers), and the
// ranks serve the next pool.
TEST(MpiRanks, FailingInitializerThenAnotherPool) {
  NEED_RANKS();
  mproc_pool_options o{};
  o.backend = MPROC_POOL_MPI;
  o.initializer = "mpi_init_fail";
  mproc_pool *p = nullptr;
  GUARD(p);
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ESPAWN);
  EXPECT_EQ(p, nullptr);
  p = mpi_pool(1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(mproc_pool_processes(p), 1);
  square_then_close(p, 5);
}

TEST(MpiRanks, WhatRanksCannotDo) {
  NEED_RANKS();
  mproc_pool_options o{};
  o.backend = MPROC_POOL_MPI;
  mproc_pool *p = nullptr;
  GUARD(p);
  o.task_timeout = 1;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ENOTSUP);
  o.task_timeout = 0;
  o.maxtasksperchild = 3;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_ENOTSUP);
  o.maxtasksperchild = 0;
  o.processes = workers() + 1;
  EXPECT_EQ(mproc_pool_create(&p, &o), MPROC_EINVAL);
  o.processes = 0;
  ASSERT_EQ(mproc_pool_create(&p, &o), MPROC_OK);
  // One MPI pool at a time holds the ranks.
  mproc_pool *q = nullptr;
  EXPECT_EQ(mproc_pool_create(&q, &o), MPROC_EBUSY);
  int64_t x = 3;
  mproc_async_options ao{};
  ao.timeout = 5;
  mproc_async_result *r = nullptr;
  EXPECT_EQ(mproc_pool_apply_async(p, "mpi_square", &x, sizeof x, &ao, &r),
            MPROC_ENOTSUP);
  EXPECT_EQ(mproc_pool_apply_async(p, "no_such_task", &x, sizeof x, nullptr,
                                   &r),
            MPROC_ENOENTRY);
  close_pool(p);
}

// terminate: what is queued fails with MPROC_ECLOSED; the tasks already
// handed to ranks run to their end (a rank cannot be killed), then the
// ranks serve the next pool.
TEST(MpiRanks, TerminateThenAnotherPool) {
  NEED_RANKS();
  mproc_pool *p = mpi_pool();
  GUARD(p);
  ASSERT_NE(p, nullptr);
  std::vector<int64_t> v(200, 5); // 5 ms each: most are still queued
  std::vector<mproc_bytes> in = as_bytes(v);
  mproc_async_result *r = nullptr;
  ASSERT_EQ(mproc_pool_map_async(p, "mpi_sleep_ms", in.data(), in.size(), 1,
                                 nullptr, &r),
            MPROC_OK);
  EXPECT_EQ(mproc_pool_terminate(p), MPROC_OK);
  EXPECT_EQ(mproc_pool_join(p, 60), MPROC_OK);
  EXPECT_EQ(mproc_async_result_wait(r, 60), MPROC_OK);
  size_t closed = 0;
  for (size_t i = 0; i < v.size(); i++) {
    int rc = mproc_async_result_item(r, i, nullptr, nullptr);
    EXPECT_TRUE(rc == 0 || rc == MPROC_ECLOSED) << rc;
    closed += rc == MPROC_ECLOSED;
  }
  EXPECT_GT(closed, 0u);
  mproc_async_result_free(r);
  p = mproc_pool_free(p);
  p = mpi_pool();
  ASSERT_NE(p, nullptr);
  square_then_close(p, 9);
}
