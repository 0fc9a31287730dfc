// libFuzzer harness: models::CheckpointLayout::parse (the layout files of
// layouts/, docs/interop.md) and, for a layout that parses, what the programs
// do with it: apply() to a configuration, read_sizes() and load_state() of a
// PyTorch-named checkpoint of the tiny models through the fuzzed name map,
// concat and skip_rows rules.
#include <filesystem>
#include <optional>
#include <string_view>

#include "fuzz_support.hpp"
#include "recblocks/models/checkpoint_layout.hpp"

namespace {

namespace rb = recblocks;

/// The tiny models' weights under the reference implementations' names, written once per process.
struct ReferenceFiles {
    rbfuzz::TinyModels models;
    std::filesystem::path sasrec, bert4rec;
    ReferenceFiles() {
        const std::filesystem::path dir = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
        const std::string pid = std::to_string(::getpid());
        sasrec = dir / ("recblocks_fuzz_layout_sasrec_" + pid);
        bert4rec = dir / ("recblocks_fuzz_layout_bert4rec_" + pid);
        rbfuzz::write_pytorch_state(sasrec, models.sasrec, rb::io::sasrec_pmixer_names());
        rbfuzz::write_pytorch_state(bert4rec, models.bert4rec, rb::models::bert4rec_reference_names());
    }
    ~ReferenceFiles() {
        std::error_code ec;
        std::filesystem::remove(sasrec, ec);
        std::filesystem::remove(bert4rec, ec);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static ReferenceFiles files;
    std::optional<rb::models::CheckpointLayout> layout;
    try {
        layout = rb::models::CheckpointLayout::parse(
            std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
    } catch (const rb::Error&) {
        return 0;
    }
    const bool sasrec = layout->model() == rb::models::LayoutModel::sasrec;
    try {
        if (sasrec) {
            rb::models::SASRecConfig cfg = rbfuzz::tiny_sasrec_config();
            layout->apply(cfg);
            rb::models::read_sizes(files.sasrec, *layout, cfg);
            rb::models::load_state(files.sasrec, files.models.sasrec.params(), *layout);
        } else {
            rb::models::BERT4RecConfig cfg = rbfuzz::tiny_bert4rec_config();
            layout->apply(cfg);
            rb::models::read_sizes(files.bert4rec, *layout, cfg);
            rb::models::load_state(files.bert4rec, files.models.bert4rec.params(), *layout);
        }
    } catch (const rb::Error&) {
    }
    return 0;
}
