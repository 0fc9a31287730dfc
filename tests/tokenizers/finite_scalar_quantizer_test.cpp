// FSQ: codes equal to the NumPy reference of both variants (tests/golden/tokenizer_fsq.safetensors),
// codes in range, index round trip, implicit codebook sizes; the FSQ autoencoder's
// straight-through gradients against finite differences, and training lowers its loss; bad inputs.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "../support/gradcheck.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/tokenizers/finite_scalar_quantizer.hpp"
#include "recblocks/tokenizers/fsq_autoencoder.hpp"

using namespace recblocks;
using tokenizers::FiniteScalarQuantizer;
using tokenizers::FsqAutoencoder;
using tokenizers::FsqConfig;
using tokenizers::FsqVariant;

TEST_CASE("golden: FSQ codes and indices equal the NumPy reference (both variants)", "[tokenizers][fsq][golden]") {
    const auto r = io::SafetensorsReader::open(std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/tokenizer_fsq.safetensors");
    const backend::Reference ref{};
    const std::vector<std::vector<int>> sets{{8, 5, 5, 5}, {8, 8, 8, 6, 5}, {2, 3, 4, 7}};
    for (const auto& levels : sets) {
        std::string key;
        for (int l : levels) key += (key.empty() ? "" : "-") + std::to_string(l);
        const Matrix<double> z = r.load<double, 2>("z." + key);
        for (auto [variant, name] : {std::pair{FsqVariant::paper, "paper"}, std::pair{FsqVariant::lucidrains, "lucidrains"}}) {
            const FiniteScalarQuantizer fsq(FsqConfig{levels, variant});
            const Matrix<std::int32_t> want = r.load<std::int32_t, 2>(std::string("codes.") + name + "." + key);
            const Vector<std::int64_t> want_idx = r.load<std::int64_t, 1>(std::string("index.") + name + "." + key);
            Matrix<std::int32_t> codes(want.shape());
            Matrix<double> values(z.shape());
            fsq.encode(ref, z.cview(), codes.view());
            fsq.decode(ref, codes.cview(), values.view());
            Vector<std::int64_t> idx(want_idx.shape());
            fsq.codes_to_indices(codes.cview(), idx.view());
            index_t mismatches = 0;
            for (index_t i = 0; i < codes.numel(); ++i) mismatches += codes.data()[i] != want.data()[i];
            for (index_t i = 0; i < idx.numel(); ++i) mismatches += idx.data()[i] != want_idx.data()[i];
            INFO(name << " " << key);
            REQUIRE(mismatches == 0);
            for (index_t i = 0; i < codes.extent(0); ++i)
                for (index_t c = 0; c < fsq.channels(); ++c) {
                    REQUIRE(codes(i, c) >= 0);
                    REQUIRE(codes(i, c) < levels[std::size_t(c)]);
                    REQUIRE(std::fabs(values(i, c)) <= 1.0);
                }
        }
    }
}

TEST_CASE("FSQ: implicit codebook size, mixed-radix index round trip, values", "[tokenizers][fsq]") {
    const backend::Reference ref{};
    const FiniteScalarQuantizer a(FsqConfig{{8, 5, 5, 5}}), b(FsqConfig{{8, 8, 8, 6, 5}, FsqVariant::lucidrains});
    REQUIRE(a.codebook_size() == 1000);
    REQUIRE(b.codebook_size() == 15360);
    REQUIRE(b.basis(0) == 1);
    REQUIRE(b.basis(4) == 8 * 8 * 8 * 6);
    for (const FiniteScalarQuantizer* q : {&a, &b}) {
        const index_t n = q->codebook_size();
        Vector<std::int64_t> idx(Shape<1>{{n}}), back(Shape<1>{{n}});
        for (index_t i = 0; i < n; ++i) idx(i) = i;
        Matrix<std::int32_t> codes(Shape<2>{{n, q->channels()}});
        q->indices_to_codes(idx.cview(), codes.view());
        q->codes_to_indices(codes.cview(), back.view());
        for (index_t i = 0; i < n; ++i) REQUIRE(back(i) == i);
        REQUIRE(codes(1, 0) == 1);  // channel 0 least significant
        Matrix<float> v(Shape<2>{{n, q->channels()}}), v2(v.shape());
        q->decode(ref, codes.cview(), v.view());
        q->indices_to_values<float>(idx.cview(), v2.view());
        for (index_t i = 0; i < v.numel(); ++i) {
            REQUIRE(v.data()[i] == v2.data()[i]);
            REQUIRE(std::fabs(v.data()[i]) <= 1.0f);
        }
    }
    // Zero maps to the centre code for odd L, and to the upper-middle code for even L (half-level offset).
    Matrix<double> z(Shape<2>{{1, 4}});
    Matrix<std::int32_t> c(Shape<2>{{1, 4}});
    a.encode(ref, z.cview(), c.view());
    REQUIRE(c(0, 0) == 4);
    REQUIRE(c(0, 1) == 2);
}

TEST_CASE("FSQ autoencoder: straight-through gradients match finite differences", "[tokenizers][fsq][gradcheck]") {
    const backend::Reference ref{};
    for (auto variant : {FsqVariant::paper, FsqVariant::lucidrains}) {
        FsqAutoencoder<double> ae({7, FsqConfig{{8, 5, 3}, variant}}, Rng(4));
        Matrix<double> x(Shape<2>{{9, 7}}), xh(x.shape()), dxh(x.shape());
        const Rng rng(5);
        for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = 2.0 * rng.normal(std::uint64_t(i));
        ParamList<double> params;
        ae.append_params("fsq.", params);
        // Without rounding the loss is smooth and its gradient is exactly the straight-through one.
        ae.zero_grads();
        ae.forward(ref, x.cview(), xh.view(), false);
        ae.backward(ref, dxh.view());
        rbtest::check_fd(params, [&] { return ae.forward(ref, x.cview(), xh.view(), false); }, 1e-5);
        // With rounding, the decoder's gradients are exact (q is locally constant in them) and the
        // encoder's are the straight-through ones: the same as without rounding at equal q-gradient.
        ae.zero_grads();
        ae.forward(ref, x.cview(), xh.view(), true);
        ae.backward(ref, dxh.view());
        ParamList<double> dec(params.begin() + 2, params.end());
        rbtest::check_fd(dec, [&] { return ae.forward(ref, x.cview(), xh.view(), true); }, 1e-5);
    }
}

TEST_CASE("FSQ autoencoder trains (loss falls) and encodes / decodes", "[tokenizers][fsq]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    const index_t n = 256, d = 16;
    // Data on a 3-dimensional subspace: an autoencoder with 4 FSQ channels can represent it well.
    Matrix<float> x(Shape<2>{{n, d}});
    const Rng rng(8);
    for (index_t i = 0; i < n; ++i)
        for (index_t t = 0; t < d; ++t)
            x(i, t) = static_cast<float>(rng.normal(std::uint64_t(i * 3)) * std::sin(double(t)) +
                                         rng.normal(std::uint64_t(i * 3 + 1)) * std::cos(0.5 * double(t)) +
                                         rng.normal(std::uint64_t(i * 3 + 2)) * 0.3);
    FsqAutoencoder<float> ae({d, FsqConfig{{8, 5, 5, 5}}}, Rng(1));
    ParamList<float> params;
    ae.append_params("", params);
    optim::Adam<float> adam({}, params);
    const double first = ae.train_step(be, x.cview(), adam, params, 1e-2);
    double last = first;
    for (int s = 0; s < 300; ++s) last = ae.train_step(be, x.cview(), adam, params, 1e-2);
    INFO("loss " << first << " -> " << last);
    REQUIRE(last < 0.5 * first);
    Matrix<std::int32_t> codes(Shape<2>{{n, 4}});
    ae.encode(be, x.cview(), codes.view());
    Matrix<float> xh(x.shape()), xh2(x.shape());
    ae.decode(be, codes.cview(), xh.view());
    const double loss = ae.forward(be, x.cview(), xh2.view());
    for (index_t i = 0; i < xh.numel(); ++i) REQUIRE(std::fabs(xh.data()[i] - xh2.data()[i]) <= 1e-5f);
    REQUIRE(std::fabs(loss - last) < 0.5 * last + 1e-3);
}

TEST_CASE("FSQ rejects bad input with named errors", "[tokenizers][fsq][errors]") {
    REQUIRE_THROWS_AS(FiniteScalarQuantizer(FsqConfig{{8, 1, 5}}), ValueError);
    REQUIRE_THROWS_AS(FiniteScalarQuantizer(FsqConfig{{}}), ValueError);
    REQUIRE_THROWS_AS(FiniteScalarQuantizer(FsqConfig{{8, 5}, FsqVariant::paper, -1.0}), ValueError);
    const FiniteScalarQuantizer q(FsqConfig{{8, 5, 5, 5}});
    const backend::Reference ref{};
    Matrix<double> z(Shape<2>{{2, 3}});
    Matrix<std::int32_t> codes(Shape<2>{{2, 3}});
    REQUIRE_THROWS_AS(q.encode(ref, z.cview(), codes.view()), ShapeError);
    Matrix<double> z4(Shape<2>{{2, 4}});
    Matrix<std::int32_t> c4(Shape<2>{{2, 4}});
    z4(1, 2) = std::numeric_limits<double>::quiet_NaN();
    REQUIRE_THROWS_AS(q.encode(ref, z4.cview(), c4.view()), ValueError);
    Vector<std::int64_t> idx(Shape<1>{{2}});
    idx(1) = 1000;
    REQUIRE_THROWS_AS(q.indices_to_codes(idx.cview(), c4.view()), IndexError);
    c4(0, 1) = 5;
    REQUIRE_THROWS_AS(q.codes_to_indices(c4.cview(), idx.view()), IndexError);
    REQUIRE_THROWS_AS(FsqAutoencoder<float>({0, FsqConfig{}}, Rng(1)), ValueError);
}
