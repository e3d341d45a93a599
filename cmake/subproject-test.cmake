# Run by the `subproject_install` ctest:  cmake -D... -P subproject-test.cmake
#
#   1. configure + build cmake/subproject-test: a C-only parent project that
#      add_subdirectory()s mproc with its defaults and links mproc::mproc into
#      a library of its own
#   2. check that mproc left BUILD_SHARED_LIBS out of the parent's cache
#   3. install the parent (its install(EXPORT) needs mproc's export set)
#   4. configure + build + run cmake/subproject-test/user against that prefix
#      (find_package(parent), which finds mproc) and check the version
cmake_minimum_required(VERSION 3.16)

foreach(_v MPROC_SOURCE_DIR WORK_DIR GENERATOR C_COMPILER EXPECTED_VERSION)
  if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
    message(FATAL_ERROR "subproject-test.cmake: ${_v} is not set")
  endif()
endforeach()

set(TEST_NAME subproject_install)
include("${CMAKE_CURRENT_LIST_DIR}/mprocRunStep.cmake")

set(_parent_src "${MPROC_SOURCE_DIR}/cmake/subproject-test")
set(_parent_build "${WORK_DIR}/parent-build")
set(_prefix "${WORK_DIR}/prefix")
set(_user_build "${WORK_DIR}/user-build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# 1. the parent, with mproc inside
run_step("parent configure" "${CMAKE_COMMAND}"
  -S "${_parent_src}" -B "${_parent_build}" -G "${GENERATOR}"
  "-DCMAKE_C_COMPILER=${C_COMPILER}"
  "-DCMAKE_BUILD_TYPE=Release"
  "-DMPROC_SOURCE_DIR=${MPROC_SOURCE_DIR}")
run_step("parent build" "${CMAKE_COMMAND}" --build "${_parent_build}" --config Release)

run_step("parent's own program" "${_parent_build}/parent_app")

# 2. mproc must not decide static/shared for the parent's other libraries
file(STRINGS "${_parent_build}/CMakeCache.txt" _bsl REGEX "^BUILD_SHARED_LIBS:")
if(_bsl)
  message(FATAL_ERROR "subproject_install: mproc wrote ${_bsl} into the parent's cache")
endif()

# 3. install: fails with "requires target mproc that is not in any export set"
#    if mproc does not install its export set by default
run_step("parent install" "${CMAKE_COMMAND}" --install "${_parent_build}"
  --prefix "${_prefix}" --config Release)
file(GLOB_RECURSE _cfg "${_prefix}/*/mprocConfig.cmake")
if(NOT _cfg OR NOT EXISTS "${_prefix}/share/doc/mproc/LICENSE")
  message(FATAL_ERROR "subproject_install: mproc's package files or LICENSE missing under ${_prefix}")
endif()

# 4. a user of the installed parent
run_step("user configure" "${CMAKE_COMMAND}"
  -S "${_parent_src}/user" -B "${_user_build}" -G "${GENERATOR}"
  "-DCMAKE_C_COMPILER=${C_COMPILER}"
  "-DCMAKE_BUILD_TYPE=Release"
  "-DCMAKE_PREFIX_PATH=${_prefix}"
  "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF")
run_step("user build" "${CMAKE_COMMAND}" --build "${_user_build}" --config Release)
set(_exe "${_user_build}/user")
if(NOT EXISTS "${_exe}")
  set(_exe "${_user_build}/Release/user")
endif()
run_step("user run" "${_exe}")
string(FIND "${STEP_OUTPUT}" "mproc ${EXPECTED_VERSION} through parent" _pos)
if(_pos EQUAL -1)
  message(FATAL_ERROR "subproject_install: the user printed:\n${STEP_OUTPUT}")
endif()
message(STATUS "subproject_install: OK (${STEP_OUTPUT})")
