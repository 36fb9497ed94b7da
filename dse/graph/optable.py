"""Per-operator numbers for whole populations of graphs, computed once per distinct operator.

Graphs of a search space share most of their operators (``make_op`` returns one interned
:class:`OpNode` per definition, numbered by its ``uid``), so a simulator that derives a row of
numbers from each op (FLOPs, bytes, work units, an IP class) needs to derive it once per distinct
op, then read a whole population's nodes with one numpy gather. :class:`OpTable` is that cache;
:func:`population_ops` lists a population's nodes in order with their graph sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter

import networkx as nx
import numpy as np

from dse.graph.columnar import node_ops
from dse.graph.ops import OpNode

_getuid = attrgetter("uid")


def population_ops(graphs: Sequence[nx.DiGraph]) -> tuple[list[OpNode], np.ndarray]:
    """(the op of every node of ``graphs``, graph by graph in insertion order; nodes per graph)."""
    per_graph = [node_ops(g) for g in graphs]
    lengths = np.fromiter(map(len, per_graph), dtype=np.int64, count=len(graphs))
    return list(chain.from_iterable(per_graph)), lengths


class OpTable:
    """Rows of ``width`` numbers, one per distinct op, indexed by the ops' interning ``uid``.

    ``row(op)`` gives an op's numbers (called once per distinct op). Ops built without
    :func:`make_op` have uid 0 and are looked up by identity; they stay referenced so their ids
    stay valid. The table starts afresh when it passes ``max_rows`` rows (row indices returned
    before then are invalid after it)."""

    def __init__(
        self, row: Callable[[OpNode], Sequence[float]], width: int, max_rows: int = 200_000
    ):
        self._row, self.width, self.max_rows = row, width, max_rows
        self.clear()

    def clear(self) -> None:
        self._row_of_uid = np.full(1024, -1, dtype=np.int64)
        self._by_id: dict[int, int] = {}
        self._keep: list[OpNode] = []
        self._values: list[Sequence[float]] = []
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._values)

    def _add(self, op: OpNode) -> int:
        values = tuple(self._row(op))
        if len(values) != self.width:
            raise ValueError(
                f"row function gave {len(values)} values for {op.kind!r}, expected {self.width}"
            )
        self._values.append(values)
        row = len(self._values) - 1
        if op.uid:
            if op.uid >= len(self._row_of_uid):
                grown = np.full(max(2 * len(self._row_of_uid), op.uid + 1), -1, dtype=np.int64)
                grown[: len(self._row_of_uid)] = self._row_of_uid
                self._row_of_uid = grown
            self._row_of_uid[op.uid] = row
        else:
            self._by_id[id(op)] = row
            self._keep.append(op)
        self._matrix = None
        return row

    def matrix(self) -> np.ndarray:
        """All rows as a (rows, width) float array; the same object until rows are added."""
        if self._matrix is None:
            self._matrix = np.array(self._values, dtype=float).reshape(
                len(self._values), self.width
            )
        return self._matrix

    def rows(self, ops: Sequence[OpNode]) -> np.ndarray:
        """Row index of every op (adding unseen ones: one row per distinct uid, found with
        numpy, so a fresh table reads a population as fast as a warm one)."""
        if len(self._values) > self.max_rows:
            self.clear()
        uids = np.fromiter(map(_getuid, ops), dtype=np.int64, count=len(ops))
        table = self._row_of_uid
        rows = np.where(uids < len(table), table[np.minimum(uids, len(table) - 1)], -1)
        rows[uids == 0] = -1
        missing = np.flatnonzero(rows < 0)
        if not len(missing):
            return rows
        interned = missing[uids[missing] > 0]
        if len(interned):
            new = uids[interned]
            at = np.empty(int(new.max()) + 1, dtype=np.int64)
            at[new] = interned  # an op of each new uid (any: one uid is one interned op)
            seen = np.zeros(len(at), dtype=bool)
            seen[new] = True  # a mark per uid instead of sorting the population's uids
            for i in at[np.flatnonzero(seen)].tolist():  # in uid order
                self._add(ops[i])
            rows[interned] = self._row_of_uid[new]
        for i in missing[uids[missing] == 0].tolist():  # built without make_op: by identity
            op = ops[i]
            known = self._by_id.get(id(op), -1)
            rows[i] = known if known >= 0 else self._add(op)
        return rows
