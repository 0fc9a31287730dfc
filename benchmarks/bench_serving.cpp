// Incremental SASRec serving against a full forward, at the shape
// (D = 50, L = 200, 2 blocks, 1 head, N = 9,724: ml-latest-small), positions
// from_oldest with padded keys masked (what the cache needs), batch 1 and 128:
//
//   BM_Serving_FullEncode   SASRec::encode_last on [B, 200] windows of 199 events
//                           (the encoding part of a full forward; no scoring)
//   BM_Serving_Append       IncrementalSASRec::append_batch: one new event per
//                           user, appended at positions 190..198 (the states are
//                           reset, untimed, every 9 appends: manual timing);
//                           rotate > 1 cycles through that many groups of users,
//                           so that each append reads a state from beyond the
//                           core's caches
//   BM_Serving_ScoreTop10   scoring every item and the top 10 from the cached
//                           states: the same work after either encoding
//   BM_Service_Answer       serving::NextItemService::answer() on a batch of B
//                           "events" requests of one new event each (B users
//                           with 150 to 190 events: below max_len), top 10 of
//                           every item with the user's items excluded;
//                           incremental = 1 keeps per-user states, 0 recomputes
//                           every window (the requests are parsed untimed;
//                           manual timing)
//
// Bar: append <= 1/20 of the full encode.
#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "recblocks/models/incremental_sasrec.hpp"
#include "recblocks/serving/next_item_service.hpp"

namespace {

using bench::Be;
constexpr rb::index_t kL = 200, kD = 50, kBlocks = 2, kFirst = 190;

rb::models::SASRecConfig config(rb::index_t n_items) {
    rb::models::SASRecConfig c;
    c.num_items = n_items;
    c.max_len = kL;
    c.d_model = kD;
    c.num_blocks = kBlocks;
    c.heads = 1;
    c.positions = rb::blocks::PositionRows::from_oldest;
    c.mask_padding_keys = true;
    return c;
}

double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

std::vector<rb::row_id_t> history(rb::index_t len, rb::index_t n_items, unsigned seed) {
    std::mt19937 gen(seed);
    std::vector<rb::row_id_t> h(static_cast<std::size_t>(len));
    for (auto& e : h) e = static_cast<rb::row_id_t>(1 + gen() % static_cast<unsigned>(n_items));
    return h;
}

void BM_Serving_FullEncode(benchmark::State& state) {
    const rb::index_t b = state.range(0), n = state.range(1);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    rb::models::SASRec<float> model(config(n), rb::Rng(1));
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{b, kL}});
    rb::Matrix<float> out(rb::Shape<2>{{b, kD}});
    for (rb::index_t u = 0; u < b; ++u) {
        const auto h = history(kL - 1, n, 11 + unsigned(u));
        ids(u, 0) = 0;
        std::copy(h.begin(), h.end(), ids.view().row(u) + 1);
    }
    model.encode_last(be, pool, ids.cview(), out.view());  // warm-up
    for (auto _ : state) {
        model.encode_last(be, pool, ids.cview(), out.view());
        benchmark::ClobberMemory();
    }
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Serving_Append(benchmark::State& state) {
    const rb::index_t b = state.range(0), n = state.range(1), rotate = state.range(3);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    rb::models::SASRec<float> model(config(n), rb::Rng(1));
    rb::models::IncrementalSASRec<float> engine(model);
    // rotate groups of b users, one group per iteration: 1 keeps the states in cache; more make
    // each append read a state that other users' appends have pushed out of the core's caches.
    std::vector<rb::models::SASRecUserState<float>> users;
    std::vector<std::vector<rb::row_id_t>> histories;
    for (rb::index_t u = 0; u < b * rotate; ++u) {
        users.push_back(engine.make_state());
        histories.push_back(history(kFirst, n, 11 + unsigned(u)));
        engine.reset(be, pool, users.back(), histories.back());
    }
    std::vector<std::vector<rb::models::SASRecUserState<float>*>> groups(static_cast<std::size_t>(rotate));
    for (rb::index_t u = 0; u < b * rotate; ++u) groups[std::size_t(u / b)].push_back(&users[std::size_t(u)]);
    const auto next = history(b * 64, n, 5);
    std::vector<rb::row_id_t> items(static_cast<std::size_t>(b), rb::row_id_t{1});
    engine.append_batch(be, pool, groups[0], items);  // warm-up: the scratch is sized once
    engine.reset(be, pool, users[0], histories[0]);
    std::size_t k = 0, g = 0;
    double cpu = 0;
    for (auto _ : state) {
        auto& group = groups[g++ % groups.size()];
        if (group[0]->size() == kL - 1)  // untimed: keeps every append below max_len
            for (rb::index_t u = 0; u < b; ++u) engine.reset(be, pool, *group[std::size_t(u)], histories[std::size_t(u)]);
        for (auto& it : items) it = next[k++ % next.size()];
        const double c0 = thread_cpu_seconds();
        const auto t0 = std::chrono::steady_clock::now();
        engine.append_batch(be, pool, group, items);
        const auto t1 = std::chrono::steady_clock::now();
        cpu += thread_cpu_seconds() - c0;
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    }
    // The calling thread's CPU time per append_batch (all of it on 1 thread): what a loaded
    // machine's wall clock hides. The full forward's is Google Benchmark's CPU column.
    state.counters["cpu_us"] = 1e6 * cpu / double(state.iterations());
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bytes/user"] = double(users[0].bytes());
}

