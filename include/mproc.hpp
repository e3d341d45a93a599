/*
 * mproc.hpp: a thin header-only C++17 wrapper over <mproc.h>, as reproc++
 * is over reproc.
 *
 *   - RAII owners (move-only) for processes, argument lists, queues, pipe
 *     ends, locks, events, semaphores, shared memory and pools.  Each frees
 *     its C object in its destructor; get() gives the C pointer for
 *     anything the wrapper leaves out, release() gives up ownership.
 *   - Errors are exceptions: mproc::error, a std::system_error whose code is
 *     in mproc::category() (its messages are mproc_strerror()'s, and the
 *     common codes compare equal to their std::errc: MPROC_ETIMEDOUT ==
 *     std::errc::timed_out).  Calls that commonly fail in normal use also
 *     take a std::error_code& and do not throw.  A timeout that is a normal
 *     answer is a return value (join() and wait() return false), not an
 *     exception.
 *   - Entries are plain functions named in the dispatch table, never
 *     lambdas or std::function: a child started by spawn (and every child
 *     on Windows) is the program started again, a fresh address space where
 *     a closure object of the parent, and whatever it captured, does not
 *     exist.  A name in the table means the same function in every process,
 *     whatever the start method.  State goes in the arguments (mproc::args),
 *     as Python pickles a Process's target and args.
 *
 *       static int worker(const mproc_args *a) {
 *         mproc::args_view in(a);
 *         in.get_queue(0).put_int64(in.get_int64(1) * 2);
 *         return 0;
 *       }
 *       static const mproc_entry table[] = {MPROC_ENTRY(worker), MPROC_ENTRY_END};
 *       int main(int argc, char **argv) {
 *         mproc::main(argc, argv, table);   // first thing, as in C
 *         mproc::queue q;
 *         mproc::process p("worker", mproc::args(q, 21));
 *         p.start();
 *         std::int64_t v = q.get_int64();   // 42
 *         p.join();
 *       }
 *
 * Thread safety: as the C functions (see <mproc.h>): calls on one object
 * may run concurrently where the C call may, except moving or destroying
 * the wrapper, which must not race with other calls on it.
 */
#ifndef MPROC_HPP
#define MPROC_HPP

#include <mproc.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace mproc {

/* ---- errors ----------------------------------------------------------------- */

namespace detail {
class category_impl : public std::error_category {
public:
  const char *name() const noexcept override { return "mproc"; }
  std::string message(int ev) const override {
    // A positive value is a pool task's own status, not an MPROC_E* code.
    if (ev > 0)
      return "task failed with status " + std::to_string(ev);
    return mproc_strerror(ev);
  }
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (ev) {
    case MPROC_EINVAL:
      return std::errc::invalid_argument;
    case MPROC_ENOMEM:
      return std::errc::not_enough_memory;
    case MPROC_ETIMEDOUT:
      return std::errc::timed_out;
    case MPROC_EBUSY:
      return std::errc::device_or_resource_busy;
    case MPROC_ENOTSUP:
      return std::errc::not_supported;
    case MPROC_EPERM:
      return std::errc::operation_not_permitted;
    case MPROC_E2BIG:
      return std::errc::argument_list_too_long;
    case MPROC_ERANGE:
      return std::errc::result_out_of_range;
    case MPROC_EEXIST:
      return std::errc::file_exists;
    default:
      return std::error_condition(ev, *this);
    }
  }
};
} // namespace detail

/** The error category of MPROC_E* codes (and of pool task statuses).
 * @return the one instance. Thread-safe. */
inline const std::error_category &category() noexcept {
  static const detail::category_impl c;
  return c;
}

/** An MPROC_E* code (or a task status) as a std::error_code.
 * @param rc the code; 0 gives an empty (success) error_code
 * @return the error_code in mproc::category(). Thread-safe. */
inline std::error_code make_error_code(int rc) noexcept {
  return std::error_code(rc, category());
}

/** The exception every wrapper call throws: a std::system_error whose
 * code() is in mproc::category(). */
class error : public std::system_error {
public:
  /** @param rc the MPROC_E* code  @param what the C call that failed */
  explicit error(int rc, const char *what = "mproc")
      : std::system_error(rc, category(), what) {}
  /** @return the MPROC_E* code (negative) or a task status (positive). */
  int value() const noexcept { return code().value(); }
};

namespace detail {
// Throws for a negative code; returns the others (0, or a 1/0 answer).
inline int check(int rc, const char *what) {
  if (rc < 0)
    throw error(rc, what);
  return rc;
}
// A timed call: true when it happened, false when the timeout came first
// (an answer, not an error); throws for any other error.
inline bool timed(int rc, const char *what) {
  return rc == MPROC_ETIMEDOUT ? false : check(rc, what) >= 0;
}
// The error_code form: sets ec (cleared on success); true on success.
inline bool store(int rc, std::error_code &ec) noexcept {
  ec = rc < 0 ? make_error_code(rc) : std::error_code();
  return rc >= 0;
}

// A deadline for a loop of C calls (growing a buffer on MPROC_ERANGE), so
// the whole call returns by the caller's timeout.
class deadline {
public:
  explicit deadline(double timeout)
      : forever_(timeout < 0 || timeout > 1e9),
        end_(std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(forever_ ? 0.0 : timeout))) {}
  double left() const {
    if (forever_)
      return MPROC_FOREVER;
    std::chrono::duration<double> d = end_ - std::chrono::steady_clock::now();
    return d.count() > 0 ? d.count() : 0.0;
  }

private:
  bool forever_;
  std::chrono::steady_clock::time_point end_;
};

// Selects a wrapper's non-owning constructor (never ambiguous with the
// public ones, whose arguments may be 0 or nullptr).
struct borrowed_t {};

// Owner of one C object: move-only, frees it with Free unless borrowed.
// W is the wrapper class itself, so that borrow() can return one: a class
// that may be borrowed (an entry's argument) publishes it with `using
// object::borrow;` and inherits the borrowing constructor with `using
// object::object;` (both protected here).
template <class W, class T, T *(*Free)(T *)> class object {
public:
  object() noexcept = default;
  object(object &&o) noexcept
      : p_(std::exchange(o.p_, nullptr)), own_(o.own_) {}
  object &operator=(object &&o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      own_ = o.own_;
    }
    return *this;
  }
  object(const object &) = delete;
  object &operator=(const object &) = delete;
  ~object() { reset(); }
  /** @return the C object (still owned by this wrapper). */
  T *get() const noexcept { return p_; }
  /** @return the C object, which the caller now owns. */
  T *release() noexcept { return std::exchange(p_, nullptr); }
  explicit operator bool() const noexcept { return p_ != nullptr; }

protected:
  /** A non-owning wrapper (an entry's argument, which its list owns).
   * @param p the C object  @return the wrapper */
  static W borrow(T *p) noexcept { return W(p, borrowed_t()); }
  object(T *p, bool own) noexcept : p_(p), own_(own) {}
  object(T *p, borrowed_t) noexcept : p_(p), own_(false) {}
  void reset() noexcept {
    if (p_ && own_)
      Free(p_);
    p_ = nullptr;
  }
  T *p_ = nullptr;
  bool own_ = true;
};

