#pragma once
// Eigen's GEMM compiled for one ISA, for the runtime-dispatch translation
// units only (dispatch_instantiate.hpp). Those include Eigen with its
// namespace renamed per ISA (#define Eigen recblocks_eigen_<isa>), so the
// AVX-512 and SSE2 instantiations of Eigen's templates get different symbol
// names and the linker cannot mix them up; the kernel itself has internal
// linkage for the same reason.
#include <Eigen/Core>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {
namespace {

/// c = alpha * op(a) * op(b) + beta * c on row-major blocks (single thread).
template <class T>
void gemm_kernel(bool ta, bool tb, T alpha, const T* a, index_t a_rows, index_t a_cols, index_t lda, const T* b,
                 index_t b_rows, index_t b_cols, index_t ldb, T beta, T* c, index_t c_rows, index_t c_cols,
                 index_t ldc) {
    using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using ConstMap = Eigen::Map<const RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
    using Map = Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
    const ConstMap A(a, a_rows, a_cols, Eigen::OuterStride<>(lda));
    const ConstMap B(b, b_rows, b_cols, Eigen::OuterStride<>(ldb));
    Map C(c, c_rows, c_cols, Eigen::OuterStride<>(ldc));
    auto product = [&](const auto& opa, const auto& opb) {
        if (beta == T(0)) {
            C.noalias() = alpha * opa * opb;
        } else {
            if (beta != T(1)) C *= beta;
            C.noalias() += alpha * opa * opb;
        }
    };
    if (!ta && !tb) product(A, B);
    else if (!ta) product(A, B.transpose());
    else if (!tb) product(A.transpose(), B);
    else product(A.transpose(), B.transpose());
}

}  // namespace
}  // namespace cpu
RECBLOCKS_NAMESPACE_END
