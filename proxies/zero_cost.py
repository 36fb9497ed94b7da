"""Zero-cost accuracy proxies: one batch, no training, a score where higher means better.

Each measure is a function ``(network, context) -> float`` registered with :func:`measure`
(the zero-cost-nas ``@measure`` idea: the decorator records the flags the runner needs) and exposed
as a metric provider of the same name, so a config selects it with ``[proxies.synflow]`` and gets
the metric ``synflow`` and its wall time ``time_synflow_s``. Scores that are products over many
layers are reported as logarithms (same ranking, no overflow).

Measures, each with its paper:

* ``grad_norm``: sum of the L2 norms of the weight gradients of the loss (Abdelfattah et al., ICLR
  2021).
* ``snip``: sum of ``|w * dL/dw|`` (Lee et al., ICLR 2019).
* ``grasp``: ``-sum(w * H g)``, the Hessian-gradient product (Wang et al., ICLR 2020).
* ``fisher``: sum over layer outputs of ``0.5 * mean_b(sum_hw(a * dL/da))^2`` per channel (Turner et
  al., ICLR 2020; Theis et al. 2018).
* ``synflow``: log of ``sum |theta * dR/dtheta|`` for ``R`` the output sum of the network with
  absolute weights on an all-ones input, without normalisation, in float64 (Tanaka et al., NeurIPS
  2020).
* ``jacob_cov``: ``-sum(log(v + k) + 1/(v + k))`` over the eigenvalues ``v`` of the correlation of
  per-sample input Jacobians (Mellor et al., 2020, v1 of NASWOT).
* ``nwot``: log-determinant of the Hamming-kernel of ReLU activation codes (Mellor et al., ICML
  2021).
* ``l2_norm``: sum of the L2 norms of the weights at initialisation (Abdelfattah et al., ICLR 2021).
* ``zico``: ``sum_layers log(sum_theta mean|g| / std(g))`` over two half-batches (Li et al.,
  ICLR 2023).
* ``zen``: ``log(||f(x) - f(x + 0.01 e)|| / 0.01) + sum_BN log(sqrt(mean batch variance))`` on the
  last stage's features with Gaussian-initialised weights (Lin et al., ICCV 2021).

AZ-NAS's block-wise measures (``az_expressivity``, ``az_progressivity``, ``az_trainability``) are
registered the same way in :mod:`dse.proxies.az_nas`. Parameter and FLOP counts come from the
``analytic`` proxy; the ``tabular`` proxy looks accuracies up in a benchmark table (tabular.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn

from dse.provider import MetricProvider
from dse.registry import PROXIES, Registry
from dse.space import SearchSpace
from dse.training.data import SOURCES, image_batch, labels
from dse.training.network import GraphNetwork, build_network, graph_io


@dataclass
class ProxyContext:
    """What a measure gets besides the network: one batch and its labels."""

    inputs: torch.Tensor
    targets: torch.Tensor
    classes: int
    seed: int = 0


@dataclass(frozen=True)
class Measure:
    name: str
    fn: Callable[[GraphNetwork, ProxyContext], float]
    drop_norm: bool = False  # build the network without normalisation layers
    double: bool = False  # run in float64


#: every zero-cost measure, by name (``@measure`` adds one; a module of measures outside this one,
#: dse's or a user's, is found through the ``dse.measures`` entry points)
MEASURES: Registry[Measure] = Registry("zero-cost measure", "dse.measures")


def _register_provider(name: str) -> None:
    class ZeroCostProxy(MetricProvider):
        __doc__ = f"Zero-cost proxy {name!r} (see dse.proxies.zero_cost)."
        metrics = (name,)
        units = {name: "score"}
        cost = 0.5

        def __init__(
            self, batch_size: int = 64, seed: int = 0, data: str = "images", threads: int = 1
        ):
            if batch_size < 2:
                raise ValueError(f"batch_size: must be >= 2, got {batch_size}")
            if data not in SOURCES:
                raise ValueError(f"data: {data!r} is not allowed; allowed values: {list(SOURCES)}")
            if threads < 1:
                raise ValueError(f"threads: must be >= 1, got {threads}")
            self.name, self.batch_size, self.seed, self.data, self.threads = (
                name,
                batch_size,
                seed,
                data,
                threads,
            )
            self._contexts: dict[tuple, ProxyContext] = {}

        def evaluate(
            self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
        ) -> dict[str, float]:
            key = io_shapes(graph)
            if key not in self._contexts:
                self._contexts[key] = context_for(graph, self.batch_size, self.seed, self.data)
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                return {name: score(name, graph, self._contexts[key], self.seed)}
            finally:
                torch.set_num_threads(previous)

    ZeroCostProxy.__name__ = f"ZeroCost_{name}"
    PROXIES.register(name)(ZeroCostProxy)


def measure(name: str, drop_norm: bool = False, double: bool = False):
    """Register a zero-cost measure and a metric provider of the same name."""

    def wrap(fn):
        MEASURES.add(name, Measure(name, fn, drop_norm, double))
        _register_provider(name)
        return fn

    return wrap


@contextmanager
def _hooked(modules, hook):
    """Forward ``hook`` on every module of ``modules`` for the duration of the block."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _weighted(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _loss_backward(
    net: GraphNetwork,
    ctx: ProxyContext,
    inputs: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
) -> None:
    net.zero_grad()
    out = net(ctx.inputs if inputs is None else inputs)
    F.cross_entropy(out.flatten(1), ctx.targets if targets is None else targets).backward()


