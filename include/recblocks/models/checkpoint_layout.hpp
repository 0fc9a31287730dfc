#pragma once
// Checkpoint layouts as data: which PyTorch implementation wrote a state_dict,
// said in a JSON file a user can copy and edit, with no C++ for a new variant.
//
// A layout holds
//   * the architecture choices on which public SASRec / BERT4Rec code differs
//     ("options": norm placement, timeline mask, key-padding mask, position
//     scheme, LayerNorm eps, activation, embedding scale and norm, ...); every
//     option of the model kind must be given, so a layout says all it assumes;
//   * the tensor name map: prefix rules recblocks name -> PyTorch name (as
//     io::NameMap), tensors packed from several of the file's ("concat": e.g.
//     separate query/key/value Linear weights stacked into in_proj_weight),
//     leading rows of a file tensor the model does not keep ("skip_rows": e.g.
//     an output bias with an entry for the padding id), and file tensors that
//     are expected and not used ("ignore").
//
//   {
//     "layout": "recblocks-checkpoint-layout/1",
//     "name": "pmixer-current", "model": "sasrec", "description": "...",
//     "options": { "norm": "post", "timeline_mask": false, ... },
//     "names": [ { "ours": "blocks.{i}.attention.", "theirs": "attention_layers.{i}." }, ... ],
//     "concat": [ { "ours": "blocks.{i}.attention.in_proj_weight",
//                   "theirs": ["enc.{i}.query.weight", "enc.{i}.key.weight", "enc.{i}.value.weight"] } ],
//     "skip_rows": [ { "ours": "out_bias", "rows": 1 } ],
//     "ignore": [ "some_buffer" ]
//   }
//
// Unknown keys, missing options and bad values are ValueError naming the key
// and the file. load_state() checks every tensor before writing anything: a
// missing or wrong-shaped tensor, and a file tensor the layout does not use
// (extra), are errors naming the tensor. docs/interop.md lists the options and
// the layouts shipped in layouts/. It sits in models/ because it knows the
// models' configurations (io/ knows only files and parameter lists).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/io/json_header.hpp"
#include "recblocks/io/pytorch_import.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/sasrec.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace models {

enum class LayoutModel : std::uint8_t { sasrec, bert4rec };

struct ConcatRule {
    std::string ours;                 ///< a recblocks parameter name, "{i}" for a block index
    std::vector<std::string> theirs;  ///< file tensors stacked along the first dimension, in order
};
struct SkipRowsRule {
    std::string ours;  ///< a recblocks parameter name, "{i}" allowed
    index_t rows = 0;  ///< leading rows of the mapped file tensor that the parameter does not hold
};

class CheckpointLayout {
public:
    static constexpr std::string_view kFormat = "recblocks-checkpoint-layout/1";

