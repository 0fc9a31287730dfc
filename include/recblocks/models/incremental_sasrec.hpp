#pragma once
// Incremental user state for serving SASRec: each user keeps, per block, the
// keys and values of every event in its window, so one new event costs one
// row through the stack (its projections, one attention row against the
// cached keys, its feed-forward: O(L·D + D²) per block) instead of a forward
// over the whole window (O(L²·D + L·D²)).
//
// Exact when an event's state depends only on the events before it. That
// holds for SASRec with PositionRows::from_oldest and mask_padding_keys:
//   - from_oldest numbers an item from the oldest event of the window, so
//     appending leaves every older item's input row unchanged (slot-based
//     positions, per_slot and from_one, move every item when one is appended);
//   - the causal mask shows an item only itself and older items, and with
//     padded keys masked the amount of padding before it is invisible (without
//     the mask an item attends to every padded slot, whose count drops by one
//     with each append);
//   - the timeline mask zeroes padded rows only, and every norm placement
//     (QueryNorm, whose keys and values come from the un-normed block input;
//     PreNorm; PostNorm) works row by row outside the attention.
// So the cached keys and values of block i are exactly those of a full forward
// on the same events, and the new row's final state is the full forward's last
// row (scores equal up to float rounding: tested at 1e-5 with the same top-10).
// The one-row step has no embedding norm and always the final norm (RecBole's
// layout has the reverse of both), so those configurations are refused too.
// Other configurations cannot be cached exactly: construction throws, unless
// Options::allow_full_recompute, which keeps only the window and runs the
// model's full forward (encode_last) on it for every update.
//
// Beyond max_len the window slides and every position moves, so nothing cached
// stays exact: the state is rebuilt from the events it keeps (a full forward of
// one user). Options::overflow_keep says how many: max_len (the default) slides
// by one, exact at every event but a full forward per event once the history
// is longer than max_len; k < max_len restarts the window from the last k
// events, one rebuild every max_len - k + 1 events, and the scores are those of
// the model on the state's window (events()), which is then shorter than
// max_len after a restart.
//
// Memory per user: the window's ids, blocks × max_len × 2D values for the keys
// and values, and the final state [D] (State::bytes()). One engine per model;
// it holds the scratch of a call, so one thread at a time uses it. After the
// first calls of the largest batch, appends allocate nothing.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "recblocks/models/sasrec.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/ops/prefix_attention.hpp"
#include "recblocks/ops/softmax.hpp"
#include "recblocks/ops/top_k.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace models {

struct IncrementalSASRecOptions {
    /// Events a full window keeps when one more arrives (then rebuilt): 0 means max_len (slide
    /// by one: exact at every event); k in [1, max_len) restarts the window from the last k.
    index_t overflow_keep = 0;
    /// Serve a configuration that cannot be cached exactly (positions other than from_oldest, or
    /// padded keys not masked) by a full forward of the window per update instead of throwing.
    bool allow_full_recompute = false;
};

/// One user's cached state: the window of events (oldest first), per block the
/// keys and values of each, and the final state that scores items.
template <class T>
class SASRecUserState {
public:
    SASRecUserState() = default;
    /// Events in the window (at most max_len).
    [[nodiscard]] index_t size() const { return static_cast<index_t>(window_.size()); }
    /// The window, oldest first: the events the state and its scores stand for.
    [[nodiscard]] std::span<const row_id_t> events() const { return window_; }
    /// The final hidden state F_last [D]: score(i) = F_last · E[i].
    [[nodiscard]] VectorView<const T> hidden() const { return hidden_.cview(); }
    /// Bytes this state holds (window capacity, key/value cache, final state).
    [[nodiscard]] std::size_t bytes() const {
        return window_.capacity() * sizeof(row_id_t) + static_cast<std::size_t>(kv_.numel() + hidden_.numel()) * sizeof(T);
    }

private:
    template <class, class>
    friend class IncrementalSASRec;
    std::vector<row_id_t> window_;  // capacity max_len
    // Per block: the keys [max_len, D] (row j = event j's) then the values transposed, [D, max_len]
    // (column j = event j's), so that one query row is two row-dot products with no repacking.
    // Empty when serving by full recomputation.
    Tensor<T, 3> kv_;  // [blocks, 2 max_len, D]
    Vector<T> hidden_;              // [D]
    std::uint64_t mark_ = 0;        // the last batch that touched it (duplicates in a batch are an error)
};

