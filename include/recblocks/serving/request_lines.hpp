#pragma once
// The JSON-lines protocol of a recommendation server: one request object per
// line in, one answer object per line out.
//
//   {"user": "u42", "events": [31, 7]}                 new events, appended to the user's state
//   {"user": 42, "history": [5, 31, 7], "k": 20, "exclude_seen": false}
//                                                      the whole history, replacing the state
//   {"user": "u42"}                                     score the state as it is
//
//   -> {"user": "u42", "items": [1196, 260, ...], "scores": [3.25, 3.1, ...]}
//   -> {"user": "u42", "error": "request: \"k\" must be an integer in [1, 9724], got 100000"}
//
// "user": a string or an integer (echoed back as given). "events" / "history"
// (at most one of them): arrays of the item ids of the user's data (the
// model's item-id map turns them into the model's ids). "k": 1..max_k
// (default 10). "exclude_seen": whether the user's kept items are left out
// of the answer (default true). Every other key is an error: a typo such as
// "exlude_seen" must not be ignored silently.
//
// parse_request() raises ValueError naming the field and what was wrong
// (FormatError for text that is not JSON); the caller answers error_line()
// and goes on with the next line.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/io/json_header.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace serving {

struct Request {
    enum class Items : std::uint8_t { none, events, history };

    std::string user;             ///< the id's text (a string's content, or an integer's digits)
    bool user_is_number = false;  ///< echo it back unquoted
    Items kind = Items::none;
    std::vector<std::int64_t> items;  ///< source item ids, oldest first
    std::int64_t k = 10;
    bool exclude_seen = true;
};

/// Lines longer than this are refused before they are parsed.
inline constexpr std::size_t kMaxRequestBytes = 1 << 20;

/// Parses one request line. max_k: the largest "k" allowed (the catalogue size).
inline Request parse_request(std::string_view line, std::int64_t max_k) {
    RECBLOCKS_CHECK_VALUE(line.size() <= kMaxRequestBytes, "request: the line has ", line.size(),
                          " bytes, more than the ", kMaxRequestBytes, " a request may have");
    const io::json::Value v = io::json::parse(line, "request", "line");
    RECBLOCKS_CHECK_VALUE(v.is_object(), "request: expected a JSON object, found ", io::json::kind_name(v.kind));
    Request r;
    bool seen_user = false, seen_k = false, seen_exclude = false;
    for (std::size_t i = 0; i < v.keys.size(); ++i) {
        const std::string& key = v.keys[i];
        const io::json::Value& x = v.items[i];
        if (key == "user") {
            RECBLOCKS_CHECK_VALUE(!seen_user, "request: \"user\" appears twice");
            seen_user = true;
            if (x.is_string()) {
                r.user = x.text;
            } else {
                const auto n = x.as_int64();
                RECBLOCKS_CHECK_VALUE(n.has_value(), "request: \"user\" must be a string or an integer, found ",
                                      x.is_number() ? std::string("the number ") + x.text
                                                    : std::string(io::json::kind_name(x.kind)));
                r.user = std::to_string(*n);
                r.user_is_number = true;
            }
        } else if (key == "events" || key == "history") {
            RECBLOCKS_CHECK_VALUE(r.kind == Request::Items::none, "request: give \"events\" or \"history\", not both (or one twice)");
            r.kind = key == "events" ? Request::Items::events : Request::Items::history;
            RECBLOCKS_CHECK_VALUE(x.is_array(), "request: \"", key, "\" must be an array of item ids, found ",
                                  io::json::kind_name(x.kind));
            r.items.reserve(x.items.size());
            for (std::size_t j = 0; j < x.items.size(); ++j) {
                const auto id = x.items[j].as_int64();
                RECBLOCKS_CHECK_VALUE(id.has_value(), "request: \"", key, "\"[", j, "] must be an integer item id, found ",
                                      x.items[j].is_number() ? "the number " + x.items[j].text
                                                             : std::string(io::json::kind_name(x.items[j].kind)));
                r.items.push_back(*id);
            }
        } else if (key == "k") {
            RECBLOCKS_CHECK_VALUE(!seen_k, "request: \"k\" appears twice");
            seen_k = true;
            const auto k = x.as_int64();
            RECBLOCKS_CHECK_VALUE(k.has_value() && *k >= 1 && *k <= max_k, "request: \"k\" must be an integer in [1, ",
                                  max_k, "], got ", x.is_number() ? x.text : std::string(io::json::kind_name(x.kind)));
            r.k = *k;
        } else if (key == "exclude_seen") {
            RECBLOCKS_CHECK_VALUE(!seen_exclude, "request: \"exclude_seen\" appears twice");
            seen_exclude = true;
            RECBLOCKS_CHECK_VALUE(x.kind == io::json::Value::Kind::boolean, "request: \"exclude_seen\" must be true or false, found ",
                                  io::json::kind_name(x.kind));
            r.exclude_seen = x.boolean;
        } else {
            RECBLOCKS_CHECK_VALUE(false, "request: unknown key \"", key,
                                  "\" (a request has \"user\", \"events\" or \"history\", \"k\", \"exclude_seen\")");
        }
    }
    RECBLOCKS_CHECK_VALUE(seen_user, "request: \"user\" is missing");
    RECBLOCKS_CHECK_VALUE(r.k <= max_k, "request: \"k\" must be an integer in [1, ", max_k, "], got ", r.k,
                          " (the default)");
    return r;
}

