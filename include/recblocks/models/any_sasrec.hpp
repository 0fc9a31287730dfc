#pragma once
// SASRec with its norm placement chosen at run time: the placement is a
// template policy of models::SASRec (each block's forward is compiled for
// it), so a checkpoint layout read from a file picks one of the three
// instantiations here. What every placement shares (parameters, scoring,
// encoding) is forwarded; visit() reaches the concrete SASRec<T, Norm> for
// the rest (training, Matryoshka widths, staging for CUDA graphs).
#include <memory>
#include <utility>
#include <variant>

#include "recblocks/models/sasrec.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace models {

template <class T, MemorySpace Memory = HostMemory>
class AnySASRec {
public:
    AnySASRec(const SASRecConfig& cfg, policies::NormKind norm, const Rng& rng, Memory memory = {}) : norm_(norm) {
        switch (norm) {
            case policies::NormKind::query:
                model_ = std::make_unique<SASRec<T, policies::QueryNorm, Memory>>(cfg, rng, memory);
                return;
            case policies::NormKind::pre:
                model_ = std::make_unique<SASRec<T, policies::PreNorm, Memory>>(cfg, rng, memory);
                return;
            case policies::NormKind::post:
                model_ = std::make_unique<SASRec<T, policies::PostNorm, Memory>>(cfg, rng, memory);
                return;
        }
        RECBLOCKS_CHECK_VALUE(false, "AnySASRec: unknown norm placement ", static_cast<int>(norm));
    }

    [[nodiscard]] policies::NormKind norm() const { return norm_; }
    /// f(SASRec<T, Norm, Memory>&) for the placement chosen at construction.
    template <class F>
    decltype(auto) visit(F&& f) {
        return std::visit([&](auto& m) -> decltype(auto) { return f(*m); }, model_);
    }
    template <class F>
    decltype(auto) visit(F&& f) const {
        return std::visit([&](const auto& m) -> decltype(auto) { return f(std::as_const(*m)); }, model_);
    }

    [[nodiscard]] const SASRecConfig& config() const {
        return visit([](const auto& m) -> const SASRecConfig& { return m.config(); });
    }
    [[nodiscard]] const ParamList<T, Memory>& params() const {
        return visit([](const auto& m) -> const ParamList<T, Memory>& { return m.params(); });
    }
    /// SASRec::score_all: scores [B, N + 1] of left-padded ids [B, L]; column 0 = -inf.
    template <class Be>
    void score_all(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, MatrixView<T> scores) {
        visit([&](auto& m) { m.score_all(be, pool, ids, scores); });
    }
    /// SASRec::encode_last: out [B, D], the final hidden state at the last slot.
    template <class Be>
    void encode_last(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, MatrixView<T> out) {
        visit([&](auto& m) { m.encode_last(be, pool, ids, out); });
    }

private:
    policies::NormKind norm_;
    std::variant<std::unique_ptr<SASRec<T, policies::QueryNorm, Memory>>,
                 std::unique_ptr<SASRec<T, policies::PreNorm, Memory>>,
                 std::unique_ptr<SASRec<T, policies::PostNorm, Memory>>>
        model_;
};

}  // namespace models
RECBLOCKS_NAMESPACE_END
