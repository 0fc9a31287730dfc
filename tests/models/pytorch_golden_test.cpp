// Every block's output and gradients against PyTorch golden files
// (tests/golden/*.safetensors, written by tests/golden/make_golden.py in
// float64): nn.LayerNorm, nn.MultiheadAttention (causal, padded keys,
// separate queries and keys/values), and whole SASRec models in the three
// norm placements, loaded through the PyTorch name map (pmixer's names,
// Conv1d feed-forward weights).
#include <catch2/catch.hpp>

#include <cmath>

#include "../support/compare.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/blocks/layer_norm.hpp"
#include "recblocks/blocks/multi_head_self_attention.hpp"
#include "recblocks/io/pytorch_import.hpp"
#include "recblocks/models/sasrec.hpp"

using namespace recblocks;

namespace {

io::SafetensorsReader golden(const std::string& name) {
    return io::SafetensorsReader::open(std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/" + name + ".safetensors");
}

/// got (n values) against tensor `name` of the file, in double.
void require_close(const io::SafetensorsReader& r, const std::string& name, const double* got, double tol) {
    const auto& rec = r.record(name);
    std::vector<double> want(static_cast<std::size_t>(rec.numel()));
    Shape<1> s{{static_cast<index_t>(want.size())}};
    // Flatten through a rank-matched load.
    ParamRef<double> tmp{name, want.data(), nullptr, {}, ParamKind::weight};
    for (auto e : rec.shape) tmp.shape.push_back(static_cast<index_t>(e));
    if (rec.shape.empty()) want[0] = r.load_scalar<double>(name);
    else io::load_param(r, name, tmp);
    double worst = 0;
    std::size_t at = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double err = std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i]));
        if (err > worst) {
            worst = err;
            at = i;
        }
    }
    INFO(r.source() << ": " << name << "[" << at << "] got " << got[at] << " want " << want[at] << " (" << s[0]
                    << " values)");
    REQUIRE(worst <= tol);
}

template <class T, std::size_t R>
Tensor<T, R> load(const io::SafetensorsReader& r, const std::string& name) {
    return r.load<T, R>(name);
}

}  // namespace

TEST_CASE("golden: LayerNorm matches nn.LayerNorm", "[golden][pytorch]") {
    const auto r = golden("layer_norm");
    const auto x = load<double, 3>(r, "x");
    const auto dy = load<double, 3>(r, "dy");
    const index_t rows = x.extent(0) * x.extent(1), d = x.extent(2);
    blocks::LayerNorm<double> ln({d, 1e-8});
    r.load_into("weight", ln.params().weight.view());
    r.load_into("bias", ln.params().bias.view());
    Matrix<double> y(Shape<2>{{rows, d}}), dx(y.shape());
    ln.forward(backend::Reference{}, matrix_view<const double>(x.data(), rows, d), y.view());
    ln.backward(backend::Reference{}, matrix_view<const double>(dy.data(), rows, d), dx.view());
    require_close(r, "y", y.data(), 1e-12);
    require_close(r, "grad.x", dx.data(), 1e-10);
    require_close(r, "grad.weight", ln.grads().weight.data(), 1e-10);
    require_close(r, "grad.bias", ln.grads().bias.data(), 1e-10);
}

TEST_CASE("golden: attention matches nn.MultiheadAttention", "[golden][pytorch]") {
    for (const std::string file : {"mha_causal", "mha_bidirectional_padded", "mha_cross"}) {
        INFO(file);
        const auto r = golden(file);
        const bool cross = file == "mha_cross";
        const auto q = load<double, 3>(r, cross ? "q" : "x");
        const auto kv = cross ? load<double, 3>(r, "kv") : q;
        const auto dy = load<double, 3>(r, "dy");
        const index_t d = q.extent(2);
        const index_t heads = 2;
        auto run = [&](auto mask) {
            blocks::MultiHeadSelfAttention<double, decltype(mask)> mha({d, heads}, mask, Rng(1));
            auto& p = mha.params();
            r.load_into("in_proj_weight", p.in_proj_weight.view());
            r.load_into("in_proj_bias", p.in_proj_bias.view());
            r.load_into("out_proj.weight", p.out_proj_weight.view());
            r.load_into("out_proj.bias", p.out_proj_bias.view());
            Matrix<std::uint8_t> keep;
            MatrixView<const std::uint8_t> key_keep;
            if (r.contains("key_keep")) {
                keep = r.load<std::uint8_t, 2>("key_keep");
                key_keep = keep.cview();
            }
            Tensor<double, 3> y(q.shape()), dq(q.shape()), dkv(q.shape());
            if (cross) {
                mha.forward(backend::Reference{}, q.cview(), kv.cview(), y.view(), key_keep);
                mha.backward(backend::Reference{}, dy.cview(), dq.view(), dkv.view());
                require_close(r, "grad.q", dq.data(), 1e-10);
                require_close(r, "grad.kv", dkv.data(), 1e-10);
            } else {
                mha.forward(backend::Reference{}, q.cview(), y.view(), key_keep);
                mha.backward(backend::Reference{}, dy.cview(), dq.view());
                require_close(r, "grad.x", dq.data(), 1e-10);
            }
            require_close(r, "y", y.data(), 1e-12);
            require_close(r, "attn", mha.attention().data(), 1e-12);
            const auto& g = mha.grads();
            require_close(r, "grad.in_proj_weight", g.in_proj_weight.data(), 1e-10);
            require_close(r, "grad.in_proj_bias", g.in_proj_bias.data(), 1e-10);
            require_close(r, "grad.out_proj.weight", g.out_proj_weight.data(), 1e-10);
            require_close(r, "grad.out_proj.bias", g.out_proj_bias.data(), 1e-10);
        };
        if (file == "mha_bidirectional_padded") run(policies::BidirectionalMask{});
        else run(policies::CausalMask{});
    }
}

