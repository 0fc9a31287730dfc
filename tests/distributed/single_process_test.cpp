// The communicator policy without MPI: the fixed summation order, the
// single-process collectives, the handshake's comparison, how a batch splits
// into granules, and granular training checked against whole-batch training.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/distributed/granules.hpp"
#include "recblocks/distributed/handshake.hpp"
#include "recblocks/distributed/ordered_sum.hpp"
#include "recblocks/distributed/single_process.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/train/cloze_trainer.hpp"
#include "recblocks/train/next_item_trainer.hpp"

using namespace recblocks;

namespace {

std::vector<std::vector<row_id_t>> toy_sequences(index_t users, index_t items, index_t len) {
    std::vector<std::vector<row_id_t>> seqs;
    for (index_t u = 0; u < users; ++u) {
        std::vector<row_id_t> s;
        for (index_t t = 0; t < len - (u % 5); ++t) s.push_back(static_cast<row_id_t>(1 + (u * 7 + t * 3) % items));
        seqs.push_back(s);
    }
    return seqs;
}

models::SASRecConfig toy_config(double dropout, double l2) {
    models::SASRecConfig c;
    c.num_items = 40;
    c.max_len = 10;
    c.d_model = 16;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = dropout;
    c.l2_emb = l2;
    return c;
}

std::vector<float> snapshot(const ParamList<float>& params) {
    std::vector<float> out;
    for (const auto& p : params) out.insert(out.end(), p.value, p.value + p.numel());
    return out;
}

std::vector<float> grads(const ParamList<float>& params) {
    std::vector<float> out;
    for (const auto& p : params) out.insert(out.end(), p.grad, p.grad + p.numel());
    return out;
}

}  // namespace

TEST_CASE("the ordered sum adds blocks left to right", "[distributed]") {
    // In float, (1e8 + 1) - 1e8 = 0 but 1e8 + (1 - 1e8) = 1: the order is observable.
    const std::vector<float> blocks = {1e8f, 2.f, 1.f, 3.f, -1e8f, 4.f};
    std::vector<float> out(2);
    distributed::ordered_sum_of_blocks<float>(blocks, out);
    float a = 1e8f;  // the literal left fold
    a += 1.f;
    a += -1e8f;
    CHECK(out[0] == a);
    CHECK(out[0] == 0.f);
    CHECK(out[1] == 9.f);
    std::vector<float> wrong(3);
    CHECK_THROWS_WITH(distributed::ordered_sum_of_blocks<float>(std::span<const float>(blocks).first(5), wrong),
                      Catch::Contains("not a whole number"));
}

TEST_CASE("SingleProcess: collectives of one rank", "[distributed]") {
    distributed::SingleProcess comm;
    CHECK(comm.rank() == 0);
    CHECK(comm.size() == 1);
    std::vector<double> x = {1.5, -2.0};
    comm.allreduce_sum(std::span<double>(x));
    CHECK(x == std::vector<double>{1.5, -2.0});
    const std::vector<float> mine = {1, 2, 3, 10, 20, 30};
    std::vector<float> sum(3);
    comm.allreduce_sum_blocks(std::span<const float>(mine), std::span<float>(sum));
    CHECK(sum == std::vector<float>{11, 22, 33});
    std::vector<float> all(6);
    comm.allgather(std::span<const float>(mine), std::span<float>(all));
    CHECK(all == mine);
    std::vector<float> got(4, -1.f);
    const std::vector<index_t> two = {2};
    comm.alltoallv(std::span<const float>(mine), std::span<const index_t>(two), std::span<float>(got),
                   std::span<const index_t>(two));
    CHECK(got == std::vector<float>{1, 2, -1, -1});
    const std::vector<index_t> bad = {2, 2};
    CHECK_THROWS_WITH(comm.alltoallv(std::span<const float>(mine), std::span<const index_t>(bad), std::span<float>(got),
                                     std::span<const index_t>(bad)),
                      Catch::Contains("one count per rank"));
    comm.broadcast(std::span<float>(got), 0);
    CHECK_THROWS_WITH(comm.broadcast(std::span<float>(got), 1), Catch::Contains("root 1"));
    comm.barrier();
}

