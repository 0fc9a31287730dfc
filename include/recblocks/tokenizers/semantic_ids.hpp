#pragma once
// Semantic IDs: the map item -> tuple of M discrete codes (code m in [0, K_m)),
// and back, with the two published ways of making tuples unique.
//
//   SemanticIds ids(codes /*[N, M] int32*/, {256, 256, 256});
//   ids.codes(i)          -> the M codes of item i
//   ids.items_with(tuple) -> the items whose tuple it is (ascending ids; empty if none)
//   ids.collisions()      -> CollisionStats: items sharing their tuple, distinct tuples
//
// Collision handling:
//   * TIGER (with_disambiguation_code): one extra level; an item's extra code is
//     its index within its collision group, in item order (0 for a unique item
//     and for the first item of a group). The extra level's size is the largest
//     group. Afterwards every tuple is unique.
//   * LC-Rec (rebalance_last_level): the colliding items are re-coded at the last
//     level only, by Sinkhorn–Knopp balancing of their distances to every
//     last-level code: distances rescaled to [-1, 1] by the group's min/max,
//     Q = exp(-d / eps), alternate row / column normalisation for a fixed number of
//     iterations, code = argmax per item (lowest code on ties); repeated for up to
//     `max_rounds` rounds on the groups that still collide (stopping early after a round
//     that changes no code: the next would repeat it). Distances come from a
//     callback (any quantizer) or an [N, K_last] matrix. Items that did not collide
//     at the start are never changed. It reduces collisions; it does not promise to
//     remove them all (LC-Rec does not either).
//     We iterate in the log domain: the same fixed point as the published
//     multiplicative form, without its overflow at eps = 0.003 (exp(333)).
//
// Save / load (save_semantic_ids / load_semantic_ids): safetensors with tensors
// "codes" (I32 [N, L]) and "codebook_sizes" (I32 [L]), and "__metadata__" entries
// "format" = "recblocks-semantic-ids-1" and "semantic_ids" = a small JSON object
// {"items": N, "levels": L, "codebook_sizes": [...], "disambiguation_level": bool}.
// Writes are atomic (temp file + fsync + rename). Loads validate everything
// (format, shapes, dtypes, the header against the tensors, every code in range)
// and raise FormatError naming the file and the tensor.
//
// Caveats: codes are int32; N < 2^31. Lookup codes -> items is a binary search
// over a lexicographically sorted permutation (O(M log N)), no hash table.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/io/json_header.hpp"
#include "recblocks/io/safetensors.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

/// How many items share their code tuple with another item.
struct CollisionStats {
    index_t items = 0;            ///< N
    index_t distinct_tuples = 0;  ///< number of different tuples
    index_t colliding_items = 0;  ///< items whose tuple is also another item's
    index_t groups = 0;           ///< tuples held by two or more items
    index_t largest_group = 0;    ///< items of the most shared tuple (1 when all are unique; 0 when N = 0)

    /// colliding_items / items (0 for an empty catalogue).
    [[nodiscard]] double rate() const {
        return items ? static_cast<double>(colliding_items) / static_cast<double>(items) : 0.0;
    }
};

/// Settings of the LC-Rec re-assignment (defaults: LC-Rec's last level).
struct SinkhornOptions {
    double epsilon = 0.003;  ///< temperature of Q = exp(-d / epsilon), > 0
    int iterations = 50;     ///< row + column normalisations per Sinkhorn call, >= 1
    int max_rounds = 20;     ///< re-coding rounds over the groups that still collide, >= 1
};

/// What rebalance_last_level did.
struct RebalanceReport {
    CollisionStats before;
    CollisionStats after;
    int rounds = 0;              ///< rounds run (0 when nothing collided)
    index_t items_changed = 0;   ///< items whose last code differs from the start
};

namespace detail {

/// Lexicographic comparison of two rows of `m` codes.
inline int compare_tuples(const std::int32_t* a, const std::int32_t* b, index_t m) {
    for (index_t j = 0; j < m; ++j)
        if (a[j] != b[j]) return a[j] < b[j] ? -1 : 1;
    return 0;
}

/// Permutation of [0, N) sorting rows of `codes` lexicographically, ties by item id.
inline void sort_rows(const std::int32_t* codes, index_t n, index_t m, std::vector<row_id_t>& order) {
    order.resize(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), row_id_t{0});
    std::sort(order.begin(), order.end(), [&](row_id_t a, row_id_t b) {
        const int c = compare_tuples(codes + a * m, codes + b * m, m);
        return c != 0 ? c < 0 : a < b;
    });
}

