// k-means: same assignments and centroids as a straightforward double-precision Lloyd from the
// same initial centroids on well-separated data; objective non-increasing; bit-identical on 1
// and 2 threads; subsampling; empty-cluster repair; bad inputs.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/tokenizers/kmeans.hpp"

using namespace recblocks;
using tokenizers::KMeans;
using tokenizers::KMeansConfig;

namespace {

using Be = backend::Cpu<isa::Dispatch>;

/// `clusters` Gaussian blobs (centres ~ N(0, spread²), points ~ centre + N(0, noise²)); labels out.
Matrix<float> blobs(index_t n, index_t d, index_t clusters, double spread, double noise, std::uint64_t seed,
                    std::vector<int>* truth = nullptr) {
    const Rng rng(seed);
    std::vector<double> centres(static_cast<std::size_t>(clusters * d));
    for (std::size_t i = 0; i < centres.size(); ++i) centres[i] = spread * rng.substream(1).normal(i);
    Matrix<float> x(Shape<2>{{n, d}});
    for (index_t i = 0; i < n; ++i) {
        const int c = static_cast<int>(i % clusters);
        if (truth) truth->push_back(c);
        for (index_t t = 0; t < d; ++t)
            x(i, t) = static_cast<float>(centres[std::size_t(c * d + t)] + noise * rng.substream(2).normal(std::uint64_t(i * d + t)));
    }
    return x;
}

}  // namespace

TEST_CASE("k-means matches a straightforward Lloyd on well-separated data", "[tokenizers][kmeans]") {
    ThreadPool pool(2);
    const Be be{&pool};
    const index_t n = 600, d = 5, k = 6;
    std::vector<int> truth;
    const Matrix<float> x = blobs(n, d, k, 10.0, 0.2, 3, &truth);
    KMeansConfig cfg;
    cfg.k = k;
    cfg.iterations = 0;
    cfg.block_rows = 64;
    KMeans init(cfg);
    init.train(be, x.cview());
    // Reference Lloyd in double from the same initial centroids.
    std::vector<double> c(static_cast<std::size_t>(k * d));
    for (index_t i = 0; i < k * d; ++i) c[std::size_t(i)] = init.centroids().data()[i];
    std::vector<int> ref_labels(static_cast<std::size_t>(n));
    const int iters = 8;
    for (int it = 0; it < iters; ++it) {
        for (index_t i = 0; i < n; ++i) {
            double best = std::numeric_limits<double>::infinity();
            for (index_t j = 0; j < k; ++j) {
                double s = 0;
                for (index_t t = 0; t < d; ++t) s += std::pow(double(x(i, t)) - c[std::size_t(j * d + t)], 2);
                if (s < best) best = s, ref_labels[std::size_t(i)] = int(j);
            }
        }
        std::vector<double> sum(c.size(), 0.0), cnt(static_cast<std::size_t>(k), 0.0);
        for (index_t i = 0; i < n; ++i) {
            const int l = ref_labels[std::size_t(i)];
            cnt[std::size_t(l)] += 1;
            for (index_t t = 0; t < d; ++t) sum[std::size_t(l * d + t)] += x(i, t);
        }
        for (index_t j = 0; j < k; ++j)
            if (cnt[std::size_t(j)] > 0)
                for (index_t t = 0; t < d; ++t) c[std::size_t(j * d + t)] = sum[std::size_t(j * d + t)] / cnt[std::size_t(j)];
    }
    cfg.iterations = iters;
    KMeans km(cfg);
    const auto& rep = km.train(be, x.cview());
    REQUIRE(rep.splits == 0);
    REQUIRE(rep.objective.size() == std::size_t(iters));
    for (index_t i = 0; i < k * d; ++i) REQUIRE(std::fabs(km.centroids().data()[i] - c[std::size_t(i)]) < 1e-4);
    Vector<std::int32_t> labels(Shape<1>{{n}});
    Vector<float> dist(Shape<1>{{n}});
    km.assign(be, x.cview(), labels.view(), dist.view());
    std::set<std::pair<int, int>> pairs;
    for (index_t i = 0; i < n; ++i) {
        REQUIRE(labels(i) == ref_labels[std::size_t(i)]);
        pairs.insert({truth[std::size_t(i)], labels(i)});
    }
    REQUIRE(pairs.size() == std::size_t(k));  // the blobs are recovered exactly, one centroid each
}

