# Cross-compile mproc for 64-bit Windows with Debian's mingw-w64 (posix thread model)
# and run the results under wine:
#
#   cmake -S . -B build/mingw-wine -G Ninja \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake
#   (or: cmake --workflow --preset mingw-wine)
#
# Needs: apt-get install mingw-w64 wine64 wine   (bash .ci/run --deps-only does it)
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(MPROC_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER   ${MPROC_MINGW_TRIPLE}-gcc-posix)
set(CMAKE_CXX_COMPILER ${MPROC_MINGW_TRIPLE}-g++-posix)
set(CMAKE_RC_COMPILER  ${MPROC_MINGW_TRIPLE}-windres)

# Look for headers, libraries and packages in the mingw sysroot only; programs
# (tools run at build time) come from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${MPROC_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest (and gtest_discover_tests) run the .exe files through wine. The wrapper keeps
# one wine prefix per build tree unless WINEPREFIX is already set in the environment.
get_filename_component(MPROC_WINE_RUN "${CMAKE_CURRENT_LIST_DIR}/../wine-run.sh" ABSOLUTE)
set(CMAKE_CROSSCOMPILING_EMULATOR
  "${MPROC_WINE_RUN};--default-prefix;${CMAKE_BINARY_DIR}/wineprefix")
