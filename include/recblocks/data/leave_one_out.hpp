#pragma once
// Leave-one-out split (the SASRec / BERT4Rec protocol): per user, the last
// item is the test item, the second-to-last the validation item, the rest is
// training data. Users with fewer than 3 interactions keep everything for
// training and have no validation or test item.
#include <vector>

#include "recblocks/data/sequence_dataset.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

struct LeaveOneOut {
    std::vector<std::vector<row_id_t>> train;  ///< per user, in time order
    std::vector<row_id_t> valid;               ///< per user; 0 = none
    std::vector<row_id_t> test;                ///< per user; 0 = none

    /// Users that have a test item (at least 3 interactions).
    [[nodiscard]] std::vector<index_t> evaluated_users() const {
        std::vector<index_t> out;
        for (index_t u = 0; u < static_cast<index_t>(test.size()); ++u)
            if (test[static_cast<std::size_t>(u)] != 0) out.push_back(u);
        return out;
    }
};

inline LeaveOneOut leave_one_out(const SequenceDataset& d) {
    LeaveOneOut s;
    s.train.reserve(d.sequences.size());
    for (const auto& seq : d.sequences) {
        if (seq.size() < 3) {
            s.train.push_back(seq);
            s.valid.push_back(0);
            s.test.push_back(0);
        } else {
            s.train.emplace_back(seq.begin(), seq.end() - 2);
            s.valid.push_back(seq[seq.size() - 2]);
            s.test.push_back(seq.back());
        }
    }
    return s;
}

}  // namespace data
RECBLOCKS_NAMESPACE_END
