#pragma once
// A small flag parser for the example programs: `--name value` and
// `--name=value`, switches (`--name` alone means true), other spellings of a
// flag (the reference implementations' names), typed getters with defaults,
// and an error naming the flag for unknown flags, missing values, unparsable
// numbers and values out of their range (integer_in, real_in: every count a
// user gives is checked here, before anything is allocated from it).
//
// A program lists its flags once (Flag: name, the default --help shows, what
// it does); --help is printed from that list, and every getter checks that
// the default it is given is the one --help shows (an internal error
// otherwise, which every test run of the program would report), so the help
// cannot drift from the code. A default written in parentheses, "(D)",
// describes instead of stating a value and is not checked.
//
// Why not CLI11 (docs/design.md, "The programs' flag parser"): the programs
// need little beyond this, the error texts are tested, and the library's
// build stays free of dependencies.
#include <algorithm>
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

/// One accepted flag.
struct Flag {
    std::string name;          ///< without "--"
    std::string default_text;  ///< what --help shows; "" = no default; "(...)" = described, not checked
    std::string help;          ///< one line
    std::string metavar = "";  ///< the value's placeholder in --help (N, FILE, ...); "" = derived from the default
    bool is_switch = false;    ///< `--name` alone means "true" (`--name=false` also works)
    std::vector<std::string> aliases = {};  ///< other spellings of the same flag
};

/// Flags under a heading of --help.
struct FlagGroup {
    std::string title;
    std::vector<Flag> flags;
};

class Args {
public:
    /// flags: the accepted names only (without "--"); their defaults are not checked and
    /// print_help() lists none of them. Prefer the table below, which --help is printed from.
    Args(int argc, char** argv, const std::set<std::string>& flags) {
        for (const auto& f : flags) specs_.emplace(f, Flag{f, "(not listed)", ""});
        parse(argc, argv);
    }
    /// groups: every accepted flag with its default and help (print_help()); words that are
    /// not flags go to positional().
    Args(int argc, char** argv, std::vector<FlagGroup> groups) : groups_(std::move(groups)) {
        for (const auto& g : groups_)
            for (const auto& f : g.flags) {
                if (!specs_.emplace(f.name, f).second) throw std::logic_error("internal: flag --" + f.name + " listed twice");
                for (const auto& alias : f.aliases)
                    if (!aliases_.emplace(alias, f.name).second || specs_.count(alias))
                        throw std::logic_error("internal: flag spelling --" + alias + " listed twice");
            }
        parse(argc, argv);
    }

    [[nodiscard]] bool has(const std::string& f) const { return values_.count(f) != 0; }
    [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }
    /// The text given for flag f ("" if absent), with no default and no check.
    [[nodiscard]] std::string given(const std::string& f) const { return raw(f); }
    /// How the user wrote flag f (an alias or its name), with "--".
    [[nodiscard]] std::string spelled(const std::string& f) const {
        const auto it = spelled_.find(f);
        return "--" + (it == spelled_.end() ? f : it->second);
    }

    [[nodiscard]] std::string str(const std::string& f, std::string def) const {
        check_default(f, def, [&](const std::string& text) { return text == def; });
        const auto it = values_.find(f);
        return it == values_.end() ? def : it->second;
    }
    [[nodiscard]] long long integer(const std::string& f, long long def) const {
        check_default(f, std::to_string(def), [&](const std::string& text) {
            long long v = 0;
            return parse_integer(text, v) && v == def;
        });
        const auto it = values_.find(f);
        if (it == values_.end()) return def;
        long long v = 0;
        if (!parse_integer(it->second, v))
            throw std::invalid_argument(spelled(f) + " expects an integer, got '" + it->second + "'");
        return v;
    }
    [[nodiscard]] double real(const std::string& f, double def) const {
        check_default(f, number(def), [&](const std::string& text) {
            double v = 0;
            return parse_real(text, v) && v == def;
        });
        const auto it = values_.find(f);
        if (it == values_.end()) return def;
        double v = 0;
        if (!parse_real(it->second, v))
            throw std::invalid_argument(spelled(f) + " expects a number, got '" + it->second + "'");
        return v;
    }
    /// A yes/no flag: true|false (also 1|0); a switch given alone is true.
    [[nodiscard]] bool boolean(const std::string& f, bool def) const {
        check_default(f, def ? "true" : "false", [&](const std::string& text) { return text == (def ? "true" : "false"); });
        const auto it = values_.find(f);
        if (it == values_.end()) return def;
        if (it->second == "true" || it->second == "1") return true;
        if (it->second == "false" || it->second == "0") return false;
        throw std::invalid_argument(spelled(f) + " expects true or false, got '" + it->second + "'");
    }

    /// An integer flag that must lie in [lo, hi] (counts: lo = 0 or 1).
    [[nodiscard]] long long integer_in(const std::string& f, long long def, long long lo, long long hi) const {
        const long long v = integer(f, def);
        if (v < lo || v > hi)
            throw std::invalid_argument(spelled(f) + " must be " + range_text(std::to_string(lo), std::to_string(hi), false) +
                                        ", got " + std::to_string(v));
        return v;
    }
    /// A number flag in [lo, hi], or [lo, hi) with hi_open; NaN and infinities are rejected.
    [[nodiscard]] double real_in(const std::string& f, double def, double lo, double hi, bool hi_open = false) const {
        const double v = real(f, def);
        if (!std::isfinite(v) || v < lo || v > hi || (hi_open && v == hi))
            throw std::invalid_argument(spelled(f) + " must be " + range_text(number(lo), number(hi), hi_open) + ", got '" +
                                        raw(f) + "'");
        return v;
    }

