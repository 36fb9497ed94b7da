"""A CPU's latency for architecture graphs, costed a whole population at a time.

Each IR node is one operator of the runtime. Its time on ``threads`` cores (seconds)::

    t = overhead[c] + max(FLOPs / (threads_used x f x FLOP/cycle x eta[c]),
                          bytes / (bandwidth(working set) x eta_memory))

* ``c``: the op's class (:data:`CPU_CLASSES`): a GEMM-like convolution (k > 1), a pointwise
  (1x1) convolution, a grouped convolution (groups > 1, not depthwise), a depthwise
  convolution, linear/matmul, pooling, normalisation, activation, other elementwise ops, and
  NAS-Bench-201's ``zero``. Views (identity, reshape, slice) are free; a channel ``shuffle``
  copies every element (a runtime's TRANSPOSE), an elementwise op without arithmetic.
* ``eta[c]``: the fraction of SIMD peak the class reaches (im2col/GEMM vs. depthwise loops);
  ``overhead[c]``: the runtime's fixed cost per operator (dispatch, allocation), seconds.
* ``threads_used = clip(batch x output elements / GRAIN, 1, threads)``: a small operator cannot
  keep every core busy (runtimes split work in chunks of about :data:`GRAIN` outputs).
* ``bandwidth``: the working set (batch x activations + weights, bytes) against the caches: L2
  rate (``threads x f x cache_bytes_per_cycle``) within ``threads x L2``, half of it within L3,
  DRAM bandwidth beyond.
* A ``fused`` runtime (TFLite, ONNX Runtime) folds batch norm into the preceding convolution and
  runs activations as the previous op's epilogue: those rows cost nothing. A ``graph`` runtime
  also removes dead code: ``zero`` is a constant, and an op whose result reaches the graph's
  outputs only through a ``zero`` is never run (:func:`live_nodes`: one breadth-first search
  over the whole population, in scipy's C).

Weights are read once per batch; FLOPs and activations scale with the batch. Distinct operators
are costed once (:class:`~dse.graph.optable.OpTable`) and node times summed per graph with one
``bincount``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import networkx as nx
import numpy as np

from dse.catalogs.cpus import CpuDevice
from dse.catalogs.devices import get_any_device
from dse.graph.columnar import edge_columns
from dse.graph.columnar import numbered as _numbered
from dse.graph.ops import OpNode, numel
from dse.graph.optable import OpTable, population_ops
from dse.measured_tables import MixSource, mix_sources
from dse.simulators.cpu.calibration import CPU_CLASSES, CpuCalibration, resolve_cpu_calibration
from dse.simulators.cpu.tables import OperatorTable, load_operator_table

#: output elements per thread below which a runtime does not split an operator further
GRAIN = 1024
#: bytes per element (the CPU paths run fp32)
WORD = 4.0
CLASS = {c: i for i, c in enumerate(CPU_CLASSES)}
VIEWS = frozenset({"input", "constant", "identity", "reshape", "slice"})
KIND_CLASS = {
    "dwconv2d": "depthwise",
    "deconv2d": "conv",
    "linear": "linear",
    "matmul": "linear",
    "attention": "linear",
    "pool": "pool",
    "norm": "norm",
    "activation": "activation",
    "zero": "zero",
}
#: classes a fused runtime folds into the op before them
FOLDED = frozenset({"norm", "activation"})


def op_class(op: OpNode) -> int:
    """Index into :data:`CPU_CLASSES` of one IR node (-1: a view, costs nothing)."""
    if op.kind in VIEWS:
        return -1
    if op.kind == "conv2d":
        if op.groups > 1:
            return CLASS["grouped"]
        return CLASS["pointwise" if op.kernel == 1 else "conv"]
    return CLASS[KIND_CLASS.get(op.kind, "elementwise")]


def cpu_row(op: OpNode) -> tuple[float, float, float, float, float]:
    """(class, FLOPs, activation bytes, weight bytes, output elements) of one node, per sample."""
    act = (sum(numel(s) for s in op.in_shapes) + numel(op.out_shape)) * WORD
    flops = float(op.flops if op.kind != "zero" else numel(op.out_shape))
    return op_class(op), flops, float(act), op.params * WORD, float(numel(op.out_shape))


def live_nodes(graphs: Sequence[nx.DiGraph], zero: np.ndarray, lengths) -> np.ndarray:
    """Per node of ``graphs`` (in :func:`population_ops` order; ``zero``: whether each is a
    ``zero``): whether a graph compiler runs it, i.e. whether it reaches one of its graph's
    sinks (nodes without successors) along edges that do not enter a ``zero`` node. Only
    graphs that hold a ``zero`` are searched: in the others every node reaches a sink."""
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    owner = np.repeat(np.arange(len(graphs)), lengths)
    searched = np.zeros(len(graphs), dtype=bool)
    searched[owner[zero]] = True
    live = ~zero
    which = np.flatnonzero(searched)
    if len(which):
        sub = lengths[which]
        local = np.concatenate(([0], np.cumsum(sub)[:-1]))
        nodes = np.repeat(starts[which] - local, sub) + np.arange(int(sub.sum()))
        found = _reach_sinks([graphs[j] for j in which.tolist()], zero[nodes], sub)
        live[nodes] &= found
    return live


def _reach_sinks(graphs: Sequence[nx.DiGraph], zero: np.ndarray, lengths) -> np.ndarray:
    """:func:`live_nodes` of every node of ``graphs``: one breadth-first search over the whole
    population, in scipy's C."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    n = int(np.sum(lengths))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    srcs: list = []
    dsts: list = []
    counts = np.zeros(len(graphs), dtype=np.int64)
    for j, g in enumerate(graphs):
        src, dst = edge_columns(g)
        if not _numbered(g):  # name nodes by position, as population_ops orders them
            index = {v: i for i, v in enumerate(g._node)}
            src, dst = [index[v] for v in src], [index[v] for v in dst]
        srcs.append(src)
        dsts.append(dst)
        counts[j] = len(src)
    offset = np.repeat(starts, counts)
    src = np.fromiter(chain.from_iterable(srcs), dtype=np.int64, count=len(offset)) + offset
    dst = np.fromiter(chain.from_iterable(dsts), dtype=np.int64, count=len(offset)) + offset
    has_out = np.zeros(n, dtype=bool)
    has_out[src] = True
    sinks = np.flatnonzero(~has_out)
    keep = ~zero[dst]  # an edge into a zero carries nothing the output needs
    root = n  # one extra node, joined to every sink: one search finds every live node
    rows = np.concatenate([dst[keep], np.full(len(sinks), root)])
    cols = np.concatenate([src[keep], sinks])
    reverse = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1))
    live = np.zeros(n + 1, dtype=bool)
    live[breadth_first_order(reverse, root, directed=True, return_predecessors=False)] = True
    return live[:n] & ~zero


