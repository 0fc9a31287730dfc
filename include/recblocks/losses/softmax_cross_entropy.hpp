#pragma once
// Full-softmax cross-entropy over the whole catalogue (BERT4Rec's cloze loss,
// SASRec-CE). For every row r with target t_r != 0:
//
//   logits_r = hidden[r] · E[1..N]ᵀ (+ bias[1..N]);  loss = mean_r -log softmax(logits_r)[t_r]
//
// Rows are processed in chunks (the constructor's chunk_rows) so the
// [chunk, N] logits live in a reused scratch matrix, never [R, N]. d_hidden is
// overwritten (zero on ignored rows); d_table (rows 1..N) and d_bias
// accumulate (+=).
//
// The work runs on a backend, in its memory (host by default, CudaMemory on
// backend::Cuda): the counted rows and their targets are listed on the host
// (targets are checked there), copied once per call, and every chunk is a
// sequence of backend calls — gather the rows, the logits gemm, the fused
// log-sum-exp with its gradient in place (ops::softmax_cross_entropy), the
// bias gradient's column sums, the two gradient gemms and a scatter back.
#include <algorithm>
#include <cmath>
#include <string_view>
#include <type_traits>
#include <vector>

#include "recblocks/backend/memory.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/ops/softmax_cross_entropy.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace losses {

template <class T, MemorySpace Memory = HostMemory>
class SoftmaxCrossEntropy {
public:
    explicit SoftmaxCrossEntropy(index_t chunk_rows = 256, Memory memory = {})
        : chunk_(chunk_rows), rows_(memory), cols_(memory), zeros_(memory), logits_(memory), h_(memory), dh_(memory),
          colsum_(memory) {
        RECBLOCKS_CHECK_VALUE(chunk_rows >= 1, "SoftmaxCrossEntropy: chunk_rows must be >= 1, got ", chunk_rows);
    }
    /// A loss in `memory` with the default chunk of 256 rows.
    explicit SoftmaxCrossEntropy(Memory memory) : SoftmaxCrossEntropy(256, memory) {}