/// Collision statistics of rows already sorted by `order`.
inline CollisionStats stats_of_sorted(const std::int32_t* codes, index_t n, index_t m,
                                      const std::vector<row_id_t>& order) {
    CollisionStats s;
    s.items = n;
    for (index_t i = 0; i < n;) {
        index_t j = i + 1;
        while (j < n && compare_tuples(codes + order[i] * m, codes + order[j] * m, m) == 0) ++j;
        ++s.distinct_tuples;
        const index_t g = j - i;
        s.largest_group = std::max(s.largest_group, g);
        if (g > 1) {
            ++s.groups;
            s.colliding_items += g;
        }
        i = j;
    }
    return s;
}

/// Sinkhorn–Knopp in the log domain on `d` [g, k] (overwritten), writes the
/// argmax code of each row to `out[g]`. Rescales d to [-1, 1] by its min/max
/// first, as LC-Rec does.
inline void sinkhorn_argmax(std::vector<double>& d, index_t g, index_t k, const SinkhornOptions& opt,
                            std::vector<double>& tmp, std::int32_t* out) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const double v : d) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    const double mid = 0.5 * (hi + lo);
    const double amp = hi - mid + 1e-5;
    for (double& v : d) v = -((v - mid) / amp) / opt.epsilon;  // log Q
    auto logsumexp = [](const double* p, index_t n, index_t stride) {
        double mx = -std::numeric_limits<double>::infinity();
        for (index_t i = 0; i < n; ++i) mx = std::max(mx, p[i * stride]);
        double s = 0.0;
        for (index_t i = 0; i < n; ++i) s += std::exp(p[i * stride] - mx);
        return mx + std::log(s);
    };
    tmp.resize(static_cast<std::size_t>(k));
    for (int it = 0; it < opt.iterations; ++it) {
        for (index_t r = 0; r < g; ++r) {  // rows: each item's mass is 1 (times a constant)
            double* row = d.data() + r * k;
            const double l = logsumexp(row, k, 1);
            for (index_t c = 0; c < k; ++c) row[c] -= l;
        }
        for (index_t c = 0; c < k; ++c) tmp[static_cast<std::size_t>(c)] = logsumexp(d.data() + c, g, k);
        for (index_t r = 0; r < g; ++r) {  // columns: each code's mass is equal
            double* row = d.data() + r * k;
            for (index_t c = 0; c < k; ++c) row[c] -= tmp[static_cast<std::size_t>(c)];
        }
    }
    for (index_t r = 0; r < g; ++r) {
        const double* row = d.data() + r * k;
        index_t best = 0;
        for (index_t c = 1; c < k; ++c)
            if (row[c] > row[best]) best = c;
        out[r] = static_cast<std::int32_t>(best);
    }
}

}  // namespace detail

/// The item -> code tuple map of a catalogue. Immutable after construction,
/// except through rebalance_last_level.
class SemanticIds {
public:
    SemanticIds() = default;

