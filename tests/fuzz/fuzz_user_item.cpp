// libFuzzer harness: data::read_user_item_file, then what a program does next
// (fuzz_dataset_reader.hpp).
#include "fuzz_dataset_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return rbfuzz::fuzz_dataset_reader(data, size, "user_item",
                                       [](const std::string& path) { return recblocks::data::read_user_item_file(path); });
}
