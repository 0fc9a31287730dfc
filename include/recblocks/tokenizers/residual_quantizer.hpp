#pragma once
// Residual quantizer (RQ), FAISS's ResidualQuantizer contract: train(x), encode(x, codes),
// decode(codes, x_hat).
//
//   M levels of K codewords C_m [K, d];  r_0 = x,  c_m = argmin_k ||r_{m-1} - C_m[k]||²,
//   r_m = r_{m-1} - C_m[c_m],  x_hat = Σ_m C_m[c_m];  codes int32 [N, M], values in [0, K).
//
// Encoding is greedy (beam 1) or a beam search over levels keeping the B best partial
// encodings of each row (FAISS's max_beam_size): at level m every kept beam b of a row is
// extended by every codeword k with score ||r_b||² - 2 r_b·C_m[k] + ||C_m[k]||² and the B
// smallest of the B·K candidates survive (ties: lowest beam, then lowest code); the result is
// the best beam after level M. Rows are encoded in blocks of `block_rows`: one GEMM per level
// of the block's beam residuals [rows·B, d] against C_m (the norms ||C_m[k]||² are computed once
// at train / set_codebooks), all levels of a block while it is in cache, blocks spread over the
// backend's ThreadPool, scratch from a per-thread Workspace (no allocation once warm).
//
// Training is residual k-means per level (kmeans.hpp), optionally with beam search during
// training as FAISS does: level m is trained on the residuals of all train_beam_size beams kept
// after level m-1. Reconstruction MSE here is the mean over rows of ||x - x_hat||² (summed over
// dimensions; FAISS's convention in its benchmarks). Deterministic at a fixed seed for any
// thread count. Caveat: like FAISS, distances by expansion are computed in f32.
//
// Where things live: BasicResidualQuantizer<Memory> keeps its codebooks [M·K, d], their norms and
// all scratch in Memory (ResidualQuantizer: host memory; ResidualQuantizerOn<Be> for any backend,
// e.g. backend::Cuda); x and x_hat are views in Memory; codes are ids and live in host memory.
// Greedy training and encoding are backend calls per block (ops::gemm, ops::shifted_argmin_rows,
// then ops::gather_rows + ops::axpy for the residual update), each level's codes downloaded and
// uploaded again as row ids; decode is ops::gather_rows + ops::add. Each level's codebook norms
// are computed on the host (Reference backend, from a downloaded copy) and uploaded. The beam
// search (beam > 1, train_beam_size > 1) keeps a sorted list per row with ops::offer_smallest, a
// sequential host step: it runs only on a backend with ops::has_beam_selection on host memory
// (Reference, Cpu); elsewhere such a call throws ValueError. On the CPU the results are the bits
// of the host-only implementation this replaced.
//
// Errors: ValueError (bad config, NaN/Inf data, untrained use, N < K at training, beams on a
// backend without beam selection);
// ShapeError (dimension or code-matrix shape mismatch); IndexError (a code outside [0, K) in
// decode or set_codebooks' shapes).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/core/thread_scratch.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/tokenizers/kmeans.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

struct ResidualQuantizerConfig {
    index_t levels = 3;              ///< M
    index_t codebook_size = 256;     ///< K
    index_t beam_size = 1;           ///< default encoding beam (FAISS max_beam_size); 1 = greedy
    index_t train_beam_size = 1;     ///< beam kept while training (FAISS uses max_beam_size, default 5)
    KMeansConfig kmeans{};           ///< per-level k-means; its k is replaced by codebook_size
    index_t block_rows = 256;        ///< rows × beams per encoding block (per-thread scratch ~ this × (K + 2d) floats)

