#pragma once
// CpuKernelTable<T>: the xsimd kernels of one ISA as a table of function
// pointers -- the only one: the retrieval kernels (float only) are a section
// of the float table. make_kernel_table<Arch, T>() builds it for any xsimd
// arch the current translation unit is compiled for; the per-ISA translation
// units of runtime dispatch each build one (dispatch_instantiate.hpp) and
// dispatch_table<T>(level) picks one at run time.
//
// This header and kernels/ include nothing but xsimd and recblocks/core/types.hpp:
// they are compiled with ISA flags in the dispatch translation units, and any
// non-template inline function they pulled in could end up as the copy the
// linker keeps for the whole program.
#include <cstdint>

#include "recblocks/backend/cpu/kernels/activation.hpp"
#include "recblocks/backend/cpu/kernels/blas1.hpp"
#include "recblocks/backend/cpu/kernels/dropout.hpp"
#include "recblocks/backend/cpu/kernels/embedding.hpp"
#include "recblocks/backend/cpu/kernels/gathered_dot.hpp"
#include "recblocks/backend/cpu/kernels/layer_norm.hpp"
#include "recblocks/backend/cpu/kernels/nearest_centroid.hpp"
#include "recblocks/backend/cpu/kernels/prefix_attention.hpp"
#include "recblocks/backend/cpu/kernels/retrieval.hpp"
#include "recblocks/backend/cpu/kernels/softmax.hpp"
#include "recblocks/backend/cpu/kernels/top_k.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

/// The section a table of another element type than float has in place of
/// the retrieval kernels (which score float queries only).
struct NoRetrievalKernels {};

template <class T>
using RetrievalSection = std::conditional_t<std::is_same_v<T, float>, RetrievalKernelTable, NoRetrievalKernels>;

template <class T>
struct CpuKernelTable {
    const char* arch_name;
    index_t simd_width;  // elements of T per register
    T (*dot)(const T*, const T*, index_t);
    void (*axpy)(index_t, T, const T*, T*);
    void (*dot_rows)(const T*, index_t, index_t, index_t, const T*, T, T, T*);
    T (*sum)(const T*, index_t, index_t, index_t);
    T (*max_value)(const T*, index_t, index_t, index_t);
    void (*softmax_rows)(const T*, index_t, const std::uint8_t*, index_t, T*, index_t, index_t, index_t);
    void (*softmax_rows_backward)(const T*, index_t, const T*, index_t, T*, index_t, index_t, index_t);
    double (*softmax_xent_rows)(T*, index_t, const T*, const row_id_t*, T, index_t, index_t);
    void (*layer_norm_forward)(const T*, index_t, const T*, const T*, T, T*, index_t, T*, T*, index_t, index_t);
    void (*layer_norm_backward)(const T*, index_t, const T*, const T*, const T*, const T*, index_t, T*, index_t, T*,
                                T*, index_t, index_t);
    void (*activation_forward)(std::uint8_t, const T*, index_t, T*, index_t, index_t, index_t);
    void (*activation_backward)(std::uint8_t, const T*, index_t, const T*, index_t, T*, index_t, index_t, index_t);
    void (*gather_rows)(const T*, index_t, const row_id_t*, index_t, T*, index_t, index_t);
    void (*scatter_add_rows)(const T*, index_t, const row_id_t*, index_t, T*, index_t, index_t, row_id_t, row_id_t);
    bool (*top_k)(const T*, index_t, index_t, row_id_t, T*, row_id_t*);
    void (*dropout)(const T*, T*, index_t, index_t, std::uint32_t, std::uint32_t, std::uint64_t, std::uint32_t, T);
    void (*prefix_attention)(const T*, index_t, const T*, index_t, const T*, index_t, index_t, index_t, index_t,
                             const index_t*, const index_t*, const std::uint8_t*, T, T*, index_t, T*, index_t);
    void (*prefix_attention_backward)(const T*, index_t, const T*, index_t, const T*, index_t, const T*, index_t,
                                      const T*, index_t, const T*, index_t, index_t, index_t, index_t, const index_t*,
                                      T, T, T*, index_t, T*, index_t, T*, index_t);
    void (*gathered_dot)(const T*, index_t, const row_id_t*, index_t, const T*, index_t, T, T*);
    void (*squared_distances)(const T*, index_t, index_t, index_t, const T*, T*);
    void (*shifted_argmin_rows)(T*, index_t, index_t, const T*, index_t, index_t*, T*);
    index_t (*offer_smallest)(T*, const T*, index_t, T, index_t, T*, index_t*, index_t, index_t);
    /// Eigen's GEMM built for this ISA (runtime-dispatch tables only; nullptr
    /// means "use the GEMM of the calling translation unit").
    void (*gemm)(bool, bool, T, const T*, index_t, index_t, index_t, const T*, index_t, index_t, index_t, T, T*,
                 index_t, index_t, index_t) = nullptr;
    /// Panel scans and selection for retrieval (float tables only).
    [[no_unique_address]] RetrievalSection<T> retrieval{};
};

template <class Arch, class T>
constexpr RetrievalSection<T> make_retrieval_section() {
    if constexpr (std::is_same_v<T, float>) return make_retrieval_kernel_table<Arch>();
    else return {};
}

template <class Arch, class T>
constexpr CpuKernelTable<T> make_kernel_table() {
    return {Arch::name(),
            static_cast<index_t>(xsimd::batch<T, Arch>::size),
            &Blas1Kernels<Arch, T>::dot,
            &Blas1Kernels<Arch, T>::axpy,
            &Blas1Kernels<Arch, T>::dot_rows,
            &Blas1Kernels<Arch, T>::sum,
            &Blas1Kernels<Arch, T>::max_value,
            &SoftmaxKernels<Arch, T>::softmax_rows,
            &SoftmaxKernels<Arch, T>::softmax_rows_backward,
            &SoftmaxKernels<Arch, T>::softmax_xent_rows,
            &LayerNormKernels<Arch, T>::forward,
            &LayerNormKernels<Arch, T>::backward,
            &ActivationKernels<Arch, T>::forward,
            &ActivationKernels<Arch, T>::backward,
            &EmbeddingKernels<Arch, T>::gather_rows,
            &EmbeddingKernels<Arch, T>::scatter_add_rows,
            &TopKKernels<Arch, T>::top_k,
            &DropoutKernels<Arch, T>::apply,
            &PrefixAttentionKernels<Arch, T>::forward,
            &PrefixAttentionKernels<Arch, T>::backward,
            &GatheredDotKernels<Arch, T>::gathered_dot,
            &NearestCentroidKernels<Arch, T>::squared_distances,
            &NearestCentroidKernels<Arch, T>::shifted_argmin_rows,
            &NearestCentroidKernels<Arch, T>::offer_smallest,
            nullptr,
            make_retrieval_section<Arch, T>()};
}

/// Kernel tables of the runtime-dispatch translation units; defined by
/// RECBLOCKS_DEFINE_CPU_KERNEL_TABLES. Level: 0 sse2, 1 avx2, 2 avx512.
template <int Level, class T>
const CpuKernelTable<T>& isa_kernel_table();

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
