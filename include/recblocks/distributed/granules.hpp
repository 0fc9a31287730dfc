#pragma once
// How a data-parallel step divides its global batch: into granules of a fixed
// number of consecutive samples (independent of the rank count), granule g
// holding samples [g·granule, (g + 1)·granule) of the step's batch. Rank r of
// N owns granules [r·k, (r + 1)·k), k = batch / (granule · N): each rank reads
// only its granules' users, and the gradient is the ordered sum of the
// granules' gradients (ordered_sum.hpp), which no rank count changes. A short
// last batch of an epoch leaves trailing granules short or empty.
#include <algorithm>
#include <utility>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace distributed {

class GranulePlan {
public:
    /// batch: the global batch (all ranks); granule: samples per granule; ranks, rank: this process.
    GranulePlan(index_t batch, index_t granule, int ranks, int rank)
        : batch_(batch), granule_(granule), ranks_(ranks), rank_(rank) {
        constexpr std::string_view op = "distributed::GranulePlan";
        RECBLOCKS_CHECK_VALUE(ranks >= 1 && rank >= 0 && rank < ranks, op, ": rank ", rank, " of ", ranks);
        RECBLOCKS_CHECK_VALUE(granule >= 1 && batch >= 1 && batch % (granule * ranks) == 0, op,
                              ": the global batch (", batch, ") must be a multiple of the granule (", granule,
                              ") times the number of ranks (", ranks, ")");
    }
    [[nodiscard]] index_t granule() const { return granule_; }
    [[nodiscard]] index_t batch() const { return batch_; }
    /// Granules per rank (k) and in the whole batch.
    [[nodiscard]] index_t per_rank() const { return batch_ / (granule_ * ranks_); }
    [[nodiscard]] index_t total() const { return batch_ / granule_; }
    /// The j-th granule of this rank, as a global granule index.
    [[nodiscard]] index_t global_index(index_t j) const { return static_cast<index_t>(rank_) * per_rank() + j; }
    /// Samples [begin, end) of granule g in a step whose batch has `step_batch` samples (<= batch; the
    /// epoch's last step may be shorter); begin == end for an empty granule.
    [[nodiscard]] std::pair<index_t, index_t> samples(index_t g, index_t step_batch) const {
        const index_t b = std::min(g * granule_, step_batch), e = std::min((g + 1) * granule_, step_batch);
        return {b, e};
    }
    /// The dropout key of granule g of step `step`: a function of the global sample range only.
    [[nodiscard]] static std::uint64_t dropout_key(std::uint64_t step, index_t g) {
        return Rng(0x6772616e756c65ull /* "granule" */, step).substream(static_cast<std::uint64_t>(g)).stream();
    }

private:
    index_t batch_, granule_;
    int ranks_, rank_;
};

}  // namespace distributed
RECBLOCKS_NAMESPACE_END