    /// Parses a layout document; `source` names it in errors (a path).
    static CheckpointLayout parse(std::string_view text, std::string_view source) {
        CheckpointLayout l;
        l.source_ = std::string(source);
        const io::json::Value doc = io::json::parse(text, source);
        l.require(doc.is_object(), "the document must be a JSON object, got ", io::json::kind_name(doc.kind));
        static const std::vector<std::string_view> top = {"layout", "name", "model", "description", "options",
                                                           "names", "concat", "skip_rows", "ignore"};
        l.check_keys(doc, top, "the top level");
        l.require(l.string_member(doc, "layout", true) == kFormat, "\"layout\" must be \"", kFormat, "\"");
        l.name_ = l.string_member(doc, "name", true);
        l.description_ = l.string_member(doc, "description", false);
        const std::string model = l.string_member(doc, "model", true);
        if (model == "sasrec")
            l.model_ = LayoutModel::sasrec;
        else if (model == "bert4rec")
            l.model_ = LayoutModel::bert4rec;
        else
            l.fail("\"model\" must be \"sasrec\" or \"bert4rec\", got \"", model, "\"");
        const io::json::Value* options = member(doc, "options");
        l.require(options && options->is_object(), "\"options\" must be an object");
        l.parse_options(*options);
        if (const auto* names = member(doc, "names")) {
            l.require(names->is_array(), "\"names\" must be an array of {\"ours\", \"theirs\"} objects");
            for (const auto& r : names->items) {
                l.require(r.is_object(), "each entry of \"names\" must be an object");
                l.check_keys(r, {"ours", "theirs"}, "an entry of \"names\"");
                l.names_.push_back({l.string_member(r, "ours", true), l.string_member(r, "theirs", true)});
            }
        }
        if (const auto* concat = member(doc, "concat")) {
            l.require(concat->is_array(), "\"concat\" must be an array");
            for (const auto& r : concat->items) {
                l.require(r.is_object(), "each entry of \"concat\" must be an object");
                l.check_keys(r, {"ours", "theirs"}, "an entry of \"concat\"");
                ConcatRule c{l.string_member(r, "ours", true), {}};
                const auto* parts = member(r, "theirs");
                l.require(parts && parts->is_array() && !parts->items.empty(), "\"concat\" entry \"", c.ours,
                          "\": \"theirs\" must be a non-empty array of tensor names");
                for (const auto& p : parts->items) {
                    l.require(p.is_string(), "\"concat\" entry \"", c.ours, "\": \"theirs\" holds ",
                              io::json::kind_name(p.kind), ", not a string");
                    c.theirs.push_back(p.text);
                }
                l.concat_.push_back(std::move(c));
            }
        }
        if (const auto* skip = member(doc, "skip_rows")) {
            l.require(skip->is_array(), "\"skip_rows\" must be an array");
            for (const auto& r : skip->items) {
                l.require(r.is_object(), "each entry of \"skip_rows\" must be an object");
                l.check_keys(r, {"ours", "rows"}, "an entry of \"skip_rows\"");
                const auto* rows = member(r, "rows");
                const auto n = rows ? rows->as_int64() : std::nullopt;
                l.require(n && *n >= 1, "\"skip_rows\": \"rows\" must be an integer >= 1");
                l.skip_rows_.push_back({l.string_member(r, "ours", true), static_cast<index_t>(*n)});
            }
        }
        if (const auto* ignore = member(doc, "ignore")) {
            l.require(ignore->is_array(), "\"ignore\" must be an array of tensor names");
            for (const auto& v : ignore->items) {
                l.require(v.is_string(), "\"ignore\" holds ", io::json::kind_name(v.kind), ", not a string");
                l.ignore_.push_back(v.text);
            }
        }
        return l;
    }