    /// codes [N, L] (any leading dimension), codebook_sizes [L], each >= 1. Every
    /// code must lie in [0, codebook_sizes[m]) (IndexError naming item, level and
    /// value), N < 2^31 (ValueError), L >= 1 and the sizes' count = L (ShapeError).
    /// `disambiguation_level`: whether the last level is a TIGER extra code.
    SemanticIds(MatrixView<const std::int32_t> codes, std::vector<std::int32_t> codebook_sizes,
                bool disambiguation_level = false)
        : sizes_(std::move(codebook_sizes)), disambiguation_level_(disambiguation_level) {
        constexpr std::string_view op = "SemanticIds";
        RECBLOCKS_CHECK_SHAPE(codes.cols() >= 1, op, ": codes is ", codes.shape(), "; need at least one level");
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(sizes_.size()) == codes.cols(), op, ": codes has ", codes.cols(),
                              " levels but ", sizes_.size(), " codebook sizes were given");
        RECBLOCKS_CHECK_VALUE(codes.rows() < index_t{std::numeric_limits<row_id_t>::max()}, op, ": ", codes.rows(),
                              " items exceed the int32 item id range");
        for (std::size_t m = 0; m < sizes_.size(); ++m)
            RECBLOCKS_CHECK_VALUE(sizes_[m] >= 1, op, ": codebook size of level ", m, " is ", sizes_[m],
                                  "; need >= 1");
        n_ = codes.rows();
        m_ = codes.cols();
        codes_.resize(Shape<2>{{n_, m_}});
        for (index_t i = 0; i < n_; ++i) {
            const std::int32_t* src = codes.row(i);
            for (index_t m = 0; m < m_; ++m) {
                RECBLOCKS_CHECK_INDEX(src[m] >= 0 && src[m] < sizes_[static_cast<std::size_t>(m)], op, ": item ", i,
                                      " has code ", src[m], " at level ", m, ", outside [0, ",
                                      sizes_[static_cast<std::size_t>(m)], ")");
                codes_(i, m) = src[m];
            }
        }
        reindex();
    }

    [[nodiscard]] index_t num_items() const { return n_; }
    /// L: codes per item (including a disambiguation level, if any).
    [[nodiscard]] index_t levels() const { return m_; }
    [[nodiscard]] std::span<const std::int32_t> codebook_sizes() const { return sizes_; }
    /// True when the last level is TIGER's disambiguation code.
    [[nodiscard]] bool has_disambiguation_level() const { return disambiguation_level_; }
    /// All codes, [N, L].
    [[nodiscard]] MatrixView<const std::int32_t> codes() const { return codes_.view(); }

    /// The L codes of `item` (IndexError when out of range).
    [[nodiscard]] std::span<const std::int32_t> codes(index_t item) const {
        RECBLOCKS_CHECK_INDEX(item >= 0 && item < n_, "SemanticIds::codes: item ", item, " outside [0, ", n_, ")");
        return {codes_.data() + item * m_, static_cast<std::size_t>(m_)};
    }

    /// Items whose tuple is `tuple`, ascending (empty when none). ShapeError if
    /// the tuple's length is not L.
    [[nodiscard]] std::span<const row_id_t> items_with(std::span<const std::int32_t> tuple) const {
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(tuple.size()) == m_, "SemanticIds::items_with: tuple has ",
                              tuple.size(), " codes; the IDs have ", m_, " levels");
        const std::int32_t* c = codes_.data();
        auto lo = std::lower_bound(order_.begin(), order_.end(), tuple.data(), [&](row_id_t a, const std::int32_t* t) {
            return detail::compare_tuples(c + a * m_, t, m_) < 0;
        });
        auto hi = lo;
        while (hi != order_.end() && detail::compare_tuples(c + *hi * m_, tuple.data(), m_) == 0) ++hi;
        return {order_.data() + (lo - order_.begin()), static_cast<std::size_t>(hi - lo)};
    }

    /// The one item whose tuple is `tuple`, or -1 when none; when several items
    /// share it, the lowest id.
    [[nodiscard]] row_id_t find_item(std::span<const std::int32_t> tuple) const {
        const auto items = items_with(tuple);
        return items.empty() ? row_id_t{-1} : items.front();
    }

    [[nodiscard]] CollisionStats collisions() const { return stats_; }

    /// TIGER: the same IDs plus one level, each item's index within its
    /// collision group in item order (0 when unique). The new level's codebook
    /// size is the largest group. ValueError if the IDs already have one.
    [[nodiscard]] SemanticIds with_disambiguation_code() const {
        RECBLOCKS_CHECK_VALUE(!disambiguation_level_,
                              "SemanticIds::with_disambiguation_code: the IDs already end in a disambiguation level");
        Matrix<std::int32_t> out(Shape<2>{{n_, m_ + 1}});
        const std::int32_t* c = codes_.data();
        std::int32_t largest = 1;
        for (index_t i = 0; i < n_;) {
            index_t j = i + 1;
            while (j < n_ && detail::compare_tuples(c + order_[i] * m_, c + order_[j] * m_, m_) == 0) ++j;
            for (index_t g = i; g < j; ++g) {  // order_ is sorted by item id inside a group
                const row_id_t item = order_[static_cast<std::size_t>(g)];
                for (index_t m = 0; m < m_; ++m) out(item, m) = c[item * m_ + m];
                out(item, m_) = static_cast<std::int32_t>(g - i);
            }
            largest = std::max(largest, static_cast<std::int32_t>(j - i));
            i = j;
        }
        std::vector<std::int32_t> sizes = sizes_;
        sizes.push_back(largest);
        return SemanticIds(out.cview(), std::move(sizes), true);
    }

    /// LC-Rec: re-codes colliding items at the last level by Sinkhorn–Knopp
    /// balancing (see the header comment). `distances(items, out)` fills
    /// out [items.size(), K_last] with each listed item's distance to every
    /// last-level code (finite; ValueError otherwise). Items that did not collide
    /// at the start keep their codes. ValueError on bad options or when the IDs
    /// end in a disambiguation level.
    template <class DistanceFn>
        requires std::invocable<DistanceFn&, std::span<const row_id_t>, MatrixView<float>>
    RebalanceReport rebalance_last_level(DistanceFn&& distances, const SinkhornOptions& opt = {}) {
        constexpr std::string_view op = "SemanticIds::rebalance_last_level";
        RECBLOCKS_CHECK_VALUE(opt.epsilon > 0 && std::isfinite(opt.epsilon), op, ": epsilon must be > 0, got ",
                              opt.epsilon);
        RECBLOCKS_CHECK_VALUE(opt.iterations >= 1, op, ": iterations must be >= 1, got ", opt.iterations);
        RECBLOCKS_CHECK_VALUE(opt.max_rounds >= 1, op, ": max_rounds must be >= 1, got ", opt.max_rounds);
        RECBLOCKS_CHECK_VALUE(!disambiguation_level_, op,
                              ": the last level is a disambiguation code; rebalance before adding it");
        RebalanceReport report;
        report.before = stats_;
        const index_t k = sizes_.back();
        const index_t last = m_ - 1;
        std::vector<std::int32_t> start(static_cast<std::size_t>(n_));
        for (index_t i = 0; i < n_; ++i) start[static_cast<std::size_t>(i)] = codes_(i, last);
        // Items that collide at the start may move; the others never do.
        std::vector<char> movable(static_cast<std::size_t>(n_), 0);
        for_each_group([&](std::span<const row_id_t> g) {
            for (const row_id_t i : g) movable[static_cast<std::size_t>(i)] = 1;
        });
        Matrix<float> dist;
        std::vector<double> d, tmp;
        std::vector<std::int32_t> code;
        std::vector<row_id_t> group;
        for (int round = 0; round < opt.max_rounds && stats_.groups > 0; ++round) {
            ++report.rounds;
            bool changed = false;
            // Collect the groups first: re-coding changes the order being walked.
            std::vector<row_id_t> members;
            std::vector<index_t> bounds{0};
            for_each_group([&](std::span<const row_id_t> g) {
                members.insert(members.end(), g.begin(), g.end());
                bounds.push_back(static_cast<index_t>(members.size()));
            });
            for (std::size_t gi = 0; gi + 1 < bounds.size(); ++gi) {
                group.assign(members.begin() + bounds[gi], members.begin() + bounds[gi + 1]);
                const auto g = static_cast<index_t>(group.size());
                dist.resize(Shape<2>{{g, k}});
                distances(std::span<const row_id_t>(group), dist.view());
                d.resize(static_cast<std::size_t>(g * k));
                for (index_t r = 0; r < g; ++r)
                    for (index_t c = 0; c < k; ++c) {
                        const float v = dist(r, c);
                        RECBLOCKS_CHECK_VALUE(std::isfinite(v), op, ": distance of item ", group[r], " to code ", c,
                                              " is ", v, "; distances must be finite");
                        d[static_cast<std::size_t>(r * k + c)] = v;
                    }
                code.resize(static_cast<std::size_t>(g));
                detail::sinkhorn_argmax(d, g, k, opt, tmp, code.data());
                for (index_t r = 0; r < g; ++r)
                    if (movable[static_cast<std::size_t>(group[r])] && codes_(group[r], last) != code[r]) {
                        codes_(group[r], last) = code[r];
                        changed = true;
                    }
            }
            reindex();
            // A round that changes nothing leaves the same groups, so every later round would repeat it.
            if (!changed) break;
        }
        report.after = stats_;
        for (index_t i = 0; i < n_; ++i) report.items_changed += codes_(i, last) != start[static_cast<std::size_t>(i)];
        return report;
    }

    /// LC-Rec re-assignment with the distances of every item to every last-level
    /// code given as a matrix [N, K_last] (ShapeError otherwise).
    RebalanceReport rebalance_last_level(MatrixView<const float> distances, const SinkhornOptions& opt = {}) {
        RECBLOCKS_CHECK_SHAPE(distances.rows() == n_ && !sizes_.empty() && distances.cols() == sizes_.back(),
                              "SemanticIds::rebalance_last_level: distances is ", distances.shape(), " but expected [",
                              n_, ", ", sizes_.empty() ? 0 : sizes_.back(), "] (items x last-level codes)");
        return rebalance_last_level(
            [&](std::span<const row_id_t> items, MatrixView<float> out) {
                for (std::size_t r = 0; r < items.size(); ++r)
                    std::copy_n(distances.row(items[r]), out.cols(), out.row(static_cast<index_t>(r)));
            },
            opt);
    }

