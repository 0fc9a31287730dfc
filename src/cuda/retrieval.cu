// Primitives<backend::Cuda>: the retrieval primitives (exact_top_k,
// rerank_top_k, max_sim_scores; backend/primitives.hpp states them). The
// overview is next to their declarations in include/recblocks/backend/cuda/primitives.hpp.
//
// Order: one 64-bit key per (score, id), larger = ranks first (the score's
// order-preserving bits above ~id; backend/retrieval.hpp), so selection is on
// unique integers and ties are exact. Every kernel loops over its work in a
// fixed partition, and every combine is on keys (a total order): the results
// do not depend on scheduling.
//
// Data errors (exclusion lists, candidate ids, MaxSim offsets, non-finite
// queries) are found on the device and only flagged; the host then reads the
// data back and runs the host checks of backend/retrieval.hpp, which throw the
// exact message ops/ gives for host memory. A NaN score is flagged per query.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "recblocks/backend/cuda/device_utils.cuh"
#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/retrieval.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cuda_detail {
namespace {

using Key = unsigned long long;

// ============================================================================
// Keys
// ============================================================================

__device__ inline Key rank_key(float v, row_id_t id) {
    const unsigned u = v == 0.0f ? 0u : __float_as_uint(v);
    const unsigned ob = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return (static_cast<Key>(ob) << 32) | static_cast<Key>(~static_cast<unsigned>(id));
}
__device__ inline float key_score(Key key) {
    const auto u = static_cast<unsigned>(key >> 32);
    return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}
__device__ inline row_id_t key_id(Key key) { return static_cast<row_id_t>(~static_cast<unsigned>(key)); }
// Every real key is > 0 (even -inf's); 0 marks "no candidate".

/// The flags one call reports through: a data error somewhere, and the first
/// query with a NaN score (kNone: none).
struct Flags {
    unsigned long long bad;
    unsigned long long nan_query;
};

/// Query b's excluded ids: a CSR slice, or the shared list without offsets.
__device__ inline void excluded_of(const index_t* ex_off, const row_id_t* ex_ids, index_t n_ex, index_t b,
                                   const row_id_t*& first, index_t& count) {
    if (ex_off == nullptr) {
        first = ex_ids;
        count = n_ex;
    } else {
        first = ex_ids + ex_off[b];
        count = ex_off[b + 1] - ex_off[b];
    }
}

__device__ inline bool is_excluded(const row_id_t* ex, index_t count, row_id_t id) {
    index_t lo = 0, hi = count;  // lower bound
    while (lo < hi) {
        const index_t mid = (lo + hi) / 2;
        if (ex[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < count && ex[lo] == id;
}

// ============================================================================
// Validation (flags only; the host rebuilds the message)
// ============================================================================

// check_queries_kernel: every query element finite.
__global__ void __launch_bounds__(kBlock)
    check_queries_kernel(const float* q, index_t ldq, index_t nq, index_t d, Flags* flags) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < nq * d; i += index_t{gridDim.x} * kBlock) {
        const float v = q[(i / d) * ldq + i % d];
        if (!isfinite(v)) flags->bad = 1;
    }
}

// check_csr_kernel: one thread per query: offsets non-decreasing (and the
// ends), its list in range, strictly ascending, and k <= n - its length.
__global__ void __launch_bounds__(kBlock) check_csr_kernel(const index_t* ex_off, const row_id_t* ex_ids, index_t n_ex,
                                                           index_t nq, index_t n, index_t k, Flags* flags) {
    for (index_t b = blockIdx.x * index_t{kBlock} + threadIdx.x; b < nq; b += index_t{gridDim.x} * kBlock) {
        const index_t from = ex_off[b], to = ex_off[b + 1];
        if ((b == 0 && from != 0) || (b == nq - 1 && to != n_ex) || from > to || from < 0 || to > n_ex) {
            flags->bad = 1;
            continue;
        }
        if (k > n - (to - from)) flags->bad = 1;
        for (index_t i = from; i < to; ++i)
            if (ex_ids[i] < 0 || ex_ids[i] >= n || (i > from && ex_ids[i - 1] >= ex_ids[i])) flags->bad = 1;
    }
}

// check_shared_list_kernel: the one list shared by every query.
__global__ void __launch_bounds__(kBlock)
    check_shared_list_kernel(const row_id_t* ex_ids, index_t n_ex, index_t n, Flags* flags) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n_ex; i += index_t{gridDim.x} * kBlock)
        if (ex_ids[i] < 0 || ex_ids[i] >= n || (i > 0 && ex_ids[i - 1] >= ex_ids[i])) flags->bad = 1;
}

// ============================================================================
// Panel loads: a warp scans one panel of 64 rows, lane l holding rows l and
// l + 32; one step reads one column (f32, bf16) or a column pair (int8).
// ============================================================================

