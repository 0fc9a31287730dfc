#pragma once
// Item attributes in the S3-Rec format (item2attributes.json of the Amazon Beauty / Sports / Toys
// files that S3-Rec, TIGER and later papers ship): one JSON object mapping each item id, written
// as a string, to the list of its attribute ids (categories and brand).
//
//   {"1": [1, 2, 3], "156": [7, 2, 8], ...}
//
//   auto attrs = data::read_item_attributes("Sports_and_Outdoors_item2attributes.json", 18357);
//   attrs.bags[i]          -> attribute ids of item i (1..N), in file order; bags[0] is empty (padding)
//   attrs.num_attributes   -> 1 + the largest attribute id (0 when there are none)
//
// Item ids are the file's ids, which are the dense ids of the interaction file when its ids are
// already 1..N (as in the S3-Rec files). An item of the catalogue the file does not mention gets
// an empty bag. An attribute repeated within one item's list is kept as often as it is written
// (the S3-Rec Sports file repeats some for 957 items): the bag is a multiset.
//
// Strict: the text must be exactly one object whose keys are decimal item ids in quotes and whose
// values are arrays of integers. Anything else — malformed JSON, trailing text, a key that is not
// an id, an item id outside 1..N, an item listed twice, a negative attribute id, a fraction or an
// exponent, an id beyond int32 — raises FormatError naming the file and the line:column of the
// offending character. IoError when the file cannot be read (or is a directory). The reader
// allocates in proportion to the file, never to an id's value (bags has N + 1 entries, N given).
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/types.hpp"
#include "recblocks/data/sequence_dataset.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

struct ItemAttributes {
    /// bags[i]: attribute ids of item i in 1..N (file order, repeats kept); bags[0] is empty.
    std::vector<std::vector<std::int32_t>> bags;
    /// 1 + the largest attribute id of any item (0 when no item has one).
    std::int32_t num_attributes = 0;

    [[nodiscard]] index_t num_items() const { return bags.empty() ? 0 : static_cast<index_t>(bags.size()) - 1; }
};

namespace detail {

/// A cursor over the JSON text that knows how to name its position.
class AttributeJsonCursor {
public:
    AttributeJsonCursor(std::string_view text, const std::string& path) : s_(text), path_(path) {}

    [[nodiscard]] bool at_end() const { return i_ >= s_.size(); }
    [[nodiscard]] char peek() const { return at_end() ? '\0' : s_[i_]; }
    [[nodiscard]] std::size_t offset() const { return i_; }
    void advance() { ++i_; }

    void skip_ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }

