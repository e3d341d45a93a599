#include "test_util.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;
#endif

std::vector<mproc_entry> &test_entries() {
  static std::vector<mproc_entry> entries;
  return entries;
}

TestPipe::TestPipe() {
#ifdef _WIN32
  HANDLE hr, hw;
  if (CreatePipe(&hr, &hw, nullptr, 1 << 16)) {
    r = hr;
    w = hw;
  }
#else
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) == 0) {
    r = fds[0];
    w = fds[1];
  }
#endif
}
TestPipe::~TestPipe() {
  close_r();
  close_w();
}
void TestPipe::close_r() {
  if (r != MPROC_INVALID_HANDLE)
    test_close_handle(r);
  r = MPROC_INVALID_HANDLE;
}
void TestPipe::close_w() {
  if (w != MPROC_INVALID_HANDLE)
    test_close_handle(w);
  w = MPROC_INVALID_HANDLE;
}

void test_close_handle(mproc_handle_t h) {
#ifdef _WIN32
  CloseHandle(h);
#else
  close(h);
#endif
}

bool test_write_all(mproc_handle_t h, const void *data, size_t len) {
  const char *p = static_cast<const char *>(data);
  while (len > 0) {
#ifdef _WIN32
    DWORD n = 0;
    if (!WriteFile(h, p, (DWORD)(len > (1u << 20) ? (1u << 20) : len), &n,
                   nullptr))
      return false;
#else
    ssize_t n = write(h, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
#endif
    p += n;
    len -= (size_t)n;
  }
  return true;
}

static long test_read_some(mproc_handle_t h, char *buf, size_t cap) {
#ifdef _WIN32
  DWORD n = 0;
  if (!ReadFile(h, buf, (DWORD)cap, &n, nullptr))
    return 0; // ERROR_BROKEN_PIPE: every writer closed
  return (long)n;
#else
  for (;;) {
    ssize_t n = read(h, buf, cap);
    if (n < 0 && errno == EINTR)
      continue;
    return n < 0 ? 0 : (long)n;
  }
#endif
}

std::string test_read_all(mproc_handle_t h, size_t max) {
  std::string out;
  char buf[65536];
  while (out.size() < max) {
    long n = test_read_some(h, buf, sizeof buf);
    if (n <= 0)
      break;
    out.append(buf, (size_t)n);
  }
  return out;
}

std::string test_read_n(mproc_handle_t h, size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    size_t want = n - out.size();
    long got = test_read_some(h, buf, want < sizeof buf ? want : sizeof buf);
    if (got <= 0)
      break;
    out.append(buf, (size_t)got);
  }
  return out;
}

void test_sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

double test_now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

TestRounds::TestRounds(long min, long max, double seconds)
    : min_(min), max_(max), end_(test_now() + seconds) {}

bool TestRounds::next() {
  if (n_ >= max_ || (n_ >= min_ && test_now() >= end_))
    return false;
  n_++;
  return true;
}

int64_t test_getpid() {
#ifdef _WIN32
  return (int64_t)GetCurrentProcessId();
#else
  return (int64_t)getpid();
#endif
}

bool test_on_windows() {
#ifdef _WIN32
  return true;
#else
  return false;
#endif
}

int test_main_rc;

std::string test_self_exe() {
#ifdef _WIN32
  wchar_t w[32768];
  DWORD n = GetModuleFileNameW(nullptr, w, 32768);
  int len = WideCharToMultiByte(CP_UTF8, 0, w, (int)n, nullptr, 0, nullptr,
                                nullptr);
  std::string s((size_t)len, '\0');
  WideCharToMultiByte(CP_UTF8, 0, w, (int)n, &s[0], len, nullptr, nullptr);
  return s;
#else
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, (size_t)n) : std::string();
#endif
}

#ifdef _WIN32
static std::wstring widen(const std::string &s) {
  int n = MultiByteToWideChar(CP_UTF8, 0, s.c_str(), -1, nullptr, 0);
  std::wstring w((size_t)n, L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.c_str(), -1, &w[0], n);
  w.resize((size_t)n - 1);
  return w;
}

// The CommandLineToArgvW rules, written independently of the library's
// quoting so that the tests check one against the other.
static std::string quote_for_test(const std::string &a) {
  if (!a.empty() && a.find_first_of(" \t\"") == std::string::npos)
    return a;
  std::string out = "\"";
  size_t slashes = 0;
  for (char c : a) {
    if (c == '\\') {
      slashes++;
      continue;
    }
    out.append(c == '"' ? slashes * 2 + 1 : slashes, '\\');
    slashes = 0;
    out += c;
  }
  out.append(slashes * 2, '\\');
  return out + "\"";
}
#endif

