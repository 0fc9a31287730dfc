#pragma once
// Reference backend: the oracle every other backend is tested against.
// Straightforward loops in the textbook order, every sum accumulated in
// double, one thread. Slow on purpose; clear on purpose.
#include <algorithm>
#include <bit>
#include <functional>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "recblocks/backend/host_attention.hpp"
#include "recblocks/backend/pq4_codes.hpp"
#include "recblocks/backend/primitives.hpp"
#include "recblocks/backend/retrieval.hpp"
#include "recblocks/core/rng.hpp"

RECBLOCKS_NAMESPACE_BEGIN

template <>
struct Primitives<backend::Reference> : detail::HostAttentionPrimitives<backend::Reference> {
    using B = backend::Reference;

    template <class T>
    static void gemm(const B&, Trans ta, Trans tb, T alpha, MatrixView<const T> a, MatrixView<const T> b, T beta,
                     MatrixView<T> c) {
        const index_t m = c.rows(), n = c.cols();
        const index_t k = ta == Trans::yes ? a.rows() : a.cols();
        for (index_t i = 0; i < m; ++i)
            for (index_t j = 0; j < n; ++j) {
                double acc = 0.0;
                for (index_t p = 0; p < k; ++p) {
                    const double av = ta == Trans::yes ? a(p, i) : a(i, p);
                    const double bv = tb == Trans::yes ? b(j, p) : b(p, j);
                    acc += av * bv;
                }
                const double prior = beta == T(0) ? 0.0 : double(beta) * double(c(i, j));
                c(i, j) = static_cast<T>(double(alpha) * acc + prior);
            }
    }

    template <class T>
    static void gemm_batched(const B& be, Trans ta, Trans tb, T alpha, TensorView<const T, 3> a,
                             TensorView<const T, 3> b, T beta, TensorView<T, 3> c) {
        for (index_t i = 0; i < c.extent(0); ++i) gemm<T>(be, ta, tb, alpha, a[i], b[i], beta, c[i]);
    }

    template <class T>
    static T dot(const B&, VectorView<const T> x, VectorView<const T> y) {
        double acc = 0.0;
        for (index_t i = 0; i < x.size(); ++i) acc += double(x(i)) * double(y(i));
        return static_cast<T>(acc);
    }

    template <class T>
    static void axpy(const B&, T alpha, VectorView<const T> x, VectorView<T> y) {
        for (index_t i = 0; i < x.size(); ++i) y(i) = static_cast<T>(double(y(i)) + double(alpha) * double(x(i)));
    }

    /// In T, as torch.optim.Adam: the optimiser's arithmetic is part of the result.
    template <class T>
    static void adam_update(const B&, const AdamUpdate<T>& u, VectorView<T> wv, VectorView<const T> gv,
                            VectorView<T> mv, VectorView<T> vv) {
        T* w = wv.data();
        const T* g = gv.data();
        T* m = mv.data();
        T* v = vv.data();
        for (index_t j = 0; j < wv.size(); ++j) {
            detail::adam_update_element(u, w[j], g[j], m[j], v[j]);
        }
    }

    template <class T>
    static void add(const B&, MatrixView<const T> a, MatrixView<const T> b, MatrixView<T> out) {
        for (index_t r = 0; r < out.rows(); ++r)
            for (index_t c = 0; c < out.cols(); ++c) out(r, c) = static_cast<T>(double(a(r, c)) + double(b(r, c)));
    }

    template <class T>
    static void copy(const B&, MatrixView<const T> src, MatrixView<T> dst) {
        for (index_t r = 0; r < dst.rows(); ++r)
            for (index_t c = 0; c < dst.cols(); ++c) dst(r, c) = src(r, c);
    }

    template <class T>
    static void broadcast_rows(const B&, VectorView<const T> row, T beta, MatrixView<T> out) {
        for (index_t r = 0; r < out.rows(); ++r)
            for (index_t c = 0; c < out.cols(); ++c)
                out(r, c) = beta == T(0) ? row(c) : static_cast<T>(double(row(c)) + double(beta) * double(out(r, c)));
    }

    template <class T>
    static void scale_rows(const B&, MatrixView<const T> x, VectorView<const T> s, T alpha, MatrixView<T> y) {
        for (index_t r = 0; r < y.rows(); ++r) {
            const double f = double(alpha) * (s.data() ? double(s(r)) : 1.0);
            for (index_t c = 0; c < y.cols(); ++c) y(r, c) = static_cast<T>(f * double(x(r, c)));
        }
    }

    template <class T>
    static void gate_by_nonzero(const B&, VectorView<const T> ref, VectorView<T> g, T scale) {
        for (index_t i = 0; i < g.size(); ++i) g(i) = ref(i) != T(0) ? g(i) * scale : T(0);
    }