// Receives one message of any size, growing the buffer on MPROC_ERANGE
// (which leaves the message in place).  Recv is (buf, cap, len, timeout).
template <class Recv>
int recv_grow(Recv recv, std::string &out, double timeout) {
  deadline dl(timeout);
  std::size_t n = 0;
  out.resize(out.capacity() > 64 ? out.capacity() : 64);
  int rc = recv(&out[0], out.size(), &n, timeout);
  while (rc == MPROC_ERANGE) {
    out.resize(n + 1);
    rc = recv(&out[0], out.size(), &n, dl.left());
  }
  out.resize(rc == 0 ? n : 0);
  return rc;
}
} // namespace detail

/* ---- the dispatch hook and small helpers ------------------------------------ */

/** mproc_main(): call it first in main().  In a spawned child it runs the
 * entry and does not return.
 * @param argc main's argc  @param argv main's argv
 * @param table the entry table (MPROC_ENTRY rows, MPROC_ENTRY_END), alive
 *        for the whole program
 * @throw mproc::error as mproc_main() fails. Call from the main thread. */
inline void main(int argc, char **argv, const mproc_entry *table) {
  detail::check(mproc_main(argc, argv, table), "mproc_main");
}

/** mproc_sleep() in seconds.  @param seconds >= 0
 * @throw mproc::error (MPROC_EINVAL). Thread-safe. */
inline void sleep(double seconds) {
  detail::check(mproc_sleep(seconds), "mproc_sleep");
}
/** mproc_sleep() for a std::chrono duration.  @param d >= 0
 * @throw mproc::error (MPROC_EINVAL). Thread-safe. */
template <class Rep, class Period>
void sleep(std::chrono::duration<Rep, Period> d) {
  sleep(std::chrono::duration<double>(d).count());
}

/** @return mproc_cpu_count(). Thread-safe. */
inline int cpu_count() noexcept { return mproc_cpu_count(); }

/** mproc_set_start_method().
 * @param m MPROC_START_FORK, MPROC_START_SPAWN or MPROC_START_FORKSERVER
 * @throw mproc::error (MPROC_ENOTSUP where the method does not exist) */
inline void set_start_method(mproc_start_method m) {
  detail::check(mproc_set_start_method(m), "mproc_set_start_method");
}
/** @return mproc_get_start_method(), the global default. */
inline mproc_start_method get_start_method() noexcept {
  return mproc_get_start_method();
}
/** mproc_set_forkserver_preload().
 * @param entry an entry's name, or nullptr for none
 * @throw mproc::error (MPROC_ENOENTRY, MPROC_ESTATE, MPROC_ENOTSUP) */
inline void set_forkserver_preload(const char *entry) {
  detail::check(mproc_set_forkserver_preload(entry),
                "mproc_set_forkserver_preload");
}

/** mproc_set_result(), in a child: the bytes its parent reads with
 * process::result().
 * @param data the bytes  @param len their number (up to MPROC_RESULT_MAX)
 * @throw mproc::error (MPROC_E2BIG, MPROC_ESTATE outside a child) */
inline void set_result(const void *data, std::size_t len) {
  detail::check(mproc_set_result(data, len), "mproc_set_result");
}
/** mproc_set_result() of a string's bytes.  @param s the bytes
 * @throw mproc::error as set_result(const void *, std::size_t) */
inline void set_result(const std::string &s) { set_result(s.data(), s.size()); }

/** mproc_end_describe(): one line saying how a process ended.
 * @param info a report from process::end()
 * @return the text  @throw mproc::error (MPROC_EINVAL for an unknown kind) */
inline std::string describe(const mproc_end_info &info) {
  char small[128];
  int n = detail::check(mproc_end_describe(&info, small, sizeof small),
                        "mproc_end_describe");
  if ((std::size_t)n < sizeof small)
    return std::string(small, (std::size_t)n);
  std::string out((std::size_t)n + 1, '\0');
  detail::check(mproc_end_describe(&info, &out[0], out.size()),
                "mproc_end_describe");
  out.resize((std::size_t)n);
  return out;
}

/* ---- IPC objects ------------------------------------------------------------- */

/** A message lent in place by a queue (mproc_queue_view): from
 * queue::get_borrow(), the next message to read where it lies; from
 * queue::put_reserve(), room to fill where it lies.  Move-only.  The
 * destructor ends a view still out: a borrow is released (the message is
 * taken, as mproc_queue_release()), a reservation is aborted (nothing is
 * put, as mproc_queue_put_abort()); commit() puts a reservation.  A view
 * holds its side of the queue (see mproc_queue_view): keep it short, and
 * end it before its queue is freed. */
class queue_view {
public:
  queue_view() noexcept = default;
  queue_view(queue_view &&o) noexcept
      : q_(std::exchange(o.q_, nullptr)), v_(o.v_), reserve_(o.reserve_) {}
  queue_view &operator=(queue_view &&o) noexcept {
    if (this != &o) {
      end_quietly();
      q_ = std::exchange(o.q_, nullptr);
      v_ = o.v_;
      reserve_ = o.reserve_;
    }
    return *this;
  }
  queue_view(const queue_view &) = delete;
  queue_view &operator=(const queue_view &) = delete;
  ~queue_view() { end_quietly(); }

  /** @return the bytes (borrow) or the room (reservation); nullptr once
   *          the view ended */
  unsigned char *data() const noexcept {
    return q_ ? static_cast<unsigned char *>(v_.data) : nullptr;
  }
  /** @return the message's length (borrow) or the reserved length; 0 once
   *          the view ended */
  std::size_t size() const noexcept { return q_ ? v_.len : 0; }
  /** @return true while the view is out */
  explicit operator bool() const noexcept { return q_ != nullptr; }
  /** @return true for a reservation, false for a borrow */
  bool is_reservation() const noexcept { return reserve_; }

  /** End a borrow now: mproc_queue_release(), the message is taken (a
   * reservation is aborted instead).  @throw mproc::error on failure */
  void release() { detail::check(end(), "mproc_queue_release"); }
  /** Put a reservation: mproc_queue_put_commit() of its first `len` bytes.
   * @param len the message's length, at most size()
   * @throw mproc::error (MPROC_EINVAL for a borrow or len above size(): the
   *        view stays out, ...) */
  void commit(std::size_t len) {
    if (!q_)
      throw error(MPROC_ESTATE, "mproc_queue_put_commit");
    mproc_queue_view v = v_;
    v.len = len;
    detail::check(mproc_queue_put_commit(q_, &v), "mproc_queue_put_commit");
    q_ = nullptr;
  }
  /** Put a reservation whole: commit(size()).  @throw mproc::error */
  void commit() { commit(size()); }
  /** Drop a reservation now: mproc_queue_put_abort() (a borrow is released
   * instead).  @throw mproc::error on failure */
  void abort() { detail::check(end(), "mproc_queue_put_abort"); }

private:
  friend class queue;
  queue_view(mproc_queue *q, const mproc_queue_view &v, bool reserve) noexcept
      : q_(q), v_(v), reserve_(reserve) {}
  // Ends the view as its kind requires: the C call's code.
  int end() noexcept {
    if (!q_)
      return MPROC_ESTATE;
    int rc = reserve_ ? mproc_queue_put_abort(q_, &v_)
                      : mproc_queue_release(q_, &v_);
    q_ = nullptr;
    return rc;
  }
  void end_quietly() noexcept { (void)end(); }
  mproc_queue *q_ = nullptr;
  mproc_queue_view v_{};
  bool reserve_ = false;
};

