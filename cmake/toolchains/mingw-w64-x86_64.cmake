# Cross-compile mproc for 64-bit Windows with Debian's mingw-w64 (posix thread model)
# and run the results under wine:
#
#   cmake -S . -B build/mingw-wine -G Ninja \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake
#   (or: cmake --workflow --preset mingw-wine)
#
# Needs: apt-get install mingw-w64 wine64 wine   (bash scripts/deps.sh does it)
#
# A project that uses an mproc cross-built and installed to <prefix> uses this
# same file and names the prefix as usual:
#
#   cmake -S app -B build/app -DCMAKE_TOOLCHAIN_FILE=<mproc>/cmake/toolchains/mingw-w64-x86_64.cmake \
#         -DCMAKE_PREFIX_PATH=<prefix>
#   (find_package(mproc) then finds <prefix>/lib/cmake/mproc)
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(MPROC_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER   ${MPROC_MINGW_TRIPLE}-gcc-posix)
set(CMAKE_CXX_COMPILER ${MPROC_MINGW_TRIPLE}-g++-posix)
set(CMAKE_RC_COMPILER  ${MPROC_MINGW_TRIPLE}-windres)

# Look for headers, libraries and packages in the mingw sysroot and in the
# prefixes the user names, never in the host's /usr; programs (tools run at
# build time) come from the host.
#
# With the ..._MODE_* ONLY settings below, CMake re-roots every search prefix
# under each CMAKE_FIND_ROOT_PATH entry, so CMAKE_PREFIX_PATH=/opt/win64 alone
# would be searched as /usr/x86_64-w64-mingw32/opt/win64 and never found. A
# prefix that lies inside a root is searched as it is, so the user's prefixes
# (from the command line or the environment) become roots too. Roots the user
# set (-DCMAKE_FIND_ROOT_PATH=...) are kept.
list(APPEND CMAKE_FIND_ROOT_PATH /usr/${MPROC_MINGW_TRIPLE} ${CMAKE_PREFIX_PATH})
if(DEFINED ENV{CMAKE_PREFIX_PATH})
  string(REPLACE ":" ";" _mproc_env_prefixes "$ENV{CMAKE_PREFIX_PATH}")
  list(APPEND CMAKE_FIND_ROOT_PATH ${_mproc_env_prefixes})
endif()
list(REMOVE_DUPLICATES CMAKE_FIND_ROOT_PATH)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest (and gtest_discover_tests) run the .exe files through wine. The wrapper keeps
# one wine prefix per build tree unless WINEPREFIX is already set in the environment.
get_filename_component(MPROC_WINE_RUN "${CMAKE_CURRENT_LIST_DIR}/../wine-run.sh" ABSOLUTE)
set(CMAKE_CROSSCOMPILING_EMULATOR
  "${MPROC_WINE_RUN};--default-prefix;${CMAKE_BINARY_DIR}/wineprefix")
