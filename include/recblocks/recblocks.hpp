#pragma once
// recblocks — umbrella header for users: includes every public component.
// The library's own headers never include this file.
#include "recblocks/version.hpp"

// core
#include "recblocks/core/aligned_buffer.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/convert.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/quantize_i8.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/shape.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/core/types.hpp"
#include "recblocks/core/workspace.hpp"

// backends
#include "recblocks/backend/tags.hpp"
#include "recblocks/backend/primitives.hpp"
#include "recblocks/backend/cpu/cpu_features.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"

// ops
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/ops/softmax.hpp"
#include "recblocks/ops/target_attention.hpp"
#include "recblocks/ops/top_k.hpp"
#include "recblocks/ops/validate.hpp"

// parameters: what blocks, losses, optimisers and io share
#include "recblocks/params/matryoshka_widths.hpp"
#include "recblocks/params/parameter_list.hpp"

// data
#include "recblocks/data/leave_one_out.hpp"
#include "recblocks/data/left_padded_batch.hpp"
#include "recblocks/data/sequence_dataset.hpp"

// eval
#include "recblocks/eval/metrics.hpp"
#include "recblocks/eval/protocols.hpp"

// policies and blocks
#include "recblocks/blocks/multi_head_self_attention.hpp"
#include "recblocks/policies/attention_mask.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/blocks/sequence_embedding.hpp"
#include "recblocks/blocks/layer_norm.hpp"
#include "recblocks/blocks/transformer_block.hpp"
#include "recblocks/blocks/transformer_stack.hpp"
#include "recblocks/policies/norm_placement.hpp"
#include "recblocks/blocks/feed_forward.hpp"
#include "recblocks/blocks/linear.hpp"
#include "recblocks/blocks/bias.hpp"

// Losses and optimisation
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/losses/sampled_softmax.hpp"
#include "recblocks/losses/softmax_cross_entropy.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/optim/gradients.hpp"
#include "recblocks/optim/lr_schedule.hpp"
#include "recblocks/io/safetensors.hpp"

// Data pipelines, models, training, evaluation
#include "recblocks/data/next_item_batches.hpp"
#include "recblocks/eval/next_item_evaluation.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/models/incremental_sasrec.hpp"
#include "recblocks/train/early_stopping.hpp"
#include "recblocks/train/epochs.hpp"
#include "recblocks/train/next_item_trainer.hpp"
#include "recblocks/data/cloze_batches.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/train/cloze_trainer.hpp"
#include "recblocks/train/checkpoint.hpp"

// Semantic IDs, the catalogue trie and beam search over codes
#include "recblocks/tokenizers/semantic_ids.hpp"
#include "recblocks/tokenizers/code_trie.hpp"
#include "recblocks/decoding/constrained_beam_search.hpp"
#include "recblocks/decoding/flat_catalogue.hpp"

// Item tokenizers (one Quantizer contract for RQ and FSQ)
#include "recblocks/tokenizers/quantizer.hpp"
#include "recblocks/tokenizers/finite_scalar_quantizer.hpp"
#include "recblocks/tokenizers/fsq_autoencoder.hpp"
#include "recblocks/tokenizers/kmeans.hpp"
#include "recblocks/tokenizers/residual_quantizer.hpp"

// Generative retrieval: item text features and the generative retriever
#include "recblocks/data/item_text_features.hpp"
#include "recblocks/models/generative_retriever.hpp"
#include "recblocks/train/generative_trainer.hpp"

// Item indexing: attributes and item vectors, one contract for sequential / collaborative /
// semantic RQ-KMeans / random IDs, TIGER and LC-Rec collision resolution
#include "recblocks/data/item_attributes.hpp"
#include "recblocks/data/item_vectors.hpp"
#include "recblocks/indexing/item_codes.hpp"
#include "recblocks/indexing/sequential_indexing.hpp"
#include "recblocks/indexing/random_indexing.hpp"
#include "recblocks/indexing/collaborative_indexing.hpp"
#include "recblocks/indexing/semantic_rq_indexing.hpp"

// Matryoshka embeddings: nested widths, prefix views, MRL / MRL-E losses, fMRLRec nested linear
#include "recblocks/blocks/matryoshka_embedding.hpp"
#include "recblocks/blocks/matryoshka_linear.hpp"
#include "recblocks/eval/matryoshka_evaluation.hpp"
#include "recblocks/losses/matryoshka_loss.hpp"

// Retrieval: exact MIPS top-k (f32 / bf16 / int8), funnel retrieval, MaxSim late interaction
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/funnel_index.hpp"
#include "recblocks/retrieval/max_sim.hpp"

// DARE: decoupled embeddings, two-stage long-sequence target attention, AUC / GAUC
#include "recblocks/blocks/decoupled_embedding.hpp"
#include "recblocks/data/long_history_ctr.hpp"
#include "recblocks/eval/auc.hpp"
#include "recblocks/models/dare.hpp"
#include "recblocks/train/ctr_trainer.hpp"
