#pragma once
// A configuration struct in and out of a file's string metadata (the
// safetensors "__metadata__" map), one key per field: "<prefix><field>".
//
// A struct lists its fields once, in a visitor function
//
//     template <class Config, class F> void visit_fields(Config& c, F&& f) {
//         f("max_len", c.max_len);
//         f("dropout", c.dropout);   // adding a field is this one line
//     }
//
// and MetadataWriter / MetadataReader are the two visitors. Values are text:
// integers in decimal, doubles in the shortest form that reads back to the
// same bits, booleans "true"/"false", enums by the names EnumNames<E> gives,
// vectors comma-separated. The reader names the key in every error: missing,
// not parsable, not one of an enum's names; check_no_unknown_keys() rejects a
// key under the prefix that no field claimed (a newer writer's option that
// this reader would silently ignore would change the model's scores).
#include <array>
#include <charconv>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace io {

/// Specialise for an enum stored in metadata:
///   template <> struct EnumNames<Colour> {
///       static constexpr std::array<std::pair<Colour, std::string_view>, 2> values{{{Colour::red, "red"}, ...}};
///   };
template <class E>
struct EnumNames;

namespace detail {

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

/// One value as metadata text.
template <class V>
std::string metadata_text(const V& v) {
    if constexpr (std::is_same_v<V, bool>) {
        return v ? "true" : "false";
    } else if constexpr (std::is_enum_v<V>) {
        for (const auto& [e, name] : EnumNames<V>::values)
            if (e == v) return std::string(name);
        RECBLOCKS_CHECK_VALUE(false, "metadata: enum value ", static_cast<long long>(v), " has no name");
        return {};
    } else if constexpr (std::is_integral_v<V> || std::is_floating_point_v<V>) {
        char buf[40];
        const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round trip for doubles
        return std::string(buf, end);
    } else if constexpr (std::is_same_v<V, std::string>) {
        return v;
    } else if constexpr (is_vector<V>::value) {
        std::string s;
        for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + metadata_text(v[i]);
        return s;
    } else {
        static_assert(sizeof(V) == 0, "metadata fields are integers, doubles, bools, enums, strings or vectors of them");
    }
}

/// Parses `text` into v; false if it is not a value of V.
template <class V>
bool parse_metadata_text(std::string_view text, V& v) {
    if constexpr (std::is_same_v<V, bool>) {
        if (text != "true" && text != "false") return false;
        v = text == "true";
        return true;
    } else if constexpr (std::is_enum_v<V>) {
        for (const auto& [e, name] : EnumNames<V>::values)
            if (name == text) {
                v = e;
                return true;
            }
        return false;
    } else if constexpr (std::is_integral_v<V> || std::is_floating_point_v<V>) {
        if (text.empty()) return false;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        return ec == std::errc() && end == text.data() + text.size();
    } else if constexpr (std::is_same_v<V, std::string>) {
        v = std::string(text);
        return true;
    } else if constexpr (is_vector<V>::value) {
        v.clear();
        if (text.empty()) return true;
        std::size_t i = 0;
        while (true) {
            const std::size_t j = std::min(text.find(',', i), text.size());
            typename V::value_type e{};
            if (!parse_metadata_text(text.substr(i, j - i), e)) return false;
            v.push_back(e);
            if (j == text.size()) return true;
            i = j + 1;
        }
    } else {
        static_assert(sizeof(V) == 0, "metadata fields are integers, doubles, bools, enums, strings or vectors of them");
    }
}

/// "an integer", "one of from_one, per_slot", ... for messages.
template <class V>
std::string expected_text() {
    if constexpr (std::is_same_v<V, bool>) return "true or false";
    else if constexpr (std::is_enum_v<V>) {
        std::string s = "one of ";
        for (std::size_t i = 0; i < EnumNames<V>::values.size(); ++i)
            s += (i ? ", " : "") + std::string(EnumNames<V>::values[i].second);
        return s;
    } else if constexpr (std::is_integral_v<V>) return "an integer";
    else if constexpr (std::is_floating_point_v<V>) return "a number";
    else if constexpr (is_vector<V>::value) return "comma-separated values, each " + expected_text<typename V::value_type>();
    else return "a string";
}

}  // namespace detail

/// The visitor that writes each field as "<prefix><name>" = text.
class MetadataWriter {
public:
    MetadataWriter(std::map<std::string, std::string>& out, std::string prefix) : out_(out), prefix_(std::move(prefix)) {}
    template <class V>
    void operator()(std::string_view name, const V& v) {
        out_[prefix_ + std::string(name)] = detail::metadata_text(v);
    }

private:
    std::map<std::string, std::string>& out_;
    std::string prefix_;
};

/// The visitor that reads each field from "<prefix><name>"; FormatError naming
/// `source` and the key when it is missing or not a value of the field's type.
class MetadataReader {
public:
    MetadataReader(const std::map<std::string, std::string>& in, std::string prefix, std::string source)
        : in_(in), prefix_(std::move(prefix)), source_(std::move(source)) {}
    template <class V>
    void operator()(std::string_view name, V& v) {
        const std::string key = prefix_ + std::string(name);
        seen_.insert(key);
        const auto it = in_.find(key);
        RECBLOCKS_CHECK_FORMAT(it != in_.end(), source_, ": metadata \"", key, "\" is missing");
        RECBLOCKS_CHECK_FORMAT(detail::parse_metadata_text(it->second, v), source_, ": metadata \"", key, "\" is \"",
                               it->second, "\", expected ", detail::expected_text<V>());
    }
    /// FormatError for a key under the prefix that no field read.
    void check_no_unknown_keys() const {
        for (const auto& [k, v] : in_)
            RECBLOCKS_CHECK_FORMAT(k.compare(0, prefix_.size(), prefix_) != 0 || seen_.count(k) != 0, source_,
                                   ": metadata \"", k, "\" is not an option this version of recblocks knows "
                                   "(written by a newer version?)");
    }

private:
    const std::map<std::string, std::string>& in_;
    std::string prefix_, source_;
    std::set<std::string> seen_;
};

}  // namespace io
RECBLOCKS_NAMESPACE_END