/** A queue (Python's Queue / JoinableQueue).  Thread-safe as the C calls. */
class queue : public detail::object<queue, mproc_queue, mproc_queue_free> {
public:
  using object::borrow; // a non-owning wrapper (see detail::object)
  /** @param opts as mproc_queue_create() (nullptr: defaults)
   * @throw mproc::error on failure */
  explicit queue(const mproc_queue_options *opts = nullptr) {
    detail::check(mproc_queue_create(&p_, opts), "mproc_queue_create");
  }

  /** mproc_queue_put().  @param data bytes  @param len their count
   * @param timeout seconds  @throw mproc::error (MPROC_EFULL, ...) */
  void put_bytes(const void *data, std::size_t len,
                 double timeout = MPROC_FOREVER) {
    detail::check(mproc_queue_put(p_, data, len, timeout), "mproc_queue_put");
  }
  /** mproc_queue_put_int64().  @param v value  @param timeout seconds
   * @throw mproc::error on failure */
  void put_int64(std::int64_t v, double timeout = MPROC_FOREVER) {
    detail::check(mproc_queue_put_int64(p_, v, timeout),
                  "mproc_queue_put_int64");
  }
  /** mproc_queue_put_double().  @param v value  @param timeout seconds
   * @throw mproc::error on failure */
  void put_double(double v, double timeout = MPROC_FOREVER) {
    detail::check(mproc_queue_put_double(p_, v, timeout),
                  "mproc_queue_put_double");
  }
  /** mproc_queue_put_str().  @param s string  @param timeout seconds
   * @throw mproc::error on failure */
  void put_str(const std::string &s, double timeout = MPROC_FOREVER) {
    detail::check(mproc_queue_put_str(p_, s.c_str(), timeout),
                  "mproc_queue_put_str");
  }
  /** mproc_queue_get() of a message of any size.  @param timeout seconds
   * @return the bytes  @throw mproc::error (MPROC_EEMPTY, ...) */
  std::string get_bytes(double timeout = MPROC_FOREVER) {
    std::string s;
    detail::check(get_bytes_into(s, timeout), "mproc_queue_get");
    return s;
  }
  /** mproc_queue_get_int64().  @param timeout seconds  @return the value
   * @throw mproc::error (MPROC_EEMPTY, MPROC_ETYPE, ...) */
  std::int64_t get_int64(double timeout = MPROC_FOREVER) {
    std::int64_t v = 0;
    detail::check(mproc_queue_get_int64(p_, &v, timeout),
                  "mproc_queue_get_int64");
    return v;
  }
  /** mproc_queue_get_int64(), not throwing.  @param timeout seconds
   * @param ec set on error (MPROC_EEMPTY on timeout), cleared on success
   * @return the value, or 0 on error */
  std::int64_t get_int64(double timeout, std::error_code &ec) noexcept {
    std::int64_t v = 0;
    return detail::store(mproc_queue_get_int64(p_, &v, timeout), ec) ? v : 0;
  }
  /** mproc_queue_get_double().  @param timeout seconds  @return the value
   * @throw mproc::error on failure */
  double get_double(double timeout = MPROC_FOREVER) {
    double v = 0;
    detail::check(mproc_queue_get_double(p_, &v, timeout),
                  "mproc_queue_get_double");
    return v;
  }
  /** mproc_queue_get_str() of a string of any length.
   * @param timeout seconds  @return the string  @throw mproc::error on failure */
  std::string get_str(double timeout = MPROC_FOREVER) {
    std::string s;
    auto recv = [this](char *b, std::size_t cap, std::size_t *n, double t) {
      return mproc_queue_get_str(p_, b, cap, n, t);
    };
    detail::check(detail::recv_grow(recv, s, timeout), "mproc_queue_get_str");
    return s;
  }
  /** mproc_queue_qsize().  @return the approximate count  @throw mproc::error on failure */
  std::size_t qsize() const {
    std::size_t n = 0;
    detail::check(mproc_queue_qsize(p_, &n), "mproc_queue_qsize");
    return n;
  }
  /** mproc_queue_empty().  @return true if empty  @throw mproc::error on failure */
  bool empty() const {
    return detail::check(mproc_queue_empty(p_), "mproc_queue_empty") == 1;
  }
  /** mproc_queue_task_done().  @throw mproc::error on failure */
  void task_done() {
    detail::check(mproc_queue_task_done(p_), "mproc_queue_task_done");
  }
  /** mproc_queue_join().  @param timeout seconds
   * @return true when every item is done, false on timeout  @throw mproc::error on failure */
  bool join(double timeout = MPROC_FOREVER) {
    int rc = mproc_queue_join(p_, timeout);
    return detail::timed(rc, "mproc_queue_join");
  }
  /** mproc_queue_close().  @throw mproc::error on failure */
  void close() { detail::check(mproc_queue_close(p_), "mproc_queue_close"); }
  /** mproc_queue_get_borrow(): the next message in place, without the
   * copy.  @param timeout seconds
   * @return the view (released, the message taken, when it ends)
   * @throw mproc::error (MPROC_EEMPTY on timeout, MPROC_ESTATE if this
   *        thread holds a borrow of this queue, ...) */
  queue_view get_borrow(double timeout = MPROC_FOREVER) {
    mproc_queue_view v{};
    detail::check(mproc_queue_get_borrow(p_, &v, timeout),
                  "mproc_queue_get_borrow");
    return queue_view(p_, v, false);
  }
  /** mproc_queue_put_reserve(): room for a message of up to `len` bytes,
   * to fill in place and commit().
   * @param len the largest length (at most the capacity / 2)
   * @param timeout seconds to wait for room
   * @return the view (aborted, nothing put, unless committed)
   * @throw mproc::error (MPROC_EFULL on timeout, MPROC_E2BIG, ...) */
  queue_view put_reserve(std::size_t len, double timeout = MPROC_FOREVER) {
    mproc_queue_view v{};
    detail::check(mproc_queue_put_reserve(p_, len, &v, timeout),
                  "mproc_queue_put_reserve");
    return queue_view(p_, v, true);
  }

private:
  using object::object; // the borrowing constructor, for borrow()
  int get_bytes_into(std::string &s, double timeout) {
    auto recv = [this](char *b, std::size_t cap, std::size_t *n, double t) {
      return mproc_queue_get(p_, b, cap, n, t);
    };
    return detail::recv_grow(recv, s, timeout);
  }
};