    void validate() const {
        RECBLOCKS_CHECK_VALUE(levels >= 1, "ResidualQuantizerConfig: levels must be >= 1, got ", levels);
        RECBLOCKS_CHECK_VALUE(codebook_size >= 1 && codebook_size <= (index_t{1} << 30),
                              "ResidualQuantizerConfig: codebook_size must be in [1, 2^30], got ", codebook_size);
        RECBLOCKS_CHECK_VALUE(beam_size >= 1 && train_beam_size >= 1,
                              "ResidualQuantizerConfig: beam sizes must be >= 1, got beam_size ", beam_size,
                              " and train_beam_size ", train_beam_size);
        RECBLOCKS_CHECK_VALUE(block_rows >= 1, "ResidualQuantizerConfig: block_rows must be >= 1, got ", block_rows);
        KMeansConfig k = kmeans;
        k.k = codebook_size;
        k.validate();
    }
};

struct ResidualQuantizerReport {
    std::vector<double> level_mse;                ///< training MSE after each level (best beam)
    std::vector<std::vector<double>> objective;   ///< k-means objective per iteration, per level
};

namespace detail {

struct RqEncodeTag {};

/// Per-thread host scratch arena (one per Tag) of the beam search, grown to
/// its high-water mark and then reused.
template <class Tag>
Workspace& thread_workspace() {
    thread_local Workspace ws;
    return ws;
}

/// One beam-search level for `rows` rows, single-threaded (call it from a pool task).
/// In:  res_in [rows·b_in, d], dist_in [rows·b_in] (= ||res||²), codes_in [rows·b_in, cstride] (levels < m valid).
/// Out: res_out [rows·b_out, d], dist_out, codes_out [rows·b_out, cstride] with levels <= m (beams best first).
/// g is scratch [rows·b_in, K]; sel_s / sel_i scratch of b_out entries.
template <class Be>
void rq_beam_step(const Be& be, MatrixView<const float> cb, const float* cnorm, index_t rows, index_t b_in,
                  index_t b_out, index_t d, const float* res_in, const float* dist_in, const std::int32_t* codes_in,
                  index_t m_in, index_t cstride, float* res_out, float* dist_out, std::int32_t* codes_out, float* g, float* sel_s,
                  index_t* sel_i) {
    const index_t k = cb.rows();
    ops::gemm(be, Trans::no, Trans::yes, 1.0f, matrix_view(res_in, rows * b_in, d), cb, 0.0f,
              matrix_view(g, rows * b_in, k));
    for (index_t r = 0; r < rows; ++r) {
        if (b_in == 1 && b_out == 1) {  // greedy
            float best;
            ops::shifted_argmin_rows(be, matrix_view(g + r * k, 1, k), vector_view(cnorm, k), vector_view(sel_i, 1),
                                     vector_view(&best, 1));
        } else {
            // The b_out smallest of b_in·K candidates, kept sorted (insertion; b_out is small).
            index_t filled = 0;
            for (index_t b = 0; b < b_in; ++b)
                filled = ops::offer_smallest(be, vector_view(g + (r * b_in + b) * k, k), vector_view(cnorm, k),
                                             dist_in[r * b_in + b], b * k, vector_view(sel_s, b_out),
                                             vector_view(sel_i, b_out), filled);
        }
        for (index_t o = 0; o < b_out; ++o) {
            const index_t b = sel_i[o] / k, j = sel_i[o] % k;
            const float* src = res_in + (r * b_in + b) * d;
            const float* c = cb.row(j);
            float* dst = res_out + (r * b_out + o) * d;
            for (index_t t = 0; t < d; ++t) dst[t] = src[t] - c[t];
            const std::int32_t* ci = codes_in + (r * b_in + b) * cstride;
            std::int32_t* co = codes_out + (r * b_out + o) * cstride;
            std::copy_n(ci, m_in, co);
            co[m_in] = static_cast<std::int32_t>(j);
        }
    }
    // The new residuals' squared norms in one call (a call per beam cost 10 % of a beam-5 encode).
    ops::squared_distances(be, matrix_view<const float>(res_out, rows * b_out, d), VectorView<const float>{},
                           vector_view(dist_out, rows * b_out));
}

struct RqGreedyTag {};
struct RqDecodeTag {};

}  // namespace detail

