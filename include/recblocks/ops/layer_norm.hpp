#pragma once
// Layer normalisation over the last dimension (D) of each row:
//   y = (x - mean) * rstd * gamma + beta,  rstd = 1 / sqrt(var + eps)
// with the biased variance (divide by D), as nn.LayerNorm.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// Forward. x, y [R, D]; gamma, beta [D]; mean, rstd [R] are saved for the
/// backward pass and may be empty views (no data) when none follows.
/// y may alias x. eps must be > 0 (SASRec uses 1e-8, PyTorch's default 1e-5).
template <class B, class T>
void layer_norm_forward(const B& be, std::type_identity_t<MatrixView<const T>> x,
                        std::type_identity_t<VectorView<const T>> gamma, std::type_identity_t<VectorView<const T>> beta,
                        T eps, MatrixView<T> y, VectorView<T> mean = {}, VectorView<T> rstd = {}) {
    constexpr std::string_view op = "ops::layer_norm_forward";
    detail::check_layout(op, "x", x);
    detail::check_layout(op, "y", y);
    detail::check_same_shape(op, "x", x, "y", y);
    detail::check_length(op, "gamma", gamma, x.cols(), "the row width D of x");
    detail::check_length(op, "beta", beta, x.cols(), "the row width D of x");
    if (mean.data()) detail::check_length(op, "mean", mean, x.rows(), "the row count of x");
    if (rstd.data()) detail::check_length(op, "rstd", rstd, x.rows(), "the row count of x");
    RECBLOCKS_CHECK_VALUE(eps > T(0), op, ": eps must be > 0, got ", eps);
    RECBLOCKS_CHECK_SHAPE(x.cols() > 0 || x.rows() == 0, op, ": rows of x have width 0");
    if (x.empty()) return;
    Primitives<B>::template layer_norm_forward<T>(be, x, gamma, beta, eps, y, mean, rstd);
}

/// Backward. From x [R, D], gamma [D], the saved mean and rstd [R] and the
/// upstream gradient dy [R, D]: writes dx [R, D] (overwritten) and ADDS the
/// parameter gradients into dgamma [D] and dbeta [D] (accumulated, so the
/// gradients of several calls sum up as in autograd).
template <class B, class T>
void layer_norm_backward(const B& be, std::type_identity_t<MatrixView<const T>> x,
                         std::type_identity_t<VectorView<const T>> gamma,
                         std::type_identity_t<VectorView<const T>> mean,
                         std::type_identity_t<VectorView<const T>> rstd,
                         std::type_identity_t<MatrixView<const T>> dy, MatrixView<T> dx, VectorView<T> dgamma,
                         VectorView<T> dbeta) {
    constexpr std::string_view op = "ops::layer_norm_backward";
    detail::check_layout(op, "x", x);
    detail::check_layout(op, "dy", dy);
    detail::check_layout(op, "dx", dx);
    detail::check_same_shape(op, "x", x, "dy", dy);
    detail::check_same_shape(op, "x", x, "dx", dx);
    detail::check_length(op, "gamma", gamma, x.cols(), "the row width D of x");
    detail::check_length(op, "dgamma", dgamma, x.cols(), "the row width D of x");
    detail::check_length(op, "dbeta", dbeta, x.cols(), "the row width D of x");
    detail::check_length(op, "mean", mean, x.rows(), "the row count of x");
    detail::check_length(op, "rstd", rstd, x.rows(), "the row count of x");
    if (x.empty()) return;
    Primitives<B>::template layer_norm_backward<T>(be, x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