/** One end of a pipe (Python's Connection).  Make both with mproc::pipe().
 * Thread-safe as the C calls. */
class conn : public detail::object<conn, mproc_conn, mproc_conn_free> {
public:
  using object::borrow; // a non-owning wrapper (see detail::object)
  conn() noexcept = default;
  /** Takes ownership of a C end.  @param c the end */
  explicit conn(mproc_conn *c) noexcept : object(c, true) {}
  /** mproc_conn_send_bytes().  @param data bytes  @param len count
   * @throw mproc::error on failure */
  void send_bytes(const void *data, std::size_t len) {
    detail::check(mproc_conn_send_bytes(p_, data, len),
                  "mproc_conn_send_bytes");
  }
  /** mproc_conn_send_int64().  @param v value  @throw mproc::error on failure */
  void send_int64(std::int64_t v) {
    detail::check(mproc_conn_send_int64(p_, v), "mproc_conn_send_int64");
  }
  /** mproc_conn_send_double().  @param v value  @throw mproc::error on failure */
  void send_double(double v) {
    detail::check(mproc_conn_send_double(p_, v), "mproc_conn_send_double");
  }
  /** mproc_conn_send_str().  @param s string  @throw mproc::error on failure */
  void send_str(const std::string &s) {
    detail::check(mproc_conn_send_str(p_, s.c_str()), "mproc_conn_send_str");
  }
  /** mproc_conn_recv_bytes() of a message of any size.
   * @param timeout seconds  @return the bytes
   * @throw mproc::error (MPROC_EEOF, MPROC_ETIMEDOUT, ...) */
  std::string recv_bytes(double timeout = MPROC_FOREVER) {
    std::string s;
    auto recv = [this](char *b, std::size_t cap, std::size_t *n, double t) {
      return mproc_conn_recv_bytes(p_, b, cap, n, t);
    };
    detail::check(detail::recv_grow(recv, s, timeout), "mproc_conn_recv_bytes");
    return s;
  }
  /** mproc_conn_recv_int64().  @param timeout seconds  @return the value
   * @throw mproc::error on failure */
  std::int64_t recv_int64(double timeout = MPROC_FOREVER) {
    std::int64_t v = 0;
    detail::check(mproc_conn_recv_int64(p_, &v, timeout),
                  "mproc_conn_recv_int64");
    return v;
  }
  /** mproc_conn_recv_int64(), not throwing.  @param timeout seconds
   * @param ec set on error (MPROC_EEOF, MPROC_ETIMEDOUT, ...)
   * @return the value, or 0 on error */
  std::int64_t recv_int64(double timeout, std::error_code &ec) noexcept {
    std::int64_t v = 0;
    return detail::store(mproc_conn_recv_int64(p_, &v, timeout), ec) ? v : 0;
  }
  /** mproc_conn_recv_double().  @param timeout seconds  @return the value
   * @throw mproc::error on failure */
  double recv_double(double timeout = MPROC_FOREVER) {
    double v = 0;
    detail::check(mproc_conn_recv_double(p_, &v, timeout),
                  "mproc_conn_recv_double");
    return v;
  }
  /** mproc_conn_recv_str() of a string of any length.
   * @param timeout seconds  @return the string  @throw mproc::error on failure */
  std::string recv_str(double timeout = MPROC_FOREVER) {
    std::string s;
    auto recv = [this](char *b, std::size_t cap, std::size_t *n, double t) {
      return mproc_conn_recv_str(p_, b, cap, n, t);
    };
    detail::check(detail::recv_grow(recv, s, timeout), "mproc_conn_recv_str");
    return s;
  }
  /** mproc_conn_poll().  @param timeout seconds
   * @return true when a message, end-of-file or damage arrived
   * @throw mproc::error on failure */
  bool poll(double timeout = 0) {
    return detail::check(mproc_conn_poll(p_, timeout), "mproc_conn_poll") == 1;
  }
  /** mproc_conn_close().  @throw mproc::error on failure */
  void close() { detail::check(mproc_conn_close(p_), "mproc_conn_close"); }

private:
  using object::object; // the borrowing constructor, for borrow()
};

/** Python's Pipe(duplex): two connected ends.
 * @param duplex false: first only receives, second only sends
 * @return the two ends  @throw mproc::error. Thread-safe. */
inline std::pair<conn, conn> pipe(bool duplex = true) {
  mproc_conn *a = nullptr, *b = nullptr;
  detail::check(mproc_pipe(&a, &b, duplex ? 1 : 0), "mproc_pipe");
  return {conn(a), conn(b)};
}

/** Lock or RLock; lock::guard holds it for a scope.  Thread-safe as the C
 * calls. */
class lock : public detail::object<lock, mproc_lock, mproc_lock_free> {
public:
  using object::borrow; // a non-owning wrapper (see detail::object)
  /** @param recursive true: an RLock  @throw mproc::error on failure */
  explicit lock(bool recursive = false) {
    detail::check(mproc_lock_create(&p_, recursive ? 1 : 0),
                  "mproc_lock_create");
  }
  /** mproc_lock_acquire().
   * @param timeout seconds
   * @param owner_dead if not null, set to whether the previous holder died
   *        (MPROC_EOWNERDEAD: acquired, the data may need repair)
   * @return true when acquired, false on timeout  @throw mproc::error on failure */
  bool acquire(double timeout = MPROC_FOREVER, bool *owner_dead = nullptr) {
    int rc = mproc_lock_acquire(p_, timeout);
    if (owner_dead)
      *owner_dead = rc == MPROC_EOWNERDEAD;
    if (rc == MPROC_ETIMEDOUT)
      return false;
    if (rc != MPROC_EOWNERDEAD)
      detail::check(rc, "mproc_lock_acquire");
    return true;
  }
  /** mproc_lock_release().  @throw mproc::error on failure */
  void release() {
    detail::check(mproc_lock_release(p_), "mproc_lock_release");
  }
  /** Holds the lock for a scope (the class cannot be a C++ Lockable:
   * a member named lock() would be a constructor), as std::lock_guard. */
  class guard {
  public:
    /** Acquires without limit.  @param l the lock
     * @throw mproc::error (a previous holder's death is not an error here:
     *        use acquire() to see it) */
    explicit guard(lock &l) : l_(l) { (void)l_.acquire(); }
    /** Releases (errors ignored: a destructor must not throw). */
    ~guard() { (void)mproc_lock_release(l_.get()); }
    guard(const guard &) = delete;
    guard &operator=(const guard &) = delete;

  private:
    lock &l_;
  };

private:
  using object::object; // the borrowing constructor, for borrow()
};