int test_run(const std::vector<std::string> &argv,
             const std::vector<std::string> &env, std::string *output,
             double timeout_s) {
  std::vector<std::pair<std::string, std::string>> saved;
  for (const auto &kv : env) {
    size_t eq = kv.find('=');
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    const char *old = getenv(k.c_str());
    saved.emplace_back(k, old ? std::string("=") + old : std::string());
#ifdef _WIN32
    SetEnvironmentVariableA(k.c_str(), v.c_str());
    _putenv_s(k.c_str(), v.c_str());
#else
    setenv(k.c_str(), v.c_str(), 1);
#endif
  }
  int code = -1000;
#ifdef _WIN32
  SECURITY_ATTRIBUTES sa = {sizeof sa, nullptr, TRUE};
  HANDLE rd, wr;
  if (CreatePipe(&rd, &wr, &sa, 1 << 16)) {
    SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0);
    std::string cmd;
    for (const auto &a : argv)
      cmd += (cmd.empty() ? "" : " ") + quote_for_test(a);
    std::wstring wcmd = widen(cmd), wexe = widen(argv[0]);
    STARTUPINFOW si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    si.hStdOutput = wr;
    si.hStdError = wr;
    PROCESS_INFORMATION pi;
    if (CreateProcessW(wexe.c_str(), &wcmd[0], nullptr, nullptr, TRUE, 0,
                       nullptr, nullptr, &si, &pi)) {
      CloseHandle(wr);
      wr = nullptr;
      CloseHandle(pi.hThread);
      std::thread reader([&] {
        std::string out = test_read_all(rd);
        if (output)
          *output = out;
      });
      DWORD w = WaitForSingleObject(pi.hProcess, (DWORD)(timeout_s * 1000));
      if (w != WAIT_OBJECT_0) {
        TerminateProcess(pi.hProcess, 1);
        WaitForSingleObject(pi.hProcess, INFINITE);
      }
      DWORD ec = 0;
      GetExitCodeProcess(pi.hProcess, &ec);
      code = w == WAIT_OBJECT_0 ? (int)ec : -1001;
      CloseHandle(pi.hProcess);
      reader.join();
    }
    if (wr)
      CloseHandle(wr);
    CloseHandle(rd);
  }
#else
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) == 0) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    std::vector<char *> av;
    for (const auto &a : argv)
      av.push_back(const_cast<char *>(a.c_str()));
    av.push_back(nullptr);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, av.data(),
                         environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc == 0) {
      std::string out;
      double deadline = test_now() + timeout_s;
      bool eof = false, timed_out = false;
      while (!eof) {
        struct pollfd p = {fds[0], POLLIN, 0};
        int left = (int)((deadline - test_now()) * 1000);
        if (left <= 0) {
          timed_out = true;
          kill(pid, SIGKILL);
          break;
        }
        if (poll(&p, 1, left) > 0) {
          char buf[4096];
          ssize_t n = read(fds[0], buf, sizeof buf);
          if (n <= 0)
            eof = true;
          else
            out.append(buf, (size_t)n);
        }
      }
      int st = 0;
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      if (output)
        *output = out;
      code = timed_out ? -1001
             : WIFEXITED(st) ? WEXITSTATUS(st)
                             : -WTERMSIG(st);
    }
    close(fds[0]);
  }
#endif
  for (const auto &kv : saved) {
#ifdef _WIN32
    SetEnvironmentVariableA(kv.first.c_str(),
                            kv.second.empty() ? nullptr : kv.second.c_str() + 1);
    _putenv_s(kv.first.c_str(), kv.second.empty() ? "" : kv.second.c_str() + 1);
#else
    if (kv.second.empty())
      unsetenv(kv.first.c_str());
    else
      setenv(kv.first.c_str(), kv.second.c_str() + 1, 1);
#endif
  }
  return code;
}

mproc_process *test_start(const char *entry, const mproc_args *args,
                          const mproc_process_options *opts) {
  mproc_process *p = nullptr;
  int rc = mproc_process_create(&p, entry, args, opts);
  EXPECT_EQ(rc, MPROC_OK) << mproc_strerror(rc);
  if (rc != MPROC_OK)
    return nullptr;
  rc = mproc_process_start(p);
  EXPECT_EQ(rc, MPROC_OK) << mproc_strerror(rc) << " os error "
                          << mproc_os_error();
  return p;
}

