// safetensors I/O: round trips for every dtype and rank 0..4, a file written by
// Python's own `safetensors` package (read, and reproduced byte for byte), one
// malformed file per validation rule, every truncation of a valid file, dtype
// conversions, and the atomic write (temporary file, rename, clean-up).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/io/safetensors.hpp"

using namespace recblocks;
using io::SafetensorsDType;
using io::SafetensorsReader;
using io::SafetensorsWriter;
using Catch::Matchers::Contains;

namespace fs = std::filesystem;

using rbtest::TempDir;

namespace {


std::vector<std::byte> read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    if (!c.empty()) std::memcpy(b.data(), c.data(), c.size());
    return b;
}

void write_bytes(const fs::path& p, const std::vector<std::byte>& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// A file from a header text (not padded) and a data buffer.
std::vector<std::byte> make_file(const std::string& header, const std::vector<std::byte>& data = {}) {
    std::vector<std::byte> f(8 + header.size());
    const std::uint64_t n = header.size();
    std::memcpy(f.data(), &n, 8);
    std::memcpy(f.data() + 8, header.data(), header.size());
    f.insert(f.end(), data.begin(), data.end());
    return f;
}

std::vector<std::byte> zeros(std::size_t n) { return std::vector<std::byte>(n, std::byte{0}); }

fs::path golden_path() { return fs::path(RECBLOCKS_SOURCE_DIR) / "tests/io/data/python_written.safetensors"; }

/// Deterministic, type-appropriate test values (varied signs, not all exact in bf16).
template <class T>
T value_of(std::int64_t i) {
    if constexpr (std::is_same_v<T, bool>) return i % 3 == 0;
    else if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>)
        return T(static_cast<float>(i) * 0.37f - 3.0f);
    else if constexpr (std::is_floating_point_v<T>) return static_cast<T>(static_cast<double>(i) * 0.37 - 3.0);
    else if constexpr (std::is_unsigned_v<T>) return static_cast<T>((i * 7919) % 256);
    else return static_cast<T>(((i * 7919) % 251 - 125) * (std::numeric_limits<T>::max() / 127));  // spans T's range
}

template <class T, std::size_t R>
Tensor<T, R> make_tensor(Shape<R> shape, std::int64_t seed) {
    Tensor<T, R> t(shape);
    for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = value_of<T>(seed + i);
    return t;
}

template <class T, std::size_t R>
bool same_bits(const Tensor<T, R>& a, const Tensor<T, R>& b) {
    return a.shape() == b.shape() &&
           (a.numel() == 0 || std::memcmp(static_cast<const void*>(a.data()), static_cast<const void*>(b.data()),
                                          static_cast<std::size_t>(a.numel()) * sizeof(T)) == 0);
}

template <class T, std::size_t R>
void check_record(const SafetensorsReader& r, const std::string& name, const Tensor<T, R>& expected) {
    INFO("tensor " << name);
    const io::TensorRecord& rec = r.record(name);
    REQUIRE(rec.dtype == io::safetensors_dtype_of<T>());
    REQUIRE(rec.shape == std::vector<std::int64_t>(expected.shape().extents.begin(), expected.shape().extents.end()));
    REQUIRE(rec.bytes.size() == static_cast<std::size_t>(expected.numel()) * sizeof(T));
    REQUIRE(same_bits(r.load<T, R>(name), expected));
}

/// RAII: restores RLIMIT_FSIZE and SIGXFSZ's disposition.
struct FileSizeLimit {
    rlimit old{};
    struct sigaction old_action {};
    explicit FileSizeLimit(rlim_t bytes) {
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        ::sigaction(SIGXFSZ, &ignore, &old_action);
        ::getrlimit(RLIMIT_FSIZE, &old);
        rlimit lim = old;
        lim.rlim_cur = bytes;
        ::setrlimit(RLIMIT_FSIZE, &lim);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        ::sigaction(SIGXFSZ, &old_action, nullptr);
    }
};

}  // namespace

TEST_CASE("safetensors: dtype names and sizes", "[safetensors]") {
    for (auto t : {SafetensorsDType::f64, SafetensorsDType::f32, SafetensorsDType::bf16, SafetensorsDType::f16,
                   SafetensorsDType::i64, SafetensorsDType::i32, SafetensorsDType::i16, SafetensorsDType::i8,
                   SafetensorsDType::u8, SafetensorsDType::boolean}) {
        REQUIRE(io::dtype_from_name(io::dtype_name(t)) == t);
    }
    REQUIRE(io::dtype_name(SafetensorsDType::bf16) == "BF16");
    REQUIRE(io::dtype_name(SafetensorsDType::boolean) == "BOOL");
    REQUIRE(io::dtype_size(SafetensorsDType::f64) == 8);
    REQUIRE(io::dtype_size(SafetensorsDType::bf16) == 2);
    REQUIRE(io::dtype_size(SafetensorsDType::boolean) == 1);
    REQUIRE_FALSE(io::dtype_from_name("U16").has_value());
    REQUIRE_FALSE(io::dtype_from_name("f32").has_value());
    STATIC_REQUIRE(io::safetensors_dtype_of<const float>() == SafetensorsDType::f32);
    STATIC_REQUIRE(io::safetensors_dtype_of<bool>() == SafetensorsDType::boolean);
}

