// Serving allocates nothing per call after warm-up: SASRec::score_all and
// top-k, and IncrementalSASRec's appends (single, batched, through a window
// rebuild), candidates and top-k, on 1 and 2 threads, counted by interposing glibc's allocator (every
// operator new, std::aligned_alloc and Eigen allocation goes through these).
// Not under AddressSanitizer, which owns malloc itself.
#include <catch2/catch.hpp>

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)

#include <atomic>
#include <cstddef>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/models/incremental_sasrec.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/ops/top_k.hpp"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<long> g_allocations{0};
std::atomic<bool> g_counting{false};
inline void count() {
    if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
    count();
    return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t s) {
    count();
    return __libc_calloc(n, s);
}
void* realloc(void* p, std::size_t n) {
    count();
    return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
    count();
    return __libc_memalign(a, n);
}
void* memalign(std::size_t a, std::size_t n) {
    count();
    return __libc_memalign(a, n);
}
int posix_memalign(void** p, std::size_t a, std::size_t n) {
    count();
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;  // ENOMEM
}
}

using namespace recblocks;

TEST_CASE("SASRec serving allocates nothing per call after warm-up", "[models][sasrec][memory]") {
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        const backend::Cpu<isa::Dispatch> cpu{&pool};
        models::SASRecConfig cfg;
        cfg.num_items = 500;
        cfg.max_len = 50;
        cfg.d_model = 32;
        cfg.heads = 2;
        models::SASRec<float> model(cfg, Rng(1));
        Matrix<row_id_t> ids(Shape<2>{{16, 50}}), top(Shape<2>{{16, 10}});
        for (index_t i = 0; i < ids.numel(); ++i) ids.data()[i] = static_cast<row_id_t>(i % 7 == 0 ? 0 : 1 + i % 500);
        Matrix<float> scores(Shape<2>{{16, 501}}), top_s(top.shape());
        // Each pool thread sizes its own scratch the first time it runs a piece of work.
        for (int warm = 0; warm < 10; ++warm) {
            model.score_all(cpu, pool, ids.cview(), scores.view());
            ops::top_k_rows(cpu, scores.cview(), 10, top.view(), top_s.view());
        }
        // Pool threads size their own scratch the first time they run a kind of
        // work, which under a busy scheduler can happen after the warm-up: so
        // count rounds of 5 calls until one round allocates nothing, and require
        // that the total stays bounded (it would grow by >= 1 per call otherwise).
        long total = 0;
        bool clean_round = false;
        for (int round = 0; round < 10 && !clean_round; ++round) {
            g_allocations = 0;
            g_counting = true;
            for (int call = 0; call < 5; ++call) {
                model.score_all(cpu, pool, ids.cview(), scores.view());
                ops::top_k_rows(cpu, scores.cview(), 10, top.view(), top_s.view());
            }
            g_counting = false;
            total += g_allocations.load();
            clean_round = g_allocations.load() == 0;
        }
        INFO(threads << " thread(s), " << total << " allocations before a clean round");
        CHECK(clean_round);
        CHECK(total < 16);
    }
}

TEST_CASE("Incremental SASRec serving allocates nothing per append after warm-up", "[models][sasrec][incremental][memory]") {
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        const backend::Cpu<isa::Dispatch> cpu{&pool};
        models::SASRecConfig cfg;
        cfg.num_items = 500;
        cfg.max_len = 20;
        cfg.d_model = 32;
        cfg.heads = 2;
        cfg.positions = blocks::PositionRows::from_oldest;
        cfg.mask_padding_keys = true;
        models::SASRec<float> model(cfg, Rng(1));
        models::IncrementalSASRec<float> engine(model);
        std::vector<models::SASRecUserState<float>> users;
        for (int u = 0; u < 8; ++u) users.push_back(engine.make_state());
        std::vector<models::SASRecUserState<float>*> batch;
        std::vector<const models::SASRecUserState<float>*> cbatch;
        for (auto& s : users) {
            batch.push_back(&s);
            cbatch.push_back(&s);
        }
        std::vector<row_id_t> items(8), candidates(16);
        Matrix<row_id_t> top(Shape<2>{{8, 10}});
        Matrix<float> top_s(top.shape()), cand_out(Shape<2>{{16, 32}});
        row_id_t next = 1;
        auto step = [&] {  // one batch of 8, one single append, candidates, top-k
            for (auto& it : items) it = next = static_cast<row_id_t>(1 + next * 7 % 500);
            engine.append_batch(cpu, pool, batch, items);
            engine.append(cpu, pool, users[0], next);
            for (auto& c : candidates) c = next = static_cast<row_id_t>(1 + next * 7 % 500);
            engine.encode_candidates(cpu, pool, users[1], candidates, cand_out.view());
            engine.top_k(cpu, cbatch, 10, top.view(), top_s.view());
        };
        // Warm-up: past max_len, so full windows have been rebuilt (the largest call).
        for (int warm = 0; warm < 30; ++warm) step();
        long total = 0;
        bool clean_round = false;
        for (int round = 0; round < 10 && !clean_round; ++round) {
            g_allocations = 0;
            g_counting = true;
            for (int call = 0; call < 5; ++call) step();
            g_counting = false;
            total += g_allocations.load();
            clean_round = g_allocations.load() == 0;
        }
        INFO(threads << " thread(s), " << total << " allocations before a clean round");
        CHECK(clean_round);
        CHECK(total < 16);
    }
}

#endif
