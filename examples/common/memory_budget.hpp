#pragma once
// What the sizes a user gives the programs (--maxlen, --hidden_units,
// --batch_size, --num_heads, --num_blocks, and the catalogue the data brings)
// will allocate, estimated in double before anything is allocated, against
// this machine's physical memory. Without it `--maxlen 4000000000` ended in a
// bare std::bad_alloc (or an integer overflow in L × L) deep inside a model.
//
// The estimate is deliberately generous (every activation a step keeps, for
// every block, plus the evaluation's score rows); it only has to tell "fits
// comfortably" from "cannot possibly fit", and to name the flags to lower.
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

struct ModelSizes {
    long long items = 0;         ///< N (the catalogue, from the data set)
    long long maxlen = 0;        ///< L
    long long dim = 0;           ///< D
    long long heads = 1;         ///< H
    long long blocks = 1;
    long long batch = 1;         ///< training batch B
    long long eval_batch = 256;  ///< rows scored at once by the evaluation
    /// Rows of a training step scored against the whole catalogue (BERT4Rec's
    /// softmax over the masked positions: about B · L · mask_prob); 0 for SASRec.
    double catalogue_rows = 0;
};

/// The memory this process may use, in bytes (0 if unknown): the physical
/// memory, or a cgroup v2 limit below it (a container's memory.max).
inline double physical_memory_bytes() {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    double bytes = pages > 0 && page > 0 ? double(pages) * double(page) : 0.0;
    if (std::FILE* f = std::fopen("/sys/fs/cgroup/memory.max", "r")) {
        double limit = 0;
        if (std::fscanf(f, "%lf", &limit) == 1 && limit > 0 && (bytes == 0 || limit < bytes)) bytes = limit;
        std::fclose(f);
    }
    return bytes;
}

/// Throws std::invalid_argument naming the largest part and its flags when the
/// estimate exceeds `limit_bytes` (default: the physical memory).
inline void check_memory_budget(const ModelSizes& s, double limit_bytes = physical_memory_bytes()) {
    const double f = 4.0;  // bytes per float
    const double n = double(s.items) + 2, l = double(s.maxlen), d = double(s.dim), h = double(s.heads),
                 nb = double(s.blocks), b = double(s.batch), e = double(s.eval_batch);
    struct Part {
        const char* what;
        std::string flags;
        double bytes;
    };
    const std::vector<Part> parts = {
        // value, gradient and Adam's two moments of the item and position tables and the blocks' weights
        {"parameters", "--hidden_units, the catalogue (" + std::to_string(s.items) + " items) and --maxlen",
         4 * f * ((n + l + 1) * d + nb * 12 * d * d)},
        // a training step keeps ~16 [B, L, D] tensors per block and the attention weights [B, H, L, L] twice
        {"training activations", "--batch_size, --maxlen, --hidden_units and --num_blocks", f * b * l * d * (16 * nb + 8)},
        {"training attention weights", "--batch_size, --num_heads, --maxlen (squared) and --num_blocks",
         f * 2 * b * h * l * l * nb},
        {"training scores over the catalogue", "--batch_size, --maxlen and the catalogue", f * 2 * s.catalogue_rows * n},
        {"evaluation", "--maxlen, --hidden_units and the catalogue", f * e * (n + l * d * (16 * nb + 8) + 2 * h * l * l * nb)},
    };
    double total = 0;
    const Part* largest = &parts[0];
    for (const auto& p : parts) {
        total += p.bytes;
        if (p.bytes > largest->bytes) largest = &p;
    }
    if (limit_bytes <= 0 || total <= limit_bytes) return;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "these sizes need about %.3g GiB but this machine has %.3g GiB; the largest part is the %s "
                  "(%.3g GiB), set by %s: lower them",
                  total / 1073741824.0, limit_bytes / 1073741824.0, largest->what, largest->bytes / 1073741824.0,
                  largest->flags.c_str());
    throw std::invalid_argument(buf);
}

}  // namespace examples