TEMPLATE_TEST_CASE("safetensors: round trip of ranks 0..4", "[safetensors]", float, double, bf16, f16, std::int64_t,
                   std::int32_t, std::int16_t, std::int8_t, std::uint8_t, bool) {
    using T = TestType;
    const auto r0 = make_tensor<T, 0>(Shape<0>{}, 1);
    const auto r1 = make_tensor<T, 1>(Shape<1>{{5}}, 10);
    const auto r2 = make_tensor<T, 2>(Shape<2>{{3, 4}}, 20);
    const auto r3 = make_tensor<T, 3>(Shape<3>{{2, 3, 2}}, 40);
    const auto r4 = make_tensor<T, 4>(Shape<4>{{2, 1, 3, 2}}, 60);
    const T scalar = value_of<T>(99);

    SafetensorsWriter w;
    w.add("r0", r0);
    w.add("r1", r1.view());   // a view of mutable data
    w.add("r2", r2.cview());  // a view of const data
    w.add("r3", r3);
    w.add("r4", r4);
    w.add_scalar("s", scalar);
    REQUIRE(w.size() == 6);
    REQUIRE(w.contains("r3"));

    TempDir dir;
    const fs::path file = dir.path / "t.safetensors";
    w.write(file);
    REQUIRE(read_bytes(file) == w.serialize());
    REQUIRE(dir.entries() == std::vector<std::string>{"t.safetensors"});  // no temporary file left

    const auto r = SafetensorsReader::open(file);
    REQUIRE(r.names() == std::vector<std::string>{"r0", "r1", "r2", "r3", "r4", "s"});
    REQUIRE(r.record("r0").shape.empty());
    check_record(r, "r0", r0);
    check_record(r, "r1", r1);
    check_record(r, "r2", r2);
    check_record(r, "r3", r3);
    check_record(r, "r4", r4);
    const T back = r.load_scalar<T>("s");
    REQUIRE(std::memcmp(static_cast<const void*>(&back), static_cast<const void*>(&scalar), sizeof(T)) == 0);

    // load_into a view of a matching shape gives the same bits.
    Tensor<T, 3> into(Shape<3>{{2, 3, 2}});
    r.load_into("r3", into.view());
    REQUIRE(same_bits(into, r3));

    // The header is padded so the data starts 8-byte aligned.
    const auto bytes = w.serialize();
    std::uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    REQUIRE(header_len % 8 == 0);
    REQUIRE(static_cast<char>(bytes[8 + header_len - 1]) != ',');
}

TEST_CASE("safetensors: empty tensors (a zero extent) round trip", "[safetensors]") {
    SafetensorsWriter w;
    w.add("a", Tensor<float, 1>(Shape<1>{{0}}));
    w.add("b", Tensor<std::int64_t, 2>(Shape<2>{{3, 0}}));
    w.add("c", Tensor<bf16, 3>(Shape<3>{{0, 0, 2}}));
    w.add("d", make_tensor<float, 1>(Shape<1>{{2}}, 5));
    const auto r = SafetensorsReader::from_bytes(w.serialize(), "empty.safetensors");
    REQUIRE(r.record("a").shape == std::vector<std::int64_t>{0});
    REQUIRE(r.record("b").shape == std::vector<std::int64_t>{3, 0});
    REQUIRE(r.record("c").shape == std::vector<std::int64_t>{0, 0, 2});
    REQUIRE(r.record("b").bytes.empty());
    REQUIRE(r.load<std::int64_t, 2>("b").shape() == Shape<2>{{3, 0}});
    REQUIRE(r.load<float, 3>("c").numel() == 0);  // BF16 loads as float
    Tensor<std::int64_t, 2> into(Shape<2>{{3, 0}});
    r.load_into("b", into.view());
    REQUIRE(same_bits(r.load<float, 1>("d"), make_tensor<float, 1>(Shape<1>{{2}}, 5)));

    // A file with no tensors at all: "{}" padded to 8 bytes, as Python writes it.
    const auto none = SafetensorsWriter{}.serialize();
    REQUIRE(none == make_file("{}      "));
    const auto rn = SafetensorsReader::from_bytes(none);
    REQUIRE(rn.size() == 0);
    REQUIRE(rn.metadata().empty());
}

