// Primitives<backend::Cuda> batched prefix attention (forward and backward)
// and the small glue primitives, against a plain double-precision host loop
// written here from the contract (backend/primitives.hpp): an independent check
// of the kernels. Sizes hit the kernels' tails (head_dim 1, 7, 25, 50, 64,
// 128, 256; q_len / kv_len 1, 7, 33, 200), the masks models use (causal,
// bidirectional, block-causal, the last position only), padded keys (a fully
// padded sequence too), dropout on and off, and packed QKV with ld 3D.
// Every output is prefilled with a sentinel: the kernels must overwrite all of
// it (keys no row sees get 0). Two runs give the same bits.
// Runs only where a GPU exists (tests/cuda/require_gpu.cpp exits 77 otherwise).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "support/compare.hpp"

namespace {

using namespace recblocks;
using rbtest::Tolerance;
using CudaP = Primitives<backend::Cuda>;

const backend::Cuda kGpu{};

// ---- host buffers and their device copies ------------------------------------

/// A row-major host matrix with ld = cols + pad, prefilled with `fill`.
template <class T>
struct HostM {
    index_t rows = 0, cols = 0, ld = 0;
    std::vector<T> buf;
    HostM(index_t r, index_t c, index_t pad = 0, T fill = T(-777))
        : rows(r), cols(c), ld(c + pad), buf(static_cast<std::size_t>(std::max<index_t>(1, r * (c + pad))), fill) {}
    T& operator()(index_t r, index_t c) { return buf[static_cast<std::size_t>(r * ld + c)]; }
    T operator()(index_t r, index_t c) const { return buf[static_cast<std::size_t>(r * ld + c)]; }
};

/// Uniform values in [lo, hi) over the whole buffer (padding included).
template <class T>
void fill_uniform(HostM<T>& m, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
    const Rng rng(seed);
    for (std::size_t i = 0; i < m.buf.size(); ++i)
        m.buf[i] = static_cast<T>(lo + (hi - lo) * rng.uniform_double(static_cast<std::uint64_t>(i)));
}

/// A device copy of a host buffer.
template <class T>
DeviceBuffer<T> upload(const std::vector<T>& h) {
    return DeviceBuffer<T>::from_host(std::span<const T>(h));
}

/// rows x cols view at column offset `col` of a device buffer with leading dimension ld.
template <class T>
MatrixView<T> dview(DeviceBuffer<T>& b, index_t rows, index_t cols, index_t ld, index_t col = 0) {
    return matrix_view(b.data() + col, rows, cols, ld);
}
template <class T>
MatrixView<const T> dcview(const DeviceBuffer<T>& b, index_t rows, index_t cols, index_t ld, index_t col = 0) {
    return matrix_view<const T>(b.data() + col, rows, cols, ld);
}

/// got (a rows x cols block at column `col` of a host buffer with ld) against
/// ref [rows * cols] (row-major, double) within tol.
template <class T>
void require_block_close(const std::vector<T>& got, index_t ld, index_t col, const std::vector<double>& ref,
                         index_t rows, index_t cols, Tolerance tol, const char* what) {
    Tensor<double, 2> g(Shape<2>{{rows, cols}}), r(Shape<2>{{rows, cols}});
    for (index_t i = 0; i < rows; ++i)
        for (index_t c = 0; c < cols; ++c) {
            g(i, c) = static_cast<double>(got[static_cast<std::size_t>(i * ld + col + c)]);
            r(i, c) = ref[static_cast<std::size_t>(i * cols + c)];
        }
    INFO(what);
    RBTEST_REQUIRE_CLOSE(g.cview(), r.cview(), tol);
}

// ---- the cases -----------------------------------------------------------------

enum class Mask { causal, bidirectional, block_causal, last };

struct AttnCase {
    index_t batch, heads, q_len, kv_len, hd;
    Mask mask;
    bool pad;      ///< padded keys: sequence 0 drops one key, 1 is fully padded, 2 is left-padded
    bool dropout;
    bool packed;   ///< q, k, v (and dq, dk, dv) are column blocks of one [rows, 3D] matrix, ld 3D
};

std::string describe(const AttnCase& c) {
    const char* masks[] = {"causal", "bidirectional", "block-causal", "last"};
    return "batch " + std::to_string(c.batch) + " heads " + std::to_string(c.heads) + " q_len " +
           std::to_string(c.q_len) + " kv_len " + std::to_string(c.kv_len) + " head_dim " + std::to_string(c.hd) +
           " mask " + masks[static_cast<int>(c.mask)] + (c.pad ? " padded" : "") + (c.dropout ? " dropout" : "") +
           (c.packed ? " packed" : "");
}

std::vector<index_t> key_ends(const AttnCase& c) {
    std::vector<index_t> e(static_cast<std::size_t>(c.q_len));
    constexpr index_t block = 4;  // block-causal block size
    for (index_t r = 0; r < c.q_len; ++r) {
        index_t v = c.kv_len;
        if (c.mask == Mask::causal) v = r + 1;
        if (c.mask == Mask::block_causal) v = (r + block) / block * block;  // ceil((r + 1) / t) * t
        e[static_cast<std::size_t>(r)] = std::min(v, c.kv_len);
    }
    return e;
}

std::vector<std::uint8_t> keep_bytes(const AttnCase& c) {
    std::vector<std::uint8_t> k(static_cast<std::size_t>(c.batch * c.kv_len), 1);
    if (!c.pad) return k;
    for (index_t b = 0; b < c.batch; ++b)
        for (index_t j = 0; j < c.kv_len; ++j) {
            std::uint8_t kept = 1;
            if (b % 3 == 0) kept = j == c.kv_len / 2 ? 0 : 1;  // one key dropped in the middle
            if (b % 3 == 1) kept = 0;                           // fully padded
            if (b % 3 == 2) kept = j >= c.kv_len / 3 ? 1 : 0;   // left padding
            k[static_cast<std::size_t>(b * c.kv_len + j)] = kept;
        }
    return k;
}

template <class T>
AttentionDropout<T> dropout_of(const AttnCase& c) {
    AttentionDropout<T> d;
    if (!c.dropout) return d;
    d.key0 = 0x2468ACEu;
    d.key1 = 0x13579BDu;
    d.stream = 99;
    d.threshold = 1u << 22;  // drops 1/4 of the weights
    d.scale = T(4) / T(3);
    return d;
}

/// The double-precision host reference of forward and backward, written from
/// the contract.
struct HostAttention {
    std::vector<double> ctx, dq, dk, dv;  // [batch * q_len, D], [batch * kv_len, D] (x2)
};

template <class T>
HostAttention host_attention(const AttnCase& c, const HostM<T>& q, index_t qc, const HostM<T>& k, index_t kc,
                             const HostM<T>& v, index_t vc, const HostM<T>& dctx, const std::vector<index_t>& key_end,
                             const std::vector<std::uint8_t>& keep, double scale, const AttentionDropout<T>& drop) {
    const index_t D = c.heads * c.hd;
    HostAttention out;
    out.ctx.assign(static_cast<std::size_t>(c.batch * c.q_len * D), 0.0);
    out.dq.assign(out.ctx.size(), 0.0);
    out.dk.assign(static_cast<std::size_t>(c.batch * c.kv_len * D), 0.0);
    out.dv.assign(out.dk.size(), 0.0);
    std::vector<double> p(static_cast<std::size_t>(c.kv_len)), w(p.size()), dpk(p.size());
    for (index_t b = 0; b < c.batch; ++b)
        for (index_t h = 0; h < c.heads; ++h) {
            const index_t lane = b * c.heads + h;
            const Rng rng = Rng(static_cast<std::uint64_t>(drop.key0) | (std::uint64_t{drop.key1} << 32), drop.stream)
                                .substream(static_cast<std::uint64_t>(lane));
            for (index_t r = 0; r < c.q_len; ++r) {
                const index_t qrow = b * c.q_len + r;
                const index_t n = key_end[static_cast<std::size_t>(r)];
                double mx = -std::numeric_limits<double>::infinity();
                for (index_t j = 0; j < n; ++j) {
                    p[static_cast<std::size_t>(j)] = -std::numeric_limits<double>::infinity();
                    if (!keep[static_cast<std::size_t>(b * c.kv_len + j)]) continue;
                    double s = 0.0;
                    for (index_t x = 0; x < c.hd; ++x)
                        s += double(q(qrow, qc + h * c.hd + x)) * double(k(b * c.kv_len + j, kc + h * c.hd + x));
                    p[static_cast<std::size_t>(j)] = s * scale;
                    mx = std::max(mx, s * scale);
                }
                if (mx == -std::numeric_limits<double>::infinity()) continue;  // nothing visible: all zero
                double sum = 0.0;
                for (index_t j = 0; j < n; ++j) {
                    double& e = p[static_cast<std::size_t>(j)];
                    e = e == -std::numeric_limits<double>::infinity() ? 0.0 : std::exp(e - mx);
                    sum += e;
                }
                for (index_t j = 0; j < n; ++j) {
                    double& e = p[static_cast<std::size_t>(j)];
                    e /= sum;
                    bool kept = true;
                    if (drop.threshold != 0)
                        kept = (rng.u32(static_cast<std::uint64_t>(r * c.kv_len + j)) >> 8) >= drop.threshold;
                    const double f = drop.threshold != 0 ? (kept ? double(drop.scale) : 0.0) : 1.0;
                    w[static_cast<std::size_t>(j)] = e * f;
                    double g = 0.0;  // dP = dctx_r . v_j
                    for (index_t x = 0; x < c.hd; ++x)
                        g += double(dctx(qrow, h * c.hd + x)) * double(v(b * c.kv_len + j, vc + h * c.hd + x));
                    dpk[static_cast<std::size_t>(j)] = g * f;
                }
                for (index_t x = 0; x < c.hd; ++x) {
                    double acc = 0.0;
                    for (index_t j = 0; j < n; ++j)
                        acc += w[static_cast<std::size_t>(j)] * double(v(b * c.kv_len + j, vc + h * c.hd + x));
                    out.ctx[static_cast<std::size_t>(qrow * D + h * c.hd + x)] = acc;
                }
                double delta = 0.0;  // sum_j P_j dP'_j (= dctx_r . ctx_r)
                for (index_t j = 0; j < n; ++j) delta += p[static_cast<std::size_t>(j)] * dpk[static_cast<std::size_t>(j)];
                for (index_t j = 0; j < n; ++j) {
                    const double ds = scale * p[static_cast<std::size_t>(j)] * (dpk[static_cast<std::size_t>(j)] - delta);
                    const index_t krow = b * c.kv_len + j;
                    for (index_t x = 0; x < c.hd; ++x) {
                        const index_t col = h * c.hd + x;
                        out.dq[static_cast<std::size_t>(qrow * D + col)] += ds * double(k(krow, kc + col));
                        out.dk[static_cast<std::size_t>(krow * D + col)] += ds * double(q(qrow, qc + col));
                        out.dv[static_cast<std::size_t>(krow * D + col)] +=
                            w[static_cast<std::size_t>(j)] * double(dctx(qrow, col));
                    }
                }
            }
        }
    return out;
}

template <class T>
Tolerance forward_tolerance() {
    return std::is_same_v<T, float> ? Tolerance{2e-6, 2e-5} : Tolerance{1e-13, 1e-12};
}
template <class T>
Tolerance backward_tolerance() {
    return std::is_same_v<T, float> ? Tolerance{1e-5, 1e-4} : Tolerance{1e-12, 1e-11};
}

/// Runs forward and backward on the GPU twice (the same bits), checks both
/// against the host reference.
template <class T>
void check_attention(const AttnCase& c, std::uint64_t seed) {
    INFO(describe(c));
    const index_t D = c.heads * c.hd, qrows = c.batch * c.q_len, krows = c.batch * c.kv_len;
    const AttentionShape shape{c.batch, c.heads, c.q_len, c.kv_len, c.hd};
    const T scale = T(1) / std::sqrt(T(std::max<index_t>(c.hd, 1)));
    const AttentionDropout<T> drop = dropout_of<T>(c);
    const std::vector<index_t> key_end = key_ends(c);
    const std::vector<std::uint8_t> keep = keep_bytes(c);

    // Inputs: packed [rows, 3D] (ld 3D) or three separate padded matrices.
    const bool packed = c.packed && c.q_len == c.kv_len;
    HostM<T> qkv(packed ? qrows : 0, 3 * D), hq(packed ? 0 : qrows, D, 3), hk(packed ? 0 : krows, D, 1),
        hv(packed ? 0 : krows, D, 2);
    fill_uniform(qkv, seed);
    fill_uniform(hq, seed + 1);
    fill_uniform(hk, seed + 2, -1.5, 1.5);
    fill_uniform(hv, seed + 3);
    HostM<T> dctx(qrows, D, 1);
    fill_uniform(dctx, seed + 4);
    const HostM<T>& q_src = packed ? qkv : hq;
    const HostM<T>& k_src = packed ? qkv : hk;
    const HostM<T>& v_src = packed ? qkv : hv;
    const index_t qc = 0, kc = packed ? D : 0, vc = packed ? 2 * D : 0;

    const HostAttention ref = host_attention<T>(c, q_src, qc, k_src, kc, v_src, vc, dctx, key_end, keep, double(scale), drop);

    DeviceBuffer<T> g_qkv = upload(qkv.buf), g_q = upload(hq.buf), g_k = upload(hk.buf), g_v = upload(hv.buf);
    const DeviceBuffer<T> g_dctx = upload(dctx.buf);
    const DeviceBuffer<index_t> g_key_end = upload(key_end);
    const DeviceBuffer<std::uint8_t> g_keep = upload(keep);
    const auto input = [&](DeviceBuffer<T>& sep, index_t rows, index_t col, const HostM<T>& h) {
        return packed ? dcview(g_qkv, rows, D, qkv.ld, col) : dcview(sep, rows, D, h.ld);
    };
    const MatrixView<const T> q = input(g_q, qrows, qc, hq), k = input(g_k, krows, kc, hk),
                              v = input(g_v, krows, vc, hv);
    const VectorView<const index_t> ke = vector_view<const index_t>(g_key_end.data(), c.q_len);
    const MatrixView<const std::uint8_t> kp =
        c.pad ? matrix_view<const std::uint8_t>(g_keep.data(), c.batch, c.kv_len, c.kv_len)
              : MatrixView<const std::uint8_t>{};

    const index_t state_n = CudaP::attention_state_size<T>(kGpu, shape, c.dropout);
    REQUIRE(state_n == c.batch * c.heads * c.q_len);

    std::vector<T> first_ctx, first_grads;
    for (int run = 0; run < 2; ++run) {
        DeviceBuffer<T> g_state(std::max<index_t>(state_n, 1));
        HostM<T> ctx_init(qrows, D, 2);
        DeviceBuffer<T> g_ctx = upload(ctx_init.buf);
        const MatrixView<T> ctx = dview(g_ctx, qrows, D, ctx_init.ld);
        CudaP::attention_forward<T>(kGpu, shape, q, k, v, ke, kp, scale, drop,
                                    vector_view(g_state.data(), state_n), ctx);
        const std::vector<T> got_ctx = g_ctx.to_host();
        require_block_close(got_ctx, ctx_init.ld, 0, ref.ctx, qrows, D, forward_tolerance<T>(), "ctx");
        for (index_t r = 0; r < qrows; ++r)  // padding untouched
            for (index_t x = D; x < ctx_init.ld; ++x) REQUIRE(got_ctx[static_cast<std::size_t>(r * ctx_init.ld + x)] == T(-777));

        // Inference (no state) gives the same context, bit for bit.
        DeviceBuffer<T> g_ctx2 = upload(ctx_init.buf);
        CudaP::attention_forward<T>(kGpu, shape, q, k, v, ke, kp, scale, drop, VectorView<T>{},
                                    dview(g_ctx2, qrows, D, ctx_init.ld));
        REQUIRE(g_ctx2.to_host() == got_ctx);

        // Backward into packed or separate gradients, prefilled with a sentinel.
        HostM<T> dqkv(packed ? qrows : 0, 3 * D), dq_h(packed ? 0 : qrows, D, 2), dk_h(packed ? 0 : krows, D, 3),
            dv_h(packed ? 0 : krows, D, 1);
        DeviceBuffer<T> g_dqkv = upload(dqkv.buf), g_dq = upload(dq_h.buf), g_dk = upload(dk_h.buf),
                        g_dv = upload(dv_h.buf);
        const auto grad = [&](DeviceBuffer<T>& sep, index_t rows, index_t col, const HostM<T>& h) {
            return packed ? dview(g_dqkv, rows, D, dqkv.ld, col) : dview(sep, rows, D, h.ld);
        };
        CudaP::attention_backward<T>(kGpu, shape, q, k, v, ke, kp, scale, drop,
                                     vector_view<const T>(g_state.data(), state_n),
                                     matrix_view<const T>(g_ctx.data(), qrows, D, ctx_init.ld),
                                     dcview(g_dctx, qrows, D, dctx.ld), grad(g_dq, qrows, qc, dq_h),
                                     grad(g_dk, krows, kc, dk_h), grad(g_dv, krows, vc, dv_h));
        const Tolerance bt = backward_tolerance<T>();
        std::vector<T> all;
        if (packed) {
            all = g_dqkv.to_host();
            require_block_close(all, dqkv.ld, qc, ref.dq, qrows, D, bt, "dq");
            require_block_close(all, dqkv.ld, kc, ref.dk, krows, D, bt, "dk");
            require_block_close(all, dqkv.ld, vc, ref.dv, krows, D, bt, "dv");
        } else {
            const std::vector<T> gq = g_dq.to_host(), gk = g_dk.to_host(), gv = g_dv.to_host();
            require_block_close(gq, dq_h.ld, 0, ref.dq, qrows, D, bt, "dq");
            require_block_close(gk, dk_h.ld, 0, ref.dk, krows, D, bt, "dk");
            require_block_close(gv, dv_h.ld, 0, ref.dv, krows, D, bt, "dv");
            for (const auto* part : {&gq, &gk, &gv}) all.insert(all.end(), part->begin(), part->end());
        }
        if (run == 0) {
            first_ctx = got_ctx;
            first_grads = all;
        } else {
            REQUIRE(got_ctx == first_ctx);  // deterministic: the same bits
            REQUIRE(std::memcmp(all.data(), first_grads.data(), all.size() * sizeof(T)) == 0);
        }
    }
}

std::vector<AttnCase> attention_cases() {
    std::vector<AttnCase> cases;
    // Every head width (tails of the 32-column lane groups, every DP bucket).
    for (index_t hd : {1, 7, 25, 50, 64, 128, 256})
        cases.push_back({2, 2, 33, 33, hd, Mask::causal, true, hd % 2 == 0, true});
    // Sequence lengths and masks.
    for (index_t L : {1, 7, 33, 200})
        for (Mask m : {Mask::causal, Mask::bidirectional, Mask::block_causal}) {
            cases.push_back({3, 2, L, L, 50, m, true, false, true});
            cases.push_back({1, 1, L, L, 25, m, false, true, false});
        }
    // Serving: the last position only, all keys.
    for (index_t L : {1, 7, 33, 200})
        for (index_t hd : {25, 64, 128}) {
            cases.push_back({3, 2, 1, L, hd, Mask::last, true, false, false});
            cases.push_back({1, 1, 1, L, hd, Mask::last, false, false, false});
        }
    // Fewer queries than keys (the prefix of a cache), dropout on padded keys.
    cases.push_back({3, 2, 7, 200, 64, Mask::causal, true, true, false});
    cases.push_back({3, 1, 4, 33, 128, Mask::bidirectional, true, true, false});
    cases.push_back({2, 2, 200, 200, 128, Mask::causal, true, true, true});
    cases.push_back({2, 1, 65, 65, 256, Mask::block_causal, true, true, false});
    return cases;
}

TEMPLATE_TEST_CASE("cuda attention forward and backward match a double host loop", "[cuda][attention]", float,
                   double) {
    using T = TestType;
    std::uint64_t seed = 7000;
    for (const AttnCase& c : attention_cases()) {
        check_attention<T>(c, seed);
        seed += 10;
    }
}

TEMPLATE_TEST_CASE("cuda attention: empty shapes write nothing or zeros", "[cuda][attention]", float, double) {
    using T = TestType;
    // kv_len == 0: ctx and dq rows are zero; q_len == 0: dk and dv are zero.
    const AttentionShape no_keys{2, 1, 3, 0, 8};
    HostM<T> hq(6, 8), dctx(6, 8);
    fill_uniform(hq, 1);
    fill_uniform(dctx, 2);
    DeviceBuffer<T> g_q = upload(hq.buf), g_dctx = upload(dctx.buf), g_ctx(6 * 8), g_dq(6 * 8), g_state(6);
    DeviceBuffer<T> g_kv(1);
    const DeviceBuffer<index_t> g_ke = upload(std::vector<index_t>{0, 0, 0});
    const MatrixView<const T> none = matrix_view<const T>(g_kv.data(), 0, 8, 8);
    CudaP::attention_forward<T>(kGpu, no_keys, dcview(g_q, 6, 8, 8), none, none,
                                vector_view<const index_t>(g_ke.data(), 3), {}, T(1), {}, g_state.view(),
                                dview(g_ctx, 6, 8, 8));
    for (T x : g_ctx.to_host()) REQUIRE(x == T(0));
    CudaP::attention_backward<T>(kGpu, no_keys, dcview(g_q, 6, 8, 8), none, none,
                                 vector_view<const index_t>(g_ke.data(), 3), {}, T(1), {},
                                 vector_view<const T>(g_state.data(), 6), dcview(g_ctx, 6, 8, 8),
                                 dcview(g_dctx, 6, 8, 8), dview(g_dq, 6, 8, 8), matrix_view(g_kv.data(), 0, 8, 8),
                                 matrix_view(g_kv.data(), 0, 8, 8));
    for (T x : g_dq.to_host()) REQUIRE(x == T(0));

    const AttentionShape no_queries{2, 1, 0, 5, 8};
    HostM<T> hk(10, 8, 0, T(-777));
    DeviceBuffer<T> g_k = upload(hk.buf), g_dk = upload(hk.buf), g_dv = upload(hk.buf), g_none(1);
    const MatrixView<const T> nq = matrix_view<const T>(g_none.data(), 0, 8, 8);
    CudaP::attention_backward<T>(kGpu, no_queries, nq, dcview(g_k, 10, 8, 8), dcview(g_k, 10, 8, 8), {}, {}, T(1),
                                 {}, {}, nq, nq, matrix_view(g_none.data(), 0, 8, 8), dview(g_dk, 10, 8, 8),
                                 dview(g_dv, 10, 8, 8));
    for (T x : g_dk.to_host()) REQUIRE(x == T(0));
    for (T x : g_dv.to_host()) REQUIRE(x == T(0));
}

// ---- glue ------------------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda broadcast_rows, gate_by_nonzero, scale_rows and row_dots match host loops",
                   "[cuda][glue]", float, double) {
    using T = TestType;
    const Tolerance tol = std::is_same_v<T, float> ? Tolerance{1e-6, 1e-5} : Tolerance{1e-14, 1e-13};
    for (index_t rows : {1, 7, 33, 1000})
        for (index_t cols : {1, 7, 32, 33, 65, 1000}) {
            INFO("rows " << rows << " cols " << cols);
            HostM<T> row(1, cols), out(rows, cols, 3), x(rows, cols, 1), s(1, rows), b(rows, cols, 2);
            fill_uniform(row, 1);
            fill_uniform(out, 2);
            fill_uniform(x, 3);
            fill_uniform(s, 4);
            fill_uniform(b, 5);
            // broadcast_rows, beta = 0.5 and beta = 0 (out filled with NaN: not read).
            for (T beta : {T(0.5), T(0)}) {
                HostM<T> o = out;
                if (beta == T(0))
                    for (index_t r = 0; r < rows; ++r)
                        for (index_t c = 0; c < cols; ++c) o(r, c) = std::numeric_limits<T>::quiet_NaN();
                DeviceBuffer<T> g_row = upload(row.buf), g_out = upload(o.buf);
                CudaP::broadcast_rows<T>(kGpu, vector_view<const T>(g_row.data(), cols), beta,
                                         dview(g_out, rows, cols, o.ld));
                std::vector<double> want(static_cast<std::size_t>(rows * cols));
                for (index_t r = 0; r < rows; ++r)
                    for (index_t c = 0; c < cols; ++c)
                        want[static_cast<std::size_t>(r * cols + c)] =
                            double(row(0, c)) + (beta == T(0) ? 0.0 : double(beta) * double(o(r, c)));
                const std::vector<T> got = g_out.to_host();
                require_block_close(got, o.ld, 0, want, rows, cols, tol, "broadcast_rows");
                for (index_t r = 0; r + 1 < rows; ++r)
                    for (index_t c = cols; c < o.ld; ++c) REQUIRE(got[static_cast<std::size_t>(r * o.ld + c)] == o(r, c));
            }
            // scale_rows with and without s, apart and in place.
            for (bool with_s : {true, false})
                for (bool in_place : {false, true}) {
                    DeviceBuffer<T> g_x = upload(x.buf), g_s = upload(s.buf), g_y = upload(b.buf);
                    const VectorView<const T> sv =
                        with_s ? vector_view<const T>(g_s.data(), rows) : VectorView<const T>{};
                    const MatrixView<T> y = in_place ? dview(g_x, rows, cols, x.ld) : dview(g_y, rows, cols, b.ld);
                    CudaP::scale_rows<T>(kGpu, dcview(g_x, rows, cols, x.ld), sv, T(-1.5), y);
                    std::vector<double> want(static_cast<std::size_t>(rows * cols));
                    for (index_t r = 0; r < rows; ++r)
                        for (index_t c = 0; c < cols; ++c)
                            want[static_cast<std::size_t>(r * cols + c)] =
                                -1.5 * (with_s ? double(s(0, r)) : 1.0) * double(x(r, c));
                    if (in_place) require_block_close(g_x.to_host(), x.ld, 0, want, rows, cols, tol, "scale_rows in place");
                    else require_block_close(g_y.to_host(), b.ld, 0, want, rows, cols, tol, "scale_rows");
                }
            // row_dots (twice: the same bits).
            {
                DeviceBuffer<T> g_x = upload(x.buf), g_b = upload(b.buf), g_o(rows);
                CudaP::row_dots<T>(kGpu, dcview(g_x, rows, cols, x.ld), dcview(g_b, rows, cols, b.ld), g_o.view());
                const std::vector<T> got = g_o.to_host();
                std::vector<double> want(static_cast<std::size_t>(rows));
                for (index_t r = 0; r < rows; ++r) {
                    double acc = 0.0;
                    for (index_t c = 0; c < cols; ++c) acc += double(x(r, c)) * double(b(r, c));
                    want[static_cast<std::size_t>(r)] = acc;
                }
                const Tolerance dt = std::is_same_v<T, float> ? Tolerance{1e-5, 1e-5} : Tolerance{1e-13, 1e-12};
                require_block_close(got, 1, 0, want, rows, 1, dt, "row_dots");
                CudaP::row_dots<T>(kGpu, dcview(g_x, rows, cols, x.ld), dcview(g_b, rows, cols, b.ld), g_o.view());
                REQUIRE(g_o.to_host() == got);
            }
        }
    // gate_by_nonzero: ReLU outputs (exact zeros) and dropout.
    for (index_t n : {1, 7, 33, 100003}) {
        INFO("n " << n);
        HostM<T> ref(1, n), g(1, n);
        fill_uniform(ref, 6);
        fill_uniform(g, 7);
        for (index_t i = 0; i < n; ++i)
            if (ref(0, i) < T(0)) ref(0, i) = T(0);
        DeviceBuffer<T> g_ref = upload(ref.buf), g_g = upload(g.buf);
        CudaP::gate_by_nonzero<T>(kGpu, vector_view<const T>(g_ref.data(), n), vector_view(g_g.data(), n), T(1.25));
        const std::vector<T> got = g_g.to_host();
        for (index_t i = 0; i < n; ++i)
            REQUIRE(got[static_cast<std::size_t>(i)] == (ref(0, i) != T(0) ? g(0, i) * T(1.25) : T(0)));
    }
}

}  // namespace
