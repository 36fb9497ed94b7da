"""Medusa decoding configurations as a search space (dissertation 6.3.3.3 and 6.4.3).

An architecture picks the serving model and GPU, the number of Medusa heads, the node budget of
the greedy sparse tree, the batch size and the typical-acceptance threshold ``epsilon`` (0 means
greedy decoding; a larger threshold keeps quality closer to the model's, figure 6.7). Its graph is
the candidate tree (:func:`dse.catalogs.medusa_trees.to_networkx`) with the other decisions in
``graph.graph``; the ``medusa`` simulator costs it.

Config::

    [space]
    name = "medusa"
    models = ["vicuna-7b", "vicuna-13b"]
    devices = ["A100-80GB-PCIe", "H100-SXM"]
    tree_nodes = [4, 8, 16, 32, 63, 127]   # paths below the root: 63 nodes verify 64 tokens
    batches = [1, 2, 4, 8, 16, 32]
    epsilons = [0.0, 0.05, 0.09, 0.15, 0.25]
    max_heads = 5
    accuracy_model = "vicuna-7b-v1.3"   # head accuracies that shape the trees
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from dse.catalogs.devices import load_devices
from dse.catalogs.llms import load_llms
from dse.catalogs.medusa_heads import load_head_accuracy
from dse.catalogs.medusa_trees import MEDUSA_TREE_GRAPH, sparse_tree, to_networkx
from dse.registry import SPACES
from dse.space import Choice, IntRange, SearchSpace, SpaceError


@SPACES.register("medusa")
class MedusaSpace(SearchSpace):
    """(model, device) x (heads, tree node budget, batch, acceptance threshold)."""

    graph_kind = MEDUSA_TREE_GRAPH

    name = "medusa"

    def __init__(
        self,
        models: Sequence[str] = ("vicuna-7b",),
        devices: Sequence[str] = ("A100-80GB-PCIe",),
        tree_nodes: Sequence[int] = (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 255),
        batches: Sequence[int] = (1, 2, 4, 8, 16, 32),
        epsilons: Sequence[float] = (0.0, 0.05, 0.09, 0.15, 0.25),
        max_heads: int = 5,
        accuracy_model: str = "vicuna-7b-v1.3",
        accuracy_file: str | None = None,
        include_failed: bool = False,
        models_file: str | None = None,
        devices_file: str | None = None,
    ):
        known_models, known_devices = load_llms(models_file), load_devices(devices_file)
        for field, values, known in (
            ("models", models, known_models),
            ("devices", devices, known_devices),
        ):
            bad = [v for v in values if v not in known]
            if not values or bad:
                raise SpaceError(
                    f"{field}: {bad or 'empty'} not allowed; allowed values: {sorted(known)}"
                )
        if not tree_nodes or min(tree_nodes) < 1:
            raise SpaceError(f"tree_nodes: expected positive node budgets, got {list(tree_nodes)}")
        if not batches or min(batches) < 1:
            raise SpaceError(f"batches: expected positive batch sizes, got {list(batches)}")
        if not epsilons or min(epsilons) < 0 or max(epsilons) > 1:
            raise SpaceError(f"epsilons: expected thresholds in [0, 1], got {list(epsilons)}")
        self.accuracy = load_head_accuracy(accuracy_model, accuracy_file, include_failed)
        if not 1 <= max_heads <= self.accuracy.heads:
            raise SpaceError(
                f"max_heads: must be in 1..{self.accuracy.heads} (heads in the accuracy table), "
                f"got {max_heads}"
            )
        self.variables = (
            Choice("model", tuple(models)),
            Choice("device", tuple(devices)),
            IntRange("heads", 1, max_heads),
            Choice("tree_nodes", tuple(int(n) for n in tree_nodes)),
            Choice("batch", tuple(int(b) for b in batches)),
            Choice("epsilon", tuple(float(e) for e in epsilons)),
        )

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        return json.dumps({v.name: arch[v.name] for v in self.variables}, sort_keys=True)

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        self.encode(arch)  # validates every decision, naming the variable
        heads = int(arch["heads"])
        acc = self.accuracy.truncated(heads)
        nodes = min(int(arch["tree_nodes"]), _max_paths(heads, acc.ranks))
        g = to_networkx(sparse_tree(acc, nodes), acc)
        g.graph.update({k: arch[k] for k in ("model", "device", "heads", "batch", "epsilon")})
        g.graph["accuracy_model"] = self.accuracy.name
        return g


def _max_paths(heads: int, ranks: int) -> int:
    return sum(ranks**k for k in range(1, heads + 1))