    /// Reads and parses the layout file at `path` (IoError if it cannot be read).
    static CheckpointLayout load(const std::filesystem::path& path) {
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec))
            throw IoError(recblocks::detail::concat(path.string(), ": is a directory, not a layout file"));
        std::ifstream in(path, std::ios::binary);
        if (!in) throw IoError(recblocks::detail::concat(path.string(), ": cannot open the layout file for reading"));
        std::ostringstream text;
        text << in.rdbuf();
        return parse(text.str(), path.string());
    }

    [[nodiscard]] const std::string& name() const { return name_; }
    [[nodiscard]] const std::string& description() const { return description_; }
    [[nodiscard]] const std::string& source() const { return source_; }
    [[nodiscard]] LayoutModel model() const { return model_; }
    [[nodiscard]] policies::NormKind norm() const { return norm_; }
    [[nodiscard]] const io::NameMap& names() const { return names_; }
    [[nodiscard]] const std::vector<ConcatRule>& concat() const { return concat_; }
    [[nodiscard]] const std::vector<SkipRowsRule>& skip_rows() const { return skip_rows_; }
    [[nodiscard]] const std::vector<std::string>& ignore() const { return ignore_; }

    /// Sets cfg's architecture options from the layout (sizes stay the caller's).
    void apply(SASRecConfig& cfg) const {
        require(model_ == LayoutModel::sasrec, "layout \"", name_, "\" is for a BERT4Rec model, not SASRec");
        cfg.timeline_mask = sasrec_.timeline_mask;
        cfg.mask_padding_keys = sasrec_.mask_padding_keys;
        cfg.positions = sasrec_.positions;
        cfg.ln_eps = sasrec_.ln_eps;
        cfg.activation = sasrec_.activation;
        cfg.scale_embedding = sasrec_.scale_embedding;
        cfg.embedding_norm = sasrec_.embedding_norm;
        cfg.final_norm = sasrec_.final_norm;
    }
    void apply(BERT4RecConfig& cfg) const {
        require(model_ == LayoutModel::bert4rec, "layout \"", name_, "\" is for a SASRec model, not BERT4Rec");
        cfg.ln_eps = bert_.ln_eps;
        cfg.positions = bert_.positions;
        cfg.output_head = bert_.output_head;
        cfg.output_bias = bert_.output_bias;
        cfg.history_drops_oldest = bert_.history_drops_oldest;
    }

    /// The file tensors recblocks parameter `name` reads (one, or the parts of a concat rule),
    /// and how many leading rows of a single tensor it skips.
    [[nodiscard]] std::vector<std::string> sources_of(const std::string& name, index_t* skip = nullptr) const {
        std::string index;
        for (const auto& c : concat_)
            if (matches_exactly(name, c.ours, index)) {
                std::vector<std::string> out;
                for (auto t : c.theirs) out.push_back(with_index(std::move(t), index));
                if (skip) *skip = 0;
                return out;
            }
        if (skip) {
            *skip = 0;
            for (const auto& s : skip_rows_)
                if (matches_exactly(name, s.ours, index)) *skip = s.rows;
        }
        return {io::map_name(names_, name)};
    }

