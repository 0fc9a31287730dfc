// Beam search over 3-level semantic IDs (3 x 256 codes) of a 10k-item
// catalogue, Q users per batch, k = 10 results, on backend::Cpu<isa::Dispatch>:
//
//   BM_Decoding_ModelOnly/Q/D/threads/L         the model's calls alone, replaying
//                                               the exact steps a constrained search makes
//   BM_Decoding_Constrained/Q/D/threads/s/L     catalogue-aware beam search (trie)
//   BM_Decoding_Unconstrained/Q/D/threads/s/L   plain beam search over the 256^3 code space
//
// s = 0: beam 20 at every level (the bar); s = 1: RecGPT's schedule
// (10 beams, then 5 expansions per beam, 20 kept).
//
// The stand-in model is a small decoder's output head: per row, hidden = the
// user's state + the embeddings of the prefix codes (one per level, [256, D]),
// logits = hidden [P, D] x W_t [D, 256] (ops::gemm), then log-softmax (the
// vectorised ops::softmax_rows plus one log per row). L = 0 is that head alone
// (the strictest case for the bar); L = 2 adds two residual feed-forward blocks
// (D -> 4D -> D, ReLU) before the head, the MLP half of a 2-layer decoder. A
// real decoder also runs attention over its cache, so its own time is larger
// still and the relative overhead of the search smaller.
//
// Counters: overhead = (search time - time inside the model) / time inside the
// model, measured within the same iterations (steady_clock around each model
// call); overhead_cpu, the same ratio of process CPU time (all threads; not
// inflated when a busy host deschedules the benchmark); model_ms = wall time
// inside the model per iteration; invalid_rate (the unconstrained search):
// share of returned tuples that are no item's ID.
#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/decoding/constrained_beam_search.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/softmax.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;
using rb::index_t;
using clock_type = std::chrono::steady_clock;

/// CPU seconds of the whole process (all threads): robust to the host
/// descheduling the benchmark, which wall-clock ratios are not.
double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

constexpr index_t kItems = 10000;
constexpr index_t kLevels = 3;
constexpr std::int32_t kCodes = 256;
constexpr index_t kTopK = 10;

/// The catalogue: 10k distinct random 3-level IDs, and their trie.
struct Catalogue {
    std::vector<std::int32_t> sizes{kCodes, kCodes, kCodes};
    rb::Matrix<std::int32_t> codes;
    rb::tokenizers::CodeTrie trie;
    Catalogue() {
        std::mt19937 gen(2024);
        std::set<std::vector<std::int32_t>> seen;
        codes.resize(rb::Shape<2>{{kItems, kLevels}});
        for (index_t i = 0; i < kItems;) {
            std::vector<std::int32_t> t{static_cast<std::int32_t>(gen() % kCodes),
                                        static_cast<std::int32_t>(gen() % kCodes),
                                        static_cast<std::int32_t>(gen() % kCodes)};
            if (!seen.insert(t).second) continue;
            for (index_t l = 0; l < kLevels; ++l) codes(i, l) = t[static_cast<std::size_t>(l)];
            ++i;
        }
        trie = rb::tokenizers::CodeTrie(codes.cview(), sizes);
    }
};

const Catalogue& catalogue() {
    static const Catalogue c;
    return c;
}

/// The output head of a small decoder over semantic-ID tokens (see the top comment).
class HeadModel {
public:
    HeadModel(Be be, index_t users, index_t d, index_t max_rows, index_t layers = 0) : be_(be), d_(d) {
        for (index_t l = 0; l < layers; ++l) {
            w1_.emplace_back(rb::Shape<2>{{d, 4 * d}});
            w2_.emplace_back(rb::Shape<2>{{4 * d, d}});
            bench::fill_uniform(w1_.back(), static_cast<unsigned>(30 + l), -0.1f, 0.1f);
            bench::fill_uniform(w2_.back(), static_cast<unsigned>(40 + l), -0.05f, 0.05f);
        }
        inner_.resize(rb::Shape<2>{{max_rows, 4 * d}});
        user_.resize(rb::Shape<2>{{users, d}});
        bench::fill_uniform(user_, 1, -1.0f, 1.0f);
        for (index_t t = 0; t < kLevels; ++t) {
            emb_.emplace_back(rb::Shape<2>{{kCodes, d}});
            head_.emplace_back(rb::Shape<2>{{d, kCodes}});
            bench::fill_uniform(emb_.back(), static_cast<unsigned>(10 + t), -0.5f, 0.5f);
            bench::fill_uniform(head_.back(), static_cast<unsigned>(20 + t), -0.3f, 0.3f);
        }
        hidden_.resize(rb::Shape<2>{{max_rows, d}});
        probs_.resize(rb::Shape<2>{{max_rows, kCodes}});
    }

