"""Eproxy (dissertation 4.2.1, eq. 4.1, listing 4.1): few-shot regression through a frozen,
randomly initialised barrier layer.

The architecture without its classifier (a stage output of :class:`GraphNetwork`) feeds a
trained transform layer (conv k_t -> ReLU -> BN, to ``c_mid`` channels) and a frozen barrier
convolution (k_b, to the targets' channels). SGD with a large learning rate fits synthetic targets
(:mod:`dse.proxies.targets`) on one batch for ``iterations`` steps, minimising

    L_MSE(G(w_b, F(w_a, w_t, X)), Y)                                     (eq. 4.1)

over the architecture's and transform's weights only. The barrier makes the loss surface
non-convex, so good and bad architectures separate within a few steps (4.3.1, table 4.1). The
score is the final loss, optionally FLOPs-adjusted as ``loss * (1 - alpha * MACs / max MACs)``
(4.2.2 item 5, the authors' sign convention); the metric is its negative, so higher is better.

Defaults follow the authors' NAS-Bench-201 setting: c_mid 128, 3x3 transform and barrier, targets
``net`` + ``wave_h``, lr 1.2, momentum 0.9, weight decay 4e-5, 10 iterations, batch 16, alpha 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn

from dse.graph import totals
from dse.proxies.regression import RegressionProxy
from dse.proxies.targets import FEATURES, INITS, initialise, make_targets
from dse.registry import PROXIES
from dse.space import SearchSpace
from dse.training.network import build_network

KERNELS = (1, 3, 7)
#: loss reported for a network whose training diverged (NaN or inf)
DIVERGED = 1e30


@dataclass(frozen=True)
class EproxyConfig:
    """One point of Eproxy's configuration space (what DPS searches)."""

    transform_kernel: int = 3
    barrier_kernel: int = 3
    c_mid: int = 128
    features: tuple[str, ...] = ("net", "wave_h")
    target_channels: int = 16  # channels per feature group
    augment: float = 1.0  # targets x this coefficient (0.5..2)
    lr: float = 1.2
    momentum: float = 0.9
    weight_decay: float = 4e-5
    iterations: int = 10
    batch_size: int = 16
    init: str = "default"
    stage: int = -1  # which stage output: -1 last, 0 before the first downsample, ...
    alpha: float = 0.1  # FLOPs adjustment (0: none)
    barrier: bool = True  # False: the ablation without the barrier layer (table 4.1)

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        for name in ("transform_kernel", "barrier_kernel"):
            if getattr(self, name) not in KERNELS:
                raise ValueError(
                    f"{name}: {getattr(self, name)!r} is not allowed; allowed values: "
                    f"{list(KERNELS)}"
                )
        bad = [f for f in self.features if f not in FEATURES]
        if bad or not self.features:
            raise ValueError(
                f"features: {bad or '[]'} not allowed; allowed values: {list(FEATURES)}"
            )
        if self.init not in INITS:
            raise ValueError(f"init: {self.init!r} is not allowed; allowed values: {list(INITS)}")
        for name, low in (
            ("c_mid", 1),
            ("target_channels", 1),
            ("iterations", 1),
            ("batch_size", 2),
        ):
            if getattr(self, name) < low:
                raise ValueError(f"{name}: must be >= {low}, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")


