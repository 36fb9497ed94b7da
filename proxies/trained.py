"""``trained_accuracy``: a short, seeded training of any graph on real data (CPU minutes).

Image classifiers train on scikit-learn's digits (below); sequence networks (one ``(L,)`` token
input: the ``sgconv`` and ``hybrid`` spaces) on the task their graph names (``meta["task"]``:
ListOps, sequential digits, characters; :mod:`dse.training.sequence_tasks`) through
:func:`dse.training.sequence_train.train_sequence`. Both report ``trained_accuracy`` (test
accuracy) and ``trained_loss`` (test cross-entropy, nats).

The accuracy a search can afford without a supernet: the architecture's own graph, re-shaped to
a small input (``resolution`` x ``resolution``, 3 channels: the grey digit repeated) with its
final linear layer resized to the ten classes (:func:`small_graph`; every other op keeps its
definition and :func:`dse.graph.infer_shapes` re-derives shapes and costs), is built as a torch
network (:func:`dse.training.network.build_network`), trained for ``epochs`` epochs of SGD with
momentum and a cosine schedule on the training split of :func:`dse.training.digits.load_digits`,
and scored on its test split. Deterministic for a seed. Works for any space whose graphs are
image classifiers with one input; the same trainer scores every method of a comparison
(``benchmarks/edd.py``), so their accuracies compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F

from dse.graph import GraphError, infer_shapes, make_op
from dse.graph.sequence_ops import token_input
from dse.provider import MetricProvider
from dse.registry import PROXIES
from dse.space import SearchSpace
from dse.training.digits import load_digits
from dse.training.network import build_network


def small_graph(graph: nx.DiGraph, resolution: int, num_classes: int) -> nx.DiGraph:
    """A copy of ``graph`` at a ``(3, resolution, resolution)`` input whose last linear layer
    has ``num_classes`` outputs."""
    g = graph.copy()
    inputs = [n for n in g if g.nodes[n]["op"].kind == "input"]
    if len(inputs) != 1 or len(g.nodes[inputs[0]]["op"].out_shape) != 3:
        raise GraphError("trained_accuracy needs an image classifier with one (C, H, W) input")
    g.nodes[inputs[0]]["op"] = make_op("input", (), shape=(3, resolution, resolution))
    linears = [n for n in g if g.nodes[n]["op"].kind == "linear"]
    if not linears:
        raise GraphError("trained_accuracy needs a classifier (a final linear layer)")
    last = max(linears)
    attrs = g.nodes[last]["op"].attrs() | {"channels": num_classes}
    g.nodes[last]["op"] = make_op("linear", g.nodes[last]["op"].in_shapes, **attrs)
    return infer_shapes(g)


def train_and_test(
    graph: nx.DiGraph,
    epochs: int = 3,
    resolution: int = 32,
    batch_size: int = 64,
    lr: float = 0.05,
    seed: int = 0,
) -> float:
    """Test accuracy (fraction) of ``graph`` trained on the digits (see the module doc)."""
    return train_and_score(graph, epochs, resolution, batch_size, lr, seed)[0]


def train_and_score(
    graph: nx.DiGraph,
    epochs: int = 3,
    resolution: int = 32,
    batch_size: int = 64,
    lr: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """(test accuracy, test cross-entropy in nats) of ``graph`` trained on the digits."""
    data = load_digits(resolution, seed)
    net = build_network(small_graph(graph, resolution, data.num_classes), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(epochs):
            net.train()
            for x, y in data.train.batches(batch_size, gen):
                opt.zero_grad()
                F.cross_entropy(net(x.expand(-1, 3, -1, -1)), y).backward()
                opt.step()
            sched.step()
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in data.test.batches(256):
            logits = net(x.expand(-1, 3, -1, -1))
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
    return correct / len(data.test.y), loss / len(data.test.y)


@PROXIES.register("trained_accuracy")
class TrainedAccuracy(MetricProvider):
    """Test accuracy after a short seeded training on scikit-learn's digits (any image net)."""

    name = "trained_accuracy"
    metrics = ("trained_accuracy", "trained_loss")
    units = {"trained_accuracy": "fraction", "trained_loss": "nats"}
    cost = 10.0  # seconds per architecture, about

    def __init__(
        self,
        epochs: int = 3,
        resolution: int = 32,
        batch_size: int = 64,
        lr: float = 0.05,
        seed: int = 0,
        steps: int = 300,
        sequence_lr: float = 2e-3,
        sequence_batch_size: int = 32,
    ):
        for field, value in (
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("steps", steps),
            ("sequence_batch_size", sequence_batch_size),
        ):
            if value < 1:
                raise ValueError(f"{field}: must be >= 1, got {value}")
        if resolution < 8:
            raise ValueError(f"resolution: must be >= 8, got {resolution}")
        for field, rate in (("lr", lr), ("sequence_lr", sequence_lr)):
            if not rate > 0:
                raise ValueError(f"{field}: must be > 0, got {rate}")
        self.settings = dict(
            epochs=epochs, resolution=resolution, batch_size=batch_size, lr=lr, seed=seed
        )
        self.sequence = dict(steps=steps, batch_size=sequence_batch_size, lr=sequence_lr, seed=seed)

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        node = token_input(graph)
        if node is not None:  # token ids: a sequence network
            from dse.training.sequence_tasks import load_task
            from dse.training.sequence_train import train_sequence

            task = graph.graph.get("meta", {}).get("task")
            if task is None:
                raise GraphError("trained_accuracy: a sequence graph must name its task in meta")
            length = graph.nodes[node]["op"].out_shape[0]
            data = load_task(task, length, self.sequence["seed"])
            score = train_sequence(graph, data, **self.sequence)
            return {"trained_accuracy": score.accuracy, "trained_loss": score.loss}
        accuracy, loss = train_and_score(graph, **self.settings)
        return {"trained_accuracy": accuracy, "trained_loss": loss}
