"""GenNAS (dissertation 3.3): a network without its classifier, trained for a few steps to
regress synthetic signals from several stages at once; the score is the negative loss.

Each marked stage output ``F_i`` goes through a head ``M_i`` (BN, 1x1 conv to ``c'`` channels,
interpolated to ``h' x w'``) and is compared with that stage's synthetic tensor ``F*_i`` (a sum
of signal bases, :mod:`dse.proxies.targets`). Training minimises ``sum_i E[(F*_i - M_i(F_i))^2]``
with SGD on one fixed batch (input noise re-drawn each step); validation weighs later stages
more, ``sum_i 2^-(N-i) E[...]`` (3.3.1), on the noise-free batch.

Presets (table 3.1, NAS-Bench-101 analysis):

* ``single``: Dot 100% on the last stage only (rho 0.81 there);
* ``combo``: each stage's top-3 bases: S1 Sin1D-H + Sin2D-H + Dot 100%, S2 Sin1D-H + Sin2D-M +
  Resize, S3 Dot 100% + Sin1D-H + Resize (rho 0.85).

Defaults follow the authors' released code: SGD lr 0.1, momentum 0.9, weight decay 4e-5, 100
iterations, batch 16 at 32x32, heads to 64 channels at 8x8. The input-noise level (Gaussian,
std 0.1) is this implementation's choice; the noise is part of the proxy-task search space.
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

from dse.proxies.eproxy import DIVERGED
from dse.proxies.regression import RegressionProxy
from dse.proxies.targets import FEATURES, INITS, initialise, make_targets
from dse.registry import PROXIES
from dse.space import SearchSpace
from dse.training.network import build_network

#: preset name -> per-stage signal bases, first stage first (an empty tuple: stage unused)
PRESETS: dict[str, tuple[tuple[str, ...], ...]] = {
    "single": ((), (), ("dot",)),
    "combo": (
        ("sin1d_h", "sin2d_h", "dot"),
        ("sin1d_h", "sin2d_m", "resize"),
        ("dot", "sin1d_h", "resize"),
    ),
}


@dataclass(frozen=True)
class GenNASConfig:
    """A GenNAS proxy task: the signals per stage and how the regression is trained."""

    stages: tuple[tuple[str, ...], ...] = PRESETS["combo"]
    channels: int = 64  # c' per stage
    size: tuple[int, int] = (8, 8)  # h' x w'
    density: float = 1.0  # Dot/GDot share of non-zero pixels
    noise: float = 0.1  # std of the Gaussian input noise, re-drawn each step
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    iterations: int = 100
    batch_size: int = 16
    init: str = "default"

    def __post_init__(self):
        stages = tuple(tuple(s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "size", tuple(self.size))
        bad = [f for s in stages for f in s if f not in FEATURES]
        if bad or not any(stages):
            raise ValueError(
                f"stages: {bad or 'no signal in any stage'} not allowed; allowed values: "
                f"{list(FEATURES)}"
            )
        if self.init not in INITS:
            raise ValueError(f"init: {self.init!r} is not allowed; allowed values: {list(INITS)}")
        for name, low in (("channels", 1), ("iterations", 1), ("batch_size", 2)):
            if getattr(self, name) < low:
                raise ValueError(f"{name}: must be >= {low}, got {getattr(self, name)}")
        if self.lr <= 0 or self.noise < 0 or not 0 < self.density <= 1:
            raise ValueError(
                f"lr > 0, noise >= 0 and 0 < density <= 1 required, got {self.lr}, {self.noise}, "
                f"{self.density}"
            )


def _head(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 1))


def gennas_loss(
    graph: nx.DiGraph,
    config: GenNASConfig,
    images: torch.Tensor,
    seed: int = 0,
    net: nn.Module | None = None,
) -> float:
    """GenNAS's weighted validation loss after training (lower is better); ``net`` as in
    :func:`dse.proxies.eproxy.eproxy_loss`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = build_network(graph, seed=seed) if net is None else net
        initialise(net, config.init, gen)
        net.train()
        with torch.no_grad():
            _, feats = net(images[:2], stages=True)
        n_stages = len(feats)
        if n_stages == 0:
            raise ValueError(
                "GenNAS needs the graph's stage outputs (graph.graph['stage_outputs'])"
            )
        # align the task's stages with the network's last stages
        task = (
            config.stages[-n_stages:]
            if len(config.stages) >= n_stages
            else ((),) * (n_stages - len(config.stages)) + config.stages
        )
        used = [i for i, s in enumerate(task) if s]
        targets = {
            i: make_targets(
                task[i],
                images,
                config.channels,
                config.size,
                seed + 31 * i,
                density=config.density,
                combine="sum",
            )
            for i in used
        }
        heads = nn.ModuleDict({str(i): _head(feats[i].shape[1], config.channels) for i in used})
        initialise(heads, config.init, gen)
        weights = {i: 2.0 ** -(n_stages - 1 - i) for i in used}
        params = list(net.parameters()) + list(heads.parameters())
        opt = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )

        def losses(x: torch.Tensor) -> dict[int, torch.Tensor]:
            _, fs = net(x, stages=True)
            return {
                i: F.mse_loss(
                    F.interpolate(
                        heads[str(i)](fs[i]), size=config.size, mode="bilinear", align_corners=False
                    ),
                    targets[i],
                )
                for i in used
            }

        for _ in range(config.iterations):
            noisy = (
                images + config.noise * torch.randn(images.shape, generator=gen)
                if config.noise
                else images
            )
            loss = sum(losses(noisy).values())
            if not torch.isfinite(loss):
                return DIVERGED
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            value = float(sum(weights[i] * v for i, v in losses(images).items()))
    return value if math.isfinite(value) else DIVERGED


@PROXIES.register("gennas")
class GenNASProxy(RegressionProxy):
    """GenNAS: multi-stage regression of synthetic signals, 100 SGD steps (higher is better)."""

    name = "gennas"
    kind = "gennas"
    metrics = ("gennas",)
    cost = 30.0

    def __init__(
        self,
        preset: str = "combo",
        stages: list[list[str]] | None = None,
        channels: int = 64,
        size: list[int] | None = None,
        density: float = 1.0,
        noise: float = 0.1,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 4e-5,
        iterations: int = 100,
        batch_size: int = 16,
        init: str = "default",
        seed: int = 0,
        data: str = "images",
        threads: int = 1,
        metric: str = "gennas",
        saved: str | None = None,
    ):
        if (
            saved is not None
        ):  # a task found by the proxy-task search (dse dps --proxy gennas --name)
            self.config = GenNASConfig(**self.saved_params(saved))
        else:
            if stages is None:
                if preset not in PRESETS:
                    raise ValueError(
                        f"preset: {preset!r} is not allowed; allowed values: {sorted(PRESETS)}"
                    )
                stages = PRESETS[preset]
            self.config = GenNASConfig(
                tuple(tuple(s) for s in stages),
                channels,
                tuple(size or (8, 8)),
                density,
                noise,
                lr,
                momentum,
                weight_decay,
                iterations,
                batch_size,
                init,
            )
        self._setup(seed, data, threads, metric)

    def loss(self, graph: nx.DiGraph, images: torch.Tensor) -> float:
        return gennas_loss(graph, self.config, images, self.seed)

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        return {self.metrics[0]: -self.trained_loss(graph)}