template <class E>
struct Panel;

template <>
struct Panel<float> {
    static constexpr int kColsPerStep = 1;
    __device__ static void load(const float* p, index_t step, int lane, float (&a)[2][2]) {
        a[0][0] = __ldg(p + step * 64 + lane);
        a[1][0] = __ldg(p + step * 64 + lane + 32);
    }
};

template <>
struct Panel<std::uint16_t> {  // 32-bit word w of a column: row w low, row w + 32 high
    static constexpr int kColsPerStep = 1;
    __device__ static void load(const std::uint16_t* p, index_t step, int lane, float (&a)[2][2]) {
        const unsigned w = __ldg(reinterpret_cast<const unsigned*>(p) + step * 32 + lane);
        a[0][0] = __uint_as_float(w << 16);
        a[1][0] = __uint_as_float(w & 0xffff0000u);
    }
};

template <>
struct Panel<std::int8_t> {  // 16-bit word j of a column pair: row j's two codes
    static constexpr int kColsPerStep = 2;
    __device__ static void load(const std::int8_t* p, index_t step, int lane, float (&a)[2][2]) {
        const auto* w = reinterpret_cast<const short*>(p) + step * 64;
        const short w0 = __ldg(w + lane), w1 = __ldg(w + lane + 32);
        a[0][0] = float(static_cast<signed char>(w0 & 0xff));
        a[0][1] = float(static_cast<signed char>((w0 >> 8) & 0xff));
        a[1][0] = float(static_cast<signed char>(w1 & 0xff));
        a[1][1] = float(static_cast<signed char>((w1 >> 8) & 0xff));
    }
};

/// Scores of rows (lane, lane + 32) of panel `panel` for QT queries whose
/// (zero-padded) elements are x[q * ldx + c].
template <class E, int QT>
__device__ inline void score_panel(const E* panels, const float* scales, index_t panel, index_t steps, index_t cols,
                                   const float* x, index_t ldx, int lane, float (&s)[QT][2]) {
    constexpr int C = Panel<E>::kColsPerStep;
    const E* p = panels + panel * 64 * cols;
#pragma unroll
    for (int q = 0; q < QT; ++q) s[q][0] = s[q][1] = 0.0f;
#pragma unroll 4
    for (index_t step = 0; step < steps; ++step) {
        float a[2][2];
        Panel<E>::load(p, step, lane, a);
#pragma unroll
        for (int q = 0; q < QT; ++q)
#pragma unroll
            for (int c = 0; c < C; ++c) {
                const float xv = x[q * ldx + step * C + c];
                s[q][0] = fmaf(a[0][c], xv, s[q][0]);
                s[q][1] = fmaf(a[1][c], xv, s[q][1]);
            }
    }
    if (scales != nullptr) {
        const index_t r0 = panel * 64 + lane;
        const float s0 = scales[r0], s1 = scales[r0 + 32];  // scales are padded to whole panels
#pragma unroll
        for (int q = 0; q < QT; ++q) {
            s[q][0] *= s0;
            s[q][1] *= s1;
        }
    }
}

// ============================================================================
// Fused scan-and-select: exact_top_k for k + 32 <= 512
// ============================================================================

constexpr int kScanWarps = kWarps;          // 8 warps per block
constexpr int kBufferKeys = 512;            // keys of buffer per warp, split over its QT queries

/// Sorts buf[0 .. cap) (cap a power of two) descending; one warp.
__device__ inline void warp_sort_desc(Key* buf, int cap, int lane) {
    for (int size = 2; size <= cap; size <<= 1)
        for (int stride = size / 2; stride > 0; stride >>= 1) {
            for (int i = lane; i < cap / 2; i += 32) {
                const int lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
                const bool desc = (lo & size) == 0;
                const Key a = buf[lo], b = buf[hi];
                if ((a < b) == desc) {
                    buf[lo] = b;
                    buf[hi] = a;
                }
            }
            __syncwarp();
        }
}

/// Keeps the best k of buf[0 .. count) at the front (sorted); returns the
/// k-th key (the new threshold).
__device__ inline Key warp_compact(Key* buf, int cap, int count, int k, int lane) {
    for (int i = count + lane; i < cap; i += 32) buf[i] = 0;
    __syncwarp();
    warp_sort_desc(buf, cap, lane);
    return buf[k - 1];
}

struct ScanArgs {
    const void* panels;
    const float* scales;
    index_t n, d, cols, steps;  // rows, columns, stored columns per row, steps per panel
    const float* queries;
    index_t ldq, nq, q0;  // this launch's first query
    index_t k;
    const index_t* ex_off;
    const row_id_t* ex_ids;
    index_t n_ex;
    Key* cand;  // [nq][slots][k]
    index_t slots;
    Flags* flags;
};

