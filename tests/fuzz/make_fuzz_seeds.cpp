// Writes the seed corpora of the fuzz harnesses with the library's own
// writers, so the fuzzer starts from files the loaders accept:
//
//   make_fuzz_seeds OUT_DIR SOURCE_DIR
//
// OUT_DIR/<harness>/ gets a few valid files each (safetensors of every dtype
// and rank, checkpoints with and without Adam state, PyTorch state_dicts under
// the programs' name maps, semantic IDs, IVF index files, user-item, S3-Rec and MovieLens text, S3-Rec
// item attributes); the MovieLens seed is the head of SOURCE_DIR/data/ml-latest-small/ratings.csv, the
// attribute seed the head of SOURCE_DIR/data/amazon-sports/Sports_and_Outdoors_item2attributes.json.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/io/param_io.hpp"
#include "recblocks/io/pytorch_import.hpp"
#include "recblocks/io/item_id_map.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/models/model_description.hpp"
#include "recblocks/retrieval/ivf_index.hpp"
#include "recblocks/serving/request_lines.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"
#include "recblocks/train/checkpoint.hpp"

namespace rb = recblocks;
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
    if (!out) throw rb::IoError("make_fuzz_seeds: cannot write " + p.string());
}

void safetensors_seeds(const fs::path& dir) {
    rb::io::SafetensorsWriter w;
    rb::Matrix<float> m(rb::Shape<2>{{3, 4}});
    for (rb::index_t i = 0; i < m.numel(); ++i) m.data()[i] = 0.25f * float(i) - 1.0f;
    w.add("f32", m);
    rb::Tensor<double, 3> t(rb::Shape<3>{{2, 1, 2}});
    for (rb::index_t i = 0; i < t.numel(); ++i) t.data()[i] = double(i) / 3.0;
    w.add("f64", t);
    rb::Vector<std::int64_t> ids(rb::Shape<1>{{5}});
    for (rb::index_t i = 0; i < 5; ++i) ids.data()[i] = (i - 2) * 1000000007LL;
    w.add("i64", ids);
    rb::Vector<std::int32_t> i32(rb::Shape<1>{{3}});
    w.add("i32", i32);
    rb::Vector<rb::bf16> h(rb::Shape<1>{{2}});
    w.add("bf16", h);
    rb::Vector<rb::f16> g(rb::Shape<1>{{2}});
    w.add("f16", g);
    rb::Vector<std::int8_t> i8(rb::Shape<1>{{4}});
    w.add("i8", i8);
    w.add_scalar("scalar", 0.5f);
    w.set_metadata("format", "pt");
    w.set_metadata("note", "seed \"with\" escapes \\u00e9 é");
    w.write(dir / "all_dtypes.safetensors");
    rb::io::SafetensorsWriter empty;
    empty.write(dir / "empty.safetensors");
    rb::io::SafetensorsWriter zero;
    zero.add("zero_rows", rb::Matrix<float>(rb::Shape<2>{{0, 3}}));
    zero.write(dir / "zero_extent.safetensors");
}

void checkpoint_seeds(const fs::path& dir, rbfuzz::TinyModels& m) {
    rb::train::save_checkpoint<float>(dir / "with_adam.safetensors", m.sasrec.params(), &m.adam, 7,
                                      {{"model", "sasrec"}, {"seed", "42"}});
    rb::train::save_checkpoint<float>(dir / "weights_only.safetensors", m.sasrec.params(), nullptr, 0);
    // A checkpoint that describes itself, as the programs save it: the description and an item-id map.
    auto meta = rb::models::model_metadata(rb::models::ModelDescription::of(m.sasrec.config(), rb::models::NormKind::query));
    std::vector<std::int64_t> ids{0};
    for (rb::index_t i = 1; i <= m.sasrec.config().num_items; ++i) ids.push_back(1000 + 3 * i);
    const rb::io::ItemIdMap items(ids);
    rb::train::save_checkpoint<float>(dir / "described.safetensors", m.sasrec.params(), nullptr, 3, meta,
                                      [&](rb::io::SafetensorsWriter& w) { items.add_to(w); });
}