TEST_CASE("handshake: a field that differs is named on every rank", "[distributed]") {
    const std::vector<distributed::HandshakeField> fields = {{"seed", 42}, {"global batch", 256}};
    const std::vector<std::uint64_t> same = {42, 256, 42, 256, 42, 256};
    CHECK_NOTHROW(distributed::check_handshake(fields, same, 3));
    const std::vector<std::uint64_t> differs = {42, 256, 42, 256, 42, 128};
    CHECK_THROWS_AS(distributed::check_handshake(fields, differs, 3), ValueError);
    CHECK_THROWS_WITH(distributed::check_handshake(fields, differs, 3),
                      Catch::Contains("'global batch' differs across ranks: rank 0 has 256, rank 2 has 128"));
    distributed::SingleProcess comm;
    CHECK_NOTHROW(distributed::handshake(comm, std::span<const distributed::HandshakeField>(fields)));
    CHECK(distributed::double_bits(0.1) != distributed::double_bits(0.1 + 1e-17 * 2));
    CHECK(distributed::hash_string("ab") != distributed::hash_string("ba"));
}

TEST_CASE("GranulePlan: granules of a global batch, by rank", "[distributed]") {
    const distributed::GranulePlan p(256, 64, 2, 1);
    CHECK(p.per_rank() == 2);
    CHECK(p.total() == 4);
    CHECK(p.global_index(0) == 2);
    CHECK(p.global_index(1) == 3);
    CHECK(p.samples(2, 256) == std::pair<index_t, index_t>{128, 192});
    CHECK(p.samples(2, 150) == std::pair<index_t, index_t>{128, 150});  // a short last batch
    CHECK(p.samples(3, 150) == std::pair<index_t, index_t>{150, 150});  // empty
    CHECK(distributed::GranulePlan::dropout_key(5, 2) != distributed::GranulePlan::dropout_key(5, 3));
    CHECK(distributed::GranulePlan::dropout_key(5, 2) != distributed::GranulePlan::dropout_key(6, 2));
    CHECK_THROWS_WITH(distributed::GranulePlan(192, 64, 2, 0),
                      Catch::Contains("global batch (192) must be a multiple of the granule (64) times the number of ranks (2)"));
}

TEST_CASE("granular training: one granule is the whole-batch step; several sum to its gradient", "[distributed][train]") {
    const auto seqs = toy_sequences(70, 40, 14);
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    train::NextItemTrainingOptions opt;
    opt.batch_size = 32;  // no clipping: the grads after a step are the step's gradient
    // Without dropout the granule only changes how the gradient is summed.
    for (const double l2 : {0.0, 0.01}) {
        models::SASRec<float> whole(toy_config(0.0, l2), Rng(3)), one(toy_config(0.0, l2), Rng(3)),
            four(toy_config(0.0, l2), Rng(3));
        train::NextItemTrainer<float, models::SASRec<float>> tw(whole, seqs, 40, 10, opt);
        auto o1 = opt;
        o1.granule = 32;
        train::NextItemTrainer<float, models::SASRec<float>> t1(one, seqs, 40, 10, o1);
        auto o4 = opt;
        o4.granule = 8;
        train::NextItemTrainer<float, models::SASRec<float>> t4(four, seqs, 40, 10, o4);
        for (int s = 0; s < 4; ++s) {  // 3 steps per epoch (70 users): crosses an epoch and a short batch
            const double lw = tw.train_step(be, pool), l1 = t1.train_step(be, pool), l4 = t4.train_step(be, pool);
            CHECK(l1 == lw);
            CHECK(l4 == Approx(lw).epsilon(1e-5));
            CHECK(grads(one.params()) == grads(whole.params()));  // bit for bit
            // Four granules: the same gradient up to the order of the float sums. (The weights are not
            // compared: Adam divides by sqrt(v), so rounding in near-zero gradients moves them by ~lr.)
            const auto a = grads(four.params()), b = grads(whole.params());
            double worst = 0, scale = 0;
            for (std::size_t i = 0; i < a.size(); ++i) {
                worst = std::max(worst, double(std::abs(a[i] - b[i])));
                scale = std::max(scale, double(std::abs(b[i])));
            }
            CHECK(worst <= 1e-5 * scale);
            // Let every trainer go on from the same weights.
            const auto w = snapshot(whole.params());
            for (auto* m : {&one, &four}) {
                std::size_t at = 0;
                for (const auto& p : m->params())
                    for (index_t i = 0; i < p.numel(); ++i) p.value[i] = w[at++];
            }
        }
        CHECK(snapshot(one.params()) == snapshot(whole.params()));
        CHECK(t4.last_batch_size() == 32);  // step 3 opens the second epoch
    }
}

