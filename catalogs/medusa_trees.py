"""Candidate trees for Medusa's tree attention (dissertation 6.3.1.2 and 6.3.3.3).

A tree is a set of *paths*: ``(i_1, ..., i_k)`` is the candidate whose token at depth ``j`` is head
``j``'s rank-``i_j`` prediction (0 = top-1), the format Medusa implementations use
(``[[0], [0, 0], [1], [0, 1], ...]``). Every prefix of a path is in the tree. The root, the token
the original LM head predicts, is implicit and always accepted, so a tree of ``n`` paths verifies
``n + 1`` candidate tokens in one step.

* :func:`dense_tree`: the Cartesian product of the top-``s_k`` predictions of each head, with
  ``sum_k prod_{i<=k} s_i`` nodes.
* :func:`sparse_tree`: the greedy tree of 6.3.3.3 that adds, node by node, the frontier node with
  the highest path accuracy ``prod_j a[j, i_j]``; it maximises the expected acceptance length for
  its node budget under independent heads.
* :func:`expected_acceptance`: ``1 + sum over paths of prod_j a[j, i_j]`` tokens per step.
* :func:`to_networkx`, :func:`attention_mask`, :func:`position_ids`: the tree as a graph, the
  tree-attention mask (each token sees its ancestors and itself) and the position offsets.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from dse.catalogs.medusa_heads import HeadAccuracy

Path = tuple[int, ...]


@dataclass(frozen=True)
class Tree:
    """Candidate paths, sorted by depth then ranks (a parent always precedes its children)."""

    paths: tuple[Path, ...]

    def __post_init__(self):
        paths = tuple(
            sorted({tuple(int(i) for i in p) for p in self.paths}, key=lambda p: (len(p), p))
        )
        present = set(paths)
        for p in paths:
            if not p or min(p) < 0:
                raise ValueError(f"paths: {list(p)} is not a path of ranks >= 0")
            if len(p) > 1 and p[:-1] not in present:
                raise ValueError(f"paths: {list(p)} needs its parent {list(p[:-1])} in the tree")
        object.__setattr__(self, "paths", paths)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def candidates(self) -> int:
        """Tokens verified per step: the paths plus the root."""
        return len(self.paths) + 1

    @property
    def depth(self) -> int:
        """Medusa heads the tree uses."""
        return max((len(p) for p in self.paths), default=0)

    def to_json(self) -> str:
        return json.dumps([list(p) for p in self.paths])

    @classmethod
    def from_paths(cls, paths: Iterable[Sequence[int]] | str) -> Tree:
        """From a list of paths, or its JSON text."""
        if isinstance(paths, str):
            paths = json.loads(paths)
        return cls(tuple(tuple(p) for p in paths))

    def index(self) -> tuple[np.ndarray, np.ndarray]:
        """(parent node of every node, child table ``child[node, rank]``; -1 where none).
        Node 0 is the root; node ``j + 1`` is ``paths[j]``."""
        node_of = {(): 0}
        parent = np.full(len(self.paths) + 1, -1, dtype=np.int64)
        width = 1 + max((p[-1] for p in self.paths), default=0)
        child = np.full((len(self.paths) + 1, width), -1, dtype=np.int64)
        for j, p in enumerate(self.paths, start=1):
            node_of[p] = j
            parent[j] = node_of[p[:-1]]
            child[parent[j], p[-1]] = j
        return parent, child


def dense_tree(sizes: Sequence[int]) -> Tree:
    """Cartesian product of the top-``sizes[k]`` predictions of heads ``0..K-1`` (6.3.1.2)."""
    if not sizes or any(int(s) < 1 for s in sizes):
        raise ValueError(f"sizes: expected one positive top-s per head, got {list(sizes)}")
    paths = [
        p
        for k in range(1, len(sizes) + 1)
        for p in itertools.product(*(range(s) for s in sizes[:k]))
    ]
    return Tree(tuple(paths))


def dense_tree_nodes(sizes: Sequence[int]) -> int:
    """``sum_k prod_{i<=k} s_i``."""
    return int(sum(np.cumprod(sizes)))


def path_accuracy(paths: Sequence[Path], acc: HeadAccuracy) -> np.ndarray:
    """``prod_j a[j, i_j]`` of every path: ranks past the measured ones from the table's tail
    (:meth:`HeadAccuracy.table`), 0 for paths deeper than the heads."""
    width = 1 + max((max(p) for p in paths if p), default=0)
    a = acc.table(max(width, acc.ranks))
    out = np.ones(len(paths))
    for n, p in enumerate(paths):
        for j, i in enumerate(p):
            out[n] *= a[j, i] if j < acc.heads else 0.0
    return out


def expected_acceptance(tree: Tree, acc: HeadAccuracy) -> float:
    """Expected tokens per step: the root plus each node's path accuracy (6.3.3.3)."""
    return 1.0 + float(path_accuracy(tree.paths, acc).sum())


