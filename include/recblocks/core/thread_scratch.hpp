#pragma once
// Scratch that lives as long as the calling thread, one buffer per (T, Tag),
// so repeated calls do not allocate. It only grows.
#include <cstddef>
#include <vector>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// At least n elements of T owned by this thread (contents unspecified).
template <class T, class Tag = void>
std::vector<T>& thread_scratch(std::size_t n) {
    thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf;
}

RECBLOCKS_NAMESPACE_END
