#pragma once
// safetensors checkpoints (the Hugging Face format): read, validate, convert, write.
//
//   [u64 little-endian N][N bytes of UTF-8 JSON header][data buffer]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets into the data buffer) plus an optional "__metadata__" object of
// string -> string. Data is little-endian and row-major; the tensors must cover
// the data buffer exactly, without gaps or overlaps.
//
// SafetensorsReader reads the whole file into memory (checkpoints of the models
// recblocks trains are megabytes, not the tens of gigabytes an LLM needs; mmap
// would save a copy there) and validates everything before it hands out a
// single byte, so a load never meets a malformed file halfway. Malformed files
// raise FormatError naming the file and the problem; the OS refusing raises
// IoError. SafetensorsWriter writes byte for byte what Python's `safetensors`
// package writes for the same tensors, and replaces the target atomically
// (temporary file, fsync, rename, fsync of the directory). docs/io.md has the
// full list of checks and the error each raises.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/io/json_header.hpp"

static_assert(std::endian::native == std::endian::little,
              "recblocks/io/safetensors.hpp copies little-endian file data as it is: a big-endian host would need "
              "byte swaps");

RECBLOCKS_NAMESPACE_BEGIN
namespace io {

/// Element types of safetensors files that recblocks reads and writes. (The
/// format has more — U16, U32, U64, F8_*, C64 — which the reader rejects with a
/// FormatError naming the dtype.)
enum class SafetensorsDType : std::uint8_t { f64, f32, bf16, f16, i64, i32, i16, i8, u8, boolean };

/// The header spelling: "F64", "F32", "BF16", "F16", "I64", "I32", "I16", "I8", "U8", "BOOL".
constexpr std::string_view dtype_name(SafetensorsDType t) {
    switch (t) {
        case SafetensorsDType::f64: return "F64";
        case SafetensorsDType::f32: return "F32";
        case SafetensorsDType::bf16: return "BF16";
        case SafetensorsDType::f16: return "F16";
        case SafetensorsDType::i64: return "I64";
        case SafetensorsDType::i32: return "I32";
        case SafetensorsDType::i16: return "I16";
        case SafetensorsDType::i8: return "I8";
        case SafetensorsDType::u8: return "U8";
        case SafetensorsDType::boolean: return "BOOL";
    }
    return "?";
}

/// The dtype a header spells `name`, or nullopt for one recblocks does not support.
constexpr std::optional<SafetensorsDType> dtype_from_name(std::string_view name) {
    for (auto t : {SafetensorsDType::f64, SafetensorsDType::f32, SafetensorsDType::bf16, SafetensorsDType::f16,
                   SafetensorsDType::i64, SafetensorsDType::i32, SafetensorsDType::i16, SafetensorsDType::i8,
                   SafetensorsDType::u8, SafetensorsDType::boolean})
        if (dtype_name(t) == name) return t;
    return std::nullopt;
}

/// Bytes per element.
constexpr std::size_t dtype_size(SafetensorsDType t) {
    switch (t) {
        case SafetensorsDType::f64:
        case SafetensorsDType::i64: return 8;
        case SafetensorsDType::f32:
        case SafetensorsDType::i32: return 4;
        case SafetensorsDType::bf16:
        case SafetensorsDType::f16:
        case SafetensorsDType::i16: return 2;
        case SafetensorsDType::i8:
        case SafetensorsDType::u8:
        case SafetensorsDType::boolean: return 1;
    }
    return 0;
}

/// F64, F32, BF16, F16: these load into floating-point types; the rest into integer types.
constexpr bool is_floating(SafetensorsDType t) {
    return t == SafetensorsDType::f64 || t == SafetensorsDType::f32 || t == SafetensorsDType::bf16 ||
           t == SafetensorsDType::f16;
}

/// The dtype SafetensorsWriter stores a C++ element type as.
template <class T>
constexpr SafetensorsDType safetensors_dtype_of() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, double>) return SafetensorsDType::f64;
    else if constexpr (std::is_same_v<U, float>) return SafetensorsDType::f32;
    else if constexpr (std::is_same_v<U, bf16>) return SafetensorsDType::bf16;
    else if constexpr (std::is_same_v<U, f16>) return SafetensorsDType::f16;
    else if constexpr (std::is_same_v<U, std::int64_t>) return SafetensorsDType::i64;
    else if constexpr (std::is_same_v<U, std::int32_t>) return SafetensorsDType::i32;
    else if constexpr (std::is_same_v<U, std::int16_t>) return SafetensorsDType::i16;
    else if constexpr (std::is_same_v<U, std::int8_t>) return SafetensorsDType::i8;
    else if constexpr (std::is_same_v<U, std::uint8_t>) return SafetensorsDType::u8;
    else if constexpr (std::is_same_v<U, bool>) return SafetensorsDType::boolean;
    else static_assert(sizeof(U) == 0, "safetensors stores double, float, bf16, f16, int64, int32, int16, int8, "
                                       "uint8 and bool");
}

/// One tensor of a file, as the header describes it. `bytes` points into the
/// reader's buffer and lives as long as the reader.
struct TensorRecord {
    std::string name;
    SafetensorsDType dtype = SafetensorsDType::f32;
    std::vector<std::int64_t> shape;   ///< empty for a scalar
    std::span<const std::byte> bytes;  ///< numel * dtype_size bytes, little-endian, row-major

