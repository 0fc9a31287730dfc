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
//
// The work runs on a backend, in its memory (host by default, CudaMemory on
// backend::Cuda): targets and negatives are checked and listed on the host
// and copied once per call; the logits [rows, 1 + M] are assembled by backend
// calls (gathers, row dots, one gemm, the accidental hits set to -inf by a
// scatter), passed through ops::softmax_cross_entropy with the target in
// column 0, and the gradients go back through scaled rows, two gemms and
// scatters.
#include <cmath>
#include <limits>
#include <string_view>
#include <type_traits>
#include <vector>

#include "recblocks/backend/memory.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/softmax_cross_entropy.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace losses {

template <class T, MemorySpace Memory = HostMemory>
class SampledSoftmax {
public:
    explicit SampledSoftmax(Memory memory = {})
        : rows_(memory), targets_(memory), negatives_(memory), hits_(memory), column0_(memory), zeros_(memory),
          neg_inf_(memory), h_(memory), e_t_(memory), e_neg_(memory), dh_(memory), de_(memory), d_neg_(memory),
          z_(memory), s0_(memory), lq_t_(memory), lq_neg_(memory), g0_(memory), bias_(memory) {}

    /// hidden [R, D], table [N + 1, D], log_q [N + 1] (log proposal
    /// probability of each item, entry 0 unused), d_hidden [R, D] and d_table
    /// [N + 1, D] in Memory; targets [R] in [0, N] (0 = ignore) and negatives
    /// [M >= 1] in [1, N] in host memory.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
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
        const index_t count = list_targets(op, targets, negatives, n);
        if (zeros_.numel() != d) zeros_.resize(Shape<1>{{d}});
        ops::broadcast_rows(be, zeros_.cview(), T(0), d_hidden);
        if (count == 0) return {};
        stage(count, m, d, negatives);
        const index_t w = m + 1;  // logits: the target in column 0, the negatives after it
        const auto log_q_rows = matrix_view<const T>(log_q.data(), n + 1, 1);
        auto z = z_.view();
        const auto col0 = MatrixView<T>(z.data(), Shape<2>{{count, 1}}, {w, 1});
        const auto zneg = MatrixView<T>(z.data() + 1, Shape<2>{{count, m}}, {w, 1});
        // z_0 = h · E[t] - log q(t)
        ops::gather_rows(be, hidden, rows_.cview(), h_.view());
        ops::gather_rows(be, table, targets_.cview(), e_t_.view());
        ops::row_dots(be, h_.cview(), e_t_.cview(), s0_.view());
        ops::gather_rows(be, log_q_rows, targets_.cview(), lq_t_.view());
        ops::scale_rows(be, lq_t_.cview(), VectorView<const T>{}, T(-1), lq_t_.view());
        ops::add(be, matrix_view<const T>(s0_.data(), count, 1), lq_t_.cview(), col0);
        // z_j = h · E[neg_j]; the bias row adds - log q(neg_j) (and 0 to column 0)
        ops::gather_rows(be, table, negatives_.cview(), e_neg_.view());
        ops::gemm(be, Trans::no, Trans::yes, T(1), h_.cview(), e_neg_.cview(), T(0), zneg);
        bias_.zero();
        ops::gather_rows(be, log_q_rows, negatives_.cview(), lq_neg_.view());
        ops::scale_rows(be, lq_neg_.cview(), VectorView<const T>{}, T(-1), matrix_view(bias_.data() + 1, m, 1));
        // Accidental hits leave the row's softmax: z = -inf there (probability and gradient 0).
        if (hits_.numel() > 0)
            ops::scatter_add_rows(be, neg_inf_.cview(), hits_.cview(), matrix_view(z.data(), count * w, 1));
        const double inv = 1.0 / double(count);
        const double total = ops::softmax_cross_entropy(be, z, bias_.cview(), column0_.cview(), static_cast<T>(inv));
        RECBLOCKS_CHECK_VALUE(std::isfinite(total), op, ": non-finite logits among the ", count,
                              " counted rows (their loss sum is ", total, ")");
        // dz_0 = g0 per row: dh = g0 E[t] + dz_neg E[neg];  dE[t] += g0 h;  dE[neg] += dz_negᵀ h.
        ops::copy(be, MatrixView<const T>(col0), g0_.view());
        const auto g0 = vector_view<const T>(g0_.data(), count);
        ops::scale_rows(be, e_t_.cview(), g0, T(1), dh_.view());
        ops::gemm(be, Trans::no, Trans::no, T(1), MatrixView<const T>(zneg), e_neg_.cview(), T(1), dh_.view());
        ops::scale_rows(be, h_.cview(), g0, T(1), de_.view());
        ops::scatter_add_rows(be, de_.cview(), targets_.cview(), d_table);
        ops::gemm(be, Trans::yes, Trans::no, T(1), MatrixView<const T>(zneg), h_.cview(), T(0), d_neg_.view());
        ops::scatter_add_rows(be, d_neg_.cview(), negatives_.cview(), d_table);
        ops::scatter_add_rows(be, dh_.cview(), rows_.cview(), d_hidden);
        return {total * inv, count};
    }

