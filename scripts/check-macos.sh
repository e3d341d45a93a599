#!/usr/bin/env bash
# macOS compile check, without a Mac.
#
# Compiles every file a macOS build compiles (the portable src/*.c and src/posix/*.c)
# with Zig's clang against the macOS libc headers Zig bundles, for x86_64 and arm64,
# with -Werror and the feature macros CMakeLists.txt sets for Apple
# (MPROC_FEATURE_DEFINITIONS).  Then, per target, it links them all into a dylib
# against the libSystem stubs Zig ships for macOS 11.0, the oldest macOS the port
# supports (__ulock_wait2 is from macOS 11): every function the macOS code calls,
# including the undocumented ones it declares itself, must exist there.  This
# proves the macOS code paths (kqueue sentinels, os_sync/__ulock futex, shm_open
# segments, ...) compile and link; it does not run them.
#
#   bash scripts/check-macos.sh          exit 0 when every file compiles clean
#
# Zig is looked up as $MPROC_ZIG, then where scripts/deps.sh installs it
# (/opt/mproc-zig-0.11.0/zig), then on PATH.  `zig cc -fsyntax-only` misbehaves in
# Zig 0.11, so each file is compiled for real to /dev/null.
#
# The last line is "N passed, N failed" (one per file and target, plus one link
# per target).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

zig=${MPROC_ZIG:-}
[[ -z $zig && -x /opt/mproc-zig-0.11.0/zig ]] && zig=/opt/mproc-zig-0.11.0/zig
[[ -z $zig ]] && zig=$(command -v zig)
[[ -n $zig && -x $zig ]] || { echo "zig not found (set MPROC_ZIG or run scripts/deps.sh)"; exit 1; }

# Zig keeps a cache; keep it inside the build tree rather than in $HOME.
export ZIG_GLOBAL_CACHE_DIR=${ZIG_GLOBAL_CACHE_DIR:-$PWD/build/zig-cache}
export ZIG_LOCAL_CACHE_DIR=${ZIG_LOCAL_CACHE_DIR:-$PWD/build/zig-cache}

targets=("x86_64-macos" "aarch64-macos")
common=(-Iinclude -Isrc -Isrc/posix -std=c11 -DMPROC_BUILDING
  # The feature macros CMakeLists.txt sets for Apple (MPROC_FEATURE_DEFINITIONS).
  -D_DARWIN_C_SOURCE
  # The warnings cmake/mprocCompilerFlags.cmake gives the library's C sources.
  -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror)

passed=0
failed=0
for target in "${targets[@]}"; do
  for f in src/*.c src/posix/*.c; do
    if out=$("$zig" cc -target "$target" "${common[@]}" -c -o /dev/null "$f" 2>&1) \
       && [[ -z $out ]]; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "FAIL $target: $f"
      echo "$out" | head -20
    fi
  done
done
link_dir=$(mktemp -d "${TMPDIR:-/tmp}/mproc-macos.XXXXXX")
trap 'rm -rf "$link_dir"' EXIT
for target in "${targets[@]}"; do
  if out=$("$zig" cc -target "$target.11.0" -shared "${common[@]}" \
             -o "$link_dir/libmproc-$target.dylib" src/*.c src/posix/*.c 2>&1) \
     && [[ -z $out ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $target.11.0: link"
    echo "$out" | head -20
  fi
done
echo "macos-check: ${#targets[@]} targets (${targets[*]}), compiled per file and linked"
echo "${passed} passed, ${failed} failed"
(( failed == 0 ))