int test_join_code(mproc_process *p, double timeout) {
  if (!p)
    return -9999;
  int rc = mproc_process_join(p, timeout);
  EXPECT_EQ(rc, MPROC_OK) << mproc_strerror(rc);
  if (rc != MPROC_OK) {
    mproc_process_kill(p);
    mproc_process_join(p, MPROC_FOREVER);
  }
  int code = -9999;
  EXPECT_EQ(mproc_process_exitcode(p, &code), 1);
  return code;
}

int64_t arg_int(const mproc_args *a, size_t i, int64_t dflt) {
  int64_t v = dflt;
  mproc_arg_int(a, i, &v);
  return v;
}

mproc_handle_t arg_handle(const mproc_args *a, size_t i) {
  mproc_handle_t h = MPROC_INVALID_HANDLE;
  mproc_arg_handle(a, i, &h);
  return h;
}

std::vector<mproc_start_method> every_method() {
  std::vector<mproc_start_method> m{MPROC_START_SPAWN};
#ifndef _WIN32
  m.push_back(MPROC_START_FORK);
  m.push_back(MPROC_START_FORKSERVER);
#endif
  return m;
}

int64_t in_i64(const mproc_args *args) {
  const void *d = nullptr;
  size_t n = 0;
  int64_t x = 0;
  if (mproc_task_input(args, &d, &n) == MPROC_OK && n == sizeof x)
    memcpy(&x, d, sizeof x);
  return x;
}

int out_i64(const mproc_args *args, int64_t v) {
  return mproc_task_result(args, &v, sizeof v) == MPROC_OK ? 0 : 99;
}

void test_start_stopped_holder(const char *entry, const mproc_args *args,
                               TestPipe &ready, mproc_process **p) {
  *p = test_start(entry, args);
  ready.close_w();
  ASSERT_EQ(test_read_n(ready.r, 1), "R");
  int64_t pid = 0;
  EXPECT_EQ(mproc_process_pid(*p, &pid), MPROC_OK);
#ifndef _WIN32
  EXPECT_EQ(kill((pid_t)pid, SIGSTOP), 0);
#endif
}

Args::Args() { mproc_args_create(&a); }
Args::~Args() { mproc_args_free(a); }
Args &Args::i(int64_t v, const char *key) {
  EXPECT_EQ(mproc_args_add_int(a, key, v), MPROC_OK);
  return *this;
}
Args &Args::d(double v, const char *key) {
  EXPECT_EQ(mproc_args_add_double(a, key, v), MPROC_OK);
  return *this;
}
Args &Args::s(const char *v, const char *key) {
  EXPECT_EQ(mproc_args_add_str(a, key, v), MPROC_OK);
  return *this;
}
Args &Args::b(const void *p, size_t n, const char *key) {
  EXPECT_EQ(mproc_args_add_bytes(a, key, p, n), MPROC_OK);
  return *this;
}
Args &Args::h(mproc_handle_t v, const char *key) {
  EXPECT_EQ(mproc_args_add_handle(a, key, v), MPROC_OK);
  return *this;
}

TestWatchdog::TestWatchdog(mproc_process *p, double seconds) {
  t_ = std::thread([this, p, seconds] {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, std::chrono::duration<double>(seconds),
                      [this] { return done_; }))
      mproc_process_kill(p);
  });
}

void TestWatchdog::disarm() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    done_ = true;
  }
  cv_.notify_all();
  if (t_.joinable())
    t_.join();
}

void test_crash(unsigned code) {
  std::fflush(nullptr);
#ifdef _WIN32
  TerminateProcess(GetCurrentProcess(), code);
#else
  (void)code;
  std::abort();
#endif
}

TestQueue::TestQueue() { EXPECT_EQ(mproc_queue_create(&q, nullptr), MPROC_OK); }
TestQueue::~TestQueue() { mproc_queue_free(q); }

TestEvent::TestEvent(bool set) {
  EXPECT_EQ(mproc_event_create(&e), MPROC_OK);
  if (set) {
    EXPECT_EQ(mproc_event_set(e), MPROC_OK);
  }
}
TestEvent::~TestEvent() { mproc_event_free(e); }

TestConnPair::TestConnPair() { EXPECT_EQ(mproc_pipe(&a, &b, 1), MPROC_OK); }
TestConnPair::~TestConnPair() {
  mproc_conn_free(a);
  mproc_conn_free(b);
}