@measure("grad_norm")
def grad_norm(net: GraphNetwork, ctx: ProxyContext) -> float:
    _loss_backward(net, ctx)
    return float(sum(m.weight.grad.norm() for m in _weighted(net) if m.weight.grad is not None))


@measure("snip")
def snip(net: GraphNetwork, ctx: ProxyContext) -> float:
    _loss_backward(net, ctx)
    return float(
        sum(
            (m.weight.detach() * m.weight.grad).abs().sum()
            for m in _weighted(net)
            if m.weight.grad is not None
        )
    )


@measure("grasp")
def grasp(net: GraphNetwork, ctx: ProxyContext) -> float:
    weights = [m.weight for m in _weighted(net)]
    loss = F.cross_entropy(net(ctx.inputs).flatten(1), ctx.targets)
    g = torch.autograd.grad(loss, weights, allow_unused=True)
    loss = F.cross_entropy(net(ctx.inputs).flatten(1), ctx.targets)
    g2 = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    z = sum((a.detach() * b).sum() for a, b in zip(g, g2) if a is not None and b is not None)
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return float(-sum((w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None))


@measure("fisher")
def fisher(net: GraphNetwork, ctx: ProxyContext) -> float:
    acts: list[torch.Tensor] = []

    def keep(_m, _i, out):
        out.retain_grad()
        acts.append(out)

    with _hooked(_weighted(net), keep):
        _loss_backward(net, ctx)
    total = 0.0
    for a in acts:
        if a.grad is None:
            continue
        per = (a.detach() * a.grad).sum(dim=(2, 3)) if a.dim() == 4 else a.detach() * a.grad
        total += float(0.5 * per.pow(2).mean(dim=0).sum())
    return total


@measure("synflow", drop_norm=True, double=True)
def synflow(net: GraphNetwork, ctx: ProxyContext) -> float:
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    ones = torch.ones((1, *ctx.inputs.shape[1:]), dtype=torch.float64)
    net(ones).sum().backward()
    total = float(
        sum((p.detach() * p.grad).abs().sum() for p in net.parameters() if p.grad is not None)
    )
    return math.log(total) if total > 0 else -math.inf


@measure("jacob_cov")
def jacob_cov(net: GraphNetwork, ctx: ProxyContext) -> float:
    x = ctx.inputs.clone().requires_grad_(True)
    net.zero_grad()
    net(x).sum().backward()
    jac = x.grad.flatten(1)
    corr = torch.corrcoef(jac.double())
    corr = torch.nan_to_num(corr, nan=0.0)
    v = torch.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-(torch.log(v + k) + 1.0 / (v + k)).sum())


@measure("nwot")
def nwot(net: GraphNetwork, ctx: ProxyContext) -> float:
    n = len(ctx.inputs)
    kernel = torch.zeros((n, n), dtype=torch.float64)
    seen = [False]

    def add(_m, _i, out):  # accumulate layer by layer: the codes of a whole network need not fit
        c = (out.detach().flatten(1) > 0).float()
        kernel.add_((c @ c.T + (1 - c) @ (1 - c).T).double())  # per-layer counts < 2**24: exact
        seen[0] = True

    relus = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    with _hooked(relus, add), torch.no_grad():
        net(ctx.inputs)
    return float(torch.linalg.slogdet(kernel)[1]) if seen[0] else 0.0


@measure("swap")
def swap(net: GraphNetwork, ctx: ProxyContext) -> float:
    """SWAP-Score (Peng et al., ICLR 2024): the number of distinct sample-wise activation
    patterns. Every ReLU's input is read on the batch; each neuron's pattern is the sign of its
    pre-activation over the samples, and the score counts the distinct patterns over all neurons
    of the network (as the authors' code does, on 4-D feature maps only). Signs are packed into
    two 64-bit masks per neuron (positive, zero) in chunks of 64 samples."""
    codes: list[torch.Tensor] = []
    weights = 2 ** torch.arange(63, -1, -1, dtype=torch.int64)

    def add(_m, inputs, _out):
        x = inputs[0].detach()
        if x.dim() != 4:
            return
        s = torch.sign(x.flatten(1)).T  # (neurons, samples)
        parts = []
        for start in range(0, s.shape[1], 64):
            block = s[:, start : start + 64]
            w = weights[-block.shape[1] :]
            parts += [((block > 0).long() * w).sum(1), ((block == 0).long() * w).sum(1)]
        codes.append(torch.stack(parts, 1))

    with _hooked([m for m in net.modules() if isinstance(m, nn.ReLU)], add), torch.no_grad():
        net(ctx.inputs)
    return float(torch.unique(torch.cat(codes), dim=0).shape[0]) if codes else 0.0