    template <class T>
    static void row_dots(const B&, MatrixView<const T> a, MatrixView<const T> b, VectorView<T> out) {
        for (index_t r = 0; r < a.rows(); ++r) {
            double acc = 0.0;
            for (index_t c = 0; c < a.cols(); ++c) acc += double(a(r, c)) * double(b(r, c));
            out(r) = static_cast<T>(acc);
        }
    }

    template <class T>
    static double logistic_loss(const B&, VectorView<const T> s, VectorView<const T> sign, T weight, VectorView<T> g) {
        double total = 0;
        for (index_t m = 0; m < s.size(); ++m) {
            const double z = double(sign(m)) * double(s(m));
            total += detail::softplus(z);
            g(m) = static_cast<T>(double(weight) * double(sign(m)) * detail::sigmoid(z));
        }
        return total;
    }

    /// In double throughout: z = logits + bias, log-sum-exp around the row
    /// maximum, the gradient rounded once to T.
    template <class T>
    static double softmax_cross_entropy(const B&, MatrixView<T> logits, VectorView<const T> bias,
                                        VectorView<const row_id_t> targets, T scale) {
        double total = 0;
        const index_t cols = logits.cols();
        std::vector<double> z(static_cast<std::size_t>(cols));
        for (index_t r = 0; r < logits.rows(); ++r) {
            T* row = logits.row(r);
            const index_t t = targets(r);
            if (t < 0) {
                std::fill(row, row + cols, T(0));
                continue;
            }
            double mx = -std::numeric_limits<double>::infinity();
            for (index_t c = 0; c < cols; ++c) {
                z[std::size_t(c)] = double(row[c]) + (bias.data() ? double(bias(c)) : 0.0);
                mx = std::max(mx, z[std::size_t(c)]);
            }
            double sum = 0;
            for (index_t c = 0; c < cols; ++c) sum += std::exp(z[std::size_t(c)] - mx);
            const double lse = mx + std::log(sum);
            total += lse - z[std::size_t(t)];
            for (index_t c = 0; c < cols; ++c)
                row[c] = static_cast<T>(double(scale) * (std::exp(z[std::size_t(c)] - lse) - (c == t ? 1.0 : 0.0)));
        }
        return total;
    }

    template <class T>
    static void multiply(const B&, MatrixView<const T> a, MatrixView<const T> b, MatrixView<T> out) {
        for (index_t r = 0; r < out.rows(); ++r)
            for (index_t c = 0; c < out.cols(); ++c) out(r, c) = static_cast<T>(double(a(r, c)) * double(b(r, c)));
    }

    template <class T>
    static double bce_with_logits(const B&, VectorView<const T> z, VectorView<const T> y, T weight, VectorView<T> g) {
        double total = 0;
        for (index_t m = 0; m < z.size(); ++m) {
            const double zm = z(m), ym = y(m);
            total += std::max(zm, 0.0) - zm * ym + std::log1p(std::exp(-std::fabs(zm)));
            g(m) = static_cast<T>(double(weight) * (detail::sigmoid(zm) - ym));
        }
        return total;
    }

    // Target attention (ops/target_attention.hpp): sums in double, rounded once.
    template <class T>
    static index_t search_segments(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids,
                                   VectorView<const index_t> offsets, MatrixView<const T> queries, T alpha, index_t k,
                                   VectorView<T> scores, MatrixView<T> top_values, MatrixView<row_id_t> top_positions,
                                   MatrixView<row_id_t> top_ids) {
        for (index_t s = 0; s + 1 < offsets.size(); ++s) {
            const index_t b = offsets(s), n = offsets(s + 1) - b;
            const auto seg_ids = vector_view(ids.data() + b, n);
            gathered_dot<T>(be, table, seg_ids, vector_view(queries.row(s), queries.cols()), alpha,
                            vector_view(scores.data() + b, n));
            if (top_k_rows<T>(be, matrix_view<const T>(scores.data() + b, 1, n), k,
                              matrix_view(top_positions.row(s), 1, k), matrix_view(top_values.row(s), 1, k)) >= 0)
                return s;
            if (top_ids.data())
                for (index_t j = 0; j < k; ++j) top_ids(s, j) = seg_ids(top_positions(s, j));
        }
        return -1;
    }

    template <class T>
    static void attend_rows(const B&, MatrixView<const T> w, MatrixView<const T> rows, MatrixView<T> out) {
        const index_t k = w.cols();
        for (index_t s = 0; s < w.rows(); ++s)
            for (index_t c = 0; c < rows.cols(); ++c) {
                double acc = 0.0;
                for (index_t j = 0; j < k; ++j) acc += double(w(s, j)) * double(rows(s * k + j, c));
                out(s, c) = static_cast<T>(acc);
            }
    }

