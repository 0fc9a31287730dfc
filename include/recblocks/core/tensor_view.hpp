#pragma once
// TensorView: a non-owning, trivially copyable view of row-major memory.
// Only the outermost dimensions may be strided; the last dimension is always
// contiguous (stride 1), which is what every SIMD kernel relies on. A 2-D view
// may therefore describe a block of a larger matrix through its leading
// dimension `ld()` (BLAS convention).
#include <array>
#include <cstddef>
#include <span>
#include <type_traits>

#include "recblocks/core/check.hpp"
#include "recblocks/core/shape.hpp"

RECBLOCKS_NAMESPACE_BEGIN

template <class T, std::size_t Rank>
class TensorView {
    static_assert(Rank >= 1, "TensorView needs rank >= 1");

public:
    using value_type = std::remove_const_t<T>;
    using element_type = T;

    constexpr TensorView() = default;

    /// Contiguous row-major view of `shape` at `data`.
    constexpr TensorView(T* data, Shape<Rank> shape) : data_(data), shape_(shape) {
        index_t s = 1;
        for (std::size_t i = Rank; i-- > 0;) {
            strides_[i] = s;
            s *= shape_[i];
        }
    }

    /// Strided view; `strides[Rank-1]` must be 1 and strides are in elements.
    constexpr TensorView(T* data, Shape<Rank> shape, std::array<index_t, Rank> strides)
        : data_(data), shape_(shape), strides_(strides) {
        RECBLOCKS_CHECK_SHAPE(strides_[Rank - 1] == 1,
                              "TensorView: the last dimension must be contiguous (stride 1), got stride ",
                              strides_[Rank - 1]);
    }

    /// A view of mutable data converts to a view of const data.
    template <class U>
        requires(std::is_const_v<T> && std::is_same_v<std::remove_const_t<T>, U>)
    constexpr TensorView(const TensorView<U, Rank>& other)  // NOLINT(google-explicit-constructor)
        : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

    [[nodiscard]] constexpr T* data() const { return data_; }
    [[nodiscard]] constexpr const Shape<Rank>& shape() const { return shape_; }
    [[nodiscard]] constexpr const std::array<index_t, Rank>& strides() const { return strides_; }
    [[nodiscard]] constexpr index_t extent(std::size_t i) const { return shape_[i]; }
    [[nodiscard]] constexpr index_t numel() const { return shape_.numel(); }
    [[nodiscard]] constexpr bool empty() const { return numel() == 0; }
    static constexpr std::size_t rank() { return Rank; }

    /// True when the elements are densely packed in row-major order.
    [[nodiscard]] constexpr bool is_contiguous() const {
        index_t s = 1;
        for (std::size_t i = Rank; i-- > 0;) {
            if (shape_[i] != 1 && strides_[i] != s) return false;
            s *= shape_[i];
        }
        return true;
    }

    // 2-D conveniences (matrices: rows × cols with leading dimension ld).
    [[nodiscard]] constexpr index_t rows() const requires(Rank == 2) { return shape_[0]; }
    [[nodiscard]] constexpr index_t cols() const requires(Rank == 2) { return shape_[1]; }
    [[nodiscard]] constexpr index_t ld() const requires(Rank == 2) { return strides_[0]; }
    /// Pointer to the first element of row `r` of a matrix.
    [[nodiscard]] constexpr T* row(index_t r) const requires(Rank == 2) { return data_ + r * strides_[0]; }

    // 1-D conveniences.
    [[nodiscard]] constexpr index_t size() const requires(Rank == 1) { return shape_[0]; }
    [[nodiscard]] constexpr std::span<T> span() const requires(Rank == 1) {
        return {data_, static_cast<std::size_t>(shape_[0])};
    }

    /// Element access (unchecked, like operator[] on std::vector).
    template <class... I>
        requires(sizeof...(I) == Rank)
    [[nodiscard]] constexpr T& operator()(I... idx) const {
        const std::array<index_t, Rank> ix{static_cast<index_t>(idx)...};
        index_t off = 0;
        for (std::size_t i = 0; i < Rank; ++i) off += ix[i] * strides_[i];
        return data_[off];
    }

    /// Sub-view `[i]` along the first dimension (rank drops by one).
    [[nodiscard]] constexpr TensorView<T, Rank - 1> operator[](index_t i) const requires(Rank > 1) {
        Shape<Rank - 1> s;
        std::array<index_t, Rank - 1> st{};
        for (std::size_t d = 1; d < Rank; ++d) {
            s[d - 1] = shape_[d];
            st[d - 1] = strides_[d];
        }
        return TensorView<T, Rank - 1>(data_ + i * strides_[0], s, st);
    }

    /// Rows [begin, end) along the first dimension.
    [[nodiscard]] constexpr TensorView slice_rows(index_t begin, index_t end) const {
        Shape<Rank> s = shape_;
        s[0] = end - begin;
        return TensorView(data_ + begin * strides_[0], s, strides_);
    }

private:
    T* data_ = nullptr;
    Shape<Rank> shape_{};
    std::array<index_t, Rank> strides_{};
};

template <class T>
using MatrixView = TensorView<T, 2>;
template <class T>
using VectorView = TensorView<T, 1>;

/// View a contiguous buffer as a vector.
template <class T>
constexpr TensorView<T, 1> vector_view(T* data, index_t n) {
    return TensorView<T, 1>(data, Shape<1>{{n}});
}
/// View a contiguous row-major buffer as a rows × cols matrix.
template <class T>
constexpr TensorView<T, 2> matrix_view(T* data, index_t rows, index_t cols) {
    return TensorView<T, 2>(data, Shape<2>{{rows, cols}});
}
/// View a row-major block with leading dimension `ld` (>= cols) as a matrix.
template <class T>
constexpr TensorView<T, 2> matrix_view(T* data, index_t rows, index_t cols, index_t ld) {
    return TensorView<T, 2>(data, Shape<2>{{rows, cols}}, {ld, 1});
}

RECBLOCKS_NAMESPACE_END