TEST_CASE("k-means by inner product matches a straightforward argmax-x.c Lloyd", "[tokenizers][kmeans]") {
    // Orthogonal directions (10 e_c), norms spread 0.6x .. 1.6x along each: inner-product
    // assignment groups by direction (the case an inner-product IVF trains for).
    ThreadPool pool(2);
    const Be be{&pool};
    const index_t n = 800, d = 8, k = 4;
    std::vector<int> truth;
    Matrix<float> x(Shape<2>{{n, d}});
    const Rng rng(5);
    for (index_t i = 0; i < n; ++i) {
        const int c = static_cast<int>(i % k);
        truth.push_back(c);
        const double s = 0.6 + rng.uniform_double(std::uint64_t(i));
        for (index_t t = 0; t < d; ++t)
            x(i, t) = static_cast<float>(s * ((t == c ? 10.0 : 0.0) + 0.1 * rng.substream(1).normal(std::uint64_t(i * d + t))));
    }
    KMeansConfig cfg;
    cfg.k = k;
    cfg.iterations = 0;
    cfg.block_rows = 64;
    cfg.metric = tokenizers::KMeansMetric::inner_product;
    KMeans init(cfg);
    init.train(be, x.cview());
    std::vector<double> c(static_cast<std::size_t>(k * d));
    for (index_t i = 0; i < k * d; ++i) c[std::size_t(i)] = init.centroids().data()[i];
    std::vector<int> ref_labels(static_cast<std::size_t>(n));
    std::vector<double> ref_best(static_cast<std::size_t>(n));
    const int iters = 8;
    auto assign = [&] {
        for (index_t i = 0; i < n; ++i) {
            double best = -std::numeric_limits<double>::infinity();
            for (index_t j = 0; j < k; ++j) {
                double s = 0;
                for (index_t t = 0; t < d; ++t) s += double(x(i, t)) * c[std::size_t(j * d + t)];
                if (s > best) best = s, ref_labels[std::size_t(i)] = int(j);
            }
            ref_best[std::size_t(i)] = best;
        }
    };
    for (int it = 0; it < iters; ++it) {
        assign();
        std::vector<double> sum(c.size(), 0.0), cnt(static_cast<std::size_t>(k), 0.0);
        for (index_t i = 0; i < n; ++i) {
            const int l = ref_labels[std::size_t(i)];
            cnt[std::size_t(l)] += 1;
            for (index_t t = 0; t < d; ++t) sum[std::size_t(l * d + t)] += x(i, t);
        }
        for (index_t j = 0; j < k; ++j) {
            REQUIRE(cnt[std::size_t(j)] > 0);  // no split in the reference either
            for (index_t t = 0; t < d; ++t) c[std::size_t(j * d + t)] = sum[std::size_t(j * d + t)] / cnt[std::size_t(j)];
        }
    }
    assign();
    cfg.iterations = iters;
    KMeans km(cfg);
    const auto& rep = km.train(be, x.cview());
    REQUIRE(rep.splits == 0);
    for (index_t i = 0; i < k * d; ++i) REQUIRE(std::fabs(km.centroids().data()[i] - c[std::size_t(i)]) < 1e-3);
    Vector<std::int32_t> labels(Shape<1>{{n}});
    Vector<float> dist(Shape<1>{{n}});
    km.assign(be, x.cview(), labels.view(), dist.view());
    std::set<std::pair<int, int>> pairs;
    for (index_t i = 0; i < n; ++i) {
        REQUIRE(labels(i) == ref_labels[std::size_t(i)]);
        REQUIRE(dist(i) == Approx(-ref_best[std::size_t(i)]).epsilon(1e-4));  // dist = -x.c
        pairs.insert({truth[std::size_t(i)], labels(i)});
    }
    REQUIRE(pairs.size() == std::size_t(k));  // one centroid per direction, whatever the norms
}

