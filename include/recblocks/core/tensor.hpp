#pragma once
// Tensor: owning, contiguous, row-major, 64-byte aligned storage with a shape.
// Public functions take TensorView; a Tensor hands out views of itself.
#include <cstdint>
#include <initializer_list>

#include "recblocks/core/aligned_buffer.hpp"
#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN

template <class T, std::size_t Rank>
class Tensor {
public:
    Tensor() = default;
    /// A zero-filled tensor of `shape`.
    explicit Tensor(Shape<Rank> shape) { resize(shape); }

    /// Reshapes to `shape` and zero-fills (contents are not kept).
    void resize(Shape<Rank> shape) {
        index_t n = 1;
        for (std::size_t i = 0; i < Rank; ++i) {
            RECBLOCKS_CHECK_SHAPE(shape[i] >= 0, "Tensor: negative extent in shape ", shape);
            RECBLOCKS_CHECK_VALUE(!__builtin_mul_overflow(n, shape[i], &n) &&
                                      n <= PTRDIFF_MAX / static_cast<index_t>(sizeof(T)),
                                  "Tensor: shape ", shape, " has more elements than memory can address");
        }
        buffer_.resize(shape.numel());
        shape_ = shape;
    }

    [[nodiscard]] TensorView<T, Rank> view() { return {buffer_.data(), shape_}; }
    [[nodiscard]] TensorView<const T, Rank> view() const { return {buffer_.data(), shape_}; }
    [[nodiscard]] TensorView<const T, Rank> cview() const { return view(); }
    operator TensorView<T, Rank>() { return view(); }              // NOLINT(google-explicit-constructor)
    operator TensorView<const T, Rank>() const { return view(); }  // NOLINT(google-explicit-constructor)

    [[nodiscard]] T* data() { return buffer_.data(); }
    [[nodiscard]] const T* data() const { return buffer_.data(); }
    [[nodiscard]] const Shape<Rank>& shape() const { return shape_; }
    [[nodiscard]] index_t extent(std::size_t i) const { return shape_[i]; }
    [[nodiscard]] index_t numel() const { return shape_.numel(); }
    T* begin() { return buffer_.begin(); }
    T* end() { return buffer_.end(); }
    const T* begin() const { return buffer_.begin(); }
    const T* end() const { return buffer_.end(); }

    template <class... I>
        requires(sizeof...(I) == Rank)
    T& operator()(I... idx) { return view()(idx...); }
    template <class... I>
        requires(sizeof...(I) == Rank)
    const T& operator()(I... idx) const { return view()(idx...); }

private:
    AlignedBuffer<T> buffer_;
    Shape<Rank> shape_{};
};

template <class T>
using Matrix = Tensor<T, 2>;
template <class T>
using Vector = Tensor<T, 1>;

RECBLOCKS_NAMESPACE_END
