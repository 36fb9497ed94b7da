"""Plugins the tests register the way a user would (``run.plugins = ["dse_test_plugins"]``)."""

from __future__ import annotations

import time

from dse.provider import MetricProvider
from dse.registry import PROXIES


@PROXIES.register("slow_params")
class SlowParams(MetricProvider):
    """Parameter count after sleeping ``delay_s`` (stands in for an expensive proxy)."""

    name = "slow_params"
    metrics = ("slow_params",)
    cost = 1.0

    def __init__(self, delay_s: float = 0.01):
        if delay_s < 0:
            raise ValueError(f"delay_s: must be >= 0, got {delay_s}")
        self.delay_s = delay_s

    def evaluate(self, graph, arch, space):
        time.sleep(self.delay_s)
        return {"slow_params": sum(d["op"].params for _, d in graph.nodes(data=True))}


@PROXIES.register("flaky")
class Flaky(MetricProvider):
    """Fails on every architecture whose first variable takes its first value."""

    name = "flaky"
    metrics = ("flaky_score",)
    cost = 0.5

    def evaluate(self, graph, arch, space):
        first = space.variables[0]
        if arch[first.name] == first.choices[0]:
            raise RuntimeError("simulated crash in a proxy")
        return {"flaky_score": float(graph.number_of_nodes())}


@PROXIES.register("always_fails")
class AlwaysFails(MetricProvider):
    """Raises on every architecture (a misconfigured simulator)."""

    name = "always_fails"
    metrics = ("never",)
    units = {"never": "score"}
    cost = 0.5

    def evaluate(self, graph, arch, space):
        raise FileNotFoundError("license server unreachable")


@PROXIES.register("nan_score")
class NanScore(MetricProvider):
    """Returns NaN for every architecture whose first variable takes its first value."""

    name = "nan_score"
    metrics = ("nan_score",)
    units = {"nan_score": "score"}
    cost = 0.5

    def evaluate(self, graph, arch, space):
        first = space.variables[0]
        bad = arch[first.name] == first.choices[0]
        return {"nan_score": float("nan") if bad else float(graph.number_of_nodes())}


def small_cnn(arch: dict):
    """A user's model factory for the torch space: ``depth`` conv-bn-relu blocks of ``width``
    channels, then a classifier (CIFAR-sized input)."""
    from torch import nn

    layers, channels = [], 3
    for _ in range(arch["depth"]):
        layers += [nn.Conv2d(channels, arch["width"], 3, padding=1, bias=False)]
        layers += [nn.BatchNorm2d(arch["width"]), nn.ReLU()]
        channels = arch["width"]
    BUILT.append(dict(arch))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))


#: every architecture small_cnn built, in order (the torch-space tests read it)
BUILT: list[dict] = []


def tiny_model():
    """A model factory for ``dse cost --model``: a conv, a norm, a pooled classifier."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def unmapped_model():
    """A model with two operators dse has no translation for (``dse cost`` names both)."""
    import torch

    class Unmapped(torch.nn.Module):
        def forward(self, x):
            y = torch.cumsum(x, dim=1)
            return torch.erf(y)

    return Unmapped()
