#pragma once
// The map between a model's dense item ids 1..N and the ids the items have in
// the user's data (the readers of data/ remap ids densely and keep the
// originals: SequenceDataset::item_ids). Saved beside the weights as the
// int64 tensor "item_ids" [N + 1] (entry 0 is the padding id, 0), so a
// checkpoint can answer in the user's ids without the data set.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/io/safetensors.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace io {

inline constexpr std::string_view kItemIdsTensor = "item_ids";

class ItemIdMap {
public:
    ItemIdMap() = default;
    /// originals[i]: the source id of dense item i (originals[0] = padding, any
    /// value); ValueError if a source id appears twice among 1..N.
    explicit ItemIdMap(std::vector<std::int64_t> originals) : originals_(std::move(originals)) {
        RECBLOCKS_CHECK_VALUE(!originals_.empty(), "ItemIdMap: needs the padding entry 0");
        dense_.reserve(originals_.size());
        for (std::size_t i = 1; i < originals_.size(); ++i)
            RECBLOCKS_CHECK_VALUE(dense_.emplace(originals_[i], static_cast<row_id_t>(i)).second,
                                  "ItemIdMap: item id ", originals_[i], " appears twice (dense ids ",
                                  dense_.at(originals_[i]), " and ", i, ")");
    }

    [[nodiscard]] index_t num_items() const { return static_cast<index_t>(originals_.size()) - 1; }
    [[nodiscard]] bool empty() const { return originals_.empty(); }
    /// The source id of dense item `dense` in [1, N].
    [[nodiscard]] std::int64_t original(row_id_t dense) const { return originals_.at(static_cast<std::size_t>(dense)); }
    /// The dense id of source id `original`, or nullopt if the model has no such item.
    [[nodiscard]] std::optional<row_id_t> dense(std::int64_t original) const {
        const auto it = dense_.find(original);
        if (it == dense_.end()) return std::nullopt;
        return it->second;
    }
    [[nodiscard]] const std::vector<std::int64_t>& originals() const { return originals_; }

    /// Adds the "item_ids" tensor to a file being written.
    void add_to(SafetensorsWriter& w) const {
        w.add_raw(std::string(kItemIdsTensor), SafetensorsDType::i64, {static_cast<std::int64_t>(originals_.size())},
                  std::as_bytes(std::span<const std::int64_t>(originals_)));
    }

    /// The map a file holds, or nullopt if it has no "item_ids" tensor.
    /// FormatError naming the file if the tensor is not [num_items + 1] integers
    /// or repeats an id.
    static std::optional<ItemIdMap> read(const SafetensorsReader& r, index_t num_items) {
        if (!r.contains(std::string(kItemIdsTensor))) return std::nullopt;
        const auto& rec = r.record(std::string(kItemIdsTensor));
        RECBLOCKS_CHECK_FORMAT(rec.shape.size() == 1 && rec.shape[0] == num_items + 1 && !is_floating(rec.dtype),
                               r.source(), ": tensor \"item_ids\" must be integers of shape [", num_items + 1,
                               "] (the model has ", num_items, " items), found ", dtype_name(rec.dtype), " ",
                               detail::format_list(rec.shape));
        std::vector<std::int64_t> ids(static_cast<std::size_t>(num_items + 1));
        r.load_into(kItemIdsTensor, TensorView<std::int64_t, 1>(ids.data(), Shape<1>{{num_items + 1}}));
        try {
            return ItemIdMap(std::move(ids));
        } catch (const ValueError& e) {
            throw FormatError(recblocks::detail::concat(r.source(), ": tensor \"item_ids\": ", e.what()));
        }
    }

private:
    std::vector<std::int64_t> originals_;
    std::unordered_map<std::int64_t, row_id_t> dense_;
};

}  // namespace io
RECBLOCKS_NAMESPACE_END
