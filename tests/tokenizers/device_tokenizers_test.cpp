// The tokenizers instantiated for a device memory space and run on
// rbtest::GuardedDevice (the Reference's arithmetic, memory the host cannot
// touch outside a primitive): k-means (subsampling, both inits, empty-cluster
// splits), the residual quantizer (training, greedy encode, decode), FSQ and
// the FSQ autoencoder (training steps with Adam, encode, decode) must give
// exactly the bits of the same objects in host memory on the Reference
// backend: the code path backend::Cuda runs, with the oracle's arithmetic.
// Also ops::mean_by_label: the CPU gives the Reference's bits, errors are named.
#include <catch2/catch.hpp>

#include <cstring>
#include <limits>
#include <vector>

#include "../support/guarded_device.hpp"
#include "../support/same_bits.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/tokenizers/finite_scalar_quantizer.hpp"
#include "recblocks/tokenizers/fsq_autoencoder.hpp"
#include "recblocks/tokenizers/kmeans.hpp"
#include "recblocks/tokenizers/quantizer.hpp"
#include "recblocks/tokenizers/residual_quantizer.hpp"

using namespace recblocks;
using rbtest::GuardedDevice;
using rbtest::GuardedMemory;
using rbtest::same_bits;
using rbtest::same_params;

// One contract on every backend: the device instantiations are quantizers for the device backend.
static_assert(tokenizers::Quantizer<tokenizers::ResidualQuantizerOn<rbtest::GuardedDevice>, rbtest::GuardedDevice>);
static_assert(tokenizers::Quantizer<tokenizers::FiniteScalarQuantizer, rbtest::GuardedDevice>);

namespace {

const backend::Reference kRef{};
const GuardedDevice kDev{};

/// `clusters` Gaussian blobs, n rows of d.
Matrix<float> blobs(index_t n, index_t d, index_t clusters, double spread, double noise, std::uint64_t seed) {
    const Rng rng(seed);
    Matrix<float> x(Shape<2>{{n, d}});
    for (index_t i = 0; i < n; ++i)
        for (index_t t = 0; t < d; ++t)
            x(i, t) = static_cast<float>(spread * rng.substream(1).normal(std::uint64_t((i % clusters) * d + t)) +
                                         noise * rng.substream(2).normal(std::uint64_t(i * d + t)));
    return x;
}

template <class T>
bool same_host(const Matrix<T>& a, const Matrix<T>& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), std::size_t(a.numel()) * sizeof(T)) == 0;
}

/// The centroids of a host and a device k-means, as host matrices.
Matrix<float> centroids_of(const tokenizers::KMeans& km) {
    Matrix<float> c(Shape<2>{{km.centroids().rows(), km.centroids().cols()}});
    std::memcpy(c.data(), km.centroids().data(), std::size_t(c.numel()) * sizeof(float));
    return c;
}

}  // namespace

TEST_CASE("device tokenizers: k-means trains and assigns on a device backend with the host's bits",
          "[tokenizers][kmeans][device]") {
    const Matrix<float> x = blobs(700, 6, 9, 3.0, 0.6, 21);
    const auto dx = to(kDev, x);
    for (auto init : {tokenizers::KMeansInit::kmeans_plus_plus, tokenizers::KMeansInit::random_rows})
        for (index_t per : {index_t{0}, index_t{40}}) {
            tokenizers::KMeansConfig cfg;
            cfg.k = 12;
            cfg.iterations = 6;
            cfg.block_rows = 100;
            cfg.init = init;
            cfg.max_points_per_centroid = per;  // 40: subsample 480 of 700 rows
            tokenizers::KMeans host(cfg);
            tokenizers::KMeansOn<GuardedDevice> dev(cfg, memory_of(kDev));
            const auto& rh = host.train(kRef, x.cview());
            const auto& rd = dev.train(kDev, dx.cview());
            INFO("init " << int(init) << " max_points_per_centroid " << per);
            REQUIRE(rd.training_rows == rh.training_rows);
            REQUIRE(rd.objective == rh.objective);
            REQUIRE(rd.splits == rh.splits);
            REQUIRE(same_bits(dev.centroid_tensor(), centroids_of(host)));
            Vector<std::int32_t> lh(Shape<1>{{700}}), ld(Shape<1>{{700}});
            Vector<float> dh(Shape<1>{{700}}), dd(Shape<1>{{700}});
            host.assign(kRef, x.cview(), lh.view(), dh.view());
            dev.assign(kDev, dx.cview(), ld.view(), dd.view());
            REQUIRE(std::memcmp(lh.data(), ld.data(), 700 * sizeof(std::int32_t)) == 0);
            REQUIRE(std::memcmp(dh.data(), dd.data(), 700 * sizeof(float)) == 0);
            // A second run of the same shape reuses the scratch and gives the same result.
            dev.train(kDev, dx.cview());
            REQUIRE(dev.report().objective == rh.objective);
        }

    // Three distinct points, five centroids: empty clusters are split every iteration.
    Matrix<float> dup(Shape<2>{{30, 2}});
    for (index_t i = 0; i < 30; ++i) dup(i, 0) = float(i % 3), dup(i, 1) = 1.0f;
    tokenizers::KMeansConfig c2;
    c2.k = 5;
    c2.iterations = 3;
    tokenizers::KMeans host(c2);
    tokenizers::KMeansOn<GuardedDevice> dev(c2, memory_of(kDev));
    const auto& rh = host.train(kRef, dup.cview());
    const auto& rd = dev.train(kDev, to(kDev, dup).cview());
    REQUIRE(rh.splits > 0);
    REQUIRE(rd.splits == rh.splits);
    REQUIRE(rd.objective == rh.objective);
    REQUIRE(same_bits(dev.centroid_tensor(), centroids_of(host)));

    // Non-finite data is found where it lives and named.
    Matrix<float> bad = x;
    bad(5, 2) = std::numeric_limits<float>::quiet_NaN();
    tokenizers::KMeansOn<GuardedDevice> km(tokenizers::KMeansConfig{}, memory_of(kDev));
    try {
        km.train(kDev, to(kDev, bad).cview());
        FAIL("no error");
    } catch (const ValueError& e) {
        REQUIRE_THAT(e.what(), Catch::Contains("x[5, 2]"));
    }
}

