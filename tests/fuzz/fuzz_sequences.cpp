// libFuzzer harness: data::read_sequence_file (the S3-Rec format, "user item
// item ..." per line), then what a program does next (fuzz_dataset_reader.hpp).
#include "fuzz_dataset_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return rbfuzz::fuzz_dataset_reader(data, size, "sequences",
                                       [](const std::string& path) { return recblocks::data::read_sequence_file(path); });
}