// scan_select_kernel: grid (slices, query tiles). Warp w of the grid scans a
// fixed range of panels for QT queries at once (the table is read once per
// tile of queries), keeping per query a buffer of keys above a threshold in
// shared memory: a score enters if its key beats the threshold (and its id is
// not excluded); when a buffer would overflow, the warp sorts it and keeps
// the best k, and the k-th key becomes the threshold. At the end each warp
// writes its best k per query (0 = none) for merge_top_k_kernel. No score
// array in device memory.
template <class E, int QT>
__global__ void __launch_bounds__(kBlock) scan_select_kernel(ScanArgs a) {
    extern __shared__ unsigned char smem[];
    if (a.flags->bad) return;  // the data are not what the scan may read
    constexpr int cap = kBufferKeys / QT;
    const index_t ldx = a.steps * Panel<E>::kColsPerStep;
    float* x = reinterpret_cast<float*>(smem);  // [QT][ldx], zero-padded
    Key* buffers = reinterpret_cast<Key*>(smem + ((QT * ldx * sizeof(float) + 15) / 16) * 16);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const index_t q0 = a.q0 + blockIdx.y * index_t{QT};
    for (index_t i = threadIdx.x; i < QT * ldx; i += kBlock) {
        const index_t q = q0 + i / ldx, c = i % ldx;
        x[i] = (q < a.nq && c < a.d) ? a.queries[q * a.ldq + c] : 0.0f;
    }
    __syncthreads();
    Key* buf = buffers + warp * kBufferKeys;  // query q: buf + q * cap
    int count[QT];
    Key thr[QT];
    const row_id_t* ex[QT];
    index_t n_ex[QT];
#pragma unroll
    for (int q = 0; q < QT; ++q) {
        count[q] = 0;
        thr[q] = 0;
        const index_t b = min_index(q0 + q, a.nq - 1);
        excluded_of(a.ex_off, a.ex_ids, a.n_ex, b, ex[q], n_ex[q]);
    }
    const index_t panels = ceil_div(a.n, 64);
    const index_t slot = blockIdx.x * index_t{kScanWarps} + warp, slots = a.slots;
    const index_t p0 = panels * slot / slots, p1 = panels * (slot + 1) / slots;
    const E* table = static_cast<const E*>(a.panels);
    for (index_t p = p0; p < p1; ++p) {
        float s[QT][2];
        score_panel<E, QT>(table, a.scales, p, a.steps, a.cols, x, ldx, lane, s);
#pragma unroll
        for (int q = 0; q < QT; ++q) {
            if (q0 + q >= a.nq) break;  // uniform over the block
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const index_t row = p * 64 + lane + 32 * h;
                const float v = s[q][h];
                bool pass = false;
                if (row < a.n) {
                    if (isnan(v)) {
                        atomicMin(&a.flags->nan_query, static_cast<unsigned long long>(q0 + q));
                    } else {
                        const Key key = rank_key(v, static_cast<row_id_t>(row));
                        pass = key > thr[q] && !(n_ex[q] > 0 && is_excluded(ex[q], n_ex[q], static_cast<row_id_t>(row)));
                    }
                }
                const unsigned ballot = __ballot_sync(kFullMask, pass);
                const int added = __popc(ballot);
                if (added == 0) continue;
                Key* qb = buf + q * cap;
                if (count[q] + added > cap) {  // cap >= k + 32: after this the keys fit
                    thr[q] = warp_compact(qb, cap, count[q], static_cast<int>(a.k), lane);
                    count[q] = static_cast<int>(a.k);
                    // Keys now at or below the threshold lose their place.
                    const bool still = pass && rank_key(v, static_cast<row_id_t>(row)) > thr[q];
                    const unsigned again = __ballot_sync(kFullMask, still);
                    if (still) qb[count[q] + __popc(again & ((1u << lane) - 1u))] = rank_key(v, static_cast<row_id_t>(row));
                    count[q] += __popc(again);
                } else {
                    if (pass) qb[count[q] + __popc(ballot & ((1u << lane) - 1u))] = rank_key(v, static_cast<row_id_t>(row));
                    count[q] += added;
                }
                __syncwarp();
            }
        }
    }
    // This warp's best k per query (sorted when it holds more), 0 after its last.
#pragma unroll
    for (int q = 0; q < QT; ++q) {
        if (q0 + q >= a.nq) break;
        Key* qb = buf + q * cap;
        if (count[q] > a.k) {
            warp_compact(qb, cap, count[q], static_cast<int>(a.k), lane);
            count[q] = static_cast<int>(a.k);
        }
        Key* out = a.cand + ((q0 + q) * slots + slot) * a.k;
        for (index_t i = lane; i < a.k; i += 32) out[i] = i < count[q] ? qb[i] : Key{0};
    }
}

