"""pmixer/SASRec.pytorch, the model code of 2024 onwards (python/model.py, class SASRec).

Facts from the source that a checkpoint does not show:
* positions: ``pos_emb`` has maxlen + 1 rows (padding_idx=0); a real item at slot t (0-based,
  left-padded input) uses row t + 1, a padded slot row 0;
* item embedding scaled by sqrt(D); no timeline mask: padded slots are NOT zeroed, neither
  after the embedding nor after a block (their rows of ``item_emb`` / ``pos_emb`` are zero
  because of padding_idx, so they enter as zero and then carry values);
* attention: ``nn.MultiheadAttention`` (seq-first), causal mask only, no key-padding mask, so
  real positions attend to padded ones;
* ``norm_first=False`` (the default): post-norm, x = LN_a(x + MHA(x)); x = LN_f(x + FFN(x));
  ``norm_first=True``: pre-norm, x = x + MHA(LN_a(x)); x = x + FFN(LN_f(x));
  the feed-forward (Conv1d, ReLU) has no residual of its own in this version;
* ``last_layernorm`` after the blocks; LayerNorm eps 1e-8 everywhere;
* score of item i = last position's feature . item_emb[i] (tied table, no bias).
(The source hard-codes the positional table to 201 rows in one revision; here it has
maxlen + 1 rows, the rows the model reads.)
"""
import torch


class PointWiseFeedForward(torch.nn.Module):
    def __init__(self, hidden_units, dropout_rate):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(hidden_units, hidden_units, kernel_size=1)
        self.dropout1 = torch.nn.Dropout(p=dropout_rate)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv1d(hidden_units, hidden_units, kernel_size=1)
        self.dropout2 = torch.nn.Dropout(p=dropout_rate)

    def forward(self, inputs):  # [B, L, D] -> [B, L, D], no residual here
        h = self.conv1(inputs.transpose(-1, -2))
        h = self.dropout2(self.conv2(self.relu(self.dropout1(h))))
        return h.transpose(-1, -2)


class SASRec(torch.nn.Module):
    def __init__(self, item_num, maxlen, hidden_units, num_blocks, num_heads, dropout_rate=0.0, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.item_emb = torch.nn.Embedding(item_num + 1, hidden_units, padding_idx=0)
        self.pos_emb = torch.nn.Embedding(maxlen + 1, hidden_units, padding_idx=0)
        self.emb_dropout = torch.nn.Dropout(p=dropout_rate)
        self.attention_layernorms = torch.nn.ModuleList()
        self.attention_layers = torch.nn.ModuleList()
        self.forward_layernorms = torch.nn.ModuleList()
        self.forward_layers = torch.nn.ModuleList()
        self.last_layernorm = torch.nn.LayerNorm(hidden_units, eps=1e-8)
        for _ in range(num_blocks):
            self.attention_layernorms.append(torch.nn.LayerNorm(hidden_units, eps=1e-8))
            self.attention_layers.append(torch.nn.MultiheadAttention(hidden_units, num_heads, dropout_rate))
            self.forward_layernorms.append(torch.nn.LayerNorm(hidden_units, eps=1e-8))
            self.forward_layers.append(PointWiseFeedForward(hidden_units, dropout_rate))

    def log2feats(self, log_seqs):  # log_seqs: LongTensor [B, L], left-padded with 0
        seqs = self.item_emb(log_seqs) * self.item_emb.embedding_dim ** 0.5
        B, L = log_seqs.shape
        poss = torch.arange(1, L + 1, dtype=torch.long).unsqueeze(0).expand(B, -1)
        poss = poss * (log_seqs != 0)
        seqs = seqs + self.pos_emb(poss)
        seqs = self.emb_dropout(seqs)
        attention_mask = ~torch.tril(torch.ones((L, L), dtype=torch.bool))
        for i in range(len(self.attention_layers)):
            seqs = torch.transpose(seqs, 0, 1)
            if self.norm_first:
                x = self.attention_layernorms[i](seqs)
                mha_outputs, _ = self.attention_layers[i](x, x, x, attn_mask=attention_mask)
                seqs = seqs + mha_outputs
                seqs = torch.transpose(seqs, 0, 1)
                seqs = seqs + self.forward_layers[i](self.forward_layernorms[i](seqs))
            else:
                mha_outputs, _ = self.attention_layers[i](seqs, seqs, seqs, attn_mask=attention_mask)
                seqs = self.attention_layernorms[i](seqs + mha_outputs)
                seqs = torch.transpose(seqs, 0, 1)
                seqs = self.forward_layernorms[i](seqs + self.forward_layers[i](seqs))
        return self.last_layernorm(seqs)

    def score_all(self, log_seqs):
        """Scores [B, N] of items 1..N from the last slot (the source's predict over every item)."""
        final_feat = self.log2feats(log_seqs)[:, -1, :]
        return final_feat @ self.item_emb.weight[1:].T