TEST_CASE("safetensors: strided views are packed on add and filled on load_into", "[safetensors]") {
    // A 3x2 block (ld 4) of a 3x4 matrix.
    Tensor<float, 2> big(Shape<2>{{3, 4}});
    for (index_t i = 0; i < big.numel(); ++i) big.data()[i] = static_cast<float>(i);
    SafetensorsWriter w;
    w.add("block", matrix_view(big.data() + 1, 3, 2, 4));
    const auto r = SafetensorsReader::from_bytes(w.serialize());
    const auto packed = r.load<float, 2>("block");
    REQUIRE(packed.shape() == Shape<2>{{3, 2}});
    REQUIRE(std::vector<float>(packed.begin(), packed.end()) == std::vector<float>{1, 2, 5, 6, 9, 10});

    // Load it into columns 2..3 of a zeroed 3x4 matrix: the other columns stay 0.
    Tensor<double, 2> dst(Shape<2>{{3, 4}});
    r.load_into("block", matrix_view(dst.data() + 2, 3, 2, 4));
    REQUIRE(std::vector<double>(dst.begin(), dst.end()) == std::vector<double>{0, 0, 1, 2, 0, 0, 5, 6, 0, 0, 9, 10});
}

TEST_CASE("safetensors: metadata round trip, escapes and Unicode included", "[safetensors]") {
    SafetensorsWriter w;
    w.add("x", make_tensor<float, 1>(Shape<1>{{3}}, 0));
    w.set_metadata("format", "pt");
    const std::string tricky = "line1\nline2 \"quoted\" back\\slash\ttab \x01\x1f\x7f / \xc3\xa9 \xf0\x9f\x98\x80";
    w.set_metadata("note", tricky);
    w.set_metadata("\xe2\x82\xac key", "");
    w.set_metadata("format", "np");  // replaces
    const auto bytes = w.serialize();
    const auto r = SafetensorsReader::from_bytes(bytes);
    const std::map<std::string, std::string> expected{{"format", "np"}, {"note", tricky}, {"\xe2\x82\xac key", ""}};
    REQUIRE(r.metadata() == expected);

    // Escaped exactly as serde_json does (what Python's package writes).
    const std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    REQUIRE_THAT(text, Contains(R"("note":"line1\nline2 \"quoted\" back\\slash\ttab \u0001\u001f)"
                                "\x7f / \xc3\xa9 \xf0\x9f\x98\x80\""));

    // No metadata: no "__metadata__" key at all.
    SafetensorsWriter plain;
    plain.add("x", make_tensor<float, 1>(Shape<1>{{3}}, 0));
    const auto pb = plain.serialize();
    REQUIRE_THAT(std::string(reinterpret_cast<const char*>(pb.data()), pb.size()), !Contains("__metadata__"));
    REQUIRE(SafetensorsReader::from_bytes(pb).metadata().empty());

    // Escapes a Python writer does not produce still read back.
    const auto r2 = SafetensorsReader::from_bytes(
        make_file(R"({"__metadata__":{"k":"\u00e9\ud83d\ude00\/\b\f\r"}}  )"));
    REQUIRE(r2.metadata().at("k") == "\xc3\xa9\xf0\x9f\x98\x80/\b\f\r");
}

TEST_CASE("safetensors: reads the file Python's safetensors wrote, and writes the same bytes", "[safetensors]") {
    const auto r = SafetensorsReader::open(golden_path());
    REQUIRE(r.names() == std::vector<std::string>{"bf", "emb.weight", "empty", "half", "i16", "i8", "ids", "mask",
                                                  "pos", "rank4", "scale", "u8"});
    REQUIRE(r.metadata() == std::map<std::string, std::string>{{"format", "pt"}});

    const auto emb = r.load<float, 2>("emb.weight");
    REQUIRE(emb.shape() == Shape<2>{{3, 2}});
    REQUIRE(std::vector<float>(emb.begin(), emb.end()) ==
            std::vector<float>{0.5f, -1.25f, 2.0f, 0.125f, -3.5f, 1024.0f});
    REQUIRE(r.load_scalar<double>("scale") == 0.1);
    REQUIRE(r.load_scalar<float>("scale") == 0.1f);  // F64 -> float rounds once
    const auto half = r.load<f16, 1>("half");
    const auto half_f = r.load<float, 1>("half");
    REQUIRE(std::vector<float>(half_f.begin(), half_f.end()) ==
            std::vector<float>{1.0f, -2.5f, 65504.0f, 0x1p-14f, 0x1p-24f});
    REQUIRE(half.data()[4].bits == 0x0001);  // smallest subnormal
    const auto bf = r.load<bf16, 2>("bf");
    REQUIRE(bf.shape() == Shape<2>{{2, 2}});
    REQUIRE(static_cast<float>(bf.data()[2]) == 3.140625f);
    const auto bf_d = r.load<double, 2>("bf");
    REQUIRE(std::vector<double>(bf_d.begin(), bf_d.end()) == std::vector<double>{1.0, -0.5, 3.140625, 256.0});
    const auto ids = r.load<std::int64_t, 2>("ids");
    REQUIRE(std::vector<std::int64_t>(ids.begin(), ids.end()) ==
            std::vector<std::int64_t>{0, 1, -1, std::int64_t{1} << 40, -(std::int64_t{1} << 62),
                                      std::numeric_limits<std::int64_t>::max()});
    const auto pos = r.load<std::int32_t, 1>("pos");
    REQUIRE(std::vector<std::int32_t>(pos.begin(), pos.end()) ==
            std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(), 0,
                                      std::numeric_limits<std::int32_t>::max()});
    const auto i16 = r.load<std::int16_t, 1>("i16");
    REQUIRE(std::vector<std::int16_t>(i16.begin(), i16.end()) == std::vector<std::int16_t>{-32768, 7, 32767});
    const auto i8 = r.load<std::int8_t, 1>("i8");
    REQUIRE(std::vector<std::int8_t>(i8.begin(), i8.end()) == std::vector<std::int8_t>{-128, 0, 127});
    const auto u8 = r.load<std::uint8_t, 2>("u8");
    REQUIRE(std::vector<std::uint8_t>(u8.begin(), u8.end()) == std::vector<std::uint8_t>{0, 255});
    const auto mask = r.load<bool, 1>("mask");
    REQUIRE(std::vector<bool>(mask.begin(), mask.end()) == std::vector<bool>{true, false, true});
    REQUIRE(r.load<float, 2>("empty").shape() == Shape<2>{{0, 4}});
    const auto rank4 = r.load<float, 4>("rank4");
    REQUIRE(rank4.shape() == Shape<4>{{1, 2, 1, 2}});
    REQUIRE(rank4(0, 1, 0, 1) == 4.0f);

    // The same tensors, added in another order, serialise to Python's bytes exactly.
    SafetensorsWriter w;
    w.add("u8", u8);
    w.add("rank4", rank4);
    w.add("mask", mask);
    w.add("pos", pos);
    w.add_scalar("scale", 0.1);
    w.add("bf", bf);
    w.add("emb.weight", emb);
    w.add("empty", Tensor<float, 2>(Shape<2>{{0, 4}}));
    w.add("half", half);
    w.add("i16", i16);
    w.add("i8", i8);
    w.add("ids", ids);
    w.set_metadata("format", "pt");
    REQUIRE(w.serialize() == read_bytes(golden_path()));

    // add_raw passes records through unchanged.
    SafetensorsWriter copy;
    for (const auto& name : r.names()) {
        const auto& rec = r.record(name);
        copy.add_raw(rec.name, rec.dtype, rec.shape, rec.bytes);
    }
    copy.set_metadata("format", "pt");
    REQUIRE(copy.serialize() == read_bytes(golden_path()));
}

