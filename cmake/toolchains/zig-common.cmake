# Shared part of the zig-*.cmake toolchain files: Linux targets built with the
# Zig 0.11 toolchain (`zig cc` / `zig c++`: clang with musl and libc++ for every
# target), linked statically, so the binaries run on this machine without an
# emulator.  The including file sets MPROC_ZIG_TARGET (a zig target triple) and
# CMAKE_SYSTEM_PROCESSOR.  Zig: scripts/deps.sh installs it into
# /opt/mproc-zig-0.11.0; set MPROC_ZIG to use another.
set(CMAKE_SYSTEM_NAME Linux)

get_filename_component(_mproc_zig_dir "${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
set(CMAKE_C_COMPILER   "${_mproc_zig_dir}/zig-cc.sh")
set(CMAKE_CXX_COMPILER "${_mproc_zig_dir}/zig-c++.sh")
# CMake passes --target=<triple> to a clang-like compiler; zig reads its own
# triple format there.
set(CMAKE_C_COMPILER_TARGET   ${MPROC_ZIG_TARGET})
set(CMAKE_CXX_COMPILER_TARGET ${MPROC_ZIG_TARGET})

# Static executables: musl's static libc, zig's libc++; no dynamic loader needed.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# Nothing from the host's /usr (glibc builds): GoogleTest is compiled from its
# sources (tests/CMakeLists.txt), everything else comes with zig.
set(CMAKE_FIND_ROOT_PATH "${_mproc_zig_dir}/zig-sysroot-none")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