def sparse_tree(
    acc: HeadAccuracy, nodes: int, heads: int | None = None, ranks: int | None = None
) -> Tree:
    """Greedy tree of ``nodes`` paths maximising expected acceptance (6.3.3.3): repeatedly add
    the frontier node (a child of the tree) with the highest path accuracy. ``ranks``: the
    candidates per head (default the measured ranks; more use the table's tail, as Medusa's
    top-10 trees do)."""
    if nodes < 1:
        raise ValueError(f"nodes: must be >= 1, got {nodes}")
    depth = acc.heads if heads is None else heads
    width = acc.ranks if ranks is None else ranks
    if width < 1:
        raise ValueError(f"ranks: must be >= 1, got {width}")
    a = acc.table(width)
    frontier = [(-a[0, i], (i,)) for i in range(width)]
    heapq.heapify(frontier)
    chosen: list[Path] = []
    while frontier and len(chosen) < nodes:
        neg, p = heapq.heappop(frontier)
        chosen.append(p)
        if len(p) < depth:
            for i in range(width):
                heapq.heappush(frontier, (neg * a[len(p), i], p + (i,)))
    if len(chosen) < nodes:
        raise ValueError(
            f"nodes: at most {len(chosen)} paths exist for {depth} heads x {width} ranks"
        )
    return Tree(tuple(chosen))


#: the graph kind of :func:`to_networkx`: a candidate tree, not the op IR
MEDUSA_TREE_GRAPH = "medusa_tree"


def to_networkx(tree: Tree, acc: HeadAccuracy | None = None) -> nx.DiGraph:
    """Node 0 is the root; each path is a node with ``head`` (depth - 1), ``rank``, ``position``
    (depth) and, given accuracies, ``accuracy`` (its path accuracy); edges go parent -> child."""
    g = nx.DiGraph()
    g.add_node(0, head=-1, rank=0, position=0, path=())
    probs = path_accuracy(tree.paths, acc) if acc is not None else None
    parent, _ = tree.index()
    for j, p in enumerate(tree.paths, start=1):
        attrs = dict(head=len(p) - 1, rank=p[-1], position=len(p), path=p)
        if probs is not None:
            attrs["accuracy"] = float(probs[j - 1])
        g.add_node(j, **attrs)
        g.add_edge(int(parent[j]), j)
    return g


def attention_mask(tree: Tree) -> np.ndarray:
    """(candidates x candidates) bool: token ``r`` may attend to token ``c`` iff ``c`` is ``r`` or
    one of its ancestors (the tree attention of figure 6.2)."""
    parent, _ = tree.index()
    n = len(parent)
    mask = np.eye(n, dtype=bool)
    for j in range(1, n):  # parents precede children, so the parent's row is complete
        mask[j] |= mask[parent[j]]
    return mask


def position_ids(tree: Tree) -> np.ndarray:
    """Position offset of each candidate token from the root (its depth)."""
    return np.array([0] + [len(p) for p in tree.paths], dtype=np.int64)
