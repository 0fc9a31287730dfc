"""RecBole's BERT4Rec (recbole/model/sequential_recommender/bert4rec.py), in two versions:
``output_head=True`` as in its current code (output_ffn, GELU, output_ln and output_bias before
the item table) and ``output_head=False`` as in earlier releases (the encoder's state scored
directly, no bias).

Facts from the source that a checkpoint does not show:
* vocabulary: n_items = N + 1 counts the padding id; the [mask] token is id n_items (= N + 1),
  so item_embedding has N + 2 rows; output_bias has n_items = N + 1 entries (entry 0 for the
  padding id);
* sequences are RIGHT-padded; inference (reconstruct_test_data) writes [mask] after the last
  item, then drops the FIRST slot of the sequence, so a history shorter than max_len also
  loses its oldest item; the output is read at the [mask];
* positions 0..L-1 by slot (the oldest kept item has position 0); input =
  Drop(LayerNorm(item_embedding + position_embedding)), no sqrt(D) scale;
* bidirectional attention with a key-padding mask (additive -10000); post-norm encoder
  (recbole_transformer), erf-GELU, no final LayerNorm;
* full_sort_predict scores rows 0..N of item_embedding (the padding row included, [mask]
  excluded) + output_bias.
"""
import torch
from torch import nn

from .recbole_transformer import TransformerEncoder, attention_mask


class BERT4Rec(nn.Module):
    def __init__(self, item_num, maxlen, hidden_size, n_layers, n_heads, inner_size=None, layer_norm_eps=1e-12,
                 output_head=True):
        super().__init__()
        inner_size = 4 * hidden_size if inner_size is None else inner_size
        self.n_items = item_num + 1
        self.mask_token = self.n_items
        self.output_head = output_head
        self.item_embedding = nn.Embedding(self.n_items + 1, hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(maxlen, hidden_size)
        self.trm_encoder = TransformerEncoder(n_layers, n_heads, hidden_size, inner_size, layer_norm_eps)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        if output_head:
            self.output_ffn = nn.Linear(hidden_size, hidden_size)
            self.output_gelu = nn.GELU()
            self.output_ln = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
            self.output_bias = nn.Parameter(torch.zeros(self.n_items))

    def reconstruct_test_data(self, item_seq, item_seq_len):
        padding = torch.zeros(item_seq.size(0), dtype=torch.long)
        item_seq = torch.cat((item_seq, padding.unsqueeze(-1)), dim=-1)  # [B, L + 1]
        for b, last in enumerate(item_seq_len):
            item_seq[b][last] = self.mask_token
        return item_seq[:, 1:]

    def forward(self, item_seq):
        position_ids = torch.arange(item_seq.size(1), dtype=torch.long).unsqueeze(0).expand_as(item_seq)
        input_emb = self.LayerNorm(self.item_embedding(item_seq) + self.position_embedding(position_ids))
        output = self.trm_encoder(input_emb, attention_mask(item_seq, bidirectional=True, dtype=input_emb.dtype))
        if self.output_head:
            output = self.output_ln(self.output_gelu(self.output_ffn(output)))
        return output

    def full_sort_predict(self, item_seq, item_seq_len):
        seq = self.reconstruct_test_data(item_seq, item_seq_len)
        out = self.forward(seq)[torch.arange(seq.size(0)), item_seq_len - 1]
        scores = out @ self.item_embedding.weight[: self.n_items].T
        return scores + self.output_bias if self.output_head else scores

    def score_all(self, item_seq, item_seq_len):
        return self.full_sort_predict(item_seq, item_seq_len)[:, 1:]
