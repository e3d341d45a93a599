/* Helpers shared by mproc_bench.c and raw_bench.c.  Header-only so both
 * programs are built from exactly one .c each, by CMake or by a bare gcc
 * line (bench/run.sh falls back to that). */
#ifndef MPROC_BENCH_UTIL_H
#define MPROC_BENCH_UTIL_H

/* Include first: CLOCK_MONOTONIC needs POSIX visible under -std=c11. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
/* MAP_ANONYMOUS and madvise() for bench_touch_memory(). */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Every benchmark prints exactly one line on stdout: the measured value in
 * the benchmark's unit, or "null" when the feature does not exist (yet).
 * Diagnostics go to stderr so the orchestrator can read stdout verbatim. */

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline long bench_arg(int argc, char **argv, int i, long dflt) {
  char *end;
  long v;
  if (i >= argc)
    return dflt;
  v = strtol(argv[i], &end, 10);
  if (*end || v <= 0) {
    fprintf(stderr, "bench: bad number '%s'\n", argv[i]);
    exit(2);
  }
  return v;
}

/* Per-process benchmarks time BENCH_BATCHES batches and keep the median
 * batch: a neighbour's burst on a shared machine then spoils a batch, not
 * the whole measurement.  (run.sh takes the median over runs on top.) */
#define BENCH_BATCHES 10

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Sorts v in place. */
static inline double bench_median(double *v, size_t n) {
  qsort(v, n, sizeof(*v), bench_cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline void bench_print(double v) { printf("%.6g\n", v); }

static inline void bench_null(void) { printf("null\n"); }

/* BENCH_TOUCH_MIB=N: the process first writes N MiB of private memory of
 * its own, so start costs can be read against the parent's resident memory
 * (a fork copies page-table entries in proportion to it; posix_spawn and a
 * fork server should not care).  Small pages on purpose: a heap grown by
 * many allocations is mostly 4 KiB pages, and with transparent huge pages
 * a fresh 1 GiB block would need 512 entries instead of 262144, hiding the
 * cost the benchmark is about.  Called after the point where a spawned
 * child of the program would already have exited, so children stay small;
 * the memory stays mapped until the process exits. */
static inline void bench_touch_memory(void) {
  const char *v = getenv("BENCH_TOUCH_MIB");
  size_t n = v ? (size_t)strtoul(v, NULL, 10) << 20 : 0;
  void *p;
  if (n == 0)
    return;
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
  p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
           0);
  if (p == MAP_FAILED) {
    fprintf(stderr, "bench: cannot map %s MiB\n", v);
    exit(1);
  }
#ifdef MADV_NOHUGEPAGE
  (void)madvise(p, n, MADV_NOHUGEPAGE);
#endif
  memset(p, 1, n);
}

/* Payload sizes fixed by the issue. */
#define BENCH_SMALL_MSG 64
#define BENCH_BULK_MSG ((size_t)1 << 20)

#endif
