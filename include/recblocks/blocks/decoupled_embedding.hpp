#pragma once
// DARE's decoupled embeddings: one id space, two tables.
//
//   attention table       [N, d_a]   scores which past behaviours matter for a target
//   representation table  [N, d_r]   what a behaviour (or the target) means to the head
//
// d_a and d_r are chosen independently (a narrow attention table makes the
// search stage over long histories cheaper). Both tables are indexed by the
// same ids and share one validation: an id outside [0, N) raises IndexError
// naming the id and its position before any row is read or written.
//
// Storage S is float, double or bf16. Math is float for bf16 storage (rows are
// widened on gather) and S otherwise; gradients are always Math, kept in
// grads() for float/double storage (a bf16 table is for serving: train in f32,
// then convert with to_bf16()).
//
// Memory is where the tables and gradients live (host by default, CudaMemory
// on backend::Cuda; bf16 storage is host only). Ids come from the data
// pipeline in host memory: gather(be, ...) and scatter_add_grad(be, ...) check
// them there and, for tables off the host, copy them once per call; the rows
// move by ops::gather_rows / ops::scatter_add_rows. The overloads without a
// backend are host loops over host tables.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/backend/memory.hpp"
#include "recblocks/ops/embedding.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

/// Which of the two tables.
enum class EmbeddingTable : std::uint8_t { attention, representation };