/** Semaphore or BoundedSemaphore.  Thread-safe as the C calls. */
class semaphore
    : public detail::object<semaphore, mproc_semaphore, mproc_semaphore_free> {
public:
  using object::borrow; // a non-owning wrapper (see detail::object)
  /** @param value initial value  @param bounded true: BoundedSemaphore
   * @throw mproc::error on failure */
  explicit semaphore(unsigned value = 1, bool bounded = false) {
    detail::check(mproc_semaphore_create(&p_, value, bounded ? 1 : 0),
                  "mproc_semaphore_create");
  }
  /** mproc_semaphore_acquire().  @param timeout seconds
   * @return true when acquired, false on timeout  @throw mproc::error on failure */
  bool acquire(double timeout = MPROC_FOREVER) {
    int rc = mproc_semaphore_acquire(p_, timeout);
    return detail::timed(rc, "mproc_semaphore_acquire");
  }
  /** mproc_semaphore_release().  @throw mproc::error (MPROC_EOVERFLOW) */
  void release() {
    detail::check(mproc_semaphore_release(p_), "mproc_semaphore_release");
  }
  /** mproc_semaphore_value().  @return the value  @throw mproc::error on failure */
  unsigned value() const {
    unsigned v = 0;
    detail::check(mproc_semaphore_value(p_, &v), "mproc_semaphore_value");
    return v;
  }

private:
  using object::object; // the borrowing constructor, for borrow()
};

/** Event.  Thread-safe as the C calls. */
class event : public detail::object<event, mproc_event, mproc_event_free> {
public:
  using object::borrow; // a non-owning wrapper (see detail::object)
  /** @throw mproc::error on failure */
  event() { detail::check(mproc_event_create(&p_), "mproc_event_create"); }
  /** mproc_event_set().  @throw mproc::error on failure */
  void set() { detail::check(mproc_event_set(p_), "mproc_event_set"); }
  /** mproc_event_clear().  @throw mproc::error on failure */
  void clear() { detail::check(mproc_event_clear(p_), "mproc_event_clear"); }
  /** mproc_event_is_set().  @return true if set  @throw mproc::error on failure */
  bool is_set() const {
    return detail::check(mproc_event_is_set(p_), "mproc_event_is_set") == 1;
  }
  /** mproc_event_wait().  @param timeout seconds
   * @return true once set, false on timeout  @throw mproc::error on failure */
  bool wait(double timeout = MPROC_FOREVER) {
    int rc = mproc_event_wait(p_, timeout);
    return detail::timed(rc, "mproc_event_wait");
  }

private:
  using object::object; // the borrowing constructor, for borrow()
};

/** A shared memory block.  Thread-safe as the C calls. */
class shared_memory
    : public detail::object<shared_memory, mproc_shm, mproc_shm_free> {
public:
  using object::borrow; // a non-owning wrapper (see detail::object)
  /** An anonymous block (pass it to children as an argument).
   * @param size bytes (> 0)  @throw mproc::error on failure */
  explicit shared_memory(std::size_t size) {
    detail::check(mproc_shm_create(&p_, nullptr, size), "mproc_shm_create");
  }
  /** mproc_shm_create() with a name.  @param name the name  @param size bytes
   * @return the block  @throw mproc::error (MPROC_EEXIST, ...) */
  static shared_memory create(const char *name, std::size_t size) {
    mproc_shm *s = nullptr;
    detail::check(mproc_shm_create(&s, name, size), "mproc_shm_create");
    return shared_memory(s, true);
  }
  /** mproc_shm_attach().  @param name the name  @return the block
   * @throw mproc::error (MPROC_ENOTFOUND, MPROC_EPERM, ...) */
  static shared_memory attach(const char *name) {
    mproc_shm *s = nullptr;
    detail::check(mproc_shm_attach(&s, name), "mproc_shm_attach");
    return shared_memory(s, true);
  }
  /** @return the mapped bytes */
  void *data() const noexcept { return mproc_shm_ptr(p_); }
  /** @return the block's size */
  std::size_t size() const noexcept { return mproc_shm_size(p_); }
  /** @return the name, or nullptr for an anonymous block */
  const char *name() const noexcept { return mproc_shm_name(p_); }
  /** mproc_shm_unlink().  @throw mproc::error on failure */
  void unlink() { detail::check(mproc_shm_unlink(p_), "mproc_shm_unlink"); }

private:
  using object::object; // the borrowing constructor, for borrow()
  shared_memory(mproc_shm *s, bool own) noexcept : object(s, own) {}
};

/* ---- arguments ---------------------------------------------------------------- */

/** An argument list to build (Python's args= and kwargs=).  Copied by
 * mproc::process, so it may go right after.  Not thread-safe. */
class args : public detail::object<args, mproc_args, mproc_args_free> {
public:
  /** An empty list.  @throw mproc::error on failure */
  args() { detail::check(mproc_args_create(&p_), "mproc_args_create"); }
  /** A list of positional arguments: integers, doubles, strings and the
   * IPC wrappers above, in order.  @param v the values  @throw mproc::error on failure */
  template <class... T, std::enable_if_t<(sizeof...(T) > 0), int> = 0>
  explicit args(const T &...v) : args() {
    (add(v), ...);
  }
  /** Add a positional argument.  @param v the value  @return *this
   * @throw mproc::error on failure */
  template <class T> args &add(const T &v) { return kw(nullptr, v); }
  /** Add a keyword argument (key nullptr: positional).
   * @param key the keyword  @param v the value  @return *this
   * @throw mproc::error on failure */
  template <class T> args &kw(const char *key, const T &v) {
    if constexpr (std::is_same_v<T, bool>)
      static_assert(!std::is_same_v<T, bool>, "pass a bool as an integer");
    else if constexpr (std::is_integral_v<T>)
      detail::check(mproc_args_add_int(p_, key, static_cast<std::int64_t>(v)),
                    "mproc_args_add_int");
    else if constexpr (std::is_floating_point_v<T>)
      detail::check(mproc_args_add_double(p_, key, static_cast<double>(v)),
                    "mproc_args_add_double");
    else if constexpr (std::is_same_v<T, std::string>)
      detail::check(mproc_args_add_str(p_, key, v.c_str()),
                    "mproc_args_add_str");
    else if constexpr (std::is_convertible_v<const T &, const char *>)
      detail::check(mproc_args_add_str(p_, key, v), "mproc_args_add_str");
    else // an IPC object's wrapper
      detail::check(mproc_args_add_object(p_, key, v.get()),
                    "mproc_args_add_object");
    return *this;
  }
};

/** Read-only view of an entry's arguments.  Objects come back as
 * non-owning wrappers: the list owns them until the entry returns.
 * Thread-safe (read-only). */
