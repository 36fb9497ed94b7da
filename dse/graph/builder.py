"""Build architecture graphs op by op, with shapes inferred as you go.

The builder keeps plain lists and creates the ``networkx.DiGraph`` once, in :meth:`build`,
which is several times faster than growing the graph node by node; search loops build
thousands of graphs per second this way.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import networkx as nx

from dse.graph.columnar import ColumnarDiGraph
from dse.graph.ops import (
    _SPEC_FIELDS,
    GraphError,
    OpNode,
    Shape,
    _make_op_cached,
    normal_options,
)


@dataclass(frozen=True, slots=True)
class Fragment:
    """A recorded sub-network: its ops, its edges in local ids, and which local id is its output.

    Local ids ``0..n_inputs-1`` stand for the fragment's inputs; ops are numbered after them.
    """

    n_inputs: int
    ops: tuple[OpNode, ...]
    # Edges as parallel int tuples (no per-edge objects): ids relative to the first op.
    internal_src: tuple[int, ...]
    internal_dst: tuple[int, ...]
    internal_port: tuple[int, ...]
    input_index: tuple[int, ...]  # which fragment input feeds ...
    input_dst: tuple[int, ...]  # ... which op (relative id) ...
    input_port: tuple[int, ...]  # ... on which port
    output: int  # relative to first op, or -1 - input index when an input passes straight through


class FragmentCache(dict):
    """Recorded fragments by key, owned by whoever builds many similar graphs (a search space).

    NAS-Bench-201 repeats one cell 15 times at three sizes; replaying the recorded cell instead of
    re-creating its ops makes graph building several times faster. A plain dict (C-speed lookups)
    that empties itself when it reaches ``max_entries``.
    """

    def __init__(self, max_entries: int = 4096):
        super().__init__()
        self.max_entries = max_entries

    def put(self, key: Hashable, fragment: Fragment) -> None:
        if len(self) >= self.max_entries:
            self.clear()
        self[key] = fragment


class GraphBuilder:
    """Accumulates op nodes and edges; node ids are consecutive integers.

    ``weight_bits``/``act_bits`` are the defaults for every op; any op call can override them.
    Every method that adds an op returns the new node's id, to be passed as the input of later ops.
    """

    def __init__(self, name: str = "", *, weight_bits: int = 32, act_bits: int = 32):
        self.name = name
        self.weight_bits = weight_bits
        self.act_bits = act_bits
        self._ops: list[OpNode] = []
        self._names: dict[int, str] = {}
        # Edges as three parallel int lists: small ints are shared objects, so no per-edge
        # allocation (fewer allocations, fewer garbage-collector passes).
        self._src: list[int] = []
        self._dst: list[int] = []
        self._port: list[int] = []
        self.inputs: list[int] = []
        self.stage_outputs: list[int] = []
        self.block_outputs: list[int] = []
        self.meta: dict = {}

    def shape(self, node: int) -> Shape:
        """Output shape of an already added node."""
        return self._ops[node].out_shape

    def add(
        self, kind: str, inputs: Sequence[int] = (), *, name: str | None = None, **attrs
    ) -> int:
        """Add an op of any registered kind reading ``inputs`` (in port order)."""
        if "weight_bits" not in attrs:
            attrs["weight_bits"] = self.weight_bits
        if "act_bits" not in attrs:
            attrs["act_bits"] = self.act_bits
        if "options" in attrs:
            attrs["options"] = normal_options(attrs["options"])
        ops = self._ops
        try:
            op = _make_op_cached(
                kind, tuple([ops[i].out_shape for i in inputs]), tuple(attrs.items())
            )
        except (GraphError, TypeError) as exc:
            bad = set(attrs) - _SPEC_FIELDS
            detail = f"unknown op attribute(s) {sorted(bad)}" if bad else str(exc)
            raise GraphError(f"{name or f'node {len(ops)}'}: {detail}") from None
        node = len(ops)
        ops.append(op)
        if name:
            self._names[node] = name
        if inputs:
            self._src.extend(inputs)
            self._dst.extend([node] * len(inputs))
            self._port.extend(range(len(inputs)))
        return node

    def block(
        self,
        cache: FragmentCache | None,
        key: Hashable,
        inputs: Sequence[int],
        build: Callable[..., int],
    ) -> int:
        """Add a sub-network made by ``build(builder, *inputs) -> output node``.

        With a ``cache``, the first call for a ``key`` and input shapes builds the sub-network in
        place and records it; later calls replay the record. ``key`` must capture everything
        ``build`` depends on besides the input shapes, and ``build`` may read only ``inputs``
        (a sub-network reading other nodes is built but not recorded). Names, stage and block
        marks made inside ``build`` are dropped, so every copy is alike.
        """
        if cache is None:
            return build(self, *inputs)
        ops = self._ops
        full_key = self.fragment_key(key, inputs)
        frag = cache.get(full_key)
        if frag is None:
            return self._record(cache, full_key, inputs, build)
        base = len(ops)
        ops.extend(frag.ops)
        self._src.extend([u + base for u in frag.internal_src])
        self._dst.extend([v + base for v in frag.internal_dst])
        self._port.extend(frag.internal_port)
        self._src.extend([inputs[i] for i in frag.input_index])
        self._dst.extend([v + base for v in frag.input_dst])
        self._port.extend(frag.input_port)
        return frag.output + base if frag.output >= 0 else inputs[-1 - frag.output]

    def chain(
        self,
        cache: FragmentCache | None,
        key: Hashable,
        x: int,
        build: Callable[[GraphBuilder, int], int],
        copies: int,
        mark_blocks: bool = False,
    ) -> int:
        """``copies`` copies of a one-input sub-network in a row, each reading the previous
        copy's output (NAS-Bench-201's five cells per stage); returns the last output.
        ``mark_blocks`` marks each copy's output as a block output (:meth:`mark_block`).

        The same graph as ``copies`` calls of :meth:`block`, with the same node and edge order;
        the replays after the first skip the per-call key and cache lookup.
        """
        if copies < 1:
            raise ValueError(f"copies: must be >= 1, got {copies}")
        mark = self.block_outputs.append if mark_blocks else _no_mark
        y = self.block(cache, key, (x,), build)
        mark(y)
        if copies == 1:
            return y
        frag = None if cache is None else cache.get(self.fragment_key(key, (y,)))
        if (
            frag is None
            or frag.output < 0
            or frag.n_inputs != 1
            or frag.ops[frag.output].out_shape != self._ops[y].out_shape
        ):  # not replayable in a row
            for _ in range(copies - 1):
                y = self.block(cache, key, (y,), build)
                mark(y)
            return y
        ops, src, dst = self._ops, self._src, self._dst
        isrc, idst, xdst = frag.internal_src, frag.internal_dst, frag.input_dst
        ports = frag.internal_port + frag.input_port
        for _ in range(copies - 1):
            base = len(ops)
            ops.extend(frag.ops)
            src.extend([u + base for u in isrc])
            src.extend([y] * len(xdst))
            dst.extend([v + base for v in idst])
            dst.extend([v + base for v in xdst])
            self._port.extend(ports)
            y = frag.output + base
            mark(y)
        return y

    def fragment_key(self, key: Hashable, inputs: Sequence[int]) -> tuple:
        """The cache key under which :meth:`block` records or finds ``key`` read from
        ``inputs``: the caller's key, the input shapes and the builder's default bit widths."""
        ops = self._ops
        shapes = (
            (ops[inputs[0]].out_shape,)
            if len(inputs) == 1
            else tuple([ops[i].out_shape for i in inputs])
        )
        return (key, shapes, self.weight_bits, self.act_bits)

    def _record(
        self,
        cache: FragmentCache,
        full_key: Hashable,
        inputs: Sequence[int],
        build: Callable[..., int],
    ) -> int:
        """Build a block in place and store what it added as a :class:`Fragment`."""
        start, first_edge = len(self._ops), len(self._src)
        n_stages, n_blocks = len(self.stage_outputs), len(self.block_outputs)
        out = build(self, *inputs)
        for node in [n for n in self._names if n >= start]:
            del self._names[node]
        del self.stage_outputs[n_stages:]
        del self.block_outputs[n_blocks:]
        internal: list[tuple[int, int, int]] = []
        incoming: list[tuple[int, int, int]] = []
        for u, v, p in zip(self._src[first_edge:], self._dst[first_edge:], self._port[first_edge:]):
            if u >= start:
                internal.append((u - start, v - start, p))
            elif u in inputs:
                incoming.append((inputs.index(u), v - start, p))
            else:
                return out  # reads a node that is not an input: not replayable
        if out >= start:
            output = out - start
        elif out in inputs:
            output = -1 - inputs.index(out)
        else:
            return out
        (isrc, idst, iport), (xsrc, xdst, xport) = _columns(internal), _columns(incoming)
        cache.put(
            full_key,
            Fragment(
                len(inputs), tuple(self._ops[start:]), isrc, idst, iport, xsrc, xdst, xport, output
            ),
        )
        return out

    # -- convenience wrappers, one per op kind -----------------------------------------------
    def input(self, shape: Shape, name: str = "input") -> int:
        node = self.add("input", (), name=name, shape=tuple(shape))
        self.inputs.append(node)
        return node

    def conv(
        self,
        x: int,
        channels: int,
        kernel: int = 1,
        stride: int = 1,
        *,
        groups: int = 1,
        bias: bool = False,
        padding: int = -1,
        **kw,
    ) -> int:
        return self.add(
            "conv2d",
            (x,),
            channels=channels,
            kernel=kernel,
            stride=stride,
            groups=groups,
            bias=bias,
            padding=padding,
            **kw,
        )

    def deconv(
        self, x: int, channels: int, kernel: int = 3, stride: int = 2, *, bias: bool = True, **kw
    ) -> int:
        """Transposed convolution upsampling by ``stride``."""
        return self.add(
            "deconv2d", (x,), channels=channels, kernel=kernel, stride=stride, bias=bias, **kw
        )

    def dwconv(self, x: int, kernel: int, stride: int = 1, **kw) -> int:
        return self.add("dwconv2d", (x,), kernel=kernel, stride=stride, **kw)

    def linear(self, x: int, features: int, *, bias: bool = True, **kw) -> int:
        return self.add("linear", (x,), channels=features, bias=bias, **kw)

    def matmul(self, a: int, b: int, *, transpose_b: bool = False, **kw) -> int:
        return self.add("matmul", (a, b), transpose_b=transpose_b, **kw)

    def pool(
        self, x: int, mode: str, kernel: int = 1, stride: int = 1, padding: int = -1, **kw
    ) -> int:
        return self.add(
            "pool", (x,), mode=mode, kernel=kernel, stride=stride, padding=padding, **kw
        )

    def norm(self, x: int, mode: str = "batch", **kw) -> int:
        return self.add("norm", (x,), mode=mode, **kw)

    def act(self, x: int, mode: str = "relu", **kw) -> int:
        return self.add("activation", (x,), mode=mode, **kw)

    def sum(self, *xs: int, **kw) -> int:
        return self.add("add", xs, **kw)

    def mul(self, *xs: int, **kw) -> int:
        return self.add("mul", xs, **kw)

    def concat(self, *xs: int, **kw) -> int:
        return self.add("concat", xs, **kw)

    def slice(self, x: int, channels: int, **kw) -> int:
        """The first ``channels`` channels of ``x`` (a view)."""
        return self.add("slice", (x,), channels=channels, **kw)

    def reshape(self, x: int, shape: Shape, **kw) -> int:
        return self.add("reshape", (x,), shape=tuple(shape), **kw)

    def flatten(self, x: int, **kw) -> int:
        return self.add("reshape", (x,), mode="flatten", **kw)

    def embedding(self, x: int, vocab: int, dim: int, **kw) -> int:
        return self.add("embedding", (x,), vocab=vocab, channels=dim, **kw)

    def shuffle(self, x: int, groups: int, **kw) -> int:
        """``x``'s channels shuffled across ``groups`` groups: a copy, not a view
        (:mod:`dse.graph.shuffle_ops`)."""
        return self.add("shuffle", (x,), groups=groups, **kw)

    def identity(self, x: int, **kw) -> int:
        return self.add("identity", (x,), **kw)

    def zero(self, x: int, **kw) -> int:
        return self.add("zero", (x,), **kw)

    def upsample(self, x: int, shape: Shape, mode: str = "nearest", **kw) -> int:
        """``x`` resized to ``shape`` = (C, H', W') (:mod:`dse.graph.resize_ops`)."""
        return self.add("upsample", (x,), shape=tuple(shape), mode=mode, **kw)

    # -- sequence ops, (L, C) tensors (dse.graph.sequence_ops) ----------------------------------
    def sgconv(
        self,
        x: int,
        d: int,
        mode: str = "causal",
        *,
        skip: bool = True,
        decay: str = "alpha",
        rate: float = 0.5,
        prune: float = 0.0,
        prune_method: str = "magnitude",
        **kw,
    ) -> int:
        """SGConv's global depth-wise convolution (eq. 5.1; ``decay="power"``: eq. 5.2)."""
        options = {"decay": decay, "rate": float(rate), "prune": float(prune)}
        if prune:
            options["prune_method"] = prune_method
        return self.add("sgconv", (x,), kernel=d, mode=mode, bias=skip, options=options, **kw)

    def attention(
        self, qkv: int, heads: int = 1, window: int = 0, mode: str = "causal", **kw
    ) -> int:
        """Softmax attention over packed (L, 3C) queries, keys and values; (L, C) out."""
        options = {"window": int(window)} if window else {}
        return self.add("attention", (qkv,), groups=heads, mode=mode, options=options, **kw)

    def position(self, x: int, **kw) -> int:
        """Add a learned embedding per position."""
        return self.add("position", (x,), **kw)

    def seq_pool(self, x: int, mode: str = "avg", **kw) -> int:
        return self.add("seq_pool", (x,), mode=mode, **kw)

    # -- common composites --------------------------------------------------------------------
    def classifier(self, x: int, num_classes: int, **kw) -> int:
        """Global average pool, flatten, fully connected layer."""
        y = self.pool(x, "global_avg")
        y = self.flatten(y)
        return self.linear(y, num_classes, **kw)

    def mark_stage(self, node: int) -> int:
        """Record ``node`` as a stage output (read by regression proxies such as GenNAS)."""
        self.stage_outputs.append(node)
        return node

    def mark_block(self, node: int) -> int:
        """Record ``node`` as a block output: the end of a stem, cell or residual block, where
        measures that compare consecutive blocks (AZ-NAS's expressivity, progressivity and
        trainability) read the features."""
        self.block_outputs.append(node)
        return node

    def wiring(self) -> Wiring:
        """Everything of the graph so far except its ops (see :class:`Wiring`)."""
        return Wiring(
            tuple(self._src),
            tuple(self._dst),
            tuple(self._port),
            dict(self._names),
            tuple(self.inputs),
            tuple(sorted(set(range(len(self._ops))).difference(self._src))),
            tuple(self.stage_outputs),
            len(self._ops),
            tuple(self.block_outputs),
        )

    def build(self) -> nx.DiGraph:
        """The finished graph. Nodes nobody reads (sinks) are the graph outputs.

        A :class:`~dse.graph.columnar.ColumnarDiGraph`: the node dicts are made now, the
        adjacency dicts from the edge columns when something first reads them.
        """
        return self.wiring().graph(self._ops, self.name, self.meta)


