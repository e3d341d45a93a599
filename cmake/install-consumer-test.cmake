# Run by the `install_consumer` ctest:  cmake -D... -P install-consumer-test.cmake
#
#   1. cmake --install <MPROC_BINARY_DIR> --prefix <WORK_DIR>/prefix
#   2. configure + build cmake/consumer-test against that prefix (find_package(mproc))
#   3. run it and check it prints the project version
#   4. if pkg-config is installed: compile main.c with `pkg-config --cflags --libs mproc`
#      and run that too
#
# Cross builds (the mingw-wine lane) pass TOOLCHAIN_FILE and EMULATOR (its list
# separators written as "|"): the consumer is configured with the same toolchain
# file and CMAKE_PREFIX_PATH=<prefix>, as a user would, and runs under the
# emulator; the pkg-config half is skipped.
cmake_minimum_required(VERSION 3.16)

foreach(_v MPROC_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR C_COMPILER EXPECTED_VERSION)
  if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
    message(FATAL_ERROR "install-consumer-test.cmake: ${_v} is not set")
  endif()
endforeach()

set(TEST_NAME install_consumer)
include("${CMAKE_CURRENT_LIST_DIR}/mprocRunStep.cmake")

set(_prefix "${WORK_DIR}/prefix")
set(_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(_config_args "")
if(CONFIG)
  set(_config_args --config "${CONFIG}")
endif()

# 1. install
run_step("install" "${CMAKE_COMMAND}" --install "${MPROC_BINARY_DIR}" --prefix "${_prefix}" ${_config_args})
if(NOT EXISTS "${_prefix}/include/mproc.h")
  message(FATAL_ERROR "install_consumer: include/mproc.h was not installed")
endif()
if(NOT EXISTS "${_prefix}/share/doc/mproc/LICENSE")
  message(FATAL_ERROR "install_consumer: share/doc/mproc/LICENSE was not installed")
endif()
file(GLOB_RECURSE _cfg "${_prefix}/*/mprocConfig.cmake")
file(GLOB_RECURSE _pc "${_prefix}/*/mproc.pc")
if(NOT _cfg OR NOT _pc)
  message(FATAL_ERROR "install_consumer: mprocConfig.cmake or mproc.pc missing under ${_prefix}")
endif()

# 2. configure + build the consumer with find_package(mproc)
set(_build_type Release)
if(CONFIG)
  set(_build_type "${CONFIG}")
endif()
set(_toolchain_args "")
set(_emulator "")
if(TOOLCHAIN_FILE)
  set(_toolchain_args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
  string(REPLACE "|" ";" _emulator "${EMULATOR}")
endif()
run_step("consumer configure" "${CMAKE_COMMAND}"
  -S "${CONSUMER_SOURCE_DIR}" -B "${_build}" -G "${GENERATOR}" ${_toolchain_args}
  "-DCMAKE_C_COMPILER=${C_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${_build_type}"
  "-DCMAKE_PREFIX_PATH=${_prefix}"
  "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"
  "-DCMAKE_C_FLAGS=${EXTRA_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS}")
# Make sure it was *this* install that was found, not one on the system.
file(STRINGS "${_build}/CMakeCache.txt" _dir_line REGEX "^mproc_DIR:")
string(FIND "${_dir_line}" "${_prefix}" _pos)
if(_pos EQUAL -1)
  message(FATAL_ERROR "install_consumer: find_package found the wrong mproc: ${_dir_line}")
endif()
run_step("consumer build" "${CMAKE_COMMAND}" --build "${_build}" ${_config_args})

# 3. run it
set(_exe "${_build}/consumer")
if(TOOLCHAIN_FILE)
  set(_exe "${_build}/consumer.exe")
  if(SHARED)
    # Windows finds a DLL next to the program, not through an rpath.
    file(GLOB _dlls "${_prefix}/bin/*.dll")
    file(COPY ${_dlls} DESTINATION "${_build}")
  endif()
elseif(NOT EXISTS "${_exe}" AND CONFIG)
  set(_exe "${_build}/${CONFIG}/consumer")
endif()
run_step("consumer run" ${_emulator} "${_exe}")
message(STATUS "consumer (find_package) says:\n${STEP_OUTPUT}")
string(FIND "${STEP_OUTPUT}" "${EXPECTED_VERSION}" _pos)
if(_pos EQUAL -1)
  message(FATAL_ERROR "install_consumer: mproc_version_string() does not mention "
                      "${EXPECTED_VERSION} (project(VERSION)); it printed:\n${STEP_OUTPUT}")
endif()

# 4. pkg-config, when available
find_program(_pkg_config NAMES pkg-config pkgconf)
if(TOOLCHAIN_FILE)
  message(STATUS "cross build: skipped the pkg-config half")
elseif(_pkg_config)
  set(ENV{PKG_CONFIG_PATH} "")
  get_filename_component(_pcdir "${_pc}" DIRECTORY)
  set(ENV{PKG_CONFIG_LIBDIR} "${_pcdir}")
  set(_static --static)
  if(SHARED)
    set(_static "")
  endif()
  run_step("pkg-config" "${_pkg_config}" --cflags --libs ${_static} mproc)
  string(STRIP "${STEP_OUTPUT}" _pc_flags)
  separate_arguments(_pc_flags UNIX_COMMAND "${_pc_flags}")
  separate_arguments(_extra UNIX_COMMAND "${EXTRA_FLAGS}")
  run_step("pkg-config compile" "${C_COMPILER}" ${_extra}
    "${CONSUMER_SOURCE_DIR}/main.c" -o "${WORK_DIR}/consumer-pc" ${_pc_flags})
  if(SHARED)
    get_filename_component(_libdir "${_pcdir}" DIRECTORY)
    set(ENV{LD_LIBRARY_PATH} "${_libdir}:$ENV{LD_LIBRARY_PATH}")
  endif()
  run_step("pkg-config consumer run" "${WORK_DIR}/consumer-pc")
  message(STATUS "consumer (pkg-config: ${_pc_flags}) ran")
else()
  message(STATUS "pkg-config not found: skipped the pkg-config half")
endif()
message(STATUS "install_consumer: OK")
