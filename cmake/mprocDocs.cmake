# The API reference (Doxygen), from the public headers only: target mproc_docs.
# Included from the top-level CMakeLists.txt when MPROC_BUILD_DOCS is ON.  Without
# Doxygen there is no target (a warning says so); the library builds as usual.
#
# docs/Doxyfile.in sets WARN_AS_ERROR=YES with EXTRACT_ALL=NO, so an undocumented
# public function, parameter or return value fails the target
# (scripts/check-docs.sh, the `docs` lane, builds it).
find_package(Doxygen QUIET)
if(NOT DOXYGEN_FOUND)
  message(WARNING "mproc: MPROC_BUILD_DOCS is ON but Doxygen was not found: "
                  "no mproc_docs target")
  return()
endif()

set(MPROC_DOCS_OUTPUT_DIR "${PROJECT_BINARY_DIR}/docs")
configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in"
  "${MPROC_DOCS_OUTPUT_DIR}/Doxyfile" @ONLY)

# The stamp makes the target re-run only when a header or the Doxyfile changed.
# It is written only after Doxygen succeeded: a run stopped by a warning leaves
# HTML behind, and an output that Doxygen itself writes would then look current.
add_custom_command(
  OUTPUT "${MPROC_DOCS_OUTPUT_DIR}/mproc_docs.stamp"
  COMMAND "${DOXYGEN_EXECUTABLE}" "${MPROC_DOCS_OUTPUT_DIR}/Doxyfile"
  COMMAND "${CMAKE_COMMAND}" -E touch "${MPROC_DOCS_OUTPUT_DIR}/mproc_docs.stamp"
  DEPENDS "${MPROC_PUBLIC_HEADER}" ${MPROC_PUBLIC_SUBHEADERS}
          "${PROJECT_SOURCE_DIR}/docs/Doxyfile.in"
  WORKING_DIRECTORY "${MPROC_DOCS_OUTPUT_DIR}"
  COMMENT "Doxygen: the API reference in ${MPROC_DOCS_OUTPUT_DIR}/html"
  VERBATIM)
add_custom_target(mproc_docs DEPENDS "${MPROC_DOCS_OUTPUT_DIR}/mproc_docs.stamp")
