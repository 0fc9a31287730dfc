#pragma once
// ThreadPool and parallel_for / parallel_reduce.
//
// Work is cut into chunks whose boundaries depend only on the range and the
// grain, never on the thread count; parallel_reduce combines the per-chunk
// partial results in chunk order. So a reduction gives bit-identical results
// on 1, 2 or 64 threads, and so does everything built on it.
//
// The calling thread takes part in the work. A parallel_for issued from
// inside a task runs serially in that task (no nested oversubscription).
//
// Waiting spins before it sleeps: a worker that finished a job watches for
// the next one for spin_us() microseconds (RECBLOCKS_SPIN_US, default 100;
// 0 = sleep at once), and the caller watches its job's last chunks finish
// for as long, yielding the core between looks. Waking a sleeping thread
// costs tens of microseconds, more than the work of one sequence's small
// products; a spinning one starts within a microsecond, which is what lets
// two threads share the work of a single user (batch 1).
#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <chrono>
#include <thread>
#include <type_traits>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/shape.hpp"

RECBLOCKS_NAMESPACE_BEGIN

class ThreadPool {
public:
    /// A pool of `threads` workers in total, the calling thread included
    /// (so ThreadPool(1) runs everything on the caller).
    explicit ThreadPool(int threads) {
        RECBLOCKS_CHECK_VALUE(threads >= 1, "ThreadPool: thread count must be >= 1, got ", threads);
        try {
            for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
        } catch (const std::exception& e) {
            shutdown();  // join the workers already started, or their destructors would terminate
            throw BackendError(detail::concat("ThreadPool: could only start ", workers_.size() + 1, " of ", threads,
                                              " threads: ", e.what()));
        }
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() { shutdown(); }

    /// Threads that share work, the caller included.
    [[nodiscard]] int size() const { return static_cast<int>(workers_.size()) + 1; }

    /// The process-wide pool: RECBLOCKS_NUM_THREADS threads if set, else one
    /// per hardware thread. Created on first use.
    static ThreadPool& global() {
        static ThreadPool pool(default_thread_count());
        return pool;
    }

    static int default_thread_count() {
        if (const char* env = std::getenv("RECBLOCKS_NUM_THREADS")) {
            const std::string_view text(env);
            int n = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
            RECBLOCKS_CHECK_VALUE(ec == std::errc() && end == text.data() + text.size() && n >= 1 && n <= 4096,
                                  "RECBLOCKS_NUM_THREADS must be an integer in [1, 4096], got '", env, "'");
            return n;
        }
        return std::max(1u, std::thread::hardware_concurrency());
    }
    /// How long a waiting thread spins before it sleeps: RECBLOCKS_SPIN_US
    /// (an integer in [0, 100000]) if set, else 100 microseconds.
    static std::chrono::microseconds spin_us() {
        static const std::chrono::microseconds spin = [] {
            int us = 100;
            if (const char* env = std::getenv("RECBLOCKS_SPIN_US")) {
                const std::string_view text(env);
                const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), us);
                RECBLOCKS_CHECK_VALUE(ec == std::errc() && end == text.data() + text.size() && us >= 0 && us <= 100000,
                                      "RECBLOCKS_SPIN_US must be an integer in [0, 100000], got '", env, "'");
            }
            return std::chrono::microseconds(us);
        }();
        return spin;
    }

    /// Calls `task(c)` for every chunk c in [0, chunks), spread over the pool,
    /// and returns when all are done. If tasks throw, the exception of the
    /// lowest-numbered failing chunk is rethrown here.
    template <class Task>
    void run(index_t chunks, Task&& task) {
        if (chunks <= 0) return;
        if (chunks == 1 || workers_.empty() || in_task()) {
            for (index_t c = 0; c < chunks; ++c) task(c);
            return;
        }
        std::unique_lock job_lock(job_mutex_);  // one job at a time per pool
        using TaskT = std::remove_reference_t<Task>;
        Job job;
        job.chunks = chunks;
        job.context = const_cast<void*>(static_cast<const void*>(&task));
        job.invoke = [](void* ctx, index_t c) { (*static_cast<TaskT*>(ctx))(c); };
        {
            std::lock_guard lock(mutex_);
            job_ = &job;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();  // no system call when every worker is spinning
        work_on(job);
        spin_until([&] { return job.active.load(std::memory_order_acquire) == 0; });
        {
            std::unique_lock lock(mutex_);
            done_.wait(lock, [&] { return job.active == 0; });
            job_ = nullptr;
        }
        if (job.error) std::rethrow_exception(job.error);
    }

private:
    void shutdown() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
    }

    struct Job {
        index_t chunks = 0;
        std::atomic<index_t> next{0};
        void* context = nullptr;
        void (*invoke)(void*, index_t) = nullptr;
        std::atomic<int> active{0};  // workers inside work_on (changed under mutex_, read by the spinning caller)
        std::mutex error_mutex;
        index_t error_chunk = -1;
        std::exception_ptr error;
    };

    static bool& in_task() {
        thread_local bool flag = false;
        return flag;
    }

    static void work_on(Job& job) {
        const bool was = in_task();
        in_task() = true;
        for (index_t c; (c = job.next.fetch_add(1, std::memory_order_relaxed)) < job.chunks;) {
            try {
                job.invoke(job.context, c);
            } catch (...) {
                std::lock_guard lock(job.error_mutex);
                if (!job.error || c < job.error_chunk) {
                    job.error = std::current_exception();
                    job.error_chunk = c;
                }
            }
        }
        in_task() = was;
    }

    /// Spins (yielding the core between looks) until done() or spin_us() has passed.
    template <class Done>
    static void spin_until(Done&& done) {
        const auto spin = spin_us();
        if (spin.count() == 0 || done()) return;
        const auto until = std::chrono::steady_clock::now() + spin;
        while (!done() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    }

    void worker_loop() {
        std::size_t seen = 0;
        for (;;) {
            Job* job = nullptr;
            spin_until([&] {
                return generation_.load(std::memory_order_acquire) != seen || stopping_.load(std::memory_order_relaxed);
            });
            {
                std::unique_lock lock(mutex_);
                if (!stopping_ && !job_ && generation_ != seen) {  // that job finished without us: spin on
                    seen = generation_;
                    continue;
                }
                wake_.wait(lock, [&] { return stopping_ || (job_ && generation_ != seen); });
                if (stopping_) return;
                seen = generation_;
                job = job_;
                job->active.fetch_add(1, std::memory_order_relaxed);
            }
            work_on(*job);
            {
                std::lock_guard lock(mutex_);
                job->active.fetch_sub(1, std::memory_order_release);
            }
            done_.notify_all();
        }
    }

    std::vector<std::thread> workers_;
    std::mutex job_mutex_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    Job* job_ = nullptr;
    std::atomic<std::size_t> generation_{0};  // changed under mutex_; read by spinning workers
    std::atomic<bool> stopping_{false};
};