    [[nodiscard]] std::int64_t numel() const {
        std::int64_t n = 1;
        for (const std::int64_t e : shape) n *= e;
        return n;
    }
};

namespace detail {

using recblocks::detail::concat;

/// "[5, 4]" — shapes and offsets in messages, as core/shape.hpp prints them.
inline std::string format_list(std::span<const std::int64_t> v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(v[i]);
    }
    return s + "]";
}

/// The C++ type each dtype's bytes are read as. BOOL bytes are read as uint8
/// (a bool object holding 7 would be undefined behaviour; the reader checks 0/1).
template <class F>
decltype(auto) with_storage_type(SafetensorsDType t, F&& f) {
    switch (t) {
        case SafetensorsDType::f64: return f(std::type_identity<double>{});
        case SafetensorsDType::f32: return f(std::type_identity<float>{});
        case SafetensorsDType::bf16: return f(std::type_identity<bf16>{});
        case SafetensorsDType::f16: return f(std::type_identity<f16>{});
        case SafetensorsDType::i64: return f(std::type_identity<std::int64_t>{});
        case SafetensorsDType::i32: return f(std::type_identity<std::int32_t>{});
        case SafetensorsDType::i16: return f(std::type_identity<std::int16_t>{});
        case SafetensorsDType::i8: return f(std::type_identity<std::int8_t>{});
        case SafetensorsDType::u8:
        case SafetensorsDType::boolean: return f(std::type_identity<std::uint8_t>{});
    }
    return f(std::type_identity<std::uint8_t>{});  // unreachable: every enumerator is handled
}

template <class T>
inline constexpr bool is_float_target = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                        std::is_same_v<T, bf16> || std::is_same_v<T, f16>;
template <class T>
inline constexpr bool is_int_target =
    std::is_integral_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, wchar_t> &&
    !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>;

/// "float", "int8", ... for messages.
template <class T>
constexpr std::string_view type_label() {
    if constexpr (std::is_same_v<T, float>) return "float";
    else if constexpr (std::is_same_v<T, double>) return "double";
    else if constexpr (std::is_same_v<T, bf16>) return "bf16";
    else if constexpr (std::is_same_v<T, f16>) return "f16";
    else if constexpr (std::is_same_v<T, bool>) return "bool";
    else if constexpr (std::is_same_v<T, std::int8_t>) return "int8";
    else if constexpr (std::is_same_v<T, std::int16_t>) return "int16";
    else if constexpr (std::is_same_v<T, std::int32_t>) return "int32";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "int64";
    else if constexpr (std::is_same_v<T, std::uint8_t>) return "uint8";
    else if constexpr (std::is_same_v<T, std::uint16_t>) return "uint16";
    else if constexpr (std::is_same_v<T, std::uint32_t>) return "uint32";
    else if constexpr (std::is_same_v<T, std::uint64_t>) return "uint64";
    else return "this integer type";
}

template <class Src>
Src read_element(const std::byte* p) {
    Src v;
    std::memcpy(static_cast<void*>(&v), p, sizeof(Src));
    return v;
}

/// True when integer `v` is a value of T (bool: 0 or 1).
template <class T, class Src>
constexpr bool fits(Src v) {
    if constexpr (std::is_same_v<T, bool>) return v == 0 || v == 1;
    else return std::in_range<T>(v);
}

/// True when every value of integer type Src is one of T (int8 -> int64, ...):
/// loads skip the range-check pass then.
template <class T, class Src>
constexpr bool always_fits() {
    if constexpr (!std::is_integral_v<Src>) return false;
    else if constexpr (std::is_same_v<T, bool>) return false;
    else return std::in_range<T>(std::numeric_limits<Src>::min()) && std::in_range<T>(std::numeric_limits<Src>::max());
}

/// One element, converted. Float sources go through float (bf16/f16, exact)
/// or double (F64); narrowing rounds to nearest even. F64 -> bf16/f16 rounds
/// twice (double -> float -> half), which can differ from one rounding in the
/// last bit at exact ties.
template <class T, class Src>
T convert_element(Src v) {
    if constexpr (std::is_same_v<T, Src>) {
        return v;
    } else if constexpr (is_float_target<T>) {
        if constexpr (std::is_same_v<Src, bf16> || std::is_same_v<Src, f16>) {
            const float f = static_cast<float>(v);
            if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return T(f);
            else return static_cast<T>(f);
        } else if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) {
            return T(static_cast<float>(v));
        } else {
            return static_cast<T>(v);
        }
    } else {
        return static_cast<T>(v);  // integers, range-checked before
    }
}

