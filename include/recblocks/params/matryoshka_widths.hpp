#pragma once
// The nested widths of a Matryoshka representation (Kusupati et al., 2022):
// m_1 < m_2 < ... < m_K = D, with a loss weight c_i > 0 per width (default 1).
// A width-m_i model uses the prefix [0, m_i) of every vector; slice i is the
// block of columns [m_{i-1}, m_i) (m_0 = 0) that width i adds to width i - 1.
// In params/, below blocks/: the Matryoshka blocks, the loss and the evaluation
// all share this description of how parameters nest.
#include <cmath>
#include <string_view>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN

class MatryoshkaWidths {
public:
    /// widths strictly increasing, >= 1, the last equal to `full_width` (D);
    /// weights empty (all 1) or one finite c_i > 0 per width. ValueError otherwise.
    MatryoshkaWidths(std::vector<index_t> widths, index_t full_width, std::vector<double> weights = {})
        : widths_(std::move(widths)), weights_(std::move(weights)) {
        constexpr std::string_view op = "MatryoshkaWidths";
        RECBLOCKS_CHECK_VALUE(!widths_.empty(), op, ": the list of widths is empty (need e.g. 8,16,32,", full_width, ")");
        for (std::size_t i = 0; i < widths_.size(); ++i) {
            RECBLOCKS_CHECK_VALUE(widths_[i] >= 1, op, ": width ", i, " is ", widths_[i], " (must be >= 1)");
            RECBLOCKS_CHECK_VALUE(widths_[i] <= full_width, op, ": width ", i, " is ", widths_[i],
                                  ", larger than the full width D = ", full_width);
            RECBLOCKS_CHECK_VALUE(i == 0 || widths_[i] > widths_[i - 1], op, ": widths must be strictly increasing, but width ",
                                  i, " is ", widths_[i], " after ", widths_[i == 0 ? 0 : i - 1]);
        }
        RECBLOCKS_CHECK_VALUE(widths_.back() == full_width, op, ": the last width is ", widths_.back(),
                              " but must be the full width D = ", full_width);
        if (weights_.empty()) weights_.assign(widths_.size(), 1.0);
        RECBLOCKS_CHECK_VALUE(weights_.size() == widths_.size(), op, ": ", weights_.size(), " weights for ",
                              widths_.size(), " widths");
        for (std::size_t i = 0; i < weights_.size(); ++i)
            RECBLOCKS_CHECK_VALUE(std::isfinite(weights_[i]) && weights_[i] > 0, op, ": weight ", i, " (width ",
                                  widths_[i], ") is ", weights_[i], " (must be finite and > 0)");
    }

    /// Parses "8,16,32,64" (weights all 1).
    static MatryoshkaWidths parse(std::string_view list, index_t full_width) {
        std::vector<index_t> w;
        std::size_t i = 0;
        while (i < list.size()) {
            std::size_t j = list.find(',', i);
            if (j == std::string_view::npos) j = list.size();
            const std::string_view tok = list.substr(i, j - i);
            index_t v = 0;
            bool ok = !tok.empty();
            for (const char ch : tok) {
                ok = ok && ch >= '0' && ch <= '9' && v < (index_t{1} << 40);
                v = v * 10 + (ch - '0');
            }
            RECBLOCKS_CHECK_VALUE(ok, "MatryoshkaWidths::parse: '", tok, "' in '", list, "' is not a positive integer");
            w.push_back(v);
            i = j + 1;
        }
        return MatryoshkaWidths(std::move(w), full_width);
    }

    [[nodiscard]] index_t size() const { return static_cast<index_t>(widths_.size()); }
    [[nodiscard]] index_t full() const { return widths_.back(); }
    [[nodiscard]] index_t width(index_t i) const { return widths_[static_cast<std::size_t>(i)]; }
    /// First column of slice i (m_{i-1}, or 0).
    [[nodiscard]] index_t slice_begin(index_t i) const { return i == 0 ? 0 : widths_[static_cast<std::size_t>(i - 1)]; }
    [[nodiscard]] double weight(index_t i) const { return weights_[static_cast<std::size_t>(i)]; }
    [[nodiscard]] const std::vector<index_t>& widths() const { return widths_; }
    [[nodiscard]] const std::vector<double>& weights() const { return weights_; }
    /// The index of width m; ValueError if m is not one of the widths.
    [[nodiscard]] index_t index_of(index_t m) const {
        for (std::size_t i = 0; i < widths_.size(); ++i)
            if (widths_[i] == m) return static_cast<index_t>(i);
        RECBLOCKS_CHECK_VALUE(false, "MatryoshkaWidths: ", m, " is not one of the nested widths");
        return -1;
    }

private:
    std::vector<index_t> widths_;
    std::vector<double> weights_;
};

RECBLOCKS_NAMESPACE_END
