// DARE: the search stage against a brute-force sort (ties included) on every
// CPU ISA, the decoupled embedding's gather/scatter and id errors, gradients
// of both stages and both policies against finite differences, determinism,
// and the model's input errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <vector>

#include "../backend/backends.hpp"
#include "../support/gradcheck.hpp"
#include "recblocks/models/dare.hpp"

using namespace recblocks;

namespace {

/// Brute force: positions sorted by (higher logit, earlier position), first k.
std::vector<row_id_t> brute_top_k(const std::vector<float>& logits, index_t k) {
    std::vector<row_id_t> pos(logits.size());
    std::iota(pos.begin(), pos.end(), row_id_t{0});
    std::stable_sort(pos.begin(), pos.end(), [&](row_id_t a, row_id_t b) { return logits[a] > logits[b]; });
    pos.resize(static_cast<std::size_t>(k));
    return pos;
}

struct ToyData {
    std::vector<row_id_t> targets, history;
    std::vector<index_t> offsets{0};
    std::vector<double> labels;
};

ToyData toy_batch(index_t items, std::uint64_t seed) {
    const Rng r(seed);
    ToyData d;
    const index_t lens[] = {5, 8, 6};
    std::uint64_t c = 0;
    for (index_t i = 0; i < 3; ++i) {
        d.targets.push_back(static_cast<row_id_t>(r.below(c++, std::uint32_t(items))));
        for (index_t j = 0; j < lens[i]; ++j) d.history.push_back(static_cast<row_id_t>(r.below(c++, std::uint32_t(items))));
        d.offsets.push_back(static_cast<index_t>(d.history.size()));
        d.labels.push_back(double(i % 2));
    }
    return d;
}

}  // namespace

TEST_CASE("dare_search: top-k equals a brute-force sort, ties by earlier position, on every ISA", "[dare]") {
    // Integer-valued rows: every dot product is exact, so many logits tie exactly.
    for (index_t dim : {7, 16, 32, 64}) {
        const index_t items = 50, n = 1000;
        const Rng r(7 + std::uint64_t(dim));
        Matrix<float> table(Shape<2>{{items, dim}});
        for (index_t i = 0; i < table.numel(); ++i) table.data()[i] = float(int(r.below(std::uint64_t(i), 5)) - 2);
        std::vector<row_id_t> hist(static_cast<std::size_t>(n));
        for (index_t j = 0; j < n; ++j) hist[std::size_t(j)] = static_cast<row_id_t>(r.below(1000000 + std::uint64_t(j), items));
        const float* q = table.data() + 3 * dim;
        const float scale = 1.0f / std::sqrt(float(dim));
        std::vector<float> want_logits(static_cast<std::size_t>(n));
        for (index_t j = 0; j < n; ++j) {
            float s = 0;
            for (index_t c = 0; c < dim; ++c) s += q[c] * table(hist[std::size_t(j)], c);
            want_logits[std::size_t(j)] = scale * s;
        }
        for (index_t k : {1, 20, 32}) {
            const auto want = brute_top_k(want_logits, k);
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                std::vector<float> scores(static_cast<std::size_t>(n)), logits(static_cast<std::size_t>(k));
                std::vector<row_id_t> pos(static_cast<std::size_t>(k));
                models::dare_search(be, table.cview(), std::span<const row_id_t>(hist), q, k, scale, scores.data(),
                                    logits.data(), pos.data());
                INFO(name << " dim " << dim << " k " << k);
                REQUIRE(scores == want_logits);
                REQUIRE(pos == want);
                for (index_t j = 0; j < k; ++j) REQUIRE(logits[std::size_t(j)] == want_logits[std::size_t(pos[std::size_t(j)])]);
            });
        }
    }
}

