"""PyTorch reference models for recblocks: SASRec and BERT4Rec.

These modules are the specification the C++ blocks are tested against (golden
files in tests/golden/, tolerance 1e-4) and the peer in accuracy and speed
comparisons. They are written plainly on purpose: every ordering choice
(where LayerNorm, dropout, residuals and masks sit) is stated in a comment,
and the parameter names (``state_dict`` keys) are the names the golden files
use. See shared PAPERS.md (SASRec, BERT4Rec) for where each choice comes from.

Conventions shared by both models
---------------------------------
* Items are numbered 1..N; 0 is padding. Sequences are LEFT-padded with 0 to
  a fixed length L = maxlen: ``seq[b] = [0, 0, ..., s_1, ..., s_n]``.
* Attention is ``nn.MultiheadAttention(D, H, batch_first=True)`` (fused
  ``in_proj_weight`` [3D, D] with rows W_q, W_k, W_v; ``in_proj_bias`` [3D];
  ``out_proj.weight`` [D, D]; ``out_proj.bias`` [D]); scores are scaled by
  1/sqrt(D/H); its ``dropout`` argument is dropout on the attention
  probabilities.
* A query that may see no key at all (a padded slot at the start of a
  left-padded sequence when padded keys are masked under a causal mask, or a
  sequence that is all padding) gets attention probabilities 0, so its
  attention output is exactly ``out_proj.bias``. This is what the C++
  ``MultiHeadSelfAttention`` does. PyTorch itself is inconsistent here (its
  need_weights=True path and its inference fast path give NaN for such rows,
  its SDPA path gives ``out_proj.bias``), so :func:`masked_attention` makes
  the rule explicit. Those rows are padded slots: both models discard them
  (SASRec's timeline mask zeroes them, BERT4Rec never reads them), so the
  rule only keeps NaN out of the forward pass and the gradients.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["masked_attention", "PointWiseFeedForward", "SASRec", "BERT4Rec", "init_pmixer_", "init_bert_"]


def masked_attention(
    mha: nn.MultiheadAttention,
    query: torch.Tensor,
    key_value: torch.Tensor,
    key_keep: Optional[torch.Tensor],
    causal: bool,
) -> torch.Tensor:
    """``mha(query, key_value, key_value)`` under a causal and/or key-padding mask.

    query, key_value: [B, L, D] (batch_first). key_keep: bool [B, L], True for a
    real key (``seq != 0``), or None for no key masking. causal: query t sees
    keys 0..t only.

    Query t of sequence b may attend to key s iff (not causal or s <= t) and
    (key_keep is None or key_keep[b, s]). A query with no visible key gets
    attention output ``out_proj.bias`` (probabilities 0), see the module
    docstring. The mask is passed to PyTorch as one bool ``attn_mask`` of shape
    [B * H, L, L] (True = blocked, PyTorch's convention), so the inference fast
    path never sees a fully blocked row either.
    """
    bsz, q_len, _ = query.shape
    k_len = key_value.shape[1]
    blocked = torch.zeros(bsz, q_len, k_len, dtype=torch.bool, device=query.device)
    if causal:
        blocked |= torch.triu(torch.ones(q_len, k_len, dtype=torch.bool, device=query.device), diagonal=1)
    if key_keep is not None:
        blocked |= ~key_keep.bool()[:, None, :]
    sees_nothing = blocked.all(dim=-1)  # [B, L]
    # Unblock those rows so the softmax stays finite; their output is replaced below
    # (torch.where sends no gradient into the replaced branch).
    blocked = blocked & ~sees_nothing[:, :, None]
    attn_mask = blocked.repeat_interleave(mha.num_heads, dim=0)  # [B*H, L, L], index b*H + h
    out, _ = mha(query, key_value, key_value, attn_mask=attn_mask, need_weights=False)
    if bool(sees_nothing.any()):
        out = torch.where(sees_nothing[:, :, None], mha.out_proj.bias.expand_as(out), out)
    return out


class PointWiseFeedForward(nn.Module):
    """SASRec's feed-forward *without* its residual: ``Drop(W2 Drop(ReLU(W1 y + b1)) + b2)``.

    ffn='conv1d': ``conv1``/``conv2`` are ``nn.Conv1d(D, D, kernel_size=1)`` applied
    to y transposed to [B, D, L] (pmixer's layout; weight [D, D, 1], the same
    memory as a Linear weight [D, D]). ffn='linear': ``linear1``/``linear2`` are
    ``nn.Linear(D, D)``. Inner width is D (not 4D), as in the authors' code.
    Dropout and ReLU commute (same mask), so pmixer's ReLU(Drop(.)) is the same
    function as Drop(ReLU(.)).
    """

    def __init__(self, hidden: int, dropout: float, ffn: str = "conv1d"):
        super().__init__()
        if ffn not in ("conv1d", "linear"):
            raise ValueError(f"ffn must be 'conv1d' or 'linear', got {ffn!r}")
        self.ffn = ffn
        if ffn == "conv1d":
            self.conv1 = nn.Conv1d(hidden, hidden, kernel_size=1)
            self.conv2 = nn.Conv1d(hidden, hidden, kernel_size=1)
        else:
            self.linear1 = nn.Linear(hidden, hidden)
            self.linear2 = nn.Linear(hidden, hidden)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor) -> torch.Tensor:  # y [B, L, D]
        if self.ffn == "conv1d":
            h = y.transpose(-1, -2)  # [B, D, L]
            h = self.dropout1(torch.relu(self.conv1(h)))
            h = self.dropout2(self.conv2(h))
            return h.transpose(-1, -2)
        h = self.dropout1(torch.relu(self.linear1(y)))
        return self.dropout2(self.linear2(h))


class SASRec(nn.Module):
    """SASRec (Kang & McAuley 2018) with the three block layouts in use.

    Parameters (state_dict keys; i = block index; pmixer/SASRec.pytorch names):
      item_emb.weight                     [N+1, D]  row 0 = padding (padding_idx=0: zero, no gradient)
      pos_emb.weight                      [L, D] ('per_slot') or [L+1, D] ('from_one', row 0 = padding)
      attention_layernorms.i.{weight,bias}   [D]
      attention_layers.i.in_proj_weight   [3D, D]   attention_layers.i.in_proj_bias [3D]
      attention_layers.i.out_proj.{weight [D, D], bias [D]}
      forward_layernorms.i.{weight,bias}     [D]
      forward_layers.i.conv1.{weight [D, D, 1], bias [D]}, ...conv2...   (ffn='conv1d')
      forward_layers.i.linear1.{weight [D, D], bias [D]}, ...linear2...  (ffn='linear')
      last_layernorm.{weight,bias}           [D]
    Every LayerNorm uses eps = ln_eps (1e-8 in both the authors' code and pmixer's).

    Forward (``log2feats``), with keep = (seq != 0) as [B, L, 1]:
      1. x = item_emb(seq) * sqrt(D) + pos_emb(p)
           positions='per_slot': p = slot index 0..L-1 for every slot, padded ones too
                                 (authors' TF code); the padded slots are zeroed in step 3.
           positions='from_one': p = slot + 1 for real items, 0 (the zero padding row)
                                 for padded slots (pmixer port since 2024-06).
      2. x = Dropout(x)
      3. x = x * keep                                   (timeline mask)
      4. for each block (attention causal; padded keys masked iff mask_padding_keys):
           norm='query' (authors' code, pmixer until 2025-04):
               q = LN_attn(x); a = MHA(q, x, x); x = q + a          (residual from the normalised q)
               x = LN_ffn(x); x = x + FFN(x)
           norm='pre' (the paper's text, pmixer norm_first=True):
               h = LN_attn(x); x = x + MHA(h, h, h)
               x = x + FFN(LN_ffn(x))
           norm='post' (pmixer HEAD default's block; pmixer's current code has no timeline
           mask, see reference_models/pmixer_sasrec_current.py):
               x = LN_attn(x + MHA(x, x, x))
               x = LN_ffn(x + FFN(x))
         then x = x * keep                              (timeline mask after every block)
      5. F = last_layernorm(x)                          [B, L, D]
    The attention module applies its own dropout to the attention probabilities
    (``dropout``); FFN dropout: see PointWiseFeedForward. There is no dropout
    on the attention output besides that (as in pmixer; the authors' code has
    none there either).
    Score of item i at step t: F[b, t] . item_emb.weight[i] (tied table).
    """

    def __init__(
        self,
        num_items: int,
        maxlen: int,
        hidden: int,
        num_blocks: int,
        num_heads: int,
        dropout: float,
        norm: str = "query",
        positions: str = "from_one",
        mask_padding_keys: bool = False,
        ffn: str = "conv1d",
        ln_eps: float = 1e-8,
    ):
        super().__init__()
        if norm not in ("query", "pre", "post"):
            raise ValueError(f"norm must be 'query', 'pre' or 'post', got {norm!r}")
        if positions not in ("per_slot", "from_one"):
            raise ValueError(f"positions must be 'per_slot' or 'from_one', got {positions!r}")
        self.num_items, self.maxlen, self.hidden = num_items, maxlen, hidden
        self.norm, self.positions, self.mask_padding_keys = norm, positions, bool(mask_padding_keys)
        self.item_emb = nn.Embedding(num_items + 1, hidden, padding_idx=0)
        if positions == "per_slot":
            self.pos_emb = nn.Embedding(maxlen, hidden)
        else:
            self.pos_emb = nn.Embedding(maxlen + 1, hidden, padding_idx=0)
        self.emb_dropout = nn.Dropout(dropout)
        self.attention_layernorms = nn.ModuleList()
        self.attention_layers = nn.ModuleList()
        self.forward_layernorms = nn.ModuleList()
        self.forward_layers = nn.ModuleList()
        for _ in range(num_blocks):
            self.attention_layernorms.append(nn.LayerNorm(hidden, eps=ln_eps))
            self.attention_layers.append(nn.MultiheadAttention(hidden, num_heads, dropout=dropout, batch_first=True))
            self.forward_layernorms.append(nn.LayerNorm(hidden, eps=ln_eps))
            self.forward_layers.append(PointWiseFeedForward(hidden, dropout, ffn))
        self.last_layernorm = nn.LayerNorm(hidden, eps=ln_eps)

    def embed(self, seq: torch.Tensor) -> torch.Tensor:
        """Steps 1-3: [B, L] int64 -> [B, L, D]."""
        keep = seq != 0
        x = self.item_emb(seq) * math.sqrt(self.hidden)
        slots = torch.arange(seq.shape[1], device=seq.device).expand_as(seq)
        p = slots if self.positions == "per_slot" else (slots + 1) * keep
        x = x + self.pos_emb(p)
        x = self.emb_dropout(x)
        return x * keep.unsqueeze(-1).to(x.dtype)

    def log2feats(self, seq: torch.Tensor) -> torch.Tensor:
        """Steps 1-5: F [B, L, D]."""
        keep = seq != 0
        keep_f = keep.unsqueeze(-1).to(self.item_emb.weight.dtype)
        key_keep = keep if self.mask_padding_keys else None
        x = self.embed(seq)
        for ln_a, mha, ln_f, ffn in zip(
            self.attention_layernorms, self.attention_layers, self.forward_layernorms, self.forward_layers
        ):
            if self.norm == "query":
                q = ln_a(x)
                x = q + masked_attention(mha, q, x, key_keep, causal=True)
                x = ln_f(x)
                x = x + ffn(x)
            elif self.norm == "pre":
                h = ln_a(x)
                x = x + masked_attention(mha, h, h, key_keep, causal=True)
                x = x + ffn(ln_f(x))
            else:  # post
                x = ln_a(x + masked_attention(mha, x, x, key_keep, causal=True))
                x = ln_f(x + ffn(x))
            x = x * keep_f
        return self.last_layernorm(x)

    def forward(self, seq: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
        """(pos_logits, neg_logits), each [B, L]: F[b, t] . E[pos[b, t]] (0 where pos is 0)."""
        feats = self.log2feats(seq)
        pos_logits = (feats * self.item_emb(pos)).sum(dim=-1)
        neg_logits = (feats * self.item_emb(neg)).sum(dim=-1)
        return pos_logits, neg_logits

    def predict(self, seq: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """Scores [B, K] of item_ids [B, K] from the last position (slot L-1)."""
        last = self.log2feats(seq)[:, -1, :]  # [B, D]
        return (self.item_emb(item_ids) * last.unsqueeze(1)).sum(dim=-1)

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores [B, N] of every item 1..N (column j is item j+1) from the last position."""
        last = self.log2feats(seq)[:, -1, :]
        return last @ self.item_emb.weight[1:].T

    def loss(
        self,
        pos_logits: torch.Tensor,
        neg_logits: torch.Tensor,
        pos: torch.Tensor,
        l2_emb: float = 0.0,
        l2_mode: str = "norm",
    ) -> torch.Tensor:
        """BCE with one negative per step, padded steps (pos == 0) ignored.

        loss = mean_{t: pos!=0} softplus(-pos_logit) + mean_{t: pos!=0} softplus(neg_logit)
               (= BCEWithLogits(pos, 1) + BCEWithLogits(neg, 0), each averaged over the real
               steps: pmixer's formula. The authors' TF code divides the summed pos + neg
               terms by the number of real steps, which is the same number, except that it
               writes -log(sigmoid(z) + 1e-24).)
             + l2 term on item_emb.weight:
               l2_mode='norm':    l2_emb * ||E||_2 (Frobenius norm, NOT squared: pmixer's
                                  ``torch.norm(param)``)
               l2_mode='half_sq': l2_emb * sum(E^2) / 2 (the authors' TF code:
                                  tf.contrib.layers.l2_regularizer on the embedding table)
        """
        real = pos != 0
        loss = F.binary_cross_entropy_with_logits(pos_logits[real], torch.ones_like(pos_logits[real]))
        loss = loss + F.binary_cross_entropy_with_logits(neg_logits[real], torch.zeros_like(neg_logits[real]))
        if l2_emb:
            w = self.item_emb.weight
            if l2_mode == "norm":
                loss = loss + l2_emb * torch.norm(w)
            elif l2_mode == "half_sq":
                loss = loss + l2_emb * (w * w).sum() / 2
            else:
                raise ValueError(f"l2_mode must be 'norm' or 'half_sq', got {l2_mode!r}")
        return loss


class BERT4Rec(nn.Module):
    """BERT4Rec (Sun et al. 2019), after FeiSun/BERT4Rec (modeling.py, run.py).

    Vocabulary: 0 = padding, 1..N = items, N+1 = [mask].
    Parameters (state_dict keys; i = block index):
      item_emb.weight                     [N+2, D]  (padding_idx=0: row 0 zero, no gradient)
      pos_emb.weight                      [L, D]    slot t uses row t (padded slots too)
      emb_layernorm.{weight,bias}         [D]
      attention_layers.i.in_proj_weight [3D, D], .in_proj_bias [3D], .out_proj.{weight [D, D], bias [D]}
      attention_layernorms.i.{weight,bias}   [D]
      forward_layers.i.linear1.{weight [F, D], bias [F]}    F = inner (4D by default)
      forward_layers.i.linear2.{weight [D, F], bias [D]}
      forward_layernorms.i.{weight,bias}     [D]
      head_dense.{weight [D, D], bias [D]}
      head_layernorm.{weight,bias}        [D]
      out_bias                            [N]     per-item output bias (item j+1 at index j)
    LayerNorm eps = ln_eps, default 1e-12: the TF code's modeling.layer_norm is
    tf.contrib.layers.layer_norm, which hard-codes variance_epsilon = 1e-12 (it
    takes no epsilon argument).

    Forward (``encode``), keep = (seq != 0):
      1. x = item_emb(seq) + pos_emb(slot)          (no sqrt(D) scale; [mask] is an ordinary row)
         (The TF code also adds token_type_embeddings[0], one learned vector added to
         every slot; it is omitted here: fold it into pos_emb to load such a checkpoint.)
      2. x = Dropout(LN_emb(x))
      3. per block (post-norm, as BERT):
           x = LN_attn(x + Dropout(MHA(x, x, x)))    bidirectional, padded keys masked
                                                      ([mask] slots are real keys)
           x = LN_ffn(x + Dropout(W2 GELU(W1 x + b1) + b2))   GELU = erf form
                                                      (modeling.gelu uses tf.erf)
         no dropout inside the FFN hidden layer; MHA's own dropout is on the
         attention probabilities (attn_dropout, defaults to dropout). Padded
         slots are NOT zeroed (no timeline mask): they are never attended to
         and never read, so their values do not matter.
      Head (``logits``): h = head_layernorm(GELU(head_dense(x)));
         logits = h @ item_emb.weight[1:N+1].T + out_bias   [.., N], column j = item j+1.
         The TF code takes the softmax over its whole vocabulary (pad, [mask] and
         other special tokens included, bias of vocabulary size); here it is over
         the N real items only.
    TF masks attention by adding -10000 to blocked scores; here blocked scores
    are removed (-inf), which is identical in float64/float32 for any query with
    at least one real key (exp(-10000) underflows to 0).
    """

    def __init__(
        self,
        num_items: int,
        maxlen: int,
        hidden: int,
        num_blocks: int,
        num_heads: int,
        inner: Optional[int] = None,
        dropout: float = 0.1,
        attn_dropout: Optional[float] = None,
        ln_eps: float = 1e-12,
    ):
        super().__init__()
        inner = 4 * hidden if inner is None else inner
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.num_items, self.maxlen, self.hidden, self.inner = num_items, maxlen, hidden, inner
        self.mask_token = num_items + 1
        self.item_emb = nn.Embedding(num_items + 2, hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(maxlen, hidden)
        self.emb_layernorm = nn.LayerNorm(hidden, eps=ln_eps)
        self.emb_dropout = nn.Dropout(dropout)
        self.attention_layers = nn.ModuleList()
        self.attention_dropouts = nn.ModuleList()
        self.attention_layernorms = nn.ModuleList()
        self.forward_layers = nn.ModuleList()
        self.forward_dropouts = nn.ModuleList()
        self.forward_layernorms = nn.ModuleList()
        for _ in range(num_blocks):
            self.attention_layers.append(nn.MultiheadAttention(hidden, num_heads, dropout=attn_dropout, batch_first=True))
            self.attention_dropouts.append(nn.Dropout(dropout))
            self.attention_layernorms.append(nn.LayerNorm(hidden, eps=ln_eps))
            ff = nn.Module()
            ff.linear1 = nn.Linear(hidden, inner)
            ff.linear2 = nn.Linear(inner, hidden)
            self.forward_layers.append(ff)
            self.forward_dropouts.append(nn.Dropout(dropout))
            self.forward_layernorms.append(nn.LayerNorm(hidden, eps=ln_eps))
        self.head_dense = nn.Linear(hidden, hidden)
        self.head_layernorm = nn.LayerNorm(hidden, eps=ln_eps)
        self.out_bias = nn.Parameter(torch.zeros(num_items))

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Steps 1-3: [B, L] int64 (0 pad, 1..N items, N+1 [mask]) -> [B, L, D]."""
        keep = seq != 0
        slots = torch.arange(seq.shape[1], device=seq.device).expand_as(seq)
        x = self.emb_dropout(self.emb_layernorm(self.item_emb(seq) + self.pos_emb(slots)))
        for mha, drop_a, ln_a, ff, drop_f, ln_f in zip(
            self.attention_layers,
            self.attention_dropouts,
            self.attention_layernorms,
            self.forward_layers,
            self.forward_dropouts,
            self.forward_layernorms,
        ):
            x = ln_a(x + drop_a(masked_attention(mha, x, x, keep, causal=False)))
            h = F.gelu(ff.linear1(x), approximate="none")
            x = ln_f(x + drop_f(ff.linear2(h)))
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Output head: [..., D] -> [..., N] (column j = item j+1)."""
        h = self.head_layernorm(F.gelu(self.head_dense(x), approximate="none"))
        return h @ self.item_emb.weight[1 : self.num_items + 1].T + self.out_bias

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Logits at every slot, [B, L, N]."""
        return self.logits(self.encode(seq))

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores [B, N] from the last slot (inference: the caller appends [mask] there)."""
        return self.logits(self.encode(seq)[:, -1, :])

    def loss(self, seq: torch.Tensor, labels: torch.Tensor):
        """Cloze loss: mean cross-entropy over target slots (labels != 0).

        labels [B, L]: 0 = not a target, else the true item 1..N (shifted to 0..N-1 for
        torch's cross_entropy). Returns (loss, logits [T, N], target_rows [T]) where the T
        targets are taken in row-major (b, t) order and target_rows = b * L + t.
        (The TF code divides by sum(weights) + 1e-5; here it is the plain mean.)
        """
        x = self.encode(seq)
        flat = labels.reshape(-1)
        target_rows = torch.nonzero(flat != 0).squeeze(-1)
        logits = self.logits(x.reshape(-1, x.shape[-1])[target_rows])
        loss = F.cross_entropy(logits, flat[target_rows] - 1)
        return loss, logits, target_rows


def init_pmixer_(model: SASRec) -> SASRec:
    """pmixer's initialisation: xavier_normal_ on every parameter with >= 2 dims
    (embeddings, in_proj, out_proj, conv/linear weights; 1-D ones keep PyTorch's
    defaults: LayerNorm 1/0, biases as constructed), then the padding rows zeroed."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                nn.init.xavier_normal_(p)
        model.item_emb.weight[0].zero_()
        if model.positions == "from_one":
            model.pos_emb.weight[0].zero_()
    return model


def init_bert_(model: BERT4Rec, std: float = 0.02) -> BERT4Rec:
    """BERT's initialisation: weights ~ truncated normal(0, std) (cut at 2 std), biases 0,
    LayerNorm 1/0, out_bias 0, padding row zero."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)
            elif "layernorm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        model.item_emb.weight[0].zero_()
    return model