class args_view {
public:
  /** @param a the list the entry was called with */
  explicit args_view(const mproc_args *a) noexcept : a_(a) {}
  /** @return the C list */
  const mproc_args *get() const noexcept { return a_; }
  /** @return positional argument count */
  std::size_t size() const noexcept { return mproc_args_count(a_); }
  /** @param i position  @return the integer  @throw mproc::error on failure */
  std::int64_t get_int64(std::size_t i) const {
    std::int64_t v = 0;
    detail::check(mproc_arg_int(a_, i, &v), "mproc_arg_int");
    return v;
  }
  /** @param key keyword  @return the integer  @throw mproc::error on failure */
  std::int64_t kw_int64(const char *key) const {
    std::int64_t v = 0;
    detail::check(mproc_kwarg_int(a_, key, &v), "mproc_kwarg_int");
    return v;
  }
  /** @param i position  @return the double  @throw mproc::error on failure */
  double get_double(std::size_t i) const {
    double v = 0;
    detail::check(mproc_arg_double(a_, i, &v), "mproc_arg_double");
    return v;
  }
  /** @param i position  @return the string  @throw mproc::error on failure */
  std::string get_str(std::size_t i) const {
    const char *s = nullptr;
    detail::check(mproc_arg_str(a_, i, &s), "mproc_arg_str");
    return s;
  }
  /** @param key keyword  @return the string  @throw mproc::error on failure */
  std::string kw_str(const char *key) const {
    const char *s = nullptr;
    detail::check(mproc_kwarg_str(a_, key, &s), "mproc_kwarg_str");
    return s;
  }
  /** @param i position  @return the queue (borrowed)  @throw mproc::error on failure */
  queue get_queue(std::size_t i) const {
    mproc_queue *q = nullptr;
    detail::check(mproc_arg_queue(a_, i, &q), "mproc_arg_queue");
    return queue::borrow(q);
  }
  /** @param key keyword  @return the queue (borrowed)  @throw mproc::error on failure */
  queue kw_queue(const char *key) const {
    mproc_queue *q = nullptr;
    detail::check(mproc_kwarg_queue(a_, key, &q), "mproc_kwarg_queue");
    return queue::borrow(q);
  }
  /** @param i position  @return the pipe end (borrowed)  @throw mproc::error on failure */
  conn get_conn(std::size_t i) const {
    mproc_conn *c = nullptr;
    detail::check(mproc_arg_conn(a_, i, &c), "mproc_arg_conn");
    return conn::borrow(c);
  }
  /** @param i position  @return the lock (borrowed)  @throw mproc::error on failure */
  lock get_lock(std::size_t i) const {
    mproc_lock *l = nullptr;
    detail::check(mproc_arg_lock(a_, i, &l), "mproc_arg_lock");
    return lock::borrow(l);
  }
  /** @param i position  @return the semaphore (borrowed)  @throw mproc::error on failure */
  semaphore get_semaphore(std::size_t i) const {
    mproc_semaphore *s = nullptr;
    detail::check(mproc_arg_semaphore(a_, i, &s), "mproc_arg_semaphore");
    return semaphore::borrow(s);
  }
  /** @param i position  @return the event (borrowed)  @throw mproc::error on failure */
  event get_event(std::size_t i) const {
    mproc_event *e = nullptr;
    detail::check(mproc_arg_event(a_, i, &e), "mproc_arg_event");
    return event::borrow(e);
  }
  /** @param i position  @return the block (borrowed)  @throw mproc::error on failure */
  shared_memory get_shm(std::size_t i) const {
    mproc_shm *s = nullptr;
    detail::check(mproc_arg_shm(a_, i, &s), "mproc_arg_shm");
    return shared_memory::borrow(s);
  }

private:
  const mproc_args *a_;
};

/* ---- processes ------------------------------------------------------------------ */

/** A child process running a named entry (Python's Process).  The
 * destructor frees the object but does not stop a running child (as
 * mproc_process_free(): the exit-time cleanup joins it).  Thread-safe as
 * the C calls. */