TEST_CASE("dare_search: gathered dot products of random rows match a double reference", "[dare]") {
    const index_t items = 300, n = 517, dim = 24;
    const Rng r(3);
    Matrix<float> table(Shape<2>{{items, dim}});
    for (index_t i = 0; i < table.numel(); ++i) table.data()[i] = float(r.normal(std::uint64_t(i)));
    std::vector<row_id_t> hist(static_cast<std::size_t>(n));
    for (index_t j = 0; j < n; ++j) hist[std::size_t(j)] = static_cast<row_id_t>(r.below(1u << 20 | std::uint64_t(j), items));
    std::vector<float> q(static_cast<std::size_t>(dim));
    for (index_t c = 0; c < dim; ++c) q[std::size_t(c)] = float(r.normal(1u << 30 | std::uint64_t(c)));
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        std::vector<float> scores(static_cast<std::size_t>(n)), logits(20);
        std::vector<row_id_t> pos(20);
        models::dare_search(be, table.cview(), std::span<const row_id_t>(hist), q.data(), 20, 0.5f, scores.data(),
                            logits.data(), pos.data());
        for (index_t j = 0; j < n; ++j) {
            double s = 0;
            for (index_t c = 0; c < dim; ++c) s += double(q[std::size_t(c)]) * table(hist[std::size_t(j)], c);
            INFO(name << " row " << j);
            REQUIRE(scores[std::size_t(j)] == Approx(0.5 * s).margin(1e-5));
        }
    });
}

TEST_CASE("gathered_dot: every history length around the 4-row and prefetch-block edges, padded rows", "[dare]") {
    // The kernel sums four rows at a time and prefetches blocks of 128 rows:
    // lengths 0..9 and around 128/256 reach every remainder; ldt > k reads a
    // window of wider rows, k = 5/16/64 the SIMD tails and full widths.
    const index_t items = 200;
    const Rng r(11);
    for (const index_t k : {5, 16, 64}) {
        const index_t ldt = k + 3;
        std::vector<float> table(static_cast<std::size_t>(items * ldt)), x(static_cast<std::size_t>(k));
        for (std::size_t i = 0; i < table.size(); ++i) table[i] = float(r.normal(std::uint64_t(i)));
        for (index_t c = 0; c < k; ++c) x[std::size_t(c)] = float(r.normal(1u << 30 | std::uint64_t(c)));
        std::vector<row_id_t> ids(300);
        for (std::size_t j = 0; j < ids.size(); ++j) ids[j] = static_cast<row_id_t>(r.below(1u << 20 | j, items));
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            const auto& kt = Primitives<std::decay_t<decltype(be)>>::template kernels<float>();
            for (const index_t n : {0, 1, 2, 3, 4, 5, 7, 9, 127, 128, 129, 131, 255, 256, 257, 300}) {
                std::vector<float> y(static_cast<std::size_t>(n) + 1, -7.0f);
                kt.gathered_dot(table.data(), ldt, ids.data(), n, x.data(), k, 0.25f, y.data());
                for (index_t j = 0; j < n; ++j) {
                    double s = 0;
                    for (index_t c = 0; c < k; ++c)
                        s += double(x[std::size_t(c)]) * table[std::size_t(ids[std::size_t(j)] * ldt + c)];
                    INFO(name << " k " << k << " n " << n << " row " << j);
                    REQUIRE(y[std::size_t(j)] == Approx(0.25 * s).margin(1e-5));
                }
                REQUIRE(y[std::size_t(n)] == -7.0f);  // nothing written past n
            }
        });
    }
}

