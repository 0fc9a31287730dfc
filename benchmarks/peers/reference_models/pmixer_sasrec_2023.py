"""pmixer/SASRec.pytorch, the model code before 2024 (model.py, class SASRec), which follows the
authors' TensorFlow code.

Facts from the source that a checkpoint does not show:
* positions: ``pos_emb`` has maxlen rows; slot t (0-based, left-padded input) uses row t for
  every slot, padded ones too;
* item embedding scaled by sqrt(D); the "timeline mask": padded slots are zeroed after the
  embedding and after every block;
* the block normalises only the queries: Q = LN_a(x); x = Q + MHA(Q, x, x) (residual from
  the normalised queries); x = LN_f(x); x = FFN(x) where the feed-forward (Conv1d, ReLU)
  adds its own input (the normalised x) as residual;
* attention: causal mask only, no key-padding mask (padded keys are zero vectors after the
  timeline mask, but still take part in the softmax);
* ``last_layernorm`` after the blocks; LayerNorm eps 1e-8; tied output table, no bias.
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

    def forward(self, inputs):  # residual inside: returns inputs + FFN(inputs)
        h = self.conv1(inputs.transpose(-1, -2))
        h = self.dropout2(self.conv2(self.relu(self.dropout1(h))))
        return h.transpose(-1, -2) + inputs


class SASRec(torch.nn.Module):
    def __init__(self, item_num, maxlen, hidden_units, num_blocks, num_heads, dropout_rate=0.0):
        super().__init__()
        self.item_emb = torch.nn.Embedding(item_num + 1, hidden_units, padding_idx=0)
        self.pos_emb = torch.nn.Embedding(maxlen, hidden_units)
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

    def log2feats(self, log_seqs):  # LongTensor [B, L], left-padded with 0
        seqs = self.item_emb(log_seqs) * self.item_emb.embedding_dim ** 0.5
        B, L = log_seqs.shape
        positions = torch.arange(L, dtype=torch.long).unsqueeze(0).expand(B, -1)
        seqs = seqs + self.pos_emb(positions)
        seqs = self.emb_dropout(seqs)
        timeline_mask = log_seqs == 0
        seqs = seqs * ~timeline_mask.unsqueeze(-1)
        attention_mask = ~torch.tril(torch.ones((L, L), dtype=torch.bool))
        for i in range(len(self.attention_layers)):
            seqs = torch.transpose(seqs, 0, 1)
            Q = self.attention_layernorms[i](seqs)
            mha_outputs, _ = self.attention_layers[i](Q, seqs, seqs, attn_mask=attention_mask)
            seqs = Q + mha_outputs
            seqs = torch.transpose(seqs, 0, 1)
            seqs = self.forward_layernorms[i](seqs)
            seqs = self.forward_layers[i](seqs)
            seqs = seqs * ~timeline_mask.unsqueeze(-1)
        return self.last_layernorm(seqs)

    def score_all(self, log_seqs):
        final_feat = self.log2feats(log_seqs)[:, -1, :]
        return final_feat @ self.item_emb.weight[1:].T