private:
    /// Calls f(items of the group, ascending) for every tuple held by >= 2 items.
    template <class F>
    void for_each_group(F&& f) const {
        const std::int32_t* c = codes_.data();
        for (index_t i = 0; i < n_;) {
            index_t j = i + 1;
            while (j < n_ && detail::compare_tuples(c + order_[i] * m_, c + order_[j] * m_, m_) == 0) ++j;
            if (j - i > 1) f(std::span<const row_id_t>(order_.data() + i, static_cast<std::size_t>(j - i)));
            i = j;
        }
    }

    void reindex() {
        detail::sort_rows(codes_.data(), n_, m_, order_);
        stats_ = detail::stats_of_sorted(codes_.data(), n_, m_, order_);
    }

    Matrix<std::int32_t> codes_;
    std::vector<std::int32_t> sizes_;
    std::vector<row_id_t> order_;  // items sorted by tuple, then id
    CollisionStats stats_;
    index_t n_ = 0;
    index_t m_ = 0;
    bool disambiguation_level_ = false;
};

inline constexpr std::string_view kSemanticIdsFormat = "recblocks-semantic-ids-1";

/// Writes `ids` to `path` atomically (see the header comment for the layout).
inline void save_semantic_ids(const std::filesystem::path& path, const SemanticIds& ids) {
    io::SafetensorsWriter w;
    w.add("codes", ids.codes());
    const auto sizes = ids.codebook_sizes();
    w.add("codebook_sizes",
          vector_view(sizes.data(), static_cast<index_t>(sizes.size())));
    std::string header = "{\"items\":";
    io::json::append_int(header, ids.num_items());
    header += ",\"levels\":";
    io::json::append_int(header, ids.levels());
    header += ",\"codebook_sizes\":[";
    for (std::size_t m = 0; m < sizes.size(); ++m) {
        if (m) header += ',';
        io::json::append_int(header, sizes[m]);
    }
    header += "],\"disambiguation_level\":";
    header += ids.has_disambiguation_level() ? "true" : "false";
    header += '}';
    w.set_metadata("format", std::string(kSemanticIdsFormat));
    w.set_metadata("semantic_ids", header);
    w.write(path);
}

