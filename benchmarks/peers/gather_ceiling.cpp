// Per-core ceiling of a random-row gather from DRAM (DARE search stage, docs/dare.md).
// Standalone, not part of the build:
//
//   g++ -O2 -march=native -std=c++20 -pthread benchmarks/peers/gather_ceiling.cpp -o /tmp/gather_ceiling
//   /tmp/gather_ceiling [--quick] [--summary | --blocks | --rows-in-flight]
//
// No mode: the sweep of distance x hint, line order, rows per iteration, row
// size, sorted windows and 2 threads; --rows-in-flight: 4/16/32 rows per
// iteration x distance; --rows64: the same and blocks for 64 B rows; --blocks: prefetches issued in blocks of P rows;
// --summary: the per-row scheme vs blocks, 64 and 256 B rows, 1 and 2 threads.
//
// Sums rows picked uniformly at random (by id) from a 256 MiB table on 2 MiB
// transparent huge pages, and prints GB/s of *useful* bytes (row bytes only;
// the 4 B ids are not counted) next to a sequential 256 MiB sum measured in
// the same process. Variants: row size (64..512 B), software prefetch distance
// (rows ahead), hint (nta/t2/t1/t0/none), the order in which a row's cache
// lines are prefetched (to see whether the L2 stream prefetcher wastes DRAM
// bandwidth on lines past each row), rows per iteration, ids sorted within
// windows, and 2 threads for reference. Each figure is the median of 5 runs.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

typedef float v16f __attribute__((vector_size(64), aligned(64)));

namespace {

constexpr std::size_t kTableBytes = std::size_t{256} << 20;

enum Hint { kNta = 0, kT2 = 1, kT1 = 2, kT0 = 3, kNone = 4 };
enum Order { kAsc = 0, kDesc = 1, kEvenOdd = 2, kFirstOnly = 3, kMidOut = 4 };
const char* hint_name[] = {"nta", "t2", "t1", "t0", "none"};
const char* order_name[] = {"asc", "desc", "even-odd", "first-only", "mid-out"};

template <int H>
inline void pf(const char* p) {
    if constexpr (H == kNta) __builtin_prefetch(p, 0, 0);
    if constexpr (H == kT2) __builtin_prefetch(p, 0, 1);
    if constexpr (H == kT1) __builtin_prefetch(p, 0, 2);
    if constexpr (H == kT0) __builtin_prefetch(p, 0, 3);
}

// Prefetch the L = RB/64 lines of one row in the given order.
template <int RB, int H, int O>
inline void prefetch_row(const char* row) {
    constexpr int L = RB / 64;
    if constexpr (H == kNone) return;
    if constexpr (O == kAsc) {
        for (int l = 0; l < L; ++l) pf<H>(row + 64 * l);
    } else if constexpr (O == kDesc) {
        for (int l = L - 1; l >= 0; --l) pf<H>(row + 64 * l);
    } else if constexpr (O == kEvenOdd) {
        for (int l = 0; l < L; l += 2) pf<H>(row + 64 * l);
        for (int l = 1; l < L; l += 2) pf<H>(row + 64 * l);
    } else if constexpr (O == kFirstOnly) {
        pf<H>(row);
    } else {  // middle out: L/2, L/2-1, L/2+1, ...
        for (int s = 0; s < L; ++s) {
            const int l = (L / 2) + ((s & 1) ? -(s + 1) / 2 : s / 2);
            pf<H>(row + 64 * l);
        }
    }
}

// Sum of n rows (ids padded by dist + U valid entries so the prefetch needs no bounds check).
template <int RB, int U, int H, int O>
__attribute__((noinline)) float gather_sum(const char* table, const std::uint32_t* ids, std::size_t n,
                                           std::size_t dist) {
    constexpr int L = RB / 64;
    v16f a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (std::size_t j = 0; j < n; j += U) {
        for (int r = 0; r < U; ++r) prefetch_row<RB, H, O>(table + std::size_t(ids[j + dist + r]) * RB);
        for (int r = 0; r < U; r += 4) {
            const v16f* b0 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + r]) * RB);
            const v16f* b1 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + r + 1]) * RB);
            const v16f* b2 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + r + 2]) * RB);
            const v16f* b3 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + r + 3]) * RB);
            for (int l = 0; l < L; ++l) {
                a0 += b0[l];
                a1 += b1[l];
                a2 += b2[l];
                a3 += b3[l];
            }
        }
    }
    const v16f s = (a0 + a1) + (a2 + a3);
    float r = 0;
    for (int i = 0; i < 16; ++i) r += s[i];
    return r;
}