private:
    /// The counted rows, their targets and the flat logit index of every
    /// accidental hit (row i of the counted rows, negative j: i * (M + 1) + 1 + j).
    index_t list_targets(std::string_view op, VectorView<const row_id_t> targets, VectorView<const row_id_t> negatives,
                         index_t n) {
        host_rows_.clear();
        host_targets_.clear();
        host_hits_.clear();
        const index_t m = negatives.size();
        for (index_t r = 0; r < targets.size(); ++r) {
            const row_id_t t = targets(r);
            RECBLOCKS_CHECK_INDEX(t >= 0 && t <= n, op, ": targets[", r, "] = ", t, " is outside [0, ", n, "]");
            if (t == 0) continue;
            const auto i = static_cast<index_t>(host_rows_.size());
            for (index_t j = 0; j < m; ++j)
                if (negatives(j) == t) host_hits_.push_back(static_cast<row_id_t>(i * (m + 1) + 1 + j));
            host_rows_.push_back(static_cast<row_id_t>(r));
            host_targets_.push_back(t);
        }
        return static_cast<index_t>(host_rows_.size());
    }

    /// Copies the lists into Memory and sizes the scratch (reallocating only on a shape change).
    void stage(index_t count, index_t m, index_t d, VectorView<const row_id_t> negatives) {
        upload(host_rows_, rows_);
        upload(host_targets_, targets_);
        host_negatives_.assign(negatives.data(), negatives.data() + m);
        upload(host_negatives_, negatives_);
        upload(host_hits_, hits_);
        const auto hits = static_cast<index_t>(host_hits_.size());
        if (neg_inf_.extent(0) != hits) {
            neg_inf_.resize(Shape<2>{{hits, 1}});
            fill_from_host(neg_inf_, [](index_t) { return -std::numeric_limits<T>::infinity(); });
        }
        if (column0_.numel() != count) column0_.resize(Shape<1>{{count}});  // zeros: the target is column 0
        resize(h_, count, d);
        resize(e_t_, count, d);
        resize(dh_, count, d);
        resize(de_, count, d);
        resize(e_neg_, m, d);
        resize(d_neg_, m, d);
        resize(z_, count, m + 1);
        resize(lq_t_, count, 1);
        resize(lq_neg_, m, 1);
        resize(g0_, count, 1);
        if (s0_.numel() != count) s0_.resize(Shape<1>{{count}});
        if (bias_.numel() != m + 1) bias_.resize(Shape<1>{{m + 1}});
    }
    static void resize(Matrix<T, Memory>& t, index_t rows, index_t cols) {
        if (t.shape() != Shape<2>{{rows, cols}}) t.resize(Shape<2>{{rows, cols}});
    }
    static void upload(const std::vector<row_id_t>& host, Vector<row_id_t, Memory>& dst) {
        const auto n = static_cast<index_t>(host.size());
        if (dst.numel() != n) dst.resize(Shape<1>{{n}});
        dst.memory().upload(dst.data(), host.data(), host.size() * sizeof(row_id_t));
    }

    std::vector<row_id_t> host_rows_, host_targets_, host_negatives_, host_hits_;
    Vector<row_id_t, Memory> rows_, targets_, negatives_, hits_, column0_;
    Vector<T, Memory> zeros_;
    Matrix<T, Memory> neg_inf_;                         // [hits, 1] of -inf
    Matrix<T, Memory> h_, e_t_, e_neg_, dh_, de_, d_neg_;  // gathered rows and their gradients
    Matrix<T, Memory> z_;                               // logits [count, 1 + M], then their gradient
    Vector<T, Memory> s0_;
    Matrix<T, Memory> lq_t_, lq_neg_, g0_;              // [count | M, 1]
    Vector<T, Memory> bias_;                            // [1 + M]: 0, then -log q(neg_j)
};

}  // namespace losses
RECBLOCKS_NAMESPACE_END
