# recblocksDispatch.cmake — opt-in runtime ISA dispatch for recblocks.
#
#   recblocks_enable_runtime_dispatch(<target>)
#
# Adds the three kernel units
#   recblocks_dispatch_sse2.cpp, recblocks_dispatch_avx2.cpp, recblocks_dispatch_avx512.cpp
# (src/dispatch/ in the source tree, dispatch/ beside this file when installed),
# each of which expands RECBLOCKS_DEFINE_CPU_KERNEL_TABLES(<isa>) (the xsimd
# kernels and Eigen's GEMM, Eigen's namespace renamed per ISA) from
# recblocks/backend/cpu/dispatch_instantiate.hpp, to <target>'s sources and
# compiles each one (and only that one) with its ISA's flags. Without these
# units a program that uses backend::Cpu<isa::Dispatch> does not compile (a
# static_assert names what to add); docs/backends.md shows the same by hand. The
# library then picks the best table the CPU supports at run time
# (backend::Cpu<isa::Dispatch>); RECBLOCKS_FORCE_ISA=sse2|avx2|avx512 lowers it.
#
# Rules:
#   * <target> must link recblocks::recblocks (the generated TUs need its
#     include directories, Eigen and xsimd); the call order does not matter.
#   * Call it on exactly one target per final binary (an executable, a shared
#     library, or an OBJECT/STATIC library that is linked once): the generated
#     TUs define non-inline functions.
#   * The target's own flags are untouched: never add -march to it for the
#     sake of dispatch.
#   * The unit files are appended after the target's own sources and in
#     the order sse2, avx2, avx512, so where an inline function (of the standard
#     library, Eigen, ...) is emitted by several TUs, the linker keeps the copy
#     compiled for the lowest ISA (GNU ld and lld keep the first definition).
#   * <target> gets the compile definition RECBLOCKS_HAS_RUNTIME_DISPATCH=1
#     (PUBLIC, so it also reaches executables that link an OBJECT library).
#
# Works in-tree (the recblocks project includes this file) and for installed
# consumers (recblocksConfig.cmake includes it).
include_guard(GLOBAL)

function(recblocks_enable_runtime_dispatch target)
    if(NOT TARGET ${target})
        message(FATAL_ERROR "recblocks_enable_runtime_dispatch: '${target}' is not a target")
    endif()
    get_target_property(_already ${target} RECBLOCKS_RUNTIME_DISPATCH)
    if(_already)
        return()
    endif()

    if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|x64|i.86)$")
        message(WARNING "recblocks_enable_runtime_dispatch(${target}): runtime dispatch needs x86-64 "
                        "(CMAKE_SYSTEM_PROCESSOR is '${CMAKE_SYSTEM_PROCESSOR}'); not enabled")
        return()
    endif()

    if(MSVC AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
        set(_flags_sse2 "")
        set(_flags_avx2 "/arch:AVX2")
        set(_flags_avx512 "/arch:AVX512")
    else()
        set(_flags_sse2 "-msse2")
        set(_flags_avx2 "-mavx2;-mfma")
        set(_flags_avx512 "-mavx512f;-mavx512cd;-mavx512bw;-mavx512dq;-mavx512vl;-mavx2;-mfma")
        if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
            # GCC 12's avx512fintrin.h trips -W(maybe-)uninitialized on its own
            # _mm512_undefined_* placeholders (GCC bug 105593).
            list(APPEND _flags_avx512 -Wno-uninitialized -Wno-maybe-uninitialized)
        endif()
    endif()

    # The unit sources sit beside this file when installed, in src/dispatch in the source tree.
    set(_dir "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/dispatch")
    if(NOT EXISTS "${_dir}/recblocks_dispatch_sse2.cpp")
        get_filename_component(_dir "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/../src/dispatch" ABSOLUTE)
    endif()
    foreach(_isa IN ITEMS sse2 avx2 avx512)
        set(_file "${_dir}/recblocks_dispatch_${_isa}.cpp")
        if(NOT EXISTS "${_file}")
            message(FATAL_ERROR "recblocks_enable_runtime_dispatch: ${_file} is missing (a broken install?)")
        endif()
        target_sources(${target} PRIVATE "${_file}")
        set_source_files_properties("${_file}" TARGET_DIRECTORY ${target}
                                    PROPERTIES COMPILE_OPTIONS "${_flags_${_isa}}"
                                               SKIP_UNITY_BUILD_INCLUSION ON
                                               SKIP_PRECOMPILE_HEADERS ON)
    endforeach()

    target_compile_definitions(${target} PUBLIC RECBLOCKS_HAS_RUNTIME_DISPATCH=1)
    set_property(TARGET ${target} PROPERTY RECBLOCKS_RUNTIME_DISPATCH ON)
endfunction()