/// Reads IDs written by save_semantic_ids. FormatError, naming the file and the
/// tensor or entry, for a truncated or malformed file, a missing or mistyped
/// tensor, a header that disagrees with the tensors, or a code out of range;
/// IoError when the file cannot be read.
inline SemanticIds load_semantic_ids(const std::filesystem::path& path) {
    const auto r = io::SafetensorsReader::open(path);
    const std::string& src = r.source();
    const auto& meta = r.metadata();
    const auto fmt = meta.find("format");
    RECBLOCKS_CHECK_FORMAT(fmt != meta.end() && fmt->second == kSemanticIdsFormat, src,
                           ": not a recblocks semantic-ID file (metadata \"format\" is ",
                           fmt == meta.end() ? std::string("missing") : "\"" + fmt->second + "\"", ", expected \"",
                           kSemanticIdsFormat, "\")");
    const auto hdr = meta.find("semantic_ids");
    RECBLOCKS_CHECK_FORMAT(hdr != meta.end(), src, ": metadata \"semantic_ids\" is missing");
    const io::json::Value h = io::json::parse(hdr->second, src + ": metadata \"semantic_ids\"");
    RECBLOCKS_CHECK_FORMAT(h.is_object(), src, ": metadata \"semantic_ids\" is ", io::json::kind_name(h.kind),
                           ", expected an object");
    auto member = [&](std::string_view key) -> const io::json::Value& {
        for (std::size_t i = 0; i < h.keys.size(); ++i)
            if (h.keys[i] == key) return h.items[i];
        throw FormatError(recblocks::detail::concat(src, ": metadata \"semantic_ids\" has no \"", key, "\""));
    };
    auto integer = [&](const io::json::Value& v, std::string_view what) {
        const auto x = v.as_int64();
        RECBLOCKS_CHECK_FORMAT(x && *x >= 0 && *x <= std::numeric_limits<std::int32_t>::max(), src,
                               ": metadata \"semantic_ids\": ", what, " is not a count");
        return *x;
    };
    const std::int64_t items = integer(member("items"), "\"items\"");
    const std::int64_t levels = integer(member("levels"), "\"levels\"");
    const auto& dis = member("disambiguation_level");
    RECBLOCKS_CHECK_FORMAT(dis.kind == io::json::Value::Kind::boolean, src,
                           ": metadata \"semantic_ids\": \"disambiguation_level\" is not a boolean");
    const auto& hs = member("codebook_sizes");
    RECBLOCKS_CHECK_FORMAT(hs.is_array() && static_cast<std::int64_t>(hs.items.size()) == levels, src,
                           ": metadata \"semantic_ids\": \"codebook_sizes\" is not an array of ", levels, " sizes");

    auto check_tensor = [&](std::string_view name, std::size_t rank) -> const io::TensorRecord& {
        RECBLOCKS_CHECK_FORMAT(r.contains(name), src, ": tensor \"", name, "\" is missing");
        const auto& rec = r.record(name);
        RECBLOCKS_CHECK_FORMAT(rec.dtype == io::SafetensorsDType::i32, src, ": tensor \"", name, "\" is ",
                               io::dtype_name(rec.dtype), ", expected I32");
        RECBLOCKS_CHECK_FORMAT(rec.shape.size() == rank, src, ": tensor \"", name, "\" has shape ",
                               io::detail::format_list(rec.shape), ", expected rank ", rank);
        return rec;
    };
    const auto& cr = check_tensor("codes", 2);
    const auto& sr = check_tensor("codebook_sizes", 1);
    RECBLOCKS_CHECK_FORMAT(cr.shape[0] == items && cr.shape[1] == levels && levels >= 1, src, ": tensor \"codes\" is ",
                           io::detail::format_list(cr.shape), " but the header says [", items, ", ", levels, "]");
    RECBLOCKS_CHECK_FORMAT(sr.shape[0] == levels, src, ": tensor \"codebook_sizes\" is ",
                           io::detail::format_list(sr.shape), " but the header says [", levels, "]");
    const auto sizes_t = r.load<std::int32_t, 1>("codebook_sizes");
    std::vector<std::int32_t> sizes(sizes_t.begin(), sizes_t.end());
    for (std::size_t m = 0; m < sizes.size(); ++m) {
        RECBLOCKS_CHECK_FORMAT(sizes[m] >= 1, src, ": tensor \"codebook_sizes\" element ", m, " = ", sizes[m],
                               " is not a codebook size (>= 1)");
        RECBLOCKS_CHECK_FORMAT(hs.items[m].as_int64() == sizes[m], src, ": tensor \"codebook_sizes\" element ", m,
                               " = ", sizes[m], " disagrees with the header");
    }
    const auto codes = r.load<std::int32_t, 2>("codes");
    for (index_t i = 0; i < codes.extent(0); ++i)
        for (index_t m = 0; m < codes.extent(1); ++m) {
            const std::int32_t c = codes(i, m);
            RECBLOCKS_CHECK_FORMAT(c >= 0 && c < sizes[static_cast<std::size_t>(m)], src, ": tensor \"codes\" element [",
                                   i, ", ", m, "] = ", c, " is outside [0, ", sizes[static_cast<std::size_t>(m)],
                                   ") (codebook size of level ", m, ")");
        }
    return SemanticIds(codes.cview(), std::move(sizes), dis.boolean);
}

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
