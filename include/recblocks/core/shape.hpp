#pragma once
// Shapes: a fixed-rank array of extents, row-major (last index fastest), as in
// NumPy and PyTorch so that golden files line up element for element.
#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Extents of a rank-`Rank` tensor.
template <std::size_t Rank>
struct Shape {
    std::array<index_t, Rank> extents{};

    [[nodiscard]] constexpr index_t operator[](std::size_t i) const { return extents[i]; }
    [[nodiscard]] constexpr index_t& operator[](std::size_t i) { return extents[i]; }
    /// Product of all extents (1 for rank 0).
    [[nodiscard]] constexpr index_t numel() const {
        index_t n = 1;
        for (index_t e : extents) n *= e;
        return n;
    }
    friend constexpr bool operator==(const Shape&, const Shape&) = default;
};

template <class... E>
Shape(E...) -> Shape<sizeof...(E)>;

template <std::size_t Rank>
std::ostream& operator<<(std::ostream& os, const Shape<Rank>& s) {
    os << '[';
    for (std::size_t i = 0; i < Rank; ++i) os << (i ? ", " : "") << s.extents[i];
    return os << ']';
}

/// "[4, 50, 64]" — the form every shape appears in within error messages.
template <std::size_t Rank>
std::string to_string(const Shape<Rank>& s) {
    std::ostringstream os;
    os << s;
    return os.str();
}

RECBLOCKS_NAMESPACE_END
