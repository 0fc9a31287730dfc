// BERT4Rec training: cloze masking (rate, labels, padding, determinism),
// the warm-up/decay schedule, bit-exact resume from a checkpoint, the NaN
// guard, and the loss going down on a learnable toy task.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <set>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/data/left_padded_batch.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/train/cloze_trainer.hpp"

using namespace recblocks;
namespace fs = std::filesystem;

namespace {

/// Users walk the catalogue in steps of 1 from a user-specific start: the masked item is learnable.
std::vector<std::vector<row_id_t>> toy_sequences(index_t users, index_t items, index_t len) {
    std::vector<std::vector<row_id_t>> seqs;
    for (index_t u = 0; u < users; ++u) {
        std::vector<row_id_t> s;
        for (index_t t = 0; t < len - (u % 3); ++t) s.push_back(static_cast<row_id_t>(1 + (u * 7 + t) % items));
        seqs.push_back(s);
    }
    return seqs;
}

models::BERT4RecConfig toy_config() {
    models::BERT4RecConfig c;
    c.num_items = 40;
    c.max_len = 10;
    c.d_model = 16;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    return c;
}

fs::path temp_file(const std::string& name) {
    const auto dir = fs::temp_directory_path() / ("recblocks_b4r_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

std::vector<float> snapshot(const ParamList<float>& params) {
    std::vector<float> out;
    for (const auto& p : params) out.insert(out.end(), p.value, p.value + p.numel());
    return out;
}

}  // namespace

TEST_CASE("cloze batches: mask rate, labels, padding, at least one target, determinism", "[train][data][bert4rec]") {
    // Long and short users; user 3 has one item (not trained on).
    std::vector<std::vector<row_id_t>> seqs = toy_sequences(40, 60, 50);
    seqs[3] = {7};
    seqs[5] = {1, 2};
    const index_t len = 30;
    const double rho = 0.2;
    data::ClozeBatches batches(seqs, 60, len, rho, 9);
    CHECK(batches.mask_token() == 61);
    CHECK(batches.users().size() == 39);
    const auto order = batches.epoch_order(0);
    CHECK(std::set<index_t>(order.begin(), order.end()) ==
          std::set<index_t>(batches.users().begin(), batches.users().end()));
    CHECK(order != batches.epoch_order(1));
    CHECK(order == batches.epoch_order(0));
    const index_t b = static_cast<index_t>(order.size());
    Matrix<row_id_t> ids(Shape<2>{{b, len}}), labels(ids.shape()), ids2(ids.shape()), labels2(ids.shape());
    index_t masked = 0, real = 0;
    for (std::uint64_t step = 0; step < 200; ++step) {
        batches.fill(order, step, ids.view(), labels.view());
        for (index_t r = 0; r < b; ++r) {
            const auto& s = seqs[static_cast<std::size_t>(order[static_cast<std::size_t>(r)])];
            const index_t n = std::min<index_t>(len, static_cast<index_t>(s.size()));
            index_t row_masked = 0;
            for (index_t t = 0; t < len; ++t) {
                const row_id_t original = t < len - n ? 0 : s[s.size() - static_cast<std::size_t>(len - t)];
                if (original == 0) {  // padding is never masked, never a target
                    REQUIRE(ids(r, t) == 0);
                    REQUIRE(labels(r, t) == 0);
                    continue;
                }
                if (ids(r, t) == 61) {
                    REQUIRE(labels(r, t) == original);
                    ++row_masked;
                } else {
                    REQUIRE(ids(r, t) == original);
                    REQUIRE(labels(r, t) == 0);
                }
            }
            REQUIRE(row_masked >= 1);
            if (n == len) {  // full rows: forcing a target is vanishingly rare, the rate is rho
                masked += row_masked;
                real += n;
            }
        }
    }
    // 200 steps x ~35 full rows x 30 slots ~ 2e5 draws (sd of the rate ~ 0.001).
    const double rate = double(masked) / double(real);
    INFO("mask rate " << rate << " over " << real << " slots");
    CHECK(std::fabs(rate - rho) < 0.005);
    // Determinism: same (seed, step) -> same batch; another step or seed -> other masks.
    batches.fill(order, 17, ids.view(), labels.view());
    batches.fill(order, 17, ids2.view(), labels2.view());
    CHECK(std::equal(ids.begin(), ids.end(), ids2.begin()));
    CHECK(std::equal(labels.begin(), labels.end(), labels2.begin()));
    batches.fill(order, 18, ids2.view(), labels2.view());
    CHECK(!std::equal(ids.begin(), ids.end(), ids2.begin()));
    data::ClozeBatches reseeded(seqs, 60, len, rho, 10);
    reseeded.fill(order, 17, ids2.view(), labels2.view());
    CHECK(!std::equal(ids.begin(), ids.end(), ids2.begin()));
    // A row's masks depend on (step, user), not on its batch companions or position.
    const std::vector<index_t> alone{order[5]};
    Matrix<row_id_t> one(Shape<2>{{1, len}}), one_labels(one.shape());
    batches.fill(alone, 17, one.view(), one_labels.view());
    CHECK(std::equal(one.begin(), one.end(), ids.view().row(5)));
    // mask_prob 1: every real slot is a target.
    data::ClozeBatches all(seqs, 60, len, 1.0, 9);
    all.fill(order, 0, ids.view(), labels.view());
    for (index_t i = 0; i < ids.numel(); ++i) CHECK((ids.data()[i] == 0 || ids.data()[i] == 61));
    // mask_last_prob: that share of rows masks its last item only (the authors' mask_last rows).
    data::ClozeBatches last_only(seqs, 60, len, rho, 9, 1.0);
    last_only.fill(order, 3, ids.view(), labels.view());
    for (index_t r = 0; r < b; ++r)
        for (index_t t = 0; t < len; ++t) REQUIRE((labels(r, t) != 0) == (t == len - 1));
    data::ClozeBatches half(seqs, 60, len, rho, 9, 0.5);
    index_t last_rows = 0, rows = 0;
    for (std::uint64_t step = 0; step < 50; ++step) {
        half.fill(order, step, ids.view(), labels.view());
        for (index_t r = 0; r < b; ++r, ++rows) {
            index_t n = 0;
            for (index_t t = 0; t < len; ++t) n += labels(r, t) != 0;
            last_rows += n == 1 && labels(r, len - 1) != 0;
        }
    }
    CHECK(double(last_rows) / double(rows) == Approx(0.5).margin(0.05));
    // Bad inputs.
    REQUIRE_THROWS_AS(data::ClozeBatches({{1, 2}}, 60, len, rho, 1, 1.5), ValueError);
    REQUIRE_THROWS_AS(data::ClozeBatches({{1, 2, 61}}, 60, len, rho, 1), IndexError);
    REQUIRE_THROWS_AS(data::ClozeBatches({{1, 2}}, 60, len, 0.0, 1), ValueError);
    REQUIRE_THROWS_AS(data::ClozeBatches({{1, 2}}, 60, len, 1.5, 1), ValueError);
    REQUIRE_THROWS_WITH(data::ClozeBatches({{1}, {2}}, 60, len, rho, 1), Catch::Contains("two or more"));
    Matrix<row_id_t> wrong(Shape<2>{{b, len + 1}});
    REQUIRE_THROWS_AS(batches.fill(order, 0, wrong.view(), labels.view()), ShapeError);
}

TEST_CASE("cloze trainer: AdamW settings and the warm-up / linear-decay schedule", "[train][bert4rec]") {
    models::BERT4Rec<float> m(toy_config(), Rng(3));
    train::ClozeTrainingOptions opt;
    opt.total_steps = 1100;
    train::ClozeTrainer<float, models::BERT4Rec<float>> t(m, toy_sequences(20, 40, 12), 40, opt);
    const auto& ac = t.optimizer().config();
    CHECK(ac.decoupled);
    CHECK(ac.weight_decay == 0.01);
    CHECK(ac.eps == 1e-6);
    CHECK(ac.beta2 == 0.999);
    CHECK(t.lr_at(0) == Approx(1e-6));
    CHECK(t.lr_at(99) == Approx(1e-4));
    CHECK(t.lr_at(600) == Approx(0.5e-4));
    CHECK(t.lr_at(1100) == 0.0);
    CHECK(t.lr_at(5000) == 0.0);
    opt.total_steps = 50;  // shorter than the warm-up
    REQUIRE_THROWS_WITH((train::ClozeTrainer<float, models::BERT4Rec<float>>(m, toy_sequences(20, 40, 12), 40, opt)),
                        Catch::Contains("must exceed warmup_steps"));
}

TEST_CASE("BERT4Rec training resumed from a checkpoint continues bit-exactly", "[train][checkpoint][bert4rec]") {
    const auto seqs = toy_sequences(50, 40, 14);
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    train::ClozeTrainingOptions opt;
    opt.batch_size = 16;
    opt.lr = 1e-3;
    opt.warmup_steps = 3;
    opt.total_steps = 12;
    const auto path = temp_file("resume.safetensors");

    models::BERT4Rec<float> a(toy_config(), Rng(3));
    train::ClozeTrainer<float, models::BERT4Rec<float>> ta(a, seqs, 40, opt);
    for (int i = 0; i < 5; ++i) ta.train_step(be, pool);  // crosses an epoch boundary (4 steps per epoch)
    ta.save_checkpoint(path, {{"model", "bert4rec"}});
    const auto at_save = snapshot(a.params());
    for (int i = 0; i < 4; ++i) ta.train_step(be, pool);
    CHECK(snapshot(a.params()) != at_save);

    models::BERT4Rec<float> b(toy_config(), Rng(3));  // same seed: dropout masks are keyed by (seed, step)
    for (const auto& p : b.params()) std::fill(p.value, p.value + p.numel(), 0.5f);  // weights come from the file
    train::ClozeTrainer<float, models::BERT4Rec<float>> tb(b, seqs, 40, opt);
    const auto info = tb.load_checkpoint(path);
    CHECK(info.step == 5);
    CHECK(tb.step() == 5);
    CHECK(info.metadata.at("model") == "bert4rec");
    CHECK(snapshot(b.params()) == at_save);
    for (int i = 0; i < 4; ++i) tb.train_step(be, pool);
    REQUIRE(snapshot(a.params()) == snapshot(b.params()));
    // A SASRec-shaped or differently sized model cannot load it.
    auto other = toy_config();
    other.num_items = 41;
    models::BERT4Rec<float> c(other, Rng(3));
    REQUIRE_THROWS_WITH(train::load_checkpoint<float>(path, c.params(), nullptr),
                        Catch::Contains("tensor \"item_emb.weight\" is [42, 16] but the model's is [43, 16]"));
}

TEST_CASE("a NaN stops BERT4Rec training before the weights change", "[train][bert4rec]") {
    ThreadPool pool(1);
    const backend::Cpu<isa::Dispatch> be{&pool};
    models::BERT4Rec<float> m(toy_config(), Rng(3));
    train::ClozeTrainer<float, models::BERT4Rec<float>> t(m, toy_sequences(20, 40, 12), 40, {});
    t.train_step(be, pool);
    m.params()[5].value[0] = std::nanf("");  // a corrupted weight
    const auto before = snapshot(m.params());
    REQUIRE_THROWS_WITH(t.train_step(be, pool), Catch::Contains("training step 1"));
    const auto after = snapshot(m.params());
    for (std::size_t i = 0; i < before.size(); ++i)
        if (!std::isnan(before[i])) REQUIRE(after[i] == before[i]);
    CHECK(t.step() == 1);
}

TEST_CASE("BERT4Rec learns a learnable cloze task", "[train][bert4rec]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    auto cfg = toy_config();
    cfg.dropout = 0.0;
    models::BERT4Rec<float> m(cfg, Rng(11));
    train::ClozeTrainingOptions opt;
    opt.batch_size = 25;
    opt.lr = 1e-2;
    opt.warmup_steps = 10;
    opt.mask_prob = 0.3;
    train::ClozeTrainer<float, models::BERT4Rec<float>> t(m, toy_sequences(50, 40, 14), 40, opt);
    const double first = t.train_epoch(be, pool).mean_loss;
    CHECK(first == Approx(std::log(40.0)).epsilon(0.05));  // starts near uniform over 40 items
    double last = first;
    for (int e = 0; e < 300; ++e) last = t.train_epoch(be, pool).mean_loss;
    CHECK(last < 0.5 * first);
    // Inference end to end: score_all appends [mask] after each history; the
    // walk's next item should mostly come out on top.
    const auto seqs = toy_sequences(50, 40, 14);
    Matrix<row_id_t> ids(Shape<2>{{50, 10}});
    std::vector<std::vector<row_id_t>> hist;
    for (const auto& s : seqs) hist.emplace_back(s.begin(), s.end() - 1);
    std::vector<std::span<const row_id_t>> spans(hist.begin(), hist.end());
    data::left_padded_batch(spans, ids.view());
    Matrix<float> scores(Shape<2>{{50, 41}});
    m.score_all(be, pool, ids.cview(), scores.view());
    index_t hits = 0;
    for (index_t u = 0; u < 50; ++u) {
        const float* row = scores.view().row(u);
        hits += std::max_element(row, row + 41) - row == seqs[static_cast<std::size_t>(u)].back();
    }
    INFO("top-1 next-item accuracy " << hits << "/50");
    CHECK(hits >= 35);
}