TEST_CASE("safetensors: dtype conversions and range checks on load", "[safetensors]") {
    SafetensorsWriter w;
    w.add("f32", Tensor<float, 1>(Shape<1>{{2}}));
    w.add("big", [] {
        Tensor<std::int64_t, 1> t(Shape<1>{{3}});
        t.data()[0] = 1;
        t.data()[1] = std::int64_t{1} << 32;
        t.data()[2] = -7;
        return t;
    }());
    w.add("small", [] {
        Tensor<std::int64_t, 1> t(Shape<1>{{2}});
        t.data()[0] = -5;
        t.data()[1] = 100;
        return t;
    }());
    w.add("u8", [] {
        Tensor<std::uint8_t, 1> t(Shape<1>{{2}});
        t.data()[0] = 3;
        t.data()[1] = 255;
        return t;
    }());
    w.add("flags", [] {
        Tensor<bool, 1> t(Shape<1>{{2}});
        t.data()[1] = true;
        return t;
    }());
    w.add("bits", [] {
        Tensor<std::int32_t, 1> t(Shape<1>{{2}});
        t.data()[0] = 1;
        return t;
    }());
    Tensor<float, 1> fine(Shape<1>{{2}});
    fine.data()[0] = 1.0f + 0x1p-8f;      // halfway between bf16 1 and 1 + 2^-7: ties to even, 1
    fine.data()[1] = 1.0f + 3 * 0x1p-8f;  // halfway between 1 + 2^-7 and 1 + 2^-6: ties to even, 1 + 2^-6
    w.add("fine", fine);
    const auto r = SafetensorsReader::from_bytes(w.serialize(), "conv.safetensors");

    // Widening and in-range narrowing work.
    const auto small8 = r.load<std::int8_t, 1>("small");
    REQUIRE(small8.data()[0] == -5);
    REQUIRE(small8.data()[1] == 100);
    REQUIRE(r.load<std::int64_t, 1>("u8").data()[1] == 255);
    REQUIRE(r.load<std::int32_t, 1>("flags").data()[1] == 1);
    REQUIRE(r.load<bool, 1>("bits").data()[0]);
    const auto fine_bf = r.load<bf16, 1>("fine");
    REQUIRE(fine_bf.data()[0].bits == 0x3F80);
    REQUIRE(fine_bf.data()[1].bits == 0x3F82);

    // Out of range: ValueError naming the tensor, the element and the type.
    REQUIRE_THROWS_AS((r.load<std::int32_t, 1>("big")), ValueError);
    REQUIRE_THROWS_WITH((r.load<std::int32_t, 1>("big")),
                        Contains("conv.safetensors: tensor \"big\": element 1 = 4294967296 does not fit in int32"));
    REQUIRE_THROWS_WITH((r.load<std::uint64_t, 1>("big")), Contains("element 2 = -7 does not fit in uint64"));
    REQUIRE_THROWS_WITH((r.load<std::int8_t, 1>("u8")), Contains("element 1 = 255 does not fit in int8"));
    REQUIRE_THROWS_AS((r.load<std::uint8_t, 1>("small")), ValueError);
    REQUIRE_THROWS_WITH((r.load<bool, 1>("small")), Contains("element 0 = -5 does not fit in bool"));

    // Family mismatch: ValueError.
    REQUIRE_THROWS_AS((r.load<std::int32_t, 1>("f32")), ValueError);
    REQUIRE_THROWS_WITH((r.load<std::int32_t, 1>("f32")),
                        Contains("tensor \"f32\" is F32, which does not load into int32"));
    REQUIRE_THROWS_WITH((r.load<float, 1>("big")), Contains("tensor \"big\" is I64, which does not load into float"));

    // A failed load_into leaves the destination untouched.
    Tensor<std::int32_t, 1> dst(Shape<1>{{3}});
    dst.data()[0] = 42;
    REQUIRE_THROWS_AS(r.load_into("big", dst.view()), ValueError);
    REQUIRE(dst.data()[0] == 42);
}

