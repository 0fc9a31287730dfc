// libFuzzer harness: io::SafetensorsReader on arbitrary bytes. Whatever the
// reader accepts must load tensor by tensor, and must survive a rewrite by
// SafetensorsWriter byte for byte (the reader's checks and the writer's agree).
#include <cstdlib>
#include <vector>

#include "fuzz_support.hpp"
#include "recblocks/io/safetensors.hpp"

namespace {
namespace rb = recblocks;
using rb::io::SafetensorsReader;

template <std::size_t R>
void load_all(const SafetensorsReader& r, const rb::io::TensorRecord& rec) {
    if (rb::io::is_floating(rec.dtype)) {
        (void)r.load<float, R>(rec.name);
        (void)r.load<double, R>(rec.name);
    } else {
        try {
            (void)r.load<std::int64_t, R>(rec.name);
        } catch (const rb::Error&) {  // an unsigned value beyond int64 is refused by name; that is fine
        }
        try {
            (void)r.load<std::int8_t, R>(rec.name);
        } catch (const rb::Error&) {
        }
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::byte> bytes(size);
    if (size) std::memcpy(bytes.data(), data, size);
    std::optional<SafetensorsReader> reader;
    try {
        reader.emplace(SafetensorsReader::from_bytes(std::move(bytes), "fuzz"));
    } catch (const rb::Error&) {
        return 0;  // refused, with a named error
    }
    const SafetensorsReader& r = *reader;
    rb::io::SafetensorsWriter w;
    for (const auto& name : r.names()) {
        const auto& rec = r.record(name);
        switch (rec.shape.size()) {
            case 0: load_all<0>(r, rec); break;
            case 1: load_all<1>(r, rec); break;
            case 2: load_all<2>(r, rec); break;
            case 3: load_all<3>(r, rec); break;
            case 4: load_all<4>(r, rec); break;
            default: break;
        }
        w.add_raw(rec.name, rec.dtype, rec.shape, rec.bytes);  // must not throw for an accepted file
    }
    for (const auto& [k, v] : r.metadata()) w.set_metadata(k, v);
    const auto again = SafetensorsReader::from_bytes(w.serialize(), "rewritten");
    if (again.names() != r.names() || again.metadata() != r.metadata()) std::abort();
    for (const auto& name : r.names()) {
        const auto &a = r.record(name), &b = again.record(name);
        if (a.dtype != b.dtype || a.shape != b.shape || a.bytes.size() != b.bytes.size() ||
            (a.bytes.size() && std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) != 0))
            std::abort();
    }
    return 0;
}
