// A minimal recblocks user: builds a Tensor and runs ops::softmax_rows on
// every backend this build offers, checking the result against plain double
// arithmetic. Exit status 0 on correct output.
#include <recblocks/recblocks.hpp>

#include <cmath>
#include <cstdio>

namespace rb = recblocks;

template <class B>
concept HasPrimitives = requires { sizeof(rb::Primitives<B>); };

template <class B>
int check_softmax(const char* name) {
    static_assert(HasPrimitives<B>, "the umbrella header must provide this backend's primitives");
    {
        constexpr rb::index_t rows = 3, cols = 9;  // 9: a SIMD tail for every ISA
        rb::Matrix<float> x(rb::Shape<2>{{rows, cols}});
        rb::Matrix<float> y(rb::Shape<2>{{rows, cols}});
        for (rb::index_t r = 0; r < rows; ++r)
            for (rb::index_t c = 0; c < cols; ++c) x(r, c) = 0.25f * static_cast<float>(c) - 0.5f * static_cast<float>(r);
        rb::ops::softmax_rows<B, float>(B{}, x.cview(), y.view());
        double worst = 0;
        for (rb::index_t r = 0; r < rows; ++r) {
            double z = 0;
            for (rb::index_t c = 0; c < cols; ++c) z += std::exp(static_cast<double>(x(r, c)));
            for (rb::index_t c = 0; c < cols; ++c)
                worst = std::fmax(worst, std::fabs(y(r, c) - std::exp(static_cast<double>(x(r, c))) / z));
        }
        std::printf("%-22s softmax_rows worst |error| = %.3g\n", name, worst);
        return worst <= 1e-6 ? 0 : 1;
    }
}

int main() {
    int failures = 0;
    try {
        std::printf("recblocks %d.%d.%d, CPU supports %s\n", RECBLOCKS_VERSION_MAJOR, RECBLOCKS_VERSION_MINOR,
                    RECBLOCKS_VERSION_PATCH, rb::isa_name(rb::detected_isa()).data());
        failures += check_softmax<rb::backend::Reference>("backend::Reference");
        failures += check_softmax<rb::backend::Cpu<>>("backend::Cpu<>");
#if defined(RECBLOCKS_HAS_RUNTIME_DISPATCH)
        failures += check_softmax<rb::backend::Cpu<rb::isa::Dispatch>>("backend::Cpu<Dispatch>");
#endif
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }
    return failures == 0 ? 0 : 1;
}
