#pragma once
// Attention mask policies: which key position k a query position q may see,
// within one sequence. Key padding (left-padded sequences) is applied on top
// by the attention block from a per-sequence keep vector.
//
//   CausalMask         k <= q                       SASRec
//   BidirectionalMask  every k                      BERT4Rec
//   BlockCausalMask    item(k) <= item(q), with item(t) = t / tokens_per_item
//                      (bidirectional inside an item's tokens, causal across
//                      items)                       RecGPT's hybrid attention
//
// A mask is any type with `bool visible(index_t q, index_t k) const` (the
// AttentionMask concept); it may carry state, like BlockCausalMask. The
// attention block takes prefix masks (below), which every backend runs as one
// batched call.
// Optionally `index_t key_end(index_t q_end) const`: no query below q_end sees a
// key at or after key_end(q_end). The attention block then skips those scores
// (for causal masks, about a third of the attention work).
// A mask whose visible keys for query q are exactly [0, key_end(q + 1)) (every
// key when it has no key_end) may declare `static constexpr bool prefix = true`
// (the PrefixMask concept): attention runs it as one batched call
// (ops/attention.hpp) and never builds an [L, L] mask. All three below do.
#include <algorithm>
#include <concepts>

#include "recblocks/core/check.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace policies {

template <class M>
concept AttentionMask = requires(const M m, index_t q, index_t k) {
    { m.visible(q, k) } -> std::convertible_to<bool>;
};

struct CausalMask {
    static constexpr bool prefix = true;
    [[nodiscard]] constexpr bool visible(index_t q, index_t k) const { return k <= q; }
    [[nodiscard]] constexpr index_t key_end(index_t q_end) const { return q_end; }
};

struct BidirectionalMask {
    static constexpr bool prefix = true;
    [[nodiscard]] constexpr bool visible(index_t, index_t) const { return true; }
};

struct BlockCausalMask {
    static constexpr bool prefix = true;
    index_t tokens_per_item = 1;
    constexpr explicit BlockCausalMask(index_t tokens) : tokens_per_item(tokens) {
        RECBLOCKS_CHECK_VALUE(tokens >= 1, "BlockCausalMask: tokens_per_item must be >= 1, got ", tokens);
    }
    [[nodiscard]] constexpr bool visible(index_t q, index_t k) const {
        return k / tokens_per_item <= q / tokens_per_item;
    }
    [[nodiscard]] constexpr index_t key_end(index_t q_end) const {
        return (q_end + tokens_per_item - 1) / tokens_per_item * tokens_per_item;
    }
};

/// The keys that queries [0, q_end) may see lie in [0, key_end): the mask's own
/// bound when it has one, else every key.
template <AttentionMask M>
constexpr index_t visible_key_end(const M& m, index_t q_end, index_t len) {
    if constexpr (requires { m.key_end(q_end); }) return std::min(len, m.key_end(q_end));
    else return len;
}

/// Visible keys of query q are exactly [0, visible_key_end(m, q + 1, len)).
template <class M>
concept PrefixMask = AttentionMask<M> && requires { requires M::prefix; };

static_assert(PrefixMask<CausalMask> && PrefixMask<BidirectionalMask> && PrefixMask<BlockCausalMask>);
static_assert(AttentionMask<CausalMask> && AttentionMask<BidirectionalMask> && AttentionMask<BlockCausalMask>);

}  // namespace policies
RECBLOCKS_NAMESPACE_END
