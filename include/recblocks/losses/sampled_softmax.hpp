#pragma once
// Sampled softmax with the log-Q correction (Bengio & Senecal; Yi et al.,
// RecSys 2019), for catalogues too large for the full softmax. One set of M
// negatives is shared by the whole batch (drawn by the caller from a proposal
// q, e.g. uniform or popularity). For every row r with target t_r != 0:
//
//   z_0 = h_r · E[t_r] - log q(t_r),   z_j = h_r · E[neg_j] - log q(neg_j)   (j = 1..M)
//   loss_r = -log softmax(z)_0,        loss = mean over the counted rows
//
// A negative equal to the row's target ("accidental hit") is removed from
// that row's softmax. With q uniform the correction cancels and this is the
// plain sampled softmax. d_hidden is overwritten; d_table accumulates (+=).
#include <cmath>
#include <limits>
#include <vector>

#include "recblocks/core/tensor.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/ops/gemm.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace losses {

template <class T>
class SampledSoftmax {
public:
    /// hidden [R, D]; table [N + 1, D]; targets [R] in [0, N] (0 = ignore);
    /// negatives [M >= 1] in [1, N]; log_q [N + 1]: log proposal probability of
    /// each item (entry 0 unused); d_hidden [R, D]; d_table [N + 1, D].
    template <class Be>
    LossValue operator()(const Be& be, MatrixView<const T> hidden, MatrixView<const T> table,
                         VectorView<const row_id_t> targets, VectorView<const row_id_t> negatives,
                         VectorView<const T> log_q, MatrixView<T> d_hidden, MatrixView<T> d_table) {
        constexpr std::string_view op = "losses::SampledSoftmax";
        const index_t rows = hidden.rows(), d = hidden.cols(), n = table.rows() - 1, m = negatives.size();
        RECBLOCKS_CHECK_SHAPE(table.cols() == d && n >= 1, op, ": table is ", table.shape(), " but hidden is ",
                              hidden.shape(), " (need [N + 1, D])");
        RECBLOCKS_CHECK_SHAPE(targets.size() == rows && m >= 1 && log_q.size() == n + 1, op, ": targets is ",
                              targets.shape(), ", negatives ", negatives.shape(), ", log_q ", log_q.shape(),
                              " but need [", rows, "], [M >= 1], [", n + 1, "]");
        RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape() && d_table.shape() == table.shape(), op,
                              ": d_hidden/d_table are ", d_hidden.shape(), "/", d_table.shape(),
                              " but hidden/table are ", hidden.shape(), "/", table.shape());
        for (index_t j = 0; j < m; ++j) detail::check_id(op, "negatives", j, -1, negatives(j), n + 1);
        index_t count = 0;
        for (index_t r = 0; r < rows; ++r) {
            RECBLOCKS_CHECK_INDEX(targets(r) >= 0 && targets(r) <= n, op, ": targets[", r, "] = ", targets(r),
                                  " is outside [0, ", n, "]");
            count += targets(r) != 0;
        }
        for (index_t r = 0; r < rows; ++r) std::fill(d_hidden.row(r), d_hidden.row(r) + d, T(0));
        if (count == 0) return {};
        if (neg_.extent(0) != m || neg_.extent(1) != d) {
            neg_.resize(Shape<2>{{m, d}});
            d_neg_.resize(Shape<2>{{m, d}});
        }
        if (z_.extent(0) != rows || z_.extent(1) != m) z_.resize(Shape<2>{{rows, m}});
        for (index_t j = 0; j < m; ++j) std::copy(table.row(negatives(j)), table.row(negatives(j)) + d, neg_.view().row(j));
        ops::gemm(be, Trans::no, Trans::yes, T(1), hidden, neg_.cview(), T(0), z_.view());  // h · E[neg]
        const double inv = 1.0 / double(count);
        double total = 0;
        std::fill(d_neg_.begin(), d_neg_.end(), T(0));
        auto zs = z_.view();
        for (index_t r = 0; r < rows; ++r) {
            const index_t t = targets(r);
            T* z = zs.row(r);
            if (t == 0) {
                std::fill(z, z + m, T(0));
                continue;
            }
            const double z0 = detail::dot(hidden.row(r), table.row(t), d) - double(log_q(t));
            double mx = z0;
            for (index_t j = 0; j < m; ++j) {
                const bool hit = negatives(j) == t;
                const double zj = hit ? -std::numeric_limits<double>::infinity() : double(z[j]) - double(log_q(negatives(j)));
                mx = std::max(mx, zj);
            }
            double sum = std::exp(z0 - mx);
            for (index_t j = 0; j < m; ++j)
                if (negatives(j) != t) sum += std::exp(double(z[j]) - double(log_q(negatives(j))) - mx);
            RECBLOCKS_CHECK_VALUE(std::isfinite(sum) && std::isfinite(mx), op, ": non-finite logits in row ", r);
            total += std::log(sum) + mx - z0;
            // dz_0 = (p_0 - 1) / count, dz_j = p_j / count; z becomes dz for the negatives.
            const T g0 = static_cast<T>((std::exp(z0 - mx) / sum - 1.0) * inv);
            for (index_t j = 0; j < m; ++j)
                z[j] = negatives(j) == t
                           ? T(0)
                           : static_cast<T>(std::exp(double(z[j]) - double(log_q(negatives(j))) - mx) / sum * inv);
            const T* e = table.row(t);
            const T* h = hidden.row(r);
            T* dh = d_hidden.row(r);
            T* de = d_table.row(t);
            for (index_t c = 0; c < d; ++c) {
                dh[c] += g0 * e[c];
                de[c] += g0 * h[c];
            }
        }
        ops::gemm(be, Trans::no, Trans::no, T(1), z_.cview(), neg_.cview(), T(1), d_hidden);       // dh += dz E[neg]
        ops::gemm(be, Trans::yes, Trans::no, T(1), z_.cview(), hidden, T(0), d_neg_.view());       // dE[neg] = dzᵀ h
        for (index_t j = 0; j < m; ++j) {
            T* de = d_table.row(negatives(j));
            const T* g = d_neg_.view().row(j);
            for (index_t c = 0; c < d; ++c) de[c] += g[c];
        }
        return {total * inv, count};
    }

private:
    Matrix<T> neg_, d_neg_, z_;
};

}  // namespace losses
RECBLOCKS_NAMESPACE_END
