"""Train any sequence graph of the IR on a :class:`~dse.training.sequence_tasks.SequenceData`.

The graph (an ``sgconv`` or ``hybrid`` space's network, or a user's) is built as a torch
network, trained for ``steps`` AdamW steps with a warmup-cosine schedule on seeded random
batches, then every SGConv kernel is pruned as its op says (``prune`` options: the share of the
trained kernel zeroed, fig. 5.10's post-training pruning), and it is scored on the test split:
accuracy (classes, or next tokens for a language model) and mean cross-entropy (nats per
prediction). Deterministic for a seed; minutes on a CPU for the shipped tasks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import networkx as nx
import torch
import torch.nn.functional as F

from dse.graph import GraphError
from dse.graph.columnar import node_ops
from dse.graph.sequence_ops import token_input
from dse.training.network import build_network
from dse.training.schedules import warmup_cosine
from dse.training.sequence import prune_sgconv
from dse.training.sequence_tasks import SequenceData


@dataclass(frozen=True)
class SequenceScore:
    accuracy: float  # test accuracy (fraction)
    loss: float  # test cross-entropy, nats per prediction
    seconds: float  # training and testing


def check_fits(graph: nx.DiGraph, data: SequenceData) -> None:
    """One clear error when ``graph`` cannot read ``data`` (length, vocabulary or classes)."""
    node = token_input(graph)
    if node is None:
        raise GraphError("a sequence task needs a graph with one (L,) token input")
    length = graph.nodes[node]["op"].out_shape[0]
    ops = node_ops(graph)
    if length != data.train_x.shape[1]:
        raise GraphError(
            f"the graph reads {length} tokens; the task's sequences have {data.train_x.shape[1]}"
        )
    vocab = min((op.vocab for op in ops if op.kind == "embedding"), default=0)
    if vocab < data.task.vocab:
        raise GraphError(
            f"the graph's embedding has {vocab} tokens; the task uses {data.task.vocab}"
        )
    outputs = graph.graph.get("outputs") or [n for n in graph if graph.out_degree(n) == 0]
    out = graph.nodes[outputs[0]]["op"].out_shape if len(outputs) == 1 else ()
    want = (length, data.task.vocab) if data.task.classes == 0 else (data.task.classes,)
    if tuple(out) != want:
        raise GraphError(f"the graph outputs {tuple(out)} per sequence; the task needs {want}")


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def fit_sequence(
    graph: nx.DiGraph,
    data: SequenceData,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    warmup: int = 20,
) -> torch.nn.Module:
    """The network of ``graph`` trained on ``data`` (unpruned, in eval mode)."""
    check_fits(graph, data)
    net = build_network(graph, seed=seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)

    schedule = warmup_cosine(opt, steps, warmup)
    gen = torch.Generator().manual_seed(seed)
    n = len(data.train_y)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net.train()
        for _ in range(steps):
            idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
            loss = _loss(net(data.train_x[idx]), data.train_y[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            schedule.step()
    return net.eval()


@torch.no_grad()
def score_sequence(net: torch.nn.Module, data: SequenceData) -> tuple[float, float]:
    """(test accuracy, test cross-entropy in nats per prediction) of a trained network."""
    net.eval()
    correct = total = 0
    loss_sum = 0.0
    for i in range(0, len(data.test_y), 256):
        x, y = data.test_x[i : i + 256], data.test_y[i : i + 256]
        logits = net(x)
        loss_sum += float(_loss(logits, y)) * y.numel()
        correct += int((logits.argmax(-1) == y).sum())
        total += y.numel()
    return correct / total, loss_sum / total


def train_sequence(
    graph: nx.DiGraph,
    data: SequenceData,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    warmup: int = 20,
) -> SequenceScore:
    """Train ``graph`` on ``data``, prune its SGConv kernels as its ops say, score it on the test
    split (see the module doc)."""
    start = time.perf_counter()
    net = fit_sequence(graph, data, steps, batch_size, lr, seed, warmup)
    accuracy, loss = score_sequence(prune_sgconv(net), data)
    return SequenceScore(accuracy, loss, time.perf_counter() - start)