/// Residual quantizer with its codebooks (and scratch) in `Memory`
/// (ResidualQuantizer: host memory; ResidualQuantizerOn<Be>: where Be computes).
template <MemorySpace Memory = HostMemory>
class BasicResidualQuantizer {
public:
    explicit BasicResidualQuantizer(ResidualQuantizerConfig cfg, Memory memory = {})
        : cfg_(cfg), memory_(memory), codebooks_(memory), norms_(memory), res_(memory), dist_(memory),
          xh_(memory), arena_(memory) {
        cfg_.validate();
        cfg_.kmeans.k = cfg_.codebook_size;
    }

    [[nodiscard]] const ResidualQuantizerConfig& config() const { return cfg_; }
    [[nodiscard]] index_t levels() const { return cfg_.levels; }
    /// Codes per vector (the tokenizers::Quantizer contract): one per level.
    [[nodiscard]] index_t code_length() const { return cfg_.levels; }
    [[nodiscard]] index_t codebook_size() const { return cfg_.codebook_size; }
    [[nodiscard]] index_t dim() const { return dim_; }
    [[nodiscard]] bool trained() const { return dim_ > 0; }
    /// Codebook of level m, [K, d], in Memory.
    [[nodiscard]] MatrixView<const float> codebook(index_t m) const {
        RECBLOCKS_CHECK_INDEX(trained() && m >= 0 && m < cfg_.levels, "ResidualQuantizer::codebook: level ", m,
                              " of ", cfg_.levels, (trained() ? "" : " (not trained)"));
        return matrix_view<const float>(codebooks_.data() + m * cfg_.codebook_size * dim_, cfg_.codebook_size, dim_);
    }
    [[nodiscard]] const ResidualQuantizerReport& report() const { return report_; }

    /// Installs codebooks [M·K, d] (level m in rows [m·K, (m+1)·K)) from host
    /// memory, e.g. loaded from a file; they are copied into Memory.
    void set_codebooks(MatrixView<const float> all) {
        RECBLOCKS_CHECK_SHAPE(all.rows() == cfg_.levels * cfg_.codebook_size && all.cols() >= 1,
                              "ResidualQuantizer::set_codebooks: got ", all.shape(), ", expected [", cfg_.levels, " * ",
                              cfg_.codebook_size, ", d]");
        detail::check_finite(backend::Reference{}, "ResidualQuantizer::set_codebooks", all);
        const index_t d = all.cols();
        dim_ = 0;
        Matrix<float> host(Shape<2>{{all.rows(), d}});
        for (index_t r = 0; r < all.rows(); ++r) std::copy_n(all.row(r), d, host.data() + r * d);
        copy_tensor(host, codebooks_);
        host_norms_.resize(std::size_t(all.rows()));
        for (index_t m = 0; m < cfg_.levels; ++m) level_norms(m, host.data() + m * cfg_.codebook_size * d, d);
        norms_.resize(Shape<1>{{all.rows()}});
        memory_.upload(norms_.data(), host_norms_.data(), host_norms_.size() * sizeof(float));
        dim_ = d;
    }

