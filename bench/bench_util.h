/* Helpers shared by mproc_bench.c and raw_bench.c.  Header-only so both
 * programs are built from exactly one .c each, by CMake or by a bare gcc
 * line (bench/run.sh falls back to that). */
#ifndef MPROC_BENCH_UTIL_H
#define MPROC_BENCH_UTIL_H

/* Include first: CLOCK_MONOTONIC needs POSIX visible under -std=c11. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Payload sizes fixed by the issue. */
#define BENCH_SMALL_MSG 64
#define BENCH_BULK_MSG ((size_t)1 << 20)

#endif