    template <class T>
    static void attend_rows_backward(const B&, MatrixView<const T> w, MatrixView<const T> rows,
                                     MatrixView<const T> dout, MatrixView<T> dw, MatrixView<T> drows) {
        const index_t k = w.cols();
        for (index_t s = 0; s < w.rows(); ++s)
            for (index_t j = 0; j < k; ++j) {
                if (dw.data()) {
                    double acc = 0.0;
                    for (index_t c = 0; c < rows.cols(); ++c) acc += double(dout(s, c)) * double(rows(s * k + j, c));
                    dw(s, j) = static_cast<T>(acc);
                }
                if (drows.data())
                    for (index_t c = 0; c < rows.cols(); ++c)
                        drows(s * k + j, c) = static_cast<T>(double(w(s, j)) * double(dout(s, c)));
            }
    }

    template <class T>
    static void softmax_rows(const B&, MatrixView<const T> x, MatrixView<const std::uint8_t> mask, MatrixView<T> y) {
        const bool masked = mask.data() != nullptr;
        for (index_t r = 0; r < x.rows(); ++r) {
            double mx = -std::numeric_limits<double>::infinity();
            for (index_t c = 0; c < x.cols(); ++c)
                if (!masked || mask(r, c)) mx = std::max(mx, double(x(r, c)));
            double sum = 0.0;
            std::vector<double> e(static_cast<std::size_t>(x.cols()), 0.0);
            for (index_t c = 0; c < x.cols(); ++c)
                if ((!masked || mask(r, c)) && mx != -std::numeric_limits<double>::infinity()) {
                    e[static_cast<std::size_t>(c)] = std::exp(double(x(r, c)) - mx);
                    sum += e[static_cast<std::size_t>(c)];
                }
            for (index_t c = 0; c < x.cols(); ++c)
                y(r, c) = sum > 0.0 ? static_cast<T>(e[static_cast<std::size_t>(c)] / sum) : T(0);
        }
    }

    template <class T>
    static void softmax_rows_backward(const B&, MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx) {
        for (index_t r = 0; r < y.rows(); ++r) {
            double s = 0.0;
            for (index_t c = 0; c < y.cols(); ++c) s += double(dy(r, c)) * double(y(r, c));
            for (index_t c = 0; c < y.cols(); ++c) dx(r, c) = static_cast<T>(double(y(r, c)) * (double(dy(r, c)) - s));
        }
    }

    template <class T>
    static void layer_norm_forward(const B&, MatrixView<const T> x, VectorView<const T> gamma,
                                   VectorView<const T> beta, T eps, MatrixView<T> y, VectorView<T> mean,
                                   VectorView<T> rstd) {
        const index_t d = x.cols();
        for (index_t r = 0; r < x.rows(); ++r) {
            double mu = 0.0;
            for (index_t c = 0; c < d; ++c) mu += double(x(r, c));
            mu /= double(d);
            double var = 0.0;
            for (index_t c = 0; c < d; ++c) var += (double(x(r, c)) - mu) * (double(x(r, c)) - mu);
            var /= double(d);
            const double rs = 1.0 / std::sqrt(var + double(eps));
            for (index_t c = 0; c < d; ++c)
                y(r, c) = static_cast<T>((double(x(r, c)) - mu) * rs * double(gamma(c)) + double(beta(c)));
            if (mean.data()) mean(r) = static_cast<T>(mu);
            if (rstd.data()) rstd(r) = static_cast<T>(rs);
        }
    }

    template <class T>
    static void layer_norm_backward(const B&, MatrixView<const T> x, VectorView<const T> gamma,
                                    VectorView<const T> mean, VectorView<const T> rstd, MatrixView<const T> dy,
                                    MatrixView<T> dx, VectorView<T> dgamma, VectorView<T> dbeta) {
        const index_t d = x.cols();
        std::vector<double> dg(static_cast<std::size_t>(d), 0.0), db(static_cast<std::size_t>(d), 0.0);
        for (index_t r = 0; r < x.rows(); ++r) {
            const double mu = mean(r), rs = rstd(r);
            // dxhat = dy * gamma; dx = rs * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
            double m1 = 0.0, m2 = 0.0;
            for (index_t c = 0; c < d; ++c) {
                const double xhat = (double(x(r, c)) - mu) * rs;
                const double g = double(dy(r, c)) * double(gamma(c));
                m1 += g;
                m2 += g * xhat;
                dg[static_cast<std::size_t>(c)] += double(dy(r, c)) * xhat;
                db[static_cast<std::size_t>(c)] += double(dy(r, c));
            }
            m1 /= double(d);
            m2 /= double(d);
            for (index_t c = 0; c < d; ++c) {
                const double xhat = (double(x(r, c)) - mu) * rs;
                const double g = double(dy(r, c)) * double(gamma(c));
                dx(r, c) = static_cast<T>(rs * (g - m1 - xhat * m2));
            }
        }
        for (index_t c = 0; c < d; ++c) {
            dgamma(c) = static_cast<T>(double(dgamma(c)) + dg[static_cast<std::size_t>(c)]);
            dbeta(c) = static_cast<T>(double(dbeta(c)) + db[static_cast<std::size_t>(c)]);
        }
    }