TEST_CASE("DecoupledEmbedding: independent widths, gather/scatter, bf16 storage, id errors", "[dare]") {
    using E = blocks::DecoupledEmbedding<float>;
    E emb(E::Config{.num_ids = 10, .attention_dim = 3, .representation_dim = 5, .init_std = 0.1}, Rng(1));
    REQUIRE(emb.table(E::Table::attention).shape() == Shape<2>{{10, 3}});
    REQUIRE(emb.table(E::Table::representation).shape() == Shape<2>{{10, 5}});
    const row_id_t ids[] = {4, 2, 4};
    Matrix<float> out(Shape<2>{{3, 5}});
    emb.gather(E::Table::representation, vector_view<const row_id_t>(ids, 3), out.view());
    for (index_t c = 0; c < 5; ++c) {
        REQUIRE(out(0, c) == emb.table(E::Table::representation)(4, c));
        REQUIRE(out(1, c) == emb.table(E::Table::representation)(2, c));
    }
    Matrix<float> src(Shape<2>{{3, 3}});
    std::fill(src.begin(), src.end(), 1.0f);
    emb.zero_grads();
    emb.scatter_add_grad(E::Table::attention, vector_view<const row_id_t>(ids, 3), src.view());
    REQUIRE(emb.grad(E::Table::attention)(4, 0) == 2.0f);
    REQUIRE(emb.grad(E::Table::attention)(2, 1) == 1.0f);
    REQUIRE(emb.grad(E::Table::attention)(0, 0) == 0.0f);

    const auto b = emb.to_bf16();
    Matrix<float> ob(Shape<2>{{3, 3}});
    b.gather(E::Table::attention, vector_view<const row_id_t>(ids, 3), ob.view());
    for (index_t c = 0; c < 3; ++c) REQUIRE(ob(1, c) == float(bf16(emb.table(E::Table::attention)(2, c))));

    const row_id_t bad[] = {1, 10};
    Matrix<float> o2(Shape<2>{{2, 3}});
    REQUIRE_THROWS_AS(emb.gather(E::Table::attention, vector_view<const row_id_t>(bad, 2), o2.view()), IndexError);
    REQUIRE_THROWS_WITH(emb.gather(E::Table::attention, vector_view<const row_id_t>(bad, 2), o2.view()), Catch::Contains("id 10 at position 1"));
    REQUIRE_THROWS_AS(b.gather(E::Table::attention, vector_view<const row_id_t>(bad, 2), o2.view()), IndexError);
    REQUIRE_THROWS_AS(emb.gather(E::Table::attention, vector_view<const row_id_t>(ids, 3), o2.view()), ShapeError);
    REQUIRE_THROWS_AS(E(E::Config{.num_ids = 10, .attention_dim = 0, .representation_dim = 5}, Rng(1)), ValueError);
}

TEST_CASE("DareModel: gradients of both stages, both policies, against finite differences", "[dare]") {
    for (auto policy : {models::EmbeddingPolicy::decoupled, models::EmbeddingPolicy::coupled}) {
        models::DareModel<double>::Config cfg;
        cfg.num_items = 12;
        cfg.attention_dim = 3;
        cfg.representation_dim = 4;
        cfg.top_k = 3;
        cfg.hidden = {5, 4};
        cfg.policy = policy;
        cfg.init_std = 0.7;  // large logits: the softmax and the search matter
        models::DareModel<double> model(cfg, Rng(11));
        const ToyData d = toy_batch(cfg.num_items, 5);
        const models::DareModel<double>::Batch batch{d.targets, d.offsets, d.history};
        const backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
        std::vector<double> logits(3);
        auto loss = [&] {
            model.forward(be, batch, logits);
            return model.loss(be, d.labels);
        };
        model.zero_grads();
        loss();
        model.backward(be, d.labels);
        INFO((policy == models::EmbeddingPolicy::decoupled ? "decoupled" : "coupled"));
        REQUIRE(model.params().size() == (policy == models::EmbeddingPolicy::decoupled ? 8u : 7u));
        // The attention table (or the shared one) receives gradient through the kept logits.
        const auto& att = model.params()[0];
        double norm = 0;
        for (index_t i = 0; i < att.numel(); ++i) norm += std::fabs(att.grad[i]);
        REQUIRE(norm > 0);
        rbtest::check_fd(model.params(), loss, 1e-6);
    }
}