    /// A number flag that must be finite and > 0 (learning rates).
    [[nodiscard]] double positive(const std::string& f, double def) const {
        const double v = real(f, def);
        if (!std::isfinite(v) || v <= 0) throw std::invalid_argument(spelled(f) + " must be > 0, got '" + raw(f) + "'");
        return v;
    }

    /// Every listed flag with its value: the one given, else the default --help shows
    /// ("None" when it has none or only a described one, as Python's argparse prints
    /// an absent value); sorted by name.
    [[nodiscard]] std::map<std::string, std::string> all_values() const {
        std::map<std::string, std::string> out;
        for (const auto& [name, spec] : specs_) {
            const auto it = values_.find(name);
            const bool stated = !spec.default_text.empty() && spec.default_text.front() != '(';
            out[name] = it != values_.end() ? it->second : stated ? spec.default_text : "None";
        }
        return out;
    }

    /// --help: the usage lines, then every flag by group with its default.
    void print_help(std::FILE* out, const std::string& usage) const {
        std::fprintf(out, "%s", usage.c_str());
        for (const auto& g : groups_) {
            std::fprintf(out, "\n%s:\n", g.title.c_str());
            for (const auto& f : g.flags) {
                std::string left = "  --" + f.name;
                const std::string meta = f.is_switch ? "" : !f.metavar.empty() ? f.metavar : derived_metavar(f);
                if (!meta.empty()) left += " " + meta;
                std::string right = f.help;
                if (!f.default_text.empty()) right += " (default: " + unparenthesised(f.default_text) + ")";
                for (std::size_t i = 0; i < f.aliases.size(); ++i)
                    right += (i ? ", --" : "; also --") + f.aliases[i];
                if (left.size() < 30) left.resize(30, ' ');
                else left += "  ";
                std::fprintf(out, "%s%s\n", left.c_str(), right.c_str());
            }
        }
    }

private:
    void parse(int argc, char** argv) {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a.rfind("--", 0) != 0) {
                positional_.push_back(a);
                continue;
            }
            a = a.substr(2);
            std::string value;
            bool has_value = false;
            if (const auto eq = a.find('='); eq != std::string::npos) {
                value = a.substr(eq + 1);
                a = a.substr(0, eq);
                has_value = true;
            }
            const std::string typed = a;
            if (const auto al = aliases_.find(a); al != aliases_.end()) a = al->second;
            const auto spec = specs_.find(a);
            if (spec == specs_.end() && a != "help") throw std::invalid_argument("unknown flag --" + typed + " (see --help)");
            if (!has_value) {
                if (a == "help" || spec->second.is_switch) value = "true";
                else if (i + 1 >= argc) throw std::invalid_argument("--" + typed + " needs a value");
                else value = argv[++i];
            }
            if (const auto before = spelled_.find(a); before != spelled_.end() && before->second != typed)
                throw std::invalid_argument("--" + before->second + " and --" + typed + " are the same flag; give one");
            spelled_[a] = typed;
            values_[a] = value;
        }
    }

    /// Throws logic_error when the spec's default of f is a value and `ok` rejects it.
    template <class Ok>
    void check_default(const std::string& f, const std::string& code_default, Ok ok) const {
        const auto it = specs_.find(f);
        if (it == specs_.end()) throw std::logic_error("internal: flag --" + f + " is read but not listed");
        const std::string& text = it->second.default_text;
        if (text.empty() ? code_default.empty() || code_default == "0" || code_default == "-1" || code_default == "false"
                         : text.front() == '(' || ok(text))
            return;
        throw std::logic_error("internal: --" + f + " defaults to " + code_default + " in the code but --help says '" +
                               text + "'");
    }

    [[nodiscard]] std::string raw(const std::string& f) const {
        const auto it = values_.find(f);
        return it == values_.end() ? "" : it->second;
    }
    static bool parse_integer(const std::string& s, long long& v) {
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        return ec == std::errc() && end == s.data() + s.size();
    }
    static bool parse_real(const std::string& s, double& v) {
        char* end = nullptr;
        v = std::strtod(s.c_str(), &end);
        return !s.empty() && *end == '\0';
    }
    static std::string number(double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", v);
        return buf;
    }
    static std::string range_text(const std::string& lo, const std::string& hi, bool hi_open) {
        return "in [" + lo + ", " + hi + (hi_open ? ")" : "]");
    }
    static std::string unparenthesised(const std::string& t) {
        return t.size() >= 2 && t.front() == '(' && t.back() == ')' ? t.substr(1, t.size() - 2) : t;
    }
    static std::string derived_metavar(const Flag& f) {
        const std::string& d = f.default_text;
        if (d.empty() || d.front() == '(') return "VALUE";
        double v = 0;
        if (parse_real(d, v)) return d.find_first_of(".e") == std::string::npos ? "N" : "X";
        return "VALUE";
    }

    std::vector<FlagGroup> groups_;
    std::map<std::string, Flag> specs_;
    std::map<std::string, std::string> aliases_;  ///< spelling -> name
    std::map<std::string, std::string> values_;   ///< name -> value
    std::map<std::string, std::string> spelled_;  ///< name -> the spelling used
    std::vector<std::string> positional_;
};

}  // namespace examples
