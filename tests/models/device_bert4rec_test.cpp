// BERT4Rec instantiated for a device memory space and run on
// rbtest::GuardedDevice (tests/support/guarded_device.hpp: the Reference's
// arithmetic, memory the host cannot touch outside a primitive). Cloze
// training steps (forward, the full-softmax loss, backward, AdamW), the
// training loop with clipping and checkpoints, and serving must give exactly
// the bits of the same model in host memory on the Reference backend: the
// code path backend::Cuda runs, with the oracle's arithmetic.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "../support/guarded_device.hpp"
#include "../support/same_bits.hpp"
#include "../support/temp_dir.hpp"
#include "recblocks/losses/sampled_softmax.hpp"
#include "recblocks/losses/softmax_cross_entropy.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/train/checkpoint.hpp"
#include "recblocks/train/cloze_trainer.hpp"

using namespace recblocks;
using rbtest::GuardedDevice;
using rbtest::GuardedMemory;
using rbtest::same_bits;
using rbtest::same_params;

namespace {

const backend::Reference kRef{};
const GuardedDevice kDev{};

models::BERT4RecConfig tiny_config() {
    models::BERT4RecConfig c;
    c.num_items = 12;
    c.max_len = 6;
    c.d_model = 8;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.3;
    c.attention_dropout = 0.1;
    return c;
}

/// Two left-padded histories of 6 slots over 12 items; [mask] = 13 at the targets.
struct ClozeBatch {
    Matrix<row_id_t> ids{Shape<2>{{2, 6}}}, labels{Shape<2>{{2, 6}}}, history{Shape<2>{{2, 6}}};
    ClozeBatch() {
        const row_id_t s[2][6] = {{0, 0, 3, 13, 7, 13}, {4, 13, 9, 9, 12, 6}};
        const row_id_t y[2][6] = {{0, 0, 0, 5, 0, 2}, {0, 1, 0, 0, 0, 0}};
        const row_id_t h[2][6] = {{0, 0, 3, 5, 7, 2}, {4, 1, 9, 9, 12, 6}};
        for (index_t b = 0; b < 2; ++b)
            for (index_t t = 0; t < 6; ++t) {
                ids(b, t) = s[b][t];
                labels(b, t) = y[b][t];
                history(b, t) = h[b][t];
            }
    }
};

std::vector<std::vector<row_id_t>> toy_sequences() {
    std::vector<std::vector<row_id_t>> seqs;
    for (index_t u = 0; u < 12; ++u) {
        std::vector<row_id_t> s;
        for (index_t t = 0; t < 9 - u % 4; ++t) s.push_back(static_cast<row_id_t>(1 + (u * 5 + 3 * t) % 30));
        seqs.push_back(s);
    }
    return seqs;
}

}  // namespace

