// Adam/AdamW against an independent scalar transcription of torch.optim's
// update; weight-decay kinds; gradient clipping; NaN detection; schedules.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "../backend/backends.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/optim/gradients.hpp"
#include "recblocks/optim/lr_schedule.hpp"

using namespace recblocks;

namespace {
struct TwoTensors {
    Vector<double> w{Shape<1>{{3}}}, gw{Shape<1>{{3}}}, b{Shape<1>{{2}}}, gb{Shape<1>{{2}}};
    ParamList<double> list;
    TwoTensors() {
        const double w0[3] = {0.5, -1.0, 2.0}, b0[2] = {0.1, -0.2};
        std::copy(w0, w0 + 3, w.data());
        std::copy(b0, b0 + 2, b.data());
        append_param(list, "", "w", w, gw, ParamKind::weight);
        append_param(list, "", "b", b, gb, ParamKind::bias);
    }
    void set_grads(int step) {
        for (index_t i = 0; i < 3; ++i) gw(i) = std::sin(double(step * 3 + i));
        for (index_t i = 0; i < 2; ++i) gb(i) = std::cos(double(step * 2 + i));
    }
};
}  // namespace

TEST_CASE("Adam and AdamW follow torch.optim's update", "[optim]") {
    for (bool decoupled : {false, true}) {
        TwoTensors t;
        optim::Adam<double>::Config cfg;
        cfg.lr = 0.01;
        cfg.beta2 = 0.98;
        cfg.weight_decay = 0.1;
        cfg.decoupled = decoupled;
        optim::Adam<double> adam(cfg, t.list);
        // Independent transcription for one scalar of each kind.
        double w = t.w(1), m = 0, v = 0, bb = t.b(0), mb = 0, vb = 0;
        for (int s = 1; s <= 5; ++s) {
            t.set_grads(s);
            double g = t.gw(1);
            if (!decoupled) g += 0.1 * w;
            else w *= 1 - 0.01 * 0.1;
            m = 0.9 * m + 0.1 * g;
            v = 0.98 * v + 0.02 * g * g;
            w -= 0.01 / (1 - std::pow(0.9, s)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(0.98, s)) + 1e-8);
            const double gb = t.gb(0);  // biases are not decayed
            mb = 0.9 * mb + 0.1 * gb;
            vb = 0.98 * vb + 0.02 * gb * gb;
            bb -= 0.01 / (1 - std::pow(0.9, s)) * mb / (std::sqrt(vb) / std::sqrt(1 - std::pow(0.98, s)) + 1e-8);
            adam.step(t.list, 0.01);
            CHECK(t.w(1) == Approx(w).epsilon(1e-13));
            CHECK(t.b(0) == Approx(bb).epsilon(1e-13));
        }
        CHECK(adam.steps() == 5);
    }
    TwoTensors t;
    REQUIRE_THROWS_AS(optim::Adam<double>({-1.0}, t.list), ValueError);
}

TEMPLATE_TEST_CASE("fused adam_update: every CPU backend gives the Reference's bits", "[optim][backend]", float,
                   double) {
    using T = TestType;
    for (index_t n : {1, 7, 8, 9, 63, 64, 65, 1000, 70001}) {
        Vector<T> w(Shape<1>{{n}}), g(w.shape()), m(w.shape()), v(w.shape());
        for (index_t i = 0; i < n; ++i) {
            w(i) = static_cast<T>(std::sin(0.1 * double(i)));
            g(i) = static_cast<T>(std::cos(0.37 * double(i)) * (i % 5 == 0 ? 0.0 : 1.0));  // some zero gradients
            m(i) = static_cast<T>(0.01 * std::sin(double(i)));
            v(i) = static_cast<T>(1e-4 * (1 + std::cos(double(i))));
        }
        for (const bool decoupled : {false, true}) {
            AdamUpdate<T> u{T(0.003), T(0.9), T(0.98), T(1e-8), T(1.25)};
            u.l2 = decoupled ? T(0) : T(0.1);
            u.shrink = decoupled ? T(1 - 0.003 * 0.1) : T(1);
            Vector<T> want_w = w, want_m = m, want_v = v;
            ops::adam_update(backend::Reference{}, u, want_w.view(), g.cview(), want_m.view(), want_v.view());
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " n=" << n << " decoupled=" << decoupled);
                Vector<T> got_w = w, got_m = m, got_v = v;
                ops::adam_update(be, u, got_w.view(), g.cview(), got_m.view(), got_v.view());
                REQUIRE(std::equal(got_w.begin(), got_w.end(), want_w.begin()));
                REQUIRE(std::equal(got_m.begin(), got_m.end(), want_m.begin()));
                REQUIRE(std::equal(got_v.begin(), got_v.end(), want_v.begin()));
            });
        }
    }
    Vector<float> w(Shape<1>{{4}}), short_g(Shape<1>{{3}});
    REQUIRE_THROWS_WITH(ops::adam_update(backend::Reference{}, AdamUpdate<float>{}, w.view(), short_g.cview(), w.view(),
                                         w.view()),
                        Catch::Contains("ops::adam_update: g has 3 entries but w's length is 4"));
}

TEST_CASE("Adam stepped on a CPU backend matches the host step", "[optim][backend]") {
    TwoTensors a, b;
    optim::Adam<double>::Config cfg;
    cfg.weight_decay = 0.05;
    optim::Adam<double> on_host(cfg, a.list), on_cpu(cfg, b.list);
    ThreadPool pool(2);
    for (int s = 1; s <= 3; ++s) {
        a.set_grads(s);
        b.set_grads(s);
        on_host.step(a.list, 0.01);
        on_cpu.step(backend::Cpu<isa::Dispatch>{&pool}, b.list, 0.01);
    }
    for (index_t i = 0; i < 3; ++i) REQUIRE(a.w(i) == b.w(i));
    for (index_t i = 0; i < 2; ++i) REQUIRE(a.b(i) == b.b(i));
}

TEST_CASE("gradient clipping, finiteness, schedules", "[optim]") {
    TwoTensors t;
    for (index_t i = 0; i < 3; ++i) t.gw(i) = 3.0;
    for (index_t i = 0; i < 2; ++i) t.gb(i) = 4.0;
    const double norm = optim::clip_grad_norm(t.list, 1.0);
    CHECK(norm == Approx(std::sqrt(27.0 + 32.0)));
    CHECK(optim::global_grad_norm(t.list) == Approx(1.0).epsilon(1e-5));
    CHECK(optim::clip_grad_norm(t.list, 5.0) == Approx(1.0).epsilon(1e-5));  // below: unchanged
    t.gb(1) = std::nan("");
    REQUIRE_THROWS_WITH(optim::check_finite_grads(t.list, 7), Catch::Contains("step 7: the gradient of 'b'"));

    optim::LearningRateSchedule s{1e-4, 100, 1100, optim::LearningRateSchedule::Decay::linear};
    CHECK(s.at(0) == Approx(1e-6));
    CHECK(s.at(99) == Approx(1e-4));
    CHECK(s.at(600) == Approx(0.5e-4));
    CHECK(s.at(5000) == 0.0);
    optim::LearningRateSchedule c{1.0, 0, 10, optim::LearningRateSchedule::Decay::cosine};
    CHECK(c.at(5) == Approx(0.5));
    REQUIRE_THROWS_AS((optim::LearningRateSchedule{1.0, 10, 5, optim::LearningRateSchedule::Decay::linear}.at(20)),
                      ValueError);
}