    template <class T>
    static void activation_forward(const B&, Activation act, MatrixView<const T> x, MatrixView<T> y) {
        for (index_t r = 0; r < x.rows(); ++r)
            for (index_t c = 0; c < x.cols(); ++c) {
                const double v = x(r, c);
                y(r, c) = static_cast<T>(act == Activation::relu ? (v > 0.0 ? v : 0.0)
                                                                 : 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
            }
    }

    template <class T>
    static void activation_backward(const B&, Activation act, MatrixView<const T> x, MatrixView<const T> dy,
                                    MatrixView<T> dx) {
        constexpr double kInvSqrt2Pi = 0.39894228040143267794;
        for (index_t r = 0; r < x.rows(); ++r)
            for (index_t c = 0; c < x.cols(); ++c) {
                const double v = x(r, c);
                const double g = act == Activation::relu
                                     ? (v > 0.0 ? 1.0 : 0.0)
                                     : 0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v);
                dx(r, c) = static_cast<T>(double(dy(r, c)) * g);
            }
    }

    template <class T>
    static void prefix_attention(const B&, MatrixView<const T> q, MatrixView<const T> k, MatrixView<const T> v,
                                 VectorView<const index_t> key_end, VectorView<const index_t> write_end,
                                 VectorView<const std::uint8_t> keep, T scale, MatrixView<T> p, MatrixView<T> ctx) {
        const index_t dh = q.cols();
        std::vector<double> w(static_cast<std::size_t>(k.rows()));
        for (index_t r = 0; r < q.rows(); ++r) {
            const index_t n = key_end(r);
            double mx = -std::numeric_limits<double>::infinity();
            for (index_t j = 0; j < n; ++j) {
                double acc = 0.0;
                for (index_t c = 0; c < dh; ++c) acc += double(q(r, c)) * double(k(j, c));
                const bool kept = !keep.data() || keep(j);
                w[static_cast<std::size_t>(j)] = kept ? double(static_cast<T>(acc * double(scale)))
                                                      : -std::numeric_limits<double>::infinity();
                mx = std::max(mx, w[static_cast<std::size_t>(j)]);
            }
            double sum = 0.0;
            for (index_t j = 0; j < n; ++j) {
                auto& e = w[static_cast<std::size_t>(j)];
                e = mx == -std::numeric_limits<double>::infinity() ? 0.0 : std::exp(e - mx);
                sum += e;
            }
            for (index_t j = 0; j < n; ++j) w[static_cast<std::size_t>(j)] = sum > 0.0 ? w[static_cast<std::size_t>(j)] / sum : 0.0;
            if (p.data())
                for (index_t j = 0; j < write_end(r); ++j)
                    p(r, j) = j < n ? static_cast<T>(w[static_cast<std::size_t>(j)]) : T(0);
            if (ctx.data())
                for (index_t c = 0; c < dh; ++c) {
                    double acc = 0.0;
                    for (index_t j = 0; j < n; ++j) acc += w[static_cast<std::size_t>(j)] * double(v(j, c));
                    ctx(r, c) = static_cast<T>(acc);
                }
        }
    }

