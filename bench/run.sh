#!/usr/bin/env bash
# Benchmarks mproc against Python's multiprocessing and raw system calls.
#
#   bench/run.sh [--quick] [--check] [--json FILE] [--readme] [--only REGEX]
#                [--reps N]
#
#   --quick      fewer repeats and iterations (under 5 minutes on 2 cores)
#   --check      a --quick run that ends with every target and its ratio,
#                and exits 3 if one is missed (1 if a measurement failed)
#   --json FILE  also write the results as a JSON array (format: bench/README.md)
#   --readme     refresh the generated part of bench/README.md and
#                bench/speedups.svg (the files the repository keeps)
#   --only REGEX run only the benchmarks whose name matches (bash =~)
#   --reps N     rounds per benchmark (default 5, --quick 3); more rounds
#                resist a busy neighbour better
#
# Environment: PYTHON (default python3); CC (for the fallback build);
# MPROC_BENCH_BUILD=gcc skips CMake and builds with one compiler line.
#
# Absolute times on a shared machine drift from one minute to the next, so
# the three implementations run interleaved, round after round, in the same
# invocation, and what is reported is each one's median and the ratios.
# Everything it writes goes to bench/out/ unless asked otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT="$HERE/out"
PYTHON=${PYTHON:-python3}

quick=0
check=0
json=""
readme=0
only=""
reps_opt=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --check) check=1; quick=1 ;;
    --json)
      [ $# -ge 2 ] || { echo "run.sh: --json needs a file" >&2; exit 2; }
      # Resolved now: the caller's relative path, not one under bench/.
      json=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
      shift ;;
    --readme) readme=1 ;;
    --reps)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --reps needs a count" >&2; exit 2; }
      reps_opt=$2
      shift ;;
    --only)
      [ $# -ge 2 ] || { echo "run.sh: --only needs a pattern" >&2; exit 2; }
      only=$2
      shift ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0" | cut -c3-; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

t_start=$(date +%s)
mkdir -p "$OUT"
log() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
BUILD="$ROOT/build/bench"
build_how=""
build_cmake() {
  grep -q MPROC_BUILD_BENCH "$ROOT/CMakeLists.txt" 2>/dev/null || return 1
  command -v cmake >/dev/null || return 1
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  # A tree first configured with another generator cannot switch.
  [ -f "$BUILD/CMakeCache.txt" ] && gen=()
  cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DMPROC_BUILD_BENCH=ON -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF \
    -DMPROC_INSTALL=OFF >"$OUT/build.log" 2>&1 || return 1
  cmake --build "$BUILD" --target mproc_bench raw_bench >>"$OUT/build.log" 2>&1 || return 1
  BIN="$BUILD/bench"
  build_how="cmake Release (${BUILD#"$ROOT"/})"
}
# Without the CMake option (or if configuring fails in a tree others are
# editing) the two programs are small enough to build with one compiler line
# each, at the same optimisation level as CMake's Release (and with
# _GNU_SOURCE, as CMake builds src/: without it -std=c11 hides POSIX calls).
build_gcc() {
  local cc=${CC:-cc} plat=posix
  BIN="$OUT/bin"
  mkdir -p "$BIN"
  for prog in mproc_bench raw_bench; do
    "$cc" -O3 -DNDEBUG -D_GNU_SOURCE -std=c11 -I "$ROOT/include" -I "$ROOT/src" -I "$ROOT/src/$plat" \
      "$ROOT"/src/*.c "$ROOT/src/$plat"/*.c "$HERE/$prog.c" \
      -o "$BIN/$prog" -pthread -lm >>"$OUT/build.log" 2>&1 || return 1
  done
  build_how="direct $cc -O3 (${BIN#"$ROOT"/})"
}
: >"$OUT/build.log"
log "building mproc (Release) ..."
if [ "${MPROC_BENCH_BUILD:-auto}" = gcc ] || ! build_cmake; then
  log "  CMake build unavailable or failed (see $OUT/build.log); building with ${CC:-cc} directly"
  build_gcc || { log "build failed:"; tail -30 "$OUT/build.log" >&2; exit 1; }
fi
log "  $build_how"
MPROC="$BIN/mproc_bench"
RAW="$BIN/raw_bench"
PY="$HERE/py_bench.py"

# ---------------------------------------------------------------------------
# Parameters: full / quick
# ---------------------------------------------------------------------------
if [ $quick = 1 ]; then
  reps=3
  fork_iters=500;   py_fork_iters=100
  spawn_iters=200;  py_spawn_iters=20
  small_msgs=200000; queue_msgs=100000; bulk_msgs=1000
  lock_iters=2000000
  # Processes started per scale measurement (several rounds at small N).
  scale_c_spawn=256; scale_c_fork=512; scale_py_fork=64; scale_py_spawn=8
  py_spawn_max_n=16
  # Points of scale_spawn_n and start_live (a full run takes every one).
  scale_ns="1 4 16 64 256"; live_ns="1 16 256"
  # Start cost vs parent memory (a fork of 1 GiB costs tens of ms here)
  # and vs live children; python spawn blockers cost ~50 ms each.
  mem_fork_iters=10; mem_spawn_iters=50; py_mem_fork_iters=10; py_mem_spawn_iters=10
  live_iters=100; live_spawn_iters=50; py_live_iters=20; py_live_spawn_iters=10
  py_live_spawn_max_n=16
  # Contention: operations per process (lock), messages in all (queue).
  lock_c_iters=200000; mpmc_msgs=200000
else
  reps=5
  fork_iters=2000;  py_fork_iters=300
  spawn_iters=500;  py_spawn_iters=50
  small_msgs=1000000; queue_msgs=500000; bulk_msgs=4000
  lock_iters=10000000
  scale_c_spawn=1024; scale_c_fork=2048; scale_py_fork=256; scale_py_spawn=64
  py_spawn_max_n=256
  scale_ns="1 2 4 8 16 32 64 128 256"; live_ns="1 4 16 64 256"
  mem_fork_iters=50; mem_spawn_iters=300; py_mem_fork_iters=20; py_mem_spawn_iters=30
  live_iters=500; live_spawn_iters=200; py_live_iters=50; py_live_spawn_iters=20
  py_live_spawn_max_n=256
  lock_c_iters=1000000; mpmc_msgs=1000000
fi
[ -n "$reps_opt" ] && reps=$reps_opt
# Task counts are the benchmark's definition, the same in both modes.
pool1_tasks=100000
poolc_tasks=1000000

SAMPLES="$OUT/samples.tsv"
: >"$SAMPLES"
failures=0

# [ROW_ENV=VAR=VALUE] measure NAME MPROC_ARGS RAW_ARGS PY_ARGS
# ("-" = baseline does not apply; ROW_ENV, if set, is put in the
# environment of all three, e.g. ROW_ENV=BENCH_TOUCH_MIB=256).
# Runs the implementations interleaved, $reps rounds, the starting one
# rotating each round so none always runs on a machine warmed (or loaded)
# by the same neighbour.
measure() {
  local name=$1; shift
  local -a impls=(mproc raw python) args=("$1" "$2" "$3")
  local r k i v t0 ms
  [ -z "$only" ] || [[ $name =~ $only ]] || return 0
  t0=$(date +%s%N)
  printf '  %-28s' "$name" >&2
  for ((r = 0; r < reps; r++)); do
    for ((k = 0; k < 3; k++)); do
      i=$(((r + k) % 3))
      [ "${args[$i]}" = "-" ] && continue
      local -a cmd=(env)
      [ -n "${ROW_ENV:-}" ] && cmd+=("$ROW_ENV")
      case ${impls[$i]} in
        mproc) cmd+=("$MPROC") ;;
        raw) cmd+=("$RAW") ;;
        python) cmd+=("$PYTHON" "$PY") ;;
      esac
      # shellcheck disable=SC2206 # the argument strings are word lists
      cmd+=(${args[$i]})
      if v=$(timeout 600 "${cmd[@]}" 2>>"$OUT/errors.log" </dev/null | tail -n 1) \
          && [[ $v =~ ^(null|[0-9.eE+-]+)$ ]]; then
        printf '%s\t%s\t%s\n' "$name" "${impls[$i]}" "$v" >>"$SAMPLES"
      else
        failures=$((failures + 1))
        printf '%s: %s failed (output "%s")\n' "$name" "${cmd[*]}" "$v" >>"$OUT/errors.log"
      fi
    done
    printf '.' >&2
  done
  ms=$((($(date +%s%N) - t0) / 1000000))
  printf ' %4d.%ds\n' $((ms / 1000)) $((ms % 1000 / 100)) >&2
}

: >"$OUT/errors.log"
log "running ($([ $quick = 1 ] && echo quick || echo full): $reps rounds, median reported)"
measure start_join_fork  "start_join fork $fork_iters"   "start_join fork $fork_iters"   "start_join fork $py_fork_iters"
measure start_join_spawn "start_join spawn $spawn_iters" "start_join spawn $spawn_iters" "start_join spawn $py_spawn_iters"
# forkserver: raw has no server, so its column is a raw fork (the issue's bar).
measure start_join_forkserver "start_join forkserver $fork_iters" "start_join fork $fork_iters" "start_join forkserver $py_spawn_iters"
measure pipe_small_msgs  "pipe_small $small_msgs"  "pipe_small $small_msgs"  "pipe_small $small_msgs"
measure queue_small_msgs "queue_small $queue_msgs" "queue_small $queue_msgs" "queue_small $queue_msgs"
# issue 14 item 3: the queue against a bare single-producer single-consumer
# shared-memory ring (its raw column; Python has no such thing).
measure queue_small_vs_spsc "queue_small $queue_msgs" "spsc_small $queue_msgs" -
measure bulk_1mib        "bulk $bulk_msgs"         "bulk $bulk_msgs"         "bulk $bulk_msgs"
measure lock_uncontended "lock $lock_iters"        "lock $lock_iters"        "lock $lock_iters"
# issue 14 item 1: bulk against a bare shared-memory ring (4 slots of 1 MiB,
# spin hand-off): two copies (put/get), one copy (reserve/borrow), and the
# memcpy that bounds any one copy.
measure bulk_1mib_ring_2copies "bulk $bulk_msgs"      "bulk_ring $bulk_msgs 2" "-"
measure bulk_1mib_ring_1copy   "bulk_view $bulk_msgs" "bulk_ring $bulk_msgs 1" "-"
measure bulk_1mib_memcpy       "-"                    "bulk_memcpy $((bulk_msgs * 4))" "-"
measure bulk_1mib_shm          "bulk_shm $bulk_msgs"  "bulk_ring $bulk_msgs 1" "-"
measure pool_map_chunk1  "pool $pool1_tasks 1"     "pool $pool1_tasks 1"     "pool $pool1_tasks 1"
measure pool_map_chunked "pool $poolc_tasks 1000"  "pool $poolc_tasks 1000"  "pool $poolc_tasks 1000"

rounds() { local r=$(($1 / $2)); echo $((r > 0 ? r : 1)); }
for n in $scale_ns; do
  py=-
  [ "$n" -le "$py_spawn_max_n" ] && py="scale spawn $n $(rounds $scale_py_spawn "$n")"
  measure "scale_spawn_n/$n" "scale spawn $n $(rounds $scale_c_spawn "$n")" \
    "scale spawn $n $(rounds $scale_c_spawn "$n")" "$py"
done
for n in $scale_ns; do
  measure "scale_spawn_n/fork/$n" "scale fork $n $(rounds $scale_c_fork "$n")" \
    "scale fork $n $(rounds $scale_c_fork "$n")" "scale fork $n $(rounds $scale_py_fork "$n")"
done

# Start cost vs the parent's memory (issue 11).  The 0 MiB points are the
# start_join_* rows above.  forkserver's raw column would be a raw fork
# again: it is in the fork row, so it is not measured twice.
for mib in 256 1024; do
  ROW_ENV=BENCH_TOUCH_MIB=$mib measure "start_mem/fork/$mib" \
    "start_join fork $mem_fork_iters" "start_join fork $mem_fork_iters" \
    "start_join fork $py_mem_fork_iters"
  ROW_ENV=BENCH_TOUCH_MIB=$mib measure "start_mem/spawn/$mib" \
    "start_join spawn $mem_spawn_iters" "start_join spawn $mem_spawn_iters" \
    "start_join spawn $py_mem_spawn_iters"
  ROW_ENV=BENCH_TOUCH_MIB=$mib measure "start_mem/forkserver/$mib" \
    "start_join forkserver $mem_spawn_iters" - \
    "start_join forkserver $py_mem_spawn_iters"
done

# Start cost with N children alive (issue 11): N started and blocked, then
# start+join of one more.
for n in $live_ns; do
  py=-
  [ "$n" -le "$py_live_spawn_max_n" ] && py="live spawn $n $py_live_spawn_iters"
  measure "start_live/fork/$n" "live fork $n $live_iters" \
    "live fork $n $live_iters" "live fork $n $py_live_iters"
  measure "start_live/spawn/$n" "live spawn $n $live_spawn_iters" \
    "live spawn $n $live_spawn_iters" "$py"
  measure "start_live/forkserver/$n" "live forkserver $n $live_iters" - \
    "live forkserver $n $py_live_iters"
done

# Contention and scale (issue 14 item 5): the cost per operation of the
# whole system as processes are added.
for p in 1 2 4; do
  measure "lock_contended/$p" "lock_contend $p $lock_c_iters" \
    "lock_contend $p $lock_c_iters" "lock_contend $p $lock_c_iters"
done
for p in 1 2 4; do
  measure "queue_mpmc/${p}x$p" "queue_mpmc $p $mpmc_msgs" \
    "queue_mpmc $p $mpmc_msgs" "queue_mpmc $p $mpmc_msgs"
done
for w in 1 2 4 8; do
  measure "pool_workers/$w" "pool $poolc_tasks 1000 $w" \
    "pool $poolc_tasks 1000 $w" "pool $poolc_tasks 1000 $w"
done

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
elapsed=$(($(date +%s) - t_start))
report=("$PYTHON" "$HERE/report.py" --samples "$SAMPLES"
  --mode "$([ $quick = 1 ] && echo quick || echo full)" --reps "$reps"
  --elapsed "$elapsed" --build "$build_how" --bins "$MPROC" "$RAW"
  --svg "$OUT/speedups.svg" --chart-dir "$OUT" --markdown "$OUT/results.md"
  --json "$OUT/results.json")
[ -n "$json" ] && report+=(--json "$json")
[ $readme = 1 ] && report+=(--readme "$HERE/README.md" --svg "$HERE/speedups.svg"
  --chart-dir "$HERE")
[ $check = 1 ] && report+=(--check)
report_rc=0
"${report[@]}" || report_rc=$?

log ""
log "done in ${elapsed}s; outputs in $OUT${json:+, JSON in $json}"
if [ $failures -gt 0 ]; then
  log "$failures measurement(s) failed: see $OUT/errors.log"
  exit 1
fi
if [ $report_rc -ne 0 ]; then
  [ $report_rc = 3 ] && log "--check: a target was missed (see Targets above)"
  exit $report_rc
fi
