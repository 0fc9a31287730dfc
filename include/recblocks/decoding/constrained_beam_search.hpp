#pragma once
// Beam search over semantic-ID codes for a batch of queries (users), with and
// without the catalogue's constraint.
//
// The model (NextCodeModel): at level t (0-based) the search hands it P rows,
// each a prefix of t codes belonging to one query, and the model writes the
// log-probabilities of the next code, out [P, K_t]:
//
//   struct DecodeStep {
//       index_t level;                          // t: codes already fixed in every row
//       std::span<const std::int32_t> query;    // [P] query (user) of each row, in [0, Q)
//       std::span<const std::int32_t> parent;   // [P] row of step t-1 each row extends (empty at t = 0)
//       MatrixView<const std::int32_t> prefixes;  // [P, t] the codes so far
//   };
//   model.next_code_log_probs(const DecodeStep&, MatrixView<float> out /*[P, K_t]*/);
//
// Rows of one query are contiguous and queries ascend. At t = 0 there is one
// row per query (P = Q, prefixes [Q, 0]). A decoder with a KV cache reorders
// its cache by `parent` (row r continues row parent[r] of the previous call,
// as Hugging Face's reorder_cache(beam_idx)) and appends prefixes(r, t - 1);
// a model whose slot distributions do not depend on the prefix (RecGPT's
// single forward pass) only reads `query` and `level`. The model sets up its
// per-query context (history, encoder output) before the search.
//
// Search: scores are sums of the model's log-probs (float, level by level, no
// renormalisation). At level t each kept prefix proposes its children — in the
// constrained search only the codes the catalogue allows (FlatCatalogue: its
// dense child table on the first levels, a scan of the K_t log-probs against
// it; its CSR row after; CodeTrie: its CSR row at every level), in the
// unconstrained one every code — at most
// expansions[t] of them per prefix (its best; 0 = all), and the best beams[t]
// of all proposals of a query are kept (RecGPT: beams {10, 20, 20, ...},
// expansions {all, 5, 5, ...}: BeamSearchOptions::recgpt). The last level keeps
// max(beams[L-1], k). Ties: equal scores are ordered by the code tuple,
// lexicographically (by the trie's node id / the flat catalogue's prefix row,
// both in that order), so results do not depend on the thread count, and the
// two catalogue forms give identical results. The constrained search returns the top-k items of each query
// (a leaf shared by several items under DuplicateIds::map_to_all lists them in
// id order); by construction every item is real and none repeats. Fewer than k
// may be found when narrow beams pruned the rest: the tail is then item -1,
// score -inf. The unconstrained search returns code tuples ([Q, k, L]; unused
// slots -1) and count_invalid_ids() reports how many name no item.
//
// Memory: BeamSearchWorkspace keeps every buffer between calls and only grows,
// so a warm call with the same (Q, k, options) allocates nothing in the search
// (growth_count() stays put). Threads: with options.pool, the per-query
// selection runs on the pool (the model call is the model's business).
//
// Errors: ValueError for k < 1, k larger than the catalogue (or code space), bad
// beam options, a NaN log-prob; ShapeError for outputs of the wrong shape.
//
// Selection: per query, candidates at or above a running threshold go to a
// buffer of 4 x beam; when it fills, nth_element keeps the best beam and the
// threshold rises, so most candidates cost one load, one add and one compare.
// Score and tie-break are packed into one 64-bit integer (score's order-
// preserving bits, then the prefix's lexicographic rank), one comparison each.
//
// Caveats: the unconstrained search keys prefixes by their mixed-radix value, so
// the product of the codebook sizes must be below 2^62, and ranks its tie-breaks
// as beam x K_t, which must stay within 2^32 (ValueError otherwise).
#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/decoding/flat_catalogue.hpp"
#include "recblocks/tokenizers/code_trie.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace decoding {

/// One call of the model: P prefixes of `level` codes (see the header comment).
struct DecodeStep {
    index_t level = 0;
    std::span<const std::int32_t> query;
    std::span<const std::int32_t> parent;
    MatrixView<const std::int32_t> prefixes;

    [[nodiscard]] index_t rows() const { return static_cast<index_t>(query.size()); }
};

