#pragma once
// Item content vectors from text: MovieLens movies.csv (title words, release
// year, genres) -> hashed TF-IDF -> seeded Gaussian random projection -> L2
// normalisation. The input of the semantic-ID tokenizers (RQ, FSQ).
//
//   auto movies = data::read_movies_csv("data/ml-latest-small/movies.csv");
//   std::vector<std::vector<std::string>> docs = data::movie_tokens(movies);  // one token list per movie
//   Matrix<float> x = data::hashed_tfidf_projection(docs, {});                // [N, 64], rows unit-norm
//
// Tokens of a movie: the lower-cased alphanumeric words of its title ("the",
// "a", "an" and one-letter words dropped), the release year in parentheses at
// the end of the title as "year:1995" and its decade as "decade:1990", and
// each genre as "genre:comedy" ("(no genres listed)" gives none).
//
// TF-IDF: token t goes to bucket FNV-1a-64(t) mod B (B = hash_buckets, e.g.
// 2^15; collisions merge tokens); tf = count in the document, idf(b) =
// ln((1 + N) / (1 + df(b))) + 1 (scikit-learn's smooth idf); the sparse row
// is L2-normalised. Projection: y = x R with R [B, d], R(b, j) ~ N(0, 1/d)
// drawn from Rng(seed).substream(b).normal(j) (only rows of used buckets are
// drawn; R is never stored), then y / ||y||. A document with no tokens gives a
// zero row. Deterministic at a fixed seed; no threads.
//
// CSV: RFC 4180 quoting (a quoted field may hold commas and doubled quotes);
// the header must be "movieId,title,genres". A malformed line (wrong number of
// fields, bad or duplicate movieId, unterminated quote) is a FormatError naming
// the file and the line; a missing file an IoError.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/data/sequence_dataset.hpp"
#include "recblocks/data/tfidf_projection.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

struct MovieRecord {
    std::int64_t movie_id = 0;
    std::string title;
    std::vector<std::string> genres;
};

namespace detail {

/// Splits one CSV record (RFC 4180 quoting). Returns false on an unterminated quote
/// or a quote inside an unquoted field.
inline bool split_csv_record(std::string_view line, std::vector<std::string>& fields) {
    fields.clear();
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string cur;
    std::size_t i = 0;
    while (true) {
        cur.clear();
        if (i < line.size() && line[i] == '"') {
            ++i;
            bool closed = false;
            while (i < line.size()) {
                if (line[i] == '"') {
                    if (i + 1 < line.size() && line[i + 1] == '"') {
                        cur += '"';
                        i += 2;
                        continue;
                    }
                    closed = true;
                    ++i;
                    break;
                }
                cur += line[i++];
            }
            if (!closed) return false;
            if (i < line.size() && line[i] != ',') return false;  // text after the closing quote
        } else {
            while (i < line.size() && line[i] != ',') {
                if (line[i] == '"') return false;
                cur += line[i++];
            }
        }
        fields.push_back(cur);
        if (i >= line.size()) return true;
        ++i;  // the comma
        if (i == line.size()) {
            fields.emplace_back();
            return true;
        }
    }
}

/// 64-bit FNV-1a.
inline std::uint64_t fnv1a64(std::string_view s) {
    std::uint64_t h = 14695981039346656037ull;
    for (const char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ull;
    }
    return h;
}

}  // namespace detail

/// Reads movies.csv (movieId,title,genres), in file order.
inline std::vector<MovieRecord> read_movies_csv(const std::string& path) {
    auto in = detail::open_for_reading(path, "data::read_movies_csv");
    std::string line;
    RECBLOCKS_CHECK_FORMAT(static_cast<bool>(std::getline(in, line)), path, ":1: the file is empty");
    std::vector<std::string> f;
    RECBLOCKS_CHECK_FORMAT(detail::split_csv_record(line, f) && f.size() == 3 && f[0] == "movieId" &&
                               f[1] == "title" && f[2] == "genres",
                           path, ":1: the header must be movieId,title,genres");
    std::vector<MovieRecord> out;
    std::unordered_set<std::int64_t> seen;
    for (std::int64_t no = 2; std::getline(in, line); ++no) {
        if (line.empty() || line == "\r") continue;
        RECBLOCKS_CHECK_FORMAT(detail::split_csv_record(line, f), path, ":", no,
                               ": malformed quoting (unterminated quote or text after a closing quote)");
        RECBLOCKS_CHECK_FORMAT(f.size() == 3, path, ":", no, ": expected 3 fields (movieId,title,genres), got ",
                               f.size());
        MovieRecord m;
        RECBLOCKS_CHECK_FORMAT(detail::parse_int(f[0], m.movie_id) && m.movie_id >= 0, path, ":", no,
                               ": movieId '", f[0], "' is not a non-negative integer");
        RECBLOCKS_CHECK_FORMAT(seen.insert(m.movie_id).second, path, ":", no, ": duplicate movieId ", m.movie_id);
        m.title = f[1];
        if (f[2] != "(no genres listed)")
            for (auto g : detail::split(f[2], '|'))
                if (!g.empty()) m.genres.emplace_back(g);
        out.push_back(std::move(m));
    }
    return out;
}

