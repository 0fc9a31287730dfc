#pragma once
// The small JSON reader and writer the safetensors header needs (io/safetensors.hpp).
//
// Reader: the whole of RFC 8259 (objects, arrays, strings with every escape,
// numbers, true/false/null), strict: the text must be valid UTF-8, strings may
// not hold raw control characters or lone surrogates, nesting is capped at
// kMaxDepth so a hostile header cannot overflow the stack. Objects keep their
// members in file order, duplicates included: the caller decides what a
// duplicate key means. Numbers keep their literal text; `as_int64` reads an
// integer out of it exactly (a double would lose bits above 2^53).
//
// Writer: only strings and integers, escaped the way serde_json (the Rust
// crate behind Python's `safetensors`) escapes them, so our headers are byte
// for byte the ones Python writes.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace io::json {

/// A parsed JSON value. One struct for every kind keeps the parser short.
struct Value {
    enum class Kind : std::uint8_t { null, boolean, number, string, array, object };

    Kind kind = Kind::null;
    bool boolean = false;
    std::string text;                 ///< decoded string, or a number's literal text
    std::vector<Value> items;         ///< array elements, or object member values
    std::vector<std::string> keys;    ///< object member keys (keys[i] names items[i])

    [[nodiscard]] bool is_object() const { return kind == Kind::object; }
    [[nodiscard]] bool is_array() const { return kind == Kind::array; }
    [[nodiscard]] bool is_string() const { return kind == Kind::string; }
    [[nodiscard]] bool is_number() const { return kind == Kind::number; }

    /// The integer a number holds, if it is written as one (no fraction, no
    /// exponent) and fits in int64; nullopt otherwise.
    [[nodiscard]] std::optional<std::int64_t> as_int64() const {
        if (kind != Kind::number || text.find_first_of(".eE") != std::string::npos) return std::nullopt;
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
        return v;
    }
};

/// "object", "array", ... for error messages.
inline std::string_view kind_name(Value::Kind k) {
    switch (k) {
        case Value::Kind::null: return "null";
        case Value::Kind::boolean: return "a boolean";
        case Value::Kind::number: return "a number";
        case Value::Kind::string: return "a string";
        case Value::Kind::array: return "an array";
        case Value::Kind::object: return "an object";
    }
    return "?";
}

/// Offset of the first byte of `s` that is not part of well-formed UTF-8
/// (no overlong forms, no surrogates, nothing above U+10FFFF), or npos.
inline std::size_t find_invalid_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;        // overlong
            else if (c == 0xED) hi = 0x9F;   // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;        // overlong
            else if (c == 0xF4) hi = 0x8F;   // above U+10FFFF
        } else {
            return i;
        }
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (std::size_t k = 2; k < len; ++k)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
        i += len;
    }
    return std::string_view::npos;
}

namespace detail {

class Parser {
public:
    static constexpr int kMaxDepth = 64;

    Parser(std::string_view text, std::string_view context, std::string_view subject = "header")
        : s_(text), context_(context), subject_(subject) {}

    Value parse_document() {
        if (const std::size_t bad = find_invalid_utf8(s_); bad != std::string_view::npos)
            fail_at(bad, "invalid UTF-8");
        skip_ws();
        Value v = parse_value(0);
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected text after the JSON value");
        return v;
    }

private:
    [[noreturn]] void fail_at(std::size_t at, std::string_view what) const {
        throw FormatError(recblocks::detail::concat(context_, ": ", subject_, " is not valid JSON: ", what, " at byte ",
                                                    at, " of the ", subject_));
    }
    [[noreturn]] void fail(std::string_view what) const { fail_at(pos_, what); }

    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
            ++pos_;
    }
    bool eat(char c) {
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    void expect_literal(std::string_view lit) {
        if (s_.substr(pos_, lit.size()) != lit) fail("unexpected character");
        pos_ += lit.size();
    }

    Value parse_value(int depth) {
        if (depth >= kMaxDepth) fail("nested too deeply");
        if (pos_ >= s_.size()) fail(recblocks::detail::concat("unexpected end of the ", subject_));
        Value v;
        switch (s_[pos_]) {
            case '{': parse_object(v, depth); break;
            case '[': parse_array(v, depth); break;
            case '"':
                v.kind = Value::Kind::string;
                v.text = parse_string();
                break;
            case 't':
                expect_literal("true");
                v.kind = Value::Kind::boolean;
                v.boolean = true;
                break;
            case 'f':
                expect_literal("false");
                v.kind = Value::Kind::boolean;
                break;
            case 'n': expect_literal("null"); break;
            default:
                if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) {
                    v.kind = Value::Kind::number;
                    v.text = parse_number();
                } else {
                    fail("unexpected character");
                }
        }
        return v;
    }

