#pragma once
// The two integer types every header uses. Kept in a header with no other
// includes, so the per-ISA kernel translation units pull in as little shared
// inline code as possible (see backend/cpu/dispatch_instantiate.hpp).
#include <cstddef>
#include <cstdint>

#include "recblocks/version.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Signed index type for extents and offsets (the same as Eigen::Index).
using index_t = std::ptrdiff_t;

/// Item / row id type used by gather, scatter-add and top-k outputs.
using row_id_t = std::int32_t;

RECBLOCKS_NAMESPACE_END
