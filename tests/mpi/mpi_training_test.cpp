// Data-parallel SASRec and BERT4Rec: N ranks at per-rank batch b reproduce one process at
// batch N·b bit for bit (weights and losses after steps that cross an epoch
// boundary and a short last batch), with one granule per rank and with two.
// Every rank computes the one-process reference itself and compares.
#include <catch2/catch.hpp>

#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/distributed/mpi_communicator.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/train/cloze_trainer.hpp"
#include "recblocks/train/next_item_trainer.hpp"

using namespace recblocks;

namespace {

std::vector<std::vector<row_id_t>> sequences(index_t users, index_t items) {
    std::vector<std::vector<row_id_t>> seqs;
    const Rng rng(11);
    for (index_t u = 0; u < users; ++u) {
        const index_t len = 2 + static_cast<index_t>(rng.below(2 * std::uint64_t(u), 30));  // some shorter than L
        std::vector<row_id_t> s;
        for (index_t t = 0; t < len; ++t)
            s.push_back(static_cast<row_id_t>(1 + rng.below(2 * std::uint64_t(u) + 1 + 1000 * std::uint64_t(t),
                                                               static_cast<std::uint32_t>(items))));
        seqs.push_back(s);
    }
    return seqs;
}

models::SASRecConfig config() {
    models::SASRecConfig c;
    c.num_items = 60;
    c.max_len = 20;
    c.d_model = 16;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    c.l2_emb = 1e-3;
    return c;
}

std::vector<float> snapshot(const ParamList<float>& params) {
    std::vector<float> out;
    for (const auto& p : params) out.insert(out.end(), p.value, p.value + p.numel());
    return out;
}

}  // namespace

TEST_CASE("data-parallel SASRec: N ranks x b equal 1 process x N·b, bit for bit", "[mpi][train]") {
    distributed::MpiCommunicator comm(MPI_COMM_WORLD, 120.0);
    const int ranks = comm.size();
    const auto seqs = sequences(700, 60);
    ThreadPool pool(1);
    const backend::Cpu<isa::Dispatch> be{&pool};
    std::vector<std::pair<index_t, index_t>> cases = {{128, 128}, {64, 32}};  // (per-rank batch, granule)
    if (256 % (64 * ranks) == 0) cases.push_back({256 / ranks, 64});  // 1 x 256 = 2 x 128 = 4 x 64, granule 64
    for (const auto& [per_rank, granule] : cases) {
        train::NextItemTrainingOptions opt;
        opt.batch_size = per_rank * ranks;  // global: 2 x 128 = 256 on two ranks
        opt.granule = granule;
        opt.clip_norm = 1.0;
        opt.seed = 5;
        const int steps = 700 / int(opt.batch_size) + 2;  // into the second epoch, through a short batch

        models::SASRec<float> one(config(), Rng(9));
        train::NextItemTrainer<float, models::SASRec<float>> t1(one, seqs, 60, 20, opt);
        models::SASRec<float> many(config(), Rng(9));
        train::NextItemTrainer<float, models::SASRec<float>, distributed::MpiCommunicator> tn(many, seqs, 60, 20, opt,
                                                                                              comm);
        INFO("ranks " << ranks << ", per-rank batch " << per_rank << ", granule " << granule);
        for (int s = 0; s < steps; ++s) {
            const double l1 = t1.train_step(be, pool), ln = tn.train_step(be, pool);
            CHECK(ln == l1);
            CHECK(tn.last_batch_size() == t1.last_batch_size());
        }
        CHECK(snapshot(many.params()) == snapshot(one.params()));
        // The replicas agree with each other too (rank 0's weights broadcast and compared).
        auto w = snapshot(many.params());
        auto w0 = w;
        comm.broadcast(std::span<float>(w0), 0);
        CHECK(w == w0);
    }
}

TEST_CASE("data-parallel SASRec: ranks with different settings stop at the handshake", "[mpi][train]") {
    distributed::MpiCommunicator comm(MPI_COMM_WORLD, 120.0);
    const auto seqs = sequences(100, 60);
    train::NextItemTrainingOptions opt;
    opt.batch_size = 16 * comm.size();
    opt.granule = 16;
    opt.lr = comm.rank() == 1 ? 2e-3 : 1e-3;
    models::SASRec<float> m(config(), Rng(9));
    using Trainer = train::NextItemTrainer<float, models::SASRec<float>, distributed::MpiCommunicator>;
    CHECK_THROWS_WITH(Trainer(m, seqs, 60, 20, opt, comm), Catch::Contains("'lr' differs across ranks"));
    opt.lr = 1e-3;
    models::SASRec<float> other(config(), Rng(comm.rank() == 0 ? 9 : 10));  // another init seed
    CHECK_THROWS_WITH(Trainer(other, seqs, 60, 20, opt, comm),
                      Catch::Contains("'model weights at the start (hash)' differs across ranks"));
}

TEST_CASE("data-parallel BERT4Rec: N ranks x b equal 1 process x N·b, bit for bit", "[mpi][train]") {
    distributed::MpiCommunicator comm(MPI_COMM_WORLD, 120.0);
    const int ranks = comm.size();
    const auto seqs = sequences(400, 60);
    ThreadPool pool(1);
    const backend::Cpu<isa::Dispatch> be{&pool};
    models::BERT4RecConfig c;
    c.num_items = 60;
    c.max_len = 20;
    c.d_model = 16;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    for (const auto& [per_rank, granule] : {std::pair<index_t, index_t>{64, 64}, {32, 16}}) {
        train::ClozeTrainingOptions opt;
        opt.batch_size = per_rank * ranks;
        opt.granule = granule;
        opt.warmup_steps = 3;
        opt.seed = 5;
        const int steps = 400 / int(opt.batch_size) + 2;
        models::BERT4Rec<float> one(c, Rng(9)), many(c, Rng(9));
        train::ClozeTrainer<float, models::BERT4Rec<float>> t1(one, seqs, 60, opt);
        train::ClozeTrainer<float, models::BERT4Rec<float>, distributed::MpiCommunicator> tn(many, seqs, 60, opt, comm);
        INFO("ranks " << ranks << ", per-rank batch " << per_rank << ", granule " << granule);
        for (int s = 0; s < steps; ++s) {
            const double l1 = t1.train_step(be, pool), ln = tn.train_step(be, pool);
            CHECK(ln == l1);
            CHECK(tn.last_grad_norm() == t1.last_grad_norm());
        }
        CHECK(snapshot(many.params()) == snapshot(one.params()));
    }
}
