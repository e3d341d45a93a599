#!/bin/sh
# `zig c++` as one program, for CMAKE_CXX_COMPILER (which cannot carry arguments
# portably).  The target comes from CMake (CMAKE_CXX_COMPILER_TARGET adds
# --target=...), so one wrapper serves every zig-*.cmake toolchain.  The zig
# used: $MPROC_ZIG if set, else the one scripts/deps.sh installs, else PATH.
zig=${MPROC_ZIG:-/opt/mproc-zig-0.11.0/zig}
[ -x "$zig" ] || zig=zig
exec "$zig" c++ "$@"
