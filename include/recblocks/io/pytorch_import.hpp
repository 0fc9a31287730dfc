#pragma once
// Loading weights trained in PyTorch (a state_dict saved with
// safetensors.torch.save_file) into a recblocks model, through a name map
// that the user can read and edit.
//
// A NameMap is an ordered list of prefix rules {recblocks prefix, PyTorch
// prefix}; "{i}" in a rule matches a block index. A parameter's name is
// rewritten by the first rule whose recblocks prefix matches; names no rule
// matches are looked up unchanged. Layout differences handled on load:
//   * nn.MultiheadAttention's packed in_proj_weight [3D, D] / in_proj_bias and
//     out_proj.* are recblocks' own layout (no conversion);
//   * nn.Conv1d(kernel_size=1) weights [F, D, 1] load as Linear weights [F, D];
//   * F32, F64, BF16 and F16 tensors convert to the model's type.
// Every parameter must be found with a matching shape (else FormatError or
// ShapeError, naming it, and nothing is written); tensors of the file that
// no parameter used are returned, so a user can spot a wrong map.
#include <string>
#include <utility>
#include <vector>

#include "recblocks/io/param_io.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace io {

struct NameRule {
    std::string ours;    ///< e.g. "blocks.{i}.attention."
    std::string theirs;  ///< e.g. "attention_layers.{i}."
};
using NameMap = std::vector<NameRule>;

/// SASRec as in pmixer/SASRec.pytorch (and benchmarks/peers/torch_models.py):
/// attention_layernorms / attention_layers / forward_layernorms /
/// forward_layers (Conv1d conv1/conv2) / last_layernorm.
inline NameMap sasrec_pmixer_names() {
    return {{"blocks.{i}.attention.", "attention_layers.{i}."},
            {"blocks.{i}.norm_attention.", "attention_layernorms.{i}."},
            {"blocks.{i}.norm_ffn.", "forward_layernorms.{i}."},
            {"blocks.{i}.ffn.linear1.", "forward_layers.{i}.conv1."},
            {"blocks.{i}.ffn.linear2.", "forward_layers.{i}.conv2."},
            {"final_norm.", "last_layernorm."}};
}

namespace detail {
/// Matches `pattern` (with at most one "{i}") as a prefix of `name`; on success
/// returns the length matched and the digits that stood for {i}.
inline bool match_prefix(const std::string& name, const std::string& pattern, std::size_t& len, std::string& index) {
    const auto brace = pattern.find("{i}");
    if (brace == std::string::npos) {
        if (name.compare(0, pattern.size(), pattern) != 0) return false;
        len = pattern.size();
        return true;
    }
    if (name.compare(0, brace, pattern, 0, brace) != 0) return false;
    std::size_t j = brace;
    while (j < name.size() && name[j] >= '0' && name[j] <= '9') ++j;
    if (j == brace) return false;
    const std::string rest = pattern.substr(brace + 3);
    if (name.compare(j, rest.size(), rest) != 0) return false;
    index = name.substr(brace, j - brace);
    len = j + rest.size();
    return true;
}
}  // namespace detail

/// The PyTorch name of recblocks parameter `name` under `map`.
inline std::string map_name(const NameMap& map, const std::string& name) {
    for (const auto& rule : map) {
        std::size_t len = 0;
        std::string index;
        if (!detail::match_prefix(name, rule.ours, len, index)) continue;
        std::string out = rule.theirs;
        if (const auto b = out.find("{i}"); b != std::string::npos) out.replace(b, 3, index);
        return out + name.substr(len);
    }
    return name;
}

/// Loads every parameter of `params` from the safetensors state_dict at
/// `path`; returns the names of the file's tensors that were not used.
template <class T>
std::vector<std::string> load_pytorch_state(const std::filesystem::path& path, const ParamList<T>& params,
                                            const NameMap& map) {
    const auto r = SafetensorsReader::open(path);
    std::vector<std::string> theirs;
    for (const auto& p : params) {
        const std::string t = map_name(map, p.name);
        RECBLOCKS_CHECK_FORMAT(r.contains(t), r.source(), ": no tensor \"", t, "\" for parameter \"", p.name,
                               "\"; edit the io::NameMap (see docs/interop.md)");
        RECBLOCKS_CHECK_SHAPE(detail::same_shape_modulo_trailing_ones(r.record(t).shape, p.shape, true), r.source(),
                              ": tensor \"", t, "\" is ", detail::format_list(r.record(t).shape), " but parameter \"",
                              p.name, "\" is ",
                              detail::format_list(std::vector<std::int64_t>(p.shape.begin(), p.shape.end())));
        theirs.push_back(t);
    }
    for (std::size_t i = 0; i < params.size(); ++i) load_param(r, theirs[i], params[i], true);
    std::vector<std::string> unused;
    for (const auto& n : r.names())
        if (std::find(theirs.begin(), theirs.end(), n) == theirs.end()) unused.push_back(n);
    return unused;
}

}  // namespace io
RECBLOCKS_NAMESPACE_END