TEST_CASE("safetensors: shape mismatches and unknown names", "[safetensors]") {
    const auto r = SafetensorsReader::open(golden_path());
    const std::string path = golden_path().string();

    REQUIRE_THROWS_AS((r.load<float, 3>("emb.weight")), ShapeError);
    REQUIRE_THROWS_WITH((r.load<float, 3>("emb.weight")),
                        Contains(path + ": tensor \"emb.weight\" is [3, 2] (rank 2) but load asks for rank 3"));
    REQUIRE_THROWS_AS(r.load_scalar<float>("emb.weight"), ShapeError);

    Tensor<float, 2> wrong(Shape<2>{{2, 3}});
    wrong.data()[0] = 7.0f;
    REQUIRE_THROWS_AS(r.load_into("emb.weight", wrong.view()), ShapeError);
    REQUIRE_THROWS_WITH(r.load_into("emb.weight", wrong.view()),
                        Contains("tensor \"emb.weight\" is [3, 2] but dst is [2, 3]"));
    REQUIRE(wrong.data()[0] == 7.0f);

    REQUIRE_FALSE(r.contains("nope"));
    REQUIRE(r.contains("ids"));
    REQUIRE_THROWS_AS(r.record("nope"), IndexError);
    REQUIRE_THROWS_WITH(r.record("nope"),
                        Contains(path + ": no tensor named \"nope\"; the file has 12 tensors: \"bf\", \"emb.weight\", "
                                        "\"empty\", \"half\", \"i16\", \"i8\", \"ids\", \"mask\", ..."));
    REQUIRE_THROWS_AS((r.load<float, 1>("nope")), IndexError);
}

TEST_CASE("safetensors: writer argument errors", "[safetensors]") {
    SafetensorsWriter w;
    w.add("a", Tensor<float, 1>(Shape<1>{{2}}));
    REQUIRE_THROWS_AS(w.add("a", Tensor<double, 1>(Shape<1>{{2}})), ValueError);
    REQUIRE_THROWS_WITH(w.add_scalar("a", 1.0f), Contains("tensor \"a\" was already added"));
    REQUIRE_THROWS_WITH(w.add_scalar("__metadata__", 1.0f), Contains("\"__metadata__\" is reserved"));
    REQUIRE_THROWS_WITH(w.add_scalar(std::string("bad\xff"), 1.0f), Contains("tensor name is not valid UTF-8"));
    REQUIRE_THROWS_WITH(w.set_metadata("k", "\xc3"), Contains("value is not valid UTF-8"));
    const std::vector<std::byte> three(3);
    REQUIRE_THROWS_WITH(w.add_raw("r", SafetensorsDType::f32, {2}, three),
                        Contains("tensor \"r\" has 3 bytes but shape [2] F32 needs 8"));
    REQUIRE_THROWS_WITH(w.add_raw("r", SafetensorsDType::f32, {-1}, three), Contains("an invalid size"));
    const std::vector<std::byte> two_bool{std::byte{1}, std::byte{2}};
    REQUIRE_THROWS_WITH(w.add_raw("r", SafetensorsDType::boolean, {2}, two_bool),
                        Contains("BOOL element 1 is 2, not 0 or 1"));
    REQUIRE(w.size() == 1);
}

