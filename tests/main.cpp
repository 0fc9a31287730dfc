// The one Catch2 (v2) main of recblocks_tests and recblocks_cuda_tests,
// compiled once as an OBJECT library. Prints the ISA the CPU kernels use and
// honours RECBLOCKS_FORCE_ISA: a level this CPU lacks exits 77 (CTest: skipped).
//
// A test binary may define `extern "C" int recblocks_test_precheck()` (e.g.
// the CUDA tests: return 77 when there is no GPU); its non-zero result is the
// exit status, before any test runs.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "recblocks/backend/cpu/cpu_features.hpp"

#if defined(__GNUC__) || defined(__clang__)
extern "C" int recblocks_test_precheck() __attribute__((weak));
#else
static int (*const recblocks_test_precheck)() = nullptr;
#endif

int main(int argc, char* argv[]) {
    if (recblocks_test_precheck != nullptr) {
        if (const int rc = recblocks_test_precheck(); rc != 0) return rc;
    }
    try {
        const auto best = recblocks::detected_isa();
        const char* forced = std::getenv("RECBLOCKS_FORCE_ISA");
        if (forced != nullptr && *forced != '\0' &&
            static_cast<int>(recblocks::parse_isa(forced)) > static_cast<int>(best)) {
            std::printf("recblocks tests: RECBLOCKS_FORCE_ISA=%s but this CPU supports at most %s: skipped\n", forced,
                        recblocks::isa_name(best).data());
            return 77;
        }
        std::printf("recblocks tests: CPU kernels use %s (CPU supports %s)\n",
                    recblocks::isa_name(recblocks::active_isa()).data(), recblocks::isa_name(best).data());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "recblocks tests: %s\n", e.what());
        return 2;
    }
    // Catch returns the number of failed assertions (capped at 255): map it to
    // 0/1 so that 77 failures are never mistaken for "skipped".
    return Catch::Session().run(argc, argv) == 0 ? 0 : 1;
}
