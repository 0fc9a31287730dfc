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
// Errors: ValueError (bad config, NaN/Inf data, untrained use, N < K at training);
// ShapeError (dimension or code-matrix shape mismatch); IndexError (a code outside [0, K) in
// decode or set_codebooks' shapes).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/core/thread_scratch.hpp"
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

}  // namespace detail

class ResidualQuantizer {
public:
    explicit ResidualQuantizer(ResidualQuantizerConfig cfg) : cfg_(cfg) {
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
    /// Codebook of level m, [K, d].
    [[nodiscard]] MatrixView<const float> codebook(index_t m) const {
        RECBLOCKS_CHECK_INDEX(trained() && m >= 0 && m < cfg_.levels, "ResidualQuantizer::codebook: level ", m,
                              " of ", cfg_.levels, (trained() ? "" : " (not trained)"));
        return matrix_view<const float>(codebooks_.data() + m * cfg_.codebook_size * dim_, cfg_.codebook_size, dim_);
    }
    [[nodiscard]] const ResidualQuantizerReport& report() const { return report_; }

    /// Installs codebooks [M·K, d] (level m in rows [m·K, (m+1)·K)), e.g. loaded from a file.
    void set_codebooks(MatrixView<const float> all) {
        RECBLOCKS_CHECK_SHAPE(all.rows() == cfg_.levels * cfg_.codebook_size && all.cols() >= 1,
                              "ResidualQuantizer::set_codebooks: got ", all.shape(), ", expected [", cfg_.levels, " * ",
                              cfg_.codebook_size, ", d]");
        detail::check_finite("ResidualQuantizer::set_codebooks", all);
        dim_ = all.cols();
        codebooks_.resize(Shape<2>{{all.rows(), dim_}});
        for (index_t r = 0; r < all.rows(); ++r) std::copy_n(all.row(r), dim_, codebooks_.data() + r * dim_);
        compute_norms();
    }

    /// Trains the M codebooks on x [N, d] (N >= K) by residual k-means, keeping
    /// train_beam_size beams between levels. Returns the report.
    template <class Be>
    const ResidualQuantizerReport& train(const Be& be, MatrixView<const float> x) {
        const index_t n = x.rows(), d = x.cols(), k = cfg_.codebook_size, nl = cfg_.levels;
        RECBLOCKS_CHECK_VALUE(n >= 1 && d >= 1, "ResidualQuantizer::train: x is ", x.shape(),
                              "; need at least one row and column");
        RECBLOCKS_CHECK_VALUE(k <= n, "ResidualQuantizer::train: codebook_size ", k, " but only ", n, " rows in x");
        detail::check_finite("ResidualQuantizer::train", x);
        report_ = ResidualQuantizerReport{};
        dim_ = 0;
        codebooks_.resize(Shape<2>{{nl * k, d}});
        norms_.resize(Shape<1>{{nl * k}});
        // Beams of all rows: residuals [n·b, d], their squared norms, codes [n·b, m].
        index_t beams = 1;
        std::vector<float> res(x.rows() * d), dist(static_cast<std::size_t>(n));
        for (index_t r = 0; r < n; ++r) std::copy_n(x.row(r), d, res.data() + r * d);
        ops::squared_distances(be, x, VectorView<const float>{}, vector_view(dist.data(), n));
        std::vector<std::int32_t> codes(std::size_t(n * nl));
        std::vector<float> res2, dist2;
        std::vector<std::int32_t> codes2;
        for (index_t m = 0; m < nl; ++m) {
            KMeansConfig kc = cfg_.kmeans;
            kc.seed = Rng(cfg_.kmeans.seed).substream(std::uint64_t(m)).stream();
            KMeans km(kc);
            km.train(be, matrix_view<const float>(res.data(), n * beams, d));
            report_.objective.push_back(km.report().objective);
            std::copy_n(km.centroids().data(), k * d, codebooks_.data() + m * k * d);
            codebook_norms(m);
            // Extend every row's beams by this level.
            const index_t b_out = std::min(beams * k, cfg_.train_beam_size);
            res2.resize(std::size_t(n * b_out * d));
            dist2.resize(std::size_t(n * b_out));
            codes2.resize(std::size_t(n * b_out * nl));
            const auto cb = codebook_view(m, d);
            const float* cn = norms_.data() + m * k;
            const index_t rows_per = std::max<index_t>(1, cfg_.block_rows / beams);
            parallel_for(be.threads(), 0, n, rows_per, [&](index_t r0, index_t r1) {
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
        dim_ = d;
        return report_;
    }

    /// codes [N, M] of x [N, d] with a beam of `beam` (0: config().beam_size; 1: greedy).
    template <class Be>
    void encode(const Be& be, MatrixView<const float> x, MatrixView<std::int32_t> codes, index_t beam = 0) const {
        RECBLOCKS_CHECK_VALUE(trained(), "ResidualQuantizer::encode: call train() or set_codebooks() first");
        if (beam == 0) beam = cfg_.beam_size;
        RECBLOCKS_CHECK_VALUE(beam >= 1, "ResidualQuantizer::encode: beam must be >= 1, got ", beam);
        RECBLOCKS_CHECK_SHAPE(x.cols() == dim_, "ResidualQuantizer::encode: x is ", x.shape(), " but d = ", dim_);
        RECBLOCKS_CHECK_SHAPE(codes.rows() == x.rows() && codes.cols() == cfg_.levels, "ResidualQuantizer::encode: codes is ",
                              codes.shape(), ", expected [", x.rows(), ", ", cfg_.levels, "]");
        detail::check_finite("ResidualQuantizer::encode", x);
        const index_t n = x.rows(), d = dim_, k = cfg_.codebook_size, nl = cfg_.levels;
        // Beam widths per level and the largest.
        index_t bmax = 1;
        for (index_t m = 0, b = 1; m < nl; ++m) {
            b = std::min(b * k, beam);
            bmax = std::max(bmax, b);
        }
        const index_t rows_per = std::max<index_t>(1, cfg_.block_rows / bmax);
        parallel_for(be.threads(), 0, n, rows_per, [&](index_t r0, index_t r1) {
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
                if (b_in == 1 && b_out == 1) {
                    greedy_level(be, m, rows, res[cur], cd[cur], g);  // in place
                } else {
                    detail::rq_beam_step(be, codebook_view(m, d), norms_.data() + m * k, rows, b_in, b_out, d,
                                         res[cur], dist[cur], cd[cur], m, nl, res[1 - cur], dist[1 - cur], cd[1 - cur], g,
                                         sel_s, sel_i);
                    cur = 1 - cur;
                }
                b_in = b_out;
            }
            for (index_t r = 0; r < rows; ++r) std::copy_n(cd[cur] + r * b_in * nl, nl, codes.row(r0 + r));
        });
    }

    /// x_hat [N, d] = Σ_m C_m[codes[:, m]]; IndexError for a code outside [0, K).
    template <class Be>
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
        parallel_for(be.threads(), 0, n, 1024, [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) {
                float* out = x_hat.row(r);
                std::copy_n(codebooks_.data() + codes(r, 0) * d, d, out);
                for (index_t m = 1; m < nl; ++m) {
                    const float* c = codebooks_.data() + (m * k + codes(r, m)) * d;
                    for (index_t t = 0; t < d; ++t) out[t] += c[t];
                }
            }
        });
    }

    /// Mean over rows of ||x - decode(codes)||², accumulated in double.
    template <class Be>
    double reconstruction_mse(const Be& be, MatrixView<const float> x, MatrixView<const std::int32_t> codes) const {
        RECBLOCKS_CHECK_SHAPE(x.rows() == codes.rows() && x.rows() >= 1, "ResidualQuantizer::reconstruction_mse: x is ",
                              x.shape(), " and codes is ", codes.shape());
        Matrix<float> xh(Shape<2>{{x.rows(), dim_}});
        decode(be, codes, xh.view());
        RECBLOCKS_CHECK_SHAPE(x.cols() == dim_, "ResidualQuantizer::reconstruction_mse: x has ", x.cols(),
                              " columns, d = ", dim_);
        double s = 0;
        for (index_t r = 0; r < x.rows(); ++r)
            for (index_t t = 0; t < dim_; ++t) {
                const double e = double(x(r, t)) - double(xh(r, t));
                s += e * e;
            }
        return s / double(x.rows());
    }

    /// encode + reconstruction_mse in one call.
    template <class Be>
    double encode_mse(const Be& be, MatrixView<const float> x, index_t beam = 0) const {
        Matrix<std::int32_t> codes(Shape<2>{{x.rows(), cfg_.levels}});
        encode(be, x, codes.view(), beam);
        return reconstruction_mse(be, x, codes.cview());
    }

private:
    [[nodiscard]] MatrixView<const float> codebook_view(index_t m, index_t d) const {
        return matrix_view<const float>(codebooks_.data() + m * cfg_.codebook_size * d, cfg_.codebook_size, d);
    }

    void compute_norms() {
        norms_.resize(Shape<1>{{codebooks_.extent(0)}});
        for (index_t m = 0; m < cfg_.levels; ++m) codebook_norms(m);
    }

    /// ||C_m[k]||² of level m, on the Reference backend (in double, rounded
    /// once): computed once per level, and the same bits whether the
    /// codebooks come from train() or set_codebooks(), on any backend.
    void codebook_norms(index_t m) {
        const index_t k = cfg_.codebook_size;
        detail::squared_norms(backend::Reference{}, codebook_view(m, dim_now()), norms_.data() + m * k);
    }
    [[nodiscard]] index_t dim_now() const { return codebooks_.extent(1); }

    /// Greedy level m on a block: res [rows, d] updated in place, code m written into cd [rows, M].
    template <class Be>
    void greedy_level(const Be& be, index_t m, index_t rows, float* res, std::int32_t* cd, float* g) const {
        const index_t d = dim_, k = cfg_.codebook_size, nl = cfg_.levels;
        const auto cb = codebook_view(m, d);
        ops::gemm(be, Trans::no, Trans::yes, 1.0f, matrix_view<const float>(res, rows, d), cb, 0.0f,
                  matrix_view(g, rows, k));
        const float* cn = norms_.data() + m * k;
        auto& arg = thread_scratch<index_t, detail::RqEncodeTag>(std::size_t(rows));
        auto& best = thread_scratch<float, detail::RqEncodeTag>(std::size_t(rows));
        ops::shifted_argmin_rows(be, matrix_view(g, rows, k), vector_view(cn, k), vector_view(arg.data(), rows),
                                 vector_view(best.data(), rows));
        for (index_t r = 0; r < rows; ++r) {
            const index_t j = arg[std::size_t(r)];
            cd[r * nl + m] = static_cast<std::int32_t>(j);
            if (m + 1 < nl) {
                const float* c = cb.row(j);
                float* rr = res + r * d;
                for (index_t t = 0; t < d; ++t) rr[t] -= c[t];
            }
        }
    }

    ResidualQuantizerConfig cfg_;
    index_t dim_ = 0;
    Matrix<float> codebooks_;  ///< [M·K, d]
    Vector<float> norms_;      ///< [M·K]
    ResidualQuantizerReport report_;
};

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