template <class T, class Norm = policies::QueryNorm>
class IncrementalSASRec {
    static_assert(std::is_same_v<Norm, policies::QueryNorm> || std::is_same_v<Norm, policies::PreNorm> ||
                      std::is_same_v<Norm, policies::PostNorm>,
                  "IncrementalSASRec: the one-row block step is written for QueryNorm, PreNorm and PostNorm");

public:
    using Model = SASRec<T, Norm, HostMemory>;
    using State = SASRecUserState<T>;
    using Options = IncrementalSASRecOptions;

    /// Whether a configuration's cached states are exact (see the top of this file).
    /// (The one-row step also assumes no embedding norm and a final norm: RecBole's layout has the
    /// opposite of both, and its states would be wrong; it is served by full recomputation.)
    [[nodiscard]] static bool exact_for(const SASRecConfig& c) {
        return c.positions == blocks::PositionRows::from_oldest && c.mask_padding_keys && !c.embedding_norm &&
               c.final_norm;
    }

    /// Serves `model` (its weights are read at each call, never written; its
    /// scratch is used by the full-recompute path).
    explicit IncrementalSASRec(Model& model, Options opt = {})
        : model_(model), opt_(opt), d_(model.config().d_model), len_(model.config().max_len),
          blocks_(model.config().num_blocks), heads_(model.config().heads) {
        const auto& c = model.config();
        if (opt_.overflow_keep == 0) opt_.overflow_keep = len_;
        RECBLOCKS_CHECK_VALUE(opt_.overflow_keep >= 1 && opt_.overflow_keep <= len_,
                              "IncrementalSASRec: overflow_keep must be in [1, max_len = ", len_, "] (0 = max_len), got ",
                              opt.overflow_keep);
        incremental_ = exact_for(c);
        RECBLOCKS_CHECK_VALUE(incremental_ || opt_.allow_full_recompute,
                              "IncrementalSASRec: ", why_not_exact(c),
                              "; set Options::allow_full_recompute to serve it with a full forward per update");
        ffn_inner_ = model_.stack().block(0).parts().ffn.config().inner;
        scratch_state_ = make_state();
    }
    IncrementalSASRec(const IncrementalSASRec&) = delete;
    IncrementalSASRec& operator=(const IncrementalSASRec&) = delete;

    /// Why exact_for(c) is false, as a sentence fragment ("" when it is true).
    [[nodiscard]] static std::string why_not_exact(const SASRecConfig& c) {
        if (exact_for(c)) return {};
        std::string why = "cached states are exact only with positions = from_oldest, mask_padding_keys = true, "
                          "embedding_norm = false and final_norm = true (this model has positions = ";
        why += position_name(c.positions);
        why += c.mask_padding_keys ? ", mask_padding_keys = true" : ", mask_padding_keys = false";
        why += c.embedding_norm ? ", embedding_norm = true" : ", embedding_norm = false";
        why += c.final_norm ? ", final_norm = true)" : ", final_norm = false)";
        return why;
    }

    [[nodiscard]] const Options& options() const { return opt_; }
    /// False when serving by full recomputation (Options::allow_full_recompute).
    [[nodiscard]] bool incremental() const { return incremental_; }

    /// An empty state (no events) of this model's shape; allocates its cache.
    [[nodiscard]] State make_state() const {
        State s;
        s.window_.reserve(static_cast<std::size_t>(len_));
        if (incremental_) s.kv_.resize(Shape<3>{{blocks_, 2 * len_, d_}});
        s.hidden_.resize(Shape<1>{{d_}});
        empty_hidden(s);
        return s;
    }

    /// Sets state to the last max_len events of history (oldest first): one full forward.
    template <class Be>
    void reset(const Be& be, ThreadPool& pool, State& state, std::span<const row_id_t> history) {
        check_state(state, "reset");
        for (std::size_t i = 0; i < history.size(); ++i) check_item(history[i], "reset: history", index_t(i));
        const std::size_t keep = std::min(history.size(), static_cast<std::size_t>(len_));
        state.window_.assign(history.end() - static_cast<std::ptrdiff_t>(keep), history.end());
        State* one[] = {&state};
        rebuild(be, pool, one);
    }