    void parse_object(Value& v, int depth) {
        v.kind = Value::Kind::object;
        ++pos_;  // '{'
        skip_ws();
        if (eat('}')) return;
        for (;;) {
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a string key");
            v.keys.push_back(parse_string());
            skip_ws();
            if (!eat(':')) fail("expected ':' after an object key");
            skip_ws();
            v.items.push_back(parse_value(depth + 1));
            skip_ws();
            if (eat('}')) return;
            if (!eat(',')) fail("expected ',' or '}' in an object");
        }
    }

    void parse_array(Value& v, int depth) {
        v.kind = Value::Kind::array;
        ++pos_;  // '['
        skip_ws();
        if (eat(']')) return;
        for (;;) {
            skip_ws();
            v.items.push_back(parse_value(depth + 1));
            skip_ws();
            if (eat(']')) return;
            if (!eat(',')) fail("expected ',' or ']' in an array");
        }
    }

    std::string parse_number() {
        const std::size_t start = pos_;
        auto digits = [&] {
            const std::size_t d = pos_;
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
            return pos_ - d;
        };
        eat('-');
        if (eat('0')) {
            // a leading zero stands alone
        } else if (digits() == 0) {
            fail("expected a digit");
        }
        if (eat('.') && digits() == 0) fail("expected a digit after '.'");
        if (eat('e') || eat('E')) {
            if (!eat('+')) eat('-');
            if (digits() == 0) fail("expected a digit in the exponent");
        }
        return std::string(s_.substr(start, pos_ - start));
    }

    unsigned parse_hex4() {
        if (s_.size() - pos_ < 4) fail("truncated \\u escape");
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s_[pos_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
            else fail("bad hex digit in a \\u escape");
        }
        return v;
    }

    static void append_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::string parse_string() {
        ++pos_;  // '"'
        std::string out;
        for (;;) {
            if (pos_ >= s_.size()) fail("unterminated string");
            const char c = s_[pos_];
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in a string");
            if (c != '\\') {
                out += c;  // UTF-8 was checked for the whole header
                ++pos_;
                continue;
            }
            ++pos_;
            if (pos_ >= s_.size()) fail("unterminated string");
            const char e = s_[pos_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = parse_hex4();
                    if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in a \\u escape");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (!eat('\\') || !eat('u')) fail("lone high surrogate in a \\u escape");
                        const unsigned lo = parse_hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) fail("lone high surrogate in a \\u escape");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: fail("unknown escape in a string");
            }
        }
    }

    std::string_view s_;
    std::string_view context_;
    std::string_view subject_;
    std::size_t pos_ = 0;
};

}  // namespace detail

/// Parses a whole JSON document. Errors are FormatError
/// "<context>: <subject> is not valid JSON: <what> at byte <offset> of the <subject>"
/// (subject: "header" for file headers, "request" for a server's request lines).
inline Value parse(std::string_view text, std::string_view context, std::string_view subject = "header") {
    return detail::Parser(text, context, subject).parse_document();
}

/// Appends `s` as a JSON string literal, escaped as serde_json does: `"` and
/// `\`, the short escapes \b \f \n \r \t, other control characters as \u00xx
/// (lower-case hex); everything else, non-ASCII included, verbatim.
inline void append_string(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (u < 0x20) {
                    out += "\\u00";
                    out += kHex[u >> 4];
                    out += kHex[u & 0xF];
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

/// Appends an integer in its shortest decimal form.
inline void append_int(std::string& out, std::int64_t v) {
    char buf[24];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, end);
}

}  // namespace io::json
RECBLOCKS_NAMESPACE_END
