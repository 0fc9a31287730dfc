// Losses: values against direct formulas, gradients against finite
// differences (f64), padding/ignored rows, accidental hits, bad ids.
#include <catch2/catch.hpp>

#include <cmath>

#include "../support/compare.hpp"
#include "../support/gradcheck.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/losses/sampled_softmax.hpp"
#include "recblocks/losses/softmax_cross_entropy.hpp"

using namespace recblocks;

namespace {
constexpr index_t kRows = 6, kD = 5, kN = 9;

struct Fixture {
    Matrix<double> hidden{Shape<2>{{kRows, kD}}}, table{Shape<2>{{kN + 1, kD}}};
    Matrix<double> d_hidden{Shape<2>{{kRows, kD}}}, d_table{Shape<2>{{kN + 1, kD}}};
    Vector<row_id_t> targets{Shape<1>{{kRows}}};
    Fixture() {
        rbtest::fill_uniform(hidden, 1, -1.0, 1.0);
        rbtest::fill_uniform(table, 2, -1.0, 1.0);
        const row_id_t t[kRows] = {3, 0, 9, 1, 3, 0};  // two ignored rows, a repeated target
        for (index_t r = 0; r < kRows; ++r) targets(r) = t[r];
    }
};
double logsumexp(const std::vector<double>& z) {
    double mx = z[0];
    for (double v : z) mx = std::max(mx, v);
    double s = 0;
    for (double v : z) s += std::exp(v - mx);
    return mx + std::log(s);
}
double dot(const Matrix<double>& a, index_t i, const Matrix<double>& b, index_t j) {
    double s = 0;
    for (index_t c = 0; c < kD; ++c) s += a(i, c) * b(j, c);
    return s;
}
}  // namespace

TEST_CASE("BCE with negatives: value, gradients, padding", "[losses]") {
    Fixture f;
    Matrix<row_id_t> neg(Shape<2>{{kRows, 2}});
    for (index_t r = 0; r < kRows; ++r) {
        neg(r, 0) = static_cast<row_id_t>(1 + (r * 4) % kN);
        neg(r, 1) = static_cast<row_id_t>(1 + (r * 7 + 2) % kN);
    }
    auto run = [&] {
        f.d_table.view().data()[0] = 0;
        std::fill(f.d_table.begin(), f.d_table.end(), 0.0);
        return losses::bce_with_negatives<double>(backend::Reference{}, f.hidden.cview(), f.table.cview(), f.targets.cview(), neg.cview(),
                                                  f.d_hidden.view(), f.d_table.view());
    };
    const auto v = run();
    REQUIRE(v.count == 4);
    double expect = 0;
    for (index_t r = 0; r < kRows; ++r) {
        if (f.targets(r) == 0) continue;
        expect += std::log1p(std::exp(-dot(f.hidden, r, f.table, f.targets(r))));
        for (index_t k = 0; k < 2; ++k) expect += std::log1p(std::exp(dot(f.hidden, r, f.table, neg(r, k))));
    }
    CHECK(v.loss == Approx(expect / 4).epsilon(1e-12));
    Matrix<double> dh = f.d_hidden, dt = f.d_table;
    auto loss = [&] { return run().loss; };
    rbtest::check_fd("d_hidden", f.hidden.data(), dh.data(), dh.numel(), loss);
    rbtest::check_fd("d_table", f.table.data(), dt.data(), dt.numel(), loss);
    for (index_t c = 0; c < kD; ++c) CHECK(dh(1, c) == 0.0);  // ignored row
    neg(0, 1) = kN + 1;
    REQUIRE_THROWS_WITH(run(), Catch::Contains("neg[0, 1] = 10 is outside [1, 9]"));
}