    /// Trains the M codebooks on x [N, d] in Memory (N >= K) by residual
    /// k-means, keeping train_beam_size beams between levels (beams > 1 need a
    /// backend with ops::has_beam_selection: ValueError otherwise). Returns the report.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    const ResidualQuantizerReport& train(const Be& be, MatrixView<const float> x) {
        const index_t n = x.rows(), d = x.cols(), k = cfg_.codebook_size, nl = cfg_.levels;
        RECBLOCKS_CHECK_VALUE(n >= 1 && d >= 1, "ResidualQuantizer::train: x is ", x.shape(),
                              "; need at least one row and column");
        RECBLOCKS_CHECK_VALUE(k <= n, "ResidualQuantizer::train: codebook_size ", k, " but only ", n, " rows in x");
        detail::check_finite(be, "ResidualQuantizer::train", x);
        require_beam_selection<Be>("train", std::min(k, cfg_.train_beam_size));
        report_ = ResidualQuantizerReport{};
        dim_ = 0;
        if (codebooks_.extent(0) != nl * k || codebooks_.extent(1) != d) codebooks_.resize(Shape<2>{{nl * k, d}});
        if (norms_.numel() != nl * k) norms_.resize(Shape<1>{{nl * k}});
        host_norms_.resize(std::size_t(nl * k));
        host_level_.resize(std::size_t(k * d));
        if (std::min(k, cfg_.train_beam_size) == 1) {
            // Greedy: one residual per row, updated where it lives.
            if (res_.extent(0) != n || res_.extent(1) != d) res_.resize(Shape<2>{{n, d}});
            if (dist_.numel() != n) dist_.resize(Shape<1>{{n}});
            host_dist_.resize(std::size_t(n));
            ops::copy(be, x, res_.view());
            for (index_t m = 0; m < nl; ++m) {
                train_level(be, m, res_.cview());
                greedy_rows(be, m, res_.view(), MatrixView<std::int32_t>{}, true);
                // The training error after this level: Σ ||r||² of the new residuals.
                ops::squared_distances(be, res_.cview(), VectorView<const float>{}, dist_.view());
                memory_.download(host_dist_.data(), dist_.data(), host_dist_.size() * sizeof(float));
                double s = 0;
                for (index_t r = 0; r < n; ++r) s += host_dist_[std::size_t(r)];
                report_.level_mse.push_back(s / double(n));
            }
        } else {
            if constexpr (beam_capable<Be>) train_beams(be, x);
        }
        dim_ = d;
        return report_;
    }

    /// codes [N, M] (host memory: codes are ids) of x [N, d] (in Memory) with
    /// a beam of `beam` (0: config().beam_size; 1: greedy, on any backend;
    /// > 1: needs ops::has_beam_selection, ValueError otherwise).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void encode(const Be& be, MatrixView<const float> x, MatrixView<std::int32_t> codes, index_t beam = 0) const {
        RECBLOCKS_CHECK_VALUE(trained(), "ResidualQuantizer::encode: call train() or set_codebooks() first");
        if (beam == 0) beam = cfg_.beam_size;
        RECBLOCKS_CHECK_VALUE(beam >= 1, "ResidualQuantizer::encode: beam must be >= 1, got ", beam);
        RECBLOCKS_CHECK_SHAPE(x.cols() == dim_, "ResidualQuantizer::encode: x is ", x.shape(), " but d = ", dim_);
        RECBLOCKS_CHECK_SHAPE(codes.rows() == x.rows() && codes.cols() == cfg_.levels, "ResidualQuantizer::encode: codes is ",
                              codes.shape(), ", expected [", x.rows(), ", ", cfg_.levels, "]");
        detail::check_finite(be, "ResidualQuantizer::encode", x);
        const index_t n = x.rows(), d = dim_, k = cfg_.codebook_size, nl = cfg_.levels;
        // Beam widths per level and the largest.
        index_t bmax = 1;
        for (index_t m = 0, b = 1; m < nl; ++m) {
            b = std::min(b * k, beam);
            bmax = std::max(bmax, b);
        }
        require_beam_selection<Be>("encode", bmax);
        if (bmax > 1) {
            if constexpr (beam_capable<Be>) encode_beams(be, x, codes, beam, bmax);
            return;
        }
        // Greedy: blocks of block_rows rows, each copied into scratch and updated level by level.
        using Arena = detail::ScratchArena<Memory>;
        const std::size_t bytes = Arena::template bytes_for<float>(cfg_.block_rows * d) + greedy_bytes(cfg_.block_rows);
        detail::for_each_block<detail::RqGreedyTag>(be, arena_, n, cfg_.block_rows, bytes,
                                                    [&](index_t r0, index_t r1, auto& ws) {
            const index_t rows = r1 - r0;
            const auto res = matrix_view(ws.template take<float>(rows * d), rows, d);
            ops::copy(be, x.slice_rows(r0, r1), res);
            for (index_t m = 0; m < nl; ++m) greedy_block(be, m, res, ws, codes.slice_rows(r0, r1), m + 1 < nl);
        });
    }

    /// x_hat [N, d] (in Memory) = Σ_m C_m[codes[:, m]] of codes [N, M] in host
    /// memory (checked there: IndexError for a code outside [0, K)).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void decode(const Be& be, MatrixView<const std::int32_t> codes, MatrixView<float> x_hat) const {
        RECBLOCKS_CHECK_VALUE(trained(), "ResidualQuantizer::decode: call train() or set_codebooks() first");
        const index_t n = codes.rows(), d = dim_, k = cfg_.codebook_size, nl = cfg_.levels;
        RECBLOCKS_CHECK_SHAPE(codes.cols() == nl && x_hat.rows() == n && x_hat.cols() == d,
                              "ResidualQuantizer::decode: codes is ", codes.shape(), " and x_hat is ", x_hat.shape(),
                              "; expected [N, ", nl, "] and [N, ", d, "]");
        for (index_t r = 0; r < n; ++r)
            for (index_t m = 0; m < nl; ++m) {
                const std::int32_t c = codes(r, m);
                RECBLOCKS_CHECK_INDEX(c >= 0 && c < k, "ResidualQuantizer::decode: codes[", r, ", ", m, "] = ", c,
                                      " is outside [0, ", k, ")");
            }
        // Per block: level m's rows gathered from the stacked codebooks (row m·K + code), added in level order.
        constexpr index_t kBlock = 1024;
        using Arena = detail::ScratchArena<Memory>;
        const std::size_t bytes = Arena::template bytes_for<row_id_t>(kBlock) + Arena::template bytes_for<float>(kBlock * d);
        detail::for_each_block<detail::RqDecodeTag>(be, arena_, n, kBlock, bytes, [&](index_t r0, index_t r1, auto& ws) {
            const index_t rows = r1 - r0;
            row_id_t* ids = ws.template take<row_id_t>(rows);
            const auto part = matrix_view(ws.template take<float>(rows * d), rows, d);
            auto& host_ids = thread_scratch<row_id_t, detail::RqDecodeTag>(std::size_t(rows));
            const auto out = x_hat.slice_rows(r0, r1);
            for (index_t m = 0; m < nl; ++m) {
                for (index_t r = 0; r < rows; ++r) host_ids[std::size_t(r)] = static_cast<row_id_t>(m * k + codes(r0 + r, m));
                memory_.upload(ids, host_ids.data(), std::size_t(rows) * sizeof(row_id_t));
                if (m == 0) {
                    ops::gather_rows(be, codebooks_.cview(), vector_view<const row_id_t>(ids, rows), out);
                } else {
                    ops::gather_rows(be, codebooks_.cview(), vector_view<const row_id_t>(ids, rows), part);
                    ops::add(be, MatrixView<const float>(out), MatrixView<const float>(part), out);
                }
            }
        });
    }

    /// Mean over rows of ||x - decode(codes)||², accumulated in double on the
    /// host (x in Memory, codes in host memory; an evaluation helper: x and the
    /// reconstruction are copied to the host).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    double reconstruction_mse(const Be& be, MatrixView<const float> x, MatrixView<const std::int32_t> codes) const {
        RECBLOCKS_CHECK_SHAPE(x.rows() == codes.rows() && x.rows() >= 1, "ResidualQuantizer::reconstruction_mse: x is ",
                              x.shape(), " and codes is ", codes.shape());
        RECBLOCKS_CHECK_SHAPE(x.cols() == dim_, "ResidualQuantizer::reconstruction_mse: x has ", x.cols(),
                              " columns, d = ", dim_);
        if (xh_.extent(0) != x.rows() || xh_.extent(1) != dim_) xh_.resize(Shape<2>{{x.rows(), dim_}});
        decode(be, codes, xh_.view());
        const Matrix<float> xh = to_host(xh_);
        std::vector<float> row(static_cast<std::size_t>(dim_));
        double s = 0;
        for (index_t r = 0; r < x.rows(); ++r) {
            memory_.download(row.data(), x.row(r), row.size() * sizeof(float));
            for (index_t t = 0; t < dim_; ++t) {
                const double e = double(row[std::size_t(t)]) - double(xh(r, t));
                s += e * e;
            }
        }
        return s / double(x.rows());
    }

    /// encode + reconstruction_mse in one call.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    double encode_mse(const Be& be, MatrixView<const float> x, index_t beam = 0) const {
        Matrix<std::int32_t> codes(Shape<2>{{x.rows(), cfg_.levels}});
        encode(be, x, codes.view(), beam);
        return reconstruction_mse(be, x, codes.cview());
    }