    template <class T>
    static void prefix_attention_backward(const B&, MatrixView<const T> q, MatrixView<const T> k,
                                          MatrixView<const T> v, MatrixView<const T> dctx, MatrixView<const T> p,
                                          MatrixView<const T> w, VectorView<const index_t> key_end, T drop_scale,
                                          T scale, MatrixView<T> dq, MatrixView<T> dk, MatrixView<T> dv) {
        const index_t rows = q.rows(), keys = k.rows(), dh = q.cols();
        std::vector<double> dk_acc(static_cast<std::size_t>(keys * dh), 0.0), dv_acc(dk_acc.size(), 0.0);
        std::vector<double> ds(static_cast<std::size_t>(keys));
        for (index_t r = 0; r < rows; ++r) {
            const index_t n = key_end(r);
            double sum = 0.0;
            for (index_t j = 0; j < n; ++j) {
                double g = 0.0;  // dP' = dctx_r . v_j
                for (index_t c = 0; c < dh; ++c) g += double(dctx(r, c)) * double(v(j, c));
                if (w.data()) g = w(r, j) != T(0) ? g * double(drop_scale) : 0.0;
                ds[static_cast<std::size_t>(j)] = g;
                sum += g * double(p(r, j));
            }
            for (index_t j = 0; j < n; ++j) {
                const double d = double(p(r, j)) * (ds[static_cast<std::size_t>(j)] - sum) * double(scale);
                const double wt = w.data() ? double(w(r, j)) : double(p(r, j));
                for (index_t c = 0; c < dh; ++c) {
                    dk_acc[static_cast<std::size_t>(j * dh + c)] += d * double(q(r, c));
                    dv_acc[static_cast<std::size_t>(j * dh + c)] += wt * double(dctx(r, c));
                }
                ds[static_cast<std::size_t>(j)] = d;
            }
            for (index_t c = 0; c < dh; ++c) {
                double acc = 0.0;
                for (index_t j = 0; j < n; ++j) acc += ds[static_cast<std::size_t>(j)] * double(k(j, c));
                dq(r, c) = static_cast<T>(acc);
            }
        }
        for (index_t j = 0; j < keys; ++j)
            for (index_t c = 0; c < dh; ++c) {
                dk(j, c) = static_cast<T>(dk_acc[static_cast<std::size_t>(j * dh + c)]);
                dv(j, c) = static_cast<T>(dv_acc[static_cast<std::size_t>(j * dh + c)]);
            }
    }

    template <class T>
    static void gather_rows(const B&, MatrixView<const T> table, VectorView<const row_id_t> ids, MatrixView<T> out) {
        for (index_t i = 0; i < ids.size(); ++i)
            for (index_t c = 0; c < table.cols(); ++c) out(i, c) = table(ids(i), c);
    }

    template <class T>
    static void scatter_add_rows(const B&, MatrixView<const T> src, VectorView<const row_id_t> ids, MatrixView<T> table) {
        for (index_t i = 0; i < ids.size(); ++i)
            for (index_t c = 0; c < table.cols(); ++c)
                table(ids(i), c) = static_cast<T>(double(table(ids(i), c)) + double(src(i, c)));
    }

    template <class T>
    static void dropout(const B&, VectorView<const T> x, VectorView<T> y, index_t first, const DropoutMask& mask,
                        T scale) {
        for (index_t i = 0; i < x.size(); ++i) {
            const auto j = static_cast<std::uint64_t>(first + i), block = j >> 2;
            const auto words = Philox4x32::generate(
                {static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                 static_cast<std::uint32_t>(mask.stream), static_cast<std::uint32_t>(mask.stream >> 32)},
                {mask.key0, mask.key1});
            y(i) = (words[j & 3] >> 8) >= mask.threshold ? x(i) * scale : T(0);
        }
    }

    template <class T>
    static void gathered_dot(const B&, MatrixView<const T> table, VectorView<const row_id_t> ids, VectorView<const T> x,
                             T alpha, VectorView<T> y) {
        for (index_t i = 0; i < ids.size(); ++i) {
            double acc = 0.0;
            for (index_t c = 0; c < x.size(); ++c) acc += double(table(ids(i), c)) * double(x(c));
            y(i) = static_cast<T>(double(alpha) * acc);
        }
    }

    // Retrieval: every score in double from the stored elements, rounded once.
    template <class E>
    static double panel_element(const PanelView<E>& items, index_t r, index_t c) {
        const E e = items.data[panel_offset<E>(r, c, items.dim)];
        if constexpr (std::is_same_v<E, std::uint16_t>) return double(std::bit_cast<float>(std::uint32_t(e) << 16));
        else return double(e);
    }
    template <class E>
    static float panel_score(const PanelView<E>& items, index_t r, VectorView<const float> x) {
        double acc = 0.0;
        for (index_t c = 0; c < items.dim; ++c) acc += panel_element(items, r, c) * double(x(c));
        return static_cast<float>(items.scales ? acc * double(items.scales[r]) : acc);
    }

    template <class E>
    static void panel_scores(const B&, PanelView<E> items, VectorView<const float> x, VectorView<float> y) {
        for (index_t r = 0; r < items.rows; ++r) y(r) = panel_score(items, r, x);
    }

    template <class E>
    static index_t panel_scores_above(const B&, PanelView<E> items, VectorView<const float> x, float threshold,
                                      row_id_t first, VectorView<float> out_scores, VectorView<row_id_t> out_ids) {
        index_t count = 0;
        for (index_t r = 0; r < items.rows; ++r) {
            const float s = panel_score(items, r, x);
            if (s > threshold) {
                out_scores(count) = s;
                out_ids(count++) = first + static_cast<row_id_t>(r);
            }
        }
        return count;
    }