TEST_CASE("safetensors: every malformed file raises FormatError naming the file and the problem", "[safetensors]") {
    const std::string f32_2 = R"({"dtype":"F32","shape":[2],"data_offsets":)";
    struct Case {
        const char* what;
        std::vector<std::byte> file;
        std::string message;
    };
    std::vector<std::byte> short_len = make_file("{}");
    short_len.resize(5);
    std::vector<std::byte> long_len = make_file("{}");
    long_len[0] = std::byte{11};
    const std::vector<Case> cases{
        {"empty file", {}, "file is 0 bytes, shorter than the 8-byte header length field"},
        {"5-byte file", short_len, "file is 5 bytes, shorter than the 8-byte header length field"},
        {"header longer than file", long_len, "header length 11 exceeds the 2 bytes that follow the length field"},
        {"huge header length", [] {
             auto f = make_file("{}");
             for (int i = 0; i < 8; ++i) f[static_cast<std::size_t>(i)] = std::byte{0xff};
             return f;
         }(), "header length 18446744073709551615 exceeds"},
        {"invalid JSON", make_file(R"({"a": )"), "header is not valid JSON: unexpected end of the header at byte 6"},
        {"trailing text", make_file("{} x"),
         "header is not valid JSON: unexpected text after the JSON value at byte 3"},
        {"invalid UTF-8", make_file("{\"a\xff\":1}"), "header is not valid JSON: invalid UTF-8 at byte 3"},
        {"lone surrogate", make_file(R"({"\ud800":1})"), "lone high surrogate"},
        {"raw control character", make_file("{\"a\nb\":1}"), "raw control character in a string"},
        {"deep nesting", make_file(R"({"__metadata__":)" + std::string(200, '[') + std::string(200, ']') + "}"),
         "nested too deeply"},
        {"not an object", make_file("[1, 2]"), "the header must be a JSON object, found an array"},
        {"entry not an object", make_file(R"({"a":5})"), "tensor \"a\": entry must be an object, found a number"},
        {"missing dtype", make_file(R"({"a":{"shape":[],"data_offsets":[0,4]}})", zeros(4)),
         "tensor \"a\": missing \"dtype\""},
        {"missing shape", make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", zeros(4)),
         "tensor \"a\": missing \"shape\""},
        {"missing data_offsets", make_file(R"({"a":{"dtype":"F32","shape":[]}})", zeros(4)),
         "tensor \"a\": missing \"data_offsets\""},
        {"duplicate field",
         make_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[],"data_offsets":[0,4]}})", zeros(4)),
         "tensor \"a\": field \"dtype\" appears twice"},
        {"dtype not a string", make_file(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", zeros(4)),
         "tensor \"a\": \"dtype\" must be a string, found a number"},
        {"unknown dtype", make_file(R"({"a":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}})", zeros(4)),
         "tensor \"a\": unsupported dtype \"U16\""},
        {"lower-case dtype", make_file(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", zeros(4)),
         "unsupported dtype \"f32\""},
        {"shape not an array", make_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", zeros(8)),
         "tensor \"a\": \"shape\" must be an array, found a number"},
        {"shape element a string", make_file(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", zeros(8)),
         "tensor \"a\": shape element 0 is a string, not an integer"},
        {"fractional extent", make_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", zeros(8)),
         "tensor \"a\": shape element 0 = 2.5 is not an integer"},
        {"negative extent", make_file(R"({"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", zeros(8)),
         "tensor \"a\": shape [2, -1] has a negative extent"},
        {"extent beyond 64 bits",
         make_file(R"({"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}})", zeros(8)),
         "tensor \"a\": shape element 0 = 99999999999999999999 overflows 64 bits"},
        {"numel overflow",
         make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", zeros(8)),
         "tensor \"a\": shape [4294967296, 4294967296] F32 needs more than 2^63 bytes"},
        {"offsets not a pair", make_file(R"({"a":)" + f32_2 + R"([0]}})", zeros(8)),
         "tensor \"a\": \"data_offsets\" must be [begin, end] with two non-negative integers"},
        {"negative offset", make_file(R"({"a":)" + f32_2 + R"([-8,0]}})", zeros(8)),
         "\"data_offsets\" must be [begin, end] with two non-negative integers"},
        {"offsets reversed", make_file(R"({"a":)" + f32_2 + R"([8,0]}})", zeros(8)),
         "tensor \"a\": data_offsets [8, 0] end before they begin"},
        {"size mismatch",
         make_file(R"({"emb.weight":{"dtype":"F32","shape":[5,4],"data_offsets":[0,100]}})", zeros(100)),
         "tensor \"emb.weight\": data_offsets [0, 100] hold 100 bytes but shape [5, 4] F32 needs 80"},
        {"offsets past the buffer", make_file(R"({"a":)" + f32_2 + R"([8,16]}})", zeros(12)),
         "tensor \"a\": data_offsets [8, 16] lie outside the 12-byte data buffer"},
        {"overlap", make_file(R"({"a":)" + f32_2 + R"([0,8]},"b":)" + f32_2 + R"([4,12]}})", zeros(12)),
         "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap"},
        {"same range twice", make_file(R"({"a":)" + f32_2 + R"([0,8]},"b":)" + f32_2 + R"([0,8]}})", zeros(8)),
         "tensors \"a\" [0, 8] and \"b\" [0, 8] overlap"},
        {"gap between tensors", make_file(R"({"a":)" + f32_2 + R"([0,8]},"b":)" + f32_2 + R"([12,20]}})", zeros(20)),
         "bytes [8, 12) of the data buffer belong to no tensor"},
        {"gap at the start", make_file(R"({"a":)" + f32_2 + R"([4,12]}})", zeros(12)),
         "bytes [0, 4) of the data buffer belong to no tensor"},
        {"trailing bytes", make_file(R"({"a":)" + f32_2 + R"([0,8]}})", zeros(12)),
         "bytes [8, 12) of the data buffer belong to no tensor"},
        {"duplicate name", make_file(R"({"a":)" + f32_2 + R"([0,8]},"a":)" + f32_2 + R"([8,16]}})", zeros(16)),
         "duplicate tensor name \"a\""},
        {"metadata not an object", make_file(R"({"__metadata__":[]})"),
         "\"__metadata__\" must be an object of strings, found an array"},
        {"metadata value not a string", make_file(R"({"__metadata__":{"epoch":3}})"),
         "\"__metadata__\" value for key \"epoch\" must be a string, found a number"},
        {"metadata key twice", make_file(R"({"__metadata__":{"k":"1","k":"2"}})"),
         "\"__metadata__\" has the key \"k\" twice"},
        {"metadata twice", make_file(R"({"__metadata__":{},"__metadata__":{}})"), "\"__metadata__\" appears twice"},
        {"BOOL byte not 0 or 1", make_file(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
                                           {std::byte{1}, std::byte{2}}),
         "tensor \"m\": BOOL element 1 is 2, not 0 or 1"},
    };

    TempDir dir;
    int i = 0;
    for (const Case& c : cases) {
        INFO("case: " << c.what);
        const fs::path file = dir.path / ("bad" + std::to_string(i++) + ".safetensors");
        write_bytes(file, c.file);
        REQUIRE_THROWS_AS(SafetensorsReader::open(file), FormatError);
        REQUIRE_THROWS_WITH(SafetensorsReader::open(file),
                            Contains("[recblocks.format] " + file.string() + ": ") && Contains(c.message));
    }

    // Things the format allows: padding, whitespace, fields it does not know, empty names.
    const auto ok = SafetensorsReader::from_bytes(
        make_file(" \n{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":[1,{}]},"
                  "\"__metadata__\":{}}\t   ",
                  zeros(4)));
    REQUIRE(ok.names() == std::vector<std::string>{""});
    REQUIRE(SafetensorsReader::from_bytes(make_file(R"({"__metadata__":null})")).metadata().empty());
}

