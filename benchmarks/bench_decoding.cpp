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
//
// The flat catalogue at scale: a synthetic 1e6-item catalogue, 3 levels x 256
// codes plus TIGER's collision code (4 levels), codes drawn level by level from
// Zipf-like distributions conditioned on the prefix (s = 0.8, 0.6, 0.4: uneven
// coarse clusters, as RQ codes of clustered vectors), beam 50, Q = 1 and 32:
//
//   BM_Flat_DecodeStep/Q           one decode step of a TIGER-sized generator for
//                                  the Q x 50 beam rows: IncrementalSASRec's one-
//                                  event append (KV-cached; d = 128, 4 blocks, 4
//                                  heads, FFN 1024, caches of 56..62 tokens) plus
//                                  the output GEMM to 256 codes and the log-softmax
//                                  (manual time: the states are restored, untimed,
//                                  every 6 appends)
//   BM_Flat_Mask/Q/level/impl      writing the catalogue mask into the log-probs
//                                  [rows, K_level] of the rows a beam-50 search
//                                  visits at that level: impl 0 = FlatCatalogue::
//                                  mask_log_probs (dense select / CSR gaps), 1 =
//                                  CodeTrie with the node carried by the beam (the
//                                  same CSR gaps), 2 = CodeTrie walked from the root
//                                  for every row (find(prefix), as a
//                                  prefix_allowed_tokens_fn does)
//   BM_Flat_Search/Q/impl          the whole constrained beam search (beam 50,
//                                  k = 10) with a replay model that copies stored
//                                  log-prob rows (its time is the counter model_ms):
//                                  impl 0 = FlatCatalogue, 1 = CodeTrie
#include <benchmark/benchmark.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/decoding/constrained_beam_search.hpp"
#include "recblocks/decoding/flat_catalogue.hpp"
#include "recblocks/models/incremental_sasrec.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"
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

// ---------------------------------------------------------------------------
// The flat catalogue at 1e6 items (see the top comment).

namespace {

constexpr index_t kBigItems = 1000000;
constexpr index_t kBeam = 50;

/// Draws rank r in [0, 256) with weight (r + 1)^-s.
struct ZipfDraw {
    std::vector<double> cdf;
    explicit ZipfDraw(double s) {
        double acc = 0.0;
        for (int r = 0; r < kCodes; ++r) cdf.push_back(acc += std::pow(r + 1.0, -s));
        for (double& c : cdf) c /= acc;
    }
    std::int32_t operator()(std::mt19937_64& gen) const {
        const double u = std::uniform_real_distribution<double>(0.0, 1.0)(gen);
        return static_cast<std::int32_t>(
            std::min<std::ptrdiff_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin(), kCodes - 1));
    }
};

std::uint64_t mix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// 1e6 items: code t = a prefix-dependent permutation of a Zipf rank (every
/// prefix has its own popular children), then TIGER's collision code.
struct BigCatalogue {
    rb::tokenizers::SemanticIds ids;
    rb::decoding::FlatCatalogue flat;
    rb::tokenizers::CodeTrie trie;
    BigCatalogue() {
        const ZipfDraw draw[3] = {ZipfDraw(0.8), ZipfDraw(0.6), ZipfDraw(0.4)};
        std::mt19937_64 gen(2026);
        rb::Matrix<std::int32_t> codes(rb::Shape<2>{{kBigItems, kLevels}});
        for (index_t i = 0; i < kBigItems; ++i) {
            std::uint64_t h = 1;
            for (index_t t = 0; t < kLevels; ++t) {
                const auto rank = static_cast<std::uint64_t>(draw[t](gen));
                // An odd multiplier and a prefix-dependent offset: a bijection of the ranks.
                const auto code = static_cast<std::int32_t>((rank * (2 * (h % 64) + 1) + (h >> 8)) % kCodes);
                codes(i, t) = code;
                h = mix64(h * 257 + static_cast<std::uint64_t>(code) + 1);
            }
        }
        const std::vector<std::int32_t> sizes{kCodes, kCodes, kCodes};
        ids = rb::tokenizers::SemanticIds(codes.cview(), sizes).with_disambiguation_code();
        flat = rb::decoding::FlatCatalogue(ids);
        trie = rb::tokenizers::CodeTrie(ids);
    }
};