private:
    /// The beam search keeps a sorted list per row on the host (offer_smallest):
    /// host memory and the beam-selection primitive.
    template <class Be>
    static constexpr bool beam_capable = ops::has_beam_selection<Be, float> && host_memory_v<Be>;

    template <class Be>
    static void require_beam_selection(const char* who, index_t beams) {
        RECBLOCKS_CHECK_VALUE(beam_capable<Be> || beams <= 1, "ResidualQuantizer::", who, ": a beam of ", beams,
                              " needs a backend with the beam-selection primitive (ops::has_beam_selection, on host "
                              "memory: Reference, Cpu); this one encodes greedily (beam 1) only");
    }

    [[nodiscard]] MatrixView<const float> codebook_view(index_t m, index_t d) const {
        return matrix_view<const float>(codebooks_.data() + m * cfg_.codebook_size * d, cfg_.codebook_size, d);
    }

    /// ||C_m[k]||² of level m from its host copy, on the Reference backend (in
    /// double, rounded once): the same bits whether the codebooks come from
    /// train() or set_codebooks(), on any backend.
    void level_norms(index_t m, const float* host_level, index_t d) {
        const index_t k = cfg_.codebook_size;
        detail::squared_norms(backend::Reference{}, matrix_view<const float>(host_level, k, d),
                              host_norms_.data() + m * k);
    }

    /// k-means of level m on the residuals res [rows, d] (in Memory); its
    /// centroids become codebook m, their norms norms_ m.
    template <class Be>
    void train_level(const Be& be, index_t m, MatrixView<const float> res) {
        const index_t k = cfg_.codebook_size, d = res.cols();
        KMeansConfig kc = cfg_.kmeans;
        kc.seed = Rng(cfg_.kmeans.seed).substream(std::uint64_t(m)).stream();
        BasicKMeans<Memory> km(kc, memory_);
        km.train(be, res);
        report_.objective.push_back(km.report().objective);
        const auto level = matrix_view<float>(codebooks_.data() + m * k * d, k, d);
        ops::copy(be, km.centroids(), level);
        memory_.download(host_level_.data(), level.data(), host_level_.size() * sizeof(float));
        level_norms(m, host_level_.data(), d);
        memory_.upload(norms_.data() + m * k, host_norms_.data() + m * k, std::size_t(k) * sizeof(float));
    }

    /// Scratch bytes of one greedy level on `rows` rows (greedy_block's takes).
    [[nodiscard]] std::size_t greedy_bytes(index_t rows) const {
        using Arena = detail::ScratchArena<Memory>;
        return Arena::template bytes_for<float>(rows * cfg_.codebook_size) + Arena::template bytes_for<index_t>(rows) +
               Arena::template bytes_for<float>(rows) + Arena::template bytes_for<row_id_t>(rows) +
               Arena::template bytes_for<float>(rows * dim_now());
    }
    [[nodiscard]] index_t dim_now() const { return codebooks_.extent(1); }

    /// Greedy level m over all rows of res [n, d] (in Memory), in blocks of block_rows.
    template <class Be>
    void greedy_rows(const Be& be, index_t m, MatrixView<float> res, MatrixView<std::int32_t> codes, bool update) const {
        detail::for_each_block<detail::RqGreedyTag>(be, arena_, res.rows(), cfg_.block_rows, greedy_bytes(cfg_.block_rows),
                                                    [&](index_t r0, index_t r1, auto& ws) {
            greedy_block(be, m, res.slice_rows(r0, r1), ws,
                         codes.data() ? codes.slice_rows(r0, r1) : MatrixView<std::int32_t>{}, update);
        });
    }

    /// Greedy level m on a block: the nearest codeword of each residual of
    /// res [rows, d] (one GEMM + shifted argmin where res lives); its code
    /// (downloaded) goes to column m of codes (host, if given), and with
    /// `update` the codeword is gathered and subtracted from the residual.
    template <class Be, class Arena>
    void greedy_block(const Be& be, index_t m, MatrixView<float> res, Arena& ws, MatrixView<std::int32_t> codes,
                      bool update) const {
        const index_t rows = res.rows(), d = res.cols(), k = cfg_.codebook_size;
        const auto cb = codebook_view(m, d);
        struct Rewind {  // this level's scratch goes back to the arena for the next one
            Arena& ws;
            std::size_t at;
            ~Rewind() { ws.rewind(at); }
        } rewind{ws, ws.mark()};
        float* g = ws.template take<float>(rows * k);
        index_t* arg = ws.template take<index_t>(rows);
        float* best = ws.template take<float>(rows);
        row_id_t* ids = ws.template take<row_id_t>(rows);
        float* picked = ws.template take<float>(rows * d);
        ops::gemm(be, Trans::no, Trans::yes, 1.0f, MatrixView<const float>(res), cb, 0.0f, matrix_view(g, rows, k));
        ops::shifted_argmin_rows(be, matrix_view(g, rows, k), vector_view<const float>(norms_.data() + m * k, k),
                                 vector_view(arg, rows), vector_view(best, rows));
        auto& host_arg = thread_scratch<index_t, detail::RqGreedyTag>(std::size_t(rows));
        memory_.download(host_arg.data(), arg, std::size_t(rows) * sizeof(index_t));
        if (codes.data())
            for (index_t r = 0; r < rows; ++r) codes(r, m) = static_cast<std::int32_t>(host_arg[std::size_t(r)]);
        if (!update) return;
        auto& host_ids = thread_scratch<row_id_t, detail::RqGreedyTag>(std::size_t(rows));
        for (index_t r = 0; r < rows; ++r) host_ids[std::size_t(r)] = static_cast<row_id_t>(host_arg[std::size_t(r)]);
        memory_.upload(ids, host_ids.data(), std::size_t(rows) * sizeof(row_id_t));
        ops::gather_rows(be, cb, vector_view<const row_id_t>(ids, rows), matrix_view(picked, rows, d));
        // res -= picked (res's rows are contiguous: a block of the residual matrix or of scratch).
        ops::axpy(be, -1.0f, vector_view<const float>(picked, rows * d), vector_view(res.data(), rows * d));
    }

    /// Training with beams (host memory only): level m is trained on the
    /// residuals of every kept beam; the beams of every row extended by it.
    template <class Be>
    void train_beams(const Be& be, MatrixView<const float> x) {
        const index_t n = x.rows(), d = x.cols(), k = cfg_.codebook_size, nl = cfg_.levels;
        // Beams of all rows: residuals [n·b, d], their squared norms, codes [n·b, m].
        index_t beams = 1;
        std::vector<float> res(x.rows() * d), dist(static_cast<std::size_t>(n));
        for (index_t r = 0; r < n; ++r) std::copy_n(x.row(r), d, res.data() + r * d);
        ops::squared_distances(be, x, VectorView<const float>{}, vector_view(dist.data(), n));
        std::vector<std::int32_t> codes(std::size_t(n * nl));
        std::vector<float> res2, dist2;
        std::vector<std::int32_t> codes2;
        for (index_t m = 0; m < nl; ++m) {
            train_level(be, m, matrix_view<const float>(res.data(), n * beams, d));
            const index_t b_out = std::min(beams * k, cfg_.train_beam_size);
            res2.resize(std::size_t(n * b_out * d));
            dist2.resize(std::size_t(n * b_out));
            codes2.resize(std::size_t(n * b_out * nl));
            const auto cb = codebook_view(m, d);
            const float* cn = norms_.data() + m * k;
            const index_t rows_per = std::max<index_t>(1, cfg_.block_rows / beams);
            parallel_for(detail::host_threads(be), 0, n, rows_per, [&](index_t r0, index_t r1) {
                Workspace& ws = detail::thread_workspace<detail::RqEncodeTag>();
                ws.reset();
                const index_t rows = r1 - r0;
                float* g = ws.take<float>(rows * beams * k);
                float* sel_s = ws.take<float>(b_out);
                index_t* sel_i = ws.take<index_t>(b_out);
                detail::rq_beam_step(be, cb, cn, rows, beams, b_out, d, res.data() + r0 * beams * d,
                                     dist.data() + r0 * beams, codes.data() + r0 * beams * nl, m, nl,
                                     res2.data() + r0 * b_out * d, dist2.data() + r0 * b_out,
                                     codes2.data() + r0 * b_out * nl, g, sel_s, sel_i);
            });
            res.swap(res2);
            dist.swap(dist2);
            codes.swap(codes2);
            beams = b_out;
            double s = 0;
            for (index_t r = 0; r < n; ++r) s += dist[std::size_t(r * beams)];
            report_.level_mse.push_back(s / double(n));
        }
    }

    /// Beam encoding (host memory only): blocks of rows, all levels of a block
    /// while it is in cache, the b_out best of b_in·K candidates kept per level.
    template <class Be>
    void encode_beams(const Be& be, MatrixView<const float> x, MatrixView<std::int32_t> codes, index_t beam,
                      index_t bmax) const {
        const index_t n = x.rows(), d = dim_, k = cfg_.codebook_size, nl = cfg_.levels;
        const index_t rows_per = std::max<index_t>(1, cfg_.block_rows / bmax);
        parallel_for(detail::host_threads(be), 0, n, rows_per, [&](index_t r0, index_t r1) {
            Workspace& ws = detail::thread_workspace<detail::RqEncodeTag>();
            ws.reset();
            const index_t rows = r1 - r0;
            float* res[2] = {ws.take<float>(rows * bmax * d), ws.take<float>(rows * bmax * d)};
            float* dist[2] = {ws.take<float>(rows * bmax), ws.take<float>(rows * bmax)};
            std::int32_t* cd[2] = {ws.take<std::int32_t>(rows * bmax * nl), ws.take<std::int32_t>(rows * bmax * nl)};
            float* g = ws.take<float>(rows * bmax * k);
            float* sel_s = ws.take<float>(bmax);
            index_t* sel_i = ws.take<index_t>(bmax);
            for (index_t r = 0; r < rows; ++r) std::copy_n(x.row(r0 + r), d, res[0] + r * d);
            ops::squared_distances(be, x.slice_rows(r0, r1), VectorView<const float>{}, vector_view(dist[0], rows));
            index_t b_in = 1;
            int cur = 0;
            for (index_t m = 0; m < nl; ++m) {
                const index_t b_out = std::min(b_in * k, beam);
                detail::rq_beam_step(be, codebook_view(m, d), norms_.data() + m * k, rows, b_in, b_out, d, res[cur],
                                     dist[cur], cd[cur], m, nl, res[1 - cur], dist[1 - cur], cd[1 - cur], g, sel_s,
                                     sel_i);
                cur = 1 - cur;
                b_in = b_out;
            }
            for (index_t r = 0; r < rows; ++r) std::copy_n(cd[cur] + r * b_in * nl, nl, codes.row(r0 + r));
        });
    }

    ResidualQuantizerConfig cfg_;
    Memory memory_;
    index_t dim_ = 0;
    Matrix<float, Memory> codebooks_;  ///< [M·K, d]
    Vector<float, Memory> norms_;      ///< [M·K]
    ResidualQuantizerReport report_;
    // Scratch kept between calls; the const methods reuse it (one call at a time).
    Matrix<float, Memory> res_;
    Vector<float, Memory> dist_;
    mutable Matrix<float, Memory> xh_;
    mutable detail::ScratchArena<Memory> arena_;
    std::vector<float> host_norms_, host_level_, host_dist_;
};

/// The residual quantizer on host memory (Reference and Cpu backends).
using ResidualQuantizer = BasicResidualQuantizer<HostMemory>;
/// A residual quantizer whose codebooks live where backend Be computes.
template <class Be>
using ResidualQuantizerOn = BasicResidualQuantizer<memory_space_t<Be>>;

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
