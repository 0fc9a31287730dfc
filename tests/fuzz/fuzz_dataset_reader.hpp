#pragma once
// The body shared by the dataset readers' harnesses (user-item, MovieLens,
// S3-Rec sequences): read the input with `read`, check what every reader
// promises (dense item ids 1..N, N no more than the interactions), then do what
// a program does next (leave-one-out split, the evaluation preconditions of
// both protocols). A recblocks::Error is a refusal; anything else aborts.
#include <cstdlib>

#include "fuzz_support.hpp"
#include "recblocks/data/leave_one_out.hpp"
#include "recblocks/data/sequence_dataset.hpp"
#include "recblocks/eval/next_item_evaluation.hpp"

namespace rbfuzz {

template <class Read>
int fuzz_dataset_reader(const std::uint8_t* data, std::size_t size, const char* name, Read&& read) {
    const std::string& path = input_file(data, size, name);
    try {
        const auto d = read(path);
        if (d.num_items() < 1 || static_cast<std::size_t>(d.num_items()) > d.num_interactions()) std::abort();
        for (const auto& s : d.sequences)
            for (const auto it : s)
                if (it < 1 || it > d.num_items()) std::abort();
        const auto split = rb::data::leave_one_out(d);
        rb::eval::NextItemEvalOptions opt;
        for (const auto p : {rb::eval::Protocol::sampled, rb::eval::Protocol::full}) {
            opt.protocol = p;
            try {
                rb::eval::check_evaluation(split, d.num_items(), opt);
            } catch (const rb::Error&) {
            }
        }
    } catch (const rb::Error&) {
    }
    return 0;
}

}  // namespace rbfuzz