    /// "path:line:column" of byte `at` (1-based, columns counted in bytes).
    [[nodiscard]] std::string where(std::size_t at) const {
        std::size_t line = 1, col = 1;
        for (std::size_t k = 0; k < at && k < s_.size(); ++k) {
            if (s_[k] == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
        return recblocks::detail::concat(path_, ":", line, ":", col);
    }

    /// What stands at the cursor, for messages ("end of file" or the character).
    [[nodiscard]] std::string found() const {
        if (at_end()) return "the end of the file";
        const auto c = static_cast<unsigned char>(s_[i_]);
        if (c < 0x20 || c >= 0x7f) return recblocks::detail::concat("byte ", static_cast<int>(c));
        return recblocks::detail::concat("'", s_[i_], "'");
    }

    [[noreturn]] void fail(std::size_t at, std::string_view what) const {
        throw FormatError(recblocks::detail::concat(where(at), ": ", what));
    }

    void expect(char c, std::string_view context) {
        skip_ws();
        if (peek() != c)
            fail(i_, recblocks::detail::concat("expected '", c, "' ", context, ", found ", found()));
        ++i_;
    }

    /// A JSON integer (optional '-', no leading zeros) at the cursor; fractions,
    /// exponents and values outside int64 are refused. `what` names the value.
    std::int64_t integer(std::string_view what) {
        const std::size_t start = i_;
        bool neg = false;
        if (peek() == '-') {
            neg = true;
            ++i_;
        }
        const std::size_t digits = i_;
        while (!at_end() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
        if (i_ == digits) fail(start, recblocks::detail::concat("expected ", what, " (an integer), found ", found()));
        if (i_ - digits > 1 && s_[digits] == '0')
            fail(start, recblocks::detail::concat(what, " '", s_.substr(start, i_ - start), "' has a leading zero"));
        if (peek() == '.' || peek() == 'e' || peek() == 'E')
            fail(start, recblocks::detail::concat(what, " must be an integer (no fraction or exponent)"));
        std::uint64_t v = 0;
        for (std::size_t k = digits; k < i_; ++k) {
            const auto dgt = static_cast<std::uint64_t>(s_[k] - '0');
            if (v > (std::uint64_t{1} << 63) / 10 || v * 10 + dgt > (std::uint64_t{1} << 63) - (neg ? 0 : 1))
                fail(start, recblocks::detail::concat(what, " '", s_.substr(start, i_ - start), "' is out of range"));
            v = v * 10 + dgt;
        }
        if (neg) return v == (std::uint64_t{1} << 63) ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(v);
        return static_cast<std::int64_t>(v);
    }

private:
    std::string_view s_;
    const std::string& path_;
    std::size_t i_ = 0;
};

}  // namespace detail

/// Reads an S3-Rec item2attributes.json for a catalogue of items 1..num_items
/// (see the header comment). ValueError when num_items < 0.
inline ItemAttributes read_item_attributes(const std::string& path, index_t num_items) {
    constexpr std::string_view op = "data::read_item_attributes";
    RECBLOCKS_CHECK_VALUE(num_items >= 0 && num_items < index_t{std::numeric_limits<row_id_t>::max()}, op,
                          ": num_items must be in [0, 2^31 - 1), got ", num_items);
    auto in = detail::open_for_reading(path, op);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    RECBLOCKS_CHECK(IoError, !in.bad(), op, ": error while reading '", path, "'");

    ItemAttributes out;
    out.bags.resize(static_cast<std::size_t>(num_items) + 1);
    std::vector<char> seen(static_cast<std::size_t>(num_items) + 1, 0);
    detail::AttributeJsonCursor c(text, path);
    c.expect('{', "at the start (the file must hold one JSON object: item id -> attribute ids)");
    c.skip_ws();
    if (c.peek() == '}') {
        c.advance();
    } else {
        while (true) {
            c.skip_ws();
            const std::size_t key_at = c.offset();
            if (c.peek() != '"') c.fail(key_at, recblocks::detail::concat("expected an item id in quotes, found ", c.found()));
            c.advance();
            const std::size_t id_at = c.offset();
            if (c.peek() == '-') c.fail(key_at, "item ids must be >= 1, found a negative id");
            const std::int64_t item = c.integer("the item id");
            if (c.peek() != '"')
                c.fail(c.offset(), recblocks::detail::concat("the item id must be a decimal integer in quotes; found ",
                                                             c.found(), " inside the key"));
            c.advance();
            if (item < 1 || item > num_items)
                c.fail(id_at, recblocks::detail::concat("item id ", item, " is outside the catalogue 1..", num_items));
            if (seen[static_cast<std::size_t>(item)])
                c.fail(key_at, recblocks::detail::concat("item ", item, " is listed twice"));
            seen[static_cast<std::size_t>(item)] = 1;
            c.expect(':', recblocks::detail::concat("after item id ", item));
            c.expect('[', recblocks::detail::concat("(the list of attribute ids of item ", item, ")"));
            auto& bag = out.bags[static_cast<std::size_t>(item)];
            c.skip_ws();
            if (c.peek() == ']') {
                c.advance();
            } else {
                while (true) {
                    c.skip_ws();
                    const std::size_t at = c.offset();
                    const std::int64_t a = c.integer("an attribute id");
                    if (a < 0)
                        c.fail(at, recblocks::detail::concat("attribute id ", a, " of item ", item, " is negative"));
                    if (a >= std::numeric_limits<std::int32_t>::max())
                        c.fail(at, recblocks::detail::concat("attribute id ", a, " of item ", item,
                                                             " exceeds the int32 range"));
                    bag.push_back(static_cast<std::int32_t>(a));
                    out.num_attributes = std::max(out.num_attributes, static_cast<std::int32_t>(a + 1));
                    c.skip_ws();
                    if (c.peek() == ',') {
                        c.advance();
                        continue;
                    }
                    if (c.peek() == ']') {
                        c.advance();
                        break;
                    }
                    c.fail(c.offset(), recblocks::detail::concat("expected ',' or ']' in the attribute list of item ",
                                                                 item, ", found ", c.found()));
                }
            }
            c.skip_ws();
            if (c.peek() == ',') {
                c.advance();
                continue;
            }
            if (c.peek() == '}') {
                c.advance();
                break;
            }
            c.fail(c.offset(), recblocks::detail::concat("expected ',' or '}' after the attributes of item ", item,
                                                         ", found ", c.found()));
        }
    }
    c.skip_ws();
    if (!c.at_end()) c.fail(c.offset(), recblocks::detail::concat("unexpected ", c.found(), " after the object"));
    return out;
}

}  // namespace data
RECBLOCKS_NAMESPACE_END