/// The "user" of a line that parse_request() refused, if the line is a JSON
/// object with a string or integer "user" (so an error answer names its user).
inline bool find_user(std::string_view line, std::string& user, bool& is_number) noexcept {
    try {
        if (line.size() > kMaxRequestBytes) return false;
        const io::json::Value v = io::json::parse(line, "request", "line");
        for (std::size_t i = 0; v.is_object() && i < v.keys.size(); ++i) {
            if (v.keys[i] != "user") continue;
            if (v.items[i].is_string()) {
                user = v.items[i].text;
                is_number = false;
                return true;
            }
            if (const auto n = v.items[i].as_int64()) {
                user = std::to_string(*n);
                is_number = true;
                return true;
            }
        }
    } catch (...) {
    }
    return false;
}

namespace detail {
inline void append_user(std::string& out, std::string_view user, bool is_number) {
    out += "{\"user\": ";
    if (is_number) out += user;
    else io::json::append_string(out, user);
}
}  // namespace detail

/// {"user": ..., "items": [...], "scores": [...]}: scores with 9 significant
/// digits (every float reads back exactly).
inline std::string response_line(std::string_view user, bool user_is_number, std::span<const std::int64_t> items,
                                 std::span<const float> scores) {
    std::string out;
    out.reserve(32 + items.size() * 24);
    detail::append_user(out, user, user_is_number);
    out += ", \"items\": [";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        io::json::append_int(out, items[i]);
    }
    out += "], \"scores\": [";
    char buf[32];
    for (std::size_t i = 0; i < scores.size(); ++i) {
        if (i) out += ", ";
        const float s = scores[i];
        if (std::isfinite(s)) {
            std::snprintf(buf, sizeof buf, "%.9g", double(s));
            out += buf;
        } else {
            out += "null";  // JSON has no infinities (k beyond the items left after exclusion)
        }
    }
    out += "]}";
    return out;
}

/// {"user": ..., "error": "..."}; user may be empty when the line had none.
inline std::string error_line(std::string_view user, bool user_is_number, std::string_view message) {
    std::string out;
    if (user.empty() && !user_is_number) out += "{\"user\": null";
    else detail::append_user(out, user, user_is_number);
    out += ", \"error\": ";
    io::json::append_string(out, message);
    out += "}";
    return out;
}

}  // namespace serving
RECBLOCKS_NAMESPACE_END
