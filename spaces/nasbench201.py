"""NAS-Bench-201 (Dong & Yang, ICLR 2020): one 4-node cell, 6 edges x 5 ops = 15,625 cells.

Macro skeleton (the benchmark's ``TinyNetwork``): 3x3 conv stem with C=16 and batch norm; three
stages of 5 cells with 16, 32, 64 channels, separated by residual reduction blocks (ReLU-conv3x3
stride 2-BN, ReLU-conv3x3-BN, shortcut avgpool 2x2 + conv1x1); batch norm, ReLU, global average
pool and a linear classifier. Cell edge ops: ``none`` (zeros), ``skip_connect``,
``nor_conv_1x1`` and ``nor_conv_3x3`` (ReLU-conv-BN), ``avg_pool_3x3`` (stride 1); each cell node
sums its incoming edges.

Architectures are written in the benchmark's ``arch_str`` form, e.g.
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import networkx as nx

from dse.graph import GraphBuilder
from dse.graph.builder import FragmentCache, Wiring
from dse.graph.ops import OpNode
from dse.registry import SPACES
from dse.space import Arch, Choice, SearchSpace, SpaceError
from dse.spaces.blocks import relu_conv_bn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Edges in arch_str order, as (to_node, from_node).
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: NASLib's ``op_indices`` use edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) (1-based from->to) and op
#: order skip_connect, none, nor_conv_3x3, nor_conv_1x1, avg_pool_3x3.
NASLIB_EDGES = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
EDGE_AT = {e: i for i, e in enumerate(EDGES)}  # (to, from) -> index in EDGES
_CONVS = ("nor_conv_1x1", "nor_conv_3x3")  # three ops each (ReLU-conv-BN); the others one

#: dataset -> (input resolution, number of classes)
DATASETS = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet16_120": (16, 120)}


def edge_name(to: int, frm: int) -> str:
    return f"{to}<-{frm}"


EDGE_NAMES = tuple(edge_name(*e) for e in EDGES)  # the variables, in arch_str order


def parse_arch_str(arch_str: str) -> Arch:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -> architecture mapping."""
    arch: Arch = {}
    nodes = arch_str.strip().split("+")
    if len(nodes) != 3:
        raise SpaceError(
            f"arch_str: expected 3 '+'-separated nodes, got {len(nodes)} in {arch_str!r}"
        )
    for to, node in enumerate(nodes, start=1):
        items = [t for t in node.strip().strip("|").split("|") if t]
        if len(items) != to:
            raise SpaceError(f"arch_str: node {to} needs {to} inputs, got {items}")
        for item in items:
            op, _, frm = item.partition("~")
            if op not in OPS:
                raise SpaceError(f"arch_str: unknown op {op!r}; allowed: {list(OPS)}")
            if not frm.isdigit() or int(frm) >= to:
                raise SpaceError(f"arch_str: bad source node in {item!r}")
            arch[edge_name(to, int(frm))] = op
    return arch


def to_arch_str(arch: Mapping[str, Any]) -> str:
    """Architecture mapping -> the benchmark's ``arch_str``."""
    parts = []
    for to in (1, 2, 3):
        parts.append(
            "|" + "|".join(f"{arch[EDGE_NAMES[EDGE_AT[to, f]]]}~{f}" for f in range(to)) + "|"
        )
    return "+".join(parts)


def from_naslib_indices(indices) -> Arch:
    """NASLib ``op_indices`` (6 ints, NASLib's edge and op order) -> architecture mapping."""
    indices = [int(i) for i in (indices.split() if isinstance(indices, str) else indices)]
    if len(indices) != 6 or not all(0 <= i < len(NASLIB_OPS) for i in indices):
        raise SpaceError(
            f"naslib op_indices: expected 6 integers in 0..{len(NASLIB_OPS) - 1}, got {indices}"
        )
    return {edge_name(*e): NASLIB_OPS[i] for e, i in zip(NASLIB_EDGES, indices)}