    /// Appends one event to one user's state.
    template <class Be>
    void append(const Be& be, ThreadPool& pool, State& state, row_id_t item) {
        State* one[] = {&state};
        append_batch(be, pool, one, std::span<const row_id_t>(&item, 1));
    }

    /// Appends items[b] to *states[b] for every b, the new rows of all users
    /// through each projection as one gemm. The states must be distinct.
    template <class Be>
    void append_batch(const Be& be, ThreadPool& pool, std::span<State* const> states, std::span<const row_id_t> items) {
        RECBLOCKS_CHECK_SHAPE(states.size() == items.size(), "IncrementalSASRec::append_batch: ", states.size(),
                              " states but ", items.size(), " items");
        const std::uint64_t batch = next_batch();
        for (std::size_t b = 0; b < states.size(); ++b) {
            RECBLOCKS_CHECK_VALUE(states[b] != nullptr, "IncrementalSASRec::append_batch: states[", b, "] is null");
            check_state(*states[b], "append_batch");
            check_item(items[b], "append_batch: items", index_t(b));
            RECBLOCKS_CHECK_VALUE(states[b]->mark_ != batch, "IncrementalSASRec::append_batch: states[", b,
                                  "] appears twice in one batch (append its events one batch after another)");
            states[b]->mark_ = batch;
        }
        if (!incremental_) {
            for (std::size_t b = 0; b < states.size(); ++b) push_event(*states[b], items[b]);
            recompute(be, pool, states);
            return;
        }
        // One row per user whose window has room; a full window is rebuilt (its rows go along).
        rows_.clear();
        segments_.clear();
        for (std::size_t b = 0; b < states.size(); ++b) {
            State& s = *states[b];
            const bool full = s.size() == len_;
            push_event(s, items[b]);
            const index_t first = full ? 0 : s.size() - 1;
            add_segment(&s, first, s.size());
        }
        run(be, pool, Mode::commit);
    }

    /// out [K, D]: for each candidate c, the final state the user would have
    /// after appending c (what append(c) would give), computed in one pass:
    /// the candidates are extra queries that attend to the cached history and
    /// to themselves, not to each other. The state's events are unchanged.
    template <class Be>
    void encode_candidates(const Be& be, ThreadPool& pool, State& state, std::span<const row_id_t> candidates,
                           MatrixView<T> out) {
        check_state(state, "encode_candidates");
        const index_t k = static_cast<index_t>(candidates.size());
        RECBLOCKS_CHECK_SHAPE(out.rows() == k && out.cols() == d_, "IncrementalSASRec::encode_candidates: out is ",
                              out.shape(), " but need [", k, ", ", d_, "]");
        for (index_t c = 0; c < k; ++c) check_item(candidates[std::size_t(c)], "encode_candidates: candidates", c);
        if (k == 0) return;
        if (!incremental_) {
            recompute_candidates(be, pool, state, candidates, out);
            return;
        }
        // A full window would slide (or restart) on append: the candidates then see the events kept.
        State* base = &state;
        if (state.size() == len_) {
            const index_t kept = opt_.overflow_keep - 1;
            scratch_state_.window_.assign(state.window_.end() - kept, state.window_.end());
            State* one[] = {&scratch_state_};
            rebuild(be, pool, one);
            base = &scratch_state_;
        }
        rows_.clear();
        segments_.clear();
        for (index_t c = 0; c < k; ++c) {
            rows_.push_back({candidates[std::size_t(c)], static_cast<row_id_t>(base->size())});
            segments_.push_back({base, c, c + 1});
        }
        run(be, pool, Mode::candidates, out);
    }

    /// scores [B, N + 1] of states (column i = F_last · E[i]; column 0, padding, = -inf).
    template <class Be>
    void score_all(const Be& be, std::span<const State* const> states, MatrixView<T> scores) {
        const index_t bsz = static_cast<index_t>(states.size()), n = model_.config().num_items;
        RECBLOCKS_CHECK_SHAPE(scores.rows() == bsz && scores.cols() == n + 1, "IncrementalSASRec::score_all: scores is ",
                              scores.shape(), " but need [", bsz, ", ", n + 1, "]");
        if (bsz == 0) return;
        auto last = rows_of(last_, bsz, d_);
        for (index_t b = 0; b < bsz; ++b) {
            const State* s = states[std::size_t(b)];
            RECBLOCKS_CHECK_VALUE(s != nullptr, "IncrementalSASRec::score_all: states[", b, "] is null");
            check_state(*s, "score_all");
            std::copy(s->hidden_.data(), s->hidden_.data() + d_, last.row(b));
        }
        ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(last), model_.item_table(), T(0), scores);
        for (index_t b = 0; b < bsz; ++b) scores(b, 0) = -std::numeric_limits<T>::infinity();
    }

    /// The k best items of each state: ids [B, k] (item ids) and values [B, k], best first.
    template <class Be>
    void top_k(const Be& be, std::span<const State* const> states, index_t k, MatrixView<row_id_t> ids,
               MatrixView<T> values) {
        const index_t bsz = static_cast<index_t>(states.size());
        auto scores = rows_of(scores_, bsz, model_.config().num_items + 1);
        score_all(be, states, scores);
        ops::top_k_rows(be, MatrixView<const T>(scores), k, ids, values);
    }

