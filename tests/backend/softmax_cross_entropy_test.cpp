// ops::softmax_cross_entropy: the Reference backend against a textbook
// computation, every CPU backend (ISA level, 1 and 3 threads) against the
// Reference, the device path (GuardedDevice), non-finite logits and the
// argument checks.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <limits>
#include <vector>

#include "../support/compare.hpp"
#include "../support/guarded_device.hpp"
#include "backends.hpp"
#include "recblocks/ops/softmax_cross_entropy.hpp"

using namespace recblocks;
using rbtest::fill_uniform;

namespace {

const backend::Reference ref{};
const index_t kCols[] = {1, 7, 8, 9, 63, 64, 65, 1000};

/// Targets of `rows` rows over `cols` columns: every third row ignored (-1), the last column used.
std::vector<row_id_t> make_targets(index_t rows, index_t cols) {
    std::vector<row_id_t> t(static_cast<std::size_t>(rows));
    for (index_t r = 0; r < rows; ++r)
        t[std::size_t(r)] = r % 3 == 1 ? -1 : static_cast<row_id_t>(r == 0 ? cols - 1 : (r * 7) % cols);
    return t;
}

}  // namespace

TEST_CASE("reference softmax_cross_entropy is the textbook loss and gradient", "[backend][softmax_cross_entropy]") {
    const index_t rows = 4, cols = 5;
    Matrix<double> logits(Shape<2>{{rows, cols}});
    Vector<double> bias(Shape<1>{{cols}});
    fill_uniform(logits, 1, -3, 3);
    fill_uniform(bias, 2);
    const Matrix<double> z0 = logits;
    const std::vector<row_id_t> targets = {2, -1, 0, 4};
    const double scale = 0.25;
    const double got = ops::softmax_cross_entropy(ref, logits.view(), bias.cview(),
                                                  vector_view<const row_id_t>(targets.data(), rows), scale);
    double want = 0;
    for (index_t r = 0; r < rows; ++r) {
        const row_id_t t = targets[std::size_t(r)];
        if (t < 0) {
            for (index_t c = 0; c < cols; ++c) CHECK(logits(r, c) == 0.0);
            continue;
        }
        double sum = 0;
        for (index_t c = 0; c < cols; ++c) sum += std::exp(z0(r, c) + bias(c));
        want += std::log(sum) - (z0(r, t) + bias(t));
        for (index_t c = 0; c < cols; ++c) {
            const double p = std::exp(z0(r, c) + bias(c)) / sum;
            CHECK(logits(r, c) == Approx(scale * (p - (c == t ? 1.0 : 0.0))).margin(1e-15));
        }
    }
    CHECK(got == Approx(want).epsilon(1e-14));
    // Large logits do not overflow (the row maximum is subtracted first).
    Matrix<double> big(Shape<2>{{1, 3}});
    big(0, 0) = 1000;
    big(0, 1) = 999;
    big(0, 2) = -1000;
    const row_id_t t1 = 1;
    const double l = ops::softmax_cross_entropy(ref, big.view(), {}, vector_view<const row_id_t>(&t1, 1), 1.0);
    CHECK(l == Approx(1.0 + std::log1p(std::exp(-1.0))).epsilon(1e-12));  // 1000 - 999: absolute error ~1e-13
}

TEMPLATE_TEST_CASE("cpu softmax_cross_entropy matches reference, with and without bias", "[backend][softmax_cross_entropy]",
                   float, double) {
    using T = TestType;
    const auto tol = rbtest::default_tolerance<T>();
    const index_t rows = 11;
    for (index_t cols : kCols)
        for (bool with_bias : {false, true}) {
            Matrix<T> logits(Shape<2>{{rows, cols}});
            Vector<T> bias(Shape<1>{{cols}});
            fill_uniform(logits, 3, -4, 4);
            fill_uniform(bias, 4);
            const auto targets = make_targets(rows, cols);
            const auto tv = vector_view<const row_id_t>(targets.data(), rows);
            const VectorView<const T> b = with_bias ? bias.cview() : VectorView<const T>{};
            Matrix<T> want = logits;
            const double want_loss = ops::softmax_cross_entropy(ref, want.view(), b, tv, T(0.125));
            struct Seen {
                std::string isa;
                Matrix<T> grad;
                double loss;
            };
            std::vector<Seen> seen;
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                Matrix<T> got = logits;
                const double loss = ops::softmax_cross_entropy(be, got.view(), b, tv, T(0.125));
                INFO(name << " cols=" << cols << " bias=" << with_bias);
                CHECK(loss == Approx(want_loss).epsilon(std::is_same_v<T, float> ? 2e-6 : 1e-12));
                RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), tol);
                // The same ISA on 1 and 3 threads: the same bits (loss and gradient).
                const std::string isa = name.substr(0, name.find(' '));
                for (const auto& s : seen)
                    if (s.isa == isa) {
                        REQUIRE(std::memcmp(s.grad.data(), got.data(), sizeof(T) * std::size_t(got.numel())) == 0);
                        REQUIRE(loss == s.loss);
                    }
                if (name.find("threads=1") != std::string::npos) seen.push_back({isa, got, loss});
            });
        }
}

