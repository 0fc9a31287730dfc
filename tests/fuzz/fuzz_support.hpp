#pragma once
// What the libFuzzer harnesses of tests/fuzz/ share (docs/fuzzing.md):
//
//   * the rule they check: a loader may refuse an input only with a
//     recblocks::Error (FormatError, ShapeError, ...). Any other exception
//     (std::bad_alloc, std::out_of_range, ...) escapes the harness and aborts,
//     which libFuzzer reports as a crash; memory errors and undefined behaviour
//     are reported by ASan and UBSan; an allocation above -malloc_limit_mb as
//     an out-of-memory.
//   * the input as a file: the loaders take paths, so each input is written to
//     one file per process (in /dev/shm when it exists) before the call.
//   * the tiny models whose parameters the checkpoint and PyTorch loaders fill:
//     the seed generator (make_fuzz_seeds.cpp) saves the same models.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "recblocks/io/pytorch_import.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/optim/adam.hpp"

namespace rbfuzz {

namespace rb = recblocks;

/// This process's input file, removed when the process exits normally (a crash
/// leaves it, beside the artifact libFuzzer writes).
struct InputFile {
    std::string path;
    ~InputFile() { ::unlink(path.c_str()); }
};

/// Writes the input to this process's file and returns its path.
inline const std::string& input_file(const std::uint8_t* data, std::size_t size, const char* name) {
    static const InputFile file{[&] {
        const char* dir = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
        return std::string(dir) + "/recblocks_fuzz_" + name + "_" + std::to_string(::getpid());
    }()};
    const std::string& path = file.path;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) std::abort();
    for (std::size_t done = 0; done < size;) {
        const ssize_t w = ::write(fd, data + done, size - done);
        if (w <= 0) std::abort();
        done += static_cast<std::size_t>(w);
    }
    ::close(fd);
    return path;
}

/// SASRec with every kind of parameter, small enough to load thousands of times a second.
inline rb::models::SASRecConfig tiny_sasrec_config() {
    rb::models::SASRecConfig c;
    c.num_items = 5;
    c.max_len = 3;
    c.d_model = 4;
    c.num_blocks = 1;
    c.heads = 1;
    return c;
}

inline rb::models::BERT4RecConfig tiny_bert4rec_config() {
    rb::models::BERT4RecConfig c;
    c.num_items = 5;
    c.max_len = 3;
    c.d_model = 4;
    c.num_blocks = 1;
    c.heads = 1;
    return c;
}

struct TinyModels {
    rb::models::SASRec<float> sasrec{tiny_sasrec_config(), rb::Rng(1)};
    rb::optim::Adam<float> adam{{}, sasrec.params()};
    rb::models::BERT4Rec<float> bert4rec{tiny_bert4rec_config(), rb::Rng(2)};
};

/// Writes `model`'s parameters as a PyTorch state_dict names them: each under `map`'s name.
template <class Model>
void write_pytorch_state(const std::filesystem::path& p, const Model& model, const rb::io::NameMap& map) {
    rb::io::SafetensorsWriter w;
    for (const auto& prm : model.params()) rb::io::add_param(w, rb::io::map_name(map, prm.name), prm, prm.value);
    w.write(p);
}

}  // namespace rbfuzz
