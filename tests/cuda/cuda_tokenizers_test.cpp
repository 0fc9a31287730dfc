// The tokenizers on backend::Cuda against the same objects in host memory on
// the Reference backend: ops::mean_by_label (the Reference's bits: double sums
// in row order), k-means on well-separated blobs (the same assignments, so
// centroids within float tolerance), the residual quantizer (greedy encode,
// decode, reconstruction error), FSQ and the FSQ autoencoder (training steps,
// codes), and the same bits on two GPU runs. Runs only where a GPU exists
// (tests/cuda/require_gpu.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/tokenizers/finite_scalar_quantizer.hpp"
#include "recblocks/tokenizers/fsq_autoencoder.hpp"
#include "recblocks/tokenizers/kmeans.hpp"
#include "recblocks/tokenizers/residual_quantizer.hpp"

namespace {

using namespace recblocks;

const backend::Reference kRef{};
const backend::Cuda kGpu{};

/// `clusters` Gaussian blobs of n rows of d (centres ~ N(0, spread²)).
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

Matrix<float> host_copy(MatrixView<const float> v) {
    Matrix<float> out(Shape<2>{{v.rows(), v.cols()}});
    std::memcpy(out.data(), v.data(), std::size_t(out.numel()) * sizeof(float));
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("cuda mean_by_label gives the Reference's bits", "[cuda][tokenizers][kmeans]", float, double) {
    using T = TestType;
    for (const index_t n : {index_t{1}, index_t{1500}})
        for (const index_t k : {index_t{1}, index_t{37}})
            for (const index_t d : {index_t{5}, index_t{300}}) {  // 300: two passes of the 256-thread block
                Matrix<T> x(Shape<2>{{n, d}});
                const Rng rng(n + k + d);
                for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<T>(rng.normal(std::uint64_t(i)));
                Vector<index_t> labels(Shape<1>{{n}});
                for (index_t i = 0; i < n; ++i) labels(i) = (i * 7 + i / 5) % k;
                if (k > 2) labels(0) = 0;
                Matrix<T> want(Shape<2>{{k, d}});
                for (index_t i = 0; i < want.numel(); ++i) want.data()[i] = T(i);  // empty clusters keep these
                auto got = to(kGpu, want);
                Vector<index_t> nw(Shape<1>{{k}});
                auto ng = to(kGpu, nw);
                ops::mean_by_label(kRef, x.cview(), labels.cview(), want.view(), nw.view());
                const auto dx = to(kGpu, x);
                const auto dl = to(kGpu, labels);
                ops::mean_by_label(kGpu, dx.cview(), dl.cview(), got.view(), ng.view());
                INFO("n " << n << " k " << k << " d " << d);
                REQUIRE(same_host(to_host(got), want));
                const auto counts = to_host(ng);
                REQUIRE(std::memcmp(counts.data(), nw.data(), sizeof(index_t) * std::size_t(k)) == 0);
            }
}

TEST_CASE("cuda k-means and the residual quantizer match the host", "[cuda][tokenizers][kmeans][rq]") {
    const Matrix<float> x = blobs(2000, 16, 20, 4.0, 0.3, 11);
    const auto dx = to(kGpu, x);
    tokenizers::KMeansConfig kc;
    kc.k = 20;
    kc.iterations = 8;
    kc.block_rows = 300;
    tokenizers::KMeans host(kc);
    tokenizers::KMeansOn<backend::Cuda> gpu(kc, memory_of(kGpu)), again(kc, memory_of(kGpu));
    const auto& rh = host.train(kRef, x.cview());
    const auto& rg = gpu.train(kGpu, dx.cview());
    const auto& ra = again.train(kGpu, dx.cview());
    REQUIRE(rg.objective.size() == rh.objective.size());
    for (std::size_t i = 0; i < rh.objective.size(); ++i) CHECK(rg.objective[i] == Approx(rh.objective[i]).epsilon(1e-4));
    const Matrix<float> ch = host_copy(host.centroids()), cg = to_host(gpu.centroid_tensor());
    for (index_t i = 0; i < ch.numel(); ++i) REQUIRE(cg.data()[i] == Approx(ch.data()[i]).margin(1e-4).epsilon(1e-4));
    Vector<std::int32_t> lh(Shape<1>{{2000}}), lg(Shape<1>{{2000}});
    host.assign(kRef, x.cview(), lh.view());
    gpu.assign(kGpu, dx.cview(), lg.view());
    REQUIRE(std::memcmp(lh.data(), lg.data(), sizeof(std::int32_t) * 2000) == 0);  // well separated: the same clusters
    REQUIRE(ra.objective == rg.objective);
    REQUIRE(same_host(to_host(again.centroid_tensor()), cg));

    // The residual quantizer: greedy training and encoding.
    tokenizers::ResidualQuantizerConfig rc;
    rc.levels = 3;
    rc.codebook_size = 16;
    rc.kmeans.iterations = 6;
    tokenizers::ResidualQuantizer rq_host(rc);
    tokenizers::ResidualQuantizerOn<backend::Cuda> rq_gpu(rc, memory_of(kGpu)), rq_again(rc, memory_of(kGpu));
    const auto& qh = rq_host.train(kRef, x.cview());
    const auto& qg = rq_gpu.train(kGpu, dx.cview());
    rq_again.train(kGpu, dx.cview());
    for (std::size_t m = 0; m < qh.level_mse.size(); ++m) CHECK(qg.level_mse[m] == Approx(qh.level_mse[m]).epsilon(2e-2));
    Matrix<std::int32_t> codes(Shape<2>{{2000, 3}}), codes2(codes.shape());
    rq_gpu.encode(kGpu, dx.cview(), codes.view());
    rq_again.encode(kGpu, dx.cview(), codes2.view());
    REQUIRE(same_host(codes, codes2));
    const double mse_gpu = rq_gpu.reconstruction_mse(kGpu, dx.cview(), codes.cview());
    CHECK(mse_gpu == Approx(rq_host.encode_mse(kRef, x.cview(), 1)).epsilon(2e-2));
    // decode on the GPU is the sum of the GPU codebooks' rows.
    auto xh = make_tensor<float>(kGpu, x.shape());
    rq_gpu.decode(kGpu, codes.cview(), xh.view());
    const Matrix<float> got = to_host(xh);
    std::vector<Matrix<float>> books;
    for (index_t m = 0; m < 3; ++m) {
        Matrix<float> b(Shape<2>{{16, 16}});
        memory_of(kGpu).download(b.data(), rq_gpu.codebook(m).data(), sizeof(float) * 256);
        books.push_back(std::move(b));
    }
    for (index_t i = 0; i < 2000; ++i)
        for (index_t t = 0; t < 16; ++t) {
            float v = books[0](codes(i, 0), t);
            for (index_t m = 1; m < 3; ++m) v += books[std::size_t(m)](codes(i, m), t);
            REQUIRE(got(i, t) == v);
        }
    REQUIRE_THROWS_AS(rq_gpu.encode(kGpu, dx.cview(), codes.view(), 3), ValueError);
}

TEST_CASE("cuda FSQ autoencoder trains and encodes like the host", "[cuda][tokenizers][fsq]") {
    const index_t n = 128, d = 16;
    Matrix<float> x(Shape<2>{{n, d}});
    const Rng rng(8);
    for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(rng.normal(std::uint64_t(i)));
    const auto dx = to(kGpu, x);
    const tokenizers::FsqConfig fc{{8, 5, 5, 5}};
    auto run = [&](auto& ae, auto& params, auto& adam, const auto& be, const auto& xv, Matrix<std::int32_t>& codes) {
        std::vector<double> losses;
        for (int s = 0; s < 10; ++s) losses.push_back(ae.train_step(be, xv, adam, params, 1e-2));
        ae.encode(be, xv, codes.view());
        return losses;
    };
    tokenizers::FsqAutoencoder<float> host({d, fc}, Rng(1));
    tokenizers::FsqAutoencoder<float, CudaMemory> gpu({d, fc}, Rng(1), memory_of(kGpu)), again({d, fc}, Rng(1), memory_of(kGpu));
    ParamList<float> ph;
    ParamList<float, CudaMemory> pg, pa;
    host.append_params("", ph);
    gpu.append_params("", pg);
    again.append_params("", pa);
    optim::Adam<float> oh({}, ph);
    optim::Adam<float, CudaMemory> og({}, pg), oa({}, pa);
    Matrix<std::int32_t> ch(Shape<2>{{n, 4}}), cg(ch.shape()), ca(ch.shape());
    const auto lh = run(host, ph, oh, kRef, x.cview(), ch);
    const auto lg = run(gpu, pg, og, kGpu, dx.cview(), cg);
    const auto la = run(again, pa, oa, kGpu, dx.cview(), ca);
    for (std::size_t s = 0; s < lh.size(); ++s) CHECK(lg[s] == Approx(lh[s]).epsilon(1e-3));
    REQUIRE(la == lg);
    REQUIRE(same_host(ca, cg));
    index_t agree = 0;
    for (index_t i = 0; i < ch.numel(); ++i) agree += ch.data()[i] == cg.data()[i];
    CHECK(agree >= ch.numel() * 95 / 100);  // codes flip only where z sits on a rounding boundary
    // The quantizer alone: codes of device z equal the host's (the maths runs on the host).
    const tokenizers::FiniteScalarQuantizer fsq(fc);
    Matrix<float> z(Shape<2>{{n, 4}});
    for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = static_cast<float>(2.0 * rng.substream(1).normal(std::uint64_t(i)));
    Matrix<std::int32_t> zh(Shape<2>{{n, 4}}), zg(zh.shape());
    fsq.encode(kRef, z.cview(), zh.view());
    fsq.encode(kGpu, to(kGpu, z).cview(), zg.view());
    REQUIRE(same_host(zh, zg));
}