/// Calls f(offset of the row's first element, row number) for each row (last
/// dimension) of a row-major view with the given extents and strides.
template <std::size_t R, class F>
void for_each_row(const Shape<R>& shape, const std::array<index_t, R>& strides, F&& f) {
    index_t rows = 1;
    for (std::size_t d = 0; d + 1 < R; ++d) rows *= shape[d];
    if (rows == 0 || shape[R - 1] == 0) return;
    std::array<index_t, R> idx{};
    for (index_t r = 0; r < rows; ++r) {
        index_t off = 0;
        for (std::size_t d = 0; d + 1 < R; ++d) off += idx[d] * strides[d];
        f(off, r);
        for (std::size_t d = R - 1; d-- > 0;) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

/// Whether a safetensors file can replace its target atomically depends on a
/// unique temporary name: pid plus a per-process counter (two threads may
/// write the same target).
inline std::atomic<std::uint64_t> temp_file_counter{0};

inline std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

/// The writer of "<target>.tmp.<pid>.<n>", if `name` is such a temporary file of `target`'s file name.
inline std::optional<pid_t> temp_file_owner(std::string_view name, std::string_view target_name) {
    if (name.size() <= target_name.size() + 5 || name.substr(0, target_name.size()) != target_name ||
        name.substr(target_name.size(), 5) != ".tmp.")
        return std::nullopt;
    const std::string_view rest = name.substr(target_name.size() + 5);
    const std::size_t dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 == rest.size()) return std::nullopt;
    for (std::size_t i = 0; i < rest.size(); ++i)
        if (i != dot && (rest[i] < '0' || rest[i] > '9')) return std::nullopt;
    std::int64_t pid = 0;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + dot, pid);
    if (ec != std::errc() || end != rest.data() + dot || pid <= 0 || pid > std::numeric_limits<pid_t>::max())
        return std::nullopt;
    return static_cast<pid_t>(pid);
}

/// Removes the temporary files that writes to `target` by processes that no
/// longer exist left behind (a save killed before its rename), and returns
/// how many. A file whose writer is alive (another process saving the same
/// target right now), or this process's own, is left alone; so is one whose
/// pid cannot be checked (EPERM). Best effort: a directory that cannot be
/// listed is skipped silently (the write that follows reports real problems).
/// Limit: a pid reused by an unrelated live process keeps its file until
/// that process ends.
inline std::size_t remove_orphaned_temp_files(const std::filesystem::path& target) {
    const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
    const std::string target_name = target.filename().string();
    std::size_t removed = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const auto owner = temp_file_owner(it->path().filename().string(), target_name);
        if (!owner || *owner == ::getpid()) continue;
        if (::kill(*owner, 0) == 0 || errno != ESRCH) continue;
        std::error_code rm;
        if (std::filesystem::remove(it->path(), rm)) ++removed;
    }
    return removed;
}

/// write(2) until all of `bytes` is written; false with errno set on failure.
inline bool write_all(int fd, const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

}  // namespace detail

