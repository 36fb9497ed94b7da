"""Graph-level checks and summaries: validation, shape re-inference, totals, canonical hash."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import networkx as nx

from dse.graph.columnar import edge_columns, node_ops, numbered
from dse.graph.ops import OP_KINDS, GraphError, OpNode, make_op, numel


def _inputs_in_port_order(g: nx.DiGraph, node) -> list:
    preds = [(d.get("port", 0), u) for u, _, d in g.in_edges(node, data=True)]
    preds.sort(key=lambda t: t[0])
    ports = [p for p, _ in preds]
    if ports != list(range(len(ports))):
        raise GraphError(f"node {node!r}: input ports must be 0..{len(ports) - 1}, got {ports}")
    return [u for _, u in preds]


def _label(g: nx.DiGraph, node) -> str:
    return f"{node!r} ({g.nodes[node].get('name') or g.nodes[node]['op'].kind})"


def validate(g: nx.DiGraph) -> None:
    """Raise :class:`GraphError` naming the first problem: a node without an op, a cycle, a
    dangling node (no inputs, or an output nobody reads), wrong arity or a shape mismatch."""
    for n, data in g.nodes(data=True):
        if not isinstance(data.get("op"), OpNode):
            raise GraphError(f"node {n!r} has no 'op' attribute holding an OpNode")
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        raise GraphError(f"graph has a cycle through nodes {[u for u, _ in cycle]}")
    declared_outputs = set(g.graph.get("outputs") or [])
    for n in nx.topological_sort(g):
        op: OpNode = g.nodes[n]["op"]
        preds = _inputs_in_port_order(g, n)
        if not preds and OP_KINDS[op.kind].arity[1] != 0:  # only sources (input, constant)
            raise GraphError(f"dangling node {_label(g, n)}: it has no inputs")
        if g.out_degree(n) == 0 and declared_outputs and n not in declared_outputs:
            raise GraphError(f"dangling node {_label(g, n)}: its output is never used")
        shapes = tuple(g.nodes[p]["op"].out_shape for p in preds)
        if op.kind != "input" and shapes != op.in_shapes:
            raise GraphError(
                f"shape mismatch at {_label(g, n)}: it expects inputs {list(op.in_shapes)} "
                f"but its predecessors produce {list(shapes)}"
            )
        try:
            fresh = make_op(op.kind, shapes, **op.attrs())
        except GraphError as exc:
            raise GraphError(f"node {_label(g, n)}: {exc}") from None
        if fresh.out_shape != op.out_shape:
            raise GraphError(
                f"shape mismatch at {_label(g, n)}: stored output {op.out_shape}, inferred "
                f"{fresh.out_shape}"
            )


def infer_shapes(g: nx.DiGraph) -> nx.DiGraph:
    """Recompute every node's shapes and costs from the input nodes, in topological order.

    Use after editing a graph by hand (changing a kernel or channel count): downstream shapes
    follow. Modifies ``g`` in place and returns it.
    """
    if not nx.is_directed_acyclic_graph(g):
        raise GraphError(f"graph has a cycle through nodes {[u for u, _ in nx.find_cycle(g)]}")
    for n in nx.topological_sort(g):
        op: OpNode = g.nodes[n]["op"]
        preds = _inputs_in_port_order(g, n)
        shapes = tuple(g.nodes[p]["op"].out_shape for p in preds)
        try:
            g.nodes[n]["op"] = make_op(op.kind, shapes, **op.attrs())
        except GraphError as exc:
            raise GraphError(f"node {_label(g, n)}: {exc}") from None
    return g


@dataclass(frozen=True, slots=True)
class GraphTotals:
    """Whole-network costs per sample (batch of one).

    ``hook_flops`` follows the convention of module-hook FLOP counters (ptflops, NAS-Bench-201's
    ``get_model_infos`` as used by NASLib): one MAC counts as one FLOP, normalisation, activation
    and pooling modules add their element ops, and functional additions/concats are not counted.
    Use it to compare with numbers published by those tools; use ``flops`` for roofline models.
    """

    macs: int
    flops: int
    hook_flops: int
    params: int
    weight_bytes: int
    bytes_read: int
    bytes_written: int
    num_nodes: int


def totals(g: nx.DiGraph) -> GraphTotals:
    """Sum node costs over the graph.

    Builders share one :class:`OpNode` object among identical ops, so the sum runs over the
    distinct op objects, each weighted by how often it occurs.
    """
    all_ops = node_ops(g)
    counts = Counter(map(id, all_ops))
    distinct = dict(zip(map(id, all_ops), all_ops))
    hooked: dict[str, bool] = {}  # op kind -> counted by module-hook FLOP counters
    macs = ops = hook = params = wbytes = read = written = 0
    for key, k in counts.items():
        op = distinct[key]
        m, o = op.macs, op.ops
        macs += k * m
        ops += k * o
        params += k * op.params
        wbytes += k * op.weight_bytes
        read += k * op.bytes_read
        written += k * op.bytes_written
        counted = hooked.get(op.kind)
        if counted is None:
            counted = hooked[op.kind] = OP_KINDS[op.kind].counted_by_hooks
        if counted:
            hook += k * (m + o)
    return GraphTotals(macs, 2 * macs + ops, hook, params, wbytes, read, written, len(all_ops))


def _last_readers(g: nx.DiGraph) -> tuple[Sequence[OpNode], list[int]]:
    """(the ops in a topological order of the nodes, the position in it of each node's last
    reader, the node's own position when nobody reads it). The order is the insertion order
    where that is topological (graphs from :class:`GraphBuilder`, numbered ``0..n-1``, are read
    straight from their op list and edge columns), else networkx's topological sort."""
    src, dst = edge_columns(g)
    n = len(g)
    if numbered(g):
        last = list(range(n))
        for u, v in zip(src, dst):
            if v <= u:
                break  # an edge pointing back: not in topological order
            if v > last[u]:
                last[u] = v
        else:
            return node_ops(g), last
    order = list(g._node)
    position = {node: i for i, node in enumerate(order)}
    if any(position[v] <= position[u] for u, v in zip(src, dst)):
        order = list(nx.topological_sort(g))  # insertion order is not topological
        position = {node: i for i, node in enumerate(order)}
    last = list(range(n))
    for u, v in zip(src, dst):
        pu, pv = position[u], position[v]
        if pv > last[pu]:
            last[pu] = pv
    return [g._node[node]["op"] for node in order], last


def peak_activation_bytes(g: nx.DiGraph) -> int:
    """Peak bytes of live activations when ops run in topological order (batch of one).

    A tensor is live from the op that writes it until its last reader has run; this is the
    activation memory an inference runtime without in-place reuse needs.
    """
    ops, last = _last_readers(g)
    frees = [0] * len(ops)
    live = peak = 0
    for i, op in enumerate(ops):
        size = (
            op.bytes_written if op.kind != "input" else (numel(op.out_shape) * op.act_bits + 7) // 8
        )
        live += size
        if live > peak:
            peak = live
        frees[last[i]] += size
        live -= frees[i]
    return peak


@lru_cache(maxsize=65536)
def _op_digest(op: OpNode) -> bytes:
    return hashlib.blake2b(
        repr((op.kind, op.out_shape, sorted(op.attrs().items()))).encode(), digest_size=16
    ).digest()


def canonical_hash(g: nx.DiGraph) -> str:
    """A hash that is equal for isomorphic graphs, whatever their node ids or insertion order.

    Each node's digest covers its op and, recursively, its inputs (in port order, or as a
    multiset for commutative ops) and then its consumers, so renumbering or reordering nodes
    does not change the hash while any change to an op, a shape or a connection does.
    """
    order = list(nx.topological_sort(g))
    up: dict = {}
    for n in order:
        op = g.nodes[n]["op"]
        ported = [(d.get("port", 0), up[u]) for u, _, d in g.in_edges(n, data=True)]
        preds = (
            sorted(h for _, h in ported)
            if OP_KINDS[op.kind].commutative
            else [h for _, h in sorted(ported)]
        )
        up[n] = hashlib.blake2b(_op_digest(op) + b"".join(preds), digest_size=16).digest()
    down: dict = {}
    for n in reversed(order):
        succ = sorted(
            down[v]
            + (
                b""
                if OP_KINDS[g.nodes[v]["op"].kind].commutative
                else d.get("port", 0).to_bytes(4, "little")
            )
            for _, v, d in g.out_edges(n, data=True)
        )
        down[n] = hashlib.blake2b(up[n] + b"".join(succ), digest_size=16).digest()
    return hashlib.blake2b(b"".join(sorted(down.values())), digest_size=16).hexdigest()
