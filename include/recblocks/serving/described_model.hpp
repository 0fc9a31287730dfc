#pragma once
// A next-item model rebuilt from a self-describing checkpoint alone: the
// architecture from its metadata (models/model_description.hpp), the weights,
// and the item-id map (io/item_id_map.hpp), behind one small virtual
// interface so a server or a command-line tool needs no template per model
// kind and norm placement.
//
//   rb::ThreadPool pool(2);
//   const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
//   auto m = rb::serving::load_described_model("model.safetensors", be, pool);
//   m.scorer->score_all(ids, scores);          // ids [B, max_len] left-padded, scores [B, N + 1]
//   m.items.original(dense) / m.items.dense(source_id)
//
// A file without a description (saved before descriptions existed, or a
// PyTorch state_dict) is a FormatError saying so: those need their model
// flags (or io::load_pytorch_state).
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "recblocks/core/check.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/io/item_id_map.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/models/any_sasrec.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/incremental_sasrec.hpp"
#include "recblocks/models/model_description.hpp"
#include "recblocks/ops/top_k.hpp"
#include "recblocks/train/checkpoint.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace serving {

/// A per-user state kept between requests, for a model where an appended event
/// can be computed from the cached state exactly (a SASRec with positions
/// from_oldest and padded keys masked: models/incremental_sasrec.hpp). One
/// thread at a time (it holds the engine's scratch).
class IncrementalScorer {
public:
    using State = models::SASRecUserState<float>;
    virtual ~IncrementalScorer() = default;
    /// An empty state of this model's shape (allocates its key/value cache).
    [[nodiscard]] virtual State make_state() const = 0;
    /// Bytes one state holds (State::bytes() of make_state()).
    [[nodiscard]] virtual std::size_t state_bytes() const = 0;
    /// Sets state to the newest max_len items of history (one forward of that window; empty: no events).
    virtual void reset(State& state, std::span<const row_id_t> history) = 0;
    /// Appends items[b] to *states[b] (distinct states), all users' new rows together.
    virtual void append_batch(std::span<State* const> states, std::span<const row_id_t> items) = 0;
    /// scores [B, N + 1] of final states hidden [B, D] (State::hidden() rows); column 0 is -inf.
    virtual void score_hidden(MatrixView<const float> hidden, MatrixView<float> scores) = 0;
};

/// What a server needs of a next-item model.
class NextItemScorer {
public:
    virtual ~NextItemScorer() = default;
    /// The model's exact incremental state, or nullptr (why: incremental_note()).
    [[nodiscard]] virtual IncrementalScorer* incremental() { return nullptr; }
    /// Why incremental() is nullptr ("" when it is not).
    [[nodiscard]] virtual std::string incremental_note() const { return "this model keeps no incremental state"; }
    [[nodiscard]] virtual index_t num_items() const = 0;
    [[nodiscard]] virtual index_t max_len() const = 0;
    /// scores [B, N + 1] for ids [B, max_len] (left-padded; 0 = padding); column 0 is -inf.
    virtual void score_all(MatrixView<const row_id_t> ids, MatrixView<float> scores) = 0;
    /// top [B, k] items and their scores of each row of `scores` (best first).
    virtual void top_k(MatrixView<const float> scores, index_t k, MatrixView<row_id_t> top,
                       MatrixView<float> top_scores) = 0;
};

namespace detail {
/// models::IncrementalSASRec of one norm placement as an IncrementalScorer.
template <class Norm, class Be>
class IncrementalSASRecScorer final : public IncrementalScorer {
public:
    IncrementalSASRecScorer(models::SASRec<float, Norm>& model, const Be& be, ThreadPool& pool)
        : model_(model), engine_(model), be_(be), pool_(pool), bytes_(engine_.make_state().bytes()) {}
    [[nodiscard]] State make_state() const override { return engine_.make_state(); }
    [[nodiscard]] std::size_t state_bytes() const override { return bytes_; }
    void reset(State& state, std::span<const row_id_t> history) override { engine_.reset(be_, pool_, state, history); }
    void append_batch(std::span<State* const> states, std::span<const row_id_t> items) override {
        engine_.append_batch(be_, pool_, states, items);
    }
    void score_hidden(MatrixView<const float> hidden, MatrixView<float> scores) override {
        const index_t n = model_.config().num_items;
        RECBLOCKS_CHECK_SHAPE(hidden.cols() == model_.config().d_model && scores.rows() == hidden.rows() &&
                                  scores.cols() == n + 1,
                              "IncrementalScorer::score_hidden: hidden is ", hidden.shape(), " and scores ",
                              scores.shape(), " but need [B, ", model_.config().d_model, "] and [B, ", n + 1, "]");
        if (hidden.rows() == 0) return;
        ops::gemm(be_, Trans::no, Trans::yes, 1.0f, hidden, model_.item_table(), 0.0f, scores);
        for (index_t b = 0; b < scores.rows(); ++b) scores(b, 0) = -std::numeric_limits<float>::infinity();
    }

private:
    models::SASRec<float, Norm>& model_;
    models::IncrementalSASRec<float, Norm> engine_;
    const Be& be_;
    ThreadPool& pool_;
    std::size_t bytes_;
};

/// An exact incremental state for a host f32 SASRec that allows one (else nullptr and `note` says why).
template <class Norm, class Be>
std::unique_ptr<IncrementalScorer> make_incremental(models::SASRec<float, Norm, HostMemory>& m, const Be& be,
                                                    ThreadPool& pool, std::string& note) {
    note = models::IncrementalSASRec<float, Norm>::why_not_exact(m.config());
    if (!note.empty()) return nullptr;
    return std::make_unique<IncrementalSASRecScorer<Norm, Be>>(m, be, pool);
}
template <class Be>
std::unique_ptr<IncrementalScorer> make_incremental(models::AnySASRec<float>& m, const Be& be, ThreadPool& pool,
                                                    std::string& note) {
    return m.visit([&](auto& concrete) { return make_incremental(concrete, be, pool, note); });
}
template <class Be>
std::unique_ptr<IncrementalScorer> make_incremental(models::BERT4Rec<float>&, const Be&, ThreadPool&, std::string& note) {
    note = "BERT4Rec attends in both directions: a new event changes every position's state, so none can be kept";
    return nullptr;
}
}  // namespace detail