TEST_CASE("k-means objective is non-increasing and results are thread-count independent", "[tokenizers][kmeans]") {
    ThreadPool p1(1), p2(2);
    const Matrix<float> x = blobs(1500, 8, 40, 1.0, 0.5, 5);
    for (auto init : {tokenizers::KMeansInit::kmeans_plus_plus, tokenizers::KMeansInit::random_rows}) {
        KMeansConfig cfg;
        cfg.k = 16;
        cfg.iterations = 12;
        cfg.block_rows = 100;
        cfg.init = init;
        KMeans a(cfg), b(cfg);
        const auto& ra = a.train(Be{&p1}, x.cview());
        const auto& rb = b.train(Be{&p2}, x.cview());
        REQUIRE(ra.objective == rb.objective);
        for (index_t i = 0; i < a.centroids().numel(); ++i) REQUIRE(a.centroids().data()[i] == b.centroids().data()[i]);
        if (ra.splits == 0)
            for (std::size_t i = 1; i < ra.objective.size(); ++i) {
                INFO("iteration " << i << ": " << ra.objective[i - 1] << " -> " << ra.objective[i]);
                REQUIRE(ra.objective[i] <= ra.objective[i - 1] * (1 + 1e-6));
            }
        REQUIRE(ra.objective.back() < ra.objective.front());
    }
}

TEST_CASE("k-means subsampling and empty-cluster repair", "[tokenizers][kmeans]") {
    ThreadPool pool(2);
    const Be be{&pool};
    const Matrix<float> x = blobs(1000, 4, 10, 3.0, 0.3, 9);
    KMeansConfig cfg;
    cfg.k = 8;
    cfg.iterations = 5;
    cfg.max_points_per_centroid = 10;
    KMeans km(cfg);
    REQUIRE(km.train(be, x.cview()).training_rows == 80);

    // Three distinct points, five centroids: clusters go empty and are split every iteration.
    Matrix<float> dup(Shape<2>{{30, 2}});
    for (index_t i = 0; i < 30; ++i) dup(i, 0) = float(i % 3), dup(i, 1) = 1.0f;
    KMeansConfig c2;
    c2.k = 5;
    c2.iterations = 3;
    KMeans k2(c2);
    const auto& rep = k2.train(be, dup.cview());
    REQUIRE(rep.splits > 0);
    for (index_t i = 0; i < k2.centroids().numel(); ++i) REQUIRE(std::isfinite(k2.centroids().data()[i]));
    REQUIRE(rep.objective.back() < 1e-3);
}

TEST_CASE("k-means rejects bad input with named errors", "[tokenizers][kmeans][errors]") {
    ThreadPool pool(1);
    const Be be{&pool};
    Matrix<float> x = blobs(20, 3, 2, 1.0, 0.1, 1);
    KMeansConfig cfg;
    cfg.k = 0;
    REQUIRE_THROWS_AS(KMeans(cfg), ValueError);
    cfg.k = 4;
    cfg.iterations = -1;
    REQUIRE_THROWS_AS(KMeans(cfg), ValueError);
    cfg.iterations = 3;
    cfg.k = 21;
    REQUIRE_THROWS_AS(KMeans(cfg).train(be, x.cview()), ValueError);  // K > N
    cfg.k = 4;
    KMeans km(cfg);
    Vector<std::int32_t> labels(Shape<1>{{20}});
    REQUIRE_THROWS_AS(km.assign(be, x.cview(), labels.view()), ValueError);  // not trained
    x(7, 1) = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_AS(km.train(be, x.cview()), ValueError);
    x(7, 1) = 0.5f;
    km.train(be, x.cview());
    Matrix<float> y(Shape<2>{{20, 4}});
    REQUIRE_THROWS_AS(km.assign(be, y.cview(), labels.view()), ShapeError);  // d mismatch
    x(3, 0) = std::numeric_limits<float>::infinity();
    REQUIRE_THROWS_AS(km.assign(be, x.cview(), labels.view()), ValueError);
}
