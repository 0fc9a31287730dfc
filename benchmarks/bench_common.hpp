#pragma once
// Shared by the benchmark files: the backend under test, the 1- and 2-thread
// pools (defined in bench_limits.cpp) and a seeded uniform fill.
#include <benchmark/benchmark.h>

#include <random>

#include "recblocks/backend/cpu/primitives.hpp"

namespace rb = recblocks;

/// A process-wide pool of `threads` threads (1 or 2).
rb::ThreadPool& bench_pool(int threads);

namespace bench {

using Be = rb::backend::Cpu<rb::isa::Dispatch>;

/// Fills any float range with uniform values in [lo, hi) from `seed`.
template <class Range>
void fill_uniform(Range& t, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    for (float& v : t) v = u(gen);
}

}  // namespace bench