/// A model (SASRec, BERT4Rec: anything with score_all(be, pool, ids, scores))
/// on a backend, as a NextItemScorer. Owns the model. An f32 SASRec whose
/// configuration allows it also offers an exact incremental state.
template <class Model, class Be>
class ModelScorer final : public NextItemScorer {
public:
    /// Builds Model(model_args..., Rng(0)) — e.g. (cfg) for SASRec or BERT4Rec, (cfg, norm) for
    /// models::AnySASRec; load the real weights into model().params().
    template <class... ModelArgs>
    ModelScorer(const Be& be, ThreadPool& pool, ModelArgs&&... model_args)
        : model_(std::forward<ModelArgs>(model_args)..., Rng(0)), n_(model_.config().num_items),
          l_(model_.config().max_len), be_(be), pool_(pool) {
        if constexpr (requires { detail::make_incremental(model_, be_, pool_, note_); })
            incremental_ = detail::make_incremental(model_, be_, pool_, note_);
    }
    [[nodiscard]] IncrementalScorer* incremental() override { return incremental_.get(); }
    [[nodiscard]] std::string incremental_note() const override {
        return incremental_ || !note_.empty() ? note_ : NextItemScorer::incremental_note();
    }
    [[nodiscard]] index_t num_items() const override { return n_; }
    [[nodiscard]] index_t max_len() const override { return l_; }
    void score_all(MatrixView<const row_id_t> ids, MatrixView<float> scores) override {
        model_.score_all(be_, pool_, ids, scores);
    }
    void top_k(MatrixView<const float> scores, index_t k, MatrixView<row_id_t> top, MatrixView<float> top_scores) override {
        ops::top_k_rows(be_, scores, k, top, top_scores);
    }
    [[nodiscard]] Model& model() { return model_; }

private:
    Model model_;
    index_t n_, l_;
    const Be& be_;
    ThreadPool& pool_;
    std::string note_;
    std::unique_ptr<IncrementalScorer> incremental_;  // reads model_'s weights at each call
};

struct DescribedModel {
    models::ModelDescription description;
    io::ItemIdMap items;  ///< the file's map; the identity 1..N if the file has none
    bool items_from_file = false;
    std::unique_ptr<NextItemScorer> scorer;
};

namespace detail {
template <class Model, class Be, class... ModelArgs>
std::unique_ptr<NextItemScorer> make_scorer(const std::filesystem::path& path, const Be& be, ThreadPool& pool,
                                            ModelArgs&&... model_args) {
    auto s = std::make_unique<ModelScorer<Model, Be>>(be, pool, std::forward<ModelArgs>(model_args)...);
    train::load_checkpoint<float>(path, s->model().params(), nullptr);
    return s;
}
}  // namespace detail

/// The description of a checkpoint (nullopt if it has none), without loading weights.
inline std::optional<models::ModelDescription> read_description(const std::filesystem::path& path) {
    const auto r = io::SafetensorsReader::open(path);
    return models::read_model_description(r.metadata(), r.source());
}

/// Rebuilds the model `path` describes, loads its weights and item-id map.
/// FormatError naming the file if it has no description (or a bad one); the
/// weights are checked as train::load_checkpoint checks them.
template <class Be>
DescribedModel load_described_model(const std::filesystem::path& path, const Be& be, ThreadPool& pool) {
    const auto r = io::SafetensorsReader::open(path);
    auto d = models::read_model_description(r.metadata(), r.source());
    RECBLOCKS_CHECK_FORMAT(d.has_value(), r.source(), ": the file does not describe its model (no metadata \"",
                           models::kModelMetadataKey,
                           "\"): it was saved before checkpoints described themselves, or by another program; "
                           "load it with the model's flags");
    models::check_description_fits(*d, r);
    DescribedModel m;
    m.description = *d;
    const index_t n = d->num_items();
    if (auto items = io::ItemIdMap::read(r, n)) {
        m.items = std::move(*items);
        m.items_from_file = true;
    } else {
        std::vector<std::int64_t> identity(static_cast<std::size_t>(n + 1));
        for (std::size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<std::int64_t>(i);
        m.items = io::ItemIdMap(std::move(identity));
    }
    if (d->kind == models::ModelKind::bert4rec) {
        m.scorer = detail::make_scorer<models::BERT4Rec<float>>(path, be, pool, d->bert4rec);
    } else {  // the norm placement chosen at run time, as a checkpoint layout chooses it
        m.scorer = detail::make_scorer<models::AnySASRec<float>>(path, be, pool, d->sasrec, d->norm);
    }
    return m;
}

}  // namespace serving
RECBLOCKS_NAMESPACE_END
