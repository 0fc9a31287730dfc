#pragma once
// Primitives<backend::Cpu<Isa>>: the CPU backend. GEMM goes to Eigen (which
// vectorises for the ISA the compiler targets); every other primitive runs an
// xsimd kernel from a CpuKernelTable chosen by Isa:
//   isa::Auto      the arch this translation unit is compiled for
//   isa::Dispatch  the best level of this CPU, or RECBLOCKS_FORCE_ISA
//   isa::Sse2 / isa::Avx2 / isa::Avx512   that runtime-dispatch level (tests)
// Work is split over the backend's ThreadPool in chunks whose boundaries do
// not depend on the thread count, and partial results are combined in chunk
// order, so every primitive returns the same bits on 1 or N threads.
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <atomic>
#include <vector>

#include "recblocks/backend/cpu/cpu_features.hpp"
#include "recblocks/backend/cpu/kernel_table.hpp"
#include "recblocks/backend/host_attention.hpp"
#include "recblocks/backend/cpu/retrieval_search.hpp"
#include "recblocks/backend/primitives.hpp"
#include "recblocks/core/thread_scratch.hpp"

RECBLOCKS_NAMESPACE_BEGIN

namespace isa {
/// A fixed runtime-dispatch level; throws BackendError on a CPU without it.
template <IsaLevel L>
struct Fixed {
    static constexpr IsaLevel level = L;
};
using Sse2 = Fixed<IsaLevel::sse2>;
using Avx2 = Fixed<IsaLevel::avx2>;
using Avx512 = Fixed<IsaLevel::avx512>;
}  // namespace isa

namespace cpu {

/// The kernel table of a runtime-dispatch level. Its definitions live in the
/// three per-ISA units (src/dispatch/), which a program links through
/// recblocks_enable_runtime_dispatch() or by hand; the CMake function defines
/// RECBLOCKS_HAS_RUNTIME_DISPATCH, so a program without them fails here, at
/// compile time, instead of with undefined isa_kernel_table symbols at link time.
template <class T>
const CpuKernelTable<T>& dispatch_table(IsaLevel level) {
#ifndef RECBLOCKS_HAS_RUNTIME_DISPATCH
    static_assert(sizeof(T) == 0,
                  "recblocks: backend::Cpu<isa::Dispatch> (and isa::Sse2/Avx2/Avx512) need the per-ISA kernel units "
                  "linked into the program. With CMake: recblocks_enable_runtime_dispatch(<your target>). With a "
                  "plain compiler line: add -DRECBLOCKS_HAS_RUNTIME_DISPATCH and link "
                  "src/dispatch/recblocks_dispatch_{sse2,avx2,avx512}.cpp, each compiled with its ISA flags "
                  "(docs/backends.md, 'Runtime dispatch without CMake'). Or use backend::Cpu<isa::Auto>: "
                  "header-only, kernels for the ISA your compiler flags target.");
#endif
    switch (level) {
        case IsaLevel::sse2: return isa_kernel_table<0, T>();
        case IsaLevel::avx2: return isa_kernel_table<1, T>();
        case IsaLevel::avx512: return isa_kernel_table<2, T>();
    }
    throw BackendError("cpu::dispatch_table: unknown ISA level");
}

template <class Isa, class T>
struct KernelsFor;

template <class T>
struct KernelsFor<isa::Auto, T> {
    static const CpuKernelTable<T>& get() {
        static constexpr CpuKernelTable<T> table = make_kernel_table<xsimd::default_arch, T>();
        return table;
    }
};

template <class T>
struct KernelsFor<isa::Dispatch, T> {
    static const CpuKernelTable<T>& get() {
        static const CpuKernelTable<T>& table = dispatch_table<T>(active_isa());
        return table;
    }
};

template <IsaLevel L, class T>
struct KernelsFor<isa::Fixed<L>, T> {
    static const CpuKernelTable<T>& get() {
        if (static_cast<int>(L) > static_cast<int>(detected_isa()))
            throw BackendError(detail::concat("backend::Cpu<", isa_name(L), ">: this CPU supports at most ",
                                              isa_name(detected_isa())));
        return dispatch_table<T>(L);
    }
};

/// Rows per chunk so that a chunk holds about `target` elements.
inline index_t rows_per_chunk(index_t cols, index_t target = 16384) {
    return std::max<index_t>(1, target / std::max<index_t>(1, cols));
}

using ::recblocks::thread_scratch;

/// Zeroed per-chunk partial sums: `chunks` blocks of `width` elements, each
/// starting on its own cache line, so threads working on neighbouring chunks
/// never write to the same line (false sharing made 2 threads slower than 1).
template <class T>
struct ChunkPartials {
    T* base;
    index_t stride;
    ChunkPartials(index_t chunks, index_t width) {
        constexpr index_t line = 64 / sizeof(T);
        stride = (width + line - 1) / line * line;
        auto& buf = thread_scratch<T>(static_cast<std::size_t>(chunks * stride + line));
        const auto addr = reinterpret_cast<std::uintptr_t>(buf.data());
        base = buf.data() + ((64 - addr % 64) % 64) / sizeof(T);
        std::fill_n(base, chunks * stride, T(0));
    }
    [[nodiscard]] T* operator[](index_t chunk) const { return base + chunk * stride; }
};

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using MatrixMap = Eigen::Map<RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// Single-threaded c = alpha * op(a) * op(b) + beta * c through Eigen.
template <class T>
void eigen_gemm(Trans ta, Trans tb, T alpha, MatrixView<const T> a, MatrixView<const T> b, T beta, MatrixView<T> c) {
    const ConstMatrixMap<T> A(a.data(), a.rows(), a.cols(), Eigen::OuterStride<>(a.ld()));
    const ConstMatrixMap<T> Bm(b.data(), b.rows(), b.cols(), Eigen::OuterStride<>(b.ld()));
    MatrixMap<T> C(c.data(), c.rows(), c.cols(), Eigen::OuterStride<>(c.ld()));
    auto product = [&](const auto& opa, const auto& opb) {
        if (beta == T(0)) {
            C.noalias() = alpha * opa * opb;
        } else {
            if (beta != T(1)) C *= beta;
            C.noalias() += alpha * opa * opb;
        }
    };
    if (ta == Trans::no && tb == Trans::no) product(A, Bm);
    else if (ta == Trans::no) product(A, Bm.transpose());
    else if (tb == Trans::no) product(A.transpose(), Bm);
    else product(A.transpose(), Bm.transpose());
}

}  // namespace cpu

