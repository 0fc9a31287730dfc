// libFuzzer harness: data::read_movielens_csv (MovieLens ratings CSV), then
// what a program does next (fuzz_dataset_reader.hpp).
#include "fuzz_dataset_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return rbfuzz::fuzz_dataset_reader(data, size, "movielens",
                                       [](const std::string& path) { return recblocks::data::read_movielens_csv(path); });
}