private:
    struct SASRecOptions {
        bool timeline_mask = true, mask_padding_keys = false, scale_embedding = true, embedding_norm = false,
             final_norm = true;
        blocks::PositionRows positions = blocks::PositionRows::from_one;
        double ln_eps = 1e-8;
        Activation activation = Activation::relu;
    };
    struct BERT4RecOptions {
        double ln_eps = 1e-12;
        blocks::PositionRows positions = blocks::PositionRows::per_slot;
        bool output_head = true, output_bias = true, history_drops_oldest = false;
    };

    template <class... A>
    [[noreturn]] void fail(const A&... a) const {
        throw ValueError(recblocks::detail::concat("checkpoint layout ", source_, ": ", a...));
    }
    template <class... A>
    void require(bool ok, const A&... a) const {
        if (!ok) fail(a...);
    }

    static const io::json::Value* member(const io::json::Value& obj, std::string_view key) {
        for (std::size_t i = 0; i < obj.keys.size(); ++i)
            if (obj.keys[i] == key) return &obj.items[i];
        return nullptr;
    }
    void check_keys(const io::json::Value& obj, const std::vector<std::string_view>& allowed, std::string_view where) const {
        for (std::size_t i = 0; i < obj.keys.size(); ++i) {
            const auto& k = obj.keys[i];
            bool known = false;
            for (auto a : allowed) known = known || a == k;
            std::string list;
            for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            require(known, "unknown key \"", k, "\" in ", where, " (known: ", list, ")");
            for (std::size_t j = 0; j < i; ++j) require(obj.keys[j] != k, "key \"", k, "\" appears twice in ", where);
        }
    }
    std::string string_member(const io::json::Value& obj, std::string_view key, bool required) const {
        const auto* v = member(obj, key);
        if (!v) {
            require(!required, "missing key \"", key, "\"");
            return {};
        }
        require(v->is_string(), "\"", key, "\" must be a string, got ", io::json::kind_name(v->kind));
        return v->text;
    }
    const io::json::Value& option(const io::json::Value& opts, std::string_view key) const {
        const auto* v = member(opts, key);
        require(v != nullptr, "option \"", key, "\" is missing (a layout states every option of its model)");
        return *v;
    }
    bool bool_option(const io::json::Value& opts, std::string_view key) const {
        const auto& v = option(opts, key);
        require(v.kind == io::json::Value::Kind::boolean, "option \"", key, "\" must be true or false, got ",
                io::json::kind_name(v.kind));
        return v.boolean;
    }
    double eps_option(const io::json::Value& opts) const {
        const auto& v = option(opts, "ln_eps");
        require(v.is_number(), "option \"ln_eps\" must be a number, got ", io::json::kind_name(v.kind));
        double x = 0;
        try {
            x = std::stod(v.text);
        } catch (const std::exception&) {
            fail("option \"ln_eps\" is not a number: ", v.text);
        }
        require(x > 0 && x < 1, "option \"ln_eps\" must be in (0, 1), got ", v.text);
        return x;
    }
    std::string choice_option(const io::json::Value& opts, std::string_view key,
                              const std::vector<std::string_view>& allowed) const {
        const auto& v = option(opts, key);
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "\"" : ", \"") + std::string(a) + "\"";
        require(v.is_string(), "option \"", key, "\" must be one of ", list, ", got ", io::json::kind_name(v.kind));
        for (auto a : allowed)
            if (v.text == a) return v.text;
        fail("option \"", key, "\" must be one of ", list, ", got \"", v.text, "\"");
    }
    static blocks::PositionRows positions_of(const std::string& s) {
        if (s == "per_slot") return blocks::PositionRows::per_slot;
        if (s == "from_oldest") return blocks::PositionRows::from_oldest;
        return blocks::PositionRows::from_one;
    }

    void parse_options(const io::json::Value& opts) {
        if (model_ == LayoutModel::sasrec) {
            check_keys(opts,
                       {"norm", "timeline_mask", "mask_padding_keys", "positions", "ln_eps", "activation",
                        "scale_embedding", "embedding_norm", "final_norm"},
                       "\"options\" of a sasrec layout");
            const auto norm = choice_option(opts, "norm", {"query", "pre", "post"});
            norm_ = norm == "query" ? policies::NormKind::query
                    : norm == "pre" ? policies::NormKind::pre
                                    : policies::NormKind::post;
            sasrec_.timeline_mask = bool_option(opts, "timeline_mask");
            sasrec_.mask_padding_keys = bool_option(opts, "mask_padding_keys");
            sasrec_.positions = positions_of(choice_option(opts, "positions", {"per_slot", "from_one", "from_oldest"}));
            sasrec_.ln_eps = eps_option(opts);
            sasrec_.activation =
                choice_option(opts, "activation", {"relu", "gelu"}) == "relu" ? Activation::relu : Activation::gelu;
            sasrec_.scale_embedding = bool_option(opts, "scale_embedding");
            sasrec_.embedding_norm = bool_option(opts, "embedding_norm");
            sasrec_.final_norm = bool_option(opts, "final_norm");
        } else {
            check_keys(opts, {"norm", "positions", "ln_eps", "output_head", "output_bias", "history_drops_oldest"},
                       "\"options\" of a bert4rec layout");
            choice_option(opts, "norm", {"post"});
            norm_ = policies::NormKind::post;
            bert_.positions = positions_of(choice_option(opts, "positions", {"per_slot", "from_oldest"}));
            bert_.ln_eps = eps_option(opts);
            bert_.output_head = bool_option(opts, "output_head");
            bert_.output_bias = bool_option(opts, "output_bias");
            bert_.history_drops_oldest = bool_option(opts, "history_drops_oldest");
        }
    }

    /// `name` is `pattern` with "{i}" standing for a run of digits (captured in `index`).
    static bool matches_exactly(const std::string& name, const std::string& pattern, std::string& index) {
        std::size_t len = 0;
        index.clear();
        return io::detail::match_prefix(name, pattern, len, index) && len == name.size();
    }
    static std::string with_index(std::string s, const std::string& index) {
        if (const auto b = s.find("{i}"); b != std::string::npos) s.replace(b, 3, index);
        return s;
    }

    std::string source_, name_, description_;
    LayoutModel model_ = LayoutModel::sasrec;
    policies::NormKind norm_ = policies::NormKind::query;
    SASRecOptions sasrec_;
    BERT4RecOptions bert_;
    io::NameMap names_;
    std::vector<ConcatRule> concat_;
    std::vector<SkipRowsRule> skip_rows_;
    std::vector<std::string> ignore_;
};