    template <class E>
    static void panel_scores_of_ids(const B&, PanelView<E> items, VectorView<const row_id_t> ids,
                                    VectorView<const float> x, VectorView<float> y) {
        for (index_t j = 0; j < ids.size(); ++j) y(j) = panel_score(items, ids(j), x);
    }

    static void score_ids(const B&, MatrixView<const float> rows, VectorView<const row_id_t> ids,
                          VectorView<const float> x, VectorView<float> y) {
        for (index_t j = 0; j < ids.size(); ++j) {
            double acc = 0.0;
            for (index_t c = 0; c < x.size(); ++c) acc += double(rows(ids(j), c)) * double(x(c));
            y(j) = static_cast<float>(acc);
        }
    }

    // Whole searches: the plain definition. Every score of every row in
    // double, rounded once; a full sort by (score desc, id asc). The data are
    // checked here too (backend/retrieval.hpp), so a device backend built on
    // these raises the errors ops/ raises for host memory.
    template <class E>
    static void exact_top_k(const B&, PanelView<E> items, MatrixView<const float> queries, index_t k,
                            VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids,
                            MatrixView<row_id_t> ids, MatrixView<float> scores) {
        constexpr std::string_view op = "ops::exact_top_k";
        detail::check_exact_top_k_data(op, items.rows, k, queries, ex_offsets, ex_ids);
        std::vector<std::uint64_t> keys;
        for (index_t b = 0; b < queries.rows(); ++b) {
            const row_id_t *ex, *ex_end;
            detail::excluded_range(ex_offsets, ex_ids, b, ex, ex_end);
            const auto x = vector_view(queries.row(b), queries.cols());
            keys.clear();
            for (index_t r = 0; r < items.rows; ++r) {
                if (std::binary_search(ex, ex_end, static_cast<row_id_t>(r))) continue;
                const float s = panel_score(items, r, x);
                RECBLOCKS_CHECK_VALUE(!std::isnan(s), op, ": the score of item ", r, " for query ", b,
                                      " is NaN (the query times the table overflows)");
                keys.push_back(retrieval_keys::rank_key(s, static_cast<row_id_t>(r)));
            }
            write_top_keys(keys, k, ids.row(b), scores.empty() ? nullptr : scores.row(b));
        }
    }

    template <class T>
    static void rerank_top_k(const B& be, MatrixView<const T> rows, MatrixView<const T> queries,
                             MatrixView<const row_id_t> candidates, index_t k, MatrixView<row_id_t> ids,
                             MatrixView<T> scores) {
        static_assert(std::is_same_v<T, float>, "rerank_top_k scores float rows");
        constexpr std::string_view op = "ops::rerank_top_k";
        detail::check_candidates(op, candidates, rows.rows());
        std::vector<float> s(static_cast<std::size_t>(candidates.cols()));
        std::vector<std::uint64_t> keys;
        for (index_t b = 0; b < queries.rows(); ++b) {
            score_ids(be, rows, vector_view(candidates.row(b), candidates.cols()),
                      vector_view(queries.row(b), queries.cols()), vector_view(s.data(), candidates.cols()));
            keys.clear();
            for (index_t j = 0; j < candidates.cols(); ++j) {
                RECBLOCKS_CHECK_VALUE(!std::isnan(s[std::size_t(j)]), op, ": the score of item ", candidates(b, j),
                                      " for query ", b, " is NaN (the query times the table overflows)");
                keys.push_back(retrieval_keys::rank_key(s[std::size_t(j)], candidates(b, j)));
            }
            write_top_keys(keys, k, ids.row(b), scores.row(b));
        }
    }

    /// Each (item, query row): the largest dot product (each in double, rounded
    /// once) and its first vector; an item's score sums its rows' maxima in double.
    template <class T>
    static void max_sim_scores(const B&, MatrixView<const T> query, MatrixView<const T> vectors,
                               VectorView<const index_t> offsets, VectorView<T> scores, MatrixView<index_t> argmax) {
        static_assert(std::is_same_v<T, float>, "max_sim_scores scores float vectors");
        constexpr std::string_view op = "ops::max_sim_scores";
        detail::check_max_sim_data(op, query, vectors.rows(), offsets);
        for (index_t i = 0; i + 1 < offsets.size(); ++i) {
            double total = 0.0;
            for (index_t r = 0; r < query.rows(); ++r) {
                index_t best = -1;
                float best_s = 0.0f;
                for (index_t j = offsets(i); j < offsets(i + 1); ++j) {
                    double acc = 0.0;
                    for (index_t c = 0; c < query.cols(); ++c) acc += double(query(r, c)) * double(vectors(j, c));
                    const auto s = static_cast<float>(acc);
                    if (best < 0 || s > best_s) {
                        best = j;
                        best_s = s;
                    }
                }
                total += double(best_s);
                if (!argmax.empty()) argmax(i, r) = best;
            }
            RECBLOCKS_CHECK_VALUE(!std::isnan(total), op, ": the score of item ", i,
                                  " is NaN (its vectors hold NaN or the products overflow)");
            scores(i) = static_cast<float>(total);
        }
    }

