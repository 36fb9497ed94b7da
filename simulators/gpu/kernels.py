"""Architecture graphs as GPU kernels, costed a whole population at a time.

Each IR node becomes the kernels an eager framework (PyTorch without fusion) launches for it:

* ``input``, ``identity``, ``reshape``: none (views);
* ``add`` / ``mul`` with k inputs: k - 1 binary element-wise kernels, each reading two tensors
  and writing one (how ``sum()`` of branch outputs runs);
* ``zero`` (NAS-Bench-201's ``none``): one kernel reading and writing the tensor (``x.mul(0)``);
* every other kind: one kernel reading its inputs and weights and writing its output.

A batch of ``b`` samples multiplies FLOPs and activation bytes by ``b``; weights are read once.
Distinct operators are costed once (graphs of a space share most of them; ``make_op`` returns
the same object for the same definition) and node times are summed per graph with one
``bincount``: a population of NAS-Bench-201 graphs costs tens of microseconds per graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Sequence

import networkx as nx
import numpy as np

from dse.graph.ops import OpNode, numel
from dse.simulators.gpu.model import CLASS_INDEX, PRECISION_BYTES, PRECISION_INDEX, GpuCostModel, precision_of_bits

KIND_CLASS = {"conv2d": "conv", "dwconv2d": "dwconv", "linear": "linear", "matmul": "matmul", "pool": "pool"}
VIEWS = frozenset({"input", "identity", "reshape"})

_getop = itemgetter("op")
_getuid = attrgetter("uid")


def op_kernels(op: OpNode) -> tuple[str, int, float, float, float]:
    """(class, kernels, FLOPs, activation elements moved, weight elements) of one node, per sample."""
    if op.kind in VIEWS:
        return "elementwise", 0, 0.0, 0.0, 0.0
    out = numel(op.out_shape)
    if op.kind in ("add", "mul"):
        k = len(op.in_shapes) - 1
        return "elementwise", k, float(op.flops), 3.0 * out * k, 0.0
    if op.kind == "zero":
        return "elementwise", 1, float(out), 2.0 * out, 0.0
    moved = sum(numel(s) for s in op.in_shapes) + out
    return KIND_CLASS.get(op.kind, "elementwise"), 1, float(op.flops), float(moved), float(op.params)


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


class KernelTable:
    """Distinct operators seen so far, as numpy rows, indexed by the ops' interning ``uid``
    (ops built without :func:`make_op` have uid 0 and are looked up by identity instead)."""

    def __init__(self, max_rows: int = 200_000):
        self.max_rows = max_rows
        self._clear()

    def _clear(self):
        self._row_of_uid = np.full(1024, -1, dtype=np.int64)
        self._by_id: dict[int, int] = {}
        self._keep: list[OpNode] = []  # ops without uid stay referenced so their ids stay valid
        self._cols: list[list] = [[] for _ in range(7)]
        self._arrays: tuple[np.ndarray, ...] | None = None

    def _add(self, op: OpNode) -> int:
        cls, nk, flops, act, w = op_kernels(op)
        for col, v in zip(self._cols, (CLASS_INDEX[cls], nk, flops, act, w, op.act_bits, op.weight_bits)):
            col.append(v)
        row = len(self._cols[0]) - 1
        if op.uid:
            if op.uid >= len(self._row_of_uid):
                grown = np.full(max(2 * len(self._row_of_uid), op.uid + 1), -1, dtype=np.int64)
                grown[:len(self._row_of_uid)] = self._row_of_uid
                self._row_of_uid = grown
            self._row_of_uid[op.uid] = row
        else:
            self._by_id[id(op)] = row
            self._keep.append(op)
        self._arrays = None
        return row

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(class, kernels, flops, act elements, weight elements, act bits, weight bits) per row."""
        if self._arrays is None:
            self._arrays = tuple(np.array(c, dtype=float if i >= 2 else np.int64) for i, c in enumerate(self._cols))
        return self._arrays

    def rows(self, ops: list[OpNode]) -> np.ndarray:
        """Row index of every op (adding unseen ones)."""
        if len(self._cols[0]) > self.max_rows:
            self._clear()
        uids = np.fromiter(map(_getuid, ops), dtype=np.int64, count=len(ops))
        table = self._row_of_uid
        rows = np.where(uids < len(table), table[np.minimum(uids, len(table) - 1)], -1)
        rows[uids == 0] = -1
        for i in np.flatnonzero(rows < 0):
            op = ops[i]
            known = self._row_of_uid[op.uid] if 0 < op.uid < len(self._row_of_uid) else self._by_id.get(id(op), -1)
            rows[i] = known if known >= 0 else self._add(op)
        return rows