template <class Isa>
struct Primitives<backend::Cpu<Isa>> : detail::HostAttentionPrimitives<backend::Cpu<Isa>> {
    using B = backend::Cpu<Isa>;
    template <class T>
    static const cpu::CpuKernelTable<T>& kernels() {
        return cpu::KernelsFor<Isa, T>::get();
    }

    /// Work per thread below which a product runs on one thread: waking a
    /// pool thread costs more than ~4 MFLOP (a few µs) saves. At batch 1,
    /// SASRec's GEMMs (<= 3 MFLOP) then stay on the calling thread (2 threads:
    /// 3,900 -> 4,500 sequences/s).
    static constexpr double kSplitFlops = 4e5;

    template <class T>
    static void gemm(const B& be, Trans ta, Trans tb, T alpha, MatrixView<const T> a, MatrixView<const T> b, T beta,
                     MatrixView<T> c) {
        const index_t m = c.rows(), n = c.cols();
        const index_t k = ta == Trans::yes ? a.rows() : a.cols();
        if (row_dots_apply(ta, tb, alpha, c, k)) {
            // Each output is one dot product: split the table's rows (any split
            // gives the same bits) into chunks of >= kSplitFlops.
            const double flops = 2.0 * double(m) * double(n) * double(k);
            const index_t parts = std::min<index_t>(be.threads().size(), std::max<index_t>(1, index_t(flops / kSplitFlops)));
            const index_t grain = std::max<index_t>(64, ((n + parts - 1) / parts + 63) / 64 * 64);
            parallel_for(be.threads(), 0, n, grain, [&](index_t j0, index_t j1) {
                row_dots<T>(alpha, a, b.slice_rows(j0, j1), beta, matrix_view(c.data() + j0, m, j1 - j0, c.ld()));
            });
            return;
        }
        // Split the rows of c (and of op(a)); keep each chunk large enough
        // (kSplitFlops) that the split costs nothing, and a multiple of 16 rows.
        const double flops = 2.0 * double(m) * double(n) * double(k);
        const index_t threads = be.threads().size();
        const index_t want = std::min<index_t>(threads, std::max<index_t>(1, index_t(flops / kSplitFlops)));
        index_t rows = (m + want - 1) / want;
        rows = std::min(m, (rows + 15) / 16 * 16);
        parallel_for(be.threads(), 0, m, rows, [&](index_t r0, index_t r1) {
            const MatrixView<const T> a_part =
                ta == Trans::no ? a.slice_rows(r0, r1) : matrix_view(a.data() + r0, a.rows(), r1 - r0, a.ld());
            gemm_single<T>(ta, tb, alpha, a_part, b, beta, c.slice_rows(r0, r1));
        });
    }

