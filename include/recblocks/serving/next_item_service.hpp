#pragma once
// The logic of a next-item recommendation server, without its transport:
// request lines in (serving/request_lines.hpp), answer lines out, per-user
// state in a bounded LRU cache, many users scored in one batched call.
//
//   prepare(line, job)  any thread: parses the line and maps the item ids to
//                       the model's (a bad line is answered right there);
//   answer(jobs)        one thread (a MicroBatcher's worker): updates each
//                       user's state in order, scores all of them in one
//                       call, answers each.
//
// Two requests for one user in the same batch see each other in arrival
// order. A user the cache does not hold (new, or evicted as the least
// recently used) starts from the request's "history" or "events"; a request
// with neither is an error for such a user. "exclude_seen" leaves out the
// user's kept items (the newest max_len: the model's window). An answer can
// have fewer than k items when exclusion leaves fewer.
//
// Two kinds of user state, chosen at construction:
//   incremental  when the scorer offers an exact one (NextItemScorer::incremental():
//                SASRec with positions from_oldest and padded keys masked) and
//                Options::incremental: per-user keys and values; "events" of all
//                the batch's users are appended together (one row per user through
//                the stack), "history" rebuilds the user (one forward of the window),
//                and the final states are scored in one gemm against the item table.
//                Beyond max_len the window slides and every event rebuilds the user
//                (exact, the cost of a recomputation).
//   recompute    serving::UserHistory (the window), one score_all over every
//                user's window per batch: any model.
// Both answer the same (scores equal up to float rounding). Scratch for
// `max_batch` rows is allocated once, at construction.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
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
    bool incremental = true;              ///< keep incremental states when the scorer offers exact ones
};

/// One cached user: the window of ids (recompute) or the incremental state.
struct CachedUser {
    std::optional<UserHistory> history;  ///< recompute
    IncrementalScorer::State state;      ///< incremental (empty otherwise)
};

class NextItemService {
public:
    NextItemService(NextItemScorer& scorer, const io::ItemIdMap& items, NextItemServiceOptions opt = {})
        : scorer_(scorer), items_(items), opt_(opt), l_(scorer.max_len()), n_(scorer.num_items()),
          inc_(opt.incremental ? scorer.incremental() : nullptr), cache_(opt.cache_capacity),
          ids_(Shape<2>{{static_cast<index_t>(opt.max_batch), l_}}),
          scores_(Shape<2>{{static_cast<index_t>(opt.max_batch), n_ + 1}}) {
        RECBLOCKS_CHECK_VALUE(opt.max_batch >= 1, "NextItemService: max_batch must be >= 1");
        RECBLOCKS_CHECK_VALUE(items.num_items() == n_, "NextItemService: the item-id map has ", items.num_items(),
                              " items but the model ", n_);
        rows_.reserve(opt.max_batch);
        if (inc_) {
            const index_t d = inc_->make_state().hidden().numel();
            hidden_.resize(Shape<2>{{static_cast<index_t>(opt.max_batch), d}});
            row_states_.reserve(opt.max_batch);
            open_.reserve(opt.max_batch);
            pending_states_.reserve(opt.max_batch);
            pending_items_.reserve(opt.max_batch);
            concat_.reserve(static_cast<std::size_t>(2 * l_));
        }
    }

    [[nodiscard]] index_t num_items() const { return n_; }
    [[nodiscard]] index_t max_len() const { return l_; }
    [[nodiscard]] const LruCache<std::string, CachedUser>& cache() const { return cache_; }
    /// Whether users are kept as incremental states (else their windows are recomputed).
    [[nodiscard]] bool incremental() const { return inc_ != nullptr; }
    /// Bytes one cached user takes with this scorer: the state (incremental, when
    /// `incremental` and the scorer offers it) or the window, plus about 100 bytes of
    /// bookkeeping (the cache's list and hash nodes, the key).
    [[nodiscard]] static std::size_t bytes_per_user(NextItemScorer& scorer, bool incremental) {
        if (IncrementalScorer* inc = incremental ? scorer.incremental() : nullptr) return inc->state_bytes() + 100;
        return UserHistory::bytes_per_user(scorer.max_len());
    }
    [[nodiscard]] std::size_t bytes_per_user() const { return bytes_per_user(scorer_, inc_ != nullptr); }

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
        const index_t kmax = inc_ ? update_incremental(jobs) : update_windows(jobs);
        if (rows_.empty()) return;
        const auto b = static_cast<index_t>(rows_.size());
        auto scores = scores_.view().slice_rows(0, b);
        if (inc_) inc_->score_hidden(hidden_.cview().slice_rows(0, b), scores);
        else scorer_.score_all(ids_.cview().slice_rows(0, b), scores);
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
    using State = IncrementalScorer::State;

    /// False (and the job failed) for a request with no items whose user the cache does not hold.
    [[nodiscard]] bool known_or_has_items(ServiceJob& job) {
        const Request& r = job.request;
        if (r.kind != Request::Items::none || cache_.contains(r.user)) return true;  // nothing to start from: evict no one
        fail(job, "request: user " + r.user + " is not in the cache (new, or evicted): send \"history\" or \"events\"");
        return false;
    }
    void fail_empty(ServiceJob& job) {  // an empty "history", or empty "events" for a new user
        cache_.erase(job.request.user);
        fail(job, "request: user " + job.request.user + " has no items yet");
    }

