# Packaging test (cmake -P), registered as packaging_plain_compiler: the
# README's first snippet built the way a user without CMake builds it.
#
#   1. `g++ -std=c++20 -O2 -I include -I <eigen> app.cpp`, nothing else: it uses
#      backend::Cpu<isa::Dispatch>, so it must fail at *compile* time with the
#      message that names what to add (not with undefined symbols at link time).
#   2. The commands of docs/backends.md's "Runtime dispatch without CMake" block,
#      run as written: they must compile, link and run the snippet.
#
# Inputs: SOURCE_DIR WORK_DIR CXX_COMPILER EIGEN_INCLUDE_DIR
foreach(var SOURCE_DIR WORK_DIR CXX_COMPILER EIGEN_INCLUDE_DIR)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "plain_compiler.cmake: ${var} is not set")
    endif()
endforeach()
include("${CMAKE_CURRENT_LIST_DIR}/readme_snippet.cmake")

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
file(CREATE_LINK "${SOURCE_DIR}/include" "${WORK_DIR}/include" SYMBOLIC)
file(CREATE_LINK "${SOURCE_DIR}/src" "${WORK_DIR}/src" SYMBOLIC)
recblocks_write_readme_snippet("${SOURCE_DIR}/README.md" "${WORK_DIR}/app.cpp")

# 1. The bare line fails at compile time, naming the fix.
execute_process(COMMAND "${CXX_COMPILER}" -std=c++20 -O2 -I include -I "${EIGEN_INCLUDE_DIR}" -c app.cpp -o app.o
                WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
    message(FATAL_ERROR "[packaging_plain_compiler] the README snippet compiled without the dispatch units; "
                        "expected a static_assert naming recblocks_enable_runtime_dispatch")
endif()
foreach(needle "recblocks_enable_runtime_dispatch(<your target>)"
               "-DRECBLOCKS_HAS_RUNTIME_DISPATCH" "src/dispatch/recblocks_dispatch_" "backend::Cpu<isa::Auto>")
    string(FIND "${out}" "${needle}" at)
    if(at EQUAL -1)
        message(FATAL_ERROR "[packaging_plain_compiler] the bare compile failed without naming '${needle}':\n${out}")
    endif()
endforeach()
message(STATUS "[packaging_plain_compiler] bare line: fails at compile time, naming the fix")

# 2. The documented commands, as written (g++ and the Eigen path replaced by this build's).
file(READ "${SOURCE_DIR}/docs/backends.md" doc)
string(FIND "${doc}" "<!-- packaging_plain_compiler runs the next block -->" at)
if(at EQUAL -1)
    message(FATAL_ERROR "[packaging_plain_compiler] docs/backends.md lost its marked 'without CMake' block")
endif()
string(SUBSTRING "${doc}" ${at} -1 doc)
recblocks_read_fenced_block("${doc}" sh commands)
string(REPLACE "g++ " "${CXX_COMPILER} " commands "${commands}")
string(REPLACE "/usr/include/eigen3" "${EIGEN_INCLUDE_DIR}" commands "${commands}")
file(WRITE "${WORK_DIR}/documented.sh" "set -eux\n${commands}\n./app\n")
execute_process(COMMAND bash documented.sh WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[packaging_plain_compiler] the commands of docs/backends.md failed (${rc})")
endif()
message(STATUS "[packaging_plain_compiler] documented commands: built, linked and ran the README snippet")
