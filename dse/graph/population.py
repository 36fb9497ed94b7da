"""Totals and peak activation memory of whole populations of graphs, in numpy passes.

:func:`~dse.graph.analysis.totals` and :func:`~dse.graph.analysis.peak_activation_bytes` walk
one graph's nodes in Python. A search batch holds a hundred graphs of a few hundred nodes each
that share a few dozen distinct ops, so :class:`PopulationAnalysis` derives each distinct op's
numbers once (an :class:`~dse.graph.optable.OpTable`) and sums or scans every node of the batch
with one gather and a few segment reductions. The results equal the per-graph functions (a test
checks both on every registered space); values are float64, exact below 2**53.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import networkx as nx
import numpy as np

from dse.graph.analysis import GraphTotals, peak_activation_bytes
from dse.graph.columnar import edge_columns, numbered
from dse.graph.ops import OP_KINDS, OpNode, numel
from dse.graph.optable import OpTable, population_ops

#: columns of :meth:`PopulationAnalysis.totals`, GraphTotals' fields in order
TOTALS_COLUMNS = tuple(f.name for f in fields(GraphTotals))


def _row(op: OpNode) -> tuple[int, ...]:
    """An op's contribution to each GraphTotals field, then the bytes of the tensor it writes
    (what peak_activation_bytes counts: an input's tensor, though it reads none)."""
    hook = op.macs + op.ops if OP_KINDS[op.kind].counted_by_hooks else 0
    written = (
        op.bytes_written if op.kind != "input" else (numel(op.out_shape) * op.act_bits + 7) // 8
    )
    return (
        op.macs,
        op.flops,
        hook,
        op.params,
        op.weight_bytes,
        op.bytes_read,
        op.bytes_written,
        1,
        written,
    )


class PopulationAnalysis:
    """Per-op numbers kept across calls, for populations of graphs (one per search loop)."""

    def __init__(self) -> None:
        self._table = OpTable(_row, len(TOTALS_COLUMNS) + 1)

    def _gather(self, graphs: Sequence[nx.DiGraph]) -> tuple[np.ndarray, np.ndarray]:
        """(every node's row, graph by graph; nodes per graph)."""
        ops, lengths = population_ops(graphs)
        rows = self._table.rows(ops)
        return self._table.matrix()[rows], lengths

    def totals(self, graphs: Sequence[nx.DiGraph]) -> np.ndarray:
        """(graphs, len(TOTALS_COLUMNS)): each graph's totals, columns as GraphTotals."""
        return self.analyse(graphs, peak=False)[0]

    def peak_activation_bytes(self, graphs: Sequence[nx.DiGraph]) -> np.ndarray:
        """Each graph's peak live activation bytes (see ``peak_activation_bytes``)."""
        return self.analyse(graphs)[1]

    def analyse(
        self, graphs: Sequence[nx.DiGraph], peak: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(totals as :meth:`totals`, peaks as :meth:`peak_activation_bytes`; zeros when not
        ``peak``), from one gather. Graphs whose nodes are ``0..n-1`` in topological order are
        scanned together for their peaks; others one by one."""
        values, lengths = self._gather(graphs)
        totals = np.zeros((len(graphs), len(TOTALS_COLUMNS)))
        peaks = np.zeros(len(graphs))
        nonempty = lengths > 0
        if not nonempty.any():
            return totals, peaks
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        totals[nonempty] = np.add.reduceat(values[:, :-1], offsets[nonempty], axis=0)
        if not peak:
            return totals, peaks
        size = values[:, -1]
        # graphs a single scan serves: integer ids 0..n-1 in insertion order, edges forward
        scan = np.fromiter(map(numbered, graphs), dtype=bool, count=len(graphs))
        src, dst, n_edges = _edges(graphs, scan)
        bad = np.flatnonzero(dst <= src)
        scan[np.searchsorted(np.cumsum(n_edges), bad, side="right")] = False
        for i in np.flatnonzero(~scan).tolist():
            peaks[i] = peak_activation_bytes(graphs[i])
        if not scan.any():
            return totals, peaks
        edge_offset = np.repeat(offsets, n_edges)
        last = np.arange(len(size))  # each tensor's last reader (itself when nobody reads it)
        np.maximum.at(last, src + edge_offset, dst + edge_offset)
        frees = np.bincount(last, weights=size, minlength=len(size))
        written, freed = np.cumsum(size), np.cumsum(frees)
        # live bytes after node i writes, before anything is freed at i; each graph's scan
        # starts with nothing live
        live = written - np.concatenate(([0.0], freed[:-1]))
        start = np.concatenate(([0.0], freed))[offsets] - np.concatenate(([0.0], written))[offsets]
        live += np.repeat(start, lengths)
        scanned = np.zeros(len(graphs))  # segments of every graph, so none runs into the next
        scanned[nonempty] = np.maximum.reduceat(live, offsets[nonempty])
        peaks[scan] = scanned[scan]
        return totals, peaks


def _edges(
    graphs: Sequence[nx.DiGraph], numbered: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, destinations in each graph's own ids, edges per graph) of the ``numbered``
    graphs (ids 0..n-1; the others count no edges): graphs that share their edge columns (one
    wiring) are converted once."""
    # id(columns) -> (arrays, the columns themselves: held, so no id is reused meanwhile)
    arrays: dict[int, tuple[np.ndarray, np.ndarray, Sequence, Sequence]] = {}
    src, dst = [], []
    none = np.empty(0, np.int64)
    for g, ok in zip(graphs, numbered.tolist()):
        if not ok:
            src.append(none)
            dst.append(none)
            continue
        s, d = edge_columns(g)
        known = arrays.get(id(s))
        if known is None or known[3] is not d:
            known = arrays[id(s)] = (np.asarray(s, np.int64), np.asarray(d, np.int64), s, d)
        src.append(known[0])
        dst.append(known[1])
    n_edges = np.fromiter(map(len, src), dtype=np.int64, count=len(src))
    if not graphs:
        return np.empty(0, np.int64), np.empty(0, np.int64), n_edges
    return np.concatenate(src), np.concatenate(dst), n_edges
