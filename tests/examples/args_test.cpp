// The example programs' flag parser (examples/common/args.hpp): values, switches, other
// spellings, the errors that name the flag as typed, --help from the flag table, args.txt's
// values, and the check that a getter's default is the one --help shows.
#include <catch2/catch.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../examples/common/args.hpp"

namespace {

std::vector<examples::FlagGroup> groups() {
    return {{"model",
             {{"maxlen", "200", "L", "N", false, {"max_seq_length"}},
              {"lr", "0.001", "learning rate", "X"},
              {"norm_first", "false", "pre-norm", "", true},
              {"init", "xavier_normal", "initialisation"},
              {"dataset", "", "the data", "FILE"},
              {"attention_dropout", "(--dropout_rate)", "dropout on the weights", "X"}}}};
}

/// Args from a command line written as words (argv[0] is added).
examples::Args parse(std::vector<std::string> words) {
    words.insert(words.begin(), "program");
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    return examples::Args(static_cast<int>(argv.size()), argv.data(), groups());
}

}  // namespace

TEST_CASE("Args: values, defaults, switches and other spellings", "[examples][args]") {
    const auto a = parse({"train", "--max_seq_length", "50", "--lr=0.01", "--norm_first", "--dataset", "x.txt"});
    CHECK(a.positional() == std::vector<std::string>{"train"});
    CHECK(a.integer_in("maxlen", 200, 1, 1000) == 50);  // given as --max_seq_length
    CHECK(a.spelled("maxlen") == "--max_seq_length");
    CHECK(a.real("lr", 1e-3) == 0.01);
    CHECK(a.boolean("norm_first", false));
    CHECK(a.str("init", "xavier_normal") == "xavier_normal");
    CHECK(a.str("dataset", "") == "x.txt");
    const auto none = parse({});
    CHECK(none.integer("maxlen", 200) == 200);
    CHECK_FALSE(none.boolean("norm_first", false));
    CHECK(parse({"--norm_first=false"}).boolean("norm_first", false) == false);
}

TEST_CASE("Args: errors name the flag as the user typed it", "[examples][args]") {
    CHECK_THROWS_WITH(parse({"--max_seq_length", "0"}).integer_in("maxlen", 200, 1, 1000),
                      "--max_seq_length must be in [1, 1000], got 0");
    CHECK_THROWS_WITH(parse({"--maxlen", "abc"}).integer("maxlen", 200), "--maxlen expects an integer, got 'abc'");
    CHECK_THROWS_WITH(parse({"--lr", "-1"}).positive("lr", 1e-3), "--lr must be > 0, got '-1'");
    CHECK_THROWS_WITH(parse({"--norm_first=yes"}).boolean("norm_first", false),
                      "--norm_first expects true or false, got 'yes'");
    CHECK_THROWS_WITH(parse({"--maxlen", "5", "--max_seq_length", "6"}),
                      "--maxlen and --max_seq_length are the same flag; give one");
    CHECK_THROWS_WITH(parse({"--epoch", "3"}), "unknown flag --epoch (see --help)");
    CHECK_THROWS_WITH(parse({"--maxlen"}), "--maxlen needs a value");
}

TEST_CASE("Args: a getter whose default differs from --help's is an internal error", "[examples][args]") {
    const auto a = parse({});
    CHECK_THROWS_AS(a.integer("maxlen", 100), std::logic_error);  // --help says 200
    CHECK_THROWS_AS(a.real("lr", 1e-4), std::logic_error);
    CHECK_THROWS_AS(a.str("init", "scaled_normal"), std::logic_error);
    CHECK_THROWS_AS(a.boolean("norm_first", true), std::logic_error);
    CHECK_THROWS_AS(a.integer("not_listed", 1), std::logic_error);
    CHECK(a.real("attention_dropout", -1.0) == -1.0);  // a described default is not checked
    CHECK_THROWS_AS(examples::Args(0, nullptr, {{"g", {{"a", "1", ""}, {"a", "2", ""}}}}), std::logic_error);
}

TEST_CASE("Args: --help shows every flag with its default and spellings; all_values for args.txt",
          "[examples][args]") {
    const auto a = parse({"--help"});
    REQUIRE(a.has("help"));
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    a.print_help(f, "usage: program\n");
    std::rewind(f);
    std::string text;
    for (int c = std::fgetc(f); c != EOF; c = std::fgetc(f)) text += static_cast<char>(c);
    std::fclose(f);
    CHECK_THAT(text, Catch::StartsWith("usage: program\n\nmodel:\n"));
    CHECK_THAT(text, Catch::Contains("  --maxlen N                  L (default: 200); also --max_seq_length\n"));
    CHECK_THAT(text, Catch::Contains("  --norm_first                pre-norm (default: false)\n"));
    CHECK_THAT(text, Catch::Contains("  --dataset FILE              the data\n"));
    CHECK_THAT(text, Catch::Contains("(default: --dropout_rate)"));

    const auto values = parse({"--max_seq_length", "50"}).all_values();
    CHECK(values.at("maxlen") == "50");
    CHECK(values.at("lr") == "0.001");
    CHECK(values.at("dataset") == "None");
    CHECK(values.at("attention_dropout") == "None");
    CHECK(values.size() == 6);
}

TEST_CASE("Args from a plain list of names: values, no default checks", "[examples][args]") {
    std::string prog = "program", flag = "--epochs", value = "3";
    char* argv[] = {prog.data(), flag.data(), value.data()};
    const examples::Args a(3, argv, std::set<std::string>{"epochs", "seed"});
    CHECK(a.integer("epochs", 1) == 3);
    CHECK(a.integer("seed", 42) == 42);
    CHECK(a.all_values().at("seed") == "None");
    CHECK_THROWS_WITH(examples::Args(3, argv, std::set<std::string>{"seed"}), "unknown flag --epochs (see --help)");
}
