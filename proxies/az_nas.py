"""AZ-NAS's three training-free measures (Lee & Ham, CVPR 2024, "AZ-NAS: Assembling Zero-Cost
Proxies for Network Architecture Search"), read block by block.

The features are the block outputs the space marks (``graph.graph["block_outputs"]``: the stem,
every cell and every reduction block of NAS-Bench-201, as the authors read them), or the stage
outputs where a space marks no blocks. A block's features form a matrix of samples x channels:
batch x positions for a feature map, batch x tokens for a sequence.

* ``az_expressivity``: the sum over blocks of the entropy ``-sum p log p`` of the eigenvalues of
  the channel covariance, normalised to sum to one (the paper's eq. 2): high when a block's
  features spread evenly over its channels instead of collapsing onto a few directions.
* ``az_progressivity``: the smallest change of that entropy from one block to the next (eq. 3): a
  network whose expressivity falls somewhere on the way to the output scores low.
* ``az_trainability``: the mean over consecutive blocks of ``-(sigma + 1/sigma - 2)`` (eq. 5),
  ``sigma`` the spectral norm of the block's Jacobian, estimated from one backward pass of a
  Rademacher vector ``g`` through the block (``E[J^T g g^T] = J^T``, averaged over positions;
  a halved resolution is folded into the channels by pixel unshuffle). It is 0 at ``sigma = 1``
  (gradients neither vanish nor explode) and ``-inf`` for a block that passes its input through
  unchanged, as in the authors' code.

FLOPs, the fourth AZ-NAS measure, is the ``analytic`` proxy's ``flops``. The authors combine the
four by summing their log ranks over the candidates (eq. 7, :func:`rank_aggregate`); in dse they
are also components of the few-shot ensemble (:mod:`dse.proxies.ensemble`), which learns their
weights from a few labelled architectures and scores each architecture on its own. Networks
keep dse's default initialisation (the authors re-initialise with Kaiming-normal fan-in; on the
362 NAS-Bench-201 cells the default ranks better: 0.80 against 0.75 Spearman for expressivity
on CIFAR-10).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from dse.proxies.zero_cost import ProxyContext, measure
from dse.training.network import GraphNetwork


def block_features(net: GraphNetwork, ctx: ProxyContext) -> list[torch.Tensor]:
    """The network's block outputs on the context's batch (stage outputs where no block is
    marked); differentiable when grad mode is on."""
    marked = {"blocks": True} if net.block_ids else {"stages": True}
    _, feats = net(ctx.inputs, **marked)
    if len(feats) < 2:
        raise ValueError(
            "AZ-NAS needs two or more block outputs (graph.graph['block_outputs'] or "
            f"['stage_outputs']), got {len(feats)}"
        )
    return feats


def _samples(f: torch.Tensor) -> torch.Tensor:
    """A batch of features as samples x channels (positions and tokens are samples)."""
    if f.dim() == 4:
        return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    if f.dim() == 3:
        return f.reshape(-1, f.shape[-1])
    return f.reshape(f.shape[0], -1)


def spectral_entropy(f: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance of ``f`` (eq. 2), in
    nats; 0 for features without variance."""
    z = _samples(f.detach().double())
    z = z - z.mean(0, keepdim=True)
    eig = torch.linalg.eigvalsh(z.T @ z / len(z)).clamp_min(0.0)
    total = eig.sum()
    if total <= 0:
        return 0.0
    p = eig / total
    return float(-(p * torch.log(p + 1e-8)).sum())


def _entropies(net: GraphNetwork, ctx: ProxyContext) -> np.ndarray:
    with torch.no_grad():
        return np.array([spectral_entropy(f) for f in block_features(net, ctx)])


@measure("az_expressivity")
def az_expressivity(net: GraphNetwork, ctx: ProxyContext) -> float:
    return float(_entropies(net, ctx).sum())


@measure("az_progressivity")
def az_progressivity(net: GraphNetwork, ctx: ProxyContext) -> float:
    return float(np.diff(_entropies(net, ctx)).min())


def jacobian_norm(f_out: torch.Tensor, f_in: torch.Tensor, gen: torch.Generator) -> float | None:
    """Estimated spectral norm of the Jacobian of block output ``f_out`` w.r.t. its input
    ``f_in``; ``None`` where the block passes its input through unchanged, ``nan`` where the two
    do not align (a resolution that is not an integer fraction of the input's)."""
    g_out = torch.randint(0, 2, f_out.shape, generator=gen).to(f_out.dtype) * 2 - 1
    (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
    if g_in is None:  # the output does not depend on the input
        return 0.0
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return None
    if g_in.dim() == 4 and g_in.shape[2:] != g_out.shape[2:]:
        ratio = g_in.shape[2] // g_out.shape[2]
        if ratio < 2 or g_in.shape[2:] != tuple(ratio * s for s in g_out.shape[2:]):
            return math.nan
        g_in = F.pixel_unshuffle(g_in, ratio)
    a, b = _samples(g_in.double()), _samples(g_out.double())
    if len(a) != len(b):
        return math.nan
    return float(torch.linalg.svdvals(a.T @ b / len(b)).max())


@measure("az_trainability")
def az_trainability(net: GraphNetwork, ctx: ProxyContext) -> float:
    feats = block_features(net, ctx)
    gen = torch.Generator().manual_seed(ctx.seed)
    scores = []
    for k in reversed(range(1, len(feats))):
        sigma = jacobian_norm(feats[k], feats[k - 1], gen)
        if sigma is None:
            return -math.inf
        if not math.isnan(sigma):
            scores.append(-sigma - 1.0 / (sigma + 1e-6) + 2.0)
    return float(np.mean(scores)) if scores else math.nan


#: the three measures of this module, which read only the marked block outputs
BLOCK_MEASURES = ("az_expressivity", "az_progressivity", "az_trainability")
#: the four measures AZ-NAS ranks candidates by (``flops`` from the ``analytic`` proxy)
AZ_NAS = (*BLOCK_MEASURES, "flops")


def rank_aggregate(values: np.ndarray) -> np.ndarray:
    """AZ-NAS's non-linear rank aggregation (eq. 7): per candidate, the sum over measures
    (columns) of ``log(rank / n)``, rank 1 the lowest score of the ``n`` candidates (rows); a
    missing score (NaN) ranks lowest. A population score: adding candidates changes it."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or len(v) == 0:
        raise ValueError(f"values: expected candidates x measures, got shape {v.shape}")
    filled = np.where(np.isnan(v), -np.inf, v)
    ranks = np.column_stack([rankdata(col, method="average") for col in filled.T])
    return np.log(ranks / len(v)).sum(axis=1)
