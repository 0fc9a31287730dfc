#pragma once
// Element-wise activations (ReLU, GELU with erf) and their backward.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// y [R, C] = act(x [R, C]); y may alias x.
template <class B, class T>
void activation_forward(const B& be, Activation act, std::type_identity_t<MatrixView<const T>> x, MatrixView<T> y) {
    constexpr std::string_view op = "ops::activation_forward";
    detail::check_layout(op, "x", x);
    detail::check_layout(op, "y", y);
    detail::check_same_shape(op, "x", x, "y", y);
    if (x.empty()) return;
    Primitives<B>::template activation_forward<T>(be, act, x, y);
}

/// dx [R, C] = dy * act'(x), from the forward *input* x; dx may alias dy.
template <class B, class T>
void activation_backward(const B& be, Activation act, std::type_identity_t<MatrixView<const T>> x,
                         std::type_identity_t<MatrixView<const T>> dy, MatrixView<T> dx) {
    constexpr std::string_view op = "ops::activation_backward";
    detail::check_layout(op, "x", x);
    detail::check_layout(op, "dy", dy);
    detail::check_layout(op, "dx", dx);
    detail::check_same_shape(op, "x", x, "dy", dy);
    detail::check_same_shape(op, "x", x, "dx", dx);
    if (x.empty()) return;
    Primitives<B>::template activation_backward<T>(be, act, x, dy, dx);
}

template <class B, class T>
void relu_forward(const B& be, std::type_identity_t<MatrixView<const T>> x, MatrixView<T> y) {
    activation_forward<B, T>(be, Activation::relu, x, y);
}
template <class B, class T>
void relu_backward(const B& be, std::type_identity_t<MatrixView<const T>> x,
                   std::type_identity_t<MatrixView<const T>> dy, MatrixView<T> dx) {
    activation_backward<B, T>(be, Activation::relu, x, dy, dx);
}
template <class B, class T>
void gelu_forward(const B& be, std::type_identity_t<MatrixView<const T>> x, MatrixView<T> y) {
    activation_forward<B, T>(be, Activation::gelu, x, y);
}
template <class B, class T>
void gelu_backward(const B& be, std::type_identity_t<MatrixView<const T>> x,
                   std::type_identity_t<MatrixView<const T>> dy, MatrixView<T> dx) {
    activation_backward<B, T>(be, Activation::gelu, x, dy, dx);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
