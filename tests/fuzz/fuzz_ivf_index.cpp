// libFuzzer harness: retrieval::load_ivf_index, then what a loaded index is
// used for — a search, a filtered search, a removal — so a file the loader
// accepts must also be safe to search (lists, codes, ids and rows agree).
#include <algorithm>
#include <vector>

#include "fuzz_support.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/retrieval/ivf_index.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace rb = recblocks;
    const std::string& path = rbfuzz::input_file(data, size, "ivf_index");
    try {
        rb::retrieval::IvfIndex index = rb::retrieval::load_ivf_index(path);
        if (index.size() == 0) return 0;
        const rb::backend::Reference be;
        const rb::index_t k = std::min<rb::index_t>(3, index.size());
        std::vector<float> q(static_cast<std::size_t>(index.dim()));
        for (std::size_t i = 0; i < q.size(); ++i) q[i] = (i % 3 == 0) ? 1.0f : -0.5f;
        std::vector<rb::row_id_t> ids(static_cast<std::size_t>(k));
        std::vector<float> scores(static_cast<std::size_t>(k));
        const auto qv = rb::vector_view<const float>(q.data(), index.dim());
        index.set_search_params({.nprobe = 2, .rerank = 8});
        index.search(be, qv, k, rb::vector_view(ids.data(), k), rb::vector_view(scores.data(), k));
        rb::retrieval::ItemBitset allowed(index.id_limit());
        for (rb::index_t id = 0; id < index.id_limit(); id += 2) allowed.set(rb::row_id_t(id));
        try {
            index.search_filtered(be, qv, k, rb::vector_view(ids.data(), k), rb::vector_view(scores.data(), k),
                                  allowed.view());
        } catch (const rb::Error&) {  // fewer than k allowed
        }
        index.remove(ids[0]);
    } catch (const rb::Error&) {
    }
    return 0;
}
