#pragma once
// The logic of a next-item recommendation server, without its transport:
// request lines in (serving/request_lines.hpp), answer lines out, per-user
// state in a bounded LRU cache, many users scored in one batched call.
//
//   prepare(line, job)  any thread: parses the line and maps the item ids to
//                       the model's (a bad line is answered right there);
//   answer(jobs)        one thread (a MicroBatcher's worker): updates each
//                       user's state in order, scores all of them in one
//                       score_all, answers each.
//
// Two requests for one user in the same batch see each other in arrival
// order. A user the cache does not hold (new, or evicted as the least
// recently used) starts from the request's "history" or "events"; a request
// with neither is an error for such a user. "exclude_seen" leaves out the
// user's kept items (the newest max_len: the model's window). An answer can
// have fewer than k items when exclusion leaves fewer.
//
// The user state is serving::UserHistory (the window, recomputed on every
// request); an incremental per-user state replaces it here, in answer().
// Scratch for `max_batch` rows is allocated once, at construction.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "recblocks/core/tensor.hpp"
#include "recblocks/io/item_id_map.hpp"
#include "recblocks/serving/described_model.hpp"
#include "recblocks/serving/lru_cache.hpp"
#include "recblocks/serving/request_lines.hpp"
#include "recblocks/serving/user_history.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace serving {

/// One request on its way through a NextItemService.
struct ServiceJob {
    Request request;
    std::vector<row_id_t> items;  ///< request.items in the model's ids
    std::string response;         ///< the answer line (no newline)
    bool failed = false;          ///< response is an error line
};

struct NextItemServiceOptions {
    std::size_t cache_capacity = 100000;  ///< users kept (LRU)
    std::size_t max_batch = 32;           ///< the most jobs answer() takes at once
};

class NextItemService {
public:
    NextItemService(NextItemScorer& scorer, const io::ItemIdMap& items, NextItemServiceOptions opt = {})
        : scorer_(scorer), items_(items), opt_(opt), l_(scorer.max_len()), n_(scorer.num_items()),
          cache_(opt.cache_capacity),
          ids_(Shape<2>{{static_cast<index_t>(opt.max_batch), l_}}),
          scores_(Shape<2>{{static_cast<index_t>(opt.max_batch), n_ + 1}}) {
        RECBLOCKS_CHECK_VALUE(opt.max_batch >= 1, "NextItemService: max_batch must be >= 1");
        RECBLOCKS_CHECK_VALUE(items.num_items() == n_, "NextItemService: the item-id map has ", items.num_items(),
                              " items but the model ", n_);
        rows_.reserve(opt.max_batch);
    }

    [[nodiscard]] index_t num_items() const { return n_; }
    [[nodiscard]] index_t max_len() const { return l_; }
    [[nodiscard]] const LruCache<std::string, UserHistory>& cache() const { return cache_; }

    /// Parses `line` into job and maps its items. false (job.response holds
    /// the error line) for a malformed request or an item the model does not know.
    bool prepare(std::string_view line, ServiceJob& job) const {
        job.request = Request{};
        job.failed = false;
        job.response.clear();
        job.items.clear();
        try {
            job.request = parse_request(line, n_);
            job.items.reserve(job.request.items.size());
            const char* field = job.request.kind == Request::Items::events ? "events" : "history";
            for (std::size_t i = 0; i < job.request.items.size(); ++i) {
                const auto d = items_.dense(job.request.items[i]);
                RECBLOCKS_CHECK_VALUE(d.has_value(), "request: \"", field, "\"[", i, "]: item ", job.request.items[i],
                                      " is not in the model's catalogue");
                job.items.push_back(*d);
            }
            return true;
        } catch (const std::exception& e) {
            if (job.request.user.empty()) serving::find_user(line, job.request.user, job.request.user_is_number);
            std::string_view what = e.what();  // without the library's "[recblocks.value] " tag: the line says what
            if (!what.empty() && what.front() == '[' && what.find("] ") != std::string_view::npos)
                what.remove_prefix(what.find("] ") + 2);
            fail(job, std::string(what));
            return false;
        }
    }