TEST_CASE("device tokenizers: the residual quantizer trains, encodes and decodes on a device backend with the host's bits",
          "[tokenizers][rq][device]") {
    const Matrix<float> x = blobs(400, 8, 20, 1.0, 0.5, 7);
    const auto dx = to(kDev, x);
    tokenizers::ResidualQuantizerConfig cfg;
    cfg.levels = 3;
    cfg.codebook_size = 8;
    cfg.block_rows = 64;
    cfg.kmeans.iterations = 5;
    tokenizers::ResidualQuantizer host(cfg);
    tokenizers::ResidualQuantizerOn<GuardedDevice> dev(cfg, memory_of(kDev));
    const auto& rh = host.train(kRef, x.cview());
    const auto& rd = dev.train(kDev, dx.cview());
    REQUIRE(rd.level_mse == rh.level_mse);
    REQUIRE(rd.objective == rh.objective);
    for (index_t m = 0; m < cfg.levels; ++m) {
        Matrix<float> h(Shape<2>{{cfg.codebook_size, 8}});
        std::memcpy(h.data(), host.codebook(m).data(), std::size_t(h.numel()) * sizeof(float));
        REQUIRE(same_bits(dev.codebook(m).data(), h.data(), h.numel(), GuardedMemory{}));
    }
    Matrix<std::int32_t> ch(Shape<2>{{400, 3}}), cd(ch.shape());
    host.encode(kRef, x.cview(), ch.view(), 1);
    dev.encode(kDev, dx.cview(), cd.view(), 1);
    REQUIRE(same_host(ch, cd));
    Matrix<float> xh(x.shape());
    auto dxh = make_tensor<float>(kDev, x.shape());
    host.decode(kRef, ch.cview(), xh.view());
    dev.decode(kDev, cd.cview(), dxh.view());
    REQUIRE(same_bits(dxh, xh));
    REQUIRE(dev.reconstruction_mse(kDev, dx.cview(), cd.cview()) == host.reconstruction_mse(kRef, x.cview(), ch.cview()));
    // Beams need the host's beam-selection primitive: named ValueError on a device backend.
    REQUIRE_THROWS_AS(dev.encode(kDev, dx.cview(), cd.view(), 4), ValueError);
    auto beam_cfg = cfg;
    beam_cfg.train_beam_size = 3;
    tokenizers::ResidualQuantizerOn<GuardedDevice> beams(beam_cfg, memory_of(kDev));
    REQUIRE_THROWS_AS(beams.train(kDev, dx.cview()), ValueError);
    // Codebooks installed from the host give the same encoding.
    Matrix<float> all(Shape<2>{{3 * 8, 8}});
    for (index_t m = 0; m < 3; ++m)
        std::memcpy(all.data() + m * 64, host.codebook(m).data(), 64 * sizeof(float));
    tokenizers::ResidualQuantizerOn<GuardedDevice> loaded(cfg, memory_of(kDev));
    loaded.set_codebooks(all.cview());
    loaded.encode(kDev, dx.cview(), cd.view());
    REQUIRE(same_host(ch, cd));
}

