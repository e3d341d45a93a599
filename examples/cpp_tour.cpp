// cpp_tour.cpp: mproc from C++ (include/mproc.hpp), built when a C++
// compiler is enabled (with the tests).
//
// Python:
//     def worker(q, n, name):
//         q.put(n * 2); q.put(f"hello, {name}")
//     q = Queue(); p = Process(target=worker, args=(q, 21, "C++"))
//     p.start(); print(q.get(), q.get()); p.join()
//     with Pool(2) as pool: print(pool.map(square, range(5)))
//
// Entries are named functions in the table, not lambdas: a spawned child
// is this program started again, where a lambda's captures do not exist.
#include <cstdio>
#include <exception>
#include <vector>

#include <mproc.hpp>

static int worker(const mproc_args *a) {
  mproc::args_view in(a);
  mproc::queue q = in.get_queue(0); // borrowed: the argument list owns it
  q.put_int64(in.get_int64(1) * 2);
  q.put_str("hello, " + in.get_str(2));
  return 0;
}

static int square(const mproc_args *a) {
  std::int64_t x = 0;
  if (mproc_task_input_int64(a, &x) < 0)
    return 1;
  return mproc_task_result_int64(a, x * x) < 0 ? 2 : 0;
}

static const mproc_entry entries[] = {MPROC_ENTRY(worker), MPROC_ENTRY(square),
                                      MPROC_ENTRY_END};

int main(int argc, char **argv) {
  try {
    mproc::main(argc, argv, entries); // first, as in C
    mproc::queue q;
    mproc::process p("worker", mproc::args(q, 21, "C++"));
    p.start();
    std::int64_t n = q.get_int64(30);
    std::string s = q.get_str(30);
    p.join();
    std::printf("child said %lld and \"%s\"; exit code %d\n", (long long)n,
                s.c_str(), p.exitcode().value_or(-1));

    mproc::pool pool(2);
    std::vector<std::int64_t> sq = pool.map<std::int64_t>(
        "square", std::vector<std::int64_t>{0, 1, 2, 3, 4});
    std::printf("pool.map(square, range(5)) ->");
    for (std::int64_t v : sq)
      std::printf(" %lld", (long long)v);
    std::printf("\n");
    bool ok = n == 42 && s == "hello, C++" && p.exitcode() == 0 && sq[4] == 16;
    std::printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception &e) { // mproc::error is a std::system_error
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