    /// Recompute: each user's window into ids_; returns the largest k.
    index_t update_windows(std::span<ServiceJob* const> jobs) {
        index_t kmax = 0;
        for (ServiceJob* job : jobs) {
            if (job->failed || !known_or_has_items(*job)) continue;
            const Request& r = job->request;
            CachedUser& u = cache_.get_or_insert(
                r.user, [&] { return CachedUser{UserHistory(l_), {}}; }, [](CachedUser& old) { old.history->clear(); });
            UserHistory& h = *u.history;
            if (r.kind == Request::Items::history) h.assign(job->items);
            else if (r.kind == Request::Items::events) h.append(job->items);
            if (h.empty()) {
                fail_empty(*job);
                continue;
            }
            const auto row = static_cast<index_t>(rows_.size());
            h.write_window(std::span<row_id_t>(&ids_(row, 0), static_cast<std::size_t>(l_)));
            rows_.push_back(job);
            kmax = std::max<index_t>(kmax, r.k);
        }
        return kmax;
    }

    /// Incremental: single events of the batch's users are gathered and appended
    /// together (a user twice, or a state about to change or be evicted, first
    /// flushes them); each answered row's final state and window are copied out
    /// once its user's updates up to that request are done. Returns the largest k.
    index_t update_incremental(std::span<ServiceJob* const> jobs) {
        row_states_.clear();
        open_.clear();
        pending_states_.clear();
        pending_items_.clear();
        index_t kmax = 0;
        for (ServiceJob* job : jobs) {
            if (job->failed || !known_or_has_items(*job)) continue;
            const Request& r = job->request;
            CachedUser& u = cache_.get_or_insert(
                r.user, [&] { return CachedUser{std::nullopt, inc_->make_state()}; },
                [&](CachedUser& old) {  // the evicted user's rows of this batch are settled first
                    settle(&old.state);
                    inc_->reset(old.state, {});
                });
            State* s = &u.state;
            settle(s);
            const bool empty = job->items.empty() && (r.kind == Request::Items::history || s->size() == 0);
            if (empty) {
                fail_empty(*job);
                continue;
            }
            if (r.kind == Request::Items::history) {
                inc_->reset(*s, job->items);
            } else if (r.kind == Request::Items::events) {
                const std::size_t m = job->items.size(), len = static_cast<std::size_t>(l_);
                if (m > kAppendOneByOne || (m > 1 && static_cast<std::size_t>(s->size()) + m > len)) {
                    // Many events, or several through a full window (each would rebuild it): one rebuild.
                    // (One event on a full window is rebuilt by append_batch, with the batch's other rows.)
                    const auto old = s->events();
                    const std::size_t keep = std::min(old.size(), len - std::min(m, len));
                    concat_.assign(old.end() - static_cast<std::ptrdiff_t>(keep), old.end());
                    concat_.insert(concat_.end(), job->items.begin(), job->items.end());
                    inc_->reset(*s, concat_);
                } else {
                    for (const row_id_t item : job->items) {
                        if (pending(s)) flush();
                        pending_states_.push_back(s);
                        pending_items_.push_back(item);
                    }
                }
            }
            row_states_.push_back(s);
            open_.push_back(static_cast<index_t>(rows_.size()));
            rows_.push_back(job);
            kmax = std::max<index_t>(kmax, r.k);
        }
        flush();
        for (const index_t row : open_) capture(row);
        open_.clear();
        return kmax;
    }
    [[nodiscard]] bool pending(const State* s) const {
        return std::find(pending_states_.begin(), pending_states_.end(), s) != pending_states_.end();
    }
    /// Appends the gathered events (each state at most once).
    void flush() {
        if (pending_states_.empty()) return;
        inc_->append_batch(pending_states_, pending_items_);
        pending_states_.clear();
        pending_items_.clear();
    }
    /// Before s changes: its gathered events are appended and its open rows copied out.
    void settle(const State* s) {
        if (pending(s)) flush();
        for (std::size_t i = 0; i < open_.size();) {
            if (row_states_[static_cast<std::size_t>(open_[i])] == s) {
                capture(open_[i]);
                open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
                ++i;
            }
        }
    }
    /// Row `row`'s final state into hidden_ and its window (for exclusion) into ids_.
    void capture(index_t row) {
        const State& s = *row_states_[static_cast<std::size_t>(row)];
        const auto h = s.hidden();
        std::copy(h.data(), h.data() + h.numel(), &hidden_(row, 0));
        const auto ev = s.events();
        row_id_t* ids = &ids_(row, 0);
        const auto pad = static_cast<std::ptrdiff_t>(l_) - static_cast<std::ptrdiff_t>(ev.size());
        std::fill(ids, ids + pad, row_id_t{0});
        std::copy(ev.begin(), ev.end(), ids + pad);
    }

    /// "events" longer than this are one rebuild of the window, not appends one by one.
    static constexpr std::size_t kAppendOneByOne = 8;

    static void fail(ServiceJob& job, const std::string& message) {
        job.failed = true;
        job.response = error_line(job.request.user, job.request.user_is_number, message);
    }

    NextItemScorer& scorer_;
    const io::ItemIdMap& items_;
    NextItemServiceOptions opt_;
    index_t l_, n_;
    IncrementalScorer* inc_;  // null: recompute windows
    LruCache<std::string, CachedUser> cache_;
    Matrix<row_id_t> ids_;
    Matrix<float> scores_;
    Matrix<row_id_t> top_;
    Matrix<float> top_scores_;
    std::vector<ServiceJob*> rows_;
    std::vector<std::int64_t> originals_;
    std::vector<float> kept_scores_;
    // Incremental: final states of the answered rows, each row's state, rows not yet copied out,
    // events gathered for one append_batch, and a window being rebuilt.
    Matrix<float> hidden_;
    std::vector<State*> row_states_;
    std::vector<index_t> open_;
    std::vector<State*> pending_states_;
    std::vector<row_id_t> pending_items_;
    std::vector<row_id_t> concat_;
};

}  // namespace serving
RECBLOCKS_NAMESPACE_END
