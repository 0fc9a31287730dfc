// One contract for the quantizers (tokenizers/quantizer.hpp): RQ and FSQ satisfy
// tokenizers::Quantizer, and one generic function, written only against the
// contract, trains, encodes and decodes either and checks the promised shapes,
// ranges, determinism and named errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/tokenizers/finite_scalar_quantizer.hpp"
#include "recblocks/tokenizers/kmeans.hpp"
#include "recblocks/tokenizers/quantizer.hpp"
#include "recblocks/tokenizers/residual_quantizer.hpp"

using namespace recblocks;
using tokenizers::FiniteScalarQuantizer;
using tokenizers::FsqConfig;
using tokenizers::ResidualQuantizer;
using tokenizers::ResidualQuantizerConfig;

using Be = backend::Cpu<isa::Dispatch>;
static_assert(tokenizers::Quantizer<ResidualQuantizer, Be>);
static_assert(tokenizers::Quantizer<FiniteScalarQuantizer, Be>);
static_assert(tokenizers::Quantizer<ResidualQuantizer, backend::Reference>);
static_assert(tokenizers::Quantizer<FiniteScalarQuantizer, backend::Reference>);
// k-means clusters but has no codes to decode: not a quantizer.
static_assert(!tokenizers::Quantizer<tokenizers::KMeans, Be>);

namespace {

double mean_squared(const Matrix<float>& a, const Matrix<float>* b) {
    double s = 0;
    for (index_t i = 0; i < a.numel(); ++i) {
        const double e = double(a.data()[i]) - (b ? double(b->data()[i]) : 0.0);
        s += e * e;
    }
    return s / double(a.numel());
}

/// Everything the contract promises, for any quantizer; returns decode(encode(x)).
template <class Q, class Backend>
    requires tokenizers::Quantizer<Q, Backend>
Matrix<float> check_round_trip(Q& q, const Backend& be, const Matrix<float>& x) {
    const index_t n = x.extent(0), d = x.extent(1);
    q.train(be, x.cview());
    const index_t m = q.code_length();
    REQUIRE(m >= 1);

    Matrix<std::int32_t> codes(Shape<2>{{n, m}}), again(codes.shape());
    q.encode(be, x.cview(), codes.view());
    q.encode(be, x.cview(), again.view());
    for (index_t i = 0; i < codes.numel(); ++i) {
        REQUIRE(codes.data()[i] >= 0);
        REQUIRE(codes.data()[i] == again.data()[i]);  // deterministic
    }
    Matrix<float> x_hat(Shape<2>{{n, d}});
    q.decode(be, codes.cview(), x_hat.view());
    for (index_t i = 0; i < x_hat.numel(); ++i) REQUIRE(std::isfinite(x_hat.data()[i]));
    // The codes carry information: the reconstruction beats guessing zero.
    REQUIRE(mean_squared(x, &x_hat) < 0.5 * mean_squared(x, nullptr));

    // Named errors, the same for every quantizer.
    Matrix<std::int32_t> wide(Shape<2>{{n, m + 1}});
    REQUIRE_THROWS_AS(q.encode(be, x.cview(), wide.view()), ShapeError);
    Matrix<float> short_hat(Shape<2>{{n - 1, d}});
    REQUIRE_THROWS_AS(q.decode(be, codes.cview(), short_hat.view()), ShapeError);
    Matrix<std::int32_t> bad_codes(codes.shape());
    std::copy_n(codes.data(), codes.numel(), bad_codes.data());
    bad_codes(n - 1, m - 1) = -1;
    REQUIRE_THROWS_AS(q.decode(be, bad_codes.cview(), x_hat.view()), IndexError);
    Matrix<float> nan_x(x.shape());
    std::copy_n(x.data(), x.numel(), nan_x.data());
    nan_x(1, 0) = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_AS(q.encode(be, nan_x.cview(), codes.view()), ValueError);
    REQUIRE_THROWS_AS(q.train(be, nan_x.cview()), ValueError);
    return x_hat;
}

/// [n, 4] values in (-0.6, 0.6): inside FSQ's bounded range, so its decode
/// (the normalised grid values) and RQ's (a sum of centroids) both approximate x.
Matrix<float> small_values(index_t n) {
    Matrix<float> x(Shape<2>{{n, 4}});
    const Rng rng(11);
    for (index_t i = 0; i < x.numel(); ++i)
        x.data()[i] = static_cast<float>(1.2 * rng.uniform_double(std::uint64_t(i)) - 0.6);
    return x;
}

}  // namespace

TEST_CASE("Quantizer contract: RQ and FSQ through one generic round trip", "[tokenizers][quantizer]") {
    ThreadPool pool(2);
    const Be be{&pool};
    const Matrix<float> x = small_values(300);

    ResidualQuantizerConfig rq_cfg;
    rq_cfg.levels = 2;
    rq_cfg.codebook_size = 16;
    rq_cfg.kmeans.iterations = 8;
    ResidualQuantizer rq(rq_cfg);
    const Matrix<float> rq_hat = check_round_trip(rq, be, x);
    REQUIRE(rq.code_length() == 2);

    FiniteScalarQuantizer fsq(FsqConfig{{7, 7, 5, 5}});
    const Matrix<float> fsq_hat = check_round_trip(fsq, be, x);
    REQUIRE(fsq.code_length() == 4);
    // FSQ's decode is the grid value: in [-1, 1], a multiple of 1 / (L // 2).
    for (index_t i = 0; i < fsq_hat.extent(0); ++i)
        for (index_t c = 0; c < 4; ++c) {
            const double scaled = double(fsq_hat(i, c)) * fsq.half_width(c);
            REQUIRE(std::fabs(fsq_hat(i, c)) <= 1.0f);
            REQUIRE(std::fabs(scaled - std::nearbyint(scaled)) < 1e-5);
        }
}

TEST_CASE("Quantizer contract: FSQ's train learns nothing but checks its input", "[tokenizers][quantizer][fsq]") {
    const backend::Reference ref{};
    const FiniteScalarQuantizer fsq(FsqConfig{{8, 5, 5, 5}});
    const Matrix<float> x = small_values(10);
    Matrix<std::int32_t> before(Shape<2>{{10, 4}}), after(before.shape());
    fsq.encode(ref, x.cview(), before.view());
    fsq.train(ref, x.cview());
    fsq.encode(ref, x.cview(), after.view());
    for (index_t i = 0; i < before.numel(); ++i) REQUIRE(before.data()[i] == after.data()[i]);
    Matrix<float> three(Shape<2>{{10, 3}});
    REQUIRE_THROWS_AS(fsq.train(ref, three.cview()), ShapeError);
}
