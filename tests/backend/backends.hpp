#pragma once
// The CPU backends under test: compile-time ISA, runtime dispatch (honouring
// RECBLOCKS_FORCE_ISA), and every fixed ISA level this CPU supports — each on
// a 1-thread and a 3-thread pool, so thread-count independence is checked too.
#include <string>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"

namespace rbtest {

using namespace recblocks;

inline ThreadPool& pool1() {
    static ThreadPool p(1);
    return p;
}
inline ThreadPool& pool3() {
    static ThreadPool p(3);
    return p;
}

/// Calls f(backend, name) for each CPU backend configuration.
template <class F>
void for_each_cpu_backend(F&& f) {
    for (ThreadPool* pool : {&pool1(), &pool3()}) {
        const std::string t = " threads=" + std::to_string(pool->size());
        f(backend::Cpu<isa::Auto>{pool}, "cpu<auto>" + t);
        f(backend::Cpu<isa::Dispatch>{pool}, std::string("cpu<dispatch:") + std::string(isa_name(active_isa())) + ">" + t);
        for (IsaLevel l : supported_isas()) {
            if (l == IsaLevel::sse2) f(backend::Cpu<isa::Sse2>{pool}, "cpu<sse2>" + t);
            if (l == IsaLevel::avx2) f(backend::Cpu<isa::Avx2>{pool}, "cpu<avx2>" + t);
            if (l == IsaLevel::avx512) f(backend::Cpu<isa::Avx512>{pool}, "cpu<avx512>" + t);
        }
    }
}

}  // namespace rbtest