const BigCatalogue& big_catalogue() {
    static const BigCatalogue c;
    return c;
}

void catalogue_counters(benchmark::State& state) {
    const auto& c = big_catalogue();
    state.counters["prefixes_l1"] = static_cast<double>(c.flat.num_prefixes(1));
    state.counters["prefixes_l2"] = static_cast<double>(c.flat.num_prefixes(2));
    state.counters["ids"] = static_cast<double>(c.flat.num_prefixes(3));
    state.counters["collision_K"] = static_cast<double>(c.flat.codebook_sizes()[3]);
    state.counters["dense_levels"] = static_cast<double>(c.flat.dense_levels());
}

/// Log-prob rows replayed from a stored pool: the model's cost is a copy per row.
class ReplayModel {
public:
    explicit ReplayModel(std::span<const std::int32_t> sizes) : sizes_(sizes.begin(), sizes.end()) {
        std::mt19937 gen(99);
        std::normal_distribution<float> z(0.0f, 2.0f);
        pool_.resize(static_cast<std::size_t>(kPool * kCodes));
        for (index_t r = 0; r < kPool; ++r) {  // log-softmax of normal logits
            float* x = pool_.data() + r * kCodes;
            double mx = -1e30, sum = 0.0;
            for (index_t c = 0; c < kCodes; ++c) mx = std::max<double>(mx, x[c] = z(gen));
            for (index_t c = 0; c < kCodes; ++c) sum += std::exp(x[c] - mx);
            const auto lse = static_cast<float>(mx + std::log(sum));
            for (index_t c = 0; c < kCodes; ++c) x[c] -= lse;
        }
    }
    void next_code_log_probs(const rb::decoding::DecodeStep& step, rb::MatrixView<float> out) {
        const auto start = clock_type::now();
        for (index_t r = 0; r < step.rows(); ++r) {
            // A row depends on (query, level, prefix): hash them to a stored row.
            std::uint64_t h = mix64(static_cast<std::uint64_t>(step.query[static_cast<std::size_t>(r)]) * 31 + step.level);
            for (index_t t = 0; t < step.level; ++t) h = mix64(h ^ static_cast<std::uint64_t>(step.prefixes(r, t)));
            const float* src = pool_.data() + static_cast<index_t>(h % kPool) * kCodes;
            std::copy_n(src, out.cols(), out.row(r));
        }
        seconds_ += std::chrono::duration<double>(clock_type::now() - start).count();
        if (record_)
            steps_.push_back(HeadModel::Recorded{step.level, {step.query.begin(), step.query.end()},
                                                 {step.parent.begin(), step.parent.end()},
                                                 {step.prefixes.data(), step.prefixes.data() + step.rows() * step.level}});
    }
    void record(bool on) {
        record_ = on;
        steps_.clear();
    }
    [[nodiscard]] const std::vector<HeadModel::Recorded>& steps() const { return steps_; }
    double seconds_ = 0.0;

private:
    static constexpr index_t kPool = 4096;
    std::vector<std::int32_t> sizes_;
    std::vector<float> pool_;
    bool record_ = false;
    std::vector<HeadModel::Recorded> steps_;
};

rb::decoding::BeamSearchOptions beam50() {
    rb::decoding::BeamSearchOptions o;
    o.beam_width = kBeam;
    return o;
}

/// The rows a beam-50 search visits at every level (prefixes), for the mask benchmarks.
const std::vector<HeadModel::Recorded>& visited_rows(index_t q) {
    static std::vector<std::vector<HeadModel::Recorded>> cache(64);
    auto& steps = cache[static_cast<std::size_t>(q)];
    if (steps.empty()) {
        const auto& cat = big_catalogue();
        ReplayModel model(cat.flat.codebook_sizes());
        rb::Matrix<rb::row_id_t> items(rb::Shape<2>{{q, kTopK}});
        rb::Matrix<float> scores(rb::Shape<2>{{q, kTopK}});
        rb::decoding::BeamSearchWorkspace ws;
        model.record(true);
        rb::decoding::constrained_beam_search(model, cat.flat, q, kTopK, items.view(), scores.view(), ws, beam50());
        steps = model.steps();
    }
    return steps;
}