def eproxy_loss(
    graph: nx.DiGraph,
    config: EproxyConfig,
    images: torch.Tensor,
    targets: torch.Tensor | None = None,
    seed: int = 0,
    net: nn.Module | None = None,
) -> float:
    """Eproxy's final training loss for ``graph`` (lower is better), before any FLOPs adjustment.
    ``targets`` default to :func:`make_targets` at the chosen stage's size; ``net`` is a freshly
    initialised network of ``graph`` to train in place (default: built here from ``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(graph, seed=seed) if net is None else net
        gen = torch.Generator().manual_seed(seed)
        initialise(net, config.init, gen)
        net.train()
        with torch.no_grad():
            _, stages = net(images[:2], stages=True)
        if not stages:
            raise ValueError(
                "Eproxy needs the graph's stage outputs (graph.graph['stage_outputs'])"
            )
        feat = stages[config.stage]
        c, h, w = feat.shape[1:]
        if targets is None:
            targets = make_targets(
                config.features, images, config.target_channels, (h, w), seed, config.augment
            )
        transform = nn.Sequential(
            nn.Conv2d(
                c, config.c_mid, config.transform_kernel, padding=config.transform_kernel // 2
            ),
            nn.ReLU(),
            nn.BatchNorm2d(config.c_mid),
        )
        initialise(transform, config.init, gen)
        barrier = nn.Conv2d(
            config.c_mid,
            targets.shape[1],
            config.barrier_kernel,
            padding=config.barrier_kernel // 2,
        )
        initialise(barrier, config.init, gen)
        barrier.requires_grad_(False)  # frozen: kept out of the optimiser
        if not config.barrier:  # ablation: the transform maps straight to the targets
            transform = nn.Sequential(
                nn.Conv2d(
                    c,
                    targets.shape[1],
                    config.transform_kernel,
                    padding=config.transform_kernel // 2,
                )
            )
            initialise(transform, config.init, gen)
            barrier = nn.Identity()
        params = list(net.parameters()) + list(transform.parameters())
        opt = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        loss = torch.tensor(float("nan"))
        for _ in range(config.iterations):
            _, stages = net(images, stages=True)
            out = barrier(transform(stages[config.stage]))
            loss = F.mse_loss(out, targets)
            if not torch.isfinite(loss):
                return DIVERGED
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        value = float(loss.detach())
    return value if math.isfinite(value) else DIVERGED


def flops_factor(macs: float, max_macs: float, alpha: float) -> float:
    """``1 - alpha * MACs / max MACs``: the loss multiplier of 4.2.2 item 5 (bigger nets, with
    alpha > 0, get a smaller loss)."""
    return 1.0 - alpha * (macs / max_macs if max_macs > 0 else 0.0)


def largest_macs(space: SearchSpace) -> float:
    """MACs of the space's largest architecture, found coordinate-wise: each variable in turn set
    to its costliest value (exact when costs add up over variables, as in NAS-Bench-201)."""
    x = [0] * len(space.variables)
    for i, v in enumerate(space.variables):
        best, best_macs = 0, -1.0
        for j in range(v.cardinality):
            x[i] = j
            try:
                m = totals(space.to_graph(space.decode(x))).macs
            except Exception:  # noqa: BLE001 - an invalid combination is skipped
                continue
            if m > best_macs:
                best, best_macs = j, m
        x[i] = best
    return float(totals(space.to_graph(space.decode(x))).macs)


@PROXIES.register("eproxy")
class EproxyProxy(RegressionProxy):
    """Eproxy: 10-step few-shot regression through a frozen barrier layer (higher is better)."""

    name = "eproxy"
    kind = "eproxy"
    metrics = ("eproxy",)
    cost = 5.0

    def __init__(
        self,
        transform_kernel: int = 3,
        barrier_kernel: int = 3,
        c_mid: int = 128,
        features: list[str] | None = None,
        target_channels: int = 16,
        augment: float = 1.0,
        lr: float = 1.2,
        momentum: float = 0.9,
        weight_decay: float = 4e-5,
        iterations: int = 10,
        batch_size: int = 16,
        init: str = "default",
        stage: int = -1,
        alpha: float = 0.1,
        barrier: bool = True,
        max_macs: float | None = None,
        seed: int = 0,
        data: str = "images",
        threads: int = 1,
        metric: str = "eproxy",
        saved: str | None = None,
    ):
        if saved is not None:  # a configuration found by DPS (dse dps --name), replacing the others
            self.config = EproxyConfig(**self.saved_params(saved))
        else:
            self.config = EproxyConfig(
                transform_kernel,
                barrier_kernel,
                c_mid,
                tuple(features or ("net", "wave_h")),
                target_channels,
                augment,
                lr,
                momentum,
                weight_decay,
                iterations,
                batch_size,
                init,
                stage,
                alpha,
                barrier,
            )
        self._setup(seed, data, threads, metric)
        self.max_macs = max_macs

    def loss(self, graph: nx.DiGraph, images: torch.Tensor) -> float:
        return eproxy_loss(graph, self.config, images, seed=self.seed)

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        loss = self.trained_loss(graph)
        if self.config.alpha:
            if self.max_macs is None:
                self.max_macs = largest_macs(space)
            loss *= flops_factor(totals(graph).macs, self.max_macs, self.config.alpha)
        return {self.metrics[0]: -loss}