// score_keys_kernel: the path for large k (k + 32 > 512): every row's key of
// queries [q0, q0 + nqc) into keys [nqc][n] (0 for excluded rows), then
// merge_top_k_kernel selects. One warp per panel and query.
template <class E>
__global__ void __launch_bounds__(kBlock) score_keys_kernel(ScanArgs a, index_t nqc) {
    if (a.flags->bad) return;
    const int lane = threadIdx.x % 32;
    const index_t panels = ceil_div(a.n, 64);
    const index_t warps = index_t{gridDim.x} * kScanWarps;
    const E* table = static_cast<const E*>(a.panels);
    for (index_t w = blockIdx.x * index_t{kScanWarps} + threadIdx.x / 32; w < panels * nqc; w += warps) {
        const index_t p = w % panels, b = a.q0 + w / panels;
        const row_id_t* ex;
        index_t n_ex;
        excluded_of(a.ex_off, a.ex_ids, a.n_ex, b, ex, n_ex);
        float s[1][2];
        // The query row in global memory, zero beyond d (steps * C may pass d for int8).
        const float* qrow = a.queries + b * a.ldq;
        constexpr int C = Panel<E>::kColsPerStep;
        const E* pp = table + p * 64 * a.cols;
        s[0][0] = s[0][1] = 0.0f;
        for (index_t step = 0; step < a.steps; ++step) {
            float v[2][2];
            Panel<E>::load(pp, step, lane, v);
#pragma unroll
            for (int c = 0; c < C; ++c) {
                const index_t col = step * C + c;
                const float xv = col < a.d ? qrow[col] : 0.0f;
                s[0][0] = fmaf(v[0][c], xv, s[0][0]);
                s[0][1] = fmaf(v[1][c], xv, s[0][1]);
            }
        }
        if (a.scales != nullptr) {
            s[0][0] *= a.scales[p * 64 + lane];
            s[0][1] *= a.scales[p * 64 + lane + 32];
        }
        for (int h = 0; h < 2; ++h) {
            const index_t row = p * 64 + lane + 32 * h;
            if (row >= a.n) continue;
            Key key = 0;
            if (isnan(s[0][h])) atomicMin(&a.flags->nan_query, static_cast<unsigned long long>(b));
            else if (!(n_ex > 0 && is_excluded(ex, n_ex, static_cast<row_id_t>(row))))
                key = rank_key(s[0][h], static_cast<row_id_t>(row));
            a.cand[(b - a.q0) * a.n + row] = key;
        }
    }
}

// merge_top_k_kernel: one block per query over its m candidate keys
// (cand + b * m): the k-th largest key by an 8-pass radix select (8 bits a
// pass, block histogram), then the k keys at or above it collected and each
// placed at its rank (how many keys beat it; equal keys, only possible among
// repeated candidate ids, by collection order). Writes ids [k] and, when
// `scores` is not null, scores [k], best first.
__global__ void __launch_bounds__(kBlock)
    merge_top_k_kernel(const Key* cand, index_t m, index_t k, Key* sel, row_id_t* ids, index_t ldi, float* scores,
                       index_t lds, index_t q_first, const Flags* flags) {
    if (flags->bad) return;
    __shared__ unsigned hist[256];
    __shared__ Key prefix_s;
    __shared__ long long remaining_s;
    __shared__ unsigned long long taken;
    const index_t b = blockIdx.x;
    const Key* keys = cand + b * m;
    Key* chosen = sel + (q_first + b) * k;
    Key prefix = 0, mask = 0;
    long long remaining = k;
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += kBlock) hist[i] = 0;
        __syncthreads();
        for (index_t i = threadIdx.x; i < m; i += kBlock) {
            const Key key = keys[i];
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            long long above = 0;
            int digit = 0;
            for (int dgt = 255; dgt >= 0; --dgt) {
                if (above + hist[dgt] >= remaining) {
                    digit = dgt;
                    break;
                }
                above += hist[dgt];
            }
            prefix_s = prefix | (static_cast<Key>(digit) << shift);
            remaining_s = remaining - above;
        }
        __syncthreads();
        prefix = prefix_s;
        remaining = remaining_s;
        mask |= Key{255} << shift;
        __syncthreads();
    }
    const Key kth = prefix;  // the k-th largest key
    if (threadIdx.x == 0) taken = 0;
    __syncthreads();
    for (index_t i = threadIdx.x; i < m; i += kBlock)  // strictly above: fewer than k of them
        if (keys[i] > kth) chosen[atomicAdd(&taken, 1ull)] = keys[i];
    __syncthreads();
    for (index_t i = threadIdx.x; i < m; i += kBlock)  // then the k-th itself (repeats: as many as fit)
        if (keys[i] == kth) {
            const unsigned long long at = atomicAdd(&taken, 1ull);
            if (at < static_cast<unsigned long long>(k)) chosen[at] = kth;
        }
    __syncthreads();
    for (index_t i = threadIdx.x; i < k; i += kBlock) {
        const Key key = chosen[i];
        index_t rank = 0;
        for (index_t j = 0; j < k; ++j) {
            const Key other = chosen[j];
            rank += other > key || (other == key && j < i);
        }
        ids[(q_first + b) * ldi + rank] = key_id(key);
        if (scores != nullptr) scores[(q_first + b) * lds + rank] = key_score(key);
    }
}

