"""RecBole's transformer encoder (recbole/model/layers.py: MultiHeadAttention, FeedForward,
TransformerLayer, TransformerEncoder), shared by its SASRec and BERT4Rec.

Facts from the source that a checkpoint does not show:
* post-norm (BERT): h = LN(x + Drop(dense(attention))); y = LN(h + Drop(dense_2(act(dense_1(h)))));
* separate query / key / value nn.Linear layers ([D, D] each, with biases), scores scaled by
  1/sqrt(D/H), the mask ADDED to the scores (0 or -10000, not -inf);
* hidden_act 'gelu' is the erf form x * 0.5 * (1 + erf(x / sqrt(2))); the FFN width is the
  config's inner_size; LayerNorm eps is the config's layer_norm_eps (default 1e-12);
* no final LayerNorm after the last layer.
State_dict names: layer.<i>.multi_head_attention.{query,key,value,dense,LayerNorm}.*,
layer.<i>.feed_forward.{dense_1,dense_2,LayerNorm}.*.
"""
import copy
import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, n_heads, hidden_size, layer_norm_eps):
        super().__init__()
        self.num_attention_heads = n_heads
        self.attention_head_size = hidden_size // n_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def heads(self, x):  # [B, L, D] -> [B, H, L, D/H]
        return x.view(*x.shape[:-1], self.num_attention_heads, self.attention_head_size).permute(0, 2, 1, 3)

    def forward(self, input_tensor, attention_mask):
        q, k, v = self.heads(self.query(input_tensor)), self.heads(self.key(input_tensor)), self.heads(self.value(input_tensor))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        scores = scores + attention_mask
        probs = torch.softmax(scores, dim=-1)
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        context = context.view(*context.shape[:-2], -1)
        return self.LayerNorm(self.dense(context) + input_tensor)


class FeedForward(nn.Module):
    def __init__(self, hidden_size, inner_size, layer_norm_eps):
        super().__init__()
        self.dense_1 = nn.Linear(hidden_size, inner_size)
        self.dense_2 = nn.Linear(inner_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    @staticmethod
    def gelu(x):
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))

    def forward(self, input_tensor):
        return self.LayerNorm(self.dense_2(self.gelu(self.dense_1(input_tensor))) + input_tensor)


class TransformerLayer(nn.Module):
    def __init__(self, n_heads, hidden_size, inner_size, layer_norm_eps):
        super().__init__()
        self.multi_head_attention = MultiHeadAttention(n_heads, hidden_size, layer_norm_eps)
        self.feed_forward = FeedForward(hidden_size, inner_size, layer_norm_eps)

    def forward(self, hidden_states, attention_mask):
        return self.feed_forward(self.multi_head_attention(hidden_states, attention_mask))


class TransformerEncoder(nn.Module):
    def __init__(self, n_layers, n_heads, hidden_size, inner_size, layer_norm_eps):
        super().__init__()
        layer = TransformerLayer(n_heads, hidden_size, inner_size, layer_norm_eps)
        self.layer = nn.ModuleList([copy.deepcopy(layer) for _ in range(n_layers)])

    def forward(self, hidden_states, attention_mask):
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask)
        return hidden_states


def attention_mask(item_seq, bidirectional, dtype):
    """RecBole's get_attention_mask: 0 where a query may attend, -10000 elsewhere, [B, 1, L, L]."""
    keep = (item_seq != 0).unsqueeze(1).unsqueeze(2)  # [B, 1, 1, L]
    if not bidirectional:
        keep = torch.tril(keep.expand((-1, -1, item_seq.size(-1), -1)))
    return torch.where(keep, 0.0, -10000.0).to(dtype)
