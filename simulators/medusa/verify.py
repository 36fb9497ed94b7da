"""The rest of a Medusa step: tree attention's mask, the heads' top-k, candidate assembly,
acceptance and the KV-cache update, as kernels on the GPU roofline (dissertation 6.3.2, 6.4.1).

Besides the backbone's parallel-decode phase on the ``q`` candidate tokens and the Medusa heads
(:func:`~dse.simulators.medusa.decode.heads_seconds`), the reference implementation runs, per
step and for ``b`` requests (``a`` bytes per activation, ``V`` vocabulary, ``n`` attention heads,
``L`` layers, ``P`` candidate paths of at most ``D`` tokens after the root):

* **tree mask**: no fused attention kernel reads a tree mask, so the scores ``QK^T`` are
  materialised (the backbone's ``qk``, ``softmax`` and ``pv`` already cost that) and the mask is
  added by one element-wise kernel per layer: ``n S`` FLOPs, ``(2 n a + 1) S`` bytes for the
  ``S`` score entries of the step (a one-byte mask);
* **top-k**: per head, ``torch.topk`` over the vocabulary at the accepted position (one row per
  request), plus an argmax of the backbone's logits there: ``K + 1`` kernels reading ``b V a``
  bytes each;
* **candidate assembly**: concatenating the candidates and two gathers by the tree's indices
  (tree order, then paths): 3 kernels on ``b (q + P D)`` 8-byte indices;
* **acceptance**: gathering the logits of every path position (``b P (D + 1) V a`` bytes read and
  written), their argmax (read again), then the comparison, cumulative product, sum and
  best-path argmax: 6 kernels;
* **KV update**: the accepted tokens' keys and values gathered and copied into place for every
  layer at once (the cache is one stacked tensor): 2 kernels moving ``2 L b (D + 1) kv d`` cache
  entries twice (an upper bound: at most ``D + 1`` tokens are accepted).

Each is a kernel of the calibrated roofline (element-wise class), its launch overhead included,
computed by :func:`verification_seconds` for the closed form and the decode DES alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.catalogs.medusa_trees import Tree
from dse.simulators.gpu.llm import LlmWorkload, StepShape
from dse.simulators.gpu.model import CLASS_INDEX, PRECISION_INDEX, GpuCostModel, precision_of_bits
from dse.simulators.gpu.roofline import Calibration, Efficiency


@dataclass(frozen=True)
class TreeShape:
    """What the bookkeeping kernels depend on: candidates per request (tree nodes plus the
    root), candidate paths (the retrieve rows) and their depth below the root."""

    candidates: int
    paths: int
    depth: int

    @classmethod
    def of(cls, tree: Tree) -> TreeShape:
        ends = set(tree.paths) - {p[:-1] for p in tree.paths}
        return cls(tree.candidates, len(ends), tree.depth)

    @classmethod
    def bound(cls, candidates, heads: int) -> TreeShape:
        """Without a tree: every node a path end, as deep as the heads (an upper bound)."""
        q = int(np.max(candidates))
        return cls(q, max(1, q - 1), max(1, heads))


@dataclass(frozen=True)
class Kernels:
    """Named kernels as arrays: FLOPs, bytes and launches (per step)."""

    names: tuple[str, ...]
    flops: np.ndarray
    bytes: np.ndarray
    launches: np.ndarray


def verification_kernels(
    workload: LlmWorkload, heads: int, shape: StepShape, tree: TreeShape, topk: int = 10
) -> Kernels:
    """The bookkeeping kernels of one step over ``shape`` (the module docstring)."""
    c = workload.config
    a, kvb = c.act_bits / 8, c.kv_bits / 8
    b = np.asarray(shape.tokens, dtype=float) / tree.candidates  # requests in the step
    scores = np.asarray(shape.scores, dtype=float)
    P, D, V = tree.paths, tree.depth, c.vocab
    index_bytes = 8.0
    rows = b * P * (D + 1)  # path positions whose logits acceptance compares
    table = {
        "tree_mask": (c.heads * scores, (2 * c.heads * a + 1) * scores, c.layers),
        "topk": (b * V * np.log2(max(topk, 2)) * (heads + 1), (heads + 1) * b * V * a, heads + 1),
        "assemble": (0 * b, 2 * index_bytes * b * (tree.candidates + P * D), 3),
        "gather_logits": (0 * b, 2 * rows * V * a, 1),
        "argmax": (rows * V, rows * V * a, 1),
        "accept": (4 * b * P * D, 4 * 2 * index_bytes * b * P * D, 4),
        "kv_update": (
            0 * b,
            2 * 2 * c.layers * b * (D + 1) * c.kv_heads * c.head_dim * kvb,
            2,
        ),
    }
    names = tuple(table)
    return Kernels(
        names,
        np.stack([np.broadcast_to(table[n][0], b.shape).astype(float) for n in names]),
        np.stack([np.broadcast_to(table[n][1], b.shape).astype(float) for n in names]),
        np.array([table[n][2] for n in names], dtype=float),
    )


def verification_seconds(
    workload: LlmWorkload, heads: int, shape: StepShape, tree: TreeShape
) -> np.ndarray:
    """Seconds of the bookkeeping kernels of one step (their launch overheads included)."""
    k = verification_kernels(workload, heads, shape, tree)
    cls = CLASS_INDEX["elementwise"]
    prec = PRECISION_INDEX[precision_of_bits(workload.config.act_bits)]
    extra = (1,) * (k.flops.ndim - 1)
    per = workload.model.seconds(
        cls, prec, k.flops, k.bytes, n_kernels=k.launches.reshape(-1, *extra)
    )
    return per.sum(axis=0)


def scaled_linear_workload(workload: LlmWorkload, memory_share: float) -> LlmWorkload:
    """``workload`` with its linear layers at ``memory_share`` of their calibrated memory
    efficiency (compute efficiency and launch overhead unchanged)."""
    model = workload.model
    cal = model.calibration
    lin = cal.efficiency("linear")
    over = lin.overhead_s if lin.overhead_s is not None else model.device.launch_overhead_s
    scaled = Calibration(
        f"{cal.name} (linear memory x{memory_share:.3g})",
        cal.default,
        {**cal.classes, "linear": Efficiency(lin.compute, lin.memory * memory_share, over)},
        cal.note,
    )
    return LlmWorkload(
        workload.config,
        GpuCostModel(model.device, scaled, model.launch_overhead_s),
        workload.simplified,
    )
