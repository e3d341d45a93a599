#!/usr/bin/env bash
# The demo: build mproc and run examples/tour, the library doing its job in
# plain sight, under every start method it has here:
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
cmake --build build/demo --target example_tour >/dev/null

banner "Linux, start method fork"
MPROC_START_METHOD=fork build/demo/examples/tour
banner "Linux, start method spawn"
MPROC_START_METHOD=spawn build/demo/examples/tour

if (( wine )); then
  cmake -S . -B build/demo-mingw -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake \
    -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=ON >/dev/null
  cmake --build build/demo-mingw --target example_tour >/dev/null
  banner "Windows (mingw-w64 build under Wine), start method spawn"
  WINEPREFIX="$PWD/build/demo-mingw/wineprefix" cmake/wine-run.sh build/demo-mingw/examples/tour.exe
fi
