// Data-parallel SASRec training over MPI (docs/distributed.md). Built only
// with MPI (RECBLOCKS_WITH_MPI); run it under mpirun:
//
//   mpirun -np 2 sasrec_mpi --dataset data/ml-latest-small/ratings.csv --batch_size 128 --threads 1
//
// Every rank reads the data set and holds the replicated model; each step's
// global batch (batch_size × ranks) is cut into granules of --granule users
// (default: --batch_size), each rank computes its granules' gradients, and the
// gradients are summed in granule order across ranks, so the run equals, bit
// for bit, one process with --batch_size (batch_size × ranks) and the same
// --granule and --threads. Rank 0 prints and writes the checkpoints
// (--save, atomically); the last line is the test metrics' JSON, as `sasrec`.
//
// --load FILE resumes from a checkpoint of any run with the same global batch
// and granule, whatever its number of ranks; rank 0 prints a hash of the final
// weights, so runs can be compared.
//
// --max_steps S trains S steps only and prints the timing of each phase
// (median step time, time in the gradient sum across ranks, samples/s).
#include <recblocks/distributed/mpi_communicator.hpp>
#include <recblocks/recblocks.hpp>
#include <recblocks/train/checkpoint.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/args.hpp"
#include "common/recommender_cli.hpp"

namespace rb = recblocks;
using rb::index_t;