    /// Answers prepared jobs (at most max_batch; failed ones are skipped), in order.
    void answer(std::span<ServiceJob* const> jobs) {
        RECBLOCKS_CHECK_VALUE(jobs.size() <= opt_.max_batch, "NextItemService::answer: ", jobs.size(),
                              " jobs, more than max_batch ", opt_.max_batch);
        rows_.clear();
        index_t kmax = 0;
        for (ServiceJob* job : jobs) {
            if (job->failed) continue;
            const Request& r = job->request;
            if (r.kind == Request::Items::none && !cache_.contains(r.user)) {  // nothing to start from: evict no one
                fail(*job, "request: user " + r.user + " is not in the cache (new, or evicted): send \"history\" or \"events\"");
                continue;
            }
            UserHistory& h = cache_.get_or_insert(r.user, [&] { return UserHistory(l_); }, [](UserHistory& old) { old.clear(); });
            if (r.kind == Request::Items::history) h.assign(job->items);
            else if (r.kind == Request::Items::events) h.append(job->items);
            if (h.empty()) {  // an empty "history" or "events" for a new user
                cache_.erase(r.user);
                fail(*job, "request: user " + r.user + " has no items yet");
                continue;
            }
            const auto row = static_cast<index_t>(rows_.size());
            h.write_window(std::span<row_id_t>(&ids_(row, 0), static_cast<std::size_t>(l_)));
            rows_.push_back(job);
            kmax = std::max<index_t>(kmax, r.k);
        }
        if (rows_.empty()) return;
        const auto b = static_cast<index_t>(rows_.size());
        auto scores = scores_.view().slice_rows(0, b);
        scorer_.score_all(ids_.cview().slice_rows(0, b), scores);
        const float minus_inf = -std::numeric_limits<float>::infinity();
        for (index_t i = 0; i < b; ++i)
            if (rows_[static_cast<std::size_t>(i)]->request.exclude_seen)
                for (index_t t = 0; t < l_; ++t)
                    if (const row_id_t it = ids_(i, t); it != 0) scores(i, it) = minus_inf;
        if (top_.extent(1) < kmax) {  // grows only: [b, kmax] views into the first b * kmax elements
            top_.resize(Shape<2>{{static_cast<index_t>(opt_.max_batch), kmax}});
            top_scores_.resize(top_.shape());
        }
        const auto top = matrix_view<row_id_t>(top_.data(), b, kmax, kmax);
        const auto top_s = matrix_view<float>(top_scores_.data(), b, kmax, kmax);
        scorer_.top_k(scores_.cview().slice_rows(0, b), kmax, top, top_s);
        for (index_t i = 0; i < b; ++i) {
            ServiceJob& job = *rows_[static_cast<std::size_t>(i)];
            originals_.clear();
            kept_scores_.clear();
            for (index_t j = 0; j < job.request.k; ++j) {
                if (!(top_s(i, j) > minus_inf)) break;  // excluded or padding: nothing left worth ranking
                originals_.push_back(items_.original(top(i, j)));
                kept_scores_.push_back(top_s(i, j));
            }
            job.response = response_line(job.request.user, job.request.user_is_number, originals_, kept_scores_);
        }
    }

private:
    static void fail(ServiceJob& job, const std::string& message) {
        job.failed = true;
        job.response = error_line(job.request.user, job.request.user_is_number, message);
    }

    NextItemScorer& scorer_;
    const io::ItemIdMap& items_;
    NextItemServiceOptions opt_;
    index_t l_, n_;
    LruCache<std::string, UserHistory> cache_;
    Matrix<row_id_t> ids_;
    Matrix<float> scores_;
    Matrix<row_id_t> top_;
    Matrix<float> top_scores_;
    std::vector<ServiceJob*> rows_;
    std::vector<std::int64_t> originals_;
    std::vector<float> kept_scores_;
};

}  // namespace serving
RECBLOCKS_NAMESPACE_END
