#pragma once
// Library version and the inline ABI namespace every public name lives in.

#define RECBLOCKS_VERSION_MAJOR 0
#define RECBLOCKS_VERSION_MINOR 1
#define RECBLOCKS_VERSION_PATCH 0

// An inline namespace keeps objects built against different, ABI-incompatible
// versions from linking silently against each other (the {fmt} / nlohmann way).
#define RECBLOCKS_NAMESPACE_BEGIN namespace recblocks { inline namespace v0 {
#define RECBLOCKS_NAMESPACE_END } }
