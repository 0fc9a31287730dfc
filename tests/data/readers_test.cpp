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

TEST_CASE("data: user-item file remaps items densely and keeps per-user order", "[data]") {
    TempFile f("2 5\n1 3\n1 1\n\n2 4\n1 7\n");
    const auto d = data::read_user_item_file(f.path);
    REQUIRE(d.num_users() == 2);
    REQUIRE(d.num_items() == 5);  // 1, 3, 4, 5, 7 -> 1..5; id 2 and 6 never occur, so they get no row
    REQUIRE(d.item_ids == std::vector<std::int64_t>{0, 1, 3, 4, 5, 7});
    REQUIRE(d.user_ids == std::vector<std::int64_t>{1, 2});
    REQUIRE(d.sequences[0] == std::vector<row_id_t>{2, 1, 5});
    REQUIRE(d.sequences[1] == std::vector<row_id_t>{4, 3});
    REQUIRE(d.num_interactions() == 5);
}

TEST_CASE("data: user-item file with ids 1..N reads them unchanged", "[data]") {
    TempFile f("1 1\n1 2\n2 3\n2 1\n");
    const auto d = data::read_user_item_file(f.path);
    REQUIRE(d.item_ids == std::vector<std::int64_t>{0, 1, 2, 3});
    REQUIRE(d.sequences[1] == std::vector<row_id_t>{3, 1});
}

TEST_CASE("data: user-item file with huge sparse ids allocates by the file, not by the id", "[data]") {
    // Before the remap, "23 415016111" asked for 3.3 GB and 2^31 - 1 for 16 GiB.
    TempFile f("23 415016111\n23 2147483647\n7 9223372036854775807\n");
    const auto d = data::read_user_item_file(f.path);
    REQUIRE(d.num_items() == 3);
    REQUIRE(d.item_ids == std::vector<std::int64_t>{0, 415016111, 2147483647, 9223372036854775807});
    REQUIRE(d.user_ids == std::vector<std::int64_t>{7, 23});
    REQUIRE(d.sequences[0] == std::vector<row_id_t>{3});
    REQUIRE(d.sequences[1] == std::vector<row_id_t>{1, 2});
}

TEST_CASE("data: empty inputs and directories are named as such", "[data][errors]") {
    TempFile empty(""), blank("\n  \n\t\n");
    REQUIRE_THROWS_MATCHES(data::read_user_item_file(empty.path), FormatError,
                           Catch::Message("[recblocks.format] " + empty.path +
                                          ": no interactions (the file is empty or has only blank lines)"));
    REQUIRE_THROWS_WITH(data::read_user_item_file(blank.path), Contains("no interactions"));
    const std::string dir = std::filesystem::temp_directory_path().string();
    REQUIRE_THROWS_MATCHES(data::read_user_item_file(dir), IoError,
                           Catch::Message("[recblocks.io] data::read_user_item_file: '" + dir +
                                          "' is a directory, not a file"));
    REQUIRE_THROWS_WITH(data::read_movielens_csv(dir), Contains("is a directory, not a file"));
    TempFile header_only("userId,movieId,rating,timestamp\n\n");
    REQUIRE_THROWS_WITH(data::read_movielens_csv(header_only.path), Contains(": no ratings after the header line"));
}

TEST_CASE("data: user-item file errors name file and line", "[data][errors]") {
    TempFile bad("1 2\n1 x\n");
    REQUIRE_THROWS_MATCHES(data::read_user_item_file(bad.path), FormatError,
                           Catch::Message("[recblocks.format] " + bad.path +
                                          ":2: expected 'user item' (two integers), got '1 x'"));
    TempFile zero("1 2\n0 3\n");
    REQUIRE_THROWS_WITH(data::read_user_item_file(zero.path), Contains(":2: ids must be >= 1, got user 0, item 3"));
    TempFile negative("1 2\n1 -3\n");
    REQUIRE_THROWS_WITH(data::read_user_item_file(negative.path), Contains(":2: ids must be >= 1"));
    TempFile overflow("1 99999999999999999999\n");
    REQUIRE_THROWS_WITH(data::read_user_item_file(overflow.path), Contains(":1: expected 'user item'"));
    TempFile three("1 2 3\n");
    REQUIRE_THROWS_AS(data::read_user_item_file(three.path), FormatError);
    REQUIRE_THROWS_AS(data::read_user_item_file("/nonexistent/recblocks.txt"), IoError);
}

TEST_CASE("data: S3-Rec sequence file: one line per user, items remapped densely", "[data]") {
    TempFile f("2 9 4 9\n1 4 7\r\n\n3\t7 100000000000\n1 9\n");
    const auto d = data::read_sequence_file(f.path);
    REQUIRE(d.item_ids == std::vector<std::int64_t>{0, 4, 7, 9, 100000000000});
    REQUIRE(d.user_ids == std::vector<std::int64_t>{1, 2, 3});
    REQUIRE(d.sequences[0] == std::vector<row_id_t>{1, 2, 3});  // user 1's two lines, in file order
    REQUIRE(d.sequences[1] == std::vector<row_id_t>{3, 1, 3});
    REQUIRE(d.sequences[2] == std::vector<row_id_t>{2, 4});
    TempFile lonely("1 2 3\n4\n");
    REQUIRE_THROWS_MATCHES(data::read_sequence_file(lonely.path), FormatError,
                           Catch::Message("[recblocks.format] " + lonely.path +
                                          ":2: expected 'user item item ...' (a user and at least one item), got '4'"));
    TempFile zero("1 2 0\n");
    REQUIRE_THROWS_WITH(data::read_sequence_file(zero.path), Contains(":1: field 3 '0' is not an id (an integer >= 1)"));
    TempFile empty("\n\n");
    REQUIRE_THROWS_WITH(data::read_sequence_file(empty.path), Contains(": no interactions"));
    REQUIRE_THROWS_WITH(data::read_sequence_file(std::filesystem::temp_directory_path().string()),
                        Contains("is a directory, not a file"));
}

TEST_CASE("data: the Amazon Sports file of the S3-Rec format reads as it is numbered", "[data]") {
    // A few lines of the public file's head: ids there are 1..N already, so the remap keeps them.
    TempFile f("1 1 2 3 4 5 6 7 8\n2 9 10 11 12 13 14 15 16 1 17 18 19 20 21 22 23 24 25 26\n");
    const auto d = data::read_sequence_file(f.path);
    REQUIRE(d.num_items() == 26);
    for (index_t i = 0; i <= 26; ++i) REQUIRE(d.item_ids[std::size_t(i)] == i);
    REQUIRE(d.sequences[1][8] == 1);
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
    TempFile negative("userId,movieId,rating,timestamp\n1,2,3.0,4\n1,-2,3.0,5\n");
    REQUIRE_THROWS_MATCHES(data::read_movielens_csv(negative.path), FormatError,
                           Catch::Message("[recblocks.format] " + negative.path +
                                          ":3: ids must be >= 0, got userId 1, movieId -2"));
    TempFile negative_user("userId,movieId,rating,timestamp\n-1,2,3.0,4\n");
    REQUIRE_THROWS_WITH(data::read_movielens_csv(negative_user.path), Contains(":2: ids must be >= 0, got userId -1"));
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
