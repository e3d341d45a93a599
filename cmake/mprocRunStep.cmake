# run_step(<what> <command> [args...]) for the cmake -P test scripts: runs the
# command, stops the script with its output if it fails, and leaves the output
# in STEP_OUTPUT.
function(run_step what)
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    list(JOIN ARGN " " _cmd)
    message(FATAL_ERROR "${TEST_NAME}: ${what} failed (${_rc})\n  ${_cmd}\n${_out}")
  endif()
  set(STEP_OUTPUT "${_out}" PARENT_SCOPE)
endfunction()
