#pragma once
// Gathers jobs that arrive close together into one batch for one call, so a
// server scores many users in one batched forward (one GEMM over the item
// table instead of one per user).
//
// Any thread submit()s a job and later wait()s for it (or run()s, which is
// both). One worker thread takes the oldest waiting job and the ones behind
// it: it hands over a batch as soon as `max_batch` jobs wait, or when the
// oldest has waited `max_wait` — a lone request pays at most max_wait of
// extra latency. `process` is called on the worker thread only, one batch at
// a time, in arrival order: state it keeps (a user cache) needs no lock. It
// must not throw (answer errors inside the jobs): an escaping exception ends
// the program, as on any std::thread.
// The destructor (or stop()) finishes every submitted job, then joins.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace serving {

struct MicroBatchOptions {
    std::size_t max_batch = 32;                  ///< B: the most jobs in one call
    std::chrono::microseconds max_wait{500};     ///< T: how long the oldest job may wait for company
};

template <class Job>
class MicroBatcher {
public:
    using Process = std::function<void(std::span<Job* const>)>;

    MicroBatcher(MicroBatchOptions opt, Process process) : opt_(opt), process_(std::move(process)) {
        RECBLOCKS_CHECK_VALUE(opt.max_batch >= 1, "MicroBatcher: max_batch must be >= 1, got ", opt.max_batch);
        RECBLOCKS_CHECK_VALUE(opt.max_wait.count() >= 0, "MicroBatcher: max_wait must be >= 0, got ",
                              opt.max_wait.count(), " us");
        batch_.reserve(opt.max_batch);
        worker_ = std::thread([this] { loop(); });
    }
    MicroBatcher(const MicroBatcher&) = delete;
    MicroBatcher& operator=(const MicroBatcher&) = delete;
    ~MicroBatcher() { stop(); }

    /// Queues `job` (which must live until wait() returns for it).
    void submit(Job& job) {
        {
            std::lock_guard lock(mutex_);
            RECBLOCKS_CHECK_VALUE(!stopping_, "MicroBatcher: submit after stop");
            queue_.push_back({&job, Clock::now()});
            ++submitted_;
        }
        arrived_.notify_one();
    }
    /// Blocks until `job` (submitted before) has been processed.
    void wait(const Job& job) {
        std::unique_lock lock(mutex_);
        done_cv_.wait(lock, [&] { return is_done(&job); });
        forget(&job);
    }
    /// submit + wait.
    void run(Job& job) {
        submit(job);
        wait(job);
    }

    /// Processes what is queued, then stops the worker. Idempotent.
    void stop() {
        {
            std::lock_guard lock(mutex_);
            if (stopping_ && !worker_.joinable()) return;
            stopping_ = true;
        }
        arrived_.notify_all();
        if (worker_.joinable()) worker_.join();
    }

    /// Batches handed to `process` so far, and the jobs in them.
    [[nodiscard]] std::size_t batches() const {
        std::lock_guard lock(mutex_);
        return batches_;
    }
    [[nodiscard]] std::size_t jobs() const {
        std::lock_guard lock(mutex_);
        return processed_;
    }

private:
    using Clock = std::chrono::steady_clock;
    struct Entry {
        Job* job;
        Clock::time_point arrived;
    };

    // A processed job stays in finished_ until its wait() has seen it.
    bool is_done(const Job* j) const {
        for (const auto& e : finished_)
            if (e == j) return true;
        return false;
    }
    void forget(const Job* j) {
        finished_.erase(std::find(finished_.begin(), finished_.end(), j));
    }

    void loop() {
        std::unique_lock lock(mutex_);
        for (;;) {
            arrived_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, nothing left
            const auto deadline = queue_.front().arrived + opt_.max_wait;
            arrived_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= opt_.max_batch; });
            const std::size_t n = std::min(queue_.size(), opt_.max_batch);
            batch_.clear();
            for (std::size_t i = 0; i < n; ++i) batch_.push_back(queue_[i].job);
            queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
            lock.unlock();
            process_(std::span<Job* const>(batch_));
            lock.lock();
            for (Job* j : batch_) finished_.push_back(j);
            ++batches_;
            processed_ += n;
            done_cv_.notify_all();
        }
    }

    MicroBatchOptions opt_;
    Process process_;
    mutable std::mutex mutex_;
    std::condition_variable arrived_, done_cv_;
    std::deque<Entry> queue_;
    std::vector<Job*> batch_;
    std::vector<const Job*> finished_;  // processed, not yet collected by wait()
    bool stopping_ = false;
    std::size_t submitted_ = 0, batches_ = 0, processed_ = 0;
    std::thread worker_;
};

}  // namespace serving
RECBLOCKS_NAMESPACE_END
