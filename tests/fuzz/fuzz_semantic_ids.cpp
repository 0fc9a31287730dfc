// libFuzzer harness: tokenizers::load_semantic_ids, and a CodeTrie over
// whatever it accepts (the decoder builds one from the loaded codes).
#include "fuzz_support.hpp"
#include "recblocks/tokenizers/code_trie.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace rb = recblocks;
    const std::string& path = rbfuzz::input_file(data, size, "semantic_ids");
    try {
        const auto ids = rb::tokenizers::load_semantic_ids(path);
        const rb::tokenizers::CodeTrie trie(ids);  // duplicates are refused with a named error
        (void)trie;
    } catch (const rb::Error&) {
    }
    return 0;
}
