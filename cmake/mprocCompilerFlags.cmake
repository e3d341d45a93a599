# Helpers that apply mproc's warning, sanitizer and runtime-linking policy to one
# target at a time (never globally, so a bundled GoogleTest keeps its own flags and
# our -Werror does not reach it).

# mproc_target_warnings(<target>)
#   GCC/Clang: -Wall -Wextra -Wpedantic -Wshadow, plus -Wstrict-prototypes and
#   -Wmissing-prototypes for C sources. MSVC: /W4. MPROC_WERROR adds -Werror or /WX.
function(mproc_target_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 $<$<BOOL:${MPROC_WERROR}>:/WX>)
  else()
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wpedantic -Wshadow
      $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes -Wmissing-prototypes>
      $<$<BOOL:${MPROC_WERROR}>:-Werror>)
  endif()
endfunction()

# mproc_target_sanitizers(<target>)
#   With MPROC_SANITIZE: AddressSanitizer + UndefinedBehaviorSanitizer, and any UB
#   report is fatal (-fno-sanitize-recover=all) so a test cannot pass past one.
function(mproc_target_sanitizers target)
  if(NOT MPROC_SANITIZE)
    return()
  endif()
  if(MSVC)
    target_compile_options(${target} PRIVATE /fsanitize=address)
    return()
  endif()
  set(_flags -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_compile_options(${target} PRIVATE ${_flags})
  get_target_property(_type ${target} TYPE)
  if(NOT _type STREQUAL "STATIC_LIBRARY" AND NOT _type STREQUAL "OBJECT_LIBRARY")
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# mproc_target_static_runtime(<target>)
#   MinGW executables: link libgcc, libstdc++ and winpthread statically so that a
#   test or example runs under wine (or on a bare Windows box) with no DLLs beside it.
function(mproc_target_static_runtime target)
  if(MINGW)
    target_link_options(${target} PRIVATE -static -static-libgcc -static-libstdc++)
  endif()
endfunction()
