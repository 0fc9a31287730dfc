// libFuzzer harness: data::read_item_attributes (S3-Rec's item2attributes.json, item id ->
// attribute ids) for a catalogue of 6,000 items (the seed cut from the Sports file names items up
// to 5,105), then what a program does next: the attribute TF-IDF projection of the bags. Checks what the reader promises: N + 1 bags, bag 0 empty, every
// attribute id in [0, num_attributes); and unit or zero rows from the projection.
#include <cmath>
#include <cstdlib>

#include "fuzz_support.hpp"
#include "recblocks/data/item_attributes.hpp"
#include "recblocks/data/item_vectors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace rb = recblocks;
    constexpr rb::index_t kItems = 6000;
    const std::string& path = rbfuzz::input_file(data, size, "item_attributes");
    try {
        const auto a = rb::data::read_item_attributes(path, kItems);
        if (a.num_items() != kItems || !a.bags[0].empty()) std::abort();
        for (const auto& bag : a.bags)
            for (const auto id : bag)
                if (id < 0 || id >= a.num_attributes) std::abort();
        const auto x = rb::data::attribute_tfidf_projection(a, {8, 1});
        for (rb::index_t i = 0; i < x.extent(0); ++i) {
            double norm = 0;
            for (rb::index_t j = 0; j < x.extent(1); ++j) {
                if (!std::isfinite(x(i, j))) std::abort();
                norm += double(x(i, j)) * x(i, j);
            }
            if (a.bags[static_cast<std::size_t>(i + 1)].empty() ? norm != 0 : std::abs(norm - 1) > 1e-3) std::abort();
        }
    } catch (const rb::Error&) {
    }
    return 0;
}