TEST_CASE("full softmax cross-entropy: value, gradients, bias, chunks, CPU", "[losses]") {
    Fixture f;
    Vector<double> bias(Shape<1>{{kN + 1}}), d_bias(bias.shape());
    rbtest::fill_uniform(bias, 3, -0.5, 0.5);
    for (index_t chunk : {1, 3, 256}) {
        losses::SoftmaxCrossEntropy<double> ce(chunk);
        auto run = [&] {
            std::fill(f.d_table.begin(), f.d_table.end(), 0.0);
            std::fill(d_bias.begin(), d_bias.end(), 0.0);
            return ce(backend::Reference{}, f.hidden.cview(), f.table.cview(), bias.cview(), f.targets.cview(),
                      f.d_hidden.view(), f.d_table.view(), d_bias.view());
        };
        const auto v = run();
        double expect = 0;
        for (index_t r = 0; r < kRows; ++r) {
            if (f.targets(r) == 0) continue;
            std::vector<double> z;
            for (index_t i = 1; i <= kN; ++i) z.push_back(dot(f.hidden, r, f.table, i) + bias(i));
            expect += logsumexp(z) - z[static_cast<std::size_t>(f.targets(r) - 1)];
        }
        CHECK(v.loss == Approx(expect / 4).epsilon(1e-12));
        Matrix<double> dh = f.d_hidden, dt = f.d_table;
        Vector<double> db = d_bias;
        auto loss = [&] { return run().loss; };
        rbtest::check_fd("d_hidden", f.hidden.data(), dh.data(), dh.numel(), loss);
        rbtest::check_fd("d_table", f.table.data(), dt.data(), dt.numel(), loss);
        rbtest::check_fd("d_bias", bias.data() + 1, db.data() + 1, kN, loss);
        for (index_t c = 0; c < kD; ++c) CHECK(dt(0, c) == 0.0);  // padding row is never a class
    }
    // f32 on the CPU backend agrees with the f64 reference.
    ThreadPool pool(2);
    losses::SoftmaxCrossEntropy<float> ce32(4);
    Matrix<float> h32(f.hidden.shape()), t32(f.table.shape()), dh32(h32.shape()), dt32(t32.shape());
    for (index_t i = 0; i < h32.numel(); ++i) h32.data()[i] = float(f.hidden.data()[i]);
    for (index_t i = 0; i < t32.numel(); ++i) t32.data()[i] = float(f.table.data()[i]);
    losses::SoftmaxCrossEntropy<double> ce64;
    std::fill(f.d_table.begin(), f.d_table.end(), 0.0);
    const auto ref = ce64(backend::Reference{}, f.hidden.cview(), f.table.cview(), {}, f.targets.cview(),
                          f.d_hidden.view(), f.d_table.view(), {});
    const auto got = ce32(backend::Cpu<isa::Dispatch>{&pool}, h32.cview(), t32.cview(), {}, f.targets.cview(),
                          dh32.view(), dt32.view(), {});
    CHECK(got.loss == Approx(ref.loss).epsilon(1e-5));
    for (index_t i = 0; i < dh32.numel(); ++i) CHECK(dh32.data()[i] == Approx(f.d_hidden.data()[i]).margin(1e-6));
    f.targets(2) = kN + 1;
    REQUIRE_THROWS_WITH(ce64(backend::Reference{}, f.hidden.cview(), f.table.cview(), {}, f.targets.cview(),
                             f.d_hidden.view(), f.d_table.view(), {}),
                        Catch::Contains("targets[2] = 10 is outside [0, 9]"));
}

TEST_CASE("sampled softmax with log-Q: value, gradients, accidental hits", "[losses]") {
    Fixture f;
    Vector<row_id_t> negs(Shape<1>{{4}});
    const row_id_t ns[4] = {2, 3, 7, 9};  // 3 and 9 are targets of some rows: accidental hits
    for (index_t j = 0; j < 4; ++j) negs(j) = ns[j];
    Vector<double> log_q(Shape<1>{{kN + 1}});
    for (index_t i = 1; i <= kN; ++i) log_q(i) = std::log(double(i) / 45.0);
    losses::SampledSoftmax<double> ss;
    auto run = [&] {
        std::fill(f.d_table.begin(), f.d_table.end(), 0.0);
        return ss(backend::Reference{}, f.hidden.cview(), f.table.cview(), f.targets.cview(), negs.cview(),
                  log_q.cview(), f.d_hidden.view(), f.d_table.view());
    };
    const auto v = run();
    double expect = 0;
    for (index_t r = 0; r < kRows; ++r) {
        const index_t t = f.targets(r);
        if (t == 0) continue;
        std::vector<double> z{dot(f.hidden, r, f.table, t) - log_q(t)};
        for (index_t j = 0; j < 4; ++j)
            if (negs(j) != t) z.push_back(dot(f.hidden, r, f.table, negs(j)) - log_q(negs(j)));
        expect += logsumexp(z) - z[0];
    }
    CHECK(v.loss == Approx(expect / 4).epsilon(1e-12));
    Matrix<double> dh = f.d_hidden, dt = f.d_table;
    auto loss = [&] { return run().loss; };
    rbtest::check_fd("d_hidden", f.hidden.data(), dh.data(), dh.numel(), loss);
    rbtest::check_fd("d_table", f.table.data(), dt.data(), dt.numel(), loss);
    negs(0) = 0;
    REQUIRE_THROWS_AS(run(), IndexError);
}
