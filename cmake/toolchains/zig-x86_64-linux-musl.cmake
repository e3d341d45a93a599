# Linux x86_64 with musl, static, via the Zig 0.11 toolchain (see zig-common.cmake).
#   cmake --workflow --preset musl
set(MPROC_ZIG_TARGET x86_64-linux-musl)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
include("${CMAKE_CURRENT_LIST_DIR}/zig-common.cmake")
