// dare_ctr: decoupled (DARE) vs coupled embeddings for long-sequence target
// attention on a click-through task from MovieLens ml-latest-small.
//
//   dare_ctr [--data DIR] [--epochs E] [--dim D_R] [--attention_dim D_A] [--top_k K] [--batch B] [--lr LR]
//            [--test_events T] [--seed S] [--quick 1]
//
// Task (data/long_history_ctr.hpp): each user's ratings in time order; every
// event after the first 20 is a positive (target = the rated item, history =
// everything the user rated before it), with one negative drawn from the items
// the user never rated, same history. The last --test_events events of each
// user are the test impressions.
//
// Models (models/dare.hpp), trained with the same seed, batches and Adam (train::CtrTrainer):
//   coupled     one table [N, D_R] for search, attention and representation
//   decoupled   attention table [N, D_A] + representation table [N, D_R]
// and, when --attention_dim differs from --dim, a second decoupled model at
// D_A = D_R (equal width, as in DARE's main comparison).
// Test AUC and GAUC (eval/auc.hpp) side by side, then the search stage's speed
// (top-K over 10,000 behaviours) at d_a = D_R, D_R/2, D_R/4.
//
// The last line of stdout is one JSON object with every result. --quick (what
// CTest runs) trains on a sample of users for one epoch.
//
// ctest-args: --quick 1
#include <recblocks/recblocks.hpp>
#include <recblocks/data/long_history_ctr.hpp>
#include <recblocks/eval/auc.hpp>
#include <recblocks/models/dare.hpp>
#include <recblocks/train/ctr_trainer.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <string>

#include "common/args.hpp"

namespace rb = recblocks;
using rb::index_t;
using rb::row_id_t;