namespace detail {
template <class I>
std::string shape_text(const std::vector<I>& s) {
    return io::detail::format_list(std::vector<std::int64_t>(s.begin(), s.end()));
}
/// A file shape without its trailing 1s beyond `rank` (nn.Conv1d kernel-size-1 weights).
inline std::vector<std::int64_t> squeezed(std::vector<std::int64_t> s, std::size_t rank) {
    while (s.size() > rank && s.back() == 1) s.pop_back();
    return s;
}
}  // namespace detail

namespace detail {
/// Shape of the file tensor recblocks parameter `name` reads (the first part of a concat rule),
/// or empty when the file has no such tensor.
inline std::vector<std::int64_t> mapped_shape(const io::SafetensorsReader& r, const CheckpointLayout& layout,
                                              const std::string& name) {
    const auto src = layout.sources_of(name);
    return r.contains(src.front()) ? r.record(src.front()).shape : std::vector<std::int64_t>{};
}
template <class Cfg>
void read_common_sizes(const io::SafetensorsReader& r, const CheckpointLayout& layout, Cfg& cfg, index_t extra_items,
                       index_t& ffn_inner) {
    const auto items = mapped_shape(r, layout, "item_emb.weight"), pos = mapped_shape(r, layout, "pos_emb.weight");
    RECBLOCKS_CHECK_FORMAT(items.size() == 2 && pos.size() == 2, r.source(), " (layout \"", layout.name(),
                           "\"): no 2-d item and position tables (\"", layout.sources_of("item_emb.weight").front(),
                           "\", \"", layout.sources_of("pos_emb.weight").front(), "\")");
    cfg.num_items = static_cast<index_t>(items[0]) - 1 - extra_items;
    cfg.d_model = static_cast<index_t>(items[1]);
    cfg.max_len = static_cast<index_t>(pos[0]) - (cfg.positions == blocks::PositionRows::from_one ? 1 : 0);
    cfg.num_blocks = 0;
    while (!mapped_shape(r, layout, "blocks." + std::to_string(cfg.num_blocks) + ".attention.out_proj.weight").empty())
        ++cfg.num_blocks;
    RECBLOCKS_CHECK_FORMAT(cfg.num_blocks >= 1, r.source(), " (layout \"", layout.name(), "\"): no tensor \"",
                           layout.sources_of("blocks.0.attention.out_proj.weight").front(), "\" (block 0)");
    const auto ffn = mapped_shape(r, layout, "blocks.0.ffn.linear1.weight");
    RECBLOCKS_CHECK_FORMAT(!ffn.empty(), r.source(), " (layout \"", layout.name(), "\"): no tensor \"",
                           layout.sources_of("blocks.0.ffn.linear1.weight").front(), "\"");
    ffn_inner = static_cast<index_t>(ffn[0]);
}
}  // namespace detail

/// Reads the sizes a checkpoint shows into cfg (after layout.apply(cfg), which sets the position
/// scheme they depend on): num_items, d_model, max_len, num_blocks and the feed-forward width.
/// The number of heads is not in the weights: cfg.heads is left as it is.
inline void read_sizes(const std::filesystem::path& path, const CheckpointLayout& layout, SASRecConfig& cfg) {
    layout.apply(cfg);
    const auto r = io::SafetensorsReader::open(path);
    detail::read_common_sizes(r, layout, cfg, 0, cfg.ffn_inner);
}
/// As above for BERT4Rec (its item table has a [mask] row; the width goes to cfg.inner).
inline void read_sizes(const std::filesystem::path& path, const CheckpointLayout& layout, BERT4RecConfig& cfg) {
    layout.apply(cfg);
    const auto r = io::SafetensorsReader::open(path);
    detail::read_common_sizes(r, layout, cfg, 1, cfg.inner);
}

