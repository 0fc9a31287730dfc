// libFuzzer harness: data::read_user_item_file, then what a program does next
// (leave-one-out split, the evaluation preconditions of both protocols).
#include "fuzz_support.hpp"
#include "recblocks/data/leave_one_out.hpp"
#include "recblocks/data/sequence_dataset.hpp"
#include "recblocks/eval/next_item_evaluation.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace rb = recblocks;
    const std::string& path = rbfuzz::input_file(data, size, "user_item");
    try {
        const auto d = rb::data::read_user_item_file(path);
        // Dense ids: every item id in 1..N, N no more than the interactions.
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
