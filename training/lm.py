"""A small decoder-only language model with Medusa heads that really decodes (dissertation 6.3).

Byte-level (256 tokens), a few pre-norm Transformer layers, trained on a CPU in a minute on text
that ships with Python itself (``pydoc_data.topics``: the language reference's help topics).
Attention takes an explicit boolean mask and explicit positions, which is all tree attention
needs: the tree's candidates attend to the cache and to their own ancestors (6.3.2).

* :class:`MedusaLM`: the backbone plus ``K`` heads; head ``k`` (0-based) predicts the token
  ``k + 2`` positions ahead from the last hidden state, through one residual SiLU block and its
  own vocabulary projection (eq. in 6.3.1.1);
* :func:`train_backbone`, :func:`train_heads`: next-token training, then Medusa-1 (eq. 6.1:
  ``sum_k 0.8^k`` head losses on the frozen backbone) or Medusa-2 (eq. 6.2: joint,
  ``L_LM + lambda_0 L_Medusa-1``, the heads at a larger learning rate);
* :func:`head_accuracy`: measured per-head, per-rank accuracies on held-out text, as the
  :class:`~dse.catalogs.medusa_heads.HeadAccuracy` the simulator and ``sparse_tree`` read;
* :mod:`dse.training.tree_decode` decodes with a tree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dse.catalogs.medusa_heads import HeadAccuracy
from dse.training.schedules import warmup_cosine

VOCAB = 256  # bytes


def corpus() -> bytes:
    """Python's own help topics (``pydoc_data.topics``), sorted by topic, as bytes."""
    from pydoc_data import topics

    return "\n".join(topics.topics[k] for k in sorted(topics.topics)).encode("utf-8")


def split(data: bytes, held_out: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) byte tensors: the last ``held_out`` share is held out."""
    t = torch.tensor(list(data), dtype=torch.long)
    cut = int(len(t) * (1 - held_out))
    return t[:cut], t[cut:]


@dataclass(frozen=True)
class LMConfig:
    layers: int = 4
    dim: int = 128
    heads: int = 4
    context: int = 256  # longest sequence (positions)
    medusa_heads: int = 4


class _Block(nn.Module):
    def __init__(self, c: LMConfig):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(c.dim), nn.LayerNorm(c.dim)
        self.qkv, self.out = nn.Linear(c.dim, 3 * c.dim), nn.Linear(c.dim, c.dim)
        self.mlp = nn.Sequential(
            nn.Linear(c.dim, 4 * c.dim), nn.GELU(), nn.Linear(4 * c.dim, c.dim)
        )
        self.h = c.heads

    def forward(self, x, mask, cache):
        """``x`` (B, T, d); ``mask`` (T, S + T) True where attention is allowed; ``cache``:
        (keys, values) of the S earlier positions, (B, h, S, d/h) each, or None."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.h)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(y)
        return x + self.mlp(self.n2(x)), (k, v)


class _Head(nn.Module):
    """One Medusa head: ``W_2 (SiLU(W_1 h) + h)`` (6.3.1.1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.w1, self.w2 = nn.Linear(dim, dim), nn.Linear(dim, VOCAB, bias=False)
        nn.init.zeros_(self.w1.weight)  # starts as the identity residual, as Medusa does

    def forward(self, h):
        return self.w2(F.silu(self.w1(h)) + h)


class MedusaLM(nn.Module):
    """Backbone + Medusa heads; ``forward`` returns (logits, head logits, hidden, new cache)."""

    def __init__(self, config: LMConfig = LMConfig()):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(VOCAB, config.dim)
        self.pos = nn.Embedding(config.context, config.dim)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)
        self.lm_head = nn.Linear(config.dim, VOCAB, bias=False)
        self.medusa = nn.ModuleList(_Head(config.dim) for _ in range(config.medusa_heads))

    def forward(self, tokens, positions=None, mask=None, cache=None):
        """``tokens`` (B, T); ``positions`` (T,) default the next T after the cache; ``mask``
        (T, S + T) default causal; ``cache``: a list of per-layer (k, v) or None."""
        b, t = tokens.shape
        s = 0 if cache is None else cache[0][0].shape[2]
        if positions is None:
            positions = torch.arange(s, s + t)
        if mask is None:
            mask = torch.ones(t, s + t, dtype=torch.bool).tril(diagonal=s)
        x = self.embed(tokens) + self.pos(positions)[None]
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, mask, None if cache is None else cache[i])
            new_cache.append(kv)
        h = self.norm(x)
        heads = torch.stack([m(h) for m in self.medusa], dim=2) if len(self.medusa) else None
        return self.lm_head(h), heads, h, new_cache


def _batches(data: torch.Tensor, length: int, batch: int, steps: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        start = torch.randint(0, len(data) - length - 1, (batch,), generator=g)
        idx = start[:, None] + torch.arange(length + 1)[None]
        yield data[idx]


def lm_loss(model: MedusaLM, seq: torch.Tensor) -> torch.Tensor:
    logits, _, _, _ = model(seq[:, :-1])
    return F.cross_entropy(logits.reshape(-1, VOCAB), seq[:, 1:].reshape(-1))


def head_losses(model: MedusaLM, seq: torch.Tensor, detach_backbone: bool) -> torch.Tensor:
    """Per head k, cross-entropy of predicting the token k + 2 ahead (eq. 6.1's terms)."""
    _, _, h, _ = model(seq[:, :-1])
    if detach_backbone:
        h = h.detach()
    out = []
    for k, head in enumerate(model.medusa):
        ahead = k + 2
        logits = head(h[:, : h.shape[1] - ahead + 1])
        target = seq[:, ahead:]
        out.append(F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1)))
    return torch.stack(out)