    /// hidden [R, D], table [N + 1, D] (row 0 = padding, never a class), bias
    /// [N + 1] or empty, d_hidden, d_table, d_bias (empty when bias is) in
    /// Memory; targets [R] in [0, N] (0 = ignore) in host memory. Returns the
    /// mean loss over the targets; throws ValueError on non-finite logits
    /// (the gradients are then incomplete: do not step on them). normalizer > 0
    /// divides by it instead of the count: this call is one part of a batch
    /// of `normalizer` targets (data-parallel granules) and returns its share.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    LossValue operator()(const Be& be, MatrixView<const T> hidden, MatrixView<const T> table, VectorView<const T> bias,
                         VectorView<const row_id_t> targets, MatrixView<T> d_hidden, MatrixView<T> d_table,
                         VectorView<T> d_bias, index_t normalizer = 0) {
        constexpr std::string_view op = "losses::SoftmaxCrossEntropy";
        const index_t rows = hidden.rows(), d = hidden.cols(), n = table.rows() - 1;
        RECBLOCKS_CHECK_SHAPE(table.cols() == d && n >= 1, op, ": table is ", table.shape(), " but hidden is ",
                              hidden.shape(), " (need [N + 1, D])");
        RECBLOCKS_CHECK_SHAPE(targets.size() == rows, op, ": targets is ", targets.shape(), " but hidden has ", rows,
                              " rows");
        RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape() && d_table.shape() == table.shape(), op,
                              ": d_hidden/d_table are ", d_hidden.shape(), "/", d_table.shape(),
                              " but hidden/table are ", hidden.shape(), "/", table.shape());
        RECBLOCKS_CHECK_SHAPE(!bias.data() || (bias.size() == n + 1 && d_bias.size() == n + 1), op, ": bias is ",
                              bias.shape(), " and d_bias ", d_bias.shape(), " but need [", n + 1, "]");
        const index_t count = list_targets(op, targets, n);
        if (zeros_.numel() != d) zeros_.resize(Shape<1>{{d}});
        ops::broadcast_rows(be, zeros_.cview(), T(0), d_hidden);
        if (count == 0) return {};
        RECBLOCKS_CHECK_VALUE(normalizer == 0 || normalizer >= count, op, ": normalizer ", normalizer,
                              " is smaller than this part's ", count, " targets");
        const index_t denominator = normalizer > 0 ? normalizer : count;
        upload(host_rows_, rows_);
        upload(host_cols_, cols_);
        const auto items = matrix_view<const T>(table.data() + table.ld(), n, d, table.ld());
        const auto d_items = matrix_view<T>(d_table.data() + d_table.ld(), n, d, d_table.ld());
        const auto item_bias = bias.data() ? vector_view<const T>(bias.data() + 1, n) : VectorView<const T>{};
        const index_t chunk = std::min(chunk_, count);
        if (logits_.extent(0) < chunk || logits_.extent(1) != n) logits_.resize(Shape<2>{{chunk, n}});
        if (h_.extent(0) < chunk || h_.extent(1) != d) {
            h_.resize(Shape<2>{{chunk, d}});
            dh_.resize(Shape<2>{{chunk, d}});
        }
        if (bias.data() && colsum_.numel() != n) colsum_.resize(Shape<1>{{n}});
        const T inv = static_cast<T>(1.0 / double(denominator));
        double total = 0;
        for (index_t c0 = 0; c0 < count; c0 += chunk) {
            const index_t m = std::min(chunk, count - c0);
            const auto rows_c = vector_view<const row_id_t>(rows_.data() + c0, m);
            auto h = h_.view().slice_rows(0, m);
            auto logits = logits_.view().slice_rows(0, m);
            auto dh = dh_.view().slice_rows(0, m);
            ops::gather_rows(be, hidden, rows_c, h);
            ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(h), items, T(0), logits);
            const double part = ops::softmax_cross_entropy(be, logits, item_bias,
                                                           vector_view<const row_id_t>(cols_.data() + c0, m), inv);
            RECBLOCKS_CHECK_VALUE(std::isfinite(part), op, ": non-finite logits among the ", m,
                                  " counted rows from row ", first_row_of_chunk(c0), " on (their loss sum is ", part,
                                  ")");
            total += part;
            if (bias.data()) {  // d_bias[1..N] += column sums of dlogits
                ops::sum_rows(be, MatrixView<const T>(logits), colsum_.view());
                const auto db = matrix_view(d_bias.data() + 1, 1, n);
                ops::add(be, MatrixView<const T>(db), matrix_view<const T>(colsum_.data(), 1, n), db);
            }
            ops::gemm(be, Trans::no, Trans::no, T(1), MatrixView<const T>(logits), items, T(0), dh);
            ops::gemm(be, Trans::yes, Trans::no, T(1), MatrixView<const T>(logits), MatrixView<const T>(h), T(1), d_items);
            // The rows are distinct and d_hidden is zero there: the scatter is a copy.
            ops::scatter_add_rows(be, MatrixView<const T>(dh), rows_c, d_hidden);
        }
        return {total * (1.0 / double(denominator)), count};
    }

private:
    /// The counted rows and their targets as columns of the items' logits
    /// (t - 1); checks every target. Returns how many rows count.
    index_t list_targets(std::string_view op, VectorView<const row_id_t> targets, index_t n) {
        host_rows_.clear();
        host_cols_.clear();
        for (index_t r = 0; r < targets.size(); ++r) {
            RECBLOCKS_CHECK_INDEX(targets(r) >= 0 && targets(r) <= n, op, ": targets[", r, "] = ", targets(r),
                                  " is outside [0, ", n, "]");
            if (targets(r) == 0) continue;
            host_rows_.push_back(static_cast<row_id_t>(r));
            host_cols_.push_back(targets(r) - 1);
        }
        return static_cast<index_t>(host_rows_.size());
    }
    [[nodiscard]] index_t first_row_of_chunk(index_t c0) const { return host_rows_[static_cast<std::size_t>(c0)]; }

    /// Copies a host list into the front of dst, which only grows (a step
    /// with fewer targets than an earlier one allocates nothing).
    static void upload(const std::vector<row_id_t>& host, Vector<row_id_t, Memory>& dst) {
        const auto n = static_cast<index_t>(host.size());
        if (dst.numel() < n) dst.resize(Shape<1>{{n}});
        dst.memory().upload(dst.data(), host.data(), host.size() * sizeof(row_id_t));
    }

    index_t chunk_;
    std::vector<row_id_t> host_rows_, host_cols_;
    Vector<row_id_t, Memory> rows_, cols_;  // counted rows of hidden; their targets' columns (t - 1)
    Vector<T, Memory> zeros_;
    Matrix<T, Memory> logits_, h_, dh_;
    Vector<T, Memory> colsum_;
};

}  // namespace losses
RECBLOCKS_NAMESPACE_END