    void next_code_log_probs(const rb::decoding::DecodeStep& step, rb::MatrixView<float> out) {
        const auto start = clock_type::now();
        const double cpu_start = process_cpu_seconds();
        const index_t p = step.rows();
        for (index_t r = 0; r < p; ++r) {
            float* h = hidden_.data() + r * d_;
            const float* u = user_.data() + step.query[static_cast<std::size_t>(r)] * d_;
            for (index_t j = 0; j < d_; ++j) h[j] = u[j];
            for (index_t t = 0; t < step.level; ++t) {
                const float* e = emb_[static_cast<std::size_t>(t)].data() + step.prefixes(r, t) * d_;
                for (index_t j = 0; j < d_; ++j) h[j] += e[j];
            }
        }
        const auto hm = rb::matrix_view(hidden_.data(), p, d_);
        const auto im = rb::matrix_view(inner_.data(), p, 4 * d_);
        for (std::size_t l = 0; l < w1_.size(); ++l) {  // hidden += relu(hidden W1) W2
            rb::ops::gemm<Be, float>(be_, rb::Trans::no, rb::Trans::no, 1.0f, hm, w1_[l].cview(), 0.0f, im);
            rb::ops::relu_forward<Be, float>(be_, im, im);
            rb::ops::gemm<Be, float>(be_, rb::Trans::no, rb::Trans::no, 1.0f, im, w2_[l].cview(), 1.0f, hm);
        }
        const auto hv = rb::matrix_view<const float>(hidden_.data(), p, d_);
        rb::ops::gemm<Be, float>(be_, rb::Trans::no, rb::Trans::no, 1.0f, hv,
                                 head_[static_cast<std::size_t>(step.level)].cview(), 0.0f, out);
        // log_softmax(x)_c = x_c - max + log(softmax(x)_argmax): softmax's largest
        // entry is 1 / sum exp(x - max).
        const auto pv = rb::matrix_view(probs_.data(), p, out.cols());
        rb::ops::softmax_rows<Be, float>(be_, out, pv);
        for (index_t r = 0; r < p; ++r) {
            float* x = out.row(r);
            index_t best = 0;
            for (index_t c = 1; c < out.cols(); ++c)
                if (x[c] > x[best]) best = c;
            const float shift = x[best] - std::log(pv(r, best));
            for (index_t c = 0; c < out.cols(); ++c) x[c] -= shift;
        }
        cpu_seconds_ += process_cpu_seconds() - cpu_start;
        seconds_ += std::chrono::duration<double>(clock_type::now() - start).count();
        if (record_) steps_.push_back(Recorded{step.level, {step.query.begin(), step.query.end()},
                                                {step.parent.begin(), step.parent.end()},
                                                {step.prefixes.data(), step.prefixes.data() + p * step.level}});
    }

    /// The steps of one search, to replay without the search around them.
    struct Recorded {
        index_t level;
        std::vector<std::int32_t> query, parent, prefixes;
    };
    void record(bool on) {
        record_ = on;
        if (on) steps_.clear();
    }
    [[nodiscard]] const std::vector<Recorded>& steps() const { return steps_; }
    [[nodiscard]] double seconds() const { return seconds_; }
    [[nodiscard]] double cpu_seconds() const { return cpu_seconds_; }
    void reset_clock() { seconds_ = cpu_seconds_ = 0.0; }

private:
    Be be_;
    index_t d_;
    rb::Matrix<float> user_, hidden_, inner_, probs_;
    std::vector<rb::Matrix<float>> emb_, head_, w1_, w2_;
    double seconds_ = 0.0, cpu_seconds_ = 0.0;
    bool record_ = false;
    std::vector<Recorded> steps_;
};
static_assert(rb::decoding::NextCodeModel<HeadModel>);

rb::decoding::BeamSearchOptions schedule(index_t s, rb::ThreadPool& pool) {
    auto o = s == 1 ? rb::decoding::BeamSearchOptions::recgpt(kLevels) : rb::decoding::BeamSearchOptions{};
    o.beam_width = 20;
    o.pool = pool.size() > 1 ? &pool : nullptr;
    return o;
}