/// Request lines (and answers, which share the grammar), and model descriptions as "key=value" lines.
void request_line_seeds(const fs::path& dir, rbfuzz::TinyModels& m) {
    write_text(dir / "history.txt", R"({"user": "u1", "history": [1, 2, 3], "k": 5, "exclude_seen": false})");
    write_text(dir / "events.txt", R"({"user": 42, "events": [9007199254740993]})");
    write_text(dir / "state.txt", R"({"user": "\u00e9\n"})");
    const std::vector<std::int64_t> items{31, 7};
    const std::vector<float> scores{1.5f, -0.25f};
    write_text(dir / "answer.txt", rb::serving::response_line("u\"1", false, items, scores));
    write_text(dir / "error.txt", rb::serving::error_line("7", true, "request: \"k\" must be an integer"));
    auto as_lines = [](const std::map<std::string, std::string>& meta) {
        std::string s;
        for (const auto& [k, v] : meta) s += k + "=" + v + "\n";
        return s;
    };
    write_text(dir / "sasrec_description.txt",
               as_lines(rb::models::model_metadata(
                   rb::models::ModelDescription::of(m.sasrec.config(), rb::models::NormKind::pre))));
    write_text(dir / "bert4rec_description.txt",
               as_lines(rb::models::model_metadata(rb::models::ModelDescription::of(m.bert4rec.config()))));
}

void pytorch_seeds(const fs::path& dir, rbfuzz::TinyModels& m) {
    rbfuzz::write_pytorch_state(dir / "sasrec_conv1d.safetensors", m.sasrec, rb::io::sasrec_pmixer_names());
    auto linear = rb::io::sasrec_pmixer_names();
    linear.insert(linear.begin(), {"blocks.{i}.ffn.", "forward_layers.{i}."});
    rbfuzz::write_pytorch_state(dir / "sasrec_linear.safetensors", m.sasrec, linear);
    rbfuzz::write_pytorch_state(dir / "bert4rec.safetensors", m.bert4rec, rb::models::bert4rec_reference_names());
}

void semantic_id_seeds(const fs::path& dir) {
    rb::Matrix<std::int32_t> codes(rb::Shape<2>{{4, 3}});
    const std::int32_t v[] = {0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1};
    for (int i = 0; i < 12; ++i) codes.data()[i] = v[i];
    rb::tokenizers::save_semantic_ids(dir / "plain.safetensors", rb::tokenizers::SemanticIds(codes.cview(), {2, 2, 2}));
    rb::tokenizers::save_semantic_ids(dir / "disambiguated.safetensors",
                                      rb::tokenizers::SemanticIds(codes.cview(), {2, 2, 4}, true));
}

/// Small IVF indexes of both code kinds (one with a removed item) as save_ivf_index writes them.
void ivf_index_seeds(const fs::path& dir) {
    const rb::index_t n = 96, d = 6;
    rb::Matrix<float> items(rb::Shape<2>{{n, d}});
    for (rb::index_t i = 0; i < n * d; ++i) items.data()[i] = float((i * 37) % 23) / 7.0f - 1.5f;
    rb::ThreadPool pool(1);
    const rb::backend::Cpu<> be{&pool};
    rb::retrieval::IvfIndex pq4(be, items.cview(), {.nlist = 4, .codes = rb::retrieval::IvfCodes::pq4});
    rb::retrieval::save_ivf_index(pq4, dir / "pq4.safetensors");
    pq4.remove(5);
    rb::retrieval::save_ivf_index(pq4, dir / "pq4_removed.safetensors");
    rb::retrieval::IvfIndex i8(be, items.cview(), {.nlist = 3, .codes = rb::retrieval::IvfCodes::int8});
    rb::retrieval::save_ivf_index(i8, dir / "int8.safetensors");
}