    /// y = x wᵀ + bias in blocks of rows: each task writes the bias into its block
    /// (a few hundred KB) and multiplies while the block is in cache, instead of
    /// writing all of y (MBs at batch 128) once for the bias and reading it back
    /// for the product. Blocks depend on the shape only, not on the thread count.
    template <class T>
    static void linear(const B& be, MatrixView<const T> x, MatrixView<const T> w, VectorView<const T> bias,
                       MatrixView<T> y) {
        const index_t m = y.rows(), n = y.cols(), k = x.cols();
        if (m <= 2 || k == 0) {  // one or two rows: gemm's row dot products, split over the pool
            broadcast_rows<T>(be, bias, T(0), y);
            if (k > 0) gemm<T>(be, Trans::no, Trans::yes, T(1), x, w, T(1), y);
            return;
        }
        const double flops = 2.0 * double(m) * double(n) * double(k);
        // ~64K outputs per block (256 KB of f32), whole multiples of 16 rows; one block when small.
        index_t rows = std::max<index_t>(16, (index_t{1} << 16) / std::max<index_t>(n, 1) / 16 * 16);
        if (flops < 2 * kSplitFlops) rows = m;
        else rows = std::min(rows, std::max<index_t>(16, (m / 2 + 15) / 16 * 16));  // >= 2 blocks to share
        const auto row_bytes = static_cast<std::size_t>(n) * sizeof(T);
        parallel_for(be.threads(), 0, m, rows, [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) std::memcpy(static_cast<void*>(y.row(r)), bias.data(), row_bytes);
            gemm_single<T>(Trans::no, Trans::yes, T(1), x.slice_rows(r0, r1), w, T(1), y.slice_rows(r0, r1));
        });
    }

    /// One or two vectors against every row of a table (scoring a catalogue):
    /// row dot products, no packing. Eigen's GEMV ran at half this speed on
    /// D = 50 rows.
    template <class T>
    static bool row_dots_apply(Trans ta, Trans tb, T alpha, MatrixView<T> c, index_t k) {
        return ta == Trans::no && tb == Trans::yes && c.rows() <= 2 && k > 0 && alpha != T(0);
    }
    template <class T>
    static void row_dots(T alpha, MatrixView<const T> a, MatrixView<const T> b, T beta, MatrixView<T> c) {
        for (index_t i = 0; i < c.rows(); ++i)
            kernels<T>().dot_rows(b.data(), b.ld(), b.rows(), b.cols(), a.row(i), alpha, beta, c.row(i));
    }

    /// One single-threaded GEMM: the runtime-dispatch table carries Eigen's
    /// GEMM built for the CPU's ISA; otherwise the one this translation unit
    /// was compiled with.
    template <class T>
    static void gemm_single(Trans ta, Trans tb, T alpha, MatrixView<const T> a, MatrixView<const T> b, T beta,
                            MatrixView<T> c) {
        if (row_dots_apply(ta, tb, alpha, c, a.cols())) {
            row_dots<T>(alpha, a, b, beta, c);
            return;
        }
        if (const auto kernel = kernels<T>().gemm)
            kernel(ta == Trans::yes, tb == Trans::yes, alpha, a.data(), a.rows(), a.cols(), a.ld(), b.data(), b.rows(),
                   b.cols(), b.ld(), beta, c.data(), c.rows(), c.cols(), c.ld());
        else
            cpu::eigen_gemm<T>(ta, tb, alpha, a, b, beta, c);
    }

    template <class T>
    static void gemm_batched(const B& be, Trans ta, Trans tb, T alpha, TensorView<const T, 3> a,
                             TensorView<const T, 3> b, T beta, TensorView<T, 3> c) {
        const index_t batch = c.extent(0);
        if (batch >= be.threads().size()) {
            parallel_for(be.threads(), 0, batch, 1, [&](index_t i0, index_t i1) {
                for (index_t i = i0; i < i1; ++i) gemm_single<T>(ta, tb, alpha, a[i], b[i], beta, c[i]);
            });
        } else {
            for (index_t i = 0; i < batch; ++i) gemm<T>(be, ta, tb, alpha, a[i], b[i], beta, c[i]);
        }
    }

    template <class T>
    static T dot(const B& be, VectorView<const T> x, VectorView<const T> y) {
        const auto& kt = kernels<T>();
        return static_cast<T>(parallel_reduce(
            be.threads(), 0, x.size(), kReduceGrain, 0.0,
            [&](index_t i0, index_t i1) { return double(kt.dot(x.data() + i0, y.data() + i0, i1 - i0)); },
            [](double s, double p) { return s + p; }));
    }

    template <class T>
    static void axpy(const B& be, T alpha, VectorView<const T> x, VectorView<T> y) {
        const auto& kt = kernels<T>();
        parallel_for(be.threads(), 0, x.size(), kReduceGrain,
                     [&](index_t i0, index_t i1) { kt.axpy(i1 - i0, alpha, x.data() + i0, y.data() + i0); });
    }

    /// The Reference's arithmetic in chunks over the pool (element-wise: the
    /// same bits on any thread count).
    template <class T>
    static void adam_update(const B& be, const AdamUpdate<T>& u, VectorView<T> wv, VectorView<const T> gv,
                            VectorView<T> mv, VectorView<T> vv) {
        T* w = wv.data();
        const T* g = gv.data();
        T* m = mv.data();
        T* v = vv.data();
        parallel_for(be.threads(), 0, wv.size(), kReduceGrain, [&](index_t j0, index_t j1) {
            for (index_t j = j0; j < j1; ++j) {
                detail::adam_update_element(u, w[j], g[j], m[j], v[j]);
            }
        });
    }

    /// Row by row with the dispatched axpy: out += the other input when out is
    /// one of them, else a row copy (still in L1) and then the axpy.
    template <class T>
    static void add(const B& be, MatrixView<const T> a, MatrixView<const T> b, MatrixView<T> out) {
        const auto& kt = kernels<T>();
        const bool out_is_b = b.data() == out.data();
        parallel_for(be.threads(), 0, out.rows(), cpu::rows_per_chunk(out.cols()), [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) {
                T* o = out.row(r);
                const T* other = out_is_b ? a.row(r) : b.row(r);
                if (!out_is_b && a.data() != out.data())
                    std::memcpy(static_cast<void*>(o), a.row(r), static_cast<std::size_t>(out.cols()) * sizeof(T));
                kt.axpy(out.cols(), T(1), other, o);
            }
        });
    }

    template <class T>
    static void copy(const B& be, MatrixView<const T> src, MatrixView<T> dst) {
        const auto row_bytes = static_cast<std::size_t>(dst.cols()) * sizeof(T);
        parallel_for(be.threads(), 0, dst.rows(), cpu::rows_per_chunk(dst.cols(), 1 << 16), [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) std::memcpy(static_cast<void*>(dst.row(r)), src.row(r), row_bytes);
        });
    }

    template <class T>
    static void broadcast_rows(const B& be, VectorView<const T> row, T beta, MatrixView<T> out) {
        const auto& kt = kernels<T>();
        const auto row_bytes = static_cast<std::size_t>(out.cols()) * sizeof(T);
        // Streaming work: chunks of 64K elements, so small calls run on the caller without waking the pool.
        parallel_for(be.threads(), 0, out.rows(), cpu::rows_per_chunk(out.cols(), 1 << 16), [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) {
                T* o = out.row(r);
                if (beta == T(0)) {
                    std::memcpy(static_cast<void*>(o), row.data(), row_bytes);
                } else {
                    if (beta != T(1))
                        for (index_t c = 0; c < out.cols(); ++c) o[c] *= beta;
                    kt.axpy(out.cols(), T(1), row.data(), o);
                }
            }
        });
    }

    template <class T>
    static void scale_rows(const B& be, MatrixView<const T> x, VectorView<const T> s, T alpha, MatrixView<T> y) {
        parallel_for(be.threads(), 0, y.rows(), cpu::rows_per_chunk(y.cols(), 1 << 16), [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) {
                const T f = s.data() ? alpha * s(r) : alpha;
                const T* xr = x.row(r);
                T* yr = y.row(r);
                for (index_t c = 0; c < y.cols(); ++c) yr[c] = f * xr[c];
            }
        });
    }

    template <class T>
    static void gate_by_nonzero(const B& be, VectorView<const T> ref, VectorView<T> g, T scale) {
        const T* h = ref.data();
        T* d = g.data();
        parallel_for(be.threads(), 0, g.size(), 1 << 16, [&](index_t i0, index_t i1) {
            for (index_t i = i0; i < i1; ++i) d[i] = h[i] != T(0) ? d[i] * scale : T(0);
        });
    }

    template <class T>
    static void row_dots(const B& be, MatrixView<const T> a, MatrixView<const T> b, VectorView<T> out) {
        const auto& kt = kernels<T>();
        parallel_for(be.threads(), 0, a.rows(), cpu::rows_per_chunk(a.cols()), [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) out(r) = kt.dot(a.row(r), b.row(r), a.cols());
        });
    }

    template <class T>
    static double logistic_loss(const B& be, VectorView<const T> s, VectorView<const T> sign, T weight, VectorView<T> g) {
        return parallel_reduce(
            be.threads(), 0, s.size(), 4096, 0.0,
            [&](index_t m0, index_t m1) {
                double part = 0;
                for (index_t m = m0; m < m1; ++m) {
                    const double z = double(sign(m)) * double(s(m));
                    part += detail::softplus(z);
                    g(m) = static_cast<T>(double(weight) * double(sign(m)) * detail::sigmoid(z));
                }
                return part;
            },
            [](double a, double b) { return a + b; });
    }

    /// Row chunks of about 16k logits over the pool; each chunk's loss sum is
    /// added in chunk order, so the bits do not depend on the thread count.
    template <class T>
    static double softmax_cross_entropy(const B& be, MatrixView<T> logits, VectorView<const T> bias,
                                        VectorView<const row_id_t> targets, T scale) {
        const auto& kt = kernels<T>();
        return parallel_reduce(
            be.threads(), 0, logits.rows(), cpu::rows_per_chunk(logits.cols()), 0.0,
            [&](index_t r0, index_t r1) {
                return kt.softmax_xent_rows(logits.row(r0), logits.ld(), bias.data(), targets.data() + r0, scale,
                                            r1 - r0, logits.cols());
            },
            [](double a, double b) { return a + b; });
    }

    template <class T>
    static void multiply(const B& be, MatrixView<const T> a, MatrixView<const T> b, MatrixView<T> out) {
        parallel_for(be.threads(), 0, out.rows(), cpu::rows_per_chunk(out.cols()), [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) {
                const T* x = a.row(r);
                const T* y = b.row(r);
                T* o = out.row(r);
                for (index_t c = 0; c < out.cols(); ++c) o[c] = x[c] * y[c];
            }
        });
    }

    template <class T>
    static double bce_with_logits(const B& be, VectorView<const T> z, VectorView<const T> y, T weight, VectorView<T> g) {
        return parallel_reduce(
            be.threads(), 0, z.size(), 4096, 0.0,
            [&](index_t m0, index_t m1) {
                double part = 0;
                for (index_t m = m0; m < m1; ++m) {
                    const double zm = z(m), ym = y(m);
                    part += std::max(zm, 0.0) - zm * ym + std::log1p(std::exp(-std::fabs(zm)));
                    g(m) = static_cast<T>(double(weight) * (detail::sigmoid(zm) - ym));
                }
                return part;
            },
            [](double a, double b) { return a + b; });
    }

    /// Segments split over the threads in contiguous ranges; each segment's
    /// scores and selection on one thread (the gather kernel, then top-k while
    /// the scores are still in L1/L2). A segment's result does not depend on the split.
    template <class T>
    static index_t search_segments(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids,
                                   VectorView<const index_t> offsets, MatrixView<const T> queries, T alpha, index_t k,
                                   VectorView<T> scores, MatrixView<T> top_values, MatrixView<row_id_t> top_positions,
                                   MatrixView<row_id_t> top_ids) {
        const auto& kt = kernels<T>();
        const index_t segments = offsets.size() - 1;
        const index_t parts = std::min<index_t>(be.threads().size(), segments);
        auto range = [&](index_t s0, index_t s1) {
            index_t first_nan = -1;
            for (index_t s = s0; s < s1; ++s) {
                const index_t b = offsets(s), n = offsets(s + 1) - b;
                kt.gathered_dot(table.data(), table.ld(), ids.data() + b, n, queries.row(s), table.cols(), alpha,
                                scores.data() + b);
                if (kt.top_k(scores.data() + b, n, k, 0, top_values.row(s), top_positions.row(s))) {
                    if (first_nan < 0) first_nan = s;
                    continue;
                }
                if (top_ids.data())
                    for (index_t j = 0; j < k; ++j) top_ids(s, j) = ids(b + top_positions(s, j));
            }
            return first_nan;
        };
        if (parts <= 1) return range(0, segments);
        auto& nan_of = cpu::thread_scratch<index_t, struct SearchSegmentsNan>(static_cast<std::size_t>(parts));
        be.threads().run(parts, [&](index_t p) {
            nan_of[static_cast<std::size_t>(p)] = range(segments * p / parts, segments * (p + 1) / parts);
        });
        for (index_t p = 0; p < parts; ++p)
            if (nan_of[static_cast<std::size_t>(p)] >= 0) return nan_of[static_cast<std::size_t>(p)];
        return -1;
    }

    template <class T>
    static void attend_rows(const B& be, MatrixView<const T> w, MatrixView<const T> rows, MatrixView<T> out) {
        const index_t k = w.cols(), d = rows.cols();
        parallel_for(be.threads(), 0, w.rows(), cpu::rows_per_chunk(k * d), [&](index_t s0, index_t s1) {
            for (index_t s = s0; s < s1; ++s) {
                T* o = out.row(s);
                std::fill(o, o + d, T(0));
                for (index_t j = 0; j < k; ++j) {
                    const T wj = w(s, j);
                    const T* v = rows.row(s * k + j);
                    for (index_t c = 0; c < d; ++c) o[c] += wj * v[c];
                }
            }
        });
    }

    template <class T>
    static void attend_rows_backward(const B& be, MatrixView<const T> w, MatrixView<const T> rows,
                                     MatrixView<const T> dout, MatrixView<T> dw, MatrixView<T> drows) {
        const index_t k = w.cols(), d = rows.cols();
        parallel_for(be.threads(), 0, w.rows(), cpu::rows_per_chunk(k * d), [&](index_t s0, index_t s1) {
            for (index_t s = s0; s < s1; ++s) {
                const T* g = dout.row(s);
                for (index_t j = 0; j < k; ++j) {
                    const T* v = rows.row(s * k + j);
                    if (dw.data()) {
                        T acc = 0;
                        for (index_t c = 0; c < d; ++c) acc += g[c] * v[c];
                        dw(s, j) = acc;
                    }
                    if (drows.data()) {
                        const T wj = w(s, j);
                        T* dv = drows.row(s * k + j);
                        for (index_t c = 0; c < d; ++c) dv[c] = wj * g[c];
                    }
                }
            }
        });
    }

    template <class T>
    static void softmax_rows(const B& be, MatrixView<const T> x, MatrixView<const std::uint8_t> mask, MatrixView<T> y) {
        const auto& kt = kernels<T>();
        parallel_for(be.threads(), 0, x.rows(), cpu::rows_per_chunk(x.cols()), [&](index_t r0, index_t r1) {
            const std::uint8_t* m = mask.data() ? mask.row(r0) : nullptr;
            kt.softmax_rows(x.row(r0), x.ld(), m, mask.data() ? mask.ld() : 0, y.row(r0), y.ld(), r1 - r0, x.cols());
        });
    }

    template <class T>
    static void softmax_rows_backward(const B& be, MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx) {
        const auto& kt = kernels<T>();
        parallel_for(be.threads(), 0, y.rows(), cpu::rows_per_chunk(y.cols()), [&](index_t r0, index_t r1) {
            kt.softmax_rows_backward(y.row(r0), y.ld(), dy.row(r0), dy.ld(), dx.row(r0), dx.ld(), r1 - r0, y.cols());
        });
    }

    template <class T>
    static void layer_norm_forward(const B& be, MatrixView<const T> x, VectorView<const T> gamma,
                                   VectorView<const T> beta, T eps, MatrixView<T> y, VectorView<T> mean,
                                   VectorView<T> rstd) {
        const auto& kt = kernels<T>();
        parallel_for(be.threads(), 0, x.rows(), cpu::rows_per_chunk(x.cols()), [&](index_t r0, index_t r1) {
            kt.layer_norm_forward(x.row(r0), x.ld(), gamma.data(), beta.data(), eps, y.row(r0), y.ld(),
                                  mean.data() ? mean.data() + r0 : nullptr, rstd.data() ? rstd.data() + r0 : nullptr,
                                  r1 - r0, x.cols());
        });
    }

    template <class T>
    static void layer_norm_backward(const B& be, MatrixView<const T> x, VectorView<const T> gamma,
                                    VectorView<const T> mean, VectorView<const T> rstd, MatrixView<const T> dy,
                                    MatrixView<T> dx, VectorView<T> dgamma, VectorView<T> dbeta) {
        const auto& kt = kernels<T>();
        const index_t d = x.cols();
        const index_t grain = cpu::rows_per_chunk(d);
        const index_t chunks = chunk_count(0, x.rows(), grain);
        // One (dgamma, dbeta) partial per chunk, summed in chunk order below.
        const cpu::ChunkPartials<T> partial(chunks, 2 * d);
        parallel_for(be.threads(), 0, x.rows(), grain, [&](index_t r0, index_t r1) {
            T* p = partial[r0 / grain];
            kt.layer_norm_backward(x.row(r0), x.ld(), gamma.data(), mean.data() + r0, rstd.data() + r0, dy.row(r0),
                                   dy.ld(), dx.row(r0), dx.ld(), p, p + d, r1 - r0, d);
        });
        for (index_t c = 0; c < chunks; ++c) {
            kt.axpy(d, T(1), partial[c], dgamma.data());
            kt.axpy(d, T(1), partial[c] + d, dbeta.data());
        }
    }

    template <class T>
    static void activation_forward(const B& be, Activation act, MatrixView<const T> x, MatrixView<T> y) {
        const auto& kt = kernels<T>();
        parallel_for(be.threads(), 0, x.rows(), cpu::rows_per_chunk(x.cols()), [&](index_t r0, index_t r1) {
            kt.activation_forward(static_cast<std::uint8_t>(act), x.row(r0), x.ld(), y.row(r0), y.ld(), r1 - r0,
                                  x.cols());
        });
    }

    template <class T>
    static void activation_backward(const B& be, Activation act, MatrixView<const T> x, MatrixView<const T> dy,
                                    MatrixView<T> dx) {
        const auto& kt = kernels<T>();
        parallel_for(be.threads(), 0, x.rows(), cpu::rows_per_chunk(x.cols()), [&](index_t r0, index_t r1) {
            kt.activation_backward(static_cast<std::uint8_t>(act), x.row(r0), x.ld(), dy.row(r0), dy.ld(), dx.row(r0),
                                   dx.ld(), r1 - r0, x.cols());
        });
    }

    /// One (sequence, head) on the calling thread: attention blocks run their
    /// sequences in parallel around it.
    template <class T>
    static void prefix_attention(const B&, MatrixView<const T> q, MatrixView<const T> k, MatrixView<const T> v,
                                 VectorView<const index_t> key_end, VectorView<const index_t> write_end,
                                 VectorView<const std::uint8_t> keep, T scale, MatrixView<T> p, MatrixView<T> ctx) {
        kernels<T>().prefix_attention(q.data(), q.ld(), k.data(), k.ld(), v.data(), v.ld(), q.rows(), k.rows(),
                                      q.cols(), key_end.data(), write_end.data(), keep.data(), scale, p.data(),
                                      p.data() ? p.ld() : 0, ctx.data(), ctx.data() ? ctx.ld() : 0);
    }

    template <class T>
    static void prefix_attention_backward(const B&, MatrixView<const T> q, MatrixView<const T> k,
                                          MatrixView<const T> v, MatrixView<const T> dctx, MatrixView<const T> p,
                                          MatrixView<const T> w, VectorView<const index_t> key_end, T drop_scale,
                                          T scale, MatrixView<T> dq, MatrixView<T> dk, MatrixView<T> dv) {
        kernels<T>().prefix_attention_backward(q.data(), q.ld(), k.data(), k.ld(), v.data(), v.ld(), dctx.data(),
                                               dctx.ld(), p.data(), p.ld(), w.data(), w.data() ? w.ld() : 0, q.rows(),
                                               k.rows(), q.cols(), key_end.data(), drop_scale, scale, dq.data(),
                                               dq.ld(), dk.data(), dk.ld(), dv.data(), dv.ld());
    }

    template <class T>
    static void dropout(const B& be, VectorView<const T> x, VectorView<T> y, index_t first, const DropoutMask& mask,
                        T scale) {
        const auto kernel = kernels<T>().dropout;
        // Chunks of 2^14 elements (multiples of the kernel's 64-element groups).
        parallel_for(be.threads(), 0, x.size(), 1 << 14, [&](index_t b, index_t e) {
            kernel(x.data() + b, y.data() + b, first + b, first + e, mask.key0, mask.key1, mask.stream, mask.threshold,
                   scale);
        });
    }

    /// On the calling thread: DARE runs one search per sample, the samples in parallel.
    template <class T>
    static void gathered_dot(const B&, MatrixView<const T> table, VectorView<const row_id_t> ids, VectorView<const T> x,
                             T alpha, VectorView<T> y) {
        kernels<T>().gathered_dot(table.data(), table.ld(), ids.data(), ids.size(), x.data(), table.cols(), alpha,
                                  y.data());
    }

    // Retrieval: the retrieval section of the float table, on the calling thread.
    template <class E>
    static void panel_scores(const B&, PanelView<E> items, VectorView<const float> x, VectorView<float> y) {
        kernels<float>().retrieval.template score_panels<E>()(items.data, items.rows, items.dim, x.data(),
                                                              items.scales, y.data());
    }

    template <class E>
    static index_t panel_scores_above(const B&, PanelView<E> items, VectorView<const float> x, float threshold,
                                      row_id_t first, VectorView<float> out_scores, VectorView<row_id_t> out_ids) {
        return kernels<float>().retrieval.template score_panels_above<E>()(
            items.data, items.rows, items.dim, x.data(), items.scales, threshold, first, out_scores.data(),
            out_ids.data());
    }

    template <class E>
    static void panel_scores_of_ids(const B&, PanelView<E> items, VectorView<const row_id_t> ids,
                                    VectorView<const float> x, VectorView<float> y) {
        kernels<float>().retrieval.template score_ids_panels<E>()(items.data, items.dim, ids.data(), ids.size(),
                                                                  x.data(), items.scales, y.data());
    }

    static void score_ids(const B&, MatrixView<const float> rows, VectorView<const row_id_t> ids,
                          VectorView<const float> x, VectorView<float> y) {
        kernels<float>().retrieval.score_ids_f32(rows.data(), rows.ld(), ids.data(), ids.size(), rows.cols(),
                                                 x.data(), nullptr, y.data());
    }

    static index_t offer_top_k(const B&, VectorView<const float> s, row_id_t first, index_t k,
                               VectorView<float> heap_scores, VectorView<row_id_t> heap_ids, index_t size,
                               VectorView<const row_id_t> excluded) {
        return kernels<float>().retrieval.offer(s.data(), s.size(), first, k, heap_scores.data(), heap_ids.data(),
                                                size, excluded.data(), excluded.size());
    }

    static index_t collect_above(const B&, VectorView<const float> s, float threshold, row_id_t first,
                                 VectorView<float> out_scores, VectorView<row_id_t> out_ids) {
        return kernels<float>().retrieval.collect_above(s.data(), s.size(), threshold, first, out_scores.data(),
                                                        out_ids.data());
    }

    static std::uint32_t kth_largest_key(const B&, VectorView<const std::uint32_t> keys, index_t k, index_t slack) {
        return kernels<float>().retrieval.kth_largest(keys.data(), keys.size(), k, slack);
    }

    static void pq4_scan(const B&, const std::uint8_t* codes, index_t blocks, index_t m, const std::uint8_t* lut,
                         std::uint16_t threshold, std::uint16_t* out, std::uint32_t* masks) {
        kernels<float>().retrieval.pq4_scan(codes, blocks, m, lut, threshold, out, masks);
    }

    // Whole searches (cpu/retrieval_search.hpp): threads split the table
    // (one query) or its item tiles (a batch), at fixed boundaries.
    template <class E>
    static void exact_top_k(const B& be, PanelView<E> items, MatrixView<const float> queries, index_t k,
                            VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids,
                            MatrixView<row_id_t> ids, MatrixView<float> scores) {
        const auto gemm = [](Trans ta, Trans tb, MatrixView<const float> a, MatrixView<const float> b,
                             MatrixView<float> c) { gemm_single<float>(ta, tb, 1.0f, a, b, 0.0f, c); };
        const cpu::retrieval_search::PanelSearch<E, decltype(gemm)> search{kernels<float>().retrieval, be.threads(),
                                                                           gemm, items};
        search.run(queries, k, ex_offsets, ex_ids, ids, scores);
    }

    template <class T>
    static void rerank_top_k(const B& be, MatrixView<const T> rows, MatrixView<const T> queries,
                             MatrixView<const row_id_t> candidates, index_t k, MatrixView<row_id_t> ids,
                             MatrixView<T> scores) {
        static_assert(std::is_same_v<T, float>, "rerank_top_k scores float rows");
        cpu::retrieval_search::rerank_top_k(kernels<float>().retrieval, be.threads(), rows, queries, candidates, k,
                                            ids, scores);
    }

    template <class T>
    static void max_sim_scores(const B& be, MatrixView<const T> query, MatrixView<const T> vectors,
                               VectorView<const index_t> offsets, VectorView<T> scores, MatrixView<index_t> argmax) {
        static_assert(std::is_same_v<T, float>, "max_sim_scores scores float vectors");
        const auto gemm = [](Trans ta, Trans tb, MatrixView<const float> a, MatrixView<const float> b,
                             MatrixView<float> c) { gemm_single<float>(ta, tb, 1.0f, a, b, 0.0f, c); };
        cpu::retrieval_search::max_sim_scores(be.threads(), gemm, query, vectors, offsets, scores, argmax);
    }

    // Nearest centroid: on the calling thread (k-means runs blocks of rows on the pool).
    template <class T>
    static void squared_distances(const B&, MatrixView<const T> x, VectorView<const T> y, VectorView<T> out) {
        kernels<T>().squared_distances(x.data(), x.ld(), x.rows(), x.cols(), y.data(), out.data());
    }

    template <class T>
    static void shifted_argmin_rows(const B&, MatrixView<T> g, VectorView<const T> norms, VectorView<index_t> arg,
                                    VectorView<T> best) {
        kernels<T>().shifted_argmin_rows(g.data(), g.ld(), g.rows(), norms.data(), norms.size(), arg.data(),
                                         best.data());
    }

    /// The clusters are cut into ranges (about 8, fixed by K), one task each
    /// scanning every label in row order: each centroid's double sum adds its
    /// rows in row order whatever the thread count (the Reference's bits).
    template <class T>
    static void mean_by_label(const B& be, MatrixView<const T> x, VectorView<const index_t> labels,
                              MatrixView<T> centroids, VectorView<index_t> counts) {
        struct SumsTag {};
        const index_t n = x.rows(), k = centroids.rows(), d = centroids.cols();
        const index_t per = std::max<index_t>(1, (k + 7) / 8);
        parallel_for(be.threads(), 0, k, per, [&](index_t k0, index_t k1) {
            auto& sums = thread_scratch<double, SumsTag>(static_cast<std::size_t>((k1 - k0) * d));
            std::fill_n(sums.begin(), (k1 - k0) * d, 0.0);
            for (index_t l = k0; l < k1; ++l) counts(l) = 0;
            for (index_t i = 0; i < n; ++i) {
                const index_t l = labels(i);
                if (l < k0 || l >= k1) continue;
                ++counts(l);
                double* s = sums.data() + (l - k0) * d;
                const T* p = x.row(i);
                for (index_t t = 0; t < d; ++t) s[t] += p[t];
            }
            for (index_t l = k0; l < k1; ++l) {
                const index_t cnt = counts(l);
                if (cnt == 0) continue;
                const double inv = 1.0 / double(cnt);
                T* c = centroids.row(l);
                const double* s = sums.data() + (l - k0) * d;
                for (index_t t = 0; t < d; ++t) c[t] = static_cast<T>(s[t] * inv);
            }
        });
    }

    template <class T>
    static index_t offer_smallest(const B&, VectorView<T> g, VectorView<const T> norms, T base, index_t first,
                                  VectorView<T> best_scores, VectorView<index_t> best_ids, index_t filled) {
        return kernels<T>().offer_smallest(g.data(), norms.data(), g.size(), base, first, best_scores.data(),
                                           best_ids.data(), best_scores.size(), filled);
    }

    template <class T>
    static void gather_rows(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids, MatrixView<T> out) {
        const auto& kt = kernels<T>();
        parallel_for(be.threads(), 0, ids.size(), cpu::rows_per_chunk(table.cols()), [&](index_t i0, index_t i1) {
            kt.gather_rows(table.data(), table.ld(), ids.data() + i0, i1 - i0, out.row(i0), out.ld(), table.cols());
        });
    }

    template <class T>
    static void scatter_add_rows(const B& be, MatrixView<const T> src, VectorView<const row_id_t> ids, MatrixView<T> table) {
        const auto& kt = kernels<T>();
        // Each chunk owns a range of destination rows and scans all ids; the
        // partition only decides who adds, never the order of additions.
        const bool big = ids.size() * src.cols() >= 65536;
        const index_t parts = big ? std::min<index_t>(be.threads().size(), table.rows()) : 1;
        const index_t per = (table.rows() + parts - 1) / parts;
        parallel_for(be.threads(), 0, table.rows(), per, [&](index_t lo, index_t hi) {
            kt.scatter_add_rows(src.data(), src.ld(), ids.data(), ids.size(), table.data(), table.ld(), table.cols(),
                                static_cast<row_id_t>(lo), static_cast<row_id_t>(hi));
        });
    }

    template <class T>
    static index_t top_k_rows(const B& be, MatrixView<const T> scores, index_t k, MatrixView<row_id_t> ids,
                              MatrixView<T> values) {
        const auto& kt = kernels<T>();
        const index_t rows = scores.rows(), n = scores.cols();
        const index_t threads = be.threads().size();
        // The top-k under (value desc, index asc) is unique, so splitting a
        // long row into segments cannot change the result.
        const index_t segments = rows >= threads ? 1 : std::clamp<index_t>(n / (1 << 20), 1, threads);
        // The first row holding a NaN (rows if none); the minimum is the same
        // whatever the thread schedule. No allocation per call.
        std::atomic<index_t> first_nan{rows};
        auto report_nan = [&](index_t r) {
            index_t cur = first_nan.load(std::memory_order_relaxed);
            while (r < cur && !first_nan.compare_exchange_weak(cur, r, std::memory_order_relaxed)) {
            }
        };
        if (segments == 1) {
            parallel_for(be.threads(), 0, rows, 1, [&](index_t r0, index_t r1) {
                for (index_t r = r0; r < r1; ++r)
                    if (kt.top_k(scores.row(r), n, k, 0, values.row(r), ids.row(r))) report_nan(r);
            });
        } else {
            const index_t seg_len = (n + segments - 1) / segments;
            auto& cand_v = cpu::thread_scratch<T>(static_cast<std::size_t>(segments * k));
            auto& cand_i = cpu::thread_scratch<row_id_t>(static_cast<std::size_t>(segments * k));
            auto& got = cpu::thread_scratch<index_t, struct TopKGot>(static_cast<std::size_t>(segments));
            for (index_t r = 0; r < rows; ++r) {
                parallel_for(be.threads(), 0, segments, 1, [&](index_t s, index_t) {
                    const index_t b = s * seg_len, len = std::min(n, b + seg_len) - b;
                    const index_t kk = std::min(k, len);
                    got[static_cast<std::size_t>(s)] = kk;
                    if (kt.top_k(scores.row(r) + b, len, kk, static_cast<row_id_t>(b), cand_v.data() + s * k,
                                 cand_i.data() + s * k))
                        report_nan(r);
                });
                merge_segments(cand_v.data(), cand_i.data(), got, segments, k, values.row(r), ids.row(r));
            }
        }
        const index_t bad = first_nan.load();
        return bad < rows ? bad : -1;
    }

    template <class T>
    static T sum(const B& be, MatrixView<const T> x) {
        const auto& kt = kernels<T>();
        return static_cast<T>(parallel_reduce(
            be.threads(), 0, x.rows(), cpu::rows_per_chunk(x.cols(), kReduceGrain), 0.0,
            [&](index_t r0, index_t r1) { return double(kt.sum(x.row(r0), x.ld(), r1 - r0, x.cols())); },
            [](double s, double p) { return s + p; }));
    }

    template <class T>
    static T max_value(const B& be, MatrixView<const T> x) {
        const auto& kt = kernels<T>();
        return parallel_reduce(
            be.threads(), 0, x.rows(), cpu::rows_per_chunk(x.cols(), kReduceGrain),
            -std::numeric_limits<T>::infinity(),
            [&](index_t r0, index_t r1) { return kt.max_value(x.row(r0), x.ld(), r1 - r0, x.cols()); },
            [](T m, T p) { return (m != m || p != p) ? std::numeric_limits<T>::quiet_NaN() : std::max(m, p); });
    }

    template <class T>
    static void sum_rows(const B& be, MatrixView<const T> x, VectorView<T> out) {
        const auto& kt = kernels<T>();
        const index_t c = x.cols();
        const index_t grain = cpu::rows_per_chunk(c);
        const index_t chunks = chunk_count(0, x.rows(), grain);
        const cpu::ChunkPartials<T> partial(chunks, c);
        parallel_for(be.threads(), 0, x.rows(), grain, [&](index_t r0, index_t r1) {
            T* p = partial[r0 / grain];
            for (index_t r = r0; r < r1; ++r) kt.axpy(c, T(1), x.row(r), p);
        });
        std::fill_n(out.data(), c, T(0));
        for (index_t i = 0; i < chunks; ++i) kt.axpy(c, T(1), partial[i], out.data());
    }

private:
    static constexpr index_t kReduceGrain = 1 << 16;

    /// Merges per-segment sorted top-k lists into the row's final top-k.
    template <class T>
    static void merge_segments(const T* cand_v, const row_id_t* cand_i, const std::vector<index_t>& got,
                               index_t segments, index_t k, T* out_v, row_id_t* out_i) {
        auto& pos = cpu::thread_scratch<index_t, struct TopKMergePos>(static_cast<std::size_t>(segments));
        std::fill_n(pos.begin(), segments, index_t{0});
        for (index_t j = 0; j < k; ++j) {
            index_t best = -1;
            for (std::size_t s = 0; s < static_cast<std::size_t>(segments); ++s) {
                if (pos[s] >= got[s]) continue;
                const index_t at = static_cast<index_t>(s) * k + pos[s];
                if (best < 0 || cand_v[at] > cand_v[best] || (cand_v[at] == cand_v[best] && cand_i[at] < cand_i[best]))
                    best = at;
            }
            out_v[j] = cand_v[best];
            out_i[j] = cand_i[best];
            ++pos[static_cast<std::size_t>(best / k)];
        }
    }
};

RECBLOCKS_NAMESPACE_END
