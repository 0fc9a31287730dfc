#pragma once
// Training checkpoints in safetensors: every parameter under its ParamList
// name, the Adam moments as "optimizer.m/<name>" and "optimizer.v/<name>",
// and metadata: "format" = "recblocks-checkpoint-1", "step" (updates made),
// "optimizer.steps", plus the caller's entries (model configuration, ...).
//
// save_checkpoint() writes atomically (temp file + fsync + rename): a crash or
// an error leaves the previous checkpoint intact. load_checkpoint() checks
// every name and shape BEFORE writing any parameter, so a failed load leaves
// the model untouched. Weights, moments and step restored together let
// training resume bit-exactly (same seed, thread count, kernels).
// In train/, not io/: a checkpoint is the training state (it knows Adam), and
// io/ stays a layer below optim/ (file formats and ParamList transfer only).
#include <charconv>
#include <map>
#include <string>

#include "recblocks/io/param_io.hpp"
#include "recblocks/optim/adam.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

inline constexpr std::string_view kCheckpointFormat = "recblocks-checkpoint-1";

struct CheckpointInfo {
    std::int64_t step = 0;
    std::map<std::string, std::string> metadata;
};

template <class T>
void save_checkpoint(const std::filesystem::path& path, const ParamList<T>& params, optim::Adam<T>* adam,
                     std::int64_t step, const std::map<std::string, std::string>& metadata = {}) {
    io::SafetensorsWriter w;
    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        io::add_param(w, p.name, p, p.value);
        if (adam) {
            io::add_param(w, "optimizer.m/" + p.name, p, adam->first_moment(i).data());
            io::add_param(w, "optimizer.v/" + p.name, p, adam->second_moment(i).data());
        }
    }
    for (const auto& [k, v] : metadata) w.set_metadata(k, v);
    w.set_metadata("format", std::string(kCheckpointFormat));
    w.set_metadata("step", std::to_string(step));
    if (adam) w.set_metadata("optimizer.steps", std::to_string(adam->steps()));
    w.write(path);
}

/// Loads a checkpoint into params (and the optimiser's state when `adam` is
/// given: FormatError if the file has none). Returns the step and metadata.
template <class T>
CheckpointInfo load_checkpoint(const std::filesystem::path& path, const ParamList<T>& params,
                               optim::Adam<T>* adam) {
    const auto r = io::SafetensorsReader::open(path);
    const auto& meta = r.metadata();
    const auto fmt = meta.find("format");
    RECBLOCKS_CHECK_FORMAT(fmt != meta.end() && fmt->second == kCheckpointFormat, r.source(),
                           ": not a recblocks checkpoint (metadata \"format\" is ",
                           fmt == meta.end() ? std::string("missing") : "\"" + fmt->second + "\"", ", expected \"",
                           kCheckpointFormat, "\"); to load PyTorch weights use io::load_pytorch_state");
    auto integer = [&](const char* key) {
        const auto it = meta.find(key);
        std::int64_t v = -1;
        if (it != meta.end()) std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
        RECBLOCKS_CHECK_FORMAT(v >= 0, r.source(), ": metadata \"", key, "\" is missing or not a count");
        return v;
    };
    CheckpointInfo info{integer("step"), meta};
    // Validate everything first: a failed load must not leave a half-loaded model.
    auto check = [&](const std::string& name, const ParamRef<T>& p) {
        RECBLOCKS_CHECK_FORMAT(r.contains(name), r.source(), ": checkpoint has no tensor \"", name,
                               "\" (was it saved by a model of another configuration?)");
        RECBLOCKS_CHECK_SHAPE(io::detail::same_shape_modulo_trailing_ones(r.record(name).shape, p.shape, false), r.source(),
                              ": tensor \"", name, "\" is ", io::detail::format_list(r.record(name).shape),
                              " but the model's is ",
                              io::detail::format_list(std::vector<std::int64_t>(p.shape.begin(), p.shape.end())));
    };
    for (const auto& p : params) {
        check(p.name, p);
        if (adam) {
            check("optimizer.m/" + p.name, p);
            check("optimizer.v/" + p.name, p);
        }
    }
    const std::int64_t adam_steps = adam ? integer("optimizer.steps") : 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        io::load_param(r, p.name, p);
        if (adam) {
            ParamRef<T> m = p, v = p;
            m.value = adam->first_moment(i).data();
            v.value = adam->second_moment(i).data();
            io::load_param(r, "optimizer.m/" + p.name, m);
            io::load_param(r, "optimizer.v/" + p.name, v);
        }
    }
    if (adam) adam->set_steps(adam_steps);
    return info;
}

}  // namespace train
RECBLOCKS_NAMESPACE_END