void text_seeds(const fs::path& user_item, const fs::path& sequences, const fs::path& movielens,
                const fs::path& source_dir) {
    write_text(sequences / "small.txt", "1 1 2 3 4 5 6 7 8\n2 9 10 11 12 13 14 15 16 1 17\r\n\n3\t2 9 2 415016111\n");
    write_text(user_item / "small.txt", "1 1\n1 2\n1 3\n2 2\n2 4\n2 5\n3 1\n3 5\n3 2\n3 4\n");
    write_text(user_item / "sparse_ids.txt", "23 415016111\n23 2147483647\n7 9223372036854775807\n7 5\r\n\n");
    std::string many;
    for (int u = 1; u <= 30; ++u)
        for (int k = 0; k < 5; ++k) many += std::to_string(u) + "\t" + std::to_string(1 + (u * 7 + k * 13) % 150) + "\n";
    write_text(user_item / "150_items.txt", many);

    write_text(movielens / "small.csv",
               "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n1,1061,3.0,1260759182\n"
               "2,10,4.0,835355493\r\n2,17,5.0,835355681\n2,31,4.0,835355493\n");
    std::ifstream in(source_dir / "data/ml-latest-small/ratings.csv");
    std::string line, head;
    for (int i = 0; i < 300 && std::getline(in, line); ++i) head += line + "\n";
    if (!head.empty()) write_text(movielens / "ml_latest_small_head.csv", head);
}

/// Item attributes (S3-Rec item2attributes.json): a small hand-written file and the head of the
/// bundled Amazon Sports file, closed into a valid object.
void item_attribute_seeds(const fs::path& dir, const fs::path& source_dir) {
    write_text(dir / "small.json", "{\"1\": [1, 2, 3], \"7\": [2, 2],\n \"3\": [], \"5999\": [0]}\n");
    std::ifstream in(source_dir / "data/amazon-sports/Sports_and_Outdoors_item2attributes.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t cut = 0;
    for (int i = 0; i < 40 && cut != std::string::npos; ++i) cut = text.find("],", cut + 1);
    if (cut != std::string::npos) write_text(dir / "amazon_sports_head.json", text.substr(0, cut) + "]}");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: make_fuzz_seeds OUT_DIR SOURCE_DIR\n");
        return 2;
    }
    try {
        const fs::path out = argv[1], source = argv[2];
        for (const char* d :
             {"safetensors", "checkpoint", "pytorch_import", "semantic_ids", "ivf_index", "user_item", "sequences",
              "movielens", "request_lines", "checkpoint_layout", "item_attributes"})
            fs::create_directories(out / d);
        rbfuzz::TinyModels m;
        safetensors_seeds(out / "safetensors");
        checkpoint_seeds(out / "checkpoint", m);
        request_line_seeds(out / "request_lines", m);
        pytorch_seeds(out / "pytorch_import", m);
        semantic_id_seeds(out / "semantic_ids");
        ivf_index_seeds(out / "ivf_index");
        text_seeds(out / "user_item", out / "sequences", out / "movielens", source);
        // The shipped layout files (layouts/*.json) seed the layout parser.
        for (const auto& e : fs::directory_iterator(source / "layouts"))
            if (e.path().extension() == ".json")
                fs::copy_file(e.path(), out / "checkpoint_layout" / e.path().filename(),
                              fs::copy_options::overwrite_existing);
        item_attribute_seeds(out / "item_attributes", source);
        // Every safetensors seed is also a seed of the other safetensors loaders, and the reverse.
        for (const char* d : {"checkpoint", "pytorch_import", "semantic_ids", "ivf_index"})
            for (const auto& e : fs::directory_iterator(out / d))
                fs::copy_file(e.path(), out / "safetensors" / (std::string(d) + "_" + e.path().filename().string()),
                              fs::copy_options::overwrite_existing);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
        return 1;
    }
}
