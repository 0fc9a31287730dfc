// Adam/AdamW against an independent scalar transcription of torch.optim's
// update; weight-decay kinds; gradient clipping; NaN detection; schedules.
#include <catch2/catch.hpp>

#include <cmath>

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