@dataclass(frozen=True, slots=True)
class Wiring:
    """A built graph without its ops: edges as int columns, node names, inputs, outputs, stage
    and block marks. Architectures that differ only in which op sits at each node (NAS-Bench-201
    cells whose edges swap one one-node op for another) share one wiring, so a space can keep
    it and make each new graph from its op list alone (:meth:`graph`)."""

    src: tuple[int, ...]
    dst: tuple[int, ...]
    port: tuple[int, ...]
    names: dict[int, str]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    stage_outputs: tuple[int, ...]
    nodes: int
    block_outputs: tuple[int, ...] = ()

    def graph(self, ops: Sequence[OpNode], name: str, meta: dict) -> nx.DiGraph:
        """The graph of these wires with ``ops[i]`` at node ``i`` (one op per node)."""
        if len(ops) != self.nodes:
            raise GraphError(f"ops: the wiring has {self.nodes} nodes, got {len(ops)} ops")
        graph = {
            "name": name,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "stage_outputs": list(self.stage_outputs),
            "block_outputs": list(self.block_outputs),
            "meta": dict(meta),
        }
        return ColumnarDiGraph.from_columns(
            list(ops), self.names, self.src, self.dst, self.port, graph
        )


def _no_mark(_node: int) -> None:
    """What :meth:`GraphBuilder.chain` calls on each copy's output when blocks are not marked."""


def _columns(rows: list[tuple[int, int, int]]) -> tuple[tuple[int, ...], ...]:
    """Edge rows (src, dst, port) as three parallel tuples."""
    return tuple(tuple(c) for c in zip(*rows)) if rows else ((), (), ())
