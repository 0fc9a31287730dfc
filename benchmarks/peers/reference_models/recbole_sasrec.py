"""RecBole's SASRec (recbole/model/sequential_recommender/sasrec.py).

Facts from the source that a checkpoint does not show:
* sequences are RIGHT-padded; the output is read at the last real item (item_seq_len - 1);
* positions 0..L-1 by slot, so with right padding the oldest item has position 0;
* input = Drop(LayerNorm(item_embedding + position_embedding)): no sqrt(D) scale, a LayerNorm
  on the embedding sum (named LayerNorm), eps layer_norm_eps;
* causal mask and key-padding mask (additive -10000); no timeline mask; post-norm encoder
  (recbole_transformer), no final LayerNorm;
* full_sort_predict: seq_output @ item_embedding.weight.T over all n_items rows (row 0 =
  padding included); tied table, no bias.
"""
import torch
from torch import nn

from .recbole_transformer import TransformerEncoder, attention_mask


class SASRec(nn.Module):
    def __init__(self, item_num, maxlen, hidden_size, n_layers, n_heads, inner_size=None, layer_norm_eps=1e-12):
        super().__init__()
        inner_size = 4 * hidden_size if inner_size is None else inner_size
        self.n_items = item_num + 1  # RecBole counts the padding id
        self.item_embedding = nn.Embedding(self.n_items, hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(maxlen, hidden_size)
        self.trm_encoder = TransformerEncoder(n_layers, n_heads, hidden_size, inner_size, layer_norm_eps)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, item_seq, item_seq_len):
        position_ids = torch.arange(item_seq.size(1), dtype=torch.long).unsqueeze(0).expand_as(item_seq)
        input_emb = self.item_embedding(item_seq) + self.position_embedding(position_ids)
        input_emb = self.LayerNorm(input_emb)
        mask = attention_mask(item_seq, bidirectional=False, dtype=input_emb.dtype)
        output = self.trm_encoder(input_emb, mask)
        return output[torch.arange(item_seq.size(0)), item_seq_len - 1]  # gather_indexes

    def full_sort_predict(self, item_seq, item_seq_len):
        return self.forward(item_seq, item_seq_len) @ self.item_embedding.weight.T

    def score_all(self, item_seq, item_seq_len):
        """Scores [B, N] of items 1..N (full_sort_predict without the padding column)."""
        return self.full_sort_predict(item_seq, item_seq_len)[:, 1:]
