// Training loop and checkpoints: resuming from a checkpoint continues
// bit-exactly; a failed load leaves the model untouched; a NaN stops training
// before the weights change; negatives are never items the user has seen;
// the loss goes down on a learnable toy task.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/train/checkpoint.hpp"
#include "recblocks/io/pytorch_import.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/train/next_item_trainer.hpp"

using namespace recblocks;
namespace fs = std::filesystem;

namespace {

/// Users walk the catalogue in steps of 1 from a user-specific start: next-item is learnable.
std::vector<std::vector<row_id_t>> toy_sequences(index_t users, index_t items, index_t len) {
    std::vector<std::vector<row_id_t>> seqs;
    for (index_t u = 0; u < users; ++u) {
        std::vector<row_id_t> s;
        for (index_t t = 0; t < len - (u % 3); ++t) s.push_back(static_cast<row_id_t>(1 + (u * 7 + t) % items));
        seqs.push_back(s);
    }
    return seqs;
}

models::SASRecConfig toy_config() {
    models::SASRecConfig c;
    c.num_items = 40;
    c.max_len = 10;
    c.d_model = 16;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    return c;
}

fs::path temp_file(const std::string& name) {
    const auto dir = fs::temp_directory_path() / ("recblocks_train_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

std::vector<float> snapshot(const ParamList<float>& params) {
    std::vector<float> out;
    for (const auto& p : params) out.insert(out.end(), p.value, p.value + p.numel());
    return out;
}

}  // namespace

TEST_CASE("training resumed from a checkpoint continues bit-exactly", "[train][checkpoint]") {
    const auto seqs = toy_sequences(50, 40, 14);
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    train::NextItemTrainingOptions opt;
    opt.batch_size = 16;
    opt.clip_norm = 5.0;
    const auto path = temp_file("resume.safetensors");

    models::SASRec<float> a(toy_config(), Rng(3));
    train::NextItemTrainer<float, models::SASRec<float>> ta(a, seqs, 40, 10, opt);
    for (int i = 0; i < 5; ++i) ta.train_step(be, pool);  // crosses an epoch boundary (4 steps per epoch)
    train::save_checkpoint<float>(path, a.params(), &ta.optimizer(), ta.step(), {{"model", "sasrec"}});
    for (int i = 0; i < 4; ++i) ta.train_step(be, pool);

    models::SASRec<float> b(toy_config(), Rng(3));  // same seed: dropout masks are keyed by (seed, step)
    for (const auto& p : b.params()) std::fill(p.value, p.value + p.numel(), 0.5f);  // weights come from the file
    train::NextItemTrainer<float, models::SASRec<float>> tb(b, seqs, 40, 10, opt);
    const auto info = train::load_checkpoint<float>(path, b.params(), &tb.optimizer());
    CHECK(info.step == 5);
    CHECK(info.metadata.at("model") == "sasrec");
    tb.set_step(info.step);
    for (int i = 0; i < 4; ++i) tb.train_step(be, pool);
    REQUIRE(snapshot(a.params()) == snapshot(b.params()));
}

TEST_CASE("checkpoint loading rejects bad files and leaves the model untouched", "[train][checkpoint]") {
    models::SASRec<float> m(toy_config(), Rng(3));
    const auto path = temp_file("bad.safetensors");
    train::save_checkpoint<float>(path, m.params(), nullptr, 7);
    auto bigger = toy_config();
    bigger.d_model = 8;
    models::SASRec<float> other(bigger, Rng(1));
    const auto before = snapshot(other.params());
    REQUIRE_THROWS_WITH(train::load_checkpoint<float>(path, other.params(), nullptr),
                        Catch::Contains("tensor \"item_emb.weight\" is [41, 16] but the model's is [41, 8]"));
    CHECK(snapshot(other.params()) == before);
    // No optimiser state saved, but asked for.
    train::NextItemTrainer<float, models::SASRec<float>> t(m, toy_sequences(10, 40, 12), 40, 10, {});
    REQUIRE_THROWS_WITH(train::load_checkpoint<float>(path, m.params(), &t.optimizer()),
                        Catch::Contains("no tensor \"optimizer.m/item_emb.weight\""));
    // Truncated file.
    const auto size = fs::file_size(path);
    fs::resize_file(path, size / 2);
    REQUIRE_THROWS_AS(train::load_checkpoint<float>(path, m.params(), nullptr), FormatError);
    // A PyTorch state_dict is not a checkpoint.
    REQUIRE_THROWS_WITH(train::load_checkpoint<float>(std::string(RECBLOCKS_SOURCE_DIR) +
                                                       "/tests/golden/sasrec_query.safetensors",
                                                   m.params(), nullptr),
                        Catch::Contains("not a recblocks checkpoint"));
    REQUIRE_THROWS_AS(train::load_checkpoint<float>(temp_file("missing.safetensors"), m.params(), nullptr), IoError);
}

TEST_CASE("a NaN stops training before the weights change", "[train]") {
    ThreadPool pool(1);
    const backend::Cpu<isa::Dispatch> be{&pool};
    models::SASRec<float> m(toy_config(), Rng(3));
    train::NextItemTrainer<float, models::SASRec<float>> t(m, toy_sequences(20, 40, 12), 40, 10, {});
    t.train_step(be, pool);
    m.params()[3].value[0] = std::nanf("");  // a corrupted weight
    const auto before = snapshot(m.params());
    REQUIRE_THROWS_WITH(t.train_step(be, pool), Catch::Contains("training step 1"));
    const auto after = snapshot(m.params());
    for (std::size_t i = 0; i < before.size(); ++i)
        if (!std::isnan(before[i])) REQUIRE(after[i] == before[i]);
    CHECK(t.step() == 1);
}

TEST_CASE("batches: left-padded shifts, negatives never seen, deterministic", "[train][data]") {
    const auto seqs = toy_sequences(30, 40, 14);
    data::NextItemBatches batches(seqs, 40, 10, 5);
    const auto order = batches.epoch_order(0);
    CHECK(order.size() == 30);
    CHECK(order != batches.epoch_order(1));
    Matrix<row_id_t> ids(Shape<2>{{30, 10}}), pos(ids.shape()), neg(ids.shape()), ids2(ids.shape()), pos2(ids.shape()),
        neg2(ids.shape());
    batches.fill(order, 3, ids.view(), pos.view(), neg.view());
    batches.fill(order, 3, ids2.view(), pos2.view(), neg2.view());
    CHECK(std::equal(neg.begin(), neg.end(), neg2.begin()));
    for (index_t r = 0; r < 30; ++r) {
        const auto& s = seqs[static_cast<std::size_t>(order[static_cast<std::size_t>(r)])];
        CHECK(ids(r, 9) == s[s.size() - 2]);
        CHECK(pos(r, 9) == s.back());
        for (index_t t = 0; t < 10; ++t) {
            if (ids(r, t) == 0) continue;
            CHECK(std::find(s.begin(), s.end(), neg(r, t)) == s.end());
        }
    }
    REQUIRE_THROWS_AS(data::NextItemBatches({{1, 2, 41}}, 40, 10, 1), IndexError);
}

TEST_CASE("SASRec learns a learnable sequence task", "[train]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    auto cfg = toy_config();
    cfg.dropout = 0.0;
    models::SASRec<float> m(cfg, Rng(11));
    train::NextItemTrainingOptions opt;
    opt.batch_size = 25;
    opt.lr = 5e-3;
    train::NextItemTrainer<float, models::SASRec<float>> t(m, toy_sequences(50, 40, 14), 40, 10, opt);
    const double first = t.train_epoch(be, pool).mean_loss;
    double last = first;
    for (int e = 0; e < 30; ++e) last = t.train_epoch(be, pool).mean_loss;
    CHECK(last < 0.5 * first);
}