    /// The heap kept sorted worst first (a sorted array is a min-heap too).
    static index_t offer_top_k(const B&, VectorView<const float> s, row_id_t first, index_t k,
                               VectorView<float> heap_scores, VectorView<row_id_t> heap_ids, index_t size,
                               VectorView<const row_id_t> excluded) {
        auto better = [](float va, row_id_t ia, float vb, row_id_t ib) { return va > vb || (va == vb && ia < ib); };
        for (index_t j = 0; j < s.size(); ++j) {
            const row_id_t id = first + static_cast<row_id_t>(j);
            const float v = s(j);
            if (std::binary_search(excluded.data(), excluded.data() + excluded.size(), id)) continue;
            if (size == k) {
                if (!better(v, id, heap_scores(0), heap_ids(0))) continue;
                for (index_t i = 0; i + 1 < size; ++i) {  // drop the worst
                    heap_scores(i) = heap_scores(i + 1);
                    heap_ids(i) = heap_ids(i + 1);
                }
                --size;
            }
            index_t at = size++;
            for (; at > 0 && better(heap_scores(at - 1), heap_ids(at - 1), v, id); --at) {
                heap_scores(at) = heap_scores(at - 1);
                heap_ids(at) = heap_ids(at - 1);
            }
            heap_scores(at) = v;
            heap_ids(at) = id;
        }
        return size;
    }

    static index_t collect_above(const B&, VectorView<const float> s, float threshold, row_id_t first,
                                 VectorView<float> out_scores, VectorView<row_id_t> out_ids) {
        index_t count = 0;
        for (index_t j = 0; j < s.size(); ++j)
            if (s(j) > threshold) {
                out_scores(count) = s(j);
                out_ids(count++) = first + static_cast<row_id_t>(j);
            }
        return count;
    }

    /// The exact k-th largest key (meets any slack).
    static std::uint32_t kth_largest_key(const B&, VectorView<const std::uint32_t> keys, index_t k, index_t) {
        std::vector<std::uint32_t> sorted(keys.data(), keys.data() + keys.size());
        std::sort(sorted.begin(), sorted.end(), std::greater<>());
        return sorted[std::size_t(k - 1)];
    }

    /// out[v] = sum_s lut[s][code(v, s)] for the 32 * blocks vectors of `codes` (backend/pq4_codes.hpp);
    /// masks[b] bit v = (out[32 b + v] >= threshold) unless masks is null.
    static void pq4_scan(const B&, const std::uint8_t* codes, index_t blocks, index_t m, const std::uint8_t* lut,
                         std::uint16_t threshold, std::uint16_t* out, std::uint32_t* masks) {
        for (index_t v = 0; v < blocks * kPq4BlockRows; ++v) {
            std::uint32_t acc = 0;
            for (index_t s = 0; s < m; ++s) acc += lut[16 * s + pq4_get(codes, v, s, m)];
            out[v] = static_cast<std::uint16_t>(acc);
        }
        if (masks)
            for (index_t b = 0; b < blocks; ++b) {
                masks[b] = 0;
                for (index_t v = 0; v < kPq4BlockRows; ++v)
                    masks[b] |= std::uint32_t(out[b * kPq4BlockRows + v] >= threshold) << v;
            }
    }

    template <class T>
    static void squared_distances(const B&, MatrixView<const T> x, VectorView<const T> y, VectorView<T> out) {
        for (index_t i = 0; i < x.rows(); ++i) {
            double acc = 0.0;
            for (index_t c = 0; c < x.cols(); ++c) {
                const double t = double(x(i, c)) - (y.data() ? double(y(c)) : 0.0);
                acc += t * t;
            }
            out(i) = static_cast<T>(acc);
        }
    }

    template <class T>
    static void shifted_argmin_rows(const B&, MatrixView<T> g, VectorView<const T> norms, VectorView<index_t> arg,
                                    VectorView<T> best) {
        for (index_t i = 0; i < g.rows(); ++i) {
            index_t at = 0;
            for (index_t k = 0; k < g.cols(); ++k) {
                g(i, k) = norms(k) - T(2) * g(i, k);
                if (g(i, k) < g(i, at)) at = k;
            }
            arg(i) = at;
            best(i) = g(i, at);
        }
    }