// The same sum with prefetches issued in blocks: before the rows [j, j + P) are
// summed, the P rows `dist` ahead are prefetched back to back (P, dist at run time).
template <int RB, int H>
__attribute__((noinline)) float gather_sum_blocked(const char* table, const std::uint32_t* ids, std::size_t n,
                                                   std::size_t dist, std::size_t P) {
    v16f a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (std::size_t b = 0; b < n; b += P) {
        for (std::size_t r = b + dist; r < b + dist + P; ++r) prefetch_row<RB, H, kAsc>(table + std::size_t(ids[r]) * RB);
        for (std::size_t j = b; j < b + P; j += 4) {
            const v16f* b0 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j]) * RB);
            const v16f* b1 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + 1]) * RB);
            const v16f* b2 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + 2]) * RB);
            const v16f* b3 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + 3]) * RB);
            for (int l = 0; l < RB / 64; ++l) {
                a0 += b0[l];
                a1 += b1[l];
                a2 += b2[l];
                a3 += b3[l];
            }
        }
    }
    const v16f s = (a0 + a1) + (a2 + a3);
    float r = 0;
    for (int i = 0; i < 16; ++i) r += s[i];
    return r;
}

__attribute__((noinline)) float read_sum(const float* __restrict x, std::size_t n) {
    v16f s0 = {}, s1 = {}, s2 = {}, s3 = {};
    const v16f* v = reinterpret_cast<const v16f*>(x);
    for (std::size_t i = 0; i + 4 <= n / 16; i += 4) {
        s0 += v[i];
        s1 += v[i + 1];
        s2 += v[i + 2];
        s3 += v[i + 3];
    }
    const v16f s = (s0 + s1) + (s2 + s3);
    float r = 0;
    for (int j = 0; j < 16; ++j) r += s[j];
    return r;
}

using GatherFn = float (*)(const char*, const std::uint32_t*, std::size_t, std::size_t);