@dataclass
class CpuRows:
    """Per distinct op: class index, FLOPs, bytes moved, working set and threads used (one
    batch), the features every calibration prices; ``keys`` (the ops' :func:`cpu_row`
    numbers) and ``batch`` are what a measured table looks them up by."""

    op_class: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    threads: np.ndarray
    bandwidth: np.ndarray
    keys: np.ndarray
    batch: int


def features_of(device: CpuDevice, threads: int, keys: np.ndarray, batch_size: int) -> CpuRows:
    """The rows ``keys`` (:func:`cpu_row` numbers) at ``batch_size`` on ``device`` with
    ``threads`` cores (see the module docstring)."""
    cls, flops, act, weights, out = (keys[:, i] for i in range(5))
    moved = batch_size * act + weights
    used = np.clip(batch_size * out / GRAIN, 1, threads)
    cache = device.cache_bandwidth(threads)
    bandwidth = np.where(
        moved <= threads * device.l2_bytes,
        cache,
        np.where(moved <= device.l3_bytes, cache / 2, device.memory_bandwidth),
    )
    return CpuRows(
        cls.astype(np.int64), batch_size * flops, moved, used, bandwidth, keys, batch_size
    )


class CpuCostModel:
    """One CPU, one calibration, a thread count: costs op rows and graph populations."""

    def __init__(self, device: CpuDevice, calibration: CpuCalibration, threads: int | None = None):
        threads = device.cores if threads is None else threads
        if not 1 <= threads <= device.cores:
            raise ValueError(
                f"threads: must be 1 to {device.name}'s {device.cores} cores, got {threads}"
            )
        self.device, self.calibration, self.threads = device, calibration, threads
        self.table = OpTable(cpu_row, 5)
        self._sources: dict[str, tuple[OperatorTable, CpuCostModel]] = {}
        for key in calibration.tables:  # a table that does not exist fails here, not later
            self.source(MixSource.parse(key).table)

    def features(self, batch_size: int) -> CpuRows:
        """The table's rows at ``batch_size`` (see the module docstring)."""
        return features_of(self.device, self.threads, self.table.matrix(), batch_size)

    def row_seconds(self, rows: CpuRows, calibration: CpuCalibration | None = None) -> np.ndarray:
        """Seconds of each row under ``calibration`` (default: the model's): the roofline, mixed
        with the measured tables a calibration with ``tables`` names."""
        cal = calibration or self.calibration
        over, eta, eta_m = cal.arrays(self.device)
        c = np.maximum(rows.op_class, 0)
        rate = rows.threads * self.device.frequency_hz * self.device.flops_per_cycle * eta[c]
        t = over[c] + np.maximum(rows.flops / rate, rows.bytes / (rows.bandwidth * eta_m))
        if cal.tables:  # a mix with the measured tables of other devices
            t = cal.roofline_weight * t
            for source, w in mix_sources(cal.tables):
                t = t + w * self.source_seconds(source, rows)
        free = rows.op_class < 0
        if self.device.runtime == "fused":
            free |= np.isin(rows.op_class, [CLASS[k] for k in FOLDED])
        return np.where(free, 0.0, t)

    def source_seconds(self, source: MixSource, rows: CpuRows) -> np.ndarray:
        """Seconds of each row on the device of measured table ``source``: its table where it
        has the operator at the batch size it is read at (:class:`MixSource`), else its own
        model (its shipped calibration) at that batch size."""
        table, own = self.source(source.table)
        return source.seconds(
            table,
            rows.keys,
            rows.batch,
            lambda b: own.row_seconds(features_of(own.device, own.threads, rows.keys, b)),
        )

    def source(self, source: str) -> tuple[OperatorTable, CpuCostModel]:
        """Measured table ``source`` and its device's own model, loaded once per model."""
        if source not in self._sources:
            table = load_operator_table(source)
            device = get_any_device(table.device, None, "cpu")
            own = CpuCostModel(device, resolve_cpu_calibration("auto", device))
            self._sources[source] = (table, own)
        return self._sources[source]

    def _nodes(
        self, graphs: Sequence[nx.DiGraph]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(table row, owning graph, 1 if run else 0) of every node of ``graphs``, and the
        number of nodes per graph."""
        ops, lengths = population_ops(graphs)
        rows = self.table.rows(ops)
        owner = np.repeat(np.arange(len(graphs)), lengths)
        if self.device.runtime == "graph":
            zero = self.table.matrix()[rows, 0] == CLASS["zero"]
            runs = live_nodes(graphs, zero, lengths).astype(float)
        else:
            runs = np.ones(len(rows))
        return rows, owner, runs, lengths

    def counts(self, graphs: Sequence[nx.DiGraph]) -> np.ndarray:
        """(graphs x table rows) matrix: how many nodes of each distinct op each graph runs."""
        rows, owner, runs, _ = self._nodes(graphs)
        n = len(self.table)
        flat = np.bincount(owner * n + rows, weights=runs, minlength=len(graphs) * n)
        return flat.reshape(len(graphs), n)

    def seconds(self, graphs: Sequence[nx.DiGraph], batch_size: int = 1) -> np.ndarray:
        """Latency (seconds) of one batch of each graph."""
        return self.evaluate(graphs, batch_size)[0]

    def evaluate(
        self, graphs: Sequence[nx.DiGraph], batch_size: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """(latency in seconds, memory in bytes) of one batch of each graph; memory: weights
        plus the largest single operator's activations for the batch."""
        rows, owner, runs, lengths = self._nodes(graphs)
        n = len(graphs)
        per_row = self.row_seconds(self.features(batch_size))
        seconds = np.bincount(owner, weights=per_row[rows] * runs, minlength=n)
        m = self.table.matrix()
        weights = np.bincount(owner, weights=m[rows, 3], minlength=n)
        act = batch_size * m[rows, 2]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])) if n else np.zeros(0, np.int64)
        peak = np.maximum.reduceat(act, starts) if len(act) else np.zeros(n)
        return seconds, weights + peak
