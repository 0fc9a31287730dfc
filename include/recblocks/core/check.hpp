#pragma once
// Check macros. RECBLOCKS_CHECK_* stay on in Release: they guard public entry
// points, where a bad argument must become a named error, not a crash.
// RECBLOCKS_DEBUG_ASSERT guards internal invariants and compiles away with NDEBUG.
#include <cassert>

#include "recblocks/core/error.hpp"

/// Throws `ErrorType` with the concatenated message parts when `cond` is false.
#define RECBLOCKS_CHECK(ErrorType, cond, ...)                                    \
    do {                                                                         \
        if (!(cond)) [[unlikely]]                                                \
            throw ::recblocks::ErrorType(::recblocks::detail::concat(__VA_ARGS__)); \
    } while (0)

#define RECBLOCKS_CHECK_SHAPE(cond, ...) RECBLOCKS_CHECK(ShapeError, cond, __VA_ARGS__)
#define RECBLOCKS_CHECK_INDEX(cond, ...) RECBLOCKS_CHECK(IndexError, cond, __VA_ARGS__)
#define RECBLOCKS_CHECK_VALUE(cond, ...) RECBLOCKS_CHECK(ValueError, cond, __VA_ARGS__)
#define RECBLOCKS_CHECK_FORMAT(cond, ...) RECBLOCKS_CHECK(FormatError, cond, __VA_ARGS__)

#define RECBLOCKS_DEBUG_ASSERT(cond) assert(cond)
