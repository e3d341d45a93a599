#!/usr/bin/env bash
# Run the CI lanes one after the other and summarise them.
#
#   bash scripts/test-all.sh                 dev, spawn, asan, mingw-wine, msvc-check,
#                                            musl, x86, macos-check, docs, portable forkserver,
#                                            mpi
#   bash scripts/test-all.sh dev spawn       only those lanes (any preset name works,
#                                            e.g. release)
#
# Each lane is `cmake --workflow --preset <lane>` (configure + build + test; see
# CMakePresets.json), except msvc-check, which is scripts/check-msvc.sh (the code
# compiled as MSVC's C compiler sees it, for x64, arm64 and x86), macos-check, which is scripts/check-macos.sh (the
# library compiled for x86_64 and arm64 macOS with Zig's clang and its macOS headers), and docs, which is
# scripts/check-docs.sh (the Doxygen API reference, warnings as errors). A failing lane does not stop the others. Full output goes to
# the terminal and to build/logs/<lane>.log. The last line is the total over all
# lanes, "N passed, N failed"; a lane that fails before its tests run (configure or
# build error) counts as one failure. Exit status: 0 only if every lane passed.
#
# Dependencies are installed first (scripts/deps.sh; a no-op on a warm machine),
# so on a fresh Debian machine this one command is all it takes.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

lanes=("$@")
if (( ${#lanes[@]} == 0 )); then
  lanes=(dev spawn asan mingw-wine msvc-check musl x86 macos-check docs portable forkserver mpi)
fi

# Open MPI (the mpi lane) is installed only when that lane runs.
deps_env=()
[[ " ${lanes[*]} " == *" mpi "* ]] && deps_env=(MPROC_DEPS_MPI=1)
env "${deps_env[@]}" bash scripts/deps.sh || { echo "dependency installation failed"; exit 1; }

# The lanes choose the start method themselves (the spawn lane's test preset sets
# it); a value left in the caller's shell must not leak into the other lanes.
unset MPROC_START_METHOD

mkdir -p build/logs
declare -A lane_status lane_summary lane_secs
total_passed=0
total_failed=0
any_failed=0
start_all=$SECONDS

for lane in "${lanes[@]}"; do
  log=build/logs/$lane.log
  echo
  echo "==================================================================="
  t0=$SECONDS
  if [[ $lane == msvc-check ]]; then
    echo "==> lane $lane: bash scripts/check-msvc.sh   (log: $log)"
    echo "==================================================================="
    bash scripts/check-msvc.sh 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  elif [[ $lane == macos-check ]]; then
    echo "==> lane $lane: bash scripts/check-macos.sh   (log: $log)"
    echo "==================================================================="
    bash scripts/check-macos.sh 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  elif [[ $lane == docs ]]; then
    echo "==> lane $lane: bash scripts/check-docs.sh   (log: $log)"
    echo "==================================================================="
    bash scripts/check-docs.sh 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  else
    echo "==> lane $lane: cmake --workflow --preset $lane   (log: $log)"
    echo "==================================================================="
    cmake --workflow --preset "$lane" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  fi
  lane_secs[$lane]=$(( SECONDS - t0 ))

  if [[ $lane == mingw-wine* ]]; then
    # Stop this lane's wineserver now rather than 30 s after its last client.
    bash cmake/wine-run.sh --default-prefix "$PWD/build/$lane/wineprefix" --kill || true
  fi

  # A workflow may run several test steps (x86: fork, then spawn): add them up.
  summaries=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" || true)
  summary=$(tail -1 <<<"$summaries")
  plain=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 || true)
  if [[ -z $summary && -n $plain ]]; then
    # A script lane ends with the plain "N passed, N failed" line.
    p=${plain%% passed*}
    f=${plain#*, }; f=${f%% failed*}
    total_passed=$(( total_passed + p ))
    total_failed=$(( total_failed + f ))
    lane_summary[$lane]=$plain
  elif [[ -n $summary ]]; then
    lane_failed=0
    lane_total=0
    while read -r line; do
      failed=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
      total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
      lane_failed=$(( lane_failed + failed ))
      lane_total=$(( lane_total + total ))
    done <<<"$summaries"
    total_passed=$(( total_passed + lane_total - lane_failed ))
    total_failed=$(( total_failed + lane_failed ))
    if (( $(wc -l <<<"$summaries") > 1 )); then
      summary="$(( lane_total - lane_failed )) of $lane_total tests passed over $(wc -l <<<"$summaries") test runs"
    fi
    lane_summary[$lane]=$summary
  else
    # Configure or build failed (or ctest found nothing to run): count the lane once.
    total_failed=$(( total_failed + 1 ))
    lane_summary[$lane]="no test results (configure/build failed?)"
    (( rc == 0 )) && rc=1
  fi

  if (( rc == 0 )); then
    lane_status[$lane]=ok
  else
    lane_status[$lane]=FAILED
    any_failed=1
  fi
  echo "==> lane $lane: ${lane_status[$lane]} in ${lane_secs[$lane]} s -- ${lane_summary[$lane]}"
done

echo
echo "======================= summary ($(( SECONDS - start_all )) s) ======================="
for lane in "${lanes[@]}"; do
  printf '%-11s %-6s %5ss  %s\n' "$lane" "${lane_status[$lane]}" "${lane_secs[$lane]}" \
    "${lane_summary[$lane]}"
done
echo "${total_passed} passed, ${total_failed} failed"
exit $any_failed