def train_backbone(
    model, data, steps=1200, batch=32, length=128, lr=3e-3, seed=0, warmup=50
) -> list[float]:
    """Next-token training of the backbone with AdamW and a warmup-cosine schedule that ends at
    5% of ``lr``: by 1,200 steps (about 12 passes over the corpus) the validation loss has
    flattened, which is what the Medusa-2 check needs (a young backbone improves under any
    LM loss, so a fine-tuning's cost to it cannot be read off)."""
    torch.manual_seed(seed)
    params = [p for n, p in model.named_parameters() if not n.startswith("medusa")]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    schedule = warmup_cosine(opt, steps, warmup, floor=0.05)  # "cosine with warmup", 6.4.1
    losses = []
    for seq in _batches(data, length, batch, steps, seed):
        loss = lm_loss(model, seq)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return losses


def train_heads(
    model: MedusaLM,
    data: torch.Tensor,
    steps: int = 300,
    batch: int = 32,
    length: int = 128,
    lr: float = 3e-3,
    joint: bool = False,
    lambda0: float = 0.2,
    lm_term: bool = True,
    head_lr_scale: float = 4.0,
    decay: float = 0.8,
    seed: int = 1,
    warmup: int = 40,
) -> list[float]:
    """Medusa-1 (``joint=False``: eq. 6.1, ``sum_k decay^k L_k`` on the frozen backbone, at
    ``lr``) or Medusa-2 (``joint=True``: eq. 6.2, ``L_LM + lambda0 * L_Medusa-1``, the backbone
    at ``lr`` and the heads at ``head_lr_scale`` times it). ``lm_term=False`` drops ``L_LM``
    from the joint loss: fine-tuning the backbone for the heads alone, the case eq. 6.2's LM
    term guards against. Medusa's published settings (6.4.1): decay 0.8, lambda_0 0.2, heads at
    4x the backbone's learning rate (peak 5e-4 for the backbone, 2e-3 for the heads), warmup
    40 steps, cosine schedule."""
    torch.manual_seed(seed)
    head_params = list(model.medusa.parameters())
    groups = [{"params": head_params, "lr": lr * (head_lr_scale if joint else 1.0)}]
    if joint:
        backbone = [p for n, p in model.named_parameters() if not n.startswith("medusa")]
        groups.append({"params": backbone, "lr": lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    schedule = warmup_cosine(opt, steps, warmup, floor=0.05)
    weights = torch.tensor([decay**k for k in range(len(model.medusa))])
    losses = []
    for seq in _batches(data, length, batch, steps, seed):
        loss = (weights * head_losses(model, seq, detach_backbone=not joint)).sum()
        if joint:
            loss = lambda0 * loss + (lm_loss(model, seq) if lm_term else 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def validation_loss(model: MedusaLM, data: torch.Tensor, length: int = 128, batches: int = 8):
    return float(
        np.mean([float(lm_loss(model, s)) for s in _batches(data, length, 16, batches, 99)])
    )


@torch.no_grad()
def head_accuracy(
    model: MedusaLM, data: torch.Tensor, ranks: int = 5, length: int = 128, batches: int = 8
) -> HeadAccuracy:
    """Measured per-head, per-rank accuracy on ``data``: how often head k's rank-i prediction is
    the token k + 2 ahead (ranks exclusive), as the simulator reads it."""
    hits = np.zeros((len(model.medusa), ranks))
    total = np.zeros(len(model.medusa))
    for seq in _batches(data, length, 16, batches, 7):
        _, _, h, _ = model(seq[:, :-1])
        for k, head in enumerate(model.medusa):
            ahead = k + 2
            top = head(h[:, : h.shape[1] - ahead + 1]).topk(ranks, dim=-1).indices
            target = seq[:, ahead:, None]
            hits[k] += (top == target).sum(dim=(0, 1)).numpy()
            total[k] += target.numel()
    return HeadAccuracy(hits / total[:, None], "medusa-lm").with_fitted_tail()


def accuracy_csv(acc: HeadAccuracy, model: str = "medusa-lm") -> str:
    """``acc`` in the CSV format :func:`~dse.catalogs.medusa_heads.load_head_accuracy` reads."""
    cum = acc.a.cumsum(axis=1)
    head = ",".join(f"top{i + 1}_cumulative" for i in range(acc.ranks))
    lines = [f"model,head,run_state,{head}"]
    for k, row in enumerate(cum):
        lines.append(f"{model},{k},finished," + ",".join(f"{v:.6f}" for v in row))
    return "\n".join(lines) + "\n"
