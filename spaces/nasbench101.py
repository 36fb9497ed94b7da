"""NAS-Bench-101 (Ying et al., ICML 2019): 7-vertex DAG cells, at most 9 edges (after pruning),
423k unique cells.

A cell is an upper-triangular 7x7 adjacency matrix (vertex 0 the input, 6 the output) and an op
for each of the five interior vertices: ``conv3x3-bn-relu``, ``conv1x1-bn-relu`` or
``maxpool3x3``. Vertices not on a path from input to output are pruned, as the benchmark does.

Macro skeleton (the benchmark's): a 3x3 conv stem with ``stem_channels`` (128) and BN-ReLU; three
stacks of three cells, a 2x2 max pool halving the resolution and the channels doubling between
stacks; global average pool and a linear classifier. Inside a cell, the output concatenates the
vertices that feed it (channels split between them, the remainder to the first) plus, when the
input feeds the output directly, a 1x1 projection of the input added on; a vertex sums its
inputs, an input edge being a 1x1 projection to the vertex's channels and a wider interior
input being truncated to them (the IR's ``slice``).

Architectures are ``{"e_i_j": 0|1 for i < j, "op1".."op5": op}``; :meth:`parse` also reads the
``adjacency_7x7`` / ``ops`` strings of ``nasbench101_naslib.csv``. :meth:`arch_hash` is invariant
to vertex relabelling (isomorphic cells share a hash), so duplicates are evaluated once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from dse.graph import GraphBuilder
from dse.registry import SPACES
from dse.space import Arch, Choice, SearchSpace, SpaceError

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
VERTICES = 7
MAX_EDGES = 9
PAIRS = tuple((i, j) for i in range(VERTICES) for j in range(i + 1, VERTICES))


def _edge(i: int, j: int) -> str:
    return f"e_{i}_{j}"


def matrix_of(arch: Mapping[str, Any]) -> np.ndarray:
    m = np.zeros((VERTICES, VERTICES), dtype=np.int64)
    for i, j in PAIRS:
        m[i, j] = int(arch[_edge(i, j)])
    return m


def prune(matrix: np.ndarray, ops: list[str]) -> tuple[np.ndarray, list[str]]:
    """Drop vertices not on an input -> output path; raises SpaceError if the output is cut off."""
    g = nx.DiGraph([(i, j) for i, j in zip(*np.nonzero(matrix))])
    g.add_nodes_from(range(len(ops)))
    keep = (nx.descendants(g, 0) | {0}) & (nx.ancestors(g, len(ops) - 1) | {len(ops) - 1})
    if len(ops) - 1 not in nx.descendants(g, 0):
        raise SpaceError("adjacency: the output vertex is not reachable from the input")
    idx = sorted(keep)
    return matrix[np.ix_(idx, idx)], [ops[i] for i in idx]


@SPACES.register("nasbench101")
class NasBench101Space(SearchSpace):
    """NAS-Bench-101 cell space in its 3-stack CIFAR-10 skeleton."""

    name = "nasbench101"
    variables = tuple(
        [Choice(_edge(i, j), (0, 1)) for i, j in PAIRS]
        + [Choice(f"op{v}", OPS) for v in range(1, VERTICES - 1)]
    )

    def __init__(
        self,
        stem_channels: int = 128,
        stacks: int = 3,
        cells_per_stack: int = 3,
        resolution: int = 32,
        num_classes: int = 10,
        weight_bits: int = 32,
        act_bits: int = 32,
    ):
        for field, value in (
            ("stem_channels", stem_channels),
            ("stacks", stacks),
            ("cells_per_stack", cells_per_stack),
            ("resolution", resolution),
            ("num_classes", num_classes),
        ):
            if value < 1:
                raise SpaceError(f"{field}: must be >= 1, got {value}")
        self.stem_channels, self.stacks, self.cells_per_stack = (
            stem_channels,
            stacks,
            cells_per_stack,
        )
        self.resolution, self.num_classes = resolution, num_classes
        self.weight_bits, self.act_bits = weight_bits, act_bits

    # -- validity, sampling, parsing, hashing -----------------------------------------------------
    def cell(self, arch: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
        """The pruned (matrix, ops) of ``arch``, with ``input`` and ``output`` ops at the ends."""
        self.encode(arch)  # every variable present and allowed
        m, ops = prune(
            matrix_of(arch), ["input", *[arch[f"op{v}"] for v in range(1, VERTICES - 1)], "output"]
        )
        if m.sum() > MAX_EDGES:  # counted after pruning, as the benchmark's ModelSpec does
            raise SpaceError(
                f"adjacency: {int(m.sum())} edges after pruning, at most {MAX_EDGES} allowed"
            )
        return m, ops

    def is_valid(self, arch: Mapping[str, Any]) -> bool:
        try:
            self.cell(arch)
        except SpaceError:
            return False
        return True

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random valid cell (rejection sampling over the encoding)."""
        while True:
            arch = self.decode(rng.integers(0, self.cardinalities))
            if self.is_valid(arch):
                return arch

    def mutate(self, arch: Mapping[str, Any], rng: np.random.Generator, n: int = 1) -> Arch:
        for _ in range(100):
            child = super().mutate(arch, rng, n)
            if self.is_valid(child):
                return child
        return dict(arch)

    def parse(self, text: str, ops: str | None = None) -> Arch:
        """From a 49-character row-major adjacency string and a space-separated op list (the
        columns ``adjacency_7x7`` and ``ops`` of nasbench101_naslib.csv), or ``"ADJ|OPS"``."""
        if ops is None:
            text, _, ops = text.partition("|")
        bits = text.strip()
        names = ops.split()
        if len(bits) != VERTICES * VERTICES or set(bits) - {"0", "1"}:
            raise SpaceError(
                f"adjacency: expected {VERTICES * VERTICES} characters of 0/1, got {text!r}"
            )
        if len(names) != VERTICES or names[0] != "input" or names[-1] != "output":
            raise SpaceError(f"ops: expected input, five ops, output; got {names}")
        m = np.array([int(c) for c in bits]).reshape(VERTICES, VERTICES)
        arch: Arch = {_edge(i, j): int(m[i, j]) for i, j in PAIRS}
        arch.update({f"op{v}": names[v] for v in range(1, VERTICES - 1)})
        self.encode(arch)
        return arch

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        """Hash of the pruned cell, invariant to relabelling interior vertices (the benchmark's
        iterated in/out-degree and op hashing)."""
        m, ops = self.cell(arch)
        n = len(ops)
        labels = [
            hashlib.md5(f"{int(m[:, v].sum())}|{int(m[v].sum())}|{ops[v]}".encode()).hexdigest()
            for v in range(n)
        ]
        for _ in range(n):
            labels = [
                hashlib.md5(
                    (
                        "".join(sorted(labels[u] for u in range(n) if m[u, v]))
                        + "|"
                        + "".join(sorted(labels[w] for w in range(n) if m[v, w]))
                        + "|"
                        + labels[v]
                    ).encode()
                ).hexdigest()
                for v in range(n)
            ]
        return hashlib.md5("".join(sorted(labels)).encode()).hexdigest()

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        m = matrix_of(arch)
        return (
            "".join(map(str, m.ravel()))
            + "|"
            + " ".join(["input", *[arch[f"op{v}"] for v in range(1, VERTICES - 1)], "output"])
        )

    # -- the network -------------------------------------------------------------------------------
    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        m, ops = self.cell(arch)
        b = GraphBuilder(
            f"nasbench101:{self.arch_id(arch)}",
            weight_bits=self.weight_bits,
            act_bits=self.act_bits,
        )
        x = b.input((3, self.resolution, self.resolution))
        x = b.mark_block(b.act(b.norm(b.conv(x, self.stem_channels, 3)), "relu"))
        c = self.stem_channels
        for stack in range(self.stacks):
            if stack:
                x = b.mark_block(b.pool(x, "max", kernel=2, stride=2, padding=0))
                c *= 2
            for _ in range(self.cells_per_stack):
                x = b.mark_block(self._cell(b, x, m, ops, c))
            b.mark_stage(x)
        x = b.flatten(b.pool(x, "global_avg"))
        b.linear(x, self.num_classes)
        b.meta.update(space=self.name, arch_id=self.arch_id(arch))
        return b.build()

    @staticmethod
    def _channels(m: np.ndarray, c_in: int, c_out: int) -> list[int]:
        """Channels per vertex: the output's are split among the vertices feeding it (remainder to
        the first); other vertices take the largest of their successors' (the benchmark's rule)."""
        n = len(m)
        ch = [0] * n
        ch[0], ch[n - 1] = c_in, c_out
        feeders = [v for v in range(1, n - 1) if m[v, n - 1]]
        if feeders:
            share, extra = divmod(c_out, len(feeders))
            for k, v in enumerate(feeders):
                ch[v] = share + (1 if k < extra else 0)
        for v in range(n - 2, 0, -1):
            if not m[v, n - 1]:
                ch[v] = max((ch[w] for w in range(v + 1, n - 1) if m[v, w]), default=0)
        return ch

    def _cell(self, b: GraphBuilder, x: int, m: np.ndarray, ops: list[str], c_out: int) -> int:
        n = len(ops)
        c_in = b.shape(x)[0]
        ch = self._channels(m, c_in, c_out)
        out: dict[int, int] = {0: x}
        for v in range(1, n - 1):
            # interior inputs wider than this vertex are truncated to its channels
            terms = [
                out[u] if ch[u] == ch[v] else b.add("slice", (out[u],), channels=ch[v])
                for u in range(1, v)
                if m[u, v]
            ]
            if m[0, v]:
                terms.insert(0, b.act(b.norm(b.conv(x, ch[v], 1)), "relu"))  # input projection
            y = terms[0] if len(terms) == 1 else b.sum(*terms)
            op = ops[v]
            if op == "maxpool3x3":
                y = b.pool(y, "max", kernel=3, stride=1)
            else:
                y = b.act(b.norm(b.conv(y, ch[v], 3 if op.startswith("conv3x3") else 1)), "relu")
            out[v] = y
        feeders = [out[v] for v in range(1, n - 1) if m[v, n - 1]]
        y = feeders[0] if len(feeders) == 1 else (b.concat(*feeders) if feeders else None)
        if m[0, n - 1]:
            proj = b.act(b.norm(b.conv(x, c_out, 1)), "relu")
            y = proj if y is None else b.sum(y, proj)
        return y