namespace {

std::vector<examples::FlagGroup> flag_groups() {
    return {{"data",
             {{"data", "(the bundled data/ml-latest-small)", "a MovieLens folder (ratings.csv)", "DIR"},
              {"test_events", "5", "the last events of each user kept for test"}}},
            {"model",
             {{"dim", "(64; 16 with --quick)", "D_R: the representation width", "N"},
              {"attention_dim", "(--dim / 4)", "D_A: the attention width of the decoupled model", "N"},
              {"top_k", "20", "behaviours kept by the search"}}},
            {"training",
             {{"epochs", "(3; 1 with --quick)", "epochs", "N"},
              {"batch", "256", "impressions per step"},
              {"lr", "0.001", "Adam's learning rate", "X"},
              {"seed", "42", "every random choice"},
              {"quick", "0", "one epoch on a sample of users (what CTest runs)", "0|1"}}}};
}

const char* kUsage = "usage: dare_ctr [options]    (the top of examples/dare_ctr.cpp explains the task)\n";

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The histories, targets and labels of impressions [i0, i1) of `order` as one batch.
struct BatchBuffers {
    std::vector<row_id_t> targets, history;
    std::vector<index_t> offsets;
    std::vector<float> labels;
    void fill(const rb::data::SequenceDataset& d, const std::vector<rb::data::CtrImpression>& xs,
              const std::vector<std::size_t>& order, std::size_t i0, std::size_t i1) {
        targets.clear();
        history.clear();
        labels.clear();
        offsets.assign(1, 0);
        for (std::size_t i = i0; i < i1; ++i) {
            const auto& x = xs[order[i]];
            const auto h = rb::data::LongHistoryCtr::history(d, x);
            history.insert(history.end(), h.begin(), h.end());
            offsets.push_back(static_cast<index_t>(history.size()));
            targets.push_back(x.target);
            labels.push_back(x.label);
        }
    }
    [[nodiscard]] rb::models::DareModel<float>::Batch batch() const { return {targets, offsets, history}; }
};

struct Result {
    std::string name;
    index_t attention_dim = 0;
    double auc = 0, gauc = 0, streaming_auc = 0, streaming_error = 0, train_seconds = 0, final_loss = 0;
};

struct Setup {
    rb::data::SequenceDataset data;
    rb::data::LongHistoryCtr task;
    index_t dim = 64, top_k = 20, batch = 256, epochs = 2;
    double lr = 1e-3;
    std::uint64_t seed = 42;
};

template <class Be>
Result train_and_test(const Setup& s, const Be& be, const std::string& name, rb::models::EmbeddingPolicy policy,
                      index_t attention_dim) {
    rb::models::DareModel<float>::Config cfg;
    cfg.num_items = s.data.num_items() + 1;  // ids 1..N (0 unused)
    cfg.representation_dim = s.dim;
    cfg.attention_dim = attention_dim;
    cfg.top_k = s.top_k;
    cfg.policy = policy;
    cfg.max_history = 10000;
    rb::models::DareModel<float> model(cfg, rb::Rng(s.seed));
    rb::train::CtrTrainingOptions to;
    to.lr = s.lr;
    rb::train::CtrTrainer<float, rb::models::DareModel<float>> trainer(model, to);

    std::vector<std::size_t> order(s.task.train.size());
    BatchBuffers buf;
    const auto t0 = std::chrono::steady_clock::now();
    double loss_sum = 0;
    index_t loss_n = 0;
    for (index_t epoch = 0; epoch < s.epochs; ++epoch) {
        // The same shuffle for every model: seeded Fisher-Yates per epoch.
        std::iota(order.begin(), order.end(), std::size_t{0});
        const rb::Rng shuffle(s.seed, 1000 + std::uint64_t(epoch));
        for (std::size_t i = order.size(); i > 1; --i)
            std::swap(order[i - 1], order[shuffle.below(i, static_cast<std::uint32_t>(i))]);
        loss_sum = 0;
        loss_n = 0;
        for (std::size_t i0 = 0; i0 < order.size(); i0 += std::size_t(s.batch)) {
            const std::size_t i1 = std::min(order.size(), i0 + std::size_t(s.batch));
            buf.fill(s.data, s.task.train, order, i0, i1);
            loss_sum += trainer.train_step(be, buf.batch(), buf.labels);
            ++loss_n;
        }
        std::fprintf(stderr, "  %-26s epoch %lld: train loss %.4f (%.1f s)\n", name.c_str(),
                     static_cast<long long>(epoch + 1), loss_sum / double(loss_n), seconds_since(t0));
    }
    Result r{name, model.attention_dim()};
    r.train_seconds = seconds_since(t0);
    r.final_loss = loss_sum / double(std::max<index_t>(1, loss_n));

    // Test: logits of every test impression, then AUC/GAUC (exact) and the streaming AUC on sigmoid outputs.
    std::vector<std::size_t> test_order(s.task.test.size());
    std::iota(test_order.begin(), test_order.end(), std::size_t{0});
    std::vector<float> scores(s.task.test.size()), labels(s.task.test.size());
    std::vector<std::int64_t> users(s.task.test.size());
    for (std::size_t i0 = 0; i0 < test_order.size(); i0 += 512) {
        const std::size_t i1 = std::min(test_order.size(), i0 + 512);
        buf.fill(s.data, s.task.test, test_order, i0, i1);
        model.forward(be, buf.batch(), std::span<float>(scores.data() + i0, i1 - i0));
    }
    rb::eval::StreamingAuc streaming(4096, 0.0, 1.0);
    for (std::size_t i = 0; i < s.task.test.size(); ++i) {
        labels[i] = s.task.test[i].label;
        users[i] = s.task.test[i].user;
        streaming.add(1.0 / (1.0 + std::exp(-double(scores[i]))), int(labels[i]));
    }
    r.auc = rb::eval::auc<float, float>(scores, labels);
    r.gauc = rb::eval::gauc<float, float>(scores, labels, users).gauc;
    r.streaming_auc = streaming.value();
    r.streaming_error = streaming.error_bound();
    return r;
}

/// Microseconds per search (top-k over 10,000 random behaviours of the catalogue) at width d.
template <class Be>
double search_microseconds(const Be& be, index_t items, index_t d, index_t k, index_t reps) {
    rb::blocks::DecoupledEmbedding<float> emb({.num_ids = items, .attention_dim = d, .representation_dim = 1, .init_std = 0.1}, rb::Rng(5));
    const auto& table = emb.table(rb::blocks::EmbeddingTable::attention);
    const index_t n = 10000;
    std::vector<row_id_t> hist(static_cast<std::size_t>(n));
    const rb::Rng r(6);
    for (index_t j = 0; j < n; ++j) hist[std::size_t(j)] = static_cast<row_id_t>(r.below(std::uint64_t(j), std::uint32_t(items)));
    std::vector<float> scores(static_cast<std::size_t>(n)), top(static_cast<std::size_t>(k));
    std::vector<row_id_t> pos(static_cast<std::size_t>(k));
    const float scale = 1.0f / std::sqrt(float(d));
    double best = 1e30;
    for (int round = 0; round < 5; ++round) {
        const auto t0 = std::chrono::steady_clock::now();
        for (index_t i = 0; i < reps; ++i) {
            const float* q = table.data() + (i % items) * d;
            rb::models::dare_search(be, rb::matrix_view<const float>(table.data(), items, d), std::span<const row_id_t>(hist), q, k, scale, scores.data(),
                                    top.data(), pos.data());
        }
        best = std::min(best, seconds_since(t0) / double(reps) * 1e6);
    }
    return best;
}

int run(const examples::Args& a) {
    // Every count is checked (an error naming the flag) before the data is read or anything allocated.
    const bool quick = a.integer_in("quick", 0, 0, 1) != 0;
    Setup s;
    s.seed = static_cast<std::uint64_t>(a.integer("seed", 42));
    s.dim = a.integer_in("dim", quick ? 16 : 64, 1, 65536);
    const index_t att_dim = a.integer_in("attention_dim", s.dim / 4 > 0 ? s.dim / 4 : 1, 1, 65536);
    s.top_k = a.integer_in("top_k", 20, 1, 1000000);
    s.batch = a.integer_in("batch", 256, 1, 1000000);
    s.epochs = a.integer_in("epochs", quick ? 1 : 3, 0, 1000000);
    s.lr = a.positive("lr", 1e-3);
    const index_t test_events = a.integer_in("test_events", 5, 1, 1000000);
    const std::string dir = a.str("data", std::string(RECBLOCKS_SOURCE_DIR) + "/data/ml-latest-small");
    s.data = rb::data::read_movielens_csv(dir + "/ratings.csv");
    if (quick) {  // every 8th user: a smoke test of a few seconds
        rb::data::SequenceDataset small;
        small.item_ids = s.data.item_ids;
        for (index_t u = 0; u < s.data.num_users(); u += 8) {
            small.sequences.push_back(s.data.sequences[std::size_t(u)]);
            small.user_ids.push_back(s.data.user_ids[std::size_t(u)]);
        }
        s.data = std::move(small);
    }
    rb::data::LongHistoryCtrOptions to;
    to.min_history = s.top_k;
    to.test_events = test_events;
    to.seed = s.seed;
    s.task = rb::data::build_long_history_ctr(s.data, to);
    std::printf("ml-latest-small CTR: %lld users, %lld items, %zu train and %zu test impressions (1 negative per "
                "positive, last %lld events per user for test)\n",
                static_cast<long long>(s.data.num_users()), static_cast<long long>(s.data.num_items()),
                s.task.train.size(), s.task.test.size(), static_cast<long long>(to.test_events));
    std::printf("model: top_k %lld, d_r %lld, MLP 200-80, Adam lr %g, batch %lld, %lld epochs, seed %llu\n",
                static_cast<long long>(s.top_k), static_cast<long long>(s.dim), s.lr, static_cast<long long>(s.batch),
                static_cast<long long>(s.epochs), static_cast<unsigned long long>(s.seed));

    rb::ThreadPool pool(1);
    const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
    using rb::models::EmbeddingPolicy;
    std::vector<Result> results;
    results.push_back(train_and_test(s, be, "coupled", EmbeddingPolicy::coupled, s.dim));
    results.push_back(train_and_test(s, be, "decoupled d_a=d_r", EmbeddingPolicy::decoupled, s.dim));
    if (att_dim != s.dim)
        results.push_back(train_and_test(s, be, "decoupled d_a=" + std::to_string(att_dim), EmbeddingPolicy::decoupled,
                                         att_dim));

    std::printf("\n%-24s %6s %8s %8s %14s %10s\n", "model", "d_a", "AUC", "GAUC", "streaming AUC", "train s");
    for (const auto& r : results)
        std::printf("%-24s %6lld %8.4f %8.4f %8.4f±%.0e %10.1f\n", r.name.c_str(), static_cast<long long>(r.attention_dim),
                    r.auc, r.gauc, r.streaming_auc, r.streaming_error, r.train_seconds);
    std::printf("decoupled - coupled AUC: %+.4f (d_a = d_r)", results[1].auc - results[0].auc);
    if (results.size() > 2) std::printf(", %+.4f (d_a = %lld)", results[2].auc - results[0].auc, static_cast<long long>(att_dim));
    std::printf("\n");

    // The search stage alone: top-k over 10,000 behaviours gathered from the catalogue's table.
    const index_t reps = quick ? 50 : 400;
    const index_t widths[3] = {s.dim, std::max<index_t>(1, s.dim / 2), std::max<index_t>(1, s.dim / 4)};
    double us[3];
    std::printf("\nsearch stage, top-%lld of 10,000 behaviours (1 thread, %s):\n", static_cast<long long>(s.top_k),
                std::string(rb::isa_name(rb::active_isa())).c_str());
    for (int i = 0; i < 3; ++i) {
        us[i] = search_microseconds(be, s.data.num_items() + 1, widths[i], s.top_k, reps);
        std::printf("  d_a = %3lld: %8.1f us per target (%.2fx vs d_a = d_r)\n", static_cast<long long>(widths[i]), us[i],
                    us[0] / us[i]);
    }

    std::printf("{\"example\":\"dare_ctr\",\"quick\":%s,\"seed\":%llu,\"epochs\":%lld,\"d_r\":%lld,\"top_k\":%lld,"
                "\"train_impressions\":%zu,\"test_impressions\":%zu,\"models\":[",
                quick ? "true" : "false", static_cast<unsigned long long>(s.seed), static_cast<long long>(s.epochs),
                static_cast<long long>(s.dim), static_cast<long long>(s.top_k), s.task.train.size(), s.task.test.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        std::printf("%s{\"name\":\"%s\",\"d_a\":%lld,\"auc\":%.6f,\"gauc\":%.6f,\"streaming_auc\":%.6f,"
                    "\"train_loss\":%.6f,\"train_seconds\":%.2f}",
                    i ? "," : "", r.name.c_str(), static_cast<long long>(r.attention_dim), r.auc, r.gauc, r.streaming_auc,
                    r.final_loss, r.train_seconds);
    }
    std::printf("],\"auc_diff_equal_width\":%.6f,\"search_us\":{\"%lld\":%.2f,\"%lld\":%.2f,\"%lld\":%.2f}}\n",
                results[1].auc - results[0].auc, static_cast<long long>(widths[0]), us[0],
                static_cast<long long>(widths[1]), us[1], static_cast<long long>(widths[2]), us[2]);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const examples::Args a(argc, argv, flag_groups());
        if (a.has("help")) {
            a.print_help(stdout, kUsage);
            return 0;
        }
        return run(a);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dare_ctr: %s\n", e.what());
        return 1;
    }
}