namespace {

std::vector<examples::FlagGroup> flag_groups() {
    return {
        examples::dataset_flags("the interactions (every rank reads the file)"),
        {"model",
         {{"maxlen", "200", "L: the longest history"},
          {"hidden_units", "50", "D"},
          {"num_blocks", "2", "transformer blocks"},
          {"num_heads", "1", "attention heads (must divide D)"},
          {"dropout_rate", "0.2", "dropout of embeddings, attention and feed-forward", "X"},
          {"l2_emb", "0", "adds l2_emb/2 * ||E||^2 to the loss", "X"}}},
        {"training (data-parallel)",
         {{"batch_size", "128", "sequences per rank and step (the global batch is ranks x this)"},
          {"granule", "(--batch_size)", "sequences per gradient granule: the unit summed in a fixed order", "N"},
          {"lr", "0.001", "Adam's learning rate", "X"},
          {"num_epochs", "200", "epochs over the training users"},
          {"max_steps", "0", "stop after N steps (0: no limit)"},
          {"seed", "42", "batches, negatives, dropout, initialisation"},
          {"threads", "1", "threads per rank"},
          {"timeout", "600", "seconds a collective may wait for the other ranks before the job ends", "S"},
          {"save", "", "rank 0 writes a checkpoint after every epoch (atomically)", "FILE"},
          {"load", "", "resume a --save checkpoint, from a run on any number of ranks", "FILE"}}},
        {"evaluation", {{"eval", "sampled", "protocol: 100 sampled negatives or the full catalogue", "sampled|full"}}},
    };
}

const char* kUsage = "usage: mpirun -np N sasrec_mpi --dataset FILE [options]    (docs/distributed.md)\n";

/// FNV-1a over every parameter's bits: equal runs print equal hashes.
std::uint64_t weights_hash(const rb::ParamList<float>& params) {
    std::uint64_t h = rb::distributed::hash_bytes(nullptr, 0);
    for (const auto& p : params) h = rb::distributed::hash_bytes(p.value, std::size_t(p.numel()) * sizeof(float), h);
    return h;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int run(const examples::Args& a, rb::distributed::MpiCommunicator& comm) {
    const int ranks = comm.size();
    const bool lead = comm.rank() == 0;
    const index_t batch = a.integer_in("batch_size", 128, 1, examples::kMaxCount);
    const index_t granule = a.integer_in("granule", batch, 1, batch);
    const index_t epochs = a.integer_in("num_epochs", 200, 0, examples::kMaxCount);
    const index_t max_steps = a.integer_in("max_steps", 0, 0, examples::kMaxCount);
    const int threads = static_cast<int>(a.integer_in("threads", 1, 1, examples::kMaxThreads));
    const std::uint64_t seed = static_cast<std::uint64_t>(a.integer("seed", 42));
    const std::string proto = a.str("eval", "sampled");
    if (proto != "sampled" && proto != "full") throw rb::ValueError("--eval must be sampled or full, got '" + proto + "'");

    const auto dataset = examples::read_dataset(a);
    const auto split = rb::data::leave_one_out(dataset);
    rb::models::SASRecConfig cfg;
    cfg.num_items = dataset.num_items();
    cfg.max_len = a.integer_in("maxlen", 200, 1, examples::kMaxCount);
    cfg.d_model = a.integer_in("hidden_units", 50, 1, examples::kMaxCount);
    cfg.num_blocks = a.integer_in("num_blocks", 2, 1, examples::kMaxCount);
    cfg.heads = a.integer_in("num_heads", 1, 1, cfg.d_model);
    cfg.dropout = a.real_in("dropout_rate", 0.2, 0.0, 1.0, true);
    cfg.l2_emb = a.real_in("l2_emb", 0.0, 0.0, 1e9);
    if (cfg.d_model % cfg.heads != 0) throw rb::ValueError("--num_heads must divide --hidden_units");
    examples::check_memory_budget({.items = cfg.num_items, .maxlen = cfg.max_len, .dim = cfg.d_model,
                                   .heads = cfg.heads, .blocks = cfg.num_blocks, .batch = granule});

    rb::ThreadPool pool(threads);
    const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
    rb::models::SASRec<float> model(cfg, rb::Rng(seed));
    rb::train::NextItemTrainingOptions opt;
    opt.batch_size = batch * ranks;
    opt.granule = granule;
    opt.lr = a.positive("lr", 1e-3);
    opt.seed = seed;
    using rb::distributed::double_bits;
    // The model's configuration joins the trainer's handshake (data, weights, optimiser, batch).
    rb::train::NextItemTrainer<float, rb::models::SASRec<float>, rb::distributed::MpiCommunicator> trainer(
        model, split.train, cfg.num_items, cfg.max_len, opt, comm,
        {{"hidden_units", std::uint64_t(cfg.d_model)}, {"num_blocks", std::uint64_t(cfg.num_blocks)},
         {"num_heads", std::uint64_t(cfg.heads)}, {"dropout_rate", double_bits(cfg.dropout)},
         {"l2_emb", double_bits(cfg.l2_emb)}, {"threads per rank", std::uint64_t(threads)}});
    if (a.has("load")) {
        // Every rank reads the same checkpoint; it may come from a run on another number of ranks
        // (the steps do not depend on it, only on the global batch and the granule).
        const auto ck = rb::train::load_checkpoint<float>(a.str("load", ""), model.params(), &trainer.optimizer());
        trainer.set_step(ck.step);
        const std::vector<rb::distributed::HandshakeField> loaded = {
            {"checkpoint step", static_cast<std::uint64_t>(ck.step)}, {"checkpoint weights (hash)", weights_hash(model.params())}};
        rb::distributed::handshake(comm, std::span<const rb::distributed::HandshakeField>(loaded));
        if (lead) std::printf("sasrec_mpi: resumed from %s at step %lld\n", a.str("load", "").c_str(),
                              static_cast<long long>(ck.step));
    }
    if (lead)
        std::printf("sasrec_mpi: %d ranks x %d threads, %lld users, %lld items; D=%lld L=%lld; batch %lld per rank "
                    "(global %lld), granule %lld\n",
                    ranks, threads, static_cast<long long>(dataset.num_users()), static_cast<long long>(cfg.num_items),
                    static_cast<long long>(cfg.d_model), static_cast<long long>(cfg.max_len),
                    static_cast<long long>(batch), static_cast<long long>(batch * ranks),
                    static_cast<long long>(granule));

    if (max_steps > 0) {  // timing run
        std::vector<double> step_s, reduce_s;
        for (index_t s = 0; s < max_steps; ++s) {
            comm.barrier();  // every step starts together: the sum's time is its own, not a wait
            const auto t0 = std::chrono::steady_clock::now();
            trainer.train_step(be, pool);
            step_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            reduce_s.push_back(trainer.last_reduce_seconds());
        }
        const double st = median(step_s), rd = median(reduce_s);
        if (lead)
            std::printf("{\"ranks\": %d, \"threads\": %d, \"steps\": %lld, \"step_ms\": %.2f, \"allreduce_ms\": %.3f, "
                        "\"allreduce_share\": %.4f, \"samples_per_second\": %.1f}\n",
                        ranks, threads, static_cast<long long>(max_steps), 1e3 * st, 1e3 * rd, rd / st,
                        double(batch * ranks) / st);
        return 0;
    }

    const rb::io::ItemIdMap item_map(dataset.item_ids);
    double seconds = 0;
    index_t sequences = 0;
    for (std::int64_t e = trainer.epoch(); e < epochs; ++e) {
        const auto stats = trainer.train_epoch(be, pool);
        seconds += stats.seconds;
        sequences += stats.sequences;
        if (lead) {
            std::printf("epoch %lld  loss %s  %s seq/s\n", static_cast<long long>(stats.epoch),
                        examples::fmt(stats.mean_loss).c_str(), examples::fmt(stats.sequences_per_second()).c_str());
            std::fflush(stdout);
            if (a.has("save"))  // one writer; save_checkpoint replaces the file atomically
                rb::train::save_checkpoint<float>(
                    a.str("save", ""), model.params(), &trainer.optimizer(), trainer.step(),
                    examples::describing_metadata(
                        rb::models::ModelDescription::of(cfg, rb::models::norm_kind<rb::policies::QueryNorm>()), seed),
                    [&](rb::io::SafetensorsWriter& w) { item_map.add_to(w); });
        }
    }
    comm.barrier();  // no rank leaves while rank 0 still writes
    if (lead) {
        std::printf("sasrec_mpi: step %lld, weights fnv1a %016llx\n", static_cast<long long>(trainer.step()),
                    static_cast<unsigned long long>(weights_hash(model.params())));
        rb::eval::NextItemEvalOptions eopt;
        eopt.protocol = proto == "sampled" ? rb::eval::Protocol::sampled : rb::eval::Protocol::full;
        eopt.seed = seed;
        const auto m = rb::eval::evaluate_next_item(model, be, pool, split, cfg.num_items, cfg.max_len, eopt);
        examples::print_final_json("sasrec", proto, m, trainer.epoch(), seconds > 0 ? double(sequences) / seconds : 0.0,
                                   threads);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    rb::distributed::MpiSession session(&argc, &argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    try {
        const examples::Args a(argc, argv, flag_groups());
        if (a.has("help")) {
            if (rank == 0) a.print_help(stdout, kUsage);
            return 0;
        }
        const double timeout = a.real_in("timeout", 600.0, 1e-3, 1e9);
        rb::distributed::MpiCommunicator comm(MPI_COMM_WORLD, timeout);
        return run(a, comm);
    } catch (const std::exception& e) {
        // Every rank reaches the same errors (flags, data, handshake); each says so, then all stop.
        std::fprintf(stderr, "sasrec_mpi: rank %d: error: %s\n", rank, e.what());
        return 1;
    }
}
