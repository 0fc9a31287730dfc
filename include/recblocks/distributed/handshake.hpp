#pragma once
// The configuration handshake at the start of a data-parallel job: every rank
// states the same named values (model configuration, data-set size and
// contents, seed, global batch, ...) as 64-bit numbers or hashes; they are
// gathered on every rank and compared with rank 0's. A mismatch is a
// ValueError naming the field and the ranks, thrown on EVERY rank (all ranks
// see all values), so the job ends cleanly instead of training replicas that
// silently diverge.
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/distributed/communicator.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace distributed {

struct HandshakeField {
    std::string name;
    std::uint64_t value = 0;
};

/// FNV-1a over bytes, continuing from `h` (to hash several pieces in sequence).
inline std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
inline std::uint64_t hash_string(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) {
    return hash_bytes(s.data(), s.size(), h);
}
/// The bits of a double, so that 0.1 and 0.1 + 1e-17 differ.
inline std::uint64_t double_bits(double v) {
    std::uint64_t u = 0;
    std::memcpy(&u, &v, sizeof u);
    return u;
}

/// Compares every rank's values (`all`: ranks × fields, rank after rank) with rank 0's; throws
/// ValueError naming the first field that differs. Every rank calls it with the same `all`.
inline void check_handshake(std::span<const HandshakeField> fields, std::span<const std::uint64_t> all, int ranks) {
    const std::size_t nf = fields.size();
    RECBLOCKS_CHECK_SHAPE(all.size() == nf * static_cast<std::size_t>(ranks), "distributed::check_handshake: ",
                          all.size(), " values for ", ranks, " ranks of ", nf, " fields");
    for (std::size_t f = 0; f < nf; ++f)
        for (int r = 1; r < ranks; ++r) {
            const std::uint64_t v0 = all[f], vr = all[static_cast<std::size_t>(r) * nf + f];
            RECBLOCKS_CHECK_VALUE(v0 == vr, "distributed handshake: '", fields[f].name,
                                  "' differs across ranks: rank 0 has ", v0, ", rank ", r, " has ", vr,
                                  " (every rank must run the same configuration on the same data)");
        }
}

/// Gathers and compares the fields on every rank (a collective). The field names themselves
/// are compared first, so ranks built from different code also fail with a clear message.
template <Communicator Comm>
void handshake(Comm& comm, std::span<const HandshakeField> fields) {
    std::vector<HandshakeField> all_fields;
    all_fields.reserve(fields.size() + 1);
    std::uint64_t names = hash_string("recblocks handshake");
    for (const auto& f : fields) names = hash_string(f.name, hash_string("|", names));
    all_fields.push_back({"the list of handshake fields (" + std::to_string(fields.size()) + ")", names});
    all_fields.insert(all_fields.end(), fields.begin(), fields.end());
    // The count first: a rank with more fields would otherwise overrun the gather.
    const std::uint64_t count = all_fields.size();
    std::vector<std::uint64_t> counts(static_cast<std::size_t>(comm.size()));
    comm.allgather(std::span<const std::uint64_t>(&count, 1), std::span<std::uint64_t>(counts));
    const HandshakeField count_field{"the number of handshake fields", 0};
    check_handshake(std::span<const HandshakeField>(&count_field, 1), counts, comm.size());
    std::vector<std::uint64_t> mine(all_fields.size()), all(all_fields.size() * static_cast<std::size_t>(comm.size()));
    for (std::size_t i = 0; i < mine.size(); ++i) mine[i] = all_fields[i].value;
    comm.allgather(std::span<const std::uint64_t>(mine), std::span<std::uint64_t>(all));
    check_handshake(all_fields, all, comm.size());
}

}  // namespace distributed
RECBLOCKS_NAMESPACE_END