@SPACES.register("nasbench201")
class NasBench201Space(SearchSpace):
    """NAS-Bench-201 cell space (15,625 cells) in its CIFAR / ImageNet16-120 macro skeleton."""

    name = "nasbench201"
    variables = tuple(Choice(edge_name(*e), OPS) for e in EDGES)

    def __init__(
        self,
        dataset: Literal["cifar10", "cifar100", "imagenet16_120"] = "cifar10",
        channels: int = 16,
        cells_per_stage: int = 5,
        weight_bits: int = 32,
        act_bits: int = 32,
    ):
        if dataset not in DATASETS:
            raise SpaceError(
                f"dataset: {dataset!r} is not allowed; allowed values: {list(DATASETS)}"
            )
        if channels < 1:
            raise SpaceError(f"channels: must be >= 1, got {channels}")
        if cells_per_stage < 1:
            raise SpaceError(f"cells_per_stage: must be >= 1, got {cells_per_stage}")
        self.dataset = dataset
        self.resolution, self.num_classes = DATASETS[dataset]
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.weight_bits = weight_bits
        self.act_bits = act_bits
        self._fragments = FragmentCache()
        #: cell wiring (conv or not per edge) -> (its wiring, the ops every network shares)
        self._wirings: dict[tuple[bool, ...], tuple[Wiring, tuple[list[OpNode], ...]]] = {}
        self._stage_pieces = []  # per stage: edge op (or 2, 3: a sum) -> its ops
        c, r = channels, self.resolution
        for _ in range(3):
            self._stage_pieces.append(self._pieces_at((c, r, r)))
            c, r = 2 * c, (r - 1) // 2 + 1  # the reduction's 3x3 stride-2 convolution

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        return to_arch_str(arch)

    def parse(self, arch_str: str) -> Arch:
        return parse_arch_str(arch_str)

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        """Merkle digest of the labelled cell DAG: equal exactly when the networks' graphs are
        isomorphic (the macro skeleton is fixed), at a fraction of the cost of hashing them."""
        digest = {0: b"in"}
        for to in (1, 2, 3):
            incoming = sorted(
                arch[EDGE_NAMES[EDGE_AT[to, f]]].encode() + digest[f] for f in range(to)
            )
            digest[to] = hashlib.blake2b(b"|".join(incoming), digest_size=16).digest()
        key = "/".join(
            map(
                str,
                (
                    self.dataset,
                    self.channels,
                    self.cells_per_stage,
                    self.weight_bits,
                    self.act_bits,
                ),
            )
        )
        return hashlib.blake2b(key.encode() + digest[3], digest_size=16).hexdigest()

    # -- graph ------------------------------------------------------------------------------
    def _edge_op(self, b: GraphBuilder, src: int, op: str, channels: int) -> int:
        if op == "none":
            return b.zero(src)
        if op == "skip_connect":
            return b.identity(src)
        if op == "avg_pool_3x3":
            return b.pool(src, "avg", 3, 1)
        return relu_conv_bn(b, src, channels, 1 if op == "nor_conv_1x1" else 3, 1)

    def _cell(self, b: GraphBuilder, x: int, ops: tuple[str, ...], channels: int) -> int:
        nodes = [x]
        cache = self._fragments
        for to in (1, 2, 3):
            incoming = []
            for frm in range(to):
                op = ops[EDGE_AT[to, frm]]
                if op in ("nor_conv_1x1", "nor_conv_3x3"):  # three ops: replay a recorded copy
                    incoming.append(
                        b.block(
                            cache,
                            ("edge", op, channels),
                            (nodes[frm],),
                            lambda bb, xx, op=op: self._edge_op(bb, xx, op, channels),
                        )
                    )
                else:  # one op: adding it directly is cheaper than a replay
                    incoming.append(self._edge_op(b, nodes[frm], op, channels))
            nodes.append(incoming[0] if len(incoming) == 1 else b.sum(*incoming))
        return nodes[3]

    def _reduction(self, b: GraphBuilder, x: int, channels: int) -> int:
        a = relu_conv_bn(b, x, channels, 3, 2)
        a = relu_conv_bn(b, a, channels, 3, 1)
        s = b.pool(x, "avg", 2, 2, padding=0)
        s = b.conv(s, channels, 1)
        return b.sum(a, s)

    def _stem(self, b: GraphBuilder, x: int) -> int:
        return b.norm(b.conv(x, self.channels, 3), "batch")

    def _head(self, b: GraphBuilder, x: int) -> int:
        return b.classifier(b.act(b.norm(x, "batch"), "relu"), self.num_classes)

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """The network's graph. Cells whose edges hold the same number of ops (one, or three for
        the convolutions) wire alike, so the first graph of each of the 64 wirings is built op by
        op and later ones reuse its :class:`~dse.graph.builder.Wiring` with their own ops (the
        same graph, checked against the builder's when the wiring is first seen)."""
        ops = tuple([arch[e] for e in EDGE_NAMES])
        for e, op in zip(EDGE_NAMES, ops):
            if op not in OPS:
                raise SpaceError(f"{e}: {op!r} is not allowed; allowed values: {list(OPS)}")
        arch_str = to_arch_str(arch)
        name = f"nasbench201:{arch_str}"
        meta = {"space": self.name, "dataset": self.dataset, "arch_str": arch_str}
        pattern = tuple(op in _CONVS for op in ops)
        known = self._wirings.get(pattern)
        if known is not None:
            wiring, skeleton = known
            return wiring.graph(self._ops_of(ops, skeleton), name, meta)
        b = GraphBuilder(name, weight_bits=self.weight_bits, act_bits=self.act_bits)
        skeleton = self._build(b, ops)
        b.meta.update(meta)
        if list(b._ops) != self._ops_of(ops, skeleton):
            raise AssertionError(
                f"nasbench201: the op list of {arch_str} differs from the builder's"
            )
        self._wirings[pattern] = (b.wiring(), skeleton)
        return b.build()

    def _cell_ops(self, ops: tuple[str, ...], stage: int) -> list[OpNode]:
        """The ops of one cell of ``stage`` in the builder's node order (:meth:`_cell`): each
        cell node's incoming edges in order (EDGES is that order), then the sum of them where
        there are several."""
        piece = self._stage_pieces[stage]
        e0, e1, e2, e3, e4, e5 = [piece[op] for op in ops]
        return [*e0, *e1, *e2, *piece[2], *e3, *e4, *e5, *piece[3]]

    def _pieces_at(self, shape: tuple[int, int, int]) -> dict[str | int, tuple[OpNode, ...]]:
        """The ops of each edge op reading a tensor of ``shape``, and (keys 2 and 3) of the sum
        of that many edges."""
        pieces: dict[str | int, tuple[OpNode, ...]] = {}
        for op in OPS:
            b = GraphBuilder(weight_bits=self.weight_bits, act_bits=self.act_bits)
            self._edge_op(b, b.input(shape), op, shape[0])
            pieces[op] = tuple(b._ops[1:])
        for inputs in (2, 3):
            b = GraphBuilder(weight_bits=self.weight_bits, act_bits=self.act_bits)
            b.sum(*[b.input(shape) for _ in range(inputs)])
            pieces[inputs] = tuple(b._ops[inputs:])
        return pieces

    def _ops_of(self, ops: tuple[str, ...], skeleton: tuple[list[OpNode], ...]) -> list[OpNode]:
        """The whole network's op list: stem, cells and reductions, head."""
        out = list(skeleton[0])
        for stage in range(3):
            if stage:
                out.extend(skeleton[stage])
            out.extend(self._cell_ops(ops, stage) * self.cells_per_stage)
        out.extend(skeleton[3])
        return out

    def _build(self, b: GraphBuilder, ops: tuple[str, ...]) -> tuple[list[OpNode], ...]:
        """Build the network op by op into ``b``; returns the ops that are the same for every
        architecture: (input and stem, first reduction, second reduction, head)."""
        cache = self._fragments  # shared by all architectures: edge ops, stem, reductions, head
        cells = FragmentCache()  # this architecture's cell, recorded once and replayed per stage
        x = b.block(cache, "stem", (b.input((3, self.resolution, self.resolution)),), self._stem)
        b.mark_block(x)
        fixed = [list(b._ops)]
        c = self.channels
        for stage in range(3):
            if stage:
                c *= 2
                start = len(b._ops)
                x = b.block(
                    cache, ("reduction", c), (x,), lambda bb, xx, cc=c: self._reduction(bb, xx, cc)
                )
                b.mark_block(x)
                fixed.append(b._ops[start:])
            x = b.chain(
                cells,
                ("cell", ops, c),
                x,
                lambda bb, xx, cc=c: self._cell(bb, xx, ops, cc),
                self.cells_per_stage,
                mark_blocks=True,
            )
            b.mark_stage(x)
        start = len(b._ops)
        b.block(cache, "head", (x,), self._head)
        fixed.append(b._ops[start:])
        return tuple(fixed)