TEMPLATE_TEST_CASE("softmax_cross_entropy: a non-finite logit of a counted row makes the sum non-finite",
                   "[backend][softmax_cross_entropy]", float, double) {
    using T = TestType;
    const index_t rows = 3, cols = 37;
    for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                        -std::numeric_limits<T>::infinity()}) {
        Matrix<T> logits(Shape<2>{{rows, cols}});
        fill_uniform(logits, 5);
        const std::vector<row_id_t> targets = {3, -1, 36};
        const auto tv = vector_view<const row_id_t>(targets.data(), rows);
        auto run = [&](const auto& be, index_t row, index_t col) {
            Matrix<T> m = logits;
            m(row, col) = bad;
            return ops::softmax_cross_entropy(be, m.view(), {}, tv, T(1));
        };
        // -inf anywhere but the target is just a class with probability 0.
        const bool at_target_only = bad < 0;
        INFO("bad = " << bad);
        CHECK(std::isfinite(run(ref, 1, 5)));  // an ignored row
        CHECK(std::isfinite(run(backend::Cpu<isa::Dispatch>{}, 1, 5)));
        CHECK(std::isfinite(run(ref, 0, 3)) == false);
        CHECK(std::isfinite(run(backend::Cpu<isa::Dispatch>{}, 0, 3)) == false);
        CHECK(std::isfinite(run(ref, 2, 20)) == at_target_only);
        CHECK(std::isfinite(run(backend::Cpu<isa::Dispatch>{}, 2, 20)) == at_target_only);
    }
}

TEST_CASE("softmax_cross_entropy on a device backend: the reference's bits", "[backend][softmax_cross_entropy][device]") {
    const rbtest::GuardedDevice dev{};
    const index_t rows = 6, cols = 65;
    Matrix<double> logits(Shape<2>{{rows, cols}});
    Vector<double> bias(Shape<1>{{cols}});
    fill_uniform(logits, 6, -2, 2);
    fill_uniform(bias, 7);
    const auto targets = make_targets(rows, cols);
    Vector<row_id_t> host_targets(Shape<1>{{rows}});
    std::copy(targets.begin(), targets.end(), host_targets.begin());
    Matrix<double> want = logits;
    const double want_loss = ops::softmax_cross_entropy(ref, want.view(), bias.cview(), host_targets.cview(), 0.5);
    auto d_logits = to(dev, logits);
    const auto d_bias = to(dev, bias);
    const auto d_targets = to(dev, host_targets);
    const double loss = ops::softmax_cross_entropy(dev, d_logits.view(), d_bias.cview(), d_targets.cview(), 0.5);
    CHECK(loss == want_loss);
    const Matrix<double> back = to_host(d_logits);
    CHECK(std::memcmp(back.data(), want.data(), sizeof(double) * std::size_t(want.numel())) == 0);
}

TEST_CASE("ops::softmax_cross_entropy names a bad argument", "[backend][softmax_cross_entropy][errors]") {
    Matrix<float> logits(Shape<2>{{3, 9}});
    Vector<float> bias(Shape<1>{{9}}), short_bias(Shape<1>{{8}});
    std::vector<row_id_t> targets = {0, -1, 8};
    const auto tv = vector_view<const row_id_t>(targets.data(), 3);
    auto check_backend = [&](const auto& be) {
        REQUIRE_NOTHROW(ops::softmax_cross_entropy(be, logits.view(), bias.cview(), tv, 1.0f));
        REQUIRE_THROWS_WITH(ops::softmax_cross_entropy(be, logits.view(), {}, vector_view<const row_id_t>(targets.data(), 2), 1.0f),
                            Catch::Contains("ops::softmax_cross_entropy: targets has 2 entries but logits' rows is 3"));
        REQUIRE_THROWS_AS(ops::softmax_cross_entropy(be, logits.view(), short_bias.cview(), tv, 1.0f), ShapeError);
        REQUIRE_THROWS_WITH(ops::softmax_cross_entropy(be, logits.view(), short_bias.cview(), tv, 1.0f),
                            Catch::Contains("bias has 8 entries but logits' columns is 9"));
        REQUIRE_THROWS_WITH(ops::softmax_cross_entropy(be, logits.view(), vector_view<const float>(logits.data() + 9, 9), tv, 1.0f),
                            Catch::Contains("bias overlaps logits"));
        REQUIRE_THROWS_AS(ops::softmax_cross_entropy(be, logits.view(), {}, tv, std::numeric_limits<float>::infinity()),
                          ValueError);
        targets[2] = 9;
        const Matrix<float> before = logits;
        REQUIRE_THROWS_AS(ops::softmax_cross_entropy(be, logits.view(), {}, tv, 1.0f), IndexError);
        REQUIRE_THROWS_WITH(ops::softmax_cross_entropy(be, logits.view(), {}, tv, 1.0f),
                            Catch::Contains("targets[2] = 9 is outside [0, 9)"));
        CHECK(std::memcmp(before.data(), logits.data(), sizeof(float) * 27) == 0);  // nothing written
        targets[2] = 8;
        REQUIRE_THROWS_AS(ops::softmax_cross_entropy(be, MatrixView<float>(logits.data(), Shape<2>{{3, 9}}, {4, 1}), {},
                                                     tv, 1.0f),
                          ShapeError);
    };
    check_backend(backend::Reference{});
    check_backend(backend::Cpu<isa::Dispatch>{});
}
