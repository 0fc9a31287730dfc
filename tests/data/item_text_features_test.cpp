// Item text features: movies.csv parsing (quoted titles, errors with file and
// line), tokens, hashed TF-IDF + random projection (unit rows, determinism,
// similar titles closer than unrelated ones).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "recblocks/data/item_text_features.hpp"

using namespace recblocks;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
    const auto path = (std::filesystem::temp_directory_path() / ("recblocks_gen_" + name)).string();
    std::ofstream(path) << text;
    return path;
}

double dot(const Matrix<float>& x, index_t a, index_t b) {
    double s = 0;
    for (index_t j = 0; j < x.extent(1); ++j) s += double(x(a, j)) * double(x(b, j));
    return s;
}

}  // namespace

TEST_CASE("item text features: movies.csv with quoted titles", "[generative][text_features]") {
    const auto path = write_temp("movies.csv",
                                 "movieId,title,genres\n"
                                 "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
                                 "11,\"American President, The (1995)\",Comedy|Drama|Romance\r\n"
                                 "12,\"Say \"\"Hello\"\", World\",(no genres listed)\n");
    const auto m = data::read_movies_csv(path);
    REQUIRE(m.size() == 3);
    CHECK(m[1].movie_id == 11);
    CHECK(m[1].title == "American President, The (1995)");
    CHECK(m[1].genres == std::vector<std::string>{"Comedy", "Drama", "Romance"});
    CHECK(m[2].title == "Say \"Hello\", World");
    CHECK(m[2].genres.empty());
    const auto t = data::movie_tokens(m[1]);
    CHECK(t == std::vector<std::string>{"year:1995", "decade:1990", "american", "president", "genre:comedy",
                                        "genre:drama", "genre:romance"});
    CHECK(data::movie_tokens(m[2]) == std::vector<std::string>{"say", "hello", "world"});
    std::filesystem::remove(path);
}

TEST_CASE("item text features: malformed lines are FormatErrors naming file and line", "[generative][text_features]") {
    const std::pair<std::string, std::string> cases[] = {
        {"movieId,title,genres\n1,A (1990),Drama\n2,\"Unterminated (1991),Drama\n", ":3:"},
        {"movieId,title,genres\n1,A (1990),Drama\nx,B,Drama\n", ":3:"},
        {"movieId,title,genres\n1,A (1990)\n", ":2:"},
        {"movieId,title,genres\n1,A,Drama\n1,B,Drama\n", ":3:"},
        {"id,title,genres\n", ":1:"},
        {"movieId,title,genres\n1,\"A\" B,Drama\n", ":2:"},
    };
    int i = 0;
    for (const auto& [text, where] : cases) {
        const auto path = write_temp("bad" + std::to_string(i++) + ".csv", text);
        try {
            (void)data::read_movies_csv(path);
            FAIL("no error for case " << i);
        } catch (const FormatError& e) {
            const std::string msg = e.what();
            INFO(msg);
            CHECK(msg.find(path + where) != std::string::npos);
        }
        std::filesystem::remove(path);
    }
    CHECK_THROWS_AS(data::read_movies_csv("/nonexistent/movies.csv"), IoError);
}

TEST_CASE("item text features: unit rows, deterministic, similar items closer", "[generative][text_features]") {
    std::vector<data::MovieRecord> movies = {
        {1, "Star Wars: Episode IV - A New Hope (1977)", {"Action", "Adventure", "Sci-Fi"}},
        {2, "Star Wars: Episode V - The Empire Strikes Back (1980)", {"Action", "Adventure", "Sci-Fi"}},
        {3, "Pride and Prejudice (2005)", {"Drama", "Romance"}},
        {4, "Sense and Sensibility (1995)", {"Drama", "Romance"}},
        {5, "", {}},
    };
    data::TextFeatureConfig cfg;
    cfg.dim = 512;  // random-projection noise on a dot product ~ N(0, 1/d): small at 512
    const auto docs = data::movie_tokens(movies);
    const auto x = data::hashed_tfidf_projection(docs, cfg);
    REQUIRE(x.extent(0) == 5);
    REQUIRE(x.extent(1) == 512);
    for (index_t i = 0; i < 4; ++i) CHECK(dot(x, i, i) == Approx(1.0).epsilon(1e-5));
    CHECK(dot(x, 4, 4) == 0.0);  // no tokens: zero row
    CHECK(dot(x, 0, 1) > dot(x, 0, 2) + 0.15);
    CHECK(dot(x, 2, 3) > dot(x, 1, 3) + 0.15);
    const auto again = data::hashed_tfidf_projection(docs, cfg);
    for (index_t i = 0; i < x.numel(); ++i) REQUIRE(x.data()[i] == again.data()[i]);
    cfg.seed = 2;
    const auto other = data::hashed_tfidf_projection(docs, cfg);
    bool differs = false;
    for (index_t i = 0; i < x.numel(); ++i) differs |= x.data()[i] != other.data()[i];
    CHECK(differs);
    // Dataset items by movieId; a missing movie is a ValueError.
    const auto f = data::movie_item_features(movies, {0, 3, 1}, cfg);
    REQUIRE(f.extent(0) == 2);
    CHECK_THROWS_AS(data::movie_item_features(movies, {0, 99}, cfg), ValueError);
    cfg.dim = 0;
    CHECK_THROWS_AS(data::hashed_tfidf_projection(docs, cfg), ValueError);
}

TEST_CASE("item text features: MovieLens ml-latest-small", "[generative][text_features]") {
    const std::string path = std::string(RECBLOCKS_SOURCE_DIR) + "/data/ml-latest-small/movies.csv";
    if (!std::filesystem::exists(path)) {
        WARN("skipped: no " << path);
        return;
    }
    const auto m = data::read_movies_csv(path);
    CHECK(m.size() == 9742);
    const auto x = data::hashed_tfidf_projection(data::movie_tokens(m), {});
    REQUIRE(x.extent(1) == 64);
    for (index_t i = 0; i < x.extent(0); i += 97) CHECK(dot(x, i, i) == Approx(1.0).epsilon(1e-4));
}
