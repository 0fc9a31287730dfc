// libFuzzer harness: io::load_pytorch_state with the name maps the programs
// use (pmixer's SASRec, conv1d and linear feed-forward; the BERT4Rec reference).
#include "fuzz_support.hpp"
#include "recblocks/io/pytorch_import.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace rb = recblocks;
    static rbfuzz::TinyModels m;
    static const rb::io::NameMap conv1d = rb::io::sasrec_pmixer_names();
    static const rb::io::NameMap linear = [] {
        auto map = rb::io::sasrec_pmixer_names();
        map.insert(map.begin(), {"blocks.{i}.ffn.", "forward_layers.{i}."});
        return map;
    }();
    static const rb::io::NameMap bert = rb::models::bert4rec_reference_names();
    const std::string& path = rbfuzz::input_file(data, size, "pytorch");
    for (const auto* map : {&conv1d, &linear}) {
        try {
            (void)rb::io::load_pytorch_state(path, m.sasrec.params(), *map);
        } catch (const rb::Error&) {
        }
    }
    try {
        (void)rb::io::load_pytorch_state(path, m.bert4rec.params(), bert);
    } catch (const rb::Error&) {
    }
    return 0;
}
