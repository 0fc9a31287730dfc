#pragma once
// What a trainer's granular (data-parallel) step shares with every other
// trainer's (docs/distributed.md): the gradients of this rank's granules kept
// side by side, their sum in granule order across ranks written back into the
// parameters' grads, the loss summed the same way; and the values the ranks
// compare before the first step (training data, parameters, initial weights).
// Host memory only: the parameters' grads are copied as plain arrays.
#include <algorithm>
#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "recblocks/distributed/communicator.hpp"
#include "recblocks/distributed/handshake.hpp"
#include "recblocks/params/parameter_list.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

template <class T>
class GranularGradients {
public:
    /// Sizes the buffers for k granules of `params` (allocates only when the size changes).
    void start(const ParamList<T>& params, index_t k) {
        numel_ = 0;
        for (const auto& p : params) numel_ += static_cast<std::size_t>(p.numel());
        grads_.resize(numel_ * static_cast<std::size_t>(k));
        summed_.resize(numel_);
        losses_.assign(static_cast<std::size_t>(k), 0.0);
    }
    /// Keeps the parameters' grads (one granule's gradient) and loss as granule j of this rank.
    void keep(index_t j, const ParamList<T>& params, double loss) {
        T* out = grads_.data() + static_cast<std::size_t>(j) * numel_;
        for (const auto& p : params) {
            std::copy_n(p.grad, p.numel(), out);
            out += p.numel();
        }
        losses_[static_cast<std::size_t>(j)] = loss;
    }
    /// Granule j is empty (past the end of a short last batch): it adds zeros.
    void skip(index_t j) {
        std::fill_n(grads_.data() + static_cast<std::size_t>(j) * numel_, numel_, T(0));
        losses_[static_cast<std::size_t>(j)] = 0.0;
    }
    /// Sums every rank's granules in granule order into the parameters' grads; returns the summed loss.
    template <distributed::Communicator Comm>
    double sum(Comm& comm, const ParamList<T>& params) {
        const auto t0 = std::chrono::steady_clock::now();
        comm.allreduce_sum_blocks(std::span<const T>(grads_), std::span<T>(summed_));
        double loss = 0;
        comm.allreduce_sum_blocks(std::span<const double>(losses_), std::span<double>(&loss, 1));
        seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const T* in = summed_.data();
        for (const auto& p : params) {
            std::copy_n(in, p.numel(), p.grad);
            in += p.numel();
        }
        return loss;
    }
    /// Seconds the last sum() spent in the collectives.
    [[nodiscard]] double last_seconds() const { return seconds_; }

private:
    std::size_t numel_ = 0;
    std::vector<T> grads_, summed_;  // [k, params] this rank's granules; [params] their sum over ranks
    std::vector<double> losses_;
    double seconds_ = 0;
};

/// The handshake fields every data-parallel trainer checks: the training data and the model's
/// parameters (names, sizes, and the initial weights' bits when they live in host memory).
template <class T, class Memory>
std::vector<distributed::HandshakeField> data_and_model_fields(const std::vector<std::vector<row_id_t>>& train,
                                                               const ParamList<T, Memory>& params) {
    using distributed::hash_bytes;
    std::uint64_t data = hash_bytes(nullptr, 0), interactions = 0;
    for (const auto& s : train) {
        const std::uint64_t n = s.size();
        data = hash_bytes(&n, sizeof n, data);
        data = hash_bytes(s.data(), s.size() * sizeof(row_id_t), data);
        interactions += n;
    }
    std::uint64_t layout = distributed::hash_string("params"), weights = hash_bytes(nullptr, 0);
    for (const auto& p : params) {
        layout = distributed::hash_string(p.name, layout);
        const auto n = static_cast<std::uint64_t>(p.numel());
        layout = hash_bytes(&n, sizeof n, layout);
        if constexpr (std::is_same_v<Memory, HostMemory>)
            weights = hash_bytes(p.value, static_cast<std::size_t>(p.numel()) * sizeof(T), weights);
    }
    return {{"training users", train.size()},
            {"training interactions", interactions},
            {"training data (hash)", data},
            {"model parameters (names and sizes)", layout},
            {"model weights at the start (hash)", weights},
            {"element size", sizeof(T)}};
}

}  // namespace train
RECBLOCKS_NAMESPACE_END