class GraphCoster:
    """Costs architecture graphs on one :class:`GpuCostModel` at one batch size and precision."""

    def __init__(self, model: GpuCostModel, batch_size: int = 1, precision: str = "auto"):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if precision != "auto" and precision not in PRECISION_INDEX:
            raise ValueError(f"precision: {precision!r} is not allowed; allowed values: "
                             f"{['auto', *PRECISION_INDEX]}")
        self.model, self.batch_size, self.precision = model, batch_size, precision
        self.table = KernelTable()
        self._cached: tuple | None = None

    def row_costs(self, batch_size: int | None = None) -> RowCosts:
        """Costs of every kernel-table row at ``batch_size`` (default: the coster's), cached until
        the table gains rows."""
        b = self.batch_size if batch_size is None else batch_size
        arrays = self.table.arrays()
        key = (id(arrays), b)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        cls, nk, flops, act, w, abits, wbits = arrays
        if self.precision == "auto":
            bits = np.maximum(abits, np.where(w > 0, wbits, 0))
            prec = np.array([PRECISION_INDEX[precision_of_bits(int(x))] for x in bits], dtype=np.int64)
            act_bytes, w_bytes = act * abits / 8.0, w * wbits / 8.0
        else:
            p = PRECISION_INDEX[self.precision]
            prec = np.full(len(cls), p, dtype=np.int64)
            act_bytes, w_bytes = act * PRECISION_BYTES[p], w * PRECISION_BYTES[p]
        moved = b * act_bytes + w_bytes
        costs = RowCosts(cls, prec, nk.astype(float), b * flops, moved, w_bytes, b * act_bytes,
                         self.model.seconds(cls, prec, b * flops, moved, nk))
        self._cached = (key, costs)
        return costs

    def node_rows(self, graphs: Sequence[nx.DiGraph]) -> tuple[np.ndarray, np.ndarray]:
        """(kernel-table row of every node of ``graphs`` in order, number of nodes per graph)."""
        lengths = np.fromiter((len(g._node) for g in graphs), dtype=np.int64, count=len(graphs))
        ops = list(map(_getop, chain.from_iterable(g._node.values() for g in graphs)))
        return self.table.rows(ops), lengths

    def cost(self, graphs: Sequence[nx.DiGraph]) -> PopulationCost:
        """Totals for each graph of ``graphs`` (one numpy pass over all their nodes)."""
        rows, lengths = self.node_rows(graphs)
        c = self.row_costs()
        n = len(graphs)
        owner = np.repeat(np.arange(n), lengths)
        seconds, kernels, flops, moved, w_bytes = (
            np.bincount(owner, weights=col[rows], minlength=n)
            for col in (c.seconds, c.kernels, c.flops, c.bytes, c.weight_bytes))
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
        cls, nk, flops, moved, seconds = c.op_class[rows], c.kernels[rows], c.flops[rows], c.bytes[rows], c.seconds[rows]
        launch = nk * self.model.overhead(cls)
        oi = np.divide(flops, moved, out=np.zeros_like(flops), where=moved > 0)
        classes = list(CLASS_INDEX)
        return pd.DataFrame({
            "node": names, "kind": [o.kind for o in ops],
            "op_class": [classes[c] for c in cls], "kernels": nk.astype(int),
            "flops": flops, "bytes": moved, "oi": oi,
            "attainable_flops": np.minimum(oi * self.model.bandwidth, self.model.peak(c.precision[rows])),
            "seconds": seconds, "launch_s": launch,
        })
