// libFuzzer harness: a server's request lines (serving::parse_request) and
// the description a checkpoint's metadata carries (models::read_model_description,
// fed the same bytes as a metadata map "key=value" per line). A request the
// parser accepts must answer with a line that is valid JSON naming the same
// user; find_user must never throw; a description that is accepted must
// write back to metadata that reads as the same description.
#include <map>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "recblocks/io/json_header.hpp"
#include "recblocks/models/model_description.hpp"
#include "recblocks/serving/request_lines.hpp"

namespace {
namespace rb = recblocks;

void check_request(std::string_view line) {
    std::string user;
    bool is_number = false;
    const bool found = rb::serving::find_user(line, user, is_number);  // noexcept by contract
    rb::serving::Request r;
    try {
        r = rb::serving::parse_request(line, 1000);
    } catch (const rb::Error&) {
        const std::string err = rb::serving::error_line(found ? user : "", found && is_number, "refused");
        (void)rb::io::json::parse(err, "fuzz error line", "line");
        return;
    }
    if (!found || user != r.user || is_number != r.user_is_number) std::abort();  // both readers agree on the user
    if (r.k < 1 || r.k > 1000) std::abort();
    const std::vector<float> scores(r.items.size(), 0.5f);
    const std::string out = rb::serving::response_line(r.user, r.user_is_number, r.items, scores);
    const auto v = rb::io::json::parse(out, "fuzz answer", "line");  // throws (a crash here) if not JSON
    if (!v.is_object() || v.keys.size() != 3 || v.items[1].items.size() != r.items.size()) std::abort();
    if (r.user_is_number ? v.items[0].text != r.user : v.items[0].text != r.user) std::abort();
}

void check_description(std::string_view text) {
    std::map<std::string, std::string> meta;
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t nl = std::min(text.find('\n', i), text.size());
        const std::string_view line = text.substr(i, nl - i);
        if (const std::size_t eq = line.find('='); eq != std::string_view::npos)
            meta[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
        i = nl + 1;
    }
    std::optional<rb::models::ModelDescription> d;
    try {
        d = rb::models::read_model_description(meta, "fuzz");
    } catch (const rb::Error&) {
        return;
    }
    if (!d) return;
    const auto again = rb::models::read_model_description(rb::models::model_metadata(*d), "fuzz again");
    if (!again || rb::models::model_metadata(*again) != rb::models::model_metadata(*d)) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check_request(text);
    check_description(text);
    return 0;
}
