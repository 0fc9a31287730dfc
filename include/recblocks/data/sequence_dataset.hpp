#pragma once
// SequenceDataset: each user's items in time order, with dense item ids
// 1..N (0 is the padding id), and readers for the two formats users have:
//
//   read_user_item_file     the plain format of the public SASRec/BERT4Rec code:
//                           one "user item" pair per line, integer ids >= 1,
//                           each user's lines in time order; item ids remapped
//                           densely to 1..N in ascending order (item_ids[i]
//                           gives the file's id back).
//   read_sequence_file      the S3-Rec format (Amazon Beauty / Sports / Toys as S3-Rec,
//                           TIGER and most later papers ship them): one line per user,
//                           "user item item ...", items in time order; ids >= 1,
//                           items remapped densely as above.
//   read_movielens_csv      "userId,movieId,rating,timestamp" with a header line;
//                           sorted by time per user (file order breaks ties),
//                           movieIds remapped densely to 1..N in ascending order.
//
// Both readers allocate in proportion to the file, never to the size of an
// id: a file "1 2000000000" is one item, not two billion rows (a model's item
// table has N + 1 rows). Files whose ids are already 1..N read as before.
//
// Malformed lines raise FormatError naming the file and the line number; a
// file with no interactions raises FormatError naming it; a file that cannot
// be opened, or a directory, raises IoError.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

struct SequenceDataset {
    /// sequences[u]: user u's items (ids in 1..num_items) in time order.
    std::vector<std::vector<row_id_t>> sequences;
    /// user_ids[u]: the id the user has in the source file.
    std::vector<std::int64_t> user_ids;
    /// item_ids[i]: the source id of dense item i (item_ids[0] = 0, padding).
    std::vector<std::int64_t> item_ids;

    /// N: items are numbered 1..N.
    [[nodiscard]] index_t num_items() const { return static_cast<index_t>(item_ids.size()) - 1; }
    [[nodiscard]] index_t num_users() const { return static_cast<index_t>(sequences.size()); }
    [[nodiscard]] std::size_t num_interactions() const {
        std::size_t n = 0;
        for (const auto& s : sequences) n += s.size();
        return n;
    }
};

namespace detail {

inline std::ifstream open_for_reading(const std::string& path, std::string_view who) {
    // An ifstream opens a directory without complaint and then reads nothing.
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw IoError(recblocks::detail::concat(who, ": '", path, "' is a directory, not a file"));
    std::ifstream in(path);
    if (!in) throw IoError(recblocks::detail::concat(who, ": cannot open '", path, "'"));
    return in;
}

/// Parses a whole field as a base-10 integer; false if it is not one.
inline bool parse_int(std::string_view field, std::int64_t& out) {
    while (!field.empty() && (field.front() == ' ' || field.front() == '\t')) field.remove_prefix(1);
    while (!field.empty() && (field.back() == ' ' || field.back() == '\t' || field.back() == '\r')) field.remove_suffix(1);
    if (field.empty()) return false;
    const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), out);
    return ec == std::errc() && end == field.data() + field.size();
}

