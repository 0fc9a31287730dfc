// Matryoshka losses (MRL-E shared table, MRL separate tables; BCE with
// negatives and full softmax CE): against PyTorch autograd (golden file from
// tests/golden/make_matryoshka_golden.py), finite differences (f64), the
// single-width losses they generalise, and f32 on the CPU backend.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "../support/compare.hpp"
#include "../support/gradcheck.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/losses/matryoshka_loss.hpp"

using namespace recblocks;

namespace {

io::SafetensorsReader golden() {
    return io::SafetensorsReader::open(std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/matryoshka.safetensors");
}

template <std::size_t R>
void require_close(const io::SafetensorsReader& r, const std::string& name, const Tensor<double, R>& got, double tol) {
    const auto want = r.load<double, R>(name);
    REQUIRE(want.shape() == got.shape());
    for (index_t i = 0; i < got.numel(); ++i) {
        INFO(name << "[" << i << "]");
        REQUIRE(got.data()[i] == Approx(want.data()[i]).margin(tol).epsilon(tol));
    }
}

/// The golden file's inputs.
struct Golden {
    io::SafetensorsReader r = golden();
    MatryoshkaWidths widths{{3, 5, 8}, 8, {0.5, 1.0, 2.0}};
    Matrix<double> hidden = r.load<double, 2>("hidden"), table = r.load<double, 2>("table");
    Vector<double> bias = r.load<double, 1>("bias");
    Vector<row_id_t> pos = r.load<row_id_t, 1>("pos"), targets = r.load<row_id_t, 1>("targets");
    Matrix<row_id_t> neg = r.load<row_id_t, 2>("neg");
    std::vector<Matrix<double>> seps;
    Matrix<double> d_hidden{hidden.shape()}, d_table{table.shape()};
    Vector<double> d_bias{bias.shape()};
    std::vector<Matrix<double>> d_seps;
    Golden() {
        for (int i = 0; i < 3; ++i) {
            seps.push_back(r.load<double, 2>("sep_table." + std::to_string(i)));
            d_seps.emplace_back(seps.back().shape());
        }
    }
    std::vector<MatrixView<const double>> sep_views() const {
        return {seps[0].cview(), seps[1].cview(), seps[2].cview()};
    }
    std::vector<MatrixView<double>> d_sep_views() { return {d_seps[0].view(), d_seps[1].view(), d_seps[2].view()}; }
    void zero() {
        for (auto* m : {&d_table, &d_seps[0], &d_seps[1], &d_seps[2]}) std::fill(m->begin(), m->end(), 0.0);
        std::fill(d_bias.begin(), d_bias.end(), 0.0);
    }
};

}  // namespace

TEST_CASE("Matryoshka BCE (MRL-E and MRL) matches PyTorch and finite differences", "[matryoshka][losses]") {
    Golden g;
    losses::MatryoshkaBceWithNegatives<double> bce;
    auto shared = [&] {
        g.zero();
        return bce.shared(backend::Reference{}, g.widths, g.hidden.cview(), g.table.cview(), g.pos.cview(), g.neg.cview(), g.d_hidden.view(),
                          g.d_table.view());
    };
    const auto v = shared();
    CHECK(v.count == 4);
    CHECK(v.loss == Approx(g.r.load_scalar<double>("mrl_bce.loss")).epsilon(1e-12));
    const auto per = g.r.load<double, 1>("mrl_bce.per_width");
    for (index_t i = 0; i < 3; ++i) CHECK(v.per_width[static_cast<std::size_t>(i)] == Approx(per(i)).epsilon(1e-12));
    require_close(g.r, "mrl_bce.grad.hidden", g.d_hidden, 1e-12);
    require_close(g.r, "mrl_bce.grad.table", g.d_table, 1e-12);
    Matrix<double> dh = g.d_hidden, dt = g.d_table;
    rbtest::check_fd("d_hidden", g.hidden.data(), dh.data(), dh.numel(), [&] { return shared().loss; });
    rbtest::check_fd("d_table", g.table.data(), dt.data(), dt.numel(), [&] { return shared().loss; });

    const auto tabs = g.sep_views();
    const auto dtabs = g.d_sep_views();
    auto separate = [&] {
        g.zero();
        return bce.separate(backend::Reference{}, g.widths, g.hidden.cview(), tabs, g.pos.cview(), g.neg.cview(), g.d_hidden.view(), dtabs);
    };
    CHECK(separate().loss == Approx(g.r.load_scalar<double>("mrl_bce_sep.loss")).epsilon(1e-12));
    require_close(g.r, "mrl_bce_sep.grad.hidden", g.d_hidden, 1e-12);
    for (int i = 0; i < 3; ++i) require_close(g.r, "mrl_bce_sep.grad.sep_table." + std::to_string(i), g.d_seps[i], 1e-12);
    dh = g.d_hidden;
    rbtest::check_fd("d_hidden", g.hidden.data(), dh.data(), dh.numel(), [&] { return separate().loss; });
    const Matrix<double> ds1 = g.d_seps[1];
    rbtest::check_fd("d_sep_table.1", g.seps[1].data(), ds1.data(), ds1.numel(), [&] { return separate().loss; });
}

TEST_CASE("Matryoshka BCE with one width is the plain BCE loss", "[matryoshka][losses]") {
    Golden g;
    losses::MatryoshkaBceWithNegatives<double> bce;
    const auto v = bce.shared(backend::Reference{}, MatryoshkaWidths({8}, 8), g.hidden.cview(), g.table.cview(), g.pos.cview(),
                              g.neg.cview(), g.d_hidden.view(), g.d_table.view());
    Matrix<double> dh(g.hidden.shape()), dt(g.table.shape());
    const auto ref = losses::bce_with_negatives<double>(backend::Reference{}, g.hidden.cview(), g.table.cview(), g.pos.cview(), g.neg.cview(),
                                                        dh.view(), dt.view());
    CHECK(v.loss == Approx(ref.loss).epsilon(1e-14));
    REQUIRE(rbtest::compare(g.d_hidden.cview(), dh.cview(), {1e-15, 1e-14}).ok);
    REQUIRE(rbtest::compare(g.d_table.cview(), dt.cview(), {1e-15, 1e-14}).ok);
}

TEST_CASE("Matryoshka softmax CE (MRL-E with bias, MRL) matches PyTorch and finite differences", "[matryoshka][losses]") {
    Golden g;
    for (index_t chunk : {1, 3, 128}) {
        losses::MatryoshkaSoftmaxCrossEntropy<double> ce(chunk);
        auto shared = [&] {
            g.zero();
            return ce.shared(backend::Reference{}, g.widths, g.hidden.cview(), g.table.cview(), g.bias.cview(),
                             g.targets.cview(), g.d_hidden.view(), g.d_table.view(), g.d_bias.view());
        };
        CHECK(shared().loss == Approx(g.r.load_scalar<double>("mrl_ce.loss")).epsilon(1e-12));
        require_close(g.r, "mrl_ce.grad.hidden", g.d_hidden, 1e-12);
        require_close(g.r, "mrl_ce.grad.table", g.d_table, 1e-12);
        require_close(g.r, "mrl_ce.grad.bias", g.d_bias, 1e-12);
        const Matrix<double> dh = g.d_hidden, dt = g.d_table;
        const Vector<double> db = g.d_bias;
        rbtest::check_fd("d_hidden", g.hidden.data(), dh.data(), dh.numel(), [&] { return shared().loss; });
        rbtest::check_fd("d_table", g.table.data(), dt.data(), dt.numel(), [&] { return shared().loss; });
        rbtest::check_fd("d_bias", g.bias.data() + 1, db.data() + 1, db.numel() - 1, [&] { return shared().loss; });

        const auto tabs = g.sep_views();
        const auto dtabs = g.d_sep_views();
        auto separate = [&] {
            g.zero();
            return ce.separate(backend::Reference{}, g.widths, g.hidden.cview(), tabs, g.targets.cview(),
                               g.d_hidden.view(), dtabs);
        };
        CHECK(separate().loss == Approx(g.r.load_scalar<double>("mrl_ce_sep.loss")).epsilon(1e-12));
        require_close(g.r, "mrl_ce_sep.grad.hidden", g.d_hidden, 1e-12);
        for (int i = 0; i < 3; ++i)
            require_close(g.r, "mrl_ce_sep.grad.sep_table." + std::to_string(i), g.d_seps[i], 1e-12);
        const Matrix<double> ds2 = g.d_seps[2];
        rbtest::check_fd("d_sep_table.2", g.seps[2].data(), ds2.data(), ds2.numel(), [&] { return separate().loss; });
    }
}

TEST_CASE("Matryoshka losses: f32 on the CPU backend agrees with f64", "[matryoshka][losses]") {
    Golden g;
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    Matrix<float> h(g.hidden.shape()), t(g.table.shape()), dh(h.shape()), dt(t.shape());
    Vector<float> b(g.bias.shape()), db(b.shape());
    for (index_t i = 0; i < h.numel(); ++i) h.data()[i] = float(g.hidden.data()[i]);
    for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = float(g.table.data()[i]);
    for (index_t i = 0; i < b.numel(); ++i) b.data()[i] = float(g.bias.data()[i]);
    losses::MatryoshkaSoftmaxCrossEntropy<float> ce(4);
    const auto v = ce.shared(cpu, g.widths, h.cview(), t.cview(), b.cview(), g.targets.cview(), dh.view(), dt.view(),
                             db.view());
    CHECK(v.loss == Approx(g.r.load_scalar<double>("mrl_ce.loss")).epsilon(1e-5));
    const auto want_dh = g.r.load<double, 2>("mrl_ce.grad.hidden");
    const auto want_dt = g.r.load<double, 2>("mrl_ce.grad.table");
    for (index_t i = 0; i < dh.numel(); ++i) CHECK(dh.data()[i] == Approx(want_dh.data()[i]).margin(2e-6));
    for (index_t i = 0; i < dt.numel(); ++i) CHECK(dt.data()[i] == Approx(want_dt.data()[i]).margin(2e-6));
    losses::MatryoshkaBceWithNegatives<float> bce;
    std::fill(dt.begin(), dt.end(), 0.0f);
    const auto vb = bce.shared(backend::Reference{}, g.widths, h.cview(), t.cview(), g.pos.cview(), g.neg.cview(), dh.view(), dt.view());
    CHECK(vb.loss == Approx(g.r.load_scalar<double>("mrl_bce.loss")).epsilon(1e-5));
}

TEST_CASE("Matryoshka losses: bad shapes and ids are named errors", "[matryoshka][losses]") {
    Golden g;
    losses::MatryoshkaBceWithNegatives<double> bce;
    const MatryoshkaWidths w16({8, 16}, 16);
    REQUIRE_THROWS_WITH(bce.shared(backend::Reference{}, w16, g.hidden.cview(), g.table.cview(), g.pos.cview(), g.neg.cview(),
                                   g.d_hidden.view(), g.d_table.view()),
                        Catch::Contains("hidden has 8 columns but the widths end at 16"));
    const auto tabs = g.sep_views();
    const auto dtabs = g.d_sep_views();
    REQUIRE_THROWS_WITH(bce.separate(backend::Reference{}, g.widths, g.hidden.cview(), std::span(tabs).first(2), g.pos.cview(),
                                     g.neg.cview(), g.d_hidden.view(), dtabs),
                        Catch::Contains("2 tables and 3 gradients for 3 widths"));
    g.neg(2, 1) = 10;
    REQUIRE_THROWS_WITH(bce.shared(backend::Reference{}, g.widths, g.hidden.cview(), g.table.cview(), g.pos.cview(), g.neg.cview(),
                                   g.d_hidden.view(), g.d_table.view()),
                        Catch::Contains("neg[2, 1] = 10 is outside [1, 9]"));
    losses::MatryoshkaSoftmaxCrossEntropy<double> ce;
    g.targets(0) = 12;
    REQUIRE_THROWS_WITH(ce.shared(backend::Reference{}, g.widths, g.hidden.cview(), g.table.cview(), {},
                                  g.targets.cview(), g.d_hidden.view(), g.d_table.view(), {}),
                        Catch::Contains("targets[0] = 12 is outside [0, 9]"));
}