TEST_CASE("safetensors: every truncation of a valid file is a FormatError", "[safetensors]") {
    SafetensorsWriter w;
    w.add("a", make_tensor<float, 2>(Shape<2>{{2, 3}}, 0));
    w.add("b", make_tensor<std::int8_t, 1>(Shape<1>{{3}}, 0));
    w.add("e", Tensor<float, 1>(Shape<1>{{0}}));
    w.set_metadata("k", "v");
    for (const auto& full : {read_bytes(golden_path()), w.serialize()}) {
        REQUIRE_NOTHROW(SafetensorsReader::from_bytes(full));
        for (std::size_t n = 0; n < full.size(); ++n) {
            INFO("prefix of " << n << " of " << full.size() << " bytes");
            const std::vector<std::byte> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
            REQUIRE_THROWS_AS(SafetensorsReader::from_bytes(prefix), FormatError);
        }
    }
}

TEST_CASE("safetensors: corrupted bytes never crash the reader", "[safetensors]") {
    // Every byte of the golden file set to a few values: the reader either
    // accepts the file (a data byte changed) or raises FormatError.
    const auto good = read_bytes(golden_path());
    int rejected = 0;
    for (std::size_t i = 0; i < good.size(); ++i) {
        for (const unsigned v : {0x00u, 0x22u, 0x2Cu, 0x5Du, 0x7Du, 0x80u, 0xFFu}) {
            auto bad = good;
            bad[i] = std::byte(v);
            try {
                (void)SafetensorsReader::from_bytes(std::move(bad));
            } catch (const FormatError&) {
                ++rejected;
            }
        }
    }
    REQUIRE(rejected > 0);
}

TEST_CASE("safetensors: I/O errors", "[safetensors]") {
    TempDir dir;
    const fs::path missing = dir.path / "missing.safetensors";
    REQUIRE_THROWS_AS(SafetensorsReader::open(missing), IoError);
    REQUIRE_THROWS_WITH(SafetensorsReader::open(missing),
                        Contains(missing.string() + ": cannot open for reading: No such file or directory"));
    REQUIRE_THROWS_AS(SafetensorsReader::open(dir.path), IoError);
    REQUIRE_THROWS_WITH(SafetensorsReader::open(dir.path), Contains("Is a directory"));
}