TEST_CASE("device tokenizers: FSQ and the FSQ autoencoder on a device backend with the host's bits",
          "[tokenizers][fsq][device]") {
    const index_t n = 64, d = 12;
    Matrix<float> x(Shape<2>{{n, d}});
    const Rng rng(3);
    for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(rng.normal(std::uint64_t(i)));
    const auto dx = to(kDev, x);

    // The quantizer alone: z in device memory, codes on the host.
    const tokenizers::FiniteScalarQuantizer fsq(tokenizers::FsqConfig{{8, 5, 5, 5}});
    Matrix<float> z(Shape<2>{{n, 4}});
    for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = static_cast<float>(2.0 * rng.substream(1).normal(std::uint64_t(i)));
    Matrix<std::int32_t> ch(Shape<2>{{n, 4}}), cd(ch.shape());
    fsq.encode(kRef, z.cview(), ch.view());
    fsq.encode(kDev, to(kDev, z).cview(), cd.view());
    REQUIRE(same_host(ch, cd));
    Matrix<float> vh(z.shape());
    auto vd = make_tensor<float>(kDev, z.shape());
    fsq.decode(kRef, ch.cview(), vh.view());
    fsq.decode(kDev, cd.cview(), vd.view());
    REQUIRE(same_bits(vd, vh));

    // The autoencoder: training steps with Adam, then encode / decode.
    using Host = tokenizers::FsqAutoencoder<float>;
    using Dev = tokenizers::FsqAutoencoder<float, GuardedMemory>;
    Host ah({d, tokenizers::FsqConfig{{8, 5, 5, 5}}}, Rng(1));
    Dev ad({d, tokenizers::FsqConfig{{8, 5, 5, 5}}}, Rng(1), memory_of(kDev));
    ParamList<float> ph;
    ParamList<float, GuardedMemory> pd;
    ah.append_params("", ph);
    ad.append_params("", pd);
    REQUIRE(same_params(pd, ph, false));
    optim::Adam<float> oh({}, ph);
    optim::Adam<float, GuardedMemory> od({}, pd);
    for (int s = 0; s < 5; ++s) {
        const double lh = ah.train_step(kRef, x.cview(), oh, ph, 1e-2);
        const double ld = ad.train_step(kDev, dx.cview(), od, pd, 1e-2);
        REQUIRE(ld == lh);
    }
    REQUIRE(same_params(pd, ph, false));
    REQUIRE(same_params(pd, ph, true));
    ah.encode(kRef, x.cview(), ch.view());
    ad.encode(kDev, dx.cview(), cd.view());
    REQUIRE(same_host(ch, cd));
    Matrix<float> xh(x.shape());
    auto dxh = make_tensor<float>(kDev, x.shape());
    ah.decode(kRef, ch.cview(), xh.view());
    ad.decode(kDev, cd.cview(), dxh.view());
    REQUIRE(same_bits(dxh, xh));
}

TEST_CASE("ops::mean_by_label: the CPU gives the Reference's bits; named errors", "[tokenizers][kmeans][ops]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    for (index_t k : {index_t{1}, index_t{7}, index_t{40}}) {
        const index_t n = 1000, d = 9;
        const Matrix<float> x = blobs(n, d, 13, 2.0, 1.0, 5);
        Vector<index_t> labels(Shape<1>{{n}});
        for (index_t i = 0; i < n; ++i) labels(i) = (i * 7 + i / 3) % k;
        if (k > 2) labels(3) = labels(4) = 0;
        Matrix<float> cr(Shape<2>{{k, d}}), cc(Shape<2>{{k, d}});
        for (index_t i = 0; i < cr.numel(); ++i) cr.data()[i] = cc.data()[i] = float(i);  // empty clusters keep these
        Vector<index_t> nr(Shape<1>{{k}}), nc(Shape<1>{{k}});
        // Only even rows take part (a strided view of x).
        const auto half = MatrixView<const float>(x.data(), Shape<2>{{n / 2, d}}, {2 * d, 1});
        const auto half_labels = vector_view<const index_t>(labels.data(), n / 2);
        ops::mean_by_label(kRef, half, half_labels, cr.view(), nr.view());
        ops::mean_by_label(cpu, half, half_labels, cc.view(), nc.view());
        REQUIRE(same_host(cr, cc));
        index_t total = 0;
        for (index_t c = 0; c < k; ++c) {
            total += nr(c);
            REQUIRE(nr(c) == nc(c));
        }
        REQUIRE(total == n / 2);
    }
    Matrix<float> x(Shape<2>{{4, 3}}), c(Shape<2>{{2, 3}}), wide(Shape<2>{{2, 4}});
    Vector<index_t> labels(Shape<1>{{4}}), counts(Shape<1>{{2}}), short_counts(Shape<1>{{1}});
    REQUIRE_THROWS_AS(ops::mean_by_label(kRef, x.cview(), labels.cview(), wide.view(), counts.view()), ShapeError);
    REQUIRE_THROWS_AS(ops::mean_by_label(kRef, x.cview(), labels.cview(), c.view(), short_counts.view()), ShapeError);
    labels(2) = 2;
    REQUIRE_THROWS_AS(ops::mean_by_label(cpu, x.cview(), labels.cview(), c.view(), counts.view()), IndexError);
}