TEST_CASE("granular training: dropout masks follow the granule, not the batch", "[distributed][train]") {
    const auto seqs = toy_sequences(64, 40, 14);
    ThreadPool pool(1);
    const backend::Cpu<isa::Dispatch> be{&pool};
    train::NextItemTrainingOptions opt;
    opt.batch_size = 32;
    opt.granule = 16;
    models::SASRec<float> a(toy_config(0.2, 0.0), Rng(3)), b(toy_config(0.2, 0.0), Rng(3));
    train::NextItemTrainer<float, models::SASRec<float>> ta(a, seqs, 40, 10, opt);
    train::NextItemTrainer<float, models::SASRec<float>> tb(b, seqs, 40, 10, opt);
    for (int s = 0; s < 3; ++s) CHECK(ta.train_step(be, pool) == tb.train_step(be, pool));
    CHECK(snapshot(a.params()) == snapshot(b.params()));  // deterministic
    auto bad = opt;
    bad.batch_size = 40;
    models::SASRec<float> c(toy_config(0.2, 0.0), Rng(3));
    CHECK_THROWS_WITH((train::NextItemTrainer<float, models::SASRec<float>>(c, seqs, 40, 10, bad)),
                      Catch::Contains("must be a multiple of the granule (16)"));
}

TEST_CASE("granular cloze training: one granule is the whole-batch step; several sum to its gradient",
          "[distributed][train]") {
    const auto seqs = toy_sequences(70, 40, 14);
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    models::BERT4RecConfig c;
    c.num_items = 40;
    c.max_len = 10;
    c.d_model = 16;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.0;  // the granule then only changes how the gradient is summed
    train::ClozeTrainingOptions opt;
    opt.batch_size = 32;
    opt.clip_norm = 0.0;  // the grads after a step are the step's gradient
    opt.warmup_steps = 2;
    models::BERT4Rec<float> whole(c, Rng(3)), one(c, Rng(3)), four(c, Rng(3));
    train::ClozeTrainer<float, models::BERT4Rec<float>> tw(whole, seqs, 40, opt);
    auto o1 = opt;
    o1.granule = 32;
    train::ClozeTrainer<float, models::BERT4Rec<float>> t1(one, seqs, 40, o1);
    auto o4 = opt;
    o4.granule = 8;
    train::ClozeTrainer<float, models::BERT4Rec<float>> t4(four, seqs, 40, o4);
    for (int s = 0; s < 4; ++s) {  // crosses the short last batch (6 users) and an epoch
        const double lw = tw.train_step(be, pool), l1 = t1.train_step(be, pool), l4 = t4.train_step(be, pool);
        CHECK(l1 == lw);
        CHECK(l4 == Approx(lw).epsilon(1e-5));
        CHECK(grads(one.params()) == grads(whole.params()));
        const auto a = grads(four.params()), b = grads(whole.params());
        double worst = 0, scale = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            worst = std::max(worst, double(std::abs(a[i] - b[i])));
            scale = std::max(scale, double(std::abs(b[i])));
        }
        CHECK(worst <= 1e-5 * scale);
        const auto w = snapshot(whole.params());
        for (auto* m : {&one, &four}) {
            std::size_t at = 0;
            for (const auto& p : m->params())
                for (index_t i = 0; i < p.numel(); ++i) p.value[i] = w[at++];
        }
    }
    CHECK(snapshot(one.params()) == snapshot(whole.params()));
}
