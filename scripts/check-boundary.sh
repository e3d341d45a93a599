#!/usr/bin/env bash
# The platform boundary, checked.
#
# Portable code -- src/*.c, src/*.h and the contract headers src/plat/*.h --
# reaches the OS only through the platform contract (src/platform.h, which
# includes src/plat/*.h, implemented by src/posix/ and src/win32/).  So in
# those files this fails on:
#   - an #include <...> of anything but ISO C's own headers (allow-list below);
#   - an #include "..." of a backend's private header (w32.h, px.h, ...) or of
#     a file in a platform folder: only src/, src/plat/ and include/ headers;
#   - a preprocessor line that tests an OS macro (_WIN32, __linux__, ...).
# Compiler selections (_MSC_VER, __GNUC__, __clang__) are not platforms and
# are allowed: atomics.h and sync.h pick intrinsics by compiler.
#
#   bash scripts/check-boundary.sh      exit 0 when the portable code is clean
#
# Runs as the ctest boundary.portable_sources in every lane (CMakeLists.txt).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# ISO C11's headers: every hosted implementation has them, on every OS.
iso_c="assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h
limits.h locale.h math.h setjmp.h signal.h stdalign.h stdarg.h stdatomic.h
stdbool.h stddef.h stdint.h stdio.h stdlib.h stdnoreturn.h string.h tgmath.h
threads.h time.h uchar.h wchar.h wctype.h"
# Beyond ISO C, one entry per file, each with its reason:
#   src/atomics.h intrin.h: MSVC's compiler intrinsics (_InterlockedOr & co.),
#     included under `_MSC_VER && !__clang__`: a compiler header, not an OS one.
extra="src/atomics.h:intrin.h"
# The one backend header the contract names: plat/core.h includes the
# backend's "plat_types.h" (the mutex and process-state types, found through
# the backend's include directory), by design.
backend_types="src/plat/core.h:plat_types.h"
os_macros='_WIN32|_WIN64|__WIN32__|__CYGWIN__|__MINGW32__|__MINGW64__|__linux__|__linux|__gnu_linux__|__ANDROID__|__APPLE__|__MACH__|__unix__|__unix|__FreeBSD__|__NetBSD__|__OpenBSD__|__DragonFly__|__sun|__HAIKU__|_POSIX_VERSION|_POSIX_C_SOURCE|_GNU_SOURCE|_DEFAULT_SOURCE|__GLIBC__'

files=(src/*.c src/*.h src/plat/*.h)
bad=0
report() {
  echo "$1: $2"
  bad=$((bad + 1))
}

for f in "${files[@]}"; do
  n=0
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*# ]] || continue
    if [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<([^>]+)\> ]]; then
      h=${BASH_REMATCH[1]}
      if ! grep -qxF "$h" <<<"$(tr ' ' '\n' <<<"$iso_c")" && [[ " $extra " != *" $f:$h "* ]]; then
        report "$f:$n" "includes <$h>: portable code reaches the OS through platform.h only"
      fi
    elif [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
      h=${BASH_REMATCH[1]}
      if [[ $h == */../* || $h == ../* ]] ||
         { [[ ! -f src/$h && ! -f include/$h ]] && [[ " $backend_types " != *" $f:$h "* ]]; }; then
        report "$f:$n" "includes \"$h\", not a portable header (src/, src/plat/, include/)"
      fi
    elif [[ $line =~ (^|[^A-Za-z0-9_])($os_macros)([^A-Za-z0-9_]|$) ]]; then
      report "$f:$n" "tests ${BASH_REMATCH[2]}: OS differences belong behind the platform contract"
    fi
  done <"$f"
done

echo "check-boundary: ${#files[@]} portable files, $bad violation(s)"
((bad == 0))