/// Number of chunks [begin, end) is cut into with chunks of `grain` elements.
inline index_t chunk_count(index_t begin, index_t end, index_t grain) {
    return end > begin ? (end - begin + grain - 1) / grain : 0;
}

/// Calls `body(chunk_begin, chunk_end)` over [begin, end) in chunks of `grain`.
template <class Body>
void parallel_for(ThreadPool& pool, index_t begin, index_t end, index_t grain, Body&& body) {
    RECBLOCKS_CHECK_VALUE(grain >= 1, "parallel_for: grain must be >= 1, got ", grain);
    const index_t chunks = chunk_count(begin, end, grain);
    pool.run(chunks, [&](index_t c) {
        const index_t b = begin + c * grain;
        body(b, std::min(end, b + grain));
    });
}

/// Deterministic reduction: `map(chunk_begin, chunk_end)` gives a partial
/// result per chunk of `grain`; partials are folded left to right with
/// `combine`, starting from `init`. Same result for every thread count.
template <class T, class Map, class Combine>
T parallel_reduce(ThreadPool& pool, index_t begin, index_t end, index_t grain, T init, Map&& map,
                  Combine&& combine) {
    RECBLOCKS_CHECK_VALUE(grain >= 1, "parallel_reduce: grain must be >= 1, got ", grain);
    const index_t chunks = chunk_count(begin, end, grain);
    std::vector<T> partial(static_cast<std::size_t>(chunks));
    pool.run(chunks, [&](index_t c) {
        const index_t b = begin + c * grain;
        partial[static_cast<std::size_t>(c)] = map(b, std::min(end, b + grain));
    });
    T acc = std::move(init);
    for (auto& p : partial) acc = combine(std::move(acc), std::move(p));
    return acc;
}

RECBLOCKS_NAMESPACE_END