/// TIGER's decoder size on the library's KV-cached transformer step.
rb::models::SASRecConfig decoder_config() {
    rb::models::SASRecConfig c;
    c.num_items = 1024;  // the token vocabulary: 4 levels of codes
    c.max_len = 64;
    c.d_model = 128;
    c.num_blocks = 4;
    c.heads = 4;
    c.ffn_inner = 1024;
    c.dropout = 0.0;
    c.positions = rb::blocks::PositionRows::from_oldest;
    c.mask_padding_keys = true;
    return c;
}

void BM_Flat_DecodeStep(benchmark::State& state) {
    constexpr index_t kContext = 56, kAppends = 6;  // 14 items x 4 codes of history, then 6 appends
    const index_t q = state.range(0), rows = q * kBeam;
    auto& pool = bench_pool(1);
    const Be be{&pool};
    rb::models::SASRec<float> model(decoder_config(), rb::Rng(1));
    rb::models::IncrementalSASRec<float> engine(model);
    std::mt19937 gen(5);
    // One history per query; its 50 beams start from copies of that state.
    std::vector<rb::models::SASRecUserState<float>> pristine, beams;
    for (index_t u = 0; u < q; ++u) {
        std::vector<rb::row_id_t> h(static_cast<std::size_t>(kContext));
        for (auto& e : h) e = static_cast<rb::row_id_t>(1 + gen() % 1024);
        pristine.push_back(engine.make_state());
        engine.reset(be, pool, pristine.back(), h);
    }
    for (index_t r = 0; r < rows; ++r) beams.push_back(pristine[static_cast<std::size_t>(r / kBeam)]);
    std::vector<rb::models::SASRecUserState<float>*> ptrs;
    for (auto& b : beams) ptrs.push_back(&b);
    std::vector<rb::row_id_t> tokens(static_cast<std::size_t>(rows));
    rb::Matrix<float> w(rb::Shape<2>{{128, kCodes}}), hidden(rb::Shape<2>{{rows, 128}}), logits(rb::Shape<2>{{rows, kCodes}}),
        probs(rb::Shape<2>{{rows, kCodes}});
    bench::fill_uniform(w, 3, -0.1f, 0.1f);
    auto step = [&] {
        for (auto& t : tokens) t = static_cast<rb::row_id_t>(1 + gen() % 1024);
        engine.append_batch(be, pool, ptrs, tokens);
        for (index_t r = 0; r < rows; ++r) {
            const auto h = beams[static_cast<std::size_t>(r)].hidden();
            std::copy_n(h.data(), 128, hidden.view().row(r));
        }
        rb::ops::gemm<Be, float>(be, rb::Trans::no, rb::Trans::no, 1.0f, hidden.cview(), w.cview(), 0.0f, logits.view());
        rb::ops::softmax_rows<Be, float>(be, logits.cview(), probs.view());
        for (index_t r = 0; r < rows; ++r) {  // log-softmax from the softmax (as HeadModel)
            float* x = logits.view().row(r);
            const float* p = probs.cview().row(r);
            index_t best = 0;
            for (index_t c = 1; c < kCodes; ++c)
                if (x[c] > x[best]) best = c;
            const float shift = x[best] - std::log(p[best]);
            for (index_t c = 0; c < kCodes; ++c) x[c] -= shift;
        }
    };
    step();  // warm-up: sizes the engine's scratch
    index_t done = 1;
    for (auto _ : state) {
        if (done == kAppends) {  // untimed: back to the shared contexts
            for (index_t r = 0; r < rows; ++r) beams[static_cast<std::size_t>(r)] = pristine[static_cast<std::size_t>(r / kBeam)];
            done = 0;
        }
        const auto t0 = clock_type::now();
        step();
        state.SetIterationTime(std::chrono::duration<double>(clock_type::now() - t0).count());
        ++done;
    }
    state.counters["rows"] = static_cast<double>(rows);
}