class process
    : public detail::object<process, mproc_process, mproc_process_free> {
public:
  /** mproc_process_create().
   * @param entry the entry's name in the table
   * @param a arguments (copied)
   * @param opts nullptr or options
   * @throw mproc::error (MPROC_ENOENTRY, ...) */
  explicit process(const char *entry, const args &a = args(),
                   const mproc_process_options *opts = nullptr) {
    detail::check(mproc_process_create(&p_, entry, a.get(), opts),
                  "mproc_process_create");
  }
  /** mproc_process_start().  @throw mproc::error on failure */
  void start() {
    detail::check(mproc_process_start(p_), "mproc_process_start");
  }
  /** mproc_process_join().  @param timeout seconds
   * @return true once ended, false on timeout  @throw mproc::error on failure */
  bool join(double timeout = MPROC_FOREVER) {
    int rc = mproc_process_join(p_, timeout);
    return detail::timed(rc, "mproc_process_join");
  }
  /** mproc_process_join(), not throwing.  @param timeout seconds
   * @param ec set on error (MPROC_ETIMEDOUT on timeout)
   * @return true once ended */
  bool join(double timeout, std::error_code &ec) noexcept {
    return detail::store(mproc_process_join(p_, timeout), ec);
  }
  /** mproc_process_exitcode().
   * @return the exit code once ended, std::nullopt before  @throw mproc::error on failure */
  std::optional<int> exitcode() const {
    int code = 0;
    if (detail::check(mproc_process_exitcode(p_, &code),
                      "mproc_process_exitcode") == 1)
      return code;
    return std::nullopt;
  }
  /** mproc_process_is_alive().  @return true while running  @throw mproc::error on failure */
  bool is_alive() {
    return detail::check(mproc_process_is_alive(p_),
                         "mproc_process_is_alive") == 1;
  }
  /** mproc_process_terminate().  @throw mproc::error on failure */
  void terminate() {
    detail::check(mproc_process_terminate(p_), "mproc_process_terminate");
  }
  /** mproc_process_kill().  @throw mproc::error on failure */
  void kill() { detail::check(mproc_process_kill(p_), "mproc_process_kill"); }
  /** mproc_process_pid().  @return the pid  @throw mproc::error (before start) */
  std::int64_t pid() const {
    std::int64_t v = 0;
    detail::check(mproc_process_pid(p_, &v), "mproc_process_pid");
    return v;
  }
  /** @return the process's name ("Process-N") */
  std::string name() const {
    const char *n = mproc_process_name(p_);
    return n ? n : "";
  }
  /** mproc_process_kill_tree() (a child started with new_group).
   * @throw mproc::error on failure */
  void kill_tree() {
    detail::check(mproc_process_kill_tree(p_), "mproc_process_kill_tree");
  }
  /** mproc_process_terminate_tree() (a child started with new_group).
   * @throw mproc::error on failure */
  void terminate_tree() {
    detail::check(mproc_process_terminate_tree(p_),
                  "mproc_process_terminate_tree");
  }
  /** mproc_process_stop(): run an escalation chain, e.g.
   * `p.stop({{MPROC_STOP_TERMINATE, 1.0}, {MPROC_STOP_KILL, 5.0}})`.
   * @param steps the chain, in order
   * @return which step saw it end and its exit code, or std::nullopt when
   *         it still runs after the last step (MPROC_ETIMEDOUT)
   * @throw mproc::error for any other failure */
  std::optional<mproc_stop_result>
  stop(const std::vector<mproc_stop_step> &steps) {
    mproc_stop_result how{};
    int rc = mproc_process_stop(p_, steps.data(), steps.size(), &how);
    if (!detail::timed(rc, "mproc_process_stop"))
      return std::nullopt;
    return how;
  }
  /** mproc_process_result() of a child that has ended.
   * @return its bytes, or std::nullopt when it set none (MPROC_ENOTFOUND)
   * @throw mproc::error (MPROC_ESTATE while it runs, MPROC_EBROKEN for a
   *        damaged block, ...) */
  std::optional<std::vector<unsigned char>> result() const {
    std::vector<unsigned char> out;
    std::size_t n = 0;
    int rc = mproc_process_result(p_, nullptr, 0, &n);
    /* A grandchild holding the block could still rewrite it between the
     * two calls: a few rounds, then the error. */
    for (int round = 0; rc == MPROC_ERANGE && round < 4; round++) {
      out.resize(n);
      rc = mproc_process_result(p_, out.data(), out.size(), &n);
    }
    if (rc == MPROC_ENOTFOUND)
      return std::nullopt;
    detail::check(rc, "mproc_process_result");
    out.resize(n);
    return out;
  }
  /** result() as a string of the same bytes.
   * @return its bytes, or std::nullopt when it set none
   * @throw mproc::error as result() */
  std::optional<std::string> result_string() const {
    std::optional<std::vector<unsigned char>> r = result();
    if (!r)
      return std::nullopt;
    return std::string(r->begin(), r->end());
  }
  /** mproc_process_end(): how it ended.  @return the report
   * @throw mproc::error (MPROC_ESTATE while it runs, ...) */
  mproc_end_info end() const {
    mproc_end_info info{};
    detail::check(mproc_process_end(p_, &info), "mproc_process_end");
    return info;
  }
  /** end() as one line ("exited with code 3", "killed by signal 9
   * (SIGKILL)", ...).  @return the text  @throw mproc::error as end() */
  std::string describe() const { return mproc::describe(end()); }

  /** mproc_process_set_capture_limit(): keep only the last `limit` bytes of
   * each captured stream.  Call before start().
   * @param limit bytes kept per stream; 0: no limit
   * @throw mproc::error (MPROC_ESTATE after start, ...) */
  void set_capture_limit(std::size_t limit) {
    detail::check(mproc_process_set_capture_limit(p_, limit),
                  "mproc_process_set_capture_limit");
  }
  /** mproc_process_output(): the whole captured output of an ended child.
   * @param stream MPROC_STDOUT or MPROC_STDERR
   * @return its bytes
   * @throw mproc::error (MPROC_ESTATE while it runs, MPROC_ENOTFOUND when
   *        the stream was not captured, ...) */
  std::string output(int stream = MPROC_STDOUT) const {
    std::string out;
    std::size_t n = 0;
    int rc = mproc_process_output(p_, stream, nullptr, 0, &n);
    /* A descendant still holding the stream may add bytes between the
     * two calls: a few rounds, then the error. */
    for (int round = 0; rc == MPROC_ERANGE && round < 4; round++) {
      out.resize(n);
      rc = mproc_process_output(p_, stream, &out[0], out.size(), &n);
    }
    detail::check(rc, "mproc_process_output");
    out.resize(n);
    return out;
  }
  /** output() as a byte vector.  @param stream MPROC_STDOUT or MPROC_STDERR
   * @return its bytes  @throw mproc::error as output() */
  std::vector<unsigned char> output_bytes(int stream = MPROC_STDOUT) const {
    std::string s = output(stream);
    return std::vector<unsigned char>(s.begin(), s.end());
  }
  /** mproc_process_output_read(): the bytes that arrived since the
   * previous call, waiting up to `timeout` for at least one.
   * @param stream MPROC_STDOUT or MPROC_STDERR
   * @param timeout seconds (MPROC_FOREVER: no limit; 0: only look)
   * @param max the most bytes returned (at least 1)
   * @return 1 to max bytes; an empty string when none came in time (a
   *         timeout is an answer); std::nullopt at end of file (every
   *         writer closed the stream and all was read)
   * @throw mproc::error for any other failure */
  std::optional<std::string> read_output(int stream,
                                         double timeout = MPROC_FOREVER,
                                         std::size_t max = 65536) {
    std::string out(max > 0 ? max : 1, '\0');
    std::size_t n = 0;
    int rc = mproc_process_output_read(p_, stream, &out[0], out.size(), &n,
                                       timeout);
    if (rc == MPROC_EEOF)
      return std::nullopt;
    if (!detail::timed(rc, "mproc_process_output_read"))
      n = 0;
    out.resize(n);
    return out;
  }
  /** mproc_process_output_info(): what arrived and what a capture limit
   * dropped.  @param stream MPROC_STDOUT or MPROC_STDERR
   * @return the counters  @throw mproc::error on failure */
  mproc_output_info output_info(int stream = MPROC_STDOUT) const {
    mproc_output_info info{};
    detail::check(mproc_process_output_info(p_, stream, &info),
                  "mproc_process_output_info");
    return info;
  }
};

/* ---- pools ------------------------------------------------------------------------ */

namespace detail {
struct result_free {
  void operator()(mproc_async_result *r) const noexcept {
    mproc_async_result_free(r);
  }
};
using result_ptr = std::unique_ptr<mproc_async_result, result_free>;

inline int map_typed(mproc_pool *p, const char *task,
                     const std::vector<std::int64_t> &in, std::size_t chunk,
                     mproc_async_result **out) {
  return mproc_pool_map_int64(p, task, in.data(), in.size(), chunk, out);
}
inline int map_typed(mproc_pool *p, const char *task,
                     const std::vector<std::string> &in, std::size_t chunk,
                     mproc_async_result **out) {
  std::vector<const char *> ptrs;
  ptrs.reserve(in.size());
  for (const std::string &s : in)
    ptrs.push_back(s.c_str());
  return mproc_pool_map_str(p, task, ptrs.data(), ptrs.size(), chunk, out);
}
inline int item_typed(mproc_async_result *r, std::size_t i, std::int64_t &v) {
  return mproc_async_result_item_int64(r, i, &v);
}
inline int item_typed(mproc_async_result *r, std::size_t i, double &v) {
  return mproc_async_result_item_double(r, i, &v);
}
inline int item_typed(mproc_async_result *r, std::size_t i, std::string &v) {
  const char *s = nullptr;
  int rc = mproc_async_result_item_str(r, i, &s);
  if (rc == 0)
    v = s;
  return rc;
}
} // namespace detail

/** A pending pool submission (mproc_async_result): wait on it, watch its
 * progress, read its tasks.  Move-only; frees the C result.  Thread-safe
 * as the C calls. */