/// The tokens of one movie (see the header comment).
inline std::vector<std::string> movie_tokens(const MovieRecord& m) {
    std::vector<std::string> t;
    std::string_view title = m.title;
    while (!title.empty() && title.back() == ' ') title.remove_suffix(1);
    // "(1995)" at the end: year and decade tokens, removed from the words.
    if (title.size() >= 6 && title.back() == ')' && title[title.size() - 6] == '(' &&
        std::all_of(title.end() - 5, title.end() - 1, [](char c) { return c >= '0' && c <= '9'; })) {
        const std::string year(title.substr(title.size() - 5, 4));
        t.push_back("year:" + year);
        t.push_back("decade:" + year.substr(0, 3) + "0");
        title.remove_suffix(6);
    }
    std::string w;
    auto flush = [&] {
        if (w.size() >= 2 && w != "the" && w != "an") t.push_back(w);
        w.clear();
    };
    for (const char c : title) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || u >= 0x80) w += static_cast<char>(std::tolower(u));
        else flush();
    }
    flush();
    for (const auto& g : m.genres) {
        std::string s = "genre:";
        for (const char c : g) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        t.push_back(std::move(s));
    }
    return t;
}

inline std::vector<std::vector<std::string>> movie_tokens(const std::vector<MovieRecord>& movies) {
    std::vector<std::vector<std::string>> docs;
    docs.reserve(movies.size());
    for (const auto& m : movies) docs.push_back(movie_tokens(m));
    return docs;
}

struct TextFeatureConfig {
    index_t hash_buckets = index_t{1} << 15;  ///< B
    index_t dim = 64;                         ///< d of the projection
    std::uint64_t seed = 1;                   ///< of the projection matrix
};

/// [N, d] unit rows: hashed TF-IDF of docs[i], projected (see the header comment).
inline Matrix<float> hashed_tfidf_projection(const std::vector<std::vector<std::string>>& docs,
                                             const TextFeatureConfig& cfg) {
    RECBLOCKS_CHECK_VALUE(cfg.hash_buckets >= 1 && cfg.dim >= 1, "data::hashed_tfidf_projection: hash_buckets and dim ",
                          "must be >= 1, got ", cfg.hash_buckets, " and ", cfg.dim);
    const auto buckets = static_cast<std::uint64_t>(cfg.hash_buckets);
    std::vector<std::vector<std::uint64_t>> terms(docs.size());
    for (std::size_t i = 0; i < docs.size(); ++i) {
        terms[i].reserve(docs[i].size());
        for (const auto& tok : docs[i]) terms[i].push_back(detail::fnv1a64(tok) % buckets);
    }
    return tfidf_random_projection(terms, cfg.dim, cfg.seed);
}

/// Content vectors of a dataset's items: row i - 1 is dense item i (1..N) of
/// `item_ids` (SequenceDataset::item_ids, [0] = padding), looked up by movieId.
/// ValueError when an item has no movie in `movies`.
inline Matrix<float> movie_item_features(const std::vector<MovieRecord>& movies, const std::vector<std::int64_t>& item_ids,
                                         const TextFeatureConfig& cfg) {
    RECBLOCKS_CHECK_VALUE(!item_ids.empty(), "data::movie_item_features: item_ids is empty (need [0] = padding)");
    std::unordered_map<std::int64_t, std::size_t> by_id;
    for (std::size_t i = 0; i < movies.size(); ++i) by_id.emplace(movies[i].movie_id, i);
    std::vector<std::vector<std::string>> docs;
    docs.reserve(item_ids.size() - 1);
    for (std::size_t i = 1; i < item_ids.size(); ++i) {
        const auto it = by_id.find(item_ids[i]);
        RECBLOCKS_CHECK_VALUE(it != by_id.end(), "data::movie_item_features: item ", i, " (movieId ", item_ids[i],
                              ") is not in movies.csv");
        docs.push_back(movie_tokens(movies[it->second]));
    }
    return hashed_tfidf_projection(docs, cfg);
}

}  // namespace data
RECBLOCKS_NAMESPACE_END