/// A validated safetensors file in memory. Move-only: records point into its buffer.
class SafetensorsReader {
public:
    /// Reads and validates the whole file. IoError if it cannot be read;
    /// FormatError, naming the file and the problem, if it is malformed.
    static SafetensorsReader open(const std::filesystem::path& path) {
        const std::string where = path.string();
        const int fd = ::open(where.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw IoError(detail::concat(where, ": cannot open for reading: ", detail::errno_text(errno)));
        std::vector<std::byte> bytes;
        struct stat st {};
        int err = 0;
        if (::fstat(fd, &st) != 0) err = errno;
        else if (S_ISDIR(st.st_mode)) err = EISDIR;
        else {
            if (st.st_size > 0) bytes.reserve(static_cast<std::size_t>(st.st_size));
            // Read to end of file rather than trusting st_size (pipes, /proc).
            std::byte chunk[1 << 16];
            for (;;) {
                const ssize_t r = ::read(fd, chunk, sizeof chunk);
                if (r < 0) {
                    if (errno == EINTR) continue;
                    err = errno;
                    break;
                }
                if (r == 0) break;
                bytes.insert(bytes.end(), chunk, chunk + r);
            }
        }
        ::close(fd);
        if (err) throw IoError(detail::concat(where, ": cannot read: ", detail::errno_text(err)));
        return from_bytes(std::move(bytes), where);
    }

    /// Validates a whole file already in memory; `source` names it in messages.
    static SafetensorsReader from_bytes(std::vector<std::byte> file, std::string source = "<memory>") {
        SafetensorsReader r;
        r.source_ = std::move(source);
        r.file_ = std::move(file);
        r.parse();
        return r;
    }

    SafetensorsReader(SafetensorsReader&&) noexcept = default;
    SafetensorsReader& operator=(SafetensorsReader&&) noexcept = default;
    SafetensorsReader(const SafetensorsReader&) = delete;
    SafetensorsReader& operator=(const SafetensorsReader&) = delete;

    /// The path (or the name given to from_bytes) used in messages.
    [[nodiscard]] const std::string& source() const { return source_; }
    /// Tensor names, sorted.
    [[nodiscard]] const std::vector<std::string>& names() const { return names_; }
    [[nodiscard]] std::size_t size() const { return records_.size(); }
    [[nodiscard]] bool contains(std::string_view name) const { return find(name) != nullptr; }
    /// The "__metadata__" strings (empty if the file has none).
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const { return metadata_; }

    /// The tensor called `name`; IndexError listing some of the names the file has.
    [[nodiscard]] const TensorRecord& record(std::string_view name) const {
        if (const TensorRecord* r = find(name)) return *r;
        std::string known;
        const std::size_t shown = std::min<std::size_t>(names_.size(), 8);
        for (std::size_t i = 0; i < shown; ++i) known += detail::concat(i ? ", \"" : "\"", names_[i], "\"");
        if (shown < names_.size()) known += ", ...";
        throw IndexError(detail::concat(source_, ": no tensor named \"", name, "\"; the file has ", names_.size(),
                                        names_.size() == 1 ? " tensor" : " tensors", names_.empty() ? "" : ": ",
                                        known));
    }

    /// Loads tensor `name` as a rank-R tensor of T (any shape of that rank).
    /// Float dtypes load into float, double, bf16, f16; integer dtypes and BOOL
    /// into integer types (and bool), every value range-checked. ShapeError if
    /// the rank differs, ValueError for a dtype that does not convert to T or a
    /// value out of T's range. R = 0 loads a scalar (shape []).
    template <class T, std::size_t R>
    [[nodiscard]] Tensor<T, R> load(std::string_view name) const {
        const TensorRecord& rec = record(name);
        RECBLOCKS_CHECK_SHAPE(rec.shape.size() == R, source_, ": tensor \"", rec.name, "\" is ",
                              detail::format_list(rec.shape), " (rank ", rec.shape.size(), ") but load asks for rank ",
                              R);
        check_convertible<T>(rec);
        Shape<R> shape;
        for (std::size_t i = 0; i < R; ++i) shape[i] = static_cast<index_t>(rec.shape[i]);
        Tensor<T, R> out(shape);
        decode(rec, 0, rec.numel(), out.data());
        return out;
    }

    /// Loads tensor `name` into `dst`, whose shape must equal the file's
    /// exactly (ShapeError naming both otherwise). `dst` may be strided (a
    /// block of a larger matrix). Conversions and errors as in load(); checks
    /// come first, so a failed call leaves `dst` untouched.
    template <class T, std::size_t R>
    void load_into(std::string_view name, TensorView<T, R> dst) const {
        static_assert(!std::is_const_v<T>, "load_into writes into dst: it needs a view of mutable data");
        const TensorRecord& rec = record(name);
        bool same = rec.shape.size() == R;
        for (std::size_t i = 0; same && i < R; ++i) same = rec.shape[i] == dst.extent(i);
        RECBLOCKS_CHECK_SHAPE(same, source_, ": tensor \"", rec.name, "\" is ", detail::format_list(rec.shape),
                              " but dst is ", dst.shape());
        check_convertible<T>(rec);
        const index_t cols = dst.extent(R - 1);
        detail::for_each_row(dst.shape(), dst.strides(),
                             [&](index_t off, index_t row) { decode(rec, row * cols, cols, dst.data() + off); });
    }

    /// Loads a scalar tensor (shape []) as T.
    template <class T>
    [[nodiscard]] T load_scalar(std::string_view name) const {
        return load<T, 0>(name).data()[0];
    }

private:
    SafetensorsReader() = default;

    [[nodiscard]] const TensorRecord* find(std::string_view name) const {
        const auto it = std::lower_bound(records_.begin(), records_.end(), name,
                                         [](const TensorRecord& r, std::string_view n) { return r.name < n; });
        return it != records_.end() && it->name == name ? &*it : nullptr;
    }

    template <class... Parts>
    [[noreturn]] void fail(const Parts&... parts) const {
        throw FormatError(detail::concat(source_, ": ", parts...));
    }

    /// ValueError unless every element of `rec` converts to T: the dtype family
    /// matches and, for integers, each value lies in T's range.
    template <class T>
    void check_convertible(const TensorRecord& rec) const {
        static_assert(detail::is_float_target<T> || detail::is_int_target<T>,
                      "safetensors loads into float, double, bf16, f16, bool or an integer type");
        constexpr bool want_float = detail::is_float_target<T>;
        RECBLOCKS_CHECK_VALUE(is_floating(rec.dtype) == want_float, source_, ": tensor \"", rec.name, "\" is ",
                              dtype_name(rec.dtype), ", which does not load into ", detail::type_label<T>(),
                              want_float ? " (integer dtypes load into integer types only)"
                                         : " (float dtypes load into float, double, bf16 or f16 only)");
        if constexpr (!want_float) {
            detail::with_storage_type(rec.dtype, [&]<class Src>(std::type_identity<Src>) {
                if constexpr (std::is_integral_v<Src> && !detail::always_fits<T, Src>()) {
                    const std::int64_t n = rec.numel();
                    for (std::int64_t i = 0; i < n; ++i) {
                        const Src v =
                            detail::read_element<Src>(rec.bytes.data() + static_cast<std::size_t>(i) * sizeof(Src));
                        RECBLOCKS_CHECK_VALUE(detail::fits<T>(v), source_, ": tensor \"", rec.name, "\": element ", i,
                                              " = ", +v, " does not fit in ", detail::type_label<T>());
                    }
                }
            });
        }
    }

    /// Converts elements [first, first + n) of `rec` (flat, row-major) into dst[0, n).
    template <class T>
    void decode(const TensorRecord& rec, std::int64_t first, std::int64_t n, T* dst) const {
        detail::with_storage_type(rec.dtype, [&]<class Src>(std::type_identity<Src>) {
            const std::byte* src = rec.bytes.data() + first * static_cast<std::int64_t>(sizeof(Src));
            if constexpr (detail::is_float_target<T> != (std::is_floating_point_v<Src> || std::is_same_v<Src, bf16> ||
                                                         std::is_same_v<Src, f16>)) {
                return;  // rejected by check_convertible; not instantiated as a conversion
            } else if constexpr (std::is_same_v<T, Src>) {
                if (n > 0) std::memcpy(static_cast<void*>(dst), src, static_cast<std::size_t>(n) * sizeof(T));
            } else {
                for (std::int64_t i = 0; i < n; ++i)
                    dst[i] = detail::convert_element<T>(
                        detail::read_element<Src>(src + static_cast<std::size_t>(i) * sizeof(Src)));
            }
        });
    }

    void parse() {
        const std::size_t size = file_.size();
        if (size < 8) fail("file is ", size, " bytes, shorter than the 8-byte header length field");
        std::uint64_t n = 0;
        std::memcpy(&n, file_.data(), 8);
        if (n > size - 8)
            fail("header length ", n, " exceeds the ", size - 8, " bytes that follow the length field");
        const std::string_view header(reinterpret_cast<const char*>(file_.data()) + 8, static_cast<std::size_t>(n));
        const std::span<const std::byte> data(file_.data() + 8 + n, size - 8 - n);

        const json::Value root = json::parse(header, source_);
        if (!root.is_object()) fail("the header must be a JSON object, found ", json::kind_name(root.kind));

        bool seen_metadata = false;
        for (std::size_t m = 0; m < root.keys.size(); ++m) {
            const std::string& key = root.keys[m];
            const json::Value& v = root.items[m];
            if (key == "__metadata__") {
                if (seen_metadata) fail("\"__metadata__\" appears twice");
                seen_metadata = true;
                parse_metadata(v);
            } else {
                records_.push_back(parse_entry(key, v, data));
            }
        }

        std::sort(records_.begin(), records_.end(),
                  [](const TensorRecord& a, const TensorRecord& b) { return a.name < b.name; });
        for (std::size_t i = 1; i < records_.size(); ++i)
            if (records_[i].name == records_[i - 1].name) fail("duplicate tensor name \"", records_[i].name, "\"");
        check_coverage(data);

        names_.reserve(records_.size());
        for (const TensorRecord& r : records_) names_.push_back(r.name);
    }

    void parse_metadata(const json::Value& v) {
        if (v.kind == json::Value::Kind::null) return;  // Python's reader takes null as "no metadata"
        if (!v.is_object()) fail("\"__metadata__\" must be an object of strings, found ", json::kind_name(v.kind));
        for (std::size_t i = 0; i < v.keys.size(); ++i) {
            if (!v.items[i].is_string())
                fail("\"__metadata__\" value for key \"", v.keys[i], "\" must be a string, found ",
                     json::kind_name(v.items[i].kind));
            if (!metadata_.emplace(v.keys[i], v.items[i].text).second)
                fail("\"__metadata__\" has the key \"", v.keys[i], "\" twice");
        }
    }

    TensorRecord parse_entry(const std::string& name, const json::Value& v, std::span<const std::byte> data) const {
        if (!v.is_object()) fail("tensor \"", name, "\": entry must be an object, found ", json::kind_name(v.kind));
        const json::Value* dtype = nullptr;
        const json::Value* shape = nullptr;
        const json::Value* offsets = nullptr;
        for (std::size_t i = 0; i < v.keys.size(); ++i) {
            const json::Value** slot = v.keys[i] == "dtype"          ? &dtype
                                       : v.keys[i] == "shape"        ? &shape
                                       : v.keys[i] == "data_offsets" ? &offsets
                                                                     : nullptr;
            if (!slot) continue;  // other fields are ignored, as Python's reader ignores them
            if (*slot) fail("tensor \"", name, "\": field \"", v.keys[i], "\" appears twice");
            *slot = &v.items[i];
        }
        if (!dtype) fail("tensor \"", name, "\": missing \"dtype\"");
        if (!shape) fail("tensor \"", name, "\": missing \"shape\"");
        if (!offsets) fail("tensor \"", name, "\": missing \"data_offsets\"");

        TensorRecord rec;
        rec.name = name;
        if (!dtype->is_string())
            fail("tensor \"", name, "\": \"dtype\" must be a string, found ", json::kind_name(dtype->kind));
        const auto dt = dtype_from_name(dtype->text);
        if (!dt)
            fail("tensor \"", name, "\": unsupported dtype \"", dtype->text,
                 "\" (recblocks reads F64, F32, BF16, F16, I64, I32, I16, I8, U8, BOOL)");
        rec.dtype = *dt;

        if (!shape->is_array())
            fail("tensor \"", name, "\": \"shape\" must be an array, found ", json::kind_name(shape->kind));
        std::uint64_t nbytes = dtype_size(rec.dtype);  // numel * itemsize, kept below 2^63
        for (std::size_t i = 0; i < shape->items.size(); ++i) {
            const json::Value& e = shape->items[i];
            if (!e.is_number())
                fail("tensor \"", name, "\": shape element ", i, " is ", json::kind_name(e.kind), ", not an integer");
            const auto x = e.as_int64();
            if (!x) {
                if (e.text.find_first_of(".eE") != std::string::npos)
                    fail("tensor \"", name, "\": shape element ", i, " = ", e.text, " is not an integer");
                fail("tensor \"", name, "\": shape element ", i, " = ", e.text, " overflows 64 bits");
            }
            rec.shape.push_back(*x);
        }
        for (std::size_t i = 0; i < rec.shape.size(); ++i)
            if (rec.shape[i] < 0)
                fail("tensor \"", name, "\": shape ", detail::format_list(rec.shape), " has a negative extent");
        bool overflow = false;
        for (const std::int64_t e : rec.shape)
            overflow = overflow || (__builtin_mul_overflow(nbytes, static_cast<std::uint64_t>(e), &nbytes) ||
                                    nbytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
        // A zero extent anywhere makes the tensor empty, whatever the others are.
        if (std::find(rec.shape.begin(), rec.shape.end(), std::int64_t{0}) != rec.shape.end()) {
            overflow = false;
            nbytes = 0;
        }
        if (overflow)
            fail("tensor \"", name, "\": shape ", detail::format_list(rec.shape), " ", dtype_name(rec.dtype),
                 " needs more than 2^63 bytes");

        const bool pair = offsets->is_array() && offsets->items.size() == 2;
        std::int64_t ob[2] = {-1, -1};
        for (std::size_t i = 0; pair && i < 2; ++i)
            if (const auto x = offsets->items[i].as_int64()) ob[i] = *x;
        if (!pair || ob[0] < 0 || ob[1] < 0)
            fail("tensor \"", name, "\": \"data_offsets\" must be [begin, end] with two non-negative integers");
        const std::int64_t offs[2] = {ob[0], ob[1]};
        if (offs[1] < offs[0])
            fail("tensor \"", name, "\": data_offsets ", detail::format_list(offs), " end before they begin");
        const auto held = static_cast<std::uint64_t>(offs[1] - offs[0]);
        if (held != nbytes)
            fail("tensor \"", name, "\": data_offsets ", detail::format_list(offs), " hold ", held,
                 " bytes but shape ", detail::format_list(rec.shape), " ", dtype_name(rec.dtype), " needs ", nbytes);
        if (static_cast<std::uint64_t>(offs[1]) > data.size())
            fail("tensor \"", name, "\": data_offsets ", detail::format_list(offs), " lie outside the ", data.size(),
                 "-byte data buffer");
        rec.bytes = data.subspan(static_cast<std::size_t>(offs[0]), static_cast<std::size_t>(held));

        if (rec.dtype == SafetensorsDType::boolean)
            for (std::size_t i = 0; i < rec.bytes.size(); ++i)
                if (const auto b = std::to_integer<unsigned>(rec.bytes[i]); b > 1)
                    fail("tensor \"", name, "\": BOOL element ", i, " is ", b, ", not 0 or 1");
        return rec;
    }

    /// The tensors must tile the data buffer: sorted by offset, each starts
    /// where the previous one ended, and the last ends at the buffer's end.
    void check_coverage(std::span<const std::byte> data) const {
        std::vector<const TensorRecord*> by_offset;
        by_offset.reserve(records_.size());
        for (const TensorRecord& r : records_) by_offset.push_back(&r);
        const auto begin_of = [&](const TensorRecord* r) { return r->bytes.data() - data.data(); };
        std::sort(by_offset.begin(), by_offset.end(), [&](const TensorRecord* a, const TensorRecord* b) {
            return std::pair(begin_of(a), a->bytes.size()) < std::pair(begin_of(b), b->bytes.size());
        });
        std::ptrdiff_t pos = 0;
        const TensorRecord* last = nullptr;
        const auto range = [&](const TensorRecord* r) {
            const std::int64_t b = begin_of(r);
            const std::int64_t o[2] = {b, b + static_cast<std::int64_t>(r->bytes.size())};
            return detail::format_list(o);
        };
        for (const TensorRecord* r : by_offset) {
            const std::ptrdiff_t b = begin_of(r);
            if (b < pos)
                fail("tensors \"", last->name, "\" ", range(last), " and \"", r->name, "\" ", range(r), " overlap");
            if (b > pos)
                fail("bytes [", pos, ", ", b, ") of the data buffer belong to no tensor (the tensors must cover it "
                     "exactly)");
            pos = b + static_cast<std::ptrdiff_t>(r->bytes.size());
            last = r;
        }
        if (static_cast<std::size_t>(pos) != data.size())
            fail("bytes [", pos, ", ", data.size(), ") of the data buffer belong to no tensor (the tensors must cover "
                 "it exactly)");
    }

    std::string source_;
    std::vector<std::byte> file_;
    std::vector<TensorRecord> records_;  // sorted by name; bytes point into file_
    std::vector<std::string> names_;
    std::map<std::string, std::string> metadata_;
};

/// Collects tensors (copied when added, so views may die) and metadata, then
/// writes a safetensors file atomically.
class SafetensorsWriter {
public:
    /// Adds a copy of `tensor` (double, float, bf16, f16, int64, int32, int16,
    /// int8, uint8 or bool; strided views are packed). ValueError if `name` was
    /// added before, is "__metadata__", or is not valid UTF-8.
    template <class T, std::size_t R>
    void add(std::string name, TensorView<T, R> tensor) {
        using U = std::remove_const_t<T>;
        constexpr SafetensorsDType dt = safetensors_dtype_of<U>();
        static_assert(sizeof(U) == dtype_size(dt));
        const index_t cols = tensor.extent(R - 1);
        std::vector<std::byte> bytes(static_cast<std::size_t>(checked_numel(name, tensor.shape())) * sizeof(U));
        detail::for_each_row(tensor.shape(), tensor.strides(), [&](index_t off, index_t row) {
            std::memcpy(bytes.data() + row * cols * static_cast<index_t>(sizeof(U)),
                        static_cast<const void*>(tensor.data() + off), static_cast<std::size_t>(cols) * sizeof(U));
        });
        insert(std::move(name), dt, to_vector(tensor.shape()), std::move(bytes));
    }

    /// Adds a copy of an owning tensor; the only way to add rank 0 besides add_scalar.
    template <class T, std::size_t R>
    void add(std::string name, const Tensor<T, R>& tensor) {
        constexpr SafetensorsDType dt = safetensors_dtype_of<T>();
        static_assert(sizeof(T) == dtype_size(dt));
        const auto n = static_cast<std::size_t>(checked_numel(name, tensor.shape()));
        std::vector<std::byte> bytes(n * sizeof(T));
        if (n) std::memcpy(bytes.data(), static_cast<const void*>(tensor.data()), n * sizeof(T));
        insert(std::move(name), dt, to_vector(tensor.shape()), std::move(bytes));
    }

    /// Adds a scalar (shape []).
    template <class T>
    void add_scalar(std::string name, T value) {
        constexpr SafetensorsDType dt = safetensors_dtype_of<T>();
        std::vector<std::byte> bytes(sizeof(T));
        std::memcpy(bytes.data(), static_cast<const void*>(&value), sizeof(T));
        insert(std::move(name), dt, {}, std::move(bytes));
    }

    /// Adds already-encoded little-endian bytes (e.g. a TensorRecord of a reader,
    /// to rewrite a file). ValueError if the size does not match shape and dtype.
    void add_raw(std::string name, SafetensorsDType dtype, std::vector<std::int64_t> shape,
                 std::span<const std::byte> bytes) {
        std::uint64_t need = dtype_size(dtype);
        bool ok = true;
        for (const std::int64_t e : shape)
            ok = ok && e >= 0 && !__builtin_mul_overflow(need, static_cast<std::uint64_t>(e), &need);
        RECBLOCKS_CHECK_VALUE(ok && need == bytes.size(), "SafetensorsWriter::add_raw: tensor \"", name, "\" has ",
                              bytes.size(), " bytes but shape ", detail::format_list(shape), " ", dtype_name(dtype),
                              " needs ", ok ? std::to_string(need) : std::string("an invalid size"));
        if (dtype == SafetensorsDType::boolean)
            for (std::size_t i = 0; i < bytes.size(); ++i)
                RECBLOCKS_CHECK_VALUE(std::to_integer<unsigned>(bytes[i]) <= 1, "SafetensorsWriter::add_raw: tensor \"",
                                      name, "\": BOOL element ", i, " is ", std::to_integer<unsigned>(bytes[i]),
                                      ", not 0 or 1");
        insert(std::move(name), dtype, std::move(shape), std::vector<std::byte>(bytes.begin(), bytes.end()));
    }

    /// Sets (or replaces) a "__metadata__" entry. ValueError if not valid UTF-8.
    void set_metadata(std::string key, std::string value) {
        check_utf8("set_metadata: key", key);
        check_utf8("set_metadata: value", value);
        metadata_[std::move(key)] = std::move(value);
    }

    [[nodiscard]] std::size_t size() const { return entries_.size(); }
    [[nodiscard]] bool contains(std::string_view name) const { return entries_.find(name) != entries_.end(); }

    /// The whole file in memory, exactly the bytes write() puts on disk.
    [[nodiscard]] std::vector<std::byte> serialize() const {
        const auto order = file_order();
        const std::string header = header_json(order);
        std::vector<std::byte> out(8 + header.size());
        put_length(out.data(), header.size());
        std::memcpy(out.data() + 8, header.data(), header.size());
        for (const auto* e : order) out.insert(out.end(), e->second.bytes.begin(), e->second.bytes.end());
        return out;
    }

    /// Writes the file to `path` atomically: a temporary file next to it
    /// ("<path>.tmp.<pid>.<n>"), fsync, rename over `path`, fsync of the
    /// directory. On failure the temporary file is removed, `path` keeps its
    /// old contents (or stays absent), and IoError names the path and the step.
    /// First removes the temporary files of `path` that killed writers left
    /// behind (detail::remove_orphaned_temp_files).
    void write(const std::filesystem::path& path) const {
        detail::remove_orphaned_temp_files(path);
        const auto order = file_order();
        const std::string header = header_json(order);
        std::byte length[8];
        put_length(length, header.size());

        const std::string target = path.string();
        const std::string temp = detail::concat(target, ".tmp.", ::getpid(), ".", detail::temp_file_counter++);
        int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0) {
            const int err = errno;
            throw IoError(detail::concat(target, ": cannot create the temporary file '", temp,
                                         "': ", detail::errno_text(err)));
        }
        // Every failure from here on removes the temporary file; `path` is untouched until the rename.
        const auto fail = [&](std::string_view verb, int err, std::string_view tail = "") {
            if (fd >= 0) ::close(fd);
            ::unlink(temp.c_str());
            throw IoError(detail::concat(target, ": cannot ", verb, " the temporary file '", temp, "'", tail, ": ",
                                         detail::errno_text(err)));
        };
        bool ok = detail::write_all(fd, length, sizeof length) && detail::write_all(fd, header.data(), header.size());
        for (std::size_t i = 0; ok && i < order.size(); ++i)
            ok = detail::write_all(fd, order[i]->second.bytes.data(), order[i]->second.bytes.size());
        if (!ok) fail("write", errno);
        if (::fsync(fd) != 0) fail("fsync", errno);
        const int closed = ::close(fd);
        const int close_err = errno;
        fd = -1;
        if (closed != 0) fail("close", close_err);
        std::error_code ec;
        std::filesystem::rename(temp, path, ec);
        if (ec) fail("rename", ec.value(), " over it");

        // The rename is durable only once the directory entry is on disk.
        const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int err = dfd < 0 ? errno : 0;
        if (dfd >= 0) {
            if (::fsync(dfd) != 0 && errno != EINVAL) err = errno;  // EINVAL: the filesystem cannot sync directories
            ::close(dfd);
        }
        if (err)
            throw IoError(detail::concat(target, ": written, but syncing its directory '", dir.string(),
                                         "' failed (the rename may not survive a crash): ", detail::errno_text(err)));
    }

private:
    struct Entry {
        SafetensorsDType dtype;
        std::vector<std::int64_t> shape;
        std::vector<std::byte> bytes;
    };
    using Map = std::map<std::string, Entry, std::less<>>;

    static void check_utf8(std::string_view what, std::string_view s) {
        RECBLOCKS_CHECK_VALUE(json::find_invalid_utf8(s) == std::string_view::npos, "SafetensorsWriter::", what,
                              " is not valid UTF-8 (byte ", json::find_invalid_utf8(s), ")");
    }

    template <std::size_t R>
    static std::int64_t checked_numel(const std::string& name, const Shape<R>& shape) {
        std::int64_t n = 1;
        for (std::size_t i = 0; i < R; ++i)
            RECBLOCKS_CHECK_SHAPE(shape[i] >= 0, "SafetensorsWriter::add: tensor \"", name, "\" has shape ", shape,
                                  " with a negative extent");
        for (std::size_t i = 0; i < R; ++i) n *= shape[i];
        return n;
    }

    template <std::size_t R>
    static std::vector<std::int64_t> to_vector(const Shape<R>& s) {
        return std::vector<std::int64_t>(s.extents.begin(), s.extents.end());
    }

    void insert(std::string name, SafetensorsDType dtype, std::vector<std::int64_t> shape,
                std::vector<std::byte> bytes) {
        RECBLOCKS_CHECK_VALUE(name != "__metadata__", "SafetensorsWriter::add: \"__metadata__\" is reserved for "
                                                      "the metadata, not a tensor name");
        check_utf8("add: tensor name", name);
        RECBLOCKS_CHECK_VALUE(!entries_.contains(name), "SafetensorsWriter::add: tensor \"", name,
                              "\" was already added");
        entries_.emplace(std::move(name), Entry{dtype, std::move(shape), std::move(bytes)});
    }

    /// Python's safetensors orders tensors by dtype, widest alignment first
    /// (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL: its Dtype enum,
    /// descending), then by name; so every tensor starts aligned to its element
    /// size. We follow it to write the same bytes.
    static int python_rank(SafetensorsDType t) {
        switch (t) {
            case SafetensorsDType::boolean: return 0;
            case SafetensorsDType::u8: return 1;
            case SafetensorsDType::i8: return 2;
            case SafetensorsDType::i16: return 3;
            case SafetensorsDType::f16: return 4;
            case SafetensorsDType::bf16: return 5;
            case SafetensorsDType::i32: return 6;
            case SafetensorsDType::f32: return 7;
            case SafetensorsDType::f64: return 8;
            case SafetensorsDType::i64: return 9;
        }
        return 0;
    }

    [[nodiscard]] std::vector<const Map::value_type*> file_order() const {
        std::vector<const Map::value_type*> order;
        order.reserve(entries_.size());
        for (const auto& e : entries_) order.push_back(&e);
        std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
            return python_rank(a->second.dtype) > python_rank(b->second.dtype);  // names stay sorted within a dtype
        });
        return order;
    }

    /// The header, padded with spaces so the data starts 8-byte aligned.
    /// Metadata keys are written sorted (Python writes them in hash order).
    [[nodiscard]] std::string header_json(const std::vector<const Map::value_type*>& order) const {
        std::string h = "{";
        if (!metadata_.empty()) {
            h += "\"__metadata__\":{";
            bool first = true;
            for (const auto& [k, v] : metadata_) {
                if (!first) h += ',';
                first = false;
                json::append_string(h, k);
                h += ':';
                json::append_string(h, v);
            }
            h += '}';
        }
        std::int64_t offset = 0;
        for (const auto* e : order) {
            if (h.size() > 1) h += ',';
            json::append_string(h, e->first);
            h += ":{\"dtype\":\"";
            h += dtype_name(e->second.dtype);
            h += "\",\"shape\":[";
            for (std::size_t i = 0; i < e->second.shape.size(); ++i) {
                if (i) h += ',';
                json::append_int(h, e->second.shape[i]);
            }
            h += "],\"data_offsets\":[";
            json::append_int(h, offset);
            h += ',';
            offset += static_cast<std::int64_t>(e->second.bytes.size());
            json::append_int(h, offset);
            h += "]}";
        }
        h += '}';
        h.append((8 - h.size() % 8) % 8, ' ');
        return h;
    }

    static void put_length(std::byte* dst, std::uint64_t n) { std::memcpy(dst, &n, 8); }

    Map entries_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace io
RECBLOCKS_NAMESPACE_END
