#pragma once
// The error hierarchy. Every message starts with a stable id in brackets
// ("[recblocks.shape] ...") so callers and logs can match on it, and says
// what was found next to what was expected.
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "recblocks/version.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Base of every exception recblocks throws. `id()` is stable across versions.
class Error : public std::runtime_error {
public:
    Error(std::string_view id, const std::string& message)
        : std::runtime_error("[" + std::string(id) + "] " + message), id_(id) {}
    /// Stable identifier such as "recblocks.shape".
    [[nodiscard]] const std::string& id() const noexcept { return id_; }

private:
    std::string id_;
};

/// A tensor's shape (rank or extent) does not match what the operation needs.
class ShapeError : public Error {
public:
    static constexpr std::string_view kId = "recblocks.shape";
    explicit ShapeError(const std::string& m) : Error(kId, m) {}
};

/// An index or id lies outside its valid range.
class IndexError : public Error {
public:
    static constexpr std::string_view kId = "recblocks.index";
    explicit IndexError(const std::string& m) : Error(kId, m) {}
};

/// A value is invalid: NaN/Inf where finite numbers are required, a bad
/// hyper-parameter, an empty input.
class ValueError : public Error {
public:
    static constexpr std::string_view kId = "recblocks.value";
    explicit ValueError(const std::string& m) : Error(kId, m) {}
};

/// A file or buffer is malformed or truncated.
class FormatError : public Error {
public:
    static constexpr std::string_view kId = "recblocks.format";
    explicit FormatError(const std::string& m) : Error(kId, m) {}
};

/// An operating-system level I/O failure (open, write, rename).
class IoError : public Error {
public:
    static constexpr std::string_view kId = "recblocks.io";
    explicit IoError(const std::string& m) : Error(kId, m) {}
};

/// A backend cannot run the request: no device, a CUDA/cuBLAS failure, an ISA
/// the CPU does not have.
class BackendError : public Error {
public:
    static constexpr std::string_view kId = "recblocks.backend";
    explicit BackendError(const std::string& m) : Error(kId, m) {}
};

namespace detail {
/// Concatenates streamable parts into one message.
template <class... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    return os.str();
}
}  // namespace detail

RECBLOCKS_NAMESPACE_END
