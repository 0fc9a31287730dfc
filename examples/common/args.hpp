#pragma once
// A small flag parser for the example programs: `--name value` and
// `--name=value`, typed getters with defaults, and an error naming the flag
// for unknown flags, missing values, unparsable numbers and values out of
// their range (integer_in, real_in: every count a user gives is checked here,
// before anything is allocated from it).
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

class Args {
public:
    /// flags: the accepted names (without "--"); positional words go to positional().
    Args(int argc, char** argv, std::set<std::string> flags) : flags_(std::move(flags)) {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a.rfind("--", 0) != 0) {
                positional_.push_back(a);
                continue;
            }
            a = a.substr(2);
            std::string value;
            if (const auto eq = a.find('='); eq != std::string::npos) {
                value = a.substr(eq + 1);
                a = a.substr(0, eq);
            } else if (a == "help") {
                value = "1";
            } else {
                if (i + 1 >= argc) throw std::invalid_argument("--" + a + " needs a value");
                value = argv[++i];
            }
            if (!flags_.count(a) && a != "help") throw std::invalid_argument("unknown flag --" + a);
            values_[a] = value;
        }
    }
    [[nodiscard]] bool has(const std::string& f) const { return values_.count(f) != 0; }
    [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }
    [[nodiscard]] std::string str(const std::string& f, std::string def) const {
        const auto it = values_.find(f);
        return it == values_.end() ? def : it->second;
    }
    [[nodiscard]] long long integer(const std::string& f, long long def) const {
        const auto it = values_.find(f);
        if (it == values_.end()) return def;
        long long v = 0;
        const auto& s = it->second;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size())
            throw std::invalid_argument("--" + f + " expects an integer, got '" + s + "'");
        return v;
    }
    [[nodiscard]] double real(const std::string& f, double def) const {
        const auto it = values_.find(f);
        if (it == values_.end()) return def;
        char* end = nullptr;
        const double v = std::strtod(it->second.c_str(), &end);
        if (it->second.empty() || *end != '\0')
            throw std::invalid_argument("--" + f + " expects a number, got '" + it->second + "'");
        return v;
    }

    /// An integer flag that must lie in [lo, hi] (counts: lo = 0 or 1).
    [[nodiscard]] long long integer_in(const std::string& f, long long def, long long lo, long long hi) const {
        const long long v = integer(f, def);
        if (v < lo || v > hi)
            throw std::invalid_argument("--" + f + " must be " + range_text(std::to_string(lo), std::to_string(hi), false) +
                                        ", got " + std::to_string(v));
        return v;
    }
    /// A number flag in [lo, hi], or [lo, hi) with hi_open; NaN and infinities are rejected.
    [[nodiscard]] double real_in(const std::string& f, double def, double lo, double hi, bool hi_open = false) const {
        const double v = real(f, def);
        if (!std::isfinite(v) || v < lo || v > hi || (hi_open && v == hi))
            throw std::invalid_argument("--" + f + " must be " + range_text(number(lo), number(hi), hi_open) + ", got '" +
                                        str(f, "") + "'");
        return v;
    }

    /// A number flag that must be finite and > 0 (learning rates).
    [[nodiscard]] double positive(const std::string& f, double def) const {
        const double v = real(f, def);
        if (!std::isfinite(v) || v <= 0) throw std::invalid_argument("--" + f + " must be > 0, got '" + str(f, "") + "'");
        return v;
    }

private:
    static std::string number(double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", v);
        return buf;
    }
    static std::string range_text(const std::string& lo, const std::string& hi, bool hi_open) {
        return "in [" + lo + ", " + hi + (hi_open ? ")" : "]");
    }

    std::set<std::string> flags_;
    std::map<std::string, std::string> values_;
    std::vector<std::string> positional_;
};

}  // namespace examples
