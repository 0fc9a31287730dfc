#pragma once
// Moving a ParamList in and out of safetensors files: one tensor per
// parameter, checked by name and shape. Shared by checkpoints
// (train/checkpoint.hpp) and the PyTorch importer (io/pytorch_import.hpp).
#include <string>

#include "recblocks/params/parameter_list.hpp"
#include "recblocks/io/safetensors.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace io {

namespace detail {

/// The file's shape equals `want`, ignoring trailing 1s of the file's
/// (a Conv1d kernel-size-1 weight [F, D, 1] is a Linear weight [F, D]).
inline bool same_shape_modulo_trailing_ones(std::vector<std::int64_t> file, const std::vector<index_t>& want,
                                            bool allow_trailing_ones) {
    if (allow_trailing_ones)
        while (file.size() > want.size() && file.back() == 1) file.pop_back();
    if (file.size() != want.size()) return false;
    for (std::size_t i = 0; i < file.size(); ++i)
        if (file[i] != want[i]) return false;
    return true;
}

template <class T, std::size_t R>
void load_rank(const SafetensorsReader& r, const TensorRecord& rec, T* dst) {
    Shape<R> s;
    for (std::size_t i = 0; i < R; ++i) s[i] = static_cast<index_t>(rec.shape[i]);
    r.load_into(rec.name, TensorView<T, R>(dst, s));
}

}  // namespace detail

/// Loads tensor `file_name` of `r` into `p.value`: ShapeError naming both
/// shapes unless they match (optionally ignoring trailing 1s of the file's).
template <class T>
void load_param(const SafetensorsReader& r, const std::string& file_name, const ParamRef<T>& p,
                bool allow_trailing_ones = false) {
    const TensorRecord& rec = r.record(file_name);
    RECBLOCKS_CHECK_SHAPE(detail::same_shape_modulo_trailing_ones(rec.shape, p.shape, allow_trailing_ones), r.source(),
                          ": tensor \"", file_name, "\" is ", detail::format_list(rec.shape), " but parameter \"", p.name,
                          "\" is ", detail::format_list(std::vector<std::int64_t>(p.shape.begin(), p.shape.end())));
    switch (rec.shape.size()) {
        case 1: return detail::load_rank<T, 1>(r, rec, p.value);
        case 2: return detail::load_rank<T, 2>(r, rec, p.value);
        case 3: return detail::load_rank<T, 3>(r, rec, p.value);
        case 4: return detail::load_rank<T, 4>(r, rec, p.value);
        default:
            throw ShapeError(recblocks::detail::concat(r.source(), ": tensor \"", file_name, "\" has rank ",
                                                       rec.shape.size(), "; parameters have rank 1 to 4"));
    }
}

/// Adds `values` (p.numel() entries) under `file_name` with p's shape.
template <class T>
void add_param(SafetensorsWriter& w, const std::string& file_name, const ParamRef<T>& p, const T* values) {
    switch (p.shape.size()) {
        case 1: return w.add(file_name, TensorView<const T, 1>(values, Shape<1>{{p.shape[0]}}));
        case 2: return w.add(file_name, TensorView<const T, 2>(values, Shape<2>{{p.shape[0], p.shape[1]}}));
        case 3: return w.add(file_name, TensorView<const T, 3>(values, Shape<3>{{p.shape[0], p.shape[1], p.shape[2]}}));
        default:
            throw ShapeError(recblocks::detail::concat("io::add_param: parameter \"", p.name, "\" has rank ",
                                                       p.shape.size(), "; only ranks 1 to 3 are written"));
    }
}

}  // namespace io
RECBLOCKS_NAMESPACE_END