void BM_Flat_Mask(benchmark::State& state) {
    const index_t q = state.range(0), level = state.range(1), impl = state.range(2);
    const auto& cat = big_catalogue();
    const auto& rec = visited_rows(q)[static_cast<std::size_t>(level)];
    const auto p = static_cast<index_t>(rec.query.size());
    const index_t k = cat.flat.codebook_sizes()[static_cast<std::size_t>(level)];
    // The rows' prefix rows / trie nodes, found once (the beam carries them).
    std::vector<std::int32_t> rows(static_cast<std::size_t>(p)), nodes(static_cast<std::size_t>(p));
    for (index_t r = 0; r < p; ++r) {
        const std::span<const std::int32_t> prefix(rec.prefixes.data() + r * level, static_cast<std::size_t>(level));
        rows[static_cast<std::size_t>(r)] = cat.flat.find(prefix);
        nodes[static_cast<std::size_t>(r)] = cat.trie.find(prefix);
    }
    rb::Matrix<float> lp(rb::Shape<2>{{p, k}});
    bench::fill_uniform(lp, 7, -8.0f, 0.0f);
    constexpr float ninf = -std::numeric_limits<float>::infinity();
    auto trie_mask = [&](index_t r, rb::tokenizers::CodeTrie::node_t node) {
        float* x = lp.view().row(r);
        std::int32_t next = 0;
        for (const std::int32_t c : cat.trie.allowed_next(node)) {
            std::fill(x + next, x + c, ninf);
            next = c + 1;
        }
        std::fill(x + next, x + k, ninf);
    };
    for (auto _ : state) {  // masking is idempotent: the same work every iteration
        if (impl == 0) {
            cat.flat.mask_log_probs(level, rows, lp.view());
        } else if (impl == 1) {
            for (index_t r = 0; r < p; ++r) trie_mask(r, nodes[static_cast<std::size_t>(r)]);
        } else {
            for (index_t r = 0; r < p; ++r)
                trie_mask(r, cat.trie.find(std::span<const std::int32_t>(rec.prefixes.data() + r * level,
                                                                         static_cast<std::size_t>(level))));
        }
        benchmark::ClobberMemory();
    }
    state.counters["rows"] = static_cast<double>(p);
    catalogue_counters(state);
}

void BM_Flat_Search(benchmark::State& state) {
    const index_t q = state.range(0), impl = state.range(1);
    const auto& cat = big_catalogue();
    ReplayModel model(cat.flat.codebook_sizes());
    rb::Matrix<rb::row_id_t> items(rb::Shape<2>{{q, kTopK}});
    rb::Matrix<float> scores(rb::Shape<2>{{q, kTopK}});
    rb::decoding::BeamSearchWorkspace ws;
    auto run = [&] {
        if (impl == 0)
            rb::decoding::constrained_beam_search(model, cat.flat, q, kTopK, items.view(), scores.view(), ws, beam50());
        else
            rb::decoding::constrained_beam_search(model, cat.trie, q, kTopK, items.view(), scores.view(), ws, beam50());
    };
    run();  // warm
    const auto grown = ws.growth_count();
    model.seconds_ = 0.0;
    for (auto _ : state) {
        run();
        benchmark::ClobberMemory();
    }
    state.counters["model_ms"] = 1e3 * model.seconds_ / static_cast<double>(state.iterations());
    state.counters["grew"] = static_cast<double>(ws.growth_count() - grown);
}

BENCHMARK(BM_Flat_DecodeStep)->ArgNames({"Q"})->Args({1})->Args({32})->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Flat_Mask)
    ->ArgNames({"Q", "level", "impl"})
    ->ArgsProduct({{1, 32}, {0, 1, 2, 3}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Flat_Search)->ArgNames({"Q", "impl"})->ArgsProduct({{1, 32}, {0, 1}})->Unit(benchmark::kMillisecond);

}  // namespace