TEST_CASE("device models: BERT4Rec trains (cloze, AdamW) and serves on a device backend with the host's bits",
          "[models][device][bert4rec]") {
    const auto cfg = tiny_config();
    models::BERT4Rec<double> host(cfg, Rng(5));
    models::BERT4Rec<double, GuardedMemory> dev(cfg, Rng(5), memory_of(kDev));
    REQUIRE(same_params(dev.params(), host.params(), false));  // BERT's initialisation, drawn on the host
    const ClozeBatch batch;
    optim::AdamConfig ac;
    ac.weight_decay = 0.01;
    ac.decoupled = true;
    ac.decay_kinds = {ParamKind::weight, ParamKind::embedding};
    optim::Adam<double> host_adam(ac, host.params());
    optim::Adam<double, GuardedMemory> dev_adam(ac, dev.params());
    for (std::uint64_t step = 1; step <= 3; ++step) {
        const auto lh = host.train_step_ce(kRef, ThreadPool::global(), batch.ids.cview(), batch.labels.cview(), step);
        const auto ld = dev.train_step_ce(kDev, ThreadPool::global(), batch.ids.cview(), batch.labels.cview(), step);
        REQUIRE(lh.count == 3);
        REQUIRE(ld.count == lh.count);
        REQUIRE(ld.loss == lh.loss);
        REQUIRE(same_params(dev.params(), host.params(), true));
        host_adam.step(kRef, host.params(), 1e-2);
        dev_adam.step(kDev, dev.params(), 1e-2);
        REQUIRE(same_params(dev.params(), host.params(), false));
    }
    // Serving: [mask] appended to each history, and given slots as they are.
    Matrix<double> scores(Shape<2>{{2, cfg.num_items + 1}});
    Matrix<double, GuardedMemory> dev_scores(scores.shape(), memory_of(kDev));
    host.score_all(kRef, ThreadPool::global(), batch.history.cview(), scores.view());
    dev.score_all(kDev, ThreadPool::global(), batch.history.cview(), dev_scores.view());
    REQUIRE(same_bits(dev_scores, scores));
    CHECK(std::isinf(scores(0, 0)));
    const std::vector<index_t> slots = {3, 5, 7};
    Matrix<double> at(Shape<2>{{3, cfg.num_items + 1}});
    Matrix<double, GuardedMemory> dev_at(at.shape(), memory_of(kDev));
    host.score_positions(kRef, ThreadPool::global(), batch.ids.cview(), slots, at.view());
    dev.score_positions(kDev, ThreadPool::global(), batch.ids.cview(), slots, dev_at.view());
    REQUIRE(same_bits(dev_at, at));
    // A step without targets leaves zero gradients and no loss on both.
    Matrix<row_id_t> none(batch.labels.shape());
    REQUIRE(dev.train_step_ce(kDev, ThreadPool::global(), batch.ids.cview(), none.cview(), 9).count == 0);
    // Bad labels are caught on the host, before anything runs on the device.
    Matrix<row_id_t> bad = batch.labels;
    bad(0, 0) = 4;  // a padded slot
    REQUIRE_THROWS_WITH(dev.train_step_ce(kDev, ThreadPool::global(), batch.ids.cview(), bad.cview(), 9),
                        Catch::Contains("labels[0, 0] = 4 is at a padded slot"));
    bad(0, 0) = 13;
    REQUIRE_THROWS_WITH(dev.train_step_ce(kDev, ThreadPool::global(), batch.ids.cview(), bad.cview(), 9),
                        Catch::Contains("labels[0, 0] = 13 is outside [0, 12]"));
}

TEST_CASE("device models: the cloze training loop, clipping and checkpoints work from device memory",
          "[models][device][train][bert4rec]") {
    auto cfg = tiny_config();
    cfg.num_items = 30;
    cfg.max_len = 8;
    const auto seqs = toy_sequences();
    train::ClozeTrainingOptions opt;
    opt.batch_size = 5;
    opt.lr = 1e-2;
    opt.warmup_steps = 2;
    opt.total_steps = 20;
    opt.clip_norm = 0.5;  // the global norm and the scaling run on the device
    opt.mask_prob = 0.4;
    models::BERT4Rec<double> host(cfg, Rng(4));
    models::BERT4Rec<double, GuardedMemory> dev(cfg, Rng(4), memory_of(kDev));
    train::ClozeTrainer<double, decltype(host)> th(host, seqs, cfg.num_items, opt);
    train::ClozeTrainer<double, decltype(dev)> td(dev, seqs, cfg.num_items, opt);
    for (int s = 0; s < 3; ++s) {
        REQUIRE(td.train_step(kDev, ThreadPool::global()) == th.train_step(kRef, ThreadPool::global()));
        REQUIRE(td.last_grad_norm() == th.last_grad_norm());
    }
    CHECK(th.last_grad_norm() > opt.clip_norm);  // clipping did run
    REQUIRE(same_params(dev.params(), host.params(), false));

    // Saved from device memory, loaded into host memory and into a fresh device model.
    rbtest::TempDir dir;
    const auto path = dir.path / "bert4rec_device.safetensors";
    td.save_checkpoint(path, {{"model", "bert4rec"}});
    models::BERT4Rec<double> loaded_host(cfg, Rng(99));
    // (the same seed as the saved run: dropout masks come from the model's seed, the weights from the file)
    models::BERT4Rec<double, GuardedMemory> loaded_dev(cfg, Rng(4), memory_of(kDev));
    REQUIRE_FALSE(same_params(loaded_dev.params(), host.params(), false));
    train::ClozeTrainer<double, decltype(loaded_dev)> tl(loaded_dev, seqs, cfg.num_items, opt);
    REQUIRE(train::load_checkpoint<double>(path, loaded_host.params(), nullptr).step == 3);
    const auto info = tl.load_checkpoint(path);
    REQUIRE(info.step == 3);
    REQUIRE(info.metadata.at("model") == "bert4rec");
    REQUIRE(tl.step() == 3);
    REQUIRE(same_params(loaded_dev.params(), host.params(), false));
    for (std::size_t i = 0; i < host.params().size(); ++i)
        REQUIRE(std::memcmp(loaded_host.params()[i].value, host.params()[i].value,
                            sizeof(double) * std::size_t(host.params()[i].numel())) == 0);
    // Resumed on the device (moments restored too), the next steps match the uninterrupted host run.
    for (int s = 0; s < 2; ++s)
        REQUIRE(tl.train_step(kDev, ThreadPool::global()) == th.train_step(kRef, ThreadPool::global()));
    REQUIRE(same_params(loaded_dev.params(), host.params(), false));
}

