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
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "recblocks/core/check.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/io/item_id_map.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/models/any_sasrec.hpp"
#include "recblocks/models/model_description.hpp"
#include "recblocks/ops/top_k.hpp"
#include "recblocks/train/checkpoint.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace serving {

/// What a server needs of a next-item model.
class NextItemScorer {
public:
    virtual ~NextItemScorer() = default;
    [[nodiscard]] virtual index_t num_items() const = 0;
    [[nodiscard]] virtual index_t max_len() const = 0;
    /// scores [B, N + 1] for ids [B, max_len] (left-padded; 0 = padding); column 0 is -inf.
    virtual void score_all(MatrixView<const row_id_t> ids, MatrixView<float> scores) = 0;
    /// top [B, k] items and their scores of each row of `scores` (best first).
    virtual void top_k(MatrixView<const float> scores, index_t k, MatrixView<row_id_t> top,
                       MatrixView<float> top_scores) = 0;
};

/// A model (SASRec, BERT4Rec: anything with score_all(be, pool, ids, scores))
/// on a backend, as a NextItemScorer. Owns the model.
template <class Model, class Be>
class ModelScorer final : public NextItemScorer {
public:
    /// Builds Model(model_args..., Rng(0)) — e.g. (cfg) for SASRec or BERT4Rec, (cfg, norm) for
    /// models::AnySASRec; load the real weights into model().params().
    template <class... ModelArgs>
    ModelScorer(const Be& be, ThreadPool& pool, ModelArgs&&... model_args)
        : model_(std::forward<ModelArgs>(model_args)..., Rng(0)), n_(model_.config().num_items),
          l_(model_.config().max_len), be_(be), pool_(pool) {}
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