// ============================================================================
// Host side
// ============================================================================

int sm_count() {
    int dev = 0, sms = 0;
    RECBLOCKS_CUDA_CHECK(cudaGetDevice(&dev));
    RECBLOCKS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms;
}

unsigned grid_for(index_t items) { return static_cast<unsigned>(std::max<index_t>(1, min_index(ceil_div(items, kBlock), 1024))); }

template <class T>
std::vector<T> download(cudaStream_t stream, const T* p, index_t n) {
    std::vector<T> h(static_cast<std::size_t>(n));
    if (n > 0)
        RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(h.data(), p, static_cast<std::size_t>(n) * sizeof(T),
                                             cudaMemcpyDeviceToHost, stream));
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream));
    return h;
}

/// Waits for the stream and reads the flags.
Flags read_flags(cudaStream_t stream, const Flags* d_flags) {
    Flags f{};
    RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&f, d_flags, sizeof(Flags), cudaMemcpyDeviceToHost, stream));
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream));
    return f;
}

void init_flags(cudaStream_t stream, Flags* d_flags) {
    const Flags f{0, kNone};
    RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(d_flags, &f, sizeof(Flags), cudaMemcpyHostToDevice, stream));
}

template <class E, int QT>
void launch_scan(cudaStream_t stream, const ScanArgs& a, index_t tiles, unsigned slices) {
    const index_t ldx = a.steps * Panel<E>::kColsPerStep;
    const std::size_t bytes =
        ((QT * ldx * sizeof(float) + 15) / 16) * 16 + std::size_t{kScanWarps} * kBufferKeys * sizeof(Key);
    if (bytes > 48 * 1024)
        RECBLOCKS_CUDA_CHECK(cudaFuncSetAttribute(scan_select_kernel<E, QT>,
                                                  cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    for (index_t t0 = 0; t0 < tiles; t0 += 65535) {  // grid.y limit
        ScanArgs part = a;
        part.q0 = a.q0 + t0 * QT;
        const auto ty = static_cast<unsigned>(min_index(tiles - t0, 65535));
        scan_select_kernel<E, QT><<<dim3(slices, ty, 1), kBlock, bytes, stream>>>(part);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace
}  // namespace cuda_detail

using P = Primitives<backend::Cuda>;
using namespace cuda_detail;

template <class E>
void P::exact_top_k(const B& be, PanelView<E> items, MatrixView<const float> queries, index_t k,
                    VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids, MatrixView<row_id_t> ids,
                    MatrixView<float> scores) {
    constexpr std::string_view op = "ops::exact_top_k";
    const index_t n = items.rows, d = items.dim, nq = queries.rows();
    if (nq == 0) return;
    if (n > index_t{INT_MAX}) throw BackendError(detail::concat(op, ": ", n, " rows exceed the CUDA backend's limit"));
    cudaStream_t stream = be.stream;
    const index_t cols = panel_cols<E>(d), steps = cols / Panel<E>::kColsPerStep;
    const index_t ldq = queries.rows() <= 1 ? d : queries.ld();
    const index_t n_ex = ex_ids.size();
    const index_t* off = ex_offsets.size() == 0 ? nullptr : ex_offsets.data();
    const bool fused = k + 32 <= kBufferKeys;

    // Launch shape of the fused path: QT queries per tile (as many as the
    // buffer allows for this k), slices so that the grid fills the GPU.
    int qt = 1;
    for (int t : {8, 4, 2})
        if (nq >= t && k + 32 <= kBufferKeys / t) {
            qt = t;
            break;
        }
    const index_t tiles = ceil_div(nq, qt);
    const index_t panels = ceil_div(n, 64);
    const index_t want_blocks = index_t{sm_count()} * 6;
    const index_t slices =
        std::max<index_t>(1, std::min(ceil_div(panels, index_t{4} * kScanWarps), ceil_div(want_blocks, tiles)));
    const index_t slots = slices * kScanWarps;
    // The large-k path scores queries in chunks of at most 2^25 keys.
    const index_t chunk = fused ? nq : std::max<index_t>(1, min_index(nq, (index_t{1} << 25) / n));
    const index_t m = fused ? slots * k : n;

    const std::size_t flags_off = 0;
    const std::size_t cand_off = Scratch::round_up(sizeof(Flags));
    const std::size_t cand_bytes = Scratch::round_up(static_cast<std::size_t>((fused ? nq : chunk) * m) * sizeof(Key));
    const std::size_t sel_off = cand_off + cand_bytes;
    Scratch scratch(sel_off + Scratch::round_up(static_cast<std::size_t>(nq * k) * sizeof(Key)), stream);
    auto* flags = scratch.at<Flags>(flags_off);
    Key* cand = scratch.at<Key>(cand_off);
    Key* sel = scratch.at<Key>(sel_off);
    init_flags(stream, flags);

    check_queries_kernel<<<grid_for(nq * d), kBlock, 0, stream>>>(queries.data(), ldq, nq, d, flags);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    if (off != nullptr) {
        check_csr_kernel<<<grid_for(nq), kBlock, 0, stream>>>(off, ex_ids.data(), n_ex, nq, n, k, flags);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    } else if (n_ex > 0) {
        check_shared_list_kernel<<<grid_for(n_ex), kBlock, 0, stream>>>(ex_ids.data(), n_ex, n, flags);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
    const bool shared_list_too_long = off == nullptr && k > n - n_ex;

    ScanArgs a{items.data, items.scales, n, d, cols, steps, queries.data(), ldq, nq, 0, k, off,
               ex_ids.data(), n_ex, cand, slots, flags};
    float* out_scores = scores.empty() ? nullptr : scores.data();
    const index_t lds = scores.empty() ? 0 : (nq <= 1 ? k : scores.ld());
    const index_t ldi = nq <= 1 ? k : ids.ld();
    if (!shared_list_too_long) {
        if (fused) {
            const auto sl = static_cast<unsigned>(slices);
            switch (qt) {
                case 8: launch_scan<E, 8>(stream, a, tiles, sl); break;
                case 4: launch_scan<E, 4>(stream, a, tiles, sl); break;
                case 2: launch_scan<E, 2>(stream, a, tiles, sl); break;
                default: launch_scan<E, 1>(stream, a, tiles, sl); break;
            }
            for (index_t b0 = 0; b0 < nq; b0 += 65535) {
                const index_t nb = min_index(nq - b0, 65535);
                merge_top_k_kernel<<<static_cast<unsigned>(nb), kBlock, 0, stream>>>(
                    cand + b0 * m, m, k, sel, ids.data(), ldi, out_scores, lds, b0, flags);
                RECBLOCKS_CUDA_CHECK_LAUNCH();
            }
        } else {
            for (index_t b0 = 0; b0 < nq; b0 += chunk) {
                const index_t nb = min_index(nq - b0, chunk);
                ScanArgs part = a;
                part.q0 = b0;
                const auto blocks = static_cast<unsigned>(
                    std::max<index_t>(1, min_index(ceil_div(panels * nb, kScanWarps), 65535)));
                score_keys_kernel<E><<<blocks, kBlock, 0, stream>>>(part, nb);
                RECBLOCKS_CUDA_CHECK_LAUNCH();
                for (index_t c0 = 0; c0 < nb; c0 += 65535) {
                    const index_t nc = min_index(nb - c0, 65535);
                    merge_top_k_kernel<<<static_cast<unsigned>(nc), kBlock, 0, stream>>>(
                        cand + c0 * m, m, k, sel, ids.data(), ldi, out_scores, lds, b0 + c0, flags);
                    RECBLOCKS_CUDA_CHECK_LAUNCH();
                }
            }
        }
    }
    const Flags f = read_flags(stream, flags);
    if (f.bad != 0 || shared_list_too_long) {
        // Rebuild the data on the host and raise the host checks' message.
        const auto hq = download(stream, queries.data(), (nq - 1) * ldq + d);
        const auto hoff = download(stream, off, off ? nq + 1 : 0);
        const auto hex = download(stream, ex_ids.data(), n_ex);
        detail::check_exact_top_k_data(op, n, k, matrix_view(hq.data(), nq, d, ldq),
                                       vector_view(hoff.data(), index_t(hoff.size())),
                                       vector_view(hex.data(), index_t(hex.size())));
        throw BackendError(detail::concat(op, ": the device flagged bad input the host checks did not find"));
    }
    if (f.nan_query != kNone)
        throw ValueError(detail::concat(op, ": a score of query ", f.nan_query,
                                        " is NaN (the query times the table overflows)"));
}

// rerank_score_kernel: one warp per (query, candidate): the candidate's row
// times the query, lanes over D, summed by the fixed shuffle tree; its key
// (0 never: candidates are checked first).
__global__ void __launch_bounds__(kBlock)
    rerank_score_kernel(const float* rows, index_t ldr, index_t n, index_t d, const float* q, index_t ldq,
                        const row_id_t* cand, index_t ldc, index_t nq, index_t s, Key* keys, Flags* flags) {
    const int lane = threadIdx.x % 32;
    const index_t warps = index_t{gridDim.x} * kWarps;
    for (index_t w = blockIdx.x * index_t{kWarps} + threadIdx.x / 32; w < nq * s; w += warps) {
        const index_t b = w / s, j = w % s;
        const row_id_t id = cand[b * ldc + j];
        if (id < 0 || id >= n) {
            if (lane == 0) flags->bad = 1;
            continue;
        }
        const float* r = rows + index_t(id) * ldr;
        const float* x = q + b * ldq;
        float acc = 0.0f;
        for (index_t c = lane; c < d; c += 32) acc = fmaf(r[c], x[c], acc);
        acc = warp_allreduce(acc, SumOp{});
        if (lane == 0) {
            if (isnan(acc)) atomicMin(&flags->nan_query, static_cast<unsigned long long>(b));
            keys[b * s + j] = rank_key(acc, id);
        }
    }
}

template <class T>
void P::rerank_top_k(const B& be, MatrixView<const T> rows, MatrixView<const T> queries,
                     MatrixView<const row_id_t> candidates, index_t k, MatrixView<row_id_t> ids, MatrixView<T> scores) {
    static_assert(std::is_same_v<T, float>, "rerank_top_k scores float rows");
    constexpr std::string_view op = "ops::rerank_top_k";
    const index_t nq = queries.rows(), s = candidates.cols(), d = rows.cols();
    if (nq == 0) return;
    cudaStream_t stream = be.stream;
    const std::size_t keys_off = Scratch::round_up(sizeof(Flags));
    const std::size_t sel_off = keys_off + Scratch::round_up(static_cast<std::size_t>(nq * s) * sizeof(Key));
    Scratch scratch(sel_off + Scratch::round_up(static_cast<std::size_t>(nq * k) * sizeof(Key)), stream);
    auto* flags = scratch.at<Flags>(0);
    Key* keys = scratch.at<Key>(keys_off);
    Key* sel = scratch.at<Key>(sel_off);
    init_flags(stream, flags);
    const index_t ldc = nq <= 1 ? s : candidates.ld();
    const index_t ldr = rows.rows() <= 1 ? d : rows.ld();
    const index_t ldq = nq <= 1 ? d : queries.ld();
    const auto blocks = static_cast<unsigned>(std::max<index_t>(1, min_index(ceil_div(nq * s, kWarps), 65535)));
    rerank_score_kernel<<<blocks, kBlock, 0, stream>>>(rows.data(), ldr, rows.rows(), d, queries.data(), ldq,
                                                       candidates.data(), ldc, nq, s, keys, flags);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    for (index_t b0 = 0; b0 < nq; b0 += 65535) {
        const index_t nb = min_index(nq - b0, 65535);
        merge_top_k_kernel<<<static_cast<unsigned>(nb), kBlock, 0, stream>>>(
            keys + b0 * s, s, k, sel, ids.data(), nq <= 1 ? k : ids.ld(), scores.data(), nq <= 1 ? k : scores.ld(),
            b0, flags);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
    const Flags f = read_flags(stream, flags);
    if (f.bad != 0) {
        const auto hc = download(stream, candidates.data(), (nq - 1) * ldc + s);
        detail::check_candidates(op, matrix_view(hc.data(), nq, s, ldc), rows.rows());
        throw BackendError(detail::concat(op, ": the device flagged bad input the host checks did not find"));
    }
    if (f.nan_query != kNone)
        throw ValueError(detail::concat(op, ": a score of query ", f.nan_query,
                                        " is NaN (the query times the table overflows)"));
}

// check_max_sim_kernel: offsets from 0 to `total`, strictly increasing; the query finite.
__global__ void __launch_bounds__(kBlock) check_max_sim_kernel(const index_t* offsets, index_t n, index_t total,
                                                               const float* q, index_t ldq, index_t nq, index_t d,
                                                               Flags* flags) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n + nq * d; i += index_t{gridDim.x} * kBlock) {
        if (i < n) {
            if (offsets[i] >= offsets[i + 1] || (i == 0 && offsets[0] != 0) || (i == n - 1 && offsets[n] != total))
                flags->bad = 1;
        } else {
            const index_t e = i - n;
            if (!isfinite(q[(e / d) * ldq + e % d])) flags->bad = 1;
        }
    }
}

// max_sim_kernel: one warp per item; per query row the best vector (dot
// products by the fixed shuffle tree; the first on ties), the row maxima
// summed in row order, in float.
__global__ void __launch_bounds__(kBlock)
    max_sim_kernel(const float* q, index_t ldq, index_t nq, index_t d, const float* v, index_t ldv,
                   const index_t* offsets, index_t n, float* scores, index_t* argmax, index_t lda, Flags* flags) {
    if (flags->bad) return;
    const int lane = threadIdx.x % 32;
    const index_t warps = index_t{gridDim.x} * kWarps;
    for (index_t i = blockIdx.x * index_t{kWarps} + threadIdx.x / 32; i < n; i += warps) {
        const index_t j0 = offsets[i], j1 = offsets[i + 1];
        float total = 0.0f;
        for (index_t r = 0; r < nq; ++r) {
            float best_s = 0.0f;
            index_t best = -1;
            for (index_t j = j0; j < j1; ++j) {
                float acc = 0.0f;
                for (index_t c = lane; c < d; c += 32) acc = fmaf(q[r * ldq + c], v[j * ldv + c], acc);
                acc = warp_allreduce(acc, SumOp{});
                if (best < 0 || acc > best_s) {
                    best = j;
                    best_s = acc;
                }
            }
            total += best_s;
            if (argmax != nullptr && lane == 0) argmax[i * lda + r] = best;
        }
        if (lane == 0) {
            if (isnan(total)) atomicMin(&flags->nan_query, static_cast<unsigned long long>(i));
            scores[i] = total;
        }
    }
}

template <class T>
void P::max_sim_scores(const B& be, MatrixView<const T> query, MatrixView<const T> vectors,
                       VectorView<const index_t> offsets, VectorView<T> scores, MatrixView<index_t> argmax) {
    static_assert(std::is_same_v<T, float>, "max_sim_scores scores float vectors");
    constexpr std::string_view op = "ops::max_sim_scores";
    const index_t n = offsets.size() - 1, nq = query.rows(), d = query.cols();
    if (n <= 0) return;
    cudaStream_t stream = be.stream;
    Scratch scratch(Scratch::round_up(sizeof(Flags)), stream);
    auto* flags = scratch.at<Flags>(0);
    init_flags(stream, flags);
    const index_t ldq = nq <= 1 ? d : query.ld();
    const index_t ldv = vectors.rows() <= 1 ? d : vectors.ld();
    check_max_sim_kernel<<<grid_for(n + nq * d), kBlock, 0, stream>>>(offsets.data(), n, vectors.rows(),
                                                                       query.data(), ldq, nq, d, flags);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    const auto blocks = static_cast<unsigned>(std::max<index_t>(1, min_index(ceil_div(n, kWarps), 65535)));
    max_sim_kernel<<<blocks, kBlock, 0, stream>>>(query.data(), ldq, nq, d, vectors.data(), ldv, offsets.data(), n,
                                                  scores.data(), argmax.empty() ? nullptr : argmax.data(),
                                                  argmax.empty() ? 0 : (n <= 1 ? nq : argmax.ld()), flags);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    const Flags f = read_flags(stream, flags);
    if (f.bad != 0) {
        const auto hoff = download(stream, offsets.data(), n + 1);
        const auto hq = download(stream, query.data(), (nq - 1) * ldq + d);
        detail::check_max_sim_data(op, matrix_view(hq.data(), nq, d, ldq), vectors.rows(),
                                   vector_view(hoff.data(), n + 1));
        throw BackendError(detail::concat(op, ": the device flagged bad input the host checks did not find"));
    }
    if (f.nan_query != kNone)
        throw ValueError(detail::concat(op, ": the score of item ", f.nan_query,
                                        " is NaN (its vectors hold NaN or the products overflow)"));
}

#define RECBLOCKS_CUDA_INSTANTIATE_EXACT_TOP_K(E)                                                                  \
    template void P::exact_top_k<E>(const backend::Cuda&, PanelView<E>, MatrixView<const float>, index_t,          \
                                    VectorView<const index_t>, VectorView<const row_id_t>, MatrixView<row_id_t>,  \
                                    MatrixView<float>)
RECBLOCKS_CUDA_INSTANTIATE_EXACT_TOP_K(float);
RECBLOCKS_CUDA_INSTANTIATE_EXACT_TOP_K(std::uint16_t);
RECBLOCKS_CUDA_INSTANTIATE_EXACT_TOP_K(std::int8_t);
#undef RECBLOCKS_CUDA_INSTANTIATE_EXACT_TOP_K
template void P::rerank_top_k<float>(const backend::Cuda&, MatrixView<const float>, MatrixView<const float>,
                                     MatrixView<const row_id_t>, index_t, MatrixView<row_id_t>, MatrixView<float>);
template void P::max_sim_scores<float>(const backend::Cuda&, MatrixView<const float>, MatrixView<const float>,
                                       VectorView<const index_t>, VectorView<float>, MatrixView<index_t>);

RECBLOCKS_NAMESPACE_END