TEST_CASE("DareModel: deterministic at a fixed seed and thread count independent", "[dare]") {
    models::DareModel<float>::Config cfg;
    cfg.num_items = 40;
    cfg.attention_dim = 8;
    cfg.representation_dim = 16;
    cfg.top_k = 4;
    cfg.hidden = {8};
    const ToyData d = toy_batch(cfg.num_items, 9);
    const models::DareModel<float>::Batch batch{d.targets, d.offsets, d.history};
    std::vector<float> labels(d.labels.begin(), d.labels.end());
    std::vector<std::vector<float>> grads;
    for (ThreadPool* pool : {&rbtest::pool1(), &rbtest::pool3(), &rbtest::pool1()}) {
        models::DareModel<float> m(cfg, Rng(4));
        const backend::Cpu<isa::Dispatch> be{pool};
        std::vector<float> logits(3);
        m.zero_grads();
        m.forward(be, batch, logits);
        m.backward(be, labels);
        std::vector<float> g(logits);
        for (const auto& p : m.params()) g.insert(g.end(), p.grad, p.grad + p.numel());
        grads.push_back(std::move(g));
    }
    REQUIRE(grads[0] == grads[1]);
    REQUIRE(grads[0] == grads[2]);
}

TEST_CASE("DareModel: bad ids, shapes, empty histories and k > history are named errors", "[dare]") {
    models::DareModel<float>::Config cfg;
    cfg.num_items = 10;
    cfg.attention_dim = 4;
    cfg.representation_dim = 4;
    cfg.top_k = 3;
    cfg.hidden = {4};
    models::DareModel<float> m(cfg, Rng(1));
    const backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    std::vector<float> logits(2);
    std::vector<row_id_t> targets{1, 2};
    std::vector<index_t> offsets{0, 3, 7};
    std::vector<row_id_t> hist{1, 2, 3, 4, 5, 6, 7};
    using Batch = models::DareModel<float>::Batch;
    m.forward(be, Batch{targets, offsets, hist}, logits);  // valid

    std::vector<row_id_t> bad_hist{1, 2, 3, 4, 11, 6, 7};
    REQUIRE_THROWS_AS(m.forward(be, Batch{targets, offsets, bad_hist}, logits), IndexError);
    REQUIRE_THROWS_WITH(m.forward(be, Batch{targets, offsets, bad_hist}, logits), Catch::Contains("id 11 at position 4"));
    std::vector<row_id_t> bad_targets{1, -1};
    REQUIRE_THROWS_AS(m.forward(be, Batch{bad_targets, offsets, hist}, logits), IndexError);
    REQUIRE_THROWS_WITH(m.forward(be, Batch{bad_targets, offsets, hist}, logits), Catch::Contains("id -1 at position 1"));
    std::vector<index_t> empty{0, 0, 7};
    REQUIRE_THROWS_AS(m.forward(be, Batch{targets, empty, hist}, logits), ValueError);
    REQUIRE_THROWS_WITH(m.forward(be, Batch{targets, empty, hist}, logits), Catch::Contains("empty history"));
    std::vector<index_t> short_hist{0, 2, 7};
    REQUIRE_THROWS_AS(m.forward(be, Batch{targets, short_hist, hist}, logits), ValueError);
    REQUIRE_THROWS_WITH(m.forward(be, Batch{targets, short_hist, hist}, logits), Catch::Contains("k must not exceed the history"));
    std::vector<index_t> wrong_count{0, 7};
    REQUIRE_THROWS_AS(m.forward(be, Batch{targets, wrong_count, hist}, logits), ShapeError);
    std::vector<float> few_logits(1);
    REQUIRE_THROWS_AS(m.forward(be, Batch{targets, offsets, hist}, few_logits), ShapeError);
    std::vector<float> bad_labels{0.0f, 2.0f};
    REQUIRE_THROWS_AS(m.backward(be, bad_labels), ValueError);
    std::vector<float> few_labels{0.0f};
    REQUIRE_THROWS_AS(m.backward(be, few_labels), ShapeError);
    cfg.top_k = 0;
    REQUIRE_THROWS_AS(models::DareModel<float>(cfg, Rng(1)), ValueError);
}
