#!/usr/bin/env bash
# The demo: build mproc and run examples/tour (processes),
# examples/producer_consumer (queue, lock, pipe) and examples/pool_squares (a
# pool surviving a dying worker), the library doing its job in plain sight,
# under every start method it has here:
#   1. Linux, fork (the POSIX default)
#   2. Linux, spawn (the program re-executed, as on Windows)
#   3. Windows: the mingw-w64 build of the same program, run under Wine
# Dependencies are installed the same way CI installs them (scripts/deps.sh).
#
#   bash scripts/demo.sh            all three
#   bash scripts/demo.sh --no-wine  Linux only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

wine=1
[[ "${1:-}" == "--no-wine" ]] && wine=0

bash scripts/deps.sh

banner() { printf '\n\033[1m=== %s ===\033[0m\n' "$*"; }

cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=ON >/dev/null
cmake --build build/demo --target example_tour example_producer_consumer \
  example_pool_squares >/dev/null

for method in fork spawn; do
  banner "Linux, start method $method: processes (examples/tour)"
  MPROC_START_METHOD=$method build/demo/examples/tour
  banner "Linux, start method $method: a queue, a lock and a pipe (examples/producer_consumer)"
  MPROC_START_METHOD=$method build/demo/examples/producer_consumer
  banner "Linux, start method $method: a pool that survives a dying worker (examples/pool_squares)"
  MPROC_START_METHOD=$method build/demo/examples/pool_squares
done

if (( wine )); then
  cmake -S . -B build/demo-mingw -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake \
    -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=ON >/dev/null
  cmake --build build/demo-mingw --target example_tour \
    example_producer_consumer example_pool_squares >/dev/null
  for prog in tour producer_consumer pool_squares; do
    banner "Windows (mingw-w64 build under Wine): examples/$prog"
    WINEPREFIX="$PWD/build/demo-mingw/wineprefix" \
      cmake/wine-run.sh "build/demo-mingw/examples/$prog.exe"
  done
fi
