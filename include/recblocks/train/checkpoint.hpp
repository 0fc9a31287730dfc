#pragma once
// Training checkpoints in safetensors: every parameter under its ParamList
// name, the Adam moments as "optimizer.m/<name>" and "optimizer.v/<name>",
// and metadata: "format" = "recblocks-checkpoint-1", "step" (updates made),
// "optimizer.steps", plus the caller's entries (model configuration, ...)
// and tensors (the item-id map, ...; `add_extra`), which loading ignores.
//
// save_checkpoint() writes atomically (temp file + fsync + rename): a crash or
// an error leaves the previous checkpoint intact. load_checkpoint() checks
// every name and shape BEFORE writing any parameter, so a failed load leaves
// the model untouched. Weights, moments and step restored together let
// training resume bit-exactly (same seed, thread count, kernels).
// In train/, not io/: a checkpoint is the training state (it knows Adam), and
// io/ stays a layer below optim/ (file formats and ParamList transfer only).
#include <charconv>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "recblocks/io/param_io.hpp"
#include "recblocks/optim/adam.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

inline constexpr std::string_view kCheckpointFormat = "recblocks-checkpoint-1";

struct CheckpointInfo {
    std::int64_t step = 0;
    std::map<std::string, std::string> metadata;
};

namespace detail {
/// A host view of tensor `values` described by `p`: the tensor itself when the
/// host can read its memory, else a copy in `staging` (kept by the caller).
template <class T, MemorySpace Memory>
ParamRef<T> host_copy(const ParamRef<T, Memory>& p, const T* values, std::vector<Vector<T>>& staging) {
    ParamRef<T> h{p.name, nullptr, nullptr, p.shape, p.kind, {}};
    if constexpr (Memory::host_accessible) {
        h.value = const_cast<T*>(values);
    } else {
        staging.emplace_back(Shape<1>{{p.numel()}});
        p.memory.download(staging.back().data(), values, static_cast<std::size_t>(p.numel()) * sizeof(T));
        h.value = staging.back().data();
    }
    return h;
}

/// Loads tensor `name` of `r` into `values` (p's memory space), through the host.
template <class T, MemorySpace Memory>
void load_into(const io::SafetensorsReader& r, const std::string& name, const ParamRef<T, Memory>& p, T* values) {
    ParamRef<T> h{p.name, nullptr, nullptr, p.shape, p.kind, {}};
    if constexpr (Memory::host_accessible) {
        h.value = values;
        io::load_param(r, name, h);
    } else {
        Vector<T> staging(Shape<1>{{p.numel()}});
        h.value = staging.data();
        io::load_param(r, name, h);
        p.memory.upload(values, staging.data(), static_cast<std::size_t>(p.numel()) * sizeof(T));
    }
}
}  // namespace detail

/// Writes params (and the optimiser's moments when `adam` is given) from any
/// memory space: device tensors are copied to the host once.
template <class T, MemorySpace Memory>
void save_checkpoint(const std::filesystem::path& path, const ParamList<T, Memory>& params,
                     std::type_identity_t<optim::Adam<T, Memory>>* adam, std::int64_t step,
                     const std::map<std::string, std::string>& metadata = {},
                     const std::function<void(io::SafetensorsWriter&)>& add_extra = {}) {
    io::SafetensorsWriter w;
    std::vector<Vector<T>> staging;  // host copies of device tensors, alive until the write
    staging.reserve(params.size() * 3);
    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        const ParamRef<T> h = detail::host_copy(p, p.value, staging);
        io::add_param(w, p.name, h, h.value);
        if (adam) {
            const ParamRef<T> m = detail::host_copy(p, adam->first_moment(i).data(), staging);
            const ParamRef<T> v = detail::host_copy(p, adam->second_moment(i).data(), staging);
            io::add_param(w, "optimizer.m/" + p.name, m, m.value);
            io::add_param(w, "optimizer.v/" + p.name, v, v.value);
        }
    }
    if (add_extra) add_extra(w);
    for (const auto& [k, v] : metadata) w.set_metadata(k, v);
    w.set_metadata("format", std::string(kCheckpointFormat));
    w.set_metadata("step", std::to_string(step));
    if (adam) w.set_metadata("optimizer.steps", std::to_string(adam->steps()));
    w.write(path);
}

/// Loads a checkpoint into params (and the optimiser's state when `adam` is
/// given: FormatError if the file has none), in any memory space. Returns the
/// step and metadata.
template <class T, MemorySpace Memory>
CheckpointInfo load_checkpoint(const std::filesystem::path& path, const ParamList<T, Memory>& params,
                               std::type_identity_t<optim::Adam<T, Memory>>* adam) {
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
    auto check = [&](const std::string& name, const ParamRef<T, Memory>& p) {
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
        detail::load_into(r, p.name, p, p.value);
        if (adam) {
            detail::load_into(r, "optimizer.m/" + p.name, p, adam->first_moment(i).data());
            detail::load_into(r, "optimizer.v/" + p.name, p, adam->second_moment(i).data());
        }
    }
    if (adam) adam->set_steps(adam_steps);
    return info;
}

}  // namespace train
RECBLOCKS_NAMESPACE_END