void BM_Decoding_ModelOnly(benchmark::State& state) {
    constexpr int kLayersArg = 3;  // index of the "L" argument
    const index_t q = state.range(0), d = state.range(1);
    auto& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    const auto& cat = catalogue();
    HeadModel model(be, q, d, q * 20, state.range(kLayersArg));
    rb::Matrix<rb::row_id_t> items(rb::Shape<2>{{q, kTopK}});
    rb::Matrix<float> scores(rb::Shape<2>{{q, kTopK}});
    rb::decoding::BeamSearchWorkspace ws;
    model.record(true);
    rb::decoding::constrained_beam_search(model, cat.trie, q, kTopK, items.view(), scores.view(), ws,
                                          schedule(0, pool));
    model.record(false);
    const auto steps = model.steps();
    rb::Matrix<float> out(rb::Shape<2>{{q * 20, kCodes}});
    for (auto _ : state) {
        for (const auto& s : steps) {
            const auto p = static_cast<index_t>(s.query.size());
            rb::decoding::DecodeStep step{s.level, s.query, s.parent,
                                          rb::matrix_view<const std::int32_t>(s.prefixes.data(), p, s.level)};
            model.next_code_log_probs(step, rb::matrix_view(out.data(), p, kCodes));
        }
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * q);  // users decoded
}

void BM_Decoding_Constrained(benchmark::State& state) {
    constexpr int kLayersArg = 4;  // index of the "L" argument
    const index_t q = state.range(0), d = state.range(1);
    auto& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    const auto& cat = catalogue();
    HeadModel model(be, q, d, q * 20, state.range(kLayersArg));
    rb::Matrix<rb::row_id_t> items(rb::Shape<2>{{q, kTopK}});
    rb::Matrix<float> scores(rb::Shape<2>{{q, kTopK}});
    rb::decoding::BeamSearchWorkspace ws;
    const auto opt = schedule(state.range(3), pool);
    rb::decoding::constrained_beam_search(model, cat.trie, q, kTopK, items.view(), scores.view(), ws, opt);  // warm
    model.reset_clock();
    double total = 0.0, cpu_total = 0.0;
    for (auto _ : state) {
        const auto start = clock_type::now();
        const double cpu_start = process_cpu_seconds();
        rb::decoding::constrained_beam_search(model, cat.trie, q, kTopK, items.view(), scores.view(), ws, opt);
        cpu_total += process_cpu_seconds() - cpu_start;
        total += std::chrono::duration<double>(clock_type::now() - start).count();
        benchmark::ClobberMemory();
    }
    state.counters["overhead"] = (total - model.seconds()) / model.seconds();
    state.counters["overhead_cpu"] = (cpu_total - model.cpu_seconds()) / model.cpu_seconds();
    state.counters["model_ms"] = 1e3 * model.seconds() / static_cast<double>(state.iterations());
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * q);
}

void BM_Decoding_Unconstrained(benchmark::State& state) {
    constexpr int kLayersArg = 4;  // index of the "L" argument
    const index_t q = state.range(0), d = state.range(1);
    auto& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    const auto& cat = catalogue();
    HeadModel model(be, q, d, q * 20, state.range(kLayersArg));
    rb::Tensor<std::int32_t, 3> codes(rb::Shape<3>{{q, kTopK, kLevels}});
    rb::Matrix<float> scores(rb::Shape<2>{{q, kTopK}});
    rb::decoding::BeamSearchWorkspace ws;
    const auto opt = schedule(state.range(3), pool);
    rb::decoding::beam_search(model, cat.sizes, q, kTopK, codes.view(), scores.view(), ws, opt);  // warm
    model.reset_clock();
    double total = 0.0, cpu_total = 0.0;
    for (auto _ : state) {
        const auto start = clock_type::now();
        const double cpu_start = process_cpu_seconds();
        rb::decoding::beam_search(model, cat.sizes, q, kTopK, codes.view(), scores.view(), ws, opt);
        cpu_total += process_cpu_seconds() - cpu_start;
        total += std::chrono::duration<double>(clock_type::now() - start).count();
        benchmark::ClobberMemory();
    }
    state.counters["overhead"] = (total - model.seconds()) / model.seconds();
    state.counters["overhead_cpu"] = (cpu_total - model.cpu_seconds()) / model.cpu_seconds();
    state.counters["model_ms"] = 1e3 * model.seconds() / static_cast<double>(state.iterations());
    state.counters["invalid_rate"] = rb::decoding::count_invalid_ids(cat.trie, codes.cview()).rate();
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * q);
}

BENCHMARK(BM_Decoding_ModelOnly)
    ->ArgNames({"Q", "D", "threads", "L"})
    ->ArgsProduct({{64}, {64, 128}, {1, 2}, {0, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Decoding_Constrained)
    ->ArgNames({"Q", "D", "threads", "sched", "L"})
    ->ArgsProduct({{64}, {64, 128}, {1, 2}, {0, 1}, {0, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Decoding_Unconstrained)
    ->ArgNames({"Q", "D", "threads", "sched", "L"})
    ->ArgsProduct({{64}, {64, 128}, {1, 2}, {0, 1}, {0, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