@measure("meco")
def meco(net: GraphNetwork, ctx: ProxyContext) -> float:
    """MeCo (Jiang et al., NeurIPS 2023): the sum over layers of the minimum eigenvalue of the
    Pearson correlation between a layer's channels, over the spatial positions of one sample's
    feature map (the first of the batch; the batch runs through the network so that batch norm
    in training mode sees more than one value per channel on a 1 x 1 map). A rank-deficient layer
    (fewer positions than channels, a constant channel) contributes its near-zero eigenvalue."""
    total = [0.0]

    def add(_m, _i, out):
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            return
        fea = out[0].detach().double().flatten(1)  # (channels, positions)
        if fea.shape[0] < 2:
            return
        fea = fea - fea.mean(1, keepdim=True)
        norm = fea.norm(dim=1, keepdim=True)
        unit = torch.where(norm > 0, fea / norm.clamp_min(1e-300), torch.zeros_like(fea))
        corr = unit @ unit.T  # Pearson correlation; a constant channel's row and column are 0
        total[0] += float(torch.linalg.eigvalsh(corr)[0])

    modules = [m for m in net.modules() if not list(m.children())]  # every leaf layer
    with _hooked(modules, add), torch.no_grad():
        net(ctx.inputs)  # the whole batch (batch norm needs more than one value per channel)
    return total[0]


@measure("l2_norm")
def l2_norm(net: GraphNetwork, ctx: ProxyContext) -> float:
    return float(sum(m.weight.detach().norm() for m in _weighted(net)))


@measure("zico")
def zico(net: GraphNetwork, ctx: ProxyContext) -> float:
    half = max(1, len(ctx.inputs) // 2)
    grads: dict[int, list[torch.Tensor]] = {}
    for part in (slice(0, half), slice(half, None)):
        if len(ctx.inputs[part]) == 0:
            continue
        _loss_backward(net, ctx, ctx.inputs[part], ctx.targets[part])
        for i, m in enumerate(_weighted(net)):
            if m.weight.grad is not None:
                grads.setdefault(i, []).append(m.weight.grad.detach().flatten().clone())
    total = 0.0
    for gs in grads.values():
        if len(gs) < 2:
            continue
        g = torch.stack(gs)
        std = g.std(dim=0)
        ratio = (g.abs().mean(dim=0)[std > 0] / std[std > 0]).sum()
        if ratio > 0:
            total += float(torch.log(ratio))
    return total


@measure("zen")
def zen(net: GraphNetwork, ctx: ProxyContext) -> float:
    gen = torch.Generator().manual_seed(ctx.seed)
    with torch.no_grad():
        for m in _weighted(net):
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype))
    variances: list[torch.Tensor] = []

    def keep(_m, inp, _o):
        variances.append(inp[0].detach().var(dim=(0, 2, 3)).mean())

    x = torch.randn(ctx.inputs.shape, generator=gen)
    e = torch.randn(ctx.inputs.shape, generator=gen)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with _hooked(norms, keep), torch.no_grad():
        net.train()
        _, a = net(x, stages=True)
        n_bn = len(variances)
        _, b = net(x + 0.01 * e, stages=True)
    if not a:
        raise ValueError("zen needs the graph's stage outputs (graph.graph['stage_outputs'])")
    delta = (a[-1] - b[-1]).flatten(1).norm(dim=1).mean()
    bn = sum(0.5 * math.log(max(float(v), 1e-30)) for v in variances[:n_bn])
    return float(math.log(max(float(delta), 1e-30) / 0.01) + bn)


def io_shapes(graph: nx.DiGraph) -> tuple[tuple, tuple]:
    """(input shape, output shape) per sample: what decides the batch a network takes."""
    inputs, outputs = graph_io(graph)
    return graph.nodes[inputs[0]]["op"].out_shape, graph.nodes[outputs[0]]["op"].out_shape


def context_for(graph: nx.DiGraph, batch_size: int, seed: int, data: str) -> ProxyContext:
    """The batch a graph's network takes: its input shape and its number of classes."""
    shape, out = io_shapes(graph)
    classes = int(math.prod(out))
    return ProxyContext(
        image_batch(batch_size, shape, seed, data), labels(batch_size, classes, seed), classes, seed
    )


def score(name: str, graph: nx.DiGraph, ctx: ProxyContext, seed: int = 0) -> float:
    """Run measure ``name`` on a fresh network of ``graph``."""
    if name not in MEASURES:
        raise ValueError(f"measure: {name!r} is not allowed; allowed values: {MEASURES.names()}")
    m = MEASURES[name]
    net = build_network(graph, seed=seed, drop_norm=m.drop_norm)
    if m.double:
        net = net.double()
        ctx = ProxyContext(ctx.inputs.double(), ctx.targets, ctx.classes, ctx.seed)
    net.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return float(m.fn(net, ctx))