template <int RB, int U>
GatherFn pick3(int h, int o) {
#define RB_O(H)                                               \
    switch (o) {                                              \
        case kAsc: return &gather_sum<RB, U, H, kAsc>;        \
        case kDesc: return &gather_sum<RB, U, H, kDesc>;      \
        case kEvenOdd: return &gather_sum<RB, U, H, kEvenOdd>; \
        case kFirstOnly: return &gather_sum<RB, U, H, kFirstOnly>; \
        default: return &gather_sum<RB, U, H, kMidOut>;       \
    }
    switch (h) {
        case kNta: RB_O(kNta)
        case kT2: RB_O(kT2)
        case kT1: RB_O(kT1)
        case kT0: RB_O(kT0)
        default: return &gather_sum<RB, U, kNone, kAsc>;
    }
#undef RB_O
}
template <int RB>
GatherFn pick2(int u, int h, int o) {
    return u == 4 ? pick3<RB, 4>(h, o) : u == 8 ? pick3<RB, 8>(h, o) : u == 16 ? pick3<RB, 16>(h, o) : pick3<RB, 32>(h, o);
}
GatherFn pick(int rb, int u, int h, int o) {
    switch (rb) {
        case 64: return pick2<64>(u, h, o);
        case 128: return pick2<128>(u, h, o);
        case 256: return pick2<256>(u, h, o);
        default: return pick2<512>(u, h, o);
    }
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int g_reps = 5;
char* g_table = nullptr;
float g_sink = 0;

double seq_gbs() {
    std::vector<double> r;
    for (int k = 0; k < g_reps; ++k) {
        const double t = now();
        g_sink += read_sum(reinterpret_cast<const float*>(g_table), kTableBytes / 4);
        r.push_back(kTableBytes / (now() - t) / 1e9);
    }
    return median(r);
}

struct Variant {
    int rb = 256, u = 4, hint = kT1, order = kAsc;
    std::size_t dist = 32, sort_window = 0;
    int threads = 1;
    std::size_t block = 0;  // > 0: gather_sum_blocked with this many rows per prefetch block (256 B rows)
};

// The ids for one variant: enough rows for ~512 MiB of useful bytes per run.
std::vector<std::uint32_t> make_ids(const Variant& v, std::size_t n) {
    const std::size_t rows = kTableBytes / v.rb;
    std::mt19937 gen(5);
    std::uniform_int_distribution<std::uint32_t> pick(0, std::uint32_t(rows - 1));
    std::vector<std::uint32_t> ids(n + 2048);
    for (auto& i : ids) i = pick(gen);
    if (v.sort_window > 1)
        for (std::size_t s = 0; s < n; s += v.sort_window)
            std::sort(ids.begin() + s, ids.begin() + std::min(n, s + v.sort_window));
    return ids;
}

double run(const Variant& v, std::size_t useful_bytes) {
    const std::size_t n = useful_bytes / v.rb / 512 * 512;
    const auto ids = make_ids(v, n);
    GatherFn fn = pick(v.rb, v.u, v.hint, v.order);
    static std::size_t block;
    block = v.block;
    if (v.block)
        fn = v.rb == 64 ? (v.hint == kT2 ? +[](const char* t, const std::uint32_t* i, std::size_t m, std::size_t d) {
            return gather_sum_blocked<64, kT2>(t, i, m, d, block);
        }
                                          : +[](const char* t, const std::uint32_t* i, std::size_t m, std::size_t d) {
                                                return gather_sum_blocked<64, kT1>(t, i, m, d, block);
                                            })
                        : (v.hint == kT2 ? +[](const char* t, const std::uint32_t* i, std::size_t m, std::size_t d) {
            return gather_sum_blocked<256, kT2>(t, i, m, d, block);
        }
                                          : +[](const char* t, const std::uint32_t* i, std::size_t m, std::size_t d) {
                                                return gather_sum_blocked<256, kT1>(t, i, m, d, block);
                                            });
    std::vector<double> r;
    for (int k = 0; k < g_reps; ++k) {
        const double t = now();
        if (v.threads == 1) {
            g_sink += fn(g_table, ids.data(), n, v.dist);
        } else {
            const std::size_t half = n / 2 / 512 * 512;
            float s1 = 0;
            std::thread th([&] { s1 = fn(g_table, ids.data() + half, n - half, v.dist); });
            g_sink += fn(g_table, ids.data(), half, v.dist);
            th.join();
            g_sink += s1;
        }
        r.push_back(double(n) * v.rb / (now() - t) / 1e9);
    }
    return median(r);
}

void report(const Variant& v, double gbs, double seq) {
    if (v.block) std::printf("block %3zu ", v.block);
    std::printf("rb %3d  rows/iter %2d  dist %3zu  hint %-4s  order %-10s  sort %5zu  threads %d  %6.2f GB/s  %5.1f %%\n",
                v.rb, v.u, v.dist, hint_name[v.hint], order_name[v.order], v.sort_window, v.threads, gbs,
                100 * gbs / seq);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    for (int a = 1; a < argc; ++a) quick = quick || std::strcmp(argv[a], "--quick") == 0;
    if (quick) g_reps = 3;
    const std::size_t useful = quick ? (std::size_t{256} << 20) : (std::size_t{512} << 20);
    g_table = static_cast<char*>(std::aligned_alloc(std::size_t{2} << 20, kTableBytes));
    madvise(g_table, kTableBytes, MADV_HUGEPAGE);  // before the first touch
    {
        std::mt19937 gen(3);
        float* f = reinterpret_cast<float*>(g_table);
        for (std::size_t i = 0; i < kTableBytes / 4; ++i) f[i] = float(gen() & 0xff);
    }
    const double seq0 = seq_gbs();
    std::printf("sequential read (256 MiB sum, 1 thread): %.2f GB/s\n", seq0);
    auto go = [&](const Variant& v) { report(v, run(v, useful), seq0); };

    if (argc > 1 && std::strcmp(argv[argc - 1], "--rows-in-flight") == 0) {
        std::printf("\n# 256 B rows: rows per iteration x distance x hint\n");
        for (int u : {4, 16, 32})
            for (int h : {kT1, kT2})
                for (std::size_t d : {16, 32, 64, 128}) {
                    Variant v;
                    v.u = u;
                    v.hint = h;
                    v.dist = d;
                    go(v);
                }
        for (std::size_t d : {32, 64}) {
            Variant v;
            v.u = 16;
            v.dist = d;
            v.threads = 2;
            go(v);
        }
        std::printf("\nsequential read again: %.2f GB/s (sink %g)\n", seq_gbs(), double(g_sink));
        return 0;
    }
    if (argc > 1 && std::strcmp(argv[argc - 1], "--rows64") == 0) {
        std::printf("\n# 64 B rows (one line): rows per iteration x distance, then blocks of P rows\n");
        for (int u : {4, 16, 32})
            for (std::size_t d : {16, 32, 64}) {
                Variant v;
                v.rb = 64;
                v.u = u;
                v.dist = d;
                go(v);
            }
        for (std::size_t p : {16, 32, 64, 128})
            for (int h : {kT1, kT2}) {
                Variant v;
                v.rb = 64;
                v.block = p;
                v.dist = p;
                v.hint = h;
                go(v);
            }
        std::printf("\nsequential read again: %.2f GB/s (sink %g)\n", seq_gbs(), double(g_sink));
        return 0;
    }
    if (argc > 1 && std::strcmp(argv[argc - 1], "--summary") == 0) {
        std::printf("\n# summary: per-row prefetch (4 rows/iter, 32 ahead) vs blocks of P rows (P ahead), t1\n");
        for (int rb : {64, 256})
            for (int threads : {1, 2}) {
                Variant v;
                v.rb = rb;
                v.threads = threads;
                go(v);
                for (std::size_t p : {64, 128, 256}) {
                    if (threads == 2 && p != 128) continue;
                    v.block = p;
                    v.dist = p;
                    go(v);
                }
            }
        std::printf("\nsequential read again: %.2f GB/s (sink %g)\n", seq_gbs(), double(g_sink));
        return 0;
    }
    if (argc > 1 && std::strcmp(argv[argc - 1], "--blocks") == 0) {
        std::printf("\n# 256 B rows, prefetches issued in blocks of P rows, dist rows ahead\n");
        for (std::size_t p : {16, 32, 64, 128, 256})
            for (std::size_t m : {1, 2, 4}) {
                if (p * m > 1024) continue;
                for (int h : {kT1, kT2}) {
                    Variant v;
                    v.block = p;
                    v.dist = p * m;
                    v.hint = h;
                    go(v);
                }
            }
        std::printf("\nsequential read again: %.2f GB/s (sink %g)\n", seq_gbs(), double(g_sink));
        return 0;
    }
    std::printf("\n# today's kernel shape: 256 B rows, 4 rows/iter, t1, 32 ahead; distance x hint\n");
    for (int h : {kNta, kT2, kT1, kT0}) {
        for (std::size_t d : {8, 16, 32, 64, 128}) {
            Variant v;
            v.hint = h;
            v.dist = d;
            go(v);
        }
    }
    {
        Variant v;
        v.hint = kNone;
        v.dist = 0;
        go(v);
    }
    std::printf("\n# line order within a row (t1)\n");
    for (int o : {kAsc, kDesc, kEvenOdd, kMidOut, kFirstOnly})
        for (std::size_t d : {16, 32, 64}) {
            Variant v;
            v.order = o;
            v.dist = d;
            go(v);
        }
    std::printf("\n# rows per iteration (t1)\n");
    for (int u : {4, 8, 16})
        for (std::size_t d : {16, 32, 64}) {
            Variant v;
            v.u = u;
            v.dist = d;
            go(v);
        }
    std::printf("\n# row size (t1, asc)\n");
    for (int rb : {64, 128, 256, 512})
        for (std::size_t d : {16, 32, 64, 128}) {
            Variant v;
            v.rb = rb;
            v.dist = d;
            go(v);
        }
    std::printf("\n# ids sorted within windows (t1, 32 ahead)\n");
    for (std::size_t w : {64, 1024, 10000}) {
        Variant v;
        v.sort_window = w;
        go(v);
    }
    std::printf("\n# 2 threads (t1)\n");
    for (std::size_t d : {16, 32, 64}) {
        Variant v;
        v.threads = 2;
        v.dist = d;
        go(v);
    }
    std::printf("\nsequential read again: %.2f GB/s (sink %g)\n", seq_gbs(), double(g_sink));
    return 0;
}
