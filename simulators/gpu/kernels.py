"""Architecture graphs as GPU kernels, costed a whole population at a time.

Each IR node becomes the kernels an eager framework (PyTorch without fusion) launches for it:

* ``input``, ``identity``, ``reshape``: none (views);
* ``add`` / ``mul`` with k inputs: k - 1 binary element-wise kernels, each reading two tensors
  and writing one (how ``sum()`` of branch outputs runs);
* ``zero`` (NAS-Bench-201's ``none``): one kernel reading and writing the tensor (``x.mul(0)``);
* ``shuffle`` (a channel shuffle): one copy kernel reading and writing the tensor
  (``permute(...).contiguous()``), costed as every other kind below;
* ``sgconv`` (SGConv's FFT convolution): memory-bound element-wise kernels (cuFFT's transforms
  move every element a few times for little arithmetic): two per scale to make the kernel
  (interpolate, decay), two to concatenate and normalise, per direction; with two directions
  three more to pad, flip and add them; the input's and the kernel's FFTs, the product and the
  inverse FFT; the skip's multiply and add. They move the input, the output, the weights and
  the op's transient elements twice (written, then read);
* ``attention``: the kernels of :func:`dse.graph.sequence_ops.attention_kernels` (QK^T and PV
  matmuls, the scaling/mask pass and the softmax over materialised scores), each costed as its
  own op; its one-row summary (``kernels(graph)``) adds them up;
* every other kind: one kernel reading its inputs and weights and writing its output.

A batch of ``b`` samples multiplies FLOPs and activation bytes by ``b``; weights are read once.
Distinct operators are costed once (graphs of a space share most of them; ``make_op`` returns
the same object for the same definition) and node times are summed per graph with one
``bincount``: a population of NAS-Bench-201 graphs costs tens of microseconds per graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from dse.graph.ops import OpNode, numel
from dse.graph.optable import OpTable, population_ops
from dse.graph.sequence_ops import attention_kernels, sgconv_scales
from dse.measured_tables import MixSource, mix_sources
from dse.simulators.gpu.model import (
    CLASS_INDEX,
    PRECISION_BYTES,
    PRECISION_INDEX,
    GpuCostModel,
    precision_of_bits,
)
from dse.simulators.gpu.roofline import regime_index
from dse.simulators.gpu.tables import TableSources, lookup_keys

KIND_CLASS = {
    "conv2d": "conv",
    "deconv2d": "conv",  # a transposed convolution: its MACs on the convolution kernels
    "dwconv2d": "dwconv",
    "linear": "linear",
    "matmul": "matmul",
    "pool": "pool",
}
VIEWS = frozenset({"input", "constant", "identity", "reshape", "slice"})


#: fused IR kinds the coster runs as the IR ops they expand to
FUSED = {"attention": attention_kernels}


def sgconv_launches(op: OpNode) -> int:
    """Kernel launches of one ``sgconv`` node (see the module docstring)."""
    length, _ = op.in_shapes[0]
    directions = 2 if op.mode == "bidirectional" else 1
    make = directions * (2 * sgconv_scales(length, op.kernel) + 2) + (3 if directions == 2 else 0)
    return make + 4 + (2 if op.bias else 0)


def op_kernels(op: OpNode) -> tuple[str, int, float, float, float]:
    """(class, kernels, FLOPs, activation elements moved, weight elements) of one node, per
    sample."""
    if op.kind in VIEWS:
        return "elementwise", 0, 0.0, 0.0, 0.0
    if op.kind in FUSED:  # the summary of its kernels (the coster costs each on its own)
        parts = [op_kernels(p) for p in FUSED[op.kind](op)]
        return (
            "matmul",
            sum(p[1] for p in parts),
            float(sum(p[2] for p in parts)),
            float(sum(p[3] for p in parts)),
            float(op.params),
        )
    out = numel(op.out_shape)
    if op.kind == "sgconv":
        moved = numel(op.in_shapes[0]) + out + 2 * op.transient
        return "elementwise", sgconv_launches(op), float(op.flops), float(moved), float(op.params)
    if op.kind in ("add", "mul"):
        k = len(op.in_shapes) - 1
        return "elementwise", k, float(op.flops), 3.0 * out * k, 0.0
    if op.kind == "zero":
        return "elementwise", 1, float(out), 2.0 * out, 0.0
    moved = sum(numel(s) for s in op.in_shapes) + out
    return (
        KIND_CLASS.get(op.kind, "elementwise"),
        1,
        float(op.flops),
        float(moved),
        float(op.params),
    )


@dataclass
class PopulationCost:
    """Per-graph totals for a batch of ``batch`` samples (arrays, one entry per graph)."""

    seconds: np.ndarray  # predicted latency of one batch
    kernels: np.ndarray  # kernel launches
    flops: np.ndarray  # FLOPs of one batch
    bytes: np.ndarray  # bytes moved by one batch
    weight_bytes: np.ndarray  # parameters at their precision
    peak_op_bytes: np.ndarray  # largest single op's activations (inputs + output) for the batch


@dataclass
class RowCosts:
    """Per kernel-table row at one batch size: class and precision indices, kernel launches,
    FLOPs, bytes moved, weight bytes, activation bytes and predicted seconds."""

    op_class: np.ndarray
    precision: np.ndarray
    kernels: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    weight_bytes: np.ndarray
    act_bytes: np.ndarray
    seconds: np.ndarray


def kernel_row(op: OpNode) -> tuple[int, int, float, float, float, int, int]:
    """(class index, kernels, FLOPs, activation elements, weight elements, act bits, weight
    bits)."""
    cls, nk, flops, act, w = op_kernels(op)
    return CLASS_INDEX[cls], nk, flops, act, w, op.act_bits, op.weight_bits


class KernelTable(OpTable):
    """Distinct operators seen so far as kernel rows (:func:`kernel_row`), indexed by op uid."""

    def __init__(self, max_rows: int = 200_000):
        super().__init__(kernel_row, 7, max_rows)
        self._columns: tuple[np.ndarray, np.ndarray] | None = None

    def clear(self) -> None:
        super().clear()
        self._fused: list[bool] = []  # per row: a FUSED kind's op
        self._parts: dict[int, np.ndarray] = {}  # row of a fused op -> its kernels' rows

    def _add(self, op: OpNode) -> int:
        row = super()._add(op)
        self._fused.append(op.kind in FUSED)
        return row

    def expand(
        self, ops: Sequence[OpNode], rows: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` (one per op of ``ops``, graphs of ``lengths`` ops) with each fused op's row
        replaced by its kernels' rows, and the new lengths; unchanged when none is fused."""
        fused = np.flatnonzero(np.asarray(self._fused, dtype=bool)[rows]) if len(rows) else []
        if not len(fused):
            return rows, lengths
        pieces, start, extra = [], 0, np.zeros(len(fused), dtype=np.int64)
        for j, i in enumerate(fused.tolist()):
            parts = self._parts.get(int(rows[i]))
            if parts is None:
                parts = self._parts[int(rows[i])] = self.rows(FUSED[ops[i].kind](ops[i]))
            pieces += [rows[start:i], parts]
            extra[j] = len(parts) - 1
            start = i + 1
        pieces.append(rows[start:])
        owner = np.repeat(np.arange(len(lengths)), lengths)[fused]
        grown = lengths + np.bincount(owner, weights=extra, minlength=len(lengths)).astype(np.int64)
        return np.concatenate(pieces).astype(np.int64), grown

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(class, kernels, flops, act elements, weight elements, act bits, weight bits) per row;
        the same tuple until rows are added."""
        m = self.matrix()
        if self._columns is None or self._columns[0] is not m:
            cols = tuple(
                m[:, i].astype(np.int64) if i in (0, 1, 5, 6) else m[:, i] for i in range(7)
            )
            self._columns = (m, cols)
        return self._columns[1]


class GraphCoster:
    """Costs architecture graphs on one :class:`GpuCostModel` at one batch size and precision."""

    def __init__(self, model: GpuCostModel, batch_size: int = 1, precision: str = "auto"):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if precision != "auto" and precision not in PRECISION_INDEX:
            raise ValueError(
                f"precision: {precision!r} is not allowed; allowed values: "
                f"{['auto', *PRECISION_INDEX]}"
            )
        self.model, self.batch_size, self.precision = model, batch_size, precision
        self.table = KernelTable()
        self._cached: tuple | None = None
        self._sample: tuple | None = None
        self.sources = TableSources()
        for key in model.calibration.tables:  # a table that does not exist fails here
            self.sources.load(MixSource.parse(key).table)

    def _per_sample(self) -> tuple[np.ndarray, ...]:
        """(class, precision index, launches, FLOPs, activation bytes, weight bytes) of every
        kernel-table row for one sample, cached until the table gains rows."""
        arrays = self.table.arrays()
        if self._sample is not None and self._sample[0] is arrays:
            return self._sample[1]
        cls, nk, flops, act, w, abits, wbits = arrays
        if self.precision == "auto":
            bits = np.maximum(abits, np.where(w > 0, wbits, 0))
            prec = np.array(
                [PRECISION_INDEX[precision_of_bits(int(x))] for x in bits], dtype=np.int64
            )
            act_bytes, w_bytes = act * abits / 8.0, w * wbits / 8.0
        else:
            p = PRECISION_INDEX[self.precision]
            prec = np.full(len(cls), p, dtype=np.int64)
            act_bytes, w_bytes = act * PRECISION_BYTES[p], w * PRECISION_BYTES[p]
        sample = (cls, prec, nk.astype(float), flops, act_bytes, w_bytes)
        self._sample = (arrays, sample)
        return sample

    def kernels_at(self, batch_size: float) -> tuple[np.ndarray, ...]:
        """(class, precision index, FLOPs, bytes moved, launches) of every row at
        ``batch_size``, what :meth:`GpuCostModel.seconds` reads: FLOPs and activations scale
        with the batch, weights are read once."""
        cls, prec, nk, flops, act_bytes, w_bytes = self._per_sample()
        return cls, prec, batch_size * flops, batch_size * act_bytes + w_bytes, nk

    def mixed_seconds(self, model: GpuCostModel, batch_size: int) -> np.ndarray:
        """Seconds of every kernel-table row at ``batch_size`` under ``model``'s calibration:
        the roofline, mixed with the measured tables the calibration names
        (:mod:`dse.simulators.gpu.tables`; each at its batch-size ratio, :class:`MixSource`),
        times its factor for each row's class and roofline regime (``regime_scales``)."""
        t = model.seconds(*self.kernels_at(batch_size))
        cal = model.calibration
        if cal.tables:
            keys = lookup_keys(self.table.matrix(), self.precision)
            t = cal.roofline_weight * t
            for source, w in mix_sources(cal.tables):
                t = t + w * self.sources.seconds(source, keys, batch_size, self.kernels_at)
        if cal.regime_scales:
            t = t * cal.regime_factors()[self.regimes_at(model, batch_size)]
        return t

    def regimes_at(self, model: GpuCostModel, batch_size: int) -> np.ndarray:
        """Each row's position in :data:`~dse.simulators.gpu.roofline.REGIME_KEYS` at
        ``batch_size`` on ``model``'s device (its data sheet's roofline)."""
        cls, prec, flops, moved, _ = self.kernels_at(batch_size)
        return regime_index(cls, flops, moved, model.peak(prec), model.bandwidth)

    def row_costs(self, batch_size: int | None = None) -> RowCosts:
        """Costs of every kernel-table row at ``batch_size`` (default: the coster's), cached until
        the table gains rows."""
        b = self.batch_size if batch_size is None else batch_size
        arrays = self.table.arrays()
        key = (id(arrays), b)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        cls, prec, flops, moved, nk = self.kernels_at(b)
        _, _, _, _, act_bytes, w_bytes = self._per_sample()
        costs = RowCosts(
            cls, prec, nk, flops, moved, w_bytes, b * act_bytes, self.mixed_seconds(self.model, b)
        )
        self._cached = (key, costs)
        return costs

    def node_rows(self, graphs: Sequence[nx.DiGraph]) -> tuple[np.ndarray, np.ndarray]:
        """(kernel-table row of every node of ``graphs`` in order, number of nodes per graph)."""
        ops, lengths = population_ops(graphs)
        return self.table.expand(ops, self.table.rows(ops), lengths)

    def cost(self, graphs: Sequence[nx.DiGraph]) -> PopulationCost:
        """Totals for each graph of ``graphs`` (one numpy pass over all their nodes)."""
        rows, lengths = self.node_rows(graphs)
        c = self.row_costs()
        n = len(graphs)
        owner = np.repeat(np.arange(n), lengths)
        seconds, kernels, flops, moved, w_bytes = (
            np.bincount(owner, weights=col[rows], minlength=n)
            for col in (c.seconds, c.kernels, c.flops, c.bytes, c.weight_bytes)
        )
        act = c.act_bytes[rows]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])) if n else np.zeros(0, np.int64)
        peak = np.maximum.reduceat(act, starts) if len(act) else np.zeros(n)
        return PopulationCost(seconds, kernels, flops, moved, w_bytes, peak)

    def kernels(self, graph: nx.DiGraph):
        """One row per node of ``graph``: what it launches and its roofline point (a DataFrame)."""
        import pandas as pd

        names = list(graph._node)
        ops = [graph._node[n]["op"] for n in names]
        rows = self.table.rows(ops)
        c = self.row_costs()
        cls, nk, flops, moved, seconds = (
            c.op_class[rows],
            c.kernels[rows],
            c.flops[rows],
            c.bytes[rows],
            c.seconds[rows],
        )
        launch = nk * self.model.overhead(cls)
        oi = np.divide(flops, moved, out=np.zeros_like(flops), where=moved > 0)
        classes = list(CLASS_INDEX)
        return pd.DataFrame(
            {
                "node": names,
                "kind": [o.kind for o in ops],
                "op_class": [classes[c] for c in cls],
                "kernels": nk.astype(int),
                "flops": flops,
                "bytes": moved,
                "oi": oi,
                "attainable_flops": np.minimum(
                    oi * self.model.bandwidth, self.model.peak(c.precision[rows])
                ),
                "seconds": seconds,
                "launch_s": launch,
            }
        )
