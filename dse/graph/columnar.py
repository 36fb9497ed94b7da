"""A ``networkx.DiGraph`` whose node and adjacency dicts are made the first time they are read.

A NAS-Bench-201 network has 206 nodes and 252 edges; a ``DiGraph`` of it is about 870 small
dicts (one per node's data, two adjacency dicts per node, one per edge's data), and allocating
them costs more than building the network's ops. Search loops mostly read the ops alone (totals,
per-op tables of the simulators), so :class:`ColumnarDiGraph` keeps the op list and the edges as
three int columns (source, destination, input port) until something reads ``_node`` (then the
node dicts are made) or ``_adj``, ``_succ`` or ``_pred`` (then the adjacency), each once, exactly
as ``add_node``/``add_edge`` would have made them; from then on it is an ordinary ``DiGraph``.
Every networkx call or mutation reads those attributes, so it always sees the whole graph.
:func:`node_ops` and :func:`edge_columns` give the ops and edges of any ``DiGraph``, from the
stored lists while they are unread.

What this relies on of networkx is its documented data layout (the dict-of-dicts that
``DiGraph``'s "Subclasses (Advanced)" section and its ``*_dict_factory`` attributes describe,
held in ``_node``, ``_succ``/``_adj`` and ``_pred``); it imports nothing private. Setting one
of those attributes goes through whatever networkx itself declares for it (found with
``inspect.getattr_static``: today a descriptor that resets its cached views), so a networkx
release that changes that machinery still gets its own. pyproject pins networkx to the
releases tested, and tests/test_graph_speed.py checks a columnar graph against the plain one.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import networkx as nx

from dse.graph.ops import OpNode

_COLUMNS = "_edge_columns"
_OPS = "_node_ops"  # (each node's op, {node: name}) until the node dicts are made


def _set_as_networkx_does(obj, name: str, value) -> None:
    """``obj.name = value`` as a plain ``DiGraph`` would set it: through networkx's own data
    descriptor for ``name`` where it declares one, else into the instance dict."""
    declared = inspect.getattr_static(nx.DiGraph, name, None)
    if hasattr(type(declared), "__set__"):
        declared.__set__(obj, value)
    else:
        obj.__dict__[name] = value


class _Adjacency:
    """Data descriptor: returns the instance's adjacency dict, making it first when missing;
    setting goes through networkx's own (which resets its cached views)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        od = obj.__dict__
        value = od.get(self.name)
        if value is None:
            obj._materialise()
            value = od[self.name]
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__.pop(_COLUMNS, None)  # an adjacency set from outside replaces the columns
        _set_as_networkx_does(obj, self.name, value)


class _Nodes:
    """Data descriptor for ``_node``: makes the node dicts from the op list when first read;
    setting goes through networkx's own."""

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        od = obj.__dict__
        value = od.get("_node")
        if value is None:
            ops, names = od.pop(_OPS)
            data = [{"op": op} for op in ops]
            for i, label in names.items():
                data[i]["name"] = label
            value = od["_node"] = dict(enumerate(data))
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__.pop(_OPS, None)
        _set_as_networkx_does(obj, "_node", value)


class ColumnarDiGraph(nx.DiGraph):
    """A ``DiGraph`` made by :meth:`from_columns`; see the module docstring. Node ids are
    ``0..n-1``, and edges are added in column order (so adjacency order is what a loop of
    ``add_edge(src[i], dst[i], port=port[i])`` gives)."""

    _node = _Nodes()
    _adj = _Adjacency("_adj")
    _succ = _Adjacency("_succ")
    _pred = _Adjacency("_pred")

    @classmethod
    def from_columns(
        cls,
        ops: Sequence[OpNode],
        names: dict[int, str],
        src: Sequence[int],
        dst: Sequence[int],
        port: Sequence[int],
        graph: dict,
    ) -> ColumnarDiGraph:
        """A graph of ``len(ops)`` nodes (node ``i``: ``{"op": ops[i]}``, and ``"name"`` where
        ``names`` has one) and the edges ``src[i] -> dst[i]`` with data ``{"port": port[i]}``.
        The sequences are kept, not copied: pass ones nobody changes."""
        g = cls.__new__(cls)
        od = g.__dict__
        od["graph"] = graph
        od["__networkx_cache__"] = {}
        od[_OPS] = (ops, names)
        od[_COLUMNS] = (src, dst, port)
        return g

    def __len__(self) -> int:
        pending = self.__dict__.get(_OPS)
        return len(pending[0]) if pending is not None else len(self._node)

    def number_of_nodes(self) -> int:
        return len(self)

    def _materialise(self) -> None:
        nodes = self._node
        od = self.__dict__
        n = len(nodes)
        succ: list[dict] = [{} for _ in range(n)]
        pred: list[dict] = [{} for _ in range(n)]
        src, dst, port = od.pop(_COLUMNS, ((), (), ()))
        for u, v, p in zip(src, dst, port):
            data = {"port": p}
            succ[u][v] = data
            pred[v][u] = data
        od["_adj"] = od["_succ"] = dict(zip(nodes, succ))
        od["_pred"] = dict(zip(nodes, pred))


def edge_columns(g: nx.DiGraph) -> tuple[Sequence, Sequence]:
    """(sources, destinations) of every edge of ``g``: the stored columns of a
    :class:`ColumnarDiGraph` whose adjacency was never read, else read from ``g._pred``."""
    columns = g.__dict__.get(_COLUMNS)
    if columns is not None:
        return columns[0], columns[1]
    src: list = []
    dst: list = []
    for v, preds in g._pred.items():
        src.extend(preds)
        dst.extend([v] * len(preds))
    return src, dst


def node_ops(g: nx.DiGraph) -> Sequence[OpNode]:
    """The op of every node of ``g`` in insertion order: the stored list of a
    :class:`ColumnarDiGraph` whose node dicts were never read, else read from them."""
    pending = g.__dict__.get(_OPS)
    if pending is not None:
        return pending[0]
    return [d["op"] for d in g._node.values()]


def numbered(g: nx.DiGraph) -> bool:
    """Whether ``g``'s nodes are ``0..n-1`` in insertion order (as a builder makes them)."""
    if _OPS in g.__dict__:
        return True
    return list(g._node) == list(range(len(g._node)))