namespace {

template <class Norm, class T>
void check_sasrec_golden(const std::string& file, double tol) {
    INFO(file << " as " << (std::is_same_v<T, float> ? "float" : "double"));
    const auto r = golden(file);
    const auto& meta = r.metadata();
    models::SASRecConfig cfg;
    cfg.num_items = std::stoll(meta.at("num_items"));
    cfg.max_len = std::stoll(meta.at("maxlen"));
    cfg.d_model = std::stoll(meta.at("hidden"));
    cfg.num_blocks = std::stoll(meta.at("num_blocks"));
    cfg.heads = std::stoll(meta.at("num_heads"));
    cfg.dropout = 0.0;
    cfg.ln_eps = std::stod(meta.at("ln_eps"));
    cfg.mask_padding_keys = meta.at("mask_padding_keys") == "true";
    cfg.positions = blocks::PositionRows::from_one;
    models::SASRec<T, Norm> model(cfg, Rng(1));
    const auto unused = io::load_pytorch_state(std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/" + file + ".safetensors",
                                               model.params(), io::sasrec_pmixer_names());
    for (const auto& n : unused)  // only the inputs, outputs and gradients remain
        CHECK((n == "seq" || n == "pos" || n == "neg" || n == "log_feats" || n == "pos_logits" || n == "neg_logits" ||
               n == "loss" || n == "score_all" || n.rfind("grad.", 0) == 0));
    const auto seq = r.load<row_id_t, 2>("seq"), pos = r.load<row_id_t, 2>("pos"), neg = r.load<row_id_t, 2>("neg");
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    const auto loss = model.train_step_bce(be, pool, seq.cview(), pos.cview(), neg.cview(), 0);
    auto as_double = [](const T* p, index_t n) { return std::vector<double>(p, p + n); };
    const auto h = model.hidden();
    require_close(r, "log_feats", as_double(h.data(), h.numel()).data(), tol);
    const double lossv = loss.loss;
    require_close(r, "loss", &lossv, tol);
    const index_t bsz = seq.extent(0), len = seq.extent(1), d = cfg.d_model;
    std::vector<double> pl, nl;
    for (index_t i = 0; i < bsz * len; ++i) {
        double sp = 0, sn = 0;
        for (index_t c = 0; c < d; ++c) {
            sp += double(h.data()[i * d + c]) * double(model.item_table()(pos.data()[i], c));
            sn += double(h.data()[i * d + c]) * double(model.item_table()(neg.data()[i], c));
        }
        pl.push_back(sp);
        nl.push_back(sn);
    }
    require_close(r, "pos_logits", pl.data(), tol);
    require_close(r, "neg_logits", nl.data(), tol);
    for (const auto& p : model.params())
        require_close(r, "grad." + io::map_name(io::sasrec_pmixer_names(), p.name), as_double(p.grad, p.numel()).data(),
                      tol * 10);
    Matrix<T> scores(Shape<2>{{bsz, cfg.num_items + 1}});
    model.score_all(be, pool, seq.cview(), scores.view());
    std::vector<double> s;
    for (index_t b = 0; b < bsz; ++b)
        for (index_t i = 1; i <= cfg.num_items; ++i) s.push_back(double(scores(b, i)));
    require_close(r, "score_all", s.data(), tol);
}

}  // namespace

TEST_CASE("golden: SASRec (query, pre, post norm) matches the PyTorch model", "[golden][pytorch][sasrec]") {
    check_sasrec_golden<policies::QueryNorm, double>("sasrec_query", 1e-10);
    check_sasrec_golden<policies::PreNorm, double>("sasrec_pre", 1e-10);
    check_sasrec_golden<policies::PostNorm, double>("sasrec_post", 1e-10);
    // The float model (the one users serve) to 1e-4, as the issue asks of PyTorch parity.
    check_sasrec_golden<policies::QueryNorm, float>("sasrec_query", 1e-4);
    check_sasrec_golden<policies::PostNorm, float>("sasrec_post", 1e-4);
}
