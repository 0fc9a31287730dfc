// Dataset readers, leave-one-out split and left-padded batching: formats,
// ordering, id remapping, and the file:line errors for malformed input.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "recblocks/data/leave_one_out.hpp"
#include "recblocks/data/left_padded_batch.hpp"
#include "recblocks/data/sequence_dataset.hpp"
#include "recblocks/core/tensor.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

namespace {
/// A temporary file holding `text`, removed at scope exit.
struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text) {
        path = (std::filesystem::temp_directory_path() /
                ("recblocks_test_" + std::to_string(reinterpret_cast<std::uintptr_t>(this)) + ".txt"))
                   .string();
        std::ofstream(path) << text;
    }
    ~TempFile() { std::remove(path.c_str()); }
};
}  // namespace

TEST_CASE("data: user-item file keeps ids and per-user order", "[data]") {
    TempFile f("2 5\n1 3\n1 1\n\n2 4\n1 7\n");
    const auto d = data::read_user_item_file(f.path);
    REQUIRE(d.num_users() == 2);
    REQUIRE(d.num_items() == 7);
    REQUIRE(d.user_ids == std::vector<std::int64_t>{1, 2});
    REQUIRE(d.sequences[0] == std::vector<row_id_t>{3, 1, 7});
    REQUIRE(d.sequences[1] == std::vector<row_id_t>{5, 4});
    REQUIRE(d.num_interactions() == 5);
}

TEST_CASE("data: user-item file errors name file and line", "[data][errors]") {
    TempFile bad("1 2\n1 x\n");
    REQUIRE_THROWS_MATCHES(data::read_user_item_file(bad.path), FormatError,
                           Catch::Message("[recblocks.format] " + bad.path +
                                          ":2: expected 'user item' (two integers), got '1 x'"));
    TempFile zero("1 2\n0 3\n");
    REQUIRE_THROWS_WITH(data::read_user_item_file(zero.path), Contains(":2: ids must be in [1, "));
    TempFile three("1 2 3\n");
    REQUIRE_THROWS_AS(data::read_user_item_file(three.path), FormatError);
    REQUIRE_THROWS_AS(data::read_user_item_file("/nonexistent/recblocks.txt"), IoError);
}

TEST_CASE("data: MovieLens CSV sorts by time and remaps movies densely", "[data]") {
    TempFile f("userId,movieId,rating,timestamp\n7,300,4.0,30\n7,100,3.5,10\n3,300,5.0,5\n7,200,1.0,10\n");
    const auto d = data::read_movielens_csv(f.path);
    REQUIRE(d.num_items() == 3);
    REQUIRE(d.item_ids == std::vector<std::int64_t>{0, 100, 200, 300});
    REQUIRE(d.user_ids == std::vector<std::int64_t>{3, 7});
    REQUIRE(d.sequences[0] == std::vector<row_id_t>{3});
    // Equal timestamps keep file order (100 before 200), then time 30.
    REQUIRE(d.sequences[1] == std::vector<row_id_t>{1, 2, 3});
}

TEST_CASE("data: MovieLens CSV errors", "[data][errors]") {
    TempFile header("user,item\n1,2,3,4\n");
    REQUIRE_THROWS_WITH(data::read_movielens_csv(header.path), Contains(":1: expected the header"));
    TempFile truncated("userId,movieId,rating,timestamp\n1,2,3.0,4\n1,2,3.0\n");
    REQUIRE_THROWS_MATCHES(data::read_movielens_csv(truncated.path), FormatError,
                           Catch::Message("[recblocks.format] " + truncated.path +
                                          ":3: expected userId,movieId,rating,timestamp with integer ids and time, got '1,2,3.0'"));
    TempFile empty("");
    REQUIRE_THROWS_WITH(data::read_movielens_csv(empty.path), Contains("the file is empty"));
}

TEST_CASE("data: the bundled ml-latest-small reads", "[data]") {
    const auto d = data::read_movielens_csv(std::string(RECBLOCKS_SOURCE_DIR) + "/data/ml-latest-small/ratings.csv");
    REQUIRE(d.num_users() == 610);
    REQUIRE(d.num_items() == 9724);
    REQUIRE(d.num_interactions() == 100836);
}

TEST_CASE("data: leave-one-out split", "[data]") {
    data::SequenceDataset d;
    d.sequences = {{1, 2, 3, 4}, {5, 6}, {7, 8, 9}};
    const auto s = data::leave_one_out(d);
    REQUIRE(s.train[0] == std::vector<row_id_t>{1, 2});
    REQUIRE(s.valid[0] == 3);
    REQUIRE(s.test[0] == 4);
    REQUIRE(s.train[1] == std::vector<row_id_t>{5, 6});
    REQUIRE(s.test[1] == 0);
    REQUIRE(s.train[2] == std::vector<row_id_t>{7});
    REQUIRE(s.evaluated_users() == std::vector<index_t>{0, 2});
}

TEST_CASE("data: left-padded batches truncate to the last L items", "[data]") {
    const std::vector<row_id_t> a{1, 2, 3, 4, 5}, b{9}, c{};
    const std::span<const row_id_t> seqs[] = {a, b, c};
    Tensor<row_id_t, 2> out(Shape<2>{{3, 3}});
    data::left_padded_batch(seqs, out.view());
    REQUIRE(std::vector<row_id_t>(out.begin(), out.end()) == std::vector<row_id_t>{3, 4, 5, 0, 0, 9, 0, 0, 0});
    Tensor<row_id_t, 2> wrong(Shape<2>{{2, 3}});
    REQUIRE_THROWS_AS(data::left_padded_batch(seqs, wrong.view()), ShapeError);
}
