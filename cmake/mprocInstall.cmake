# Install rules, the CMake package (mprocConfig.cmake, mprocConfigVersion.cmake,
# mprocTargets.cmake) and the pkg-config file. Included from the top-level
# CMakeLists.txt when MPROC_INSTALL is ON.
include(CMakePackageConfigHelpers)

set(MPROC_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/mproc"
  CACHE STRING "Where mprocConfig.cmake is installed (relative to the prefix)")
set(MPROC_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
  CACHE STRING "Where mproc.pc is installed (relative to the prefix)")
mark_as_advanced(MPROC_INSTALL_CMAKEDIR MPROC_INSTALL_PKGCONFIGDIR)

install(TARGETS mproc
  EXPORT mprocTargets
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

install(FILES "${MPROC_PUBLIC_HEADER}" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
# The header-only C++ wrapper: installed with the C headers; a C-only build
# never compiles it.
install(FILES "${PROJECT_SOURCE_DIR}/include/mproc.hpp" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
if(MPROC_PUBLIC_SUBHEADERS)
  install(FILES ${MPROC_PUBLIC_SUBHEADERS} DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/mproc")
endif()

# The licence travels with every copy of the binaries (MIT requires the notice in
# "all copies or substantial portions"); README and CHANGELOG go beside it, in
# share/doc/mproc, where Debian and Fedora look. Not CMAKE_INSTALL_DOCDIR:
# GNUInstallDirs caches that with the name of the first project that included
# it, which is the parent's when mproc is a subproject.
foreach(_doc LICENSE README.md CHANGELOG.md)
  if(EXISTS "${PROJECT_SOURCE_DIR}/${_doc}")
    install(FILES "${PROJECT_SOURCE_DIR}/${_doc}"
      DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/mproc")
  endif()
endforeach()

install(EXPORT mprocTargets
  NAMESPACE mproc::
  FILE mprocTargets.cmake
  DESTINATION "${MPROC_INSTALL_CMAKEDIR}")

# Lets another build use this build tree directly (find_package with mproc_DIR=<build>).
export(EXPORT mprocTargets
  NAMESPACE mproc::
  FILE "${PROJECT_BINARY_DIR}/mprocTargets.cmake")

# Variables read by mprocConfig.cmake.in.
if(WIN32)
  set(MPROC_CONFIG_NEEDS_THREADS 0)
else()
  set(MPROC_CONFIG_NEEDS_THREADS 1)
endif()
if(MPROC_HAVE_OPENSSL)
  set(MPROC_CONFIG_NEEDS_OPENSSL 1)
else()
  set(MPROC_CONFIG_NEEDS_OPENSSL 0)
endif()
if(MPROC_WITH_MPI)
  set(MPROC_CONFIG_NEEDS_MPI 1)
else()
  set(MPROC_CONFIG_NEEDS_MPI 0)
endif()

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/mprocConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/mprocConfig.cmake"
  INSTALL_DESTINATION "${MPROC_INSTALL_CMAKEDIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/mprocConfigVersion.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/mprocConfig.cmake"
  "${PROJECT_BINARY_DIR}/mprocConfigVersion.cmake"
  DESTINATION "${MPROC_INSTALL_CMAKEDIR}")

# pkg-config: the prefix is computed from ${pcfiledir} so that the installed tree
# can be moved (and so that `cmake --install --prefix X` gives a correct file).
if(IS_ABSOLUTE "${MPROC_INSTALL_PKGCONFIGDIR}")
  set(MPROC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _rel "/mproc-prefix/${MPROC_INSTALL_PKGCONFIGDIR}" "/mproc-prefix")
  string(REGEX REPLACE "/$" "" _rel "${_rel}")
  set(MPROC_PC_PREFIX "\${pcfiledir}/${_rel}")
endif()
foreach(_kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_kind}}")
    set(MPROC_PC_${_kind} "${CMAKE_INSTALL_${_kind}}")
  else()
    set(MPROC_PC_${_kind} "\${prefix}/${CMAKE_INSTALL_${_kind}}")
  endif()
endforeach()
if(MPROC_SHARED_LIB)
  set(MPROC_PC_CFLAGS " -DMPROC_SHARED")
else()
  set(MPROC_PC_CFLAGS "")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/mproc.pc.in" "${PROJECT_BINARY_DIR}/mproc.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/mproc.pc" DESTINATION "${MPROC_INSTALL_PKGCONFIGDIR}")

# ctest `install_consumer`: install into a scratch prefix, then build and run a tiny
# project that uses find_package(mproc) (and pkg-config, when present). Native Linux
# lanes, and Windows cross builds that have an emulator to run the result (the
# mingw-wine lane: the consumer uses the same toolchain file and CMAKE_PREFIX_PATH).
set(_consumer_cross_args "")
set(_consumer_flags "")
if(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND NOT CMAKE_CROSSCOMPILING)
  set(_consumer_test ON)
  if(MPROC_SANITIZE)
    set(_consumer_flags "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all")
  endif()
elseif(MPROC_CROSS_WINDOWS AND MINGW AND CMAKE_TOOLCHAIN_FILE AND CMAKE_CROSSCOMPILING_EMULATOR)
  set(_consumer_test ON)
  get_filename_component(_toolchain "${CMAKE_TOOLCHAIN_FILE}" ABSOLUTE)
  # add_test would split a ;-list into separate arguments.
  string(REPLACE ";" "|" _emulator "${CMAKE_CROSSCOMPILING_EMULATOR}")
  set(_consumer_cross_args "-DTOOLCHAIN_FILE=${_toolchain}" "-DEMULATOR=${_emulator}")
  # As the tests: no libgcc / libwinpthread DLLs needed beside the program.
  set(_consumer_flags "-static")
else()
  set(_consumer_test OFF)
endif()
if(MPROC_BUILD_TESTS AND _consumer_test)
  add_test(NAME install_consumer
    COMMAND "${CMAKE_COMMAND}"
      "-DMPROC_BINARY_DIR=${PROJECT_BINARY_DIR}"
      "-DCONSUMER_SOURCE_DIR=${PROJECT_SOURCE_DIR}/cmake/consumer-test"
      "-DWORK_DIR=${PROJECT_BINARY_DIR}/install-consumer"
      "-DCONFIG=$<CONFIG>"
      "-DGENERATOR=${CMAKE_GENERATOR}"
      "-DC_COMPILER=${CMAKE_C_COMPILER}"
      "-DEXTRA_FLAGS=${_consumer_flags}"
      "-DEXPECTED_VERSION=${PROJECT_VERSION}"
      "-DSHARED=${MPROC_SHARED_LIB}"
      ${_consumer_cross_args}
      -P "${PROJECT_SOURCE_DIR}/cmake/install-consumer-test.cmake")
  set_tests_properties(install_consumer PROPERTIES TIMEOUT 120 LABELS install)
endif()

# ctest `subproject_install`: a C-only parent project add_subdirectory()s mproc
# with the defaults, links it into its own library, installs that with
# install(EXPORT), and a user of the installed parent builds and runs. It
# compiles the library once more, so only the plain lanes run it (the
# sanitizer lane changes nothing it checks).
if(MPROC_BUILD_TESTS AND MPROC_IS_TOP_LEVEL AND NOT MPROC_SANITIZE
   AND CMAKE_SYSTEM_NAME STREQUAL "Linux" AND NOT CMAKE_CROSSCOMPILING)
  add_test(NAME subproject_install
    COMMAND "${CMAKE_COMMAND}"
      "-DMPROC_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
      "-DWORK_DIR=${PROJECT_BINARY_DIR}/subproject-install"
      "-DGENERATOR=${CMAKE_GENERATOR}"
      "-DC_COMPILER=${CMAKE_C_COMPILER}"
      "-DEXPECTED_VERSION=${PROJECT_VERSION}"
      -P "${PROJECT_SOURCE_DIR}/cmake/subproject-test.cmake")
  set_tests_properties(subproject_install PROPERTIES TIMEOUT 300 LABELS install)
endif()