/// A model that scores the next code of a batch of prefixes: writes
/// out(r, c) = log p(code c at level step.level | query step.query[r], prefix r).
template <class M>
concept NextCodeModel = requires(M& m, const DecodeStep& step, MatrixView<float> out) {
    m.next_code_log_probs(step, out);
};

struct BeamSearchOptions {
    index_t beam_width = 20;          ///< prefixes kept after each level when `beams` is empty
    std::vector<index_t> beams{};     ///< per level (L entries, each >= 1), or empty
    std::vector<index_t> expansions{};  ///< per level: children proposed per prefix (0 = all), or empty (all)
    ThreadPool* pool = nullptr;       ///< per-query selection on this pool; nullptr: the calling thread

    /// RecGPT's setting: 10 beams at the first level, 5 expansions per beam
    /// after, 20 kept.
    static BeamSearchOptions recgpt(index_t levels) {
        BeamSearchOptions o;
        o.beams.assign(static_cast<std::size_t>(levels), 20);
        o.expansions.assign(static_cast<std::size_t>(levels), 5);
        if (levels > 0) {
            o.beams[0] = 10;
            o.expansions[0] = 0;
        }
        return o;
    }
};

/// How many returned code tuples name no catalogue item.
struct InvalidIdStats {
    index_t returned = 0;  ///< tuples returned (padding excluded)
    index_t invalid = 0;   ///< of which not a catalogue ID
    [[nodiscard]] double rate() const {
        return returned ? static_cast<double>(invalid) / static_cast<double>(returned) : 0.0;
    }
};

namespace detail {
struct SearchImpl;
}

/// Scratch reused across searches; grows to the largest call, then stays.
class BeamSearchWorkspace {
public:
    /// How many times a buffer had to grow; constant once warm.
    [[nodiscard]] std::size_t growth_count() const { return growths_; }

    /// A proposed prefix: `order` packs the score (high 32 bits, an
    /// order-preserving image of the float) and the tie-break (low 32 bits,
    /// 2^32 - 1 - the prefix's lexicographic rank), so one integer comparison
    /// ranks candidates: larger is better.
    struct Candidate {
        std::uint64_t order;
        std::int32_t parent;  // row of the current step it extends
        std::int32_t code;    // the code it appends
    };

private:
    friend struct detail::SearchImpl;

    template <class T>
    void grow(std::vector<T>& v, std::size_t n) {
        if (n > v.capacity()) ++growths_;
        v.resize(std::max(v.size(), n));
    }

    // Double-buffered rows of the current / next step.
    std::vector<std::int32_t> query_[2], parent_[2], prefix_[2];
    std::vector<float> score_[2];
    std::vector<std::uint64_t> key_[2];  // node id (constrained) or mixed-radix prefix value (unconstrained)
    std::vector<std::uint32_t> rank_;    // unconstrained: lexicographic rank of a row among its query's rows
    std::vector<std::pair<std::uint64_t, index_t>> rank_scratch_;
    std::vector<float> logits_;
    std::vector<Candidate> heap_;     // per query: its selection buffer (2 x beam)
    std::vector<Candidate> expand_;   // per query: the per-prefix expansion buffer (2 x expansions)
    std::vector<index_t> selected_;   // per query: candidates kept
    std::vector<index_t> beams_, expansions_;  // the plan of the current call
    int last_ = 0;                    // which buffer holds the final rows
    index_t last_rows_ = 0;
    std::size_t growths_ = 0;
};

