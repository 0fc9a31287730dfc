// Every public configuration and options struct can be written with named fields (C++20
// designated initialisers, the way the docs write them): each stays an aggregate whose fields
// are declared in the order used here. Adding a constructor or reordering fields breaks this
// file at compile time, as it would break users' code; the checks then confirm that the named
// values land in their fields and the rest keep their defaults.
#include <catch2/catch.hpp>

#include "recblocks/recblocks.hpp"
#include "recblocks/retrieval/ivf_index.hpp"
#include "recblocks/serving/next_item_service.hpp"

using namespace recblocks;

TEST_CASE("configs take designated initialisers: models", "[api][configs]") {
    const models::SASRecConfig s{.num_items = 100, .max_len = 50, .d_model = 32, .heads = 2, .dropout = 0.5,
                                 .l2_emb = 0.1, .init = models::SASRecInit::scaled_normal};
    CHECK(s.num_items == 100);
    CHECK(s.max_len == 50);
    CHECK(s.d_model == 32);
    CHECK(s.num_blocks == 2);  // default
    CHECK(s.heads == 2);
    CHECK(s.dropout == 0.5);
    CHECK(s.l2_emb == 0.1);
    CHECK(s.init == models::SASRecInit::scaled_normal);
    CHECK(s.timeline_mask);  // default

    const models::BERT4RecConfig b{.num_items = 10, .max_len = 20, .d_model = 16, .init_std = 0.01, .l2_emb = 0.2};
    CHECK(b.num_items == 10);
    CHECK(b.heads == 2);  // default
    CHECK(b.init_std == 0.01);
    CHECK(b.l2_emb == 0.2);

    const models::GenerativeRetrieverConfig g{.max_len = 10, .d_model = 16, .dropout = 0.0};
    CHECK(g.max_len == 10);
    CHECK(g.heads == 2);
    const models::DareConfig d{.num_items = 7, .attention_dim = 4, .representation_dim = 8, .top_k = 3};
    CHECK(d.top_k == 3);
    CHECK(d.policy == models::EmbeddingPolicy::decoupled);
    const models::IncrementalSASRecOptions inc{.overflow_keep = 5};
    CHECK(inc.overflow_keep == 5);
}

TEST_CASE("configs take designated initialisers: blocks", "[api][configs]") {
    const blocks::SequenceEmbedding<float>::Config se{.num_items = 9, .d_model = 4, .max_len = 3, .dropout = 0.1};
    CHECK(se.scale_by_sqrt_d);
    CHECK(se.positions == blocks::PositionRows::per_slot);
    const blocks::FeedForward<float>::Config ff{.d_model = 4, .inner = 8, .activation = Activation::gelu};
    CHECK(ff.residual);
    const blocks::Linear<float>::Config li{.in_features = 3, .out_features = 2, .bias = false};
    CHECK_FALSE(li.bias);
    const blocks::TransformerBlockConfig tb{.d_model = 8, .heads = 2, .ffn_inner = 32, .ln_eps = 1e-12};
    CHECK(tb.attention_dropout == -1.0);
    const blocks::TransformerStack<float, policies::CausalMask, policies::QueryNorm>::Config st{.num_blocks = 3};
    CHECK(st.block.heads == 1);
    CHECK(st.final_norm);
    const blocks::DecoupledEmbedding<float>::Config de{.num_ids = 5, .attention_dim = 2, .representation_dim = 4};
    CHECK(de.init_std == 0.05);
}

TEST_CASE("configs take designated initialisers: training, evaluation, serving, tokenizers, retrieval",
          "[api][configs]") {
    const train::NextItemTrainingOptions n{.batch_size = 64, .lr = 1e-2, .seed = 7};
    CHECK(n.beta2 == 0.98);
    const train::ClozeTrainingOptions c{.batch_size = 32, .lr = 1e-3, .warmup_steps = 0, .mask_prob = 0.3};
    CHECK(c.weight_decay == 0.01);
    const train::CtrTrainingOptions ctr{.lr = 1e-2, .clip_norm = 1.0};
    CHECK(ctr.beta2 == 0.999);
    const train::GenerativeTrainingOptions gen{.batch_size = 16, .seed = 3};
    CHECK(gen.clip_norm == 1.0);
    const train::EarlyStoppingOptions es{.patience = 3, .min_delta = 1e-3};
    CHECK_FALSE(es.lower_is_better);
    const optim::AdamConfig adam{.lr = 1e-2, .weight_decay = 0.01, .decoupled = true};
    CHECK(adam.beta1 == 0.9);
    const eval::NextItemEvalOptions ev{.protocol = eval::Protocol::full, .validation = true};
    CHECK(ev.num_negatives == eval::kSampledNegatives);
    const serving::NextItemServiceOptions svc{.cache_capacity = 10};
    CHECK(svc.max_batch == 32);
    const tokenizers::KMeansConfig km{.k = 16, .iterations = 5};
    CHECK(km.seed == 1234);
    const tokenizers::ResidualQuantizerConfig rq{.levels = 2, .codebook_size = 16};
    CHECK(rq.beam_size == 1);
    const tokenizers::FsqConfig fsq{.levels = {8, 5, 5}, .variant = tokenizers::FsqVariant::paper};
    CHECK(fsq.levels.size() == 3);
    const retrieval::IvfConfig ivf{.nlist = 8, .pq_m = 4};
    CHECK(ivf.kmeans_iterations == 10);
    const retrieval::IvfSearchParams sp{.nprobe = 4};
    CHECK(sp.rerank == 40);
    const data::LongHistoryCtrOptions lh{.min_history = 5, .test_events = 2};
    CHECK(lh.negatives == 1);
    const data::TextFeatureConfig tf{.dim = 16};
    CHECK(tf.seed == 1);
}
