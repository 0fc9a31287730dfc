# Packaging test driver (cmake -P), registered by the top-level CMakeLists.txt
# as packaging_install and packaging_add_subdirectory.
#
#   MODE=install           cmake --install BUILD_DIR into WORK_DIR/prefix, then build the
#                          consumer with find_package(recblocks CONFIG) from that prefix
#   MODE=add_subdirectory  build the consumer with add_subdirectory(SOURCE_DIR)
#
# Inputs: MODE SOURCE_DIR BUILD_DIR WORK_DIR GENERATOR CXX_COMPILER CONFIG CTEST_COMMAND DISPATCH
foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR GENERATOR CXX_COMPILER CTEST_COMMAND)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
    endif()
endforeach()
if(NOT CONFIG)
    set(CONFIG Release)
endif()
if(NOT DEFINED DISPATCH)
    set(DISPATCH ON)
endif()

function(run_step what)
    message(STATUS "[packaging_${MODE}] ${what}: ${ARGN}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "[packaging_${MODE}] ${what} failed (${rc})")
    endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(consumer_args -DRECBLOCKS_CONSUMER_DISPATCH=${DISPATCH} "-DRECBLOCKS_README=${SOURCE_DIR}/README.md")
if(MODE STREQUAL "install")
    set(prefix "${WORK_DIR}/prefix")
    run_step("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" --config "${CONFIG}")
    foreach(f lib/cmake/recblocks/recblocksConfig.cmake lib/cmake/recblocks/recblocksConfigVersion.cmake
              lib/cmake/recblocks/recblocksTargets.cmake lib/cmake/recblocks/recblocksDispatch.cmake
              lib/cmake/recblocks/dispatch/recblocks_dispatch_sse2.cpp
              lib/cmake/recblocks/dispatch/recblocks_dispatch_avx2.cpp
              lib/cmake/recblocks/dispatch/recblocks_dispatch_avx512.cpp
              include/recblocks/recblocks.hpp include/recblocks/version.hpp
              lib/pkgconfig/recblocks.pc share/doc/recblocks/LICENSE
              share/recblocks/layouts/pmixer_current.json)
        if(NOT EXISTS "${prefix}/${f}")
            message(FATAL_ERROR "[packaging_install] ${f} was not installed")
        endif()
    endforeach()
    # pkg-config finds the installed headers (and, through Requires, Eigen and xsimd).
    find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf)
    if(PKG_CONFIG_EXECUTABLE)
        set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig")
        execute_process(COMMAND "${PKG_CONFIG_EXECUTABLE}" --cflags recblocks RESULT_VARIABLE rc
                        OUTPUT_VARIABLE cflags ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
        file(REAL_PATH "${prefix}/include" want_include)
        string(FIND "${cflags}" "eigen3" has_eigen)
        if(NOT rc EQUAL 0 OR has_eigen EQUAL -1)
            message(FATAL_ERROR "[packaging_install] pkg-config --cflags recblocks failed (${rc}): ${cflags} ${err}")
        endif()
        execute_process(COMMAND "${PKG_CONFIG_EXECUTABLE}" --variable=includedir recblocks
                        OUTPUT_VARIABLE includedir OUTPUT_STRIP_TRAILING_WHITESPACE)
        file(REAL_PATH "${includedir}" got_include)
        if(NOT got_include STREQUAL want_include)
            message(FATAL_ERROR "[packaging_install] recblocks.pc's includedir is ${got_include}, not ${want_include}")
        endif()
        message(STATUS "[packaging_install] pkg-config --cflags recblocks: ${cflags}")
    endif()
    list(APPEND consumer_args -DRECBLOCKS_CONSUMER_MODE=find_package "-DCMAKE_PREFIX_PATH=${prefix}")
elseif(MODE STREQUAL "add_subdirectory")
    list(APPEND consumer_args -DRECBLOCKS_CONSUMER_MODE=add_subdirectory "-DRECBLOCKS_SOURCE_DIR=${SOURCE_DIR}")
else()
    message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

set(consumer_build "${WORK_DIR}/build")
run_step("configure" "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/packaging/consumer" -B "${consumer_build}"
         -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${CONFIG}" ${consumer_args})
run_step("build" "${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}" --parallel 2)
run_step("run" "${CTEST_COMMAND}" --test-dir "${consumer_build}" -C "${CONFIG}" --output-on-failure)