void BM_Serving_ScoreTop10(benchmark::State& state) {
    const rb::index_t b = state.range(0), n = state.range(1);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    rb::models::SASRec<float> model(config(n), rb::Rng(1));
    rb::models::IncrementalSASRec<float> engine(model);
    std::vector<rb::models::SASRecUserState<float>> users;
    std::vector<const rb::models::SASRecUserState<float>*> batch;
    for (rb::index_t u = 0; u < b; ++u) {
        users.push_back(engine.make_state());
        engine.reset(be, pool, users.back(), history(kFirst, n, 11 + unsigned(u)));
    }
    for (auto& s : users) batch.push_back(&s);
    rb::Matrix<rb::row_id_t> top(rb::Shape<2>{{b, 10}});
    rb::Matrix<float> top_s(top.shape());
    engine.top_k(be, batch, 10, top.view(), top_s.view());  // warm-up
    for (auto _ : state) {
        engine.top_k(be, batch, 10, top.view(), top_s.view());
        benchmark::ClobberMemory();
    }
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Service_Answer(benchmark::State& state) {
    const rb::index_t b = state.range(0), n = state.range(1);
    const bool incremental = state.range(3) != 0;
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    rb::serving::ModelScorer<rb::models::AnySASRec<float>, Be> scorer(be, pool, config(n), rb::models::NormKind::query);
    std::vector<std::int64_t> identity(static_cast<std::size_t>(n + 1));
    for (std::size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<std::int64_t>(i);
    const rb::io::ItemIdMap items(identity);
    rb::serving::NextItemService service(
        scorer, items, {.cache_capacity = 1024, .max_batch = static_cast<std::size_t>(b), .incremental = incremental});
    if (service.incremental() != incremental) {
        state.SkipWithError("the service did not take the asked mode");
        return;
    }
    std::vector<rb::serving::ServiceJob> jobs(static_cast<std::size_t>(b));
    std::vector<rb::serving::ServiceJob*> ptrs;
    for (auto& j : jobs) ptrs.push_back(&j);
    auto send = [&](auto&& line_of) {  // one request per user, answered as one batch; returns answer()'s seconds
        for (rb::index_t u = 0; u < b; ++u)
            if (!service.prepare(line_of(u), jobs[std::size_t(u)])) throw std::runtime_error(jobs[std::size_t(u)].response);
        const auto t0 = std::chrono::steady_clock::now();
        service.answer(ptrs);
        const auto t1 = std::chrono::steady_clock::now();
        for (auto& j : jobs)
            if (j.failed) throw std::runtime_error(j.response);
        return std::chrono::duration<double>(t1 - t0).count();
    };
    auto histories = [&] {  // untimed: every user back to kFirst - 40 events
        send([&](rb::index_t u) {
            std::string line = "{\"user\": " + std::to_string(u) + ", \"history\": [";
            const auto h = history(kFirst - 40, n, 11 + unsigned(u));
            for (std::size_t i = 0; i < h.size(); ++i) line += (i ? ", " : "") + std::to_string(h[i]);
            return line + "]}";
        });
    };
    const auto next = history(b * 64, n, 5);
    std::size_t k = 0;
    int appended = 0;
    histories();
    send([&](rb::index_t u) { return "{\"user\": " + std::to_string(u) + ", \"events\": [1]}"; });  // warm-up
    for (auto _ : state) {
        if (++appended == 40) {  // every window stays below max_len
            histories();
            appended = 0;
        }
        state.SetIterationTime(send([&](rb::index_t u) {
            return "{\"user\": " + std::to_string(u) + ", \"events\": [" + std::to_string(next[k++ % next.size()]) + "]}";
        }));
    }
    state.counters["events/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bytes/user"] = double(service.bytes_per_user());
}

void Shapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "N", "threads"});
    for (int threads : {1, 2})
        for (int b : {1, 128}) bm->Args({b, 9724, threads});
}
void AppendShapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "N", "threads", "rotate"});
    for (int threads : {1, 2}) {
        bm->Args({1, 9724, threads, 1});
        bm->Args({1, 9724, threads, 512});  // 512 users' states (82 MB): read from beyond the core's caches
        bm->Args({128, 9724, threads, 1});
    }
}

void ServiceShapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "N", "threads", "incremental"});
    for (int threads : {1, 2})
        for (int b : {1, 32})
            for (int inc : {0, 1}) bm->Args({b, 9724, threads, inc});
}

BENCHMARK(BM_Serving_FullEncode)->Apply(Shapes)->UseRealTime();
BENCHMARK(BM_Service_Answer)->Apply(ServiceShapes)->UseManualTime();
BENCHMARK(BM_Serving_Append)->Apply(AppendShapes)->UseManualTime();
BENCHMARK(BM_Serving_ScoreTop10)->Apply(Shapes)->UseRealTime();

}  // namespace