private:
    enum class Mode { commit, candidates };
    struct Row {
        row_id_t item;
        row_id_t position;  // the event's index in the window (from_oldest)
    };
    struct Segment {
        State* state;
        index_t r0, r1;  // rows [r0, r1) of this call: consecutive events of one state
    };

    /// A batch number no other batch of any engine has: a state may move between engines.
    static std::uint64_t next_batch() {
        static std::atomic<std::uint64_t> counter{0};
        return counter.fetch_add(1, std::memory_order_relaxed) + 1;
    }
    static const char* position_name(blocks::PositionRows p) {
        switch (p) {
            case blocks::PositionRows::per_slot: return "per_slot";
            case blocks::PositionRows::from_one: return "from_one";
            case blocks::PositionRows::from_oldest: return "from_oldest";
        }
        return "?";
    }
    void check_item(row_id_t item, const char* where, index_t i) const {
        RECBLOCKS_CHECK_INDEX(item >= 1 && item <= model_.config().num_items, "IncrementalSASRec::", where, "[", i,
                              "] = ", item, " is outside the item ids [1, ", model_.config().num_items, "]");
    }
    void check_state(const State& s, const char* where) const {
        const bool kv_ok = incremental_ ? (s.kv_.extent(0) == blocks_ && s.kv_.extent(1) == 2 * len_ && s.kv_.extent(2) == d_)
                                        : s.kv_.numel() == 0;
        RECBLOCKS_CHECK_SHAPE(kv_ok && s.hidden_.numel() == d_ && s.size() <= len_, "IncrementalSASRec::", where,
                              ": the state was not made by this engine's make_state() (other shape)");
    }
    /// The final norm of a zero row (what an empty window's padded last slot gives) is its bias.
    void empty_hidden(State& s) const {
        const auto& fb = model_.stack().final_norm().params().bias;
        std::copy(fb.data(), fb.data() + d_, s.hidden_.data());
    }

    /// Adds an event to the window; a full window first drops down to overflow_keep - 1 events.
    void push_event(State& s, row_id_t item) const {
        if (s.size() == len_) s.window_.erase(s.window_.begin(), s.window_.end() - (opt_.overflow_keep - 1));
        s.window_.push_back(item);
    }
    /// Rows for events [first, last) of s's window.
    void add_segment(State* s, index_t first, index_t last) {
        const index_t r0 = static_cast<index_t>(rows_.size());
        for (index_t j = first; j < last; ++j) rows_.push_back({s->window_[std::size_t(j)], static_cast<row_id_t>(j)});
        if (last > first) segments_.push_back({s, r0, static_cast<index_t>(rows_.size())});
        else empty_hidden(*s);
    }
    /// Recomputes each state's cache from its window.
    template <class Be>
    void rebuild(const Be& be, ThreadPool& pool, std::span<State* const> states) {
        if (!incremental_) {
            recompute(be, pool, states);
            return;
        }
        rows_.clear();
        segments_.clear();
        for (State* s : states) add_segment(s, 0, s->size());
        run(be, pool, Mode::commit);
    }

    /// A grow-only scratch matrix as [rows, cols] (allocates only to grow).
    static MatrixView<T> rows_of(Matrix<T>& m, index_t rows, index_t cols) {
        if (m.extent(0) < rows || m.extent(1) != cols) m.resize(Shape<2>{{std::max(rows, m.extent(0)), cols}});
        return matrix_view(m.data(), rows, cols);
    }

    /// The rows of rows_ (grouped by segments_) through the embedding and every
    /// block. commit: each row is its state's event at row.position; its keys
    /// and values are written to the cache, and the last row of a segment sets
    /// the state's final state. candidates: every row sits one past its
    /// state's window (using the cache's next slot as scratch), final states to out.
    template <class Be>
    void run(const Be& be, ThreadPool& /*pool: ops run on be*/, Mode mode, MatrixView<T> out = {}) {
        const index_t r = static_cast<index_t>(rows_.size()), d = d_;
        if (r == 0) return;
        auto& emb = model_.embedding();
        auto x = rows_of(x_, r, d), tmp = rows_of(tmp_, r, d), qin = rows_of(qin_, r, d), att = rows_of(att_, r, d),
             h = rows_of(h_, r, d), e = rows_of(e_, r, d), ctx = rows_of(ctx_, r, d), qkv = rows_of(qkv_, r, 3 * d),
             hid = rows_of(ffn_hidden_, r, ffn_inner_);
        if (ids_.numel() < r) {
            ids_.resize(Shape<1>{{std::max(r, ids_.numel() * 2)}});
            pos_.resize(ids_.shape());
            key_end_.resize(ids_.shape());
        }
        for (index_t i = 0; i < r; ++i) {
            ids_(i) = rows_[std::size_t(i)].item;
            pos_(i) = rows_[std::size_t(i)].position;
            key_end_(i) = index_t(rows_[std::size_t(i)].position) + 1;
        }
        const auto ids = vector_view<const row_id_t>(ids_.data(), r), pos = vector_view<const row_id_t>(pos_.data(), r);
        // Embedding, as SequenceEmbedding computes it: E[item] * sqrt(D) + P[position].
        ops::gather_rows(be, emb.params().items.cview(), ids, x);
        if (emb.config().scale_by_sqrt_d)
            ops::scale_rows(be, MatrixView<const T>(x), VectorView<const T>{}, static_cast<T>(std::sqrt(double(d))), x);
        ops::gather_rows(be, emb.params().positions.cview(), pos, tmp);
        ops::add(be, MatrixView<const T>(x), MatrixView<const T>(tmp), x);

        for (index_t i = 0; i < blocks_; ++i) {
            auto& p = model_.stack().block(i).parts();
            const auto& ap = p.attention.params();
            const auto w_in = ap.in_proj_weight.cview();
            const auto b_in = ap.in_proj_bias.cview();
            // Projections: QueryNorm's queries from LN_a(x), keys and values from x; PreNorm all from
            // LN_a(x); PostNorm all from x.
            if constexpr (std::is_same_v<Norm, policies::PostNorm>) {
                ops::broadcast_rows(be, b_in, T(0), qkv);
                ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(x), w_in, T(1), qkv);
            } else {
                norm(be, p.norm_attention, x, qin);
                if constexpr (std::is_same_v<Norm, policies::PreNorm>) {
                    ops::broadcast_rows(be, b_in, T(0), qkv);
                    ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(qin), w_in, T(1), qkv);
                } else {  // QueryNorm: keys and values from the un-normed x
                    const auto q = matrix_view(qkv.data(), r, d, qkv.ld()), kv = matrix_view(qkv.data() + d, r, 2 * d, qkv.ld());
                    ops::broadcast_rows(be, b_in.slice_rows(0, d), T(0), q);
                    ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(qin), w_in.slice_rows(0, d), T(1), q);
                    ops::broadcast_rows(be, b_in.slice_rows(d, 3 * d), T(0), kv);
                    ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(x), w_in.slice_rows(d, 3 * d), T(1), kv);
                }
            }
            attend(be, i, mode, MatrixView<const T>(qkv), ctx);
            ops::broadcast_rows(be, ap.out_proj_bias.cview(), T(0), att);
            ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(ctx), ap.out_proj_weight.cview(), T(1), att);
            // Residuals, norms and the feed-forward; the block's output goes back to x.
            if constexpr (std::is_same_v<Norm, policies::QueryNorm>) {
                ops::add(be, MatrixView<const T>(qin), MatrixView<const T>(att), h);  // h = q + A
                norm(be, p.norm_ffn, h, e);
                feed_forward(be, p.ffn, e, hid, x);  // x = e + F(e)
            } else if constexpr (std::is_same_v<Norm, policies::PreNorm>) {
                ops::add(be, MatrixView<const T>(x), MatrixView<const T>(att), h);  // h = x + A
                norm(be, p.norm_ffn, h, e);
                feed_forward(be, p.ffn, e, hid, x);  // x = F(e)
                ops::add(be, MatrixView<const T>(x), MatrixView<const T>(h), x);
            } else {  // PostNorm
                ops::add(be, MatrixView<const T>(x), MatrixView<const T>(att), tmp);
                norm(be, p.norm_attention, tmp, h);  // h = LN_a(x + A)
                feed_forward(be, p.ffn, h, hid, e);  // e = h + F(h)
                norm(be, p.norm_ffn, e, x);
            }
        }
        norm(be, model_.stack().final_norm(), x, e);
        if (mode == Mode::candidates) {
            ops::copy(be, MatrixView<const T>(e), out);
            return;
        }
        for (const Segment& s : segments_) std::copy(e.row(s.r1 - 1), e.row(s.r1 - 1) + d, s.state->hidden_.data());
    }

    /// ctx [R, D] from qkv [R, 3D]: each row attends to its state's cached keys
    /// up to and including its own (written to the cache first). A segment of
    /// several rows is a rebuild (events 0, 1, ...): the prefix-attention kernel
    /// on its own rows. One row: scores = K q and ctx = Vᵀ p as row dot products.
    template <class Be>
    void attend(const Be& be, index_t block, Mode mode, MatrixView<const T> qkv, MatrixView<T> ctx) {
        const index_t d = d_, dh = d_ / heads_, len = len_;
        const T scale = static_cast<T>(1.0 / std::sqrt(double(dh)));
        auto probs = rows_of(probs_, qkv.rows(), len);
        auto one = [&](const Be& inner, const Segment& s) {
            T* keys = s.state->kv_.data() + block * 2 * len * d;  // [L, D]
            T* values_t = keys + len * d;                         // [D, L]
            for (index_t r = s.r0; r < s.r1; ++r) {  // this row's key and value into its slot
                const index_t j = rows_[std::size_t(r)].position;
                std::copy(qkv.row(r) + d, qkv.row(r) + 2 * d, keys + j * d);
                const T* v = qkv.row(r) + 2 * d;
                for (index_t c = 0; c < d; ++c) values_t[c * len + j] = v[c];
            }
            const index_t n = s.r1 - s.r0;
            auto head = [&](const T* base, index_t rows, index_t ld, index_t hd) {
                return MatrixView<const T>(base + hd * dh, Shape<2>{{rows, dh}}, {ld, 1});
            };
            if (n > 1) {
                RECBLOCKS_DEBUG_ASSERT(rows_[std::size_t(s.r0)].position == 0);
                const auto ends = vector_view<const index_t>(key_end_.data() + s.r0, n);
                const T* rows = qkv.row(s.r0);
                for (index_t hd = 0; hd < heads_; ++hd)
                    ops::prefix_attention(inner, head(rows, n, qkv.ld(), hd), head(rows + d, n, qkv.ld(), hd),
                                          head(rows + 2 * d, n, qkv.ld(), hd), ends, VectorView<const index_t>{},
                                          VectorView<const std::uint8_t>{}, scale, MatrixView<T>{},
                                          MatrixView<T>(ctx.row(s.r0) + hd * dh, Shape<2>{{n, dh}}, {ctx.ld(), 1}));
                return;
            }
            const index_t r = s.r0, keys_seen = key_end_(r);
            auto p = matrix_view(probs.row(r), 1, keys_seen);
            for (index_t hd = 0; hd < heads_; ++hd) {
                ops::gemm(inner, Trans::no, Trans::yes, scale, head(qkv.row(r), 1, qkv.ld(), hd),
                          head(keys, keys_seen, d, hd), T(0), p);
                ops::softmax_rows(inner, MatrixView<const T>(p), p);
                ops::gemm(inner, Trans::no, Trans::yes, T(1), MatrixView<const T>(p),
                          MatrixView<const T>(values_t + hd * dh * len, Shape<2>{{dh, keys_seen}}, {len, 1}), T(0),
                          matrix_view(ctx.row(r) + hd * dh, 1, dh));
            }
        };
        // Candidates share their state's scratch slot: one after another. Distinct states: in parallel.
        if constexpr (requires { be.threads(); be.serial(); }) {
            if (mode == Mode::commit && segments_.size() > 1) {
                const Be inner = be.serial();
                parallel_for(be.threads(), 0, static_cast<index_t>(segments_.size()), 1, [&](index_t s0, index_t s1) {
                    for (index_t s = s0; s < s1; ++s) one(inner, segments_[std::size_t(s)]);
                });
                return;
            }
        }
        for (const Segment& s : segments_) one(be, s);
    }

    template <class Be>
    static void norm(const Be& be, const blocks::LayerNorm<T>& ln, MatrixView<const T> x, MatrixView<T> y) {
        ops::layer_norm_forward(be, x, ln.params().weight.cview(), ln.params().bias.cview(),
                                static_cast<T>(ln.config().eps), y);
    }
    /// y = F(x) (+ x when the block's feed-forward carries the residual); hid is [R, F] scratch.
    template <class Be>
    static void feed_forward(const Be& be, const blocks::FeedForward<T>& ffn, MatrixView<const T> x, MatrixView<T> hid,
                             MatrixView<T> y) {
        const auto& f = ffn.params();
        ops::broadcast_rows(be, f.b1.cview(), T(0), hid);
        ops::gemm(be, Trans::no, Trans::yes, T(1), x, f.w1.cview(), T(1), hid);
        ops::activation_forward(be, ffn.config().activation, MatrixView<const T>(hid), hid);
        ops::broadcast_rows(be, f.b2.cview(), T(0), y);
        ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(hid), f.w2.cview(), T(1), y);
        if (ffn.config().residual) ops::add(be, MatrixView<const T>(y), x, y);
    }

    /// The full-recompute path: the model's encode_last on each window (left-padded to max_len).
    template <class Be>
    void recompute(const Be& be, ThreadPool& pool, std::span<State* const> states) {
        const index_t bsz = static_cast<index_t>(states.size());
        if (bsz == 0) return;
        auto ids = padded_ids(bsz);
        for (index_t b = 0; b < bsz; ++b) fill_window(ids, b, states[std::size_t(b)]->window_, -1);
        auto last = rows_of(last_, bsz, d_);
        model_.encode_last(be, pool, MatrixView<const row_id_t>(ids), last);
        for (index_t b = 0; b < bsz; ++b) std::copy(last.row(b), last.row(b) + d_, states[std::size_t(b)]->hidden_.data());
    }
    template <class Be>
    void recompute_candidates(const Be& be, ThreadPool& pool, const State& state, std::span<const row_id_t> candidates,
                              MatrixView<T> out) {
        const index_t k = static_cast<index_t>(candidates.size());
        auto ids = padded_ids(k);
        for (index_t c = 0; c < k; ++c) {
            // The window append(c) would give: a full one keeps its last overflow_keep - 1 events first.
            const index_t keep = state.size() == len_ ? opt_.overflow_keep - 1 : state.size();
            fill_window(ids, c, std::span<const row_id_t>(state.window_).last(std::size_t(keep)), candidates[std::size_t(c)]);
        }
        model_.encode_last(be, pool, MatrixView<const row_id_t>(ids), out);
    }
    MatrixView<row_id_t> padded_ids(index_t rows) {
        if (padded_.extent(0) != rows) padded_.resize(Shape<2>{{rows, len_}});
        return padded_.view();
    }
    /// Row b of ids = events (then `extra` when >= 0), left-padded with 0.
    void fill_window(MatrixView<row_id_t> ids, index_t b, std::span<const row_id_t> events, row_id_t extra) const {
        const index_t n = static_cast<index_t>(events.size()) + (extra >= 0 ? 1 : 0);
        std::fill(ids.row(b), ids.row(b) + (len_ - n), row_id_t(0));
        std::copy(events.begin(), events.end(), ids.row(b) + (len_ - n));
        if (extra >= 0) ids(b, len_ - 1) = extra;
    }

    Model& model_;
    Options opt_;
    index_t d_, len_, blocks_, heads_, ffn_inner_ = 0;
    bool incremental_ = true;
    std::vector<Row> rows_;
    std::vector<Segment> segments_;
    Vector<row_id_t> ids_, pos_;
    Vector<index_t> key_end_;
    Matrix<T> x_, tmp_, qin_, att_, h_, e_, ctx_, qkv_, ffn_hidden_, probs_, last_, scores_;
    Matrix<row_id_t> padded_;
    State scratch_state_;  // a full window's candidates: the events an append would keep
};

}  // namespace models
RECBLOCKS_NAMESPACE_END