TEST_CASE("safetensors: write replaces the target atomically and cleans up on failure", "[safetensors]") {
    TempDir dir;
    const fs::path target = dir.path / "model.safetensors";
    SafetensorsWriter a, b;
    a.add("w", make_tensor<float, 2>(Shape<2>{{4, 4}}, 1));
    a.set_metadata("version", "a");
    b.add("w", make_tensor<float, 2>(Shape<2>{{64, 16}}, 2));
    b.add("ids", make_tensor<std::int64_t, 1>(Shape<1>{{100}}, 3));
    b.set_metadata("version", "b");
    const auto bytes_a = a.serialize(), bytes_b = b.serialize();

    SECTION("success leaves exactly the target, no temporary file") {
        a.write(target);
        REQUIRE(read_bytes(target) == bytes_a);
        b.write(target);  // over an existing file
        REQUIRE(read_bytes(target) == bytes_b);
        REQUIRE(dir.entries() == std::vector<std::string>{"model.safetensors"});
        REQUIRE(SafetensorsReader::open(target).metadata().at("version") == "b");
    }

    SECTION("a reader sees the old file or the new one, never a mix") {
        a.write(target);
        std::atomic<bool> done{false};
        std::thread writer([&] {
            for (int i = 0; i < 60; ++i) (i % 2 ? a : b).write(target);
            done = true;
        });
        int reads = 0, bad = 0;
        while (!done || reads == 0) {
            const auto got = read_bytes(target);
            if (got != bytes_a && got != bytes_b) ++bad;
            ++reads;
        }
        writer.join();
        REQUIRE(bad == 0);
        REQUIRE(dir.entries() == std::vector<std::string>{"model.safetensors"});
    }

    SECTION("a directory that does not exist: IoError, nothing created") {
        const fs::path nowhere = dir.path / "no_such_dir" / "model.safetensors";
        REQUIRE_THROWS_AS(a.write(nowhere), IoError);
        REQUIRE_THROWS_WITH(a.write(nowhere), Contains(nowhere.string() + ": cannot create the temporary file") &&
                                                  Contains("No such file or directory"));
        REQUIRE(dir.entries().empty());
    }

    SECTION("a failed rename removes the temporary file") {
        fs::create_directories(target / "child");  // the target is a non-empty directory
        REQUIRE_THROWS_AS(a.write(target), IoError);
        REQUIRE_THROWS_WITH(a.write(target), Contains(target.string() + ": cannot rename the temporary file") &&
                                                 Contains("over it"));
        REQUIRE(dir.entries() == std::vector<std::string>{"model.safetensors"});
        REQUIRE(fs::is_directory(target / "child"));
    }

    SECTION("a failed write keeps the old file and removes the temporary file") {
        a.write(target);
        {
            // Files may not grow past 256 bytes: writing b's temporary file fails with EFBIG.
            const FileSizeLimit limit(256);
            REQUIRE(bytes_b.size() > 256);
            REQUIRE_THROWS_AS(b.write(target), IoError);
            REQUIRE_THROWS_WITH(b.write(target), Contains(target.string() + ": cannot write the temporary file") &&
                                                     Contains("File too large"));
        }
        REQUIRE(read_bytes(target) == bytes_a);
        REQUIRE(dir.entries() == std::vector<std::string>{"model.safetensors"});
    }
}

TEST_CASE("safetensors: write removes the temporary files of killed writers, and only those", "[safetensors]") {
    TempDir dir;
    const fs::path target = dir.path / "model.safetensors";
    // A pid that surely exited (a child, reaped), and the full temporary file a save of
    // that process would leave if it were killed before its rename.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    const std::string dead = std::to_string(child);
    const std::string orphan = "model.safetensors.tmp." + dead + ".3";
    std::ofstream(dir.path / orphan) << std::string(4096, 'x');
    const std::vector<std::string> kept = {
        "model.safetensors.tmp." + std::to_string(::getpid()) + ".99",   // this process: maybe another thread's write
        "model.safetensors.tmp." + std::to_string(::getppid()) + ".0",   // a live process: a concurrent writer
        "other.safetensors.tmp." + dead + ".0",                          // another target
        "model.safetensors.tmp." + dead,                                 // not the writer's pattern
        "model.safetensors.tmp.x" + dead + ".0",
        "model.safetensors.tmp." + dead + ".0.bak",
    };
    for (const auto& k : kept) std::ofstream(dir.path / k) << "keep";
    REQUIRE(fs::exists(dir.path / orphan));
    REQUIRE(io::detail::temp_file_owner(orphan, "model.safetensors") == std::optional<pid_t>(child));
    REQUIRE_FALSE(io::detail::temp_file_owner("model.safetensors.tmp.0.1", "model.safetensors"));

    SafetensorsWriter w;
    w.add("w", make_tensor<float, 2>(Shape<2>{{4, 4}}, 1));
    w.write(target);
    auto expected = kept;
    expected.push_back("model.safetensors");
    std::sort(expected.begin(), expected.end());
    REQUIRE(dir.entries() == expected);
    REQUIRE(io::detail::remove_orphaned_temp_files(target) == 0);
}

TEST_CASE("safetensors: a moved reader keeps its records valid", "[safetensors]") {
    auto r = SafetensorsReader::open(golden_path());
    const auto* before = r.record("ids").bytes.data();
    SafetensorsReader moved = std::move(r);
    REQUIRE(moved.record("ids").bytes.data() == before);
    REQUIRE(moved.load<std::int64_t, 2>("ids").data()[1] == 1);
}
