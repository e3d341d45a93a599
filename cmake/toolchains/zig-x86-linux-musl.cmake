# Linux 32-bit x86 with musl, static, via the Zig 0.11 toolchain (see
# zig-common.cmake).  musl has a 64-bit time_t on every 32-bit ABI, so this is
# the configuration where a struct timespec handed to a raw syscall differs
# from the kernel's old 32-bit layout.  Runs natively on an x86_64 kernel.
#   cmake --workflow --preset x86
set(MPROC_ZIG_TARGET x86-linux-musl)
set(CMAKE_SYSTEM_PROCESSOR i686)
include("${CMAKE_CURRENT_LIST_DIR}/zig-common.cmake")