namespace detail {

/// An unsigned integer ordered as the float is (-0 counts as +0; not for NaN).
inline std::uint32_t orderable(float f) {
    const auto b = std::bit_cast<std::uint32_t>(f + 0.0f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline float from_orderable(std::uint32_t u) {
    return std::bit_cast<float>((u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u);
}
/// Packs a score and a 32-bit lexicographic tie value (smaller first).
inline std::uint64_t pack_order(float score, std::uint32_t tie) {
    return (std::uint64_t{orderable(score)} << 32) | (0xFFFFFFFFu - tie);
}
inline float score_of(const BeamSearchWorkspace::Candidate& c) {
    return from_orderable(static_cast<std::uint32_t>(c.order >> 32));
}
inline std::uint32_t tie_of(const BeamSearchWorkspace::Candidate& c) {
    return 0xFFFFFFFFu - static_cast<std::uint32_t>(c.order);
}

/// a before b: higher score, then the lexicographically smaller prefix.
struct Better {
    bool operator()(const BeamSearchWorkspace::Candidate& a, const BeamSearchWorkspace::Candidate& b) const {
        return a.order > b.order;
    }
};
inline constexpr Better better{};

/// Bounded selection of the best `cap` candidates: candidates not worse than
/// the threshold are appended to a buffer of kBufferFactor * cap; when it fills, the best
/// cap are partitioned to the front and the threshold rises to the worst of
/// them. A candidate scoring below the threshold is worse than cap kept ones,
/// so it is dropped with one comparison (most are, once the buffer first fills).
struct TopSelector {
    static constexpr index_t kBufferFactor = 4;
    BeamSearchWorkspace::Candidate* data;  // room for kBufferFactor * cap
    index_t cap;
    index_t size = 0;
    float threshold = -std::numeric_limits<float>::infinity();

    void offer(const BeamSearchWorkspace::Candidate& c) {
        data[size++] = c;
        if (size == kBufferFactor * cap) [[unlikely]]
            shrink();
    }
    /// Keeps the best cap, sorted best first.
    void finish() {
        if (size > cap) {
            std::nth_element(data, data + cap - 1, data + size, better);
            size = cap;
        }
        std::sort(data, data + size, better);
    }

private:
    void shrink() {
        std::nth_element(data, data + cap - 1, data + size, better);
        size = cap;
        threshold = score_of(data[cap - 1]);  // nth_element: nothing after it is better
    }
};

/// The unconstrained search's constraint: none.
struct NoConstraint {};

/// The implementation shared by both searches (a struct so it can reach the
/// workspace's buffers).
struct SearchImpl {
    using Candidate = BeamSearchWorkspace::Candidate;

    /// Per-level beam and expansion counts, validated.
    static void plan(std::string_view op, const BeamSearchOptions& opt, index_t levels, index_t k,
                     std::vector<index_t>& beams, std::vector<index_t>& expansions) {
        RECBLOCKS_CHECK_VALUE(opt.beams.empty() || static_cast<index_t>(opt.beams.size()) == levels, op,
                              ": options.beams has ", opt.beams.size(), " entries; need one per level (", levels,
                              ") or none");
        RECBLOCKS_CHECK_VALUE(opt.expansions.empty() || static_cast<index_t>(opt.expansions.size()) == levels, op,
                              ": options.expansions has ", opt.expansions.size(), " entries; need one per level (",
                              levels, ") or none");
        RECBLOCKS_CHECK_VALUE(opt.beams.empty() ? opt.beam_width >= 1 : true, op, ": options.beam_width is ",
                              opt.beam_width, "; need >= 1");
        beams.resize(static_cast<std::size_t>(levels));
        expansions.resize(static_cast<std::size_t>(levels));
        for (index_t t = 0; t < levels; ++t) {
            const auto ti = static_cast<std::size_t>(t);
            beams[ti] = opt.beams.empty() ? opt.beam_width : opt.beams[ti];
            expansions[ti] = opt.expansions.empty() ? 0 : opt.expansions[ti];
            RECBLOCKS_CHECK_VALUE(beams[ti] >= 1 && beams[ti] <= (index_t{1} << 20), op, ": beam of level ", t, " is ",
                                  beams[ti], "; need 1 <= beam <= 2^20");
            RECBLOCKS_CHECK_VALUE(expansions[ti] >= 0, op, ": expansions of level ", t, " is ", expansions[ti],
                                  "; need >= 0 (0 = all)");
        }
        beams.back() = std::max(beams.back(), k);
    }

    /// Runs the levels: children come from the trie (Constrained) or are every
    /// code. The final rows are left in the workspace (result_*).
    template <class Constraint, class Model>
    static void run(Model& model, const Constraint* catalogue, std::span<const std::int32_t> sizes,
                    index_t queries, index_t k, const BeamSearchOptions& opt, BeamSearchWorkspace& ws,
                    std::string_view op) {
        constexpr bool Constrained = !std::is_same_v<Constraint, NoConstraint>;
        constexpr bool Flat = std::is_same_v<Constraint, FlatCatalogue>;
        const auto levels = static_cast<index_t>(sizes.size());
        if (static_cast<std::size_t>(levels) > ws.beams_.capacity()) ws.growths_ += 2;
        std::vector<index_t>& beams = ws.beams_;
        std::vector<index_t>& expansions = ws.expansions_;
        plan(op, opt, levels, k, beams, expansions);
        if constexpr (!Constrained) {
            // Tie values rank * K_t + code must fit 32 bits.
            for (index_t t = 1; t < levels; ++t)
                RECBLOCKS_CHECK_VALUE(beams[static_cast<std::size_t>(t - 1)] * index_t{sizes[static_cast<std::size_t>(t)]} <=
                                          (index_t{1} << 32),
                                      op, ": beam ", beams[static_cast<std::size_t>(t - 1)], " x codebook size ",
                                      sizes[static_cast<std::size_t>(t)], " of level ", t, " exceeds 2^32");
        }
        index_t max_beam = 1, max_expand = 1, max_k = 1;
        for (index_t t = 0; t < levels; ++t) {
            max_beam = std::max(max_beam, beams[static_cast<std::size_t>(t)]);
            max_expand = std::max(max_expand, expansions[static_cast<std::size_t>(t)]);
            max_k = std::max<index_t>(max_k, sizes[static_cast<std::size_t>(t)]);
        }
        const auto max_rows = static_cast<std::size_t>(queries * max_beam);
        for (int b = 0; b < 2; ++b) {
            ws.grow(ws.query_[b], max_rows);
            ws.grow(ws.parent_[b], max_rows);
            ws.grow(ws.prefix_[b], max_rows * static_cast<std::size_t>(levels));
            ws.grow(ws.score_[b], max_rows);
            ws.grow(ws.key_[b], max_rows);
        }
        ws.grow(ws.logits_, max_rows * static_cast<std::size_t>(max_k));
        ws.grow(ws.heap_, detail::TopSelector::kBufferFactor * max_rows);
        ws.grow(ws.expand_, static_cast<std::size_t>(detail::TopSelector::kBufferFactor * queries * max_expand));
        ws.grow(ws.selected_, static_cast<std::size_t>(queries));
        if constexpr (!Constrained) {
            ws.grow(ws.rank_, max_rows);
            ws.grow(ws.rank_scratch_, static_cast<std::size_t>(max_beam));
        }

        // Step 0: one row per query, the empty prefix (trie root, key 0).
        int cur = 0;
        index_t rows = queries;
        for (index_t q = 0; q < queries; ++q) {
            ws.query_[0][static_cast<std::size_t>(q)] = static_cast<std::int32_t>(q);
            ws.score_[0][static_cast<std::size_t>(q)] = 0.0f;
            ws.key_[0][static_cast<std::size_t>(q)] = 0;  // the trie's root / level 0's only prefix row
            if constexpr (!Constrained) ws.rank_[static_cast<std::size_t>(q)] = 0;
        }
        for (index_t t = 0; t < levels; ++t) {
            const auto ti = static_cast<std::size_t>(t);
            const index_t kt = sizes[ti];
            const index_t beam = beams[ti];
            const index_t expand = expansions[ti];
            DecodeStep step;
            step.level = t;
            step.query = {ws.query_[cur].data(), static_cast<std::size_t>(rows)};
            step.parent = t == 0 ? std::span<const std::int32_t>{}
                                 : std::span<const std::int32_t>{ws.parent_[cur].data(), static_cast<std::size_t>(rows)};
            step.prefixes = matrix_view<const std::int32_t>(ws.prefix_[cur].data(), rows, t);
            const MatrixView<float> out = matrix_view(ws.logits_.data(), rows, kt);
            model.next_code_log_probs(step, out);

            // Rows of each query are contiguous: find each query's range.
            const std::int32_t* qrow = ws.query_[cur].data();
            auto select = [&](index_t q, index_t row_begin, index_t row_end) {
                detail::TopSelector heap{ws.heap_.data() + detail::TopSelector::kBufferFactor * q * beam, beam};
                Candidate* eh = ws.expand_.data() + detail::TopSelector::kBufferFactor * q * max_expand;
                for (index_t r = row_begin; r < row_end; ++r) {
                    const float s = ws.score_[cur][static_cast<std::size_t>(r)];
                    const std::uint64_t key = ws.key_[cur][static_cast<std::size_t>(r)];
                    const float* lp = out.row(r);
                    // Tie value of a child: its node / prefix row (both follow
                    // lexicographic order within a level), or rank(row) * K_t + j.
                    std::span<const std::int32_t> allowed;
                    std::uint32_t first_tie;
                    index_t n;
                    const std::int32_t* dense = nullptr;  // FlatCatalogue's dense level: child row per code
                    if constexpr (Flat) {
                        const auto row = static_cast<FlatCatalogue::row_t>(key);
                        allowed = catalogue->allowed_next(t, row);
                        first_tie = static_cast<std::uint32_t>(catalogue->first_child(t, row));
                        n = static_cast<index_t>(allowed.size());
                        if (catalogue->is_dense(t)) dense = catalogue->dense_children(t, row);
                    } else if constexpr (Constrained) {
                        const auto node = static_cast<tokenizers::CodeTrie::node_t>(key);
                        allowed = catalogue->allowed_next(node);
                        first_tie = static_cast<std::uint32_t>(catalogue->first_child(node));
                        n = static_cast<index_t>(allowed.size());
                    } else {
                        (void)key;
                        first_tie = ws.rank_[static_cast<std::size_t>(r)] * static_cast<std::uint32_t>(kt);
                        n = kt;
                    }
                    auto code_at = [&](index_t j) -> std::int32_t {
                        if constexpr (Constrained) return allowed[static_cast<std::size_t>(j)];
                        else return static_cast<std::int32_t>(j);
                    };
                    auto nan_error = [&](std::int32_t code) {
                        return ValueError(recblocks::detail::concat(op, ": the model's log-prob of code ", code,
                                                                    " at level ", t, ", row ", r, " is NaN"));
                    };
                    auto propose = [&](detail::TopSelector& h) {
                        // A NaN score fails `>=`, so it never enters the selection;
                        // the flag (no branch) reports it after the row.
                        bool nan = false;
                        if (dense) {
                            // Dense row: scan the K_t log-probs in order, the child
                            // table masking the codes no ID continues with (-1).
                            for (index_t c = 0; c < kt; ++c) {
                                const float v = lp[c];
                                const bool ok = dense[c] >= 0;
                                nan |= ok & std::isnan(v);
                                const float sc = s + v;
                                if (sc >= h.threshold && ok) [[unlikely]]
                                    h.offer(Candidate{pack_order(sc, static_cast<std::uint32_t>(dense[c])),
                                                      static_cast<std::int32_t>(r), static_cast<std::int32_t>(c)});
                            }
                            if (nan) [[unlikely]] {
                                std::int32_t c = 0;
                                while (dense[c] < 0 || !std::isnan(lp[c])) ++c;
                                throw nan_error(c);
                            }
                            return;
                        }
                        for (index_t j = 0; j < n; ++j) {
                            const std::int32_t c = code_at(j);
                            const float v = lp[c];
                            nan |= std::isnan(v);
                            const float sc = s + v;
                            if (sc >= h.threshold) [[unlikely]]
                                h.offer(Candidate{pack_order(sc, first_tie + static_cast<std::uint32_t>(j)),
                                                  static_cast<std::int32_t>(r), c});
                        }
                        if (nan) [[unlikely]] {
                            index_t j = 0;
                            while (!std::isnan(lp[code_at(j)])) ++j;
                            throw nan_error(code_at(j));
                        }
                    };
                    if (expand == 0 || expand >= n) {
                        propose(heap);
                    } else {
                        detail::TopSelector local{eh, expand};
                        propose(local);
                        local.finish();
                        for (index_t j = 0; j < local.size; ++j)
                            if (score_of(eh[j]) >= heap.threshold) heap.offer(eh[j]);
                    }
                }
                // Best first: the next level's threshold then rises fastest.
                heap.finish();
                ws.selected_[static_cast<std::size_t>(q)] = heap.size;
            };
            auto select_range = [&](index_t q_begin, index_t q_end) {
                // Row ranges: rows of query q are those with query_[r] == q, contiguous.
                index_t r = row_start(qrow, rows, q_begin);
                for (index_t q = q_begin; q < q_end; ++q) {
                    index_t e = r;
                    while (e < rows && qrow[e] == q) ++e;
                    select(q, r, e);
                    r = e;
                }
            };
            if (opt.pool && opt.pool->size() > 1 && queries > 1) {
                const index_t grain = std::max<index_t>(1, queries / (4 * opt.pool->size()));
                parallel_for(*opt.pool, 0, queries, grain, select_range);
            } else {
                select_range(0, queries);
            }

            // Compact the selections into the next step's rows.
            const int nxt = 1 - cur;
            index_t w = 0;
            for (index_t q = 0; q < queries; ++q) {
                const Candidate* h = ws.heap_.data() + detail::TopSelector::kBufferFactor * q * beam;
                for (index_t j = 0; j < ws.selected_[static_cast<std::size_t>(q)]; ++j, ++w) {
                    const Candidate& c = h[j];
                    const auto wi = static_cast<std::size_t>(w);
                    ws.query_[nxt][wi] = static_cast<std::int32_t>(q);
                    ws.parent_[nxt][wi] = c.parent;
                    ws.score_[nxt][wi] = score_of(c);
                    if constexpr (Constrained) ws.key_[nxt][wi] = tie_of(c);  // the child's node id / prefix row
                    else
                        ws.key_[nxt][wi] = ws.key_[cur][static_cast<std::size_t>(c.parent)] * static_cast<std::uint64_t>(kt) +
                                           static_cast<std::uint64_t>(c.code);
                    std::int32_t* dst = ws.prefix_[nxt].data() + w * (t + 1);
                    const std::int32_t* src = ws.prefix_[cur].data() + c.parent * t;
                    std::copy_n(src, t, dst);
                    dst[t] = c.code;
                }
            }
            if constexpr (!Constrained) {
                // Lexicographic rank of each row among its query's rows (the next tie values).
                auto& tmp = ws.rank_scratch_;
                for (index_t b = 0; b < w;) {
                    index_t e = b;
                    while (e < w && ws.query_[nxt][static_cast<std::size_t>(e)] == ws.query_[nxt][static_cast<std::size_t>(b)]) ++e;
                    for (index_t r = b; r < e; ++r)
                        tmp[static_cast<std::size_t>(r - b)] = {ws.key_[nxt][static_cast<std::size_t>(r)], r};
                    std::sort(tmp.begin(), tmp.begin() + (e - b));
                    for (index_t i = 0; i < e - b; ++i)
                        ws.rank_[static_cast<std::size_t>(tmp[static_cast<std::size_t>(i)].second)] =
                            static_cast<std::uint32_t>(i);
                    b = e;
                }
            }
            rows = w;
            cur = nxt;
        }
        ws.last_ = cur;
        ws.last_rows_ = rows;
    }

    /// First row of query q (rows are grouped by ascending query).
    static index_t row_start(const std::int32_t* qrow, index_t rows, index_t q) {
        return std::lower_bound(qrow, qrow + rows, static_cast<std::int32_t>(q)) - qrow;
    }

    static index_t result_rows(const BeamSearchWorkspace& ws) { return ws.last_rows_; }
    static const std::int32_t* result_query(const BeamSearchWorkspace& ws) { return ws.query_[ws.last_].data(); }
    static const float* result_score(const BeamSearchWorkspace& ws) { return ws.score_[ws.last_].data(); }
    static const std::uint64_t* result_key(const BeamSearchWorkspace& ws) { return ws.key_[ws.last_].data(); }
    static const std::int32_t* result_prefix(const BeamSearchWorkspace& ws) { return ws.prefix_[ws.last_].data(); }
};

}  // namespace detail

namespace detail {

template <class Catalogue, class Model>
void constrained_search(Model& model, const Catalogue& cat, index_t queries, index_t k, MatrixView<row_id_t> items,
                        MatrixView<float> scores, BeamSearchWorkspace& ws, const BeamSearchOptions& options) {
    constexpr std::string_view op = "decoding::constrained_beam_search";
    RECBLOCKS_CHECK_VALUE(cat.depth() >= 1, op, ": the catalogue is empty (default-constructed)");
    RECBLOCKS_CHECK_VALUE(queries >= 0, op, ": negative query count ", queries);
    RECBLOCKS_CHECK_VALUE(k >= 1 && k <= cat.num_items(), op, ": k = ", k, " but the catalogue has ",
                          cat.num_items(), " items; need 1 <= k <= catalogue size");
    RECBLOCKS_CHECK_SHAPE(items.rows() == queries && items.cols() == k, op, ": items is ", items.shape(),
                          " but expected [", queries, ", ", k, "]");
    RECBLOCKS_CHECK_SHAPE(scores.rows() == queries && scores.cols() == k, op, ": scores is ", scores.shape(),
                          " but expected [", queries, ", ", k, "]");
    if (queries == 0) return;
    SearchImpl::run<Catalogue>(model, &cat, cat.codebook_sizes(), queries, k, options, ws, op);
    const std::int32_t* qrow = SearchImpl::result_query(ws);
    const float* sc = SearchImpl::result_score(ws);
    const std::uint64_t* key = SearchImpl::result_key(ws);
    const index_t rows = SearchImpl::result_rows(ws);
    index_t r = 0;
    for (index_t q = 0; q < queries; ++q) {
        index_t filled = 0;
        for (; r < rows && qrow[r] == q; ++r) {
            for (const row_id_t item : cat.leaf_items(static_cast<std::int32_t>(key[r]))) {
                if (filled == k) break;
                items(q, filled) = item;
                scores(q, filled) = sc[r];
                ++filled;
            }
        }
        for (; filled < k; ++filled) {
            items(q, filled) = -1;
            scores(q, filled) = -std::numeric_limits<float>::infinity();
        }
    }
}

}  // namespace detail

/// Catalogue-aware beam search: the top-k catalogue items of each of `queries`
/// queries under `model`, only ever extending prefixes the catalogue allows.
/// items [Q, k] (item ids), scores [Q, k] (summed log-probs), best first;
/// unfilled slots are -1 / -inf (only when narrow beams pruned the catalogue).
/// The flat catalogue and the trie give identical results (ties included).
template <NextCodeModel Model>
void constrained_beam_search(Model& model, const FlatCatalogue& catalogue, index_t queries, index_t k,
                             MatrixView<row_id_t> items, MatrixView<float> scores, BeamSearchWorkspace& ws,
                             const BeamSearchOptions& options = {}) {
    detail::constrained_search(model, catalogue, queries, k, items, scores, ws, options);
}

/// The same search under a CodeTrie (the catalogue walked node by node; every
/// level read through its CSR arrays).
template <NextCodeModel Model>
void constrained_beam_search(Model& model, const tokenizers::CodeTrie& trie, index_t queries, index_t k,
                             MatrixView<row_id_t> items, MatrixView<float> scores, BeamSearchWorkspace& ws,
                             const BeamSearchOptions& options = {}) {
    detail::constrained_search(model, trie, queries, k, items, scores, ws, options);
}

/// Plain beam search over the whole code space (no catalogue): the top-k code
/// tuples of each query. codes [Q, k, L], scores [Q, k], best first; unfilled
/// slots (only when the code space has fewer than k tuples reachable by the
/// beams) are -1 / -inf. `codebook_sizes` [L] gives K_t per level.
template <NextCodeModel Model>
void beam_search(Model& model, std::span<const std::int32_t> codebook_sizes, index_t queries, index_t k,
                 TensorView<std::int32_t, 3> codes, MatrixView<float> scores, BeamSearchWorkspace& ws,
                 const BeamSearchOptions& options = {}) {
    constexpr std::string_view op = "decoding::beam_search";
    const auto levels = static_cast<index_t>(codebook_sizes.size());
    RECBLOCKS_CHECK_VALUE(levels >= 1, op, ": no codebook sizes (need one per level)");
    RECBLOCKS_CHECK_VALUE(queries >= 0, op, ": negative query count ", queries);
    double space = 1.0;
    for (index_t t = 0; t < levels; ++t) {
        RECBLOCKS_CHECK_VALUE(codebook_sizes[static_cast<std::size_t>(t)] >= 1, op, ": codebook size of level ", t,
                              " is ", codebook_sizes[static_cast<std::size_t>(t)], "; need >= 1");
        space *= codebook_sizes[static_cast<std::size_t>(t)];
    }
    RECBLOCKS_CHECK_VALUE(space < 4.6e18, op, ": the code space (", space, " tuples) is too large; need < 2^62");
    RECBLOCKS_CHECK_VALUE(k >= 1 && static_cast<double>(k) <= space, op, ": k = ", k, " but the code space has ",
                          space, " tuples; need 1 <= k <= that");
    RECBLOCKS_CHECK_SHAPE(codes.extent(0) == queries && codes.extent(1) == k && codes.extent(2) == levels, op,
                          ": codes is ", codes.shape(), " but expected [", queries, ", ", k, ", ", levels, "]");
    RECBLOCKS_CHECK_SHAPE(scores.rows() == queries && scores.cols() == k, op, ": scores is ", scores.shape(),
                          " but expected [", queries, ", ", k, "]");
    if (queries == 0) return;
    detail::SearchImpl::run<detail::NoConstraint>(model, static_cast<const detail::NoConstraint*>(nullptr), codebook_sizes, queries, k, options, ws, op);
    const std::int32_t* qrow = detail::SearchImpl::result_query(ws);
    const float* sc = detail::SearchImpl::result_score(ws);
    const std::int32_t* prefix = detail::SearchImpl::result_prefix(ws);
    const index_t rows = detail::SearchImpl::result_rows(ws);
    index_t r = 0;
    for (index_t q = 0; q < queries; ++q) {
        index_t filled = 0;
        for (; r < rows && qrow[r] == q; ++r) {
            if (filled == k) continue;
            for (index_t t = 0; t < levels; ++t) codes(q, filled, t) = prefix[r * levels + t];
            scores(q, filled) = sc[r];
            ++filled;
        }
        for (; filled < k; ++filled) {
            for (index_t t = 0; t < levels; ++t) codes(q, filled, t) = -1;
            scores(q, filled) = -std::numeric_limits<float>::infinity();
        }
    }
}

/// How many of the tuples codes [Q, k, L] (as beam_search returns them; rows of
/// -1 are padding and skipped) are not catalogue IDs. ShapeError if L differs
/// from the trie's depth.
inline InvalidIdStats count_invalid_ids(const tokenizers::CodeTrie& trie, TensorView<const std::int32_t, 3> codes) {
    RECBLOCKS_CHECK_SHAPE(codes.extent(2) == trie.depth(), "decoding::count_invalid_ids: codes is ", codes.shape(),
                          " but the IDs have ", trie.depth(), " levels");
    InvalidIdStats s;
    for (index_t q = 0; q < codes.extent(0); ++q)
        for (index_t j = 0; j < codes.extent(1); ++j) {
            if (codes(q, j, 0) < 0) continue;
            ++s.returned;
            tokenizers::CodeTrie::node_t n = tokenizers::CodeTrie::kRoot;
            for (index_t t = 0; t < codes.extent(2) && n != tokenizers::CodeTrie::kNoNode; ++t)
                n = trie.child(n, codes(q, j, t));
            s.invalid += n == tokenizers::CodeTrie::kNoNode;
        }
    return s;
}

/// count_invalid_ids against a FlatCatalogue.
inline InvalidIdStats count_invalid_ids(const FlatCatalogue& catalogue, TensorView<const std::int32_t, 3> codes) {
    RECBLOCKS_CHECK_SHAPE(codes.extent(2) == catalogue.depth(), "decoding::count_invalid_ids: codes is ",
                          codes.shape(), " but the IDs have ", catalogue.depth(), " levels");
    InvalidIdStats s;
    std::vector<std::int32_t> tuple(static_cast<std::size_t>(codes.extent(2)));
    for (index_t q = 0; q < codes.extent(0); ++q)
        for (index_t j = 0; j < codes.extent(1); ++j) {
            if (codes(q, j, 0) < 0) continue;
            ++s.returned;
            for (index_t t = 0; t < codes.extent(2); ++t) tuple[static_cast<std::size_t>(t)] = codes(q, j, t);
            s.invalid += !catalogue.contains(tuple);
        }
    return s;
}

}  // namespace decoding
RECBLOCKS_NAMESPACE_END
