// libFuzzer harness: train::load_checkpoint into a small SASRec and its Adam
// state, with and without the optimiser.
#include "fuzz_support.hpp"
#include "recblocks/train/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static rbfuzz::TinyModels m;
    const std::string& path = rbfuzz::input_file(data, size, "checkpoint");
    try {
        (void)recblocks::train::load_checkpoint<float>(path, m.sasrec.params(), &m.adam);
    } catch (const recblocks::Error&) {
    }
    try {
        (void)recblocks::train::load_checkpoint<float>(path, m.sasrec.params(), nullptr);
    } catch (const recblocks::Error&) {
    }
    return 0;
}