/// Splits on `sep` (no quoting: neither format quotes its numeric fields).
inline std::vector<std::string_view> split(std::string_view line, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= line.size(); ++i)
        if (i == line.size() || line[i] == sep) {
            out.push_back(line.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

/// Dense ids 1..N for the distinct source ids of `sources` (ascending), in
/// `d.item_ids` (item_ids[0] = 0 is padding); returns source id -> dense id.
inline std::map<std::int64_t, row_id_t> remap_items(const std::string& path, const std::vector<std::int64_t>& sources,
                                                    SequenceDataset& d) {
    std::map<std::int64_t, row_id_t> dense;
    for (const std::int64_t s : sources) dense.emplace(s, 0);
    RECBLOCKS_CHECK_FORMAT(dense.size() < static_cast<std::size_t>(std::numeric_limits<row_id_t>::max()), path,
                           ": too many distinct items (", dense.size(), "; at most ",
                           std::numeric_limits<row_id_t>::max() - 1, ")");
    d.item_ids.assign(1, 0);
    for (auto& [source, id] : dense) {
        id = static_cast<row_id_t>(d.item_ids.size());
        d.item_ids.push_back(source);
    }
    return dense;
}

}  // namespace detail

/// Reads "user item" lines (whitespace separated, ids in [1, 2^63 - 1]).
/// Users are ordered by id; each user's items keep the file's order. Item ids
/// are remapped densely (see the header comment). Blank lines are skipped.
inline SequenceDataset read_user_item_file(const std::string& path) {
    auto in = detail::open_for_reading(path, "data::read_user_item_file");
    std::vector<std::int64_t> users, items;  // the file's pairs, in file order
    std::string line;
    for (std::int64_t no = 1; std::getline(in, line); ++no) {
        std::string_view v(line);
        if (v.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        std::string_view fields[3];
        std::size_t n_fields = 0, i = 0;
        while (i < v.size() && n_fields < 3) {
            while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r')) ++i;
            const std::size_t b = i;
            while (i < v.size() && v[i] != ' ' && v[i] != '\t' && v[i] != '\r') ++i;
            if (i > b) fields[n_fields++] = v.substr(b, i - b);
        }
        std::int64_t user = 0, item = 0;
        RECBLOCKS_CHECK_FORMAT(n_fields == 2 && detail::parse_int(fields[0], user) && detail::parse_int(fields[1], item),
                               path, ":", no, ": expected 'user item' (two integers), got '", line, "'");
        RECBLOCKS_CHECK_FORMAT(user >= 1 && item >= 1, path, ":", no, ": ids must be >= 1, got user ", user, ", item ",
                               item);
        users.push_back(user);
        items.push_back(item);
    }
    RECBLOCKS_CHECK_FORMAT(!users.empty(), path, ": no interactions (the file is empty or has only blank lines)");
    SequenceDataset d;
    const auto dense = detail::remap_items(path, items, d);
    std::map<std::int64_t, std::vector<row_id_t>> by_user;
    for (std::size_t k = 0; k < users.size(); ++k) by_user[users[k]].push_back(dense.at(items[k]));
    for (auto& [user, seq] : by_user) {
        d.user_ids.push_back(user);
        d.sequences.push_back(std::move(seq));
    }
    return d;
}

/// Reads S3-Rec-style lines "user item item ..." (whitespace separated, ids >= 1,
/// at least one item). A user on several lines gets the items of each, in file
/// order. Users are ordered by id; item ids are remapped densely.
inline SequenceDataset read_sequence_file(const std::string& path) {
    auto in = detail::open_for_reading(path, "data::read_sequence_file");
    std::map<std::int64_t, std::vector<std::int64_t>> by_user;  // source item ids
    std::vector<std::int64_t> items;                             // every item, for the remap
    std::string line;
    for (std::int64_t no = 1; std::getline(in, line); ++no) {
        const std::string_view v(line);
        if (v.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        std::size_t i = 0, n_fields = 0;
        std::int64_t user = 0;
        std::vector<std::int64_t>* seq = nullptr;
        while (i < v.size()) {
            while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r')) ++i;
            const std::size_t b = i;
            while (i < v.size() && v[i] != ' ' && v[i] != '\t' && v[i] != '\r') ++i;
            if (i == b) break;
            std::int64_t id = 0;
            RECBLOCKS_CHECK_FORMAT(detail::parse_int(v.substr(b, i - b), id) && id >= 1, path, ":", no, ": field ",
                                   n_fields + 1, " '", v.substr(b, i - b), "' is not an id (an integer >= 1)");
            if (n_fields++ == 0) {
                user = id;
                continue;
            }
            if (!seq) seq = &by_user[user];
            seq->push_back(id);
            items.push_back(id);
        }
        RECBLOCKS_CHECK_FORMAT(n_fields >= 2, path, ":", no, ": expected 'user item item ...' (a user and at least one "
                               "item), got '", line, "'");
    }
    RECBLOCKS_CHECK_FORMAT(!items.empty(), path, ": no interactions (the file is empty or has only blank lines)");
    SequenceDataset d;
    const auto dense = detail::remap_items(path, items, d);
    for (auto& [user, seq] : by_user) {
        d.user_ids.push_back(user);
        auto& out = d.sequences.emplace_back();
        out.reserve(seq.size());
        for (const std::int64_t it : seq) out.push_back(dense.at(it));
    }
    return d;
}

/// Reads a MovieLens ratings CSV (header "userId,movieId,rating,timestamp").
inline SequenceDataset read_movielens_csv(const std::string& path) {
    auto in = detail::open_for_reading(path, "data::read_movielens_csv");
    std::string line;
    RECBLOCKS_CHECK_FORMAT(static_cast<bool>(std::getline(in, line)), path, ":1: the file is empty");
    {
        std::string header = line;
        if (!header.empty() && header.back() == '\r') header.pop_back();
        RECBLOCKS_CHECK_FORMAT(header.rfind("userId,movieId", 0) == 0, path,
                               ":1: expected the header 'userId,movieId,rating,timestamp', got '", line, "'");
    }
    struct Row {
        std::int64_t user, movie, time, order;
    };
    std::vector<Row> rows;
    for (std::int64_t no = 2; std::getline(in, line); ++no) {
        if (line.empty() || line == "\r") continue;
        const auto f = detail::split(line, ',');
        Row r{0, 0, 0, no};
        RECBLOCKS_CHECK_FORMAT(f.size() == 4 && detail::parse_int(f[0], r.user) && detail::parse_int(f[1], r.movie) &&
                                   detail::parse_int(f[3], r.time),
                               path, ":", no, ": expected userId,movieId,rating,timestamp with integer ids and time, got '",
                               line, "'");
        RECBLOCKS_CHECK_FORMAT(r.user >= 0 && r.movie >= 0, path, ":", no, ": ids must be >= 0, got userId ", r.user,
                               ", movieId ", r.movie);
        rows.push_back(r);
    }
    RECBLOCKS_CHECK_FORMAT(!rows.empty(), path, ": no ratings after the header line");
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
        return a.user != b.user ? a.user < b.user : a.time < b.time;
    });
    SequenceDataset d;
    std::vector<std::int64_t> movies;
    movies.reserve(rows.size());
    for (const Row& r : rows) movies.push_back(r.movie);
    const auto dense = detail::remap_items(path, movies, d);
    for (const Row& r : rows) {
        if (d.user_ids.empty() || d.user_ids.back() != r.user) {
            d.user_ids.push_back(r.user);
            d.sequences.emplace_back();
        }
        d.sequences.back().push_back(dense.at(r.movie));
    }
    return d;
}

}  // namespace data
RECBLOCKS_NAMESPACE_END