TEST_CASE("device losses: full and sampled softmax cross-entropy give the host's bits", "[losses][device]") {
    const index_t rows = 7, d = 5, n = 9;
    Matrix<double> hidden(Shape<2>{{rows, d}}), table(Shape<2>{{n + 1, d}});
    Vector<double> bias(Shape<1>{{n + 1}}), log_q(Shape<1>{{n + 1}});
    const Rng rng(21);
    for (index_t i = 0; i < hidden.numel(); ++i) hidden.data()[i] = rng.substream(0).normal(std::uint64_t(i));
    for (index_t i = 0; i < table.numel(); ++i) table.data()[i] = rng.substream(1).normal(std::uint64_t(i));
    for (index_t i = 0; i <= n; ++i) {
        bias(i) = 0.1 * double(i % 3);
        log_q(i) = std::log(double(i + 1) / 55.0);
    }
    const std::vector<row_id_t> targets = {3, 0, 9, 1, 0, 3, 7};
    const std::vector<row_id_t> negatives = {2, 3, 8, 9};  // 3 and 9 are accidental hits of some rows
    const auto tv = vector_view<const row_id_t>(targets.data(), rows);
    const auto nv = vector_view<const row_id_t>(negatives.data(), 4);
    const auto d_hidden_dev = [&] { return Matrix<double, GuardedMemory>(hidden.shape(), memory_of(kDev)); };
    const auto d_table_dev = [&] { return Matrix<double, GuardedMemory>(table.shape(), memory_of(kDev)); };
    const auto dh_dev = to(kDev, hidden);
    const auto dt_dev = to(kDev, table);
    SECTION("full softmax, two chunks, bias") {
        losses::SoftmaxCrossEntropy<double> host_loss(3);
        losses::SoftmaxCrossEntropy<double, GuardedMemory> dev_loss(3, memory_of(kDev));
        Matrix<double> gh(hidden.shape()), gt(table.shape());
        Vector<double> gb(bias.shape());
        const auto db_dev = to(kDev, bias);
        auto gh_dev = d_hidden_dev();
        auto gt_dev = d_table_dev();
        Vector<double, GuardedMemory> gb_dev(bias.shape(), memory_of(kDev));
        const auto lh = host_loss(kRef, hidden.cview(), table.cview(), bias.cview(), tv, gh.view(), gt.view(), gb.view());
        const auto ld = dev_loss(kDev, dh_dev.cview(), dt_dev.cview(), db_dev.cview(), tv, gh_dev.view(), gt_dev.view(),
                                 gb_dev.view());
        REQUIRE(lh.count == 5);
        REQUIRE(ld.count == lh.count);
        REQUIRE(ld.loss == lh.loss);
        REQUIRE(same_bits(gh_dev, gh));
        REQUIRE(same_bits(gt_dev, gt));
        REQUIRE(same_bits(gb_dev, gb));
    }
    SECTION("sampled softmax with log-Q and accidental hits") {
        losses::SampledSoftmax<double> host_loss;
        losses::SampledSoftmax<double, GuardedMemory> dev_loss(memory_of(kDev));
        Matrix<double> gh(hidden.shape()), gt(table.shape());
        const auto lq_dev = to(kDev, log_q);
        auto gh_dev = d_hidden_dev();
        auto gt_dev = d_table_dev();
        const auto lh = host_loss(kRef, hidden.cview(), table.cview(), tv, nv, log_q.cview(), gh.view(), gt.view());
        const auto ld = dev_loss(kDev, dh_dev.cview(), dt_dev.cview(), tv, nv, lq_dev.cview(), gh_dev.view(), gt_dev.view());
        REQUIRE(ld.count == lh.count);
        REQUIRE(ld.loss == lh.loss);
        REQUIRE(same_bits(gh_dev, gh));
        REQUIRE(same_bits(gt_dev, gt));
    }
}