/// Loads every parameter of `params` from the safetensors state_dict at `path`
/// through `layout`. Checks first, writes after: a parameter whose tensor is
/// missing (FormatError) or has the wrong shape (ShapeError), or a file tensor
/// no parameter uses and the layout does not ignore (FormatError), names the
/// tensor and leaves the model unchanged.
template <class T>
void load_state(const std::filesystem::path& path, const ParamList<T>& params, const CheckpointLayout& layout) {
    const auto r = io::SafetensorsReader::open(path);
    const std::string where = recblocks::detail::concat(r.source(), " (layout \"", layout.name(), "\")");
    struct Plan {
        std::vector<std::string> parts;
        index_t skip = 0;
    };
    std::vector<Plan> plans;
    std::vector<std::string> used;
    for (const auto& p : params) {
        Plan plan;
        plan.parts = layout.sources_of(p.name, &plan.skip);
        index_t rows = 0;
        for (const auto& t : plan.parts) {
            RECBLOCKS_CHECK_FORMAT(r.contains(t), where, ": no tensor \"", t, "\" for parameter \"", p.name,
                                   "\"; is this the checkpoint's layout? (see docs/interop.md)");
            auto fs = detail::squeezed(r.record(t).shape, p.shape.size());
            bool ok = fs.size() == p.shape.size() && !fs.empty();
            for (std::size_t k = 1; ok && k < fs.size(); ++k) ok = fs[k] == p.shape[k];
            RECBLOCKS_CHECK_SHAPE(ok, where, ": tensor \"", t, "\" is ", detail::shape_text(r.record(t).shape),
                                  " but parameter \"", p.name, "\" is ", detail::shape_text(p.shape),
                                  plan.parts.size() > 1 ? " (stacked from several tensors)" : "");
            rows += static_cast<index_t>(fs[0]);
            used.push_back(t);
        }
        const index_t want = p.shape[0] + plan.skip;
        RECBLOCKS_CHECK_SHAPE(rows == want, where, ": tensor \"", plan.parts.front(), "\"",
                              plan.parts.size() > 1 ? " and the tensors stacked with it have " : " has ", rows,
                              " rows but parameter \"", p.name, "\" is ", detail::shape_text(p.shape),
                              plan.skip > 0 ? recblocks::detail::concat(" after skipping ", plan.skip, " leading rows")
                                            : std::string());
        plans.push_back(std::move(plan));
    }
    for (const auto& n : r.names()) {
        const bool is_used = std::find(used.begin(), used.end(), n) != used.end();
        const bool ignored = std::find(layout.ignore().begin(), layout.ignore().end(), n) != layout.ignore().end();
        RECBLOCKS_CHECK_FORMAT(is_used || ignored, where, ": tensor \"", n,
                               "\" of the checkpoint is used by no parameter; is this the checkpoint's layout, and "
                               "do the model's options match it? (add it to the layout's \"ignore\" if it is "
                               "expected; see docs/interop.md)");
    }
    std::vector<T> scratch;
    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        const auto& plan = plans[i];
        index_t row_len = 1;
        for (std::size_t k = 1; k < p.shape.size(); ++k) row_len *= p.shape[k];
        if (plan.skip == 0) {
            T* dst = p.value;
            for (const auto& t : plan.parts) {
                const auto& rec = r.record(t);
                auto part = p;
                part.value = dst;
                part.shape[0] = static_cast<index_t>(rec.shape[0]);
                io::load_param(r, t, part, true);
                dst += part.numel();
            }
        } else {
            auto whole = p;
            whole.shape[0] += plan.skip;
            scratch.resize(static_cast<std::size_t>(whole.numel()));
            whole.value = scratch.data();
            io::load_param(r, plan.parts.front(), whole, true);
            std::copy(scratch.begin() + plan.skip * row_len, scratch.end(), p.value);  // rows skip.. of the file
        }
    }
}

}  // namespace models
RECBLOCKS_NAMESPACE_END