    /// Rows added in row order in double, each centroid's sum scaled once by
    /// 1 / count and rounded to T; an empty cluster keeps its centroid.
    template <class T>
    static void mean_by_label(const B&, MatrixView<const T> x, VectorView<const index_t> labels,
                              MatrixView<T> centroids, VectorView<index_t> counts) {
        const index_t k = centroids.rows(), d = centroids.cols();
        std::vector<double> sums(static_cast<std::size_t>(k * d), 0.0);
        for (index_t c = 0; c < k; ++c) counts(c) = 0;
        for (index_t i = 0; i < x.rows(); ++i) {
            const index_t l = labels(i);
            if (l < 0 || l >= k) continue;  // ops:: has rejected these on host memory
            ++counts(l);
            double* s = sums.data() + l * d;
            for (index_t t = 0; t < d; ++t) s[t] += double(x(i, t));
        }
        for (index_t c = 0; c < k; ++c) {
            if (counts(c) == 0) continue;
            const double inv = 1.0 / double(counts(c));
            for (index_t t = 0; t < d; ++t) centroids(c, t) = static_cast<T>(sums[std::size_t(c * d + t)] * inv);
        }
    }

    template <class T>
    static index_t offer_smallest(const B&, VectorView<T> g, VectorView<const T> norms, T base, index_t first,
                                  VectorView<T> best_scores, VectorView<index_t> best_ids, index_t filled) {
        const index_t cap = best_scores.size();
        for (index_t k = 0; k < g.size(); ++k) {
            const T s = g(k) = base + (norms(k) - T(2) * g(k));
            if (filled == cap && !(s < best_scores(cap - 1))) continue;
            index_t p = filled < cap ? filled++ : cap - 1;
            for (; p > 0 && s < best_scores(p - 1); --p) {
                best_scores(p) = best_scores(p - 1);
                best_ids(p) = best_ids(p - 1);
            }
            best_scores(p) = s;
            best_ids(p) = first + k;
        }
        return filled;
    }

    template <class T>
    static index_t top_k_rows(const B&, MatrixView<const T> scores, index_t k, MatrixView<row_id_t> ids,
                              MatrixView<T> values) {
        std::vector<row_id_t> order(static_cast<std::size_t>(scores.cols()));
        for (index_t r = 0; r < scores.rows(); ++r) {
            std::iota(order.begin(), order.end(), row_id_t{0});
            const T* s = scores.row(r);
            for (index_t c = 0; c < scores.cols(); ++c)
                if (std::isnan(s[c])) return r;
            std::stable_sort(order.begin(), order.end(), [&](row_id_t a, row_id_t b) { return s[a] > s[b]; });
            for (index_t j = 0; j < k; ++j) {
                ids(r, j) = order[static_cast<std::size_t>(j)];
                values(r, j) = s[order[static_cast<std::size_t>(j)]];
            }
        }
        return -1;
    }

    /// ids (and scores, if not null) [k] = the k largest keys, best first.
    static void write_top_keys(std::vector<std::uint64_t>& keys, index_t k, row_id_t* ids, float* scores) {
        std::sort(keys.begin(), keys.end(), std::greater<>());
        for (index_t i = 0; i < k; ++i) {
            ids[i] = retrieval_keys::key_id(keys[std::size_t(i)]);
            if (scores) scores[i] = retrieval_keys::key_score(keys[std::size_t(i)]);
        }
    }

    template <class T>
    static T sum(const B&, MatrixView<const T> x) {
        double acc = 0.0;
        for (index_t r = 0; r < x.rows(); ++r)
            for (index_t c = 0; c < x.cols(); ++c) acc += double(x(r, c));
        return static_cast<T>(acc);
    }

    template <class T>
    static T max_value(const B&, MatrixView<const T> x) {
        T m = -std::numeric_limits<T>::infinity();
        for (index_t r = 0; r < x.rows(); ++r)
            for (index_t c = 0; c < x.cols(); ++c) {
                if (std::isnan(x(r, c))) return x(r, c);  // NaN wins, as documented in ops::max_value
                m = std::max(m, x(r, c));
            }
        return m;
    }

    template <class T>
    static void sum_rows(const B&, MatrixView<const T> x, VectorView<T> out) {
        for (index_t c = 0; c < x.cols(); ++c) {
            double acc = 0.0;
            for (index_t r = 0; r < x.rows(); ++r) acc += double(x(r, c));
            out(c) = static_cast<T>(acc);
        }
    }
};

RECBLOCKS_NAMESPACE_END
