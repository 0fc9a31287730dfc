#pragma once
// Eigen's GEMM compiled for one ISA, for the runtime-dispatch translation
// units only (dispatch_instantiate.hpp). Those include Eigen with its
// namespace renamed per ISA (#define Eigen recblocks_eigen_<isa>), so the
// AVX-512 and SSE2 instantiations of Eigen's templates get different symbol
// names and the linker cannot mix them up; the kernel itself has internal
// linkage for the same reason.
#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {
namespace {

/// Eigen's cache blocking (kc, mc, nc from its own heuristic) with the packing
/// buffers in a per-thread buffer that only ever grows: Eigen's own GEMM
/// allocates and frees them on every call, and large frees give the pages back
/// to the OS, so every call paid page faults again.
template <class T>
class ReusedBlocking : public Eigen::internal::level3_blocking<T, T> {
public:
    ReusedBlocking(index_t rows, index_t cols, index_t depth) {
        index_t k = depth, m = rows, n = cols;
        Eigen::internal::computeProductBlockingSizes<T, T, 1>(k, m, n, index_t{1});
        this->m_kc = k;
        this->m_mc = m;
        this->m_nc = n;
        const std::size_t size_a = static_cast<std::size_t>(k * m), size_b = static_cast<std::size_t>(k * n);
        // 64-byte aligned pieces; +16 elements of slack for the alignment.
        thread_local std::vector<T> buffer;
        const std::size_t pad_a = (size_a + 15) / 16 * 16;
        if (buffer.size() < pad_a + size_b + 16) buffer.resize(pad_a + size_b + 16);
        T* base = buffer.data();
        const auto misalign = reinterpret_cast<std::uintptr_t>(base) % 64;
        if (misalign) base += (64 - misalign) / sizeof(T);
        this->m_blockA = base;
        this->m_blockB = base + pad_a;
    }
};

/// Up to this many rows of C, products are computed as matrix-vector products.
constexpr index_t kGemvRows = 2;

/// c = alpha * op(a) * op(b) + beta * c on row-major blocks (single thread),
/// through Eigen's blocked GEMM core. Row-major C = op(A) op(B) is computed as
/// the column-major product Cᵀ = op(B)ᵀ op(A)ᵀ, which reads the same memory.
template <class T>
void gemm_kernel(bool ta, bool tb, T alpha, const T* a, index_t a_rows, index_t a_cols, index_t lda, const T* b,
                 index_t b_rows, index_t b_cols, index_t ldb, T beta, T* c, index_t c_rows, index_t c_cols,
                 index_t ldc) {
    (void)b_rows;
    const index_t m = c_rows, n = c_cols, k = ta ? a_rows : a_cols;
    (void)a_cols;
    if (m == 0 || n == 0) return;
    for (index_t i = 0; i < m; ++i) {
        T* row = c + i * ldc;
        if (beta == T(0)) std::fill(row, row + n, T(0));
        else if (beta != T(1))
            for (index_t j = 0; j < n; ++j) row[j] *= beta;
    }
    if (k == 0 || alpha == T(0)) return;
    (void)b_cols;
    if (m <= kGemvRows) {
        // A few rows (serving one user, scoring a catalogue): matrix-vector
        // products. Packing op(B) for a blocked GEMM would copy the whole item
        // table on every call, which cost more than the product itself.
        using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
        using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        using ConstMat = Eigen::Map<const RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
        // c_i (as a column) = op(B)ᵀ a_i: B itself when tb (B is [n x k]), Bᵀ otherwise.
        const ConstMat B(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
        T* a_row = nullptr;
        thread_local std::vector<T> strided;  // op(A) row gathered when A is transposed
        if (ta && strided.size() < static_cast<std::size_t>(k)) strided.resize(static_cast<std::size_t>(k));
        for (index_t i = 0; i < m; ++i) {
            if (ta) {
                for (index_t j = 0; j < k; ++j) strided[static_cast<std::size_t>(j)] = a[i + j * lda];
                a_row = strided.data();
            }
            const Eigen::Map<const Vec> ai(ta ? a_row : a + i * lda, k);
            Eigen::Map<Vec> ci(c + i * ldc, n);
            if (tb) ci.noalias() += alpha * (B * ai);
            else ci.noalias() += alpha * (B.transpose() * ai);
        }
        return;
    }
    ReusedBlocking<T> blocking(n, m, k);
    using Eigen::ColMajor;
    using Eigen::RowMajor;
    // Column-major problem: [n x k] (op(B)ᵀ) times [k x m] (op(A)ᵀ) into [n x m] with stride ldc.
    auto run = [&](auto lhs_order, auto rhs_order) {
        constexpr int LhsOrder = decltype(lhs_order)::value, RhsOrder = decltype(rhs_order)::value;
        Eigen::internal::general_matrix_matrix_product<index_t, T, LhsOrder, false, T, RhsOrder, false, ColMajor, 1>::run(
            n, m, k, b, ldb, a, lda, c, 1, ldc, alpha, blocking, nullptr);
    };
    using Col = std::integral_constant<int, ColMajor>;
    using Row = std::integral_constant<int, RowMajor>;
    if (!tb && !ta) run(Col{}, Col{});
    else if (!tb) run(Col{}, Row{});
    else if (!ta) run(Row{}, Col{});
    else run(Row{}, Row{});
}

}  // namespace
}  // namespace cpu
RECBLOCKS_NAMESPACE_END