class async_result : public detail::object<async_result, mproc_async_result,
                                           mproc_async_result_free> {
public:
  /** Take ownership of a C result.  @param r the result (may be nullptr) */
  explicit async_result(mproc_async_result *r = nullptr) noexcept
      : object(r, true) {}
  /** mproc_async_result_wait().  @param timeout seconds
   * @return true once ready, false on timeout  @throw mproc::error */
  bool wait(double timeout = MPROC_FOREVER) {
    return detail::timed(mproc_async_result_wait(p_, timeout),
                         "mproc_async_result_wait");
  }
  /** @return mproc_async_result_ready()  @throw mproc::error */
  bool ready() {
    return detail::check(mproc_async_result_ready(p_),
                         "mproc_async_result_ready") == 1;
  }
  /** @return mproc_async_result_successful()
   * @throw mproc::error (MPROC_ESTATE before it is ready) */
  bool successful() {
    return detail::check(mproc_async_result_successful(p_),
                         "mproc_async_result_successful") == 1;
  }
  /** @return mproc_async_result_count(): the number of tasks */
  std::size_t count() const noexcept { return mproc_async_result_count(p_); }
  /** mproc_async_result_done_count(): tasks finished so far (a progress
   * bar).  @return the number  @throw mproc::error */
  std::size_t done_count() {
    std::size_t n = 0;
    detail::check(mproc_async_result_done_count(p_, &n),
                  "mproc_async_result_done_count");
    return n;
  }
  /** mproc_async_result_item(): task i's status (0, a task's positive
   * code, MPROC_ETIMEDOUT for a task past its timeout, MPROC_EWORKER, ...)
   * and bytes.  @param i the task  @param bytes where its bytes go; may
   * be nullptr  @return the status  @throw mproc::error (MPROC_ESTATE
   * before it is ready, MPROC_EINVAL for i out of range) */
  int item(std::size_t i, std::string *bytes = nullptr) {
    const void *d = nullptr;
    std::size_t n = 0;
    int rc = mproc_async_result_item(p_, i, &d, &n);
    if (rc == MPROC_ESTATE || rc == MPROC_EINVAL || rc == MPROC_EPERM)
      throw error(rc, "mproc_async_result_item");
    if (bytes)
      bytes->assign(d ? static_cast<const char *>(d) : "", d ? n : 0);
    return rc;
  }
  /** A typed task result (std::int64_t, double or std::string).
   * @param i the task  @return its value
   * @throw mproc::error with the task's status, or MPROC_ETYPE */
  template <class R> R item_as(std::size_t i) {
    R v{};
    int rc = detail::item_typed(p_, i, v);
    if (rc != 0)
      throw error(rc, "mproc_async_result_item");
    return v;
  }
};

/** A process pool (Python's Pool).  The destructor terminates and joins it
 * (as mproc_pool_free()).  Thread-safe as the C calls. */
class pool : public detail::object<pool, mproc_pool, mproc_pool_free> {
public:
  /** @param processes workers (0: mproc_cpu_count())  @throw mproc::error on failure */
  explicit pool(int processes = 0) {
    mproc_pool_options o{};
    o.processes = processes;
    detail::check(mproc_pool_create(&p_, &o), "mproc_pool_create");
  }
  /** @param opts as mproc_pool_create()  @throw mproc::error on failure */
  explicit pool(const mproc_pool_options &opts) {
    detail::check(mproc_pool_create(&p_, &opts), "mproc_pool_create");
  }
  /** Typed map: task(inputs[i]) for every i, results in input order.  In
   * is std::int64_t or std::string (the task reads it with
   * mproc_task_input_int64 / _str); R is std::int64_t, double or
   * std::string (the task writes it with mproc_task_result_int64 /
   * _double / _str).
   * @param task the task's entry name
   * @param inputs the inputs
   * @param chunksize 0: map's default
   * @return the results
   * @throw mproc::error with the first failed task's status (a positive
   *        task code or MPROC_EWORKER, ...), or MPROC_ETYPE for a result
   *        of another type */
  template <class R, class In>
  std::vector<R> map(const char *task, const std::vector<In> &inputs,
                     std::size_t chunksize = 0) {
    mproc_async_result *raw = nullptr;
    int rc = detail::map_typed(p_, task, inputs, chunksize, &raw);
    detail::result_ptr r(raw);
    if (rc != 0)
      throw error(rc, "mproc_pool_map");
    std::vector<R> out(inputs.size());
    for (std::size_t i = 0; i < out.size(); i++) {
      rc = detail::item_typed(r.get(), i, out[i]);
      if (rc != 0)
        throw error(rc, "mproc_async_result_item");
    }
    return out;
  }
  /** mproc_pool_map_async() over byte strings, each task bounded by
   * `timeout` seconds (0: the pool's task_timeout; see "Task timeouts" in
   * mproc/pool.h): watch it with done_count(), read it with item().
   * @param task the task's entry name  @param inputs the inputs (copied)
   * @param chunksize 0: map's default  @param timeout per task
   * @return the pending result  @throw mproc::error on failure */
  async_result map_async(const char *task,
                         const std::vector<std::string> &inputs,
                         std::size_t chunksize = 0, double timeout = 0) {
    std::vector<mproc_bytes> in(inputs.size());
    for (std::size_t i = 0; i < in.size(); i++)
      in[i] = mproc_bytes{inputs[i].data(), inputs[i].size()};
    mproc_async_options o{};
    o.timeout = timeout;
    mproc_async_result *r = nullptr;
    detail::check(mproc_pool_map_async(p_, task, in.data(), in.size(),
                                       chunksize, &o, &r),
                  "mproc_pool_map_async");
    return async_result(r);
  }
  /** mproc_pool_apply_async() of one task, bounded by `timeout` seconds
   * (0: the pool's task_timeout).  @param task the task's entry name
   * @param input its bytes  @param timeout per task
   * @return the pending result  @throw mproc::error on failure */
  async_result apply_async(const char *task, const std::string &input,
                           double timeout = 0) {
    mproc_async_options o{};
    o.timeout = timeout;
    mproc_async_result *r = nullptr;
    detail::check(mproc_pool_apply_async(p_, task, input.data(), input.size(),
                                         &o, &r),
                  "mproc_pool_apply_async");
    return async_result(r);
  }
  /** mproc_pool_close().  @throw mproc::error on failure */
  void close() { detail::check(mproc_pool_close(p_), "mproc_pool_close"); }
  /** mproc_pool_terminate().  @throw mproc::error on failure */
  void terminate() {
    detail::check(mproc_pool_terminate(p_), "mproc_pool_terminate");
  }
  /** mproc_pool_join() (after close or terminate).  @param timeout seconds
   * @return true once joined, false on timeout  @throw mproc::error on failure */
  bool join(double timeout = MPROC_FOREVER) {
    int rc = mproc_pool_join(p_, timeout);
    return detail::timed(rc, "mproc_pool_join");
  }
};

} // namespace mproc

#endif /* MPROC_HPP */
