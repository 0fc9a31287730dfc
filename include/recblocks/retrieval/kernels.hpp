#pragma once
// The retrieval kernel table (backend/cpu/kernels/retrieval.hpp) a CPU
// backend uses: the compile-time arch for isa::Auto, the runtime-dispatch
// level for isa::Dispatch (RECBLOCKS_FORCE_ISA honoured) and isa::Fixed.
#include "recblocks/backend/cpu/cpu_features.hpp"
#include "recblocks/backend/cpu/kernels/retrieval.hpp"
#include "recblocks/backend/tags.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace isa {
template <IsaLevel L>
struct Fixed;
}
namespace retrieval::detail {

inline const cpu::RetrievalKernelTable& dispatch_retrieval_kernels(IsaLevel level) {
    switch (level) {
        case IsaLevel::sse2: return cpu::isa_retrieval_kernel_table<0>();
        case IsaLevel::avx2: return cpu::isa_retrieval_kernel_table<1>();
        case IsaLevel::avx512: return cpu::isa_retrieval_kernel_table<2>();
    }
    throw BackendError("retrieval: unknown ISA level");
}

template <class Isa>
struct RetrievalKernelsFor;

template <>
struct RetrievalKernelsFor<isa::Auto> {
    static const cpu::RetrievalKernelTable& get() {
        static constexpr cpu::RetrievalKernelTable table = cpu::make_retrieval_kernel_table<xsimd::default_arch>();
        return table;
    }
};

template <>
struct RetrievalKernelsFor<isa::Dispatch> {
    static const cpu::RetrievalKernelTable& get() {
        static const cpu::RetrievalKernelTable& table = dispatch_retrieval_kernels(active_isa());
        return table;
    }
};

template <IsaLevel L>
struct RetrievalKernelsFor<isa::Fixed<L>> {
    static const cpu::RetrievalKernelTable& get() {
        if (static_cast<int>(L) > static_cast<int>(detected_isa()))
            throw BackendError(::recblocks::detail::concat("backend::Cpu<", isa_name(L), ">: this CPU supports at most ",
                                              isa_name(detected_isa())));
        return dispatch_retrieval_kernels(L);
    }
};

template <class Isa>
const cpu::RetrievalKernelTable& retrieval_kernels(const backend::Cpu<Isa>&) {
    return RetrievalKernelsFor<Isa>::get();
}

}  // namespace retrieval::detail
RECBLOCKS_NAMESPACE_END