template <class S, MemorySpace Memory = HostMemory>
class DecoupledEmbedding {
public:
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double> || std::is_same_v<S, bf16>,
                  "DecoupledEmbedding: storage must be float, double or bf16");
    static_assert(Memory::host_accessible || !std::is_same_v<S, bf16>,
                  "DecoupledEmbedding: bf16 storage is for host serving; device tables are float or double");
    using Math = std::conditional_t<std::is_same_v<S, bf16>, float, S>;
    static constexpr bool kTrainable = !std::is_same_v<S, bf16>;

    struct Config {
        index_t num_ids = 0;             ///< N
        index_t attention_dim = 0;       ///< d_a
        index_t representation_dim = 0;  ///< d_r
        double init_std = 0.05;          ///< rows start as N(0, init_std^2)
    };
    using Table = EmbeddingTable;

    DecoupledEmbedding(Config cfg, const Rng& rng, Memory memory = {})
        : cfg_(cfg), att_(memory), repr_(memory), att_grad_(memory), repr_grad_(memory), ids_(memory) {
        RECBLOCKS_CHECK_VALUE(cfg.num_ids >= 1 && cfg.attention_dim >= 1 && cfg.representation_dim >= 1,
                              "DecoupledEmbedding: num_ids, attention_dim and representation_dim must be >= 1, got ",
                              cfg.num_ids, ", ", cfg.attention_dim, " and ", cfg.representation_dim);
        RECBLOCKS_CHECK_VALUE(cfg.init_std >= 0, "DecoupledEmbedding: init_std must be >= 0, got ", cfg.init_std);
        att_.resize(Shape<2>{{cfg.num_ids, cfg.attention_dim}});
        repr_.resize(Shape<2>{{cfg.num_ids, cfg.representation_dim}});
        // Drawn on the host, copied once.
        const Rng ra = rng.substream(0), rr = rng.substream(1);
        const auto draw = [&](const Rng& r, Matrix<S, Memory>& dst) {
            Matrix<S> host(dst.shape());
            for (index_t i = 0; i < host.numel(); ++i)
                host.data()[i] = S(static_cast<Math>(cfg.init_std * r.normal(std::uint64_t(i))));
            copy_tensor(host, dst);
        };
        draw(ra, att_);
        draw(rr, repr_);
        if constexpr (kTrainable) {
            att_grad_.resize(att_.shape());
            repr_grad_.resize(repr_.shape());
        }
    }

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] index_t num_ids() const { return cfg_.num_ids; }
    [[nodiscard]] index_t dim(Table t) const { return t == Table::attention ? cfg_.attention_dim : cfg_.representation_dim; }
    [[nodiscard]] Matrix<S, Memory>& table(Table t) { return t == Table::attention ? att_ : repr_; }
    [[nodiscard]] const Matrix<S, Memory>& table(Table t) const { return t == Table::attention ? att_ : repr_; }
    /// Gradient tables (float/double storage only), same shapes as the tables.
    [[nodiscard]] Matrix<Math, Memory>& grad(Table t)
        requires kTrainable
    {
        return t == Table::attention ? att_grad_ : repr_grad_;
    }

    /// Appends "attention.weight" and "representation.weight" (ParamKind::embedding).
    void append_params(std::string_view prefix, ParamList<Math, Memory>& out)
        requires kTrainable
    {
        append_param(out, prefix, "attention.weight", att_, att_grad_, ParamKind::embedding);
        append_param(out, prefix, "representation.weight", repr_, repr_grad_, ParamKind::embedding);
    }
    void zero_grads()
        requires kTrainable
    {
        att_grad_.zero();
        repr_grad_.zero();
    }

    /// IndexError unless every id is in [0, N); names the op, the position and the id.
    void check_ids(std::string_view op, const row_id_t* ids, index_t n) const {
        for (index_t i = 0; i < n; ++i)
            RECBLOCKS_CHECK_INDEX(ids[i] >= 0 && ids[i] < cfg_.num_ids, op, ": id ", ids[i], " at position ", i,
                                  " is out of range for ", cfg_.num_ids, " ids");
    }

    /// out [n, d] (Memory) = rows ids (host memory) of the table, on a backend computing in Memory.
    template <class Be>
        requires(kTrainable && std::is_same_v<memory_space_t<Be>, Memory>)
    void gather(const Be& be, Table t, VectorView<const row_id_t> ids, MatrixView<Math> out) const {
        const auto& tab = table(t);
        RECBLOCKS_CHECK_SHAPE(out.rows() == ids.size() && out.cols() == tab.extent(1),
                              "DecoupledEmbedding::gather: out is ", out.shape(), " but expected [", ids.size(), ", ",
                              tab.extent(1), "]");
        ops::gather_rows(be, tab.cview(), staged("DecoupledEmbedding::gather", ids), out);
    }

    /// grad(t) row ids[i] += src row i (src in Memory, ids in host memory),
    /// repeated ids accumulating in increasing i, on a backend computing in Memory.
    template <class Be>
        requires(kTrainable && std::is_same_v<memory_space_t<Be>, Memory>)
    void scatter_add_grad(const Be& be, Table t, VectorView<const row_id_t> ids, MatrixView<const Math> src) {
        auto& g = grad(t);
        RECBLOCKS_CHECK_SHAPE(src.rows() == ids.size() && src.cols() == g.extent(1),
                              "DecoupledEmbedding::scatter_add_grad: src is ", src.shape(), " but expected [",
                              ids.size(), ", ", g.extent(1), "]");
        ops::scatter_add_rows(be, src, staged("DecoupledEmbedding::scatter_add_grad", ids), g.view());
    }

    /// out [n, d] = rows ids of the table (widened to Math for bf16 storage); host tables.
    void gather(Table t, VectorView<const row_id_t> ids, MatrixView<Math> out) const
        requires(Memory::host_accessible)
    {
        const Matrix<S, Memory>& tab = table(t);
        const index_t d = tab.extent(1);
        RECBLOCKS_CHECK_SHAPE(out.rows() == ids.size() && out.cols() == d, "DecoupledEmbedding::gather: out is ",
                              out.shape(), " but expected [", ids.size(), ", ", d, "]");
        check_ids("DecoupledEmbedding::gather", ids.data(), ids.size());
        for (index_t i = 0; i < ids.size(); ++i) {
            const S* row = tab.data() + ids(i) * d;
            for (index_t c = 0; c < d; ++c) out(i, c) = static_cast<Math>(row[c]);
        }
    }

    /// grad(t) row ids[i] += src row i (repeated ids accumulate in increasing i); host tables.
    void scatter_add_grad(Table t, VectorView<const row_id_t> ids, MatrixView<const Math> src)
        requires(kTrainable && Memory::host_accessible)
    {
        Matrix<Math, Memory>& g = grad(t);
        const index_t d = g.extent(1);
        RECBLOCKS_CHECK_SHAPE(src.rows() == ids.size() && src.cols() == d, "DecoupledEmbedding::scatter_add_grad: src is ",
                              src.shape(), " but expected [", ids.size(), ", ", d, "]");
        check_ids("DecoupledEmbedding::scatter_add_grad", ids.data(), ids.size());
        for (index_t i = 0; i < ids.size(); ++i) {
            Math* row = g.data() + ids(i) * d;
            for (index_t c = 0; c < d; ++c) row[c] += src(i, c);
        }
    }

    /// A bf16-storage copy of these tables (round to nearest even), for serving.
    [[nodiscard]] DecoupledEmbedding<bf16> to_bf16() const
        requires(std::is_same_v<S, float> && Memory::host_accessible)
    {
        DecoupledEmbedding<bf16> out(typename DecoupledEmbedding<bf16>::Config{cfg_.num_ids, cfg_.attention_dim, cfg_.representation_dim, 0.0}, Rng(0));
        for (Table t : {Table::attention, Table::representation}) {
            const Matrix<S, Memory>& src = table(t);
            Matrix<bf16>& dst = out.table(t);
            for (index_t i = 0; i < src.numel(); ++i) dst.data()[i] = bf16(src.data()[i]);
        }
        return out;
    }

private:
    /// Host ids as the backend reads them: checked here; for tables off the
    /// host, copied into the block's memory (one copy per call).
    VectorView<const row_id_t> staged(std::string_view op, VectorView<const row_id_t> ids) const {
        check_ids(op, ids.data(), ids.size());
        if constexpr (Memory::host_accessible) {
            return ids;
        } else {
            if (ids_.numel() != ids.size()) ids_.resize(Shape<1>{{ids.size()}});
            ids_.memory().upload(ids_.data(), ids.data(), static_cast<std::size_t>(ids.size()) * sizeof(row_id_t));
            return ids_.cview();
        }
    }

    Config cfg_;
    Matrix<S, Memory> att_, repr_;
    Matrix<Math, Memory> att_grad_, repr_grad_;
    mutable Vector<row_id_t, Memory> ids_;  // staged ids (device memory only)
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
